// Package bench measures diffinv's native engine side by side with the
// PyTorch reference (bench/pytorch) on the same model, weights, batch and
// thread count, in one run, and reports the ratios the engine is held to.
//
// Figures: train_step (forward, backward, Adam), eps (forward only) and
// eps_vjp (forward and vᵀ∂ε/∂x, the DPS step); then the GFLOP/s of the
// model's heaviest convolution against the sgemm peak measured on the same
// cores, and the bytes allocated per train step.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/diffinv/diffinv/blas"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/nn"
	"github.com/diffinv/diffinv/tensors"
	"github.com/diffinv/diffinv/train"
)

// Options configure a UNet benchmark.
type Options struct {
	Batch   int    // images per call (64 in the protocol)
	Threads int    // cores for both engines (GOMAXPROCS and torch.set_num_threads)
	Iters   int    // timed iterations per figure (the median is reported)
	Warmup  int    // untimed iterations before timing
	Rounds  int    // alternating diffinv/torch rounds; the best median of each wins
	Python  string // python3 with torch; "" skips the PyTorch side
	Script  string // path of bench/pytorch/bench_unet.py
	Seed    int64
	// Precision is what diffinv's UNet runs in (nn.FP32, the zero value,
	// or nn.BF16); the PyTorch reference runs float32.
	Precision nn.Precision
}

// Figure is one timed quantity on both engines, in milliseconds.
type Figure struct {
	Name             string
	DiffinvMS, Torch float64 // Torch is 0 when PyTorch did not run
}

// Result is what Run measured.
type Result struct {
	Figures       []Figure
	ConvShape     string
	ConvGFLOPS    float64
	SgemmGFLOPS   float64
	AllocPerStep  uint64 // bytes allocated per steady-state train step
	Params        int
	BLAS          string
	TorchInfo     string
	TorchErr      error
	DiffinvThread int
	Precision     string // what diffinv's UNet ran in: fp32 or bf16
}

// Run benchmarks the UNet of cfg. Progress lines go to log.
func Run(ctx context.Context, cfg config.Model, o Options, log io.Writer) (*Result, error) {
	if o.Batch <= 0 || o.Iters <= 0 || o.Threads <= 0 || o.Rounds <= 0 {
		return nil, fmt.Errorf("bench: batch %d, iters %d, threads %d, rounds %d: want all > 0", o.Batch, o.Iters, o.Threads, o.Rounds)
	}
	prev := runtime.GOMAXPROCS(o.Threads)
	defer runtime.GOMAXPROCS(prev)

	net, err := model.New(cfg, rand.New(rand.NewSource(o.Seed)))
	if err != nil {
		return nil, err
	}
	if err := net.SetPrecision(o.Precision); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	res := &Result{Params: net.NumParams(), BLAS: blas.Info(), DiffinvThread: o.Threads, Precision: o.Precision.String()}
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
	tg, err := net.NewTrainGraph(n, rand.New(rand.NewSource(o.Seed+2)))
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
	eps := func() error { _, err := net.Eps(x, t); return err }
	vjp := func() error { _, _, err := net.EpsVJP(x, t, v); return err }

	figs := []struct {
		name string
		fn   func() error
	}{{"train_step", trainStep}, {"eps", eps}, {"eps_vjp", vjp}}
	best := map[string]float64{}
	torchBest := map[string]float64{}
	for r := 0; r < o.Rounds; r++ {
		for _, f := range figs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ms, err := Median(f.fn, o.Warmup, o.Iters)
			if err != nil {
				return nil, fmt.Errorf("bench %s: %w", f.name, err)
			}
			fmt.Fprintf(log, "round %d: diffinv %s %.1f ms\n", r+1, f.name, ms)
			if b, ok := best[f.name]; !ok || ms < b {
				best[f.name] = ms
			}
		}
		if o.Python != "" && res.TorchErr == nil {
			tr, err := runTorch(ctx, o, weights)
			if err != nil {
				res.TorchErr = err
				fmt.Fprintf(log, "round %d: torch unavailable: %v\n", r+1, err)
				continue
			}
			res.TorchInfo = fmt.Sprintf("torch %v, %v threads", tr["torch"], tr["threads"])
			for _, f := range figs {
				ms, _ := tr[f.name+"_ms"].(float64)
				fmt.Fprintf(log, "round %d: torch %s %.1f ms\n", r+1, f.name, ms)
				if b, ok := torchBest[f.name]; !ok || ms < b {
					torchBest[f.name] = ms
				}
			}
		}
	}
	for _, f := range figs {
		res.Figures = append(res.Figures, Figure{Name: f.name, DiffinvMS: best[f.name], Torch: torchBest[f.name]})
	}

	// Steady-state allocation per train step.
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	const allocSteps = 3
	for i := 0; i < allocSteps; i++ {
		if err := trainStep(); err != nil {
			return nil, err
		}
	}
	runtime.ReadMemStats(&m1)
	res.AllocPerStep = (m1.TotalAlloc - m0.TotalAlloc) / allocSteps

	res.ConvShape, res.ConvGFLOPS, err = convThroughput(cfg, n, o)
	if err != nil {
		return nil, err
	}
	res.SgemmGFLOPS = sgemmPeak(o.Threads)
	return res, nil
}

