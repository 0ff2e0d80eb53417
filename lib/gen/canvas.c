/* canvas.c -- f32 canvases, u8 conversion and Keys bicubic resampling (see canvas.h). */
#include "gen/canvas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation ------------------------------------------------------------------- */

sdlk_status sdlk_canvas_alloc(sdlk_canvas *cv, int64_t t, int64_t h, int64_t w, int64_t c,
                              sdlk_error *err)
{
    memset(cv, 0, sizeof *cv);
    if (t < 1 || h < 1 || w < 1 || c < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "canvas: every size must be at least 1, got %lldx%lldx%lldx%lld",
                              (long long)t, (long long)h, (long long)w, (long long)c);
    const int64_t shape[4] = {t, h, w, c};
    uint64_t numel;
    sdlk_status st = sdlk_shape_numel(4, shape, SDLK_F32, &numel, err);
    if (st) {
        sdlk_error_prefix(err, "canvas %lldx%lldx%lldx%lld", (long long)t, (long long)h,
                          (long long)w, (long long)c);
        return st;
    }
    float *data = calloc((size_t)numel, sizeof *data);
    if (!data)
        return sdlk_error_set(err, SDLK_ERR_NOMEM,
                              "canvas %lldx%lldx%lldx%lld: out of memory (%llu bytes)",
                              (long long)t, (long long)h, (long long)w, (long long)c,
                              (unsigned long long)(numel * sizeof *data));
    cv->data = data;
    cv->t = t;
    cv->h = h;
    cv->w = w;
    cv->c = c;
    return SDLK_OK;
}

void sdlk_canvas_free(sdlk_canvas *cv)
{
    if (!cv)
        return;
    if (!cv->borrowed)
        free(cv->data);
    memset(cv, 0, sizeof *cv);
}

int64_t sdlk_canvas_numel(const sdlk_canvas *cv)
{
    return cv->t * cv->h * cv->w * cv->c;
}

sdlk_canvas sdlk_canvas_frame_view(const sdlk_canvas *cv, int64_t f)
{
    sdlk_canvas view = {sdlk_canvas_frame(cv, f), 1, cv->h, cv->w, cv->c, 1};
    return view;
}

float *sdlk_canvas_frame(const sdlk_canvas *cv, int64_t f)
{
    return cv->data + f * cv->h * cv->w * cv->c;
}

/* ---- u8 conversion ---------------------------------------------------------------- */

static sdlk_status check_frame_index(const sdlk_canvas *cv, int64_t f, sdlk_error *err)
{
    if (f < 0 || f >= cv->t)
        return sdlk_error_set(err, SDLK_ERR_ARG, "canvas: frame %lld outside 0..%lld",
                              (long long)f, (long long)(cv->t - 1));
    return SDLK_OK;
}

sdlk_status sdlk_canvas_set_frame_u8(sdlk_canvas *cv, int64_t f, const sdlk_tensor *img,
                                     sdlk_error *err)
{
    sdlk_status st = check_frame_index(cv, f, err);
    if (st)
        return st;
    if (img->dtype != SDLK_U8 || img->ndim != 3 || img->shape[0] != cv->h ||
        img->shape[1] != cv->w || img->shape[2] != cv->c)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "canvas: frame must be a u8 %lldx%lldx%lld image, got %s with %d "
                              "dimensions (%lldx%lldx%lld)",
                              (long long)cv->h, (long long)cv->w, (long long)cv->c,
                              sdlk_dtype_name(img->dtype), img->ndim,
                              (long long)(img->ndim > 0 ? img->shape[0] : 0),
                              (long long)(img->ndim > 1 ? img->shape[1] : 0),
                              (long long)(img->ndim > 2 ? img->shape[2] : 0));
    float *dst = sdlk_canvas_frame(cv, f);
    for (int64_t y = 0; y < cv->h; y++)
        for (int64_t x = 0; x < cv->w; x++) {
            const uint8_t *px = img->data + y * img->strides[0] + x * img->strides[1];
            for (int64_t c = 0; c < cv->c; c++)
                *dst++ = (float)px[c * img->strides[2]] / 127.5f - 1.0f;
        }
    return SDLK_OK;
}

/* [-1, 1] -> 0..255, rounded to nearest and clamped (NaN becomes 0). */
static uint8_t to_u8(float v)
{
    double scaled = ((double)v + 1.0) * 127.5;
    if (!(scaled > 0.0))
        return 0;
    if (scaled >= 255.0)
        return 255;
    return (uint8_t)lround(scaled);
}

