package experiment

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/diffinv/diffinv/internal/params"

	"go.yaml.in/yaml/v3"
	"gonum.org/v1/plot/plotter"
)

// peakRunner scores a cell psnr = 30 − (log10(scale/0.3))² − (eta − 0.5)²
// (+ 0.1·seed), so the best scale is 0.3 and the best eta 0.5; every image
// takes 1 s. It counts its calls per method.
type peakRunner struct {
	mu    sync.Mutex
	calls []Cell
}

func (r *peakRunner) RunCell(_ context.Context, c Cell, _ func(int, int)) (*CellResult, error) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	scale, eta := num(c.Method.Set, "scale"), num(c.Method.Set, "eta")
	if scale == 0 {
		scale = 0.3
	}
	if _, ok := c.Method.Set["eta"]; !ok {
		eta = 0.5
	}
	d := math.Log10(scale / 0.3)
	psnr := 30 - d*d - (eta-0.5)*(eta-0.5) + 0.1*float64(c.Seed)
	res := &CellResult{CellMetrics: map[string]float64{}}
	for i := range c.Dataset.N {
		res.Images = append(res.Images, ImageMetrics{Index: c.Dataset.Offset + i, Values: map[string]float64{
			"psnr": psnr, "ssim": 0.5, "consistency": 0.1, "seconds": 1}})
	}
	for _, m := range c.Metrics {
		if m == "fid" || m == "kid" {
			res.CellMetrics[m] = 1
		}
	}
	return res, nil
}

func (r *peakRunner) n() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

const tuneYAML = `
name: tuned
checkpoint: ckpt.safetensors
dataset: {name: mnist-test, n: 3}
tasks:
  - {name: sr4, label: SR4}
  - {name: inpaint-box}
methods:
  - name: dps
    label: DPS
    set: {steps: 10}
    tune: {scale: [0.1, 0.3, 1, 3]}
  - name: ddnm
    tune: {scale: [1, 0.3], eta: [0, 0.5, 1]}
  - name: pinv
seeds: [0, 1]
metrics: [psnr, seconds]
tune:
  dataset: {name: mnist-train, n: 2, offset: 10}
`

func tuneOpts(out string, buf *bytes.Buffer) TuneOptions {
	ro := quiet(out, buf)
	return TuneOptions{Out: out, Log: buf, Progress: buf, runOpts: RunOptions{BarOptions: ro.BarOptions}}
}

func readTuned(t *testing.T, path string) TunedFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tf TunedFile
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	return tf
}

