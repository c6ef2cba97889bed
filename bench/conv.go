package bench

import (
	"math/rand"

	G "gorgonia.org/gorgonia"

	"github.com/diffinv/diffinv/nn"
	"github.com/diffinv/diffinv/tensors"
)

// newConvBench builds a graph of one nn.Conv2d (3×3, pad 1) and returns a
// function that runs its forward pass.
func newConvBench(n, cin, cout, size int, seed int64) (func() error, error) {
	rng := rand.New(rand.NewSource(seed))
	g := G.NewGraph()
	x := G.NodeFromAny(g, tensors.Randn(rng, n, cin, size, size), G.WithName("x"))
	w := G.NodeFromAny(g, tensors.Randn(rng, cout, cin, 3, 3), G.WithName("w"))
	b := G.NodeFromAny(g, tensors.Randn(rng, cout), G.WithName("b"))
	if _, err := nn.Conv2d(x, w, b, 1, 1); err != nil {
		return nil, err
	}
	vm := G.NewTapeMachine(g)
	return func() error {
		vm.Reset()
		return vm.RunAll()
	}, nil
}
