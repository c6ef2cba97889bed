package par

import (
	"fmt"
	"sync"
	"testing"
)

// TestItems: every item runs exactly once, for any number of workers and
// items (none included), and never on more goroutines than asked.
func TestItems(t *testing.T) {
	for _, c := range []struct{ n, workers int }{{0, 2}, {1, 4}, {7, 1}, {7, 3}, {100, 0}, {5, 16}} {
		t.Run(fmt.Sprintf("%d items, %d workers", c.n, c.workers), func(t *testing.T) {
			var mu sync.Mutex
			seen := make([]int, c.n)
			calls := 0
			Items(c.n, c.workers, func(next func() (int, bool)) {
				mu.Lock()
				calls++
				mu.Unlock()
				for i, ok := next(); ok; i, ok = next() {
					mu.Lock()
					seen[i]++
					mu.Unlock()
				}
			})
			for i, s := range seen {
				if s != 1 {
					t.Errorf("item %d ran %d times", i, s)
				}
			}
			if c.workers > 0 && calls > max(1, min(c.n, c.workers)) {
				t.Errorf("%d workers started, want at most %d", calls, max(1, min(c.n, c.workers)))
			}
		})
	}
}
