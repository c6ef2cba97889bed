package metrics

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"sync"

	"gonum.org/v1/gonum/mat"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/nn"
)

// The face attribute classifier is the feature net of the face quality
// gate: no ImageNet network can be fetched here, so FID and KID on CelebA
// samples use the penultimate features of a small CNN trained on the 40
// CelebA attributes of the train split (the MNIST gate's recipe, moved to
// faces):
//
//	x 3×64×64 in [-1, 1]
//	conv1 3×3, 3→32, pad 1    → maxpool 2 → 32×32×32, ReLU
//	conv2 3×3, 32→64, pad 1   → maxpool 2 → 64×16×16, ReLU
//	conv3 3×3, 64→128, pad 1  → maxpool 2 → 128×8×8,  ReLU
//	conv4 3×3, 128→256, pad 1 → maxpool 2 → 256×4×4,  ReLU
//	flatten 4096, fc1 4096→256, ReLU → the 256 penultimate features
//	fc2 256→40 → logits; sigmoid → attribute probabilities
//
// trained with the mean binary cross-entropy over the 40 attributes.
const (
	// AttrArch names the architecture in a checkpoint's metadata.
	AttrArch = "celeba-attr-cnn-v1"
	// AttrFeatureDim is the length of a feature vector (fc1 after ReLU).
	AttrFeatureDim = 256
	// AttrSide is the side of the square RGB images the net takes.
	AttrSide = 64
	// MetaAttrNames is the metadata key holding the attribute names
	// (comma-separated, in output order).
	MetaAttrNames = "attr_names"
)

// attrConvs are the conv layers' (name, in, out).
var attrConvs = []struct {
	name    string
	in, out int
}{{"conv1", 3, 32}, {"conv2", 32, 64}, {"conv3", 64, 128}, {"conv4", 128, 256}}

// attrShapes maps every parameter name to its PyTorch shape for k outputs.
func attrShapes(k int) map[string][]int {
	m := map[string][]int{}
	for _, c := range attrConvs {
		m[c.name+".weight"] = []int{c.out, c.in, 3, 3}
		m[c.name+".bias"] = []int{c.out}
	}
	m["fc1.weight"] = []int{AttrFeatureDim, 256 * 4 * 4}
	m["fc1.bias"] = []int{AttrFeatureDim}
	m["fc2.weight"] = []int{k, AttrFeatureDim}
	m["fc2.bias"] = []int{k}
	return m
}

// AttrClassifier is the face attribute net with its weights. Its methods
// are safe for concurrent use (they serialise on an internal lock).
type AttrClassifier struct {
	mu       sync.Mutex
	names    []string // attribute names, in output order
	params   map[string]*tensor.Dense
	metadata map[string]string
	graphs   map[int]*attrNet
}

// NewAttrClassifier returns a classifier of the given attributes with
// PyTorch's default initialisation (uniform in ±1/√fan_in) drawn from rng.
func NewAttrClassifier(names []string, rng *rand.Rand) (*AttrClassifier, error) {
	if len(names) == 0 || rng == nil {
		return nil, fmt.Errorf("metrics.NewAttrClassifier: %d attribute names and rng %v, want at least one name and a seeded generator", len(names), rng != nil)
	}
	shapes := attrShapes(len(names))
	params := make(map[string]*tensor.Dense, len(shapes))
	for _, name := range sortedKeys(shapes) {
		shape := shapes[name]
		fan := 1
		w := shapes[strings.TrimSuffix(strings.TrimSuffix(name, ".bias"), ".weight")+".weight"]
		for _, d := range w[1:] {
			fan *= d
		}
		bound := 1 / math.Sqrt(float64(fan))
		size := 1
		for _, d := range shape {
			size *= d
		}
		v := make([]float32, size)
		for i := range v {
			v[i] = float32((2*rng.Float64() - 1) * bound)
		}
		params[name] = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
	}
	return &AttrClassifier{names: append([]string(nil), names...), params: params, metadata: map[string]string{}, graphs: map[int]*attrNet{}}, nil
}

