/* supergen.h -- SuperGen over a whole video, streamed in temporal chunks: stage 2
 * (upscale and refine a sketch) and, for a model with a prior of its own, stage 1
 * (generate the sketch from a prompt).
 *
 * Contract (stage 2, sdlk_supergen_run)
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
    const char *prompt;       /* sent with every chunk's request (an exec model may
                                 condition on it; the exemplar model ignores it); NULL:
                                 none */
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

/* The largest chunk (frames, a multiple of the model's temporal tile, at least one tile
 * and at most `chunk`) whose stage-2 working memory fits `budget_bytes` for an output of
 * out_h x out_w: per chunk frame the padded working canvas and refine's second buffer
 * (+3 history canvases with the region cache), plus the fixed frames (upscaled,
 * blended, refine's ILVR frame and the `overlap` held frames). The model (weights,
 * exemplars) and the codecs are not counted. */
int64_t sdlk_supergen_fit_chunk(const sdlk_denoiser_desc *desc, int64_t out_h, int64_t out_w,
                                int cache_on, int64_t chunk, int64_t overlap,
                                double budget_bytes);

/* Run stage 2 over the whole source. Errors: an empty source (SDLK_ERR_FORMAT "no
 * frames"), a frame of another size, sizes (SDLK_ERR_ARG), and whatever the source,
 * sink, denoiser and refine report. `pool` (may be NULL) parallelises resizing. */
sdlk_status sdlk_supergen_run(sdlk_denoiser *d, const sdlk_supergen_opts *o,
                              sdlk_frame_source_fn source, void *source_ctx,
                              sdlk_frame_sink_fn sink, void *sink_ctx, sdlk_pool *pool,
                              sdlk_supergen_stats *stats, sdlk_error *err);

/* ---- stage 1: the sketch generated by the model ---------------------------------------
 *
 * Contract
 *   A sketch generator is a frame source (sdlk_frame_source_fn: pass sdlk_sketch_next
 *   and the generator to sdlk_supergen_run) that samples a video of `frames` frames of
 *   h x w from pure noise with the model's own prior, conditioned on `prompt`: the
 *   text-to-video (or, one frame, text-to-image) first stage of SuperGen. The built-in
 *   exemplar model has no prior without a reference canvas and refuses such a request;
 *   an exec model receives the prompt in OPEN (no reference).
 *
 *   It is sdlk_refine with from_noise: one request (id `request`, the prompt, the seed)
 *   is opened at the first frame asked for and closed by destroy; the video is made in
 *   temporal chunks of `chunk` frames on a canvas padded to whole tile cores (the
 *   padding is generated too, then cropped away: no replication, the canvas is a torus),
 *   each chunk a full run of refine.schedule (strength 1 by default) over shifted torus
 *   tiles with the cache and tile workers of refine. Consecutive chunks share `overlap`
 *   frames: the first `overlap` frames of a chunk are the last ones of the previous
 *   chunk, pinned by replacement conditioning (refine.h, known_frames), so the model
 *   continues the video where the previous chunk ended instead of starting a new one
 *   (a model whose tiles span one frame, t = 1, makes every frame on its own anyway);
 *   every frame is emitted once, by the chunk that made it. Noise is position-addressed
 *   by the global frame index (frame_offset), in a stream of its own: the seed is mixed
 *   with SDLK_SKETCH_SEED_SALT so that stage 2 with the same seed draws other noise.
 *   Frames come out as [h, w, 3] u8 (clamped, rounded), in order.
 *
 *   Memory: O(chunk * pad_h * pad_w), independent of `frames` (the chunk canvas, the
 *   refine double buffer, 3 history canvases with the cache, 2 frames per overlap frame).
 *   Time: O(frames * chunk / (chunk - overlap) * steps * tiles per frame * model cost).
 */

/* Stage 1's request id: far from sdlk_supergen_run's (the chunk numbers 0, 1, ...), so
 * that both can be open on one model. */
#define SDLK_SKETCH_REQUEST ((int64_t)1 << 40)
#define SDLK_SKETCH_SEED_SALT 0x73746167652d3121ull /* "stage-1!" */

typedef struct sdlk_sketch_opts {
    int64_t h, w;             /* frame size (> 0) */
    int64_t frames;           /* frames to generate (> 0) */
    int64_t chunk;            /* frames generated together (default 8; rounded up to the
                                 model's temporal tile) */
    int64_t overlap;          /* frames each chunk continues from the previous one
                                 (default 2; < chunk) */
    const char *prompt;       /* what to generate; borrowed until destroy; NULL: none */
    int64_t request;          /* request id (default SDLK_SKETCH_REQUEST) */
    sdlk_refine_opts refine;  /* schedule (default 30 steps at strength 1), cache,
                                 workers, seed, progress, trace. from_noise,
                                 known_frames, frame_offset and request are set per chunk;
                                 ILVR must stay off (ilvr_factor 0). */
} sdlk_sketch_opts;

/* Defaults for a model (see above). */
sdlk_status sdlk_sketch_opts_init(sdlk_sketch_opts *o, const sdlk_denoiser_desc *desc,
                                  sdlk_error *err);

typedef struct sdlk_sketch_stats {
    int64_t frames, chunks;       /* emitted frames, chunks generated */
    int64_t pad_h, pad_w;         /* canvas size (h, w rounded up to tile cores) */
    sdlk_refine_stats refine;     /* summed over chunks */
} sdlk_sketch_stats;

typedef struct sdlk_sketch_gen sdlk_sketch_gen;

/* Check the options against the model and allocate the chunk canvas; generates
 * nothing yet. Errors: sizes, chunk/overlap, a model that is not RGB (SDLK_ERR_ARG),
 * out of memory. The model must outlive the generator. */
sdlk_status sdlk_sketch_create(sdlk_denoiser *d, const sdlk_sketch_opts *o,
                               sdlk_sketch_gen **out, sdlk_error *err);
/* The next frame, as a sdlk_frame_source_fn (ctx is the generator): into the empty
 * tensor `frame` ([h, w, 3] u8); SDLK_ERR_EOF after `frames` frames. The model's
 * errors (a refused request, a failed batch) and cancellation by refine.progress pass
 * through; after an error every call repeats it. */
sdlk_status sdlk_sketch_next(void *gen, sdlk_tensor *frame, sdlk_error *err);
void sdlk_sketch_get_stats(const sdlk_sketch_gen *g, sdlk_sketch_stats *out);
/* Close the request and free (NULL is a no-op). */
void sdlk_sketch_destroy(sdlk_sketch_gen *g);

#endif
