/* detect_pipeline.c -- wm.h's detection stages as lib/core/pipeline.h stages: the
 * per-image stages, and the decode stage of the minibatch runs (the rest of a run is in
 * detect_run.c, which needs no image library). */
#include "wm/detect_pipeline.h"

#include <string.h>

#include "core/timer.h"
#include "image/image.h"

/* Read + decode one image and take its luma. */
static sdlk_status decode_item(sdlk_wm_det_item *item, sdlk_error *err)
{
    uint64_t t0 = sdlk_now_ns();
    sdlk_tensor img;
    sdlk_status st = item->data ? sdlk_image_decode(item->data, item->size,
                                                    item->path ? item->path : "(memory)", &img,
                                                    NULL, err)
                                : sdlk_image_read(item->path, &img, NULL, err);
    if (st == SDLK_OK) {
        st = sdlk_wm_luma_from_image(&img, &item->luma, err);
        sdlk_tensor_free(&img);
    }
    item->seconds += sdlk_seconds_since(t0);
    return st;
}

static sdlk_status stage_decode(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)ctx;
    (void)worker;
    return decode_item(p, err);
}

static sdlk_status stage_locate(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)worker;
    const sdlk_wm_det_ctx *c = ctx;
    sdlk_wm_det_item *item = p;
    if (c->params.device == SDLK_DEVICE_GPU) {
        sdlk_wm_plane_free(&item->luma);
        return sdlk_error_set(err, SDLK_ERR_DEVICE, "the per-image detection stages run on the "
                              "CPU; the GPU needs minibatches (a detection run)");
    }
    uint64_t t0 = sdlk_now_ns();
    sdlk_status st = sdlk_wm_locate(&item->luma, c->key, &c->params, &item->sync, err);
    if (st != SDLK_OK && item->path)
        sdlk_error_prefix(err, "%s", item->path); /* sdlk_wm_locate does not know the file */
    sdlk_wm_plane_free(&item->luma);
    item->seconds += sdlk_seconds_since(t0);
    return st;
}

static sdlk_status stage_extract(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)worker;
    (void)err;
    const sdlk_wm_det_ctx *c = ctx;
    sdlk_wm_det_item *item = p;
    uint64_t t0 = sdlk_now_ns();
    sdlk_wm_extract_soft(&item->sync, c->key, item->soft);
    item->seconds += sdlk_seconds_since(t0);
    return SDLK_OK;
}

static sdlk_status stage_decide(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)worker;
    (void)err;
    const sdlk_wm_det_ctx *c = ctx;
    sdlk_wm_det_item *item = p;
    uint64_t t0 = sdlk_now_ns();
    sdlk_wm_decode_decide(c->key, &item->sync, item->soft, c->params.fpr, &item->result);
    item->seconds += sdlk_seconds_since(t0);
    return SDLK_OK;
}

void sdlk_wm_det_stages(const sdlk_wm_det_ctx *ctx, sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES])
{
    void *c = (void *)ctx; /* the stages only read it */
    stages[0] = (sdlk_pipeline_stage){"decode", stage_decode, c};
    stages[1] = (sdlk_pipeline_stage){"locate", stage_locate, c};
    stages[2] = (sdlk_pipeline_stage){"extract", stage_extract, c};
    stages[3] = (sdlk_pipeline_stage){"decide", stage_decide, c};
}

/* "decode" for minibatch items: each image on its own; a failure stays with its item. */
static sdlk_status stage_batch_decode(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)ctx;
    (void)worker;
    (void)err;
    sdlk_wm_det_batch *batch = p;
    for (int i = 0; i < batch->count; i++) {
        sdlk_wm_det_item *item = &batch->items[i];
        if (item->status != SDLK_OK)
            continue;
        sdlk_error why;
        sdlk_error_clear(&why);
        item->status = decode_item(item, &why);
        if (item->status != SDLK_OK) {
            item->error = why;
            if (!item->error.code)
                sdlk_error_set(&item->error, item->status, "%s", sdlk_status_name(item->status));
        }
    }
    return SDLK_OK;
}

int sdlk_wm_det_run_stages(sdlk_wm_det_run *run, sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES])
{
    stages[0] = (sdlk_pipeline_stage){"decode", stage_batch_decode, run};
    return 1 + sdlk_wm_det_run_luma_stages(run, stages + 1);
}
