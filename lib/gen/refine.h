/* refine.h -- tiled diffusion refinement of a canvas: shifted torus tiles, region
 * cache, parallel tile workers with redistribution, ILVR conditioning.
 *
 * Contract
 *   Input: `x0` (f32 [T, H, W, C], T/H/W multiples of the denoiser's native tile) is the
 *   upsampled sketch (stage 1 -> bicubic). sdlk_refine re-noises it to the schedule's
 *   first level with seeded Gaussian noise e (position-addressed: element i of frame f
 *   uses stream index (frame_offset + f) * H*W*C + i, so chunks of a long video draw
 *   the same noise as one big canvas would) and runs `schedule.steps` steps in place:
 *
 *   for step k:
 *     1. grid := torus grid of native tiles shifted by sdlk_tile_torus_shift(tile,
 *        shift_stride, k) (each axis its own cycle; borders never stay put);
 *     2. each worker extracts the tiles of its home block (tiles are split into
 *        contiguous blocks of tile indices, one per worker) and asks the cache (if
 *        enabled) compute or skip; a skipped tile is finished on the spot (output
 *        I + R, sampler step, write back: it costs no model call);
 *     3. the active (computed) tiles, in canvas order, are cut into one contiguous
 *        slice per worker: evenly with redistribution, by home block without; a tile
 *        that leaves its home carries its sdlk_cache_tile with it (a message: tile
 *        index, step, from, to, state; refine_move in refine.c);
 *     4. each worker predicts its slice in batches of up to max_batch
 *        (sdlk_denoiser_predict), records the computations in the cache, applies the
 *        sampler step per tile and writes the tile back (tiles are disjoint on a
 *        torus, so writes never race and the next tile's input is unaffected);
 *     5. ILVR (when ilvr_factor > 1): x += up(down(y_k') - down(x)) where y_k' is the
 *        sketch re-noised with the same e to the level reached after the step, and
 *        down/up are Keys bicubic resizes by ilvr_factor (sdlk_canvas_resize). Linear,
 *        so it runs on the small canvas plus one upsample per frame, repeated
 *        ilvr_passes times (iterative back-projection). It runs after
 *        every step, the last one included: the level after the last step is clean,
 *        so y' is the sketch itself and the output's low frequencies are the sketch's
 *        (as in ILVR, whose last step conditions on the clean reference).
 *   After the last step `x0` holds the refined canvas (values unclamped).
 *
 *   Generation (from_noise, SuperGen's stage 1 without a sketch): the same engine with
 *   x := e instead of the re-noising (x0 is read only for its known frames), ILVR off,
 *   and optionally the first known_frames frames pinned to x0 by replacement after
 *   every step (6.); with a strength-1 schedule this samples from pure noise, tile by
 *   tile like a refinement.
 *     6. known frames (when known_frames > 0): x_f := renoise(x0_f, e_f, level reached),
 *        f < known_frames; after the last step (level clean) x_f = x0_f exactly.
 *
 *   Workers are threads of one process; the seam between the coordinator and workers
 *   is the per-step assignment message (tile indices with their cache states), which
 *   is what a multi-machine (MPI) engine would send. A moved tile's state is sent to
 *   the computing worker and sent back to its home (the block owner, which decides it
 *   again next step); the tile data and history stay canvas-addressed in shared memory.
 *   Per-worker busy time (phases 2 and 4: deciding and finishing skipped tiles of its
 *   block, computing its active tiles) and counts are reported.
 *   With the cache off no history is kept and trace rows show k = E = tau = 0.
 *   Determinism: the output depends on the seed, the options and the denoiser, not on
 *   the number of workers or redistribution (tiles are computed identically wherever
 *   they run; batches may differ but each item is independent).
 *   Memory: x plus, with the cache, 3 canvases of history; plus small ILVR canvases
 *   (1 / ilvr_factor^2 of the size), 2 frames per known frame, and per-worker tile
 *   scratch.
 *   Complexity: O(steps * tiles * model cost per tile) + O(steps * canvas) for ILVR.
 */
#ifndef SDLK_GEN_REFINE_H
#define SDLK_GEN_REFINE_H

#include <stdint.h>

#include "core/error.h"
#include "gen/cache.h"
#include "gen/canvas.h"
#include "gen/denoiser.h"
#include "gen/schedule.h"

