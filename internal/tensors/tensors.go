// Package tensors holds the few helpers every diffinv package needs around
// gorgonia.org/tensor: making float32 NCHW batches, reading their backing
// slices, seeded Gaussian draws and shape checks with clear errors.
//
// diffinv passes images between packages as *tensor.Dense of float32 in NCHW
// layout, in [-1, 1] unless a name says otherwise.
package tensors

import (
	"fmt"
	"math/rand"

	"gorgonia.org/tensor"
)

// New returns a zero-filled float32 tensor of the given shape.
func New(shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
}

// FromSlice wraps data (not copied) as a float32 tensor of the given shape.
// It panics if len(data) does not match the shape: that is a programming error.
func FromSlice(data []float32, shape ...int) *tensor.Dense {
	n := 1
	for _, s := range shape {
		n *= s
	}
	if n != len(data) {
		panic(fmt.Sprintf("tensors.FromSlice: %d values for shape %v (%d)", len(data), shape, n))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// F32 returns the float32 backing slice of t (shared, not copied).
func F32(t *tensor.Dense) []float32 {
	return t.Data().([]float32)
}

// Like returns a zero float32 tensor with t's shape.
func Like(t *tensor.Dense) *tensor.Dense {
	return New(t.Shape().Clone()...)
}

// Clone returns a deep copy of t.
func Clone(t *tensor.Dense) *tensor.Dense {
	out := Like(t)
	copy(F32(out), F32(t))
	return out
}

// Randn returns a tensor of independent standard normal draws from rng.
func Randn(rng *rand.Rand, shape ...int) *tensor.Dense {
	t := New(shape...)
	d := F32(t)
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	return t
}

// NCHW returns the four dimensions of an NCHW tensor, or an error naming
// what is wrong with its shape.
func NCHW(name string, t *tensor.Dense) (n, c, h, w int, err error) {
	if t == nil {
		return 0, 0, 0, 0, fmt.Errorf("%s: nil tensor, want N×C×H×W float32", name)
	}
	s := t.Shape()
	if len(s) != 4 {
		return 0, 0, 0, 0, fmt.Errorf("%s: shape %v, want 4 dimensions N×C×H×W", name, []int(s))
	}
	if t.Dtype() != tensor.Float32 {
		return 0, 0, 0, 0, fmt.Errorf("%s: dtype %v, want float32", name, t.Dtype())
	}
	return s[0], s[1], s[2], s[3], nil
}

// SameShape returns an error naming both tensors when their shapes differ.
func SameShape(nameA string, a *tensor.Dense, nameB string, b *tensor.Dense) error {
	if a == nil || b == nil {
		return fmt.Errorf("%s or %s is nil", nameA, nameB)
	}
	if !a.Shape().Eq(b.Shape()) {
		return fmt.Errorf("%s has shape %v but %s has shape %v", nameA, []int(a.Shape()), nameB, []int(b.Shape()))
	}
	return nil
}
