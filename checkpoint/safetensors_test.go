package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

func randTensor(rng *rand.Rand, shape ...int) *tensor.Dense {
	n := 1
	for _, s := range shape {
		n *= s
	}
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
}

func TestRoundTripBitExact(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	special := []float32{
		0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00123), // NaN with a payload
		math.Float32frombits(1),          // smallest subnormal
		math.MaxFloat32, -math.SmallestNonzeroFloat32,
	}
	in := map[string]*tensor.Dense{
		"conv.weight": randTensor(rng, 4, 3, 3, 3),
		"conv.bias":   randTensor(rng, 4),
		"special":     tensor.New(tensor.WithShape(len(special)), tensor.WithBacking(special)),
		"a.b.c.0.d":   randTensor(rng, 2, 1, 5),
		"scalar":      tensor.New(tensor.FromScalar(float32(3.25))),
		"big":         randTensor(rng, 300, 301), // crosses the write buffer
	}
	meta := map[string]string{"config": `{"image_size": 28}`, "note": "ünïcode ✓"}
	path := filepath.Join(t.TempDir(), "ck.safetensors")
	if err := Save(path, in, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(in) {
		t.Fatalf("loaded %d tensors, want %d", len(f.Tensors), len(in))
	}
	for name, want := range in {
		got, ok := f.Tensors[name]
		if !ok {
			t.Fatalf("tensor %q missing after round trip", name)
		}
		if !got.Shape().Eq(want.Shape()) {
			t.Fatalf("%s: shape %v, want %v", name, got.Shape(), want.Shape())
		}
		var gd, wd []float32
		if want.IsScalar() {
			gd, wd = []float32{got.ScalarValue().(float32)}, []float32{want.ScalarValue().(float32)}
		} else {
			gd, wd = got.Data().([]float32), want.Data().([]float32)
		}
		for i := range wd {
			if math.Float32bits(gd[i]) != math.Float32bits(wd[i]) {
				t.Fatalf("%s[%d]: bits %08x, want %08x", name, i, math.Float32bits(gd[i]), math.Float32bits(wd[i]))
			}
		}
		if f.Stored[name].DType != "F32" {
			t.Errorf("%s stored as %s, want F32", name, f.Stored[name].DType)
		}
	}
	for k, v := range meta {
		if f.Metadata[k] != v {
			t.Errorf("metadata %q = %q, want %q", k, f.Metadata[k], v)
		}
	}
	// Saving the loaded file again gives the same bytes.
	path2 := filepath.Join(t.TempDir(), "ck2.safetensors")
	if err := Save(path2, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(path)
	b2, _ := os.ReadFile(path2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("save → load → save changed the file bytes")
	}
	// The header length is a multiple of 8 (data alignment).
	if n := binary.LittleEndian.Uint64(b1[:8]); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
}

func TestSaveAtomicOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.safetensors")
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 2; i++ {
		if err := Save(path, map[string]*tensor.Dense{"w": randTensor(rng, 3)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("folder holds %v, want only ck.safetensors (no temp files left)", names)
	}
	// A failing save (float64 tensor) leaves the old file intact and no temp file.
	bad := map[string]*tensor.Dense{"w": tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))}
	if err := Save(path, bad, nil); err == nil || !strings.Contains(err.Error(), `"w"`) {
		t.Fatalf("saving a float64 tensor: err %v, want an error naming \"w\"", err)
	}
	if f, err := Load(path); err != nil || len(f.Tensors) != 1 {
		t.Fatalf("old checkpoint damaged by a failed save: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("failed save left %d files, want 1", len(ents))
	}
}

// rawFile builds a safetensors file by hand from header entries and data.
func rawFile(t *testing.T, header map[string]any, data []byte) []byte {
	t.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, uint64(len(hb)))
	out.Write(hb)
	out.Write(data)
	return out.Bytes()
}