// Print writes the report lines in the format.
func (r *Result) Print(w io.Writer) {
	for _, f := range r.Figures {
		if f.Torch > 0 {
			fmt.Fprintf(w, "%s: diffinv %.1f ms, torch %.1f ms, ratio %.2f\n", f.Name, f.DiffinvMS, f.Torch, f.DiffinvMS/f.Torch)
		} else {
			fmt.Fprintf(w, "%s: diffinv %.1f ms, torch n/a, ratio n/a\n", f.Name, f.DiffinvMS)
		}
	}
	fmt.Fprintf(w, "conv %s: %.1f GFLOP/s, %.0f%% of sgemm peak %.1f GFLOP/s\n", r.ConvShape, r.ConvGFLOPS, 100*r.ConvGFLOPS/r.SgemmGFLOPS, r.SgemmGFLOPS)
	fmt.Fprintf(w, "alloc per train step: %.2f MB\n", float64(r.AllocPerStep)/1e6)
	fmt.Fprintf(w, "model: %d parameters; threads %d; precision %s; blas: %s", r.Params, r.DiffinvThread, r.Precision, r.BLAS)
	if r.TorchInfo != "" {
		fmt.Fprintf(w, "; %s", r.TorchInfo)
	}
	if r.TorchErr != nil {
		fmt.Fprintf(w, "; torch side skipped: %v", r.TorchErr)
	}
	fmt.Fprintln(w)
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

func runTorch(ctx context.Context, o Options, weights string) (map[string]any, error) {
	cmd := exec.CommandContext(ctx, o.Python, o.Script, "--weights", weights,
		"--batch", fmt.Sprint(o.Batch), "--threads", fmt.Sprint(o.Threads),
		"--iters", fmt.Sprint(o.Iters), "--warmup", fmt.Sprint(o.Warmup))
	// Same OpenBLAS kernels for both engines: PyTorch's Debian build loads
	// OpenBLAS too, and reads OPENBLAS_CORETYPE when it does.
	cmd.Env = os.Environ()
	if core := blas.CoreName(); core != "" {
		cmd.Env = append(cmd.Env, "OPENBLAS_CORETYPE="+core)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// One engine at a time: Go is idle while Python runs.
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", o.Python, o.Script, err, lastLine(errb.String()))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lastLine(out.String())), &m); err != nil {
		return nil, fmt.Errorf("torch output %q: %w", out.String(), err)
	}
	return m, nil
}

func lastLine(s string) string {
	s = string(bytes.TrimSpace([]byte(s)))
	if i := bytes.LastIndexByte([]byte(s), '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
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

// convThroughput times the model's heaviest 3×3 convolution (the first
// level's, at full resolution) forward at the benchmark batch.
func convThroughput(cfg config.Model, n int, o Options) (string, float64, error) {
	ch := cfg.NumChannels * cfg.ChannelMult[0]
	s := cfg.ImageSize
	fwd, err := newConvBench(n, ch, ch, s, o.Seed)
	if err != nil {
		return "", 0, err
	}
	ms, err := Median(fwd, 1, max(3, o.Iters/2))
	if err != nil {
		return "", 0, err
	}
	flops := 2.0 * float64(n) * float64(ch) * float64(ch) * 9 * float64(s*s)
	return fmt.Sprintf("%d×%d×%d×%d 3×3→%d", n, ch, s, s, ch), flops / (ms / 1e3) / 1e9, nil
}

// TorchPython returns the first python3 on this machine that imports torch
// (Debian's python3-torch installs into /usr/bin/python3, which another
// python3 earlier on PATH may shadow), or "".
func TorchPython() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(p); err == nil {
			if exec.Command(path, "-c", "import torch").Run() == nil {
				return path
			}
		}
	}
	return ""
}
