package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/eval"
	"github.com/diffinv/diffinv/internal/atomicfile"
	"github.com/diffinv/diffinv/internal/progress"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/metrics"
)

func newTrainClassifierCmd() *cobra.Command {
	var cf configFlags
	var dir, out string
	var refOnly, writeRef bool
	var epochs, batch, maxSteps int
	var lr float64
	var evalEvery bool
	var fidSeed int64
	cmd := &cobra.Command{
		Use:   "train-classifier",
		Short: "Train the MNIST evaluation classifier (features for FID/KID, labels for recognisability)",
		Long: `Trains the LeNet-style MNIST classifier behind ` + "`diffinv eval samples`" + ` and the
experiments' FID/KID, and writes it (safetensors) to classifier.out (--out). The
shipped one, models/classifier/classifier.safetensors, was trained with the
defaults.

Its settings are the config keys classifier.* (epochs, batch_size, lr,
final_lr_factor, seed, max_steps, eval_every, ref_seed, out) with data.dir (the
MNIST files) and data.limit (images kept of each split; 0 all), set like every
command's by --config, DIFFINV_* and --set; --data, --out, --epochs, --batch,
--lr, --seed, --max-steps, --eval-every and --fid-seed set those keys when given.

After training it computes the reference FID/KID numbers of real data
(metrics.ReferenceFIDs: training-set halves, 5000 vs 5000, train vs test,
five draws of 1000 training images vs test, subsets drawn with
classifier.ref_seed) and stores them in the file's metadata with the training
settings; the quality gate of ` + "`diffinv eval samples`" + ` reads them from there.

With --ref-only it trains nothing: it loads classifier.out, prints its test
accuracy and reference numbers, and with --write-ref stores them in its
metadata (the weights are rewritten bit for bit).`,
		Example: `  diffinv train-classifier --data ../shared/data/mnist --out models/classifier/classifier.safetensors
  diffinv train-classifier --config configs/mnist.yaml --set classifier.epochs=5 --out /tmp/c.safetensors
  diffinv train-classifier --ref-only --out models/classifier/classifier.safetensors
  diffinv train-classifier --ref-only --write-ref --out models/classifier/classifier.safetensors`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if writeRef && !refOnly {
				return fmt.Errorf("--write-ref needs --ref-only (training always stores the reference numbers)")
			}
			if refOnly {
				for _, name := range []string{"epochs", "batch", "lr", "seed", "max-steps", "eval-every"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s is a training flag, but --ref-only trains nothing", name)
					}
				}
			}
			cmdline := commandLine(cmd) // before the flags join the --set values
			cf.applyFlags(cmd)
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if cfg.Data.Dataset != "mnist" {
				return fmt.Errorf("train-classifier trains on MNIST, but data.dataset is %q (train-attr-classifier trains the CelebA one)", cfg.Data.Dataset)
			}
			if err := loaded(cmd, cfg); err != nil {
				return err
			}
			cl := cfg.Classifier
			dir, out := cfg.Data.Dir, cl.Out
			if refOnly {
				return refOnlyRun(cmd, dir, cfg.Data.Limit, out, cl.RefSeed, writeRef)
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return fmt.Errorf("classifier.out: %w", err)
			}
			train, test, err := loadMNISTSplits(dir, cfg.Data.Limit)
			if err != nil {
				return err
			}
			var bar *progress.Bar
			c, rep, err := metrics.TrainClassifier(cmd.Context(), train, test, classifierOptions(cl), func(p metrics.TrainProgress) {
				if bar == nil {
					bar = progress.New(cmd.ErrOrStderr(), "train-classifier", p.Total, progress.WithUnit("step"))
				}
				bar.Status("epoch %d loss %.4f", p.Epoch+1, p.Loss)
				bar.Set(p.Step)
			})
			if err != nil {
				return err
			}
			if bar != nil {
				bar.Finish()
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "test accuracy %.2f%% after %d steps (%s, GOMAXPROCS %d), final loss %.4f, per epoch %v\n",
				100*rep.TestAccuracy, rep.Steps, rep.TrainTime.Round(time.Second), runtime.GOMAXPROCS(0), rep.FinalLoss, rep.EpochTestAcc)
			md := map[string]string{
				"test_accuracy": strconv.FormatFloat(rep.TestAccuracy, 'f', 4, 64),
				"epochs":        strconv.Itoa(rep.Options.Epochs),
				"batch_size":    strconv.Itoa(rep.Options.BatchSize),
				"lr":            strconv.FormatFloat(rep.Options.LR, 'g', -1, 64),
				"seed":          strconv.FormatInt(rep.Options.Seed, 10),
				"steps":         strconv.Itoa(rep.Steps),
				"train_seconds": strconv.FormatFloat(rep.TrainTime.Seconds(), 'f', 0, 64),
				"command":       cmdline,
			}
			refs, err := metrics.ReferenceFIDs(c, train, test, cl.RefSeed, w)
			if err != nil {
				return err
			}
			for k, v := range refs {
				md[k] = v
			}
			if err := c.Save(out, md); err != nil {
				return err
			}
			fmt.Fprintf(w, "wrote %s\n", out)
			return nil
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&dir, "data", "", "folder with the MNIST IDX files (sets data.dir)")
	f.StringVar(&out, "out", "", "output file, with --ref-only the classifier to load (sets classifier.out, default "+DefaultClassifier+")")
	f.IntVar(&epochs, "epochs", 0, "epochs (sets classifier.epochs)")
	f.IntVar(&batch, "batch", 0, "batch size (sets classifier.batch_size)")
	f.Float64Var(&lr, "lr", 0, "peak learning rate, half-cosine decay (sets classifier.lr)")
	cf.addSeed(cmd, "classifier.seed")
	f.IntVar(&maxSteps, "max-steps", 0, "stop after this many steps, 0 all epochs (sets classifier.max_steps)")
	f.BoolVar(&evalEvery, "eval-every", true, "evaluate test accuracy after every epoch, else after the last (sets classifier.eval_every)")
	f.Int64Var(&fidSeed, "fid-seed", 0, "seed of the reference FID/KID subsets (sets classifier.ref_seed)")
	f.BoolVar(&refOnly, "ref-only", false, "load --out instead of training and print its reference FIDs")
	f.BoolVar(&writeRef, "write-ref", false, "with --ref-only, store the reference FIDs in --out's metadata")
	for flag, key := range classifierFlagKeys {
		cf.bind(flag, key)
	}
	cf.bind("data", "data.dir")
	return cmd
}

