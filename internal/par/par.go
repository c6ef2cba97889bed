// Package par runs independent items side by side on the cores, each
// worker with its own work space, so that a result does not depend on how
// many workers there were (the inverse-problem operators and baselines
// solve a batch's images this way).
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Items runs work on min(n, workers) goroutines (workers ≤ 0: GOMAXPROCS)
// that share the items 0..n−1: each calls next for its next item until it
// reports none. With one worker, work runs in the caller's goroutine.
func Items(n, workers int, work func(next func() (int, bool))) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(n, workers)
	if workers <= 1 {
		i := 0
		work(func() (int, bool) { i++; return i - 1, i <= n })
		return
	}
	var counter atomic.Int64
	next := func() (int, bool) {
		i := int(counter.Add(1)) - 1
		return i, i < n
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(next)
		}()
	}
	wg.Wait()
}
