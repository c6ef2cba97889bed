// Package blas is diffinv's matrix-multiply backend: row-major single and
// double precision GEMM, backed by OpenBLAS where it can be loaded and by
// gonum's pure-Go BLAS otherwise.
//
// With cgo (the default build) the package opens libopenblas.so.0 at run time
// with dlopen, the first time a routine is called. Before it does, it sets
// OPENBLAS_CORETYPE from the CPU's features (AVX-512 → SkylakeX, AVX2+FMA →
// Haswell), because Debian's OpenBLAS 0.3.21 misdetects recent Xeons and
// otherwise runs kernels about 7× slower, and OpenBLAS reads the variable
// only when the library loads. This is why the library is not linked at
// build time: a linked library initialises before any Go code can run.
//
// An inherited OPENBLAS_CORETYPE is kept when it names the CPUID choice's
// kernel family or a newer (or unknown) one, and replaced when it names an
// older family: some machine images preset Haswell on AVX-512 CPUs, which
// halves GEMM speed (measured here: 130 against 230–247 GFLOP/s on one
// core). DIFFINV_OPENBLAS_CORETYPE ("auto" for the CPUID choice, or a core
// name) wins over both. ChooseCoreType holds the rule; Info reports what
// was chosen and why.
//
// Build with -tags noblas (or without cgo) to use gonum's pure-Go BLAS
// only; if libopenblas.so.0 cannot be opened the package falls back to gonum
// at run time too, and Info says so.
//
// OpenBLAS is set to one thread when loaded (diffinv parallelises across the
// batch itself); SetThreads changes that.
package blas

import gblas "gonum.org/v1/gonum/blas"

// trans converts a transpose flag to gonum's constant.
func trans(t bool) gblas.Transpose {
	if t {
		return gblas.Trans
	}
	return gblas.NoTrans
}

// OverrideEnv names the variable that makes the package set
// OPENBLAS_CORETYPE even when the user's environment already sets it:
// "auto" for the CPUID choice, or a core name such as "SkylakeX".
const OverrideEnv = "DIFFINV_OPENBLAS_CORETYPE"
