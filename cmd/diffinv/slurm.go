package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/experiment"
	"github.com/diffinv/diffinv/internal/dirlock"
)

// slurmSecondsPerUnit is the time estimate behind the generated scripts'
// defaults: seconds per image and network evaluation of an MNIST-sized
// (784-pixel) image on 2 cores (DPS on the shipped model: about 4 s per
// image for 1000 steps in bf16, 10 s in fp32, at 3 evaluations a step);
// other image sizes scale it by their pixel count.
const slurmSecondsPerUnit = 0.004

func newExperimentReportCmd() *cobra.Command {
	var ef experimentFlags
	var partial bool
	cmd := &cobra.Command{
		Use:   "report FILE.yaml",
		Short: "Write an experiment's tables, grids and plots from its stored cell results (no cell runs)",
		Long: `Regenerates results.csv, table.md, grids and plots from the cell results in the
output folder, as the end of a run does: the job that follows a Slurm array of
shards. Cells without a stored result are an error naming them, unless
--partial: then the reports show the cells done so far (for a look at a long run
midway; it may go on meanwhile), each entry still to run reads "pending", no
column with a pending entry names a winner, and the run's end rewrites them.`,
		Example: `  diffinv experiment report experiments/paper-mnist-dps.yaml --partial`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, _, err := ef.open(cmd, args[0])
			if err != nil {
				return err
			}
			dir := ef.out
			if dir == "" {
				dir = exp.Output
			}
			if partial {
				n, err := experiment.WritePartialReports(exp, dir)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "experiment %s: partial reports in %s (%d cells still to run)\n", exp.Name, dir, n)
				return nil
			}
			if err := experiment.WriteReports(exp, dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "experiment %s: reports in %s\n", exp.Name, dir)
			return nil
		},
	}
	ef.add(cmd)
	cmd.Flags().BoolVar(&partial, "partial", false, "report the cells done so far; the entries still to run read \"pending\"")
	return cmd
}

// slurmOptions are the sbatch settings of `experiment slurm`.
type slurmOptions struct {
	shards             int
	partition, time    string
	cpus, gpus         int
	mem, dir           string
	extra              []string
	submit             bool
	out, tasksDir, bin string
}

