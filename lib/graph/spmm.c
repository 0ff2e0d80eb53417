/* spmm.c -- SpMM / SDDMM entry points, ISA dispatch and the portable C kernels. */
#include "graph/spmm.h"

#include <stdlib.h>
#include <string.h>

#include "graph/spmm_internal.h"

#ifdef SDLK_HAVE_CUDA
#include "kernels/spmm_cuda.h"
#endif

/* The AVX2 kernels exist only in x86-64 builds (lib/graph/meson.build). */
#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX2_KERNELS 1
#else
#define HAVE_AVX2_KERNELS 0
#define sdlk_spmm_csr_avx2 spmm_csr_portable
#define sdlk_spmm_condensed_avx2 spmm_condensed_portable
#define sdlk_sddmm_csr_avx2 sddmm_csr_portable
#define sdlk_sddmm_condensed_avx2 sddmm_condensed_portable
#endif

sdlk_status sdlk_isa_parse(const char *name, sdlk_isa *isa, sdlk_error *err)
{
    static const struct {
        const char *name;
        sdlk_isa isa;
    } names[] = {{"auto", SDLK_ISA_AUTO}, {"portable", SDLK_ISA_PORTABLE}, {"avx2", SDLK_ISA_AVX2}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *isa = names[i].isa;
            return SDLK_OK;
        }
    }
    return sdlk_error_set(err, SDLK_ERR_ARG, "--isa: '%s' is not auto, portable or avx2", name);
}

int sdlk_spmm_have_avx2(void)
{
#if HAVE_AVX2_KERNELS
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Resolve AUTO; refuse an explicit AVX2 request the CPU cannot run. *use_avx2 = 0/1. */
static sdlk_status pick_isa(sdlk_isa isa, int *use_avx2, sdlk_error *err)
{
    int have = sdlk_spmm_have_avx2();
    if (isa == SDLK_ISA_AVX2 && !have)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "this CPU lacks AVX2/FMA");
    *use_avx2 = isa == SDLK_ISA_AVX2 || (isa == SDLK_ISA_AUTO && have);
    return SDLK_OK;
}

static sdlk_status check_dim(int64_t dim, int64_t nodes, sdlk_error *err)
{
    if (dim < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "feature width %lld must be >= 1", (long long)dim);
    if (nodes > 0 && dim > INT64_MAX / nodes / (int64_t)sizeof(float))
        return sdlk_error_set(err, SDLK_ERR_OVERFLOW, "%lld x %lld features overflow",
                              (long long)nodes, (long long)dim);
    return SDLK_OK;
}

/* ---- portable kernels ------------------------------------------------------------- */

static void spmm_csr_portable(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_graph *g = job->g;
    int64_t dim = job->dim;
    for (int64_t r = begin; r < end; r++) {
        float *y_row = job->y + r * dim;
        memset(y_row, 0, (size_t)dim * sizeof(float));
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++) {
            float v = job->values ? job->values[k] : 1.0f;
            const float *x_row = job->x + (int64_t)g->col_idx[k] * dim;
            for (int64_t d = 0; d < dim; d++)
                y_row[d] += v * x_row[d];
        }
    }
}

/* The AVX2 kernel's order of work (spmm_avx2.c): per window and 64-column block, each
 * distinct neighbour row multiplied into the window rows that have it. */
static void spmm_condensed_portable(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_sgt *s = job->sgt;
    int64_t dim = job->dim;
    float *acc = job->window_buffer[worker];
    for (int64_t w = begin; w < end; w++) {
        int64_t first_row = w * s->window_height;
        int64_t rows = first_row + s->window_height < s->nodes ? s->window_height
                                                               : s->nodes - first_row;
        for (int64_t d0 = 0; d0 < dim; d0 += SDLK_SPMM_BLOCK) {
            int64_t width = dim - d0 < SDLK_SPMM_BLOCK ? dim - d0 : SDLK_SPMM_BLOCK;
            memset(acc, 0, (size_t)rows * SDLK_SPMM_BLOCK * sizeof(float));
            for (int64_t u = s->window_col_ptr[w]; u < s->window_col_ptr[w + 1]; u++) {
                const float *x_row = job->x + (int64_t)s->window_cols[u] * dim + d0;
                for (int64_t p = s->column_nz_ptr[u]; p < s->column_nz_ptr[u + 1]; p++) {
                    float v = job->tile_values ? job->tile_values[p]
                                               : job->values[s->tile_nz_edge[p]];
                    float *acc_row = acc + (int64_t)s->tile_nz_row[p] * SDLK_SPMM_BLOCK;
                    for (int64_t d = 0; d < width; d++)
                        acc_row[d] += v * x_row[d];
                }
            }
            for (int64_t r = 0; r < rows; r++)
                memcpy(job->y + (first_row + r) * dim + d0, acc + r * SDLK_SPMM_BLOCK,
                       (size_t)width * sizeof(float));
        }
    }
}

