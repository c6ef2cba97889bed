package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
)

// UNet is a diffusion.Denoiser.
var _ diffusion.Denoiser = (*UNet)(nil)

// evalGraph is a forward-only graph of one batch size.
type evalGraph struct {
	net *net
	vm  G.VM
}

// vjpGraph computes the output and vᵀ ∂out/∂x for one batch size.
type vjpGraph struct {
	net   *net
	v     *G.Node       // N×outCh×H×W cotangent (zero on the variance channels)
	vv    *tensor.Dense // value bound to v
	gradX *G.Node
	vm    G.VM
	// replay runs the same nodes op by op for EpsPullback (built on its
	// first use).
	replay *replay
}

func (u *UNet) evalFor(n int) (*evalGraph, error) {
	if g, ok := u.evals[n]; ok {
		return g, nil
	}
	nt, vm, err := u.compiled(n, nil, true, nil)
	if err != nil {
		return nil, err
	}
	g := &evalGraph{net: nt, vm: vm}
	u.evals[n] = g
	return g, nil
}

func (u *UNet) vjpFor(n int) (*vjpGraph, error) {
	if g, ok := u.vjps[n]; ok {
		return g, nil
	}
	g := &vjpGraph{}
	nt, vm, err := u.compiled(n, nil, true, func(nt *net) (*G.ExprGraph, error) {
		shape := []int(nt.out.Shape().Clone())
		g.vv = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
		g.v = G.NewTensor(nt.g, tensor.Float32, 4, G.WithShape(shape...), G.WithName(nt.leaf("cotangent")), G.WithValue(g.vv))
		// Seed reverse mode with v as the output's cotangent: no loss node.
		grads, err := G.Backpropagate(G.Nodes{nt.out}, G.Nodes{g.v}, G.Nodes{nt.x})
		if err != nil {
			return nil, fmt.Errorf("model: building the VJP graph: %w", err)
		}
		g.gradX = grads[0]
		// The backward ops share buffers; the forward values stay, for
		// EpsPullback's replay, which runs the backward part again on them
		// (in the same order among themselves, so the sharing holds).
		nt.keep = append(nt.g.SubgraphRoots(nt.out).AllNodes(), g.gradX)
		// Run only what ε and ∂/∂x need: reverse mode also builds the
		// parameter gradients of every op on the path (a third of the
		// work), which the subgraph of those two roots leaves out.
		return nt.g.SubgraphRoots(nt.out, g.gradX), nil
	})
	if err != nil {
		return nil, err
	}
	g.net, g.vm = nt, vm
	u.vjps[n] = g
	return g, nil
}

// checkInput validates x_t and t against the model and returns the batch size.
func (u *UNet) checkInput(xt *tensor.Dense, t []int) (int, error) {
	n, c, h, w, err := tensors.NCHW("x_t", xt)
	if err != nil {
		return 0, err
	}
	cfg := u.a.cfg
	if c != cfg.InChannels || h != cfg.ImageSize || w != cfg.ImageSize {
		return 0, fmt.Errorf("x_t has shape %v, want N×%d×%d×%d (the model's in_channels and image_size)", []int(xt.Shape()), cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	}
	if xt.RequiresIterator() {
		return 0, fmt.Errorf("x_t is a non-contiguous view, want a contiguous tensor")
	}
	if len(t) != n {
		return 0, fmt.Errorf("%d timesteps for a batch of %d, want one per image", len(t), n)
	}
	for i, tv := range t {
		if tv < 0 {
			return 0, fmt.Errorf("timestep t[%d] = %d, want ≥ 0", i, tv)
		}
	}
	return n, nil
}

// run resets and runs a machine.
func run(vm G.VM) error {
	vm.Reset()
	if err := vm.RunAll(); err != nil {
		return fmt.Errorf("model: running the graph: %w", err)
	}
	return nil
}

// Forward returns the whole network output at (x_t, t): N×C×H×W, or
// N×2C×H×W with learn_sigma (ε first, then the variance channels).
func (u *UNet) Forward(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	n, err := u.checkInput(xt, t)
	if err != nil {
		return nil, fmt.Errorf("model.Forward: %w", err)
	}
	u.lock()
	defer u.mu.Unlock()
	g, err := u.evalFor(n)
	if err != nil {
		return nil, err
	}
	if err := g.net.setInputs(xt, t); err != nil {
		return nil, fmt.Errorf("model.Forward: %w", err)
	}
	if err := run(g.vm); err != nil {
		return nil, err
	}
	return tensors.Clone(g.net.out.Value().(*tensor.Dense)), nil
}

// splitChannels copies channels [c0, c1) of out (N×K×H×W) into a new tensor.
func splitChannels(out *tensor.Dense, c0, c1 int) *tensor.Dense {
	s := out.Shape()
	n, k, hw := s[0], s[1], s[2]*s[3]
	res := tensors.New(n, c1-c0, s[2], s[3])
	src, dst := tensors.F32(out), tensors.F32(res)
	for i := 0; i < n; i++ {
		copy(dst[i*(c1-c0)*hw:(i+1)*(c1-c0)*hw], src[(i*k+c0)*hw:(i*k+c1)*hw])
	}
	return res
}

// Eps predicts the noise ε in x_t at timesteps t (the first in_channels
// output channels).
func (u *UNet) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out, err := u.Forward(xt, t)
	if err != nil {
		return nil, err
	}
	if u.a.outCh == u.a.cfg.InChannels {
		return out, nil
	}
	return splitChannels(out, 0, u.a.cfg.InChannels), nil
}