func sortedKeys(m map[string][]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// LoadAttrClassifier reads weights written by Save, checking the
// architecture name and every parameter's shape.
func LoadAttrClassifier(path string) (*AttrClassifier, error) {
	f, err := checkpoint.Load(path)
	if err != nil {
		return nil, fmt.Errorf("metrics.LoadAttrClassifier: %w", err)
	}
	if a := f.Metadata["arch"]; a != AttrArch {
		return nil, fmt.Errorf("metrics.LoadAttrClassifier %s: arch %q, want %q", path, a, AttrArch)
	}
	names := strings.Split(f.Metadata[MetaAttrNames], ",")
	if f.Metadata[MetaAttrNames] == "" {
		return nil, fmt.Errorf("metrics.LoadAttrClassifier %s: no %s in the metadata", path, MetaAttrNames)
	}
	if err := checkpoint.Check(f.Tensors, attrShapes(len(names))); err != nil {
		return nil, fmt.Errorf("metrics.LoadAttrClassifier %s: %w", path, err)
	}
	for name, t := range f.Tensors {
		if t.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("metrics.LoadAttrClassifier %s: %s has dtype %v, want float32", path, name, t.Dtype())
		}
		for i, v := range t.Data().([]float32) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("metrics.LoadAttrClassifier %s: %s holds %v at %d", path, name, v, i)
			}
		}
	}
	return &AttrClassifier{names: names, params: f.Tensors, metadata: f.Metadata, graphs: map[int]*attrNet{}}, nil
}

// Save writes the weights with the architecture, the attribute names and
// extra metadata.
func (c *AttrClassifier) Save(path string, extra map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	meta := map[string]string{}
	for k, v := range c.metadata {
		meta[k] = v
	}
	for k, v := range extra {
		meta[k] = v
	}
	meta["arch"] = AttrArch
	meta[MetaAttrNames] = strings.Join(c.names, ",")
	return checkpoint.Save(path, c.params, meta)
}

// Names returns the attribute names in output order.
func (c *AttrClassifier) Names() []string { return append([]string(nil), c.names...) }

// Metadata returns a copy of the checkpoint metadata.
func (c *AttrClassifier) Metadata() map[string]string {
	out := map[string]string{}
	for k, v := range c.metadata {
		out[k] = v
	}
	return out
}

// AttrOutput is what the classifier computes for a batch of faces.
type AttrOutput struct {
	Probs    *mat.Dense // N×K sigmoid probabilities
	Features *mat.Dense // N×AttrFeatureDim penultimate features
}

// Forward runs the net on N×3×64×64 faces in [-1, 1], in chunks.
func (c *AttrClassifier) Forward(x *tensor.Dense) (AttrOutput, error) {
	s := x.Shape()
	if len(s) != 4 || s[1] != 3 || s[2] != AttrSide || s[3] != AttrSide || x.Dtype() != tensor.Float32 {
		return AttrOutput{}, fmt.Errorf("metrics.AttrClassifier: images %v %v, want float32 N×3×64×64", s, x.Dtype())
	}
	n, k := s[0], len(c.names)
	out := AttrOutput{Probs: mat.NewDense(max(n, 1), k, nil), Features: mat.NewDense(max(n, 1), AttrFeatureDim, nil)}
	c.mu.Lock()
	defer c.mu.Unlock()
	src := x.Data().([]float32)
	per := 3 * AttrSide * AttrSide
	for lo := 0; lo < n; lo += inferChunk {
		hi := min(lo+inferChunk, n)
		net, err := c.graph(hi - lo)
		if err != nil {
			return AttrOutput{}, err
		}
		copy(net.x.Data().([]float32), src[lo*per:hi*per])
		if err := runVM(net.vm); err != nil {
			return AttrOutput{}, fmt.Errorf("metrics.AttrClassifier: %w", err)
		}
		logits := net.logits.Value().Data().([]float32)
		feats := net.feats.Value().Data().([]float32)
		for i := lo; i < hi; i++ {
			for j := 0; j < k; j++ {
				out.Probs.Set(i, j, sigmoid(float64(logits[(i-lo)*k+j])))
			}
			for j := 0; j < AttrFeatureDim; j++ {
				out.Features.Set(i, j, float64(feats[(i-lo)*AttrFeatureDim+j]))
			}
		}
	}
	return out, nil
}

// DatasetForward runs Forward over a dataset, batch images at a time.
func (c *AttrClassifier) DatasetForward(ds *data.Dataset, batch int) (AttrOutput, error) {
	n := ds.Len()
	k := len(c.names)
	out := AttrOutput{Probs: mat.NewDense(max(n, 1), k, nil), Features: mat.NewDense(max(n, 1), AttrFeatureDim, nil)}
	for lo := 0; lo < n; lo += batch {
		idx := make([]int, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			idx = append(idx, i)
		}
		x, err := ds.Batch(idx)
		if err != nil {
			return AttrOutput{}, err
		}
		o, err := c.Forward(x)
		if err != nil {
			return AttrOutput{}, err
		}
		for r := range idx {
			out.Probs.SetRow(lo+r, o.Probs.RawRowView(r))
			out.Features.SetRow(lo+r, o.Features.RawRowView(r))
		}
	}
	return out, nil
}

