package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestBenchSpecs(t *testing.T) {
	got, err := parseBenchSpecs([]string{"configs/mnist.yaml:64", " configs/celeba64.yaml:16", "a.yaml", "", "c:/x.yaml:3"}, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := []benchSpec{{"configs/mnist.yaml", 64}, {"configs/celeba64.yaml", 16}, {"a.yaml", 8}, {"c:/x.yaml", 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"a.yaml:0", "a.yaml:-2", "a.yaml:x", ":4", "a.yaml:"} {
		if _, err := parseBenchSpecs([]string{bad}, 8); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got, err := parseBenchSpecs(nil, 8); err != nil || got != nil {
		t.Errorf("no entries: %v, %v", got, err)
	}
}

func TestBenchUNetTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("times a small UNet")
	}
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs([]string{"bench", "unet", "--configs", "../../configs/mnist.yaml:1", "--python", "", "--iters", "1", "--warmup", "0", "--rounds", "1", "--threads", "1",
		"--set", "model.num_channels=8", "--set", "model.num_groups=4"})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, want := range []string{"== ../../configs/mnist.yaml: batch 1", "train_step fp32: diffinv ", "eps_vjp bf16: diffinv ", "conv 1×16×28×28 3×3→16 fp32: forward"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output misses %q:\n%s", want, out.String())
		}
	}
	root = newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs([]string{"bench", "unet", "--configs", "a.yaml", "--config", "b.yaml", "--python", ""})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("--config with --configs: %v", err)
	}
}
