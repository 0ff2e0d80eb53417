/* gnn.c -- GCN and AGNN forward passes (see gnn.h). */
#include "graph/gnn.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/timer.h"
#include "io/npy.h"
#include "io/tensorio.h"
#include "graph/graph_internal.h"

sdlk_status sdlk_gnn_kind_parse(const char *name, sdlk_gnn_kind *out, sdlk_error *err)
{
    if (strcmp(name, "gcn") == 0)
        *out = SDLK_GNN_GCN;
    else if (strcmp(name, "agnn") == 0)
        *out = SDLK_GNN_AGNN;
    else
        return sdlk_error_set(err, SDLK_ERR_ARG, "unknown model '%s' (gcn or agnn)", name);
    return SDLK_OK;
}

const char *sdlk_gnn_kind_name(sdlk_gnn_kind kind)
{
    return kind == SDLK_GNN_AGNN ? "agnn" : "gcn";
}

void sdlk_gnn_model_init(sdlk_gnn_model *m)
{
    memset(m, 0, sizeof *m);
}

void sdlk_gnn_model_free(sdlk_gnn_model *m)
{
    for (int l = 0; l < m->layers; l++) {
        free(m->layer[l].weight);
        free(m->layer[l].bias);
    }
    sdlk_gnn_model_init(m);
}

static sdlk_status check_widths(int layers, int64_t in_dim, int64_t hidden, int64_t out_dim,
                                sdlk_error *err)
{
    if (layers < 1 || layers > SDLK_GNN_MAX_LAYERS)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%d layers: must be 1..%d", layers,
                              SDLK_GNN_MAX_LAYERS);
    if (in_dim < 1 || hidden < 1 || out_dim < 1 || in_dim > (1 << 24) || hidden > (1 << 24) ||
        out_dim > (1 << 24))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "layer widths %lld -> %lld -> %lld must be 1..2^24",
                              (long long)in_dim, (long long)hidden, (long long)out_dim);
    return SDLK_OK;
}

sdlk_status sdlk_gnn_model_random(sdlk_gnn_model *m, sdlk_gnn_kind kind, int layers,
                                  int64_t in_dim, int64_t hidden, int64_t out_dim,
                                  uint64_t seed, sdlk_error *err)
{
    sdlk_gnn_model_init(m);
    sdlk_status st = check_widths(layers, in_dim, hidden, out_dim, err);
    if (st)
        return st;
    m->kind = kind;
    uint64_t state = seed;
    for (int l = 0; l < layers; l++) {
        sdlk_gnn_layer *ly = &m->layer[l];
        ly->in = l == 0 ? in_dim : hidden;
        ly->out = l == layers - 1 ? out_dim : hidden;
        ly->beta = 1.0f;
        ly->weight = sdlk_graph_alloc_array(ly->in * ly->out, sizeof(float), err);
        m->layers = l + 1;
        if (!ly->weight) {
            sdlk_gnn_model_free(m);
            return err ? err->code : SDLK_ERR_NOMEM;
        }
        double limit = sqrt(6.0 / (double)(ly->in + ly->out));
        for (int64_t i = 0; i < ly->in * ly->out; i++) {
            double u = sdlk_rng_unit(&state); /* [0, 1) */
            ly->weight[i] = (float)((2.0 * u - 1.0) * limit);
        }
    }
    return SDLK_OK;
}

/* A real tensor of `numel` elements as a malloc'd f32 array; non-finite values refused. */
static float *tensor_to_f32(const sdlk_tensor *t, const char *tensor, const char *name,
                            sdlk_error *err)
{
    sdlk_tensor f;
    sdlk_tensor_init(&f);
    if (!sdlk_dtype_is_float(t->dtype) && t->dtype != SDLK_BOOL &&
        (t->dtype < SDLK_U8 || t->dtype > SDLK_I64)) {
        sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: '%s' is %s, not a real number type", name,
                       tensor, sdlk_dtype_name(t->dtype));
        return NULL;
    }
    if (sdlk_tensor_convert(&f, t, SDLK_F32, err) != SDLK_OK) {
        sdlk_error_prefix(err, "%s: '%s'", name, tensor);
        return NULL;
    }
    uint64_t n = sdlk_tensor_numel(&f);
    float *out = sdlk_graph_alloc_array((int64_t)(n ? n : 1), sizeof(float), err);
    if (out && n)
        memcpy(out, f.data, n * sizeof(float));
    sdlk_tensor_free(&f);
    for (uint64_t i = 0; out && i < n; i++)
        if (!isfinite(out[i])) {
            sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: '%s' holds a non-finite value at %llu",
                           name, tensor, (unsigned long long)i);
            free(out);
            return NULL;
        }
    return out;
}

