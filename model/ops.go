package model

import (
	G "gorgonia.org/gorgonia"

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
