package metrics

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// gaussianSamples draws n rows from N(mean, L·Lᵀ).
func gaussianSamples(rng *rand.Rand, n int, mean []float64, l *mat.Dense) *mat.Dense {
	d := len(mean)
	out := mat.NewDense(n, d, nil)
	z := make([]float64, d)
	for i := 0; i < n; i++ {
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		row := out.RawRowView(i)
		for a := 0; a < d; a++ {
			s := mean[a]
			for b := 0; b < d; b++ {
				s += l.At(a, b) * z[b]
			}
			row[a] = s
		}
	}
	return out
}

func symFrom(d int, v []float64) *mat.SymDense {
	m := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			m.SetSym(i, j, v[i*d+j])
		}
	}
	return m
}

// randomSPD returns A·Aᵀ + εI for a random d×d A.
func randomSPD(rng *rand.Rand, d int) *mat.SymDense {
	a := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			a.Set(i, j, rng.NormFloat64())
		}
	}
	s := mat.NewSymDense(d, nil)
	s.SymOuterK(1, a)
	for i := 0; i < d; i++ {
		s.SetSym(i, i, s.At(i, i)+0.1)
	}
	return s
}

// traceSqrtDenmanBeavers computes Tr((AB)^{1/2}) with the Denman–Beavers
// iteration on the non-symmetric product (Y → √M, Z → 1/√M): a method
// independent of the eigendecomposition FrechetDistance uses.
func traceSqrtDenmanBeavers(t *testing.T, a, b mat.Matrix) float64 {
	t.Helper()
	var y mat.Dense
	y.Mul(a, b)
	d, _ := y.Dims()
	z := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		z.Set(i, i, 1)
	}
	for it := 0; it < 100; it++ {
		var yi, zi mat.Dense
		if err := yi.Inverse(&y); err != nil {
			t.Fatal(err)
		}
		if err := zi.Inverse(z); err != nil {
			t.Fatal(err)
		}
		var ny, nz mat.Dense
		ny.Add(&y, &zi)
		ny.Scale(0.5, &ny)
		nz.Add(z, &yi)
		nz.Scale(0.5, &nz)
		y, *z = ny, nz
	}
	return mat.Trace(&y)
}

