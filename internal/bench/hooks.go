package bench

import (
	"errors"

	G "gorgonia.org/gorgonia"

	"github.com/diffinv/diffinv/internal/dnnl"
	"github.com/diffinv/diffinv/nn"
)

// ErrNoBF16 is what the bf16 hooks return until the bf16 engine fills them.
var ErrNoBF16 = errors.New("no oneDNN bf16 kernel yet (bench.BF16Peak)")

// BF16Peak measures the bfloat16 peak the heaviest convolution's bf16
// GFLOP/s are compared with, on threads cores at once (as the sgemm peak):
// its GFLOP/s (nominal 2·N·O·C·KH·KW·OH·OW per convolution) and a
// one-line name of the kernel that ran (e.g. the oneDNN implementation
// string). The bf16 engine (internal/dnnl) sets it to a large oneDNN bf16
// convolution; until then it returns ErrNoBF16 and the report reads n/a.
var BF16Peak = func(threads int) (gflops float64, kernel string, err error) {
	if ok, why := nn.BF16Available(); !ok {
		return 0, "", errors.New(why)
	}
	g, k, err := dnnl.MeasurePeak(threads, 1.0)
	return g, "oneDNN " + k + ", 16×128×32×32 3×3→128 NHWC, one per core", err
}

// ConvBF16 builds the bfloat16 counterpart of nn.Conv2d for the conv
// figures: x (N×C×H×W), w (O×C×KH×KW) and b (O, or nil) are float32 nodes,
// the result a float32 node, with gradients to x and w, computed in bf16
// with float32 accumulation as the bf16 UNet's convolutions are. Its forward
// and backward ops must be counted by nn.ConvStatsByPass (the report reads
// their per-pass GFLOP/s from it). nil until the bf16 engine sets it; the
// bf16 conv line then reads n/a.
var ConvBF16 func(x, w, b *G.Node, stride, pad int) (*G.Node, error) = convBF16

// convBF16 is what the bf16 UNet runs: the channels-last oneDNN convolution
// (nn.Conv2dNHWC) between transpositions (not counted by ConvStatsByPass).
func convBF16(x, w, b *G.Node, stride, pad int) (*G.Node, error) {
	xh, err := nn.ToNHWC(x)
	if err != nil {
		return nil, err
	}
	y, err := nn.Conv2dNHWC(xh, w, b, stride, pad)
	if err != nil {
		return nil, err
	}
	return nn.ToNCHW(y)
}
