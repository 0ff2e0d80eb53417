/* Unit tests of lib/graph: readers, CSR construction, R-MAT, Sparse Graph Translation. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/pool.h"
#include "core/tensorset.h"
#include "graph/graph.h"
#include "graph/sgt.h"
#include "io/npz.h"
#include "unit.h"

/* Check records every passing ck_assert (an IPC message each), which makes asserts in
 * loops over thousands of nonzeros dominate the run time: loops use REQUIRE, which only
 * talks to Check when the condition fails. */
#define REQUIRE(cond)                                                                        \
    do {                                                                                     \
        if (!(cond))                                                                         \
            ck_abort_msg("%s:%d: requirement failed: %s", __FILE__, __LINE__, #cond);        \
    } while (0)

static const char *testdata(const char *name, char *buf, size_t size)
{
    const char *dir = getenv("SDL_TESTDATA");
    snprintf(buf, size, "%s/graphs/%s", dir ? dir : "tests/data", name);
    return buf;
}

/* Write `text` to a fresh temporary file (gzip-compressed when gz) and return its path. */
static char *temp_file(const char *text, int gz, const char *suffix)
{
    static char paths[8][64];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 64, "/tmp/sdl_graph_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    ck_assert_int_ge(fd, 0);
    if (gz) {
        gzFile f = gzdopen(fd, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(gzwrite(f, text, (unsigned)strlen(text)), (int)strlen(text));
        gzclose(f);
    } else {
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
    }
    return path;
}

/* Dense value of (r, c) summed over a COO (independent of the CSR builder). */
static double coo_at(const sdlk_coo *coo, int r, int c)
{
    double sum = 0;
    for (int64_t k = 0; k < coo->count; k++)
        if (coo->row[k] == r && coo->col[k] == c)
            sum += coo->value ? coo->value[k] : 1.0;
    return sum;
}

static double graph_at(const sdlk_graph *g, int64_t r, int64_t c)
{
    double sum = 0;
    for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++)
        if (g->col_idx[k] == c)
            sum += g->values ? g->values[k] : 1.0;
    return sum;
}

static void assert_csr_sorted(const sdlk_graph *g, int strictly)
{
    REQUIRE((g->row_ptr[0]) == (0));
    REQUIRE((g->row_ptr[g->nodes]) == (g->edges));
    for (int64_t r = 0; r < g->nodes; r++)
        for (int64_t k = g->row_ptr[r] + 1; k < g->row_ptr[r + 1]; k++) {
            if (strictly)
                REQUIRE((g->col_idx[k - 1]) < (g->col_idx[k]));
            else
                REQUIRE((g->col_idx[k - 1]) <= (g->col_idx[k]));
        }
}

/* ---- real graphs ---------------------------------------------------------------- */

START_TEST(karate_known_values)
{
    char path[512];
    sdlk_error err = {0};
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    sdlk_mtx_info info;
    ck_assert_int_eq(sdlk_mtx_read(testdata("karate.mtx.gz", path, sizeof path), 1, &coo, &info,
                                   &err),
                     SDLK_OK);
    REQUIRE((info.symmetry) == (1));
    REQUIRE((info.field) == (0));
    REQUIRE((info.entries) == (78));
    REQUIRE((coo.rows) == (34));
    REQUIRE((coo.count) == (156)); /* 78 undirected edges, both directions */
    ck_assert_ptr_null(coo.value);
    sdlk_graph g;
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, &err), SDLK_OK);
    REQUIRE((g.nodes) == (34));
    REQUIRE((g.edges) == (156));
    assert_csr_sorted(&g, 1);
    /* Zachary's karate club: the instructor (1) and the president (34) */
    REQUIRE((g.row_ptr[1] - g.row_ptr[0]) == (16));
    REQUIRE((g.row_ptr[34] - g.row_ptr[33]) == (17));
    REQUIRE((g.row_ptr[33] - g.row_ptr[32]) == (12));
    ck_assert_int_eq(sdlk_graph_max_degree(&g), 17);
    REQUIRE(graph_at(&g, 1, 0) == 1 && graph_at(&g, 0, 1) == 1); /* "2 1" */
    REQUIRE(graph_at(&g, 33, 32) == 1 && graph_at(&g, 0, 33) == 0);
    for (int64_t r = 0; r < g.nodes; r++) /* symmetric */
        for (int64_t k = g.row_ptr[r]; k < g.row_ptr[r + 1]; k++)
            REQUIRE(graph_at(&g, g.col_idx[k], r) == 1);
    sdlk_graph_free(&g);
    sdlk_coo_free(&coo);
}
END_TEST

START_TEST(real_graphs_counts)
{
    /* expected values computed independently from the files (Python, set semantics) */
    struct {
        const char *file;
        int64_t nodes, stored, unique, max_degree;
    } cases[] = {
        {"football.mtx.gz", 115, 1226, 1226, 12},
        {"power.mtx.gz", 4941, 13188, 13188, 19},
        {"polblogs.mtx.gz", 1490, 19090, 19025, 256},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        sdlk_error err = {0};
        sdlk_graph g;
        sdlk_graph_options keep = {0}, drop = {.duplicates = SDLK_DUP_DROP};
        testdata(cases[i].file, path, sizeof path);
        ck_assert_int_eq(sdlk_graph_read(path, SDLK_GRAPH_AUTO, &keep, &g, &err), SDLK_OK);
        ck_assert_int_eq(g.nodes, cases[i].nodes);
        ck_assert_int_eq(g.edges, cases[i].stored);
        assert_csr_sorted(&g, 0);
        sdlk_graph_free(&g);
        ck_assert_int_eq(sdlk_graph_read(path, SDLK_GRAPH_MTX, &drop, &g, &err), SDLK_OK);
        ck_assert_int_eq(g.edges, cases[i].unique);
        ck_assert_int_eq(sdlk_graph_max_degree(&g), cases[i].max_degree);
        assert_csr_sorted(&g, 1);
        sdlk_graph_free(&g);
    }
}
END_TEST

START_TEST(polblogs_options)
{
    char path[512];
    sdlk_error err = {0};
    sdlk_graph g;
    testdata("polblogs.mtx.gz", path, sizeof path);
    /* 3 self-loops, 65 repeated edges; (24, 23) appears twice */
    sdlk_graph_options sum = {.duplicates = SDLK_DUP_SUM};
    ck_assert_int_eq(sdlk_graph_read(path, SDLK_GRAPH_AUTO, &sum, &g, &err), SDLK_OK);
    ck_assert_int_eq(g.edges, 19025);
    ck_assert_ptr_nonnull(g.values);
    ck_assert(graph_at(&g, 23, 22) == 2.0);
    double total = 0;
    for (int64_t k = 0; k < g.edges; k++)
        total += g.values[k];
    ck_assert(total == 19090.0);
    sdlk_graph_free(&g);
    sdlk_graph_options sym = {.symmetrize = 1, .duplicates = SDLK_DUP_DROP};
    ck_assert_int_eq(sdlk_graph_read(path, SDLK_GRAPH_AUTO, &sym, &g, &err), SDLK_OK);
    ck_assert_int_eq(g.edges, 33433);
    sdlk_graph_free(&g);
    sym.self_loops = 1;
    ck_assert_int_eq(sdlk_graph_read(path, SDLK_GRAPH_AUTO, &sym, &g, &err), SDLK_OK);
    ck_assert_int_eq(g.edges, 34920);
    for (int64_t r = 0; r < g.nodes; r++)
        ck_assert(graph_at(&g, r, r) == 1.0);
    assert_csr_sorted(&g, 1);
    sdlk_graph_free(&g);
}
END_TEST

