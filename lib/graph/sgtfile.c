/* sgtfile.c -- the condensed graph file (see sgtfile.h for the layout). */
#include "graph/sgtfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/tensorset.h"
#include "graph/graph_internal.h"
#include "io/safetensors.h"
#include "io/tensorio.h"

/* ---- writing --------------------------------------------------------------------- */

/* Add a borrowed 1-d view of `data` (count elements) to the set. */
static sdlk_status add_array(sdlk_tensor_set *set, const char *name, sdlk_dtype dtype,
                             const void *data, int64_t count, sdlk_error *err)
{
    static uint8_t empty[8];
    sdlk_tensor t;
    int64_t shape[1] = {count};
    sdlk_status st = sdlk_tensor_borrow(&t, dtype, 1, shape, data ? (void *)data : empty, err);
    if (st == SDLK_OK)
        st = sdlk_tensor_set_add(set, name, &t, err);
    return st;
}

static sdlk_status add_meta_int(sdlk_tensor_set *set, const char *key, int64_t value,
                                sdlk_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, value);
    return sdlk_tensor_set_meta_set(set, key, text, err);
}

sdlk_status sdlk_sgt_file_write(FILE *fp, const sdlk_graph *g, const sdlk_sgt *sgt,
                                const sdlk_sgt_file_info *info, const char *name,
                                sdlk_error *err)
{
    if (sgt->nodes != g->nodes || sgt->edges != g->edges)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: the translation (%lld nodes, %lld edges) is not of this "
                              "graph (%lld, %lld)",
                              name, (long long)sgt->nodes, (long long)sgt->edges,
                              (long long)g->nodes, (long long)g->edges);
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    const char *perm_name = info && info->permutation[0] ? info->permutation
                            : g->perm                    ? "degree"
                                                         : "none";
    int64_t E = g->edges;
    sdlk_status st = sdlk_tensor_set_meta_set(&set, "sdl.format", SDLK_SGT_FILE_FORMAT, err);
    if (!st) st = sdlk_tensor_set_meta_set(&set, "sdl.sgt.version", "1", err);
    if (!st) st = add_meta_int(&set, "sdl.sgt.nodes", g->nodes, err);
    if (!st) st = add_meta_int(&set, "sdl.sgt.edges", E, err);
    if (!st) st = add_meta_int(&set, "sdl.sgt.window_height", sgt->window_height, err);
    if (!st) st = add_meta_int(&set, "sdl.sgt.tile_width", sgt->tile_width, err);
    if (!st) st = add_meta_int(&set, "sdl.sgt.windows", sgt->window_count, err);
    if (!st) st = add_meta_int(&set, "sdl.sgt.tiles", sgt->tile_count, err);
    if (!st) st = add_meta_int(&set, "sdl.sgt.distinct", sgt->distinct, err);
    if (!st) st = add_meta_int(&set, "sdl.sgt.naive_tiles", sgt->naive_tile_count, err);
    if (!st) st = sdlk_tensor_set_meta_set(&set, "sdl.sgt.permutation", g->perm ? perm_name : "none", err);
    if (!st) st = sdlk_tensor_set_meta_set(&set, "sdl.sgt.values", g->values ? "f32" : "pattern", err);
    if (!st) st = sdlk_tensor_set_meta_set(&set, "sdl.sgt.prepared", info ? info->prepared : "", err);
    if (!st) st = sdlk_tensor_set_meta_set(&set, "sdl.sgt.source", info ? info->source : "", err);

    if (!st) st = add_array(&set, "row_ptr", SDLK_I64, g->row_ptr, g->nodes + 1, err);
    if (!st) st = add_array(&set, "col_idx", SDLK_I32, g->col_idx, E, err);
    if (!st && g->values) st = add_array(&set, "values", SDLK_F32, g->values, E, err);
    if (!st) st = add_array(&set, "window_col_ptr", SDLK_I64, sgt->window_col_ptr, sgt->window_count + 1, err);
    if (!st) st = add_array(&set, "window_cols", SDLK_I32, sgt->window_cols, sgt->distinct, err);
    if (!st) st = add_array(&set, "window_tile_ptr", SDLK_I64, sgt->window_tile_ptr, sgt->window_count + 1, err);
    if (!st) st = add_array(&set, "tile_nz_ptr", SDLK_I64, sgt->tile_nz_ptr, sgt->tile_count + 1, err);
    if (!st) st = add_array(&set, "column_nz_ptr", SDLK_I64, sgt->column_nz_ptr, sgt->distinct + 1, err);
    if (!st) st = add_array(&set, "tile_nz_row", SDLK_U8, sgt->tile_nz_row, E, err);
    if (!st) st = add_array(&set, "tile_nz_col", SDLK_U8, sgt->tile_nz_col, E, err);
    if (!st) st = add_array(&set, "tile_nz_value", SDLK_F32, sgt->tile_nz_value, E, err);
    if (!st) st = add_array(&set, "tile_nz_edge", SDLK_I64, sgt->tile_nz_edge, E, err);
    if (!st) st = add_array(&set, "edge_condensed_col", SDLK_I32, sgt->edge_condensed_col, E, err);
    if (!st && g->perm) st = add_array(&set, "perm", SDLK_I64, g->perm, g->nodes, err);
    if (!st && g->node_ids) st = add_array(&set, "node_ids", SDLK_I64, g->node_ids, g->nodes, err);
    if (!st)
        st = sdlk_safetensors_write(fp, &set, name, err);
    sdlk_tensor_set_free(&set);
    return st;
}