sdlk_status sdlk_canvas_frame_to_u8(const sdlk_canvas *cv, int64_t f, int64_t crop_h,
                                    int64_t crop_w, sdlk_tensor *img, sdlk_error *err)
{
    sdlk_status st = check_frame_index(cv, f, err);
    if (st)
        return st;
    int64_t h = crop_h > 0 && crop_h < cv->h ? crop_h : cv->h;
    int64_t w = crop_w > 0 && crop_w < cv->w ? crop_w : cv->w;
    const int64_t shape[3] = {h, w, cv->c};
    st = sdlk_tensor_alloc(img, SDLK_U8, 3, shape, err);
    if (st)
        return st;
    const float *src = sdlk_canvas_frame(cv, f);
    uint8_t *dst = img->data;
    for (int64_t y = 0; y < h; y++)
        for (int64_t i = 0; i < w * cv->c; i++)
            *dst++ = to_u8(src[y * cv->w * cv->c + i]);
    return SDLK_OK;
}

/* ---- resampling ------------------------------------------------------------------- */

/* Keys cubic convolution kernel, a = -0.5. */
static double keys(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
}

/* The 1-D resampling weights from `in` to `out` samples: output i reads taps input
 * indices index[i * taps + k] (edge-clamped, so replicated edge pixels simply receive
 * more weight) with weights weight[i * taps + k], which sum to 1. */
typedef struct axis_filter {
    int64_t out, taps;
    int64_t *index;
    float *weight;
} axis_filter;

static void axis_filter_free(axis_filter *af)
{
    free(af->index);
    free(af->weight);
    memset(af, 0, sizeof *af);
}

static sdlk_status axis_filter_build(axis_filter *af, int64_t in, int64_t out, sdlk_error *err)
{
    memset(af, 0, sizeof *af);
    double scale = (double)out / (double)in;
    /* Shrinking stretches the kernel by 1/scale so that it low-passes below the new
     * Nyquist frequency (PIL's antialiasing); enlarging uses it as is. */
    double stretch = scale < 1.0 ? 1.0 / scale : 1.0;
    double radius = 2.0 * stretch;
    int64_t taps = (int64_t)ceil(2.0 * radius) + 1;
    af->out = out;
    af->taps = taps;
    af->index = malloc((size_t)(out * taps) * sizeof *af->index);
    af->weight = malloc((size_t)(out * taps) * sizeof *af->weight);
    if (!af->index || !af->weight) {
        axis_filter_free(af);
        return sdlk_error_set(err, SDLK_ERR_NOMEM,
                              "canvas resize: out of memory for %lld x %lld filter taps",
                              (long long)out, (long long)taps);
    }
    for (int64_t i = 0; i < out; i++) {
        /* pixel centres aligned: output centre i + 0.5 sits at input (i + 0.5) / scale */
        double centre = ((double)i + 0.5) / scale - 0.5;
        int64_t first = (int64_t)floor(centre - radius) + 1;
        double sum = 0.0;
        for (int64_t k = 0; k < taps; k++)
            sum += keys(((double)(first + k) - centre) / stretch);
        for (int64_t k = 0; k < taps; k++) {
            int64_t j = first + k;
            af->index[i * taps + k] = j < 0 ? 0 : j >= in ? in - 1 : j;
            af->weight[i * taps + k] = (float)(keys(((double)j - centre) / stretch) / sum);
        }
    }
    return SDLK_OK;
}

/* The two separable passes. Width first, [T, H, W, C] -> [T, H, W', C]: each line (one
 * row of one frame) is resampled sample by sample. Then height, -> [T, H', W', C]:
 * each output row is a weighted sum of whole input rows, which keeps the memory
 * access contiguous. Both are parallel over lines. */
typedef struct pass_job {
    const float *src;
    float *dst;
    const axis_filter *af;
    int64_t in_len;   /* width pass: input samples per line; height pass: input rows */
    int64_t row;      /* floats per row of the pass's output (W' * C) */
    int64_t c;
} pass_job;

