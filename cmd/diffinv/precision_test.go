package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/nn"
	"github.com/diffinv/diffinv/train"
)

// precisionLine is the stderr line a command prints for a setting on the
// native engine.
func precisionLine(t *testing.T, setting string) string {
	t.Helper()
	_, why, err := nn.ResolvePrecision(setting)
	if err != nil {
		t.Fatalf("precision %s: %v", setting, err)
	}
	return "precision: " + why + "\n"
}

// TestPrecisionNames: the config key accepts exactly what nn resolves.
func TestPrecisionNames(t *testing.T) {
	for _, v := range nn.PrecisionNames {
		if _, err := config.Load(config.Sources{Sets: []string{"engine.precision=" + v}}); err != nil {
			t.Errorf("engine.precision=%s: %v", v, err)
		}
	}
	if got := strings.Join(nn.PrecisionNames, ","); got != "auto,bf16,fp32" {
		t.Errorf("nn.PrecisionNames %s, want the config key's auto,bf16,fp32", got)
	}
}

// TestResolvePrecisionEngines: the native engine resolves as nn does; the
// torch engine runs fp32 under auto and fp32 and refuses an explicit bf16.
func TestResolvePrecisionEngines(t *testing.T) {
	for _, s := range []string{"", "auto", "fp32", "bf16"} {
		p, why, err := resolvePrecision(s, "native")
		wp, wwhy, werr := nn.ResolvePrecision(s)
		if p != wp || why != wwhy || (err == nil) != (werr == nil) {
			t.Errorf("native %q: %v %q %v, want nn's %v %q %v", s, p, why, err, wp, wwhy, werr)
		}
	}
	for s, want := range map[string]string{"": "fp32 (auto): the torch engine runs float32 only", "auto": "fp32 (auto): the torch engine runs float32 only", "fp32": "fp32 as asked"} {
		p, why, err := resolvePrecision(s, "torch")
		if err != nil || p != nn.FP32 || !strings.HasPrefix(why, want) {
			t.Errorf("torch %q: %v %q %v, want fp32 with a reason starting %q", s, p, why, err, want)
		}
	}
	if _, _, err := resolvePrecision("bf16", "torch"); err == nil || err.Error() != "the torch engine runs float32 only; use --precision fp32 or auto" {
		t.Errorf("torch bf16: %v", err)
	}
}

// TestPrecisionUseSetsTheUNet: the resolved precision reaches the UNet, the
// line names it and why, and a bf16 that cannot run names the flag or the
// key and why.
func TestPrecisionUseSetsTheUNet(t *testing.T) {
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 8, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{4}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	bf16, why := nn.BF16Available()
	for _, tc := range []struct {
		flag, key, source string
	}{{"fp32", "auto", "--precision fp32"}, {"", "fp32", "config key engine.precision fp32"}, {"bf16", "fp32", "--precision bf16"}, {"", "bf16", "config key engine.precision bf16"}, {"", "auto", ""}} {
		pf := &precisionFlag{value: tc.flag}
		c := cfg
		c.Engine.Precision = tc.key
		if tc.flag != "" {
			c.Engine.Precision = tc.flag // what --set engine.precision=<flag> gives
		}
		var w bytes.Buffer
		p, _, err := pf.use(&w, &c, "native", net)
		if c.Engine.Precision == "bf16" && !bf16 {
			if err == nil || !strings.Contains(err.Error(), tc.source+": ") || !strings.Contains(err.Error(), "bf16 cannot run here") || !strings.Contains(err.Error(), why) {
				t.Errorf("%+v: error %v, want one naming %q and why (%s)", tc, err, tc.source, why)
			}
			if w.Len() != 0 {
				t.Errorf("%+v: printed %q before failing", tc, w.String())
			}
			continue
		}
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if net.Precision() != p {
			t.Errorf("%+v: the UNet runs %s, resolved %s", tc, net.Precision(), p)
		}
		if want := precisionLine(t, c.Engine.Precision); w.String() != want {
			t.Errorf("%+v: printed %q, want %q", tc, w.String(), want)
		}
	}
}

