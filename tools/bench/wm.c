/* wm.c -- the "wm" benchmark family: the keyed tile watermark of lib/wm on real photos.
 *
 *   photos      every *.png of the data directory except digits.png (a sheet of MNIST
 *               digits, not a photo) with both sides >= one tile; the log says which
 *               directory and how many (--quick: the first 3 by name).
 *   quality     sdlk_wm_embed (key KEY, message MSG, default strength and tile) of every
 *               photo; PSNR and SSIM (lib/metrics) against the unmarked photo, mean and
 *               min, in the row's name; the row times embedding against PNG decoding of
 *               the same photos (in memory). Targets in the note.
 *   attacks     per attack (chains of lib/wm/attack.h; random positions seeded per photo
 *               and variant), every marked photo is attacked and detected with the
 *               embedding key at FPR 1e-6: detection rate and bit accuracy of the
 *               48-bit message (the RS-decoded message when it decodes, else the hard
 *               systematic bits) in the row's name; every detection is counted. The row
 *               times detection of the attacked marked images against the same detector
 *               on the same attack applied to the unmarked photos, whose detections
 *               (false positives under attack) are counted too and go in the note. Counts
 *               are taken in every run (warm-up and timed) and must agree.
 *   false pos.  FP_TRIALS (quick: FP_TRIALS_QUICK) trials, each a fresh random key (never
 *               the embedding key) on an unmarked photo, a marked photo (a wrong key) or a
 *               random 128x128 crop of either (small crops keep 10,000 trials fast);
 *               observed detections at FPR 1e-6 next to the nominal rate, and the
 *               fraction of p-values below 0.01 / 0.1 / 0.5 (uniform: the same). The row
 *               times a sample of the random-key crops against the same crops detected
 *               with the embedding key.
 *   throughput  JPEG q90 files (4:2:0, RGB) of 512x512 and 1920x1080, made from the
 *               photos (scaled to cover, centre-cropped, gray expanded to RGB, marked) in
 *               a scratch directory; the staged detector of lib/wm/detect_pipeline.h
 *               (read + decode included) in the ADAPTIVE pipeline on all threads against
 *               (a) the SEQUENTIAL pipeline on 1 thread and (b) the FIXED pipeline with
 *               one thread per stage. Every image must be detected with the right
 *               message, in every run. At 1080p one more row: the same detector reading
 *               only the top-left READ_SIDE^2 pixels (detect_pipeline.h, read_side)
 *               against the whole-image read, with how many are still detected.
 *               (c) invisible-watermark's dwtDct decoder, when /usr/bin/python3 can
 *               import imwatermark with cv2 and pywt (the environment's PYTHONPATH
 *               counts, so a private `pip install --target DIR --no-deps
 *               invisible-watermark opencv-python-headless PyWavelets` plus
 *               PYTHONPATH=DIR works; torch, which its import pulls in for rivaGan,
 *               is stubbed when missing); else the log says why it was skipped, and
 *               this bench installs nothing. A python3 child (bench_python in util.c)
 *               runs WatermarkDecoder('bytes', 32).decode(cv2.imread(path), 'dwtDct')
 *               over the same JPEG files, one image after another with
 *               cv2.setNumThreads(threads); each timed rep is one request (read + decode
 *               of 40, at 1080p 12, images; one pipe round trip included), against the
 *               adaptive detector on the same images.
 *   dwtDct      with (c): robustness side by side, in log lines. dwtDct embeds a 32-bit
 *   robustness  message into the first IW_PHOTOS photos of >= 512x512 (its decoder
 *               refuses images under 256x256); our attack code (lib/wm/attack.h, the
 *               seeds of the attack rows) applies none, JPEG 90 4:2:0, resize 0.5 and a
 *               50 % area crop to its output and to ours; its bit accuracy and exact
 *               messages next to our detections, exact messages and bit accuracy.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include "bench_families.h"
#include "core/pipeline.h"
#include "core/pool.h"
#include "core/timer.h"
#include "image/image.h"
#include "metrics/metrics.h"
#include "wm/attack.h"
#include "wm/detect_pipeline.h"
#include "wm/wm.h"

#define FAMILY "wm"
#define MAX_PHOTOS 64
#define QUICK_PHOTOS 3 /* --quick: the first photos by name only */

static const char KEY[] = "sdl-bench wm key";
static const uint8_t MSG[SDLK_WM_MESSAGE_BYTES] = {0x5d, 0x1b, 0x2a, 0x9c, 0x47, 0xe3};
enum { READ_SIDE = 512 }; /* the --read-side row of the throughput section */
enum { FP_TRIALS = 10000, FP_TRIALS_QUICK = 300, FP_CROP = 128, FP_TIMED = 128,
       FP_TIMED_QUICK = 32 };

/* ---- small helpers -------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int popcount8(unsigned v)
{
    int n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

/* ---- state ---------------------------------------------------------------------- */

typedef struct wm_state {
    const bench_options *opt;
    sdlk_wm_key key;
    int have_key;
    sdlk_wm_detect_params params;
    sdlk_pool *pool;
    int n;                               /* photos */
    char names[MAX_PHOTOS][256];
    sdlk_tensor photo[MAX_PHOTOS], marked[MAX_PHOTOS];
    uint8_t *png[MAX_PHOTOS];            /* the PNG files' bytes (quality row baseline) */
    size_t png_size[MAX_PHOTOS];
    char *scratch;
    struct iw_proc *iw;                  /* invisible-watermark child, or NULL: skipped */
} wm_state;

static void iw_stop(wm_state *s);

static void wm_state_free(wm_state *s)
{
    iw_stop(s);
    for (int i = 0; i < s->n; i++) {
        sdlk_tensor_free(&s->photo[i]);
        sdlk_tensor_free(&s->marked[i]);
        free(s->png[i]);
    }
    if (s->have_key)
        sdlk_wm_key_free(&s->key);
    sdlk_pool_destroy(s->pool);
    bench_scratch_remove(s->scratch);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static sdlk_status load_photos(wm_state *s, sdlk_error *err)
{
    const char *dir = s->opt->data_dir ? s->opt->data_dir : ".";
    DIR *d = opendir(dir);
    if (!d)
        return SDLK_OK; /* no photos: the caller skips */
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL && found < MAX_PHOTOS) {
        size_t len = strlen(e->d_name);
        if (len < 5 || len >= sizeof s->names[0] || strcmp(e->d_name + len - 4, ".png") != 0 ||
            strcmp(e->d_name, "digits.png") == 0)
            continue;
        memcpy(s->names[found++], e->d_name, len + 1);
    }
    closedir(d);
    qsort(s->names, (size_t)found, sizeof s->names[0], name_cmp);
    for (int i = 0; i < found && (!s->opt->quick || s->n < QUICK_PHOTOS); i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, s->names[i]);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            return sdlk_error_set(err, SDLK_ERR_IO, "%s: cannot open", path);
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        uint8_t *bytes = size > 0 ? malloc((size_t)size) : NULL;
        size_t got = bytes ? fread(bytes, 1, (size_t)size, fp) : 0;
        fclose(fp);
        if (!bytes || got != (size_t)size) {
            free(bytes);
            return sdlk_error_set(err, SDLK_ERR_IO, "%s: cannot read", path);
        }
        sdlk_tensor img;
        sdlk_status st = sdlk_image_decode(bytes, (size_t)size, path, &img, NULL, err);
        if (st != SDLK_OK) {
            free(bytes);
            return st;
        }
        if (img.dtype != SDLK_U8 || img.shape[0] < SDLK_WM_DEFAULT_TILE ||
            img.shape[1] < SDLK_WM_DEFAULT_TILE) {
            bench_log(s->opt, FAMILY, "%s: not an 8-bit image of at least one tile, left out",
                      path);
            sdlk_tensor_free(&img);
            free(bytes);
            continue;
        }
        int k = s->n++;
        if (k != i)
            memcpy(s->names[k], s->names[i], sizeof s->names[0]);
        s->photo[k] = img;
        s->png[k] = bytes;
        s->png_size[k] = (size_t)size;
    }
    return SDLK_OK;
}

