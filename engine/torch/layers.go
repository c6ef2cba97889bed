//go:build torch

package torch

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// scope collects the intermediate tensors of one forward step so they can be
// freed together: gotch v0.7.0 frees libtorch tensors only by hand. Freeing a
// handle does not break autograd, which keeps its own references to the
// tensors a backward pass needs.
type scope struct{ held []*ts.Tensor }

// add records t for freeing and returns it.
func (s *scope) add(t *ts.Tensor) *ts.Tensor {
	s.held = append(s.held, t)
	return t
}

// free drops every recorded tensor.
func (s *scope) free() {
	for _, t := range s.held {
		drop(t)
	}
	s.held = nil
}

// drop frees t's libtorch tensor (nil is ignored).
func drop(t *ts.Tensor) {
	if t != nil {
		_ = t.Drop()
	}
}

// conv is nn.Conv2d or, with oneD, a kernel-1 nn.Conv1d (attention's qkv and
// proj_out), with padding k/2.
type conv struct {
	name        string
	w, b        *ts.Tensor
	stride, pad int64
	oneD        bool
}

func (c *conv) forward(x *ts.Tensor) (*ts.Tensor, error) {
	var y *ts.Tensor
	var err error
	if c.oneD {
		y, err = ts.Conv1d(x, c.w, c.b, []int64{1}, []int64{0}, []int64{1}, 1)
	} else {
		y, err = ts.Conv2d(x, c.w, c.b, []int64{c.stride, c.stride}, []int64{c.pad, c.pad}, []int64{1, 1}, 1)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: conv: %w", c.name, err)
	}
	return y, nil
}

// norm is GroupNorm32 (eps 1e-5; 1e-6 with model.arch ddpm; float32 inputs).
type norm struct {
	w, b   *ts.Tensor
	groups int64
	eps    float64
	name   string
}

func (n *norm) forward(x *ts.Tensor) (*ts.Tensor, error) {
	y, err := ts.GroupNorm(x, n.groups, n.w, n.b, n.eps, false)
	if err != nil {
		return nil, fmt.Errorf("%s: group norm: %w", n.name, err)
	}
	return y, nil
}

// normSiLU returns silu(norm(x)).
func (n *norm) normSiLU(x *ts.Tensor) (*ts.Tensor, error) {
	h, err := n.forward(x)
	if err != nil {
		return nil, err
	}
	y, err := h.Silu(true)
	if err != nil {
		return nil, fmt.Errorf("%s: silu: %w", n.name, err)
	}
	return y, nil
}

// linear is nn.Linear.
type linear struct {
	w, b *ts.Tensor
	name string
}

func (l *linear) forward(x *ts.Tensor) (*ts.Tensor, error) {
	y, err := ts.Linear(x, l.w, l.b)
	if err != nil {
		return nil, fmt.Errorf("%s: linear: %w", l.name, err)
	}
	return y, nil
}

// layer is one module of a TimestepEmbedSequential block. forward borrows x
// and emb and returns a new tensor the caller owns.
type layer interface {
	forward(x, emb *ts.Tensor) (*ts.Tensor, error)
}

// convLayer is a bare convolution inside a block (input_blocks.0.0).
type convLayer struct{ c *conv }

func (l convLayer) forward(x, _ *ts.Tensor) (*ts.Tensor, error) { return l.c.forward(x) }

// upsample is nearest 2× then an optional 3×3 convolution (Upsample).
type upsample struct {
	c    *conv // nil without conv_resample
	name string
}

func up2(x *ts.Tensor, name string) (*ts.Tensor, error) {
	size, err := x.Size()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	y, err := x.UpsampleNearest2d([]int64{2 * size[2], 2 * size[3]}, []float64{2}, []float64{2}, false)
	if err != nil {
		return nil, fmt.Errorf("%s: nearest upsample: %w", name, err)
	}
	return y, nil
}

func (l upsample) forward(x, _ *ts.Tensor) (*ts.Tensor, error) {
	y, err := up2(x, l.name)
	if err != nil || l.c == nil {
		return y, err
	}
	defer drop(y)
	return l.c.forward(y)
}

