package train

import (
	"fmt"
	"math"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// HybridLambda is λ of improved DDPM's hybrid loss L_simple + λ·L_vlb.
const HybridLambda = 0.001

// Objective is the training loss of a diffusion model: the mean squared
// error between the network's prediction and its target (ε, x0 or v), plus,
// for a network that learns its variance, λ·T times the variational-bound
// term L_t of each sample in bits per dimension with the gradient stopped
// at the predicted mean (improved DDPM's hybrid loss; with T = 1000 and
// λ = 0.001 this is guided-diffusion's mse + vb).
type Objective struct {
	// Sched is the noise schedule (unrespaced: index = timestep).
	Sched *diffusion.Schedule
	// Prediction is "eps", "x0" or "v".
	Prediction string
	// LearnSigma says the network outputs 2C channels: the prediction,
	// then v ∈ [−1, 1] interpolating log σ² between log β̃_t and log β_t
	// (guided-diffusion's learned_range).
	LearnSigma bool
	// Lambda weighs L_vlb in the hybrid loss (HybridLambda by default).
	Lambda float64
	// Weights, when not nil, holds one weight per timestep (index = t) by
	// which each image's squared error is multiplied (see LossWeights); nil
	// is L_simple.
	Weights []float64
}

// Terms are the parts of one batch's loss, each averaged over the batch.
type Terms struct {
	// Loss is the total: Weighted + VB.
	Loss float64
	// MSE is the mean squared error of the prediction (L_simple), unweighted
	// so that runs with different weightings compare.
	MSE float64
	// Weighted is the batch mean of each image's squared error times its
	// timestep's weight: the MSE term the gradient follows (MSE without
	// Objective.Weights).
	Weighted float64
	// VB is λ·T·L_t in bits per dimension (0 without LearnSigma).
	VB float64
}

// NewObjective returns the objective of prediction ("eps", "x0" or "v")
// over sched, hybrid with λ = HybridLambda when learnSigma is set.
func NewObjective(sched *diffusion.Schedule, prediction string, learnSigma bool) (*Objective, error) {
	if sched == nil {
		return nil, fmt.Errorf("train: objective needs a schedule, got nil")
	}
	ok := false
	for _, p := range diffusion.Predictions() {
		ok = ok || p == prediction
	}
	if !ok {
		return nil, fmt.Errorf("train: prediction %q, want one of %v", prediction, diffusion.Predictions())
	}
	return &Objective{Sched: sched, Prediction: prediction, LearnSigma: learnSigma, Lambda: HybridLambda}, nil
}

// LossWeights returns the per-timestep weights of a weighting scheme
// (config.WeightUniform, WeightMinSNR or WeightP2; "" is uniform) for a
// network predicting prediction, or nil for uniform. Both schemes are
// defined on a reference loss and converted through the identities
// ‖ε̂−ε‖² = SNR·‖x̂0−x0‖² and ‖v̂−v‖² = (1+SNR)·‖x̂0−x0‖², SNR_t = ᾱ_t/(1−ᾱ_t):
//
//   - min_snr (Hang et al. 2023) weighs the x0 error by min(SNR_t, γ):
//     min(SNR, γ)/SNR on an ε-, min(SNR, γ) on an x0- and
//     min(SNR, γ)/(SNR+1) on a v-prediction;
//   - p2 (Choi et al. 2022) weighs the ε error by 1/(k + SNR_t)^γ: that, times
//     SNR on an x0- and times SNR/(SNR+1) on a v-prediction.
//
// γ = 0 takes the paper's value (min_snr 5, p2 1). Both down-weight the
// low-noise steps that refine details relative to the high-noise ones
// that form the content.
func LossWeights(sched *diffusion.Schedule, prediction, scheme string, gamma, k float64) ([]float64, error) {
	if sched == nil {
		return nil, fmt.Errorf("train: loss weights need a schedule, got nil")
	}
	var toEps func(snr float64) float64 // the scheme's weight on the ε error
	switch scheme {
	case "", config.WeightUniform:
		return nil, nil
	case config.WeightMinSNR:
		if gamma == 0 {
			gamma = 5
		}
		toEps = func(snr float64) float64 { return math.Min(snr, gamma) / snr }
	case config.WeightP2:
		if gamma == 0 {
			gamma = 1
		}
		toEps = func(snr float64) float64 { return math.Pow(k+snr, -gamma) }
	default:
		return nil, fmt.Errorf("train: train.loss_weight %q, want %q, %q or %q", scheme, config.WeightUniform, config.WeightMinSNR, config.WeightP2)
	}
	if !(gamma > 0) || math.IsInf(gamma, 0) {
		return nil, fmt.Errorf("train: loss weight %s with train.loss_weight_gamma %g, want γ > 0 and finite (0 for the paper value)", scheme, gamma)
	}
	// k enters only p2; min_snr ignores it, as config validation does.
	if scheme == config.WeightP2 && (!(k >= 0) || math.IsInf(k, 0)) {
		return nil, fmt.Errorf("train: loss weight %s with train.loss_weight_k %g, want k >= 0 and finite", scheme, k)
	}
	w := make([]float64, sched.Len())
	for t := range w {
		ab := sched.AlphaBar(t)
		snr := ab / (1 - ab)
		we := toEps(snr)
		switch prediction {
		case "eps":
			w[t] = we
		case "x0":
			w[t] = we * snr
		case "v":
			w[t] = we * snr / (snr + 1)
		default:
			return nil, fmt.Errorf("train: prediction %q, want one of %v", prediction, diffusion.Predictions())
		}
		if math.IsNaN(w[t]) || math.IsInf(w[t], 0) {
			return nil, fmt.Errorf("train: loss weight %s at timestep %d (SNR %g) is %g, want a finite weight", scheme, t, snr, w[t])
		}
	}
	return w, nil
}

// Target returns what the network should output for x_t = QSample(x0, t,
// noise): the noise for "eps", x0 for "x0", v = √ᾱ_t·ε − √(1−ᾱ_t)·x0 for "v".
func (o *Objective) Target(x0, noise *tensor.Dense, t []int) (*tensor.Dense, error) {
	switch o.Prediction {
	case "eps":
		if err := tensors.SameShape("x0", x0, "noise", noise); err != nil {
			return nil, fmt.Errorf("train: target: %w", err)
		}
		return noise, nil
	case "x0":
		if err := tensors.SameShape("x0", x0, "noise", noise); err != nil {
			return nil, fmt.Errorf("train: target: %w", err)
		}
		return x0, nil
	case "v":
		v, err := o.Sched.VFromEps(x0, t, noise)
		if err != nil {
			return nil, fmt.Errorf("train: target: %w", err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("train: prediction %q, want one of %v", o.Prediction, diffusion.Predictions())
}

// predX0 converts a prediction (in o.Prediction's parameterisation) into x̂0.
func (o *Objective) predX0(xt, pred *tensor.Dense, t []int) (*tensor.Dense, error) {
	switch o.Prediction {
	case "eps":
		return o.Sched.X0FromEps(xt, t, pred)
	case "x0":
		return pred, nil
	case "v":
		return o.Sched.X0FromV(xt, t, pred)
	}
	return nil, fmt.Errorf("prediction %q, want one of %v", o.Prediction, diffusion.Predictions())
}

// Loss returns the loss terms of a batch and the gradient of Terms.Loss
// with respect to out, the network output for x_t = QSample(x0, t, noise):
// N×C×H×W, or N×2C×H×W with LearnSigma.
func (o *Objective) Loss(x0, xt, noise *tensor.Dense, t []int, out *tensor.Dense) (Terms, *tensor.Dense, error) {
	n, c, h, w, err := tensors.NCHW("x0", x0)
	if err != nil {
		return Terms{}, nil, fmt.Errorf("train: loss: %w", err)
	}
	if err := tensors.SameShape("x0", x0, "xt", xt); err != nil {
		return Terms{}, nil, fmt.Errorf("train: loss: %w", err)
	}
	wantC := c
	if o.LearnSigma {
		wantC = 2 * c
	}
	on, oc, oh, ow, err := tensors.NCHW("network output", out)
	if err != nil {
		return Terms{}, nil, fmt.Errorf("train: loss: %w", err)
	}
	if on != n || oc != wantC || oh != h || ow != w {
		return Terms{}, nil, fmt.Errorf("train: loss: network output shape %v, want [%d %d %d %d] (learn_sigma %v)",
			out.Shape(), n, wantC, h, w, o.LearnSigma)
	}
	if len(t) != n {
		return Terms{}, nil, fmt.Errorf("train: loss: %d timesteps for a batch of %d, want one per image", len(t), n)
	}
	for k, ti := range t {
		if ti < 0 || ti >= o.Sched.Len() {
			return Terms{}, nil, fmt.Errorf("train: loss: timestep t[%d] = %d, want 0..%d", k, ti, o.Sched.Len()-1)
		}
	}
	if o.Weights != nil && len(o.Weights) != o.Sched.Len() {
		return Terms{}, nil, fmt.Errorf("train: loss: %d timestep weights for a schedule of %d steps, want one per step", len(o.Weights), o.Sched.Len())
	}
	target, err := o.Target(x0, noise, t)
	if err != nil {
		return Terms{}, nil, err
	}
	d := c * h * w
	y, tg := tensors.F32(out), tensors.F32(target)
	dout := tensors.Like(out)
	g := tensors.F32(dout)
	var mse, weighted float64
	for k := 0; k < n; k++ {
		wk := 1.0
		if o.Weights != nil {
			wk = o.Weights[t[k]]
		}
		scale := 2 * wk / float64(n*d)
		var se float64
		for j := 0; j < d; j++ {
			r := float64(y[k*oc*h*w+j]) - float64(tg[k*d+j])
			se += r * r
			g[k*oc*h*w+j] = float32(scale * r)
		}
		mse += se
		weighted += wk * se
	}
	terms := Terms{MSE: mse / float64(n*d), Weighted: weighted / float64(n*d)}
	if o.LearnSigma {
		vb, err := o.vb(x0, xt, t, out, g)
		if err != nil {
			return Terms{}, nil, fmt.Errorf("train: loss: %w", err)
		}
		terms.VB = vb
	}
	terms.Loss = terms.Weighted + terms.VB
	return terms, dout, nil
}

// vb returns the batch mean of λ·T·L_t (bits per dimension) for a
// learned-range output and writes its gradient with respect to the variance
// channels into g (the gradient of the mean channels is stopped).
func (o *Objective) vb(x0, xt *tensor.Dense, t []int, out *tensor.Dense, g []float32) (float64, error) {
	n, c, h, w, _ := tensors.NCHW("x0", x0)
	d := c * h * w
	y := tensors.F32(out)
	pred := tensors.New(n, c, h, w)
	p := tensors.F32(pred)
	for k := 0; k < n; k++ {
		copy(p[k*d:(k+1)*d], y[2*k*d:2*k*d+d])
	}
	x0hat, err := o.predX0(xt, pred, t)
	if err != nil {
		return 0, err
	}
	modelMean, err := o.Sched.PosteriorMean(x0hat, xt, t)
	if err != nil {
		return 0, err
	}
	trueMean, err := o.Sched.PosteriorMean(x0, xt, t)
	if err != nil {
		return 0, err
	}
	mm, tm, x := tensors.F32(modelMean), tensors.F32(trueMean), tensors.F32(x0)
	weight := o.Lambda * float64(o.Sched.Len()) / (float64(d) * math.Ln2)
	var total float64
	for k := 0; k < n; k++ {
		ti := t[k]
		minLog := o.Sched.PosteriorLogVarianceClipped(ti)
		maxLog := math.Log(o.Sched.Beta(ti))
		var sum float64
		for j := 0; j < d; j++ {
			v := float64(y[2*k*d+d+j])
			frac := (v + 1) / 2
			logVar := frac*maxLog + (1-frac)*minLog
			var term, dLogVar float64
			if ti == 0 {
				lp, dls := DiscretizedGaussianLogLikelihood(float64(x[k*d+j]), float64(mm[k*d+j]), 0.5*logVar)
				term, dLogVar = -lp, -0.5*dls
			} else {
				term = NormalKL(float64(tm[k*d+j]), minLog, float64(mm[k*d+j]), logVar)
				dLogVar = normalKLDLogVar2(float64(tm[k*d+j]), minLog, float64(mm[k*d+j]), logVar)
			}
			sum += term
			g[2*k*d+d+j] = float32(weight / float64(n) * dLogVar * 0.5 * (maxLog - minLog))
		}
		total += weight * sum
	}
	return total / float64(n), nil
}
