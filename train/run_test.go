package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/dirlock"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// TestFakeNetGradient checks the test network's hand-written backward pass
// against central finite differences (dropout on, same mask both sides).
func TestFakeNetGradient(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	f := newFakeNet(2, 4, 5, 100, 0.3, rng)
	xt := tensors.Randn(rng, 3, 2, 2, 2)
	ts := []int{0, 17, 99}
	r := tensors.Randn(rng, 3, 4, 2, 2)
	lin := func(out *tensor.Dense) (float64, *tensor.Dense, error) {
		var l float64
		for i, v := range tensors.F32(out) {
			l += float64(v) * float64(tensors.F32(r)[i])
		}
		return l, r, nil
	}
	if _, err := f.LossGrad(xt, ts, 42, lin); err != nil {
		t.Fatal(err)
	}
	grads := map[string][]float32{}
	for _, n := range fakeNames {
		grads[n] = append([]float32(nil), tensors.F32(f.Grad(n))...)
	}
	for _, n := range fakeNames {
		p := tensors.F32(f.Param(n))
		for i := range p {
			v := p[i]
			hi, lo := v+1e-2, v-1e-2
			p[i] = hi
			lp, _ := f.LossGrad(xt, ts, 42, lin)
			p[i] = lo
			lm, _ := f.LossGrad(xt, ts, 42, lin)
			p[i] = v
			fd := (lp - lm) / float64(hi-lo)
			if g := float64(grads[n][i]); math.Abs(g-fd) > 2e-3*(1+math.Abs(fd)) {
				t.Fatalf("%s[%d]: gradient %g, finite difference %g", n, i, g, fd)
			}
		}
	}
}

// testConfig is a tiny valid config: 1×8×8 images, T = 100, 12 steps.
func testConfig(out string) *config.Config {
	c := config.Default()
	c.Model.ImageSize = 8
	c.Model.ChannelMult = []int{1}
	c.Model.AttentionResolutions = nil
	c.Model.Dropout = 0.2
	c.Diffusion.Steps = 100
	c.Train = config.Train{Steps: 12, BatchSize: 4, Optimizer: "adam", LR: 0.01, WarmupSteps: 3, GradClip: 0.5,
		EMADecay: 0.9, Seed: 5, CheckpointEvery: 4, KeepCheckpoints: 2, LogEvery: 2, SampleEvery: 6, Out: out}
	c.Data = config.Data{Dataset: "folder", Dir: "unused: the test passes a Dataset", Split: "train"}
	return &c
}

