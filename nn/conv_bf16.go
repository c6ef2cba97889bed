package nn

import (
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/diffinv/diffinv/internal/dnnl"
)

// bf16Conv runs one Conv2d node's three passes on oneDNN in bfloat16 with
// float32 accumulation (package internal/dnnl), for float32 values; float64
// values (the gradient checks) keep the float64 GEMM path. The batch is cut
// into one chunk per worker, each with its own oneDNN convolution run on
// one thread (measured: oneDNN's OpenMP threads collapse when the other core
// is busy), and the chunks run in parallel goroutines.
// dnnlOneCall runs each bf16 convolution as one oneDNN call on GOMAXPROCS
// OpenMP threads instead of one single-threaded call per batch chunk
// (DIFFINV_DNNL_THREADING=omp; for measuring the two, see BENCHMARKS.md).
var dnnlOneCall = os.Getenv("DIFFINV_DNNL_THREADING") == "omp"

type bf16Conv struct {
	geom   *convGeom
	nhwc   bool // activations are N×H×W×C (Conv2dNHWC)
	once   sync.Once
	err    error
	chunks [][2]int // image ranges
	convs  []*dnnl.Conv
	acc    [][]float32 // per-chunk weight gradients (chunks > 0)
	zeros  []float32   // the bias of a convolution without one
}

func (b *bf16Conv) init() error {
	b.once.Do(func() {
		g := b.geom
		nw := workers(g.n)
		if g.maxWorkers > 0 {
			nw = max(1, min(nw, g.maxWorkers))
		}
		if dnnlOneCall {
			nw = 1 // one oneDNN call on GOMAXPROCS OpenMP threads
		}
		threads := max(1, runtime.GOMAXPROCS(0)/nw)
		for i := 0; i < nw; i++ {
			lo, hi := i*g.n/nw, (i+1)*g.n/nw
			c, err := dnnl.NewConv(dnnl.Shape{N: hi - lo, C: g.c, H: g.h, W: g.w, O: g.o, KH: g.kh, KW: g.kw, Stride: g.stride, Pad: g.pad, Bias: true, NHWC: b.nhwc}, threads)
			if err != nil {
				b.err = fmt.Errorf("nn.Conv2d %v in bf16: %w", g, err)
				return
			}
			b.chunks = append(b.chunks, [2]int{lo, hi})
			b.convs = append(b.convs, c)
		}
		b.acc = make([][]float32, nw)
		b.zeros = make([]float32, g.o)
	})
	return b.err
}

// each runs fn for every chunk in parallel and returns the first error.
func (b *bf16Conv) each(fn func(i, lo, hi int) error) error {
	errs := make([]error, len(b.chunks))
	parallel(len(b.chunks), len(b.chunks), func(_, c0, c1 int) {
		for i := c0; i < c1; i++ {
			errs[i] = fn(i, b.chunks[i][0], b.chunks[i][1])
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// forward computes y = conv(x, w) + bias (bias nil: zero).
func (b *bf16Conv) forward(x, w, bias, y []float32) error {
	if err := b.init(); err != nil {
		return err
	}
	g := b.geom
	if bias == nil {
		bias = b.zeros // the kernels are built with a bias
	}
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	return b.each(func(i, lo, hi int) error {
		return b.convs[i].Forward(i, x[lo*xsz:hi*xsz], w, bias, y[lo*ysz:hi*ysz])
	})
}

// backwardData computes dx from (w, dy).
func (b *bf16Conv) backwardData(w, dy, dx []float32) error {
	if err := b.init(); err != nil {
		return err
	}
	g := b.geom
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	return b.each(func(i, lo, hi int) error {
		return b.convs[i].BackwardData(i, w, dy[lo*ysz:hi*ysz], dx[lo*xsz:hi*xsz])
	})
}

// backwardWeights computes dw from (x, dy), summing the chunks' parts in
// chunk order (the same bits on every run). The chunks read the bf16 copy
// of x their forward pass kept (x may be nil), and the bf16 dy that
// backward data converted when it ran first (see dnnl.Conv.BackwardWeights).
func (b *bf16Conv) backwardWeights(x, dy, dw []float32) error {
	if err := b.init(); err != nil {
		return err
	}
	g := b.geom
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	err := b.each(func(i, lo, hi int) error {
		dst := dw
		if i > 0 {
			if len(b.acc[i]) != len(dw) {
				b.acc[i] = make([]float32, len(dw))
			}
			dst = b.acc[i]
		}
		var xi []float32 // nil: the bf16 copy of the last forward pass
		if x != nil {
			xi = x[lo*xsz : hi*xsz]
		}
		return b.convs[i].BackwardWeights(i, xi, dy[lo*ysz:hi*ysz], dst)
	})
	if err != nil {
		return err
	}
	for _, a := range b.acc[1:] {
		for j, v := range a {
			dw[j] += v
		}
	}
	return nil
}
