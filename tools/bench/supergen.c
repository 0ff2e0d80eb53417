/* supergen.c -- the `supergen` family: SuperGen stage 2 on real footage.
 *
 *   cache       cache on vs off (1 worker): speed, skipped tile evaluations, PSNR/SSIM of
 *               the cached output against the uncached one, seam metric, flicker ratio.
 *   workers     2 workers vs 1 (cache on); redistributed vs static assignment; cache + 2
 *               workers vs the uncached single worker (end to end).
 *   restore     super-resolution check: real frames (tree.avi; the photos chelsea.png
 *               and camera.png) downscaled x2 (antialiased Keys) and restored x2 by
 *               supergen and by bicubic; PSNR/SSIM against the originals and
 *               high-frequency energy relative to the originals.
 *   4k          sdl-supergen (the tool, as a child process) makes 3840x2160 from 16
 *               frames of a 1280x720 clip; its peak RSS is reported.
 *
 * Inputs: tree.avi (320x240 real footage; found in the data directory or its video/
 * subdirectory) and a 1280x720 clip made by panning a window across a real photo
 * (coffee.png, else chelsea.png) upscaled to cover it. --quick: 2 small frames, few
 * steps, no 4k run.
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_families.h"
#include "gen/canvas.h"
#include "gen/denoiser.h"
#include "gen/supergen.h"
#include "image/image.h"
#include "metrics/metrics.h"
#include "metrics/quality.h"
#include "video/video.h"

#define FAMILY "supergen"

/* ---- clips: frames in memory ---------------------------------------------------- */

typedef struct clip {
    sdlk_tensor *frames; /* [h, w, 3] u8 each */
    int64_t count, capacity;
} clip;

static void clip_free(clip *c)
{
    for (int64_t i = 0; i < c->count; i++)
        sdlk_tensor_free(&c->frames[i]);
    free(c->frames);
    memset(c, 0, sizeof(*c));
}

static void clip_clear(clip *c)
{
    for (int64_t i = 0; i < c->count; i++)
        sdlk_tensor_free(&c->frames[i]);
    c->count = 0;
}

/* Append (takes a reference to) frame. */
static sdlk_status clip_push(clip *c, const sdlk_tensor *frame, sdlk_error *err)
{
    if (c->count == c->capacity) {
        int64_t cap = c->capacity ? 2 * c->capacity : 16;
        sdlk_tensor *grown = realloc(c->frames, (size_t)cap * sizeof(*grown));
        if (!grown)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        c->frames = grown;
        c->capacity = cap;
    }
    sdlk_tensor_share(&c->frames[c->count++], frame);
    return SDLK_OK;
}

static int64_t clip_h(const clip *c) { return c->frames[0].shape[0]; }
static int64_t clip_w(const clip *c) { return c->frames[0].shape[1]; }

