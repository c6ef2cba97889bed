package model

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// TrainGraph is a training graph of one batch size: forward with dropout,
// the loss mean((ε̂ − ε)²) over the ε channels, and the gradient of the loss
// with respect to every parameter. It reads the UNet's live parameters, so
// an optimiser that updates Params() in place is seen by the next Step.
//
// With learn_sigma the variance channels get no gradient from this loss;
// LossGraph trains them with a loss computed outside the graph (the hybrid
// loss, guided-diffusion's MSE plus variational bound).
type TrainGraph struct {
	u       *UNet
	net     *net
	target  *tensor.Dense // N×outCh×H×W, the ε channels hold the target
	loss    *G.Node
	grads   []*G.Node // one per net.params entry
	vm      G.VM
	gradBuf map[string]*tensor.Dense
}

// NewTrainGraph builds the training graph for batch size n. Dropout masks
// (model.dropout > 0) are drawn from rng, one seed per Step; rng may be nil
// when dropout is 0. The graph starts in training mode (dropout on).
func (u *UNet) NewTrainGraph(n int, rng *rand.Rand) (*TrainGraph, error) {
	u.lock()
	defer u.mu.Unlock()
	drop, err := u.trainDropout(rng)
	if err != nil {
		return nil, fmt.Errorf("model.NewTrainGraph: %w", err)
	}
	tg := &TrainGraph{u: u}
	nt, vm, err := u.compiled(n, drop, true, func(nt *net) (*G.ExprGraph, error) {
		shape := []int(nt.out.Shape().Clone())
		tg.target = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
		target := G.NewTensor(nt.g, tensor.Float32, 4, G.WithShape(shape...), G.WithName(nt.leaf("target")), G.WithValue(tg.target))
		diff, err := G.Sub(nt.out, target)
		if err != nil {
			return nil, fmt.Errorf("model: building the training loss: %w", err)
		}
		c, k := u.a.cfg.InChannels, u.a.outCh
		if k != c {
			// Zero the variance channels' residual: they are not part of the loss.
			mv := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
			md := tensors.F32(mv)
			hw := shape[2] * shape[3]
			for i := 0; i < n; i++ {
				for j := i * k * hw; j < (i*k+c)*hw; j++ {
					md[j] = 1
				}
			}
			mask := G.NewTensor(nt.g, tensor.Float32, 4, G.WithShape(shape...), G.WithName(nt.leaf("eps_channels")), G.WithValue(mv))
			if diff, err = G.HadamardProd(diff, mask); err != nil {
				return nil, fmt.Errorf("model: building the training loss: %w", err)
			}
		}
		sq, err := G.Square(diff)
		if err != nil {
			return nil, fmt.Errorf("model: building the training loss: %w", err)
		}
		sum, err := G.Sum(sq)
		if err != nil {
			return nil, fmt.Errorf("model: building the training loss: %w", err)
		}
		count := n * c * shape[2] * shape[3]
		if tg.loss, err = G.Mul(sum, G.NewConstant(float32(1/float64(count)))); err != nil {
			return nil, fmt.Errorf("model: building the training loss: %w", err)
		}
		if tg.grads, err = G.Grad(tg.loss, paramNodes(nt)...); err != nil {
			return nil, fmt.Errorf("model: building the training gradients: %w", err)
		}
		nt.keep = append(G.Nodes{tg.loss}, tg.grads...)
		return nt.g, nil
	})
	if err != nil {
		return nil, err
	}
	tg.net, tg.vm = nt, vm
	tg.gradBuf = make(map[string]*tensor.Dense, len(u.params))
	for name, p := range u.params {
		tg.gradBuf[name] = tensors.Like(p)
	}
	return tg, nil
}

// Batch is the batch size the graph was built for.
func (tg *TrainGraph) Batch() int { return tg.net.batch }

// SetTraining turns dropout on (the default) or off; with it off the
// network computes what Eps computes.
func (tg *TrainGraph) SetTraining(on bool) {
	if tg.net.drop != nil {
		tg.net.drop.SetTraining(on)
	}
}

