package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/train"
)

// TestOutputsNeverOverwriteInputs covers issue 19 items 6 and 9: export
// over its own training checkpoint, sample writing its raw samples over
// its PNG grid or over the checkpoint. Each is refused, naming both
// paths, and the input is left as it was.
func TestOutputsNeverOverwriteInputs(t *testing.T) {
	ckpt := tinyTrainCheckpoint(t)
	dir := filepath.Dir(ckpt)
	link := filepath.Join(t.TempDir(), "link.safetensors")
	if err := os.Symlink(ckpt, link); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(".", ckpt)
	if err != nil {
		rel = ckpt
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"export same path", []string{"export", "--checkpoint", ckpt, "--out", ckpt}, []string{"same file", ckpt}},
		{"export other spelling", []string{"export", "--checkpoint", ckpt, "--out", filepath.Join(dir, ".", filepath.Base(ckpt))}, []string{"same file"}},
		{"export relative", []string{"export", "--checkpoint", rel, "--out", ckpt}, []string{"same file"}},
		{"export via link", []string{"export", "--checkpoint", ckpt, "--out", link}, []string{"same file", link, ckpt}},
		{"sample out safetensors", []string{"sample", "--checkpoint", ckpt, "--steps", "2", "--n", "1", "--out", filepath.Join(t.TempDir(), "x.safetensors")}, []string{"x.safetensors", "PNG grid would be overwritten"}},
		{"sample raw over checkpoint", []string{"sample", "--checkpoint", ckpt, "--steps", "2", "--n", "1", "--out", strings.TrimSuffix(ckpt, ".safetensors") + ".png"}, []string{"same file", ckpt}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, tc.args...)
			if err == nil {
				t.Fatalf("%v: no error", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: error %q does not contain %q", tc.args, err, w)
				}
			}
			after, rerr := os.ReadFile(ckpt)
			if rerr != nil || string(after) != string(before) {
				t.Fatalf("%v changed the checkpoint", tc.args)
			}
		})
	}
	// A distinct --out still exports.
	if _, err := run(t, "export", "--checkpoint", ckpt, "--out", filepath.Join(t.TempDir(), "m.safetensors")); err != nil {
		t.Fatalf("export to another file: %v", err)
	}
}

// tinyTrainCheckpoint writes a training checkpoint (weights, EMA, Adam
// state) of tinyCheckpoint's network.
func tinyTrainCheckpoint(t *testing.T) string {
	t.Helper()
	net, cfg, err := loadCheckpoint(tinyCheckpoint(t), &configFlags{})
	if err != nil {
		t.Fatal(err)
	}
	params := net.Params()
	c := &train.Checkpoint{Step: 3, Config: cfg, Params: params, EMA: params, AdamM: params, AdamV: params}
	for name := range params {
		c.Names = append(c.Names, name)
	}
	sort.Strings(c.Names)
	p := filepath.Join(t.TempDir(), "step-00000003.safetensors")
	if err := train.SaveCheckpoint(p, c); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckpointPathsMustBeRegularFiles covers issue 19 item 10: a device
// or a directory as the checkpoint is an immediate error naming it, in
// every command that takes one (it hung on /dev/zero before); a folder
// without a model.safetensors names that file (a model folder is a
// checkpoint for the commands that load a prior).
func TestCheckpointPathsMustBeRegularFiles(t *testing.T) {
	out := t.TempDir()
	img := filepath.Join(out, "in.png")
	if err := data.SavePNG(img, tensors.New(1, 1, 8, 8)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"/dev/zero", out} {
		for _, args := range [][]string{
			{"sample", "--checkpoint", bad, "--out", filepath.Join(out, "s.png")},
			{"solve", "--checkpoint", bad, "--task", "../../configs/tasks/sr4.yaml", "--image", img, "--out", filepath.Join(out, "o")},
			{"export", "--checkpoint", bad, "--out", filepath.Join(out, "m.safetensors")},
			{"eval", "samples", "--checkpoint", bad, "--n", "1"},
		} {
			_, err := run(t, args...)
			// A folder is a model folder for the commands that load a
			// prior: then its missing model.safetensors is named.
			want := "want a regular file"
			if bad == out && args[0] != "export" {
				want = filepath.Join(out, "model.safetensors")
			}
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), bad) {
				t.Errorf("%v: %v, want an error naming %s and %q", args, err, bad, want)
			}
		}
	}
}

// TestSolveImageBomb covers issue 19 item 7 at the command: solve --image
// refuses, from the header, an image larger than the model takes.
func TestSolveImageBomb(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.png")
	if err := data.SavePNG(big, tensors.New(1, 1, 64, 64)); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "solve", "--checkpoint", ckpt, "--task", "../../configs/tasks/sr4.yaml", "--set", "measurement.operator.factor=2",
		"--image", big, "--out", filepath.Join(dir, "o"))
	if err == nil || !strings.Contains(err.Error(), "64×64, larger than the 8×8") {
		t.Fatalf("solve --image of 64×64 on an 8-px model: %v", err)
	}
}
