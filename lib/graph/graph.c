/* graph.c -- COO lists and CSR construction (counting sorts). */
#include "graph/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"

/* ---- COO ------------------------------------------------------------------------ */

void sdlk_coo_init(sdlk_coo *coo)
{
    memset(coo, 0, sizeof(*coo));
}

void sdlk_coo_free(sdlk_coo *coo)
{
    free(coo->row);
    free(coo->col);
    free(coo->value);
    free(coo->node_ids);
    sdlk_coo_init(coo);
}

sdlk_status sdlk_coo_reserve(sdlk_coo *coo, int64_t capacity, int with_values, sdlk_error *err)
{
    if (capacity < 0 || (uint64_t)capacity > SIZE_MAX / sizeof(int32_t))
        return sdlk_error_set(err, SDLK_ERR_OVERFLOW, "edge list of %lld entries is too large",
                              (long long)capacity);
    if (capacity <= coo->capacity && (!with_values || coo->value))
        return SDLK_OK;
    if (capacity < coo->capacity)
        capacity = coo->capacity;
    size_t n = (size_t)(capacity ? capacity : 1);
    int32_t *row = realloc(coo->row, n * sizeof(int32_t));
    if (row)
        coo->row = row;
    int32_t *col = realloc(coo->col, n * sizeof(int32_t));
    if (col)
        coo->col = col;
    float *value = coo->value;
    if (with_values || coo->value) {
        value = realloc(coo->value, n * sizeof(float));
        if (value) {
            /* a pattern list that gains values: the entries so far were all 1 */
            if (!coo->value)
                for (int64_t i = 0; i < coo->count; i++)
                    value[i] = 1.0f;
            coo->value = value;
        }
    }
    if (!row || !col || ((with_values || coo->value) && !value))
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %lld edges",
                              (long long)capacity);
    coo->capacity = capacity;
    return SDLK_OK;
}

sdlk_status sdlk_coo_push(sdlk_coo *coo, int64_t row, int64_t col, float value, sdlk_error *err)
{
    if (row < 0 || row >= coo->rows || col < 0 || col >= coo->cols)
        return sdlk_error_set(err, SDLK_ERR_ARG, "edge (%lld, %lld) outside a %lld x %lld matrix",
                              (long long)row, (long long)col, (long long)coo->rows,
                              (long long)coo->cols);
    if (coo->count == coo->capacity) {
        int64_t grown = coo->capacity < 1024 ? 1024 : coo->capacity + coo->capacity / 2;
        sdlk_status st = sdlk_coo_reserve(coo, grown, coo->value != NULL, err);
        if (st)
            return st;
    }
    coo->row[coo->count] = (int32_t)row;
    coo->col[coo->count] = (int32_t)col;
    if (coo->value)
        coo->value[coo->count] = value;
    coo->count++;
    return SDLK_OK;
}

/* ---- CSR ------------------------------------------------------------------------ */

void sdlk_graph_init(sdlk_graph *g)
{
    memset(g, 0, sizeof(*g));
}

void sdlk_graph_free(sdlk_graph *g)
{
    free(g->row_ptr);
    free(g->col_idx);
    free(g->values);
    free(g->node_ids);
    free(g->perm);
    sdlk_graph_init(g);
}

int64_t sdlk_graph_max_degree(const sdlk_graph *g)
{
    int64_t best = 0;
    for (int64_t i = 0; i < g->nodes; i++) {
        int64_t d = g->row_ptr[i + 1] - g->row_ptr[i];
        if (d > best)
            best = d;
    }
    return best;
}

void *sdlk_graph_alloc_array(int64_t count, size_t elem_size, sdlk_error *err)
{
    if (count < 0 || (uint64_t)count > SIZE_MAX / elem_size / 2) {
        sdlk_error_set(err, SDLK_ERR_OVERFLOW, "array of %lld elements is too large",
                       (long long)count);
        return NULL;
    }
    void *p = malloc(count ? (size_t)count * elem_size : 1);
    if (!p)
        sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %lld elements", (long long)count);
    return p;
}

