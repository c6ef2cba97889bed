// Package bench measures diffinv's native engine side by side with the
// PyTorch reference (bench/pytorch) on the same model, weights, batch and
// thread count, in one run, and reports the ratios the engine is held to.
//
// Figures: train_step (forward, backward, Adam), eps (forward only) and
// eps_vjp (forward and vᵀ∂ε/∂x, the DPS step), each in float32 and in bf16
// mixed precision: diffinv's engine with nn.BF16 (n/a where
// nn.ResolvePrecision refuses bf16) and PyTorch's CPU autocast, PyTorch's
// figure being the faster of the NCHW and channels_last memory formats. Then
// the GFLOP/s of the model's heaviest convolution, forward, backward-data
// and backward-weights, against the sgemm peak and the bf16 peak (BF16Peak)
// measured on the same cores; the bytes allocated per train step; the peak
// resident memory of a train step in each engine; and a check that PyTorch
// computes diffinv's eps from the weights it loaded.
package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/blas"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/nn"
	"github.com/diffinv/diffinv/train"
)

// Figure names, in report order.
var FigureNames = []string{"train_step", "eps", "eps_vjp"}

// Precisions and PyTorch memory formats a run can time.
var (
	PrecisionNames = []string{"fp32", "bf16"}
	FormatNames    = []string{"nchw", "channels_last"}
)

// CheckTolerance bounds |eps_torch − eps_diffinv| on the weights check.
const CheckTolerance = 1e-4

// checkBatch is the weights check's batch.
const checkBatch = 2

// Options configure a UNet benchmark.
type Options struct {
	Label   string // what the report's header names (the config file)
	Batch   int    // images per call (64 in the protocol)
	Threads int    // cores for both engines (GOMAXPROCS and torch.set_num_threads)
	Iters   int    // timed iterations per figure (the median is reported)
	Warmup  int    // untimed iterations before timing
	Rounds  int    // alternating diffinv/torch rounds; the best median of each wins
	Python  string // python3 with torch; "" skips the PyTorch side
	Script  string // path of bench/pytorch/bench_unet.py
	Seed    int64
	// Precisions to time in both engines (PrecisionNames; nil: all).
	Precisions []string
	// Formats are PyTorch's memory formats (FormatNames; nil: all); each
	// PyTorch figure is the fastest of them.
	Formats []string
	// NoMemory skips the peak-memory figures (two short extra PyTorch runs).
	NoMemory bool
}

// Figure is one timed quantity on both engines, in milliseconds; 0 where it
// did not run.
type Figure struct {
	Name      string
	DiffinvMS float64 // diffinv fp32
	// Torch is PyTorch fp32, the faster of the memory formats; TorchFormat
	// names it.
	Torch       float64
	TorchFormat string
	// DiffinvBF16 is diffinv with nn.BF16 (0: n/a, see Result.BF16Err).
	DiffinvBF16 float64
	// TorchBF16 is PyTorch under bf16 CPU autocast, the faster format.
	TorchBF16       float64
	TorchBF16Format string
}

// TorchBest returns PyTorch's fastest figure over precisions and formats and
// says which ("bf16 channels_last"); 0, "" when PyTorch did not run.
func (f Figure) TorchBest() (float64, string) {
	ms, label := 0.0, ""
	if f.Torch > 0 {
		ms, label = f.Torch, "fp32 "+f.TorchFormat
	}
	if f.TorchBF16 > 0 && (ms == 0 || f.TorchBF16 < ms) {
		ms, label = f.TorchBF16, "bf16 "+f.TorchBF16Format
	}
	return ms, label
}

