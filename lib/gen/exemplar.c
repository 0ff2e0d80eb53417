/* exemplar.c -- the built-in denoiser: the exact posterior mean of a multi-scale patch
 * prior cut from each request's reference canvas (see exemplar.h). */
#include "gen/exemplar.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/pool.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "gen/canvas.h"

#ifdef SDLK_HAVE_CUDA
#include "kernels/exemplar_cuda.h"
#endif

/* Levels are clamped below 1 - LEVEL_EPS (the weights need some noise) and treated as
 * pure noise below LEVEL_EPS (the posterior is then the prior mean). */
#define LEVEL_EPS 1e-6
/* More scales than this would shrink any real reference below one pixel. */
#define MAX_SCALES 16

/* ---- options ---------------------------------------------------------------------- */

void sdlk_exemplar_opts_init(sdlk_exemplar_opts *o)
{
    memset(o, 0, sizeof *o);
    o->patch = 8;
    o->patch_t = 1;
    o->stride = 0; /* p / 2, resolved by sdlk_exemplar_create */
    o->exemplar_stride = 2;
    o->scales = 2;
    o->max_exemplars = 1024;
    o->tile[0] = 1;
    o->tile[1] = 64;
    o->tile[2] = 64;
    o->halo[0] = o->halo[1] = o->halo[2] = -1; /* auto: see exemplar.h */
    o->channels = 3;
    o->max_batch = 16;
    o->threads = 1;
    o->seed = 1;
    o->device = SDLK_DEVICE_CPU; /* the GPU only when asked for: see exemplar.h */
}

/* A whole decimal integer in [lo, hi]; anything else (empty, trailing text, out of
 * range) fails. */
static int parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* "N" (one frame of N x N) or "TxHxW". */
/* "N" or "TxHxW" with every value >= lo; "N" means (t_single, N, N). */
static int parse_dims(const char *s, int64_t lo, int64_t t_single, int64_t tile[3])
{
    char buf[96];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *parts[3];
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, "x", &save); tok;
         tok = strtok_r(NULL, "x", &save)) {
        if (n == 3)
            return -1;
        parts[n++] = tok;
    }
    int64_t v[3];
    for (int i = 0; i < n; i++)
        if (parse_int64(parts[i], lo, INT32_MAX, &v[i]))
            return -1;
    if (n == 1) {
        tile[0] = t_single;
        tile[1] = tile[2] = v[0];
    } else if (n == 3) {
        memcpy(tile, v, sizeof v);
    } else {
        return -1;
    }
    return 0;
}

/* Apply one key=value; -1 when the value is invalid, -2 when the key is unknown. */
static int apply_option(sdlk_exemplar_opts *o, const char *key, const char *value)
{
    static const struct {
        const char *key;
        size_t offset;
    } int_keys[] = {
        {"patch", offsetof(sdlk_exemplar_opts, patch)},
        {"patch_t", offsetof(sdlk_exemplar_opts, patch_t)},
        {"stride", offsetof(sdlk_exemplar_opts, stride)},
        {"exemplar_stride", offsetof(sdlk_exemplar_opts, exemplar_stride)},
        {"scales", offsetof(sdlk_exemplar_opts, scales)},
        {"max_exemplars", offsetof(sdlk_exemplar_opts, max_exemplars)},
        {"channels", offsetof(sdlk_exemplar_opts, channels)},
        {"batch", offsetof(sdlk_exemplar_opts, max_batch)},
        {"threads", offsetof(sdlk_exemplar_opts, threads)},
    };
    for (size_t i = 0; i < sizeof int_keys / sizeof int_keys[0]; i++)
        if (strcmp(key, int_keys[i].key) == 0) {
            int64_t v;
            if (parse_int64(value, 1, INT32_MAX, &v))
                return -1;
            *(int *)((char *)o + int_keys[i].offset) = (int)v;
            return 0;
        }
    if (strcmp(key, "tile") == 0)
        return parse_dims(value, 1, 1, o->tile);
    if (strcmp(key, "halo") == 0)
        return parse_dims(value, 0, 0, o->halo);
    if (strcmp(key, "lattice") == 0) {
        if (strcmp(value, "fixed") && strcmp(value, "moving"))
            return -1;
        o->moving_lattice = strcmp(value, "moving") == 0;
        return 0;
    }
    if (strcmp(key, "device") == 0)
        return sdlk_device_parse(value, &o->device, NULL) == SDLK_OK ? 0 : -1;
    if (strcmp(key, "seed") == 0) {
        if (!*value || *value == '-')
            return -1;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || *end)
            return -1;
        o->seed = v;
        return 0;
    }
    return -2;
}

sdlk_status sdlk_exemplar_opts_parse(sdlk_exemplar_opts *o, const char *spec, sdlk_error *err)
{
    if (!spec || !*spec)
        return SDLK_OK;
    char *copy = strdup(spec);
    if (!copy)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exemplar options: out of memory");
    /* Parse into a scratch copy so that a failure leaves `o` unchanged. */
    sdlk_exemplar_opts parsed = *o;
    sdlk_status st = SDLK_OK;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item && !st;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            st = sdlk_error_set(err, SDLK_ERR_ARG,
                                "exemplar options: \"%s\" is not key=value", item);
            break;
        }
        *eq = '\0';
        int rc = apply_option(&parsed, item, eq + 1);
        if (rc == -2)
            st = sdlk_error_set(err, SDLK_ERR_ARG,
                                "exemplar options: unknown key \"%s\" (keys: patch, patch_t, "
                                "stride, exemplar_stride, scales, max_exemplars, tile, "
                                "halo, channels, batch, threads, seed, lattice, device)",
                                item);
        else if (rc)
            st = sdlk_error_set(err, SDLK_ERR_ARG,
                                "exemplar options: bad value \"%s\" for key \"%s\"%s", eq + 1,
                                item,
                                strcmp(item, "device") == 0 ? " (cpu, gpu or auto)" : "");
    }
    free(copy);
    if (!st)
        *o = parsed;
    return st;
}

