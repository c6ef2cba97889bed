package main

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/metrics"
)

func TestEvalSamplesCommand(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t)
	out, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", "../../models/classifier/classifier.safetensors",
		"--n", "6", "--steps", "3", "--sampler", "ddim")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"6 samples vs 12 test images", "FID", "KID"} {
		if !strings.Contains(out, want) {
			t.Errorf("report misses %q:\n%s", want, out)
		}
	}
	// --least-confident: all 6 samples (fewer than 64) in a grid of 8 per
	// row at scale 2 with 2-pixel gaps: 8·(56+2)+2 wide, 56+4 high.
	grid := filepath.Join(t.TempDir(), "worst.png")
	out, err = run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", "../../models/classifier/classifier.safetensors",
		"--n", "6", "--steps", "3", "--sampler", "ddim", "--least-confident", grid)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "least confident: "+grid+" (6 samples") {
		t.Errorf("report misses the least-confident line:\n%s", out)
	}
	img, err := data.LoadPNG(grid)
	if err != nil {
		t.Fatal(err)
	}
	if sh := img.Shape(); sh[2] != 60 || sh[3] != 6*58+2 {
		t.Errorf("least-confident grid %v, want 60 high and %d wide", sh, 6*58+2)
	}
	if _, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--n", "2", "--steps", "2", "--least-confident", filepath.Join(filepath.Dir(grid), "nofolder", "w.png")); err == nil || !strings.Contains(err.Error(), "--least-confident: folder") {
		t.Errorf("--least-confident in a missing folder: %v, want it refused before sampling", err)
	}
	if _, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", "nope.safetensors", "--n", "2", "--steps", "2"); err == nil || !strings.Contains(err.Error(), "nope.safetensors") {
		t.Errorf("missing classifier: %v", err)
	}
}

func TestTrainClassifierCommandErrors(t *testing.T) {
	if _, err := run(t, "train-classifier", "--data", "/nonexistent", "--out", t.TempDir()+"/c.safetensors"); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("missing data: %v", err)
	}
}

func TestTrainClassifierCommand(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t) // also writes tiny MNIST train and test files beside it
	dir := ckpt[:strings.LastIndex(ckpt, "/")]
	out := t.TempDir() + "/c.safetensors"
	stdout, err := run(t, "train-classifier", "--data", dir, "--out", out, "--batch", "4", "--max-steps", "3", "--epochs", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "test accuracy") || !strings.Contains(stdout, out) || !strings.Contains(stdout, "train halves 6 vs 6") {
		t.Errorf("output %q", stdout)
	}
	f, err := checkpoint.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"command":                "diffinv train-classifier --data=" + dir + " --out=" + out + " --epochs=1 --batch=4 --max-steps=3",
		"steps":                  "3",
		"batch_size":             "4",
		metrics.MetaRefFIDHalves: printedRef(stdout, "train halves"),
		metrics.MetaRefFID1000:   printedRef(stdout, "mean FID"),
	} {
		if got := f.Metadata[key]; got != want || want == "" {
			t.Errorf("metadata %s = %q, want %q", key, got, want)
		}
	}
	if _, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", out, "--n", "2", "--steps", "2"); err != nil {
		t.Errorf("the trained classifier does not load for eval: %v", err)
	}
}

