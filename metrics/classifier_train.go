package metrics

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"time"

	trainpkg "github.com/diffinv/diffinv/train"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/data"
)

// TrainOptions configures TrainClassifier. Zero fields take the defaults of
// DefaultTrainOptions.
type TrainOptions struct {
	// Epochs over the training set (default 3).
	Epochs int
	// BatchSize of each Adam step (default 64).
	BatchSize int
	// LR is Adam's peak learning rate (default 1e-3); it decays with a
	// half cosine to LR·FinalLRFactor over the run.
	LR float64
	// FinalLRFactor is the last step's learning rate over LR (default 0.05).
	FinalLRFactor float64
	// Seed seeds the weight initialisation and the batch order.
	Seed int64
	// MaxSteps stops after this many steps when > 0 (short runs in tests).
	MaxSteps int
	// EvalEvery evaluates test accuracy after every epoch when true (the
	// last epoch is always evaluated when a test set is given).
	EvalEvery bool
}

// DefaultTrainOptions returns the options the shipped classifier was
// trained with.
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{Epochs: 3, BatchSize: 64, LR: 1e-3, FinalLRFactor: 0.05, Seed: 1}
}

func (o TrainOptions) withDefaults() (TrainOptions, error) {
	d := DefaultTrainOptions()
	if o.Epochs == 0 {
		o.Epochs = d.Epochs
	}
	if o.BatchSize == 0 {
		o.BatchSize = d.BatchSize
	}
	if o.LR == 0 {
		o.LR = d.LR
	}
	if o.FinalLRFactor == 0 {
		o.FinalLRFactor = d.FinalLRFactor
	}
	switch {
	case o.Epochs < 0:
		return o, fmt.Errorf("epochs %d, want ≥ 1", o.Epochs)
	case o.BatchSize < 0:
		return o, fmt.Errorf("batch size %d, want ≥ 1", o.BatchSize)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return o, fmt.Errorf("learning rate %v, want a finite value > 0", o.LR)
	case !(o.FinalLRFactor > 0 && o.FinalLRFactor <= 1):
		return o, fmt.Errorf("final learning-rate factor %v, want in (0, 1]", o.FinalLRFactor)
	case o.MaxSteps < 0:
		return o, fmt.Errorf("max steps %d, want ≥ 0", o.MaxSteps)
	}
	return o, nil
}

// TrainProgress is reported after every training step.
type TrainProgress struct {
	Step, Total int     // steps done and planned
	Epoch       int     // 0-based epoch of the step
	Loss        float64 // the step's mean cross-entropy
	LR          float64 // the step's learning rate
}

// TrainReport summarises a TrainClassifier run.
type TrainReport struct {
	Options      TrainOptions
	Steps        int
	FinalLoss    float64   // mean loss over the last 100 steps
	EpochTestAcc []float64 // test accuracy after each evaluated epoch
	TestAccuracy float64   // test accuracy at the end (0 without a test set)
	TrainTime    time.Duration
	EvalTime     time.Duration
}

