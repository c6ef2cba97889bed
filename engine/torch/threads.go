//go:build torch

package torch

/*
#cgo CXXFLAGS: -std=c++17
#cgo LDFLAGS: -ltorch_cpu -lc10
void diffinv_set_num_threads(int n);
int diffinv_get_num_threads(void);
*/
import "C"

// setNumThreads sets libtorch's intra-op thread count (at::set_num_threads)
// for the calling OS thread and the threads libtorch starts later.
func setNumThreads(n int) { C.diffinv_set_num_threads(C.int(n)) }

// numThreads returns at::get_num_threads() as seen from the calling OS thread.
func numThreads() int { return int(C.diffinv_get_num_threads()) }
