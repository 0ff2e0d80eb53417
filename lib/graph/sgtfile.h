/* sgtfile.h -- the condensed graph file: a CSR graph and its Sparse Graph Translation in
 * one safetensors file (written by sdl-gnn-condense, read by sdl-spmm and sdl-gnn).
 *
 * Contract
 *   Layout (documented for users in sdl-formats(5), CONDENSED GRAPHS): a safetensors
 *   file whose __metadata__ holds
 *     "sdl.format"            "sgt-condensed-graph"
 *     "sdl.sgt.version"       "1"
 *     "sdl.sgt.nodes", "sdl.sgt.edges", "sdl.sgt.window_height", "sdl.sgt.tile_width",
 *     "sdl.sgt.windows", "sdl.sgt.tiles", "sdl.sgt.distinct", "sdl.sgt.naive_tiles"
 *                             decimal integers (N, E, H, W and the counts)
 *     "sdl.sgt.permutation"   "none", or the reordering applied ("degree", "rcm"): the tensor
 *                             "perm" then holds perm[new] = old node
 *     "sdl.sgt.values"        "pattern" (no "values" tensor: every edge is 1) or "f32"
 *     "sdl.sgt.prepared"      how the edges were prepared, e.g. "symmetrize,dedup,gcn-norm"
 *                             ("" for none); sdl-gnn's GCN requires "gcn-norm"
 *     "sdl.sgt.source"        the input graph's file name (informational)
 *   and one 1-d tensor per array of sdlk_graph / sdlk_sgt (see sgt.h for their meaning):
 *     row_ptr i64 [N+1], col_idx i32 [E], values f32 [E] (unless pattern),
 *     window_col_ptr i64 [windows+1], window_cols i32 [distinct],
 *     window_tile_ptr i64 [windows+1], tile_nz_ptr i64 [tiles+1],
 *     column_nz_ptr i64 [distinct+1], tile_nz_row u8 [E], tile_nz_col u8 [E],
 *     tile_nz_value f32 [E], tile_nz_edge i64 [E], edge_condensed_col i32 [E],
 *     perm i64 [N] (only when reordered), node_ids i64 [N] (only for SNAP inputs: the
 *     original id of each node).
 *   Reading checks the metadata, every tensor's dtype and length against it, the CSR
 *   (sdlk_graph_from_csr), the SGT arrays against the CSR (sdlk_sgt_validate), the naive
 *   tile count (recomputed) and that perm is a permutation; any disagreement is an
 *   SDLK_ERR_FORMAT naming the file and the array. The arrays are copied out of the
 *   mapped file, so the result does not depend on the file staying open.
 *   Cost: O(nnz + N) time and memory for either direction.
 */
#ifndef SDLK_GRAPH_SGTFILE_H
#define SDLK_GRAPH_SGTFILE_H

#include <stdio.h>

#include "core/error.h"
#include "graph/graph.h"
#include "graph/sgt.h"

#define SDLK_SGT_FILE_FORMAT "sgt-condensed-graph"

/* What the file says about how its graph was made (informational strings). */
typedef struct sdlk_sgt_file_info {
    char permutation[32]; /* "none" or the reordering's name */
    char prepared[128];   /* comma-separated: symmetrize, self-loops, dedup, gcn-norm */
    char source[256];     /* input file name */
} sdlk_sgt_file_info;

/* Write `g` and its translation `sgt` (built from g) as one safetensors file to fp.
 * `info` may be NULL (permutation "degree" is recorded when g->perm is set, "none"
 * otherwise). SDLK_ERR_ARG when sgt does not match g's sizes. */
sdlk_status sdlk_sgt_file_write(FILE *fp, const sdlk_graph *g, const sdlk_sgt *sgt,
                                const sdlk_sgt_file_info *info, const char *name,
                                sdlk_error *err);

/* Read a condensed graph file ("-" = stdin) into g and sgt (both initialised here;
 * freed again on failure). `info` may be NULL. */
sdlk_status sdlk_sgt_file_read(const char *path, sdlk_graph *g, sdlk_sgt *sgt,
                               sdlk_sgt_file_info *info, sdlk_error *err);

/* 1 when `path` looks like a condensed graph file: a safetensors file (by extension
 * .safetensors/.st, or its first bytes for other names) -- the graph readers take
 * everything else. Reads at most 16 bytes. */
int sdlk_sgt_file_probe(const char *path);

/* What a tool was given as GRAPH: a condensed graph file (sdlk_sgt_file_probe; g and
 * sgt filled, *condensed = 1, `opts` must be NULL or all zero: the file's edges are
 * final) or a graph file of any format sdlk_graph_read takes, read with `opts`
 * (*condensed = 0, sgt left empty). `info` (may be NULL) is filled for condensed files
 * and cleared otherwise. */
sdlk_status sdlk_graph_load_any(const char *path, const sdlk_graph_options *opts,
                                sdlk_graph *g, sdlk_sgt *sgt, int *condensed,
                                sdlk_sgt_file_info *info, sdlk_error *err);

#endif