/* ---- Matrix Market variants ----------------------------------------------------------- */

START_TEST(mtx_variants)
{
    sdlk_error err = {0};
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    /* coordinate real general, comments and blank lines, CRLF, odd spacing */
    const char *general = "%%MatrixMarket matrix coordinate real general\r\n"
                          "% a comment\n\n"
                          "3 4 3\n"
                          "1 1 2.5\n"
                          "  3\t4   -1e-3\n"
                          "\n"
                          "2 1 7\r\n";
    ck_assert_int_eq(sdlk_mtx_read(temp_file(general, 0, ".mtx"), 0, &coo, NULL, &err), SDLK_OK);
    ck_assert_int_eq(coo.rows, 3);
    ck_assert_int_eq(coo.cols, 4);
    ck_assert_int_eq(coo.count, 3);
    ck_assert(coo_at(&coo, 0, 0) == 2.5f && coo_at(&coo, 2, 3) == -1e-3f && coo_at(&coo, 1, 0) == 7);
    /* integer symmetric, gzip: off-diagonal mirrored, diagonal once */
    const char *symmetric = "%%MatrixMarket matrix coordinate integer symmetric\n"
                            "3 3 3\n1 1 5\n3 1 -2\n3 2 4\n";
    ck_assert_int_eq(sdlk_mtx_read(temp_file(symmetric, 1, ".mtx.gz"), 1, &coo, NULL, &err),
                     SDLK_OK);
    ck_assert_int_eq(coo.count, 5);
    ck_assert(coo_at(&coo, 0, 0) == 5 && coo_at(&coo, 2, 0) == -2 && coo_at(&coo, 0, 2) == -2);
    ck_assert(coo_at(&coo, 1, 2) == 4 && coo_at(&coo, 2, 2) == 0);
    /* skew-symmetric: mirrored negated */
    const char *skew = "%%MatrixMarket matrix coordinate real skew-symmetric\n2 2 1\n2 1 3\n";
    ck_assert_int_eq(sdlk_mtx_read(temp_file(skew, 0, ".mtx"), 1, &coo, NULL, &err), SDLK_OK);
    ck_assert(coo_at(&coo, 1, 0) == 3 && coo_at(&coo, 0, 1) == -3 && coo.count == 2);
    /* pattern general */
    const char *pattern = "%%matrixmarket MATRIX Coordinate Pattern General\n2 2 2\n1 2\n2 2\n";
    ck_assert_int_eq(sdlk_mtx_read(temp_file(pattern, 0, ".mtx"), 1, &coo, NULL, &err), SDLK_OK);
    ck_assert_ptr_null(coo.value);
    ck_assert(coo_at(&coo, 0, 1) == 1 && coo_at(&coo, 1, 1) == 1 && coo.count == 2);
    /* array general: column-major, zeros not stored */
    const char *array = "%%MatrixMarket matrix array real general\n2 3\n1\n0\n0\n4\n5\n6\n";
    ck_assert_int_eq(sdlk_mtx_read(temp_file(array, 0, ".mtx"), 0, &coo, NULL, &err), SDLK_OK);
    ck_assert_int_eq(coo.count, 4);
    ck_assert(coo_at(&coo, 0, 0) == 1 && coo_at(&coo, 1, 1) == 4 && coo_at(&coo, 0, 2) == 5 &&
              coo_at(&coo, 1, 2) == 6 && coo_at(&coo, 1, 0) == 0);
    /* array symmetric: lower triangle with diagonal, column-major */
    const char *array_sym = "%%MatrixMarket matrix array integer symmetric\n3 3\n1\n2\n3\n4\n5\n6\n";
    ck_assert_int_eq(sdlk_mtx_read(temp_file(array_sym, 0, ".mtx"), 1, &coo, NULL, &err), SDLK_OK);
    ck_assert_int_eq(coo.count, 9);
    ck_assert(coo_at(&coo, 1, 0) == 2 && coo_at(&coo, 0, 1) == 2 && coo_at(&coo, 2, 1) == 5 &&
              coo_at(&coo, 1, 2) == 5 && coo_at(&coo, 2, 2) == 6 && coo_at(&coo, 1, 1) == 4);
    /* array skew-symmetric: strictly lower triangle */
    const char *array_skew = "%%MatrixMarket matrix array real skew-symmetric\n3 3\n1\n2\n3\n";
    ck_assert_int_eq(sdlk_mtx_read(temp_file(array_skew, 0, ".mtx"), 1, &coo, NULL, &err),
                     SDLK_OK);
    ck_assert_int_eq(coo.count, 6);
    ck_assert(coo_at(&coo, 1, 0) == 1 && coo_at(&coo, 0, 1) == -1 && coo_at(&coo, 2, 1) == 3 &&
              coo_at(&coo, 1, 2) == -3 && coo_at(&coo, 0, 0) == 0);
    /* an empty matrix is fine */
    ck_assert_int_eq(sdlk_mtx_read(temp_file("%%MatrixMarket matrix coordinate pattern general\n"
                                             "0 0 0\n",
                                             0, ".mtx"),
                                   1, &coo, NULL, &err),
                     SDLK_OK);
    ck_assert_int_eq(coo.count, 0);
    sdlk_coo_free(&coo);
}
END_TEST

