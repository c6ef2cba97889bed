// Package analytic provides exact denoisers for Gaussian and Gaussian-mixture
// data distributions, for testing samplers and inverse-problem solvers
// against closed forms.
//
// If x0 ~ Σ_k π_k N(μ_k, Σ_k) and x_t = a·x0 + s·ε with a = √ᾱ_t,
// s = √(1−ᾱ_t), ε ~ N(0, I), then x_t ~ Σ_k π_k N(a·μ_k, C_k) with
// C_k = a²Σ_k + s²I, and the exact noise prediction is
//
//	E[ε | x_t] = −s·∇log p_t(x_t) = s·Σ_k r_k(x_t)·C_k⁻¹(x_t − a·μ_k),
//
// with r_k the posterior component responsibilities. Its Jacobian is
// −s·∇²log p_t, symmetric, so EpsVJP returns J·v:
//
//	J = s·[Σ_k r_k C_k⁻¹ − Σ_k r_k g_k g_kᵀ + ḡḡᵀ],  g_k = −C_k⁻¹(x_t − a·μ_k), ḡ = Σ_k r_k g_k.
//
// Data have D = C·H·W dimensions (meant to be small, up to a few dozen) and
// are flattened in NCHW order. All arithmetic is float64 (gonum/mat); tensors
// in and out are float32.
package analytic

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"
)

// Component is one Gaussian N(Mean, Cov) of a mixture with weight Weight.
type Component struct {
	Weight float64
	Mean   []float64
	Cov    *mat.SymDense
}

// Mixture is the exact denoiser of a Gaussian mixture data distribution; a
// single Gaussian is a mixture of one component. It implements
// diffusion.Denoiser and is safe for concurrent use (it holds no mutable
// state).
type Mixture struct {
	comps   []Component
	c, h, w int
	sched   *diffusion.Schedule
}

// NewGaussian returns the exact denoiser of N(mu, cov) for images of shape
// C×H×W = shape (C·H·W = len(mu)) under the noise schedule sched. The
// denoiser is called with original timesteps, so sched may be a respaced
// schedule: its AlphaBarAtTimestep is used. cov must be symmetric positive
// semi-definite (it may be singular).
func NewGaussian(mu []float64, cov *mat.SymDense, shape [3]int, sched *diffusion.Schedule) (*Mixture, error) {
	return NewMixture([]Component{{Weight: 1, Mean: mu, Cov: cov}}, shape, sched)
}

// NewMixture returns the exact denoiser of Σ_k w_k N(μ_k, Σ_k); the weights
// must be positive and are normalised to sum to 1. Means and covariances are
// copied.
func NewMixture(comps []Component, shape [3]int, sched *diffusion.Schedule) (*Mixture, error) {
	if sched == nil {
		return nil, fmt.Errorf("analytic: nil schedule")
	}
	if len(comps) == 0 {
		return nil, fmt.Errorf("analytic: no mixture components, want at least one")
	}
	if shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0 {
		return nil, fmt.Errorf("analytic: shape %v, want positive C, H, W", shape)
	}
	d := shape[0] * shape[1] * shape[2]
	total := 0.0
	for k, c := range comps {
		if !(c.Weight > 0) || math.IsInf(c.Weight, 0) {
			return nil, fmt.Errorf("analytic: component %d weight %g, want > 0", k, c.Weight)
		}
		total += c.Weight
	}
	m := &Mixture{c: shape[0], h: shape[1], w: shape[2], sched: sched}
	for k, c := range comps {
		if len(c.Mean) != d {
			return nil, fmt.Errorf("analytic: component %d mean has %d entries, want C·H·W = %d", k, len(c.Mean), d)
		}
		if c.Cov == nil || c.Cov.SymmetricDim() != d {
			n := 0
			if c.Cov != nil {
				n = c.Cov.SymmetricDim()
			}
			return nil, fmt.Errorf("analytic: component %d covariance is %d×%d, want %d×%d", k, n, n, d, d)
		}
		var eig mat.EigenSym
		if !eig.Factorize(c.Cov, false) {
			return nil, fmt.Errorf("analytic: component %d covariance: eigendecomposition failed", k)
		}
		vals := eig.Values(nil)
		for _, v := range vals {
			if v < -1e-10*math.Max(1, math.Abs(vals[len(vals)-1])) || math.IsNaN(v) {
				return nil, fmt.Errorf("analytic: component %d covariance has eigenvalue %g, want positive semi-definite", k, v)
			}
		}
		cov := mat.NewSymDense(d, nil)
		cov.CopySym(c.Cov)
		m.comps = append(m.comps, Component{
			Weight: c.Weight / total,
			Mean:   append([]float64(nil), c.Mean...),
			Cov:    cov,
		})
	}
	return m, nil
}

