/* cache.h -- the region-aware cache of SuperGen, with the k-estimator fixed.
 *
 * Contract
 *   Per tile (addressed by canvas position, so it survives grid shifts) the cache
 *   remembers the model's last computed inputs and outputs and decides, step by step,
 *   whether the model may be skipped:
 *
 *     history (canvas-sized, shared by all tiles; a torus tile touches only its own
 *     positions, so tiles never race):
 *       in_prev   the input of the previous step at every position (computed or not)
 *       in_comp   the input at the position's last real computation (I_c)
 *       out_comp  the output at the last real computation (O_c); R = O_c - I_c
 *     per tile scalars (sdlk_cache_tile): k, E, tau, Welford mean/M2 of the output
 *     magnitude, counts.
 *
 *   Decision for a tile with input I at step s of S (sdlk_cache_decide):
 *     - steps s < warmup (default 5) and s = S - 1 are always computed, as is a tile
 *       with fewer than two real computations (k unknown);
 *     - otherwise dI = mean|I - in_prev| over the tile; when mean|O_c| == 0 the rate
 *       is undefined and the tile is computed;
 *       E += k * dI / mean|O_c|; skip iff E < tau.
 *   On a skip the output is I + R (sdlk_cache_skip_output); ONLY the input history
 *   advances (in_prev := I); k, E's reset, out_comp and in_comp stay. This is the fix
 *   of the published bug (which stored I + R as the "previous output", driving k to
 *   exactly 1 and causing long skip runs).
 *   On a computation with output O (sdlk_cache_record):
 *     k := mean|O - O_c| / mean|I - I_c| when both history terms exist (the tile was
 *     computed before) and the input changed (mean|I - I_c| > 1e-12; otherwise k keeps
 *     its value);
 *     in_comp := I, out_comp := O, in_prev := I, E := 0; the Welford running deviation
 *     of mean|O| is updated.
 *   Threshold: every tile starts at tau. The Welford running standard deviation of
 *   each tile's mean|O| (over its computations) measures how active the tile is.
 *   Every `retune_every` steps (default 5; after steps 4, 9, 14, ...) sdlk_cache_retune
 *   ranks the tiles by it: the most active gets tau * (1 + alpha), the second
 *   tau * (1 + alpha / 2), every other tile tau (the "top-selective" rule of BRIEF.md
 *   section 4, as published). sdlk_cache_retune is also the end-of-step call that
 *   marks in_prev valid, so it must be called after every step.
 *
 *   Threading: decide/skip/record of different tiles of one torus grid may run
 *   concurrently (they touch only their tile's positions and state); retune runs
 *   alone between steps. The *_state variants take the tile state explicitly.
 *
 *   Moving a tile between workers moves its sdlk_cache_tile by value (the history
 *   buffers are canvas-addressed and stay where they are in a shared-memory engine; a
 *   distributed engine would ship the tile's slices of them with it).
 */
#ifndef SDLK_GEN_CACHE_H
#define SDLK_GEN_CACHE_H

#include <stdint.h>

#include "core/error.h"
#include "gen/canvas.h"
#include "tile/tile.h"

typedef struct sdlk_cache_opts {
    int enabled;        /* 0: always compute (the cache still records, for traces) */
    double tau;         /* base threshold (default 0.5: calibrated on the built-in model
                           at 15 steps, where E grows about 0.15 per step; the published
                           0.02-0.09 are for other models and error scales) */
    double alpha;       /* top-selective boost (default 0.5) */
    int warmup;         /* always-computed first steps (default 5) */
    int retune_every;   /* steps between tau updates (default 5) */
} sdlk_cache_opts;

void sdlk_cache_opts_init(sdlk_cache_opts *o);

typedef struct sdlk_cache_tile {
    double k;            /* transformation rate from the last two computations */
    double err;          /* accumulated error E */
    double tau;          /* this tile's threshold */
    double mag_mean;     /* Welford over mean|O| at computations */
    double mag_m2;
    int64_t computes;    /* real computations so far */
    int64_t skips;       /* skips so far */
    int64_t skip_run;    /* consecutive skips (for the trace) */
} sdlk_cache_tile;

