/* rlenhance: the per-pixel parts of the clean stage of an enhanced image (rlenhance.ops.clean), the
   native kernels of rlenhance.ops.native.clean_prepare_native and clean_finish_native.

   Plain C, compiled with the other kernels into one shared library (-O3 -ffp-contract=off, no
   fast-math). native.py declares the C signatures of the functions exported here
   (rlenhance_clean_args_size, rlenhance_clean_prepare, rlenhance_clean_finish, whose arguments come
   as one clean_args_t): keep the two in step. The numpy path of rlenhance/ops/clean.py does the same
   float32 operations in the same order; keep the two in step too.

   Images are n pixels of 3 interleaved channels (R, G, B), contiguous. x is the input (float32 in
   [0, 1], or uint8 / uint16 samples divided by 255 / 65535 in float), y the curves' output (float32).
   Luma L = 0.299 R + 0.587 G + 0.114 B (BT.601), chroma U = B - L, V = R - L.

   prepare: the planes the caller blurs, luma (n) and chroma (n x 2: U, V) of y, and per pixel the
   brightening weight w = clamp(L(y) / max(L(x), eps) - 1, 0, 1) (n); counts the pixels with w > 0.

   finish: a pixel with w = 0 is y itself. Elsewhere the luma
   moved towards its blurred value by c = w (1 - sharpen (1 - w)) (c < 0: away from it, sharpening),
   the chroma towards its blurred value by w; back to RGB (R = L + V, B = L + U,
   G = L - (0.299 / 0.587) V - (0.114 / 0.587) U, as changes added to y, so a pixel with w = 0 is y itself);
   then the highlight knee: with m the largest channel (the first of equals) and t = clamp((m - knee)
   (1 / (1 - knee)), 0, 1), m is to come down by drop = (knee_drop (1 - knee)) t^2 (a soft knee: a
   brightened pixel ends below white), by pulling the pixel towards x by k = drop / (m - xm), xm the
   input's value in m's channel (k = 1 where that gap is at most drop, 0 where it is not positive);
   clamped to [0, 1] and written as float32, or as round-half-even(255 v) / (65535 v). Pixels are split
   over n_threads POSIX threads. */
#include <stdint.h>
#include <stdlib.h>

#include "parallel.h"

enum { SAMPLE_F32 = 0, SAMPLE_U8 = 1, SAMPLE_U16 = 2 };
enum { OK = 0, ERR_ARGS = 1, ERR_MEMORY = 2 };

#define WR 0.299f
#define WG 0.587f
#define WB 0.114f
/* The green change of a luma and chroma change: dl - (WR dv + WB du) / WG, as dl - (RG dv + BG du). */
#define RG (WR / WG)
#define BG (WB / WG)

/* The arguments of rlenhance_clean_prepare / rlenhance_clean_finish. native.py mirrors this struct
   field by field (_CleanArgs) and checks its size against rlenhance_clean_args_size(): keep the two
   in step. */
typedef struct {
    const void *x;            /* the input, x_type, (n, 3) */
    const float *y;           /* the curves' output, (n, 3) */
    float *luma;              /* prepare: L(y), (n); finish: read */
    float *chroma;            /* prepare: U, V of y, (n, 2); finish: read */
    float *weight;            /* prepare: w, (n); finish: read */
    const float *luma_blur;   /* finish: the blurred luma, (n) */
    const float *chroma_blur; /* finish: the blurred chroma, (n, 2) */
    void *out;                /* finish: (n, 3) of out_type; may be y itself (float32) */
    int32_t x_type, out_type; /* SAMPLE_F32, SAMPLE_U8 or SAMPLE_U16 */
    int64_t n;                /* pixels */
    float eps;                /* the floor of the input's luma in the gain */
    float sharpen;            /* see the file's comment; 0: the luma blended by w */
    float knee;               /* where the highlight knee starts, 0 <= knee < 1 */
    float knee_drop;          /* how far the knee lowers a largest channel of 1, in units of 1 - knee */
    int32_t n_threads;        /* threads splitting the pixels (1 if < 1) */
    int64_t brightened;       /* prepare's result: pixels with w > 0 */
} clean_args_t;

typedef struct {
    const clean_args_t *a;
    int64_t p0, p1;
    int64_t brightened;
} worker_t;

/* Pixels per chunk: a chunk's channels are gathered into planes, worked on by loops the compiler
   vectorises (no branches), and scattered back. */
#define CHUNK 256

static inline float luma_of(float r, float g, float b) { return (WR * r + WG * g) + WB * b; }

