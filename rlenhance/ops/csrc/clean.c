/* rlenhance: the per-pixel parts of the clean stage of an enhanced image (rlenhance.ops.clean), the
   native kernels of rlenhance.ops.native.clean_prepare_native and clean_finish_native.

   Plain C, compiled with the other kernels into one shared library (-O3 -ffp-contract=off, no
   fast-math). native.py declares the C signatures of the functions exported here
   (rlenhance_clean_args_size, rlenhance_clean_prepare, rlenhance_clean_finish, whose arguments come
   as one clean_args_t): keep the two in step. The torch path of rlenhance/ops/clean.py (clean_prepare,
   clean_finish) does the same float32 operations in the same order; keep the two in step too.

   Images are n pixels of 3 interleaved channels (R, G, B), contiguous. x is the input (float32 in
   [0, 1], or uint8 / uint16 samples divided by 255 / 65535 in float), y the curves' output (float32).
   Luma L = 0.299 R + 0.587 G + 0.114 B (BT.601), opponent chroma U = B - G, V = R - G (0 for a gray
   pixel, exactly); the brightening weight
   w = clamp(L(y) / max(L(x), eps) - 1, 0, 1).

   prepare: the planes the caller blurs, luma (n) and chroma (n x 2: U, V) of y; counts the pixels
   with w > 0.

   finish, from x, y and the blurred planes: a pixel with w = 0 is y itself. Elsewhere the luma is
   moved by w towards lb + s (ld - lb): lb and ld its blurs for small and for large gains, s =
   clamp((gain - 1 - ramp_start) ramp_scale, 0, 1) (dL = w ((lb + s (ld - lb)) - L)); the chroma
   towards its blurred value by w, and the changes are added to y in RGB (G: dG = dL -
   (0.299 dV + 0.114 dU), R: dG + dV, B: dG + dU: a gray image stays gray); then the highlight knee: with m
   the largest channel (the first of equals) and t = clamp((m - knee) (1 / (1 - knee)), 0, 1), m is
   to come down by drop = (knee_drop (1 - knee)) t^2 (a soft knee: a brightened pixel ends below
   white), by pulling the pixel towards x by k = drop / (m - xm), xm the input's value in m's channel
   (k = 1 where that gap is at most drop, 0 where it is not positive); clamped to [0, 1] and written
   as float32, or as round-half-even(255 v) / (65535 v).

   Pixels are split over n_threads POSIX threads, and worked on in chunks: a chunk's channels and
   planes are copied into local planes (zero-padded to a multiple of 8), computed 8 lanes at a time
   with the GCC / clang vector extensions (the same IEEE operations per lane as scalar code, in the
   same order), and copied back; where GCC builds it, a copy compiled for AVX2 (the same operations,
   VEX-encoded) runs on CPUs that have it. */
#include <stdint.h>
#include <stdlib.h>

#include "parallel.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9
#define HAVE_AVX2 1      /* a second copy compiled for AVX2 (VEX encoding; chosen at run time) */
#else
#define HAVE_AVX2 0
#endif

enum { ISA_AUTO = 0, ISA_BASELINE = 1, ISA_AVX2 = 2 };
int rlenhance_best_isa(void);  /* pixelrl_select.c */

enum { SAMPLE_F32 = 0, SAMPLE_U8 = 1, SAMPLE_U16 = 2 };
enum { OK = 0, ERR_ARGS = 1, ERR_MEMORY = 2 };

#define WR 0.299f
#define WG 0.587f
#define WB 0.114f

/* The arguments of rlenhance_clean_prepare / rlenhance_clean_finish. native.py mirrors this struct
   field by field (_CleanArgs) and checks its size against rlenhance_clean_args_size(): keep the two
   in step. */
