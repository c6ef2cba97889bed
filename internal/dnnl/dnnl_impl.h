// C side of package dnnl (included once, by dnnl_cgo.go): oneDNN 2.6's C API
// opened with dlopen, and a convolution object owning its primitives.
// Everything is static: this file is compiled only through that preamble.
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <oneapi/dnnl/dnnl.h>

#define DN_FUNCS(X) \
	X(dnnl_status_t, dnnl_engine_create, (dnnl_engine_t*, dnnl_engine_kind_t, size_t)) \
	X(dnnl_status_t, dnnl_stream_create, (dnnl_stream_t*, dnnl_engine_t, unsigned)) \
	X(dnnl_status_t, dnnl_stream_destroy, (dnnl_stream_t)) \
	X(dnnl_status_t, dnnl_stream_wait, (dnnl_stream_t)) \
	X(dnnl_status_t, dnnl_memory_desc_init_by_tag, (dnnl_memory_desc_t*, int, const dnnl_dims_t, dnnl_data_type_t, dnnl_format_tag_t)) \
	X(size_t, dnnl_memory_desc_get_size, (const dnnl_memory_desc_t*)) \
	X(dnnl_status_t, dnnl_convolution_forward_desc_init, (dnnl_convolution_desc_t*, dnnl_prop_kind_t, dnnl_alg_kind_t, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_dims_t, const dnnl_dims_t, const dnnl_dims_t)) \
	X(dnnl_status_t, dnnl_convolution_backward_data_desc_init, (dnnl_convolution_desc_t*, dnnl_alg_kind_t, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_dims_t, const dnnl_dims_t, const dnnl_dims_t)) \
	X(dnnl_status_t, dnnl_convolution_backward_weights_desc_init, (dnnl_convolution_desc_t*, dnnl_alg_kind_t, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_dims_t, const dnnl_dims_t, const dnnl_dims_t)) \
	X(dnnl_status_t, dnnl_primitive_attr_create, (dnnl_primitive_attr_t*)) \
	X(dnnl_status_t, dnnl_primitive_attr_destroy, (dnnl_primitive_attr_t)) \
	X(dnnl_status_t, dnnl_primitive_attr_set_scratchpad_mode, (dnnl_primitive_attr_t, dnnl_scratchpad_mode_t)) \
	X(dnnl_status_t, dnnl_primitive_desc_create, (dnnl_primitive_desc_t*, const_dnnl_op_desc_t, const_dnnl_primitive_attr_t, dnnl_engine_t, const_dnnl_primitive_desc_t)) \
	X(dnnl_status_t, dnnl_reorder_primitive_desc_create, (dnnl_primitive_desc_t*, const dnnl_memory_desc_t*, dnnl_engine_t, const dnnl_memory_desc_t*, dnnl_engine_t, const_dnnl_primitive_attr_t)) \
	X(dnnl_status_t, dnnl_primitive_desc_destroy, (dnnl_primitive_desc_t)) \
	X(dnnl_status_t, dnnl_primitive_desc_query, (const_dnnl_primitive_desc_t, dnnl_query_t, int, void*)) \
	X(const dnnl_memory_desc_t*, dnnl_primitive_desc_query_md, (const_dnnl_primitive_desc_t, dnnl_query_t, int)) \
	X(dnnl_status_t, dnnl_primitive_create, (dnnl_primitive_t*, const_dnnl_primitive_desc_t)) \
	X(dnnl_status_t, dnnl_primitive_destroy, (dnnl_primitive_t)) \
	X(dnnl_status_t, dnnl_primitive_execute, (const_dnnl_primitive_t, dnnl_stream_t, int, const dnnl_exec_arg_t*)) \
	X(dnnl_status_t, dnnl_memory_create, (dnnl_memory_t*, const dnnl_memory_desc_t*, dnnl_engine_t, void*)) \
	X(dnnl_status_t, dnnl_memory_set_data_handle, (dnnl_memory_t, void*)) \
	X(dnnl_status_t, dnnl_memory_destroy, (dnnl_memory_t)) \
	X(dnnl_status_t, dnnl_memory_desc_init_by_strides, (dnnl_memory_desc_t*, int, const dnnl_dims_t, dnnl_data_type_t, const dnnl_dims_t)) \
	X(dnnl_status_t, dnnl_matmul_desc_init, (dnnl_matmul_desc_t*, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*, const dnnl_memory_desc_t*)) \
	X(dnnl_status_t, dnnl_primitive_attr_set_output_scales, (dnnl_primitive_attr_t, dnnl_dim_t, int, const float*)) \
	X(dnnl_cpu_isa_t, dnnl_get_effective_cpu_isa, (void)) \
	X(const dnnl_version_t*, dnnl_version, (void))

#define DN_PTR(ret, name, args) static ret(*p_##name) args;
DN_FUNCS(DN_PTR)
static void (*p_omp_set_num_threads)(int);
static dnnl_engine_t dn_engine;

