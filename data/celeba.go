package data

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/diffinv/diffinv/internal/userfile"
)

// maxLabelFile caps CelebA's label files (the largest, the attributes of
// 202,599 images, is 26 MB).
const maxLabelFile = 1 << 30

// CelebA's standard label files (Liu et al., ICCV 2015), as distributed
// with img_align_celeba and read by torchvision.datasets.CelebA.
const (
	CelebAPartitionFile = "list_eval_partition.txt" // "<file> <0|1|2>": train, val, test
	CelebAIdentityFile  = "identity_CelebA.txt"     // "<file> <identity>"
	CelebAAttrFile      = "list_attr_celeba.txt"    // count, 40 names, "<file> ±1 ×40"
)

// celebASplits are the split names and their codes in the partition file.
var celebASplits = map[string]int{"train": 0, "val": 1, "test": 2}

// CelebALabels is what the standard files say about the images of a split,
// in dataset order (by file name).
type CelebALabels struct {
	// Split is "train", "val" or "test".
	Split string
	// Files are the image file names (e.g. "000001.jpg").
	Files []string
	// Identity is each image's identity number; nil when the folder has no
	// identity_CelebA.txt.
	Identity []int
	// AttrNames are the 40 attribute names of list_attr_celeba.txt, and
	// Attrs[i][a] says whether image i has attribute a (+1 in the file);
	// both nil when the folder has no list_attr_celeba.txt.
	AttrNames []string
	Attrs     [][]bool
}

// CelebAImageDir returns the image folder of a CelebA root folder: its
// subfolder img_align_celeba (the official download), else the only
// subfolder whose name starts with img_align_celeba (e.g. the half-size
// img_align_celeba_89x109 here).
func CelebAImageDir(root string) (string, error) {
	official := filepath.Join(root, "img_align_celeba")
	if st, err := os.Stat(official); err == nil && st.IsDir() {
		return official, nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("celeba: %w", err)
	}
	var found []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "img_align_celeba") {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("celeba: %s has no img_align_celeba folder (want the CelebA root: %s, %s and the image folder img_align_celeba)", root, CelebAPartitionFile, CelebAAttrFile)
	case 1:
		return filepath.Join(root, found[0]), nil
	}
	return "", fmt.Errorf("celeba: %s has several image folders %v, want one named img_align_celeba*", root, found)
}

// CelebACrop is the side of the standard centre crop of an aligned CelebA
// image w pixels wide: the 140×140 crop of the 178×218 originals (the crop
// of the DDPM and DDIM CelebA 64 pipelines), scaled to the image, so 70 for
// the 89×109 half-size copies.
func CelebACrop(w int) int { return int(math.Round(140 * float64(w) / 178)) }