sdlk_status sdlk_gnn_model_from_tensors(sdlk_gnn_model *m, sdlk_gnn_kind kind,
                                        const sdlk_tensor_set *weights, int64_t in_dim,
                                        const char *name, sdlk_error *err)
{
    sdlk_gnn_model_init(m);
    m->kind = kind;
    sdlk_status st = SDLK_OK;
    size_t used = 0;
    int64_t width = in_dim;
    char key[32];
    for (int l = 0; l < SDLK_GNN_MAX_LAYERS && !st; l++) {
        snprintf(key, sizeof key, "W%d", l + 1);
        const sdlk_tensor *w = sdlk_tensor_set_find(weights, key);
        if (!w)
            break;
        used++;
        sdlk_gnn_layer *ly = &m->layer[l];
        m->layers = l + 1;
        if (w->ndim != 2 || w->shape[0] != width || w->shape[1] < 1 || w->shape[1] > (1 << 24)) {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: '%s' must be [%lld, out] (layer %d input width), got %d-d "
                                "[%lld%s]",
                                name, key, (long long)width, l + 1, w->ndim,
                                (long long)(w->ndim ? w->shape[0] : 0), w->ndim > 1 ? ", ..." : "");
            break;
        }
        ly->in = width;
        ly->out = w->shape[1];
        ly->beta = 1.0f;
        if (!(ly->weight = tensor_to_f32(w, key, name, err))) {
            st = err ? err->code : SDLK_ERR_FORMAT;
            break;
        }
        snprintf(key, sizeof key, "b%d", l + 1);
        const sdlk_tensor *b = sdlk_tensor_set_find(weights, key);
        if (b) {
            used++;
            if (sdlk_tensor_numel(b) != (uint64_t)ly->out || b->ndim > 2) {
                st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: '%s' must hold %lld values", name,
                                    key, (long long)ly->out);
                break;
            }
            if (!(ly->bias = tensor_to_f32(b, key, name, err))) {
                st = err ? err->code : SDLK_ERR_FORMAT;
                break;
            }
        }
        snprintf(key, sizeof key, "beta%d", l + 1);
        const sdlk_tensor *beta = sdlk_tensor_set_find(weights, key);
        if (beta) {
            used++;
            if (kind != SDLK_GNN_AGNN || sdlk_tensor_numel(beta) != 1) {
                st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                    "%s: '%s' must be one value of an AGNN model", name, key);
                break;
            }
            float *v = tensor_to_f32(beta, key, name, err);
            if (!v) {
                st = err ? err->code : SDLK_ERR_FORMAT;
                break;
            }
            ly->beta = v[0];
            free(v);
        }
        width = ly->out;
    }
    if (!st && m->layers == 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: no 'W1' tensor (weights are W1, b1, "
                            "beta1, W2, ...)", name);
    if (!st && used != weights->count) {
        for (size_t i = 0; i < weights->count; i++) {
            const char *n = weights->items[i].name;
            int known = 0;
            for (int l = 1; l <= m->layers && !known; l++) {
                char w[16], b[16], beta[16];
                snprintf(w, sizeof w, "W%d", l);
                snprintf(b, sizeof b, "b%d", l);
                snprintf(beta, sizeof beta, "beta%d", l);
                known = !strcmp(n, w) || !strcmp(n, b) || !strcmp(n, beta);
            }
            if (!known) {
                st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                    "%s: tensor '%s' is not a parameter of this %d-layer model "
                                    "(W1..W%d, b1.., beta1..)",
                                    name, n, m->layers, m->layers);
                break;
            }
        }
    }
    if (st)
        sdlk_gnn_model_free(m);
    return st;
}

/* ---- row-wise helpers ------------------------------------------------------------- */

typedef struct rows_job {
    const sdlk_graph *g;
    float *data;        /* softmax: scores; rows: [N, dim] matrix */
    const float *bias;  /* [dim] or NULL */
    int64_t dim;
    int relu;
} rows_job;

static void softmax_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const rows_job *job = ctx;
    const int64_t *row_ptr = job->g->row_ptr;
    float *s = job->data;
    for (int64_t r = begin; r < end; r++) {
        int64_t a = row_ptr[r], b = row_ptr[r + 1];
        if (a == b)
            continue;
        float max = s[a];
        for (int64_t k = a + 1; k < b; k++)
            max = s[k] > max ? s[k] : max;
        double sum = 0;
        for (int64_t k = a; k < b; k++) {
            s[k] = expf(s[k] - max);
            sum += s[k];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t k = a; k < b; k++)
            s[k] *= inv;
    }
}

void sdlk_gnn_row_softmax(const sdlk_graph *g, float *scores, sdlk_pool *pool)
{
    rows_job job = {.g = g, .data = scores};
    sdlk_pool_for(pool, g->nodes, 0, softmax_rows, &job);
}