/* Entry k of the input as seen by the build: the COO's own entries, then (when
 * symmetrizing) the mirror of each off-diagonal entry, in the same order. */
typedef struct entry_stream {
    const sdlk_coo *coo;
    int64_t *mirror_of; /* [mirrored count]: COO index of each mirrored entry */
    int64_t mirrored;
} entry_stream;

/* Sort the entry stream into CSR with sorted columns: stable counting sort by column,
 * then stable counting sort by row (an LSD radix sort), so equal (row, col) pairs stay
 * in input order. */
static sdlk_status build_sorted_csr(const entry_stream *in, int64_t n, int with_values,
                                    sdlk_graph *g, sdlk_error *err)
{
    const sdlk_coo *coo = in->coo;
    int64_t m = coo->count + in->mirrored;
    int64_t *col_start = calloc((size_t)n + 1, sizeof(int64_t));
    int32_t *by_col_row = sdlk_graph_alloc_array(m, sizeof(int32_t), err);
    int32_t *by_col_col = sdlk_graph_alloc_array(m, sizeof(int32_t), err);
    float *by_col_value = with_values ? sdlk_graph_alloc_array(m, sizeof(float), err) : NULL;
    g->row_ptr = calloc((size_t)n + 1, sizeof(int64_t));
    g->col_idx = sdlk_graph_alloc_array(m, sizeof(int32_t), err);
    g->values = with_values ? sdlk_graph_alloc_array(m, sizeof(float), err) : NULL;
    sdlk_status st = SDLK_OK;
    if (!col_start || !by_col_row || !by_col_col || (with_values && !by_col_value) ||
        !g->row_ptr || !g->col_idx || (with_values && !g->values)) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory building a CSR of %lld edges",
                            (long long)m);
        goto done;
    }
    /* pass 1: by column. Mirrored entries swap row and column. */
    for (int64_t k = 0; k < coo->count; k++)
        col_start[coo->col[k] + 1]++;
    for (int64_t k = 0; k < in->mirrored; k++)
        col_start[coo->row[in->mirror_of[k]] + 1]++;
    for (int64_t c = 0; c < n; c++)
        col_start[c + 1] += col_start[c];
    for (int64_t k = 0; k < m; k++) {
        int64_t src = k < coo->count ? k : in->mirror_of[k - coo->count];
        int32_t r = coo->row[src], c = coo->col[src];
        if (k >= coo->count) {
            int32_t t = r;
            r = c;
            c = t;
        }
        int64_t pos = col_start[c]++;
        by_col_row[pos] = r;
        by_col_col[pos] = c;
        if (with_values)
            by_col_value[pos] = coo->value ? coo->value[src] : 1.0f;
    }
    /* pass 2: by row, stable, so columns end up ascending inside each row */
    for (int64_t k = 0; k < m; k++)
        g->row_ptr[by_col_row[k] + 1]++;
    for (int64_t r = 0; r < n; r++)
        g->row_ptr[r + 1] += g->row_ptr[r];
    int64_t *fill = col_start; /* reuse: next free slot of each row */
    memcpy(fill, g->row_ptr, (size_t)n * sizeof(int64_t));
    for (int64_t k = 0; k < m; k++) {
        int64_t pos = fill[by_col_row[k]]++;
        g->col_idx[pos] = by_col_col[k];
        if (with_values)
            g->values[pos] = by_col_value[k];
    }
    g->nodes = n;
    g->edges = m;
done:
    free(col_start);
    free(by_col_row);
    free(by_col_col);
    free(by_col_value);
    return st;
}

