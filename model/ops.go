package model

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/nn"
)

// This file adapts the ops the UNet graph uses. Most come from nn; the ones
// marked TEMPORARY are stock Gorgonia compositions, gradient-checked through
// the model tests, to be replaced by nn ops when they land.

func upsample2(x *G.Node) (*G.Node, error) { return nn.Upsample2x(x) }
func avgPool2(x *G.Node) (*G.Node, error)  { return nn.AvgPool2x(x) }
func concat(a, b *G.Node) (*G.Node, error) { return nn.Concat(a, b) }

// linear returns x·wᵀ + b for x N×In, w Out×In (PyTorch layout), b Out.
//
// TEMPORARY: stock Gorgonia Mul/Transpose/BroadcastAdd until nn has a Linear.
func linear(x, w, b *G.Node) (*G.Node, error) {
	wt, err := G.Transpose(w)
	if err != nil {
		return nil, err
	}
	y, err := G.Mul(x, wt)
	if err != nil {
		return nil, err
	}
	return G.BroadcastAdd(y, b, nil, []byte{0})
}

// dropoutMul returns x ⊙ mask (mask holds 0 or 1/(1−p)).
//
// TEMPORARY: stock HadamardProd until nn has a seeded Dropout.
func dropoutMul(x, mask *G.Node) (*G.Node, error) { return G.HadamardProd(x, mask) }

// qkvAttention is guided-diffusion's QKVAttentionLegacy on qkv N×3C×H×W:
// heads split first (each head's rows are q, k, v of ch = C/heads
// channels), softmax(qᵀk/√ch) over keys, then v·aᵀ; returns N×C×H×W.
//
// TEMPORARY: stock Reshape/Slice/BatchedMatMul/SoftMax until nn has an
// attention op.
func qkvAttention(qkv *G.Node, heads int) (*G.Node, error) {
	s := qkv.Shape()
	if len(s) != 4 || s[1]%(3*heads) != 0 {
		return nil, fmt.Errorf("qkv attention: qkv shape %v, want N×3C×H×W with 3C divisible by 3·%d heads", s, heads)
	}
	n, c3, h, w := s[0], s[1], s[2], s[3]
	ch := c3 / (3 * heads)
	t := h * w
	r, err := G.Reshape(qkv, tensor.Shape{n * heads, 3 * ch, t})
	if err != nil {
		return nil, err
	}
	q, err := G.Slice(r, nil, G.S(0, ch), nil)
	if err != nil {
		return nil, err
	}
	k, err := G.Slice(r, nil, G.S(ch, 2*ch), nil)
	if err != nil {
		return nil, err
	}
	v, err := G.Slice(r, nil, G.S(2*ch, 3*ch), nil)
	if err != nil {
		return nil, err
	}
	wt, err := G.BatchedMatMul(q, k, true, false) // B×T×T: q_tᵀ k_s
	if err != nil {
		return nil, err
	}
	scale := G.NewConstant(float32(1 / math.Sqrt(float64(ch))))
	if wt, err = G.Mul(wt, scale); err != nil {
		return nil, err
	}
	if wt, err = G.SoftMax(wt, 2); err != nil {
		return nil, err
	}
	a, err := G.BatchedMatMul(v, wt, false, true) // B×ch×T: Σ_s v_cs a_ts
	if err != nil {
		return nil, err
	}
	return G.Reshape(a, tensor.Shape{n, heads * ch, h, w})
}
