/* Unit tests of lib/quant/bitpack.h and bitgemm.h: packing layout and round trips, and
 * the GEMM bit for bit against a naive int64 triple loop over the codes, for every
 * (abits, wbits) in 1..8 x 1..8 and every encoding pair, both routes, both kernel
 * families, odd shapes, zero points, scales, thread counts; bad input; the device option
 * (CPU by default, the GPU refused where there is none); requantize-and-repack. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/pool.h"
#include "quant/bitgemm.h"
#include "quant/bitpack.h"
#include "unit.h"

/* Check writes a record per ck_assert; inner loops use this and only call it on failure */
#define REQUIRE(cond, ...)                                                                 \
    do {                                                                                   \
        if (!(cond))                                                                       \
            ck_abort_msg(__VA_ARGS__);                                                     \
    } while (0)

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint32_t rnd32(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static int avx2_available(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt"); }

/* random codes of an encoding as bytes (uint8 for unsigned, int8 otherwise) */
static uint8_t *random_codes(int64_t rows, int64_t k, int bits, sdlk_qencoding enc)
{
    uint8_t *c = malloc((size_t)(rows * k) + 1);
    int32_t lo, hi;
    sdlk_qencoding_range(enc, bits, &lo, &hi);
    for (int64_t i = 0; i < rows * k; i++) {
        int32_t v = enc == SDLK_QENC_BINARY ? (rnd32() & 1 ? 1 : -1)
                                            : lo + (int32_t)(rnd32() % (uint32_t)(hi - lo + 1));
        c[i] = (uint8_t)v;
    }
    return c;
}

static int32_t code_value(uint8_t c, sdlk_qencoding enc)
{
    return enc == SDLK_QENC_UNSIGNED ? (int32_t)c : (int32_t)(int8_t)c;
}

/* the obvious definition */
static void naive_gemm(const uint8_t *a, sdlk_qencoding aenc, const uint8_t *b,
                       sdlk_qencoding benc, int64_t m, int64_t n, int64_t k, const int32_t *za,
                       int64_t za_count, const int32_t *zb, int64_t zb_count, int64_t *y)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            int64_t zai = za ? za[za_count == 1 ? 0 : i] : 0;
            int64_t zbj = zb ? zb[zb_count == 1 ? 0 : j] : 0;
            int64_t s = 0;
            for (int64_t q = 0; q < k; q++)
                s += (code_value(a[i * k + q], aenc) - zai) * (code_value(b[j * k + q], benc) - zbj);
            y[i * n + j] = s;
        }
}

typedef struct gemm_case {
    int64_t m, n, k;
    int abits, wbits;
    sdlk_qencoding aenc, benc;
    int zero_points; /* 0 none, 1 per tensor, 2 per row */
} gemm_case;

/* Run one case through every route x kernel family (and 1 and 2 threads when a pool is
 * given) and compare with the naive result. */
static void run_case(const gemm_case *c, sdlk_pool *pool)
{
    sdlk_error err = {0};
    uint8_t *ca = random_codes(c->m, c->k, c->abits, c->aenc);
    uint8_t *cb = random_codes(c->n, c->k, c->wbits, c->benc);
    sdlk_bitpacked pa, pb;
    REQUIRE(sdlk_bitpack(ca, c->m, c->k, c->k, c->abits, c->aenc, &pa, &err) == SDLK_OK, "%s",
            err.msg);
    REQUIRE(sdlk_bitpack(cb, c->n, c->k, c->k, c->wbits, c->benc, &pb, &err) == SDLK_OK, "%s",
            err.msg);
    int32_t *za = NULL, *zb = NULL;
    int64_t zac = 0, zbc = 0;
    if (c->zero_points) {
        zac = c->zero_points == 1 ? 1 : c->m;
        zbc = c->zero_points == 1 ? 1 : c->n;
        za = malloc(sizeof(int32_t) * (size_t)zac);
        zb = malloc(sizeof(int32_t) * (size_t)zbc);
        for (int64_t i = 0; i < zac; i++)
            za[i] = (int32_t)(rnd32() % 300) - 40;
        for (int64_t i = 0; i < zbc; i++)
            zb[i] = (int32_t)(rnd32() % 300) - 40;
    }
    int64_t *ref = malloc(sizeof(int64_t) * (size_t)(c->m * c->n) + 8);
    naive_gemm(ca, c->aenc, cb, c->benc, c->m, c->n, c->k, za, zac, zb, zbc, ref);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)(c->m * c->n) + 4);
    for (int route = SDLK_QGEMM_ROUTE_BITSERIAL; route <= SDLK_QGEMM_ROUTE_INT8; route++)
        for (int isa = SDLK_QGEMM_ISA_SCALAR; isa <= SDLK_QGEMM_ISA_AVX2; isa++) {
            if (isa == SDLK_QGEMM_ISA_AVX2 && !avx2_available())
                continue;
            for (int threads = 1; threads <= (pool ? 2 : 1); threads++) {
                sdlk_qgemm_opts o = {.route = route, .isa = isa, .a_zero = za,
                                     .a_zero_count = zac, .b_zero = zb, .b_zero_count = zbc};
                sdlk_qgemm_choice ch;
                memset(y, 0x5a, sizeof(int32_t) * (size_t)(c->m * c->n));
                sdlk_status st = sdlk_qgemm(&pa, &pb, &o, threads == 2 ? pool : NULL, y, NULL,
                                            &ch, &err);
                REQUIRE(st == SDLK_OK, "%s", err.msg);
                REQUIRE(ch.route == (sdlk_qgemm_route)route && ch.isa == (sdlk_qgemm_isa)isa,
                        "choice does not honour the request");
                for (int64_t i = 0; i < c->m * c->n; i++)
                    REQUIRE(y[i] == ref[i],
                            "a%d(%s) w%d(%s) %lldx%lldx%lld zp%d route %s isa %s threads %d: "
                            "Y[%lld] = %d, expected %lld",
                            c->abits, sdlk_qencoding_name(c->aenc), c->wbits,
                            sdlk_qencoding_name(c->benc), (long long)c->m, (long long)c->n,
                            (long long)c->k, c->zero_points, sdlk_qgemm_route_name(route),
                            sdlk_qgemm_isa_name(isa), threads, (long long)i, y[i],
                            (long long)ref[i]);
            }
        }
    free(y);
    free(ref);
    free(za);
    free(zb);
    free(ca);
    free(cb);
    sdlk_bitpacked_free(&pa);
    sdlk_bitpacked_free(&pb);
}

