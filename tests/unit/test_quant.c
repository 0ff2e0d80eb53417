/* Unit tests of lib/quant/quant.h and qblock.h: every scheme and granularity against a
 * slow reference in double written here, kernels against each other, thread counts,
 * bad input; ggml Q4_0 / Q8_0 blocks against hand-computed bytes. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/tensor.h"
#include "quant/qblock.h"
#include "quant/quant.h"
#include "quant/quant_kernels.h"
#include "unit.h"

/* Check records the location of every ck_assert (a write per call), so loops over many
 * elements test with this instead and only call into Check on failure. */
#define REQUIRE(cond, ...)                                                                 \
    do {                                                                                   \
        if (!(cond))                                                                       \
            ck_abort_msg(__VA_ARGS__);                                                     \
    } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd32(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}
/* uniform in [lo, hi) */
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd32() >> 8) / 16777216.0f; }

static void fill_random(sdlk_tensor *t, float lo, float hi)
{
    float *v = (float *)t->data;
    for (uint64_t i = 0; i < sdlk_tensor_numel(t); i++)
        v[i] = rndf(lo, hi);
}

/* ---- the reference --------------------------------------------------------------- */

/* scale index of element `idx` (ndim coordinates), straight from the definitions */
static int64_t ref_scale_index(const sdlk_quant_params *p, int ndim, const int64_t *shape,
                               const int64_t *idx)
{
    if (p->granularity == SDLK_QUANT_PER_TENSOR)
        return 0;
    if (p->granularity == SDLK_QUANT_PER_CHANNEL)
        return idx[p->axis];
    int64_t s = 0;
    for (int d = 0; d < ndim; d++) {
        int64_t dim = d == p->axis ? shape[d] / p->group_size : shape[d];
        int64_t c = d == p->axis ? idx[d] / p->group_size : idx[d];
        s = s * dim + c;
    }
    return s;
}

static void unflatten(int ndim, const int64_t *shape, int64_t f, int64_t *idx)
{
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = f % shape[d];
        f /= shape[d];
    }
}

/* distance of v from the nearest .5 (a tie of rounding) */
static double tie_distance(double v) { return fabs(v - floor(v) - 0.5); }

static double round_half_even(double v)
{
    double r = nearbyint(v); /* default mode: to nearest even */
    return r;
}

/* Check q against the reference for input x (C-contiguous f32 values of `shape`). */
static void check_against_reference(const float *x, int ndim, const int64_t *shape,
                                    const sdlk_quant_params *p_in, const sdlk_quantized *q)
{
    sdlk_quant_params p = *p_in;
    if (p.axis < 0)
        p.axis += ndim;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++)
        numel *= shape[d];
    int64_t nscales = (int64_t)sdlk_tensor_numel(&q->scales);
    double *mn = malloc(sizeof(double) * (size_t)nscales);
    double *mx = malloc(sizeof(double) * (size_t)nscales);
    double *abs_sum = calloc((size_t)nscales, sizeof(double));
    int64_t *count = calloc((size_t)nscales, sizeof(int64_t));
    for (int64_t s = 0; s < nscales; s++) {
        mn[s] = INFINITY;
        mx[s] = -INFINITY;
    }
    int64_t idx[SDLK_MAX_DIMS];
    for (int64_t f = 0; f < numel; f++) {
        unflatten(ndim, shape, f, idx);
        int64_t s = ref_scale_index(&p, ndim, shape, idx);
        REQUIRE(s < nscales, "scale index %lld out of range", (long long)s);
        mn[s] = fmin(mn[s], x[f]);
        mx[s] = fmax(mx[s], x[f]);
        abs_sum[s] += fabs(x[f]);
        count[s]++;
    }
    const float *scales = (const float *)q->scales.data;
    const uint8_t *zps = q->zero_points.data;
    for (int64_t s = 0; s < nscales; s++) {
        REQUIRE(count[s] > 0, "empty scale");
        double ref;
        if (p.scheme == SDLK_QUANT_SYMMETRIC)
            ref = fmax(fabs(mn[s]), fabs(mx[s])) / ((1 << (p.bits - 1)) - 1);
        else if (p.scheme == SDLK_QUANT_ASYMMETRIC)
            ref = (fmax(mx[s], 0) - fmin(mn[s], 0)) / ((1 << p.bits) - 1);
        else
            ref = abs_sum[s] / (double)count[s];
        if (ref == 0)
            ref = 1;
        REQUIRE(fabs(scales[s] - ref) <= 2e-6 * ref, "scale %lld: %.9g vs reference %.9g",
                      (long long)s, (double)scales[s], ref);
        if (p.scheme == SDLK_QUANT_ASYMMETRIC) {
            double z = -fmin(mn[s], 0) / (double)scales[s];
            if (tie_distance(z) > 1e-4)
                REQUIRE(zps[s] == (int)round_half_even(z), "zero point %lld", (long long)s);
        }
    }
    int signed_codes = p.scheme != SDLK_QUANT_ASYMMETRIC;
    int qmin = p.scheme == SDLK_QUANT_SYMMETRIC ? -(1 << (p.bits - 1)) : 0;
    int qmax = p.scheme == SDLK_QUANT_SYMMETRIC ? (1 << (p.bits - 1)) - 1 : (1 << p.bits) - 1;
    int64_t near_ties = 0;
    for (int64_t f = 0; f < numel; f++) {
        unflatten(ndim, shape, f, idx);
        int64_t s = ref_scale_index(&p, ndim, shape, idx);
        int code = signed_codes ? ((const int8_t *)q->codes.data)[f] : q->codes.data[f];
        if (p.scheme == SDLK_QUANT_BINARY) {
            REQUIRE(code == (x[f] >= 0 ? 1 : -1), "binary code %d for %g", code, (double)x[f]);
            continue;
        }
        int zp = zps ? zps[s] : 0;
        double v = (double)x[f] / (double)scales[s];
        double r = round_half_even(v) + zp;
        int expect = r < qmin ? qmin : r > qmax ? qmax : (int)r;
        if (tie_distance(v) < 1e-4) { /* f32 x * (1/scale) may land on either side */
            near_ties++;
            REQUIRE(abs(code - expect) <= 1, "near-tie code %d vs %d", code, expect);
        } else {
            REQUIRE(code == expect, "element %lld: code %d, reference %d (x=%.9g s=%.9g z=%d)",
                          (long long)f, code, expect, (double)x[f], (double)scales[s], zp);
        }
    }
    ck_assert_int_le(near_ties, numel / 100 + 2);
    free(mn);
    free(mx);
    free(abs_sum);
    free(count);
}