// testData returns n seeded random 1×8×8 images.
func testData(t *testing.T, n int) *data.Dataset {
	t.Helper()
	rng := rand.New(rand.NewSource(99))
	pix := make([]uint8, n*64)
	for i := range pix {
		pix[i] = uint8(rng.Intn(256))
	}
	ds, err := data.NewDataset(pix, nil, n, 1, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func quiet(opts RunOptions) RunOptions {
	var buf bytes.Buffer
	opts.Progress = &buf
	return opts
}

// readCkpt loads a checkpoint or fails the test.
func readCkpt(t *testing.T, out string, step int) *Checkpoint {
	t.Helper()
	c, err := LoadCheckpoint(CheckpointPath(out, step))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameBits reports the first tensor whose bits differ between a and b.
func sameBits(t *testing.T, what string, a, b *Checkpoint) {
	t.Helper()
	if a.Step != b.Step || a.AdamStep != b.AdamStep {
		t.Fatalf("%s: steps %d/%d and %d/%d", what, a.Step, a.AdamStep, b.Step, b.AdamStep)
	}
	for _, part := range []struct {
		name string
		x, y map[string]*tensor.Dense
	}{{"weights", a.Params, b.Params}, {"EMA", a.EMA, b.EMA}, {"adam m", a.AdamM, b.AdamM}, {"adam v", a.AdamV, b.AdamV}} {
		for n, tx := range part.x {
			x, y := tensors.F32(tx), tensors.F32(part.y[n])
			for i := range x {
				if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
					t.Fatalf("%s: %s of %s differ at %d: %g vs %g", what, part.name, n, i, x[i], y[i])
				}
			}
		}
	}
}

// TestResumeEqualsUninterrupted kills a run after 7 steps (its last
// checkpoint is step 4, its log reaches step 6), resumes it, and compares the
// final state with an uninterrupted run bit for bit, for each objective.
func TestResumeEqualsUninterrupted(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pred, opt  string
		learnSigma bool
		weight     string
	}{{"eps adam", "eps", "adam", false, ""}, {"v adamw", "v", "adamw", false, ""}, {"x0 hybrid", "x0", "adam", true, ""},
		{"eps p2", "eps", "adam", false, config.WeightP2}} {
		t.Run(tc.name, func(t *testing.T) {
			ds := testData(t, 10) // 2 steps per epoch: several epochs, resume mid-epoch
			mk := func(out string) *config.Config {
				c := testConfig(out)
				c.Diffusion.Prediction = tc.pred
				c.Train.Optimizer = tc.opt
				c.Train.LossWeight = tc.weight
				if tc.opt == "adamw" {
					c.Train.WeightDecay = 0.1
				}
				if tc.learnSigma {
					c.Model.LearnSigma = true
					c.Diffusion.Variance = "learned_range"
				}
				return c
			}
			dirA, dirB := t.TempDir(), t.TempDir()
			if err := Run(context.Background(), mk(dirA), quiet(RunOptions{NewModel: fakeFactory(6, nil, nil), Dataset: ds})); err != nil {
				t.Fatal(err)
			}
			err := Run(context.Background(), mk(dirB), quiet(RunOptions{NewModel: fakeFactory(6, nil, nil), Dataset: ds, haltAfter: 7}))
			if !errors.Is(err, errHalted) {
				t.Fatalf("halted run: %v", err)
			}
			if steps, _ := ListCheckpoints(dirB); !equalInts(steps, []int{4}) {
				t.Fatalf("killed run left checkpoints %v, want [4]", steps)
			}
			var made []*fakeNet
			if err := Run(context.Background(), mk(dirB), quiet(RunOptions{NewModel: fakeFactory(6, &made, nil), Dataset: ds, Resume: true})); err != nil {
				t.Fatal(err)
			}
			if made[0].calls != 8 {
				t.Errorf("resumed run took %d steps, want 8 (4 → 12)", made[0].calls)
			}
			sameBits(t, "final checkpoint", readCkpt(t, dirA, 12), readCkpt(t, dirB, 12))
			sameBits(t, "step-8 checkpoint", readCkpt(t, dirA, 8), readCkpt(t, dirB, 8))
			a, _, err := LoadModel(filepath.Join(dirA, ModelFile))
			if err != nil {
				t.Fatal(err)
			}
			b, cfgB, err := LoadModel(filepath.Join(dirB, ModelFile))
			if err != nil {
				t.Fatal(err)
			}
			if cfgB.Diffusion.Prediction != tc.pred || cfgB.Model.LearnSigma != tc.learnSigma {
				t.Errorf("model file config: prediction %q learn_sigma %v", cfgB.Diffusion.Prediction, cfgB.Model.LearnSigma)
			}
			for n := range a {
				if !bytes.Equal(f32bytes(a[n]), f32bytes(b[n])) {
					t.Errorf("model file tensor %s differs", n)
				}
			}
			// The resumed log has every step record once, in order.
			recs, _ := readLog(filepath.Join(dirB, LogFile))
			var steps []int
			runs := 0
			for _, r := range recs {
				switch r.Type {
				case "step":
					steps = append(steps, r.Step)
				case "run":
					runs++
				}
			}
			if !equalInts(steps, []int{2, 4, 6, 8, 10, 12}) || runs != 2 {
				t.Errorf("resumed log: step records %v and %d run records, want [2 4 6 8 10 12] and 2", steps, runs)
			}
		})
	}
}

func f32bytes(t *tensor.Dense) []byte {
	var b bytes.Buffer
	for _, v := range tensors.F32(t) {
		u := math.Float32bits(v)
		b.Write([]byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24)})
	}
	return b.Bytes()
}

