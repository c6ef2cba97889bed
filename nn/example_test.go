package nn_test

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/nn"
)

// A conv → GroupNorm+SiLU → attention block, built once, run twice, with the
// vector-Jacobian product vᵀ∂out/∂x that DPS needs.
func Example() {
	rng := rand.New(rand.NewSource(1))
	randn := func(shape ...int) *tensor.Dense {
		t := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
		for i, d := 0, t.Data().([]float32); i < len(d); i++ {
			d[i] = float32(rng.NormFloat64()) * 0.1
		}
		return t
	}
	g := G.NewGraph()
	input := func(name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(randn(shape...)))
	}
	x := input("x", 2, 3, 8, 8)
	h := G.Must(nn.Conv2d(x, input("conv.weight", 32, 3, 3, 3), input("conv.bias", 32), 1, 1))
	h = G.Must(nn.GroupNormSiLU(h, input("norm.weight", 32), input("norm.bias", 32), 32, 1e-5))
	qkv := G.Must(nn.Conv2d(h, input("qkv.weight", 96, 32, 1, 1), input("qkv.bias", 96), 1, 0))
	out := G.Must(nn.Add(h, G.Must(nn.QKVAttention(qkv, 4, true))))

	v := input("v", out.Shape()...)
	vjp, err := G.Backpropagate(G.Nodes{out}, G.Nodes{v}, G.Nodes{x})
	if err != nil {
		fmt.Println(err)
		return
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	var first []float32
	for run := 0; run < 2; run++ {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			fmt.Println(err)
			return
		}
		// values live in op-owned buffers: copy what you keep
		got := append([]float32(nil), vjp[0].Value().Data().([]float32)...)
		if first == nil {
			first = got
		}
	}
	fmt.Println("out", out.Shape(), "vjp", vjp[0].Shape())
	fmt.Println("runs agree:", fmt.Sprint(first) == fmt.Sprint(vjp[0].Value().Data()))
	// Output:
	// out (2, 32, 8, 8) vjp (2, 3, 8, 8)
	// runs agree: true
}
