// Package atomicfile writes files so that a reader sees either the old
// file or the whole new one, never a partial one, even if the writer is
// killed half-way: the data go to a temporary file in the same folder,
// which is fsynced, given mode 0644 and renamed over the target; the folder
// is then synced so that the rename survives a crash where the platform
// allows.
//
// Checkpoints, logs, PNG grids, solver metrics and experiment results all
// go through it, so that interrupted runs lose nothing and every output is
// an ordinary, world-readable file (os.CreateTemp alone would leave 0600).
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Mode is the permission every written file gets.
const Mode os.FileMode = 0o644

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write calls fill with a buffered writer on a temporary file next to path
// and, when fill succeeds, puts the file in place atomically. On any error
// path is left as it was and the temporary file is removed; the error names
// path.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = fill(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	if err = f.Chmod(Mode); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable too; not every platform can sync a folder.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// IsTemp reports whether name (a base name) is one of Write's temporary
// files: "." + target + ".tmp-" + random digits.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// CleanStale removes the temporary files that writers killed half-way left
// under dir (recursively) and returns their paths. Call it only while no
// other process writes there (holding the folder's lock): a live writer's
// temporary file looks the same.
func CleanStale(dir string) ([]string, error) {
	var removed []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // an unreadable subfolder holds nothing we wrote
		}
		if d.Type().IsRegular() && IsTemp(d.Name()) {
			if err := os.Remove(p); err != nil {
				return err
			}
			removed = append(removed, p)
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("clean temporary files in %s: %w", dir, err)
	}
	return removed, nil
}

// CheckWritable reports, before any long work, whether Write could put a
// file at path later: its folder must exist and take a new file, and path
// must not be a folder. Commands call it on their output paths first, so
// that a typo in --out fails at once instead of after minutes of sampling.
// It leaves nothing behind.
func CheckWritable(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a folder, expected a file path", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("folder %s of %s: %w", dir, path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s is not a folder", path, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("folder %s of %s takes no new file: %w", dir, path, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