// tinyMNISTDir writes n generated MNIST-format images as both the training
// and the test split into a fresh folder.
func tinyMNISTDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	writeTinyMNIST(t, dir, n)
	for _, name := range []string{"images-idx3-ubyte", "labels-idx1-ubyte"} {
		b, err := os.ReadFile(filepath.Join(dir, "train-"+name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "t10k-"+name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// safetensorsData returns a safetensors file's header (JSON) and its
// tensor bytes.
func safetensorsData(t *testing.T, path string) (header, payload []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8 {
		t.Fatalf("%s: %d bytes", path, len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > uint64(len(b)-8) {
		t.Fatalf("%s: header of %d bytes in a %d-byte file", path, n, len(b))
	}
	return b[8 : 8+n], b[8+n:]
}

// printedRef returns the number printed on the line of out starting with
// prefix: the FID of a comparison line ("… FID 0.1234  KID …"), or for the
// "mean FID …: 0.1234" line the number after the colon ("" if no line).
func printedRef(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			if i := strings.Index(l, "FID "); i >= 0 && !strings.HasPrefix(prefix, "mean") {
				return strings.Fields(l[i+4:])[0]
			}
			return strings.TrimSpace(l[strings.LastIndex(l, ":")+1:])
		}
	}
	return ""
}

// TestTrainClassifierRefOnly recomputes the reference numbers of existing
// classifier files (a fresh one without them and a copy of the shipped
// one) with --ref-only: without --write-ref the file is untouched; with it
// the metadata gains the printed numbers, keeps its other entries, and the
// tensors stay bit-identical.
func TestTrainClassifierRefOnly(t *testing.T) {
	dir := tinyMNISTDir(t, 16)
	fresh := filepath.Join(t.TempDir(), "fresh.safetensors")
	c, err := metrics.NewClassifier(rand.New(rand.NewSource(5)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(fresh, map[string]string{"note": "keep me"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, src string
		keep      map[string]string // metadata that must survive the rewrite
	}{
		{"fresh", fresh, map[string]string{"note": "keep me", "arch": metrics.ClassifierArch}},
		{"shipped copy", "../../models/classifier/classifier.safetensors", map[string]string{"test_accuracy": "0.9928", "seed": "1", "arch": metrics.ClassifierArch}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := os.ReadFile(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "c.safetensors")
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, "train-classifier", "--ref-only", "--data", dir, "--out", path)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, orig) {
				t.Error("--ref-only without --write-ref changed the file")
			}
			if !strings.Contains(out, "test accuracy") || !strings.Contains(out, "train halves 8 vs 8") || strings.Contains(out, "rewrote") {
				t.Errorf("output:\n%s", out)
			}
			out, err = run(t, "train-classifier", "--ref-only", "--write-ref", "--data", dir, "--out", path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "rewrote "+path) {
				t.Errorf("output:\n%s", out)
			}
			_, before := safetensorsData(t, tc.src)
			_, after := safetensorsData(t, path)
			if !bytes.Equal(before, after) {
				t.Errorf("tensor bytes changed (%d bytes before, %d after)", len(before), len(after))
			}
			f, err := checkpoint.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.keep {
				if f.Metadata[k] != v {
					t.Errorf("metadata %s = %q, want %q kept", k, f.Metadata[k], v)
				}
			}
			for key, prefix := range map[string]string{metrics.MetaRefFIDHalves: "train halves", metrics.MetaRefFID1000: "mean FID"} {
				want := printedRef(out, prefix)
				if got, ok := f.Metadata[key]; !ok || want == "" || got != want {
					t.Errorf("metadata %s = %q (present %v), printed %q in:\n%s", key, got, ok, want, out)
				}
			}
			back, err := metrics.LoadClassifier(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := back.ReferenceFID(metrics.MetaRefFID1000); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestTrainClassifierFlagErrors(t *testing.T) {
	dir := tinyMNISTDir(t, 8)
	path := filepath.Join(t.TempDir(), "c.safetensors")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"write-ref alone", []string{"--write-ref"}, "--write-ref"},
		{"ref-only with a training flag", []string{"--ref-only", "--seed", "3"}, "--seed"},
		{"ref-only with epochs", []string{"--ref-only", "--write-ref", "--epochs", "2"}, "--epochs"},
		{"ref-only on a missing file", []string{"--ref-only"}, path},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"train-classifier", "--data", dir, "--out", path}, tc.args...)
			_, err := run(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("%s was written", path)
			}
		})
	}
}
