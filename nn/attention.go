package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// QKVAttention is the attention core of guided-diffusion's AttentionBlock.
// qkv is N×(3·H·C)×T, or N×(3·H·C)×Hs×Ws with T = Hs·Ws (the output of the
// 1×1 qkv convolution, no reshape needed); the result is N×(H·C)×T (or
// N×(H·C)×Hs×Ws): for each head, softmax over keys of qᵀk/√C, times v.
//
// legacy selects how the 3·H·C channels are laid out, which decides how a
// checkpoint's qkv weights map: true is QKVAttentionLegacy (per head, q then
// k then v: head h owns channels [3hC, 3hC+3C)), the default of
// guided-diffusion's AttentionBlock (use_new_attention_order=False); false is
// QKVAttention (all q, then all k, then all v, each split into heads).
//
// The attention weights are recomputed in the backward pass rather than
// stored (T×T per head and image).
func QKVAttention(qkv *G.Node, heads int, legacy bool) (*G.Node, error) {
	return qkvAttention("nn.QKVAttention", qkv, heads, legacy, false, FP32)
}

// QKVAttentionNHWC is QKVAttention on channels-last activations: qkv is
// N×T×3HC or N×Hs×Ws×3HC, the result N×T×HC (N×Hs×Ws×HC). The heads' q, k
// and v are strided column blocks of each image's T×3HC matrix, which the
// GEMMs read and write in place: no transposition to NCHW and back.
func QKVAttentionNHWC(qkv *G.Node, heads int, legacy bool) (*G.Node, error) {
	return QKVAttentionNHWCPrec(qkv, heads, legacy, FP32)
}

// QKVAttentionNHWCPrec is QKVAttentionNHWC in the given precision: with
// BF16, float32 values multiply on oneDNN's bf16 matmul (q, k, v and the
// attention weights rounded to bfloat16, products accumulated in float32;
// the softmax stays float32), as PyTorch's autocast runs attention; float64
// values (the gradient checks) as with FP32. BF16 where it cannot run is an
// error.
func QKVAttentionNHWCPrec(qkv *G.Node, heads int, legacy bool, prec Precision) (*G.Node, error) {
	return qkvAttention("nn.QKVAttentionNHWC", qkv, heads, legacy, true, prec)
}

// qkvAttention checks qkv and builds the attention op: channels on axis 1
// (NCHW) or last (nhwc), the products in precision prec.
func qkvAttention(op string, qkv *G.Node, heads int, legacy, nhwc bool, prec Precision) (*G.Node, error) {
	if err := canRun(op, prec); err != nil {
		return nil, err
	}
	if qkv == nil {
		return nil, fmt.Errorf("%s: input is nil", op)
	}
	s := qkv.Shape()
	axis, want := 1, "N×3HC×T or N×3HC×H×W"
	if nhwc {
		axis, want = len(s)-1, "N×T×3HC or N×H×W×3HC"
	}
	if len(s) != 3 && len(s) != 4 {
		return nil, fmt.Errorf("%s: %s has shape %v, want %s", op, qkv.Name(), s, want)
	}
	if _, err := dtypeOf(op, qkv); err != nil {
		return nil, err
	}
	c := s[axis]
	if heads < 1 || c%(3*heads) != 0 {
		return nil, fmt.Errorf("%s: %s has %d channels, want a multiple of 3·heads = %d", op, qkv.Name(), c, 3*heads)
	}
	o := &attnOp{n: s[0], heads: heads, ch: c / (3 * heads), t: s.TotalSize() / (s[0] * c), legacy: legacy, nhwc: nhwc, bf16: prec == BF16}
	shape := s.Clone()
	shape[axis] = heads * o.ch
	name := fmt.Sprintf("QKVAttention(%v heads=%d legacy=%v)", s, heads, legacy)
	if nhwc {
		name = fmt.Sprintf("QKVAttentionNHWC(%v heads=%d legacy=%v %v)", s, heads, legacy, prec)
	}
	o.baseOp = baseOp{name: name, arity: 1, typ: fnType(len(s), len(s)), shape: shape}
	return G.ApplyOp(o, qkv)
}