// EpsVar returns ε and, with learn_sigma, the raw variance channels v (the
// interpolation weight of guided-diffusion's learned_range variance, in
// [-1, 1] after training); without learn_sigma it returns an error.
func (u *UNet) EpsVar(xt *tensor.Dense, t []int) (eps, v *tensor.Dense, err error) {
	if !u.a.cfg.LearnSigma {
		return nil, nil, fmt.Errorf("model.EpsVar: the model was built with learn_sigma false, so it has no variance output")
	}
	out, err := u.Forward(xt, t)
	if err != nil {
		return nil, nil, err
	}
	c := u.a.cfg.InChannels
	return splitChannels(out, 0, c), splitChannels(out, c, 2*c), nil
}

// EpsVJP returns ε(x_t, t) and vᵀ ∂ε/∂x_t, by reverse mode through the
// graph; v has x_t's shape.
func (u *UNet) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (eps, vjp *tensor.Dense, err error) {
	n, err := u.checkInput(xt, t)
	if err != nil {
		return nil, nil, fmt.Errorf("model.EpsVJP: %w", err)
	}
	if err := tensors.SameShape("x_t", xt, "v", v); err != nil {
		return nil, nil, fmt.Errorf("model.EpsVJP: %w", err)
	}
	if v.Dtype() != tensor.Float32 || v.RequiresIterator() {
		return nil, nil, fmt.Errorf("model.EpsVJP: v must be a contiguous float32 tensor, got %v", v.Dtype())
	}
	u.lock()
	defer u.mu.Unlock()
	g, err := u.vjpFor(n)
	if err != nil {
		return nil, nil, err
	}
	if err := g.net.setInputs(xt, t); err != nil {
		return nil, nil, fmt.Errorf("model.EpsVJP: %w", err)
	}
	u.setCotangent(g, v)
	if err := run(g.vm); err != nil {
		return nil, nil, err
	}
	out := g.net.out.Value().(*tensor.Dense)
	eps = splitChannels(out, 0, u.a.cfg.InChannels)
	vjp = tensors.Clone(g.gradX.Value().(*tensor.Dense))
	return eps, vjp, nil
}

// setCotangent binds v (x_t's shape) to g's cotangent node: v on the ε
// channels and zero on the variance ones (which stay zero: nothing else
// writes them).
func (u *UNet) setCotangent(g *vjpGraph, v *tensor.Dense) {
	c, k := u.a.cfg.InChannels, u.a.outCh
	hw := u.a.cfg.ImageSize * u.a.cfg.ImageSize
	dst, src := tensors.F32(g.vv), tensors.F32(v)
	for i := 0; i < g.net.batch; i++ {
		copy(dst[i*k*hw:(i*k+c)*hw], src[i*c*hw:(i+1)*c*hw])
	}
}
