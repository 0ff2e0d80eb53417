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

/* Prefetch the cache lines of a row part of `blocks` 8-float registers (X rows are
 * gathered at random and usually come from L3 or DRAM: issuing the loads
 * SDLK_SPMM_PREFETCH_AHEAD rows early overlaps their latency; measured 1.5x on a
 * DRAM-resident R-MAT graph). */
ALWAYS_INLINE void prefetch_row_part(const float *row_part, int blocks)
{
    for (int line = 0; line < (blocks + 1) / 2; line++)
        _mm_prefetch((const char *)row_part + 64 * line, _MM_HINT_T0);
}

/* ---- CSR SpMM -------------------------------------------------------------------- */

/* y[d0 .. d0 + 8*(blocks-1) + last) of one row: `blocks` registers of accumulators, the
 * last holding `last` (1..8) columns. Inlined with constant `blocks` so the accumulators
 * live in registers. cols[count..] continue with the next rows' columns up to
 * `cols_end`, so the prefetch runs across row ends. */
ALWAYS_INLINE void csr_row_part(const int32_t *cols, const int32_t *cols_end,
                                const float *vals, int64_t count, const float *x, int64_t dim,
                                int64_t d0, int blocks, int64_t last, float *y_row)
{
    __m256 acc[8];
    for (int j = 0; j < blocks; j++)
        acc[j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < count; k++) {
        if (cols_end - cols > k + SDLK_SPMM_PREFETCH_AHEAD)
            prefetch_row_part(x + (int64_t)cols[k + SDLK_SPMM_PREFETCH_AHEAD] * dim + d0, blocks);
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
ALWAYS_INLINE void csr_row(const int32_t *cols, const int32_t *cols_end, const float *vals,
                           int64_t count, const float *x, int64_t dim, float *y_row)
{
    int64_t d0 = 0;
    for (; d0 + 64 <= dim; d0 += 64)
        csr_row_part(cols, cols_end, vals, count, x, dim, d0, 8, 8, y_row);
    if (d0 + 32 <= dim) {
        csr_row_part(cols, cols_end, vals, count, x, dim, d0, 4, 8, y_row);
        d0 += 32;
    }
    for (; d0 + 8 <= dim; d0 += 8)
        csr_row_part(cols, cols_end, vals, count, x, dim, d0, 1, 8, y_row);
    if (d0 < dim)
        csr_row_part(cols, cols_end, vals, count, x, dim, d0, 1, dim - d0, y_row);
}

void sdlk_spmm_csr_avx2(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    const sdlk_graph *g = job->g;
    const int32_t *cols_end = g->col_idx + g->edges;
    for (int64_t r = begin; r < end; r++) {
        int64_t k0 = g->row_ptr[r], count = g->row_ptr[r + 1] - k0;
        const float *vals = job->values ? job->values + k0 : NULL;
        csr_row(g->col_idx + k0, cols_end, vals, count, job->x, job->dim, job->y + r * job->dim);
    }
}

/* ---- condensed SpMM ------------------------------------------------------------- */

/* One window, feature columns [d0, d0 + 8*(blocks-1) + last). The window's nonzeros are
 * walked in condensed-column order (column_nz_ptr: the per-window CSC), so each distinct
 * neighbour row part is loaded from X exactly once, into registers, and multiplied into
 * every window row that has it. The H window rows accumulate in `acc` (H x 64 floats,
 * 4 KiB at H = 16: always L1-resident) -- the analogue of TC-GNN's shared-memory output
 * tile. X is read U times per window instead of nnz times; the rows
 * SDLK_SPMM_PREFETCH_AHEAD distinct columns ahead (across window ends) are prefetched, since X usually lies in
 * L3 or DRAM and a window's column list is known in advance. */
ALWAYS_INLINE void condensed_window_part(const sdlk_spmm_job *job, int64_t w, int64_t d0,
                                         int blocks, int64_t last, float *acc)
{
    const sdlk_sgt *s = job->sgt;
    int64_t first_row = w * s->window_height;
    int64_t rows = first_row + s->window_height < s->nodes ? s->window_height
                                                           : s->nodes - first_row;
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < blocks; j++)
            _mm256_store_ps(acc + r * SDLK_SPMM_BLOCK + 8 * j, _mm256_setzero_ps());
    const int32_t *cols = s->window_cols;
    const int32_t *cols_end = cols + s->window_col_ptr[s->window_count];
    for (int64_t u = s->window_col_ptr[w]; u < s->window_col_ptr[w + 1]; u++) {
        if (cols_end - cols > u + SDLK_SPMM_PREFETCH_AHEAD)
            prefetch_row_part(job->x + (int64_t)cols[u + SDLK_SPMM_PREFETCH_AHEAD] * job->dim + d0,
                              blocks);
        const float *x_row = job->x + (int64_t)cols[u] * job->dim + d0;
        __m256 x_part[8];
        for (int j = 0; j < blocks - 1; j++)
            x_part[j] = _mm256_loadu_ps(x_row + 8 * j);
        x_part[blocks - 1] = load_part(x_row + 8 * (blocks - 1), last);
        for (int64_t p = s->column_nz_ptr[u]; p < s->column_nz_ptr[u + 1]; p++) {
            __m256 v = _mm256_set1_ps(job->tile_values ? job->tile_values[p]
                                                       : job->values[s->tile_nz_edge[p]]);
            float *acc_row = acc + (int64_t)s->tile_nz_row[p] * SDLK_SPMM_BLOCK;
            for (int j = 0; j < blocks; j++)
                _mm256_store_ps(acc_row + 8 * j,
                                _mm256_fmadd_ps(v, x_part[j], _mm256_load_ps(acc_row + 8 * j)));
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        float *y_row = job->y + (first_row + r) * job->dim + d0;
        const float *acc_row = acc + r * SDLK_SPMM_BLOCK;
        for (int j = 0; j < blocks - 1; j++)
            _mm256_storeu_ps(y_row + 8 * j, _mm256_load_ps(acc_row + 8 * j));
        store_part(y_row + 8 * (blocks - 1), _mm256_load_ps(acc_row + 8 * (blocks - 1)), last);
    }
}

void sdlk_spmm_condensed_avx2(void *ctx, int64_t begin, int64_t end, int worker)
{
    const sdlk_spmm_job *job = ctx;
    float *acc = job->window_buffer[worker];
    int64_t dim = job->dim;
    for (int64_t w = begin; w < end; w++) {
        int64_t d0 = 0;
        for (; d0 + 64 <= dim; d0 += 64)
            condensed_window_part(job, w, d0, 8, 8, acc);
        if (d0 + 32 <= dim) {
            condensed_window_part(job, w, d0, 4, 8, acc);
            d0 += 32;
        }
        for (; d0 + 8 <= dim; d0 += 8)
            condensed_window_part(job, w, d0, 1, 8, acc);
        if (d0 < dim)
            condensed_window_part(job, w, d0, 1, dim - d0, acc);
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
