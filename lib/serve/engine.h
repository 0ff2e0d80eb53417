/* engine.h -- the serving loop: arrivals, admission, batches, clocks, results.
 *
 * Contract
 *   The engine owns the tile store (store.h), a scheduler policy (sched.h), two online
 *   latency predictors (tiled calls and untiled calls, predictor.h, seeded from the
 *   profile) and a clock:
 *     live  time is the wall clock since the engine was created; a backend really runs
 *           each call (live.h) and the measured time feeds the predictors;
 *     sim   a discrete-event clock: each event (a request's open, a model call, writing
 *           its output) advances time by its cost from `cost` (default: the profile's
 *           lines), and when nothing can run time jumps to the next arrival. No backend
 *           is needed; thousands of requests simulate in milliseconds.
 *   Requests are submitted with their arrival time (trace replay; "now" when absent).
 *   sdlk_serve_engine_step() performs the next event: it admits every request that has
 *   arrived (resolving its SLO from slo_ms, or slo_scale x the standalone latency from
 *   the profile; checking its size against the tile; EDF admission under the tile
 *   policy; opening it in the backend), then forms and runs one call, then completes
 *   the steps and requests that call finished (the backend writes the output first, on
 *   the loop or, with `writers`, beside it; a request is reported as served only after
 *   its output was written).
 *   Region cache: a tiled item the backend answers from its cache (live) or that
 *   `sim_skip` marks (sim) is counted as skipped, not computed, and costs nothing: the
 *   call's work is the items the model computed, so the simulated clock charges
 *   tiled_ms(computed tiles) (0 and no model call when every item was skipped) and the
 *   live predictor observes the measured time against the computed tiles. Admission
 *   and EDF still plan every tile as computed (skips are not known in advance), which
 *   errs on the safe side.
 *   Every request ends in exactly one result through `on_result`: served (with start,
 *   finish, latency, SLO met), failed (bad request, impossible size, missing reference,
 *   model or write error: the message names the request and the cause), rejected
 *   (admission: cannot make its SLO) or not served (drain/abort at shutdown). A failure
 *   of one request never stops the others; only out-of-memory ends a step with an error.
 *   Cost per step: O(n log n) for n requests in the store plus the call itself.
 */
#ifndef SDLK_SERVE_ENGINE_H
#define SDLK_SERVE_ENGINE_H

#include <stdint.h>

#include "core/error.h"
#include "serve/predictor.h"
#include "serve/profile.h"
#include "serve/request.h"
#include "serve/sched.h"
#include "serve/store.h"

typedef enum sdlk_serve_clock { SDLK_SERVE_CLOCK_LIVE = 0, SDLK_SERVE_CLOCK_SIM } sdlk_serve_clock;

typedef enum sdlk_serve_outcome {
    SDLK_SERVE_SERVED = 0,
    SDLK_SERVE_FAILED,
    SDLK_SERVE_REJECTED,
    SDLK_SERVE_NOT_SERVED
} sdlk_serve_outcome;

/* "served", "failed", "rejected", "not served". */
const char *sdlk_serve_outcome_name(sdlk_serve_outcome o);

typedef struct sdlk_serve_result {
    char id[SDLK_SERVE_ID_MAX];
    sdlk_serve_outcome outcome;
    char error[SDLK_ERROR_MSG_MAX];   /* why, unless served */
    double arrival_ms, start_ms, finish_ms, latency_ms; /* start < 0: never started */
    double slo_ms, predicted_ms;      /* predicted finish at admission (tile policy) */
    int slo_met;
    int64_t height, width, tiles;
    int steps;
    int64_t computed, skipped;
    char output[1024];                /* the file written ("" in simulation) */
} sdlk_serve_result;

/* One JSON object on one line (no newline), malloc'd; NULL on out of memory. Served:
 * {"id","ok":true,"arrival_ms","start_ms","finish_ms","latency_ms","slo_ms","slo_met",
 *  "height","width","tiles","steps","computed","skipped","output"}; otherwise
 * {"id","ok":false,"status":"failed|rejected|not served","error", ...times known}. */
char *sdlk_serve_result_json(const sdlk_serve_result *r);

typedef void (*sdlk_serve_result_fn)(void *ctx, const sdlk_serve_result *r);

/* What a live backend does (live.h implements it over a denoiser). */
typedef struct sdlk_serve_backend {
    void *ctx;
    /* Prepare a request (read its reference, open it in the model, allocate its latent).
     * canvas_mode: it will be computed untiled. */
    sdlk_status (*open)(void *ctx, sdlk_serve_job *job, sdlk_error *err);
    /* Run one call: every item's model evaluation and sampler step. A backend with a
     * region cache may answer a tile from it instead of the model: it sets that item's
     * `skipped` (the engine counts it as skipped, not computed). */
    sdlk_status (*run)(void *ctx, sdlk_serve_batch *batch, sdlk_error *err);
    /* Write the finished request's output; its path into `path`. */
    sdlk_status (*finish)(void *ctx, sdlk_serve_job *job, char *path, size_t cap,
                          sdlk_error *err);
    /* Forget a request (done, failed or abandoned). */
    void (*close)(void *ctx, sdlk_serve_job *job);
} sdlk_serve_backend;

typedef enum sdlk_serve_cost_kind {
    SDLK_SERVE_COST_OPEN = 0,  /* work = 0 */
    SDLK_SERVE_COST_TILES,     /* work = tiles in the call */
    SDLK_SERVE_COST_CANVAS,    /* work = tile equivalents of the untiled call */
    SDLK_SERVE_COST_FINISH     /* work = 0 */
} sdlk_serve_cost_kind;

