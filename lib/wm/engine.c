/* engine.c -- locate + extract on minibatches, on the CPU or a CUDA GPU (wm.h,
 * "devices"), and sdlk_wm_detect's device dispatch.
 *
 * The GPU path is kernels/wm.cu behind kernels/wm_cuda.h. Everything that decides what
 * is computed -- the search plan (which scales fit, the Bonferroni count, the early
 * stop), the resampling weights, the detector's constants -- is computed here with the
 * CPU path's own functions (wm_internal.h) and handed to the kernels, so the two paths
 * cannot drift apart; per-image errors are the CPU path's messages because they come
 * from the same plan function. */
#include <stdlib.h>
#include <string.h>

#include "wm/wm_internal.h"

#ifdef SDLK_HAVE_CUDA
#include "kernels/wm_cuda.h"
#endif

#ifdef SDLK_HAVE_CUDA
/* The scales of the search as the kernels take them: the period and resampling weights
 * of each factor (periods of factors no image can use are still described; the kernels
 * skip them). */
typedef struct gpu_scales {
    sdlk_cuda_wm_scale scale[SDLK_WM_MAX_SCALES];
    wm_resample_axis axis[SDLK_WM_MAX_SCALES];
} gpu_scales;

static void gpu_scales_free(gpu_scales *gs)
{
    for (int s = 0; s < SDLK_WM_MAX_SCALES; s++)
        wm_resample_axis_free(&gs->axis[s]);
}

static sdlk_status gpu_scales_make(int tile, const sdlk_wm_detect_params *params, gpu_scales *gs,
                                   sdlk_error *err)
{
    memset(gs, 0, sizeof *gs);
    for (int s = 0; s < params->n_scales; s++) {
        double factor = params->scales[s];
        /* a factor out of range fails every image's plan; a period below 8 is never
         * usable; either way the table only has to stay valid */
        int p = factor >= 0.125 && factor <= 8.0 ? wm_scale_period(tile, factor) : 8;
        if (p < 8)
            p = 8;
        gs->scale[s].period = p;
        if (p == tile)
            continue;
        if (wm_resample_axis_init(&gs->axis[s], p, tile) != 0) {
            gpu_scales_free(gs);
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory");
        }
        gs->scale[s].taps = gs->axis[s].taps;
        gs->scale[s].first = gs->axis[s].first;
        gs->scale[s].weight = gs->axis[s].weight;
    }
    return SDLK_OK;
}

#endif

struct sdlk_wm_engine {
    const sdlk_wm_key *key;
    sdlk_device device; /* CPU or GPU */
#ifdef SDLK_HAVE_CUDA
    sdlk_cuda_wm *gpu;
    /* the resampling tables of the last minibatch's scales, reused while the scales
     * stay the same (they depend on the tile and the factors alone) */
    gpu_scales scales;
    double scale_factors[SDLK_WM_MAX_SCALES];
    int n_scales;       /* 0: nothing cached */
#endif
};

sdlk_status sdlk_wm_engine_open(const sdlk_wm_key *key, sdlk_device device,
                                sdlk_wm_engine **out, sdlk_error *err)
{
    *out = NULL;
    sdlk_device where;
    sdlk_status st = sdlk_device_resolve(device, &where, err);
    if (st != SDLK_OK)
        return st;
    sdlk_wm_engine *e = calloc(1, sizeof *e);
    if (!e)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory");
    e->key = key;
    e->device = where;
#ifdef SDLK_HAVE_CUDA
    if (where == SDLK_DEVICE_GPU) {
        sdlk_cuda_wm_key k = {
            .tile = key->tile,
            .blocks_per_side = key->blocks_per_side,
            .chips = key->chips,
            .chip_sign = key->chip_sign,
            .group_start = key->group_start,
            .group_chip = key->group_chip,
            .pilot = key->pilot,
            .dct = &key->dct[0][0],
            .coef_u = key->coef_u,
            .coef_v = key->coef_v,
            .coded_bits = SDLK_WM_CODED_BITS,
            .whiten_radius = WM_WHITEN_RADIUS,
            .whiten_floor = WM_WHITEN_FLOOR,
            .band_clip = WM_BAND_CLIP,
        };
        st = sdlk_cuda_wm_create(&k, &e->gpu, err);
        if (st != SDLK_OK) {
            free(e);
            return st;
        }
    }
#endif
    *out = e;
    return SDLK_OK;
}

void sdlk_wm_engine_close(sdlk_wm_engine *engine)
{
    if (!engine)
        return;
#ifdef SDLK_HAVE_CUDA
    sdlk_cuda_wm_destroy(engine->gpu);
    gpu_scales_free(&engine->scales);
#endif
    free(engine);
}

sdlk_device sdlk_wm_engine_device(const sdlk_wm_engine *engine)
{
    return engine->device;
}

/* The CPU path: the stage functions themselves, image by image. */
static void locate_extract_cpu(const sdlk_wm_engine *e, const sdlk_wm_detect_params *params,
                               sdlk_wm_task *tasks, int n)
{
    for (int i = 0; i < n; i++) {
        sdlk_wm_task *t = &tasks[i];
        sdlk_error_clear(&t->error);
        t->status = sdlk_wm_locate(t->luma, e->key, params, t->sync, &t->error);
        if (t->status == SDLK_OK)
            sdlk_wm_extract_soft(t->sync, e->key, t->soft);
    }
}

