// Package eval draws samples from a model as its config's sample section
// says and scores them on the MNIST evaluation classifier: the engine of
// `diffinv eval samples` (and of sample and the face evaluation's drawing)
// and of the experiments' training cells, which evaluate each trained
// model with the same protocol.
package eval

import (
	"fmt"
	"math/rand"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/sysmem"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/metrics"
	"github.com/diffinv/diffinv/prior"
	"github.com/diffinv/diffinv/sample"
)

// Protocol is the quality gate's sampling protocol (the preset layer of
// `diffinv eval samples`): DDIM, 50 steps, 1000 samples, seed 1.
var Protocol = config.Preset{Name: "eval samples protocol", YAML: []byte("sample:\n  sampler: ddim\n  steps: 50\n  num_samples: 1000\n  seed: 1\n")}

// SampleKID is the KID estimator of the sample report: 100 subsets of up
// to 1000 features.
var SampleKID = metrics.KIDOptions{Subsets: 100, SubsetSize: 1000}

// SamplerOptions maps the config's sample and diffusion sections onto the
// samplers' option structs.
func SamplerOptions(cfg *config.Config) (sample.Options, error) {
	s := cfg.Sample
	o := sample.DefaultOptions()
	o.DDPM.Variance = cfg.Diffusion.Variance
	o.DDPM.ClipX0 = s.ClipX0
	o.DDIM.Eta = s.Eta
	o.DDIM.ClipX0 = s.ClipX0
	o.EM.Denoise = s.Denoise
	o.PC.Predictor = s.Predictor
	o.PC.Corrector = s.Corrector
	o.PC.SNR = s.SNR
	o.PC.CorrectorSteps = s.CorrectorSteps
	o.PC.Denoise = s.Denoise
	o.ALD.StepSize = s.LangevinStepSize
	o.ALD.StepsPerLevel = s.LangevinSteps
	o.ALD.Denoise = s.Denoise
	o.ODE.Method = s.ODEMethod
	o.ODE.Denoise = s.Denoise
	for name, err := range map[string]error{"ddpm": o.DDPM.Validate(), "ddim": o.DDIM.Validate(), "pc": o.PC.Validate(), "ald": o.ALD.Validate(), "ode": o.ODE.Validate()} {
		if err != nil && name == s.Sampler {
			return o, err
		}
	}
	return o, nil
}

// Draw draws cfg.Sample.NumSamples samples in batches of
// cfg.Sample.BatchSize with the configured sampler. Sample k has its own
// random stream, diffusion.ImageRNGs(cfg.Sample.Seed, k, 1): its x_T is
// drawn from it first, then the sampler's noise, so sample k is the same
// whatever the batch size. progress gets the sampler steps done over all
// batches (of NumSamples × sched.Len()).
func Draw(cfg *config.Config, den diffusion.Denoiser, sched *diffusion.Schedule, opts sample.Options, progress func(done int)) (*tensor.Dense, error) {
	s := cfg.Sample
	c, size := cfg.Model.InChannels, cfg.Model.ImageSize
	d := c * size * size
	// The samples (and what a caller makes of them: a grid, a file's copy,
	// features) must fit: refused up front rather than by the OOM killer.
	if err := sysmem.Check(3*4*float64(s.NumSamples)*float64(d),
		fmt.Sprintf("%d samples of %d×%d×%d (sample.num_samples, --n)", s.NumSamples, c, size, size)); err != nil {
		return nil, err
	}
	all := tensors.New(s.NumSamples, c, size, size)
	for done := 0; done < s.NumSamples; {
		b := min(s.BatchSize, s.NumSamples-done)
		rngs := diffusion.ImageRNGs(s.Seed, done, b)
		xT := tensors.New(b, c, size, size)
		for k, r := range rngs {
			copy(tensors.F32(xT)[k*d:], tensors.F32(tensors.Randn(r, 1, c, size, size)))
		}
		base := done * sched.Len()
		x, err := sample.Run(s.Sampler, den, xT, sched, opts, rngs, func(st diffusion.Step) {
			progress(base + st.Step*b)
		})
		if err != nil {
			return nil, err
		}
		copy(tensors.F32(all)[done*d:], tensors.F32(x))
		done += b
		progress(done * sched.Len())
	}
	return all, nil
}

// Steps is the number of sampler steps Samples runs (NumSamples × the
// respaced schedule's length), for a progress bar.
func Steps(cfg *config.Config) int { return cfg.Sample.NumSamples * cfg.Sample.Steps }

// Samples draws cfg.Sample's samples from net (its schedule from
// cfg.Diffusion respaced to sample.steps) and scores them on the MNIST
// classifier c against ref: FID, KID (SampleKID, subsets drawn with
// sample.seed), the confident share and the class histogram. progress
// gets the sampler steps done (of Steps(cfg)); it may be nil. It also
// returns the samples (N×C×H×W in [-1, 1], as drawn) so that a caller can
// look at them, e.g. at the report's least confident ones.
func Samples(cfg *config.Config, net diffusion.Denoiser, c *metrics.Classifier, ref *metrics.Reference, progress func(done int)) (metrics.SampleReport, *tensor.Dense, error) {
	if progress == nil {
		progress = func(int) {}
	}
	s := cfg.Sample
	sched, den, err := prior.ScheduleSpaced(cfg.Diffusion, s.Steps, s.Spacing, net)
	if err != nil {
		return metrics.SampleReport{}, nil, err
	}
	opts, err := SamplerOptions(cfg)
	if err != nil {
		return metrics.SampleReport{}, nil, err
	}
	all, err := Draw(cfg, den, sched, opts, progress)
	if err != nil {
		return metrics.SampleReport{}, nil, fmt.Errorf("eval: %w", err)
	}
	rep, err := metrics.NewSampleReport(c, all, ref, SampleKID, rand.New(rand.NewSource(s.Seed)))
	return rep, all, err
}
