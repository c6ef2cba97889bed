//go:build torch

package torch

import (
	"fmt"
	"math"
	"runtime"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
)

// timestepEmbedding is the sinusoidal timestep embedding, computed in
// float32 with the same libtorch ops as the PyTorch references:
// guided-diffusion's [cos(t f_i), sin(t f_i)] with f_i = 10000^(−i/half)
// (bench/pytorch/unet.py), or with ddpm (model.arch ddpm) the DDPM UNet's
// [sin(t f_i), cos(t f_i)] with f_i = exp(−ln(10000)·i/(half−1))
// (get_timestep_embedding of bench/pytorch/ddpm_unet.py).
func timestepEmbedding(t []int, dim int64, dev gotch.Device, ddpm bool) (*ts.Tensor, error) {
	var s scope
	defer s.free()
	half := dim / 2
	h := ts.IntScalar(half)
	defer h.MustDrop()
	ar, err := ts.Arange(h, gotch.Float, dev)
	if err != nil {
		return nil, err
	}
	s.add(ar)
	var f *ts.Tensor
	if ddpm {
		c := ts.FloatScalar(-math.Log(10000) / float64(half-1))
		defer c.MustDrop()
		if f, err = ar.MulScalar(c, false); err != nil {
			return nil, err
		}
		s.add(f)
	} else {
		c := ts.FloatScalar(-math.Log(10000))
		defer c.MustDrop()
		if f, err = ar.MulScalar(c, false); err != nil {
			return nil, err
		}
		s.add(f)
		if f, err = f.DivScalar(h, false); err != nil {
			return nil, err
		}
		s.add(f)
	}
	if f, err = f.Exp(false); err != nil {
		return nil, err
	}
	s.add(f)
	if f, err = f.Unsqueeze(0, false); err != nil {
		return nil, err
	}
	s.add(f)
	tv := make([]float32, len(t))
	for i, v := range t {
		tv[i] = float32(v)
	}
	tt, err := ts.OfSlice(tv)
	if err != nil {
		return nil, err
	}
	s.add(tt)
	if dev != gotch.CPU {
		if tt, err = tt.To(dev, false); err != nil {
			return nil, err
		}
		s.add(tt)
	}
	if tt, err = tt.Unsqueeze(1, false); err != nil {
		return nil, err
	}
	s.add(tt)
	args, err := tt.Mul(f, false)
	if err != nil {
		return nil, err
	}
	s.add(args)
	cos, err := args.Cos(false)
	if err != nil {
		return nil, err
	}
	s.add(cos)
	sin, err := args.Sin(false)
	if err != nil {
		return nil, err
	}
	s.add(sin)
	if ddpm {
		return ts.Cat([]ts.Tensor{*sin, *cos}, 1)
	}
	return ts.Cat([]ts.Tensor{*cos, *sin}, 1)
}

// forward runs the network on x (N×C×H×W on the engine's device) and
// returns the full output (2C channels with learn_sigma).
func (u *UNet) forward(x *ts.Tensor, t []int) (*ts.Tensor, error) {
	emb, err := timestepEmbedding(t, int64(u.cfg.NumChannels), u.dev, u.cfg.Arch == config.ArchDDPM)
	if err != nil {
		return nil, fmt.Errorf("timestep embedding: %w", err)
	}
	defer func() { drop(emb) }()
	for i := range u.timeEmbed {
		e, err := u.timeEmbed[i].forward(emb)
		drop(emb)
		emb = e
		if err != nil {
			return nil, err
		}
		if i == 0 {
			e, err = emb.Silu(false)
			drop(emb)
			emb = e
			if err != nil {
				return nil, fmt.Errorf("time_embed.1: silu: %w", err)
			}
		}
	}

	hs := make([]*ts.Tensor, 0, len(u.input))
	defer func() {
		for _, h := range hs {
			drop(h)
		}
	}()
	h := x
	for _, blk := range u.input {
		y, err := sequential(blk, h, emb)
		if err != nil {
			return nil, err
		}
		hs = append(hs, y)
		h = y
	}
	h, err = sequential(u.middle, h, emb)
	if err != nil {
		return nil, err
	}
	for _, blk := range u.output {
		skip := hs[len(hs)-1]
		hs = hs[:len(hs)-1]
		cat, err := ts.Cat([]ts.Tensor{*h, *skip}, 1)
		drop(h)
		drop(skip)
		if err != nil {
			return nil, fmt.Errorf("output block concat: %w", err)
		}
		h, err = sequential(blk, cat, emb)
		drop(cat)
		if err != nil {
			return nil, err
		}
	}
	defer drop(h)
	o, err := u.outNorm.normSiLU(h)
	if err != nil {
		return nil, err
	}
	defer drop(o)
	return u.outConv.forward(o)
}

// checkInputs validates x and t against the network.
func (u *UNet) checkInputs(xt *tensor.Dense, t []int) error {
	n, c, h, w, err := tensors.NCHW("x_t", xt)
	if err != nil {
		return err
	}
	if c != u.cfg.InChannels || h != u.cfg.ImageSize || w != u.cfg.ImageSize {
		return fmt.Errorf("x_t has shape %v, want N×%d×%d×%d (model.in_channels, model.image_size)", []int(xt.Shape()), u.cfg.InChannels, u.cfg.ImageSize, u.cfg.ImageSize)
	}
	if len(t) != n {
		return fmt.Errorf("%d timesteps for a batch of %d, want one per image", len(t), n)
	}
	for i, v := range t {
		if v < 0 {
			return fmt.Errorf("t[%d] = %d, want ≥ 0", i, v)
		}
	}
	return nil
}

