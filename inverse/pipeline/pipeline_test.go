package pipeline

import (
	"context"
	"math"
	"math/rand"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/analytic"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/solve"
)

// gaussianSetup returns a config for 1×4×4 images, the exact denoiser of a
// smooth Gaussian prior, and the schedule.
func gaussianSetup(t *testing.T) (*config.Config, *analytic.Mixture, *diffusion.Schedule) {
	t.Helper()
	sched, err := diffusion.NewSchedule("linear", 200, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := 16
	mu := make([]float64, d)
	cov := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		mu[i] = 0.1 * float64(i%4-2)
		for j := 0; j < d; j++ {
			ri, ci, rj, cj := i/4, i%4, j/4, j%4
			cov.SetSym(i, j, 0.25*math.Exp(-float64((ri-rj)*(ri-rj)+(ci-cj)*(ci-cj))/2))
		}
	}
	den, err := analytic.NewGaussian(mu, cov, [3]int{1, 4, 4}, sched)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Model.ImageSize, cfg.Model.InChannels = 4, 1
	cfg.Measurement.Operator = config.Operator{Name: "sr_avgpool", Params: map[string]any{"factor": 2}}
	cfg.Measurement.Noise = config.Noise{Name: "clean"}
	cfg.Solver = config.Solver{Method: "ddnm", Baseline: "auto", BatchSize: 3, Options: map[string]any{"steps": 20}}
	return &cfg, den, sched
}

func TestSolveConsistentAndBatchIndependent(t *testing.T) {
	cfg, den, sched := gaussianSetup(t)
	x, err := den.Sample(rand.New(rand.NewSource(3)), 5)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, den, sched, nil, 11)
	if err != nil {
		t.Fatal(err)
	}
	if s.Baseline != "pinv" {
		t.Errorf("auto baseline %q, want pinv for a linear operator", s.Baseline)
	}
	var last, total int
	res, err := s.Solve(context.Background(), x, 10, func(d, tot int) { last, total = d, tot })
	if err != nil {
		t.Fatal(err)
	}
	if last != total || total == 0 {
		t.Errorf("progress ended at %d/%d", last, total)
	}
	for i, c := range res.Consistency {
		if c > 1e-3 { // noise-free DDNM satisfies A x̂ = y
			t.Errorf("image %d: consistency %g, want < 1e-3", i, c)
		}
		if res.BaselineConsistency[i] > 1e-3 {
			t.Errorf("image %d: A†y consistency %g, want < 1e-3", i, res.BaselineConsistency[i])
		}
	}
	if len(res.PSNR) != 5 || len(res.BaselinePSNR) != 5 {
		t.Fatalf("%d PSNRs, %d baseline PSNRs", len(res.PSNR), len(res.BaselinePSNR))
	}
	// Batch size 1, images solved one by one with their dataset indices:
	// the same bits.
	cfg.Solver.BatchSize = 1
	s1, _ := New(cfg, den, sched, nil, 11)
	for i := 0; i < 5; i++ {
		xi := tensors.FromSlice(append([]float32(nil), tensors.F32(x)[i*16:(i+1)*16]...), 1, 1, 4, 4)
		r1, err := s1.Solve(context.Background(), xi, 10+i, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range tensors.F32(r1.Recon) {
			if v != tensors.F32(res.Recon)[i*16+j] {
				t.Fatalf("image %d differs when solved alone", i)
			}
		}
	}
}

