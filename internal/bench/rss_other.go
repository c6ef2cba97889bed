//go:build !linux

package bench

// resetPeakRSS does nothing off Linux.
func resetPeakRSS() {}

// peakRSS is 0 (not measured) off Linux.
func peakRSS() uint64 { return 0 }
