/* gnn.c -- the "gnn" benchmark family: Sparse Graph Translation and CPU SpMM (TC-GNN).
 *
 *   SGT            sdlk_sgt_build on the thread pool vs the same code on one thread
 *                  (the sequential version), in edges/s
 *   SpMM D=16..128 condensed-tile kernel vs our CSR kernel (same ISA, same threads), and
 *                  vs SciPy: scipy.sparse.csr_matrix @ X (float32) in a /usr/bin/python3
 *                  child that holds A and X; each baseline rep is one request over a
 *                  pipe, timed here like every other baseline (the round trip, ~tens of
 *                  microseconds, is included and stated in the note)
 * Graphs: the real graphs in $SDL_BENCH_GRAPHS, else ../shared/data/graphs, else
 * <data>/graphs (the log says which), then an R-MAT graph at amazon0601's size (403,394
 * nodes, 3,387,388 edges); --quick: a small R-MAT graph only. Results are checked against
 * each other (condensed vs CSR vs SciPy, 1e-5 relative to the largest output) before
 * anything is timed.
 */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_families.h"
#include "core/pool.h"
#include "core/tensorset.h"
#include "graph/graph.h"
#include "graph/sgt.h"
#include "graph/spmm.h"
#include "io/tensorio.h"

#define FAMILY "gnn"

static const int dims[] = {16, 32, 64, 128};
#define NDIMS 4

/* ---- SGT ------------------------------------------------------------------------ */

typedef struct sgt_bench {
    const sdlk_graph *g;
    sdlk_pool *pool;
} sgt_bench;

static sdlk_status sgt_once(const sdlk_graph *g, sdlk_pool *pool, sdlk_error *err)
{
    sdlk_sgt s;
    sdlk_sgt_init(&s);
    sdlk_status st = sdlk_sgt_build(g, 0, 0, pool, &s, err);
    sdlk_sgt_free(&s);
    return st;
}
static sdlk_status sgt_parallel(void *ctx, sdlk_error *err)
{
    sgt_bench *b = ctx;
    return sgt_once(b->g, b->pool, err);
}
static sdlk_status sgt_sequential(void *ctx, sdlk_error *err)
{
    sgt_bench *b = ctx;
    return sgt_once(b->g, NULL, err);
}

/* ---- SpMM ------------------------------------------------------------------------- */

typedef struct spmm_bench {
    const sdlk_graph *g;
    const sdlk_sgt *sgt;
    const float *x;
    float *y;
    int64_t dim;
    sdlk_pool *pool;
} spmm_bench;

static sdlk_status spmm_condensed(void *ctx, sdlk_error *err)
{
    spmm_bench *b = ctx;
    return sdlk_spmm_condensed(b->sgt, b->g, NULL, b->x, b->dim, b->y, SDLK_ISA_AUTO, b->pool,
                               err);
}
static sdlk_status spmm_csr(void *ctx, sdlk_error *err)
{
    spmm_bench *b = ctx;
    return sdlk_spmm_csr(b->g, NULL, b->x, b->dim, b->y, SDLK_ISA_AUTO, b->pool, err);
}

/* max |a - b| <= 1e-5 * max |b| (+ a tiny floor for all-zero outputs). */
static int agree(const float *a, const float *b, int64_t n)
{
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return diff <= 1e-5 * scale + 1e-30;
}

/* ---- the SciPy child -------------------------------------------------------------- */

/* Reads A (scratch npz of indptr/indices/data/shape) and x<D>.npy, then answers one line
 * per request: "save D PATH" (Y = A @ X_D saved) and "run D" (Y computed and dropped). */
static const char scipy_child[] =
    "import sys, time\n"
    "try:\n"
    "    import numpy as np, scipy, scipy.sparse as sp\n"
    "except Exception as e:\n"
    "    print('noscipy', e, flush=True); sys.exit(0)\n"
    "d = sys.argv[1]\n"
    "z = np.load(d + '/a.npz')\n"
    "A = sp.csr_matrix((z['data'], z['indices'], z['indptr']), shape=tuple(z['shape']))\n"
    "X = {}\n"
    "print('ready', scipy.__version__, flush=True)\n"
    "for line in sys.stdin:\n"
    "    w = line.split()\n"
    "    D = int(w[1])\n"
    "    if D not in X: X[D] = np.load(d + '/x%d.npy' % D)\n"
    "    t = time.perf_counter(); Y = A @ X[D]; t = time.perf_counter() - t\n"
    "    if w[0] == 'save': np.save(w[2], np.asarray(Y, dtype=np.float32))\n"
    "    print('ok %.9f' % t, flush=True)\n";