func TestSolverDefaultsLayering(t *testing.T) {
	cfg, den, sched := gaussianSetup(t)
	cfg.Solver.Method = "dps"
	cfg.Solver.Options = map[string]any{"steps": 7}
	s, err := New(cfg, den, sched, map[string]any{"scale": 0.3, "steps": 5}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := s.Opts.(solve.DPSOptions); !ok || o.Scale != 0.3 || o.Steps != 7 {
		t.Errorf("dps options %+v: want the task's scale and the user's steps", s.Opts)
	}
	// The ancestral step's variance is the model's diffusion.variance.
	cfg.Diffusion.Variance = "fixed_large"
	if s, err = New(cfg, den, sched, nil, 1); err != nil {
		t.Fatal(err)
	}
	if s.Variance != "fixed_large" {
		t.Errorf("solver variance %q, want the config's diffusion.variance %q", s.Variance, "fixed_large")
	}
}

func TestSetupErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *config.Config)
		want string
	}{
		{"unknown operator", func(c *config.Config) { c.Measurement.Operator.Name = "nope" }, "nope"},
		{"bad operator param", func(c *config.Config) { c.Measurement.Operator.Params["bogus"] = 1 }, "bogus"},
		{"unknown method", func(c *config.Config) { c.Solver.Method = "nope" }, "nope"},
		{"bad solver option", func(c *config.Config) { c.Solver.Options["scale"] = 1 }, "scale"},
		{"needs svd", func(c *config.Config) {
			c.Measurement.Operator = config.Operator{Name: "phase_retrieval", Params: map[string]any{}}
			c.Solver.Method, c.Solver.Options = "ddrm", map[string]any{}
		}, "SVD"},
		{"baseline mismatch", func(c *config.Config) { c.Solver.Baseline = "hio" }, "phase retrieval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, den, sched := gaussianSetup(t)
			tc.edit(cfg)
			if _, err := New(cfg, den, sched, nil, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	cfg, den, sched := gaussianSetup(t)
	s, _ := New(cfg, den, sched, nil, 1)
	if _, err := s.Solve(context.Background(), tensors.New(1, 1, 8, 8), 0, nil); err == nil || !strings.Contains(err.Error(), "8×8") {
		t.Errorf("wrong image size: %v", err)
	}
}

func TestDisplayY(t *testing.T) {
	// A 1×1×2×2 low-resolution image is enlarged by nearest neighbour.
	y := tensors.FromSlice([]float32{-1, 0, 0.5, 1}, 1, 1, 2, 2)
	d := tensors.F32(DisplayY(y, nil, 1, 4, 4))
	if d[0] != -1 || d[1] != -1 || d[2] != 0 || d[3] != 0 || d[15] != 1 || d[8] != 0.5 {
		t.Errorf("enlarged %v", d)
	}
	// Magnitudes outside [−1, 1] are scaled to it; gray repeats to RGB.
	m := tensors.FromSlice([]float32{0, 10, 20, 40}, 1, 1, 2, 2)
	e := tensors.F32(DisplayY(m, nil, 3, 2, 2))
	if e[0] != -1 || e[3] != 1 || e[4] != -1 || e[11] != 1 || math.Abs(float64(e[1]+0.5)) > 1e-6 {
		t.Errorf("scaled %v", e)
	}
	// A vector without an adjoint shows as blank.
	if v := DisplayY(tensors.New(2, 5), nil, 1, 3, 3); v.Shape()[0] != 2 || tensors.F32(v)[0] != 0 {
		t.Errorf("vector display %v", v.Shape())
	}
}

func TestBaselineAsMethod(t *testing.T) {
	cfg, den, sched := gaussianSetup(t)
	x, _ := den.Sample(rand.New(rand.NewSource(4)), 2)
	cfg.Solver.Method = "pinv"
	cfg.Solver.Options = map[string]any{}
	s, err := New(cfg, den, sched, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Solve(context.Background(), x, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A†y of a noise-free average-pool measurement: consistent, and the
	// block means of the truth.
	for i, c := range r.Consistency {
		if c > 1e-4 {
			t.Errorf("image %d: consistency %g", i, c)
		}
	}
	got, truth := tensors.F32(r.Recon), tensors.F32(x)
	want := (truth[0] + truth[1] + truth[4] + truth[5]) / 4
	if math.Abs(float64(got[0]-max(-1, min(1, want)))) > 1e-5 {
		t.Errorf("A†y[0] = %v, want the block mean %v", got[0], want)
	}
	cfg.Solver.Options = map[string]any{"eta": 1}
	if _, err := New(cfg, den, sched, nil, 1); err == nil || !strings.Contains(err.Error(), "solver.eta") {
		t.Errorf("pinv with a solver option: %v", err)
	}
	cfg.Solver.Options = map[string]any{}
	cfg.Solver.Method = "hio"
	if _, err := New(cfg, den, sched, nil, 1); err == nil {
		t.Error("hio on super-resolution: no error")
	}
}

// TestNegLogLik: the result's −log p(y | A(x̂)) is the noise model's; for
// Gaussian noise it is ‖y − A(x̂)‖²/(2σ²), the consistency in σ's units.
func TestNegLogLik(t *testing.T) {
	cfg, den, sched := gaussianSetup(t)
	cfg.Measurement.Noise = config.Noise{Name: "gaussian", Sigma: 0.1}
	cfg.Solver.Method = "ddnm+"
	x, err := den.Sample(rand.New(rand.NewSource(4)), 3)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, den, sched, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Solve(context.Background(), x, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.NegLogLik) != 3 {
		t.Fatalf("%d likelihoods for 3 images", len(res.NegLogLik))
	}
	for i, l := range res.NegLogLik {
		want := res.Consistency[i] * res.Consistency[i] / (2 * 0.01)
		if math.Abs(l-want) > 1e-3*(1+want) {
			t.Errorf("image %d: −log p = %g, want ‖y − A x̂‖²/2σ² = %g", i, l, want)
		}
	}
}

// memStore is a BatchStore in memory that counts saves and can cancel the
// solve after a given number of them (an interrupted run).
type memStore struct {
	recon   map[[2]int]*tensor.Dense
	seconds map[[2]int]float64
	saves   int
	cancel  func()
	after   int
}

func (m *memStore) Load(lo, hi int) (*tensor.Dense, float64, bool) {
	r, ok := m.recon[[2]int{lo, hi}]
	return r, m.seconds[[2]int{lo, hi}], ok
}

func (m *memStore) Save(lo, hi int, recon *tensor.Dense, seconds float64) error {
	m.recon[[2]int{lo, hi}] = recon.Clone().(*tensor.Dense)
	m.seconds[[2]int{lo, hi}] = seconds
	m.saves++
	if m.cancel != nil && m.saves == m.after {
		m.cancel()
	}
	return nil
}

// TestSolveResumesFromStore: a Solve cancelled after its first two batches
// stores them; the next Solve with the store solves only the remaining
// batch and returns the bits of an uninterrupted, storeless Solve.
func TestSolveResumesFromStore(t *testing.T) {
	cfg, den, sched := gaussianSetup(t) // batch size 3
	x, err := den.Sample(rand.New(rand.NewSource(5)), 7)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := New(cfg, den, sched, nil, 11)
	if err != nil {
		t.Fatal(err)
	}
	want, err := plain.Solve(context.Background(), x, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	store := &memStore{recon: map[[2]int]*tensor.Dense{}, seconds: map[[2]int]float64{}, cancel: cancel, after: 2}
	s, _ := New(cfg, den, sched, nil, 11)
	s.Store = store
	if _, err := s.Solve(ctx, x, 0, nil); err == nil {
		t.Fatal("the cancelled Solve returned no error")
	}
	if store.saves != 2 {
		t.Fatalf("%d batches stored before the interruption, want 2", store.saves)
	}
	store.cancel = nil
	got, err := s.Solve(context.Background(), x, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if store.saves != 3 {
		t.Errorf("%d saves in all, want 3: the resumed Solve should solve only the last batch", store.saves)
	}
	for i, v := range tensors.F32(want.Recon) {
		if tensors.F32(got.Recon)[i] != v {
			t.Fatalf("value %d: resumed %g, uninterrupted %g", i, tensors.F32(got.Recon)[i], v)
		}
	}
	for i := range want.PSNR {
		if got.PSNR[i] != want.PSNR[i] {
			t.Errorf("image %d: PSNR %g resumed, %g uninterrupted", i, got.PSNR[i], want.PSNR[i])
		}
	}
	if !(got.SecondsPerImage > 0) {
		t.Errorf("seconds per image %g: the stored batches' time must count", got.SecondsPerImage)
	}
}
