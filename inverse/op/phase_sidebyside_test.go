package op

import (
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
)

// TestPhaseSideBySide: phase retrieval's Forward and VJP give the same
// bits whether the batch's images run one by one or side by side, and
// image i of the batch equals image i alone (no buffer is shared).
func TestPhaseSideBySide(t *testing.T) {
	a, err := NewPhaseRetrieval([3]int{2, 10, 10}, 2)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(5))
	const n = 7
	x := tensors.New(n, 2, 10, 10)
	for i := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(2*rng.Float64() - 1)
	}
	os := a.OutShape()
	g := tensors.New(n, os[0], os[1], os[2])
	for i := range tensors.F32(g) {
		tensors.F32(g)[i] = float32(rng.NormFloat64())
	}
	run := func(procs int) ([]float32, []float32) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		y, err := a.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		v, err := a.VJP(x, g)
		if err != nil {
			t.Fatal(err)
		}
		return tensors.F32(y), tensors.F32(v)
	}
	y1, v1 := run(1)
	for _, procs := range []int{2, 3, 8} {
		y, v := run(procs)
		if !slices.Equal(y, y1) || !slices.Equal(v, v1) {
			t.Errorf("GOMAXPROCS %d: Forward or VJP differs from one by one", procs)
		}
	}
	// image 3 alone
	dx, dy := 2*10*10, os[0]*os[1]*os[2]
	x3, g3 := tensors.New(1, 2, 10, 10), tensors.New(1, os[0], os[1], os[2])
	copy(tensors.F32(x3), tensors.F32(x)[3*dx:4*dx])
	copy(tensors.F32(g3), tensors.F32(g)[3*dy:4*dy])
	y3, _ := a.Forward(x3)
	v3, _ := a.VJP(x3, g3)
	if !slices.Equal(tensors.F32(y3), y1[3*dy:4*dy]) || !slices.Equal(tensors.F32(v3), v1[3*dx:4*dx]) {
		t.Error("image 3 alone differs from image 3 of the batch")
	}
}

// BenchmarkPhaseRetrieval times Forward on 8 one-channel images (DPS's
// oversampling 2), beside bench/pytorch/bench_ops.py's |FFT2(pad(x))|:
//
//	go test ./inverse/op -run '^$' -bench PhaseRetrieval
func BenchmarkPhaseRetrieval(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	for _, side := range []int{28, 64} {
		a, err := NewPhaseRetrieval([3]int{1, side, side}, 2)
		if err != nil {
			b.Fatal(err)
		}
		x := tensors.Randn(rng, 8, 1, side, side)
		b.Run(fmt.Sprintf("%dpx", side), func(b *testing.B) {
			for range b.N {
				if _, err := a.Forward(x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