/* ---- backend state ---------------------------------------------------------------- */

/* The prior of one request. Immutable once built; `refs` counts the table's reference
 * plus predicts in flight, so a close during a predict cannot free it under them. */
typedef struct prior {
    int64_t id;
    int64_t n;          /* exemplars */
    float *patches;     /* [n, D] */
    float *half_norm;   /* |P_j|^2 / 2 */
    float *mean;        /* [D]: the posterior at pure noise */
    int refs;
#ifdef SDLK_HAVE_CUDA
    sdlk_cuda_exemplar_prior *gpu; /* the same on the device (device=gpu), else NULL */
#endif
} prior;

typedef struct exemplar {
    sdlk_exemplar_opts o; /* validated, stride resolved */
    int64_t dim;          /* D = pt * p * p * C */
    pthread_mutex_t lock; /* guards the table and every prior's refs */
    prior **table;
    int64_t count, cap;
    sdlk_pool *pool;      /* threads > 1: patch blocks of one big tile in parallel */
    pthread_mutex_t pool_lock; /* one predict at a time uses the pool; others run inline */
    sdlk_device device;   /* where predict runs: CPU or GPU (resolved) */
    float *weight;        /* [dim]: the blend weight of each patch element (patch_weights) */
#ifdef SDLK_HAVE_CUDA
    sdlk_cuda_exemplar *gpu;  /* device=gpu: cuBLAS handle, stream, scratch */
    pthread_mutex_t gpu_lock; /* the GPU context takes one predict at a time */
#endif
} exemplar;

static void prior_free(prior *p)
{
    if (!p)
        return;
    free(p->patches);
    free(p->half_norm);
    free(p->mean);
#ifdef SDLK_HAVE_CUDA
    sdlk_cuda_exemplar_prior_free(p->gpu);
#endif
    free(p);
}

/* Index of request `id` in the table, or -1. Caller holds the lock. */
static int64_t table_find(const exemplar *ex, int64_t id)
{
    for (int64_t i = 0; i < ex->count; i++)
        if (ex->table[i]->id == id)
            return i;
    return -1;
}

/* Take a reference to the prior of request `id` (NULL if not open). */
static prior *prior_acquire(exemplar *ex, int64_t id)
{
    pthread_mutex_lock(&ex->lock);
    int64_t i = table_find(ex, id);
    prior *p = i >= 0 ? ex->table[i] : NULL;
    if (p)
        p->refs++;
    pthread_mutex_unlock(&ex->lock);
    return p;
}

static void prior_release(exemplar *ex, prior *p)
{
    pthread_mutex_lock(&ex->lock);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&ex->lock);
    if (last)
        prior_free(p);
}

/* ---- building a prior ------------------------------------------------------------- */

/* Patch positions along an axis of length `len` at `stride`: 0, stride, ... up to
 * len - patch. */
static int64_t positions_at_stride(int64_t len, int64_t patch, int64_t stride)
{
    return len < patch ? 0 : (len - patch) / stride + 1;
}

/* The reference at every usable scale: level 0 is the reference itself (borrowed),
 * level s is it shrunk by 2^s (antialiased bicubic). Scales whose frames would be
 * smaller than one patch are left out. */
typedef struct pyramid {
    sdlk_canvas level[MAX_SCALES];
    int count;
} pyramid;

static void pyramid_free(pyramid *pyr)
{
    for (int s = 0; s < pyr->count; s++)
        sdlk_canvas_free(&pyr->level[s]);
    pyr->count = 0;
}

static sdlk_status pyramid_build(const sdlk_exemplar_opts *o, const sdlk_gen_request *req,
                                 pyramid *pyr, sdlk_error *err)
{
    memset(pyr, 0, sizeof *pyr);
    sdlk_canvas *base = &pyr->level[0];
    base->data = (float *)req->reference; /* read only: resize takes a const source */
    base->t = req->ref_shape[0];
    base->h = req->ref_shape[1];
    base->w = req->ref_shape[2];
    base->c = req->ref_shape[3];
    base->borrowed = 1;
    pyr->count = 1;
    for (int s = 1; s < o->scales && s < MAX_SCALES; s++) {
        int64_t h = llround((double)base->h / (double)(1 << s));
        int64_t w = llround((double)base->w / (double)(1 << s));
        if (h < o->patch || w < o->patch)
            break;
        sdlk_status st = sdlk_canvas_alloc(&pyr->level[s], base->t, h, w, base->c, err);
        if (!st)
            st = sdlk_canvas_resize(base, &pyr->level[s], NULL, err);
        if (st) {
            sdlk_canvas_free(&pyr->level[s]);
            pyramid_free(pyr);
            return st;
        }
        pyr->count = s + 1;
    }
    return SDLK_OK;
}

/* Number of exemplar positions of pyramid level `s` (and its per-axis counts). */
static int64_t level_positions(const sdlk_exemplar_opts *o, const sdlk_canvas *cv,
                               int64_t counts[3])
{
    counts[0] = positions_at_stride(cv->t, o->patch_t, o->exemplar_stride);
    counts[1] = positions_at_stride(cv->h, o->patch, o->exemplar_stride);
    counts[2] = positions_at_stride(cv->w, o->patch, o->exemplar_stride);
    return counts[0] * counts[1] * counts[2];
}

