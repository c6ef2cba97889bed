package data

import (
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeImage(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(path, ".jpg") {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 100})
	} else {
		err = png.Encode(f, img)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// coded returns a w×h RGBA image whose pixel (x, y) is (x*10, y*10, 200).
func coded(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, color.RGBA{uint8(x * 10), uint8(y * 10), 200, 255})
		}
	}
	return m
}

func uniform(w, h int, c color.Color) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, c)
		}
	}
	return m
}

func TestLoadImageFolderCrop(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "a.png"), coded(10, 15))
	// Crop 6 of 10×15: top-left at (⌊4/2⌋, ⌊9/2⌋) = (2, 4); no resize.
	ds, err := LoadImageFolder(dir, FolderOptions{Size: 6, Crop: 6})
	if err != nil {
		t.Fatal(err)
	}
	c, h, w := ds.Dims()
	if ds.Len() != 1 || c != 3 || h != 6 || w != 6 || ds.Labeled() {
		t.Fatalf("got %d×%d×%d×%d labeled=%v, want 1×3×6×6 unlabeled", ds.Len(), c, h, w, ds.Labeled())
	}
	pix := ds.Pixels()
	for y := range 6 {
		for x := range 6 {
			want := [3]uint8{uint8((x + 2) * 10), uint8((y + 4) * 10), 200}
			for ch := range 3 {
				if got := pix[ch*36+y*6+x]; got != want[ch] {
					t.Fatalf("pixel (%d,%d) channel %d = %d, want %d", x, y, ch, got, want[ch])
				}
			}
		}
	}
}

