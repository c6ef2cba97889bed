package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
	if len(res.Figures) != 3 || res.SgemmGFLOPS <= 0 || res.Params <= 0 {
		t.Fatalf("result %+v", res)
	}
	for p, g := range res.ConvFP32 {
		if g <= 0 {
			t.Errorf("conv pass %d: %g GFLOP/s", p, g)
		}
	}
	var out bytes.Buffer
	res.Print(&out)
	// Without PyTorch the torch column reads n/a; bf16 is not available yet.
	line := regexp.MustCompile(`(?m)^(train_step|eps|eps_vjp) fp32: diffinv [0-9.]+ ms, torch n/a, ratio n/a$`)
	if n := len(line.FindAllString(out.String(), -1)); n != 3 {
		t.Errorf("%d fp32 figure lines in:\n%s", n, out.String())
	}
	if ok, _ := nn.BF16Available(); !ok {
		bf := regexp.MustCompile(`(?m)^(train_step|eps|eps_vjp) bf16: diffinv n/a \([^)]+\), torch n/a, ratio n/a$`)
		if n := len(bf.FindAllString(out.String(), -1)); n != 3 {
			t.Errorf("%d bf16 n/a lines in:\n%s", n, out.String())
		}
	}
	peak := "bf16 peak n/a"
	if ok, _ := nn.BF16Available(); ok {
		peak = "of bf16 peak"
	}
	for _, want := range []string{"forward", "backward-data", "backward-weights", "of sgemm peak",
		peak, "alloc per train step", "peak RSS, train_step: diffinv fp32", "weights check: n/a"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report misses %q:\n%s", want, out.String())
		}
	}
	res.Figures[0].Torch, res.Figures[0].TorchFormat = res.Figures[0].DiffinvMS*2, "nchw"
	out.Reset()
	res.Print(&out)
	if !strings.Contains(out.String(), " ms (nchw), ratio 0.50") {
		t.Errorf("ratio line: %s", out.String())
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Batch: 0, Threads: 1, Iters: 1, Rounds: 1},
		{Batch: 1, Threads: 1, Iters: 1, Rounds: 1, Precisions: []string{"fp16"}},
		{Batch: 1, Threads: 1, Iters: 1, Rounds: 1, Formats: []string{"nhwc"}},
	} {
		if _, err := Run(context.Background(), tinyModel(), o, &bytes.Buffer{}); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// A stand-in for bench_unet.py: a shell script printing a canned report,
// so the torch side's parsing and the ratios run without PyTorch.
const fakeTorch = `#!/bin/sh
case "$*" in
*"--only train_step"*) echo '{"torch": "fake", "threads": 1, "maxrss_kb": 2048, "results": [{"precision": "fp32", "format": "nchw", "train_step_ms": 9}]}';;
*--check*) echo noise; echo '{"torch": "fake", "threads": 1, "maxrss_kb": 1, "check_max_abs": 2e-6, "results": [
 {"precision": "fp32", "format": "nchw", "train_step_ms": 400, "eps_ms": 100, "eps_vjp_ms": 300},
 {"precision": "fp32", "format": "channels_last", "train_step_ms": 500, "eps_ms": 90, "eps_vjp_ms": 300},
 {"precision": "bf16", "format": "nchw", "error": "RuntimeError: no bf16 here"},
 {"precision": "bf16", "format": "channels_last", "train_step_ms": 200, "eps_ms": 95, "eps_vjp_ms": 150}]}' | tr -d '\n'; echo;;
*) exit 3;;
esac
`

func TestRunWithFakeTorch(t *testing.T) {
	script := filepath.Join(t.TempDir(), "fake.sh")
	if err := os.WriteFile(script, []byte(fakeTorch), 0o755); err != nil {
		t.Fatal(err)
	}
	o := Options{Label: "tiny", Batch: 2, Threads: 1, Iters: 1, Warmup: 0, Rounds: 1, Seed: 1, Python: "/bin/sh", Script: script,
		Precisions: []string{"fp32"}}
	res, err := Run(context.Background(), tinyModel(), o, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if res.TorchErr != nil {
		t.Fatal(res.TorchErr)
	}
	f := res.Figures[1] // eps: channels_last wins
	if f.Torch != 90 || f.TorchFormat != "channels_last" || f.TorchBF16 != 95 || f.TorchBF16Format != "channels_last" {
		t.Errorf("eps figure %+v", f)
	}
	if f := res.Figures[0]; f.Torch != 400 || f.TorchFormat != "nchw" || f.TorchBF16 != 200 {
		t.Errorf("train_step figure %+v", f)
	}
	if res.CheckMaxAbs != 2e-6 || res.TorchRSS["fp32"] != 2048<<10 || res.TorchErrs["bf16 nchw"] == "" {
		t.Errorf("check %g, rss %v, errors %v", res.CheckMaxAbs, res.TorchRSS, res.TorchErrs)
	}
	var out bytes.Buffer
	res.Print(&out)
	for _, want := range []string{"== tiny: batch 2", "eps fp32: diffinv ", " torch 90.0 ms (channels_last), ratio ",
		"torch fp32 2 MB", "weights check: ok", "torch bf16 nchw failed: RuntimeError: no bf16 here"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report misses %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), " bf16:") {
		t.Errorf("bf16 lines without bf16 asked:\n%s", out.String())
	}
}

func TestParseTorch(t *testing.T) {
	out, err := parseTorch("a warning\n" + `{"torch": "1.13", "threads": 2, "maxrss_kb": 300000, "results": [` +
		`{"precision": "fp32", "format": "nchw", "train_step_ms": 1.5, "eps_ms": 2}, {"precision": "bf16", "format": "nchw", "error": "E: x"}]}` + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if out.Torch != "1.13" || out.Threads != 2 || out.MaxRSSKB != 300000 || out.Check != nil || len(out.Results) != 2 {
		t.Fatalf("%+v", out)
	}
	if r := out.Results[0]; r.MS["train_step"] != 1.5 || r.MS["eps"] != 2 || r.Error != "" || len(r.MS) != 2 {
		t.Errorf("result 0: %+v", r)
	}
	if r := out.Results[1]; r.Error != "E: x" || len(r.MS) != 0 {
		t.Errorf("result 1: %+v", r)
	}
	for _, bad := range []string{
		"",
		"not json",
		`{"results": [{"format": "nchw", "eps_ms": 1}]}`,
		`{"results": [{"precision": "fp32", "format": "nchw"}]}`,
		`{"results": [{"precision": "fp32", "format": "nchw", "eps_ms": "fast"}]}`,
	} {
		if _, err := parseTorch(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestBestsAndRatios(t *testing.T) {
	b := bests{}
	b.add(timeKey{"eps", "fp32", "nchw"}, 10)
	b.add(timeKey{"eps", "fp32", "nchw"}, 12) // a slower round
	b.add(timeKey{"eps", "fp32", "channels_last"}, 11)
	b.add(timeKey{"eps", "bf16", "channels_last"}, 0) // not run
	if ms, f := b.fastest("eps", "fp32", FormatNames); ms != 10 || f != "nchw" {
		t.Errorf("fastest fp32 = %g %q", ms, f)
	}
	if ms, f := b.fastest("eps", "bf16", FormatNames); ms != 0 || f != "" {
		t.Errorf("fastest bf16 = %g %q", ms, f)
	}
	b.add(timeKey{"eps", "fp32", "channels_last"}, 8)
	if ms, f := b.fastest("eps", "fp32", FormatNames); ms != 8 || f != "channels_last" {
		t.Errorf("fastest fp32 after a faster round = %g %q", ms, f)
	}

	cases := []struct {
		f     Figure
		ms    float64
		label string
	}{
		{Figure{}, 0, ""},
		{Figure{Torch: 10, TorchFormat: "nchw"}, 10, "fp32 nchw"},
		{Figure{Torch: 10, TorchFormat: "nchw", TorchBF16: 4, TorchBF16Format: "channels_last"}, 4, "bf16 channels_last"},
		{Figure{Torch: 3, TorchFormat: "channels_last", TorchBF16: 4, TorchBF16Format: "nchw"}, 3, "fp32 channels_last"},
		{Figure{TorchBF16: 4, TorchBF16Format: "nchw"}, 4, "bf16 nchw"},
	}
	for _, c := range cases {
		if ms, label := c.f.TorchBest(); ms != c.ms || label != c.label {
			t.Errorf("%+v: TorchBest = %g %q, want %g %q", c.f, ms, label, c.ms, c.label)
		}
	}
	for _, c := range []struct {
		a, b float64
		want string
	}{{1, 2, "0.50"}, {3, 1, "3.00"}, {0, 2, "n/a"}, {2, 0, "n/a"}, {-1, 2, "n/a"}} {
		if got := Ratio(c.a, c.b); got != c.want {
			t.Errorf("Ratio(%g, %g) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

// The bf16 lines and ratios once both engines have bf16 figures.
func TestPrintBF16(t *testing.T) {
	r := &Result{Label: "x", Batch: 4, Precisions: []string{"fp32", "bf16"}, ConvShape: "4×8×8×8 3×3→8",
		Figures:  []Figure{{Name: "eps", DiffinvMS: 100, Torch: 80, TorchFormat: "nchw", DiffinvBF16: 20, TorchBF16: 40, TorchBF16Format: "channels_last"}},
		ConvFP32: [3]float64{50, 40, 30}, SgemmGFLOPS: 100, ConvBF16: [3]float64{500, 400, 300}, BF16PeakGFLOPS: 1000, BF16PeakKernel: "brgconv:avx512_core_amx",
		CheckMaxAbs: 5e-3, CheckBatch: 2}
	var out bytes.Buffer
	r.Print(&out)
	for _, want := range []string{
		"eps fp32: diffinv 100.0 ms, torch 80.0 ms (nchw), ratio 1.25\n",
		"eps bf16: diffinv 20.0 ms, torch 40.0 ms (channels_last), ratio 0.50\n",
		"eps ratios: diffinv bf16 / torch best (bf16 channels_last 40.0 ms) 0.50, diffinv bf16 / diffinv fp32 0.20\n",
		"fp32: forward 50.0 GFLOP/s (50%), backward-data 40.0 GFLOP/s (40%), backward-weights 30.0 GFLOP/s (30%) of sgemm peak 100.0 GFLOP/s\n",
		"bf16: forward 500.0 GFLOP/s (50%), backward-data 400.0 GFLOP/s (40%), backward-weights 300.0 GFLOP/s (30%) of bf16 peak 1000.0 GFLOP/s (brgconv:avx512_core_amx)\n",
		"weights check: FAILED",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report misses %q:\n%s", want, out.String())
		}
	}
}

func TestHeaviestConv(t *testing.T) {
	mnist := config.Model{Arch: "adm", ImageSize: 28, InChannels: 1, NumChannels: 32, ChannelMult: []int{1, 2, 2}, NumResBlocks: 1, ConvResample: true}
	// the Upsample convolution into the first level: 64→64 at 28×28
	if got := heaviestConv(mnist); got != (convShape{64, 64, 28}) {
		t.Errorf("mnist: %+v", got)
	}
	celeba := config.Model{ImageSize: 64, InChannels: 3, NumChannels: 64, ChannelMult: []int{1, 2, 2, 2}, NumResBlocks: 2, ResblockUpdown: true, ConvResample: true}
	// the up ResBlock into the first level convolves 128 channels at 64×64
	if got := heaviestConv(celeba); got != (convShape{128, 128, 64}) {
		t.Errorf("celeba64: %+v", got)
	}
	flat := config.Model{ImageSize: 16, InChannels: 3, NumChannels: 8, ChannelMult: []int{1}, NumResBlocks: 1}
	// one level: the output block's ResBlock takes 8+8 channels
	if got := heaviestConv(flat); got != (convShape{16, 8, 16}) {
		t.Errorf("one level: %+v", got)
	}
	ddpm := config.Model{Arch: "ddpm", ImageSize: 32, InChannels: 3, NumChannels: 16, ChannelMult: []int{1, 2}, NumResBlocks: 1}
	if got := heaviestConv(ddpm); got != (convShape{16, 16, 32}) {
		t.Errorf("ddpm: %+v", got)
	}
	if got := (convShape{2, 3, 4}).label(5); got != "5×2×4×4 3×3→3" {
		t.Errorf("label %q", got)
	}
}
