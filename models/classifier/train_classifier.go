//go:build ignore

// train_classifier trains the evaluation classifier shipped in this folder
// and writes classifier.safetensors, until the CLI's train-classifier
// command exists. Run from the repository root:
//
//	go run models/classifier/train_classifier.go -data ../shared/data/mnist -out models/classifier/classifier.safetensors
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/metrics"
	"github.com/diffinv/diffinv/progress"
)

func main() {
	dir := flag.String("data", "../shared/data/mnist", "MNIST folder (IDX files)")
	out := flag.String("out", "models/classifier/classifier.safetensors", "output safetensors file")
	opts := metrics.DefaultTrainOptions()
	flag.IntVar(&opts.Epochs, "epochs", opts.Epochs, "epochs")
	flag.IntVar(&opts.BatchSize, "batch", opts.BatchSize, "batch size")
	flag.Float64Var(&opts.LR, "lr", opts.LR, "peak learning rate")
	flag.Int64Var(&opts.Seed, "seed", opts.Seed, "seed")
	flag.IntVar(&opts.MaxSteps, "max-steps", 0, "stop after this many steps (0: all)")
	flag.BoolVar(&opts.EvalEvery, "eval-every", true, "evaluate test accuracy after every epoch")
	fidSeed := flag.Int64("fid-seed", 7, "seed of the reference FID subsets")
	refOnly := flag.Bool("ref-only", false, "load -out instead of training and print the reference FIDs")
	writeRef := flag.Bool("write-ref", false, "with -ref-only, store the reference FIDs in -out's metadata")
	flag.Parse()
	if *refOnly {
		if err := refOnlyRun(*dir, *out, *fidSeed, *writeRef); err != nil {
			fmt.Fprintln(os.Stderr, "train_classifier:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*dir, *out, opts, *fidSeed); err != nil {
		fmt.Fprintln(os.Stderr, "train_classifier:", err)
		os.Exit(1)
	}
}

func run(dir, out string, opts metrics.TrainOptions, fidSeed int64) error {
	train, err := data.LoadMNIST(dir, "train")
	if err != nil {
		return err
	}
	test, err := data.LoadMNIST(dir, "test")
	if err != nil {
		return err
	}
	var bar *progress.Bar
	t0 := time.Now()
	clf, rep, err := metrics.TrainClassifier(context.Background(), train, test, opts, func(p metrics.TrainProgress) {
		if bar == nil {
			bar = progress.New(os.Stderr, "classifier", p.Total, progress.WithUnit("step"))
		}
		bar.Set(p.Step)
		bar.Status("epoch %d loss %.4f lr %.2e", p.Epoch, p.Loss, p.LR)
	})
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	fmt.Printf("steps %d, train time %v (wall %v incl. evaluation), final loss %.4f, test accuracy per epoch %v, final %.4f, GOMAXPROCS %d\n",
		rep.Steps, rep.TrainTime.Round(time.Second), wall.Round(time.Second), rep.FinalLoss, rep.EpochTestAcc, rep.TestAccuracy, runtime.GOMAXPROCS(0))
	md := map[string]string{
		"test_accuracy": strconv.FormatFloat(rep.TestAccuracy, 'f', 4, 64),
		"epochs":        strconv.Itoa(rep.Options.Epochs),
		"batch_size":    strconv.Itoa(rep.Options.BatchSize),
		"lr":            strconv.FormatFloat(rep.Options.LR, 'g', -1, 64),
		"seed":          strconv.FormatInt(rep.Options.Seed, 10),
		"steps":         strconv.Itoa(rep.Steps),
		"train_seconds": strconv.FormatFloat(rep.TrainTime.Seconds(), 'f', 0, 64),
		"command":       "go run models/classifier/train_classifier.go",
	}
	refs, err := referenceFIDs(clf, train, test, fidSeed)
	if err != nil {
		return err
	}
	for k, v := range refs {
		md[k] = v
	}
	if err := clf.Save(out, md); err != nil {
		return err
	}
	fmt.Println("wrote", out)
	return nil
}

// refOnlyRun recomputes the reference numbers of an existing classifier and,
// with write, stores them in its metadata (the weights are rewritten
// bit for bit).
func refOnlyRun(dir, path string, fidSeed int64, write bool) error {
	clf, err := metrics.LoadClassifier(path)
	if err != nil {
		return err
	}
	train, err := data.LoadMNIST(dir, "train")
	if err != nil {
		return err
	}
	test, err := data.LoadMNIST(dir, "test")
	if err != nil {
		return err
	}
	acc, err := clf.Accuracy(test)
	if err != nil {
		return err
	}
	fmt.Printf("test accuracy %.4f on %d images\n", acc, test.Len())
	refs, err := referenceFIDs(clf, train, test, fidSeed)
	if err != nil || !write {
		return err
	}
	if err := clf.Save(path, refs); err != nil {
		return err
	}
	fmt.Println("rewrote", path, "with the reference numbers in its metadata")
	return nil
}

// referenceFIDs prints the reference FID/KID numbers for the README: the
// training set's two random halves against each other, two disjoint
// random 5000-image subsets, and 1000 random training images against the
// test set (the quality gate's setting), the last over five draws.
// It returns them as metadata entries (metrics.MetaRefFID1000 and others).
func referenceFIDs(clf *metrics.Classifier, train, test *data.Dataset, seed int64) (map[string]string, error) {
	t0 := time.Now()
	trOut, err := clf.DatasetForward(train, 0)
	if err != nil {
		return nil, err
	}
	ref, err := metrics.NewReference(clf, test)
	if err != nil {
		return nil, err
	}
	fmt.Printf("features of %d train + %d test images in %v\n", train.Len(), test.Len(), time.Since(t0).Round(time.Second))
	rng := rand.New(rand.NewSource(seed))
	rows := func(idx []int) *mat.Dense {
		m := mat.NewDense(len(idx), metrics.FeatureDim, nil)
		for i, r := range idx {
			m.SetRow(i, trOut.Features.RawRowView(r))
		}
		return m
	}
	perm := rng.Perm(train.Len())
	half := train.Len() / 2
	md := map[string]string{}
	var fids []float64
	pair := func(label string, a, b *mat.Dense) error {
		fid, err := metrics.FID(a, b)
		if err != nil {
			return err
		}
		kid, err := metrics.KID(a, b, metrics.KIDOptions{}, rng)
		if err != nil {
			return err
		}
		fmt.Printf("%-40s FID %.4f  KID %.6f ± %.6f (%d×%d)\n", label, fid, kid.Mean, kid.Std, kid.Subsets, kid.SubsetSize)
		fids = append(fids, fid)
		return nil
	}
	if err := pair(fmt.Sprintf("train halves %d vs %d", half, train.Len()-half), rows(perm[:half]), rows(perm[half:])); err != nil {
		return nil, err
	}
	md[metrics.MetaRefFIDHalves] = strconv.FormatFloat(fids[0], 'f', 4, 64)
	if err := pair("train 5000 vs 5000 (disjoint)", rows(perm[:5000]), rows(perm[5000:10000])); err != nil {
		return nil, err
	}
	if err := pair(fmt.Sprintf("train all %d vs test %d", train.Len(), test.Len()), trOut.Features, ref.Features); err != nil {
		return nil, err
	}
	fids = fids[:0]
	for i := 0; i < 5; i++ {
		p := rng.Perm(train.Len())[:1000]
		if err := pair(fmt.Sprintf("train 1000 (draw %d) vs test %d", i, test.Len()), rows(p), ref.Features); err != nil {
			return nil, err
		}
	}
	var mean float64
	for _, f := range fids {
		mean += f / float64(len(fids))
	}
	fmt.Printf("mean FID of 1000 train vs test over %d draws: %.4f\n", len(fids), mean)
	md[metrics.MetaRefFID1000] = strconv.FormatFloat(mean, 'f', 4, 64)
	return md, nil
}