// A grid search finds the known optimum per task × method, records every
// trial, is replayed from the cache by a re-run, and the table's cells
// carry the chosen options in their sets and IDs.
func TestTuneGrid(t *testing.T) {
	out := t.TempDir()
	e := mustDecode(tuneYAML)
	r := &peakRunner{}
	var buf bytes.Buffer
	if err := Tune(context.Background(), e, r, tuneOpts(out, &buf)); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	// 2 tasks × (4 + 6 trials) × 1 seed (the first of seeds).
	if r.n() != 20 {
		t.Errorf("%d cells run, want 20", r.n())
	}
	for _, c := range r.calls {
		if c.Dataset != (Dataset{Name: "mnist-train", N: 2, Offset: 10}) || c.Seed != 0 {
			t.Fatalf("a trial cell on %+v seed %d, want the validation images, seed 0", c.Dataset, c.Seed)
		}
		if c.Method.Name == "dps" && num(c.Method.Set, "steps") != 10 {
			t.Errorf("a trial lost the file's set: %v", c.Method.Set)
		}
	}
	tf := readTuned(t, filepath.Join(out, TunedFileName))
	for _, task := range []string{"SR4", "inpaint-box"} {
		if got := tf.Settings[task]["DPS"]; len(got) != 1 || num(got, "scale") != 0.3 {
			t.Errorf("%s / DPS: tuned %v, want scale 0.3", task, got)
		}
		if got := tf.Settings[task]["ddnm"]; len(got) != 2 || num(got, "scale") != 0.3 || num(got, "eta") != 0.5 {
			t.Errorf("%s / ddnm: tuned %v, want scale 0.3, eta 0.5", task, got)
		}
		if _, ok := tf.Settings[task]["pinv"]; ok {
			t.Errorf("pinv, without a tune space, was tuned")
		}
		if s := tf.Search[task]["ddnm"]; s.Trials != 6 || s.Planned != 6 || s.Stopped != "complete" || s.Score != 30 || s.Seconds != 12 {
			t.Errorf("%s / ddnm search record %+v", task, s)
		}
	}
	if tf.TunedOn.Name != "mnist-train" || tf.Metric != "psnr" {
		t.Errorf("tuned file provenance %+v", tf)
	}
	rows := readCSV(t, filepath.Join(out, TuneDir, "trials.csv"))
	if len(rows) != 21 || strings.Join(rows[0][:5], ",") != "task,method,trial,opt.eta,opt.scale" {
		t.Errorf("trials.csv: %d rows, head %v", len(rows), rows[0])
	}
	chosen := 0
	for _, row := range rows[1:] {
		if row[len(row)-3] == "true" { // …, chosen, cells, failed
			chosen++
		}
	}
	if chosen != 4 {
		t.Errorf("%d chosen rows, want one per task × method (4)", chosen)
	}
	for _, f := range []string{"SR4.DPS.png", "SR4.ddnm.png", "inpaint-box.ddnm.png"} {
		decodePNG(t, filepath.Join(out, TuneDir, PlotsDir, f))
	}

	// A re-run is a replay: nothing recomputed, the same tuned file.
	before, _ := os.ReadFile(filepath.Join(out, TunedFileName))
	if err := Tune(context.Background(), mustDecode(tuneYAML), r, tuneOpts(out, &buf)); err != nil {
		t.Fatal(err)
	}
	if r.n() != 20 {
		t.Errorf("the re-run computed %d cells, want none", r.n()-20)
	}
	if after, _ := os.ReadFile(filepath.Join(out, TunedFileName)); !bytes.Equal(before, after) {
		t.Errorf("tuned file changed on a replay")
	}

	// The table: its cells carry the tuned options (over the file's set).
	table := mustDecode(tuneYAML)
	if err := table.ApplyTuned(out); err != nil {
		t.Fatal(err)
	}
	cells, err := table.Cells()
	if err != nil {
		t.Fatal(err)
	}
	plain := mustDecode(strings.Replace(strings.Replace(tuneYAML, "set: {steps: 10}", "set: {steps: 10, scale: 0.3}", 1),
		"tune: {scale: [1, 0.3], eta: [0, 0.5, 1]}", "set: {scale: 0.3, eta: 0.5}", 1))
	plain.Tune = nil
	plain.Methods[0].Tune = nil
	want, err := plain.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != len(want) {
		t.Fatalf("%d cells, want %d", len(cells), len(want))
	}
	for i := range cells {
		if cells[i].ID != want[i].ID {
			t.Errorf("cell %d (%s): ID %s, want %s (the tuned options in the identity)", i, cells[i].Label(), cells[i].ID, want[i].ID)
		}
		if cells[i].Method.Name == "dps" && (num(cells[i].Method.Set, "scale") != 0.3 || num(cells[i].Method.Set, "steps") != 10) {
			t.Errorf("DPS cell set %v", cells[i].Method.Set)
		}
	}
	tout := filepath.Join(out, "table")
	if err := Run(context.Background(), table, r, quiet(tout, &buf)); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(tout, TableMD))
	for _, s := range []string{"tuned per task on 2 images of mnist-train (indices 10–11)", "## Tuned settings", "| ddnm | eta=0.5, scale=0.3 |"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("table.md lacks %q:\n%s", s, md)
		}
	}
}

