/* rmat.c -- R-MAT (recursive matrix) edge generator, Graph500 flavour. */
#include <math.h>
#include <stdlib.h>

#include "core/rng.h"
#include "graph/graph.h"
#include "graph/graph_internal.h"

/* Randomness: splitmix64 (core/rng.h) used counter-based, so edge k's random stream
 * depends only on (seed, k) and the output is the same for any number of threads. */
sdlk_rmat_params sdlk_rmat_graph500(int scale, int64_t edge_factor, uint64_t seed)
{
    sdlk_rmat_params p = {0};
    p.nodes = (int64_t)1 << scale;
    p.edges = edge_factor * p.nodes;
    p.a = 0.57;
    p.b = 0.19;
    p.c = 0.19;
    p.seed = seed;
    p.scramble = 0;
    return p;
}

typedef struct rmat_job {
    int levels;
    int64_t nodes;
    uint64_t seed;
    uint32_t below_a, below_ab, below_abc; /* quadrant thresholds on a 16-bit uniform */
    const int64_t *relabel;                /* NULL or [nodes] */
    int32_t *row, *col;
} rmat_job;

/* Descend `levels` quadrant choices; four choices per 64-bit draw (16-bit uniforms:
 * probabilities are quantised to 1/65536, far below R-MAT's own noise). */
static void draw_edge(const rmat_job *job, uint64_t *state, int64_t *row, int64_t *col)
{
    for (;;) {
        int64_t r = 0, c = 0;
        uint64_t bits = 0;
        for (int level = 0; level < job->levels; level++) {
            if ((level & 3) == 0)
                bits = sdlk_splitmix64(state);
            uint32_t u = (uint32_t)(bits >> ((level & 3) * 16)) & 0xFFFF;
            int row_bit = u >= job->below_ab;
            int col_bit = (u >= job->below_a && u < job->below_ab) || u >= job->below_abc;
            r = (r << 1) | row_bit;
            c = (c << 1) | col_bit;
        }
        if (r < job->nodes && c < job->nodes) {
            *row = r;
            *col = c;
            return;
        }
    }
}

static void rmat_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    const rmat_job *job = ctx;
    for (int64_t k = begin; k < end; k++) {
        uint64_t state = job->seed ^ ((uint64_t)k * UINT64_C(0xD1B54A32D192ED03));
        sdlk_splitmix64(&state); /* decorrelate neighbouring counters */
        int64_t r, c;
        draw_edge(job, &state, &r, &c);
        if (job->relabel) {
            r = job->relabel[r];
            c = job->relabel[c];
        }
        job->row[k] = (int32_t)r;
        job->col[k] = (int32_t)c;
    }
}

sdlk_status sdlk_rmat_generate(const sdlk_rmat_params *params, sdlk_pool *pool, sdlk_coo *out,
                               sdlk_error *err)
{
    double d = 1.0 - params->a - params->b - params->c;
    if (params->nodes < 1 || params->nodes > INT32_MAX || params->edges < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "R-MAT needs 1..2^31-1 nodes and >= 0 edges, got %lld and %lld",
                              (long long)params->nodes, (long long)params->edges);
    if (params->a < 0 || params->b < 0 || params->c < 0 || d < -1e-9)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "R-MAT probabilities a=%g b=%g c=%g must be >= 0 with sum <= 1",
                              params->a, params->b, params->c);
    sdlk_coo_free(out);
    out->rows = out->cols = params->nodes;
    sdlk_status st = sdlk_coo_reserve(out, params->edges, 0, err);
    if (st)
        return st;
    rmat_job job = {0};
    while (((int64_t)1 << job.levels) < params->nodes)
        job.levels++;
    job.nodes = params->nodes;
    job.seed = params->seed;
    double scale = 65536.0;
    job.below_a = (uint32_t)lround(fmin(params->a * scale, scale));
    job.below_ab = (uint32_t)lround(fmin((params->a + params->b) * scale, scale));
    job.below_abc = (uint32_t)lround(fmin((params->a + params->b + params->c) * scale, scale));
    job.row = out->row;
    job.col = out->col;
    int64_t *relabel = NULL;
    if (params->scramble) {
        relabel = sdlk_graph_alloc_array(params->nodes, sizeof(int64_t), err);
        if (!relabel) {
            sdlk_coo_free(out);
            return err ? err->code : SDLK_ERR_NOMEM;
        }
        /* Fisher-Yates with its own stream (seed-derived, distinct from edge streams) */
        uint64_t state = ~params->seed;
        for (int64_t i = 0; i < params->nodes; i++)
            relabel[i] = i;
        for (int64_t i = params->nodes - 1; i > 0; i--) {
            int64_t j = (int64_t)(sdlk_splitmix64(&state) % (uint64_t)(i + 1));
            int64_t t = relabel[i];
            relabel[i] = relabel[j];
            relabel[j] = t;
        }
        job.relabel = relabel;
    }
    sdlk_pool_for(pool, params->edges, 1 << 15, rmat_range, &job);
    out->count = params->edges;
    free(relabel);
    return SDLK_OK;
}