static int encodings_for(int bits, sdlk_qencoding *encs)
{
    encs[0] = SDLK_QENC_UNSIGNED;
    encs[1] = SDLK_QENC_SIGNED;
    if (bits == 1) {
        encs[2] = SDLK_QENC_BINARY;
        return 3;
    }
    return 2;
}

/* ---- packing ------------------------------------------------------------------------ */

START_TEST(pack_layout_by_hand)
{
    sdlk_error err = {0};
    /* 2-bit unsigned codes 3, 0, 1, 2: plane 0 = bits 1,0,1,0 -> 0b0101; plane 1 -> 0b1001 */
    uint8_t codes[4] = {3, 0, 1, 2};
    sdlk_bitpacked p;
    ck_assert_int_eq(sdlk_bitpack(codes, 1, 4, 4, 2, SDLK_QENC_UNSIGNED, &p, &err), SDLK_OK);
    ck_assert_int_eq(p.k_words, SDLK_BITPACK_WORD_ALIGN);
    ck_assert_uint_eq(p.words[0], 0x5);
    ck_assert_uint_eq(p.words[p.k_words], 0x9);
    for (int w = 1; w < p.k_words; w++)
        ck_assert_uint_eq(p.words[w], 0);
    sdlk_bitpacked_free(&p);
    /* signed 3-bit -4, -1, 3: patterns 100, 111, 011 */
    int8_t s[3] = {-4, -1, 3};
    ck_assert_int_eq(sdlk_bitpack(s, 1, 3, 3, 3, SDLK_QENC_SIGNED, &p, &err), SDLK_OK);
    ck_assert_uint_eq(p.words[0], 0x6);             /* bit 0: 0,1,1 */
    ck_assert_uint_eq(p.words[p.k_words], 0x6);     /* bit 1: 0,1,1 */
    ck_assert_uint_eq(p.words[2 * p.k_words], 0x3); /* bit 2: 1,1,0 */
    sdlk_bitpacked_free(&p);
    /* binary: +1 -> 1, -1 -> 0; code 65 lands in word 1, bit 1 */
    int8_t bcodes[70];
    for (int i = 0; i < 70; i++)
        bcodes[i] = -1;
    bcodes[0] = 1;
    bcodes[65] = 1;
    ck_assert_int_eq(sdlk_bitpack(bcodes, 1, 70, 70, 1, SDLK_QENC_BINARY, &p, &err), SDLK_OK);
    ck_assert_uint_eq(p.words[0], 1);
    ck_assert_uint_eq(p.words[1], 2);
    ck_assert_int_eq(sdlk_bitpacked_check(&p, &err), SDLK_OK);
    sdlk_bitpacked_free(&p);
}
END_TEST

START_TEST(pack_unpack_round_trip_all_widths)
{
    sdlk_error err = {0};
    int64_t ks[6] = {1, 63, 64, 65, 255, 300};
    for (int bits = 1; bits <= 8; bits++) {
        sdlk_qencoding encs[3];
        int ne = encodings_for(bits, encs);
        for (int e = 0; e < ne; e++)
            for (int ki = 0; ki < 6; ki++) {
                int64_t rows = 3, k = ks[ki];
                uint8_t *c = random_codes(rows, k, bits, encs[e]);
                sdlk_bitpacked p;
                ck_assert_int_eq(sdlk_bitpack(c, rows, k, k, bits, encs[e], &p, &err), SDLK_OK);
                ck_assert_int_eq(sdlk_bitpacked_check(&p, &err), SDLK_OK);
                ck_assert_int_eq(p.k_words, sdlk_bitpack_k_words(k));
                ck_assert_int_eq(p.k_words % SDLK_BITPACK_WORD_ALIGN, 0);
                uint8_t *u = malloc((size_t)(rows * k));
                ck_assert_int_eq(sdlk_bitunpack(&p, u, &err), SDLK_OK);
                ck_assert_mem_eq(u, c, (size_t)(rows * k));
                /* a row stride larger than k packs the same rows */
                uint8_t *wide = calloc((size_t)(rows * (k + 5)), 1);
                for (int64_t r = 0; r < rows; r++)
                    memcpy(wide + r * (k + 5), c + r * k, (size_t)k);
                sdlk_bitpacked p2;
                ck_assert_int_eq(sdlk_bitpack(wide, rows, k, k + 5, bits, encs[e], &p2, &err),
                                 SDLK_OK);
                ck_assert_mem_eq(p.words, p2.words,
                                 sizeof(uint64_t) * (size_t)(rows * bits * p.k_words));
                sdlk_bitpacked_free(&p2);
                free(wide);
                free(u);
                free(c);
                sdlk_bitpacked_free(&p);
            }
    }
}
END_TEST

