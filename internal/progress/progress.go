// Package progress draws a one-line progress bar with rate and ETA for long
// work (training steps, sampling steps, images, experiment cells).
//
// On a terminal the bar redraws in place; elsewhere (CI logs, pipes) it
// prints a plain line at most every Interval so logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar is a progress bar over Total units. Its methods are safe for
// concurrent use. The zero value is not usable: call New.
type Bar struct {
	mu        sync.Mutex
	w         io.Writer
	label     string
	unit      string
	total     int
	done      int
	skipped   int // units counted done without work here (resumed, others')
	start     time.Time
	last      time.Time
	status    string
	tty       bool
	interval  time.Duration
	now       func() time.Time
	finished  bool
	drawnDone int
}

// Option configures a Bar.
type Option func(*Bar)

// WithUnit names the units counted ("step", "img"); the rate reads unit/s.
func WithUnit(u string) Option { return func(b *Bar) { b.unit = u } }

// WithInterval sets the minimum time between redraws (default 200 ms on a
// terminal, 10 s elsewhere).
func WithInterval(d time.Duration) Option { return func(b *Bar) { b.interval = d } }

// WithClock replaces time.Now (for tests).
func WithClock(now func() time.Time) Option { return func(b *Bar) { b.now = now } }

// WithTerminal forces in-place redrawing on or off.
func WithTerminal(on bool) Option { return func(b *Bar) { b.tty = on } }

// New starts a bar labelled label over total units, drawing to w (nil
// means standard error).
func New(w io.Writer, label string, total int, opts ...Option) *Bar {
	if w == nil {
		w = os.Stderr
	}
	b := &Bar{w: w, label: label, total: total, unit: "it", now: time.Now, tty: isTerminal(w)}
	for _, o := range opts {
		o(b)
	}
	if b.interval == 0 {
		b.interval = 10 * time.Second
		if b.tty {
			b.interval = 200 * time.Millisecond
		}
	}
	b.start = b.now()
	return b
}

// Add advances the bar by n units.
func (b *Bar) Add(n int) { b.Set(b.Done() + n) }

// Done returns the units done so far.
func (b *Bar) Done() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// Set sets the units done and redraws if the interval has passed.
func (b *Bar) Set(done int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setLocked(done)
}

// setLocked sets the units done and redraws if the interval has passed
// (or the total is reached); b.mu is held.
func (b *Bar) setLocked(done int) {
	b.done = done
	if now := b.now(); now.Sub(b.last) >= b.interval || done >= b.total {
		b.last = now
		b.draw(now)
	}
}

// Skip sets the units done, like Set, but the units it adds were done
// before this run (a resumed cell's stored batches) or by another process,
// so the rate and ETA, which measure this run's work, leave them out. A
// resumed run would otherwise start at a rate of the stored work over a
// few seconds and an ETA that grows for hours.
func (b *Bar) Skip(done int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if done > b.done {
		b.skipped += done - b.done
	}
	b.setLocked(done)
}

// SetTotal changes the number of units (when the work learns it late).
func (b *Bar) SetTotal(total int) {
	b.mu.Lock()
	b.total = total
	b.mu.Unlock()
}

// Status sets a short text shown after the counters (e.g. "loss 0.031").
func (b *Bar) Status(format string, args ...any) {
	b.mu.Lock()
	b.status = fmt.Sprintf(format, args...)
	b.mu.Unlock()
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if !b.tty && b.drawnDone == b.done && !b.last.IsZero() {
		return // the last plain line already shows the final state
	}
	b.draw(b.now())
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

// Line renders the bar's text as of now (without redrawing).
func (b *Bar) Line() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.line(b.now())
}

func (b *Bar) draw(now time.Time) {
	b.drawnDone = b.done
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", b.line(now))
		return
	}
	fmt.Fprintln(b.w, b.line(now))
}

func (b *Bar) line(now time.Time) string {
	el := now.Sub(b.start)
	frac := 0.0
	if b.total > 0 {
		frac = float64(b.done) / float64(b.total)
		if frac > 1 {
			frac = 1
		}
	}
	const width = 24
	fill := int(frac * width)
	bar := strings.Repeat("█", fill) + strings.Repeat("·", width-fill)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(b.done-b.skipped) / s
	}
	eta := "?"
	if rate > 0 && b.total > 0 {
		eta = fmtDur(time.Duration(float64(b.total-b.done) / rate * float64(time.Second)))
	}
	var rs string
	switch {
	case rate >= 1 || rate == 0:
		rs = fmt.Sprintf("%.2f %s/s", rate, b.unit)
	default:
		rs = fmt.Sprintf("%.2f s/%s", 1/rate, b.unit)
	}
	s := fmt.Sprintf("%s %3.0f%% |%s| %d/%d [%s<%s, %s]", b.label, 100*frac, bar, b.done, b.total, fmtDur(el), eta, rs)
	if b.status != "" {
		s += " " + b.status
	}
	return s
}

func fmtDur(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%02d:%02d", m, s)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
