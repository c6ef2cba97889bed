package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pngHeaderOnly is a PNG signature and IHDR chunk declaring a w×h 8-bit
// grayscale image, with no pixel data: enough for image.DecodeConfig.
func pngHeaderOnly(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 0, 0, 0, 0) // depth 8, gray, deflate, filter 0, no interlace
	chunk := append([]byte("IHDR"), ihdr...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ihdr)))
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLoadPNGRefusesBombsFromTheHeader covers issue 19 item 7: an image
// beyond the caps is refused before its pixels are decoded (the bomb of
// the issue, 30000×30000 in 875 KB, decoded 4.4 GB before).
func TestLoadPNGRefusesBombsFromTheHeader(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A real, fully encoded image one pixel beyond MaxImagePixels (4097² >
	// 2^24): a few hundred KB of zlib that decodes to 16.8 MB.
	big := write("big.png", encodePNG(t, image.NewGray(image.Rect(0, 0, 4097, 4097))))
	small := write("small.png", encodePNG(t, image.NewGray(image.Rect(0, 0, 40, 30))))
	cases := []struct {
		name, path string
		maxSide    int
		want       string
	}{
		{"issue's bomb", write("bomb.png", pngHeaderOnly(30000, 30000)), 0, "30000×30000, want each side at most 16384"},
		{"too many pixels", big, 0, "4097×4097 = 16785409 pixels, more than the 16777216 allowed"},
		{"beyond what the caller takes", small, 28, "40×30, larger than the 28×28 this command takes"},
		{"not an image", write("x.png", []byte("hello")), 0, "cannot decode"},
		{"a directory", dir, 0, "is a directory, want a regular file"},
		{"a device", "/dev/zero", 0, "is a character device"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := LoadPNGMax(c.path, c.maxSide)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadPNGMax(%s, %d) = %v, want an error containing %q", c.path, c.maxSide, err, c.want)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
				t.Errorf("refusing it allocated %d bytes: the pixels were decoded", got)
			}
		})
	}
	if x, err := LoadPNGMax(small, 40); err != nil || x.Shape()[2] != 30 || x.Shape()[3] != 40 {
		t.Errorf("a 40×30 image within a 40-px limit: %v, %v", x, err)
	}
}

// TestFolderRefusesBombs: image folders (training data) check headers too.
func TestFolderRefusesBombs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.png"), pngHeaderOnly(30000, 30000), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadImageFolder(dir, FolderOptions{Size: 8})
	if err == nil || !strings.Contains(err.Error(), "30000×30000") || !strings.Contains(err.Error(), "a.png") {
		t.Fatalf("LoadImageFolder = %v, want an error naming a.png and its size", err)
	}
}

// FuzzDecodeImage feeds arbitrary bytes to DecodeImage with a 64-px limit:
// it must never panic nor decode beyond the limit, and an accepted image
// converts to a tensor of its size with values in [-1, 1]. Seeds: f.Add
// below plus testdata/fuzz/FuzzDecodeImage; `go test` runs them all.
func FuzzDecodeImage(f *testing.F) {
	gray := image.NewGray(image.Rect(0, 0, 5, 3))
	rgba := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	g16 := image.NewGray16(image.Rect(0, 0, 2, 2))
	pal := image.NewPaletted(image.Rect(0, 0, 3, 3), color.Palette{color.Black, color.White})
	for i := range gray.Pix {
		gray.Pix[i] = uint8(40 * i)
	}
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(17 * i)
	}
	for _, img := range []image.Image{gray, rgba, g16, pal} {
		f.Add(encodePNG(f, img))
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, rgba, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(jb.Bytes())
	f.Add(pngHeaderOnly(30000, 30000))
	f.Add(pngHeaderOnly(65, 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		img, err := DecodeImage(bytes.NewReader(in), "fuzz", 64)
		if err != nil {
			return
		}
		b := img.Bounds()
		if b.Dx() < 1 || b.Dy() < 1 || b.Dx() > 64 || b.Dy() > 64 {
			t.Fatalf("accepted a %d×%d image with a 64-px limit", b.Dx(), b.Dy())
		}
		x := ImageTensor(img)
		s := x.Shape()
		if len(s) != 4 || s[0] != 1 || (s[1] != 1 && s[1] != 3) || s[2] != b.Dy() || s[3] != b.Dx() {
			t.Fatalf("tensor shape %v for a %d×%d image", s, b.Dx(), b.Dy())
		}
		for _, v := range x.Data().([]float32) {
			if !(v >= -1 && v <= 1) {
				t.Fatalf("value %v outside [-1, 1]", v)
			}
		}
	})
}

// TestMNISTPathMustBeRegularFile (issue 19 item 13's last case): an MNIST
// file that is a directory was reported as a truncated header.
func TestMNISTPathMustBeRegularFile(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadMNIST(dir, "test")
	if err == nil || !strings.Contains(err.Error(), "-ubyte is a directory, want a regular file") {
		t.Fatalf("LoadMNIST with a directory for the images file: %v", err)
	}
}