// TestRunOutputs checks the run folder: pruned checkpoints, the log's
// records, sample grids with the EMA weights, the loss plot; and that the
// seed matters.
func TestRunOutputs(t *testing.T) {
	ds := testData(t, 12)
	dir := t.TempDir()
	var sampled []int
	sample := func(step int, ema map[string]*tensor.Dense) (*tensor.Dense, error) {
		sampled = append(sampled, step)
		if len(ema) != len(fakeNames) {
			t.Errorf("sample callback got %d EMA tensors, want %d", len(ema), len(fakeNames))
		}
		x := tensors.New(5, 1, 8, 8)
		tensors.F32(x)[0] = tensors.F32(ema["b2"])[0]
		return x, nil
	}
	cfg := testConfig(dir)
	if err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Sample: sample})); err != nil {
		t.Fatal(err)
	}
	if steps, _ := ListCheckpoints(dir); !equalInts(steps, []int{8, 12}) {
		t.Errorf("checkpoints %v, want the last 2: [8 12]", steps)
	}
	if !equalInts(sampled, []int{6, 12}) {
		t.Errorf("samples at steps %v, want [6 12]", sampled)
	}
	for _, f := range []string{"samples/step-00000006.png", "samples/step-00000012.png", LossPlotFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG (%v)", f, err)
		}
	}
	recs, err := readLog(filepath.Join(dir, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Type != "run" || recs[0].Seed == nil || *recs[0].Seed != 5 || *recs[0].InitSeed != InitSeed(5) || recs[0].Config == "" {
		t.Errorf("first log record %+v, want a run record with seed 5, its init seed and the config", recs[0])
	}
	if last := recs[len(recs)-1]; last.Type != "done" || last.Step != 12 || last.Path != CheckpointPath(dir, 12) {
		t.Errorf("last log record %+v, want done at step 12 with the final checkpoint", last)
	}
	for _, r := range recs {
		if r.Type == "step" && (!(r.Loss > 0) || !(r.LR > 0) || !(r.GradNorm > 0) || r.Wall < 0) {
			t.Errorf("step record %+v lacks loss, lr or grad norm", r)
		}
		if r.Type == "step" && r.Step == 2 && math.Abs(r.LR-cfg.Train.LR*2/3) > 1e-12 {
			t.Errorf("lr at step 2 = %g, want warm-up value %g", r.LR, cfg.Train.LR*2/3)
		}
	}
	// Same seed, same bits; another seed, other bits.
	again, other := t.TempDir(), t.TempDir()
	Run(context.Background(), testConfig(again), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds}))
	oc := testConfig(other)
	oc.Train.Seed = 6
	Run(context.Background(), oc, quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds}))
	sameBits(t, "same seed", readCkpt(t, dir, 12), readCkpt(t, again, 12))
	x, y := readCkpt(t, dir, 12), readCkpt(t, other, 12)
	if bytes.Equal(f32bytes(x.Params["w1"]), f32bytes(y.Params["w1"])) {
		t.Error("seeds 5 and 6 gave the same weights")
	}
}