/* Copy the patch whose corner is (t0, y0, x0) of `cv` into dst ([pt, p, p, C]). */
static void cut_patch(const sdlk_exemplar_opts *o, const sdlk_canvas *cv, int64_t t0,
                      int64_t y0, int64_t x0, float *dst)
{
    size_t row = (size_t)o->patch * (size_t)cv->c;
    for (int64_t dt = 0; dt < o->patch_t; dt++)
        for (int64_t dy = 0; dy < o->patch; dy++) {
            const float *src = cv->data + (((t0 + dt) * cv->h + y0 + dy) * cv->w + x0) * cv->c;
            memcpy(dst, src, row * sizeof *dst);
            dst += row;
        }
}

/* Cut the kept exemplars. Every position of every level is a candidate, numbered
 * level by level; Knuth's selection sampling (algorithm S) keeps a uniform subset of
 * `keep` of them in one pass without materialising the candidate list. */
static void collect_patches(const sdlk_exemplar_opts *o, const pyramid *pyr, int64_t total,
                            int64_t keep, int64_t dim, float *patches)
{
    uint64_t rng = o->seed;
    int64_t needed = keep, seen = 0, kept = 0;
    for (int s = 0; s < pyr->count; s++) {
        const sdlk_canvas *cv = &pyr->level[s];
        int64_t counts[3];
        int64_t n = level_positions(o, cv, counts);
        for (int64_t i = 0; i < n && needed > 0; i++, seen++) {
            if (keep < total && sdlk_rng_unit(&rng) * (double)(total - seen) >= (double)needed)
                continue;
            int64_t x = i % counts[2], y = i / counts[2] % counts[1], t = i / counts[2] / counts[1];
            cut_patch(o, cv, t * o->exemplar_stride, y * o->exemplar_stride,
                      x * o->exemplar_stride, patches + kept * dim);
            kept++;
            needed--;
        }
    }
}

/* Half squared norms and the mean exemplar. */
static void summarise_patches(prior *p, int64_t dim)
{
    double *sum = calloc((size_t)dim, sizeof *sum);
    for (int64_t j = 0; j < p->n; j++) {
        const float *pj = p->patches + j * dim;
        double norm = 0.0;
        for (int64_t k = 0; k < dim; k++) {
            norm += (double)pj[k] * pj[k];
            if (sum)
                sum[k] += pj[k];
        }
        p->half_norm[j] = (float)(0.5 * norm);
    }
    for (int64_t k = 0; k < dim && sum; k++)
        p->mean[k] = (float)(sum[k] / (double)p->n);
    free(sum);
}

static sdlk_status prior_build(const exemplar *ex, const sdlk_gen_request *req, prior **out,
                               sdlk_error *err)
{
    *out = NULL;
    const sdlk_exemplar_opts *o = &ex->o;
    pyramid pyr;
    sdlk_status st = pyramid_build(o, req, &pyr, err);
    if (st)
        return st;
    int64_t total = 0, counts[3];
    for (int s = 0; s < pyr.count; s++)
        total += level_positions(o, &pyr.level[s], counts);
    int64_t keep = total < o->max_exemplars ? total : o->max_exemplars;
    prior *p = calloc(1, sizeof *p);
    if (p) {
        p->id = req->id;
        p->n = keep;
        p->refs = 1;
        p->patches = malloc((size_t)(keep * ex->dim) * sizeof *p->patches);
        p->half_norm = malloc((size_t)keep * sizeof *p->half_norm);
        p->mean = malloc((size_t)ex->dim * sizeof *p->mean);
    }
    if (!p || !p->patches || !p->half_norm || !p->mean) {
        prior_free(p);
        pyramid_free(&pyr);
        return sdlk_error_set(err, SDLK_ERR_NOMEM,
                              "exemplar request %lld: out of memory for %lld exemplars of %lld "
                              "values",
                              (long long)req->id, (long long)keep, (long long)ex->dim);
    }
    collect_patches(o, &pyr, total, keep, ex->dim, p->patches);
    pyramid_free(&pyr);
    summarise_patches(p, ex->dim);
    *out = p;
    return SDLK_OK;
}

static sdlk_status check_request(const exemplar *ex, const sdlk_gen_request *req,
                                 sdlk_error *err)
{
    const sdlk_exemplar_opts *o = &ex->o;
    const int64_t *s = req->ref_shape;
    if (!req->reference)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "exemplar request %lld: needs a reference canvas to build its "
                              "patch prior",
                              (long long)req->id);
    if (s[3] != o->channels)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "exemplar request %lld: reference has %lld channels, the model "
                              "has %d",
                              (long long)req->id, (long long)s[3], o->channels);
    if (s[0] < o->patch_t || s[1] < o->patch || s[2] < o->patch)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "exemplar request %lld: reference %lldx%lldx%lld (TxHxW) is "
                              "smaller than one %dx%dx%d patch",
                              (long long)req->id, (long long)s[0], (long long)s[1],
                              (long long)s[2], o->patch_t, o->patch, o->patch);
    uint64_t numel;
    sdlk_status st = sdlk_shape_numel(4, s, SDLK_F32, &numel, err);
    if (st)
        sdlk_error_prefix(err, "exemplar request %lld: reference", (long long)req->id);
    return st;
}

