package nn

import (
	"fmt"

	"github.com/diffinv/diffinv/internal/dnnl"
)

// Precision is the arithmetic the network's heavy ops (convolutions, 1×1
// layers) run in. FP32 is today's float32 path on OpenBLAS; BF16 is mixed
// precision as PyTorch's CPU autocast does it: float32 master weights,
// activations, normalisation statistics, softmax and loss, with the
// convolutions fed bfloat16 inputs and weights and accumulating in float32,
// on oneDNN's AMX / AVX512-BF16 kernels.
type Precision uint8

const (
	// FP32 runs every op in float32 (the reference path).
	FP32 Precision = iota
	// BF16 runs convolutions in bfloat16 with float32 accumulation.
	BF16
)

// String returns "fp32" or "bf16".
func (p Precision) String() string {
	if p == BF16 {
		return "bf16"
	}
	return "fp32"
}

// PrecisionNames are the values a precision setting accepts.
var PrecisionNames = []string{"auto", "bf16", "fp32"}

// ResolvePrecision turns a setting (auto, bf16 or fp32; "" means auto) into
// the precision that will run, and a one-line reason naming the kernels.
// auto picks bf16 where the CPU has AMX-BF16 or AVX512-BF16 and oneDNN
// loads, else fp32; bf16 is an error where it cannot run.
func ResolvePrecision(s string) (Precision, string, error) {
	ok, why := BF16Available()
	switch s {
	case "fp32":
		return FP32, "fp32 as asked: float32 on OpenBLAS", nil
	case "bf16":
		if !ok {
			return FP32, "", fmt.Errorf("precision bf16 cannot run here: %s (use fp32 or auto)", why)
		}
		return BF16, "bf16 as asked: " + why, nil
	case "auto", "":
		if ok {
			return BF16, "bf16 (auto): " + why, nil
		}
		return FP32, "fp32 (auto): " + why, nil
	}
	return FP32, "", fmt.Errorf("precision %q: want one of auto, bf16, fp32", s)
}

// BF16Available reports whether bf16 convolutions can run (the CPU has
// AMX-BF16 or AVX512-BF16 and oneDNN loads) and says why or why not.
func BF16Available() (bool, string) { return dnnl.Available() }

// canRun is nil when an op (named op) can run in precision p here, else an
// error saying why not (BF16 without oneDNN or a bf16 CPU).
func canRun(op string, p Precision) error {
	if p == BF16 {
		if ok, why := BF16Available(); !ok {
			return fmt.Errorf("%s: bf16 cannot run here: %s", op, why)
		}
	}
	return nil
}
