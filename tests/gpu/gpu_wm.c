/* gpu_wm -- watermark detection on the GPU (locate + extract as CUDA kernels) against
 * the CPU path.
 *
 * Agreement. The four real photos of $SDL_TESTDATA are marked with a key, then attacked
 * (JPEG 50 with 4:2:0, a crop keeping half the area at an odd offset, resizes 0.5 and 2);
 * these, the unmarked originals and the marked photos under another key go through
 * stages 2 + 3 on a CPU engine and, as one minibatch of mixed sizes, on a GPU engine.
 * Every image must get the same hypothesis (scale, offset, pilot agreement, Bonferroni
 * count, tiles), band coefficients and soft bits within 1e-5 relative (the kernels repeat
 * the CPU's operations in its order, so they are expected to be identical; the row says
 * whether they were), and after the decision the same detection, p-value and message;
 * marked photos must be detected, unmarked ones and the wrong key not. The single-image
 * entry (sdlk_wm_detect with the GPU) and a GPU detection run through the adaptive
 * pipeline (minibatches, one stream per worker) must agree too.
 *
 * Throughput, in the same run: images/s for 512x512 and 1920x1080 inputs (each photo
 * resized, half of them marked) from decoded pixels to decision, the GPU detection run
 * (adaptive pipeline on all cores: luma and decide on CPU threads, locate + extract on
 * as many streams as the allocator gives that stage) against the CPU path on all cores
 * (every thread runs whole images), and against the same kernels on one stream: staged
 * with the GPU stage pinned to one worker, and unstaged (one thread runs every stage of
 * each minibatch in turn). Rows (the format scripts/gpu-check tabulates):
 *     TABLE|check|size|result|ours|baseline name and figure|ratio
 *
 * SDL_GPU_WM_QUICK=1 runs the agreement part only (for compute-sanitizer, whose checks
 * slow kernels too much for the throughput part).
 *
 * Self-contained on a bare CUDA machine: PNG through libpng's simplified API and the JPEG
 * attack through libjpeg directly (lib/image would bring FFmpeg along); the crop and
 * resizes are plain loops. Exit 77 (skipped) without a GPU, 1 on any disagreement or
 * error. */
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "core/device.h"
#include "gpu_check.h"
#include "core/pipeline.h"
#include "core/pool.h"
#include "core/timer.h"
#include "wm/detect_pipeline.h"
#include "wm/wm.h"

#define SOFT_TOLERANCE 1e-5 /* relative, floor 1 */
#define N_PHOTOS 4
/* images per throughput measurement: a few seconds of the CPU path on 16 cores */
#ifndef COUNT_512
#define COUNT_512 512
#endif
#ifndef COUNT_1080
#define COUNT_1080 192
#endif

static const uint8_t MSG[SDLK_WM_MESSAGE_BYTES] = {0x5d, 0x1e, 0x0b, 0xad, 0xc0, 0xde};
static int failures;

static void fail(const char *fmt, const char *what, const char *detail)
{
    fprintf(stderr, "gpu_wm: ");
    fprintf(stderr, fmt, what, detail);
    fputc('\n', stderr);
    failures++;
}

/* ---- images without lib/image ---------------------------------------------------- */

static int read_png(const char *path, sdlk_tensor *out)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path)) {
        fprintf(stderr, "gpu_wm: %s: %s\n", path, im.message);
        return -1;
    }
    int gray = !(im.format & PNG_FORMAT_FLAG_COLOR);
    im.format = gray ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    int64_t shape[3] = {im.height, im.width, gray ? 1 : 3};
    if (sdlk_tensor_alloc(out, SDLK_U8, 3, shape, NULL) != SDLK_OK) {
        png_image_free(&im);
        return -1;
    }
    if (!png_image_finish_read(&im, NULL, out->data, 0, NULL)) {
        fprintf(stderr, "gpu_wm: %s: %s\n", path, im.message);
        sdlk_tensor_free(out);
        return -1;
    }
    return 0;
}