/* Bias, ReLU, or unit-length rows (relu < 0) over [begin, end) rows. */
static void finish_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const rows_job *job = ctx;
    for (int64_t r = begin; r < end; r++) {
        float *row = job->data + r * job->dim;
        if (job->relu < 0) { /* normalise: row / ||row|| */
            double sq = 0;
            for (int64_t j = 0; j < job->dim; j++)
                sq += (double)row[j] * row[j];
            float inv = sq > 0 ? (float)(1.0 / sqrt(sq)) : 0.0f;
            for (int64_t j = 0; j < job->dim; j++)
                row[j] *= inv;
            continue;
        }
        if (job->bias)
            for (int64_t j = 0; j < job->dim; j++)
                row[j] += job->bias[j];
        if (job->relu)
            for (int64_t j = 0; j < job->dim; j++)
                row[j] = row[j] > 0 ? row[j] : 0;
    }
}

void sdlk_rows_permute(const int64_t *perm, int64_t n, int64_t dim, const float *src,
                       float *dst, int to_new)
{
    for (int64_t i = 0; i < n; i++) {
        if (to_new)
            memcpy(dst + i * dim, src + perm[i] * dim, (size_t)dim * sizeof(float));
        else
            memcpy(dst + perm[i] * dim, src + i * dim, (size_t)dim * sizeof(float));
    }
}

/* ---- the forward pass --------------------------------------------------------------- */

sdlk_status sdlk_gnn_forward(const sdlk_gnn_model *m, const sdlk_graph *g, const sdlk_sgt *sgt,
                             const float *x, float *y, sdlk_isa isa, sdlk_pool *pool,
                             sdlk_gnn_timing *timing, sdlk_error *err)
{
    return sdlk_gnn_forward_on(m, g, sgt, x, y, SDLK_DEVICE_CPU, isa, pool, timing, err);
}

sdlk_status sdlk_gnn_forward_on(const sdlk_gnn_model *m, const sdlk_graph *g,
                                const sdlk_sgt *sgt, const float *x, float *y,
                                sdlk_device device, sdlk_isa isa, sdlk_pool *pool,
                                sdlk_gnn_timing *timing, sdlk_error *err)
{
    if (m->layers < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "the model has no layers");
    if (!sgt && device == SDLK_DEVICE_GPU)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "the GPU aggregates on condensed tiles: the CSR kernels run on the "
                              "CPU only");
    int64_t n = g->nodes, widest = 0;
    for (int l = 0; l < m->layers; l++) {
        if (l > 0 && m->layer[l].in != m->layer[l - 1].out)
            return sdlk_error_set(err, SDLK_ERR_ARG, "layer %d takes %lld features, gets %lld",
                                  l + 1, (long long)m->layer[l].in,
                                  (long long)m->layer[l - 1].out);
        widest = m->layer[l].out > widest ? m->layer[l].out : widest;
        widest = m->layer[l].in > widest ? m->layer[l].in : widest;
    }
    if (sgt && (sgt->nodes != n || sgt->edges != g->edges))
        return sdlk_error_set(err, SDLK_ERR_ARG, "the condensed tiles are not of this graph");
    if (timing)
        memset(timing, 0, sizeof *timing);
    int64_t cells = n * widest;
    float *z = sdlk_graph_alloc_array(cells ? cells : 1, sizeof(float), err);
    float *h = sdlk_graph_alloc_array(cells ? cells : 1, sizeof(float), err);
    float *zn = m->kind == SDLK_GNN_AGNN ? sdlk_graph_alloc_array(cells ? cells : 1, sizeof(float), err) : NULL;
    float *scores = m->kind == SDLK_GNN_AGNN ? sdlk_graph_alloc_array(g->edges ? g->edges : 1, sizeof(float), err) : NULL;
    sdlk_status st = SDLK_OK;
    if (!z || !h || (m->kind == SDLK_GNN_AGNN && (!zn || !scores)))
        st = err && err->code ? err->code : SDLK_ERR_NOMEM;
    const float *in = x;
    for (int l = 0; l < m->layers && !st; l++) {
        const sdlk_gnn_layer *ly = &m->layer[l];
        int last = l == m->layers - 1;
        float *out = last ? y : h;
        /* dense: Z = H W */
        uint64_t t0 = sdlk_now_ns();
        if (n > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ly->out,
                        (int)ly->in, 1.0f, in, (int)ly->in, ly->weight, (int)ly->out, 0.0f, z,
                        (int)ly->out);
        double dense = sdlk_seconds_since(t0);
        /* aggregate */
        t0 = sdlk_now_ns();
        const float *edge_values = NULL; /* GCN: the graph's (normalised) values */
        if (m->kind == SDLK_GNN_AGNN) {
            memcpy(zn, z, (size_t)(n * ly->out) * sizeof(float));
            rows_job norm = {.g = g, .data = zn, .dim = ly->out, .relu = -1};
            sdlk_pool_for(pool, n, 0, finish_rows, &norm);
            st = sgt ? sdlk_sddmm_condensed(sgt, zn, ly->out, scores, isa, pool, err)
                     : sdlk_sddmm_csr(g, zn, ly->out, scores, isa, pool, err);
            if (st)
                break;
            for (int64_t k = 0; k < g->edges; k++)
                scores[k] *= ly->beta;
            sdlk_gnn_row_softmax(g, scores, pool);
            edge_values = scores;
        }
        /* `out` may be `in` (h) only when in == h: aggregate into y/h from z, never from in */
        st = sgt ? sdlk_spmm_condensed_on(sgt, g, edge_values, z, ly->out, out, device, isa, pool,
                                          NULL, err)
                 : sdlk_spmm_csr(g, edge_values, z, ly->out, out, isa, pool, err);
        double aggregate = sdlk_seconds_since(t0);
        if (st)
            break;
        t0 = sdlk_now_ns();
        if (ly->bias || !last) {
            rows_job fin = {.g = g, .data = out, .bias = ly->bias, .dim = ly->out, .relu = !last};
            sdlk_pool_for(pool, n, 0, finish_rows, &fin);
        }
        dense += sdlk_seconds_since(t0);
        if (timing) {
            timing->dense_s[l] = dense;
            timing->aggregate_s[l] = aggregate;
        }
        in = out;
    }
    free(z);
    free(h);
    free(zn);
    free(scores);
    return st;
}

