package data

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitNames(t *testing.T) {
	want := []string{"mnist-train", "mnist-test", "celeba-train", "celeba-val", "celeba-test"}
	if got := SplitNames(); !slices.Equal(got, want) {
		t.Fatalf("SplitNames() = %v, want %v", got, want)
	}
	for _, name := range want {
		kind, split, err := ParseSplitName(name)
		if err != nil || SplitName(kind, split) != name || !slices.Contains(Splits(kind), split) {
			t.Errorf("ParseSplitName(%q) = %q, %q, %v", name, kind, split, err)
		}
	}
	for _, bad := range []string{"mnist-val", "celeba", "folder-train", "mnist_test", "", "celeba-validation"} {
		if _, _, err := ParseSplitName(bad); err == nil || !strings.Contains(err.Error(), "mnist-train, mnist-test, celeba-train, celeba-val, celeba-test") {
			t.Errorf("ParseSplitName(%q): err %v, want one listing every name", bad, err)
		}
	}
	// The loaders' split words are the registry's.
	for _, s := range Splits("celeba") {
		if _, ok := celebASplits[s]; !ok {
			t.Errorf("celeba split %q has no partition code", s)
		}
	}
	if len(celebASplits) != len(Splits("celeba")) {
		t.Errorf("celebASplits %v, Splits %v", celebASplits, Splits("celeba"))
	}
	for _, s := range Splits("mnist") {
		if _, _, ok := mnistFiles(s); !ok {
			t.Errorf("mnist split %q has no files", s)
		}
	}
	if _, err := LoadMNIST(t.TempDir(), "val"); err == nil || !strings.Contains(err.Error(), `mnist split "val": want one of train, test`) {
		t.Errorf("LoadMNIST val: %v", err)
	}
}
