//go:build torch

// Command benchtorch prints `make bench`'s figures for the torch engine
// beside the native (Gorgonia) engine and PyTorch: `make bench-torch` runs
// it. The native and PyTorch lines come from package bench (the same
// weights, batch and inputs as `diffinv bench unet`); the torch-engine lines
// time Eps, EpsVJP and a training step on the same weights and inputs. The
// torch engine's train_step is what `diffinv train --engine torch` does per
// step: Trainer.MSEGrad (the Go-side parameters copied into libtorch,
// forward with dropout, backward, the gradients copied back) and package
// train's Adam update in Go, as the native figure's TrainGraph.Step and Adam.
//
// --threads sets the thread count of all three (the torch engine's through
// Options.Threads, at::set_num_threads).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"

	"github.com/diffinv/diffinv/config"
	torchengine "github.com/diffinv/diffinv/engine/torch"
	"github.com/diffinv/diffinv/internal/bench"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/train"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchtorch:", err)
		os.Exit(1)
	}
}

func run(args []string, out, log io.Writer) error {
	fs := flag.NewFlagSet("benchtorch", flag.ContinueOnError)
	cfgFile := fs.String("config", "configs/mnist.yaml", "YAML config whose model section is timed")
	o := bench.Options{Batch: 64, Threads: 2, Iters: 10, Warmup: 2, Rounds: 2, Python: "auto", Script: "bench/pytorch/bench_unet.py", Seed: 1}
	fs.IntVar(&o.Batch, "batch", o.Batch, "images per call")
	fs.IntVar(&o.Threads, "threads", o.Threads, "cores for each engine and PyTorch")
	fs.IntVar(&o.Iters, "iters", o.Iters, "timed iterations per figure (median reported)")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "untimed iterations first")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "rounds (best median kept)")
	fs.StringVar(&o.Python, "python", o.Python, `python with torch ("auto" finds one, "" skips PyTorch)`)
	fs.StringVar(&o.Script, "script", o.Script, "the PyTorch timing script")
	fs.Int64Var(&o.Seed, "seed", o.Seed, "weights and inputs seed")
	native := fs.Bool("native", true, "also time the native engine and PyTorch (package bench)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(config.Sources{File: *cfgFile})
	if err != nil {
		return err
	}
	if o.Python == "auto" {
		o.Python = bench.TorchPython()
	}

	var res *bench.Result
	if *native {
		if res, err = bench.Run(context.Background(), cfg.Model, o, log); err != nil {
			return err
		}
	}
	te, err := timeTorchEngine(cfg.Model, o, log)
	if err != nil {
		return err
	}
	if res != nil {
		res.Print(out)
	}
	pytorch := map[string]float64{}
	if res != nil {
		for _, f := range res.Figures {
			pytorch[f.Name] = f.Torch
		}
	}
	for _, name := range []string{"train_step", "eps", "eps_vjp"} {
		ms, ok := te[name]
		switch {
		case !ok:
			fmt.Fprintf(out, "%s: torch-engine n/a\n", name)
		case pytorch[name] > 0:
			fmt.Fprintf(out, "%s: torch-engine %.1f ms, torch %.1f ms, ratio %.2f\n", name, ms, pytorch[name], ms/pytorch[name])
		default:
			fmt.Fprintf(out, "%s: torch-engine %.1f ms, torch n/a, ratio n/a\n", name, ms)
		}
	}
	return nil
}

// timeTorchEngine times a training step, Eps and EpsVJP of the torch engine
// on the weights and inputs package bench uses (same seeds).
func timeTorchEngine(cfg config.Model, o bench.Options, log io.Writer) (map[string]float64, error) {
	net, err := model.New(cfg, rand.New(rand.NewSource(o.Seed)))
	if err != nil {
		return nil, err
	}
	u, err := torchengine.New(cfg, torchengine.Options{Threads: o.Threads})
	if err != nil {
		return nil, err
	}
	defer u.Close()
	if err := u.Load(net.Params()); err != nil {
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
	tr, err := torchengine.TrainerFrom(cfg, net.Params(), torchengine.Options{Threads: o.Threads})
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	names := tr.ParamNames()
	params := make([][]float32, len(names))
	grads := make([][]float32, len(names))
	sizes := make([]int, len(names))
	for i, name := range names {
		params[i] = tensors.F32(tr.Param(name))
		grads[i] = tensors.F32(tr.Grad(name))
		sizes[i] = len(params[i])
	}
	adam, err := train.NewAdam(train.DefaultAdam(), sizes)
	if err != nil {
		return nil, err
	}
	step := int64(0)
	trainStep := func() error {
		step++
		if _, err := tr.MSEGrad(x, t, target, o.Seed+2+step); err != nil {
			return err
		}
		return adam.Update(1e-4, params, grads)
	}
	figs := []struct {
		name string
		fn   func() error
	}{
		{"train_step", trainStep},
		{"eps", func() error { _, err := u.Eps(x, t); return err }},
		{"eps_vjp", func() error { _, _, err := u.EpsVJP(x, t, v); return err }},
	}
	best := map[string]float64{}
	for r := 0; r < o.Rounds; r++ {
		for _, f := range figs {
			ms, err := bench.Median(f.fn, o.Warmup, o.Iters)
			if err != nil {
				return nil, fmt.Errorf("torch engine %s: %w", f.name, err)
			}
			fmt.Fprintf(log, "round %d: torch-engine %s %.1f ms\n", r+1, f.name, ms)
			if b, ok := best[f.name]; !ok || ms < b {
				best[f.name] = ms
			}
		}
	}
	return best, nil
}
