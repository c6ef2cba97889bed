//go:build torch

package torch

import (
	"fmt"
	"math/rand"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/train"
)

// dropCtl drives every ResBlock's dropout during one training pass: nil
// rng means evaluation (identity). Masks are drawn from rng in forward
// order, so they depend only on the pass's seed.
type dropCtl struct {
	p   float64
	rng *rand.Rand
	dev gotch.Device
}

// apply returns h times a fresh inverted-dropout mask (kept elements scaled
// by 1/(1−p)), or nil when dropout is off.
func (d *dropCtl) apply(h *ts.Tensor) (*ts.Tensor, error) {
	if d == nil || d.rng == nil || d.p == 0 {
		return nil, nil
	}
	size, err := h.Size()
	if err != nil {
		return nil, err
	}
	n := int64(1)
	for _, s := range size {
		n *= s
	}
	mask := make([]float32, n)
	keep := float32(1 / (1 - d.p))
	for i := range mask {
		if d.rng.Float64() >= d.p {
			mask[i] = keep
		}
	}
	m, err := ts.OfSlice(mask)
	if err != nil {
		return nil, err
	}
	if m, err = m.View(size, true); err != nil {
		return nil, err
	}
	if d.dev != gotch.CPU {
		if m, err = m.To(d.dev, true); err != nil {
			return nil, err
		}
	}
	defer drop(m)
	return h.Mul(m, false)
}

// Trainer trains the torch engine's UNet with package train's loop: it
// implements train.MSETrainable and train.Trainable. The float32 parameters
// in Go memory (Param) are the source of truth, which the loop's optimiser
// updates in place; each pass copies them into libtorch, runs forward and
// backward there, and copies the gradients back (Grad).
//
// Dropout masks come from a rand.Rand seeded with the pass's dropoutSeed, in
// forward order; they differ from the native engine's masks, so training
// runs of the two engines agree closely only with model.dropout = 0.
type Trainer struct {
	u      *UNet
	names  []string
	params map[string]*tensor.Dense
	grads  map[string]*tensor.Dense
}

var (
	_ train.MSETrainable = (*Trainer)(nil)
	_ train.Trainable    = (*Trainer)(nil)
)

// NewTrainer builds the UNet of cfg on libtorch with parameters initialised
// from rng exactly as the native engine's model.New (same draws, same
// order), so both engines start a run from the same weights.
func NewTrainer(cfg config.Model, rng *rand.Rand, opts Options) (*Trainer, error) {
	init, err := model.New(cfg, rng)
	if err != nil {
		return nil, fmt.Errorf("torch engine: %w", err)
	}
	return TrainerFrom(cfg, init.Params(), opts)
}

// NewTrainNetwork is a train.RunOptions.NewModel that trains on the torch
// engine (CPU).
func NewTrainNetwork(cfg *config.Config, rng *rand.Rand) (train.Network, error) {
	return NewTrainer(cfg.Model, rng, Options{})
}

