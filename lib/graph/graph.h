/* graph.h -- sparse graphs: COO edge lists, CSR adjacency, readers, R-MAT generator.
 *
 * Contract
 *   An sdlk_graph is a square adjacency matrix in CSR form: `nodes` rows and columns,
 *   `edges` stored nonzeros, int64 row pointers and int32 column indices, optional f32
 *   values (NULL means every stored entry is 1, a "pattern" graph). Column indices are
 *   int32 on purpose: the SpMM/SGT kernels stream them, and 4 bytes instead of 8 is a
 *   third less index traffic. Graphs with more than INT32_MAX nodes are therefore refused
 *   (SDLK_ERR_UNSUPPORTED); edge counts are int64 and unlimited.
 *   A graph built by sdlk_graph_from_coo() has the columns of every row sorted
 *   ascending; kernels here do not depend on that, but SGT's output is then also sorted
 *   within each row and reproducible.
 *
 *   Readers fill an sdlk_coo (one entry per stored nonzero, 0-based) and never print:
 *   a bad file is an SDLK_ERR_FORMAT whose message names the file and the line, e.g.
 *   "g.mtx:7: row index 0 out of range 1..34". Matrix Market files (plain or gzip --
 *   zlib reads both transparently) are streamed line by line; the text is never held in
 *   memory. "symmetric" files are expanded to the full matrix (each off-diagonal entry
 *   mirrored), "skew-symmetric" ones mirrored with the value negated.
 *
 *   sdlk_graph_from_coo() is O(nnz + N) time (two stable counting sorts: by column, then
 *   by row) and O(nnz + N) extra memory. Options apply in this order: symmetrize, sort,
 *   duplicate policy, add missing self-loops, GCN normalisation.
 *
 *   No global state; every function is safe to call from several threads on different
 *   objects. Functions taking an sdlk_pool run their loops on it (NULL = the caller's
 *   thread only); results never depend on the number of threads.
 */
#ifndef SDLK_GRAPH_GRAPH_H
#define SDLK_GRAPH_GRAPH_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"

/* ---- COO edge lists ------------------------------------------------------------ */

typedef struct sdlk_coo {
    int64_t rows, cols;      /* matrix shape */
    int64_t count, capacity; /* entries held / allocated */
    int32_t *row, *col;      /* 0-based indices, [count] */
    float *value;            /* [count], or NULL when every entry is 1 (pattern) */
    int64_t *node_ids;       /* SNAP reader: original id of node i, [rows]; else NULL */
} sdlk_coo;

void sdlk_coo_init(sdlk_coo *coo);
void sdlk_coo_free(sdlk_coo *coo);
/* Make room for `capacity` entries; `with_values` allocates the value array. */
sdlk_status sdlk_coo_reserve(sdlk_coo *coo, int64_t capacity, int with_values, sdlk_error *err);
/* Append one entry (amortised O(1)); `value` is ignored for pattern lists. Indices are
 * checked against rows/cols (SDLK_ERR_ARG). */
sdlk_status sdlk_coo_push(sdlk_coo *coo, int64_t row, int64_t col, float value, sdlk_error *err);

/* ---- CSR graphs ------------------------------------------------------------------ */

typedef struct sdlk_graph {
    int64_t nodes;     /* rows = columns */
    int64_t edges;     /* stored nonzeros = row_ptr[nodes] */
    int64_t *row_ptr;  /* [nodes + 1] */
    int32_t *col_idx;  /* [edges] */
    float *values;     /* [edges], or NULL = all ones */
    int64_t *node_ids; /* original id of node i (SNAP remap), [nodes], or NULL */
    int64_t *perm;     /* after a reordering: perm[new] = old node, [nodes], or NULL */
} sdlk_graph;