/* Dequantized values are exactly (q - z) * scale and within scale/2 of x (no clipping
 * happens: the scale covers the whole group). */
static void check_dequantize(const float *x, const sdlk_quantized *q, int bits)
{
    sdlk_error err = {0};
    sdlk_tensor y;
    ck_assert_int_eq(sdlk_dequantize(q, NULL, &y, &err), SDLK_OK);
    const sdlk_quant_params *p = &q->params;
    int64_t numel = (int64_t)sdlk_tensor_numel(&y);
    int64_t idx[SDLK_MAX_DIMS];
    const float *yv = (const float *)y.data;
    for (int64_t f = 0; f < numel; f++) {
        unflatten(y.ndim, y.shape, f, idx);
        int64_t s = ref_scale_index(p, y.ndim, y.shape, idx);
        float scale = ((const float *)q->scales.data)[s];
        int zp = p->scheme == SDLK_QUANT_ASYMMETRIC ? q->zero_points.data[s] : 0;
        int code = p->scheme == SDLK_QUANT_ASYMMETRIC ? q->codes.data[f]
                                                      : ((const int8_t *)q->codes.data)[f];
        REQUIRE(yv[f] == (float)(code - zp) * scale, "dequantized %lld", (long long)f);
        if (p->scheme != SDLK_QUANT_BINARY)
            REQUIRE(fabs((double)yv[f] - x[f]) <= 0.5 * scale * (1 + 1e-5) + 1e-30,
                          "element %lld: |%g - %g| > scale/2 = %g", (long long)f, (double)yv[f],
                          (double)x[f], 0.5 * scale);
    }
    (void)bits;
    sdlk_tensor_free(&y);
}

static void quantize_and_check(sdlk_tensor *x, sdlk_quant_params p, sdlk_pool *pool)
{
    sdlk_error err = {0};
    sdlk_quantized q;
    ck_assert_msg(sdlk_quantize(x, &p, pool, &q, &err) == SDLK_OK, "%s", err.msg);
    check_against_reference((const float *)x->data, x->ndim, x->shape, &p, &q);
    check_dequantize((const float *)x->data, &q, p.bits);
    sdlk_quantized_free(&q);
}