// TrainClassifier trains the evaluation classifier on train (MNIST-like,
// labelled, 1×28×28) with Adam on the mean cross-entropy, seeded by
// opts.Seed, and measures its accuracy on test (may be nil). progress, when
// not nil, is called after every step. A cancelled ctx stops the run with
// ctx's error; a NaN or infinite loss stops it with an error naming the step.
func TrainClassifier(ctx context.Context, train, test *data.Dataset, opts TrainOptions, progress func(TrainProgress)) (*Classifier, TrainReport, error) {
	const op = "metrics.TrainClassifier"
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, TrainReport{}, fmt.Errorf("%s: %w", op, err)
	}
	rep := TrainReport{Options: opts}
	if train == nil || !train.Labeled() {
		return nil, rep, fmt.Errorf("%s: training set is nil or unlabelled, want labelled MNIST", op)
	}
	if c, h, w := train.Dims(); c != 1 || h != ImageSide || w != ImageSide {
		return nil, rep, fmt.Errorf("%s: training images are %d×%d×%d, want 1×28×28", op, c, h, w)
	}
	if test != nil && !test.Labeled() {
		return nil, rep, fmt.Errorf("%s: test set is unlabelled, want labels", op)
	}
	rng := rand.New(rand.NewSource(opts.Seed))
	clf, err := NewClassifier(rng)
	if err != nil {
		return nil, rep, fmt.Errorf("%s: %w", op, err)
	}
	batcher, err := data.NewBatcher(train, opts.BatchSize, rng)
	if err != nil {
		return nil, rep, fmt.Errorf("%s: %w", op, err)
	}
	total := opts.Epochs * batcher.StepsPerEpoch()
	if opts.MaxSteps > 0 && opts.MaxSteps < total {
		total = opts.MaxSteps
	}
	net, err := buildClassifierNet(opts.BatchSize, tensor.Float32, clf.params, true)
	if err != nil {
		return nil, rep, fmt.Errorf("%s: building the training graph: %w", op, err)
	}
	sizes := make([]int, len(net.names))
	params := make([][]float32, len(net.names))
	for i, name := range net.names {
		params[i] = clf.params[name].Data().([]float32)
		sizes[i] = len(params[i])
	}
	adam, err := trainpkg.NewAdam(trainpkg.DefaultAdam(), sizes)
	if err != nil {
		return nil, rep, err
	}
	grads := make([][]float32, len(net.names))
	start := time.Now()
	var recent []float64
	lastEpoch := 0
	evalEpoch := func(epoch int) error {
		if test == nil {
			return nil
		}
		t0 := time.Now()
		acc, err := clf.Accuracy(test)
		if err != nil {
			return err
		}
		rep.EvalTime += time.Since(t0)
		rep.EpochTestAcc = append(rep.EpochTestAcc, acc)
		rep.TestAccuracy = acc
		return nil
	}
	for step := 0; step < total; step++ {
		if err := ctx.Err(); err != nil {
			return nil, rep, fmt.Errorf("%s: stopped at step %d: %w", op, step, err)
		}
		b := batcher.Next()
		if b.Epoch != lastEpoch {
			if opts.EvalEvery {
				if err := evalEpoch(lastEpoch); err != nil {
					return nil, rep, fmt.Errorf("%s: %w", op, err)
				}
			}
			lastEpoch = b.Epoch
		}
		copy(net.x.Data().([]float32), b.X.Data().([]float32))
		if err := net.setLabels(b.Labels); err != nil {
			return nil, rep, fmt.Errorf("%s: step %d: %w", op, step, err)
		}
		if err := runVM(net.vm); err != nil {
			return nil, rep, fmt.Errorf("%s: step %d: %w", op, step, err)
		}
		loss, err := scalarOf(net.loss.Value())
		if err != nil {
			return nil, rep, fmt.Errorf("%s: step %d: loss: %w", op, step, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, rep, fmt.Errorf("%s: loss is %v at step %d, want finite (lower the learning rate %v)", op, loss, step, opts.LR)
		}
		for i, g := range net.grads {
			grads[i] = g.Value().Data().([]float32)
		}
		// Half-cosine decay from LR to LR·FinalLRFactor.
		frac := float64(step) / float64(max(total-1, 1))
		lr := opts.LR * (opts.FinalLRFactor + (1-opts.FinalLRFactor)*0.5*(1+math.Cos(math.Pi*frac)))
		if err := adam.Update(lr, params, grads); err != nil {
			return nil, rep, err
		}
		recent = append(recent, loss)
		if len(recent) > 100 {
			recent = recent[1:]
		}
		rep.Steps = step + 1
		if progress != nil {
			progress(TrainProgress{Step: step + 1, Total: total, Epoch: b.Epoch, Loss: loss, LR: lr})
		}
	}
	rep.TrainTime = time.Since(start) - rep.EvalTime // per-epoch evaluations excluded
	for _, v := range recent {
		rep.FinalLoss += v / float64(len(recent))
	}
	if err := evalEpoch(lastEpoch); err != nil {
		return nil, rep, fmt.Errorf("%s: %w", op, err)
	}
	clf.graphs = map[int]*classifierNet{}
	return clf, rep, nil
}