// TestLearns: the loop lowers the loss of a learnable problem (x0
// prediction of constant images).
func TestLearns(t *testing.T) {
	pix := make([]uint8, 16*64)
	for i := range pix {
		pix[i] = 200
	}
	ds, _ := data.NewDataset(pix, nil, 16, 1, 8, 8)
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Diffusion.Prediction = "x0"
	cfg.Train.Steps, cfg.Train.LogEvery, cfg.Train.CheckpointEvery, cfg.Train.LR, cfg.Train.GradClip = 300, 50, 300, 0.02, 1
	cfg.Model.Dropout = 0
	if err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: fakeFactory(8, nil, nil), Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	recs, _ := readLog(filepath.Join(dir, LogFile))
	var losses []float64
	for _, r := range recs {
		if r.Type == "step" {
			losses = append(losses, r.Loss)
		}
	}
	if len(losses) != 6 || !(losses[5] < 0.2*losses[0]) {
		t.Errorf("losses per 50 steps %v: want the last below a fifth of the first", losses)
	}
}

// TestNonFiniteStops: a NaN loss or an infinite gradient at step 6 stops the
// run with an error naming the step; the step-4 checkpoint is intact (equal
// to a clean run's) and nothing later is written.
func TestNonFiniteStops(t *testing.T) {
	ds := testData(t, 10)
	clean := t.TempDir()
	cleanCfg := testConfig(clean)
	cleanCfg.Train.KeepCheckpoints = 3 // keeps step 4
	if err := Run(context.Background(), cleanCfg, quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		tweak func(*fakeNet)
		msg   string
	}{
		{"nan loss", func(f *fakeNet) { f.nanLossAt = 6 }, "loss is NaN"},
		{"inf gradient", func(f *fakeNet) { f.nanGradAt = 6 }, "gradient norm is +Inf"},
	} {
		dir := t.TempDir()
		err := Run(context.Background(), testConfig(dir), quiet(RunOptions{NewModel: fakeFactory(4, nil, tc.tweak), Dataset: ds}))
		if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "step 6 of 12") || !strings.Contains(err.Error(), tc.msg) ||
			!strings.Contains(err.Error(), CheckpointPath(dir, 4)) {
			t.Fatalf("%s: error %v, want ErrNonFinite naming step 6, %q and the step-4 checkpoint", tc.name, err, tc.msg)
		}
		if steps, _ := ListCheckpoints(dir); !equalInts(steps, []int{4}) {
			t.Errorf("%s: checkpoints %v, want [4]", tc.name, steps)
		}
		sameBits(t, tc.name+": last good checkpoint", readCkpt(t, clean, 4), readCkpt(t, dir, 4))
		recs, _ := readLog(filepath.Join(dir, LogFile))
		if last := recs[len(recs)-1]; last.Type != "stop" || !strings.Contains(last.Reason, tc.msg) {
			t.Errorf("%s: last log record %+v, want a stop record", tc.name, last)
		}
	}
}

// TestNonFiniteWeightsStop: a finite loss and gradient whose update makes
// the weights overflow (AdamW with a weight decay of 1e38 multiplies them
// by about −1e34 per step) stops the run at the step that overflows, naming
// the weights; the last checkpoint written before it is kept and finite.
func TestNonFiniteWeightsStop(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Train.Optimizer, cfg.Train.WeightDecay, cfg.Train.WarmupSteps = "adamw", 1e38, 0
	cfg.Train.CheckpointEvery, cfg.Train.KeepCheckpoints = 1, 5
	err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: testData(t, 10)}))
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "step 2 of 12") || !strings.Contains(err.Error(), "weights") ||
		!strings.Contains(err.Error(), "train.weight_decay 1e+38") || !strings.Contains(err.Error(), CheckpointPath(dir, 1)) {
		t.Fatalf("error %v, want ErrNonFinite naming step 2, the weights, the weight decay and the step-1 checkpoint", err)
	}
	if steps, _ := ListCheckpoints(dir); !equalInts(steps, []int{1}) {
		t.Errorf("checkpoints %v, want [1]", steps)
	}
	c := readCkpt(t, dir, 1)
	for name, p := range c.Params {
		for _, v := range tensors.F32(p) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("the kept checkpoint's %s holds %v", name, v)
			}
		}
	}
}

