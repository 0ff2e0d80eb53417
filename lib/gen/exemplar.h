/* exemplar.h -- the built-in denoiser: the exact posterior mean of a patch prior.
 *
 * Contract
 *   The prior of a request is a set of N exemplar patches P_j (pt x p x p x C values,
 *   D = pt * p * p * C) cut from its reference canvas at several scales (1, 1/2, ...:
 *   natural images repeat their patches across scales, the idea behind single-image
 *   super-resolution). All patch positions at stride `exemplar_stride` are collected
 *   at every scale; when there are more than `max_exemplars`, a seeded uniform
 *   subsample (without replacement) is kept, so the cost per tile is bounded and the
 *   model is deterministic for a seed.
 *
 *   For a noisy tile x at level a (alpha_bar), every patch y of the tile at stride
 *   `stride` (plus the last position of each axis, so the tile is covered) gets the
 *   ideal denoiser of the prior:
 *       E[x0 | y] = sum_j w_j P_j,  w_j ~ exp(-|y - sqrt(a) P_j|^2 / (2 (1 - a)))
 *   (normalised; computed in double-safe log-sum-exp form), and the overlapping
 *   estimates are averaged per position with tent weights (element i of a patch of
 *   length p weighs (min(i, p - 1 - i) + 1/2) / (p / 2) per axis: a partition of unity
 *   at stride p / 2, so the blend shows no grid at the patch stride). The output is an x0 prediction. Distances
 *   are one matrix product Y P^T per tile (OpenBLAS sgemm); the weighted sum is a
 *   second (W P). Cost per tile: O(M * N * D) with M patches per tile.
 *   At a = 1 (clean) the weights are not defined; levels are clamped to
 *   a <= 1 - 1e-6. Levels below 1e-6 (pure noise) give the mean exemplar.
 *
 *   Halo: the model is fed windows of tile + 2 * halo whose patches sit on a grid of
 *   `stride` relative to the window; cores (multiples of stride apart) therefore share
 *   one canvas-aligned patch grid, and with halo >= patch - stride each core position
 *   is averaged over exactly the patches an untiled computation would use. The output
 *   is the full window (the engines keep its core). sdlk_exemplar_create checks that
 *   (window - patch) and the core size are multiples of the stride when halo > 0.
 *
 *   Moving lattice (lattice=moving): the patch grid of step s sits at canvas positions
 *   phase + k * stride, with phase (s mod stride) in rows and ((s + s / stride) mod
 *   stride) in columns (all stride^2 phases within stride^2 steps), so the grid is
 *   placed by the item's canvas offset, not by the window. A fixed grid imprints a faint
 *   lattice at the stride (the blend of disagreeing estimates is position-dependent);
 *   moving it every step spreads that over all phases, and the tile borders of a
 *   shifted torus grid stop coinciding with it. Tiling stays exact: the auto halo is
 *   patch - 1 (every patch covering a core position at any phase lies in the window),
 *   the window's own edges get no extra patches (the few halo elements no grid patch
 *   covers are output as 0; engines keep only the core), and a window without a halo
 *   is a whole canvas, whose edges get the extra patches as usual. The multiple-of-
 *   stride rules above do not apply. Offsets wrap with the canvas, so on a canvas that
 *   is not a multiple of the stride the grid breaks once at the wrap.
 *
 *   Flow-matching inputs are not supported (the model declares VP time); the sampler
 *   always drives it with alpha_bar.
 *
 *   Devices (device=cpu|gpu|auto, default cpu): with device=gpu the same computation
 *   runs on a CUDA GPU (kernels/exemplar_cuda.h): each request's exemplars, their half
 *   norms and the mean exemplar are uploaded once when it is opened (freed when it is
 *   closed); a predict call sends its input windows and gets its output windows back,
 *   and everything between -- patch gather, Y P^T (cuBLAS sgemm, f32, no TF32), the
 *   row softmax (in double, the max subtracted, operation for operation as on the CPU),
 *   W P (cuBLAS) and the tent-weighted blend (a gather in the CPU's order) -- runs on
 *   the device, one batch per call, tiles of several requests grouped by prior. auto
 *   picks the GPU when sdl was built with CUDA and a device is present (core/device.h),
 *   else the CPU. device=gpu where there is none (not built with CUDA, no device,
 *   driver error) or where cuBLAS cannot be loaded is an SDLK_ERR_DEVICE from
 *   sdlk_exemplar_create naming why; auto that finds a device but not cuBLAS fails the
 *   same way (no silent fallback). The CPU path is unchanged by the option.
 *   Tolerance: for a window at level a (clamped as above), max |GPU - CPU| <=
 *   1e-4 * max(1, a / (5 (1 - a))) on [-1, 1] data: 1e-4 up to a = 5/6, 1.8e-4 at 0.9,
 *   2e-3 at 0.99. Both paths compute G = Y P^T in f32 with different summation orders
 *   (a few ulps of |G|, which reaches ~100 at D = 192) and the logits scale G by
 *   sqrt(a) / (1 - a), so the weights -- and the outputs -- differ by that much more at
 *   high levels; two OpenBLAS kernels (Zen and Prescott) on chelsea.png differ by
 *   6.5e-6 at 0.5, 5.1e-5 at 0.9, 2.2e-4 at 0.99 (fixed and moving lattice, 1024 and
 *   4096 exemplars), under a third of the tolerance. Pure-noise windows (a < 1e-6)
 *   share every float operation and come out bit-exact. The GPU output is the same
 *   from run to run for the same batches; a tile's last bits may depend on the other
 *   tiles of its predict call (cuBLAS picks its GEMM kernels by matrix size), within
 *   the same tolerance.
 *
 *   Threading: the prior of an opened request is immutable; predict uses per-call
 *   scratch, so concurrent predicts are safe (on the GPU they take turns: one context,
 *   one mutex). OpenBLAS threads are the caller's business (tools call
 *   openblas_set_num_threads(1) when they run tile workers).
 */
