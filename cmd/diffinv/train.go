package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/train"
)

func newTrainCmd() *cobra.Command {
	var cf configFlags
	var eng engineFlags
	var prec precisionFlag
	var out string
	var resume bool
	var resumeChanges []string
	var initFrom string
	var gridN, gridSteps, stopAt int
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a DDPM from a config",
		Long: `Trains the config's UNet on its data (train.* keys set the optimiser,
EMA, checkpoints and logging). The output folder gets:

  checkpoints/step-NNNNNNNN.safetensors  weights, EMA, Adam state (last train.keep_checkpoints)
  model.safetensors                      the EMA weights with their config: pass it to sample/solve
  log.jsonl                              a run record (config, seeds, precision), then one per train.log_every steps (loss, lr, grad norm)
  loss.png                               the loss curve
  samples/step-NNNNNNNN.png              EMA samples (DDIM) every train.sample_every steps

--resume continues from the latest checkpoint; an interrupted run resumed
gives the same weights as an uninterrupted one, so a resume may not change
the settings that shape the trajectory (train.lr, its warm-up and decay,
weight decay, loss weighting, gradient clipping, EMA decay; train.steps
under a cosine decay) unless --resume-changes names them: a deliberate
second stage, recorded in log.jsonl. Ctrl-C writes a checkpoint
before stopping. --init FILE starts a fresh run from the (EMA) weights of a
model file or training checkpoint of the same network (fine-tuning, or going
on from a model whose optimiser state was not kept); Adam starts afresh.
--stop-at N ends the run after step N with a checkpoint, keeping the
learning-rate schedule of train.steps: a long schedule run in pieces, or a
model taken from the middle of one; --resume continues it.`,
		Example: `  diffinv train --config configs/mnist.yaml --out runs/mnist
  diffinv train --config configs/mnist.yaml --out runs/mnist --resume
  diffinv train --config configs/mnist.yaml --out runs/mnist --resume --set train.lr=0.0002 --resume-changes train.lr
  diffinv train --config configs/mnist.yaml --out runs/mnist-ft --init models/mnist/model.safetensors --set train.lr=0.00005
  diffinv train --config configs/mnist.yaml --out runs/long --set train.steps=20000 --stop-at 5000
  diffinv train --config configs/mnist.yaml --set train.steps=200 --set train.batch_size=16 --out /tmp/smoke`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cf.applyFlags(cmd)
			if err := prec.set(&cf); err != nil {
				return err
			}
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if err := loaded(cmd, cfg); err != nil {
				return err
			}
			if len(resumeChanges) > 0 && !resume {
				return fmt.Errorf("--resume-changes %s: only a resumed run (--resume) changes settings from a checkpoint's", strings.Join(resumeChanges, ","))
			}
			if eng.name != "native" && eng.name != "torch" {
				return fmt.Errorf("--engine %q: want native or torch", eng.name)
			}
			// The native UNet is built in engine.precision by
			// train.NewUNet; the torch engine runs float32 only.
			p, why, err := prec.use(cmd.ErrOrStderr(), cfg, eng.name)
			if err != nil {
				return err
			}
			newModel := train.NewUNet
			if eng.name == "torch" {
				if newModel, err = torchTrainNetwork(eng.device); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var sampler func(int, map[string]*tensor.Dense) (*tensor.Dense, error)
			if cfg.Train.SampleEvery > 0 && gridN > 0 {
				// The grids' native UNet runs in the precision that trains.
				sc := *cfg
				sc.Engine.Precision = p.String()
				if sampler, err = train.UNetSampler(&sc, gridN, gridSteps, cfg.Sample.Seed); err != nil {
					return err
				}
			}
			err = train.Run(ctx, cfg, train.RunOptions{NewModel: newModel, Resume: resume, ResumeChanges: resumeChanges, Init: initFrom, Sample: sampler, Progress: cmd.ErrOrStderr(), StopAt: stopAt,
				Precision: p, PrecisionReason: why})
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("interrupted: a checkpoint was written; continue with --resume --out %s", cfg.Train.Out)
			}
			if err != nil {
				return err
			}
			if stopAt > 0 && stopAt < cfg.Train.Steps {
				fmt.Fprintf(cmd.OutOrStdout(), "stopped at step %d of %d (--stop-at): %s; continue with --resume --out %s\n",
					stopAt, cfg.Train.Steps, filepath.Join(cfg.Train.Out, train.ModelFile), cfg.Train.Out)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trained: %s\n", filepath.Join(cfg.Train.Out, train.ModelFile))
			return nil
		},
	}
	cf.add(cmd)
	eng.add(cmd)
	prec.add(cmd)
	cmd.Flags().StringVar(&out, "out", "", "output folder (sets train.out)")
	cf.bind("out", "train.out")
	cf.addSeed(cmd, "train.seed")
	cmd.Flags().BoolVar(&resume, "resume", false, "continue from the latest checkpoint in the output folder")
	cmd.Flags().StringSliceVar(&resumeChanges, "resume-changes", nil, "with --resume: trajectory settings allowed to differ from the checkpoint's (e.g. train.lr,train.warmup_steps); recorded in log.jsonl")
	cmd.Flags().StringVar(&initFrom, "init", "", "start a fresh run from the (EMA) weights of this model file or training checkpoint")
	cmd.Flags().IntVar(&gridN, "grid-n", 64, "samples in each progress grid (0 disables)")
	cmd.Flags().IntVar(&gridSteps, "grid-steps", 50, "DDIM steps of the progress grids")
	cmd.Flags().IntVar(&stopAt, "stop-at", 0, "stop after this step with a checkpoint, keeping train.steps' learning-rate schedule (0: run to train.steps)")
	return cmd
}
