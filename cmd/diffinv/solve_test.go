package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/tensors"
)

func TestSolveCommand(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	img := filepath.Join(t.TempDir(), "in.png")
	x := tensors.New(1, 1, 8, 8)
	for i := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(i%8)/4 - 1
	}
	if err := data.SavePNG(img, x); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		task, method string
		sets         []string
	}{
		{"inpaint-box", "ddnm", []string{"measurement.operator.size=4", "measurement.noise.name=clean", "solver.steps=5"}},
		{"sr4", "dps", []string{"measurement.operator.factor=2", "solver.steps=5"}},
		{"deblur-gauss", "ddrm", []string{"measurement.operator.size=3", "solver.steps=4"}},
	} {
		t.Run(tc.task+"-"+tc.method, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := []string{"solve", "--checkpoint", ckpt, "--task", "../../configs/tasks/" + tc.task + ".yaml", "--method", tc.method, "--image", img, "--out", out, "--seed", "2"}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			stdout, err := run(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout, "mean") {
				t.Errorf("no table in output:\n%s", stdout)
			}
			for _, f := range []string{"grid.png", "metrics.json", "results.safetensors", "truth_00000.png", "y_00000.png", "recon_00000.png", "baseline_00000.png"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("missing %s", f)
				}
			}
			b, _ := os.ReadFile(filepath.Join(out, "metrics.json"))
			var m solveMetrics
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Method != tc.method || len(m.Images) != 1 || m.Baseline != "pinv" || m.Images[0].BaselinePSNR == nil {
				t.Errorf("metrics %+v", m)
			}
			if tc.method == "ddnm" && m.Images[0].Consistency > 1e-3 {
				t.Errorf("noise-free DDNM consistency %g", m.Images[0].Consistency)
			}
		})
	}
}

func TestSolveCommandErrors(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	out := t.TempDir()
	tasks := "../../configs/tasks/"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"solve", "--checkpoint", ckpt, "--out", out}, "--task is required"},
		{[]string{"solve", "--checkpoint", ckpt, "--task", "nope", "--tasks", tasks, "--out", out, "--image", "x.png"}, "sr4"},
		{[]string{"solve", "--checkpoint", ckpt, "--task", tasks + "phase-retrieval.yaml", "--method", "ddrm", "--out", out, "--image", "x.png"}, "SVD"},
		{[]string{"solve", "--checkpoint", ckpt, "--task", tasks + "sr4.yaml", "--method", "nope", "--out", out}, "nope"},
		{[]string{"solve", "--checkpoint", ckpt, "--task", tasks + "sr4.yaml", "--set", "measurement.operator.factor=2", "--set", "solver.bogus=1", "--out", out, "--image", "x.png"}, "bogus"},
		{[]string{"solve", "--checkpoint", ckpt, "--task", tasks + "sr4.yaml", "--set", "measurement.operator.factor=2", "--out", out}, "--image FILE or --dataset"},
		{[]string{"solve", "--checkpoint", ckpt, "--task", tasks + "sr4.yaml", "--set", "measurement.operator.factor=2", "--out", out, "--dataset", "cifar"}, "cifar"},
	} {
		if _, err := run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestMeasureCommand(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "in.png")
	x := tensors.New(1, 1, 28, 28)
	for i := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(i%28)/14 - 1
	}
	if err := data.SavePNG(img, x); err != nil {
		t.Fatal(err)
	}
	for _, task := range []string{"sr4", "inpaint-box", "deblur-motion", "phase-retrieval", "cs"} {
		out := filepath.Join(dir, task+".png")
		if _, err := run(t, "measure", "--task", "../../configs/tasks/"+task+".yaml", "--image", img, "--out", out); err != nil {
			t.Fatalf("%s: %v", task, err)
		}
		shown, err := data.LoadPNG(out)
		if err != nil {
			t.Fatal(err)
		}
		if sh := shown.Shape(); sh[2] != 28 || sh[3] != 28 {
			t.Errorf("%s: shown y is %v, want 28×28", task, sh)
		}
	}
	if _, err := run(t, "measure", "--task", "../../configs/tasks/colorize.yaml", "--image", img, "--out", filepath.Join(dir, "c.png")); err == nil {
		t.Error("colorize on a gray image: no error")
	}
}