/* Encode at `quality` (libjpeg's default 4:2:0 for colour) and decode, in memory. */
static int jpeg_roundtrip(const sdlk_tensor *in, int quality, sdlk_tensor *out)
{
    int h = (int)in->shape[0], w = (int)in->shape[1], ch = (int)in->shape[2];
    struct jpeg_error_mgr jerr;
    struct jpeg_compress_struct c;
    c.err = jpeg_std_error(&jerr); /* libjpeg's default: message and exit on error */
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = ch;
    c.in_color_space = ch == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = in->data + (size_t)c.next_scanline * w * ch;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);

    struct jpeg_decompress_struct d;
    d.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, buf, size);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = ch == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&d);
    int64_t shape[3] = {d.output_height, d.output_width, d.output_components};
    if (sdlk_tensor_alloc(out, SDLK_U8, 3, shape, NULL) != SDLK_OK) {
        jpeg_destroy_decompress(&d);
        free(buf);
        return -1;
    }
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = out->data + (size_t)d.output_scanline * d.output_width * d.output_components;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(buf);
    return 0;
}

static int crop(const sdlk_tensor *img, int y0, int x0, int h, int w, sdlk_tensor *out)
{
    int ch = (int)img->shape[2], iw = (int)img->shape[1];
    int64_t shape[3] = {h, w, ch};
    if (sdlk_tensor_alloc(out, SDLK_U8, 3, shape, NULL) != SDLK_OK)
        return -1;
    for (int y = 0; y < h; y++)
        memcpy(out->data + (size_t)y * w * ch, img->data + ((size_t)(y + y0) * iw + x0) * ch,
               (size_t)w * ch);
    return 0;
}

/* Bilinear, centre-aligned, to oh x ow (a 0.5 factor is the 2x2 box average). */
static int resize_to(const sdlk_tensor *img, int oh, int ow, sdlk_tensor *out)
{
    int h = (int)img->shape[0], w = (int)img->shape[1], ch = (int)img->shape[2];
    int64_t shape[3] = {oh, ow, ch};
    if (sdlk_tensor_alloc(out, SDLK_U8, 3, shape, NULL) != SDLK_OK)
        return -1;
    for (int y = 0; y < oh; y++) {
        double fy = fmax(0, (y + 0.5) * h / oh - 0.5);
        int y0 = (int)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        double ay = fy - y0;
        for (int x = 0; x < ow; x++) {
            double fx = fmax(0, (x + 0.5) * w / ow - 0.5);
            int x0 = (int)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            double ax = fx - x0;
            for (int k = 0; k < ch; k++) {
#define PX(yy, xx) img->data[((size_t)(yy) * w + (xx)) * ch + k]
                double v = (1 - ay) * ((1 - ax) * PX(y0, x0) + ax * PX(y0, x1)) +
                           ay * ((1 - ax) * PX(y1, x0) + ax * PX(y1, x1));
#undef PX
                out->data[((size_t)y * ow + x) * ch + k] = (uint8_t)floor(v + 0.5);
            }
        }
    }
    return 0;
}

/* ---- agreement -------------------------------------------------------------------- */

typedef struct case_img {
    char name[64];
    sdlk_tensor img;
    int wrong_key;     /* detect with the other key */
    int expect;        /* 1 must be detected, 0 must not, -1 either (attacks) */
} case_img;

typedef struct outcome {
    sdlk_wm_sync sync;
    float soft[SDLK_WM_GROUPS];
    sdlk_wm_task task;
    sdlk_wm_result result;
} outcome;

static double rel_diff(float a, float b)
{
    double d = fabs((double)a - (double)b);
    double scale = fabs((double)b) > 1.0 ? fabs((double)b) : 1.0;
    return d / scale;
}