typedef enum sdlk_dup_policy {
    SDLK_DUP_KEEP = 0, /* keep repeated (i, j) entries as separate nonzeros */
    SDLK_DUP_DROP,     /* keep the first (in input order; mirrored entries come last) */
    SDLK_DUP_SUM       /* one entry holding the sum of the values */
} sdlk_dup_policy;

typedef struct sdlk_graph_options {
    int symmetrize;             /* add (j, i, v) for every off-diagonal (i, j, v) */
    sdlk_dup_policy duplicates; /* what to do with repeated (i, j) */
    int self_loops;             /* add (i, i, 1) for every node that has none */
    /* Values become D^-1/2 (A + I) D^-1/2 with D the row sums of A + I. "+ I" adds a
     * self-loop of weight 1 only where a node has none (like PyG's
     * add_remaining_self_loops), so a graph that already carries self-loops is not
     * given weight 2 on the diagonal. Rows whose sum is <= 0 get zero values. */
    int gcn_normalize;
} sdlk_graph_options;

void sdlk_graph_init(sdlk_graph *g);
void sdlk_graph_free(sdlk_graph *g);

/* Build a CSR graph from `coo` (unchanged). The COO must be square (SDLK_ERR_ARG
 * otherwise -- readers check squareness with a file/line message first). node_ids are
 * copied. O(nnz + N). */
sdlk_status sdlk_graph_from_coo(const sdlk_coo *coo, const sdlk_graph_options *opts,
                                sdlk_graph *out, sdlk_error *err);

/* Build from CSR arrays given by the caller (copied); checks that row_ptr is
 * non-decreasing from 0 to `edges` and every column lies in 0..nodes-1 (SDLK_ERR_FORMAT
 * naming `name`). O(nnz + N). */
sdlk_status sdlk_graph_from_csr(int64_t nodes, int64_t edges, const int64_t *row_ptr,
                                const int32_t *col_idx, const float *values, const char *name,
                                sdlk_graph *out, sdlk_error *err);

/* ---- reordering (reorder.c) ------------------------------------------------------
 * Each returns out = P A P^T with out->perm[new] = old node (an existing g->perm is
 * composed, node_ids follow their nodes); rows keep their columns sorted. */

/* Renumber by `order` (order[new] = old node; SDLK_ERR_ARG unless a permutation of
 * 0..N-1). O(nnz + N) plus a per-row sort. */
sdlk_status sdlk_graph_permute(const sdlk_graph *g, const int64_t *order, sdlk_graph *out,
                               sdlk_error *err);

/* Renumber by decreasing degree (ties by old id, so the result is deterministic).
 * O(nnz + N) plus a per-row sort. */
sdlk_status sdlk_graph_reorder_by_degree(const sdlk_graph *g, sdlk_graph *out, sdlk_error *err);

/* Reverse Cuthill-McKee on the undirected structure pattern(A + A^T): breadth first
 * from a pseudo-peripheral node of each component (George-Liu), neighbours in
 * increasing degree, the whole order reversed. Neighbours get nearby numbers, so the
 * rows of one SGT window share more columns (fewer, denser tiles; on cond-mat-2005
 * 13 % fewer tiles). Components are taken in the order of their least-degree node,
 * ties by id: deterministic. order[N] receives order[new] = old.
 * O(nnz log dmax + N log N) time, O(nnz + N) memory. */
sdlk_status sdlk_graph_rcm_order(const sdlk_graph *g, int64_t *order, sdlk_error *err);
sdlk_status sdlk_graph_reorder_rcm(const sdlk_graph *g, sdlk_graph *out, sdlk_error *err);

/* Largest row length. O(N). */
int64_t sdlk_graph_max_degree(const sdlk_graph *g);

/* ---- readers --------------------------------------------------------------------- */

typedef enum sdlk_graph_format {
    SDLK_GRAPH_AUTO = 0, /* by extension: .mtx[.gz] -> Matrix Market, .npz -> SciPy,
                            anything else -> SNAP edge list */
    SDLK_GRAPH_MTX,
    SDLK_GRAPH_SNAP,
    SDLK_GRAPH_NPZ
} sdlk_graph_format;

