/* spmm_avx2.c -- AVX2 + FMA SpMM / SDDMM kernels. Compiled with -mavx2 -mfma for this file
 * only (lib/graph/meson.build); spmm.c calls these only after __builtin_cpu_supports()
 * said yes, so the rest of the library stays baseline x86-64. */
#include <immintrin.h>
#include <string.h>

#include "graph/spmm_internal.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Lanes 0..n-1 set (n in 0..8): masked loads/stores for the last dim % 8 columns. */
ALWAYS_INLINE __m256i lane_mask(int64_t n)
{
    static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(bits + 8 - n));
}

ALWAYS_INLINE __m256 load_part(const float *p, int64_t n)
{
    return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lane_mask(n));
}

ALWAYS_INLINE void store_part(float *p, __m256 v, int64_t n)
{
    if (n == 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, lane_mask(n), v);
}

/* ---- CSR SpMM -------------------------------------------------------------------- */

/* y[d0 .. d0 + 8*(blocks-1) + last) of one row: `blocks` registers of accumulators, the
 * last holding `last` (1..8) columns. Inlined with constant `blocks` so the accumulators
 * live in registers. */
ALWAYS_INLINE void csr_row_part(const int32_t *cols, const float *vals, int64_t count,
                                const float *x, int64_t dim, int64_t d0, int blocks, int64_t last,
                                float *y_row)
{
    __m256 acc[8];
    for (int j = 0; j < blocks; j++)
        acc[j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < count; k++) {
        __m256 v = _mm256_set1_ps(vals ? vals[k] : 1.0f);
        const float *x_row = x + (int64_t)cols[k] * dim + d0;
        for (int j = 0; j < blocks - 1; j++)
            acc[j] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x_row + 8 * j), acc[j]);
        acc[blocks - 1] =
            _mm256_fmadd_ps(v, load_part(x_row + 8 * (blocks - 1), last), acc[blocks - 1]);
    }
    for (int j = 0; j < blocks - 1; j++)
        _mm256_storeu_ps(y_row + d0 + 8 * j, acc[j]);
    store_part(y_row + d0 + 8 * (blocks - 1), acc[blocks - 1], last);
}

/* One output row, all of dim: 64-column parts while they last, then 32, 8, the tail. */
ALWAYS_INLINE void csr_row(const int32_t *cols, const float *vals, int64_t count,
                           const float *x, int64_t dim, float *y_row)
{
    int64_t d0 = 0;
    for (; d0 + 64 <= dim; d0 += 64)
        csr_row_part(cols, vals, count, x, dim, d0, 8, 8, y_row);
    if (d0 + 32 <= dim) {
        csr_row_part(cols, vals, count, x, dim, d0, 4, 8, y_row);
        d0 += 32;
    }
    for (; d0 + 8 <= dim; d0 += 8)
        csr_row_part(cols, vals, count, x, dim, d0, 1, 8, y_row);
    if (d0 < dim)
        csr_row_part(cols, vals, count, x, dim, d0, 1, dim - d0, y_row);
}

void sdlk_spmm_csr_avx2(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_graph *g = job->g;
    for (int64_t r = begin; r < end; r++) {
        int64_t k0 = g->row_ptr[r], count = g->row_ptr[r + 1] - k0;
        const float *vals = job->values ? job->values + k0 : NULL;
        csr_row(g->col_idx + k0, vals, count, job->x, job->dim, job->y + r * job->dim);
    }
}

/* ---- condensed SpMM ------------------------------------------------------------- */

/* One window, feature columns [d0, d0 + 8*(blocks-1) + last). First every distinct
 * neighbour row part of the window is gathered once into `packed` (U x 64 floats, the
 * analogue of TC-GNN's shared-memory tile); then each window row accumulates in
 * registers from the packed rows, addressed by condensed column. X is read U times per
 * window instead of nnz times, and the inner loop reads only cache-resident memory. */
