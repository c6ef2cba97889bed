package runner

import (
	"testing"

	"github.com/diffinv/diffinv/experiment"
)

// TestCellCost: a solve cell costs its images × the method's network calls
// per image, from its resolved options or the method's defaults.
func TestCellCost(t *testing.T) {
	var r Runner
	cases := []struct {
		method   string
		resolved []string
		want     float64 // per image
	}{
		{"dps", nil, 3000},
		{"dps", []string{"solver.steps: 250"}, 750},
		{"mcg", nil, 3000},
		{"pigdm", nil, 300},
		{"moment-matching", []string{"solver.steps: 50"}, 150},
		{"projection", nil, 1000},
		{"red-diff", nil, 1000},
		{"red-diff", []string{"solver.steps: 0"}, 1000}, // 0 keeps the 1000-step schedule
		{"red-diff", []string{"solver.steps: 100"}, 100},
		{"ddrm", nil, 20},
		{"ddnm+", nil, 100},
		{"diffpir", nil, 100},
		{"daps", nil, 1000},
		{"daps", []string{"solver.steps: 50", "solver.ode_steps: 2"}, 100},
		{"pnp-dm", nil, 2936},
		{"pnp-dm", []string{"solver.iters: 50"}, 1468},
		{"pinv", nil, 1},
		{"admm_tv", nil, 1},
	}
	for _, tc := range cases {
		c := experiment.Cell{Method: experiment.Method{Name: tc.method}, Dataset: experiment.Dataset{N: 4}, Resolved: tc.resolved}
		if got := r.CellCost(c); got != 4*tc.want {
			t.Errorf("%s %v: cost %v, want 4 × %v", tc.method, tc.resolved, got, tc.want)
		}
	}
}
