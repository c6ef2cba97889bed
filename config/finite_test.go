package config

import (
	"strings"
	"testing"
)

// TestNonFiniteRejected: NaN and ±Inf, however given (--set, environment,
// YAML's .nan/.inf), are an error naming the key, for every float key and
// the solver's and operator's free-form options; grad_clip NaN would
// otherwise pass every range check and turn clipping off.
func TestNonFiniteRejected(t *testing.T) {
	cases := []struct {
		src Sources
		key string
	}{
		{Sources{Sets: []string{"model.dropout=.nan"}}, "model.dropout"},
		{Sources{Sets: []string{"train.weight_decay=.inf"}}, "train.weight_decay"},
		{Sources{Sets: []string{"train.grad_clip=.nan"}}, "train.grad_clip"},
		{Sources{Sets: []string{"train.ema_decay=.nan"}}, "train.ema_decay"},
		{Sources{Sets: []string{"sample.eta=-.inf"}}, "sample.eta"},
		{Sources{Sets: []string{"sample.snr=.nan"}}, "sample.snr"},
		{Sources{Sets: []string{"sample.langevin_step_size=.inf"}}, "sample.langevin_step_size"},
		{Sources{Sets: []string{"measurement.noise.sigma=.nan"}}, "measurement.noise.sigma"},
		{Sources{Sets: []string{"measurement.noise.name=poisson", "measurement.noise.rate=.inf"}}, "measurement.noise.rate"},
		{Sources{Sets: []string{"solver.scale=.nan"}}, "solver.scale"},
		{Sources{Sets: []string{"measurement.operator.scale=.inf"}}, "measurement.operator.scale"},
		{Sources{Env: []string{"DIFFINV_TRAIN_LR=.nan"}}, "train.lr"},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			_, err := Load(c.src)
			if err == nil || !strings.Contains(err.Error(), "config key "+c.key+":") || !strings.Contains(err.Error(), "want a finite number") {
				t.Errorf("%+v: error %v, want one naming %s and asking for a finite number", c.src, err, c.key)
			}
		})
	}
	if _, err := Load(Sources{Sets: []string{"diffusion.steps=2000000000", "sample.steps=50"}}); err == nil || !strings.Contains(err.Error(), "diffusion.steps") {
		t.Errorf("diffusion.steps 2e9: %v, want an error naming the key", err)
	}
	if _, err := Load(Sources{Sets: []string{"train.grad_clip=0.5", "solver.scale=0.3"}}); err != nil {
		t.Errorf("finite values: %v", err)
	}
}
