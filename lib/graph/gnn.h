/* gnn.h -- forward inference of two graph neural networks on the aggregation kernels:
 * GCN (Kipf & Welling 2017) and AGNN (Thekumparampil et al. 2018), as TC-GNN runs them.
 *
 * Contract
 *   A model is a stack of L layers; layer l maps [N, in_l] features to [N, out_l] with
 *   a dense weight W_l [in_l, out_l] (row-major: Z = H W_l), an optional bias b_l
 *   [out_l] and, for AGNN, a scalar temperature beta_l. Dense products use OpenBLAS
 *   (cblas_sgemm, f32); aggregation uses lib/graph/spmm.h (condensed tiles when an SGT
 *   is given, the CSR kernels otherwise). ReLU follows every layer but the last; the
 *   last layer's output (logits, no softmax) is the result.
 *     GCN  layer:  H' = Â (H W) + b, where Â is the graph itself: it must already hold
 *                  the GCN-normalised values D^-1/2 (A+I) D^-1/2 (sdlk_graph_options
 *                  gcn_normalize). Multiplying H W first is the same product as (Â H) W
 *                  and keeps the aggregation at the narrower width.
 *     AGNN layer:  Z = H W; Ẑ = Z with rows scaled to unit length (zero rows stay 0);
 *                  s_ij = beta * <ẑ_i, ẑ_j> (cosine similarity) for every edge (i, j) --
 *                  an SDDMM on the same tiles; P_ij = softmax over j in row i of s;
 *                  H' = P Z + b (SpMM with the attention as edge values). The graph's
 *                  own values are ignored; self-loops (sdlk_graph_options self_loops)
 *                  let a node attend to itself, as AGNN does.
 *   Defaults (TC-GNN's settings): GCN 2 layers hidden 16; AGNN 4 layers hidden 32.
 *   Weights come from named tensors: "W1".."WL" ([in, out], any real dtype, converted to
 *   f32), optional "b1".."bL" ([out]) and, for AGNN, optional "beta1".."betaL" (one
 *   element; default 1). Or they are drawn by sdlk_gnn_model_random: Glorot/Xavier
 *   uniform in +-sqrt(6 / (in + out)) from a seeded splitmix64 stream, biases 0, beta 1.
 *   Results do not depend on the thread count (the kernels are deterministic per row;
 *   OpenBLAS sgemm is deterministic for a fixed OpenBLAS thread count).
 *   Device: sdlk_gnn_forward_on runs each layer's aggregation SpMM on the device given
 *   (sdlk_spmm_condensed_on, which needs the condensed tiles: the GPU aggregates in TF32,
 *   about 1e-3 relative, copying the tiles, Z and the layer's output across on every
 *   call); the dense products, AGNN's SDDMM and softmax stay on the CPU.
 *   Cost per layer: 2 N in out flops dense; GCN 2 nnz out aggregation, AGNN 4 nnz out
 *   (SDDMM + SpMM) plus O(nnz) for the softmax. Memory: O(N * widest layer + nnz).
 */
#ifndef SDLK_GRAPH_GNN_H
#define SDLK_GRAPH_GNN_H

#include <stdint.h>
#include <stdio.h>

#include "core/device.h"
#include "core/error.h"
#include "core/pool.h"
#include "core/tensorset.h"
#include "graph/graph.h"
#include "graph/sgt.h"
#include "graph/spmm.h"

typedef enum sdlk_gnn_kind { SDLK_GNN_GCN = 0, SDLK_GNN_AGNN } sdlk_gnn_kind;

#define SDLK_GNN_MAX_LAYERS 64

typedef struct sdlk_gnn_layer {
    int64_t in, out;
    float *weight; /* [in * out], row-major */
    float *bias;   /* [out] or NULL */
    float beta;    /* AGNN temperature */
} sdlk_gnn_layer;

typedef struct sdlk_gnn_model {
    sdlk_gnn_kind kind;
    int layers;
    sdlk_gnn_layer layer[SDLK_GNN_MAX_LAYERS];
} sdlk_gnn_model;

/* Per-layer wall time of the last forward pass. */
typedef struct sdlk_gnn_timing {
    double dense_s[SDLK_GNN_MAX_LAYERS];     /* sgemm, bias, ReLU */
    double aggregate_s[SDLK_GNN_MAX_LAYERS]; /* SpMM (+ SDDMM, softmax for AGNN) */
} sdlk_gnn_timing;

