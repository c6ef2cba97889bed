package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/experiment"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/task"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/prior"
	"github.com/diffinv/diffinv/train"
)

// tinyCheckpoint writes an untrained 28-px UNet with its run config.
func tinyCheckpoint(t *testing.T) string {
	t.Helper()
	return tinyCheckpointOf(t, nil)
}

// tinyCheckpointOf writes an untrained 8-channel UNet (20 diffusion and
// sampling steps) with its run config, 28 px gray unless edit changes the
// config first.
func tinyCheckpointOf(t *testing.T, edit func(*config.Config)) string {
	t.Helper()
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 28, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{14}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Diffusion.Steps = 20
	cfg.Sample.Steps = 20
	if edit != nil {
		edit(&cfg)
	}
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := cfg.YAML()
	p := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := net.Save(p, map[string]string{train.MetaRunConfig: string(doc)}); err != nil {
		t.Fatal(err)
	}
	return p
}

// stringConfig is how the runner built a cell's config before typed
// layers: every setting printed with %v and parsed again as --set text.
func stringConfig(t *testing.T, r *Runner, cell experiment.Cell) (*config.Config, map[string]any) {
	t.Helper()
	base, err := r.Config(cell.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	preset, err := task.LoadVariant(cell.Task.Name, r.TasksDir, task.Variant(*base))
	if err != nil {
		t.Fatal(err)
	}
	sorted := func(m map[string]any) []string {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	sets := []string{"solver.method=" + cell.Method.Name}
	for _, k := range sorted(cell.Task.Set) {
		sets = append(sets, fmt.Sprintf("%s=%v", k, cell.Task.Set[k]))
	}
	for _, k := range sorted(cell.Method.Set) {
		sets = append(sets, fmt.Sprintf("solver.%s=%v", k, cell.Method.Set[k]))
	}
	cfg, err := config.LoadOnto(*base, config.Sources{Presets: []config.Preset{preset.Config}, Sets: sets})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, preset.Defaults(cell.Method.Name)
}

// TestLayerKeepsTypes: a cell's settings reach its config as the file typed
// them. A string option that looks like a number stays a string in the
// cell's resolved settings (and so in its identity), where the old
// "key=value" round trip turned it into the number 0.001; settings as the
// committed experiment files write them (numbers, 1.0, names) resolve to
// the same lines as through the round trip, so cell IDs stay.
func TestLayerKeepsTypes(t *testing.T) {
	r := &Runner{TasksDir: "../../configs/tasks"}
	ckpt := tinyCheckpoint(t)

	odd := experiment.Cell{Checkpoint: ckpt, Task: experiment.Task{Name: "sr4"},
		Method: experiment.Method{Name: "dps", Set: map[string]any{"note": "1e-3", "scale": math.Nextafter(0.3, 1)}}}
	got, err := r.ResolveCell(odd)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, `solver.note: "1e-3"`) || !slices.Contains(got, "solver.scale: 0.30000000000000004") {
		t.Errorf("resolved settings lose the types:\n%s", strings.Join(got, "\n"))
	}
	cfg, def := stringConfig(t, r, odd)
	if old := ResolvedSettings(cfg, def); !slices.Contains(old, "solver.note: 0.001") {
		t.Errorf("the string round trip kept the string (the test's premise is gone):\n%s", strings.Join(old, "\n"))
	}

	for _, cell := range []experiment.Cell{
		{Task: experiment.Task{Name: "sr4", Set: map[string]any{"measurement.noise.sigma": 0.2}},
			Method: experiment.Method{Name: "ddnm", Set: map[string]any{"steps": 100, "eta": 0.85}}},
		{Task: experiment.Task{Name: "sr4", Set: map[string]any{"measurement.operator.name": "sr_avgpool", "measurement.noise.name": "clean"}},
			Method: experiment.Method{Name: "ddrm", Set: map[string]any{"steps": 20, "eta": 0.85, "eta_b": 1.0}}},
		{Task: experiment.Task{Name: "inpaint-box"}, Method: experiment.Method{Name: "dps", Set: map[string]any{"steps": 250, "scale": 1e-05}}},
		{Task: experiment.Task{Name: "cs", Set: map[string]any{"measurement.noise.sigma_01": 0.025}}, Method: experiment.Method{Name: "pinv"}},
	} {
		cell.Checkpoint = ckpt
		typed, err := r.ResolveCell(cell)
		if err != nil {
			t.Fatal(err)
		}
		cfg, def := stringConfig(t, r, cell)
		if old := ResolvedSettings(cfg, def); !slices.Equal(typed, old) {
			t.Errorf("%s/%s: typed layer resolves to\n%s\nthe string round trip to\n%s", cell.Task.Name, cell.Method.Name,
				strings.Join(typed, "\n"), strings.Join(old, "\n"))
		}
	}

	// A setting of the wrong type is still an error naming the key.
	bad := experiment.Cell{Checkpoint: ckpt, Task: experiment.Task{Name: "sr4", Set: map[string]any{"measurement.noise.sigma": "loud"}},
		Method: experiment.Method{Name: "pinv"}}
	if _, err := r.ResolveCell(bad); err == nil || !strings.Contains(err.Error(), "measurement.noise.sigma") {
		t.Errorf("a string noise sigma: %v", err)
	}
}

// TestNetworkOpenedOnce: the runner opens each checkpoint once under its
// Sources and hands it to Network (the command's engine), whatever the
// number of cells; a Network error reaches the caller.
func TestNetworkOpenedOnce(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	calls := 0
	r := &Runner{TasksDir: "../../configs/tasks", Sources: config.Sources{Sets: []string{"engine.precision=fp32"}},
		Network: func(p *prior.Prior) (diffusion.Denoiser, error) {
			calls++
			if p.Config.Engine.Precision != "fp32" {
				t.Errorf("Network got engine.precision %q, want the Sources' fp32", p.Config.Engine.Precision)
			}
			return p.Net, nil
		}}
	for _, m := range []string{"pinv", "ddnm", "dps"} {
		if err := r.ValidateCell(experiment.Cell{Checkpoint: ckpt, Task: experiment.Task{Name: "sr4"}, Method: experiment.Method{Name: m},
			Dataset: experiment.Dataset{Name: "mnist-test", N: 1}}); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	if calls != 1 {
		t.Errorf("Network called %d times for one checkpoint, want 1", calls)
	}
	failing := &Runner{TasksDir: "../../configs/tasks", Network: func(*prior.Prior) (diffusion.Denoiser, error) {
		return nil, fmt.Errorf("no such engine")
	}}
	if _, err := failing.ResolveCell(experiment.Cell{Checkpoint: ckpt, Task: experiment.Task{Name: "sr4"}, Method: experiment.Method{Name: "pinv"}}); err == nil || !strings.Contains(err.Error(), "no such engine") {
		t.Errorf("Network's error: %v", err)
	}
}

// TestResolvedRevision: a solver or operator whose results changed for the
// same settings (DPS's clamp inside the residual, blur_file's orientation)
// carries its revision in a cell's resolved settings, so results of the
// older behaviour are not reused; unchanged ones carry none.
func TestResolvedRevision(t *testing.T) {
	for _, c := range []struct {
		method, operator string
		want             []string
		absent           []string
	}{
		{"dps", "sr_bicubic", []string{"solver.revision: 2"}, []string{"measurement.operator.revision"}},
		{"mcg", "blur_file", []string{"solver.revision: 2", "measurement.operator.revision: 2"}, nil},
		{"ddnm", "sr_bicubic", nil, []string{"solver.revision", "measurement.operator.revision"}},
	} {
		cfg := config.Default()
		cfg.Solver.Method, cfg.Measurement.Operator.Name = c.method, c.operator
		got := strings.Join(ResolvedSettings(&cfg, nil), "\n")
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s/%s: resolved settings lack %q:\n%s", c.method, c.operator, w, got)
			}
		}
		for _, a := range c.absent {
			if strings.Contains(got, a) {
				t.Errorf("%s/%s: resolved settings hold %q:\n%s", c.method, c.operator, a, got)
			}
		}
	}
}

