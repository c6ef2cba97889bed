package experiment_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/diffinv/diffinv/experiment"
)

// A CellRunner stands in for the solvers: here every image of a cell gets a
// PSNR of 20 plus 10 times the method's "scale" option plus the seed.
func ExampleRun() {
	exp, err := experiment.Decode(strings.NewReader(`
name: demo
dataset: {name: mnist-test, n: 2}
tasks: [{name: sr4, label: SR×4}]
methods:
  - {name: dps, label: DPS, set: {scale: 0.5}}
  - {name: ddrm, label: DDRM}
seeds: [0, 2]
metrics: [psnr]
grid: {images: 0}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	runner := experiment.CellRunnerFunc(func(ctx context.Context, c experiment.Cell, progress func(done, total int)) (*experiment.CellResult, error) {
		scale, _ := c.Method.Set["scale"].(float64)
		res := &experiment.CellResult{}
		for i := range c.Dataset.N {
			psnr := 20 + 10*scale + float64(c.Seed)
			res.Images = append(res.Images, experiment.ImageMetrics{Index: c.Dataset.Offset + i, Values: map[string]float64{"psnr": psnr}})
			progress(i+1, c.Dataset.N)
		}
		return res, nil
	})
	out, _ := os.MkdirTemp("", "experiment-example")
	defer os.RemoveAll(out)
	opts := experiment.RunOptions{Out: out, Log: io.Discard, Progress: io.Discard}
	if err := experiment.Run(context.Background(), exp, runner, opts); err != nil {
		fmt.Println(err)
		return
	}
	table, _ := os.ReadFile(filepath.Join(out, experiment.TableMD))
	i := strings.Index(string(table), "## PSNR")
	fmt.Print(string(table[i:]))
	// Output:
	// ## PSNR↑
	//
	// | Method | SR×4 |
	// |---|---:|
	// | DPS | **26.00 ± 0.00** |
	// | DDRM | 21.00 ± 0.00 |
}