// Step runs forward and backward on x_t (N×C×H×W), timesteps t and the
// target noise eps (N×C×H×W) and returns the loss; Grads then holds the
// gradients.
func (tg *TrainGraph) Step(xt *tensor.Dense, t []int, eps *tensor.Dense) (float64, error) {
	u := tg.u
	n, err := u.checkInput(xt, t)
	if err != nil {
		return 0, fmt.Errorf("model.TrainGraph.Step: %w", err)
	}
	if n != tg.net.batch {
		return 0, fmt.Errorf("model.TrainGraph.Step: batch of %d, the graph was built for %d", n, tg.net.batch)
	}
	if err := tensors.SameShape("x_t", xt, "eps", eps); err != nil {
		return 0, fmt.Errorf("model.TrainGraph.Step: %w", err)
	}
	u.lock()
	defer u.mu.Unlock()
	if err := tg.net.setInputs(xt, t); err != nil {
		return 0, fmt.Errorf("model.TrainGraph.Step: %w", err)
	}
	c, k := u.a.cfg.InChannels, u.a.outCh
	hw := u.a.cfg.ImageSize * u.a.cfg.ImageSize
	dst, src := tensors.F32(tg.target), tensors.F32(eps)
	for i := 0; i < n; i++ {
		copy(dst[i*k*hw:(i*k+c)*hw], src[i*c*hw:(i+1)*c*hw])
	}
	if err := run(tg.vm); err != nil {
		return 0, err
	}
	if err := collectGrads(tg.net, tg.grads, tg.gradBuf); err != nil {
		return 0, fmt.Errorf("model.TrainGraph.Step: %w", err)
	}
	return float64(tg.loss.Value().Data().(float32)), nil
}

// collectGrads overwrites gradBuf (name → parameter-shaped tensor) with the
// gradient nodes' values, summing the views of a parameter that the graph
// binds more than once.
func collectGrads(nt *net, grads []*G.Node, gradBuf map[string]*tensor.Dense) error {
	for _, g := range gradBuf {
		clear(tensors.F32(g))
	}
	for i, bp := range nt.params {
		gv, ok := grads[i].Value().(*tensor.Dense)
		if !ok {
			return fmt.Errorf("gradient of %s is %T, want a tensor", bp.name, grads[i].Value())
		}
		dst := tensors.F32(gradBuf[bp.name])[bp.off:]
		for j, v := range tensors.F32(gv) {
			dst[j] += v
		}
	}
	return nil
}

// Grads returns the gradients of the last Step, name → tensor in PyTorch
// shapes. The tensors are reused by the next Step.
func (tg *TrainGraph) Grads() map[string]*tensor.Dense { return tg.gradBuf }

// A LossFunc receives the network output of a training forward pass
// (N×C_out×H×W float32, C_out = C or 2C with learn_sigma, ε channels first)
// and returns the batch loss and its gradient with respect to that output
// (a float32 tensor of the same shape). It must not keep or modify out, and
// must not call methods of the UNet being trained (its lock is held).
type LossFunc func(out *tensor.Dense) (loss float64, dout *tensor.Dense, err error)

// LossGraph is a training graph of one batch size whose loss is computed
// outside the graph: forward with dropout, a LossFunc on the whole output,
// and the back-propagation of the LossFunc's dL/dout to every parameter, in
// one run of the graph. It trains any objective of the output, the hybrid
// loss of a network that learns its variance included. Like TrainGraph it
// reads the UNet's live parameters.
type LossGraph struct {
	u       *UNet
	net     *net
	op      *extLossOp
	grads   []*G.Node // one per net.params entry
	vm      G.VM
	gradBuf map[string]*tensor.Dense
}

// NewLossGraph builds the external-loss training graph for batch size n.
// Dropout masks (model.dropout > 0) are drawn from rng exactly as
// NewTrainGraph's are: reseeding rng before each Step gives the masks of a
// TrainGraph reseeded with the same seed. rng may be nil when dropout is 0.
// The graph starts in training mode (dropout on).
func (u *UNet) NewLossGraph(n int, rng *rand.Rand) (*LossGraph, error) {
	u.lock()
	defer u.mu.Unlock()
	drop, err := u.trainDropout(rng)
	if err != nil {
		return nil, fmt.Errorf("model.NewLossGraph: %w", err)
	}
	lg := &LossGraph{u: u}
	nt, vm, err := u.compiled(n, drop, true, func(nt *net) (*G.ExprGraph, error) {
		lg.op = &extLossOp{shape: nt.out.Shape().Clone()}
		loss, err := G.ApplyOp(lg.op, nt.out)
		if err != nil {
			return nil, fmt.Errorf("model: building the external loss: %w", err)
		}
		if lg.grads, err = G.Grad(loss, paramNodes(nt)...); err != nil {
			return nil, fmt.Errorf("model: building the training gradients: %w", err)
		}
		nt.keep = append(G.Nodes{loss}, lg.grads...)
		return nt.g, nil
	})
	if err != nil {
		return nil, err
	}
	lg.net, lg.vm = nt, vm
	lg.gradBuf = make(map[string]*tensor.Dense, len(u.params))
	for name, p := range u.params {
		lg.gradBuf[name] = tensors.Like(p)
	}
	return lg, nil
}