START_TEST(mtx_bad_inputs)
{
    struct {
        const char *text;
        sdlk_status code;
        const char *where;   /* ":line:" expected in the message */
        const char *problem; /* a word of the message */
        int require_square;
    } cases[] = {
        {"", SDLK_ERR_FORMAT, "", "empty", 1},
        {"hello\n1 1 0\n", SDLK_ERR_FORMAT, ":1:", "banner", 1},
        {"%%MatrixMarket matrix coordinate real\n1 1 0\n", SDLK_ERR_FORMAT, ":1:", "5 words", 1},
        {"%%MatrixMarket matrix coordinate fuzzy general\n", SDLK_ERR_FORMAT, ":1:", "fuzzy", 1},
        {"%%MatrixMarket matrix sparse real general\n", SDLK_ERR_FORMAT, ":1:", "sparse", 1},
        {"%%MatrixMarket matrix coordinate real diagonal\n", SDLK_ERR_FORMAT, ":1:", "diagonal", 1},
        {"%%MatrixMarket matrix coordinate complex general\n1 1 0\n", SDLK_ERR_UNSUPPORTED, ":1:",
         "complex", 1},
        {"%%MatrixMarket matrix coordinate real hermitian\n1 1 0\n", SDLK_ERR_UNSUPPORTED, ":1:",
         "hermitian", 1},
        {"%%MatrixMarket vector coordinate real general\n1 1 0\n", SDLK_ERR_UNSUPPORTED, ":1:",
         "vector", 1},
        {"%%MatrixMarket matrix array pattern general\n1 1\n", SDLK_ERR_FORMAT, ":1:", "pattern", 1},
        {"%%MatrixMarket matrix coordinate real general\n% only comments\n", SDLK_ERR_FORMAT, ":2:",
         "size line", 1},
        {"%%MatrixMarket matrix coordinate real general\n3 3\n", SDLK_ERR_FORMAT, ":2:", "size", 1},
        {"%%MatrixMarket matrix coordinate real general\n3 x 1\n", SDLK_ERR_FORMAT, ":2:", "size", 1},
        {"%%MatrixMarket matrix coordinate real general\n-3 3 1\n", SDLK_ERR_FORMAT, ":2:", "size",
         1},
        {"%%MatrixMarket matrix coordinate real general\n2 3 0\n", SDLK_ERR_FORMAT, ":2:", "square",
         1},
        {"%%MatrixMarket matrix coordinate real symmetric\n2 3 0\n", SDLK_ERR_FORMAT, ":2:",
         "square", 0},
        {"%%MatrixMarket matrix coordinate pattern general\n3 3 1\n0 1\n", SDLK_ERR_FORMAT, ":3:",
         "row index 0", 1},
        {"%%MatrixMarket matrix coordinate pattern general\n3 3 1\n4 1\n", SDLK_ERR_FORMAT, ":3:",
         "row index 4 out of range 1..3", 1},
        {"%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 1\n% c\n1 0\n",
         SDLK_ERR_FORMAT, ":5:", "column index 0", 1},
        {"%%MatrixMarket matrix coordinate pattern general\n3 3 1\n1 99999999999999999999\n",
         SDLK_ERR_FORMAT, ":3:", "expected", 1},
        /* values that are no finite f32 (1e39 fits a double, not a float) */
        {"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 2 1e39\n", SDLK_ERR_FORMAT,
         ":3:", "expected", 1},
        {"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 2 nan\n", SDLK_ERR_FORMAT,
         ":3:", "expected", 1},
        {"%%MatrixMarket matrix array real general\n1 1\n-inf\n", SDLK_ERR_FORMAT, ":3:",
         "expected", 1},
        {"%%MatrixMarket matrix coordinate pattern general\n3 3 3\n1 1\n2 2\n", SDLK_ERR_FORMAT,
         ":4:", "2 of the 3", 1},
        {"%%MatrixMarket matrix coordinate pattern general\n3 3 1\n1 1\n2 2\n", SDLK_ERR_FORMAT,
         ":4:", "more entries", 1},
        {"%%MatrixMarket matrix coordinate pattern general\n3 3 1\n1 1 1.0\n", SDLK_ERR_FORMAT,
         ":3:", "unexpected", 1},
        {"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1\n", SDLK_ERR_FORMAT, ":3:",
         "expected", 1},
        {"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1 abc\n", SDLK_ERR_FORMAT, ":3:",
         "expected", 1},
        {"%%MatrixMarket matrix coordinate integer general\n3 3 1\n1 1 1.5\n", SDLK_ERR_FORMAT,
         ":3:", "expected", 1},
        {"%%MatrixMarket matrix coordinate real skew-symmetric\n3 3 1\n2 2 1\n", SDLK_ERR_FORMAT,
         ":3:", "diagonal", 1},
        {"%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n", SDLK_ERR_FORMAT, ":5:",
         "3 of the 4", 1},
        {"%%MatrixMarket matrix array real general\n1 1\n1 2\n", SDLK_ERR_FORMAT, ":3:", "one real",
         1},
        {"%%MatrixMarket matrix array real general\n1 1\n1\n2\n", SDLK_ERR_FORMAT, ":4:",
         "more entries", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int gz = 0; gz < 2; gz++) {
            sdlk_error err = {0};
            sdlk_coo coo;
            sdlk_coo_init(&coo);
            char *path = temp_file(cases[i].text, gz, gz ? ".mtx.gz" : ".mtx");
            sdlk_status st = sdlk_mtx_read(path, cases[i].require_square, &coo, NULL, &err);
            if (st != cases[i].code || !strstr(err.msg, path) || !strstr(err.msg, cases[i].where) ||
                !strstr(err.msg, cases[i].problem))
                ck_abort_msg("case %zu (gz %d): status %d, message '%s'", i, gz, st, err.msg);
            ck_assert_int_eq(coo.count, 0);
            ck_assert_ptr_null(coo.row);
            unlink(path);
        }
    }
    sdlk_error err = {0};
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    ck_assert_int_eq(sdlk_mtx_read("/nonexistent/g.mtx", 1, &coo, NULL, &err), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/g.mtx"));
    /* a truncated gzip stream is a read error, not a silent short file */
    char *path = temp_file("%%MatrixMarket matrix coordinate pattern general\n3 3 3\n1 1\n2 2\n3 3\n",
                           1, ".mtx.gz");
    FILE *f = fopen(path, "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    ck_assert_int_eq(truncate(path, size - 10), 0);
    sdlk_error_clear(&err);
    ck_assert_int_ne(sdlk_mtx_read(path, 1, &coo, NULL, &err), SDLK_OK);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    unlink(path);
}
END_TEST

/* ---- SNAP ------------------------------------------------------------------------- */

START_TEST(snap_remap_and_errors)
{
    sdlk_error err = {0};
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    const char *text = "# Directed graph: test\n# FromNodeId\tToNodeId\n"
                       "10\t20\n"
                       "20 1000000000000\n"
                       "\n"
                       "   7\t\t10  \n"
                       "% also a comment\n"
                       "10 10\n";
    ck_assert_int_eq(sdlk_snap_read(temp_file(text, 0, ".txt"), &coo, &err), SDLK_OK);
    ck_assert_int_eq(coo.rows, 4);
    ck_assert_int_eq(coo.count, 4);
    int64_t ids[4] = {7, 10, 20, 1000000000000LL};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(coo.node_ids[i], ids[i]);
    ck_assert(coo_at(&coo, 1, 2) == 1 && coo_at(&coo, 2, 3) == 1 && coo_at(&coo, 0, 1) == 1 &&
              coo_at(&coo, 1, 1) == 1);
    sdlk_graph g;
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, &err), SDLK_OK);
    ck_assert_int_eq(g.node_ids[3], 1000000000000LL);
    sdlk_graph_free(&g);
    /* dense ids take the table path; weights in a third column; gzip */
    ck_assert_int_eq(sdlk_snap_read(temp_file("3 1 0.5\n1 3 2\n", 1, ".txt.gz"), &coo, &err),
                     SDLK_OK);
    ck_assert_int_eq(coo.rows, 2);
    ck_assert(coo_at(&coo, 1, 0) == 0.5f && coo_at(&coo, 0, 1) == 2.0f);
    ck_assert_int_eq(sdlk_graph_read(temp_file("5 6\n6 5\n", 0, ".edges"), SDLK_GRAPH_AUTO, NULL,
                                     &g, &err),
                     SDLK_OK);
    ck_assert_int_eq(g.nodes, 2);
    ck_assert_int_eq(g.edges, 2);
    sdlk_graph_free(&g);
    /* the last three: weights that are no finite f32 (found by fuzz_graph: 2e104 became
     * an infinite edge value, and NaN from GCN normalisation downstream) */
    const char *bad[] = {"1 2\n3\n", "1 2\n-1 2\n", "1 2\nx y\n", "1 2 3\n4 5\n",
                         "1 2\n4 5 1 2\n", "1 2 w\n", "1 2 1\n2 3 2e104\n",
                         "1 2 nan\n", "1 2 -inf\n"};
    const char *where[] = {":2:", ":2:", ":2:", ":2:", ":2:", ":1:", ":2:", ":1:", ":1:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sdlk_error_clear(&err);
        char *path = temp_file(bad[i], 0, ".txt");
        ck_assert_int_eq(sdlk_snap_read(path, &coo, &err), SDLK_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(err.msg, path));
        if (!strstr(err.msg, where[i]))
            ck_abort_msg("snap case %zu: '%s'", i, err.msg);
        unlink(path);
    }
    sdlk_coo_free(&coo);
}
END_TEST

