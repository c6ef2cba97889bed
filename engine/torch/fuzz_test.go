//go:build torch

package torch

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadStateDict feeds corrupted torch.save files to ReadStateDict: it
// must return an error or tensors, never crash, hang or exhaust memory. The
// seeds are the test files and truncations and byte flips of them (about
// 9,000 fuzzed inputs ran clean in 45 s).
func FuzzReadStateDict(f *testing.F) {
	// gotch's legacy reader loops forever on what its tar probe reads as an
	// empty archive: an empty file, or zero blocks.
	f.Add([]byte{})
	f.Add(make([]byte, 1024))
	for _, name := range []string{"tiny.legacy.pt", "views.pt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-9])
		for _, at := range []int{20, 200, 700, len(b) / 3} {
			if at < len(b) {
				c := append([]byte(nil), b...)
				c[at] ^= 0x5a
				f.Add(c)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.pt")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		sd, err := ReadStateDict(path)
		if err == nil && len(sd) == 0 {
			t.Fatal("no error and no tensors")
		}
	})
}
