// Package dnnl runs bfloat16 convolutions on oneDNN (Intel's deep-learning
// kernel library, Debian's libdnnl2 2.6), which uses the CPU's AMX tiles or
// AVX512-BF16 instructions where present: about ten times diffinv's float32
// OpenBLAS path on the project's Sapphire Rapids machines.
//
// The library is opened at run time with dlopen (as package blas opens
// OpenBLAS), so a machine without libdnnl.so.2, a CPU without bf16
// instructions, or a build without cgo (or with -tags nodnnl) keeps the
// float32 path: Available says which and why. On an AVX-512 CPU without bf16
// instructions oneDNN emulates bf16 (the same rounding and float32
// accumulation, slower than the float32 path): Available is then true and
// Native false, so that `auto` keeps float32 while an explicit bf16 still
// reproduces results computed in bf16 elsewhere.
package dnnl
