package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/diffinv/diffinv/internal/blas"
)

// torchOutput is the JSON line bench/pytorch/bench_unet.py prints.
type torchOutput struct {
	Torch    string        `json:"torch"`
	Threads  int           `json:"threads"`
	MaxRSSKB uint64        `json:"maxrss_kb"`
	Check    *float64      `json:"check_max_abs"`
	Results  []torchResult `json:"results"`
}

// torchResult is one precision × memory format: median milliseconds by
// figure name, or the error that stopped it.
type torchResult struct {
	Precision string
	Format    string
	Error     string
	MS        map[string]float64 // by figure name (train_step, eps, eps_vjp)
}

func (r *torchResult) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	r.Precision, _ = m["precision"].(string)
	r.Format, _ = m["format"].(string)
	r.Error, _ = m["error"].(string)
	r.MS = map[string]float64{}
	for k, v := range m {
		if name, ok := strings.CutSuffix(k, "_ms"); ok {
			ms, ok := v.(float64)
			if !ok {
				return fmt.Errorf("%s: %v is not a number", k, v)
			}
			r.MS[name] = ms
		}
	}
	if r.Precision == "" || r.Format == "" {
		return fmt.Errorf("result %s: no precision or format", b)
	}
	if r.Error == "" && len(r.MS) == 0 {
		return fmt.Errorf("result %s: neither timings nor an error", b)
	}
	return nil
}

// parseTorch reads the last line of the script's standard output.
func parseTorch(stdout string) (*torchOutput, error) {
	var t torchOutput
	line := lastLine(stdout)
	if err := json.Unmarshal([]byte(line), &t); err != nil {
		return nil, fmt.Errorf("torch output %q: %w", line, err)
	}
	return &t, nil
}

// torchArgs are the arguments of one script run (python's, after the
// script): figures only (nil for all), precisions and formats, and the check
// file ("" for none).
type torchArgs struct {
	only, precisions, formats []string
	iters, warmup             int
	check                     string
}

func runTorch(ctx context.Context, o Options, weights string, a torchArgs) (*torchOutput, error) {
	args := []string{o.Script, "--weights", weights,
		"--batch", fmt.Sprint(o.Batch), "--threads", fmt.Sprint(o.Threads),
		"--iters", fmt.Sprint(a.iters), "--warmup", fmt.Sprint(a.warmup),
		"--precisions", strings.Join(a.precisions, ","), "--formats", strings.Join(a.formats, ",")}
	if len(a.only) > 0 {
		args = append(args, "--only", strings.Join(a.only, ","))
	}
	if a.check != "" {
		args = append(args, "--check", a.check)
	}
	cmd := exec.CommandContext(ctx, o.Python, args...)
	// Same OpenBLAS kernels for both engines: PyTorch's Debian build loads
	// OpenBLAS too, and reads OPENBLAS_CORETYPE when it does.
	cmd.Env = os.Environ()
	if core := blas.CoreName(); core != "" {
		cmd.Env = append(cmd.Env, "OPENBLAS_CORETYPE="+core)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// One engine at a time: Go is idle while Python runs.
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", o.Python, o.Script, err, lastLine(errb.String()))
	}
	return parseTorch(out.String())
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// timeKey names one timed quantity: a figure in a precision and (PyTorch)
// memory format.
type timeKey struct{ fig, prec, format string }

// bests keeps the fastest median of each timeKey over the rounds.
type bests map[timeKey]float64

func (b bests) add(k timeKey, ms float64) {
	if ms <= 0 {
		return
	}
	if old, ok := b[k]; !ok || ms < old {
		b[k] = ms
	}
}

// fastest returns the fastest of a figure in a precision over the formats
// (in their order, the first of equals), and that format; 0, "" if none ran.
func (b bests) fastest(fig, prec string, formats []string) (float64, string) {
	ms, format := 0.0, ""
	for _, f := range formats {
		if v, ok := b[timeKey{fig, prec, f}]; ok && (ms == 0 || v < ms) {
			ms, format = v, f
		}
	}
	return ms, format
}

// TorchPython returns the first python3 on this machine that imports torch
// (Debian's python3-torch installs into /usr/bin/python3, which another
// python3 earlier on PATH may shadow), or "".
func TorchPython() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(p); err == nil {
			if exec.Command(path, "-c", "import torch").Run() == nil {
				return path
			}
		}
	}
	return ""
}
