package data

import (
	"fmt"
	"strings"
)

// Config names a dataset the way a run configuration does; Load opens it.
type Config struct {
	// Kind is "mnist" (IDX files), "folder" (PNG/JPEG files) or "celeba"
	// (a CelebA root folder, see LoadCelebA).
	Kind string
	// Dir is the folder holding the MNIST files or the images.
	Dir string
	// Split is "train" or "test" for MNIST, "train", "val" or "test" for
	// CelebA; ignored for folders.
	Split string
	// Size is the output side: 28 or 32 for MNIST (32 pads 2 black pixels
	// on every side), any positive size for folders (e.g. 32 or 64).
	Size int
	// Crop is the center-crop side for folders (0: largest square) and
	// CelebA (0: CelebACrop); it must be 0 for MNIST.
	Crop int
	// Limit keeps at most this many images (the first ones); 0 keeps all.
	Limit int
}

// Kinds lists the dataset kinds Load opens (a config's data.dataset).
func Kinds() []string { return []string{"mnist", "folder", "celeba"} }

// Load opens the dataset cfg describes.
func Load(cfg Config) (*Dataset, error) {
	if cfg.Limit < 0 {
		return nil, fmt.Errorf("data: limit %d, want ≥ 0 (0 = all)", cfg.Limit)
	}
	switch cfg.Kind {
	case "mnist":
		if cfg.Size != 28 && cfg.Size != 32 {
			return nil, fmt.Errorf("data: MNIST size %d, want 28 or 32", cfg.Size)
		}
		if cfg.Crop != 0 {
			return nil, fmt.Errorf("data: MNIST crop %d, want 0 (MNIST is not cropped)", cfg.Crop)
		}
		ds, err := LoadMNIST(cfg.Dir, cfg.Split)
		if err != nil {
			return nil, err
		}
		if cfg.Limit > 0 {
			ds = ds.Head(cfg.Limit)
		}
		if cfg.Size == 28 {
			return ds, nil
		}
		return ds.Pad((cfg.Size - 28) / 2)
	case "folder":
		return LoadImageFolder(cfg.Dir, FolderOptions{Size: cfg.Size, Crop: cfg.Crop, Limit: cfg.Limit})
	case "celeba":
		ds, _, err := LoadCelebA(cfg.Dir, cfg.Split, cfg.Size, cfg.Crop, cfg.Limit)
		return ds, err
	}
	return nil, fmt.Errorf("data: kind %q, want one of %s", cfg.Kind, strings.Join(Kinds(), ", "))
}
