package baseline

import (
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gorgonia.org/tensor"
)

// psnr compares images in [−1, 1] on the [0, 1] scale (data range 1),
// averaged over the images of the batch; x is clipped to [−1, 1] first.
func psnr(x, ref *tensor.Dense) float64 {
	n := x.Shape()[0]
	d := len(tensors.F32(x)) / n
	tot := 0.0
	for i := 0; i < n; i++ {
		s := 0.0
		for j := i * d; j < (i+1)*d; j++ {
			e := (math.Max(-1, math.Min(1, float64(tensors.F32(x)[j]))) - float64(tensors.F32(ref)[j])) / 2
			s += e * e
		}
		tot += 10 * math.Log10(float64(d)/math.Max(s, 1e-30))
	}
	return tot / float64(n)
}

const mnistDir = "/work/shared/data/mnist"

// digits returns two MNIST test digits (N×1×28×28 in [−1, 1]), or skips.
func digits(t *testing.T) *tensor.Dense {
	t.Helper()
	ds, err := data.LoadMNIST(mnistDir, "test")
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	x, err := ds.Batch([]int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// smooth returns a smooth synthetic 1×1×h×w image in [−0.9, 0.9].
func smooth(h, w int) *tensor.Dense {
	x := tensors.New(1, 1, h, w)
	for i := 0; i < h; i++ {
		for j := 0; j < w; j++ {
			u, v := float64(i)/float64(h), float64(j)/float64(w)
			tensors.F32(x)[i*w+j] = float32(0.6*math.Sin(2*math.Pi*u)*math.Cos(3*math.Pi*v) + 0.3*math.Cos(2*math.Pi*(u+v)))
		}
	}
	return x
}

func measure(t *testing.T, a op.Operator, x *tensor.Dense, sigma float64, seed int64) *tensor.Dense {
	t.Helper()
	ax, err := a.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	y, err := (&op.Gaussian{Sigma: sigma}).Sample(ax, rand.New(rand.NewSource(seed)))
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func TestTikhonovBeatsPinvOnBlur(t *testing.T) {
	imgs := []struct {
		name string
		x    func(t *testing.T) *tensor.Dense
	}{
		{"mnist", digits},
		{"smooth", func(*testing.T) *tensor.Dense { return smooth(28, 28) }},
	}
	for _, im := range imgs {
		t.Run(im.name, func(t *testing.T) {
			x := im.x(t)
			a, err := op.NewGaussianBlur([3]int{1, 28, 28}, 9, 1.5, 3e-2)
			if err != nil {
				t.Fatal(err)
			}
			y := measure(t, a, x, 0.05, 1)
			p, _ := Pinv(a, y)
			r, err := Tikhonov(a, y, 0.01)
			if err != nil {
				t.Fatal(err)
			}
			pp, pr, py := psnr(p, x), psnr(r, x), psnr(y, x)
			t.Logf("blurred %.2f dB, A†y %.2f dB, Tikhonov %.2f dB", py, pp, pr)
			if pr < pp+0.5 || pr < py {
				t.Errorf("Tikhonov %.2f dB does not beat A†y %.2f dB (+0.5) and the blurred image %.2f dB", pr, pp, py)
			}
		})
	}
}

func TestTikhonovZeroIsPinv(t *testing.T) {
	a, _ := op.NewSRAvgPool([3]int{1, 8, 8}, 2)
	y := tensors.Randn(rand.New(rand.NewSource(2)), 2, 1, 4, 4)
	p, _ := a.Pinv(y)
	r, err := Tikhonov(a, y, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range tensors.F32(r) {
		if math.Abs(float64(v-tensors.F32(p)[i])) > 1e-5 {
			t.Fatalf("Tikhonov(λ=0) differs from A†y at %d: %v vs %v", i, v, tensors.F32(p)[i])
		}
	}
	if _, err := Tikhonov(a, y, -1); err == nil {
		t.Error("negative λ accepted")
	}
}

func TestWienerBeatsInverseFilter(t *testing.T) {
	x := digits(t)
	k, err := op.MotionKernel(9, 0.5, rand.New(rand.NewSource(3)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := op.NewCircConv("motion", [3]int{1, 28, 28}, k, 9, 9, 3e-2)
	if err != nil {
		t.Fatal(err)
	}
	y := measure(t, a, x, 0.05, 4)
	p, _ := Pinv(a, y)
	r, err := Wiener(a, y, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	pp, pr, py := psnr(p, x), psnr(r, x), psnr(y, x)
	t.Logf("blurred %.2f dB, A†y %.2f dB, Wiener %.2f dB", py, pp, pr)
	if pr < pp+1 || pr < py+1 {
		t.Errorf("Wiener %.2f dB does not beat A†y %.2f dB and the blurred image %.2f dB by 1 dB", pr, pp, py)
	}
	// noiseless, invertible kernel, λ → 0: Wiener is the exact inverse
	inv, _ := op.NewCircConv("mild", [3]int{1, 28, 28}, []float64{0, 0.1, 0, 0.1, 0.6, 0.1, 0, 0.1, 0}, 3, 3, 0)
	y0, _ := inv.Forward(x)
	r0, _ := Wiener(inv, y0, 0)
	if v := psnr(r0, x); v < 60 {
		t.Errorf("exact inverse filtering of an invertible blur gives %.2f dB, want ≥ 60", v)
	}
}

func TestADMMTV(t *testing.T) {
	x := digits(t)
	shape := [3]int{1, 28, 28}
	cases := []struct {
		name   string
		params map[string]any
		gain   float64 // required dB over A†y
	}{
		{"inpaint_random", map[string]any{"missing": 0.7}, 5},
		{"blur_gauss", map[string]any{"sigma": 1.5, "size": 9}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := op.New(c.name, c.params, shape, rand.New(rand.NewSource(5)))
			if err != nil {
				t.Fatal(err)
			}
			a := o.(op.Linear)
			y := measure(t, a, x, 0.05, 6)
			p, _ := Pinv(a, y)
			opt := DefaultTV()
			opt.Iters = 60
			r, err := ADMMTV(a, y, opt)
			if err != nil {
				t.Fatal(err)
			}
			pp, pr := psnr(p, x), psnr(r, x)
			t.Logf("A†y %.2f dB, ADMM-TV %.2f dB", pp, pr)
			if pr < pp+c.gain {
				t.Errorf("ADMM-TV %.2f dB, want ≥ A†y %.2f dB + %.0f", pr, pp, c.gain)
			}
			f0, _ := TVObjective(a, Clamp(p), y, opt)
			f1, _ := TVObjective(a, r, y, opt)
			for i := range f0 {
				if f1[i] >= f0[i] {
					t.Errorf("image %d: objective %v did not fall below its value %v at A†y", i, f1[i], f0[i])
				}
			}
		})
	}
	t.Run("anisotropic on a smooth image", func(t *testing.T) {
		xs := smooth(16, 16)
		a, _ := op.NewInpaintRandom([3]int{1, 16, 16}, 0.5, rand.New(rand.NewSource(7)))
		y := measure(t, a, xs, 0.01, 8)
		opt := DefaultTV()
		opt.Anisotropic, opt.Iters = true, 40
		r, err := ADMMTV(a, y, opt)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := a.Pinv(y)
		if pr, pp := psnr(r, xs), psnr(p, xs); pr < pp+4 || pr < 20 {
			t.Errorf("anisotropic TV inpainting %.2f dB, A†y %.2f dB: want +4 dB and ≥ 20 dB", pr, pp)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		a, _ := op.NewIdentity(shape)
		opt := DefaultTV()
		opt.Rho = 0
		if _, err := ADMMTV(a, x, opt); err == nil || !strings.Contains(err.Error(), "ρ") {
			t.Errorf("ρ = 0: error %v", err)
		}
	})
}

func TestPhaseRetrieval(t *testing.T) {
	t.Run("HIO and ER reduce the magnitude residual on a tiny image", func(t *testing.T) {
		x := tensors.New(1, 1, 8, 8)
		for i := range tensors.F32(x) {
			tensors.F32(x)[i] = -1
		}
		rng := rand.New(rand.NewSource(9))
		for i := 2; i < 6; i++ {
			for j := 1; j < 6; j++ {
				tensors.F32(x)[i*8+j] = float32(2*rng.Float64() - 1)
			}
		}
		a, _ := op.NewPhaseRetrieval([3]int{1, 8, 8}, 2)
		y, _ := a.Forward(x)
		// residual of a random start in the same family as the solver's starts
		start := tensors.New(1, 1, 8, 8)
		for i := range tensors.F32(start) {
			tensors.F32(start)[i] = float32(2*rng.Float64() - 1)
		}
		r0, _ := MagnitudeResidual(a, start, y)
		for _, m := range []string{"hio", "er"} {
			opt := PROptions{Method: m, Iters: 200, FinalER: 20, Restarts: 2, Beta: 0.9}
			xr, res, err := PhaseRetrieve(a, y, opt, rand.New(rand.NewSource(10)))
			if err != nil {
				t.Fatal(err)
			}
			r1, _ := MagnitudeResidual(a, xr, y)
			if math.Abs(r1[0]-res[0]) > 1e-3 {
				t.Errorf("%s: reported residual %v, recomputed %v", m, res[0], r1[0])
			}
			if r1[0] > r0[0]/5 {
				t.Errorf("%s: residual %v, want below a fifth of the random start's %v", m, r1[0], r0[0])
			}
		}
	})
	t.Run("images solved side by side give the one-by-one result", func(t *testing.T) {
		rng := rand.New(rand.NewSource(3))
		x := tensors.New(5, 2, 9, 9)
		for i := range tensors.F32(x) {
			tensors.F32(x)[i] = float32(2*rng.Float64() - 1)
		}
		a, _ := op.NewPhaseRetrieval([3]int{2, 9, 9}, 2)
		y, _ := a.Forward(x)
		for _, m := range []string{"hio", "er"} {
			opt := PROptions{Method: m, Iters: 40, FinalER: 5, Restarts: 3, Beta: 0.9, Workers: 1}
			x1, r1, err := PhaseRetrieve(a, y, opt, rand.New(rand.NewSource(7)))
			if err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{2, 3, 0} {
				opt.Workers = workers
				xw, rw, err := PhaseRetrieve(a, y, opt, rand.New(rand.NewSource(7)))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(tensors.F32(x1), tensors.F32(xw)) || !slices.Equal(r1, rw) {
					t.Errorf("%s with %d workers differs from one worker's result", m, workers)
				}
			}
			// The first image's random starts are the first drawn: solved
			// alone it gives the batch's first image.
			os := a.OutShape()
			per := os[0] * os[1] * os[2]
			y0 := tensors.New(1, os[0], os[1], os[2])
			copy(tensors.F32(y0), tensors.F32(y)[:per])
			x0, _, err := PhaseRetrieve(a, y0, opt, rand.New(rand.NewSource(7)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tensors.F32(x0), tensors.F32(x1)[:2*9*9]) {
				t.Errorf("%s: the first image solved alone differs from the batch's first", m)
			}
		}
	})
	t.Run("HIO recovers an MNIST digit up to the trivial ambiguities", func(t *testing.T) {
		x := digits(t)
		a, _ := op.NewPhaseRetrieval([3]int{1, 28, 28}, 2)
		y, _ := a.Forward(x)
		opt := DefaultPR()
		opt.Iters, opt.Restarts = 300, 2
		xr, _, err := PhaseRetrieve(a, y, opt, rand.New(rand.NewSource(11)))
		if err != nil {
			t.Fatal(err)
		}
		al, err := Align(xr, x, 8)
		if err != nil {
			t.Fatal(err)
		}
		if v := psnr(al, x); v < 30 {
			t.Errorf("aligned HIO reconstruction %.2f dB, want ≥ 30", v)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		a, _ := op.NewPhaseRetrieval([3]int{1, 8, 8}, 2)
		y := tensors.New(1, 1, 12, 12)
		for _, opt := range []PROptions{{Method: "oss", Iters: 1, Restarts: 1, Beta: 0.9}, {Method: "hio", Iters: 1, Restarts: 0, Beta: 0.9}} {
			if _, _, err := PhaseRetrieve(a, y, opt, rand.New(rand.NewSource(1))); err == nil {
				t.Errorf("options %+v accepted", opt)
			}
		}
		if _, _, err := PhaseRetrieve(a, tensors.New(1, 1, 8, 8), DefaultPR(), rand.New(rand.NewSource(1))); err == nil {
			t.Error("image-shaped y accepted")
		}
	})
}

func TestAlignUndoesRotationAndShift(t *testing.T) {
	x := tensors.New(1, 1, 10, 10)
	for i := range tensors.F32(x) {
		tensors.F32(x)[i] = -1
	}
	for i := 3; i < 7; i++ {
		for j := 2; j < 5; j++ {
			tensors.F32(x)[i*10+j] = float32(i*j) / 30
		}
	}
	// rotate by 180° and shift by (1, 2)
	z := tensors.New(1, 1, 10, 10)
	for i := range tensors.F32(z) {
		tensors.F32(z)[i] = -1
	}
	for i := 0; i < 10; i++ {
		for j := 0; j < 10; j++ {
			ri, rj := 9-i+1, 9-j+2
			if ri < 10 && rj < 10 {
				tensors.F32(z)[ri*10+rj] = tensors.F32(x)[i*10+j]
			}
		}
	}
	al, err := Align(z, x, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range tensors.F32(al) {
		if v != tensors.F32(x)[i] {
			t.Fatalf("aligned pixel %d is %v, want %v", i, v, tensors.F32(x)[i])
		}
	}
}

func TestADMMTVNonUniformBlur(t *testing.T) {
	x := digits(t)
	o, err := op.New("blur_nonuniform", map[string]any{"size": 7}, [3]int{1, 28, 28}, rand.New(rand.NewSource(12)))
	if err != nil {
		t.Fatal(err)
	}
	y := measure(t, o, x, 0.02, 13)
	opt := DefaultTV()
	opt.Iters = 30
	r, err := ADMMTV(o, y, opt)
	if err != nil {
		t.Fatal(err)
	}
	pr, py := psnr(r, x), psnr(y, x)
	t.Logf("blurred %.2f dB, ADMM-TV %.2f dB", py, pr)
	if pr < py+3 {
		t.Errorf("ADMM-TV %.2f dB on non-uniform blur, want ≥ blurred %.2f dB + 3", pr, py)
	}
	pr2, _ := op.NewPhaseRetrieval([3]int{1, 28, 28}, 2)
	if _, err := ADMMTV(pr2, y, opt); err == nil || !strings.Contains(err.Error(), "Adjoint") {
		t.Errorf("phase retrieval accepted by ADMM-TV: %v", err)
	}
}
