package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/inverse/baseline"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/sample"
)

// RangeError reports a config value outside what its key accepts.
type RangeError struct {
	Key   string // the dotted key, e.g. "train.lr"
	Value any    // the offending value
	Want  string // what was expected, e.g. "> 0"
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("config key %s: value %v is out of range, want %s", e.Key, e.Value, e.Want)
}

// finiteFields reports every float that is NaN or infinite in v (a
// struct, map or slice of the config), named by its dotted yaml key: a
// NaN passes every comparison the range checks make (grad_clip NaN would
// silently turn clipping off), so non-finite values are refused first.
func finiteFields(k *checker, v reflect.Value, key string) {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if !v.IsNil() {
			finiteFields(k, v.Elem(), key)
		}
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			k.fail(key, f, "a finite number")
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			sub := key
			if name != "" {
				sub = joinKey(key, name)
			}
			finiteFields(k, v.Field(i), sub)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			finiteFields(k, iter.Value(), joinKey(key, fmt.Sprint(iter.Key().Interface())))
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			finiteFields(k, v.Index(i), fmt.Sprintf("%s[%d]", key, i))
		}
	}
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// checker accumulates range errors so that one run reports all of them.
type checker struct{ errs []error }

func (c *checker) fail(key string, v any, want string) {
	c.errs = append(c.errs, &RangeError{Key: key, Value: v, Want: want})
}

func (c *checker) positive(key string, v int) {
	if v <= 0 {
		c.fail(key, v, "> 0")
	}
}

func (c *checker) nonNegative(key string, v int) {
	if v < 0 {
		c.fail(key, v, ">= 0")
	}
}

func (c *checker) unit(key string, v float64, openLow, openHigh bool) {
	low := v < 0 || (openLow && v == 0)
	high := v > 1 || (openHigh && v == 1)
	if low || high {
		l, h := "[", "]"
		if openLow {
			l = "("
		}
		if openHigh {
			h = ")"
		}
		c.fail(key, v, "in "+l+"0, 1"+h)
	}
}

func (c *checker) oneOf(key, v string, valid ...string) {
	for _, s := range valid {
		if v == s {
			return
		}
	}
	c.fail(key, fmt.Sprintf("%q", v), "one of "+strings.Join(valid, ", "))
}

// MaxDiffusionSteps caps diffusion.steps: the schedule's arrays are
// allocated per step, so 2e9 steps would exhaust memory before any error.
const MaxDiffusionSteps = 100000

