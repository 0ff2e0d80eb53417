/* qmatmul.c -- the "qmatmul" benchmark family: the bit-composed GEMM of lib/quant and
 * n-bit quantization against OpenBLAS sgemm and memcpy, measured in the same run.
 *
 *   GEMM      Y = A x B^T at M = N = K in {512, 2048, 4096} (quick: 512) for
 *             w1a1 ({-1,+1} x {-1,+1}), w1a2 ({-1,+1} weights x 2-bit unsigned activations),
 *             w2a2, w4a4, w8a8 (two's-complement weights x unsigned activations), with the
 *             route sdlk_qgemm chooses (named in the row), plus the int8 route forced on
 *             s8 x s8 operands (a classic int8 GEMM); int32 output, operands packed once
 *             (packing is not timed: weights are packed once per model, and the network
 *             path packs activations in its epilogue). Work = 2 M N K operations.
 *             Baseline: cblas_sgemm (OpenBLAS) on f32 operands of the same shape, with the
 *             same thread count (openblas_set_num_threads).
 *   quantize  sdlk_quantize of a 256 MiB f32 tensor (quick: 16 MiB), symmetric 4-bit, one
 *             scale per group of 128 along the last axis, including the allocation of its
 *             outputs, against memcpy of the same bytes into a buffer faulted in once.
 *
 * Checks before timing (the family stops on a mismatch): 64 output elements of every GEMM
 * (the four corners and 60 seeded random positions) against a naive dot product of the
 * codes; sgemm's the same way within f32 rounding; the quantizer's scale and the
 * reconstruction error of 256 random groups against the definition; memcpy's copy byte for
 * byte.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_families.h"
#include "core/pool.h"
#include "core/tensor.h"
#include "quant/bitgemm.h"
#include "quant/bitpack.h"
#include "quant/quant.h"

#define FAMILY "qmatmul"

enum { SPOT_CHECKS = 64, QUANT_GROUP = 128, QUANT_BITS = 4, QUANT_CHECK_GROUPS = 256 };

/* xorshift positions for the spot checks (seeded: the same positions every run). */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The (row, column) of spot check i of an m x n output. */
static void spot_position(int i, int64_t m, int64_t n, uint64_t *seed, int64_t *r, int64_t *c)
{
    if (i < 4) { /* the corners catch edge-tile and padding mistakes */
        *r = (i & 1) ? m - 1 : 0;
        *c = (i & 2) ? n - 1 : 0;
        return;
    }
    *r = (int64_t)(next_random(seed) % (uint64_t)m);
    *c = (int64_t)(next_random(seed) % (uint64_t)n);
}

/* ---- sgemm baseline ----------------------------------------------------------------- */

typedef struct sgemm_bench {
    int64_t size; /* M = N = K */
    float *a, *b, *c;
} sgemm_bench;

static sdlk_status run_sgemm(void *ctx, sdlk_error *err)
{
    (void)err;
    sgemm_bench *s = ctx;
    blasint n = (blasint)s->size;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, s->a, n, s->b, n, 0.0f,
                s->c, n);
    return SDLK_OK;
}

static void sgemm_bench_free(sgemm_bench *s)
{
    free(s->a);
    free(s->b);
    free(s->c);
    memset(s, 0, sizeof *s);
}

