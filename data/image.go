package data

import (
	"fmt"
	"image"
	"io"

	"github.com/diffinv/diffinv/internal/userfile"
)

// Limits on the images read from paths users pass (solve --image, measure,
// image folders, CelebA, the demo's digits). An image is refused from its
// header, before a pixel is decoded, so a decompression bomb (a 30000×30000
// PNG compresses to under 1 MB, yet decodes to 3.6 GB) costs nothing.
const (
	// MaxImageSide caps an image's width and height (16384 px).
	MaxImageSide = 1 << 14
	// MaxImagePixels caps width × height (16 Mpx, e.g. 4096×4096: four
	// times FFHQ's 1024×1024 originals, far beyond the models' 28 to 256
	// px). Decoding one such RGB image and its float32 tensor takes about
	// 260 MB.
	MaxImagePixels = 1 << 24
	// MaxImageFileSize caps the file itself (256 MB).
	MaxImageFileSize = 256 << 20
)

// CheckImageSize refuses a w×h image beyond MaxImageSide, MaxImagePixels
// or, when maxSide > 0, beyond maxSide on either side (what the caller can
// use, e.g. the model's image size). name names the image in the error.
func CheckImageSize(name string, w, h, maxSide int) error {
	switch {
	case w <= 0 || h <= 0:
		return fmt.Errorf("image %s is %d×%d, want a non-empty image", name, w, h)
	case maxSide > 0 && (w > maxSide || h > maxSide):
		return fmt.Errorf("image %s is %d×%d, larger than the %d×%d this command takes", name, w, h, maxSide, maxSide)
	case w > MaxImageSide || h > MaxImageSide:
		return fmt.Errorf("image %s is %d×%d, want each side at most %d px", name, w, h, MaxImageSide)
	case int64(w)*int64(h) > MaxImagePixels:
		return fmt.Errorf("image %s is %d×%d = %d pixels, more than the %d allowed", name, w, h, int64(w)*int64(h), MaxImagePixels)
	}
	return nil
}

// DecodeImage decodes a PNG or JPEG from r after reading its header: an
// image beyond CheckImageSize(name, ·, ·, maxSide) is refused without
// decoding its pixels.
func DecodeImage(r io.ReadSeeker, name string, maxSide int) (image.Image, error) {
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return nil, fmt.Errorf("image %s: cannot decode as PNG or JPEG: %w", name, err)
	}
	if err := CheckImageSize(name, cfg.Width, cfg.Height, maxSide); err != nil {
		return nil, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	img, _, err := image.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("image %s: cannot decode as PNG or JPEG: %w", name, err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, fmt.Errorf("image %s: header says %d×%d, pixels are %d×%d", name, cfg.Width, cfg.Height, b.Dx(), b.Dy())
	}
	return img, nil
}

// ReadImage reads the PNG or JPEG file at path: a regular file of at most
// MaxImageFileSize bytes whose header passes CheckImageSize(·, maxSide)
// (maxSide ≤ 0: only the global caps).
func ReadImage(path string, maxSide int) (image.Image, error) {
	f, _, err := userfile.Open(path, "image", MaxImageFileSize)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeImage(f, path, maxSide)
}