static const char* dn_load(void) {
	const char* names[] = {"libdnnl.so.2", "libdnnl.so", NULL};
	void* h = NULL;
	for (int i = 0; names[i] != NULL && h == NULL; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) return dlerror();
#define DN_SYM(ret, name, args) \
	p_##name = (ret(*) args)dlsym(h, #name); \
	if (p_##name == NULL) return "libdnnl lacks " #name " (want oneDNN 2.x)";
	DN_FUNCS(DN_SYM)
	// libgomp comes with libdnnl (Debian builds it with OpenMP); absent with
	// another threading runtime, in which case oneDNN's own default stands.
	p_omp_set_num_threads = (void (*)(int))dlsym(h, "omp_set_num_threads");
	if (p_omp_set_num_threads) p_omp_set_num_threads(1);
	if (p_dnnl_engine_create(&dn_engine, dnnl_cpu, 0) != dnnl_success) return "dnnl_engine_create failed";
	return NULL;
}

static int dn_isa(void) { return (int)p_dnnl_get_effective_cpu_isa(); }

// dn_version writes oneDNN's version into buf.
static void dn_version(char* buf, int n) {
	const dnnl_version_t* v = p_dnnl_version();
	snprintf(buf, n, "%d.%d.%d", v->major, v->minor, v->patch);
}

// dn_threads sets the calling thread's OpenMP team size: oneDNN reads it
// when it creates and when it runs a primitive.
static void dn_threads(int n) {
	if (p_omp_set_num_threads) p_omp_set_num_threads(n);
}

static void dn_f32_to_bf16_round(const float* x, float* y, long n) {
	for (long i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &x[i], 4);
		if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u; // quiet NaN stays NaN
		else u += 0x7fffu + ((u >> 16) & 1u);                   // round to nearest even
		u &= 0xffff0000u;
		memcpy(&y[i], &u, 4);
	}
}

// A pass: a primitive with its memory objects. User memories (Go slices)
// get their handle set at every call; internal ones live in the arena.
typedef struct {
	dnnl_primitive_t prim;
	const char* impl;
	size_t scratch; // scratchpad bytes
} dn_prim;

enum { DN_FWD = 0, DN_BWD_D = 1, DN_BWD_W = 2 };

typedef struct dn_conv {
	int n, c, h, w, o, kh, kw, oh, ow, stride, pad, bias;
	int threads;
	int nhwc; // the user's activations are NHWC float32 (else NCHW)
	dnnl_stream_t st;
	dnnl_memory_desc_t x_user, y_user, w_user, b_md; // f32 nchw, nchw, oihw, a
	dnnl_memory_desc_t x_bf, y_f, dy_bf, dx_f;         // bf16 nhwc, f32 nhwc
	dnnl_memory_desc_t wf_md, wd_md, dw_md;            // the passes' weight formats
	dnnl_primitive_desc_t fwd_pd;
	dn_prim fwd, bwd_d, bwd_w;
	dn_prim r_x, r_y, r_wf, r_dy, r_dx, r_wd, r_dw; // reorders
	int have_bwd_d, have_bwd_w;
	void* xb;       // the forward's bf16 input, kept for backward weights
	int xb_valid;
	dnnl_memory_t m_xu, m_yu, m_wu, m_b, m_xb, m_yf, m_wf, m_scr;
	dnnl_memory_t m_dyu, m_dxu, m_dyb, m_dxf, m_wd, m_dwu, m_dwb;
	char errbuf[256];
} dn_conv;

// dn_err formats a failed call into eb (an object's 256-byte error buffer).
static const char* dn_err(char* eb, const char* what, dnnl_status_t s) {
	snprintf(eb, 256, "oneDNN: %s failed (status %d)", what, (int)s);
	return eb;
}

#define DN_TRY(eb, what, call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) return dn_err(eb, what, s_); } while (0)

static dnnl_memory_desc_t dn_md4(int a, int b, int c, int d, dnnl_data_type_t dt, dnnl_format_tag_t tag) {
	dnnl_memory_desc_t md;
	dnnl_dims_t dims = {a, b, c, d};
	p_dnnl_memory_desc_init_by_tag(&md, 4, dims, dt, tag);
	return md;
}

static const char* dn_prim_make(char* eb, dn_prim* p, dnnl_primitive_desc_t pd, const char* what) {
	const char* impl = NULL;
	p_dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
	p->impl = impl ? strdup(impl) : strdup("?");
	const dnnl_memory_desc_t* smd = p_dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	p->scratch = smd ? p_dnnl_memory_desc_get_size(smd) : 0;
	dnnl_status_t s = p_dnnl_primitive_create(&p->prim, pd);
	if (s != dnnl_success) return dn_err(eb, what, s);
	return NULL;
}

