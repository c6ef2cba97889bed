// Package dirlock gives one process at a time a folder to write in: a
// training run's output folder, an experiment's results folder. Without it
// two trainers on one folder interleave their logs and checkpoints, and
// several experiment runs redo the same cells.
//
// The lock is an flock(2) on the file .diffinv.lock in the folder, which
// the kernel releases when its holder dies (kill -9 included), so a killed
// run never leaves a stale lock behind. The file also records the holder's
// PID and command for the error message. flock is advisory and, on some
// network file systems, local to one machine: sharded runs over NFS need
// their own claims (per cell).
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the lock file inside a locked folder.
const FileName = ".diffinv.lock"

// Lock is a held folder lock.
type Lock struct {
	f *os.File
}

// ErrBusy is wrapped by Acquire's error when another process holds the
// folder.
var ErrBusy = errors.New("folder in use by another diffinv process")

// Acquire locks dir (which must exist) for what ("training", "experiment
// run") or returns an error wrapping ErrBusy that names the holder.
func Acquire(dir, what string) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	ok, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if !ok {
		f.Close()
		return nil, fmt.Errorf("%s in %s: %w (%s); wait for it to finish or choose another folder", what, dir, ErrBusy, holderOf(path))
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d (%s)\n", os.Getpid(), strings.Join(os.Args, " "))
	}
	return &Lock{f: f}, nil
}

// Holder reports whether a process holds dir's lock, and what its lock
// file says of it ("pid N (command)"), without keeping the lock: for a
// status report on a run under way. It takes the lock for an instant to
// find out, so a run starting in that instant is refused as busy.
func Holder(dir string) (holder string, held bool, err error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("lock %s: %w", dir, err)
	}
	defer f.Close()
	ok, err := tryLock(f)
	if err != nil {
		return "", false, fmt.Errorf("lock %s: %w", dir, err)
	}
	if ok {
		return "", false, unlock(f)
	}
	return holderOf(path), true, nil
}

// holderOf is what the lock file at path says of its holder.
func holderOf(path string) string {
	b, _ := os.ReadFile(path)
	if h := strings.TrimSpace(string(b)); h != "" {
		return h
	}
	return "an unknown process"
}

// Release unlocks the folder; the lock file stays (removing it would race
// with a process about to lock it).
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
