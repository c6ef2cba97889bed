package bench

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/nn"
)

func tinyModel() config.Model {
	return config.Model{ImageSize: 8, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{4}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
}

func TestRunAndPrint(t *testing.T) {
	res, err := Run(context.Background(), tinyModel(), Options{Batch: 2, Threads: 1, Iters: 2, Warmup: 1, Rounds: 1, Seed: 1}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Figures) != 3 || res.ConvGFLOPS <= 0 || res.SgemmGFLOPS <= 0 || res.Params <= 0 {
		t.Fatalf("result %+v", res)
	}
	var out bytes.Buffer
	res.Print(&out)
	// Without PyTorch the torch column reads n/a; the line format is the issue's.
	line := regexp.MustCompile(`(?m)^(train_step|eps|eps_vjp): diffinv [0-9.]+ ms, torch n/a, ratio n/a$`)
	if n := len(line.FindAllString(out.String(), -1)); n != 3 {
		t.Errorf("%d figure lines in:\n%s", n, out.String())
	}
	for _, want := range []string{"GFLOP/s", "of sgemm peak", "alloc per train step", "precision fp32"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report misses %q", want)
		}
	}
	res.Figures[0].Torch = res.Figures[0].DiffinvMS * 2
	out.Reset()
	res.Print(&out)
	if !strings.Contains(out.String(), "ratio 0.50") {
		t.Errorf("ratio line: %s", out.String())
	}
}

// TestRunBF16: bf16 where it cannot run is an error before anything is
// timed (once bf16 kernels exist, the run reports precision bf16).
func TestRunBF16(t *testing.T) {
	ok, _ := nn.BF16Available()
	res, err := Run(context.Background(), tinyModel(), Options{Batch: 2, Threads: 1, Iters: 1, Rounds: 1, Seed: 1, Precision: nn.BF16}, &bytes.Buffer{})
	if !ok {
		if err == nil || !strings.Contains(err.Error(), "bf16 cannot run here") {
			t.Errorf("bf16 without bf16 kernels: %v", err)
		}
		return
	}
	if err != nil || res.Precision != "bf16" {
		t.Errorf("bf16: %v, result %+v", err, res)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	if _, err := Run(context.Background(), tinyModel(), Options{Batch: 0, Threads: 1, Iters: 1, Rounds: 1}, &bytes.Buffer{}); err == nil {
		t.Error("batch 0 accepted")
	}
}
