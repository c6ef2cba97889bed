package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ToNHWC returns x (N×C×H×W) with its channels moved last: N×H×W×C, the
// layout of the bf16 graphs (oneDNN's AMX convolutions read and write it
// directly, so activations stay in it from op to op). Gradients flow back
// through ToNCHW.
func ToNHWC(x *G.Node) (*G.Node, error) { return transposeOp4("nn.ToNHWC", x, true) }

// ToNCHW is the inverse of ToNHWC: x N×H×W×C becomes N×C×H×W.
func ToNCHW(x *G.Node) (*G.Node, error) { return transposeOp4("nn.ToNCHW", x, false) }

func transposeOp4(op string, x *G.Node, toNHWC bool) (*G.Node, error) {
	xs, err := shapeOf(op, "input", x, 4)
	if err != nil {
		return nil, err
	}
	if _, err := dtypeOf(op, x); err != nil {
		return nil, err
	}
	o := &layoutOp{toNHWC: toNHWC, n: xs[0]}
	var ys tensor.Shape
	if toNHWC { // N C H W → N H W C
		o.c, o.hw = xs[1], xs[2]*xs[3]
		ys = tensor.Shape{xs[0], xs[2], xs[3], xs[1]}
	} else { // N H W C → N C H W
		o.c, o.hw = xs[3], xs[1]*xs[2]
		ys = tensor.Shape{xs[0], xs[3], xs[1], xs[2]}
	}
	o.baseOp = baseOp{name: fmt.Sprintf("%s(%v)", op[3:], xs), arity: 1, typ: fnType(4, 4), shape: ys}
	return G.ApplyOp(o, x)
}

// layoutOp moves channels between second and last place.
type layoutOp struct {
	baseOp
	toNHWC   bool
	n, c, hw int
	outBuffer
}

func (o *layoutOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		layoutRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		layoutRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

func layoutRun[T float](o *layoutOp, x, y []T) {
	sz := o.c * o.hw
	parallel(o.n, workers(o.n), func(_, lo, hi int) {
		for n := lo; n < hi; n++ {
			if o.toNHWC {
				transposeTo(x[n*sz:(n+1)*sz], y[n*sz:(n+1)*sz], o.c, o.hw)
			} else {
				transposeTo(x[n*sz:(n+1)*sz], y[n*sz:(n+1)*sz], o.hw, o.c)
			}
		}
	})
}

// transposeTo writes the transpose of the r×c row-major matrix src into
// dst (c×r), in tiles that stay in cache.
func transposeTo[T float](src, dst []T, r, c int) {
	const tile = 32
	for i0 := 0; i0 < r; i0 += tile {
		i1 := min(i0+tile, r)
		for j0 := 0; j0 < c; j0 += tile {
			j1 := min(j0+tile, c)
			for i := i0; i < i1; i++ {
				row := src[i*c : (i+1)*c]
				for j := j0; j < j1; j++ {
					dst[j*r+i] = row[j]
				}
			}
		}
	}
}

func (o *layoutOp) DiffWRT(int) []bool { return []bool{true} }

func (o *layoutOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	var d *G.Node
	var err error
	if o.toNHWC {
		d, err = ToNCHW(grad)
	} else {
		d, err = ToNHWC(grad)
	}
	if err != nil {
		return nil, fmt.Errorf("%s backward: %w", o.name, err)
	}
	return G.Nodes{d}, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *layoutOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}
