//go:build cgo

package nn

/*
#cgo CFLAGS: -O3
#include <stdint.h>
#include <string.h>

// Cephes-style expf, branch-free so that GCC vectorises the loops calling
// it; target_clones compiles each loop for AVX-512, AVX2+FMA and baseline
// x86-64 and picks one when the program loads.
static inline float dexp(float x) {
	x = x < -87.3f ? -87.3f : x;
	x = x > 88.3f ? 88.3f : x;
	float f = x * 1.44269504088896341f + 12582912.0f;
	f -= 12582912.0f;
	float r = x - f * 0.693359375f + f * 2.12194440e-4f;
	float y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
	int32_t bits = ((int32_t)f + 127) << 23;
	float p;
	memcpy(&p, &bits, 4);
	return (y * r * r + r + 1.0f) * p;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void dk_silu(const float* x, float* y, long n) {
	for (long i = 0; i < n; i++) {
		float v = x[i];
		y[i] = v / (1.0f + dexp(-v));
	}
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void dk_silu_grad(const float* x, const float* dy, float* dx, long n) {
	for (long i = 0; i < n; i++) {
		float v = x[i];
		float s = 1.0f / (1.0f + dexp(-v));
		dx[i] = dy[i] * s * (1.0f + v * (1.0f - s));
	}
}

__attribute__((target_clones("avx512f", "avx2", "default")))
float dk_exp_shift(float* row, long n, float m) {
	for (long i = 0; i < n; i++) {
		row[i] = dexp(row[i] - m);
	}
	float s[16] = {0};
	long i = 0;
	for (; i + 16 <= n; i += 16) {
		for (int j = 0; j < 16; j++) s[j] += row[i + j];
	}
	float t = 0;
	for (; i < n; i++) t += row[i];
	for (int j = 0; j < 16; j++) t += s[j];
	return t;
}
*/
import "C"

import "unsafe"

// The float32 activation loops run in C, vectorised (see the cgo preamble);
// without cgo they fall back to the Go loops of kernels_go.go.

func siluF32(x, y []float32) {
	if len(x) == 0 {
		return
	}
	C.dk_silu((*C.float)(unsafe.Pointer(&x[0])), (*C.float)(unsafe.Pointer(&y[0])), C.long(len(x)))
}

func siluGradF32(x, dy, dx []float32) {
	if len(x) == 0 {
		return
	}
	C.dk_silu_grad((*C.float)(unsafe.Pointer(&x[0])), (*C.float)(unsafe.Pointer(&dy[0])), (*C.float)(unsafe.Pointer(&dx[0])), C.long(len(x)))
}

func expShiftF32(row []float32, m float32) float32 {
	if len(row) == 0 {
		return 0
	}
	return float32(C.dk_exp_shift((*C.float)(unsafe.Pointer(&row[0])), C.long(len(row)), C.float(m)))
}
