package data

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// idxBytes builds an IDX file: magic, dimensions, payload.
func idxBytes(magic uint32, dims []uint32, payload []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(payload)
	return b.Bytes()
}

func gzipBytes(t testing.TB, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// patternImages returns n images of rows×cols bytes with a known pattern.
func patternImages(n, rows, cols int) []byte {
	p := make([]byte, n*rows*cols)
	for i := range p {
		p[i] = byte((i*7 + i/(rows*cols)*13) % 256)
	}
	return p
}

func TestReadIDXRoundTrip(t *testing.T) {
	const n, rows, cols = 5, 4, 3
	pix := patternImages(n, rows, cols)
	labs := []byte{3, 1, 4, 1, 5}
	rawImg := idxBytes(2051, []uint32{n, rows, cols}, pix)
	rawLab := idxBytes(2049, []uint32{n}, labs)
	for _, tc := range []struct {
		name     string
		img, lab []byte
	}{
		{"raw", rawImg, rawLab},
		{"gzip", gzipBytes(t, rawImg), gzipBytes(t, rawLab)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := ReadIDXImages(bytes.NewReader(tc.img))
			if err != nil {
				t.Fatal(err)
			}
			if im.N != n || im.Rows != rows || im.Cols != cols || !bytes.Equal(im.Pix, pix) {
				t.Errorf("images: got %d×%d×%d, pixels equal %v; want %d×%d×%d", im.N, im.Rows, im.Cols, bytes.Equal(im.Pix, pix), n, rows, cols)
			}
			lb, err := ReadIDXLabels(bytes.NewReader(tc.lab))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(lb, labs) {
				t.Errorf("labels %v, want %v", lb, labs)
			}
		})
	}
}

