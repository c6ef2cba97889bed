package task

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/inverse/solve"
)

func TestShippedPresetsLoadAndValidate(t *testing.T) {
	for _, v := range []struct {
		dir   string
		shape [3]int
	}{{filepath.Join("..", "..", DefaultDir), [3]int{1, 28, 28}}, {filepath.Join("..", "..", DefaultDir, "celeba64"), [3]int{3, 64, 64}}} {
		t.Run(v.dir, func(t *testing.T) { checkPresets(t, v.dir, v.shape) })
	}
}

// checkPresets loads every preset of dir and builds its operator for
// images of the given shape.
func checkPresets(t *testing.T, dir string, imgShape [3]int) {
	names, err := Names(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"colorize", "cs", "deblur-gauss", "deblur-motion", "deblur-nonuniform", "inpaint-box", "inpaint-random", "phase-retrieval", "sr4"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("presets %v, want %v", names, want)
	}
	for _, n := range names {
		p, err := Load(n, dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(config.Sources{Presets: []config.Preset{p.Config}})
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if cfg.Measurement.Operator.Name == config.Default().Measurement.Operator.Name && n != "sr4" {
			t.Errorf("%s: operator left at the default %q", n, cfg.Measurement.Operator.Name)
		}
		// The preset's operator parameters are ones the operator knows.
		shape := imgShape
		if n == "colorize" {
			shape[0] = 3
		}
		m := cfg.Measurement
		if _, err := op.New(m.Operator.Name, m.Operator.Params, shape, rand.New(rand.NewSource(1))); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if _, err := op.NewNoise(m.Noise.Name, m.Noise.Sigma, m.Noise.Rate); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		for method, opts := range p.SolverDefaults {
			if _, err := solve.DecodeOptions(method, opts); err != nil {
				t.Errorf("%s: solver_defaults.%s: %v", n, method, err)
			}
		}
	}
	sr4, _ := Load("sr4", dir)
	if sr4.Defaults("dps")["scale"] != 0.3 {
		t.Errorf("sr4 dps defaults %v", sr4.Defaults("dps"))
	}
	if sr4.Defaults("ddrm") != nil {
		t.Errorf("sr4 ddrm defaults %v, want none", sr4.Defaults("ddrm"))
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("measurement: {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("solver_defaults: [1]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad2.yaml"), []byte("solver_defaults: {dps: 3}\n"), 0o644)
	for _, tc := range []struct{ name, want string }{
		{"nope", "tasks in"},
		{"bad", "solver_defaults"},
		{"bad2", "solver_defaults.dps"},
	} {
		if _, err := Load(tc.name, dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "a.yaml"), "elsewhere"); err != nil {
		t.Errorf("load by path: %v", err)
	}
}

// TestLoadPresetMustBeRegular: a preset path naming a device or folder is
// an error naming it, not an endless read.
func TestLoadPresetMustBeRegular(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(dir+"/folder.yaml", 0o755)
	if _, err := Load(dir+"/folder.yaml", dir); err == nil || !strings.Contains(err.Error(), "want a regular file") {
		t.Errorf("folder preset: %v", err)
	}
	if err := os.Symlink("/dev/zero", dir+"/zero.yaml"); err == nil {
		if _, err := Load("zero", dir); err == nil || !strings.Contains(err.Error(), "want a regular file") {
			t.Errorf("device preset: %v", err)
		}
	}
}

// TestLoadVariant: a CelebA model's presets come from dir/celeba64 when
// the task is there, from dir otherwise; MNIST models use dir.
func TestLoadVariant(t *testing.T) {
	face := config.Default()
	face.Data.Dataset, face.Model.ImageSize = "celeba", 64
	if v := Variant(face); v != "celeba64" {
		t.Fatalf("Variant %q, want celeba64", v)
	}
	if v := Variant(config.Default()); v != "" {
		t.Fatalf("MNIST Variant %q, want none", v)
	}
	p, err := LoadVariant("inpaint-box", "../../configs/tasks", "celeba64")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Path, "celeba64") || !strings.Contains(string(p.Config.YAML), "size: 32") {
		t.Errorf("face inpaint-box from %s:\n%s", p.Path, p.Config.YAML)
	}
	p, err = LoadVariant("inpaint-box", "../../configs/tasks", "")
	if err != nil || strings.Contains(p.Path, "celeba64") {
		t.Errorf("MNIST inpaint-box: %v from %s", err, p.Path)
	}
	p, err = LoadVariant("inpaint-box", "../../configs/tasks", "celeba128")
	if err != nil || strings.Contains(p.Path, "celeba") {
		t.Errorf("a variant without presets falls back: %v from %s", err, p.Path)
	}
}
