/* profile.h -- the latency profile of a backend: what the simulated clock charges and
 * what the live predictor starts from.
 *
 * Contract
 *   A profile holds straight-line fits measured on the live backend:
 *     tiled    one model call on n native tiles: a + b n (ms)
 *     canvas   one untiled call (whole canvases, the request-level baselines) whose work
 *              is w tile equivalents (canvas pixels / tile pixels, summed over the
 *              call's canvases): a + b w
 *     open     per request: reading the reference and building the model's prior (ms)
 *     finish   per request: writing its PNG: a + b * megapixels
 *   plus the native tile and the batch size it was measured with, the model's name and
 *   the raw samples (kept for the record; at most SDLK_SERVE_PROFILE_SAMPLES).
 *   File format (JSON, one object; written atomically):
 *     {"version": 1, "model": "...", "tile": [t, h, w], "max_batch": B,
 *      "tiled": {"a_ms": x, "b_ms": x}, "canvas": {"a_ms": x, "b_ms": x},
 *      "open_ms": x, "finish": {"a_ms": x, "b_ms_per_mpx": x},
 *      "samples": [{"kind": "tiled"|"canvas", "work": n, "ms": x}, ...]}
 *   Reading validates every member (numbers finite and >= 0, tile sizes >= 1,
 *   max_batch >= 1) and names the file and member at fault.
 */
#ifndef SDLK_SERVE_PROFILE_H
#define SDLK_SERVE_PROFILE_H

#include <stdint.h>

#include "core/error.h"

#define SDLK_SERVE_PROFILE_SAMPLES 256
#define SDLK_SERVE_PROFILE_MAX_TILE 16384

typedef struct sdlk_serve_sample {
    int canvas;  /* 0 tiled call, 1 untiled call */
    double work; /* tiles or tile equivalents */
    double ms;
} sdlk_serve_sample;

typedef struct sdlk_serve_profile {
    char model[128];
    int64_t tile[3];
    int max_batch;
    double tiled_a_ms, tiled_b_ms;
    double canvas_a_ms, canvas_b_ms;
    double open_ms;
    double finish_a_ms, finish_b_ms_per_mpx;
    int n_samples;
    sdlk_serve_sample samples[SDLK_SERVE_PROFILE_SAMPLES];
} sdlk_serve_profile;

/* A zeroed profile for a tile and batch (costs all 0). */
void sdlk_serve_profile_init(sdlk_serve_profile *p, const int64_t tile[3], int max_batch);
/* Append a sample (ignored when full). */
void sdlk_serve_profile_add_sample(sdlk_serve_profile *p, int canvas, double work, double ms);
/* Fit tiled and canvas lines to the samples (ordinary least squares; a kind with
 * samples at a single work value keeps slope = mean ms / work and intercept 0). Fits
 * with a negative intercept are refitted through the origin (a call cannot take less
 * than nothing). */
void sdlk_serve_profile_fit(sdlk_serve_profile *p);

sdlk_status sdlk_serve_profile_read(const char *path, sdlk_serve_profile *p, sdlk_error *err);
sdlk_status sdlk_serve_profile_write(const char *path, const sdlk_serve_profile *p,
                                     sdlk_error *err);

/* Milliseconds of one tiled call on n tiles / one untiled call on w tile equivalents /
 * writing an image of h x w pixels. */
double sdlk_serve_profile_tiled_ms(const sdlk_serve_profile *p, double n);
/* The spread of the tiled calls around their line: the RMS over the tiled samples of
 * ms / tiled_ms(work) - 1 (0 without samples). */
double sdlk_serve_profile_tiled_spread(const sdlk_serve_profile *p);
double sdlk_serve_profile_canvas_ms(const sdlk_serve_profile *p, double w);
double sdlk_serve_profile_finish_ms(const sdlk_serve_profile *p, int64_t h, int64_t w);

/* Standalone latency of a request alone on an idle server with the tiled model:
 * open + steps x (its tiles in calls of at most `batch`) + finish. */
double sdlk_serve_profile_standalone_ms(const sdlk_serve_profile *p, int64_t tiles, int steps,
                                        int batch, int64_t h, int64_t w);

#endif