static const char* dn_reorder(char* eb, dn_prim* p, const dnnl_memory_desc_t* from, const dnnl_memory_desc_t* to, dnnl_primitive_attr_t attr) {
	dnnl_primitive_desc_t pd;
	DN_TRY(eb, "reorder descriptor", p_dnnl_reorder_primitive_desc_create(&pd, from, dn_engine, to, dn_engine, attr));
	const char* e = dn_prim_make(eb, p, pd, "reorder");
	p_dnnl_primitive_desc_destroy(pd);
	return e;
}

static dnnl_memory_t dn_mem(const dnnl_memory_desc_t* md) {
	dnnl_memory_t m = NULL;
	p_dnnl_memory_create(&m, md, dn_engine, DNNL_MEMORY_NONE);
	return m;
}

static dnnl_primitive_attr_t dn_attr(void) {
	dnnl_primitive_attr_t a;
	p_dnnl_primitive_attr_create(&a);
	p_dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user);
	return a;
}

static const char* dn_conv_init(dn_conv* cv) {
	dnnl_dims_t strides = {cv->stride, cv->stride}, pads = {cv->pad, cv->pad};
	// padding_r so that oneDNN's output size equals PyTorch's floor formula
	dnnl_dims_t pad_r = {(cv->oh - 1) * cv->stride + cv->kh - cv->h - cv->pad, (cv->ow - 1) * cv->stride + cv->kw - cv->w - cv->pad};
	dnnl_format_tag_t act = cv->nhwc ? dnnl_nhwc : dnnl_nchw;
	cv->x_user = dn_md4(cv->n, cv->c, cv->h, cv->w, dnnl_f32, act);
	cv->y_user = dn_md4(cv->n, cv->o, cv->oh, cv->ow, dnnl_f32, act);
	cv->w_user = dn_md4(cv->o, cv->c, cv->kh, cv->kw, dnnl_f32, dnnl_oihw);
	cv->x_bf = dn_md4(cv->n, cv->c, cv->h, cv->w, dnnl_bf16, dnnl_nhwc);
	cv->y_f = dn_md4(cv->n, cv->o, cv->oh, cv->ow, dnnl_f32, dnnl_nhwc);
	cv->dy_bf = dn_md4(cv->n, cv->o, cv->oh, cv->ow, dnnl_bf16, dnnl_nhwc);
	cv->dx_f = dn_md4(cv->n, cv->c, cv->h, cv->w, dnnl_f32, dnnl_nhwc);
	dnnl_memory_desc_t w_any = dn_md4(cv->o, cv->c, cv->kh, cv->kw, dnnl_bf16, dnnl_format_tag_any);
	dnnl_dims_t bd = {cv->o};
	p_dnnl_memory_desc_init_by_tag(&cv->b_md, 1, bd, dnnl_f32, dnnl_a);
	dnnl_convolution_desc_t cd;
	DN_TRY(cv->errbuf, "forward descriptor", p_dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
		&cv->x_bf, &w_any, cv->bias ? &cv->b_md : NULL, &cv->y_f, strides, pads, pad_r));
	dnnl_primitive_attr_t attr = dn_attr();
	dnnl_status_t s = p_dnnl_primitive_desc_create(&cv->fwd_pd, &cd, attr, dn_engine, NULL);
	if (s != dnnl_success) { p_dnnl_primitive_attr_destroy(attr); return dn_err(cv->errbuf, "forward primitive descriptor", s); }
	cv->wf_md = *p_dnnl_primitive_desc_query_md(cv->fwd_pd, dnnl_query_weights_md, 0);
	const char* e = dn_prim_make(cv->errbuf, &cv->fwd, cv->fwd_pd, "forward convolution");
	if (!e) e = dn_reorder(cv->errbuf, &cv->r_x, &cv->x_user, &cv->x_bf, attr);
	if (!e) e = dn_reorder(cv->errbuf, &cv->r_y, &cv->y_f, &cv->y_user, attr);
	if (!e) e = dn_reorder(cv->errbuf, &cv->r_wf, &cv->w_user, &cv->wf_md, attr);
	p_dnnl_primitive_attr_destroy(attr);
	if (e) return e;
	cv->m_xu = dn_mem(&cv->x_user); cv->m_yu = dn_mem(&cv->y_user); cv->m_wu = dn_mem(&cv->w_user);
	cv->m_b = dn_mem(&cv->b_md); cv->m_xb = dn_mem(&cv->x_bf); cv->m_yf = dn_mem(&cv->y_f);
	cv->m_wf = dn_mem(&cv->wf_md);
	dnnl_memory_desc_t scr;
	dnnl_dims_t sd = {1};
	p_dnnl_memory_desc_init_by_tag(&scr, 1, sd, dnnl_u8, dnnl_a);
	cv->m_scr = dn_mem(&scr);
	cv->xb = malloc(p_dnnl_memory_desc_get_size(&cv->x_bf));
	if (!cv->xb) return "out of memory for the bf16 input copy";
	p_dnnl_memory_set_data_handle(cv->m_xb, cv->xb);
	DN_TRY(cv->errbuf, "stream", p_dnnl_stream_create(&cv->st, dn_engine, dnnl_stream_default_flags));
	return NULL;
}

