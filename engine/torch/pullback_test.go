//go:build torch

package torch

import (
	"errors"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/solve"
)

var _ solve.Pullbacker = (*UNet)(nil)

// TestEpsPullback: one forward, then two cotangents, each equal to EpsVJP's
// (the same libtorch ops: 1e-6 of the largest value); any other call frees
// the kept graph and the old function then returns ErrStalePullback.
func TestEpsPullback(t *testing.T) {
	for _, name := range []string{"tiny_a", "tiny_b"} {
		t.Run(name, func(t *testing.T) {
			u, err := FromCheckpoint(filepath.Join(goldenDir, name+".weights.safetensors"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			cfg := u.cfg
			rng := rand.New(rand.NewSource(4))
			x := tensors.Randn(rng, 2, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
			v1 := tensors.Randn(rng, 2, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
			v2 := tensors.Randn(rng, 2, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
			ts := []int{3, 700}
			e1, j1, err := u.EpsVJP(x, ts, v1)
			if err != nil {
				t.Fatal(err)
			}
			_, j2, err := u.EpsVJP(x, ts, v2)
			if err != nil {
				t.Fatal(err)
			}
			eps, vjp, err := u.EpsPullback(x, ts)
			if err != nil {
				t.Fatal(err)
			}
			close := func(what string, a, b []float32) {
				worst, scale := 0.0, 0.0
				for i := range b {
					d := float64(a[i]) - float64(b[i])
					if d < 0 {
						d = -d
					}
					worst = max(worst, d)
					scale = max(scale, float64(b[i]), -float64(b[i]))
				}
				if worst > 1e-6*scale {
					t.Errorf("%s: differs from EpsVJP by %.3g (largest value %.3g)", what, worst, scale)
				}
			}
			close("ε", tensors.F32(eps), tensors.F32(e1))
			for i, c := range []struct {
				v    []float32
				want []float32
			}{{tensors.F32(v1), tensors.F32(j1)}, {tensors.F32(v2), tensors.F32(j2)}, {tensors.F32(v1), tensors.F32(j1)}} {
				vv := tensors.Clone(v1)
				copy(tensors.F32(vv), c.v)
				got, err := vjp(vv)
				if err != nil {
					t.Fatalf("cotangent %d: %v", i, err)
				}
				close("vjp", tensors.F32(got), c.want)
			}
			if _, err := vjp(tensors.New(1, 1, 2, 2)); err == nil {
				t.Error("a v of the wrong shape was accepted")
			}
			if _, err := u.Eps(x, ts); err != nil {
				t.Fatal(err)
			}
			if _, err := vjp(v1); !errors.Is(err, ErrStalePullback) {
				t.Errorf("vjp after Eps: %v, want ErrStalePullback", err)
			}
		})
	}
}