/* ---- parallel detection over in-memory images ---------------------------------- */

typedef struct det_job {
    const sdlk_wm_key *const *keys;   /* per image key ([n]) or NULL: keys_one */
    const sdlk_wm_key *key_one;
    const sdlk_wm_detect_params *params;
    const sdlk_tensor *const *images;
    int n;
    sdlk_wm_result *result;           /* [n] */
    int *msg_bits;                    /* [n] message bits right (may be NULL) */
    sdlk_status *status;              /* [n] */
    sdlk_error *errs;                 /* [n] */
} det_job;

static void det_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    det_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        const sdlk_wm_key *key = j->keys ? j->keys[i] : j->key_one;
        sdlk_wm_sync sync = {0};
        memset(&j->errs[i], 0, sizeof j->errs[i]);
        j->status[i] = sdlk_wm_detect(j->images[i], key, j->params, &j->result[i],
                                      j->msg_bits ? &sync : NULL, &j->errs[i]);
        if (j->status[i] == SDLK_OK && j->msg_bits) {
            const sdlk_wm_result *r = &j->result[i];
            int right = 0;
            if (r->message_ok) {
                for (int b = 0; b < SDLK_WM_MESSAGE_BYTES; b++)
                    right += 8 - popcount8((unsigned)(r->message[b] ^ MSG[b]));
            } else { /* the hard systematic bits: what the detector read */
                float soft[SDLK_WM_GROUPS];
                int8_t signs[SDLK_WM_GROUPS];
                sdlk_wm_extract_soft(&sync, key, soft);
                sdlk_wm_bit_signs(key, MSG, signs);
                for (int b = 0; b < SDLK_WM_MESSAGE_BITS; b++)
                    right += (soft[b] > 0) == (signs[b] > 0);
            }
            j->msg_bits[i] = right;
        }
        sdlk_wm_sync_free(&sync);
    }
}

static sdlk_status det_run(sdlk_pool *pool, det_job *j, sdlk_error *err)
{
    sdlk_pool_for(pool, j->n, 1, det_range, j);
    for (int i = 0; i < j->n; i++)
        if (j->status[i] != SDLK_OK)
            return sdlk_error_set(err, j->status[i], "%s", j->errs[i].msg);
    return SDLK_OK;
}

/* ---- quality -------------------------------------------------------------------- */

typedef struct quality_bench {
    wm_state *s;
} quality_bench;

static sdlk_status run_embed(void *ctx, sdlk_error *err)
{
    wm_state *s = ((quality_bench *)ctx)->s;
    for (int i = 0; i < s->n; i++) {
        sdlk_tensor out;
        sdlk_status st = sdlk_wm_embed(&s->photo[i], &s->key, MSG, SDLK_WM_DEFAULT_STRENGTH,
                                       &out, err);
        if (st != SDLK_OK)
            return st;
        sdlk_tensor_free(&out);
    }
    return SDLK_OK;
}

static sdlk_status run_png_decode(void *ctx, sdlk_error *err)
{
    wm_state *s = ((quality_bench *)ctx)->s;
    for (int i = 0; i < s->n; i++) {
        sdlk_tensor out;
        sdlk_status st = sdlk_image_decode(s->png[i], s->png_size[i], s->names[i], &out, NULL,
                                           err);
        if (st != SDLK_OK)
            return st;
        sdlk_tensor_free(&out);
    }
    return SDLK_OK;
}

static sdlk_status bench_quality(wm_state *s, sdlk_bench_report *report, sdlk_error *err)
{
    double psnr_sum = 0, psnr_min = INFINITY, ssim_sum = 0, ssim_min = INFINITY;
    for (int i = 0; i < s->n; i++) {
        double psnr, ssim;
        sdlk_status st = sdlk_wm_embed(&s->photo[i], &s->key, MSG, SDLK_WM_DEFAULT_STRENGTH,
                                       &s->marked[i], err);
        if (st == SDLK_OK)
            st = sdlk_psnr(&s->photo[i], &s->marked[i], &psnr, err);
        if (st == SDLK_OK)
            st = sdlk_ssim(&s->photo[i], &s->marked[i], &ssim, err);
        if (st != SDLK_OK) {
            sdlk_error_prefix(err, "%s", s->names[i]);
            return st;
        }
        psnr_sum += psnr;
        ssim_sum += ssim;
        psnr_min = psnr < psnr_min ? psnr : psnr_min;
        ssim_min = ssim < ssim_min ? ssim : ssim_min;
        bench_log(s->opt, FAMILY, "%s %lldx%lldx%lld: PSNR %.2f dB, SSIM %.4f", s->names[i],
                  (long long)s->photo[i].shape[1], (long long)s->photo[i].shape[0],
                  (long long)s->photo[i].shape[2], psnr, ssim);
    }
    double psnr_mean = psnr_sum / s->n, ssim_mean = ssim_sum / s->n;
    char name[96];
    snprintf(name, sizeof name, "embed %d photos: PSNR %.2f mean %.2f min dB, SSIM %.4f mean %.4f min",
             s->n, psnr_mean, psnr_min, ssim_mean, ssim_min);
    quality_bench q = {s};
    sdlk_status st = sdlk_bench_compare(report, FAMILY, name, run_embed, &q,
                                        "PNG decode of the same photos", run_png_decode, &q,
                                        (double)s->n, "img/s", 1.0, s->opt->reps, err);
    if (st != SDLK_OK)
        return st;
    sdlk_bench_report_note(report,
                           "vs the unmarked photo; targets PSNR >= 40 mean %s, >= 38 min %s; "
                           "SSIM >= 0.98 mean %s, min %s; strength %.1f, tile %d, 1 thread",
                           psnr_mean >= 40 ? "met" : "NOT met", psnr_min >= 38 ? "met" : "NOT met",
                           ssim_mean >= 0.98 ? "met" : "NOT met",
                           ssim_min >= 0.98 ? "met" : "NOT met", SDLK_WM_DEFAULT_STRENGTH,
                           SDLK_WM_DEFAULT_TILE);
    return SDLK_OK;
}