// TestRunCellKeepsBatches: a solve cell with a folder stores each solved
// batch under BatchDir; run again, it reads them back instead of solving
// (a Network that counts evaluations sees none) and gives the same result.
func TestRunCellKeepsBatches(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	evals := 0
	r := &Runner{TasksDir: "../../configs/tasks", Sources: config.Sources{Sets: []string{"engine.precision=fp32"}},
		Network: func(p *prior.Prior) (diffusion.Denoiser, error) {
			return countingDenoiser{p.Net, &evals}, nil
		},
		Images: rampImages}
	cell := experiment.Cell{ID: "c1", Checkpoint: ckpt, Task: experiment.Task{Name: "sr4"},
		Method:  experiment.Method{Name: "ddnm", Set: map[string]any{"steps": 3, "batch_size": 2}},
		Dataset: experiment.Dataset{Name: "mnist-test", N: 5}, Dir: filepath.Join(t.TempDir(), "c1")}
	first, err := r.RunCell(context.Background(), cell, func(int, int) {})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(cell.Dir, experiment.BatchesDir, "batch-*.safetensors"))
	if len(files) != 3 || evals == 0 {
		t.Fatalf("%d batch files (want 3 batches of ≤ 2 of 5 images), %d network calls", len(files), evals)
	}
	evals = 0
	again, err := r.RunCell(context.Background(), cell, func(int, int) {})
	if err != nil {
		t.Fatal(err)
	}
	if evals != 0 {
		t.Errorf("the rerun called the network %d times; the stored batches should have served", evals)
	}
	for i := range first.Images {
		if a, b := first.Images[i].Values["psnr"], again.Images[i].Values["psnr"]; a != b {
			t.Errorf("image %d: PSNR %g first, %g from the stored batches", i, a, b)
		}
	}
}

