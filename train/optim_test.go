package train

import (
	"math"
	"math/rand"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestAdamTwoSteps follows torch.optim.Adam's update by hand for one scalar.
func TestAdamTwoSteps(t *testing.T) {
	a, err := NewAdam(DefaultAdam(), []int{1})
	if err != nil {
		t.Fatal(err)
	}
	p := []float32{1}
	lr := 0.1
	// Step 1, g = 0.5: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25.
	// p = 1 − 0.1·0.5/(0.5 + 1e-8).
	if err := a.Update(lr, [][]float32{p}, [][]float32{{0.5}}); err != nil {
		t.Fatal(err)
	}
	want1 := 1 - 0.1*0.5/(0.5+1e-8)
	if math.Abs(float64(p[0])-want1) > 1e-7 {
		t.Fatalf("after step 1: p = %.9g, want %.9g", p[0], want1)
	}
	// Step 2, g = −0.25: m = 0.9·0.05 − 0.1·0.25 = 0.02,
	// v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
	// m̂ = 0.02/0.19, v̂ = 0.00031225/0.001999.
	if err := a.Update(lr, [][]float32{p}, [][]float32{{-0.25}}); err != nil {
		t.Fatal(err)
	}
	want2 := float64(float32(want1)) - 0.1*(0.02/0.19)/(math.Sqrt(0.00031225/0.001999)+1e-8)
	if math.Abs(float64(p[0])-want2) > 1e-6 {
		t.Fatalf("after step 2: p = %.9g, want %.9g (≈ 0.873366)", p[0], want2)
	}
	if a.Step != 2 || math.Abs(float64(a.M[0][0])-0.02) > 1e-8 || math.Abs(float64(a.V[0][0])-0.00031225) > 1e-9 {
		t.Fatalf("state step %d m %g v %g, want 2, 0.02, 0.00031225", a.Step, a.M[0][0], a.V[0][0])
	}
}

// TestAdamConverges minimises Σ_i c_i (p_i − target_i)² for both variants.
func TestAdamConverges(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  AdamConfig
		tol  float64
	}{
		{"adam", DefaultAdam(), 1e-3},
		{"adamw tiny decay", AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-4, Decoupled: true}, 1e-2},
	} {
		target := []float32{3, -2, 0.5, 10}
		curv := []float64{1, 10, 0.1, 100}
		p := make([]float32, 4)
		g := make([]float32, 4)
		a, _ := NewAdam(tc.cfg, []int{4})
		for k := 0; k < 3000; k++ {
			for i := range p {
				g[i] = float32(2 * curv[i] * float64(p[i]-target[i]))
			}
			lr := 0.05
			if k > 2000 {
				lr = 0.005
			}
			if err := a.Update(lr, [][]float32{p}, [][]float32{g}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range p {
			if math.Abs(float64(p[i]-target[i])) > tc.tol*(1+math.Abs(float64(target[i]))) {
				t.Errorf("%s: p[%d] = %g, want %g", tc.name, i, p[i], target[i])
			}
		}
	}
}

func TestWeightDecay(t *testing.T) {
	// AdamW with zero gradients only decays: p ← p(1 − lr·wd) each step.
	a, _ := NewAdam(AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.5, Decoupled: true}, []int{2})
	p := []float32{2, -4}
	for k := 0; k < 3; k++ {
		a.Update(0.1, [][]float32{p}, [][]float32{{0, 0}})
	}
	for i, p0 := range []float64{2, -4} {
		if want := p0 * math.Pow(0.95, 3); math.Abs(float64(p[i])-want) > 1e-6 {
			t.Errorf("adamw decay: p[%d] = %g, want %g", i, p[i], want)
		}
	}
	// Adam's L2 decay enters the gradient: with g = 0 the first step is
	// −lr·sign(wd·p).
	b, _ := NewAdam(AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.5}, []int{1})
	q := []float32{2}
	b.Update(0.1, [][]float32{q}, [][]float32{{0}})
	if math.Abs(float64(q[0])-1.9) > 1e-6 {
		t.Errorf("adam L2 decay: p = %g, want 1.9", q[0])
	}
}

func TestAdamErrors(t *testing.T) {
	if _, err := NewAdam(AdamConfig{Beta1: 1, Beta2: 0.999, Eps: 1e-8}, []int{1}); err == nil {
		t.Error("beta1 = 1 accepted")
	}
	a, _ := NewAdam(DefaultAdam(), []int{2})
	if err := a.Update(0.1, [][]float32{{1}}, [][]float32{{1}}); err == nil {
		t.Error("a 1-element parameter was accepted for a 2-element state")
	}
}

