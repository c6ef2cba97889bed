//go:build cgo && !noblas

package blas

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
typedef void (*dgemm_fn)(int, int, int, int, int, int, double, const double*, int, const double*, int, double, double*, int);
typedef char* (*str_fn)(void);
typedef void (*setint_fn)(int);
typedef int (*getint_fn)(void);

typedef struct {
	sgemm_fn sgemm;
	dgemm_fn dgemm;
	str_fn config;
	str_fn corename;
	setint_fn set_threads;
	getint_fn get_threads;
	int env_was_set;
} ob_lib;

// ob_load sets OPENBLAS_CORETYPE to coretype when it is unset (or when force
// is set) and coretype is not empty, then opens OpenBLAS. It returns NULL on
// success, else dlerror().
static const char* ob_load(ob_lib* lib, const char* coretype, int force) {
	const char* names[] = {"libopenblas.so.0", "libopenblas.so", NULL};
	void* h = NULL;
	int i;
	lib->env_was_set = getenv("OPENBLAS_CORETYPE") != NULL;
	if ((force || !lib->env_was_set) && coretype != NULL && coretype[0] != 0) {
		setenv("OPENBLAS_CORETYPE", coretype, 1);
	}
	for (i = 0; names[i] != NULL && h == NULL; i++) {
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	}
	if (h == NULL) {
		return dlerror();
	}
	lib->sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
	lib->dgemm = (dgemm_fn)dlsym(h, "cblas_dgemm");
	lib->config = (str_fn)dlsym(h, "openblas_get_config");
	lib->corename = (str_fn)dlsym(h, "openblas_get_corename");
	lib->set_threads = (setint_fn)dlsym(h, "openblas_set_num_threads");
	lib->get_threads = (getint_fn)dlsym(h, "openblas_get_num_threads");
	if (lib->sgemm == NULL || lib->dgemm == NULL) {
		return "cblas_sgemm or cblas_dgemm missing from libopenblas";
	}
	return NULL;
}