START_TEST(pack_refuses_bad_codes_and_metadata)
{
    sdlk_error err = {0};
    uint8_t c[6] = {1, 2, 3, 4, 5, 16};
    sdlk_bitpacked p;
    ck_assert_int_eq(sdlk_bitpack(c, 2, 3, 3, 4, SDLK_QENC_UNSIGNED, &p, &err), SDLK_ERR_ARG);
    ck_assert_msg(strstr(err.msg, "code 16 at row 1, column 2"), "%s", err.msg);
    ck_assert_ptr_null(p.words);
    int8_t s[2] = {-9, 0};
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_bitpack(s, 1, 2, 2, 4, SDLK_QENC_SIGNED, &p, &err), SDLK_ERR_ARG);
    int8_t z[2] = {1, 0};
    ck_assert_int_eq(sdlk_bitpack(z, 1, 2, 2, 1, SDLK_QENC_BINARY, &p, &err), SDLK_ERR_ARG);
    ck_assert_int_eq(sdlk_bitpack(z, 1, 2, 2, 2, SDLK_QENC_BINARY, &p, &err), SDLK_ERR_ARG);
    ck_assert_int_eq(sdlk_bitpack(z, 1, 2, 2, 9, SDLK_QENC_UNSIGNED, &p, &err), SDLK_ERR_ARG);
    /* corrupted metadata / padding */
    uint8_t ok[5] = {1, 0, 1, 1, 0};
    ck_assert_int_eq(sdlk_bitpack(ok, 1, 5, 5, 1, SDLK_QENC_UNSIGNED, &p, &err), SDLK_OK);
    p.words[0] |= 1ull << 40; /* a padding bit */
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_bitpacked_check(&p, &err), SDLK_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "padding bits of row 0, plane 0"), "%s", err.msg);
    p.words[0] &= ~(1ull << 40);
    p.k_words = 8;
    ck_assert_int_eq(sdlk_bitpacked_check(&p, &err), SDLK_ERR_FORMAT);
    p.k_words = 4;
    p.bits = 9;
    ck_assert_int_eq(sdlk_bitpacked_check(&p, &err), SDLK_ERR_FORMAT);
    p.bits = 1;
    ck_assert_int_eq(sdlk_bitpacked_check(&p, &err), SDLK_OK);
    sdlk_bitpacked_free(&p);
    sdlk_qencoding e;
    ck_assert_int_eq(sdlk_qencoding_parse("signed", &e, &err), SDLK_OK);
    ck_assert_int_eq(e, SDLK_QENC_SIGNED);
    ck_assert_int_eq(sdlk_quant_scheme_encoding(SDLK_QUANT_ASYMMETRIC), SDLK_QENC_UNSIGNED);
}
END_TEST

/* ---- GEMM ------------------------------------------------------------------------------- */

START_TEST(every_width_and_encoding_pair_is_exact)
{
    /* 1..8 x 1..8, all encoding pairs (289 combinations), small odd shapes with K cycling
     * through the word/vector boundaries, zero points none / per tensor / per row */
    int64_t ks[7] = {1, 63, 64, 65, 129, 255, 300};
    int count = 0;
    for (int abits = 1; abits <= 8; abits++)
        for (int wbits = 1; wbits <= 8; wbits++) {
            sdlk_qencoding ae[3], be[3];
            int na = encodings_for(abits, ae), nb = encodings_for(wbits, be);
            for (int i = 0; i < na; i++)
                for (int j = 0; j < nb; j++) {
                    gemm_case c = {.m = 3 + count % 3, .n = 5 + count % 4, .k = ks[count % 7],
                                   .abits = abits, .wbits = wbits, .aenc = ae[i], .benc = be[j],
                                   .zero_points = count % 3};
                    run_case(&c, NULL);
                    count++;
                }
        }
    ck_assert_int_eq(count, 289);
}
END_TEST

START_TEST(odd_shapes_tiles_k_blocks_and_threads)
{
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    /* shapes that cross the register blocks (2x4 / 4x2), the tiles (48/192 plane rows,
     * 32x48 int rows), the K blocks (4096 bits / 2048 codes) and the 31-chunk byte
     * counter flush (7936 bits) */
    gemm_case cases[] = {
        {37, 29, 1, 1, 1, SDLK_QENC_BINARY, SDLK_QENC_BINARY, 0},
        {37, 29, 1000, 1, 1, SDLK_QENC_BINARY, SDLK_QENC_UNSIGNED, 0},
        {37, 29, 1000, 2, 1, SDLK_QENC_UNSIGNED, SDLK_QENC_BINARY, 2},
        {50, 200, 65, 1, 1, SDLK_QENC_UNSIGNED, SDLK_QENC_UNSIGNED, 0},
        {51, 197, 4161, 2, 2, SDLK_QENC_SIGNED, SDLK_QENC_UNSIGNED, 1},
        {5, 7, 9000, 1, 2, SDLK_QENC_UNSIGNED, SDLK_QENC_SIGNED, 2},
        {33, 49, 2100, 4, 4, SDLK_QENC_UNSIGNED, SDLK_QENC_SIGNED, 2},
        {67, 101, 777, 8, 8, SDLK_QENC_SIGNED, SDLK_QENC_SIGNED, 2},
        {9, 11, 5000, 8, 8, SDLK_QENC_UNSIGNED, SDLK_QENC_UNSIGNED, 0},
        {1, 1, 63, 3, 5, SDLK_QENC_SIGNED, SDLK_QENC_UNSIGNED, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], pool);
    sdlk_pool_destroy(pool);
}
END_TEST