typedef struct scipy_proc {
    bench_python py;
    char version[32];
    int64_t dim;        /* current request's D */
    double inside[512]; /* in-Python times of the timed requests */
    int ninside;
} scipy_proc;

static void scipy_stop(scipy_proc *p)
{
    bench_python_stop(&p->py);
}

/* Start the child; 0 with *why filled when SciPy cannot be used (not an error). */
static int scipy_start(scipy_proc *p, const char *dir, char *why, size_t why_size)
{
    memset(p, 0, sizeof *p);
    const char *args[] = {dir, NULL};
    return bench_python_start(&p->py, scipy_child, args, p->version, sizeof p->version, why,
                              why_size);
}

static sdlk_status scipy_request(scipy_proc *p, const char *request, double *inside,
                                 sdlk_error *err)
{
    char reply[128];
    sdlk_status st = bench_python_request(&p->py, request, reply, sizeof reply, err);
    if (st == SDLK_OK && inside)
        *inside = atof(reply);
    return st;
}

static sdlk_status scipy_run(void *ctx, sdlk_error *err)
{
    scipy_proc *p = ctx;
    char request[32];
    snprintf(request, sizeof request, "run %lld", (long long)p->dim);
    double t = 0;
    sdlk_status st = scipy_request(p, request, &t, err);
    if (st == SDLK_OK && p->ninside < 512)
        p->inside[p->ninside++] = t;
    return st;
}

/* ---- one graph ---------------------------------------------------------------------- */

static sdlk_status save_tensor(const char *dir, const char *file, sdlk_dtype dtype, int ndim,
                               const int64_t *shape, const void *data, sdlk_tensor_set *set,
                               const char *name, sdlk_error *err)
{
    sdlk_tensor t;
    sdlk_status st = sdlk_tensor_borrow(&t, dtype, ndim, shape, (void *)data, err);
    if (st == SDLK_OK)
        st = sdlk_tensor_set_add(set, name, &t, err);
    if (st == SDLK_OK && file) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        st = sdlk_tensors_save(path, set, SDLK_FORMAT_UNKNOWN, 0, err);
    }
    return st;
}

/* The SGT row's note: the tile count, and what --reorder rcm makes of it. */
static sdlk_status note_rcm_tiles(const bench_options *opt, sdlk_bench_report *report,
                                  const sdlk_graph *g, const sdlk_sgt *sgt, sdlk_pool *pool,
                                  sdlk_error *err)
{
    sdlk_graph rcm;
    sdlk_sgt rcm_sgt;
    sdlk_sgt_init(&rcm_sgt);
    sdlk_status st = sdlk_graph_reorder_rcm(g, &rcm, err);
    if (st == SDLK_OK)
        st = sdlk_sgt_build(&rcm, 0, 0, pool, &rcm_sgt, err);
    if (st == SDLK_OK)
        sdlk_bench_report_note(report, "%d threads vs 1; H=16, W=8; %lld tiles, %lld after "
                               "--reorder rcm (%+.1f%%)", opt->threads,
                               (long long)sgt->tile_count, (long long)rcm_sgt.tile_count,
                               sgt->tile_count ? 100.0 * ((double)rcm_sgt.tile_count /
                                                          (double)sgt->tile_count - 1) : 0.0);
    sdlk_graph_free(&rcm);
    sdlk_sgt_free(&rcm_sgt);
    return st;
}