func TestConversions(t *testing.T) {
	le := binary.LittleEndian
	var data []byte
	// F16: 1, -2, 2^-24 (smallest subnormal), 65504 (max), +inf, 0.333251953125 (0x3555).
	f16 := []uint16{0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x3555}
	f16want := []float32{1, -2, float32(math.Ldexp(1, -24)), 65504, float32(math.Inf(1)), 0.333251953125}
	for _, h := range f16 {
		data = le.AppendUint16(data, h)
	}
	// BF16: 1, -0.5, 3.140625 (0x4049).
	bf16 := []uint16{0x3f80, 0xbf00, 0x4049}
	bf16want := []float32{1, -0.5, 3.140625}
	for _, h := range bf16 {
		data = le.AppendUint16(data, h)
	}
	// F64: 0.1 rounds to float32(0.1); 1e300 overflows to +inf.
	f64want := []float32{float32(0.1), float32(math.Inf(1))}
	for _, v := range []float64{0.1, 1e300} {
		data = le.AppendUint64(data, math.Float64bits(v))
	}
	// I64: -3, 7.
	for _, v := range []int64{-3, 7} {
		data = le.AppendUint64(data, uint64(v))
	}
	o1 := int64(2 * len(f16))
	o2 := o1 + int64(2*len(bf16))
	o3 := o2 + 16
	o4 := o3 + 16
	header := map[string]any{
		"h":            map[string]any{"dtype": "F16", "shape": []int{2, 3}, "data_offsets": []int64{0, o1}},
		"b":            map[string]any{"dtype": "BF16", "shape": []int{3}, "data_offsets": []int64{o1, o2}},
		"d":            map[string]any{"dtype": "F64", "shape": []int{2}, "data_offsets": []int64{o2, o3}},
		"i":            map[string]any{"dtype": "I64", "shape": []int{2}, "data_offsets": []int64{o3, o4}},
		"__metadata__": map[string]string{"format": "pt"},
	}
	raw := rawFile(t, header, data)
	f, err := Read(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		dtype string
		want  []float32
	}{
		{"h", "F16", f16want},
		{"b", "BF16", bf16want},
		{"d", "F64", f64want},
		{"i", "I64", []float32{-3, 7}},
	}
	for _, c := range cases {
		got := f.Tensors[c.name].Data().([]float32)
		for i := range c.want {
			if got[i] != c.want[i] {
				t.Errorf("%s (%s)[%d] = %v, want %v", c.name, c.dtype, i, got[i], c.want[i])
			}
		}
		if f.Stored[c.name].DType != c.dtype {
			t.Errorf("%s stored dtype %q, want %q", c.name, f.Stored[c.name].DType, c.dtype)
		}
	}
	if s := f.Tensors["h"].Shape(); !s.Eq(tensor.Shape{2, 3}) {
		t.Errorf("h shape %v, want (2, 3)", s)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v, want format=pt", f.Metadata)
	}
}

func TestReadRejectsCorruptFiles(t *testing.T) {
	good := map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int64{0, 8}}}
	cases := []struct {
		name   string
		raw    []byte
		substr string
	}{
		{"short", []byte{1, 2, 3}, "too short"},
		{"huge header length", append(binary.LittleEndian.AppendUint64(nil, 1<<40), make([]byte, 16)...), "header length"},
		{"bad json", append(binary.LittleEndian.AppendUint64(nil, 4), []byte("{{{{")...), "JSON"},
		{"offsets beyond data", rawFile(t, good, make([]byte, 4)), `"w"`},
		{"size mismatch", rawFile(t, map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{3}, "data_offsets": []int64{0, 8}}}, make([]byte, 8)), `"w"`},
		{"unknown dtype", rawFile(t, map[string]any{"w": map[string]any{"dtype": "C64", "shape": []int{1}, "data_offsets": []int64{0, 8}}}, make([]byte, 8)), "C64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.raw), int64(len(c.raw)))
			if err == nil || !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("err = %v, want an error containing %q", err, c.substr)
			}
		})
	}
}

