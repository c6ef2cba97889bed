package eval

import (
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/sample"
)

// TestDrawChecksMemory: a sample count the memory cannot hold is refused
// up front, naming the count and the key, for every command that draws
// (sample, eval samples, the face evaluation, training cells).
func TestDrawChecksMemory(t *testing.T) {
	t.Setenv("DIFFINV_MEM_AVAILABLE", "100000")
	cfg := config.Default()
	cfg.Sample.NumSamples = 5000
	_, err := Draw(&cfg, nil, nil, sample.DefaultOptions(), func(int) {})
	if err == nil || !strings.Contains(err.Error(), "5000 samples of 1×28×28 (sample.num_samples") {
		t.Errorf("Draw of 5000 samples in 100 kB: %v", err)
	}
}