/* ---- robustness ----------------------------------------------------------------- */

typedef struct attack_spec {
    const char *label;     /* row label */
    const char *chain[8];  /* chains, NULL-terminated; {NULL} = no attack */
    int variants;          /* seeded variants of each chain per photo (random positions) */
    int variants_quick;
} attack_spec;

static const attack_spec ATTACKS[] = {
    {"none", {NULL}, 1, 1},
    {"jpeg:50:420", {"jpeg:50:420", NULL}, 1, 1},
    {"brightness:0.5", {"brightness:0.5", NULL}, 1, 1},
    {"brightness:1.5", {"brightness:1.5", NULL}, 1, 1},
    {"contrast:0.5", {"contrast:0.5", NULL}, 1, 1},
    {"contrast:1.5", {"contrast:1.5", NULL}, 1, 1},
    {"noise:10", {"noise:10", NULL}, 1, 1},
    {"resize:0.5", {"resize:0.5", NULL}, 1, 1},
    {"resize:2", {"resize:2", NULL}, 1, 1},
    {"crop:0.25@random", {"crop:0.25@random", NULL}, 4, 2},
    {"shift:2..7 (dx=dy, fill)",
     {"shift:2:2", "shift:3:3", "shift:4:4", "shift:5:5", "shift:6:6", "shift:7:7", NULL}, 1, 1},
    {"crop:0.5@random,brightness:1.5,jpeg:80", {"crop:0.5@random,brightness:1.5,jpeg:80", NULL},
     2, 1},
};

typedef struct attack_bench {
    wm_state *s;
    det_job job;
    const sdlk_tensor **images; /* marked or unmarked attacked set */
    int runs, detected, bits, first_detected, first_bits, changed;
} attack_bench;

static sdlk_status run_attack_det(void *ctx, sdlk_error *err)
{
    attack_bench *a = ctx;
    sdlk_status st = det_run(a->s->pool, &a->job, err);
    if (st != SDLK_OK)
        return st;
    int det = 0, bits = 0;
    for (int i = 0; i < a->job.n; i++) {
        det += a->job.result[i].detected;
        bits += a->job.msg_bits ? a->job.msg_bits[i] : 0;
    }
    if (a->runs++ == 0) {
        a->first_detected = det;
        a->first_bits = bits;
    } else if (det != a->first_detected || bits != a->first_bits) {
        a->changed = 1;
    }
    a->detected = det;
    a->bits = bits;
    return SDLK_OK;
}

static sdlk_status bench_attack(wm_state *s, const attack_spec *spec, int *all_ok,
                                sdlk_bench_report *report, sdlk_error *err)
{
    int variants = s->opt->quick ? spec->variants_quick : spec->variants;
    int chains = 0;
    while (spec->chain[chains])
        chains++;
    int per_photo = (chains ? chains : 1) * variants;
    int n = s->n * per_photo;
    sdlk_tensor *att = calloc((size_t)(2 * n), sizeof *att);
    const sdlk_tensor **ptr = calloc((size_t)(2 * n), sizeof *ptr);
    sdlk_wm_result *res = calloc((size_t)(2 * n), sizeof *res);
    int *bits = calloc((size_t)n, sizeof *bits);
    sdlk_status *status = calloc((size_t)(2 * n), sizeof *status);
    sdlk_error *errs = calloc((size_t)(2 * n), sizeof *errs);
    sdlk_status st = SDLK_OK;
    if (!att || !ptr || !res || !bits || !status || !errs)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    /* ptr[0..n): attacked marked photos, ptr[n..2n): the same attacks on unmarked ones */
    for (int p = 0; p < s->n && st == SDLK_OK; p++)
        for (int c = 0; c < (chains ? chains : 1) && st == SDLK_OK; c++)
            for (int v = 0; v < variants && st == SDLK_OK; v++) {
                int k = (p * (chains ? chains : 1) + c) * variants + v;
                uint64_t seed = 1000003ull * (uint64_t)(p + 1) + 7919ull * (uint64_t)v + (uint64_t)c;
                if (!chains) {
                    ptr[k] = &s->marked[p];
                    ptr[n + k] = &s->photo[p];
                    continue;
                }
                sdlk_attack_chain chain;
                st = sdlk_attack_chain_parse(spec->chain[c], &chain, err);
                if (st == SDLK_OK)
                    st = sdlk_attack_chain_apply(&chain, &s->marked[p], seed, &att[k], err);
                if (st == SDLK_OK)
                    st = sdlk_attack_chain_apply(&chain, &s->photo[p], seed, &att[n + k], err);
                ptr[k] = &att[k];
                ptr[n + k] = &att[n + k];
            }
    attack_bench marked = {.s = s, .job = {.key_one = &s->key, .params = &s->params,
                                           .images = ptr, .n = n, .result = res,
                                           .msg_bits = bits, .status = status, .errs = errs}};
    attack_bench clean = {.s = s, .job = {.key_one = &s->key, .params = &s->params,
                                          .images = ptr + n, .n = n, .result = res + n,
                                          .status = status + n, .errs = errs + n}};
    char name[96];
    if (st == SDLK_OK) {
        snprintf(name, sizeof name, "attack %s", spec->label);
        st = sdlk_bench_compare(report, FAMILY, name, run_attack_det, &marked,
                                "same attack, unmarked photos", run_attack_det, &clean, (double)n,
                                "img/s", 1.0, 1, err);
    }
    if (st == SDLK_OK && (marked.changed || clean.changed))
        st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "attack %s: detections differ between runs",
                            spec->label);
    if (st == SDLK_OK) {
        double rate = (double)marked.detected / n;
        double acc = (double)marked.bits / ((double)n * SDLK_WM_MESSAGE_BITS);
        /* the counts go in the row's name, the harness prints it */
        sdlk_bench_result *r = &report->results[report->count - 1];
        snprintf(r->name, sizeof r->name, "attack %.44s: det %d/%d %.3f, bits %.4f", spec->label,
                 marked.detected, n, rate, acc);
        sdlk_bench_report_note(report,
                               "%d photos x %d variant(s), FPR 1e-6; target det >= 0.95 %s; "
                               "unmarked copies detected %d/%d; 1 rep, %d threads",
                               s->n, per_photo, rate >= 0.95 ? "met" : "NOT met",
                               clean.detected, n, s->opt->threads);
        bench_log(s->opt, FAMILY, "attack %s: detected %d/%d, bit accuracy %.4f, unmarked %d/%d",
                  spec->label, marked.detected, n, acc, clean.detected, n);
        if (rate < 0.95)
            *all_ok = 0;
    }
    for (int i = 0; att && i < 2 * n; i++)
        sdlk_tensor_free(&att[i]);
    free(att);
    free(ptr);
    free(res);
    free(bits);
    free(status);
    free(errs);
    return st;
}

/* ---- false positives ------------------------------------------------------------ */

