package op

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeNPY writes a version-1 .npy file with the given header dict and raw data.
func writeNPY(t *testing.T, path, dict string, raw []byte) {
	t.Helper()
	hdr := dict
	for (10+len(hdr)+1)%64 != 0 {
		hdr += " "
	}
	hdr += "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(hdr)))
	b = append(b, hdr...)
	b = append(b, raw...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadNPY(t *testing.T) {
	dir := t.TempDir()
	var f4, i8 []byte
	for i := 0; i < 6; i++ {
		f4 = binary.LittleEndian.AppendUint32(f4, math.Float32bits(float32(i)+0.5))
		i8 = binary.LittleEndian.AppendUint64(i8, uint64(int64(i-2)))
	}
	writeNPY(t, filepath.Join(dir, "a.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4)
	writeNPY(t, filepath.Join(dir, "b.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }", i8)
	writeNPY(t, filepath.Join(dir, "c.npy"), "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f4)
	writeNPY(t, filepath.Join(dir, "d.npy"), "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f4)
	writeNPY(t, filepath.Join(dir, "e.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", f4)
	v, s, err := ReadNPY(filepath.Join(dir, "a.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || s[0] != 2 || s[1] != 3 || v[4] != 4.5 {
		t.Errorf("a.npy: shape %v values %v", s, v)
	}
	v, s, err = ReadNPY(filepath.Join(dir, "b.npy"))
	if err != nil || len(s) != 1 || v[0] != -2 || v[5] != 3 {
		t.Errorf("b.npy: %v %v %v", v, s, err)
	}
	for name, want := range map[string]string{"c.npy": "Fortran", "d.npy": "dtype", "e.npy": "data bytes", "missing.npy": "no such file"} {
		if _, _, err := ReadNPY(filepath.Join(dir, name)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, want)
		}
	}
	// a 3-D kernel stack: slice 1 normalised
	writeNPY(t, filepath.Join(dir, "k.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3), }", f4)
	k, kh, kw, err := LoadKernel(filepath.Join(dir, "k.npy"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if kh != 1 || kw != 3 || math.Abs(k[0]-3.5/13.5) > 1e-12 {
		t.Errorf("kernel %v (%d×%d), want [3.5 4.5 5.5]/13.5", k, kh, kw)
	}
}

func TestLoadMaskResizesByNearestNeighbour(t *testing.T) {
	dir := t.TempDir()
	// 4×4 PNG: left half white (observed), right half black
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			if j < 2 {
				img.SetGray(j, i, color.Gray{Y: 255})
			}
		}
	}
	p := filepath.Join(dir, "m.png")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m, err := LoadMask(p, 8, 6)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		for j := 0; j < 6; j++ {
			// source column ⌊(j+½)·4/6⌋ < 2 ⇔ j < 3
			want := float32(0)
			if j < 3 {
				want = 1
			}
			if m[i*6+j] != want {
				t.Fatalf("mask (%d,%d) = %v, want %v", i, j, m[i*6+j], want)
			}
		}
	}
	if _, err := LoadMask(filepath.Join(dir, "m.jpg"), 8, 8); err == nil {
		t.Error("a .jpg mask was accepted")
	}
}

// TestFilesHostile: a mask PNG whose header claims a huge image is refused
// from the header, and devices are refused by name.
func TestFilesHostile(t *testing.T) {
	dir := t.TempDir()
	// A valid PNG header (IHDR) of 30000×30000 with nothing after it.
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := []byte{0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30, 8, 0, 0, 0, 0}
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	bomb := filepath.Join(dir, "bomb.png")
	os.WriteFile(bomb, b.Bytes(), 0o644)
	if _, err := LoadMask(bomb, 28, 28); err == nil || !strings.Contains(err.Error(), "30000×30000") {
		t.Errorf("30000×30000 mask: %v, want it refused from the header", err)
	}
	if _, _, err := ReadNPY("/dev/zero"); err == nil || !strings.Contains(err.Error(), "want a regular file") {
		t.Errorf("ReadNPY(/dev/zero): %v", err)
	}
}
