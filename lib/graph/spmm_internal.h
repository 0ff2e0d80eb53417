/* spmm_internal.h -- what spmm.c (dispatch, portable kernels) shares with spmm_avx2.c. */
#ifndef SDLK_GRAPH_SPMM_INTERNAL_H
#define SDLK_GRAPH_SPMM_INTERNAL_H

#include <stdint.h>

#include "graph/graph.h"
#include "graph/sgt.h"

/* Width of the feature-column block the condensed kernels accumulate per window row: one
 * 64-float row part is 8 AVX registers. */
#define SDLK_SPMM_BLOCK 64
/* Distinct columns (or nonzeros, CSR) whose X rows are prefetched ahead of use. */
#define SDLK_SPMM_PREFETCH_AHEAD 8

typedef struct sdlk_spmm_job {
    const sdlk_graph *g;
    const sdlk_sgt *sgt;
    const float *values; /* CSR order; NULL = all ones (CSR kernels) */
    const float *tile_values; /* condensed kernels: values in tile order (sgt->tile_nz_value
                                 when `values` are the graph's own), else NULL: then
                                 values[tile_nz_edge[p]] */
    const float *x;
    int64_t dim;
    float *y;             /* SpMM output [N, dim] */
    float *scores;        /* SDDMM output [edges] */
    float **window_buffer; /* condensed SpMM, per worker: the window's accumulators,
                              window_height x SDLK_SPMM_BLOCK floats */
} sdlk_spmm_job;

/* Range functions for sdlk_pool_for (ctx = sdlk_spmm_job): rows for the CSR kernels,
 * windows for the condensed ones. */
void sdlk_spmm_csr_avx2(void *ctx, int64_t begin, int64_t end, int worker);
void sdlk_spmm_condensed_avx2(void *ctx, int64_t begin, int64_t end, int worker);
void sdlk_sddmm_csr_avx2(void *ctx, int64_t begin, int64_t end, int worker);
void sdlk_sddmm_condensed_avx2(void *ctx, int64_t begin, int64_t end, int worker);

#endif
