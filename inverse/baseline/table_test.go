package baseline

import (
	"fmt"
	"math/rand"
	"os"
	"testing"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/inverse/op"
)

// TestREADMETable prints the baseline table of inverse/README.md: PSNR (dB,
// [0,1] scale) on the first 8 MNIST test digits with Gaussian noise
// σ_y = 0.05. It takes a few minutes, so it only runs with
// DIFFINV_BASELINE_TABLE=1.
func TestREADMETable(t *testing.T) {
	if os.Getenv("DIFFINV_BASELINE_TABLE") != "1" {
		t.Skip("set DIFFINV_BASELINE_TABLE=1 to print the README table")
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
	fmt.Println("| task | params | y as image | A†y | Tikhonov λ=0.01 | Wiener λ=0.01 | ADMM-TV |")
	fmt.Println("|---|---|---|---|---|---|---|")
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
		fmt.Printf("| %s | %v | %s | %s | %s | %s | %s |\n", tk.name, tk.params, asImg, cell(psnr(p, x)), tik, wie, cell(psnr(tv, x)))
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
		fmt.Printf("| phase_retrieval | oversample 2, %s %d it × %d restarts | – | – | – | – | aligned PSNR %.2f (raw %.2f), magnitude residual %.3f |\n", m, opt.Iters, opt.Restarts, psnr(al, x), psnr(xr, x), mr)
	}
}
