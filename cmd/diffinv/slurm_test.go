package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSlurmScriptPaths: the #SBATCH lines of a relative results folder
// with a blank and a % in its name (both broke jobs on a real Slurm, found
// by make test-slurm): the log paths are absolute (submit.sh runs sbatch
// inside the scripts' folder, and Slurm resolves a relative --output from
// there), double-quoted, and a % of the folder's name is doubled.
func TestSlurmScriptPaths(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	o := slurmOptions{shards: 2, time: "00:10:00", cpus: 1, mem: "1G", bin: "/bin/diffinv",
		out: "res 50%", dir: filepath.Join("res 50%", "slurm"), tasksDir: "configs/tasks"}
	if err := writeSlurmScripts(o, "exp", "/e.yaml", nil, nil, ""); err != nil {
		t.Fatal(err)
	}
	array, err := os.ReadFile(filepath.Join(o.dir, "array.sbatch"))
	if err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(filepath.Join(o.dir, "report.sbatch"))
	submit, _ := os.ReadFile(filepath.Join(o.dir, "submit.sh"))
	logs := filepath.Join(base, "res 50%%", "slurm", "logs")
	for _, c := range []struct{ file, body, want string }{
		{"array.sbatch", string(array), `#SBATCH --output="` + logs + `/shard-%a-%A.out"` + "\n"},
		{"report.sbatch", string(report), `#SBATCH --output="` + logs + `/report-%j.out"` + "\n"},
		{"array.sbatch", string(array), `--out 'res 50%'`},
		{"submit.sh", string(submit), "cd '" + filepath.Join(base, "res 50%", "slurm") + "'\n"},
	} {
		if !strings.Contains(c.body, c.want) {
			t.Errorf("%s lacks %q:\n%s", c.file, c.want, c.body)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "res 50%", "slurm", "logs")); err != nil {
		t.Errorf("logs folder: %v", err)
	}
	for in, want := range map[string]string{"a/b-1": "a/b-1", "a b": `"a b"`, "it's": `"it's"`} {
		if got, err := sbatchQuote(in); err != nil || got != want {
			t.Errorf("sbatchQuote(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`a"b`, "a\nb"} {
		if _, err := sbatchQuote(bad); err == nil {
			t.Errorf("sbatchQuote(%q): no error", bad)
		}
	}
	o.dir = filepath.Join(base, `q"uote`)
	if err := writeSlurmScripts(o, "exp", "/e.yaml", nil, nil, ""); err == nil || !strings.Contains(err.Error(), "double quote") {
		t.Errorf("a folder with a double quote: %v", err)
	}
}
