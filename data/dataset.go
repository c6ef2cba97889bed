// Package data loads diffinv's training and test images: MNIST from its IDX
// files, image folders (PNG/JPEG, e.g. CelebA) with a center crop and an
// antialiased resize, and writes PNG images and grids.
//
// A Dataset keeps its pixels compactly as uint8 (10,000 CelebA images at
// 3×64×64 take 123 MB rather than 490 MB as float32) and converts to float32
// N×C×H×W tensors in [-1, 1] one batch at a time: a pixel byte p becomes
// p/127.5 − 1, so 0 ↦ −1 and 255 ↦ 1. A Batcher draws batches with a seeded
// shuffle, the same bits for the same seed.
package data

import (
	"fmt"
	"math/rand"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
)

// Dataset is N images of C×H×W bytes (NCHW order, 0..255) with optional
// integer labels. It is immutable after construction: methods that change
// the layout (Pad, Head) return a new Dataset.
type Dataset struct {
	n, c, h, w int
	pix        []uint8
	labels     []int
}

// NewDataset wraps pix (N*C*H*W bytes in NCHW order, not copied) and labels
// (nil, or one per image) as a Dataset.
func NewDataset(pix []uint8, labels []int, n, c, h, w int) (*Dataset, error) {
	if n < 0 || c <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("dataset shape %d×%d×%d×%d: want N ≥ 0 and C, H, W ≥ 1", n, c, h, w)
	}
	if len(pix) != n*c*h*w {
		return nil, fmt.Errorf("dataset shape %d×%d×%d×%d needs %d pixel bytes, got %d", n, c, h, w, n*c*h*w, len(pix))
	}
	if labels != nil && len(labels) != n {
		return nil, fmt.Errorf("dataset of %d images has %d labels, want %d or none", n, len(labels), n)
	}
	return &Dataset{n: n, c: c, h: h, w: w, pix: pix, labels: labels}, nil
}

// Len returns the number of images N.
func (d *Dataset) Len() int { return d.n }

// Dims returns the per-image dimensions C, H, W.
func (d *Dataset) Dims() (c, h, w int) { return d.c, d.h, d.w }

// Labeled reports whether the dataset carries labels.
func (d *Dataset) Labeled() bool { return d.labels != nil }

// Labels returns a copy of the labels, or nil for an unlabeled dataset.
func (d *Dataset) Labels() []int {
	if d.labels == nil {
		return nil
	}
	return append([]int(nil), d.labels...)
}

// Pixels returns the raw N*C*H*W bytes in NCHW order. The slice is shared
// with the dataset: do not modify it.
func (d *Dataset) Pixels() []uint8 { return d.pix }

// PixelToFloat maps a pixel byte to [-1, 1]: p/127.5 − 1.
func PixelToFloat(p uint8) float32 { return float32(p)/127.5 - 1 }