/* ---- node features in files ------------------------------------------------------ */

sdlk_status sdlk_features_load(const char *path, const sdlk_graph *g, float **out,
                               int64_t *dim, sdlk_error *err)
{
    *out = NULL;
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_tensor f;
    sdlk_tensor_init(&f);
    sdlk_status st = sdlk_tensors_load(path, &set, NULL, err);
    const sdlk_tensor *t = NULL;
    if (st == SDLK_OK && set.count != 1)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: holds %zu tensors, expected one feature matrix [N, D]", path,
                            set.count);
    if (st == SDLK_OK) {
        t = &set.items[0].tensor;
        if (t->ndim < 1 || t->ndim > 2)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: features must be [N, D] (or [N]), got %d dimensions", path,
                                t->ndim);
        else if (t->shape[0] != g->nodes)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: %lld feature rows, but the graph has %lld nodes", path,
                                (long long)t->shape[0], (long long)g->nodes);
        else if (t->ndim == 2 && t->shape[1] < 1)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: features of width 0", path);
        else if (!sdlk_dtype_is_float(t->dtype) && (t->dtype < SDLK_U8 || t->dtype > SDLK_I64))
            st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: features are %s, not numbers", path,
                                sdlk_dtype_name(t->dtype));
    }
    if (st == SDLK_OK && (st = sdlk_tensor_convert(&f, t, SDLK_F32, err)))
        sdlk_error_prefix(err, "%s", path);
    if (st == SDLK_OK) {
        int64_t d = t->ndim == 2 ? t->shape[1] : 1, n = g->nodes;
        float *x = sdlk_graph_alloc_array(n * d > 0 ? n * d : 1, sizeof(float), err);
        if (!x) {
            st = err ? err->code : SDLK_ERR_NOMEM;
        } else {
            if (g->perm)
                sdlk_rows_permute(g->perm, n, d, (const float *)f.data, x, 1);
            else if (n * d > 0)
                memcpy(x, f.data, (size_t)(n * d) * sizeof(float));
            *out = x;
            *dim = d;
        }
    }
    sdlk_tensor_free(&f);
    sdlk_tensor_set_free(&set);
    return st;
}

sdlk_status sdlk_features_write_npy(FILE *fp, const sdlk_graph *g, const float *y,
                                    int64_t dim, const char *name, sdlk_error *err)
{
    int64_t n = g->nodes;
    float *ordered = NULL;
    if (g->perm) {
        ordered = sdlk_graph_alloc_array(n * dim > 0 ? n * dim : 1, sizeof(float), err);
        if (!ordered)
            return err ? err->code : SDLK_ERR_NOMEM;
        sdlk_rows_permute(g->perm, n, dim, y, ordered, 0);
    }
    sdlk_tensor t;
    int64_t shape[2] = {n, dim};
    sdlk_status st = sdlk_tensor_borrow(&t, SDLK_F32, 2, shape, ordered ? ordered : (float *)y, err);
    if (st == SDLK_OK)
        st = sdlk_npy_write(fp, &t, name, err);
    free(ordered);
    return st;
}
