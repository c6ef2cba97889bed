package data

import (
	"fmt"
	"image"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/image/draw"
)

// FolderOptions says how LoadImageFolder turns files into square RGB images.
type FolderOptions struct {
	// Size is the side of the output images in pixels (e.g. 32 or 64).
	Size int
	// Crop is the side of the square cut from the center of each image
	// before resizing (70 for CelebA's 89×109 images); 0 takes the largest
	// centered square, min(width, height). The crop's top-left corner is at
	// ⌊(W−Crop)/2⌋, ⌊(H−Crop)/2⌋.
	Crop int
	// Limit loads at most this many files, the first in name order; 0 loads all.
	Limit int
}

// imageExts are the file suffixes LoadImageFolder reads (case-insensitive).
func isImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// ListImages returns the paths of the PNG and JPEG files (.png, .jpg, .jpeg,
// any case) directly inside dir, sorted by name; symbolic links to files
// count. Other files and subdirectories are ignored; a folder without images
// is an error.
func ListImages(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", err)
	}
	var paths []string
	for _, e := range entries {
		if !isImageFile(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if e.Type()&os.ModeSymlink != 0 { // follow links to files
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				continue
			}
		} else if !e.Type().IsRegular() {
			continue
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("image folder %s: no .png, .jpg or .jpeg files", dir)
	}
	sort.Strings(paths)
	return paths, nil
}

// LoadImageFolder reads the PNG and JPEG files of dir (sorted by name, at
// most opt.Limit of them) into an unlabeled N×3×Size×Size dataset: each
// image is converted to RGB (grayscale is replicated, transparent pixels
// become black), center-cropped to opt.Crop and resized to opt.Size with
// Catmull–Rom interpolation, whose kernel widens when shrinking so that
// downscaling is antialiased. Only the compact uint8 result is kept; files
// are decoded a few at a time, in parallel.
func LoadImageFolder(dir string, opt FolderOptions) (*Dataset, error) {
	if opt.Size < 1 {
		return nil, fmt.Errorf("image folder %s: output size %d, want ≥ 1", dir, opt.Size)
	}
	if opt.Crop < 0 || opt.Limit < 0 {
		return nil, fmt.Errorf("image folder %s: crop %d and limit %d, want ≥ 0", dir, opt.Crop, opt.Limit)
	}
	paths, err := ListImages(dir)
	if err != nil {
		return nil, err
	}
	if opt.Limit > 0 && len(paths) > opt.Limit {
		paths = paths[:opt.Limit]
	}
	return loadPaths(paths, opt)
}

// loadPaths decodes, crops and resizes the files at paths (in that order)
// into an unlabeled N×3×Size×Size dataset, a few files at a time in
// parallel.
func loadPaths(paths []string, opt FolderOptions) (*Dataset, error) {
	n, s := len(paths), opt.Size
	pix := make([]uint8, n*3*s*s)
	errs := make([]error, n)
	workers := min(runtime.GOMAXPROCS(0), n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := image.NewRGBA(image.Rect(0, 0, s, s))
			for i := range next {
				if errs[i] = loadInto(paths[i], opt, dst); errs[i] == nil {
					rgbaToCHW(dst, pix[i*3*s*s:(i+1)*3*s*s])
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, e := range errs { // report the first failure in name order
		if e != nil {
			return nil, e
		}
	}
	return NewDataset(pix, nil, n, 3, s, s)
}

// loadInto decodes path, center-crops and resizes it into dst (Size×Size).
func loadInto(path string, opt FolderOptions, dst *image.RGBA) error {
	img, err := ReadImage(path, 0)
	if err != nil {
		return fmt.Errorf("image folder: %w", err)
	}
	crop, err := centerCrop(img.Bounds(), opt.Crop)
	if err != nil {
		return fmt.Errorf("image %s: %w", path, err)
	}
	if crop.Dx() == opt.Size {
		draw.Draw(dst, dst.Bounds(), img, crop.Min, draw.Src)
	} else {
		draw.CatmullRom.Scale(dst, dst.Bounds(), img, crop, draw.Src, nil)
	}
	return nil
}

// centerCrop returns the centered side×side square of b (side 0: the largest).
func centerCrop(b image.Rectangle, side int) (image.Rectangle, error) {
	w, h := b.Dx(), b.Dy()
	if side == 0 {
		side = min(w, h)
	}
	if side > w || side > h {
		return image.Rectangle{}, fmt.Errorf("crop %d×%d is larger than the %d×%d image", side, side, w, h)
	}
	x0, y0 := b.Min.X+(w-side)/2, b.Min.Y+(h-side)/2
	return image.Rect(x0, y0, x0+side, y0+side), nil
}

// rgbaToCHW copies the RGB planes of src into dst (3×H×W bytes).
func rgbaToCHW(src *image.RGBA, dst []uint8) {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	for y := range h {
		row := src.Pix[y*src.Stride : y*src.Stride+4*w]
		for x := range w {
			for c := range 3 {
				dst[c*h*w+y*w+x] = row[4*x+c]
			}
		}
	}
}
