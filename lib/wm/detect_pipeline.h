/* detect_pipeline.h -- the four detection stages of wm.h as pipeline stages
 * (lib/core/pipeline.h), shared by sdl-wmdetect and sdl-bench's wm family.
 *
 * Contract
 *   An item (sdlk_wm_det_item, owned by the caller: typically calloc'd by the pipeline's
 *   source and freed by its sink) names its input either as a file path (`path`, read
 *   with sdlk_image_read: any format lib/image reads) or as encoded bytes in memory
 *   (`data`/`size`, decoded with sdlk_image_decode; `path` then only names it in
 *   messages). The stages, in order, fill it:
 *     0 "decode"   read + decode the image, its luma (sdlk_wm_luma_from_image)
 *     1 "locate"   sdlk_wm_locate (frees the luma afterwards); an error message is
 *                  prefixed with the item's name
 *     2 "extract"  sdlk_wm_extract_soft
 *     3 "decide"   sdlk_wm_decode_decide at params.fpr
 *   Each stage adds its wall time to item->seconds. sdlk_wm_det_stages() binds the four
 *   stage functions to a context (key + detection parameters) that must outlive the
 *   pipeline run; the context is only read, so any number of workers may share it.
 *   Nothing here prints or keeps global state.
 */
#ifndef SDLK_WM_DETECT_PIPELINE_H
#define SDLK_WM_DETECT_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/pipeline.h"
#include "wm/wm.h"

#define SDLK_WM_DET_STAGES 4

/* What the stages read: shared, read-only during a run. */
typedef struct sdlk_wm_det_ctx {
    const sdlk_wm_key *key;
    sdlk_wm_detect_params params;
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
} sdlk_wm_det_item;

/* Fill stages[0..SDLK_WM_DET_STAGES) with "decode", "locate", "extract", "decide" bound
 * to `ctx`. */
void sdlk_wm_det_stages(const sdlk_wm_det_ctx *ctx, sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES]);

/* Free what the stages allocated in `item` (luma, sync); the item itself stays. Safe on
 * a zeroed or already cleared item. */
void sdlk_wm_det_item_clear(sdlk_wm_det_item *item);

#endif
