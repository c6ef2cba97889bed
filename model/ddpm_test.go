package model

import (
	"bufio"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
)

// ddpmGolden loads bench/pytorch/ddpm_goldens.py's tiny DDPM model (weights
// under the original DDPM names, renamed by FromDDPM) and its goldens.
func ddpmGolden(t *testing.T) (golden, map[string]*tensor.Dense) {
	t.Helper()
	w, err := checkpoint.Load(filepath.Join("testdata", "ddpm_tiny.weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := DecodeConfig(w.Metadata[ConfigKey])
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Arch != config.ArchDDPM {
		t.Fatalf("golden config arch %q, want ddpm", cfg.Arch)
	}
	params, err := FromDDPM(w.Tensors, cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := New(cfg, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetParams(params); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.Load(filepath.Join("testdata", "ddpm_tiny.golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var ts []int
	for _, v := range tensors.F32(f.Tensors["t"]) {
		ts = append(ts, int(v))
	}
	return golden{u: u, g: f.Tensors, t: ts}, w.Tensors
}

// TestDDPMMatchesPyTorch checks model.arch ddpm against the PyTorch DDPM
// UNet (bench/pytorch/ddpm_unet.py, float64 on the same float32 weights):
// ε, vᵀ∂ε/∂x and the training loss's parameter gradients, the latter
// compared under the original DDPM names (q, k, v as thirds of our qkv).
func TestDDPMMatchesPyTorch(t *testing.T) {
	g, _ := ddpmGolden(t)
	eps, err := g.u.Eps(g.g["x"], g.t)
	if err != nil {
		t.Fatal(err)
	}
	e := relErr(tensors.F32(eps), tensors.F32(g.g["eps"]))
	t.Logf("Eps relative error %.3g", e)
	if e > 1e-5 {
		t.Errorf("Eps relative error %.3g, want ≤ 1e-5", e)
	}
	eps2, vjp, err := g.u.EpsVJP(g.g["x"], g.t, g.g["v"])
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(tensors.F32(eps2), tensors.F32(g.g["eps"])); e > 1e-5 {
		t.Errorf("EpsVJP ε relative error %.3g, want ≤ 1e-5", e)
	}
	e = relErr(tensors.F32(vjp), tensors.F32(g.g["vjp"]))
	t.Logf("vᵀ∂ε/∂x relative error %.3g", e)
	if e > 1e-5 {
		t.Errorf("vᵀ∂ε/∂x relative error %.3g, want ≤ 1e-5", e)
	}

	tg, err := g.u.NewTrainGraph(len(g.t), nil)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := tg.Step(g.g["x"], g.t, g.g["target"])
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(tensors.F32(g.g["loss"])[0]); math.Abs(loss-want) > 1e-5*want {
		t.Errorf("loss %v, want %v", loss, want)
	}
	plan, err := ddpmPlan(g.u.a)
	if err != nil {
		t.Fatal(err)
	}
	grads := tg.Grads()
	scale := 0.0 // the largest golden gradient value
	for k, v := range g.g {
		if strings.HasPrefix(k, "grad.") {
			scale = math.Max(scale, maxAbs(tensors.F32(v)))
		}
	}
	checked, worst := 0, 0.0
	for _, p := range plan {
		want, ok := g.g["grad."+p.name]
		if !ok {
			continue
		}
		n := want.Shape().TotalSize()
		got := tensors.F32(grads[p.target])[p.off : p.off+n]
		if strings.HasSuffix(p.name, ".k.bias") {
			// A key bias adds a constant to each query's logits, which the
			// softmax ignores: its gradient is zero up to rounding.
			if m := maxAbs(got); m > 1e-6*scale {
				t.Errorf("∂loss/∂%s: max |value| %.3g, want 0 up to rounding (≤ %.3g)", p.name, m, 1e-6*scale)
			}
			continue
		}
		e := relErr(got, tensors.F32(want))
		worst = math.Max(worst, e)
		if e > 1e-4 {
			t.Errorf("∂loss/∂%s (%s at %d) relative error %.3g, want ≤ 1e-4", p.name, p.target, p.off, e)
		}
		checked++
	}
	if checked < 40 {
		t.Fatalf("only %d parameter gradients compared", checked)
	}
	t.Logf("%d parameter gradients, worst relative error %.3g", checked, worst)
}

// TestDDPMSwitches checks that each DDPM detail is live: the same weights
// under arch adm give a different ε, so the goldens above could fail.
func TestDDPMSwitches(t *testing.T) {
	g, _ := ddpmGolden(t)
	cfg := g.u.Config()
	cfg.Arch = config.ArchADM
	adm, err := New(cfg, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.CopyParamsFrom(g.u); err != nil {
		t.Fatal(err)
	}
	eps, err := adm.Eps(g.g["x"], g.t)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(tensors.F32(eps), tensors.F32(g.g["eps"])); e < 1e-2 {
		t.Errorf("arch adm on DDPM weights is within %.3g of the DDPM output, want a clear difference", e)
	}
}

// TestDDPMNames checks the name mapping against PyTorch's state dicts: the
// tiny golden's names and shapes, and those of the CelebA-HQ 256 model that
// bench/pytorch/ddpm_goldens.py listed in testdata/ddpm_celebahq256.names.txt.
func TestDDPMNames(t *testing.T) {
	_, sd := ddpmGolden(t)
	w, _ := checkpoint.Load(filepath.Join("testdata", "ddpm_tiny.weights.safetensors"))
	cfg, _ := DecodeConfig(w.Metadata[ConfigKey])
	want, err := DDPMShapes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.Check(sd, want); err != nil {
		t.Errorf("tiny: %v", err)
	}
	if !LooksLikeDDPM(sd) {
		t.Error("LooksLikeDDPM(tiny DDPM state dict) = false")
	}

	f, err := os.Open(filepath.Join("testdata", "ddpm_celebahq256.names.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	torchShapes := map[string][]int{}
	torchCount := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "# parameters: "); ok {
			torchCount, _ = strconv.Atoi(n)
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, dims, _ := strings.Cut(line, " ")
		var shape []int
		for _, d := range strings.Split(dims, "x") {
			v, err := strconv.Atoi(d)
			if err != nil {
				t.Fatalf("bad line %q", line)
			}
			shape = append(shape, v)
		}
		torchShapes[name] = shape
	}
	big := celebaHQ256(t)
	ours, err := DDPMShapes(big)
	if err != nil {
		t.Fatal(err)
	}
	fake := map[string]*tensor.Dense{}
	for name, s := range torchShapes {
		fake[name] = tensor.New(tensor.WithShape(s...), tensor.Of(tensor.Float32))
	}
	if err := checkpoint.Check(fake, ours); err != nil {
		t.Errorf("celebahq256: DDPMShapes does not match PyTorch's state dict: %v", err)
	}
	if len(torchShapes) != 450 || torchCount != celebaHQ256Params {
		t.Errorf("names file: %d tensors, %d parameters; want 450 and %d", len(torchShapes), torchCount, celebaHQ256Params)
	}
}

// celebaHQ256Params is the parameter count of the DDPM CelebA-HQ 256 model
// (SDEdit's celeba_hq.ckpt, used by DDNM), counted by PyTorch on
// bench/pytorch/ddpm_unet.py's Model at DDNM's configs/celeba_hq.yml:
// sum(p.numel() for p in model.parameters()).
const celebaHQ256Params = 113_673_219

func celebaHQ256(t *testing.T) config.Model {
	t.Helper()
	c, err := config.Load(config.Sources{File: filepath.Join("..", "configs", "celebahq256.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	return c.Model
}

// TestCelebAHQ256ParamCount checks that configs/celebahq256.yaml builds a
// network with exactly the published checkpoint's parameter count.
func TestCelebAHQ256ParamCount(t *testing.T) {
	a, err := newArch(celebaHQ256(t))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range a.params {
		n += p.Size()
	}
	if n != celebaHQ256Params {
		t.Errorf("configs/celebahq256.yaml: %d parameters, DDNM's celeba_hq.ckpt has %d", n, celebaHQ256Params)
	}
	if !a.ddpm || a.normEps != 1e-6 {
		t.Errorf("ddpm %v, GroupNorm ε %g: want the DDPM variant", a.ddpm, a.normEps)
	}
}

// TestFromDDPMErrors checks that a state dict that does not match names the
// missing, unexpected and misshaped tensors, and that FromDDPM wants arch ddpm.
func TestFromDDPMErrors(t *testing.T) {
	_, sd := ddpmGolden(t)
	w, _ := checkpoint.Load(filepath.Join("testdata", "ddpm_tiny.weights.safetensors"))
	cfg, _ := DecodeConfig(w.Metadata[ConfigKey])
	bad := map[string]*tensor.Dense{}
	for k, v := range sd {
		bad[k] = v
	}
	delete(bad, "down.0.block.0.norm1.weight")
	bad["logvar"] = tensors.New(1000)
	bad["mid.attn_1.q.weight"] = tensors.New(32, 32, 1)
	_, err := FromDDPM(bad, cfg)
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{"down.0.block.0.norm1.weight", "logvar", "mid.attn_1.q.weight", "[32 32 1]", "[32 32 1 1]"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	adm := cfg
	adm.Arch = config.ArchADM
	if _, err := FromDDPM(sd, adm); err == nil || !strings.Contains(err.Error(), `"adm"`) {
		t.Errorf("FromDDPM with arch adm: %v, want an error naming it", err)
	}
}

// TestCheckArch checks (through Validate, config.Model.Validate) the settings model.arch ddpm rejects, and an unknown
// arch, each with an error naming the bad value.
func TestCheckArch(t *testing.T) {
	base := celebaHQ256(t)
	if err := Validate(base); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*config.Model)
		want string
	}{
		{"unknown arch", func(m *config.Model) { m.Arch = "unet2" }, `"unet2"`},
		{"learn_sigma", func(m *config.Model) { m.LearnSigma = true }, "learn_sigma = true"},
		{"scale-shift", func(m *config.Model) { m.UseScaleShiftNorm = true }, "use_scale_shift_norm = true"},
		{"resblock updown", func(m *config.Model) { m.ResblockUpdown = true }, "resblock_updown = true"},
		{"two heads", func(m *config.Model) { m.NumHeads = 2 }, "num_heads = 2"},
		{"head channels", func(m *config.Model) { m.NumHeadChannels = 64 }, "num_head_channels = 64"},
		{"first mult", func(m *config.Model) { m.ChannelMult = []int{2, 2, 4, 4, 8, 8} }, "channel_mult[0] = 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := base
			m.ChannelMult = slices.Clone(base.ChannelMult)
			c.edit(&m)
			err := Validate(m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate: %v, want an error containing %q", err, c.want)
			}
		})
	}
	// An empty arch (checkpoints written before model.arch) is adm.
	old := base
	old.Arch = ""
	a, err := newArch(old)
	if err != nil || a.ddpm || a.normEps != 1e-5 {
		t.Errorf("empty arch: %v, ddpm %v, ε %g; want guided-diffusion's", err, a != nil && a.ddpm, a.normEps)
	}
	// The arch survives the checkpoint metadata round trip.
	s, err := EncodeConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeConfig(s)
	if err != nil || back.Arch != config.ArchDDPM {
		t.Errorf("config round trip: %v, arch %q", err, back.Arch)
	}
}

// maxAbs is ‖a‖∞.
func maxAbs(a []float32) float64 {
	m := 0.0
	for _, v := range a {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}
