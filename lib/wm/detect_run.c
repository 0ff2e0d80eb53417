/* detect_run.c -- detection runs: the minibatch stages after decoding, on the CPU or the
 * GPU (detect_pipeline.h). Kept apart from detect_pipeline.c, which decodes images with
 * lib/image, so that a program that brings its own pixels (a GPU check on a machine
 * without the image libraries, say) links none of them. */
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"
#include "wm/detect_pipeline.h"

struct sdlk_wm_det_run {
    const sdlk_wm_det_ctx *ctx;
    sdlk_device device;        /* CPU or GPU */
    int workers;
    sdlk_wm_engine **engines;  /* GPU: [workers], engine w used only by worker w */
};

sdlk_status sdlk_wm_det_run_open(const sdlk_wm_det_ctx *ctx, int workers, sdlk_wm_det_run **out,
                                 sdlk_error *err)
{
    *out = NULL;
    if (workers < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "watermark detection run: %d workers", workers);
    sdlk_device where;
    sdlk_status st = sdlk_device_resolve(ctx->params.device, &where, err);
    if (st != SDLK_OK)
        return st;
    sdlk_wm_det_run *run = calloc(1, sizeof *run);
    if (!run)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark detection run: out of memory");
    run->ctx = ctx;
    run->device = where;
    run->workers = workers;
    if (where == SDLK_DEVICE_GPU) {
        /* One engine (CUDA stream + buffers) per worker, opened now so that a CUDA
         * failure is reported before any image is read; device buffers are only
         * allocated when a worker first runs the GPU stage. */
        run->engines = calloc((size_t)workers, sizeof *run->engines);
        if (!run->engines)
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark detection run: out of memory");
        for (int w = 0; st == SDLK_OK && w < workers; w++)
            st = sdlk_wm_engine_open(ctx->key, SDLK_DEVICE_GPU, &run->engines[w], err);
        if (st != SDLK_OK) {
            sdlk_wm_det_run_close(run);
            return st;
        }
    }
    *out = run;
    return SDLK_OK;
}

void sdlk_wm_det_run_close(sdlk_wm_det_run *run)
{
    if (!run)
        return;
    if (run->engines)
        for (int w = 0; w < run->workers; w++)
            sdlk_wm_engine_close(run->engines[w]);
    free(run->engines);
    free(run);
}

sdlk_device sdlk_wm_det_run_device(const sdlk_wm_det_run *run)
{
    return run->device;
}

const sdlk_wm_det_ctx *sdlk_wm_det_run_ctx(const sdlk_wm_det_run *run)
{
    return run->ctx;
}

void sdlk_wm_det_item_clear(sdlk_wm_det_item *item)
{
    sdlk_wm_plane_free(&item->luma);
    sdlk_wm_sync_free(&item->sync);
}

/* Record one image's failure in its item (prefixed with its name, as the per-image
 * stages do). */
static void fail_item(sdlk_wm_det_item *item, sdlk_status st, const sdlk_error *why)
{
    item->status = st;
    item->error = *why;
    if (!item->error.code)
        sdlk_error_set(&item->error, st, "%s", sdlk_status_name(st));
    if (item->path)
        sdlk_error_prefix(&item->error, "%s", item->path);
}

/* One CPU stage's work on one item that is still OK; its time is added to the item's. */
typedef void (*item_step_fn)(const sdlk_wm_det_run *run, sdlk_wm_det_item *item);

static void for_each_ok_item(const sdlk_wm_det_run *run, sdlk_wm_det_batch *batch,
                             item_step_fn step)
{
    for (int i = 0; i < batch->count; i++) {
        sdlk_wm_det_item *item = &batch->items[i];
        if (item->status != SDLK_OK)
            continue;
        uint64_t t0 = sdlk_now_ns();
        step(run, item);
        item->seconds += sdlk_seconds_since(t0);
    }
}

