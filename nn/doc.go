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
