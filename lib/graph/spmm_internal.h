/* spmm_internal.h -- what spmm.c (dispatch, portable kernels) shares with spmm_avx2.c. */
#ifndef SDLK_GRAPH_SPMM_INTERNAL_H
#define SDLK_GRAPH_SPMM_INTERNAL_H

#include <stdint.h>

#include "graph/graph.h"
#include "graph/sgt.h"

/* Width of the feature-column block the condensed kernels gather per neighbour row. */
#define SDLK_SPMM_BLOCK 64
/* Windows with more distinct columns than this are not packed (hub windows): their
 * packed block would exceed 1 MiB and fall out of L2 anyway. */
#define SDLK_SPMM_MAX_PACKED 4096

typedef struct sdlk_spmm_job {
    const sdlk_graph *g;
    const sdlk_sgt *sgt;
    const float *values; /* CSR or tile order depending on the kernel; NULL = all ones */
    const float *x;
    int64_t dim;
    float *y;             /* SpMM output [N, dim] */
    float *scores;        /* SDDMM output [edges] */
    float **window_buffer; /* per worker: packed_columns * SDLK_SPMM_BLOCK floats */
    int64_t packed_columns; /* windows with more distinct columns are not packed */
} sdlk_spmm_job;

/* Range functions for sdlk_pool_for (ctx = sdlk_spmm_job): rows for the CSR kernels,
 * windows for the condensed ones. */
void sdlk_spmm_csr_avx2(void *ctx, int64_t begin, int64_t end, int worker);
void sdlk_spmm_condensed_avx2(void *ctx, int64_t begin, int64_t end, int worker);
void sdlk_sddmm_csr_avx2(void *ctx, int64_t begin, int64_t end, int worker);
void sdlk_sddmm_condensed_avx2(void *ctx, int64_t begin, int64_t end, int worker);

#endif
