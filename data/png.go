package data

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/atomicfile"
	"github.com/diffinv/diffinv/internal/tensors"
)

// WritePNG encodes img as PNG at path atomically: it writes a temporary file
// in the same folder, syncs it to disk and renames it over path, so readers
// see the old file or the whole new one, never a partial one.
func WritePNG(path string, img image.Image) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
		return fmt.Errorf("writing PNG: %w", err)
	}
	return nil
}

// imageOf returns the C×H×W view of a single image given as C×H×W or
// 1×C×H×W, with C 1 or 3.
func imageOf(name string, t *tensor.Dense) (data []float32, c, h, w int, err error) {
	if t == nil {
		return nil, 0, 0, 0, fmt.Errorf("%s: nil tensor", name)
	}
	s := t.Shape()
	switch {
	case len(s) == 3:
		c, h, w = s[0], s[1], s[2]
	case len(s) == 4 && s[0] == 1:
		c, h, w = s[1], s[2], s[3]
	default:
		return nil, 0, 0, 0, fmt.Errorf("%s: shape %v, want one image C×H×W or 1×C×H×W (use SaveGrid for batches)", name, []int(s))
	}
	if t.Dtype() != tensor.Float32 {
		return nil, 0, 0, 0, fmt.Errorf("%s: dtype %v, want float32", name, t.Dtype())
	}
	if c != 1 && c != 3 {
		return nil, 0, 0, 0, fmt.Errorf("%s: %d channels, want 1 (gray) or 3 (RGB)", name, c)
	}
	return tensors.F32(t), c, h, w, nil
}

// SavePNG writes one image (C×H×W or 1×C×H×W float32 in [-1, 1], C = 1 or 3)
// as an 8-bit grayscale or RGB PNG, atomically. Values are clamped to
// [-1, 1] and rounded to the nearest byte (FloatToPixel).
func SavePNG(path string, img *tensor.Dense) error {
	d, c, h, w, err := imageOf("SavePNG "+path, img)
	if err != nil {
		return err
	}
	var out image.Image
	if c == 1 {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				g.Pix[y*g.Stride+x] = FloatToPixel(d[y*w+x])
			}
		}
		out = g
	} else {
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				o := m.Pix[y*m.Stride+4*x:]
				for ch := range 3 {
					o[ch] = FloatToPixel(d[ch*h*w+y*w+x])
				}
				o[3] = 255
			}
		}
		out = m
	}
	return WritePNG(path, out)
}

// LoadPNG reads a PNG (or JPEG) file as a 1×C×H×W float32 tensor in
// [-1, 1]: C = 1 for grayscale files, otherwise C = 3 (RGB, alpha dropped
// after compositing onto black). 16-bit files are reduced to 8 bits. Only
// a regular file is read, and an image beyond MaxImageSide or
// MaxImagePixels is refused from its header (see ReadImage).
func LoadPNG(path string) (*tensor.Dense, error) {
	return LoadPNGMax(path, 0)
}

// LoadPNGMax is LoadPNG refusing, from the header, an image wider or taller
// than maxSide (≤ 0: only the global caps): a command that needs a
// model-sized image passes the model's size.
func LoadPNGMax(path string, maxSide int) (*tensor.Dense, error) {
	img, err := ReadImage(path, maxSide)
	if err != nil {
		return nil, fmt.Errorf("LoadPNG: %w", err)
	}
	return ImageTensor(img), nil
}

// ImageTensor converts img as LoadPNG does.
func ImageTensor(img image.Image) *tensor.Dense {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	switch img.ColorModel() {
	case color.GrayModel, color.Gray16Model:
		t := tensors.New(1, 1, h, w)
		d := tensors.F32(t)
		for y := range h {
			for x := range w {
				g := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray)
				d[y*w+x] = PixelToFloat(g.Y)
			}
		}
		return t
	}
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			rgba.Set(x, y, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	pix := make([]uint8, 3*h*w)
	rgbaToCHW(rgba, pix)
	t := tensors.New(1, 3, h, w)
	d := tensors.F32(t)
	for i, p := range pix {
		d[i] = PixelToFloat(p)
	}
	return t
}

// GridOptions lays out a batch as a grid image.
type GridOptions struct {
	// PerRow is the number of images in each row (torchvision's "nrow");
	// 0 means ⌈√N⌉.
	PerRow int
	// Pad is the gap in pixels between images and around the border, in
	// output pixels (after Scale).
	Pad int
	// Scale enlarges each image pixel to Scale×Scale output pixels (nearest
	// neighbour) so that 28-pixel digits are visible; 0 or 1 is no scaling.
	Scale int
	// PadGray is the gray level (0..255) of the gaps; 0 is black.
	PadGray uint8
}