static dn_conv* dn_conv_new(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int bias, int threads, int nhwc, char** err) {
	dn_conv* cv = calloc(1, sizeof *cv);
	if (!cv) { *err = strdup("out of memory"); return NULL; }
	cv->n = n; cv->c = c; cv->h = h; cv->w = w; cv->o = o; cv->kh = kh; cv->kw = kw;
	cv->stride = stride; cv->pad = pad; cv->bias = bias; cv->threads = threads; cv->nhwc = nhwc;
	cv->oh = (h + 2 * pad - kh) / stride + 1;
	cv->ow = (w + 2 * pad - kw) / stride + 1;
	dn_threads(threads);
	const char* e = dn_conv_init(cv);
	if (e) { *err = strdup(e); return NULL; } // the object leaks on this rare path
	return cv;
}

// The scratchpad sizes of passes: the arena holds [internal buffers | scratchpad].
static size_t dn_align(size_t n) { return (n + 63) & ~(size_t)63; }

static const char* dn_init_bwd_d(dn_conv* cv) {
	if (cv->have_bwd_d) return NULL;
	// oneDNN sizes a primitive's thread partition when it is created: with
	// the calling thread's team size, which must be the one it runs with
	// (else the partition, and the bits of its sums, depend on which OS
	// thread happened to build it).
	dn_threads(cv->threads);
	dnnl_dims_t strides = {cv->stride, cv->stride}, pads = {cv->pad, cv->pad};
	dnnl_dims_t pad_r = {(cv->oh - 1) * cv->stride + cv->kh - cv->h - cv->pad, (cv->ow - 1) * cv->stride + cv->kw - cv->w - cv->pad};
	dnnl_memory_desc_t w_any = dn_md4(cv->o, cv->c, cv->kh, cv->kw, dnnl_bf16, dnnl_format_tag_any);
	dnnl_convolution_desc_t cd;
	DN_TRY(cv->errbuf, "backward-data descriptor", p_dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &cv->dx_f, &w_any, &cv->dy_bf, strides, pads, pad_r));
	dnnl_primitive_attr_t attr = dn_attr();
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = p_dnnl_primitive_desc_create(&pd, &cd, attr, dn_engine, cv->fwd_pd);
	if (s != dnnl_success) { p_dnnl_primitive_attr_destroy(attr); return dn_err(cv->errbuf, "backward-data primitive descriptor", s); }
	cv->wd_md = *p_dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	const char* e = dn_prim_make(cv->errbuf, &cv->bwd_d, pd, "backward-data convolution");
	p_dnnl_primitive_desc_destroy(pd);
	if (!e) e = dn_reorder(cv->errbuf, &cv->r_dy, &cv->y_user, &cv->dy_bf, attr);
	if (!e) e = dn_reorder(cv->errbuf, &cv->r_dx, &cv->dx_f, &cv->x_user, attr);
	if (!e) e = dn_reorder(cv->errbuf, &cv->r_wd, &cv->w_user, &cv->wd_md, attr);
	p_dnnl_primitive_attr_destroy(attr);
	if (e) return e;
	cv->m_dyu = dn_mem(&cv->y_user); cv->m_dxu = dn_mem(&cv->x_user);
	cv->m_dyb = dn_mem(&cv->dy_bf); cv->m_dxf = dn_mem(&cv->dx_f); cv->m_wd = dn_mem(&cv->wd_md);
	cv->have_bwd_d = 1;
	return NULL;
}

static const char* dn_init_bwd_w(dn_conv* cv) {
	if (cv->have_bwd_w) return NULL;
	dn_threads(cv->threads);
	dnnl_dims_t strides = {cv->stride, cv->stride}, pads = {cv->pad, cv->pad};
	dnnl_dims_t pad_r = {(cv->oh - 1) * cv->stride + cv->kh - cv->h - cv->pad, (cv->ow - 1) * cv->stride + cv->kw - cv->w - cv->pad};
	dnnl_memory_desc_t w_any = dn_md4(cv->o, cv->c, cv->kh, cv->kw, dnnl_f32, dnnl_format_tag_any);
	dnnl_convolution_desc_t cd;
	DN_TRY(cv->errbuf, "backward-weights descriptor", p_dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &cv->x_bf, &w_any, NULL, &cv->dy_bf, strides, pads, pad_r));
	dnnl_primitive_attr_t attr = dn_attr();
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = p_dnnl_primitive_desc_create(&pd, &cd, attr, dn_engine, cv->fwd_pd);
	if (s != dnnl_success) { p_dnnl_primitive_attr_destroy(attr); return dn_err(cv->errbuf, "backward-weights primitive descriptor", s); }
	cv->dw_md = *p_dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
	const char* e = dn_prim_make(cv->errbuf, &cv->bwd_w, pd, "backward-weights convolution");
	p_dnnl_primitive_desc_destroy(pd);
	if (!e && !cv->have_bwd_d) e = dn_reorder(cv->errbuf, &cv->r_dy, &cv->y_user, &cv->dy_bf, attr);
	if (!e) e = dn_reorder(cv->errbuf, &cv->r_dw, &cv->dw_md, &cv->w_user, attr);
	p_dnnl_primitive_attr_destroy(attr);
	if (e) return e;
	if (!cv->m_dyu) { cv->m_dyu = dn_mem(&cv->y_user); cv->m_dyb = dn_mem(&cv->dy_bf); }
	cv->m_dwu = dn_mem(&cv->w_user); cv->m_dwb = dn_mem(&cv->dw_md);
	cv->have_bwd_w = 1;
	return NULL;
}

