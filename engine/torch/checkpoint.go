//go:build torch

package torch

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
)

// ConfigKey is the checkpoint metadata key holding the model config as JSON
// with config.Model's YAML keys (image_size, num_channels, ...).
const ConfigKey = "config"

// ModelConfig decodes the model config stored in a checkpoint's metadata
// under ConfigKey. Unknown keys are errors; keys left out keep
// config.Default()'s values.
func ModelConfig(meta map[string]string) (config.Model, error) {
	raw, ok := meta[ConfigKey]
	if !ok {
		return config.Model{}, fmt.Errorf("checkpoint metadata has no %q entry (the model config that built the tensors)", ConfigKey)
	}
	m := config.Default().Model
	dec := yaml.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return config.Model{}, fmt.Errorf("checkpoint metadata %q: %w", ConfigKey, err)
	}
	return m, nil
}

// ConfigJSON encodes m for the ConfigKey metadata entry, with config.Model's
// YAML keys.
func ConfigJSON(m config.Model) (string, error) {
	var node map[string]any
	b, err := yaml.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encoding the model config: %w", err)
	}
	if err := yaml.Unmarshal(b, &node); err != nil {
		return "", fmt.Errorf("encoding the model config: %w", err)
	}
	j, err := json.Marshal(node)
	if err != nil {
		return "", fmt.Errorf("encoding the model config: %w", err)
	}
	return string(j), nil
}

// FromCheckpoint builds the UNet a diffinv checkpoint describes and loads
// its tensors.
func FromCheckpoint(path string, opts Options) (*UNet, error) {
	f, err := checkpoint.Load(path)
	if err != nil {
		return nil, fmt.Errorf("torch engine: %w", err)
	}
	cfg, err := ModelConfig(f.Metadata)
	if err != nil {
		return nil, fmt.Errorf("torch engine: checkpoint %s: %w", path, err)
	}
	u, err := New(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("torch engine: checkpoint %s: %w", path, err)
	}
	if err := u.Load(f.Tensors); err != nil {
		u.Close()
		return nil, fmt.Errorf("torch engine: checkpoint %s: %w", path, err)
	}
	return u, nil
}
