package op

import (
	"math"
	"testing"

	"gorgonia.org/tensor"
)

// The 256-px goldens (DPS's and DDNM's own image size) beyond those that
// golden_test.go's loops cover (bicubic A, the two blurs' A and Aᵀ): channel
// 0 of the test picture where the operator acts per channel, the whole
// picture for colorization. Inpainting is elementwise and independent of
// the size; it is checked at 64 and 28 px only.

// golden256 returns channel 0 of the 256-px test picture as a 1×1×256×256
// batch, the whole 1×3×256×256 picture and its 3-channel shape.
func golden256(t *testing.T) (x0, x *tensor.Dense, s [3]int) {
	t.Helper()
	x, s = goldenInput(t, 256)
	return channel0(x), x, s
}

var shape256 = [3]int{1, 256, 256}

func TestGolden256SRBicubic(t *testing.T) {
	x0, _, _ := golden256(t)
	a := mustOp(t, "sr_bicubic", map[string]any{"factor": 4}, shape256).(Linear)
	y3, _ := golden(t, "256_sr_bicubic_y")
	y := y3[:64*64]
	check(t, "A x, channel 0", run1(t, a.Forward, x0), y, 64, 64, nil, f32tol)
	yb := asBatch(y, 1, 64, 64)
	at, _ := golden(t, "256_sr_bicubic_at")
	check(t, "Aᵀ y", run1(t, a.Adjoint, yb), at, 256, 256, nil, f32tol)
	pv, _ := golden(t, "256_sr_bicubic_pinv")
	check(t, "A† y", run1(t, a.Pinv, yb), pv, 256, 256, nil, f32tol)
}

func TestGolden256SRAvgPool(t *testing.T) {
	x0, _, _ := golden256(t)
	a := mustOp(t, "sr_avgpool", map[string]any{"factor": 4}, shape256).(Linear)
	y, _ := golden(t, "256_sr_avgpool_y")
	check(t, "A x", run1(t, a.Forward, x0), y, 64, 64, nil, f32tol)
	yb := asBatch(y, 1, 64, 64)
	at, _ := golden(t, "256_sr_avgpool_at")
	check(t, "Aᵀ y", run1(t, a.Adjoint, yb), at, 256, 256, nil, f32tol)
	// The script asserts A† y = 16 Aᵀ y (to float64 rounding) and does not
	// store it.
	pv := make([]float64, len(at))
	for i, v := range at {
		pv[i] = 16 * v
	}
	check(t, "A† y (= 16 Aᵀ y)", run1(t, a.Pinv, yb), pv, 256, 256, nil, f32tol)
}

// TestGolden256PhaseRetrieval: DPS's own setting (256 px, pad 64, [−1, 1]
// image). At 256 px diffinv's default padding round(2/8·256) is DPS's 64,
// so only the domain differs.
func TestGolden256PhaseRetrieval(t *testing.T) {
	x0, _, _ := golden256(t)
	y, ys := golden(t, "256_phase_y")
	if ys[1] != 384 || ys[2] != 384 {
		t.Fatalf("golden shape %v, want 1×384×384", ys)
	}
	a := mustOp(t, "phase_retrieval", map[string]any{"pad": 64, "domain": "signed"}, shape256)
	check(t, "|F pad x| (domain signed, pad 64)", run1(t, a.Forward, x0), y, 384, 384, nil, f32tol)
	def := mustOp(t, "phase_retrieval", nil, shape256)
	if got := def.(Shaped).OutShape(); got[1] != 384 || got[2] != 384 {
		t.Errorf("default padding at 256 px gives %v, want DPS's 384×384", got)
	}
	differs(t, "|F pad x| (default: domain unit)", run1(t, def.Forward, x0), y, 384, 384, nil, 1e-2)
	sig := mustOp(t, "phase_retrieval", map[string]any{"domain": "signed"}, shape256)
	check(t, "|F pad x| (domain signed, default padding)", run1(t, sig.Forward, x0), y, 384, 384, nil, f32tol)
}

