package train

import "gorgonia.org/tensor"

// A Network is what the training loop sees of any network: named float32
// parameters that it updates in place, and their gradients. A Network must
// also be a Trainable (any objective) or an MSETrainable (objectives without
// a learned variance); Run checks which.
//
// Param must return the same live tensor on every call (the one the network
// computes with), so that writing into its backing slice changes the network.
type Network interface {
	// ParamNames lists the parameter names in a fixed order (the order in
	// which gradients are reduced, which keeps runs bit-reproducible).
	ParamNames() []string
	// Param returns the live parameter tensor of the given name.
	Param(name string) *tensor.Dense
	// Grad returns the gradient of the last training pass for the named
	// parameter, with the parameter's shape.
	Grad(name string) *tensor.Dense
}

// A LossFunc receives the output of a training forward pass (N×C_out×H×W
// float32) and returns the batch loss and its gradient with respect to that
// output (same shape as out). It must not keep or modify out.
type LossFunc func(out *tensor.Dense) (loss float64, dout *tensor.Dense, err error)

// A Trainable is a Network that back-propagates any loss of its output: the
// general path, which the hybrid loss of a network that learns its variance
// needs.
type Trainable interface {
	Network
	// LossGrad runs the network in training mode on x_t (N×C×H×W float32)
	// at integer timesteps t (one per sample), with dropout masks that
	// depend only on dropoutSeed; calls loss on the output (N×C_out×H×W,
	// C_out = C, or 2C for a network that learns its variance, mean
	// channels first); back-propagates the returned dout; and leaves
	// ∂loss/∂θ in Grad(name) for every parameter, overwriting (not
	// accumulating) the previous pass's gradients. It returns the loss.
	LossGrad(xt *tensor.Dense, t []int, dropoutSeed int64, loss LossFunc) (float64, error)
}

// An MSETrainable is a Network whose own graph computes L_simple: the mean
// over the batch and the C prediction channels of (out − target)². It
// trains ε-, x0- and v-prediction (the loop passes the matching target) but
// not a learned variance.
type MSETrainable interface {
	Network
	// MSEGrad runs the network in training mode on x_t at timesteps t with
	// dropout masks that depend only on dropoutSeed, and returns
	// mean((out[:, :C] − target)²), leaving its parameter gradients in
	// Grad (overwritten, not accumulated).
	MSEGrad(xt *tensor.Dense, t []int, target *tensor.Dense, dropoutSeed int64) (float64, error)
}