static sdlk_status exemplar_open(sdlk_denoiser *d, const sdlk_gen_request *req,
                                 sdlk_error *err)
{
    exemplar *ex = d->impl;
    sdlk_status st = check_request(ex, req, err);
    if (st)
        return st;
    prior *p;
    st = prior_build(ex, req, &p, err);
    if (st)
        return st;
#ifdef SDLK_HAVE_CUDA
    if (ex->gpu) { /* once per request: predicts then only move windows */
        st = sdlk_cuda_exemplar_prior_upload(p->patches, p->half_norm, p->mean, p->n, ex->dim,
                                             &p->gpu, err);
        if (st) {
            sdlk_error_prefix(err, "exemplar request %lld", (long long)req->id);
            prior_free(p);
            return st;
        }
    }
#endif
    /* Built outside the lock (it is the slow part); the duplicate check happens at
     * insertion so that two racing opens of one id cannot both succeed. */
    pthread_mutex_lock(&ex->lock);
    if (table_find(ex, req->id) >= 0) {
        st = sdlk_error_set(err, SDLK_ERR_ARG, "exemplar request %lld: already open",
                            (long long)req->id);
    } else if (ex->count == ex->cap) {
        int64_t cap = ex->cap ? 2 * ex->cap : 8;
        prior **table = realloc(ex->table, (size_t)cap * sizeof *table);
        if (table) {
            ex->table = table;
            ex->cap = cap;
        } else {
            st = sdlk_error_set(err, SDLK_ERR_NOMEM,
                                "exemplar request %lld: out of memory for the request table",
                                (long long)req->id);
        }
    }
    if (!st)
        ex->table[ex->count++] = p;
    pthread_mutex_unlock(&ex->lock);
    if (st)
        prior_free(p);
    return st;
}

static void exemplar_close(sdlk_denoiser *d, int64_t request)
{
    exemplar *ex = d->impl;
    pthread_mutex_lock(&ex->lock);
    int64_t i = table_find(ex, request);
    prior *p = NULL;
    if (i >= 0) {
        p = ex->table[i];
        ex->table[i] = ex->table[--ex->count];
    }
    pthread_mutex_unlock(&ex->lock);
    if (p)
        prior_release(ex, p);
}

/* ---- prediction ------------------------------------------------------------------- */

/* Corners of the patches along a tile axis: first, first + stride, ... (first in
 * 0 .. stride - 1), and with `edges` also 0 and the last position len - patch where the
 * grid misses them, so every element is covered. At most len corners. */
static int64_t tile_positions(int64_t len, int64_t patch, int64_t stride, int64_t first,
                              int edges, int64_t *pos)
{
    int64_t n = 0;
    if (edges && first > 0)
        pos[n++] = 0;
    for (int64_t p = first; p + patch <= len; p += stride)
        pos[n++] = p;
    if (edges && (n == 0 || pos[n - 1] != len - patch))
        pos[n++] = len - patch;
    return n;
}

/* The patches of a tile, as rows of a matrix (gather) and back (scatter-average). */
typedef struct tile_patches {
    int64_t count[3];     /* positions per axis */
    int64_t *pos[3];      /* corners per axis */
    int64_t m;            /* patches */
} tile_patches;

/* Each patch is pt * p runs of p * C contiguous values (one patch row of one frame).
 * Tile offset of run r (0 .. pt * p - 1) of patch i; within the patch the run starts
 * at r * p * C. */
static int64_t run_offset(const sdlk_exemplar_opts *o, const tile_patches *tp, int64_t i,
                          int64_t r)
{
    int64_t x = i % tp->count[2], y = i / tp->count[2] % tp->count[1];
    int64_t t = i / tp->count[2] / tp->count[1];
    int64_t dt = r / o->patch, dy = r % o->patch;
    return (((tp->pos[0][t] + dt) * o->tile[1] + tp->pos[1][y] + dy) * o->tile[2] +
            tp->pos[2][x]) * o->channels;
}

/* Patches first .. first + count - 1 of the tile, as rows of y. */
static void gather_patches(const sdlk_exemplar_opts *o, const tile_patches *tp,
                           const float *x, int64_t first, int64_t count, int64_t dim, float *y)
{
    int64_t runs = (int64_t)o->patch_t * o->patch, len = (int64_t)o->patch * o->channels;
    for (int64_t i = 0; i < count; i++)
        for (int64_t r = 0; r < runs; r++)
            memcpy(y + i * dim + r * len, x + run_offset(o, tp, first + i, r),
                   (size_t)len * sizeof *y);
}

/* Weight of element i of a patch of length p: a tent, (min(i, p - 1 - i) + 1/2) / (p / 2).
 * Uniform averaging of overlapping patches leaves a visible grid at the patch stride
 * (every stride-th line starts a new set of patches); tent weights at stride p / 2 sum
 * to exactly 1 everywhere (a partition of unity), so the blend has no such grid. */
static float tent_weight(int64_t i, int64_t p)
{
    int64_t edge = i < p - 1 - i ? i : p - 1 - i;
    return (float)(((double)edge + 0.5) / ((double)p / 2.0));
}

/* The blend weight of each patch element (run r is row r % p of frame r / p): dim
 * values, the same for every patch. The GPU path gets these very floats. */
static void patch_weights(const sdlk_exemplar_opts *o, float *weight)
{
    int64_t runs = (int64_t)o->patch_t * o->patch, len = (int64_t)o->patch * o->channels;
    for (int64_t r = 0; r < runs; r++) {
        float run_weight = tent_weight(r / o->patch, o->patch_t) *
                           tent_weight(r % o->patch, o->patch);
        for (int64_t k = 0; k < len; k++)
            weight[r * len + k] = run_weight * tent_weight(k / o->channels, o->patch);
    }
}

/* out = per-element tent-weighted average of the patch estimates covering it; `weight`
 * holds one patch's element weights (patch_weights). */
