package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/metrics"
)

// fakeCelebARoot writes a CelebA root of n small PNG faces with the three
// label files (images i ≡ 0 mod 3 in test, the rest in train).
func fakeCelebARoot(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	imgs := filepath.Join(root, "img_align_celeba")
	if err := os.Mkdir(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	var part, id, attr strings.Builder
	fmt.Fprintf(&attr, "%d\nSmiling Young\n", n)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%06d.png", i)
		m := image.NewRGBA(image.Rect(0, 0, 36, 44))
		for p := 0; p < 36*44; p++ {
			m.Set(p%36, p/36, color.RGBA{uint8(7 * i), uint8(p % 256), 90, 255})
		}
		f, err := os.Create(filepath.Join(imgs, name))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, m)
		f.Close()
		split := 0
		if i%3 == 0 {
			split = 2
		}
		fmt.Fprintf(&part, "%s %d\n", name, split)
		fmt.Fprintf(&id, "%s %d\n", name, i)
		fmt.Fprintf(&attr, "%s %d %d\n", name, 2*(i%2)-1, 1)
	}
	for f, s := range map[string]string{"list_eval_partition.txt": part.String(), "identity_CelebA.txt": id.String(), "list_attr_celeba.txt": attr.String()} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestTrainAttrClassifierCommand: the command trains on the train split,
// prints the per-attribute table and writes a classifier whose metadata
// holds the attribute names, accuracies and reference distances.
func TestTrainAttrClassifierCommand(t *testing.T) {
	root := fakeCelebARoot(t, 18)
	out := filepath.Join(t.TempDir(), "attr.safetensors")
	stdout, err := run(t, "train-attr-classifier", "--data", root, "--out", out, "--max-steps", "2", "--batch", "4", "--ref-n", "6")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"loaded 12 train and 6 test faces", "| Smiling |", "| Young |", "reference: 6 train vs 6 test faces"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	clf, err := metrics.LoadAttrClassifier(out)
	if err != nil {
		t.Fatal(err)
	}
	md := clf.Metadata()
	if strings.Join(clf.Names(), ",") != "Smiling,Young" || md[MetaFaceRefFID] == "" || len(strings.Split(md["test_accuracy"], ",")) != 2 {
		t.Errorf("classifier names %v, metadata %v", clf.Names(), md)
	}
	if _, err := run(t, "train-attr-classifier", "--data", t.TempDir(), "--out", out); err == nil || !strings.Contains(err.Error(), "img_align_celeba") {
		t.Errorf("no CelebA root: %v", err)
	}
}