static sdlk_status bench_graph(const bench_options *opt, sdlk_bench_report *report,
                               const char *label, const sdlk_graph *g, sdlk_pool *pool,
                               const char *scratch, sdlk_error *err)
{
    char name[96];
    sgt_bench sb = {g, pool};
    snprintf(name, sizeof name, "SGT %s (%lld edges)", label, (long long)g->edges);
    bench_log(opt, FAMILY, "%s", name);
    sdlk_status st = sdlk_bench_compare(report, FAMILY, name, sgt_parallel, &sb,
                                        "the same SGT on 1 thread", sgt_sequential, &sb,
                                        (double)g->edges, "Medge/s", 1e6, opt->reps, err);
    if (st)
        return st;
    sdlk_sgt sgt;
    sdlk_sgt_init(&sgt);
    if ((st = sdlk_sgt_build(g, 0, 0, pool, &sgt, err)) ||
        (st = note_rcm_tiles(opt, report, g, &sgt, pool, err))) {
        sdlk_sgt_free(&sgt);
        return st;
    }

    int64_t n = g->nodes, maxd = dims[NDIMS - 1];
    float *x = malloc((size_t)(n ? n : 1) * maxd * sizeof(float));
    float *y1 = malloc((size_t)(n ? n : 1) * maxd * sizeof(float));
    float *y2 = malloc((size_t)(n ? n : 1) * maxd * sizeof(float));
    scipy_proc py;
    memset(&py, 0, sizeof py);
    int have_scipy = 0;
    char why[160] = "";
    if (!x || !y1 || !y2) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory for features", label);
        goto done;
    }
    /* A for SciPy (values 1 for a pattern graph), then the child */
    {
        sdlk_tensor_set a;
        sdlk_tensor_set_init(&a);
        float *ones = NULL;
        if (!g->values && !(ones = malloc((size_t)(g->edges ? g->edges : 1) * sizeof(float))))
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        for (int64_t k = 0; ones && k < g->edges; k++)
            ones[k] = 1.0f;
        int64_t sp[1] = {n + 1}, se[1] = {g->edges}, s2[1] = {2}, shape2[2] = {n, n};
        if (!st) st = save_tensor(scratch, NULL, SDLK_I64, 1, sp, g->row_ptr, &a, "indptr", err);
        if (!st) st = save_tensor(scratch, NULL, SDLK_I32, 1, se, g->col_idx, &a, "indices", err);
        if (!st) st = save_tensor(scratch, NULL, SDLK_F32, 1, se, g->values ? g->values : ones, &a, "data", err);
        if (!st) st = save_tensor(scratch, "a.npz", SDLK_I64, 1, s2, shape2, &a, "shape", err);
        sdlk_tensor_set_free(&a);
        free(ones);
        if (st)
            goto done;
        have_scipy = scipy_start(&py, scratch, why, sizeof why);
        if (!have_scipy)
            bench_log(opt, FAMILY, "SciPy baseline skipped: %s", why);
    }
    for (int i = 0; i < NDIMS && !st; i++) {
        int64_t d = dims[i];
        bench_fill_random(x, (size_t)(n * d) * sizeof(float), 0x5eed + (uint64_t)d);
        for (int64_t k = 0; k < n * d; k++) /* uniform in [-1, 1) */
            x[k] = (float)((((uint32_t *)x)[k] >> 8) * (2.0 / 16777216.0) - 1.0);
        spmm_bench b = {g, &sgt, x, y1, d, pool};
        spmm_bench c = {g, &sgt, x, y2, d, pool};
        if ((st = spmm_condensed(&b, err)) || (st = spmm_csr(&c, err)))
            break;
        if (!agree(y1, y2, n * d)) {
            st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s D=%lld: condensed and CSR SpMM disagree",
                                label, (long long)d);
            break;
        }
        snprintf(name, sizeof name, "SpMM %s D=%lld", label, (long long)d);
        bench_log(opt, FAMILY, "%s", name);
        double flops = 2.0 * (double)g->edges * (double)d;
        if ((st = sdlk_bench_compare(report, FAMILY, name, spmm_condensed, &b, "our CSR kernel",
                                     spmm_csr, &c, flops, "GFLOP/s", 1e9, opt->reps, err)))
            break;
        sdlk_bench_report_note(report, "condensed tiles (%lld, from %lld naive; column reuse "
                               "%.2f nonzeros per X row load) vs CSR rows; %d threads, %s",
                               (long long)sgt.tile_count, (long long)sgt.naive_tile_count,
                               sgt.distinct ? (double)sgt.edges / (double)sgt.distinct : 0.0,
                               opt->threads,
                               sdlk_spmm_have_avx2() ? "AVX2+FMA" : "portable C");
        if (!have_scipy)
            continue;
        /* SciPy: check its Y against ours, then time it */
        sdlk_tensor_set xs;
        sdlk_tensor_set_init(&xs);
        char file[32], request[4200], ypath[4096];
        int64_t shape[2] = {n, d};
        snprintf(file, sizeof file, "x%lld.npy", (long long)d);
        st = save_tensor(scratch, file, SDLK_F32, 2, shape, x, &xs, "x", err);
        sdlk_tensor_set_free(&xs);
        snprintf(ypath, sizeof ypath, "%s/y%lld.npy", scratch, (long long)d);
        snprintf(request, sizeof request, "save %lld %s", (long long)d, ypath);
        if (!st)
            st = scipy_request(&py, request, NULL, err);
        sdlk_tensor_set ys;
        sdlk_tensor_set_init(&ys);
        if (!st)
            st = sdlk_tensors_load(ypath, &ys, NULL, err);
        if (!st && (ys.count != 1 || ys.items[0].tensor.dtype != SDLK_F32 ||
                    sdlk_tensor_numel(&ys.items[0].tensor) != (uint64_t)(n * d) ||
                    !agree((const float *)ys.items[0].tensor.data, y1, n * d)))
            st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s D=%lld: SciPy's A @ X disagrees "
                                "with ours", label, (long long)d);
        sdlk_tensor_set_free(&ys);
        unlink(ypath);
        if (st)
            break;
        py.dim = d;
        py.ninside = 0;
        snprintf(name, sizeof name, "SpMM %s D=%lld vs SciPy", label, (long long)d);
        if ((st = sdlk_bench_compare(report, FAMILY, name, spmm_condensed, &b, "SciPy csr @ X",
                                     scipy_run, &py, flops, "GFLOP/s", 1e9, opt->reps, err)))
            break;
        /* drop the warm-up, report the in-Python median too */
        double inside = py.ninside > 1 ? sdlk_median(py.inside + 1, (size_t)py.ninside - 1) : 0;
        sdlk_bench_report_note(report, "SciPy %s, 1 thread, float32; baseline timed here over a "
                               "pipe round trip; in-Python median %.3f ms", py.version,
                               inside * 1e3);
    }
