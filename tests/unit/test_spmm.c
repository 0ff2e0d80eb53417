/* Unit tests of lib/graph/spmm: CSR and condensed SpMM, SDDMM, against f64 references;
 * the device choice of sdlk_spmm_condensed_on (CPU here; the GPU where one is usable). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/pool.h"
#include "graph/graph.h"
#include "graph/sgt.h"
#include "graph/spmm.h"
#include "unit.h"

static const int64_t dims[] = {1, 3, 16, 33, 64, 130};
#define DIM_COUNT (sizeof dims / sizeof dims[0])

static void load_graph(const char *name, const sdlk_graph_options *opts, sdlk_graph *g)
{
    char path[512];
    const char *dir = getenv("SDL_TESTDATA");
    snprintf(path, sizeof path, "%s/graphs/%s", dir ? dir : "tests/data", name);
    sdlk_error err = {0};
    if (sdlk_graph_read(path, SDLK_GRAPH_AUTO, opts, g, &err))
        ck_abort_msg("%s", err.msg);
}

static void rmat_graph(int64_t nodes, int64_t edges, int scramble, const sdlk_graph_options *opts,
                       sdlk_graph *g)
{
    sdlk_rmat_params p = sdlk_rmat_graph500(1, 1, 99);
    p.nodes = nodes;
    p.edges = edges;
    p.scramble = scramble;
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    ck_assert_int_eq(sdlk_rmat_generate(&p, NULL, &coo, NULL), SDLK_OK);
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, opts, g, NULL), SDLK_OK);
    sdlk_coo_free(&coo);
}

/* Features: deterministic, in [lo, lo + 1). */
static float *features(int64_t nodes, int64_t dim, float lo)
{
    float *x = malloc((size_t)(nodes * dim) * sizeof(float) + 1);
    uint64_t state = 12345;
    for (int64_t i = 0; i < nodes * dim; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = lo + (float)(state >> 40) / (float)(1 << 24);
    }
    return x;
}

/* f64 reference over COO-like traversal of the CSR arrays: y = A x and the sum of
 * |terms| per output (the scale the f32 error is measured against). */
static void reference_spmm(const sdlk_graph *g, const float *values, const float *x, int64_t dim,
                           double *y, double *magnitude)
{
    memset(y, 0, (size_t)(g->nodes * dim) * sizeof(double));
    memset(magnitude, 0, (size_t)(g->nodes * dim) * sizeof(double));
    for (int64_t r = 0; r < g->nodes; r++)
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++) {
            double v = values ? values[k] : g->values ? g->values[k] : 1.0;
            for (int64_t d = 0; d < dim; d++) {
                double term = v * (double)x[(int64_t)g->col_idx[k] * dim + d];
                y[r * dim + d] += term;
                magnitude[r * dim + d] += fabs(term);
            }
        }
}

static void assert_close(const float *y, const double *ref, const double *magnitude, int64_t n,
                         const char *what, int64_t dim)
{
    for (int64_t i = 0; i < n; i++) {
        double tolerance = 1e-5 * magnitude[i] + 1e-30;
        if (!(fabs(y[i] - ref[i]) <= tolerance))
            ck_abort_msg("%s dim %lld: element %lld is %.9g, reference %.9g", what,
                         (long long)dim, (long long)i, y[i], ref[i]);
    }
}

/* Every kernel and ISA, D in dims, 1 and 2 threads: close to f64, thread counts equal
 * bit for bit, AVX2 CSR and condensed equal bit for bit. */
