/* spmm_cuda.h -- GNN aggregation Y = A X on the GPU: the condensed-tile TF32 tensor-core
 * kernel (TC-GNN's design) and the cuSPARSE CSR SpMM it is measured against.
 *
 * Contract
 *   Only lib/ (the dispatch in lib/graph/spmm.c) and the GPU checks in tests/gpu include
 *   this header, and only in builds with CUDA (SDLK_HAVE_CUDA). Every function returns an
 *   sdlk_status; a CUDA or cuSPARSE failure is an SDLK_ERR_DEVICE naming the call.
 *
 *   A context holds one operator on the device, ready to be applied many times to
 *   features of one width `dim`: the graph (condensed tiles, or CSR for cuSPARSE), X
 *   [N, dim] and Y [N, dim], all device-resident, plus its own stream and timing events.
 *   set_x copies X in, run enqueues the product (and checks the launch), get_y waits and
 *   copies Y out, time measures the product alone with CUDA events. X and Y are
 *   row-major f32 with row stride dim; dim is any value >= 1 and N any node count.
 *
 *   Edge values: `values` [edges] in CSR order as on the CPU side (sdlk_spmm_condensed),
 *   NULL meaning the graph's own values (the SGT's tile values), or 1 for a pattern
 *   graph. The condensed context reorders them into tile order once, at creation.
 *
 *   Condensed kernel: needs the default tile shape (window height 16, tile width 8,
 *   the m16n8k8 MMA shape); other shapes are SDLK_ERR_UNSUPPORTED. One warp per (work
 *   item, feature slab of up to 64 columns): a work item is a window or, for a window
 *   of more tiles than a run (4 to 32 tiles, fewer for smaller graphs), one run of its
 *   tiles, whose partial sums are added into Y atomically. Per tile the warp builds
 *   the dense 16x8 A tile in shared memory from the tile's own nonzero list, gathers the
 *   8 X rows of the tile's column map for its feature slab straight into MMA B
 *   fragments, and accumulates with mma.sync m16n8k8 TF32 (two tiles at a time). Inputs
 *   are rounded to TF32 (10-bit mantissa, round to nearest) and accumulated in f32: the
 *   result differs from an exact product by about 1e-3 relative at most (2^-10 per term,
 *   for terms of one sign), and from run to run in the last bits where hub windows are
 *   split across warps (atomic adds in any order).
 *
 *   cuSPARSE context: cusparseSpMM on the CSR (CUSPARSE_SPMM_CSR_ALG2, row-major dense
 *   matrices, f32 compute; its work buffer is sized and allocated at creation). cuSPARSE
 *   is loaded at run time (kernels/cudalibs.h); without it creation fails with
 *   SDLK_ERR_DEVICE naming the library.
 *
 *   Memory on the device: condensed O(nnz * 5 bytes + tiles * 8 + distinct * 4 + N dim * 8);
 *   CSR O(nnz * 8 + N * 8 + N dim * 8) plus cuSPARSE's buffer.
 */
#ifndef SDLK_KERNELS_SPMM_CUDA_H
#define SDLK_KERNELS_SPMM_CUDA_H

#include <stdint.h>

#include "core/error.h"
#include "graph/graph.h"
#include "graph/sgt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sdlk_cuda_spmm sdlk_cuda_spmm;

/* The condensed TF32 kernel over `sgt` (built from a graph of sgt->edges nonzeros). */
sdlk_status sdlk_cuda_spmm_create_condensed(const sdlk_sgt *sgt, const float *values,
                                            int64_t dim, sdlk_cuda_spmm **out,
                                            sdlk_error *err);

/* The same with the slab width fixed: n_tiles MMA n-tiles (8 n_tiles features) per warp,
 * 1, 2, 4 or 8 (else SDLK_ERR_ARG), 0 for the kernel's own choice. For tuning
 * measurements (tests/gpu/gpu_spmm.c --sweep); the product is the same. */
sdlk_status sdlk_cuda_spmm_create_condensed_slab(const sdlk_sgt *sgt, const float *values,
                                                 int64_t dim, int n_tiles, sdlk_cuda_spmm **out,
                                                 sdlk_error *err);

/* cuSPARSE SpMM (CSR, ALG2) over `g`. */
sdlk_status sdlk_cuda_spmm_create_cusparse(const sdlk_graph *g, const float *values,
                                           int64_t dim, sdlk_cuda_spmm **out,
                                           sdlk_error *err);

/* X [N, dim] host -> device (synchronous). */
sdlk_status sdlk_cuda_spmm_set_x(sdlk_cuda_spmm *ctx, const float *x, sdlk_error *err);
/* Fill the device Y with 0xff bytes (NaN), so that an element the product leaves
 * unwritten cannot pass a check. */
sdlk_status sdlk_cuda_spmm_poison_y(sdlk_cuda_spmm *ctx, sdlk_error *err);
/* Enqueue Y = A X on the context's stream; returns after the launch was checked. */
sdlk_status sdlk_cuda_spmm_run(sdlk_cuda_spmm *ctx, sdlk_error *err);
/* Wait for the stream, then Y [N, dim] device -> host. */
sdlk_status sdlk_cuda_spmm_get_y(sdlk_cuda_spmm *ctx, float *y, sdlk_error *err);
/* `warmup` untimed runs, then `reps` (1..1000) runs each timed alone with CUDA events
 * on device-resident data; *median_ms = their median. */
sdlk_status sdlk_cuda_spmm_time(sdlk_cuda_spmm *ctx, int warmup, int reps, double *median_ms,
                                sdlk_error *err);
/* Free everything on the device; NULL is ignored. */
void sdlk_cuda_spmm_destroy(sdlk_cuda_spmm *ctx);

/* One call, host in and out: create the condensed context, copy X in, run, copy Y out,
 * destroy. What lib/graph/spmm.c calls for SDLK_DEVICE_GPU. */
sdlk_status sdlk_cuda_spmm_condensed(const sdlk_sgt *sgt, const float *values, const float *x,
                                     int64_t dim, float *y, sdlk_error *err);

#ifdef __cplusplus
}
#endif

#endif
