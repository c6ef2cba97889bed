package main

import (
	"bytes"
	"strings"
	"testing"
)

// run executes the CLI in-process with args and returns stdout and the error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestConfigPrint(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    []string
		wantErr string
	}{
		{
			name: "issue example",
			args: []string{"config", "print", "--config", "../../configs/mnist.yaml", "--set", "train.lr=0.0005"},
			want: []string{"train:\n", "  lr: 0.0005\n", "model:\n", "diffusion:\n", "sample:\n", "data:\n"},
		},
		{
			name: "flat",
			args: []string{"config", "print", "--flat", "--config", "../../configs/mnist.yaml", "--set", "train.lr=0.0005"},
			want: []string{"train.lr: 0.0005\n", "model.channel_mult: [1, 2, 2]\n"},
		},
		{
			name: "env under set",
			env:  map[string]string{"DIFFINV_TRAIN_STEPS": "123", "DIFFINV_TRAIN_LR": "0.3"},
			args: []string{"config", "print", "--flat", "--set", "train.lr=0.0005"},
			want: []string{"train.steps: 123\n", "train.lr: 0.0005\n"},
		},
		{name: "unknown key", args: []string{"config", "print", "--set", "train.bogus=1"}, wantErr: "train.bogus"},
		{name: "wrong type", args: []string{"config", "print", "--set", "train.steps=ten"}, wantErr: "train.steps"},
		{name: "missing file", args: []string{"config", "print", "--config", "nope.yaml"}, wantErr: "nope.yaml"},
		{name: "keys", args: []string{"config", "keys"}, want: []string{"train.lr", "DIFFINV_TRAIN_LR"}},
		{name: "version", args: []string{"version"}, want: []string{"diffinv " + version}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, err := run(t, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output misses %q:\n%s", w, out)
				}
			}
		})
	}
}
