package train

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/diffinv/diffinv/config"
)

// AdamConfig configures Adam and AdamW.
type AdamConfig struct {
	// Beta1 and Beta2 are the decay rates of the first and second moment
	// estimates (0.9 and 0.999 by default).
	Beta1, Beta2 float64
	// Eps is added to √v̂ in the denominator (1e-8 by default).
	Eps float64
	// WeightDecay is the weight decay coefficient; 0 disables it.
	WeightDecay float64
	// Decoupled selects AdamW (Loshchilov & Hutter): θ ← θ(1 − lr·wd) before
	// the Adam step. Otherwise the decay is an L2 term added to the
	// gradient, g ← g + wd·θ, as torch.optim.Adam does.
	Decoupled bool
}

// DefaultAdam returns β1 = 0.9, β2 = 0.999, ε = 1e-8, no weight decay.
func DefaultAdam() AdamConfig { return AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8} }

// Adam is the Adam / AdamW optimiser over float32 parameter slices, with
// bias-corrected moments (torch.optim.Adam and AdamW semantics). The moment
// estimates are float32 and the arithmetic of each element float64, so that
// saving and restoring the state (M, V, Step) is exact and a resumed run
// reproduces an uninterrupted one bit for bit.
type Adam struct {
	Config AdamConfig
	// Step is the number of updates taken so far (t of the bias correction).
	Step int
	// M and V are the first and second moment estimates, one slice per
	// parameter, in the order of the sizes given to NewAdam.
	M, V [][]float32
}

// NewAdam returns an optimiser for parameters of the given sizes (numbers
// of elements), with zero moments.
func NewAdam(cfg AdamConfig, sizes []int) (*Adam, error) {
	if !(cfg.Beta1 >= 0 && cfg.Beta1 < 1) || !(cfg.Beta2 >= 0 && cfg.Beta2 < 1) {
		return nil, fmt.Errorf("train: adam betas (%g, %g), want each in [0, 1)", cfg.Beta1, cfg.Beta2)
	}
	if !(cfg.Eps > 0) {
		return nil, fmt.Errorf("train: adam eps %g, want > 0", cfg.Eps)
	}
	if !(cfg.WeightDecay >= 0) {
		return nil, fmt.Errorf("train: weight decay %g, want >= 0", cfg.WeightDecay)
	}
	a := &Adam{Config: cfg, M: make([][]float32, len(sizes)), V: make([][]float32, len(sizes))}
	for i, n := range sizes {
		if n < 0 {
			return nil, fmt.Errorf("train: parameter %d has %d elements, want >= 0", i, n)
		}
		a.M[i] = make([]float32, n)
		a.V[i] = make([]float32, n)
	}
	return a, nil
}