// downsample is a stride-2 3×3 convolution or a 2×2 average pool
// (Downsample). With padRB (model.arch ddpm) the convolution has no padding
// and the input gets one zero row and column at the bottom and right first.
type downsample struct {
	c     *conv // nil without conv_resample
	padRB bool
	name  string
}

func avgPool2(x *ts.Tensor, name string) (*ts.Tensor, error) {
	y, err := x.AvgPool2d([]int64{2, 2}, []int64{2, 2}, []int64{0, 0}, false, true, nil, false)
	if err != nil {
		return nil, fmt.Errorf("%s: average pool: %w", name, err)
	}
	return y, nil
}

func (l downsample) forward(x, _ *ts.Tensor) (*ts.Tensor, error) {
	if l.c != nil && l.padRB {
		zero := ts.FloatScalar(0)
		defer zero.MustDrop()
		xp, err := x.ConstantPadNdWithVal([]int64{0, 1, 0, 1}, zero, false)
		if err != nil {
			return nil, fmt.Errorf("%s: pad (0, 1, 0, 1): %w", l.name, err)
		}
		defer drop(xp)
		return l.c.forward(xp)
	}
	if l.c != nil {
		return l.c.forward(x)
	}
	return avgPool2(x, l.name)
}

// resBlock is guided-diffusion's ResBlock.
type resBlock struct {
	name       string
	inNorm     norm
	inConv     conv
	emb        linear
	outNorm    norm
	outConv    conv
	skip       *conv // nil: identity
	scaleShift bool
	up, down   bool
	outCh      int64
	drop       *dropCtl // the UNet's: identity outside training passes
}

func (r *resBlock) resample(x *ts.Tensor) (*ts.Tensor, error) {
	if r.up {
		return up2(x, r.name)
	}
	return avgPool2(x, r.name)
}

func (r *resBlock) forward(x, emb *ts.Tensor) (*ts.Tensor, error) {
	var s scope
	defer s.free()
	h, err := r.inNorm.normSiLU(x)
	if err != nil {
		return nil, err
	}
	s.add(h)
	xs := x
	if r.up || r.down {
		if h, err = r.resample(h); err != nil {
			return nil, err
		}
		s.add(h)
		if xs, err = r.resample(x); err != nil {
			return nil, err
		}
		s.add(xs)
	}
	if h, err = r.inConv.forward(h); err != nil {
		return nil, err
	}
	s.add(h)

	e, err := emb.Silu(false)
	if err != nil {
		return nil, fmt.Errorf("%s: silu: %w", r.name, err)
	}
	s.add(e)
	if e, err = r.emb.forward(e); err != nil {
		return nil, err
	}
	s.add(e)
	if e, err = e.Unsqueeze(-1, false); err != nil {
		return nil, fmt.Errorf("%s: embedding view: %w", r.name, err)
	}
	s.add(e)
	if e, err = e.Unsqueeze(-1, false); err != nil {
		return nil, fmt.Errorf("%s: embedding view: %w", r.name, err)
	}
	s.add(e)

	if r.scaleShift {
		if h, err = r.outNorm.forward(h); err != nil {
			return nil, err
		}
		s.add(h)
		scale, err := e.Narrow(1, 0, r.outCh, false)
		if err != nil {
			return nil, fmt.Errorf("%s: scale: %w", r.name, err)
		}
		s.add(scale)
		shift, err := e.Narrow(1, r.outCh, r.outCh, false)
		if err != nil {
			return nil, fmt.Errorf("%s: shift: %w", r.name, err)
		}
		s.add(shift)
		one := ts.FloatScalar(1)
		scale1, err := scale.AddScalar(one, false)
		one.MustDrop()
		if err != nil {
			return nil, fmt.Errorf("%s: 1+scale: %w", r.name, err)
		}
		s.add(scale1)
		if h, err = h.Mul(scale1, false); err != nil {
			return nil, fmt.Errorf("%s: norm·(1+scale): %w", r.name, err)
		}
		s.add(h)
		if h, err = h.Add(shift, false); err != nil {
			return nil, fmt.Errorf("%s: +shift: %w", r.name, err)
		}
		s.add(h)
		if h, err = h.Silu(false); err != nil {
			return nil, fmt.Errorf("%s: silu: %w", r.name, err)
		}
		s.add(h)
	} else {
		if h, err = h.Add(e, false); err != nil {
			return nil, fmt.Errorf("%s: +embedding: %w", r.name, err)
		}
		s.add(h)
		if h, err = r.outNorm.normSiLU(h); err != nil {
			return nil, err
		}
		s.add(h)
	}
	// Dropout: the identity except in a Trainer's passes.
	if m, err := r.drop.apply(h); err != nil {
		return nil, fmt.Errorf("%s: dropout: %w", r.name, err)
	} else if m != nil {
		h = s.add(m)
	}
	if h, err = r.outConv.forward(h); err != nil {
		return nil, err
	}
	s.add(h)
	if r.skip != nil {
		if xs, err = r.skip.forward(xs); err != nil {
			return nil, err
		}
		s.add(xs)
	}
	out, err := xs.Add(h, false)
	if err != nil {
		return nil, fmt.Errorf("%s: skip + h: %w", r.name, err)
	}
	return out, nil
}

