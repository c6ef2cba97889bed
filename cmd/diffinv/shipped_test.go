package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/inverse/pipeline"
	"github.com/diffinv/diffinv/inverse/task"
	"github.com/diffinv/diffinv/nn"
)

// TestShippedModelSolvers is issue 7's acceptance check on the shipped MNIST
// model, 16 test digits, σ_y = 0.05: DPS on sr4 and inpaint-box beats the
// A†y baseline's PSNR by at least 2 dB, and DDNM on noise-free sr4 reaches
// measurement consistency below 1e-3; RED-diff (issue 22, default options,
// 1000 steps) beats A†y by at least 3 dB on both tasks (5.66 dB on sr4,
// 7.55 dB on the box measured, ~3.2 s/image). A few minutes on 2 cores: run it with
// `make check-solvers` (it is skipped otherwise).
func TestShippedModelSolvers(t *testing.T) {
	if os.Getenv("DIFFINV_CHECK_SHIPPED") == "" {
		t.Skip("set DIFFINV_CHECK_SHIPPED=1 (make check-solvers) to run the shipped-model solver check")
	}
	shippedSolverCheck(t, "../../"+DefaultModel, "mnist-test", 16, []shippedCase{
		{"sr4", "dps", nil, 2, 0},
		{"inpaint-box", "dps", nil, 2, 0},
		// DAPS-1K (200 levels × 5 ODE steps, 100 Langevin steps each; lr 1e-4
		// for sr4, 5e-5 for the box, the task presets): 3.78 and 6.24 dB
		// measured in bf16 (PSNR 18.97 and 18.91 dB).
		{"sr4", "daps", nil, 3, 0},
		{"inpaint-box", "daps", nil, 5, 0},
		{"sr4", "ddnm", []string{"measurement.noise.name=clean"}, -100, 1e-3},
		{"sr4", "red-diff", nil, 3, 0},
		{"inpaint-box", "red-diff", nil, 3, 0},
		{"sr4", "diffpir", nil, 2, 0},
		{"inpaint-box", "diffpir", nil, 2, 0},
		{"sr4", "pnp-dm", nil, 2, 0},
		{"inpaint-box", "pnp-dm", nil, 2, 0},
	})
}