// The budget stops a task × method's search, keeping the best so far; the
// replay stops at the same trial.
func TestTuneBudget(t *testing.T) {
	out := t.TempDir()
	// Each trial: 2 images × 1 s. Budget 3 s: the first two trials run
	// (0 then 2 s spent before them), not the third (4 s).
	y := strings.Replace(tuneYAML, "offset: 10}", "offset: 10}\n  budget: 3", 1)
	y = strings.Replace(y, "  - {name: inpaint-box}\n", "", 1)
	r := &peakRunner{}
	var buf bytes.Buffer
	if err := Tune(context.Background(), mustDecode(y), r, tuneOpts(out, &buf)); err != nil {
		t.Fatal(err)
	}
	if r.n() != 4 {
		t.Errorf("%d cells run, want 2 per method", r.n())
	}
	tf := readTuned(t, filepath.Join(out, TunedFileName))
	s := tf.Search["SR4"]["DPS"]
	if s.Trials != 2 || s.Planned != 4 || s.Stopped != "budget" || s.Seconds != 4 {
		t.Errorf("search record %+v, want 2 of 4 trials, stopped by the budget", s)
	}
	if got := num(tf.Settings["SR4"]["DPS"], "scale"); got != 0.3 {
		t.Errorf("chose scale %v, want the better of the two run (0.3)", got)
	}
	// A larger budget continues the search where it stopped.
	y2 := strings.Replace(y, "budget: 3", "budget: 10m", 1)
	if err := Tune(context.Background(), mustDecode(y2), r, tuneOpts(out, &buf)); err != nil {
		t.Fatal(err)
	}
	if r.n() != 4+2+4 {
		t.Errorf("%d cells run in all, want the 6 left", r.n())
	}
}

// Random search over a log range: seeded, within the range, the best of
// the drawn points chosen.
func TestTuneRandom(t *testing.T) {
	y := strings.Replace(tuneYAML, "tune: {scale: [0.1, 0.3, 1, 3]}", "tune: {scale: {log: [0.01, 10]}, steps: {uniform: [5, 50]}}", 1)
	y = strings.Replace(y, "offset: 10}", "offset: 10}\n  trials: 5\n  seed: 7", 1)
	e := mustDecode(y)
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	axes, err := parseSpace(e.Methods[0].Tune)
	if err != nil {
		t.Fatal(err)
	}
	a := searchPoints(axes, 5, 7, "SR4", "DPS")
	b := searchPoints(axes, 5, 7, "SR4", "DPS")
	if len(a) != 5 || a[0].label() != b[0].label() || a[4].label() != b[4].label() {
		t.Fatalf("points %v and %v, want 5, the same twice", a, b)
	}
	if c := searchPoints(axes, 5, 7, "inpaint-box", "DPS"); c[0].label() == a[0].label() {
		t.Errorf("two tasks drew the same points")
	}
	for _, p := range a {
		s, _ := p["scale"].(float64)
		n, ok := p["steps"].(int)
		if s < 0.01 || s > 10 || !ok || n < 5 || n > 50 {
			t.Errorf("point %v out of the ranges", p)
		}
	}
	out := t.TempDir()
	var buf bytes.Buffer
	if err := Tune(context.Background(), e, &peakRunner{}, tuneOpts(out, &buf)); err != nil {
		t.Fatal(err)
	}
	tf := readTuned(t, filepath.Join(out, TunedFileName))
	best, bestD := "", math.Inf(1)
	for _, p := range a {
		d := math.Abs(math.Log10(p["scale"].(float64) / 0.3))
		if d < bestD {
			best, bestD = p.label(), d
		}
	}
	if got := tunePoint(tf.Settings["SR4"]["DPS"]).label(); got != best {
		t.Errorf("chose %s, want %s", got, best)
	}
	decodePNG(t, filepath.Join(out, TuneDir, PlotsDir, "SR4.DPS.png"))
}

// Validation images that are test images are refused, naming both.
func TestTuneOverlap(t *testing.T) {
	for _, c := range []struct {
		val  string
		want string
	}{
		{"{name: mnist-test, n: 4, offset: 2}", "mnist-test (indices 2–5) overlap the test images, dataset mnist-test (indices 0–2), at indices 2–2"},
		{"{name: mnist-test, n: 10, offset: 0}", "at indices 0–2"},
		{"{name: mnist-test, n: 4, offset: 3}", ""},
		{"{name: mnist-train, n: 4, offset: 0}", ""},
	} {
		e := mustDecode(strings.Replace(tuneYAML, "{name: mnist-train, n: 2, offset: 10}", c.val, 1))
		err := e.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.val, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.val, err, c.want)
		}
		out := t.TempDir()
		var buf bytes.Buffer
		r := &peakRunner{}
		if err := Tune(context.Background(), e, r, tuneOpts(out, &buf)); err == nil || r.n() > 0 {
			t.Errorf("%s: tune ran (%d cells), err %v", c.val, r.n(), err)
		}
	}
	e := mustDecode(tuneYAML)
	for _, kv := range []string{"tune.dataset.name=mnist-test", "tune.dataset.offset=1"} {
		if err := e.Set(kv); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Validate(); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("--set tune.dataset.name=mnist-test: %v", err)
	}
}

