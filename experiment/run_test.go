package experiment

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffinv/diffinv/internal/cpuuse"
	"github.com/diffinv/diffinv/internal/dirlock"
	"github.com/diffinv/diffinv/internal/progress"
	"github.com/diffinv/diffinv/nn"
)

// quiet run options: logs into buf, a fixed clock for the bar.
func quiet(out string, buf *bytes.Buffer) RunOptions {
	t0 := time.Unix(0, 0)
	return RunOptions{Out: out, Log: buf, Progress: buf, BarOptions: []progress.Option{progress.WithTerminal(false), progress.WithClock(func() time.Time { return t0 })}}
}

func runFake(t *testing.T, e *Experiment, f *fakeRunner, opts RunOptions) {
	t.Helper()
	if err := Run(context.Background(), e, f, opts); err != nil {
		t.Fatal(err)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

func TestRunOutputs(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	f := &fakeRunner{}
	runFake(t, mustDecode(testYAML), f, quiet(out, &log))
	if len(f.calls) != 16 {
		t.Fatalf("%d RunCell calls, want 16", len(f.calls))
	}
	if n := strings.Count(log.String(), "\ncell "); n != 16 {
		t.Errorf("%d summary lines, want 16:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "16/16") {
		t.Errorf("no final progress line in\n%s", log.String())
	}
	js, _ := filepath.Glob(filepath.Join(out, CellsDir, "*.json"))
	if len(js) != 16 {
		t.Errorf("%d cell files, want 16", len(js))
	}

	t.Run("csv", func(t *testing.T) {
		rows := readCSV(t, filepath.Join(out, ResultsCSV))
		head := "cell,task,method,solver.scale,seed,image,psnr,ssim,consistency,fid,kid,seconds"
		if got := strings.Join(rows[0], ","); got != head {
			t.Fatalf("header %q, want %q", got, head)
		}
		if len(rows) != 1+16*3 {
			t.Fatalf("%d rows, want %d", len(rows), 1+16*3)
		}
		// Hand-computed from the fake's formulas: SR4 (σ=0.05), DPS (bonus
		// 1), scale 0.1, seed 1, image 6 (offset 5, i = 1).
		want := map[string]float64{"psnr": 20 + 2 + 0.1 + 1 + 0.5 + 0.5, "ssim": 0.511, "consistency": 0.2, "fid": 14, "kid": 0.02, "seconds": 1.5}
		found := 0
		for _, r := range rows[1:] {
			if r[1] != "SR4" || r[2] != "DPS" || r[3] != "0.1" || r[4] != "1" || r[5] != "6" {
				continue
			}
			found++
			for j, name := range rows[0][6:] {
				v, err := strconv.ParseFloat(r[6+j], 64)
				if err != nil || math.Abs(v-want[name]) > 1e-12 {
					t.Errorf("%s = %q, want %v", name, r[6+j], want[name])
				}
			}
		}
		if found != 1 {
			t.Errorf("found %d matching rows, want 1", found)
		}
	})

	t.Run("table", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(out, TableMD))
		if err != nil {
			t.Fatal(err)
		}
		md := string(b)
		// PSNR of image i = 20 + 2s + 0.1i + bonus + 5·scale + 10σ:
		// averaged over seeds {0, 1}, the images differ by 0.1·i, so the
		// standard error is 0.1/√3; the best row leads every other by a
		// constant per-image difference (paired error 0): bold.
		for _, block := range []string{
			"## PSNR↑\n\n| Method | SR4 | inpaint-box |\n|---|---:|---:|\n" +
				"| DPS (scale=0.1) | 23.10 ± 0.06 | 22.60 ± 0.06 |\n" +
				"| DPS (scale=1) | **27.60 ± 0.06** | **27.10 ± 0.06** |\n" +
				"| ddrm (scale=0.1) | 22.10 ± 0.06 | 21.60 ± 0.06 |\n" +
				"| ddrm (scale=1) | 26.60 ± 0.06 | 26.10 ± 0.06 |\n",
			// FID 10 + 3s + bonus: DPS {11, 14}, ddrm {10, 13}; error over
			// seeds 3/√2/√2 = 1.5; ddrm leads by 1 < √(1.5² + 1.5²): no bold.
			"| DPS (scale=0.1) | 12.50 ± 1.50 | 12.50 ± 1.50 |\n",
			"| ddrm (scale=1) | 11.50 ± 1.50 | 11.50 ± 1.50 |\n",
			// SSIM 0.5 + 0.01s + 0.001i: 0.506, error 0.001/√3; every row
			// ties: no bold.
			"| DPS (scale=1) | 0.506 ± 0.001 | 0.506 ± 0.001 |\n",
			// seconds: 1, 1.5, 2 per image, no seed dependence: 1.50 ± 0.5/√3.
			"| ddrm (scale=0.1) | 1.50 ± 0.29 | 1.50 ± 0.29 |\n",
			"- SR4: `grids/SR4.png`, rows: truth, y, DPS (scale=0.1), DPS (scale=1), ddrm (scale=0.1), ddrm (scale=1)\n",
			"- `plots/solver.scale.png`\n",
			"## KID↓", "## ‖y−A(x̂)‖↓", "## s/img↓",
		} {
			if !strings.Contains(md, block) {
				t.Errorf("table.md lacks\n%s\nin\n%s", block, md)
			}
		}
	})

	t.Run("grid", func(t *testing.T) {
		img := decodePNG(t, filepath.Join(out, GridsDir, "SR4.png"))
		// Rows of 2 images of 8 px (scale 1) with 2 px pads: 22×12 each;
		// stacked with 2 px pads: (22+4) × (2 + 6·(12+2)).
		if b := img.Bounds(); b.Dx() != 26 || b.Dy() != 86 {
			t.Fatalf("grid %v, want 26×86", b)
		}
		gray := func(x, y int) uint32 { r, _, _, _ := img.At(x, y).RGBA(); return r >> 8 }
		for _, tc := range []struct {
			name string
			x, y int
			want uint32
		}{
			{"truth image 0 (0.1)", 4, 4, 140},
			{"truth image 1 (0.2)", 4 + 10, 4, 153},
			{"y (0.5, upscaled ×4)", 4 + 7, 18, 191},
			{"recon row 1 image 0 (−0.1)", 4, 32, 115},
			{"recon row 4 image 1 (−0.2)", 14, 2 + 5*14 + 2, 102},
			{"pad", 0, 0, 128},
		} {
			if g := gray(tc.x, tc.y); g != tc.want {
				t.Errorf("%s at (%d,%d): %d, want %d", tc.name, tc.x, tc.y, g, tc.want)
			}
		}
		decodePNG(t, filepath.Join(out, GridsDir, "inpaint-box.png"))
	})

	t.Run("plot", func(t *testing.T) {
		img := decodePNG(t, filepath.Join(out, PlotsDir, "solver.scale.png"))
		// 6 metric panels and the legend, 4 to a row, 3.2 × 2.8 in each at
		// 100 dpi.
		if b := img.Bounds(); b.Dx() != 4*320 || b.Dy() != 2*280 {
			t.Errorf("plot %v, want 1280×560", b)
		}
		// Not blank: some pixels are not white.
		dark := 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if r, _, _, _ := img.At(x, y).RGBA(); r < 0x8000 {
					dark++
				}
			}
		}
		if dark < 1000 {
			t.Errorf("plot has %d dark pixels, want a drawn plot", dark)
		}
	})
}

