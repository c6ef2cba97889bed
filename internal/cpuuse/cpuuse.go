// Package cpuuse tells how much of the machine a measured run had: the
// CPU time this process used and the system's load average. Timings taken
// beside other work (a training on the same cores) are slower than the
// same work alone; recording both beside a wall time lets a report say so
// instead of printing a figure that silently depends on the machine's load.
package cpuuse

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Cores is the number of logical CPUs the process may use.
func Cores() int { return runtime.NumCPU() }

// Load1 returns the one-minute load average (Linux /proc/loadavg) and true,
// or 0 and false where it cannot be read.
func Load1() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// Model names the CPU (the first "model name" of Linux /proc/cpuinfo),
// or "" where it cannot be read: timings from different machines differ,
// so a stored timing says which one took it.
func Model() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	return modelName(string(b))
}

// modelName is the first "model name" field of a /proc/cpuinfo text.
func modelName(info string) string {
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}
