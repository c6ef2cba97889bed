//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
)

// resetPeakRSS returns the Go heap's free pages to the OS and resets this
// process's peak resident set size (Linux ≥ 4.0: clear_refs 5), so that
// peakRSS measures from here.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns this process's peak resident set size in bytes since
// resetPeakRSS (VmHWM), or ru_maxrss where /proc cannot be read; 0 if neither.
func peakRSS() uint64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := bytes.Fields(sc.Bytes())
			if len(f) >= 2 && string(f[0]) == "VmHWM:" {
				if kb, err := strconv.ParseUint(string(f[1]), 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil && ru.Maxrss > 0 {
		return uint64(ru.Maxrss) << 10
	}
	return 0
}
