package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/atomicfile"
	"github.com/diffinv/diffinv/internal/cpuuse"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/baseline"
	"github.com/diffinv/diffinv/nn"
)

// storeVersion is the cell result file format version: 2 since cell IDs
// are identity version 3 and record the resolved settings; a version-1
// file holds a result under an identity-2 ID, which Migrate adopts.
const storeVersion = 2

// jfloat encodes non-finite values as the strings "NaN", "+Inf", "-Inf"
// (JSON has no such numbers; a perfect reconstruction has PSNR +Inf).
type jfloat float64

func (f jfloat) MarshalJSON() ([]byte, error) {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return json.Marshal(strconv.FormatFloat(x, 'g', -1, 64))
	}
	return json.Marshal(x)
}

func (f *jfloat) UnmarshalJSON(b []byte) error {
	var x float64
	if err := json.Unmarshal(b, &x); err == nil {
		*f = jfloat(x)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("metric value %s: want a number or NaN/±Inf", b)
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || !(math.IsNaN(x) || math.IsInf(x, 0)) {
		return fmt.Errorf("metric value %q: want a number or NaN/±Inf", s)
	}
	*f = jfloat(x)
	return nil
}

type storedImage struct {
	Index   int               `json:"index"`
	Metrics map[string]jfloat `json:"metrics"`
}

type storedStrip struct {
	File string `json:"file"`
	N    int    `json:"n"`
	C    int    `json:"c"`
	H    int    `json:"h"`
	W    int    `json:"w"`
}

type storedGrid struct {
	Truth *storedStrip `json:"truth"`
	Y     *storedStrip `json:"y,omitempty"`
	Recon *storedStrip `json:"recon"`
}

type storedSetting struct {
	Name  string         `json:"name"`
	Label string         `json:"label,omitempty"`
	Set   map[string]any `json:"set,omitempty"`
}

type storedSweep struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// stored is the cells/ID.json format.
// storedTrain records a training cell's settings (for the reader: the ID
// covers them).
type storedTrain struct {
	Config string         `json:"config"`
	Set    map[string]any `json:"set"`
	Eval   TrainEval      `json:"eval"`
}

type stored struct {
	Version          int           `json:"version"`
	ID               string        `json:"id"`
	Checkpoint       string        `json:"checkpoint"`
	CheckpointSHA256 string        `json:"checkpoint_sha256,omitempty"`
	Dataset          Dataset       `json:"dataset"`
	Task             storedSetting `json:"task"`
	Method           storedSetting `json:"method"`
	Sweep            []storedSweep `json:"sweep,omitempty"`
	Seed             int64         `json:"seed"`
	Resolved         []string      `json:"resolved,omitempty"`
	Train            *storedTrain  `json:"train,omitempty"`
	WallSeconds      float64       `json:"wall_seconds"`
	// Usage is how much of the machine the cell had (absent in results
	// stored before it was recorded, or where it cannot be read).
	Usage       *Usage            `json:"usage,omitempty"`
	Images      []storedImage     `json:"images"`
	CellMetrics map[string]jfloat `json:"cell_metrics,omitempty"`
	Grid        *storedGrid       `json:"grid,omitempty"`
}

func resultPath(cdir, id string) string { return filepath.Join(cdir, id+".json") }

// failurePath is where a run records that a cell failed (its error), so
// that `experiment status` can tell a failed cell from one not tried yet;
// a later successful run of the cell removes it.
func failurePath(cdir, id string) string { return filepath.Join(cdir, id+".failed") }

// saveFailure records cell id's error atomically, with whether the method
// diverged (ErrDiverged) and the seconds the cell ran before it failed.
func saveFailure(cdir, id string, cellErr error, wall float64) error {
	rec := failureRecord{ID: id, Error: cellErr.Error(), Time: time.Now().UTC().Format(time.RFC3339),
		Diverged: errors.Is(cellErr, ErrDiverged), Seconds: wall}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(failurePath(cdir, id), append(b, '\n'))
}

// failureRecord is a cell's .failed file.
type failureRecord struct {
	ID       string  `json:"id"`
	Error    string  `json:"error"`
	Time     string  `json:"time"`
	Diverged bool    `json:"diverged,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"`
}

// loadFailure reads the failure record of cell id in the cells folder
// cdir; ok is false when there is none (or it is unreadable).
func loadFailure(cdir, id string) (rec failureRecord, ok bool) {
	b, err := os.ReadFile(failurePath(cdir, id))
	if err != nil {
		return rec, false
	}
	if json.Unmarshal(b, &rec) != nil || rec.Error == "" {
		return rec, false
	}
	return rec, true
}

// DivergedCell reports whether the failure recorded for the cell in the
// results folder out says its method diverged (ErrDiverged): a run keeps
// such a cell as diverged instead of running it again.
func DivergedCell(out, id string) bool {
	rec, ok := loadFailure(filepath.Join(out, CellsDir), id)
	return ok && rec.Diverged
}

// Failure returns the error a run recorded for the cell in the results
// folder out, or "" when none is recorded.
func Failure(out, id string) string {
	cdir := filepath.Join(out, CellsDir)
	if _, err := os.Stat(failurePath(cdir, id)); err != nil {
		return ""
	}
	rec, ok := loadFailure(cdir, id)
	if !ok {
		return "unreadable failure record " + failurePath(cdir, id)
	}
	return rec.Error
}

// saveResult writes the cell's grid strips, then its JSON, each atomically.
func saveResult(cdir string, c Cell, res *CellResult, wall float64, usage *Usage) error {
	s := stored{
		Version: storeVersion, ID: c.ID, Checkpoint: c.Checkpoint, CheckpointSHA256: c.CheckpointSHA256, Dataset: c.Dataset,
		Task:        storedSetting{Name: c.Task.Name, Label: c.Task.Label, Set: c.Task.Set},
		Method:      storedSetting{Name: c.Method.Name, Label: c.Method.Label, Set: c.Method.Set},
		Seed:        c.Seed,
		Resolved:    c.Resolved,
		WallSeconds: wall,
		Usage:       usage,
	}
	if t := c.Train; t != nil {
		s.Train = &storedTrain{Config: t.Config, Set: t.Set, Eval: t.Eval}
	}
	for _, sv := range c.Sweep {
		s.Sweep = append(s.Sweep, storedSweep{Key: sv.Key, Value: sv.Value})
	}
	for _, r := range res.Images {
		m := make(map[string]jfloat, len(r.Values))
		for k, v := range r.Values {
			m[k] = jfloat(v)
		}
		s.Images = append(s.Images, storedImage{Index: r.Index, Metrics: m})
	}
	if len(res.CellMetrics) > 0 {
		s.CellMetrics = map[string]jfloat{}
		for k, v := range res.CellMetrics {
			s.CellMetrics[k] = jfloat(v)
		}
	}
	if g := res.Grid; g != nil && c.GridImages > 0 {
		var sg storedGrid
		var err error
		if sg.Truth, err = saveStrip(cdir, c.ID, "truth", g.Truth, c.GridImages, true); err != nil {
			return err
		}
		if sg.Recon, err = saveStrip(cdir, c.ID, "recon", g.Recon, c.GridImages, true); err != nil {
			return err
		}
		if sg.Y, err = saveStrip(cdir, c.ID, "y", g.Y, c.GridImages, false); err != nil {
			return err
		}
		s.Grid = &sg
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	return atomicfile.WriteFile(resultPath(cdir, c.ID), append(b, '\n'))
}

// saveStrip stores the first n images of t side by side as one PNG. A
// missing or non-image t is an error when required, else skipped.
func saveStrip(cdir, id, role string, t *tensor.Dense, n int, required bool) (*storedStrip, error) {
	if t == nil {
		if required {
			return nil, fmt.Errorf("grid %s: nil, want N×C×H×W images", role)
		}
		return nil, nil
	}
	N, C, H, W, err := tensors.NCHW("grid "+role, t)
	if err == nil && C != 1 && C != 3 {
		err = fmt.Errorf("grid %s: %d channels, want 1 or 3", role, C)
	}
	if err != nil {
		if required {
			return nil, err
		}
		return nil, nil
	}
	n = min(n, N)
	src := tensors.F32(t)
	strip := tensors.New(C, H, n*W)
	dst := tensors.F32(strip)
	for i := range n {
		for ch := range C {
			for y := range H {
				copy(dst[ch*H*n*W+y*n*W+i*W:][:W], src[((i*C+ch)*H+y)*W:][:W])
			}
		}
	}
	file := id + "." + role + ".png"
	if err := data.SavePNG(filepath.Join(cdir, file), strip); err != nil {
		return nil, fmt.Errorf("grid %s: %w", role, err)
	}
	return &storedStrip{File: file, N: n, C: C, H: H, W: W}, nil
}

// loadStrip reads a stored strip back as N×C×H×W.
func loadStrip(cdir string, s *storedStrip) (*tensor.Dense, error) {
	t, err := data.LoadPNG(filepath.Join(cdir, s.File))
	if err != nil {
		return nil, err
	}
	_, C, H, NW, err := tensors.NCHW(s.File, t)
	if err != nil {
		return nil, err
	}
	if C != s.C || H != s.H || NW != s.N*s.W {
		return nil, fmt.Errorf("%s: %d×%d×%d, want %d×%d×%d", s.File, C, H, NW, s.C, s.H, s.N*s.W)
	}
	src := tensors.F32(t)
	out := tensors.New(s.N, C, H, s.W)
	dst := tensors.F32(out)
	for i := range s.N {
		for ch := range C {
			for y := range H {
				copy(dst[((i*C+ch)*H+y)*s.W:][:s.W], src[ch*H*NW+y*NW+i*s.W:][:s.W])
			}
		}
	}
	return out, nil
}

// loadResult reads and checks the stored result of cell c: same ID and
// dataset size, every requested metric present, grid files present.
func loadResult(cdir string, c Cell) (*stored, error) {
	b, err := os.ReadFile(resultPath(cdir, c.ID))
	if err != nil {
		return nil, err
	}
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", resultPath(cdir, c.ID), err)
	}
	if s.Version != storeVersion {
		return nil, fmt.Errorf("version %d, want %d", s.Version, storeVersion)
	}
	if s.ID != c.ID {
		return nil, fmt.Errorf("id %q, want %q", s.ID, c.ID)
	}
	if !slices.Equal(s.Resolved, c.Resolved) {
		return nil, fmt.Errorf("computed with the settings %q, want %q", s.Resolved, c.Resolved)
	}
	if s.CheckpointSHA256 != c.CheckpointSHA256 {
		return nil, fmt.Errorf("computed with a checkpoint of SHA-256 %q, want %q", s.CheckpointSHA256, c.CheckpointSHA256)
	}
	if len(s.Images) != c.Dataset.N {
		return nil, fmt.Errorf("%d images, want %d", len(s.Images), c.Dataset.N)
	}
	for _, name := range c.Metrics {
		m, _ := LookupMetric(name)
		if m.PerCell {
			if _, ok := s.CellMetrics[name]; !ok {
				return nil, fmt.Errorf("lacks metric %q", name)
			}
			continue
		}
		for _, r := range s.Images {
			if _, ok := r.Metrics[name]; !ok {
				return nil, fmt.Errorf("image %d lacks metric %q", r.Index, name)
			}
		}
	}
	if g := s.Grid; g != nil {
		for _, st := range []*storedStrip{g.Truth, g.Y, g.Recon} {
			if st == nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(cdir, st.File)); err != nil {
				return nil, fmt.Errorf("grid file: %w", err)
			}
		}
	}
	return &s, nil
}

