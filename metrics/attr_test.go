package metrics

import (
	"context"
	"math"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/data"
)

// TestAttrGradients checks the face classifier's training gradients
// (convs, pools, ReLUs, linear layers and the BCE op) against central
// finite differences of the loss in float64, for the input and a sample of
// coordinates of every parameter.
func TestAttrGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	const n, k = 2, 3
	clf, err := NewAttrClassifier([]string{"a", "b", "c"}, rng)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]*tensor.Dense{}
	for name, p := range clf.params {
		d := make([]float64, p.Shape().TotalSize())
		for i, v := range p.Data().([]float32) {
			d[i] = float64(v)
		}
		params[name] = tensor.New(tensor.WithShape(p.Shape()...), tensor.WithBacking(d))
	}
	net, err := buildAttrNet(n, tensor.Float64, params, k, true)
	if err != nil {
		t.Fatal(err)
	}
	x := net.x.Data().([]float64)
	for i := range x {
		x[i] = 2*rng.Float64() - 1
	}
	copy(net.targets.Data().([]float64), []float64{1, 0, 1, 0, 0, 1})
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
	analytic := map[string][]float64{}
	for i, name := range net.names {
		analytic[name] = append([]float64(nil), net.grads[i].Value().Data().([]float64)...)
	}
	analytic["x"] = append([]float64(nil), net.grads[len(net.names)].Value().Data().([]float64)...)
	values := map[string][]float64{"x": x}
	for name, p := range params {
		values[name] = p.Data().([]float64)
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	const h = 1e-6
	f0 := lossAt()
	checked, redrawn := 0, 0
	for _, name := range names {
		v := values[name]
		for j := 0; j < 4; j++ {
			i := rng.Intn(len(v))
			old := v[i]
			v[i] = old + h
			fp := lossAt()
			v[i] = old - h
			fm := lossAt()
			v[i] = old
			if math.Abs(fp-2*f0+fm) > 1e-11 && redrawn < 30 { // a ReLU or pooling kink within ±h
				redrawn++
				j--
				continue
			}
			fd := (fp - fm) / (2 * h)
			if got := analytic[name][i]; math.Abs(fd-got) > 1e-7+1e-4*math.Abs(fd) {
				t.Errorf("∂loss/∂%s[%d]: analytic %.9g, finite difference %.9g", name, i, got, fd)
			}
			checked++
		}
	}
	if checked != 4*len(names) {
		t.Fatalf("checked %d coordinates, want %d", checked, 4*len(names))
	}
	// The loss itself: mean softplus(z) − y·z over the logits.
	got := lossAt()
	z := net.logits.Value().Data().([]float64)
	y := []float64{1, 0, 1, 0, 0, 1}
	want := 0.0
	for i, v := range z {
		want += math.Log(1+math.Exp(v)) - y[i]*v
	}
	want /= float64(len(z))
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("BCE %v, want %v", got, want)
	}
}

// synthFaces makes n 3×64×64 images with two attributes that a small CNN
// learns at once: "bright" (mean level above 0) and "red" (the red channel
// above the others).
func synthFaces(n int, rng *rand.Rand) (*data.Dataset, [][]bool) {
	const s = AttrSide
	pix := make([]uint8, n*3*s*s)
	attrs := make([][]bool, n)
	for i := 0; i < n; i++ {
		bright, red := rng.Intn(2) == 1, rng.Intn(2) == 1
		attrs[i] = []bool{bright, red}
		for c := 0; c < 3; c++ {
			base := 70
			if bright {
				base = 170
			}
			if red && c == 0 {
				base += 60
			}
			for p := 0; p < s*s; p++ {
				pix[(i*3+c)*s*s+p] = uint8(min(255, base+rng.Intn(30)))
			}
		}
	}
	ds, _ := data.NewDataset(pix, nil, n, 3, s, s)
	return ds, attrs
}

// TestTrainAttrClassifier: a short run learns two visible attributes (test
// accuracy ≥ 0.95 each), the weights round-trip through Save/Load with the
// same outputs, and bad input is an error naming it.
func TestTrainAttrClassifier(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	train, attrs := synthFaces(96, rng)
	test, testAttrs := synthFaces(40, rng)
	names := []string{"Bright", "Red"}
	clf, rep, err := TrainAttrClassifier(context.Background(), train, attrs, names, test, testAttrs,
		TrainOptions{Epochs: 10, BatchSize: 16, LR: 2e-3, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for j, a := range rep.TestAccuracy {
		if a < 0.95 {
			t.Errorf("attribute %s: test accuracy %.3f after %d steps, want ≥ 0.95", names[j], a, rep.Steps)
		}
	}
	path := filepath.Join(t.TempDir(), "attr.safetensors")
	if err := clf.Save(path, map[string]string{"note": "test"}); err != nil {
		t.Fatal(err)
	}
	back, err := LoadAttrClassifier(path)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := test.Batch([]int{0, 1, 2})
	o1, err := clf.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := back.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		for j := 0; j < 2; j++ {
			if o1.Probs.At(i, j) != o2.Probs.At(i, j) {
				t.Fatalf("loaded classifier differs at (%d, %d)", i, j)
			}
		}
	}
	if strings.Join(back.Names(), ",") != "Bright,Red" || back.Metadata()["note"] != "test" {
		t.Errorf("loaded names %v metadata %v", back.Names(), back.Metadata())
	}
	if _, _, err := TrainAttrClassifier(context.Background(), train, attrs[:3], names, nil, nil, TrainOptions{MaxSteps: 1}, nil); err == nil || !strings.Contains(err.Error(), "3 label rows") {
		t.Errorf("short labels: %v", err)
	}
	if _, err := clf.Forward(tensor.New(tensor.WithShape(1, 1, 28, 28), tensor.Of(tensor.Float32))); err == nil || !strings.Contains(err.Error(), "want float32 N×3×64×64") {
		t.Errorf("MNIST-shaped input: %v", err)
	}
	if _, err := LoadAttrClassifier("../models/classifier/classifier.safetensors"); err == nil || !strings.Contains(err.Error(), "want \""+AttrArch+"\"") {
		t.Errorf("loading the MNIST classifier as a face classifier: %v", err)
	}
}