static void width_lines(void *ctx, int64_t begin, int64_t end, int worker)
{
    const pass_job *job = ctx;
    const axis_filter *af = job->af;
    for (int64_t r = begin; r < end; r++) {
        const float *src = job->src + r * job->in_len * job->c;
        float *dst = job->dst + r * job->row;
        for (int64_t i = 0; i < af->out; i++) {
            const int64_t *idx = af->index + i * af->taps;
            const float *wt = af->weight + i * af->taps;
            for (int64_t c = 0; c < job->c; c++) {
                double acc = 0.0;
                for (int64_t k = 0; k < af->taps; k++)
                    acc += (double)wt[k] * src[idx[k] * job->c + c];
                dst[i * job->c + c] = (float)acc;
            }
        }
    }
}

static void height_lines(void *ctx, int64_t begin, int64_t end, int worker)
{
    const pass_job *job = ctx;
    const axis_filter *af = job->af;
    for (int64_t r = begin; r < end; r++) {
        int64_t frame = r / af->out, y = r % af->out;
        const float *src = job->src + frame * job->in_len * job->row;
        float *dst = job->dst + r * job->row;
        const int64_t *idx = af->index + y * af->taps;
        const float *wt = af->weight + y * af->taps;
        memset(dst, 0, (size_t)job->row * sizeof *dst);
        for (int64_t k = 0; k < af->taps; k++) {
            const float *in = src + idx[k] * job->row;
            for (int64_t i = 0; i < job->row; i++)
                dst[i] += wt[k] * in[i];
        }
    }
}

sdlk_status sdlk_canvas_resize(const sdlk_canvas *src, sdlk_canvas *dst, sdlk_pool *pool,
                               sdlk_error *err)
{
    if (src->t != dst->t || src->c != dst->c)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "canvas resize: source has %lld frames of %lld channels, "
                              "destination %lld of %lld (must match)",
                              (long long)src->t, (long long)src->c, (long long)dst->t,
                              (long long)dst->c);
    if (src->h < 1 || src->w < 1 || dst->h < 1 || dst->w < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "canvas resize: sizes must be at least 1, got %lldx%lld -> "
                              "%lldx%lld",
                              (long long)src->h, (long long)src->w, (long long)dst->h,
                              (long long)dst->w);
    int64_t t = src->t, c = src->c, h = src->h, w = src->w, h2 = dst->h, w2 = dst->w;
    axis_filter fw, fh;
    sdlk_status st = axis_filter_build(&fw, w, w2, err);
    if (st)
        return st;
    st = axis_filter_build(&fh, h, h2, err);
    if (st) {
        axis_filter_free(&fw);
        return st;
    }
    sdlk_canvas mid;
    st = sdlk_canvas_alloc(&mid, t, h, w2, c, err);
    if (!st) {
        pass_job along_w = {.src = src->data, .dst = mid.data, .af = &fw, .in_len = w,
                            .row = w2 * c, .c = c};
        sdlk_pool_for(pool, t * h, 0, width_lines, &along_w);
        pass_job along_h = {.src = mid.data, .dst = dst->data, .af = &fh, .in_len = h,
                            .row = w2 * c, .c = c};
        sdlk_pool_for(pool, t * h2, 0, height_lines, &along_h);
        sdlk_canvas_free(&mid);
    }
    axis_filter_free(&fw);
    axis_filter_free(&fh);
    return st;
}

sdlk_status sdlk_canvas_lowpass(const sdlk_canvas *src, double factor, sdlk_canvas *dst,
                                sdlk_pool *pool, sdlk_error *err)
{
    if (!(factor > 1.0))
        return sdlk_error_set(err, SDLK_ERR_ARG, "canvas lowpass: factor must be > 1, got %g",
                              factor);
    if (dst->t != src->t || dst->h != src->h || dst->w != src->w || dst->c != src->c)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "canvas lowpass: destination %lldx%lldx%lldx%lld differs from "
                              "source %lldx%lldx%lldx%lld",
                              (long long)dst->t, (long long)dst->h, (long long)dst->w,
                              (long long)dst->c, (long long)src->t, (long long)src->h,
                              (long long)src->w, (long long)src->c);
    int64_t h = llround((double)src->h / factor), w = llround((double)src->w / factor);
    sdlk_canvas small;
    sdlk_status st = sdlk_canvas_alloc(&small, src->t, h < 1 ? 1 : h, w < 1 ? 1 : w, src->c,
                                       err);
    if (st)
        return st;
    st = sdlk_canvas_resize(src, &small, pool, err);
    if (!st)
        st = sdlk_canvas_resize(&small, dst, pool, err);
    sdlk_canvas_free(&small);
    return st;
}
