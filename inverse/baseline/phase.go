package baseline

import (
	"fmt"
	"math"
	"math/cmplx"
	"math/rand"

	"github.com/diffinv/diffinv/internal/par"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gorgonia.org/tensor"
)

// PROptions configures PhaseRetrieve.
type PROptions struct {
	// Method is "hio" (hybrid input–output) or "er" (error reduction).
	Method string
	// Iters is the number of iterations of Method per restart.
	Iters int
	// FinalER is the number of error-reduction iterations run after HIO to
	// settle the estimate (ignored for "er").
	FinalER int
	// Restarts is the number of random initialisations; the one whose
	// Fourier magnitudes fit y best is kept.
	Restarts int
	// Beta is HIO's feedback parameter.
	Beta float64
	// Workers is how many images are solved side by side (0: GOMAXPROCS).
	// The result does not depend on it: the random starts are drawn in
	// image order before any image is solved.
	Workers int
}

// DefaultPR returns DPS's baseline settings: HIO, 10,000 iterations,
// 4 restarts, β = 0.9, followed by 50 ER iterations.
func DefaultPR() PROptions {
	return PROptions{Method: "hio", Iters: 10000, FinalER: 50, Restarts: 4, Beta: 0.9}
}

// PhaseRetrieve reconstructs images from the magnitudes y = |F(pad((x+1)/2))|
// that a produces, channel by channel, by ER or HIO (Fienup) with the
// object-domain constraints of the problem: the support is the unpadded
// H×W region and values are real and nonnegative (ER also clips them to
// [0, 1]). Each restart starts from uniform [0, 1) noise on the support;
// the restart with the smallest relative magnitude residual
// ‖|F g| − y‖/‖y‖ is kept. It returns the images in [−1, 1] and, per image,
// the mean over channels of the best residual. The solution is defined up
// to the problem's trivial ambiguities (a 180° rotation of the object
// within the support, and for real data small shifts); compare accordingly.
func PhaseRetrieve(a *op.PhaseRetrieval, y *tensor.Dense, opt PROptions, rng *rand.Rand) (*tensor.Dense, []float64, error) {
	if opt.Method != "hio" && opt.Method != "er" {
		return nil, nil, fmt.Errorf("baseline.PhaseRetrieve: method %q, want \"hio\" or \"er\"", opt.Method)
	}
	if opt.Iters < 0 || opt.FinalER < 0 || opt.Restarts < 1 || !(opt.Beta > 0) {
		return nil, nil, fmt.Errorf("baseline.PhaseRetrieve: options %+v, want Iters, FinalER ≥ 0, Restarts ≥ 1, Beta > 0", opt)
	}
	if rng == nil {
		return nil, nil, fmt.Errorf("baseline.PhaseRetrieve: nil rng")
	}
	in, outS := a.InShape(), a.OutShape()
	c, h, w := in[0], in[1], in[2]
	hp, wp, pad := outS[1], outS[2], a.Pad()
	n, yc, yh, yw, err := tensors.NCHW("baseline.PhaseRetrieve y", y)
	if err != nil {
		return nil, nil, err
	}
	if yc != c || yh != hp || yw != wp {
		return nil, nil, fmt.Errorf("baseline.PhaseRetrieve: y is N×%d×%d×%d, want N×%v", yc, yh, yw, outS)
	}
	np := hp * wp
	yd := tensors.F32(y)
	out := tensors.New(n, c, h, w)
	od := tensors.F32(out)
	resid := make([]float64, n)
	inS := func(p int) bool {
		i, j := p/wp, p%wp
		return i >= pad && i < pad+h && j >= pad && j < pad+w
	}
	// The restarts' random starts, drawn in image, channel, restart order
	// before anything runs, so the images can be solved side by side with
	// the results of a one-by-one run.
	per := h * w
	starts := make([]float64, n*c*opt.Restarts*per)
	for i := range starts {
		starts[i] = rng.Float64()
	}
	par.Items(n, opt.Workers, func(next func() (int, bool)) {
		f := op.NewFFT2(hp, wp)
		mag := make([]float64, np)
		buf := make([]complex128, np)
		sq := math.Sqrt(float64(np))
		// project replaces the magnitudes of g's spectrum with mag; it
		// returns the projected object and the relative magnitude
		// residual of g.
		project := func(g []float64, gp []float64) float64 {
			for p := range buf {
				buf[p] = complex(g[p], 0)
			}
			f.Forward(buf)
			num, den := 0.0, 0.0
			for p, v := range buf {
				v /= complex(sq, 0)
				av := cmplx.Abs(v)
				num += (av - mag[p]) * (av - mag[p])
				den += mag[p] * mag[p]
				if av > 0 {
					buf[p] = v * complex(mag[p]/av*sq, 0)
				} else {
					buf[p] = complex(mag[p]*sq, 0)
				}
			}
			f.Inverse(buf)
			for p := range gp {
				gp[p] = real(buf[p])
			}
			return math.Sqrt(num / math.Max(den, 1e-300))
		}
		g := make([]float64, np)
		gp := make([]float64, np)
		best := make([]float64, np)
		for img, ok := next(); ok; img, ok = next() {
			total := 0.0
			for ch := 0; ch < c; ch++ {
				base := (img*c + ch) * np
				for k := 0; k < hp; k++ {
					for l := 0; l < wp; l++ {
						mag[k*wp+l] = float64(yd[base+((k+hp/2)%hp)*wp+(l+wp/2)%wp])
					}
				}
				bestRes := math.Inf(1)
				for r := 0; r < opt.Restarts; r++ {
					st := starts[((img*c+ch)*opt.Restarts+r)*per:]
					q := 0
					for p := range g {
						g[p] = 0
						if inS(p) {
							g[p] = st[q]
							q++
						}
					}
					er := func() {
						project(g, gp)
						for p := range g {
							g[p] = 0
							if inS(p) {
								g[p] = math.Max(0, math.Min(1, gp[p]))
							}
						}
					}
					for it := 0; it < opt.Iters; it++ {
						if opt.Method == "er" {
							er()
							continue
						}
						project(g, gp)
						for p := range g {
							if inS(p) && gp[p] >= 0 {
								g[p] = gp[p]
							} else {
								g[p] -= opt.Beta * gp[p]
							}
						}
					}
					if opt.Method == "hio" {
						for it := 0; it < opt.FinalER; it++ {
							er()
						}
					}
					// the final estimate satisfies the object constraints
					for p := range g {
						if !inS(p) {
							g[p] = 0
						} else {
							g[p] = math.Max(0, math.Min(1, g[p]))
						}
					}
					if res := project(g, gp); res < bestRes {
						bestRes = res
						copy(best, g)
					}
				}
				total += bestRes
				for i := 0; i < h; i++ {
					for j := 0; j < w; j++ {
						od[(img*c+ch)*h*w+i*w+j] = float32(2*best[(i+pad)*wp+j+pad] - 1)
					}
				}
			}
			resid[img] = total / float64(c)
		}
	})
	return out, resid, nil
}