typedef struct fp_bench {
    wm_state *s;
    det_job job;
    int runs, detected, first, changed;
} fp_bench;

static sdlk_status run_fp(void *ctx, sdlk_error *err)
{
    fp_bench *f = ctx;
    sdlk_status st = det_run(f->s->pool, &f->job, err);
    if (st != SDLK_OK)
        return st;
    int det = 0;
    for (int i = 0; i < f->job.n; i++)
        det += f->job.result[i].detected;
    if (f->runs++ == 0)
        f->first = det;
    else if (det != f->first)
        f->changed = 1;
    f->detected = det;
    return SDLK_OK;
}

/* The KS distance from uniform of the results' p-values (or, with `bound`, their
 * Bonferroni bounds). */
static double ks_uniform(const sdlk_wm_result *res, int n, int bound)
{
    double *p = malloc(sizeof *p * (size_t)(n ? n : 1));
    if (!p)
        return 1.0;
    for (int i = 0; i < n; i++)
        p[i] = bound ? res[i].p_bound : res[i].p_value;
    double d = sdlk_ks_uniform(p, (size_t)n);
    free(p);
    return d;
}

static sdlk_status bench_false_positives(wm_state *s, sdlk_bench_report *report, sdlk_error *err)
{
    const int trials = s->opt->quick ? FP_TRIALS_QUICK : FP_TRIALS;
    sdlk_tensor *crops = calloc((size_t)trials, sizeof *crops);
    const sdlk_tensor **ptr = calloc((size_t)trials, sizeof *ptr);
    sdlk_wm_key *keys = calloc((size_t)trials, sizeof *keys);
    const sdlk_wm_key **kptr = calloc((size_t)trials, sizeof *kptr);
    sdlk_wm_result *res = calloc((size_t)trials, sizeof *res);
    sdlk_status *status = calloc((size_t)trials, sizeof *status);
    sdlk_error *errs = calloc((size_t)trials, sizeof *errs);
    int n_keys = 0, whole = 0, wrong_key = 0;
    sdlk_status st = SDLK_OK;
    if (!crops || !ptr || !keys || !kptr || !res || !status || !errs)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    uint64_t rng = 0x5eed5eedull;
    /* trial t: a random key; one in 16 uses a whole photo, the rest a random 128x128
     * crop; odd trials use the marked photo (the key is then a wrong key) */
    for (int t = 0; t < trials && st == SDLK_OK; t++) {
        uint64_t secret[2] = {splitmix(&rng), splitmix(&rng)};
        st = sdlk_wm_key_derive(secret, sizeof secret, SDLK_WM_DEFAULT_TILE, &keys[t], err);
        if (st != SDLK_OK)
            break;
        n_keys++;
        kptr[t] = &keys[t];
        int p = (int)(splitmix(&rng) % (uint64_t)s->n);
        const sdlk_tensor *src = (t & 1) ? &s->marked[p] : &s->photo[p];
        wrong_key += t & 1;
        if (t % 16 == 0) {
            ptr[t] = src;
            whole++;
            continue;
        }
        int64_t h = src->shape[0] < FP_CROP ? src->shape[0] : FP_CROP;
        int64_t w = src->shape[1] < FP_CROP ? src->shape[1] : FP_CROP;
        int64_t y0 = (int64_t)(splitmix(&rng) % (uint64_t)(src->shape[0] - h + 1));
        int64_t x0 = (int64_t)(splitmix(&rng) % (uint64_t)(src->shape[1] - w + 1));
        st = bench_crop(src, y0, x0, h, w, &crops[t], err);
        ptr[t] = &crops[t];
    }
    fp_bench all = {.s = s, .job = {.keys = kptr, .params = &s->params, .images = ptr,
                                    .n = trials, .result = res, .status = status, .errs = errs}};
    uint64_t t0 = sdlk_now_ns();
    if (st == SDLK_OK)
        st = run_fp(&all, err);
    double all_s = sdlk_seconds_since(t0);
    int below[3] = {0, 0, 0};
    double min_p = 1.0, ks = 1.0, ks_bound = 1.0;
    for (int t = 0; st == SDLK_OK && t < trials; t++) {
        double p = res[t].p_value;
        below[0] += p < 0.01;
        below[1] += p < 0.1;
        below[2] += p < 0.5;
        min_p = p < min_p ? p : min_p;
    }
    if (st == SDLK_OK) {
        /* Kolmogorov-Smirnov distance of the p-values, and of the Bonferroni bounds, from
         * the uniform distribution; 1.36 / sqrt(n) is the 5 % critical value */
        ks = ks_uniform(res, trials, 0);
        ks_bound = ks_uniform(res, trials, 1);
        bench_log(s->opt, FAMILY,
                  "false positives: %d of %d random-key trials detected (%d whole photos, %d "
                  "on marked photos with a wrong key) in %.1f s; min p %.3g; KS distance "
                  "from uniform %.4f (Bonferroni bound %.4f; 5 %% critical %.4f)",
                  all.detected, trials, whole, wrong_key, all_s, min_p, ks, ks_bound,
                  1.36 / sqrt((double)trials));
    }
    /* the timed row: a sample of the crops with random keys vs the same crops of marked
     * photos with the embedding key */
    int sample = 0;
    const sdlk_tensor **sptr = NULL;
    sdlk_tensor *mcrops = NULL;
    if (st == SDLK_OK) {
        sptr = calloc(2 * FP_TIMED, sizeof *sptr);
        mcrops = calloc(FP_TIMED, sizeof *mcrops);
        if (!sptr || !mcrops)
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    const sdlk_wm_key *skeys[FP_TIMED];
    const int timed = s->opt->quick ? FP_TIMED_QUICK : FP_TIMED;
    for (int t = 0; st == SDLK_OK && t < trials && sample < timed; t++) {
        if (t % 16 == 0 || (t & 1))
            continue; /* unmarked crops only */
        int p = (int)(rng % (uint64_t)s->n);
        splitmix(&rng);
        const sdlk_tensor *m = &s->marked[p];
        int64_t h = m->shape[0] < FP_CROP ? m->shape[0] : FP_CROP;
        int64_t w = m->shape[1] < FP_CROP ? m->shape[1] : FP_CROP;
        st = bench_crop(m, (int64_t)(splitmix(&rng) % (uint64_t)(m->shape[0] - h + 1)),
                       (int64_t)(splitmix(&rng) % (uint64_t)(m->shape[1] - w + 1)), h, w,
                       &mcrops[sample], err);
        sptr[sample] = ptr[t];
        sptr[FP_TIMED + sample] = &mcrops[sample];
        skeys[sample] = kptr[t];
        sample++;
    }
    sdlk_wm_result sres[2 * FP_TIMED];
    sdlk_status sstat[2 * FP_TIMED];
    sdlk_error *serr = st == SDLK_OK ? calloc(2 * FP_TIMED, sizeof *serr) : NULL;
    if (st == SDLK_OK && !serr)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    fp_bench neg = {.s = s, .job = {.keys = skeys, .params = &s->params, .images = sptr,
                                    .n = sample, .result = sres, .status = sstat, .errs = serr}};
    fp_bench pos = {.s = s, .job = {.key_one = &s->key, .params = &s->params,
                                    .images = sptr + FP_TIMED, .n = sample,
                                    .result = sres + FP_TIMED, .status = sstat + FP_TIMED,
                                    .errs = serr + FP_TIMED}};
    if (st == SDLK_OK) {
        char name[96];
        snprintf(name, sizeof name, "false pos: %d/%d, rate %.2g vs 1e-6; p<.01/.1/.5: "
                 "%.3f/%.3f/%.3f, KS %.3f",
                 all.detected, trials, (double)all.detected / trials, (double)below[0] / trials,
                 (double)below[1] / trials, (double)below[2] / trials, ks);
        st = sdlk_bench_compare(report, FAMILY, name, run_fp, &neg,
                                "same crops marked, right key", run_fp, &pos, (double)sample,
                                "img/s", 1.0, s->opt->reps, err);
    }
    if (st == SDLK_OK) {
        sdlk_bench_report_note(
            report, "%d keys: %d photos + %d %dx%d crops, half marked (wrong key); 0 FP %s; "
                    "p: %d decoys, uniform %s (KS %.4f vs 5%% critical %.4f; Bonferroni bound "
                    "alone: KS %.3f); timed: %d crops (%d detected w/ right key)",
            trials, whole, trials - whole, FP_CROP, FP_CROP, all.detected == 0 ? "met" : "NOT met",
            s->params.decoys, ks <= 1.36 / sqrt((double)trials) ? "met" : "NOT met", ks,
            1.36 / sqrt((double)trials), ks_bound, sample, pos.detected);
    }
    for (int t = 0; t < n_keys; t++)
        sdlk_wm_key_free(&keys[t]);
    for (int t = 0; crops && t < trials; t++)
        sdlk_tensor_free(&crops[t]);
    for (int t = 0; mcrops && t < FP_TIMED; t++)
        sdlk_tensor_free(&mcrops[t]);
    free(crops);
    free(ptr);
    free(keys);
    free(kptr);
    free(res);
    free(status);
    free(errs);
    free(sptr);
    free(mcrops);
    free(serr);
    return st;
}

/* ---- throughput ----------------------------------------------------------------- */

typedef struct tp_bench {
    const sdlk_wm_det_ctx *det;
    char (*paths)[4096];
    int n_files, n_items;
    int threads;
    sdlk_pipeline_mode mode;
    int next, detected, right, failed;
    int require_all;           /* every image detected with the right message, or fail */
    sdlk_pipeline_mode ran;    /* the mode the pipeline really ran (T < S falls back) */
    char first_error[256];
} tp_bench;

static sdlk_status tp_source(void *ctx, void **out, sdlk_error *err)
{
    tp_bench *b = ctx;
    if (b->next >= b->n_items)
        return SDLK_ERR_EOF;
    sdlk_wm_det_item *item = calloc(1, sizeof *item);
    if (!item)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    item->path = b->paths[b->next++ % b->n_files];
    *out = item;
    return SDLK_OK;
}

static void tp_discard(void *ctx, void *p)
{
    (void)ctx;
    sdlk_wm_det_item_clear(p);
    free(p);
}

static sdlk_status tp_sink(void *ctx, void *p, sdlk_status item_status, const sdlk_error *item_err,
                           int failed_stage, sdlk_error *err)
{
    (void)failed_stage;
    (void)err;
    tp_bench *b = ctx;
    sdlk_wm_det_item *item = p;
    if (item_status != SDLK_OK) {
        if (!b->failed++)
            snprintf(b->first_error, sizeof b->first_error, "%s", item_err->msg);
    } else {
        b->detected += item->result.detected;
        b->right += item->result.detected && item->result.message_ok &&
                    memcmp(item->result.message, MSG, sizeof MSG) == 0;
    }
    tp_discard(NULL, item);
    return SDLK_OK;
}

static sdlk_status run_tp(void *ctx, sdlk_error *err)
{
    tp_bench *b = ctx;
    b->next = b->detected = b->right = b->failed = 0;
    sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES];
    sdlk_wm_det_stages(b->det, stages);
    sdlk_pipeline_config config = SDLK_PIPELINE_CONFIG_INIT;
    config.stages = stages;
    config.n_stages = SDLK_WM_DET_STAGES;
    config.source = tp_source;
    config.source_ctx = b;
    config.sink = tp_sink;
    config.sink_ctx = b;
    config.discard = tp_discard;
    config.threads = b->threads;
    config.mode = b->mode;
    config.in_order = 1;
    sdlk_pipeline_stats stats;
    sdlk_status st = sdlk_pipeline_run(&config, &stats, err);
    b->ran = stats.mode;
    sdlk_pipeline_stats_free(&stats);
    if (st != SDLK_OK)
        return st;
    if (b->failed)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%d images failed: %s", b->failed,
                              b->first_error);
    if (b->require_all && b->right != b->n_items)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL,
                              "only %d of %d marked JPEGs detected with the right message",
                              b->right, b->n_items);
    return SDLK_OK;
}

