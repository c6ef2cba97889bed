package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/diffinv/diffinv/internal/userfile"
)

// IDX magic numbers of the two MNIST file kinds: 0x00 0x00, type code 0x08
// (unsigned byte), then the number of dimensions (3 for images, 1 for labels).
const (
	idxImagesMagic = 2051
	idxLabelsMagic = 2049
	// maxIDXPayload bounds the payload size a header may declare (2 GiB);
	// MNIST's largest file holds 47,040,000 pixel bytes.
	maxIDXPayload = 1 << 31
)

// IDXImages is the content of an IDX image file (magic 2051): N images of
// Rows×Cols unsigned bytes, row-major, image after image.
type IDXImages struct {
	N, Rows, Cols int
	Pix           []uint8 // len N*Rows*Cols, 0 = black background, 255 = ink
}

// ReadIDXImages reads an IDX image file (magic 2051, uint8, 3 dimensions)
// from r, raw or gzip-compressed (detected by the gzip magic bytes 1f 8b).
//
// The stream must hold exactly the number of bytes its header declares:
// a short stream is reported as truncated and extra bytes as trailing data,
// both with the expected and actual sizes. Memory grows with the bytes
// actually read, never with what a hostile header declares.
func ReadIDXImages(r io.Reader) (*IDXImages, error) {
	dims, pix, err := readIDX(r, idxImagesMagic, 3, "images")
	if err != nil {
		return nil, err
	}
	return &IDXImages{N: dims[0], Rows: dims[1], Cols: dims[2], Pix: pix}, nil
}

// ReadIDXLabels reads an IDX label file (magic 2049, uint8, 1 dimension)
// from r, raw or gzip-compressed, with the same checks as ReadIDXImages.
// Label values are returned as stored; LoadMNIST checks they lie in 0..9.
func ReadIDXLabels(r io.Reader) ([]uint8, error) {
	_, lab, err := readIDX(r, idxLabelsMagic, 1, "labels")
	return lab, err
}

// readIDX reads one uint8 IDX stream with the given magic and dimension
// count, returning the dimensions and the payload.
func readIDX(r io.Reader, magic uint32, ndim int, kind string) ([]int, []uint8, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	compressed := false
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("IDX %s: bad gzip header: %w", kind, err)
		}
		defer zr.Close()
		src, compressed = zr, true
	}
	headerLen := 4 + 4*ndim
	header := make([]byte, headerLen)
	if n, err := io.ReadFull(src, header); err != nil {
		return nil, nil, fmt.Errorf("IDX %s: truncated header: want %d bytes, got %d%s",
			kind, headerLen, n, streamErr(err, compressed))
	}
	if got := binary.BigEndian.Uint32(header); got != magic {
		return nil, nil, fmt.Errorf("IDX %s: wrong magic number %d (0x%08x), want %d (0x%08x)",
			kind, got, got, magic, magic)
	}
	dims := make([]int, ndim)
	total := int64(1)
	for i := range dims {
		d := binary.BigEndian.Uint32(header[4+4*i:])
		dims[i] = int(d)
		total *= int64(d)
		if total > maxIDXPayload {
			return nil, nil, fmt.Errorf("IDX %s: header declares dimensions %v..., more than the %d bytes this reader accepts",
				kind, dims[:i+1], int64(maxIDXPayload))
		}
	}
	// Read at most one byte past the declared payload: io.ReadAll grows its
	// buffer with the data that actually arrives.
	payload, err := io.ReadAll(io.LimitReader(src, total+1))
	if err != nil && !(errors.Is(err, io.ErrUnexpectedEOF) && int64(len(payload)) < total) {
		if compressed && errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("IDX %s: truncated gzip stream: all %d payload bytes decompressed but the gzip end (checksum, size) is missing", kind, total)
		}
		return nil, nil, fmt.Errorf("IDX %s: reading payload: %w", kind, err)
	}
	want, got := int64(headerLen)+total, int64(headerLen)+int64(len(payload))
	switch {
	case int64(len(payload)) < total:
		return nil, nil, fmt.Errorf("IDX %s: truncated: header declares dimensions %v, so %d bytes in all, but the %s holds %d%s",
			kind, dims, want, streamName(compressed), got, streamErr(err, compressed))
	case int64(len(payload)) > total:
		return nil, nil, fmt.Errorf("IDX %s: trailing data: header declares dimensions %v, so %d bytes in all, but the %s holds more",
			kind, dims, want, streamName(compressed))
	}
	return dims, payload, nil
}

func streamName(compressed bool) string {
	if compressed {
		return "decompressed stream"
	}
	return "stream"
}

func streamErr(err error, compressed bool) string {
	if err != nil && compressed && errors.Is(err, io.ErrUnexpectedEOF) {
		return " (gzip stream cut short)"
	}
	return ""
}

// mnistFiles returns the image and label file names of a split, without
// the optional ".gz".
func mnistFiles(split string) (images, labels string, ok bool) {
	switch split {
	case "train":
		return "train-images-idx3-ubyte", "train-labels-idx1-ubyte", true
	case "test":
		return "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", true
	}
	return "", "", false
}

// LoadMNIST reads the "train" (60,000 images) or "test" (10,000 images)
// split of MNIST from dir, which holds the standard file names
// (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte), each raw or with a ".gz" suffix (the .gz file is
// used when both exist).
//
// The result has N×1×28×28 pixels and labels in 0..9; Dataset.Batch maps
// pixels to [-1, 1]. Use Dataset.Pad(2) for the 32×32 layout many DDPM
// MNIST setups use.
func LoadMNIST(dir, split string) (*Dataset, error) {
	imgName, labName, ok := mnistFiles(split)
	if !ok {
		return nil, splitError("mnist", split)
	}
	imgPath, err := findIDX(dir, imgName)
	if err != nil {
		return nil, err
	}
	labPath, err := findIDX(dir, labName)
	if err != nil {
		return nil, err
	}
	imgs, err := readIDXFile(imgPath, ReadIDXImages)
	if err != nil {
		return nil, err
	}
	labs, err := readIDXFile(labPath, ReadIDXLabels)
	if err != nil {
		return nil, err
	}
	if imgs.N != len(labs) {
		return nil, fmt.Errorf("MNIST %s: %s holds %d images but %s holds %d labels",
			split, imgPath, imgs.N, labPath, len(labs))
	}
	labels := make([]int, len(labs))
	for i, l := range labs {
		if l > 9 {
			return nil, fmt.Errorf("MNIST %s: %s: label %d at index %d, want 0..9", split, labPath, l, i)
		}
		labels[i] = int(l)
	}
	return NewDataset(imgs.Pix, labels, imgs.N, 1, imgs.Rows, imgs.Cols)
}

// findIDX returns dir/base.gz or dir/base, whichever exists (.gz first).
func findIDX(dir, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("MNIST: neither %s.gz nor %s found in %s", base, base, dir)
}

// maxIDXFile caps an MNIST file (the largest, train-images, is 47 MB).
const maxIDXFile = 1 << 30

// readIDXFile opens path and runs read on it, naming the file in errors.
func readIDXFile[T any](path string, read func(io.Reader) (T, error)) (T, error) {
	var zero T
	// A regular file only: a directory used to read as a truncated header,
	// a device or named pipe as an endless or blocking stream.
	f, _, err := userfile.Open(path, "MNIST file", maxIDXFile)
	if err != nil {
		return zero, fmt.Errorf("MNIST: %w", err)
	}
	defer f.Close()
	v, err := read(f)
	if err != nil {
		return zero, fmt.Errorf("MNIST file %s: %w", path, err)
	}
	return v, nil
}
