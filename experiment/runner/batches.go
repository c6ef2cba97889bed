package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
)

// batchStore is a pipeline.BatchStore over files dir/batch-LO-HI.safetensors
// (tensor "recon", metadata lo, hi and seconds), each written atomically,
// in a solve cell's experiment.BatchesDir: a face DPS cell of 100 images
// runs about an hour, and a run interrupted in it (a session's end, a kill)
// resumes after the last finished batch instead of from the cell's start.
type batchStore struct{ dir string }

func (b batchStore) path(lo, hi int) string {
	return filepath.Join(b.dir, fmt.Sprintf("batch-%05d-%05d.safetensors", lo, hi))
}

// Load returns a stored batch; anything unreadable or inconsistent counts
// as not stored (the batch is solved again).
func (b batchStore) Load(lo, hi int) (*tensor.Dense, float64, bool) {
	f, err := checkpoint.Load(b.path(lo, hi))
	if err != nil {
		return nil, 0, false
	}
	recon, ok := f.Tensors["recon"]
	if !ok || f.Metadata["lo"] != strconv.Itoa(lo) || f.Metadata["hi"] != strconv.Itoa(hi) ||
		recon.Dims() != 4 || recon.Shape()[0] != hi-lo {
		return nil, 0, false
	}
	sec, err := strconv.ParseFloat(f.Metadata["seconds"], 64)
	if err != nil || !(sec >= 0) {
		return nil, 0, false
	}
	return recon, sec, true
}

// Save stores a batch.
func (b batchStore) Save(lo, hi int, recon *tensor.Dense, seconds float64) error {
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	meta := map[string]string{"lo": strconv.Itoa(lo), "hi": strconv.Itoa(hi), "seconds": strconv.FormatFloat(seconds, 'g', -1, 64)}
	return checkpoint.Save(b.path(lo, hi), map[string]*tensor.Dense{"recon": recon}, meta)
}
