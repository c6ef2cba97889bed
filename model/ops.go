package model

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/nn"
)

// This file names the nn ops the UNet graph uses, in one place.

func upsample2(x *G.Node) (*G.Node, error) { return nn.Upsample2x(x) }
func avgPool2(x *G.Node) (*G.Node, error)  { return nn.AvgPool2x(x) }
func concat(a, b *G.Node) (*G.Node, error) { return nn.Concat(a, b) }

// linear returns x·wᵀ + b for x N×In, w Out×In (PyTorch layout), b Out.
func linear(x, w, b *G.Node) (*G.Node, error) { return nn.Linear(x, w, b) }

// qkvAttention is guided-diffusion's QKVAttentionLegacy on qkv N×3C×H×W
// (heads split first, then q, k, v): returns N×C×H×W.
func qkvAttention(qkv *G.Node, heads int) (*G.Node, error) { return nn.QKVAttention(qkv, heads, true) }

// dropout is inverted dropout (PyTorch's nn.Dropout) as a multiplication by
// mask inputs that hold 0 or 1/(1−p), redrawn from rng before every run
// while training and all ones otherwise.
//
// TEMPORARY: nn.Dropout's backward panics in G.Grad (its SymDiff reuses the
// forward op's hm function type, which gorgonia returns to hm's pool after
// type inference); switch to nn.Dropout when that is fixed.
type dropout struct {
	p        float64
	rng      *rand.Rand
	training bool
	masks    []*tensor.Dense
}

func newDropout(p float64, rng *rand.Rand) (*dropout, error) {
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("dropout %g, want 0 ≤ p < 1", p)
	}
	if rng == nil && p > 0 {
		return nil, fmt.Errorf("dropout %g > 0 needs an rng, got nil", p)
	}
	return &dropout{p: p, rng: rng, training: true}, nil
}

// apply returns x ⊙ mask for a new mask input of x's shape.
func (d *dropout) apply(g *G.ExprGraph, x *G.Node) (*G.Node, error) {
	shape := []int(x.Shape().Clone())
	mv := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	m := G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(fmt.Sprintf("dropout_mask_%d", len(d.masks))), G.WithValue(mv))
	d.masks = append(d.masks, mv)
	return G.HadamardProd(x, m)
}

// draw fills the masks for the next run.
func (d *dropout) draw() {
	keep := float32(1 / (1 - d.p))
	for _, m := range d.masks {
		md := m.Data().([]float32)
		for i := range md {
			if d.training && d.rng.Float64() < d.p {
				md[i] = 0
			} else if d.training {
				md[i] = keep
			} else {
				md[i] = 1
			}
		}
	}
}