// precisionCommands are one cheap invocation of every command that runs a
// UNet, with --precision appended by the caller. out is a folder the
// command writes (or a file inside it).
func precisionCommands(t *testing.T) map[string]struct {
	args []string
	out  string
} {
	t.Helper()
	ckpt := tinyCheckpoint(t)
	mnist := mnistSizedCheckpoint(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "in.png")
	x := tensors.New(1, 1, 8, 8)
	for i := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(i%8)/4 - 1
	}
	if err := data.SavePNG(img, x); err != nil {
		t.Fatal(err)
	}
	digits := filepath.Join(dir, "digits")
	for _, d := range []string{digits, filepath.Join(dir, "sample")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := data.SavePNG(filepath.Join(digits, "a.png"), x); err != nil {
		t.Fatal(err)
	}
	exp := filepath.Join(dir, "exp.yaml")
	body := "name: tiny\ncheckpoint: " + mnist + "\ndataset: {name: mnist-test, n: 1}\ntasks:\n  - {name: inpaint-box, set: {measurement.noise.name: clean}}\n" +
		"methods:\n  - {name: ddnm, set: {steps: 3}}\nseeds: [0]\nmetrics: [psnr]\noutput: " + filepath.Join(dir, "exp-out") + "\n"
	if err := os.WriteFile(exp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	mnistData := t.TempDir()
	writeTinyMNIST(t, mnistData, 8)
	tiny := []string{"--set", "model.num_channels=8", "--set", "model.num_groups=4", "--set", "model.channel_mult=[1,2]", "--set", "model.attention_resolutions=[14]"}
	return map[string]struct {
		args []string
		out  string
	}{
		"sample": {[]string{"sample", "--checkpoint", ckpt, "--sampler", "ddim", "--steps", "2", "--n", "1", "--out", filepath.Join(dir, "sample", "s.png")}, filepath.Join(dir, "sample", "s.png")},
		"solve": {[]string{"solve", "--checkpoint", ckpt, "--task", "../../configs/tasks/inpaint-box.yaml", "--method", "ddnm", "--image", img, "--out", filepath.Join(dir, "solve"),
			"--set", "measurement.operator.size=4", "--set", "solver.steps=3"}, filepath.Join(dir, "solve")},
		"eval": {[]string{"eval", "samples", "--checkpoint", mnist, "--classifier", "../../models/classifier/classifier.safetensors", "--n", "2", "--steps", "2"}, ""},
		"demo": {[]string{"demo", "--checkpoint", ckpt, "--digits", digits, "--out", filepath.Join(dir, "demo"), "--tasks", "../../configs/tasks",
			"--task", "inpaint-box", "--method", "ddnm", "--ddnm-steps", "3", "--set", "measurement.operator.size=4"}, filepath.Join(dir, "demo")},
		"experiment": {[]string{"experiment", "run", exp, "--tasks", "../../configs/tasks"}, filepath.Join(dir, "exp-out")},
		"bench":      {append([]string{"bench", "unet", "--python", "", "--batch", "1", "--threads", "1", "--iters", "1", "--warmup", "0", "--rounds", "1"}, tiny...), ""},
		"train": {append([]string{"train", "--config", "../../configs/mnist.yaml", "--out", filepath.Join(dir, "train"), "--set", "data.dir=" + mnistData,
			"--set", "train.steps=1", "--set", "train.batch_size=2", "--set", "train.sample_every=0"}, tiny...), filepath.Join(dir, "train")},
	}
}

// TestPrecisionFlagCommands: --precision fp32 reaches every command that
// runs a UNet, which prints the precision line once; --precision bf16 is a
// clear error naming the flag and why while bf16 cannot run here (and
// nothing is written), and runs in bf16 once it can.
func TestPrecisionFlagCommands(t *testing.T) {
	cmds := precisionCommands(t)
	fp32 := precisionLine(t, "fp32")
	bf16, why := nn.BF16Available()
	for name, c := range cmds {
		t.Run(name, func(t *testing.T) {
			out, err := run(t, append(c.args, "--precision", "bf16")...)
			if !bf16 {
				if err == nil || !strings.Contains(err.Error(), "--precision bf16: ") || !strings.Contains(err.Error(), "bf16 cannot run here: "+why) {
					t.Errorf("--precision bf16 without bf16 kernels: %v, want an error naming the flag and why", err)
				}
				if strings.Contains(out, "precision: ") {
					t.Errorf("printed a precision line before failing:\n%s", out)
				}
				if c.out != "" {
					if _, serr := os.Stat(c.out); serr == nil {
						t.Errorf("%s was written although the precision cannot run", c.out)
					}
				}
			} else if err != nil || !strings.Contains(out, precisionLine(t, "bf16")) {
				t.Errorf("--precision bf16 with bf16 kernels: %v\n%s", err, out)
			}
			if c.out != "" {
				os.RemoveAll(c.out)
			}
			out, err = run(t, append(c.args, "--precision", "fp32")...)
			if err != nil {
				t.Fatalf("--precision fp32: %v\n%s", err, out)
			}
			if n := strings.Count(out, "precision: "); n != 1 || !strings.Contains(out, fp32) {
				t.Errorf("--precision fp32: %d precision lines, want one %q:\n%s", n, fp32, out)
			}
		})
	}
	if _, err := run(t, "sample", "--precision", "fp16", "--out", "x.png"); err == nil || !strings.Contains(err.Error(), `--precision "fp16": want one of auto, bf16, fp32`) {
		t.Errorf("--precision fp16: %v", err)
	}
}

// TestPrecisionLayers: --precision beats --set, which beats
// DIFFINV_ENGINE_PRECISION; a checkpoint's stored engine section, even a
// bf16 one, never decides; old checkpoints without the section load.
func TestPrecisionLayers(t *testing.T) {
	// A model file whose stored run config says bf16 (a hand-made or
	// foreign file: diffinv itself stores none).
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 8, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{4}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Diffusion.Steps, cfg.Sample.Steps, cfg.Data.Dataset = 20, 20, "folder"
	cfg.Engine.Precision = config.PrecisionBF16
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := cfg.YAML()
	if !strings.Contains(string(doc), "precision: bf16") {
		t.Fatalf("stored config lacks the bf16 engine section:\n%s", doc)
	}
	ckpt := filepath.Join(t.TempDir(), "bf16.safetensors")
	if err := net.Save(ckpt, map[string]string{RunConfigKey: string(doc)}); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(t.TempDir(), "s.png")
	sample := []string{"sample", "--checkpoint", ckpt, "--sampler", "ddim", "--steps", "2", "--n", "1", "--out", png}
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"checkpoint's bf16 ignored", "", nil, "auto"},
		{"env", "fp32", nil, "fp32"},
		{"set beats env", "bf16", []string{"--set", "engine.precision=fp32"}, "fp32"},
		{"flag beats set and env", "bf16", []string{"--set", "engine.precision=bf16", "--precision", "fp32"}, "fp32"},
		{"flag auto", "fp32", []string{"--precision", "auto"}, "auto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("DIFFINV_ENGINE_PRECISION", tc.env)
			}
			out, err := run(t, append(sample, tc.args...)...)
			if err != nil || !strings.Contains(out, precisionLine(t, tc.want)) {
				t.Errorf("%v, want the %s line:\n%s", err, tc.want, out)
			}
		})
	}
	// The shipped model was trained before the engine section existed.
	if out, err := run(t, "sample", "--checkpoint", "../../models/mnist/model.safetensors", "--sampler", "ddim", "--steps", "2", "--n", "1", "--out", png, "--precision", "fp32"); err != nil || !strings.Contains(out, precisionLine(t, "fp32")) {
		t.Errorf("shipped model (no engine section): %v\n%s", err, out)
	}
}

