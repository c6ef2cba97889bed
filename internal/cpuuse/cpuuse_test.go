package cpuuse

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// TestProcessSeconds: 100 ms of wall time in a busy loop adds CPU time to
// the process (at least a tenth of it, allowing for a loaded machine, and
// not more than the cores could give); the load average reads where /proc
// has it.
func TestProcessSeconds(t *testing.T) {
	before, ok := ProcessSeconds()
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("no process CPU time on Linux")
		}
		t.Skip("no process CPU time here")
	}
	start := time.Now()
	x := 0.0
	for time.Since(start) < 100*time.Millisecond {
		for i := range 10000 {
			x += float64(i)
		}
	}
	wall := time.Since(start).Seconds()
	after, _ := ProcessSeconds()
	if d := after - before; d < 0.1*wall || d > float64(Cores())*wall+0.05 {
		t.Errorf("a %.3f s busy loop used %.3f s of CPU (x=%g)", wall, d, x)
	}
	if _, err := os.Stat("/proc/loadavg"); err == nil {
		if l, ok := Load1(); !ok || l < 0 {
			t.Errorf("Load1 = %v, %v", l, ok)
		}
	}
	if Cores() < 1 {
		t.Errorf("Cores() = %d", Cores())
	}
}

// TestModelName: the first "model name" field, spaces folded; none → "".
func TestModelName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  9R14 96-Core Processor\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: other\n", "AMD EPYC 9R14 96-Core Processor"},
		{"processor\t: 0\nflags\t: fpu\n", ""},
		{"", ""},
	} {
		if got := modelName(tc.in); got != tc.want {
			t.Errorf("modelName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if _, err := os.Stat("/proc/cpuinfo"); err == nil && runtime.GOARCH == "amd64" && Model() == "" {
		t.Error("Model() is empty on an amd64 Linux machine")
	}
}
