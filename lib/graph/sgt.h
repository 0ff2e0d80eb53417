/* sgt.h -- Sparse Graph Translation (TC-GNN): condensed row-window tiles of a CSR graph.
 *
 * Contract
 *   The rows of an N-node graph are cut into windows of `window_height` rows (H, default
 *   16; the last window may be shorter -- nothing here indexes past row N-1). In each
 *   window the distinct neighbour columns are collected, sorted and renumbered 0..U-1
 *   ("condensed columns"); the window's nonzeros then fit in ceil(U / W) tiles of H x W
 *   (W = `tile_width`, default 8) instead of one tile per W original columns.
 *
 *   Layout (all arrays owned by the sdlk_sgt; "distinct" = window_col_ptr[window_count]):
 *     window_col_ptr[window_count + 1]  window w's condensed columns are window_cols[
 *     window_cols[distinct]               window_col_ptr[w] .. window_col_ptr[w+1]), sorted
 *                                         ascending, distinct: condensed column u of window
 *                                         w is original column window_cols[window_col_ptr[w]+u]
 *     window_tile_ptr[window_count + 1] tiles of window w: [window_tile_ptr[w], ..[w+1]);
 *                                         tile t (local) covers condensed columns
 *                                         [t*W, min(U, (t+1)*W)) -- its column map is that
 *                                         slice of window_cols (sdlk_sgt_tile_columns)
 *     tile_nz_ptr[tile_count + 1]       nonzeros of global tile i: [tile_nz_ptr[i], [i+1])
 *     column_nz_ptr[distinct + 1]       nonzeros of each condensed column (aligned with
 *                                         window_cols): the per-window CSC the CPU kernel
 *                                         uses to load each neighbour row once
 *     tile_nz_row[edges]  (u8)          row inside the window, 0..H-1
 *     tile_nz_col[edges]  (u8)          column inside the tile, 0..W-1
 *     tile_nz_value[edges] (f32)        the edge value (1 for a pattern graph)
 *     tile_nz_edge[edges] (i64)         position of the nonzero in the CSR arrays
 *     edge_condensed_col[edges] (i32)   CSR order: condensed column of each nonzero
 *   The nonzeros of window w occupy positions [row_ptr[w*H], row_ptr[min(N,(w+1)*H)]) of
 *   the tile_nz_* arrays, ordered by condensed column, then row, then CSR position; so
 *   each tile's nonzeros are contiguous and every kernel reads only its own tile's list.
 *   Every CSR nonzero appears exactly once. H and W are at most 256 (u8 positions).
 *
 *   Cost: O(nnz + windows * levels) time with a per-thread hierarchical bitset (no
 *   comparison sort: the bitset yields the distinct columns already sorted), parallel
 *   over windows on the pool; O(nnz + N) memory for the result, O(N / 8) scratch per
 *   thread. The result does not depend on the thread count.
 */
#ifndef SDLK_GRAPH_SGT_H
#define SDLK_GRAPH_SGT_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "graph/graph.h"

#define SDLK_SGT_DEFAULT_WINDOW_HEIGHT 16
#define SDLK_SGT_DEFAULT_TILE_WIDTH 8

typedef struct sdlk_sgt {
    int64_t nodes, edges;
    int window_height, tile_width;
    int64_t window_count, tile_count, distinct;
    int64_t *window_col_ptr, *window_tile_ptr, *tile_nz_ptr, *column_nz_ptr;
    int32_t *window_cols;
    uint8_t *tile_nz_row, *tile_nz_col;
    float *tile_nz_value;
    int64_t *tile_nz_edge;
    int32_t *edge_condensed_col;
    int64_t naive_tile_count; /* distinct (window, column / W) blocks: tiles without SGT */
} sdlk_sgt;

void sdlk_sgt_init(sdlk_sgt *sgt);
void sdlk_sgt_free(sdlk_sgt *sgt);

/* Translate `g`. window_height / tile_width of 0 mean the defaults (16, 8); each must be
 * 1..256 (SDLK_ERR_ARG). `pool` may be NULL. */
sdlk_status sdlk_sgt_build(const sdlk_graph *g, int window_height, int tile_width,
                           sdlk_pool *pool, sdlk_sgt *out, sdlk_error *err);

/* Original columns of tile `local_tile` of window `window`: returns a pointer into
 * window_cols and sets *count (1..W). O(1). */
const int32_t *sdlk_sgt_tile_columns(const sdlk_sgt *sgt, int64_t window, int64_t local_tile,
                                     int *count);

/* Check every array of `sgt` against each other and against `g` (the graph it claims
 * to condense): sizes, monotone pointers, sorted distinct in-range window columns, tile
 * counts ceil(U/W), every nonzero in range and at the right place, each CSR nonzero
 * exactly once, values equal. For condensed files read back from disk. SDLK_ERR_FORMAT
 * naming `name` and the first disagreement. O(nnz + N). */
sdlk_status sdlk_sgt_validate(const sdlk_sgt *sgt, const sdlk_graph *g, const char *name,
                              sdlk_error *err);

/* The columns of TC-GNN's tile-reduction table. Useful computation = edges / (tiles *
 * H * W): the share of the multiply-adds of dense H x W tiles that touch a nonzero. */
typedef struct sdlk_sgt_stats {
    int64_t nodes, edges;
    double dense_gb;              /* nodes^2 * 4 bytes (f32 dense adjacency) / 1e9 */
    int64_t naive_tiles, sgt_tiles;
    double naive_useful, sgt_useful; /* fractions in [0, 1] */
    double tile_reduction;        /* 1 - sgt_tiles / naive_tiles */
    double column_reuse;          /* edges / distinct (window, column) pairs: rows served
                                     per neighbour-row load in the condensed kernel */
} sdlk_sgt_stats;

/* O(1). */
void sdlk_sgt_stats_compute(const sdlk_sgt *sgt, sdlk_sgt_stats *out);

#endif