static void check_spmm_graph(const sdlk_graph *g, const float *values, float lo)
{
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    sdlk_sgt sgt;
    ck_assert_int_eq(sdlk_sgt_build(g, 0, 0, pool, &sgt, &err), SDLK_OK);
    sdlk_isa isas[2] = {SDLK_ISA_PORTABLE, SDLK_ISA_AVX2};
    int isa_count = sdlk_spmm_have_avx2() ? 2 : 1;
    for (size_t di = 0; di < DIM_COUNT; di++) {
        int64_t dim = dims[di], n = g->nodes * dim;
        float *x = features(g->nodes, dim, lo);
        double *ref = malloc((size_t)n * sizeof(double) + 1);
        double *magnitude = malloc((size_t)n * sizeof(double) + 1);
        reference_spmm(g, values, x, dim, ref, magnitude);
        float *y1 = malloc((size_t)n * sizeof(float) + 1);
        float *y2 = malloc((size_t)n * sizeof(float) + 1);
        float *y3 = malloc((size_t)n * sizeof(float) + 1);
        for (int i = 0; i < isa_count; i++) {
            memset(y1, 0xff, (size_t)n * sizeof(float)); /* NaN: every element must be written */
            memset(y2, 0xff, (size_t)n * sizeof(float));
            memset(y3, 0xff, (size_t)n * sizeof(float));
            ck_assert_int_eq(sdlk_spmm_csr(g, values, x, dim, y1, isas[i], NULL, &err), SDLK_OK);
            ck_assert_int_eq(sdlk_spmm_csr(g, values, x, dim, y2, isas[i], pool, &err), SDLK_OK);
            assert_close(y1, ref, magnitude, n, "csr", dim);
            ck_assert_mem_eq(y1, y2, (size_t)n * sizeof(float));
            ck_assert_int_eq(
                sdlk_spmm_condensed(&sgt, g, values, x, dim, y2, isas[i], NULL, &err), SDLK_OK);
            ck_assert_int_eq(
                sdlk_spmm_condensed(&sgt, g, values, x, dim, y3, isas[i], pool, &err), SDLK_OK);
            assert_close(y2, ref, magnitude, n, "condensed", dim);
            ck_assert_mem_eq(y2, y3, (size_t)n * sizeof(float));
            if (isas[i] == SDLK_ISA_AVX2) /* same FMA order per row */
                ck_assert_mem_eq(y1, y3, (size_t)n * sizeof(float));
        }
        free(x);
        free(ref);
        free(magnitude);
        free(y1);
        free(y2);
        free(y3);
    }
    sdlk_sgt_free(&sgt);
    sdlk_pool_destroy(pool);
}

START_TEST(spmm_real_graphs)
{
    sdlk_graph g;
    sdlk_graph_options gcn = {.gcn_normalize = 1, .duplicates = SDLK_DUP_DROP};
    load_graph("karate.mtx.gz", NULL, &g); /* N = 34: a short last window */
    check_spmm_graph(&g, NULL, 0.0f);
    sdlk_graph_free(&g);
    load_graph("football.mtx.gz", &gcn, &g);
    check_spmm_graph(&g, NULL, 0.0f);
    sdlk_graph_free(&g);
    load_graph("polblogs.mtx.gz", NULL, &g); /* duplicates kept, hubs of degree 256 */
    check_spmm_graph(&g, NULL, 0.0f);
    sdlk_graph_free(&g);
}
END_TEST

START_TEST(spmm_rmat_signed_and_custom_values)
{
    sdlk_graph g;
    sdlk_graph_options drop = {.duplicates = SDLK_DUP_DROP};
    rmat_graph(1003, 9000, 0, &drop, &g);
    check_spmm_graph(&g, NULL, -0.5f); /* signed features: cancellation, |terms| scale */
    float *values = malloc((size_t)g.edges * sizeof(float) + 1);
    for (int64_t k = 0; k < g.edges; k++)
        values[k] = (float)((k % 7) - 3) * 0.25f;
    check_spmm_graph(&g, values, 0.0f);
    free(values);
    sdlk_graph_free(&g);
}
END_TEST

START_TEST(spmm_hub_window)
{
    /* a star: window 0 has 5000 distinct neighbour columns, the rest one each */
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    coo.rows = coo.cols = 5001;
    for (int j = 1; j <= 5000; j++) {
        ck_assert_int_eq(sdlk_coo_push(&coo, 0, j, 1, NULL), SDLK_OK);
        ck_assert_int_eq(sdlk_coo_push(&coo, j, 0, 1, NULL), SDLK_OK);
    }
    sdlk_graph g;
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, NULL), SDLK_OK);
    check_spmm_graph(&g, NULL, 0.0f);
    sdlk_graph_free(&g);
    sdlk_coo_free(&coo);
}
END_TEST

START_TEST(spmm_argument_errors)
{
    sdlk_graph g, other;
    sdlk_error err = {0};
    load_graph("karate.mtx.gz", NULL, &g);
    load_graph("football.mtx.gz", NULL, &other);
    sdlk_sgt sgt;
    ck_assert_int_eq(sdlk_sgt_build(&g, 0, 0, NULL, &sgt, &err), SDLK_OK);
    float x[34 * 2] = {0}, y[34 * 2];
    ck_assert_int_eq(sdlk_spmm_csr(&g, NULL, x, 0, y, SDLK_ISA_AUTO, NULL, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_spmm_condensed(&sgt, &other, NULL, x, 2, y, SDLK_ISA_AUTO, NULL, &err),
                     SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "do not belong"));
    if (!sdlk_spmm_have_avx2())
        ck_assert_int_eq(sdlk_spmm_csr(&g, NULL, x, 2, y, SDLK_ISA_AVX2, NULL, &err),
                         SDLK_ERR_UNSUPPORTED);
    sdlk_sgt_free(&sgt);
    sdlk_graph_free(&g);
    sdlk_graph_free(&other);
}
END_TEST

