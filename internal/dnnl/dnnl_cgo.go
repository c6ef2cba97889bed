//go:build cgo && !nodnnl

package dnnl

/*
#cgo LDFLAGS: -ldl
#cgo CFLAGS: -O2
#include <stdio.h>
#include "dnnl_impl.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// lib is the loaded library; written once, under once.
var lib struct {
	once     sync.Once
	ok       bool
	emulated bool
	units    string
	why      string
}

// DisableEnv names the variable that, set to 1, keeps oneDNN unloaded (the
// float32 path everywhere), e.g. to compare or to work around a fault.
const DisableEnv = "DIFFINV_NO_DNNL"

// avx512Core reports the AVX-512 subsets oneDNN's avx512_core level needs,
// on which it emulates bf16 where the CPU has no bf16 instructions.
func avx512Core() bool {
	x := cpu.X86
	return x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512DQ
}

func load() {
	lib.once.Do(func() {
		native := cpu.X86.HasAVX512BF16 || cpu.X86.HasAMXBF16
		switch {
		case os.Getenv(DisableEnv) == "1":
			lib.why = DisableEnv + "=1"
			return
		case !native && !avx512Core():
			lib.why = "the CPU has neither AMX-BF16 nor AVX512-BF16, nor the AVX-512 on which oneDNN emulates bf16"
			return
		}
		if msg := C.dn_load(); msg != nil {
			lib.why = "oneDNN (libdnnl.so.2, Debian libdnnl2) did not load: " + C.GoString(msg)
			return
		}
		isa := int(C.dn_isa())
		var ver [32]C.char
		C.dn_version(&ver[0], C.int(len(ver)))
		if !native || isa < int(C.dnnl_cpu_isa_avx512_core_bf16) {
			// oneDNN's avx512_core kernels round to bf16 and multiply in
			// float32 instructions: the numbers of the bf16 units up to the
			// order of the float32 sums, at float32-path speed or below.
			if isa < int(C.dnnl_cpu_isa_avx512_core) {
				lib.why = fmt.Sprintf("oneDNN's effective ISA %#x lacks bf16 and avx512_core (DNNL_MAX_CPU_ISA?)", isa)
				return
			}
			lib.ok, lib.emulated, lib.units = true, true, "emulated on AVX-512"
			lib.why = fmt.Sprintf("oneDNN %s bf16 emulated on AVX-512 (the CPU has no bf16 units): convolutions (jit_bf16 avx512_core kernels) and matmuls (gemm jit) round to bf16 and accumulate in float32 as the bf16 units do, slower than the float32 path; one thread per call, the batch split over %d goroutines",
				C.GoString(&ver[0]), runtime.GOMAXPROCS(0))
			return
		}
		lib.ok = true
		units := "AVX512-BF16"
		if cpu.X86.HasAMXBF16 && isa >= int(C.dnnl_cpu_isa_avx512_core_amx) {
			units = "AMX-BF16"
		}
		lib.units = units
		lib.why = fmt.Sprintf("oneDNN %s bf16 convolutions (brgconv/jit avx512_core_amx_bf16 kernels) and matmuls for attention and linear layers (brg avx512_core_amx_bf16) on %s, one thread per call, the batch split over %d goroutines",
			C.GoString(&ver[0]), units, runtime.GOMAXPROCS(0))
		if units != "AMX-BF16" {
			lib.why = strings.ReplaceAll(lib.why, "avx512_core_amx_bf16", "avx512_core_bf16")
		}
	})
}

// Available reports whether bf16 convolutions can run here, and why or why
// not: on the CPU's bf16 units (Native) or emulated on AVX-512.
func Available() (bool, string) {
	load()
	return lib.ok, lib.why
}

// Units names what runs bf16 here: "AMX-BF16", "AVX512-BF16", "emulated on
// AVX-512", or "" where it cannot run.
func Units() string {
	load()
	return lib.units
}

// Native reports whether bf16 runs on the CPU's bf16 units (AMX-BF16 or
// AVX512-BF16), where it is faster than float32; false where it is
// emulated (Available but slower than the float32 path) or unavailable.
func Native() bool {
	load()
	return lib.ok && !lib.emulated
}

// Pass names one of a convolution's three passes.
type Pass int

const (
	Forward         Pass = iota // y = conv(x, w) + b
	BackwardData                // dx from (w, dy)
	BackwardWeights             // dw from (x, dy)
)

func (p Pass) String() string {
	return [...]string{"forward", "backward-data", "backward-weights"}[p]
}

// Shape is a convolution's geometry: N images of C×H×W, O filters of
// C×KH×KW, stride and zero padding on every side (PyTorch's nn.Conv2d).
type Shape struct {
	N, C, H, W, O, KH, KW, Stride, Pad int
	Bias                               bool
	// NHWC: activations (x, y, dy, dx) are N×H×W×C float32 at the
	// interface instead of NCHW; then no transposition happens at all.
	NHWC bool
}

// Out returns the output's height and width.
func (s Shape) Out() (oh, ow int) {
	return (s.H+2*s.Pad-s.KH)/s.Stride + 1, (s.W+2*s.Pad-s.KW)/s.Stride + 1
}

// Conv is one bf16 convolution of a fixed shape on oneDNN: float32 NCHW
// (or, with Shape.NHWC, NHWC) input, OIHW weights and output at its
// interface; inside, the input and the output gradient are converted to
// bf16 NHWC and the weights to the kernel's blocked bf16 layout, and every
// product accumulates in float32. In NHWC the float32 output and input
// gradient are written by the kernels in place (no reorder).
// The forward pass keeps its bf16 input for the backward-weights pass. A Conv
// must not be used from two goroutines at once.
type Conv struct {
	s  Shape
	cv *C.dn_conv
}

// NewConv builds the forward pass of a convolution (the backward passes are
// built on first use) to run on threads OpenMP threads per call.
func NewConv(s Shape, threads int) (*Conv, error) {
	if ok, why := Available(); !ok {
		return nil, fmt.Errorf("dnnl: bf16 convolution unavailable: %s", why)
	}
	oh, ow := s.Out()
	if s.N < 1 || s.C < 1 || s.O < 1 || s.KH < 1 || s.KW < 1 || s.Stride < 1 || s.Pad < 0 || oh < 1 || ow < 1 {
		return nil, fmt.Errorf("dnnl: bad convolution shape %+v", s)
	}
	var cerr *C.char
	bias, nhwc := 0, 0
	if s.Bias {
		bias = 1
	}
	if s.NHWC {
		nhwc = 1
	}
	cv := C.dn_conv_new(C.int(s.N), C.int(s.C), C.int(s.H), C.int(s.W), C.int(s.O), C.int(s.KH), C.int(s.KW), C.int(s.Stride), C.int(s.Pad), C.int(bias), C.int(max(threads, 1)), C.int(nhwc), &cerr)
	if cv == nil {
		msg := C.GoString(cerr)
		C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("dnnl: convolution %+v: %s", s, msg)
	}
	c := &Conv{s: s, cv: cv}
	runtime.SetFinalizer(c, func(c *Conv) { C.dn_conv_free(c.cv) })
	return c, nil
}

// Shape returns the convolution's geometry.
func (c *Conv) Shape() Shape { return c.s }

// Impl names the oneDNN kernel of a pass ("" before the pass is built),
// e.g. brgconv:avx512_core_amx_bf16.
func (c *Conv) Impl(p Pass) string {
	s := C.GoString(C.dn_conv_impl(c.cv, C.int(p)))
	runtime.KeepAlive(c)
	return s
}

func (c *Conv) prepare(p Pass) error {
	var msg *C.char
	switch p {
	case BackwardData:
		msg = C.dn_init_bwd_d(c.cv)
	case BackwardWeights:
		msg = C.dn_init_bwd_w(c.cv)
	}
	if msg != nil {
		return fmt.Errorf("dnnl: convolution %+v: %s", c.s, C.GoString(msg))
	}
	return nil
}

// arenas are per-slot scratch areas; a caller holds slot i's lock while it
// runs a pass with it, so concurrent graphs never share one. Each slot also
// holds the bf16 output gradient of the backward passes (dy): one per slot
// rather than one per convolution, which would keep a bf16 copy of every
// layer's output gradient alive for the graph's life. dyOwner's pass dyNext
// may reuse it (the other backward pass of that convolution converted it,
// and nothing has run in the slot since).
var arenas [64]struct {
	mu      sync.Mutex
	buf     unsafe.Pointer
	n       uintptr
	dy      unsafe.Pointer
	dyN     uintptr
	dyOwner *Conv
	dyNext  Pass
}

func arena(slot int, n uintptr) unsafe.Pointer {
	a := &arenas[slot%len(arenas)]
	if a.n < n {
		if a.buf != nil {
			C.free(a.buf)
		}
		a.buf = C.aligned_alloc(64, C.size_t((n+63)&^63))
		a.n = n
	}
	return a.buf
}

func check(name string, got, want int) error {
	if got < want {
		return fmt.Errorf("dnnl: %s has %d elements, want %d", name, got, want)
	}
	return nil
}

func cptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

// run executes pass p in arena slot slot. f gets the slot's work area,
// for the backward passes its bf16 output-gradient area and whether that
// already holds this convolution's dy (see arenas).
func (c *Conv) run(p Pass, slot int, f func(a, dy unsafe.Pointer, reuse C.int) *C.char) error {
	if err := c.prepare(p); err != nil {
		return err
	}
	a := &arenas[slot%len(arenas)]
	a.mu.Lock()
	defer a.mu.Unlock()
	size := uintptr(C.dn_conv_arena(c.cv, C.int(p)))
	buf := arena(slot, size)
	if buf == nil {
		return fmt.Errorf("dnnl: out of memory for a %d-byte work area", size)
	}
	var reuse C.int
	if p == Forward {
		if a.dyOwner == c {
			a.dyOwner = nil // a new forward pass: a new dy will follow
		}
	} else {
		if n := uintptr(C.dn_conv_dyb_size(c.cv)); a.dyN < n {
			if a.dy != nil {
				C.free(a.dy)
			}
			a.dy, a.dyN, a.dyOwner = C.aligned_alloc(64, C.size_t((n+63)&^63)), n, nil
			if a.dy == nil {
				a.dyN = 0
				return fmt.Errorf("dnnl: out of memory for a %d-byte output gradient", n)
			}
		}
		other := BackwardWeights
		if p == BackwardWeights {
			other = BackwardData
		}
		if a.dyOwner == c && a.dyNext == p {
			reuse, a.dyOwner = 1, nil
		} else {
			a.dyOwner, a.dyNext = c, other
		}
	}
	if msg := f(buf, a.dy, reuse); msg != nil {
		a.dyOwner = nil
		return fmt.Errorf("dnnl: convolution %+v, %v pass: %s", c.s, p, C.GoString(msg))
	}
	runtime.KeepAlive(c)
	return nil
}

// Forward computes y = conv(x, w) + b (b nil without bias) in arena slot slot.
func (c *Conv) Forward(slot int, x, w, b, y []float32) error {
	s := c.s
	oh, ow := s.Out()
	if err := firstErr(check("x", len(x), s.N*s.C*s.H*s.W), check("w", len(w), s.O*s.C*s.KH*s.KW), check("y", len(y), s.N*s.O*oh*ow)); err != nil {
		return err
	}
	if s.Bias {
		if err := check("b", len(b), s.O); err != nil {
			return err
		}
	}
	return c.run(Forward, slot, func(a, _ unsafe.Pointer, _ C.int) *C.char {
		return C.dn_conv_fwd(c.cv, cptr(x), cptr(w), cptr(b), cptr(y), (*C.char)(a))
	})
}

// BackwardData computes dx = convᵀ(dy, w) in arena slot slot.
func (c *Conv) BackwardData(slot int, w, dy, dx []float32) error {
	s := c.s
	oh, ow := s.Out()
	if err := firstErr(check("w", len(w), s.O*s.C*s.KH*s.KW), check("dy", len(dy), s.N*s.O*oh*ow), check("dx", len(dx), s.N*s.C*s.H*s.W)); err != nil {
		return err
	}
	return c.run(BackwardData, slot, func(a, dyb unsafe.Pointer, reuse C.int) *C.char {
		return C.dn_conv_bwd_data(c.cv, cptr(w), cptr(dy), cptr(dx), (*C.char)(a), (*C.char)(dyb), reuse)
	})
}

// BackwardWeights writes dw = Σ_images dy ⋆ x (OIHW, overwritten) in arena
// slot slot. It reads x from the bf16 copy the last Forward kept; x is
// converted only when no Forward ran (nil is then an error).
//
// BackwardData and BackwardWeights called one after the other in the same
// slot, with no Forward of this convolution and no other backward pass in
// that slot between, convert dy once: the second reuses the first's bf16
// copy, so they must be given the same dy (a graph's two backward ops of
// one convolution are). A second BackwardData never reuses the first's.
func (c *Conv) BackwardWeights(slot int, x, dy, dw []float32) error {
	s := c.s
	oh, ow := s.Out()
	if x != nil {
		if err := check("x", len(x), s.N*s.C*s.H*s.W); err != nil {
			return err
		}
	}
	if err := firstErr(check("dy", len(dy), s.N*s.O*oh*ow), check("dw", len(dw), s.O*s.C*s.KH*s.KW)); err != nil {
		return err
	}
	return c.run(BackwardWeights, slot, func(a, dyb unsafe.Pointer, reuse C.int) *C.char {
		return C.dn_conv_bwd_weights(c.cv, cptr(x), cptr(dy), cptr(dw), (*C.char)(a), (*C.char)(dyb), reuse)
	})
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// RoundBF16 rounds each value of x to the nearest bfloat16 (ties to even),
// as a float32, into y: what the kernels see of a float32 input.
func RoundBF16(x, y []float32) {
	n := min(len(x), len(y))
	if n > 0 {
		C.dn_f32_to_bf16_round(cptr(x), cptr(y), C.long(n))
	}
}

// MeasurePeak times a large bf16 convolution (16 images of 128×32×32, 3×3
// → 128, NHWC: one of the shapes where oneDNN's AMX kernels reach their
// best) on threads goroutines at once, each with its own convolution on one
// thread, for about budget seconds, and returns the total GFLOP/s (nominal
// 2·N·O·C·9·H·W per call) and the kernel's name.
func MeasurePeak(threads int, budget float64) (gflops float64, kernel string, err error) {
	threads = max(threads, 1)
	s := Shape{N: 16, C: 128, H: 32, W: 32, O: 128, KH: 3, KW: 3, Stride: 1, Pad: 1, Bias: true, NHWC: true}
	flop := 2.0 * float64(s.N*s.O*s.C*9*s.H*s.W)
	convs := make([]*Conv, threads)
	for i := range convs {
		if convs[i], err = NewConv(s, 1); err != nil {
			return 0, "", err
		}
	}
	x := make([]float32, s.N*s.C*s.H*s.W)
	for i := range x {
		x[i] = float32(i%17) / 17
	}
	w := make([]float32, s.O*s.C*9)
	for i := range w {
		w[i] = float32(i%13) / 130
	}
	b := make([]float32, s.O)
	ys := make([][]float32, threads)
	for i := range ys {
		ys[i] = make([]float32, s.N*s.O*s.H*s.W)
	}
	run := func(iters int) (float64, error) {
		var wg sync.WaitGroup
		errs := make([]error, threads)
		start := nowSeconds()
		for i := 0; i < threads; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for k := 0; k < iters && errs[i] == nil; k++ {
					errs[i] = convs[i].Forward(i, x, w, b, ys[i])
				}
			}(i)
		}
		wg.Wait()
		return nowSeconds() - start, firstErr(errs...)
	}
	if _, err := run(2); err != nil { // warm up: JIT, pages, AMX state
		return 0, "", err
	}
	iters := 4
	for {
		d, err := run(iters)
		if err != nil {
			return 0, "", err
		}
		if d >= budget || iters >= 1<<12 {
			return flop * float64(iters*threads) / d / 1e9, convs[0].Impl(Forward), nil
		}
		iters *= 2
	}
}

// Matmul is one batched bf16 matrix product of a fixed MatmulShape on
// oneDNN (dn_mm): A and B are converted to bf16, the products accumulate in
// float32 and C is written with its strides. A Matmul must not be used from
// two goroutines at once.
type Matmul struct {
	s  MatmulShape
	mm *C.dn_mm
}

// NewMatmul builds the product's primitives.
func NewMatmul(s MatmulShape) (*Matmul, error) {
	if ok, why := Available(); !ok {
		return nil, fmt.Errorf("dnnl: bf16 matmul unavailable: %s", why)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	strides := func(st [3]int) *C.long {
		p := (*C.long)(C.malloc(C.size_t(3 * C.sizeof_long)))
		a := unsafe.Slice(p, 3)
		for i, v := range st {
			a[i] = C.long(v)
		}
		return p
	}
	as, bs, cs := strides(s.A), strides(s.B), strides(s.C)
	defer C.free(unsafe.Pointer(as))
	defer C.free(unsafe.Pointer(bs))
	defer C.free(unsafe.Pointer(cs))
	var cerr *C.char
	mm := C.dn_mm_new(C.long(s.Batch), C.long(s.M), C.long(s.K), C.long(s.N), as, bs, cs, C.float(s.Alpha), &cerr)
	if cerr != nil {
		msg := C.GoString(cerr)
		C.free(unsafe.Pointer(cerr))
		if mm != nil {
			C.dn_mm_free(mm)
		}
		return nil, fmt.Errorf("dnnl: matmul %+v: %s", s, msg)
	}
	m := &Matmul{s: s, mm: mm}
	runtime.SetFinalizer(m, func(m *Matmul) { C.dn_mm_free(m.mm) })
	return m, nil
}

// Impl names the oneDNN matmul kernel, e.g. brg:avx512_core_amx.
func (m *Matmul) Impl() string {
	s := C.GoString(C.dn_mm_impl(m.mm))
	runtime.KeepAlive(m)
	return s
}

// Run computes C = Alpha·A·B.
func (m *Matmul) Run(a, b, c []float32) error {
	la, lb, lc := m.s.Lens()
	if err := firstErr(check("A", len(a), la), check("B", len(b), lb), check("C", len(c), lc)); err != nil {
		return err
	}
	if msg := C.dn_mm_run(m.mm, cptr(a), cptr(b), cptr(c)); msg != nil {
		return fmt.Errorf("dnnl: matmul %+v: %s", m.s, C.GoString(msg))
	}
	runtime.KeepAlive(m)
	return nil
}