// classifierFlagKeys are the flags of train-classifier and
// train-attr-classifier that set classifier.* keys.
var classifierFlagKeys = map[string]string{
	"out": "classifier.out", "epochs": "classifier.epochs", "batch": "classifier.batch_size", "lr": "classifier.lr",
	"max-steps": "classifier.max_steps", "eval-every": "classifier.eval_every", "fid-seed": "classifier.ref_seed", "ref-n": "classifier.ref_n",
}

// classifierOptions are the training options of the classifier section.
func classifierOptions(c config.Classifier) metrics.TrainOptions {
	return metrics.TrainOptions{Epochs: c.Epochs, BatchSize: c.BatchSize, LR: c.LR, FinalLRFactor: c.FinalLRFactor,
		Seed: c.Seed, MaxSteps: c.MaxSteps, EvalEvery: c.EvalEvery}
}

// loadMNISTSplits loads the MNIST training and test sets from dir, the
// first limit images of each (0: all).
func loadMNISTSplits(dir string, limit int) (train, test *data.Dataset, err error) {
	if train, err = data.LoadMNIST(dir, "train"); err != nil {
		return nil, nil, err
	}
	if test, err = data.LoadMNIST(dir, "test"); err != nil {
		return nil, nil, err
	}
	if limit > 0 {
		train, test = train.Head(limit), test.Head(limit)
	}
	return train, test, nil
}

// refOnlyRun recomputes the reference numbers of the classifier at path
// and, with write, stores them in its metadata (other metadata kept, the
// weights rewritten bit for bit).
func refOnlyRun(cmd *cobra.Command, dir string, limit int, path string, fidSeed int64, write bool) error {
	c, err := metrics.LoadClassifier(path)
	if err != nil {
		return err
	}
	train, test, err := loadMNISTSplits(dir, limit)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	acc, err := c.Accuracy(test)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "test accuracy %.4f on %d images\n", acc, test.Len())
	refs, err := metrics.ReferenceFIDs(c, train, test, fidSeed, w)
	if err != nil || !write {
		return err
	}
	if err := c.Save(path, refs); err != nil {
		return err
	}
	fmt.Fprintf(w, "rewrote %s with the reference numbers in its metadata\n", path)
	return nil
}

// commandLine is the training command as run, for the metadata: the
// command path, the config file, the --set values and the training flags
// given.
func commandLine(cmd *cobra.Command) string {
	parts := []string{cmd.CommandPath()}
	if cmd.Flags().Changed("config") {
		parts = append(parts, "--config="+cmd.Flags().Lookup("config").Value.String())
	}
	if sets, err := cmd.Flags().GetStringArray("set"); err == nil {
		for _, s := range sets {
			parts = append(parts, "--set="+s)
		}
	}
	for _, name := range []string{"data", "out", "epochs", "batch", "lr", "seed", "max-steps", "eval-every", "fid-seed"} {
		if cmd.Flags().Changed(name) {
			parts = append(parts, "--"+name+"="+cmd.Flags().Lookup(name).Value.String())
		}
	}
	return strings.Join(parts, " ")
}