// ReadCelebASplit reads the label files of the CelebA root folder and
// returns the labels of the images of split ("train", "val" or "test") that
// are present in its image folder, sorted by file name; limit > 0 keeps the
// first limit. The split comes from list_eval_partition.txt, so a full
// CelebA download (202,599 images) and a partial copy select the same way.
// An image missing from the partition file is an error.
func ReadCelebASplit(root, split string, limit int) (*CelebALabels, error) {
	code, ok := celebASplits[split]
	if !ok {
		return nil, splitError("celeba", split)
	}
	if limit < 0 {
		return nil, fmt.Errorf("celeba: limit %d, want ≥ 0 (0 = all)", limit)
	}
	imgDir, err := CelebAImageDir(root)
	if err != nil {
		return nil, err
	}
	part, err := readCelebAInts(filepath.Join(root, CelebAPartitionFile))
	if err != nil {
		return nil, err
	}
	paths, err := ListImages(imgDir)
	if err != nil {
		return nil, fmt.Errorf("celeba: %w", err)
	}
	lab := &CelebALabels{Split: split}
	for _, p := range paths {
		name := filepath.Base(p)
		c, ok := part[name]
		if !ok {
			return nil, fmt.Errorf("celeba: image %s is not in %s", p, filepath.Join(root, CelebAPartitionFile))
		}
		if c == code {
			lab.Files = append(lab.Files, name)
		}
	}
	sort.Strings(lab.Files)
	if limit > 0 && len(lab.Files) > limit {
		lab.Files = lab.Files[:limit]
	}
	if len(lab.Files) == 0 {
		return nil, fmt.Errorf("celeba: no image of %s is in the %s split", imgDir, split)
	}
	ids, err := readCelebAInts(filepath.Join(root, CelebAIdentityFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		lab.Identity = make([]int, len(lab.Files))
		for i, f := range lab.Files {
			id, ok := ids[f]
			if !ok {
				return nil, fmt.Errorf("celeba: image %s has no identity in %s", f, filepath.Join(root, CelebAIdentityFile))
			}
			lab.Identity[i] = id
		}
	}
	names, attrs, err := readCelebAAttrs(filepath.Join(root, CelebAAttrFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		lab.AttrNames = names
		lab.Attrs = make([][]bool, len(lab.Files))
		for i, f := range lab.Files {
			a, ok := attrs[f]
			if !ok {
				return nil, fmt.Errorf("celeba: image %s has no attributes in %s", f, filepath.Join(root, CelebAAttrFile))
			}
			lab.Attrs[i] = a
		}
	}
	return lab, nil
}

// LoadCelebA loads the images of split from the CelebA root folder (see
// ReadCelebASplit) as an N×3×size×size dataset: each image centre-cropped
// to crop×crop (0: CelebACrop of the image width, the standard 140-px crop
// at the image's scale) and resized to size with antialiasing, as
// LoadImageFolder does. It returns the split's labels beside the images.
func LoadCelebA(root, split string, size, crop, limit int) (*Dataset, *CelebALabels, error) {
	if size < 1 || crop < 0 {
		return nil, nil, fmt.Errorf("celeba: output size %d and crop %d, want size ≥ 1 and crop ≥ 0", size, crop)
	}
	lab, err := ReadCelebASplit(root, split, limit)
	if err != nil {
		return nil, nil, err
	}
	imgDir, err := CelebAImageDir(root)
	if err != nil {
		return nil, nil, err
	}
	paths := make([]string, len(lab.Files))
	for i, f := range lab.Files {
		paths[i] = filepath.Join(imgDir, f)
	}
	if crop == 0 {
		w, err := imageWidth(paths[0])
		if err != nil {
			return nil, nil, err
		}
		crop = CelebACrop(w)
	}
	ds, err := loadPaths(paths, FolderOptions{Size: size, Crop: crop})
	if err != nil {
		return nil, nil, fmt.Errorf("celeba %s split: %w", split, err)
	}
	return ds, lab, nil
}

// imageWidth reads the width of the image at path from its header.
func imageWidth(path string) (int, error) {
	f, _, err := userfile.Open(path, "celeba: image", MaxImageFileSize)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, fmt.Errorf("celeba: image %s: cannot read its size: %w", path, err)
	}
	if err := CheckImageSize(path, cfg.Width, cfg.Height, 0); err != nil {
		return 0, fmt.Errorf("celeba: %w", err)
	}
	return cfg.Width, nil
}

// readCelebAInts reads a "<file> <integer>" per line file (the partition
// and identity files; a first line holding a lone count is skipped).
func readCelebAInts(path string) (map[string]int, error) {
	f, _, err := userfile.Open(path, "celeba: label file", maxLabelFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := make(map[string]int)
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || (line == 1 && len(fields) == 1) {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("celeba: %s line %d: %d fields, want \"<file> <integer>\"", path, line, len(fields))
		}
		v, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("celeba: %s line %d: %q is not an integer", path, line, fields[1])
		}
		m[fields[0]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("celeba: reading %s: %w", path, err)
	}
	return m, nil
}

// readCelebAAttrs reads list_attr_celeba.txt: a count line, a line of
// attribute names, then "<file> ±1 …" with one value per name.
func readCelebAAttrs(path string) ([]string, map[string][]bool, error) {
	f, _, err := userfile.Open(path, "celeba: label file", maxLabelFile)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, nil, fmt.Errorf("celeba: %s is empty, want a count line, the attribute names, then one row per image", path)
	}
	if !sc.Scan() {
		return nil, nil, fmt.Errorf("celeba: %s has no attribute-name line", path)
	}
	names := strings.Fields(sc.Text())
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("celeba: %s line 2: no attribute names", path)
	}
	m := make(map[string][]bool)
	for line := 3; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != len(names)+1 {
			return nil, nil, fmt.Errorf("celeba: %s line %d: %d values, want %d (one per attribute)", path, line, len(fields)-1, len(names))
		}
		a := make([]bool, len(names))
		for j, v := range fields[1:] {
			switch v {
			case "1":
				a[j] = true
			case "-1", "0":
			default:
				return nil, nil, fmt.Errorf("celeba: %s line %d: attribute %s is %q, want 1 or -1", path, line, names[j], v)
			}
		}
		m[fields[0]] = a
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("celeba: reading %s: %w", path, err)
	}
	return names, m, nil
}

// LoadFace loads one face photo as a 1×3×size×size dataset with CelebA's
// pipeline: an aligned CelebA-proportioned image (178×218 or a scaled copy)
// gets the standard centre crop (CelebACrop), any other image its largest
// centred square; then the antialiased resize. What `solve --image` does
// for a face model, so a user's own aligned face needs no preparation.
func LoadFace(path string, size int) (*Dataset, error) {
	if size < 1 {
		return nil, fmt.Errorf("face %s: output size %d, want ≥ 1", path, size)
	}
	f, _, err := userfile.Open(path, "image", MaxImageFileSize)
	if err != nil {
		return nil, err
	}
	cfg, _, err := image.DecodeConfig(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("image %s: cannot read its size as PNG or JPEG: %w", path, err)
	}
	if err := CheckImageSize(path, cfg.Width, cfg.Height, 0); err != nil {
		return nil, err
	}
	crop := 0
	if r := float64(cfg.Height) / float64(cfg.Width); math.Abs(r-218.0/178.0) < 0.02 {
		crop = CelebACrop(cfg.Width)
	}
	return loadPaths([]string{path}, FolderOptions{Size: size, Crop: crop})
}
