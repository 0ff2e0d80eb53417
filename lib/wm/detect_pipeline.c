/* detect_pipeline.c -- wm.h's detection stages as lib/core/pipeline.h stages. */
#include "wm/detect_pipeline.h"

#include <string.h>

#include "core/timer.h"
#include "image/image.h"

static sdlk_status stage_decode(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)ctx;
    (void)worker;
    sdlk_wm_det_item *item = p;
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

static sdlk_status stage_locate(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)worker;
    const sdlk_wm_det_ctx *c = ctx;
    sdlk_wm_det_item *item = p;
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

void sdlk_wm_det_item_clear(sdlk_wm_det_item *item)
{
    sdlk_wm_plane_free(&item->luma);
    sdlk_wm_sync_free(&item->sync);
}
