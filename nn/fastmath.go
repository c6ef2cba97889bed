package nn

import "math"

// expf32 is exp for float32 by Cephes' expf scheme: range reduction by
// ln 2 (split in two constants), a degree-5 polynomial, and scaling by 2ⁿ
// through the exponent bits. Relative error below 3·10⁻⁷; the argument is
// clamped to [−87.3, 88.3], so it never returns 0 or +Inf (which the
// sigmoid and softmax loops do not need). Small enough to inline.
func expf32(x float32) float32 {
	x = min(max(x, -87.3), 88.3)
	// n = round(x·log₂e): adding 1.5·2²³ rounds to an integer in float32
	f := x*1.44269504088896341 + 12582912
	f -= 12582912
	r := x - f*0.693359375 - f*-2.12194440e-4
	y := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	return (y*r*r + r + 1) * math.Float32frombits(uint32(int32(f)+127)<<23)
}

// siluSlice writes y[i] = x[i]·sigmoid(x[i]) (y may be x).
func siluSlice[T float](x, y []T) {
	switch xs := any(x).(type) {
	case []float32:
		siluF32(xs, any(y).([]float32)[:len(xs)])
	case []float64:
		ys := any(y).([]float64)[:len(xs)]
		for i, v := range xs {
			ys[i] = v / (1 + math.Exp(-v))
		}
	}
}

// siluGradSlice writes dx[i] = dy[i]·s·(1 + x[i]·(1−s)), s = sigmoid(x[i])
// (dx may be x or dy).
func siluGradSlice[T float](x, dy, dx []T) {
	switch xs := any(x).(type) {
	case []float32:
		siluGradF32(xs, any(dy).([]float32)[:len(xs)], any(dx).([]float32)[:len(xs)])
	case []float64:
		dys, dxs := any(dy).([]float64)[:len(xs)], any(dx).([]float64)[:len(xs)]
		for i, v := range xs {
			s := 1 / (1 + math.Exp(-v))
			dxs[i] = dys[i] * s * (1 + v*(1-s))
		}
	}
}

// expShift writes row[i] = exp(row[i] − m) and returns their sum.
func expShift[T float](row []T, m T) T {
	switch r := any(row).(type) {
	case []float32:
		return T(expShiftF32(r, float32(m)))
	case []float64:
		mm := float64(m)
		var s float64
		for i, v := range r {
			e := math.Exp(v - mm)
			r[i] = e
			s += e
		}
		return T(s)
	}
	return 0
}