// GridImage lays out a batch (N×C×H×W float32 in [-1, 1], C = 1 or 3) as
// one RGBA image: images fill rows left to right, PerRow to a row, values
// clamped to [-1, 1] and rounded to bytes (FloatToPixel). Compose grids of
// different sources (truth, measurement, reconstruction) with StackRows.
func GridImage(batch *tensor.Dense, opt GridOptions) (*image.RGBA, error) {
	n, c, h, w, err := tensors.NCHW("GridImage batch", batch)
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("GridImage: empty batch, want at least one image")
	}
	if c != 1 && c != 3 {
		return nil, fmt.Errorf("GridImage: %d channels, want 1 (gray) or 3 (RGB)", c)
	}
	if opt.PerRow < 0 || opt.Pad < 0 || opt.Scale < 0 {
		return nil, fmt.Errorf("GridImage: per-row %d, pad %d, scale %d, want all ≥ 0", opt.PerRow, opt.Pad, opt.Scale)
	}
	cols := opt.PerRow
	if cols == 0 {
		cols = int(math.Ceil(math.Sqrt(float64(n))))
	}
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	sc := max(opt.Scale, 1)
	cw, ch := w*sc, h*sc
	W, H := cols*(cw+opt.Pad)+opt.Pad, rows*(ch+opt.Pad)+opt.Pad
	if int64(W)*int64(H) > 1<<28 {
		return nil, fmt.Errorf("GridImage: %d×%d output pixels, more than the 2^28 allowed", W, H)
	}
	out := image.NewRGBA(image.Rect(0, 0, W, H))
	for i := 0; i < len(out.Pix); i += 4 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = opt.PadGray, opt.PadGray, opt.PadGray, 255
	}
	d := tensors.F32(batch)
	for k := range n {
		x0 := opt.Pad + (k%cols)*(cw+opt.Pad)
		y0 := opt.Pad + (k/cols)*(ch+opt.Pad)
		img := d[k*c*h*w : (k+1)*c*h*w]
		for y := range ch {
			for x := range cw {
				o := out.Pix[(y0+y)*out.Stride+4*(x0+x):]
				src := (y/sc)*w + x/sc
				for cc := range 3 {
					o[cc] = FloatToPixel(img[min(cc, c-1)*h*w+src])
				}
			}
		}
	}
	return out, nil
}

// SaveGrid writes batch (N×C×H×W float32 in [-1, 1]) as a PNG grid of
// perRow images per row with pad black pixels between them, atomically.
// For upscaling or other options use GridImage and WritePNG.
func SaveGrid(path string, batch *tensor.Dense, perRow, pad int) error {
	img, err := GridImage(batch, GridOptions{PerRow: perRow, Pad: pad})
	if err != nil {
		return fmt.Errorf("SaveGrid %s: %w", path, err)
	}
	return WritePNG(path, img)
}

// StackRows stacks images vertically, left-aligned, with pad pixels of
// gray level padGray between and around them; the result is as wide as the
// widest image. Use it to put grids of different sources (ground truth,
// measurements, reconstructions) one above the other.
func StackRows(pad int, padGray uint8, imgs ...image.Image) (*image.RGBA, error) {
	if len(imgs) == 0 {
		return nil, fmt.Errorf("StackRows: no images")
	}
	if pad < 0 {
		return nil, fmt.Errorf("StackRows: pad %d, want ≥ 0", pad)
	}
	W, H := 0, pad
	for i, m := range imgs {
		if m == nil {
			return nil, fmt.Errorf("StackRows: image %d is nil", i)
		}
		W = max(W, m.Bounds().Dx())
		H += m.Bounds().Dy() + pad
	}
	W += 2 * pad
	out := image.NewRGBA(image.Rect(0, 0, W, H))
	for i := 0; i < len(out.Pix); i += 4 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = padGray, padGray, padGray, 255
	}
	y := pad
	for _, m := range imgs {
		b := m.Bounds()
		for yy := 0; yy < b.Dy(); yy++ {
			for xx := 0; xx < b.Dx(); xx++ {
				out.Set(pad+xx, y+yy, m.At(b.Min.X+xx, b.Min.Y+yy))
			}
		}
		y += b.Dy() + pad
	}
	return out, nil
}
