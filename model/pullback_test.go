package model

import (
	"errors"
	"math/rand"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// pullbackCases are small configs covering learn_sigma (a cotangent that is
// zero on the variance channels), both embedding modes, attention and both
// resampling modes.
func pullbackCases() []struct {
	name string
	cfg  config.Model
} {
	sigma := tinyConfig()
	sigma.UseScaleShiftNorm, sigma.ResblockUpdown, sigma.LearnSigma = false, true, true
	pool := tinyConfig()
	pool.ConvResample, pool.AttentionResolutions = false, nil
	return []struct {
		name string
		cfg  config.Model
	}{{"scale-shift, attention", tinyConfig()}, {"learn sigma, resblock updown", sigma}, {"pool and nearest", pool}}
}

// randomUNet is cfg with random weights (every path matters).
func randomUNet(t *testing.T, cfg config.Model, seed int64) (*UNet, *rand.Rand) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	u, err := New(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	randomise(u, rng)
	return u, rng
}

// sameBits fails unless a and b hold the same float32 bits.
func sameBits(t *testing.T, what string, a, b *tensor.Dense) {
	t.Helper()
	if !a.Shape().Eq(b.Shape()) {
		t.Fatalf("%s: shape %v, want %v", what, a.Shape(), b.Shape())
	}
	if !reflect.DeepEqual(tensors.F32(a), tensors.F32(b)) {
		t.Errorf("%s: values differ from the reference bits", what)
	}
}

// TestEpsPullbackMatchesEpsVJP: EpsPullback's ε is Eps's, bit for bit, and
// its function, called repeatedly with different cotangents (and one of
// them again), returns EpsVJP's vᵀ∂ε/∂x bit for bit for each.
func TestEpsPullbackMatchesEpsVJP(t *testing.T) {
	for _, c := range pullbackCases() {
		t.Run(c.name, func(t *testing.T) {
			u, rng := randomUNet(t, c.cfg, 7)
			shape := []int{3, c.cfg.InChannels, c.cfg.ImageSize, c.cfg.ImageSize}
			x := tensors.Randn(rng, shape...)
			ts := []int{10, 500, 999}
			vs := []*tensor.Dense{tensors.Randn(rng, shape...), tensors.Randn(rng, shape...), tensors.Randn(rng, shape...)}
			wantEps, err := u.Eps(x, ts)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]*tensor.Dense, len(vs))
			for k, v := range vs {
				e, g, err := u.EpsVJP(x, ts, v)
				if err != nil {
					t.Fatal(err)
				}
				sameBits(t, "EpsVJP's ε against Eps", e, wantEps)
				want[k] = g
			}
			eps, vjp, err := u.EpsPullback(x, ts)
			if err != nil {
				t.Fatal(err)
			}
			sameBits(t, "ε", eps, wantEps)
			for _, k := range []int{0, 1, 2, 0} {
				g, err := vjp(vs[k])
				if err != nil {
					t.Fatal(err)
				}
				sameBits(t, "vjp of v"+string(rune('0'+k)), g, want[k])
			}
		})
	}
}

// TestEpsPullbackOneForward counts convolution work with nn.ConvStats on
// the VJP graph: a pullback and three vjp calls cost one forward and three
// backward passes (F + 3B, where EpsVJP costs F + B and the pullback alone
// F), so no call of the function re-runs a forward convolution.
func TestEpsPullbackOneForward(t *testing.T) {
	u, rng := randomUNet(t, tinyConfig(), 3)
	x := tensors.Randn(rng, 2, 2, 8, 8)
	ts := []int{5, 700}
	v := tensors.Randn(rng, 2, 2, 8, 8)
	if _, _, err := u.EpsVJP(x, ts, v); err != nil { // builds the graph
		t.Fatal(err)
	}
	g := u.vjps[2].net.g
	nn.ResetConvStats(g)
	if _, _, err := u.EpsVJP(x, ts, v); err != nil {
		t.Fatal(err)
	}
	fb, _ := nn.ConvStats(g)
	nn.ResetConvStats(g)
	_, vjp, err := u.EpsPullback(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := nn.ConvStats(g)
	for k := 0; k < 3; k++ {
		if _, err := vjp(v); err != nil {
			t.Fatal(err)
		}
	}
	total, _ := nn.ConvStats(g)
	b := fb - f
	if f <= 0 || b <= 0 {
		t.Fatalf("forward %g flop, backward %g flop: want both > 0", f, b)
	}
	if total != f+3*b {
		t.Errorf("pullback + 3 vjp calls: %g conv flop, want F + 3B = %g (F = %g, B = %g): a forward ran again", total, f+3*b, f, b)
	}
}

// TestEpsPullbackStale: a pending pullback is revoked by each later call
// that takes the graphs; that call works as without a pullback, the old
// function then returns ErrStalePullback, and nothing is left running.
// Bad cotangents are errors, not panics.
func TestEpsPullbackStale(t *testing.T) {
	u, rng := randomUNet(t, tinyConfig(), 5)
	x := tensors.Randn(rng, 2, 2, 8, 8)
	ts := []int{3, 300}
	v := tensors.Randn(rng, 2, 2, 8, 8)
	wantEps, err := u.Eps(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	_, wantVJP, err := u.EpsVJP(x, ts, v)
	if err != nil {
		t.Fatal(err)
	}
	x1 := tensors.Randn(rng, 1, 2, 8, 8)
	cases := []struct {
		name string
		call func() error
	}{
		{"Eps", func() error {
			e, err := u.Eps(x, ts)
			if err == nil {
				sameBits(t, "Eps after an abandoned pullback", e, wantEps)
			}
			return err
		}},
		{"EpsVJP", func() error {
			_, g, err := u.EpsVJP(x, ts, v)
			if err == nil {
				sameBits(t, "EpsVJP after an abandoned pullback", g, wantVJP)
			}
			return err
		}},
		{"another EpsPullback", func() error {
			_, f, err := u.EpsPullback(x, ts)
			if err != nil {
				return err
			}
			g, err := f(v)
			if err == nil {
				sameBits(t, "the new pullback's vjp", g, wantVJP)
			}
			return err
		}},
		{"Forward at another batch size", func() error { _, err := u.Forward(x1, []int{1}); return err }},
		{"SetParams", func() error { return u.SetParams(u.Params()) }},
		{"ReleaseGraphs", func() error { u.ReleaseGraphs(); return nil }},
	}
	base := runtime.NumGoroutine()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eps, vjp, err := u.EpsPullback(x, ts)
			if err != nil {
				t.Fatal(err)
			}
			sameBits(t, "ε", eps, wantEps)
			if err := c.call(); err != nil {
				t.Fatal(err)
			}
			if _, err := vjp(v); !errors.Is(err, ErrStalePullback) {
				t.Errorf("vjp after %s: error %v, want ErrStalePullback", c.name, err)
			}
		})
	}
	_, vjp, err := u.EpsPullback(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name string
		v    *tensor.Dense
	}{
		{"nil", nil},
		{"wrong shape", tensors.Randn(rng, 1, 2, 8, 8)},
		{"float64", tensor.New(tensor.WithShape(2, 2, 8, 8), tensor.Of(tensor.Float64))},
	} {
		if _, err := vjp(bad.v); err == nil {
			t.Errorf("vjp(%s): no error", bad.name)
		}
	}
	g, err := vjp(v) // still valid after refused cotangents
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "vjp after refused cotangents", g, wantVJP)
	// The parallel kernels' goroutines have returned; allow them a moment
	// to exit.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("%d goroutines after the abandoned pullbacks, %d before", n, base)
	}
}