/* ---- reading --------------------------------------------------------------------- */

#define BAD(...) sdlk_error_set(err, SDLK_ERR_FORMAT, __VA_ARGS__)

static sdlk_status meta_int(const sdlk_tensor_set *set, const char *key, int64_t min,
                            int64_t max, int64_t *out, const char *name, sdlk_error *err)
{
    const char *v = sdlk_tensor_set_meta_get(set, key);
    if (!v)
        return BAD("%s: metadata lacks '%s'", name, key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max)
        return BAD("%s: metadata '%s' is '%s', not a whole number from %lld to %lld", name, key,
                   v, (long long)min, (long long)max);
    *out = x;
    return SDLK_OK;
}

/* The tensor `key` as a contiguous 1-d array of `dtype` and `count` elements (or NULL
 * with an error). `optional`: a missing tensor is not an error (returns NULL, no error). */
static const void *array_of(const sdlk_tensor_set *set, const char *key, sdlk_dtype dtype,
                            int64_t count, int optional, const char *name, sdlk_error *err)
{
    const sdlk_tensor *t = sdlk_tensor_set_find(set, key);
    if (!t) {
        if (!optional)
            BAD("%s: no '%s' array: not a complete condensed graph file", name, key);
        return NULL;
    }
    if (t->dtype != dtype || t->ndim != 1 || !sdlk_tensor_is_contiguous(t)) {
        BAD("%s: array '%s' is %s with %d dimensions, expected 1-d %s", name, key,
            sdlk_dtype_name(t->dtype), t->ndim, sdlk_dtype_name(dtype));
        return NULL;
    }
    if (t->shape[0] != count) {
        BAD("%s: array '%s' has %lld entries, the metadata implies %lld", name, key,
            (long long)t->shape[0], (long long)count);
        return NULL;
    }
    return t->data;
}

/* malloc'd copy of `count` elements of `size` bytes (an empty array gets one byte). */
static void *copy_array(const void *src, int64_t count, size_t size, sdlk_error *err)
{
    void *dst = sdlk_graph_alloc_array(count > 0 ? count : 1, size, err);
    if (dst && count > 0)
        memcpy(dst, src, (size_t)count * size);
    return dst;
}