static void scatter_average(const sdlk_exemplar_opts *o, const tile_patches *tp,
                            const float *est, int64_t dim, const float *weight, float *cover,
                            float *out, int64_t numel)
{
    int64_t runs = (int64_t)o->patch_t * o->patch, len = (int64_t)o->patch * o->channels;
    memset(out, 0, (size_t)numel * sizeof *out);
    memset(cover, 0, (size_t)numel * sizeof *cover);
    for (int64_t i = 0; i < tp->m; i++)
        for (int64_t r = 0; r < runs; r++) {
            const float *src = est + i * dim + r * len;
            const float *w = weight + r * len;
            int64_t at = run_offset(o, tp, i, r);
            for (int64_t k = 0; k < len; k++) {
                out[at + k] += w[k] * src[k];
                cover[at + k] += w[k];
            }
        }
    for (int64_t k = 0; k < numel; k++) /* uncovered: halo of a moving-lattice window */
        out[k] = cover[k] > 0.0f ? out[k] / cover[k] : 0.0f;
}

/* Turn the rows of G = Y P^T into posterior weights in place:
 * w_j ~ exp(-|y - sqrt(a) P_j|^2 / (2 (1 - a))). |y|^2 is the same for every j and
 * drops out of the normalisation, leaving logits (sqrt(a) G_j - a |P_j|^2 / 2) / (1 - a),
 * exponentiated in double after subtracting the row maximum. */
static void softmax_rows(float *g, int64_t m, int64_t n, const float *half_norm, double a,
                         double *logit)
{
    double sa = sqrt(a), inv = 1.0 / (1.0 - a);
    for (int64_t i = 0; i < m; i++) {
        float *row = g + i * n;
        double max = -INFINITY;
        for (int64_t j = 0; j < n; j++) {
            logit[j] = (sa * row[j] - a * half_norm[j]) * inv;
            if (logit[j] > max)
                max = logit[j];
        }
        double sum = 0.0;
        for (int64_t j = 0; j < n; j++) {
            logit[j] = exp(logit[j] - max);
            sum += logit[j];
        }
        for (int64_t j = 0; j < n; j++)
            row[j] = (float)(logit[j] / sum);
    }
}

/* Per-call scratch for one tile against a prior of n exemplars; y, g and logit hold one
 * block per worker (workers = 1, or the pool's size). */
typedef struct scratch {
    float *y, *g, *est, *cover;
    double *logit;
    int workers;
} scratch;

static void scratch_free(scratch *s)
{
    free(s->y);
    free(s->g);
    free(s->est);
    free(s->cover);
    free(s->logit);
    memset(s, 0, sizeof *s);
}

/* Patches per distance block: the block's distance matrix (block x exemplars) stays
 * a few MB, in cache, whatever the tile size, so a whole-canvas "tile" costs the same
 * per pixel as small tiles instead of streaming a matrix of patches x exemplars. */
#define PATCH_BLOCK 512

static sdlk_status scratch_alloc(scratch *s, int64_t m, int64_t n, int64_t dim, int64_t numel,
                                 int workers, sdlk_error *err)
{
    memset(s, 0, sizeof *s);
    int64_t block = m < PATCH_BLOCK ? m : PATCH_BLOCK;
    s->workers = workers;
    s->y = malloc((size_t)(workers * block * dim) * sizeof *s->y);
    s->g = malloc((size_t)(workers * block * n) * sizeof *s->g);
    s->est = malloc((size_t)(m * dim) * sizeof *s->est);
    s->cover = malloc((size_t)numel * sizeof *s->cover);
    s->logit = malloc((size_t)(workers * n) * sizeof *s->logit);
    if (!s->y || !s->g || !s->est || !s->cover || !s->logit) {
        scratch_free(s);
        return sdlk_error_set(err, SDLK_ERR_NOMEM,
                              "exemplar predict: out of memory for %lld patches x %lld "
                              "exemplars",
                              (long long)m, (long long)n);
    }
    return SDLK_OK;
}

/* Lay out the patches of the window of item `it`; pos holds tile[0] + tile[1] +
 * tile[2] corners (an axis of length L never has more than L corners). */
static void tile_patches_init(const sdlk_exemplar_opts *o, const sdlk_denoise_item *it,
                              int64_t *pos, tile_patches *tp)
{
    /* along time the stride cannot exceed the patch's own length (1 frame by default),
     * or frames would be left uncovered */
    const int64_t extent[3] = {o->patch_t, o->patch, o->patch};
    const int64_t stride[3] = {o->stride < o->patch_t ? o->stride : o->patch_t, o->stride,
                               o->stride};
    int64_t phase[3] = {0, 0, 0};
    if (o->moving_lattice) { /* the step's canvas phase, seen from the window's origin */
        int64_t s = it->step > 0 ? it->step : 0;
        phase[1] = s % stride[1];
        phase[2] = (s + s / stride[2]) % stride[2];
    }
    tp->m = 1;
    for (int a = 0; a < 3; a++) {
        int64_t first = 0;
        int edges = 1;
        if (o->moving_lattice && a > 0) {
            first = ((phase[a] - it->offset[a]) % stride[a] + stride[a]) % stride[a];
            edges = o->halo[a] == 0; /* a whole canvas; a window's edges are its halo */
        }
        tp->pos[a] = pos;
        tp->count[a] = tile_positions(o->tile[a], extent[a], stride[a], first, edges, pos);
        pos += o->tile[a];
        tp->m *= tp->count[a];
    }
}

/* The level the weights use: below 1 - LEVEL_EPS (they need some noise); under
 * LEVEL_EPS the caller treats it as pure noise. */
static double clamp_level(double level)
{
    return level > 1.0 - LEVEL_EPS ? 1.0 - LEVEL_EPS : level;
}

/* One block of patches: distances, posterior weights, estimates into est rows. */
typedef struct block_job {
    const exemplar *ex;
    const prior *p;
    const tile_patches *tp;
    const float *x;
    double a;
    scratch *s;
} block_job;