/* What the Matrix Market banner said. */
typedef struct sdlk_mtx_info {
    int is_array;    /* 0 = coordinate, 1 = array */
    int field;       /* 0 = pattern, 1 = real, 2 = integer */
    int symmetry;    /* 0 = general, 1 = symmetric, 2 = skew-symmetric */
    int64_t entries; /* entries stored in the file (coordinate: the header's count) */
} sdlk_mtx_info;

/* Read a Matrix Market file ("-" = stdin), plain or gzip, into `out` (initialised by
 * the caller, filled from empty). Supports coordinate/array, pattern/real/integer,
 * general/symmetric/skew-symmetric; complex and hermitian are SDLK_ERR_UNSUPPORTED.
 * `require_square` turns a non-square size line into an SDLK_ERR_FORMAT. Array zeros
 * are not stored. Every malformed line, out-of-range or 0 index, missing/extra field,
 * and a count of entries different from the header's is an SDLK_ERR_FORMAT naming
 * the file and line. `info` may be NULL. O(file size) time, O(nnz) memory. */
sdlk_status sdlk_mtx_read(const char *path, int require_square, sdlk_coo *out,
                          sdlk_mtx_info *info, sdlk_error *err);

/* Read a SNAP edge list: one "src dst" pair per line separated by spaces or tabs,
 * '#' or '%' comment lines, blank lines ignored; ids are non-negative integers of any
 * size with gaps. Nodes are renumbered 0..N-1 in increasing order of original id and
 * out->node_ids keeps the originals. A third column (a weight) is accepted on every
 * line or none. gzip is read transparently. O(E log E) for the id remap. */
sdlk_status sdlk_snap_read(const char *path, sdlk_coo *out, sdlk_error *err);

/* Read a scipy.sparse.save_npz file holding a CSR (or CSC, transposed on the fly) matrix:
 * members indptr, indices, data, shape, format. Index dtypes i32/i64, data of any real
 * dtype (converted to f32) -- an all-ones data array still becomes explicit values.
 * Square required. Checks every array against the others. O(nnz + N). */
sdlk_status sdlk_npz_graph_read(const char *path, sdlk_graph *out, sdlk_error *err);

/* Read any of the above (format chosen by `format`) and build the CSR graph with
 * `opts` (NULL = no options). */
sdlk_status sdlk_graph_read(const char *path, sdlk_graph_format format,
                            const sdlk_graph_options *opts, sdlk_graph *out, sdlk_error *err);

/* ---- R-MAT generator ------------------------------------------------------------ */

typedef struct sdlk_rmat_params {
    int64_t nodes;   /* N >= 1, ids 0..N-1; not necessarily a power of two */
    int64_t edges;   /* directed edges to generate (before any symmetrize/dedupe) */
    double a, b, c;  /* quadrant probabilities; d = 1 - a - b - c (Graph500: .57 .19 .19) */
    uint64_t seed;   /* same seed and parameters -> the same edges, for any thread count */
    int scramble;    /* relabel nodes by a seeded random permutation (as Graph500 does);
                        0 keeps R-MAT's natural order, where low ids are the hubs */
} sdlk_rmat_params;

/* Graph500 defaults for 2^scale nodes and edge_factor * 2^scale edges. */
sdlk_rmat_params sdlk_rmat_graph500(int scale, int64_t edge_factor, uint64_t seed);

/* Generate the edges into `out` (initialised by the caller). Each edge descends
 * ceil(log2 N) levels of the recursive matrix with its own counter-based random stream;
 * an edge landing outside 0..N-1 is redrawn from the same stream. Parallel over edges
 * on `pool`. O(E log N). */
sdlk_status sdlk_rmat_generate(const sdlk_rmat_params *params, sdlk_pool *pool, sdlk_coo *out,
                               sdlk_error *err);

#endif
