"""A native CPU kernel for :func:`rlenhance.ops.filters.pixelrl_filter_select` (the Denoise env's step).

The torch implementation of the per-pixel filter choice is bound by op dispatch and gathers on the
CPU. This module computes the same thing in one fused C kernel: one pass over the pixels, each
pixel computing only the filter it chose from its 5x5 neighbourhood (shifts, keep, Gaussian / box
as separable row-then-column sums, the 5x5 median as a min/max network, OpenCV's bilateral filter
with the exact Gaussian or the interpolated lookup table, decided per batch as the torch code
decides). Pixels are grouped by action in blocks of rows and computed 4 (SSE2) or 8 (AVX2) at a
time; the B * H rows are split over ``torch.get_num_threads()`` POSIX threads (no OpenMP: a
second OpenMP runtime next to torch's is a known source of trouble).
:func:`~rlenhance.ops.filters.pixelrl_filter_select` calls :func:`pixelrl_select_native` for CPU
float32 input and PixelRL's default bank when :func:`available`.

Build: the kernel is plain C (no torch headers), compiled on first use with the system C
compiler (``$CC``, else ``cc``, ``gcc`` or ``clang`` on the ``PATH``; GCC >= 9 or clang) with
``-O3 -ffp-contract=off`` (no fast-math, no ``-march=native``: an AVX2 copy of the vector code
is compiled in and chosen at run time) into a shared library cached under
``$RLENHANCE_CACHE/native`` (default ``$XDG_CACHE_HOME/rlenhance/native`` or
``~/.cache/rlenhance/native``), named by a hash of the source, the flags and the compiler,
written atomically, and loaded with :mod:`ctypes` once per process. Without a compiler, when
compilation fails, or with ``RLENHANCE_NATIVE=0`` in the environment, :func:`available` is
False and :func:`unavailable_reason` says why; importing this module never compiles or raises.

Numerics against the torch path (float32): the shifts, "keep" and the median give the same
values. The Gaussian and box filters run torch's operations in torch's order, with ``a + b * c``
rounded once (an FMA) exactly where torch's CPU kernels round it once (probed at run time; its
AVX2 / AVX-512 kernels do), so they give the same values too. The bilateral filter has the same
weights, table rule and tap order but its own ``exp2`` (within 2 ulp): it differs by float
rounding, at most 5e-7 measured on values in [-0.6, 1.6]. Threads and vector widths do not
change the values. Inputs holding NaN or infinity give unspecified values (torch propagates them).

Example:
    >>> from rlenhance.ops import native
    >>> if native.available():  # doctest: +SKIP
    ...     out = native.pixelrl_select_native(torch.rand(2, 1, 16, 16), torch.randint(0, 9, (2, 1, 16, 16)))
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from rlenhance.atomic import atomic_path
from rlenhance.errors import ImageError
from rlenhance.ops.filters import (
    PIXELRL_ACTION_TABLE,
    FilterAction,
    _action_specs,
    _bilateral_exact,
    _colour_coeff,
    _disc,
    _prune,
    _sorting_network,
)

__all__ = ["available", "pixelrl_select_native", "unavailable_reason", "vector_isa"]

#: Environment variable that disables the kernel when set to one of ``_FALSE_VALUES``.
ENV_SWITCH = "RLENHANCE_NATIVE"
_FALSE_VALUES = ("0", "false", "no", "off")

#: Compiler flags. No fast-math and no FMA contraction, so that the C arithmetic is the plain
#: IEEE float arithmetic written in the source; no -march=native, so a cached library runs on
#: any machine of the same architecture.
_CFLAGS = ("-O3", "-ffp-contract=off", "-fPIC", "-shared", "-pthread", "-std=gnu11")

#: Compilers tried, in order, when ``$CC`` is not set.
_COMPILERS = ("cc", "gcc", "clang")

#: Seconds a compilation may take before it counts as failed.
_COMPILE_TIMEOUT_S = 300.0

# The kernel's action kinds (the order of the ``kind`` codes in the C source).
_KIND_KEEP, _KIND_SHIFT, _KIND_LINEAR, _KIND_MEDIAN, _KIND_BILATERAL = range(5)

#: The kernel in three parts (see :func:`_source`): declarations and ISA-independent helpers,
#: the vector code (instantiated once per vector width), and the entry point.
_C_COMMON = r"""
/* rlenhance: PixelRL's per-pixel filter choice, fused (see rlenhance/ops/native.py). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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
"""

_C_VECTOR = r"""
/* VBYTES-byte vectors of float lanes (GCC / clang vector extensions: + - * / act lane by lane). */
#define LANES (VBYTES / 4)
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define vf CAT(vf, ISA)
#define vi CAT(vi, ISA)
#define vstore CAT(vstore, ISA)
#define vload CAT(vload, ISA)
#define vfu CAT(vfu, ISA)
#define splat CAT(splat, ISA)
#define vmin CAT(vmin, ISA)
#define vmax CAT(vmax, ISA)
#define vabs CAT(vabs, ISA)
#define vselect CAT(vselect, ISA)
#define madd CAT(madd, ISA)
#define linear_sites CAT(linear_sites, ISA)
#define linear_rows_sites CAT(linear_rows_sites, ISA)
#define gather CAT(gather, ISA)
#define gather_at CAT(gather_at, ISA)
#define scatter CAT(scatter, ISA)
#define exp2_neg CAT(exp2_neg, ISA)
#define lanes CAT(lanes, ISA)
#define gather_window CAT(gather_window, ISA)
#define linear_at CAT(linear_at, ISA)
#define median25 CAT(median25, ISA)
#define median_at CAT(median_at, ISA)
#define bilateral_sites CAT(bilateral_sites, ISA)
#define bilateral_at CAT(bilateral_at, ISA)
#define process_block CAT(process_block, ISA)
#define min_max CAT(min_max, ISA)

