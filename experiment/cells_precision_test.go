package experiment

import "testing"

// TestCellIDPrecision: an fp32 cell keeps the ID it had before the setting
// existed ("" and "fp32" agree); a bf16 cell has another one.
func TestCellIDPrecision(t *testing.T) {
	c := Cell{Checkpoint: "m.safetensors", CheckpointSHA256: "ab", Dataset: Dataset{Name: "mnist-test", N: 2},
		Task: Task{Name: "sr4", Set: map[string]any{}}, Method: Method{Name: "dps", Set: map[string]any{"scale": 0.3}}, Seed: 1}
	base := cellID(c)
	c.Precision = "fp32"
	if got := cellID(c); got != base {
		t.Errorf("fp32 cell ID %s, want the pre-precision ID %s", got, base)
	}
	c.Precision = "bf16"
	if got := cellID(c); got == base {
		t.Errorf("bf16 cell ID equals the fp32 one (%s)", got)
	}
	e := Experiment{Precision: "fp16"}
	if err := e.Validate(); err == nil {
		t.Error("precision fp16 passed validation")
	}
}

// TestCellIDEngine: a native cell keeps the ID it had before the engine
// setting ("" and "native" agree); a torch cell has another one.
func TestCellIDEngine(t *testing.T) {
	c := Cell{Checkpoint: "m.safetensors", CheckpointSHA256: "ab", Dataset: Dataset{Name: "mnist-test", N: 2},
		Task: Task{Name: "sr4", Set: map[string]any{}}, Method: Method{Name: "ddnm", Set: map[string]any{}}, Seed: 1}
	base := cellID(c)
	c.Engine = "native"
	if got := cellID(c); got != base {
		t.Errorf("native cell ID %s, want the pre-engine ID %s", got, base)
	}
	c.Engine = "torch"
	if got := cellID(c); got == base {
		t.Errorf("torch cell ID equals the native one (%s)", got)
	}
}
