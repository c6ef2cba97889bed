package data

import (
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realCelebA is the project's CelebA copy (see its PROVENANCE.txt).
const realCelebA = "../../shared/data/celeba"

// TestCelebARealSplits: on the project's CelebA copy the official partition
// gives the documented split sizes, and train, val and test share no image
// and no identity (CelebA's val and test identities never occur in train).
func TestCelebARealSplits(t *testing.T) {
	if _, err := os.Stat(filepath.Join(realCelebA, CelebAPartitionFile)); err != nil {
		t.Skipf("no CelebA copy at %s", realCelebA)
	}
	want := map[string]int{"train": 37633, "val": 2720, "test": 2571}
	files := map[string]string{}
	ids := map[int]string{}
	for _, split := range []string{"train", "val", "test"} {
		lab, err := ReadCelebASplit(realCelebA, split, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(lab.Files) != want[split] {
			t.Errorf("%s: %d images, want %d", split, len(lab.Files), want[split])
		}
		if len(lab.Identity) != len(lab.Files) || len(lab.Attrs) != len(lab.Files) || len(lab.AttrNames) != 40 {
			t.Fatalf("%s: %d identities, %d attribute rows, %d attribute names for %d images", split, len(lab.Identity), len(lab.Attrs), len(lab.AttrNames), len(lab.Files))
		}
		for _, f := range lab.Files {
			if other, ok := files[f]; ok {
				t.Fatalf("image %s in both %s and %s", f, other, split)
			}
			files[f] = split
		}
		seen := map[int]bool{}
		for _, id := range lab.Identity {
			if seen[id] {
				continue
			}
			seen[id] = true
			if other, ok := ids[id]; ok {
				t.Fatalf("identity %d in both %s and %s", id, other, split)
			}
		}
		for id := range seen {
			ids[id] = split
		}
	}
}

// fakeCelebA writes a CelebA root with n images (w×h PNG named like
// CelebA's, image i filled with grey level 10·i), images i ≡ 1 mod 3 in
// val, ≡ 2 in test, identity i/2 and attribute A set on even images.
func fakeCelebA(t *testing.T, n, w, h int, folder string) string {
	t.Helper()
	root := t.TempDir()
	imgs := filepath.Join(root, folder)
	if err := os.Mkdir(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	var part, id, attr strings.Builder
	fmt.Fprintf(&attr, "%d\nA B\n", n)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%06d.png", i)
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		for p := 0; p < w*h; p++ {
			m.Set(p%w, p/w, color.RGBA{uint8(10 * i), uint8(10 * i), uint8(10 * i), 255})
		}
		writeImage(t, filepath.Join(imgs, name), m)
		fmt.Fprintf(&part, "%s %d\n", name, i%3)
		fmt.Fprintf(&id, "%s %d\n", name, i/2)
		a := "-1"
		if i%2 == 0 {
			a = " 1"
		}
		fmt.Fprintf(&attr, "%s %s -1\n", name, a)
	}
	for f, s := range map[string]string{CelebAPartitionFile: part.String(), CelebAIdentityFile: id.String(), CelebAAttrFile: attr.String()} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestLoadCelebA: the partition selects the images (in name order), labels
// follow them, the crop defaults to the standard 140-px crop at the image
// scale, and data.Load reads the same dataset.
func TestLoadCelebA(t *testing.T) {
	root := fakeCelebA(t, 9, 89, 109, "img_align_celeba_89x109")
	ds, lab, err := LoadCelebA(root, "val", 8, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lab.Files, ","); got != "000001.png,000004.png,000007.png" {
		t.Errorf("val files %s, want 000001, 000004, 000007", got)
	}
	if fmt.Sprint(lab.Identity) != "[0 2 3]" || fmt.Sprint(lab.AttrNames) != "[A B]" || fmt.Sprint(lab.Attrs) != "[[false false] [true false] [false false]]" {
		t.Errorf("labels: identity %v, names %v, attrs %v", lab.Identity, lab.AttrNames, lab.Attrs)
	}
	if ds.Len() != 3 {
		t.Fatalf("%d images, want 3", ds.Len())
	}
	if c, h, w := ds.Dims(); c != 3 || h != 8 || w != 8 {
		t.Fatalf("images %d×%d×%d, want 3×8×8", c, h, w)
	}
	px := ds.Pixels()
	for k, level := range []uint8{10, 40, 70} { // flat images stay flat
		if v := px[k*3*64+100]; v != level {
			t.Errorf("image %d pixel %d, want %d", k, v, level)
		}
	}
	if CelebACrop(89) != 70 || CelebACrop(178) != 140 {
		t.Errorf("CelebACrop(89) %d, CelebACrop(178) %d, want 70 and 140", CelebACrop(89), CelebACrop(178))
	}
	via, err := Load(Config{Kind: "celeba", Dir: root, Split: "val", Size: 8})
	if err != nil || string(via.Pixels()) != string(px) {
		t.Errorf("data.Load celeba: %v, or other pixels", err)
	}
	if lim, _, err := LoadCelebA(root, "train", 8, 0, 2); err != nil || lim.Len() != 2 {
		t.Errorf("limit 2: %v", err)
	}
}

// TestCelebAErrors: bad input names what is wrong.
func TestCelebAErrors(t *testing.T) {
	root := fakeCelebA(t, 4, 20, 24, "img_align_celeba")
	stray := fakeCelebA(t, 3, 20, 24, "img_align_celeba")
	writeImage(t, filepath.Join(stray, "img_align_celeba", "999999.png"), image.NewRGBA(image.Rect(0, 0, 20, 24)))
	badPart := fakeCelebA(t, 3, 20, 24, "img_align_celeba")
	os.WriteFile(filepath.Join(badPart, CelebAPartitionFile), []byte("000001.png 0\n000002.png x\n"), 0o644)
	badAttr := fakeCelebA(t, 3, 20, 24, "img_align_celeba")
	os.WriteFile(filepath.Join(badAttr, CelebAAttrFile), []byte("3\nA B\n000001.png 1 2\n"), 0o644)
	noPart := fakeCelebA(t, 3, 20, 24, "img_align_celeba")
	os.Remove(filepath.Join(noPart, CelebAPartitionFile))
	cases := []struct {
		name, root, split string
		size, crop        int
		want              string
	}{
		{"split", root, "validation", 8, 0, `celeba split "validation": want one of train, val, test`},
		{"no images", t.TempDir(), "train", 8, 0, "no img_align_celeba folder"},
		{"stray image", stray, "train", 8, 0, "999999.png is not in "},
		{"partition value", badPart, "train", 8, 0, `line 2: "x" is not an integer`},
		{"attribute value", badAttr, "train", 8, 0, `attribute B is "2", want 1 or -1`},
		{"no partition", noPart, "train", 8, 0, "list_eval_partition.txt"},
		{"crop too big", root, "train", 8, 30, "crop 30×30 is larger than the 20×24 image"},
		{"size", root, "train", 0, 0, "output size 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := LoadCelebA(c.root, c.split, c.size, c.crop, 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestLoadFace: an aligned CelebA photo loads exactly as the CelebA loader
// loads it (the standard crop, the same resize); another shape gets its
// largest centred square.
func TestLoadFace(t *testing.T) {
	root := fakeCelebA(t, 3, 89, 109, "img_align_celeba")
	ds, lab, err := LoadCelebA(root, "train", 16, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	face, err := LoadFace(filepath.Join(root, "img_align_celeba", lab.Files[0]), 16)
	if err != nil {
		t.Fatal(err)
	}
	if string(face.Pixels()) != string(ds.Pixels()[:3*16*16]) {
		t.Error("LoadFace differs from the CelebA pipeline on an aligned photo")
	}
	wide := filepath.Join(t.TempDir(), "wide.png")
	writeImage(t, wide, coded(50, 30))
	sq, err := LoadFace(wide, 30)
	if err != nil {
		t.Fatal(err)
	}
	// The 30×30 centre square starts at x = 10: pixel (0, 0) is coded (100, 0, 200).
	if p := sq.Pixels(); p[0] != 100 || p[30*30] != 0 || p[2*30*30] != 200 {
		t.Errorf("largest square of a 50×30 image: first pixel %d,%d,%d, want 100,0,200", p[0], p[900], p[1800])
	}
	if _, err := LoadFace("/dev/zero", 16); err == nil || !strings.Contains(err.Error(), "want a regular file") {
		t.Errorf("device: %v", err)
	}
}
