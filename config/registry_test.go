package config

import (
	"strings"
	"testing"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/inverse/baseline"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/sample"
)

// TestValidateAsksRegistries: every name a registry offers validates under
// its config key, and a name no registry has is refused with the
// registry's list in the error, so adding a sampler, solver, noise model,
// schedule or dataset kind needs no edit here.
func TestValidateAsksRegistries(t *testing.T) {
	cases := []struct {
		key   string
		names []string
		set   func(c *Config, v string)
	}{
		{"sample.sampler", sample.Names(), func(c *Config, v string) { c.Sample.Sampler = v }},
		{"sample.predictor", sample.Predictors(), func(c *Config, v string) { c.Sample.Predictor = v }},
		{"sample.corrector", sample.Correctors(), func(c *Config, v string) { c.Sample.Corrector = v }},
		{"sample.ode_method", sample.ODEMethods(), func(c *Config, v string) { c.Sample.ODEMethod = v }},
		{"solver.baseline", baseline.Names(), func(c *Config, v string) { c.Solver.Baseline = v }},
		{"measurement.noise.name", op.NoiseNames(), func(c *Config, v string) { c.Measurement.Noise.Name = v; c.Measurement.Noise.Rate = 10 }},
		{"diffusion.schedule", diffusion.ScheduleKinds(), func(c *Config, v string) { c.Diffusion.Schedule = v }},
		{"data.dataset", data.Kinds(), func(c *Config, v string) {
			c.Data.Dataset = v
			if v == "celeba" {
				c.Model.InChannels, c.Data.Split = 3, "train"
			}
		}},
	}
	for _, c := range cases {
		if len(c.names) == 0 {
			t.Fatalf("%s: the registry lists no names", c.key)
		}
		for _, n := range c.names {
			cfg := Default()
			c.set(&cfg, n)
			if err := cfg.Validate(); err != nil {
				t.Errorf("%s = %q (a registered name): %v", c.key, n, err)
			}
		}
		cfg := Default()
		c.set(&cfg, "no-such-name")
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), c.names[0]) {
			t.Errorf("%s = \"no-such-name\": error %v, want it to name the key and list %q…", c.key, err, c.names[0])
		}
	}
}

func TestNewScheduleFromConfig(t *testing.T) {
	d := Default().Diffusion
	d.Schedule = "cosine" // beta_start/beta_end stay at their linear defaults and are ignored
	s, err := d.NewSchedule()
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := diffusion.NewSchedule("cosine", d.Steps, 0, 0)
	if s.AlphaBar(500) != ref.AlphaBar(500) {
		t.Errorf("cosine ᾱ_500 = %g, want %g", s.AlphaBar(500), ref.AlphaBar(500))
	}
}
