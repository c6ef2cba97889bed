package metrics

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strconv"
	"sync"

	"gonum.org/v1/gonum/mat"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/nn"
)

// The evaluation classifier is a LeNet-like MNIST net, the "feature net" of
// the classifier-feature FID and KID (see docs/reference.md: on MNIST-size
// data FID is computed on a classifier trained on that data, not Inception):
//
//	x 1×28×28 in [-1, 1]
//	conv1 5×5, 1→32, no padding   → 32×24×24, maxpool 2 → 32×12×12, ReLU
//	conv2 5×5, 32→64, no padding  → 64×8×8,   maxpool 2 → 64×4×4,   ReLU
//	flatten 1024, fc1 1024→128, ReLU → the 128 penultimate features
//	fc2 128→10 → logits; softmax → class probabilities
//
// Max pooling is this package's op (stock MaxPool2D panics on NaN inputs).
// (ReLU and 2×2 max pooling commute, so pooling first is the same net as the
// textbook conv → ReLU → pool, at a quarter of the ReLU work.) Parameter names
// follow the PyTorch module paths such a net would have (conv1.weight, …).
const (
	// ClassifierArch names the architecture in a checkpoint's metadata.
	ClassifierArch = "lenet-mnist-v1"
	// FeatureDim is the length of a classifier feature vector (fc1's output
	// after its ReLU, the input of the final linear layer).
	FeatureDim = 128
	// NumClasses is the number of MNIST classes.
	NumClasses = 10
	// ImageSide is the side of the square 1-channel images the classifier takes.
	ImageSide = 28
)

// Metadata keys under which the training command stores reference FIDs of
// the shipped weights (see models/classifier/README.md).
const (
	// MetaRefFID1000 is the mean FID of 1000 random training images against
	// the whole test set (five draws): the like-for-like reference for
	// scoring 1000 samples against the test set.
	MetaRefFID1000 = "ref_fid_train1000_vs_test"
	// MetaRefFIDHalves is the FID between two random 30000-image halves of
	// the training set.
	MetaRefFIDHalves = "ref_fid_train_halves"
)

// classifierShapes maps every parameter name to its PyTorch shape.
var classifierShapes = map[string][]int{
	"conv1.weight": {32, 1, 5, 5},
	"conv1.bias":   {32},
	"conv2.weight": {64, 32, 5, 5},
	"conv2.bias":   {64},
	"fc1.weight":   {FeatureDim, 64 * 4 * 4},
	"fc1.bias":     {FeatureDim},
	"fc2.weight":   {NumClasses, FeatureDim},
	"fc2.bias":     {NumClasses},
}

// paramNames lists the parameters in a fixed order (graph inputs, optimiser).
func paramNames() []string {
	names := make([]string, 0, len(classifierShapes))
	for k := range classifierShapes {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// inferChunk is the largest batch one inference graph runs; bigger inputs
// are split into chunks of this size.
const inferChunk = 250

// Classifier is the evaluation net with its weights. Its methods are safe
// for concurrent use (they serialise on an internal lock).
type Classifier struct {
	mu       sync.Mutex
	params   map[string]*tensor.Dense // float32, PyTorch shapes
	metadata map[string]string
	graphs   map[int]*classifierNet // inference graphs by batch size
}

// NewClassifier returns a classifier with freshly initialised weights drawn
// from rng with PyTorch's default initialisation for Conv2d and Linear
// (weights and biases uniform in ±1/√fan_in).
func NewClassifier(rng *rand.Rand) (*Classifier, error) {
	if rng == nil {
		return nil, fmt.Errorf("metrics.NewClassifier: nil *rand.Rand, want a seeded generator")
	}
	params := make(map[string]*tensor.Dense, len(classifierShapes))
	for _, name := range paramNames() {
		shape := classifierShapes[name]
		t := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
		params[name] = t
	}
	for _, layer := range []string{"conv1", "conv2", "fc1", "fc2"} {
		ws := classifierShapes[layer+".weight"]
		fanIn := 1
		for _, d := range ws[1:] {
			fanIn *= d
		}
		bound := 1 / math.Sqrt(float64(fanIn))
		for _, name := range []string{layer + ".weight", layer + ".bias"} {
			d := params[name].Data().([]float32)
			for i := range d {
				d[i] = float32((2*rng.Float64() - 1) * bound)
			}
		}
	}
	return &Classifier{params: params, metadata: map[string]string{}, graphs: map[int]*classifierNet{}}, nil
}

// LoadClassifier reads a classifier saved by Save. A file whose tensors do
// not match the architecture (missing, extra or misshaped) or whose
// metadata names another architecture is an error naming the culprit.
func LoadClassifier(path string) (*Classifier, error) {
	f, err := checkpoint.LoadExpected(path, classifierShapes)
	if err != nil {
		return nil, fmt.Errorf("metrics.LoadClassifier: %w", err)
	}
	if a, ok := f.Metadata["arch"]; ok && a != ClassifierArch {
		return nil, fmt.Errorf("metrics.LoadClassifier: %s holds architecture %q, want %q", path, a, ClassifierArch)
	}
	for name, t := range f.Tensors {
		for _, v := range t.Data().([]float32) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("metrics.LoadClassifier: %s: tensor %q holds %v, want finite weights", path, name, v)
			}
		}
	}
	md := make(map[string]string, len(f.Metadata))
	for k, v := range f.Metadata {
		md[k] = v
	}
	return &Classifier{params: f.Tensors, metadata: md, graphs: map[int]*classifierNet{}}, nil
}

