package experiment

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func ids(t *testing.T, e *Experiment) map[string]Cell {
	t.Helper()
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Cell{}
	for _, c := range cells {
		m[c.ID] = c
	}
	return m
}

func TestCellsCountsAndOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(e *Experiment) error
		count int
	}{
		{"file", func(e *Experiment) error { return nil }, 2 * 2 * 2 * 2},
		{"no sweep", func(e *Experiment) error { e.Sweep = nil; return nil }, 2 * 2 * 2},
		{"second axis", func(e *Experiment) error { return e.AddSweep("task.sigma=0,0.1,0.2") }, 2 * 2 * 2 * 3 * 2},
		{"three seeds", func(e *Experiment) error { return e.Set("seeds=1,2,3") }, 2 * 2 * 2 * 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustDecode(testYAML)
			if err := tc.edit(e); err != nil {
				t.Fatal(err)
			}
			cells, err := e.Cells()
			if err != nil {
				t.Fatal(err)
			}
			if len(cells) != tc.count {
				t.Fatalf("%d cells, want %d", len(cells), tc.count)
			}
			seen := map[string]bool{}
			for i, c := range cells {
				if c.Index != i {
					t.Errorf("cell %d has Index %d", i, c.Index)
				}
				if seen[c.ID] {
					t.Errorf("duplicate ID %s", c.ID)
				}
				seen[c.ID] = true
			}
		})
	}
	cells, _ := mustDecode(testYAML).Cells()
	// Expansion order: tasks, methods, sweep, seeds (innermost).
	c0, c1, c2, c4 := cells[0], cells[1], cells[2], cells[4]
	if c0.Task.Name != "sr4" || c0.Method.Name != "dps" || c0.Seed != 0 || c0.Method.Set["scale"] != 0.1 {
		t.Errorf("cell 0: %+v", c0)
	}
	if c1.Seed != 1 || c1.Method.Set["scale"] != 0.1 {
		t.Errorf("cell 1: %+v", c1)
	}
	if c2.Seed != 0 || c2.Method.Set["scale"] != 1 || c2.Method.Set["bonus"] != 1 {
		t.Errorf("cell 2: %+v", c2)
	}
	if c4.Method.Name != "ddrm" || c4.Task.Name != "sr4" {
		t.Errorf("cell 4: %+v", c4)
	}
	if c2.SweepLabel() != "scale=1" || len(c2.Sweep) != 1 {
		t.Errorf("sweep label %q", c2.SweepLabel())
	}
	if c0.GridImages != 2 || c0.Dataset.Offset != 5 || c0.Checkpoint != "ckpt.safetensors" {
		t.Errorf("cell 0 settings %+v", c0)
	}
	// The file's sets are not modified by the sweep.
	e := mustDecode(testYAML)
	e.Cells()
	if _, ok := e.Methods[0].Set["scale"]; ok {
		t.Error("expansion wrote into the experiment's method set")
	}
	idPat := regexp.MustCompile(`^sr4_dps_s0_[0-9a-f]{12}$`)
	if !idPat.MatchString(c0.ID) {
		t.Errorf("ID %q does not match %v", c0.ID, idPat)
	}
}