// attnBlock is guided-diffusion's AttentionBlock with QKVAttentionLegacy.
type attnBlock struct {
	name  string
	norm  norm
	qkv   conv
	proj  conv
	heads int64
}

func (a *attnBlock) forward(x, _ *ts.Tensor) (*ts.Tensor, error) {
	var s scope
	defer s.free()
	size, err := x.Size()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.name, err)
	}
	b, c, length := size[0], size[1], size[2]*size[3]
	fail := func(what string, err error) (*ts.Tensor, error) {
		return nil, fmt.Errorf("%s: %s: %w", a.name, what, err)
	}
	xf, err := x.Reshape([]int64{b, c, length}, false)
	if err != nil {
		return fail("reshape", err)
	}
	s.add(xf)
	h, err := a.norm.forward(xf)
	if err != nil {
		return nil, err
	}
	s.add(h)
	qkv, err := a.qkv.forward(h)
	if err != nil {
		return nil, err
	}
	s.add(qkv)
	ch := c / a.heads
	qkvh, err := qkv.Reshape([]int64{b * a.heads, 3 * ch, length}, false)
	if err != nil {
		return fail("split heads", err)
	}
	s.add(qkvh)
	part := func(i int64) (*ts.Tensor, error) {
		p, err := qkvh.Narrow(1, i*ch, ch, false)
		if err != nil {
			return nil, err
		}
		return s.add(p), nil
	}
	q, err := part(0)
	if err != nil {
		return fail("q", err)
	}
	k, err := part(1)
	if err != nil {
		return fail("k", err)
	}
	v, err := part(2)
	if err != nil {
		return fail("v", err)
	}
	scale := ts.FloatScalar(1 / math.Sqrt(math.Sqrt(float64(ch))))
	defer scale.MustDrop()
	qs, err := q.MulScalar(scale, false)
	if err != nil {
		return fail("q·scale", err)
	}
	s.add(qs)
	ks, err := k.MulScalar(scale, false)
	if err != nil {
		return fail("k·scale", err)
	}
	s.add(ks)
	w, err := ts.Einsum("bct,bcs->bts", []ts.Tensor{*qs, *ks})
	if err != nil {
		return fail("q·k", err)
	}
	s.add(w)
	if w, err = w.Softmax(-1, gotch.Float, false); err != nil {
		return fail("softmax", err)
	}
	s.add(w)
	att, err := ts.Einsum("bts,bcs->bct", []ts.Tensor{*w, *v})
	if err != nil {
		return fail("weights·v", err)
	}
	s.add(att)
	if att, err = att.Reshape([]int64{b, c, length}, false); err != nil {
		return fail("merge heads", err)
	}
	s.add(att)
	if h, err = a.proj.forward(att); err != nil {
		return nil, err
	}
	s.add(h)
	if h, err = xf.Add(h, false); err != nil {
		return fail("x + attention", err)
	}
	s.add(h)
	out, err := h.Reshape(size, false)
	if err != nil {
		return fail("reshape back", err)
	}
	return out, nil
}

// sequential runs the layers of one TimestepEmbedSequential block.
func sequential(layers []layer, x, emb *ts.Tensor) (*ts.Tensor, error) {
	h := x
	for i, l := range layers {
		y, err := l.forward(h, emb)
		if i > 0 {
			drop(h)
		}
		if err != nil {
			return nil, err
		}
		h = y
	}
	return h, nil
}