done:
    if (have_scipy)
        scipy_stop(&py);
    sdlk_sgt_free(&sgt);
    free(x);
    free(y1);
    free(y2);
    return st;
}

/* ---- the family ----------------------------------------------------------------- */

static int is_dir(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static sdlk_status bench_rmat(const bench_options *opt, sdlk_bench_report *report,
                              int64_t nodes, int64_t edges, const char *label, sdlk_pool *pool,
                              const char *scratch, sdlk_error *err)
{
    sdlk_rmat_params p = sdlk_rmat_graph500(1, 1, 1);
    p.nodes = nodes;
    p.edges = edges;
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    sdlk_graph g;
    sdlk_graph_init(&g);
    sdlk_graph_options o = {.duplicates = SDLK_DUP_DROP};
    sdlk_status st = sdlk_rmat_generate(&p, pool, &coo, err);
    if (!st)
        st = sdlk_graph_from_coo(&coo, &o, &g, err);
    sdlk_coo_free(&coo);
    if (!st) {
        bench_log(opt, FAMILY, "R-MAT %lld nodes, %lld edges generated, %lld distinct", (long long)nodes,
                  (long long)edges, (long long)g.edges);
        st = bench_graph(opt, report, label, &g, pool, scratch, err);
    }
    sdlk_graph_free(&g);
    return st;
}

sdlk_status bench_gnn(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err)
{
    char *scratch = NULL;
    sdlk_status st = bench_scratch_create(opt->tmp_dir, &scratch, err);
    if (st)
        return st;
    sdlk_pool *pool = sdlk_pool_create(opt->threads, err);
    if (!pool) {
        bench_scratch_remove(scratch);
        return err ? err->code : SDLK_ERR_NOMEM;
    }
    if (opt->quick) {
        st = bench_rmat(opt, report, 1 << 14, 16 << 14, "R-MAT 16k", pool, scratch, err);
        goto done;
    }
    /* the real graphs */
    char fallback[4096];
    snprintf(fallback, sizeof fallback, "%s/graphs", opt->data_dir ? opt->data_dir : ".");
    const char *env = getenv("SDL_BENCH_GRAPHS");
    const char *dir = env && *env && is_dir(env) ? env
                      : is_dir("../shared/data/graphs") ? "../shared/data/graphs"
                                                        : fallback;
    bench_log(opt, FAMILY, "real graphs from %s%s", dir,
              dir == fallback ? " (the shared data set is absent: test data only)" : "");
    DIR *d = opendir(dir);
    char *names[256];
    size_t count = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && count < 256) {
        size_t len = strlen(e->d_name);
        if ((len > 4 && !strcmp(e->d_name + len - 4, ".mtx")) ||
            (len > 7 && !strcmp(e->d_name + len - 7, ".mtx.gz")))
            names[count++] = strdup(e->d_name);
    }
    if (d)
        closedir(d);
    qsort(names, count, sizeof *names, compare_names);
    for (size_t i = 0; i < count && !st; i++) {
        if (!names[i])
            continue;
        char path[4096], label[64];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(label, sizeof label, "%.*s", (int)strcspn(names[i], "."), names[i]);
        sdlk_graph g;
        st = sdlk_graph_read(path, SDLK_GRAPH_AUTO, NULL, &g, err);
        if (!st)
            st = bench_graph(opt, report, label, &g, pool, scratch, err);
        sdlk_graph_free(&g);
    }
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    if (!st)
        st = bench_rmat(opt, report, 403394, 3387388, "R-MAT amazon0601-size", pool, scratch,
                        err);
done:
    sdlk_pool_destroy(pool);
    bench_scratch_remove(scratch);
    return st;
}
