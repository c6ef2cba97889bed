//go:build !cgo || nodnnl

package dnnl

import (
	"fmt"
	"math"
)

// DisableEnv names the variable that, set to 1, keeps oneDNN unloaded.
const DisableEnv = "DIFFINV_NO_DNNL"

// Available reports false: this build has no oneDNN (no cgo, or -tags nodnnl).
func Available() (bool, string) {
	return false, "this build has no oneDNN (built without cgo or with -tags nodnnl)"
}

// Units is "": this build has no oneDNN.
func Units() string { return "" }

// Native reports false: this build has no oneDNN.
func Native() bool { return false }

// Pass names one of a convolution's three passes.
type Pass int

const (
	Forward Pass = iota
	BackwardData
	BackwardWeights
)

func (p Pass) String() string {
	return [...]string{"forward", "backward-data", "backward-weights"}[p]
}

// Shape is a convolution's geometry (see the cgo build).
type Shape struct {
	N, C, H, W, O, KH, KW, Stride, Pad int
	Bias                               bool
	NHWC                               bool
}

// Out returns the output's height and width.
func (s Shape) Out() (oh, ow int) {
	return (s.H+2*s.Pad-s.KH)/s.Stride + 1, (s.W+2*s.Pad-s.KW)/s.Stride + 1
}

// Conv is unavailable in this build.
type Conv struct{ s Shape }

// NewConv returns an error in this build.
func NewConv(s Shape, threads int) (*Conv, error) {
	_, why := Available()
	return nil, fmt.Errorf("dnnl: bf16 convolution unavailable: %s", why)
}

func (c *Conv) Shape() Shape                                                  { return c.s }
func (c *Conv) Impl(Pass) string                                              { return "" }
func (c *Conv) Forward(int, []float32, []float32, []float32, []float32) error { return errNo }
func (c *Conv) BackwardData(int, []float32, []float32, []float32) error       { return errNo }
func (c *Conv) BackwardWeights(int, []float32, []float32, []float32) error    { return errNo }

var errNo = fmt.Errorf("dnnl: this build has no oneDNN")

// RoundBF16 rounds each value of x to the nearest bfloat16 (ties to even).
func RoundBF16(x, y []float32) {
	for i := range min(len(x), len(y)) {
		u := math.Float32bits(x[i])
		if u&0x7fffffff > 0x7f800000 {
			u |= 0x00400000
		} else {
			u += 0x7fff + (u>>16)&1
		}
		y[i] = math.Float32frombits(u &^ 0xffff)
	}
}

// MeasurePeak returns an error in this build.
func MeasurePeak(threads int, budget float64) (float64, string, error) { return 0, "", errNo }

// Matmul is unavailable in this build.
type Matmul struct{}

// NewMatmul returns an error in this build.
func NewMatmul(s MatmulShape) (*Matmul, error) {
	_, why := Available()
	return nil, fmt.Errorf("dnnl: bf16 matmul unavailable: %s", why)
}

func (m *Matmul) Impl() string                { return "" }
func (m *Matmul) Run(a, b, c []float32) error { return errNo }