typedef float vf __attribute__((vector_size(VBYTES)));
typedef int32_t vi __attribute__((vector_size(VBYTES)));
typedef float vfu __attribute__((vector_size(VBYTES), aligned(4), may_alias));  /* unaligned access */

static inline vf vload(const float *p) { return *(const vfu *)p; }

static inline void vstore(float *p, vf v) { *(vfu *)p = v; }

static inline vf splat(float s) {
    vf v;
    for (int l = 0; l < LANES; l++) v[l] = s;
    return v;
}

static inline vf vmin(vf a, vf b) {
#if VBYTES == 32
    return (vf)_mm256_min_ps((__m256)a, (__m256)b);
#elif VBYTES == 16 && defined(__SSE2__)
    return (vf)_mm_min_ps((__m128)a, (__m128)b);
#else
    vi m = a < b;
    return (vf)(((vi)a & m) | ((vi)b & ~m));
#endif
}

static inline vf vmax(vf a, vf b) {
#if VBYTES == 32
    return (vf)_mm256_max_ps((__m256)a, (__m256)b);
#elif VBYTES == 16 && defined(__SSE2__)
    return (vf)_mm_max_ps((__m128)a, (__m128)b);
#else
    vi m = b < a;
    return (vf)(((vi)a & m) | ((vi)b & ~m));
#endif
}

static inline vf vabs(vf a) { return (vf)((vi)a & 0x7fffffff); }

