/* rlenhance: LE curve steps with bilinearly upsampled alpha maps, fused: the native kernel of
   rlenhance.ops.curves.le_curves_upsampled (loaded by rlenhance/ops/native.py).

   Plain C (GCC >= 9 or clang; no torch headers), compiled with pixelrl_select.c (which provides
   rlenhance_best_isa) and area_downscale.c into one shared library (-O3 -ffp-contract=off, no
   fast-math, no -march=native: the row code is compiled a second time for AVX2, chosen at run time;
   both copies do the same IEEE operations lane by lane, so they give the same values).
   native.py declares the C signatures of the functions exported at the end of this file
   (rlenhance_curves_args_size, rlenhance_le_curves, whose arguments come as one curves_args_t):
   keep the two in step.

   For every pixel of a region of an image (H, W, C samples, any strides, float32 / uint8 / uint16)
   and every step s in order:

       a = bilinear(alpha_s)(y, x)                  alpha_s: (c, mh, mw), c = 1 (shared) or C
       v <- min(max(v + (a * v) * (1 - v), 0), 1)   (the operations of le_curve, then clamp)

   where bilinear() samples the map at (src_y, src_x) = ((y + 0.5) mh / H - 0.5, (x + 0.5) mw / W - 0.5)
   clamped to [0, mh - 1] x [0, mw - 1] (F.interpolate(mode="bilinear", align_corners=False), which
   is grid_sample with border padding at those points), as rows first then columns:
   a = w0y (w0x m[j0][i0] + w1x m[j0][i1]) + w1y (w0x m[j1][i0] + w1x m[j1][i1]). The column-blended
   map rows are kept per worker (two rows per map and channel) and blended per image row. Each
   sample is read once and written once; integer samples are divided by 255 / 65535 on reading,
   and written as round-half-even(255 v) / (65535 v) of the clamped value (numpy's rint).
   The rows are split over n_threads POSIX threads; each row is processed in chunks of CHUNK
   pixels held in float planes (one per channel) through all the steps, read from and written to
   (H, W, 3) rows and contiguous planes by loops of constant stride (vectorized), other layouts by
   strided loops. */
#include <stdint.h>
#include <stdlib.h>

#include "parallel.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9
#define HAVE_AVX2 1      /* a second copy of the row code compiled for AVX2 (chosen at run time) */
#else
#define HAVE_AVX2 0
#endif

#define CHUNK 512        /* pixels of a row converted and curved at a time (all planes stay in L1) */
#define MAX_CHANNELS 4

enum { SAMPLE_F32 = 0, SAMPLE_U8 = 1, SAMPLE_U16 = 2 };
enum { OK = 0, ERR_ARGS = 1, ERR_MEMORY = 2, ERR_ISA = 3 };
enum { ISA_AUTO = 0, ISA_BASELINE = 1, ISA_AVX2 = 2 };

int rlenhance_best_isa(void);  /* pixelrl_select.c */

/* The arguments of rlenhance_le_curves. native.py mirrors this struct field by field (_CurvesArgs,
   a ctypes.Structure) and checks its size against rlenhance_curves_args_size(): keep the two in step. */
typedef struct {
    const void *x;            /* the region's samples, x_type; element (y, x, ch) at y*x_row + x*x_col + ch*x_chan */
    void *out;                /* the result, out_type, out_* strides; may be x itself (same type and strides) */
    int32_t x_type, out_type; /* SAMPLE_F32, SAMPLE_U8 or SAMPLE_U16 */
    int64_t x_row, x_col, x_chan;
    int64_t out_row, out_col, out_chan;
    int64_t rows, w, ch;      /* the region: rows x w pixels of ch channels (ch <= MAX_CHANNELS) */
    int64_t top, h;           /* the region is rows top .. top + rows - 1 of an image of h rows and w columns */
    const float *maps;        /* (steps, c, mh, mw), contiguous */
    int32_t steps, c, mh, mw; /* c: 1 (one alpha per pixel) or ch */
    int32_t n_threads;        /* threads splitting the rows (1 if < 1, at most rows) */
    int32_t isa;              /* ISA_AUTO, ISA_BASELINE or ISA_AVX2 */
} curves_args_t;

/* Column taps, shared by the workers. */
typedef struct {
    const curves_args_t *a;
    const int32_t *i0, *i1;   /* per column: the two map columns */
    const float *w0x, *w1x;   /* and their weights */
} plan_t;

typedef struct {
    const plan_t *p;
    int64_t row0, row1;
    int status;
} worker_t;