func TestTableThreeSeeds(t *testing.T) {
	e := mustDecode(testYAML)
	e.Sweep = nil
	e.Methods = e.Methods[:1]
	e.Tasks = e.Tasks[:1]
	e.Metrics = []string{"psnr", "fid"}
	if err := e.Set("seeds=0,1,3"); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var log bytes.Buffer
	runFake(t, e, &fakeRunner{}, quiet(out, &log))
	b, _ := os.ReadFile(filepath.Join(out, TableMD))
	// PSNR of image i, 21.5 + 0.1i + 2s, averaged over s = 0, 1, 3: mean
	// 24.2667, error over the images 0.1/√3. FID per cell 10 + 3s + 1 =
	// {11, 14, 20}: mean 15, error over the seeds √21/√3 = 2.6458. One
	// row: no bold.
	for _, want := range []string{"| DPS | 24.27 ± 0.06 |\n", "| DPS | 15.00 ± 2.65 |\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("table.md lacks %q:\n%s", want, b)
		}
	}
	if _, err := os.Stat(filepath.Join(out, PlotsDir)); !os.IsNotExist(err) {
		t.Errorf("plots folder without a sweep: %v", err)
	}
	rows := readCSV(t, filepath.Join(out, ResultsCSV))
	if got := strings.Join(rows[0], ","); got != "cell,task,method,seed,image,psnr,fid" {
		t.Errorf("header %q", got)
	}
}

// TestBestOf: with best_of: psnr each image takes the seed with its best
// PSNR, and the other metrics follow that seed. The fake's PSNR falls with
// the seed on even images and rises on odd ones, so seeds 0 and 2 both win
// somewhere: neither "always the first" nor "always the last" passes.
func TestBestOf(t *testing.T) {
	e := mustDecode(testYAML)
	e.Sweep = nil
	e.Methods = e.Methods[:2] // DPS, and ddrm: DPS's PSNR less its bonus of 1, the same SSIM
	e.Tasks = e.Tasks[:1]
	e.Metrics = []string{"psnr", "ssim", "seconds"}
	e.Dataset.N = 4
	if err := e.Set("best_of=psnr"); err != nil {
		t.Fatal(err)
	}
	if err := e.Set("seeds=0,2"); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var log bytes.Buffer
	runFake(t, e, &fakeRunner{alternate: true}, quiet(out, &log))
	b, _ := os.ReadFile(filepath.Join(out, TableMD))
	// Image i, seed s: psnr = 21.5 + 0.1 i ∓ 3 s (− on even i), ssim = 0.5 +
	// 0.01 s + 0.001 i. Best: seed 0 on images 0, 2 (21.5, 21.7), seed 2 on
	// 1, 3 (27.6, 27.8): mean PSNR 24.65, standard error over the images
	// √(37.25/3)/2 = 1.76; SSIM (0.5 + 0.502 + 0.521 + 0.523)/4 = 0.5115 ±
	// 0.006. DPS leads ddrm by 1 dB on every image (paired error 0): bold;
	// their SSIMs tie: no bold.
	for _, want := range []string{"## Best of 2 seeds per image (by PSNR↑)", "### PSNR↑, best of 2",
		"| DPS | **24.65 ± 1.76** |\n", "| ddrm | 23.65 ± 1.76 |\n",
		"### SSIM↑, best of 2", "| DPS | 0.511 ± 0.006 |\n", "| ddrm | 0.511 ± 0.006 |\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("table.md lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "s/img↓, best of") {
		t.Errorf("table.md has a best-of table of seconds:\n%s", b)
	}
	for _, bad := range []struct {
		best  string
		seeds string
		err   string
	}{
		{"fid", "0,1", "computed per cell"},
		{"kid2", "0,1", "best_of"},
		{"consistency", "0,1", "not among metrics"},
		{"psnr", "0", "want ≥ 2 seeds"},
	} {
		e := mustDecode(testYAML)
		e.Metrics = []string{"psnr", "fid"}
		e.BestOf = bad.best
		if err := e.Set("seeds=" + bad.seeds); err != nil {
			t.Fatal(err)
		}
		err := e.Validate()
		if err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("best_of %q, seeds %s: error %v, want one with %q", bad.best, bad.seeds, err, bad.err)
		}
	}
}