START_TEST(every_scheme_granularity_axis_against_reference)
{
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    int64_t shape[3] = {6, 12, 40};
    sdlk_tensor x;
    ck_assert_int_eq(sdlk_tensor_alloc(&x, SDLK_F32, 3, shape, &err), SDLK_OK);
    fill_random(&x, -3.0f, 5.0f);
    for (int scheme = 0; scheme < 3; scheme++) {
        for (int bits = 1; bits <= 8; bits++) {
            if (scheme == SDLK_QUANT_SYMMETRIC && bits == 1)
                continue;
            if (scheme == SDLK_QUANT_BINARY && bits != 1)
                continue;
            sdlk_quant_params p = {.bits = bits, .scheme = scheme};
            p.granularity = SDLK_QUANT_PER_TENSOR;
            quantize_and_check(&x, p, pool);
            for (int axis = -1; axis < 3; axis++) {
                p.granularity = SDLK_QUANT_PER_CHANNEL;
                p.axis = axis;
                quantize_and_check(&x, p, pool);
                p.granularity = SDLK_QUANT_PER_GROUP;
                int ax = axis < 0 ? axis + 3 : axis;
                p.group_size = shape[ax] / 2; /* 3, 6, 20 */
                quantize_and_check(&x, p, pool);
                p.group_size = 1;
                quantize_and_check(&x, p, pool);
            }
        }
    }
    sdlk_tensor_free(&x);
    sdlk_pool_destroy(pool);
}
END_TEST

START_TEST(group_along_last_axis_large_and_threads_agree)
{
    /* the fused path with groups of 32/128 and enough data for several chunks */
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    int64_t shape[2] = {64, 4096};
    sdlk_tensor x;
    ck_assert_int_eq(sdlk_tensor_alloc(&x, SDLK_F32, 2, shape, &err), SDLK_OK);
    fill_random(&x, -1.0f, 1.0f);
    int64_t groups[2] = {32, 128};
    for (int gi = 0; gi < 2; gi++)
        for (int scheme = 0; scheme < 2; scheme++) {
            sdlk_quant_params p = {.bits = 4, .scheme = scheme,
                                   .granularity = SDLK_QUANT_PER_GROUP, .axis = 1,
                                   .group_size = groups[gi]};
            sdlk_quantized q1, q2;
            ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q1, &err), SDLK_OK);
            ck_assert_int_eq(sdlk_quantize(&x, &p, pool, &q2, &err), SDLK_OK);
            ck_assert_mem_eq(q1.codes.data, q2.codes.data, sdlk_tensor_nbytes(&q1.codes));
            ck_assert_mem_eq(q1.scales.data, q2.scales.data, sdlk_tensor_nbytes(&q1.scales));
            check_against_reference((const float *)x.data, 2, shape, &p, &q2);
            sdlk_quantized_free(&q1);
            sdlk_quantized_free(&q2);
        }
    /* and the two-pass path (per tensor, per channel of axis 0) */
    for (int g = 0; g < 2; g++) {
        sdlk_quant_params p = {.bits = 3, .scheme = SDLK_QUANT_ASYMMETRIC,
                               .granularity = g ? SDLK_QUANT_PER_CHANNEL : SDLK_QUANT_PER_TENSOR};
        sdlk_quantized q1, q2;
        ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q1, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_quantize(&x, &p, pool, &q2, &err), SDLK_OK);
        ck_assert_mem_eq(q1.codes.data, q2.codes.data, sdlk_tensor_nbytes(&q1.codes));
        ck_assert_mem_eq(q1.zero_points.data, q2.zero_points.data,
                         sdlk_tensor_nbytes(&q1.zero_points));
        sdlk_quantized_free(&q1);
        sdlk_quantized_free(&q2);
    }
    sdlk_tensor_free(&x);
    sdlk_pool_destroy(pool);
}
END_TEST

