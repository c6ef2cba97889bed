//go:build unix

package cpuuse

import "syscall"

// ProcessSeconds returns the CPU time (user + system) this process has used
// so far, in seconds, and true, or 0 and false where it cannot be read.
func ProcessSeconds() (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime), true
}
