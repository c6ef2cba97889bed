package diffusion

import (
	"fmt"

	"gorgonia.org/tensor"
)

// Predictions lists the network targets a model may be trained on (a
// config's diffusion.prediction): ε, x0 or v (Salimans & Ho's v = √ᾱ ε −
// √(1−ᾱ) x0).
func Predictions() []string { return []string{"eps", "x0", "v"} }

// PredictionDenoiser returns a Denoiser of ε for a network whose
// output (what den.Eps returns) is a prediction of the given kind over the
// unrespaced training schedule sched (index = timestep): den itself for
// "eps"; for "x0", ε = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t); for "v", ε = √(1−ᾱ_t)·x_t
// + √ᾱ_t·v̂. EpsVJP is converted with the same linear maps, and EpsVar is
// kept when den has it (VarianceDenoiser).
func PredictionDenoiser(den Denoiser, sched *Schedule, prediction string) (Denoiser, error) {
	switch prediction {
	case "eps":
		return den, nil
	case "x0", "v":
	default:
		return nil, fmt.Errorf("diffusion: prediction %q, want one of %v", prediction, Predictions())
	}
	p := predDenoiser{den: den, sched: sched, pred: prediction}
	if vd, ok := den.(VarianceDenoiser); ok {
		return predVarDenoiser{p, vd}, nil
	}
	return p, nil
}

// predDenoiser converts x0 or v predictions into ε.
type predDenoiser struct {
	den   Denoiser
	sched *Schedule
	pred  string
}

func (p predDenoiser) toEps(xt *tensor.Dense, t []int, out *tensor.Dense) (*tensor.Dense, error) {
	if p.pred == "x0" {
		return p.sched.EpsFromX0(xt, t, out)
	}
	return p.sched.EpsFromV(xt, t, out)
}

// Eps returns the ε that the network's prediction implies.
func (p predDenoiser) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out, err := p.den.Eps(xt, t)
	if err != nil {
		return nil, err
	}
	return p.toEps(xt, t, out)
}

// EpsVJP returns ε and vᵀ∂ε/∂x_t: for x0, (v − √ᾱ·vᵀ∂x̂0/∂x_t)/√(1−ᾱ); for
// v, √(1−ᾱ)·v + √ᾱ·vᵀ∂v̂/∂x_t.
func (p predDenoiser) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	out, vjp, err := p.den.EpsVJP(xt, t, v)
	if err != nil {
		return nil, nil, err
	}
	eps, err := p.toEps(xt, t, out)
	if err != nil {
		return nil, nil, err
	}
	// Both maps are ε = A·x_t + B·out, so vᵀ∂ε/∂x_t = A·v + B·vᵀ∂out/∂x_t:
	// the same combination applied to (v, vjp).
	g, err := p.toEps(v, t, vjp)
	if err != nil {
		return nil, nil, err
	}
	return eps, g, nil
}

// predVarDenoiser is a predDenoiser that keeps the variance output.
type predVarDenoiser struct {
	predDenoiser
	vd VarianceDenoiser
}

// EpsVar returns ε (converted) and the unchanged variance channels.
func (p predVarDenoiser) EpsVar(xt *tensor.Dense, t []int) (*tensor.Dense, *tensor.Dense, error) {
	out, v, err := p.vd.EpsVar(xt, t)
	if err != nil {
		return nil, nil, err
	}
	eps, err := p.toEps(xt, t, out)
	return eps, v, err
}
