/* rlenhance: the greedy rollout of a discrete low-light policy at its working resolution, fused: the
   native kernel of rlenhance.ops.native.lowlight_rollout_native (rlenhance.enhance.greedy_rollout's
   CPU path for the policies it describes).

   Plain C, compiled with the other kernels into one shared library (-O3 -ffp-contract=off, no
   fast-math; the convolutions are compiled a second time for AVX2, chosen at run time, with the same
   IEEE operations lane by lane). native.py declares the C signatures of the functions exported here
   (rlenhance_rollout_args_size, rlenhance_lowlight_rollout, whose arguments come as one
   rollout_args_t): keep the two in step.

   The torch rollout is a chain of some 60 small operations a step, each paying torch's fixed cost,
   which on a policy's small working map outweighs the arithmetic; here each step is one
   pass over the working image and the network's layers on the pooled map, all steps of all images in
   one call. Per image and step, the
   operations of greedy_rollout in its order:

     1. the policy input: the image, the original, and with target the exposure gap
        target - mean_c(image) per pixel, each average-pooled by s over s x s blocks (partial blocks
        at the bottom and right over their valid pixels: avg_pool2d(ceil_mode=True)), followed by
        the cond values as constant planes;
     2. the network's layers in order: each a k x k convolution with dilation d and zero padding
        ("same" size), its bias, a ReLU where asked, and where asked FiLM's x * scale + shift with
        per-channel scale and shift;
     3. the last layer's out channels are c groups of n_actions logits; alpha per block and group is
        sum_a softmax(logits)_a table[a], or with argmax the table's value at the first largest logit;
     4. the alpha maps upsampled bilinearly by s (F.interpolate, align_corners=False, source
        (y + 0.5) / s - 0.5 clamped at 0) and cropped to h x w; with c = 3 and coupling != 0, every
        channel but reference takes coupling * alpha_ref + (1 - coupling) * alpha_own; times
        (1 - damping);
     5. the LE step v + (a v)(1 - v); with a limit, when the stepped image's mean is above it, alpha
        is scaled by clamp((limit - mean(x)) / mean(a x (1 - x)), 0, 1) (cap_mean) and the step
        taken again; the alpha applied is written to maps; the image clamped to [0, 1].

   Sums are taken in another order than torch's (the convolutions per output channel over taps and
   input channels; the means in double), so values differ by float rounding: within 1e-5 of the
   torch path on the maps (tests; with argmax the same values where no two logits are within rounding
   of each other). Batch items are independent; the caller's threads are not used
   (one image is too small to split). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9
#define HAVE_AVX2 1      /* a second copy of the convolution compiled for AVX2 (chosen at run time) */
#else
#define HAVE_AVX2 0
#endif

#define IMAGE_CHANNELS 3

enum { OK = 0, ERR_ARGS = 1, ERR_MEMORY = 2, ERR_ISA = 3 };
enum { ISA_AUTO = 0, ISA_BASELINE = 1, ISA_AVX2 = 2 };

int rlenhance_best_isa(void);  /* pixelrl_select.c */

/* The arguments of rlenhance_lowlight_rollout. native.py mirrors this struct field by field
   (_RolloutArgs) and checks its size against rlenhance_rollout_args_size(): keep the two in step. */
typedef struct {
    const float *image;       /* (b, 3, h, w) contiguous: the low-light batch at the working resolution */
    float *maps;              /* (steps, b, c, h, w) contiguous: the alpha applied at each step */
    float *final;             /* (b, 3, h, w) contiguous: the image after the last step */
    int64_t b, h, w;
    int32_t steps, scale;     /* curve steps; the policy's downscale s >= 1 */
    int32_t c;                /* alpha channels: 1 (shared by R, G, B) or 3 */
    int32_t n_actions;
    const float *table;       /* (n_actions,): alpha per action */
    const float *target;      /* (b,): exposure targets of the exposure-gap plane; NULL: no such plane */
    const float *limit;       /* (b,): the highest mean a step may reach; NULL: no cap */
    const float *cond;        /* (b, cond_dim): constant planes after the image planes */
    int32_t cond_dim;
    int32_t n_layers, ksize;  /* the network's layers; odd kernel size */
    const int32_t *layers;    /* (n_layers, 5): in channels, out channels, dilation, ReLU (0 / 1), FiLM (index or -1) */
    const float *weights;     /* layer after layer: (k, k, in, out) weights, then the (out,) bias */
    const float *film;        /* (b, n_film, 2, film_width): scale then shift; NULL when no layer has one */
    int32_t n_film, film_width;
    float damping, coupling;
    int32_t reference;        /* the coupling's reference channel */
    int32_t isa;              /* ISA_AUTO, ISA_BASELINE or ISA_AVX2 */
    int32_t argmax;           /* 1: the most probable action's alpha; 0: the expected alpha */
} rollout_args_t;

