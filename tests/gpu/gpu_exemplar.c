/* gpu_exemplar -- the exemplar denoiser's GPU path (device=gpu) against its CPU path.
 *
 * Reference: the real photo $SDL_TESTDATA/chelsea.png as a canvas in [-1, 1]; request 1
 * takes its prior from the photo, request 2 from the photo upside down (so a batch that
 * mixes them exercises the per-prior grouping of the GPU path).
 *
 * Agreement: for 1024 and 4096 exemplars, fixed and moving patch grids, batches of 16
 * windows cut from the photo at different offsets (and steps, which move the grid),
 * every third one from request 2, re-noised to alpha_bar 0 (pure noise), 0.1, 0.5 and
 * 0.99, and one batch with a different level per window (0 .. 1). The GPU outputs are
 * poisoned (NaN) before every call. Result: max |GPU - CPU| per window against
 * exemplar.h's tolerance for its level a, 1e-4 max(1, a / (5 (1 - a))) (the f32 GEMMs'
 * rounding, amplified by sqrt(a) / (1 - a) in the logits); the row reports the worst
 * difference per batch and the largest difference / tolerance. At pure noise the paths
 * share every float operation, so the outputs should be bit-exact (reported, not
 * required: the tolerance decides).
 *
 * Timing (tiles/s for 64 px cores, 72 x 72 windows; 64 tiles per repetition, median of
 * 5 after one warm-up): the GPU as a caller sees it (host copies included, calls of 16
 * and of 64 tiles), the device part alone (sdlk_exemplar_device_ms: gather, GEMMs,
 * softmax, blend), and the CPU path on every core (one thread per core, one OpenBLAS
 * thread each, each predicting its share in calls of 16). Rows:
 *     TABLE|check|size|result|ours|baseline name and figure|ours / baseline
 * Exit 77 (skipped) without a GPU, 1 on any disagreement or error.
 * `gpu_exemplar --cpu-only` runs everything with the CPU path on both sides (checks the
 * harness itself on a machine without a GPU; the tables then compare CPU with CPU). */
#include <cblas.h>
#include <math.h>
#include <png.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "gpu_check.h"
#include "core/pool.h"
#include "core/timer.h"
#include "gen/denoiser.h"
#include "gen/exemplar.h"
#include "gen/schedule.h"

#define BATCH 16
#define TIMED_TILES 64
#define REPS 5

/* exemplar.h's tolerance for a window at level a (alpha_bar, clamped as the model does). */
static double tolerance(double level)
{
    double a = level > 1.0 - 1e-6 ? 1.0 - 1e-6 : level;
    return 1e-4 * fmax(1.0, a / (5.0 * (1.0 - a)));
}

typedef struct photo {
    float *data; /* [h, w, 3] in [-1, 1] */
    int h, w;
} photo;

static int failures;

/* $SDL_TESTDATA (scripts/gpu-check sets it), else tests/data from the repository root,
 * a build directory beside it, or that build's tests/gpu. */
