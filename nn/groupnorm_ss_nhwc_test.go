package nn

import (
	"fmt"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ssChain is the three-op chain GroupNormScaleShiftSiLUNHWC replaces.
func ssChain(groups int) builder {
	return func(ns []*G.Node) (*G.Node, error) {
		h, err := GroupNormNHWC(ns[0], ns[1], ns[2], groups, 1e-5)
		if err != nil {
			return nil, err
		}
		if h, err = ScaleShiftNHWC(h, ns[3], ns[4]); err != nil {
			return nil, err
		}
		return SiLU(h)
	}
}

func ssFused(groups int) builder {
	return func(ns []*G.Node) (*G.Node, error) {
		return GroupNormScaleShiftSiLUNHWC(ns[0], ns[1], ns[2], ns[3], ns[4], groups, 1e-5)
	}
}

var ssCases = []struct {
	shape  []int
	groups int
}{
	{[]int{2, 3, 3, 4}, 2},
	{[]int{3, 2, 5, 6}, 3},
	{[]int{2, 5, 8}, 1},
	{[]int{2, 4, 4, 64}, 32},
}

// ssInputs draws x (mean 1), gamma, beta, scale, shift for shape.
func ssInputs(rng *rand.Rand, shape []int) []*tensor.Dense {
	x := randDense(rng, 2, shape...)
	for j, d := 0, x.Data().([]float64); j < len(d); j++ {
		d[j] += 1
	}
	c := shape[len(shape)-1]
	return []*tensor.Dense{x, randDense(rng, 1, c), randDense(rng, 1, c), randDense(rng, 0.5, shape[0], c), randDense(rng, 1, shape[0], c)}
}

// TestGroupNormScaleShiftSiLUNHWC: the fused op's output and the gradients
// of all five inputs equal those of the GroupNormNHWC → ScaleShiftNHWC →
// SiLU chain, to 1e-12 in float64 and 1e-5 in float32 (the C kernels).
func TestGroupNormScaleShiftSiLUNHWC(t *testing.T) {
	for i, tc := range ssCases {
		for _, f32 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v_g%d_f32%v", tc.shape, tc.groups, f32), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(40 + i)))
				ins := ssInputs(rng, tc.shape)
				r := randDense(rng, 1, tc.shape...)
				tol := 1e-12
				if f32 {
					for k := range ins {
						ins[k] = toF32(ins[k])
					}
					r, tol = toF32(r), 1e-5
				}
				runC, _ := graphRun(t, ins, r, ssChain(tc.groups))
				runF, _ := graphRun(t, ins, r, ssFused(tc.groups))
				outC, _, gradsC := runC()
				outF, _, gradsF := runF()
				if e := relErr(outF, outC); !(e <= tol) {
					t.Errorf("output: relative error %.3g to the chain's, want ≤ %g", e, tol)
				}
				for k, name := range []string{"x", "gamma", "beta", "scale", "shift"} {
					if e := relErr(gradsF[k], gradsC[k]); !(e <= tol) {
						t.Errorf("gradient of %s: relative error %.3g to the chain's, want ≤ %g", name, e, tol)
					}
				}
			})
		}
	}
}

// TestGroupNormScaleShiftSiLUNHWCGradCheck checks every input's gradient
// against finite differences in float64.
func TestGroupNormScaleShiftSiLUNHWCGradCheck(t *testing.T) {
	for i, tc := range ssCases[:3] {
		t.Run(fmt.Sprintf("%v_g%d", tc.shape, tc.groups), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(60 + i)))
			gradCheck(t, rng, ssInputs(rng, tc.shape), ssFused(tc.groups))
		})
	}
}

func TestGroupNormScaleShiftSiLUNHWCErrors(t *testing.T) {
	g := G.NewGraph()
	in := func(name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name))
	}
	x, c4 := in("x", 2, 3, 3, 4), in("gamma", 4)
	for _, tc := range []struct {
		name                string
		scale, shift, gamma *G.Node
		groups              int
	}{
		{"scale batch", in("s1", 3, 4), in("b1", 2, 4), c4, 2},
		{"shift channels", in("s2", 2, 4), in("b2", 2, 5), c4, 2},
		{"gamma channels", in("s3", 2, 4), in("b3", 2, 4), in("g3", 3), 2},
		{"groups", in("s4", 2, 4), in("b4", 2, 4), c4, 3},
	} {
		if _, err := GroupNormScaleShiftSiLUNHWC(x, tc.gamma, c4, tc.scale, tc.shift, tc.groups, 1e-5); err == nil {
			t.Errorf("%s: no error", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}
