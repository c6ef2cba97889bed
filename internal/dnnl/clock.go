package dnnl

import "time"

var epoch = time.Now()

// nowSeconds is a monotonic clock in seconds.
func nowSeconds() float64 { return time.Since(epoch).Seconds() }