/* Resize a u8 frame through an f32 canvas (Keys bicubic, antialiased when shrinking). */
static sdlk_status resize_u8(const sdlk_tensor *src, int64_t h, int64_t w, sdlk_pool *pool,
                             sdlk_tensor *out, sdlk_error *err)
{
    sdlk_canvas a = {0}, b = {0};
    sdlk_status st = sdlk_canvas_alloc(&a, 1, src->shape[0], src->shape[1], 3, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_alloc(&b, 1, h, w, 3, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_set_frame_u8(&a, 0, src, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_resize(&a, &b, pool, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_frame_to_u8(&b, 0, 0, 0, out, err);
    sdlk_canvas_free(&a);
    sdlk_canvas_free(&b);
    return st;
}

/* Up to `max_frames` frames of a video, each cropped to crop_h x crop_w (0 = whole). */
static sdlk_status clip_from_video(const char *path, int64_t max_frames, int64_t crop_h,
                                   int64_t crop_w, clip *out, sdlk_error *err)
{
    sdlk_video_reader *reader = NULL;
    sdlk_status st = sdlk_video_open(path, 3, &reader, NULL, err);
    while (st == SDLK_OK && out->count < max_frames) {
        sdlk_tensor frame, cropped;
        sdlk_tensor_init(&frame);
        sdlk_tensor_init(&cropped);
        st = sdlk_video_read_frame(reader, &frame, err);
        if (st == SDLK_ERR_EOF) {
            st = SDLK_OK;
            break;
        }
        if (st != SDLK_OK)
            break;
        int64_t h = crop_h > 0 && crop_h < frame.shape[0] ? crop_h : frame.shape[0];
        int64_t w = crop_w > 0 && crop_w < frame.shape[1] ? crop_w : frame.shape[1];
        st = bench_crop(&frame, 0, 0, h, w, &cropped, err);
        if (st == SDLK_OK)
            st = clip_push(out, &cropped, err);
        sdlk_tensor_free(&frame);
        sdlk_tensor_free(&cropped);
    }
    sdlk_video_close(reader);
    return st;
}

/* An image file (gray or RGB, 8 or 16 bits) as 8-bit RGB into rgb (initialised). */
static sdlk_status read_rgb8(const char *path, sdlk_tensor *rgb, sdlk_error *err)
{
    sdlk_tensor img;
    sdlk_status st = sdlk_image_read(path, &img, NULL, err);
    if (st != SDLK_OK)
        return st;
    st = sdlk_image_to_rgb8(&img, rgb, err);
    sdlk_tensor_free(&img);
    return st;
}

/* A w x h clip of `frames` frames panning right by `pan` pixels per frame across
 * `photo`, upscaled (Keys) just enough to cover the whole pan. */
static sdlk_status clip_from_pan(const char *photo_path, int64_t h, int64_t w, int64_t frames,
                                 int64_t pan, sdlk_pool *pool, clip *out, sdlk_error *err)
{
    sdlk_tensor rgb, big;
    sdlk_tensor_init(&rgb);
    sdlk_tensor_init(&big);
    sdlk_status st = read_rgb8(photo_path, &rgb, err);
    if (st != SDLK_OK) {
        sdlk_tensor_free(&rgb);
        return st;
    }
    double need_w = (double)(w + pan * (frames - 1)), need_h = (double)h;
    double factor = fmax(need_w / (double)rgb.shape[1], need_h / (double)rgb.shape[0]);
    st = resize_u8(&rgb, (int64_t)ceil(rgb.shape[0] * factor),
                   (int64_t)ceil(rgb.shape[1] * factor), pool, &big, err);
    for (int64_t f = 0; st == SDLK_OK && f < frames; f++) {
        sdlk_tensor window;
        sdlk_tensor_init(&window);
        st = bench_crop(&big, (big.shape[0] - h) / 2, f * pan, h, w, &window, err);
        if (st == SDLK_OK)
            st = clip_push(out, &window, err);
        sdlk_tensor_free(&window);
    }
    sdlk_tensor_free(&rgb);
    sdlk_tensor_free(&big);
    return st;
}

/* A one-frame clip of a photo (gray or RGB, 8 or 16 bits: made 8-bit RGB). */
static sdlk_status clip_from_image(const char *path, clip *out, sdlk_error *err)
{
    sdlk_tensor rgb;
    sdlk_tensor_init(&rgb);
    sdlk_status st = read_rgb8(path, &rgb, err);
    if (st == SDLK_OK)
        st = clip_push(out, &rgb, err);
    sdlk_tensor_free(&rgb);
    return st;
}

/* ---- running supergen on a clip -------------------------------------------------- */

typedef struct mem_source {
    const clip *input;
    int64_t next;
} mem_source;

static sdlk_status mem_next(void *ctx, sdlk_tensor *frame, sdlk_error *err)
{
    mem_source *src = ctx;
    if (src->next >= src->input->count)
        return SDLK_ERR_EOF;
    sdlk_tensor_share(frame, &src->input->frames[src->next++]);
    return SDLK_OK;
}

static sdlk_status mem_sink(void *ctx, int64_t index, const sdlk_tensor *frame, sdlk_error *err)
{
    return clip_push(ctx, frame, err);
}

/* One configuration; every run replaces `output` and `stats`. */
typedef struct sg_config {
    const clip *input;
    sdlk_denoiser *model;
    sdlk_supergen_opts opts;
    sdlk_pool *pool;
    clip output;
    sdlk_supergen_stats stats;
} sg_config;

static sdlk_status sg_run(void *ctx, sdlk_error *err)
{
    sg_config *c = ctx;
    clip_clear(&c->output);
    mem_source src = {c->input, 0};
    return sdlk_supergen_run(c->model, &c->opts, mem_next, &src, mem_sink, &c->output, c->pool,
                             &c->stats, err);
}

/* Bicubic x scale of every input frame (the baseline of the restore check). */
typedef struct bicubic_config {
    const clip *input;
    int64_t out_h, out_w;
    sdlk_pool *pool;
    clip output;
} bicubic_config;

static sdlk_status bicubic_run(void *ctx, sdlk_error *err)
{
    bicubic_config *c = ctx;
    clip_clear(&c->output);
    sdlk_status st = SDLK_OK;
    for (int64_t f = 0; st == SDLK_OK && f < c->input->count; f++) {
        sdlk_tensor up;
        sdlk_tensor_init(&up);
        st = resize_u8(&c->input->frames[f], c->out_h, c->out_w, c->pool, &up, err);
        if (st == SDLK_OK)
            st = clip_push(&c->output, &up, err);
        sdlk_tensor_free(&up);
    }
    return st;
}

typedef struct family_state {
    const bench_options *opt;
    sdlk_denoiser *model;
    sdlk_pool *pool;
    int steps, frames, reps;
} family_state;

static sdlk_status config_init(const family_state *s, const clip *input, double scale,
                               int cache, int workers, int redistribute, sg_config *c,
                               sdlk_error *err)
{
    memset(c, 0, sizeof(*c));
    c->input = input;
    c->model = s->model;
    c->pool = s->pool;
    sdlk_status st = sdlk_supergen_opts_init(&c->opts, &s->model->desc, err);
    if (st == SDLK_OK)
        st = sdlk_schedule_init(&c->opts.refine.schedule, s->model->desc.time, s->steps, 0.2,
                                err);
    c->opts.out_h = (int64_t)llround((double)clip_h(input) * scale);
    c->opts.out_w = (int64_t)llround((double)clip_w(input) * scale);
    c->opts.refine.cache.enabled = cache;
    c->opts.refine.workers = workers;
    c->opts.refine.redistribute = redistribute;
    if (s->opt->quick)
        c->opts.refine.cache.warmup = 2;
    return st;
}

/* ---- quality measures on clips ---------------------------------------------------- */

typedef struct clip_quality {
    double psnr, ssim;          /* means over frames (PSNR of identical frames capped) */
} clip_quality;

static sdlk_status compare_clips(const clip *a, const clip *b, clip_quality *q, sdlk_error *err)
{
    double psnr_sum = 0, ssim_sum = 0;
    if (a->count != b->count || a->count == 0)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "clips of %lld and %lld frames",
                              (long long)a->count, (long long)b->count);
    for (int64_t f = 0; f < a->count; f++) {
        double psnr, ssim;
        sdlk_status st = sdlk_psnr(&a->frames[f], &b->frames[f], &psnr, err);
        if (st == SDLK_OK)
            st = sdlk_ssim(&a->frames[f], &b->frames[f], &ssim, err);
        if (st != SDLK_OK)
            return st;
        psnr_sum += isinf(psnr) ? 99.0 : psnr;
        ssim_sum += ssim;
    }
    q->psnr = psnr_sum / (double)a->count;
    q->ssim = ssim_sum / (double)a->count;
    return SDLK_OK;
}

/* Luma planes of a clip, one at a time. */
static sdlk_status frame_luma(const sdlk_tensor *frame, float **plane, sdlk_error *err)
{
    *plane = malloc((size_t)(frame->shape[0] * frame->shape[1]) * sizeof(float));
    if (!*plane)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    return sdlk_image_luma(frame, *plane, err);
}

/* Seam metric of a supergen output: the border lines are those of every torus grid
 * the run used (shift of step k per axis from sdlk_tile_torus_shift). */
static sdlk_status clip_seam(const clip *c, const sg_config *cfg, double *seam, sdlk_error *err)
{
    int64_t h = clip_h(c), w = clip_w(c);
    int64_t tile[3]; /* the cores cover the canvas */
    sdlk_denoiser_core(&cfg->model->desc, tile);
    uint8_t *rows = calloc((size_t)h, 1), *cols = calloc((size_t)w, 1);
    if (!rows || !cols) {
        free(rows);
        free(cols);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    int64_t pad_h = cfg->stats.pad_h, pad_w = cfg->stats.pad_w;
    for (int step = 0; step < cfg->opts.refine.schedule.steps; step++) {
        int64_t shift[3];
        sdlk_tile_torus_shift(tile, cfg->opts.refine.shift_stride, step, shift);
        for (int64_t r = shift[1] % tile[1]; r < pad_h; r += tile[1])
            if (r > 0 && r < h)
                rows[r] = 1;
        for (int64_t x = shift[2] % tile[2]; x < pad_w; x += tile[2])
            if (x > 0 && x < w)
                cols[x] = 1;
    }
    sdlk_seam_acc acc = {0};
    sdlk_status st = SDLK_OK;
    for (int64_t f = 0; st == SDLK_OK && f < c->count; f++) {
        float *plane = NULL;
        st = frame_luma(&c->frames[f], &plane, err);
        if (st == SDLK_OK)
            sdlk_seam_add(&acc, plane, h, w, rows, cols);
        free(plane);
    }
    free(rows);
    free(cols);
    *seam = sdlk_seam_value(&acc);
    return st;
}

static sdlk_status clip_flicker(const clip *c, double *flicker, sdlk_error *err)
{
    sdlk_flicker_acc acc = {0};
    sdlk_status st = SDLK_OK;
    for (int64_t f = 0; st == SDLK_OK && f < c->count; f++) {
        float *plane = NULL;
        st = frame_luma(&c->frames[f], &plane, err);
        if (st == SDLK_OK)
            st = sdlk_flicker_add(&acc, plane, clip_h(c), clip_w(c), err);
        free(plane);
    }
    *flicker = sdlk_flicker_value(&acc);
    sdlk_flicker_free(&acc);
    return st;
}

static sdlk_status clip_hf(const clip *c, double *hf, sdlk_error *err)
{
    double sum = 0;
    for (int64_t f = 0; f < c->count; f++) {
        float *plane = NULL;
        sdlk_status st = frame_luma(&c->frames[f], &plane, err);
        if (st != SDLK_OK) {
            free(plane);
            return st;
        }
        sum += sdlk_hf_energy(plane, clip_h(c), clip_w(c));
        free(plane);
    }
    *hf = sum / (double)c->count;
    return SDLK_OK;
}

static double skip_fraction(const sdlk_supergen_stats *s)
{
    return s->refine.tile_evals ? (double)s->refine.skipped / (double)s->refine.tile_evals : 0;
}

/* max / min busy time over workers: 1.0 is a perfect balance. */
static double imbalance(const sdlk_supergen_stats *s)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < s->refine.workers; i++) {
        lo = fmin(lo, s->refine.busy_s[i]);
        hi = fmax(hi, s->refine.busy_s[i]);
    }
    return lo > 0 ? hi / lo : INFINITY;
}

/* ---- the measurements ------------------------------------------------------------- */

static sdlk_status bench_cache(family_state *s, const clip *input, const char *label,
                               sdlk_bench_report *report, sdlk_error *err)
{
    sg_config on, off;
    sdlk_status st = config_init(s, input, 2.0, 1, 1, 1, &on, err);
    if (st == SDLK_OK)
        st = config_init(s, input, 2.0, 0, 1, 1, &off, err);
    char name[96];
    snprintf(name, sizeof name, "%s %lldfr x2 cache on, 1 worker", label,
             (long long)input->count);
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, name, sg_run, &on, "cache off, 1 worker",
                                sg_run, &off, (double)input->count, "frame/s", 1.0, s->reps,
                                err);
    clip_quality q = {0};
    double seam_on = NAN, seam_off = NAN, seam_bicubic = NAN, flicker_on = NAN,
           flicker_off = NAN;
    /* The same lines in the plain upscale: real footage has its own structure (codec
     * blocks) that the metric sees whatever the tiling does. */
    sg_config bicubic;
    if (st == SDLK_OK)
        st = config_init(s, input, 2.0, 0, 1, 1, &bicubic, err);
    bicubic.opts.upscale_only = 1;
    if (st == SDLK_OK)
        st = sg_run(&bicubic, err);
    if (st == SDLK_OK)
        st = compare_clips(&on.output, &off.output, &q, err);
    if (st == SDLK_OK)
        st = clip_seam(&on.output, &on, &seam_on, err);
    if (st == SDLK_OK)
        st = clip_seam(&off.output, &off, &seam_off, err);
    if (st == SDLK_OK)
        st = clip_seam(&bicubic.output, &on, &seam_bicubic, err);
    if (st == SDLK_OK)
        st = clip_flicker(&on.output, &flicker_on, err);
    if (st == SDLK_OK)
        st = clip_flicker(&off.output, &flicker_off, err);
    if (st == SDLK_OK) {
        double skipped = skip_fraction(&on.stats);
        double speedup = report->results[report->count - 1].speedup;
        double flicker_ratio = flicker_on / flicker_off;
        sdlk_bench_report_note(report,
                               "skipped %.1f %% of %lld tile evals (target >= 40 %%: %s); "
                               "speedup target >= 1.6x: %s; vs uncached: PSNR %.2f dB "
                               "(>= 35: %s), SSIM %.4f; seam %.3f (uncached %.3f, plain "
                               "upscale on the same lines %.3f; <= 1.05: %s); flicker / "
                               "uncached %.3f (within 10 %%: %s)",
                               100 * skipped, (long long)on.stats.refine.tile_evals,
                               skipped >= 0.4 ? "met" : "NOT met",
                               speedup >= 1.6 ? "met" : "NOT met", q.psnr,
                               q.psnr >= 35 ? "met" : "NOT met", q.ssim, seam_on, seam_off,
                               seam_bicubic, seam_on <= 1.05 ? "met" : "NOT met",
                               flicker_ratio,
                               fabs(flicker_ratio - 1) <= 0.1 ? "met" : "NOT met");
        bench_log(s->opt, FAMILY, "cache: %.1f%% skipped, PSNR %.2f dB vs uncached, seam %.3f",
                  100 * skipped, q.psnr, seam_on);
    }
    clip_free(&bicubic.output);
    clip_free(&on.output);
    clip_free(&off.output);
    return st;
}

static sdlk_status bench_workers(family_state *s, const clip *input, const char *label,
                                 sdlk_bench_report *report, sdlk_error *err)
{
    sg_config two, one, two_static, uncached;
    sdlk_status st = config_init(s, input, 2.0, 1, 2, 1, &two, err);
    if (st == SDLK_OK)
        st = config_init(s, input, 2.0, 1, 1, 1, &one, err);
    if (st == SDLK_OK)
        st = config_init(s, input, 2.0, 1, 2, 0, &two_static, err);
    if (st == SDLK_OK)
        st = config_init(s, input, 2.0, 0, 1, 1, &uncached, err);
    char name[96];
    snprintf(name, sizeof name, "%s %lldfr x2 cache, 2 workers", label, (long long)input->count);
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, name, sg_run, &two, "cache, 1 worker", sg_run,
                                &one, (double)input->count, "frame/s", 1.0, s->reps, err);
    if (st == SDLK_OK) {
        double speedup = report->results[report->count - 1].speedup;
        sdlk_bench_report_note(report, "target >= 1.7x on 2 cores: %s; the outputs of 1 and 2 "
                               "workers are compared below and must be identical",
                               speedup >= 1.7 ? "met" : "NOT met");
        clip_quality q;
        st = compare_clips(&two.output, &one.output, &q, err);
        if (st == SDLK_OK && q.psnr < 99.0)
            st = sdlk_error_set(err, SDLK_ERR_INTERNAL,
                                "2 workers gave a different output than 1 (PSNR %.2f dB)",
                                q.psnr);
    }
    snprintf(name, sizeof name, "%s %lldfr x2 cache, 2 workers redistributed", label,
             (long long)input->count);
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, name, sg_run, &two, "2 workers static blocks",
                                sg_run, &two_static, (double)input->count, "frame/s", 1.0,
                                s->reps, err);
    if (st == SDLK_OK)
        sdlk_bench_report_note(report,
                               "busy-time max/min: redistributed %.2f, static %.2f; %lld tiles "
                               "moved; target >= 1.0x when skips are uneven: %s",
                               imbalance(&two.stats), imbalance(&two_static.stats),
                               (long long)two.stats.refine.moved,
                               report->results[report->count - 1].speedup >= 1.0 ? "met"
                                                                                  : "NOT met");
    snprintf(name, sizeof name, "%s %lldfr x2 cache + 2 workers", label, (long long)input->count);
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, name, sg_run, &two, "no cache, 1 worker", sg_run,
                                &uncached, (double)input->count, "frame/s", 1.0, s->reps, err);
    if (st == SDLK_OK) {
        double speedup = report->results[report->count - 1].speedup;
        sdlk_bench_report_note(report, "end to end; target >= 2.7x: %s (SuperGen reports 6.2x "
                               "with its GPUs)", speedup >= 2.7 ? "met" : "NOT met");
    }
    clip_free(&two.output);
    clip_free(&one.output);
    clip_free(&two_static.output);
    clip_free(&uncached.output);
    return st;
}