START_TEST(kernels_scalar_and_avx2_agree)
{
    if (!__builtin_cpu_supports("avx2"))
        return;
    enum { N = 1003 };
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = rndf(-10.0f, 10.0f);
    /* exact ties of x * inv_scale (0.5, 1.5, 2.5 with inv_scale 1) and huge values */
    x[5] = 0.5f;
    x[6] = 1.5f;
    x[7] = 2.5f;
    x[8] = -2.5f;
    x[9] = 1e30f;
    x[10] = -1e30f;
    sdlk_qrange r1 = {INFINITY, -INFINITY, 0}, r2 = r1;
    sdlk_qrange_scalar(x, N, &r1);
    sdlk_qrange_avx2(x, N, &r2);
    ck_assert_float_eq(r1.min, r2.min);
    ck_assert_float_eq(r1.max, r2.max);
    ck_assert_int_eq(r1.nonfinite, 0);
    ck_assert_int_eq(r2.nonfinite, 0);
    uint8_t c1[N], c2[N];
    float invs[3] = {1.0f, 0.37f, 12.5f};
    for (int k = 0; k < 3; k++) {
        sdlk_qcodes_scalar(x, N, invs[k], -8.0f, 7.0f, 0, c1);
        sdlk_qcodes_avx2(x, N, invs[k], -8.0f, 7.0f, 0, c2);
        ck_assert_mem_eq(c1, c2, N);
        sdlk_qcodes_scalar(x, N, invs[k], -100.0f, 155.0f, 100, c1);
        sdlk_qcodes_avx2(x, N, invs[k], -100.0f, 155.0f, 100, c2);
        ck_assert_mem_eq(c1, c2, N);
    }
    sdlk_qcodes_scalar(x + 5, 4, 1.0f, -8.0f, 7.0f, 0, c1);
    ck_assert_int_eq((int8_t)c1[0], 0); /* 0.5 -> 0 (half to even) */
    ck_assert_int_eq((int8_t)c1[1], 2);
    ck_assert_int_eq((int8_t)c1[2], 2);
    ck_assert_int_eq((int8_t)c1[3], -2);
    float y1[N], y2[N];
    for (int s = 0; s < 2; s++) {
        sdlk_qdequant_scalar(c2, N, s, s ? 0 : 100, 0.25f, y1);
        sdlk_qdequant_avx2(c2, N, s, s ? 0 : 100, 0.25f, y2);
        ck_assert_mem_eq(y1, y2, sizeof y1);
    }
    x[700] = NAN;
    r2 = (sdlk_qrange){INFINITY, -INFINITY, 0};
    sdlk_qrange_avx2(x, N, &r2);
    ck_assert_int_eq(r2.nonfinite, 1);
    ck_assert(r2.min == r1.min && r2.max == r1.max); /* NaN does not enter the range */
}
END_TEST

START_TEST(nan_and_inf_refused_with_index_or_zeroed)
{
    sdlk_error err = {0};
    int64_t shape[2] = {4, 32};
    sdlk_tensor x;
    ck_assert_int_eq(sdlk_tensor_alloc(&x, SDLK_F32, 2, shape, &err), SDLK_OK);
    fill_random(&x, -1.0f, 1.0f);
    float *v = (float *)x.data;
    v[77] = NAN;
    v[100] = INFINITY;
    int grans[3] = {SDLK_QUANT_PER_TENSOR, SDLK_QUANT_PER_CHANNEL, SDLK_QUANT_PER_GROUP};
    for (int scheme = 0; scheme < 3; scheme++)
        for (int g = 0; g < 3; g++) {
            sdlk_quant_params p = {.bits = scheme == SDLK_QUANT_BINARY ? 1 : 4, .scheme = scheme,
                                   .granularity = grans[g], .axis = 1, .group_size = 16};
            sdlk_quantized q;
            sdlk_error_clear(&err);
            ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q, &err), SDLK_ERR_FORMAT);
            ck_assert_msg(strstr(err.msg, "flat index 77") && strstr(err.msg, "NaN"), "%s",
                          err.msg);
            ck_assert_ptr_null(q.codes.data); /* nothing left behind */
            p.nan_to_zero = 1;
            ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q, &err), SDLK_OK);
            /* the result equals quantizing a copy with zeros in those places */
            sdlk_tensor clean;
            ck_assert_int_eq(sdlk_tensor_convert(&clean, &x, SDLK_F32, &err), SDLK_OK);
            ((float *)clean.data)[77] = 0.0f;
            ((float *)clean.data)[100] = 0.0f;
            sdlk_quantized qc;
            ck_assert_int_eq(sdlk_quantize(&clean, &p, NULL, &qc, &err), SDLK_OK);
            ck_assert_mem_eq(q.codes.data, qc.codes.data, 128);
            ck_assert_mem_eq(q.scales.data, qc.scales.data, sdlk_tensor_nbytes(&q.scales));
            sdlk_quantized_free(&q);
            sdlk_quantized_free(&qc);
            sdlk_tensor_free(&clean);
        }
    v[77] = 0.0f;
    sdlk_quant_params p = {.bits = 8, .scheme = SDLK_QUANT_SYMMETRIC};
    sdlk_quantized q;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q, &err), SDLK_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "flat index 100") && strstr(err.msg, "+Inf"), "%s", err.msg);
    int64_t idx;
    ck_assert_int_eq(sdlk_find_nonfinite(&x, &idx, &err), SDLK_OK);
    ck_assert_int_eq(idx, 100);
    sdlk_tensor_free(&x);
}
END_TEST

