package train

import "math"

// This file holds the scalar pieces of the variational bound L_vlb of
// improved DDPM (Nichol & Dhariwal 2021), written as guided-diffusion's
// losses.py computes them, each with the derivative the hybrid loss needs.

// NormalKL returns KL(N(mean1, e^logVar1) ‖ N(mean2, e^logVar2)) in nats:
// ½(−1 + logVar2 − logVar1 + e^(logVar1−logVar2) + (mean1−mean2)² e^(−logVar2)).
func NormalKL(mean1, logVar1, mean2, logVar2 float64) float64 {
	d := mean1 - mean2
	return 0.5 * (-1 + logVar2 - logVar1 + math.Exp(logVar1-logVar2) + d*d*math.Exp(-logVar2))
}

// normalKLDLogVar2 returns ∂NormalKL/∂logVar2.
func normalKLDLogVar2(mean1, logVar1, mean2, logVar2 float64) float64 {
	d := mean1 - mean2
	return 0.5 * (1 - math.Exp(logVar1-logVar2) - d*d*math.Exp(-logVar2))
}

// cdfK is √(2/π), the scale of the tanh approximation of Φ.
var cdfK = math.Sqrt(2 / math.Pi)

// ApproxStdNormalCDF is the tanh approximation of the standard normal CDF
// that guided-diffusion uses: ½(1 + tanh(√(2/π)(x + 0.044715x³))).
func ApproxStdNormalCDF(x float64) float64 {
	return 0.5 * (1 + math.Tanh(cdfK*(x+0.044715*x*x*x)))
}

// approxStdNormalPDF is the derivative of ApproxStdNormalCDF.
func approxStdNormalPDF(x float64) float64 {
	th := math.Tanh(cdfK * (x + 0.044715*x*x*x))
	return 0.5 * (1 - th*th) * cdfK * (1 + 3*0.044715*x*x)
}

// discretizedFloor keeps log probabilities finite, as guided-diffusion's
// clamp(min=1e-12) does.
const discretizedFloor = 1e-12

// DiscretizedGaussianLogLikelihood returns the log probability that a
// Gaussian N(mean, e^(2·logScale)), discretized to the 256 pixel levels of
// [−1, 1] (bins of width 2/255 centred on the levels, the end bins reaching
// to ±∞), gives the level x, together with its derivative with respect to
// logScale. x must be a level (x ≥ 0.999 and x ≤ −0.999 select the end bins).
// This is L_0 of the variational bound, computed as guided-diffusion does
// (approximate CDF, probabilities clamped at 1e-12).
func DiscretizedGaussianLogLikelihood(x, mean, logScale float64) (logp, dLogScale float64) {
	c := x - mean
	inv := math.Exp(-logScale)
	plusIn := inv * (c + 1.0/255)
	minIn := inv * (c - 1.0/255)
	// ∂plusIn/∂logScale = −plusIn, likewise for minIn.
	switch {
	case x < -0.999:
		p := ApproxStdNormalCDF(plusIn)
		if p <= discretizedFloor {
			return math.Log(discretizedFloor), 0
		}
		return math.Log(p), approxStdNormalPDF(plusIn) * -plusIn / p
	case x > 0.999:
		q := 1 - ApproxStdNormalCDF(minIn)
		if q <= discretizedFloor {
			return math.Log(discretizedFloor), 0
		}
		return math.Log(q), -approxStdNormalPDF(minIn) * -minIn / q
	default:
		p := ApproxStdNormalCDF(plusIn) - ApproxStdNormalCDF(minIn)
		if p <= discretizedFloor {
			return math.Log(discretizedFloor), 0
		}
		return math.Log(p), (approxStdNormalPDF(plusIn)*-plusIn - approxStdNormalPDF(minIn)*-minIn) / p
	}
}
