package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultValidates(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	for _, name := range []string{"mnist.yaml", "celeba64.yaml", "ffhq256-adm.yaml", "celebahq256.yaml"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(Sources{File: filepath.Join("..", "configs", name)})
			if err != nil {
				t.Fatal(err)
			}
			// Every key must be written out in the shipped file at its own
			// path (not merely a key of the same last name elsewhere), with a
			// comment on its line.
			raw, _ := os.ReadFile(filepath.Join("..", "configs", name))
			var doc yaml.Node
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			for _, k := range Keys() {
				if strings.HasSuffix(k, ".*") {
					continue // operator parameters: free-form
				}
				key, val := yamlPath(doc.Content[0], strings.Split(k, "."))
				found := key != nil && (key.LineComment != "" || val.LineComment != "")
				if !found {
					t.Errorf("%s: key %s is not written with a comment", name, k)
				}
			}
			if want := map[string]string{"celebahq256.yaml": ArchDDPM}[name]; cfg.Model.Arch != want && !(want == "" && cfg.Model.Arch == ArchADM) {
				t.Errorf("%s: model.arch %q", name, cfg.Model.Arch)
			}
			if name == "celeba64.yaml" && (cfg.Model.InChannels != 3 || cfg.Data.Dataset != "celeba" || cfg.Data.Split != "train") {
				t.Errorf("celeba64: in_channels %d dataset %s split %s", cfg.Model.InChannels, cfg.Data.Dataset, cfg.Data.Split)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "train:\n  lr: 0.001\n  steps: 7\n  batch_size: 8\n")
	tests := []struct {
		name  string
		src   Sources
		lr    float64
		steps int
		bs    int
	}{
		{"defaults", Sources{}, Default().Train.LR, Default().Train.Steps, Default().Train.BatchSize},
		{"file", Sources{File: file}, 0.001, 7, 8},
		{"env beats file", Sources{File: file, Env: []string{"DIFFINV_TRAIN_LR=0.002", "HOME=/x"}}, 0.002, 7, 8},
		{"set beats env", Sources{File: file, Env: []string{"DIFFINV_TRAIN_LR=0.002"}, Sets: []string{"train.lr=0.0005"}}, 0.0005, 7, 8},
		{"env alone", Sources{Env: []string{"DIFFINV_TRAIN_STEPS=11"}}, Default().Train.LR, 11, Default().Train.BatchSize},
		{"non-config variables", Sources{Env: []string{"DIFFINV_OPENBLAS_CORETYPE=auto", "DIFFINV_CHECK_SHIPPED=1", "DIFFINV_NO_DNNL=1", "DIFFINV_DNNL_THREADING=omp", "DIFFINV_BENCH_PRECISION=bf16", "DIFFINV_CURVE_FP32=x"}}, Default().Train.LR, Default().Train.Steps, Default().Train.BatchSize},
		{"last set wins", Sources{Sets: []string{"train.steps=3", "train.steps=4"}}, Default().Train.LR, 4, Default().Train.BatchSize},
		{"layer beats env", Sources{File: file, Env: []string{"DIFFINV_TRAIN_LR=0.002"}, Layers: []map[string]any{{"train.lr": 0.003}}}, 0.003, 7, 8},
		{"set beats layer", Sources{Layers: []map[string]any{{"train.lr": 0.003, "train.steps": 9}}, Sets: []string{"train.lr=0.0005"}}, 0.0005, 9, Default().Train.BatchSize},
		{"last layer wins", Sources{Layers: []map[string]any{{"train.steps": 3}, {"train.steps": int64(4)}}}, Default().Train.LR, 4, Default().Train.BatchSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Train.LR != tc.lr || cfg.Train.Steps != tc.steps || cfg.Train.BatchSize != tc.bs {
				t.Errorf("got lr %v steps %d batch %d, want %v %d %d", cfg.Train.LR, cfg.Train.Steps, cfg.Train.BatchSize, tc.lr, tc.steps, tc.bs)
			}
		})
	}
}

