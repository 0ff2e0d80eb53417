/* exemplar_cuda.h -- the exemplar denoiser's posterior mean on the GPU (cuBLAS + three
 * small kernels), behind lib/gen/exemplar.c's device=gpu.
 *
 * Contract
 *   Only lib/gen/exemplar.c includes this header, and only in builds with CUDA
 *   (SDLK_HAVE_CUDA). Every function returns an sdlk_status; a CUDA or cuBLAS failure is
 *   an SDLK_ERR_DEVICE naming the call (cuBLAS is loaded at run time, kernels/cudalibs.h:
 *   without it creation fails naming the library).
 *
 *   Two kinds of object:
 *   context  one per model: the cuBLAS handle, a stream, timing events, the patch
 *            geometry and the tent weights of one patch (computed by the caller with the
 *            CPU path's own code, so both paths blend with the same floats), and scratch
 *            buffers on the device and in pinned host memory that grow to the largest
 *            batch seen. A context is NOT thread-safe: the caller serialises predicts on
 *            one context (exemplar.c holds a mutex around each call).
 *   prior    one per opened request: the exemplar patches P [n, D], their half squared
 *            norms [n] and the mean exemplar [D], uploaded once when the request is
 *            opened and freed when it is closed. A prior is read-only for predicts and
 *            may be used by any context on the same device.
 *
 *   predict  one call per batch of tiles (all the items of one denoiser predict call; the
 *            tiles may name different priors). Host pointers in and out. Per call:
 *            host -> device: the input windows (through pinned staging, one copy), one
 *            descriptor per tile and the patch corners of its three axes, one int per
 *            patch (its tile); device -> host: the output windows (one copy). Nothing
 *            else crosses the bus: the patches Y are gathered on the device, the patch
 *            estimates E stay there and are blended there.
 *            On the device, per run of tiles sharing a prior, in chunks of at most
 *            CHUNK_ELEMENTS distance values (exemplar_cuda.cu) so that a whole-canvas
 *            tile cannot ask for a rows x n matrix of gigabytes:
 *              gather   Y[r, :] = the r-th patch of its tile (run order as the CPU's)
 *              sgemm    G = Y P^T                  (cuBLAS, f32, default math: no TF32)
 *              softmax  W[r, j] = exp(l_j - max l) / sum, l_j = (sqrt(a) G_rj - a |P_j|^2/2)
 *                       / (1 - a), every step in double with the CPU's rounding (no FMA
 *                       contraction), sum by a tree instead of the CPU's loop
 *              sgemm    E = W P                    (cuBLAS, f32)
 *            then for every window element the tent-weighted average of the estimates
 *            of the patches covering it, added in increasing patch order with explicit
 *            f32 round-to-nearest operations -- the CPU scatter's order, so equal
 *            estimates give bit-equal output (tiles at pure noise use the prior mean as
 *            every estimate, as the CPU does, and so match it bit for bit).
 *            Differences against the CPU path therefore come from the two f32 GEMMs
 *            (OpenBLAS and cuBLAS sum in different orders) and, far smaller, from the
 *            softmax's sum order and CUDA's double exp; see exemplar.h for the
 *            tolerance. The GEMMs see all the patch rows of a group at once, so a
 *            tile's bits can depend on the other tiles of its call (cuBLAS chooses
 *            its kernels by size); the same batch gives the same bits every run.
 *
 *   Limits: D, n, rows per chunk and every leading dimension must fit an int (cuBLAS);
 *   create and prior upload check them (SDLK_ERR_UNSUPPORTED).
 */
#ifndef SDLK_KERNELS_EXEMPLAR_CUDA_H
#define SDLK_KERNELS_EXEMPLAR_CUDA_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sdlk_cuda_exemplar sdlk_cuda_exemplar;
typedef struct sdlk_cuda_exemplar_prior sdlk_cuda_exemplar_prior;

/* The window the model computes on and the patch geometry. */
typedef struct sdlk_cuda_exemplar_geom {
    int64_t window[3];     /* t, h, w of the native tile (core + 2 halo) */
    int channels;          /* C */
    int patch, patch_t;    /* p, pt: D = pt * p * p * C */
    const float *weight;   /* [D] tent weight of each patch element (host, copied) */
} sdlk_cuda_exemplar_geom;

/* One tile of a batch. pos[a][0 .. count[a] - 1] are the patch corners along axis a
 * (ascending, each corner + patch extent <= window[a]); the tile's patches are all
 * (t, y, x) corner combinations, numbered with x fastest, exactly as the CPU path. */
typedef struct sdlk_cuda_exemplar_tile {
    const sdlk_cuda_exemplar_prior *prior;
    const float *x;        /* host input window [t, h, w, C] */
    float *out;            /* host output window, same shape */
    double a;              /* level, already clamped to <= 1 - 1e-6 */
    double sqrt_a;         /* sqrt(a) and 1 / (1 - a), as the CPU computes them */
    double inv_one_minus_a;
    int pure_noise;        /* a below the CPU's threshold: every estimate is the mean */
    int64_t count[3];
    const int64_t *pos[3];
} sdlk_cuda_exemplar_tile;

sdlk_status sdlk_cuda_exemplar_create(const sdlk_cuda_exemplar_geom *geom,
                                      sdlk_cuda_exemplar **out, sdlk_error *err);
/* NULL is ignored. */
void sdlk_cuda_exemplar_destroy(sdlk_cuda_exemplar *ctx);

/* Upload a prior: patches [n, dim], half_norm [n], mean [dim] (host). */
sdlk_status sdlk_cuda_exemplar_prior_upload(const float *patches, const float *half_norm,
                                            const float *mean, int64_t n, int64_t dim,
                                            sdlk_cuda_exemplar_prior **out, sdlk_error *err);
/* NULL is ignored. */
void sdlk_cuda_exemplar_prior_free(sdlk_cuda_exemplar_prior *prior);

/* Denoise `count` tiles (see the contract). Every prior must have the context's D. On
 * success every out window is written; on failure their contents are unspecified. */
sdlk_status sdlk_cuda_exemplar_predict(sdlk_cuda_exemplar *ctx,
                                       const sdlk_cuda_exemplar_tile *tiles, int count,
                                       sdlk_error *err);

/* Milliseconds the device spent between the end of the input copies and the start of
 * the output copy (gather, GEMMs, softmax, blend), summed over every predict so far. */
double sdlk_cuda_exemplar_device_ms(const sdlk_cuda_exemplar *ctx);

#ifdef __cplusplus
}
#endif

#endif