/* "gcn" / "agnn" (SDLK_ERR_ARG otherwise). */
sdlk_status sdlk_gnn_kind_parse(const char *name, sdlk_gnn_kind *out, sdlk_error *err);
const char *sdlk_gnn_kind_name(sdlk_gnn_kind kind);

void sdlk_gnn_model_init(sdlk_gnn_model *m);
void sdlk_gnn_model_free(sdlk_gnn_model *m);

/* Layer widths in_dim -> hidden -> ... -> hidden -> out_dim over `layers` layers
 * (1..SDLK_GNN_MAX_LAYERS), Glorot-uniform weights from `seed`. */
sdlk_status sdlk_gnn_model_random(sdlk_gnn_model *m, sdlk_gnn_kind kind, int layers,
                                  int64_t in_dim, int64_t hidden, int64_t out_dim,
                                  uint64_t seed, sdlk_error *err);

/* Layers from tensors named as above: W1, W2, ... until the first missing index; each
 * layer's input width must equal the previous output width and W1's the feature width
 * `in_dim`. Every tensor is checked (shape, finite values); a bias or beta without
 * its W, or a tensor of the set that is not a model parameter, is an error too. `name`
 * names the weights in messages. */
sdlk_status sdlk_gnn_model_from_tensors(sdlk_gnn_model *m, sdlk_gnn_kind kind,
                                        const sdlk_tensor_set *weights, int64_t in_dim,
                                        const char *name, sdlk_error *err);

/* y [N, out_L] = model(x [N, in_1]) over graph g (N = g->nodes), with its condensed
 * tiles `sgt` (built from g) or NULL for the CSR kernels. `timing` may be NULL. */
sdlk_status sdlk_gnn_forward(const sdlk_gnn_model *m, const sdlk_graph *g, const sdlk_sgt *sgt,
                             const float *x, float *y, sdlk_isa isa, sdlk_pool *pool,
                             sdlk_gnn_timing *timing, sdlk_error *err);

/* sdlk_gnn_forward with the aggregation on `device` (lib/core/device.h): SDLK_DEVICE_GPU
 * needs `sgt` (SDLK_ERR_ARG without; SDLK_ERR_DEVICE without a usable GPU), AUTO uses the
 * GPU when there is one and `sgt` is given. sdlk_gnn_forward = SDLK_DEVICE_CPU. */
sdlk_status sdlk_gnn_forward_on(const sdlk_gnn_model *m, const sdlk_graph *g,
                                const sdlk_sgt *sgt, const float *x, float *y,
                                sdlk_device device, sdlk_isa isa, sdlk_pool *pool,
                                sdlk_gnn_timing *timing, sdlk_error *err);

/* Replace each row's scores (CSR order) by their softmax over the row (max-subtracted,
 * so any finite scores are safe). Parallel over rows. O(nnz). */
void sdlk_gnn_row_softmax(const sdlk_graph *g, float *scores, sdlk_pool *pool);

/* Row permutation of a [N, dim] f32 matrix: to_new: dst[i] = src[perm[i]]; else
 * dst[perm[i]] = src[i] (undoes it). perm[new] = old as in sdlk_graph.perm. O(N dim). */
void sdlk_rows_permute(const int64_t *perm, int64_t n, int64_t dim, const float *src,
                       float *dst, int to_new);

/* ---- node features in files ---------------------------------------------------- */

/* Load the node features of `g` from a tensor file (`path`, "-" = stdin; .npy, .npz or
 * safetensors holding exactly one tensor): a 2-d [N, D] array of any real dtype, or a
 * 1-d [N] one (D = 1), with N = g->nodes; anything else is an SDLK_ERR_FORMAT naming the
 * file and both counts. *out (malloc'd, f32, row-major) is in g's node order: when g was
 * reordered (g->perm), row i is the file's row perm[i]. O(N D). */
sdlk_status sdlk_features_load(const char *path, const sdlk_graph *g, float **out,
                               int64_t *dim, sdlk_error *err);

/* Write y [N, dim] (g's node order) as an f32 .npy to fp, rows back in the original
 * order when g->perm is set. O(N D). */
sdlk_status sdlk_features_write_npy(FILE *fp, const sdlk_graph *g, const float *y,
                                    int64_t dim, const char *name, sdlk_error *err);

#endif
