package metrics

import (
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/data"
)

// shippedClassifier is the committed weights file, relative to this package.
const shippedClassifier = "../models/classifier/classifier.safetensors"

// mnistDir is the shared MNIST folder, relative to this package.
const mnistDir = "../../shared/data/mnist"

// float64Params returns random float64 parameters of the classifier's shapes.
func float64Params(rng *rand.Rand) map[string]*tensor.Dense {
	out := map[string]*tensor.Dense{}
	names := make([]string, 0, len(classifierShapes))
	for name := range classifierShapes {
		names = append(names, name)
	}
	sort.Strings(names) // the same draws for the same rng, whatever the map order
	for _, name := range names {
		shape := classifierShapes[name]
		n := 1
		for _, d := range shape {
			n *= d
		}
		fan := n / shape[0]
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64() / math.Sqrt(float64(fan))
			if strings.HasSuffix(name, "bias") {
				v[i] = 0.1 * rng.NormFloat64()
			}
		}
		out[name] = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
	}
	return out
}

// TestClassifierGradients checks the training graph's gradients (custom
// conv/linear ops, stock max-pool and ReLU, the cross-entropy op) against
// central finite differences of the loss in float64, for the input and a
// sample of coordinates of every parameter.
func TestClassifierGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	params := float64Params(rng)
	const n = 2
	net, err := buildClassifierNet(n, tensor.Float64, params, true)
	if err != nil {
		t.Fatal(err)
	}
	x := net.x.Data().([]float64)
	for i := range x {
		x[i] = 2*rng.Float64() - 1
	}
	if err := net.setLabels([]int{3, 7}); err != nil {
		t.Fatal(err)
	}
	lossAt := func() float64 {
		if err := runVM(net.vm); err != nil {
			t.Fatal(err)
		}
		v, err := scalarOf(net.loss.Value())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	lossAt()
	// Copy the analytic gradients before the finite-difference runs.
	analytic := map[string][]float64{}
	for i, name := range net.names {
		analytic[name] = append([]float64(nil), net.grads[i].Value().Data().([]float64)...)
	}
	analytic["x"] = append([]float64(nil), net.inGrad.Value().Data().([]float64)...)
	values := map[string][]float64{"x": x}
	for name, p := range params {
		values[name] = p.Data().([]float64)
	}
	// Sorted names: the coordinates drawn from rng are the same every run
	// (map order would change which coordinates are drawn).
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	// h = 1e-7: float64 round-off adds about 1e-8 to a central difference,
	// far under the tolerance, and a kink lands within ±h rarely.
	const h = 1e-7
	f0 := lossAt()
	checked, redrawn := 0, 0
	for _, name := range names {
		v := values[name]
		for k := 0; k < 6; k++ {
			i := rng.Intn(len(v))
			old := v[i]
			v[i] = old + h
			fp := lossAt()
			v[i] = old - h
			fm := lossAt()
			v[i] = old
			// A ReLU or max-pool kink within ±h makes the central difference
			// wrong by about |fp−2f0+fm|/(2h); on a smooth stretch
			// |fp−2f0+fm| = h²·f'' ≈ 1e-14·f''. Draw another coordinate when it
			// exceeds 1e-13 (a kink error above 5e-7), at most 20 times in
			// all, so a wrong gradient cannot hide behind redraws.
			if math.Abs(fp-2*f0+fm) > 1e-13 && redrawn < 20 {
				redrawn++
				k--
				continue
			}
			fd := (fp - fm) / (2 * h)
			got := analytic[name][i]
			if math.Abs(fd-got) > 1e-6+1e-4*math.Abs(fd) {
				t.Errorf("∂loss/∂%s[%d]: analytic %.9g, finite difference %.9g", name, i, got, fd)
			}
			checked++
		}
	}
	if checked != 6*(len(params)+1) {
		t.Fatalf("checked %d coordinates", checked)
	}
}

// TestCrossEntropyClosedForm checks the loss op against −log softmax by
// hand: equal logits give log K, and a known two-class case.
func TestCrossEntropyClosedForm(t *testing.T) {
	tests := []struct {
		name   string
		logits []float64
		y      []float64
		want   float64
	}{
		{"uniform", []float64{0.3, 0.3, 0.3, 0.3}, []float64{0, 0, 1, 0}, math.Log(4)},
		{"two classes", []float64{2, 0}, []float64{1, 0}, math.Log(1 + math.Exp(-2))},
		{"large logits stable", []float64{1000, 0}, []float64{0, 1}, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := xentForward(tc.logits, tc.y, 1, len(tc.logits))
			if math.Abs(got-tc.want) > 1e-12*math.Max(1, tc.want) {
				t.Errorf("cross-entropy %v, want %v", got, tc.want)
			}
		})
	}
}

