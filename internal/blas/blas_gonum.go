//go:build !cgo || noblas

package blas

import "gonum.org/v1/gonum/blas/gonum"

// CoreTypeFor returns "" in the pure-Go build: no OpenBLAS is loaded.
func CoreTypeFor() string { return "" }

// Backend returns "gonum": this build uses gonum's pure-Go BLAS.
func Backend() string { return "gonum" }

// CoreName returns "": OpenBLAS is not in use in this build.
func CoreName() string { return "" }

// Info describes the backend in one line.
func Info() string { return "gonum pure-Go BLAS (built with noblas or without cgo)" }

// SetThreads has no effect in the pure-Go build.
func SetThreads(n int) {}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, op(A)
// m×k, op(B) k×n, C m×n.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	gonum.Implementation{}.Sgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Dgemm is Sgemm in float64.
func Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	gonum.Implementation{}.Dgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