/* ---- SciPy .npz ---------------------------------------------------------------------- */

static void add_i64(sdlk_tensor_set *set, const char *name, const int64_t *data, int64_t n)
{
    sdlk_tensor t;
    ck_assert_int_eq(sdlk_tensor_alloc(&t, SDLK_I64, 1, &n, NULL), SDLK_OK);
    memcpy(t.data, data, (size_t)n * 8);
    ck_assert_int_eq(sdlk_tensor_set_add(set, name, &t, NULL), SDLK_OK);
}

static char *write_sparse_npz(const int64_t *indptr, int64_t rows, const int64_t *indices,
                              const double *data, int64_t nnz, int64_t cols, const char *format)
{
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    add_i64(&set, "indptr", indptr, rows + 1);
    add_i64(&set, "indices", indices, nnz);
    sdlk_tensor t;
    ck_assert_int_eq(sdlk_tensor_alloc(&t, SDLK_F64, 1, &nnz, NULL), SDLK_OK);
    memcpy(t.data, data, (size_t)nnz * 8);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "data", &t, NULL), SDLK_OK);
    int64_t shape[2] = {rows, cols};
    add_i64(&set, "shape", shape, 2);
    if (format) {
        int64_t len = (int64_t)strlen(format);
        ck_assert_int_eq(sdlk_tensor_alloc(&t, SDLK_U8, 1, &len, NULL), SDLK_OK);
        memcpy(t.data, format, (size_t)len);
        ck_assert_int_eq(sdlk_tensor_set_add(&set, "format", &t, NULL), SDLK_OK);
    }
    char *path = temp_file("", 0, ".npz");
    FILE *f = fopen(path, "wb");
    ck_assert_int_eq(sdlk_npz_write(f, &set, 1, path, NULL), SDLK_OK);
    fclose(f);
    sdlk_tensor_set_free(&set);
    return path;
}