static size_t dn_conv_arena(dn_conv* cv, int which) {
	size_t scr = 0;
	dn_prim* ps[] = {&cv->fwd, &cv->bwd_d, &cv->bwd_w, &cv->r_x, &cv->r_y, &cv->r_wf, &cv->r_dy, &cv->r_dx, &cv->r_wd, &cv->r_dw};
	for (int i = 0; i < 10; i++) if (ps[i]->prim && ps[i]->scratch > scr) scr = ps[i]->scratch;
	switch (which) {
	case DN_FWD:
		return dn_align(p_dnnl_memory_desc_get_size(&cv->y_f)) + dn_align(p_dnnl_memory_desc_get_size(&cv->wf_md)) + dn_align(scr);
	case DN_BWD_D:
		return dn_align(p_dnnl_memory_desc_get_size(&cv->dx_f)) + dn_align(p_dnnl_memory_desc_get_size(&cv->wd_md)) + dn_align(scr);
	default:
		return dn_align(p_dnnl_memory_desc_get_size(&cv->dw_md)) + dn_align(scr);
	}
}

static const char* dn_run(dn_conv* cv, dn_prim* p, int nargs, dnnl_exec_arg_t* args, void* scr, const char* what) {
	args[nargs].arg = DNNL_ARG_SCRATCHPAD;
	args[nargs].memory = cv->m_scr;
	p_dnnl_memory_set_data_handle(cv->m_scr, scr);
	DN_TRY(cv->errbuf, what, p_dnnl_primitive_execute(p->prim, cv->st, nargs + 1, args));
	return NULL;
}

static const char* dn_reorder_run(dn_conv* cv, dn_prim* p, dnnl_memory_t from, dnnl_memory_t to, void* scr) {
	dnnl_exec_arg_t a[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
	return dn_run(cv, p, 2, a, scr, "reorder");
}

static const char* dn_conv_fwd(dn_conv* cv, const float* x, const float* w, const float* b, float* y, char* arena) {
	dn_threads(cv->threads);
	char* yf = arena;
	char* wf = yf + dn_align(p_dnnl_memory_desc_get_size(&cv->y_f));
	char* scr = wf + dn_align(p_dnnl_memory_desc_get_size(&cv->wf_md));
	const char* e;
	p_dnnl_memory_set_data_handle(cv->m_xu, (void*)x);
	p_dnnl_memory_set_data_handle(cv->m_wu, (void*)w);
	p_dnnl_memory_set_data_handle(cv->m_yu, y);
	p_dnnl_memory_set_data_handle(cv->m_yf, cv->nhwc ? (void*)y : (void*)yf);
	p_dnnl_memory_set_data_handle(cv->m_wf, wf);
	cv->xb_valid = 0;
	if ((e = dn_reorder_run(cv, &cv->r_x, cv->m_xu, cv->m_xb, scr))) return e;
	if ((e = dn_reorder_run(cv, &cv->r_wf, cv->m_wu, cv->m_wf, scr))) return e;
	dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, cv->m_xb}, {DNNL_ARG_WEIGHTS, cv->m_wf}, {DNNL_ARG_DST, cv->m_yf}};
	int na = 3;
	if (cv->bias) {
		p_dnnl_memory_set_data_handle(cv->m_b, (void*)b);
		a[na].arg = DNNL_ARG_BIAS;
		a[na].memory = cv->m_b;
		na++;
	}
	if ((e = dn_run(cv, &cv->fwd, na, a, scr, "forward convolution"))) return e;
	if (!cv->nhwc && (e = dn_reorder_run(cv, &cv->r_y, cv->m_yf, cv->m_yu, scr))) return e;
	DN_TRY(cv->errbuf, "stream wait", p_dnnl_stream_wait(cv->st));
	cv->xb_valid = 1;
	return NULL;
}

