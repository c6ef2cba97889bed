package experiment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestParseShard(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Shard
		ok   bool
	}{{"0/4", Shard{0, 4}, true}, {"3/4", Shard{3, 4}, true}, {" 1 / 2 ", Shard{1, 2}, true},
		{"4/4", Shard{}, false}, {"-1/3", Shard{}, false}, {"1/0", Shard{}, false}, {"2", Shard{}, false}, {"a/b", Shard{}, false}} {
		got, err := ParseShard(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseShard(%q) = %v, %v", c.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "want K/N with 0 ≤ K < N") {
			t.Errorf("ParseShard(%q) error %v", c.in, err)
		}
	}
}

// TestAssignBalanced: every cell goes to exactly one shard, the assignment
// does not depend on the cells' order, and costs are balanced (one heavy
// cell gets a shard to itself).
func TestAssignBalanced(t *testing.T) {
	cells, err := mustDecode(testYAML).Cells()
	if err != nil {
		t.Fatal(err)
	}
	heavy := cells[0].ID
	cost := func(c Cell) float64 {
		if c.ID == heavy {
			return 100
		}
		return 1
	}
	a := Assign(cells, 3, cost)
	rev := append([]Cell(nil), cells...)
	sort.Slice(rev, func(i, j int) bool { return rev[i].ID > rev[j].ID })
	b := Assign(rev, 3, cost)
	load := make([]float64, 3)
	for _, c := range cells {
		if a[c.ID] != b[c.ID] {
			t.Fatalf("cell %s: shard %d or %d depending on order", c.ID, a[c.ID], b[c.ID])
		}
		load[a[c.ID]] += cost(c)
	}
	for k, c := range cells {
		if k > 0 && a[c.ID] == a[heavy] && c.ID != heavy {
			t.Errorf("cell %s shares the heavy cell's shard", c.ID)
		}
	}
	if d := load[1] - load[2]; a[heavy] == 0 && (d > 1 || d < -1) {
		t.Errorf("light shards' loads %v differ by more than one cell", load)
	}
}

// TestShardsEqualOneRun: three shards run in any order (one of them twice)
// into one folder give the files of one uninterrupted run, each cell run
// once.
func TestShardsEqualOneRun(t *testing.T) {
	var log bytes.Buffer
	ref := t.TempDir()
	runFake(t, mustDecode(testYAML), &fakeRunner{}, quiet(ref, &log))
	out := t.TempDir()
	f := &fakeRunner{}
	for _, k := range []int{2, 0, 2, 1} {
		opts := quiet(out, &log)
		opts.Resume, opts.Shard = true, Shard{Index: k, Count: 3}
		runFake(t, mustDecode(testYAML), f, opts)
	}
	seen := map[string]int{}
	for _, id := range f.calls {
		seen[id]++
	}
	cells, _ := mustDecode(testYAML).Cells()
	for _, c := range cells {
		if seen[c.ID] != 1 {
			t.Errorf("cell %s ran %d times, want once", c.ID, seen[c.ID])
		}
	}
	compareOutputs(t, ref, out)
}

// TestClaims: a cell claimed by a live process is skipped by a shard and
// named in its log; a claim left by a dead process (untouched for
// ClaimStale) is taken over; a finished cell leaves no claim behind.
func TestClaims(t *testing.T) {
	out := t.TempDir()
	cdir := filepath.Join(out, CellsDir)
	os.MkdirAll(cdir, 0o755)
	e := mustDecode(testYAML)
	cells, _ := e.Cells()
	own := Assign(cells, 1, nil)
	_ = own
	live, dead := cells[0].ID, cells[1].ID
	os.WriteFile(claimPath(cdir, live), []byte("host other pid 1\n"), 0o644)
	os.WriteFile(claimPath(cdir, dead), []byte("host gone pid 2\n"), 0o644)
	old := time.Now().Add(-2 * ClaimStale)
	os.Chtimes(claimPath(cdir, dead), old, old)

	var log bytes.Buffer
	f := &fakeRunner{}
	opts := quiet(out, &log)
	opts.Resume, opts.Shard = true, Shard{Index: 0, Count: 1}
	runFake(t, e, f, opts)
	for _, id := range f.calls {
		if id == live {
			t.Errorf("ran %s, claimed by a live process", live)
		}
	}
	ranDead := false
	for _, id := range f.calls {
		ranDead = ranDead || id == dead
	}
	if !ranDead {
		t.Errorf("did not take over the stale claim of %s", dead)
	}
	if !strings.Contains(log.String(), live) || !strings.Contains(log.String(), "claimed by another process (host other pid 1)") {
		t.Errorf("log does not name the live claim:\n%s", log.String())
	}
	if left, _ := filepath.Glob(filepath.Join(cdir, "*.claim")); len(left) != 1 || !strings.Contains(left[0], live) {
		t.Errorf("claims left: %v, want only the live one", left)
	}
	// The holder finishes (its claim gone): the next run computes the cell.
	os.Remove(claimPath(cdir, live))
	f = &fakeRunner{}
	runFake(t, e, f, opts)
	if len(f.calls) != 1 || f.calls[0] != live {
		t.Errorf("after the claim was released ran %v, want only %s", f.calls, live)
	}
	// A claim of a process of this host that is gone is taken back at
	// once (a shard killed and restarted here).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	host, _ := os.Hostname()
	os.WriteFile(claimPath(cdir, "dead"), []byte(fmt.Sprintf("host %s pid %d since now\n", host, cmd.Process.Pid)), 0o644)
	if c, err := takeClaim(cdir, "dead"); err != nil {
		t.Errorf("claim of a dead local process: %v, want it taken over", err)
	} else {
		c.release()
	}
	os.WriteFile(claimPath(cdir, "alive"), []byte(fmt.Sprintf("host %s pid %d since now\n", host, os.Getpid())), 0o644)
	if _, err := takeClaim(cdir, "alive"); !errors.Is(err, errClaimed) {
		t.Errorf("claim of a live local process: %v, want errClaimed", err)
	}
	if _, err := takeClaim(cdir, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := takeClaim(cdir, "x"); !errors.Is(err, errClaimed) {
		t.Errorf("second claim of x: %v, want errClaimed", err)
	}
}
