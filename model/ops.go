package model

import (
	G "gorgonia.org/gorgonia"

	"github.com/diffinv/diffinv/nn"
)

// This file names the nn ops the UNet graph uses, in one place. A float32
// graph (nn.FP32) keeps activations N×C×H×W and runs on OpenBLAS; a bf16
// graph keeps them channels-last, N×H×W×C, from the first convolution to
// the last, because oneDNN's AMX convolutions read and write that layout
// and a reorder per convolution costs more than the convolution (measured
// for the MNIST UNet's heaviest one, 32 images of 32×28×28: 0.44 ms of
// convolution against 1.3 ms of NCHW↔NHWC reorders). The network's input
// and output stay NCHW: they are transposed once, at the graph's edges.

// conv2d is a convolution in the graph's layout and precision.
func (b *builder) conv2d(x, w, bias *G.Node, stride, pad int) (*G.Node, error) {
	if b.nhwc {
		return nn.Conv2dNHWC(x, w, bias, stride, pad)
	}
	return nn.Conv2dPrec(x, w, bias, stride, pad, b.u.prec)
}

// groupNorm is GroupNorm (with SiLU when act) with the model's groups and ε.
func (b *builder) groupNorm(x, gamma, beta *G.Node, act bool) (*G.Node, error) {
	groups, eps := b.u.a.cfg.NumGroups, b.u.a.normEps
	switch {
	case b.nhwc && act:
		return nn.GroupNormSiLUNHWC(x, gamma, beta, groups, eps)
	case b.nhwc:
		return nn.GroupNormNHWC(x, gamma, beta, groups, eps)
	case act:
		return nn.GroupNormSiLU(x, gamma, beta, groups, eps)
	}
	return nn.GroupNorm(x, gamma, beta, groups, eps)
}

func (b *builder) upsample2(x *G.Node) (*G.Node, error) {
	if b.nhwc {
		return nn.Upsample2xNHWC(x)
	}
	return nn.Upsample2x(x)
}

func (b *builder) avgPool2(x *G.Node) (*G.Node, error) {
	if b.nhwc {
		return nn.AvgPool2xNHWC(x)
	}
	return nn.AvgPool2x(x)
}

func (b *builder) concat(x, y *G.Node) (*G.Node, error) {
	if b.nhwc {
		return nn.ConcatNHWC(x, y)
	}
	return nn.Concat(x, y)
}

func (b *builder) pad2d(x *G.Node, top, bottom, left, right int) (*G.Node, error) {
	if b.nhwc {
		return nn.Pad2dNHWC(x, top, bottom, left, right)
	}
	return nn.Pad2d(x, top, bottom, left, right)
}

// addChannel is x + e[:, :, None, None] (e N×C).
func (b *builder) addChannel(x, e *G.Node) (*G.Node, error) {
	if b.nhwc {
		return nn.AddChannelNHWC(x, e)
	}
	return nn.AddChannel(x, e)
}

// linear returns x·wᵀ + b for x N×In, w Out×In (PyTorch layout), b Out,
// in the network's precision (bf16 products in bf16 graphs, as autocast).
func (b *builder) linear(x, w, bias *G.Node) (*G.Node, error) {
	return nn.LinearPrec(x, w, bias, b.u.prec)
}

// qkvAttention is guided-diffusion's QKVAttentionLegacy on qkv N×3C×H×W
// (heads split first, then q, k, v): returns N×C×H×W; in a channels-last
// (bf16) graph on N×H×W×3C in place, its products in bf16
// (nn.QKVAttentionNHWCPrec). Float32 graphs multiply on OpenBLAS.
func (b *builder) qkvAttention(qkv *G.Node, heads int) (*G.Node, error) {
	if b.nhwc {
		return nn.QKVAttentionNHWCPrec(qkv, heads, true, b.u.prec)
	}
	return nn.QKVAttention(qkv, heads, true)
}