/* The width of the shipped networks' hidden layers, and 8 floats as one AVX2 value (unaligned loads, reading
   float arrays). */
#define WIDTH 32
typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));

/* out (hs * ws, cout) = conv(in (hs * ws, cin)) + bias: one output position at a time, its valid taps
   (zero padding contributes nothing) accumulated over input channels into the cout outputs. With wide
   (a constant; cout is then WIDTH; AVX2 only: narrower vectors would spill them) the outputs stay in four
   vector registers until the position is done: the same operations per output, in the same order. */
static inline __attribute__((always_inline)) void conv_layer(const float *restrict in, float *restrict out,
                                                             int64_t hs, int64_t ws, int cin, int cout, int k,
                                                             int dil, const float *restrict weight,
                                                             const float *restrict bias, const int wide) {
    const int half = k / 2;
    for (int64_t y = 0; y < hs; y++)
        for (int64_t x = 0; x < ws; x++) {
            float *restrict o = out + (y * ws + x) * cout;
            v8 o0 = {0}, o1 = {0}, o2 = {0}, o3 = {0};
            if (wide) {
                const v8 *b = (const v8 *)bias;
                o0 = b[0], o1 = b[1], o2 = b[2], o3 = b[3];
            } else {
                for (int co = 0; co < cout; co++) o[co] = bias[co];
            }
            for (int ky = 0; ky < k; ky++) {
                const int64_t iy = y + (int64_t)(ky - half) * dil;
                if (iy < 0 || iy >= hs) continue;
                for (int kx = 0; kx < k; kx++) {
                    const int64_t ix = x + (int64_t)(kx - half) * dil;
                    if (ix < 0 || ix >= ws) continue;
                    const float *restrict v = in + (iy * ws + ix) * cin;
                    const float *restrict wt = weight + (int64_t)(ky * k + kx) * cin * cout;
                    for (int ci = 0; ci < cin; ci++) {
                        const float vi = v[ci];
                        const float *restrict wr = wt + (int64_t)ci * cout;
                        if (wide) {
                            const v8 *w8 = (const v8 *)wr;
                            o0 += w8[0] * vi, o1 += w8[1] * vi, o2 += w8[2] * vi, o3 += w8[3] * vi;
                        } else {
                            for (int co = 0; co < cout; co++) o[co] += wr[co] * vi;
                        }
                    }
                }
            }
            if (wide) {
                v8 *o8 = (v8 *)o;
                o8[0] = o0, o8[1] = o1, o8[2] = o2, o8[3] = o3;
            }
        }
}

typedef void (*conv_fn)(const float *, float *, int64_t, int64_t, int, int, int, int, const float *, const float *);

static void conv_baseline(const float *in, float *out, int64_t hs, int64_t ws, int cin, int cout, int k, int dil,
                          const float *weight, const float *bias) {
    conv_layer(in, out, hs, ws, cin, cout, k, dil, weight, bias, 0);
}

#if HAVE_AVX2
__attribute__((target("avx2"))) static void conv_avx2(const float *in, float *out, int64_t hs, int64_t ws, int cin,
                                                       int cout, int k, int dil, const float *weight,
                                                       const float *bias) {
    if (cout == WIDTH)
        conv_layer(in, out, hs, ws, cin, WIDTH, k, dil, weight, bias, 1);
    else
        conv_layer(in, out, hs, ws, cin, cout, k, dil, weight, bias, 0);
}
#endif

/* Average-pool the n planes at src (each h x w, plane stride h * w) by s into the HWC map dst at
   channel offset first (row stride ws * cs): a float sum over the block's valid pixels in row-major
   order, divided by their count. */
