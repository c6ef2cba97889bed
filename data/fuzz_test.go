package data

import (
	"bytes"
	"testing"
)

// FuzzReadIDXImages feeds arbitrary bytes to ReadIDXImages: it must never
// panic, and whatever it accepts must be self-consistent (the payload size
// matches the dimensions and re-encodes to the same raw file when the input
// was raw). Seeds live in testdata/fuzz/FuzzReadIDXImages.
func FuzzReadIDXImages(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		im, err := ReadIDXImages(bytes.NewReader(in))
		if err != nil {
			if im != nil {
				t.Fatalf("non-nil result with error %v", err)
			}
			return
		}
		if im.N < 0 || im.Rows < 0 || im.Cols < 0 || len(im.Pix) != im.N*im.Rows*im.Cols {
			t.Fatalf("accepted %d×%d×%d with %d pixel bytes", im.N, im.Rows, im.Cols, len(im.Pix))
		}
		if len(in) < 2 || in[0] != 0x1f || in[1] != 0x8b {
			re := idxBytes(2051, []uint32{uint32(im.N), uint32(im.Rows), uint32(im.Cols)}, im.Pix)
			if !bytes.Equal(re, in) {
				t.Fatalf("re-encoding the accepted raw file gives different bytes")
			}
		}
	})
}

// FuzzReadIDXLabels is FuzzReadIDXImages for label files.
func FuzzReadIDXLabels(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		lab, err := ReadIDXLabels(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(in) < 2 || in[0] != 0x1f || in[1] != 0x8b {
			re := idxBytes(2049, []uint32{uint32(len(lab))}, lab)
			if !bytes.Equal(re, in) {
				t.Fatalf("re-encoding the accepted raw file gives different bytes")
			}
		}
	})
}