// TestShippedFaceSolvers is issue 17's acceptance check on the face model
// (models/celeba64), 32 CelebA test faces, σ_y = 0.05 (the celeba64 task
// presets): DPS beats A†y by at least 3 dB PSNR on SR×4 and box inpainting,
// noise-free DDNM on SR×4 is consistent to 1e-3, and DDNM+ colorization
// beats the grey image (colorize's A†y) in PSNR. It runs the experiment
// experiments/check-faces.yaml with --resume (so an interrupted check loses
// at most a batch: DPS's 1000 steps take about 100 s a face on 2 cores
// without AMX, ≈ 2 h in all) and checks the numbers in its results.csv. Run
// it with `make check-faces` (skipped otherwise, and while the model is
// missing); DIFFINV_CHECK_FACE_MODEL names another model file (a stage of
// the recipe, say) and DIFFINV_CHECK_FACES_OUT the output folder (default
// the experiment's, experiments/results/check-faces).
func TestShippedFaceSolvers(t *testing.T) {
	if os.Getenv("DIFFINV_CHECK_FACES") == "" {
		t.Skip("set DIFFINV_CHECK_FACES=1 (make check-faces) to run the face-model acceptance check")
	}
	t.Chdir("../..") // the experiment's paths are the repository's
	args := []string{"experiment", "run", "experiments/check-faces.yaml", "--resume"}
	ckpt := "models/celeba64/model.safetensors"
	if p := os.Getenv("DIFFINV_CHECK_FACE_MODEL"); p != "" {
		if !sameFile(p, ckpt) { // the experiment names the shipped model itself
			args = append(args, "--set", "checkpoint="+p)
		}
		ckpt = p
	}
	if _, err := os.Stat(ckpt); err != nil {
		t.Skipf("the face model is missing (%v): make train-celeba, then make ship-celeba", err)
	}
	out := "experiments/results/check-faces"
	if o := os.Getenv("DIFFINV_CHECK_FACES_OUT"); o != "" {
		out = o
		args = append(args, "--out", o)
	}
	if p := os.Getenv("DIFFINV_CHECK_PRECISION"); p != "" {
		args = append(args, "--precision", p)
	}
	root := newRootCmd()
	root.SetOut(os.Stdout)
	root.SetErr(os.Stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := readResults(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []faceCheck{
		{task: "SR×4", method: "DPS", minGainDB: 3},
		{task: "Box", method: "DPS", minGainDB: 3},
		{task: "SR×4 noise-free", method: "DDNM", minGainDB: math.Inf(-1), maxCons: 1e-3},
		{task: "Colorize", method: "DDNM+", minGainDB: 0},
	} {
		msg, err := c.check(rows, 32)
		if err != nil {
			t.Error(err)
			continue
		}
		t.Log(msg)
	}
}

// sameFile reports whether paths a and b name one existing file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// resultRow is one image's line of an experiment's results.csv.
type resultRow struct {
	task, method      string
	image             int
	psnr, consistency float64
}

// readResults reads the task, method, image, psnr and consistency columns
// of an experiment's results.csv.
func readResults(r io.Reader) ([]resultRow, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("results.csv: %w", err)
	}
	if len(recs) == 0 {
		return nil, errors.New("results.csv: empty")
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, h := range []string{"task", "method", "image", "psnr", "consistency"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("results.csv: no %q column (header %v)", h, recs[0])
		}
	}
	var rows []resultRow
	for i, rec := range recs[1:] {
		img, err1 := strconv.Atoi(rec[col["image"]])
		p, err2 := strconv.ParseFloat(rec[col["psnr"]], 64)
		c, err3 := strconv.ParseFloat(rec[col["consistency"]], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("results.csv line %d: %w", i+2, err)
		}
		rows = append(rows, resultRow{rec[col["task"]], rec[col["method"]], img, p, c})
	}
	return rows, nil
}

// faceCheck is one row of the face acceptance check: method's mean PSNR on
// task at least minGainDB above A†y's, and (maxCons > 0) its mean
// consistency below maxCons. Both rows of an experiment cover the same
// test images, so check compares means over n images of each (it checks
// the counts, not the image indices).
type faceCheck struct {
	task, method string
	minGainDB    float64
	maxCons      float64
}

// check applies c to rows, which must hold n images of both c.method and
// A†y on c.task; it returns the figures checked, or an error saying which
// bar they missed.
func (c faceCheck) check(rows []resultRow, n int) (string, error) {
	var m, base, cons []float64
	for _, r := range rows {
		switch {
		case r.task == c.task && r.method == c.method:
			m = append(m, r.psnr)
			cons = append(cons, r.consistency)
		case r.task == c.task && r.method == "A†y":
			base = append(base, r.psnr)
		}
	}
	if len(m) != n || len(base) != n {
		return "", fmt.Errorf("%s / %s: %d images of the method and %d of A†y in results.csv, want %d each", c.task, c.method, len(m), len(base), n)
	}
	gain := mean(m) - mean(base)
	msg := fmt.Sprintf("%s / %s: PSNR %.2f dB, A†y %.2f, gain %.2f dB, consistency %.3g", c.task, c.method, mean(m), mean(base), gain, mean(cons))
	switch {
	case gain < c.minGainDB:
		return "", fmt.Errorf("%s: FAIL, want a gain ≥ %.1f dB", msg, c.minGainDB)
	case c.maxCons > 0 && mean(cons) >= c.maxCons:
		return "", fmt.Errorf("%s: FAIL, want consistency < %g", msg, c.maxCons)
	}
	return msg + ": pass", nil
}

// shippedCase is one row of a shipped-model solver check.
type shippedCase struct {
	task, method string
	sets         []string
	minGainDB    float64 // over the baseline's mean PSNR
	maxCons      float64 // mean ‖y − A(x̂)‖ per image; 0: unchecked
}

// shippedSolverCheck solves the first n images of dataset with each case's
// task (the model's task-preset variant) and method in the precision auto
// picks (or DIFFINV_CHECK_PRECISION), in batches of 16, and checks the
// gain over the baseline and the consistency.
func shippedSolverCheck(t *testing.T, ckpt, dataset string, n int, cases []shippedCase) {
	net, base, err := loadCheckpoint(ckpt, &configFlags{})
	if err != nil {
		t.Fatal(err)
	}
	prec, why, err := nn.ResolvePrecision(os.Getenv("DIFFINV_CHECK_PRECISION"))
	if err != nil {
		t.Fatal(err)
	}
	if err := net.SetPrecision(prec); err != nil {
		t.Fatal(err)
	}
	t.Logf("precision: %s", why)
	if !filepath.IsAbs(base.Data.Dir) {
		base.Data.Dir = "../../" + base.Data.Dir
	}
	src := imageSource{dataset: dataset, n: n}
	x, first, err := src.load(base)
	if err != nil {
		t.Fatal(err)
	}
	sched, den, err := schedule(base.Diffusion, 0, net)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.task+"-"+tc.method, func(t *testing.T) {
			preset, err := task.LoadVariant(tc.task, "../../"+task.DefaultDir, task.Variant(*base))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.LoadOnto(*base, config.Sources{Presets: []config.Preset{preset.Config},
				Sets: append([]string{"solver.method=" + tc.method, "solver.batch_size=16"}, tc.sets...)})
			if err != nil {
				t.Fatal(err)
			}
			s, err := pipeline.New(cfg, den, sched, preset.Defaults(tc.method), 0)
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.Solve(context.Background(), x, first, nil)
			if err != nil {
				t.Fatal(err)
			}
			gain := mean(r.PSNR) - mean(r.BaselinePSNR)
			t.Logf("%s %s: PSNR %.2f dB (%s %.2f, gain %.2f), SSIM %.3f, consistency %.2g, %.1f s/image",
				tc.task, tc.method, mean(r.PSNR), s.Baseline, mean(r.BaselinePSNR), gain, mean(r.SSIM), mean(r.Consistency), r.SecondsPerImage)
			if gain < tc.minGainDB {
				t.Errorf("PSNR gain over the baseline %.2f dB, want ≥ %.1f", gain, tc.minGainDB)
			}
			if tc.maxCons > 0 && mean(r.Consistency) >= tc.maxCons {
				t.Errorf("consistency %.3g, want < %g", mean(r.Consistency), tc.maxCons)
			}
		})
	}
}

