package model

import (
	"math"
	"math/rand"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
)

// tinyConfig is a small model with every block kind: attention at 4 px,
// scale-shift norm, conv resampling.
func tinyConfig() config.Model {
	return config.Model{
		ImageSize: 8, InChannels: 2, NumChannels: 8, ChannelMult: []int{1, 2},
		NumResBlocks: 1, AttentionResolutions: []int{4}, NumHeads: 2, NumHeadChannels: -1,
		NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true, Dropout: 0.1,
	}
}

// randomise gives every parameter (the zero-initialised ones too) random
// values, so every path through the network matters.
func randomise(u *UNet, rng *rand.Rand) {
	for _, p := range u.Params() {
		d := tensors.F32(p)
		for i := range d {
			d[i] = float32(0.3 * rng.NormFloat64())
		}
	}
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// TestEpsVJPFiniteDifferences checks ⟨vjp, d⟩ against the central
// difference of ⟨v, ε(x + h·d)⟩ along random directions d, for configs
// covering both embedding modes and both resampling modes.
func TestEpsVJPFiniteDifferences(t *testing.T) {
	cfgB := tinyConfig()
	cfgB.UseScaleShiftNorm, cfgB.ResblockUpdown, cfgB.LearnSigma = false, true, true
	cfgC := tinyConfig()
	cfgC.ConvResample, cfgC.AttentionResolutions = false, nil
	cases := []struct {
		name string
		cfg  config.Model
	}{{"scale-shift, conv resample", tinyConfig()}, {"resblock updown, learn sigma", cfgB}, {"pool and nearest", cfgC}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(7))
			u, err := New(c.cfg, rng)
			if err != nil {
				t.Fatal(err)
			}
			randomise(u, rng)
			x := tensors.Randn(rng, 2, c.cfg.InChannels, 8, 8)
			v := tensors.Randn(rng, 2, c.cfg.InChannels, 8, 8)
			ts := []int{10, 900}
			_, vjp, err := u.EpsVJP(x, ts, v)
			if err != nil {
				t.Fatal(err)
			}
			f := func(xs *tensor.Dense) float64 {
				e, err := u.Eps(xs, ts)
				if err != nil {
					t.Fatal(err)
				}
				return dot(tensors.F32(e), tensors.F32(v))
			}
			const h = 1e-2
			for k := 0; k < 3; k++ {
				d := tensors.Randn(rng, 2, c.cfg.InChannels, 8, 8)
				xp, xm := tensors.Clone(x), tensors.Clone(x)
				for i, dv := range tensors.F32(d) {
					tensors.F32(xp)[i] += h * dv
					tensors.F32(xm)[i] -= h * dv
				}
				fd := (f(xp) - f(xm)) / (2 * h)
				ad := dot(tensors.F32(vjp), tensors.F32(d))
				if math.Abs(fd-ad) > 1e-2*math.Max(1, math.Abs(ad)) {
					t.Errorf("direction %d: ⟨vjp, d⟩ = %.6g, finite difference %.6g", k, ad, fd)
				}
			}
		})
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	cfg := tinyConfig()
	u, err := New(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	randomise(u, rng)
	path := filepath.Join(t.TempDir(), "unet.safetensors")
	if err := u.Save(path, map[string]string{"step": "42"}); err != nil {
		t.Fatal(err)
	}
	v, meta, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta["step"] != "42" {
		t.Errorf("metadata step = %q, want 42", meta["step"])
	}
	got := v.Config()
	if got.ImageSize != cfg.ImageSize || got.NumHeads != cfg.NumHeads || got.Dropout != cfg.Dropout ||
		len(got.ChannelMult) != 2 || got.ChannelMult[1] != 2 || len(got.AttentionResolutions) != 1 || !got.UseScaleShiftNorm {
		t.Errorf("config after round trip %+v, want %+v", got, cfg)
	}
	for name, p := range u.Params() {
		q := v.Params()[name]
		for i, a := range tensors.F32(p) {
			if math.Float32bits(a) != math.Float32bits(tensors.F32(q)[i]) {
				t.Fatalf("%s[%d] changed in the round trip", name, i)
			}
		}
	}
	x := tensors.Randn(rng, 3, 2, 8, 8)
	ts := []int{0, 500, 999}
	e1, err := u.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := v.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range tensors.F32(e1) {
		if a != tensors.F32(e2)[i] {
			t.Fatalf("ε[%d] differs after the round trip: %v vs %v", i, a, tensors.F32(e2)[i])
		}
	}
	w, err := New(cfg, rand.New(rand.NewSource(99)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.LoadInto(path); err != nil {
		t.Fatal(err)
	}
	e3, err := w.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range tensors.F32(e1) {
		if a != tensors.F32(e3)[i] {
			t.Fatalf("ε[%d] differs after LoadInto: %v vs %v", i, a, tensors.F32(e3)[i])
		}
	}
	if err := u.Save(path, map[string]string{ConfigKey: "x"}); err == nil {
		t.Error("Save accepted a metadata entry that overwrites the config")
	}
}

func TestLoadRejectsMismatchedCheckpoints(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	u, err := New(tinyConfig(), rng)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := EncodeConfig(u.Config())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		edit   func(m map[string]*tensor.Dense)
		meta   map[string]string
		substr []string
	}{
		{"missing", func(m map[string]*tensor.Dense) { delete(m, "middle_block.1.qkv.weight") }, nil, []string{"missing", "middle_block.1.qkv.weight"}},
		{"extra", func(m map[string]*tensor.Dense) { m["label_emb.weight"] = tensors.New(10, 32) }, nil, []string{"unexpected", "label_emb.weight"}},
		{"misshaped", func(m map[string]*tensor.Dense) { m["out.2.weight"] = tensors.New(2, 8, 1, 1) }, nil, []string{"misshaped", "out.2.weight", "[2 8 1 1]", "[2 8 3 3]"}},
		{"no config", func(map[string]*tensor.Dense) {}, map[string]string{}, []string{"config"}},
		{"unknown config key", func(map[string]*tensor.Dense) {}, map[string]string{ConfigKey: `{"image_size": 8, "colour": true}`}, []string{"colour"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := map[string]*tensor.Dense{}
			for k, v := range u.Params() {
				m[k] = v
			}
			c.edit(m)
			meta := c.meta
			if meta == nil {
				meta = map[string]string{ConfigKey: cs}
			}
			path := filepath.Join(t.TempDir(), "bad.safetensors")
			if err := checkpoint.Save(path, m, meta); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(path)
			if err == nil {
				t.Fatal("Load accepted a mismatching checkpoint")
			}
			for _, s := range c.substr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			if c.meta == nil {
				if err := u.LoadInto(path); err == nil {
					t.Error("LoadInto accepted a mismatching checkpoint")
				}
			}
		})
	}
}

// TestGraphsShareParameters checks that graphs built before a weight change
// see it, and that graphs of different batch sizes agree.
func TestGraphsShareParameters(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	cfg := tinyConfig()
	u, err := New(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.Randn(rng, 2, 2, 8, 8)
	ts := []int{3, 700}
	before, err := u.Eps(x, ts) // builds and caches the batch-2 graph
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(cfg, rand.New(rand.NewSource(6)))
	if err != nil {
		t.Fatal(err)
	}
	randomise(w, rng)
	if err := u.CopyParamsFrom(w); err != nil {
		t.Fatal(err)
	}
	after, err := u.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := w.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	if relErr(tensors.F32(after), tensors.F32(before)) < 1e-3 {
		t.Fatal("the cached graph did not see the new weights")
	}
	for i, a := range tensors.F32(after) {
		if a != tensors.F32(want)[i] {
			t.Fatalf("ε[%d] = %v after loading weights, a fresh model gives %v", i, a, tensors.F32(want)[i])
		}
	}
	// Batch 1 on the second image equals the second row of batch 2.
	x1 := tensors.FromSlice(append([]float32(nil), tensors.F32(x)[2*64:]...), 1, 2, 8, 8)
	e1, err := u.Eps(x1, ts[1:])
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(tensors.F32(e1), tensors.F32(after)[2*64:]); e > 1e-5 {
		t.Errorf("batch-1 graph differs from row 1 of the batch-2 graph by %.3g", e)
	}
}

// normName matches the GroupNorm parameters of guided-diffusion's UNet.
var normName = regexp.MustCompile(`(in_layers\.0|out_layers\.0|\.norm|^out\.0)\.(weight|bias)$`)

func TestNewInitialisation(t *testing.T) {
	cfg := tinyConfig()
	u1, err := New(cfg, rand.New(rand.NewSource(9)))
	if err != nil {
		t.Fatal(err)
	}
	u2, _ := New(cfg, rand.New(rand.NewSource(9)))
	u3, _ := New(cfg, rand.New(rand.NewSource(10)))
	same, diff := true, false
	for _, ps := range u1.ParamSpecs() {
		d := tensors.F32(u1.Params()[ps.Name])
		for i, v := range d {
			same = same && v == tensors.F32(u2.Params()[ps.Name])[i]
			diff = diff || v != tensors.F32(u3.Params()[ps.Name])[i]
		}
		zero := strings.HasSuffix(strings.TrimSuffix(strings.TrimSuffix(ps.Name, ".weight"), ".bias"), "out_layers.3") ||
			strings.Contains(ps.Name, "proj_out") || strings.HasPrefix(ps.Name, "out.2")
		norm := normName.MatchString(ps.Name)
		if ps.ZeroModule() != zero {
			t.Errorf("%s: ZeroModule() = %v, want %v", ps.Name, ps.ZeroModule(), zero)
		}
		var maxAbs float64
		for _, v := range d {
			maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
		}
		switch {
		case zero:
			if maxAbs != 0 {
				t.Errorf("%s: max |w| = %v, want zero (zero_module)", ps.Name, maxAbs)
			}
		case norm && strings.HasSuffix(ps.Name, ".weight"):
			for _, v := range d {
				if v != 1 {
					t.Fatalf("GroupNorm gain %s holds %v, want 1", ps.Name, v)
				}
			}
		case norm:
			if maxAbs != 0 {
				t.Errorf("GroupNorm shift %s: max |b| = %v, want 0", ps.Name, maxAbs)
			}
		default:
			fan := 1
			if strings.HasSuffix(ps.Name, ".weight") {
				for _, s := range ps.Shape[1:] {
					fan *= s
				}
			} else {
				w := u1.Params()[strings.TrimSuffix(ps.Name, ".bias")+".weight"].Shape()
				for _, s := range w[1:] {
					fan *= s
				}
			}
			bound := 1 / math.Sqrt(float64(fan))
			if maxAbs > bound || (len(d) >= 64 && maxAbs < 0.8*bound) {
				t.Errorf("%s: max |w| = %.4g, want ≤ 1/√fan_in = %.4g and close to it", ps.Name, maxAbs, bound)
			}
		}
	}
	if !same {
		t.Error("the same seed gave different weights")
	}
	if !diff {
		t.Error("different seeds gave the same weights")
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(c *config.Model)
		field string
	}{
		{"size not divisible", func(c *config.Model) { c.ImageSize = 9 }, "image_size"},
		{"groups", func(c *config.Model) { c.NumGroups = 3 }, "num_groups"},
		{"attention side", func(c *config.Model) { c.AttentionResolutions = []int{3} }, "attention_resolutions"},
		{"heads", func(c *config.Model) { c.NumHeads = 3 }, "num_heads"},
		{"head channels", func(c *config.Model) { c.NumHeadChannels = 3 }, "num_head_channels"},
		{"empty mult", func(c *config.Model) { c.ChannelMult = nil }, "channel_mult"},
		{"dropout", func(c *config.Model) { c.Dropout = 1 }, "dropout"},
		{"res blocks", func(c *config.Model) { c.NumResBlocks = 0 }, "num_res_blocks"},
		{"odd channels", func(c *config.Model) { c.NumChannels = 5; c.NumGroups = 5; c.NumHeads = 1 }, "num_channels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := tinyConfig()
			c.edit(&cfg)
			_, err := New(cfg, rand.New(rand.NewSource(1)))
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("err = %v, want an error naming %s", err, c.field)
			}
		})
	}
	if _, err := New(config.Default().Model, rand.New(rand.NewSource(1))); err != nil {
		t.Errorf("the default model config does not build: %v", err)
	}
}