// TrainerFrom builds a Trainer whose parameters start as copies of params
// (names and shapes must match the network of cfg).
func TrainerFrom(cfg config.Model, params map[string]*tensor.Dense, opts Options) (*Trainer, error) {
	u, err := New(cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := checkTensors(params, u.Shapes()); err != nil {
		u.Close()
		return nil, fmt.Errorf("torch engine: trainer: %w", err)
	}
	tr := &Trainer{u: u, params: map[string]*tensor.Dense{}, grads: map[string]*tensor.Dense{}}
	for _, p := range u.params {
		tr.names = append(tr.names, p.Name)
		tr.params[p.Name] = tensors.Clone(params[p.Name])
		tr.grads[p.Name] = tensors.Like(params[p.Name])
	}
	return tr, nil
}

// UNet returns the network (for Eps and EpsVJP with the parameters of the
// last pass; call Sync first to see the optimiser's latest update).
func (tr *Trainer) UNet() *UNet { return tr.u }

// Sync copies the Go-side parameters into the network.
func (tr *Trainer) Sync() error { return tr.u.Load(tr.params) }

// Close frees the network.
func (tr *Trainer) Close() { tr.u.Close() }

// ParamNames lists the parameters in PyTorch's state-dict order.
func (tr *Trainer) ParamNames() []string { return append([]string(nil), tr.names...) }

// Param returns the live parameter tensor (updated in place by the optimiser).
func (tr *Trainer) Param(name string) *tensor.Dense { return tr.params[name] }

// Grad returns the gradient of the last pass.
func (tr *Trainer) Grad(name string) *tensor.Dense { return tr.grads[name] }

// MSEGrad runs one training pass with loss mean((out[:, :C] − target)²)
// computed by libtorch, leaves the parameter gradients in Grad and returns
// the loss.
func (tr *Trainer) MSEGrad(xt *tensor.Dense, t []int, target *tensor.Dense, dropoutSeed int64) (float64, error) {
	if err := tensors.SameShape("target", target, "x_t", xt); err != nil {
		return 0, fmt.Errorf("torch engine: %w", err)
	}
	return tr.pass(xt, t, dropoutSeed, func(s *scope, out *ts.Tensor) (*ts.Tensor, float64, error) {
		e := out
		var err error
		if tr.u.cfg.LearnSigma {
			if e, err = out.Narrow(1, 0, int64(tr.u.cfg.InChannels), false); err != nil {
				return nil, 0, err
			}
			s.add(e)
		}
		tg, err := toTorch(target, tr.u.dev)
		if err != nil {
			return nil, 0, err
		}
		s.add(tg)
		d, err := e.Sub(tg, false)
		if err != nil {
			return nil, 0, err
		}
		s.add(d)
		sq, err := d.Square(false)
		if err != nil {
			return nil, 0, err
		}
		s.add(sq)
		loss, err := sq.Mean(gotch.Float, false)
		if err != nil {
			return nil, 0, err
		}
		s.add(loss)
		v, err := scalarValue(loss)
		return loss, v, err
	})
}

// LossGrad runs one training pass with a loss computed in Go on the whole
// output: it back-propagates the returned dout, leaves the parameter
// gradients in Grad and returns the loss.
func (tr *Trainer) LossGrad(xt *tensor.Dense, t []int, dropoutSeed int64, loss train.LossFunc) (float64, error) {
	return tr.pass(xt, t, dropoutSeed, func(s *scope, out *ts.Tensor) (*ts.Tensor, float64, error) {
		o, err := fromTorch(out)
		if err != nil {
			return nil, 0, err
		}
		l, dout, err := loss(o)
		if err != nil {
			return nil, 0, err
		}
		if err := tensors.SameShape("dout", dout, "output", o); err != nil {
			return nil, 0, err
		}
		dt, err := toTorch(dout, tr.u.dev)
		if err != nil {
			return nil, 0, err
		}
		s.add(dt)
		p, err := out.Mul(dt, false)
		if err != nil {
			return nil, 0, err
		}
		s.add(p)
		sum, err := p.Sum(gotch.Float, false)
		if err != nil {
			return nil, 0, err
		}
		s.add(sum)
		return sum, l, nil
	})
}

// scalarValue reads a one-element tensor.
func scalarValue(t *ts.Tensor) (float64, error) {
	d, err := fromTorch(t)
	if err != nil {
		return 0, err
	}
	switch v := d.Data().(type) {
	case float32:
		return float64(v), nil
	case []float32:
		if len(v) == 1 {
			return float64(v[0]), nil
		}
	}
	return 0, fmt.Errorf("loss tensor of shape %v, want one element", d.Shape())
}

// pass runs forward in training mode, builds the scalar to differentiate
// with objective, back-propagates it into the parameters and copies their
// gradients into tr.grads.
func (tr *Trainer) pass(xt *tensor.Dense, t []int, dropoutSeed int64, objective func(*scope, *ts.Tensor) (*ts.Tensor, float64, error)) (float64, error) {
	u := tr.u
	if err := u.checkInputs(xt, t); err != nil {
		return 0, fmt.Errorf("torch engine: %w", err)
	}
	if err := tr.Sync(); err != nil {
		return 0, err
	}
	unlock, err := u.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	fail := func(what string, err error) (float64, error) {
		return 0, fmt.Errorf("torch engine: training pass: %s: %w", what, err)
	}
	prev, err := ts.GradSetEnabled(true)
	if err != nil {
		return fail("grad mode", err)
	}
	defer ts.GradSetEnabled(prev)
	for _, name := range tr.names {
		if err := u.vars[name].RequiresGrad_(true); err != nil {
			return fail("requires_grad "+name, err)
		}
	}
	defer func() {
		for _, name := range tr.names {
			_ = u.vars[name].RequiresGrad_(false)
		}
	}()

	u.drop.p, u.drop.rng = u.cfg.Dropout, rand.New(rand.NewSource(dropoutSeed))
	defer func() { u.drop.rng = nil }()

	var s scope
	defer s.free()
	x, err := toTorch(xt, u.dev)
	if err != nil {
		return fail("x_t", err)
	}
	s.add(x)
	out, err := u.forward(x, t)
	if err != nil {
		return fail("forward", err)
	}
	s.add(out)
	obj, lossValue, err := objective(&s, out)
	if err != nil {
		return fail("loss", err)
	}
	if err := obj.Backward(); err != nil {
		return fail("backward", err)
	}
	for _, name := range tr.names {
		v := u.vars[name]
		g, err := v.Grad(false)
		if err != nil {
			return fail("gradient of "+name, err)
		}
		ok, err := g.Defined()
		if err != nil || !ok {
			drop(g)
			// A parameter the loss does not reach (none in this UNet).
			copy(tensors.F32(tr.grads[name]), make([]float32, len(tensors.F32(tr.grads[name]))))
			continue
		}
		d, err := fromTorch(g)
		if err == nil {
			copy(tensors.F32(tr.grads[name]), tensors.F32(d))
			err = g.Zero_()
		}
		drop(g)
		if err != nil {
			return fail("gradient of "+name, err)
		}
	}
	return lossValue, nil
}
