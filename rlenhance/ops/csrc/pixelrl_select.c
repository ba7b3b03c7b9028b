/* rlenhance: PixelRL's per-pixel filter choice, fused: the native kernel of rlenhance/ops/native.py.

   Plain C (GCC >= 9 or clang; no torch headers), compiled on first use by native.py with
   -O3 -ffp-contract=off (no fast-math, no FMA contraction, no -march=native) into a shared library
   loaded with ctypes. native.py declares the C signatures of the functions exported at the end of
   this file (rlenhance_best_isa, rlenhance_min_max, rlenhance_select_args_size and
   rlenhance_pixelrl_select, whose arguments come as one select_args_t): keep the two in step.
   native.py's docstring says what the kernel computes and how it matches the torch path. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9
#define HAVE_AVX2 1      /* a second copy of the vector code, for CPUs with AVX2 and FMA (chosen at run time) */
#include <immintrin.h>
#else
#define HAVE_AVX2 0
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define PAD 2            /* border of the padded bands: every window is at most 5x5 */
#define WIN 5            /* window width of the linear filters and the median */
#define BLOCK_ROWS 16    /* image rows per padded band at most ... */
#define BLOCK_PIXELS 4096  /* ... and about this many pixels (one row at least) */
#define SLACK 8          /* floats past the end of a buffer that a vector (8 lanes at most) may read */
#define DENSE_ROWS 16    /* a linear filter chosen by 1 in DENSE_ROWS pixels of a block gets whole-row passes */
#define DENSE_MEDIAN 35  /* the median chosen by this many percent of a block's pixels is computed at all */
#define MAX_ACTIONS 64
#define MAX_TAPS 25

enum { KIND_KEEP = 0, KIND_SHIFT = 1, KIND_LINEAR = 2, KIND_MEDIAN = 3, KIND_BILATERAL = 4 };
enum { OK = 0, ERR_ARGS = 1, ERR_MEMORY = 2, ERR_ISA = 3 };
enum { ISA_AUTO = 0, ISA_BASELINE = 1, ISA_AVX2 = 2 };

typedef struct {
    const float *x;           /* (B, C, H, W) */
    const int64_t *actions;   /* (B, H, W) */
    float *out;               /* (B, C, H, W) */
    int64_t b, c, h, w;
    int32_t k;                /* number of actions */
    const int32_t *program;   /* (k, 2): kind, slot */
    const float *shift;       /* per shift slot: delta */
    const float *linear;      /* per linear slot: row taps t0 t1 t2, column taps c0 c1 c2 (centre first) */
    const float *colour;      /* per bilateral slot: colour coefficient (weight = exp2(coeff * dist^2)) */
    const int32_t *exact;     /* per bilateral slot: 1 exact Gaussian, 0 OpenCV's interpolated table */
    int32_t n_taps;           /* bilateral disc, raster order */
    const int32_t *tap_dy, *tap_dx;
    const float *space, *log_space;      /* per tap: spatial weight and its log2 */
    const float *lut_scale, *lut_bin;    /* per image: table bins per unit distance, 1 / scale^2 */
    int fused;                /* accumulate a + b * c with one rounding (fma), as torch's add(alpha=) / addcmul */
    int has_median;
} task_t;

typedef struct {
    const task_t *t;
    int64_t row0, row1;       /* rows b * H + y of this worker */
    int status;
} worker_t;

/* The pixels of one action in a block, as pairs (window top-left in the band, pixel in the block). */
typedef struct {
    const int32_t *pairs;
    int32_t n;
} sites_t;

static int64_t reflect101(int64_t i, int64_t n) {
    if (n == 1) return 0;
    int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i >= n ? period - i : i;
}

