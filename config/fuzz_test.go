package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary YAML files and --set values to Load: it must
// never panic, and whatever it accepts must validate and print back as YAML
// that loads to the same config.
func FuzzLoad(f *testing.F) {
	f.Add("train:\n  lr: 0.001\n", "model.channel_mult=[1,2]")
	f.Add("model:\n  channel_mult: 3\n", "train.steps=1e3")
	f.Add("", "data.dir=")
	f.Fuzz(func(t *testing.T, file, set string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Sources{File: p, Sets: []string{set}})
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted a config that does not validate: %v", err)
		}
		b, err := cfg.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		again, err := Load(Sources{File: p})
		if err != nil {
			t.Fatalf("printed config does not load back: %v\n%s", err, b)
		}
		b2, _ := again.YAML()
		if string(b) != string(b2) {
			t.Fatalf("round trip differs:\n%s\n---\n%s", b, b2)
		}
	})
}
