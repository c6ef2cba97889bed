package main

import (
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/atomicfile"
	"github.com/diffinv/diffinv/internal/progress"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/pipeline"
	"github.com/diffinv/diffinv/inverse/solve"
	"github.com/diffinv/diffinv/inverse/task"
)

// imageSource is where solve and measure take ground-truth images from.
type imageSource struct {
	image   string
	dataset string
	n       int
	offset  int
}

func (s *imageSource) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.image, "image", "", "a PNG/JPEG ground-truth image")
	cmd.Flags().StringVar(&s.dataset, "dataset", "", "dataset and split, NAME-SPLIT: "+strings.Join(data.SplitNames(), ", ")+" (data.dir holds the MNIST files or is the CelebA root)")
	cmd.Flags().IntVar(&s.n, "n", 8, "images from --dataset")
	cmd.Flags().IntVar(&s.offset, "offset", 0, "index of the first --dataset image")
}

// load returns the images (N×C×H×W in [−1, 1]) and the dataset index of the first.
func (s *imageSource) load(cfg *config.Config) (*tensor.Dense, int, error) {
	c, size := cfg.Model.InChannels, cfg.Model.ImageSize
	switch {
	case s.image != "" && s.dataset != "":
		return nil, 0, fmt.Errorf("give --image or --dataset, not both")
	case s.image != "" && cfg.Data.Dataset == "celeba":
		x, err := loadFacePhoto(s.image, size)
		return x, 0, err
	case s.image != "":
		// Refused from the header when larger than the model takes.
		img, err := data.LoadPNGMax(s.image, size)
		if err != nil {
			return nil, 0, err
		}
		return fitImage(s.image, img, c, size)
	case s.dataset != "":
		kind, split, err := data.ParseSplitName(s.dataset)
		if err != nil {
			return nil, 0, fmt.Errorf("--dataset: %w", err)
		}
		if s.n <= 0 || s.offset < 0 {
			return nil, 0, fmt.Errorf("--n %d --offset %d: want n > 0 and offset ≥ 0", s.n, s.offset)
		}
		var ds *data.Dataset
		if kind == "celeba" {
			ds, _, err = data.LoadCelebA(cfg.Data.Dir, split, size, cfg.Data.Crop, s.offset+s.n)
			if err != nil {
				return nil, 0, fmt.Errorf("--dataset %s: %w (set data.dir to the CelebA root)", s.dataset, err)
			}
		} else {
			ds, err = data.Load(data.Config{Kind: kind, Dir: cfg.Data.Dir, Split: split, Size: size})
			if err != nil {
				return nil, 0, fmt.Errorf("--dataset %s: %w (set data.dir to the folder with the MNIST files)", s.dataset, err)
			}
		}
		if s.offset+s.n > ds.Len() {
			return nil, 0, fmt.Errorf("--offset %d --n %d: the %s set has %d images", s.offset, s.n, s.dataset, ds.Len())
		}
		idx := make([]int, s.n)
		for i := range idx {
			idx[i] = s.offset + i
		}
		x, err := ds.Batch(idx)
		return x, s.offset, err
	}
	return nil, 0, fmt.Errorf("give --image FILE or --dataset mnist-test --n N")
}

// loadFacePhoto reads a user's own aligned face photo for a face model,
// cropped and resized as CelebA's are, as a 1×3×size×size batch.
func loadFacePhoto(path string, size int) (*tensor.Dense, error) {
	ds, err := data.LoadFace(path, size)
	if err != nil {
		return nil, err
	}
	return ds.Batch([]int{0})
}

// fitImage converts an image to c channels and checks its size.
func fitImage(name string, img *tensor.Dense, c, size int) (*tensor.Dense, int, error) {
	ic, h, w := img.Shape()[1], img.Shape()[2], img.Shape()[3]
	if h != size || w != size {
		return nil, 0, fmt.Errorf("%s is %d×%d, the model wants %d×%d (resize it first)", name, w, h, size, size)
	}
	if ic == c {
		return img, 0, nil
	}
	out := tensors.New(1, c, h, w)
	src, dst := tensors.F32(img), tensors.F32(out)
	for p := 0; p < h*w; p++ {
		var mean float32
		for ch := 0; ch < ic; ch++ {
			mean += src[ch*h*w+p] / float32(ic)
		}
		for ch := 0; ch < c; ch++ {
			dst[ch*h*w+p] = mean
		}
	}
	return out, 0, nil
}