static void estimate_blocks(void *ctx, int64_t begin, int64_t end, int worker)
{
    block_job *j = ctx;
    const int64_t dim = j->ex->dim, n = j->p->n, m = j->tp->m;
    float *y = j->s->y + (int64_t)worker * PATCH_BLOCK * dim;
    float *g = j->s->g + (int64_t)worker * PATCH_BLOCK * n;
    double *logit = j->s->logit + (int64_t)worker * n;
    for (int64_t b = begin; b < end; b++) {
        int64_t first = b * PATCH_BLOCK;
        int64_t count = m - first < PATCH_BLOCK ? m - first : PATCH_BLOCK;
        gather_patches(&j->ex->o, j->tp, j->x, first, count, dim, y);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)count, (blasint)n,
                    (blasint)dim, 1.0f, y, (blasint)dim, j->p->patches, (blasint)dim, 0.0f, g,
                    (blasint)n);
        softmax_rows(g, count, n, j->p->half_norm, j->a, logit);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)count, (blasint)dim,
                    (blasint)n, 1.0f, g, (blasint)n, j->p->patches, (blasint)dim, 0.0f,
                    j->s->est + first * dim, (blasint)dim);
    }
}

/* The posterior-mean patch estimates of one tile into s->est, block by block; with a
 * pool (threads > 1) and more than one block, the blocks run in parallel unless another
 * predict holds the pool (then inline: concurrent predicts already use the cores). */
static void estimate_patches(exemplar *ex, const prior *p, const tile_patches *tp,
                             const sdlk_denoise_item *it, scratch *s)
{
    const int64_t dim = ex->dim;
    double a = clamp_level(it->level);
    if (a < LEVEL_EPS) {
        for (int64_t i = 0; i < tp->m; i++)
            memcpy(s->est + i * dim, p->mean, (size_t)dim * sizeof *s->est);
        return;
    }
    block_job job = {ex, p, tp, it->x, a, s};
    int64_t blocks = (tp->m + PATCH_BLOCK - 1) / PATCH_BLOCK;
    if (ex->pool && s->workers > 1 && blocks > 1 && pthread_mutex_trylock(&ex->pool_lock) == 0) {
        sdlk_pool_for(ex->pool, blocks, 1, estimate_blocks, &job);
        pthread_mutex_unlock(&ex->pool_lock);
    } else {
        estimate_blocks(&job, 0, blocks, 0);
    }
}

static sdlk_status predict_tile(exemplar *ex, const prior *p, const sdlk_denoise_item *it,
                                sdlk_error *err)
{
    const sdlk_exemplar_opts *o = &ex->o;
    const int64_t numel = o->tile[0] * o->tile[1] * o->tile[2] * o->channels;
    int64_t *pos = malloc((size_t)(o->tile[0] + o->tile[1] + o->tile[2]) * sizeof *pos);
    if (!pos)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exemplar predict: out of memory");
    tile_patches tp;
    tile_patches_init(o, it, pos, &tp);
    scratch s;
    sdlk_status st = scratch_alloc(&s, tp.m, p->n, ex->dim, numel,
                                   ex->pool ? sdlk_pool_size(ex->pool) : 1, err);
    if (!st) {
        estimate_patches(ex, p, &tp, it, &s);
        scatter_average(o, &tp, s.est, ex->dim, ex->weight, s.cover, it->out, numel);
        scratch_free(&s);
    }
    free(pos);
    return st;
}

/* The checks every item passes before either path predicts it; on success *out holds a
 * reference to its prior. */
static sdlk_status item_prior(exemplar *ex, const sdlk_denoise_item *it, prior **out,
                              sdlk_error *err)
{
    *out = NULL;
    if (!(it->level >= 0.0 && it->level <= 1.0))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "exemplar predict: tile %lld has level %g, outside [0, 1] "
                              "(alpha_bar)",
                              (long long)it->tile_id, it->level);
    *out = prior_acquire(ex, it->request);
    if (!*out)
        return sdlk_error_set(err, SDLK_ERR_NOTFOUND,
                              "exemplar predict: tile %lld names request %lld, which is "
                              "not open",
                              (long long)it->tile_id, (long long)it->request);
    return SDLK_OK;
}

#ifdef SDLK_HAVE_CUDA
/* device=gpu: the whole batch in one call of the GPU context (kernels/exemplar_cuda.h).
 * The patch layout, the level clamp and the blend weights come from the CPU path's own
 * functions, so the two paths cannot drift apart. */
static sdlk_status predict_batch_gpu(exemplar *ex, const sdlk_denoise_item *items, int n,
                                     sdlk_error *err)
{
    if (n <= 0)
        return SDLK_OK;
    const sdlk_exemplar_opts *o = &ex->o;
    const int64_t per_tile = o->tile[0] + o->tile[1] + o->tile[2];
    prior **priors = calloc((size_t)n, sizeof *priors);
    sdlk_cuda_exemplar_tile *tiles = calloc((size_t)n, sizeof *tiles);
    int64_t *pos = malloc((size_t)(n * per_tile) * sizeof *pos);
    sdlk_status st = SDLK_OK;
    if (!priors || !tiles || !pos)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "exemplar predict: out of memory");
    for (int i = 0; i < n && !st; i++) {
        const sdlk_denoise_item *it = &items[i];
        st = item_prior(ex, it, &priors[i], err);
        if (st)
            break;
        tile_patches tp;
        tile_patches_init(o, it, pos + i * per_tile, &tp);
        double a = clamp_level(it->level);
        tiles[i] = (sdlk_cuda_exemplar_tile){
            .prior = priors[i]->gpu,
            .x = it->x,
            .out = it->out,
            .a = a,
            .sqrt_a = sqrt(a),
            .inv_one_minus_a = 1.0 / (1.0 - a),
            .pure_noise = a < LEVEL_EPS,
        };
        for (int ax = 0; ax < 3; ax++) {
            tiles[i].count[ax] = tp.count[ax];
            tiles[i].pos[ax] = tp.pos[ax];
        }
    }
    if (!st) {
        pthread_mutex_lock(&ex->gpu_lock);
        st = sdlk_cuda_exemplar_predict(ex->gpu, tiles, n, err);
        pthread_mutex_unlock(&ex->gpu_lock);
        if (st)
            sdlk_error_prefix(err, "exemplar predict (GPU)");
    }
    for (int i = 0; priors && i < n; i++)
        if (priors[i])
            prior_release(ex, priors[i]);
    free(priors);
    free(tiles);
    free(pos);
    return st;
}
#endif

