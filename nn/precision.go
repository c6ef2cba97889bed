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
// loads, else fp32; bf16 asked for runs there too, or emulated by oneDNN on
// an AVX-512 CPU without bf16 units (slower than fp32, but the same
// arithmetic: it reproduces bf16 results, e.g. an experiment's cells), and
// is an error where neither can run.
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
		if BF16Native() {
			return BF16, "bf16 (auto): " + why, nil
		}
		if ok {
			return FP32, "fp32 (auto): the CPU has no bf16 units, where bf16 would be emulated (slower than fp32; precision bf16 runs it)", nil
		}
		return FP32, "fp32 (auto): " + why, nil
	}
	return FP32, "", fmt.Errorf("precision %q: want one of auto, bf16, fp32", s)
}

// BF16Available reports whether bf16 convolutions can run (oneDNN loads
// and the CPU has AMX-BF16 or AVX512-BF16, or AVX-512 to emulate them on)
// and says why or why not.
func BF16Available() (bool, string) { return dnnl.Available() }

// BF16Native reports whether bf16 runs on the CPU's bf16 units rather than
// emulated (see ResolvePrecision).
func BF16Native() bool { return dnnl.Native() }

// Arithmetic names in a few words what computes in precision p here, for
// records beside a timing: "fp32", "bf16 on AMX-BF16", "bf16 on
// AVX512-BF16" or "bf16 emulated on AVX-512" (the same numbers up to the
// order of float32 sums, at very different speeds).
func Arithmetic(p Precision) string {
	if p != BF16 {
		return "fp32"
	}
	u := dnnl.Units()
	if u == "" {
		return "bf16 (cannot run here)"
	}
	if dnnl.Native() {
		return "bf16 on " + u
	}
	return "bf16 " + u
}

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