/* One line of the per-step trace. */
typedef struct sdlk_refine_trace_row {
    int step;
    int64_t tile;          /* tile index in the step's grid */
    int64_t origin[3];     /* canvas position (t, h, w) */
    int worker;            /* who ran it */
    int computed;          /* 1 computed, 0 skipped (cache) */
    double k, err, tau;
} sdlk_refine_trace_row;

typedef void (*sdlk_refine_trace_fn)(void *ctx, const sdlk_refine_trace_row *row);
/* Called after every step with the number of steps done (1..steps) and steps; return
 * non-zero to cancel (SDLK_ERR_IO "interrupted"; the canvas is left part-way). Trace
 * rows and progress calls come from the calling thread, trace rows in tile order. */
typedef int (*sdlk_refine_progress_fn)(void *ctx, int step, int steps);

typedef struct sdlk_refine_opts {
    sdlk_schedule schedule;      /* steps, strength, levels (must match denoiser time) */
    int64_t shift_stride[3];     /* per-axis torus stride (default 0, core_h/16 + 1,
                                    core_w/16 + 3: SuperGen's tile/16 made odd and
                                    different per axis, so the borders visit every
                                    residue of the 4- and 8-pixel blocks that codecs
                                    leave in real footage, not only its block edges) */
    double ilvr_factor;          /* > 1 enables ILVR (the upscale factor); <= 1 off */
    int ilvr_passes;             /* back-projection passes per step (default 4; < 1 = 1):
                                    up(down(.)) is not a projection, so one pass leaves
                                    the low band only near the sketch's; 4 passes cut
                                    the PSNR loss against bicubic from 1.2-1.5 dB to
                                    0.6-0.8 dB on real photos and footage (x2) */
    sdlk_cache_opts cache;
    int workers;                 /* >= 1 */
    int redistribute;            /* 1: rebalance active tiles every step (default) */
    uint64_t seed;
    int64_t frame_offset;        /* global index of frame 0 (for noise addressing) */
    int64_t request;             /* opened denoiser request */
    int from_noise;              /* 1: generate (SuperGen's stage 1) instead of refining:
                                    x0's content is ignored and the canvas starts as the
                                    noise e itself, x_T = e (the start of sdl-serve and of
                                    diffusers' samplers; use strength 1), except for its
                                    first known_frames frames. ILVR must be off (there is
                                    no sketch to pull towards). */
    int64_t known_frames;        /* from_noise only, 0..T-1: frames 0..known_frames-1 of
                                    x0 are known (the end of the previous temporal chunk
                                    of a generated video). They start re-noised like a
                                    sketch, and after every step they are replaced by x0
                                    re-noised with the same e to the level reached
                                    (replacement conditioning), so the model continues
                                    them; they come out unchanged. */
    const float *cond_scale;     /* unused for now: NULL */
    sdlk_refine_trace_fn trace;  void *trace_ctx;
    sdlk_refine_progress_fn progress; void *progress_ctx;
} sdlk_refine_opts;

/* Defaults for a denoiser: 15 steps, strength 0.2, stride as above, cache on with
 * its defaults, 1 worker, redistribution on, seed 1. */
sdlk_status sdlk_refine_opts_init(sdlk_refine_opts *o, const sdlk_denoiser_desc *desc,
                                  sdlk_error *err);

#define SDLK_REFINE_MAX_WORKERS 64

typedef struct sdlk_refine_stats {
    int64_t tile_evals;          /* tiles x steps */
    int64_t computed;            /* model evaluations */
    int64_t skipped;             /* cache hits */
    int64_t moved;               /* tiles that changed owner (redistribution) */
    double wall_s;
    int workers;
    double busy_s[SDLK_REFINE_MAX_WORKERS];     /* phase 2 + 4 time per worker */
    int64_t computed_by[SDLK_REFINE_MAX_WORKERS];
} sdlk_refine_stats;

/* Refine (or, with from_noise, generate) x0 in place. Errors: shape not a multiple of
 * the native tile or channel mismatch (SDLK_ERR_ARG, naming the sizes), from_noise with
 * ILVR on or known_frames outside 0..T-1 (SDLK_ERR_ARG), denoiser failures (passed
 * through), cancellation. stats may be NULL. */
sdlk_status sdlk_refine(sdlk_denoiser *d, sdlk_canvas *x0, const sdlk_refine_opts *o,
                        sdlk_refine_stats *stats, sdlk_error *err);

#endif
