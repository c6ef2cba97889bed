package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/internal/bench"
)

// benchSpec is one UNet to benchmark: a config file and its batch.
type benchSpec struct {
	file  string
	batch int
}

// parseBenchSpecs reads --configs entries FILE or FILE:BATCH (a batch of
// 0 or none means def).
func parseBenchSpecs(list []string, def int) ([]benchSpec, error) {
	var out []benchSpec
	for _, e := range list {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		sp := benchSpec{file: e, batch: def}
		if i := strings.LastIndexByte(e, ':'); i >= 0 {
			b, err := strconv.Atoi(e[i+1:])
			if err != nil || b <= 0 || i == 0 {
				return nil, fmt.Errorf("bench: --configs entry %q: want FILE or FILE:BATCH with a batch > 0", e)
			}
			sp.file, sp.batch = e[:i], b
		}
		out = append(out, sp)
	}
	return out, nil
}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Benchmarks against the PyTorch reference"}
	var cf configFlags
	var configs []string
	var prec precisionFlag
	o := bench.Options{Batch: 64, Threads: 2, Iters: 10, Warmup: 2, Rounds: 2, Python: "auto", Script: "bench/pytorch/bench_unet.py", Seed: 1,
		Precisions: slices.Clone(bench.PrecisionNames), Formats: slices.Clone(bench.FormatNames)}
	unet := &cobra.Command{
		Use:   "unet",
		Short: "Time train_step, eps and eps_vjp of the config's UNet in diffinv and PyTorch, fp32 and bf16, side by side",
		Long: `Builds the config's UNet with seeded weights, saves them, and times in
alternating rounds diffinv's native engine and the PyTorch reference
(bench/pytorch/bench_unet.py run by --python) on the same weights, batch
and thread count, in float32 and in bf16 mixed precision: diffinv with
precision bf16 (n/a with the reason where it cannot run here) and PyTorch
under torch.autocast("cpu", dtype=torch.bfloat16). Each PyTorch figure is
the faster of the NCHW and channels_last memory formats (named in
parentheses). Prints per figure:

  <figure> fp32: diffinv <ms> ms, torch <ms> ms (<format>), ratio <diffinv/torch>
  <figure> bf16: diffinv <ms> ms, torch <ms> ms (<format>), ratio <diffinv/torch>
  <figure> ratios: diffinv bf16 / torch best (<its precision, format, ms>) <r>, diffinv bf16 / diffinv fp32 <r>

then the heaviest 3×3 convolution's forward, backward-data and
backward-weights GFLOP/s against the sgemm peak (fp32) and the bf16 peak
on the same cores, the bytes allocated per train step, the peak resident
memory of a train step in each engine (PyTorch's in a process of its own)
and a check that PyTorch computes diffinv's eps from the weights it loaded
(within 1e-4). With --python "" (or when python3 cannot import torch) the
torch side reads n/a.

--configs runs several UNets in one process, each FILE or FILE:BATCH
(make bench: configs/mnist.yaml:64 and configs/celeba64.yaml:16).`,
		Example: `  diffinv bench unet --config configs/mnist.yaml --batch 64 --threads 2
  diffinv bench unet --configs configs/mnist.yaml:64,configs/celeba64.yaml:16 --threads 2
  diffinv bench unet --config configs/mnist.yaml --batch 2 --iters 1 --warmup 0 --rounds 1   # smoke run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if prec.value != "" {
				// --precision times diffinv in that one precision
				// (--precisions names several).
				if err := prec.check(); err != nil {
					return err
				}
				p, why, err := resolvePrecision(prec.value, "native")
				if err != nil {
					return fmt.Errorf("%s: %w", prec.source(prec.value), err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "precision: %s\n", why)
				o.Precisions = []string{p.String()}
			}
			specs, err := parseBenchSpecs(configs, o.Batch)
			if err != nil {
				return err
			}
			if len(specs) > 0 && cf.file != "" {
				return fmt.Errorf("bench: --config and --configs: give one")
			}
			if len(specs) == 0 {
				specs = []benchSpec{{file: cf.file, batch: o.Batch}}
			}
			if o.Python == "auto" {
				o.Python = bench.TorchPython()
				if o.Python == "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "bench: no python3 that imports torch (apt-get install python3-torch); timing diffinv only")
				}
			}
			if o.Python != "" {
				if _, err := os.Stat(o.Script); err != nil {
					return fmt.Errorf("bench: %w (run from the repository root or pass --script)", err)
				}
			}
			for i, sp := range specs {
				scf := configFlags{file: sp.file, sets: cf.sets, presets: cf.presets}
				cfg, err := scf.load()
				if err != nil {
					return err
				}
				so := o
				so.Batch = sp.batch
				so.Label = sp.file
				if so.Label == "" {
					so.Label = "default config"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "bench: %s, batch %d\n", so.Label, so.Batch)
				res, err := bench.Run(cmd.Context(), cfg.Model, so, cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("%s: %w", so.Label, err)
				}
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				res.Print(cmd.OutOrStdout())
			}
			return nil
		},
	}
	cf.add(unet)
	prec.add(unet)
	f := unet.Flags()
	f.StringSliceVar(&configs, "configs", nil, "several UNets in one run: FILE or FILE:BATCH, comma-separated or repeated (instead of --config/--batch)")
	f.IntVar(&o.Batch, "batch", o.Batch, "images per call")
	f.IntVar(&o.Threads, "threads", o.Threads, "cores for both engines")
	f.IntVar(&o.Iters, "iters", o.Iters, "timed iterations per figure (median reported)")
	f.IntVar(&o.Warmup, "warmup", o.Warmup, "untimed iterations first")
	f.IntVar(&o.Rounds, "rounds", o.Rounds, "alternating diffinv/torch rounds (best median kept)")
	f.StringSliceVar(&o.Precisions, "precisions", o.Precisions, "precisions to time in both engines: fp32, bf16")
	f.StringSliceVar(&o.Formats, "torch-formats", o.Formats, "PyTorch memory formats, the fastest reported: nchw, channels_last")
	f.BoolVar(&o.NoMemory, "no-memory", false, "skip PyTorch's peak-memory runs (one short process per precision)")
	f.StringVar(&o.Python, "python", o.Python, `python with torch for the reference ("auto" finds one, "" skips it)`)
	f.StringVar(&o.Script, "script", o.Script, "the PyTorch timing script")
	f.Int64Var(&o.Seed, "seed", o.Seed, seedUsage("the UNet's weights and inputs; not a config key: bench reads only the model section"))
	cmd.AddCommand(unet)
	return cmd
}