// TestMeasureWithConfig: with a config file (whose measurement section
// names sr_bicubic, the solve default), a task preset of another operator
// applies whole (the merge used to fail: "sr_bicubic: unknown parameter
// position"); a face config takes the face presets and crops and resizes a
// photo to its image size; the resolved settings are printed.
func TestMeasureWithConfig(t *testing.T) {
	dir := t.TempDir()
	photo := filepath.Join(dir, "face.png")
	x := tensors.New(1, 3, 50, 40)
	for i := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(i%40)/20 - 1
	}
	if err := data.SavePNG(photo, x); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		config, want string
		size         int
	}{
		{"../../configs/mnist.yaml", "operator inpaint_box {position: random, size: 14}", 50},
		{"../../configs/celeba64.yaml", "celeba64/inpaint-box.yaml): operator inpaint_box {position: random, size: 32}", 64},
	} {
		out := filepath.Join(dir, filepath.Base(tc.config)+".png")
		stdout, err := run(t, "measure", "--config", tc.config, "--task", "inpaint-box", "--tasks", "../../configs/tasks", "--image", photo, "--out", out)
		if err != nil {
			t.Fatalf("%s: %v", tc.config, err)
		}
		if !strings.Contains(stdout, tc.want) {
			t.Errorf("%s: output lacks %q:\n%s", tc.config, tc.want, stdout)
		}
		shown, err := data.LoadPNG(out)
		if err != nil {
			t.Fatal(err)
		}
		if sh := shown.Shape(); sh[2] != tc.size {
			t.Errorf("%s: y is %v, want height %d", tc.config, sh, tc.size)
		}
	}
}

func TestDemoCommand(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	digits := t.TempDir()
	for i := 0; i < 2; i++ {
		x := tensors.New(1, 1, 8, 8)
		for j := range tensors.F32(x) {
			tensors.F32(x)[j] = float32((i+j)%5)/2 - 1
		}
		if err := data.SavePNG(filepath.Join(digits, string(rune('a'+i))+".png"), x); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	stdout, err := run(t, "demo", "--checkpoint", ckpt, "--digits", digits, "--out", out, "--tasks", "../../configs/tasks",
		"--task", "sr4,inpaint-box", "--dps-steps", "4", "--ddnm-steps", "4",
		"--set", "measurement.operator.factor=2", "--set", "measurement.operator.size=4")
	if err == nil || !strings.Contains(err.Error(), "factor") {
		// factor is sr4's parameter, unknown to inpaint_box: a clear error is right.
		t.Fatalf("demo with an sr4 parameter on inpaint-box: %v", err)
	}
	stdout, err = run(t, "demo", "--checkpoint", ckpt, "--digits", digits, "--out", out, "--tasks", "../../configs/tasks",
		"--task", "inpaint-box", "--dps-steps", "4", "--ddnm-steps", "4", "--set", "measurement.operator.size=4")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"inpaint-box", "dps", "ddnm+", "pinv"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table misses %q:\n%s", want, stdout)
		}
	}
	g, err := data.LoadPNG(filepath.Join(out, "demo.png"))
	if err != nil {
		t.Fatal(err)
	}
	// 5 rows (truth, y, baseline, dps, ddnm+) of 8-px digits enlarged 8×.
	if h := g.Shape()[2]; h < 5*64 {
		t.Errorf("demo.png is %d px high, want 5 rows of 64 px", h)
	}
	if _, err := run(t, "demo", "--checkpoint", "nope.safetensors"); err == nil || !strings.Contains(err.Error(), "diffinv train") {
		t.Errorf("missing model: %v", err)
	}
	// --dataset replaces --digits (make demo-faces): its names and counts
	// are checked as solve's are.
	if _, err := run(t, "demo", "--checkpoint", ckpt, "--dataset", "faces-test", "--out", out, "--tasks", "../../configs/tasks"); err == nil ||
		!strings.Contains(err.Error(), "--dataset") || !strings.Contains(err.Error(), "celeba-test") {
		t.Errorf("demo --dataset faces-test: %v, want an error listing the data sets", err)
	}
	if _, err := run(t, "demo", "--checkpoint", ckpt, "--dataset", "mnist-test", "--n", "0", "--out", out, "--tasks", "../../configs/tasks"); err == nil || !strings.Contains(err.Error(), "--n 0") {
		t.Errorf("demo --dataset mnist-test --n 0: %v", err)
	}
}
