package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// channelSum sums x (N×C×…) over every axis but the channel axis 1: the
// gradient of a per-channel bias. Its result is C.
func channelSum(x *G.Node) (*G.Node, error) {
	s := x.Shape()
	if len(s) < 2 {
		return nil, fmt.Errorf("nn.channelSum: %s has shape %v, want at least 2 dimensions", x.Name(), s)
	}
	o := &channelSumOp{n: s[0], c: s[1], inner: s.TotalSize() / (s[0] * s[1])}
	o.baseOp = baseOp{name: fmt.Sprintf("ChannelSum(%v)", s), arity: 1, typ: fnType(1, len(s)), shape: tensor.Shape{s[1]}}
	return G.ApplyOp(o, x)
}

type channelSumOp struct {
	baseOp
	n, c, inner int
	out         buffer
}

func (o *channelSumOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		channelSumRun(data[float32](ds[0]), data[float32](y), o.n, o.c, o.inner)
	} else {
		channelSumRun(data[float64](ds[0]), data[float64](y), o.n, o.c, o.inner)
	}
	return y, nil
}

func channelSumRun[T float](x, y []T, n, c, inner int) {
	clear(y)
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			row := x[(i*c+ch)*inner : (i*c+ch+1)*inner]
			var s T
			for _, v := range row {
				s += v
			}
			y[ch] += s
		}
	}
}
