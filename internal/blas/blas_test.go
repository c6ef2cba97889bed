package blas

import (
	"math"
	"math/rand"
	"os"
	"testing"
	"time"
)

// naive computes C = alpha·op(A)·op(B) + beta·C in float64.
func naive(ta, tb bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for p := 0; p < k; p++ {
				var av, bv float64
				if ta {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if tb {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
		}
	}
}

func TestGemmMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cases := []struct {
		ta, tb  bool
		m, n, k int
	}{
		{false, false, 5, 7, 3}, {true, false, 4, 6, 9}, {false, true, 8, 3, 5}, {true, true, 6, 6, 6},
		{false, false, 33, 65, 17}, {true, true, 1, 1, 1},
	}
	for _, tc := range cases {
		lda, ldb := tc.k, tc.n
		if tc.ta {
			lda = tc.m
		}
		if tc.tb {
			ldb = tc.k
		}
		a := make([]float64, tc.m*tc.k)
		b := make([]float64, tc.k*tc.n)
		c := make([]float64, tc.m*tc.n)
		for _, s := range [][]float64{a, b, c} {
			for i := range s {
				s[i] = rng.NormFloat64()
			}
		}
		want := append([]float64(nil), c...)
		naive(tc.ta, tc.tb, tc.m, tc.n, tc.k, 0.7, a, lda, b, ldb, 0.3, want, tc.n)
		got := append([]float64(nil), c...)
		Dgemm(tc.ta, tc.tb, tc.m, tc.n, tc.k, 0.7, a, lda, b, ldb, 0.3, got, tc.n)
		a32, b32, c32 := f32(a), f32(b), f32(c)
		Sgemm(tc.ta, tc.tb, tc.m, tc.n, tc.k, 0.7, a32, lda, b32, ldb, 0.3, c32, tc.n)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12*(1+math.Abs(want[i]))*float64(tc.k) {
				t.Fatalf("%+v: Dgemm[%d]=%g, want %g", tc, i, got[i], want[i])
			}
			if math.Abs(float64(c32[i])-want[i]) > 1e-5*(1+math.Abs(want[i]))*float64(tc.k) {
				t.Fatalf("%+v: Sgemm[%d]=%g, want %g", tc, i, c32[i], want[i])
			}
		}
	}
}

func f32(s []float64) []float32 {
	o := make([]float32, len(s))
	for i, v := range s {
		o[i] = float32(v)
	}
	return o
}

// TestCoreTypeChosen checks that, when OpenBLAS is in use and the user did
// not set OPENBLAS_CORETYPE, the kernels OpenBLAS runs are the ones CPUID
// asks for.
func TestCoreTypeChosen(t *testing.T) {
	t.Log(Info())
	if Backend() != "openblas" {
		t.Skip("OpenBLAS not in use: ", Info())
	}
	want, _ := ChooseCoreType(os.Getenv(OverrideEnv), os.Getenv("OPENBLAS_CORETYPE"), CoreTypeFor())
	if want == "" {
		t.Skip("no core type to choose on this CPU")
	}
	if got := CoreName(); !equalFold(got, want) {
		t.Fatalf("OpenBLAS core %q, want %q (%s)", got, want, Info())
	}
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// BenchmarkSgemm reports GFLOP/s of a square single-precision GEMM.
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{256, 1024} {
		b.Run(itoa(n), func(b *testing.B) {
			benchSgemm(b, n)
		})
	}
	SetThreads(2)
	defer SetThreads(1)
	b.Run("1024-2threads", func(b *testing.B) { benchSgemm(b, 1024) })
	b.Log(Info())
}

func benchSgemm(b *testing.B, n int) {
	{
		{
			x := make([]float32, n*n)
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			c := make([]float32, n*n)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				Sgemm(false, false, n, n, n, 1, x, n, x, n, 0, c, n)
			}
			el := time.Since(start).Seconds()
			b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/el/1e9, "GFLOP/s")
		}
	}
}

func itoa(n int) string {
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

func TestMeasureSgemm(t *testing.T) {
	gf, err := MeasureSgemm(128, 0, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %.1f GFLOP/s", Info(), gf)
	if !(gf > 0.1) {
		t.Errorf("MeasureSgemm = %g GFLOP/s, want a positive rate", gf)
	}
	if _, err := MeasureSgemm(0, 1, time.Millisecond); err == nil {
		t.Error("n = 0: no error")
	}
}

func TestChooseCoreType(t *testing.T) {
	for _, tc := range []struct {
		forced, env, cpuid string
		want               string
		override           bool
	}{
		{"", "", "SkylakeX", "SkylakeX", false},
		{"", "", "", "", false},
		{"", "Haswell", "SkylakeX", "SkylakeX", true},  // a preset older family is replaced
		{"", "haswell", "Haswell", "haswell", false},   // same family: kept
		{"", "SkylakeX", "Haswell", "SkylakeX", false}, // newer than CPUID: the user knows best
		{"", "Zen", "SkylakeX", "SkylakeX", true},
		{"", "MyCustomCore", "SkylakeX", "MyCustomCore", false}, // unknown: kept
		{"auto", "Haswell", "SkylakeX", "SkylakeX", true},
		{"Haswell", "", "SkylakeX", "Haswell", true}, // explicit override wins
		{"Haswell", "SkylakeX", "SkylakeX", "Haswell", true},
		{"auto", "Haswell", "", "", false},
	} {
		w, o := ChooseCoreType(tc.forced, tc.env, tc.cpuid)
		if w != tc.want || o != tc.override {
			t.Errorf("ChooseCoreType(%q, %q, %q) = %q, %v; want %q, %v", tc.forced, tc.env, tc.cpuid, w, o, tc.want, tc.override)
		}
	}
}