START_TEST(binary_identities_use_true_k)
{
    sdlk_error err = {0};
    /* all +1 against all +1 with K = 65: dot = 65 (padding must not count as -1) */
    int8_t ones[65];
    for (int i = 0; i < 65; i++)
        ones[i] = 1;
    uint8_t zeros[65] = {0};
    sdlk_bitpacked a, b, u;
    ck_assert_int_eq(sdlk_bitpack(ones, 1, 65, 65, 1, SDLK_QENC_BINARY, &a, &err), SDLK_OK);
    for (int i = 0; i < 65; i++)
        ones[i] = -1;
    ck_assert_int_eq(sdlk_bitpack(ones, 1, 65, 65, 1, SDLK_QENC_BINARY, &b, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_bitpack(zeros, 1, 65, 65, 1, SDLK_QENC_UNSIGNED, &u, &err), SDLK_OK);
    int32_t y;
    ck_assert_int_eq(sdlk_qgemm(&a, &a, NULL, NULL, &y, NULL, NULL, &err), SDLK_OK);
    ck_assert_int_eq(y, 65);
    ck_assert_int_eq(sdlk_qgemm(&a, &b, NULL, NULL, &y, NULL, NULL, &err), SDLK_OK);
    ck_assert_int_eq(y, -65);
    ck_assert_int_eq(sdlk_qgemm(&b, &b, NULL, NULL, &y, NULL, NULL, &err), SDLK_OK);
    ck_assert_int_eq(y, 65);
    /* {-1,+1} x {0,1} with all-zero activations: 0 */
    ck_assert_int_eq(sdlk_qgemm(&u, &b, NULL, NULL, &y, NULL, NULL, &err), SDLK_OK);
    ck_assert_int_eq(y, 0);
    sdlk_bitpacked_free(&a);
    sdlk_bitpacked_free(&b);
    sdlk_bitpacked_free(&u);
}
END_TEST

START_TEST(f32_output_with_scales)
{
    sdlk_error err = {0};
    int64_t m = 7, n = 9, k = 130;
    uint8_t *ca = random_codes(m, k, 2, SDLK_QENC_UNSIGNED);
    uint8_t *cb = random_codes(n, k, 3, SDLK_QENC_SIGNED);
    sdlk_bitpacked pa, pb;
    sdlk_bitpack(ca, m, k, k, 2, SDLK_QENC_UNSIGNED, &pa, &err);
    sdlk_bitpack(cb, n, k, k, 3, SDLK_QENC_SIGNED, &pb, &err);
    float sa[7], sb[9];
    for (int i = 0; i < 7; i++)
        sa[i] = 0.01f * (float)(i + 1);
    for (int j = 0; j < 9; j++)
        sb[j] = 0.5f + 0.1f * (float)j;
    int32_t za = 1;
    sdlk_qgemm_opts o = {.a_zero = &za, .a_zero_count = 1, .a_scale = sa, .a_scale_count = 7,
                         .b_scale = sb, .b_scale_count = 9};
    int32_t yi[63];
    float yf[63];
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, yi, yf, NULL, &err), SDLK_OK);
    int64_t ref[63];
    naive_gemm(ca, SDLK_QENC_UNSIGNED, cb, SDLK_QENC_SIGNED, m, n, k, &za, 1, NULL, 0, ref);
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 9; j++) {
            ck_assert_int_eq(yi[i * 9 + j], ref[i * 9 + j]);
            ck_assert_float_eq(yf[i * 9 + j], ((float)ref[i * 9 + j] * sa[i]) * sb[j]);
        }
    /* f32 only, one scale for all */
    float s1 = 2.0f;
    sdlk_qgemm_opts o1 = {.a_scale = &s1, .a_scale_count = 1};
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o1, NULL, NULL, yf, NULL, &err), SDLK_OK);
    naive_gemm(ca, SDLK_QENC_UNSIGNED, cb, SDLK_QENC_SIGNED, m, n, k, NULL, 0, NULL, 0, ref);
    ck_assert_float_eq(yf[10], (float)ref[10] * 2.0f);
    free(ca);
    free(cb);
    sdlk_bitpacked_free(&pa);
    sdlk_bitpacked_free(&pb);
}
END_TEST