START_TEST(bad_parameters_are_refused)
{
    sdlk_error err = {0};
    int64_t shape[2] = {3, 10};
    sdlk_quant_params p = {.bits = 4, .scheme = SDLK_QUANT_SYMMETRIC,
                           .granularity = SDLK_QUANT_PER_GROUP, .axis = 1, .group_size = 4};
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_ERR_ARG);
    ck_assert_msg(strstr(err.msg, "group size 4 does not divide axis 1 of length 10"), "%s",
                  err.msg);
    p.group_size = 5;
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_OK);
    p.axis = 2;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_ERR_ARG);
    p.axis = -2;
    p.group_size = 3;
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_OK);
    p.bits = 9;
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_ERR_ARG);
    p.bits = 0;
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_ERR_ARG);
    p.bits = 1;
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_ERR_ARG);
    p.scheme = SDLK_QUANT_BINARY;
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_OK);
    p.bits = 2;
    ck_assert_int_eq(sdlk_quant_params_check(&p, 2, shape, &err), SDLK_ERR_ARG);
    sdlk_quant_scheme s;
    sdlk_quant_granularity g;
    ck_assert_int_eq(sdlk_quant_scheme_parse("asymmetric", &s, &err), SDLK_OK);
    ck_assert_int_eq(s, SDLK_QUANT_ASYMMETRIC);
    ck_assert_int_eq(sdlk_quant_granularity_parse("group", &g, &err), SDLK_OK);
    ck_assert_int_eq(g, SDLK_QUANT_PER_GROUP);
    ck_assert_int_eq(sdlk_quant_scheme_parse("sym", &s, &err), SDLK_ERR_ARG);
    /* integer input */
    sdlk_tensor xi;
    ck_assert_int_eq(sdlk_tensor_alloc(&xi, SDLK_I32, 2, shape, &err), SDLK_OK);
    sdlk_quantized q;
    p = (sdlk_quant_params){.bits = 4};
    ck_assert_int_eq(sdlk_quantize(&xi, &p, NULL, &q, &err), SDLK_ERR_UNSUPPORTED);
    sdlk_tensor_free(&xi);
}
END_TEST

START_TEST(half_inputs_strides_and_edge_values)
{
    sdlk_error err = {0};
    int64_t shape[2] = {5, 64};
    sdlk_tensor x, h, b;
    ck_assert_int_eq(sdlk_tensor_alloc(&x, SDLK_F32, 2, shape, &err), SDLK_OK);
    fill_random(&x, -2.0f, 2.0f);
    /* values exactly representable in f16 and bf16, so all three inputs are equal */
    float *v = (float *)x.data;
    for (int i = 0; i < 320; i++)
        v[i] = sdlk_bf16_to_f32(sdlk_f32_to_bf16(v[i]));
    ck_assert_int_eq(sdlk_tensor_convert(&h, &x, SDLK_F16, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_convert(&b, &x, SDLK_BF16, &err), SDLK_OK);
    sdlk_quant_params p = {.bits = 5, .scheme = SDLK_QUANT_ASYMMETRIC,
                           .granularity = SDLK_QUANT_PER_GROUP, .axis = 1, .group_size = 32};
    sdlk_quantized q0, q1, q2;
    ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q0, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_quantize(&h, &p, NULL, &q1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_quantize(&b, &p, NULL, &q2, &err), SDLK_OK);
    ck_assert_mem_eq(q0.codes.data, q1.codes.data, 320);
    ck_assert_mem_eq(q0.codes.data, q2.codes.data, 320);
    ck_assert_mem_eq(q0.zero_points.data, q2.zero_points.data, 10);
    sdlk_quantized_free(&q0);
    sdlk_quantized_free(&q1);
    sdlk_quantized_free(&q2);
    /* a transposed (Fortran-strided) view quantizes like its contiguous copy */
    int64_t tshape[2] = {64, 5};
    sdlk_tensor t, tc;
    ck_assert_int_eq(sdlk_tensor_borrow(&t, SDLK_F32, 2, tshape, x.data, &err), SDLK_OK);
    sdlk_strides_f(2, tshape, 4, t.strides);
    ck_assert_int_eq(sdlk_tensor_contiguous(&tc, &t, &err), SDLK_OK);
    p = (sdlk_quant_params){.bits = 4, .scheme = SDLK_QUANT_SYMMETRIC,
                            .granularity = SDLK_QUANT_PER_CHANNEL, .axis = 1};
    ck_assert_int_eq(sdlk_quantize(&t, &p, NULL, &q0, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_quantize(&tc, &p, NULL, &q1, &err), SDLK_OK);
    ck_assert_mem_eq(q0.codes.data, q1.codes.data, 320);
    check_against_reference((const float *)tc.data, 2, tshape, &p, &q0);
    sdlk_quantized_free(&q0);
    sdlk_quantized_free(&q1);
    sdlk_tensor_free(&tc);
    /* an all-zero tensor: scale 1, codes 0 (asymmetric zero point 0) */
    memset(x.data, 0, 320 * 4);
    p = (sdlk_quant_params){.bits = 2, .scheme = SDLK_QUANT_ASYMMETRIC};
    ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q0, &err), SDLK_OK);
    ck_assert_float_eq(((float *)q0.scales.data)[0], 1.0f);
    ck_assert_int_eq(q0.zero_points.data[0], 0);
    ck_assert_int_eq(q0.codes.data[319], 0);
    sdlk_quantized_free(&q0);
    /* symmetric codes reach -2^(n-1) only by clipping, the max reaches +qmax */
    v[0] = -1.0f;
    v[1] = 1.0f;
    v[2] = 0.5f;
    p = (sdlk_quant_params){.bits = 2, .scheme = SDLK_QUANT_SYMMETRIC};
    ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q0, &err), SDLK_OK);
    ck_assert_int_eq(((int8_t *)q0.codes.data)[0], -1);
    ck_assert_int_eq(((int8_t *)q0.codes.data)[1], 1);
    ck_assert_int_eq(((int8_t *)q0.codes.data)[2], 0); /* 0.5 -> half to even */
    sdlk_quantized_free(&q0);
    sdlk_tensor_free(&x);
    sdlk_tensor_free(&h);
    sdlk_tensor_free(&b);
}
END_TEST

