package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		path    string
		fill    func(io.Writer) error
		want    string // file content afterwards
		wantErr string // "" for success
	}{
		{"new file", path, func(w io.Writer) error { _, err := io.WriteString(w, "first"); return err }, "first", ""},
		{"replace", path, func(w io.Writer) error { _, err := io.WriteString(w, "second"); return err }, "second", ""},
		{"failed fill keeps the old file", path, func(w io.Writer) error { io.WriteString(w, "partial"); return boom }, "second", "boom"},
		{"large", path, func(w io.Writer) error { _, err := w.Write([]byte(strings.Repeat("x", 3<<20))); return err }, strings.Repeat("x", 3<<20), ""},
		{"missing folder", filepath.Join(dir, "nope", "a.txt"), func(io.Writer) error { return nil }, "", "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(tc.path, tc.fill)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.path) {
					t.Fatalf("error %v, want one naming %s and %q", err, tc.path, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				return
			}
			got, err := os.ReadFile(tc.path)
			if err != nil || string(got) != tc.want {
				t.Fatalf("content %.20q (%d bytes), %v; want %.20q (%d bytes)", got, len(got), err, tc.want, len(tc.want))
			}
			if st, _ := os.Stat(tc.path); st.Mode().Perm() != Mode {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), Mode)
			}
		})
	}
	// No temporary files are left behind, whatever happened.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "out.txt" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if err := WriteFile(path, []byte("third")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "third" {
		t.Errorf("WriteFile: %q", got)
	}
}

// TestCleanStale: the temporary files of killed writes are removed, the
// targets and other files are kept.
func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "checkpoints")
	os.Mkdir(sub, 0o755)
	files := map[string]bool{ // path → stays
		filepath.Join(dir, "log.jsonl"):                                true,
		filepath.Join(dir, ".log.jsonl.tmp-12345"):                     false,
		filepath.Join(sub, "step-00000004.safetensors"):                true,
		filepath.Join(sub, ".step-00000006.safetensors.tmp-987654321"): false,
		filepath.Join(dir, ".hidden"):                                  true,
	}
	for p := range files {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := CleanStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want the two temporary files", removed)
	}
	for p, stays := range files {
		if _, err := os.Stat(p); (err == nil) != stays {
			t.Errorf("%s: exists %v, want %v", p, err == nil, stays)
		}
	}
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, wantErr string
	}{
		{"new file", filepath.Join(dir, "a.png"), ""},
		{"existing file", file, ""},
		{"missing folder", filepath.Join(dir, "nope", "a.png"), "nope"},
		{"folder given", dir, "is a folder"},
		{"parent is a file", filepath.Join(file, "a.png"), "not a folder"},
		{"read-only folder", filepath.Join(ro, "a.png"), "takes no new file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "read-only folder" && os.Geteuid() == 0 {
				t.Skip("root writes to read-only folders")
			}
			err := CheckWritable(tc.path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckWritable(%s): %v", tc.path, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckWritable(%s) = %v, want an error containing %q", tc.path, err, tc.wantErr)
			}
			entries, _ := os.ReadDir(filepath.Dir(tc.path))
			for _, e := range entries {
				if IsTemp(e.Name()) {
					t.Fatalf("left %s behind", e.Name())
				}
			}
		})
	}
}
