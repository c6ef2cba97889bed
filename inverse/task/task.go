// Package task loads inverse-problem task presets: named YAML files (in
// configs/tasks/) that set the measurement section of a config, and
// optionally solver keys, plus per-method solver defaults for that task
// (DPS's step size depends on the task, say).
//
// A preset file holds config keys and one extra block:
//
//	measurement:
//	  operator: {name: sr_bicubic, factor: 4}
//	  noise: {name: gaussian, sigma: 0.05}
//	solver_defaults:
//	  dps: {scale: 0.3}
//
// solver_defaults[method] applies under the user's own solver.* keys.
package task

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/diffinv/diffinv/internal/userfile"

	"go.yaml.in/yaml/v3"

	"github.com/diffinv/diffinv/config"
)

// DefaultDir is where the shipped presets live, relative to the repository root.
const DefaultDir = "configs/tasks"

// Preset is a loaded task.
type Preset struct {
	// Name is the task's name (the file name without .yaml).
	Name string
	// Path is the file it came from.
	Path string
	// Config is the preset's config keys, a layer for config.Load.
	Config config.Preset
	// SolverDefaults maps a method name to its options for this task.
	SolverDefaults map[string]map[string]any
}

// Defaults returns the solver defaults of method (nil when none).
func (p *Preset) Defaults(method string) map[string]any {
	if p == nil {
		return nil
	}
	return p.SolverDefaults[method]
}

// Names lists the presets in dir (file names without .yaml), sorted.
func Names(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("task presets: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
			out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Load reads the preset nameOrPath: a path to a .yaml file, or a name
// looked up as dir/name.yaml. An unknown name lists the presets in dir.
func Load(nameOrPath, dir string) (*Preset, error) {
	path := nameOrPath
	if !strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml") {
		path = filepath.Join(dir, nameOrPath+".yaml")
	}
	// A regular file of at most 1 MB: a preset is a few hundred bytes, and
	// a device or named pipe would read forever.
	raw, err := userfile.ReadFile(path, "task preset", 1<<20)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			names, lerr := Names(dir)
			if lerr == nil {
				return nil, fmt.Errorf("unknown task %q: no file %s (tasks in %s: %s)", nameOrPath, path, dir, strings.Join(names, ", "))
			}
		}
		return nil, fmt.Errorf("task %q: %w", nameOrPath, err)
	}
	return Parse(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), path, raw)
}

// Parse splits a preset document into its config layer and solver defaults.
func Parse(name, path string, raw []byte) (*Preset, error) {
	var doc map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("task %s (%s): not valid YAML: %w", name, path, err)
	}
	p := &Preset{Name: name, Path: path, SolverDefaults: map[string]map[string]any{}}
	if sd, ok := doc["solver_defaults"]; ok {
		m, ok := sd.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("task %s (%s): solver_defaults is %T, want a mapping method → options", name, path, sd)
		}
		for method, opts := range m {
			om, ok := opts.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("task %s (%s): solver_defaults.%s is %T, want a mapping of options", name, path, method, opts)
			}
			p.SolverDefaults[method] = om
		}
		delete(doc, "solver_defaults")
	}
	rest, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	p.Config = config.Preset{Name: fmt.Sprintf("task %s (%s)", name, path), YAML: rest}
	return p, nil
}

// Variant names the preset folder for the images a model makes: presets
// hold operator sizes in pixels, so a model of other images than the
// shipped MNIST ones gets its own presets under dir/VARIANT/ (the face
// presets, configs/tasks/celeba64/, hold DPS's 256-px settings scaled to
// 64 px). It is "<dataset><image size>" for a CelebA model ("celeba64")
// and "" (the presets in dir itself) for MNIST and image folders.
func Variant(cfg config.Config) string {
	if cfg.Data.Dataset == "celeba" {
		return fmt.Sprintf("celeba%d", cfg.Model.ImageSize)
	}
	return ""
}

// LoadVariant is Load for a model's variant (see Variant): a task name is
// looked up in dir/variant/ first, then in dir; a path is loaded as is.
func LoadVariant(nameOrPath, dir, variant string) (*Preset, error) {
	isPath := strings.HasSuffix(nameOrPath, ".yaml") || strings.HasSuffix(nameOrPath, ".yml")
	if variant != "" && !isPath {
		vdir := filepath.Join(dir, variant)
		if _, err := os.Stat(filepath.Join(vdir, nameOrPath+".yaml")); err == nil {
			return Load(nameOrPath, vdir)
		}
	}
	return Load(nameOrPath, dir)
}
