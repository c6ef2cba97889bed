package dirlock

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as a lock holder: with DIRLOCK_HOLD
// set it locks that folder and sleeps until killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DIRLOCK_HOLD"); dir != "" {
		if _, err := Acquire(dir, "holder"); err != nil {
			os.Exit(3)
		}
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestAcquire: a second holder is refused (ErrBusy, naming the first
// holder's PID) until the first releases, in one process and across
// processes; a killed holder's lock is free again.
func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "training")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "training")
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "training in "+dir) || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("second Acquire: %v, want ErrBusy naming the holder", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir, "training")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()

	// Another process (this test binary, see TestMain) holds it, then
	// dies by SIGKILL.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DIRLOCK_HOLD="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := Acquire(dir, "experiment run")
		if errors.Is(err, ErrBusy) {
			break
		}
		if err == nil {
			l.Release()
		}
		if time.Now().After(deadline) {
			t.Fatal("the other process never held the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(os.Kill)
	cmd.Wait()
	l3, err := Acquire(dir, "experiment run")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l3.Release()
}

// TestHolder: a free folder (with or without a lock file) has no holder; a
// held one names it, and probing leaves it held by its holder alone.
func TestHolder(t *testing.T) {
	dir := t.TempDir()
	if h, held, err := Holder(dir); err != nil || held {
		t.Fatalf("no lock file: %q, %v, %v", h, held, err)
	}
	l, err := Acquire(dir, "experiment run")
	if err != nil {
		t.Fatal(err)
	}
	h, held, err := Holder(dir)
	if err != nil || !held || !strings.HasPrefix(h, "pid ") {
		t.Fatalf("held: %q, %v, %v; want the holder's pid", h, held, err)
	}
	if _, err := Acquire(dir, "experiment run"); !errors.Is(err, ErrBusy) {
		t.Fatalf("after probing, a second Acquire: %v, want ErrBusy", err)
	}
	l.Release()
	if h, held, err := Holder(dir); err != nil || held {
		t.Fatalf("released: %q, %v, %v", h, held, err)
	}
	if l, err := Acquire(dir, "experiment run"); err != nil {
		t.Fatalf("after probing a free folder, Acquire: %v", err)
	} else {
		l.Release()
	}
}
