/* rlenhance: the vector code of pixelrl_select.c, instantiated once per vector width.

   pixelrl_select.c includes this file twice, with ISA (the suffix of every name defined here:
   _baseline, _avx2) and VBYTES (the vector size in bytes: 16, 32) defined; so no include guard.
   Everything here is static, and every name is suffixed with ISA by the macros below. */

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

/* The 5x5 median: Batcher's odd-even merge sort of the 25 window values, pruned to the comparators
   that the middle output (wire 12) depends on: 113 comparators, one line each, so that the compiler
   keeps the window in registers. Generated from rlenhance/ops/_sorting.py
   (_prune(_sorting_network(25), [12])); tests/rlenhance/test_ops_native.py checks that it still is. */
static inline vf median25(vf v[WIN * WIN]) {
    vf t;
    t = vmin(v[0], v[1]); v[1] = vmax(v[0], v[1]); v[0] = t;
    t = vmin(v[2], v[3]); v[3] = vmax(v[2], v[3]); v[2] = t;
    t = vmin(v[4], v[5]); v[5] = vmax(v[4], v[5]); v[4] = t;
    t = vmin(v[6], v[7]); v[7] = vmax(v[6], v[7]); v[6] = t;
    t = vmin(v[8], v[9]); v[9] = vmax(v[8], v[9]); v[8] = t;
    t = vmin(v[10], v[11]); v[11] = vmax(v[10], v[11]); v[10] = t;
    t = vmin(v[12], v[13]); v[13] = vmax(v[12], v[13]); v[12] = t;
    t = vmin(v[14], v[15]); v[15] = vmax(v[14], v[15]); v[14] = t;
    t = vmin(v[16], v[17]); v[17] = vmax(v[16], v[17]); v[16] = t;
    t = vmin(v[18], v[19]); v[19] = vmax(v[18], v[19]); v[18] = t;
    t = vmin(v[20], v[21]); v[21] = vmax(v[20], v[21]); v[20] = t;
    t = vmin(v[22], v[23]); v[23] = vmax(v[22], v[23]); v[22] = t;
    t = vmin(v[0], v[2]); v[2] = vmax(v[0], v[2]); v[0] = t;
    t = vmin(v[1], v[3]); v[3] = vmax(v[1], v[3]); v[1] = t;
    t = vmin(v[4], v[6]); v[6] = vmax(v[4], v[6]); v[4] = t;
    t = vmin(v[5], v[7]); v[7] = vmax(v[5], v[7]); v[5] = t;
    t = vmin(v[8], v[10]); v[10] = vmax(v[8], v[10]); v[8] = t;
    t = vmin(v[9], v[11]); v[11] = vmax(v[9], v[11]); v[9] = t;
    t = vmin(v[12], v[14]); v[14] = vmax(v[12], v[14]); v[12] = t;
    t = vmin(v[13], v[15]); v[15] = vmax(v[13], v[15]); v[13] = t;
    t = vmin(v[16], v[18]); v[18] = vmax(v[16], v[18]); v[16] = t;
    t = vmin(v[17], v[19]); v[19] = vmax(v[17], v[19]); v[17] = t;
    t = vmin(v[20], v[22]); v[22] = vmax(v[20], v[22]); v[20] = t;
    t = vmin(v[21], v[23]); v[23] = vmax(v[21], v[23]); v[21] = t;
    t = vmin(v[1], v[2]); v[2] = vmax(v[1], v[2]); v[1] = t;
    t = vmin(v[5], v[6]); v[6] = vmax(v[5], v[6]); v[5] = t;
    t = vmin(v[9], v[10]); v[10] = vmax(v[9], v[10]); v[9] = t;
    t = vmin(v[13], v[14]); v[14] = vmax(v[13], v[14]); v[13] = t;
    t = vmin(v[17], v[18]); v[18] = vmax(v[17], v[18]); v[17] = t;
    t = vmin(v[21], v[22]); v[22] = vmax(v[21], v[22]); v[21] = t;
    t = vmin(v[0], v[4]); v[4] = vmax(v[0], v[4]); v[0] = t;
    t = vmin(v[1], v[5]); v[5] = vmax(v[1], v[5]); v[1] = t;
    t = vmin(v[2], v[6]); v[6] = vmax(v[2], v[6]); v[2] = t;
    t = vmin(v[3], v[7]); v[7] = vmax(v[3], v[7]); v[3] = t;
    t = vmin(v[8], v[12]); v[12] = vmax(v[8], v[12]); v[8] = t;
    t = vmin(v[9], v[13]); v[13] = vmax(v[9], v[13]); v[9] = t;
    t = vmin(v[10], v[14]); v[14] = vmax(v[10], v[14]); v[10] = t;
    t = vmin(v[11], v[15]); v[15] = vmax(v[11], v[15]); v[11] = t;
    t = vmin(v[16], v[20]); v[20] = vmax(v[16], v[20]); v[16] = t;
    t = vmin(v[17], v[21]); v[21] = vmax(v[17], v[21]); v[17] = t;
    t = vmin(v[18], v[22]); v[22] = vmax(v[18], v[22]); v[18] = t;
    t = vmin(v[19], v[23]); v[23] = vmax(v[19], v[23]); v[19] = t;
    t = vmin(v[2], v[4]); v[4] = vmax(v[2], v[4]); v[2] = t;
    t = vmin(v[3], v[5]); v[5] = vmax(v[3], v[5]); v[3] = t;
    t = vmin(v[10], v[12]); v[12] = vmax(v[10], v[12]); v[10] = t;
    t = vmin(v[11], v[13]); v[13] = vmax(v[11], v[13]); v[11] = t;
    t = vmin(v[18], v[20]); v[20] = vmax(v[18], v[20]); v[18] = t;
    t = vmin(v[19], v[21]); v[21] = vmax(v[19], v[21]); v[19] = t;
    t = vmin(v[1], v[2]); v[2] = vmax(v[1], v[2]); v[1] = t;
    t = vmin(v[3], v[4]); v[4] = vmax(v[3], v[4]); v[3] = t;
    t = vmin(v[5], v[6]); v[6] = vmax(v[5], v[6]); v[5] = t;
    t = vmin(v[9], v[10]); v[10] = vmax(v[9], v[10]); v[9] = t;
    t = vmin(v[11], v[12]); v[12] = vmax(v[11], v[12]); v[11] = t;
    t = vmin(v[13], v[14]); v[14] = vmax(v[13], v[14]); v[13] = t;
    t = vmin(v[17], v[18]); v[18] = vmax(v[17], v[18]); v[17] = t;
    t = vmin(v[19], v[20]); v[20] = vmax(v[19], v[20]); v[19] = t;
    t = vmin(v[21], v[22]); v[22] = vmax(v[21], v[22]); v[21] = t;
    t = vmin(v[0], v[8]); v[8] = vmax(v[0], v[8]); v[0] = t;
    t = vmin(v[1], v[9]); v[9] = vmax(v[1], v[9]); v[1] = t;
    t = vmin(v[2], v[10]); v[10] = vmax(v[2], v[10]); v[2] = t;
    t = vmin(v[3], v[11]); v[11] = vmax(v[3], v[11]); v[3] = t;
    t = vmin(v[4], v[12]); v[12] = vmax(v[4], v[12]); v[4] = t;
    t = vmin(v[5], v[13]); v[13] = vmax(v[5], v[13]); v[5] = t;
    t = vmin(v[6], v[14]); v[14] = vmax(v[6], v[14]); v[6] = t;
    v[7] = vmin(v[7], v[15]);
    t = vmin(v[16], v[24]); v[24] = vmax(v[16], v[24]); v[16] = t;
    t = vmin(v[4], v[8]); v[8] = vmax(v[4], v[8]); v[4] = t;
    t = vmin(v[5], v[9]); v[9] = vmax(v[5], v[9]); v[5] = t;
    t = vmin(v[6], v[10]); v[10] = vmax(v[6], v[10]); v[6] = t;
    t = vmin(v[7], v[11]); v[11] = vmax(v[7], v[11]); v[7] = t;
    t = vmin(v[20], v[24]); v[24] = vmax(v[20], v[24]); v[20] = t;
    t = vmin(v[2], v[4]); v[4] = vmax(v[2], v[4]); v[2] = t;
    t = vmin(v[3], v[5]); v[5] = vmax(v[3], v[5]); v[3] = t;
    t = vmin(v[6], v[8]); v[8] = vmax(v[6], v[8]); v[6] = t;
    t = vmin(v[7], v[9]); v[9] = vmax(v[7], v[9]); v[7] = t;
    t = vmin(v[10], v[12]); v[12] = vmax(v[10], v[12]); v[10] = t;
    t = vmin(v[11], v[13]); v[13] = vmax(v[11], v[13]); v[11] = t;
    t = vmin(v[18], v[20]); v[20] = vmax(v[18], v[20]); v[18] = t;
    t = vmin(v[19], v[21]); v[21] = vmax(v[19], v[21]); v[19] = t;
    t = vmin(v[22], v[24]); v[24] = vmax(v[22], v[24]); v[22] = t;
    t = vmin(v[1], v[2]); v[2] = vmax(v[1], v[2]); v[1] = t;
    t = vmin(v[3], v[4]); v[4] = vmax(v[3], v[4]); v[3] = t;
    t = vmin(v[5], v[6]); v[6] = vmax(v[5], v[6]); v[5] = t;
    t = vmin(v[7], v[8]); v[8] = vmax(v[7], v[8]); v[7] = t;
    t = vmin(v[9], v[10]); v[10] = vmax(v[9], v[10]); v[9] = t;
    t = vmin(v[11], v[12]); v[12] = vmax(v[11], v[12]); v[11] = t;
    v[13] = vmin(v[13], v[14]);
    t = vmin(v[17], v[18]); v[18] = vmax(v[17], v[18]); v[17] = t;
    t = vmin(v[19], v[20]); v[20] = vmax(v[19], v[20]); v[19] = t;
    t = vmin(v[21], v[22]); v[22] = vmax(v[21], v[22]); v[21] = t;
    t = vmin(v[23], v[24]); v[24] = vmax(v[23], v[24]); v[23] = t;
    v[16] = vmax(v[0], v[16]);
    v[17] = vmax(v[1], v[17]);
    v[18] = vmax(v[2], v[18]);
    v[19] = vmax(v[3], v[19]);
    v[20] = vmax(v[4], v[20]);
    v[21] = vmax(v[5], v[21]);
    v[6] = vmin(v[6], v[22]);
    v[7] = vmin(v[7], v[23]);
    v[8] = vmin(v[8], v[24]);
    v[16] = vmax(v[8], v[16]);
    v[17] = vmax(v[9], v[17]);
    v[10] = vmin(v[10], v[18]);
    v[11] = vmin(v[11], v[19]);
    v[12] = vmin(v[12], v[20]);
    v[13] = vmin(v[13], v[21]);
    v[10] = vmax(v[6], v[10]);
    v[11] = vmax(v[7], v[11]);
    v[12] = vmin(v[12], v[16]);
    v[13] = vmin(v[13], v[17]);
    v[12] = vmax(v[10], v[12]);
    v[11] = vmin(v[11], v[13]);
    v[12] = vmax(v[11], v[12]);
    (void)t;
    return v[12];
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