START_TEST(route_choice_is_reported)
{
    sdlk_error err = {0};
    sdlk_qgemm_choice ch;
    ck_assert_int_eq(sdlk_qgemm_choose(1, 1, 64, 64, 64, SDLK_QGEMM_ROUTE_AUTO,
                                       SDLK_QGEMM_ISA_AUTO, &ch, &err), SDLK_OK);
    ck_assert_int_eq(ch.route, SDLK_QGEMM_ROUTE_BITSERIAL);
    ck_assert_ptr_nonnull(strstr(ch.reason, "bit-serial"));
    ck_assert_int_eq(sdlk_qgemm_choose(4, 4, 64, 64, 64, SDLK_QGEMM_ROUTE_AUTO,
                                       SDLK_QGEMM_ISA_AUTO, &ch, &err), SDLK_OK);
    if (avx2_available()) {
        ck_assert_int_eq(ch.route, SDLK_QGEMM_ROUTE_INT8);
        ck_assert_int_eq(ch.isa, SDLK_QGEMM_ISA_AVX2);
        ck_assert_msg(strstr(ch.reason, "16 plane pairs"), "%s", ch.reason);
        /* the threshold: MAX_PAIRS plane pairs (a1 x wMAX) still bit-serial, one more int8 */
        ck_assert_int_eq(sdlk_qgemm_choose(1, SDLK_QGEMM_BITSERIAL_MAX_PAIRS, 64, 64, 64,
                                           SDLK_QGEMM_ROUTE_AUTO, SDLK_QGEMM_ISA_AUTO, &ch,
                                           &err), SDLK_OK);
        ck_assert_int_eq(ch.route, SDLK_QGEMM_ROUTE_BITSERIAL);
        if (SDLK_QGEMM_BITSERIAL_MAX_PAIRS < 8) {
            ck_assert_int_eq(sdlk_qgemm_choose(1, SDLK_QGEMM_BITSERIAL_MAX_PAIRS + 1, 64, 64,
                                               64, SDLK_QGEMM_ROUTE_AUTO, SDLK_QGEMM_ISA_AUTO,
                                               &ch, &err), SDLK_OK);
            ck_assert_int_eq(ch.route, SDLK_QGEMM_ROUTE_INT8);
        }
    }
    ck_assert_int_eq(sdlk_qgemm_choose(2, 2, 64, 64, 64, SDLK_QGEMM_ROUTE_BITSERIAL,
                                       SDLK_QGEMM_ISA_SCALAR, &ch, &err), SDLK_OK);
    ck_assert_int_eq(ch.route, SDLK_QGEMM_ROUTE_BITSERIAL);
    ck_assert_int_eq(ch.isa, SDLK_QGEMM_ISA_SCALAR);
    ck_assert_int_eq(sdlk_qgemm_choose(9, 2, 64, 64, 64, SDLK_QGEMM_ROUTE_AUTO,
                                       SDLK_QGEMM_ISA_AUTO, &ch, &err), SDLK_ERR_ARG);
    sdlk_qgemm_route r;
    ck_assert_int_eq(sdlk_qgemm_route_parse("int8", &r, &err), SDLK_OK);
    ck_assert_int_eq(r, SDLK_QGEMM_ROUTE_INT8);
    ck_assert_int_eq(sdlk_qgemm_route_parse("fast", &r, &err), SDLK_ERR_ARG);
}
END_TEST

START_TEST(bad_gemm_input_is_refused)
{
    sdlk_error err = {0};
    uint8_t *c = random_codes(2, 100, 8, SDLK_QENC_UNSIGNED);
    sdlk_bitpacked a, b, big_a, big_b;
    sdlk_bitpack(c, 2, 100, 100, 8, SDLK_QENC_UNSIGNED, &a, &err);
    sdlk_bitpack(c, 2, 99, 100, 8, SDLK_QENC_UNSIGNED, &b, &err);
    int32_t y[4];
    ck_assert_int_eq(sdlk_qgemm(&a, &b, NULL, NULL, y, NULL, NULL, &err), SDLK_ERR_ARG);
    ck_assert_msg(strstr(err.msg, "mismatched K: A has 100 codes per row, B has 99"), "%s",
                  err.msg);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_qgemm(&a, &a, NULL, NULL, NULL, NULL, NULL, &err), SDLK_ERR_ARG);
    int32_t z[3] = {0, 0, 0};
    sdlk_qgemm_opts o = {.a_zero = z, .a_zero_count = 3};
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_qgemm(&a, &a, &o, NULL, y, NULL, NULL, &err), SDLK_ERR_ARG);
    ck_assert_msg(strstr(err.msg, "A zero points: 3 values for 2 rows"), "%s", err.msg);
    /* corrupted metadata of an operand */
    a.k_words = 1;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_qgemm(&a, &a, NULL, NULL, y, NULL, NULL, &err), SDLK_ERR_FORMAT);
    ck_assert_msg(strncmp(err.msg, "A: packed matrix", 16) == 0, "%s", err.msg);
    a.k_words = sdlk_bitpack_k_words(100);
    /* 8-bit x 8-bit unsigned with K = 40000: 40000 * 255 * 255 > 2^31 */
    ck_assert_int_eq(sdlk_bitpacked_alloc(&big_a, 1, 40000, 8, SDLK_QENC_UNSIGNED, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_bitpacked_alloc(&big_b, 1, 40000, 8, SDLK_QENC_UNSIGNED, &err), SDLK_OK);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_qgemm(&big_a, &big_b, NULL, NULL, y, NULL, NULL, &err),
                     SDLK_ERR_OVERFLOW);
    /* at 30000 it fits: 30000 * 65025 < 2^31 */
    sdlk_bitpacked_free(&big_a);
    sdlk_bitpacked_free(&big_b);
    ck_assert_int_eq(sdlk_bitpacked_alloc(&big_a, 1, 30000, 8, SDLK_QENC_UNSIGNED, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_qgemm(&big_a, &big_a, NULL, NULL, y, NULL, NULL, &err), SDLK_OK);
    ck_assert_int_eq(y[0], 0);
    sdlk_bitpacked_free(&big_a);
    sdlk_bitpacked_free(&a);
    sdlk_bitpacked_free(&b);
    free(c);
}
END_TEST