// Batch is the batch size the graph was built for.
func (lg *LossGraph) Batch() int { return lg.net.batch }

// SetTraining turns dropout on (the default) or off; with it off the
// network computes what Forward computes.
func (lg *LossGraph) SetTraining(on bool) {
	if lg.net.drop != nil {
		lg.net.drop.SetTraining(on)
	}
}

// Step runs the network on x_t (N×C×H×W) at timesteps t, calls loss on its
// output (N×C_out×H×W), back-propagates the returned dL/dout and returns
// the loss; Grads then holds ∂loss/∂θ (overwritten, not accumulated). An
// error from loss is returned wrapped, and Grads is then undefined.
func (lg *LossGraph) Step(xt *tensor.Dense, t []int, loss LossFunc) (float64, error) {
	u := lg.u
	if loss == nil {
		return 0, fmt.Errorf("model.LossGraph.Step: nil loss function")
	}
	n, err := u.checkInput(xt, t)
	if err != nil {
		return 0, fmt.Errorf("model.LossGraph.Step: %w", err)
	}
	if n != lg.net.batch {
		return 0, fmt.Errorf("model.LossGraph.Step: batch of %d, the graph was built for %d", n, lg.net.batch)
	}
	u.lock()
	defer u.mu.Unlock()
	if err := lg.net.setInputs(xt, t); err != nil {
		return 0, fmt.Errorf("model.LossGraph.Step: %w", err)
	}
	lg.op.fn, lg.op.called, lg.op.err = loss, false, nil
	defer func() { lg.op.fn, lg.op.err = nil, nil }()
	if err := run(lg.vm); err != nil {
		if lg.op.err != nil {
			// Gorgonia's wrapping hides the cause from errors.Is.
			return 0, fmt.Errorf("model.LossGraph.Step: %w", lg.op.err)
		}
		return 0, fmt.Errorf("model.LossGraph.Step: %w", err)
	}
	if !lg.op.called {
		return 0, fmt.Errorf("model.LossGraph.Step: internal error: the loss function was not called")
	}
	if err := collectGrads(lg.net, lg.grads, lg.gradBuf); err != nil {
		return 0, fmt.Errorf("model.LossGraph.Step: %w", err)
	}
	return lg.op.loss, nil
}

// Grads returns the gradients of the last Step, name → tensor in PyTorch
// shapes. The tensors are reused by the next Step.
func (lg *LossGraph) Grads() map[string]*tensor.Dense { return lg.gradBuf }

// extLossOp is the graph's scalar loss: its forward calls the LossFunc on
// the network output and keeps dL/dout; its backward (extLossBwdOp) returns
// the kept dL/dout times the upstream gradient.
type extLossOp struct {
	shape  tensor.Shape // of the network output
	fn     LossFunc     // set for the duration of a Step
	called bool
	err    error // the last forward's error (loss function or dL/dout)
	loss   float64
	dout   []float32 // copy of the last dL/dout
}

func (o *extLossOp) Arity() int { return 1 }
func (o *extLossOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: len(o.shape), Of: a}, a)
}
func (o *extLossOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (o *extLossOp) ReturnsPtr() bool                               { return false }
func (o *extLossOp) CallsExtern() bool                              { return false }
func (o *extLossOp) OverwritesInput() int                           { return -1 }
func (o *extLossOp) String() string                                 { return fmt.Sprintf("ExternalLoss(%v %p)", o.shape, o) }
func (o *extLossOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, o.String()) }
func (o *extLossOp) Hashcode() uint32                               { return hashOf(o.String()) }