static sdlk_status exemplar_predict(sdlk_denoiser *d, const sdlk_denoise_item *items, int n,
                                    sdlk_error *err)
{
    exemplar *ex = d->impl;
#ifdef SDLK_HAVE_CUDA
    if (ex->gpu)
        return predict_batch_gpu(ex, items, n, err);
#endif
    for (int i = 0; i < n; i++) {
        const sdlk_denoise_item *it = &items[i];
        prior *p;
        sdlk_status st = item_prior(ex, it, &p, err);
        if (st)
            return st;
        st = predict_tile(ex, p, it, err);
        prior_release(ex, p);
        if (st)
            return st;
    }
    return SDLK_OK;
}

/* The backend state without its requests (their priors are released first). */
static void exemplar_free_state(exemplar *ex)
{
#ifdef SDLK_HAVE_CUDA
    sdlk_cuda_exemplar_destroy(ex->gpu);
    pthread_mutex_destroy(&ex->gpu_lock);
#endif
    sdlk_pool_destroy(ex->pool);
    free(ex->weight);
    pthread_mutex_destroy(&ex->lock);
    pthread_mutex_destroy(&ex->pool_lock);
    free(ex);
}

static void exemplar_destroy(sdlk_denoiser *d)
{
    exemplar *ex = d->impl;
    for (int64_t i = 0; i < ex->count; i++)
        prior_release(ex, ex->table[i]);
    free(ex->table);
    exemplar_free_state(ex);
    free(d);
}

static const sdlk_denoiser_ops exemplar_ops = {
    .open = exemplar_open,
    .close = exemplar_close,
    .predict = exemplar_predict,
    .destroy = exemplar_destroy,
};

/* ---- creation --------------------------------------------------------------------- */

static sdlk_status check_opts(const sdlk_exemplar_opts *o, sdlk_error *err)
{
    const char *what = NULL;
    if (o->channels < 1)
        what = "channels must be at least 1";
    else if (o->tile[0] < 1 || o->tile[1] < 1 || o->tile[2] < 1)
        what = "every tile size must be at least 1";
    else if (o->patch < 1 || o->patch > o->tile[1] || o->patch > o->tile[2])
        what = "patch must be from 1 to the tile's height and width";
    else if (o->patch_t < 1 || o->patch_t > o->tile[0])
        what = "patch_t must be from 1 to the tile's frame count";
    else if (o->stride < 1 || o->stride > o->patch)
        what = "stride must be from 1 to patch";
    else if (o->exemplar_stride < 1)
        what = "exemplar_stride must be at least 1";
    else if (o->scales < 1 || o->scales > MAX_SCALES)
        what = "scales must be from 1 to 16";
    else if (o->max_exemplars < 1)
        what = "max_exemplars must be at least 1";
    else if (o->max_batch < 1)
        what = "batch must be at least 1";
    else if (o->threads < 1 || o->threads > 256)
        what = "threads must be from 1 to 256";
    if (what)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "exemplar model: %s (patch %d, patch_t %d, stride %d, "
                              "exemplar_stride %d, scales %d, max_exemplars %d, tile "
                              "%lldx%lldx%lld, channels %d, batch %d)",
                              what, o->patch, o->patch_t, o->stride, o->exemplar_stride,
                              o->scales, o->max_exemplars, (long long)o->tile[0],
                              (long long)o->tile[1], (long long)o->tile[2], o->channels,
                              o->max_batch);
    const int64_t shape[4] = {o->tile[0], o->tile[1], o->tile[2], o->channels};
    uint64_t numel;
    sdlk_status st = sdlk_shape_numel(4, shape, SDLK_F32, &numel, err);
    if (st)
        sdlk_error_prefix(err, "exemplar model: tile");
    return st;
}

/* Resolve the automatic halo and turn o->tile from the core into the window the model
 * computes on (everything after this sees the window). With a halo, seamless output
 * needs the window's patch grid to tile exactly and cores a multiple of the stride
 * apart (see exemplar.h). */
static sdlk_status resolve_window(sdlk_exemplar_opts *o, sdlk_error *err)
{
    int64_t stride[3] = {o->patch_t, o->stride, o->stride};
    int64_t patch[3] = {o->patch_t, o->patch, o->patch};
    int any_halo = 0;
    for (int a = 0; a < 3; a++) {
        if (o->halo[a] < 0) /* a moving grid can sit at any phase: see exemplar.h */
            o->halo[a] = a == 0 ? 0 : o->moving_lattice ? patch[a] - 1 : patch[a] - stride[a];
        if (o->tile[a] < 1 || o->halo[a] > INT32_MAX / 4 || o->tile[a] > INT32_MAX / 2)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "exemplar model: tile %lld and halo %lld out of range",
                                  (long long)o->tile[a], (long long)o->halo[a]);
        any_halo |= o->halo[a] > 0;
        o->tile[a] += 2 * o->halo[a];
    }
    if (!any_halo || o->moving_lattice)
        return SDLK_OK;
    for (int a = 1; a < 3; a++)
        if (o->tile[a] >= patch[a] && ((o->tile[a] - patch[a]) % stride[a] != 0 ||
                                       (o->tile[a] - 2 * o->halo[a]) % stride[a] != 0))
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "exemplar model: with a halo, the tile (%lld) and the "
                                  "window minus the patch (%lld - %lld) must be multiples of "
                                  "the stride %lld (seamless tiling)",
                                  (long long)(o->tile[a] - 2 * o->halo[a]),
                                  (long long)o->tile[a], (long long)patch[a],
                                  (long long)stride[a]);
    return SDLK_OK;
}