// MagnitudeResidual returns ‖A(x) − y‖/‖y‖ per image for phase retrieval.
func MagnitudeResidual(a *op.PhaseRetrieval, x, y *tensor.Dense) ([]float64, error) {
	ax, err := a.Forward(x)
	if err != nil {
		return nil, err
	}
	if err := tensors.SameShape("A(x)", ax, "y", y); err != nil {
		return nil, fmt.Errorf("baseline.MagnitudeResidual: %w", err)
	}
	n := ax.Shape()[0]
	m := len(tensors.F32(ax)) / n
	r := make([]float64, n)
	for i := 0; i < n; i++ {
		num, den := 0.0, 0.0
		for j := i * m; j < (i+1)*m; j++ {
			e := float64(tensors.F32(ax)[j]) - float64(tensors.F32(y)[j])
			num += e * e
			den += float64(tensors.F32(y)[j]) * float64(tensors.F32(y)[j])
		}
		r[i] = math.Sqrt(num / math.Max(den, 1e-300))
	}
	return r, nil
}

// Align returns, per image, the version of x that best matches ref (least
// squared error) among x and its 180° rotation, each shifted by up to
// maxShift pixels in both directions with the vacated pixels set to −1 (the
// zero background of the [0, 1] scale). These are the trivial ambiguities
// of Fourier phase retrieval with a loose support, so metrics on ER/HIO
// output should be taken after Align.
func Align(x, ref *tensor.Dense, maxShift int) (*tensor.Dense, error) {
	n, c, h, w, err := tensors.NCHW("baseline.Align x", x)
	if err != nil {
		return nil, err
	}
	if err := tensors.SameShape("x", x, "ref", ref); err != nil {
		return nil, fmt.Errorf("baseline.Align: %w", err)
	}
	if maxShift < 0 {
		return nil, fmt.Errorf("baseline.Align: maxShift %d, want ≥ 0", maxShift)
	}
	d := c * h * w
	out := tensors.Like(x)
	xd, rd, od := tensors.F32(x), tensors.F32(ref), tensors.F32(out)
	cand := make([]float32, d)
	for img := 0; img < n; img++ {
		src := xd[img*d : (img+1)*d]
		rf := rd[img*d : (img+1)*d]
		best := math.Inf(1)
		for rot := 0; rot < 2; rot++ {
			for di := -maxShift; di <= maxShift; di++ {
				for dj := -maxShift; dj <= maxShift; dj++ {
					for ch := 0; ch < c; ch++ {
						for i := 0; i < h; i++ {
							for j := 0; j < w; j++ {
								si, sj := i+di, j+dj
								v := float32(-1)
								if si >= 0 && si < h && sj >= 0 && sj < w {
									if rot == 1 {
										si, sj = h-1-si, w-1-sj
									}
									v = src[ch*h*w+si*w+sj]
								}
								cand[ch*h*w+i*w+j] = v
							}
						}
					}
					e := 0.0
					for p, v := range cand {
						q := float64(v) - float64(rf[p])
						e += q * q
					}
					if e < best {
						best = e
						copy(od[img*d:(img+1)*d], cand)
					}
				}
			}
		}
	}
	return out, nil
}