// Validate checks every value against its range and the sections against
// each other, returning all problems found (joined), or nil.
func (c *Config) Validate() error {
	var k checker
	finiteFields(&k, reflect.ValueOf(*c), "")
	m := c.Model
	if err := m.Validate(); err != nil {
		k.errs = append(k.errs, err)
	}

	d := c.Diffusion
	k.positive("diffusion.steps", d.Steps)
	if d.Steps > MaxDiffusionSteps {
		k.fail("diffusion.steps", d.Steps, fmt.Sprintf("<= %d (DDPM trains with 1000; a longer schedule only costs memory)", MaxDiffusionSteps))
	}
	k.oneOf("diffusion.schedule", d.Schedule, diffusion.ScheduleKinds()...)
	k.unit("diffusion.beta_start", d.BetaStart, true, true)
	k.unit("diffusion.beta_end", d.BetaEnd, true, true)
	if d.BetaStart > d.BetaEnd {
		k.fail("diffusion.beta_start", d.BetaStart, fmt.Sprintf("<= diffusion.beta_end (%v)", d.BetaEnd))
	}
	k.oneOf("diffusion.prediction", d.Prediction, diffusion.Predictions()...)
	k.oneOf("diffusion.variance", d.Variance, diffusion.Variances()...)
	if d.Variance == diffusion.VarianceLearnedRange && !m.LearnSigma {
		k.fail("diffusion.variance", `"learned_range"`, "model.learn_sigma: true (a network that predicts the variance)")
	}

	t := c.Train
	k.positive("train.steps", t.Steps)
	k.positive("train.batch_size", t.BatchSize)
	k.oneOf("train.optimizer", t.Optimizer, "adam", "adamw")
	if !(t.LR > 0 && t.LR < 1) {
		k.fail("train.lr", t.LR, "in (0, 1)")
	}
	if t.WeightDecay < 0 {
		k.fail("train.weight_decay", t.WeightDecay, ">= 0")
	}
	k.nonNegative("train.warmup_steps", t.WarmupSteps)
	if t.LRDecay != "" { // empty: a run config written before the key (constant)
		k.oneOf("train.lr_decay", t.LRDecay, LRConstant, LRCosine)
	}
	if t.LossWeight != "" { // empty: a run config written before the key (uniform)
		k.oneOf("train.loss_weight", t.LossWeight, WeightUniform, WeightMinSNR, WeightP2)
	}
	if !(t.LossWeightGamma >= 0) || math.IsInf(t.LossWeightGamma, 0) {
		k.fail("train.loss_weight_gamma", t.LossWeightGamma, ">= 0 and finite (0: the method's paper value)")
	}
	if t.LossWeight == WeightP2 && (!(t.LossWeightK >= 0) || math.IsInf(t.LossWeightK, 0)) {
		k.fail("train.loss_weight_k", t.LossWeightK, ">= 0 and finite")
	}
	if t.GradClip < 0 {
		k.fail("train.grad_clip", t.GradClip, ">= 0 (0 disables clipping)")
	}
	k.unit("train.ema_decay", t.EMADecay, false, true)
	k.positive("train.checkpoint_every", t.CheckpointEvery)
	k.positive("train.keep_checkpoints", t.KeepCheckpoints)
	k.positive("train.log_every", t.LogEvery)
	k.nonNegative("train.sample_every", t.SampleEvery)
	if t.Out == "" {
		k.fail("train.out", `""`, "an output folder")
	}

	s := c.Sample
	k.oneOf("sample.sampler", s.Sampler, sample.Names()...)
	k.positive("sample.steps", s.Steps)
	k.oneOf("sample.spacing", s.Spacing, diffusion.SpacingUniform, diffusion.SpacingQuad)
	if d.Steps > 0 && s.Steps > d.Steps {
		k.fail("sample.steps", s.Steps, fmt.Sprintf("<= diffusion.steps (%d)", d.Steps))
	}
	if s.Eta < 0 {
		k.fail("sample.eta", s.Eta, ">= 0")
	}
	k.positive("sample.num_samples", s.NumSamples)
	k.positive("sample.batch_size", s.BatchSize)
	k.oneOf("sample.predictor", s.Predictor, sample.Predictors()...)
	k.oneOf("sample.corrector", s.Corrector, sample.Correctors()...)
	if !(s.SNR > 0) {
		k.fail("sample.snr", s.SNR, "> 0")
	}
	k.nonNegative("sample.corrector_steps", s.CorrectorSteps)
	if !(s.LangevinStepSize > 0) {
		k.fail("sample.langevin_step_size", s.LangevinStepSize, "> 0")
	}
	k.positive("sample.langevin_steps", s.LangevinSteps)
	k.oneOf("sample.ode_method", s.ODEMethod, sample.ODEMethods()...)

	a := c.Data
	k.oneOf("data.dataset", a.Dataset, data.Kinds()...)
	if a.Dir == "" {
		k.fail("data.dir", `""`, "the folder holding the data")
	}
	if splits := data.Splits(a.Dataset); splits != nil {
		k.oneOf("data.split", a.Split, splits...)
	}
	if a.Dataset == "mnist" {
		if m.InChannels != 1 {
			k.fail("model.in_channels", m.InChannels, "1 for data.dataset mnist")
		}
		if m.ImageSize < 28 {
			k.fail("model.image_size", m.ImageSize, ">= 28 for data.dataset mnist (digits are padded, not shrunk)")
		}
	}
	if a.Dataset == "celeba" {
		if m.InChannels != 3 {
			k.fail("model.in_channels", m.InChannels, "3 for data.dataset celeba")
		}
	}
	if c.Measurement.Operator.Name == "" {
		k.fail("measurement.operator.name", `""`, "an operator name")
	}
	n := c.Measurement.Noise
	k.oneOf("measurement.noise.name", n.Name, op.NoiseNames()...)
	if n.Sigma < 0 {
		k.fail("measurement.noise.sigma", n.Sigma, ">= 0")
	}
	if n.Sigma01 < 0 {
		k.fail("measurement.noise.sigma_01", n.Sigma01, ">= 0 (σ on [0, 1] images; sigma = 2·sigma_01)")
	}
	if n.Name == "poisson" && !(n.Rate > 0) {
		k.fail("measurement.noise.rate", n.Rate, "> 0 for poisson noise")
	}
	if c.Solver.Method == "" {
		// The name itself is checked by inverse/pipeline against the solver
		// registry (package solve's tests load configs, so config does not
		// import it).
		k.fail("solver.method", `""`, "a solver name")
	}
	k.oneOf("solver.baseline", c.Solver.Baseline, append(append([]string{"auto"}, baseline.Names()...), "none")...)
	k.positive("solver.batch_size", c.Solver.BatchSize)
	cl := c.Classifier
	k.positive("classifier.epochs", cl.Epochs)
	k.positive("classifier.batch_size", cl.BatchSize)
	if !(cl.LR > 0 && cl.LR < 1) {
		k.fail("classifier.lr", cl.LR, "in (0, 1)")
	}
	k.unit("classifier.final_lr_factor", cl.FinalLRFactor, true, false)
	k.nonNegative("classifier.max_steps", cl.MaxSteps)
	k.positive("classifier.ref_n", cl.RefN)
	if cl.Out == "" {
		k.fail("classifier.out", `""`, "a classifier file")
	}
	k.nonNegative("data.crop", a.Crop)
	k.nonNegative("data.limit", a.Limit)
	if p := c.Engine.Precision; p != "" { // empty: auto
		k.oneOf("engine.precision", p, PrecisionAuto, PrecisionBF16, PrecisionFP32)
	}
	return errors.Join(k.errs...)
}
