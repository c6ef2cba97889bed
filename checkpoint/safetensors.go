// Package checkpoint reads and writes safetensors files: named tensors plus a
// string metadata map, the format diffinv's checkpoints use (the model
// config that built the tensors travels in the metadata, so a checkpoint alone
// rebuilds its network).
//
// The format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length n, n bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// end of the header) plus an optional "__metadata__" object of strings, then
// the raw little-endian tensor bytes.
//
// diffinv works in float32: Save writes F32, and Load converts F64, F16, BF16
// and the integer types to float32 (so PyTorch checkpoints in half precision
// import). A float32 save → load round trip is bit-exact. Files are written
// atomically: temp file in the same folder, fsync, rename.
package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/atomicfile"
)

// MetadataKey is the reserved header key of the metadata map.
const MetadataKey = "__metadata__"

// maxHeader bounds the JSON header a reader accepts (100 MB, as the
// reference implementation does), so a corrupt length cannot exhaust memory.
const maxHeader = 100 << 20

// dtypeSize gives the element size in bytes of every dtype Load converts.
var dtypeSize = map[string]int{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
	"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}

// headerEntry is one tensor's header record.
type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Write writes tensors (float32, any shape, contiguous) and metadata to w in
// safetensors format, names sorted so the same input gives the same bytes.
func Write(w io.Writer, tensors map[string]*tensor.Dense, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		if name == MetadataKey {
			return fmt.Errorf("checkpoint: tensor name %q is reserved for the metadata", name)
		}
		if name == "" {
			return fmt.Errorf("checkpoint: empty tensor name")
		}
		names = append(names, name)
	}
	sort.Strings(names)
	header := make(map[string]any, len(names)+1)
	var off int64
	for _, name := range names {
		t := tensors[name]
		if t == nil {
			return fmt.Errorf("checkpoint: tensor %q is nil", name)
		}
		if t.Dtype() != tensor.Float32 {
			return fmt.Errorf("checkpoint: tensor %q has dtype %v, want float32", name, t.Dtype())
		}
		if t.RequiresIterator() {
			return fmt.Errorf("checkpoint: tensor %q is a non-contiguous view, want a contiguous tensor", name)
		}
		shape := []int(t.Shape().Clone())
		if t.IsScalar() {
			shape = []int{}
		}
		n := int64(len(values(t)))
		header[name] = headerEntry{DType: "F32", Shape: shape, DataOffsets: [2]int64{off, off + 4*n}}
		off += 4 * n
	}
	if len(metadata) > 0 {
		header[MetadataKey] = metadata
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("checkpoint: encoding header: %w", err)
	}
	// Pad with spaces to a multiple of 8 so the data is aligned.
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(hb)))
	if _, err := w.Write(lenb[:]); err != nil {
		return fmt.Errorf("checkpoint: writing header length: %w", err)
	}
	if _, err := w.Write(hb); err != nil {
		return fmt.Errorf("checkpoint: writing header: %w", err)
	}
	buf := make([]byte, 0, 1<<16)
	for _, name := range names {
		for _, v := range values(tensors[name]) {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("checkpoint: writing tensor %q: %w", name, err)
				}
				buf = buf[:0]
			}
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("checkpoint: writing tensor data: %w", err)
		}
	}
	return nil
}

// values returns t's float32 values (one for a scalar).
func values(t *tensor.Dense) []float32 {
	if t.IsScalar() {
		if v, ok := t.Data().(float32); ok {
			return []float32{v}
		}
	}
	return t.Data().([]float32)
}

// Save writes tensors and metadata to path atomically: a temporary file in
// the same folder is written, fsynced and renamed over path, so a reader
// never sees a partial checkpoint.
func Save(path string, tensors map[string]*tensor.Dense, metadata map[string]string) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return Write(w, tensors, metadata) }); err != nil {
		return fmt.Errorf("checkpoint: save: %w", err)
	}
	return nil
}

// Info describes one tensor of a file as stored, before conversion.
type Info struct {
	// DType is the stored safetensors dtype ("F32", "F16", "BF16", ...).
	DType string
	// Shape is the tensor's shape ([] for a scalar).
	Shape []int
}

// File is the content of a safetensors file, every tensor converted to float32.
type File struct {
	// Tensors maps each name to its float32 tensor.
	Tensors map[string]*tensor.Dense
	// Stored records each tensor's dtype and shape as found in the file.
	Stored map[string]Info
	// Metadata is the header's __metadata__ map (empty if absent).
	Metadata map[string]string
}

// Load reads a safetensors file, converting every tensor to float32.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load %s: %w", path, err)
	}
	out, err := Read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load %s: %w", path, err)
	}
	return out, nil
}

