package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/eval"
	"github.com/diffinv/diffinv/internal/atomicfile"
	"github.com/diffinv/diffinv/internal/progress"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/sample"
)

func newSampleCmd() *cobra.Command {
	var cf configFlags
	var eng engineFlags
	var prec precisionFlag
	var ckpt, sampler, out string
	var steps, n int
	cmd := &cobra.Command{
		Use:   "sample",
		Short: "Draw unconditional samples from a trained model",
		Long: `Draws samples with one of the samplers (` + strings.Join(sample.Names(), ", ") + `),
writes them as a PNG grid to --out and the raw float32 samples in [-1, 1]
(N×C×H×W, tensor "samples") to the same path with .safetensors.

The diffusion settings come from the checkpoint's run config; the sample.*
keys (see configs/mnist.yaml) tune each sampler.`,
		Example: `  diffinv sample --checkpoint models/mnist/model.safetensors --sampler ddim --steps 50 --n 64 --out ddim.png
  diffinv sample --checkpoint C --sampler pc --steps 200 --set sample.snr=0.1 --out pc.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Flags given are the highest layer, after --set.
			cf.applyFlags(cmd)
			if out == "" {
				return fmt.Errorf("--out is required (a .png path)")
			}
			// The raw samples go beside the grid with .safetensors: an --out
			// that already ends so would be overwritten by them.
			if raw := rawSamplesPath(out); filepath.Clean(raw) == filepath.Clean(out) {
				return fmt.Errorf("--out %s: the raw samples are written to the same path with .safetensors, so the PNG grid would be overwritten; give a .png path", out)
			}
			for _, p := range []string{out, rawSamplesPath(out)} {
				if err := atomicfile.CheckWritable(p); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
			}
			if ckpt != "" {
				if err := distinctFiles("--checkpoint", ckpt, "--out (raw samples)", rawSamplesPath(out)); err != nil {
					return err
				}
			}
			if err := prec.set(&cf); err != nil {
				return err
			}
			net, cfg, err := loadCheckpoint(ckpt, &cf)
			if err != nil {
				return err
			}
			if err := loaded(cmd, cfg); err != nil {
				return err
			}
			s := cfg.Sample
			netDen, err := eng.denoiser(ckpt, net, cfg, &prec, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			sched, den, err := sampleSchedule(cfg, netDen)
			if err != nil {
				return err
			}
			opts, err := eval.SamplerOptions(cfg)
			if err != nil {
				return err
			}
			if _, err := sample.Lookup(s.Sampler); err != nil {
				return err
			}
			bar := progress.New(cmd.ErrOrStderr(), "sample "+s.Sampler, s.NumSamples*sched.Len(), progress.WithUnit("step"))
			all, err := eval.Draw(cfg, den, sched, opts, func(done int) { bar.Set(done) })
			if err != nil {
				return err
			}
			bar.Finish()
			if err := checkFinite(all); err != nil {
				return err
			}
			perRow := int(math.Ceil(math.Sqrt(float64(s.NumSamples))))
			if err := data.SaveGrid(out, all, perRow, 2); err != nil {
				return err
			}
			raw := rawSamplesPath(out)
			meta := map[string]string{"sampler": s.Sampler, "steps": fmt.Sprint(s.Steps), "seed": fmt.Sprint(s.Seed), "checkpoint": ckpt}
			if err := checkpoint.Save(raw, map[string]*tensor.Dense{"samples": all}, meta); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s (%d samples, %s, %d steps)\n", out, raw, s.NumSamples, s.Sampler, s.Steps)
			return nil
		},
	}
	cf.add(cmd)
	eng.add(cmd)
	prec.add(cmd)
	cmd.Flags().StringVar(&ckpt, "checkpoint", "", "model checkpoint (.safetensors, or a model folder such as models/mnist)")
	cmd.Flags().StringVar(&sampler, "sampler", "", "sampler: "+strings.Join(sample.Names(), ", ")+" (sets sample.sampler)")
	cmd.Flags().IntVar(&steps, "steps", 0, "sampling steps (sets sample.steps)")
	cmd.Flags().IntVar(&n, "n", 0, "number of samples (sets sample.num_samples)")
	cf.addSeed(cmd, "sample.seed")
	cf.bind("sampler", "sample.sampler")
	cf.bind("steps", "sample.steps")
	cf.bind("n", "sample.num_samples")
	cmd.Flags().StringVar(&out, "out", "", "output PNG grid; raw samples go next to it as .safetensors")
	return cmd
}

// checkFinite reports NaN or Inf values, which a diverging sampler makes.
func checkFinite(t *tensor.Dense) error {
	for i, v := range tensors.F32(t) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("sample %d holds %v: the sampler diverged (try fewer Langevin steps, a smaller step size or more steps)", i/(len(tensors.F32(t))/t.Shape()[0]), v)
		}
	}
	return nil
}

// rawSamplesPath is where sample writes the raw samples of the grid out.
func rawSamplesPath(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + ".safetensors"
}
