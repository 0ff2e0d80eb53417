/* detect_pipeline.h -- the four detection stages of wm.h as pipeline stages
 * (lib/core/pipeline.h), shared by sdl-wmdetect and sdl-bench's wm family.
 *
 * Contract
 *   Per-image items. An item (sdlk_wm_det_item, owned by the caller: typically calloc'd
 *   by the pipeline's source and freed by its sink) names its input either as a file
 *   path (`path`, read with sdlk_image_read: any format lib/image reads) or as encoded
 *   bytes in memory (`data`/`size`, decoded with sdlk_image_decode; `path` then only
 *   names it in messages). The stages of sdlk_wm_det_stages(), in order, fill it:
 *     0 "decode"   read + decode the image (or its top-left read_side square, see
 *                  sdlk_wm_det_ctx) into its luma, as sdlk_wm_luma_from_image takes it
 *     1 "locate"   sdlk_wm_locate (frees the luma afterwards); an error message is
 *                  prefixed with the item's name
 *     2 "extract"  sdlk_wm_extract_soft
 *     3 "decide"   sdlk_wm_decode_decide at params.fpr
 *   Each stage adds its wall time to item->seconds. sdlk_wm_det_stages() binds the four
 *   stage functions to a context (key + detection parameters) that must outlive the
 *   pipeline run; the context is only read, so any number of workers may share it.
 *   These per-image stages run on the CPU (params.device AUTO counts as the CPU here);
 *   params.device GPU fails each item with an SDLK_ERR_DEVICE message, since the GPU
 *   works on minibatches: use a detection run.
 *
 *   Detection runs (minibatches, CPU or GPU). A run (sdlk_wm_det_run_open) resolves
 *   params.device once and gives stages whose pipeline items are minibatches
 *   (sdlk_wm_det_batch: `count` per-image items as above). A failure of one image is
 *   recorded in its item (status, error: the same messages as the per-image stages) and
 *   the later stages skip it; the pipeline stage itself fails (and with it every image
 *   of the minibatch) only for a failure of the whole minibatch: a CUDA error, out of
 *   memory. The stages, by device:
 *     CPU  "decode", "locate", "extract", "decide": the per-image stages above, applied
 *          to each image of the minibatch (a minibatch of 1 is the per-image pipeline);
 *     GPU  "decode", "locate+extract", "decide": the middle stage runs both as CUDA
 *          kernels (sdlk_wm_locate_extract) on the minibatch, on a CUDA stream of its
 *          own per pipeline worker -- the run opens one engine per worker -- so the
 *          workers the pipeline's allocator gives that stage are the minibatches in
 *          flight on the GPU, each on its stream, and the allocator sizes them from the
 *          measured cost per minibatch like any stage's threads. Each image of a
 *          minibatch is charged an equal share of its time.
 *   sdlk_wm_det_run_luma_stages() gives the same stages without "decode", for callers
 *   whose items arrive with `luma` filled (decoded elsewhere). A run is shared by the
 *   pipeline's workers (worker w uses engine w only); it and its context must outlive
 *   the pipeline run. Nothing here prints or keeps global state.
 */
#ifndef SDLK_WM_DETECT_PIPELINE_H
#define SDLK_WM_DETECT_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/pipeline.h"
#include "wm/wm.h"

#define SDLK_WM_DET_STAGES 4  /* at most, whatever the device */
#define SDLK_WM_GPU_BATCH 16  /* default images per minibatch on the GPU */

/* What the stages read: shared, read-only during a run. */
typedef struct sdlk_wm_det_ctx {
    const sdlk_wm_key *key;
    sdlk_wm_detect_params params;
    /* 0 (the default): "decode" reads the whole image. N > 0: it reads only the top-left
     * N x N pixels of a larger image (sdlk_image_decode_rows; for a JPEG the rows below
     * are never decoded and the columns beyond are not transformed), and detection sees
     * that region as the image. One tile suffices, so a region of many tiles keeps a
     * clean mark detectable at a fraction of the decoding and locating, and the false-
     * positive guarantee is unchanged (the test is exact on whatever pixels it sees);
     * the price is sensitivity: fewer tiles are folded, which matters for strongly
     * attacked images and for a crop that left the region unmarked. N >= the largest
     * fold period searched (2 T by default), else the region is too small. */
    int read_side;
} sdlk_wm_det_ctx;

/* One image on its way through the stages. Zero it, then set path (and optionally
 * data/size). */
typedef struct sdlk_wm_det_item {
    const char *path;       /* file to read, or the name of `data` in messages */
    const uint8_t *data;    /* encoded image in memory (not owned), or NULL */
    size_t size;
    sdlk_wm_plane luma;
    sdlk_wm_sync sync;
    float soft[SDLK_WM_GROUPS];
    sdlk_wm_result result;
    double seconds;         /* wall time spent in the stages */
    sdlk_status status;     /* minibatch stages: SDLK_OK or why this image failed */
    sdlk_error error;       /* minibatch stages: the message when status is not OK */
} sdlk_wm_det_item;

/* A minibatch: the pipeline item of a detection run. */
typedef struct sdlk_wm_det_batch {
    sdlk_wm_det_item *items; /* [count], owned by the caller */
    int count;
} sdlk_wm_det_batch;

typedef struct sdlk_wm_det_run sdlk_wm_det_run;

/* Fill stages[0..SDLK_WM_DET_STAGES) with "decode", "locate", "extract", "decide" bound
 * to `ctx`. */
void sdlk_wm_det_stages(const sdlk_wm_det_ctx *ctx, sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES]);

/* Free what the stages allocated in `item` (luma, sync); the item itself stays. Safe on
 * a zeroed or already cleared item. */
void sdlk_wm_det_item_clear(sdlk_wm_det_item *item);

/* Open a run of `ctx` (params.device resolved now: SDLK_ERR_DEVICE when the GPU is
 * asked for and none is usable, or CUDA fails) for a pipeline of `workers` threads
 * (>= 1; on the GPU one engine each). */
sdlk_status sdlk_wm_det_run_open(const sdlk_wm_det_ctx *ctx, int workers, sdlk_wm_det_run **out,
                                 sdlk_error *err);
void sdlk_wm_det_run_close(sdlk_wm_det_run *run); /* NULL is ignored */
/* SDLK_DEVICE_CPU or SDLK_DEVICE_GPU. */
sdlk_device sdlk_wm_det_run_device(const sdlk_wm_det_run *run);
/* The context the run was opened with. */
const sdlk_wm_det_ctx *sdlk_wm_det_run_ctx(const sdlk_wm_det_run *run);
/* The stages for minibatch items (see the contract); returns how many (4 CPU, 3 GPU). */
int sdlk_wm_det_run_stages(sdlk_wm_det_run *run, sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES]);
/* The same without "decode" (items arrive with luma filled); returns how many. */
int sdlk_wm_det_run_luma_stages(sdlk_wm_det_run *run,
                                sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES - 1]);

#endif