// dn_conv_dyb_size is the size of the bf16 output gradient, which the
// backward passes keep in a work area of the caller's (dyb): reuse says
// that it already holds dy, converted by this convolution's other backward
// pass (package dnnl tracks that per work area).
static size_t dn_conv_dyb_size(dn_conv* cv) { return p_dnnl_memory_desc_get_size(&cv->dy_bf); }

static const char* dn_conv_bwd_data(dn_conv* cv, const float* w, const float* dy, float* dx, char* arena, char* dyb, int reuse) {
	dn_threads(cv->threads);
	char* dxf = arena;
	char* wd = dxf + dn_align(p_dnnl_memory_desc_get_size(&cv->dx_f));
	char* scr = wd + dn_align(p_dnnl_memory_desc_get_size(&cv->wd_md));
	const char* e;
	p_dnnl_memory_set_data_handle(cv->m_dyu, (void*)dy);
	p_dnnl_memory_set_data_handle(cv->m_wu, (void*)w);
	p_dnnl_memory_set_data_handle(cv->m_dxu, dx);
	p_dnnl_memory_set_data_handle(cv->m_dyb, dyb);
	p_dnnl_memory_set_data_handle(cv->m_dxf, cv->nhwc ? (void*)dx : (void*)dxf);
	p_dnnl_memory_set_data_handle(cv->m_wd, wd);
	if (!reuse && (e = dn_reorder_run(cv, &cv->r_dy, cv->m_dyu, cv->m_dyb, scr))) return e;
	if ((e = dn_reorder_run(cv, &cv->r_wd, cv->m_wu, cv->m_wd, scr))) return e;
	dnnl_exec_arg_t a[4] = {{DNNL_ARG_DIFF_DST, cv->m_dyb}, {DNNL_ARG_WEIGHTS, cv->m_wd}, {DNNL_ARG_DIFF_SRC, cv->m_dxf}};
	if ((e = dn_run(cv, &cv->bwd_d, 3, a, scr, "backward-data convolution"))) return e;
	if (!cv->nhwc && (e = dn_reorder_run(cv, &cv->r_dx, cv->m_dxf, cv->m_dxu, scr))) return e;
	DN_TRY(cv->errbuf, "stream wait", p_dnnl_stream_wait(cv->st));
	return NULL;
}

static const char* dn_conv_bwd_weights(dn_conv* cv, const float* x, const float* dy, float* dw, char* arena, char* dyb, int reuse) {
	dn_threads(cv->threads);
	char* dwb = arena;
	char* scr = dwb + dn_align(p_dnnl_memory_desc_get_size(&cv->dw_md));
	const char* e;
	if (!cv->xb_valid) {
		if (x == NULL) return "backward weights: no input and no forward copy of it";
		p_dnnl_memory_set_data_handle(cv->m_xu, (void*)x);
		if ((e = dn_reorder_run(cv, &cv->r_x, cv->m_xu, cv->m_xb, scr))) return e;
	}
	p_dnnl_memory_set_data_handle(cv->m_dyu, (void*)dy);
	p_dnnl_memory_set_data_handle(cv->m_dyb, dyb);
	p_dnnl_memory_set_data_handle(cv->m_dwb, dwb);
	p_dnnl_memory_set_data_handle(cv->m_dwu, dw);
	if (!reuse && (e = dn_reorder_run(cv, &cv->r_dy, cv->m_dyu, cv->m_dyb, scr))) return e;
	dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, cv->m_xb}, {DNNL_ARG_DIFF_DST, cv->m_dyb}, {DNNL_ARG_DIFF_WEIGHTS, cv->m_dwb}};
	if ((e = dn_run(cv, &cv->bwd_w, 3, a, scr, "backward-weights convolution"))) return e;
	if ((e = dn_reorder_run(cv, &cv->r_dw, cv->m_dwb, cv->m_dwu, scr))) return e;
	DN_TRY(cv->errbuf, "stream wait", p_dnnl_stream_wait(cv->st));
	return NULL;
}

static const char* dn_conv_impl(dn_conv* cv, int which) {
	dn_prim* p = which == DN_FWD ? &cv->fwd : which == DN_BWD_D ? &cv->bwd_d : &cv->bwd_w;
	return p->impl ? p->impl : "";
}

static void dn_prim_free(dn_prim* p) {
	if (p->prim) p_dnnl_primitive_destroy(p->prim);
	free((void*)p->impl);
}

