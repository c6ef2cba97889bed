package data

import (
	"image/color"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	pix := patternImages(3, 28, 28)
	writeMNIST(t, dir, "train", pix, []byte{1, 2, 3}, 3, true)
	imgDir := t.TempDir()
	writeImage(t, filepath.Join(imgDir, "a.png"), uniform(20, 10, color.White))

	for _, tc := range []struct {
		name       string
		cfg        Config
		n, c, h, w int
	}{
		{"mnist 28", Config{Kind: "mnist", Dir: dir, Split: "train", Size: 28}, 3, 1, 28, 28},
		{"mnist 32 limited", Config{Kind: "mnist", Dir: dir, Split: "train", Size: 32, Limit: 2}, 2, 1, 32, 32},
		{"folder", Config{Kind: "folder", Dir: imgDir, Size: 5}, 1, 3, 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := Load(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, h, w := ds.Dims()
			if ds.Len() != tc.n || c != tc.c || h != tc.h || w != tc.w {
				t.Fatalf("got %d×%d×%d×%d, want %d×%d×%d×%d", ds.Len(), c, h, w, tc.n, tc.c, tc.h, tc.w)
			}
			if tc.h == 32 {
				// Image 1's pixel (0,0) sits at (2,2) after padding, the border is black.
				p := ds.Pixels()
				if p[1024+2*32+2] != pix[784] || p[1024] != 0 || p[1024+31*32+31] != 0 {
					t.Errorf("padding misplaced the image")
				}
			}
		})
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Kind: "cifar"}, `kind "cifar"`},
		{Config{Kind: "mnist", Dir: dir, Split: "train", Size: 64}, "MNIST size 64, want 28 or 32"},
		{Config{Kind: "mnist", Dir: dir, Split: "train", Size: 28, Crop: 20}, "MNIST crop 20"},
		{Config{Kind: "folder", Dir: imgDir, Size: 5, Limit: -1}, "limit -1"},
	} {
		if _, err := Load(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%+v): error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}
