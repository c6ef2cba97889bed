package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/bench"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Benchmarks against the PyTorch reference"}
	var cf configFlags
	var prec precisionFlag
	o := bench.Options{Batch: 64, Threads: 2, Iters: 10, Warmup: 2, Rounds: 2, Python: "auto", Script: "bench/pytorch/bench_unet.py", Seed: 1}
	unet := &cobra.Command{
		Use:   "unet",
		Short: "Time train_step, eps and eps_vjp of the config's UNet in diffinv and PyTorch, side by side",
		Long: `Builds the config's UNet with seeded weights, saves them, and times in
alternating rounds diffinv's native engine and the PyTorch reference
(bench/pytorch/bench_unet.py run by --python) on the same weights, batch
and thread count. Prints one line per figure:

  <figure>: diffinv <ms> ms, torch <ms> ms, ratio <diffinv/torch>

then the heaviest convolution's GFLOP/s against the sgemm peak on the same
cores, and the bytes allocated per train step. With --python "" (or when
python3 cannot import torch) the torch side reads n/a.`,
		Example: "  diffinv bench unet --config configs/mnist.yaml --batch 64 --threads 2",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := prec.set(&cf); err != nil {
				return err
			}
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			// diffinv's UNet runs in the precision asked; the PyTorch
			// reference runs float32.
			if o.Precision, _, err = prec.use(cmd.ErrOrStderr(), cfg, "native"); err != nil {
				return err
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
			res, err := bench.Run(cmd.Context(), cfg.Model, o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			res.Print(cmd.OutOrStdout())
			return nil
		},
	}
	cf.add(unet)
	prec.add(unet)
	f := unet.Flags()
	f.IntVar(&o.Batch, "batch", o.Batch, "images per call")
	f.IntVar(&o.Threads, "threads", o.Threads, "cores for both engines")
	f.IntVar(&o.Iters, "iters", o.Iters, "timed iterations per figure (median reported)")
	f.IntVar(&o.Warmup, "warmup", o.Warmup, "untimed iterations first")
	f.IntVar(&o.Rounds, "rounds", o.Rounds, "alternating diffinv/torch rounds (best median kept)")
	f.StringVar(&o.Python, "python", o.Python, `python with torch for the reference ("auto" finds one, "" skips it)`)
	f.StringVar(&o.Script, "script", o.Script, "the PyTorch timing script")
	f.Int64Var(&o.Seed, "seed", o.Seed, "weights and inputs seed")
	cmd.AddCommand(unet)
	return cmd
}