static void dn_conv_free(dn_conv* cv) {
	if (!cv) return;
	dn_prim* ps[] = {&cv->fwd, &cv->bwd_d, &cv->bwd_w, &cv->r_x, &cv->r_y, &cv->r_wf, &cv->r_dy, &cv->r_dx, &cv->r_wd, &cv->r_dw};
	for (int i = 0; i < 10; i++) dn_prim_free(ps[i]);
	dnnl_memory_t ms[] = {cv->m_xu, cv->m_yu, cv->m_wu, cv->m_b, cv->m_xb, cv->m_yf, cv->m_wf, cv->m_scr,
		cv->m_dyu, cv->m_dxu, cv->m_dyb, cv->m_dxf, cv->m_wd, cv->m_dwu, cv->m_dwb};
	for (int i = 0; i < 15; i++) if (ms[i]) p_dnnl_memory_destroy(ms[i]);
	if (cv->fwd_pd) p_dnnl_primitive_desc_destroy(cv->fwd_pd);
	if (cv->st) p_dnnl_stream_destroy(cv->st);
	free(cv->xb);
	free(cv);
}

// A batched matrix product C[i] = α·A[i]·B[i] (i < batch) on float32
// operands with any strides, so that transposes and column blocks need no
// copies: A and B are reordered into dense bf16 copies it owns, the product
// runs on oneDNN's bf16 matmul (AMX) with float32 accumulation, written into
// C with its strides (through a dense float32 copy and a reorder when C is
// not dense: oneDNN's AMX matmul wants a dense output, its strided ones are
// reference kernels). One thread per call; one object per concurrent caller.
typedef struct dn_mm {
	dnnl_stream_t st;
	dnnl_memory_desc_t a_user, b_user, c_user, a_bf, b_bf, c_f;
	dn_prim mm, r_a, r_b, r_c;
	dnnl_memory_t m_au, m_bu, m_cu, m_ab, m_bb, m_cf, m_scr;
	int c_dense; // C is dense: the matmul writes it directly
	void* ab;
	void* bb;
	void* cf;
	void* scr;
	char errbuf[256];
} dn_mm;

static const char* dn_mm_init(dn_mm* p, long bt, long m, long k, long n, const long* as, const long* bs, const long* cs, float alpha) {
	dnnl_dims_t ad = {bt, m, k}, bd = {bt, k, n}, cd = {bt, m, n};
	dnnl_dims_t ast = {as[0], as[1], as[2]}, bst = {bs[0], bs[1], bs[2]}, cst = {cs[0], cs[1], cs[2]};
	DN_TRY(p->errbuf, "A descriptor", p_dnnl_memory_desc_init_by_strides(&p->a_user, 3, ad, dnnl_f32, ast));
	DN_TRY(p->errbuf, "B descriptor", p_dnnl_memory_desc_init_by_strides(&p->b_user, 3, bd, dnnl_f32, bst));
	DN_TRY(p->errbuf, "C descriptor", p_dnnl_memory_desc_init_by_strides(&p->c_user, 3, cd, dnnl_f32, cst));
	DN_TRY(p->errbuf, "bf16 A descriptor", p_dnnl_memory_desc_init_by_tag(&p->a_bf, 3, ad, dnnl_bf16, dnnl_abc));
	DN_TRY(p->errbuf, "bf16 B descriptor", p_dnnl_memory_desc_init_by_tag(&p->b_bf, 3, bd, dnnl_bf16, dnnl_abc));
	DN_TRY(p->errbuf, "dense C descriptor", p_dnnl_memory_desc_init_by_tag(&p->c_f, 3, cd, dnnl_f32, dnnl_abc));
	p->c_dense = cs[0] == m * n && cs[1] == n && cs[2] == 1;
	dnnl_matmul_desc_t md;
	DN_TRY(p->errbuf, "matmul descriptor", p_dnnl_matmul_desc_init(&md, &p->a_bf, &p->b_bf, NULL, p->c_dense ? &p->c_user : &p->c_f));
	dnnl_primitive_attr_t attr = dn_attr();
	if (alpha != 1.0f) p_dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = p_dnnl_primitive_desc_create(&pd, &md, attr, dn_engine, NULL);
	p_dnnl_primitive_attr_destroy(attr);
	if (s != dnnl_success) return dn_err(p->errbuf, "matmul primitive descriptor", s);
	const char* e = dn_prim_make(p->errbuf, &p->mm, pd, "matmul");
	p_dnnl_primitive_desc_destroy(pd);
	dnnl_primitive_attr_t ra = dn_attr();
	if (!e) e = dn_reorder(p->errbuf, &p->r_a, &p->a_user, &p->a_bf, ra);
	if (!e) e = dn_reorder(p->errbuf, &p->r_b, &p->b_user, &p->b_bf, ra);
	if (!e && !p->c_dense) e = dn_reorder(p->errbuf, &p->r_c, &p->c_f, &p->c_user, ra);
	p_dnnl_primitive_attr_destroy(ra);
	if (e) return e;
	p->m_au = dn_mem(&p->a_user); p->m_bu = dn_mem(&p->b_user); p->m_cu = dn_mem(&p->c_user);
	p->m_ab = dn_mem(&p->a_bf); p->m_bb = dn_mem(&p->b_bf); p->m_cf = dn_mem(&p->c_f);
	dnnl_memory_desc_t scr;
	dnnl_dims_t sd = {1};
	p_dnnl_memory_desc_init_by_tag(&scr, 1, sd, dnnl_u8, dnnl_a);
	p->m_scr = dn_mem(&scr);
	size_t ns = p->mm.scratch;
	if (p->r_a.scratch > ns) ns = p->r_a.scratch;
	if (p->r_b.scratch > ns) ns = p->r_b.scratch;
	if (p->r_c.scratch > ns) ns = p->r_c.scratch;
	p->ab = malloc(p_dnnl_memory_desc_get_size(&p->a_bf));
	p->bb = malloc(p_dnnl_memory_desc_get_size(&p->b_bf));
	p->cf = p->c_dense ? malloc(64) : malloc(p_dnnl_memory_desc_get_size(&p->c_f));
	p->scr = malloc(ns > 0 ? ns : 64);
	if (!p->ab || !p->bb || !p->cf || !p->scr) return "out of memory for the matmul's copies";
	p_dnnl_memory_set_data_handle(p->m_ab, p->ab);
	p_dnnl_memory_set_data_handle(p->m_bb, p->bb);
	p_dnnl_memory_set_data_handle(p->m_cf, p->cf);
	p_dnnl_memory_set_data_handle(p->m_scr, p->scr);
	DN_TRY(p->errbuf, "stream", p_dnnl_stream_create(&p->st, dn_engine, dnnl_stream_default_flags));
	return NULL;
}

