// dexp.h: the exp of nn's float32 C kernels, shared by kernels_cgo.go and
// groupnorm_nhwc_cgo.go (each includes it in its cgo preamble).
#ifndef DIFFINV_NN_DEXP_H
#define DIFFINV_NN_DEXP_H

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

#endif
