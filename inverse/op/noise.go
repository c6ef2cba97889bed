package op

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// Noise is a measurement noise model p(y | A(x)) on the [−1, 1] scale.
type Noise interface {
	// Name is the registry name ("clean", "gaussian", "poisson").
	Name() string
	// Sample returns a noisy copy of the clean measurement ax, drawing from rng.
	Sample(ax *tensor.Dense, rng *rand.Rand) (*tensor.Dense, error)
	// NegLogLik returns −log p(y | ax) per image, up to a constant that does
	// not depend on ax.
	NegLogLik(ax, y *tensor.Dense) ([]float64, error)
	// Grad returns ∂(−log p(y | ax))/∂ax, shaped like ax.
	Grad(ax, y *tensor.Dense) (*tensor.Dense, error)
}

func noiseShapes(name string, ax, y *tensor.Dense) (n, d int, err error) {
	if ax == nil || y == nil {
		return 0, 0, fmt.Errorf("%s: nil tensor", name)
	}
	if ax.Dtype() != tensor.Float32 || y.Dtype() != tensor.Float32 {
		return 0, 0, fmt.Errorf("%s: dtypes %v and %v, want float32", name, ax.Dtype(), y.Dtype())
	}
	if err := tensors.SameShape("A(x)", ax, "y", y); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", name, err)
	}
	s := ax.Shape()
	if len(s) < 1 || s[0] < 1 {
		return 0, 0, fmt.Errorf("%s: shape %v, want a batch N×…", name, []int(s))
	}
	return s[0], prod(s[1:]), nil
}

// Gaussian is additive white Gaussian noise y = A(x) + σ·ε. σ = 0 is the
// noiseless case; its likelihood is then the σ = 1 surrogate ½‖y − A(x)‖².
type Gaussian struct {
	// Sigma is the standard deviation on the [−1, 1] scale (DPS: 0.05).
	Sigma float64
}

// NewGaussian returns Gaussian noise of standard deviation sigma ≥ 0.
func NewGaussian(sigma float64) (*Gaussian, error) {
	if !(sigma >= 0) || math.IsInf(sigma, 0) {
		return nil, fmt.Errorf("op.NewGaussian: sigma %v, want ≥ 0", sigma)
	}
	return &Gaussian{Sigma: sigma}, nil
}

// Name returns "gaussian", or "clean" when σ = 0.
func (g *Gaussian) Name() string {
	if g.Sigma == 0 {
		return "clean"
	}
	return "gaussian"
}

func (g *Gaussian) v() float64 {
	if g.Sigma == 0 {
		return 1
	}
	return g.Sigma * g.Sigma
}

// Sample returns ax + σ·ε.
func (g *Gaussian) Sample(ax *tensor.Dense, rng *rand.Rand) (*tensor.Dense, error) {
	if ax == nil || ax.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("gaussian.Sample: want a float32 tensor")
	}
	if rng == nil {
		return nil, fmt.Errorf("gaussian.Sample: nil rng")
	}
	y := tensors.Clone(ax)
	if g.Sigma == 0 {
		return y, nil
	}
	for i, v := range tensors.F32(y) {
		tensors.F32(y)[i] = v + float32(g.Sigma*rng.NormFloat64())
	}
	return y, nil
}

// NegLogLik returns ‖y − ax‖²/(2σ²) per image.
func (g *Gaussian) NegLogLik(ax, y *tensor.Dense) ([]float64, error) {
	n, d, err := noiseShapes("gaussian.NegLogLik", ax, y)
	if err != nil {
		return nil, err
	}
	a, b := tensors.F32(ax), tensors.F32(y)
	r := make([]float64, n)
	for i := 0; i < n; i++ {
		s := 0.0
		for j := i * d; j < (i+1)*d; j++ {
			e := float64(b[j]) - float64(a[j])
			s += e * e
		}
		r[i] = s / (2 * g.v())
	}
	return r, nil
}

// Grad returns (ax − y)/σ².
func (g *Gaussian) Grad(ax, y *tensor.Dense) (*tensor.Dense, error) {
	if _, _, err := noiseShapes("gaussian.Grad", ax, y); err != nil {
		return nil, err
	}
	out := tensors.Like(ax)
	a, b, o := tensors.F32(ax), tensors.F32(y), tensors.F32(out)
	for i := range o {
		o[i] = float32((float64(a[i]) - float64(b[i])) / g.v())
	}
	return out, nil
}