/* ---- device choice ------------------------------------------------------------------ */

/* max |y - ref| / max |ref|: the GPU's TF32 criterion. */
static double relative_error(const float *y, const double *ref, int64_t n)
{
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs(y[i] - ref[i]);
        worst = diff > worst || diff != diff ? diff : worst;
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    }
    return scale > 0 ? worst / scale : worst;
}

START_TEST(spmm_device_option)
{
    sdlk_graph g;
    sdlk_graph_options gcn = {.gcn_normalize = 1, .duplicates = SDLK_DUP_DROP};
    load_graph("karate.mtx.gz", &gcn, &g); /* N = 34: short last window, real values */
    sdlk_sgt sgt, narrow;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_sgt_build(&g, 0, 0, NULL, &sgt, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_sgt_build(&g, 8, 4, NULL, &narrow, &err), SDLK_OK);
    int gpu = sdlk_gpu_count() > 0;
    const int64_t dims_here[] = {1, 20, 64};
    for (size_t di = 0; di < 3; di++) {
        int64_t dim = dims_here[di], n = g.nodes * dim;
        float *x = features(g.nodes, dim, 0.0f);
        double *ref = malloc((size_t)n * sizeof(double)), *mag = malloc((size_t)n * sizeof(double));
        float *cpu = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
        reference_spmm(&g, NULL, x, dim, ref, mag);
        ck_assert_int_eq(sdlk_spmm_condensed(&sgt, &g, NULL, x, dim, cpu, SDLK_ISA_AUTO, NULL, &err),
                         SDLK_OK);
        /* CPU: the same bits as the device-less entry point */
        sdlk_device used = SDLK_DEVICE_GPU;
        memset(y, 0xff, (size_t)n * sizeof(float));
        ck_assert_int_eq(sdlk_spmm_condensed_on(&sgt, &g, NULL, x, dim, y, SDLK_DEVICE_CPU,
                                                SDLK_ISA_AUTO, NULL, &used, &err),
                         SDLK_OK);
        ck_assert_int_eq(used, SDLK_DEVICE_CPU);
        ck_assert_mem_eq(y, cpu, (size_t)n * sizeof(float));
        /* AUTO: the GPU where one is usable (TF32, 1e-3), else the CPU bit for bit */
        memset(y, 0xff, (size_t)n * sizeof(float));
        ck_assert_int_eq(sdlk_spmm_condensed_on(&sgt, &g, NULL, x, dim, y, SDLK_DEVICE_AUTO,
                                                SDLK_ISA_AUTO, NULL, &used, &err),
                         SDLK_OK);
        ck_assert_int_eq(used, gpu ? SDLK_DEVICE_GPU : SDLK_DEVICE_CPU);
        if (gpu)
            ck_assert_double_le(relative_error(y, ref, n), 1e-3);
        else
            ck_assert_mem_eq(y, cpu, (size_t)n * sizeof(float));
        /* GPU: refused with SDLK_ERR_DEVICE and a reason when there is none, Y untouched */
        memset(y, 0xff, (size_t)n * sizeof(float));
        sdlk_error_clear(&err);
        sdlk_status st = sdlk_spmm_condensed_on(&sgt, &g, NULL, x, dim, y, SDLK_DEVICE_GPU,
                                                SDLK_ISA_AUTO, NULL, NULL, &err);
        if (gpu) {
            ck_assert_int_eq(st, SDLK_OK);
            ck_assert_double_le(relative_error(y, ref, n), 1e-3);
        } else {
            ck_assert_int_eq(st, SDLK_ERR_DEVICE);
            ck_assert_ptr_nonnull(strstr(err.msg, "GPU requested"));
            if (!sdlk_cuda_compiled())
                ck_assert_ptr_nonnull(strstr(err.msg, "without CUDA"));
            for (int64_t i = 0; i < n; i++)
                ck_assert(y[i] != y[i]); /* still the NaN poison */
        }
        free(x);
        free(ref);
        free(mag);
        free(cpu);
        free(y);
    }
    /* tiles other than 16x8: AUTO stays on the CPU, an explicit GPU request is refused */
    float x[34 * 3], y[34 * 3], cpu[34 * 3];
    for (int i = 0; i < 34 * 3; i++)
        x[i] = (float)(i % 5);
    sdlk_device used = SDLK_DEVICE_GPU;
    ck_assert_int_eq(sdlk_spmm_condensed(&narrow, &g, NULL, x, 3, cpu, SDLK_ISA_AUTO, NULL, &err),
                     SDLK_OK);
    ck_assert_int_eq(sdlk_spmm_condensed_on(&narrow, &g, NULL, x, 3, y, SDLK_DEVICE_AUTO,
                                            SDLK_ISA_AUTO, NULL, &used, &err),
                     SDLK_OK);
    ck_assert_int_eq(used, SDLK_DEVICE_CPU);
    ck_assert_mem_eq(y, cpu, sizeof y);
    sdlk_error_clear(&err);
    sdlk_status st = sdlk_spmm_condensed_on(&narrow, &g, NULL, x, 3, y, SDLK_DEVICE_GPU,
                                            SDLK_ISA_AUTO, NULL, NULL, &err);
    ck_assert_int_eq(st, gpu ? SDLK_ERR_UNSUPPORTED : SDLK_ERR_DEVICE);
    if (gpu)
        ck_assert_ptr_nonnull(strstr(err.msg, "16x8"));
    /* argument errors come first, whatever the device */
    sdlk_graph other;
    load_graph("football.mtx.gz", NULL, &other);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_spmm_condensed_on(&sgt, &other, NULL, x, 3, y, SDLK_DEVICE_GPU,
                                            SDLK_ISA_AUTO, NULL, NULL, &err),
                     SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_spmm_condensed_on(&sgt, &g, NULL, x, 0, y, SDLK_DEVICE_GPU,
                                            SDLK_ISA_AUTO, NULL, NULL, &err),
                     SDLK_ERR_ARG);
    sdlk_graph_free(&other);
    sdlk_sgt_free(&narrow);
    sdlk_sgt_free(&sgt);
    sdlk_graph_free(&g);
}
END_TEST

