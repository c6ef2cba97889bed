package diffusion

import (
	"math"
	"testing"
)

// TestDiscreteVP checks the schedule's SDE against the schedule: the step
// lengths add up to the integrated rate, −Σ_{j≤i} log(1−β_j) = −log ᾱ_i;
// solving dx = c·x dτ + g dw exactly over Δ_i gives the mean factor
// e^{cΔ} and variance g²(1 − e^{2cΔ})/(−2c), which must be Discretize's
// (√(1−β_i), β_i); and the marginals follow the discretisation, mean_i =
// a_i·mean_{i−1}, std_i² = a_i²·std_{i−1}² + G_i² (from mean 1, std 0
// before index 0). On the linear, the cosine and a respaced schedule.
func TestDiscreteVP(t *testing.T) {
	lin := mustSchedule(t, Linear, 1000)
	cos := mustSchedule(t, Cosine, 1000)
	ts, err := SpacedTimesteps(1000, 10, SpacingUniform)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := Respace(cos, ts)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Schedule{"linear": lin, "cosine": cos, "cosine respaced 10": sp} {
		sde := ScheduleSDE(s)
		if sde.Len() != s.Len() || sde.Schedule() != s {
			t.Fatalf("%s: Len %d, schedule %p, want %d, %p", name, sde.Len(), sde.Schedule(), s.Len(), s)
		}
		tau, prevMean, prevVar := 0.0, 1.0, 0.0
		for i := 0; i < s.Len(); i++ {
			d := sde.Delta(i)
			tau += d
			if want := -math.Log(s.AlphaBar(i)); math.Abs(tau-want) > 1e-9*(1+want) {
				t.Fatalf("%s i=%d: Σ Δ = %g, −log ᾱ = %g", name, i, tau, want)
			}
			c, g := sde.SDE(i)
			a, g2 := sde.Discretize(i)
			if m := math.Exp(c * d); math.Abs(m-a) > 1e-12 {
				t.Fatalf("%s i=%d: exact mean factor %g, Discretize a = %g", name, i, m, a)
			}
			if v := g * g * -math.Expm1(2*c*d) / (-2 * c); math.Abs(v-g2) > 1e-12 {
				t.Fatalf("%s i=%d: exact variance %g, Discretize G² = %g", name, i, v, g2)
			}
			if sde.Alpha(i) != 1-s.Beta(i) {
				t.Fatalf("%s i=%d: Alpha %g, 1 − β %g", name, i, sde.Alpha(i), 1-s.Beta(i))
			}
			mean, std := sde.Marginal(i)
			prevMean, prevVar = a*prevMean, a*a*prevVar+g2
			if math.Abs(mean-prevMean) > 1e-9 || math.Abs(std*std-prevVar) > 1e-9 {
				t.Fatalf("%s i=%d: marginal (%g, %g²), discretisation gives (%g, %g)", name, i, mean, std, prevMean, prevVar)
			}
			if sg := sde.VESigma(i); math.Abs(sg-std/mean) > 1e-9*sg {
				t.Fatalf("%s i=%d: VESigma %g, std/mean %g", name, i, sg, std/mean)
			}
		}
	}
}
