package metrics

import (
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
)

func TestPSNRClosedForm(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    float32 // every pixel differs by d, so MSE = d²
		want float64
	}{
		{"0.1", 0.1, 20}, // 10·log10(1/0.01)
		{"0.01", 0.01, 40},
		{"0.5", 0.5, 10 * math.Log10(4)},
		{"0", 0, math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := make([]float32, 12)
			y := make([]float32, 12)
			for i := range x {
				x[i] = 0.25 + float32(i)*0.01
				y[i] = x[i] + tc.d*float32(1-2*(i%2)) // ±d, same MSE
			}
			got, err := PSNR01(x, y)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsInf(tc.want, 1) {
				if !math.IsInf(got, 1) {
					t.Errorf("PSNR of identical images %v, want +Inf", got)
				}
				return
			}
			if math.Abs(got-tc.want) > 1e-4 {
				t.Errorf("PSNR %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := PSNR01([]float32{1}, []float32{1, 2}); err == nil || !strings.Contains(err.Error(), "lengths 1 and 2") {
		t.Errorf("length mismatch: error %v", err)
	}
}

func TestPSNRBatchConvertsFromSigned(t *testing.T) {
	// Image 0 differs by 0.2 in [-1,1] = 0.1 in [0,1]: 20 dB. Image 1 has
	// values beyond 1 that clamp to the truth: +Inf.
	x := tensors.FromSlice([]float32{0, 0, 0, 0, 1, 1, 1, 1}, 2, 1, 2, 2)
	y := tensors.FromSlice([]float32{0.2, -0.2, 0.2, -0.2, 1.5, 3, 1, 1}, 2, 1, 2, 2)
	got, err := PSNRBatch(x, y)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got[0]-20) > 1e-4 || !math.IsInf(got[1], 1) {
		t.Errorf("PSNRBatch %v, want [20 +Inf]", got)
	}
	if _, err := PSNRBatch(x, tensors.New(2, 1, 2, 3)); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("shape mismatch: error %v", err)
	}
}

func TestSSIMConstantClosedForm(t *testing.T) {
	// For constant images every local variance is 0, so SSIM is the
	// luminance term (2ab + C1)/(a² + b² + C1).
	const a, b = 0.5, 0.6
	x, y := make([]float32, 3*12*13), make([]float32, 3*12*13)
	for i := range x {
		x[i], y[i] = a, b
	}
	got, err := SSIM01(x, y, 3, 12, 13, SSIMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c1 := 0.01 * 0.01
	af, bf := float64(float32(a)), float64(float32(b))
	want := (2*af*bf + c1) / (af*af + bf*bf + c1)
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("SSIM of constants %v, want %v", got, want)
	}
}

func noisy(rng *rand.Rand, x []float32, sigma float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = v + float32(sigma*rng.NormFloat64())
	}
	return y
}

func TestSSIMProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	const c, h, w = 3, 20, 16
	x := make([]float32, c*h*w)
	for i := range x {
		x[i] = float32(0.5 + 0.3*math.Sin(float64(i%w)/3+float64(i/w%h)/5) + 0.05*rng.Float64())
	}
	self, err := SSIM01(x, x, c, h, w, SSIMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(self-1) > 1e-12 {
		t.Errorf("SSIM(x, x) = %v, want 1", self)
	}
	prev := 1.0
	for _, sigma := range []float64{0.01, 0.05, 0.1, 0.3} {
		y := noisy(rng, x, sigma)
		s, err := SSIM01(x, y, c, h, w, SSIMOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := SSIM01(y, x, c, h, w, SSIMOptions{})
		if math.Abs(s-r) > 1e-12 {
			t.Errorf("σ=%v: SSIM(x,y) = %v but SSIM(y,x) = %v", sigma, s, r)
		}
		if !(s < prev) || s <= -1 {
			t.Errorf("σ=%v: SSIM %v, want below %v (the less noisy value) and above -1", sigma, s, prev)
		}
		prev = s
	}
	for _, tc := range []struct {
		name    string
		c, h, w int
		opt     SSIMOptions
		want    string
	}{
		{"too small", 1, 10, 30, SSIMOptions{}, "smaller than the 11×11 window"},
		{"length", 2, 20, 16, SSIMOptions{}, "want 640 each"},
		{"even window", 3, 20, 16, SSIMOptions{Window: 4}, "odd window"},
	} {
		n := tc.c * tc.h * tc.w
		if tc.name == "length" {
			n = len(x)
		}
		_, err := SSIM01(x[:min(n, len(x))], x[:min(n, len(x))], tc.c, tc.h, tc.w, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

type golden struct {
	Pairs []struct {
		Name       string
		C, H, W    int
		X, Y       []int
		SSIM, PSNR float64
	}
}

// TestSSIMGolden compares against testdata/ssim_golden.json, written by
// testdata/ssim_golden.py (numpy, scikit-image's filtering convention;
// the script checked its values against scikit-image 0.19.3 to 1e-15).
func TestSSIMGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/ssim_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Pairs) < 4 {
		t.Fatalf("golden file has %d pairs, want 4", len(g.Pairs))
	}
	for _, p := range g.Pairs {
		t.Run(p.Name, func(t *testing.T) {
			x, y := make([]float32, len(p.X)), make([]float32, len(p.Y))
			for i := range p.X {
				x[i], y[i] = float32(p.X[i])/255, float32(p.Y[i])/255
			}
			s, err := SSIM01(x, y, p.C, p.H, p.W, SSIMOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(s-p.SSIM) > 1e-6 {
				t.Errorf("SSIM %.9f, golden %.9f", s, p.SSIM)
			}
			ps, err := PSNR01(x, y)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(ps-p.PSNR) > 1e-5 {
				t.Errorf("PSNR %.7f, golden %.7f", ps, p.PSNR)
			}
			// The same pair through the [-1, 1] batch API.
			xs, ys := make([]float32, len(x)), make([]float32, len(y))
			for i := range x {
				xs[i], ys[i] = 2*x[i]-1, 2*y[i]-1
			}
			bs, err := SSIMBatch(tensors.FromSlice(xs, 1, p.C, p.H, p.W), tensors.FromSlice(ys, 1, p.C, p.H, p.W))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(bs[0]-p.SSIM) > 1e-5 {
				t.Errorf("SSIMBatch %.9f, golden %.9f", bs[0], p.SSIM)
			}
		})
	}
}

func TestConsistency(t *testing.T) {
	y := tensors.FromSlice([]float32{3, 4, 0, 1, 1, 1}, 2, 3)
	ax := tensors.FromSlice([]float32{0, 0, 0, 1, 1, 1}, 2, 3)
	got, err := Consistency(y, ax)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || math.Abs(got[0]-5) > 1e-12 || got[1] != 0 {
		t.Errorf("Consistency %v, want [5 0]", got)
	}
	if _, err := Consistency(y, tensors.New(3, 2)); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("shape mismatch: error %v", err)
	}
	if m := Mean([]float64{1, 2, 6}); m != 3 {
		t.Errorf("Mean = %v, want 3", m)
	}
}