/* Merge repeated (row, col) entries in place (rows are sorted, so repeats are adjacent). */
static void merge_duplicates(sdlk_graph *g, sdlk_dup_policy policy)
{
    int64_t out = 0;
    int64_t row_begin = 0;
    for (int64_t r = 0; r < g->nodes; r++) {
        int64_t row_end = g->row_ptr[r + 1];
        int64_t row_out = out;
        for (int64_t k = row_begin; k < row_end; k++) {
            if (out > row_out && g->col_idx[out - 1] == g->col_idx[k]) {
                if (policy == SDLK_DUP_SUM && g->values)
                    g->values[out - 1] += g->values[k];
                continue;
            }
            g->col_idx[out] = g->col_idx[k];
            if (g->values)
                g->values[out] = g->values[k];
            out++;
        }
        row_begin = row_end;
        g->row_ptr[r + 1] = out;
    }
    g->edges = out;
}

static int row_has_diagonal(const sdlk_graph *g, int64_t r)
{
    for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++)
        if (g->col_idx[k] == r)
            return 1;
    return 0;
}

/* Insert (i, i, 1) into every row lacking a diagonal entry, keeping columns sorted. */
static sdlk_status add_missing_self_loops(sdlk_graph *g, sdlk_error *err)
{
    int64_t missing = 0;
    for (int64_t r = 0; r < g->nodes; r++)
        missing += !row_has_diagonal(g, r);
    if (missing == 0)
        return SDLK_OK;
    int64_t m = g->edges + missing;
    int64_t *row_ptr = calloc((size_t)g->nodes + 1, sizeof(int64_t));
    int32_t *col_idx = sdlk_graph_alloc_array(m, sizeof(int32_t), err);
    float *values = g->values ? sdlk_graph_alloc_array(m, sizeof(float), err) : NULL;
    if (!row_ptr || !col_idx || (g->values && !values)) {
        free(row_ptr);
        free(col_idx);
        free(values);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory adding self-loops");
    }
    int64_t out = 0;
    for (int64_t r = 0; r < g->nodes; r++) {
        int need = !row_has_diagonal(g, r);
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++) {
            if (need && g->col_idx[k] > r) {
                col_idx[out] = (int32_t)r;
                if (values)
                    values[out] = 1.0f;
                out++;
                need = 0;
            }
            col_idx[out] = g->col_idx[k];
            if (values)
                values[out] = g->values[k];
            out++;
        }
        if (need) {
            col_idx[out] = (int32_t)r;
            if (values)
                values[out] = 1.0f;
            out++;
        }
        row_ptr[r + 1] = out;
    }
    free(g->row_ptr);
    free(g->col_idx);
    free(g->values);
    g->row_ptr = row_ptr;
    g->col_idx = col_idx;
    g->values = values;
    g->edges = m;
    return SDLK_OK;
}

/* values <- D^-1/2 A D^-1/2 with D the row sums (self-loops already present). */
static sdlk_status gcn_normalize(sdlk_graph *g, sdlk_error *err)
{
    if (!g->values) {
        g->values = sdlk_graph_alloc_array(g->edges, sizeof(float), err);
        if (!g->values)
            return err ? err->code : SDLK_ERR_NOMEM;
        for (int64_t k = 0; k < g->edges; k++)
            g->values[k] = 1.0f;
    }
    double *inv_sqrt_degree = sdlk_graph_alloc_array(g->nodes, sizeof(double), err);
    if (!inv_sqrt_degree)
        return err ? err->code : SDLK_ERR_NOMEM;
    for (int64_t r = 0; r < g->nodes; r++) {
        double sum = 0;
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++)
            sum += g->values[k];
        inv_sqrt_degree[r] = sum > 0 ? 1.0 / sqrt(sum) : 0.0;
    }
    for (int64_t r = 0; r < g->nodes; r++)
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++)
            g->values[k] = (float)(g->values[k] * inv_sqrt_degree[r] *
                                   inv_sqrt_degree[g->col_idx[k]]);
    free(inv_sqrt_degree);
    return SDLK_OK;
}