START_TEST(npz_csr_and_csc)
{
    sdlk_error err = {0};
    sdlk_graph g;
    /* [[0 2 0], [1 0 3], [0 0 0]] */
    int64_t indptr[4] = {0, 1, 3, 3}, indices[3] = {1, 0, 2};
    double data[3] = {2, 1, 3};
    char *path = write_sparse_npz(indptr, 3, indices, data, 3, 3, "csr");
    ck_assert_int_eq(sdlk_graph_read(path, SDLK_GRAPH_AUTO, NULL, &g, &err), SDLK_OK);
    ck_assert_int_eq(g.nodes, 3);
    ck_assert_int_eq(g.edges, 3);
    ck_assert(graph_at(&g, 0, 1) == 2 && graph_at(&g, 1, 0) == 1 && graph_at(&g, 1, 2) == 3);
    sdlk_graph_free(&g);
    sdlk_graph_options loops = {.self_loops = 1};
    ck_assert_int_eq(sdlk_graph_read(path, SDLK_GRAPH_NPZ, &loops, &g, &err), SDLK_OK);
    ck_assert_int_eq(g.edges, 6);
    ck_assert(graph_at(&g, 2, 2) == 1 && graph_at(&g, 1, 2) == 3);
    sdlk_graph_free(&g);
    unlink(path);
    /* the same arrays read as CSC are the transpose */
    path = write_sparse_npz(indptr, 3, indices, data, 3, 3, "csc");
    ck_assert_int_eq(sdlk_npz_graph_read(path, &g, &err), SDLK_OK);
    ck_assert(graph_at(&g, 1, 0) == 2 && graph_at(&g, 0, 1) == 1 && graph_at(&g, 2, 1) == 3);
    assert_csr_sorted(&g, 1);
    sdlk_graph_free(&g);
    unlink(path);
    /* arrays that disagree */
    int64_t bad_indices[3] = {1, 0, 5};
    path = write_sparse_npz(indptr, 3, bad_indices, data, 3, 3, NULL);
    ck_assert_int_eq(sdlk_npz_graph_read(path, &g, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    unlink(path);
    int64_t bad_indptr[4] = {0, 2, 1, 3};
    sdlk_error_clear(&err);
    path = write_sparse_npz(bad_indptr, 3, indices, data, 3, 3, NULL);
    ck_assert_int_eq(sdlk_npz_graph_read(path, &g, &err), SDLK_ERR_FORMAT);
    unlink(path);
    sdlk_error_clear(&err);
    path = write_sparse_npz(indptr, 3, indices, data, 3, 4, NULL);
    ck_assert_int_eq(sdlk_npz_graph_read(path, &g, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "square"));
    unlink(path);
    sdlk_error_clear(&err);
    path = write_sparse_npz(indptr, 3, indices, data, 3, 3, "coo");
    ck_assert_int_eq(sdlk_npz_graph_read(path, &g, &err), SDLK_ERR_UNSUPPORTED);
    unlink(path);
}
END_TEST

/* ---- CSR construction options ------------------------------------------------------ */

START_TEST(gcn_normalisation_direct)
{
    char path[512];
    sdlk_error err = {0};
    sdlk_graph g;
    sdlk_graph_options opts = {.gcn_normalize = 1, .duplicates = SDLK_DUP_DROP};
    ck_assert_int_eq(sdlk_graph_read(testdata("football.mtx.gz", path, sizeof path),
                                     SDLK_GRAPH_AUTO, &opts, &g, &err),
                     SDLK_OK);
    /* direct: dense A + I, degrees, D^-1/2 (A+I) D^-1/2 */
    int n = (int)g.nodes;
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    ck_assert_int_eq(sdlk_mtx_read(path, 1, &coo, NULL, &err), SDLK_OK);
    double *dense = calloc((size_t)n * n, sizeof(double));
    for (int64_t k = 0; k < coo.count; k++)
        dense[coo.row[k] * n + coo.col[k]] = 1;
    for (int i = 0; i < n; i++)
        dense[i * n + i] = 1;
    double *degree = calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            degree[i] += dense[i * n + j];
    REQUIRE((g.edges) == (1226 + 115));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double expect = dense[i * n + j] / sqrt(degree[i] * degree[j]);
            REQUIRE(fabs(graph_at(&g, i, j) - expect) <= 1e-7);
        }
    free(dense);
    free(degree);
    sdlk_coo_free(&coo);
    sdlk_graph_free(&g);
    /* an existing self-loop is not doubled; a weighted one keeps its weight */
    sdlk_coo_init(&coo);
    coo.rows = coo.cols = 2;
    ck_assert_int_eq(sdlk_coo_push(&coo, 0, 0, 1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_coo_push(&coo, 0, 1, 1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_coo_push(&coo, 5, 1, 1, &err), SDLK_ERR_ARG);
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, &opts, &g, &err), SDLK_OK);
    REQUIRE((g.edges) == (3));
    ck_assert_double_eq_tol(graph_at(&g, 0, 0), 0.5, 1e-7);
    ck_assert_double_eq_tol(graph_at(&g, 0, 1), 1 / sqrt(2.0), 1e-7);
    ck_assert_double_eq_tol(graph_at(&g, 1, 1), 1.0, 1e-7);
    sdlk_graph_free(&g);
    sdlk_coo_free(&coo);
}
END_TEST

START_TEST(build_options_small)
{
    sdlk_error err = {0};
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    coo.rows = coo.cols = 4;
    /* (2,1) twice with values 3 and 4, a mirror pair (0,3)/(3,0) */
    float v[] = {3, 4, 1, 2, 5};
    int r[] = {2, 2, 0, 3, 1}, c[] = {1, 1, 3, 0, 1};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sdlk_coo_push(&coo, r[i], c[i], v[i], &err), SDLK_OK);
    ck_assert_ptr_null(coo.value); /* pushing into a pattern list keeps it pattern */
    ck_assert_int_eq(sdlk_coo_reserve(&coo, 8, 1, &err), SDLK_OK);
    for (int i = 0; i < 5; i++)
        coo.value[i] = v[i];
    sdlk_graph g;
    sdlk_graph_options keep = {0};
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, &keep, &g, &err), SDLK_OK);
    ck_assert_int_eq(g.edges, 5);
    ck_assert(g.values[g.row_ptr[2]] == 3 && g.values[g.row_ptr[2] + 1] == 4); /* stable */
    sdlk_graph_free(&g);
    sdlk_graph_options drop = {.duplicates = SDLK_DUP_DROP};
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, &drop, &g, &err), SDLK_OK);
    ck_assert_int_eq(g.edges, 4);
    ck_assert(graph_at(&g, 2, 1) == 3);
    sdlk_graph_free(&g);
    sdlk_graph_options sym_sum = {.symmetrize = 1, .duplicates = SDLK_DUP_SUM};
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, &sym_sum, &g, &err), SDLK_OK);
    /* (2,1)=7, (1,2)=7, (0,3)=1+2, (3,0)=2+1, (1,1)=5 (diagonal not mirrored) */
    ck_assert_int_eq(g.edges, 5);
    ck_assert(graph_at(&g, 2, 1) == 7 && graph_at(&g, 1, 2) == 7 && graph_at(&g, 0, 3) == 3 &&
              graph_at(&g, 3, 0) == 3 && graph_at(&g, 1, 1) == 5);
    sdlk_graph_free(&g);
    coo.cols = 5;
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, &keep, &g, &err), SDLK_ERR_ARG);
    sdlk_coo_free(&coo);
    /* from_csr validation */
    int64_t row_ptr[3] = {0, 2, 1};
    int32_t cols[2] = {0, 1};
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_graph_from_csr(2, 2, row_ptr, cols, NULL, "x", &g, &err),
                     SDLK_ERR_FORMAT);
    int64_t good_ptr[3] = {0, 1, 2};
    int32_t bad_cols[2] = {0, 2};
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_graph_from_csr(2, 2, good_ptr, bad_cols, NULL, "x", &g, &err),
                     SDLK_ERR_FORMAT);
    ck_assert_int_eq(sdlk_graph_from_csr(2, 2, good_ptr, cols, NULL, "x", &g, &err), SDLK_OK);
    sdlk_graph_free(&g);
}
END_TEST

START_TEST(reorder_by_degree)
{
    char path[512];
    sdlk_error err = {0};
    sdlk_graph g, h;
    ck_assert_int_eq(sdlk_graph_read(testdata("polblogs.mtx.gz", path, sizeof path),
                                     SDLK_GRAPH_AUTO, NULL, &g, &err),
                     SDLK_OK);
    ck_assert_int_eq(sdlk_graph_reorder_by_degree(&g, &h, &err), SDLK_OK);
    REQUIRE((h.edges) == (g.edges));
    char *seen = calloc((size_t)g.nodes, 1);
    for (int64_t i = 0; i < h.nodes; i++) {
        REQUIRE(!seen[h.perm[i]]);
        seen[h.perm[i]] = 1;
        int64_t old = h.perm[i];
        REQUIRE((h.row_ptr[i + 1] - h.row_ptr[i]) == (g.row_ptr[old + 1] - g.row_ptr[old]));
        if (i > 0)
            REQUIRE((h.row_ptr[i + 1] - h.row_ptr[i]) <= (h.row_ptr[i] - h.row_ptr[i - 1]));
    }
    assert_csr_sorted(&h, 0);
    /* h[i][j] = g[perm i][perm j] on every stored entry */
    for (int64_t i = 0; i < h.nodes; i++)
        for (int64_t k = h.row_ptr[i]; k < h.row_ptr[i + 1]; k++)
            REQUIRE(graph_at(&g, h.perm[i], h.perm[h.col_idx[k]]) >= 1);
    sdlk_graph twice;
    ck_assert_int_eq(sdlk_graph_reorder_by_degree(&h, &twice, &err), SDLK_OK);
    for (int64_t i = 0; i < h.nodes; i++) /* already ordered: composition is unchanged */
        REQUIRE((twice.perm[i]) == (h.perm[i]));
    free(seen);
    sdlk_graph_free(&twice);
    sdlk_graph_free(&h);
    sdlk_graph_free(&g);
}
END_TEST

/* Largest |i - j| over the stored entries: what RCM reduces. */
static int64_t bandwidth(const sdlk_graph *g)
{
    int64_t widest = 0;
    for (int64_t r = 0; r < g->nodes; r++)
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++) {
            int64_t d = g->col_idx[k] > r ? g->col_idx[k] - r : r - g->col_idx[k];
            widest = d > widest ? d : widest;
        }
    return widest;
}

/* A k x k grid (4-neighbour, both directions) whose nodes are numbered by a seeded
 * shuffle, so its bandwidth starts near N. */
