package nn

import (
	"sync/atomic"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// engine is the tensor engine of this package's op outputs (output buffers
// and shared slabs) and of the tape machines it makes (NewTapeMachine,
// NewSharedTapeMachine: every register the tape allocates and every value
// bound to a node): gorgonia's StandardEngine (tensor.StdEng with
// gorgonia's Transpose) with its Add replaced, for float32 operands of one
// shape, by the parallel, vectorised add of the package's own ops.
//
// Why: the gradient sums of a graph (where a node feeds several others, as
// every residual and skip connection does) are gorgonia's own Add nodes,
// which the tape machine and the pullback's replay run through
// tensor.Add. tensor.Add dispatches on its first operand's engine, and
// StdEng adds in one goroutine with a scalar loop: 3.7 % of a CelebA 64
// training step and 6.3 % of a face DPS step (perf). Since the first
// operand of a gradient sum is usually an op output of this package, giving
// those tensors and the tape's registers this engine moves the sums onto
// the fast path; any other
// case (another dtype or shape, views, an increment) goes to StdEng as
// before. The sums are the same numbers either way (one float32 addition
// per element).
type engine struct{ G.StandardEngine }

// fastEngine is the engine value given to op outputs.
var fastEngine tensor.Engine = engine{}

// fastAdds counts the adds that took the fast path (tests check that
// gorgonia's gradient sums still reach it).
var fastAdds atomic.Int64

// Add is StandardEngine.Add, with same-shape float32 dense operands added by
// addF32 over the package's workers. It honours the options gorgonia
// passes: tensor.WithReuse (write into the given tensor), tensor.UseUnsafe
// (write into a) and tensor.AsSameType; an increment (tensor.WithIncr)
// goes to StandardEngine.
func (e engine) Add(a, b tensor.Tensor, opts ...tensor.FuncOpt) (tensor.Tensor, error) {
	if y := e.fastAdd(a, b, opts); y != nil {
		return y, nil
	}
	return e.StandardEngine.Add(a, b, opts...)
}

// fastAdd returns a + b when the fast path applies, else nil.
func (e engine) fastAdd(a, b tensor.Tensor, opts []tensor.FuncOpt) *tensor.Dense {
	ad, ok1 := a.(*tensor.Dense)
	bd, ok2 := b.(*tensor.Dense)
	if !ok1 || !ok2 || !plainF32(ad) || !plainF32(bd) || !ad.Shape().Eq(bd.Shape()) {
		return nil
	}
	fo := tensor.ParseFuncOpts(opts...)
	if fo.Incr() != nil {
		return nil
	}
	var y *tensor.Dense
	switch r := fo.Reuse(); {
	case r != nil:
		rd, ok := r.(*tensor.Dense)
		if !ok || !plainF32(rd) || !rd.Shape().Eq(ad.Shape()) {
			return nil
		}
		y = rd
	case !fo.Safe():
		y = ad
	default:
		y = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(ad.Shape().Clone()...), tensor.WithEngine(fastEngine))
	}
	av, bv, yv := ad.Data().([]float32), bd.Data().([]float32), y.Data().([]float32)
	if len(bv) != len(av) || len(yv) != len(av) {
		return nil
	}
	parallel(len(av), elemWorkers(len(av)), func(_, lo, hi int) { addF32(av[lo:hi], bv[lo:hi], yv[lo:hi]) })
	fastAdds.Add(1)
	return y
}

// plainF32 reports whether d is a float32 tensor laid out contiguously in
// its own data (not a view, no mask, not a scalar).
func plainF32(d *tensor.Dense) bool {
	return d.Dtype() == tensor.Float32 && !d.IsView() && !d.IsMasked() && !d.IsScalar() && !d.RequiresIterator()
}
