// Package nn holds the fast, gradient-checked Gorgonia ops diffinv's UNet is
// built from, written as custom ops where stock Gorgonia is slow or silently
// wrong (see docs/reference.md).
//
// Every op works on float32 (the production path) and float64 (used by the
// finite-difference gradient checks) nodes; all inputs of one op share the
// dtype. Shapes are fixed when the graph is built. Each op implements
// gorgonia's Op and SDOp, so G.Grad / a TapeMachine differentiate through it
// w.r.t. every input, the image included; backward passes are separate ops.
//
// API (images are NCHW):
//
//	Conv2d(x, w, b *G.Node, stride, pad int) (*G.Node, error)
//	    x N×C×H×W, w O×C×KH×KW (PyTorch layout), b O or nil.
//	GroupNorm(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error)
//	GroupNormSiLU(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error)
//	    x N×C×… (any rank ≥ 2), gamma, beta C; fused SiLU(GroupNorm(x)).
//	SiLU(x *G.Node) (*G.Node, error)                      any shape
//	Add(a, b *G.Node) (*G.Node, error)                    same shapes, no broadcast
//	AddChannel(x, e *G.Node) (*G.Node, error)             x N×C×…, e N×C: x + e[:, :, None, None]
//	ScaleShift(x, scale, shift *G.Node) (*G.Node, error)  x·(1+scale)+shift, scale/shift N×C
//	Upsample2x(x *G.Node) (*G.Node, error)                nearest, N×C×2H×2W
//	AvgPool2x(x *G.Node) (*G.Node, error)                 2×2 mean, N×C×⌊H/2⌋×⌊W/2⌋
//	Concat(xs ...*G.Node) (*G.Node, error)                along channels (axis 1)
//	Linear(x, w, b *G.Node) (*G.Node, error)              x N×In, w Out×In, b Out or nil
//	QKVAttention(qkv *G.Node, heads int, legacy bool) (*G.Node, error)
//	    qkv N×3HC×T or N×3HC×Hs×Ws (the 1×1 qkv conv's output) → N×HC×(T or Hs×Ws);
//	    legacy=true is guided-diffusion's QKVAttentionLegacy channel order
//	    (per head q,k,v), false its QKVAttention (all q, all k, all v).
//	TimestepEmbedding(t []float64, dim int, maxPeriod float64) (*tensor.Dense, error)
//	TimestepEmbeddingInto(dst *tensor.Dense, t []float64, maxPeriod float64) error
//	    guided-diffusion's timestep_embedding (cos first, then sin), as an
//	    input value, not a node.
//	NewDropout(p float64, rng *rand.Rand) (*Dropout, error)
//	(*Dropout).Apply(x *G.Node) (*G.Node, error); SetTraining(bool); Training() bool
//	    starts in evaluation mode (identity).
//
// guided-diffusion's AttentionBlock maps onto these as: h = GroupNorm(x)
// (32 groups), qkv = Conv2d(h, qkv.weight reshaped O×C×1×1, qkv.bias, 1, 0),
// a = QKVAttention(qkv, heads, true), out = Conv2d(a, proj_out.weight as
// O×C×1×1, proj_out.bias, 1, 0), Add(x, out). Its conv1d weights are O×C×1
// in the state dict: reshape the tensor (not the node) to O×C×1×1.
//
// Buffers: an op's output tensor is owned by the op and overwritten in place
// the next time the graph runs (this is what keeps steady-state allocation
// low). Copy a node's Value before the next RunAll if you keep it. A graph
// must be run by one machine at a time.
//
// Parallelism: batch items are split over GOMAXPROCS goroutines; the blas
// package keeps OpenBLAS single-threaded. See blas.Info for the backend.
//
// Use with a TapeMachine: build the graph once per batch size, call
// vm.Reset() before every vm.RunAll().
package nn