static inline float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/* Rounds to the nearest integer, ties to even, for 0 <= v < 2^22 (as le_curves.c does). */
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

/* The channels of pixels p .. p + n - 1 of x as float planes (integer samples divided by their range). */
static inline __attribute__((always_inline)) void gather_x(const void *x, const int type, int64_t p, int n,
                                                           float *r, float *g, float *b) {
    if (type == SAMPLE_U8) {
        const uint8_t *s = (const uint8_t *)x + 3 * p;
        for (int i = 0; i < n; i++) {
            r[i] = (float)s[3 * i] / 255.0f;
            g[i] = (float)s[3 * i + 1] / 255.0f;
            b[i] = (float)s[3 * i + 2] / 255.0f;
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

static inline __attribute__((always_inline)) void gather_y(const float *y, int64_t p, int n, float *r, float *g,
                                                           float *b) {
    const float *s = y + 3 * p;
    for (int i = 0; i < n; i++) {
        r[i] = s[3 * i];
        g[i] = s[3 * i + 1];
        b[i] = s[3 * i + 2];
    }
}

static inline __attribute__((always_inline)) void prepare_typed(worker_t *job, const int x_type) {
    const clean_args_t *a = job->a;
    const float eps = a->eps;
    float r[CHUNK], g[CHUNK], b[CHUNK], xr[CHUNK], xg[CHUNK], xb[CHUNK];
    int64_t count = 0;
    for (int64_t p = job->p0; p < job->p1; p += CHUNK) {
        const int n = (int)(job->p1 - p < CHUNK ? job->p1 - p : CHUNK);
        gather_y(a->y, p, n, r, g, b);
        gather_x(a->x, x_type, p, n, xr, xg, xb);
        float *luma = a->luma + p, *chroma = a->chroma + 2 * p, *weight = a->weight + p;
        int hits = 0;
        for (int i = 0; i < n; i++) {
            const float l = luma_of(r[i], g[i], b[i]);
            float lx = luma_of(xr[i], xg[i], xb[i]);
            lx = lx > eps ? lx : eps;
            float w = l / lx - 1.0f;
            w = w > 0.0f ? w : 0.0f;  /* (NaN: 0) */
            w = w < 1.0f ? w : 1.0f;
            luma[i] = l;
            chroma[2 * i] = b[i] - l;
            chroma[2 * i + 1] = r[i] - l;
            weight[i] = w;
            hits += w > 0.0f;
        }
        count += hits;
    }
    job->brightened = count;
}

static void prepare_range(worker_t *job) {
    if (job->a->x_type == SAMPLE_U8) prepare_typed(job, SAMPLE_U8);
    else if (job->a->x_type == SAMPLE_U16) prepare_typed(job, SAMPLE_U16);
    else prepare_typed(job, SAMPLE_F32);
}

/* finish for one input and one output sample type (constants where this is inlined). */
static inline __attribute__((always_inline)) void finish_typed(const clean_args_t *a, int64_t p0, int64_t p1,
                                                               const int x_type, const int out_type) {
    const float knee = a->knee, sharpen = a->sharpen, inv_span = 1.0f / (1.0f - a->knee);
    const float depth = a->knee_drop * (1.0f - a->knee);
    float r[CHUNK], g[CHUNK], b[CHUNK], xr[CHUNK], xg[CHUNK], xb[CHUNK];
    for (int64_t p = p0; p < p1; p += CHUNK) {
        const int n = (int)(p1 - p < CHUNK ? p1 - p : CHUNK);
        gather_y(a->y, p, n, r, g, b);
        gather_x(a->x, x_type, p, n, xr, xg, xb);
        const float *luma = a->luma + p, *chroma = a->chroma + 2 * p, *weight = a->weight + p;
        const float *luma_blur = a->luma_blur + p, *chroma_blur = a->chroma_blur + 2 * p;
        for (int i = 0; i < n; i++) {
            const float w = weight[i];
            const float c_luma = w * (1.0f - sharpen * (1.0f - w));
            const float dl = c_luma * (luma_blur[i] - luma[i]);
            const float du = w * (chroma_blur[2 * i] - chroma[2 * i]);
            const float dv = w * (chroma_blur[2 * i + 1] - chroma[2 * i + 1]);
            float v0 = r[i] + (dl + dv), v1 = g[i] + (dl - (RG * dv + BG * du)), v2 = b[i] + (dl + du);
            /* the largest channel m and the input's value in that channel (the first of equals) */
            const float m = v0 >= v1 ? (v0 >= v2 ? v0 : v2) : (v1 >= v2 ? v1 : v2);
            const float xm = v0 >= v1 ? (v0 >= v2 ? xr[i] : xb[i]) : (v1 >= v2 ? xg[i] : xb[i]);
            float t = (m - knee) * inv_span;
            t = t > 0.0f ? t : 0.0f;
            t = t < 1.0f ? t : 1.0f;
            const float drop = depth * (t * t), gap = m - xm;
            const float k = gap > drop ? drop / gap : (gap > 0.0f ? 1.0f : 0.0f);
            v0 = clamp01(v0 - k * (v0 - xr[i]));
            v1 = clamp01(v1 - k * (v1 - xg[i]));
            v2 = clamp01(v2 - k * (v2 - xb[i]));
            /* a pixel with w = 0 is y itself */
            r[i] = w > 0.0f ? v0 : r[i];
            g[i] = w > 0.0f ? v1 : g[i];
            b[i] = w > 0.0f ? v2 : b[i];
        }
        if (out_type == SAMPLE_F32) {
            float *d = (float *)a->out + 3 * p;
            for (int i = 0; i < n; i++) {
                d[3 * i] = r[i];
                d[3 * i + 1] = g[i];
                d[3 * i + 2] = b[i];
            }
        } else {
            const float scale = out_type == SAMPLE_U8 ? 255.0f : 65535.0f;
            for (int i = 0; i < n; i++) {
                r[i] = round_even(r[i] * scale);
                g[i] = round_even(g[i] * scale);
                b[i] = round_even(b[i] * scale);
            }
            if (out_type == SAMPLE_U8) {
                uint8_t *d = (uint8_t *)a->out + 3 * p;
                for (int i = 0; i < n; i++) {
                    d[3 * i] = (uint8_t)(int32_t)r[i];
                    d[3 * i + 1] = (uint8_t)(int32_t)g[i];
                    d[3 * i + 2] = (uint8_t)(int32_t)b[i];
                }
            } else {
                uint16_t *d = (uint16_t *)a->out + 3 * p;
                for (int i = 0; i < n; i++) {
                    d[3 * i] = (uint16_t)(int32_t)r[i];
                    d[3 * i + 1] = (uint16_t)(int32_t)g[i];
                    d[3 * i + 2] = (uint16_t)(int32_t)b[i];
                }
            }
        }
    }
}

#define FINISH_OUT(X)                                                                          \
    do {                                                                                       \
        if (a->out_type == SAMPLE_U8) finish_typed(a, job->p0, job->p1, X, SAMPLE_U8);         \
        else if (a->out_type == SAMPLE_U16) finish_typed(a, job->p0, job->p1, X, SAMPLE_U16);  \
        else finish_typed(a, job->p0, job->p1, X, SAMPLE_F32);                                 \
    } while (0)

static void finish_range(worker_t *job) {
    const clean_args_t *a = job->a;
    if (a->x_type == SAMPLE_U8) FINISH_OUT(SAMPLE_U8);
    else if (a->x_type == SAMPLE_U16) FINISH_OUT(SAMPLE_U16);
    else FINISH_OUT(SAMPLE_F32);
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
    if (!a || !a->x || !a->y || !a->luma || !a->chroma || !a->weight || a->n < 0 || a->x_type < SAMPLE_F32 || a->x_type > SAMPLE_U16)
        return ERR_ARGS;
    int64_t n = a->n_threads < 1 ? 1 : a->n_threads;
    if (n > a->n) n = a->n > 0 ? a->n : 1;
    worker_t *jobs = calloc((size_t)n, sizeof(worker_t));
    if (!jobs) return ERR_MEMORY;
    for (int64_t i = 0; i < n; i++) {
        jobs[i].a = a;
        jobs[i].p0 = a->n * i / n;
        jobs[i].p1 = a->n * (i + 1) / n;
    }
    int status = run_jobs(fn, jobs, sizeof(worker_t), n) == 0 ? OK : ERR_MEMORY;
    a->brightened = 0;
    for (int64_t i = 0; i < n; i++) a->brightened += jobs[i].brightened;
    free(jobs);
    return status;
}

int rlenhance_clean_prepare(clean_args_t *a) { return run(a, run_prepare); }

int rlenhance_clean_finish(clean_args_t *a) {
    if (!a || !a->luma_blur || !a->chroma_blur || !a->out || a->out_type < SAMPLE_F32 || a->out_type > SAMPLE_U16
        || !(a->knee >= 0.0f && a->knee < 1.0f))
        return ERR_ARGS;
    return run(a, run_finish);
}