static float dot_portable(const float *a, const float *b, int64_t dim)
{
    float sum = 0;
    for (int64_t d = 0; d < dim; d++)
        sum += a[d] * b[d];
    return sum;
}

static void sddmm_csr_portable(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_graph *g = job->g;
    for (int64_t r = begin; r < end; r++)
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++)
            job->scores[k] = dot_portable(job->x + r * job->dim,
                                          job->x + (int64_t)g->col_idx[k] * job->dim, job->dim);
}

static void sddmm_condensed_portable(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_sgt *s = job->sgt;
    for (int64_t w = begin; w < end; w++) {
        const float *x_window = job->x + w * s->window_height * job->dim;
        for (int64_t u = s->window_col_ptr[w]; u < s->window_col_ptr[w + 1]; u++) {
            const float *x_j = job->x + (int64_t)s->window_cols[u] * job->dim;
            for (int64_t p = s->column_nz_ptr[u]; p < s->column_nz_ptr[u + 1]; p++)
                job->scores[s->tile_nz_edge[p]] =
                    dot_portable(x_window + s->tile_nz_row[p] * job->dim, x_j, job->dim);
        }
    }
}

/* ---- entry points ------------------------------------------------------------------- */

/* Rows per chunk: enough work per chunk (about 32k multiply-adds) to hide the pool's
 * atomic, few enough chunks that uneven rows still balance. */
static int64_t rows_grain(int64_t edges, int64_t nodes, int64_t dim, int64_t rows_per_item)
{
    double work_per_item = nodes ? (double)edges * dim / nodes * rows_per_item : 1;
    int64_t grain = (int64_t)(32768.0 / (work_per_item + 1));
    return grain < 1 ? 1 : grain > 4096 ? 4096 : grain;
}

sdlk_status sdlk_spmm_csr(const sdlk_graph *g, const float *values, const float *x,
                          int64_t dim, float *y, sdlk_isa isa, sdlk_pool *pool,
                          sdlk_error *err)
{
    int use_avx2 = 0;
    sdlk_status st = check_dim(dim, g->nodes, err);
    if (st || (st = pick_isa(isa, &use_avx2, err)))
        return st;
    sdlk_spmm_job job = {.g = g, .values = values ? values : g->values, .x = x, .dim = dim, .y = y};
    sdlk_pool_for(pool, g->nodes, rows_grain(g->edges, g->nodes, dim, 1),
                  use_avx2 ? sdlk_spmm_csr_avx2 : spmm_csr_portable, &job);
    return SDLK_OK;
}

/* The SGT must be of this graph: same size, and (cheaply) the same row structure. */
static sdlk_status check_pair(const sdlk_sgt *sgt, const sdlk_graph *g, sdlk_error *err)
{
    if (sgt->nodes != g->nodes || sgt->edges != g->edges)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "condensed tiles of %lld nodes / %lld edges do not belong to a "
                              "graph of %lld / %lld",
                              (long long)sgt->nodes, (long long)sgt->edges, (long long)g->nodes,
                              (long long)g->edges);
    return SDLK_OK;
}

