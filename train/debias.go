package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strings"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
)

// An EMA started at the initial weights θ0 (as NewEMA starts it) keeps a
// share of them: after t updates with decays d_1..d_t,
//
//	EMA_t = (∏ d_k) θ0 + Σ_k (1 − d_k) (∏_{j>k} d_j) θ_k,
//
// and the weights on θ_1..θ_t sum to 1 − ∏ d_k. Without a warm-up, at decay
// 0.9995 that share is 22 % after 3,000 steps, 5 % after 6,000 and 0.25 %
// after 12,000: the face recipe's EMA sample grids stayed noise until about
// step 7,000 while the raw weights drew faces at 4,000. Removing the share
// and renormalising, (EMA_t − s θ0)/(1 − s) with s = ∏ d_k, gives the
// exponential average of the trained weights alone: the bias correction
// Adam applies to its moments (Kingma & Ba 2015, §3), with θ0 in place of
// zero. It needs θ0, which a fresh native run draws from train.seed's init
// stream (InitialWeights).

// EMAInitShare is the share ∏ d_k of the initial weights in an EMA after
// steps updates under the run's train settings (ema_decay, ema_warmup).
func EMAInitShare(tc config.Train, steps int) float64 {
	e := EMA{Decay: tc.EMADecay, Warmup: tc.EMAWarmup}
	share := 1.0
	for k := range steps {
		share *= e.DecayAt(k)
		if share == 0 {
			break
		}
	}
	return share
}

// InitialWeights rebuilds the weights a fresh native run of cfg starts from:
// model.New on the generator of InitSeed(train.seed), as Run builds them.
func InitialWeights(cfg *config.Config) (map[string]*tensor.Dense, error) {
	u, err := model.New(cfg.Model, rand.New(rand.NewSource(InitSeed(cfg.Train.Seed))))
	if err != nil {
		return nil, fmt.Errorf("train: initial weights: %w", err)
	}
	return u.Params(), nil
}

// DebiasedEMA returns (EMA − s θ0)/(1 − s) for the EMA of checkpoint c,
// with s = EMAInitShare at c's step and θ0 = init (InitialWeights of c's run
// config for a fresh native run), and s. At step 0 the EMA is θ0 itself and
// there is nothing to average: an error.
func DebiasedEMA(c *Checkpoint, init map[string]*tensor.Dense) (map[string]*tensor.Dense, float64, error) {
	s := EMAInitShare(c.Config.Train, c.Step)
	if c.Step <= 0 || s >= 1 {
		return nil, s, fmt.Errorf("train: a debiased EMA needs at least one update with decay < 1 (step %d, share of the initial weights %g)", c.Step, s)
	}
	out := map[string]*tensor.Dense{}
	for _, name := range c.Names {
		e, z := c.EMA[name], init[name]
		if z == nil || !z.Shape().Eq(e.Shape()) {
			return nil, s, fmt.Errorf("train: initial weights: no tensor %q of shape %v (the run config's model does not match its checkpoint)", name, e.Shape())
		}
		ev, zv := tensors.F32(e), tensors.F32(z)
		d := tensors.New(e.Shape()...)
		dv := tensors.F32(d)
		for i := range ev {
			dv[i] = float32((float64(ev[i]) - s*float64(zv[i])) / (1 - s))
		}
		out[name] = d
	}
	return out, s, nil
}

// CheckFreshNativeRun checks, from the run log of the run folder that holds
// a checkpoint (its checkpoints/ folder's parent), that the run started
// from train.seed's initial weights: its first run record is a fresh start
// (step 0, no --init) on the native engine with the init seed InitSeed of
// its seed. Only then are InitialWeights the θ0 its EMA started from.
func CheckFreshNativeRun(checkpoint string) error {
	runDir := filepath.Dir(filepath.Dir(checkpoint))
	logPath := filepath.Join(runDir, LogFile)
	recs, err := readLog(logPath)
	if err != nil {
		return fmt.Errorf("train: %s: %w", logPath, err)
	}
	for _, r := range recs {
		if r.Type != "run" {
			continue
		}
		switch {
		case r.Step != 0:
			return fmt.Errorf("train: %s: its first run record is at step %d, not a fresh start: the initial weights cannot be told", logPath, r.Step)
		case r.Init != "":
			return fmt.Errorf("train: %s: the run started from --init %s, not from train.seed's initial weights", logPath, r.Init)
		case strings.Contains(r.PrecisionReason, "torch engine"):
			return fmt.Errorf("train: %s: the run trained on the torch engine, whose initial weights are libtorch's, not InitialWeights", logPath)
		case r.Seed == nil || r.InitSeed == nil || *r.InitSeed != InitSeed(*r.Seed):
			return fmt.Errorf("train: %s: its run record lacks the seed and init seed, or they disagree with the seed rule", logPath)
		}
		return nil
	}
	return errors.New("train: " + logPath + ": no run record: the initial weights cannot be told")
}

// RelDistance is ‖a − b‖/‖b‖ over all the tensors of b (by name), for
// reports of how far averaged weights sit from the raw ones.
func RelDistance(a, b map[string]*tensor.Dense) float64 {
	var num, den float64
	for n, tb := range b {
		x, y := tensors.F32(a[n]), tensors.F32(tb)
		for i := range y {
			d := float64(x[i]) - float64(y[i])
			num += d * d
			den += float64(y[i]) * float64(y[i])
		}
	}
	return math.Sqrt(num / den)
}

// ZeroModuleNormRatio is ‖EMA‖/‖raw‖ over the parameters of c's network that
// start at zero (model.ParamSpec.ZeroModule: the residual and attention
// blocks' output projections and the final conv), with how many tensors
// that is. Those weights grow from zero through training, and an EMA of a
// growing weight lags it: a ratio below 1 says by how much the averaged
// network's residual branches are shrunk (their θ0 is zero, so this is lag,
// not a share of θ0). In the face recipe at step 9,500 it was 0.931 while
// all weights together were 0.994 (the EMA 3.3 % from the raw weights);
// the MNIST cosine run at step 29,500, whose EMA beats its raw weights,
// had 0.973 with the EMA 6.8 % away.
func ZeroModuleNormRatio(c *Checkpoint) (ratio float64, tensorsN int, err error) {
	specs, err := model.Specs(c.Config.Model)
	if err != nil {
		return 0, 0, fmt.Errorf("train: %w", err)
	}
	var ne, nr float64
	for _, ps := range specs {
		if !ps.ZeroModule() {
			continue
		}
		e, r := c.EMA[ps.Name], c.Params[ps.Name]
		if e == nil || r == nil {
			return 0, 0, fmt.Errorf("train: checkpoint has no EMA and raw tensor %q (its config's model does not match its weights)", ps.Name)
		}
		ev := tensors.F32(e)
		for i, v := range tensors.F32(r) {
			ne += float64(ev[i]) * float64(ev[i])
			nr += float64(v) * float64(v)
		}
		tensorsN++
	}
	if tensorsN == 0 || nr == 0 {
		return 0, tensorsN, errors.New("train: the network has no zero-initialised layer with trained weights")
	}
	return math.Sqrt(ne / nr), tensorsN, nil
}