static inline vf vselect(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

/* a * b + c, rounded once (fused) or twice; `fused` is a constant where this is inlined. */
static inline __attribute__((always_inline)) vf madd(vf a, vf b, vf c, const int fused) {
    if (!fused) return a * b + c;
#if VBYTES == 32
    return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    vf r;
    for (int l = 0; l < LANES; l++) r[l] = fmaf(a[l], b[l], c[l]);
    return r;
#endif
}

/* Lane l = base[off[l]]. */
static inline vf gather(const float *base, const int32_t *off) {
    vf v;
    for (int l = 0; l < LANES; l++) v[l] = base[off[l]];
    return v;
}

/* Lane l = p[l][o]. */
static inline vf gather_at(const float *const p[LANES], int64_t o) {
    vf v;
    for (int l = 0; l < LANES; l++) v[l] = p[l][o];
    return v;
}

static inline void scatter(float *base, const int32_t *off, int32_t n, vf v) {
    for (int32_t l = 0; l < n; l++) base[off[l]] = v[l];
}

/* 2^x for x <= 0, within 2 ulp (0 below -126): 2^round(x) times the degree-7 Taylor polynomial of
   2^f = e^(f ln 2), f in [-0.5, 0.5], c_k = ln(2)^k / k!, evaluated in Estrin's scheme (a short
   dependency chain: the bilateral filter's 13 weights per pixel are latency bound otherwise). */
static inline vf exp2_neg(vf x) {
    x = vmax(x, splat(-127.0f));
    const vf r = (x + splat(12582912.0f)) - splat(12582912.0f);  /* round to nearest (1.5 * 2^23) */
    const vf f = x - r, f2 = f * f, f4 = f2 * f2;
    const vf p01 = splat(1.0f) + splat(6.9314718055994531e-01f) * f;
    const vf p23 = splat(2.4022650695910071e-01f) + splat(5.5504108664821576e-02f) * f;
    const vf p45 = splat(9.6181291076284772e-03f) + splat(1.3333558146428441e-03f) * f;
    const vf p67 = splat(1.5403530393381606e-04f) + splat(1.5252733804059838e-05f) * f;
    const vf p = (p01 + f2 * p23) + f4 * (p45 + f2 * p67);
    const vi e = (__builtin_convertvector(r, vi) + 127) << 23;  /* 2^r; 0.0f for r = -127 */
    return p * (vf)e;
}

/* Up to LANES sites from `start` (the last one repeated to fill the lanes): band and block offsets. */
static inline int32_t lanes(sites_t s, int32_t start, int32_t band[LANES], int32_t pixel[LANES]) {
    int32_t nl = s.n - start < LANES ? s.n - start : LANES;
    for (int l = 0; l < LANES; l++) {
        const int32_t *q = s.pairs + 2 * (start + (l < nl ? l : nl - 1));
        band[l] = q[0];
        pixel[l] = q[1];
    }
    return nl;
}

/* The 5x5 windows of LANES pixels (top-left offsets in the band): v[dy * 5 + dx]. */
static inline void gather_window(const float *band, int64_t wp, const int32_t off[LANES], vf v[WIN * WIN]) {
    for (int dy = 0; dy < WIN; dy++)
        for (int dx = 0; dx < WIN; dx++) v[dy * WIN + dx] = gather(band + dy * wp + dx, off);
}

/* Separable symmetric 5x5 filter: rows, then columns, taps summed in pairs, the operations of
   filters._separable_into: rows = x * t0 + (x[-1] + x[+1]) * t1 + (x[-2] + x[+2]) * t2, then the same
   down the columns, each "+ (...) * t" one torch op (fused where torch's are). */
static inline __attribute__((always_inline)) void linear_sites(const float *band, int64_t wp, sites_t s,
                                                               const float *taps, float *out, const int fused) {
    const vf t0 = splat(taps[0]), t1 = splat(taps[1]), t2 = splat(taps[2]);
    const vf c0 = splat(taps[3]), c1 = splat(taps[4]), c2 = splat(taps[5]);
    int32_t off[LANES], pix[LANES];
    vf v[WIN * WIN], rows[WIN];
    for (int32_t i = 0; i < s.n; i += LANES) {
        int32_t nl = lanes(s, i, off, pix);
        gather_window(band, wp, off, v);
        for (int dy = 0; dy < WIN; dy++) {
            const vf *r = v + dy * WIN;
            vf sum = r[2] * t0;
            sum = madd(r[1] + r[3], t1, sum, fused);
            sum = madd(r[0] + r[4], t2, sum, fused);
            rows[dy] = sum;
        }
        vf o = rows[2] * c0;
        o = madd(rows[1] + rows[3], c1, o, fused);
        o = madd(rows[0] + rows[4], c2, o, fused);
        scatter(out, pix, nl, o);
    }
}

/* The same filter for many sites of a block: the row pass on every band row (contiguous vectors;
   rows[j * w + x] for band row j, column x), then the column pass at the sites. The same operations
   on the same values as linear_sites. `rows` has room for (block rows + 2 PAD) * w + LANES floats,
   and the band LANES floats beyond its last row (the last vector of a row reads past its end). */
static inline __attribute__((always_inline)) void linear_rows_sites(
        const float *band, int64_t wp, int64_t w, int64_t band_rows, sites_t s, const float *taps, float *rows,
        float *out, const int fused) {
    const vf t0 = splat(taps[0]), t1 = splat(taps[1]), t2 = splat(taps[2]);
    const vf c0 = splat(taps[3]), c1 = splat(taps[4]), c2 = splat(taps[5]);
    vf v[WIN];
    for (int64_t j = 0; j < band_rows; j++) {
        const float *src = band + j * wp;
        float *dst = rows + j * w;
        for (int64_t x = 0; x < w; x += LANES) {
            for (int dx = 0; dx < WIN; dx++) v[dx] = vload(src + x + dx);
            vf sum = v[2] * t0;
            sum = madd(v[1] + v[3], t1, sum, fused);
            sum = madd(v[0] + v[4], t2, sum, fused);
            if (x + LANES <= w)
                vstore(dst + x, sum);
            else
                for (int64_t l = 0; x + l < w; l++) dst[x + l] = sum[l];
        }
    }
    int32_t off[LANES], pix[LANES];
    for (int32_t i = 0; i < s.n; i += LANES) {
        int32_t nl = lanes(s, i, off, pix);
        for (int dy = 0; dy < WIN; dy++) v[dy] = gather(rows + dy * w, pix);
        vf o = v[2] * c0;
        o = madd(v[1] + v[3], c1, o, fused);
        o = madd(v[0] + v[4], c2, o, fused);
        scatter(out, pix, nl, o);
    }
}

/* A separable 5x5 filter at the sites of a block of `rows` rows: the row pass on whole band rows
   where enough sites chose it (about 1 in DENSE_ROWS), else both passes at the sites. */
static void linear_at(const float *band, int64_t wp, int64_t w, int64_t rows, sites_t s, const float *taps,
                      float *row_pass, float *out, int fused) {
    if (s.n * DENSE_ROWS >= rows * w) {
        if (fused)
            linear_rows_sites(band, wp, w, rows + 2 * PAD, s, taps, row_pass, out, 1);
        else
            linear_rows_sites(band, wp, w, rows + 2 * PAD, s, taps, row_pass, out, 0);
    } else if (fused) {
        linear_sites(band, wp, s, taps, out, 1);
    } else {
        linear_sites(band, wp, s, taps, out, 0);
    }
}

/* The 5x5 median: a comparator network pruned to its middle output (generated). */
static inline vf median25(vf v[WIN * WIN]) {
    vf t;
/*MEDIAN_NETWORK*/
    (void)t;
    return v[/*MEDIAN_WIRE*/];
}

/* The 5x5 median (replicate-padded band) at the sites of a block of `rows` rows: where many sites
   chose it (DENSE_MEDIAN percent at least), at every pixel of the block from contiguous vectors
   into `dense` ((rows, w) + slack), then read at the sites; else at the sites only. */
static void median_at(const float *band, int64_t wp, int64_t w, int64_t rows, sites_t s, float *dense, float *out) {
    int32_t off[LANES], pix[LANES];
    vf v[WIN * WIN];
    if (s.n * 100 >= DENSE_MEDIAN * rows * w) {
        for (int64_t yl = 0; yl < rows; yl++)
            for (int64_t x = 0; x < w; x += LANES) {
                for (int dy = 0; dy < WIN; dy++)
                    for (int dx = 0; dx < WIN; dx++) v[dy * WIN + dx] = vload(band + (yl + dy) * wp + x + dx);
                const vf m = median25(v);
                if (x + LANES <= w)
                    vstore(dense + yl * w + x, m);
                else
                    for (int64_t l = 0; x + l < w; l++) dense[yl * w + x + l] = m[l];
            }
        for (int32_t i = 0; i < s.n; i++) out[s.pairs[2 * i + 1]] = dense[s.pairs[2 * i + 1]];
        return;
    }
    for (int32_t i = 0; i < s.n; i += LANES) {
        int32_t nl = lanes(s, i, off, pix);
        gather_window(band, wp, off, v);
        scatter(out, pix, nl, median25(v));
    }
}

/* OpenCV's float bilateral filter at the sites, all channels (see filters.py): L1 colour
   distance, weight = space * colour, sum(w * I) / sum(w) over the disc in raster order.
   `channels` is a compile-time constant (1 or 3, kept in registers) or 0 for t->c channels in `scratch`. */
static inline __attribute__((always_inline)) void bilateral_sites(
        const task_t *t, int32_t slot, int64_t image, const float *band, int64_t plane, int64_t wp, sites_t s,
        float *out, int64_t out_plane, vf *scratch, const int64_t channels) {
    const int64_t c = channels ? channels : t->c;
    const int exact = t->exact[slot];
    const float coeff = t->colour[slot];
    const vf vcoeff = splat(coeff);
    const vf scale = splat(exact ? 0.0f : t->lut_scale[image]);
    const vf bin_coeff = splat(exact ? 0.0f : coeff * t->lut_bin[image]);  /* table entry i = exp2(bin_coeff i^2) */
    vf local[3 * 3];
    vf *ctr = channels ? local : scratch, *num = ctr + c, *val = num + c;
    int32_t off[LANES], pix[LANES];
    const float *centre[LANES];
    for (int32_t i = 0; i < s.n; i += LANES) {
        int32_t nl = lanes(s, i, off, pix);
        for (int l = 0; l < LANES; l++) centre[l] = band + off[l] + PAD * wp + PAD;
        for (int64_t ch = 0; ch < c; ch++) {
            ctr[ch] = gather_at(centre, ch * plane);
            num[ch] = splat(0.0f);
        }
        vf den = splat(0.0f);
        for (int32_t tap = 0; tap < t->n_taps; tap++) {
            const int64_t o = t->tap_dy[tap] * wp + t->tap_dx[tap];
            for (int64_t ch = 0; ch < c; ch++) val[ch] = gather_at(centre, ch * plane + o);
            vf dist = vabs(val[0] - ctr[0]);
            for (int64_t ch = 1; ch < c; ch++) dist = dist + vabs(val[ch] - ctr[ch]);
            vf weight;
            if (exact) {
                /* torch.addcmul(log_space, dist^2, coeff), fused where torch's is */
                const vf log_space = splat(t->log_space[tap]);
                const vf square = dist * dist;
                weight = exp2_neg(t->fused ? madd(square, vcoeff, log_space, 1) : square * vcoeff + log_space);
            } else {  /* pos = dist * scale, i = floor(pos): lut[i] + (pos - i) (lut[i + 1] - lut[i]) */
                const vf pos = dist * scale;
                const vf low = __builtin_convertvector(__builtin_convertvector(pos, vi), vf);  /* pos >= 0 */
                const vf frac = pos - low, high = low + splat(1.0f);
                const vf a = exp2_neg((low * low) * bin_coeff), b = exp2_neg((high * high) * bin_coeff);
                const vi small = frac < splat(0.5f);  /* torch.lerp(a, b, frac), its two formulas */
                weight = t->fused ? madd(vselect(small, frac, frac - splat(1.0f)), b - a, vselect(small, a, b), 1)
                                  : vselect(small, a + frac * (b - a), b - (b - a) * (splat(1.0f) - frac));
                weight = weight * splat(t->space[tap]);
            }
            for (int64_t ch = 0; ch < c; ch++) num[ch] = num[ch] + weight * val[ch];
            den = den + weight;
        }
        for (int64_t ch = 0; ch < c; ch++) scatter(out + ch * out_plane, pix, nl, num[ch] / den);
    }
}

static void bilateral_at(const task_t *t, int32_t slot, int64_t image, const float *band, int64_t plane,
                         int64_t wp, sites_t s, float *out, int64_t out_plane, vf *scratch) {
    if (t->c == 1)
        bilateral_sites(t, slot, image, band, plane, wp, s, out, out_plane, scratch, 1);
    else if (t->c == 3)
        bilateral_sites(t, slot, image, band, plane, wp, s, out, out_plane, scratch, 3);
    else
        bilateral_sites(t, slot, image, band, plane, wp, s, out, out_plane, scratch, 0);
}

/* The smallest and largest of n > 0 values into out[0], out[1]. */
static void min_max(const float *x, int64_t n, float *out) {
    float lo = x[0], hi = x[0];
    int64_t i = 0;
    if (n >= LANES) {
        vf vlo = splat(x[0]), vhi = vlo, v;
        for (; i + LANES <= n; i += LANES) {
            v = vload(x + i);
            vlo = vmin(v, vlo);
            vhi = vmax(v, vhi);
        }
        for (int l = 0; l < LANES; l++) {
            lo = vlo[l] < lo ? vlo[l] : lo;
            hi = vhi[l] > hi ? vhi[l] : hi;
        }
    }
    for (; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    out[0] = lo;
    out[1] = hi;
}

/* Rows y0 .. y0 + rows - 1 of one image: bands, "keep" copy, grouping, then every other action. */
static void process_block(const task_t *t, scratch_t *s, int64_t image, int64_t y0, int64_t rows) {
    const int64_t c = t->c, h = t->h, w = t->w, wp = w + 2 * PAD;
    const int64_t plane = (block_rows(w) + 2 * PAD) * wp, stride = group_stride(w);
    const float *in = t->x + (image * c * h + y0) * w;  /* channel ch at + ch * h * w */
    float *out = t->out + (image * c * h + y0) * w;
    int32_t count[MAX_ACTIONS];
    for (int64_t ch = 0; ch < c; ch++) {
        const float *src = t->x + (image * c + ch) * h * w;
        fill_band(s->reflect + ch * plane, src, h, w, y0, rows, 0, s->reflect_cols);
        if (s->rep) fill_band(s->rep + ch * plane, src, h, w, y0, rows, 1, s->rep_cols);
        memcpy(out + ch * h * w, in + ch * h * w, (size_t)(rows * w) * sizeof(float));  /* "keep" */
    }
    group_by_action(t, t->actions + (image * h + y0) * w, rows, s->sites, stride, count);
    for (int32_t a = 0; a < t->k; a++) {
        const int32_t kind = t->program[2 * a], slot = t->program[2 * a + 1];
        const sites_t sites = {s->sites + a * stride, count[a]};
        if (sites.n == 0 || kind == KIND_KEEP) continue;
        if (kind == KIND_BILATERAL) {
            bilateral_at(t, slot, image, s->reflect, plane, wp, sites, out, h * w, (vf *)s->vectors);
            continue;
        }
        for (int64_t ch = 0; ch < c; ch++) {
            float *o = out + ch * h * w;
            if (kind == KIND_SHIFT) {
                const float *i = in + ch * h * w, delta = t->shift[slot];
                for (int32_t q = 0; q < sites.n; q++) o[sites.pairs[2 * q + 1]] = i[sites.pairs[2 * q + 1]] + delta;
            } else if (kind == KIND_LINEAR) {
                linear_at(s->reflect + ch * plane, wp, w, rows, sites, t->linear + 6 * slot, s->row_pass, o, t->fused);
            } else {
                median_at(s->rep + ch * plane, wp, w, rows, sites, s->row_pass, o);
            }
        }
    }
}

#undef LANES
#undef vf
#undef vi
#undef vstore
#undef vload
#undef vfu
#undef splat
#undef vmin
#undef vmax
#undef vabs
#undef vselect
#undef madd
#undef linear_sites
#undef linear_rows_sites
#undef gather
#undef gather_at
#undef scatter
#undef exp2_neg
#undef lanes
#undef gather_window
#undef linear_at
#undef median25
#undef median_at
#undef bilateral_sites
#undef bilateral_at
#undef process_block
#undef min_max
"""

_C_ENTRY = r"""
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

/* Apply the per-pixel actions; returns OK or an ERR_ code. isa: ISA_AUTO, ISA_BASELINE or ISA_AVX2. */
int rlenhance_pixelrl_select(const float *x, const int64_t *actions, float *out, int64_t b, int64_t c,
                             int64_t h, int64_t w, int32_t k, const int32_t *program, const float *shift,
                             const float *linear, const float *colour, const int32_t *exact, int32_t n_taps,
                             const int32_t *tap_dy, const int32_t *tap_dx, const float *space,
                             const float *log_space, const float *lut_scale, const float *lut_bin,
                             int32_t fused, int32_t n_threads, int32_t isa) {
    task_t t = {x, actions, out, b, c, h, w, k, program, shift, linear, colour, exact, n_taps, tap_dy, tap_dx,
                space, log_space, lut_scale, lut_bin, fused != 0, 0};
    if (!x || !actions || !out || !program || b < 1 || c < 1 || h < 1 || w < 1
        || (BLOCK_ROWS + 2 * PAD) * (w + 2 * PAD) > INT32_MAX || k < 1 || k > MAX_ACTIONS
        || n_taps < 0 || n_taps > MAX_TAPS)
        return ERR_ARGS;
    for (int32_t a = 0; a < k; a++) {
        int32_t kind = program[2 * a];
        if (kind < KIND_KEEP || kind > KIND_BILATERAL) return ERR_ARGS;
        if (kind == KIND_MEDIAN) t.has_median = 1;
        if (kind == KIND_SHIFT && !shift) return ERR_ARGS;
        if (kind == KIND_LINEAR && !linear) return ERR_ARGS;
        if (kind == KIND_BILATERAL && (!colour || !exact || !tap_dy || !tap_dx || !space || !log_space))
            return ERR_ARGS;
        if (kind == KIND_BILATERAL && !exact[program[2 * a + 1]] && (!lut_scale || !lut_bin)) return ERR_ARGS;
    }
    for (int32_t tap = 0; tap < n_taps; tap++)
        if (tap_dy[tap] < -PAD || tap_dy[tap] > PAD || tap_dx[tap] < -PAD || tap_dx[tap] > PAD) return ERR_ARGS;
    block_fn block = process_block_baseline;
    if (isa == ISA_AVX2 || isa == ISA_AUTO) {
        if (rlenhance_best_isa() == ISA_AVX2) {
#if HAVE_AVX2
            block = process_block_avx2;
#endif
        } else if (isa == ISA_AVX2) {
            return ERR_ISA;
        }
    } else if (isa != ISA_BASELINE) {
        return ERR_ARGS;
    }

    const int64_t rows = b * h;
    int64_t n = n_threads < 1 ? 1 : n_threads;
    if (n > rows) n = rows;
    job_t *jobs = calloc((size_t)n, sizeof(job_t));
    pthread_t *threads = calloc((size_t)n, sizeof(pthread_t));
    char *started = calloc((size_t)n, 1);
    int status = OK;
    if (!jobs || !threads || !started) {
        status = ERR_MEMORY;
    } else {
        for (int64_t i = 0; i < n; i++) {
            jobs[i].w.t = &t;
            jobs[i].w.row0 = rows * i / n;
            jobs[i].w.row1 = rows * (i + 1) / n;
            jobs[i].block = block;
        }
        for (int64_t i = 1; i < n; i++) started[i] = pthread_create(&threads[i], NULL, run_worker, &jobs[i]) == 0;
        run_worker(&jobs[0]);
        for (int64_t i = 1; i < n; i++) {
            if (started[i]) pthread_join(threads[i], NULL);
            else run_worker(&jobs[i]);  /* no thread could be started: run it here */
        }
        for (int64_t i = 0; i < n; i++)
            if (jobs[i].w.status != OK) status = jobs[i].w.status;
    }
    free(jobs);
    free(threads);
    free(started);
    return status;
}
"""

#: The median's window size and the rank it outputs (the kernel's windows are 5x5).
_MEDIAN_KSIZE = 5
_MEDIAN_RANK = _MEDIAN_KSIZE * _MEDIAN_KSIZE // 2

#: The kernel's vector-width choices, index = code (``isa`` argument and ``rlenhance_best_isa`` result).
_ISAS = ("auto", "baseline", "avx2")

#: The kernel's status codes, index = code.
_STATUS = ("ok", "invalid arguments", "out of memory", "AVX2 requested but not available")


@functools.cache
def _source() -> str:
    """The kernel's C source.

    The vector code is instantiated twice: with 16-byte vectors (SSE2 on x86-64, the baseline)
    and, with GCC on x86-64, with 32-byte vectors in functions compiled for AVX2, which the entry
    point picks at run time where the CPU has AVX2 (the same IEEE operations lane by lane, so the
    same results). The 5x5 median network is written out, one line per comparator, so that the
    compiler keeps the window in registers: Batcher's odd-even merge sort of the 25 values pruned
    to the comparators the middle output depends on (filters.py's helpers; 113 comparators).
    """
    network, _ = _prune(_sorting_network(_MEDIAN_KSIZE * _MEDIAN_KSIZE), [_MEDIAN_RANK])
    lines = []
    for i, j, need_min, need_max in network:
        if need_min and need_max:
            lines.append(f"    t = vmin(v[{i}], v[{j}]); v[{j}] = vmax(v[{i}], v[{j}]); v[{i}] = t;")
        elif need_min:
            lines.append(f"    v[{i}] = vmin(v[{i}], v[{j}]);")
        else:
            lines.append(f"    v[{j}] = vmax(v[{i}], v[{j}]);")
    vector = _C_VECTOR.replace("/*MEDIAN_NETWORK*/", "\n".join(lines)).replace("/*MEDIAN_WIRE*/", str(_MEDIAN_RANK))
    return "\n".join([
        _C_COMMON,
        "#define ISA _baseline", "#define VBYTES 16", vector, "#undef ISA", "#undef VBYTES",
        "#if HAVE_AVX2", "#pragma GCC push_options", '#pragma GCC target("avx2,fma")',
        "#define ISA _avx2", "#define VBYTES 32", vector, "#undef ISA", "#undef VBYTES",
        "#pragma GCC pop_options", "#endif",
        _C_ENTRY,
    ])


# ----------------------------------------------------------------------------- build and load


@dataclass(frozen=True)
class _Library:
    """The loaded kernel (``select`` None when unavailable, with ``reason`` saying why).

    Attributes:
        select: The entry point ``rlenhance_pixelrl_select`` (a ctypes function).
        min_max: ``rlenhance_min_max`` (a ctypes function).
        best_isa: The vector width the kernel picks by itself: "avx2" or "baseline".
        reason: Why the kernel is unavailable.
        path: The shared library.
    """

    select: Callable[..., int] | None
    min_max: Callable[..., None] | None = None
    best_isa: str | None = None
    reason: str | None = None
    path: Path | None = None


def _cache_dir() -> Path:
    """Where compiled libraries are kept: ``$RLENHANCE_CACHE/native``, else the user cache folder
    (``$XDG_CACHE_HOME/rlenhance/native`` or ``~/.cache/rlenhance/native``)."""
    root = os.environ.get("RLENHANCE_CACHE")
    if root:
        return Path(root).expanduser() / "native"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rlenhance" / "native"


def _find_compiler() -> list[str] | None:
    """The compiler command: ``$CC`` (may hold arguments) or the first of ``_COMPILERS`` found."""
    env = os.environ.get("CC", "").strip()
    if env:
        command = shlex.split(env)
        found = shutil.which(command[0])
        return [found, *command[1:]] if found else None
    for name in _COMPILERS:
        found = shutil.which(name)
        if found:
            return [found]
    return None


def _compiler_identity(compiler: list[str]) -> str:
    """The compiler's command and ``--version`` banner, part of the cache key."""
    try:
        banner = subprocess.run([*compiler, "--version"], capture_output=True, text=True,
                                timeout=_COMPILE_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        banner = f"unknown ({exc})"
    return " ".join(compiler) + "\n" + banner


def _bind(path: Path) -> _Library:
    """Load the library at ``path`` and declare its functions' C signatures."""
    lib = ctypes.CDLL(str(path))
    select = lib.rlenhance_pixelrl_select
    ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32
    select.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, i32, ptr, ptr, ptr, ptr, ptr, i32, ptr, ptr, ptr, ptr,
                       ptr, ptr, i32, i32, i32]
    select.restype = ctypes.c_int
    min_max = lib.rlenhance_min_max
    min_max.argtypes = [ptr, i64, i64, ptr]
    min_max.restype = None
    best = lib.rlenhance_best_isa
    best.argtypes = []
    best.restype = ctypes.c_int
    code = best()
    return _Library(select, min_max, _ISAS[code] if 0 < code < len(_ISAS) else "baseline", None, path)


class _CompileError(Exception):
    """A compiler run that failed (internal: becomes the unavailability reason)."""


def _compile(compiler: list[str], target: Path) -> str | None:
    """Compile the kernel into ``target`` (written atomically); returns None, or why it failed."""
    command = " ".join(compiler)
    try:
        with tempfile.TemporaryDirectory(prefix="rlenhance-native-") as folder:
            source = Path(folder) / "pixelrl_select.c"
            source.write_text(_source(), encoding="utf-8")
            with atomic_path(target) as tmp:
                result = subprocess.run([*compiler, *_CFLAGS, "-o", str(tmp), str(source), "-lm"],
                                        capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_S)
                if result.returncode != 0:
                    message = (result.stderr or result.stdout).strip()[-2000:]
                    raise _CompileError(f"{command} exited with status {result.returncode}"
                                        + (f": {message}" if message else ""))
    except _CompileError as exc:
        return str(exc)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"compiling the native kernel with {command} into {target.parent} failed: {exc}"
    return None


@functools.cache
def _library() -> _Library:
    """Compile (once per source, flags and compiler; cached on disk) and load the kernel. Never raises."""
    compiler = _find_compiler()
    if compiler is None:
        cc = os.environ.get("CC", "").strip()
        return _Library(None, reason=f"no C compiler: $CC={cc!r} is not an executable" if cc
                        else f"no C compiler found (set $CC, or put one of {', '.join(_COMPILERS)} on the PATH)")
    key = hashlib.sha256("\0".join([_source(), " ".join(_CFLAGS), _compiler_identity(compiler)]).encode())
    target = _cache_dir() / f"pixelrl_select-{key.hexdigest()[:24]}.so"
    if target.is_file():
        try:
            return _bind(target)
        except (OSError, AttributeError):
            pass  # unreadable or truncated: build it again
    reason = _compile(compiler, target)
    if reason is not None:
        return _Library(None, reason=reason)
    try:
        return _bind(target)
    except (OSError, AttributeError) as exc:
        return _Library(None, reason=f"the compiled kernel {target} cannot be loaded: {exc}")


def _disabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() in _FALSE_VALUES


def available() -> bool:
    """Whether the native kernel can be used; compiles (or finds in the cache) and loads it on the first call.

    False when ``RLENHANCE_NATIVE=0`` is set (read on every call), when no C compiler is found, or
    when compiling or loading failed; :func:`unavailable_reason` says which. Never raises.
    """
    return not _disabled() and _library().select is not None


def unavailable_reason() -> str | None:
    """Why :func:`available` is False, or None when the kernel is available."""
    if _disabled():
        return f"disabled by {ENV_SWITCH}={os.environ.get(ENV_SWITCH)!r}"
    return _library().reason


def vector_isa() -> str | None:
    """The vector width the kernel runs with by default: "avx2" or "baseline" (SSE2 on x86-64,
    the compiler's generic vectors elsewhere); None when it is unavailable."""
    return _library().best_isa if available() else None


# ----------------------------------------------------------------------------- the kernel's parameters


@dataclass(frozen=True)
class _Plan:
    """A filter bank as the kernel's parameters (int32 / float32 CPU tensors, kept alive here).

    Attributes:
        program: (K, 2) kind code and slot per action.
        shift: Per shift slot, the delta.
        linear: Per linear slot, centre-first row taps then column taps (6 values).
        colour: Per bilateral slot, :func:`filters._colour_coeff` of its colour sigma.
        sigma_colors, bins: Per bilateral slot, the colour sigma; the table bins per channel.
        taps_dy, taps_dx, space, log_space: The bilateral disc (raster order), its spatial weights
            and their log2.
    """

    program: torch.Tensor
    shift: torch.Tensor
    linear: torch.Tensor
    colour: torch.Tensor
    sigma_colors: tuple[float, ...]
    bins: int
    taps_dy: torch.Tensor
    taps_dx: torch.Tensor
    space: torch.Tensor
    log_space: torch.Tensor


@functools.lru_cache(maxsize=8)
def _plan(table: tuple[FilterAction, ...]) -> _Plan | None:
    """The kernel's parameters for a bank, or None when the kernel cannot compute it (an op other
    than shift, keep, 5x5 separable Gaussian / box, 5x5 median and bilateral of radius <= 2, or
    bilateral actions with different supports or tables)."""
    specs, _ = _action_specs(table)
    program, shift, linear, colour, sigmas, supports = [], [], [], [], [], set()
    for spec in specs:
        if spec.kind == "identity":
            program.append((_KIND_KEEP, 0))
        elif spec.kind == "shift":
            program.append((_KIND_SHIFT, len(shift)))
            shift.append(spec.params[0])
        elif spec.kind == "linear" and all(len(taps) == 3 for taps in spec.params[0]):
            program.append((_KIND_LINEAR, len(linear) // 6))
            linear += [*spec.params[0][0], *spec.params[0][1]]
        elif spec.kind == "median" and spec.params[0] == _MEDIAN_KSIZE:
            program.append((_KIND_MEDIAN, 0))
        elif spec.kind == "bilateral" and max(spec.params[0] // 2, 1) <= 2:
            d, sigma_color, sigma_space, bins = spec.params
            supports.add((max(d // 2, 1), float(sigma_space), bins))
            program.append((_KIND_BILATERAL, len(sigmas)))
            sigmas.append(sigma_color)
            colour.append(_colour_coeff(sigma_color))
        else:
            return None
    if len(supports) > 1:
        return None
    radius, sigma_space, bins = supports.pop() if supports else (1, 1.0, 1)
    disc = _disc(radius)
    space_coeff = -0.5 / (sigma_space * sigma_space)
    space = [math.exp((dy * dy + dx * dx) * space_coeff) for dy, dx in disc]  # as filters._bilateral_at

    def ints(values: list) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int32)

    def floats(values: list) -> torch.Tensor:
        return torch.tensor(values or [0.0], dtype=torch.float32)

    return _Plan(program=ints(program), shift=floats(shift), linear=floats(linear), colour=floats(colour),
                 sigma_colors=tuple(sigmas), bins=bins, taps_dy=ints([dy for dy, _ in disc]),
                 taps_dx=ints([dx for _, dx in disc]), space=floats(space),
                 log_space=floats([math.log2(v) for v in space]))


def _ranges(lows: list[float], highs: list[float]) -> list[float]:
    """Per-image value ranges from per-image min / max, by filters._value_ranges' rule (a flat image counts as 1)."""
    eps = torch.finfo(torch.float32).eps
    return [1.0 if abs(hi - lo) < eps else hi - lo for lo, hi in zip(lows, highs)]


def _lookup_tables(x: torch.Tensor, plan: _Plan, library: _Library) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                             torch.Tensor | None]:
    """Per bilateral slot, whether it uses the exact Gaussian (int32), and if any does not, OpenCV's
    table constants per image (float32 (B,): bins per unit distance and 1 / that^2), all decided
    and computed as in :func:`rlenhance.ops.filters._plan` / ``_bilateral_at``."""
    if not plan.sigma_colors:
        return torch.ones(1, dtype=torch.int32), None, None
    b, c = x.shape[:2]
    lo_hi = torch.empty(b, 2, dtype=torch.float32)
    library.min_max(x.data_ptr(), b, x[0].numel(), lo_hi.data_ptr())  # one thread, no OpenMP region
    lows, highs = lo_hi.t().tolist()
    bound = max(highs) - min(lows)  # the batch's range, >= every image's
    exact = [_bilateral_exact(bound, s, plan.bins) for s in plan.sigma_colors]
    if all(exact):
        return torch.ones(len(exact), dtype=torch.int32), None, None
    ranges = _ranges(lows, highs)
    exact = [e or _bilateral_exact(max(ranges), s, plan.bins) for e, s in zip(exact, plan.sigma_colors)]
    length = torch.tensor(ranges, dtype=torch.float64).to(torch.float32) * c
    scale = plan.bins * c / length
    bin_coeff = (1.0 / scale.double() ** 2).to(torch.float32)
    return torch.tensor(exact, dtype=torch.int32), scale.contiguous(), bin_coeff.contiguous()


@functools.cache
def _torch_fuses_multiply_add() -> bool:
    """Whether torch's CPU ``add(alpha=)`` / ``addcmul`` round ``a + b * c`` once (an FMA), as its AVX2
    and AVX-512 kernels do; the kernel then does the same and its Gaussian and box filters give
    torch's values exactly. Probed on values where one and two roundings differ."""
    b = torch.full((64,), 1.0 + 2.0 ** -12)  # b * b = 1 + 2^-11 + 2^-24: a tie, rounded down to even
    fused = torch.add(torch.full((64,), -(1.0 + 2.0 ** -11)), b, alpha=1.0 + 2.0 ** -12)
    return bool((fused == 2.0 ** -24).all())


# ----------------------------------------------------------------------------- the op


def pixelrl_select_native(x: torch.Tensor, actions: torch.Tensor, *, num_threads: int | None = None,
                          min_pixels_per_thread: int = 4096, isa: str = "auto") -> torch.Tensor:
    """PixelRL's per-pixel filter choice (:data:`PIXELRL_ACTION_TABLE`) with the native kernel.

    The result of :func:`rlenhance.ops.filters.pixelrl_filter_select` (which calls this for CPU
    float32 input when :func:`available`) up to float rounding, see the module notes.

    Args:
        x: Image batch, float32 CPU tensor of shape (B, C, H, W), values in [0, 1] (values outside,
            e.g. an unclipped noisy start, are fine). Made contiguous if it is not.
        actions: Integer CPU tensor of shape (B, H, W), (B, 1, H, W) or, for C = 1, (B, C, H, W):
            one action id in [0, 8] per pixel, shared by the channels. Not validated: a pixel with
            an id outside [0, 8] keeps its value.
        num_threads: Threads splitting the B * H rows; default ``torch.get_num_threads()``.
        min_pixels_per_thread: Fewer threads are used where each would get fewer pixels than this
            (starting a thread costs about as much as filtering a few thousand pixels).
        isa: Vector width: "auto" (AVX2 where the CPU has it, see :func:`vector_isa`), "baseline"
            or "avx2" (an error where unavailable). All give the same values.

    Returns:
        The new batch, float32 (B, C, H, W), contiguous.

    Raises:
        ImageError: ``x`` is not a non-empty float32 CPU (B, C, H, W) tensor.
        ValueError: ``actions`` is not an integer CPU tensor of an accepted shape, or ``isa`` or
            ``num_threads`` is invalid.
        RuntimeError: the kernel is unavailable (see :func:`unavailable_reason`) or failed.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.dtype != torch.float32 or x.device.type != "cpu" \
            or x.numel() == 0:
        got = f"a {x.dtype} {x.device.type} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) \
            else type(x).__name__
        raise ImageError(f"x must be a non-empty float32 CPU tensor of shape (B, C, H, W); got {got}")
    b, c, h, w = x.shape
    shapes = [(b, h, w), (b, 1, h, w)] + ([(b, c, h, w)] if c == 1 else [])
    if not isinstance(actions, torch.Tensor) or actions.is_floating_point() or actions.is_complex() \
            or actions.dtype == torch.bool or actions.device.type != "cpu" or tuple(actions.shape) not in shapes:
        got = f"a {actions.dtype} {actions.device.type} tensor of shape {tuple(actions.shape)}" \
            if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise ValueError(f"actions must be an integer CPU tensor of shape {' or '.join(map(str, shapes))}; got {got}")
    if isa not in _ISAS:
        raise ValueError(f"isa must be one of {', '.join(map(repr, _ISAS))}; got {isa!r}")
    threads = torch.get_num_threads() if num_threads is None else num_threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"num_threads must be a positive int or None; got {num_threads!r}")
    library = None if _disabled() else _library()
    if library is None or library.select is None:
        raise RuntimeError(f"the native PixelRL kernel is unavailable: {unavailable_reason()}")
    plan = _plan(PIXELRL_ACTION_TABLE)
    if plan is None:
        raise RuntimeError("the native PixelRL kernel cannot compute PIXELRL_ACTION_TABLE's filters")

    x = x.contiguous()
    actions = actions.to(torch.int64).contiguous()
    out = torch.empty_like(x)
    exact, scale, bin_coeff = _lookup_tables(x, plan, library)
    threads = max(1, min(threads, b * h * w // max(1, min_pixels_per_thread)))

    def ptr(t: torch.Tensor | None) -> int | None:
        return None if t is None else t.data_ptr()

    status = library.select(ptr(x), ptr(actions), ptr(out), b, c, h, w, len(plan.program), ptr(plan.program),
                            ptr(plan.shift), ptr(plan.linear), ptr(plan.colour), ptr(exact), len(plan.taps_dy),
                            ptr(plan.taps_dy), ptr(plan.taps_dx), ptr(plan.space), ptr(plan.log_space), ptr(scale),
                            ptr(bin_coeff), int(_torch_fuses_multiply_add()), threads, _ISAS.index(isa))
    if status != 0:
        reason = _STATUS[status] if 0 < status < len(_STATUS) else f"status {status}"
        raise RuntimeError(f"the native PixelRL kernel failed: {reason}")
    return out
