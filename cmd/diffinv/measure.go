package main

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/inverse/pipeline"
	"github.com/diffinv/diffinv/inverse/task"
)

func newMeasureCmd() *cobra.Command {
	var cf configFlags
	var taskName, image, out, tasksDir string
	cmd := &cobra.Command{
		Use:   "measure",
		Short: "Show what a task's measurement y = A(x) + n does to an image",
		Long: `Applies a task's operator and noise to an image and writes y as a picture
(--out, enlarged or scaled for viewing as solve's grids show it) and the raw
measurement as A shapes it (tensor "y" in the .safetensors beside it), and
prints the task's resolved operator and noise settings. With a face config
(--config configs/celeba64.yaml: data.dataset celeba) the task comes from
the face presets (configs/tasks/celeba64/) and the photo is cropped and
resized as CelebA's are, as solve --image does for a face model. The task
preset chooses the operator: a config file's measurement.operator block for
another operator does not apply (--set still overrides).
Operators: ` + strings.Join(op.Names(), ", ") + `.`,
		Example: `  diffinv measure --task sr4 --image digit.png --out y.png
  diffinv measure --config configs/celeba64.yaml --task inpaint-box --image face.jpg --out y.png
  diffinv measure --task deblur-motion --set measurement.operator.intensity=0.8 --image face.png --out y.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if image == "" || out == "" || taskName == "" {
				return fmt.Errorf("--task, --image and --out are required")
			}
			cf.applyFlags(cmd)
			// The config without the task picks the preset folder (a face
			// config, data.dataset celeba, takes configs/tasks/celeba64/).
			base, err := cf.load()
			if err != nil {
				return err
			}
			preset, err := task.LoadVariant(taskName, tasksDir, task.Variant(*base))
			if err != nil {
				return err
			}
			cf.presets = []config.Preset{preset.Config}
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if err := loaded(cmd, cfg); err != nil {
				return err
			}
			seed := cfg.Solver.Seed
			var x *tensor.Dense
			if cfg.Data.Dataset == "celeba" {
				// A face config: the photo is cropped and resized as CelebA's
				// are, to the config's image size (as solve --image does).
				if x, err = loadFacePhoto(image, cfg.Model.ImageSize); err != nil {
					return err
				}
			} else if x, err = data.LoadPNG(image); err != nil {
				return err
			}
			shape := [3]int{x.Shape()[1], x.Shape()[2], x.Shape()[3]}
			fmt.Fprintln(cmd.OutOrStdout(), taskLineShape(preset, cfg, shape))
			m := cfg.Measurement
			A, err := op.New(m.Operator.Name, m.Operator.Params, shape, rand.New(rand.NewSource(pipeline.OperatorSeed(seed))))
			if err != nil {
				return fmt.Errorf("measurement.operator: %w", err)
			}
			noise, err := op.NewNoise(m.Noise.Name, m.Noise.Sigma, m.Noise.Rate)
			if err != nil {
				return fmt.Errorf("measurement.noise: %w", err)
			}
			ax, err := A.Forward(x)
			if err != nil {
				return err
			}
			y, err := noise.Sample(ax, pipeline.NoiseRNGs(seed, 0, 1)[0])
			if err != nil {
				return err
			}
			if err := data.SavePNG(out, pipeline.DisplayY(y, A, shape[0], shape[1], shape[2])); err != nil {
				return err
			}
			raw := strings.TrimSuffix(out, filepath.Ext(out)) + ".safetensors"
			if err := checkpoint.Save(raw, map[string]*tensor.Dense{"y": y}, map[string]string{"task": preset.Name, "operator": m.Operator.Name}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (y of shape %v for viewing) and %s (raw y)\n", out, []int(y.Shape()), raw)
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&taskName, "task", "", "task preset name or .yaml path")
	cmd.Flags().StringVar(&image, "image", "", "input image (PNG/JPEG)")
	cmd.Flags().StringVar(&out, "out", "", "output PNG")
	cmd.Flags().StringVar(&tasksDir, "tasks", task.DefaultDir, "folder of task presets")
	cf.addSeed(cmd, "solver.seed")
	return cmd
}
