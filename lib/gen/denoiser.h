/* denoiser.h -- the model seam: describe a denoiser, bind requests, predict tiles.
 *
 * Contract
 *   A denoiser is a diffusion model seen through the smallest interface that lets
 *   sdl-supergen and sdl-serve drive any model tile by tile:
 *
 *   describe  channels per position, the native tile size (t, h, w) the model wants,
 *             what its output means (eps, x0, v or flow velocity), the largest batch
 *             it takes, and its time parameterisation (variance preserving with
 *             alpha_bar, or flow matching with sigma in [0, 1]).
 *   open      bind a request id to what the request conditions on: a reference canvas
 *             (f32, [T, H, W, C], values in [-1, 1]) and/or a prompt string. The built-in
 *             exemplar model builds its patch prior from the reference; an exec worker
 *             receives both. Every predict item names an opened request.
 *   predict   a batch of n items, all of the native tile shape; each item has its own
 *             noise level (step index, timestep, alpha_bar or sigma), canvas offset,
 *             request id and optional conditioning tile. Output has the tile's shape.
 *   close     forget a request.
 *
 *   Data: tiles are contiguous f32 [t, h, w, C] in C order ("latent" values; for the
 *   built-in pixel-space model, RGB scaled to [-1, 1]).
 *
 *   Threading: predict may be called concurrently from several threads (one per tile
 *   worker); backends serialise internally what they must. open/close may run
 *   concurrently with predict on other requests.
 *
 *   Failures: predict either fills every output or returns an error (and the contents
 *   of the outputs are unspecified). A backend that can retry (exec: a worker that
 *   died, stalled or answered with the wrong shape) does so internally on another
 *   worker before failing; nothing is ever returned twice or half-filled.
 *
 *   Backends: lib/gen/exemplar.h (built in, no weights) and lib/gen/exec.h
 *   (out-of-process worker, protocol in sdl-formats(5)). sdlk_denoiser_open_spec()
 *   builds either from a command-line spec ("exemplar", "exemplar:patch=8,...",
 *   "exec:COMMAND").
 */
#ifndef SDLK_GEN_DENOISER_H
#define SDLK_GEN_DENOISER_H

#include <stdint.h>

#include "core/error.h"

typedef enum sdlk_pred_type {
    SDLK_PRED_EPS = 0, /* the noise e */
    SDLK_PRED_X0,      /* the clean sample x0 */
    SDLK_PRED_V,       /* v = sqrt(a) e - sqrt(1 - a) x0 */
    SDLK_PRED_FLOW     /* flow velocity e - x0 (x = (1 - s) x0 + s e) */
} sdlk_pred_type;

typedef enum sdlk_time_kind {
    SDLK_TIME_VP = 0, /* variance preserving: x = sqrt(a) x0 + sqrt(1 - a) e */
    SDLK_TIME_FLOW    /* rectified flow: x = (1 - s) x0 + s e */
} sdlk_time_kind;

typedef struct sdlk_denoiser_desc {
    char name[64];         /* e.g. "exemplar", "exec:python3 worker.py" (truncated) */
    int channels;          /* C */
    int64_t tile[3];       /* native tile (t, h, w) the model is fed; t = 1 for image
                              models */
    int64_t halo[3];       /* context per side (t, h, w): the engines feed windows of
                              `tile` and keep only their centre, tile - 2 * halo (the
                              "core"), as the tile's output; the cores tile the canvas.
                              0 = no context (cores are whole tiles). A model whose
                              output at a position depends only on a bounded
                              neighbourhood gives seamless output when the halo
                              covers it (the exemplar model does). */
    sdlk_pred_type pred;
    sdlk_time_kind time;
    int max_batch;         /* >= 1 */
    int workers;           /* independent devices/processes behind it (>= 1) */
} sdlk_denoiser_desc;

/* What a request conditions on (everything optional except the id). */
typedef struct sdlk_gen_request {
    int64_t id;
    const float *reference;  /* [ref_shape] f32 in [-1, 1], C order, or NULL */
    int64_t ref_shape[4];    /* T, H, W, C */
    const char *prompt;      /* UTF-8 or NULL */
    uint64_t seed;
} sdlk_gen_request;

/* One tile to denoise. */
typedef struct sdlk_denoise_item {
    int64_t request;         /* an opened request id */
    int64_t tile_id;         /* caller's tile number (echoed by exec workers) */
    int32_t step;            /* sampler step index (0 = first step of this run) */
    int32_t timestep;        /* model timestep 0..999 (VP) or round(1000 * sigma) */
    double level;            /* alpha_bar (VP) or sigma (FLOW) of the input */
    int64_t offset[3];       /* canvas position (t, h, w) of the tile's first element */
    const float *x;          /* noisy input, native tile shape */
    const float *cond;       /* conditioning tile of the same shape, or NULL */
    float *out;              /* prediction, native tile shape */
} sdlk_denoise_item;

typedef struct sdlk_denoiser sdlk_denoiser;

typedef struct sdlk_denoiser_ops {
    sdlk_status (*open)(sdlk_denoiser *d, const sdlk_gen_request *req, sdlk_error *err);
    void (*close)(sdlk_denoiser *d, int64_t request);
    sdlk_status (*predict)(sdlk_denoiser *d, const sdlk_denoise_item *items, int n,
                           sdlk_error *err);
    void (*destroy)(sdlk_denoiser *d);
} sdlk_denoiser_ops;

struct sdlk_denoiser {
    const sdlk_denoiser_ops *ops;
    sdlk_denoiser_desc desc;
    void *impl;               /* backend state */
};

/* Thin wrappers over the ops (checks: n <= max_batch, non-NULL buffers). */
sdlk_status sdlk_denoiser_request_open(sdlk_denoiser *d, const sdlk_gen_request *req,
                                       sdlk_error *err);
void sdlk_denoiser_request_close(sdlk_denoiser *d, int64_t request);
sdlk_status sdlk_denoiser_predict(sdlk_denoiser *d, const sdlk_denoise_item *items, int n,
                                  sdlk_error *err);
/* Destroy (NULL is a no-op). */
void sdlk_denoiser_destroy(sdlk_denoiser *d);
/* Elements in one native tile: t * h * w * C. */
int64_t sdlk_denoiser_tile_numel(const sdlk_denoiser_desc *desc);
/* The core of a tile: tile - 2 * halo per axis (what covers the canvas). */
void sdlk_denoiser_core(const sdlk_denoiser_desc *desc, int64_t core[3]);

/* Build a denoiser from a spec: "exemplar[:key=value,...]" (see exemplar.h for keys)
 * or "exec:COMMAND" (the rest of the string is run by /bin/sh -c). `devices` is a
 * comma-separated device list for exec ("0,1" starts two workers with
 * CUDA_VISIBLE_DEVICES set) or NULL for one worker. `tile_hw`, when > 0, overrides
 * the exemplar model's core tile height and width (its window adds the halo).
 * SDLK_ERR_ARG names the bad key. */
sdlk_status sdlk_denoiser_open_spec(const char *spec, const char *devices, int64_t tile_hw,
                                    sdlk_denoiser **out, sdlk_error *err);

const char *sdlk_pred_type_name(sdlk_pred_type p);   /* "eps", "x0", "v", "flow" */
int sdlk_pred_type_parse(const char *s, sdlk_pred_type *out); /* 0 ok, -1 unknown */

#endif
