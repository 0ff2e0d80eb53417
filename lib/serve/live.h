/* live.h -- the live backend of the serving engine: really generates the images.
 *
 * Contract
 *   A live backend wraps a denoiser (sdlk_denoiser_open_spec: "exemplar[:opts]" or
 *   "exec:COMMAND") and implements sdlk_serve_backend:
 *     open    reads the request's reference image (any format lib/image reads; gray,
 *             gray+alpha and RGBA are converted to the model's channels), maps it to
 *             [-1, 1] and opens the request in the model; allocates its latent canvas
 *             (1 x H x W x C f32) filled with seeded Gaussian noise (strength 1: pure
 *             noise) and builds its DDIM schedule (the model's time kind, req.steps).
 *             A missing or unreadable reference is an error naming the request and file.
 *     run     every item of the call: the tile (a core of the model's tile, see
 *             denoiser.h: the grid cuts cores, the model is fed windows of core plus
 *             halo) at its step's shifted torus grid is extracted with its halo
 *             (wrapping at the edges), the model predicts it (items grouped into calls
 *             of at most the model's max_batch, split over `threads` tile workers), the
 *             DDIM step moves the core to the next level and it is written back.
 *             Tiles of one step of one request are disjoint, so workers never race.
 *             A whole-canvas item (tile -1, the untiled policies) is one prediction by
 *             a second instance of the exemplar model whose native tile is the canvas
 *             (same options, halo 0, so the same prior and patches; no tile borders);
 *             models that cannot change their tile (exec) compute the canvas as all
 *             tiles of its step grid in calls of max_batch.
 *             Region cache (opts.cache.enabled, tiled requests only; the untiled
 *             baselines always compute): every request gets its own canvas-addressed
 *             history (sdlk_cache_init with its canvas and tiles per step), and before
 *             the model runs, each tile's core (what the grid cuts, not the halo
 *             window) is shown to sdlk_cache_decide at its step; a skipped tile gets
 *             I + R from the cache (sdlk_cache_skip_output), takes the sampler step and
 *             is written back without a model evaluation (its item is marked skipped);
 *             a computed tile's core input and core prediction are recorded. When a
 *             request's step is complete sdlk_cache_retune closes it -- the same
 *             sequence as the refinement engine of sdl-supergen. Decisions of one
 *             step touch only their tile's positions, so workers never race.
 *     finish  converts the canvas to 8-bit RGB and writes <out_dir>/<id>.png atomically.
 *   Calibration measures the latency profile (profile.h) on this machine: calls of
 *   1 .. B tiles, untiled calls at several canvas sizes, the open of a request and
 *   the PNG write, `reps` times each, then fits the lines.
 *   Memory per request: its canvas twice (H W C floats each), three more with the
 *   cache; per call: the items' windows twice.
 *   Cost of a call: extraction and steps O(items x tile), plus the model.
 */
#ifndef SDLK_SERVE_LIVE_H
#define SDLK_SERVE_LIVE_H

#include <stdint.h>

#include "core/error.h"
#include "gen/cache.h"
#include "gen/denoiser.h"
#include "serve/engine.h"
#include "serve/profile.h"

/* The region cache threshold sdl-serve uses unless told: sdlk_cache_opts_init's 0.5 was
 * calibrated on sdl-supergen's refinement from strength 0.2, where a tile's input moves
 * little per step; generation from pure noise moves every tile at every step and 0.5
 * skips 70 % of the tile-steps of a 256 x 256 brick request of 30 steps at a luma
 * variance 29 % below the uncached image's, while 0.05 skips 32 % at 2.4 % (inside the
 * 5 % the issue allows tiled generation; measured on the CI-class machine). */
#define SDLK_SERVE_CACHE_TAU 0.05

typedef struct sdlk_serve_live_opts {
    const char *model;       /* denoiser spec (default "exemplar") */
    const char *out_dir;     /* where <id>.png are written (NULL: "." ) */
    int threads;             /* tile workers (>= 1) */
    int batch;               /* B; the untiled model instances take max(B, 64) canvases
                                per call, room for any group */
    int64_t shift_stride[3]; /* torus shift per step (0,0,0: sdlk_serve_live_stride's
                                default); the grids live here, the engine never cuts */
    sdlk_cache_opts cache;   /* region cache per tiled request; enabled 0 (a zeroed
                                struct): off. On: start from sdlk_cache_opts_init and
                                set tau (SDLK_SERVE_CACHE_TAU unless told) */
    double eta;              /* DDIM stochasticity in [0, 1] (0: deterministic DDIM); its
                                noise is counter-based by canvas position and step, so
                                tiled and untiled runs still agree */
} sdlk_serve_live_opts;

typedef struct sdlk_serve_live sdlk_serve_live;

sdlk_status sdlk_serve_live_create(const sdlk_serve_live_opts *o, sdlk_serve_live **out,
                                   sdlk_error *err);
void sdlk_serve_live_destroy(sdlk_serve_live *l);
/* The backend to put into sdlk_serve_config (valid while l lives). */
void sdlk_serve_live_backend(sdlk_serve_live *l, sdlk_serve_backend *b);
/* The tiled model's description (native tile, max batch, time kind). */
const sdlk_denoiser_desc *sdlk_serve_live_desc(const sdlk_serve_live *l);

/* The core of the tiled model's tile (tile - 2 x halo): the tile of the store's grids
 * and of the profile. */
void sdlk_serve_live_core(const sdlk_serve_live *l, int64_t core[3]);
/* The torus shift stride per step: the option's, or with a halo (halo_h, 2 halo_w) so
 * that cores stay on the model's patch lattice, else sdlk_serve_default_stride. */
void sdlk_serve_live_stride(const sdlk_serve_live *l, int64_t stride[3]);

/* Measure a latency profile with `reference` (NULL: a synthetic 128 x 128 one -- the
 * cost does not depend on the picture) as every request's reference: calls of
 * 1, B/4, B/2 and B tiles, untiled calls on canvases of 1, 2, 4 and 8 tiles a side
 * (the larger ones are what spreads an untiled call over the cores, as a serving mix's
 * canvases do), each timed `reps` times (at most 64) after a warm-up call, the median kept
 * as the sample; opens and PNG writes of a 4-tile canvas. Writes and removes
 * a scratch PNG in out_dir. */
sdlk_status sdlk_serve_live_calibrate(sdlk_serve_live *l, const char *reference, int reps,
                                      sdlk_serve_profile *out, sdlk_error *err);

#endif
