package experiment

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// presetResolver stands in for cmd/diffinv's: each task's settings come
// from presets (task name → lines), as a task preset folder would give.
func presetResolver(presets map[string][]string) func(Cell) ([]string, error) {
	return func(c Cell) ([]string, error) { return presets[c.Task.Name], nil }
}

// TestResumeRecomputesAfterPresetChange covers issue 19 item 1: a result
// is reused only while the cell's task preset resolves to the same
// settings. Editing the sr4 preset (×4 → ×2) makes exactly sr4's cells new,
// where before the ×4 numbers were reported for ×2.
func TestResumeRecomputesAfterPresetChange(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	opts := quiet(out, &log)
	opts.Resume = true
	presets := map[string][]string{
		"sr4":         {"measurement.operator.factor: 4", "solver.scale: 0.3"},
		"inpaint-box": {"measurement.operator.name: inpaint_box"},
	}
	e := mustDecode(testYAML)
	e.Resolver = presetResolver(presets)
	runFake(t, e, &fakeRunner{}, opts)

	for _, tc := range []struct {
		name    string
		presets map[string][]string
		want    int // cells recomputed (16 in all, 8 per task)
	}{
		{"unchanged", presets, 0},
		{"same lines in another order", map[string][]string{"sr4": {"solver.scale: 0.3", "measurement.operator.factor: 4"}, "inpaint-box": presets["inpaint-box"]}, 0},
		{"operator parameter", map[string][]string{"sr4": {"measurement.operator.factor: 2", "solver.scale: 0.3"}, "inpaint-box": presets["inpaint-box"]}, 8},
		{"solver default", map[string][]string{"sr4": {"measurement.operator.factor: 4", "solver.scale: 1"}, "inpaint-box": presets["inpaint-box"]}, 8},
		{"noise", map[string][]string{"sr4": presets["sr4"], "inpaint-box": {"measurement.operator.name: inpaint_box", "measurement.noise.sigma: 0.1"}}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Work on a copy, so each case starts from the first run's results.
			dir := filepath.Join(t.TempDir(), "out")
			if err := os.CopyFS(dir, os.DirFS(out)); err != nil {
				t.Fatal(err)
			}
			o := opts
			o.Out = dir
			e := mustDecode(testYAML)
			e.Resolver = presetResolver(tc.presets)
			f := &fakeRunner{}
			runFake(t, e, f, o)
			if len(f.calls) != tc.want {
				t.Errorf("resume recomputed %d cells, want %d", len(f.calls), tc.want)
			}
		})
	}

	// The resolved settings are recorded, and a result whose recorded
	// settings differ from the cell's is not used even under its ID.
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadResult(filepath.Join(out, CellsDir), cells[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Resolved, ";") != "measurement.operator.factor: 4;solver.scale: 0.3" {
		t.Errorf("stored resolved settings %q", s.Resolved)
	}
	c := cells[0]
	c.Resolved = []string{"measurement.operator.factor: 2"}
	if _, err := loadResult(filepath.Join(out, CellsDir), c); err == nil || !strings.Contains(err.Error(), "settings") {
		t.Errorf("mismatched settings: %v, want an error", err)
	}
}

// toLegacy rewrites a stored result as an identity-2 cell of store
// version 1, as the code before issue 19 wrote it.
func toLegacy(t *testing.T, cdir string, c Cell) {
	t.Helper()
	b, err := os.ReadFile(resultPath(cdir, c.ID))
	if err != nil {
		t.Fatal(err)
	}
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	old := legacyID(c)
	if g := s.Grid; g != nil {
		for _, st := range []*storedStrip{g.Truth, g.Y, g.Recon} {
			if st == nil {
				continue
			}
			nf := old + strings.TrimPrefix(st.File, c.ID)
			if err := os.Rename(filepath.Join(cdir, st.File), filepath.Join(cdir, nf)); err != nil {
				t.Fatal(err)
			}
			st.File = nf
		}
	}
	s.Version, s.ID, s.Resolved = 1, old, nil
	nb, _ := json.Marshal(s)
	if err := os.WriteFile(resultPath(cdir, old), nb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(resultPath(cdir, c.ID)); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateAdoptsLegacyResults: results stored under identity 2 are not
// reused by --resume (it cannot know their preset), Run says how to adopt
// them, and Migrate renames them to the current IDs with their grids, after
// which resume runs nothing and the reports are the same.
func TestMigrateAdoptsLegacyResults(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	opts := quiet(out, &log)
	e := mustDecode(testYAML)
	e.Resolver = presetResolver(map[string][]string{"sr4": {"measurement.operator.factor: 4"}})
	runFake(t, e, &fakeRunner{}, opts)
	table, err := os.ReadFile(filepath.Join(out, "table.md"))
	if err != nil {
		t.Fatal(err)
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	cdir := filepath.Join(out, CellsDir)
	for _, c := range cells[:10] {
		toLegacy(t, cdir, c)
	}
	if _, done, err := Status(e, out); err != nil || len(done) != 6 {
		t.Fatalf("status with 10 legacy results: %d done, %v; want 6", len(done), err)
	}

	// Resume would recompute them, and says so.
	dry := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dry, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	o := opts
	o.Out, o.Resume = dry, true
	f := &fakeRunner{}
	runFake(t, e, f, o)
	if len(f.calls) != 10 || !strings.Contains(log.String(), "10 of the cells to run have results stored under the old cell identity") {
		t.Errorf("resume over legacy results ran %d cells (want 10); log:\n%s", len(f.calls), log.String())
	}

	var mlog bytes.Buffer
	n, err := Migrate(e, out, &mlog)
	if err != nil || n != 10 {
		t.Fatalf("Migrate = %d, %v; want 10 adopted\n%s", n, err, mlog.String())
	}
	if n, err := Migrate(e, out, nil); err != nil || n != 0 {
		t.Errorf("second Migrate = %d, %v; want 0", n, err)
	}
	if _, done, err := Status(e, out); err != nil || len(done) != len(cells) {
		t.Fatalf("after migrating: %d of %d done, %v", len(done), len(cells), err)
	}
	ents, _ := os.ReadDir(cdir)
	for _, en := range ents {
		for _, c := range cells[:10] {
			if strings.HasPrefix(en.Name(), legacyID(c)) {
				t.Errorf("legacy file %s left behind", en.Name())
			}
		}
	}
	o.Out = out
	f = &fakeRunner{}
	runFake(t, e, f, o)
	if len(f.calls) != 0 {
		t.Errorf("resume after migrating ran %d cells, want 0", len(f.calls))
	}
	if again, _ := os.ReadFile(filepath.Join(out, "table.md")); !bytes.Equal(again, table) {
		t.Errorf("table.md changed by the migration")
	}
}

// TestCheckpointMustBeRegularFile covers issue 19 item 10: "checkpoint:
// /dev/zero" (or a pipe, or a folder) hung forever hashing, --dry-run too;
// now expanding the cells is an error naming it.
func TestCheckpointMustBeRegularFile(t *testing.T) {
	paths := []string{"/dev/zero", t.TempDir()}
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		paths = append(paths, fifo)
	}
	for _, p := range paths {
		e := mustDecode(testYAML)
		if err := e.Set("checkpoint=" + p); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Cells(); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "want a regular file") {
			t.Errorf("checkpoint %s: %v, want an error naming it", p, err)
		}
	}
}
