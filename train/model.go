package train

import "gorgonia.org/tensor"

// A LossFunc receives the output of a training forward pass (N×C_out×H×W
// float32) and returns the batch loss and its gradient with respect to that
// output (same shape as out). It must not keep or modify out.
type LossFunc func(out *tensor.Dense) (loss float64, dout *tensor.Dense, err error)

// A Trainable is a network whose parameters the training loop updates.
//
// Parameters are float32 tensors that the loop updates in place: Param must
// return the same live tensor on every call (the one the network computes
// with), so that writing into its backing slice changes the network.
type Trainable interface {
	// ParamNames lists the parameter names in a fixed order (the order in
	// which gradients are reduced, which keeps runs bit-reproducible).
	ParamNames() []string
	// Param returns the live parameter tensor of the given name.
	Param(name string) *tensor.Dense
	// LossGrad runs the network in training mode on x_t (N×C×H×W float32)
	// at integer timesteps t (one per sample), with dropout masks drawn
	// from a generator seeded by dropoutSeed; calls loss on the output
	// (N×C_out×H×W, C_out = C, or 2C for a network that learns its
	// variance, mean channels first); back-propagates the returned dout;
	// and leaves ∂loss/∂θ in Grad(name) for every parameter, overwriting
	// (not accumulating) the previous step's gradients. It returns the loss.
	LossGrad(xt *tensor.Dense, t []int, dropoutSeed int64, loss LossFunc) (float64, error)
	// Grad returns the gradient of the last LossGrad for the named
	// parameter, with the parameter's shape.
	Grad(name string) *tensor.Dense
}
