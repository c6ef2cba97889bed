package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/diffinv/diffinv/internal/atomicfile"
)

// Run folder files besides checkpoints.
const (
	// LogFile is the JSONL log inside the run folder.
	LogFile = "log.jsonl"
	// LossPlotFile is the PNG plot of the loss curve inside the run folder.
	LossPlotFile = "loss.png"
	// SampleDir is the folder of sample grids inside the run folder.
	SampleDir = "samples"
)

// Record is one line of the JSONL log. Type is "run" (the first record of
// every start or resume: seeds and config), "step" (every log_every steps),
// "checkpoint", "sample", "warning" (a loss plot that failed), "stop" (a
// run that ended early, with the reason) or "done" (the last record of a
// finished run, with its final checkpoint).
type Record struct {
	Type string `json:"type"`
	Step int    `json:"step"`
	// Wall is the time since the start of this process's run, in seconds.
	Wall float64 `json:"wall_s"`

	// "step" records: the mean loss (and its parts) over the steps since
	// the previous record, and the last step's learning rate and gradient
	// norm (before clipping).
	Loss     float64 `json:"loss,omitempty"`
	MSE      float64 `json:"mse,omitempty"`
	VB       float64 `json:"vb,omitempty"`
	LR       float64 `json:"lr,omitempty"`
	GradNorm float64 `json:"grad_norm,omitempty"`
	// StepsPerSec is the throughput over the logged window.
	StepsPerSec float64 `json:"steps_per_s,omitempty"`

	// "run" records: the run seed and the derivation of every stream.
	Seed       *int64 `json:"seed,omitempty"`
	InitSeed   *int64 `json:"init_seed,omitempty"`
	SeedRule   string `json:"seed_rule,omitempty"`
	ResumeFrom *int   `json:"resume_from,omitempty"`
	Config     string `json:"config,omitempty"`
	Params     int    `json:"params,omitempty"`
	// Init is the file a fresh run's weights started from (RunOptions.Init;
	// empty on a resumed run, which starts from its checkpoint).
	Init string `json:"init,omitempty"`
	// Changed lists the trajectory settings a resumed run changed from its
	// checkpoint's (RunOptions.ResumeChanges), "key: new (checkpoint: old)".
	Changed []string `json:"changed,omitempty"`
	// Precision is what the network's heavy ops run in this process (fp32
	// or bf16) and PrecisionReason why: the kernels and how the setting
	// (engine.precision, --precision) resolved, e.g. "fp32 (auto): ...".
	// Empty in logs written before the fields.
	Precision       string `json:"precision,omitempty"`
	PrecisionReason string `json:"precision_reason,omitempty"`

	// "checkpoint", "sample" and "stop" records.
	Path   string `json:"path,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// point is one logged loss value.
type point struct {
	step int
	loss float64
}

// readLog reads the records of a log file (none if it does not exist),
// skipping lines that do not parse.
func readLog(path string) ([]Record, error) {
	lines, err := readLogLines(path)
	var recs []Record
	for _, l := range lines {
		if l.ok {
			recs = append(recs, l.rec)
		}
	}
	return recs, err
}

// logLine is one non-empty line of the log: its bytes and, when it parses,
// its record.
type logLine struct {
	raw []byte
	rec Record
	ok  bool
}

// readLogLines reads every non-empty line of the log (none when it does not
// exist), parsing what parses: one damaged line (a write cut by a kill, a
// stray edit) never hides the records after it.
func readLogLines(path string) ([]logLine, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("train: read log: %w", err)
	}
	var lines []logLine
	for _, raw := range bytes.Split(b, []byte{'\n'}) {
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		l := logLine{raw: raw}
		l.ok = json.Unmarshal(raw, &l.rec) == nil
		lines = append(lines, l)
	}
	return lines, nil
}

// truncateLog rewrites the log keeping only what happened up to step (the
// records a killed run wrote after its last checkpoint are dropped, since
// the resumed run redoes those steps), atomically, and returns the losses
// kept. A line that does not parse is kept verbatim where the record after
// it is kept (it belongs to the steps kept), and dropped at the end of the
// log (a write cut by a kill).
func truncateLog(path string, step int) ([]point, error) {
	lines, err := readLogLines(path)
	if err != nil || lines == nil {
		return nil, err
	}
	keep := func(r Record) bool {
		if r.Type != "run" && r.Step > step {
			return false
		}
		return !(r.Type == "run" && r.ResumeFrom != nil && *r.ResumeFrom > step)
	}
	var buf bytes.Buffer
	var pts []point
	for i, l := range lines {
		if !l.ok {
			next := -1
			for j := i + 1; j < len(lines); j++ {
				if lines[j].ok {
					next = j
					break
				}
			}
			if next >= 0 && keep(lines[next].rec) {
				buf.Write(l.raw)
				buf.WriteByte('\n')
			}
			continue
		}
		if !keep(l.rec) {
			continue
		}
		if l.rec.Type == "step" {
			pts = append(pts, point{l.rec.Step, l.rec.Loss})
		}
		b, _ := json.Marshal(l.rec)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("train: rewrite log: %w", err)
	}
	return pts, nil
}

// PlotLoss renders the loss curve (step, loss) as a PNG, on a log scale
// when every loss is positive.
func PlotLoss(steps []int, losses []float64, title string) (png []byte, err error) {
	defer func() { // gonum/plot panics on some degenerate inputs
		if e := recover(); e != nil {
			png, err = nil, fmt.Errorf("train: plot loss: %v", e)
		}
	}()
	if len(steps) != len(losses) {
		return nil, fmt.Errorf("train: plot loss: %d steps and %d losses, want as many", len(steps), len(losses))
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	xy := make(plotter.XYs, 0, len(steps))
	positive := true
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range steps {
		if math.IsNaN(losses[i]) || math.IsInf(losses[i], 0) {
			continue
		}
		xy = append(xy, plotter.XY{X: float64(steps[i]), Y: losses[i]})
		positive = positive && losses[i] > 0
		lo, hi = math.Min(lo, losses[i]), math.Max(hi, losses[i])
	}
	if len(xy) > 0 {
		if positive {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, fmt.Errorf("train: plot loss: %w", err)
		}
		p.Add(l, plotter.NewGrid())
		if positive { // fixed range: the automatic one can reach 0 for one point
			p.Y.Min, p.Y.Max = lo/1.5, hi*1.5
		}
	}
	w, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return nil, fmt.Errorf("train: plot loss: %w", err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("train: plot loss: %w", err)
	}
	return buf.Bytes(), nil
}