static int load_photo(const char *name, photo *out)
{
    const char *dir = getenv("SDL_TESTDATA");
    const char *const candidates[] = {"tests/data", "../tests/data", "../../tests/data"};
    char path[1024];
    png_image im;
    for (size_t i = 0; i < (dir ? 1 : sizeof candidates / sizeof candidates[0]); i++) {
        snprintf(path, sizeof path, "%s/%s", dir ? dir : candidates[i], name);
        memset(&im, 0, sizeof im);
        im.version = PNG_IMAGE_VERSION;
        if (png_image_begin_read_from_file(&im, path))
            break;
        png_image_free(&im);
        im.width = 0;
    }
    if (!im.width) {
        fprintf(stderr, "gpu_exemplar: cannot read %s (set SDL_TESTDATA)\n", name);
        return -1;
    }
    im.format = PNG_FORMAT_RGB;
    size_t n = (size_t)im.width * im.height * 3;
    uint8_t *px = malloc(n);
    out->data = malloc(n * sizeof *out->data);
    if (!px || !out->data || !png_image_finish_read(&im, NULL, px, 0, NULL)) {
        fprintf(stderr, "gpu_exemplar: %s: %s\n", path,
                px && out->data ? im.message : "out of memory");
        free(px);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        out->data[i] = (float)px[i] / 127.5f - 1.0f;
    out->h = (int)im.height;
    out->w = (int)im.width;
    free(px);
    return 0;
}

/* The photo upside down: a second, different prior of the same size. */
static float *flipped(const photo *p)
{
    size_t row = (size_t)p->w * 3;
    float *f = malloc((size_t)p->h * row * sizeof *f);
    for (int y = 0; f && y < p->h; y++)
        memcpy(f + (size_t)y * row, p->data + (size_t)(p->h - 1 - y) * row, row * sizeof *f);
    return f;
}

static sdlk_denoiser *open_model(const char *options, const photo *p, const float *upside_down)
{
    char spec[256];
    snprintf(spec, sizeof spec, "exemplar:%s", options);
    sdlk_denoiser *d = NULL;
    sdlk_error err = {0};
    sdlk_gen_request r1 = {.id = 1, .reference = p->data, .ref_shape = {1, p->h, p->w, 3}};
    sdlk_gen_request r2 = {.id = 2, .reference = upside_down, .ref_shape = {1, p->h, p->w, 3}};
    if (sdlk_denoiser_open_spec(spec, NULL, 0, &d, &err) ||
        sdlk_denoiser_request_open(d, &r1, &err) || sdlk_denoiser_request_open(d, &r2, &err)) {
        fprintf(stderr, "gpu_exemplar: %s: %s\n", spec, err.msg);
        sdlk_denoiser_destroy(d);
        failures++;
        return NULL;
    }
    return d;
}

/* Window i of a set: cut from the photo at a spread of offsets, re-noised to level. */
static void make_window(const photo *p, int64_t win, int i, double level, float *x,
                        float *noise, sdlk_denoise_item *it)
{
    int oy = (37 * i + 11) % (p->h - (int)win), ox = (53 * i + 5) % (p->w - (int)win);
    for (int64_t y = 0; y < win; y++)
        memcpy(x + y * win * 3, p->data + ((size_t)(oy + y) * p->w + (size_t)ox) * 3,
               (size_t)win * 3 * sizeof *x);
    const int64_t numel = win * win * 3;
    sdlk_gaussian_fill(1000 + (uint64_t)i, 0, noise, numel);
    sdlk_renoise(SDLK_TIME_VP, level, x, noise, x, numel);
    *it = (sdlk_denoise_item){.request = i % 3 == 2 ? 2 : 1, .tile_id = i, .step = i,
                              .level = level, .offset = {0, oy, ox}, .x = x};
}

/* ---- the CPU path on every core ----------------------------------------------------- */

typedef struct cpu_share {
    sdlk_denoiser *d;
    const sdlk_denoise_item *items;
    int first, count, batch;
    sdlk_status status;
    char msg[256];
} cpu_share;

static void *predict_share(void *arg)
{
    cpu_share *s = arg;
    for (int i = s->first; i < s->first + s->count && !s->status; i += s->batch) {
        int n = s->first + s->count - i < s->batch ? s->first + s->count - i : s->batch;
        sdlk_error err = {0};
        s->status = sdlk_denoiser_predict(s->d, s->items + i, n, &err);
        if (s->status)
            snprintf(s->msg, sizeof s->msg, "%s", err.msg);
    }
    return NULL;
}

/* Predict `n` items with `threads` threads, each taking a contiguous share. */
static int predict_threaded(sdlk_denoiser *d, const sdlk_denoise_item *items, int n, int threads,
                            int batch)
{
    cpu_share shares[256];
    pthread_t ids[256];
    int running[256];
    if (threads > n)
        threads = n;
    if (threads > 256)
        threads = 256;
    for (int t = 0; t < threads; t++) {
        int first = (int)((int64_t)n * t / threads), last = (int)((int64_t)n * (t + 1) / threads);
        shares[t] = (cpu_share){.d = d, .items = items, .first = first, .count = last - first,
                                .batch = batch};
        running[t] = pthread_create(&ids[t], NULL, predict_share, &shares[t]) == 0;
        if (!running[t])
            predict_share(&shares[t]); /* no thread to be had: do the share here */
    }
    int rc = 0;
    for (int t = 0; t < threads; t++) {
        if (running[t])
            pthread_join(ids[t], NULL);
        if (shares[t].status) {
            fprintf(stderr, "gpu_exemplar: CPU predict: %s\n", shares[t].msg);
            rc = -1;
        }
    }
    return rc;
}

/* The GPU model: all items, in calls of `batch`. */
static int predict_calls(sdlk_denoiser *d, const sdlk_denoise_item *items, int n, int batch)
{
    for (int i = 0; i < n; i += batch) {
        sdlk_error err = {0};
        if (sdlk_denoiser_predict(d, items + i, n - i < batch ? n - i : batch, &err)) {
            fprintf(stderr, "gpu_exemplar: GPU predict: %s\n", err.msg);
            return -1;
        }
    }
    return 0;
}

/* ---- agreement ---------------------------------------------------------------------- */

/* max |a - b|, a NaN anywhere counting as infinitely far (an unwritten element). */
static double max_abs_diff(const float *a, const float *b, int64_t n, int *bit_exact)
{
    double worst = 0.0;
    *bit_exact = memcmp(a, b, (size_t)n * sizeof *a) == 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        worst = isnan(d) ? INFINITY : fmax(worst, d);
    }
    return worst;
}

