package bench

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/diffinv/diffinv/nn"
)

// Print writes the report: a header, then per figure a line per precision
// (diffinv against PyTorch's faster memory format) and with bf16 the line of
// ratios the bf16 engine is held to, then the conv, allocation, memory and
// check lines:
//
//	== configs/mnist.yaml: batch 64, 1191233 parameters, threads 2
//	train_step fp32: diffinv 339.0 ms, torch 468.9 ms (channels_last), ratio 0.72
//	train_step bf16: diffinv n/a (the CPU has neither AMX-BF16 nor AVX512-BF16), torch 150.2 ms (nchw), ratio n/a
//	train_step ratios: diffinv bf16 / torch best (bf16 nchw 150.2 ms) n/a, diffinv bf16 / diffinv fp32 n/a
func (r *Result) Print(w io.Writer) {
	label := r.Label
	if label == "" {
		label = "UNet"
	}
	fmt.Fprintf(w, "== %s: batch %d, %d parameters, threads %d\n", label, r.Batch, r.Params, r.DiffinvThread)
	bf16 := slices.Contains(r.Precisions, "bf16")
	fp32 := len(r.Precisions) == 0 || slices.Contains(r.Precisions, "fp32")
	for _, f := range r.Figures {
		if fp32 {
			fmt.Fprintf(w, "%s fp32: diffinv %s, torch %s, ratio %s\n", f.Name,
				ms(f.DiffinvMS, ""), r.torchMS(f.Torch, f.TorchFormat, "fp32"), Ratio(f.DiffinvMS, f.Torch))
		}
		if !bf16 {
			continue
		}
		dbf := ms(f.DiffinvBF16, r.BF16Err)
		fmt.Fprintf(w, "%s bf16: diffinv %s, torch %s, ratio %s\n", f.Name,
			dbf, r.torchMS(f.TorchBF16, f.TorchBF16Format, "bf16"), Ratio(f.DiffinvBF16, f.TorchBF16))
		best, which := f.TorchBest()
		bestLabel := "n/a"
		if best > 0 {
			bestLabel = fmt.Sprintf("%s %.1f ms", which, best)
		}
		fmt.Fprintf(w, "%s ratios: diffinv bf16 / torch best (%s) %s, diffinv bf16 / diffinv fp32 %s\n", f.Name,
			bestLabel, Ratio(f.DiffinvBF16, best), Ratio(f.DiffinvBF16, f.DiffinvMS))
	}
	fmt.Fprintf(w, "conv %s fp32: %s of sgemm peak %.1f GFLOP/s\n", r.ConvShape, passes(r.ConvFP32, r.SgemmGFLOPS), r.SgemmGFLOPS)
	if bf16 {
		peak := "bf16 peak n/a (" + orNA(r.BF16PeakErr) + ")"
		if r.BF16PeakGFLOPS > 0 {
			peak = fmt.Sprintf("bf16 peak %.1f GFLOP/s (%s)", r.BF16PeakGFLOPS, r.BF16PeakKernel)
		}
		if r.ConvBF16Err != "" || r.ConvBF16 == ([3]float64{}) {
			fmt.Fprintf(w, "conv %s bf16: n/a (%s); %s\n", r.ConvShape, orNA(r.ConvBF16Err), peak)
		} else {
			fmt.Fprintf(w, "conv %s bf16: %s of %s\n", r.ConvShape, passes(r.ConvBF16, r.BF16PeakGFLOPS), peak)
		}
	}
	fmt.Fprintf(w, "alloc per train step: %.2f MB\n", float64(r.AllocPerStep)/1e6)
	fmt.Fprint(w, "peak RSS, train_step:")
	sep := " "
	for _, p := range r.Precisions {
		fmt.Fprintf(w, "%sdiffinv %s %s", sep, p, mb(r.DiffinvRSS[p]))
		sep = ", "
	}
	for _, p := range r.Precisions {
		if r.TorchRSS == nil {
			break
		}
		fmt.Fprintf(w, ", torch %s %s", p, mb(r.TorchRSS[p]))
	}
	fmt.Fprintln(w, " (each engine's own process, the model and data included)")
	switch {
	case r.CheckMaxAbs < 0:
		fmt.Fprintln(w, "weights check: n/a (PyTorch did not run)")
	case r.CheckMaxAbs <= CheckTolerance:
		fmt.Fprintf(w, "weights check: ok, PyTorch's eps is diffinv's within %.1e (batch %d, tolerance %.0e)\n", r.CheckMaxAbs, r.CheckBatch, CheckTolerance)
	default:
		fmt.Fprintf(w, "weights check: FAILED, PyTorch's eps is %.1e from diffinv's (batch %d, tolerance %.0e): the PyTorch figures time another network\n", r.CheckMaxAbs, r.CheckBatch, CheckTolerance)
	}
	fmt.Fprintf(w, "engines: blas: %s", r.BLAS)
	if r.BF16Info != "" {
		fmt.Fprintf(w, "; %s", r.BF16Info)
	}
	if r.TorchInfo != "" {
		fmt.Fprintf(w, "; %s", r.TorchInfo)
	}
	if r.TorchErr != nil {
		fmt.Fprintf(w, "; torch side skipped: %v", r.TorchErr)
	}
	fmt.Fprintln(w)
	if len(r.TorchErrs) > 0 {
		keys := make([]string, 0, len(r.TorchErrs))
		for k := range r.TorchErrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "torch %s failed: %s\n", k, r.TorchErrs[k])
		}
	}
}

// torchMS is a PyTorch figure with its memory format, or n/a with the
// reason where every format of the precision failed.
func (r *Result) torchMS(v float64, format, prec string) string {
	if v > 0 {
		return fmt.Sprintf("%.1f ms (%s)", v, format)
	}
	var errs []string
	for k, e := range r.TorchErrs {
		if strings.HasPrefix(k, prec+" ") {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return "n/a (" + errs[0] + ")"
	}
	return "n/a"
}

// ms is a diffinv figure, or n/a with why.
func ms(v float64, why string) string {
	if why != "" {
		return "n/a (" + why + ")"
	}
	if v <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ms", v)
}

func orNA(why string) string {
	if why == "" {
		return "not measured"
	}
	return why
}

func mb(b uint64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MB", float64(b)/1e6)
}

// passes formats GFLOP/s by pass with each one's share of peak.
func passes(r [3]float64, peak float64) string {
	parts := make([]string, 0, len(r))
	for _, p := range nn.ConvPasses {
		s := fmt.Sprintf("%s %.1f GFLOP/s", p, r[p])
		if peak > 0 && r[p] > 0 {
			s += fmt.Sprintf(" (%.0f%%)", 100*r[p]/peak)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