// The file's mistakes: spaces without a tune section, bad ranges, a sweep
// over a tuned key; run without a tuned file, or with a stale one.
func TestTuneErrors(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{"tune:\n  dataset: {name: mnist-train, n: 2, offset: 10}\n", "", "no tune section"},
		{"{scale: [0.1, 0.3, 1, 3]}", "{scale: {log: [0, 1]}}", "0 < lo < hi"},
		{"{scale: [0.1, 0.3, 1, 3]}", "{scale: [0.1, 0.1]}", "duplicate value"},
		{"{scale: [0.1, 0.3, 1, 3]}", "{scale: {normal: [0, 1]}}", "want log or uniform"},
		{"metrics: [psnr, seconds]", "metrics: [psnr, seconds]\nsweep: {solver.eta: [0, 1]}", "tune it or sweep it"},
		{"offset: 10}", "offset: 10}\n  metric: seconds", "quality metric"},
		{"offset: 10}", "offset: 10}\n  budget: soon", "budget"},
	} {
		_, err := Decode(strings.NewReader(strings.Replace(tuneYAML, c.from, c.to, 1)))
		if err == nil {
			e := mustDecode(strings.Replace(tuneYAML, c.from, c.to, 1))
			err = e.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q → %q: %v, want an error containing %q", c.from, c.to, err, c.want)
		}
	}
	out := t.TempDir()
	e := mustDecode(tuneYAML)
	if err := e.ApplyTuned(out); err == nil || !strings.Contains(err.Error(), "experiment tune") {
		t.Errorf("no tuned file: %v", err)
	}
	var buf bytes.Buffer
	if err := Tune(context.Background(), e, &peakRunner{}, tuneOpts(out, &buf)); err != nil {
		t.Fatal(err)
	}
	stale := mustDecode(strings.Replace(tuneYAML, "n: 2, offset: 10", "n: 3, offset: 10", 1))
	if err := stale.ApplyTuned(out); err == nil || !strings.Contains(err.Error(), "re-run") {
		t.Errorf("stale tuned file: %v", err)
	}
	more := mustDecode(strings.Replace(tuneYAML, "  - name: pinv\n", "  - name: pinv\n    tune: {x: [1]}\n", 1))
	if err := more.ApplyTuned(out); err == nil || !strings.Contains(err.Error(), "no settings for task SR4, method pinv") {
		t.Errorf("a new tune space: %v", err)
	}
}

// Shards split the task × method pairs; the last to finish writes the
// tuned file, the same as one process's.
func TestTuneShards(t *testing.T) {
	one, two := t.TempDir(), t.TempDir()
	var buf bytes.Buffer
	if err := Tune(context.Background(), mustDecode(tuneYAML), &peakRunner{}, tuneOpts(one, &buf)); err != nil {
		t.Fatal(err)
	}
	r := &peakRunner{}
	for k := range 2 {
		o := tuneOpts(two, &buf)
		o.Shard = Shard{Index: k, Count: 2}
		if err := Tune(context.Background(), mustDecode(tuneYAML), r, o); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(filepath.Join(two, TunedFileName))
		if (k == 0) == (err == nil) {
			t.Errorf("after shard %d: tuned file stat %v", k, err)
		}
	}
	if r.n() != 20 {
		t.Errorf("shards ran %d cells, want 20", r.n())
	}
	a, _ := os.ReadFile(filepath.Join(one, TunedFileName))
	b, _ := os.ReadFile(filepath.Join(two, TunedFileName))
	strip := func(s []byte) string { return strings.SplitN(string(s), "\nexperiment:", 2)[1] }
	if strip(a) != strip(b) {
		t.Errorf("sharded tuned file differs:\n%s\n---\n%s", a, b)
	}
}

// validatingRunner is a peakRunner whose ValidateCell refuses a method set
// holding the option "bad", or a method named refused.
type validatingRunner struct {
	peakRunner
	refused string
}

func (r *validatingRunner) ValidateCell(c Cell) error {
	if _, ok := c.Method.Set["bad"]; ok {
		return fmt.Errorf("unknown option %q", "bad")
	}
	if c.Method.Name == r.refused {
		return fmt.Errorf("method %s refused", c.Method.Name)
	}
	return nil
}

