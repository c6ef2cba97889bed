//go:build torch

package torch

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
)

// tinyConfig loads engine/torch/testdata/tiny.yaml, the config of the
// state dicts scripts/torch/import_testdata.py saved with PyTorch.
func tinyConfig(t *testing.T) config.Model {
	t.Helper()
	c, err := config.Load(config.Sources{File: "testdata/tiny.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Model
}

// TestImportMatchesPyTorch imports the zip and legacy state dicts, writes
// diffinv checkpoints, runs them on this engine and compares with the
// output PyTorch computed from the same weights.
func TestImportMatchesPyTorch(t *testing.T) {
	cfg := tinyConfig(t)
	g, err := checkpoint.Load("testdata/tiny.golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, v := range tensors.F32(g.Tensors["t"]) {
		steps = append(steps, int(v))
	}
	for _, file := range []string{"tiny.zip.pt", "tiny.legacy.pt"} {
		t.Run(file, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "c.safetensors")
			n, err := Import(filepath.Join("testdata", file), cfg, out, map[string]string{"note": "x"})
			if err != nil {
				t.Fatal(err)
			}
			params, err := ParamsFor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(params) {
				t.Fatalf("imported %d tensors, the model has %d", n, len(params))
			}
			f, err := checkpoint.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if f.Metadata[FormatKey] != Format || f.Metadata[SourceKey] != file || f.Metadata["note"] != "x" {
				t.Errorf("metadata %v, want %s=%s and %s=%s", f.Metadata, FormatKey, Format, SourceKey, file)
			}
			back, err := ModelConfig(f.Metadata)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParamsFor(back); err != nil {
				t.Fatal(err)
			}
			if cj1, _ := ConfigJSON(back); true {
				cj0, _ := ConfigJSON(cfg)
				if cj0 != cj1 {
					t.Errorf("config round trip: %s, want %s", cj1, cj0)
				}
			}
			u, err := FromCheckpoint(out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			y, err := u.Forward(g.Tensors["x"], steps)
			if err != nil {
				t.Fatal(err)
			}
			e, err := relErr(y, g.Tensors["out"])
			if err != nil {
				t.Fatal(err)
			}
			if e > 1e-5 {
				t.Errorf("torch engine: output relative error %.3g vs PyTorch, want ≤ 1e-5", e)
			}
			nat, _, err := model.Load(out)
			if err != nil {
				t.Fatalf("the native engine cannot load the imported checkpoint: %v", err)
			}
			y2, err := nat.Forward(g.Tensors["x"], steps)
			if err != nil {
				t.Fatal(err)
			}
			e2, err := relErr(y2, g.Tensors["out"])
			if err != nil {
				t.Fatal(err)
			}
			if e2 > 1e-5 {
				t.Errorf("native engine: output relative error %.3g vs PyTorch, want ≤ 1e-5", e2)
			}
			t.Logf("relative error vs PyTorch: torch engine %.3g, native engine %.3g", e, e2)
		})
	}
}

// TestReadStateDictFormats checks that zip, legacy and float16 files give
// the same tensors (float16 within its rounding).
func TestReadStateDictFormats(t *testing.T) {
	zip, err := ReadStateDict("testdata/tiny.zip.pt")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		tol  float64 // relative, per element
	}{
		{"tiny.legacy.pt", 0},
		{"tiny.half.pt", math.Pow(2, -11)},
	} {
		t.Run(c.file, func(t *testing.T) {
			sd, err := ReadStateDict(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(sd) != len(zip) {
				t.Fatalf("%d tensors, the zip file has %d", len(sd), len(zip))
			}
			for name, want := range zip {
				got, ok := sd[name]
				if !ok {
					t.Fatalf("%s missing", name)
				}
				if err := tensors.SameShape(name, got, "zip "+name, want); err != nil {
					t.Fatal(err)
				}
				w := tensors.F32(want)
				for i, gv := range tensors.F32(got) {
					// float16's smallest normal is 2^-14: below it the
					// error is absolute.
					lim := c.tol * math.Max(math.Abs(float64(w[i])), math.Pow(2, -14))
					if math.Abs(float64(gv)-float64(w[i])) > lim {
						t.Fatalf("%s[%d] = %v, zip file has %v", name, i, gv, w[i])
					}
				}
			}
		})
	}
}

// TestCheckStateDictErrors checks that a missing, an unexpected and a
// misshaped tensor are each named in the error.
func TestCheckStateDictErrors(t *testing.T) {
	cfg := tinyConfig(t)
	base, err := ReadStateDict("testdata/tiny.zip.pt")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckStateDict(base, cfg); err != nil {
		t.Fatalf("the saved state dict does not check: %v", err)
	}
	clone := func() map[string]*tensor.Dense {
		m := make(map[string]*tensor.Dense, len(base))
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name   string
		edit   func(m map[string]*tensor.Dense)
		config func(c *config.Model)
		want   []string
	}{
		{"missing", func(m map[string]*tensor.Dense) { delete(m, "middle_block.1.qkv.weight") }, nil,
			[]string{"missing 1", "middle_block.1.qkv.weight"}},
		{"unexpected", func(m map[string]*tensor.Dense) { m["label_emb.weight"] = tensors.New(10, 16) }, nil,
			[]string{"1 unexpected", "label_emb.weight"}},
		{"misshaped", func(m map[string]*tensor.Dense) { m["out.2.weight"] = tensors.New(3, 4, 3, 3) }, nil,
			[]string{"misshaped", "out.2.weight has shape [3 4 3 3], want [6 4 3 3]"}},
		{"wrong config", nil, func(c *config.Model) { c.LearnSigma = false },
			[]string{"out.2.weight has shape [6 4 3 3], want [3 4 3 3]"}},
		{"DDPM architecture", func(m map[string]*tensor.Dense) {
			for k := range m {
				delete(m, k)
			}
			m["temb.dense.0.weight"] = tensors.New(16, 4)
			m["conv_in.weight"] = tensors.New(4, 3, 3, 3)
			m["down.0.block.0.norm1.weight"] = tensors.New(4)
		}, nil, []string{"DDPM architecture", "model.arch: ddpm"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := clone()
			if c.edit != nil {
				c.edit(m)
			}
			cf := cfg
			if c.config != nil {
				c.config(&cf)
			}
			err := CheckStateDict(m, cf)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestReadStateDictBadFiles checks errors for files that are not state dicts.
func TestReadStateDictBadFiles(t *testing.T) {
	cases := []struct{ name, path string }{
		{"missing file", "testdata/nope.pt"},
		{"not a pickle", "testdata/tiny.yaml"},
		{"safetensors", "testdata/tiny.golden.safetensors"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ReadStateDict(c.path); err == nil {
				t.Fatal("no error")
			} else {
				t.Log(err)
			}
		})
	}
}

// TestDecodeFloat checks the element conversions on exactly representable
// values, float16 subnormals, infinities and NaN included.
func TestDecodeFloat(t *testing.T) {
	cases := []struct {
		kind string
		b    []byte
		want float64
	}{
		{"Half", []byte{0x01, 0x00}, math.Ldexp(1, -24)},               // smallest subnormal
		{"Half", []byte{0xff, 0x03}, 1023 * math.Ldexp(1, -24)},        // largest subnormal
		{"Half", []byte{0x00, 0x04}, math.Ldexp(1, -14)},               // smallest normal
		{"Half", []byte{0x00, 0x3c}, 1},                                // 1
		{"Half", []byte{0x00, 0xc0}, -2},                               // -2
		{"Half", []byte{0xff, 0x7b}, 65504},                            // largest finite
		{"Half", []byte{0x00, 0x7c}, math.Inf(1)},                      // +Inf
		{"Half", []byte{0x01, 0x80}, -math.Ldexp(1, -24)},              // negative subnormal
		{"Half", []byte{0x00, 0x7e}, math.NaN()},                       // NaN
		{"BFloat16", []byte{0x80, 0x3f}, 1},                            // 1
		{"BFloat16", []byte{0x49, 0x40}, 3.140625},                     // 0x4049
		{"Double", []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x3f}, 1.5},          // 1.5
		{"Float", []byte{0x00, 0x00, 0x80, 0xbf}, -1},                  // -1
		{"Float", []byte{0x01, 0x00, 0x00, 0x00}, math.Ldexp(1, -149)}, // float32 subnormal
	}
	for _, c := range cases {
		got := float64(decodeFloat(c.kind, c.b))
		if math.IsNaN(c.want) {
			if !math.IsNaN(got) {
				t.Errorf("%s % x = %v, want NaN", c.kind, c.b, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s % x = %v, want %v", c.kind, c.b, got, c.want)
		}
	}
}

// TestReadStateDictViews reads views.pt (pickle protocol 4, a state dict
// nested under "state_dict" beside a non-tensor entry): views of one
// storage with an offset and transposed strides, and float16 subnormals.
func TestReadStateDictViews(t *testing.T) {
	sd, err := ReadStateDict("testdata/views.pt")
	if err != nil {
		t.Fatal(err)
	}
	base := func(i, j, k int) float32 { return float32(i*12 + j*4 + k) }
	cases := []struct {
		name  string
		shape []int
		want  func(idx []int) float32
	}{
		{"a", []int{2, 3, 4}, func(x []int) float32 { return base(x[0], x[1], x[2]) }},
		{"t", []int{4, 3, 2}, func(x []int) float32 { return base(x[2], x[1], x[0]) }},
		{"s", []int{3, 4}, func(x []int) float32 { return base(1, x[0], x[1]) }},
	}
	for _, c := range cases {
		d, ok := sd[c.name]
		if !ok {
			t.Fatalf("%s missing", c.name)
		}
		if !slices.Equal(d.Shape(), c.shape) {
			t.Fatalf("%s has shape %v, want %v", c.name, d.Shape(), c.shape)
		}
		vals := tensors.F32(d)
		idx := make([]int, len(c.shape))
		for k := range vals {
			if vals[k] != c.want(idx) {
				t.Fatalf("%s%v = %v, want %v", c.name, idx, vals[k], c.want(idx))
			}
			for i := len(idx) - 1; i >= 0; i-- {
				if idx[i]++; idx[i] < c.shape[i] {
					break
				}
				idx[i] = 0
			}
		}
	}
	// float16(1e-5) = 168·2^-24 and float16(3e-7) = 5·2^-24 (subnormals).
	want := []float32{168 * float32(math.Ldexp(1, -24)), -2.5, 5 * float32(math.Ldexp(1, -24))}
	for i, v := range tensors.F32(sd["h"]) {
		if v != want[i] {
			t.Errorf("h[%d] = %v, want %v", i, v, want[i])
		}
	}
}

// TestStripDataParallel checks that the "module." prefix goes only when
// every name has it.
func TestStripDataParallel(t *testing.T) {
	x := tensors.New(1)
	cases := []struct {
		in, want []string
	}{
		{[]string{"module.a.weight", "module.b"}, []string{"a.weight", "b"}},
		{[]string{"module.a.weight", "b"}, []string{"module.a.weight", "b"}},
		{[]string{"a", "b"}, []string{"a", "b"}},
	}
	for _, c := range cases {
		in := map[string]*tensor.Dense{}
		for _, n := range c.in {
			in[n] = x
		}
		got := stripDataParallel(in)
		if len(got) != len(c.want) {
			t.Fatalf("%v → %d names, want %v", c.in, len(got), c.want)
		}
		for _, n := range c.want {
			if got[n] != x {
				t.Errorf("%v → %v, want %v", c.in, got, c.want)
			}
		}
	}
}
