package model

import (
	"math"
	"math/rand"
	"os"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// shippedModel loads the shipped MNIST model, or skips when it is absent.
func shippedModel(t *testing.T) *UNet {
	t.Helper()
	const path = "../models/mnist/model.safetensors"
	if _, err := os.Stat(path); err != nil {
		t.Skip("shipped model absent")
	}
	u, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// relDiff is ‖a − b‖ / ‖b‖ over two float32 tensors' values.
func relDiff(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// TestBF16MatchesFP32 runs the shipped MNIST model's ε and vᵀ∂ε/∂x_t in
// bf16 and in fp32 on the same noisy digits-like inputs at timesteps across
// the schedule: the relative error stays below 2 % for ε and 3 % for the
// VJP (bf16 keeps 8 significant bits, ≈ 0.4 % per rounding; the measured
// errors are printed).
func TestBF16MatchesFP32(t *testing.T) {
	if ok, why := nn.BF16Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	u := shippedModel(t)
	cfg := u.Config()
	rng := rand.New(rand.NewSource(3))
	const n = 4
	x := tensors.Randn(rng, n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	v := tensors.Randn(rng, n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	ts := []int{0, 250, 600, 999}
	e32, j32, err := u.EpsVJP(x, ts, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetPrecision(nn.BF16); err != nil {
		t.Fatal(err)
	}
	e16, j16, err := u.EpsVJP(x, ts, v)
	if err != nil {
		t.Fatal(err)
	}
	f16, err := u.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	de, dj := relDiff(tensors.F32(e16), tensors.F32(e32)), relDiff(tensors.F32(j16), tensors.F32(j32))
	t.Logf("bf16 vs fp32: ε relative error %.2e, VJP %.2e", de, dj)
	if de > 0.02 {
		t.Errorf("ε relative error %.2e > 2e-2", de)
	}
	if dj > 0.03 {
		t.Errorf("VJP relative error %.2e > 3e-2", dj)
	}
	if d := relDiff(tensors.F32(f16), tensors.F32(e16)); d != 0 {
		t.Errorf("bf16 Eps and EpsVJP's ε differ (relative %.2e), want the same bits", d)
	}
	// The pullback in bf16: one forward, then two cotangents, each equal to
	// EpsVJP's bits (the second must not reuse the first's bf16 gradient).
	v2 := tensors.Randn(rng, n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	_, j2, err := u.EpsVJP(x, ts, v2)
	if err != nil {
		t.Fatal(err)
	}
	pe, pull, err := u.EpsPullback(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	if d := relDiff(tensors.F32(pe), tensors.F32(e16)); d != 0 {
		t.Errorf("bf16 pullback ε differs from EpsVJP's (relative %.2e)", d)
	}
	for i, c := range []struct{ v, want []float32 }{{tensors.F32(v), tensors.F32(j16)}, {tensors.F32(v2), tensors.F32(j2)}} {
		vv := tensors.Clone(v)
		copy(tensors.F32(vv), c.v)
		got, err := pull(vv)
		if err != nil {
			t.Fatal(err)
		}
		if d := relDiff(tensors.F32(got), c.want); d != 0 {
			t.Errorf("bf16 pullback cotangent %d differs from EpsVJP (relative %.2e)", i, d)
		}
	}
	// back to fp32: the original bits
	if err := u.SetPrecision(nn.FP32); err != nil {
		t.Fatal(err)
	}
	e, err := u.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	if d := relDiff(tensors.F32(e), tensors.F32(e32)); d != 0 {
		t.Errorf("fp32 after bf16 differs from fp32 before (relative %.2e)", d)
	}
}
