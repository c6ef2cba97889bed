package train

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"gorgonia.org/tensor"
)

// Checkpoint file layout. A training checkpoint is one safetensors file with
// the tensors "param/<name>", "ema/<name>", "adam_m/<name>" and
// "adam_v/<name>" for every parameter, and the metadata keys below. A model
// file (ModelFile, what sampling loads) holds the EMA weights under their
// plain parameter names with the same metadata, so model.Load reads it.
const (
	// MetaFormat is the metadata key naming the file's layout.
	MetaFormat = "format"
	// MetaConfig is the metadata key of the model config as JSON with
	// config.Model's YAML keys (model.ConfigKey, what model.Load reads).
	MetaConfig = model.ConfigKey
	// MetaRunConfig is the metadata key of the whole run config as YAML.
	MetaRunConfig = "run_config"
	// MetaStep is the metadata key of the number of optimiser steps taken.
	MetaStep = "step"
	// MetaAdamStep is the metadata key of Adam's bias-correction step.
	MetaAdamStep = "adam_step"
	// MetaSeed is the metadata key of the run seed.
	MetaSeed = "seed"

	// FormatTrain marks a training checkpoint.
	FormatTrain = "diffinv-train/1"
	// FormatModel marks a model file of EMA weights.
	FormatModel = "diffinv-model/1"

	// CheckpointDir is the folder of training checkpoints inside the run folder.
	CheckpointDir = "checkpoints"
	// ModelFile is the model file (EMA weights) inside the run folder,
	// rewritten with every checkpoint.
	ModelFile = "model.safetensors"
)

// Checkpoint is the whole state of a run after Step optimiser steps.
type Checkpoint struct {
	// Step is the number of optimiser steps taken.
	Step int
	// Config is the run's configuration.
	Config *config.Config
	// Names lists the parameters in the network's order.
	Names []string
	// Params, EMA, AdamM and AdamV map each parameter name to its weights,
	// EMA weights and Adam moments (all of the parameter's shape).
	Params, EMA, AdamM, AdamV map[string]*tensor.Dense
	// AdamStep is Adam's bias-correction step count.
	AdamStep int
}

var ckptName = regexp.MustCompile(`^step-(\d{8,})\.safetensors$`)

// CheckpointPath returns the path of the checkpoint of step in run folder out.
func CheckpointPath(out string, step int) string {
	return filepath.Join(out, CheckpointDir, fmt.Sprintf("step-%08d.safetensors", step))
}

// ListCheckpoints returns the steps of the checkpoints in run folder out,
// ascending (none: an empty list and no error).
func ListCheckpoints(out string) ([]int, error) {
	ents, err := os.ReadDir(filepath.Join(out, CheckpointDir))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("train: list checkpoints: %w", err)
	}
	var steps []int
	for _, e := range ents {
		m := ckptName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		s, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		steps = append(steps, s)
	}
	sort.Ints(steps)
	return steps, nil
}

// baseMeta returns the metadata every file of a run carries: both configs
// (the run config without its engine section: how this machine ran the
// network is no property of the weights), the step and the seed.
func baseMeta(c *Checkpoint, format string) (map[string]string, error) {
	y, err := c.Config.StoredYAML()
	if err != nil {
		return nil, err
	}
	mc, err := model.EncodeConfig(c.Config.Model)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		MetaFormat:    format,
		MetaConfig:    mc,
		MetaRunConfig: string(y),
		MetaStep:      strconv.Itoa(c.Step),
		MetaSeed:      strconv.FormatInt(c.Config.Train.Seed, 10),
	}, nil
}

// SaveCheckpoint writes c to path atomically (temporary file, fsync, rename).
func SaveCheckpoint(path string, c *Checkpoint) error {
	meta, err := baseMeta(c, FormatTrain)
	if err != nil {
		return fmt.Errorf("train: save checkpoint %s: config: %w", path, err)
	}
	ts := make(map[string]*tensor.Dense, 4*len(c.Names))
	for _, n := range c.Names {
		for _, part := range []struct {
			prefix string
			m      map[string]*tensor.Dense
		}{{"param/", c.Params}, {"ema/", c.EMA}, {"adam_m/", c.AdamM}, {"adam_v/", c.AdamV}} {
			t, ok := part.m[n]
			if !ok {
				return fmt.Errorf("train: save checkpoint %s: no %s tensor for parameter %q", path, strings.TrimSuffix(part.prefix, "/"), n)
			}
			ts[part.prefix+n] = t
		}
	}
	meta[MetaAdamStep] = strconv.Itoa(c.AdamStep)
	meta["names"] = strings.Join(c.Names, "\n")
	if err := checkpoint.Save(path, ts, meta); err != nil {
		return fmt.Errorf("train: save checkpoint: %w", err)
	}
	return nil
}

// SaveModel writes the EMA weights of c under their plain names, with the
// config and step, to path atomically: the file sampling and evaluation load.
func SaveModel(path string, c *Checkpoint) error {
	return SaveModelAs(path, c, "F32")
}

// SaveModelAs is SaveModel storing the weights as dtype, "F32" or "F16"
// (model.SaveFileAs).
func SaveModelAs(path string, c *Checkpoint, dtype string) error {
	return SaveWeightsAs(path, c, c.EMA, "ema", dtype)
}