func newSolveCmd() *cobra.Command {
	var cf configFlags
	var eng engineFlags
	var prec precisionFlag
	var src imageSource
	var ckpt, taskName, method, out, tasksDir string
	cmd := &cobra.Command{
		Use:   "solve",
		Short: "Solve an inverse problem y = A(x) + n with a diffusion prior",
		Long: `Measures ground-truth images with a task's operator and noise, solves with a
diffusion method and a classical baseline, and writes to --out:

  truth_NNNNN.png, y_NNNNN.png, recon_NNNNN.png, baseline_NNNNN.png   per image
  grid.png         rows: truth, y, baseline, reconstruction
  results.safetensors   truth, y (raw, as A shapes it), recon, baseline
  metrics.json     per-image PSNR, SSIM, consistency ‖y − A(x̂)‖, −log p(y | A(x̂)) under the noise model, the baseline's, seconds

Tasks are presets in configs/tasks (` + strings.Join(mustNames(task.DefaultDir), ", ") + `);
any key can be overridden with --set (measurement.operator.*, measurement.noise.*,
solver.*). Methods: ` + strings.Join(solve.Names(), ", ") + `.`,
		Example: `  diffinv solve --checkpoint models/mnist/model.safetensors --task sr4 --method dps --dataset mnist-test --n 4 --out out/sr4-dps
  diffinv solve --checkpoint C --task inpaint-box --method ddnm --set measurement.noise.name=clean --image digit.png --out out/box
  diffinv solve --checkpoint C --task deblur-gauss --method dps --set solver.scale=0.5 --dataset mnist-test --n 16 --seed 3 --out out/gauss`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required (a folder)")
			}
			if taskName == "" {
				return fmt.Errorf("--task is required (one of %s, or a preset .yaml path)", strings.Join(mustNames(tasksDir), ", "))
			}
			cf.applyFlags(cmd)
			if err := prec.set(&cf); err != nil {
				return err
			}
			net, cfg, preset, err := loadCheckpointTask(ckpt, &cf, taskName, tasksDir)
			if err != nil {
				return err
			}
			if err := loaded(cmd, cfg); err != nil {
				return err
			}
			seed := cfg.Solver.Seed
			netDen, err := eng.denoiser(ckpt, net, cfg, &prec, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			sched, den, err := schedule(cfg.Diffusion, 0, netDen)
			if err != nil {
				return err
			}
			setup, err := pipeline.New(cfg, den, sched, preset.Defaults(cfg.Solver.Method), seed)
			if err != nil {
				return fmt.Errorf("task %s: %w", preset.Name, err)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), taskLine(preset, cfg))
			x, first, err := src.load(cfg)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			n := x.Shape()[0]
			bar := progress.New(cmd.ErrOrStderr(), fmt.Sprintf("%s %s", preset.Name, cfg.Solver.Method), 1, progress.WithUnit("step"))
			res, err := setup.Solve(cmd.Context(), x, first, func(done, total int) {
				setTotal(bar, total)
				bar.Set(done)
			})
			if err != nil {
				return err
			}
			bar.Finish()
			if err := writeSolveOutputs(out, preset.Name, cfg, setup, res, first, seed); err != nil {
				return err
			}
			printSolveTable(cmd.OutOrStdout(), preset.Name, setup, res, first)
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d reconstructions, grid.png and metrics.json to %s\n", n, out)
			return nil
		},
	}
	cf.add(cmd)
	eng.add(cmd)
	prec.add(cmd)
	src.add(cmd)
	cmd.Flags().StringVar(&ckpt, "checkpoint", "", "model checkpoint (.safetensors, or a model folder such as models/mnist)")
	cmd.Flags().StringVar(&taskName, "task", "", "task preset name or .yaml path")
	cmd.Flags().StringVar(&method, "method", "", "solver (sets solver.method): "+strings.Join(solve.Names(), ", "))
	cmd.Flags().StringVar(&out, "out", "", "output folder")
	cmd.Flags().StringVar(&tasksDir, "tasks", task.DefaultDir, "folder of task presets")
	cf.bind("method", "solver.method")
	cf.addSeed(cmd, "solver.seed")
	return cmd
}

