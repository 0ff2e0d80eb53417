/* store.h -- the tile store: requests being served, and their tiles step by step.
 *
 * Contract
 *   The store is hierarchical: request (an sdlk_serve_job) -> its tiles. Every request's
 *   canvas (1 x H x W, H and W multiples of the native tile) is covered by a torus grid of
 *   equal tiles that is shifted at every denoising step (sdlk_serve_job_grid), so tile
 *   borders move from step to step and no border stays in one place long enough to
 *   leave a seam. A step of a request can start only when every tile of its previous
 *   step is done (the shifted tiles of step k overlap several tiles of step k - 1);
 *   within a step the tiles are independent, so tiles of different requests,
 *   resolutions and steps can share a model call.
 *   Per request the store keeps: the step reached, how many tiles of that step are
 *   handed out / done, counts of computed and skipped tile evaluations, timing
 *   (arrival, deadline, start) and an opaque pointer for the backend (the latent
 *   canvas, model state). The latent data itself lives with the backend: the simulated
 *   clock needs none.
 *   A batch lists (request, step, tile) items; tile -1 means "the whole canvas in one
 *   untiled call" (the request-level baselines).
 *   The store is an array of pointers: add O(1) amortised, remove O(n); nothing here is
 *   shared between threads.
 */
#ifndef SDLK_SERVE_STORE_H
#define SDLK_SERVE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "serve/request.h"
#include "tile/tile.h"

typedef struct sdlk_serve_job {
    sdlk_serve_request req;
    int64_t seq;            /* arrival order (the FCFS key) */
    double arrival_ms;      /* on the engine's clock */
    double slo_ms;          /* resolved SLO (absolute) */
    double deadline_ms;     /* arrival + slo */
    double standalone_ms;   /* alone on an idle server (from the profile) */
    double start_ms;        /* when its first model call began; < 0 before */
    int64_t tile[3];        /* native tile (t, h, w) */
    int64_t tiles;          /* tiles per step of its grid */
    int canvas_mode;        /* 1: computed as whole canvases (request-level policies) */
    int step;               /* steps completed, 0..req.steps */
    int64_t handed;         /* items of the current step in the running batch */
    int64_t done;           /* items of the current step completed */
    int64_t computed;       /* tile (or canvas) evaluations that ran the model */
    int64_t skipped;        /* evaluations answered from the cache */
    int in_group;           /* grouped policy: member of the group being run */
    int late;               /* the deadline has passed (EDF demotes it) */
    double tail_ms;         /* predicted cost after its last step (writing the output) */
    void *state;            /* the backend's per-request state */
} sdlk_serve_job;

typedef struct sdlk_serve_store {
    sdlk_serve_job **jobs;
    size_t count, cap;
    int64_t next_seq;
} sdlk_serve_store;

void sdlk_serve_store_init(sdlk_serve_store *s);
/* Frees the jobs (not their backend state: close that first). */
void sdlk_serve_store_free(sdlk_serve_store *s);
/* A new job for a copy of `req`, arrived at `arrival_ms`, with a fresh seq. The size
 * must be a multiple of the tile in H and W (SDLK_ERR_ARG naming the request and the
 * sizes). *out points into the store until removed. */
sdlk_status sdlk_serve_store_add(sdlk_serve_store *s, const sdlk_serve_request *req,
                                 double arrival_ms, const int64_t tile[3], sdlk_serve_job **out,
                                 sdlk_error *err);
/* Remove and free a job (its backend state must be closed). */
void sdlk_serve_store_remove(sdlk_serve_store *s, sdlk_serve_job *job);
/* Remove a job without freeing it: it becomes the caller's (a finished job whose output
 * is being written), freed with sdlk_serve_job_free. */
void sdlk_serve_store_detach(sdlk_serve_store *s, sdlk_serve_job *job);
void sdlk_serve_job_free(sdlk_serve_job *job);
/* The job with this id, or NULL. O(n). */
sdlk_serve_job *sdlk_serve_store_find(const sdlk_serve_store *s, const char *id);

/* Items per step: tiles, or 1 in canvas mode. */
int64_t sdlk_serve_job_items(const sdlk_serve_job *job);
/* Tile-steps of model work still to do (whole steps plus what is left of the current). */
double sdlk_serve_job_remaining_tiles(const sdlk_serve_job *job);
/* The torus grid of step `step`: canvas (1, H, W), the job's tile, shifted by
 * sdlk_tile_torus_shift(tile, stride, step). */
sdlk_status sdlk_serve_job_grid(const sdlk_serve_job *job, int step, const int64_t stride[3],
                                sdlk_tile_grid *grid, sdlk_error *err);
/* Default per-axis shift stride for a tile: (0, (h/16 + 3) | 1, (w/16 + 1) | 1) modulo
 * the tile (7 and 5 for 64): odd, so borders visit every offset of a power-of-two tile
 * and do not sit on a power-of-two patch lattice inside the model. */
void sdlk_serve_default_stride(const int64_t tile[3], int64_t stride[3]);

typedef struct sdlk_serve_item {
    sdlk_serve_job *job;
    int step;
    int64_t tile;           /* index in the step's grid; -1: the whole canvas */
    int skipped;            /* set by the run: answered from the region cache (no model
                               evaluation); the scheduler hands items out with 0 */
} sdlk_serve_item;

typedef struct sdlk_serve_batch {
    sdlk_serve_item *items;
    int n, cap;
    int canvas;             /* 1: untiled items (whole canvases) */
    double work;            /* tiles, or tile equivalents of the canvases; after the run
                               the engine lowers it to the items the model computed */
} sdlk_serve_batch;

sdlk_status sdlk_serve_batch_reserve(sdlk_serve_batch *b, int cap, sdlk_error *err);
void sdlk_serve_batch_free(sdlk_serve_batch *b);

#endif
