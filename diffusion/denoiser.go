package diffusion

import "gorgonia.org/tensor"

// Denoiser is what samplers and solvers see of a trained network, whatever
// engine runs it (the native Gorgonia UNet, libtorch, or a closed-form
// denoiser in tests).
//
// Images are N×C×H×W float32 in [-1, 1]; t holds one integer timestep in
// 0..T−1 per batch element.
type Denoiser interface {
	// Eps predicts the noise ε in x_t at timesteps t.
	Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error)
	// EpsVJP returns ε(x_t, t) and vᵀ ∂ε/∂x_t (reverse mode through the
	// network), what DPS needs for ∇_{x_t} of a loss on x̂0(x_t).
	EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (eps, vjp *tensor.Dense, err error)
}
