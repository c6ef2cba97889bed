// Command diffinv trains diffusion models, samples them and solves inverse
// problems with them. Run `diffinv --help` for the commands.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
)

// gcPercent is the garbage collector's target (GOGC) unless the
// environment sets GOGC: the UNet graphs keep gigabytes of live buffers and
// allocate little per step, so Go's default of 100 (collect when the heap
// has doubled) let the CelebA 64 training process grow to twice its live
// memory with the garbage of graph building; 10 measured 9.8 → 5.4 GB peak
// at batch 16 in bf16 with no slower steps (BENCHMARKS.md).
const gcPercent = 10

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "diffinv:", err)
		os.Exit(1)
	}
}