START_TEST(dequantize_refuses_inconsistent_parts)
{
    sdlk_error err = {0};
    int64_t shape[2] = {4, 8};
    sdlk_tensor x, y;
    ck_assert_int_eq(sdlk_tensor_alloc(&x, SDLK_F32, 2, shape, &err), SDLK_OK);
    fill_random(&x, -1.0f, 1.0f);
    sdlk_quant_params p = {.bits = 4, .scheme = SDLK_QUANT_ASYMMETRIC,
                           .granularity = SDLK_QUANT_PER_CHANNEL, .axis = 0};
    sdlk_quantized q;
    ck_assert_int_eq(sdlk_quantize(&x, &p, NULL, &q, &err), SDLK_OK);
    q.scales.shape[0] = 3;
    ck_assert_int_eq(sdlk_dequantize(&q, NULL, &y, &err), SDLK_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "scales must be"), "%s", err.msg);
    q.scales.shape[0] = 4;
    q.params.scheme = SDLK_QUANT_SYMMETRIC;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_dequantize(&q, NULL, &y, &err), SDLK_ERR_FORMAT);
    q.params.scheme = SDLK_QUANT_ASYMMETRIC;
    ck_assert_int_eq(sdlk_dequantize(&q, NULL, &y, &err), SDLK_OK);
    sdlk_tensor_free(&y);
    sdlk_quantized_free(&q);
    sdlk_tensor_free(&x);
}
END_TEST

