package userfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestOpenRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "f.bin")
	if err := os.WriteFile(regular, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, tc := range []struct {
		name, path string
		max        int64
		want       string // "" for success
	}{
		{"regular", regular, 0, ""},
		{"regular at cap", regular, 10, ""},
		{"over cap", regular, 9, "10 bytes, more than the 9 bytes allowed"},
		{"dev zero", "/dev/zero", 0, "/dev/zero is a character device, want a regular file"},
		{"directory", dir, 0, "is a directory, want a regular file"},
		{"named pipe", fifo, 0, "is a named pipe, want a regular file"},
		{"missing", filepath.Join(dir, "nope"), 0, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ReadFile(tc.path, "checkpoint", tc.max)
			if tc.want == "" {
				if err != nil || string(b) != "0123456789" {
					t.Fatalf("ReadFile = %q, %v; want the content", b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "checkpoint") {
				t.Fatalf("ReadFile(%s) error %v, want one naming the checkpoint and containing %q", tc.path, err, tc.want)
			}
		})
	}
}
