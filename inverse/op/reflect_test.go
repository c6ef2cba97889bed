package op

import (
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/diffinv/diffinv/internal/tensors"
)

// directReflect is the reference of ReflectConv: PyTorch's ReflectionPad2d
// by (kh/2, kw/2) and a 'valid' correlation (or convolution), by loops.
func directReflect(x []float64, c, h, w int, k []float64, kh, kw int, orient Orientation) []float64 {
	ca, cb := kh/2, kw/2
	out := make([]float64, len(x))
	for ch := 0; ch < c; ch++ {
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				s := 0.0
				for a := 0; a < kh; a++ {
					for b := 0; b < kw; b++ {
						di, dj := a-ca, b-cb
						if orient == Convolve {
							di, dj = -di, -dj
						}
						s += k[a*kw+b] * x[ch*h*w+reflectIndex(i+di, h)*w+reflectIndex(j+dj, w)]
					}
				}
				out[ch*h*w+i*w+j] = s
			}
		}
	}
	return out
}

// TestReflectConvForward: Forward equals the direct reflect-padded filter
// (odd and even, square and oblong kernels, both orientations, a kernel
// radius up to side−1) to float32 rounding, and Adjoint passes the
// adjoint identity ⟨Ax, y⟩ = ⟨x, Aᵀy⟩.
func TestReflectConvForward(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, c := range []struct {
		shape  [3]int
		kh, kw int
		orient Orientation
	}{
		{[3]int{2, 12, 17}, 5, 5, Correlate},
		{[3]int{1, 12, 17}, 5, 3, Convolve},
		{[3]int{1, 10, 9}, 4, 6, Correlate},
		{[3]int{1, 8, 8}, 15, 15, Correlate}, // radius 7 = side − 1: the largest PyTorch pads
		{[3]int{3, 9, 11}, 1, 1, Correlate},
	} {
		k := make([]float64, c.kh*c.kw)
		for i := range k {
			k[i] = rng.Float64()
		}
		o, err := NewReflectFilter("test", c.shape, k, c.kh, c.kw, c.orient, 10)
		if err != nil {
			t.Fatal(err)
		}
		x := tensors.Randn(rng, batch(2, c.shape[:])...)
		got := tensors.F32(run1(t, o.Forward, x))
		d := c.shape[0] * c.shape[1] * c.shape[2]
		worst := 0.0
		for n := 0; n < 2; n++ {
			want := directReflect(f64(tensors.F32(x)[n*d:(n+1)*d]), c.shape[0], c.shape[1], c.shape[2], k, c.kh, c.kw, c.orient)
			for i, v := range want {
				worst = math.Max(worst, math.Abs(float64(got[n*d+i])-v)/(1+math.Abs(v)))
			}
		}
		if worst > 2e-6 {
			t.Errorf("%v kernel %d×%d %s: Forward differs from the direct filter by %.3g", c.shape, c.kh, c.kw, c.orient, worst)
		}
		y := tensors.Randn(rng, batch(2, c.shape[:])...)
		ax, aty := run1(t, o.Forward, x), run1(t, o.Adjoint, y)
		l, r := dot(ax, y), dot(x, aty)
		if rel := math.Abs(l-r) / (norm(ax) * norm(y)); rel > 1e-6 {
			t.Errorf("%v kernel %d×%d: <Ax,y> = %v but <x,Aᵀy> = %v (relative %.3g)", c.shape, c.kh, c.kw, l, r, rel)
		}
	}
}

// TestReflectConvPinv: on a well-conditioned kernel conjugate gradients
// reach the exact inverse (A A† y = y and A† A x = x to 1e-5 relative); on
// the goldens' 17-px motion kernel at 64 px (DPS's 61 px scaled) the capped
// iterations (100) leave a range residual ‖A A† y − y‖/‖y‖ below 1e-2
// (measured 4.7e-4), lower than 20 iterations leave.
func TestReflectConvPinv(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	mild := []float64{0, 0.1, 0, 0.1, 0.6, 0.05, 0, 0.15, 0}
	s := [3]int{2, 16, 20}
	o, err := NewReflectFilter("mild", s, mild, 3, 3, Correlate, DefaultReflectPinvIters)
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.Randn(rng, batch(2, s[:])...)
	y := tensors.Randn(rng, batch(2, s[:])...)
	if d := relDiff(run1(t, o.Forward, run1(t, o.Pinv, y)), y); d > 1e-5 {
		t.Errorf("mild kernel: A A† y differs from y by %.3g", d)
	}
	if d := relDiff(run1(t, o.Pinv, run1(t, o.Forward, x)), x); d > 1e-5 {
		t.Errorf("mild kernel: A† A x differs from x by %.3g", d)
	}
	k, ks, err := ReadNPY(goldenDir + "/64_blur_motion_kernel.npy")
	if err != nil {
		t.Fatal(err)
	}
	xg, sg := goldenInput(t, 64)
	var prev float64
	for _, iters := range []int{20, DefaultReflectPinvIters} {
		m, err := NewReflectFilter("motion", sg, k, ks[0], ks[1], Correlate, iters)
		if err != nil {
			t.Fatal(err)
		}
		yr := run1(t, m.Forward, xg)
		d := relDiff(run1(t, m.Forward, run1(t, m.Pinv, yr)), yr)
		t.Logf("64 px motion kernel, %d iterations: ‖A A† y − y‖/‖y‖ = %.3g", iters, d)
		if iters == DefaultReflectPinvIters && (d > 1e-2 || !(d < prev)) {
			t.Errorf("%d iterations: range residual %.3g, want ≤ 1e-2 and below %d-iteration's %.3g", iters, d, 20, prev)
		}
		prev = d
	}
}