func TestInputErrors(t *testing.T) {
	u, err := New(tinyConfig(), rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		x      *tensor.Dense
		t      []int
		substr string
	}{
		{"wrong channels", tensors.New(1, 3, 8, 8), []int{1}, "in_channels"},
		{"wrong size", tensors.New(1, 2, 16, 16), []int{1}, "image_size"},
		{"rank", tensors.New(2, 8, 8), []int{1}, "4 dimensions"},
		{"timesteps", tensors.New(2, 2, 8, 8), []int{1}, "timesteps"},
		{"negative t", tensors.New(1, 2, 8, 8), []int{-1}, "t[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := u.Eps(c.x, c.t); err == nil || !strings.Contains(err.Error(), c.substr) {
				t.Errorf("Eps: err = %v, want one containing %q", err, c.substr)
			}
			if _, _, err := u.EpsVJP(c.x, c.t, c.x); err == nil || !strings.Contains(err.Error(), c.substr) {
				t.Errorf("EpsVJP: err = %v, want one containing %q", err, c.substr)
			}
		})
	}
	if _, _, err := u.EpsVJP(tensors.New(1, 2, 8, 8), []int{1}, tensors.New(1, 2, 8, 4)); err == nil {
		t.Error("EpsVJP accepted a v of the wrong shape")
	}
}