// TestTuneValidatesFirst: a bad option in any search (another shard's
// included) or in a method without a space stops tune before any cell runs,
// naming the task, the method and the trial.
func TestTuneValidatesFirst(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, refused, want string
	}{
		{"bad option in the last search", strings.Replace(tuneYAML, "tune: {scale: [1, 0.3], eta: [0, 0.5, 1]}", "tune: {bad: [1, 2]}", 1), "", "method ddnm (bad=1): unknown option"},
		{"method without a space", tuneYAML, "pinv", "task SR4, method pinv: method pinv refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &validatingRunner{refused: tc.refused}
			var buf bytes.Buffer
			o := tuneOpts(t.TempDir(), &buf)
			o.Shard = Shard{Index: 0, Count: 4} // the bad search is not shard 0's
			err := Tune(context.Background(), mustDecode(tc.yaml), r, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
			if r.n() != 0 {
				t.Errorf("%d cells ran before the error", r.n())
			}
		})
	}
}

// TestTuneProgress: status's view of a tuning half done by shard 0 of 2
// (the DPS searches of both tasks: 4 trials each, 2 s a trial), then done.
func TestTuneProgress(t *testing.T) {
	out := t.TempDir()
	y := strings.Replace(tuneYAML, "offset: 10}", "offset: 10}\n  budget: 100", 1)
	ctx := context.Background()
	st, err := TuneProgress(ctx, mustDecode(y), out)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TuneState{Searches: 4, Planned: 20, LeftSeconds: 400}); st != want {
		t.Errorf("before tuning: %+v, want %+v", st, want)
	}
	var buf bytes.Buffer
	o := tuneOpts(out, &buf)
	o.Shard = Shard{Index: 0, Count: 2}
	if err := Tune(ctx, mustDecode(y), &peakRunner{}, o); err != nil {
		t.Fatal(err)
	}
	st, err = TuneProgress(ctx, mustDecode(y), out)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TuneState{Searches: 4, Complete: 2, Trials: 8, Planned: 20, Seconds: 16, LeftSeconds: 200}); st != want {
		t.Errorf("after shard 0: %+v, want %+v", st, want)
	}
	// Two more DPS points per task: 2 trials left each at DPS's 2 s a
	// trial, and ddnm's untimed searches at their budget.
	more := strings.Replace(y, "{scale: [0.1, 0.3, 1, 3]}", "{scale: [0.1, 0.3, 1, 3, 10, 30]}", 1)
	st, err = TuneProgress(ctx, mustDecode(more), out)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TuneState{Searches: 4, Complete: 0, Trials: 8, Planned: 24, Seconds: 16, LeftSeconds: 8 + 200}); st != want {
		t.Errorf("two DPS points added: %+v, want %+v", st, want)
	}
	o.Shard = Shard{Index: 1, Count: 2}
	if err := Tune(ctx, mustDecode(y), &peakRunner{}, o); err != nil {
		t.Fatal(err)
	}
	st, err = TuneProgress(ctx, mustDecode(y), out)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TuneState{Searches: 4, Complete: 4, Trials: 20, Planned: 20, Seconds: 40, Written: true}); st != want {
		t.Errorf("after both shards: %+v, want %+v", st, want)
	}
	// Without a budget there is no estimate of the time left.
	st, err = TuneProgress(ctx, mustDecode(tuneYAML), t.TempDir())
	if err != nil || !math.IsNaN(st.LeftSeconds) {
		t.Errorf("no budget: %+v, %v: want LeftSeconds NaN", st, err)
	}
}