// TestBadInputBeforeAnyStep: every problem found before training starts is
// an error naming it, and no step runs.
func TestBadInputBeforeAnyStep(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(blocker, []byte("x"), 0o644)
	withCkpt := t.TempDir()
	if err := Run(context.Background(), testConfig(withCkpt), quiet(RunOptions{NewModel: fakeFactory(2, nil, nil), Dataset: testData(t, 10)})); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		edit   func(*config.Config)
		ds     *data.Dataset
		resume bool
		want   string
	}{
		{"missing dataset", func(c *config.Config) { c.Data.Dir = filepath.Join(t.TempDir(), "nope") }, nil, false, "does not exist"},
		{"empty image folder", func(c *config.Config) { c.Data.Dir = t.TempDir() }, nil, false, "dataset"},
		{"mnist folder without files", func(c *config.Config) {
			c.Data = config.Data{Dataset: "mnist", Dir: t.TempDir(), Split: "train"}
			c.Model.ImageSize = 28
		}, nil, false, "dataset"},
		{"bad lr", func(c *config.Config) { c.Train.LR = -1 }, testData(t, 10), false, "train.lr"},
		{"bad prediction", func(c *config.Config) { c.Diffusion.Prediction = "score" }, testData(t, 10), false, "diffusion.prediction"},
		{"learn_sigma without learned_range", func(c *config.Config) { c.Model.LearnSigma = true }, testData(t, 10), false, "learned_range"},
		{"unwritable out", func(c *config.Config) { c.Train.Out = filepath.Join(blocker, "run") }, testData(t, 10), false, "train.out"},
		{"existing run without resume", func(c *config.Config) { c.Train.Out = withCkpt }, testData(t, 10), false, "--resume"},
		{"resume with another seed", func(c *config.Config) { c.Train.Out = withCkpt; c.Train.Seed = 77 }, testData(t, 10), true, "train.seed"},
		{"image size mismatch", func(c *config.Config) { c.Model.ImageSize = 16 }, testData(t, 10), false, "16×16"},
		{"batch larger than dataset", func(c *config.Config) { c.Train.BatchSize = 11 }, testData(t, 10), false, "train.batch_size"},
	} {
		cfg := testConfig(t.TempDir())
		tc.edit(cfg)
		var made []*fakeNet
		err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: fakeFactory(2, &made, nil), Dataset: tc.ds, Resume: tc.resume}))
		t.Logf("%s: %v", tc.name, err)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
		for _, f := range made {
			if f.calls != 0 {
				t.Errorf("%s: %d training steps ran before the error", tc.name, f.calls)
			}
		}
	}
	if err := Run(context.Background(), nil, RunOptions{}); err == nil {
		t.Error("nil config accepted")
	}
}

// TestCancelCheckpoints: cancelling the context writes a checkpoint of the
// steps done, from which a resume finishes with the uninterrupted bits.
func TestCancelCheckpoints(t *testing.T) {
	ds := testData(t, 10)
	ref := t.TempDir()
	Run(context.Background(), testConfig(ref), quiet(RunOptions{NewModel: fakeFactory(3, nil, nil), Dataset: ds}))
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	stopAt5 := func(f *fakeNet) {}
	var made []*fakeNet
	cfg := testConfig(dir)
	newModel := func(c *config.Config, rng *rand.Rand) (Network, error) {
		m, err := fakeFactory(3, &made, stopAt5)(c, rng)
		return cancelAfter{m.(*fakeNet), 5, cancel}, err
	}
	err := Run(ctx, cfg, quiet(RunOptions{NewModel: newModel, Dataset: ds}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v, want context.Canceled", err)
	}
	if steps, _ := ListCheckpoints(dir); !equalInts(steps, []int{4, 5}) {
		t.Fatalf("checkpoints after cancel %v, want [4 5]", steps)
	}
	if err := Run(context.Background(), testConfig(dir), quiet(RunOptions{NewModel: fakeFactory(3, nil, nil), Dataset: ds, Resume: true})); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "after cancel and resume", readCkpt(t, ref, 12), readCkpt(t, dir, 12))
}

