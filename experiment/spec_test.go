package experiment

import (
	"reflect"
	"strings"
	"testing"
)

func TestDecodeExample(t *testing.T) {
	e := mustDecode(testYAML)
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	two := 2
	want := &Experiment{
		Name:       "fake",
		Checkpoint: "ckpt.safetensors",
		Dataset:    Dataset{Name: "mnist-test", N: 3, Offset: 5},
		Tasks: []Task{
			{Name: "sr4", Label: "SR4", Set: map[string]any{"sigma": 0.05}},
			{Name: "inpaint-box"},
		},
		Methods: []Method{
			{Name: "dps", Label: "DPS", Set: map[string]any{"bonus": 1}},
			{Name: "ddrm"},
		},
		Seeds:   []int64{0, 1},
		Sweep:   map[string][]any{"solver.scale": {0.1, 1}},
		Metrics: []string{"psnr", "ssim", "consistency", "fid", "kid", "seconds"},
		Grid:    Grid{Images: &two, Scale: 1},
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("decoded\n%#v\nwant\n%#v", e, want)
	}
	if e.Tasks[0].Key() != "SR4" || e.Tasks[1].Key() != "inpaint-box" {
		t.Errorf("task keys %q %q", e.Tasks[0].Key(), e.Tasks[1].Key())
	}
}

