package main

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/experiment"
	"github.com/diffinv/diffinv/internal/dirlock"
	"github.com/diffinv/diffinv/model"
)

// mnistSizedCheckpoint writes an untrained tiny 28-px UNet whose run config
// points data.dir at generated MNIST-format files (test split included).
func mnistSizedCheckpoint(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeTinyMNIST(t, dir, 12)
	for _, n := range []string{"images-idx3-ubyte", "labels-idx1-ubyte"} {
		b, err := os.ReadFile(filepath.Join(dir, "train-"+n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "t10k-"+n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 28, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{14}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Diffusion.Steps = 20
	cfg.Sample.Steps = 20
	cfg.Data.Dir = dir
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := cfg.YAML()
	p := filepath.Join(dir, "tiny28.safetensors")
	if err := net.Save(p, map[string]string{RunConfigKey: string(doc)}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExperimentRunCommand(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "exp.yaml")
	body := `name: tiny
checkpoint: ` + ckpt + `
dataset: {name: mnist-test, n: 2}
tasks:
  - {name: inpaint-box, set: {measurement.noise.name: clean}}
methods:
  - {name: ddnm, set: {steps: 4}}
  - {name: pinv}
seeds: [0, 1]
metrics: [psnr, ssim, consistency, seconds]
output: ` + filepath.Join(dir, "out") + `
`
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"experiment", "run", file, "--tasks", "../../configs/tasks", "--sweep", "solver.eta=0.5,1"}
	if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "eta") {
		// pinv has no eta: the sweep applies to every method, so a clear error is right.
		t.Fatalf("sweeping a ddnm option over pinv too: %v", err)
	}
	args = args[:5]
	dry, err := run(t, append(args, "--dry-run")...)
	if err != nil || !strings.Contains(dry, "4 cells, all valid") {
		t.Fatalf("dry run: %v\n%s", err, dry)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("a dry run wrote outputs")
	}
	// The data set's name is a NAME-SPLIT of the data registry; FID/KID
	// cells on faces need the face attribute classifier, and say so.
	for _, c := range []struct{ set, want string }{
		{"dataset.name=mnist-val", "celeba-test"},
		{"metrics=psnr,fid", ""},
	} {
		extra := []string{"--set", c.set}
		if c.want == "" {
			extra = append(extra, "--set", "dataset.name=celeba-test", "--face-classifier", "no/such/classifier.safetensors")
			c.want = "face attribute classifier"
		}
		if _, err := run(t, append(append(append([]string(nil), args...), extra...), "--dry-run")...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: %v, want an error containing %q", c.set, err, c.want)
		}
	}
	if _, err := run(t, args...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.csv", "table.md", "grids/inpaint-box.png"} {
		if _, err := os.Stat(filepath.Join(dir, "out", f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	table, _ := os.ReadFile(filepath.Join(dir, "out", "table.md"))
	if !strings.Contains(string(table), "ddnm") || !strings.Contains(string(table), "pinv") {
		t.Errorf("table.md:\n%s", table)
	}
	// Again with --resume: nothing to recompute, same table.
	if _, err := run(t, append(args, "--resume")...); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "out", "table.md"))
	if string(again) != string(table) {
		t.Error("table.md changed on a resume with nothing to do")
	}
}

// TestExperimentResumeFollowsPresets covers issue 19 item 1 end to end: a
// finished cell is reused while its task preset resolves to the same
// settings (a comment or key order changes nothing), and recomputed when
// the preset's operator parameters, noise or solver defaults change, or
// --tasks points at another folder whose preset differs.
func TestExperimentResumeFollowsPresets(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t)
	dir := t.TempDir()
	tasks := filepath.Join(dir, "tasks")
	if err := os.MkdirAll(tasks, 0o755); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile("../../configs/tasks/inpaint-box.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writePreset := func(dir, body string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "inpaint-box.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePreset(tasks, string(orig))
	file := filepath.Join(dir, "exp.yaml")
	body := `name: presets
checkpoint: ` + ckpt + `
dataset: {name: mnist-test, n: 1}
tasks: [{name: inpaint-box}]
methods: [{name: pinv}, {name: dps, set: {steps: 2}}]
seeds: [0]
metrics: [psnr]
output: ` + filepath.Join(dir, "out") + `
`
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "experiment", "run", file, "--tasks", tasks); err != nil {
		t.Fatal(err)
	}
	status := func(tasksDir string) string {
		t.Helper()
		out, err := run(t, "experiment", "run", file, "--tasks", tasksDir, "--dry-run")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		last := lines[len(lines)-1]
		_, s, _ := strings.Cut(last, "; ")
		s, _, _ = strings.Cut(s, " with")
		return s
	}
	other := filepath.Join(dir, "other-tasks")
	edit := func(from, to string) string {
		if !strings.Contains(string(orig), from) {
			t.Fatalf("preset lacks %q", from)
		}
		return strings.Replace(string(orig), from, to, 1)
	}
	for _, tc := range []struct {
		name, dir, preset, want string
	}{
		{"unchanged", tasks, string(orig), "2 done, 0 to run"},
		{"comment and key order", tasks, "# edited\n" + edit("    sigma: 0.05", "    sigma: 0.05   # same"), "2 done, 0 to run"},
		{"operator parameter", tasks, edit("size: 14", "size: 10"), "0 done, 2 to run"},
		{"noise", tasks, edit("sigma: 0.05", "sigma: 0.1"), "0 done, 2 to run"},
		{"solver default", tasks, edit("dps: {scale: 0.5", "dps: {scale: 0.7"), "1 done, 1 to run"},
		{"another --tasks folder", other, edit("size: 14", "size: 12"), "0 done, 2 to run"},
		{"restored", tasks, string(orig), "2 done, 0 to run"},
	} {
		writePreset(tc.dir, tc.preset)
		if got := status(tc.dir); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// A real resume after an edit recomputes and keeps both results apart.
	writePreset(tasks, edit("size: 14", "size: 10"))
	out, err := run(t, "experiment", "run", file, "--tasks", tasks, "--resume")
	if err != nil || !strings.Contains(out, "0 done, 2 to run") {
		t.Fatalf("resume after a preset edit: %v\n%s", err, out)
	}
}

// TestExperimentCheckpointDevice covers issue 19 item 10 at the command:
// checkpoint: /dev/zero used to hang even with --dry-run.
func TestExperimentCheckpointDevice(t *testing.T) {
	file := filepath.Join(t.TempDir(), "exp.yaml")
	body := "name: dev\ncheckpoint: /dev/zero\ndataset: {name: mnist-test, n: 1}\ntasks: [{name: sr4}]\nmethods: [{name: pinv}]\nseeds: [0]\nmetrics: [psnr]\noutput: " + filepath.Dir(file) + "\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"experiment", "run", file, "--dry-run"}, {"experiment", "run", file}, {"experiment", "run", "/dev/zero"}} {
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "/dev/zero is a character device, want a regular file") {
			t.Errorf("%v: %v, want an error naming /dev/zero", args, err)
		}
	}
}

// TestExperimentMissingCheckpoint: run, tune and status name a missing
// checkpoint once, before any cell, and say what to do.
func TestExperimentMissingCheckpoint(t *testing.T) {
	file := filepath.Join(t.TempDir(), "exp.yaml")
	body := "name: nomodel\ncheckpoint: models/nope/model.safetensors\ndataset: {name: mnist-test, n: 1}\ntasks: [{name: sr4}]\nmethods: [{name: ddnm, tune: {eta: [0.5, 1]}}]\nseeds: [0]\nmetrics: [psnr]\noutput: " + filepath.Dir(file) + "\ntune: {dataset: {name: mnist-train, n: 1}}\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"run", "tune", "status"} {
		if _, err := run(t, "experiment", cmd, file); err == nil || !strings.Contains(err.Error(), "checkpoint models/nope/model.safetensors: no such file or directory (train or ship that model first") {
			t.Errorf("experiment %s: %v, want an error naming the checkpoint", cmd, err)
		}
	}
}