func TestRunResume(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	runFake(t, mustDecode(testYAML), &fakeRunner{}, quiet(out, &log))

	// Without resume, existing results are an error.
	err := Run(context.Background(), mustDecode(testYAML), &fakeRunner{}, quiet(out, &log))
	if err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("rerun without resume: %v, want an error suggesting --resume", err)
	}

	// Resume after the file gained a seed runs only the new cells.
	e := mustDecode(testYAML)
	e.Set("seeds=0,1,2")
	f := &fakeRunner{}
	opts := quiet(out, &log)
	opts.Resume = true
	runFake(t, e, f, opts)
	if len(f.calls) != 8 {
		t.Errorf("resume ran %d cells, want the 8 of seed 2", len(f.calls))
	}
	for _, id := range f.calls {
		if !strings.Contains(id, "_s2_") {
			t.Errorf("resume ran %s, want only seed-2 cells", id)
		}
	}

	// A corrupt result (a half-written file from another tool) and a result
	// lacking a newly requested metric are recomputed.
	cells, _ := e.Cells()
	if err := os.WriteFile(resultPath(filepath.Join(out, CellsDir), cells[3].ID), []byte(`{"version": 1, "id": `), 0o644); err != nil {
		t.Fatal(err)
	}
	f = &fakeRunner{}
	runFake(t, e, f, opts)
	if len(f.calls) != 1 || f.calls[0] != cells[3].ID {
		t.Errorf("after corrupting %s, resume ran %v", cells[3].ID, f.calls)
	}

	// Overwrite recomputes everything.
	f = &fakeRunner{}
	opts.Resume, opts.Overwrite = false, true
	runFake(t, e, f, opts)
	if len(f.calls) != 24 {
		t.Errorf("overwrite ran %d cells, want 24", len(f.calls))
	}
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     *fakeRunner
		edit  func(e *Experiment)
		opts  func(o *RunOptions)
		want  string
		calls int
	}{
		{"missing per-image metric", &fakeRunner{drop: "ssim"}, nil, nil, `lacks metric "ssim"`, 1},
		{"missing per-cell metric", &fakeRunner{drop: "fid"}, nil, nil, `per-cell metric "fid"`, 1},
		{"validator", &fakeRunner{invalid: "ddrm"}, nil, nil, `method "ddrm" rejected`, 0},
		{"no output", &fakeRunner{}, nil, func(o *RunOptions) { o.Out = "" }, "no output folder", 0},
		{"resume and overwrite", &fakeRunner{}, nil, func(o *RunOptions) { o.Resume, o.Overwrite = true, true }, "at most one", 0},
		{"invalid experiment", &fakeRunner{}, func(e *Experiment) { e.Seeds = nil }, nil, "seeds: empty", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustDecode(testYAML)
			if tc.edit != nil {
				tc.edit(e)
			}
			var log bytes.Buffer
			opts := quiet(t.TempDir(), &log)
			if tc.opts != nil {
				tc.opts(&opts)
			}
			err := Run(context.Background(), e, tc.f, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v, want an error containing %q", err, tc.want)
			}
			if len(tc.f.calls) != tc.calls {
				t.Errorf("%d RunCell calls, want %d", len(tc.f.calls), tc.calls)
			}
		})
	}
	// A canceled context stops before the next cell.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var log bytes.Buffer
	f := &fakeRunner{}
	if err := Run(ctx, mustDecode(testYAML), f, quiet(t.TempDir(), &log)); err == nil || len(f.calls) != 0 {
		t.Errorf("canceled: %v after %d calls, want an error before any cell", err, len(f.calls))
	}
}

func TestRunFillsSeconds(t *testing.T) {
	e := mustDecode(testYAML)
	e.Sweep = nil
	e.Seeds = []int64{0}
	out := t.TempDir()
	var log bytes.Buffer
	runFake(t, e, &fakeRunner{noSeconds: true}, quiet(out, &log))
	rows := readCSV(t, filepath.Join(out, ResultsCSV))
	col := len(rows[0]) - 1
	if rows[0][col] != "seconds" {
		t.Fatalf("last column %q", rows[0][col])
	}
	for _, r := range rows[1:] {
		v, err := strconv.ParseFloat(r[col], 64)
		if err != nil || v < 0 || v > 10 || math.IsNaN(v) {
			t.Errorf("seconds %q, want the measured wall time per image", r[col])
		}
	}
}

