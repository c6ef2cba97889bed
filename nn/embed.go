package nn

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// TimestepEmbedding returns guided-diffusion's sinusoidal timestep
// embedding of t as a new float32 len(t)×dim tensor: with half = dim/2 and
// freq_i = exp(−ln(maxPeriod)·i/half), row n is [cos(t_n·freq), sin(t_n·freq)]
// (cos first), plus a zero column when dim is odd. Like the PyTorch code it
// computes freq and the products in float32. guided-diffusion uses
// maxPeriod 10000. The embedding does not depend on parameters, so it enters
// a graph as an input node's value (see TimestepEmbeddingInto).
func TimestepEmbedding(t []float64, dim int, maxPeriod float64) (*tensor.Dense, error) {
	if dim < 1 {
		return nil, fmt.Errorf("nn.TimestepEmbedding: dim %d, want ≥ 1", dim)
	}
	out := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(len(t), dim))
	if err := TimestepEmbeddingInto(out, t, maxPeriod); err != nil {
		return nil, err
	}
	return out, nil
}

// TimestepEmbeddingInto writes TimestepEmbedding(t, dim, maxPeriod) into
// dst (float32 or float64, len(t)×dim), allocating nothing: the per-run update
// of a graph's embedding input.
func TimestepEmbeddingInto(dst *tensor.Dense, t []float64, maxPeriod float64) error {
	const op = "nn.TimestepEmbeddingInto"
	if dst == nil {
		return fmt.Errorf("%s: nil destination", op)
	}
	s := dst.Shape()
	if len(s) != 2 || s[0] != len(t) {
		return fmt.Errorf("%s: destination shape %v, want [%d dim]", op, s, len(t))
	}
	if !(maxPeriod > 0) {
		return fmt.Errorf("%s: maxPeriod %g, want > 0", op, maxPeriod)
	}
	dim := s[1]
	switch d := dst.Data().(type) {
	case []float32:
		embedRun(d, t, dim, maxPeriod)
	case []float64:
		embedRun(d, t, dim, maxPeriod)
	default:
		return fmt.Errorf("%s: destination dtype %v, want float32 or float64", op, dst.Dtype())
	}
	return nil
}

func embedRun[T float](d []T, t []float64, dim int, maxPeriod float64) {
	half := dim / 2
	logP := float32(math.Log(maxPeriod))
	for n, tv := range t {
		row := d[n*dim : (n+1)*dim]
		for i := 0; i < half; i++ {
			freq := float32(math.Exp(float64(-logP * float32(i) / float32(half))))
			arg := float64(float32(tv) * freq)
			row[i] = T(math.Cos(arg))
			row[half+i] = T(math.Sin(arg))
		}
		if dim%2 == 1 {
			row[dim-1] = 0
		}
	}
}