func TestListsAndBools(t *testing.T) {
	cfg, err := Load(Sources{
		File: writeFile(t, "model:\n  channel_mult: [1, 2, 2]\n  learn_sigma: true\n"),
		Env:  []string{"DIFFINV_MODEL_ATTENTION_RESOLUTIONS=[14, 7]"},
		Sets: []string{"model.use_scale_shift_norm=false", "diffusion.variance=learned_range"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Model.ChannelMult; len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 2 {
		t.Errorf("channel_mult = %v", got)
	}
	if got := cfg.Model.AttentionResolutions; len(got) != 2 || got[0] != 14 || got[1] != 7 {
		t.Errorf("attention_resolutions = %v", got)
	}
	if !cfg.Model.LearnSigma || cfg.Model.UseScaleShiftNorm {
		t.Errorf("bools: learn_sigma %v use_scale_shift_norm %v", cfg.Model.LearnSigma, cfg.Model.UseScaleShiftNorm)
	}
	// The defaults' slices must not be shared with a loaded config.
	cfg.Model.ChannelMult[0] = 99
	if Default().Model.ChannelMult[0] == 99 {
		t.Error("Default() shares slices with loaded configs")
	}
}

func TestErrorsNameKeyValueAndExpectation(t *testing.T) {
	tests := []struct {
		name string
		src  Sources
		want []string // substrings of the error
	}{
		{"unknown set key", Sources{Sets: []string{"train.lrr=1"}}, []string{`"train.lrr"`, "train.lr"}},
		{"unknown section", Sources{Sets: []string{"trian.lr=1"}}, []string{`"trian.lr"`, "sections"}},
		{"unknown file key", Sources{File: writeFile(t, "train:\n  lr: 0.1\n  bogus: 3\n")}, []string{`"train.bogus"`}},
		{"unknown file section", Sources{File: writeFile(t, "nope:\n  a: 1\n")}, []string{`"nope"`}},
		{"section given a scalar", Sources{File: writeFile(t, "train: 3\n")}, []string{"train", "section", "3"}},
		{"unknown env", Sources{Env: []string{"DIFFINV_TRAIN_LX=1"}}, []string{"DIFFINV_TRAIN_LX"}},
		{"wrong type float", Sources{Sets: []string{"train.lr=abc"}}, []string{"train.lr", `"abc"`, "a number"}},
		{"wrong type int", Sources{Sets: []string{"train.steps=2.5"}}, []string{"train.steps", "2.5", "integer"}},
		{"wrong type bool", Sources{Sets: []string{"model.learn_sigma=maybe"}}, []string{"model.learn_sigma", "maybe", "true or false"}},
		{"wrong type string", Sources{Sets: []string{"diffusion.schedule=[1]"}}, []string{"diffusion.schedule", "string"}},
		{"wrong list element", Sources{Sets: []string{"model.channel_mult=[1,x]"}}, []string{"model.channel_mult[1]", "integer"}},
		{"wrong type in file", Sources{File: writeFile(t, "train:\n  steps: many\n")}, []string{"train.steps", "many"}},
		{"env wrong type", Sources{Env: []string{"DIFFINV_TRAIN_BATCH_SIZE=big"}}, []string{"train.batch_size", "big"}},
		{"range lr", Sources{Sets: []string{"train.lr=-1"}}, []string{"train.lr", "-1", "(0, 1)"}},
		{"range enum", Sources{Sets: []string{"diffusion.schedule=cosin"}}, []string{"diffusion.schedule", "cosin", "linear, cosine"}},
		{"range beta order", Sources{Sets: []string{"diffusion.beta_start=0.5", "diffusion.beta_end=0.1"}}, []string{"diffusion.beta_start", "0.5"}},
		{"cross-section", Sources{Sets: []string{"diffusion.variance=learned_range"}}, []string{"diffusion.variance", "learn_sigma"}},
		{"groups divide channels", Sources{Sets: []string{"model.num_channels=24"}}, []string{"model.num_groups", "32"}},
		{"image size vs levels", Sources{Sets: []string{"model.image_size=30", "model.channel_mult=[1,2,2]"}}, []string{"model.image_size", "30", "divisible by 4"}},
		{"sample steps", Sources{Sets: []string{"sample.steps=2000"}}, []string{"sample.steps", "2000"}},
		{"sample spacing", Sources{Sets: []string{"sample.spacing=cubic"}}, []string{"sample.spacing", "cubic", "uniform, quad"}},
		{"loss weight enum", Sources{Sets: []string{"train.loss_weight=snr"}}, []string{"train.loss_weight", "snr", "uniform, min_snr, p2"}},
		{"loss weight gamma", Sources{Sets: []string{"train.loss_weight=min_snr", "train.loss_weight_gamma=-1"}}, []string{"train.loss_weight_gamma", "-1", ">= 0"}},
		{"p2 k", Sources{Sets: []string{"train.loss_weight=p2", "train.loss_weight_k=-0.5"}}, []string{"train.loss_weight_k", "-0.5", ">= 0"}},
		{"malformed set", Sources{Sets: []string{"train.lr"}}, []string{"key=value"}},
		{"missing file", Sources{File: "/nonexistent/c.yaml"}, []string{"/nonexistent/c.yaml"}},
		{"bad yaml", Sources{File: writeFile(t, "train: [\n")}, []string{"YAML"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.src)
			if err == nil {
				t.Fatalf("no error, want one mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Train.LR = 0
	c.Train.BatchSize = 0
	c.Sample.Steps = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, k := range []string{"train.lr", "train.batch_size", "sample.steps"} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error %q misses %s", err, k)
		}
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	cfg, err := Load(Sources{Sets: []string{"train.lr=0.0005", "model.channel_mult=[1,2]", "model.attention_resolutions=[14]", "data.dir=some dir"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "lr: 0.0005") || !strings.Contains(string(b), "channel_mult: [1, 2]") {
		t.Errorf("YAML misses values:\n%s", b)
	}
	again, err := Load(Sources{File: writeFile(t, string(b))})
	if err != nil {
		t.Fatalf("printed YAML does not load back: %v\n%s", err, b)
	}
	b2, _ := again.YAML()
	if string(b) != string(b2) {
		t.Errorf("round trip differs:\n%s\n---\n%s", b, b2)
	}
	flat := strings.Join(cfg.Flat(), "\n")
	for _, want := range []string{"train.lr: 0.0005", "model.channel_mult: [1, 2]", "data.dir: some dir"} {
		if !strings.Contains(flat, want) {
			t.Errorf("Flat misses %q:\n%s", want, flat)
		}
	}
}

func TestFromYAML(t *testing.T) {
	c := Default()
	c.Train.LR = 0.0123
	c.Model.ChannelMult = []int{1, 3}
	b, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Train.LR != 0.0123 || len(got.Model.ChannelMult) != 2 || got.Model.ChannelMult[1] != 3 {
		t.Errorf("FromYAML lost values: %+v", got.Train)
	}
	if _, err := FromYAML([]byte("train:\n  nope: 1\n")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown key accepted: %v", err)
	}
}

func TestOperatorParams(t *testing.T) {
	file := writeFile(t, "measurement:\n  operator:\n    name: inpaint_box\n    size: 14\n    top: 3\n")
	cfg, err := Load(Sources{File: file, Sets: []string{"measurement.operator.top=5", "measurement.operator.kernel=[1,2]"}})
	if err != nil {
		t.Fatal(err)
	}
	op := cfg.Measurement.Operator
	if op.Name != "inpaint_box" || op.Params["size"] != 14 || op.Params["top"] != 5 || len(op.Params) != 3 {
		t.Errorf("operator %+v", op)
	}
	if _, has := op.Params["name"]; has {
		t.Error("name leaked into the params")
	}
	flat := strings.Join(cfg.Flat(), "\n")
	for _, want := range []string{"measurement.operator.name: inpaint_box", "measurement.operator.size: 14", "measurement.operator.kernel: [1, 2]"} {
		if !strings.Contains(flat, want) {
			t.Errorf("Flat misses %q", want)
		}
	}
	b, _ := cfg.YAML()
	again, err := Load(Sources{File: writeFile(t, string(b))})
	if err != nil || again.Measurement.Operator.Params["top"] != 5 {
		t.Fatalf("round trip: %v %+v\n%s", err, again, b)
	}
	// A new operator does not inherit the default operator's parameters.
	if d := Default(); len(d.Measurement.Operator.Params) != 0 {
		t.Errorf("default params %v", d.Measurement.Operator.Params)
	}
	if _, err := Load(Sources{Sets: []string{"measurement.operator.deep.x=1"}}); err == nil {
		t.Error("a nested key under the operator was accepted")
	}
	if _, err := Load(Sources{File: writeFile(t, "measurement:\n  operator:\n    name: x\n    sub:\n      a: 1\n")}); err == nil || !strings.Contains(err.Error(), "measurement.operator.sub") {
		t.Errorf("nested map in file: %v", err)
	}
	if _, err := Load(Sources{Sets: []string{"measurement.noise.name=poisson", "measurement.noise.rate=0"}}); err == nil || !strings.Contains(err.Error(), "measurement.noise.rate") {
		t.Errorf("poisson rate 0: %v", err)
	}
}

func TestPresetsUnderFile(t *testing.T) {
	preset := Preset{Name: "task x", YAML: []byte("train:\n  lr: 0.001\n  steps: 7\nmeasurement:\n  operator:\n    name: inpaint_box\n    size: 14\n")}
	file := writeFile(t, "train:\n  lr: 0.002\nmeasurement:\n  operator:\n    top: 2\n")
	cfg, err := Load(Sources{Presets: []Preset{preset}, File: file})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Train.LR != 0.002 || cfg.Train.Steps != 7 {
		t.Errorf("lr %v steps %d: want the file over the preset, the preset over defaults", cfg.Train.LR, cfg.Train.Steps)
	}
	if p := cfg.Measurement.Operator.Params; cfg.Measurement.Operator.Name != "inpaint_box" || p["size"] != 14 || p["top"] != 2 {
		t.Errorf("operator %+v: want the preset's name and size merged with the file's top", cfg.Measurement.Operator)
	}
	if _, err := Load(Sources{Presets: []Preset{{Name: "task y", YAML: []byte("bogus: 1\n")}}}); err == nil || !strings.Contains(err.Error(), "bogus") || !strings.Contains(err.Error(), "task y") {
		t.Errorf("unknown key in a preset: %v", err)
	}
}

// TestPresetOperatorOverFileOperator: a config file whose measurement
// section names another operator than the task preset's (configs/mnist.yaml
// names sr_bicubic) does not graft its operator onto the preset's; a file
// naming the preset's operator merges over it, and --set still wins.
func TestPresetOperatorOverFileOperator(t *testing.T) {
	preset := Preset{Name: "task inpaint-box", YAML: []byte("measurement:\n  operator:\n    name: inpaint_box\n    size: 14\n    position: random\n  noise:\n    sigma: 0.05\n")}
	cases := []struct {
		name, file string
		sets       []string
		wantName   string
		wantParams map[string]any
	}{
		{"other operator", "measurement:\n  operator:\n    name: sr_bicubic\n    factor: 4\n", nil, "inpaint_box", map[string]any{"size": 14, "position": "random"}},
		{"same operator", "measurement:\n  operator:\n    name: inpaint_box\n    size: 20\n", nil, "inpaint_box", map[string]any{"size": 20, "position": "random"}},
		{"set wins", "measurement:\n  operator:\n    name: sr_bicubic\n    factor: 4\n", []string{"measurement.operator.name=sr_bicubic", "measurement.operator.factor=2"}, "sr_bicubic", map[string]any{"size": 14, "position": "random", "factor": 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(Sources{Presets: []Preset{preset}, File: writeFile(t, "train:\n  lr: 0.002\n"+tc.file), Sets: tc.sets})
			if err != nil {
				t.Fatal(err)
			}
			op := cfg.Measurement.Operator
			if op.Name != tc.wantName || !reflect.DeepEqual(op.Params, tc.wantParams) {
				t.Errorf("operator %s %v, want %s %v", op.Name, op.Params, tc.wantName, tc.wantParams)
			}
			if cfg.Train.LR != 0.002 || cfg.Measurement.Noise.Sigma != 0.05 {
				t.Errorf("lr %v, sigma %v: the rest of the file and the preset must still apply", cfg.Train.LR, cfg.Measurement.Noise.Sigma)
			}
		})
	}
}

// TestModelArch checks model.arch: adm by default, ddpm accepted, anything
// else rejected with an error naming the value and the allowed ones.
func TestModelArch(t *testing.T) {
	if a := Default().Model.Arch; a != ArchADM {
		t.Errorf("default model.arch %q, want %q", a, ArchADM)
	}
	// ddpm with the settings its UNet has (one head, no FiLM, Upsample and
	// Downsample modules); with the adm defaults it is refused at load time,
	// the same check both engines make before building.
	ddpm := []string{"model.arch=ddpm", "model.use_scale_shift_norm=false", "model.resblock_updown=false",
		"model.num_heads=1", "model.num_head_channels=-1", "model.learn_sigma=false", "diffusion.variance=fixed_small"}
	cfg, err := Load(Sources{Sets: ddpm})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Sources{Sets: []string{"model.arch=ddpm"}}); err == nil || !strings.Contains(err.Error(), "model.arch ddpm") {
		t.Errorf("model.arch=ddpm over the adm defaults: %v, want the ddpm settings named", err)
	}
	if cfg.Model.Arch != ArchDDPM {
		t.Errorf("model.arch %q after --set model.arch=ddpm", cfg.Model.Arch)
	}
	// Empty is a model config from before the key (checkpoint metadata): adm.
	if _, err := Load(Sources{Sets: []string{"model.arch="}}); err != nil {
		t.Errorf("empty model.arch: %v, want it accepted as adm", err)
	}
	for _, bad := range []string{"unet", "DDPM", "adm2"} {
		_, err := Load(Sources{Sets: []string{"model.arch=" + bad}})
		if err == nil {
			t.Errorf("model.arch=%q accepted", bad)
			continue
		}
		for _, s := range []string{"model.arch", fmt.Sprintf("%q", bad), "adm", "ddpm"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("model.arch=%q: error %q does not mention %s", bad, err, s)
			}
		}
	}
}

// TestEnginePrecision checks engine.precision: auto by default, each valid
// value accepted from the file, the environment and --set (--set over the
// environment over the file), anything else rejected naming the key, the
// value and the valid ones.
func TestEnginePrecision(t *testing.T) {
	if p := Default().Engine.Precision; p != PrecisionAuto {
		t.Errorf("default engine.precision %q, want auto", p)
	}
	for _, v := range []string{"auto", "bf16", "fp32"} {
		for name, src := range map[string]Sources{
			"file": {File: writeFile(t, "engine:\n  precision: "+v+"\n")},
			"env":  {Env: []string{"DIFFINV_ENGINE_PRECISION=" + v}},
			"set":  {Sets: []string{"engine.precision=" + v}},
		} {
			cfg, err := Load(src)
			if err != nil {
				t.Errorf("%s %s: %v", name, v, err)
				continue
			}
			if cfg.Engine.Precision != v {
				t.Errorf("%s %s: engine.precision %q", name, v, cfg.Engine.Precision)
			}
		}
	}
	file := writeFile(t, "engine:\n  precision: bf16\n")
	for _, tc := range []struct {
		name string
		src  Sources
		want string
	}{
		{"file", Sources{File: file}, "bf16"},
		{"env beats file", Sources{File: file, Env: []string{"DIFFINV_ENGINE_PRECISION=fp32"}}, "fp32"},
		{"set beats env", Sources{File: file, Env: []string{"DIFFINV_ENGINE_PRECISION=fp32"}, Sets: []string{"engine.precision=auto"}}, "auto"},
	} {
		cfg, err := Load(tc.src)
		if err != nil || cfg.Engine.Precision != tc.want {
			t.Errorf("%s: %v, engine.precision %q, want %q", tc.name, err, cfg.Engine.Precision, tc.want)
		}
	}
	for _, bad := range []string{"fp16", "BF16", "float32", "1"} {
		for name, src := range map[string]Sources{
			"set":  {Sets: []string{"engine.precision=" + bad}},
			"env":  {Env: []string{"DIFFINV_ENGINE_PRECISION=" + bad}},
			"file": {File: writeFile(t, "engine:\n  precision: \""+bad+"\"\n")},
		} {
			_, err := Load(src)
			want := fmt.Sprintf("config key engine.precision: value %q is out of range, want one of auto, bf16, fp32", bad)
			if bad == "1" && name != "file" {
				want = "config key engine.precision: value 1 (int) has the wrong type, want a string"
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %q: error %v, want %q", name, bad, err, want)
			}
		}
	}
	if _, err := Load(Sources{Sets: []string{"engine.precison=fp32"}}); err == nil || !strings.Contains(err.Error(), "engine.precision") {
		t.Errorf("a misspelt engine key: %v, want an error listing engine.precision", err)
	}
	found := false
	for _, k := range Keys() {
		found = found || k == "engine.precision"
	}
	if !found {
		t.Error("Keys() does not list engine.precision")
	}
}

// TestStoredYAMLDropsEngine checks that the run config stored with weights
// carries no engine section (precision belongs to the machine that runs),
// that it decodes back with the default engine, and that run configs
// written before the section decode and validate.
func TestStoredYAMLDropsEngine(t *testing.T) {
	c := Default()
	c.Engine.Precision = PrecisionBF16
	full, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(full), "engine:\n  precision: bf16\n") {
		t.Errorf("YAML misses the engine section:\n%s", full)
	}
	stored, err := c.StoredYAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), "engine") || strings.Contains(string(stored), "precision") {
		t.Errorf("StoredYAML keeps the engine section:\n%s", stored)
	}
	if strings.Contains(string(stored), "classifier") {
		t.Errorf("StoredYAML keeps the evaluation classifier's section:\n%s", stored)
	}
	if c.Engine.Precision != PrecisionBF16 {
		t.Error("StoredYAML changed its receiver")
	}
	for name, doc := range map[string][]byte{"stored": stored, "pre-engine file": mustRead(t, filepath.Join("testdata", "run_config_pre_engine.yaml"))} {
		got, err := FromYAML(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Engine.Precision != PrecisionAuto {
			t.Errorf("%s: engine.precision %q, want the default auto", name, got.Engine.Precision)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An empty value (a section written empty) is auto, not an error.
	if _, err := Load(Sources{Sets: []string{"engine.precision="}}); err != nil {
		t.Errorf("empty engine.precision: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNoiseSigma01 checks measurement.noise.sigma_01 (σ on [0, 1] images,
// DDRM's and DDNM's convention): it sets sigma to twice its value from
// every source, agrees with an equal sigma given by the same source, and is
// an error against a different one; the key given by the source of higher
// precedence wins over the other.
func TestNoiseSigma01(t *testing.T) {
	preset := func(body string) []Preset { return []Preset{{Name: "task t", YAML: []byte(body)}} }
	cases := []struct {
		name      string
		src       Sources
		sigma, s1 float64
		errHas    []string
	}{
		{"default", Sources{}, 0.05, 0, nil},
		{"set", Sources{Sets: []string{"measurement.noise.sigma_01=0.1"}}, 0.2, 0.1, nil},
		{"env", Sources{Env: []string{"DIFFINV_MEASUREMENT_NOISE_SIGMA_01=0.025"}}, 0.05, 0.025, nil},
		{"file", Sources{File: "measurement:\n  noise:\n    sigma_01: 0.1\n"}, 0.2, 0.1, nil},
		{"preset", Sources{Presets: preset("measurement:\n  noise:\n    sigma_01: 0.1\n")}, 0.2, 0.1, nil},
		{"zero", Sources{Sets: []string{"measurement.noise.sigma_01=0"}}, 0, 0, nil},
		{"both agree", Sources{Sets: []string{"measurement.noise.sigma=0.2", "measurement.noise.sigma_01=0.1"}}, 0.2, 0.1, nil},
		{"both disagree", Sources{Sets: []string{"measurement.noise.sigma=0.1", "measurement.noise.sigma_01=0.1"}}, 0, 0,
			[]string{"sigma 0.1", "sigma_01 0.1", "0.2"}},
		{"preset sigma_01 under a set sigma", Sources{Presets: preset("measurement:\n  noise:\n    sigma_01: 0.1\n"), Sets: []string{"measurement.noise.sigma=0.3"}}, 0.3, 0, nil},
		{"preset sigma_01 under a layer sigma", Sources{Presets: preset("measurement:\n  noise:\n    sigma_01: 0.1\n"), Layers: []map[string]any{{"measurement.noise.sigma": 0.3}}}, 0.3, 0, nil},
		{"layer sigma_01 under a set sigma", Sources{Layers: []map[string]any{{"measurement.noise.sigma_01": 0.1}}, Sets: []string{"measurement.noise.sigma=0.3"}}, 0.3, 0, nil},
		{"preset sigma under a set sigma_01", Sources{Presets: preset("measurement:\n  noise:\n    sigma: 0.05\n"), Sets: []string{"measurement.noise.sigma_01=0.1"}}, 0.2, 0.1, nil},
		{"file disagrees with itself", Sources{File: "measurement:\n  noise:\n    sigma: 0.05\n    sigma_01: 0.05\n"}, 0, 0, []string{"disagree"}},
		{"negative", Sources{Sets: []string{"measurement.noise.sigma_01=-0.1"}}, 0, 0, []string{"measurement.noise.sigma_01", "-0.1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.src.File != "" {
				c.src.File = writeFile(t, c.src.File)
			}
			cfg, err := Load(c.src)
			if c.errHas != nil {
				if err == nil {
					t.Fatalf("accepted: sigma %v sigma_01 %v", cfg.Measurement.Noise.Sigma, cfg.Measurement.Noise.Sigma01)
				}
				for _, w := range c.errHas {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := cfg.Measurement.Noise; math.Abs(n.Sigma-c.sigma) > 1e-12 || n.Sigma01 != c.s1 {
				t.Errorf("sigma %v sigma_01 %v, want %v and %v", n.Sigma, n.Sigma01, c.sigma, c.s1)
			}
		})
	}
	// Defaults that carry sigma_01 (a stored run config) give way to a sigma
	// set on top.
	d := Default()
	d.Measurement.Noise.Sigma, d.Measurement.Noise.Sigma01 = 0.2, 0.1
	cfg, err := LoadOnto(d, Sources{Sets: []string{"measurement.noise.sigma=0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.Measurement.Noise; n.Sigma != 0.3 || n.Sigma01 != 0 {
		t.Errorf("inherited sigma_01 under a set sigma: sigma %v sigma_01 %v, want 0.3 and 0", n.Sigma, n.Sigma01)
	}
	// Without sigma_01 the YAML has no such key: configs written before it
	// existed keep their exact form.
	def := Default()
	b, err := def.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "sigma_01") {
		t.Errorf("default YAML mentions sigma_01:\n%s", b)
	}
}

// TestLoadConfigFileMustBeRegular: --config /dev/zero read forever; now it
// is refused, naming the path.
func TestLoadConfigFileMustBeRegular(t *testing.T) {
	for _, p := range []string{"/dev/zero", t.TempDir()} {
		if _, err := Load(Sources{File: p}); err == nil || !strings.Contains(err.Error(), p+" is a") || !strings.Contains(err.Error(), "want a regular file") {
			t.Errorf("Load(File: %s) = %v, want an error naming it", p, err)
		}
	}
}

// yamlPath returns the key and value nodes at path in a YAML mapping node,
// or nils when the path is absent.
func yamlPath(n *yaml.Node, path []string) (key, val *yaml.Node) {
	for i, p := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil, nil
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == p {
				key, next = n.Content[j], n.Content[j+1]
				break
			}
		}
		if next == nil {
			return nil, nil
		}
		if i == len(path)-1 {
			return key, next
		}
		n = next
	}
	return nil, nil
}

// TestLayers: a layer's values reach the config as typed, without the
// string round trip of --set: a string option that looks like a number
// stays a string (as "key=value" it would become the number 0.001), a
// float stays the float, a whole float goes into an integer key, typed lists fill
// list keys; a wrong type or an unknown key is the same error as from any
// other source, naming the key.
func TestLayers(t *testing.T) {
	cfg, err := Load(Sources{Layers: []map[string]any{{
		"solver.method":          "dps",
		"solver.tag":             "1e-3",
		"solver.scale":           math.Nextafter(0.3, 1), // 0.30000000000000004: the float itself, no printing
		"solver.flag":            true,
		"measurement.noise.name": "clean",
		"train.steps":            2.0,
		"model.channel_mult":     []int{1, 2, 2},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Solver.Options["tag"]; got != "1e-3" {
		t.Errorf("solver.tag = %#v, want the string \"1e-3\"", got)
	}
	if got := cfg.Solver.Options["scale"]; got != math.Nextafter(0.3, 1) {
		t.Errorf("solver.scale = %#v, want %v", got, math.Nextafter(0.3, 1))
	}
	if got := cfg.Solver.Options["flag"]; got != true {
		t.Errorf("solver.flag = %#v", got)
	}
	if cfg.Solver.Method != "dps" || cfg.Measurement.Noise.Name != "clean" || cfg.Train.Steps != 2 {
		t.Errorf("method %q noise %q steps %v", cfg.Solver.Method, cfg.Measurement.Noise.Name, cfg.Train.Steps)
	}
	if got := cfg.Model.ChannelMult; len(got) != 3 || got[0] != 1 || got[2] != 2 {
		t.Errorf("channel_mult = %v", got)
	}
	// The string form of the same setting does change it: the reason for layers.
	viaSet, err := Load(Sources{Sets: []string{"solver.tag=1e-3"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := viaSet.Solver.Options["tag"]; got != 0.001 {
		t.Errorf("--set solver.tag=1e-3 gives %#v; the test's premise (a number) no longer holds", got)
	}
	for _, c := range []struct {
		layer map[string]any
		want  []string
	}{
		{map[string]any{"train.steps": "many"}, []string{"train.steps", "an integer"}},
		{map[string]any{"train.steps": 2.5}, []string{"train.steps", "an integer"}},
		{map[string]any{"train.nope": 1}, []string{"layer 0", "train.nope"}},
		{map[string]any{"solver.x": map[string]any{"a": 1}}, []string{"layer 0", "solver.x", "want a string, bool, number"}},
		{map[string]any{"solver.x": nil}, []string{"solver.x"}},
		{map[string]any{"solver.x": []any{1, map[string]any{}}}, []string{"solver.x", "list item 1"}},
	} {
		_, err := Load(Sources{Layers: []map[string]any{c.layer}})
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("layer %v: %v, want an error containing %q", c.layer, err, w)
			}
		}
	}
}