func TestWarmupLR(t *testing.T) {
	for _, tc := range []struct {
		warmup, k int
		want      float64
	}{{0, 0, 1e-3}, {4, 0, 2.5e-4}, {4, 1, 5e-4}, {4, 3, 1e-3}, {4, 100, 1e-3}} {
		if got := WarmupLR(1e-3, tc.warmup, tc.k); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("WarmupLR(1e-3, %d, %d) = %g, want %g", tc.warmup, tc.k, got, tc.want)
		}
	}
}

func TestScheduledLR(t *testing.T) {
	const peak = 1e-3
	for _, tc := range []struct {
		decay            string
		warmup, steps, k int
		want             float64
	}{
		{"constant", 4, 100, 1, 5e-4},  // warm-up as WarmupLR
		{"constant", 4, 100, 99, peak}, // then the peak to the end
		{"", 0, 100, 50, peak},         // pre-key run configs: constant
		{"cosine", 4, 100, 3, peak},    // last warm-up step reaches the peak
		{"cosine", 0, 100, 0, peak * 0.5 * (1 + math.Cos(math.Pi/100))},
		{"cosine", 0, 100, 49, peak / 2},  // halfway
		{"cosine", 10, 110, 59, peak / 2}, // halfway after the warm-up
		{"cosine", 0, 100, 99, 0},         // last step
		{"cosine", 0, 100, 150, 0},        // past the end (train.steps raised on resume is allowed)
		{"cosine", 200, 100, 250, peak},   // all warm-up: no decay left
	} {
		got, err := ScheduledLR(tc.decay, peak, tc.warmup, tc.steps, tc.k)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("ScheduledLR(%q, %g, warmup %d, steps %d, k %d) = %g, want %g", tc.decay, peak, tc.warmup, tc.steps, tc.k, got, tc.want)
		}
	}
	// Monotone non-increasing after the warm-up.
	prev := math.Inf(1)
	for k := 5; k < 100; k++ {
		lr, _ := ScheduledLR("cosine", peak, 5, 100, k)
		if lr > prev {
			t.Fatalf("cosine LR rose at step %d: %g > %g", k, lr, prev)
		}
		prev = lr
	}
	if _, err := ScheduledLR("step", peak, 0, 100, 50); err == nil || !strings.Contains(err.Error(), `"step"`) {
		t.Errorf("unknown decay: err = %v, want one naming \"step\"", err)
	}
}

func TestClipGlobalNorm(t *testing.T) {
	for _, tc := range []struct {
		max, wantNorm float64
	}{{0, 13}, {100, 13}, {1, 1}, {6.5, 6.5}} {
		g := [][]float32{{3, 4}, {12}} // norm 13
		norm := ClipGlobalNorm(g, tc.max)
		if norm != 13 {
			t.Errorf("max %g: reported norm %g, want 13 (before clipping)", tc.max, norm)
		}
		if after := GlobalNorm(g); math.Abs(after-tc.wantNorm) > 1e-5 {
			t.Errorf("max %g: norm after clipping %g, want %g", tc.max, after, tc.wantNorm)
		}
		if r := float64(g[0][0]) / float64(g[1][0]); math.Abs(r-0.25) > 1e-6 {
			t.Errorf("max %g: clipping changed the direction (ratio %g, want 0.25)", tc.max, r)
		}
	}
}

func TestEMA(t *testing.T) {
	p := [][]float32{{1, -1}}
	e, err := NewEMA(0.9, p)
	if err != nil {
		t.Fatal(err)
	}
	p[0][0], p[0][1] = 3, 5 // new constant parameters
	for k := 0; k < 5; k++ {
		e.Update(p, k)
	}
	// ema_k = θ + decay^k (ema_0 − θ)
	for i, e0 := range []float64{1, -1} {
		want := float64(p[0][i]) + math.Pow(0.9, 5)*(e0-float64(p[0][i]))
		if math.Abs(float64(e.Values[0][i])-want) > 1e-5 {
			t.Errorf("ema[%d] = %g, want %g", i, e.Values[0][i], want)
		}
	}
	if _, err := NewEMA(1, p); err == nil {
		t.Error("EMA decay 1 accepted")
	}
}