func TestCheckNamesTheOffender(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	want := map[string][]int{"a.weight": {4, 2}, "a.bias": {4}, "b.weight": {3}}
	full := func() map[string]*tensor.Dense {
		return map[string]*tensor.Dense{"a.weight": randTensor(rng, 4, 2), "a.bias": randTensor(rng, 4), "b.weight": randTensor(rng, 3)}
	}
	if err := Check(full(), want); err != nil {
		t.Fatalf("matching tensors: %v", err)
	}
	cases := []struct {
		name   string
		edit   func(m map[string]*tensor.Dense)
		substr []string
	}{
		{"missing", func(m map[string]*tensor.Dense) { delete(m, "a.bias") }, []string{"missing", "a.bias"}},
		{"extra", func(m map[string]*tensor.Dense) { m["c.weight"] = randTensor(rng, 1) }, []string{"unexpected", "c.weight"}},
		{"misshaped", func(m map[string]*tensor.Dense) { m["a.weight"] = randTensor(rng, 2, 4) }, []string{"misshaped", "a.weight", "[2 4]", "[4 2]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := full()
			c.edit(m)
			path := filepath.Join(t.TempDir(), "x.safetensors")
			if err := Save(path, m, nil); err != nil {
				t.Fatal(err)
			}
			_, err := LoadExpected(path, want)
			if err == nil {
				t.Fatal("LoadExpected accepted a mismatching checkpoint")
			}
			for _, s := range c.substr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestReadsPythonWrittenFile reads a golden written by bench/pytorch/unet.py's
// hand-written safetensors writer.
func TestReadsPythonWrittenFile(t *testing.T) {
	f, err := Load(filepath.Join("..", "model", "testdata", "tiny_c.weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	w, ok := f.Tensors["input_blocks.0.0.weight"]
	if !ok {
		t.Fatal("input_blocks.0.0.weight missing from the PyTorch state dict")
	}
	if !w.Shape().Eq(tensor.Shape{8, 1, 3, 3}) {
		t.Errorf("input_blocks.0.0.weight shape %v, want (8, 1, 3, 3)", w.Shape())
	}
	if !strings.Contains(f.Metadata["config"], `"image_size": 8`) {
		t.Errorf("metadata config %q lacks image_size 8", f.Metadata["config"])
	}
}

// TestFloat32ToHalf checks the binary16 rounding: every binary16 value
// (NaNs apart) survives float32 and back, and random float32 values of all
// magnitudes land on the nearest binary16 value, ties to the even one.
func TestFloat32ToHalf(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			if got, _ := float32ToHalf(halfToFloat32(uint16(h))); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x, not a NaN", h, got)
			}
			continue
		}
		got, ok := float32ToHalf(halfToFloat32(uint16(h)))
		if got != uint16(h) || !ok {
			t.Fatalf("binary16 %#04x came back as %#04x (ok %v)", h, got, ok)
		}
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(rng.Uint32())
		if f != f || math.Abs(float64(f)) >= 65520 {
			continue
		}
		h, ok := float32ToHalf(f)
		if !ok {
			t.Fatalf("%g: reported out of range", f)
		}
		got := float64(halfToFloat32(h))
		d := math.Abs(got - float64(f))
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7c00 == 0x7c00 || nb&0x7fff == 0x7fff || (h&0x7fff == 0 && nb == h-1) {
				continue // past the largest finite value or across zero's sign
			}
			dn := math.Abs(float64(halfToFloat32(nb)) - float64(f))
			if dn < d || (dn == d && h&1 == 1) {
				t.Fatalf("%g rounded to %#04x (%g), but %#04x (%g) is nearer or the even tie", f, h, got, nb, halfToFloat32(nb))
			}
		}
	}
	ties := []struct {
		f    float32
		want uint16
	}{
		{0.5 / (1 << 24), 0x0000}, {1.5 / (1 << 24), 0x0002}, {2.5 / (1 << 24), 0x0002}, // subnormal ties
		{-3.5 / (1 << 24), 0x8004}, {1023.5 / (1 << 24), 0x0400}, // the last one rounds up to the smallest normal
		{1 + 1.0/(1<<11), 0x3c00}, {1 + 3.0/(1<<11), 0x3c02}, {65504 + 16, 0x7c00}, // normal ties; 65520 overflows
	}
	for _, tc := range ties {
		if h, _ := float32ToHalf(tc.f); h != tc.want {
			t.Errorf("tie %g rounded to %#04x, want %#04x", tc.f, h, tc.want)
		}
	}
	for _, f := range []float32{65520, -70000, math.MaxFloat32} {
		if _, ok := float32ToHalf(f); ok {
			t.Errorf("%g: not reported as beyond float16's range", f)
		}
	}
	if h, ok := float32ToHalf(65519); !ok || h != 0x7bff {
		t.Errorf("65519 rounded to %#04x (ok %v), want 0x7bff (65504)", h, ok)
	}
}

// TestWriteAsF16 writes tensors as F16, reads them back through Read and
// checks each value's relative error (≤ 2^-11 in the normal range), the
// stored dtype, the halved data size, and the range error.
func TestWriteAsF16(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	vals := make([]float32, 1000)
	for i := range vals {
		vals[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.Intn(7)-4)))
	}
	ts := map[string]*tensor.Dense{
		"w": tensor.New(tensor.WithShape(10, 100), tensor.WithBacking(vals)),
		"s": tensor.New(tensor.FromScalar(float32(0.1))),
	}
	var b32, b16 bytes.Buffer
	if err := Write(&b32, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteAs(&b16, ts, map[string]string{"k": "v"}, "F16"); err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(b16.Bytes()), int64(b16.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Stored["w"].DType != "F16" || f.Metadata["k"] != "v" {
		t.Fatalf("stored %+v, metadata %v", f.Stored["w"], f.Metadata)
	}
	if d32, d16 := b32.Len(), b16.Len(); d32-d16 < 2*1001-16 {
		t.Fatalf("F16 file %d bytes, F32 %d: not about half the data", d16, d32)
	}
	got := f.Tensors["w"].Data().([]float32)
	for i, v := range vals {
		if math.Abs(float64(v)) < 6.2e-5 { // binary16 subnormals: absolute error ≤ 2^-25
			if d := math.Abs(float64(got[i] - v)); d > 1.0/(1<<25) {
				t.Fatalf("element %d: %g read back as %g", i, v, got[i])
			}
			continue
		}
		if r := math.Abs(float64(got[i]-v) / float64(v)); r > 1.0/(1<<11) {
			t.Fatalf("element %d: %g read back as %g (relative error %.3g > 2^-11)", i, v, got[i], r)
		}
	}
	vals[7] = 1e5
	err = WriteAs(io.Discard, ts, nil, "F16")
	if err == nil || !strings.Contains(err.Error(), `"w" element 7`) {
		t.Fatalf("error %v, want one naming tensor w element 7", err)
	}
	if err := WriteAs(io.Discard, ts, nil, "F8"); err == nil || !strings.Contains(err.Error(), "F8") {
		t.Fatalf("error %v, want one naming the dtype F8", err)
	}
}
