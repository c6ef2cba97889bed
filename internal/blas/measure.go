package blas

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// MeasureSgemm returns the single-precision GEMM throughput in GFLOP/s of
// n×n×n products run for about d, one product per goroutine on `parallel`
// goroutines at once (each OpenBLAS call single-threaded, as diffinv's ops
// call it): the peak the conv throughput (nn.ConvStats) is compared with.
// parallel ≤ 0 means GOMAXPROCS.
func MeasureSgemm(n, parallel int, d time.Duration) (float64, error) {
	if n < 1 || d <= 0 {
		return 0, fmt.Errorf("blas.MeasureSgemm: n %d, duration %v: want n ≥ 1 and a positive duration", n, d)
	}
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	a := make([]float32, n*n)
	for i := range a {
		a[i] = float32(i%13) - 6
	}
	// warm up (and load the library)
	c := make([]float32, n*n)
	Sgemm(false, false, n, n, n, 1, a, n, a, n, 0, c, n)
	var wg sync.WaitGroup
	counts := make([]int, parallel)
	start := time.Now()
	for p := 0; p < parallel; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := make([]float32, n*n)
			for time.Since(start) < d || counts[p] == 0 {
				Sgemm(false, false, n, n, n, 1, a, n, a, n, 0, c, n)
				counts[p]++
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	total := 0
	for _, k := range counts {
		total += k
	}
	return 2 * float64(n) * float64(n) * float64(n) * float64(total) / el / 1e9, nil
}