// cancelAfter cancels a context during the given LossGrad call.
type cancelAfter struct {
	*fakeNet
	at     int
	cancel context.CancelFunc
}

func (c cancelAfter) LossGrad(xt *tensor.Dense, t []int, seed int64, loss LossFunc) (float64, error) {
	l, err := c.fakeNet.LossGrad(xt, t, seed, loss)
	if c.fakeNet.calls == c.at {
		c.cancel()
	}
	return l, err
}

// TestMNISTSmoke trains 3 steps on the real MNIST files when present.
func TestMNISTSmoke(t *testing.T) {
	dir := "../../shared/data/mnist"
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no MNIST at %s", dir)
	}
	cfg := config.Default()
	cfg.Data.Dir, cfg.Data.Limit = dir, 64
	cfg.Train.Steps, cfg.Train.BatchSize, cfg.Train.Out, cfg.Train.CheckpointEvery = 3, 8, t.TempDir(), 3
	if err := Run(context.Background(), &cfg, quiet(RunOptions{NewModel: fakeFactory(2, nil, nil)})); err != nil {
		t.Fatal(err)
	}
	if c := readCkpt(t, cfg.Train.Out, 3); c.Config.Data.Dir != dir {
		t.Errorf("checkpoint config data.dir %q, want %q", c.Config.Data.Dir, dir)
	}
}

func TestPlotLossEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		steps  []int
		losses []float64
	}{
		{"empty", nil, nil},
		{"one point", []int{10}, []float64{0.5}},
		{"constant", []int{1, 2, 3}, []float64{0.2, 0.2, 0.2}},
		{"with zero and NaN", []int{1, 2, 3}, []float64{0.3, 0, math.NaN()}},
		{"negative", []int{1, 2}, []float64{-1, 2}},
	} {
		png, err := PlotLoss(tc.steps, tc.losses, tc.name)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Errorf("%s: %d bytes, %v; want a PNG", tc.name, len(png), err)
		}
	}
	if _, err := PlotLoss([]int{1}, nil, "x"); err == nil {
		t.Error("1 step and 0 losses accepted")
	}
}

