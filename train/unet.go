package train

import (
	"fmt"
	"math/rand"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/model"
	"gorgonia.org/tensor"
)

// UNet adapts a model.UNet and its training graph to MSETrainable.
type UNet struct {
	// Net is the network; its parameters are updated in place.
	Net   *model.UNet
	graph *model.TrainGraph
	drop  *rand.Rand // reseeded before every step: masks depend only on the step's seed
	names []string
}

// NewUNet builds the UNet of cfg.Model with parameters initialised from rng
// and its training graph for cfg.Train.BatchSize: a RunOptions.NewModel.
func NewUNet(cfg *config.Config, rng *rand.Rand) (Network, error) {
	u, err := model.New(cfg.Model, rng)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
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
	w := &UNet{Net: u, graph: g, drop: drop}
	for _, p := range u.ParamSpecs() {
		w.names = append(w.names, p.Name)
	}
	return w, nil
}

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