func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "eval", Short: "Evaluate a model"}
	var cf configFlags
	var prec precisionFlag
	var eng engineFlags
	var ckpt, classifier, samplerName, leastPath, reference string
	var n, steps int
	samples := &cobra.Command{
		Use:   "samples",
		Short: "FID and KID of a model's samples against real test images, with the quality gate (MNIST or CelebA)",
		Long: `Draws --n samples (sampler and steps as ` + "`diffinv sample`" + `), runs the
evaluation classifier on them and on the MNIST test set (data.dir), and prints
the classifier-feature FID and KID against the test set, the share of samples
labelled with confidence ≥ 0.9, and the class histogram. FID is biased at
small n: compare numbers at the same n only. --precision sets the UNet's
arithmetic; the classifier always runs float32.

For a CelebA model (data.dataset celeba) it uses the face attribute classifier
(` + DefaultAttrClassifier + `): FID and KID against 1000 test faces on its features,
the share of the 10 most frequent attributes among samples and test faces, and
the median distance to the nearest training crop for samples and test faces;
the gate asks FID ≤ 2× the train-vs-test reference, shares within 5 points and a
median distance at least 0.8× the test faces' (a memorising model fails).

For MNIST it also scores as many real digits as samples (drawn once, seed 0):
the confident share of test digits and the FID of training digits against the
test set, and prints issue 17's real-digit level: samples at most 2 points less
confident than real test digits and an FID at most 1.5× the real one.

The gate's protocol is sample.sampler ddim, sample.steps 50, sample.num_samples
1000 and sample.seed 1: a layer above the checkpoint's run config and below
--config, DIFFINV_* and --set, so that a key set there changes it; --sampler,
--steps, --n and --seed set those keys when given, above all.`,
		Example: "  diffinv eval samples --checkpoint models/mnist/model.safetensors --n 1000 --sampler ddim --steps 50",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The quality gate's protocol is a preset over the checkpoint's
			// run config; the flags given are the top layer.
			cf.presets = []config.Preset{eval.Protocol}
			cf.applyFlags(cmd)
			if reference != "test" && reference != "val" {
				return fmt.Errorf("--reference %q: want test or val", reference)
			}
			if leastPath != "" {
				if err := atomicfile.CheckWritable(leastPath); err != nil {
					return fmt.Errorf("--least-confident: %w", err)
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
			// The UNet runs in the precision asked; the evaluation
			// classifier (a small LeNet, not a UNet) always runs float32,
			// so FID and KID features do not depend on it.
			netDen, err := eng.denoiser(ckpt, net, cfg, &prec, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if cfg.Data.Dataset == "celeba" {
				if leastPath != "" {
					return fmt.Errorf("--least-confident %s: for MNIST models only (the face gate scores attributes, not one confident class per sample)", leastPath)
				}
				if !cmd.Flags().Changed("classifier") {
					classifier = DefaultAttrClassifier
				}
				return evalFaces(cmd, netDen, cfg, classifier, reference)
			}
			if reference != "test" {
				return fmt.Errorf("--reference %s: face models only (the MNIST level is read against the test digits)", reference)
			}
			c, err := metrics.LoadClassifier(classifier)
			if err != nil {
				return err
			}
			test, err := data.LoadMNIST(cfg.Data.Dir, "test")
			if err != nil {
				return fmt.Errorf("reference set: %w (set data.dir)", err)
			}
			ref, err := metrics.NewReference(c, test)
			if err != nil {
				return err
			}
			s := cfg.Sample
			bar := progress.New(cmd.ErrOrStderr(), "eval "+s.Sampler, eval.Steps(cfg), progress.WithUnit("step"))
			rep, drawn, err := eval.Samples(cfg, netDen, c, ref, func(done int) { bar.Set(done) })
			if err != nil {
				return err
			}
			bar.Finish()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s, %d steps, %d samples vs %d test images\n%s\n", s.Sampler, s.Steps, s.NumSamples, test.Len(), rep)
			if leastPath != "" {
				line, err := saveLeastConfident(leastPath, rep, drawn, 64)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, line)
			}
			// The quality gate: FID within 3× that of real digits at the
			// same sample count (1000 training images vs the test set), as
			// FID at n = 1000 is biased far above the 30k-vs-30k halves'.
			if ref1000, err := c.ReferenceFID(metrics.MetaRefFID1000); err == nil {
				halves, _ := c.ReferenceFID(metrics.MetaRefFIDHalves)
				fmt.Fprintf(w, "reference FIDs: 1000 train vs test %.2f; train halves (30k vs 30k) %.2f\n", ref1000, halves)
				if fails := rep.Check(metrics.DefaultGate(ref1000, 3)); len(fails) > 0 {
					fmt.Fprintf(w, "quality gate (FID ≤ %.2f, ≥ 90%% confident, each class 5–15%%): FAIL: %s\n", 3*ref1000, strings.Join(fails, "; "))
				} else {
					fmt.Fprintf(w, "quality gate (FID ≤ %.2f, ≥ 90%% confident, each class 5–15%%): PASS\n", 3*ref1000)
				}
			}
			// Issue 17's real-digit level: the samples against as many real
			// digits, drawn once (seed 0) whatever the sample seed.
			train, err := data.LoadMNIST(cfg.Data.Dir, "train")
			if err != nil {
				return fmt.Errorf("real digits: %w (set data.dir)", err)
			}
			real, err := metrics.NewRealDigits(c, train, test, ref, rep.N, 0)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "real digits (%d of each split, seed 0): test digits %.1f%% confident; training digits vs test FID %.3f, KID %.5f, %.1f%% confident\n",
				real.N, 100*real.TestConfident, real.Train.FID, real.Train.KID.Mean, 100*real.Train.Confident)
			l := metrics.DefaultRealLevel
			verdict := "PASS"
			if fails := rep.CheckReal(real, l); len(fails) > 0 {
				verdict = "FAIL: " + strings.Join(fails, "; ")
			}
			fmt.Fprintf(w, "real-digit level (confident ≥ real test digits − %.0f points = %.1f%%, FID ≤ %.1f× real = %.2f): %s\n",
				100*l.MaxConfidentGap, 100*(real.TestConfident-l.MaxConfidentGap), l.MaxFIDRatio, l.MaxFIDRatio*real.Train.FID, verdict)
			return nil
		},
	}
	cf.add(samples)
	prec.add(samples)
	eng.add(samples)
	f := samples.Flags()
	f.StringVar(&ckpt, "checkpoint", DefaultModel, "model checkpoint (.safetensors, or a model folder such as models/mnist)")
	f.StringVar(&classifier, "classifier", DefaultClassifier, "evaluation classifier (a CelebA model defaults to "+DefaultAttrClassifier+")")
	f.StringVar(&samplerName, "sampler", "", "sampler (sets sample.sampler; the protocol's ddim)")
	f.StringVar(&reference, "reference", "test", "face models: the split of the 1000 reference faces, test (reported numbers, the gate) or val (choices: weights, candidates)")
	f.StringVar(&leastPath, "least-confident", "", "MNIST: also write the 64 least confident samples as a PNG grid to this file (least confident first, 8 per row)")
	f.IntVar(&n, "n", 0, "samples (sets sample.num_samples; the protocol's 1000)")
	f.IntVar(&steps, "steps", 0, "sampling steps (sets sample.steps; the protocol's 50)")
	cf.addSeed(samples, "sample.seed")
	cf.bind("sampler", "sample.sampler")
	cf.bind("steps", "sample.steps")
	cf.bind("n", "sample.num_samples")
	cmd.AddCommand(samples)
	return cmd
}

