package train

import (
	"fmt"
	"math/rand"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/nn"
	"gorgonia.org/tensor"
)

// UNet adapts a model.UNet and its training graph to MSETrainable.
type UNet struct {
	// Net is the network; its parameters are updated in place.
	Net   *model.UNet
	graph *model.TrainGraph
	drop  *rand.Rand // reseeded before every step: masks depend only on the step's seed
	names []string
	prec  nn.Precision // of the training graph, fixed when it was built
}

// NewUNet builds the UNet of cfg.Model with parameters initialised from rng
// and its training graph for cfg.Train.BatchSize, in the precision that
// engine.precision resolves to (nn.ResolvePrecision): a RunOptions.NewModel.
// With model.learn_sigma or a train.loss_weight other than uniform it is a
// LossUNet (a Trainable, for the hybrid or the weighted loss), otherwise a
// UNet (an MSETrainable, whose graph computes the MSE).
func NewUNet(cfg *config.Config, rng *rand.Rand) (Network, error) {
	u, err := model.New(cfg.Model, rng)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if err := setPrecision(u, cfg.Engine.Precision); err != nil {
		return nil, err
	}
	if lw := cfg.Train.LossWeight; cfg.Model.LearnSigma || (lw != "" && lw != config.WeightUniform) {
		return WrapUNetLoss(u, cfg.Train.BatchSize)
	}
	return WrapUNet(u, cfg.Train.BatchSize)
}

// WrapUNet returns u as an MSETrainable that trains batches of the given size.
func WrapUNet(u *model.UNet, batch int) (*UNet, error) {
	drop := rand.New(rand.NewSource(0))
	g, err := u.NewTrainGraph(batch, drop)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	w := &UNet{Net: u, graph: g, drop: drop, prec: u.Precision()}
	for _, p := range u.ParamSpecs() {
		w.names = append(w.names, p.Name)
	}
	return w, nil
}

// Precision is the arithmetic the training graph runs in (that of Net when
// WrapUNet built it).
func (w *UNet) Precision() nn.Precision { return w.prec }

// ParamNames lists the parameters in PyTorch's state-dict order.
func (w *UNet) ParamNames() []string { return append([]string(nil), w.names...) }

// Param returns the live parameter tensor.
func (w *UNet) Param(name string) *tensor.Dense { return w.Net.Params()[name] }

// Grad returns the gradient of the last MSEGrad.
func (w *UNet) Grad(name string) *tensor.Dense { return w.graph.Grads()[name] }

// MSEGrad runs one forward and backward pass of the training graph.
func (w *UNet) MSEGrad(xt *tensor.Dense, t []int, target *tensor.Dense, dropoutSeed int64) (float64, error) {
	w.drop.Seed(dropoutSeed)
	return w.graph.Step(xt, t, target)
}

// LossUNet adapts a model.UNet and its external-loss training graph
// (model.LossGraph) to Trainable: it back-propagates any loss of the whole
// output, the hybrid loss of a UNet that learns its variance included.
type LossUNet struct {
	// Net is the network; its parameters are updated in place.
	Net   *model.UNet
	graph *model.LossGraph
	drop  *rand.Rand // reseeded before every step: masks depend only on the step's seed
	names []string
	prec  nn.Precision // of the training graph, fixed when it was built
}

// WrapUNetLoss returns u as a Trainable that trains batches of the given
// size. Its dropout masks for a seed are those of WrapUNet's for the same
// seed.
func WrapUNetLoss(u *model.UNet, batch int) (*LossUNet, error) {
	drop := rand.New(rand.NewSource(0))
	g, err := u.NewLossGraph(batch, drop)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	w := &LossUNet{Net: u, graph: g, drop: drop, prec: u.Precision()}
	for _, p := range u.ParamSpecs() {
		w.names = append(w.names, p.Name)
	}
	return w, nil
}

// Precision is the arithmetic the training graph runs in (that of Net when
// WrapUNetLoss built it).
func (w *LossUNet) Precision() nn.Precision { return w.prec }

// ParamNames lists the parameters in PyTorch's state-dict order.
func (w *LossUNet) ParamNames() []string { return append([]string(nil), w.names...) }

// Param returns the live parameter tensor.
func (w *LossUNet) Param(name string) *tensor.Dense { return w.Net.Params()[name] }

// Grad returns the gradient of the last LossGrad.
func (w *LossUNet) Grad(name string) *tensor.Dense { return w.graph.Grads()[name] }

// LossGrad runs one forward pass, loss on the output, and one backward pass
// of the external-loss training graph.
func (w *LossUNet) LossGrad(xt *tensor.Dense, t []int, dropoutSeed int64, loss LossFunc) (float64, error) {
	w.drop.Seed(dropoutSeed)
	l, err := w.graph.Step(xt, t, model.LossFunc(loss))
	if err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	return l, nil
}

// setPrecision resolves a precision setting (config key engine.precision:
// auto, bf16 or fp32) and sets it on u, before any graph is built.
func setPrecision(u *model.UNet, setting string) error {
	p, _, err := nn.ResolvePrecision(setting)
	if err != nil {
		return fmt.Errorf("train: config key engine.precision: %w", err)
	}
	if err := u.SetPrecision(p); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}