static void scrambled_grid(int k, sdlk_graph *g)
{
    int n = k * k;
    int32_t *label = malloc((size_t)n * sizeof *label);
    for (int i = 0; i < n; i++)
        label[i] = i;
    uint64_t state = 12345;
    for (int i = n - 1; i > 0; i--) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((state >> 33) % (uint64_t)(i + 1));
        int32_t t = label[i];
        label[i] = label[j];
        label[j] = t;
    }
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    coo.rows = coo.cols = n;
    for (int y = 0; y < k; y++)
        for (int x = 0; x < k; x++) {
            int here = label[y * k + x];
            if (x + 1 < k) {
                ck_assert_int_eq(sdlk_coo_push(&coo, here, label[y * k + x + 1], 1, NULL), SDLK_OK);
                ck_assert_int_eq(sdlk_coo_push(&coo, label[y * k + x + 1], here, 1, NULL), SDLK_OK);
            }
            if (y + 1 < k) {
                ck_assert_int_eq(sdlk_coo_push(&coo, here, label[(y + 1) * k + x], 1, NULL), SDLK_OK);
                ck_assert_int_eq(sdlk_coo_push(&coo, label[(y + 1) * k + x], here, 1, NULL), SDLK_OK);
            }
        }
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, g, NULL), SDLK_OK);
    sdlk_coo_free(&coo);
    free(label);
}

/* h = P g P^T with h.perm[new] = old, every entry and value carried over. */
static void assert_permuted(const sdlk_graph *g, const sdlk_graph *h)
{
    REQUIRE(h->nodes == g->nodes && h->edges == g->edges);
    char *seen = calloc((size_t)g->nodes + 1, 1);
    for (int64_t i = 0; i < h->nodes; i++) {
        REQUIRE(h->perm[i] >= 0 && h->perm[i] < g->nodes && !seen[h->perm[i]]);
        seen[h->perm[i]] = 1;
    }
    free(seen);
    assert_csr_sorted(h, 0);
    for (int64_t i = 0; i < h->nodes; i++)
        for (int64_t k = h->row_ptr[i]; k < h->row_ptr[i + 1]; k++)
            REQUIRE(graph_at(g, h->perm[i], h->perm[h->col_idx[k]]) ==
                    (h->values ? h->values[k] : 1.0));
}

START_TEST(reorder_rcm_bands)
{
    sdlk_error err = {0};
    /* a 30 x 30 grid: RCM numbers it by anti-diagonals from a corner, bandwidth ~k */
    sdlk_graph g, h;
    scrambled_grid(30, &g);
    REQUIRE(bandwidth(&g) > 600);
    ck_assert_int_eq(sdlk_graph_reorder_rcm(&g, &h, &err), SDLK_OK);
    assert_permuted(&g, &h);
    ck_assert_int_le(bandwidth(&h), 31);
    sdlk_graph_free(&h);
    sdlk_graph_free(&g);

    /* a path numbered 0, 17, 34, 11, ... (stride 17 mod 40) comes back as a path */
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    coo.rows = coo.cols = 40;
    for (int i = 0; i + 1 < 40; i++) /* one direction only: RCM uses A + A^T */
        ck_assert_int_eq(sdlk_coo_push(&coo, (i * 17) % 40, ((i + 1) * 17) % 40, 2.5, NULL),
                         SDLK_OK);
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, NULL), SDLK_OK);
    sdlk_coo_free(&coo);
    ck_assert_int_eq(sdlk_graph_reorder_rcm(&g, &h, &err), SDLK_OK);
    assert_permuted(&g, &h);
    ck_assert_int_eq(bandwidth(&h), 1);
    sdlk_graph_free(&h);
    sdlk_graph_free(&g);
}
END_TEST

START_TEST(reorder_rcm_components_and_ids)
{
    /* two triangles, an isolated node, a self-loop, SNAP ids: every node placed once, the
     * ids follow their nodes, and a later reordering composes with this one */
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    coo.rows = coo.cols = 7;
    const int edges[][2] = {{0, 4}, {4, 6}, {6, 0}, {1, 2}, {2, 5}, {5, 1}, {3, 3}};
    for (int e = 0; e < 7; e++)
        ck_assert_int_eq(sdlk_coo_push(&coo, edges[e][0], edges[e][1], (float)(e + 1), NULL),
                         SDLK_OK);
    coo.node_ids = malloc(7 * sizeof *coo.node_ids);
    for (int i = 0; i < 7; i++)
        coo.node_ids[i] = 100 + i;
    sdlk_graph g, h, twice;
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, NULL), SDLK_OK);
    sdlk_coo_free(&coo);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_graph_reorder_rcm(&g, &h, &err), SDLK_OK);
    assert_permuted(&g, &h);
    for (int64_t i = 0; i < h.nodes; i++)
        REQUIRE(h.node_ids[i] == 100 + h.perm[i]);
    /* each triangle's three nodes are numbered consecutively */
    int64_t new_of_old[7];
    for (int64_t i = 0; i < 7; i++)
        new_of_old[h.perm[i]] = i;
    const int tri[2][3] = {{0, 4, 6}, {1, 2, 5}};
    for (int t = 0; t < 2; t++) {
        int64_t lo = 7, hi = -1;
        for (int v = 0; v < 3; v++) {
            lo = new_of_old[tri[t][v]] < lo ? new_of_old[tri[t][v]] : lo;
            hi = new_of_old[tri[t][v]] > hi ? new_of_old[tri[t][v]] : hi;
        }
        ck_assert_int_eq(hi - lo, 2);
    }
    ck_assert_int_eq(sdlk_graph_reorder_by_degree(&h, &twice, &err), SDLK_OK);
    assert_permuted(&g, &twice); /* twice.perm maps straight back to g */
    int64_t bad_order[7] = {0, 1, 2, 3, 4, 5, 5};
    sdlk_graph none;
    ck_assert_int_eq(sdlk_graph_permute(&g, bad_order, &none, &err), SDLK_ERR_ARG);
    sdlk_graph_free(&twice);
    sdlk_graph_free(&h);
    sdlk_graph_free(&g);
}
END_TEST

/* ---- R-MAT ------------------------------------------------------------------------ */

