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

// AttrTrainReport summarises a TrainAttrClassifier run.
type AttrTrainReport struct {
	Options   TrainOptions
	Steps     int
	FinalLoss float64 // mean BCE over the last 100 steps
	// TestAccuracy is the per-attribute accuracy on the test set at the end
	// (nil without one), MeanTestAccuracy its mean.
	TestAccuracy     []float64
	MeanTestAccuracy float64
	TrainTime        time.Duration
}

// TrainAttrClassifier trains the face attribute classifier on train
// (3×64×64 faces) with labels attrs (one row of len(names) per image) by
// Adam on the mean binary cross-entropy, with the half-cosine schedule and
// options of TrainClassifier, and measures per-attribute accuracy on test
// (may be nil). progress, when not nil, is called after every step.
func TrainAttrClassifier(ctx context.Context, train *data.Dataset, attrs [][]bool, names []string, test *data.Dataset, testAttrs [][]bool,
	opts TrainOptions, progress func(TrainProgress)) (*AttrClassifier, AttrTrainReport, error) {
	const op = "metrics.TrainAttrClassifier"
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, AttrTrainReport{}, fmt.Errorf("%s: %w", op, err)
	}
	rep := AttrTrainReport{Options: opts}
	if train == nil || len(attrs) != train.Len() {
		return nil, rep, fmt.Errorf("%s: %d label rows for the training set, want one per image", op, len(attrs))
	}
	if c, h, w := train.Dims(); c != 3 || h != AttrSide || w != AttrSide {
		return nil, rep, fmt.Errorf("%s: training images are %d×%d×%d, want 3×64×64", op, c, h, w)
	}
	if test != nil && len(testAttrs) != test.Len() {
		return nil, rep, fmt.Errorf("%s: %d label rows for the %d test images", op, len(testAttrs), test.Len())
	}
	rng := rand.New(rand.NewSource(opts.Seed))
	clf, err := NewAttrClassifier(names, rng)
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
	k := len(names)
	net, err := buildAttrNet(opts.BatchSize, tensor.Float32, clf.params, k, true)
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
	tg := net.targets.Data().([]float32)
	start := time.Now()
	var recent []float64
	for step := 0; step < total; step++ {
		if err := ctx.Err(); err != nil {
			return nil, rep, fmt.Errorf("%s: stopped at step %d: %w", op, step, err)
		}
		b := batcher.Next()
		copy(net.x.Data().([]float32), b.X.Data().([]float32))
		for r, i := range b.Index {
			if len(attrs[i]) != k {
				return nil, rep, fmt.Errorf("%s: image %d has %d labels, want %d", op, i, len(attrs[i]), k)
			}
			for j, a := range attrs[i] {
				tg[r*k+j] = 0
				if a {
					tg[r*k+j] = 1
				}
			}
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
		for i := range net.names {
			grads[i] = net.grads[i].Value().Data().([]float32)
		}
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
	rep.TrainTime = time.Since(start)
	for _, v := range recent {
		rep.FinalLoss += v / float64(len(recent))
	}
	clf.graphs = map[int]*attrNet{}
	if test != nil {
		out, err := clf.DatasetForward(test, inferChunk)
		if err != nil {
			return nil, rep, fmt.Errorf("%s: test accuracy: %w", op, err)
		}
		if rep.TestAccuracy, err = AttrAccuracy(out.Probs, testAttrs); err != nil {
			return nil, rep, fmt.Errorf("%s: %w", op, err)
		}
		for _, a := range rep.TestAccuracy {
			rep.MeanTestAccuracy += a / float64(len(rep.TestAccuracy))
		}
	}
	return clf, rep, nil
}
