package nn

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// goldenTensor is a tensor as bench/pytorch/ops_goldens.py writes it.
type goldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

func (g goldenTensor) f32() *tensor.Dense {
	d := make([]float32, len(g.Data))
	for i, v := range g.Data {
		d[i] = float32(v)
	}
	return tensor.New(tensor.WithShape(g.Shape...), tensor.WithBacking(d))
}

type goldenCase struct {
	Name   string                  `json:"name"`
	Op     string                  `json:"op"`
	Params map[string]any          `json:"params"`
	Inputs map[string]goldenTensor `json:"inputs"`
	Order  []string                `json:"order"`
	Output goldenTensor            `json:"output"`
	R      goldenTensor            `json:"r"`
	Grads  map[string]goldenTensor `json:"grads"`
}

type goldenFile struct {
	Torch string       `json:"torch"`
	Cases []goldenCase `json:"cases"`
	Emb   struct {
		T         []float64               `json:"t"`
		MaxPeriod float64                 `json:"max_period"`
		Dims      map[string]goldenTensor `json:"dims"`
	} `json:"timestep_embedding"`
}

func loadGoldens(t *testing.T) *goldenFile {
	t.Helper()
	b, err := os.ReadFile("testdata/ops_goldens.json")
	if err != nil {
		t.Fatalf("goldens: %v (regenerate with /usr/bin/python3 bench/pytorch/ops_goldens.py)", err)
	}
	var f goldenFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("goldens: %v", err)
	}
	return &f
}

// goldenBuilder maps a golden case's op name and params onto our ops.
func goldenBuilder(c goldenCase) (builder, error) {
	num := func(k string) int { return int(c.Params[k].(float64)) }
	switch c.Op {
	case "conv2d":
		return func(ns []*G.Node) (*G.Node, error) {
			var b *G.Node
			if len(ns) == 3 {
				b = ns[2]
			}
			return Conv2d(ns[0], ns[1], b, num("stride"), num("pad"))
		}, nil
	case "group_norm", "group_norm_silu":
		return func(ns []*G.Node) (*G.Node, error) {
			if c.Op == "group_norm_silu" {
				return GroupNormSiLU(ns[0], ns[1], ns[2], num("groups"), c.Params["eps"].(float64))
			}
			return GroupNorm(ns[0], ns[1], ns[2], num("groups"), c.Params["eps"].(float64))
		}, nil
	case "silu":
		return func(ns []*G.Node) (*G.Node, error) { return SiLU(ns[0]) }, nil
	case "upsample2x":
		return func(ns []*G.Node) (*G.Node, error) { return Upsample2x(ns[0]) }, nil
	case "avgpool2x":
		return func(ns []*G.Node) (*G.Node, error) { return AvgPool2x(ns[0]) }, nil
	case "concat":
		return func(ns []*G.Node) (*G.Node, error) { return Concat(ns...) }, nil
	case "linear":
		return func(ns []*G.Node) (*G.Node, error) { return Linear(ns[0], ns[1], ns[2]) }, nil
	case "add_channel":
		return func(ns []*G.Node) (*G.Node, error) { return AddChannel(ns[0], ns[1]) }, nil
	case "scale_shift":
		return func(ns []*G.Node) (*G.Node, error) { return ScaleShift(ns[0], ns[1], ns[2]) }, nil
	case "attention":
		return func(ns []*G.Node) (*G.Node, error) {
			return QKVAttention(ns[0], num("heads"), c.Params["legacy"].(bool))
		}, nil
	}
	return nil, fmt.Errorf("unknown golden op %q", c.Op)
}

// closeTo checks got against want with a float32 tolerance relative to
// want's largest magnitude.
func closeTo(t *testing.T, what string, got []float64, want goldenTensor) {
	t.Helper()
	if len(got) != len(want.Data) {
		t.Fatalf("%s: %d values, golden %d", what, len(got), len(want.Data))
	}
	scale := 0.0
	for _, v := range want.Data {
		scale = math.Max(scale, math.Abs(v))
	}
	for i, w := range want.Data {
		if math.Abs(got[i]-w) > 2e-5*(1+scale) {
			t.Fatalf("%s[%d] = %.8g, PyTorch %.8g", what, i, got[i], w)
		}
	}
}

func TestPyTorchGoldens(t *testing.T) {
	f := loadGoldens(t)
	if len(f.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			build, err := goldenBuilder(c)
			if err != nil {
				t.Fatal(err)
			}
			ins := make([]*tensor.Dense, len(c.Order))
			for i, k := range c.Order {
				ins[i] = c.Inputs[k].f32()
			}
			run, _ := graphRun(t, ins, c.R.f32(), build)
			out, _, grads := run()
			closeTo(t, "output", out, c.Output)
			for i, k := range c.Order {
				closeTo(t, "grad "+k, grads[i], c.Grads[k])
			}
		})
	}
}

func TestPyTorchGoldenEmbedding(t *testing.T) {
	f := loadGoldens(t)
	if len(f.Emb.Dims) == 0 {
		t.Fatal("no embedding goldens")
	}
	for key, want := range f.Emb.Dims {
		e, err := TimestepEmbedding(f.Emb.T, want.Shape[1], f.Emb.MaxPeriod)
		if err != nil {
			t.Fatal(err)
		}
		got := asF64(e)
		dim := want.Shape[1]
		half := dim / 2
		for i, w := range want.Data {
			// float32 phases: PyTorch's exp may differ from ours by an ulp
			// of the frequency, which moves the phase by up to t·freq·2⁻²³.
			col := i % dim
			if col >= half {
				col -= half
			}
			arg := f.Emb.T[i/dim] * math.Exp(-math.Log(f.Emb.MaxPeriod)*float64(col)/float64(half))
			if math.Abs(got[i]-w) > 1e-6+4*arg*math.Pow(2, -24) {
				t.Fatalf("dim %s: [%d] = %.8g, PyTorch %.8g", key, i, got[i], w)
			}
		}
	}
}
