package model

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/nn"
	"github.com/diffinv/diffinv/tensors"
)

// TrainGraph is a training graph of one batch size: forward with dropout,
// the loss mean((ε̂ − ε)²) over the ε channels, and the gradient of the loss
// with respect to every parameter. It reads the UNet's live parameters, so
// an optimiser that updates Params() in place is seen by the next Step.
//
// With learn_sigma the variance channels get no gradient from this loss
// (guided-diffusion adds a variational bound term for them, not done here).
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
	u.mu.Lock()
	defer u.mu.Unlock()
	var drop *nn.Dropout
	if p := u.a.cfg.Dropout; p > 0 {
		var err error
		if drop, err = nn.NewDropout(p, rng); err != nil {
			return nil, fmt.Errorf("model.NewTrainGraph: %w", err)
		}
		drop.SetTraining(true)
	}
	nt, err := u.build(n, drop)
	if err != nil {
		return nil, err
	}
	shape := []int(nt.out.Shape().Clone())
	tg := &TrainGraph{u: u, net: nt}
	tg.target = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	target := G.NewTensor(nt.g, tensor.Float32, 4, G.WithShape(shape...), G.WithName("target"), G.WithValue(tg.target))
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
		mask := G.NewTensor(nt.g, tensor.Float32, 4, G.WithShape(shape...), G.WithName("eps_channels"), G.WithValue(mv))
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
	wrt := make(G.Nodes, len(nt.params))
	for i, p := range nt.params {
		wrt[i] = p.node
	}
	if tg.grads, err = G.Grad(tg.loss, wrt...); err != nil {
		return nil, fmt.Errorf("model: building the training gradients: %w", err)
	}
	tg.vm = G.NewTapeMachine(nt.g)
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
	u.mu.Lock()
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
	for _, g := range tg.gradBuf {
		clear(tensors.F32(g))
	}
	for i, bp := range tg.net.params {
		gv, ok := tg.grads[i].Value().(*tensor.Dense)
		if !ok {
			return 0, fmt.Errorf("model.TrainGraph.Step: gradient of %s is %T, want a tensor", bp.name, tg.grads[i].Value())
		}
		dst := tensors.F32(tg.gradBuf[bp.name])[bp.off:]
		for j, v := range tensors.F32(gv) {
			dst[j] += v
		}
	}
	return float64(tg.loss.Value().Data().(float32)), nil
}

// Grads returns the gradients of the last Step, name → tensor in PyTorch
// shapes. The tensors are reused by the next Step.
func (tg *TrainGraph) Grads() map[string]*tensor.Dense { return tg.gradBuf }
