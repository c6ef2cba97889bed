package nn

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// naiveGroupNorm is the definition, in float64, optionally followed by SiLU.
func naiveGroupNorm(x, gamma, beta *tensor.Dense, groups int, eps float64, silu bool) []float64 {
	s := x.Shape()
	n, c := s[0], s[1]
	inner := s.TotalSize() / (n * c)
	xv, gv, bv := x.Data().([]float64), gamma.Data().([]float64), beta.Data().([]float64)
	out := make([]float64, len(xv))
	cg := c / groups
	for i := 0; i < n; i++ {
		for g := 0; g < groups; g++ {
			lo, hi := (i*c+g*cg)*inner, (i*c+(g+1)*cg)*inner
			mean, sq := 0.0, 0.0
			for _, v := range xv[lo:hi] {
				mean += v
			}
			mean /= float64(hi - lo)
			for _, v := range xv[lo:hi] {
				sq += (v - mean) * (v - mean)
			}
			std := math.Sqrt(sq/float64(hi-lo) + eps)
			for j := lo; j < hi; j++ {
				ch := (j / inner) % c
				z := (xv[j]-mean)/std*gv[ch] + bv[ch]
				if silu {
					z = z / (1 + math.Exp(-z))
				}
				out[j] = z
			}
		}
	}
	return out
}

func TestGroupNorm(t *testing.T) {
	cases := []struct {
		shape  []int
		groups int
		silu   bool
	}{
		{[]int{2, 4, 3, 3}, 2, false},
		{[]int{2, 4, 3, 3}, 2, true},
		{[]int{3, 6, 2, 5}, 3, true},
		{[]int{2, 4, 5}, 1, false},
		{[]int{2, 8, 2, 2}, 8, true},
		{[]int{4, 6}, 2, true},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%v_g%d_silu%v", tc.shape, tc.groups, tc.silu), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(i)))
			x := randDense(rng, 2, tc.shape...)
			for j, d := 0, x.Data().([]float64); j < len(d); j++ {
				d[j] += 1 // a non-zero mean
			}
			gamma := randDense(rng, 1, tc.shape[1])
			beta := randDense(rng, 1, tc.shape[1])
			build := func(ns []*G.Node) (*G.Node, error) {
				if tc.silu {
					return GroupNormSiLU(ns[0], ns[1], ns[2], tc.groups, 1e-5)
				}
				return GroupNorm(ns[0], ns[1], ns[2], tc.groups, 1e-5)
			}
			ins := []*tensor.Dense{x, gamma, beta}
			forwardCheck32(t, ins, build, naiveGroupNorm(x, gamma, beta, tc.groups, 1e-5, tc.silu))
			gradCheck(t, rng, ins, build)
		})
	}
}

func TestGroupNormErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 6, 4, 4), G.WithName("x"))
	c6 := G.NewTensor(g, tensor.Float32, 1, G.WithShape(6), G.WithName("c6"))
	c5 := G.NewTensor(g, tensor.Float32, 1, G.WithShape(5), G.WithName("c5"))
	cases := []struct {
		name        string
		gamma, beta *G.Node
		groups      int
		eps         float64
	}{
		{"groups", c6, c6, 4, 1e-5},
		{"gamma size", c5, c6, 2, 1e-5},
		{"eps", c6, c6, 2, 0},
		{"nil beta", c6, nil, 2, 1e-5},
	}
	for _, tc := range cases {
		if _, err := GroupNorm(x, tc.gamma, tc.beta, tc.groups, tc.eps); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
