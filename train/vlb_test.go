package train

import (
	"math"
	"testing"
)

// simpson integrates f over [a, b] with n (even) intervals.
func simpson(f func(float64) float64, a, b float64, n int) float64 {
	h := (b - a) / float64(n)
	s := f(a) + f(b)
	for i := 1; i < n; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		s += w * f(a+float64(i)*h)
	}
	return s * h / 3
}

func logNormalPDF(x, m, lv float64) float64 {
	return -0.5*(math.Log(2*math.Pi)+lv) - 0.5*(x-m)*(x-m)*math.Exp(-lv)
}

func TestNormalKLAgainstQuadrature(t *testing.T) {
	cases := []struct{ m1, lv1, m2, lv2 float64 }{
		{0, 0, 0, 0},
		{0.3, -2, -0.1, -1},
		{1, math.Log(0.01), 0.9, math.Log(0.02)},
		{-0.5, 1, 0.5, -0.5},
	}
	for _, c := range cases {
		s1 := math.Exp(0.5 * c.lv1)
		want := simpson(func(x float64) float64 {
			lp := logNormalPDF(x, c.m1, c.lv1)
			return math.Exp(lp) * (lp - logNormalPDF(x, c.m2, c.lv2))
		}, c.m1-14*s1, c.m1+14*s1, 20000)
		if got := NormalKL(c.m1, c.lv1, c.m2, c.lv2); math.Abs(got-want) > 1e-8*(1+want) {
			t.Errorf("NormalKL%+v = %.12g, quadrature %.12g", c, got, want)
		}
		h := 1e-6
		fd := (NormalKL(c.m1, c.lv1, c.m2, c.lv2+h) - NormalKL(c.m1, c.lv1, c.m2, c.lv2-h)) / (2 * h)
		if g := normalKLDLogVar2(c.m1, c.lv1, c.m2, c.lv2); math.Abs(g-fd) > 1e-6*(1+math.Abs(fd)) {
			t.Errorf("∂KL/∂logVar2%+v = %.10g, finite difference %.10g", c, g, fd)
		}
	}
}

func TestApproxStdNormalCDF(t *testing.T) {
	for x := -6.0; x <= 6; x += 0.01 {
		exact := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		if got := ApproxStdNormalCDF(x); math.Abs(got-exact) > 2e-4 {
			t.Fatalf("ApproxStdNormalCDF(%g) = %g, Φ = %g", x, got, exact)
		}
		h := 1e-6
		fd := (ApproxStdNormalCDF(x+h) - ApproxStdNormalCDF(x-h)) / (2 * h)
		if g := approxStdNormalPDF(x); math.Abs(g-fd) > 1e-7 {
			t.Fatalf("approx pdf(%g) = %g, finite difference %g", x, g, fd)
		}
	}
}

func TestDiscretizedGaussianLogLikelihood(t *testing.T) {
	level := func(i int) float64 { return float64(i)/127.5 - 1 }
	cases := []struct{ mean, logScale float64 }{
		{0, math.Log(0.5)}, {0.2, math.Log(0.05)}, {-0.9, math.Log(0.1)}, {0.99, math.Log(0.02)}, {0, math.Log(2)},
	}
	for _, c := range cases {
		// The 256 bins cover the real line: their probabilities sum to 1.
		var sum float64
		for i := 0; i < 256; i++ {
			lp, _ := DiscretizedGaussianLogLikelihood(level(i), c.mean, c.logScale)
			sum += math.Exp(lp)
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("mean %g scale %g: bin probabilities sum to %.12g, want 1", c.mean, math.Exp(c.logScale), sum)
		}
		// Each bin matches the exact Gaussian mass up to the CDF approximation.
		sd := math.Exp(c.logScale)
		phi := func(x float64) float64 { return 0.5 * (1 + math.Erf((x-c.mean)/(sd*math.Sqrt2))) }
		for i := 0; i < 256; i++ {
			x := level(i)
			lo, hi := phi(x-1.0/255), phi(x+1.0/255)
			if i == 0 {
				lo = 0
			}
			if i == 255 {
				hi = 1
			}
			lp, dls := DiscretizedGaussianLogLikelihood(x, c.mean, c.logScale)
			if math.Abs(math.Exp(lp)-(hi-lo)) > 4e-4 {
				t.Fatalf("mean %g scale %g level %d: P = %g, exact Gaussian mass %g", c.mean, sd, i, math.Exp(lp), hi-lo)
			}
			if lp > math.Log(1e-4) { // elsewhere Φ(plus)−Φ(min) cancels too much for a finite difference
				h := 1e-6
				lp1, _ := DiscretizedGaussianLogLikelihood(x, c.mean, c.logScale+h)
				lp0, _ := DiscretizedGaussianLogLikelihood(x, c.mean, c.logScale-h)
				if fd := (lp1 - lp0) / (2 * h); math.Abs(dls-fd) > 1e-5*(1+math.Abs(fd)) {
					t.Fatalf("mean %g scale %g level %d: ∂/∂logScale = %g, finite difference %g", c.mean, sd, i, dls, fd)
				}
			}
		}
	}
}
