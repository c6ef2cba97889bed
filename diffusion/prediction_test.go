package diffusion

import (
	"math"
	"math/rand"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// linearNet outputs c_t·x_t + d (a stand-in network with a known Jacobian).
type linearNet struct{ d float64 }

func (l linearNet) c(t int) float64 { return 0.3 + 0.001*float64(t) }

func (l linearNet) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out := tensors.Like(xt)
	per := len(tensors.F32(xt)) / len(t)
	for i, v := range tensors.F32(xt) {
		tensors.F32(out)[i] = float32(l.c(t[i/per])*float64(v) + l.d)
	}
	return out, nil
}

func (l linearNet) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	out, _ := l.Eps(xt, t)
	g := tensors.Like(v)
	per := len(tensors.F32(v)) / len(t)
	for i, x := range tensors.F32(v) {
		tensors.F32(g)[i] = float32(l.c(t[i/per]) * float64(x))
	}
	return out, g, nil
}

// TestPredictionDenoiser: ε and vᵀ∂ε/∂x_t of the x0 and v conversions
// against their closed forms on a network with a known Jacobian.
func TestPredictionDenoiser(t *testing.T) {
	s := mustSchedule(t, Linear, 100)
	rng := rand.New(rand.NewSource(2))
	xt, v := tensors.Randn(rng, 2, 1, 2, 2), tensors.Randn(rng, 2, 1, 2, 2)
	ts := []int{3, 80}
	net := linearNet{d: 0.1}
	for _, pred := range []string{"eps", "x0", "v"} {
		den, err := PredictionDenoiser(net, s, pred)
		if err != nil {
			t.Fatal(err)
		}
		eps, vjp, err := den.EpsVJP(xt, ts, v)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tensors.F32(xt) {
			k := i / 4
			a, sd, c := math.Sqrt(s.AlphaBar(ts[k])), math.Sqrt(1-s.AlphaBar(ts[k])), net.c(ts[k])
			x, vi := float64(tensors.F32(xt)[i]), float64(tensors.F32(v)[i])
			out := c*x + net.d
			var wantEps, wantVJP float64
			switch pred {
			case "eps":
				wantEps, wantVJP = out, c*vi
			case "x0": // ε = (x − a·out)/s
				wantEps, wantVJP = (x-a*out)/sd, (1-a*c)/sd*vi
			case "v": // ε = s·x + a·out
				wantEps, wantVJP = sd*x+a*out, (sd+a*c)*vi
			}
			tol := 1e-4 * (1 + math.Abs(wantEps))
			if math.Abs(float64(tensors.F32(eps)[i])-wantEps) > tol || math.Abs(float64(tensors.F32(vjp)[i])-wantVJP) > 1e-4*(1+math.Abs(wantVJP)) {
				t.Fatalf("%s[%d]: ε %g vjp %g, want %g and %g", pred, i, tensors.F32(eps)[i], tensors.F32(vjp)[i], wantEps, wantVJP)
			}
		}
	}
	if _, err := PredictionDenoiser(net, s, "score"); err == nil {
		t.Error("prediction \"score\" accepted")
	}
}
