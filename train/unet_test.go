package train

import (
	"context"
	"errors"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/nn"
	"gorgonia.org/tensor"
)

// mseOnly hides a fakeNet's LossGrad: an MSETrainable computing the MSE
// itself, as the UNet's training graph does.
type mseOnly struct{ f *fakeNet }

func (m mseOnly) ParamNames() []string            { return m.f.ParamNames() }
func (m mseOnly) Param(name string) *tensor.Dense { return m.f.Param(name) }
func (m mseOnly) Grad(name string) *tensor.Dense  { return m.f.Grad(name) }
func (m mseOnly) MSEGrad(xt *tensor.Dense, t []int, target *tensor.Dense, seed int64) (float64, error) {
	return m.f.LossGrad(xt, t, seed, func(out *tensor.Dense) (float64, *tensor.Dense, error) {
		y, tg := tensors.F32(out), tensors.F32(target)
		d := tensors.Like(out)
		var s float64
		for i := range y {
			r := float64(y[i]) - float64(tg[i])
			s += r * r
			tensors.F32(d)[i] = float32(2 * r / float64(len(y)))
		}
		return s / float64(len(y)), d, nil
	})
}

// TestMSEPathEqualsGeneralPath: training through MSEGrad with the loop's
// targets gives the bits of training through LossGrad and the Objective,
// for every prediction; learn_sigma needs LossGrad.
func TestMSEPathEqualsGeneralPath(t *testing.T) {
	ds := testData(t, 10)
	for _, pred := range []string{"eps", "x0", "v"} {
		a, b := t.TempDir(), t.TempDir()
		ca, cb := testConfig(a), testConfig(b)
		ca.Diffusion.Prediction, cb.Diffusion.Prediction = pred, pred
		if err := Run(context.Background(), ca, quiet(RunOptions{NewModel: fakeFactory(3, nil, nil), Dataset: ds})); err != nil {
			t.Fatal(err)
		}
		mse := func(c *config.Config, rng *rand.Rand) (Network, error) {
			n, err := fakeFactory(3, nil, nil)(c, rng)
			return mseOnly{n.(*fakeNet)}, err
		}
		if err := Run(context.Background(), cb, quiet(RunOptions{NewModel: mse, Dataset: ds})); err != nil {
			t.Fatal(err)
		}
		sameBits(t, pred+": MSE path vs general path", readCkpt(t, a, 12), readCkpt(t, b, 12))
	}
	c := testConfig(t.TempDir())
	c.Model.LearnSigma, c.Diffusion.Variance = true, "learned_range"
	mse := func(c *config.Config, rng *rand.Rand) (Network, error) {
		n, err := fakeFactory(3, nil, nil)(c, rng)
		return mseOnly{n.(*fakeNet)}, err
	}
	if err := Run(context.Background(), c, quiet(RunOptions{NewModel: mse, Dataset: ds})); err == nil || !strings.Contains(err.Error(), "learn_sigma") {
		t.Errorf("learn_sigma with an MSE-only network: error %v, want one naming learn_sigma", err)
	}
	c = testConfig(t.TempDir())
	c.Train.LossWeight = config.WeightMinSNR
	if err := Run(context.Background(), c, quiet(RunOptions{NewModel: mse, Dataset: ds})); err == nil || !strings.Contains(err.Error(), "train.loss_weight min_snr") {
		t.Errorf("a weighted loss with an MSE-only network: error %v, want one naming train.loss_weight", err)
	}
}

// tinyUNetConfig trains guided-diffusion's UNet at 8×8 for 6 steps.
func tinyUNetConfig(out string) *config.Config {
	c := testConfig(out)
	c.Model = config.Model{ImageSize: 8, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{4}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true,
		ConvResample: true, Dropout: 0.1}
	c.Train.Steps, c.Train.CheckpointEvery, c.Train.SampleEvery = 6, 2, 0
	return c
}

