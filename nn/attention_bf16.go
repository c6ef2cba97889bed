package nn

import (
	"fmt"
	"math"
	"sync"

	"github.com/diffinv/diffinv/internal/dnnl"
)

// attnMatmuls are the bf16 products of a channels-last attention op, one
// set per worker (a dnnl.Matmul serves one goroutine at a time). Each runs
// all heads of one image at once, the heads as the batch dimension, on
// strided views of the image's T×3HC qkv matrix, T×HC output and T×T
// weights (per head), so nothing is copied but the bf16 conversions.
type attnMatmuls struct {
	mu  sync.Mutex
	per [][attnProducts]*dnnl.Matmul
}

// The products of one image, in the order of attnMatmuls.per's entries.
const (
	mmScores = iota // S = α Q Kᵀ                (T×T per head)
	mmOut           // A = w V                    (T×ch, into the output's columns)
	mmDV            // dV = wᵀ dA
	mmDW            // dw = dA Vᵀ
	mmDQ            // dQ = α dz K
	mmDK            // dK = α dzᵀ Q
	attnProducts
)

// shapes returns the MatmulShapes of the products (see the constants).
func (o *attnOp) mmShapes() [attnProducts]dnnl.MatmulShape {
	T, ch, H := o.t, o.ch, o.heads
	inC, hc := 3*H*ch, H*ch
	head := ch // channel stride from one head's q (k, v) to the next's
	if o.legacy {
		head = 3 * ch
	}
	alpha := float32(1 / math.Sqrt(float64(ch)))
	cols := [3]int{head, inC, 1}  // a head's T×ch block of the qkv matrix (or its gradient)
	colsT := [3]int{head, 1, inC} // the same block transposed, ch×T
	outCols := [3]int{ch, hc, 1}  // a head's T×ch block of the output (or dA)
	sq := [3]int{T * T, T, 1}     // w, dw: T×T per head
	sqT := [3]int{T * T, 1, T}    // … transposed
	mk := func(m, k, n int, a, b, c [3]int, alpha float32) dnnl.MatmulShape {
		return dnnl.MatmulShape{Batch: H, M: m, K: k, N: n, A: a, B: b, C: c, Alpha: alpha}
	}
	return [attnProducts]dnnl.MatmulShape{
		mmScores: mk(T, ch, T, cols, colsT, sq, alpha),
		mmOut:    mk(T, T, ch, sq, cols, outCols, 1),
		mmDV:     mk(T, T, ch, sqT, outCols, cols, 1),
		mmDW:     mk(T, ch, T, outCols, colsT, sq, 1),
		mmDQ:     mk(T, T, ch, sq, cols, cols, alpha),
		mmDK:     mk(T, T, ch, sqT, cols, cols, alpha),
	}
}

// worker returns worker w's products, building them on first use.
func (o *attnOp) worker(w int) (*[attnProducts]*dnnl.Matmul, error) {
	mms := o.mms
	mms.mu.Lock()
	defer mms.mu.Unlock()
	for len(mms.per) <= w {
		mms.per = append(mms.per, [attnProducts]*dnnl.Matmul{})
	}
	p := &mms.per[w]
	if p[mmScores] == nil {
		for i, s := range o.mmShapes() {
			if need := i == mmScores || (i == mmOut) != o.backward; !need {
				continue // the forward op needs S and A; the backward all but A
			}
			m, err := dnnl.NewMatmul(s)
			if err != nil {
				return nil, err
			}
			p[i] = m
		}
	}
	return p, nil
}

// attnBF16 is attnRun's channels-last job on float32 values in bf16, one
// image at a time over the workers: the softmax (and its backward) stay
// float32, as PyTorch's autocast keeps them.
func attnBF16(o *attnOp, qkv, dy, y []float32) error {
	if o.mms == nil {
		o.mms = &attnMatmuls{}
	}
	T, H := o.t, o.heads
	inC, hc := 3*H*o.ch, H*o.ch
	q0, k0, v0 := o.offsets(0)
	nw := workers(o.n)
	errs := make([]error, nw)
	parallel(o.n, nw, func(wk, lo, hi int) {
		p, err := o.worker(wk)
		if err != nil {
			errs[wk] = err
			return
		}
		w := slice[float32](&o.w, wk, H*T*T)
		var dw []float32
		if o.backward {
			dw = slice[float32](&o.dw, wk, H*T*T)
		}
		run := func(i int, a, b, c []float32) bool {
			if err := p[i].Run(a, b, c); err != nil {
				errs[wk] = err
				return false
			}
			return true
		}
		for n := lo; n < hi; n++ {
			base := n * T * inC
			q, k, v := qkv[base+q0:], qkv[base+k0:], qkv[base+v0:]
			if !run(mmScores, q, k, w) {
				return
			}
			softmaxRows(w, H*T, T)
			if !o.backward {
				if !run(mmOut, w, v, y[n*T*hc:]) {
					return
				}
				continue
			}
			da := dy[n*T*hc:]
			dq, dk, dv := y[base+q0:], y[base+k0:], y[base+v0:]
			if !run(mmDV, w, da, dv) || !run(mmDW, da, v, dw) {
				return
			}
			softmaxBwd(w, dw, H*T, T)
			if !run(mmDQ, dw, k, dq) || !run(mmDK, dw, q, dk) {
				return
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bf16 attention: %w", err)
		}
	}
	return nil
}