// TestReflectConvParams: boundary reflect through the registry builds a
// ReflectConv (blur_motion, blur_nonuniform, whose blend keeps the adjoint
// identity), the default stays circular with the same kernel draw,
// and bad values are errors naming them: an unknown boundary, pinv_tol with
// reflect, pinv_iters with circular or < 1, a kernel radius ≥ the side.
func TestReflectConvParams(t *testing.T) {
	s := [3]int{1, 28, 28}
	rngOf := func() *rand.Rand { return rand.New(rand.NewSource(5)) }
	o, err := New("blur_motion", map[string]any{"boundary": "reflect"}, s, rngOf())
	if err != nil {
		t.Fatal(err)
	}
	rc, ok := o.(*ReflectConv)
	if !ok {
		t.Fatalf("boundary reflect built %T, want *ReflectConv", o)
	}
	if rc.PinvIters() != DefaultReflectPinvIters {
		t.Errorf("pinv_iters %d, want %d", rc.PinvIters(), DefaultReflectPinvIters)
	}
	def, err := New("blur_motion", nil, s, rngOf())
	if err != nil {
		t.Fatal(err)
	}
	cc, ok := def.(*CircConv)
	if !ok {
		t.Fatalf("default boundary built %T, want *CircConv", def)
	}
	k1, _, _ := rc.Kernel()
	k2, _, _ := cc.Kernel()
	for i := range k1 {
		if k1[i] != k2[i] {
			t.Fatal("boundary changed the motion kernel draw")
		}
	}
	nu, err := New("blur_nonuniform", map[string]any{"boundary": "reflect", "kernels": 2, "size": 5}, s, rngOf())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := nu.(*NonUniformBlur).convs[0].(*ReflectConv); !ok {
		t.Errorf("blur_nonuniform boundary reflect: kernel filter %T", nu.(*NonUniformBlur).convs[0])
	}
	nub := nu.(*NonUniformBlur)
	r := rand.New(rand.NewSource(8))
	x, y := tensors.Randn(r, 2, 1, 28, 28), tensors.Randn(r, 2, 1, 28, 28)
	ax, aty := run1(t, nub.Forward, x), run1(t, nub.Adjoint, y)
	if l, rr := dot(ax, y), dot(x, aty); math.Abs(l-rr) > 1e-6*norm(ax)*norm(y) {
		t.Errorf("blur_nonuniform boundary reflect: <Ax,y> = %v, <x,Aᵀy> = %v", l, rr)
	}
	for _, c := range []struct {
		name string
		p    map[string]any
		want string
	}{
		{"blur_motion", map[string]any{"boundary": "zero"}, `boundary "zero"`},
		{"blur_motion", map[string]any{"boundary": "reflect", "pinv_tol": 0.01}, `"pinv_tol"`},
		{"blur_motion", map[string]any{"pinv_iters": 10}, `"pinv_iters"`},
		{"blur_motion", map[string]any{"boundary": "reflect", "pinv_iters": 0}, "pinv_iters 0"},
		{"blur_motion", map[string]any{"boundary": "reflect", "size": 61}, "needs an image larger"},
		{"blur_nonuniform", map[string]any{"boundary": "mirror"}, `boundary "mirror"`},
	} {
		_, err := New(c.name, c.p, s, rngOf())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: error %v, want one containing %q", c.name, c.p, err, c.want)
		}
	}
}

// TestReflectConvSpeed logs the cost of one Forward and one Pinv at DPS's
// sizes (61-px kernel at 64 px, 3 channels; 7 px at 28 px) and bounds
// Forward loosely (it is an FFT of the padded image, not a direct
// 61×61-tap sum).
func TestReflectConvSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	rng := rand.New(rand.NewSource(6))
	for _, c := range []struct {
		shape [3]int
		size  int
	}{{[3]int{3, 64, 64}, 61}, {[3]int{1, 28, 28}, 7}} {
		k, err := MotionKernel(c.size, 0.5, rng)
		if err != nil {
			t.Fatal(err)
		}
		o, err := NewReflectFilter("speed", c.shape, k, c.size, c.size, Correlate, DefaultReflectPinvIters)
		if err != nil {
			t.Fatal(err)
		}
		x := tensors.Randn(rng, batch(1, c.shape[:])...)
		start := time.Now()
		y := run1(t, o.Forward, x)
		fwd := time.Since(start)
		start = time.Now()
		run1(t, o.Pinv, y)
		pinv := time.Since(start)
		t.Logf("%v, %d-px kernel: Forward %v, Pinv (≤ %d CG iterations) %v", c.shape, c.size, fwd, DefaultReflectPinvIters, pinv)
		if fwd > 2*time.Second {
			t.Errorf("Forward took %v", fwd)
		}
	}
}
