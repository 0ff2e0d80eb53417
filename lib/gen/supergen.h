/* supergen.h -- stage 2 of SuperGen over a whole video, streamed in temporal chunks.
 *
 * Contract
 *   Frames come from a source callback (the stage-1 "sketch", [h, w, 3] u8, any
 *   length) and go to a sink callback ([H, W, 3] u8 at the output size), in order.
 *   The video is processed in chunks of `chunk` frames; consecutive chunks overlap by
 *   `overlap` frames, and the overlapping output frames are blended linearly (weight
 *   of the newer chunk rising from 1/(overlap+1) to overlap/(overlap+1)), so that
 *   chunk borders do not jump. Memory is O(chunk * H * W), independent of the length.
 *
 *   Per chunk:
 *     1. the chunk's sketch frames, mapped to [-1, 1], are opened as the denoiser
 *        request (the exemplar model draws its patch prior from them);
 *     2. each frame is upsampled (Keys bicubic) to H x W, then padded to multiples of
 *        the denoiser's native tile by replicating the last row / column (and the
 *        last frame, for a short final chunk); the padding is cropped away on output;
 *     3. sdlk_refine re-noises to the strength and refines (tiles, cache, workers,
 *        ILVR with the factor H / h);
 *     4. frames are converted back to u8 (clamped, rounded) and blended / emitted.
 *   Frame f of the video always uses the same noise (frame_offset = its global index),
 *   so the chunking does not change what one frame sees.
 *
 *   Cost: O(frames * (chunk / (chunk - overlap)) * refinement cost per frame).
 */
#ifndef SDLK_GEN_SUPERGEN_H
#define SDLK_GEN_SUPERGEN_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "core/tensor.h"
#include "gen/denoiser.h"
#include "gen/refine.h"

/* Next sketch frame into the empty tensor `frame` ([h, w, 3] u8); SDLK_ERR_EOF at the
 * end. Every frame must have the first frame's size. */
typedef sdlk_status (*sdlk_frame_source_fn)(void *ctx, sdlk_tensor *frame, sdlk_error *err);
/* Take output frame `index` ([H, W, 3] u8). */
typedef sdlk_status (*sdlk_frame_sink_fn)(void *ctx, int64_t index, const sdlk_tensor *frame,
                                          sdlk_error *err);
/* After each chunk: frames done so far; non-zero cancels. */
typedef int (*sdlk_supergen_progress_fn)(void *ctx, int64_t frames_done, int chunk_step,
                                         int steps);

typedef struct sdlk_supergen_opts {
    int64_t out_h, out_w;     /* output size (> 0) */
    int64_t chunk;            /* frames per chunk (default 8) */
    int64_t overlap;          /* frames shared by consecutive chunks (default 2; < chunk) */
    int upscale_only;         /* 1: skip the refinement: the Keys bicubic upscale alone
                                 (the baseline every quality figure is compared with) */
    sdlk_refine_opts refine;  /* steps, strength, cache, workers, seed, trace... The
                                 request and frame_offset are set per chunk.
                                 ilvr_factor: 0 (default) = the upscale factor
                                 out_h / h (ILVR on when it is > 1); < 0 = ILVR off;
                                 > 1 = that factor. */
    sdlk_supergen_progress_fn progress; void *progress_ctx;
} sdlk_supergen_opts;

sdlk_status sdlk_supergen_opts_init(sdlk_supergen_opts *o, const sdlk_denoiser_desc *desc,
                                    sdlk_error *err);

typedef struct sdlk_supergen_stats {
    int64_t frames_in, frames_out, chunks;
    int64_t in_h, in_w, pad_h, pad_w;   /* sketch size and padded working size */
    sdlk_refine_stats refine;           /* summed over chunks (busy_s added) */
} sdlk_supergen_stats;

/* Run stage 2 over the whole source. Errors: an empty source (SDLK_ERR_FORMAT "no
 * frames"), a frame of another size, sizes (SDLK_ERR_ARG), and whatever the source,
 * sink, denoiser and refine report. `pool` (may be NULL) parallelises resizing. */
sdlk_status sdlk_supergen_run(sdlk_denoiser *d, const sdlk_supergen_opts *o,
                              sdlk_frame_source_fn source, void *source_ctx,
                              sdlk_frame_sink_fn sink, void *sink_ctx, sdlk_pool *pool,
                              sdlk_supergen_stats *stats, sdlk_error *err);

#endif