// Dim returns D = C·H·W.
func (m *Mixture) Dim() int { return m.c * m.h * m.w }

// Shape returns C, H, W.
func (m *Mixture) Shape() [3]int { return [3]int{m.c, m.h, m.w} }

// Components returns copies of the (normalised) components.
func (m *Mixture) Components() []Component {
	out := make([]Component, len(m.comps))
	for k, c := range m.comps {
		cov := mat.NewSymDense(m.Dim(), nil)
		cov.CopySym(c.Cov)
		out[k] = Component{Weight: c.Weight, Mean: append([]float64(nil), c.Mean...), Cov: cov}
	}
	return out
}

// Mean returns the mean of the data distribution, Σ_k π_k μ_k.
func (m *Mixture) Mean() []float64 {
	d := m.Dim()
	mu := make([]float64, d)
	for _, c := range m.comps {
		for i := range mu {
			mu[i] += c.Weight * c.Mean[i]
		}
	}
	return mu
}

// Cov returns the covariance of the data distribution,
// Σ_k π_k (Σ_k + μ_k μ_kᵀ) − μμᵀ.
func (m *Mixture) Cov() *mat.SymDense {
	d := m.Dim()
	mu := m.Mean()
	out := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			v := -mu[i] * mu[j]
			for _, c := range m.comps {
				v += c.Weight * (c.Cov.At(i, j) + c.Mean[i]*c.Mean[j])
			}
			out.SetSym(i, j, v)
		}
	}
	return out
}

// Sample draws n data points x0 as an n×C×H×W tensor.
func (m *Mixture) Sample(rng *rand.Rand, n int) (*tensor.Dense, error) {
	if n <= 0 {
		return nil, fmt.Errorf("analytic: sample count %d, want > 0", n)
	}
	d := m.Dim()
	roots := make([]*mat.Dense, len(m.comps))
	for k, c := range m.comps {
		r, err := sqrtPSD(c.Cov)
		if err != nil {
			return nil, fmt.Errorf("analytic: component %d: %w", k, err)
		}
		roots[k] = r
	}
	out := tensors.New(n, m.c, m.h, m.w)
	o := tensors.F32(out)
	z := make([]float64, d)
	for i := 0; i < n; i++ {
		k := 0
		if len(m.comps) > 1 {
			u := rng.Float64()
			for k = 0; k < len(m.comps)-1; k++ {
				u -= m.comps[k].Weight
				if u < 0 {
					break
				}
			}
		}
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		for r := 0; r < d; r++ {
			v := m.comps[k].Mean[r]
			for j := 0; j < d; j++ {
				v += roots[k].At(r, j) * z[j]
			}
			o[i*d+r] = float32(v)
		}
	}
	return out, nil
}

// sqrtPSD returns R with R Rᵀ = S for a positive semi-definite S (V√Λ).
func sqrtPSD(s *mat.SymDense) (*mat.Dense, error) {
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		return nil, fmt.Errorf("eigendecomposition failed")
	}
	vals := eig.Values(nil)
	var v mat.Dense
	eig.VectorsTo(&v)
	d := len(vals)
	r := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			r.Set(i, j, v.At(i, j)*math.Sqrt(math.Max(vals[j], 0)))
		}
	}
	return r, nil
}

// level holds, for one timestep, a, s and per component C_k⁻¹ (row-major)
// and log det C_k.
type level struct {
	a, s   float64
	prec   [][]float64
	logdet []float64
}

func (m *Mixture) level(t int) (*level, error) {
	ab, err := m.sched.AlphaBarAtTimestep(t)
	if err != nil {
		return nil, fmt.Errorf("analytic: %w", err)
	}
	d := m.Dim()
	L := &level{a: math.Sqrt(ab), s: math.Sqrt(1 - ab)}
	for k, c := range m.comps {
		cm := mat.NewSymDense(d, nil)
		for i := 0; i < d; i++ {
			for j := i; j < d; j++ {
				v := ab * c.Cov.At(i, j)
				if i == j {
					v += 1 - ab
				}
				cm.SetSym(i, j, v)
			}
		}
		var ch mat.Cholesky
		if !ch.Factorize(cm) {
			return nil, fmt.Errorf("analytic: component %d: a²Σ + s²I not positive definite at timestep %d", k, t)
		}
		var inv mat.SymDense
		if err := ch.InverseTo(&inv); err != nil {
			return nil, fmt.Errorf("analytic: component %d at timestep %d: %w", k, t, err)
		}
		p := make([]float64, d*d)
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				p[i*d+j] = inv.At(i, j)
			}
		}
		L.prec = append(L.prec, p)
		L.logdet = append(L.logdet, ch.LogDet())
	}
	return L, nil
}

