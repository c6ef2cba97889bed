// Package sysmem tells how much memory this machine can still give, so
// that a request too large to fit (a huge network from a crafted config, a
// sample count in the hundreds of millions) is refused with an error
// naming its key before it is allocated, instead of ending in the Go
// runtime's fatal out-of-memory error.
package sysmem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Available returns the bytes of memory available to new allocations
// (Linux /proc/meminfo MemAvailable) and true, or 0 and false where it
// cannot be read. DIFFINV_MEM_AVAILABLE (bytes) overrides it, for tests.
func Available() (uint64, bool) {
	if v := os.Getenv("DIFFINV_MEM_AVAILABLE"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		return n, err == nil
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, false
			}
			return kb * 1024, true
		}
	}
	return 0, false
}

// Check returns nil when need bytes fit in the available memory (or when
// it cannot be read), else an error saying what needs them, e.g. "the
// network's weights (model.num_channels 100000)".
func Check(need float64, what string) error {
	avail, ok := Available()
	if !ok || need <= float64(avail) {
		return nil
	}
	return fmt.Errorf("%s need %s of memory, more than the %s this machine has available", what, Bytes(need), Bytes(float64(avail)))
}

// Bytes formats a byte count with a binary unit.
func Bytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return fmt.Sprintf("%.3g %s", b, units[i])
}