START_TEST(rmat_deterministic_and_skewed)
{
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    ck_assert_ptr_nonnull(pool);
    sdlk_rmat_params p = sdlk_rmat_graph500(12, 16, 7);
    p.nodes = 3000; /* not a power of two */
    sdlk_coo one, two, other;
    sdlk_coo_init(&one);
    sdlk_coo_init(&two);
    sdlk_coo_init(&other);
    ck_assert_int_eq(sdlk_rmat_generate(&p, NULL, &one, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_rmat_generate(&p, pool, &two, &err), SDLK_OK);
    ck_assert_int_eq(one.count, 65536);
    ck_assert_mem_eq(one.row, two.row, (size_t)one.count * 4);
    ck_assert_mem_eq(one.col, two.col, (size_t)one.count * 4);
    p.seed = 8;
    ck_assert_int_eq(sdlk_rmat_generate(&p, pool, &other, &err), SDLK_OK);
    ck_assert(memcmp(one.row, other.row, (size_t)one.count * 4) != 0);
    int64_t *degree = calloc(3000, sizeof(int64_t));
    for (int64_t k = 0; k < one.count; k++) {
        REQUIRE(one.row[k] >= 0 && one.row[k] < 3000 && one.col[k] >= 0 && one.col[k] < 3000);
        degree[one.row[k]]++;
    }
    /* R-MAT's skew: node 0 is the largest hub, far above the mean degree of ~22 */
    for (int i = 1; i < 3000; i++)
        REQUIRE(degree[0] >= degree[i]);
    ck_assert_int_gt(degree[0], 500);
    /* quadrant a: both top bits 0 (ids < 2048) for about a of the edges at the top level */
    int64_t top_left = 0;
    for (int64_t k = 0; k < one.count; k++)
        top_left += one.row[k] < 2048 && one.col[k] < 2048;
    ck_assert_int_gt(top_left, one.count * 6 / 10);
    /* scrambling relabels nodes but keeps the degree multiset */
    p.seed = 7;
    p.scramble = 1;
    ck_assert_int_eq(sdlk_rmat_generate(&p, pool, &other, &err), SDLK_OK);
    int64_t *scrambled = calloc(3000, sizeof(int64_t));
    for (int64_t k = 0; k < other.count; k++)
        scrambled[other.row[k]]++;
    int64_t max_plain = 0, max_scrambled = 0;
    for (int i = 0; i < 3000; i++) {
        max_plain = degree[i] > max_plain ? degree[i] : max_plain;
        max_scrambled = scrambled[i] > max_scrambled ? scrambled[i] : max_scrambled;
    }
    ck_assert_int_eq(max_plain, max_scrambled);
    ck_assert_int_lt(scrambled[0], max_scrambled);
    p.a = 0.9;
    ck_assert_int_eq(sdlk_rmat_generate(&p, pool, &other, &err), SDLK_ERR_ARG);
    free(degree);
    free(scrambled);
    sdlk_coo_free(&one);
    sdlk_coo_free(&two);
    sdlk_coo_free(&other);
    sdlk_pool_destroy(pool);
}
END_TEST

/* ---- SGT ------------------------------------------------------------------------------ */

static int compare_int32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Brute force, independent of the library: per window, sort the columns and dedupe with
 * qsort; every nonzero must sit in exactly one tile at (row - first, rank % W) with the
 * right value, tiles in order, counts ceil(U/W); naive tiles = distinct col / W. */
static void check_sgt_brute_force(const sdlk_graph *g, const sdlk_sgt *s, int height, int width)
{
    REQUIRE((s->window_count) == ((g->nodes + height - 1) / height));
    int64_t naive = 0, tiles = 0;
    int *hits = calloc((size_t)(g->edges ? g->edges : 1), sizeof(int));
    for (int64_t w = 0; w < s->window_count; w++) {
        int64_t first = w * height, last = first + height < g->nodes ? first + height : g->nodes;
        int64_t nnz = g->row_ptr[last] - g->row_ptr[first];
        int32_t *cols = malloc((size_t)(nnz ? nnz : 1) * sizeof(int32_t));
        memcpy(cols, g->col_idx + g->row_ptr[first], (size_t)nnz * sizeof(int32_t));
        qsort(cols, (size_t)nnz, sizeof(int32_t), compare_int32);
        int64_t distinct = 0;
        for (int64_t i = 0; i < nnz; i++)
            if (distinct == 0 || cols[distinct - 1] != cols[i])
                cols[distinct++] = cols[i];
        for (int64_t i = 0; i < distinct; i++)
            naive += i == 0 || cols[i] / width != cols[i - 1] / width;
        REQUIRE((s->window_col_ptr[w + 1] - s->window_col_ptr[w]) == (distinct));
        ck_assert_mem_eq(s->window_cols + s->window_col_ptr[w], cols,
                         (size_t)distinct * sizeof(int32_t));
        int64_t window_tiles = (distinct + width - 1) / width;
        REQUIRE((s->window_tile_ptr[w + 1] - s->window_tile_ptr[w]) == (window_tiles));
        for (int64_t t = 0; t < window_tiles; t++) {
            int64_t tile = s->window_tile_ptr[w] + t;
            int count;
            const int32_t *map = sdlk_sgt_tile_columns(s, w, t, &count);
            REQUIRE((count) == (t * width + width <= distinct ? width : distinct - t * width));
            for (int64_t p = s->tile_nz_ptr[tile]; p < s->tile_nz_ptr[tile + 1]; p++) {
                int64_t k = s->tile_nz_edge[p];
                REQUIRE(k >= g->row_ptr[first] && k < g->row_ptr[last]);
                int64_t row = first + s->tile_nz_row[p];
                REQUIRE(row < last && k >= g->row_ptr[row] && k < g->row_ptr[row + 1]);
                REQUIRE((s->tile_nz_col[p]) < (count));
                REQUIRE((map[s->tile_nz_col[p]]) == (g->col_idx[k]));
                int32_t *rank = bsearch(&g->col_idx[k], cols, (size_t)distinct, sizeof(int32_t),
                                        compare_int32);
                REQUIRE((s->edge_condensed_col[k]) == (rank - cols));
                REQUIRE(((rank - cols) / width) == (t));
                REQUIRE(s->tile_nz_value[p] == (g->values ? g->values[k] : 1.0f));
                hits[k]++;
            }
        }
        tiles += window_tiles;
        free(cols);
    }
    for (int64_t k = 0; k < g->edges; k++)
        REQUIRE((hits[k]) == (1));
    REQUIRE((s->tile_count) == (tiles));
    REQUIRE((s->naive_tile_count) == (naive));
    free(hits);
}

static void sgt_all_shapes(const sdlk_graph *g, sdlk_pool *pool)
{
    int shapes[][2] = {{16, 8}, {5, 3}, {1, 1}, {32, 16}, {7, 256}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        sdlk_error err = {0};
        sdlk_sgt s;
        ck_assert_int_eq(sdlk_sgt_build(g, shapes[i][0], shapes[i][1], pool, &s, &err), SDLK_OK);
        check_sgt_brute_force(g, &s, shapes[i][0], shapes[i][1]);
        ck_assert_int_eq(sdlk_sgt_validate(&s, g, "t", &err), SDLK_OK);
        sdlk_sgt_free(&s);
    }
}

START_TEST(sgt_matches_brute_force)
{
    char path[512];
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    const char *files[] = {"karate.mtx.gz", "power.mtx.gz", "polblogs.mtx.gz"};
    for (int f = 0; f < 3; f++) {
        sdlk_graph g;
        sdlk_graph_options opts = {.gcn_normalize = f == 1}; /* values on one of them */
        ck_assert_int_eq(sdlk_graph_read(testdata(files[f], path, sizeof path), SDLK_GRAPH_AUTO,
                                         &opts, &g, &err),
                         SDLK_OK);
        sgt_all_shapes(&g, pool); /* polblogs keeps its duplicate entries */
        sdlk_graph_free(&g);
    }
    /* R-MAT with hubs (wide windows: multi-level bitset), N = 16k + 5 */
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    sdlk_rmat_params p = sdlk_rmat_graph500(14, 8, 3);
    p.nodes += 5;
    ck_assert_int_eq(sdlk_rmat_generate(&p, pool, &coo, &err), SDLK_OK);
    sdlk_graph g;
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, &err), SDLK_OK);
    sgt_all_shapes(&g, pool);
    sdlk_graph_free(&g);
    sdlk_coo_free(&coo);
    /* edge cases: no edges, one node */
    sdlk_coo_init(&coo);
    coo.rows = coo.cols = 17;
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, &err), SDLK_OK);
    sgt_all_shapes(&g, pool);
    sdlk_graph_free(&g);
    coo.rows = coo.cols = 1;
    ck_assert_int_eq(sdlk_coo_push(&coo, 0, 0, 1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, &err), SDLK_OK);
    sgt_all_shapes(&g, pool);
    sdlk_graph_free(&g);
    sdlk_coo_free(&coo);
    sdlk_sgt s;
    ck_assert_int_eq(sdlk_sgt_build(&g, 0, 300, NULL, &s, &err), SDLK_ERR_ARG);
    sdlk_pool_destroy(pool);
}
END_TEST

