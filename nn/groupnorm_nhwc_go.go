//go:build !cgo

package nn

// Without cgo, GroupNormNHWC's float32 path runs the Go loops of
// groupnorm_nhwc.go (haveCKernels is false); these are never called.

func gnNHWCFwdF32(x, y, gamma, beta []float32, pix, c, groups, reps int, eps float64, silu bool, mean, rstd, ws []float64, wf []float32) {
	panic("nn: C kernels not built")
}

func gnNHWCBwdF32(x, gamma, beta, dy, dx []float32, pix, c, groups, reps int, silu bool, mean, rstd, accG, accB, ws []float64, wf []float32) {
	panic("nn: C kernels not built")
}
