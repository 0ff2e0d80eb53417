/* snap.c -- SNAP edge lists (ids with gaps, remapped) and the format dispatcher. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/file.h"
#include "graph/graph.h"
#include "graph/graph_internal.h"

typedef struct raw_edges {
    int64_t *src, *dst;
    float *weight; /* NULL when the file has two columns */
    int64_t count, capacity;
} raw_edges;

static sdlk_status raw_push(raw_edges *e, int64_t src, int64_t dst, float weight, int weighted,
                            sdlk_error *err)
{
    if (e->count == e->capacity) {
        int64_t grown = e->capacity < 4096 ? 4096 : e->capacity * 2;
        int64_t *s = realloc(e->src, (size_t)grown * sizeof(int64_t));
        if (s)
            e->src = s;
        int64_t *d = realloc(e->dst, (size_t)grown * sizeof(int64_t));
        if (d)
            e->dst = d;
        float *w = weighted ? realloc(e->weight, (size_t)grown * sizeof(float)) : NULL;
        if (w)
            e->weight = w;
        if (!s || !d || (weighted && !w))
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %lld edges",
                                  (long long)grown);
        e->capacity = grown;
    }
    e->src[e->count] = src;
    e->dst[e->count] = dst;
    if (weighted)
        e->weight[e->count] = weight;
    e->count++;
    return SDLK_OK;
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Index of `id` in the sorted distinct array `ids` (present by construction). */
static int64_t find_id(const int64_t *ids, int64_t n, int64_t id)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Renumber the ids of `e` to 0..N-1 in increasing order of original id. A dense lookup
 * table when the largest id is small relative to the edge count (O(E + max id)), a
 * sort and binary searches otherwise (O(E log E)). */
static sdlk_status remap_ids(const raw_edges *e, const char *name, sdlk_coo *out, sdlk_error *err)
{
    int64_t max_id = -1;
    for (int64_t k = 0; k < e->count; k++) {
        if (e->src[k] > max_id)
            max_id = e->src[k];
        if (e->dst[k] > max_id)
            max_id = e->dst[k];
    }
    int64_t nodes = 0;
    int64_t *ids = NULL;
    if (max_id < 4 * e->count + (1 << 20)) {
        int64_t *new_id = sdlk_graph_alloc_array(max_id + 1, sizeof(int64_t), err);
        if (!new_id)
            return err ? err->code : SDLK_ERR_NOMEM;
        for (int64_t i = 0; i <= max_id; i++)
            new_id[i] = -1;
        for (int64_t k = 0; k < e->count; k++)
            new_id[e->src[k]] = new_id[e->dst[k]] = 0;
        for (int64_t i = 0; i <= max_id; i++)
            nodes += new_id[i] == 0;
        ids = sdlk_graph_alloc_array(nodes, sizeof(int64_t), err);
        if (!ids || nodes > INT32_MAX) {
            free(new_id);
            free(ids);
            return ids ? sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                                        "%s: %lld nodes: more than 2^31-1 is not supported", name,
                                        (long long)nodes)
                       : (err ? err->code : SDLK_ERR_NOMEM);
        }
        int64_t next = 0;
        for (int64_t i = 0; i <= max_id; i++)
            if (new_id[i] == 0) {
                ids[next] = i;
                new_id[i] = next++;
            }
        for (int64_t k = 0; k < e->count; k++) {
            out->row[k] = (int32_t)new_id[e->src[k]];
            out->col[k] = (int32_t)new_id[e->dst[k]];
        }
        free(new_id);
    } else {
        ids = sdlk_graph_alloc_array(2 * e->count, sizeof(int64_t), err);
        if (!ids)
            return err ? err->code : SDLK_ERR_NOMEM;
        memcpy(ids, e->src, (size_t)e->count * sizeof(int64_t));
        memcpy(ids + e->count, e->dst, (size_t)e->count * sizeof(int64_t));
        qsort(ids, (size_t)(2 * e->count), sizeof(int64_t), compare_int64);
        for (int64_t i = 0; i < 2 * e->count; i++)
            if (nodes == 0 || ids[nodes - 1] != ids[i])
                ids[nodes++] = ids[i];
        if (nodes > INT32_MAX) {
            free(ids);
            return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                                  "%s: %lld nodes: more than 2^31-1 is not supported", name,
                                  (long long)nodes);
        }
        for (int64_t k = 0; k < e->count; k++) {
            out->row[k] = (int32_t)find_id(ids, nodes, e->src[k]);
            out->col[k] = (int32_t)find_id(ids, nodes, e->dst[k]);
        }
    }
    out->rows = out->cols = nodes;
    out->count = e->count;
    out->node_ids = ids;
    return SDLK_OK;
}

