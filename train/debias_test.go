package train

import (
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
)

// TestDebiasedEMA trains the real UNet (NewUNet) for 12 steps at EMA decay
// 0.9, keeping every checkpoint, and checks the debiased EMA of the last
// one against the normalised exponential average of the raw weights of
// steps 1..12 computed from the checkpoints: equal to float32 rounding only
// when InitialWeights rebuilt the run's θ0 (its share 0.9^12 = 28 % is far
// above that tolerance). The plain EMA is far from that average.
func TestDebiasedEMA(t *testing.T) {
	for _, warm := range []bool{false, true} {
		dir := t.TempDir()
		cfg := testConfig(dir)
		cfg.Model.Dropout = 0
		cfg.Train.CheckpointEvery, cfg.Train.KeepCheckpoints, cfg.Train.SampleEvery = 1, 100, 0
		cfg.Train.EMAWarmup = warm
		if err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: NewUNet, Dataset: testData(t, 12)})); err != nil {
			t.Fatal(err)
		}
		last := CheckpointPath(dir, 12)
		c := readCkpt(t, dir, 12)
		if err := CheckFreshNativeRun(last); err != nil {
			t.Fatal(err)
		}
		init, err := InitialWeights(c.Config)
		if err != nil {
			t.Fatal(err)
		}
		deb, s, err := DebiasedEMA(c, init)
		if err != nil {
			t.Fatal(err)
		}
		// The exponential average of θ_1..θ_12 with the run's decays.
		e := EMA{Decay: 0.9, Warmup: warm}
		want := map[string][]float64{}
		wsum := 0.0
		for k := 1; k <= 12; k++ {
			d := e.DecayAt(k - 1)
			for n := range want {
				for i := range want[n] {
					want[n][i] *= d
				}
			}
			wsum *= d
			ck := readCkpt(t, dir, k)
			for _, n := range c.Names {
				p := tensors.F32(ck.Params[n])
				if want[n] == nil {
					want[n] = make([]float64, len(p))
				}
				for i, v := range p {
					want[n][i] += (1 - d) * float64(v)
				}
			}
			wsum += 1 - d
		}
		if math.Abs(1-wsum-s) > 1e-12 {
			t.Errorf("warm-up %v: share %g, want 1 − Σ weights = %g", warm, s, 1-wsum)
		}
		if !warm && math.Abs(s-math.Pow(0.9, 12)) > 1e-12 {
			t.Errorf("share %g, want 0.9^12", s)
		}
		worst, emaWorst := 0.0, 0.0
		for _, n := range c.Names {
			got, ema := tensors.F32(deb[n]), tensors.F32(c.EMA[n])
			for i, w := range want[n] {
				w /= wsum
				scale := math.Max(math.Abs(w), 1e-3)
				worst = math.Max(worst, math.Abs(float64(got[i])-w)/scale)
				emaWorst = math.Max(emaWorst, math.Abs(float64(ema[i])-w)/scale)
			}
		}
		t.Logf("warm %v: share %g, worst %g, ema worst %g", warm, s, worst, emaWorst)
		if worst > 1e-4 {
			t.Errorf("warm-up %v: debiased EMA differs from the average of the trained weights by %.3g (relative)", warm, worst)
		}
		if !warm && emaWorst < 1e-2 {
			t.Errorf("the plain EMA is within %.3g of the trained weights' average: the test cannot tell θ0's share", emaWorst)
		}
	}
}

// TestDebiasRefusals: runs whose initial weights are not train.seed's.
func TestDebiasRefusals(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, CheckpointDir, "step-00000010.safetensors")
	os.MkdirAll(filepath.Dir(ck), 0o755)
	bad := int64(7)
	good := InitSeed(5)
	for _, tc := range []struct {
		name string
		log  string
		want string
	}{
		{"no log", "", "no run record"},
		{"resumed only", `{"type":"run","step":4,"seed":5,"init_seed":` + itoa(good) + `}`, "not a fresh start"},
		{"init file", `{"type":"run","step":0,"seed":5,"init_seed":` + itoa(good) + `,"init":"m.safetensors"}`, "--init m.safetensors"},
		{"torch", `{"type":"run","step":0,"seed":5,"init_seed":` + itoa(good) + `,"precision_reason":"fp32 (auto): the torch engine runs float32 only"}`, "torch engine"},
		{"seed rule", `{"type":"run","step":0,"seed":5,"init_seed":` + itoa(bad) + `}`, "disagree"},
		{"fresh", `{"type":"step","step":2}` + "\n" + `{"type":"run","step":0,"seed":5,"init_seed":` + itoa(good) + `}`, ""},
	} {
		os.WriteFile(filepath.Join(dir, LogFile), []byte(tc.log+"\n"), 0o644)
		err := CheckFreshNativeRun(ck)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// Step 0: nothing averaged.
	c := &Checkpoint{Step: 0, Config: testConfig(dir), Names: []string{"w"}, EMA: map[string]*tensor.Dense{"w": tensors.New(2)}}
	if _, _, err := DebiasedEMA(c, map[string]*tensor.Dense{"w": tensors.New(2)}); err == nil {
		t.Error("step 0: no error")
	}
	c.Step = 3
	if _, _, err := DebiasedEMA(c, map[string]*tensor.Dense{"w": tensors.New(3)}); err == nil || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("mismatched initial weights: %v", err)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestZeroModuleNormRatio: the ratio covers exactly the zero_module'd
// tensors (scaled by 0.75 in the EMA while every other tensor is scaled by
// 5, which would move any ratio that counted them) and names a missing one.
func TestZeroModuleNormRatio(t *testing.T) {
	cfg := testConfig(t.TempDir())
	u, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	c := &Checkpoint{Step: 10, Config: cfg, Params: map[string]*tensor.Dense{}, EMA: map[string]*tensor.Dense{}}
	wantN := 0
	for k, ps := range u.ParamSpecs() {
		c.Names = append(c.Names, ps.Name)
		raw, ema := tensors.New(ps.Shape...), tensors.New(ps.Shape...)
		scale := float32(5)
		if ps.ZeroModule() {
			scale = 0.75
			wantN++
		}
		for i := range tensors.F32(raw) {
			v := float32(k+1) + float32(i%7)
			tensors.F32(raw)[i], tensors.F32(ema)[i] = v, scale*v
		}
		c.Params[ps.Name], c.EMA[ps.Name] = raw, ema
	}
	r, n, err := ZeroModuleNormRatio(c)
	if err != nil {
		t.Fatal(err)
	}
	// The tiny config has one level: its residual blocks' out_layers.3 and out.2.
	if n != wantN || n < 4 || math.Abs(r-0.75) > 1e-6 {
		t.Errorf("ratio %v over %d tensors, want 0.75 over %d (≥ 4)", r, n, wantN)
	}
	delete(c.EMA, "out.2.weight")
	if _, _, err := ZeroModuleNormRatio(c); err == nil || !strings.Contains(err.Error(), `"out.2.weight"`) {
		t.Errorf("missing tensor: %v, want an error naming out.2.weight", err)
	}
}