START_TEST(int8_route_extremes_wrap_exactly)
{
    /* signed 8 x signed 8 at the extremes (-128 * -128 over many K): the int16 offsets
     * make u*u up to 65025 per product, the wrap-around sums must still give Y exactly */
    gemm_case c = {4, 3, 4000, 8, 8, SDLK_QENC_SIGNED, SDLK_QENC_SIGNED, 0};
    sdlk_error err = {0};
    int8_t *ca = malloc(4 * 4000), *cb = malloc(3 * 4000);
    for (int i = 0; i < 16000; i++)
        ca[i] = -128;
    for (int i = 0; i < 12000; i++)
        cb[i] = (int8_t)(i % 2 ? -128 : 127);
    sdlk_bitpacked pa, pb;
    sdlk_bitpack(ca, 4, 4000, 4000, 8, SDLK_QENC_SIGNED, &pa, &err);
    sdlk_bitpack(cb, 3, 4000, 4000, 8, SDLK_QENC_SIGNED, &pb, &err);
    int32_t y[12];
    for (int route = SDLK_QGEMM_ROUTE_BITSERIAL; route <= SDLK_QGEMM_ROUTE_INT8; route++) {
        sdlk_qgemm_opts o = {.route = route};
        ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, y, NULL, NULL, &err), SDLK_OK);
        /* each row of B: 2000 * (-128 * 127) + 2000 * (-128 * -128) = 2000 * 128 */
        for (int i = 0; i < 12; i++)
            ck_assert_int_eq(y[i], 2000 * 128);
    }
    (void)c;
    free(ca);
    free(cb);
    sdlk_bitpacked_free(&pa);
    sdlk_bitpacked_free(&pb);
}
END_TEST

START_TEST(plane_weights_of_each_encoding)
{
    int32_t w[8], c;
    sdlk_qgemm_plane_weights(SDLK_QENC_UNSIGNED, 3, w, &c);
    ck_assert_int_eq(w[0], 1);
    ck_assert_int_eq(w[1], 2);
    ck_assert_int_eq(w[2], 4);
    ck_assert_int_eq(w[3], 0);
    ck_assert_int_eq(c, 0);
    sdlk_qgemm_plane_weights(SDLK_QENC_SIGNED, 8, w, &c);
    ck_assert_int_eq(w[6], 64);
    ck_assert_int_eq(w[7], -128);
    ck_assert_int_eq(c, 0);
    sdlk_qgemm_plane_weights(SDLK_QENC_BINARY, 1, w, &c);
    ck_assert_int_eq(w[0], 2);
    ck_assert_int_eq(w[1], 0);
    ck_assert_int_eq(c, -1);
}
END_TEST

/* The device option: CPU by default (zero-initialised options and NULL), GPU refused with
 * SDLK_ERR_DEVICE where there is none, AUTO falling back to the CPU there, CPU-only
 * requests refused on the GPU; where a GPU is present (a CUDA build on a GPU machine)
 * the GPU result must equal the CPU's. */
