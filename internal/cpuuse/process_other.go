//go:build !unix

package cpuuse

// ProcessSeconds is not available on this platform: 0 and false.
func ProcessSeconds() (float64, bool) { return 0, false }