typedef struct sdlk_cache {
    sdlk_cache_opts opts;
    sdlk_canvas in_prev, in_comp, out_comp;  /* canvas-sized history */
    int has_prev;                             /* in_prev valid: set by sdlk_cache_retune
                                                 at the end of the first step */
    int64_t tiles;
    sdlk_cache_tile *tile;                    /* one per grid cell (tile index) */
} sdlk_cache;

/* Allocate history for a canvas of t x h x w x c and `tiles` tile states. Memory:
 * 3 canvases of f32 plus O(tiles). */
sdlk_status sdlk_cache_init(sdlk_cache *cache, const sdlk_cache_opts *opts, int64_t t,
                            int64_t h, int64_t w, int64_t c, int64_t tiles, sdlk_error *err);
void sdlk_cache_free(sdlk_cache *cache);

/* What the decision saw (for the trace). */
typedef struct sdlk_cache_decision {
    int compute;         /* 1 = run the model */
    double k, err, tau;  /* after the update */
    double input_change; /* mean|I - in_prev| (0 until the first step ended) */
} sdlk_cache_decision;

/* Decide for tile `index` of `grid` at step `step` of `steps`; `input` is the tile as
 * sdlk_tile_extract lays it out (f32 [t, h, w, C] contiguous). Updates E. */
void sdlk_cache_decide(sdlk_cache *cache, const sdlk_tile_grid *grid, int64_t index,
                       const float *input, int step, int steps, sdlk_cache_decision *out);
/* The skipped tile's output I + R into out (tile-shaped); advances in_prev. */
void sdlk_cache_skip_output(sdlk_cache *cache, const sdlk_tile_grid *grid, int64_t index,
                            const float *input, float *out);
/* Record a real computation (input I, output O); updates k, histories, E, Welford. */
void sdlk_cache_record(sdlk_cache *cache, const sdlk_tile_grid *grid, int64_t index,
                       const float *input, const float *output);
/* End of a step (call once per step, after every tile of the step was skipped or
 * recorded): marks the input history valid and, when (step + 1) is a multiple of
 * retune_every (after steps 4, 9, 14, ... by default), applies the top-selective tau.
 * Ties in activity go to the lower tile index, so the result is deterministic. */
void sdlk_cache_retune(sdlk_cache *cache, int step);

/* The same three operations with the tile's scalar state passed explicitly instead of
 * cache->tile[index]. A tile worker that received a moved tile works on the state it
 * was sent (the message) and never touches the shared table; the history canvases are
 * written only at the tile's own positions. The `cache` struct itself is not modified,
 * so workers may share it. */
void sdlk_cache_decide_state(const sdlk_cache *cache, sdlk_cache_tile *state,
                             const sdlk_tile_grid *grid, int64_t index, const float *input,
                             int step, int steps, sdlk_cache_decision *out);
void sdlk_cache_skip_output_state(const sdlk_cache *cache, sdlk_cache_tile *state,
                                  const sdlk_tile_grid *grid, int64_t index,
                                  const float *input, float *out);
void sdlk_cache_record_state(const sdlk_cache *cache, sdlk_cache_tile *state,
                             const sdlk_tile_grid *grid, int64_t index, const float *input,
                             const float *output);
/* The Welford running standard deviation of a tile's mean|O| (0 with < 2 computations):
 * the activity that sdlk_cache_retune ranks by. */
double sdlk_cache_tile_activity(const sdlk_cache_tile *state);

/* ---- f32 torus tile copies -------------------------------------------------------
 * Tile `index` of `grid` (TORUS or OVERLAP) between an f32 canvas with the grid's
 * T, H, W and `canvas->c` channels and a contiguous [t, h, w, C] buffer, wrapping
 * around the canvas edges. No allocation, no checks (callers validate the shapes once):
 * the per-step hot path of the refinement engine and of the cache. Each row is at most
 * two memcpy runs. Writes touch only the tile's positions, so disjoint tiles may be
 * written concurrently. */
void sdlk_torus_read(const sdlk_canvas *canvas, const sdlk_tile_grid *grid, int64_t index,
                     float *tile);
void sdlk_torus_write(sdlk_canvas *canvas, const sdlk_tile_grid *grid, int64_t index,
                      const float *tile);

#endif