#ifdef SDLK_HAVE_CUDA
/* Every task failed with the same whole-minibatch error. */
static void fail_all(sdlk_wm_task *tasks, int n, sdlk_status st, const sdlk_error *why)
{
    for (int i = 0; i < n; i++) {
        sdlk_wm_sync_free(tasks[i].sync);
        tasks[i].status = st;
        tasks[i].error = *why;
    }
}

/* The GPU path: plan every image on the CPU (errors per image), run the valid ones as one
 * minibatch, and turn the kernels' results into syncs. */
static sdlk_status locate_extract_gpu(sdlk_wm_engine *e, const sdlk_wm_detect_params *params,
                                      sdlk_wm_task *tasks, int n, sdlk_error *err)
{
    const sdlk_wm_key *key = e->key;
    for (int i = 0; i < n; i++) { /* nothing held, whatever fails below */
        memset(tasks[i].sync, 0, sizeof *tasks[i].sync);
        sdlk_error_clear(&tasks[i].error);
        tasks[i].status = SDLK_OK;
    }
    sdlk_cuda_wm_image *images = calloc((size_t)(n ? n : 1), sizeof *images);
    int *which = calloc((size_t)(n ? n : 1), sizeof *which);
    wm_search_plan *plans = calloc((size_t)(n ? n : 1), sizeof *plans);
    sdlk_status st = SDLK_OK;
    if (!images || !which || !plans)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory for a minibatch of %d", n);
    int scales_ok = params->n_scales >= 1 && params->n_scales <= SDLK_WM_MAX_SCALES;
    if (st == SDLK_OK && scales_ok &&
        (e->n_scales != params->n_scales ||
         memcmp(e->scale_factors, params->scales, sizeof *params->scales * params->n_scales))) {
        gpu_scales_free(&e->scales);
        e->n_scales = 0;
        st = gpu_scales_make(key->tile, params, &e->scales, err);
        if (st == SDLK_OK) {
            e->n_scales = params->n_scales;
            memcpy(e->scale_factors, params->scales, sizeof *params->scales * params->n_scales);
        }
    }
    const gpu_scales *gs = &e->scales;
    int valid = 0;
    size_t band = (size_t)key->chips;
    for (int i = 0; st == SDLK_OK && i < n; i++) {
        sdlk_wm_task *t = &tasks[i];
        t->status = wm_search_plan_make(t->luma->width, t->luma->height, key, params, &plans[i],
                                        &t->error);
        if (t->status != SDLK_OK)
            continue;
        t->sync->blocks = malloc(sizeof *t->sync->blocks * band);
        if (!t->sync->blocks || wm_sync_alloc_signs(t->sync, params, plans[i].hypotheses) != 0) {
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory");
            break;
        }
        sdlk_cuda_wm_image *im = &images[valid];
        im->luma = t->luma->data;
        im->width = t->luma->width;
        im->height = t->luma->height;
        for (int s = 0; s < params->n_scales; s++)
            if (plans[i].period[s])
                im->usable_mask |= 1u << s;
        memcpy(im->stop, plans[i].stop, sizeof im->stop);
        im->blocks = t->sync->blocks;
        im->soft = t->soft;
        im->pilot_positive = t->sync->pilot_positive;
        im->pilot_nonzero = t->sync->pilot_nonzero;
        which[valid++] = i;
    }
    if (st == SDLK_OK && valid > 0)
        st = sdlk_cuda_wm_run(e->gpu, gs->scale, params->n_scales, images, valid, err);
    for (int v = 0; st == SDLK_OK && v < valid; v++) {
        const sdlk_cuda_wm_image *im = &images[v];
        const wm_search_plan *plan = &plans[which[v]];
        sdlk_wm_sync *sync = tasks[which[v]].sync;
        int p = plan->period[im->scale_index];
        sync->tile = key->tile;
        sync->scale = params->scales[im->scale_index];
        sync->offset_y = im->offset_y;
        sync->offset_x = im->offset_x;
        sync->pilot_agree = im->pilot_agree;
        sync->hypotheses = plan->hypotheses;
        sync->searched = im->searched;
        sync->tiles = (double)((size_t)im->width * im->height) / ((double)p * p);
    }
    free(images);
    free(which);
    free(plans);
    return st;
}
#endif

sdlk_status sdlk_wm_locate_extract(sdlk_wm_engine *engine, const sdlk_wm_detect_params *params,
                                   sdlk_wm_task *tasks, int n, sdlk_error *err)
{
    sdlk_wm_detect_params defaults;
    if (!params) {
        sdlk_wm_detect_params_init(&defaults);
        params = &defaults;
    }
    if (n < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG, "watermark: %d images in a minibatch", n);
#ifdef SDLK_HAVE_CUDA
    if (engine->device == SDLK_DEVICE_GPU) {
        sdlk_error whole;
        sdlk_error_clear(&whole);
        sdlk_status st = locate_extract_gpu(engine, params, tasks, n, &whole);
        if (st != SDLK_OK) {
            fail_all(tasks, n, st, &whole);
            if (err && !err->code)
                *err = whole;
        }
        return st;
    }
#endif
    locate_extract_cpu(engine, params, tasks, n);
    return SDLK_OK;
}