// Save writes the weights as a safetensors file (atomically), with the
// architecture name and the given extra metadata (training command,
// accuracy, …) in the header.
func (c *Classifier) Save(path string, extra map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	md := map[string]string{}
	for k, v := range c.metadata {
		md[k] = v
	}
	for k, v := range extra {
		md[k] = v
	}
	md["arch"] = ClassifierArch
	md["feature_dim"] = strconv.Itoa(FeatureDim)
	if err := checkpoint.Save(path, c.params, md); err != nil {
		return fmt.Errorf("metrics.Classifier.Save: %w", err)
	}
	return nil
}

// Metadata returns a copy of the checkpoint metadata (empty for a fresh net).
func (c *Classifier) Metadata() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.metadata))
	for k, v := range c.metadata {
		out[k] = v
	}
	return out
}

// ReferenceFID returns a reference FID stored in the checkpoint metadata
// under key (MetaRefFID1000 or MetaRefFIDHalves).
func (c *Classifier) ReferenceFID(key string) (float64, error) {
	c.mu.Lock()
	v, ok := c.metadata[key]
	c.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("metrics.Classifier.ReferenceFID: no %q in the checkpoint metadata", key)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf("metrics.Classifier.ReferenceFID: %q is %q, want a non-negative number", key, v)
	}
	return f, nil
}

// Params returns the live float32 parameter tensors by name (PyTorch
// shapes). Changing them changes the classifier.
func (c *Classifier) Params() map[string]*tensor.Dense { return c.params }

// Output is what one forward pass gives for a batch of N images.
type Output struct {
	// Probs is N×10: softmax class probabilities.
	Probs *mat.Dense
	// Features is N×128: the penultimate features (fc1 after its ReLU).
	Features *mat.Dense
}

// Probs returns the N×10 class probabilities of a batch x (N×1×28×28
// float32 in [-1, 1], the data package's convention).
func (c *Classifier) Probs(x *tensor.Dense) (*mat.Dense, error) {
	out, err := c.Forward(x)
	if err != nil {
		return nil, err
	}
	return out.Probs, nil
}

// Features returns the N×128 penultimate features of a batch x (N×1×28×28
// float32 in [-1, 1]).
func (c *Classifier) Features(x *tensor.Dense) (*mat.Dense, error) {
	out, err := c.Forward(x)
	if err != nil {
		return nil, err
	}
	return out.Features, nil
}