// TestPrecisionTorchEngine: the torch engine runs float32 only. An explicit
// bf16 is refused naming the flag (before libtorch is needed, so in any
// build); auto runs fp32 and the line says why.
func TestPrecisionTorchEngine(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	png := filepath.Join(t.TempDir(), "s.png")
	for _, args := range [][]string{
		{"sample", "--checkpoint", ckpt, "--engine", "torch", "--out", png, "--precision", "bf16"},
		{"solve", "--checkpoint", ckpt, "--engine", "torch", "--task", "../../configs/tasks/inpaint-box.yaml", "--out", t.TempDir(), "--precision", "bf16"},
		{"train", "--engine", "torch", "--set", "train.steps=1", "--out", t.TempDir(), "--precision", "bf16"},
	} {
		want := "--precision bf16: the torch engine runs float32 only; use --precision fp32 or auto"
		if _, err := run(t, args...); err == nil || err.Error() != want {
			t.Errorf("%v: %v, want %q", args[:3], err, want)
		}
	}
	out, err := run(t, "sample", "--checkpoint", ckpt, "--engine", "torch", "--sampler", "ddim", "--steps", "2", "--n", "1", "--out", png)
	if err != nil && !strings.Contains(err.Error(), "make build-torch") {
		t.Fatal(err)
	}
	if !strings.Contains(out, "precision: fp32 (auto): the torch engine runs float32 only (no autocast)\n") {
		t.Errorf("torch engine, auto: no fp32 line:\n%s", out)
	}
}