// work holds the scratch buffers of eval, reused across the samples of one call.
type work struct {
	g          [][]float64
	diff, gbar []float64
	logr, r    []float64
}

func (m *Mixture) newWork() *work {
	d, K := m.Dim(), len(m.comps)
	w := &work{diff: make([]float64, d), gbar: make([]float64, d), logr: make([]float64, K), r: make([]float64, K)}
	for k := 0; k < K; k++ {
		w.g = append(w.g, make([]float64, d))
	}
	return w
}

// eval computes ε and, when v is non-nil, J·v for the D-vector x at level L,
// writing them to eps and jv.
func (m *Mixture) eval(L *level, x, v, eps, jv []float64) { m.evalWork(L, x, v, eps, jv, m.newWork()) }

func (m *Mixture) evalWork(L *level, x, v, eps, jv []float64, w *work) {
	d := m.Dim()
	g, logr, r, diff, gbar := w.g, w.logr, w.r, w.diff, w.gbar
	for k, c := range m.comps {
		for i := range diff {
			diff[i] = x[i] - L.a*c.Mean[i]
		}
		gk := g[k]
		quad := 0.0
		p := L.prec[k]
		for i := 0; i < d; i++ {
			sum := 0.0
			row := p[i*d : (i+1)*d]
			for j, dj := range diff {
				sum += row[j] * dj
			}
			gk[i] = -sum
			quad += diff[i] * sum
		}
		logr[k] = math.Log(c.Weight) - 0.5*L.logdet[k] - 0.5*quad
	}
	z := 1.0
	if len(r) == 1 {
		r[0] = 1 // a single Gaussian: no responsibilities to weigh
	} else {
		mx := math.Inf(-1)
		for _, l := range logr {
			mx = math.Max(mx, l)
		}
		z = 0
		for k, l := range logr {
			r[k] = math.Exp(l - mx)
			z += r[k]
		}
	}
	for i := range gbar {
		gbar[i] = 0
	}
	for k := range r {
		r[k] /= z
		for i := range gbar {
			gbar[i] += r[k] * g[k][i]
		}
	}
	for i := range eps {
		eps[i] = -L.s * gbar[i]
	}
	if v == nil {
		return
	}
	for i := range jv {
		jv[i] = 0
	}
	gbv := dot(gbar, v)
	for k := range r {
		p := L.prec[k]
		gkv := dot(g[k], v)
		for i := 0; i < d; i++ {
			pv := 0.0
			for j := 0; j < d; j++ {
				pv += p[i*d+j] * v[j]
			}
			jv[i] += r[k] * (pv - g[k][i]*gkv)
		}
	}
	for i := range jv {
		jv[i] = L.s * (jv[i] + gbar[i]*gbv)
	}
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func (m *Mixture) run(xt *tensor.Dense, t []int, v *tensor.Dense) (eps, jv *tensor.Dense, err error) {
	n, c, h, w, err := tensors.NCHW("xt", xt)
	if err != nil {
		return nil, nil, fmt.Errorf("analytic: %w", err)
	}
	if c != m.c || h != m.h || w != m.w {
		return nil, nil, fmt.Errorf("analytic: xt is %d×%d×%d per sample, want %d×%d×%d", c, h, w, m.c, m.h, m.w)
	}
	if len(t) != n {
		return nil, nil, fmt.Errorf("analytic: %d timesteps for a batch of %d, want one per sample", len(t), n)
	}
	if v != nil {
		if err := tensors.SameShape("v", v, "xt", xt); err != nil {
			return nil, nil, fmt.Errorf("analytic: %w", err)
		}
		if v.Dtype() != tensor.Float32 {
			return nil, nil, fmt.Errorf("analytic: v dtype %v, want float32", v.Dtype())
		}
		jv = tensors.Like(xt)
	}
	eps = tensors.Like(xt)
	levels := map[int]*level{}
	d := m.Dim()
	xs, eo := tensors.F32(xt), tensors.F32(eps)
	var vs, jo []float32
	if v != nil {
		vs, jo = tensors.F32(v), tensors.F32(jv)
	}
	x, vv, e, j := make([]float64, d), make([]float64, d), make([]float64, d), make([]float64, d)
	wk := m.newWork()
	for k := 0; k < n; k++ {
		L, ok := levels[t[k]]
		if !ok {
			L, err = m.level(t[k])
			if err != nil {
				return nil, nil, err
			}
			levels[t[k]] = L
		}
		for i := 0; i < d; i++ {
			x[i] = float64(xs[k*d+i])
		}
		var vin []float64
		if v != nil {
			for i := 0; i < d; i++ {
				vv[i] = float64(vs[k*d+i])
			}
			vin = vv
		}
		m.evalWork(L, x, vin, e, j, wk)
		for i := 0; i < d; i++ {
			eo[k*d+i] = float32(e[i])
		}
		if v != nil {
			for i := 0; i < d; i++ {
				jo[k*d+i] = float32(j[i])
			}
		}
	}
	return eps, jv, nil
}

// Eps returns the exact E[ε | x_t] at original timesteps t.
func (m *Mixture) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	eps, _, err := m.run(xt, t, nil)
	return eps, err
}