func (o *extLossOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != 1 {
		return nil, fmt.Errorf("%v: %d inputs, want 1", o, len(vs))
	}
	out, ok := vs[0].(*tensor.Dense)
	if !ok || out.Dtype() != tensor.Float32 || !out.Shape().Eq(o.shape) {
		return nil, fmt.Errorf("%v: network output is %T %v, want a float32 tensor of shape %v", o, vs[0], vs[0].Shape(), o.shape)
	}
	if o.fn == nil {
		return nil, fmt.Errorf("%v: no loss function set (run the graph through LossGraph.Step)", o)
	}
	loss, dout, err := o.fn(out)
	o.called = true
	if err != nil {
		o.err = fmt.Errorf("loss function: %w", err)
		return nil, o.err
	}
	if dout == nil || dout.Dtype() != tensor.Float32 || !dout.Shape().Eq(o.shape) {
		var got any = "nil"
		if dout != nil {
			got = fmt.Sprintf("%v %v", dout.Dtype(), dout.Shape())
		}
		o.err = fmt.Errorf("loss function returned dL/dout %v, want float32 of the output's shape %v", got, o.shape)
		return nil, o.err
	}
	if len(o.dout) != o.shape.TotalSize() {
		o.dout = make([]float32, o.shape.TotalSize())
	}
	copy(o.dout, tensors.F32(dout))
	o.loss = loss
	return tensor.New(tensor.FromScalar(float32(loss))), nil
}

func (o *extLossOp) DiffWRT(int) []bool { return []bool{true} }

func (o *extLossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	// output is an input of the backward op so that it runs after the
	// forward op has stored dL/dout.
	d, err := G.ApplyOp(&extLossBwdOp{fwd: o}, output, grad)
	if err != nil {
		return nil, fmt.Errorf("model: external loss backward: %w", err)
	}
	return G.Nodes{d}, nil
}

// extLossBwdOp maps (loss, upstream gradient g) to g·dL/dout.
type extLossBwdOp struct {
	fwd *extLossOp
	out *tensor.Dense // owned output buffer
}

func (o *extLossBwdOp) Arity() int { return 2 }
func (o *extLossBwdOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, G.TensorType{Dims: len(o.fwd.shape), Of: a})
}
func (o *extLossBwdOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.fwd.shape.Clone(), nil
}
func (o *extLossBwdOp) ReturnsPtr() bool     { return false }
func (o *extLossBwdOp) CallsExtern() bool    { return false }
func (o *extLossBwdOp) OverwritesInput() int { return -1 }
func (o *extLossBwdOp) String() string {
	return fmt.Sprintf("ExternalLossGrad(%v %p)", o.fwd.shape, o.fwd)
}
func (o *extLossBwdOp) WriteHash(h hash.Hash) { fmt.Fprint(h, o.String()) }
func (o *extLossBwdOp) Hashcode() uint32      { return hashOf(o.String()) }

func (o *extLossBwdOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != 2 {
		return nil, fmt.Errorf("%v: %d inputs, want 2", o, len(vs))
	}
	var g float32
	switch d := vs[1].Data().(type) {
	case float32:
		g = d
	case []float32:
		if len(d) != 1 {
			return nil, fmt.Errorf("%v: upstream gradient has %d values, want 1", o, len(d))
		}
		g = d[0]
	default:
		return nil, fmt.Errorf("%v: upstream gradient is %T, want a float32 scalar", o, d)
	}
	if len(o.fwd.dout) != o.fwd.shape.TotalSize() {
		return nil, fmt.Errorf("%v: internal error: backward before forward", o)
	}
	if o.out == nil {
		o.out = tensor.New(tensor.WithShape(o.fwd.shape...), tensor.Of(tensor.Float32))
	}
	dst := tensors.F32(o.out)
	for i, v := range o.fwd.dout {
		dst[i] = g * v
	}
	return o.out, nil
}

// hashOf is the FNV-1a hash of an op description.
func hashOf(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// trainDropout returns the dropout of a training graph, in training mode,
// drawing its masks from rng; nil when model.dropout is 0.
func (u *UNet) trainDropout(rng *rand.Rand) (*nn.Dropout, error) {
	p := u.a.cfg.Dropout
	if p <= 0 {
		return nil, nil
	}
	drop, err := nn.NewDropout(p, rng)
	if err != nil {
		return nil, err
	}
	drop.SetTraining(true)
	return drop, nil
}

// paramNodes returns the graph's parameter nodes in net.params order.
func paramNodes(nt *net) G.Nodes {
	wrt := make(G.Nodes, len(nt.params))
	for i, p := range nt.params {
		wrt[i] = p.node
	}
	return wrt
}