/* Scale `img` to cover w x h, centre-crop, expand gray to RGB, mark it. */
static sdlk_status make_input(wm_state *s, const sdlk_tensor *img, int w, int h, sdlk_tensor *out,
                              sdlk_error *err)
{
    double f = fmax((double)w / img->shape[1], (double)h / img->shape[0]);
    sdlk_tensor scaled, window, rgb;
    sdlk_tensor_init(&scaled);
    sdlk_tensor_init(&window);
    sdlk_tensor_init(&rgb);
    sdlk_status st = SDLK_OK;
    if (fabs(f - 1.0) > 1e-9 || img->shape[1] < w || img->shape[0] < h) {
        sdlk_attack a;
        char text[64];
        snprintf(text, sizeof text, "resize:%.6f", f * 1.0001);
        st = sdlk_attack_parse(text, &a, err);
        if (st == SDLK_OK)
            st = sdlk_attack_apply(&a, img, 0, &scaled, err);
    } else {
        st = sdlk_tensor_contiguous(&scaled, img, err);
    }
    if (st == SDLK_OK && (scaled.shape[0] < h || scaled.shape[1] < w))
        st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "resize gave %lldx%lld, want >= %dx%d",
                            (long long)scaled.shape[1], (long long)scaled.shape[0], w, h);
    if (st == SDLK_OK)
        st = bench_crop(&scaled, (scaled.shape[0] - h) / 2, (scaled.shape[1] - w) / 2, h, w,
                       &window, err);
    if (st == SDLK_OK) {
        int64_t shape[3] = {h, w, 3};
        st = sdlk_tensor_alloc(&rgb, SDLK_U8, 3, shape, err);
        int64_t c = window.shape[2];
        for (int64_t i = 0; st == SDLK_OK && i < (int64_t)w * h; i++)
            for (int k = 0; k < 3; k++)
                rgb.data[3 * i + k] = window.data[c * i + (c >= 3 ? k : 0)];
    }
    if (st == SDLK_OK)
        st = sdlk_wm_embed(&rgb, &s->key, MSG, SDLK_WM_DEFAULT_STRENGTH, out, err);
    sdlk_tensor_free(&scaled);
    sdlk_tensor_free(&window);
    sdlk_tensor_free(&rgb);
    return st;
}