func TestDecodeErrors(t *testing.T) {
	base := "name: x\ndataset: {name: mnist-test, n: 2}\ntasks: [{name: sr4}]\nmethods: [{name: dps}]\nseeds: [0]\nmetrics: [psnr]\n"
	if err := mustDecode(base).Validate(); err != nil {
		t.Fatalf("base: %v", err)
	}
	for _, tc := range []struct {
		name, yaml string
		decodeErr  bool // else a Validate error
		want       []string
	}{
		{"unknown top-level key", base + "outptu: x\n", true, []string{"outptu"}},
		{"unknown dataset key", strings.Replace(base, "n: 2", "n: 2, count: 3", 1), true, []string{"count"}},
		{"unknown task key", strings.Replace(base, "{name: sr4}", "{name: sr4, sett: {a: 1}}", 1), true, []string{"sett"}},
		{"bad type n", strings.Replace(base, "n: 2", "n: many", 1), true, []string{"many", "int"}},
		{"bad seed", strings.Replace(base, "seeds: [0]", "seeds: [zero]", 1), true, []string{"zero"}},
		{"set value is a map", strings.Replace(base, "{name: dps}", "{name: dps, set: {scale: {a: 1}}}", 1), true, []string{"methods[0] (dps).set.scale", "want a number, string or bool"}},
		{"sweep value is a list", base + "sweep: {solver.scale: [[1, 2]]}\n", true, []string{"sweep.solver.scale[0]"}},
		{"sweep not a list", base + "sweep: {solver.scale: 0.3}\n", true, []string{"line 7", "0.3"}},
		{"empty file", "", true, []string{"empty"}},
		{"two documents", base + "---\nname: y\n", true, []string{"more than one"}},
		{"empty tasks", strings.Replace(base, "tasks: [{name: sr4}]", "tasks: []", 1), false, []string{"tasks: empty"}},
		{"no methods", strings.Replace(base, "methods: [{name: dps}]\n", "", 1), false, []string{"methods: empty"}},
		{"no seeds", strings.Replace(base, "seeds: [0]\n", "", 1), false, []string{"seeds: empty"}},
		{"zero images", strings.Replace(base, "n: 2", "n: 0", 1), false, []string{"dataset.n: 0"}},
		{"unknown metric", strings.Replace(base, "[psnr]", "[psnr, lpips]", 1), false, []string{`"lpips"`, "psnr, ssim"}},
		{"duplicate method", strings.Replace(base, "[{name: dps}]", "[{name: dps}, {name: dps}]", 1), false, []string{`duplicate key "dps"`}},
		{"duplicate seed", strings.Replace(base, "[0]", "[0, 0]", 1), false, []string{"duplicate seed 0"}},
		{"bad sweep key", base + "sweep: {scale: [1, 2]}\n", false, []string{`"scale"`, "solver.KEY"}},
		{"empty sweep", base + "sweep: {solver.scale: []}\n", false, []string{"sweep.solver.scale: no values"}},
		{"duplicate sweep value", base + "sweep: {solver.scale: [1, 1.0]}\n", false, []string{"duplicate value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Decode(strings.NewReader(tc.yaml))
			if err == nil && !tc.decodeErr {
				err = e.Validate()
			} else if err == nil {
				t.Fatalf("Decode succeeded, want an error")
			} else if !tc.decodeErr {
				t.Fatalf("Decode: %v, want success and a Validate error", err)
			}
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

func TestSet(t *testing.T) {
	for _, tc := range []struct {
		set   string
		check func(e *Experiment) bool
	}{
		{"dataset.n=8", func(e *Experiment) bool { return e.Dataset.N == 8 }},
		{"dataset.offset=100", func(e *Experiment) bool { return e.Dataset.Offset == 100 }},
		{"dataset.name=mnist-train", func(e *Experiment) bool { return e.Dataset.Name == "mnist-train" }},
		{"name=other", func(e *Experiment) bool { return e.Name == "other" }},
		{"output=/tmp/x", func(e *Experiment) bool { return e.Output == "/tmp/x" }},
		{"checkpoint=a=b.safetensors", func(e *Experiment) bool { return e.Checkpoint == "a=b.safetensors" }},
		{"seeds=3, 4,5", func(e *Experiment) bool { return reflect.DeepEqual(e.Seeds, []int64{3, 4, 5}) }},
		{"metrics=psnr,fid", func(e *Experiment) bool { return reflect.DeepEqual(e.Metrics, []string{"psnr", "fid"}) }},
		{"grid.images=0", func(e *Experiment) bool { return e.GridImages() == 0 }},
		{"solver.steps=50", func(e *Experiment) bool {
			return e.Methods[0].Set["steps"] == 50 && e.Methods[1].Set["steps"] == 50 && e.Methods[0].Set["bonus"] == 1
		}},
		{"task.sigma=0", func(e *Experiment) bool { return e.Tasks[0].Set["sigma"] == 0 && e.Tasks[1].Set["sigma"] == 0 }},
		{"methods.DPS.set.scale=0.5", func(e *Experiment) bool {
			_, other := e.Methods[1].Set["scale"]
			return e.Methods[0].Set["scale"] == 0.5 && !other
		}},
		{"methods.dps.set.clip=true", func(e *Experiment) bool { return e.Methods[0].Set["clip"] == true }},
		{"methods.ddrm.set.kind=fast", func(e *Experiment) bool { return e.Methods[1].Set["kind"] == "fast" }},
		{"tasks.SR4.set.noise.sigma=0.1", func(e *Experiment) bool { return e.Tasks[0].Set["noise.sigma"] == 0.1 }},
		{"tasks.inpaint-box.label=Box", func(e *Experiment) bool { return e.Tasks[1].Label == "Box" }},
	} {
		t.Run(tc.set, func(t *testing.T) {
			e := mustDecode(testYAML)
			if err := e.Set(tc.set); err != nil {
				t.Fatal(err)
			}
			if !tc.check(e) {
				t.Errorf("after --set %s: %+v", tc.set, e)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"dataset.n", "want key=value"},
		{"=3", "want key=value"},
		{"dataset.n=eight", `"eight", want an integer`},
		{"seeds=1,x", `seed "x"`},
		{"datset.n=3", "unknown key"},
		{"methods.pgdm.set.scale=1", `no method entry "pgdm"`},
		{"methods.DPS.sett.scale=1", `field "sett.scale"`},
		{"methods.DPS.set.scale=", "empty value"},
		{"solver.=1", "empty option name"},
		{"solver.scale=[1, 2]", "is a list"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			err := mustDecode(testYAML).Set(tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Set(%q) = %v, want an error containing %q", tc.set, err, tc.want)
			}
		})
	}
	// A solver name shared by two labelled entries is ambiguous.
	e := mustDecode(strings.Replace(testYAML, "  - name: ddrm\n", "  - name: dps\n    label: DPS2\n", 1))
	if err := e.Set("methods.dps.set.scale=1"); err == nil || !strings.Contains(err.Error(), "several") {
		t.Errorf("ambiguous name: %v, want an error", err)
	}
	if err := e.Set("methods.DPS2.set.scale=1"); err != nil || e.Methods[1].Set["scale"] != 1 {
		t.Errorf("by label: %v %v", err, e.Methods[1].Set)
	}
}

func TestAddSweep(t *testing.T) {
	e := mustDecode(testYAML)
	if err := e.AddSweep("task.sigma=0, 0.05,0.2"); err != nil {
		t.Fatal(err)
	}
	if err := e.AddSweep("solver.scale=0.3,1"); err != nil { // replaces the file's axis
		t.Fatal(err)
	}
	if err := e.AddSweep("solver.mode=a,b,true,3"); err != nil {
		t.Fatal(err)
	}
	want := map[string][]any{
		"task.sigma":   {0, 0.05, 0.2},
		"solver.scale": {0.3, 1},
		"solver.mode":  {"a", "b", true, 3},
	}
	if !reflect.DeepEqual(e.Sweep, want) {
		t.Errorf("sweep %#v, want %#v", e.Sweep, want)
	}
	if got := e.SweepKeys(); !reflect.DeepEqual(got, []string{"solver.mode", "solver.scale", "task.sigma"}) {
		t.Errorf("SweepKeys %v", got)
	}
	for _, tc := range []struct{ spec, want string }{
		{"solver.scale", "want key=value"},
		{"scale=1,2", "want solver.KEY or task.KEY"},
		{"method.scale=1,2", "want solver.KEY or task.KEY"},
		{"solver.=1", "want solver.KEY"},
		{"solver.scale=1,,2", "empty value"},
	} {
		if err := e.AddSweep(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddSweep(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

// TestSetValues: --set and --sweep values are read by params.Parse, the
// reader of config's --set, into scalars: numbers typed as YAML types them,
// a quoted number stays a string, a list, a mapping, null or nothing is an
// error; integer keys take what params.Integer takes.
func TestSetValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"8", 8}, {"-2", -2}, {"0.5", 0.5}, {"1e-3", 0.001}, {"true", true}, {"false", false},
		{"dps", "dps"}, {"a=b", "a=b"}, {"1.0", 1.0}, {"'1e-3'", "1e-3"}, {`"8"`, "8"},
	} {
		e, err := Decode(strings.NewReader(testYAML))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Set("solver.k=" + tc.in); err != nil {
			t.Errorf("--set solver.k=%s: %v", tc.in, err)
			continue
		}
		if got := e.Methods[0].Set["k"]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("--set solver.k=%s gives %#v, want %#v", tc.in, got, tc.want)
		}
		if err := e.AddSweep("task.k=" + tc.in + ",zz"); err != nil {
			t.Errorf("--sweep task.k=%s: %v", tc.in, err)
		} else if got := e.Sweep["task.k"][0]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("--sweep task.k=%s gives %#v, want %#v", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ kv, want string }{
		{"solver.k=[1, 2]", "is a list"},
		{"solver.k=key: v", "is a mapping"},
		{"solver.k=null", "empty value"},
		{"solver.k= ", "empty value"},
		{"solver.k=[1", "not a YAML scalar"},
		{"dataset.n=2.5", `value "2.5", want an integer`},
		{"dataset.n=four", "want an integer"},
		{"seeds=0,x", `seed "x"`},
	} {
		e, _ := Decode(strings.NewReader(testYAML))
		if err := e.Set(tc.kv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want an error containing %q", tc.kv, err, tc.want)
		}
	}
	e, _ := Decode(strings.NewReader(testYAML))
	for _, kv := range []string{"dataset.n=4.0", "seeds=3, 4", "name=2024"} {
		if err := e.Set(kv); err != nil {
			t.Errorf("--set %s: %v", kv, err)
		}
	}
	if e.Dataset.N != 4 || !reflect.DeepEqual(e.Seeds, []int64{3, 4}) || e.Name != "2024" {
		t.Errorf("dataset.n %d, seeds %v, name %q", e.Dataset.N, e.Seeds, e.Name)
	}
}

func TestOpen(t *testing.T) {
	e, err := Open("testdata/example.yaml", []string{"dataset.n=2", "methods.DPS.set.scale=0.5"}, []string{"solver.steps=10,20"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Dataset.N != 2 || e.Methods[0].Set["scale"] != 0.5 || len(e.Sweep) != 2 {
		t.Errorf("overrides not applied: %+v", e)
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	// 2 tasks × 2 methods × 2 σ × 2 step counts × 3 seeds.
	if len(cells) != 48 {
		t.Errorf("%d cells, want 48", len(cells))
	}
	for _, tc := range []struct {
		path         string
		sets, sweeps []string
		want         string
	}{
		{"testdata/missing.yaml", nil, nil, "no such file"},
		{"testdata/example.yaml", []string{"dataset.n=0"}, nil, "dataset.n: 0"},
		{"testdata/example.yaml", []string{"bogus=1"}, nil, "--set bogus: unknown key"},
		{"testdata/example.yaml", nil, []string{"steps=1"}, "want solver.KEY or task.KEY"},
	} {
		if _, err := Open(tc.path, tc.sets, tc.sweeps); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s, %v, %v) = %v, want an error containing %q", tc.path, tc.sets, tc.sweeps, err, tc.want)
		}
	}
}