type attnOp struct {
	baseOp
	n, heads, ch, t int
	legacy          bool
	nhwc            bool // channels last: per image T×3HC in, T×HC out
	bf16            bool // channels last, float32 values: products on oneDNN's bf16 matmul
	mms             *attnMatmuls
	backward        bool // (qkv, dy) → dqkv
	outBuffer
	w, dw scratch
}

// offsets returns the channel offsets of head h's q, k and v.
func (o *attnOp) offsets(h int) (q, k, v int) {
	if o.legacy {
		return 3 * h * o.ch, (3*h + 1) * o.ch, (3*h + 2) * o.ch
	}
	hc := o.heads * o.ch
	return h * o.ch, hc + h*o.ch, 2*hc + h*o.ch
}

func (o *attnOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	switch {
	case dt == tensor.Float32 && o.bf16:
		var dy []float32
		if o.backward {
			dy = data[float32](ds[1])
		}
		if err := attnBF16(o, data[float32](ds[0]), dy, data[float32](y)); err != nil {
			return nil, fmt.Errorf("%s: %w", o.name, err)
		}
	case dt == tensor.Float32:
		attnRun[float32](o, ds, data[float32](y))
	default:
		attnRun[float64](o, ds, data[float64](y))
	}
	return y, nil
}

// softmaxRows replaces every row of the r×c matrix m by its softmax.
func softmaxRows[T float](m []T, r, c int) {
	if m32, ok := any(m).([]float32); ok {
		softmaxRowsF32(m32, r, c)
		return
	}
	for i := 0; i < r; i++ {
		row := m[i*c : (i+1)*c]
		mx := row[0]
		for _, v := range row {
			if v > mx {
				mx = v
			}
		}
		inv := 1 / expShift(row, mx)
		for j := range row {
			row[j] *= inv
		}
	}
}

// softmaxBwd replaces dw by w ⊙ (dw − rowsum(w ⊙ dw)) for r×c matrices, w a
// row softmax and dw the gradient w.r.t. it: the gradient w.r.t. the logits.
func softmaxBwd[T float](w, dw []T, r, c int) {
	if w32, ok := any(w).([]float32); ok {
		softmaxBwdF32(w32, any(dw).([]float32), r, c)
		return
	}
	softmaxBwdGo(w, dw, r, c)
}

func softmaxBwdGo[T float](w, dw []T, r, c int) {
	for i := 0; i < r; i++ {
		wr, dr := w[i*c:(i+1)*c], dw[i*c:(i+1)*c]
		var s T
		for j, p := range wr {
			s += p * dr[j]
		}
		for j, p := range wr {
			dr[j] = p * (dr[j] - s)
		}
	}
}