typedef struct {
    const void *x;            /* the input, x_type, (n, 3) */
    const float *y;           /* the curves' output, (n, 3) */
    float *luma;              /* prepare: L(y), (n) */
    float *chroma;            /* prepare: U, V of y, (n, 2) */
    const float *luma_blur;   /* finish: the blurred luma, (n) */
    const float *luma_dark;   /* finish: the luma blurred for large gains, (n) */
    const float *chroma_blur; /* finish: the blurred chroma, (n, 2) */
    void *out;                /* finish: (n, 3) of out_type; may be y itself (float32) */
    int32_t x_type, out_type; /* SAMPLE_F32, SAMPLE_U8 or SAMPLE_U16 */
    int64_t n;                /* pixels */
    float eps;                /* the floor of the input's luma in the weight */
    float ramp_start;         /* the gain minus 1 from which luma_dark is blended in (see the file's comment) */
    float ramp_scale;         /* 1 / the span of gains over which it is blended in */
    float knee;               /* where the highlight knee starts, 0 <= knee < 1 */
    float knee_drop;          /* how far the knee lowers a largest channel of 1, in units of 1 - knee */
    int32_t n_threads;        /* threads splitting the pixels (1 if < 1) */
    int64_t brightened;       /* prepare's result: pixels with w > 0 */
} clean_args_t;

typedef struct {
    const clean_args_t *a;
    const float *table;       /* uint8 samples: the float value of each */
    int avx2;                 /* run the AVX2 copy */
    int64_t p0, p1;
    int64_t brightened;
} worker_t;

/* Pixels per chunk (see the file's comment), and lanes per vector. */
#define CHUNK 256
#define LANES 8

typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));