// lock serialises a call on one OS thread: libtorch's grad mode, its
// OpenMP thread count and gotch's last-error slot are thread-local. It sets
// the thread count of Options.Threads on that OS thread.
func (u *UNet) lock() (unlock func(), err error) {
	return u.lockFor(nil)
}

// lockFor is lock for the vjp function of pullback p: every other caller
// frees the pending pullback (its kept graph), p keeps it.
func (u *UNet) lockFor(p *pullback) (unlock func(), err error) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil, fmt.Errorf("torch engine: the UNet is closed")
	}
	if u.pull != nil && u.pull != p {
		u.pull.free()
		u.pull = nil
	}
	runtime.LockOSThread()
	if u.threads > 0 {
		setNumThreads(u.threads)
	}
	return func() {
		runtime.UnlockOSThread()
		u.mu.Unlock()
	}, nil
}

// Forward returns the network's whole output for x_t at timesteps t: ε, and
// with model.learn_sigma the variance interpolation channels after it.
func (u *UNet) Forward(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	if err := u.checkInputs(xt, t); err != nil {
		return nil, fmt.Errorf("torch engine: %w", err)
	}
	unlock, err := u.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	prev, err := ts.GradSetEnabled(false)
	if err != nil {
		return nil, fmt.Errorf("torch engine: %w", err)
	}
	defer ts.GradSetEnabled(prev)
	x, err := toTorch(xt, u.dev)
	if err != nil {
		return nil, fmt.Errorf("torch engine: x_t: %w", err)
	}
	defer drop(x)
	out, err := u.forward(x, t)
	if err != nil {
		return nil, fmt.Errorf("torch engine: forward: %w", err)
	}
	defer drop(out)
	return fromTorch(out)
}

// Eps predicts the noise in x_t at timesteps t (the first C output channels).
func (u *UNet) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out, err := u.Forward(xt, t)
	if err != nil || !u.cfg.LearnSigma {
		return out, err
	}
	return firstChannels(out, u.cfg.InChannels), nil
}

// EpsVar returns ε and, with model.learn_sigma, the variance channels v
// (guided-diffusion's model_var_values, unchanged) from one forward pass:
// what DDPM sampling and the solvers' ancestral step need for a
// learned_range model such as DPS's FFHQ checkpoint
// (diffusion.VarianceDenoiser). Without learn_sigma
// it returns an error.
func (u *UNet) EpsVar(xt *tensor.Dense, t []int) (eps, v *tensor.Dense, err error) {
	if !u.cfg.LearnSigma {
		return nil, nil, fmt.Errorf("torch engine: EpsVar: the model was built with learn_sigma false, so it has no variance output")
	}
	out, err := u.Forward(xt, t)
	if err != nil {
		return nil, nil, err
	}
	c := u.cfg.InChannels
	return channels(out, 0, c), channels(out, c, 2*c), nil
}

// firstChannels copies channels [0, c) of an N×2c×H×W tensor.
func firstChannels(d *tensor.Dense, c int) *tensor.Dense { return channels(d, 0, c) }

// channels copies channels [c0, c1) of an N×K×H×W tensor.
func channels(d *tensor.Dense, c0, c1 int) *tensor.Dense {
	s := d.Shape()
	n, k, hw := s[0], s[1], s[2]*s[3]
	c := c1 - c0
	src := tensors.F32(d)
	dst := make([]float32, n*c*hw)
	for i := 0; i < n; i++ {
		copy(dst[i*c*hw:(i+1)*c*hw], src[(i*k+c0)*hw:(i*k+c1)*hw])
	}
	return tensors.FromSlice(dst, n, c, s[2], s[3])
}

// EpsVJP returns ε(x_t, t) and vᵀ ∂ε/∂x_t, by libtorch autograd: x_t gets
// requires_grad and the backward pass of Σ ε·v gives the product.
func (u *UNet) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (eps, vjp *tensor.Dense, err error) {
	if err := u.checkInputs(xt, t); err != nil {
		return nil, nil, fmt.Errorf("torch engine: %w", err)
	}
	if err := tensors.SameShape("v", v, "x_t", xt); err != nil {
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
	fail := func(what string, err error) (*tensor.Dense, *tensor.Dense, error) {
		return nil, nil, fmt.Errorf("torch engine: EpsVJP: %s: %w", what, err)
	}

	var s scope
	defer s.free()
	x0, err := toTorch(xt, u.dev)
	if err != nil {
		return fail("x_t", err)
	}
	s.add(x0)
	x, err := x0.SetRequiresGrad(true, false)
	if err != nil {
		return fail("requires_grad", err)
	}
	s.add(x)
	vt, err := toTorch(v, u.dev)
	if err != nil {
		return fail("v", err)
	}
	s.add(vt)
	out, err := u.forward(x, t)
	if err != nil {
		return fail("forward", err)
	}
	s.add(out)
	e := out
	if u.cfg.LearnSigma {
		if e, err = out.Narrow(1, 0, int64(u.cfg.InChannels), false); err != nil {
			return fail("eps channels", err)
		}
		s.add(e)
	}
	ev, err := e.Mul(vt, false)
	if err != nil {
		return fail("eps·v", err)
	}
	s.add(ev)
	sum, err := ev.Sum(gotch.Float, false)
	if err != nil {
		return fail("Σ eps·v", err)
	}
	s.add(sum)
	// One output and one input: gotch v0.7.0's RunBackward crashes with more.
	grads, err := ts.RunBackward([]ts.Tensor{*sum}, []ts.Tensor{*x}, false, false)
	if err != nil {
		return fail("backward", err)
	}
	g := grads[0]
	s.add(&g)
	if eps, err = fromTorch(e); err != nil {
		return fail("eps", err)
	}
	if vjp, err = fromTorch(&g); err != nil {
		return fail("vjp", err)
	}
	return eps, vjp, nil
}