// Ratio formats num/den with two decimals, or "n/a" when either is not
// positive (did not run).
func Ratio(num, den float64) string {
	if num <= 0 || den <= 0 || math.IsInf(num, 0) || math.IsInf(den, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", num/den)
}

// Result is what Run measured.
type Result struct {
	Label      string
	Batch      int
	Precisions []string // as timed
	Figures    []Figure

	// BF16Err says why diffinv's bf16 figures are n/a ("" when they ran or
	// bf16 was not asked for); BF16Info is nn.ResolvePrecision's reason
	// when they ran.
	BF16Err, BF16Info string
	// TorchErrs holds, by "precision format", the errors of the PyTorch
	// combinations that failed.
	TorchErrs map[string]string

	// The heaviest 3×3 convolution: GFLOP/s by nn.ConvPass (forward,
	// backward-data, backward-weights), float32 and bf16 (ConvBF16Err says
	// why not), against the peaks measured in the same run.
	ConvShape      string
	ConvFP32       [3]float64
	ConvBF16       [3]float64
	ConvBF16Err    string
	SgemmGFLOPS    float64
	BF16PeakGFLOPS float64
	BF16PeakKernel string
	BF16PeakErr    string

	AllocPerStep uint64 // bytes allocated per steady-state fp32 train step
	// Peak resident memory in bytes by precision: this process's from just
	// before the engine builds its graphs in the first round to the end of
	// its train_step figure (absent: not measured), and PyTorch's
	// train_step alone (a separate process).
	DiffinvRSS map[string]uint64
	TorchRSS   map[string]uint64
	// CheckMaxAbs is max |eps_torch − eps_diffinv| on a batch of
	// CheckBatch (-1: not run).
	CheckMaxAbs float64
	CheckBatch  int

	Params        int
	BLAS          string
	TorchInfo     string
	TorchErr      error
	DiffinvThread int
}

// engine is one diffinv precision's timed functions. Its graphs are built
// by open and dropped by close, so that only one precision's graphs are in
// memory at a time (the CelebA 64 UNet's fp32 graphs at batch 16 take about
// 6 GB: both precisions' at once ran a 24 GB machine out of memory).
type engine struct {
	prec string
	figs map[string]func() error
	net  *model.UNet
	open func() error // builds figs
}

// close drops the engine's graphs (the next open builds them again) and
// returns their memory, the oneDNN convolutions' C buffers included (freed
// by finalizers, hence the collections).
func (e *engine) close() {
	e.figs = nil
	e.net.ReleaseGraphs()
	runtime.GC()
	runtime.GC()
}

// newEngine returns the train step (TrainGraph and Adam on net's own
// parameters), eps and eps_vjp of net on the given inputs, built by open.
func newEngine(prec string, net *model.UNet, x, v, target *tensor.Dense, t []int, seed int64) (*engine, error) {
	e := &engine{prec: prec, net: net}
	e.open = func() error {
		if e.figs != nil {
			return nil
		}
		f, err := engineFigures(net, x, v, target, t, seed)
		e.figs = f
		return err
	}
	return e, e.open()
}

func engineFigures(net *model.UNet, x, v, target *tensor.Dense, t []int, seed int64) (map[string]func() error, error) {
	tg, err := net.NewTrainGraph(len(t), rand.New(rand.NewSource(seed)))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(net.Params()))
	for name := range net.Params() {
		names = append(names, name)
	}
	sort.Strings(names)
	params := make([][]float32, len(names))
	grads := make([][]float32, len(names))
	sizes := make([]int, len(names))
	for i, name := range names {
		params[i] = tensors.F32(net.Params()[name])
		sizes[i] = len(params[i])
	}
	adam, err := train.NewAdam(train.DefaultAdam(), sizes)
	if err != nil {
		return nil, err
	}
	trainStep := func() error {
		if _, err := tg.Step(x, t, target); err != nil {
			return err
		}
		g := tg.Grads()
		for i, name := range names {
			grads[i] = tensors.F32(g[name])
		}
		return adam.Update(1e-4, params, grads)
	}
	return map[string]func() error{
		"train_step": trainStep,
		"eps":        func() error { _, err := net.Eps(x, t); return err },
		"eps_vjp":    func() error { _, _, err := net.EpsVJP(x, t, v); return err },
	}, nil
}