// saveLeastConfident writes the k least confident of the samples drawn (by
// rep's per-sample probabilities) as a grid to path, least confident first,
// and returns a line naming the file, their probability range and the
// classes they were given.
func saveLeastConfident(path string, rep metrics.SampleReport, drawn *tensor.Dense, k int) (string, error) {
	idx := rep.LeastConfident(k)
	if len(idx) == 0 || drawn == nil {
		return "", fmt.Errorf("--least-confident %s: no samples", path)
	}
	sh := drawn.Shape()
	per := sh.TotalSize() / sh[0]
	src := drawn.Data().([]float32)
	out := make([]float32, 0, len(idx)*per)
	var classes [metrics.NumClasses]int
	for _, i := range idx {
		out = append(out, src[i*per:(i+1)*per]...)
		classes[rep.Label[i]]++
	}
	grid := tensors.FromSlice(out, append([]int{len(idx)}, sh[1:]...)...)
	img, err := data.GridImage(grid, data.GridOptions{PerRow: 8, Pad: 2, Scale: 2, PadGray: 128})
	if err != nil {
		return "", fmt.Errorf("--least-confident %s: %w", path, err)
	}
	if err := data.WritePNG(path, img); err != nil {
		return "", fmt.Errorf("--least-confident %s: %w", path, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "least confident: %s (%d samples, top probability %.3f to %.3f; labelled", path, len(idx), rep.TopProb[idx[0]], rep.TopProb[idx[len(idx)-1]])
	for c, m := range classes {
		fmt.Fprintf(&b, " %d:%d", c, m)
	}
	b.WriteString(")")
	return b.String(), nil
}
