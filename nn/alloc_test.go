package nn

import (
	"math/rand"
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/blas"
)

// TestSteadyStateAllocation runs a small conv/norm/attention/resample graph
// with gradients w.r.t. the image and the weights many times on one
// TapeMachine and checks that, after the first run, a run allocates only a
// small fraction of its activations' size (op-owned buffers are reused).
func TestSteadyStateAllocation(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	g := G.NewGraph()
	in := func(name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(randF32(rng, shape...)))
	}
	x := in("x", 8, 3, 16, 16)
	w1, b1 := in("w1", 16, 3, 3, 3), in("b1", 16)
	gm, bt := in("gamma", 16), in("beta", 16)
	wq, bq := in("wqkv", 48, 16, 1, 1), in("bqkv", 48)
	emb := in("emb", 8, 16)
	h := G.Must(Conv2d(x, w1, b1, 1, 1))
	h = G.Must(GroupNormSiLU(h, gm, bt, 4, 1e-5))
	h = G.Must(AddChannel(h, emb))
	d := G.Must(AvgPool2x(h))
	a := G.Must(QKVAttention(G.Must(Conv2d(d, wq, bq, 1, 0)), 2, true))
	u := G.Must(Upsample2x(a))
	out := G.Must(Concat(u, h))
	dy := in("dy", out.Shape()...)
	grads, err := G.Backpropagate(G.Nodes{out}, G.Nodes{dy}, G.Nodes{x, w1, b1, gm, bt, wq, bq, emb})
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	run := func() {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
	}
	run()
	first := append([]float32(nil), grads[0].Value().Data().([]float32)...)
	var ms0, ms1 runtime.MemStats
	const runs = 20
	runtime.ReadMemStats(&ms0)
	for i := 0; i < runs; i++ {
		run()
	}
	runtime.ReadMemStats(&ms1)
	perRun := float64(ms1.TotalAlloc-ms0.TotalAlloc) / runs
	activations := float64(4 * (h.Shape().TotalSize()*3 + out.Shape().TotalSize()))
	t.Logf("%.0f bytes allocated per run (activations %.0f bytes)", perRun, activations)
	if blas.Backend() != "openblas" {
		// gonum's pure-Go GEMM allocates work space per call itself
		t.Logf("backend %s: allocation bound not checked", blas.Backend())
	} else if perRun > activations/20 {
		t.Errorf("%.0f bytes allocated per run, want under %.0f (5%% of the activations)", perRun, activations/20)
	}
	for i, v := range grads[0].Value().Data().([]float32) {
		if v != first[i] {
			t.Fatalf("input gradient changed between identical runs at %d: %g vs %g", i, v, first[i])
		}
	}
}