static sdlk_status bench_restore(family_state *s, const clip *original, const char *label,
                                 sdlk_bench_report *report, sdlk_error *err)
{
    clip sketch = {0};
    sdlk_status st = SDLK_OK;
    int64_t h = clip_h(original) / 2 * 2, w = clip_w(original) / 2 * 2;
    clip cropped = {0};
    for (int64_t f = 0; st == SDLK_OK && f < original->count; f++) {
        sdlk_tensor even, small;
        sdlk_tensor_init(&even);
        sdlk_tensor_init(&small);
        st = bench_crop(&original->frames[f], 0, 0, h, w, &even, err);
        if (st == SDLK_OK)
            st = resize_u8(&even, h / 2, w / 2, s->pool, &small, err);
        if (st == SDLK_OK)
            st = clip_push(&sketch, &small, err);
        if (st == SDLK_OK)
            st = clip_push(&cropped, &even, err);
        sdlk_tensor_free(&even);
        sdlk_tensor_free(&small);
    }
    sg_config sg;
    bicubic_config bic = {&sketch, h, w, s->pool, {0}};
    if (st == SDLK_OK)
        st = config_init(s, &sketch, 2.0, 1, s->opt->threads > 1 ? 2 : 1, 1, &sg, err);
    char name[96];
    snprintf(name, sizeof name, "%s restore x2 (%lldx%lld -> %lldx%lld)", label,
             (long long)(w / 2), (long long)(h / 2), (long long)w, (long long)h);
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, name, sg_run, &sg, "bicubic x2", bicubic_run,
                                &bic, (double)sketch.count, "frame/s", 1.0, 1, err);
    clip_quality q_sg = {0}, q_bic = {0};
    double hf_orig = 0, hf_sg = 0, hf_bic = 0;
    if (st == SDLK_OK)
        st = compare_clips(&sg.output, &cropped, &q_sg, err);
    if (st == SDLK_OK)
        st = compare_clips(&bic.output, &cropped, &q_bic, err);
    if (st == SDLK_OK)
        st = clip_hf(&cropped, &hf_orig, err);
    if (st == SDLK_OK)
        st = clip_hf(&sg.output, &hf_sg, err);
    if (st == SDLK_OK)
        st = clip_hf(&bic.output, &hf_bic, err);
    if (st == SDLK_OK) {
        double r_sg = hf_sg / hf_orig, r_bic = hf_bic / hf_orig;
        int hf_met = fabs(r_sg - 1) < fabs(r_bic - 1);
        sdlk_bench_report_note(report,
                               "vs originals: supergen PSNR %.2f dB SSIM %.4f, bicubic PSNR "
                               "%.2f dB SSIM %.4f (within 1 dB: %s); HF energy / original: "
                               "supergen %.2f, bicubic %.2f (closer: %s)",
                               q_sg.psnr, q_sg.ssim, q_bic.psnr, q_bic.ssim,
                               q_sg.psnr >= q_bic.psnr - 1 ? "met" : "NOT met", r_sg, r_bic,
                               hf_met ? "met" : "NOT met");
        bench_log(s->opt, FAMILY, "restore %s: supergen %.2f dB HF %.2f, bicubic %.2f dB HF %.2f",
                  label, q_sg.psnr, r_sg, q_bic.psnr, r_bic);
    }
    clip_free(&sg.output);
    clip_free(&bic.output);
    clip_free(&sketch);
    clip_free(&cropped);
    return st;
}