static int check_agreement(const photo *p, const float *upside_down, int exemplars,
                           const char *lattice, const char *gpu_device, int threads)
{
    char options[160];
    snprintf(options, sizeof options, "max_exemplars=%d,lattice=%s,batch=%d", exemplars, lattice,
             BATCH);
    sdlk_denoiser *cpu = open_model(options, p, upside_down);
    snprintf(options + strlen(options), sizeof options - strlen(options), ",device=%s", gpu_device);
    sdlk_denoiser *gpu = open_model(options, p, upside_down);
    if (!cpu || !gpu) {
        sdlk_denoiser_destroy(cpu);
        sdlk_denoiser_destroy(gpu);
        return -1;
    }
    const int64_t win = cpu->desc.tile[1], numel = win * win * 3;
    float *x = malloc((size_t)(BATCH * numel) * sizeof *x);
    float *noise = malloc((size_t)numel * sizeof *noise);
    float *want = malloc((size_t)(BATCH * numel) * sizeof *want);
    float *got = malloc((size_t)(BATCH * numel) * sizeof *got);
    sdlk_denoise_item items[BATCH];
    const double levels[] = {0.0, 0.1, 0.5, 0.99, -1.0 /* one level per window */};
    char summary[256] = "";
    double worst_ratio = 0.0;
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        for (int i = 0; i < BATCH; i++) {
            double level = levels[l] >= 0.0 ? levels[l] : (double)i / (BATCH - 1);
            make_window(p, win, (int)l * BATCH + i, level, x + i * numel, noise, &items[i]);
            items[i].out = want + i * numel;
        }
        if (predict_threaded(cpu, items, BATCH, threads, BATCH)) {
            failures++;
            break;
        }
        memset(got, 0xff, (size_t)(BATCH * numel) * sizeof *got); /* NaN poison */
        for (int i = 0; i < BATCH; i++)
            items[i].out = got + i * numel;
        if (predict_calls(gpu, items, BATCH, BATCH)) {
            failures++;
            break;
        }
        int exact = 1;
        double diff = 0.0, ratio = 0.0;
        for (int i = 0; i < BATCH; i++) {
            int same;
            double d = max_abs_diff(got + i * numel, want + i * numel, numel, &same);
            exact &= same;
            diff = fmax(diff, d);
            ratio = fmax(ratio, d / tolerance(items[i].level)); /* NaN diff: inf ratio */
        }
        int ok = ratio <= 1.0;
        worst_ratio = fmax(worst_ratio, ratio);
        char level_name[16];
        snprintf(level_name, sizeof level_name, levels[l] >= 0.0 ? "%g" : "mixed", levels[l]);
        printf("agreement N=%d %s level %s: max |GPU - CPU| %.2e, %.2f of the tolerance%s%s%s\n",
               exemplars, lattice, level_name, diff, ratio, exact ? ", bit-exact" : "",
               levels[l] == 0.0 && !exact ? " (pure noise should be bit-exact: blend order?)" : "",
               ok ? "" : "  FAIL");
        snprintf(summary + strlen(summary), sizeof summary - strlen(summary), "%s%s %.1e",
                 l ? ", " : "", level_name, diff);
        if (!ok)
            failures++;
    }
    printf("TABLE|exemplar GPU = CPU N=%d %s|%d windows %lldx%lld x %zu batches, 2 priors|%s|"
           "max diff %s|CPU path, tol 1e-4 max(1, a/5(1-a))|%.2f of tol\n",
           exemplars, lattice, BATCH, (long long)win, (long long)win,
           sizeof levels / sizeof levels[0], worst_ratio <= 1.0 ? "ok" : "FAIL", summary,
           worst_ratio);
    free(x);
    free(noise);
    free(want);
    free(got);
    sdlk_denoiser_destroy(cpu);
    sdlk_denoiser_destroy(gpu);
    return 0;
}

/* ---- throughput --------------------------------------------------------------------- */

typedef struct timed_set {
    sdlk_denoise_item items[TIMED_TILES];
    float *x, *out;
} timed_set;

static int timed_set_make(const photo *p, int64_t win, timed_set *s)
{
    const int64_t numel = win * win * 3;
    s->x = malloc((size_t)(TIMED_TILES * numel) * sizeof *s->x);
    s->out = malloc((size_t)(TIMED_TILES * numel) * sizeof *s->out);
    float *noise = malloc((size_t)numel * sizeof *noise);
    if (!s->x || !s->out || !noise) {
        free(noise);
        return -1;
    }
    for (int i = 0; i < TIMED_TILES; i++) {
        make_window(p, win, 500 + i, 0.5, s->x + i * numel, noise, &s->items[i]);
        s->items[i].out = s->out + i * numel;
    }
    free(noise);
    return 0;
}

