package model

import (
	"errors"
	"os"
	"testing"

	"github.com/diffinv/diffinv/config"
)

// TestDecodeConfigArch: a model config written before model.arch existed
// (the shipped checkpoint's, read from its metadata when it is present)
// decodes as adm and validates; an explicit arch is kept.
func TestDecodeConfigArch(t *testing.T) {
	docs := map[string]string{
		"no arch":   `{"image_size": 28, "in_channels": 1}`,
		"arch ddpm": `{"arch": "ddpm", "image_size": 28}`,
	}
	if _, meta, err := Load("../models/mnist/model.safetensors"); err == nil {
		docs["shipped checkpoint"] = meta[ConfigKey]
	} else if os.IsNotExist(errors.Unwrap(err)) || os.IsNotExist(err) {
		t.Logf("no shipped checkpoint: checking the literal documents only")
	} else {
		t.Errorf("loading the shipped checkpoint: %v", err)
	}
	want := map[string]string{"no arch": config.ArchADM, "arch ddpm": config.ArchDDPM, "shipped checkpoint": config.ArchADM}
	for name, doc := range docs {
		m, err := DecodeConfig(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Arch != want[name] {
			t.Errorf("%s: arch %q, want %q", name, m.Arch, want[name])
		}
		if name == "shipped checkpoint" {
			cfg := config.Default()
			cfg.Model = m
			if err := cfg.Validate(); err != nil {
				t.Errorf("shipped checkpoint's model config does not validate: %v", err)
			}
		}
	}
}