START_TEST(device_option)
{
    sdlk_error err = {0};
    int64_t m = 19, n = 23, k = 333;
    uint8_t *ca = random_codes(m, k, 2, SDLK_QENC_UNSIGNED);
    uint8_t *cb = random_codes(n, k, 1, SDLK_QENC_BINARY);
    sdlk_bitpacked pa, pb;
    ck_assert_int_eq(sdlk_bitpack(ca, m, k, k, 2, SDLK_QENC_UNSIGNED, &pa, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_bitpack(cb, n, k, k, 1, SDLK_QENC_BINARY, &pb, &err), SDLK_OK);
    int32_t za = 2;
    float sb = 0.25f;
    int32_t *cpu = malloc(sizeof(int32_t) * (size_t)(m * n));
    int32_t *other = malloc(sizeof(int32_t) * (size_t)(m * n));
    float *cpu_f = malloc(sizeof(float) * (size_t)(m * n));
    float *other_f = malloc(sizeof(float) * (size_t)(m * n));
    sdlk_qgemm_choice ch;
    /* zero-initialised options and NULL options: the CPU, as before */
    sdlk_qgemm_opts o = {.a_zero = &za, .a_zero_count = 1, .b_scale = &sb, .b_scale_count = 1};
    ck_assert_int_eq(o.device, SDLK_QGEMM_DEVICE_CPU);
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, cpu, cpu_f, &ch, &err), SDLK_OK);
    ck_assert_int_eq(ch.device, SDLK_DEVICE_CPU);
    ck_assert_int_ne(ch.isa, SDLK_QGEMM_ISA_CUDA);
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, NULL, NULL, other, NULL, &ch, &err), SDLK_OK);
    ck_assert_int_eq(ch.device, SDLK_DEVICE_CPU);

    int gpu = sdlk_gpu_count() > 0;
    o.device = SDLK_QGEMM_DEVICE_GPU;
    memset(other, 0x5a, sizeof(int32_t) * (size_t)(m * n));
    sdlk_error_clear(&err);
    sdlk_status st = sdlk_qgemm(&pa, &pb, &o, NULL, other, other_f, &ch, &err);
    if (!gpu) {
        ck_assert_int_eq(st, SDLK_ERR_DEVICE);
        ck_assert_msg(strstr(err.msg, "GPU requested but none is usable"), "%s", err.msg);
        if (!sdlk_cuda_compiled())
            ck_assert_msg(strstr(err.msg, "built without CUDA"), "%s", err.msg);
    } else {
        ck_assert_msg(st == SDLK_OK, "%s", err.msg);
        ck_assert_int_eq(ch.device, SDLK_DEVICE_GPU);
        ck_assert_int_eq(ch.isa, SDLK_QGEMM_ISA_CUDA);
        ck_assert_str_eq(sdlk_qgemm_isa_name(ch.isa), "cuda");
        ck_assert_msg(strstr(ch.reason, "GPU"), "%s", ch.reason);
        ck_assert_mem_eq(other, cpu, sizeof(int32_t) * (size_t)(m * n));
        ck_assert_mem_eq(other_f, cpu_f, sizeof(float) * (size_t)(m * n));
    }
    /* AUTO: the GPU when there is one, else the CPU, with the same result */
    o.device = SDLK_QGEMM_DEVICE_AUTO;
    memset(other, 0x5a, sizeof(int32_t) * (size_t)(m * n));
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, other, NULL, &ch, &err), SDLK_OK);
    ck_assert_int_eq(ch.device, gpu ? SDLK_DEVICE_GPU : SDLK_DEVICE_CPU);
    ck_assert_mem_eq(other, cpu, sizeof(int32_t) * (size_t)(m * n));
    /* AUTO with a CPU-only request stays on the CPU */
    o.route = SDLK_QGEMM_ROUTE_INT8;
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, other, NULL, &ch, &err), SDLK_OK);
    ck_assert_int_eq(ch.device, SDLK_DEVICE_CPU);
    ck_assert_int_eq(ch.route, SDLK_QGEMM_ROUTE_INT8);
    /* CPU-only requests on the GPU, and the GPU's kernel family on the CPU: refused */
    o.device = SDLK_QGEMM_DEVICE_GPU;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, other, NULL, &ch, &err), SDLK_ERR_ARG);
    ck_assert_msg(strstr(err.msg, "route int8"), "%s", err.msg);
    o.route = SDLK_QGEMM_ROUTE_AUTO;
    o.isa = SDLK_QGEMM_ISA_SCALAR;
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, other, NULL, &ch, &err), SDLK_ERR_ARG);
    o.device = SDLK_QGEMM_DEVICE_CPU;
    o.isa = SDLK_QGEMM_ISA_CUDA;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, other, NULL, &ch, &err), SDLK_ERR_ARG);
    ck_assert_msg(strstr(err.msg, "device gpu"), "%s", err.msg);
    ck_assert_int_eq(sdlk_qgemm_choose(1, 1, 4, 4, 4, SDLK_QGEMM_ROUTE_AUTO, SDLK_QGEMM_ISA_CUDA,
                                       &ch, &err),
                     SDLK_ERR_ARG);
    o.isa = SDLK_QGEMM_ISA_AUTO;
    o.device = (sdlk_qgemm_device)7;
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, other, NULL, &ch, &err), SDLK_ERR_ARG);
    /* the device check comes after the operand checks: bad input is still ARG/FORMAT */
    o.device = SDLK_QGEMM_DEVICE_GPU;
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, NULL, NULL, &ch, &err), SDLK_ERR_ARG);
    free(cpu);
    free(other);
    free(cpu_f);
    free(other_f);
    free(ca);
    free(cb);
    sdlk_bitpacked_free(&pa);
    sdlk_bitpacked_free(&pb);
}
END_TEST

/* Requantize and repack: the planes are sdlk_bitpack of the quantizer's codes of the f32
 * output (checked here against an independent loop); on a GPU the same words. */
