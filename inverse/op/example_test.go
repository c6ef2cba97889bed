package op_test

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
)

// Build ×4 bicubic super-resolution from a config's name and parameters,
// measure a batch with DPS's noise level and reconstruct it naively.
func Example() {
	rng := rand.New(rand.NewSource(1))
	a, err := op.New("sr_bicubic", map[string]any{"factor": 4}, [3]int{3, 32, 32}, rng)
	if err != nil {
		fmt.Println(err)
		return
	}
	x := tensors.Randn(rng, 2, 3, 32, 32)
	ax, _ := a.Forward(x)
	noise, _ := op.NewNoise("gaussian", 0.05, 0)
	y, _ := noise.Sample(ax, rng)
	xhat, _ := a.(op.Linear).Pinv(y)
	s := a.(op.SVD)
	fmt.Println("y:", y.Shape(), "A†y:", xhat.Shape(), "singular values:", len(s.Singulars()))

	_, err = op.New("sr_bilinear", nil, [3]int{3, 32, 32}, rng)
	fmt.Println(err)
	// Output:
	// y: (2, 3, 8, 8) A†y: (2, 3, 32, 32) singular values: 192
	// unknown operator "sr_bilinear" (valid: blur_aniso, blur_file, blur_gauss, blur_motion, blur_nonuniform, blur_uniform, colorize, cs_block, cs_walsh, denoise, inpaint_box, inpaint_file, inpaint_random, phase_retrieval, sr_avgpool, sr_bicubic)
}

// A nonlinear forward model in a few lines: a saturating sensor
// y = tanh(2x), its VJP by Gorgonia's reverse mode (no adjoint to derive).
// DPS and every method that needs only Forward and VJP take it as is.
func ExampleNewAutodiff() {
	A, err := op.NewAutodiff("saturate", [3]int{1, 1, 2}, func(g *G.ExprGraph, x *G.Node) (*G.Node, error) {
		two, err := G.Mul(x, G.NewConstant(2.0))
		if err != nil {
			return nil, err
		}
		return G.Tanh(two)
	})
	if err != nil {
		panic(err)
	}
	x := tensor.New(tensor.WithShape(1, 1, 1, 2), tensor.WithBacking([]float32{0, 0.5}))
	y, _ := A.Forward(x)
	g := tensor.New(tensor.WithShape(1, 1, 1, 2), tensor.WithBacking([]float32{1, 1}))
	vjp, _ := A.VJP(x, g) // 2·(1 − tanh²(2x))
	fmt.Printf("y %.4f\nvjp %.4f\n", y.Data(), vjp.Data())
	// Output:
	// y [0.0000 0.7616]
	// vjp [2.0000 0.8399]
}