// TestEMAWarmup: with Warmup the k-th update uses min(decay,
// (1+k)/(10+k)), so after 5 updates toward constant θ the average keeps
// ∏ d_k of its start (0.1·0.1818…·0.25·0.3077·0.3571 ≈ 5e-4), not decay^5;
// the decay caps the warm-up's rate.
func TestEMAWarmup(t *testing.T) {
	e, err := NewEMA(0.9, [][]float32{{1}})
	if err != nil {
		t.Fatal(err)
	}
	e.Warmup = true
	for _, tc := range []struct {
		k    int
		want float64
	}{{0, 0.1}, {8, 0.5}, {890, 0.9}, {1_000_000, 0.9}} {
		if got := e.DecayAt(tc.k); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("DecayAt(%d) = %g, want %g", tc.k, got, tc.want)
		}
	}
	theta := [][]float32{{3}}
	keep := 1.0
	for k := 0; k < 5; k++ {
		e.Update(theta, k)
		keep *= float64(1+k) / float64(10+k)
	}
	want := 3 + keep*(1-3)
	if math.Abs(float64(e.Values[0][0])-want) > 1e-6 {
		t.Errorf("after 5 warm-up updates: %g, want %g", e.Values[0][0], want)
	}
	e.Warmup = false
	if got := e.DecayAt(0); got != 0.9 {
		t.Errorf("without warm-up DecayAt(0) = %g, want 0.9", got)
	}
}

// TestEachChunk: every value of every slice is visited exactly once, for
// sizes around the chunk size, empty slices included.
func TestEachChunk(t *testing.T) {
	sizes := []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 7, 5}
	vals := make([][]float32, len(sizes))
	for i, n := range sizes {
		vals[i] = make([]float32, n)
	}
	var mu sync.Mutex
	eachChunk(vals, func(i, lo, hi int) {
		if hi-lo > chunkSize || lo >= hi {
			t.Errorf("chunk %d [%d, %d): empty or over %d", i, lo, hi, chunkSize)
		}
		mu.Lock()
		defer mu.Unlock()
		for j := lo; j < hi; j++ {
			vals[i][j]++
		}
	})
	for i, v := range vals {
		for j, x := range v {
			if x != 1 {
				t.Fatalf("slice %d value %d visited %g times", i, j, x)
			}
		}
	}
}

// TestAdamEMAWorkersAgree: the spread updates give bit for bit what one
// goroutine gives.
func TestAdamEMAWorkersAgree(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	mk := func(sizes ...int) [][]float32 {
		out := make([][]float32, len(sizes))
		for i, n := range sizes {
			out[i] = make([]float32, n)
			for j := range out[i] {
				out[i][j] = float32(rng.NormFloat64())
			}
		}
		return out
	}
	clone := func(v [][]float32) [][]float32 {
		out := make([][]float32, len(v))
		for i := range v {
			out[i] = append([]float32(nil), v[i]...)
		}
		return out
	}
	sizes := []int{3*chunkSize + 11, 17, chunkSize}
	params, grads := mk(sizes...), mk(sizes...)
	var results [2][][]float32
	for k, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		p := clone(params)
		a, err := NewAdam(AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}, sizes)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewEMA(0.99, p)
		if err != nil {
			t.Fatal(err)
		}
		for step := 0; step < 3; step++ {
			if err := a.Update(1e-3, p, grads); err != nil {
				t.Fatal(err)
			}
			if err := e.Update(p, step); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GOMAXPROCS(prev)
		results[k] = append(p, e.Values...)
	}
	for i := range results[0] {
		for j := range results[0][i] {
			if results[0][i][j] != results[1][i][j] {
				t.Fatalf("slice %d value %d: %g with one goroutine, %g with two", i, j, results[0][i][j], results[1][i][j])
			}
		}
	}
}

// BenchmarkAdamUpdate times one Adam update of 3.9 M parameters (the MNIST
// successor's size) in 64 tensors.
func BenchmarkAdamUpdate(b *testing.B) {
	sizes := make([]int, 64)
	for i := range sizes {
		sizes[i] = 61000
	}
	params, grads := make([][]float32, 64), make([][]float32, 64)
	for i, n := range sizes {
		params[i], grads[i] = make([]float32, n), make([]float32, n)
		for j := range grads[i] {
			grads[i][j] = float32(j%7) * 1e-3
		}
	}
	a, err := NewAdam(AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, sizes)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := a.Update(1e-4, params, grads); err != nil {
			b.Fatal(err)
		}
	}
}