func TestNonFiniteMetrics(t *testing.T) {
	// A perfect reconstruction has PSNR +Inf: it must survive the JSON
	// round trip and the reports.
	e := mustDecode(testYAML)
	e.Sweep, e.Seeds, e.Metrics = nil, []int64{0}, []string{"psnr"}
	r := CellRunnerFunc(func(ctx context.Context, c Cell, p func(int, int)) (*CellResult, error) {
		res := &CellResult{}
		for i := range c.Dataset.N {
			res.Images = append(res.Images, ImageMetrics{Index: i, Values: map[string]float64{"psnr": math.Inf(1)}})
		}
		return res, nil
	})
	out := t.TempDir()
	var log bytes.Buffer
	if err := Run(context.Background(), e, r, quiet(out, &log)); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, filepath.Join(out, ResultsCSV))
	if rows[1][len(rows[1])-1] != "+Inf" {
		t.Errorf("psnr %q, want +Inf", rows[1][len(rows[1])-1])
	}
	b, _ := os.ReadFile(filepath.Join(out, TableMD))
	if !strings.Contains(string(b), "+Inf") {
		t.Errorf("table lacks +Inf:\n%s", b)
	}
}

func TestTwoSweepAxes(t *testing.T) {
	e := mustDecode(testYAML)
	e.Tasks = e.Tasks[1:]
	e.Methods[0].Label = "DPS|fast"
	e.Metrics = []string{"psnr", "fid"}
	if err := e.AddSweep("task.kind=box,random"); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var log bytes.Buffer
	runFake(t, e, &fakeRunner{}, quiet(out, &log))
	rows := readCSV(t, filepath.Join(out, ResultsCSV))
	if got := strings.Join(rows[0], ","); got != "cell,task,method,solver.scale,task.kind,seed,image,psnr,fid" {
		t.Errorf("header %q", got)
	}
	// 1 task × 2 methods × 2 scales × 2 kinds × 2 seeds × 3 images.
	if len(rows) != 1+48 {
		t.Errorf("%d rows, want 49", len(rows))
	}
	b, _ := os.ReadFile(filepath.Join(out, TableMD))
	// PSNR of image i, 20 + 2s + 0.1i + 1 + 5·0.1 (no σ on inpaint-box),
	// averaged over seeds {0, 1}: 22.60 ± 0.1/√3; the label's "|" is
	// escaped.
	for _, want := range []string{"| DPS\\|fast (scale=0.1, kind=box) | 22.60 ± 0.06 |", "| ddrm (scale=1, kind=random) |", "- `plots/task.kind.png`"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("table.md lacks %q:\n%s", want, b)
		}
	}
	for _, p := range []string{"solver.scale.png", "task.kind.png"} {
		img := decodePNG(t, filepath.Join(out, PlotsDir, p))
		// 2 metric panels and the legend in one row.
		if b := img.Bounds(); b.Dx() != 3*320 || b.Dy() != 280 {
			t.Errorf("%s: %v, want 960×280", p, b)
		}
	}
}

// TestRunResumeRetrainedCheckpoint: results stored for one checkpoint's
// content are not reused for another checkpoint at the same path (the
// cells are new), and are found again when the file is moved.
func TestRunResumeRetrainedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(ckpt, []byte("weights v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	exp := func(path string) *Experiment {
		e := mustDecode(testYAML)
		if err := e.Set("checkpoint=" + path); err != nil {
			t.Fatal(err)
		}
		return e
	}
	out := filepath.Join(dir, "out")
	var log bytes.Buffer
	opts := quiet(out, &log)
	opts.Resume = true
	runFake(t, exp(ckpt), &fakeRunner{}, opts)

	moved := filepath.Join(dir, "v1.safetensors")
	if err := os.Rename(ckpt, moved); err != nil {
		t.Fatal(err)
	}
	f := &fakeRunner{}
	runFake(t, exp(moved), f, opts)
	if len(f.calls) != 0 {
		t.Errorf("after moving the checkpoint, resume ran %d cells, want 0", len(f.calls))
	}

	if err := os.WriteFile(ckpt, []byte("weights v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	f = &fakeRunner{}
	runFake(t, exp(ckpt), f, opts)
	if len(f.calls) != 16 {
		t.Errorf("with a retrained checkpoint at the old path, resume ran %d cells, want all 16", len(f.calls))
	}
	cells, err := exp(ckpt).Cells()
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadResult(filepath.Join(out, CellsDir), cells[0])
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := FileSHA256(ckpt); s.CheckpointSHA256 != want || want == "" {
		t.Errorf("stored checkpoint digest %q, want %q", s.CheckpointSHA256, want)
	}
	// A stored result whose digest disagrees with its cell's is unusable.
	c := cells[0]
	c.CheckpointSHA256 = strings.Repeat("0", 64)
	if _, err := loadResult(filepath.Join(out, CellsDir), c); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("digest mismatch: err = %v, want a SHA-256 error", err)
	}
}

// TestRunFolderLocked: a second run on a results folder in use is refused
// naming the holder (three runs on one folder used to do the work three
// times); stale temporary files are cleaned when a run takes the folder.
func TestRunFolderLocked(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	held, err := dirlock.Acquire(out, "experiment run")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRunner{}
	err = Run(context.Background(), mustDecode(testYAML), f, quiet(out, &log))
	if !errors.Is(err, dirlock.ErrBusy) || len(f.calls) != 0 {
		t.Fatalf("second run: %v after %d cells, want ErrBusy before any cell", err, len(f.calls))
	}
	held.Release()
	stale := filepath.Join(out, CellsDir, ".x.json.tmp-42")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("{"), 0o644)
	runFake(t, mustDecode(testYAML), &fakeRunner{}, quiet(out, &log))
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("stale temporary file kept")
	}
}