static void locate_item(const sdlk_wm_det_run *run, sdlk_wm_det_item *item)
{
    sdlk_error why;
    sdlk_error_clear(&why);
    sdlk_status st = sdlk_wm_locate(&item->luma, run->ctx->key, &run->ctx->params, &item->sync,
                                    &why);
    if (st != SDLK_OK)
        fail_item(item, st, &why);
    sdlk_wm_plane_free(&item->luma);
}

static void extract_item(const sdlk_wm_det_run *run, sdlk_wm_det_item *item)
{
    sdlk_wm_extract_soft(&item->sync, run->ctx->key, item->soft);
}

static void decide_item(const sdlk_wm_det_run *run, sdlk_wm_det_item *item)
{
    sdlk_wm_decode_decide(run->ctx->key, &item->sync, item->soft, &run->ctx->params,
                          &item->result);
}

/* A CPU stage: `step` on each item of the minibatch that is still OK. */
#define CPU_STAGE(name, step)                                                                  \
    static sdlk_status name(void *ctx, void *p, int worker, sdlk_error *err)                   \
    {                                                                                          \
        (void)worker;                                                                          \
        (void)err;                                                                             \
        for_each_ok_item(ctx, p, step);                                                        \
        return SDLK_OK;                                                                        \
    }

CPU_STAGE(stage_locate, locate_item)
CPU_STAGE(stage_extract, extract_item)
CPU_STAGE(stage_decide, decide_item)

/* Both stages as CUDA kernels on this worker's engine (its own stream). */
static sdlk_status stage_gpu_locate_extract(void *ctx, void *p, int worker, sdlk_error *err)
{
    const sdlk_wm_det_run *run = ctx;
    sdlk_wm_det_batch *batch = p;
    if (worker < 0 || worker >= run->workers)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "watermark detection run: worker %d of %d",
                              worker, run->workers);
    uint64_t t0 = sdlk_now_ns();
    sdlk_wm_task *tasks = calloc((size_t)(batch->count ? batch->count : 1), sizeof *tasks);
    int *which = calloc((size_t)(batch->count ? batch->count : 1), sizeof *which);
    if (!tasks || !which) {
        free(tasks);
        free(which);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory for a minibatch");
    }
    int n = 0;
    for (int i = 0; i < batch->count; i++) {
        sdlk_wm_det_item *item = &batch->items[i];
        if (item->status != SDLK_OK)
            continue;
        tasks[n].luma = &item->luma;
        tasks[n].sync = &item->sync;
        tasks[n].soft = item->soft;
        which[n++] = i;
    }
    sdlk_status st = sdlk_wm_locate_extract(run->engines[worker], &run->ctx->params, tasks, n, err);
    for (int k = 0; st == SDLK_OK && k < n; k++)
        if (tasks[k].status != SDLK_OK)
            fail_item(&batch->items[which[k]], tasks[k].status, &tasks[k].error);
    for (int k = 0; k < n; k++)
        sdlk_wm_plane_free(&batch->items[which[k]].luma);
    double share = n ? sdlk_seconds_since(t0) / n : 0.0;
    for (int k = 0; k < n; k++)
        batch->items[which[k]].seconds += share;
    free(tasks);
    free(which);
    return st;
}

int sdlk_wm_det_run_luma_stages(sdlk_wm_det_run *run,
                                sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES - 1])
{
    if (run->device == SDLK_DEVICE_GPU) {
        stages[0] = (sdlk_pipeline_stage){"locate+extract", stage_gpu_locate_extract, run};
        stages[1] = (sdlk_pipeline_stage){"decide", stage_decide, run};
        return 2;
    }
    stages[0] = (sdlk_pipeline_stage){"locate", stage_locate, run};
    stages[1] = (sdlk_pipeline_stage){"extract", stage_extract, run};
    stages[2] = (sdlk_pipeline_stage){"decide", stage_decide, run};
    return 3;
}