// FloatToPixel maps a value in [-1, 1] to a pixel byte: values are clamped to
// [-1, 1] and rounded to the nearest of the 256 levels; NaN maps to 0.
func FloatToPixel(v float32) uint8 {
	if !(v > -1) { // also catches NaN
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8((float64(v)+1)*127.5 + 0.5)
}

// Batch returns the images at the given indices as a float32
// len(idx)×C×H×W tensor in [-1, 1].
func (d *Dataset) Batch(idx []int) (*tensor.Dense, error) {
	if len(idx) == 0 {
		return nil, fmt.Errorf("dataset batch: no indices, want at least one")
	}
	size := d.c * d.h * d.w
	out := tensors.New(len(idx), d.c, d.h, d.w)
	dst := tensors.F32(out)
	for k, i := range idx {
		if i < 0 || i >= d.n {
			return nil, fmt.Errorf("dataset batch: index %d out of range [0, %d)", i, d.n)
		}
		src := d.pix[i*size : (i+1)*size]
		o := dst[k*size : (k+1)*size]
		for j, p := range src {
			o[j] = PixelToFloat(p)
		}
	}
	return out, nil
}

// BatchLabels returns the labels at the given indices, or nil for an
// unlabeled dataset.
func (d *Dataset) BatchLabels(idx []int) ([]int, error) {
	if d.labels == nil {
		return nil, nil
	}
	out := make([]int, len(idx))
	for k, i := range idx {
		if i < 0 || i >= d.n {
			return nil, fmt.Errorf("dataset labels: index %d out of range [0, %d)", i, d.n)
		}
		out[k] = d.labels[i]
	}
	return out, nil
}

// Head returns a dataset of the first min(n, Len) images (sharing memory).
func (d *Dataset) Head(n int) *Dataset {
	if n < 0 {
		n = 0
	}
	if n > d.n {
		n = d.n
	}
	out := &Dataset{n: n, c: d.c, h: d.h, w: d.w, pix: d.pix[:n*d.c*d.h*d.w]}
	if d.labels != nil {
		out.labels = d.labels[:n]
	}
	return out
}

// Pad returns a copy with p pixels of black (byte 0, i.e. −1) added on every
// side: MNIST's 28×28 becomes 32×32 with Pad(2), the layout most DDPM MNIST
// setups use.
func (d *Dataset) Pad(p int) (*Dataset, error) {
	if p < 0 {
		return nil, fmt.Errorf("dataset pad %d: want ≥ 0", p)
	}
	h, w := d.h+2*p, d.w+2*p
	pix := make([]uint8, d.n*d.c*h*w)
	for i := 0; i < d.n*d.c; i++ {
		src := d.pix[i*d.h*d.w : (i+1)*d.h*d.w]
		dst := pix[i*h*w : (i+1)*h*w]
		for y := 0; y < d.h; y++ {
			copy(dst[(y+p)*w+p:(y+p)*w+p+d.w], src[y*d.w:(y+1)*d.w])
		}
	}
	return &Dataset{n: d.n, c: d.c, h: h, w: w, pix: pix, labels: d.labels}, nil
}

// Batch is one draw from a Batcher.
type Batch struct {
	X      *tensor.Dense // Size×C×H×W float32 in [-1, 1]
	Labels []int         // one per image, nil for an unlabeled dataset
	Index  []int         // dataset indices of the images
	Epoch  int           // 0-based epoch the batch belongs to
}

// Batcher yields full batches forever, epoch after epoch. With a *rand.Rand
// it draws a fresh permutation at the start of every epoch (rng.Perm), so
// the same seed gives the same sequence of batches; with nil it walks the
// dataset in order. The last Len mod size images of each epoch's order are
// skipped so that every batch has the same size (graphs fix the batch size).
type Batcher struct {
	ds    *Dataset
	size  int
	rng   *rand.Rand
	order []int
	pos   int
	epoch int
}

// NewBatcher returns a Batcher of batches of size images (1 ≤ size ≤ Len).
func NewBatcher(ds *Dataset, size int, rng *rand.Rand) (*Batcher, error) {
	if ds == nil {
		return nil, fmt.Errorf("batcher: nil dataset")
	}
	if size < 1 || size > ds.n {
		return nil, fmt.Errorf("batcher: batch size %d, want 1..%d (the dataset size)", size, ds.n)
	}
	b := &Batcher{ds: ds, size: size, rng: rng, epoch: -1}
	b.newEpoch()
	return b, nil
}

func (b *Batcher) newEpoch() {
	b.epoch++
	b.pos = 0
	if b.rng != nil {
		b.order = b.rng.Perm(b.ds.n)
		return
	}
	if b.order == nil {
		b.order = make([]int, b.ds.n)
		for i := range b.order {
			b.order[i] = i
		}
	}
}

// StepsPerEpoch returns the number of batches in one epoch: ⌊Len/size⌋.
func (b *Batcher) StepsPerEpoch() int { return b.ds.n / b.size }

// Next returns the next batch.
func (b *Batcher) Next() Batch {
	if b.pos+b.size > len(b.order) {
		b.newEpoch()
	}
	idx := append([]int(nil), b.order[b.pos:b.pos+b.size]...)
	b.pos += b.size
	// Indices come from a permutation of [0, Len), so neither call can fail.
	x, _ := b.ds.Batch(idx)
	labels, _ := b.ds.BatchLabels(idx)
	return Batch{X: x, Labels: labels, Index: idx, Epoch: b.epoch}
}
