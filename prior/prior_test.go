package prior_test

import (
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/prior"
	"github.com/diffinv/diffinv/train"
)

// tinyModel writes a tiny UNet with a run config of T = 20 x0-prediction
// steps and returns its path and the network.
func tinyModel(t *testing.T) (string, *model.UNet) {
	t.Helper()
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 8, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{4}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Diffusion.Steps, cfg.Diffusion.Prediction = 20, "x0"
	cfg.Sample.Steps = 20
	cfg.Data.Dataset = "folder"
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := net.Save(p, map[string]string{train.MetaRunConfig: string(doc)}); err != nil {
		t.Fatal(err)
	}
	return p, net
}

// TestOpen: a model file opens with its run config under the caller's
// layers; the schedule is the file's (respaced on request) and the denoiser
// turns the x0 prediction into ε; trained settings and the architecture
// cannot be overridden; a missing path is a clear error.
func TestOpen(t *testing.T) {
	path, net := tinyModel(t)
	p, err := prior.Open(path, config.Sources{Sets: []string{"sample.steps=5", "diffusion.variance=fixed_large"}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Trained || p.Config.Sample.Steps != 5 || p.Config.Diffusion.Variance != "fixed_large" || p.Config.Diffusion.Steps != 20 {
		t.Errorf("config: trained %v, sample.steps %d, variance %s, diffusion.steps %d", p.Trained, p.Config.Sample.Steps, p.Config.Diffusion.Variance, p.Config.Diffusion.Steps)
	}
	sched, den, err := p.Schedule(5)
	if err != nil {
		t.Fatal(err)
	}
	if sched.Len() != 5 {
		t.Errorf("respaced schedule of %d steps, want 5", sched.Len())
	}
	// The denoiser reads the network's output as x̂0: ε = (x − √ᾱ x̂0)/√(1−ᾱ).
	rng := rand.New(rand.NewSource(2))
	x := tensors.Randn(rng, 1, 1, 8, 8)
	full, _, _ := p.Schedule(0)
	ts := []int{full.Timestep(10)}
	eps, err := den.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	x0, err := net.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	ab := full.AlphaBar(10)
	for i, v := range tensors.F32(eps) {
		want := (float64(tensors.F32(x)[i]) - math.Sqrt(ab)*float64(tensors.F32(x0)[i])) / math.Sqrt(1-ab)
		if math.Abs(float64(v)-want) > 1e-4*(1+math.Abs(want)) {
			t.Fatalf("ε[%d] = %v, want %v from the x0 prediction", i, v, want)
		}
	}
	for _, c := range []struct {
		sets []string
		want string
	}{
		{[]string{"diffusion.prediction=eps"}, "diffusion.prediction is eps, the network was trained with x0"},
		{[]string{"model.num_channels=16"}, "the model section differs from the checkpoint's architecture"},
	} {
		if _, err := prior.Open(path, config.Sources{Sets: c.sets}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.sets, err, c.want)
		}
	}
	// A model folder means its model.safetensors.
	dir := t.TempDir()
	if err := os.Rename(path, filepath.Join(dir, prior.ModelFile)); err != nil {
		t.Fatal(err)
	}
	if q, err := prior.Open(dir, config.Sources{}); err != nil || q.Path != filepath.Join(dir, prior.ModelFile) {
		t.Errorf("model folder: %v", err)
	}
	if _, err := prior.Open(t.TempDir(), config.Sources{}); err == nil || !strings.Contains(err.Error(), prior.ModelFile) {
		t.Errorf("empty folder: %v, want an error naming %s", err, prior.ModelFile)
	}
	if _, err := prior.Open(filepath.Join(t.TempDir(), "none.safetensors"), config.Sources{}); err == nil || !strings.Contains(err.Error(), "none.safetensors") {
		t.Errorf("missing file: %v", err)
	}
}

// TestOpenNoAttention: a network without attention (attention_resolutions:
// [], which the stored config may read back as an empty or a nil list)
// opens; the architecture check compares the lists by content.
func TestOpenNoAttention(t *testing.T) {
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 8, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4}
	cfg.Data.Dataset = "folder"
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "noattn.safetensors")
	if err := net.Save(p, map[string]string{train.MetaRunConfig: string(doc)}); err != nil {
		t.Fatal(err)
	}
	if _, err := prior.Open(p, config.Sources{}); err != nil {
		t.Fatalf("a model without attention: %v", err)
	}
	if _, err := prior.Open(p, config.Sources{Sets: []string{"model.attention_resolutions=[4]"}}); err == nil {
		t.Error("adding attention to a model without it: no error")
	}
}

// TestScheduleSpaced: sample.spacing picks the respaced timesteps (the DDIM
// code's skip types), uniform by default; steps ≥ T keep the schedule.
func TestScheduleSpaced(t *testing.T) {
	d := config.Default().Diffusion // T = 1000
	cases := []struct {
		spacing string
		steps   int
		n       int // timesteps expected (0: as SpacedTimesteps gives)
	}{
		{diffusion.SpacingUniform, 50, 50},
		{diffusion.SpacingQuad, 50, 0},
		{diffusion.SpacingQuad, 1000, 1000},
	}
	for _, tc := range cases {
		s, _, err := prior.ScheduleSpaced(d, tc.steps, tc.spacing, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts := s.Timesteps()
		want, _ := diffusion.SpacedTimesteps(d.Steps, tc.steps, tc.spacing)
		if tc.steps >= d.Steps {
			want = nil
			for i := range d.Steps {
				want = append(want, i)
			}
		}
		if len(ts) != len(want) || (tc.n > 0 && len(ts) != tc.n) {
			t.Fatalf("%s %d: %d timesteps, want %d", tc.spacing, tc.steps, len(ts), len(want))
		}
		for i := range ts {
			if ts[i] != want[i] {
				t.Fatalf("%s %d: timestep %d is %d, want %d", tc.spacing, tc.steps, i, ts[i], want[i])
			}
		}
		if tc.spacing == diffusion.SpacingUniform && (ts[1] != 20 || ts[49] != 980) {
			t.Errorf("uniform 50: %v", ts)
		}
	}
	// quad puts more steps at low noise than uniform
	q, _, _ := prior.ScheduleSpaced(d, 50, diffusion.SpacingQuad, nil)
	u, _, _ := prior.ScheduleFor(d, 50, nil)
	below := func(ts []int) (n int) {
		for _, t := range ts {
			if t < 200 {
				n++
			}
		}
		return n
	}
	if !(below(q.Timesteps()) > 2*below(u.Timesteps())) {
		t.Errorf("quad: %d timesteps below 200, uniform %d", below(q.Timesteps()), below(u.Timesteps()))
	}
	if _, _, err := prior.ScheduleSpaced(d, 50, "cubic", nil); err == nil || !strings.Contains(err.Error(), "cubic") {
		t.Errorf("spacing cubic: %v", err)
	}
}
