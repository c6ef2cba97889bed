package solve

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	G "gorgonia.org/gorgonia"
)

// nearestTimestep returns the timestep of sched's level nearest to the VE
// noise level s in log σ.
func nearestTimestep(sched *diffusion.Schedule, s float64) int {
	best, bi := math.Inf(1), 0
	for i := 0; i < sched.Len(); i++ {
		if d := math.Abs(math.Log(sched.Sigma(i)) - math.Log(s)); d < best {
			best, bi = d, i
		}
	}
	return sched.Timestep(bi)
}

// TestDAPSNonlinear: on a nonlinear operator (A(x) = tanh(2x) by autodiff,
// its VJP from gorgonia) DAPS runs and fits the measurement: the mean
// residual ‖y − A(x)‖ is far below that of the same run without Langevin
// steps (langevin_steps 0: plain annealed ODE sampling of the prior, same
// streams), and near the noise floor σ_y √m.
func TestDAPSNonlinear(t *testing.T) {
	A, err := op.NewAutodiff("tanh2", imgShape, func(g *G.ExprGraph, x *G.Node) (*G.Node, error) {
		return G.Tanh(G.Must(G.Add(x, x)))
	})
	if err != nil {
		t.Fatal(err)
	}
	const sigmaY, n = 0.05, 8
	s := newSetup(t, A, sigmaY, true, 4)
	resid := func(set map[string]any) float64 {
		o := mustOptions(t, "daps", set)
		x, err := Solve("daps", Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(n)}, o, diffusion.ImageRNGs(9, 0, n), nil)
		if err != nil {
			t.Fatal(err)
		}
		ax, err := A.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		v := tensors.F32(ax)
		m := len(s.y)
		total := 0.0
		for k := 0; k < n; k++ {
			r := 0.0
			for j := 0; j < m; j++ {
				d := float64(v[k*m+j]) - s.y[j]
				r += d * d
			}
			total += math.Sqrt(r)
		}
		return total / n
	}
	base := map[string]any{"steps": 50, "ode_steps": 2, "langevin_steps": 50}
	prior := resid(map[string]any{"steps": 50, "ode_steps": 2, "langevin_steps": 0})
	daps := resid(base)
	floor := sigmaY * math.Sqrt(float64(len(s.y)))
	t.Logf("mean ‖y − A(x)‖: prior samples %.3f, DAPS %.3f (noise floor σ_y√m = %.3f)", prior, daps, floor)
	if !(daps < 0.25*prior) || !(daps < 3*floor) {
		t.Errorf("DAPS residual %.3f, want < 0.25 × the prior's %.3f and < 3 × the noise floor %.3f", daps, prior, floor)
	}
}

// TestDAPSValidate: each bad option is named.
func TestDAPSValidate(t *testing.T) {
	for key, bad := range map[string]any{"steps": 0, "ode_steps": 0, "langevin_steps": -1, "lr": 0.0, "lr_min_ratio": -1.0, "tau": -0.1, "rho": 0.0, "ode_sigma_min": 0.0, "sigma_min": 1000.0} {
		if _, err := DecodeOptions("daps", map[string]any{key: bad}); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s = %v: error %v, want one naming %s", key, bad, err, key)
		}
	}
}

// TestDivergedError: a step size far too large makes the solver's error
// wrap ErrDiverged (a tuning search goes on past such a trial), where a
// bad option does not.
func TestDivergedError(t *testing.T) {
	A, err := op.NewAutodiff("tanh2", imgShape, func(g *G.ExprGraph, x *G.Node) (*G.Node, error) {
		return G.Tanh(G.Must(G.Add(x, x)))
	})
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, A, 0.05, true, 4)
	for _, c := range []struct {
		method string
		set    map[string]any
	}{
		{"daps", map[string]any{"steps": 10, "ode_steps": 2, "langevin_steps": 50, "lr": 1e30}},
		{"dps", map[string]any{"steps": 20, "scale": 1e300}},
	} {
		o := mustOptions(t, c.method, c.set)
		_, err := Solve(c.method, Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(2)}, o, diffusion.ImageRNGs(9, 0, 2), nil)
		if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), "diverged") {
			t.Errorf("%s %v: %v, want an error wrapping ErrDiverged", c.method, c.set, err)
		}
	}
	if _, err := DecodeOptions("daps", map[string]any{"lr": 0.0}); err == nil || errors.Is(err, ErrDiverged) {
		t.Errorf("a bad option: %v, want an error that is not ErrDiverged", err)
	}
}
