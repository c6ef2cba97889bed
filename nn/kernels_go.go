//go:build !cgo

package nn

// haveCKernels reports that the C kernels are not compiled in (no cgo).
const haveCKernels = false

func gnFwdF32(x, y, gamma, beta []float32, c, groups, inner int, eps float64, silu bool, mean, rstd []float64) {
	panic("nn: C kernels not built")
}

func gnBwdF32(x, gamma, beta, dy, dx []float32, c, groups, inner int, silu bool, mean, rstd, accG, accB []float64) {
	panic("nn: C kernels not built")
}

func siluF32(x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = v / (1 + expf32(-v))
	}
}

func siluGradF32(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	for i, v := range x {
		s := 1 / (1 + expf32(-v))
		dx[i] = dy[i] * s * (1 + v*(1-s))
	}
}

func expShiftF32(row []float32, m float32) float32 {
	var s float32
	for i, v := range row {
		e := expf32(v - m)
		row[i] = e
		s += e
	}
	return s
}

// addF32 writes y = a + b (y may alias a or b, element for element).
func addF32(a, b, y []float32) {
	b, y = b[:len(a)], y[:len(a)]
	for i, v := range a {
		y[i] = v + b[i]
	}
}

// sumF32 returns the sum of x.
func sumF32(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s
}

// softmaxRowsF32 replaces every row of the r×c matrix m by its softmax.
func softmaxRowsF32(m []float32, r, c int) {
	for i := 0; i < r; i++ {
		row := m[i*c : (i+1)*c]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		inv := 1 / expShiftF32(row, mx)
		for j := range row {
			row[j] *= inv
		}
	}
}

// softmaxBwdF32 replaces dw by w ⊙ (dw − rowsum(w ⊙ dw)) for r×c matrices.
func softmaxBwdF32(w, dw []float32, r, c int) { softmaxBwdGo(w, dw, r, c) }

// copy2F32 copies c planes of h rows of w floats between strided layouts.
func copy2F32(dst []float32, dplane, drow int, src []float32, splane, srow, c, h, w int) {
	copy2Go(dst, dplane, drow, src, splane, srow, c, h, w)
}

func colSumF32(x []float32, rows, c int, acc []float64) { colSumGo(x, rows, c, acc) }

func dropMask(mask []uint8, lo, hi int, seed, thr uint64) { dropMaskGo(mask, lo, hi, seed, thr) }

func dropoutF32(x, y []float32, mask []uint8, scale float32) {
	for i := range x {
		y[i] = x[i] * scale * float32(mask[i])
	}
}