static inline vf loadv(const float *p) {
    vf v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static inline void storev(float *p, vf v) { __builtin_memcpy(p, &v, sizeof v); }

static inline vf splat(float f) { return (vf){f, f, f, f, f, f, f, f}; }

/* m ? a : b per lane (m: all bits set or none, as a comparison gives) */
static inline vf sel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

static inline vf lumav(vf r, vf g, vf b) { return (splat(WR) * r + splat(WG) * g) + splat(WB) * b; }

/* v < 0 ? 0 : (v > 1 ? 1 : v) */
static inline vf clampv(vf v) { return sel(v < splat(0.0f), splat(0.0f), sel(v > splat(1.0f), splat(1.0f), v)); }


/* The channels of pixels p .. p + n - 1 of x as float planes (integer samples divided by their range). */
static inline __attribute__((always_inline)) void gather_x(const void *x, const int type, const float *table,
                                                           int64_t p, int n, float *r, float *g, float *b) {
    if (type == SAMPLE_U8) {
        const uint8_t *s = (const uint8_t *)x + 3 * p;
        for (int i = 0; i < n; i++) {
            r[i] = table[s[3 * i]];
            g[i] = table[s[3 * i + 1]];
            b[i] = table[s[3 * i + 2]];
        }
    } else if (type == SAMPLE_U16) {
        const uint16_t *s = (const uint16_t *)x + 3 * p;
        for (int i = 0; i < n; i++) {
            r[i] = (float)s[3 * i] / 65535.0f;
            g[i] = (float)s[3 * i + 1] / 65535.0f;
            b[i] = (float)s[3 * i + 2] / 65535.0f;
        }
    } else {
        const float *s = (const float *)x + 3 * p;
        for (int i = 0; i < n; i++) {
            r[i] = s[3 * i];
            g[i] = s[3 * i + 1];
            b[i] = s[3 * i + 2];
        }
    }
}

static inline void gather3(const float *s, int n, float *r, float *g, float *b) {
    for (int i = 0; i < n; i++) {
        r[i] = s[3 * i];
        g[i] = s[3 * i + 1];
        b[i] = s[3 * i + 2];
    }
}

static inline void gather2(const float *s, int n, float *u, float *v) {
    for (int i = 0; i < n; i++) {
        u[i] = s[2 * i];
        v[i] = s[2 * i + 1];
    }
}

/* Zeros after the n values of each plane, up to the next multiple of LANES. */
static inline void pad(int n, float *const *planes, int count) {
    for (int k = 0; k < count; k++)
        for (int i = n; i % LANES; i++) planes[k][i] = 0.0f;
}

/* The gain minus 1, L(y) / max(L(x), eps) - 1, of LANES pixels, from the luma of y and of x. */
static inline vf excessv(vf l, vf lx, vf eps) {
    lx = sel(lx > eps, lx, eps);
    return l / lx - splat(1.0f);
}

/* clamp(v, 0, 1) with NaN: 0 */
static inline vf unitv(vf v) {
    const vf zero = splat(0.0f), one = splat(1.0f);
    v = sel(v > zero, v, zero);
    return sel(v < one, v, one);
}

static inline __attribute__((always_inline)) void prepare_typed(worker_t *job, const int x_type) {
    const clean_args_t *a = job->a;
    const vf eps = splat(a->eps);
    float r[CHUNK], g[CHUNK], b[CHUNK], xr[CHUNK], xg[CHUNK], xb[CHUNK], l[CHUNK], u[CHUNK], v[CHUNK], w[CHUNK];
    int64_t count = 0;
    for (int64_t p = job->p0; p < job->p1; p += CHUNK) {
        const int n = (int)(job->p1 - p < CHUNK ? job->p1 - p : CHUNK);
        gather3(a->y + 3 * p, n, r, g, b);
        gather_x(a->x, x_type, job->table, p, n, xr, xg, xb);
        pad(n, (float *const[]){r, g, b, xr, xg, xb}, 6);
        for (int i = 0; i < n; i += LANES) {
            const vf r4 = loadv(r + i), b4 = loadv(b + i);
            const vf l4 = lumav(r4, loadv(g + i), b4);
            const vf w4 = unitv(excessv(l4, lumav(loadv(xr + i), loadv(xg + i), loadv(xb + i)), eps));
            storev(l + i, l4);
            const vf g4 = loadv(g + i);
            storev(u + i, b4 - g4);
            storev(v + i, r4 - g4);
            storev(w + i, w4);
        }
        float *luma = a->luma + p, *chroma = a->chroma + 2 * p;
        for (int i = 0; i < n; i++) {
            luma[i] = l[i];
            chroma[2 * i] = u[i];
            chroma[2 * i + 1] = v[i];
            count += w[i] > 0.0f;
        }
    }
    job->brightened = count;
}

static inline __attribute__((always_inline)) void prepare_any(worker_t *job) {
    if (job->a->x_type == SAMPLE_U8) prepare_typed(job, SAMPLE_U8);
    else if (job->a->x_type == SAMPLE_U16) prepare_typed(job, SAMPLE_U16);
    else prepare_typed(job, SAMPLE_F32);
}

static void prepare_baseline(worker_t *job) { prepare_any(job); }

#if HAVE_AVX2
/* The same operations lane by lane (no FMA: -ffp-contract=off), so the same values. */
__attribute__((target("avx2"))) static void prepare_avx2(worker_t *job) { prepare_any(job); }
#endif

static void prepare_range(worker_t *job) {
#if HAVE_AVX2
    if (job->avx2) {
        prepare_avx2(job);
        return;
    }
#endif
    prepare_baseline(job);
}

/* finish for one input and one output sample type (constants where this is inlined). */
static inline __attribute__((always_inline)) void finish_typed(const worker_t *job, const int x_type,
                                                               const int out_type) {
    const clean_args_t *a = job->a;
    const vf knee = splat(a->knee), inv_span = splat(1.0f / (1.0f - a->knee));
    const vf ramp_start = splat(a->ramp_start), ramp_scale = splat(a->ramp_scale);
    const vf depth = splat(a->knee_drop * (1.0f - a->knee)), zero = splat(0.0f), one = splat(1.0f);
    const vf eps = splat(a->eps);
    float r[CHUNK], g[CHUNK], b[CHUNK], xr[CHUNK], xg[CHUNK], xb[CHUNK], lb[CHUNK], ld[CHUNK], ub[CHUNK], vb[CHUNK];
    for (int64_t p = job->p0; p < job->p1; p += CHUNK) {
        const int n = (int)(job->p1 - p < CHUNK ? job->p1 - p : CHUNK);
        gather3(a->y + 3 * p, n, r, g, b);
        gather_x(a->x, x_type, job->table, p, n, xr, xg, xb);
        gather2(a->chroma_blur + 2 * p, n, ub, vb);
        __builtin_memcpy(lb, a->luma_blur + p, (size_t)n * sizeof(float));
        __builtin_memcpy(ld, a->luma_dark + p, (size_t)n * sizeof(float));
        pad(n, (float *const[]){r, g, b, xr, xg, xb, lb, ld, ub, vb}, 10);
        for (int i = 0; i < n; i += LANES) {
            const vf r4 = loadv(r + i), g4 = loadv(g + i), b4 = loadv(b + i);
            const vf xr4 = loadv(xr + i), xg4 = loadv(xg + i), xb4 = loadv(xb + i);
            const vf l4 = lumav(r4, g4, b4);
            const vf q4 = excessv(l4, lumav(xr4, xg4, xb4), eps);
            const vf w4 = unitv(q4);
            const vf s4 = unitv((q4 - ramp_start) * ramp_scale);
            const vf lb4 = loadv(lb + i);
            const vf dl = w4 * ((lb4 + s4 * (loadv(ld + i) - lb4)) - l4);
            const vf du = w4 * (loadv(ub + i) - (b4 - g4));
            const vf dv = w4 * (loadv(vb + i) - (r4 - g4));
            const vf dg = dl - (splat(WR) * dv + splat(WB) * du);
            vf v0 = r4 + (dg + dv), v1 = g4 + dg, v2 = b4 + (dg + du);
            /* the largest channel m and the input's value in that channel (the first of equals) */
            const vi c01 = v0 >= v1, c02 = v0 >= v2, c12 = v1 >= v2;
            const vf m = sel(c01, sel(c02, v0, v2), sel(c12, v1, v2));
            const vf xm = sel(c01, sel(c02, xr4, xb4), sel(c12, xg4, xb4));
            vf t = (m - knee) * inv_span;
            t = sel(t > zero, t, zero);
            t = sel(t < one, t, one);
            const vi above = t > zero;
            int past_knee = 0;
            for (int j = 0; j < LANES; j++) past_knee |= above[j];
            if (past_knee) {  /* else k = 0: v - 0 (v - x) is v */
                const vf drop = depth * (t * t), gap = m - xm;
                const vi far = gap > drop;
                const vf k = sel(far, drop / sel(far, gap, one), sel(gap > zero, one, zero));
                v0 = v0 - k * (v0 - xr4);
                v1 = v1 - k * (v1 - xg4);
                v2 = v2 - k * (v2 - xb4);
            }
            v0 = clampv(v0);
            v1 = clampv(v1);
            v2 = clampv(v2);
            /* a pixel with w = 0 is y itself */
            const vi hit = w4 > zero;
            storev(r + i, sel(hit, v0, r4));
            storev(g + i, sel(hit, v1, g4));
            storev(b + i, sel(hit, v2, b4));
        }
        if (out_type == SAMPLE_F32) {
            float *d = (float *)a->out + 3 * p;
            for (int i = 0; i < n; i++) {
                d[3 * i] = r[i];
                d[3 * i + 1] = g[i];
                d[3 * i + 2] = b[i];
            }
        } else {
            /* round-half-even(scale v), LANES at a time, as int32 planes (reusing the float planes' memory) */
            const vf scale = splat(out_type == SAMPLE_U8 ? 255.0f : 65535.0f), magic = splat(12582912.0f);
            int32_t *ri = (int32_t *)r, *gi = (int32_t *)g, *bi = (int32_t *)b;
            for (int i = 0; i < n; i += LANES) {
                const vi r4 = __builtin_convertvector((loadv(r + i) * scale + magic) - magic, vi);
                const vi g4 = __builtin_convertvector((loadv(g + i) * scale + magic) - magic, vi);
                const vi b4 = __builtin_convertvector((loadv(b + i) * scale + magic) - magic, vi);
                __builtin_memcpy(ri + i, &r4, sizeof r4);
                __builtin_memcpy(gi + i, &g4, sizeof g4);
                __builtin_memcpy(bi + i, &b4, sizeof b4);
            }
            if (out_type == SAMPLE_U8) {
                uint8_t *d = (uint8_t *)a->out + 3 * p;
                for (int i = 0; i < n; i++) {
                    d[3 * i] = (uint8_t)ri[i];
                    d[3 * i + 1] = (uint8_t)gi[i];
                    d[3 * i + 2] = (uint8_t)bi[i];
                }
            } else {
                uint16_t *d = (uint16_t *)a->out + 3 * p;
                for (int i = 0; i < n; i++) {
                    d[3 * i] = (uint16_t)ri[i];
                    d[3 * i + 1] = (uint16_t)gi[i];
                    d[3 * i + 2] = (uint16_t)bi[i];
                }
            }
        }
    }
}

#define FINISH_OUT(X)                                                            \
    do {                                                                         \
        if (a->out_type == SAMPLE_U8) finish_typed(job, X, SAMPLE_U8);           \
        else if (a->out_type == SAMPLE_U16) finish_typed(job, X, SAMPLE_U16);    \
        else finish_typed(job, X, SAMPLE_F32);                                   \
    } while (0)

static inline __attribute__((always_inline)) void finish_any(worker_t *job) {
    const clean_args_t *a = job->a;
    if (a->x_type == SAMPLE_U8) FINISH_OUT(SAMPLE_U8);
    else if (a->x_type == SAMPLE_U16) FINISH_OUT(SAMPLE_U16);
    else FINISH_OUT(SAMPLE_F32);
}

static void finish_baseline(worker_t *job) { finish_any(job); }

#if HAVE_AVX2
__attribute__((target("avx2"))) static void finish_avx2(worker_t *job) { finish_any(job); }
#endif

static void finish_range(worker_t *job) {
#if HAVE_AVX2
    if (job->avx2) {
        finish_avx2(job);
        return;
    }
#endif
    finish_baseline(job);
}

static void *run_prepare(void *arg) {
    prepare_range((worker_t *)arg);
    return NULL;
}

static void *run_finish(void *arg) {
    finish_range((worker_t *)arg);
    return NULL;
}

int64_t rlenhance_clean_args_size(void) { return (int64_t)sizeof(clean_args_t); }

static int run(clean_args_t *a, void *(*fn)(void *)) {
    if (!a || !a->x || !a->y || a->n < 0 || a->x_type < SAMPLE_F32
        || a->x_type > SAMPLE_U16)
        return ERR_ARGS;
    int64_t n = a->n_threads < 1 ? 1 : a->n_threads;
    if (n > a->n) n = a->n > 0 ? a->n : 1;
    worker_t *jobs = calloc((size_t)n, sizeof(worker_t));
    if (!jobs) return ERR_MEMORY;
    float table[256];
    for (int i = 0; i < 256; i++) table[i] = (float)i / 255.0f;
    const int avx2 = rlenhance_best_isa() == ISA_AVX2;
    for (int64_t i = 0; i < n; i++) {
        jobs[i].a = a;
        jobs[i].table = table;
        jobs[i].avx2 = avx2;
        jobs[i].p0 = a->n * i / n;
        jobs[i].p1 = a->n * (i + 1) / n;
    }
    int status = run_jobs(fn, jobs, sizeof(worker_t), n) == 0 ? OK : ERR_MEMORY;
    a->brightened = 0;
    for (int64_t i = 0; i < n; i++) a->brightened += jobs[i].brightened;
    free(jobs);
    return status;
}

int rlenhance_clean_prepare(clean_args_t *a) {
    if (!a || !a->luma || !a->chroma) return ERR_ARGS;
    return run(a, run_prepare);
}

int rlenhance_clean_finish(clean_args_t *a) {
    if (!a || !a->luma_blur || !a->luma_dark || !a->chroma_blur || !a->out || a->out_type < SAMPLE_F32 || a->out_type > SAMPLE_U16
        || !(a->knee >= 0.0f && a->knee < 1.0f))
        return ERR_ARGS;
    return run(a, run_finish);
}