static int64_t replicate(int64_t i, int64_t n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* Source columns of the 2 PAD border columns of a padded row (left ones, then right ones). */
static void border_columns(int64_t w, int rep, int64_t cols[2 * PAD]) {
    for (int64_t i = 0; i < PAD; i++) {
        cols[i] = rep ? replicate(i - PAD, w) : reflect101(i - PAD, w);
        cols[PAD + i] = rep ? replicate(w + i, w) : reflect101(w + i, w);
    }
}

/* Rows y0 - PAD .. y0 + rows + PAD - 1 of one image plane, padded by PAD columns on each side. */
static void fill_band(float *band, const float *plane, int64_t h, int64_t w, int64_t y0, int64_t rows, int rep,
                      const int64_t cols[2 * PAD]) {
    int64_t wp = w + 2 * PAD;
    for (int64_t j = 0; j < rows + 2 * PAD; j++) {
        int64_t y = y0 - PAD + j;
        int64_t sy = y >= 0 && y < h ? y : rep ? replicate(y, h) : reflect101(y, h);
        const float *src = plane + sy * w;
        float *dst = band + j * wp;
        memcpy(dst + PAD, src, (size_t)w * sizeof(float));
        for (int64_t i = 0; i < PAD; i++) {
            dst[i] = src[cols[i]];
            dst[PAD + w + i] = src[cols[PAD + i]];
        }
    }
}

/* Scratch of one worker. */
typedef struct {
    float *reflect, *rep;     /* padded bands, (C, block_rows(W) + 2 PAD, W + 2 PAD) + slack: reflect-101, replicate */
    float *row_pass;          /* a linear filter's row pass or a dense median, (block_rows(W) + 2 PAD, W) + slack */
    int32_t *sites;           /* a block's pixels grouped by action: k + 1 groups of group_stride(W) */
    void *vectors;            /* 3 C vectors (bilateral of C channels) */
    int64_t reflect_cols[2 * PAD], rep_cols[2 * PAD];  /* see border_columns */
} scratch_t;

/* Image rows per block for width w. */
static int64_t block_rows(int64_t w) {
    int64_t rows = BLOCK_PIXELS / w;
    return rows < 1 ? 1 : rows > BLOCK_ROWS ? BLOCK_ROWS : rows;
}

/* Pixels are grouped by action into SPLIT sub-groups by column (x % SPLIT): consecutive pixels then
   never advance the same write pointer, which the CPU would otherwise have to order through memory. */
#define SPLIT 4

/* Pairs (band offset, block offset) one sub-group holds at most: ceil(w / SPLIT) per row. */
static int64_t split_pairs(int64_t w) { return block_rows(w) * ((w + SPLIT - 1) / SPLIT); }

/* int32 values from one action's sites to the next: SPLIT sub-groups, plus one cache line so that
   the groups (written at once) do not start 4 KiB apart (in the same cache sets). */
static int64_t group_stride(int64_t w) { return 2 * SPLIT * split_pairs(w) + 16; }

/* Group a block's pixels by action in one pass without branches: action a's count[a] pixels end up
   as pairs at sites + a * stride; those of "keep" and of ids out of [0, k) go to group k, which is
   not used (their pixels keep their values). */
static void group_by_action(const task_t *t, const int64_t *restrict act, int64_t rows, int32_t *restrict sites,
                            int64_t stride, int32_t count[MAX_ACTIONS]) {
    const int64_t w = t->w, wp = w + 2 * PAD, k = t->k, split = 2 * split_pairs(w);
    int32_t group[MAX_ACTIONS + 1];
    int32_t *next[SPLIT][MAX_ACTIONS + 1];
    for (int64_t a = 0; a <= k; a++) {
        group[a] = a == k || t->program[2 * a] == KIND_KEEP ? (int32_t)k : (int32_t)a;
        for (int r = 0; r < SPLIT; r++) next[r][a] = sites + a * stride + r * split;
    }
#define GROUP_PIXEL(x, r)                                                    \
    do {                                                                     \
        const uint64_t id = (uint64_t)act[yl * w + (x)];                     \
        const int32_t g = group[id < (uint64_t)k ? id : (uint64_t)k];        \
        int32_t *q = next[r][g];                                             \
        q[0] = (int32_t)(yl * wp + (x));                                     \
        q[1] = (int32_t)(yl * w + (x));                                      \
        next[r][g] = q + 2;                                                  \
    } while (0)
    for (int64_t yl = 0; yl < rows; yl++) {
        int64_t x = 0;
        for (; x + SPLIT <= w; x += SPLIT)
            for (int r = 0; r < SPLIT; r++) GROUP_PIXEL(x + r, r);
        for (int r = 0; x + r < w; r++) GROUP_PIXEL(x + r, r);
    }
#undef GROUP_PIXEL
    for (int64_t a = 0; a < k; a++) {  /* the sub-groups one after the other */
        int32_t *end = next[0][a];
        for (int r = 1; r < SPLIT; r++) {
            const int32_t *from = sites + a * stride + r * split;
            const size_t len = (size_t)(next[r][a] - from);
            memmove(end, from, len * sizeof(int32_t));
            end += len;
        }
        count[a] = (int32_t)((end - (sites + a * stride)) / 2);
    }
}

/* The vector code (pixelrl_select_vector.h), instantiated twice: with 16-byte vectors (SSE2 on
   x86-64, the baseline) and, with GCC on x86-64, with 32-byte vectors in functions compiled for
   AVX2, which the entry point picks at run time where the CPU has AVX2 (the same IEEE operations
   lane by lane, so the same results). */
#define ISA _baseline
#define VBYTES 16
#include "pixelrl_select_vector.h"
#undef ISA
#undef VBYTES
#if HAVE_AVX2
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define ISA _avx2
#define VBYTES 32
#include "pixelrl_select_vector.h"
#undef ISA
#undef VBYTES
#pragma GCC pop_options
#endif

/* The vector width a call runs with: ISA_AVX2 where compiled in and the CPU has it, else ISA_BASELINE. */
int rlenhance_best_isa(void) {
#if HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
#endif
    return ISA_BASELINE;
}

/* Smallest and largest value of each of b images of n values: out[2 i], out[2 i + 1]. */
void rlenhance_min_max(const float *x, int64_t b, int64_t n, float *out) {
    void (*fn)(const float *, int64_t, float *) = min_max_baseline;
#if HAVE_AVX2
    if (rlenhance_best_isa() == ISA_AVX2) fn = min_max_avx2;
#endif
    for (int64_t i = 0; i < b; i++) fn(x + i * n, n, out + 2 * i);
}

typedef void (*block_fn)(const task_t *, scratch_t *, int64_t, int64_t, int64_t);

typedef struct {
    worker_t w;
    block_fn block;
} job_t;

static void *run_worker(void *arg) {
    job_t *job = (job_t *)arg;
    worker_t *wk = &job->w;
    const task_t *t = wk->t;
    const int64_t c = t->c, h = t->h, w = t->w;
    const int64_t plane = (block_rows(w) + 2 * PAD) * (w + 2 * PAD);
    scratch_t s = {NULL, NULL, NULL, NULL, NULL, {0}, {0}};
    wk->status = OK;
    border_columns(w, 0, s.reflect_cols);
    border_columns(w, 1, s.rep_cols);
    /* zeroed: whole-row passes read up to SLACK floats past a band row (into values they discard) */
    s.reflect = calloc((size_t)(c * plane + SLACK), sizeof(float));
    s.rep = t->has_median ? calloc((size_t)(c * plane + SLACK), sizeof(float)) : NULL;
    s.row_pass = malloc((size_t)((block_rows(w) + 2 * PAD) * w + SLACK) * sizeof(float));
    s.sites = malloc((size_t)((t->k + 1) * group_stride(w)) * sizeof(int32_t));
    if (posix_memalign(&s.vectors, 64, (size_t)(3 * c) * 32) != 0) s.vectors = NULL;
    if (!s.reflect || (t->has_median && !s.rep) || !s.row_pass || !s.sites || !s.vectors) {
        wk->status = ERR_MEMORY;
    } else {
        for (int64_t row = wk->row0; row < wk->row1;) {
            const int64_t image = row / h, y0 = row % h;
            int64_t rows = h - y0;
            if (rows > block_rows(w)) rows = block_rows(w);
            if (rows > wk->row1 - row) rows = wk->row1 - row;
            job->block(t, &s, image, y0, rows);
            row += rows;
        }
    }
    free(s.reflect);
    free(s.rep);
    free(s.row_pass);
    free(s.sites);
    free(s.vectors);
    return NULL;
}

/* The arguments of rlenhance_pixelrl_select. native.py mirrors this struct field by field (_SelectArgs,
   a ctypes.Structure) and checks its size against rlenhance_select_args_size(): keep the two in step. */
typedef struct {
    const float *x;           /* (B, C, H, W) */
    const int64_t *actions;   /* (B, H, W): one action id per pixel; ids outside [0, k) keep the pixel */
    float *out;               /* (B, C, H, W) */
    int64_t b, c, h, w;
    int32_t k;                /* number of actions, at most MAX_ACTIONS */
    const int32_t *program;   /* program ... lut_bin: as in task_t */
    const float *shift;
    const float *linear;
    const float *colour;
    const int32_t *exact;
    int32_t n_taps;           /* at most MAX_TAPS, every tap within PAD of the centre */
    const int32_t *tap_dy, *tap_dx;
    const float *space, *log_space;
    const float *lut_scale, *lut_bin;    /* NULL where every bilateral slot is exact */
    int32_t fused;            /* nonzero: accumulate a + b * c with one rounding, see task_t */
    int32_t n_threads;        /* threads splitting the B * H rows (1 if < 1, at most B * H) */
    int32_t isa;              /* ISA_AUTO, ISA_BASELINE or ISA_AVX2 */
} select_args_t;

/* sizeof(select_args_t): native.py checks its mirror of the struct against it on loading. */
int64_t rlenhance_select_args_size(void) { return (int64_t)sizeof(select_args_t); }

/* Apply the per-pixel actions; returns OK or an ERR_ code. */
int rlenhance_pixelrl_select(const select_args_t *a) {
    if (!a) return ERR_ARGS;
    task_t t = {a->x, a->actions, a->out, a->b, a->c, a->h, a->w, a->k, a->program, a->shift, a->linear, a->colour,
                a->exact, a->n_taps, a->tap_dy, a->tap_dx, a->space, a->log_space, a->lut_scale, a->lut_bin,
                a->fused != 0, 0};
    if (!t.x || !t.actions || !t.out || !t.program || t.b < 1 || t.c < 1 || t.h < 1 || t.w < 1
        || (BLOCK_ROWS + 2 * PAD) * (t.w + 2 * PAD) > INT32_MAX || t.k < 1 || t.k > MAX_ACTIONS
        || t.n_taps < 0 || t.n_taps > MAX_TAPS)
        return ERR_ARGS;
    for (int32_t i = 0; i < t.k; i++) {
        int32_t kind = t.program[2 * i];
        if (kind < KIND_KEEP || kind > KIND_BILATERAL) return ERR_ARGS;
        if (kind == KIND_MEDIAN) t.has_median = 1;
        if (kind == KIND_SHIFT && !t.shift) return ERR_ARGS;
        if (kind == KIND_LINEAR && !t.linear) return ERR_ARGS;
        if (kind == KIND_BILATERAL && (!t.colour || !t.exact || !t.tap_dy || !t.tap_dx || !t.space || !t.log_space))
            return ERR_ARGS;
        if (kind == KIND_BILATERAL && !t.exact[t.program[2 * i + 1]] && (!t.lut_scale || !t.lut_bin)) return ERR_ARGS;
    }
    for (int32_t tap = 0; tap < t.n_taps; tap++)
        if (t.tap_dy[tap] < -PAD || t.tap_dy[tap] > PAD || t.tap_dx[tap] < -PAD || t.tap_dx[tap] > PAD)
            return ERR_ARGS;
    block_fn block = process_block_baseline;
    if (a->isa == ISA_AVX2 || a->isa == ISA_AUTO) {
        if (rlenhance_best_isa() == ISA_AVX2) {
#if HAVE_AVX2
            block = process_block_avx2;
#endif
        } else if (a->isa == ISA_AVX2) {
            return ERR_ISA;
        }
    } else if (a->isa != ISA_BASELINE) {
        return ERR_ARGS;
    }

    const int64_t rows = t.b * t.h;
    int64_t n = a->n_threads < 1 ? 1 : a->n_threads;
    if (n > rows) n = rows;
    job_t *jobs = calloc((size_t)n, sizeof(job_t));
    int status = OK;
    if (!jobs) {
        status = ERR_MEMORY;
    } else {
        for (int64_t i = 0; i < n; i++) {
            jobs[i].w.t = &t;
            jobs[i].w.row0 = rows * i / n;
            jobs[i].w.row1 = rows * (i + 1) / n;
            jobs[i].block = block;
        }
        if (run_jobs(run_worker, jobs, sizeof(job_t), n) != 0) status = ERR_MEMORY;
        else
            for (int64_t i = 0; i < n; i++)
                if (jobs[i].w.status != OK) status = jobs[i].w.status;
    }
    free(jobs);
    return status;
}