// TestCellIDStability: a cell's ID depends on its settings only, so resume
// recognises finished cells after the file changes around them.
func TestCellIDStability(t *testing.T) {
	base := ids(t, mustDecode(testYAML))
	for _, tc := range []struct {
		name string
		edit func(e *Experiment) error
		same bool // every base cell keeps its ID
	}{
		{"add seed", func(e *Experiment) error { return e.Set("seeds=0,1,7") }, true},
		{"add task", func(e *Experiment) error { e.Tasks = append(e.Tasks, Task{Name: "deblur"}); return nil }, true},
		{"add method first", func(e *Experiment) error {
			e.Methods = append([]Method{{Name: "pigdm"}}, e.Methods...)
			return nil
		}, true},
		{"add metric", func(e *Experiment) error { return e.Set("metrics=psnr") }, true},
		{"relabel", func(e *Experiment) error { return e.Set("methods.DPS.label=Diffusion posterior sampling") }, true},
		{"grid", func(e *Experiment) error { return e.Set("grid.images=0") }, true},
		{"int vs float", func(e *Experiment) error { return e.Set("methods.DPS.set.bonus=1.0") }, true},
		{"sweep value as set", func(e *Experiment) error {
			// scale=0.1 moved from the sweep into the sets and back as
			// a one-value sweep gives the same cells.
			e.Sweep = map[string][]any{"solver.scale": {0.1}}
			return nil
		}, true},
		{"change set", func(e *Experiment) error { return e.Set("methods.DPS.set.bonus=2") }, false},
		{"change task set", func(e *Experiment) error { return e.Set("task.sigma=0.05") }, false},
		{"change n", func(e *Experiment) error { return e.Set("dataset.n=4") }, false},
		{"change offset", func(e *Experiment) error { return e.Set("dataset.offset=0") }, false},
		{"change checkpoint", func(e *Experiment) error { return e.Set("checkpoint=other") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustDecode(testYAML)
			if err := tc.edit(e); err != nil {
				t.Fatal(err)
			}
			got := ids(t, e)
			kept := 0
			for id := range base {
				if _, ok := got[id]; ok {
					kept++
				}
			}
			switch {
			case tc.name == "sweep value as set":
				// Only the scale=0.1 half of the cells remains.
				if kept != len(base)/2 || len(got) != len(base)/2 {
					t.Errorf("kept %d of %d, got %d cells; want %d, %d", kept, len(base), len(got), len(base)/2, len(base)/2)
				}
			case tc.same && kept != len(base):
				t.Errorf("kept %d of %d IDs, want all", kept, len(base))
			case !tc.same && tc.name == "change set":
				// Only DPS cells change.
				if kept != len(base)/2 {
					t.Errorf("kept %d of %d IDs, want the ddrm half", kept, len(base))
				}
			case !tc.same && tc.name == "change task set":
				// sr4 already had sigma 0.05: only inpaint-box changes.
				if kept != len(base)/2 {
					t.Errorf("kept %d of %d IDs, want the sr4 half", kept, len(base))
				}
			case !tc.same && !strings.HasPrefix(tc.name, "change s") && !strings.HasPrefix(tc.name, "change t") && kept != 0:
				t.Errorf("kept %d of %d IDs, want none", kept, len(base))
			}
		})
	}
}

// TestCellIDCheckpointContent: an existing checkpoint enters the cell IDs by
// its content: the same bytes under another path keep every ID, other bytes
// at the same path change every ID, and a path that is not a file falls
// back to the path (version-1 IDs, unchanged from before content hashing).
func TestCellIDCheckpointContent(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	withCkpt := func(path string) map[string]Cell {
		e := mustDecode(testYAML)
		if err := e.Set("checkpoint=" + path); err != nil {
			t.Fatal(err)
		}
		return ids(t, e)
	}
	a := withCkpt(write("a.safetensors", "weights v1"))
	moved := withCkpt(write("moved/../b.safetensors", "weights v1"))
	for id, c := range a {
		if _, ok := moved[id]; !ok {
			t.Errorf("cell %s (%s) lost its ID when the same checkpoint bytes moved", id, c.Task.Key())
		}
		if len(c.CheckpointSHA256) != 64 {
			t.Errorf("cell %s: checkpoint digest %q, want 64 hex digits", id, c.CheckpointSHA256)
		}
	}
	retrained := withCkpt(write("a.safetensors", "weights v2"))
	for id := range retrained {
		if _, ok := a[id]; ok {
			t.Errorf("cell %s kept its ID after the checkpoint's content changed", id)
		}
	}
	// A missing file: the path stands in, as before (the testYAML cells'
	// IDs are the pre-content ones).
	missing := withCkpt(filepath.Join(dir, "none.safetensors"))
	other := withCkpt(filepath.Join(dir, "none2.safetensors"))
	for id, c := range missing {
		if c.CheckpointSHA256 != "" {
			t.Errorf("cell %s: digest %q for a missing file, want empty", id, c.CheckpointSHA256)
		}
		if _, ok := other[id]; ok {
			t.Errorf("cell %s: two missing checkpoint paths share IDs, want the path in the ID", id)
		}
	}
	// A checkpoint path that exists but cannot be read as a file is an error.
	e := mustDecode(testYAML)
	if err := e.Set("checkpoint=" + dir); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Cells(); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("checkpoint is a folder: err = %v, want a checkpoint error", err)
	}
}