sdlk_status sdlk_graph_from_coo(const sdlk_coo *coo, const sdlk_graph_options *opts,
                                sdlk_graph *out, sdlk_error *err)
{
    static const sdlk_graph_options no_options = {0};
    if (!opts)
        opts = &no_options;
    sdlk_graph_init(out);
    if (coo->rows != coo->cols)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "adjacency must be square, got %lld x %lld", (long long)coo->rows,
                              (long long)coo->cols);
    if (coo->rows > INT32_MAX)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%lld nodes: more than 2^31-1 nodes is not supported",
                              (long long)coo->rows);
    entry_stream in = {coo, NULL, 0};
    if (opts->symmetrize) {
        for (int64_t k = 0; k < coo->count; k++)
            in.mirrored += coo->row[k] != coo->col[k];
        in.mirror_of = sdlk_graph_alloc_array(in.mirrored, sizeof(int64_t), err);
        if (!in.mirror_of)
            return err ? err->code : SDLK_ERR_NOMEM;
        int64_t j = 0;
        for (int64_t k = 0; k < coo->count; k++)
            if (coo->row[k] != coo->col[k])
                in.mirror_of[j++] = k;
    }
    int with_values = coo->value != NULL || opts->duplicates == SDLK_DUP_SUM;
    sdlk_status st = build_sorted_csr(&in, coo->rows, with_values, out, err);
    free(in.mirror_of);
    if (st == SDLK_OK && opts->duplicates != SDLK_DUP_KEEP)
        merge_duplicates(out, opts->duplicates);
    if (st == SDLK_OK && (opts->self_loops || opts->gcn_normalize))
        st = add_missing_self_loops(out, err);
    if (st == SDLK_OK && opts->gcn_normalize)
        st = gcn_normalize(out, err);
    if (st == SDLK_OK && coo->node_ids) {
        out->node_ids = sdlk_graph_alloc_array(coo->rows, sizeof(int64_t), err);
        if (!out->node_ids)
            st = err ? err->code : SDLK_ERR_NOMEM;
        else
            memcpy(out->node_ids, coo->node_ids, (size_t)coo->rows * sizeof(int64_t));
    }
    if (st)
        sdlk_graph_free(out);
    return st;
}

sdlk_status sdlk_graph_from_csr(int64_t nodes, int64_t edges, const int64_t *row_ptr,
                                const int32_t *col_idx, const float *values, const char *name,
                                sdlk_graph *out, sdlk_error *err)
{
    sdlk_graph_init(out);
    if (nodes < 0 || edges < 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: negative size", name);
    if (nodes > INT32_MAX)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s: %lld nodes: more than 2^31-1 nodes is not supported", name,
                              (long long)nodes);
    if (row_ptr[0] != 0 || row_ptr[nodes] != edges)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: row pointers run from %lld to %lld, expected 0 to %lld", name,
                              (long long)row_ptr[0], (long long)row_ptr[nodes], (long long)edges);
    for (int64_t r = 0; r < nodes; r++)
        if (row_ptr[r + 1] < row_ptr[r])
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: row pointer %lld decreases", name,
                                  (long long)(r + 1));
    for (int64_t k = 0; k < edges; k++)
        if (col_idx[k] < 0 || col_idx[k] >= nodes)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: column index %lld at position %lld outside 0..%lld", name,
                                  (long long)col_idx[k], (long long)k, (long long)(nodes - 1));
    out->row_ptr = sdlk_graph_alloc_array(nodes + 1, sizeof(int64_t), err);
    out->col_idx = sdlk_graph_alloc_array(edges, sizeof(int32_t), err);
    out->values = values ? sdlk_graph_alloc_array(edges, sizeof(float), err) : NULL;
    if (!out->row_ptr || !out->col_idx || (values && !out->values)) {
        sdlk_graph_free(out);
        return err ? err->code : SDLK_ERR_NOMEM;
    }
    memcpy(out->row_ptr, row_ptr, (size_t)(nodes + 1) * sizeof(int64_t));
    memcpy(out->col_idx, col_idx, (size_t)edges * sizeof(int32_t));
    if (values)
        memcpy(out->values, values, (size_t)edges * sizeof(float));
    out->nodes = nodes;
    out->edges = edges;
    return SDLK_OK;
}