/* ---- SDDMM ------------------------------------------------------------------------- */

static void check_sddmm_graph(const sdlk_graph *g)
{
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    sdlk_sgt sgt;
    ck_assert_int_eq(sdlk_sgt_build(g, 0, 0, pool, &sgt, &err), SDLK_OK);
    sdlk_isa isas[2] = {SDLK_ISA_PORTABLE, SDLK_ISA_AVX2};
    int isa_count = sdlk_spmm_have_avx2() ? 2 : 1;
    size_t bytes = (size_t)g->edges * sizeof(float) + 1;
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    for (size_t di = 0; di < DIM_COUNT; di++) {
        int64_t dim = dims[di];
        float *x = features(g->nodes, dim, -0.5f);
        for (int i = 0; i < isa_count; i++) {
            memset(a, 0xff, bytes);
            memset(b, 0xff, bytes);
            memset(c, 0xff, bytes);
            ck_assert_int_eq(sdlk_sddmm_csr(g, x, dim, a, isas[i], NULL, &err), SDLK_OK);
            ck_assert_int_eq(sdlk_sddmm_condensed(&sgt, x, dim, b, isas[i], NULL, &err), SDLK_OK);
            ck_assert_int_eq(sdlk_sddmm_condensed(&sgt, x, dim, c, isas[i], pool, &err), SDLK_OK);
            ck_assert_mem_eq(a, b, (size_t)g->edges * sizeof(float));
            ck_assert_mem_eq(b, c, (size_t)g->edges * sizeof(float));
            for (int64_t r = 0; r < g->nodes; r++)
                for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++) {
                    double sum = 0, magnitude = 0;
                    for (int64_t d = 0; d < dim; d++) {
                        double term = (double)x[r * dim + d] *
                                      (double)x[(int64_t)g->col_idx[k] * dim + d];
                        sum += term;
                        magnitude += fabs(term);
                    }
                    if (!(fabs(a[k] - sum) <= 1e-5 * magnitude + 1e-30))
                        ck_abort_msg("sddmm dim %lld edge %lld: %.9g vs %.9g", (long long)dim,
                                     (long long)k, a[k], sum);
                }
        }
        free(x);
    }
    free(a);
    free(b);
    free(c);
    sdlk_sgt_free(&sgt);
    sdlk_pool_destroy(pool);
}

START_TEST(sddmm_matches_reference)
{
    sdlk_graph g;
    load_graph("karate.mtx.gz", NULL, &g);
    check_sddmm_graph(&g);
    sdlk_graph_free(&g);
    load_graph("power.mtx.gz", NULL, &g);
    check_sddmm_graph(&g);
    sdlk_graph_free(&g);
    rmat_graph(777, 6000, 1, NULL, &g);
    check_sddmm_graph(&g);
    sdlk_graph_free(&g);
}
END_TEST

int main(void)
{
    return UNIT_RUN("spmm",
                    spmm_real_graphs,
                    spmm_rmat_signed_and_custom_values,
                    spmm_hub_window,
                    spmm_argument_errors,
                    spmm_device_option,
                    sddmm_matches_reference);
}