// TestEpsPullbackConcurrent: goroutines sharing one UNet, each alternating
// EpsPullback (then its function, twice) with Eps and EpsVJP on its own
// input, are serialised: every result has the bits of the same call made
// alone, and a vjp either has them too or reports ErrStalePullback because
// another goroutine's call came in between; nothing deadlocks.
func TestEpsPullbackConcurrent(t *testing.T) {
	u, rng := randomUNet(t, tinyConfig(), 9)
	const workers, rounds = 4, 5
	type ref struct {
		x, v, eps, vjp *tensor.Dense
		ts             []int
	}
	refs := make([]ref, workers)
	for w := range refs {
		r := ref{x: tensors.Randn(rng, 2, 2, 8, 8), v: tensors.Randn(rng, 2, 2, 8, 8), ts: []int{w, 100 * w}}
		var err error
		if r.eps, r.vjp, err = u.EpsVJP(r.x, r.ts, r.v); err != nil {
			t.Fatal(err)
		}
		refs[w] = r
	}
	var mu sync.Mutex
	stale, fresh := 0, 0
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := refs[w]
			for k := 0; k < rounds; k++ {
				eps, vjp, err := u.EpsPullback(r.x, r.ts)
				if err != nil {
					t.Error(err)
					return
				}
				sameBits(t, "concurrent EpsPullback ε", eps, r.eps)
				for j := 0; j < 2; j++ {
					g, err := vjp(r.v)
					mu.Lock()
					switch {
					case errors.Is(err, ErrStalePullback):
						stale++
					case err != nil:
						t.Error(err)
					default:
						fresh++
						sameBits(t, "concurrent vjp", g, r.vjp)
					}
					mu.Unlock()
				}
				if e, err := u.Eps(r.x, r.ts); err != nil {
					t.Error(err)
				} else {
					sameBits(t, "concurrent Eps", e, r.eps)
				}
				if _, g, err := u.EpsVJP(r.x, r.ts, r.v); err != nil {
					t.Error(err)
				} else {
					sameBits(t, "concurrent EpsVJP", g, r.vjp)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("concurrent callers did not finish in 2 minutes: deadlock")
	}
	t.Logf("%d vjp calls answered, %d stale", fresh, stale)
}

// TestEpsPullbackMemoryFlat: 200 pullbacks of two vjp calls each on one
// graph do not grow the live heap (the replay reuses the ops' buffers and
// its gradient sums' values).
func TestEpsPullbackMemoryFlat(t *testing.T) {
	u, rng := randomUNet(t, tinyConfig(), 12)
	x := tensors.Randn(rng, 2, 2, 8, 8)
	v := tensors.Randn(rng, 2, 2, 8, 8)
	ts := []int{1, 2}
	var base uint64
	for i := 0; i < 200; i++ {
		if i == 20 {
			base = heapAfterGC()
		}
		ts[0] = i
		_, vjp, err := u.EpsPullback(x, ts)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			if _, err := vjp(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	end := heapAfterGC()
	const bound = 256 << 10
	if end > base+bound {
		t.Errorf("live heap grew from %d to %d bytes over 180 pullbacks (bound %d)", base, end, bound)
	}
	t.Logf("live heap after pullback 20: %d B, after 200: %d B", base, end)
}