/* ---- invisible-watermark's dwtDct (the in-run baseline (c)) ---------------------- */

/* The child: imports imwatermark with the environment's PYTHONPATH, so a private
 * `pip install --target DIR` works. imwatermark/__init__ imports its rivaGan module, which
 * imports torch at import time although dwtDct never uses it; when torch (or onnxruntime)
 * is what is missing, a stand-in rivaGan module is put in its place and the import is
 * retried, and the ready line says so. Requests, one line each:
 *   file PATH        add a throughput input          clear   forget them
 *   decode N         read + dwtDct-decode N inputs (cycled); reply: the seconds inside
 *   embed DST\tSRC   dwtDct-embed the 32-bit message (argv[2], hex) into SRC, PNG to DST
 *   read PATH        decode PATH; reply: message bits right, or -1 and why */
static const char iw_child[] =
    "import sys, time, types\n"
    "try:\n"
    "    try:\n"
    "        from imwatermark import WatermarkEncoder, WatermarkDecoder\n"
    "        how = 'imported as is'\n"
    "    except ImportError as e:\n"
    "        if e.name not in ('torch', 'onnxruntime'): raise\n"
    "        for k in [k for k in sys.modules if k.startswith('imwatermark')]: del sys.modules[k]\n"
    "        riva = types.ModuleType('imwatermark.rivaGan'); riva.RivaWatermark = None\n"
    "        sys.modules['imwatermark.rivaGan'] = riva\n"
    "        from imwatermark import WatermarkEncoder, WatermarkDecoder\n"
    "        how = 'rivaGan stubbed: no %s, unused by dwtDct' % e.name\n"
    "    import cv2\n"
    "except Exception as e:\n"
    "    print('missing', type(e).__name__ + ':', str(e).replace('\\n', ' '), flush=True)\n"
    "    sys.exit(0)\n"
    "try:\n"
    "    from importlib.metadata import version; ver = version('invisible-watermark')\n"
    "except Exception:\n"
    "    ver = '?'\n"
    "cv2.setNumThreads(int(sys.argv[1]))\n"
    "msg = bytes.fromhex(sys.argv[2])\n"
    "dec = WatermarkDecoder('bytes', 8 * len(msg))\n"
    "enc = WatermarkEncoder(); enc.set_watermark('bytes', msg)\n"
    "files = []\n"
    "print('ready %s, OpenCV %s, cv2 %d thr; %s' % (ver, cv2.__version__, cv2.getNumThreads(), how), flush=True)\n"
    "for line in sys.stdin:\n"
    "    op, _, arg = line.rstrip('\\n').partition(' ')\n"
    "    if op == 'file': files.append(arg); print('ok', len(files), flush=True)\n"
    "    elif op == 'clear': files = []; print('ok 0', flush=True)\n"
    "    elif op == 'decode':\n"
    "        n = int(arg); t = time.perf_counter()\n"
    "        for i in range(n): dec.decode(cv2.imread(files[i % len(files)]), 'dwtDct')\n"
    "        print('ok %.9f' % (time.perf_counter() - t), flush=True)\n"
    "    elif op == 'embed':\n"
    "        dst, _, src = arg.partition('\\t')\n"
    "        print('ok' if cv2.imwrite(dst, enc.encode(cv2.imread(src), 'dwtDct')) else 'failed', 1, flush=True)\n"
    "    elif op == 'read':\n"
    "        try:\n"
    "            got = dec.decode(cv2.imread(arg), 'dwtDct')\n"
    "            print('ok', sum(8 - bin(a ^ b).count('1') for a, b in zip(got, msg)), flush=True)\n"
    "        except Exception as e:\n"
    "            print('ok -1', str(e).replace('\\n', ' '), flush=True)\n"
    "    else: print('unknown', op, flush=True)\n";

enum { IW_MSG_BYTES = 4, IW_MAX_TIMED = 64 };

typedef struct iw_proc {
    bench_python py;
    char info[200];
    int n_items;                  /* inputs per "decode" request */
    double inside[IW_MAX_TIMED];  /* in-Python seconds of each request */
    int ninside;
} iw_proc;

static void iw_stop(wm_state *s)
{
    if (!s->iw)
        return;
    bench_python_stop(&s->iw->py);
    free(s->iw);
    s->iw = NULL;
}

/* Start the child for the whole family; when imwatermark cannot be used the log says
 * why and s->iw stays NULL (the baseline is optional: this bench installs nothing). */
static sdlk_status iw_start(wm_state *s, sdlk_error *err)
{
    iw_proc *p = calloc(1, sizeof *p);
    if (!p)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    char threads[16], hex[2 * IW_MSG_BYTES + 1], why[256];
    snprintf(threads, sizeof threads, "%d", s->opt->threads);
    for (int i = 0; i < IW_MSG_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", MSG[i]);
    const char *args[] = {threads, hex, NULL};
    if (!bench_python_start(&p->py, iw_child, args, p->info, sizeof p->info, why, sizeof why)) {
        const char *pp = getenv("PYTHONPATH");
        const char *reason = strncmp(why, "missing ", 8) == 0 ? why + 8 : why;
        bench_log(s->opt, FAMILY, "invisible-watermark dwtDct baseline skipped: /usr/bin/python3 "
                                  "(PYTHONPATH %s) cannot use imwatermark: %s; this bench "
                                  "installs nothing (see sdl-bench(1), wm)",
                  pp && *pp ? pp : "unset", reason);
        free(p);
        return SDLK_OK;
    }
    s->iw = p;
    bench_log(s->opt, FAMILY, "invisible-watermark %s", p->info);
    return SDLK_OK;
}

static sdlk_status run_iw_decode(void *ctx, sdlk_error *err)
{
    iw_proc *p = ctx;
    char request[32], reply[64];
    snprintf(request, sizeof request, "decode %d", p->n_items);
    sdlk_status st = bench_python_request(&p->py, request, reply, sizeof reply, err);
    if (st == SDLK_OK && p->ninside < IW_MAX_TIMED)
        p->inside[p->ninside++] = atof(reply);
    return st;
}

/* Throughput row (c): the adaptive detector against dwtDct decoding the same JPEG files
 * in the child, each side reading and decoding every image. */
static sdlk_status bench_iw_throughput(wm_state *s, const tp_bench *subject_in, int w, int h,
                                       sdlk_bench_report *report, sdlk_error *err)
{
    iw_proc *p = s->iw;
    /* dwtDct decodes a few 1080p images a second: fewer inputs than the other rows so
     * the baseline's reps stay within seconds; the same count on both sides */
    int n_items = s->opt->quick ? subject_in->n_items : (w * h > 1000000 ? 12 : 40);
    tp_bench subject = *subject_in;
    subject.n_items = n_items;
    sdlk_status st = bench_python_request(&p->py, "clear", NULL, 0, err);
    for (int i = 0; i < subject.n_files && st == SDLK_OK; i++) {
        char request[4200];
        snprintf(request, sizeof request, "file %s", subject.paths[i]);
        st = bench_python_request(&p->py, request, NULL, 0, err);
    }
    p->n_items = n_items;
    p->ninside = 0;
    char name[96];
    snprintf(name, sizeof name, "detect %dx%d JPEG q90, adaptive, %d thr, vs dwtDct", w, h,
             s->opt->threads);
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, name, run_tp, &subject,
                                "invisible-watermark dwtDct decode (python3)", run_iw_decode, p,
                                (double)n_items, "img/s", 1.0, s->opt->reps, err);
    if (st == SDLK_OK) {
        /* drop the warm-up, report the in-Python median too */
        double inside = p->ninside > 1 ? sdlk_median(p->inside + 1, (size_t)p->ninside - 1) : 0;
        sdlk_bench_report_note(report,
                               "imwatermark %.*s; %d files cycled to %d, read+decode both "
                               "sides; baseline 1 process, 1 image at a time, timed here per "
                               "rep incl. 1 pipe round trip (in-Python %.1f img/s); files "
                               "carry our mark (dwtDct's cost does not depend on it)",
                               (int)strcspn(p->info, ";"), p->info, subject.n_files, n_items,
                               inside > 0 ? n_items / inside : 0.0);
        bench_log(s->opt, FAMILY, "%dx%d: invisible-watermark dwtDct in-Python median %.3f s for "
                                  "%d images (%.1f img/s; cv2 threads as in its ready line)",
                  w, h, inside, n_items, inside > 0 ? n_items / inside : 0.0);
    }
    return st;
}

