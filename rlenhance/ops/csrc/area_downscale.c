/* rlenhance: area downscaling (adaptive average pooling) of an image of any strides and sample type,
   the native kernel of rlenhance.ops.native.area_downscale_native (the Enhancer's working image).

   Plain C, compiled with pixelrl_select.c and le_curves.c into one shared library (-O3
   -ffp-contract=off, no fast-math). native.py declares the C signatures of the functions exported
   here (rlenhance_area_args_size, rlenhance_area_downscale, whose arguments come as one area_args_t):
   keep the two in step.

   Output pixel (oh, ow) of channel ch averages the input window rows ih0 .. ih1 - 1, columns
   iw0 .. iw1 - 1 with ih0 = floor(oh H / h), ih1 = ceil((oh + 1) H / h) (columns alike), exactly as
   torch's CPU adaptive_avg_pool2d (F.interpolate(mode="area")) does with float32 values: a float
   sum in row-major order over the window, divided by the window's height, then by its width. The
   samples are the float32 values, or uint8 / uint16 samples divided by 255 / 65535 in float (a
   table of those quotients), so the result equals pooling the float image those samples give.
   Output rows are split over n_threads POSIX threads. */
#include <stdint.h>
#include <stdlib.h>

#include "parallel.h"

#define MAX_CHANNELS 4

enum { SAMPLE_F32 = 0, SAMPLE_U8 = 1, SAMPLE_U16 = 2 };
enum { OK = 0, ERR_ARGS = 1, ERR_MEMORY = 2 };

/* The arguments of rlenhance_area_downscale. native.py mirrors this struct field by field (_AreaArgs)
   and checks its size against rlenhance_area_args_size(): keep the two in step. */
typedef struct {
    const void *x;            /* the image, x_type; element (y, x, ch) at y*x_row + x*x_col + ch*x_chan */
    float *out;               /* (ch, oh, ow), contiguous */
    int32_t x_type;           /* SAMPLE_F32, SAMPLE_U8 or SAMPLE_U16 */
    int64_t x_row, x_col, x_chan;
    int64_t h, w, ch;         /* the image: h x w pixels of ch channels (ch <= MAX_CHANNELS) */
    int64_t oh, ow;           /* the output size, 1 <= oh <= h, 1 <= ow <= w */
    int32_t n_threads;        /* threads splitting the output rows (1 if < 1, at most oh) */
} area_args_t;

typedef struct {
    const area_args_t *a;
    const float *table;       /* integer samples: the float value of each */
    int64_t row0, row1;
} worker_t;

static inline int64_t start_index(int64_t i, int64_t out, int64_t in) { return (i / out) * in + ((i % out) * in) / out; }

static inline int64_t end_index(int64_t i, int64_t out, int64_t in) { return 1 + ((i + 1) * in - 1) / out; }

static inline __attribute__((always_inline)) float sample(int type, const float *table, const char *p) {
    if (type == SAMPLE_U8) return table[*(const uint8_t *)p];
    if (type == SAMPLE_U16) return table[*(const uint16_t *)p];
    return *(const float *)p;
}

/* Output rows row0 .. row1 - 1 for one sample type (a constant where this is inlined). */
static inline __attribute__((always_inline)) void pool_rows(const area_args_t *a, const float *table, int64_t row0,
                                                            int64_t row1, const int type, const size_t size) {
    const int64_t ch = a->ch, x_row = a->x_row, x_col = a->x_col, x_chan = a->x_chan;
    for (int64_t oy = row0; oy < row1; oy++) {
        const int64_t ih0 = start_index(oy, a->oh, a->h), ih1 = end_index(oy, a->oh, a->h);
        for (int64_t ox = 0; ox < a->ow; ox++) {
            const int64_t iw0 = start_index(ox, a->ow, a->w), iw1 = end_index(ox, a->ow, a->w);
            float sum[MAX_CHANNELS] = {0.0f, 0.0f, 0.0f, 0.0f};  /* one chain a channel, each in torch's order */
            for (int64_t y = ih0; y < ih1; y++) {
                const char *row = (const char *)a->x + (size_t)(y * x_row) * size;
                for (int64_t x = iw0; x < iw1; x++) {
                    const char *pixel = row + (size_t)(x * x_col) * size;
                    for (int64_t k = 0; k < ch; k++) sum[k] += sample(type, table, pixel + (size_t)(k * x_chan) * size);
                }
            }
            for (int64_t k = 0; k < ch; k++)
                a->out[(k * a->oh + oy) * a->ow + ox] = sum[k] / (float)(ih1 - ih0) / (float)(iw1 - iw0);
        }
    }
}

static void *run_worker(void *arg) {
    const worker_t *wk = (const worker_t *)arg;
    const area_args_t *a = wk->a;
    if (a->x_type == SAMPLE_U8) pool_rows(a, wk->table, wk->row0, wk->row1, SAMPLE_U8, 1);
    else if (a->x_type == SAMPLE_U16) pool_rows(a, wk->table, wk->row0, wk->row1, SAMPLE_U16, 2);
    else pool_rows(a, wk->table, wk->row0, wk->row1, SAMPLE_F32, 4);
    return NULL;
}

/* sizeof(area_args_t): native.py checks its mirror of the struct against it on loading. */
int64_t rlenhance_area_args_size(void) { return (int64_t)sizeof(area_args_t); }

/* Pool the image; returns OK or an ERR_ code. */
int rlenhance_area_downscale(const area_args_t *a) {
    if (!a || !a->x || !a->out || a->h < 1 || a->w < 1 || a->ch < 1 || a->ch > MAX_CHANNELS || a->oh < 1
        || a->oh > a->h || a->ow < 1 || a->ow > a->w
        || !(a->x_type == SAMPLE_F32 || a->x_type == SAMPLE_U8 || a->x_type == SAMPLE_U16))
        return ERR_ARGS;
    float *table = NULL;
    if (a->x_type != SAMPLE_F32) {
        const int32_t levels = a->x_type == SAMPLE_U8 ? 256 : 65536;
        const float scale = a->x_type == SAMPLE_U8 ? 255.0f : 65535.0f;
        table = malloc((size_t)levels * sizeof(float));
        if (!table) return ERR_MEMORY;
        for (int32_t i = 0; i < levels; i++) table[i] = (float)i / scale;
    }
    int64_t n = a->n_threads < 1 ? 1 : a->n_threads;
    if (n > a->oh) n = a->oh;
    worker_t *workers = calloc((size_t)n, sizeof(worker_t));
    int status = OK;
    if (!workers) {
        status = ERR_MEMORY;
    } else {
        for (int64_t i = 0; i < n; i++) {
            workers[i].a = a;
            workers[i].table = table;
            workers[i].row0 = a->oh * i / n;
            workers[i].row1 = a->oh * (i + 1) / n;
        }
        if (run_jobs(run_worker, workers, sizeof(worker_t), n) != 0) status = ERR_MEMORY;
    }
    free(table);
    free(workers);
    return status;
}
