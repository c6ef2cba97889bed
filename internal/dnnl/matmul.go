package dnnl

import "fmt"

// MatmulShape is a batched matrix product C[i] = Alpha·A[i]·B[i], i <
// Batch, with A Batch×M×K, B Batch×K×N and C Batch×M×N float32 arrays laid
// out with any element strides (batch, row, column): a transposed operand
// or a column block of a wider matrix is just other strides.
type MatmulShape struct {
	Batch, M, K, N int
	A, B, C        [3]int // strides in elements: batch, row, column
	Alpha          float32
}

// span is the number of elements a strided operand of dims d reaches.
func span(d, st [3]int) int {
	n := 1
	for i := range d {
		n += (d[i] - 1) * st[i]
	}
	return n
}

// Lens returns the smallest lengths of A, B and C's slices.
func (s MatmulShape) Lens() (a, b, c int) {
	return span([3]int{s.Batch, s.M, s.K}, s.A), span([3]int{s.Batch, s.K, s.N}, s.B), span([3]int{s.Batch, s.M, s.N}, s.C)
}

func (s MatmulShape) check() error {
	if s.Batch < 1 || s.M < 1 || s.K < 1 || s.N < 1 {
		return fmt.Errorf("dnnl: matmul %+v: want every dimension ≥ 1", s)
	}
	for _, st := range [][3]int{s.A, s.B, s.C} {
		for _, v := range st {
			if v < 0 {
				return fmt.Errorf("dnnl: matmul %+v: negative stride", s)
			}
		}
	}
	return nil
}
