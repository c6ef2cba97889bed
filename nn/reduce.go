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
	outBuffer
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
	parallel(c, elemWorkers(len(x)), func(_, c0, c1 int) {
		for ch := c0; ch < c1; ch++ {
			var s float64
			for i := 0; i < n; i++ {
				s += rowSum(x[(i*c+ch)*inner : (i*c+ch+1)*inner])
			}
			y[ch] = T(s)
		}
	})
}

// rowSum returns the sum of x, vectorised for float32 rows long enough to
// pay for the cgo call.
func rowSum[T float](x []T) float64 {
	if x32, ok := any(x).([]float32); ok && len(x32) >= 64 {
		return sumF32(x32)
	}
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s
}
