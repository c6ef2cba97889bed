package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffinv/diffinv/internal/dirlock"
)

// Environment of the helper process (TestHelperProcess).
const (
	envHelper  = "DIFFINV_EXPERIMENT_HELPER"
	envOut     = "DIFFINV_EXPERIMENT_OUT"
	envCount   = "DIFFINV_EXPERIMENT_COUNT"
	envBlockAt = "DIFFINV_EXPERIMENT_BLOCK_AT"
)

// TestHelperProcess is not a test: TestKillResume re-executes the test
// binary to run it as the experiment process it kills.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process for TestKillResume")
	}
	blockAt, _ := strconv.Atoi(os.Getenv(envBlockAt))
	f := &fakeRunner{countFile: os.Getenv(envCount), blockAt: blockAt}
	var log bytes.Buffer
	if err := Run(context.Background(), mustDecode(testYAML), f, quiet(os.Getenv(envOut), &log)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(0)
}

func countLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// TestKillResume kills (SIGKILL) an experiment process while its third
// cell runs, resumes in this process, and checks that the two finished
// cells were not recomputed and that every output equals an uninterrupted
// run's.
func TestKillResume(t *testing.T) {
	dir := t.TempDir()
	out, count := filepath.Join(dir, "killed"), filepath.Join(dir, "count")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), envHelper+"=1", envOut+"="+out, envCount+"="+count, envBlockAt+"=3")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(20 * time.Second)
wait:
	for len(countLines(count)) < 3 {
		select {
		case err := <-exited:
			t.Fatalf("helper exited before its third cell: %v\n%s", err, stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("helper did not reach its third cell in 20 s\n%s", stderr.String())
		case <-time.After(10 * time.Millisecond):
			continue wait
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatal("helper exited cleanly, want killed")
	}
	killedCalls := countLines(count)
	if len(killedCalls) != 3 {
		t.Fatalf("helper ran %d cells before the kill, want 3", len(killedCalls))
	}
	stored, _ := filepath.Glob(filepath.Join(out, CellsDir, "*.json"))
	if len(stored) != 2 {
		t.Fatalf("%d stored cells after the kill, want the 2 finished ones", len(stored))
	}
	if _, err := os.Stat(filepath.Join(out, TableMD)); !os.IsNotExist(err) {
		t.Errorf("table.md exists after the kill: %v", err)
	}

	// Resume in this process, counting into the same file.
	e := mustDecode(testYAML)
	var log bytes.Buffer
	opts := quiet(out, &log)
	opts.Resume = true
	runFake(t, e, &fakeRunner{countFile: count}, opts)
	cells, _ := e.Cells()
	calls := map[string]int{}
	for _, id := range countLines(count) {
		calls[id]++
	}
	for i, c := range cells {
		want := 1
		if c.ID == killedCalls[2] {
			want = 2 // started in the killed run, redone on resume
		}
		if calls[c.ID] != want {
			t.Errorf("cell %d %s ran %d times, want %d", i, c.ID, calls[c.ID], want)
		}
	}
	if !strings.Contains(log.String(), "2 done, 14 to run") {
		t.Errorf("resume log lacks the done/to-run counts:\n%s", log.String())
	}

	// An uninterrupted run gives the same outputs.
	ref := filepath.Join(dir, "ref")
	runFake(t, mustDecode(testYAML), &fakeRunner{}, quiet(ref, &log))
	compareOutputs(t, ref, out)
	if tmp, _ := filepath.Glob(filepath.Join(out, "*", ".*tmp*")); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// compareOutputs checks that two output folders hold the same files with
// the same bytes, except that cell JSONs are compared without their wall
// time.
func compareOutputs(t *testing.T, a, b string) {
	t.Helper()
	list := func(root string) []string {
		var fs []string
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() && info.Name() != dirlock.FileName { // the lock file is no output
				r, _ := filepath.Rel(root, p)
				fs = append(fs, r)
			}
			return nil
		})
		sort.Strings(fs)
		return fs
	}
	fa, fb := list(a), list(b)
	if !reflect.DeepEqual(fa, fb) {
		t.Fatalf("file lists differ:\n%v\n%v", fa, fb)
	}
	if len(fa) < 16+3 {
		t.Fatalf("only %d files: %v", len(fa), fa)
	}
	for _, f := range fa {
		ba, _ := os.ReadFile(filepath.Join(a, f))
		bb, _ := os.ReadFile(filepath.Join(b, f))
		if strings.HasSuffix(f, ".json") {
			var sa, sb stored
			if err := json.Unmarshal(ba, &sa); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(bb, &sb); err != nil {
				t.Fatal(err)
			}
			// Measurements of the machine, not results.
			sa.WallSeconds, sb.WallSeconds = 0, 0
			sa.Usage, sb.Usage = nil, nil
			if !reflect.DeepEqual(sa, sb) {
				t.Errorf("%s differs", f)
			}
			continue
		}
		if strings.HasSuffix(f, ".md") {
			ba, bb = dropMachineUse(ba), dropMachineUse(bb)
		}
		if !bytes.Equal(ba, bb) {
			t.Errorf("%s differs between the resumed and the uninterrupted run", f)
		}
	}
}

// dropMachineUse removes the report's line on the machine's use while the
// cells were timed (usageNote), which measures the machine, not the cells.
func dropMachineUse(md []byte) []byte {
	var keep []string
	for _, l := range strings.Split(string(md), "\n") {
		if !strings.HasPrefix(l, "Machine use while timed:") {
			keep = append(keep, l)
		}
	}
	return []byte(strings.Join(keep, "\n"))
}