static inline double source_coordinate(int64_t i, int64_t out_size, int64_t in_size) {
    double s = ((double)i + 0.5) * (double)in_size / (double)out_size - 0.5;
    return s < 0.0 ? 0.0 : s > (double)(in_size - 1) ? (double)(in_size - 1) : s;
}

/* The map row j of every (step, channel) map blended across columns: rows[m * w + x]. */
static inline __attribute__((always_inline)) void blend_columns(const plan_t *p, int64_t j, float *restrict rows) {
    const curves_args_t *a = p->a;
    const int64_t maps = (int64_t)a->steps * a->c, w = a->w;
    for (int64_t m = 0; m < maps; m++) {
        const float *restrict src = a->maps + (m * a->mh + j) * a->mw;
        float *restrict dst = rows + m * w;
        for (int64_t x = 0; x < w; x++) dst[x] = p->w0x[x] * src[p->i0[x]] + p->w1x[x] * src[p->i1[x]];
    }
}

/* Samples n pixels of one channel into a float plane. */
static inline __attribute__((always_inline)) void load_plane(float *restrict dst, const void *src, int type,
                                                             int64_t col, int64_t n) {
    if (type == SAMPLE_U8) {
        const uint8_t *s = (const uint8_t *)src;
        for (int64_t x = 0; x < n; x++) dst[x] = (float)s[x * col] / 255.0f;
    } else if (type == SAMPLE_U16) {
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t x = 0; x < n; x++) dst[x] = (float)s[x * col] / 65535.0f;
    } else {
        const float *s = (const float *)src;
        for (int64_t x = 0; x < n; x++) dst[x] = s[x * col];
    }
}

/* Rounds to the nearest integer, ties to even (the default rounding mode), for 0 <= v < 2^22:
   adding and subtracting 1.5 * 2^23 leaves v rounded to an integer (no fast-math: kept as written). */
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

static inline __attribute__((always_inline)) void store_plane(void *dst, const float *restrict src, int type,
                                                              int64_t col, int64_t n) {
    if (type == SAMPLE_U8) {
        uint8_t *d = (uint8_t *)dst;
        for (int64_t x = 0; x < n; x++) d[x * col] = (uint8_t)(int32_t)round_even(src[x] * 255.0f);
    } else if (type == SAMPLE_U16) {
        uint16_t *d = (uint16_t *)dst;
        for (int64_t x = 0; x < n; x++) d[x * col] = (uint16_t)(int32_t)round_even(src[x] * 65535.0f);
    } else {
        float *d = (float *)dst;
        for (int64_t x = 0; x < n; x++) d[x * col] = src[x];
    }
}

static inline size_t sample_size(int type) { return type == SAMPLE_U8 ? 1 : type == SAMPLE_U16 ? 2 : 4; }

/* (H, W, 3) rows, the common layout: the three channels of n pixels in one loop of stride 3, which
   the compiler vectorizes (with shuffles) where the per-channel loops of stride 3 stay scalar. */
#define RGB_LOOP(T, BODY)                                                              \
    do {                                                                               \
        for (int64_t x = 0; x < n; x++) {                                              \
            BODY(T, 0);                                                                \
            BODY(T, 1);                                                                \
            BODY(T, 2);                                                                \
        }                                                                              \
    } while (0)
#define LOAD_INT(T, k) planes[(k) * CHUNK + x] = (float)((const T *)src)[3 * x + (k)] / scale
#define LOAD_F32(T, k) planes[(k) * CHUNK + x] = ((const T *)src)[3 * x + (k)]
#define STORE_INT(T, k) ((T *)dst)[3 * x + (k)] = (T)(int32_t)round_even(planes[(k) * CHUNK + x] * scale)
#define STORE_F32(T, k) ((T *)dst)[3 * x + (k)] = planes[(k) * CHUNK + x]

static inline __attribute__((always_inline)) void load_rgb(float *restrict planes, const void *restrict src, int type,
                                                           int64_t n) {
    if (type == SAMPLE_U8) {
        const float scale = 255.0f;
        RGB_LOOP(uint8_t, LOAD_INT);
    } else if (type == SAMPLE_U16) {
        const float scale = 65535.0f;
        RGB_LOOP(uint16_t, LOAD_INT);
    } else {
        RGB_LOOP(float, LOAD_F32);
    }
}