/* Median seconds of one pass over the set: threads > 0 is the CPU path on that many
 * threads, 0 the GPU model in calls of `batch`; *device_s gets the GPU's device part. */
static double time_pass(sdlk_denoiser *d, timed_set *s, int threads, int batch, double *device_s)
{
    double wall[REPS], dev[REPS];
    for (int rep = -1; rep < REPS; rep++) { /* rep -1: warm-up */
        double ms0 = sdlk_exemplar_device_ms(d);
        uint64_t t0 = sdlk_now_ns();
        int rc = threads > 0 ? predict_threaded(d, s->items, TIMED_TILES, threads, batch)
                             : predict_calls(d, s->items, TIMED_TILES, batch);
        double seconds = (double)(sdlk_now_ns() - t0) * 1e-9;
        if (rc) {
            failures++;
            return NAN;
        }
        if (rep >= 0) {
            wall[rep] = seconds;
            dev[rep] = (sdlk_exemplar_device_ms(d) - ms0) * 1e-3;
        }
    }
    if (device_s)
        *device_s = gpu_check_median(dev, REPS);
    return gpu_check_median(wall, REPS);
}

static void check_throughput(const photo *p, const float *upside_down, int exemplars,
                             const char *gpu_device, int threads)
{
    char options[160];
    snprintf(options, sizeof options, "max_exemplars=%d,batch=%d", exemplars, TIMED_TILES);
    sdlk_denoiser *cpu = open_model(options, p, upside_down);
    snprintf(options + strlen(options), sizeof options - strlen(options), ",device=%s", gpu_device);
    sdlk_denoiser *gpu = open_model(options, p, upside_down);
    timed_set set = {0};
    if (cpu && gpu && timed_set_make(p, cpu->desc.tile[1], &set) == 0) {
        double cpu_s = time_pass(cpu, &set, threads, BATCH, NULL);
        double dev16 = 0.0, dev64 = 0.0;
        double gpu16 = time_pass(gpu, &set, 0, BATCH, &dev16);
        double gpu64 = time_pass(gpu, &set, 0, TIMED_TILES, &dev64);
        double cpu_rate = TIMED_TILES / cpu_s;
        const struct {
            int batch;
            double wall, dev;
        } rows[2] = {{BATCH, gpu16, dev16}, {TIMED_TILES, gpu64, dev64}};
        for (int r = 0; r < 2; r++) {
            double rate = TIMED_TILES / rows[r].wall;
            char device[48] = "";
            if (rows[r].dev > 0.0) /* 0 with --cpu-only */
                snprintf(device, sizeof device, " (device alone %.0f)", TIMED_TILES / rows[r].dev);
            printf("TABLE|exemplar tiles/s N=%d|64 px core, calls of %d|%s|%.0f tiles/s%s|"
                   "CPU %d threads %.0f tiles/s|%.2fx\n",
                   exemplars, rows[r].batch, isnan(rate) ? "FAIL" : "ok", rate, device, threads,
                   cpu_rate, rate / cpu_rate);
        }
    } else {
        failures++;
    }
    free(set.x);
    free(set.out);
    sdlk_denoiser_destroy(cpu);
    sdlk_denoiser_destroy(gpu);
}

int main(int argc, char **argv)
{
    const int cpu_only = argc > 1 && strcmp(argv[1], "--cpu-only") == 0;
    int skip = gpu_check_require("gpu_exemplar", cpu_only);
    if (skip)
        return skip;
    int threads = 0;
    sdlk_error err = {0};
    if (sdlk_threads_resolve(0, &threads, &err) != SDLK_OK) {
        fprintf(stderr, "gpu_exemplar: %s\n", err.msg);
        return 1;
    }
    openblas_set_num_threads(1); /* the CPU path's parallelism is the tile threads */
    printf("CPU threads: %d%s\n", threads, cpu_only ? " (--cpu-only)" : "");
    const char *gpu_device = cpu_only ? "cpu" : "gpu";
    photo p;
    if (load_photo("chelsea.png", &p) != 0)
        return 1;
    float *upside_down = flipped(&p);
    if (!upside_down)
        return 1;
    uint64_t t0 = sdlk_now_ns();
    const int sizes[] = {1024, 4096};
    for (int s = 0; s < 2; s++) {
        check_agreement(&p, upside_down, sizes[s], "fixed", gpu_device, threads);
        check_agreement(&p, upside_down, sizes[s], "moving", gpu_device, threads);
    }
    printf("agreement checks: %.1f s\n", sdlk_seconds_since(t0));
    t0 = sdlk_now_ns();
    for (int s = 0; s < 2; s++)
        check_throughput(&p, upside_down, sizes[s], gpu_device, threads);
    printf("throughput checks: %.1f s\n", sdlk_seconds_since(t0));
    free(p.data);
    free(upside_down);
    if (failures)
        fprintf(stderr, "gpu_exemplar: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