// TestUNetWeightedLoss: a weighted loss builds the UNet with the
// external-loss graph, and training with it moves the weights elsewhere
// than L_simple does (after a few steps: Adam's first step is the sign of
// the gradient, which a reweighting seldom flips).
func TestUNetWeightedLoss(t *testing.T) {
	ds := testData(t, 10)
	a, b := t.TempDir(), t.TempDir()
	ca, cb := tinyUNetConfig(a), tinyUNetConfig(b)
	cb.Train.LossWeight = config.WeightP2
	if n, err := NewUNet(cb, rand.New(rand.NewSource(1))); err != nil {
		t.Fatal(err)
	} else if _, ok := n.(*LossUNet); !ok {
		t.Fatalf("NewUNet with train.loss_weight p2 built a %T, want a *LossUNet", n)
	}
	for _, c := range []*config.Config{ca, cb} {
		if err := Run(context.Background(), c, quiet(RunOptions{NewModel: NewUNet, Dataset: ds})); err != nil {
			t.Fatal(err)
		}
	}
	pa, pb := readCkpt(t, a, 6).Params, readCkpt(t, b, 6).Params
	same := 0
	for n := range pa {
		if equalF32(tensors.F32(pa[n]), tensors.F32(pb[n])) {
			same++
		}
	}
	t.Logf("%d of %d parameters bit-identical", same, len(pa))
	if same > len(pa)/2 {
		t.Errorf("%d of %d parameters are the same after uniform and p2 training", same, len(pa))
	}
}