static sdlk_status fill_sgt(const sdlk_tensor_set *set, const int64_t *m, sdlk_sgt *s,
                            const char *name, sdlk_error *err)
{
    /* m: nodes, edges, H, W, windows, tiles, distinct */
    int64_t E = m[1], windows = m[4], tiles = m[5], distinct = m[6];
    const void *a[10];
    a[0] = array_of(set, "window_col_ptr", SDLK_I64, windows + 1, 0, name, err);
    a[1] = a[0] ? array_of(set, "window_cols", SDLK_I32, distinct, 0, name, err) : NULL;
    a[2] = a[1] ? array_of(set, "window_tile_ptr", SDLK_I64, windows + 1, 0, name, err) : NULL;
    a[3] = a[2] ? array_of(set, "tile_nz_ptr", SDLK_I64, tiles + 1, 0, name, err) : NULL;
    a[4] = a[3] ? array_of(set, "column_nz_ptr", SDLK_I64, distinct + 1, 0, name, err) : NULL;
    a[5] = a[4] ? array_of(set, "tile_nz_row", SDLK_U8, E, 0, name, err) : NULL;
    a[6] = a[5] ? array_of(set, "tile_nz_col", SDLK_U8, E, 0, name, err) : NULL;
    a[7] = a[6] ? array_of(set, "tile_nz_value", SDLK_F32, E, 0, name, err) : NULL;
    a[8] = a[7] ? array_of(set, "tile_nz_edge", SDLK_I64, E, 0, name, err) : NULL;
    a[9] = a[8] ? array_of(set, "edge_condensed_col", SDLK_I32, E, 0, name, err) : NULL;
    if (!a[9])
        return err ? err->code : SDLK_ERR_FORMAT;
    s->nodes = m[0];
    s->edges = E;
    s->window_height = (int)m[2];
    s->tile_width = (int)m[3];
    s->window_count = windows;
    s->tile_count = tiles;
    s->distinct = distinct;
    s->window_col_ptr = copy_array(a[0], windows + 1, sizeof(int64_t), err);
    s->window_cols = copy_array(a[1], distinct, sizeof(int32_t), err);
    s->window_tile_ptr = copy_array(a[2], windows + 1, sizeof(int64_t), err);
    s->tile_nz_ptr = copy_array(a[3], tiles + 1, sizeof(int64_t), err);
    s->column_nz_ptr = copy_array(a[4], distinct + 1, sizeof(int64_t), err);
    s->tile_nz_row = copy_array(a[5], E, 1, err);
    s->tile_nz_col = copy_array(a[6], E, 1, err);
    s->tile_nz_value = copy_array(a[7], E, sizeof(float), err);
    s->tile_nz_edge = copy_array(a[8], E, sizeof(int64_t), err);
    s->edge_condensed_col = copy_array(a[9], E, sizeof(int32_t), err);
    if (!s->window_col_ptr || !s->window_cols || !s->window_tile_ptr || !s->tile_nz_ptr ||
        !s->column_nz_ptr || !s->tile_nz_row || !s->tile_nz_col || !s->tile_nz_value ||
        !s->tile_nz_edge || !s->edge_condensed_col)
        return err ? err->code : SDLK_ERR_NOMEM;
    return SDLK_OK;
}

/* Tiles without SGT: distinct (window, column / W) blocks. window_cols is sorted per
 * window (checked by sdlk_sgt_validate first), so equal blocks are adjacent. O(distinct). */
static int64_t count_naive_tiles(const sdlk_sgt *s)
{
    int64_t naive = 0;
    for (int64_t w = 0; w < s->window_count; w++) {
        int64_t last = -1;
        for (int64_t u = s->window_col_ptr[w]; u < s->window_col_ptr[w + 1]; u++) {
            int64_t block = s->window_cols[u] / s->tile_width;
            naive += block != last;
            last = block;
        }
    }
    return naive;
}

static void copy_meta(const sdlk_tensor_set *set, const char *key, char *buf, size_t size)
{
    const char *v = sdlk_tensor_set_meta_get(set, key);
    snprintf(buf, size, "%s", v ? v : "");
}

