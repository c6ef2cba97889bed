// Package nn holds the fast, gradient-checked Gorgonia ops diffinv's UNet is
// built from, written as custom ops where stock Gorgonia is slow or silently
// wrong (see docs/reference.md).
//
// Every op works on float32 (the production path) and float64 (used by the
// finite-difference gradient checks) nodes; all inputs of one op share the
// dtype. Shapes are fixed when the graph is built. Each op implements
// gorgonia's Op, SDOp (G.Grad / G.Backpropagate with a TapeMachine, the fast
// path) and ADOp (LispMachine, slow: it builds a scratch graph per call);
// backward passes are separate ops. Gradients flow to every input, the
// image included. Errors name the bad argument and what was expected; no
// constructor panics on bad shapes.
//
// API (images are NCHW; "…" is any number of trailing axes):
//
//	Conv2d(x, w, b *G.Node, stride, pad int) (*G.Node, error)
//	    x N×C×H×W, w O×C×KH×KW (PyTorch layout), b O or nil; zero padding
//	    pad on every side; out N×O×((H+2pad−KH)/stride+1)×(…).
//	GroupNorm(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error)
//	GroupNormSiLU(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error)
//	    x N×C×…, gamma and beta C; biased variance, like nn.GroupNorm.
//	    guided-diffusion: groups 32, eps 1e-5. The fused form is
//	    SiLU(GroupNorm(x)) in one pass (in_layers / out_layers of a ResBlock).
//	SiLU(x *G.Node) (*G.Node, error)                      any shape
//	Add(a, b *G.Node) (*G.Node, error)                    same shapes, no broadcast
//	AddChannel(x, e *G.Node) (*G.Node, error)             x N×C×…, e N×C: x + e[:, :, None, None]
//	ScaleShift(x, scale, shift *G.Node) (*G.Node, error)  x·(1+scale)+shift, scale/shift N×C
//	Upsample2x(x *G.Node) (*G.Node, error)                nearest, N×C×2H×2W
//	AvgPool2x(x *G.Node) (*G.Node, error)                 2×2 mean, N×C×⌊H/2⌋×⌊W/2⌋
//	Pad2d(x *G.Node, top, bottom, left, right int) (*G.Node, error)
//	    zeros around every H×W plane, N×C×(top+H+bottom)×(left+W+right);
//	    F.pad(x, (left, right, top, bottom)); pads ≥ 0; backward crops.
//	    DDPM's Downsample: Pad2d(x, 0, 1, 0, 1), then Conv2d(·, w, b, 2, 0).
//	Concat(xs ...*G.Node) (*G.Node, error)                along channels (axis 1)
//	Reshape(x *G.Node, shape ...int) (*G.Node, error)     a copy, unlike G.Reshape (no shared memory)
//	Linear(x, w, b *G.Node) (*G.Node, error)              x N×In, w Out×In, b Out or nil
//	QKVAttention(qkv *G.Node, heads int, legacy bool) (*G.Node, error)
//	    qkv N×3HC×T or N×3HC×Hs×Ws (the 1×1 qkv conv's output) → N×HC×(T or Hs×Ws);
//	    legacy=true is guided-diffusion's QKVAttentionLegacy channel order
//	    (per head q,k,v), false its QKVAttention (all q, all k, all v).
//	TimestepEmbedding(t []float64, dim int, maxPeriod float64) (*tensor.Dense, error)
//	TimestepEmbeddingInto(dst *tensor.Dense, t []float64, maxPeriod float64) error
//	    guided-diffusion's timestep_embedding (cos first, then sin, float32
//	    phases), as an input value, not a node.
//	NewDropout(p float64, rng *rand.Rand) (*Dropout, error)
//	(*Dropout).Apply(x *G.Node) (*G.Node, error); SetTraining(bool); Training() bool
//	    inverted dropout; starts in evaluation mode (identity); one seed is
//	    drawn from rng per forward run of each dropout node.
//
// guided-diffusion's AttentionBlock maps onto these as: h = GroupNorm(x)
// (32 groups), qkv = Conv2d(h, qkv.weight as O×C×1×1, qkv.bias, 1, 0),
// a = QKVAttention(qkv, heads, true), out = Conv2d(a, proj_out.weight as
// O×C×1×1, proj_out.bias, 1, 0), Add(x, out). Its conv1d weights are O×C×1
// in the state dict: reshape the tensor (not the node) to O×C×1×1.
//
// Buffers: an op's output tensor is owned by the op and overwritten in place
// the next time the graph runs (this is what keeps steady-state allocation
// low: a few kB per run of a whole graph, see TestSteadyStateAllocation).
// Copy a node's Value before the next RunAll if you keep it. A graph must be
// run by one machine at a time. NewSharedTapeMachine goes further: op
// outputs whose lifetimes do not overlap share memory (share.go), so only
// the values of the graph's roots and of the nodes it is told to keep are
// valid after a run; a CelebA 64 training step at batch 32 in bf16 then
// peaks at 3.7 GB instead of 10.5 GB.
//
// Use with a TapeMachine: build the graph once per batch size, call
// vm.Reset() before every vm.RunAll(). For a vector-Jacobian product vᵀ∂f/∂x
// without a scalar loss, G.Backpropagate(G.Nodes{out}, G.Nodes{v}, wrt)
// takes v as an input node (see TestSteadyStateAllocation).
//
// Speed: GEMMs go to the blas package (OpenBLAS, single-threaded, with the
// kernels chosen from CPUID; see blas.Info and DIFFINV_OPENBLAS_CORETYPE);
// the batch is split over GOMAXPROCS goroutines (one image's GEMM columns
// when the batch is smaller than that). The float32 activation and group-norm
// loops are C, vectorised with target_clones (AVX-512 / AVX2 / baseline);
// without cgo the same loops run in Go. Stride-1 convolutions with at least
// 8 input channels run as one GEMM per kernel tap on a zero-padded copy of
// the image (no im2col; 1.2–1.8× less CPU than im2col at the MNIST UNet's
// sizes); others use im2col, 1×1 ones a single GEMM on the input.
// BenchmarkConv2d and BenchmarkOps time each op at MNIST-UNet sizes.
//
// Precision (precision.go): FP32 or BF16; ResolvePrecision("auto" | "bf16"
// | "fp32") says which runs here and why; BF16Available. In bf16,
// convolutions, the attention's products and linear layers run on oneDNN's
// AMX kernels (package internal/dnnl) with bf16 inputs and weights and
// float32 accumulation, as PyTorch's autocast does; normalisation, softmax,
// activations and everything else stay float32. The bf16 UNet keeps
// activations channels-last, with these ops:
//
//	Conv2dPrec(x, w, b *G.Node, stride, pad int, p Precision) (*G.Node, error)
//	    Conv2d in precision p (NCHW; bf16 reorders to NHWC inside each call).
//	Conv2dNHWC(x, w, b *G.Node, stride, pad int) (*G.Node, error)
//	    x N×H×W×C, w O×C×KH×KW, out N×OH×OW×O; bf16 on oneDNN without any
//	    reorder of the activations (float64 values: the GEMM path on copies).
//	ToNHWC(x), ToNCHW(x)                     N×C×H×W ↔ N×H×W×C
//	GroupNormNHWC, GroupNormSiLUNHWC         as GroupNorm(SiLU), channels last
//	Upsample2xNHWC, AvgPool2xNHWC, Pad2dNHWC, ConcatNHWC, AddChannelNHWC,
//	ScaleShiftNHWC                           as their NCHW forms, channels last
//	GroupNormScaleShiftSiLUNHWC(x, γ, β, scale, shift, groups, eps)
//	    SiLU(GroupNorm(x)·(1+scale)+shift) in one op (the ResBlock head)
//	QKVAttentionNHWC(Prec)(qkv, heads, legacy[, p]), LinearPrec(x, w, b, p)
//	    attention on strided column blocks (no transposes) and linear
//	    layers, bf16 products with p = BF16
//
// Each channels-last op is tested equal to its NCHW form through the
// transpositions (outputs and gradients), and gradient-checked in float64.
//
//	ConvStats(g *G.ExprGraph) (flop float64, elapsed time.Duration)
//	ConvStatsByPass(g *G.ExprGraph) [3]ConvStat  // by ConvPass: forward, backward-data, backward-weights
//	ResetConvStats(g *G.ExprGraph)
//	    nominal FLOPs and wall time of every Conv2d forward/backward run in g
//	    since the last reset, in all or by pass: the conv GFLOP/s of a
//	    benchmark, to compare with blas.MeasureSgemm.
package nn