ALWAYS_INLINE void condensed_window_part(const sdlk_spmm_job *job, int64_t w, int64_t d0,
                                         int blocks, int64_t last, float *packed)
{
    const sdlk_sgt *s = job->sgt;
    const sdlk_graph *g = job->g;
    int64_t first_row = w * s->window_height;
    int64_t last_row = first_row + s->window_height < s->nodes ? first_row + s->window_height
                                                               : s->nodes;
    int64_t col_base = s->window_col_ptr[w], distinct = s->window_col_ptr[w + 1] - col_base;
    for (int64_t u = 0; u < distinct; u++) {
        const float *x_row = job->x + (int64_t)s->window_cols[col_base + u] * job->dim + d0;
        float *dst = packed + u * SDLK_SPMM_BLOCK;
        for (int j = 0; j < blocks - 1; j++)
            _mm256_store_ps(dst + 8 * j, _mm256_loadu_ps(x_row + 8 * j));
        _mm256_store_ps(dst + 8 * (blocks - 1), load_part(x_row + 8 * (blocks - 1), last));
    }
    const float *vals = job->values;
    for (int64_t r = first_row; r < last_row; r++) {
        __m256 acc[8];
        for (int j = 0; j < blocks; j++)
            acc[j] = _mm256_setzero_ps();
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++) {
            __m256 v = _mm256_set1_ps(vals ? vals[k] : 1.0f);
            const float *src = packed + (int64_t)s->edge_condensed_col[k] * SDLK_SPMM_BLOCK;
            for (int j = 0; j < blocks; j++)
                acc[j] = _mm256_fmadd_ps(v, _mm256_load_ps(src + 8 * j), acc[j]);
        }
        float *y_row = job->y + r * job->dim + d0;
        for (int j = 0; j < blocks - 1; j++)
            _mm256_storeu_ps(y_row + 8 * j, acc[j]);
        store_part(y_row + 8 * (blocks - 1), acc[blocks - 1], last);
    }
}

void sdlk_spmm_condensed_avx2(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_sgt *s = job->sgt;
    float *packed = job->window_buffer[worker];
    int64_t dim = job->dim;
    for (int64_t w = begin; w < end; w++) {
        if (s->window_col_ptr[w + 1] - s->window_col_ptr[w] > job->packed_columns) {
            /* a hub window too wide to pack: read X directly, as the CSR kernel does */
            int64_t first_row = w * s->window_height;
            int64_t last_row = first_row + s->window_height < s->nodes
                                   ? first_row + s->window_height
                                   : s->nodes;
            sdlk_spmm_csr_avx2(ctx, first_row, last_row, worker);
            continue;
        }
        int64_t d0 = 0;
        for (; d0 + 64 <= dim; d0 += 64)
            condensed_window_part(job, w, d0, 8, 8, packed);
        if (d0 + 32 <= dim) {
            condensed_window_part(job, w, d0, 4, 8, packed);
            d0 += 32;
        }
        for (; d0 + 8 <= dim; d0 += 8)
            condensed_window_part(job, w, d0, 1, 8, packed);
        if (d0 < dim)
            condensed_window_part(job, w, d0, 1, dim - d0, packed);
    }
}

/* ---- SDDMM ------------------------------------------------------------------------ */

ALWAYS_INLINE float horizontal_sum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* <a, b> over dim floats: two accumulators (latency), fixed order. */
ALWAYS_INLINE float dot(const float *a, const float *b, int64_t dim)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t d = 0;
    for (; d + 16 <= dim; d += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), acc1);
    }
    for (; d < dim; d += 8) {
        int64_t n = dim - d < 8 ? dim - d : 8;
        acc0 = _mm256_fmadd_ps(load_part(a + d, n), load_part(b + d, n), acc0);
    }
    return horizontal_sum(_mm256_add_ps(acc0, acc1));
}

void sdlk_sddmm_csr_avx2(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_graph *g = job->g;
    for (int64_t r = begin; r < end; r++) {
        const float *x_i = job->x + r * job->dim;
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++)
            job->scores[k] = dot(x_i, job->x + (int64_t)g->col_idx[k] * job->dim, job->dim);
    }
}

void sdlk_sddmm_condensed_avx2(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_sgt *s = job->sgt;
    for (int64_t w = begin; w < end; w++) {
        const float *x_window = job->x + w * s->window_height * job->dim;
        for (int64_t u = s->window_col_ptr[w]; u < s->window_col_ptr[w + 1]; u++) {
            const float *x_j = job->x + (int64_t)s->window_cols[u] * job->dim;
            for (int64_t p = s->column_nz_ptr[u]; p < s->column_nz_ptr[u + 1]; p++)
                job->scores[s->tile_nz_edge[p]] =
                    dot(x_window + s->tile_nz_row[p] * job->dim, x_j, job->dim);
        }
    }
}