sdlk_status sdlk_sgt_file_read(const char *path, sdlk_graph *g, sdlk_sgt *sgt,
                               sdlk_sgt_file_info *info, sdlk_error *err)
{
    sdlk_graph_init(g);
    sdlk_sgt_init(sgt);
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_tensor_format format = SDLK_FORMAT_UNKNOWN;
    sdlk_status st = sdlk_tensors_load(path, &set, &format, err);
    if (st)
        goto done;
    const char *kind = sdlk_tensor_set_meta_get(&set, "sdl.format");
    if (format != SDLK_FORMAT_SAFETENSORS || !kind || strcmp(kind, SDLK_SGT_FILE_FORMAT) != 0) {
        st = BAD("%s: not a condensed graph file (no sdl.format '%s' metadata; make one with "
                 "sdl-gnn-condense)", path, SDLK_SGT_FILE_FORMAT);
        goto done;
    }
    const char *version = sdlk_tensor_set_meta_get(&set, "sdl.sgt.version");
    if (!version || strcmp(version, "1") != 0) {
        st = sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: condensed graph file version '%s'",
                            path, version ? version : "(none)");
        goto done;
    }
    /* nodes, edges, H, W, windows, tiles, distinct, naive */
    static const char *keys[8] = {"sdl.sgt.nodes", "sdl.sgt.edges", "sdl.sgt.window_height",
                                  "sdl.sgt.tile_width", "sdl.sgt.windows", "sdl.sgt.tiles",
                                  "sdl.sgt.distinct", "sdl.sgt.naive_tiles"};
    int64_t m[8];
    for (int i = 0; i < 8 && !st; i++)
        st = meta_int(&set, keys[i], i == 2 || i == 3 ? 1 : 0,
                      i == 0 ? INT32_MAX : i == 2 || i == 3 ? 256 : INT64_MAX / 16, &m[i], path,
                      err);
    if (st)
        goto done;
    if (m[4] != (m[0] + m[2] - 1) / m[2]) {
        st = BAD("%s: metadata says %lld windows, %lld nodes in windows of %lld need %lld", path,
                 (long long)m[4], (long long)m[0], (long long)m[2],
                 (long long)((m[0] + m[2] - 1) / m[2]));
        goto done;
    }
    const char *value_kind = sdlk_tensor_set_meta_get(&set, "sdl.sgt.values");
    int pattern = value_kind && strcmp(value_kind, "pattern") == 0;
    if (!value_kind || (!pattern && strcmp(value_kind, "f32") != 0)) {
        st = BAD("%s: metadata 'sdl.sgt.values' is '%s', expected 'pattern' or 'f32'", path,
                 value_kind ? value_kind : "(missing)");
        goto done;
    }
    const int64_t *row_ptr = array_of(&set, "row_ptr", SDLK_I64, m[0] + 1, 0, path, err);
    const int32_t *col_idx = row_ptr ? array_of(&set, "col_idx", SDLK_I32, m[1], 0, path, err)
                                     : NULL;
    const float *values = col_idx && !pattern
                              ? array_of(&set, "values", SDLK_F32, m[1], 0, path, err)
                              : NULL;
    if (!col_idx || (!pattern && !values)) {
        st = err ? err->code : SDLK_ERR_FORMAT;
        goto done;
    }
    if (pattern && sdlk_tensor_set_find(&set, "values")) {
        st = BAD("%s: a pattern graph with a 'values' array", path);
        goto done;
    }
    static const int32_t no_columns[1];
    static const int64_t no_rows[1];
    if ((st = sdlk_graph_from_csr(m[0], m[1], row_ptr ? row_ptr : no_rows,
                                  col_idx ? col_idx : no_columns, values, path, g, err)))
        goto done;
    if ((st = fill_sgt(&set, m, sgt, path, err)) || (st = sdlk_sgt_validate(sgt, g, path, err)))
        goto done;
    sgt->naive_tile_count = count_naive_tiles(sgt);
    if (sgt->naive_tile_count != m[7]) {
        st = BAD("%s: metadata says %lld naive tiles, the arrays give %lld", path,
                 (long long)m[7], (long long)sgt->naive_tile_count);
        goto done;
    }
    const int64_t *perm = array_of(&set, "perm", SDLK_I64, m[0], 1, path, err);
    const int64_t *node_ids = array_of(&set, "node_ids", SDLK_I64, m[0], 1, path, err);
    if (err && err->code) {
        st = err->code;
        goto done;
    }
    const char *perm_kind = sdlk_tensor_set_meta_get(&set, "sdl.sgt.permutation");
    int says_perm = perm_kind && strcmp(perm_kind, "none") != 0;
    if (says_perm != (perm != NULL)) {
        st = BAD("%s: metadata permutation '%s' but %s 'perm' array", path,
                 perm_kind ? perm_kind : "(missing)", perm ? "a" : "no");
        goto done;
    }
    if (perm) {
        uint8_t *seen = calloc((size_t)(m[0] ? m[0] : 1), 1);
        if (!seen) {
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        for (int64_t i = 0; i < m[0] && !st; i++) {
            if (perm[i] < 0 || perm[i] >= m[0] || seen[perm[i]])
                st = BAD("%s: 'perm' is not a permutation of 0..%lld (entry %lld)", path,
                         (long long)m[0] - 1, (long long)i);
            else
                seen[perm[i]] = 1;
        }
        free(seen);
        if (st)
            goto done;
        if (!(g->perm = copy_array(perm, m[0], sizeof(int64_t), err))) {
            st = err ? err->code : SDLK_ERR_NOMEM;
            goto done;
        }
    }
    if (node_ids && !(g->node_ids = copy_array(node_ids, m[0], sizeof(int64_t), err))) {
        st = err ? err->code : SDLK_ERR_NOMEM;
        goto done;
    }
    if (info) {
        copy_meta(&set, "sdl.sgt.permutation", info->permutation, sizeof info->permutation);
        copy_meta(&set, "sdl.sgt.prepared", info->prepared, sizeof info->prepared);
        copy_meta(&set, "sdl.sgt.source", info->source, sizeof info->source);
    }
done:
    sdlk_tensor_set_free(&set);
    if (st) {
        sdlk_graph_free(g);
        sdlk_sgt_free(sgt);
    }
    return st;
}