// TestRunRecordsFailure: a cell whose runner fails leaves a failure record
// with the error (for experiment status); a later successful run of the
// cell stores its result and removes the record.
func TestRunRecordsFailure(t *testing.T) {
	e := mustDecode(testYAML)
	dir := t.TempDir()
	var log bytes.Buffer
	boom := CellRunnerFunc(func(ctx context.Context, c Cell, p func(int, int)) (*CellResult, error) {
		return nil, fmt.Errorf("denoiser exploded")
	})
	if err := Run(context.Background(), e, boom, quiet(dir, &log)); err == nil || !strings.Contains(err.Error(), "denoiser exploded") {
		t.Fatalf("Run with a failing runner: %v", err)
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	id := cells[0].ID
	if got := Failure(dir, id); !strings.Contains(got, "denoiser exploded") {
		t.Fatalf("failure record of %s: %q", id, got)
	}
	opts := quiet(dir, &log)
	opts.Resume = true
	if err := Run(context.Background(), e, &fakeRunner{}, opts); err != nil {
		t.Fatal(err)
	}
	if got := Failure(dir, id); got != "" {
		t.Errorf("failure record survives a successful run: %q", got)
	}
}

// TestWinners: a column's best mean is bold only where it leads every
// other row by more than the standard error of the difference, paired over
// images where both rows have the same ones, and the lead shows at the
// printed precision.
func TestWinners(t *testing.T) {
	imgs := func(vs ...float64) entry {
		e := entry{img: map[int]float64{}}
		for i, v := range vs {
			e.img[i] = v
		}
		ys := make([]float64, len(vs))
		copy(ys, vs)
		e.Mean, e.Err = mean(ys), std(ys)/math.Sqrt(float64(len(ys)))
		return e
	}
	a, b := rowKey{method: "A"}, rowKey{method: "B"}
	for _, tc := range []struct {
		name   string
		ea, eb entry
		higher bool
		want   string // "A", "B" or "" (no bold)
	}{
		// unpaired errors 4/√3 each would hide the 0.5 lead; the paired
		// differences are all 0.5
		{"paired lead", imgs(10, 14, 18), imgs(9.5, 13.5, 17.5), true, "A"},
		{"lead within the error", imgs(10, 14, 12), imgs(11, 12, 12), true, ""},
		{"lower is better", imgs(10, 14, 18), imgs(9.5, 13.5, 17.5), false, "B"},
		{"tie", imgs(1, 2, 3), imgs(1, 2, 3), true, ""},
		// paired differences all 0.001: many standard errors, but both print 14.00
		{"lead below the printed precision", imgs(10.001, 14.001, 18.001), imgs(10, 14, 18), true, ""},
		{"lead at the printed precision", imgs(10.01, 14.01, 18.01), imgs(10, 14, 18), true, "A"},
		{"per-cell, errors known", entry{Mean: 20, Err: 1}, entry{Mean: 17, Err: 1}, true, "A"},
		{"per-cell, lead within the error", entry{Mean: 20, Err: 3}, entry{Mean: 17, Err: 3}, true, ""},
		{"per-cell, one seed (no error)", entry{Mean: 20, Err: math.NaN()}, entry{Mean: 17, Err: math.NaN()}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := map[rowKey]map[string]entry{a: {"c": tc.ea}, b: {"c": tc.eb}}
			w, ok := winners([]rowKey{a, b}, []string{"c"}, es, tc.higher, "%.2f")["c"]
			got := ""
			if ok {
				got = w.method
			}
			if got != tc.want {
				t.Errorf("winner %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCellFolderKeptUntilResult: Run gives every cell its folder (Cell.Dir);
// what a solve cell leaves there (its stored batches) survives a failed
// run, for the resumed run to use, and is removed once the result is
// stored.
func TestCellFolderKeptUntilResult(t *testing.T) {
	e := mustDecode(testYAML)
	dir := t.TempDir()
	var log bytes.Buffer
	var seen []string
	fail := true
	r := CellRunnerFunc(func(ctx context.Context, c Cell, p func(int, int)) (*CellResult, error) {
		if c.Dir == "" {
			return nil, fmt.Errorf("cell %s without a folder", c.ID)
		}
		seen = append(seen, c.Dir)
		if err := os.MkdirAll(filepath.Join(c.Dir, "batches"), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(c.Dir, "batches", "b"), []byte("x"), 0o644); err != nil {
			return nil, err
		}
		if fail {
			return nil, fmt.Errorf("interrupted")
		}
		return (&fakeRunner{}).RunCell(ctx, c, p)
	})
	if err := Run(context.Background(), e, r, quiet(dir, &log)); err == nil {
		t.Fatal("the failing run returned no error")
	}
	if _, err := os.Stat(filepath.Join(seen[0], "batches", "b")); err != nil {
		t.Fatalf("the failed cell's folder is gone: %v", err)
	}
	fail = false
	opts := quiet(dir, &log)
	opts.Resume = true
	if err := Run(context.Background(), e, r, opts); err != nil {
		t.Fatal(err)
	}
	for _, d := range seen {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still there after its result was stored (%v)", d, err)
		}
	}
}

// costFake is a fakeRunner whose CellCost makes a DPS cell nine times a
// DDRM cell.
type costFake struct{ *fakeRunner }

func (costFake) CellCost(c Cell) float64 {
	if c.Method.Name == "dps" {
		return 9
	}
	return 1
}

// TestRunProgressByCost: with a runner that estimates cell costs, the run's
// bar counts them (8 DPS cells × 9 + 8 DDRM cells × 1 = 80 calls), moving
// within a cell as its images finish, never backwards; without, cells.
func TestRunProgressByCost(t *testing.T) {
	var log bytes.Buffer
	tick := time.Unix(0, 0)
	opts := RunOptions{Out: t.TempDir(), Log: io.Discard, Progress: &log, BarOptions: []progress.Option{
		progress.WithTerminal(false), progress.WithInterval(time.Nanosecond),
		progress.WithClock(func() time.Time { tick = tick.Add(time.Second); return tick })}}
	if err := Run(context.Background(), mustDecode(testYAML), costFake{&fakeRunner{}}, opts); err != nil {
		t.Fatal(err)
	}
	var done []int
	for _, l := range strings.Split(log.String(), "\n") {
		if _, rest, ok := strings.Cut(l, "| "); ok {
			var d, total int
			if _, err := fmt.Sscanf(rest, "%d/%d", &d, &total); err != nil || total != 80 {
				t.Fatalf("progress line %q: want N/80", l)
			}
			if !strings.Contains(l, " call/s") && !strings.Contains(l, " s/call") {
				t.Errorf("progress line %q: want the unit call", l)
			}
			done = append(done, d)
		}
	}
	distinct := map[int]bool{}
	for i, d := range done {
		distinct[d] = true
		if i > 0 && d < done[i-1] {
			t.Fatalf("progress went back: %v", done)
		}
	}
	// 16 cells alone give at most 17 values; images inside the DPS cells
	// (3 each, 3 calls apiece) add more.
	if len(done) == 0 || done[len(done)-1] != 80 || len(distinct) <= 17 {
		t.Errorf("progress values %v: want them to end at 80 with more than 17 distinct", done)
	}

	log.Reset()
	tick = time.Unix(0, 0)
	opts.Out = t.TempDir()
	if err := Run(context.Background(), mustDecode(testYAML), &fakeRunner{}, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "16/16") || !strings.Contains(log.String(), "/cell") && !strings.Contains(log.String(), "cell/s") {
		t.Errorf("progress without costs:\n%s", log.String())
	}
}

// TestUsage: a run stores each cell's use of the machine (Linux: the
// process's CPU seconds, the logical CPUs, the load average), and the
// report's note under the seconds table summarises stored usages, naming
// the cells without one.
func TestUsage(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	runFake(t, mustDecode(testYAML), &fakeRunner{}, quiet(out, &log))
	cells, _ := mustDecode(testYAML).Cells()
	r, err := loadResult(filepath.Join(out, CellsDir), cells[0])
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && (r.Usage == nil || r.Usage.Cores != runtime.NumCPU() || r.Usage.CPUSeconds < 0) {
		t.Errorf("stored usage %+v, want this machine's %d CPUs and a CPU time ≥ 0", r.Usage, runtime.NumCPU())
	}
	mk := func(cpu, wall, load float64) cellData {
		return cellData{res: &stored{WallSeconds: wall, Usage: &Usage{CPUSeconds: cpu, Cores: 2, Load1: load}}}
	}
	note := usageNote([]cellData{mk(4, 2, 1.5), mk(1, 2, 3), {res: &stored{WallSeconds: 1}}})
	want := "Machine use while timed: 2 logical CPUs; the process kept 0.50–2.00 of them busy per cell (median 2.00); one-minute load average 1.50–3.00 at the cells' ends (above 2: other work shared the machine, and the seconds are longer than alone). 1 of 3 cells carry no record."
	if strings.TrimSpace(note) != want {
		t.Errorf("note:\n%s\nwant:\n%s", note, want)
	}
	if note := usageNote([]cellData{{res: &stored{}}}); !strings.Contains(note, "did not record") {
		t.Errorf("note without usages: %q", note)
	}
	if runtime.GOOS == "linux" && (r.Usage.CPU != cpuuse.Model() || r.Usage.Arithmetic != cellArithmetic(cells[0]) || r.Usage.Arithmetic == "") {
		t.Errorf("stored usage names CPU %q, arithmetic %q; want %q, %q", r.Usage.CPU, r.Usage.Arithmetic, cpuuse.Model(), cellArithmetic(cells[0]))
	}
	on := func(cpu, arith string) cellData {
		return cellData{res: &stored{WallSeconds: 1, Usage: &Usage{CPUSeconds: 2, Cores: 2, Load1: 2, CPU: cpu, Arithmetic: arith}}}
	}
	note = machinesNote([]cellData{on("Intel Xeon", "bf16 emulated on AVX-512"), on("AMD EPYC", "bf16 on AVX512-BF16"),
		on("Intel Xeon", "bf16 emulated on AVX-512"), on("Intel Xeon", "none"), mk(1, 2, 3), {res: &stored{WallSeconds: 1}}})
	want = " Machines: 2 on Intel Xeon (network: bf16 emulated on AVX-512); 1 on AMD EPYC (network: bf16 on AVX512-BF16); 1 on Intel Xeon (no network); 2 stored before the machine was recorded."
	if note != want {
		t.Errorf("machines note:\n%q\nwant:\n%q", note, want)
	}
	if note := machinesNote([]cellData{mk(1, 2, 3)}); note != "" {
		t.Errorf("machines note without machine records: %q", note)
	}
}

// TestCellArithmetic: a classical method's cell computes no network; a
// torch cell runs float32; a bf16 cell names what runs bf16 here.
func TestCellArithmetic(t *testing.T) {
	for _, tc := range []struct {
		c    Cell
		want string
	}{
		{Cell{Method: Method{Name: "hio"}, Precision: "bf16"}, "none"},
		{Cell{Method: Method{Name: "admm_tv"}}, "none"},
		{Cell{Method: Method{Name: "dps"}}, "fp32"},
		{Cell{Method: Method{Name: "dps"}, Precision: "fp32"}, "fp32"},
		{Cell{Method: Method{Name: "dps"}, Engine: "torch"}, "fp32 (torch engine)"},
		{Cell{Method: Method{Name: "dps"}, Precision: "bf16"}, nn.Arithmetic(nn.BF16)},
	} {
		if got := cellArithmetic(tc.c); got != tc.want {
			t.Errorf("cellArithmetic(%s, %q, %q) = %q, want %q", tc.c.Method.Name, tc.c.Precision, tc.c.Engine, got, tc.want)
		}
	}
	if a := nn.Arithmetic(nn.BF16); !strings.HasPrefix(a, "bf16 ") {
		t.Errorf("nn.Arithmetic(BF16) = %q", a)
	}
}

// TestRunDiverged: a cell whose method diverges does not stop a table's
// run. Its entry (method × sweep point, task) reads "diverged" in table.md
// with how many of its seeds did, none of its seeds is averaged or written
// to results.csv, a "Diverged" section names the cell and its error, a
// resumed run keeps it without running it again, and a row whose every
// cell diverged still appears.
func TestRunDiverged(t *testing.T) {
	e := mustDecode(testYAML)
	dir := t.TempDir()
	var log bytes.Buffer
	inner := &fakeRunner{}
	calls := 0
	bad := func(c Cell) bool {
		scale1 := strings.Contains(c.SweepLabel(), "=1")
		return scale1 && (c.Method.Name == "ddrm" || (c.Method.Name == "dps" && c.Task.Name == "sr4" && c.Seed == 1))
	}
	r := CellRunnerFunc(func(ctx context.Context, c Cell, p func(int, int)) (*CellResult, error) {
		calls++
		if bad(c) {
			return nil, Diverged(fmt.Errorf("chain of image 0 left the finite numbers"))
		}
		return inner.RunCell(ctx, c, p)
	})
	if err := Run(context.Background(), e, r, quiet(dir, &log)); err != nil {
		t.Fatalf("a diverged cell stopped the run: %v\n%s", err, log.String())
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	nbad, badID := 0, ""
	for _, c := range cells {
		if bad(c) {
			nbad++
			if c.Method.Name == "dps" {
				badID = c.ID
			}
		}
	}
	if nbad != 5 || calls != len(cells) {
		t.Fatalf("%d diverging cells of %d (want 5), %d calls", nbad, len(cells), calls)
	}
	if !strings.Contains(log.String(), "5 cells diverged") {
		t.Errorf("the log does not count the diverged cells:\n%s", log.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, TableMD))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| DPS (scale=1) | diverged (1 of 2 seeds) |",
		"| ddrm (scale=1) | diverged | diverged |",
		"## Diverged",
		"DPS (scale=1), SR4: 1 of 2 cells diverged (first: `" + badID + "`): chain of image 0 left the finite numbers",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("table.md lacks %q:\n%s", want, md)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(dir, ResultsCSV))
	for _, c := range cells {
		if c.Method.Name == "dps" && c.Task.Name == "sr4" && strings.Contains(c.SweepLabel(), "=1") && strings.Contains(string(csv), c.ID) {
			t.Errorf("results.csv holds cell %s of the diverged entry", c.ID)
		}
	}
	// Resumed: nothing runs, the same table.
	opts := quiet(dir, &log)
	opts.Resume = true
	if err := Run(context.Background(), e, r, opts); err != nil {
		t.Fatal(err)
	}
	if calls != len(cells) {
		t.Errorf("the resumed run ran %d cells, want none", calls-len(cells))
	}
	if again, _ := os.ReadFile(filepath.Join(dir, TableMD)); !bytes.Equal(md, again) {
		t.Errorf("the resumed run changed table.md")
	}
}

// resumedFake reports each cell as resumed with all its images but the last
// stored: its first progress count is work done before this run.
type resumedFake struct{ costFake }

func (r resumedFake) RunCell(ctx context.Context, c Cell, p func(int, int)) (*CellResult, error) {
	n := c.Dataset.N
	p(n-1, n)
	return r.costFake.RunCell(ctx, c, func(d, t int) {
		if d == t {
			p(d, t)
		}
	})
}

// TestRunProgressRateLeavesResumedWorkOut: a resumed run's bar measures its
// rate on the work it does, not on the stored work it finds (which made the
// rate of a resumed table start in the thousands and its ETA grow for hours).
// Each DPS cell (9 calls, 3 images) finds 2 images stored: 6 calls skipped;
// a DDRM cell (1 call) skips int(2/3) = 0; so 32 of the 80 calls are work.
func TestRunProgressRateLeavesResumedWorkOut(t *testing.T) {
	var log bytes.Buffer
	tick := time.Unix(0, 0)
	opts := RunOptions{Out: t.TempDir(), Log: io.Discard, Progress: &log, BarOptions: []progress.Option{
		progress.WithTerminal(false), progress.WithInterval(time.Nanosecond),
		progress.WithClock(func() time.Time { tick = tick.Add(time.Second); return tick })}}
	if err := Run(context.Background(), mustDecode(testYAML), resumedFake{costFake{&fakeRunner{}}}, opts); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	last := lines[len(lines)-1]
	var mm, ss int
	var rate float64
	_, after, _ := strings.Cut(last, "80/80 [")
	if _, err := fmt.Sscanf(after, "%d:%d<", &mm, &ss); err != nil {
		t.Fatalf("last line %q: no elapsed time (%v)", last, err)
	}
	_, r, _ := strings.Cut(after, ", ")
	unit := ""
	if _, err := fmt.Sscanf(r, "%g %s", &rate, &unit); err != nil {
		t.Fatalf("last line %q: no rate (%v)", last, err)
	}
	if strings.HasPrefix(unit, "s/") {
		rate = 1 / rate
	}
	el := float64(60*mm + ss)
	if work := rate * el; math.Abs(work-32) > 0.5 {
		t.Errorf("last line %q: rate × elapsed = %.1f calls, want the 32 done in this run (not 80)", last, work)
	}
}

// TestPartialReport: a look at a table midway. With two SR4 DDRM cells
// (seed 1 of both sweep points) still to run, the strict report names
// them missing; the partial one writes their entries "pending (1 of 2
// seeds)", averages none of their seeds, says how many cells are left,
// names no winner in the SR4 column (the pending row might lead) and
// still names Box's.
func TestPartialReport(t *testing.T) {
	e := mustDecode(testYAML)
	dir := t.TempDir()
	var log bytes.Buffer
	if err := Run(context.Background(), e, &fakeRunner{}, quiet(dir, &log)); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(filepath.Join(dir, TableMD))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(full), "**") {
		t.Fatalf("the full table names no winner, so the test cannot see one withheld:\n%s", full)
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, c := range cells {
		if c.Method.Name == "ddrm" && c.Task.Name == "sr4" && c.Seed == 1 {
			if err := os.Remove(resultPath(filepath.Join(dir, CellsDir), c.ID)); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed != 2 || len(cells) != 16 {
		t.Fatalf("removed %d of %d cells, want 2 of 16", removed, len(cells))
	}
	if err := WriteReports(e, dir); err == nil || !strings.Contains(err.Error(), "2 of 16 cells have no usable result") {
		t.Errorf("strict report with 2 cells missing: %v", err)
	}
	n, err := WritePartialReports(e, dir)
	if err != nil || n != 2 {
		t.Fatalf("partial report: %d pending, %v (want 2)", n, err)
	}
	md, err := os.ReadFile(filepath.Join(dir, TableMD))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"**Partial report: 2 of 16 cells are still to run.**",
		"| ddrm (scale=0.1) | pending (1 of 2 seeds) |",
		"| ddrm (scale=1) | pending (1 of 2 seeds) |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("partial table.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(string(md), "## Diverged") {
		t.Errorf("pending entries listed as diverged:\n%s", md)
	}
	// Each metric table's rows: the SR4 entry (first column) is never bold,
	// and Box's winner still is, in PSNR's table.
	sawBoxWinner := false
	for _, l := range strings.Split(string(md), "\n") {
		f := strings.Split(l, "|")
		if len(f) < 4 || !strings.HasPrefix(l, "| ") {
			continue
		}
		if strings.Contains(f[2], "**") {
			t.Errorf("SR4 names a winner while an entry is pending: %q", l)
		}
		sawBoxWinner = sawBoxWinner || strings.Contains(f[3], "**")
	}
	if !sawBoxWinner {
		t.Errorf("no Box winner in the partial table:\n%s", md)
	}
	csv, _ := os.ReadFile(filepath.Join(dir, ResultsCSV))
	for _, c := range cells {
		if c.Method.Name == "ddrm" && c.Task.Name == "sr4" && c.Seed == 0 && strings.Contains(string(csv), c.ID) {
			t.Errorf("results.csv holds cell %s of a pending entry", c.ID)
		}
	}
	// Every cell pending: an error, not an empty table.
	if _, err := WritePartialReports(e, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no cell has a result") {
		t.Errorf("partial report of no cells: %v", err)
	}
}

// TestSecondsPerBatchNoError: a runner that times its cell as a whole gives
// every image the same seconds (0.1, whose mean is off by an ulp, so the
// computed error is not exactly zero); their spread is not a timing error, so
// the seconds table prints none (and says why), while PSNR keeps its ±.
func TestSecondsPerBatchNoError(t *testing.T) {
	e := mustDecode(`
name: timing
dataset: {name: mnist-test, n: 3}
tasks: [{name: sr4, label: SR4}]
methods: [{name: dps, label: DPS}, {name: ddrm, label: DDRM}]
seeds: [0]
metrics: [psnr, seconds]
grid: {images: 0}
`)
	r := CellRunnerFunc(func(ctx context.Context, c Cell, p func(int, int)) (*CellResult, error) {
		res := &CellResult{}
		for i := range c.Dataset.N {
			res.Images = append(res.Images, ImageMetrics{Index: i, Values: map[string]float64{"psnr": 20 + float64(i), "seconds": 0.1}})
		}
		return res, nil
	})
	dir := t.TempDir()
	var log bytes.Buffer
	if err := Run(context.Background(), e, r, quiet(dir, &log)); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, TableMD))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| DPS | 21.00 ± 0.58 |", "| DDRM | 0.10 |", "Seconds without an error were timed per cell or batch"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("table.md lacks %q:\n%s", want, md)
		}
	}
}