// TestWorkload: the work of the table's cells, done and left, and the rate
// of the done cells from their stored seconds (2 images × 1 s a cell).
func TestWorkload(t *testing.T) {
	out := t.TempDir()
	y := strings.Replace(tuneYAML, "tune: {scale: [0.1, 0.3, 1, 3]}", "", 1)
	y = strings.Replace(y, "    tune: {scale: [1, 0.3], eta: [0, 0.5, 1]}\n", "", 1)
	y = strings.Replace(y, "tune:\n  dataset: {name: mnist-train, n: 2, offset: 10}\n", "", 1)
	e := mustDecode(y)
	cost := func(c Cell) float64 { return 100 * float64(c.Dataset.N) }
	var buf bytes.Buffer
	if err := Run(context.Background(), e, &peakRunner{}, quiet(out, &buf)); err != nil {
		t.Fatal(err)
	}
	cells, done, err := Status(e, out)
	if err != nil {
		t.Fatal(err)
	}
	// 2 tasks × 3 methods × 2 seeds, 3 images each; take one result away.
	if len(cells) != 12 {
		t.Fatalf("%d cells, want 12", len(cells))
	}
	delete(done, cells[0].ID)
	w := Workload(e, out, cells, done, cost)
	if want := (WorkState{Left: 300, Done: 3300, Timed: 3300, Seconds: 33}); w != want {
		t.Errorf("Workload = %+v, want %+v", w, want)
	}
	if w.Rate() != 100 {
		t.Errorf("rate %v, want 100 a second", w.Rate())
	}
}

// divergingRunner is peakRunner, except that DPS diverges (ErrDiverged)
// at the scales in bad, after 2.5 s of work; other errors come from fail.
type divergingRunner struct {
	peakRunner
	bad  map[float64]bool
	fail error
}

func (r *divergingRunner) RunCell(ctx context.Context, c Cell, p func(int, int)) (*CellResult, error) {
	if c.Method.Name == "dps" && r.bad[num(c.Method.Set, "scale")] {
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		if r.fail != nil {
			return nil, r.fail
		}
		return nil, Diverged(fmt.Errorf("solve: dps: reconstruction of image 0 is not finite (%s)", "step too large"))
	}
	return r.peakRunner.RunCell(ctx, c, p)
}