// TestShippedBF16DPS is issue 16's check that bf16 does not cost accuracy:
// DPS on sr4 (1000 steps, σ_y = 0.05) on 16 shipped-model test digits in
// bf16 and in fp32, same seed: the mean PSNRs agree within 0.3 dB. It also
// logs seconds per image of both (the bf16 target is ≤ 2.5 s). Run by `make
// check-bf16` (skipped otherwise, and where bf16 cannot run).
func TestShippedBF16DPS(t *testing.T) {
	if os.Getenv("DIFFINV_CHECK_BF16") == "" {
		t.Skip("set DIFFINV_CHECK_BF16=1 (make check-bf16) to run the bf16 DPS check")
	}
	if ok, why := nn.BF16Available(); !ok {
		t.Skip("bf16 cannot run here: " + why)
	}
	ckpt := "../../" + DefaultModel
	net, base, err := loadCheckpoint(ckpt, &configFlags{})
	if err != nil {
		t.Fatal(err)
	}
	base.Data.Dir = "../../" + base.Data.Dir
	src := imageSource{dataset: "mnist-test", n: 16}
	x, first, err := src.load(base)
	if err != nil {
		t.Fatal(err)
	}
	preset, err := task.Load("sr4", "../../"+task.DefaultDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadOnto(*base, config.Sources{Presets: []config.Preset{preset.Config},
		Sets: []string{"solver.method=dps", "solver.batch_size=16"}})
	if err != nil {
		t.Fatal(err)
	}
	psnr := map[nn.Precision]float64{}
	for _, p := range []nn.Precision{nn.BF16, nn.FP32} {
		if err := net.SetPrecision(p); err != nil {
			t.Fatal(err)
		}
		sched, den, err := schedule(base.Diffusion, 0, net)
		if err != nil {
			t.Fatal(err)
		}
		s, err := pipeline.New(cfg, den, sched, preset.Defaults("dps"), 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Solve(context.Background(), x, first, nil)
		if err != nil {
			t.Fatal(err)
		}
		psnr[p] = mean(r.PSNR)
		t.Logf("DPS sr4 %s: PSNR %.2f dB, SSIM %.3f, consistency %.3g, %.2f s/image", p, mean(r.PSNR), mean(r.SSIM), mean(r.Consistency), r.SecondsPerImage)
	}
	if d := math.Abs(psnr[nn.BF16] - psnr[nn.FP32]); d > 0.3 {
		t.Errorf("bf16 PSNR %.2f dB, fp32 %.2f: %.2f dB apart, want ≤ 0.3", psnr[nn.BF16], psnr[nn.FP32], d)
	}
}

// The face check's arithmetic on a small results.csv: a gain at the bar
// passes, one below it fails, a consistency at the bar fails, and a method
// or baseline short of images is an error naming the counts.
func TestFaceCheck(t *testing.T) {
	const csvText = `cell,task,method,seed,image,psnr,ssim,consistency,seconds
a,SR×4,DPS,0,0,26,0.8,0.3,100
a,SR×4,DPS,0,1,24,0.8,0.5,100
b,SR×4,A†y,0,0,22,0.6,0.1,0
b,SR×4,A†y,0,1,22,0.6,0.1,0
c,Clean,DDNM,0,0,25,0.8,0.0005,5
c,Clean,DDNM,0,1,25,0.8,0.0015,5
d,Clean,A†y,0,0,20,0.6,0,0
d,Clean,A†y,0,1,20,0.6,0,0
e,Short,DPS,0,0,30,0.9,0.2,100
f,Short,A†y,0,0,20,0.6,0.1,0
f,Short,A†y,0,1,20,0.6,0.1,0
`
	rows, err := readResults(strings.NewReader(csvText))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		c       faceCheck
		wantErr string
	}{
		{faceCheck{task: "SR×4", method: "DPS", minGainDB: 3}, ""},                                          // gain 3.00
		{faceCheck{task: "SR×4", method: "DPS", minGainDB: 3.01}, "want a gain ≥"},                          // just short
		{faceCheck{task: "Clean", method: "DDNM", minGainDB: 0, maxCons: 1e-3}, "want consistency < 0.001"}, // mean 1e-3
		{faceCheck{task: "Clean", method: "DDNM", minGainDB: 0, maxCons: 2e-3}, ""},
		{faceCheck{task: "Short", method: "DPS", minGainDB: 0}, "1 images of the method and 2 of A†y"},
		{faceCheck{task: "Missing", method: "DPS", minGainDB: 0}, "0 images of the method and 0 of A†y"},
	}
	for _, tc := range tests {
		_, err := tc.c.check(rows, 2)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s / %s: %v, want a pass", tc.c.task, tc.c.method, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s / %s: error %v, want one containing %q", tc.c.task, tc.c.method, err, tc.wantErr)
		}
	}
	if _, err := readResults(strings.NewReader("cell,task,method\nx,y,z\n")); err == nil || !strings.Contains(err.Error(), `no "image" column`) {
		t.Errorf("a results.csv without an image column: %v, want an error naming it", err)
	}
}