START_TEST(requantized_output_is_the_next_layers_operand)
{
    sdlk_error err = {0};
    int64_t m = 13, n = 70, k = 200; /* n > 64: two words per plane row, padding after */
    uint8_t *ca = random_codes(m, k, 2, SDLK_QENC_UNSIGNED);
    uint8_t *cb = random_codes(n, k, 3, SDLK_QENC_SIGNED);
    sdlk_bitpacked pa, pb, out, ref;
    ck_assert_int_eq(sdlk_bitpack(ca, m, k, k, 2, SDLK_QENC_UNSIGNED, &pa, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_bitpack(cb, n, k, k, 3, SDLK_QENC_SIGNED, &pb, &err), SDLK_OK);
    int32_t za = 1;
    float sa = 0.05f, sb = 0.5f;
    sdlk_qgemm_opts o = {.a_zero = &za, .a_zero_count = 1, .a_scale = &sa, .a_scale_count = 1,
                         .b_scale = &sb, .b_scale_count = 1};
    float *y = malloc(sizeof(float) * (size_t)(m * n));
    uint8_t *codes = malloc((size_t)(m * n));
    ck_assert_int_eq(sdlk_qgemm(&pa, &pb, &o, NULL, NULL, y, NULL, &err), SDLK_OK);
    const sdlk_qencoding encs[2] = {SDLK_QENC_UNSIGNED, SDLK_QENC_SIGNED};
    for (int e = 0; e < 2; e++)
        for (int bits = 1; bits <= 8; bits += 3) {
            int32_t lo, hi;
            sdlk_qencoding_range(encs[e], bits, &lo, &hi);
            sdlk_qgemm_requant rq = {.bits = bits, .encoding = encs[e], .inv_scale = 0.37f,
                                     .zero = encs[e] == SDLK_QENC_UNSIGNED ? hi / 2 : 0};
            for (int64_t i = 0; i < m * n; i++) {
                long q = lrintf(y[i] * rq.inv_scale) + rq.zero;
                q = q < lo ? lo : q > hi ? hi : q;
                codes[i] = (uint8_t)q;
            }
            ck_assert_int_eq(sdlk_bitpack(codes, m, n, n, bits, encs[e], &ref, &err), SDLK_OK);
            ck_assert_int_eq(sdlk_qgemm_requantized(&pa, &pb, &o, &rq, NULL, &out, NULL, &err),
                             SDLK_OK);
            ck_assert_int_eq(out.rows, m);
            ck_assert_int_eq(out.k, n);
            ck_assert_int_eq(out.bits, bits);
            ck_assert_int_eq(out.encoding, encs[e]);
            ck_assert_int_eq(sdlk_bitpacked_check(&out, &err), SDLK_OK);
            ck_assert_mem_eq(out.words, ref.words,
                             sizeof(uint64_t) * (size_t)(m * bits * ref.k_words));
            if (sdlk_gpu_count() > 0) {
                sdlk_bitpacked gpu;
                sdlk_qgemm_opts og = o;
                og.device = SDLK_QGEMM_DEVICE_GPU;
                ck_assert_int_eq(sdlk_qgemm_requantized(&pa, &pb, &og, &rq, NULL, &gpu, NULL, &err),
                                 SDLK_OK);
                ck_assert_mem_eq(gpu.words, ref.words,
                                 sizeof(uint64_t) * (size_t)(m * bits * ref.k_words));
                sdlk_bitpacked_free(&gpu);
            }
            sdlk_bitpacked_free(&out);
            sdlk_bitpacked_free(&ref);
        }
    /* refused: binary codes, a zero point outside the codes, a bad scale, no GPU */
    sdlk_qgemm_requant bad = {.bits = 1, .encoding = SDLK_QENC_BINARY, .inv_scale = 1.0f};
    ck_assert_int_eq(sdlk_qgemm_requantized(&pa, &pb, &o, &bad, NULL, &out, NULL, &err),
                     SDLK_ERR_ARG);
    ck_assert_ptr_null(out.words);
    bad = (sdlk_qgemm_requant){.bits = 4, .encoding = SDLK_QENC_UNSIGNED, .inv_scale = 1.0f,
                               .zero = 16};
    ck_assert_int_eq(sdlk_qgemm_requantized(&pa, &pb, &o, &bad, NULL, &out, NULL, &err),
                     SDLK_ERR_ARG);
    bad.zero = 3;
    bad.inv_scale = 0.0f;
    ck_assert_int_eq(sdlk_qgemm_requantized(&pa, &pb, &o, &bad, NULL, &out, NULL, &err),
                     SDLK_ERR_ARG);
    bad.inv_scale = 1.0f;
    if (sdlk_gpu_count() == 0) {
        o.device = SDLK_QGEMM_DEVICE_GPU;
        ck_assert_int_eq(sdlk_qgemm_requantized(&pa, &pb, &o, &bad, NULL, &out, NULL, &err),
                         SDLK_ERR_DEVICE);
        ck_assert_ptr_null(out.words);
    }
    free(y);
    free(codes);
    free(ca);
    free(cb);
    sdlk_bitpacked_free(&pa);
    sdlk_bitpacked_free(&pb);
}
END_TEST

static Suite *bitgemm_suite(void)
{
    Suite *s = suite_create("bitgemm");
    TCase *tp = tcase_create("bitpack");
    tcase_add_test(tp, pack_layout_by_hand);
    tcase_add_test(tp, pack_unpack_round_trip_all_widths);
    tcase_add_test(tp, pack_refuses_bad_codes_and_metadata);
    suite_add_tcase(s, tp);
    TCase *tg = tcase_create("gemm");
    tcase_set_timeout(tg, 120);
    tcase_add_test(tg, every_width_and_encoding_pair_is_exact);
    tcase_add_test(tg, odd_shapes_tiles_k_blocks_and_threads);
    tcase_add_test(tg, binary_identities_use_true_k);
    tcase_add_test(tg, f32_output_with_scales);
    tcase_add_test(tg, route_choice_is_reported);
    tcase_add_test(tg, bad_gemm_input_is_refused);
    tcase_add_test(tg, int8_route_extremes_wrap_exactly);
    tcase_add_test(tg, plane_weights_of_each_encoding);
    tcase_add_test(tg, device_option);
    tcase_add_test(tg, requantized_output_is_the_next_layers_operand);
    suite_add_tcase(s, tg);
    return s;
}

int main(void)
{
    return unit_run_suite(bitgemm_suite());
}