/* Simulated cost in ms of an event (job: the request for OPEN/FINISH, else NULL). */
typedef double (*sdlk_serve_cost_fn)(void *ctx, sdlk_serve_cost_kind kind, double work,
                                     const sdlk_serve_job *job);

typedef struct sdlk_serve_config {
    sdlk_serve_policy policy;
    int batch;                    /* B: tiles per call (>= 1) */
    int group;                    /* grouped policy: requests per batch (default 4) */
    int admission;                /* EDF admission control (tile policy only) */
    sdlk_serve_clock clock;
    sdlk_serve_profile profile;   /* costs: predictor seed, standalone latency, sim */
    double forget;                /* predictor forgetting factor (default 0.98) */
    double headroom;              /* tile policy: plan call sizes with costs x (1 +
                                     headroom); < 0 (the default): SDLK_SERVE_HEADROOM_Z
                                     x the profile's tiled-call spread, at most 0.5 */
    const sdlk_serve_backend *backend; /* live clock: required */
    sdlk_serve_cost_fn cost;      /* sim clock: NULL = the profile's lines */
    void *cost_ctx;
    /* Sim clock only: the region cache's decisions, which the simulated clock cannot
     * make itself (it has no latents to compare). Returns 1 when tile `tile` of the
     * job's step `step` is answered from the cache. NULL: nothing is skipped. */
    int (*sim_skip)(void *ctx, const sdlk_serve_job *job, int step, int64_t tile);
    void *sim_skip_ctx;
    sdlk_serve_result_fn on_result;
    void *result_ctx;
    /* Outputs written beside the loop: 0 (the default) writes each finished request's
     * output on the loop, between model calls; N > 0 hands it to N writers (live: threads,
     * writeq.h; sim: N writer lanes, each write starting when its request is done and a
     * lane is free, costing `cost`'s FINISH) while the loop goes on with the model. The
     * request is reported when its write ends. */
    int writers;
} sdlk_serve_config;

#define SDLK_SERVE_WRITERS_MAX 64

/* The headroom's multiple of the profile's call-time spread: 1.645, the one-sided 95 %
 * point of a normal, as if a request's remaining calls were all slowed alike (a busy
 * machine slows a stretch of calls, not one call at random). */
#define SDLK_SERVE_HEADROOM_Z 1.645
#define SDLK_SERVE_HEADROOM_MAX 0.5

/* Defaults: tile policy, admission on, live clock, group 4, forget 0.98, headroom from
 * the profile, writers 0; batch 0 (set it). The profile is zeroed: set it. */
void sdlk_serve_config_init(sdlk_serve_config *c);

typedef struct sdlk_serve_engine sdlk_serve_engine;

sdlk_status sdlk_serve_engine_create(const sdlk_serve_config *c, sdlk_serve_engine **out,
                                     sdlk_error *err);
/* Closes every request still held in the backend (without results: drain or abort
 * first to report them). */
void sdlk_serve_engine_destroy(sdlk_serve_engine *e);

/* Current time on the engine's clock (ms). */
double sdlk_serve_engine_now(const sdlk_serve_engine *e);

/* A request arrives at req->arrival_ms (< 0: now). The engine copies it. A request
 * whose id is already held gets a failed result; so does one submitted after drain
 * (not served). Errors only for out of memory. */
sdlk_status sdlk_serve_engine_submit(sdlk_serve_engine *e, const sdlk_serve_request *req,
                                     sdlk_error *err);
/* Report a line that could not be parsed as a failed request (id may be "" or NULL);
 * counted in the statistics like every other result. */
void sdlk_serve_engine_report_error(sdlk_serve_engine *e, const char *id, const char *message);

/* Perform the next event. *next_ms receives: a negative number when the step did work;
 * else the time of the next pending arrival (live clock: the caller waits until then
 * or until new input) or INFINITY when nothing is pending at all (idle). In the sim
 * clock a step with nothing to run jumps to the next arrival (and returns negative). */
sdlk_status sdlk_serve_engine_step(sdlk_serve_engine *e, double *next_ms, sdlk_error *err);

/* Run until nothing is pending (sim clock; live: waits with nanosleep for arrivals). */
sdlk_status sdlk_serve_engine_run(sdlk_serve_engine *e, sdlk_error *err);

/* Shutdown, first stage: requests not yet arrived are reported not served; requests
 * that arrived are kept and finish (drain). */
void sdlk_serve_engine_drain(sdlk_serve_engine *e);
/* Shutdown, second stage: every request not finished is reported not served. */
void sdlk_serve_engine_abort(sdlk_serve_engine *e);
/* Requests held (arrived and pending, outputs being written included). */
int64_t sdlk_serve_engine_pending(const sdlk_serve_engine *e);

typedef struct sdlk_serve_stats {
    int64_t results, served, met, failed, rejected, not_served;
    int64_t calls;                 /* model calls */
    int64_t computed, skipped;     /* tile (or canvas) evaluations of served requests:
                                      run by the model / answered by the region cache */
    double busy_ms;                /* time the loop spent in calls, opens and (writers
                                      0) writes */
    double attainment;             /* met / (served + rejected + not served + failed
                                      requests that were valid), 0..1 */
    double p50_ms, p99_ms;         /* latency of served requests (0 if none) */
    double tiled_a_ms, tiled_b_ms; /* the predictor's current fit */
} sdlk_serve_stats;

/* Statistics over every result so far. O(r log r) for r served (percentiles). */
void sdlk_serve_engine_stats(const sdlk_serve_engine *e, sdlk_serve_stats *st);
/* The live measurements so far as a profile (fit of every observed call, opens and
 * writes; the configured profile's values where nothing was observed). */
void sdlk_serve_engine_profile(const sdlk_serve_engine *e, sdlk_serve_profile *out);

#endif