int sdlk_sgt_file_probe(const char *path)
{
    if (sdlk_path_is_stdio(path))
        return 0;
    char ext[16];
    sdlk_path_extension(path, ext, sizeof ext);
    if (strcmp(ext, "safetensors") == 0 || strcmp(ext, "st") == 0)
        return 1;
    if (strcmp(ext, "mtx") == 0 || strcmp(ext, "gz") == 0 || strcmp(ext, "npz") == 0)
        return 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    uint8_t head[16];
    size_t got = fread(head, 1, sizeof head, fp);
    fclose(fp);
    return sdlk_tensor_format_sniff(head, got) == SDLK_FORMAT_SAFETENSORS;
}

sdlk_status sdlk_graph_load_any(const char *path, const sdlk_graph_options *opts,
                                sdlk_graph *g, sdlk_sgt *sgt, int *condensed,
                                sdlk_sgt_file_info *info, sdlk_error *err)
{
    if (info)
        memset(info, 0, sizeof *info);
    sdlk_sgt_init(sgt);
    *condensed = sdlk_sgt_file_probe(path);
    if (!*condensed)
        return sdlk_graph_read(path, SDLK_GRAPH_AUTO, opts, g, err);
    sdlk_graph_init(g);
    if (opts && (opts->symmetrize || opts->self_loops || opts->gcn_normalize ||
                 opts->duplicates != SDLK_DUP_KEEP))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s is a condensed graph: its edges were prepared when it was "
                              "made (sdl-gnn-condense options), they cannot change here",
                              path);
    return sdlk_sgt_file_read(path, g, sgt, info, err);
}
