// threads.cpp: libtorch's intra-op thread count for the torch engine (build
// tag torch: cgo compiles this file only when the package builds, which needs
// the tag). at::set_num_threads stores the count libtorch gives each new
// thread and sets OpenMP's count of the calling OS thread, which is why the
// engine calls it on the locked OS thread of every call.
#include <ATen/Parallel.h>

extern "C" void diffinv_set_num_threads(int n) { at::set_num_threads(n); }

extern "C" int diffinv_get_num_threads() { return at::get_num_threads(); }