// rampImages is an image source of 28-px gray ramps (−1 at the left edge).
func rampImages(cfg *config.Config, d experiment.Dataset) (*tensor.Dense, int, error) {
	x := tensors.New(d.N, 1, 28, 28)
	for i := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(i%28)/14 - 1
	}
	return x, d.Offset, nil
}

// countingDenoiser counts its network evaluations.
type countingDenoiser struct {
	diffusion.Denoiser
	n *int
}

func (c countingDenoiser) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	*c.n++
	return c.Denoiser.Eps(xt, t)
}

// TestRunCellDiverged: a solver that diverges (DAPS with a far too large
// lr) fails the cell with an error that wraps experiment.ErrDiverged, which
// a tuning search steps over; a cell that fails otherwise does not.
func TestRunCellDiverged(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	r := &Runner{TasksDir: "../../configs/tasks", Sources: config.Sources{Sets: []string{"engine.precision=fp32"}},
		Images: rampImages}
	for _, c := range []struct {
		set      map[string]any
		diverged bool
	}{
		{map[string]any{"steps": 3, "ode_steps": 1, "langevin_steps": 50, "lr": 1e30}, true},
		{map[string]any{"steps": 3, "ode_steps": 1, "langevin_steps": 2, "lr": 1e-4}, false},
	} {
		cell := experiment.Cell{ID: "c1", Checkpoint: ckpt, Task: experiment.Task{Name: "sr4"},
			Method:  experiment.Method{Name: "daps", Set: c.set},
			Dataset: experiment.Dataset{Name: "mnist-test", N: 1}}
		_, err := r.RunCell(context.Background(), cell, func(int, int) {})
		if c.diverged && !errors.Is(err, experiment.ErrDiverged) {
			t.Errorf("daps %v: %v, want an error wrapping experiment.ErrDiverged", c.set, err)
		}
		if !c.diverged && err != nil {
			t.Errorf("daps %v: %v", c.set, err)
		}
	}
}

// TestSolveSetupSkipsBaseline: a solver cell runs without the solve
// command's comparison baseline (HIO for phase retrieval, which costs
// three times DPS's solve per digit and which no table reads), and its
// identity does not change for it; a classical method's cell keeps its
// baseline, which is its solve, and scores a reconstruction.
func TestSolveSetupSkipsBaseline(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	r := &Runner{TasksDir: "../../configs/tasks", Sources: config.Sources{Sets: []string{"engine.precision=fp32"}},
		Images: rampImages}
	for _, c := range []struct{ task, method, auto, run string }{
		{"phase-retrieval", "dps", "hio", "none"},
		{"sr4", "ddnm", "pinv", "none"},
		{"phase-retrieval", "hio", "hio", "hio"},
		{"sr4", "pinv", "pinv", "pinv"},
	} {
		cell := experiment.Cell{ID: "c1", Checkpoint: ckpt, Task: experiment.Task{Name: c.task},
			Method: experiment.Method{Name: c.method}, Dataset: experiment.Dataset{Name: "mnist-test", N: 1}}
		plain, _, err := r.setup(cell)
		if err != nil {
			t.Fatal(err)
		}
		if plain.Baseline != c.auto {
			t.Fatalf("%s / %s: setup's baseline %q, want the solve command's %q", c.task, c.method, plain.Baseline, c.auto)
		}
		before, err := r.ResolveCell(cell)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := r.solveSetup(cell)
		if err != nil {
			t.Fatal(err)
		}
		if s.Baseline != c.run {
			t.Errorf("%s / %s: the cell would compute baseline %q, want %q", c.task, c.method, s.Baseline, c.run)
		}
		after, _ := r.ResolveCell(cell)
		if !slices.Equal(before, after) {
			t.Errorf("%s / %s: resolved settings changed: %v → %v", c.task, c.method, before, after)
		}
	}
	// The classical cell runs and scores its reconstruction.
	cell := experiment.Cell{ID: "c2", Checkpoint: ckpt, Task: experiment.Task{Name: "sr4"},
		Method: experiment.Method{Name: "pinv"}, Dataset: experiment.Dataset{Name: "mnist-test", N: 2}}
	res, err := r.RunCell(context.Background(), cell, func(int, int) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 2 {
		t.Fatalf("%d images scored, want 2", len(res.Images))
	}
	for _, im := range res.Images {
		if p := im.Values["psnr"]; math.IsNaN(p) || math.IsInf(p, 0) || p < 5 {
			t.Errorf("pinv cell image %d: PSNR %g, want a finite reconstruction's", im.Index, p)
		}
	}
}
