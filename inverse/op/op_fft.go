package op

import (
	"gonum.org/v1/gonum/dsp/fourier"
)

// FFT2 is the 2-D complex DFT of h×w row-major arrays (any sizes, through
// gonum's dsp/fourier). Not safe for concurrent use (it keeps work space).
type FFT2 struct {
	h, w       int
	rows, cols *fourier.CmplxFFT
	col, tmp   []complex128
}

// NewFFT2 returns the plans for h×w arrays.
func NewFFT2(h, w int) *FFT2 {
	return &FFT2{h: h, w: w, rows: fourier.NewCmplxFFT(w), cols: fourier.NewCmplxFFT(h),
		col: make([]complex128, h), tmp: make([]complex128, max(h, w))}
}

// Forward computes X[k,l] = Σ x[i,j] e^{−2πi(ki/h + lj/w)} in place.
func (f *FFT2) Forward(a []complex128) { f.run(a, false) }

// Inverse computes x[i,j] = (1/hw) Σ X[k,l] e^{+2πi(ki/h + lj/w)} in place.
func (f *FFT2) Inverse(a []complex128) {
	f.run(a, true)
	sc := complex(1/float64(f.h*f.w), 0)
	for i := range a {
		a[i] *= sc
	}
}

func (f *FFT2) run(a []complex128, inv bool) {
	h, w := f.h, f.w
	for i := 0; i < h; i++ {
		row := a[i*w : (i+1)*w]
		t := f.tmp[:w]
		copy(t, row)
		if inv {
			f.rows.Sequence(row, t)
		} else {
			f.rows.Coefficients(row, t)
		}
	}
	for j := 0; j < w; j++ {
		for i := 0; i < h; i++ {
			f.col[i] = a[i*w+j]
		}
		t := f.tmp[:h]
		if inv {
			f.cols.Sequence(t, f.col)
		} else {
			f.cols.Coefficients(t, f.col)
		}
		for i := 0; i < h; i++ {
			a[i*w+j] = t[i]
		}
	}
}