// TestInitFromModel: a fresh run with Init starts from the file's EMA
// weights (weights and EMA equal to them, Adam at zero, step 0) instead of
// the seeded initialisation, from a model file or a training checkpoint;
// resuming the run's own checkpoint ignores Init; a file of another
// network is an error naming the tensor.
func TestInitFromModel(t *testing.T) {
	ds := testData(t, 12)
	src := t.TempDir()
	if err := Run(context.Background(), testConfig(src), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	want, _, err := LoadModel(filepath.Join(src, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{filepath.Join(src, ModelFile), CheckpointPath(src, 12)} {
		dir := t.TempDir()
		r, err := setup(testConfig(dir), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Init: from}))
		if err != nil {
			t.Fatal(err)
		}
		r.log.Close()
		for i, n := range r.names {
			w := tensors.F32(want[n])
			for j := range w {
				if r.params[i][j] != w[j] || r.ema.Values[i][j] != w[j] || r.adam.M[i][j] != 0 || r.adam.V[i][j] != 0 {
					t.Fatalf("init from %s: %s[%d]: weight %g, EMA %g, Adam %g/%g; want %g, %g, 0, 0",
						from, n, j, r.params[i][j], r.ema.Values[i][j], r.adam.M[i][j], r.adam.V[i][j], w[j], w[j])
				}
			}
		}
		if r.step != 0 {
			t.Errorf("init from %s: step %d, want 0", from, r.step)
		}
	}

	// A run with Init trains, and resuming it continues from its own
	// checkpoint exactly as an uninterrupted run (Init is not re-applied).
	full, killed := t.TempDir(), t.TempDir()
	init := filepath.Join(src, ModelFile)
	if err := Run(context.Background(), testConfig(full), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Init: init})); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), testConfig(killed), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Init: init, haltAfter: 7})); !errors.Is(err, errHalted) {
		t.Fatalf("halted run: %v", err)
	}
	if err := Run(context.Background(), testConfig(killed), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Init: init, Resume: true})); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "init run resumed", readCkpt(t, full, 12), readCkpt(t, killed, 12))
	seeded := t.TempDir()
	Run(context.Background(), testConfig(seeded), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds}))
	if bytes.Equal(f32bytes(readCkpt(t, full, 12).Params["w1"]), f32bytes(readCkpt(t, seeded, 12).Params["w1"])) {
		t.Error("a run with Init ended with the same weights as the seeded run")
	}
	recs, err := readLog(filepath.Join(full, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Init != init {
		t.Errorf("run record init %q, want %q", recs[0].Init, init)
	}
	if recs, err := readLog(filepath.Join(killed, LogFile)); err != nil {
		t.Fatal(err)
	} else if last := lastRun(recs); last.Init != "" || last.ResumeFrom == nil || *last.ResumeFrom == 0 {
		t.Errorf("resumed run record %+v, want resume_from > 0 and no init (the checkpoint set the weights)", last)
	}

	// Another network's weights, a missing file.
	other := t.TempDir()
	if err := Run(context.Background(), testConfig(other), quiet(RunOptions{NewModel: fakeFactory(6, nil, nil), Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, want string }{
		{filepath.Join(other, ModelFile), "shape"},
		{filepath.Join(src, "none.safetensors"), "none.safetensors"},
	} {
		_, err := setup(testConfig(t.TempDir()), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Init: tc.from}))
		if err == nil || !strings.Contains(err.Error(), "--init") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("init from %s: err = %v, want one naming --init and %q", tc.from, err, tc.want)
		}
	}
}

// lastRun returns the last "run" record of a log.
func lastRun(recs []Record) Record {
	var r Record
	for _, x := range recs {
		if x.Type == "run" {
			r = x
		}
	}
	return r
}

// TestStopAt: a run told to stop at step 7 of 12 (not a checkpoint step)
// leaves a step-7 checkpoint, a model file and a "stop" record; resuming it
// gives the uninterrupted run's bits, since the learning-rate schedule
// still spans train.steps. Stop steps outside 1..train.steps, or behind the
// run, are errors that name them.
func TestStopAt(t *testing.T) {
	ds := testData(t, 10)
	full, split := t.TempDir(), t.TempDir()
	if err := Run(context.Background(), testConfig(full), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	var made []*fakeNet
	if err := Run(context.Background(), testConfig(split), quiet(RunOptions{NewModel: fakeFactory(4, &made, nil), Dataset: ds, StopAt: 7})); err != nil {
		t.Fatalf("stop at 7: %v", err)
	}
	if made[0].calls != 7 {
		t.Errorf("stopped run took %d steps, want 7", made[0].calls)
	}
	if steps, _ := ListCheckpoints(split); !equalInts(steps, []int{4, 7}) {
		t.Errorf("stopped run left checkpoints %v, want [4 7]", steps)
	}
	if _, err := os.Stat(filepath.Join(split, ModelFile)); err != nil {
		t.Errorf("stopped run: model file: %v", err)
	}
	recs, _ := readLog(filepath.Join(split, LogFile))
	if last := recs[len(recs)-1]; last.Type != "stop" || last.Step != 7 {
		t.Errorf("stopped run's last log record %+v, want a stop at step 7", last)
	}
	// Resuming with the same stop step does nothing; behind it is an error.
	if err := Run(context.Background(), testConfig(split), quiet(RunOptions{NewModel: fakeFactory(4, &made, nil), Dataset: ds, Resume: true, StopAt: 7})); err != nil {
		t.Errorf("resume at its stop step: %v", err)
	}
	if err := Run(context.Background(), testConfig(split), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Resume: true, StopAt: 5})); err == nil || !strings.Contains(err.Error(), "stop at step 5") || !strings.Contains(err.Error(), "already at step 7") {
		t.Errorf("stop behind the run: error %v", err)
	}
	if err := Run(context.Background(), testConfig(split), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Resume: true})); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "final checkpoint", readCkpt(t, full, 12), readCkpt(t, split, 12))
	for _, bad := range []int{-1, 13} {
		err := Run(context.Background(), testConfig(t.TempDir()), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, StopAt: bad}))
		if want := fmt.Sprintf("stop at step %d, want 1 to train.steps (12)", bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("StopAt %d: error %v, want one containing %q", bad, err, want)
		}
	}
}

