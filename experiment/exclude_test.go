package experiment

import (
	"strings"
	"testing"
)

func TestExclude(t *testing.T) {
	base := `name: x
checkpoint: c
dataset: {name: mnist-test, n: 2}
tasks: [{name: sr4}, {name: deblur-motion, label: Motion}]
methods: [{name: dps}, {name: ddrm, label: DDRM}]
seeds: [0, 1]
metrics: [psnr]
`
	for _, tc := range []struct {
		exclude string
		cells   int
		err     string
	}{
		{"", 8, ""},
		{"exclude: [{task: deblur-motion, method: ddrm}]\n", 6, ""},
		{"exclude: [{task: Motion, method: DDRM}, {task: sr4, method: dps}]\n", 4, ""},
		{"exclude: [{task: nope, method: ddrm}]\n", 0, "exclude[0]"},
	} {
		e, err := Decode(strings.NewReader(base + tc.exclude))
		if err != nil {
			t.Fatal(err)
		}
		cells, err := e.Cells()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.exclude, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(cells) != tc.cells {
			t.Errorf("%q: %d cells, want %d", tc.exclude, len(cells), tc.cells)
		}
		for _, c := range cells {
			if c.Task.Name == "deblur-motion" && c.Method.Name == "ddrm" && tc.exclude != "" {
				t.Errorf("excluded cell %s ran", c.ID)
			}
		}
	}
}
