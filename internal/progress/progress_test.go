package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step on every call.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time { t = t.Add(step); return t }
}

func TestRateAndETA(t *testing.T) {
	var buf bytes.Buffer
	// Every clock read advances 1 s: New reads once, Set reads once.
	b := New(&buf, "train", 100, WithUnit("step"), WithClock(fakeClock(time.Second)), WithTerminal(false), WithInterval(time.Nanosecond))
	b.Set(10) // 10 steps in 1 s: 10 step/s, 90 left: 9 s.
	line := strings.TrimSpace(buf.String())
	for _, want := range []string{"train", " 10%", "10/100", "10.00 step/s", "<00:09"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q misses %q", line, want)
		}
	}
}

func TestSlowRateShowsSecondsPerUnit(t *testing.T) {
	b := New(&bytes.Buffer{}, "solve", 4, WithUnit("img"), WithClock(fakeClock(4*time.Second)), WithTerminal(false))
	b.Set(1) // 1 image in 4 s
	if l := b.Line(); !strings.Contains(l, "s/img") {
		t.Errorf("line %q: want seconds per image", l)
	}
}

func TestThrottleAndFinish(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "x", 1000, WithClock(fakeClock(time.Millisecond)), WithTerminal(false), WithInterval(time.Hour))
	b.Status("loss %.3f", 0.5)
	for i := 1; i < 1000; i++ {
		b.Add(1)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 { // only the first draw
		t.Errorf("drew %d lines before finishing, want 1 (throttled)", n)
	}
	b.Add(1) // reaching the total always draws
	b.Finish()
	out := buf.String()
	if !strings.Contains(out, "1000/1000") || !strings.Contains(out, "loss 0.500") {
		t.Errorf("final output %q", out)
	}
}

// A resumed run's stored work must not count toward the rate: 900 of 1000
// units were stored, then 10 are done.
func TestSkipLeavesStoredWorkOutOfRate(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "exp", 1000, WithUnit("call"), WithClock(fakeClock(time.Second)), WithTerminal(false), WithInterval(time.Nanosecond))
	b.Skip(900)      // clock 2 s (the bar started at 1 s)
	b.Set(910)       // clock 3 s
	line := b.Line() // clock 4 s: 10 calls of work in 3 s, 90 left: 27 s
	for _, want := range []string{"910/1000", "3.33 call/s", "<00:27"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q misses %q", line, want)
		}
	}
}