// TestResumeChanges: a resume that changes a trajectory setting (train.lr,
// train.ema_decay, ...) is refused, naming the keys and the flag that
// allows it; allowed, it runs and the run record lists the change; model,
// diffusion and data changes are refused even when "allowed".
func TestResumeChanges(t *testing.T) {
	ds := testData(t, 10)
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Train.Steps = 4
	if err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	more := *cfg
	more.Train.Steps = 8
	more.Train.LR *= 2
	more.Train.EMADecay = 0.5
	err := Run(context.Background(), &more, quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Resume: true}))
	if err == nil || !strings.Contains(err.Error(), "--resume-changes train.ema_decay,train.lr") || !strings.Contains(err.Error(), "train.ema_decay: 0.5 (checkpoint: ") {
		t.Fatalf("resume with a changed lr and EMA decay: %v, want an error naming both and --resume-changes", err)
	}
	if err := Run(context.Background(), &more, quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Resume: true,
		ResumeChanges: []string{"train.lr", "train.ema_decay"}})); err != nil {
		t.Fatalf("allowed changes: %v", err)
	}
	recs, _ := readLog(filepath.Join(dir, LogFile))
	var runs []Record
	for _, r := range recs {
		if r.Type == "run" {
			runs = append(runs, r)
		}
	}
	if len(runs) != 2 || len(runs[1].Changed) != 2 || !strings.HasPrefix(runs[1].Changed[1], "train.lr: ") || len(runs[0].Changed) != 0 {
		t.Errorf("run records' changes: %+v, want the resumed run's two", runs)
	}
	bad := more
	bad.Train.Steps, bad.Train.BatchSize = 12, cfg.Train.BatchSize+1
	if err := Run(context.Background(), &bad, quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds, Resume: true,
		ResumeChanges: []string{"train.batch_size"}})); err == nil || !strings.Contains(err.Error(), "want the same values to resume") {
		t.Errorf("changed batch size: %v, want it refused", err)
	}
}

// TestOutputFolderLocked: a second trainer on a folder in use is refused
// naming the holder, the folder is free again after the run, and the
// temporary files of killed writes are cleaned when a run takes the folder.
func TestOutputFolderLocked(t *testing.T) {
	ds := testData(t, 10)
	dir := t.TempDir()
	held, err := dirlock.Acquire(dir, "training")
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), testConfig(dir), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds}))
	if !errors.Is(err, dirlock.ErrBusy) || !strings.Contains(err.Error(), "train.out") {
		t.Fatalf("second trainer: %v, want ErrBusy naming train.out", err)
	}
	held.Release()
	stale := filepath.Join(dir, CheckpointDir, ".step-00000002.safetensors.tmp-123")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("half"), 0o644)
	if err := Run(context.Background(), testConfig(dir), quiet(RunOptions{NewModel: fakeFactory(4, nil, nil), Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("stale temporary file %s kept", stale)
	}
	again, err := dirlock.Acquire(dir, "training")
	if err != nil {
		t.Fatalf("after the run: %v", err)
	}
	again.Release()
}
