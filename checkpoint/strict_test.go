package checkpoint

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gorgonia.org/tensor"
)

// withHeader builds a file from a literal header string and data bytes.
func withHeader(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

// TestReadIsStrict covers issue 19 item 5: every file here was accepted
// before (some loading as zeros or shifted tensors) and must now be an
// error naming what is wrong.
func TestReadIsStrict(t *testing.T) {
	one := []byte{0, 0, 0x80, 0x3f} // 1.0f
	w := `"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`
	cases := []struct {
		name, substr string
		raw          []byte
	}{
		// The header length runs past the JSON into the data: the data
		// offsets would shift and the tensor load as garbage or zeros.
		{"length beyond JSON", "after its JSON object", func() []byte {
			h := "{" + w + "}"
			b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)+4))
			b = append(b, h...)
			return append(b, append(make([]byte, 4), one...)...)
		}()},
		{"second JSON value", "after its JSON object", withHeader("{"+w+"}{}", one)},
		{"garbage after JSON", "after its JSON object", withHeader("{"+w+"}x", one)},
		{"leading space", "start with '{'", withHeader(" {"+w+"}", one)},
		{"not an object", "start with '{'", withHeader("[1]", nil)},
		{"duplicate tensor", `"w" twice`, withHeader("{"+w+","+w+"}", one)},
		{"overlap", "overlaps", withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8))},
		{"same range twice", "overlaps", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4))},
		{"gap", "unused", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8))},
		{"trailing data", "after them", withHeader("{"+w+"}", make([]byte, 8))},
		{"overflowing shape", "dimension 4611686018427387905", withHeader(`{"w":{"dtype":"F32","shape":[4611686018427387905,4],"data_offsets":[0,16]}}`, make([]byte, 16))},
		{"overflowing product", "more elements", withHeader(`{"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}`, make([]byte, 4))},
		{"negative dimension", "dimension -1", withHeader(`{"w":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}}`, make([]byte, 16))},
		{"three offsets", "want [begin, end]", withHeader(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 4))},
		{"missing shape", "lacks", withHeader(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, one)},
		{"unknown field", "unknown field", withHeader(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, one)},
		{"empty name", "empty name", withHeader(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, one)},
		{"metadata not strings", "__metadata__", withHeader(`{"__metadata__":{"a":1},`+w+`}`, one)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(c.raw), int64(len(c.raw)))
			if err == nil || !strings.Contains(err.Error(), c.substr) {
				var got map[string]*tensor.Dense
				if f != nil {
					got = f.Tensors
				}
				t.Fatalf("err = %v (tensors %v), want an error containing %q", err, got, c.substr)
			}
		})
	}

	// What the format allows stays accepted: space padding after the
	// JSON, zero-sized tensors, tensors stored out of name order.
	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"space padding", withHeader("{"+w+"}   ", one)},
		{"empty tensor", withHeader(`{"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},`+w+`}`, one)},
		{"reversed order", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, append(one, one...))},
		{"no tensors", withHeader(`{"__metadata__":{"k":"v"}}`, nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Read(bytes.NewReader(c.raw), int64(len(c.raw))); err != nil {
				t.Fatalf("valid file refused: %v", err)
			}
		})
	}
}

// TestLoadRefusesNonRegularFiles covers issue 19 item 10: /dev/zero (or a
// named pipe) as a checkpoint used to hang; now it is refused at once.
func TestLoadRefusesNonRegularFiles(t *testing.T) {
	paths := []string{"/dev/zero", t.TempDir()}
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		paths = append(paths, fifo)
	}
	for _, p := range paths {
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "want a regular file") || !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%s) = %v, want an error naming it and asking for a regular file", p, err)
		}
	}
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
}
