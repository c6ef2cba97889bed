package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/metrics"
	"github.com/diffinv/diffinv/model"
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
	// n faces in train and test (every third), then 4 in val.
	fmt.Fprintf(&attr, "%d\nSmiling Young\n", n+4)
	for i := 1; i <= n+4; i++ {
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
		if i > n {
			split = 1
		} else if i%3 == 0 {
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

// TestSolveFaces: a face checkpoint (data.dataset celeba) solves CelebA's
// test split (--dataset celeba-test) and a user's own photo (--image, of
// any size: cropped and resized as CelebA's are).
func TestSolveFaces(t *testing.T) {
	root := fakeCelebARoot(t, 12)
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 8, InChannels: 3, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{4}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Diffusion.Steps, cfg.Sample.Steps = 20, 20
	cfg.Data = config.Data{Dataset: "celeba", Dir: root, Split: "train"}
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "face.safetensors")
	if err := net.Save(ckpt, map[string]string{RunConfigKey: string(doc)}); err != nil {
		t.Fatal(err)
	}
	photo := filepath.Join(t.TempDir(), "me.png")
	m := image.NewRGBA(image.Rect(0, 0, 60, 40))
	f, _ := os.Create(photo)
	png.Encode(f, m)
	f.Close()
	for _, src := range [][]string{{"--dataset", "celeba-test", "--n", "2", "--offset", "1"}, {"--image", photo}} {
		out := filepath.Join(t.TempDir(), "solve")
		args := append([]string{"solve", "--checkpoint", ckpt, "--task", "inpaint-box", "--tasks", "../../configs/tasks", "--method", "ddnm",
			"--set", "measurement.operator.size=4", "--set", "solver.steps=3", "--out", out}, src...)
		stdout, err := run(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", src, err)
		}
		if !strings.Contains(stdout, "operator inpaint_box {position: random, size: 4}") {
			t.Errorf("%v: no resolved operator line:\n%s", src, stdout)
		}
		if _, err := os.Stat(filepath.Join(out, "grid.png")); err != nil {
			t.Errorf("%v: no grid: %v", src, err)
		}
	}
	if _, err := run(t, "solve", "--checkpoint", ckpt, "--task", "../../configs/tasks/sr4.yaml", "--dataset", "celeba-test", "--n", "9", "--out", t.TempDir()); err == nil || !strings.Contains(err.Error(), "the celeba-test set has 4 images") {
		t.Errorf("--n beyond the split: %v", err)
	}
}

// TestFaceTaskVariant: a 64-px CelebA checkpoint takes its task presets
// from configs/tasks/celeba64 (DPS's settings scaled from 256 px), an
// MNIST one from configs/tasks.
func TestFaceTaskVariant(t *testing.T) {
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 64, InChannels: 3, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{32}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Data = config.Data{Dataset: "celeba", Dir: "unused", Split: "train"}
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := cfg.YAML()
	ckpt := filepath.Join(t.TempDir(), "face64.safetensors")
	if err := net.Save(ckpt, map[string]string{RunConfigKey: string(doc)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ckpt, task, wantPath, wantLine string }{
		{ckpt, "inpaint-box", "celeba64/inpaint-box.yaml", "size: 32"},
		{ckpt, "deblur-gauss", "celeba64/deblur-gauss.yaml", "boundary: reflect"},
		{tinyCheckpoint(t), "inpaint-box", "configs/tasks/inpaint-box.yaml", "size: 14"},
	} {
		_, got, preset, err := loadCheckpointTask(c.ckpt, &configFlags{}, c.task, "../../configs/tasks")
		if err != nil {
			t.Fatal(err)
		}
		if line := taskLine(preset, got); !strings.HasSuffix(preset.Path, c.wantPath) || !strings.Contains(line, c.wantLine) {
			t.Errorf("%s: preset %s, line %q, want %s with %q", c.task, preset.Path, line, c.wantPath, c.wantLine)
		}
	}
}

// TestEvalFaces: eval samples on a CelebA model measures its samples with
// the face classifier against the test split and the training crops and
// prints the gate's verdict (an untrained model fails it).
func TestEvalFaces(t *testing.T) {
	root := fakeCelebARoot(t, 18)
	clfPath := filepath.Join(t.TempDir(), "attr.safetensors")
	if _, err := run(t, "train-attr-classifier", "--data", root, "--out", clfPath, "--max-steps", "1", "--batch", "4", "--ref-n", "6"); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 64, InChannels: 3, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{32}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Diffusion.Steps = 20
	cfg.Data = config.Data{Dataset: "celeba", Dir: root, Split: "train"}
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := cfg.YAML()
	ckpt := filepath.Join(t.TempDir(), "face64.safetensors")
	if err := net.Save(ckpt, map[string]string{RunConfigKey: string(doc)}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", clfPath, "--n", "4", "--steps", "2", "--precision", "fp32")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4 samples vs 6 test faces", "attribute shares (samples vs test faces)", "nearest training crop, median RMS distance", "quality gate (FID ≤"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Against the val split (for choices): the same report, no gate.
	out, err = run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", clfPath, "--n", "4", "--steps", "2", "--precision", "fp32", "--reference", "val")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4 samples vs 4 val faces", "attribute shares (samples vs val faces)", "val faces 0.", "quality gate: not applied"} {
		if !strings.Contains(out, want) {
			t.Errorf("--reference val: output lacks %q:\n%s", want, out)
		}
	}
	// --least-confident is MNIST's: a face model refuses it by name.
	if _, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", clfPath, "--n", "4", "--steps", "2", "--least-confident", "w.png"); err == nil || !strings.Contains(err.Error(), "--least-confident w.png: for MNIST models only") {
		t.Errorf("--least-confident on a face model: %v", err)
	}
}