sdlk_status sdlk_spmm_condensed(const sdlk_sgt *sgt, const sdlk_graph *g, const float *values,
                                const float *x, int64_t dim, float *y, sdlk_isa isa,
                                sdlk_pool *pool, sdlk_error *err)
{
    int use_avx2 = 0;
    sdlk_status st = check_dim(dim, sgt->nodes, err);
    if (st || (st = check_pair(sgt, g, err)) || (st = pick_isa(isa, &use_avx2, err)))
        return st;
    int workers = sdlk_pool_size(pool);
    size_t buffer_bytes = (size_t)sgt->window_height * SDLK_SPMM_BLOCK * sizeof(float);
    float **buffers = calloc((size_t)workers, sizeof(float *));
    for (int i = 0; buffers && i < workers; i++)
        if (!(buffers[i] = aligned_alloc(64, buffer_bytes)))
            st = SDLK_ERR_NOMEM;
    if (!buffers || st) {
        for (int i = 0; buffers && i < workers; i++)
            free(buffers[i]);
        free(buffers);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for window buffers");
    }
    if (!values)
        values = g->values;
    /* The tiles carry the graph's own values in tile order (1 for a pattern graph); other
     * values (e.g. AGNN's attention) are CSR-ordered and read through tile_nz_edge. */
    sdlk_spmm_job job = {.g = g,
                         .sgt = sgt,
                         .values = values,
                         .tile_values = values == g->values ? sgt->tile_nz_value : NULL,
                         .x = x,
                         .dim = dim,
                         .y = y,
                         .window_buffer = buffers};
    sdlk_pool_for(pool, sgt->window_count,
                  rows_grain(sgt->edges, sgt->nodes, dim, sgt->window_height),
                  use_avx2 ? sdlk_spmm_condensed_avx2 : spmm_condensed_portable, &job);
    for (int i = 0; i < workers; i++)
        free(buffers[i]);
    free(buffers);
    return SDLK_OK;
}

/* An explicit GPU request is passed on even for other tile shapes, so that the kernel
 * reports the shape instead of a silent fallback. */
sdlk_status sdlk_spmm_condensed_device(const sdlk_sgt *sgt, sdlk_device requested,
                                       sdlk_device *where, sdlk_error *err)
{
    sdlk_status st = sdlk_device_resolve(requested, where, err);
    if (st == SDLK_OK && requested == SDLK_DEVICE_AUTO && *where == SDLK_DEVICE_GPU &&
        (sgt->window_height != SDLK_SGT_DEFAULT_WINDOW_HEIGHT ||
         sgt->tile_width != SDLK_SGT_DEFAULT_TILE_WIDTH))
        *where = SDLK_DEVICE_CPU;
    return st;
}

sdlk_status sdlk_spmm_condensed_on(const sdlk_sgt *sgt, const sdlk_graph *g,
                                   const float *values, const float *x, int64_t dim, float *y,
                                   sdlk_device device, sdlk_isa isa, sdlk_pool *pool,
                                   sdlk_device *used, sdlk_error *err)
{
    sdlk_device where = SDLK_DEVICE_CPU;
    sdlk_status st = check_dim(dim, sgt->nodes, err);
    if (st || (st = check_pair(sgt, g, err)) ||
        (st = sdlk_spmm_condensed_device(sgt, device, &where, err)))
        return st;
    if (used)
        *used = where;
#ifdef SDLK_HAVE_CUDA
    if (where == SDLK_DEVICE_GPU)
        /* CSR-order values as on the CPU; NULL = g's values, which the tiles also hold */
        return sdlk_cuda_spmm_condensed(sgt, values ? values : g->values, x, dim, y, err);
#endif
    return sdlk_spmm_condensed(sgt, g, values, x, dim, y, isa, pool, err);
}

sdlk_status sdlk_sddmm_csr(const sdlk_graph *g, const float *x, int64_t dim, float *scores,
                           sdlk_isa isa, sdlk_pool *pool, sdlk_error *err)
{
    int use_avx2 = 0;
    sdlk_status st = check_dim(dim, g->nodes, err);
    if (st || (st = pick_isa(isa, &use_avx2, err)))
        return st;
    sdlk_spmm_job job = {.g = g, .x = x, .dim = dim, .scores = scores};
    sdlk_pool_for(pool, g->nodes, rows_grain(g->edges, g->nodes, dim, 1),
                  use_avx2 ? sdlk_sddmm_csr_avx2 : sddmm_csr_portable, &job);
    return SDLK_OK;
}

sdlk_status sdlk_sddmm_condensed(const sdlk_sgt *sgt, const float *x, int64_t dim,
                                 float *scores, sdlk_isa isa, sdlk_pool *pool, sdlk_error *err)
{
    int use_avx2 = 0;
    sdlk_status st = check_dim(dim, sgt->nodes, err);
    if (st || (st = pick_isa(isa, &use_avx2, err)))
        return st;
    sdlk_spmm_job job = {.sgt = sgt, .x = x, .dim = dim, .scores = scores};
    sdlk_pool_for(pool, sgt->window_count,
                  rows_grain(sgt->edges, sgt->nodes, dim, sgt->window_height),
                  use_avx2 ? sdlk_sddmm_condensed_avx2 : sddmm_condensed_portable, &job);
    return SDLK_OK;
}
