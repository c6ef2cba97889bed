package experiment

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/diffinv/diffinv/internal/tensors"
)

// fakeRunner produces deterministic metrics from a cell's settings:
//
//	psnr(image i) = 20 + 2·seed + 0.1·i + bonus + 5·scale + 10·sigma
//	ssim(image i) = 0.5 + 0.01·seed + 0.001·i
//	consistency(image i) = 0.1·(i+1)
//	seconds(image i) = 1 + 0.5·i
//	fid = 10 + 3·seed + bonus,  kid = 0.01·(seed+1)
//
// with bonus and scale read from the method's set, sigma from the task's
// set (default 0) and i the
// image's position in the cell. Grid images are constant images of value
// (i+1)/10 (truth), −(i+1)/10 (recon) and a quarter-size y of value 0.5.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	// countFile, when set, gets one line per call (the cell ID).
	countFile string
	// blockAt > 0 blocks forever in the blockAt-th call (1-based).
	blockAt int
	// noSeconds leaves "seconds" to Run.
	noSeconds bool
	// drop removes this metric from the results.
	drop string
	// invalid makes ValidateCell reject cells of this method.
	invalid string
	// alternate replaces psnr's 2·seed by −3·seed on even images and
	// +3·seed on odd ones, so that different seeds win on different images.
	alternate bool
}

func num(m map[string]any, k string) float64 {
	switch x := m[k].(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

func (f *fakeRunner) ValidateCell(c Cell) error {
	if f.invalid != "" && c.Method.Name == f.invalid {
		return fmt.Errorf("method %q rejected", c.Method.Name)
	}
	return nil
}

func (f *fakeRunner) RunCell(ctx context.Context, c Cell, progress func(done, total int)) (*CellResult, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c.ID)
	n := len(f.calls)
	f.mu.Unlock()
	if f.countFile != "" {
		fh, err := os.OpenFile(f.countFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(fh, c.ID)
		fh.Sync()
		fh.Close()
	}
	if f.blockAt > 0 && n == f.blockAt {
		// The helper process is killed here. (A bare <-ctx.Done() on a
		// background context would be a deadlock the runtime aborts.)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Minute):
			return nil, fmt.Errorf("fake runner: not killed within a minute")
		}
	}
	bonus, scale, sigma := num(c.Method.Set, "bonus"), num(c.Method.Set, "scale"), num(c.Task.Set, "sigma")
	seed := float64(c.Seed)
	res := &CellResult{CellMetrics: map[string]float64{}}
	for i := range c.Dataset.N {
		fi := float64(i)
		v := map[string]float64{
			"psnr":        20 + 2*seed + 0.1*fi + bonus + 5*scale + 10*sigma,
			"ssim":        0.5 + 0.01*seed + 0.001*fi,
			"consistency": 0.1 * (fi + 1),
			"seconds":     1 + 0.5*fi,
		}
		if f.alternate {
			v["psnr"] += -2*seed - 3*seed
			if i%2 == 1 {
				v["psnr"] += 6 * seed
			}
		}
		if f.noSeconds {
			delete(v, "seconds")
		}
		delete(v, f.drop)
		res.Images = append(res.Images, ImageMetrics{Index: c.Dataset.Offset + i, Values: v})
		progress(i+1, c.Dataset.N)
	}
	for _, m := range c.Metrics {
		switch m {
		case "fid":
			res.CellMetrics["fid"] = 10 + 3*seed + bonus
		case "kid":
			res.CellMetrics["kid"] = 0.01 * (seed + 1)
		}
	}
	delete(res.CellMetrics, f.drop)
	if g := c.GridImages; g > 0 {
		const side = 8
		truth, recon, y := tensors.New(g, 1, side, side), tensors.New(g, 1, side, side), tensors.New(g, 1, side/4, side/4)
		td, rd, yd := tensors.F32(truth), tensors.F32(recon), tensors.F32(y)
		for i := range g {
			for j := range side * side {
				td[i*side*side+j] = float32(i+1) / 10
				rd[i*side*side+j] = -float32(i+1) / 10
			}
			for j := range side * side / 16 {
				yd[i*side*side/16+j] = 0.5
			}
		}
		res.Grid = &GridImages{Truth: truth, Y: y, Recon: recon}
	}
	return res, nil
}

// testYAML is a small experiment: 2 tasks × 2 methods × 2 scales × 2 seeds.
const testYAML = `
name: fake
checkpoint: ckpt.safetensors
dataset: {name: mnist-test, n: 3, offset: 5}
tasks:
  - name: sr4
    label: SR4
    set: {sigma: 0.05}
  - name: inpaint-box
methods:
  - name: dps
    label: DPS
    set: {bonus: 1}
  - name: ddrm
seeds: [0, 1]
sweep:
  solver.scale: [0.1, 1]
metrics: [psnr, ssim, consistency, fid, kid, seconds]
grid: {images: 2, scale: 1}
`

func mustDecode(s string) *Experiment {
	e, err := Decode(strings.NewReader(s))
	if err != nil {
		panic(err)
	}
	return e
}