func TestReadIDXErrors(t *testing.T) {
	good := idxBytes(2051, []uint32{2, 3, 3}, make([]byte, 18))
	gz := gzipBytes(t, good)
	cases := []struct {
		name   string
		in     []byte
		labels bool
		want   []string // substrings the error must contain
	}{
		{"empty", nil, false, []string{"truncated header", "want 16 bytes, got 0"}},
		{"short header", good[:10], false, []string{"truncated header", "got 10"}},
		{"wrong magic", idxBytes(2049, []uint32{2, 3, 3}, make([]byte, 18)), false, []string{"wrong magic number 2049", "want 2051"}},
		{"labels given image file", good, true, []string{"wrong magic number 2051", "want 2049"}},
		{"truncated payload", good[:len(good)-5], false, []string{"truncated", "[2 3 3]", "34 bytes in all", "holds 29"}},
		{"trailing data", append(append([]byte{}, good...), 1, 2), false, []string{"trailing data", "34 bytes"}},
		{"gzip without end", gz[:len(gz)-3], false, []string{"truncated gzip stream", "checksum"}},
		{"truncated gzip", gz[:20], false, []string{"IDX images: truncated", "gzip stream cut short"}},
		{"huge header", idxBytes(2051, []uint32{0xffffffff, 0xffffffff, 28}, nil), false, []string{"more than the 2147483648 bytes"}},
		{"huge header small dims", idxBytes(2051, []uint32{1 << 30, 28, 28}, make([]byte, 100)), false, []string{"more than"}},
		{"big but plausible header, no data", idxBytes(2051, []uint32{1 << 20, 28, 28}, make([]byte, 100)), false, []string{"truncated", "holds 116"}},
		{"truncated labels", idxBytes(2049, []uint32{10}, []byte{1, 2, 3}), true, []string{"IDX labels: truncated", "18 bytes in all", "holds 11"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.labels {
				_, err = ReadIDXLabels(bytes.NewReader(tc.in))
			} else {
				_, err = ReadIDXImages(bytes.NewReader(tc.in))
			}
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

// writeMNIST writes a split of generated IDX files to dir, gzipped or raw.
func writeMNIST(t *testing.T, dir, prefix string, pix, labs []byte, n int, gz bool) {
	t.Helper()
	files := map[string][]byte{
		prefix + "-images-idx3-ubyte": idxBytes(2051, []uint32{uint32(len(pix) / 784), 28, 28}, pix),
		prefix + "-labels-idx1-ubyte": idxBytes(2049, []uint32{uint32(n)}, labs),
	}
	for name, b := range files {
		if gz {
			name, b = name+".gz", gzipBytes(t, b)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadMNISTGenerated(t *testing.T) {
	const n = 6
	pix := patternImages(n, 28, 28)
	labs := []byte{0, 9, 2, 3, 4, 5}
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		writeMNIST(t, dir, "t10k", pix, labs, n, gz)
		ds, err := LoadMNIST(dir, "test")
		if err != nil {
			t.Fatalf("gz=%v: %v", gz, err)
		}
		c, h, w := ds.Dims()
		if ds.Len() != n || c != 1 || h != 28 || w != 28 {
			t.Fatalf("gz=%v: got %d×%d×%d×%d, want %d×1×28×28", gz, ds.Len(), c, h, w, n)
		}
		if !bytes.Equal(ds.Pixels(), pix) {
			t.Errorf("gz=%v: pixels differ from the file's", gz)
		}
		got := ds.Labels()
		for i := range labs {
			if got[i] != int(labs[i]) {
				t.Errorf("gz=%v: label %d = %d, want %d", gz, i, got[i], labs[i])
			}
		}
	}
}

func TestLoadMNISTErrors(t *testing.T) {
	pix := patternImages(4, 28, 28)
	cases := []struct {
		name  string
		setup func(dir string)
		split string
		want  []string
	}{
		{"bad split", func(string) {}, "validation", []string{`split "validation"`, "want one of train, test"}},
		{"missing files", func(string) {}, "train", []string{"train-images-idx3-ubyte.gz", "found in"}},
		{"count mismatch", func(dir string) { writeMNIST(t, dir, "train", pix, []byte{1, 2, 3}, 3, true) }, "train",
			[]string{"holds 4 images", "holds 3 labels", "train-labels-idx1-ubyte.gz"}},
		{"label out of range", func(dir string) { writeMNIST(t, dir, "train", pix, []byte{1, 2, 10, 3}, 4, false) }, "train",
			[]string{"label 10 at index 2", "want 0..9"}},
		{"truncated file", func(dir string) {
			writeMNIST(t, dir, "train", pix, []byte{1, 2, 3, 4}, 4, false)
			p := filepath.Join(dir, "train-images-idx3-ubyte")
			os.Truncate(p, 1000)
		}, "train", []string{"train-images-idx3-ubyte", "truncated", "3152 bytes in all", "holds 1000"}},
		{"folder in place of a file", func(dir string) {
			writeMNIST(t, dir, "train", pix, []byte{1, 2, 3, 4}, 4, false)
			p := filepath.Join(dir, "train-images-idx3-ubyte")
			os.Remove(p)
			os.Mkdir(p, 0o755)
		}, "train", []string{"train-images-idx3-ubyte is a directory, want a regular file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			_, err := LoadMNIST(dir, tc.split)
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

const mnistDir = "/work/shared/data/mnist"

// provenanceMD5 reads the raw (decompressed) MD5s listed in PROVENANCE.txt.
func provenanceMD5(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mnistDir, "PROVENANCE.txt"))
	if err != nil {
		t.Skipf("no PROVENANCE.txt in %s: %v", mnistDir, err)
	}
	i := strings.Index(string(b), "Raw (uncompressed) md5")
	if i < 0 {
		t.Fatalf("PROVENANCE.txt has no raw md5 section")
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(train|t10k)-(images|labels)\s+([0-9a-f]{32})`).FindAllStringSubmatch(string(b[i:]), -1) {
		out[m[1]+"-"+m[2]] = m[3]
	}
	if len(out) != 4 {
		t.Fatalf("found %d raw md5s in PROVENANCE.txt, want 4: %v", len(out), out)
	}
	return out
}

func md5Hex(parts ...[]byte) string {
	h := md5.New()
	for _, p := range parts {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestLoadMNISTReal checks the reader against the real files: sizes, labels,
// the MD5 of the re-serialised content against the published raw MD5s, and
// the test-set pixel mean against one computed from the raw bytes.
func TestLoadMNISTReal(t *testing.T) {
	if _, err := os.Stat(filepath.Join(mnistDir, "t10k-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("MNIST not available at %s (%v); skipping the real-data test", mnistDir, err)
	}
	sums := provenanceMD5(t)
	for _, tc := range []struct {
		split, prefix string
		n             int
	}{{"train", "train", 60000}, {"test", "t10k", 10000}} {
		t.Run(tc.split, func(t *testing.T) {
			ds, err := LoadMNIST(mnistDir, tc.split)
			if err != nil {
				t.Fatal(err)
			}
			c, h, w := ds.Dims()
			if ds.Len() != tc.n || c != 1 || h != 28 || w != 28 {
				t.Fatalf("got %d×%d×%d×%d, want %d×1×28×28", ds.Len(), c, h, w, tc.n)
			}
			// Re-serialise what the reader returned; it must hash to the
			// published MD5 of the original uncompressed file.
			img := idxBytes(2051, []uint32{uint32(tc.n), 28, 28}, ds.Pixels())
			if got, want := md5Hex(img), sums[tc.prefix+"-images"]; got != want {
				t.Errorf("images md5 %s, want %s", got, want)
			}
			labs := make([]byte, tc.n)
			var count [10]int
			for i, l := range ds.Labels() {
				labs[i] = byte(l)
				count[l]++ // LoadMNIST guarantees 0..9
			}
			if got, want := md5Hex(idxBytes(2049, []uint32{uint32(tc.n)}, labs)), sums[tc.prefix+"-labels"]; got != want {
				t.Errorf("labels md5 %s, want %s", got, want)
			}
			for d, k := range count {
				if k < tc.n/20 {
					t.Errorf("digit %d occurs %d times in %d, implausibly few", d, k, tc.n)
				}
			}
		})
	}
	t.Run("test mean", func(t *testing.T) {
		// Independent path: decompress the file by hand and average bytes.
		f, err := os.Open(filepath.Join(mnistDir, "t10k-images-idx3-ubyte.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, b := range raw[16:] {
			sum += float64(b)
		}
		want := sum/float64(len(raw)-16)/127.5 - 1
		ds, err := LoadMNIST(mnistDir, "test")
		if err != nil {
			t.Fatal(err)
		}
		idx := make([]int, ds.Len())
		for i := range idx {
			idx[i] = i
		}
		x, err := ds.Batch(idx)
		if err != nil {
			t.Fatal(err)
		}
		var got float64
		for _, v := range x.Data().([]float32) {
			if v < -1 || v > 1 {
				t.Fatalf("value %v outside [-1, 1]", v)
			}
			got += float64(v)
		}
		got /= float64(len(raw) - 16)
		if d := got - want; d > 1e-6 || d < -1e-6 {
			t.Errorf("test-set mean in [-1,1] %.8f, want %.8f from the raw bytes", got, want)
		}
		// MNIST's well-known mean intensity is 0.1325 in [0,1] (33.3/255).
		if m01 := (want + 1) / 2; m01 < 0.12 || m01 > 0.145 {
			t.Errorf("test-set mean %.4f in [0,1], expected about 0.133", m01)
		}
	})
}