/* Stages 2 + 3 of images[] (one key) on `engine`, then the decision. */
static int run_engine(sdlk_wm_engine *engine, const sdlk_wm_key *key, sdlk_wm_plane *planes,
                      int n, outcome *out)
{
    sdlk_wm_detect_params params;
    sdlk_wm_detect_params_init(&params);
    sdlk_wm_task *tasks = calloc((size_t)n, sizeof *tasks);
    if (!tasks)
        return -1;
    for (int i = 0; i < n; i++)
        tasks[i] = (sdlk_wm_task){.luma = &planes[i], .sync = &out[i].sync, .soft = out[i].soft};
    sdlk_error err = {0};
    sdlk_status st = sdlk_wm_locate_extract(engine, &params, tasks, n, &err);
    for (int i = 0; i < n; i++) {
        out[i].task = tasks[i];
        if (st == SDLK_OK && tasks[i].status == SDLK_OK)
            sdlk_wm_decode_decide(key, &out[i].sync, out[i].soft, &params, &out[i].result);
    }
    free(tasks);
    if (st != SDLK_OK) {
        fprintf(stderr, "gpu_wm: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Compare one image's GPU outcome with its CPU one: 1 bit-identical, 0 within the
 * tolerance with the same decision, -1 different (reported). */
static int compare(const case_img *c, const outcome *cpu, const outcome *gpu, int chips,
                   double *max_soft, double *max_band)
{
    if (cpu->task.status != SDLK_OK || gpu->task.status != SDLK_OK) {
        fail("%s: status %s", c->name, cpu->task.status ? cpu->task.error.msg : gpu->task.error.msg);
        return -1;
    }
    const sdlk_wm_sync *a = &cpu->sync, *b = &gpu->sync;
    char detail[256];
    if (a->scale != b->scale || a->offset_y != b->offset_y || a->offset_x != b->offset_x ||
        a->pilot_agree != b->pilot_agree || a->hypotheses != b->hypotheses || a->tiles != b->tiles) {
        snprintf(detail, sizeof detail, "CPU scale %g offset %d,%d pilots %d; GPU scale %g "
                 "offset %d,%d pilots %d", a->scale, a->offset_y, a->offset_x, a->pilot_agree,
                 b->scale, b->offset_y, b->offset_x, b->pilot_agree);
        fail("%s: different hypothesis: %s", c->name, detail);
        return -1;
    }
    int identical = 1;
    for (int i = 0; i < chips; i++) {
        double d = rel_diff(b->blocks[i], a->blocks[i]);
        *max_band = d > *max_band ? d : *max_band;
        identical &= memcmp(&a->blocks[i], &b->blocks[i], sizeof(float)) == 0;
    }
    for (int g = 0; g < SDLK_WM_GROUPS; g++) {
        double d = rel_diff(gpu->soft[g], cpu->soft[g]);
        *max_soft = d > *max_soft ? d : *max_soft;
        identical &= memcmp(&gpu->soft[g], &cpu->soft[g], sizeof(float)) == 0;
        if (d > SOFT_TOLERANCE) {
            snprintf(detail, sizeof detail, "bit %d: CPU %.9g GPU %.9g", g, cpu->soft[g], gpu->soft[g]);
            fail("%s: soft bit beyond tolerance: %s", c->name, detail);
            return -1;
        }
    }
    const sdlk_wm_result *x = &cpu->result, *y = &gpu->result;
    if (x->detected != y->detected || x->p_value != y->p_value || x->message_ok != y->message_ok ||
        (x->message_ok && memcmp(x->message, y->message, SDLK_WM_MESSAGE_BYTES) != 0)) {
        snprintf(detail, sizeof detail, "CPU detected %d p %.3g msg %d; GPU detected %d p %.3g msg %d",
                 x->detected, x->p_value, x->message_ok, y->detected, y->p_value, y->message_ok);
        fail("%s: different decision: %s", c->name, detail);
        return -1;
    }
    if (c->expect >= 0 && x->detected != c->expect)
        fail("%s: %s", c->name, c->expect ? "marked image not detected" : "unmarked image detected");
    if (c->expect == 1 && (!x->message_ok || memcmp(x->message, MSG, SDLK_WM_MESSAGE_BYTES) != 0))
        fail("%s: %s", c->name, "message not read back");
    return identical;
}

/* ---- pipelines over decoded images (luma taken on CPU threads) ---------------------- */

typedef struct img_batch {
    sdlk_wm_det_batch batch; /* first: the library's stages see this */
    const sdlk_tensor **images;
} img_batch;

typedef struct feed {
    img_batch *batches;
    int n_batches, next;
    int64_t images, failed;
    const int *expect_detected; /* per image of the whole feed, or NULL */
    int64_t mismatches;
} feed;

static sdlk_status stage_luma(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)ctx;
    (void)worker;
    img_batch *b = p;
    for (int i = 0; i < b->batch.count; i++) {
        sdlk_wm_det_item *item = &b->batch.items[i];
        uint64_t t0 = sdlk_now_ns();
        sdlk_error why = {0};
        item->status = sdlk_wm_luma_from_image(b->images[i], &item->luma, &why);
        if (item->status != SDLK_OK)
            item->error = why;
        item->seconds += sdlk_seconds_since(t0);
    }
    (void)err;
    return SDLK_OK;
}

static sdlk_status feed_source(void *ctx, void **item, sdlk_error *err)
{
    (void)err;
    feed *f = ctx;
    if (f->next == f->n_batches)
        return SDLK_ERR_EOF;
    *item = &f->batches[f->next++];
    return SDLK_OK;
}

static sdlk_status feed_sink(void *ctx, void *p, sdlk_status st, const sdlk_error *item_err,
                             int failed_stage, sdlk_error *err)
{
    (void)failed_stage;
    feed *f = ctx;
    img_batch *b = p;
    if (st != SDLK_OK)
        return sdlk_error_set(err, st, "%s", item_err->msg);
    for (int i = 0; i < b->batch.count; i++) {
        sdlk_wm_det_item *item = &b->batch.items[i];
        f->failed += item->status != SDLK_OK;
        size_t index = (size_t)(item - f->batches[0].batch.items);
        if (f->expect_detected && item->status == SDLK_OK &&
            item->result.detected != f->expect_detected[index])
            f->mismatches++;
        f->images++;
        sdlk_wm_det_item_clear(item);
    }
    return SDLK_OK;
}

/* Batches of `per_batch` over images[0..n) (one items array, so an item's index is its
 * image's). */
static img_batch *make_batches(const sdlk_tensor **images, int n, int per_batch,
                               sdlk_wm_det_item **items_out, int *n_batches)
{
    int nb = (n + per_batch - 1) / per_batch;
    img_batch *b = calloc((size_t)nb, sizeof *b);
    sdlk_wm_det_item *items = calloc((size_t)n, sizeof *items);
    if (!b || !items) {
        free(b);
        free(items);
        return NULL;
    }
    for (int k = 0; k < nb; k++) {
        b[k].batch.items = items + (size_t)k * per_batch;
        b[k].batch.count = n - k * per_batch < per_batch ? n - k * per_batch : per_batch;
        b[k].images = images + (size_t)k * per_batch;
    }
    *items_out = items;
    *n_batches = nb;
    return b;
}

/* Run the pipeline [luma] + the run's stages over images; images/s, or -1. */
static double run_feed(sdlk_wm_det_run *run, const sdlk_tensor **images, int n, int per_batch,
                       int threads, sdlk_pipeline_mode mode, const int *fixed,
                       const int *expect_detected, double *gpu_streams)
{
    sdlk_wm_det_item *items;
    int nb;
    img_batch *batches = make_batches(images, n, per_batch, &items, &nb);
    if (!batches)
        return -1;
    sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES];
    stages[0] = (sdlk_pipeline_stage){"luma", stage_luma, NULL};
    int n_stages = 1 + sdlk_wm_det_run_luma_stages(run, stages + 1);
    feed f = {batches, nb, 0, 0, 0, expect_detected, 0};
    sdlk_pipeline_config config = SDLK_PIPELINE_CONFIG_INIT;
    config.stages = stages;
    config.n_stages = n_stages;
    config.source = feed_source;
    config.source_ctx = &f;
    config.sink = feed_sink;
    config.sink_ctx = &f;
    config.threads = threads;
    config.mode = mode;
    config.fixed_threads = fixed;
    config.queue_capacity = 2;
    sdlk_pipeline_stats stats;
    sdlk_error err = {0};
    sdlk_status st = sdlk_pipeline_run(&config, &stats, &err);
    double rate = -1;
    if (st != SDLK_OK) {
        fprintf(stderr, "gpu_wm: pipeline: %s\n", err.msg);
        failures++;
    } else if (f.images != n || f.failed || f.mismatches) {
        fprintf(stderr, "gpu_wm: pipeline: %lld of %d images, %lld failed, %lld decisions differ "
                "from the CPU's\n", (long long)f.images, n, (long long)f.failed,
                (long long)f.mismatches);
        failures++;
    } else {
        rate = n / stats.wall_s;
    }
    if (gpu_streams)
        *gpu_streams = stats.n_stages > 1 ? stats.stages[1].mean_threads : 0;
    sdlk_pipeline_stats_free(&stats);
    for (int i = 0; i < n; i++)
        sdlk_wm_det_item_clear(&items[i]);
    free(items);
    free(batches);
    return rate;
}

/* ---- main -------------------------------------------------------------------------- */

static int add_case(case_img *cases, int *n, const char *photo, const char *what, sdlk_tensor img,
                    int wrong_key, int expect)
{
    case_img *c = &cases[(*n)++];
    snprintf(c->name, sizeof c->name, "%s %s", photo, what);
    c->img = img;
    c->wrong_key = wrong_key;
    c->expect = expect;
    return 0;
}

static int check_agreement(const sdlk_tensor *photos, const char *const *names,
                           const sdlk_wm_key *key, const sdlk_wm_key *wrong)
{
    enum { PER_PHOTO = 7 };
    case_img cases[N_PHOTOS * PER_PHOTO];
    int n = 0;
    sdlk_error err = {0};
    for (int p = 0; p < N_PHOTOS; p++) {
        sdlk_tensor marked, a;
        if (sdlk_wm_embed(&photos[p], key, MSG, SDLK_WM_DEFAULT_STRENGTH, &marked, &err) != SDLK_OK) {
            fprintf(stderr, "gpu_wm: embed %s: %s\n", names[p], err.msg);
            return -1;
        }
        int h = (int)marked.shape[0], w = (int)marked.shape[1];
        add_case(cases, &n, names[p], "marked", marked, 0, 1);
        sdlk_tensor_share(&a, &marked);
        add_case(cases, &n, names[p], "marked, wrong key", a, 1, 0);
        if (jpeg_roundtrip(&marked, 50, &a) == 0)
            add_case(cases, &n, names[p], "jpeg50 4:2:0", a, 0, -1);
        if (crop(&marked, 37, 51, (int)(h * 0.7071), (int)(w * 0.7071), &a) == 0)
            add_case(cases, &n, names[p], "crop 50%", a, 0, -1);
        if (resize_to(&marked, (int)lround(h * 0.5), (int)lround(w * 0.5), &a) == 0)
            add_case(cases, &n, names[p], "resize 0.5", a, 0, -1);
        if (resize_to(&marked, h * 2, w * 2, &a) == 0)
            add_case(cases, &n, names[p], "resize 2", a, 0, -1);
        sdlk_tensor_share(&a, &photos[p]);
        add_case(cases, &n, names[p], "unmarked", a, 0, 0);
    }
    if (n != N_PHOTOS * PER_PHOTO) {
        fprintf(stderr, "gpu_wm: could not build every test image\n");
        return -1;
    }
    sdlk_wm_plane planes[N_PHOTOS * PER_PHOTO];
    for (int i = 0; i < n; i++)
        if (sdlk_wm_luma_from_image(&cases[i].img, &planes[i], &err) != SDLK_OK) {
            fprintf(stderr, "gpu_wm: %s: %s\n", cases[i].name, err.msg);
            return -1;
        }
    /* per key: indices into cases */
    outcome *cpu = calloc((size_t)n, sizeof *cpu), *gpu = calloc((size_t)n, sizeof *gpu);
    if (!cpu || !gpu)
        return -1;
    int identical = 0, agreed = 0;
    double max_soft = 0, max_band = 0;
    uint64_t cpu_ns = 0, gpu_ns = 0;
    for (int k = 0; k < 2; k++) {
        const sdlk_wm_key *kk = k ? wrong : key;
        int idx[N_PHOTOS * PER_PHOTO], m = 0;
        sdlk_wm_plane sub[N_PHOTOS * PER_PHOTO];
        for (int i = 0; i < n; i++)
            if (cases[i].wrong_key == k) {
                idx[m] = i;
                sub[m++] = planes[i];
            }
        outcome *oc = calloc((size_t)m, sizeof *oc), *og = calloc((size_t)m, sizeof *og);
        sdlk_wm_engine *ec = NULL, *eg = NULL;
        if (!oc || !og || sdlk_wm_engine_open(kk, SDLK_DEVICE_CPU, &ec, &err) != SDLK_OK ||
            sdlk_wm_engine_open(kk, SDLK_DEVICE_GPU, &eg, &err) != SDLK_OK) {
            fprintf(stderr, "gpu_wm: engine: %s\n", err.msg);
            return -1;
        }
        uint64_t t0 = sdlk_now_ns();
        int rc = run_engine(ec, kk, sub, m, oc);
        uint64_t t1 = sdlk_now_ns();
        rc |= run_engine(eg, kk, sub, m, og); /* one minibatch of mixed sizes */
        uint64_t t2 = sdlk_now_ns();
        cpu_ns += t1 - t0;
        gpu_ns += t2 - t1;
        if (rc != 0)
            return -1;
        for (int j = 0; j < m; j++) {
            cpu[idx[j]] = oc[j];
            gpu[idx[j]] = og[j];
        }
        free(oc);
        free(og);
        sdlk_wm_engine_close(ec);
        sdlk_wm_engine_close(eg);
    }
    for (int i = 0; i < n; i++) {
        int same = compare(&cases[i], &cpu[i], &gpu[i], key->chips, &max_soft, &max_band);
        identical += same == 1;
        agreed += same >= 0;
        printf("  %-34s CPU %-12s GPU %-12s log10 p %7.2f  offset %3d,%-3d scale %-4g %s\n",
               cases[i].name, cpu[i].result.detected ? "detected" : "not detected",
               gpu[i].result.detected ? "detected" : "not detected", gpu[i].result.log10_p,
               gpu[i].sync.offset_y, gpu[i].sync.offset_x, gpu[i].sync.scale,
               same == 1 ? "identical" : same == 0 ? "within tolerance" : "DIFFERENT");
    }
    printf("TABLE|wm_detect_match|%d images|%s|max rel dsoft %.1e|CPU path: agree %d/%d|"
           "identical %d/%d\n", n, failures ? "FAIL" : identical == n ? "exact" : "ok",
           max_soft, agreed, n, identical, n);
    printf("  (max relative band difference %.1e; engines on these images: CPU %.1f ms, GPU "
           "%.1f ms incl. first-call allocations)\n", max_band, cpu_ns * 1e-6, gpu_ns * 1e-6);

    /* the single-image entry with the GPU, and a GPU detection run through the pipeline */
    sdlk_wm_detect_params params;
    sdlk_wm_detect_params_init(&params);
    params.device = SDLK_DEVICE_GPU;
    sdlk_wm_result r;
    if (sdlk_wm_detect(&cases[2].img, key, &params, &r, NULL, &err) != SDLK_OK) {
        fprintf(stderr, "gpu_wm: sdlk_wm_detect on the GPU: %s\n", err.msg);
        failures++;
    } else if (r.detected != cpu[2].result.detected || r.p_value != cpu[2].result.p_value) {
        fail("%s: %s", cases[2].name, "sdlk_wm_detect on the GPU disagrees with the CPU path");
    }
    const sdlk_tensor *imgs[N_PHOTOS * PER_PHOTO];
    int expect[N_PHOTOS * PER_PHOTO], m = 0;
    for (int i = 0; i < n; i++)
        if (!cases[i].wrong_key) {
            imgs[m] = &cases[i].img;
            expect[m++] = cpu[i].result.detected;
        }
    sdlk_wm_det_ctx ctx = {.key = key, .params = params};
    sdlk_wm_det_run *run;
    if (sdlk_wm_det_run_open(&ctx, 4, &run, &err) != SDLK_OK) {
        fprintf(stderr, "gpu_wm: detection run: %s\n", err.msg);
        failures++;
    } else {
        if (run_feed(run, imgs, m, 5, 4, SDLK_PIPE_ADAPTIVE, NULL, expect, NULL) < 0)
            fprintf(stderr, "gpu_wm: the GPU detection run disagrees with the CPU path\n");
        sdlk_wm_det_run_close(run);
    }
    for (int i = 0; i < n; i++) {
        sdlk_wm_sync_free(&cpu[i].sync);
        sdlk_wm_sync_free(&gpu[i].sync);
        sdlk_wm_plane_free(&planes[i]);
        sdlk_tensor_free(&cases[i].img);
    }
    free(cpu);
    free(gpu);
    return 0;
}

/* Throughput rows for one input size. */
static int check_throughput(const sdlk_tensor *photos, const sdlk_wm_key *key, int height,
                            int width, int count, int threads)
{
    enum { DISTINCT = 2 * N_PHOTOS };
    sdlk_tensor distinct[DISTINCT];
    sdlk_error err = {0};
    for (int p = 0; p < N_PHOTOS; p++) {
        if (resize_to(&photos[p], height, width, &distinct[2 * p]) != 0 ||
            sdlk_wm_embed(&distinct[2 * p], key, MSG, SDLK_WM_DEFAULT_STRENGTH, &distinct[2 * p + 1],
                          &err) != SDLK_OK) {
            fprintf(stderr, "gpu_wm: inputs %dx%d: %s\n", width, height, err.msg);
            return -1;
        }
    }
    const sdlk_tensor **imgs = calloc((size_t)count, sizeof *imgs);
    int *expect = calloc((size_t)count, sizeof *expect);
    if (!imgs || !expect)
        return -1;
    for (int i = 0; i < count; i++) {
        imgs[i] = &distinct[i % DISTINCT];
        expect[i] = i % 2; /* odd: marked */
    }
    sdlk_wm_det_ctx cpu_ctx = {.key = key}, gpu_ctx = {.key = key};
    sdlk_wm_detect_params_init(&cpu_ctx.params);
    gpu_ctx.params = cpu_ctx.params;
    gpu_ctx.params.device = SDLK_DEVICE_GPU;
    sdlk_wm_det_run *cpu_run = NULL, *gpu_run = NULL;
    if (sdlk_wm_det_run_open(&cpu_ctx, threads, &cpu_run, &err) != SDLK_OK ||
        sdlk_wm_det_run_open(&gpu_ctx, threads, &gpu_run, &err) != SDLK_OK) {
        fprintf(stderr, "gpu_wm: detection run: %s\n", err.msg);
        return -1;
    }
    /* warm-up: every engine the adaptive run may use grows its buffers outside the timing */
    int warm = threads * SDLK_WM_GPU_BATCH < count ? threads * SDLK_WM_GPU_BATCH : count;
    run_feed(gpu_run, imgs, warm, SDLK_WM_GPU_BATCH, threads, SDLK_PIPE_SEQUENTIAL, NULL, expect,
             NULL);
    double streams = 0;
    double gpu_rate = run_feed(gpu_run, imgs, count, SDLK_WM_GPU_BATCH, threads, SDLK_PIPE_ADAPTIVE,
                               NULL, expect, &streams);
    int fixed[3] = {threads - 2, 1, 1};
    double one_stream = threads >= 4 ? run_feed(gpu_run, imgs, count, SDLK_WM_GPU_BATCH, threads,
                                                 SDLK_PIPE_FIXED, fixed, expect, NULL)
                                     : -1;
    double unstaged = run_feed(gpu_run, imgs, count, SDLK_WM_GPU_BATCH, 1, SDLK_PIPE_SEQUENTIAL,
                               NULL, expect, NULL);
    double cpu_rate = run_feed(cpu_run, imgs, count, 1, threads, SDLK_PIPE_SEQUENTIAL, NULL, expect,
                               NULL);
    char size[32];
    snprintf(size, sizeof size, "%dx%d", width, height);
    if (gpu_rate > 0 && cpu_rate > 0)
        printf("TABLE|wm_detect|%s|ok|%.0f img/s (%.1f streams)|CPU path %d cores %.0f img/s|%.2fx\n",
               size, gpu_rate, streams, threads, cpu_rate, gpu_rate / cpu_rate);
    if (gpu_rate > 0 && one_stream > 0)
        printf("TABLE|wm_streams|%s|ok|%.0f img/s adaptive|staged, GPU stage on 1 stream %.0f "
               "img/s|%.2fx\n", size, gpu_rate, one_stream, gpu_rate / one_stream);
    if (gpu_rate > 0 && unstaged > 0)
        printf("TABLE|wm_staged|%s|ok|%.0f img/s adaptive|same kernels, 1 thread 1 stream %.0f "
               "img/s|%.2fx\n", size, gpu_rate, unstaged, gpu_rate / unstaged);
    sdlk_wm_det_run_close(cpu_run);
    sdlk_wm_det_run_close(gpu_run);
    for (int i = 0; i < DISTINCT; i++)
        sdlk_tensor_free(&distinct[i]);
    free(imgs);
    free(expect);
    return gpu_rate > 0 && cpu_rate > 0 ? 0 : -1;
}

int main(void)
{
    int skip = gpu_check_require("gpu_wm", 0);
    if (skip)
        return skip;
    int threads = 0;
    sdlk_error err = {0};
    if (sdlk_threads_resolve(0, &threads, &err) != SDLK_OK) {
        fprintf(stderr, "gpu_wm: %s\n", err.msg);
        return 1;
    }
    printf("CPU threads: %d\n", threads);
    const char *names[N_PHOTOS] = {"camera.png", "chelsea.png", "coins.png", "astronaut.png"};
    const char *dir = getenv("SDL_TESTDATA");
    sdlk_tensor photos[N_PHOTOS];
    for (int p = 0; p < N_PHOTOS; p++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", names[p]);
        if (read_png(path, &photos[p]) != 0)
            return 1;
    }
    sdlk_wm_key key, wrong;
    if (sdlk_wm_key_derive("gpu check key", 13, SDLK_WM_DEFAULT_TILE, &key, &err) != SDLK_OK ||
        sdlk_wm_key_derive("another key", 11, SDLK_WM_DEFAULT_TILE, &wrong, &err) != SDLK_OK) {
        fprintf(stderr, "gpu_wm: %s\n", err.msg);
        return 1;
    }
    uint64_t t0 = sdlk_now_ns();
    if (check_agreement(photos, names, &key, &wrong) != 0)
        failures++;
    printf("agreement checks: %.1f s\n", sdlk_seconds_since(t0));
    const char *quick = getenv("SDL_GPU_WM_QUICK");
    if (!quick || strcmp(quick, "1") != 0) {
        t0 = sdlk_now_ns();
        if (check_throughput(photos, &key, 512, 512, COUNT_512, threads) != 0)
            failures++;
        if (check_throughput(photos, &key, 1080, 1920, COUNT_1080, threads) != 0)
            failures++;
        printf("throughput checks: %.1f s\n", sdlk_seconds_since(t0));
    }
    for (int p = 0; p < N_PHOTOS; p++)
        sdlk_tensor_free(&photos[p]);
    sdlk_wm_key_free(&key);
    sdlk_wm_key_free(&wrong);
    if (failures)
        fprintf(stderr, "gpu_wm: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