// AttrAccuracy returns, per attribute, the share of images whose
// thresholded probability (≥ 0.5) equals the label.
func AttrAccuracy(probs *mat.Dense, labels [][]bool) ([]float64, error) {
	n, k := probs.Dims()
	if len(labels) != n {
		return nil, fmt.Errorf("metrics.AttrAccuracy: %d label rows for %d images", len(labels), n)
	}
	acc := make([]float64, k)
	for i := 0; i < n; i++ {
		if len(labels[i]) != k {
			return nil, fmt.Errorf("metrics.AttrAccuracy: image %d has %d labels, want %d", i, len(labels[i]), k)
		}
		for j := 0; j < k; j++ {
			if (probs.At(i, j) >= 0.5) == labels[i][j] {
				acc[j]++
			}
		}
	}
	for j := range acc {
		acc[j] /= float64(n)
	}
	return acc, nil
}

// AttrShares returns, per attribute, the share of images whose probability
// is ≥ 0.5 (the attribute statistics of a set of faces).
func AttrShares(probs *mat.Dense) []float64 {
	n, k := probs.Dims()
	s := make([]float64, k)
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			if probs.At(i, j) >= 0.5 {
				s[j]++
			}
		}
	}
	for j := range s {
		s[j] /= float64(n)
	}
	return s
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// graph returns the cached inference graph for batch n.
func (c *AttrClassifier) graph(n int) (*attrNet, error) {
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
	net, err := buildAttrNet(n, tensor.Float32, c.params, len(c.names), false)
	if err != nil {
		return nil, fmt.Errorf("metrics.AttrClassifier: building the graph for batch %d: %w", n, err)
	}
	c.graphs[n] = net
	return net, nil
}

// attrNet is one graph of the attribute net for a fixed batch: inference,
// or (train) with the mean BCE and its gradients for every parameter and
// (last of grads) the input.
type attrNet struct {
	g       *G.ExprGraph
	x       *tensor.Dense
	targets *tensor.Dense // N×K 0/1 labels (training graphs)
	loss    *G.Node
	xNode   *G.Node
	feats   *G.Node
	logits  *G.Node
	names   []string
	pnodes  []*G.Node
	grads   []*G.Node
	vm      G.VM
}

// buildAttrNet builds the net for batch n in dtype dt reading params live;
// with train it adds the loss and its gradients.
func buildAttrNet(n int, dt tensor.Dtype, params map[string]*tensor.Dense, k int, train bool) (*attrNet, error) {
	g := G.NewGraph()
	shapes := attrShapes(k)
	net := &attrNet{g: g, names: sortedKeys(shapes)}
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
	net.x = tensor.New(tensor.WithShape(n, 3, AttrSide, AttrSide), tensor.Of(dt))
	net.xNode = G.NewTensor(g, dt, 4, G.WithShape(n, 3, AttrSide, AttrSide), G.WithName("x"), G.WithValue(net.x))
	wrap := func(what string, err error) error { return fmt.Errorf("building %s: %w", what, err) }
	h := net.xNode
	var err error
	for _, c := range attrConvs {
		if h, err = nn.Conv2d(h, p[c.name+".weight"], p[c.name+".bias"], 1, 1); err != nil {
			return nil, wrap(c.name, err)
		}
		if h, err = maxPool2(h); err != nil {
			return nil, wrap(c.name+" pool", err)
		}
		if h, err = G.Rectify(h); err != nil {
			return nil, wrap(c.name+" relu", err)
		}
	}
	if h, err = G.Reshape(h, tensor.Shape{n, 256 * 4 * 4}); err != nil {
		return nil, wrap("flatten", err)
	}
	if h, err = nn.Linear(h, p["fc1.weight"], p["fc1.bias"]); err != nil {
		return nil, wrap("fc1", err)
	}
	if net.feats, err = G.Rectify(h); err != nil {
		return nil, wrap("fc1 relu", err)
	}
	if net.logits, err = nn.Linear(net.feats, p["fc2.weight"], p["fc2.bias"]); err != nil {
		return nil, wrap("fc2", err)
	}
	if train {
		net.targets = tensor.New(tensor.WithShape(n, k), tensor.Of(dt))
		tn := G.NewTensor(g, dt, 2, G.WithShape(n, k), G.WithName("targets"), G.WithValue(net.targets))
		if net.loss, err = sigmoidBCE(net.logits, tn); err != nil {
			return nil, wrap("loss", err)
		}
		wrt := append(append(G.Nodes{}, net.pnodes...), net.xNode)
		if net.grads, err = G.Grad(net.loss, wrt...); err != nil {
			return nil, wrap("gradients", err)
		}
	}
	if net.vm, err = nn.NewTapeMachine(g); err != nil {
		return nil, wrap("compiling", err)
	}
	return net, nil
}
