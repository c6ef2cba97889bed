package main

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/progress"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/pipeline"
	"github.com/diffinv/diffinv/inverse/task"
)

// DefaultModel is the shipped MNIST model.
const DefaultModel = "models/mnist/model.safetensors"

func newDemoCmd() *cobra.Command {
	var cf configFlags
	var prec precisionFlag
	var eng engineFlags
	var ckpt, digits, out, tasksDir, tasksList, methodsList string
	var dpsSteps, ddnmSteps int
	var src imageSource
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Solve sr4, inpaint-box and deblur-gauss on MNIST digits with DPS and DDNM (the README's main job)",
		Long: `With the shipped MNIST model and the digits in demo/digits, measures each
digit with each task (σ_y = 0.05), reconstructs it with the classical
baseline, DPS and DDNM+ (DDNM's noisy-measurement form), writes one PNG grid
per task and demo.png with all of them (rows: truth, y, baseline, DPS,
DDNM+), and prints a PSNR/SSIM table. DPS runs all 1000 steps as in its
paper (--dps-steps respaces it); the whole demo takes about a minute on 2 cores.

The demo's solver steps (DPS and MCG 1000, DDNM and DDNM+ 100) are a preset
layer below --config, DIFFINV_* and --set, so solver.steps set there runs
every method with it; --dps-steps and --ddnm-steps, when given, set their
methods' solver.steps above all. --seed sets solver.seed.

--dataset NAME-SPLIT --n N --offset K takes the ground truth from a data set
instead of --digits: with a face model, e.g. --checkpoint models/celeba64
--dataset celeba-test --n 4 (make demo-faces), the task presets' celeba64
variants apply, as in solve.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(ckpt); err != nil {
				return fmt.Errorf("the model %s is missing (%v): train one with `diffinv train --config configs/mnist.yaml` and pass --checkpoint", ckpt, err)
			}
			cf.applyFlags(cmd)
			if err := prec.set(&cf); err != nil {
				return err
			}
			net, base, err := loadCheckpoint(ckpt, &cf)
			if err != nil {
				return err
			}
			netDen, err := eng.denoiser(ckpt, net, base, &prec, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var x *tensor.Dense
			var names []string
			first := 0
			if src.dataset != "" {
				if x, first, err = src.load(base); err != nil {
					return err
				}
				for k := 0; k < x.Shape()[0]; k++ {
					names = append(names, fmt.Sprintf("%s#%d", src.dataset, first+k))
				}
			} else if x, names, err = loadDigits(digits, base.Model.InChannels, base.Model.ImageSize); err != nil {
				return err
			}
			sched, den, err := schedule(base.Diffusion, 0, netDen)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			tasks, methods := strings.Split(tasksList, ","), strings.Split(methodsList, ",")
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "task\tmethod\tPSNR dB\tSSIM\t‖y−A(x̂)‖\ts/image\t\n")
			var blocks []image.Image
			t0 := time.Now()
			for _, tn := range tasks {
				preset, err := task.LoadVariant(tn, tasksDir, task.Variant(*base))
				if err != nil {
					return err
				}
				var rows []*tensor.Dense
				for mi, method := range methods {
					// The method and the steps flags given beat --set; the
					// demo's steps are a preset under the file.
					sets := append(append([]string(nil), cf.sets...), "solver.method="+method)
					presets := []config.Preset{preset.Config}
					for _, st := range []struct {
						flag    string
						steps   int
						methods []string
					}{{"dps-steps", dpsSteps, []string{"dps", "mcg"}}, {"ddnm-steps", ddnmSteps, []string{"ddnm", "ddnm+"}}} {
						if !slices.Contains(st.methods, method) {
							continue
						}
						presets = append(presets, config.Preset{Name: "demo --" + st.flag, YAML: fmt.Appendf(nil, "solver:\n  steps: %d\n", st.steps)})
						if cmd.Flags().Changed(st.flag) {
							sets = append(sets, fmt.Sprintf("solver.steps=%d", st.steps))
						}
					}
					cfg, err := config.LoadOnto(*base, config.Sources{Presets: presets, File: cf.file, Env: os.Environ(), Sets: sets})
					if err != nil {
						return err
					}
					if err := loaded(cmd, cfg); err != nil {
						return err
					}
					setup, err := pipeline.New(cfg, den, sched, preset.Defaults(method), cfg.Solver.Seed)
					if err != nil {
						return fmt.Errorf("task %s, %s: %w", tn, method, err)
					}
					bar := progress.New(cmd.ErrOrStderr(), fmt.Sprintf("%s %s", tn, method), 1, progress.WithUnit("step"))
					res, err := setup.Solve(cmd.Context(), x, first, func(done, total int) { bar.SetTotal(total); bar.Set(done) })
					if err != nil {
						return err
					}
					bar.Finish()
					if mi == 0 {
						rows = append(rows, res.Truth, pipeline.DisplayY(res.Y, setup.A, x.Shape()[1], x.Shape()[2], x.Shape()[3]))
						if res.Baseline != nil {
							rows = append(rows, res.Baseline)
							fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.3f\t%.4f\t%.2f\t\n", tn, setup.Baseline, mean(res.BaselinePSNR), mean(res.BaseSSIM), mean(res.BaselineConsistency), res.BaselineSecondsPerImage)
						}
					}
					rows = append(rows, res.Recon)
					fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.3f\t%.4f\t%.2f\t\n", tn, method, mean(res.PSNR), mean(res.SSIM), mean(res.Consistency), res.SecondsPerImage)
				}
				path := filepath.Join(out, "grid_"+tn+".png")
				if err := saveRowsGrid(path, rows); err != nil {
					return err
				}
				img, err := loadImage(path)
				if err != nil {
					return err
				}
				blocks = append(blocks, img)
			}
			all, err := data.StackRows(6, 255, blocks...)
			if err != nil {
				return err
			}
			if err := data.WritePNG(filepath.Join(out, "demo.png"), all); err != nil {
				return err
			}
			tw.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "images: %s\ngrids (rows: truth, y, baseline, %s): %s/grid_<task>.png and %s/demo.png; %.0f s\n",
				strings.Join(names, " "), strings.Join(methods, ", "), out, out, time.Since(t0).Seconds())
			return nil
		},
	}
	cf.add(cmd)
	prec.add(cmd)
	eng.add(cmd)
	f := cmd.Flags()
	f.StringVar(&ckpt, "checkpoint", DefaultModel, "model checkpoint (.safetensors, or a model folder such as models/mnist)")
	f.StringVar(&digits, "digits", "demo/digits", "folder of ground-truth PNGs")
	f.StringVar(&src.dataset, "dataset", "", "take the ground truth from a data set instead of --digits: "+strings.Join(data.SplitNames(), ", "))
	f.IntVar(&src.n, "n", 4, "images from --dataset")
	f.IntVar(&src.offset, "offset", 0, "index of the first --dataset image")
	f.StringVar(&out, "out", "out/demo", "output folder")
	f.StringVar(&tasksDir, "tasks", task.DefaultDir, "folder of task presets (as in solve, measure and experiment)")
	f.StringVar(&tasksDir, "tasks-dir", task.DefaultDir, "folder of task presets")
	f.MarkDeprecated("tasks-dir", "use --tasks, the folder flag of every command")
	f.StringVar(&tasksList, "task", "sr4,inpaint-box,deblur-gauss", "comma-separated task names")
	f.StringVar(&methodsList, "method", "dps,ddnm+", "comma-separated methods")
	f.StringVar(&methodsList, "methods", "dps,ddnm+", "comma-separated methods")
	f.MarkDeprecated("methods", "use --method, as in solve")
	f.IntVar(&dpsSteps, "dps-steps", 1000, "DPS steps (the DPS protocol: every one of the model's T steps)")
	f.IntVar(&ddnmSteps, "ddnm-steps", 100, "DDNM steps")
	cf.addSeed(cmd, "solver.seed")
	return cmd
}

// loadDigits reads every PNG in dir (sorted) as one batch.
func loadDigits(dir string, c, size int) (*tensor.Dense, []string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(matches) == 0 {
		return nil, nil, fmt.Errorf("no PNG digits in %s (run from the repository root or pass --digits)", dir)
	}
	sort.Strings(matches)
	x := tensors.New(len(matches), c, size, size)
	var names []string
	per := c * size * size
	for i, m := range matches {
		img, err := data.LoadPNGMax(m, size)
		if err != nil {
			return nil, nil, err
		}
		fit, _, err := fitImage(m, img, c, size)
		if err != nil {
			return nil, nil, err
		}
		copy(tensors.F32(x)[i*per:], tensors.F32(fit))
		names = append(names, filepath.Base(m))
	}
	return x, names, nil
}

func loadImage(path string) (image.Image, error) {
	t, err := data.LoadPNG(path)
	if err != nil {
		return nil, err
	}
	return data.GridImage(t, data.GridOptions{PerRow: 1})
}
