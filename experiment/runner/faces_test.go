package runner

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/experiment"
)

const (
	realCelebA     = "../../../shared/data/celeba"
	faceClassifier = "../../models/celeba-attr/classifier.safetensors"
)

// TestFaceFeatureMetrics: a CelebA cell's FID and KID are computed on the
// face attribute classifier's features against 1000 test faces: A†y's
// blurred SR×4 reconstructions of 16 test faces sit farther from the test
// faces than the true faces do.
func TestFaceFeatureMetrics(t *testing.T) {
	for _, p := range []string{realCelebA, faceClassifier} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not found: skipping", p)
		}
	}
	ckpt := tinyCheckpointOf(t, func(c *config.Config) {
		c.Model.ImageSize, c.Model.InChannels, c.Model.AttentionResolutions = 64, 3, []int{}
		c.Data.Dataset, c.Data.Dir = "celeba", realCelebA
	})
	var truth *tensor.Dense
	r := &Runner{TasksDir: "../../configs/tasks", Classifier: "../../models/classifier/classifier.safetensors", FaceClassifier: faceClassifier,
		Images: func(c *config.Config, d experiment.Dataset) (*tensor.Dense, int, error) {
			ds, _, err := data.LoadCelebA(c.Data.Dir, "test", c.Model.ImageSize, c.Data.Crop, d.Offset+d.N)
			if err != nil {
				return nil, 0, err
			}
			idx := make([]int, d.N)
			for i := range idx {
				idx[i] = d.Offset + i
			}
			x, err := ds.Batch(idx)
			truth = x
			return x, d.Offset, err
		}}
	exp, err := experiment.Decode(strings.NewReader(`
name: faces
checkpoint: ` + ckpt + `
dataset: {name: celeba-test, n: 16, offset: 1000}
tasks: [{name: sr4}]
methods: [{name: pinv}]
seeds: [0]
metrics: [psnr, fid, kid]
`))
	if err != nil {
		t.Fatal(err)
	}
	cells, err := exp.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ValidateCell(cells[0]); err != nil {
		t.Fatal(err)
	}
	res, err := r.RunCell(context.Background(), cells[0], func(int, int) {})
	if err != nil {
		t.Fatal(err)
	}
	fid, kid := res.CellMetrics["fid"], res.CellMetrics["kid"]
	real := map[string]float64{}
	if err := r.featureMetrics(nil, truth, cells[0], real); err != nil {
		t.Fatal(err)
	}
	t.Logf("A†y: FID %.3f, KID %.4g; true faces: FID %.3f, KID %.4g (16 faces against 1000 test faces)", fid, kid, real["fid"], real["kid"])
	if !(fid > real["fid"]) || math.IsNaN(kid) || !(kid > real["kid"]) {
		t.Errorf("A†y FID %g / KID %g not above the true faces' %g / %g", fid, kid, real["fid"], real["kid"])
	}
	r2 := &Runner{TasksDir: r.TasksDir, Classifier: r.Classifier, FaceClassifier: "no/such/classifier.safetensors"}
	if err := r2.ValidateCell(cells[0]); err == nil || !strings.Contains(err.Error(), "face attribute classifier") {
		t.Errorf("missing face classifier: %v", err)
	}
}