static sdlk_status bench_throughput(wm_state *s, int w, int h, int n_items,
                                    sdlk_bench_report *report, sdlk_error *err)
{
    sdlk_status st = SDLK_OK;
    if (!s->scratch)
        st = bench_scratch_create(s->opt->tmp_dir, &s->scratch, err);
    char(*paths)[4096] = calloc((size_t)s->n, sizeof *paths);
    if (!paths)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    sdlk_image_write_opts wo;
    sdlk_image_write_opts_init(&wo);
    wo.jpeg_quality = 90;
    wo.chroma = SDLK_CHROMA_420;
    for (int i = 0; i < s->n && st == SDLK_OK; i++) {
        sdlk_tensor in;
        st = make_input(s, &s->photo[i], w, h, &in, err);
        snprintf(paths[i], sizeof paths[i], "%s/%dx%d-%02d.jpg", s->scratch, w, h, i);
        if (st == SDLK_OK)
            st = sdlk_image_write(paths[i], &in, &wo, err);
        sdlk_tensor_free(&in);
    }
    sdlk_wm_det_ctx det = {.key = &s->key, .params = s->params};
    tp_bench subject = {.det = &det, .paths = paths, .n_files = s->n, .n_items = n_items,
                        .threads = s->opt->threads, .mode = SDLK_PIPE_ADAPTIVE,
                        .require_all = 1};
    tp_bench seq = subject, fixed = subject;
    seq.threads = 1;
    seq.mode = SDLK_PIPE_SEQUENTIAL;
    fixed.threads = SDLK_WM_DET_STAGES;
    fixed.mode = SDLK_PIPE_FIXED;
    char name[96];
    snprintf(name, sizeof name, "detect %dx%d JPEG q90, adaptive, %d thr", w, h, s->opt->threads);
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, name, run_tp, &subject,
                                "sequential detector, 1 thread", run_tp, &seq, (double)n_items,
                                "img/s", 1.0, s->opt->reps, err);
    if (st == SDLK_OK) {
        const sdlk_bench_result *r = &report->results[report->count - 1];
        sdlk_bench_report_note(report,
                               "read+decode+all stages, %d files cycled to %d, all detected, "
                               "right message; ran %s; targets >= %d img/s %s, >= 1.6x seq %s",
                               s->n, n_items, sdlk_pipeline_mode_name(subject.ran),
                               w == 512 ? 100 : 25,
                               r->subject_rate >= (w == 512 ? 100 : 25) ? "met" : "NOT met",
                               r->speedup >= 1.6 ? "met" : "NOT met");
        st = sdlk_bench_compare(report, FAMILY, name, run_tp, &subject,
                                "fixed pipeline, 1 thread per stage (4)", run_tp, &fixed,
                                (double)n_items, "img/s", 1.0, s->opt->reps, err);
    }
    if (st == SDLK_OK)
        sdlk_bench_report_note(report, "the same files; FIXED (ran %s): decode/locate/extract/"
                                       "decide one thread each; in-order delivery on both sides",
                               sdlk_pipeline_mode_name(fixed.ran));
    if (st == SDLK_OK && s->iw)
        st = bench_iw_throughput(s, &subject, w, h, report, err);
    /* Reading only a corner (sdl-wmdetect --read-side) where the image is far larger
     * than the region: the gain, and how many images are still detected. */
    if (st == SDLK_OK && w * h > 4 * READ_SIDE * READ_SIDE) {
        sdlk_wm_det_ctx corner = det;
        corner.read_side = READ_SIDE;
        tp_bench part = subject;
        part.det = &corner;
        part.require_all = 0;
        snprintf(name, sizeof name, "detect %dx%d JPEG q90, top-left %d^2 read, %d thr", w, h,
                 READ_SIDE, s->opt->threads);
        st = sdlk_bench_compare(report, FAMILY, name, run_tp, &part,
                                "the same, whole image read (adaptive)", run_tp, &subject,
                                (double)n_items, "img/s", 1.0, s->opt->reps, err);
        if (st == SDLK_OK)
            sdlk_bench_report_note(report, "--read-side %d: %d of %d detected with the right "
                                           "message (whole image: all); same FPR guarantee",
                                   READ_SIDE, part.right, n_items);
    }
    free(paths);
    return st;
}

/* ---- robustness against invisible-watermark ------------------------------------- */

/* The attacks the issue says dwtDct does not survive, and none as the control. */
static const char *const IW_ATTACKS[] = {"none", "jpeg:90:420", "resize:0.5", "crop:0.5@random"};
enum { IW_PHOTOS = 4, IW_PHOTOS_QUICK = 2 };

/* A few photos marked by both: dwtDct embeds its 32-bit message in the child (PNG out),
 * our attack code (lib/wm/attack.h, the seeds of bench_attack) attacks its output and
 * ours alike, the child decodes its copies (via lossless PNG) and our detector ours.
 * Log lines only: bit accuracy and exact messages side by side. */