/* ---- 4K: the tool as a child, peak RSS -------------------------------------------- */

typedef struct tool_run {
    char tool[4096];
    char input[4096], output[4096];
    long max_rss_kib;
} tool_run;

static sdlk_status tool_run_once(void *ctx, sdlk_error *err)
{
    tool_run *t = ctx;
    pid_t pid = fork();
    if (pid < 0)
        return sdlk_error_errno(err, errno, "fork");
    if (pid == 0) {
        /* A cheap exemplar prior and 2 steps: this run measures memory, not the model.
         * The chunk is the tool's own choice (--max-memory default). */
        execl(t->tool, t->tool, "--preset", "4k", "--steps", "2", "--warmup", "1", "--model",
              "exemplar:max_exemplars=64", "-q", "-o", t->output, t->input, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0)
        return sdlk_error_errno(err, errno, "wait for %s", t->tool);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return sdlk_error_set(err, SDLK_ERR_IO, "%s exited with status %d", t->tool,
                              WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    t->max_rss_kib = usage.ru_maxrss;
    unlink(t->output);
    return SDLK_OK;
}

static sdlk_status write_clip(const clip *c, const char *path, sdlk_error *err)
{
    sdlk_video_writer *w = NULL;
    sdlk_status st = sdlk_video_writer_open(path, (int)clip_w(c), (int)clip_h(c), 3, NULL, &w, err);
    for (int64_t f = 0; st == SDLK_OK && f < c->count; f++)
        st = sdlk_video_write_frame(w, &c->frames[f], err);
    if (st == SDLK_OK)
        return sdlk_video_writer_finish(w, err);
    if (w)
        sdlk_video_writer_abort(w);
    return st;
}

static sdlk_status bench_4k(family_state *s, const clip *pan, sdlk_bench_report *report,
                            sdlk_error *err)
{
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        bench_log(s->opt, FAMILY, "skipped 4k: cannot find our own executable");
        return SDLK_OK;
    }
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    tool_run t = {0};
    snprintf(t.tool, sizeof t.tool, "%s/sdl-supergen", exe);
    if (access(t.tool, X_OK) != 0) {
        bench_log(s->opt, FAMILY, "skipped 4k: %s not found", t.tool);
        return SDLK_OK;
    }
    char *scratch = NULL;
    sdlk_status st = bench_scratch_create(s->opt->tmp_dir, &scratch, err);
    if (st != SDLK_OK)
        return st;
    snprintf(t.input, sizeof t.input, "%s/pan720.mkv", scratch);
    snprintf(t.output, sizeof t.output, "%s/out4k.mp4", scratch);
    st = write_clip(pan, t.input, err);
    bicubic_config bic = {pan, 2160, 3840, s->pool, {0}};
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, "sdl-supergen 1280x720 -> 3840x2160, 16 frames",
                                tool_run_once, &t, "in-process bicubic to 4K", bicubic_run, &bic,
                                (double)pan->count, "frame/s", 1.0, 1, err);
    if (st == SDLK_OK)
        sdlk_bench_report_note(report,
                               "peak RSS %.0f MiB (target <= 4096: %s); default chunk (fitted "
                               "to --max-memory 2048), 2 steps, 64 exemplars, H.264 output; "
                               "memory grows with the chunk, not the length",
                               t.max_rss_kib / 1024.0, t.max_rss_kib <= 4L << 20 ? "met" : "NOT met");
    clip_free(&bic.output);
    unlink(t.input);
    unlink(t.output);
    bench_scratch_remove(scratch);
    return st;
}

