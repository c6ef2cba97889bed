//go:build torch

package torch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// tuple3Fixer works around a bug in gotch v0.7.0's unpickler, whose TUPLE3
// opcode keeps the first item and drops the other two (loadTuple3 never
// advances its index), so every 3-D tensor's size and stride (Conv1d
// weights: attention's qkv and proj_out) fail to load.
//
// It reads one pickle from src, exactly up to and including its STOP opcode
// (the legacy format keeps raw storage bytes after the pickles, read from the
// same file), and rewrites each TUPLE3 into an equivalent sequence of
// opcodes gotch handles correctly: the three items are stored in memo slots
// no torch.save file uses and popped, then pushed back between MARK and
// TUPLE. FRAME opcodes (optional hints of protocol 4+) are dropped, since
// the rewrite changes frame lengths, and MEMOIZE opcodes become explicit
// LONG_BINPUTs (see memo). It also renames the float storage classes (see
// floatStorage): the module of a GLOBAL "torch <Kind>Storage", and a string
// "<Kind>Storage" (the name STACK_GLOBAL takes in protocol 4+; no state-dict
// key is expected to be exactly such a class name).
type tuple3Fixer struct {
	src  io.Reader
	out  bytes.Buffer
	done bool
	err  error
	// memo holds the memo keys the original stream has set. MEMOIZE
	// (protocol 4+) stores at index len(memo), which the rewrite's extra
	// slots would shift, so each MEMOIZE is rewritten as LONG_BINPUT with the
	// index it has in the original stream.
	memo map[uint64]bool
}

// fixModule replaces the module "torch" of the float storage classes, see
// floatStorage.
const fixModule = "diffinv"

// stackGlobalPrefix renames the float storage classes that protocol 4+
// pickles name through STACK_GLOBAL ("torch", "HalfStorage"): gotch then
// looks up "torch.diffinv_HalfStorage", misses, and asks findStorageClass.
const stackGlobalPrefix = "diffinv_"

// unicodeLenSize is the size of the length prefix of a string opcode.
func unicodeLenSize(op byte) int {
	switch op {
	case 0x8c:
		return 1
	case 0x8d:
		return 8
	}
	return 4
}

// isFloatStorage reports whether a GLOBAL's name line names one of the
// storages floatStorage replaces.
func isFloatStorage(nameLine []byte) bool {
	name := string(bytes.TrimSuffix(nameLine, []byte("\n")))
	_, ok := floatKinds[strings.TrimSuffix(name, "Storage")]
	return ok && strings.HasSuffix(name, "Storage")
}

// Memo slots for the rewrite, far above the sequential slots pickle writes.
const fixSlot0 = 0x7fff_fff0

func newTuple3Fixer(src io.Reader) *tuple3Fixer {
	return &tuple3Fixer{src: src, memo: map[uint64]bool{}}
}

func (f *tuple3Fixer) Read(p []byte) (int, error) {
	for f.out.Len() == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if f.done {
			return 0, io.EOF
		}
		f.err = f.step()
	}
	return f.out.Read(p)
}

// read reads exactly n bytes of src.
func (f *tuple3Fixer) read(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(f.src, b); err != nil {
		return nil, fmt.Errorf("pickle truncated: %w", err)
	}
	return b, nil
}

// line reads src up to and including a newline.
func (f *tuple3Fixer) line() ([]byte, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(f.src, one); err != nil {
			return nil, fmt.Errorf("pickle truncated: %w", err)
		}
		b = append(b, one[0])
		if one[0] == '\n' {
			return b, nil
		}
		if len(b) > 1<<20 {
			return nil, fmt.Errorf("pickle text argument longer than 1 MiB")
		}
	}
}

// counted reads a length of size bytes (little endian) then that many bytes,
// and returns both.
func (f *tuple3Fixer) counted(size int) ([]byte, error) {
	lb, err := f.read(size)
	if err != nil {
		return nil, err
	}
	var n uint64
	for i := size - 1; i >= 0; i-- {
		n = n<<8 | uint64(lb[i])
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("pickle argument of %d bytes (more than 1 GiB)", n)
	}
	body, err := f.read(int(n))
	if err != nil {
		return nil, err
	}
	return append(lb, body...), nil
}

