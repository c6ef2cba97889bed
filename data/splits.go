package data

import (
	"fmt"
	"slices"
	"strings"
)

// The split vocabulary. A dataset split has one spelling per place:
//
//   - the split word ("train", "val", "test") in the config key data.split,
//     beside data.dataset;
//   - NAME-SPLIT ("mnist-test", "celeba-val") wherever one name picks both
//     the dataset and its split: solve's and measure's --dataset and an
//     experiment file's dataset.name.
//
// Splits and SplitNames list the valid values; every command and error
// message takes them from here.

// Splits returns the split words of a dataset kind (data.dataset), in
// canonical order: "train", "test" for mnist; "train", "val", "test" for
// celeba (CelebA's official partition); nil for kinds without splits
// (folder) and unknown kinds.
func Splits(kind string) []string {
	switch kind {
	case "mnist":
		return []string{"train", "test"}
	case "celeba":
		return []string{"train", "val", "test"}
	}
	return nil
}

// SplitNames returns every NAME-SPLIT spelling: mnist-train, mnist-test,
// celeba-train, celeba-val, celeba-test.
func SplitNames() []string {
	var out []string
	for _, k := range Kinds() {
		for _, s := range Splits(k) {
			out = append(out, k+"-"+s)
		}
	}
	return out
}

// SplitName is the NAME-SPLIT spelling of a dataset kind and split word.
func SplitName(kind, split string) string { return kind + "-" + split }

// ParseSplitName splits a NAME-SPLIT spelling ("celeba-val") into its
// dataset kind and split word; anything not in SplitNames is an error that
// lists them.
func ParseSplitName(name string) (kind, split string, err error) {
	if slices.Contains(SplitNames(), name) {
		i := strings.LastIndexByte(name, '-')
		return name[:i], name[i+1:], nil
	}
	return "", "", fmt.Errorf("dataset %q: want one of %s", name, strings.Join(SplitNames(), ", "))
}

// splitError is the error of an unknown split word of kind.
func splitError(kind, split string) error {
	return fmt.Errorf("%s split %q: want one of %s", kind, split, strings.Join(Splits(kind), ", "))
}
