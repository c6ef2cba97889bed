package data

import (
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
)

// levels returns values that are exact pixel levels: value k is
// PixelToFloat((k*37) mod 256).
func levels(shape ...int) []float32 {
	n := 1
	for _, s := range shape {
		n *= s
	}
	d := make([]float32, n)
	for k := range d {
		d[k] = PixelToFloat(uint8(k * 37 % 256))
	}
	return d
}

func TestSaveLoadPNGRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []int{1, 3} {
		d := levels(1, c, 5, 7)
		x := tensors.FromSlice(d, 1, c, 5, 7)
		path := filepath.Join(dir, "img.png")
		if err := SavePNG(path, x); err != nil {
			t.Fatal(err)
		}
		y, err := LoadPNG(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual([]int(y.Shape()), []int{1, c, 5, 7}) {
			t.Fatalf("C=%d: loaded shape %v, want [1 %d 5 7]", c, y.Shape(), c)
		}
		if !reflect.DeepEqual(tensors.F32(y), d) {
			t.Errorf("C=%d: loaded values differ from the saved exact levels", c)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after atomic writes, want 1 (no temp files left)", len(entries))
	}
}

func TestSavePNGErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		shape []int
		path  string
		want  string
	}{
		{"batch", []int{2, 1, 4, 4}, "a.png", "use SaveGrid"},
		{"two channels", []int{2, 4, 4}, "a.png", "2 channels"},
		{"missing folder", []int{1, 4, 4}, "nope/a.png", "writing PNG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := SavePNG(filepath.Join(dir, tc.path), tensors.New(tc.shape...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadPNG(filepath.Join(dir, "absent.png")); err == nil {
		t.Errorf("LoadPNG of a missing file: no error")
	}
}

func TestSaveGridRoundTrip(t *testing.T) {
	// 5 gray 2×3 images, 2 per row, pad 1: 3 rows, output
	// (2·(3+1)+1) × (3·(2+1)+1) = 9 wide × 10 high.
	const n, h, w, pad = 5, 2, 3, 1
	d := make([]float32, n*h*w)
	for k := range n {
		for j := range h * w {
			d[k*h*w+j] = PixelToFloat(uint8(40*k + j))
		}
	}
	d[0] = 5    // clamps to white
	d[1] = -7.5 // clamps to black
	path := filepath.Join(t.TempDir(), "grid.png")
	if err := SaveGrid(path, tensors.FromSlice(d, n, 1, h, w), 2, pad); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 9 || b.Dy() != 10 {
		t.Fatalf("grid is %d×%d, want 9×10", b.Dx(), b.Dy())
	}
	gray := func(x, y int) uint8 {
		r, g, b, _ := img.At(x, y).RGBA()
		if r != g || g != b {
			t.Fatalf("pixel (%d,%d) is not gray: %d %d %d", x, y, r, g, b)
		}
		return uint8(r >> 8)
	}
	for k := range n {
		x0, y0 := pad+(k%2)*(w+pad), pad+(k/2)*(h+pad)
		for j := range h * w {
			want := uint8(40*k + j)
			switch k*h*w + j {
			case 0:
				want = 255
			case 1:
				want = 0
			}
			if got := gray(x0+j%w, y0+j/w); got != want {
				t.Errorf("image %d pixel %d at (%d,%d) = %d, want %d", k, j, x0+j%w, y0+j/w, got, want)
			}
		}
	}
	// Gaps and the empty sixth cell are black padding.
	for _, p := range [][2]int{{0, 0}, {4, 1}, {8, 9}, {6, 8}} {
		if got := gray(p[0], p[1]); got != 0 {
			t.Errorf("padding pixel %v = %d, want 0", p, got)
		}
	}
}

func TestGridImageScaleAndStack(t *testing.T) {
	// One RGB 1×2 image scaled 3× with pad 2 and gray gaps.
	x := tensors.FromSlice([]float32{-1, 1, 1, -1, 0, 0}, 1, 3, 1, 2)
	g, err := GridImage(x, GridOptions{Pad: 2, Scale: 3, PadGray: 100})
	if err != nil {
		t.Fatal(err)
	}
	if b := g.Bounds(); b.Dx() != 2*3+4 || b.Dy() != 3+4 {
		t.Fatalf("scaled grid %v, want 10×7", b)
	}
	for _, tc := range []struct {
		x, y int
		want color.RGBA
	}{
		{2, 2, color.RGBA{0, 255, 128, 255}}, {4, 4, color.RGBA{0, 255, 128, 255}},
		{5, 2, color.RGBA{255, 0, 128, 255}}, {7, 4, color.RGBA{255, 0, 128, 255}},
		{0, 0, color.RGBA{100, 100, 100, 255}}, {8, 5, color.RGBA{100, 100, 100, 255}},
	} {
		if got := g.RGBAAt(tc.x, tc.y); got != tc.want {
			t.Errorf("pixel (%d,%d) = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
	small, err := GridImage(tensors.FromSlice([]float32{1}, 1, 1, 1, 1), GridOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := StackRows(1, 50, g, small)
	if err != nil {
		t.Fatal(err)
	}
	if b := s.Bounds(); b.Dx() != 12 || b.Dy() != 1+7+1+1+1 {
		t.Fatalf("stack %v, want 12×11", b)
	}
	if got := s.RGBAAt(1+5, 1+2); got != (color.RGBA{255, 0, 128, 255}) {
		t.Errorf("stacked first grid pixel = %v", got)
	}
	if got := s.RGBAAt(1, 9); got != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("stacked second image pixel = %v, want white", got)
	}
	if got := s.RGBAAt(5, 9); got != (color.RGBA{50, 50, 50, 255}) {
		t.Errorf("stack gap pixel = %v, want gray 50", got)
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"grid 2 channels", func() error { _, err := GridImage(tensors.New(1, 2, 2, 2), GridOptions{}); return err }, "2 channels"},
		{"grid 3-D", func() error { _, err := GridImage(tensors.New(1, 2, 2), GridOptions{}); return err }, "want 4 dimensions"},
		{"grid negative pad", func() error { _, err := GridImage(tensors.New(1, 1, 2, 2), GridOptions{Pad: -1}); return err }, "pad -1"},
		{"stack nothing", func() error { _, err := StackRows(0, 0); return err }, "no images"},
	} {
		if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
