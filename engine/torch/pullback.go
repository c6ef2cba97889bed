//go:build torch

package torch

import (
	"errors"
	"fmt"

	"github.com/sugarme/gotch"
	ts "github.com/sugarme/gotch/ts"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
)

// ErrStalePullback is returned by the vjp function of UNet.EpsPullback once
// another call on the UNet has freed the forward graph it differentiates.
var ErrStalePullback = errors.New("torch engine: stale pullback: the UNet ran another call since EpsPullback; call EpsPullback again")

// pullback is a forward pass kept for reverse mode: x_t (requiring grad),
// the output and its ε channels, whose autograd graph libtorch keeps alive.
type pullback struct {
	s    scope
	x, e *ts.Tensor
	done bool
}

func (p *pullback) free() {
	if p != nil && !p.done {
		p.s.free()
		p.done = true
	}
}

// EpsPullback returns ε(x_t, t) and a function v ↦ vᵀ∂ε/∂x_t at that same
// point (inverse/solve.Pullbacker): one forward pass whose autograd graph
// libtorch keeps (backward with retain_graph), so each v costs a backward
// pass only. The function is valid until the next call on the UNet, which
// frees the graph; after that it returns ErrStalePullback.
func (u *UNet) EpsPullback(xt *tensor.Dense, t []int) (*tensor.Dense, func(v *tensor.Dense) (*tensor.Dense, error), error) {
	if err := u.checkInputs(xt, t); err != nil {
		return nil, nil, fmt.Errorf("torch engine: %w", err)
	}
	unlock, err := u.lock()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	prev, err := ts.GradSetEnabled(true)
	if err != nil {
		return nil, nil, fmt.Errorf("torch engine: %w", err)
	}
	defer ts.GradSetEnabled(prev)
	p := &pullback{}
	fail := func(what string, err error) (*tensor.Dense, func(*tensor.Dense) (*tensor.Dense, error), error) {
		p.free()
		return nil, nil, fmt.Errorf("torch engine: EpsPullback: %s: %w", what, err)
	}
	x0, err := toTorch(xt, u.dev)
	if err != nil {
		return fail("x_t", err)
	}
	p.s.add(x0)
	if p.x, err = x0.SetRequiresGrad(true, false); err != nil {
		return fail("requires_grad", err)
	}
	p.s.add(p.x)
	out, err := u.forward(p.x, t)
	if err != nil {
		return fail("forward", err)
	}
	p.s.add(out)
	p.e = out
	if u.cfg.LearnSigma {
		if p.e, err = out.Narrow(1, 0, int64(u.cfg.InChannels), false); err != nil {
			return fail("eps channels", err)
		}
		p.s.add(p.e)
	}
	eps, err := fromTorch(p.e)
	if err != nil {
		return fail("eps", err)
	}
	u.pull = p
	shape := xt.Shape().Clone()
	vjp := func(v *tensor.Dense) (*tensor.Dense, error) {
		if v == nil {
			return nil, fmt.Errorf("torch engine: pullback: v is nil")
		}
		if err := tensors.SameShape("v", v, "x_t", tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))); err != nil {
			return nil, fmt.Errorf("torch engine: pullback: %w", err)
		}
		unlock, err := u.lockFor(p)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if u.pull != p || p.done {
			return nil, ErrStalePullback
		}
		prev, err := ts.GradSetEnabled(true)
		if err != nil {
			return nil, fmt.Errorf("torch engine: %w", err)
		}
		defer ts.GradSetEnabled(prev)
		var s scope
		defer s.free()
		vt, err := toTorch(v, u.dev)
		if err != nil {
			return nil, fmt.Errorf("torch engine: pullback: v: %w", err)
		}
		s.add(vt)
		ev, err := p.e.Mul(vt, false)
		if err != nil {
			return nil, fmt.Errorf("torch engine: pullback: eps·v: %w", err)
		}
		s.add(ev)
		sum, err := ev.Sum(gotch.Float, false)
		if err != nil {
			return nil, fmt.Errorf("torch engine: pullback: Σ eps·v: %w", err)
		}
		s.add(sum)
		// keep_graph: the next v runs backward through the same forward.
		grads, err := ts.RunBackward([]ts.Tensor{*sum}, []ts.Tensor{*p.x}, true, false)
		if err != nil {
			return nil, fmt.Errorf("torch engine: pullback: backward: %w", err)
		}
		g := grads[0]
		s.add(&g)
		return fromTorch(&g)
	}
	return eps, vjp, nil
}