/* f32 operands in [-1, 1), one run, and the spot checks against a double dot product. */
static sdlk_status sgemm_bench_setup(sgemm_bench *s, int64_t size, sdlk_error *err)
{
    memset(s, 0, sizeof *s);
    s->size = size;
    size_t count = (size_t)(size * size);
    s->a = malloc(count * sizeof(float));
    s->b = malloc(count * sizeof(float));
    s->c = malloc(count * sizeof(float));
    if (!s->a || !s->b || !s->c) {
        sgemm_bench_free(s);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for sgemm at %lld",
                              (long long)size);
    }
    uint64_t seed = 0x5eed0001 + (uint64_t)size;
    for (size_t i = 0; i < count; i++) {
        s->a[i] = (float)((double)(next_random(&seed) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        s->b[i] = (float)((double)(next_random(&seed) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    run_sgemm(s, err);
    uint64_t pos = 0x9e3779b9;
    for (int i = 0; i < SPOT_CHECKS; i++) {
        int64_t r, c;
        spot_position(i, size, size, &pos, &r, &c);
        double dot = 0.0, magnitude = 0.0;
        for (int64_t k = 0; k < size; k++) {
            dot += (double)s->a[r * size + k] * s->b[c * size + k];
            magnitude += fabs((double)s->a[r * size + k] * s->b[c * size + k]);
        }
        if (fabs(dot - s->c[r * size + c]) > 1e-5 * magnitude + 1e-6) {
            sdlk_status st = sdlk_error_set(err, SDLK_ERR_INTERNAL,
                                            "sgemm %lld: C[%lld][%lld] = %g, the double dot "
                                            "product %g", (long long)size, (long long)r,
                                            (long long)c, (double)s->c[r * size + c], dot);
            sgemm_bench_free(s);
            return st;
        }
    }
    return SDLK_OK;
}

/* ---- bit-composed GEMM ---------------------------------------------------------------- */

typedef struct qgemm_bench {
    const char *label; /* "w1a2" */
    int64_t size;
    int abits, wbits;
    sdlk_qencoding aenc, wenc;
    sdlk_qgemm_route route; /* AUTO: the library decides */
    uint8_t *a_bytes, *b_bytes; /* codes as sdlk_bitpack takes them (uint8 or int8 bytes) */
    sdlk_bitpacked a, b;
    int32_t *y;
    sdlk_pool *pool;
    sdlk_qgemm_opts opts;
    sdlk_qgemm_choice choice;
} qgemm_bench;

static sdlk_status run_qgemm(void *ctx, sdlk_error *err)
{
    qgemm_bench *q = ctx;
    return sdlk_qgemm(&q->a, &q->b, &q->opts, q->pool, q->y, NULL, &q->choice, err);
}

static void qgemm_bench_free(qgemm_bench *q)
{
    free(q->a_bytes);
    free(q->b_bytes);
    free(q->y);
    sdlk_bitpacked_free(&q->a);
    sdlk_bitpacked_free(&q->b);
    q->a_bytes = q->b_bytes = NULL;
    q->y = NULL;
}

/* The integer a code byte stands for. */
static int32_t code_value(uint8_t byte, sdlk_qencoding enc)
{
    return enc == SDLK_QENC_UNSIGNED ? (int32_t)byte : (int32_t)(int8_t)byte;
}

/* count random codes of an encoding, as sdlk_bitpack takes them. */
static void fill_codes(uint8_t *codes, size_t count, int bits, sdlk_qencoding enc, uint64_t seed)
{
    int32_t lo, hi;
    sdlk_qencoding_range(enc, bits, &lo, &hi);
    uint64_t s = seed;
    for (size_t i = 0; i < count; i++) {
        uint64_t r = next_random(&s);
        int32_t v = enc == SDLK_QENC_BINARY ? ((r & 1) ? 1 : -1)
                                            : lo + (int32_t)(r % (uint64_t)(hi - lo + 1));
        codes[i] = (uint8_t)v;
    }
}

/* Random codes, packed, one GEMM run, spot checks against the naive dot product. */
static sdlk_status qgemm_bench_setup(qgemm_bench *q, sdlk_error *err)
{
    size_t count = (size_t)(q->size * q->size);
    q->a_bytes = malloc(count);
    q->b_bytes = malloc(count);
    q->y = malloc(count * sizeof *q->y);
    if (!q->a_bytes || !q->b_bytes || !q->y)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %s at %lld", q->label,
                              (long long)q->size);
    fill_codes(q->a_bytes, count, q->abits, q->aenc, 0xa11ce + (uint64_t)q->size);
    fill_codes(q->b_bytes, count, q->wbits, q->wenc, 0xb0b + (uint64_t)q->size);
    sdlk_status st = sdlk_bitpack(q->a_bytes, q->size, q->size, q->size, q->abits, q->aenc,
                                  &q->a, err);
    if (st == SDLK_OK)
        st = sdlk_bitpack(q->b_bytes, q->size, q->size, q->size, q->wbits, q->wenc, &q->b, err);
    q->opts = (sdlk_qgemm_opts){.route = q->route};
    if (st == SDLK_OK)
        st = run_qgemm(q, err);
    uint64_t pos = 0x51ed;
    for (int i = 0; i < SPOT_CHECKS && st == SDLK_OK; i++) {
        int64_t r, c;
        spot_position(i, q->size, q->size, &pos, &r, &c);
        int64_t dot = 0;
        for (int64_t k = 0; k < q->size; k++)
            dot += (int64_t)code_value(q->a_bytes[r * q->size + k], q->aenc) *
                   code_value(q->b_bytes[c * q->size + k], q->wenc);
        if (dot != q->y[r * q->size + c])
            st = sdlk_error_set(err, SDLK_ERR_INTERNAL,
                                "%s %lld (%s route): Y[%lld][%lld] = %d, the naive dot product "
                                "%lld", q->label, (long long)q->size,
                                sdlk_qgemm_route_name(q->choice.route), (long long)r,
                                (long long)c, q->y[r * q->size + c], (long long)dot);
    }
    return st;
}

static sdlk_status bench_gemm_size(const bench_options *opt, int64_t size, sdlk_pool *pool,
                                   sdlk_bench_report *report, sdlk_error *err)
{
    static const struct {
        const char *label;
        int wbits, abits;
        sdlk_qencoding wenc, aenc;
        sdlk_qgemm_route route;
    } cases[] = {
        {"w1a1", 1, 1, SDLK_QENC_BINARY, SDLK_QENC_BINARY, SDLK_QGEMM_ROUTE_AUTO},
        {"w1a2", 1, 2, SDLK_QENC_BINARY, SDLK_QENC_UNSIGNED, SDLK_QGEMM_ROUTE_AUTO},
        {"w2a2", 2, 2, SDLK_QENC_SIGNED, SDLK_QENC_UNSIGNED, SDLK_QGEMM_ROUTE_AUTO},
        {"w4a4", 4, 4, SDLK_QENC_SIGNED, SDLK_QENC_UNSIGNED, SDLK_QGEMM_ROUTE_AUTO},
        {"w8a8", 8, 8, SDLK_QENC_SIGNED, SDLK_QENC_UNSIGNED, SDLK_QGEMM_ROUTE_AUTO},
        {"int8 s8xs8", 8, 8, SDLK_QENC_SIGNED, SDLK_QENC_SIGNED, SDLK_QGEMM_ROUTE_INT8},
    };
    sgemm_bench sg;
    bench_log(opt, FAMILY, "sgemm %lld^3: operands and check", (long long)size);
    sdlk_status st = sgemm_bench_setup(&sg, size, err);
    if (st != SDLK_OK)
        return st;
    for (size_t i = 0; i < sizeof cases / sizeof *cases && st == SDLK_OK; i++) {
        qgemm_bench q = {
            .label = cases[i].label,
            .size = size,
            .abits = cases[i].abits,
            .wbits = cases[i].wbits,
            .aenc = cases[i].aenc,
            .wenc = cases[i].wenc,
            .route = cases[i].route,
            .pool = pool,
        };
        st = qgemm_bench_setup(&q, err);
        if (st == SDLK_OK) {
            char name[96];
            snprintf(name, sizeof name, "%s %lld^3 (%s, %s)", q.label, (long long)size,
                     sdlk_qgemm_route_name(q.choice.route), sdlk_qgemm_isa_name(q.choice.isa));
            bench_log(opt, FAMILY, "%s: %s", name, q.choice.reason);
            st = sdlk_bench_compare(report, FAMILY, name, run_qgemm, &q, "OpenBLAS sgemm",
                                    run_sgemm, &sg, 2.0 * (double)size * size * size, "GOPS",
                                    1e9, opt->reps, err);
            if (st == SDLK_OK)
                sdlk_bench_report_note(
                    report, "weights %s x activations %s; route %s (%s); int32 out, %d spot checks exact; "
                    "%d threads both sides",
                    sdlk_qencoding_name(q.wenc), sdlk_qencoding_name(q.aenc),
                    cases[i].route == SDLK_QGEMM_ROUTE_AUTO ? "chosen by the library" : "forced",
                    sdlk_qgemm_route_name(q.choice.route), SPOT_CHECKS, opt->threads);
        }
        qgemm_bench_free(&q);
    }
    sgemm_bench_free(&sg);
    return st;
}

/* ---- quantization throughput ----------------------------------------------------------- */

typedef struct quant_bench {
    sdlk_tensor x;
    sdlk_quant_params params;
    sdlk_pool *pool;
    uint8_t *copy;
    size_t bytes;
} quant_bench;

static sdlk_status run_quantize(void *ctx, sdlk_error *err)
{
    quant_bench *b = ctx;
    sdlk_quantized q;
    memset(&q, 0, sizeof q);
    sdlk_status st = sdlk_quantize(&b->x, &b->params, b->pool, &q, err);
    sdlk_quantized_free(&q);
    return st;
}

static sdlk_status run_memcpy(void *ctx, sdlk_error *err)
{
    (void)err;
    quant_bench *b = ctx;
    memcpy(b->copy, b->x.data, b->bytes);
    return SDLK_OK;
}

/* Scales and reconstruction of QUANT_CHECK_GROUPS random groups against the definition
 * (symmetric: scale = max |x| / 7, |x - q scale| <= scale / 2 inside the range). */
static sdlk_status check_quantized(const quant_bench *b, const sdlk_quantized *q, sdlk_error *err)
{
    const float *x = (const float *)b->x.data;
    const int8_t *codes = (const int8_t *)q->codes.data;
    const float *scales = (const float *)q->scales.data;
    const int64_t groups = (int64_t)(b->bytes / sizeof(float)) / QUANT_GROUP;
    const int32_t top = (1 << (QUANT_BITS - 1)) - 1;
    uint64_t seed = 0x9a7e;
    for (int i = 0; i < QUANT_CHECK_GROUPS; i++) {
        int64_t g = (int64_t)(next_random(&seed) % (uint64_t)groups);
        const float *xg = x + g * QUANT_GROUP;
        float amax = 0.0f;
        for (int j = 0; j < QUANT_GROUP; j++)
            amax = fabsf(xg[j]) > amax ? fabsf(xg[j]) : amax;
        float scale = scales[g];
        if (fabsf(scale - amax / (float)top) > 1e-6f * amax)
            return sdlk_error_set(err, SDLK_ERR_INTERNAL, "quantize: group %lld scale %g, want %g",
                                  (long long)g, (double)scale, (double)(amax / (float)top));
        for (int j = 0; j < QUANT_GROUP; j++) {
            int32_t c = codes[g * QUANT_GROUP + j];
            if (c < -top - 1 || c > top || fabsf(xg[j] - (float)c * scale) > 0.5001f * scale)
                return sdlk_error_set(err, SDLK_ERR_INTERNAL,
                                      "quantize: element %lld = %g got code %d (scale %g)",
                                      (long long)(g * QUANT_GROUP + j), (double)xg[j], c,
                                      (double)scale);
        }
    }
    return SDLK_OK;
}

static sdlk_status bench_quantize(const bench_options *opt, size_t bytes, sdlk_pool *pool,
                                  sdlk_bench_report *report, sdlk_error *err)
{
    quant_bench b = {
        .params = {.bits = QUANT_BITS, .scheme = SDLK_QUANT_SYMMETRIC,
                   .granularity = SDLK_QUANT_PER_GROUP, .axis = -1, .group_size = QUANT_GROUP},
        .pool = pool,
        .bytes = bytes,
    };
    const int64_t cols = 4096;
    int64_t shape[2] = {(int64_t)(bytes / sizeof(float)) / cols, cols};
    sdlk_status st = sdlk_tensor_alloc(&b.x, SDLK_F32, 2, shape, err);
    if (st != SDLK_OK)
        return st;
    b.copy = malloc(bytes);
    if (!b.copy) {
        sdlk_tensor_free(&b.x);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    /* weights-like values: uniform in [-1, 1) with a larger value in some groups */
    float *x = (float *)b.x.data;
    uint64_t seed = 0x7e57;
    for (size_t i = 0; i < bytes / sizeof(float); i++) {
        double u = (double)(next_random(&seed) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        x[i] = (float)(i % 1021 == 0 ? 4.0 * u : u);
    }
    sdlk_quantized q;
    memset(&q, 0, sizeof q);
    st = sdlk_quantize(&b.x, &b.params, pool, &q, err);
    if (st == SDLK_OK)
        st = check_quantized(&b, &q, err);
    sdlk_quantized_free(&q);
    if (st == SDLK_OK) {
        run_memcpy(&b, err);
        if (memcmp(b.copy, b.x.data, bytes) != 0)
            st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "memcpy baseline: copy differs");
    }
    if (st == SDLK_OK) {
        char size_text[32], name[96];
        bench_format_size(size_text, sizeof size_text, bytes);
        snprintf(name, sizeof name, "quantize %s f32, %d-bit, group %d", size_text, QUANT_BITS,
                 QUANT_GROUP);
        bench_log(opt, FAMILY, "%s", name);
        st = sdlk_bench_compare(report, FAMILY, name, run_quantize, &b, "memcpy of the same bytes",
                                run_memcpy, &b, (double)bytes, "GB/s", 1e9, opt->reps, err);
        if (st == SDLK_OK)
            sdlk_bench_report_note(report,
                                   "symmetric, group 128 on the last axis; GB/s of f32 input; "
                                   "outputs allocated per run, %d threads; memcpy 1 thread; "
                                   "%d groups checked",
                                   opt->threads, QUANT_CHECK_GROUPS);
    }
    free(b.copy);
    sdlk_tensor_free(&b.x);
    return st;
}

sdlk_status bench_qmatmul(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err)
{
    static const int64_t full_sizes[] = {512, 2048, 4096};
    const size_t nsizes = opt->quick ? 1 : sizeof full_sizes / sizeof *full_sizes;
    const size_t quant_bytes = (size_t)(opt->quick ? 16 : 256) << 20;
    openblas_set_num_threads(opt->threads);
    sdlk_pool *pool = sdlk_pool_create(opt->threads, err);
    if (!pool)
        return err->code;
    sdlk_status st = SDLK_OK;
    for (size_t i = 0; i < nsizes && st == SDLK_OK; i++)
        st = bench_gemm_size(opt, full_sizes[i], pool, report, err);
    if (st == SDLK_OK)
        st = bench_quantize(opt, quant_bytes, pool, report, err);
    sdlk_pool_destroy(pool);
    return st;
}