// Update takes one step of learning rate lr: params[i] is updated in place
// from grads[i] (same lengths as the sizes given to NewAdam).
func (a *Adam) Update(lr float64, params, grads [][]float32) error {
	if len(params) != len(a.M) || len(grads) != len(a.M) {
		return fmt.Errorf("train: adam update with %d parameters and %d gradients, want %d of each", len(params), len(grads), len(a.M))
	}
	for i := range params {
		if len(params[i]) != len(a.M[i]) || len(grads[i]) != len(a.M[i]) {
			return fmt.Errorf("train: adam update: parameter %d has %d values and gradient %d, want %d",
				i, len(params[i]), len(grads[i]), len(a.M[i]))
		}
	}
	a.Step++
	c := a.Config
	bc1 := 1 - math.Pow(c.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(c.Beta2, float64(a.Step))
	decay := 1.0
	if c.Decoupled {
		decay = 1 - lr*c.WeightDecay
	}
	eachChunk(params, func(i, lo, hi int) {
		p, g, m, v := params[i], grads[i], a.M[i], a.V[i]
		for j := lo; j < hi; j++ {
			th := float64(p[j])
			gj := float64(g[j])
			if c.WeightDecay != 0 && !c.Decoupled {
				gj += c.WeightDecay * th
			}
			mj := float32(c.Beta1*float64(m[j]) + (1-c.Beta1)*gj)
			vj := float32(c.Beta2*float64(v[j]) + (1-c.Beta2)*gj*gj)
			m[j], v[j] = mj, vj
			mh := float64(mj) / bc1
			vh := float64(vj) / bc2
			p[j] = float32(th*decay - lr*mh/(math.Sqrt(vh)+c.Eps))
		}
	})
	return nil
}

// chunkSize is the number of values one worker of eachChunk takes at a time.
const chunkSize = 1 << 15

// eachChunk calls fn(i, lo, hi) for every chunk [lo, hi) of at most
// chunkSize values of every vals[i], spread over GOMAXPROCS goroutines.
// The optimiser's and the EMA's updates are elementwise, so they give the
// same numbers however the chunks are spread; in one goroutine they took
// about 3 % of an MNIST training step.
func eachChunk(vals [][]float32, fn func(i, lo, hi int)) {
	type chunk struct{ i, lo, hi int }
	var chunks []chunk
	for i, v := range vals {
		for lo := 0; lo < len(v); lo += chunkSize {
			chunks = append(chunks, chunk{i, lo, min(lo+chunkSize, len(v))})
		}
	}
	nw := min(runtime.GOMAXPROCS(0), len(chunks))
	if nw <= 1 {
		for _, c := range chunks {
			fn(c.i, c.lo, c.hi)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < nw; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := next.Add(1) - 1; k < int64(len(chunks)); k = next.Add(1) - 1 {
				c := chunks[k]
				fn(c.i, c.lo, c.hi)
			}
		}()
	}
	wg.Wait()
}

// WarmupLR returns the learning rate of step k (0-based): peak·(k+1)/warmup
// during the first warmup steps, then peak.
func WarmupLR(peak float64, warmup, k int) float64 {
	if warmup > 0 && k < warmup {
		return peak * float64(k+1) / float64(warmup)
	}
	return peak
}

// ScheduledLR returns the learning rate of step k (0-based) of a steps-long
// run: the warm-up of WarmupLR, then the peak ("constant", or "" for run
// configs written before train.lr_decay) or a half-cosine from the peak at the
// end of the warm-up to 0 after the last step ("cosine"). It depends on k
// alone, so a resumed run follows the same schedule.
func ScheduledLR(decay string, peak float64, warmup, steps, k int) (float64, error) {
	if warmup > 0 && k < warmup {
		return WarmupLR(peak, warmup, k), nil
	}
	switch decay {
	case "", config.LRConstant:
		return peak, nil
	case config.LRCosine:
		if steps <= warmup {
			return peak, nil
		}
		p := float64(k-warmup+1) / float64(steps-warmup)
		p = math.Min(math.Max(p, 0), 1)
		return peak * 0.5 * (1 + math.Cos(math.Pi*p)), nil
	default:
		return 0, fmt.Errorf("train.lr_decay %q, want %q or %q", decay, config.LRConstant, config.LRCosine)
	}
}

// GlobalNorm returns the L2 norm of all gradients together, ‖(g_1, …, g_n)‖,
// accumulated in float64 in a fixed order.
func GlobalNorm(grads [][]float32) float64 {
	var s float64
	for _, g := range grads {
		for _, x := range g {
			s += float64(x) * float64(x)
		}
	}
	return math.Sqrt(s)
}

// ClipGlobalNorm scales all gradients by maxNorm/(norm + 1e-6) when their
// global norm exceeds maxNorm (torch.nn.utils.clip_grad_norm_), and returns
// the norm before clipping. maxNorm ≤ 0 disables clipping.
func ClipGlobalNorm(grads [][]float32, maxNorm float64) float64 {
	norm := GlobalNorm(grads)
	if maxNorm > 0 && norm > maxNorm {
		s := maxNorm / (norm + 1e-6)
		for _, g := range grads {
			for j := range g {
				g[j] = float32(float64(g[j]) * s)
			}
		}
	}
	return norm
}

// EMA keeps the exponential moving average of parameters:
// ema ← decay·ema + (1 − decay)·θ after every optimiser step.
type EMA struct {
	// Decay is the weight of the old average.
	Decay float64
	// Warmup lowers the decay of the early updates (DecayAt).
	Warmup bool
	// Values holds the averaged parameters, one slice per parameter.
	Values [][]float32
}

// NewEMA starts an average at a copy of params.
func NewEMA(decay float64, params [][]float32) (*EMA, error) {
	if !(decay >= 0 && decay < 1) {
		return nil, fmt.Errorf("train: EMA decay %g, want in [0, 1)", decay)
	}
	e := &EMA{Decay: decay, Values: make([][]float32, len(params))}
	for i, p := range params {
		e.Values[i] = append([]float32(nil), p...)
	}
	return e, nil
}

// DecayAt is the decay of the update after k earlier ones: Decay, or with
// Warmup min(Decay, (1+k)/(10+k)) (0.1 for the first update, 0.5 after 8,
// 0.99 after 890).
func (e *EMA) DecayAt(k int) float64 {
	if !e.Warmup {
		return e.Decay
	}
	return min(e.Decay, float64(1+k)/float64(10+k))
}

// Update folds params into the average as the update after k earlier ones.
func (e *EMA) Update(params [][]float32, k int) error {
	d := e.DecayAt(k)
	if len(params) != len(e.Values) {
		return fmt.Errorf("train: EMA update with %d parameters, want %d", len(params), len(e.Values))
	}
	for i, p := range params {
		if len(p) != len(e.Values[i]) {
			return fmt.Errorf("train: EMA update: parameter %d has %d values, want %d", i, len(p), len(e.Values[i]))
		}
	}
	eachChunk(params, func(i, lo, hi int) {
		p, v := params[i], e.Values[i]
		for j := lo; j < hi; j++ {
			v[j] = float32(d*float64(v[j]) + (1-d)*float64(p[j]))
		}
	})
	return nil
}