static inline __attribute__((always_inline)) void store_rgb(void *restrict dst, const float *restrict planes, int type,
                                                            int64_t n) {
    if (type == SAMPLE_U8) {
        const float scale = 255.0f;
        RGB_LOOP(uint8_t, STORE_INT);
    } else if (type == SAMPLE_U16) {
        const float scale = 65535.0f;
        RGB_LOOP(uint16_t, STORE_INT);
    } else {
        RGB_LOOP(float, STORE_F32);
    }
}

/* One step on n values of a plane: v + (a * v) * (1 - v), clamped to [0, 1]. */
static inline __attribute__((always_inline)) void curve(float *restrict v, const float *restrict alpha, int64_t n) {
    for (int64_t x = 0; x < n; x++) {
        float u = v[x] + (alpha[x] * v[x]) * (1.0f - v[x]);
        u = u < 0.0f ? 0.0f : u;
        v[x] = u > 1.0f ? 1.0f : u;
    }
}

/* Rows row0 .. row1 - 1 of the region; scratch: 2 blended rows per map, the planes and one alpha chunk. */
static inline __attribute__((always_inline)) void curve_rows(const plan_t *p, int64_t row0, int64_t row1,
                                                             float *rows_a, float *rows_b, float *planes,
                                                             float *alpha) {
    const curves_args_t *a = p->a;
    const int64_t w = a->w, ch = a->ch, c = a->c, maps = (int64_t)a->steps * c;
    const size_t xs = sample_size(a->x_type), os = sample_size(a->out_type);
    const int rgb_in = ch == 3 && a->x_col == 3 && a->x_chan == 1, rgb_out = ch == 3 && a->out_col == 3 && a->out_chan == 1;
    int64_t tag_a = -1, tag_b = -1;  /* the map rows held by rows_a and rows_b */
    for (int64_t y = row0; y < row1; y++) {
        const double sy = source_coordinate(a->top + y, a->h, a->mh);
        const int64_t j0 = (int64_t)sy, j1 = j0 + 1 < a->mh ? j0 + 1 : j0;
        const float w1y = (float)(sy - (double)j0), w0y = 1.0f - w1y;
        if (tag_b == j0 && tag_a != j0) {  /* moving down: the lower row becomes the upper one */
            float *swap = rows_a;
            rows_a = rows_b;
            rows_b = swap;
            tag_b = tag_a;
            tag_a = j0;
        }
        if (tag_a != j0) blend_columns(p, tag_a = j0, rows_a);
        if (tag_b != j1) blend_columns(p, tag_b = j1, rows_b);
        const char *src = (const char *)a->x + (size_t)(y * a->x_row) * xs;
        char *dst = (char *)a->out + (size_t)(y * a->out_row) * os;
        for (int64_t x0 = 0; x0 < w; x0 += CHUNK) {
            const int64_t n = w - x0 < CHUNK ? w - x0 : CHUNK;
            if (rgb_in) load_rgb(planes, src + (size_t)(x0 * 3) * xs, a->x_type, n);
            else if (a->x_col == 1)  /* planes of contiguous rows, e.g. (C, H, W): a constant stride, vectorized */
                for (int64_t k = 0; k < ch; k++)
                    load_plane(planes + k * CHUNK, src + (size_t)(x0 + k * a->x_chan) * xs, a->x_type, 1, n);
            else
                for (int64_t k = 0; k < ch; k++)
                    load_plane(planes + k * CHUNK, src + (size_t)(x0 * a->x_col + k * a->x_chan) * xs, a->x_type,
                               a->x_col, n);
            for (int64_t m = 0; m < maps; m++) {
                const float *restrict top = rows_a + m * w + x0, *restrict bottom = rows_b + m * w + x0;
                for (int64_t x = 0; x < n; x++) alpha[x] = w0y * top[x] + w1y * bottom[x];
                if (c == 1) {  /* one alpha for every channel */
                    for (int64_t k = 0; k < ch; k++) curve(planes + k * CHUNK, alpha, n);
                } else {
                    curve(planes + (m % c) * CHUNK, alpha, n);
                }
            }
            if (rgb_out) store_rgb(dst + (size_t)(x0 * 3) * os, planes, a->out_type, n);
            else if (a->out_col == 1)
                for (int64_t k = 0; k < ch; k++)
                    store_plane(dst + (size_t)(x0 + k * a->out_chan) * os, planes + k * CHUNK, a->out_type, 1, n);
            else
                for (int64_t k = 0; k < ch; k++)
                    store_plane(dst + (size_t)(x0 * a->out_col + k * a->out_chan) * os, planes + k * CHUNK,
                                a->out_type, a->out_col, n);
        }
    }
}

