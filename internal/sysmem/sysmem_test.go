package sysmem

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Setenv("DIFFINV_MEM_AVAILABLE", "1048576")
	if err := Check(1<<19, "half"); err != nil {
		t.Errorf("512 KiB of 1 MiB: %v", err)
	}
	err := Check(3<<30, "the weights (model.num_channels 9)")
	if err == nil || !strings.Contains(err.Error(), "the weights (model.num_channels 9) need 3 GiB of memory, more than the 1 MiB") {
		t.Errorf("3 GiB of 1 MiB: %v", err)
	}
	t.Setenv("DIFFINV_MEM_AVAILABLE", "")
	if n, ok := Available(); ok && n == 0 {
		t.Errorf("MemAvailable read as 0")
	}
}