func attnRun[T float](o *attnOp, ds []*tensor.Dense, y []T) {
	qkv := data[T](ds[0])
	T_, ch := o.t, o.ch
	alpha := T(1 / math.Sqrt(float64(ch)))
	inC := 3 * o.heads * ch
	outC := o.heads * ch
	if o.backward {
		outC = inC
	}
	var dy []T
	if o.backward {
		dy = data[T](ds[1])
	}
	jobs := o.n * o.heads
	parallel(jobs, workers(jobs), func(wk, lo, hi int) {
		w := slice[T](&o.w, wk, T_*T_)
		var dw []T
		if o.backward {
			dw = slice[T](&o.dw, wk, T_*T_)
		}
		for job := lo; job < hi; job++ {
			n, h := job/o.heads, job%o.heads
			qo, ko, vo := o.offsets(h)
			if o.nhwc {
				attnNHWC(o, qkv, dy, y, w, dw, n, h, qo, ko, vo, alpha)
				continue
			}
			base := n * inC * T_
			q, k, v := qkv[base+qo*T_:], qkv[base+ko*T_:], qkv[base+vo*T_:]
			// w = softmax(qᵀk/√C): T×T, rows are queries.
			gemm(true, false, T_, T_, ch, alpha, q, T_, k, T_, 0, w, T_)
			softmaxRows(w, T_, T_)
			if !o.backward {
				a := y[(n*outC+h*ch)*T_:]
				gemm(false, true, ch, T_, T_, 1, v, T_, w, T_, 0, a, T_)
				continue
			}
			da := dy[(n*o.heads*ch+h*ch)*T_:]
			obase := n * inC * T_
			dq, dk, dv := y[obase+qo*T_:], y[obase+ko*T_:], y[obase+vo*T_:]
			// dv = da·w ; dw = daᵀ·v
			gemm(false, false, ch, T_, T_, 1, da, T_, w, T_, 0, dv, T_)
			gemm(true, false, T_, T_, ch, 1, da, T_, v, T_, 0, dw, T_)
			// softmax backward: dz = w ⊙ (dw − rowsum(dw ⊙ w))
			softmaxBwd(w, dw, T_, T_)
			// dq = α·k·dzᵀ ; dk = α·q·dz
			gemm(false, true, ch, T_, T_, alpha, k, T_, dw, T_, 0, dq, T_)
			gemm(false, false, ch, T_, T_, alpha, q, T_, dw, T_, 0, dk, T_)
		}
	})
}

// attnNHWC is attnRun's job (image n, head h) on channels-last values:
// the head's Q, K, V are T×ch column blocks of the image's T×3HC matrix
// (leading dimension 3HC), its output (or dQ, dK, dV) a block of the
// output rows.
func attnNHWC[T float](o *attnOp, qkv, dy, y, w, dw []T, n, h, qo, ko, vo int, alpha T) {
	T_, ch := o.t, o.ch
	inC, hc := 3*o.heads*ch, o.heads*ch
	base := n * T_ * inC
	q, k, v := qkv[base+qo:], qkv[base+ko:], qkv[base+vo:]
	// w = softmax(α Q Kᵀ): T×T, rows are queries.
	gemm(false, true, T_, T_, ch, alpha, q, inC, k, inC, 0, w, T_)
	softmaxRows(w, T_, T_)
	if !o.backward {
		// A = w V, into columns [h·ch, (h+1)·ch) of the image's T×HC output
		gemm(false, false, T_, ch, T_, 1, w, T_, v, inC, 0, y[n*T_*hc+h*ch:], hc)
		return
	}
	da := dy[n*T_*hc+h*ch:]
	dq, dk, dv := y[base+qo:], y[base+ko:], y[base+vo:]
	// dV = wᵀ dA ; dw = dA Vᵀ
	gemm(true, false, T_, ch, T_, 1, w, T_, da, hc, 0, dv, inC)
	gemm(false, true, T_, T_, ch, 1, da, hc, v, inC, 0, dw, T_)
	softmaxBwd(w, dw, T_, T_)
	// dQ = α dz K ; dK = α dzᵀ Q
	gemm(false, false, T_, ch, T_, alpha, dw, T_, k, inC, 0, dq, inC)
	gemm(true, false, T_, ch, T_, alpha, dw, T_, q, inC, 0, dk, inC)
}

func (o *attnOp) DiffWRT(int) []bool { return []bool{true} }

func (o *attnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &attnOp{n: o.n, heads: o.heads, ch: o.ch, t: o.t, legacy: o.legacy, nhwc: o.nhwc, bf16: o.bf16, backward: true}
	s := inputs[0].Shape()
	b.baseOp = baseOp{name: "Bwd" + o.name, arity: 2, typ: fnType(len(s), len(s), len(s)), shape: s.Clone()}
	d, err := G.ApplyOp(b, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.QKVAttention backward: %w", err)
	}
	return G.Nodes{d}, nil
}