static dn_mm* dn_mm_new(long bt, long m, long k, long n, const long* as, const long* bs, const long* cs, float alpha, char** err) {
	dn_mm* p = calloc(1, sizeof *p);
	if (!p) { *err = strdup("out of memory"); return NULL; }
	dn_threads(1);
	const char* e = dn_mm_init(p, bt, m, k, n, as, bs, cs, alpha);
	if (e) { *err = strdup(e); return p; }
	return p;
}

static const char* dn_mm_exec(dn_mm* p, dn_prim* pr, int nargs, dnnl_exec_arg_t* args, const char* what) {
	args[nargs].arg = DNNL_ARG_SCRATCHPAD;
	args[nargs].memory = p->m_scr;
	DN_TRY(p->errbuf, what, p_dnnl_primitive_execute(pr->prim, p->st, nargs + 1, args));
	return NULL;
}

static const char* dn_mm_run(dn_mm* p, const float* a, const float* b, float* c) {
	dn_threads(1);
	const char* e;
	p_dnnl_memory_set_data_handle(p->m_au, (void*)a);
	p_dnnl_memory_set_data_handle(p->m_bu, (void*)b);
	p_dnnl_memory_set_data_handle(p->m_cu, c);
	dnnl_exec_arg_t ra[3] = {{DNNL_ARG_FROM, p->m_au}, {DNNL_ARG_TO, p->m_ab}};
	if ((e = dn_mm_exec(p, &p->r_a, 2, ra, "A reorder"))) return e;
	dnnl_exec_arg_t rb[3] = {{DNNL_ARG_FROM, p->m_bu}, {DNNL_ARG_TO, p->m_bb}};
	if ((e = dn_mm_exec(p, &p->r_b, 2, rb, "B reorder"))) return e;
	dnnl_exec_arg_t mm[4] = {{DNNL_ARG_SRC, p->m_ab}, {DNNL_ARG_WEIGHTS, p->m_bb}, {DNNL_ARG_DST, p->c_dense ? p->m_cu : p->m_cf}};
	if ((e = dn_mm_exec(p, &p->mm, 3, mm, "matmul"))) return e;
	if (!p->c_dense) {
		dnnl_exec_arg_t rc[3] = {{DNNL_ARG_FROM, p->m_cf}, {DNNL_ARG_TO, p->m_cu}};
		if ((e = dn_mm_exec(p, &p->r_c, 2, rc, "C reorder"))) return e;
	}
	DN_TRY(p->errbuf, "stream wait", p_dnnl_stream_wait(p->st));
	return NULL;
}

static const char* dn_mm_impl(dn_mm* p) { return p->mm.impl ? p->mm.impl : ""; }

static void dn_mm_free(dn_mm* p) {
	dn_prim* ps[] = {&p->mm, &p->r_a, &p->r_b, &p->r_c};
	for (int i = 0; i < 4; i++) dn_prim_free(ps[i]);
	dnnl_memory_t ms[] = {p->m_au, p->m_bu, p->m_cu, p->m_ab, p->m_bb, p->m_cf, p->m_scr};
	for (int i = 0; i < 7; i++) if (ms[i]) p_dnnl_memory_destroy(ms[i]);
	if (p->st) p_dnnl_stream_destroy(p->st);
	free(p->ab);
	free(p->bb);
	free(p->cf);
	free(p->scr);
	free(p);
}