// SaveWeightsAs is SaveModelAs for other weights of the checkpoint's model
// (its raw Params, a DebiasedEMA), named in the file's "weights" metadata
// by kind.
func SaveWeightsAs(path string, c *Checkpoint, weights map[string]*tensor.Dense, kind, dtype string) error {
	meta, err := baseMeta(c, FormatModel)
	if err != nil {
		return fmt.Errorf("train: save model %s: config: %w", path, err)
	}
	meta["weights"] = kind
	delete(meta, MetaConfig) // SaveFile writes it, from the same config
	if err := model.SaveFileAs(path, weights, c.Config.Model, meta, dtype); err != nil {
		return fmt.Errorf("train: save model: %w", err)
	}
	return nil
}

// ParseConfig decodes a run config YAML document onto the defaults
// (config.FromYAML: keys added since the file was written keep their
// defaults) and validates it.
func ParseConfig(doc []byte) (*config.Config, error) {
	c, err := config.FromYAML(doc)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config YAML: %w", err)
	}
	return &c, nil
}

// metaInt reads an integer metadata value.
func metaInt(meta map[string]string, key string) (int, error) {
	s, ok := meta[key]
	if !ok {
		return 0, fmt.Errorf("metadata has no %q key", key)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("metadata %q = %q, want a non-negative integer", key, s)
	}
	return v, nil
}

// LoadCheckpoint reads a training checkpoint written by SaveCheckpoint.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	f, err := checkpoint.Load(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if got := f.Metadata[MetaFormat]; got != FormatTrain {
		return nil, fmt.Errorf("train: load checkpoint %s: format %q, want %q", path, got, FormatTrain)
	}
	c := &Checkpoint{
		Params: map[string]*tensor.Dense{}, EMA: map[string]*tensor.Dense{},
		AdamM: map[string]*tensor.Dense{}, AdamV: map[string]*tensor.Dense{},
	}
	if c.Step, err = metaInt(f.Metadata, MetaStep); err != nil {
		return nil, fmt.Errorf("train: load checkpoint %s: %w", path, err)
	}
	if c.AdamStep, err = metaInt(f.Metadata, MetaAdamStep); err != nil {
		return nil, fmt.Errorf("train: load checkpoint %s: %w", path, err)
	}
	if c.Config, err = ParseConfig([]byte(f.Metadata[MetaRunConfig])); err != nil {
		return nil, fmt.Errorf("train: load checkpoint %s: %w", path, err)
	}
	if s := f.Metadata["names"]; s != "" {
		c.Names = strings.Split(s, "\n")
	}
	for _, n := range c.Names {
		for _, part := range []struct {
			prefix string
			m      map[string]*tensor.Dense
		}{{"param/", c.Params}, {"ema/", c.EMA}, {"adam_m/", c.AdamM}, {"adam_v/", c.AdamV}} {
			t, ok := f.Tensors[part.prefix+n]
			if !ok {
				return nil, fmt.Errorf("train: load checkpoint %s: tensor %q missing", path, part.prefix+n)
			}
			part.m[n] = t
		}
	}
	if len(f.Tensors) != 4*len(c.Names) {
		return nil, fmt.Errorf("train: load checkpoint %s: %d tensors for %d parameters, want 4 per parameter", path, len(f.Tensors), len(c.Names))
	}
	return c, nil
}

// LoadModel reads the EMA weights and config of a model file (SaveModel)
// or of a training checkpoint (SaveCheckpoint), keyed by parameter name.
func LoadModel(path string) (map[string]*tensor.Dense, *config.Config, error) {
	f, err := checkpoint.Load(path)
	if err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	switch f.Metadata[MetaFormat] {
	case FormatModel:
		cfg, err := ParseConfig([]byte(f.Metadata[MetaRunConfig]))
		if err != nil {
			return nil, nil, fmt.Errorf("train: load model %s: %w", path, err)
		}
		return f.Tensors, cfg, nil
	case FormatTrain:
		c, err := LoadCheckpoint(path)
		if err != nil {
			return nil, nil, err
		}
		return c.EMA, c.Config, nil
	}
	return nil, nil, fmt.Errorf("train: load model %s: format %q, want %q or %q", path, f.Metadata[MetaFormat], FormatModel, FormatTrain)
}

// pruneCheckpoints removes all but the newest keep checkpoints of out.
func pruneCheckpoints(out string, keep int) error {
	steps, err := ListCheckpoints(out)
	if err != nil {
		return err
	}
	for i := 0; i < len(steps)-keep; i++ {
		if err := os.Remove(CheckpointPath(out, steps[i])); err != nil {
			return fmt.Errorf("train: remove old checkpoint: %w", err)
		}
	}
	return nil
}

// tensorsOf wraps float32 slices as tensors of the given shapes, keyed by name.
func tensorsOf(names []string, shapes [][]int, vals [][]float32) map[string]*tensor.Dense {
	m := make(map[string]*tensor.Dense, len(names))
	for i, n := range names {
		m[n] = tensors.FromSlice(vals[i], shapes[i]...)
	}
	return m
}
