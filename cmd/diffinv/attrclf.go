package main

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/gonum/mat"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/eval"
	"github.com/diffinv/diffinv/internal/progress"
	"github.com/diffinv/diffinv/metrics"
)

// DefaultAttrClassifier is the shipped CelebA attribute classifier.
const DefaultAttrClassifier = "models/celeba-attr/classifier.safetensors"

// Metadata keys of the face classifier's reference distances.
const (
	MetaFaceRefFID = "ref_fid_train1000_vs_test1000"
	MetaFaceRefKID = "ref_kid_train1000_vs_test1000"
)

// attrClassifierDefaults is train-attr-classifier's preset, below the
// config file: the CelebA data and the settings the shipped classifier was
// trained with where they differ from the classifier section's defaults
// (the MNIST classifier's). model.in_channels 3 only lets data.dataset
// celeba validate; no UNet is built.
var attrClassifierDefaults = config.Preset{Name: "train-attr-classifier defaults", YAML: []byte(`data:
  dataset: celeba
  dir: ../shared/data/celeba
model:
  in_channels: 3
classifier:
  epochs: 4
  out: ` + DefaultAttrClassifier + `
`)}

func newTrainAttrClassifierCmd() *cobra.Command {
	var cf configFlags
	var dir, out string
	var limit, refN, epochs, batch, maxSteps int
	var lr float64
	var fidSeed int64
	cmd := &cobra.Command{
		Use:   "train-attr-classifier",
		Short: "Train the CelebA attribute classifier (features for face FID/KID, attribute statistics)",
		Long: `Trains the face feature net behind the CelebA quality gate on the 40 attributes of
the official train split (64×64 crops, data.dataset celeba's pipeline), reports its
accuracy per attribute on the test split, computes the reference distances of real
faces (FID and KID between classifier.ref_n test faces and as many training
faces, drawn with classifier.ref_seed) and writes the weights with those numbers
in their metadata to classifier.out.

Its settings are config keys, as train-classifier's: classifier.* with data.dir
(the CelebA root) and data.limit (images kept of each split; 0 all), set by
--config, DIFFINV_* and --set over this command's defaults (data.dataset celeba,
data.dir ../shared/data/celeba, classifier.epochs 4, classifier.out
` + DefaultAttrClassifier + `); --data, --out, --epochs, --batch, --lr, --seed,
--max-steps, --limit, --ref-n and --fid-seed set those keys when given.`,
		Example: `  diffinv train-attr-classifier --data ../shared/data/celeba --out ` + DefaultAttrClassifier + `
  diffinv train-attr-classifier --config configs/celeba64.yaml --set classifier.max_steps=100 --out /tmp/attr.safetensors`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cf.presets = []config.Preset{attrClassifierDefaults}
			cf.applyFlags(cmd)
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if cfg.Data.Dataset != "celeba" {
				return fmt.Errorf("train-attr-classifier trains on CelebA, but data.dataset is %q (train-classifier trains the MNIST one)", cfg.Data.Dataset)
			}
			if err := loaded(cmd, cfg); err != nil {
				return err
			}
			cl := cfg.Classifier
			dir, out, limit := cfg.Data.Dir, cl.Out, cfg.Data.Limit
			refN, fidSeed := cl.RefN, cl.RefSeed
			opts := classifierOptions(cl)
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return fmt.Errorf("classifier.out: %w", err)
			}
			w := cmd.OutOrStdout()
			t0 := time.Now()
			train, trainLab, err := data.LoadCelebA(dir, "train", metrics.AttrSide, 0, limit)
			if err != nil {
				return err
			}
			test, testLab, err := data.LoadCelebA(dir, "test", metrics.AttrSide, 0, limit)
			if err != nil {
				return err
			}
			if trainLab.Attrs == nil || testLab.Attrs == nil {
				return fmt.Errorf("data.dir %s: no %s, want CelebA's attribute labels", dir, data.CelebAAttrFile)
			}
			fmt.Fprintf(w, "loaded %d train and %d test faces in %s\n", train.Len(), test.Len(), time.Since(t0).Round(time.Second))
			var bar *progress.Bar
			clf, rep, err := metrics.TrainAttrClassifier(cmd.Context(), train, trainLab.Attrs, trainLab.AttrNames, test, testLab.Attrs, opts,
				func(p metrics.TrainProgress) {
					if bar == nil {
						bar = progress.New(cmd.ErrOrStderr(), "train-attr-classifier", p.Total, progress.WithUnit("step"))
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
			fmt.Fprintf(w, "mean test accuracy %.2f%% over %d attributes after %d steps (%s, GOMAXPROCS %d), final loss %.4f\n",
				100*rep.MeanTestAccuracy, len(rep.TestAccuracy), rep.Steps, rep.TrainTime.Round(time.Second), runtime.GOMAXPROCS(0), rep.FinalLoss)
			base := metrics.AttrShares(boolMatrix(testLab.Attrs))
			fmt.Fprintf(w, "| attribute | test accuracy | share of test faces |\n|---|---|---|\n")
			for j, name := range trainLab.AttrNames {
				fmt.Fprintf(w, "| %s | %.1f %% | %.1f %% |\n", name, 100*rep.TestAccuracy[j], 100*base[j])
			}
			md := map[string]string{
				"test_accuracy_mean": strconv.FormatFloat(rep.MeanTestAccuracy, 'f', 4, 64),
				"test_accuracy":      joinFloats(rep.TestAccuracy, 4),
				"epochs":             strconv.Itoa(rep.Options.Epochs),
				"batch_size":         strconv.Itoa(rep.Options.BatchSize),
				"lr":                 strconv.FormatFloat(rep.Options.LR, 'g', -1, 64),
				"seed":               strconv.FormatInt(rep.Options.Seed, 10),
				"steps":              strconv.Itoa(rep.Steps),
				"train_images":       strconv.Itoa(train.Len()),
				"train_seconds":      strconv.FormatFloat(rep.TrainTime.Seconds(), 'f', 0, 64),
			}
			fid, kid, err := faceReference(clf, train, test, refN, fidSeed)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "reference: %d train vs %d test faces: FID %.3f, KID %.5f\n", refN, refN, fid, kid)
			md[MetaFaceRefFID] = strconv.FormatFloat(fid, 'f', 4, 64)
			md[MetaFaceRefKID] = strconv.FormatFloat(kid, 'f', 6, 64)
			md["ref_n"], md["fid_seed"] = strconv.Itoa(refN), strconv.FormatInt(fidSeed, 10)
			if err := clf.Save(out, md); err != nil {
				return err
			}
			fmt.Fprintf(w, "wrote %s\n", out)
			return nil
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&dir, "data", "", "CelebA root folder, label files and img_align_celeba* (sets data.dir)")
	f.StringVar(&out, "out", "", "output file (sets classifier.out, default "+DefaultAttrClassifier+")")
	f.IntVar(&epochs, "epochs", 0, "epochs (sets classifier.epochs)")
	f.IntVar(&batch, "batch", 0, "batch size (sets classifier.batch_size)")
	f.Float64Var(&lr, "lr", 0, "peak learning rate, half-cosine decay (sets classifier.lr)")
	cf.addSeed(cmd, "classifier.seed")
	f.IntVar(&maxSteps, "max-steps", 0, "stop after this many steps, 0 all epochs (sets classifier.max_steps)")
	f.IntVar(&limit, "limit", 0, "use at most this many images of each split, 0 all (sets data.limit)")
	f.IntVar(&refN, "ref-n", 0, "faces per side of the reference FID/KID (sets classifier.ref_n)")
	f.Int64Var(&fidSeed, "fid-seed", 0, "seed of the reference subsets (sets classifier.ref_seed)")
	for flag, key := range classifierFlagKeys {
		cf.bind(flag, key)
	}
	cf.bind("data", "data.dir")
	cf.bind("limit", "data.limit")
	return cmd
}

// faceReference returns FID and KID between n random training faces and n
// random test faces on the classifier's features.
func faceReference(clf *metrics.AttrClassifier, train, test *data.Dataset, n int, seed int64) (float64, float64, error) {
	rng := rand.New(rand.NewSource(seed))
	pick := func(ds *data.Dataset) (*mat.Dense, error) {
		m := min(n, ds.Len())
		idx := rng.Perm(ds.Len())[:m]
		sort.Ints(idx)
		feats := mat.NewDense(m, metrics.AttrFeatureDim, nil)
		for lo := 0; lo < m; lo += 250 {
			hi := min(lo+250, m)
			x, err := ds.Batch(idx[lo:hi])
			if err != nil {
				return nil, err
			}
			o, err := clf.Forward(x)
			if err != nil {
				return nil, err
			}
			for r := lo; r < hi; r++ {
				feats.SetRow(r, o.Features.RawRowView(r-lo))
			}
		}
		return feats, nil
	}
	a, err := pick(train)
	if err != nil {
		return 0, 0, err
	}
	b, err := pick(test)
	if err != nil {
		return 0, 0, err
	}
	fid, err := metrics.FID(a, b)
	if err != nil {
		return 0, 0, err
	}
	kid, err := metrics.KID(a, b, metrics.KIDOptions{}, rng)
	if err != nil {
		return 0, 0, err
	}
	return fid, kid.Mean, nil
}

func boolMatrix(rows [][]bool) *mat.Dense {
	m := mat.NewDense(max(len(rows), 1), max(len(rows[0]), 1), nil)
	for i, r := range rows {
		for j, v := range r {
			if v {
				m.Set(i, j, 1)
			}
		}
	}
	return m
}

func joinFloats(v []float64, prec int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return strings.Join(s, ",")
}

// evalFaces is `eval samples` for a CelebA model: samples, the face
// report against 1000 faces of the ref split (test, or val for choices)
// and the training crops, and the gate (calibrated on test faces, so
// applied only against them).
func evalFaces(cmd *cobra.Command, net diffusion.Denoiser, cfg *config.Config, classifier, ref string) error {
	c, err := metrics.LoadAttrClassifier(classifier)
	if err != nil {
		return err
	}
	size := cfg.Model.ImageSize
	if size != metrics.AttrSide || cfg.Model.InChannels != 3 {
		return fmt.Errorf("the face classifier takes 3×%d×%d images, the model makes %d×%d×%d", metrics.AttrSide, metrics.AttrSide, cfg.Model.InChannels, size, size)
	}
	test, _, err := data.LoadCelebA(cfg.Data.Dir, ref, size, cfg.Data.Crop, 1000)
	if err != nil {
		return fmt.Errorf("reference faces: %w (set data.dir to the CelebA root)", err)
	}
	train, _, err := data.LoadCelebA(cfg.Data.Dir, "train", size, cfg.Data.Crop, 0)
	if err != nil {
		return fmt.Errorf("training crops: %w", err)
	}
	s := cfg.Sample
	sched, den, err := sampleSchedule(cfg, net)
	if err != nil {
		return err
	}
	opts, err := eval.SamplerOptions(cfg)
	if err != nil {
		return err
	}
	bar := progress.New(cmd.ErrOrStderr(), "eval "+s.Sampler, s.NumSamples*sched.Len(), progress.WithUnit("step"))
	all, err := eval.Draw(cfg, den, sched, opts, func(done int) { bar.Set(done) })
	if err != nil {
		return err
	}
	bar.Finish()
	rep, err := metrics.NewFaceReport(c, all, test, train, 10, rand.New(rand.NewSource(s.Seed)))
	if err != nil {
		return err
	}
	rep.Ref = ref
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s, %d steps, %d samples vs %d %s faces\n%s\n", s.Sampler, s.Steps, s.NumSamples, test.Len(), ref, rep)
	if ref != "test" {
		fmt.Fprintf(w, "quality gate: not applied (its thresholds are calibrated on test faces; the %s split is for choices)\n", ref)
		return nil
	}
	refFID, err := strconv.ParseFloat(c.Metadata()[MetaFaceRefFID], 64)
	if err != nil {
		return fmt.Errorf("classifier %s has no reference FID (%s) in its metadata: retrain it with train-attr-classifier", classifier, MetaFaceRefFID)
	}
	gate := metrics.DefaultFaceGate(refFID)
	desc := fmt.Sprintf("FID ≤ %.3f (2× train vs test), top-10 attribute shares within 5 points, nearest-crop median ≥ 0.8× test faces'", gate.MaxFID)
	if fails := rep.Check(gate); len(fails) > 0 {
		fmt.Fprintf(w, "quality gate (%s): FAIL: %s\n", desc, strings.Join(fails, "; "))
	} else {
		fmt.Fprintf(w, "quality gate (%s): PASS\n", desc)
	}
	return nil
}
