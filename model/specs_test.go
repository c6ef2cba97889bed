package model

import (
	"path/filepath"
	"testing"

	"github.com/diffinv/diffinv/config"
)

// The shipped configs build networks of the sizes stated in the README and
// BENCHMARKS.md; configs/ffhq256-adm.yaml must have exactly the parameter
// count of DPS's FFHQ checkpoint (counted on bench/pytorch/unet.py built
// from DPS's model_config.yaml: 93,563,910 in 362 tensors).
func TestShippedConfigSizes(t *testing.T) {
	for _, tc := range []struct {
		file    string
		params  int
		tensors int
	}{
		{"mnist.yaml", 1191233, 166},
		{"ffhq256-adm.yaml", 93563910, 362},
		// PyTorch's reference UNet (bench/pytorch/unet.py from_config) of
		// this config has 10,733,059 parameters in 352 state-dict tensors.
		{"celeba64.yaml", 10733059, 352},
	} {
		cfg, err := config.Load(config.Sources{File: filepath.Join("..", "configs", tc.file)})
		if err != nil {
			t.Fatal(err)
		}
		specs, err := Specs(cfg.Model)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		n := 0
		for _, s := range specs {
			n += s.Size()
		}
		if n != tc.params {
			t.Errorf("%s: %d parameters, want %d", tc.file, n, tc.params)
		}
		if len(specs) != tc.tensors {
			t.Errorf("%s: %d tensors, want %d", tc.file, len(specs), tc.tensors)
		}
		t.Logf("%s: %d parameters in %d tensors", tc.file, n, len(specs))
	}
}
