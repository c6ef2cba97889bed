package op

import (
	"encoding/binary"
	"fmt"
	"image/png"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/diffinv/diffinv/internal/userfile"
)

// ReadNPY reads a NumPy .npy file (format 1.x or 2.x, C order, dtype f4,
// f8, i1/i2/i4/i8, u1 or b1, little-endian) and returns its values as
// float64 with the array's shape.
func ReadNPY(path string) ([]float64, []int, error) {
	// A regular file of at most 1 GB (a kernel or mask is kilobytes).
	raw, err := userfile.ReadFile(path, "op.ReadNPY: .npy file", 1<<30)
	if err != nil {
		return nil, nil, err
	}
	if len(raw) < 10 || string(raw[:6]) != "\x93NUMPY" {
		return nil, nil, fmt.Errorf("op.ReadNPY %s: not a .npy file (bad magic)", path)
	}
	var hlen, off int
	switch raw[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(raw[8:10])), 10
	case 2, 3:
		if len(raw) < 12 {
			return nil, nil, fmt.Errorf("op.ReadNPY %s: truncated header", path)
		}
		hlen, off = int(binary.LittleEndian.Uint32(raw[8:12])), 12
	default:
		return nil, nil, fmt.Errorf("op.ReadNPY %s: format version %d, want 1, 2 or 3", path, raw[6])
	}
	if off+hlen > len(raw) {
		return nil, nil, fmt.Errorf("op.ReadNPY %s: truncated header", path)
	}
	hdr := string(raw[off : off+hlen])
	data := raw[off+hlen:]
	descr := regexp.MustCompile(`'descr':\s*'([^']*)'`).FindStringSubmatch(hdr)
	fort := regexp.MustCompile(`'fortran_order':\s*(True|False)`).FindStringSubmatch(hdr)
	shp := regexp.MustCompile(`'shape':\s*\(([^)]*)\)`).FindStringSubmatch(hdr)
	if descr == nil || fort == nil || shp == nil {
		return nil, nil, fmt.Errorf("op.ReadNPY %s: cannot parse header %q", path, hdr)
	}
	if fort[1] == "True" {
		return nil, nil, fmt.Errorf("op.ReadNPY %s: Fortran-order arrays are not supported", path)
	}
	var shape []int
	n := 1
	for _, f := range strings.Split(shp[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, nil, fmt.Errorf("op.ReadNPY %s: bad shape entry %q", path, f)
		}
		shape = append(shape, v)
		n *= v
	}
	d := descr[1]
	if len(d) > 1 && d[0] == '>' {
		return nil, nil, fmt.Errorf("op.ReadNPY %s: big-endian dtype %s is not supported", path, d)
	}
	d = strings.TrimLeft(d, "<|=")
	sizes := map[string]int{"f4": 4, "f8": 8, "i1": 1, "i2": 2, "i4": 4, "i8": 8, "u1": 1, "b1": 1}
	sz, ok := sizes[d]
	if !ok {
		return nil, nil, fmt.Errorf("op.ReadNPY %s: dtype %s not supported (want f4, f8, i1, i2, i4, i8, u1 or b1)", path, descr[1])
	}
	if len(data) < n*sz {
		return nil, nil, fmt.Errorf("op.ReadNPY %s: %d data bytes for shape %v of %s, want %d", path, len(data), shape, d, n*sz)
	}
	out := make([]float64, n)
	le := binary.LittleEndian
	for i := range out {
		b := data[i*sz:]
		switch d {
		case "f4":
			out[i] = float64(math.Float32frombits(le.Uint32(b)))
		case "f8":
			out[i] = math.Float64frombits(le.Uint64(b))
		case "i1":
			out[i] = float64(int8(b[0]))
		case "i2":
			out[i] = float64(int16(le.Uint16(b)))
		case "i4":
			out[i] = float64(int32(le.Uint32(b)))
		case "i8":
			out[i] = float64(int64(le.Uint64(b)))
		case "u1", "b1":
			out[i] = float64(b[0])
		}
	}
	return out, shape, nil
}