// TestExperimentShards: two shards of an experiment (--shard K/N) into one
// folder run every cell once between them and write the same table as one
// run; the first shard writes no report (cells still to come), the last
// does; a bad shard is an error naming the flag.
func TestExperimentShards(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "exp.yaml")
	body := `name: shards
checkpoint: ` + ckpt + `
dataset: {name: mnist-test, n: 1}
tasks: [{name: inpaint-box}, {name: sr4}]
methods: [{name: pinv}, {name: ddnm, set: {steps: 2}}]
seeds: [0]
metrics: [psnr]
output: ` + filepath.Join(dir, "one") + `
`
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "experiment", "run", file, "--tasks", "../../configs/tasks"); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "sharded")
	first, err := run(t, "experiment", "run", file, "--tasks", "../../configs/tasks", "--out", shared, "--shard", "1/2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first, "shard 1/2") || !strings.Contains(first, "no reports yet") {
		t.Errorf("first shard's output:\n%s", first)
	}
	if _, err := os.Stat(filepath.Join(shared, "table.md")); err == nil {
		t.Error("a shard wrote the table before every cell was done")
	}
	if _, err := run(t, "experiment", "run", file, "--tasks", "../../configs/tasks", "--out", shared, "--shard", "0/2"); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "one", "table.md"))
	b, err := os.ReadFile(filepath.Join(shared, "table.md"))
	if err != nil || string(a) != string(b) {
		t.Errorf("sharded table differs from one run's (%v):\n%s\n%s", err, a, b)
	}
	if _, err := run(t, "experiment", "run", file, "--shard", "2/2"); err == nil || !strings.Contains(err.Error(), "--shard") {
		t.Errorf("--shard 2/2: %v", err)
	}
}