func TestLoadImageFolderResize(t *testing.T) {
	dir := t.TempDir()
	// 1-pixel checkerboard: an antialiased 8× downscale averages it to
	// mid-gray; point sampling would give pure black or white.
	cb := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			cb.Pix[y*64+x] = uint8(255 * ((x + y) % 2))
		}
	}
	writeImage(t, filepath.Join(dir, "1_checker.png"), cb)
	writeImage(t, filepath.Join(dir, "2_flat.jpg"), uniform(40, 30, color.RGBA{30, 140, 220, 255}))
	writeImage(t, filepath.Join(dir, "3_gray.png"), image.NewGray(image.Rect(0, 0, 16, 16)))
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub.png"), 0o755) // a folder, ignored
	other := t.TempDir()
	writeImage(t, filepath.Join(other, "linked.png"), image.NewGray(image.Rect(0, 0, 16, 16)))
	if err := os.Symlink(filepath.Join(other, "linked.png"), filepath.Join(dir, "4_link.png")); err != nil {
		t.Fatal(err)
	}
	ds, err := LoadImageFolder(dir, FolderOptions{Size: 8})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 4 {
		t.Fatalf("loaded %d images, want 4 (the .txt and the folder ignored, the link followed)", ds.Len())
	}
	pix := ds.Pixels()
	const per = 3 * 8 * 8
	for i, p := range pix[:per] {
		if math.Abs(float64(p)-127.5) > 8 {
			t.Fatalf("checkerboard downscaled: byte %d = %d, want about 128 (antialiased)", i, p)
		}
	}
	flat := [3]float64{30, 140, 220}
	for i, p := range pix[per : 2*per] {
		if math.Abs(float64(p)-flat[i/64]) > 3 {
			t.Fatalf("flat JPEG (crop 30 of 40×30, resize to 8): byte %d = %d, want %v ±3", i, p, flat[i/64])
		}
	}
	for i, p := range pix[2*per:] {
		if p != 0 {
			t.Fatalf("black gray PNGs: byte %d = %d, want 0", i, p)
		}
	}
	// Upscaling also works and keeps a flat image flat.
	up, err := LoadImageFolder(dir, FolderOptions{Size: 20, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range up.Pixels()[2*3*400:] {
		if p != 0 {
			t.Fatalf("upscaled black image: byte %d = %d, want 0", i, p)
		}
	}
}

func TestLoadImageFolderLimitOrder(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]uint8{"c.png": 30, "a.png": 10, "b.jpg": 20} {
		writeImage(t, filepath.Join(dir, name), uniform(4, 4, color.RGBA{v, v, v, 255}))
	}
	ds, err := LoadImageFolder(dir, FolderOptions{Size: 4, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 2 {
		t.Fatalf("Limit 2 loaded %d images", ds.Len())
	}
	for i, want := range []uint8{10, 20} { // a.png, b.jpg in name order
		if got := ds.Pixels()[i*48]; math.Abs(float64(got)-float64(want)) > 2 {
			t.Errorf("image %d first byte %d, want %d (name order)", i, got, want)
		}
	}
}

func TestLoadImageFolderErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		opt   FolderOptions
		want  []string
	}{
		{"empty folder", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "readme.txt"), []byte("x"), 0o644)
		}, FolderOptions{Size: 8}, []string{"no .png, .jpg or .jpeg files"}},
		{"missing folder", func(t *testing.T, dir string) { os.Remove(dir) }, FolderOptions{Size: 8}, []string{"no such file"}},
		{"corrupt image", func(t *testing.T, dir string) {
			writeImage(t, filepath.Join(dir, "a.png"), uniform(8, 8, color.White))
			os.WriteFile(filepath.Join(dir, "b.png"), []byte("\x89PNG\r\n\x1a\ngarbage"), 0o644)
		}, FolderOptions{Size: 8}, []string{"b.png", "cannot decode"}},
		{"crop too large", func(t *testing.T, dir string) {
			writeImage(t, filepath.Join(dir, "small.png"), uniform(89, 60, color.White))
		}, FolderOptions{Size: 64, Crop: 70}, []string{"small.png", "crop 70×70 is larger than the 89×60 image"}},
		{"bad size", func(t *testing.T, dir string) {}, FolderOptions{Size: 0}, []string{"output size 0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "imgs")
			os.Mkdir(dir, 0o755)
			tc.setup(t, dir)
			_, err := LoadImageFolder(dir, tc.opt)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

const celebaDir = "/work/shared/data/celeba/img_align_celeba_89x109"

func TestLoadCelebAFolder(t *testing.T) {
	first := filepath.Join(celebaDir, "000001.jpg")
	if _, err := os.Stat(first); err != nil {
		t.Skipf("CelebA not available at %s (%v); skipping", celebaDir, err)
	}
	ds, err := LoadImageFolder(celebaDir, FolderOptions{Size: 64, Crop: 70, Limit: 64})
	if err != nil {
		t.Fatal(err)
	}
	c, h, w := ds.Dims()
	if ds.Len() != 64 || c != 3 || h != 64 || w != 64 {
		t.Fatalf("got %d×%d×%d×%d, want 64×3×64×64", ds.Len(), c, h, w)
	}
	x, err := ds.Batch([]int{0, 63})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, sum := float32(2), float32(-2), 0.0
	for _, v := range x.Data().([]float32) {
		lo, hi, sum = min(lo, v), max(hi, v), sum+float64(v)
	}
	if lo < -1 || hi > 1 || hi-lo < 1 {
		t.Errorf("values in [%v, %v], want a spread inside [-1, 1]", lo, hi)
	}
	// The crop itself, checked against a direct decode of the first file:
	// 70×70 at (⌊19/2⌋, ⌊39/2⌋) = (9, 19) of the 89×109 image.
	crop, err := LoadImageFolder(celebaDir, FolderOptions{Size: 70, Crop: 70, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(first)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 89 || b.Dy() != 109 {
		t.Fatalf("000001.jpg is %v, want 89×109", b)
	}
	for _, p := range [][2]int{{0, 0}, {69, 0}, {35, 35}, {0, 69}, {69, 69}} {
		r, g, b, _ := img.At(9+p[0], 19+p[1]).RGBA()
		want := [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
		for ch := range 3 {
			if got := crop.Pixels()[ch*4900+p[1]*70+p[0]]; got != want[ch] {
				t.Errorf("crop pixel %v channel %d = %d, want %d", p, ch, got, want[ch])
			}
		}
	}
}