// normalise checks a list against the allowed values and returns it, or
// all of them for nil.
func normalise(what string, list, allowed []string) ([]string, error) {
	if len(list) == 0 {
		return slices.Clone(allowed), nil
	}
	var out []string
	for _, s := range list {
		if !slices.Contains(allowed, s) {
			return nil, fmt.Errorf("bench: %s %q: want some of %v", what, s, allowed)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Run benchmarks the UNet of cfg. Progress lines go to log.
func Run(ctx context.Context, cfg config.Model, o Options, log io.Writer) (*Result, error) {
	if o.Batch <= 0 || o.Iters <= 0 || o.Threads <= 0 || o.Rounds <= 0 {
		return nil, fmt.Errorf("bench: batch %d, iters %d, threads %d, rounds %d: want all > 0", o.Batch, o.Iters, o.Threads, o.Rounds)
	}
	precs, err := normalise("precision", o.Precisions, PrecisionNames)
	if err != nil {
		return nil, err
	}
	formats, err := normalise("memory format", o.Formats, FormatNames)
	if err != nil {
		return nil, err
	}
	prev := runtime.GOMAXPROCS(o.Threads)
	defer runtime.GOMAXPROCS(prev)
	resetPeakRSS()

	net, err := model.New(cfg, rand.New(rand.NewSource(o.Seed)))
	if err != nil {
		return nil, err
	}
	fillZeros(net, rand.New(rand.NewSource(o.Seed+4)))
	res := &Result{Label: o.Label, Batch: o.Batch, Precisions: precs, Params: net.NumParams(), BLAS: blas.Info(),
		DiffinvThread: o.Threads, TorchErrs: map[string]string{}, TorchRSS: map[string]uint64{}, DiffinvRSS: map[string]uint64{}, CheckMaxAbs: -1}
	dir, err := os.MkdirTemp("", "diffinv-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	weights := filepath.Join(dir, "unet.safetensors")
	if err := net.Save(weights, nil); err != nil {
		return nil, err
	}

	rng := rand.New(rand.NewSource(o.Seed + 1))
	n, c, s := o.Batch, cfg.InChannels, cfg.ImageSize
	x := tensors.Randn(rng, n, c, s, s)
	v := tensors.Randn(rng, n, c, s, s)
	target := tensors.Randn(rng, n, c, s, s)
	t := make([]int, n)
	for i := range t {
		t[i] = rng.Intn(1000)
	}

	// The weights check's file: diffinv's eps on a small batch, before any
	// train step moves the weights.
	check := ""
	if o.Python != "" {
		check = filepath.Join(dir, "check.safetensors")
		if err := writeCheck(check, net, cfg, o.Seed+3); err != nil {
			return nil, err
		}
	}

	fp32, err := newEngine("fp32", net, x, v, target, t, o.Seed+2)
	if err != nil {
		return nil, err
	}
	// bf16 runs on its own copy of the weights (graphs are built in the
	// network's precision), built after the fp32 memory figure.
	wantBF16 := slices.Contains(precs, "bf16")
	if wantBF16 {
		if _, info, err := nn.ResolvePrecision("bf16"); err != nil {
			_, why := nn.BF16Available()
			res.BF16Err = why
		} else {
			res.BF16Info = info
		}
	}
	var bf16 *engine

	diffinvBest, torchBest := bests{}, bests{}
	for r := 0; r < o.Rounds; r++ {
		for _, p := range precs {
			e := fp32
			if p == "bf16" {
				if res.BF16Err != "" {
					continue
				}
				if bf16 == nil {
					if bf16, err = bf16Engine(weights, o, x, v, target, t); err != nil {
						// n/a, not fatal: the bf16 engine is work in progress.
						res.BF16Err = err.Error()
						continue
					}
				}
				e = bf16
			}
			if r == 0 {
				resetPeakRSS()
			}
			if err := e.open(); err != nil {
				if e == bf16 {
					res.BF16Err = err.Error()
					continue
				}
				return nil, err
			}
			for _, fig := range FigureNames {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				ms, err := Median(e.figs[fig], o.Warmup, o.Iters)
				if err != nil {
					if e == bf16 {
						res.BF16Err = fmt.Sprintf("%s: %v", fig, err)
						break
					}
					return nil, fmt.Errorf("bench %s: %w", fig, err)
				}
				fmt.Fprintf(log, "round %d: diffinv %s %s %.1f ms\n", r+1, e.prec, fig, ms)
				diffinvBest.add(timeKey{fig, e.prec, ""}, ms)
				if r == 0 && fig == "train_step" {
					res.DiffinvRSS[e.prec] = peakRSS()
				}
			}
			e.close()
		}
		if o.Python != "" && res.TorchErr == nil {
			a := torchArgs{precisions: precs, formats: formats, iters: o.Iters, warmup: o.Warmup}
			if r == 0 {
				a.check = check
			}
			tr, err := runTorch(ctx, o, weights, a)
			if err != nil {
				res.TorchErr = err
				fmt.Fprintf(log, "round %d: torch unavailable: %v\n", r+1, err)
				continue
			}
			res.TorchInfo = fmt.Sprintf("torch %v, %v threads", tr.Torch, tr.Threads)
			if tr.Check != nil {
				res.CheckMaxAbs, res.CheckBatch = *tr.Check, checkBatch
			}
			for _, tres := range tr.Results {
				if tres.Error != "" {
					res.TorchErrs[tres.Precision+" "+tres.Format] = tres.Error
					fmt.Fprintf(log, "round %d: torch %s %s: %s\n", r+1, tres.Precision, tres.Format, tres.Error)
					continue
				}
				for _, fig := range FigureNames {
					ms := tres.MS[fig]
					fmt.Fprintf(log, "round %d: torch %s %s %s %.1f ms\n", r+1, tres.Precision, tres.Format, fig, ms)
					torchBest.add(timeKey{fig, tres.Precision, tres.Format}, ms)
				}
			}
		}
	}
	for _, fig := range FigureNames {
		f := Figure{Name: fig, DiffinvMS: diffinvBest[timeKey{fig, "fp32", ""}], DiffinvBF16: diffinvBest[timeKey{fig, "bf16", ""}]}
		f.Torch, f.TorchFormat = torchBest.fastest(fig, "fp32", formats)
		f.TorchBF16, f.TorchBF16Format = torchBest.fastest(fig, "bf16", formats)
		res.Figures = append(res.Figures, f)
	}

	// Steady-state allocation per fp32 train step.
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	const allocSteps = 3
	if err := fp32.open(); err != nil {
		return nil, err
	}
	defer fp32.close()
	if err := fp32.figs["train_step"](); err != nil { // the graphs' first run allocates
		return nil, err
	}
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := 0; i < allocSteps; i++ {
		if err := fp32.figs["train_step"](); err != nil {
			return nil, err
		}
	}
	runtime.ReadMemStats(&m1)
	res.AllocPerStep = (m1.TotalAlloc - m0.TotalAlloc) / allocSteps

	// PyTorch's train-step memory: one process per precision, in the format
	// that won its train_step (NCHW if none did), one warm-up step and one.
	if o.Python != "" && res.TorchErr == nil && !o.NoMemory {
		for _, p := range precs {
			format := "nchw"
			if _, f := torchBest.fastest("train_step", p, formats); f != "" {
				format = f
			}
			tr, err := runTorch(ctx, o, weights, torchArgs{only: []string{"train_step"}, precisions: []string{p}, formats: []string{format}, iters: 1, warmup: 1})
			if err != nil {
				fmt.Fprintf(log, "torch %s memory run: %v\n", p, err)
				continue
			}
			if len(tr.Results) == 1 && tr.Results[0].Error == "" {
				res.TorchRSS[p] = tr.MaxRSSKB << 10
			}
		}
	}

	// The heaviest convolution, and the peaks.
	heavy := heaviestConv(cfg)
	res.ConvShape = heavy.label(n)
	convIters := max(3, o.Iters/2)
	if res.ConvFP32, err = convRates(nn.Conv2d, heavy, n, 1, convIters, o.Seed); err != nil {
		return nil, err
	}
	switch {
	case !wantBF16:
	case res.BF16Err != "":
		res.ConvBF16Err = res.BF16Err
	case ConvBF16 == nil:
		res.ConvBF16Err = "no bf16 convolution to time yet (bench.ConvBF16)"
	default:
		r, err := convRates(ConvBF16, heavy, n, 1, convIters, o.Seed)
		switch {
		case err != nil:
			res.ConvBF16Err = err.Error()
		case r == passRates{}:
			res.ConvBF16Err = "the bf16 convolution records no nn.ConvStatsByPass figures"
		default:
			res.ConvBF16 = r
		}
	}
	res.SgemmGFLOPS = sgemmPeak(o.Threads)
	if wantBF16 {
		gf, kernel, err := BF16Peak(o.Threads)
		switch {
		case err != nil:
			res.BF16PeakErr = err.Error()
		case gf <= 0:
			res.BF16PeakErr = fmt.Sprintf("measured %g GFLOP/s", gf)
		default:
			res.BF16PeakGFLOPS, res.BF16PeakKernel = gf, kernel
		}
	}
	return res, nil
}

// fillZeros gives the parameters that initialise to all zeros (the output
// convolutions of ResBlocks, attention and the network, norm shifts, biases)
// small random values, N(0, 0.02²), so that eps depends on every layer and the
// weights check compares something (with guided-diffusion's initialisation
// eps is 0 in both engines). The timings do not depend on the values.
func fillZeros(net *model.UNet, rng *rand.Rand) {
	names := make([]string, 0, len(net.Params()))
	for name := range net.Params() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := tensors.F32(net.Params()[name])
		if slices.ContainsFunc(p, func(v float32) bool { return v != 0 }) {
			continue
		}
		for i := range p {
			p[i] = float32(0.02 * rng.NormFloat64())
		}
	}
}

// bf16Engine builds a second network in nn.BF16 with the weights file's
// weights (those PyTorch loads; the fp32 network's have moved by then).
func bf16Engine(weights string, o Options, x, v, target *tensor.Dense, t []int) (*engine, error) {
	net, _, err := model.Load(weights)
	if err != nil {
		return nil, err
	}
	if err := net.SetPrecision(nn.BF16); err != nil {
		return nil, err
	}
	return newEngine("bf16", net, x, v, target, t, o.Seed+2)
}

// writeCheck writes the weights check's file: x (checkBatch images), t
// (float32) and net's eps on them.
func writeCheck(path string, net *model.UNet, cfg config.Model, seed int64) error {
	rng := rand.New(rand.NewSource(seed))
	s := cfg.ImageSize
	x := tensors.Randn(rng, checkBatch, cfg.InChannels, s, s)
	t := []int{17, 801}[:checkBatch]
	eps, err := net.Eps(x, t)
	if err != nil {
		return err
	}
	tf := make([]float32, len(t))
	for i, v := range t {
		tf[i] = float32(v)
	}
	// Eps hands out the network's buffer: copy it before the file is written.
	return checkpoint.Save(path, map[string]*tensor.Dense{
		"x":   x,
		"t":   tensor.New(tensor.WithShape(len(t)), tensor.WithBacking(tf)),
		"eps": eps.Clone().(*tensor.Dense),
	}, nil)
}

// Median runs fn warmup times, then times iters runs and returns the median
// in milliseconds.
func Median(fn func() error, warmup, iters int) (float64, error) {
	for i := 0; i < warmup; i++ {
		if err := fn(); err != nil {
			return 0, err
		}
	}
	ts := make([]float64, iters)
	for i := range ts {
		t0 := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		ts[i] = float64(time.Since(t0).Microseconds()) / 1e3
	}
	sort.Float64s(ts)
	return ts[len(ts)/2], nil
}

// sgemmPeak measures square sgemm GFLOP/s with one single-threaded BLAS call
// per core running at once, the way the conv op uses the cores.
func sgemmPeak(threads int) float64 {
	const m = 512
	a := make([]float32, m*m)
	for i := range a {
		a[i] = float32(i%7) * 0.1
	}
	best := 0.0
	for rep := 0; rep < 3; rep++ {
		const calls = 8
		var wg sync.WaitGroup
		t0 := time.Now()
		for w := 0; w < threads; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := make([]float32, m*m)
				for i := 0; i < calls; i++ {
					blas.Sgemm(false, false, m, m, m, 1, a, m, a, m, 0, c, m)
				}
			}()
		}
		wg.Wait()
		g := float64(threads*calls) * 2 * m * m * m / time.Since(t0).Seconds() / 1e9
		if g > best {
			best = g
		}
	}
	return best
}