func newExperimentSlurmCmd() *cobra.Command {
	var ef experimentFlags
	o := slurmOptions{cpus: 2, mem: "8G"}
	cmd := &cobra.Command{
		Use:   "slurm FILE.yaml",
		Short: "Write (and with --submit submit) Slurm scripts running an experiment as a job array of shards",
		Long: `Writes, into --dir (default OUT/slurm): array.sbatch, a job array of --shards tasks,
task K running ` + "`experiment run FILE --shard K/N`" + ` into the experiment's output folder;
report.sbatch, which writes the tables, grids and plots once the array ends
(submitted with --dependency=afterany on the array); and submit.sh, which
submits both. The scripts are plain: edit them as you like. Defaults are sized
from the cells still to run (their images × network evaluations at about
` + fmt.Sprint(slurmSecondsPerUnit) + ` s per MNIST-sized image-evaluation on 2 cores): --shards up to 16
with at least a quarter hour of work each, --time twice a shard's estimate.
With --submit it runs submit.sh (sbatch must be on PATH).`,
		Example: `  diffinv experiment slurm experiments/dps-table-mnist.yaml --partition cpu --submit
  diffinv experiment slurm experiments/ablate-noise.yaml --shards 8 --time 02:00:00 --sbatch-arg=--account=lab`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, r, err := ef.open(cmd, args[0])
			if err != nil {
				return err
			}
			if ef.out == "" {
				ef.out = exp.Output
			}
			o.out, o.tasksDir = ef.out, ef.tasksDir
			cells, done, err := experiment.Status(exp, ef.out)
			if err != nil {
				return err
			}
			units, pixels := 0.0, 784.0
			todo := 0
			for _, c := range cells {
				if done[c.ID] {
					continue
				}
				todo++
				units += r.CellCost(c)
				if cfg, err := r.Config(c.Checkpoint); err == nil {
					m := cfg.Model
					pixels = float64(m.InChannels * m.ImageSize * m.ImageSize)
				}
			}
			secs := units * slurmSecondsPerUnit * pixels / 784
			if !cmd.Flags().Changed("shards") {
				o.shards = max(1, min(16, todo, int(secs/900)))
			}
			if o.shards < 1 {
				return fmt.Errorf("--shards %d, want ≥ 1", o.shards)
			}
			if o.time == "" {
				minutes := int(math.Ceil(math.Max(600, 2*secs/float64(o.shards)) / 60))
				o.time = fmt.Sprintf("%02d:%02d:00", minutes/60, minutes%60)
			}
			if o.dir == "" {
				o.dir = filepath.Join(ef.out, "slurm")
			}
			if o.bin == "" {
				if exe, err := os.Executable(); err == nil {
					o.bin = exe
				}
			}
			file, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if err := writeSlurmScripts(o, exp.Name, file, ef.sets, ef.sweeps, ef.prec.value); err != nil {
				return err
			}
			fmt.Fprintf(w, "experiment %s: %d of %d cells to run, about %.1f CPU-hours at 2 cores; %d shards, --time %s\nwrote %s\n",
				exp.Name, todo, len(cells), secs/3600, o.shards, o.time, strings.Join([]string{
					filepath.Join(o.dir, "array.sbatch"), filepath.Join(o.dir, "report.sbatch"), filepath.Join(o.dir, "submit.sh")}, ", "))
			if !o.submit {
				fmt.Fprintf(w, "submit with: bash %s\n", filepath.Join(o.dir, "submit.sh"))
				return nil
			}
			if _, err := exec.LookPath("sbatch"); err != nil {
				return fmt.Errorf("--submit: sbatch is not on PATH (%v): submit the scripts on the cluster's login node", err)
			}
			sub := exec.CommandContext(cmd.Context(), "bash", filepath.Join(o.dir, "submit.sh"))
			sub.Stdout, sub.Stderr = w, cmd.ErrOrStderr()
			if err := sub.Run(); err != nil {
				return fmt.Errorf("--submit: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.shards, "shards", 0, "array tasks (default: from the cells' estimated cost, at most 16)")
	f.StringVar(&o.partition, "partition", "", "sbatch --partition")
	f.StringVar(&o.time, "time", "", "sbatch --time of each array task (default: twice a shard's estimate, at least 10 min)")
	f.IntVar(&o.cpus, "cpus", o.cpus, "sbatch --cpus-per-task")
	f.StringVar(&o.mem, "mem", o.mem, "sbatch --mem")
	f.IntVar(&o.gpus, "gpus", 0, "GPUs per task (sbatch --gres=gpu:G; the torch engine uses them)")
	f.StringArrayVar(&o.extra, "sbatch-arg", nil, "extra #SBATCH line argument (repeatable), e.g. --sbatch-arg=--account=lab")
	f.StringVar(&o.dir, "dir", "", "where the scripts go (default OUT/slurm)")
	f.StringVar(&o.bin, "bin", "", "the diffinv binary the jobs run (default: this one)")
	f.BoolVar(&o.submit, "submit", false, "submit the scripts with sbatch")
	ef.add(cmd)
	return cmd
}

// writeSlurmScripts writes array.sbatch, report.sbatch and submit.sh.
func writeSlurmScripts(o slurmOptions, name, file string, sets, sweeps []string, precision string) error {
	// The folder is absolute: submit.sh runs sbatch inside it, and Slurm
	// resolves a relative --output against the job's working directory
	// (the submission folder), so a relative OUT (the file's output:, the
	// default) sent every job's log to a folder that does not exist and
	// every job failed at launch (found on a real Slurm, make test-slurm).
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("slurm scripts: %w", err)
	}
	o.dir = dir
	if err := os.MkdirAll(filepath.Join(o.dir, "logs"), 0o755); err != nil {
		return fmt.Errorf("slurm scripts: %w", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	logs, err := sbatchPath(filepath.Join(o.dir, "logs"))
	if err != nil {
		return err
	}
	jobName := func(job string) (string, error) {
		return sbatchQuote("diffinv-" + name + "-" + job)
	}
	for _, job := range []string{"shards", "report"} {
		if _, err := jobName(job); err != nil {
			return err
		}
	}
	header := func(job string, array bool) string {
		var b strings.Builder
		fmt.Fprintf(&b, "#!/bin/bash\n# diffinv experiment %s on Slurm (written by `diffinv experiment slurm`; edit freely).\n", name)
		jn, _ := jobName(job)
		fmt.Fprintf(&b, "#SBATCH --job-name=%s\n", jn)
		if array {
			fmt.Fprintf(&b, "#SBATCH --array=0-%d\n", o.shards-1)
			fmt.Fprintf(&b, "#SBATCH --time=%s\n", o.time)
			fmt.Fprintf(&b, "#SBATCH --output=%s\n", logs("shard-%a-%A.out"))
		} else {
			fmt.Fprintf(&b, "#SBATCH --time=00:30:00\n#SBATCH --output=%s\n", logs("report-%j.out"))
		}
		fmt.Fprintf(&b, "#SBATCH --cpus-per-task=%d\n#SBATCH --mem=%s\n", o.cpus, o.mem)
		if o.partition != "" {
			fmt.Fprintf(&b, "#SBATCH --partition=%s\n", o.partition)
		}
		if o.gpus > 0 && array {
			fmt.Fprintf(&b, "#SBATCH --gres=gpu:%d\n", o.gpus)
		}
		for _, a := range o.extra {
			fmt.Fprintf(&b, "#SBATCH %s\n", a)
		}
		fmt.Fprintf(&b, "set -euo pipefail\ncd %s\nexport GOMAXPROCS=${SLURM_CPUS_PER_TASK:-%d}\n", shellQuote(cwd), o.cpus)
		return b.String()
	}
	common := []string{shellQuote(file), "--out", shellQuote(o.out), "--tasks", shellQuote(o.tasksDir)}
	for _, s := range sets {
		common = append(common, "--set", shellQuote(s))
	}
	for _, s := range sweeps {
		common = append(common, "--sweep", shellQuote(s))
	}
	if precision != "" {
		common = append(common, "--precision", precision)
	}
	bin := shellQuote(o.bin)
	array := header("shards", true) + fmt.Sprintf("%s experiment run %s --shard \"$SLURM_ARRAY_TASK_ID/%d\"\n", bin, strings.Join(common, " "), o.shards)
	report := header("report", false) + fmt.Sprintf("%s experiment report %s\n", bin, strings.Join(common, " "))
	submit := fmt.Sprintf(`#!/bin/bash
# Submits the shards of experiment %s as a job array, then its report job after the array ends.
set -euo pipefail
cd %s
array=$(sbatch --parsable array.sbatch)
array=${array%%%%;*}
report=$(sbatch --parsable --dependency=afterany:"$array" report.sbatch)
echo "submitted array $array (%d shards) and report job $report"
`, name, shellQuote(o.dir), o.shards)
	for f, body := range map[string]string{"array.sbatch": array, "report.sbatch": report, "submit.sh": submit} {
		if err := os.WriteFile(filepath.Join(o.dir, f), []byte(body), 0o755); err != nil {
			return fmt.Errorf("slurm scripts: %w", err)
		}
	}
	return nil
}

// sbatchQuote quotes s for an #SBATCH line: sbatch splits a directive's
// arguments at blanks and takes double quotes (not a shell's escapes), so a
// value with a blank is double-quoted and one holding a double quote or a
// line break is refused.
func sbatchQuote(s string) (string, error) {
	if strings.ContainsAny(s, "\"\n\r") {
		return "", fmt.Errorf("slurm scripts: %q: an #SBATCH value cannot hold a double quote or a line break", s)
	}
	if s != "" && !strings.ContainsAny(s, " \t'#\\") {
		return s, nil
	}
	return `"` + s + `"`, nil
}

// sbatchPath returns, for the folder dir, a function giving the #SBATCH
// --output value of a file name pattern in it (%j, %A, %a expanded by
// Slurm): a % of dir itself is written %% so that Slurm keeps it, and the
// whole is quoted by sbatchQuote.
func sbatchPath(dir string) (func(pattern string) string, error) {
	if _, err := sbatchQuote(dir); err != nil {
		return nil, err
	}
	esc := strings.ReplaceAll(dir, "%", "%%")
	return func(pattern string) string {
		q, _ := sbatchQuote(filepath.Join(esc, pattern))
		return q
	}, nil
}

// shellQuote quotes s for bash when it holds anything but safe characters.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-=:,+@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func newExperimentStatusCmd() *cobra.Command {
	// tuning: opened without the tuned settings, so that a file still
	// being tuned shows its tuning's progress instead of an error.
	ef := experimentFlags{tuning: true, needsModel: true}
	var list bool
	cmd := &cobra.Command{
		Use:   "status FILE.yaml",
		Short: "Show an experiment's cells done, running, failed, abandoned and left (and its Slurm jobs when squeue is present)",
		Long: `Reads the results folder: a cell is done when its result is stored, running
while a shard's claim on it is fresh (an unsharded run claims no cells: a line
says when one holds the folder, naming its process), failed when the last run of it ended in
an error (--list prints the error; a later successful run clears it),
diverged when its method diverged (a run keeps it and the table marks it),
abandoned when a claim was left by a process that died (the next shard takes
it over), and left otherwise; an unfinished cell with solved batches stored
(cells/ID/batches/) says how many, which a resumed run reuses. A line on the
work gives the network calls left (the cells' cost, as experiment run's bar
counts them) and the time they take at the done cells' measured rate. A file
with a tune section first shows its tuning: searches complete, trials stored
and the trial time left within the budget; until the tuned file exists the
table's cells are not listed (their identities hold the tuned options). With
squeue (and sacct) on PATH it also lists the experiment's Slurm jobs, by the
job names ` + "`experiment slurm`" + ` gives them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, r, err := ef.open(cmd, args[0])
			if err != nil {
				return err
			}
			if ef.out == "" {
				ef.out = exp.Output
			}
			w := cmd.OutOrStdout()
			if exp.Tune != nil {
				ts, err := experiment.TuneProgress(cmd.Context(), exp, ef.out)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, tuneStatusLine(exp, ts))
				if !ts.Written {
					fmt.Fprintf(w, "experiment %s: its %d-method table waits on the tuned settings (diffinv experiment tune %s)\n", exp.Name, len(exp.Methods), args[0])
					return nil
				}
			}
			if err := exp.ApplyTuned(ef.out); err != nil {
				return err
			}
			cells, done, err := experiment.Status(exp, ef.out)
			if err != nil {
				return err
			}
			counts := map[string]int{}
			for _, c := range cells {
				state := "left"
				if done[c.ID] {
					state = "done"
				} else if s := experiment.ClaimState(ef.out, c.ID); s == "running" {
					state = "running"
				} else if s == "stale" {
					state = "abandoned"
				} else if f := experiment.Failure(ef.out, c.ID); f != "" && experiment.DivergedCell(ef.out, c.ID) {
					state = "diverged: " + f
				} else if f != "" {
					state = "failed: " + f
				}
				counts[strings.SplitN(state, ":", 2)[0]]++
				if !done[c.ID] {
					if k := experiment.StoredBatches(ef.out, c.ID); k > 0 {
						state += fmt.Sprintf(" (%d batches stored)", k)
						counts["partial"]++
					}
				}
				if list {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\tseed %d\t%s\n", c.ID, c.Task.Key(), c.Method.Key(), c.SweepLabel(), c.Seed, state)
				}
			}
			fmt.Fprintf(w, "experiment %s (%s): %d cells: %d done, %d running, %d failed, %d abandoned, %d left",
				exp.Name, ef.out, len(cells), counts["done"], counts["running"], counts["failed"], counts["abandoned"], counts["left"])
			if counts["diverged"] > 0 {
				fmt.Fprintf(w, ", %d diverged (kept: the table marks them)", counts["diverged"])
			}
			if counts["partial"] > 0 {
				fmt.Fprintf(w, " (%d unfinished with stored batches: a resumed run continues them)", counts["partial"])
			}
			fmt.Fprintln(w)
			// An unsharded run takes no claims, only the folder's lock: say
			// it is under way rather than show 0 running.
			if h, held, err := dirlock.Holder(ef.out); err != nil {
				return err
			} else if held {
				fmt.Fprintf(w, "under way: a run holds this folder (%s); its cell in flight is counted among the left\n", h)
			}
			fmt.Fprintln(w, workStatusLine(experiment.Workload(exp, ef.out, cells, done, r.CellCost)))
			for _, tool := range [][]string{
				{"squeue", "-h", "-o", "%i %j %T %M %R", "--name", "diffinv-" + exp.Name + "-shards,diffinv-" + exp.Name + "-report"},
				{"sacct", "-n", "-X", "-o", "JobID,JobName%40,State,Elapsed", "--name", "diffinv-" + exp.Name + "-shards,diffinv-" + exp.Name + "-report"},
			} {
				if _, err := exec.LookPath(tool[0]); err != nil {
					continue
				}
				b, err := exec.CommandContext(cmd.Context(), tool[0], tool[1:]...).CombinedOutput()
				if tool[0] == "sacct" && err != nil && strings.Contains(string(b), "accounting storage is disabled") {
					// A cluster without slurmdbd (a small one, make
					// test-slurm's): squeue's list is all there is.
					fmt.Fprintf(w, "sacct: none (this cluster keeps no job accounting)\n")
					continue
				}
				if err != nil {
					// Slurm's clients installed on a machine with no
					// reachable controller: one line, not their log, and
					// no sacct (it asks the same controller).
					fmt.Fprintf(w, "%s: no Slurm jobs listed (%v: %s)\n", tool[0], err, lastLine(b))
					break
				}
				fmt.Fprintf(w, "%s:\n%s", tool[0], b)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&list, "list", false, "one line per cell")
	ef.add(cmd)
	return cmd
}

func newExperimentK8sCmd() *cobra.Command {
	var image, workdir, pvc, mount, cpu, mem string
	var shards int
	var ef experimentFlags
	cmd := &cobra.Command{
		Use:   "k8s FILE.yaml",
		Short: "Print Kubernetes Jobs running an experiment as an Indexed Job of shards, then its report",
		Long: `Prints two Kubernetes Jobs (YAML, to kubectl apply -f -): an Indexed Job of
--shards completions, pod K running ` + "`diffinv experiment run FILE --shard K/N`" + ` with K from
JOB_COMPLETION_INDEX, all writing the experiment's output folder on a shared
volume (--pvc mounted at --mount); and a report Job to apply once it completes
(` + "`diffinv experiment report`" + `). The image must hold diffinv, the repository
(--workdir) and the data; the results folder must be on the shared volume.
Written from the Kubernetes API reference; not run on a cluster here.`,
		Example: `  diffinv experiment k8s experiments/dps-table-mnist.yaml --shards 4 --image registry/diffinv:latest --pvc results --out /results/dps-table-mnist`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, _, err := ef.open(cmd, args[0])
			if err != nil {
				return err
			}
			if shards < 1 {
				return fmt.Errorf("--shards %d, want ≥ 1", shards)
			}
			if image == "" || pvc == "" {
				return fmt.Errorf("--image and --pvc are required (the container image holding diffinv and the repository, and the claim of the shared results volume)")
			}
			if ef.out == "" {
				ef.out = exp.Output
			}
			common := []string{"experiment", "run", args[0], "--out", ef.out, "--tasks", ef.tasksDir}
			for _, s := range ef.sets {
				common = append(common, "--set", s)
			}
			for _, s := range ef.sweeps {
				common = append(common, "--sweep", s)
			}
			if ef.prec.value != "" {
				common = append(common, "--precision", ef.prec.value)
			}
			quoted := make([]string, len(common))
			for i, c := range common {
				quoted[i] = shellQuote(c)
			}
			run := "diffinv " + strings.Join(quoted, " ") + fmt.Sprintf(` --shard "$JOB_COMPLETION_INDEX/%d"`, shards)
			report := "diffinv " + strings.Join(append([]string{"experiment", "report"}, quoted[2:]...), " ")
			name := "diffinv-" + strings.ToLower(strings.ReplaceAll(exp.Name, "_", "-"))
			job := func(suffix, command string, indexed bool) string {
				var b strings.Builder
				fmt.Fprintf(&b, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: %s-%s\nspec:\n", name, suffix)
				if indexed {
					fmt.Fprintf(&b, "  completionMode: Indexed\n  completions: %d\n  parallelism: %d\n  backoffLimit: %d\n", shards, shards, 2*shards)
				} else {
					fmt.Fprintf(&b, "  backoffLimit: 2\n")
				}
				fmt.Fprintf(&b, "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: %s\n        image: %s\n        workingDir: %s\n", suffix, image, workdir)
				fmt.Fprintf(&b, "        command: [\"sh\", \"-c\", %q]\n", command)
				fmt.Fprintf(&b, "        resources:\n          requests: {cpu: %q, memory: %q}\n          limits: {cpu: %q, memory: %q}\n", cpu, mem, cpu, mem)
				fmt.Fprintf(&b, "        volumeMounts:\n        - {name: results, mountPath: %s}\n      volumes:\n      - name: results\n        persistentVolumeClaim: {claimName: %s}\n", mount, pvc)
				return b.String()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# diffinv experiment %s: %d shards as an Indexed Job; apply the report Job once it completes.\n%s---\n%s",
				exp.Name, shards, job("shards", run, true), job("report", report, false))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&shards, "shards", 4, "completions of the Indexed Job")
	f.StringVar(&image, "image", "", "container image holding diffinv and the repository")
	f.StringVar(&workdir, "workdir", "/diffinv", "the repository's folder in the image")
	f.StringVar(&pvc, "pvc", "", "PersistentVolumeClaim of the shared results volume")
	f.StringVar(&mount, "mount", "/results", "where the results volume is mounted")
	f.StringVar(&cpu, "cpu", "2", "CPU request and limit per pod")
	f.StringVar(&mem, "mem", "8Gi", "memory request and limit per pod")
	ef.add(cmd)
	return cmd
}

// lastLine returns the last non-empty line of a command's output, trimmed
// ("no output" when there is none).
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return "no output"
}

// tuneStatusLine is experiment status's line on a file's tuning.
func tuneStatusLine(exp *experiment.Experiment, ts experiment.TuneState) string {
	line := fmt.Sprintf("tuning: %d of %d task × method searches complete, %d of %d trials stored (%s of trial time)",
		ts.Complete, ts.Searches, ts.Trials, ts.Planned, roughDuration(ts.Seconds))
	if ts.Diverged > 0 {
		line += fmt.Sprintf(", %d of the trials diverged (no score)", ts.Diverged)
	}
	switch {
	case ts.Complete == ts.Searches:
	case math.IsNaN(ts.LeftSeconds):
		line += "; no budget, so no estimate of the time left"
	default:
		line += fmt.Sprintf("; about %s of trial time left (each search stops after its %s budget)", roughDuration(ts.LeftSeconds), roughDuration(float64(exp.Tune.Budget)))
	}
	if ts.Written {
		return line + "; tuned file written"
	}
	return line + "; no tuned file yet"
}

// workStatusLine is experiment status's line on the work left, in the
// runner's cost units (network calls), with a time at the done cells' rate.
func workStatusLine(ws experiment.WorkState) string {
	total := ws.Left + ws.Done
	line := fmt.Sprintf("work: %s of %s network calls left", roughCount(ws.Left), roughCount(total))
	if ws.Left == 0 {
		return line
	}
	if rate := ws.Rate(); rate > 0 {
		return line + fmt.Sprintf("; about %s at the done cells' %.0f calls/s", roughDuration(ws.Left/rate), rate)
	}
	return line + " (no timed cell yet, so no estimate of the time)"
}

// roughCount writes n with a k/M suffix, to three digits.
func roughCount(n float64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.3gM", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.3gk", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

// roughDuration writes seconds rounded to the minute (to the second
// under a minute).
func roughDuration(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}
