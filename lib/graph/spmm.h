/* spmm.h -- GNN aggregation on the CPU: SpMM Y = A X and SDDMM edge scores.
 *
 * Contract
 *   X is a dense row-major f32 matrix [N, dim] (row stride = dim), Y likewise; dim is any
 *   value >= 1 (no multiple-of-16 rule, no cap) and N any node count. Y is overwritten
 *   entirely (rows without neighbours become 0). X and Y must not overlap.
 *
 *   Two SpMM kernels compute the same product:
 *     sdlk_spmm_csr        row by row over the CSR arrays, accumulating in registers;
 *     sdlk_spmm_condensed  window by window over SGT's per-window CSC (column_nz_ptr):
 *                          each distinct neighbour row of a window is loaded from X once,
 *                          into registers, and multiplied into every window row that
 *                          uses it; the window's rows accumulate in a per-thread
 *                          H x 64-float block that stays in L1 (the CPU analogue of
 *                          TC-GNN's shared-memory tile). X is read once per distinct
 *                          (window, column) pair instead of once per nonzero -- a saving
 *                          of the graph's column reuse (sdlk_sgt_stats), which is only
 *                          1.1-1.5 on the graphs measured, so on a CPU this kernel runs
 *                          at about the CSR kernel's speed, not faster (README).
 *   Both kernels prefetch the X rows a few nonzeros (columns) ahead of use.
 *   Edge values are always given in CSR order (NULL = the graph's values, or 1), for both
 *   kernels, so the scores of an SDDMM (CSR order, whichever kernel made them) can be
 *   normalised per row and fed straight back as values.
 *   Both are parallel on the pool (rows / windows), and each output row is computed by one
 *   thread, in CSR order and in condensed-column order respectively, so each kernel's
 *   result is bit-identical for any thread count; where the rows' columns are sorted (any
 *   graph from sdlk_graph_from_coo) the two orders coincide and the two AVX2 kernels
 *   agree bit for bit.
 *
 *   Instruction set: SDLK_ISA_AUTO uses the AVX2+FMA kernels when the CPU has them
 *   (checked at run time) and the portable C kernels otherwise; tests force either.
 *   Accuracy: f32 accumulation; agreement with an f64 reference to ~1e-5 relative is
 *   what the tests check (for sums whose terms do not cancel).
 *
 *   Cost: SpMM 2 * nnz * dim flops, O(nnz * dim) time; SDDMM the same.
 *
 *   Device (sdlk_spmm_condensed_on, lib/core/device.h's contract): SDLK_DEVICE_CPU is
 *   sdlk_spmm_condensed; SDLK_DEVICE_GPU runs the TF32 tensor-core kernel of
 *   kernels/spmm.cu (host arrays in and out: the tiles, X and Y are copied to the device
 *   and back on every call), which needs the default 16x8 tiles (SDLK_ERR_UNSUPPORTED
 *   otherwise) and agrees with an f64 reference to about 1e-3 relative (TF32 inputs,
 *   f32 sums), not 1e-5; without CUDA compiled in, or without a usable device, it is
 *   SDLK_ERR_DEVICE. SDLK_DEVICE_AUTO takes the GPU when one is usable and the tiles are
 *   16x8, else the CPU. The functions without a device argument always run on the CPU.
 */
#ifndef SDLK_GRAPH_SPMM_H
#define SDLK_GRAPH_SPMM_H

#include <stdint.h>

#include "core/device.h"
#include "core/error.h"
#include "core/pool.h"
#include "graph/graph.h"
#include "graph/sgt.h"

typedef enum sdlk_isa {
    SDLK_ISA_AUTO = 0, /* best available */
    SDLK_ISA_PORTABLE, /* plain C */
    SDLK_ISA_AVX2      /* AVX2 + FMA; SDLK_ERR_UNSUPPORTED when the CPU lacks them */
} sdlk_isa;

/* 1 when the AVX2+FMA kernels can run on this CPU. */
int sdlk_spmm_have_avx2(void);

/* "auto", "portable" or "avx2" -> *isa; SDLK_ERR_ARG naming the choices otherwise. */
sdlk_status sdlk_isa_parse(const char *name, sdlk_isa *isa, sdlk_error *err);

/* Y = A X over the CSR graph. `values` [edges] overrides the edge values (NULL: the
 * graph's values, or 1 for a pattern graph). */
sdlk_status sdlk_spmm_csr(const sdlk_graph *g, const float *values, const float *x,
                          int64_t dim, float *y, sdlk_isa isa, sdlk_pool *pool,
                          sdlk_error *err);

/* Y = A X over the condensed windows of `sgt`, which must have been built from `g`
 * (sizes are checked, SDLK_ERR_ARG). `values` [edges] in CSR order overrides the edge
 * values (NULL: g's values, or 1) -- e.g. attention weights from an SDDMM. Scratch:
 * min(widest window, 4096) * 64 floats per thread. */
sdlk_status sdlk_spmm_condensed(const sdlk_sgt *sgt, const sdlk_graph *g, const float *values,
                                const float *x, int64_t dim, float *y, sdlk_isa isa,
                                sdlk_pool *pool, sdlk_error *err);

/* The device sdlk_spmm_condensed_on would use for `requested`: CPU or GPU (AUTO: the GPU
 * when one is usable and `sgt` has 16x8 tiles); SDLK_ERR_DEVICE for GPU without one. */
sdlk_status sdlk_spmm_condensed_device(const sdlk_sgt *sgt, sdlk_device requested,
                                       sdlk_device *where, sdlk_error *err);

/* sdlk_spmm_condensed on `device` (see the contract above); `isa` and `pool` serve the
 * CPU only. *used (may be NULL) receives the device that ran: CPU or GPU. */
sdlk_status sdlk_spmm_condensed_on(const sdlk_sgt *sgt, const sdlk_graph *g,
                                   const float *values, const float *x, int64_t dim, float *y,
                                   sdlk_device device, sdlk_isa isa, sdlk_pool *pool,
                                   sdlk_device *used, sdlk_error *err);

/* SDDMM on the CSR pattern: scores[k] = <x_i, x_j> for the k-th nonzero (i, j), CSR
 * order. Parallel over rows. */
sdlk_status sdlk_sddmm_csr(const sdlk_graph *g, const float *x, int64_t dim, float *scores,
                           sdlk_isa isa, sdlk_pool *pool, sdlk_error *err);

/* SDDMM on the condensed tiles: for every tile nonzero (i, j), scores[its CSR position]
 * = <x_i, x_j>, walking each window column by column so each distinct neighbour row is
 * loaded once per window while the window's own rows stay in L1. Output in CSR order,
 * equal bit for bit to sdlk_sddmm_csr with the same ISA. Parallel over windows. */
sdlk_status sdlk_sddmm_condensed(const sdlk_sgt *sgt, const float *x, int64_t dim,
                                 float *scores, sdlk_isa isa, sdlk_pool *pool, sdlk_error *err);

#endif
