package model

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// collideOdd makes checkedTape report a hash collision on every odd
// compilation (so every graph is rebuilt once); it returns the call count.
func collideOdd(t *testing.T) *int {
	t.Helper()
	calls := 0
	prev := checkedTape
	checkedTape = func(g *G.ExprGraph, share bool, keep G.Nodes) (G.VM, *nn.SharePlan, error) {
		calls++
		if calls%2 == 1 {
			return nil, nil, &nn.HashCollisionError{A: "a", B: "b", Hash: 1}
		}
		return prev(g, share, keep)
	}
	t.Cleanup(func() { checkedTape = prev })
	return &calls
}

// collideFirst makes checkedTape report a hash collision on the first k
// compilations, then compile normally; it returns the number of calls.
func collideFirst(t *testing.T, k int) *int {
	t.Helper()
	calls := 0
	prev := checkedTape
	checkedTape = func(g *G.ExprGraph, share bool, keep G.Nodes) (G.VM, *nn.SharePlan, error) {
		calls++
		if calls <= k {
			return nil, nil, &nn.HashCollisionError{A: "a", B: "b", Hash: 1}
		}
		return prev(g, share, keep)
	}
	t.Cleanup(func() { checkedTape = prev })
	return &calls
}

// TestRebuildAfterHashCollision: a graph rebuilt with renamed inputs after
// a hash collision computes bit for bit what the first build computes (ε,
// the VJP, a train step's loss and gradients), and a graph that collides on
// every build is a clear error instead of a machine that computes wrongly.
func TestRebuildAfterHashCollision(t *testing.T) {
	cfg := tinyConfig()
	rng := rand.New(rand.NewSource(3))
	x := tensors.Randn(rng, 2, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	v := tensors.Randn(rng, 2, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	ts := []int{3, 700}
	u0, err := New(cfg, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	randomise(u0, rand.New(rand.NewSource(2)))
	compute := func() [][]float32 {
		u, err := New(cfg, rand.New(rand.NewSource(1)))
		if err != nil {
			t.Fatal(err)
		}
		for name, p := range u.Params() {
			copy(tensors.F32(p), tensors.F32(u0.Params()[name]))
		}
		eps, vjp, err := u.EpsVJP(x, ts, v)
		if err != nil {
			t.Fatal(err)
		}
		// The outputs may be buffers reused by the next call: copy them.
		epsC, vjpC := append([]float32(nil), tensors.F32(eps)...), append([]float32(nil), tensors.F32(vjp)...)
		e2, err := u.Eps(x, ts)
		if err != nil {
			t.Fatal(err)
		}
		e2C := append([]float32(nil), tensors.F32(e2)...)
		tg, err := u.NewTrainGraph(2, rand.New(rand.NewSource(4)))
		if err != nil {
			t.Fatal(err)
		}
		loss, err := tg.Step(x, ts, v)
		if err != nil {
			t.Fatal(err)
		}
		out := [][]float32{epsC, vjpC, e2C, {float32(loss)}}
		for _, name := range []string{"input_blocks.0.0.weight", "out.2.weight", "time_embed.0.weight"} {
			out = append(out, append([]float32(nil), tensors.F32(tg.Grads()[name])...))
		}
		return out
	}
	want := compute()
	calls := collideOdd(t)
	got := compute()
	if *calls != 6 { // vjp, eval, train graph: each collides once, then compiles
		t.Errorf("%d compilations, want 6 (each graph rebuilt once)", *calls)
	}
	for i := range want {
		if len(want[i]) != len(got[i]) {
			t.Fatalf("output %d: %d values, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if math.Float32bits(want[i][j]) != math.Float32bits(got[i][j]) {
				t.Fatalf("output %d differs after a rebuild at %d: %g, want %g", i, j, got[i][j], want[i][j])
			}
		}
	}

	collideFirst(t, 1<<30)
	u, err := New(cfg, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Eps(x, ts); err == nil || !strings.Contains(err.Error(), "hash collisions") {
		t.Errorf("Eps when every build collides: %v, want an error naming hash collisions", err)
	}
}