func TestFrechetDistanceClosedForm(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	// A fixed rotation for the "same eigenvectors, non-diagonal" case.
	c, s := math.Cos(0.7), math.Sin(0.7)
	q := mat.NewDense(2, 2, []float64{c, -s, s, c})
	rotated := func(a, b float64) *mat.SymDense {
		var m mat.Dense
		m.Mul(q, mat.NewDiagDense(2, []float64{a, b}))
		m.Mul(&m, q.T())
		return symFrom(2, []float64{m.At(0, 0), m.At(0, 1), m.At(1, 0), m.At(1, 1)})
	}
	s1 := randomSPD(rng, 6)
	s2 := randomSPD(rng, 6)
	m1 := []float64{0.1, -2, 3, 0, 1, 1}
	m2 := []float64{1, 0, 0, 0.5, -1, 2}
	var mdist float64
	for i := range m1 {
		mdist += (m1[i] - m2[i]) * (m1[i] - m2[i])
	}
	tests := []struct {
		name string
		a, b Gaussian
		want float64
	}{
		{"1-D", Gaussian{Mean: []float64{1}, Cov: symFrom(1, []float64{4})}, Gaussian{Mean: []float64{-2}, Cov: symFrom(1, []float64{9})},
			9 + (2-3)*(2-3)},
		{"diagonal", Gaussian{Mean: []float64{0, 1, 2}, Cov: symFrom(3, []float64{1, 0, 0, 0, 4, 0, 0, 0, 9})},
			Gaussian{Mean: []float64{0, 0, 0}, Cov: symFrom(3, []float64{16, 0, 0, 0, 1, 0, 0, 0, 0.25})},
			// ‖Δμ‖² + Σ (√a − √b)²
			5 + 9 + 1 + 6.25},
		{"rotated, shared eigenvectors", Gaussian{Mean: []float64{1, 1}, Cov: rotated(2, 0.5)}, Gaussian{Mean: []float64{1, 1}, Cov: rotated(8, 2)},
			math.Pow(math.Sqrt(2)-math.Sqrt(8), 2) + math.Pow(math.Sqrt(0.5)-math.Sqrt(2), 2)},
		// Non-commuting 2×2: Tr √M = √(Tr M + 2√det M) for M with eigenvalues ≥ 0.
		{"non-commuting 2×2", Gaussian{Mean: []float64{0, 0}, Cov: symFrom(2, []float64{2, 1, 1, 3})}, Gaussian{Mean: []float64{1, 0}, Cov: symFrom(2, []float64{1, -0.5, -0.5, 4})},
			1 + 5 + 5 - 2*math.Sqrt((2*1+1*-0.5)+(1*-0.5+3*4)+2*math.Sqrt(5*3.75))},
		{"identical", Gaussian{Mean: m1, Cov: s1}, Gaussian{Mean: m1, Cov: s1}, 0},
		{"random 6-D vs Denman–Beavers", Gaussian{Mean: m1, Cov: s1}, Gaussian{Mean: m2, Cov: s2},
			mdist + mat.Trace(s1) + mat.Trace(s2) - 2*traceSqrtDenmanBeavers(t, s1, s2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FrechetDistance(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-9*math.Max(1, math.Abs(tc.want)) {
				t.Errorf("Fréchet distance %.12g, want %.12g", got, tc.want)
			}
			// Symmetric in its arguments.
			back, err := FrechetDistance(tc.b, tc.a)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(back-got) > 1e-9*math.Max(1, got) {
				t.Errorf("d(a,b) = %v but d(b,a) = %v", got, back)
			}
		})
	}
}

func TestFIDOfSamples(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	const d = 4
	l1 := mat.NewDense(d, d, []float64{1, 0, 0, 0, 0.5, 1, 0, 0, 0.2, -0.3, 0.8, 0, 0, 0.1, 0.4, 1.2})
	x := gaussianSamples(rng, 3000, make([]float64, d), l1)
	t.Run("identical sets", func(t *testing.T) {
		got, err := FID(x, x)
		if err != nil {
			t.Fatal(err)
		}
		if got > 1e-8 {
			t.Errorf("FID of a set with itself %v, want ≈ 0", got)
		}
	})
	t.Run("translated set is ‖c‖²", func(t *testing.T) {
		c := []float64{1, -2, 0.5, 3}
		y := mat.DenseCopyOf(x)
		for i := 0; i < 3000; i++ {
			row := y.RawRowView(i)
			for j := range row {
				row[j] += c[j]
			}
		}
		got, err := FID(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + 4 + 0.25 + 9.0; math.Abs(got-want) > 1e-8 {
			t.Errorf("FID %v, want %v", got, want)
		}
	})
	t.Run("sample fits match the population distance", func(t *testing.T) {
		// Two large samples of N(0, L1L1ᵀ) and N(μ, 4·L1L1ᵀ): the population
		// distance is ‖μ‖² + Tr(Σ)(1 + 4 − 2·2) = ‖μ‖² + Tr Σ.
		mu := []float64{1, 1, 0, 0}
		l2 := mat.NewDense(d, d, nil)
		l2.Scale(2, l1)
		a := gaussianSamples(rng, 20000, make([]float64, d), l1)
		b := gaussianSamples(rng, 20000, mu, l2)
		var sigma mat.Dense
		sigma.Mul(l1, l1.T())
		want := 2 + mat.Trace(&sigma)
		got, err := FID(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > 0.05*want {
			t.Errorf("FID %v of 20000-sample fits, want ≈ %v (5%%)", got, want)
		}
	})
}

func TestFIDErrors(t *testing.T) {
	tests := []struct {
		name string
		a, b *mat.Dense
		want string
	}{
		{"nil", nil, mat.NewDense(3, 2, nil), "nil feature matrix"},
		{"one row", mat.NewDense(1, 2, nil), mat.NewDense(3, 2, nil), "at least 2 rows"},
		{"dims differ", mat.NewDense(3, 2, nil), mat.NewDense(3, 4, nil), "dimensions 2 and 4"},
		{"nan", mat.NewDense(3, 2, []float64{0, 1, 2, math.NaN(), 4, 5}), mat.NewDense(3, 2, nil), "NaN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FID(tc.a, tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// mmdNaive is the unbiased MMD² with the cubic kernel written out from the
// definition (Bińkowski et al., eq. 3), for one pair of sets.
func mmdNaive(x, y *mat.Dense) float64 {
	m, d := x.Dims()
	k := func(a, b []float64) float64 {
		var ip float64
		for i := range a {
			ip += a[i] * b[i]
		}
		return math.Pow(ip/float64(d)+1, 3)
	}
	var xx, yy, xy float64
	for i := 0; i < m; i++ {
		for j := 0; j < m; j++ {
			if i != j {
				xx += k(x.RawRowView(i), x.RawRowView(j))
				yy += k(y.RawRowView(i), y.RawRowView(j))
			}
			xy += k(x.RawRowView(i), y.RawRowView(j))
		}
	}
	mf := float64(m)
	return xx/(mf*(mf-1)) + yy/(mf*(mf-1)) - 2*xy/(mf*mf)
}

func TestKIDMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	x := gaussianSamples(rng, 40, make([]float64, 3), mat.NewDense(3, 3, []float64{1, 0, 0, 0, 1, 0, 0, 0, 1}))
	y := gaussianSamples(rng, 40, []float64{0.5, 0, 0}, mat.NewDense(3, 3, []float64{1, 0, 0, 0.3, 1, 0, 0, 0, 2}))
	// One subset of the whole sets: the subset is a permutation, which the
	// estimate does not depend on.
	got, err := KID(x, y, KIDOptions{Subsets: 1, SubsetSize: 40}, rng)
	if err != nil {
		t.Fatal(err)
	}
	want := mmdNaive(x, y)
	if math.Abs(got.Mean-want) > 1e-10*math.Max(1, math.Abs(want)) || got.Std != 0 || got.SubsetSize != 40 || !got.Whole {
		t.Errorf("KID %+v, want mean %v, std 0, subset 40, whole sets", got, want)
	}
}

// TestKIDWholeSets checks that KID marks, and prints, the case where every
// subset is the whole of both sets (its zero spread is not an uncertainty)
// and only that case.
func TestKIDWholeSets(t *testing.T) {
	id := mat.NewDense(2, 2, []float64{1, 0, 0, 1})
	tests := []struct {
		name      string
		na, nb, m int
		whole     bool
		text      string
	}{
		{"equal sets, default size", 30, 30, 0, true, "whole sets: no subset spread"},
		{"equal sets, smaller subsets", 30, 30, 20, false, "± "},
		{"fewer samples than references", 20, 30, 0, false, "over 10 subsets of 20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(3))
			a := gaussianSamples(rng, tc.na, []float64{0, 0}, id)
			b := gaussianSamples(rng, tc.nb, []float64{1, 0}, id)
			k, err := KID(a, b, KIDOptions{Subsets: 10, SubsetSize: tc.m}, rng)
			if err != nil {
				t.Fatal(err)
			}
			if k.Whole != tc.whole {
				t.Errorf("Whole %v, want %v (%+v)", k.Whole, tc.whole, k)
			}
			if tc.whole && (k.Std != 0 || k.Subsets != 1) {
				t.Errorf("whole sets: std %v over %d subsets, want 0 over 1", k.Std, k.Subsets)
			}
			if !tc.whole && k.Std == 0 {
				t.Errorf("subsampled sets: std 0, want a spread")
			}
			if s := k.String(); !strings.Contains(s, tc.text) {
				t.Errorf("String() %q, want it to contain %q", s, tc.text)
			}
		})
	}
}

// TestKIDSameVersusShifted checks the estimator is unbiased (its mean over
// independent draws from one distribution is 0 within 4 standard errors)
// and clearly positive for a shifted distribution.
func TestKIDSameVersusShifted(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	const d = 8
	id := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		id.Set(i, i, 1)
	}
	zero := make([]float64, d)
	shift := make([]float64, d)
	shift[0] = 1
	var same []float64
	for r := 0; r < 20; r++ {
		a := gaussianSamples(rng, 200, zero, id)
		b := gaussianSamples(rng, 200, zero, id)
		k, err := KID(a, b, KIDOptions{Subsets: 1, SubsetSize: 200}, rng)
		if err != nil {
			t.Fatal(err)
		}
		same = append(same, k.Mean)
	}
	var mean, sd float64
	for _, v := range same {
		mean += v / float64(len(same))
	}
	for _, v := range same {
		sd += (v - mean) * (v - mean)
	}
	sd = math.Sqrt(sd / float64(len(same)-1))
	se := sd / math.Sqrt(float64(len(same)))
	if math.Abs(mean) > 4*se {
		t.Errorf("mean KID over %d same-distribution draws %v, want 0 within 4 standard errors (%v)", len(same), mean, se)
	}
	a := gaussianSamples(rng, 1000, zero, id)
	b := gaussianSamples(rng, 1000, shift, id)
	k, err := KID(a, b, KIDOptions{Subsets: 20, SubsetSize: 200}, rng)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("same-distribution mean %.4g (sd %.4g), shifted %.4g ± %.4g", mean, sd, k.Mean, k.Std)
	if !(k.Mean > 10*sd) {
		t.Errorf("KID of a shifted distribution %v ± %v, want well above the same-distribution spread %v", k.Mean, k.Std, sd)
	}
	self, err := KID(a, a, KIDOptions{Subsets: 20, SubsetSize: 200}, rand.New(rand.NewSource(9)))
	if err != nil {
		t.Fatal(err)
	}
	if self.Mean > k.Mean/10 {
		t.Errorf("KID of a set with itself %v, want far below the shifted %v", self.Mean, k.Mean)
	}
}

func TestKIDErrors(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	tests := []struct {
		name string
		a, b *mat.Dense
		opt  KIDOptions
		rng  *rand.Rand
		want string
	}{
		{"nil rng", mat.NewDense(3, 2, nil), mat.NewDense(3, 2, nil), KIDOptions{}, nil, "nil *rand.Rand"},
		{"dims", mat.NewDense(3, 2, nil), mat.NewDense(3, 3, nil), KIDOptions{}, rng, "dimensions 2 and 3"},
		{"subset size 1", mat.NewDense(3, 2, nil), mat.NewDense(3, 2, nil), KIDOptions{SubsetSize: 1}, rng, "size 1"},
		{"one row", mat.NewDense(1, 2, nil), mat.NewDense(3, 2, nil), KIDOptions{}, rng, "sets of 1 and 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := KID(tc.a, tc.b, tc.opt, tc.rng)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
