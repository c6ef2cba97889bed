package checkpoint

import (
	"bytes"
	"math"
	"math/rand"
	"slices"
	"testing"

	"gorgonia.org/tensor"
)

// FuzzRead feeds arbitrary bytes to Read: it must never panic or allocate
// beyond the input's size (every tensor's bytes lie inside the file), and
// whatever it accepts must be self-consistent: each tensor's element count
// matches its recorded shape, and a file of float32 tensors re-encodes to
// a file that reads back bit-identically. Seeds: f.Add below plus
// testdata/fuzz/FuzzRead; `go test` runs them all.
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	rng := rand.New(rand.NewSource(1))
	if err := Write(&buf, map[string]*tensor.Dense{"a": randTensor(rng, 2, 3), "b": randTensor(rng, 1)}, map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	w := `"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`
	f.Add(withHeader("{"+w+"}", []byte{0, 0, 0x80, 0x3f}))
	f.Add(withHeader(`{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, []byte{1, 2, 3, 4}))
	f.Add(withHeader(`{"w":{"dtype":"F32","shape":[4611686018427387905,4],"data_offsets":[0,16]}}`, make([]byte, 16)))
	f.Add(withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(withHeader(`{"e":{"dtype":"U8","shape":[0,3],"data_offsets":[0,0]}}`, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		file, err := Read(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			if file != nil {
				t.Fatalf("non-nil result with error %v", err)
			}
			return
		}
		total := 0
		for name, tt := range file.Tensors {
			st := file.Stored[name]
			n := 1
			for _, d := range st.Shape {
				n *= d
			}
			if tt.IsScalar() {
				if len(st.Shape) != 0 {
					t.Fatalf("tensor %q: scalar for shape %v", name, st.Shape)
				}
			} else if tt.Shape().TotalSize() != n || !slices.Equal([]int(tt.Shape()), st.Shape) {
				t.Fatalf("tensor %q: shape %v, stored %v", name, tt.Shape(), st.Shape)
			}
			total += n * dtypeSize[st.DType]
		}
		if total > len(in) {
			t.Fatalf("accepted %d tensor bytes from a %d-byte file", total, len(in))
		}
		for _, st := range file.Stored {
			if st.DType != "F32" {
				return
			}
		}
		var re bytes.Buffer
		if err := Write(&re, file.Tensors, file.Metadata); err != nil {
			return // e.g. a zero-sized tensor Write cannot express
		}
		back, err := Read(bytes.NewReader(re.Bytes()), int64(re.Len()))
		if err != nil {
			t.Fatalf("re-encoded file does not read back: %v", err)
		}
		for name, tt := range file.Tensors {
			a, b := values(tt), values(back.Tensors[name])
			for i := range a {
				if mathBits(a[i]) != mathBits(b[i]) {
					t.Fatalf("tensor %q element %d: %v then %v", name, i, a[i], b[i])
				}
			}
		}
	})
}

func mathBits(f float32) uint32 { return math.Float32bits(f) }