typedef void (*rows_fn)(const plan_t *, int64_t, int64_t, float *, float *, float *, float *);

static void curve_rows_baseline(const plan_t *p, int64_t row0, int64_t row1, float *ra, float *rb, float *planes,
                                float *alpha) {
    curve_rows(p, row0, row1, ra, rb, planes, alpha);
}

#if HAVE_AVX2
/* The same operations lane by lane with 32-byte vectors (no FMA: -ffp-contract=off), so the same values. */
__attribute__((target("avx2"))) static void curve_rows_avx2(const plan_t *p, int64_t row0, int64_t row1, float *ra,
                                                             float *rb, float *planes, float *alpha) {
    curve_rows(p, row0, row1, ra, rb, planes, alpha);
}
#endif

typedef struct {
    worker_t w;
    rows_fn fn;
} job_t;

static void *run_worker(void *arg) {
    job_t *job = (job_t *)arg;
    worker_t *wk = &job->w;
    const curves_args_t *a = wk->p->a;
    const size_t blended = (size_t)a->steps * (size_t)a->c * (size_t)a->w;
    float *rows_a = malloc(blended * sizeof(float)), *rows_b = malloc(blended * sizeof(float));
    float *planes = malloc((size_t)(a->ch + 1) * CHUNK * sizeof(float));
    wk->status = OK;
    if (!rows_a || !rows_b || !planes) wk->status = ERR_MEMORY;
    else job->fn(wk->p, wk->row0, wk->row1, rows_a, rows_b, planes, planes + a->ch * CHUNK);
    free(rows_a);
    free(rows_b);
    free(planes);
    return NULL;
}

/* sizeof(curves_args_t): native.py checks its mirror of the struct against it on loading. */
int64_t rlenhance_curves_args_size(void) { return (int64_t)sizeof(curves_args_t); }

static int valid_type(int32_t type) { return type == SAMPLE_F32 || type == SAMPLE_U8 || type == SAMPLE_U16; }

/* Apply the curve steps; returns OK or an ERR_ code. */
int rlenhance_le_curves(const curves_args_t *a) {
    if (!a || !a->x || !a->out || !a->maps || !valid_type(a->x_type) || !valid_type(a->out_type) || a->rows < 1
        || a->w < 1 || a->ch < 1 || a->ch > MAX_CHANNELS || a->top < 0 || a->h < a->top + a->rows || a->steps < 1
        || !(a->c == 1 || a->c == a->ch) || a->mh < 1 || a->mw < 1)
        return ERR_ARGS;
    rows_fn fn = curve_rows_baseline;
    if (a->isa == ISA_AVX2 || a->isa == ISA_AUTO) {
        if (rlenhance_best_isa() == ISA_AVX2) {
#if HAVE_AVX2
            fn = curve_rows_avx2;
#endif
        } else if (a->isa == ISA_AVX2) {
            return ERR_ISA;
        }
    } else if (a->isa != ISA_BASELINE) {
        return ERR_ARGS;
    }

    const int64_t w = a->w;
    int32_t *cols = malloc((size_t)w * 2 * sizeof(int32_t));
    float *weights = malloc((size_t)w * 2 * sizeof(float));
    int64_t n = a->n_threads < 1 ? 1 : a->n_threads;
    if (n > a->rows) n = a->rows;
    job_t *jobs = calloc((size_t)n, sizeof(job_t));
    int status = OK;
    if (!cols || !weights || !jobs) {
        status = ERR_MEMORY;
    } else {
        for (int64_t x = 0; x < w; x++) {
            const double sx = source_coordinate(x, w, a->mw);
            const int32_t i0 = (int32_t)sx;
            cols[x] = i0;
            cols[w + x] = i0 + 1 < a->mw ? i0 + 1 : i0;
            weights[w + x] = (float)(sx - (double)i0);
            weights[x] = 1.0f - weights[w + x];
        }
        const plan_t plan = {a, cols, cols + w, weights, weights + w};
        for (int64_t i = 0; i < n; i++) {
            jobs[i].w.p = &plan;
            jobs[i].w.row0 = a->rows * i / n;
            jobs[i].w.row1 = a->rows * (i + 1) / n;
            jobs[i].fn = fn;
        }
        if (run_jobs(run_worker, jobs, sizeof(job_t), n) != 0) status = ERR_MEMORY;
        else
            for (int64_t i = 0; i < n; i++)
                if (jobs[i].w.status != OK) status = jobs[i].w.status;
    }
    free(cols);
    free(weights);
    free(jobs);
    return status;
}