static void ob_sgemm(ob_lib* lib, int ta, int tb, int m, int n, int k, float alpha,
		const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
	lib->sgemm(101, ta ? 112 : 111, tb ? 112 : 111, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void ob_dgemm(ob_lib* lib, int ta, int tb, int m, int n, int k, double alpha,
		const double* a, int lda, const double* b, int ldb, double beta, double* c, int ldc) {
	lib->dgemm(101, ta ? 112 : 111, tb ? 112 : 111, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static const char* ob_str(str_fn f) { return f == NULL ? "" : f(); }
static void ob_set_threads(ob_lib* lib, int n) { if (lib->set_threads) lib->set_threads(n); }
static int ob_get_threads(ob_lib* lib) { return lib->get_threads ? lib->get_threads() : 0; }
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"
	"gonum.org/v1/gonum/blas/gonum"
)

// backend is the loaded library; it is written once, under once.
type backend struct {
	once    sync.Once
	lib     C.ob_lib
	ok      bool
	loadErr string
	chosen  string // the core type we set, "" if none
	userSet string // the value of OPENBLAS_CORETYPE at load, "" if none
	forced  string // the value of DIFFINV_OPENBLAS_CORETYPE, "" if none
}

var be backend

// CoreTypeFor returns the OPENBLAS_CORETYPE this CPU should use: "SkylakeX"
// with AVX-512 (F, CD, BW, DQ, VL), "Haswell" with AVX2 and FMA, else "" (let
// OpenBLAS detect).
func CoreTypeFor() string {
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512CD && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL:
		return "SkylakeX"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return "Haswell"
	}
	return ""
}

func load() {
	be.once.Do(func() {
		be.userSet = os.Getenv("OPENBLAS_CORETYPE")
		be.forced = os.Getenv(OverrideEnv)
		want, override := ChooseCoreType(be.forced, be.userSet, CoreTypeFor())
		force := 0
		if override {
			force = 1
		}
		cs := C.CString(want)
		defer C.free(unsafe.Pointer(cs))
		if msg := C.ob_load(&be.lib, cs, C.int(force)); msg != nil {
			be.loadErr = C.GoString(msg)
			return
		}
		be.ok = true
		if be.lib.env_was_set == 0 || force != 0 {
			be.chosen = want
		}
		if os.Getenv("OPENBLAS_NUM_THREADS") == "" {
			C.ob_set_threads(&be.lib, 1)
		}
	})
}

// Backend returns "openblas" when OpenBLAS is in use, else "gonum".
func Backend() string {
	load()
	if be.ok {
		return "openblas"
	}
	return "gonum"
}

// CoreName returns OpenBLAS's name for the kernels it runs (e.g. "SkylakeX"),
// or "" when OpenBLAS is not in use.
func CoreName() string {
	load()
	if !be.ok {
		return ""
	}
	return C.GoString(C.ob_str(be.lib.corename))
}

// Info describes the backend in one line: library, kernels, build config,
// threads and where OPENBLAS_CORETYPE came from.
func Info() string {
	load()
	if !be.ok {
		return fmt.Sprintf("gonum pure-Go BLAS (libopenblas not loaded: %s)", be.loadErr)
	}
	src := "unset (OpenBLAS autodetect)"
	switch {
	case be.forced != "" && be.chosen != "":
		src = fmt.Sprintf("%q from %s=%s", be.chosen, OverrideEnv, be.forced)
	case be.userSet != "" && be.chosen != "" && !strings.EqualFold(be.chosen, be.userSet):
		src = fmt.Sprintf("%q chosen from CPUID over the inherited %q (an older kernel family; set %s=%s to keep it)", be.chosen, be.userSet, OverrideEnv, be.userSet)
	case be.lib.env_was_set != 0:
		src = fmt.Sprintf("%q set by the user", be.userSet)
		if want := CoreTypeFor(); want != "" && !strings.EqualFold(want, be.userSet) {
			src += fmt.Sprintf(" (CPUID suggests %q: unset the variable or set %s=auto)", want, OverrideEnv)
		}
	case be.chosen != "":
		src = fmt.Sprintf("%q chosen from CPUID", be.chosen)
	}
	core := C.GoString(C.ob_str(be.lib.corename))
	if be.chosen != "" && !strings.EqualFold(core, be.chosen) {
		// Another library (libtorch in torch builds) loaded OpenBLAS at
		// program start, before the variable could be set.
		src += fmt.Sprintf(", but OpenBLAS was already loaded with %q kernels (set OPENBLAS_CORETYPE=%s before starting the program)", core, be.chosen)
	}
	return fmt.Sprintf("openblas core=%s threads=%d OPENBLAS_CORETYPE=%s config=%q",
		core, int(C.ob_get_threads(&be.lib)), src, C.GoString(C.ob_str(be.lib.config)))
}

// SetThreads sets OpenBLAS's thread count (no effect with gonum).
func SetThreads(n int) {
	load()
	if be.ok && n > 0 {
		C.ob_set_threads(&be.lib, C.int(n))
	}
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, op(A)
// m×k, op(B) k×n, C m×n. Slices must be long enough for their leading
// dimensions (a programming error otherwise: gonum panics, OpenBLAS reads out
// of bounds), so callers check shapes first.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	load()
	if !be.ok || k == 0 {
		gonum.Implementation{}.Sgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	C.ob_sgemm(&be.lib, cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.int(lda), (*C.float)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc))
}

// Dgemm is Sgemm in float64.
func Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	load()
	if !be.ok || k == 0 {
		gonum.Implementation{}.Dgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	C.ob_dgemm(&be.lib, cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.double(alpha),
		(*C.double)(unsafe.Pointer(&a[0])), C.int(lda), (*C.double)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.double(beta), (*C.double)(unsafe.Pointer(&c[0])), C.int(ldc))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