#ifndef SDLK_GEN_EXEMPLAR_H
#define SDLK_GEN_EXEMPLAR_H

#include <stdint.h>

#include "core/device.h"
#include "core/error.h"
#include "gen/denoiser.h"

typedef struct sdlk_exemplar_opts {
    int patch;            /* p: spatial patch side (default 8) */
    int patch_t;          /* pt: frames per patch (default 1; <= tile t) */
    int stride;           /* patch stride inside a tile (0 = default p / 2) */
    int exemplar_stride;  /* stride when collecting exemplars (default 2) */
    int scales;           /* scales 1, 1/2, 1/4, ... (default 2) */
    int max_exemplars;    /* N cap (default 1024) */
    int64_t tile[3];      /* core tile on the canvas (default 1, 64, 64) */
    int64_t halo[3];      /* context per side; -1 = auto (default): 0 in time and
                             patch - stride in space, the least for which every patch
                             covering a core position lies in the window, so that tiled
                             output equals untiled output (no seams). The native tile
                             (the window the model is fed) is tile + 2 * halo. */
    int channels;         /* C (default 3) */
    int max_batch;        /* default 16 */
    int threads;          /* threads for the patch blocks of one big tile (default 1:
                             tile workers are the usual parallelism; an untiled
                             whole-canvas call uses this to get the same cores) */
    uint64_t seed;        /* exemplar subsampling seed (default 1) */
    int moving_lattice;   /* "lattice=moving": the patch grid's phase is anchored to the
                             canvas and changes with the step (see the contract);
                             0 = "lattice=fixed" (default): the grid follows the window */
    sdlk_device device;   /* "device=cpu" (default), "gpu" or "auto": see Devices above */
} sdlk_exemplar_opts;

void sdlk_exemplar_opts_init(sdlk_exemplar_opts *o);
/* Parse "key=value,key=value" (keys: patch, patch_t, stride, exemplar_stride, scales,
 * max_exemplars, tile (N or TxHxW: the core), halo (N: spatial, or TxHxW), channels,
 * batch, threads, seed, lattice (fixed or moving), device (cpu, gpu or auto)) into o.
 * SDLK_ERR_ARG names the bad key or value. An empty or NULL string changes nothing. */
sdlk_status sdlk_exemplar_opts_parse(sdlk_exemplar_opts *o, const char *spec, sdlk_error *err);

/* Create the backend. Checks: patch >= 1, patch <= tile h and w, patch_t <= tile t,
 * 1 <= stride <= patch, scales >= 1, max_exemplars >= 1 (SDLK_ERR_ARG); the device
 * (SDLK_ERR_DEVICE naming why there is no GPU, or the CUDA/cuBLAS failure). A request's
 * reference must have C channels and be at least one patch in every axis
 * (SDLK_ERR_ARG from open, naming the sizes). */
sdlk_status sdlk_exemplar_create(const sdlk_exemplar_opts *o, sdlk_denoiser **out,
                                 sdlk_error *err);

/* Number of exemplars the prior of an opened request holds (-1 if not open). */
int64_t sdlk_exemplar_count(sdlk_denoiser *d, int64_t request);

/* Where an exemplar model predicts: SDLK_DEVICE_CPU or SDLK_DEVICE_GPU (AUTO resolved at
 * creation); SDLK_DEVICE_AUTO for a denoiser that is not an exemplar model. */
sdlk_device sdlk_exemplar_device(sdlk_denoiser *d);

/* A GPU model's device time so far in milliseconds (the kernels and GEMMs of every
 * predict, without the host<->device copies); -1 for a CPU model or another denoiser. */
double sdlk_exemplar_device_ms(sdlk_denoiser *d);

#endif