START_TEST(sgt_hand_computed_tiles)
{
    /* N = 20: window 0 = rows 0..15, window 1 = rows 16..19 (the short last window).
     * Window 0 columns {0,3,9,17,19}: U = 5 -> 1 tile; naive blocks col/8 {0,1,2} = 3.
     * Window 1 columns {0,1,2,7,8,12,15,16,19}: U = 9 -> 2 tiles; naive {0,1,2} = 3. */
    int edges[][2] = {{0, 0},   {0, 9},   {0, 17},  {1, 9},   {2, 3},   {15, 19}, {16, 1}, {17, 8},
                      {18, 16}, {19, 0},  {19, 7},  {19, 15}, {19, 2},  {19, 12}, {19, 19}};
    sdlk_error err = {0};
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    coo.rows = coo.cols = 20;
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        ck_assert_int_eq(sdlk_coo_push(&coo, edges[i][0], edges[i][1], 1, &err), SDLK_OK);
    sdlk_graph g;
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, NULL, &g, &err), SDLK_OK);
    sdlk_sgt s;
    ck_assert_int_eq(sdlk_sgt_build(&g, 0, 0, NULL, &s, &err), SDLK_OK);
    ck_assert_int_eq(s.window_count, 2);
    ck_assert_int_eq(s.naive_tile_count, 6);
    ck_assert_int_eq(s.tile_count, 3);
    int32_t window1[9] = {0, 1, 2, 7, 8, 12, 15, 16, 19};
    ck_assert_mem_eq(s.window_cols + s.window_col_ptr[1], window1, sizeof window1);
    /* (17, 8): condensed column 4 -> tile 0 of window 1, column 4, row 1 */
    int64_t k = g.row_ptr[17];
    ck_assert_int_eq(s.edge_condensed_col[k], 4);
    /* (19, 19): condensed 8 -> second tile of window 1, the tile's only column */
    int count;
    const int32_t *map = sdlk_sgt_tile_columns(&s, 1, 1, &count);
    ck_assert_int_eq(count, 1);
    ck_assert_int_eq(map[0], 19);
    int64_t tile = s.window_tile_ptr[1] + 1;
    ck_assert_int_eq(s.tile_nz_ptr[tile + 1] - s.tile_nz_ptr[tile], 1);
    ck_assert_int_eq(s.tile_nz_row[s.tile_nz_ptr[tile]], 3);
    ck_assert_int_eq(s.tile_nz_col[s.tile_nz_ptr[tile]], 0);
    sdlk_sgt_stats st;
    sdlk_sgt_stats_compute(&s, &st);
    ck_assert_int_eq(st.naive_tiles, 6);
    ck_assert_int_eq(st.sgt_tiles, 3);
    ck_assert_double_eq_tol(st.tile_reduction, 0.5, 1e-12);
    ck_assert_double_eq_tol(st.naive_useful, 15.0 / (6 * 128), 1e-12);
    ck_assert_double_eq_tol(st.sgt_useful, 15.0 / (3 * 128), 1e-12);
    ck_assert_double_eq_tol(st.dense_gb, 20.0 * 20 * 4 / 1e9, 1e-15);
    ck_assert_double_eq_tol(st.column_reuse, 15.0 / 14, 1e-12);
    check_sgt_brute_force(&g, &s, 16, 8);
    /* validation notices a corrupted array */
    s.tile_nz_col[0] ^= 1;
    ck_assert_int_eq(sdlk_sgt_validate(&s, &g, "c.safetensors", &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "c.safetensors"));
    s.tile_nz_col[0] ^= 1;
    s.window_cols[1] = s.window_cols[0];
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_sgt_validate(&s, &g, "c", &err), SDLK_ERR_FORMAT);
    sdlk_sgt_free(&s);
    sdlk_graph_free(&g);
    sdlk_coo_free(&coo);
}
END_TEST

START_TEST(sgt_threads_agree)
{
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    /* ~1M edges: the output arrays pass 4 MiB, so the huge-page advice path runs too */
    sdlk_rmat_params p = sdlk_rmat_graph500(17, 8, 11);
    p.scramble = 1;
    ck_assert_int_eq(sdlk_rmat_generate(&p, pool, &coo, &err), SDLK_OK);
    sdlk_graph g;
    sdlk_graph_options drop = {.duplicates = SDLK_DUP_DROP};
    ck_assert_int_eq(sdlk_graph_from_coo(&coo, &drop, &g, &err), SDLK_OK);
    sdlk_sgt a, b;
    ck_assert_int_eq(sdlk_sgt_build(&g, 0, 0, NULL, &a, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_sgt_build(&g, 0, 0, pool, &b, &err), SDLK_OK);
    ck_assert_int_eq(a.tile_count, b.tile_count);
    ck_assert_int_eq(a.distinct, b.distinct);
    ck_assert_mem_eq(a.window_cols, b.window_cols, (size_t)a.distinct * 4);
    ck_assert_mem_eq(a.tile_nz_ptr, b.tile_nz_ptr, (size_t)(a.tile_count + 1) * 8);
    ck_assert_mem_eq(a.tile_nz_edge, b.tile_nz_edge, (size_t)a.edges * 8);
    ck_assert_mem_eq(a.tile_nz_row, b.tile_nz_row, (size_t)a.edges);
    ck_assert_mem_eq(a.tile_nz_col, b.tile_nz_col, (size_t)a.edges);
    ck_assert_mem_eq(a.edge_condensed_col, b.edge_condensed_col, (size_t)a.edges * 4);
    ck_assert_int_eq(sdlk_sgt_validate(&b, &g, "b", &err), SDLK_OK);
    sdlk_sgt_free(&a);
    sdlk_sgt_free(&b);
    sdlk_graph_free(&g);
    sdlk_coo_free(&coo);
    sdlk_pool_destroy(pool);
}
END_TEST

int main(void)
{
    return UNIT_RUN("graph",
                    karate_known_values,
                    real_graphs_counts,
                    polblogs_options,
                    mtx_variants,
                    mtx_bad_inputs,
                    snap_remap_and_errors,
                    npz_csr_and_csc,
                    gcn_normalisation_direct,
                    build_options_small,
                    reorder_by_degree, reorder_rcm_bands, reorder_rcm_components_and_ids,
                    rmat_deterministic_and_skewed,
                    sgt_matches_brute_force,
                    sgt_hand_computed_tiles,
                    sgt_threads_agree);
}