// EpsVJP returns E[ε | x_t] and vᵀ∂ε/∂x_t (= J·v, J being symmetric).
func (m *Mixture) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (eps, vjp *tensor.Dense, err error) {
	if v == nil {
		return nil, nil, fmt.Errorf("analytic: EpsVJP with nil v")
	}
	return m.run(xt, t, v)
}

var _ diffusion.Denoiser = (*Mixture)(nil)

// GaussianPosterior returns the posterior N(μ_post, Σ_post) of x0 ~ N(mu, cov)
// given y = A·x0 + σ_y·n, n ~ N(0, I), for a dense m×D matrix A:
//
//	K = Σ Aᵀ (A Σ Aᵀ + σ_y² I)⁻¹,  μ_post = μ + K (y − A μ),  Σ_post = Σ − K A Σ.
//
// sigmaY may be 0 when A Σ Aᵀ is positive definite (noise-free measurements).
func GaussianPosterior(mu []float64, cov *mat.SymDense, A *mat.Dense, y []float64, sigmaY float64) ([]float64, *mat.SymDense, error) {
	if cov == nil || A == nil {
		return nil, nil, fmt.Errorf("analytic: posterior with nil covariance or operator")
	}
	d := len(mu)
	if cov.SymmetricDim() != d {
		return nil, nil, fmt.Errorf("analytic: posterior covariance %d×%d for a mean of %d entries", cov.SymmetricDim(), cov.SymmetricDim(), d)
	}
	rows, cols := A.Dims()
	if cols != d {
		return nil, nil, fmt.Errorf("analytic: posterior operator is %d×%d, want %d columns", rows, cols, d)
	}
	if len(y) != rows {
		return nil, nil, fmt.Errorf("analytic: posterior measurement has %d entries, want %d (rows of A)", len(y), rows)
	}
	if !(sigmaY >= 0) || math.IsInf(sigmaY, 0) {
		return nil, nil, fmt.Errorf("analytic: posterior sigma_y = %g, want ≥ 0", sigmaY)
	}
	var sat mat.Dense // Σ Aᵀ, D×m
	sat.Mul(cov, A.T())
	var s mat.Dense // A Σ Aᵀ + σ²I, m×m
	s.Mul(A, &sat)
	ss := mat.NewSymDense(rows, nil)
	for i := 0; i < rows; i++ {
		for j := i; j < rows; j++ {
			v := 0.5 * (s.At(i, j) + s.At(j, i))
			if i == j {
				v += sigmaY * sigmaY
			}
			ss.SetSym(i, j, v)
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(ss) {
		return nil, nil, fmt.Errorf("analytic: posterior: A Σ Aᵀ + σ_y² I is not positive definite (σ_y = %g)", sigmaY)
	}
	// Kᵀ = S⁻¹ A Σ (m×D).
	var kt mat.Dense
	if err := ch.SolveTo(&kt, sat.T()); err != nil {
		return nil, nil, fmt.Errorf("analytic: posterior solve: %w", err)
	}
	resid := make([]float64, rows)
	for i := 0; i < rows; i++ {
		v := y[i]
		for j := 0; j < d; j++ {
			v -= A.At(i, j) * mu[j]
		}
		resid[i] = v
	}
	muPost := append([]float64(nil), mu...)
	for j := 0; j < d; j++ {
		for i := 0; i < rows; i++ {
			muPost[j] += kt.At(i, j) * resid[i]
		}
	}
	var kas mat.Dense // K A Σ = (ΣAᵀ) Kᵀ... = sat · kt
	kas.Mul(&sat, &kt)
	covPost := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			covPost.SetSym(i, j, cov.At(i, j)-0.5*(kas.At(i, j)+kas.At(j, i)))
		}
	}
	return muPost, covPost, nil
}
