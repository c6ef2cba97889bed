package nn

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs this package's tests with poisoned buffers (poisonBuffers):
// every op output starts as NaN, so an op that reads what a previous run or
// a node sharing its memory left in its output fails its test. Benchmarks
// (-test.bench) run unpoisoned.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		poisonBuffers = true
	}
	os.Exit(m.Run())
}