// LoadKernel reads a blur kernel from a .npy file: a 2-D array, or one
// slice (index) of a 3-D stack such as DiffPIR's kernels_12.npy. The kernel
// is normalised to sum 1.
func LoadKernel(path string, index int) (k []float64, kh, kw int, err error) {
	v, shape, err := ReadNPY(path)
	if err != nil {
		return nil, 0, 0, err
	}
	switch len(shape) {
	case 2:
		kh, kw = shape[0], shape[1]
	case 3:
		if index < 0 || index >= shape[0] {
			return nil, 0, 0, fmt.Errorf("op.LoadKernel %s: index %d out of range, the file holds %d kernels", path, index, shape[0])
		}
		kh, kw = shape[1], shape[2]
		v = v[index*kh*kw : (index+1)*kh*kw]
	default:
		return nil, 0, 0, fmt.Errorf("op.LoadKernel %s: shape %v, want 2-D or a 3-D stack", path, shape)
	}
	k, err = NormalizeKernel(v)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("op.LoadKernel %s: %w", path, err)
	}
	return k, kh, kw, nil
}

// LoadMask reads an inpainting mask from a .png (a pixel is observed when
// its mean channel value is above half the range) or a .npy file (a value
// is observed when nonzero; 2-D H×W, or 3-D with the mask in the first
// channel), and resizes it by nearest neighbour to h×w. 1 = observed, as in
// DDNM's inp_mask.
func LoadMask(path string, h, w int) ([]float32, error) {
	var src []float64
	var sh, sw int
	switch {
	case strings.HasSuffix(strings.ToLower(path), ".npy"):
		v, shape, err := ReadNPY(path)
		if err != nil {
			return nil, err
		}
		switch len(shape) {
		case 2:
			sh, sw = shape[0], shape[1]
		case 3: // H×W×C or C×H×W: take the first channel
			if shape[2] <= 4 {
				sh, sw = shape[0], shape[1]
				c := shape[2]
				t := make([]float64, sh*sw)
				for i := range t {
					t[i] = v[i*c]
				}
				v = t
			} else {
				sh, sw = shape[1], shape[2]
				v = v[:sh*sw]
			}
		default:
			return nil, fmt.Errorf("op.LoadMask %s: shape %v, want H×W", path, shape)
		}
		src = make([]float64, len(v))
		for i, x := range v {
			if x != 0 {
				src[i] = 1
			}
		}
	case strings.HasSuffix(strings.ToLower(path), ".png"):
		f, _, err := userfile.Open(path, "op.LoadMask: mask", 256<<20)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		// The header first: a small file can claim a huge image.
		cfg, err := png.DecodeConfig(f)
		if err != nil {
			return nil, fmt.Errorf("op.LoadMask %s: %w", path, err)
		}
		if cfg.Width > 1<<14 || cfg.Height > 1<<14 || cfg.Width*cfg.Height > 1<<24 {
			return nil, fmt.Errorf("op.LoadMask %s: %d×%d, want at most 16384 px a side and 16 Mpx", path, cfg.Width, cfg.Height)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("op.LoadMask %s: %w", path, err)
		}
		img, err := png.Decode(f)
		if err != nil {
			return nil, fmt.Errorf("op.LoadMask %s: %w", path, err)
		}
		b := img.Bounds()
		sh, sw = b.Dy(), b.Dx()
		src = make([]float64, sh*sw)
		for i := 0; i < sh; i++ {
			for j := 0; j < sw; j++ {
				r, g, bl, _ := img.At(b.Min.X+j, b.Min.Y+i).RGBA()
				if float64(r+g+bl)/3 > 0x7fff {
					src[i*sw+j] = 1
				}
			}
		}
	default:
		return nil, fmt.Errorf("op.LoadMask: %s: want a .png or .npy file", path)
	}
	if sh < 1 || sw < 1 || h < 1 || w < 1 {
		return nil, fmt.Errorf("op.LoadMask %s: empty mask %d×%d or target %d×%d", path, sh, sw, h, w)
	}
	return resizeNearest(src, sh, sw, h, w), nil
}

// resizeNearest resamples an sh×sw array to h×w by nearest neighbour
// (source index ⌊(i+½)·sh/h⌋).
func resizeNearest(src []float64, sh, sw, h, w int) []float32 {
	out := make([]float32, h*w)
	for i := 0; i < h; i++ {
		si := min(sh-1, int((float64(i)+0.5)*float64(sh)/float64(h)))
		for j := 0; j < w; j++ {
			sj := min(sw-1, int((float64(j)+0.5)*float64(sw)/float64(w)))
			out[i*w+j] = float32(src[si*sw+sj])
		}
	}
	return out
}
