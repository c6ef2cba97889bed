package data

import (
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// seqDataset returns n images of 1×2×2 whose first pixel is the index.
func seqDataset(t *testing.T, n int, labeled bool) *Dataset {
	t.Helper()
	pix := make([]uint8, n*4)
	var labels []int
	if labeled {
		labels = make([]int, n)
	}
	for i := range n {
		pix[i*4] = uint8(i)
		pix[i*4+3] = 255
		if labeled {
			labels[i] = i % 10
		}
	}
	ds, err := NewDataset(pix, labels, n, 1, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestPixelMapping(t *testing.T) {
	for _, tc := range []struct {
		v    float32
		want uint8
	}{
		{-1, 0}, {1, 255}, {-2, 0}, {3, 255}, {0, 128}, // 127.5 rounds up
		{float32(2*100/255.0 - 1), 100}, {float32(nan()), 0},
	} {
		if got := FloatToPixel(tc.v); got != tc.want {
			t.Errorf("FloatToPixel(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
	for p := range 256 {
		if got := FloatToPixel(PixelToFloat(uint8(p))); got != uint8(p) {
			t.Errorf("round trip of byte %d gives %d", p, got)
		}
	}
	if PixelToFloat(0) != -1 || PixelToFloat(255) != 1 {
		t.Errorf("PixelToFloat(0), (255) = %v, %v, want -1, 1", PixelToFloat(0), PixelToFloat(255))
	}
}

func nan() float64 { var z float64; return z / z }

func TestNewDatasetErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pix        int
		labels     []int
		n, c, h, w int
		want       string
	}{
		{"pixel count", 7, nil, 2, 1, 2, 2, "needs 8 pixel bytes, got 7"},
		{"label count", 8, []int{1}, 2, 1, 2, 2, "has 1 labels, want 2"},
		{"zero channels", 0, nil, 2, 0, 2, 2, "want N ≥ 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDataset(make([]uint8, tc.pix), tc.labels, tc.n, tc.c, tc.h, tc.w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDatasetBatchPadHead(t *testing.T) {
	ds := seqDataset(t, 5, true)
	x, err := ds.Batch([]int{3, 0})
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{PixelToFloat(3), -1, -1, 1, -1, -1, -1, 1}
	if got := x.Data().([]float32); !reflect.DeepEqual(got, want) || !reflect.DeepEqual([]int(x.Shape()), []int{2, 1, 2, 2}) {
		t.Errorf("batch %v shape %v, want %v shape [2 1 2 2]", got, x.Shape(), want)
	}
	if _, err := ds.Batch([]int{5}); err == nil || !strings.Contains(err.Error(), "index 5 out of range [0, 5)") {
		t.Errorf("out-of-range index: error %v", err)
	}
	p, err := ds.Pad(1)
	if err != nil {
		t.Fatal(err)
	}
	c, h, w := p.Dims()
	if c != 1 || h != 4 || w != 4 || p.Len() != 5 {
		t.Fatalf("padded dims %d×%d×%d×%d, want 5×1×4×4", p.Len(), c, h, w)
	}
	// Image 3 padded: inner 2×2 at rows/cols 1..2, zeros elsewhere.
	img := p.Pixels()[3*16 : 4*16]
	wantImg := []uint8{0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 255, 0, 0, 0, 0, 0}
	if !reflect.DeepEqual(img, wantImg) {
		t.Errorf("padded image %v, want %v", img, wantImg)
	}
	hd := ds.Head(2)
	if hd.Len() != 2 || len(hd.Labels()) != 2 || ds.Head(99).Len() != 5 {
		t.Errorf("Head(2) has %d images and %d labels; Head(99) %d", hd.Len(), len(hd.Labels()), ds.Head(99).Len())
	}
}

func TestBatcher(t *testing.T) {
	ds := seqDataset(t, 10, true)
	draw := func(seed int64, steps int) [][]int {
		var rng *rand.Rand
		if seed >= 0 {
			rng = rand.New(rand.NewSource(seed))
		}
		b, err := NewBatcher(ds, 3, rng)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]int
		for range steps {
			bt := b.Next()
			// The tensor and labels must match the indices.
			xs := bt.X.Data().([]float32)
			for k, i := range bt.Index {
				if xs[k*4] != PixelToFloat(uint8(i)) || bt.Labels[k] != i%10 {
					t.Fatalf("batch image %d: pixel %v label %d, want those of index %d", k, xs[k*4], bt.Labels[k], i)
				}
			}
			out = append(out, append(bt.Index, bt.Epoch))
		}
		return out
	}
	a, b, c := draw(7, 9), draw(7, 9), draw(8, 9)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different batches:\n%v\n%v", a, b)
	}
	if reflect.DeepEqual(a, c) {
		t.Errorf("seeds 7 and 8 gave the same batches")
	}
	// 10 images, batch 3: 3 batches per epoch, each epoch's 9 indices distinct.
	for e := range 3 {
		seen := map[int]bool{}
		for s := range 3 {
			row := a[e*3+s]
			if row[3] != e {
				t.Errorf("step %d: epoch %d, want %d", e*3+s, row[3], e)
			}
			for _, i := range row[:3] {
				if seen[i] {
					t.Errorf("epoch %d repeats index %d", e, i)
				}
				seen[i] = true
			}
		}
	}
	// Unshuffled: dataset order, remainder dropped.
	seq := draw(-1, 4)
	want := [][]int{{0, 1, 2, 0}, {3, 4, 5, 0}, {6, 7, 8, 0}, {0, 1, 2, 1}}
	if !reflect.DeepEqual(seq, want) {
		t.Errorf("unshuffled batches %v, want %v", seq, want)
	}
	// The shuffle covers the whole dataset over epochs: with batch 10 each
	// epoch is a permutation of all indices.
	bb, _ := NewBatcher(ds, 10, rand.New(rand.NewSource(1)))
	idx := bb.Next().Index
	sort.Ints(idx)
	if !reflect.DeepEqual(idx, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("full-size batch indices %v, want a permutation of 0..9", idx)
	}
	for _, size := range []int{0, 11} {
		if _, err := NewBatcher(ds, size, nil); err == nil || !strings.Contains(err.Error(), "want 1..10") {
			t.Errorf("batch size %d: error %v", size, err)
		}
	}
}
