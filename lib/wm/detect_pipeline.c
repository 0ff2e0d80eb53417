/* detect_pipeline.c -- wm.h's detection stages as lib/core/pipeline.h stages: the
 * per-image stages, and the decode stage of the minibatch runs (the rest of a run is in
 * detect_run.c, which needs no image library). */
#include "wm/detect_pipeline.h"

#include <string.h>

#include <stdlib.h>

#include "core/file.h"
#include "core/timer.h"
#include "image/image.h"
#include "wm/wm_internal.h"

/* Rows of an image straight into a luma plane (sdlk_image_decode_rows' sink). */
typedef struct luma_sink {
    wm_luma_tables tables;
    sdlk_wm_plane *luma;
    int channels;
    sdlk_dtype dtype;
} luma_sink;

static sdlk_status luma_begin(void *ctx, int width, int height, int channels, sdlk_dtype dtype,
                              sdlk_error *err)
{
    luma_sink *ls = ctx;
    ls->luma->data = malloc(sizeof *ls->luma->data * (size_t)width * (size_t)height);
    if (!ls->luma->data)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory for luma");
    ls->luma->width = width;
    ls->luma->height = height;
    ls->channels = channels;
    ls->dtype = dtype;
    return SDLK_OK;
}

static sdlk_status luma_row(void *ctx, int y, const uint8_t *row, sdlk_error *err)
{
    (void)err;
    luma_sink *ls = ctx;
    float *out = ls->luma->data + (size_t)y * ls->luma->width;
    if (ls->dtype == SDLK_U8)
        wm_luma_row_u8(&ls->tables, row, ls->luma->width, ls->channels, out);
    else /* u16: lib/image rows are whole samples, aligned as the decoded image's */
        wm_luma_row_u16((const uint16_t *)(const void *)row, ls->luma->width, ls->channels, out);
    return SDLK_OK;
}

/* Read + decode one image (or its top-left read_side square) and take its luma: rows go
 * from the decoder into the luma plane as they come, each converted exactly as
 * sdlk_wm_luma_from_image converts a decoded image, bit for bit. No decoded image is
 * held (6 MB at 1080p, whose first touch alone cost milliseconds of page faults and
 * whose freeing, with two threads, cross-CPU TLB flushes), and the pixels are turned into
 * luma while they are in the cache. */
static sdlk_status decode_item(const sdlk_wm_det_ctx *ctx, sdlk_wm_det_item *item,
                               sdlk_error *err)
{
    uint64_t t0 = sdlk_now_ns();
    const char *name = item->path ? item->path : "(memory)";
    sdlk_storage *file = NULL;
    const uint8_t *data = item->data;
    size_t size = item->size;
    sdlk_status st = SDLK_OK;
    if (!data) {
        st = sdlk_file_map(item->path, &file, err);
        if (st == SDLK_OK) {
            data = sdlk_storage_data(file);
            size = sdlk_storage_size(file);
        }
    }
    luma_sink ls = {.luma = &item->luma};
    wm_luma_tables_init(&ls.tables);
    sdlk_image_row_sink sink = {luma_begin, luma_row, &ls};
    sdlk_image_region region = {0, 0, ctx->read_side, ctx->read_side};
    if (st == SDLK_OK) {
        memset(&item->luma, 0, sizeof item->luma);
        if (size == 0)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: empty file, not an image", name);
        else
            st = sdlk_image_decode_rows(data, size, name, ctx->read_side > 0 ? &region : NULL,
                                        &sink, NULL, err);
        if (st != SDLK_OK)
            sdlk_wm_plane_free(&item->luma);
    }
    sdlk_storage_release(file);
    item->seconds += sdlk_seconds_since(t0);
    return st;
}

static sdlk_status stage_decode(void *ctx, void *p, int worker, sdlk_error *err)
{
    (void)worker;
    return decode_item(ctx, p, err);
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
    sdlk_wm_decode_decide(c->key, &item->sync, item->soft, &c->params, &item->result);
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
    (void)worker;
    (void)err;
    sdlk_wm_det_batch *batch = p;
    for (int i = 0; i < batch->count; i++) {
        sdlk_wm_det_item *item = &batch->items[i];
        if (item->status != SDLK_OK)
            continue;
        sdlk_error why;
        sdlk_error_clear(&why);
        item->status = decode_item(sdlk_wm_det_run_ctx(ctx), item, &why);
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