/* Where predict runs: device=cpu, or a GPU that exists (SDLK_ERR_DEVICE naming why
 * not: built without CUDA, no device, driver error), AUTO resolved by device.h's rule. */
static sdlk_status resolve_device(const sdlk_exemplar_opts *o, sdlk_device *where,
                                  sdlk_error *err)
{
    sdlk_status st = sdlk_device_resolve(o->device, where, err);
    if (st)
        sdlk_error_prefix(err, "exemplar model: device=%s", sdlk_device_name(o->device));
    return st;
}

#ifdef SDLK_HAVE_CUDA
/* The GPU context of a device=gpu model (loads cuBLAS: a missing library is an error
 * here, at creation, not at the first predict). */
static sdlk_status gpu_attach(exemplar *ex, sdlk_error *err)
{
    const sdlk_cuda_exemplar_geom geom = {
        .window = {ex->o.tile[0], ex->o.tile[1], ex->o.tile[2]},
        .channels = ex->o.channels,
        .patch = ex->o.patch,
        .patch_t = ex->o.patch_t,
        .weight = ex->weight,
    };
    sdlk_status st = sdlk_cuda_exemplar_create(&geom, &ex->gpu, err);
    if (st)
        sdlk_error_prefix(err, "exemplar model: device=%s", sdlk_device_name(ex->o.device));
    return st;
}
#endif

sdlk_status sdlk_exemplar_create(const sdlk_exemplar_opts *opts, sdlk_denoiser **out,
                                 sdlk_error *err)
{
    *out = NULL;
    sdlk_exemplar_opts o = *opts;
    if (o.stride == 0)
        o.stride = o.patch / 2 > 0 ? o.patch / 2 : 1;
    sdlk_status st = resolve_window(&o, err);
    if (st)
        return st;
    st = check_opts(&o, err);
    if (st)
        return st;
    sdlk_device where;
    st = resolve_device(&o, &where, err);
    if (st)
        return st;
    sdlk_denoiser *d = calloc(1, sizeof *d);
    exemplar *ex = calloc(1, sizeof *ex);
    if (!d || !ex || pthread_mutex_init(&ex->lock, NULL) != 0) {
        free(d);
        free(ex);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exemplar model: out of memory");
    }
    pthread_mutex_init(&ex->pool_lock, NULL);
#ifdef SDLK_HAVE_CUDA
    pthread_mutex_init(&ex->gpu_lock, NULL);
#endif
    ex->o = o;
    ex->dim = (int64_t)o.patch_t * o.patch * o.patch * o.channels;
    ex->device = where;
    /* the blend weights are the same for every patch of every tile: computed once here */
    if (!(ex->weight = malloc((size_t)ex->dim * sizeof *ex->weight)))
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "exemplar model: out of memory");
    else
        patch_weights(&ex->o, ex->weight);
    if (!st && o.threads > 1 && !(ex->pool = sdlk_pool_create(o.threads, err)))
        st = err && err->code ? err->code : SDLK_ERR_NOMEM;
#ifdef SDLK_HAVE_CUDA
    if (!st && where == SDLK_DEVICE_GPU)
        st = gpu_attach(ex, err);
#endif
    if (st) {
        exemplar_free_state(ex);
        free(d);
        return st;
    }
    d->ops = &exemplar_ops;
    d->impl = ex;
    snprintf(d->desc.name, sizeof d->desc.name, "exemplar");
    d->desc.channels = o.channels;
    memcpy(d->desc.tile, o.tile, sizeof d->desc.tile);
    memcpy(d->desc.halo, o.halo, sizeof d->desc.halo);
    d->desc.pred = SDLK_PRED_X0;
    d->desc.time = SDLK_TIME_VP;
    d->desc.max_batch = o.max_batch;
    d->desc.workers = 1;
    *out = d;
    return SDLK_OK;
}

int64_t sdlk_exemplar_count(sdlk_denoiser *d, int64_t request)
{
    if (!d || d->ops != &exemplar_ops)
        return -1;
    exemplar *ex = d->impl;
    pthread_mutex_lock(&ex->lock);
    int64_t i = table_find(ex, request);
    int64_t n = i >= 0 ? ex->table[i]->n : -1;
    pthread_mutex_unlock(&ex->lock);
    return n;
}

sdlk_device sdlk_exemplar_device(sdlk_denoiser *d)
{
    if (!d || d->ops != &exemplar_ops)
        return SDLK_DEVICE_AUTO;
    return ((exemplar *)d->impl)->device;
}

double sdlk_exemplar_device_ms(sdlk_denoiser *d)
{
    if (!d || d->ops != &exemplar_ops)
        return -1.0;
#ifdef SDLK_HAVE_CUDA
    exemplar *ex = d->impl;
    if (ex->gpu) {
        pthread_mutex_lock(&ex->gpu_lock);
        double ms = sdlk_cuda_exemplar_device_ms(ex->gpu);
        pthread_mutex_unlock(&ex->gpu_lock);
        return ms;
    }
#endif
    return -1.0;
}