// A trial whose method diverges scores nothing and the search goes on:
// the best of the others is chosen, trials.csv, the tuned file and the
// plot say which diverged, and a re-run replays it without running it
// again. A search where every trial diverges, or a failure that is not a
// divergence, stops the tuning with the error.
func TestTuneDiverged(t *testing.T) {
	out := t.TempDir()
	r := &divergingRunner{bad: map[float64]bool{1: true}}
	var buf bytes.Buffer
	if err := Tune(context.Background(), mustDecode(tuneYAML), r, tuneOpts(out, &buf)); err != nil {
		t.Fatalf("a diverged trial stopped the tuning: %v\n%s", err, buf.String())
	}
	if r.n() != 20 {
		t.Errorf("%d cells run, want 20 (every point tried once)", r.n())
	}
	if !strings.Contains(buf.String(), "the trial scale=1 diverged") {
		t.Errorf("the log does not name the diverged trial:\n%s", buf.String())
	}
	tf := readTuned(t, filepath.Join(out, TunedFileName))
	for _, task := range []string{"SR4", "inpaint-box"} {
		if got := tf.Settings[task]["DPS"]; num(got, "scale") != 0.3 {
			t.Errorf("%s / DPS: tuned %v, want scale 0.3", task, got)
		}
		if s := tf.Search[task]["DPS"]; s.Trials != 4 || s.Diverged != 1 || s.Stopped != "complete" {
			t.Errorf("%s / DPS search record %+v, want 4 trials, 1 diverged", task, s)
		}
		if s := tf.Search[task]["ddnm"]; s.Diverged != 0 {
			t.Errorf("%s / ddnm: %d diverged, want 0", task, s.Diverged)
		}
	}
	rows := readCSV(t, filepath.Join(out, TuneDir, "trials.csv"))
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	failed := 0
	for _, row := range rows[1:] {
		if row[col["failed"]] == "" {
			continue
		}
		failed++
		if row[col["opt.scale"]] != "1" || row[col["chosen"]] != "false" || !strings.Contains(row[col["failed"]], "not finite") || row[col["cells"]] == "" {
			t.Errorf("diverged row %v", row)
		}
	}
	if failed != 2 {
		t.Errorf("%d diverged rows in trials.csv, want 2", failed)
	}
	var id string
	for _, c := range r.calls {
		if c.Method.Name == "dps" && num(c.Method.Set, "scale") == 1 && c.Task.Name == "sr4" {
			id = c.ID
		}
	}
	rec, ok := loadFailure(filepath.Join(out, TuneDir, "SR4.DPS", CellsDir), id)
	if !ok || !rec.Diverged || rec.Error == "" {
		t.Errorf("failure record of %s: %+v, %v; want one marked diverged", id, rec, ok)
	}
	decodePNG(t, filepath.Join(out, TuneDir, PlotsDir, "SR4.DPS.png"))

	// The replay runs nothing, the diverged trials included.
	if err := Tune(context.Background(), mustDecode(tuneYAML), r, tuneOpts(out, &buf)); err != nil {
		t.Fatal(err)
	}
	if r.n() != 20 {
		t.Errorf("the replay ran %d cells, want none", r.n()-20)
	}
	st, err := TuneProgress(context.Background(), mustDecode(tuneYAML), out)
	if err != nil || st.Complete != st.Searches || st.Trials != 20 || st.Diverged != 2 {
		t.Errorf("progress %+v, %v: want every search complete with 20 trials, 2 diverged", st, err)
	}

	for _, c := range []struct {
		name string
		r    *divergingRunner
		want string
	}{
		{"every trial diverges", &divergingRunner{bad: map[float64]bool{0.1: true, 0.3: true, 1: true, 3: true}}, "every trial diverged (4 of 4"},
		{"another failure", &divergingRunner{bad: map[float64]bool{1: true}, fail: fmt.Errorf("out of memory")}, "out of memory"},
	} {
		err := Tune(context.Background(), mustDecode(tuneYAML), c.r, tuneOpts(t.TempDir(), &buf))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestSplitAt: a search's line breaks at each diverged trial's value.
func TestSplitAt(t *testing.T) {
	pts := plotter.XYs{{X: 0.1, Y: 1}, {X: 0.3, Y: 2}, {X: 3, Y: 1}, {X: 10, Y: 0}}
	for _, c := range []struct {
		fail []float64
		want []int // lengths of the runs
	}{
		{nil, []int{4}},
		{[]float64{1}, []int{2, 2}},
		{[]float64{0.05, 30}, []int{4}},
		{[]float64{0.2, 1, 5}, []int{1, 1, 1, 1}},
	} {
		var got []int
		for _, r := range splitAt(pts, c.fail) {
			got = append(got, len(r))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("fail at %v: runs %v, want %v", c.fail, got, c.want)
		}
	}
}

// TestTuneEdges: a chosen value at the edge of the search is flagged: the
// first or last value of a numeric grid; the smallest or largest value
// tried on a range (diverged trials aside) when it also lies in the
// range's outer quarter; not when the edge is the option's bound. The
// smallest or largest value tried inside a range is flagged apart, as an
// unexplored stretch.
func TestTuneEdges(t *testing.T) {
	grid := map[string]any{"scale": []any{0.1, 0.3, 1.0, 3.0}}
	lr := map[string]any{"lr": map[string]any{"log": []any{1e-5, 1e-3}}}
	two := map[string]any{"lambda": map[string]any{"log": []any{0.5, 20.0}}, "zeta": map[string]any{"uniform": []any{0.05, 1.0}}}
	eta := map[string]any{"eta": []any{0.5, 0.85, 1.0}}
	eta0 := map[string]any{"eta": []any{0.0, 0.5, 1.0}}
	for _, c := range []struct {
		name  string
		space map[string]any
		tried []tunePoint
		fail  []bool
		best  int
		want  string
		// unit: the method accepts only values in [0, 1] (DDNM's η);
		// refuse: the validation refuses every point, the chosen one too
		unit, refuse bool
	}{
		{"grid top", grid, []tunePoint{{"scale": 0.1}, {"scale": 0.3}, {"scale": 1.0}, {"scale": 3.0}}, nil, 3, "[scale high]", false, false},
		{"grid inside", grid, []tunePoint{{"scale": 0.1}, {"scale": 0.3}, {"scale": 1.0}, {"scale": 3.0}}, nil, 1, "[]", false, false},
		{"grid bottom", grid, []tunePoint{{"scale": 0.1}, {"scale": 0.3}}, nil, 0, "[scale low]", false, false},
		{"range top", lr, []tunePoint{{"lr": 2e-5}, {"lr": 1.1e-4}, {"lr": 5.18e-4}}, nil, 2, "[lr high]", false, false},
		{"range: largest tried, mid-range", lr, []tunePoint{{"lr": 2e-5}, {"lr": 5e-5}, {"lr": 1.1e-4}}, nil, 2, "[]", false, false},
		{"range: largest scored, mid-range, diverged above", lr, []tunePoint{{"lr": 2e-5}, {"lr": 1e-4}, {"lr": 3e-4}}, []bool{false, false, true}, 1, "[]", false, false},
		{"range: inside the tried values", lr, []tunePoint{{"lr": 2e-5}, {"lr": 1.1e-4}, {"lr": 5e-5}}, nil, 2, "[]", false, false},
		{"range: smallest tried, mid-range (the first PnP-DM search)", map[string]any{"rho_min": map[string]any{"log": []any{0.1, 1.0}}},
			[]tunePoint{{"rho_min": 0.857}, {"rho_min": 0.426}, {"rho_min": 0.432}, {"rho_min": 0.237}, {"rho_min": 0.742}, {"rho_min": 0.224}}, nil, 5, "[]", false, false},
		{"range bottom", lr, []tunePoint{{"lr": 1.2e-5}, {"lr": 1.1e-4}}, nil, 0, "[lr low]", false, false},
		{"diverged above: mid-range", lr, []tunePoint{{"lr": 1e-4}, {"lr": 5e-4}, {"lr": 9e-4}}, []bool{false, true, true}, 0, "[]", false, false},
		{"diverged above: near the top", lr, []tunePoint{{"lr": 1e-4}, {"lr": 8e-4}, {"lr": 9e-4}}, []bool{false, false, true}, 1, "[lr high]", false, false},
		{"non-numeric grid", map[string]any{"mode": []any{"a", "b"}}, []tunePoint{{"mode": "a"}, {"mode": "b"}}, nil, 1, "[]", false, false},
		{"two ranges", two, []tunePoint{{"lambda": 0.64, "zeta": 0.29}, {"lambda": 14.8, "zeta": 0.953}}, nil, 1, "[lambda high zeta high]", false, false},
		{"grid top at the option's bound", eta, []tunePoint{{"eta": 0.5}, {"eta": 0.85}, {"eta": 1.0}}, nil, 2, "[]", true, false},
		{"grid bottom at the option's bound", eta0, []tunePoint{{"eta": 0.0}, {"eta": 0.5}}, nil, 0, "[]", true, false},
		{"grid bottom inside the bounds", eta, []tunePoint{{"eta": 0.5}, {"eta": 0.85}}, nil, 0, "[eta low]", true, false},
		{"grid top at 1 without bounds", eta, []tunePoint{{"eta": 0.5}, {"eta": 1.0}}, nil, 1, "[eta high]", false, false},
		{"validation refusing the chosen point too", eta, []tunePoint{{"eta": 0.5}, {"eta": 1.0}}, nil, 1, "[eta high]", false, true},
	} {
		axes, err := parseSpace(c.space)
		if err != nil {
			t.Fatal(err)
		}
		s := &pairSearch{axes: axes, best: c.best}
		if c.refuse {
			s.allowed = func(tunePoint) bool { return false }
		}
		if c.unit {
			s.allowed = func(pt tunePoint) bool {
				v, _ := params.Number(pt["eta"])
				return v >= 0 && v <= 1
			}
		}
		for i, p := range c.tried {
			tr := trial{point: p, score: float64(i)}
			if c.fail != nil && c.fail[i] {
				tr.failed, tr.score = "diverged", math.NaN()
			}
			s.trials = append(s.trials, tr)
		}
		edge, unexplored, note := s.edges()
		if got := fmt.Sprint(edge); got != c.want {
			t.Errorf("%s: edges %s, want %s", c.name, got, c.want)
		}
		wantUnexplored := map[string]string{
			"range: largest tried, mid-range":                            "[lr high]",
			"range: smallest tried, mid-range (the first PnP-DM search)": "[rho_min low]",
		}[c.name]
		if wantUnexplored == "" {
			wantUnexplored = "[]"
		}
		if got := fmt.Sprint(unexplored); got != wantUnexplored {
			t.Errorf("%s: unexplored %s, want %s", c.name, got, wantUnexplored)
		}
		if (len(edge)+len(unexplored) > 0) != strings.Contains(note, "a better value may lie beyond") {
			t.Errorf("%s: note %q for edges %v, unexplored %v", c.name, note, edge, unexplored)
		}
		if len(unexplored) > 0 && !strings.Contains(note, "unexplored") {
			t.Errorf("%s: note %q does not name the unexplored stretch", c.name, note)
		}
	}
}