static sdlk_status bench_iw_robustness(wm_state *s, sdlk_error *err)
{
    /* dwtDct refuses images under 256x256 pixels, so resize 0.5 needs >= 512x512 */
    int pick[IW_PHOTOS], n = 0;
    int want = s->opt->quick ? IW_PHOTOS_QUICK : IW_PHOTOS;
    for (int p = 0; p < s->n && n < want; p++)
        if (s->photo[p].shape[0] * s->photo[p].shape[1] >= 512 * 512)
            pick[n++] = p;
    if (n == 0) {
        bench_log(s->opt, FAMILY, "dwtDct robustness skipped: no photo of >= 512x512 pixels");
        return SDLK_OK;
    }
    sdlk_status st = SDLK_OK;
    if (!s->scratch)
        st = bench_scratch_create(s->opt->tmp_dir, &s->scratch, err);
    const char *dir = s->opt->data_dir ? s->opt->data_dir : ".";
    sdlk_tensor iw_marked[IW_PHOTOS], ours[IW_PHOTOS];
    for (int i = 0; i < IW_PHOTOS; i++) {
        sdlk_tensor_init(&iw_marked[i]);
        sdlk_tensor_init(&ours[i]);
    }
    char request[8400], reply[256], path[4096];
    for (int i = 0; i < n && st == SDLK_OK; i++) {
        snprintf(path, sizeof path, "%s/iw-%02d.png", s->scratch, i);
        snprintf(request, sizeof request, "embed %s\t%s/%s", path, dir, s->names[pick[i]]);
        st = bench_python_request(&s->iw->py, request, NULL, 0, err);
        if (st == SDLK_OK)
            st = sdlk_image_read(path, &iw_marked[i], NULL, err);
    }
    snprintf(path, sizeof path, "%s/iw-attacked.png", s->scratch);
    for (size_t a = 0; a < sizeof IW_ATTACKS / sizeof *IW_ATTACKS && st == SDLK_OK; a++) {
        int none = strcmp(IW_ATTACKS[a], "none") == 0;
        sdlk_attack_chain chain;
        if (!none)
            st = sdlk_attack_chain_parse(IW_ATTACKS[a], &chain, err);
        int iw_bits = 0, iw_exact = 0, iw_refused = 0;
        const sdlk_tensor *ptr[IW_PHOTOS];
        for (int i = 0; i < n && st == SDLK_OK; i++) {
            uint64_t seed = 1000003ull * (uint64_t)(pick[i] + 1);
            sdlk_tensor att;
            sdlk_tensor_init(&att);
            st = none ? sdlk_tensor_contiguous(&att, &iw_marked[i], err)
                      : sdlk_attack_chain_apply(&chain, &iw_marked[i], seed, &att, err);
            if (st == SDLK_OK)
                st = sdlk_image_write(path, &att, NULL, err);
            sdlk_tensor_free(&att);
            snprintf(request, sizeof request, "read %s", path);
            if (st == SDLK_OK)
                st = bench_python_request(&s->iw->py, request, reply, sizeof reply, err);
            int right = st == SDLK_OK ? atoi(reply) : -1;
            iw_refused += right < 0;
            iw_bits += right > 0 ? right : 0;
            iw_exact += right == 8 * IW_MSG_BYTES;
            sdlk_tensor_free(&ours[i]);
            if (st == SDLK_OK && !none)
                st = sdlk_attack_chain_apply(&chain, &s->marked[pick[i]], seed, &ours[i], err);
            ptr[i] = none ? &s->marked[pick[i]] : &ours[i];
        }
        sdlk_wm_result res[IW_PHOTOS];
        sdlk_status stat[IW_PHOTOS];
        sdlk_error errs[IW_PHOTOS];
        int bits[IW_PHOTOS];
        det_job job = {.key_one = &s->key, .params = &s->params, .images = ptr, .n = n,
                       .result = res, .msg_bits = bits, .status = stat, .errs = errs};
        if (st == SDLK_OK)
            st = det_run(s->pool, &job, err);
        int det = 0, exact = 0, our_bits = 0;
        for (int i = 0; i < n && st == SDLK_OK; i++) {
            det += res[i].detected;
            exact += res[i].detected && res[i].message_ok &&
                     memcmp(res[i].message, MSG, sizeof MSG) == 0;
            our_bits += bits[i];
        }
        if (st == SDLK_OK)
            bench_log(s->opt, FAMILY,
                      "vs invisible-watermark, %d photos, %s: dwtDct exact %d/%d, bits %.3f "
                      "(32-bit%s); ours detected %d/%d (FPR 1e-6), exact %d/%d, bits %.3f "
                      "(48-bit)",
                      n, IW_ATTACKS[a], iw_exact, n, (double)iw_bits / (8.0 * IW_MSG_BYTES * n),
                      iw_refused ? ", some refused as too small" : "", det, n, exact, n,
                      (double)our_bits / ((double)SDLK_WM_MESSAGE_BITS * n));
    }
    for (int i = 0; i < IW_PHOTOS; i++) {
        sdlk_tensor_free(&iw_marked[i]);
        sdlk_tensor_free(&ours[i]);
    }
    return st;
}

/* ---- the family ----------------------------------------------------------------- */

sdlk_status bench_wm(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err)
{
    wm_state *s = calloc(1, sizeof *s);
    if (!s)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    s->opt = opt;
    sdlk_wm_detect_params_init(&s->params);
    sdlk_status st = load_photos(s, err);
    if (st == SDLK_OK && s->n == 0) {
        bench_log(opt, FAMILY, "skipped: no photos (*.png other than digits.png) in %s (use "
                               "--data DIR)", opt->data_dir ? opt->data_dir : "(none)");
        wm_state_free(s);
        free(s);
        return SDLK_OK;
    }
    if (st == SDLK_OK)
        bench_log(opt, FAMILY, "%d photos from %s", s->n, opt->data_dir ? opt->data_dir : ".");
    if (st == SDLK_OK)
        st = sdlk_wm_key_derive(KEY, strlen(KEY), SDLK_WM_DEFAULT_TILE, &s->key, err);
    if (st == SDLK_OK) {
        s->have_key = 1;
        s->pool = sdlk_pool_create(opt->threads, err);
        if (!s->pool)
            st = err->code;
    }
    if (st == SDLK_OK)
        st = bench_quality(s, report, err);
    int all_ok = 1;
    for (size_t a = 0; st == SDLK_OK && a < sizeof ATTACKS / sizeof *ATTACKS; a++)
        st = bench_attack(s, &ATTACKS[a], &all_ok, report, err);
    if (st == SDLK_OK)
        bench_log(opt, FAMILY, "robustness: detection >= 0.95 under %s attack", all_ok ? "every" :
                                                                                  "NOT every");
    if (st == SDLK_OK)
        st = bench_false_positives(s, report, err);
    if (st == SDLK_OK)
        st = iw_start(s, err);
    if (st == SDLK_OK && s->iw)
        st = bench_iw_robustness(s, err);
    if (st == SDLK_OK)
        st = bench_throughput(s, 512, 512, opt->quick ? 8 : 100, report, err);
    if (st == SDLK_OK)
        st = bench_throughput(s, 1920, 1080, opt->quick ? 4 : 24, report, err);
    wm_state_free(s);
    free(s);
    return st;
}