sdlk_status sdlk_snap_read(const char *path, sdlk_coo *out, sdlk_error *err)
{
    sdlk_line_reader lr;
    raw_edges raw = {0};
    int weighted = -1; /* unknown until the first edge line */
    sdlk_coo_free(out);
    sdlk_status st = sdlk_line_reader_open(&lr, path, err);
    if (st)
        return st;
    while ((st = sdlk_line_reader_next(&lr, err)) == SDLK_OK) {
        const char *p = sdlk_skip_blanks(lr.line);
        if (*p == '#' || *p == '%' || *p == '\0')
            continue;
        int64_t src, dst;
        float weight = 1.0f;
        if (!sdlk_parse_int64(&p, &src) || !sdlk_parse_int64(&p, &dst)) {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s:%lld: expected 'source target' node ids, got '%.60s'", path,
                                (long long)lr.line_number, lr.line);
            break;
        }
        if (src < 0 || dst < 0) {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:%lld: negative node id", path,
                                (long long)lr.line_number);
            break;
        }
        int has_weight = *sdlk_skip_blanks(p) != '\0';
        if (has_weight && !sdlk_parse_f32(&p, &weight)) {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s:%lld: third field is not a finite f32 number: '%.40s'", path,
                                (long long)lr.line_number, sdlk_skip_blanks(p));
            break;
        }
        if (*sdlk_skip_blanks(p) != '\0') {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:%lld: more than 3 fields", path,
                                (long long)lr.line_number);
            break;
        }
        if (weighted < 0)
            weighted = has_weight;
        if (weighted != has_weight) {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s:%lld: %s a weight, unlike the first edge line", path,
                                (long long)lr.line_number, has_weight ? "has" : "lacks");
            break;
        }
        if ((st = raw_push(&raw, src, dst, weight, weighted, err)))
            break;
    }
    if (st == SDLK_ERR_EOF)
        st = SDLK_OK;
    sdlk_line_reader_close(&lr);
    if (st == SDLK_OK) {
        out->rows = out->cols = 1; /* let reserve run; remap sets the real size */
        st = sdlk_coo_reserve(out, raw.count, weighted > 0, err);
    }
    if (st == SDLK_OK)
        st = remap_ids(&raw, path, out, err);
    if (st == SDLK_OK && weighted > 0)
        memcpy(out->value, raw.weight, (size_t)raw.count * sizeof(float));
    free(raw.src);
    free(raw.dst);
    free(raw.weight);
    if (st)
        sdlk_coo_free(out);
    return st;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

sdlk_status sdlk_graph_read(const char *path, sdlk_graph_format format,
                            const sdlk_graph_options *opts, sdlk_graph *out, sdlk_error *err)
{
    if (format == SDLK_GRAPH_AUTO)
        format = has_suffix(path, ".mtx") || has_suffix(path, ".mtx.gz") ? SDLK_GRAPH_MTX
                 : has_suffix(path, ".npz")                              ? SDLK_GRAPH_NPZ
                                                                         : SDLK_GRAPH_SNAP;
    sdlk_graph_init(out);
    if (format == SDLK_GRAPH_NPZ) {
        static const sdlk_graph_options none = {0};
        sdlk_graph raw;
        sdlk_status st = sdlk_npz_graph_read(path, &raw, err);
        if (st || !opts || !memcmp(opts, &none, sizeof none)) {
            *out = raw;
            return st;
        }
        /* options go through the COO builder; O(nnz) extra, as for the text formats */
        sdlk_coo coo;
        sdlk_coo_init(&coo);
        coo.rows = coo.cols = raw.nodes;
        st = sdlk_coo_reserve(&coo, raw.edges, raw.values != NULL, err);
        for (int64_t r = 0; st == SDLK_OK && r < raw.nodes; r++)
            for (int64_t k = raw.row_ptr[r]; k < raw.row_ptr[r + 1]; k++) {
                coo.row[coo.count] = (int32_t)r;
                coo.col[coo.count] = raw.col_idx[k];
                if (raw.values)
                    coo.value[coo.count] = raw.values[k];
                coo.count++;
            }
        sdlk_graph_free(&raw);
        if (st == SDLK_OK)
            st = sdlk_graph_from_coo(&coo, opts, out, err);
        sdlk_coo_free(&coo);
        return st;
    }
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    sdlk_status st = format == SDLK_GRAPH_MTX ? sdlk_mtx_read(path, 1, &coo, NULL, err)
                                              : sdlk_snap_read(path, &coo, err);
    if (st == SDLK_OK) {
        st = sdlk_graph_from_coo(&coo, opts, out, err);
        if (st)
            sdlk_error_prefix(err, "%s", path);
    }
    sdlk_coo_free(&coo);
    return st;
}
