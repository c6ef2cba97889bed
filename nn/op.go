package nn

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/blas"
)

// float is the element type of the kernels: every op runs in float32 (the
// production path) and float64 (for finite-difference gradient checks).
type float interface{ float32 | float64 }

// gemm computes C = alpha·op(A)·op(B) + beta·C (row-major) with the blas
// package, in T's precision.
func gemm[T float](ta, tb bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch av := any(a).(type) {
	case []float32:
		blas.Sgemm(ta, tb, m, n, k, float32(alpha), av, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		blas.Dgemm(ta, tb, m, n, k, float64(alpha), av, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// tensorType is the Hindley–Milner type of a d-dimensional tensor of the
// type variable 'a' (every input and output of an op shares the dtype).
func tensorType(d int) hm.Type { return G.TensorType{Dims: d, Of: hm.TypeVariable('a')} }

// sig is an op's signature: the ranks of its inputs and of its output. Type
// builds a fresh hm function type from it on every call, because gorgonia
// returns the type an op gives it to hm's pool after type inference.
type sig struct {
	out int
	ins []int
}

// fnType returns the signature of an op with inputs of ranks ins and an
// output of rank out.
func fnType(out int, ins ...int) sig { return sig{out: out, ins: append([]int(nil), ins...)} }

// build returns a new function type for s.
func (s sig) build() hm.Type {
	ts := make([]hm.Type, 0, len(s.ins)+1)
	for _, d := range s.ins {
		ts = append(ts, tensorType(d))
	}
	ts = append(ts, tensorType(s.out))
	return hm.NewFnType(ts...)
}

// hashString hashes an op description for Hashcode.
func hashString(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// writeHash writes s into h (for WriteHash).
func writeHash(h hash.Hash, s string) { h.Write([]byte(s)) }

// dense returns v as a contiguous *tensor.Dense of dtype dt with the given
// number of elements, or an error naming the op and the argument.
func dense(op string, arg int, v G.Value, dt tensor.Dtype) (*tensor.Dense, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%s: argument %d is %T, want *tensor.Dense", op, arg, v)
	}
	if d.Dtype() != dt {
		return nil, fmt.Errorf("%s: argument %d has dtype %v, want %v", op, arg, d.Dtype(), dt)
	}
	if d.RequiresIterator() {
		return nil, fmt.Errorf("%s: argument %d is a non-contiguous view, want a contiguous tensor", op, arg)
	}
	return d, nil
}

// data returns the backing slice of d as []T.
func data[T float](d *tensor.Dense) []T { return d.Data().([]T) }

// buffer is an op-owned output tensor, reused across runs of the graph: the
// value a node returns is overwritten when the graph runs again. A buffer
// given a slab by ShareBuffers lives in memory it shares with the outputs of
// other nodes whose values are never live at the same time.
type buffer struct {
	t    *tensor.Dense
	slab *slab
	gen  int // the slab generation t was cut from
}

// get returns the buffer with the given dtype and shape, allocating it the
// first time (or when the shape changes). Its contents are unspecified (in
// this package's tests, NaN: see poisonBuffers).
func (b *buffer) get(dt tensor.Dtype, shape tensor.Shape) *tensor.Dense {
	switch {
	case b.slab != nil:
		if b.t == nil || b.gen != b.slab.gen || b.t.Dtype() != dt || !b.t.Shape().Eq(shape) {
			b.t = b.slab.cut(dt, shape)
			b.gen = b.slab.gen
		}
	case b.t == nil || b.t.Dtype() != dt || !b.t.Shape().Eq(shape):
		b.t = tensor.New(tensor.Of(dt), tensor.WithShape(shape.Clone()...), tensor.WithEngine(fastEngine))
	}
	if poisonBuffers {
		poison(b.t)
	}
	return b.t
}

// poisonBuffers makes every buffer.get fill the buffer with NaN, so that an
// op which reads its output before writing all of it (and so depends on what
// an earlier run, or a node sharing its memory, left there) fails its tests.
// Set by this package's tests only.
var poisonBuffers = false

func poison(t *tensor.Dense) {
	switch d := t.Data().(type) {
	case []float32:
		nan := float32(math.NaN())
		for i := range d {
			d[i] = nan
		}
	case []float64:
		nan := math.NaN()
		for i := range d {
			d[i] = nan
		}
	}
}

// scratch holds per-worker work slices of either precision, reused across
// runs. Workers may ask for theirs concurrently.
type scratch struct {
	mu  sync.Mutex
	f32 [][]float32
	f64 [][]float64
}

// slice returns worker w's scratch of n elements (contents unspecified).
func slice[T float](s *scratch, w, n int) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	var zero T
	switch any(zero).(type) {
	case float32:
		for len(s.f32) <= w {
			s.f32 = append(s.f32, nil)
		}
		if cap(s.f32[w]) < n {
			s.f32[w] = make([]float32, n)
		}
		return any(s.f32[w][:n]).([]T)
	default:
		for len(s.f64) <= w {
			s.f64 = append(s.f64, nil)
		}
		if cap(s.f64[w]) < n {
			s.f64[w] = make([]float64, n)
		}
		return any(s.f64[w][:n]).([]T)
	}
}

// workers returns how many goroutines to split n independent items over.
func workers(n int) int {
	w := runtime.GOMAXPROCS(0)
	if w > n {
		w = n
	}
	if w < 1 {
		w = 1
	}
	return w
}

// parallel splits [0, n) into nw contiguous chunks and runs fn(worker, lo, hi)
// for each in its own goroutine (the last in the caller's).
func parallel(n, nw int, fn func(w, lo, hi int)) {
	if nw <= 1 || n <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < nw; w++ {
		lo, hi := w*n/nw, (w+1)*n/nw
		if w == nw-1 {
			fn(w, lo, hi)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, lo, hi)
		}()
	}
	wg.Wait()
}

// dtypeOf returns the dtype of n, or an error if it is neither float32 nor
// float64.
func dtypeOf(op string, n *G.Node) (tensor.Dtype, error) {
	dt := n.Dtype()
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return dt, fmt.Errorf("%s: %s has dtype %v, want float32 or float64", op, n.Name(), dt)
	}
	return dt, nil
}

// sameDtype checks that every node has the dtype of the first.
func sameDtype(op string, ns ...*G.Node) (tensor.Dtype, error) {
	dt, err := dtypeOf(op, ns[0])
	if err != nil {
		return dt, err
	}
	for _, n := range ns[1:] {
		if n.Dtype() != dt {
			return dt, fmt.Errorf("%s: %s has dtype %v, want %v like %s", op, n.Name(), n.Dtype(), dt, ns[0].Name())
		}
	}
	return dt, nil
}

// shapeOf returns n's shape, checking its rank.
func shapeOf(op, what string, n *G.Node, rank int) (tensor.Shape, error) {
	if n == nil {
		return nil, fmt.Errorf("%s: %s is nil", op, what)
	}
	s := n.Shape()
	if len(s) != rank {
		return nil, fmt.Errorf("%s: %s %s has shape %v, want %d dimensions", op, what, n.Name(), s, rank)
	}
	return s, nil
}

// baseOp holds the parts of gorgonia's Op interface shared by every op here.
type baseOp struct {
	name  string // what String prints and Hashcode hashes
	arity int
	typ   sig
	shape tensor.Shape // output shape, fixed when the graph is built
}

func (b *baseOp) Arity() int                                     { return b.arity }
func (b *baseOp) Type() hm.Type                                  { return b.typ.build() }
func (b *baseOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return b.shape.Clone(), nil }
func (b *baseOp) ReturnsPtr() bool                               { return false }
func (b *baseOp) CallsExtern() bool                              { return false }
func (b *baseOp) OverwritesInput() int                           { return -1 }
func (b *baseOp) WriteHash(h hash.Hash)                          { writeHash(h, b.name) }
func (b *baseOp) Hashcode() uint32                               { return hashString(b.name) }
func (b *baseOp) String() string                                 { return b.name }

// checkArity returns an error unless got inputs were passed.
func (b *baseOp) checkArity(got int) error {
	if got != b.arity {
		return fmt.Errorf("%s: %d inputs, want %d", b.name, got, b.arity)
	}
	return nil
}
