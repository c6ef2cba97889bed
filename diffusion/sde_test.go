package diffusion

import (
	"math"
	"math/rand"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
)

// TestVPMatchesDiscrete checks that the default VP SDE's discretisation is
// the linear schedule and that exp(−∫_0^{(i+1)/T} β) matches the discrete
// ᾱ_i. The two differ by (a) the Riemann sum Σ β(j/(T−1))/T against the
// exact integral, at most Δβ/(2T) in the exponent (Δβ = β_max − β_min), and
// (b) log(1−β_j) ≈ −β_j, at most Σ β_j²/(2(1−β_j)) ≈ ∫β²/(2T). So
// |ᾱ_disc − ᾱ_cont| ≤ ᾱ·(e^E − 1) with E = Δβ/(2T) + Σ_{j≤i} β_j²/(2(1−β_j)),
// which the test checks at every i (the bound is O(1/T)).
func TestVPMatchesDiscrete(t *testing.T) {
	vp, err := NewVPSDE(0.1, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, T := range []int{1000, 250, 50} {
		s := mustSchedule(t, Linear, T)
		db := vp.DiscreteBetas(T)
		for i, b := range db {
			if math.Abs(b-s.Beta(i)) > 1e-15 {
				t.Fatalf("T=%d: VP discrete β[%d] = %g, linear schedule %g", T, i, b, s.Beta(i))
			}
		}
		worst := 0.0
		sq := 0.0
		for i := 0; i < T; i++ {
			b := s.Beta(i)
			sq += b * b / (2 * (1 - b))
			E := (vp.BetaMax-vp.BetaMin)/(2*float64(T)) + sq
			cont := vp.AlphaBar(ContinuousTime(i, T))
			m, std := vp.Marginal(ContinuousTime(i, T))
			if math.Abs(m*m-cont) > 1e-14 || math.Abs(std*std-(1-cont)) > 1e-14 {
				t.Fatalf("marginal (%g, %g) inconsistent with ᾱ %g", m, std, cont)
			}
			diff := math.Abs(s.AlphaBar(i) - cont)
			bound := math.Max(s.AlphaBar(i), cont) * math.Expm1(E)
			if diff > bound {
				t.Fatalf("T=%d i=%d: |ᾱ_disc − ᾱ_cont| = %g > bound %g", T, i, diff, bound)
			}
			worst = math.Max(worst, diff)
		}
		// The bound is O(1/T): for T = 1000 it is below 2e-3 everywhere.
		if T == 1000 && worst > 2e-3 {
			t.Errorf("T=1000: worst |ᾱ_disc − ᾱ_cont| = %g, want < 2e-3", worst)
		}
		t.Logf("T=%d: worst |ᾱ_disc − ᾱ_cont| = %.3g", T, worst)
	}
}

// TestSDEMomentODEs checks drift, diffusion and marginal against each other:
// for dx = c(t)x dt + g(t) dw the marginal mean coefficient m and variance
// v = std² solve m′ = c·m and v′ = 2c·v + g² (central differences).
func TestSDEMomentODEs(t *testing.T) {
	vp, _ := NewVPSDE(0.1, 20)
	sub, _ := NewSubVPSDE(0.1, 20)
	ve, _ := NewVESDE(0.01, 50)
	for _, sde := range []SDE{vp, sub, ve} {
		const h = 1e-5
		for _, tt := range []float64{0.05, 0.2, 0.5, 0.9} {
			m0, s0 := sde.Marginal(tt - h)
			m1, s1 := sde.Marginal(tt + h)
			m, std := sde.Marginal(tt)
			dm := (m1 - m0) / (2 * h)
			dv := (s1*s1 - s0*s0) / (2 * h)
			c, g := sde.DriftCoef(tt), sde.Diffusion(tt)
			if math.Abs(dm-c*m) > 1e-6*(1+math.Abs(c*m)) {
				t.Errorf("%s t=%g: m′ = %g, c·m = %g", sde.Name(), tt, dm, c*m)
			}
			if want := 2*c*std*std + g*g; math.Abs(dv-want) > 1e-6*(1+math.Abs(want)) {
				t.Errorf("%s t=%g: v′ = %g, 2cv+g² = %g", sde.Name(), tt, dv, want)
			}
		}
		// Drift on tensors equals c(t)·x per sample.
		rng := rand.New(rand.NewSource(3))
		x := tensors.Randn(rng, 2, 1, 2, 2)
		f, err := sde.Drift(x, []float64{0.3, 0.7})
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range tensors.F32(f) {
			c := sde.DriftCoef([]float64{0.3, 0.7}[j/4])
			if math.Abs(float64(v)-c*float64(tensors.F32(x)[j])) > 1e-5 {
				t.Fatalf("%s drift[%d] = %g, want %g", sde.Name(), j, v, c*float64(tensors.F32(x)[j]))
			}
		}
		if _, err := sde.Drift(x, []float64{0.3}); err == nil {
			t.Errorf("%s: drift with one time for two samples: no error", sde.Name())
		}
	}
	if _, std := ve.Marginal(1); math.Abs(std-ve.PriorStd()) > 1e-12 {
		t.Errorf("VE std at t=1 = %g, prior std %g", std, ve.PriorStd())
	}
}

func TestPriorSample(t *testing.T) {
	ve, _ := NewVESDE(0.01, 50)
	vp, _ := NewVPSDE(0.1, 20)
	for _, sde := range []SDE{ve, vp} {
		x := sde.PriorSample(rand.New(rand.NewSource(4)), 4000, 1, 1, 1)
		var m2 float64
		for _, v := range tensors.F32(x) {
			m2 += float64(v) * float64(v)
		}
		sd := math.Sqrt(m2 / 4000)
		// std of the RMS estimate ≈ σ/√(2N); allow 5 of them.
		if want := sde.PriorStd(); math.Abs(sd-want) > 5*want/math.Sqrt(8000) {
			t.Errorf("%s prior std %g, want %g", sde.Name(), sd, want)
		}
	}
}

func TestTimeMapping(t *testing.T) {
	for _, T := range []int{1, 10, 1000} {
		for i := 0; i < T; i++ {
			tc := ContinuousTime(i, T)
			if tc <= 0 || tc > 1 {
				t.Fatalf("ContinuousTime(%d, %d) = %g outside (0, 1]", i, T, tc)
			}
			if got := DiscreteTimestep(tc, T); got != i {
				t.Fatalf("DiscreteTimestep(ContinuousTime(%d)) = %d", i, got)
			}
		}
	}
	if DiscreteTimestep(0, 100) != 0 || DiscreteTimestep(2, 100) != 99 {
		t.Errorf("clamping failed")
	}
}