// Usage records how much of the machine a cell's run had, beside its wall
// time: the CPU seconds the process used over the cell (Cores of Cores
// means it had the machine; fewer, that it shared the cores or waited),
// the machine's logical CPUs and its one-minute load average when the cell
// ended (above Cores: other work competed), and which machine it was: the
// CPU's model and what computed the network (nn.Arithmetic: bf16 on a
// CPU's bf16 units and bf16 emulated give the same numbers at very
// different speeds, so a table's seconds say where they come from).
type Usage struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	Cores      int     `json:"cores"`
	Load1      float64 `json:"load1"`
	CPU        string  `json:"cpu,omitempty"`
	Arithmetic string  `json:"arithmetic,omitempty"`
}

// usageStart is a cell's process CPU time at its start.
type usageStart struct {
	cpu float64
	ok  bool
}

func startUsage() usageStart {
	cpu, ok := cpuuse.ProcessSeconds()
	return usageStart{cpu, ok}
}

// end returns the cell's Usage (arith: what computed its network), or nil
// where the CPU time cannot be read.
func (u usageStart) end(wall float64, arith string) *Usage {
	cpu, ok := cpuuse.ProcessSeconds()
	if !u.ok || !ok || wall <= 0 {
		return nil
	}
	l, _ := cpuuse.Load1()
	return &Usage{CPUSeconds: cpu - u.cpu, Cores: cpuuse.Cores(), Load1: l, CPU: cpuuse.Model(), Arithmetic: arith}
}

// cellArithmetic is what computes a cell's network, for its Usage: "none"
// for a classical method's solve (no network), else the engine's
// arithmetic in the cell's precision (nn.Arithmetic; the torch engine runs
// float32).
func cellArithmetic(c Cell) string {
	switch {
	case c.Train == nil && baseline.IsMethod(c.Method.Name):
		return "none"
	case c.Engine == "torch":
		return "fp32 (torch engine)"
	case c.Precision == "bf16":
		return nn.Arithmetic(nn.BF16)
	}
	return nn.Arithmetic(nn.FP32)
}