// TestTrainDropout checks the training graph's dropout: on, it changes the
// loss and is reproducible from the seed; off, the loss is Eps's.
func TestTrainDropout(t *testing.T) {
	cfg := tinyConfig()
	cfg.Dropout = 0.3
	rng := rand.New(rand.NewSource(11))
	u, err := New(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	randomise(u, rng)
	x := tensors.Randn(rng, 2, 2, 8, 8)
	target := tensors.Randn(rng, 2, 2, 8, 8)
	ts := []int{5, 50}
	losses := make([]float64, 2)
	for i := range losses {
		tg, err := u.NewTrainGraph(2, rand.New(rand.NewSource(99)))
		if err != nil {
			t.Fatal(err)
		}
		if losses[i], err = tg.Step(x, ts, target); err != nil {
			t.Fatal(err)
		}
	}
	if losses[0] != losses[1] {
		t.Errorf("same dropout seed gave losses %v and %v", losses[0], losses[1])
	}
	tg, err := u.NewTrainGraph(2, rand.New(rand.NewSource(99)))
	if err != nil {
		t.Fatal(err)
	}
	tg.SetTraining(false)
	evalLoss, err := tg.Step(x, ts, target)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := u.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	var want float64
	for i, e := range tensors.F32(eps) {
		d := float64(e) - float64(tensors.F32(target)[i])
		want += d * d
	}
	want /= float64(len(tensors.F32(eps)))
	if math.Abs(evalLoss-want) > 1e-5*want {
		t.Errorf("eval-mode loss %v, want mean((Eps−target)²) = %v", evalLoss, want)
	}
	if math.Abs(losses[0]-evalLoss) < 1e-6*evalLoss {
		t.Errorf("dropout 0.3 left the loss unchanged (%v)", evalLoss)
	}
	if _, err := u.NewTrainGraph(2, nil); err == nil {
		t.Error("NewTrainGraph with dropout > 0 and a nil rng returned no error")
	}
}

// heapAfterGC returns the live heap after two collections.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestEpsVJPMemoryFlat runs EpsVJP 200 times on one graph and checks that
// the live heap does not grow.
func TestEpsVJPMemoryFlat(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	u, err := New(tinyConfig(), rng)
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.Randn(rng, 2, 2, 8, 8)
	v := tensors.Randn(rng, 2, 2, 8, 8)
	ts := []int{1, 2}
	var base uint64
	for i := 0; i < 200; i++ {
		if i == 20 {
			base = heapAfterGC()
		}
		ts[0] = i
		if _, _, err := u.EpsVJP(x, ts, v); err != nil {
			t.Fatal(err)
		}
	}
	end := heapAfterGC()
	const bound = 256 << 10
	if end > base+bound {
		t.Errorf("live heap grew from %d to %d bytes over 180 EpsVJP calls (bound %d)", base, end, bound)
	}
	t.Logf("live heap after call 20: %d B, after call 200: %d B", base, end)
}