// TestExperimentSlurm: the generated scripts are valid bash holding the
// array, the shard command, the dependent report job and the options given;
// --submit runs sbatch for the array and then the report with afterany on
// the array's ID (a fake sbatch records the calls); the report command
// writes the tables from stored cells.
func TestExperimentSlurm(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "exp.yaml")
	body := `name: slurmy
checkpoint: ` + ckpt + `
dataset: {name: mnist-test, n: 1}
tasks: [{name: inpaint-box}, {name: sr4}]
methods: [{name: pinv}, {name: ddnm, set: {steps: 2}}]
seeds: [0]
metrics: [psnr]
output: ` + filepath.Join(dir, "out") + `
`
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	fake := "#!/bin/bash\necho \"$@\" >> " + calls + "\necho 4242\n"
	if err := os.WriteFile(filepath.Join(bin, "sbatch"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	out, err := run(t, "experiment", "slurm", file, "--tasks", "../../configs/tasks", "--shards", "3", "--partition", "cpu",
		"--time", "01:30:00", "--sbatch-arg=--account=lab", "--submit")
	if err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(dir, "out", "slurm")
	array, _ := os.ReadFile(filepath.Join(sdir, "array.sbatch"))
	report, _ := os.ReadFile(filepath.Join(sdir, "report.sbatch"))
	for _, want := range []string{"#SBATCH --array=0-2", "#SBATCH --time=01:30:00", "#SBATCH --partition=cpu", "#SBATCH --account=lab",
		`experiment run ` + file, `--shard "$SLURM_ARRAY_TASK_ID/3"`} {
		if !strings.Contains(string(array), want) {
			t.Errorf("array.sbatch lacks %q:\n%s", want, array)
		}
	}
	if !strings.Contains(string(report), "experiment report "+file) {
		t.Errorf("report.sbatch:\n%s", report)
	}
	for _, f := range []string{"array.sbatch", "report.sbatch", "submit.sh"} {
		if b, err := exec.Command("bash", "-n", filepath.Join(sdir, f)).CombinedOutput(); err != nil {
			t.Errorf("%s is not valid bash: %v %s", f, err, b)
		}
	}
	got, _ := os.ReadFile(calls)
	if string(got) != "--parsable array.sbatch\n--parsable --dependency=afterany:4242 report.sbatch\n" || !strings.Contains(out, "submitted array 4242 (3 shards)") {
		t.Errorf("sbatch calls:\n%s\noutput:\n%s", got, out)
	}
	// The report job's command: an error naming missing cells, then the tables.
	if _, err := run(t, "experiment", "report", file, "--tasks", "../../configs/tasks"); err == nil || !strings.Contains(err.Error(), "no usable result") {
		t.Errorf("report before any cell: %v", err)
	}
	if _, err := run(t, "experiment", "report", file, "--tasks", "../../configs/tasks", "--partial"); err == nil || !strings.Contains(err.Error(), "no cell has a result") {
		t.Errorf("partial report before any cell: %v", err)
	}
	for k := 0; k < 3; k++ {
		if _, err := run(t, "experiment", "run", file, "--tasks", "../../configs/tasks", "--shard", fmt.Sprintf("%d/3", k)); err != nil {
			t.Fatal(err)
		}
		if k == 0 { // a look midway: shard 0's cells, the others pending
			out, err := run(t, "experiment", "report", file, "--tasks", "../../configs/tasks", "--partial")
			md, _ := os.ReadFile(filepath.Join(dir, "out", "table.md"))
			if err != nil || !strings.Contains(out, "partial reports") || !strings.Contains(string(md), "Partial report") || !strings.Contains(string(md), "| pending |") {
				t.Errorf("partial report after shard 0: %v\n%s\n%s", err, out, md)
			}
		}
	}
	os.Remove(filepath.Join(dir, "out", "table.md"))
	if _, err := run(t, "experiment", "report", file, "--tasks", "../../configs/tasks"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "table.md")); err != nil {
		t.Errorf("report wrote no table: %v", err)
	}
	if _, err := run(t, "experiment", "slurm", file, "--tasks", "../../configs/tasks"); err != nil {
		t.Errorf("default sizing: %v", err)
	}

	// Status: one result removed and claimed by a live shard, one removed
	// and claimed by a dead one, one removed: 1 done, 1 running, 1
	// abandoned, 1 left; squeue's list is shown.
	cdir := filepath.Join(dir, "out", experiment.CellsDir)
	jsons, _ := filepath.Glob(filepath.Join(cdir, "*.json"))
	if len(jsons) != 4 {
		t.Fatalf("%d cell results, want 4", len(jsons))
	}
	for i, j := range jsons[:3] {
		os.Remove(j)
		id := strings.TrimSuffix(filepath.Base(j), ".json")
		if i < 2 {
			claim := filepath.Join(cdir, id+".claim")
			os.WriteFile(claim, []byte("host x pid 1\n"), 0o644)
			if i == 1 {
				old := time.Now().Add(-time.Hour)
				os.Chtimes(claim, old, old)
			}
		}
	}
	os.WriteFile(filepath.Join(bin, "squeue"), []byte("#!/bin/bash\necho \"4242_1 diffinv-slurmy-shards RUNNING\"\n"), 0o755)
	st, err := run(t, "experiment", "status", file, "--tasks", "../../configs/tasks")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st, "4 cells: 1 done, 1 running, 0 failed, 1 abandoned, 1 left") || !strings.Contains(st, "4242_1 diffinv-slurmy-shards RUNNING") ||
		!strings.Contains(st, "network calls left; about ") || strings.Contains(st, "under way") {
		t.Errorf("status:\n%s", st)
	}
	// An unsharded run holds the folder's lock (and claims no cell).
	lock, err := dirlock.Acquire(filepath.Join(dir, "out"), "experiment run")
	if err != nil {
		t.Fatal(err)
	}
	st, err = run(t, "experiment", "status", file, "--tasks", "../../configs/tasks")
	lock.Release()
	if err != nil || !strings.Contains(st, fmt.Sprintf("under way: a run holds this folder (pid %d ", os.Getpid())) {
		t.Errorf("status while a run holds the folder: %v\n%s", err, st)
	}
	// Slurm's clients with no controller reachable: one line naming the
	// failure, and sacct is not asked.
	os.WriteFile(filepath.Join(bin, "squeue"), []byte("#!/bin/bash\necho 'squeue: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host' >&2\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "sacct"), []byte("#!/bin/bash\necho 'sacct was asked'\n"), 0o755)
	st, err = run(t, "experiment", "status", file, "--tasks", "../../configs/tasks")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st, "squeue: no Slurm jobs listed (exit status 1: slurm_load_jobs error: Unable to contact slurm controller)") ||
		strings.Contains(st, "resolve_ctls") || strings.Contains(st, "sacct was asked") {
		t.Errorf("status without a reachable controller:\n%s", st)
	}
	os.Remove(filepath.Join(bin, "sacct"))
	// The cell without a result or claim, with a failure record: failed,
	// and --list prints its error.
	failedID := strings.TrimSuffix(filepath.Base(jsons[2]), ".json")
	os.WriteFile(filepath.Join(cdir, failedID+".failed"), []byte(`{"id":"`+failedID+`","error":"denoiser exploded"}`+"\n"), 0o644)
	st, err = run(t, "experiment", "status", file, "--tasks", "../../configs/tasks", "--list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st, "4 cells: 1 done, 1 running, 1 failed, 1 abandoned, 0 left") || !strings.Contains(st, "failed: denoiser exploded") {
		t.Errorf("status with a failed cell:\n%s", st)
	}
	// The same record saying the method diverged: counted as diverged
	// (a run keeps it), not failed.
	os.WriteFile(filepath.Join(cdir, failedID+".failed"), []byte(`{"id":"`+failedID+`","error":"chain left the finite numbers","diverged":true}`+"\n"), 0o644)
	st, err = run(t, "experiment", "status", file, "--tasks", "../../configs/tasks", "--list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st, "4 cells: 1 done, 1 running, 0 failed, 1 abandoned, 0 left, 1 diverged (kept") || !strings.Contains(st, "diverged: chain left the finite numbers") {
		t.Errorf("status with a diverged cell:\n%s", st)
	}
	os.WriteFile(filepath.Join(cdir, failedID+".failed"), []byte(`{"id":"`+failedID+`","error":"denoiser exploded"}`+"\n"), 0o644)
	// Two solved batches stored for the failed cell: counted and listed.
	bdir := filepath.Join(cdir, failedID, experiment.BatchesDir)
	os.MkdirAll(bdir, 0o755)
	for _, b := range []string{"batch-00000-00008.safetensors", "batch-00008-00016.safetensors"} {
		os.WriteFile(filepath.Join(bdir, b), []byte("x"), 0o644)
	}
	st, err = run(t, "experiment", "status", file, "--tasks", "../../configs/tasks", "--list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st, "denoiser exploded (2 batches stored)") || !strings.Contains(st, "(1 unfinished with stored batches") {
		t.Errorf("status with stored batches:\n%s", st)
	}
}

// TestExperimentK8s: the printed manifests are two YAML Jobs: an Indexed
// Job of N completions whose pods run their shard from
// JOB_COMPLETION_INDEX on the shared volume, and the report Job.
func TestExperimentK8s(t *testing.T) {
	out, err := run(t, "experiment", "k8s", "../../experiments/dps-table-mnist.yaml", "--shards", "3", "--image", "reg/diffinv:1",
		"--pvc", "results", "--out", "/results/dps", "--tasks", "../../configs/tasks")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(out))
	type job struct {
		Kind     string
		Metadata struct{ Name string }
		Spec     struct {
			CompletionMode string `yaml:"completionMode"`
			Completions    int
			Template       struct {
				Spec struct {
					RestartPolicy string `yaml:"restartPolicy"`
					Containers    []struct {
						Image   string
						Command []string
					}
					Volumes []struct {
						PersistentVolumeClaim struct {
							ClaimName string `yaml:"claimName"`
						} `yaml:"persistentVolumeClaim"`
					}
				}
			}
		}
	}
	var jobs []job
	for {
		var j job
		if err := dec.Decode(&j); err != nil {
			break
		}
		jobs = append(jobs, j)
	}
	if len(jobs) != 2 {
		t.Fatalf("%d YAML documents, want 2:\n%s", len(jobs), out)
	}
	sh, rep := jobs[0], jobs[1]
	if sh.Kind != "Job" || sh.Spec.CompletionMode != "Indexed" || sh.Spec.Completions != 3 || sh.Spec.Template.Spec.RestartPolicy != "Never" ||
		len(sh.Spec.Template.Spec.Containers) != 1 || sh.Spec.Template.Spec.Containers[0].Image != "reg/diffinv:1" ||
		sh.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "results" {
		t.Errorf("shards Job: %+v", sh)
	}
	cmdLine := strings.Join(sh.Spec.Template.Spec.Containers[0].Command, " ")
	if !strings.Contains(cmdLine, `--shard "$JOB_COMPLETION_INDEX/3"`) || !strings.Contains(cmdLine, "--out /results/dps") {
		t.Errorf("shard command %q", cmdLine)
	}
	if rc := strings.Join(rep.Spec.Template.Spec.Containers[0].Command, " "); rep.Metadata.Name != "diffinv-dps-table-mnist-report" || !strings.Contains(rc, "experiment report") {
		t.Errorf("report Job %s: %q", rep.Metadata.Name, rc)
	}
	if _, err := run(t, "experiment", "k8s", "../../experiments/dps-table-mnist.yaml"); err == nil || !strings.Contains(err.Error(), "--image and --pvc") {
		t.Errorf("without --image: %v", err)
	}
}

// experiment tune on the tiny model: DDNM's eta searched on mnist-train
// digits, the tuned file written, the table's cells carry the choice in
// their IDs, table.md names the validation split; a re-run of tune computes
// nothing; test images as validation images are refused.
func TestExperimentTuneCommand(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "exp.yaml")
	out := filepath.Join(dir, "out")
	body := `name: tiny-tuned
checkpoint: ` + ckpt + `
dataset: {name: mnist-test, n: 1}
tasks:
  - {name: inpaint-box, set: {measurement.noise.name: clean}}
methods:
  - {name: ddnm, set: {steps: 4}, tune: {eta: [0.5, 1]}}
  - {name: pinv}
seeds: [0]
metrics: [psnr, seconds]
output: ` + out + `
tune:
  dataset: {name: mnist-train, n: 1, offset: 5}
  budget: 10m
`
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--tasks", "../../configs/tasks"}
	if _, err := run(t, append([]string{"experiment", "run", file, "--dry-run"}, base...)...); err == nil || !strings.Contains(err.Error(), "experiment tune") {
		t.Fatalf("run before tune: %v, want an error saying to tune first", err)
	}
	if _, err := run(t, append([]string{"experiment", "tune", file, "--set", "tune.dataset.name=mnist-test", "--set", "tune.dataset.offset=0"}, base...)...); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Fatalf("tuning on test images: %v", err)
	}
	// Status before tuning: the search's progress and the table waiting on it.
	st, err := run(t, append([]string{"experiment", "status", file}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tuning: 0 of 1 task × method searches complete, 0 of 2 trials stored", "about 10m of trial time left", "no tuned file yet", "its 2-method table waits on the tuned settings"} {
		if !strings.Contains(st, want) {
			t.Errorf("status before tuning lacks %q:\n%s", want, st)
		}
	}
	log, err := run(t, append([]string{"experiment", "tune", file}, base...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	st, err = run(t, append([]string{"experiment", "status", file}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tuning: 1 of 1 task × method searches complete, 2 of 2 trials stored", "tuned file written", "2 cells: 0 done", "work: 5 of 5 network calls left (no timed cell yet"} {
		if !strings.Contains(st, want) {
			t.Errorf("status after tuning lacks %q:\n%s", want, st)
		}
	}
	var tf experiment.TunedFile
	b, err := os.ReadFile(filepath.Join(out, "tuned.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	eta, ok := tf.Settings["inpaint-box"]["ddnm"]["eta"]
	if !ok || tf.Search["inpaint-box"]["ddnm"].Trials != 2 {
		t.Fatalf("tuned file:\n%s", b)
	}
	// η = 1 is the largest value listed and also the largest DDNM accepts:
	// not an edge with anything beyond it (the runner's validation says so);
	// 0.5 is an edge.
	wantEdge := map[string]string{"1": "[]", "0.5": "[eta low]"}[fmt.Sprint(eta)]
	if got := fmt.Sprint(tf.Search["inpaint-box"]["ddnm"].Edge); got != wantEdge {
		t.Errorf("eta %v: edge %s, want %s", eta, got, wantEdge)
	}
	if (wantEdge == "[]") == strings.Contains(log, "a better value may lie beyond") {
		t.Errorf("eta %v: tune log:\n%s", eta, log)
	}
	for _, f := range []string{"tune/trials.csv", "tune/plots/inpaint-box.ddnm.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	again, err := run(t, append([]string{"experiment", "tune", file}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(again, "to run") || !strings.Contains(again, "tuned inpaint-box / ddnm") {
		t.Errorf("re-run of tune recomputed a cell:\n%s", again)
	}
	dry, err := run(t, append([]string{"experiment", "run", file, "--dry-run"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	// The ddnm cell's ID is the one of a file that sets the tuned eta.
	plain := strings.Replace(body, "set: {steps: 4}, tune: {eta: [0.5, 1]}", fmt.Sprintf("set: {steps: 4, eta: %v}", eta), 1)
	plain = plain[:strings.Index(plain, "tune:\n")]
	pfile := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(pfile, []byte(plain), 0o644); err != nil {
		t.Fatal(err)
	}
	pdry, err := run(t, append([]string{"experiment", "run", pfile, "--dry-run"}, base...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, plain)
	}
	id := ""
	for _, l := range strings.Split(pdry, "\n") {
		if strings.HasPrefix(l, "inpaint-box_ddnm_") {
			id = strings.Fields(l)[0]
		}
	}
	if id == "" || !strings.Contains(dry, id) {
		t.Errorf("tuned run's cells:\n%s\nwant the ddnm cell %s (eta %v)", dry, id, eta)
	}
	if _, err := run(t, append([]string{"experiment", "run", file}, base...)...); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "table.md"))
	if !strings.Contains(string(md), "1 images of mnist-train (indices 5–5)") || !strings.Contains(string(md), "## Tuned settings") {
		t.Errorf("table.md:\n%s", md)
	}
}