// TestTrainRecordsPrecision: the run record of `diffinv train` holds the
// precision that ran and the reason printed.
func TestTrainRecordsPrecision(t *testing.T) {
	mnistData, out := t.TempDir(), filepath.Join(t.TempDir(), "run")
	writeTinyMNIST(t, mnistData, 8)
	stdout, err := run(t, "train", "--config", "../../configs/mnist.yaml", "--out", out, "--set", "data.dir="+mnistData,
		"--set", "model.num_channels=8", "--set", "model.num_groups=4", "--set", "model.channel_mult=[1,2]", "--set", "model.attention_resolutions=[14]",
		"--set", "train.steps=1", "--set", "train.batch_size=2", "--set", "train.sample_every=0", "--precision", "fp32")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, train.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec train.Record
	if err := json.Unmarshal(b[:bytes.IndexByte(b, '\n')], &rec); err != nil {
		t.Fatal(err)
	}
	_, why, _ := nn.ResolvePrecision("fp32")
	if rec.Type != "run" || rec.Precision != "fp32" || rec.PrecisionReason != why || !strings.Contains(stdout, "precision: "+why) {
		t.Errorf("run record %q precision %q (%q), want fp32 (%q)", rec.Type, rec.Precision, rec.PrecisionReason, why)
	}
	if !strings.Contains(rec.Config, "engine:\n  precision: fp32\n") {
		t.Errorf("run record config lacks the setting:\n%s", rec.Config)
	}
}

// TestVersionAndKeysShowPrecision: `diffinv version` prints what auto picks
// here and why, and the BLAS; `diffinv config keys` lists the key and its
// environment variable.
func TestVersionAndKeysShowPrecision(t *testing.T) {
	out, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{precisionLine(t, "auto"), "\nblas: "} {
		if !strings.Contains(out, want) {
			t.Errorf("version misses %q:\n%s", want, out)
		}
	}
	out, err = run(t, "config", "keys")
	if err != nil || !strings.Contains(out, "engine.precision") || !strings.Contains(out, "DIFFINV_ENGINE_PRECISION") {
		t.Errorf("config keys: %v\n%s", err, out)
	}
}
