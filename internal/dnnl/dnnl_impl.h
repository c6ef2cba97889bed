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

static const char* dn_err(dn_conv* cv, const char* what, dnnl_status_t s) {
	snprintf(cv->errbuf, sizeof cv->errbuf, "oneDNN: %s failed (status %d)", what, (int)s);
	return cv->errbuf;
}

#define DN_TRY(cv, what, call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) return dn_err(cv, what, s_); } while (0)

static dnnl_memory_desc_t dn_md4(int a, int b, int c, int d, dnnl_data_type_t dt, dnnl_format_tag_t tag) {
	dnnl_memory_desc_t md;
	dnnl_dims_t dims = {a, b, c, d};
	p_dnnl_memory_desc_init_by_tag(&md, 4, dims, dt, tag);
	return md;
}

static const char* dn_prim_make(dn_conv* cv, dn_prim* p, dnnl_primitive_desc_t pd, const char* what) {
	const char* impl = NULL;
	p_dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
	p->impl = impl ? strdup(impl) : strdup("?");
	const dnnl_memory_desc_t* smd = p_dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	p->scratch = smd ? p_dnnl_memory_desc_get_size(smd) : 0;
	dnnl_status_t s = p_dnnl_primitive_create(&p->prim, pd);
	if (s != dnnl_success) return dn_err(cv, what, s);
	return NULL;
}

static const char* dn_reorder(dn_conv* cv, dn_prim* p, const dnnl_memory_desc_t* from, const dnnl_memory_desc_t* to, dnnl_primitive_attr_t attr) {
	dnnl_primitive_desc_t pd;
	DN_TRY(cv, "reorder descriptor", p_dnnl_reorder_primitive_desc_create(&pd, from, dn_engine, to, dn_engine, attr));
	const char* e = dn_prim_make(cv, p, pd, "reorder");
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
	DN_TRY(cv, "forward descriptor", p_dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
		&cv->x_bf, &w_any, cv->bias ? &cv->b_md : NULL, &cv->y_f, strides, pads, pad_r));
	dnnl_primitive_attr_t attr = dn_attr();
	dnnl_status_t s = p_dnnl_primitive_desc_create(&cv->fwd_pd, &cd, attr, dn_engine, NULL);
	if (s != dnnl_success) { p_dnnl_primitive_attr_destroy(attr); return dn_err(cv, "forward primitive descriptor", s); }
	cv->wf_md = *p_dnnl_primitive_desc_query_md(cv->fwd_pd, dnnl_query_weights_md, 0);
	const char* e = dn_prim_make(cv, &cv->fwd, cv->fwd_pd, "forward convolution");
	if (!e) e = dn_reorder(cv, &cv->r_x, &cv->x_user, &cv->x_bf, attr);
	if (!e) e = dn_reorder(cv, &cv->r_y, &cv->y_f, &cv->y_user, attr);
	if (!e) e = dn_reorder(cv, &cv->r_wf, &cv->w_user, &cv->wf_md, attr);
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
	DN_TRY(cv, "stream", p_dnnl_stream_create(&cv->st, dn_engine, dnnl_stream_default_flags));
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
	DN_TRY(cv, "backward-data descriptor", p_dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &cv->dx_f, &w_any, &cv->dy_bf, strides, pads, pad_r));
	dnnl_primitive_attr_t attr = dn_attr();
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = p_dnnl_primitive_desc_create(&pd, &cd, attr, dn_engine, cv->fwd_pd);
	if (s != dnnl_success) { p_dnnl_primitive_attr_destroy(attr); return dn_err(cv, "backward-data primitive descriptor", s); }
	cv->wd_md = *p_dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	const char* e = dn_prim_make(cv, &cv->bwd_d, pd, "backward-data convolution");
	p_dnnl_primitive_desc_destroy(pd);
	if (!e) e = dn_reorder(cv, &cv->r_dy, &cv->y_user, &cv->dy_bf, attr);
	if (!e) e = dn_reorder(cv, &cv->r_dx, &cv->dx_f, &cv->x_user, attr);
	if (!e) e = dn_reorder(cv, &cv->r_wd, &cv->w_user, &cv->wd_md, attr);
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
	DN_TRY(cv, "backward-weights descriptor", p_dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &cv->x_bf, &w_any, NULL, &cv->dy_bf, strides, pads, pad_r));
	dnnl_primitive_attr_t attr = dn_attr();
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = p_dnnl_primitive_desc_create(&pd, &cd, attr, dn_engine, cv->fwd_pd);
	if (s != dnnl_success) { p_dnnl_primitive_attr_destroy(attr); return dn_err(cv, "backward-weights primitive descriptor", s); }
	cv->dw_md = *p_dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
	const char* e = dn_prim_make(cv, &cv->bwd_w, pd, "backward-weights convolution");
	p_dnnl_primitive_desc_destroy(pd);
	if (!e && !cv->have_bwd_d) e = dn_reorder(cv, &cv->r_dy, &cv->y_user, &cv->dy_bf, attr);
	if (!e) e = dn_reorder(cv, &cv->r_dw, &cv->dw_md, &cv->w_user, attr);
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
	DN_TRY(cv, what, p_dnnl_primitive_execute(p->prim, cv->st, nargs + 1, args));
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
	DN_TRY(cv, "stream wait", p_dnnl_stream_wait(cv->st));
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
	DN_TRY(cv, "stream wait", p_dnnl_stream_wait(cv->st));
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
	DN_TRY(cv, "stream wait", p_dnnl_stream_wait(cv->st));
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