/* ---- the family ------------------------------------------------------------------- */

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* `name` in the data directory or in its `sub` subdirectory ("video", "images"). */
static int find_data(const bench_options *opt, const char *sub, const char *name, char *path,
                     size_t size)
{
    const char *dir = opt->data_dir ? opt->data_dir : ".";
    snprintf(path, size, "%s/%s", dir, name);
    if (file_exists(path))
        return 1;
    snprintf(path, size, "%s/%s/%s", dir, sub, name);
    return file_exists(path);
}

sdlk_status bench_supergen(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err)
{
    char tree_path[4096], photo_path[4096];
    if (!find_data(opt, "video", "tree.avi", tree_path, sizeof tree_path)) {
        bench_log(opt, FAMILY, "skipped: tree.avi not in %s", opt->data_dir);
        return SDLK_OK;
    }
    family_state s = {opt, NULL, NULL, opt->quick ? 6 : 15, opt->quick ? 2 : 4,
                      opt->reps < 3 ? opt->reps : 3};
    /* Tile workers are the parallelism measured here; OpenBLAS stays on one thread. */
    openblas_set_num_threads(1);
    sdlk_status st = sdlk_denoiser_open_spec("exemplar", NULL, 0, &s.model, err);
    if (st != SDLK_OK)
        return st;
    s.pool = sdlk_pool_create(opt->threads, err);
    if (!s.pool) {
        sdlk_denoiser_destroy(s.model);
        return err->code;
    }
    clip tree = {0}, pan = {0};
    st = clip_from_video(tree_path, s.frames, opt->quick ? 64 : 0, opt->quick ? 96 : 0, &tree,
                         err);
    if (st == SDLK_OK && tree.count == 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: no frames", tree_path);
    if (st == SDLK_OK)
        st = bench_cache(&s, &tree, "tree.avi", report, err);
    if (st == SDLK_OK)
        st = bench_workers(&s, &tree, "tree.avi", report, err);
    if (st == SDLK_OK)
        st = bench_restore(&s, &tree, "tree.avi", report, err);
    /* Real photos too (the panned clip below is an upscaled photo: it has no real
     * detail to restore, so it only serves the speed and memory figures). */
    static const char *const photos[] = {"chelsea.png", "camera.png"};
    for (int i = 0; st == SDLK_OK && !opt->quick && i < 2; i++) {
        clip photo = {0};
        if (find_data(opt, "images", photos[i], photo_path, sizeof photo_path))
            st = clip_from_image(photo_path, &photo, err);
        if (st == SDLK_OK && photo.count)
            st = bench_restore(&s, &photo, photos[i], report, err);
        clip_free(&photo);
    }
    if (st == SDLK_OK && !opt->quick &&
        (find_data(opt, "images", "coffee.png", photo_path, sizeof photo_path) ||
         find_data(opt, "images", "chelsea.png", photo_path, sizeof photo_path))) {
        const char *base = strrchr(photo_path, '/');
        bench_log(opt, FAMILY, "panning 1280x720 across %s", base ? base + 1 : photo_path);
        st = clip_from_pan(photo_path, 720, 1280, 16, 4, s.pool, &pan, err);
        if (st == SDLK_OK)
            st = bench_4k(&s, &pan, report, err);
    }
    clip_free(&tree);
    clip_free(&pan);
    sdlk_pool_destroy(s.pool);
    sdlk_denoiser_destroy(s.model);
    return st;
}