func TestForwardShapesAndProbabilities(t *testing.T) {
	clf, err := NewClassifier(rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	// 253 images: one full chunk of 250 and a remainder of 3.
	const n = 253
	x := tensor.New(tensor.WithShape(n, 1, 28, 28), tensor.WithBacking(randSigned(rng, n*784)))
	out, err := clf.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	if r, c := out.Probs.Dims(); r != n || c != NumClasses {
		t.Fatalf("probs %d×%d", r, c)
	}
	if r, c := out.Features.Dims(); r != n || c != FeatureDim {
		t.Fatalf("features %d×%d", r, c)
	}
	for i := 0; i < n; i++ {
		var s float64
		for _, p := range out.Probs.RawRowView(i) {
			s += p
		}
		if math.Abs(s-1) > 1e-9 {
			t.Fatalf("row %d sums to %v", i, s)
		}
		for _, f := range out.Features.RawRowView(i) {
			if f < 0 {
				t.Fatalf("row %d has a negative (post-ReLU) feature %v", i, f)
			}
		}
	}
	// Batch independence: image 251 alone gives the same as in the batch.
	one := tensor.New(tensor.WithShape(1, 1, 28, 28), tensor.WithBacking(append([]float32(nil), x.Data().([]float32)[251*784:252*784]...)))
	o1, err := clf.Forward(one)
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < FeatureDim; j++ {
		if d := math.Abs(o1.Features.At(0, j) - out.Features.At(251, j)); d > 1e-5 {
			t.Fatalf("feature %d alone %v, in batch %v", j, o1.Features.At(0, j), out.Features.At(251, j))
		}
	}
}

func randSigned(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(2*rng.Float64() - 1)
	}
	return v
}