// step copies (or rewrites) one opcode with its argument into out.
func (f *tuple3Fixer) step() error {
	ob, err := f.read(1)
	if err != nil {
		return err
	}
	op := ob[0]
	var arg []byte
	switch op {
	case 0x87: // TUPLE3
		f.rewriteTuple3()
		return nil
	case 0x95: // FRAME: drop with its 8-byte length
		_, err := f.read(8)
		return err
	case 0x94: // MEMOIZE: store at the original stream's len(memo), explicitly
		key := uint64(len(f.memo))
		if key >= fixSlot0 {
			return fmt.Errorf("pickle memo of %d entries", key)
		}
		f.memo[key] = true
		var idx [4]byte
		binary.LittleEndian.PutUint32(idx[:], uint32(key))
		f.out.WriteByte('r')
		f.out.Write(idx[:])
		return nil
	case '.': // STOP
		f.done = true
	case 0x80, 'K', 'h', 'q', 0x82: // PROTO, BININT1, BINGET, BINPUT, EXT1
		arg, err = f.read(1)
	case 'M', 0x83: // BININT2, EXT2
		arg, err = f.read(2)
	case 'J', 'j', 'r', 0x84: // BININT, LONG_BINGET, LONG_BINPUT, EXT4
		arg, err = f.read(4)
	case 'G': // BINFLOAT
		arg, err = f.read(8)
	case 0x8a, 'U', 'C', 0x8c: // LONG1, SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE
		arg, err = f.counted(1)
	case 0x8b, 'T', 'B', 'X': // LONG4, BINSTRING, BINBYTES, BINUNICODE
		arg, err = f.counted(4)
	case 0x8d, 0x8e, 0x96: // BINUNICODE8, BINBYTES8, BYTEARRAY8
		arg, err = f.counted(8)
	case 'I', 'L', 'F', 'S', 'V', 'P', 'g', 'p': // newline-terminated argument
		arg, err = f.line()
	case 'c', 'i': // GLOBAL, INST: two lines
		var a, b []byte
		if a, err = f.line(); err == nil {
			b, err = f.line()
			if op == 'c' && string(a) == "torch\n" && isFloatStorage(b) {
				a = []byte(fixModule + "\n")
			}
			arg = append(a, b...)
		}
	}
	if err != nil {
		return err
	}
	if op == 'X' || op == 0x8c || op == 0x8d { // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
		if body := arg[unicodeLenSize(op):]; isFloatStorage(append(append([]byte(nil), body...), '\n')) {
			// The class name pushed for STACK_GLOBAL (protocol 4+).
			name := stackGlobalPrefix + string(body)
			var n [4]byte
			binary.LittleEndian.PutUint32(n[:], uint32(len(name)))
			f.out.WriteByte('X')
			f.out.Write(n[:])
			f.out.WriteString(name)
			return nil
		}
	}
	if err := f.notePut(op, arg); err != nil {
		return err
	}
	f.out.WriteByte(op)
	f.out.Write(arg)
	return nil
}

// notePut records the memo key a PUT, BINPUT or LONG_BINPUT sets, and
// rejects keys that collide with the rewrite's slots.
func (f *tuple3Fixer) notePut(op byte, arg []byte) error {
	var key uint64
	switch op {
	case 'q':
		key = uint64(arg[0])
	case 'r':
		key = uint64(binary.LittleEndian.Uint32(arg))
	case 'p':
		v, err := strconv.ParseUint(strings.TrimSpace(string(arg)), 10, 64)
		if err != nil {
			return fmt.Errorf("pickle PUT %q: %w", arg, err)
		}
		key = v
	default:
		return nil
	}
	if key >= fixSlot0 {
		return fmt.Errorf("pickle memo key %d collides with the keys diffinv's TUPLE3 rewrite uses", key)
	}
	f.memo[key] = true
	return nil
}

// rewriteTuple3 emits: PUT slot+2, POP, PUT slot+1, POP, PUT slot, POP,
// MARK, GET slot, GET slot+1, GET slot+2, TUPLE.
func (f *tuple3Fixer) rewriteTuple3() {
	var idx [4]byte
	emit := func(op byte, slot uint32) {
		binary.LittleEndian.PutUint32(idx[:], slot)
		f.out.WriteByte(op)
		f.out.Write(idx[:])
	}
	for i := 2; i >= 0; i-- {
		emit('r', fixSlot0+uint32(i)) // LONG_BINPUT
		f.out.WriteByte('0')          // POP
	}
	f.out.WriteByte('(') // MARK
	for i := 0; i < 3; i++ {
		emit('j', fixSlot0+uint32(i)) // LONG_BINGET
	}
	f.out.WriteByte('t') // TUPLE
}
