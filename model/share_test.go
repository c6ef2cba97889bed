package model

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// TestSharedBuffers: the forward, VJP and training graphs run with shared
// op buffers (nn.NewSharedTapeMachine) compute bit for bit what the same
// graphs compute with one buffer per node — ε, a VJP, a pullback's two
// VJPs, two train steps' losses and gradients (dropout on), an
// external-loss step — in both precisions and on
// networks with and without ResBlock resampling and learned variances,
// while their buffers take well under half the memory.
func TestSharedBuffers(t *testing.T) {
	updown := tinyConfig()
	updown.ResblockUpdown, updown.LearnSigma = true, true
	for _, tc := range []struct {
		name string
		cfg  config.Model
		prec nn.Precision
	}{
		{"fp32", tinyConfig(), nn.FP32},
		{"bf16", tinyConfig(), nn.BF16},
		{"bf16-updown-sigma", updown, nn.BF16},
		{"fp32-updown-sigma", updown, nn.FP32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, why := nn.BF16Available(); tc.prec == nn.BF16 && !ok {
				t.Skip(why)
			}
			want := sharedRun(t, tc.cfg, tc.prec, false)
			got := sharedRun(t, tc.cfg, tc.prec, true)
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("value %d: shared %g, unshared %g", i, got[i], want[i])
				}
			}
		})
	}
}

// sharedRun computes ε, two train steps and a loss-graph step and returns
// every number they produce, concatenated; share false compiles every graph
// with one buffer per node.
func sharedRun(t *testing.T, cfg config.Model, prec nn.Precision, share bool) []float32 {
	t.Helper()
	if !share {
		prev := checkedTape
		checkedTape = func(g *G.ExprGraph, _ bool, keep G.Nodes) (G.VM, *nn.SharePlan, error) {
			return prev(g, false, keep)
		}
		defer func() { checkedTape = prev }()
	}
	rng := rand.New(rand.NewSource(4))
	u, err := New(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedNames(u) { // randomise's map order differs per call
		for i, d := 0, tensors.F32(u.Params()[name]); i < len(d); i++ {
			d[i] = float32(0.3 * rng.NormFloat64())
		}
	}
	if err := u.SetPrecision(prec); err != nil {
		t.Fatal(err)
	}
	const n = 3
	x := tensors.Randn(rng, n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	e := tensors.Randn(rng, n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	ts := []int{5, 400, 990}
	var out []float32
	eps, err := u.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, tensors.F32(eps)...)
	checkPlan := func(what string, p *nn.SharePlan) {
		t.Helper()
		if !share {
			if p != nil {
				t.Errorf("%s: unshared graph has a plan %v", what, p)
			}
			return
		}
		if p == nil {
			t.Fatalf("%s: no sharing plan", what)
		}
		if err := p.Verify(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if p.After*2 > p.Before {
			t.Errorf("%s: %v, want under half", what, p)
		}
	}
	checkPlan("eps graph", u.evals[n].net.plan)
	v1 := tensors.Randn(rng, n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	v2 := tensors.Randn(rng, n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	eps, vjp, err := u.EpsVJP(x, ts, v1)
	if err != nil {
		t.Fatal(err)
	}
	out = append(append(out, tensors.F32(eps)...), tensors.F32(vjp)...)
	// the pullback replays the VJP graph's backward ops on its kept
	// forward values, once per cotangent
	eps, pull, err := u.EpsPullback(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, tensors.F32(eps)...)
	for _, v := range []*tensor.Dense{v2, v1} {
		g, err := pull(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tensors.F32(g)...)
	}
	if share {
		// the forward values are kept for the replay: the VJP graph saves
		// less than the others, so only Verify applies
		if err := u.vjps[n].net.plan.Verify(); err != nil {
			t.Errorf("VJP graph: %v", err)
		}
	}
	tg, err := u.NewTrainGraph(n, rand.New(rand.NewSource(9)))
	if err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 2; step++ {
		loss, err := tg.Step(x, ts, e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, float32(loss))
		out = appendGrads(out, u, tg.Grads())
	}
	checkPlan("train graph", tg.net.plan)
	lg, err := u.NewLossGraph(n, rand.New(rand.NewSource(9)))
	if err != nil {
		t.Fatal(err)
	}
	loss, err := lg.Step(x, ts, func(o *tensor.Dense) (float64, *tensor.Dense, error) {
		d := tensors.Clone(o)
		var s float64
		for i, v := range tensors.F32(d) {
			s += float64(v * v)
			tensors.F32(d)[i] = 2 * v
		}
		return s, d, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, float32(loss))
	out = appendGrads(out, u, lg.Grads())
	checkPlan("loss graph", lg.net.plan)
	return out
}

// appendGrads appends the gradients in the UNet's parameter order.
func appendGrads(out []float32, u *UNet, grads map[string]*tensor.Dense) []float32 {
	for _, name := range sortedNames(u) {
		g, ok := grads[name]
		if !ok {
			panic(fmt.Sprintf("no gradient for %s", name))
		}
		out = append(out, tensors.F32(g)...)
	}
	return out
}

// sortedNames returns the UNet's parameter names in order.
func sortedNames(u *UNet) []string {
	names := make([]string, 0, len(u.Params()))
	for name := range u.Params() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