// Forward runs the net on x (N×1×28×28 float32 in [-1, 1], any N ≥ 1) and
// returns probabilities and features, computed in chunks of 250 images.
func (c *Classifier) Forward(x *tensor.Dense) (Output, error) {
	n, err := checkImages(x)
	if err != nil {
		return Output{}, fmt.Errorf("metrics.Classifier: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Output{Probs: mat.NewDense(n, NumClasses, nil), Features: mat.NewDense(n, FeatureDim, nil)}
	src := x.Data().([]float32)
	const px = ImageSide * ImageSide
	for lo := 0; lo < n; lo += inferChunk {
		hi := min(lo+inferChunk, n)
		net, err := c.graph(hi - lo)
		if err != nil {
			return Output{}, err
		}
		copy(net.x.Data().([]float32), src[lo*px:hi*px])
		if err := runVM(net.vm); err != nil {
			return Output{}, fmt.Errorf("metrics.Classifier: forward pass: %w", err)
		}
		logits := net.logits.Value().Data().([]float32)
		feats := net.feats.Value().Data().([]float32)
		for i := lo; i < hi; i++ {
			softmaxRow(logits[(i-lo)*NumClasses:(i-lo+1)*NumClasses], out.Probs.RawRowView(i))
			f := out.Features.RawRowView(i)
			for j := range f {
				f[j] = float64(feats[(i-lo)*FeatureDim+j])
			}
		}
	}
	return out, nil
}

// checkImages checks x is N×1×28×28 float32 and returns N.
func checkImages(x *tensor.Dense) (int, error) {
	if x == nil {
		return 0, fmt.Errorf("nil image batch")
	}
	if x.Dtype() != tensor.Float32 {
		return 0, fmt.Errorf("image batch has dtype %v, want float32", x.Dtype())
	}
	s := x.Shape()
	if len(s) != 4 || s[1] != 1 || s[2] != ImageSide || s[3] != ImageSide || s[0] < 1 {
		return 0, fmt.Errorf("image batch has shape %v, want N×1×28×28 with N ≥ 1", s)
	}
	if x.RequiresIterator() {
		return 0, fmt.Errorf("image batch is a non-contiguous view, want a contiguous tensor")
	}
	return s[0], nil
}

// softmaxRow writes softmax(logits) into p in float64.
func softmaxRow(logits []float32, p []float64) {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var s float64
	for j, v := range logits {
		p[j] = math.Exp(float64(v) - m)
		s += p[j]
	}
	for j := range p {
		p[j] /= s
	}
}

// graph returns the cached inference graph for batch size n. At most a few
// sizes are kept (the chunk size and the last remainder).
func (c *Classifier) graph(n int) (*classifierNet, error) {
	if g, ok := c.graphs[n]; ok {
		return g, nil
	}
	if len(c.graphs) >= 4 {
		for k := range c.graphs {
			if k != inferChunk {
				delete(c.graphs, k)
			}
		}
	}
	net, err := buildClassifierNet(n, tensor.Float32, c.params, false)
	if err != nil {
		return nil, fmt.Errorf("metrics.Classifier: building the graph for batch %d: %w", n, err)
	}
	c.graphs[n] = net
	return net, nil
}

// classifierNet is one Gorgonia graph of the classifier for a fixed batch
// size: inference only, or with the mean cross-entropy loss and parameter
// gradients for training.
type classifierNet struct {
	g       *G.ExprGraph
	batch   int
	x       *tensor.Dense // N×1×28×28 input, bound to the graph's input node
	onehot  *tensor.Dense // N×10 one-hot targets (training graphs)
	xNode   *G.Node
	feats   *G.Node // N×128
	logits  *G.Node // N×10
	loss    *G.Node // scalar mean cross-entropy (training graphs)
	names   []string
	pnodes  []*G.Node
	grads   []*G.Node
	inGrad  *G.Node // ∂loss/∂x (training graphs built with inputGrad)
	vm      G.VM
	dtype   tensor.Dtype
	trained bool
}

// buildClassifierNet builds the net for batch n in dtype dt (float32 for
// use, float64 for finite-difference checks) reading the given parameter
// tensors (which must have dtype dt; the graph reads them live). With train
// it adds the loss and the gradients w.r.t. every parameter and the input.
func buildClassifierNet(n int, dt tensor.Dtype, params map[string]*tensor.Dense, train bool) (*classifierNet, error) {
	g := G.NewGraph()
	net := &classifierNet{g: g, batch: n, dtype: dt, trained: train, names: paramNames()}
	p := map[string]*G.Node{}
	for _, name := range net.names {
		t, ok := params[name]
		if !ok {
			return nil, fmt.Errorf("parameter %q missing", name)
		}
		if t.Dtype() != dt {
			return nil, fmt.Errorf("parameter %q has dtype %v, want %v", name, t.Dtype(), dt)
		}
		node := G.NewTensor(g, dt, len(t.Shape()), G.WithShape(t.Shape().Clone()...), G.WithName(name), G.WithValue(t))
		p[name] = node
		net.pnodes = append(net.pnodes, node)
	}
	net.x = tensor.New(tensor.WithShape(n, 1, ImageSide, ImageSide), tensor.Of(dt))
	net.xNode = G.NewTensor(g, dt, 4, G.WithShape(n, 1, ImageSide, ImageSide), G.WithName("x"), G.WithValue(net.x))
	wrap := func(what string, err error) error { return fmt.Errorf("building %s: %w", what, err) }
	h, err := nn.Conv2d(net.xNode, p["conv1.weight"], p["conv1.bias"], 1, 0)
	if err != nil {
		return nil, wrap("conv1", err)
	}
	if h, err = maxPool2(h); err != nil {
		return nil, wrap("pool1", err)
	}
	if h, err = G.Rectify(h); err != nil {
		return nil, wrap("relu1", err)
	}
	if h, err = nn.Conv2d(h, p["conv2.weight"], p["conv2.bias"], 1, 0); err != nil {
		return nil, wrap("conv2", err)
	}
	if h, err = maxPool2(h); err != nil {
		return nil, wrap("pool2", err)
	}
	if h, err = G.Rectify(h); err != nil {
		return nil, wrap("relu2", err)
	}
	// Reshape shares memory with its input (reference.md); the next op,
	// nn.Linear, writes into its own buffer, so nothing overwrites it.
	if h, err = G.Reshape(h, tensor.Shape{n, 64 * 4 * 4}); err != nil {
		return nil, wrap("flatten", err)
	}
	if h, err = nn.Linear(h, p["fc1.weight"], p["fc1.bias"]); err != nil {
		return nil, wrap("fc1", err)
	}
	if net.feats, err = G.Rectify(h); err != nil {
		return nil, wrap("relu3", err)
	}
	if net.logits, err = nn.Linear(net.feats, p["fc2.weight"], p["fc2.bias"]); err != nil {
		return nil, wrap("fc2", err)
	}
	if train {
		net.onehot = tensor.New(tensor.WithShape(n, NumClasses), tensor.Of(dt))
		oh := G.NewTensor(g, dt, 2, G.WithShape(n, NumClasses), G.WithName("onehot"), G.WithValue(net.onehot))
		if net.loss, err = softmaxCrossEntropy(net.logits, oh); err != nil {
			return nil, wrap("loss", err)
		}
		wrt := append(G.Nodes{net.xNode}, net.pnodes...)
		grads, err := G.Grad(net.loss, wrt...)
		if err != nil {
			return nil, wrap("gradients", err)
		}
		net.inGrad, net.grads = grads[0], grads[1:]
	}
	if net.vm, err = nn.NewTapeMachine(g); err != nil {
		return nil, wrap("compiling", err)
	}
	return net, nil
}

// runVM resets and runs a tape machine (without Reset a second RunAll does
// nothing; reference.md).
func runVM(vm G.VM) error {
	vm.Reset()
	return vm.RunAll()
}

// setLabels writes the one-hot targets of labels into the training graph.
func (net *classifierNet) setLabels(labels []int) error {
	if len(labels) != net.batch {
		return fmt.Errorf("%d labels for a batch of %d", len(labels), net.batch)
	}
	for i, l := range labels {
		if l < 0 || l >= NumClasses {
			return fmt.Errorf("label %d at index %d, want 0..%d", l, i, NumClasses-1)
		}
	}
	switch d := net.onehot.Data().(type) {
	case []float32:
		clear(d)
		for i, l := range labels {
			d[i*NumClasses+l] = 1
		}
	case []float64:
		clear(d)
		for i, l := range labels {
			d[i*NumClasses+l] = 1
		}
	}
	return nil
}

// Predict returns the most probable class of every row of probs.
func Predict(probs *mat.Dense) []int {
	n, _ := probs.Dims()
	out := make([]int, n)
	for i := range out {
		row := probs.RawRowView(i)
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[i] = best
	}
	return out
}

// DatasetForward runs the classifier over a whole dataset (1×28×28 images)
// in chunks of batch images (≤ 0 means 250) and returns probabilities and
// features for every image in order.
func (c *Classifier) DatasetForward(ds *data.Dataset, batch int) (Output, error) {
	if ds == nil || ds.Len() == 0 {
		return Output{}, fmt.Errorf("metrics.Classifier.DatasetForward: empty dataset")
	}
	if ch, h, w := ds.Dims(); ch != 1 || h != ImageSide || w != ImageSide {
		return Output{}, fmt.Errorf("metrics.Classifier.DatasetForward: images are %d×%d×%d, want 1×28×28", ch, h, w)
	}
	if batch <= 0 {
		batch = inferChunk
	}
	n := ds.Len()
	out := Output{Probs: mat.NewDense(n, NumClasses, nil), Features: mat.NewDense(n, FeatureDim, nil)}
	idx := make([]int, 0, batch)
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		idx = idx[:0]
		for i := lo; i < hi; i++ {
			idx = append(idx, i)
		}
		x, err := ds.Batch(idx)
		if err != nil {
			return Output{}, fmt.Errorf("metrics.Classifier.DatasetForward: %w", err)
		}
		o, err := c.Forward(x)
		if err != nil {
			return Output{}, err
		}
		for i := lo; i < hi; i++ {
			copy(out.Probs.RawRowView(i), o.Probs.RawRowView(i-lo))
			copy(out.Features.RawRowView(i), o.Features.RawRowView(i-lo))
		}
	}
	return out, nil
}

// Accuracy returns the share of images of a labelled dataset the classifier
// labels correctly.
func (c *Classifier) Accuracy(ds *data.Dataset) (float64, error) {
	if ds == nil || !ds.Labeled() {
		return 0, fmt.Errorf("metrics.Classifier.Accuracy: dataset is nil or unlabelled, want labels")
	}
	out, err := c.DatasetForward(ds, 0)
	if err != nil {
		return 0, err
	}
	pred := Predict(out.Probs)
	labels := ds.Labels()
	ok := 0
	for i, p := range pred {
		if p == labels[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(pred)), nil
}