func mustNames(dir string) []string {
	n, err := task.Names(dir)
	if err != nil {
		return []string{"(run from the repository root to list them)"}
	}
	return n
}

// setTotal lets a bar learn its total once the work knows it.
func setTotal(b *progress.Bar, total int) { b.SetTotal(total) }

// solveMetrics is metrics.json.
type solveMetrics struct {
	Task       string             `json:"task"`
	Method     string             `json:"method"`
	Baseline   string             `json:"baseline"`
	Seed       int64              `json:"seed"`
	Operator   config.Operator    `json:"operator"`
	Noise      config.Noise       `json:"noise"`
	Options    map[string]any     `json:"solver_options"`
	Images     []imageMetrics     `json:"images"`
	Mean       map[string]float64 `json:"mean"`
	SecPerImg  float64            `json:"seconds_per_image"`
	BaseSecImg float64            `json:"baseline_seconds_per_image"`
}

type imageMetrics struct {
	Index               int      `json:"index"`
	PSNR                float64  `json:"psnr"`
	SSIM                *float64 `json:"ssim"`
	Consistency         float64  `json:"consistency"`
	NegLogLik           *float64 `json:"neg_log_lik,omitempty"` // −log p(y | A(x̂)), the noise model's
	BaselinePSNR        *float64 `json:"baseline_psnr,omitempty"`
	BaselineSSIM        *float64 `json:"baseline_ssim,omitempty"`
	BaselineConsistency *float64 `json:"baseline_consistency,omitempty"`
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func at(s []float64, i int) *float64 {
	if i >= len(s) {
		return nil
	}
	return finite(s[i])
}

func writeSolveOutputs(out, taskName string, cfg *config.Config, s *pipeline.Setup, r *pipeline.Result, first int, seed int64) error {
	c, h, w := s.Shape[0], s.Shape[1], s.Shape[2]
	n := r.Truth.Shape()[0]
	yDisp := pipeline.DisplayY(r.Y, s.A, c, h, w)
	rows := []*tensor.Dense{r.Truth, yDisp}
	if r.Baseline != nil {
		rows = append(rows, r.Baseline)
	}
	rows = append(rows, r.Recon)
	for i := 0; i < n; i++ {
		idx := first + i
		for name, t := range map[string]*tensor.Dense{"truth": r.Truth, "y": yDisp, "recon": r.Recon, "baseline": r.Baseline} {
			if t == nil {
				continue
			}
			if err := data.SavePNG(filepath.Join(out, fmt.Sprintf("%s_%05d.png", name, idx)), pick(t, i)); err != nil {
				return err
			}
		}
	}
	if err := saveRowsGrid(filepath.Join(out, "grid.png"), rows); err != nil {
		return err
	}
	raw := map[string]*tensor.Dense{"truth": r.Truth, "y": r.Y, "recon": r.Recon}
	if r.Baseline != nil {
		raw["baseline"] = r.Baseline
	}
	if err := checkpoint.Save(filepath.Join(out, "results.safetensors"), raw, map[string]string{"task": taskName, "method": s.Method}); err != nil {
		return err
	}
	m := solveMetrics{Task: taskName, Method: s.Method, Baseline: s.Baseline, Seed: seed, Operator: cfg.Measurement.Operator,
		Noise: cfg.Measurement.Noise, Options: cfg.Solver.Options, Mean: map[string]float64{},
		SecPerImg: r.SecondsPerImage, BaseSecImg: r.BaselineSecondsPerImage}
	for i := 0; i < n; i++ {
		m.Images = append(m.Images, imageMetrics{Index: first + i, PSNR: r.PSNR[i], SSIM: at(r.SSIM, i), Consistency: r.Consistency[i],
			NegLogLik: at(r.NegLogLik, i), BaselinePSNR: at(r.BaselinePSNR, i), BaselineSSIM: at(r.BaseSSIM, i), BaselineConsistency: at(r.BaselineConsistency, i)})
	}
	for name, v := range map[string][]float64{"psnr": r.PSNR, "ssim": r.SSIM, "consistency": r.Consistency, "neg_log_lik": r.NegLogLik,
		"baseline_psnr": r.BaselinePSNR, "baseline_ssim": r.BaseSSIM, "baseline_consistency": r.BaselineConsistency} {
		if mu := mean(v); !math.IsNaN(mu) && !math.IsInf(mu, 0) {
			m.Mean[name] = mu
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(out, "metrics.json"), append(b, '\n'))
}

func printSolveTable(w io.Writer, taskName string, s *pipeline.Setup, r *pipeline.Result, first int) {
	fmt.Fprintf(w, "%-8s %10s %8s %12s %14s %14s\n", "image", "PSNR dB", "SSIM", "‖y−A(x̂)‖", s.Baseline+" PSNR", s.Baseline+" SSIM")
	for i := range r.PSNR {
		fmt.Fprintf(w, "%-8d %10.2f %8.3f %12.4f %14s %14s\n", first+i, r.PSNR[i], r.SSIM[i], r.Consistency[i], fmtOpt(r.BaselinePSNR, i, "%.2f"), fmtOpt(r.BaseSSIM, i, "%.3f"))
	}
	fmt.Fprintf(w, "%-8s %10.2f %8.3f %12.4f %14s %14s   (%s, %s, %.2f s/image)\n", "mean", mean(r.PSNR), mean(r.SSIM), mean(r.Consistency),
		fmtMean(r.BaselinePSNR, "%.2f"), fmtMean(r.BaseSSIM, "%.3f"), taskName, s.Method, r.SecondsPerImage)
}

func fmtOpt(v []float64, i int, f string) string {
	if i >= len(v) {
		return "-"
	}
	return fmt.Sprintf(f, v[i])
}

func fmtMean(v []float64, f string) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf(f, mean(v))
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// pick returns image i of a batch as a 1×C×H×W tensor.
func pick(t *tensor.Dense, i int) *tensor.Dense {
	s := t.Shape()
	per := s[1] * s[2] * s[3]
	return tensors.FromSlice(append([]float32(nil), tensors.F32(t)[i*per:(i+1)*per]...), 1, s[1], s[2], s[3])
}

// saveRowsGrid writes one grid row per batch, images enlarged for viewing.
func saveRowsGrid(path string, rows []*tensor.Dense) error {
	scale := 1
	if h := rows[0].Shape()[2]; h < 64 {
		scale = (64 + h - 1) / h
	}
	var imgs []image.Image
	for _, r := range rows {
		g, err := data.GridImage(r, data.GridOptions{PerRow: r.Shape()[0], Pad: 2, Scale: scale})
		if err != nil {
			return err
		}
		imgs = append(imgs, g)
	}
	img, err := data.StackRows(2, 128, imgs...)
	if err != nil {
		return err
	}
	return data.WritePNG(path, img)
}

// taskLine is the one line a command prints about the task it runs: the
// preset file and the operator and noise settings it resolved to (the
// user never hand-sets operator sizes: a face model's presets differ).
func taskLine(p *task.Preset, cfg *config.Config) string {
	return taskLineShape(p, cfg, [3]int{cfg.Model.InChannels, cfg.Model.ImageSize, cfg.Model.ImageSize})
}

// taskLineShape is taskLine for an image of the given C×H×W shape.
func taskLineShape(p *task.Preset, cfg *config.Config, shape [3]int) string {
	var params []string
	for _, l := range cfg.Flat() {
		if strings.HasPrefix(l, "measurement.operator.") && !strings.HasPrefix(l, "measurement.operator.name:") {
			params = append(params, strings.TrimPrefix(l, "measurement.operator."))
		}
	}
	n := cfg.Measurement.Noise
	noise := n.Name
	switch n.Name {
	case "gaussian":
		noise = fmt.Sprintf("gaussian σ_y %g on [-1, 1]", n.Sigma)
	case "poisson":
		noise = fmt.Sprintf("poisson rate %g", n.Rate)
	}
	return fmt.Sprintf("task %s (%s): operator %s {%s}, noise %s, image %d×%d×%d",
		p.Name, p.Path, cfg.Measurement.Operator.Name, strings.Join(params, ", "), noise, shape[0], shape[1], shape[2])
}
