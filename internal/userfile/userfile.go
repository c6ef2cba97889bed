// Package userfile opens files whose paths users pass (checkpoints,
// experiment and preset files, images) defensively: only regular files are
// read, and only up to a size cap, so that a path such as /dev/zero, a
// named pipe or a directory gives a clear error naming the path instead of
// a hang, an endless read or an out-of-memory crash.
package userfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// kind describes a non-regular file mode for an error message.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeIrregular != 0:
		return "an irregular file"
	}
	return fmt.Sprintf("not a regular file (mode %v)", m)
}

// Check reports whether path names a regular file (symbolic links are
// followed) of at most maxSize bytes (maxSize ≤ 0: no cap), returning its
// size. what names the file's role in the error ("checkpoint", "image").
// It never opens the file, so a named pipe cannot block it.
func Check(path, what string, maxSize int64) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return checkInfo(path, what, st, maxSize)
}

func checkInfo(path, what string, st fs.FileInfo, maxSize int64) (int64, error) {
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s %s is %s, want a regular file", what, path, kind(st.Mode()))
	}
	if maxSize > 0 && st.Size() > maxSize {
		return 0, fmt.Errorf("%s %s is %d bytes, more than the %d bytes allowed", what, path, st.Size(), maxSize)
	}
	return st.Size(), nil
}

// Open opens path for reading after Check, and checks the opened file
// again (it may have been replaced in between). The caller closes it.
func Open(path, what string, maxSize int64) (*os.File, int64, error) {
	if _, err := Check(path, what, maxSize); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s %s: %w", what, path, err)
	}
	size, err := checkInfo(path, what, st, maxSize)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

// ReadFile reads the whole regular file at path, refusing one larger than
// maxSize bytes (also when it grows while being read).
func ReadFile(path, what string, maxSize int64) ([]byte, error) {
	f, _, err := Open(path, what, maxSize)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := io.Reader(f)
	if maxSize > 0 {
		r = io.LimitReader(f, maxSize+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if maxSize > 0 && int64(len(b)) > maxSize {
		return nil, fmt.Errorf("%s %s grew beyond the %d bytes allowed while being read", what, path, maxSize)
	}
	return b, nil
}
