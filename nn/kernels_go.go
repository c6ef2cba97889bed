//go:build !cgo

package nn

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
