package baseline

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/inverse/op"
)

// TestREADMETable recomputes the baseline table of inverse/baseline/README.md
// (PSNR in dB on the [0,1] scale, first 8 MNIST test digits, Gaussian noise
// σ_y = 0.05) and checks every number against the README's table (within
// 0.01 dB): the linear operators' rows on every run where MNIST is present
// (seconds), the phase-retrieval paragraph's numbers (minutes) only with
// DIFFINV_BASELINE_TABLE=1, which also prints the table.
func TestREADMETable(t *testing.T) {
	full := os.Getenv("DIFFINV_BASELINE_TABLE") == "1"
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var want [][]string // the README table's rows: the numeric cells
	for _, line := range strings.Split(string(readme), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) == 7 && cells[0] != "task" && !strings.HasPrefix(cells[0], "---") {
			want = append(want, cells[2:])
		}
	}
	check := func(row int, got []string) {
		t.Helper()
		if row >= len(want) {
			t.Fatalf("row %d beyond the README table's %d rows", row, len(want))
		}
		for j, g := range got {
			w := want[row][j]
			gv, gerr := strconv.ParseFloat(g, 64)
			wv, werr := strconv.ParseFloat(w, 64)
			if (gerr == nil) != (werr == nil) || (gerr != nil && g != w) || (gerr == nil && math.Abs(gv-wv) > 0.0100001) {
				t.Errorf("README row %d column %d: %s, recomputed %s", row+1, j+3, w, g)
			}
		}
	}
	ds, err := data.LoadMNIST(mnistDir, "test")
	if err != nil {
		t.Skip(err)
	}
	x, err := ds.Batch([]int{0, 1, 2, 3, 4, 5, 6, 7})
	if err != nil {
		t.Fatal(err)
	}
	shape := [3]int{1, 28, 28}
	tasks := []struct {
		name   string
		params map[string]any
	}{
		{"sr_bicubic", map[string]any{"factor": 2}},
		{"sr_bicubic", map[string]any{"factor": 4}},
		{"sr_avgpool", map[string]any{"factor": 4}},
		{"inpaint_box", nil},
		{"inpaint_random", nil},
		{"blur_gauss", nil},
		{"blur_gauss", map[string]any{"sigma": 1.5, "size": 9}},
		{"blur_motion", nil},
		{"colorize", nil},
	}
	if full {
		fmt.Println("| task | params | y as image | A†y | Tikhonov λ=0.01 | Wiener λ=0.01 | ADMM-TV |")
		fmt.Println("|---|---|---|---|---|---|---|")
	}
	row := 0
	for i, tk := range tasks {
		if tk.name == "colorize" {
			continue // MNIST is gray
		}
		o, err := op.New(tk.name, tk.params, shape, rand.New(rand.NewSource(int64(100+i))))
		if err != nil {
			t.Fatal(err)
		}
		a := o.(op.Linear)
		y := measure(t, a, x, 0.05, int64(200+i))
		cell := func(v float64) string { return fmt.Sprintf("%.2f", v) }
		asImg := "–"
		if ys := y.Shape(); ys[2] == 28 {
			asImg = cell(psnr(y, x))
		}
		p, _ := Pinv(a, y)
		tik, wie := "–", "–"
		if s, ok := o.(op.SVD); ok {
			r, _ := Tikhonov(s, y, 0.01)
			tik = cell(psnr(r, x))
		}
		if c, ok := o.(*op.CircConv); ok {
			r, _ := Wiener(c, y, 0.01)
			wie = cell(psnr(r, x))
		}
		tv, err := ADMMTV(a, y, DefaultTV())
		if err != nil {
			t.Fatal(err)
		}
		got := []string{asImg, cell(psnr(p, x)), tik, wie, cell(psnr(tv, x))}
		check(row, got)
		row++
		if full {
			fmt.Printf("| %s | %v | %s |\n", tk.name, tk.params, strings.Join(got, " | "))
		}
	}
	if row != len(want) {
		t.Errorf("recomputed %d rows, the README table has %d", row, len(want))
	}
	if !full {
		return
	}
	pr, _ := op.NewPhaseRetrieval(shape, 2)
	y := measure(t, pr, x, 0.05, 300)
	for _, m := range []string{"hio", "er"} {
		opt := DefaultPR()
		opt.Method = m
		xr, res, err := PhaseRetrieve(pr, y, opt, rand.New(rand.NewSource(301)))
		if err != nil {
			t.Fatal(err)
		}
		al, _ := Align(xr, x, 10)
		mr := 0.0
		for _, r := range res {
			mr += r / float64(len(res))
		}
		line := fmt.Sprintf("%.2f dB", psnr(al, x))
		if m == "er" {
			line = fmt.Sprintf("%.2f dB aligned", psnr(al, x))
		}
		if !strings.Contains(string(readme), fmt.Sprintf("%s %s", strings.ToUpper(m), line)) || !strings.Contains(string(readme), fmt.Sprintf("(%.2f raw)", psnr(xr, x))) {
			t.Errorf("%s: aligned %.2f dB, raw %.2f dB, residual %.3f: not what the README states", m, psnr(al, x), psnr(xr, x), mr)
		}
		fmt.Printf("| phase_retrieval | oversample 2, %s %d it × %d restarts | – | – | – | – | aligned PSNR %.2f (raw %.2f), magnitude residual %.3f |\n", m, opt.Iters, opt.Restarts, psnr(al, x), psnr(xr, x), mr)
	}
}