func TestForwardRejectsBadInput(t *testing.T) {
	clf, err := NewClassifier(rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		x    *tensor.Dense
		want string
	}{
		{"nil", nil, "nil image batch"},
		{"rgb", tensor.New(tensor.WithShape(2, 3, 28, 28), tensor.Of(tensor.Float32)), "want N×1×28×28"},
		{"32px", tensor.New(tensor.WithShape(2, 1, 32, 32), tensor.Of(tensor.Float32)), "want N×1×28×28"},
		{"float64", tensor.New(tensor.WithShape(2, 1, 28, 28), tensor.Of(tensor.Float64)), "want float32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clf.Forward(tc.x)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSaveLoadRoundTrip saves a fresh classifier, reloads it and checks the
// outputs agree bit for bit, then corrupts the file in several ways.
func TestSaveLoadRoundTrip(t *testing.T) {
	clf, err := NewClassifier(rand.New(rand.NewSource(5)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	if err := clf.Save(path, map[string]string{"note": "test"}); err != nil {
		t.Fatal(err)
	}
	back, err := LoadClassifier(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Metadata()["note"] != "test" || back.Metadata()["arch"] != ClassifierArch {
		t.Errorf("metadata %v", back.Metadata())
	}
	rng := rand.New(rand.NewSource(6))
	x := tensor.New(tensor.WithShape(4, 1, 28, 28), tensor.WithBacking(randSigned(rng, 4*784)))
	a, err := clf.Probs(x)
	if err != nil {
		t.Fatal(err)
	}
	b, err := back.Probs(x)
	if err != nil {
		t.Fatal(err)
	}
	if !mat.Equal(a, b) {
		t.Error("reloaded classifier gives different probabilities")
	}

	full := clf.Params()
	variant := func(edit func(m map[string]*tensor.Dense)) map[string]*tensor.Dense {
		m := map[string]*tensor.Dense{}
		for k, v := range full {
			m[k] = v
		}
		edit(m)
		return m
	}
	tests := []struct {
		name    string
		tensors map[string]*tensor.Dense
		meta    map[string]string
		want    string
	}{
		{"missing", variant(func(m map[string]*tensor.Dense) { delete(m, "fc1.bias") }), nil, "fc1.bias"},
		{"misshaped", variant(func(m map[string]*tensor.Dense) {
			m["conv2.weight"] = tensor.New(tensor.WithShape(64, 32, 3, 3), tensor.Of(tensor.Float32))
		}), nil, "conv2.weight"},
		{"extra", variant(func(m map[string]*tensor.Dense) {
			m["fc3.weight"] = tensor.New(tensor.WithShape(2), tensor.Of(tensor.Float32))
		}), nil, "fc3.weight"},
		{"nan", variant(func(m map[string]*tensor.Dense) {
			v := tensor.New(tensor.WithShape(10), tensor.Of(tensor.Float32))
			v.Data().([]float32)[4] = float32(math.NaN())
			m["fc2.bias"] = v
		}), nil, "fc2.bias"},
		{"other arch", full, map[string]string{"arch": "resnet"}, "resnet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".safetensors")
			if err := checkpoint.Save(p, tc.tensors, tc.meta); err != nil {
				t.Fatal(err)
			}
			_, err := LoadClassifier(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
	if _, err := LoadClassifier(filepath.Join(dir, "absent.safetensors")); err == nil {
		t.Error("loading a missing file succeeded")
	}
}

// loadMNIST loads a split or skips the test when the shared data is absent.
func loadMNIST(t *testing.T, split string) *data.Dataset {
	t.Helper()
	if _, err := os.Stat(mnistDir); err != nil {
		t.Skipf("MNIST not found at %s (%v): skipping", mnistDir, err)
	}
	ds, err := data.LoadMNIST(mnistDir, split)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestShippedClassifierAccuracy loads the committed weights and checks
// ≥ 98.5% accuracy on the whole MNIST test set (10000 images, about 3 s).
func TestShippedClassifierAccuracy(t *testing.T) {
	clf, err := LoadClassifier(shippedClassifier)
	if err != nil {
		t.Fatal(err)
	}
	test := loadMNIST(t, "test")
	acc, err := clf.Accuracy(test)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy on the %d test images: %.4f", test.Len(), acc)
	if acc < 0.985 {
		t.Errorf("accuracy %.4f on the %d test images, want ≥ 0.985", acc, test.Len())
	}
}

// TestTrainClassifierLearns runs a short seeded training on 2000 MNIST
// images and checks the loss falls and test accuracy is far above chance;
// a second run with the same seed gives the same weights.
func TestTrainClassifierLearns(t *testing.T) {
	train := loadMNIST(t, "train").Head(2000)
	test := loadMNIST(t, "test").Head(500)
	opts := TrainOptions{Epochs: 1, BatchSize: 32, Seed: 11, MaxSteps: 40}
	var first, last float64
	clf, rep, err := TrainClassifier(context.Background(), train, test, opts, func(p TrainProgress) {
		if p.Step == 1 {
			first = p.Loss
		}
		last = p.Loss
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Steps != 40 {
		t.Errorf("%d steps, want 40", rep.Steps)
	}
	// FinalLoss is the mean over the last 100 steps (here all 40).
	if !(first > 2.0 && rep.FinalLoss < first*0.75 && last < first*0.6) {
		t.Errorf("loss from %.3f to a mean of %.3f, last %.3f: want a start near log 10 = 2.30, a mean 25%% and a last step 40%% lower", first, rep.FinalLoss, last)
	}
	if rep.TestAccuracy < 0.6 {
		t.Errorf("test accuracy %.3f after 40 steps, want ≥ 0.6", rep.TestAccuracy)
	}
	again, _, err := TrainClassifier(context.Background(), train, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range clf.Params() {
		a, b := p.Data().([]float32), again.Params()[name].Data().([]float32)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d] differs between two runs with one seed: %v vs %v", name, i, a[i], b[i])
			}
		}
	}
}

func TestTrainClassifierBadInput(t *testing.T) {
	pix := make([]uint8, 4*28*28)
	labelled, err := data.NewDataset(pix, []int{0, 1, 2, 3}, 4, 1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	unlabelled, err := data.NewDataset(pix, nil, 4, 1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	rgb, err := data.NewDataset(make([]uint8, 4*3*28*28), []int{0, 1, 2, 3}, 4, 3, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		train *data.Dataset
		opts  TrainOptions
		want  string
	}{
		{"nil train", context.Background(), nil, TrainOptions{}, "training set"},
		{"unlabelled", context.Background(), unlabelled, TrainOptions{}, "unlabelled"},
		{"rgb", context.Background(), rgb, TrainOptions{}, "3×28×28"},
		{"batch too big", context.Background(), labelled, TrainOptions{BatchSize: 5}, "batch size 5"},
		{"negative lr", context.Background(), labelled, TrainOptions{LR: -1}, "learning rate -1"},
		{"huge lr", context.Background(), labelled, TrainOptions{BatchSize: 4, LR: 1e30, MaxSteps: 5}, "want finite"},
		{"cancelled", cancelled, labelled, TrainOptions{BatchSize: 4}, "context canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := TrainClassifier(tc.ctx, tc.train, nil, tc.opts, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestMaxPool2ClosedForm(t *testing.T) {
	// One 4×4 plane; windows hold known maxima, one window is all NaN-free
	// ties (first element wins), one holds a NaN.
	nan := math.NaN()
	x := []float64{
		1, 5, 0, 0,
		2, 3, 0, 0,
		-1, -2, 7, nan,
		-3, -4, 1, 2,
	}
	y := make([]float64, 4)
	poolRun(x, y, nil, 1, 4, 4)
	want := []float64{5, 0, -1, 7}
	for i := range want {
		if y[i] != want[i] {
			t.Errorf("pooled[%d] = %v, want %v", i, y[i], want[i])
		}
	}
	dx := make([]float64, 16)
	poolRun(x, []float64{10, 20, 30, 40}, dx, 1, 4, 4)
	wantDx := map[int]float64{1: 10, 2: 20, 8: 30, 10: 40}
	for i, v := range dx {
		if v != wantDx[i] {
			t.Errorf("dx[%d] = %v, want %v", i, v, wantDx[i])
		}
	}
}

// TestSampleReport scores MNIST test images against a disjoint part of
// the test set with the shipped classifier: real digits are confidently
// classified, their histogram is their label histogram (where predictions
// are right), and their FID and KID are far below those of noise images.
func TestSampleReport(t *testing.T) {
	clf, err := LoadClassifier(shippedClassifier)
	if err != nil {
		t.Fatal(err)
	}
	test := loadMNIST(t, "test")
	ref, err := NewReference(clf, test.Head(1000))
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, 500)
	for i := range idx {
		idx[i] = 1000 + i
	}
	digits, err := test.Batch(idx)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := test.BatchLabels(idx)
	if err != nil {
		t.Fatal(err)
	}
	opt := KIDOptions{Subsets: 10, SubsetSize: 500}
	good, err := NewSampleReport(clf, digits, ref, opt, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	noise := tensor.New(tensor.WithShape(500, 1, 28, 28), tensor.WithBacking(randSigned(rng, 500*784)))
	bad, err := NewSampleReport(clf, noise, ref, opt, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("real:\n%v\nnoise:\n%v", good, bad)
	if good.N != 500 || good.RefN != 1000 || good.KID.Subsets != 10 || good.KID.SubsetSize != 500 {
		t.Errorf("counts %+v", good)
	}
	if good.Confident < 0.95 {
		t.Errorf("confident share of real digits %.3f, want ≥ 0.95", good.Confident)
	}
	if !(good.FID*20 < bad.FID) || !(good.KID.Mean*20 < bad.KID.Mean) {
		t.Errorf("real FID %.3f / KID %.4g vs noise FID %.3f / KID %.4g: want real 20× lower", good.FID, good.KID.Mean, bad.FID, bad.KID.Mean)
	}
	var byLabel [NumClasses]int
	for _, l := range labels {
		byLabel[l]++
	}
	sum, share := 0, 0.0
	for k := range good.Histogram {
		sum += good.Histogram[k]
		share += good.Share[k]
		// At ≥ 98.5% accuracy at most 7 of 500 move between classes.
		if d := good.Histogram[k] - byLabel[k]; d > 8 || d < -8 {
			t.Errorf("class %d: %d predicted, %d labelled", k, good.Histogram[k], byLabel[k])
		}
	}
	if sum != 500 || math.Abs(share-1) > 1e-12 {
		t.Errorf("histogram sums to %d, shares to %v", sum, share)
	}
	// Per-sample labels and probabilities agree with the shares; the
	// least confident of real digits are less confident than the rest.
	conf := 0
	for i, p := range good.TopProb {
		if p >= ConfidenceThreshold {
			conf++
		}
		if good.Label[i] < 0 || good.Label[i] >= NumClasses || p < 1.0/NumClasses || p > 1 {
			t.Fatalf("sample %d: label %d, top probability %v", i, good.Label[i], p)
		}
	}
	if len(good.TopProb) != 500 || math.Abs(float64(conf)/500-good.Confident) > 1e-12 {
		t.Errorf("%d per-sample probabilities, %d confident, report says %v", len(good.TopProb), conf, good.Confident)
	}
	worst := good.LeastConfident(10)
	if len(worst) != 10 || len(good.LeastConfident(600)) != 500 || len(good.LeastConfident(-1)) != 0 {
		t.Fatalf("LeastConfident lengths %d, %d, %d", len(worst), len(good.LeastConfident(600)), len(good.LeastConfident(-1)))
	}
	for i := 1; i < len(worst); i++ {
		if good.TopProb[worst[i-1]] > good.TopProb[worst[i]] {
			t.Errorf("LeastConfident not ascending at %d: %v", i, worst)
		}
	}
	for i, p := range good.TopProb {
		if p < good.TopProb[worst[9]] && !slices.Contains(worst, i) {
			t.Errorf("sample %d (p %.4f) less confident than the 10th least confident (%.4f) but not listed", i, p, good.TopProb[worst[9]])
		}
	}
	// Values outside [-1, 1] are clamped: scaling the real digits by 3
	// pushes every pixel to ±1 or beyond, the same as clamping them.
	scaled := tensor.New(tensor.WithShape(500, 1, 28, 28), tensor.Of(tensor.Float32))
	sd, rd := scaled.Data().([]float32), digits.Data().([]float32)
	clampedRef := make([]float32, len(rd))
	for i, v := range rd {
		sd[i] = 3 * v
		clampedRef[i] = min(max(3*v, -1), 1)
	}
	a, err := NewSampleReport(clf, scaled, ref, opt, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSampleReport(clf, tensor.New(tensor.WithShape(500, 1, 28, 28), tensor.WithBacking(clampedRef)), ref, opt, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if a.FID != b.FID || a.KID != b.KID || a.Histogram != b.Histogram {
		t.Errorf("unclamped input gives %+v, clamped %+v", a, b)
	}
	if _, err := NewSampleReport(clf, digits, nil, opt, rng); err == nil {
		t.Error("nil reference accepted")
	}
}

func TestGateCheck(t *testing.T) {
	even := [NumClasses]float64{}
	for k := range even {
		even[k] = 0.1
	}
	skewed := even
	skewed[3], skewed[4] = 0.16, 0.04
	g := DefaultGate(7.5, 3)
	tests := []struct {
		name string
		r    SampleReport
		want []string // substrings, one per failure
	}{
		{"pass", SampleReport{FID: 22, Confident: 0.95, Share: even}, nil},
		{"fid", SampleReport{FID: 23, Confident: 0.95, Share: even}, []string{"FID 23.000 above 22.500"}},
		{"nan fid", SampleReport{FID: math.NaN(), Confident: 0.95, Share: even}, []string{"FID NaN"}},
		{"confidence", SampleReport{FID: 1, Confident: 0.85, Share: even}, []string{"85.0% of samples confident"}},
		{"classes", SampleReport{FID: 1, Confident: 0.95, Share: skewed}, []string{"class 3 is 16.0%", "class 4 is 4.0%"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.Check(g)
			if len(got) != len(tc.want) {
				t.Fatalf("failures %q, want %d", got, len(tc.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("failure %q, want one containing %q", got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReferenceFIDMetadata(t *testing.T) {
	clf, err := LoadClassifier(shippedClassifier)
	if err != nil {
		t.Fatal(err)
	}
	r1000, err := clf.ReferenceFID(MetaRefFID1000)
	if err != nil {
		t.Fatal(err)
	}
	halves, err := clf.ReferenceFID(MetaRefFIDHalves)
	if err != nil {
		t.Fatal(err)
	}
	// FID's small-sample bias: 1000 vs 10000 must sit well above 30000 vs 30000.
	if !(halves > 0 && r1000 > 5*halves) {
		t.Errorf("reference FIDs: 1000 vs test %v, halves %v; want 0 < halves and 1000-sample FID ≫ halves", r1000, halves)
	}
	fresh, err := NewClassifier(rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.ReferenceFID(MetaRefFID1000); err == nil || !strings.Contains(err.Error(), MetaRefFID1000) {
		t.Errorf("error %v, want one naming %q", err, MetaRefFID1000)
	}
}