// TestGolden256Colorize: DDNM's weights on the 3-channel 256-px picture.
func TestGolden256Colorize(t *testing.T) {
	_, x, s := golden256(t)
	a := mustOp(t, "colorize", map[string]any{"weights": "ddnm"}, s).(Linear)
	y, _ := golden(t, "256_colorize_y")
	check(t, "A x (weights ddnm)", run1(t, a.Forward, x), y, 256, 256, nil, f32tol)
	def := mustOp(t, "colorize", nil, s).(Linear)
	if d := differs(t, "A x (weights equal)", run1(t, def.Forward, x), y, 256, 256, nil, 1e-5); d > 1.4e-4 {
		t.Errorf("equal weights differ from DDNM's by %.3g, documented as ≤ 1.4e-4", d)
	}
}

// TestGolden256CSBlock: DDNM's block CS with 8-px blocks (DDNM's 32-px
// blocks would need a 4 MB matrix); y reordered from (block, row) to
// diffinv's [m, blocks] as in TestGoldenCSBlock.
func TestGolden256CSBlock(t *testing.T) {
	x0, _, _ := golden256(t)
	q, qs := golden(t, "256_cs_q")
	bb := qs[0]
	b := int(math.Round(math.Sqrt(float64(bb))))
	m := int(math.Round(0.25 * float64(bb)))
	a, err := NewCSBlockQ(shape256, q, m, b)
	if err != nil {
		t.Fatal(err)
	}
	yd, _ := golden(t, "256_cs_y")
	nb := (256 / b) * (256 / b)
	y := make([]float64, len(yd))
	for blk := 0; blk < nb; blk++ {
		for k := 0; k < m; k++ {
			y[k*nb+blk] = yd[blk*m+k]
		}
	}
	check(t, "A x", run1(t, a.Forward, x0), y, m, nb, nil, f32tol)
	at, _ := golden(t, "256_cs_at")
	yb := asBatch(y, 1, m, nb)
	check(t, "Aᵀ y", run1(t, a.Adjoint, yb), at, 256, 256, nil, f32tol)
	check(t, "A† y", run1(t, a.Pinv, yb), at, 256, 256, nil, f32tol)
}

// TestGolden256DDNMDeblur: DDNM's deblur_gauss at its own size, with the
// options of TestGoldenDDNMDeblur; each option flipped back to diffinv's
// default shows its difference.
func TestGolden256DDNMDeblur(t *testing.T) {
	x0, _, _ := golden256(t)
	p := map[string]any{"size": 5, "sigma": 10, "taps": "ddrm", "svd_trunc": "factor", "svd_tol": 0.03, "forward": "svd"}
	a := mustOp(t, "blur_gauss", p, shape256).(SVD)
	y, _ := golden(t, "256_ddnm_deblur_y")
	check(t, "A x (DDNM's truncated SVD)", run1(t, a.Forward, x0), y, 256, 256, nil, f32tol)
	yb := asBatch(y, 1, 256, 256)
	pv, _ := golden(t, "256_ddnm_deblur_pinv")
	check(t, "A† y", run1(t, a.Pinv, yb), pv, 256, 256, nil, 1e-5)
	kept := 0
	for _, v := range a.Singulars() {
		if v > 0 {
			kept++
		}
	}
	// The script counts 241 of 256 1-D values ≥ 0.03 per factor.
	if kept != 241*241 {
		t.Errorf("svd_trunc factor keeps %d of %d singular values, DDNM's rule %d", kept, len(a.Singulars()), 241*241)
	}
	flip := func(k string, v any) Linear {
		q := map[string]any{}
		for kk, vv := range p {
			q[kk] = vv
		}
		q[k] = v
		return mustOp(t, "blur_gauss", q, shape256).(Linear)
	}
	differs(t, "A x (forward exact)", run1(t, flip("forward", "exact").Forward, x0), y, 256, 256, nil, 1e-4)
	differs(t, "A x (taps all)", run1(t, flip("taps", "all").Forward, x0), y, 256, 256, nil, 1e-3)
	differs(t, "A† y (svd_trunc product)", run1(t, flip("svd_trunc", "product").Pinv, yb), pv, 256, 256, nil, 1e-3)
}