START_TEST(error_stats_hand_computed)
{
    sdlk_error err = {0};
    float xv[4] = {1, 2, 3, 4}, yv[4] = {1, 2, 3, 2};
    int64_t shape[1] = {4};
    sdlk_tensor x, y;
    sdlk_tensor_borrow(&x, SDLK_F32, 1, shape, xv, &err);
    sdlk_tensor_borrow(&y, SDLK_F32, 1, shape, yv, &err);
    sdlk_quant_stats s;
    ck_assert_int_eq(sdlk_quant_error_stats(&x, &y, &s, &err), SDLK_OK);
    ck_assert_uint_eq(s.count, 4);
    ck_assert_double_eq_tol(s.rmse, 1.0, 1e-12);    /* sqrt(4 / 4) */
    ck_assert_double_eq_tol(s.max_abs, 2.0, 1e-12);
    ck_assert_double_eq_tol(s.sqnr_db, 20 * log10(sqrt(30.0) / 2.0), 1e-9);
    ck_assert_double_eq_tol(s.cosine, 22.0 / sqrt(30.0 * 18.0), 1e-12);
    ck_assert_int_eq(sdlk_quant_error_stats(&x, &x, &s, &err), SDLK_OK);
    ck_assert(isinf(s.sqnr_db) && s.sqnr_db > 0);
    ck_assert_double_eq_tol(s.cosine, 1.0, 1e-12);
    int64_t other[1] = {3};
    sdlk_tensor z;
    sdlk_tensor_borrow(&z, SDLK_F32, 1, other, yv, &err);
    ck_assert_int_eq(sdlk_quant_error_stats(&x, &z, &s, &err), SDLK_ERR_ARG);
    /* error of an 8-bit symmetric quantization of a smooth signal: SQNR near 6.02n+c */
    int64_t n[1] = {4096};
    sdlk_tensor w;
    sdlk_tensor_alloc(&w, SDLK_F32, 1, n, &err);
    fill_random(&w, -1, 1);
    sdlk_quant_params p = {.bits = 8};
    sdlk_quantized q;
    sdlk_tensor r;
    ck_assert_int_eq(sdlk_quantize(&w, &p, NULL, &q, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_dequantize(&q, NULL, &r, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_quant_error_stats(&w, &r, &s, &err), SDLK_OK);
    /* uniform data, step 1/127: SQNR = 10 log10((1/3) / (step^2 / 12)) = 10 log10(4 * 127^2)
     * ~ 48.1 dB */
    ck_assert_double_eq_tol(s.sqnr_db, 48.1, 0.6);
    ck_assert_double_gt(s.cosine, 0.9999);
    sdlk_quantized_free(&q);
    sdlk_tensor_free(&r);
    sdlk_tensor_free(&w);
}
END_TEST

/* ---- ggml blocks ---------------------------------------------------------------------- */

START_TEST(q4_0_hand_computed_block)
{
    sdlk_error err = {0};
    /* element 3 has the largest magnitude (-4): d = -4 / -8 = 0.5, that element maps to
     * code 0 (value -8 after the offset), +4 would map to 16 -> clipped to 15 */
    float x[32];
    for (int i = 0; i < 32; i++)
        x[i] = 0.0f;
    x[3] = -4.0f;
    x[0] = 1.0f;   /* 1 / 0.5 = 2   -> trunc(2 + 8.5)   = 10 */
    x[1] = -0.75f; /* -1.5 -> trunc(-1.5 + 8.5) = 7 */
    x[2] = 0.25f;  /* 0.5 -> trunc(9.0) = 9 */
    x[16] = 3.9f;  /* 7.8 -> trunc(16.3) = 16 -> 15 */
    x[17] = -3.9f; /* -7.8 -> trunc(0.7) = 0 */
    x[31] = 0.74f; /* 1.48 -> trunc(9.98) = 9 */
    sdlk_block_q4_0 b;
    ck_assert_int_eq(sdlk_quantize_q4_0(x, 32, &b, &err), SDLK_OK);
    ck_assert_uint_eq(b.d, sdlk_f32_to_f16(0.5f));
    uint8_t expect[16];
    for (int j = 0; j < 16; j++)
        expect[j] = 8 | (8 << 4); /* zeros: trunc(0 + 8.5) = 8 */
    expect[0] = 10 | (15 << 4);
    expect[1] = 7 | (0 << 4);
    expect[2] = 9 | (8 << 4);
    expect[3] = 0 | (8 << 4);
    expect[15] = 8 | (9 << 4);
    ck_assert_mem_eq(b.qs, expect, 16);
    /* the signed maximum decides the sign of d: +4 as the largest gives d = -0.5 and
     * the element maps to code 0 again */
    x[3] = 4.0f;
    ck_assert_int_eq(sdlk_quantize_q4_0(x, 32, &b, &err), SDLK_OK);
    ck_assert_uint_eq(b.d, sdlk_f32_to_f16(-0.5f));
    ck_assert_int_eq(b.qs[3] & 15, 0);
    /* ties of magnitude: the first element wins */
    x[5] = -4.0f;
    ck_assert_int_eq(sdlk_quantize_q4_0(x, 32, &b, &err), SDLK_OK);
    ck_assert_uint_eq(b.d, sdlk_f32_to_f16(-0.5f));
    ck_assert_int_eq(b.qs[5] & 15, 15); /* -4 * -2 = 8 -> 16.5 -> 15 */
    /* an all-zero block: d = 0 / -8 = -0.0 (f16 0x8000, as ggml stores it), codes 8 */
    memset(x, 0, sizeof x);
    ck_assert_int_eq(sdlk_quantize_q4_0(x, 32, &b, &err), SDLK_OK);
    ck_assert_uint_eq(b.d, 0x8000);
    ck_assert_uint_eq(b.qs[7], 0x88);
    ck_assert_int_eq(sdlk_quantize_q4_0(x, 31, &b, &err), SDLK_ERR_ARG);
    x[4] = NAN;
    ck_assert_int_eq(sdlk_quantize_q4_0(x, 32, &b, &err), SDLK_ERR_FORMAT);
}
END_TEST

START_TEST(q8_0_hand_computed_block)
{
    sdlk_error err = {0};
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = 0.0f;
    x[0] = 127.0f;  /* d = 1 */
    x[1] = 2.5f;    /* roundf: half away from zero -> 3 */
    x[2] = -2.5f;   /* -3 */
    x[3] = -127.0f;
    x[4] = 0.49f;
    x[32 + 7] = -0.254f; /* second block: d = 0.254/127 = 0.002, code -127 */
    sdlk_block_q8_0 b[2];
    ck_assert_int_eq(sdlk_quantize_q8_0(x, 64, b, &err), SDLK_OK);
    ck_assert_uint_eq(b[0].d, sdlk_f32_to_f16(1.0f));
    ck_assert_int_eq(b[0].qs[0], 127);
    ck_assert_int_eq(b[0].qs[1], 3);
    ck_assert_int_eq(b[0].qs[2], -3);
    ck_assert_int_eq(b[0].qs[3], -127);
    ck_assert_int_eq(b[0].qs[4], 0);
    ck_assert_uint_eq(b[1].d, sdlk_f32_to_f16(0.254f / 127.0f));
    ck_assert_int_eq(b[1].qs[7], -127);
    ck_assert_int_eq(b[1].qs[0], 0);
    ck_assert_uint_eq(sizeof(sdlk_block_q8_0), 34);
    ck_assert_uint_eq(sizeof(sdlk_block_q4_0), 18);
}
END_TEST

/* straight transcription of the documented algorithm, written independently of the
 * library (double-checks the vectorised library path on random data) */
static void slow_q4_0(const float *x, uint8_t *d_out /* 2 bytes */, uint8_t *qs)
{
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    float d = max / -8;
    float id = d != 0 ? 1.0f / d : 0.0f;
    uint16_t h = sdlk_f32_to_f16(d);
    memcpy(d_out, &h, 2);
    for (int j = 0; j < 16; j++) {
        int a = (int)(int8_t)(x[j] * id + 8.5f), b = (int)(int8_t)(x[j + 16] * id + 8.5f);
        a = a > 15 ? 15 : a;
        b = b > 15 ? 15 : b;
        qs[j] = (uint8_t)(a | (b << 4));
    }
}

START_TEST(q4_0_q8_0_random_and_round_trip)
{
    sdlk_error err = {0};
    enum { N = 32 * 64 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = rndf(-3, 3) * (float)(1 + i / 256);
    static sdlk_block_q4_0 b4[N / 32];
    static sdlk_block_q8_0 b8[N / 32];
    ck_assert_int_eq(sdlk_quantize_q4_0(x, N, b4, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_quantize_q8_0(x, N, b8, &err), SDLK_OK);
    for (int i = 0; i < N / 32; i++) {
        uint8_t d[2], qs[16];
        slow_q4_0(x + 32 * i, d, qs);
        ck_assert_mem_eq(&b4[i].d, d, 2);
        ck_assert_mem_eq(b4[i].qs, qs, 16);
    }
    /* round trip: |x - y| <= |d| (Q4_0: trunc(v + 8.5) is within 0.5 of v plus the f16
     * rounding of d; clipped +8 -> 7 costs one step) and |d|/2 + f16 error for Q8_0 */
    sdlk_dequantize_q4_0(b4, N, y);
    for (int i = 0; i < N; i++) {
        float d = fabsf(sdlk_f16_to_f32(b4[i / 32].d));
        REQUIRE(fabsf(x[i] - y[i]) <= d * 1.01f, "Q4_0 round trip %d", i);
    }
    sdlk_dequantize_q8_0(b8, N, y);
    for (int i = 0; i < N; i++) {
        float d = sdlk_f16_to_f32(b8[i / 32].d);
        REQUIRE(fabsf(x[i] - y[i]) <= d * 0.5f + d * 127 * 1e-3f, "Q8_0 round trip %d", i);
    }
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quantize");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_scheme_granularity_axis_against_reference);
    tcase_add_test(tc, group_along_last_axis_large_and_threads_agree);
    tcase_add_test(tc, kernels_scalar_and_avx2_agree);
    tcase_add_test(tc, nan_and_inf_refused_with_index_or_zeroed);
    tcase_add_test(tc, bad_parameters_are_refused);
    tcase_add_test(tc, half_inputs_strides_and_edge_values);
    tcase_add_test(tc, dequantize_refuses_inconsistent_parts);
    tcase_add_test(tc, error_stats_hand_computed);
    suite_add_tcase(s, tc);
    TCase *tg = tcase_create("ggml");
    tcase_add_test(tg, q4_0_hand_computed_block);
    tcase_add_test(tg, q8_0_hand_computed_block);
    tcase_add_test(tg, q4_0_q8_0_random_and_round_trip);
    suite_add_tcase(s, tg);
    return s;
}

int main(void)
{
    return unit_run_suite(quant_suite());
}