// Read reads a safetensors stream of the given total size from r.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("file of %d bytes is too short for a safetensors header (8 bytes at least)", size)
	}
	var lenb [8]byte
	if _, err := r.ReadAt(lenb[:], 0); err != nil {
		return nil, fmt.Errorf("reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenb[:])
	if n > maxHeader || int64(n) > size-8 {
		return nil, fmt.Errorf("header length %d is beyond the file (%d bytes) or the %d-byte limit", n, size, maxHeader)
	}
	hb := make([]byte, n)
	if _, err := r.ReadAt(hb, 8); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hb))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decoding JSON header: %w", err)
	}
	dataStart := int64(8 + n)
	dataLen := size - dataStart
	out := &File{
		Tensors:  make(map[string]*tensor.Dense, len(raw)),
		Stored:   make(map[string]Info, len(raw)),
		Metadata: map[string]string{},
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	var buf []byte
	for _, name := range names {
		msg := raw[name]
		if name == MetadataKey {
			if err := json.Unmarshal(msg, &out.Metadata); err != nil {
				return nil, fmt.Errorf("decoding %s (want an object of strings): %w", MetadataKey, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("decoding header of tensor %q: %w", name, err)
		}
		es, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q has dtype %q, want one of F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL", name, e.DType)
		}
		numel := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q has negative dimension in shape %v", name, e.Shape)
			}
			numel *= int64(d)
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || end < b || end > dataLen {
			return nil, fmt.Errorf("tensor %q has data offsets [%d, %d] outside the %d data bytes", name, b, end, dataLen)
		}
		if end-b != numel*int64(es) {
			return nil, fmt.Errorf("tensor %q: %d data bytes for shape %v of %s, want %d", name, end-b, e.Shape, e.DType, numel*int64(es))
		}
		if int64(cap(buf)) < end-b {
			buf = make([]byte, end-b)
		}
		buf = buf[:end-b]
		if _, err := r.ReadAt(buf, dataStart+b); err != nil {
			return nil, fmt.Errorf("reading tensor %q: %w", name, err)
		}
		vals := make([]float32, numel)
		decode(e.DType, buf, vals)
		var t *tensor.Dense
		if len(e.Shape) == 0 {
			t = tensor.New(tensor.FromScalar(vals[0]))
		} else {
			t = tensor.New(tensor.WithShape(e.Shape...), tensor.WithBacking(vals))
		}
		out.Tensors[name] = t
		out.Stored[name] = Info{DType: e.DType, Shape: append([]int{}, e.Shape...)}
	}
	return out, nil
}

// decode converts little-endian values of dtype dt in b into dst.
func decode(dt string, b []byte, dst []float32) {
	le := binary.LittleEndian
	switch dt {
	case "F32":
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case "F64":
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	case "F16":
		for i := range dst {
			dst[i] = halfToFloat32(le.Uint16(b[2*i:]))
		}
	case "BF16":
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(b[2*i:])) << 16)
		}
	case "I64":
		for i := range dst {
			dst[i] = float32(int64(le.Uint64(b[8*i:])))
		}
	case "I32":
		for i := range dst {
			dst[i] = float32(int32(le.Uint32(b[4*i:])))
		}
	case "I16":
		for i := range dst {
			dst[i] = float32(int16(le.Uint16(b[2*i:])))
		}
	case "I8":
		for i := range dst {
			dst[i] = float32(int8(b[i]))
		}
	case "U8", "BOOL":
		for i := range dst {
			dst[i] = float32(b[i])
		}
	}
}

// halfToFloat32 converts an IEEE 754 binary16 value to float32 exactly
// (subnormals, infinities and NaN included).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: mant · 2^-24
		v := float32(mant) * float32(1.0/(1<<24))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	default:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	}
}

// Check compares tensors with the expected names and shapes and returns an
// error naming every missing, extra and misshaped tensor (nil if they match).
func Check(tensors map[string]*tensor.Dense, want map[string][]int) error {
	var missing, extra, bad []string
	for name, shape := range want {
		t, ok := tensors[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		got := []int(t.Shape())
		if t.IsScalar() {
			got = []int{}
		}
		if !slices.Equal(got, shape) {
			bad = append(bad, fmt.Sprintf("%s has shape %v, want %v", name, got, shape))
		}
	}
	for name := range tensors {
		if _, ok := want[name]; !ok {
			extra = append(extra, name)
		}
	}
	if len(missing)+len(extra)+len(bad) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(bad)
	msg := "checkpoint does not match the model:"
	if len(missing) > 0 {
		msg += fmt.Sprintf(" missing %d tensor(s) %s;", len(missing), list(missing))
	}
	if len(extra) > 0 {
		msg += fmt.Sprintf(" %d unexpected tensor(s) %s;", len(extra), list(extra))
	}
	if len(bad) > 0 {
		msg += fmt.Sprintf(" %d misshaped: %s;", len(bad), list(bad))
	}
	return fmt.Errorf("%s", msg[:len(msg)-1])
}

// list formats names for an error, eliding after the first ten.
func list(names []string) string {
	const max = 10
	if len(names) <= max {
		return fmt.Sprintf("%q", names)
	}
	return fmt.Sprintf("%q and %d more", names[:max], len(names)-max)
}

// LoadExpected loads path and checks it holds exactly the expected tensors
// (names and shapes), failing with an error that names each missing, extra
// or misshaped one.
func LoadExpected(path string, want map[string][]int) (*File, error) {
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := Check(f.Tensors, want); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return f, nil
}