// Poisson is shot noise in DPS's convention (its PoissonNoise, "version 3"):
// with u = clamp((A(x)+1)/2, 0, 1) and scale λ₀ = 255·rate, the photon count
// is k ~ Poisson(λ₀·u) and y = clamp(2k/λ₀ − 1, −1, 1). So E[y] = A(x) and
// Var[y] = 2(A(x)+1)/λ₀ away from the clamps. Clamping y at 1 saturates
// counts above λ₀; the likelihood ignores that saturation.
type Poisson struct {
	// Rate scales the photon budget (DPS's rate; λ₀ = 255·Rate).
	Rate float64
}

// NewPoisson returns Poisson noise of the given rate (> 0).
func NewPoisson(rate float64) (*Poisson, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("op.NewPoisson: rate %v, want > 0", rate)
	}
	return &Poisson{Rate: rate}, nil
}

// Name returns "poisson".
func (p *Poisson) Name() string { return "poisson" }

func (p *Poisson) scale() float64 { return 255 * p.Rate }

// poissonDraw samples Poisson(lam): Knuth's product method for small means,
// a rounded normal approximation above 500.
func poissonDraw(lam float64, rng *rand.Rand) float64 {
	if lam <= 0 {
		return 0
	}
	if lam > 500 {
		return math.Max(0, math.Round(lam+math.Sqrt(lam)*rng.NormFloat64()))
	}
	// Split large means into chunks of ≤ 30 to keep exp(−λ) representable and fast.
	k := 0.0
	for lam > 0 {
		l := math.Min(lam, 30)
		lam -= l
		t := math.Exp(-l)
		prod := rng.Float64()
		for prod > t {
			k++
			prod *= rng.Float64()
		}
	}
	return k
}

// Sample draws y as described on Poisson.
func (p *Poisson) Sample(ax *tensor.Dense, rng *rand.Rand) (*tensor.Dense, error) {
	if ax == nil || ax.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("poisson.Sample: want a float32 tensor")
	}
	if rng == nil {
		return nil, fmt.Errorf("poisson.Sample: nil rng")
	}
	y := tensors.Clone(ax)
	d := tensors.F32(y)
	l0 := p.scale()
	for i, v := range d {
		u := math.Min(1, math.Max(0, (float64(v)+1)/2))
		k := poissonDraw(l0*u, rng)
		d[i] = float32(math.Min(1, math.Max(-1, 2*k/l0-1)))
	}
	return y, nil
}

// poissonFloor keeps the Poisson mean positive where A(x) ≤ −1.
const poissonFloor = 1e-6

// NegLogLik returns Σ λ − k·log λ per image, with λ = λ₀·max((ax+1)/2, 1e-6)
// and k = λ₀·(y+1)/2.
func (p *Poisson) NegLogLik(ax, y *tensor.Dense) ([]float64, error) {
	n, d, err := noiseShapes("poisson.NegLogLik", ax, y)
	if err != nil {
		return nil, err
	}
	a, b := tensors.F32(ax), tensors.F32(y)
	l0 := p.scale()
	r := make([]float64, n)
	for i := 0; i < n; i++ {
		s := 0.0
		for j := i * d; j < (i+1)*d; j++ {
			lam := l0 * math.Max((float64(a[j])+1)/2, poissonFloor)
			k := l0 * (float64(b[j]) + 1) / 2
			s += lam - k*math.Log(lam)
		}
		r[i] = s
	}
	return r, nil
}

// Grad returns ∂/∂ax of NegLogLik: (λ₀/2)·(1 − k/λ) (0 where the floor is
// active).
func (p *Poisson) Grad(ax, y *tensor.Dense) (*tensor.Dense, error) {
	if _, _, err := noiseShapes("poisson.Grad", ax, y); err != nil {
		return nil, err
	}
	out := tensors.Like(ax)
	a, b, o := tensors.F32(ax), tensors.F32(y), tensors.F32(out)
	l0 := p.scale()
	for i := range o {
		u := (float64(a[i]) + 1) / 2
		if u <= poissonFloor {
			o[i] = 0
			continue
		}
		lam := l0 * u
		k := l0 * (float64(b[i]) + 1) / 2
		o[i] = float32(l0 / 2 * (1 - k/lam))
	}
	return out, nil
}