static void pool_planes(const float *src, int n, int64_t h, int64_t w, int s, float *dst, int first, int cs) {
    const int64_t hs = (h + s - 1) / s, ws = (w + s - 1) / s;
    for (int p = 0; p < n; p++) {
        const float *plane = src + (int64_t)p * h * w;
        for (int64_t by = 0; by < hs; by++) {
            const int64_t y0 = by * s, y1 = y0 + s < h ? y0 + s : h;
            for (int64_t bx = 0; bx < ws; bx++) {
                const int64_t x0 = bx * s, x1 = x0 + s < w ? x0 + s : w;
                float sum = 0.0f;
                for (int64_t y = y0; y < y1; y++)
                    for (int64_t x = x0; x < x1; x++) sum += plane[y * w + x];
                dst[(by * ws + bx) * cs + first + p] = sum / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

/* Bilinear upsampling by s along one axis of n output positions from m inputs: the first input index,
   the second and the weights of both (torch's: source (i + 0.5) / s - 0.5 clamped at 0). */
static void upsample_axis(int64_t n, int64_t m, int s, int32_t *i0, int32_t *i1, float *w0, float *w1) {
    const float scale = (float)m / (float)(m * s);
    for (int64_t i = 0; i < n; i++) {
        float src = scale * ((float)i + 0.5f) - 0.5f;
        if (src < 0.0f) src = 0.0f;
        int32_t j = (int32_t)floorf(src);
        j = j < m - 1 ? j : (int32_t)(m - 1);
        float l1 = src - (float)j;
        l1 = l1 < 0.0f ? 0.0f : l1 > 1.0f ? 1.0f : l1;
        i0[i] = j;
        i1[i] = j + (j < m - 1 ? 1 : 0);
        w1[i] = l1;
        w0[i] = 1.0f - l1;
    }
}

typedef struct {
    float *act_a, *act_b;     /* (hs * ws, widest layer) activations, ping-pong */
    float *original;          /* (hs * ws, 3) pooled original planes */
    float *gap;               /* (h, w) exposure gap */
    float *small;             /* (c, hs, ws) alpha per block */
    float *alpha;             /* (c, h, w) alpha upsampled */
    float *stepped;           /* (3, h, w) */
    int32_t *rows, *cols;     /* (2, h), (2, w) source indices */
    float *row_w, *col_w;     /* (2, h), (2, w) weights */
} work_t;

/* One image's rollout (item i of the batch). */
static void rollout_one(const rollout_args_t *a, int64_t i, work_t *wk, conv_fn conv) {
    const int64_t h = a->h, w = a->w, hw = h * w, s = a->scale;
    const int64_t hs = (h + s - 1) / s, ws = (w + s - 1) / s, blocks = hs * ws;
    const int c = a->c, na = a->n_actions;
    const int gap = a->target != NULL;
    const int cin0 = a->layers[0];
    float *current = a->final + i * IMAGE_CHANNELS * hw;
    memcpy(current, a->image + i * IMAGE_CHANNELS * hw, (size_t)(IMAGE_CHANNELS * hw) * sizeof(float));
    pool_planes(a->image + i * IMAGE_CHANNELS * hw, IMAGE_CHANNELS, h, w, (int)s, wk->original, 0, IMAGE_CHANNELS);
    for (int32_t step = 0; step < a->steps; step++) {
        /* 1. the policy input (HWC): image, original, gap, cond */
        float *in = wk->act_a;
        pool_planes(current, IMAGE_CHANNELS, h, w, (int)s, in, 0, cin0);
        for (int64_t p = 0; p < blocks; p++)
            for (int ch = 0; ch < IMAGE_CHANNELS; ch++)
                in[p * cin0 + IMAGE_CHANNELS + ch] = wk->original[p * IMAGE_CHANNELS + ch];
        int planes = 2 * IMAGE_CHANNELS;
        if (gap) {
            const float t = a->target[i];
            for (int64_t q = 0; q < hw; q++)
                wk->gap[q] = t - (current[q] + current[hw + q] + current[2 * hw + q]) / 3.0f;
            pool_planes(wk->gap, 1, h, w, (int)s, in, planes, cin0);
            planes += 1;
        }
        for (int64_t p = 0; p < blocks; p++)
            for (int j = 0; j < a->cond_dim; j++) in[p * cin0 + planes + j] = a->cond[i * a->cond_dim + j];
        /* 2. the layers */
        const float *weights = a->weights;
        float *src = wk->act_a, *dst = wk->act_b;
        for (int32_t l = 0; l < a->n_layers; l++) {
            const int32_t *layer = a->layers + 5 * l;
            const int cin = layer[0], cout = layer[1], dil = layer[2], relu = layer[3], film = layer[4];
            const float *bias = weights + (int64_t)a->ksize * a->ksize * cin * cout;
            conv(src, dst, hs, ws, cin, cout, a->ksize, dil, weights, bias);
            weights = bias + cout;
            if (relu)
                for (int64_t q = 0; q < blocks * cout; q++) dst[q] = dst[q] > 0.0f ? dst[q] : 0.0f;
            if (film >= 0) {
                const float *scale = a->film + ((i * a->n_film + film) * 2) * a->film_width;
                const float *shift = scale + a->film_width;
                for (int64_t p = 0; p < blocks; p++)
                    for (int co = 0; co < cout; co++) dst[p * cout + co] = dst[p * cout + co] * scale[co] + shift[co];
            }
            float *t = src;
            src = dst;
            dst = t;
        }
        /* 3. alpha per block: the table's value at the most probable action, or its expectation under
           each group's softmax */
        for (int64_t p = 0; p < blocks; p++)
            for (int g = 0; g < c; g++) {
                const float *logits = src + p * c * na + g * na;
                float top = logits[0];
                int best = 0;
                for (int j = 1; j < na; j++)
                    if (logits[j] > top) {
                        top = logits[j];
                        best = j;
                    }
                if (a->argmax) {
                    wk->small[g * blocks + p] = a->table[best];
                    continue;
                }
                float total = 0.0f, value = 0.0f;
                for (int j = 0; j < na; j++) {
                    const float e = expf(logits[j] - top);
                    total += e;
                    value += e * a->table[j];
                }
                wk->small[g * blocks + p] = value / total;
            }
        /* 4. upsampled, coupled, damped */
        for (int g = 0; g < c; g++) {
            const float *m = wk->small + g * blocks;
            float *out = wk->alpha + g * hw;
            for (int64_t y = 0; y < h; y++) {
                const float *r0 = m + wk->rows[y] * ws, *r1 = m + wk->rows[h + y] * ws;
                const float wy0 = wk->row_w[y], wy1 = wk->row_w[h + y];
                for (int64_t x = 0; x < w; x++) {
                    const int32_t x0 = wk->cols[x], x1 = wk->cols[w + x];
                    const float wx0 = wk->col_w[x], wx1 = wk->col_w[w + x];
                    const float t0 = r0[x0] * wx0 + r0[x1] * wx1;
                    const float t1 = r1[x0] * wx0 + r1[x1] * wx1;
                    out[y * w + x] = t0 * wy0 + t1 * wy1;
                }
            }
        }
        if (c == IMAGE_CHANNELS && a->coupling != 0.0f) {
            const float *ref = wk->alpha + a->reference * hw;
            for (int g = 0; g < c; g++) {
                if (g == a->reference) continue;
                float *own = wk->alpha + g * hw;
                for (int64_t q = 0; q < hw; q++) own[q] = a->coupling * ref[q] + (1.0f - a->coupling) * own[q];
            }
        }
        const float keep = 1.0f - a->damping;
        for (int64_t q = 0; q < c * hw; q++) wk->alpha[q] *= keep;
        /* 5. the LE step, capped */
        const int64_t cstride = c == 1 ? 0 : hw;
        double stepped_sum = 0.0;
        for (int ch = 0; ch < IMAGE_CHANNELS; ch++) {
            const float *x = current + ch * hw, *al = wk->alpha + ch * cstride;
            float *st = wk->stepped + ch * hw;
            for (int64_t q = 0; q < hw; q++) {
                st[q] = x[q] + al[q] * x[q] * (1.0f - x[q]);
                stepped_sum += st[q];
            }
        }
        if (a->limit && stepped_sum / (double)(IMAGE_CHANNELS * hw) > (double)a->limit[i]) {
            double rise_sum = 0.0, x_sum = 0.0;
            for (int ch = 0; ch < IMAGE_CHANNELS; ch++) {
                const float *x = current + ch * hw, *al = wk->alpha + ch * cstride;
                for (int64_t q = 0; q < hw; q++) {
                    rise_sum += al[q] * x[q] * (1.0f - x[q]);
                    x_sum += x[q];
                }
            }
            const float rise = (float)(rise_sum / (double)(IMAGE_CHANNELS * hw));
            const float room = a->limit[i] - (float)(x_sum / (double)(IMAGE_CHANNELS * hw));
            if (rise > 0.0f && rise > room) {
                float scale = room / rise;
                scale = scale < 0.0f ? 0.0f : scale > 1.0f ? 1.0f : scale;
                for (int64_t q = 0; q < c * hw; q++) wk->alpha[q] *= scale;
                for (int ch = 0; ch < IMAGE_CHANNELS; ch++) {
                    const float *x = current + ch * hw, *al = wk->alpha + ch * cstride;
                    float *st = wk->stepped + ch * hw;
                    for (int64_t q = 0; q < hw; q++) st[q] = x[q] + al[q] * x[q] * (1.0f - x[q]);
                }
            }
        }
        memcpy(a->maps + ((int64_t)step * a->b + i) * c * hw, wk->alpha, (size_t)(c * hw) * sizeof(float));
        for (int64_t q = 0; q < IMAGE_CHANNELS * hw; q++) {
            const float v = wk->stepped[q];
            current[q] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
}

/* sizeof(rollout_args_t): native.py checks its mirror of the struct against it on loading. */
int64_t rlenhance_rollout_args_size(void) { return (int64_t)sizeof(rollout_args_t); }

/* Run the rollout of every image of the batch; returns OK or an ERR_ code. */
int rlenhance_lowlight_rollout(const rollout_args_t *a) {
    if (!a || !a->image || !a->maps || !a->final || !a->table || !a->layers || !a->weights || a->b < 1 || a->h < 1
        || a->w < 1 || a->steps < 1 || a->scale < 1 || !(a->c == 1 || a->c == IMAGE_CHANNELS) || a->n_actions < 1
        || a->cond_dim < 0 || (a->cond_dim > 0 && !a->cond) || a->n_layers < 1 || a->ksize < 1 || a->ksize % 2 != 1
        || a->reference < 0 || a->reference >= IMAGE_CHANNELS)
        return ERR_ARGS;
    int widest = 0;
    for (int32_t l = 0; l < a->n_layers; l++) {
        const int32_t *layer = a->layers + 5 * l;
        if (layer[0] < 1 || layer[1] < 1 || layer[2] < 1 || (layer[4] >= 0 && (!a->film || layer[4] >= a->n_film
                                                                                  || layer[1] > a->film_width)))
            return ERR_ARGS;
        if (l > 0 && layer[0] != a->layers[5 * (l - 1) + 1]) return ERR_ARGS;
        widest = layer[0] > widest ? layer[0] : widest;
        widest = layer[1] > widest ? layer[1] : widest;
    }
    if (a->layers[0] != 2 * IMAGE_CHANNELS + (a->target != NULL) + a->cond_dim
        || a->layers[5 * (a->n_layers - 1) + 1] != a->c * a->n_actions)
        return ERR_ARGS;
    conv_fn conv = conv_baseline;
    if (a->isa == ISA_AUTO || a->isa == ISA_AVX2) {
        if (rlenhance_best_isa() == ISA_AVX2) {
#if HAVE_AVX2
            conv = conv_avx2;
#endif
        } else if (a->isa == ISA_AVX2) {
            return ERR_ISA;
        }
    } else if (a->isa != ISA_BASELINE) {
        return ERR_ARGS;
    }
    const int64_t h = a->h, w = a->w, hw = h * w, s = a->scale;
    const int64_t blocks = ((h + s - 1) / s) * ((w + s - 1) / s);
    work_t wk;
    wk.act_a = malloc((size_t)(blocks * widest) * sizeof(float));
    wk.act_b = malloc((size_t)(blocks * widest) * sizeof(float));
    wk.original = malloc((size_t)(blocks * IMAGE_CHANNELS) * sizeof(float));
    wk.gap = malloc((size_t)hw * sizeof(float));
    wk.small = malloc((size_t)(a->c * blocks) * sizeof(float));
    wk.alpha = malloc((size_t)(a->c * hw) * sizeof(float));
    wk.stepped = malloc((size_t)(IMAGE_CHANNELS * hw) * sizeof(float));
    wk.rows = malloc((size_t)(2 * h) * sizeof(int32_t));
    wk.cols = malloc((size_t)(2 * w) * sizeof(int32_t));
    wk.row_w = malloc((size_t)(2 * h) * sizeof(float));
    wk.col_w = malloc((size_t)(2 * w) * sizeof(float));
    int status = OK;
    if (!wk.act_a || !wk.act_b || !wk.original || !wk.gap || !wk.small || !wk.alpha || !wk.stepped || !wk.rows
        || !wk.cols || !wk.row_w || !wk.col_w) {
        status = ERR_MEMORY;
    } else {
        upsample_axis(h, (h + s - 1) / s, (int)s, wk.rows, wk.rows + h, wk.row_w, wk.row_w + h);
        upsample_axis(w, (w + s - 1) / s, (int)s, wk.cols, wk.cols + w, wk.col_w, wk.col_w + w);
        for (int64_t i = 0; i < a->b; i++) rollout_one(a, i, &wk, conv);
    }
    free(wk.act_a);
    free(wk.act_b);
    free(wk.original);
    free(wk.gap);
    free(wk.small);
    free(wk.alpha);
    free(wk.stepped);
    free(wk.rows);
    free(wk.cols);
    free(wk.row_w);
    free(wk.col_w);
    return status;
}