// TestUNetResume trains the real UNet (through its training graph) with a
// kill after 3 steps and a resume, compares with an uninterrupted run bit
// for bit, and loads the model file with model.Load.
func TestUNetResume(t *testing.T) {
	ds := testData(t, 10)
	a, b := t.TempDir(), t.TempDir()
	if err := Run(context.Background(), tinyUNetConfig(a), quiet(RunOptions{NewModel: NewUNet, Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), tinyUNetConfig(b), quiet(RunOptions{NewModel: NewUNet, Dataset: ds, haltAfter: 3})); !errors.Is(err, errHalted) {
		t.Fatalf("halted run: %v", err)
	}
	if err := Run(context.Background(), tinyUNetConfig(b), quiet(RunOptions{NewModel: NewUNet, Dataset: ds, Resume: true})); err != nil {
		t.Fatal(err)
	}
	ca, cb := readCkpt(t, a, 6), readCkpt(t, b, 6)
	sameBits(t, "UNet final checkpoint", ca, cb)
	u, meta, err := model.Load(filepath.Join(b, ModelFile))
	if err != nil {
		t.Fatalf("model.Load of the run's model file: %v", err)
	}
	for n, p := range u.Params() {
		if !equalF32(tensors.F32(p), tensors.F32(cb.EMA[n])) {
			t.Fatalf("model file parameter %s is not the EMA weights", n)
		}
	}
	rc, err := config.FromYAML([]byte(meta[MetaRunConfig]))
	if err != nil || rc.Train.Seed != 5 || rc.Diffusion.Steps != 100 {
		t.Errorf("run config in the model file: %+v, %v", rc.Train, err)
	}
	// Training moved the weights.
	init, _ := model.New(tinyUNetConfig(a).Model, rand.New(rand.NewSource(InitSeed(5))))
	moved := 0
	for n, p := range init.Params() {
		if !equalF32(tensors.F32(p), tensors.F32(ca.Params[n])) {
			moved++
		}
	}
	if moved < len(ca.Params)/2 {
		t.Errorf("only %d of %d parameters changed in 6 steps", moved, len(ca.Params))
	}
}

// TestUNetLearnSigma trains the real UNet with learn_sigma through the
// external-loss graph and the hybrid loss: a run killed after 3 steps and
// resumed ends bit for bit where an uninterrupted 4-step run ends, the log
// has a variational-bound term, the variance channels of the output layer
// (which the MSE alone leaves at their zero initialisation) moved, and the
// model file loads as a learn_sigma UNet.
func TestUNetLearnSigma(t *testing.T) {
	ds := testData(t, 10)
	mk := func(out string) *config.Config {
		c := tinyUNetConfig(out)
		c.Model.LearnSigma, c.Diffusion.Variance = true, "learned_range"
		c.Train.Steps, c.Train.LogEvery = 4, 1
		return c
	}
	a, b := t.TempDir(), t.TempDir()
	n, err := NewUNet(mk(a), rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.(Trainable); !ok {
		t.Fatalf("NewUNet with learn_sigma gave %T, want a Trainable", n)
	}
	if err := Run(context.Background(), mk(a), quiet(RunOptions{NewModel: NewUNet, Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), mk(b), quiet(RunOptions{NewModel: NewUNet, Dataset: ds, haltAfter: 3})); !errors.Is(err, errHalted) {
		t.Fatalf("halted run: %v", err)
	}
	if err := Run(context.Background(), mk(b), quiet(RunOptions{NewModel: NewUNet, Dataset: ds, Resume: true})); err != nil {
		t.Fatal(err)
	}
	ca, cb := readCkpt(t, a, 4), readCkpt(t, b, 4)
	sameBits(t, "learn_sigma UNet final checkpoint", ca, cb)

	recs, err := readLog(filepath.Join(a, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	vb := 0
	for _, r := range recs {
		if r.Type == "step" && r.VB > 0 && r.Loss > r.MSE {
			vb++
		}
	}
	if vb == 0 {
		t.Errorf("no step record with a positive VB term in %d records", len(recs))
	}

	// out.2 (zero-initialised) maps to 2C channels; its rows C..2C are the
	// variance channels, trained only by the VB term.
	w := tensors.F32(ca.Params["out.2.weight"])
	c := mk(a).Model.InChannels
	rows := len(w) / (2 * c)
	moved := 0
	for _, v := range w[c*rows:] {
		if v != 0 {
			moved++
		}
	}
	if moved == 0 {
		t.Error("the variance channels' output weights did not move")
	}

	u, _, err := model.Load(filepath.Join(a, ModelFile))
	if err != nil {
		t.Fatalf("model.Load of the run's model file: %v", err)
	}
	if !u.Config().LearnSigma {
		t.Error("model file: learn_sigma is false")
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestUNetResumeBF16: in bf16 too, a run killed after 3 steps and resumed
// ends bit for bit where an uninterrupted run ends (oneDNN's kernels and
// the batch split are deterministic), and the bits differ from the fp32
// run's (the precision really changed the arithmetic).
func TestUNetResumeBF16(t *testing.T) {
	if ok, why := nn.BF16Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	ds := testData(t, 10)
	a, b, f := t.TempDir(), t.TempDir(), t.TempDir()
	mk := func(dir string, prec string) *config.Config {
		c := tinyUNetConfig(dir)
		c.Engine.Precision = prec
		return c
	}
	if err := Run(context.Background(), mk(a, "bf16"), quiet(RunOptions{NewModel: NewUNet, Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), mk(b, "bf16"), quiet(RunOptions{NewModel: NewUNet, Dataset: ds, haltAfter: 3})); !errors.Is(err, errHalted) {
		t.Fatalf("halted run: %v", err)
	}
	if err := Run(context.Background(), mk(b, "bf16"), quiet(RunOptions{NewModel: NewUNet, Dataset: ds, Resume: true})); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "bf16 UNet final checkpoint", readCkpt(t, a, 6), readCkpt(t, b, 6))
	if err := Run(context.Background(), mk(f, "fp32"), quiet(RunOptions{NewModel: NewUNet, Dataset: ds})); err != nil {
		t.Fatal(err)
	}
	ca, cf := readCkpt(t, a, 6), readCkpt(t, f, 6)
	same := 0
	for n := range ca.Params {
		if equalF32(tensors.F32(ca.Params[n]), tensors.F32(cf.Params[n])) {
			same++
		}
	}
	if same == len(ca.Params) {
		t.Error("the bf16 run's weights equal the fp32 run's bit for bit: bf16 did not run")
	}
}
