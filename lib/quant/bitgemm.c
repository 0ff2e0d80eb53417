/* bitgemm.c -- Y = A x B^T on bit-plane packed n-bit operands; see bitgemm.h.
 *
 * Layout of the work: the output is cut into tiles of whole A rows x whole B rows; a
 * tile is one pool task. Bit-serial: a tile's plane rows (abits per A row, wbits per B
 * row, consecutive in memory) form a small 1-bit GEMM whose popcounts go to a per-worker
 * counts buffer, K block by K block (a K block of the A tile fits L1); the epilogue then
 * combines each row pair's abits x wbits counts with their plane weights (shifts) and
 * applies the offset identity. Int8 route: the same tiling over int16 rows.
 *
 * Route threshold (SDLK_QGEMM_BITSERIAL_MAX_PAIRS): the AVX2 AND-popcount kernel's cost
 * grows with abits * wbits plane pairs, the int16 vpmaddwd kernel's does not. Measured at
 * 2048^3 on one Zen 3 core of the CI machine (thread CPU time, medians of 5): bit-serial
 * ~90-125 GOPS at 4 pairs, ~68 at 6, ~48 at 8; int8 route ~60-70 GOPS at any width. So
 * bit-serial was chosen up to 5 pairs (w1a1..w1a5, w2a2), int8 from 6 (w2a3, w4a4, w8a8).
 * Since the 2x4 kernel stopped spilling (same machine, shared, so +-15 %): bit-serial
 * ~80-95 GOPS at 6-7 pairs (w2a3, w1a6, w1a7), ~75-88 at 8 (w2a4, w1a8), ~67 at 9 (w3a3),
 * ~40 at 16 (w4a4), int8 ~55-85: the break-even has moved to 8 pairs, so bit-serial is
 * chosen up to 8 pairs (w1a1..w1a8, w2a2..w2a4) and int8 from 9 (w3a3, w4a4, w8a8).
 */
#include "quant/bitgemm.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/bitgemm_kernels.h"
#include "quant/quant_kernels.h"

#ifdef SDLK_HAVE_CUDA
#include "kernels/bitgemm_cuda.h"
_Static_assert(SDLK_BITPACK_WORD_ALIGN == 4,
               "the GPU kernel steps through planes 256 bits at a time and writes requantized "
               "planes with this alignment (sdlk_cuda_qgemm_requant_words)");
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- portable kernels (also the reference shape of the AVX2 ones) ----------------- */

void sdlk_popc_tile_scalar(const uint64_t *a, int64_t a_stride, int64_t ma, const uint64_t *b,
                           int64_t b_stride, int64_t nb, int64_t nwords, int32_t *counts,
                           int64_t ldc)
{
    for (int64_t i = 0; i < ma; i++)
        for (int64_t j = 0; j < nb; j++) {
            const uint64_t *pa = a + i * a_stride, *pb = b + j * b_stride;
            int64_t sum = 0;
            for (int64_t w = 0; w < nwords; w++)
                sum += __builtin_popcountll(pa[w] & pb[w]);
            counts[i * ldc + j] += (int32_t)sum;
        }
}

void sdlk_dot16_tile_scalar(const int16_t *a, int64_t a_stride, int64_t ma, const int16_t *b,
                            int64_t b_stride, int64_t nb, int64_t kc, uint32_t *acc, int64_t ldc)
{
    for (int64_t i = 0; i < ma; i++)
        for (int64_t j = 0; j < nb; j++) {
            const int16_t *pa = a + i * a_stride, *pb = b + j * b_stride;
            uint32_t sum = 0;
            for (int64_t k = 0; k < kc; k++)
                sum += (uint32_t)((int32_t)pa[k] * (int32_t)pb[k]);
            acc[i * ldc + j] += sum;
        }
}

/* ---- names and the route decision ---------------------------------------------------- */

const char *sdlk_qgemm_route_name(sdlk_qgemm_route route)
{
    switch (route) {
    case SDLK_QGEMM_ROUTE_AUTO: return "auto";
    case SDLK_QGEMM_ROUTE_BITSERIAL: return "bitserial";
    case SDLK_QGEMM_ROUTE_INT8: return "int8";
    }
    return "?";
}

const char *sdlk_qgemm_isa_name(sdlk_qgemm_isa isa)
{
    switch (isa) {
    case SDLK_QGEMM_ISA_AUTO: return "auto";
    case SDLK_QGEMM_ISA_SCALAR: return "scalar";
    case SDLK_QGEMM_ISA_AVX2: return "avx2";
    case SDLK_QGEMM_ISA_CUDA: return "cuda";
    }
    return "?";
}

sdlk_status sdlk_qgemm_route_parse(const char *name, sdlk_qgemm_route *out, sdlk_error *err)
{
    for (int r = SDLK_QGEMM_ROUTE_AUTO; r <= SDLK_QGEMM_ROUTE_INT8; r++)
        if (strcmp(name, sdlk_qgemm_route_name((sdlk_qgemm_route)r)) == 0) {
            *out = (sdlk_qgemm_route)r;
            return SDLK_OK;
        }
    return sdlk_error_set(err, SDLK_ERR_ARG, "unknown GEMM route '%s' (auto, bitserial, int8)",
                          name);
}

static int cpu_has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
#else
    return 0;
#endif
}

sdlk_status sdlk_qgemm_choose(int abits, int wbits, int64_t m, int64_t n, int64_t k,
                              sdlk_qgemm_route route, sdlk_qgemm_isa isa,
                              sdlk_qgemm_choice *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    if (abits < 1 || abits > 8 || wbits < 1 || wbits > 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "bits must be 1..8, got a%d w%d", abits, wbits);
    if (isa == SDLK_QGEMM_ISA_CUDA)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "the cuda kernel family runs on the GPU; ask for device gpu");
    out->device = SDLK_DEVICE_CPU;
    int avx2 = cpu_has_avx2();
    if (isa == SDLK_QGEMM_ISA_AVX2 && !avx2)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "the AVX2 kernels were requested but this CPU has no AVX2");
    out->isa = isa == SDLK_QGEMM_ISA_AUTO ? (avx2 ? SDLK_QGEMM_ISA_AVX2 : SDLK_QGEMM_ISA_SCALAR)
                                          : isa;
    int pairs = abits * wbits;
    if (route != SDLK_QGEMM_ROUTE_AUTO) {
        out->route = route;
        snprintf(out->reason, sizeof out->reason, "%s route requested (w%da%d, %d plane pairs)",
                 sdlk_qgemm_route_name(route), wbits, abits, pairs);
    } else if (out->isa != SDLK_QGEMM_ISA_AVX2) {
        out->route = SDLK_QGEMM_ROUTE_BITSERIAL;
        snprintf(out->reason, sizeof out->reason,
                 "bit-serial: without AVX2 the portable popcount path is the only fast one");
    } else if (pairs <= SDLK_QGEMM_BITSERIAL_MAX_PAIRS) {
        out->route = SDLK_QGEMM_ROUTE_BITSERIAL;
        snprintf(out->reason, sizeof out->reason,
                 "bit-serial: w%da%d needs %d plane pair%s (<= %d), cheaper than int8 "
                 "multiplies",
                 wbits, abits, pairs, pairs == 1 ? "" : "s", SDLK_QGEMM_BITSERIAL_MAX_PAIRS);
    } else {
        out->route = SDLK_QGEMM_ROUTE_INT8;
        snprintf(out->reason, sizeof out->reason,
                 "int8: w%da%d would need %d plane pairs (> %d); one vpmaddwd pass is cheaper",
                 wbits, abits, pairs, SDLK_QGEMM_BITSERIAL_MAX_PAIRS);
    }
    (void)m;
    (void)n;
    (void)k;
    return SDLK_OK;
}

/* ---- operands ------------------------------------------------------------------------- */

/* Everything the epilogue needs about one operand. A code v is written
 * v = sum_i weight[i] * bit_i + constant (bit-serial) or v = u + constant (int route,
 * u >= 0); row_sum[r] is sum_k (v - constant) for row r; offset(r) = constant - zero(r). */
typedef struct operand {
    const sdlk_bitpacked *p;
    int64_t weight[8];
    int64_t constant;
    int64_t *row_sum;
    const int32_t *zero;
    int64_t zero_count;
    int16_t *u; /* int route: rows x k_pad values u */
} operand;

static inline int64_t operand_offset(const operand *o, int64_t r)
{
    int64_t z = o->zero ? o->zero[o->zero_count == 1 ? 0 : r] : 0;
    return o->constant - z;
}

void sdlk_qgemm_plane_weights(sdlk_qencoding encoding, int bits, int32_t weight[8],
                              int32_t *constant)
{
    memset(weight, 0, sizeof(int32_t) * 8);
    for (int i = 0; i < bits && i < 8; i++)
        weight[i] = (int32_t)1 << i;
    *constant = 0;
    if (encoding == SDLK_QENC_SIGNED && bits >= 1 && bits <= 8)
        weight[bits - 1] = -((int32_t)1 << (bits - 1));
    else if (encoding == SDLK_QENC_BINARY) {
        weight[0] = 2;
        *constant = -1;
    }
}

static void bitserial_weights(operand *o)
{
    int32_t w[8], c;
    sdlk_qgemm_plane_weights(o->p->encoding, o->p->bits, w, &c);
    for (int i = 0; i < 8; i++)
        o->weight[i] = w[i];
    o->constant = c;
}

/* W[r] = sum_i weight[i] * popcount(plane i of row r) */
static void bitserial_row_sums(operand *o)
{
    const sdlk_bitpacked *p = o->p;
    for (int64_t r = 0; r < p->rows; r++) {
        int64_t s = 0;
        for (int i = 0; i < p->bits; i++) {
            const uint64_t *w = p->words + ((size_t)r * (size_t)p->bits + (size_t)i) * (size_t)p->k_words;
            int64_t c = 0;
            for (int64_t q = 0; q < p->k_words; q++)
                c += __builtin_popcountll(w[q]);
            s += o->weight[i] * c;
        }
        o->row_sum[r] = s;
    }
}

/* Unpack row r to u = v - min >= 0 (signed: flip the top bit; binary: 2 * bit). Eight
 * codes at a time: spread[b] holds the 8 bits of byte b as eight int16 0/1 values, which
 * are shifted to the plane's weight and added (SSE2, the x86-64 baseline). */
typedef struct unpack_job {
    operand *o;
    int64_t k_pad;
    int16_t (*spread)[8]; /* [256][8] */
} unpack_job;

static void unpack_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    unpack_job *J = ctx;
    const sdlk_bitpacked *p = J->o->p;
    for (int64_t r = begin; r < end; r++) {
        int16_t *u = J->o->u + (size_t)r * (size_t)J->k_pad;
        memset(u, 0, sizeof(int16_t) * (size_t)J->k_pad);
        int64_t k8 = (p->k + 7) / 8 * 8; /* u has k_pad >= k8 entries; bits past k are 0 */
        for (int i = 0; i < p->bits; i++) {
            const uint8_t *bytes = (const uint8_t *)(p->words + ((size_t)r * (size_t)p->bits + (size_t)i) *
                                                                   (size_t)p->k_words);
            int shift = p->encoding == SDLK_QENC_BINARY ? 1 : i;
            for (int64_t k = 0; k < k8; k += 8) {
                const int16_t *s8 = J->spread[bytes[k / 8]];
#if defined(__SSE2__)
                __m128i v = _mm_slli_epi16(_mm_loadu_si128((const __m128i *)s8), shift);
                __m128i cur = _mm_loadu_si128((const __m128i *)(u + k));
                _mm_storeu_si128((__m128i *)(u + k), _mm_add_epi16(cur, v));
#else
                for (int q = 0; q < 8; q++)
                    u[k + q] = (int16_t)(u[k + q] + (s8[q] << shift));
#endif
            }
        }
        if (p->encoding == SDLK_QENC_SIGNED) {
            int16_t top = (int16_t)(1 << (p->bits - 1));
            for (int64_t k = 0; k < p->k; k++)
                u[k] = (int16_t)(u[k] ^ top);
        }
        int64_t s = 0;
        for (int64_t k = 0; k < p->k; k++)
            s += u[k];
        J->o->row_sum[r] = s;
    }
}

/* ---- the tiled drivers ------------------------------------------------------------------- */

/* Tile sizes: an A tile's K block, nibble-split (TILE_A_PLANES rows x 2 x KBLOCK_WORDS
 * words = 24 KiB), fits L1 next to the 4-row B panel; the B tile (192 plane rows x 1 KiB)
 * fits L2. 24 A plane rows measured best of 16/24/32/48 at 2048^3 on Zen 3. */
enum { TILE_A_PLANES = 24, TILE_B_PLANES = 192, KBLOCK_WORDS = 64 };
/* int route: rows of int16 per tile and the K block (4 KiB per row) */
enum { INT_TILE_A = 32, INT_TILE_B = 48, INT_KBLOCK = 2048 };

typedef struct gemm_job {
    operand A, B;
    int64_t m, n, k;
    int64_t tile_a, tile_b, tiles_b; /* rows per tile; tiles along N */
    sdlk_popc_tile_fn popc;
    int split;                         /* the AVX2 kernel reads nibble-split copies */
    const uint64_t *a_words, *b_words; /* the packed words, or their split copies */
    uint64_t *a_split, *b_split;
    sdlk_dot16_tile_fn dot16;
    int64_t k_pad;   /* int route */
    void *scratch;   /* per worker: counts_len 32-bit counters, then tile_b u32 sums */
    int64_t counts_len;
    int64_t *off_a, *off_b; /* per row: constant - zero point */
    /* per B row, the low 32 bits of off_b and of row_sum + K * off_b (see finish_row) */
    uint32_t *ob32, *cb32;
    size_t scratch_stride; /* bytes per worker */
    int32_t *y_int;
    float *y_f32;
    const float *a_scale, *b_scale;
    int64_t a_scale_count, b_scale_count;
} gemm_job;

/* Write one tile row's results: y = s + ob * WA + oa * WB + K * oa * ob, regrouped as
 * s + ob * WA + oa * (WB + K * ob) with the bracket precomputed per B row (cb32). All in
 * wrap-around 32-bit arithmetic: the low 32 bits of sums and products depend only on the
 * low 32 bits of the operands, and the caller checked |Y| <= INT32_MAX, so this equals
 * the exact result -- and unlike 64-bit multiplies it vectorizes. Then the int32 and/or
 * f32 outputs. `s` holds nr sums for row m, columns n0.., each to be scaled by sw (a
 * plane weight: lets a single-plane product pass its popcounts without a copy). */
static void finish_row(const gemm_job *J, int64_t m, int64_t n0, int64_t nr, const uint32_t *s,
                       uint32_t sw)
{
    const uint32_t oa = (uint32_t)J->off_a[m], wa = (uint32_t)J->A.row_sum[m];
    const uint32_t *restrict ob = J->ob32 + n0, *restrict cb = J->cb32 + n0;
    if (J->y_int) {
        int32_t *restrict yi = J->y_int + m * J->n + n0;
        for (int64_t j = 0; j < nr; j++)
            yi[j] = (int32_t)(sw * s[j] + ob[j] * wa + oa * cb[j]);
    }
    if (J->y_f32) {
        float *restrict yf = J->y_f32 + m * J->n + n0;
        float sa = J->a_scale ? J->a_scale[J->a_scale_count == 1 ? 0 : m] : 1.0f;
        for (int64_t j = 0; j < nr; j++) {
            int32_t y = (int32_t)(sw * s[j] + ob[j] * wa + oa * cb[j]);
            float sb = J->b_scale ? J->b_scale[J->b_scale_count == 1 ? 0 : n0 + j] : 1.0f;
            yf[j] = ((float)y * sa) * sb;
        }
    }
}

static void bitserial_tiles(void *ctx, int64_t begin, int64_t end, int worker)
{
    gemm_job *J = ctx;
    const sdlk_bitpacked *A = J->A.p, *B = J->B.p;
    int32_t *counts = (int32_t *)((char *)J->scratch + (size_t)worker * J->scratch_stride);
    const int64_t kw = A->k_words;
    for (int64_t t = begin; t < end; t++) {
        int64_t m0 = (t / J->tiles_b) * J->tile_a, n0 = (t % J->tiles_b) * J->tile_b;
        int64_t mr = J->m - m0 < J->tile_a ? J->m - m0 : J->tile_a;
        int64_t nr = J->n - n0 < J->tile_b ? J->n - n0 : J->tile_b;
        int64_t pa = mr * A->bits, pb = nr * B->bits; /* plane rows */
        memset(counts, 0, sizeof(int32_t) * (size_t)(pa * pb));
        /* split: each plane row is 2 * kw words (nibble-split copy, AVX2 kernels) */
        const int64_t rw = J->split ? 2 * kw : kw;
        const uint64_t *abase = J->a_words + (size_t)m0 * (size_t)A->bits * (size_t)rw;
        const uint64_t *bbase = J->b_words + (size_t)n0 * (size_t)B->bits * (size_t)rw;
        for (int64_t k0 = 0; k0 < kw; k0 += KBLOCK_WORDS) {
            int64_t kc = kw - k0 < KBLOCK_WORDS ? kw - k0 : KBLOCK_WORDS;
            int64_t off = J->split ? 2 * k0 : k0;
            J->popc(abase + off, rw, pa, bbase + off, rw, pb, kc, counts, pb);
        }
        /* combine planes: row m's planes are plane rows m*abits .. m*abits+abits-1 */
        uint32_t *restrict sums = (uint32_t *)(counts + J->counts_len);
        for (int64_t i = 0; i < mr; i++) {
            if (A->bits == 1 && B->bits == 1) { /* one plane pair: the counts row is it */
                finish_row(J, m0 + i, n0, nr, (const uint32_t *)(counts + i * pb),
                           (uint32_t)(J->A.weight[0] * J->B.weight[0]));
                continue;
            }
            /* sums[j] = sum_pq wa_p wb_q counts[(i abits + p) pb + j wbits + q] (mod 2^32,
             * see finish_row); the inner loops run over j so they stream through the
             * counts rows; the first pair assigns, so sums needs no clearing pass */
            for (int p = 0; p < A->bits; p++)
                for (int q = 0; q < B->bits; q++) {
                    const uint32_t w = (uint32_t)(J->A.weight[p] * J->B.weight[q]);
                    const int32_t *restrict row = counts + (i * A->bits + p) * pb + q;
                    const int64_t step = B->bits;
                    if (p == 0 && q == 0)
                        for (int64_t j = 0; j < nr; j++)
                            sums[j] = w * (uint32_t)row[j * step];
                    else
                        for (int64_t j = 0; j < nr; j++)
                            sums[j] += w * (uint32_t)row[j * step];
                }
            finish_row(J, m0 + i, n0, nr, sums, 1);
        }
    }
}

static void int_tiles(void *ctx, int64_t begin, int64_t end, int worker)
{
    gemm_job *J = ctx;
    uint32_t *acc = (uint32_t *)((char *)J->scratch + (size_t)worker * J->scratch_stride);
    for (int64_t t = begin; t < end; t++) {
        int64_t m0 = (t / J->tiles_b) * J->tile_a, n0 = (t % J->tiles_b) * J->tile_b;
        int64_t mr = J->m - m0 < J->tile_a ? J->m - m0 : J->tile_a;
        int64_t nr = J->n - n0 < J->tile_b ? J->n - n0 : J->tile_b;
        memset(acc, 0, sizeof(uint32_t) * (size_t)(mr * nr));
        for (int64_t k0 = 0; k0 < J->k_pad; k0 += INT_KBLOCK) {
            int64_t kc = J->k_pad - k0 < INT_KBLOCK ? J->k_pad - k0 : INT_KBLOCK;
            J->dot16(J->A.u + (size_t)m0 * (size_t)J->k_pad + (size_t)k0, J->k_pad, mr,
                     J->B.u + (size_t)n0 * (size_t)J->k_pad + (size_t)k0, J->k_pad, nr, kc,
                     acc, nr);
        }
        for (int64_t i = 0; i < mr; i++)
            finish_row(J, m0 + i, n0, nr, acc + i * nr, 1);
    }
}

/* ---- validation ---------------------------------------------------------------------- */

static sdlk_status check_counts(const char *what, int64_t count, int64_t rows, const void *ptr,
                                sdlk_error *err)
{
    if (ptr && count != 1 && count != rows)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: %lld values for %lld rows (give 1 or %lld)",
                              what, (long long)count, (long long)rows, (long long)rows);
    return SDLK_OK;
}

/* largest |v - z| over the encoding's codes and the given zero points */
static int64_t max_magnitude(const sdlk_bitpacked *p, const int32_t *zero, int64_t count)
{
    int32_t lo, hi;
    sdlk_qencoding_range(p->encoding, p->bits, &lo, &hi);
    int64_t zmin = 0, zmax = 0;
    if (zero) {
        zmin = zmax = zero[0];
        for (int64_t i = 1; i < count; i++) {
            zmin = zero[i] < zmin ? zero[i] : zmin;
            zmax = zero[i] > zmax ? zero[i] : zmax;
        }
    }
    int64_t a = (int64_t)hi - zmin, b = zmax - (int64_t)lo;
    a = a < 0 ? -a : a;
    b = b < 0 ? -b : b;
    return a > b ? a : b;
}

/* ---- device choice and the GPU route ------------------------------------------------------ */

/* Where this call runs (see "Device" in bitgemm.h). */
static sdlk_status resolve_device(const sdlk_qgemm_opts *opts, sdlk_device *where,
                                  sdlk_error *err)
{
    int cpu_only_request = opts->route == SDLK_QGEMM_ROUTE_INT8 ||
                           opts->isa == SDLK_QGEMM_ISA_SCALAR || opts->isa == SDLK_QGEMM_ISA_AVX2;
    switch (opts->device) {
    case SDLK_QGEMM_DEVICE_CPU:
        if (opts->isa == SDLK_QGEMM_ISA_CUDA)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "the cuda kernel family runs on the GPU; ask for device gpu");
        *where = SDLK_DEVICE_CPU;
        return SDLK_OK;
    case SDLK_QGEMM_DEVICE_GPU:
        if (cpu_only_request)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "the GPU runs the bit-serial route with its own kernel; route "
                                  "%s / isa %s are CPU choices",
                                  sdlk_qgemm_route_name(opts->route),
                                  sdlk_qgemm_isa_name(opts->isa));
        return sdlk_device_resolve(SDLK_DEVICE_GPU, where, err);
    case SDLK_QGEMM_DEVICE_AUTO:
        if (cpu_only_request) {
            *where = SDLK_DEVICE_CPU;
            return SDLK_OK;
        }
        if (opts->isa == SDLK_QGEMM_ISA_CUDA) /* a GPU kernel named: the GPU or an error */
            return sdlk_device_resolve(SDLK_DEVICE_GPU, where, err);
        return sdlk_device_resolve(SDLK_DEVICE_AUTO, where, err);
    }
    return sdlk_error_set(err, SDLK_ERR_ARG, "unknown GEMM device %d", (int)opts->device);
}

static void gpu_choice(const sdlk_bitpacked *a, const sdlk_bitpacked *b, sdlk_qgemm_choice *out)
{
    memset(out, 0, sizeof *out);
    out->route = SDLK_QGEMM_ROUTE_BITSERIAL;
    out->isa = SDLK_QGEMM_ISA_CUDA;
    out->device = SDLK_DEVICE_GPU;
    snprintf(out->reason, sizeof out->reason,
             "GPU: w%da%d as %d plane pair%s, %lld x %lld plane rows stacked into one 1-bit "
             "tensor-core GEMM (mma m16n8k256 AND + popcount)",
             b->bits, a->bits, a->bits * b->bits, a->bits * b->bits == 1 ? "" : "s",
             (long long)(a->rows * a->bits), (long long)(b->rows * b->bits));
}

#ifdef SDLK_HAVE_CUDA
/* The kernel's view of one operand: its words as packed, the plane weights, and per row
 * the offset constant - zero point (mod 2^32, as the CPU epilogue uses it). */
static sdlk_status gpu_operand(const sdlk_bitpacked *p, const int32_t *zero, int64_t zero_count,
                               const float *scale, int64_t scale_count,
                               sdlk_cuda_qgemm_operand *out, int32_t **offsets, sdlk_error *err)
{
    int32_t constant;
    sdlk_qgemm_plane_weights(p->encoding, p->bits, out->weight, &constant);
    *offsets = malloc(sizeof(int32_t) * (size_t)(p->rows > 0 ? p->rows : 1));
    if (!*offsets)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    for (int64_t r = 0; r < p->rows; r++) {
        int64_t z = zero ? zero[zero_count == 1 ? 0 : r] : 0;
        (*offsets)[r] = (int32_t)(uint32_t)(constant - z); /* low 32 bits (can wrap) */
    }
    out->words = p->words;
    out->rows = p->rows;
    out->bits = p->bits;
    out->offset = *offsets;
    out->scale = scale;
    out->scale_count = scale ? scale_count : 0;
    return SDLK_OK;
}

/* The GPU GEMM; with `requant`, the requantized planes go to `planes` (allocated by the
 * caller in the layout sdlk_cuda_qgemm_requant_words describes, which is bitpack.h's). */
static sdlk_status gpu_qgemm(const sdlk_bitpacked *a, const sdlk_bitpacked *b,
                             const sdlk_qgemm_opts *opts, const sdlk_qgemm_requant *requant,
                             int32_t *y_int, float *y_f32, uint64_t *planes, sdlk_error *err)
{
    sdlk_cuda_qgemm_problem problem = {.k = a->k, .k_words = a->k_words,
                                       .bitop = SDLK_CUDA_BITOP_AND,
                                       .want_int32 = y_int != NULL, .want_f32 = y_f32 != NULL};
    if (requant) {
        problem.requant.bits = requant->bits;
        problem.requant.inv_scale = requant->inv_scale;
        problem.requant.zero = requant->zero;
        sdlk_qencoding_range(requant->encoding, requant->bits, &problem.requant.min,
                             &problem.requant.max);
    }
    int32_t *off_a = NULL, *off_b = NULL;
    sdlk_status st = gpu_operand(a, opts->a_zero, opts->a_zero_count, opts->a_scale,
                                 opts->a_scale_count, &problem.a, &off_a, err);
    if (!st)
        st = gpu_operand(b, opts->b_zero, opts->b_zero_count, opts->b_scale, opts->b_scale_count,
                         &problem.b, &off_b, err);
    if (!st)
        st = sdlk_cuda_qgemm(&problem, y_int, y_f32, planes, err);
    free(off_a);
    free(off_b);
    return st;
}
#else
static sdlk_status gpu_qgemm(const sdlk_bitpacked *a, const sdlk_bitpacked *b,
                             const sdlk_qgemm_opts *opts, const sdlk_qgemm_requant *requant,
                             int32_t *y_int, float *y_f32, uint64_t *planes, sdlk_error *err)
{
    /* unreachable: resolve_device() never picks the GPU in a build without CUDA */
    return sdlk_error_set(err, SDLK_ERR_DEVICE, "the GPU GEMM is not built (no CUDA)");
}
#endif

/* Operands, options and the int32 range: everything both entry points refuse alike. */
static sdlk_status check_call(const sdlk_bitpacked *a, const sdlk_bitpacked *b,
                              const sdlk_qgemm_opts *opts, int have_output, sdlk_error *err)
{
    sdlk_status st;
    if ((st = sdlk_bitpacked_check(a, err))) {
        sdlk_error_prefix(err, "A");
        return st;
    }
    if ((st = sdlk_bitpacked_check(b, err))) {
        sdlk_error_prefix(err, "B");
        return st;
    }
    if (a->k != b->k)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "mismatched K: A has %lld codes per row, B has %lld",
                              (long long)a->k, (long long)b->k);
    if (!have_output)
        return sdlk_error_set(err, SDLK_ERR_ARG, "no output requested (int32 and f32 both NULL)");
    if ((st = check_counts("A zero points", opts->a_zero_count, a->rows, opts->a_zero, err)) ||
        (st = check_counts("B zero points", opts->b_zero_count, b->rows, opts->b_zero, err)) ||
        (st = check_counts("A scales", opts->a_scale_count, a->rows, opts->a_scale, err)) ||
        (st = check_counts("B scales", opts->b_scale_count, b->rows, opts->b_scale, err)))
        return st;
    int64_t ma = max_magnitude(a, opts->a_zero, opts->a_zero_count);
    int64_t mb = max_magnitude(b, opts->b_zero, opts->b_zero_count);
    if (a->k > 0 && ma > 0 && mb > 0 &&
        (ma > INT32_MAX / mb || (int64_t)INT32_MAX / (ma * mb) < a->k))
        return sdlk_error_set(err, SDLK_ERR_OVERFLOW,
                              "K = %lld with |a - za| up to %lld and |b - zb| up to %lld could "
                              "exceed int32; split K",
                              (long long)a->k, (long long)ma, (long long)mb);
    return SDLK_OK;
}

sdlk_status sdlk_qgemm(const sdlk_bitpacked *a, const sdlk_bitpacked *b,
                       const sdlk_qgemm_opts *opts_in, sdlk_pool *pool, int32_t *y_int,
                       float *y_f32, sdlk_qgemm_choice *choice_out, sdlk_error *err)
{
    static const sdlk_qgemm_opts no_opts;
    const sdlk_qgemm_opts *opts = opts_in ? opts_in : &no_opts;
    sdlk_status st = check_call(a, b, opts, y_int || y_f32, err);
    if (st)
        return st;
    sdlk_device where;
    if ((st = resolve_device(opts, &where, err)))
        return st;
    sdlk_qgemm_choice choice;
    if (where == SDLK_DEVICE_GPU) {
        gpu_choice(a, b, &choice);
        if (choice_out)
            *choice_out = choice;
        if (a->rows == 0 || b->rows == 0)
            return SDLK_OK;
        return gpu_qgemm(a, b, opts, NULL, y_int, y_f32, NULL, err);
    }
    if ((st = sdlk_qgemm_choose(a->bits, b->bits, a->rows, b->rows, a->k, opts->route,
                                opts->isa, &choice, err)))
        return st;
    if (choice_out)
        *choice_out = choice;
    if (a->rows == 0 || b->rows == 0)
        return SDLK_OK;

    gemm_job J = {.m = a->rows, .n = b->rows, .k = a->k, .y_int = y_int, .y_f32 = y_f32,
                  .a_scale = opts->a_scale, .b_scale = opts->b_scale,
                  .a_scale_count = opts->a_scale_count, .b_scale_count = opts->b_scale_count};
    J.A = (operand){.p = a, .zero = opts->a_zero, .zero_count = opts->a_zero_count};
    J.B = (operand){.p = b, .zero = opts->b_zero, .zero_count = opts->b_zero_count};
    J.A.row_sum = malloc(sizeof(int64_t) * (size_t)a->rows);
    J.B.row_sum = malloc(sizeof(int64_t) * (size_t)b->rows);
    int workers = sdlk_pool_size(pool);
    int avx2 = choice.isa == SDLK_QGEMM_ISA_AVX2;
    st = SDLK_OK;
    if (!J.A.row_sum || !J.B.row_sum) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (choice.route == SDLK_QGEMM_ROUTE_BITSERIAL) {
        bitserial_weights(&J.A);
        bitserial_weights(&J.B);
        bitserial_row_sums(&J.A);
        bitserial_row_sums(&J.B);
        J.tile_a = TILE_A_PLANES / a->bits > 0 ? TILE_A_PLANES / a->bits : 1;
        J.tile_b = TILE_B_PLANES / b->bits > 0 ? TILE_B_PLANES / b->bits : 1;
        J.popc = avx2 ? sdlk_popc_tile_avx2 : sdlk_popc_tile_scalar;
        J.a_words = a->words;
        J.b_words = b->words;
        if (avx2) {
            /* O((M abits + N wbits) K / 64): negligible next to the GEMM */
            size_t an = (size_t)(a->rows * a->bits) * (size_t)a->k_words;
            size_t bn = (size_t)(b->rows * b->bits) * (size_t)b->k_words;
            J.a_split = aligned_alloc(64, (2 * an * sizeof(uint64_t) + 63) / 64 * 64);
            J.b_split = aligned_alloc(64, (2 * bn * sizeof(uint64_t) + 63) / 64 * 64);
            if (!J.a_split || !J.b_split) {
                st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for split bit planes");
                goto done;
            }
            sdlk_nibble_split_avx2(a->words, (int64_t)an, J.a_split);
            sdlk_nibble_split_avx2(b->words, (int64_t)bn, J.b_split);
            J.split = 1;
            J.a_words = J.a_split;
            J.b_words = J.b_split;
        }
        J.counts_len = J.tile_a * a->bits * J.tile_b * b->bits;
    } else {
        int32_t lo;
        int32_t hi;
        J.k_pad = (a->k + 15) / 16 * 16; /* also >= the k rounded to 8 the unpacker writes */
        sdlk_qencoding_range(a->encoding, a->bits, &lo, &hi);
        J.A.constant = lo;
        sdlk_qencoding_range(b->encoding, b->bits, &lo, &hi);
        J.B.constant = lo;
        J.A.u = malloc(sizeof(int16_t) * (size_t)(a->rows * J.k_pad));
        J.B.u = malloc(sizeof(int16_t) * (size_t)(b->rows * J.k_pad));
        if (!J.A.u || !J.B.u) {
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for the int16 operands");
            goto done;
        }
        int16_t spread[256][8];
        for (int v = 0; v < 256; v++)
            for (int q = 0; q < 8; q++)
                spread[v][q] = (int16_t)((v >> q) & 1);
        unpack_job ua = {&J.A, J.k_pad, spread}, ub = {&J.B, J.k_pad, spread};
        sdlk_pool_for(pool, a->rows, 16, unpack_rows, &ua);
        sdlk_pool_for(pool, b->rows, 16, unpack_rows, &ub);
        J.tile_a = INT_TILE_A;
        J.tile_b = INT_TILE_B;
        J.dot16 = avx2 ? sdlk_dot16_tile_avx2 : sdlk_dot16_tile_scalar;
        J.counts_len = J.tile_a * J.tile_b;
    }
    J.counts_len = (J.counts_len + 1) / 2 * 2; /* the u64 sums after the counters align */
    J.scratch_stride = sizeof(int32_t) * (size_t)J.counts_len + sizeof(uint64_t) * (size_t)J.tile_b;
    J.scratch_stride = (J.scratch_stride + 63) / 64 * 64;
    J.off_a = malloc(sizeof(int64_t) * (size_t)J.m);
    J.off_b = malloc(sizeof(int64_t) * (size_t)J.n);
    J.ob32 = malloc(sizeof(uint32_t) * (size_t)J.n);
    J.cb32 = malloc(sizeof(uint32_t) * (size_t)J.n);
    if (!J.off_a || !J.off_b || !J.ob32 || !J.cb32) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < J.m; i++)
        J.off_a[i] = operand_offset(&J.A, i);
    for (int64_t j = 0; j < J.n; j++)
        J.off_b[j] = operand_offset(&J.B, j);
    for (int64_t j = 0; j < J.n; j++) {
        J.ob32[j] = (uint32_t)J.off_b[j];
        J.cb32[j] = (uint32_t)J.B.row_sum[j] + (uint32_t)J.k * J.ob32[j];
    }
    J.scratch = aligned_alloc(64, J.scratch_stride * (size_t)workers);
    if (!J.scratch) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for tile buffers");
        goto done;
    }
    J.tiles_b = (J.n + J.tile_b - 1) / J.tile_b;
    int64_t tiles = (J.m + J.tile_a - 1) / J.tile_a * J.tiles_b;
    sdlk_pool_for(pool, tiles, 1,
                  choice.route == SDLK_QGEMM_ROUTE_BITSERIAL ? bitserial_tiles : int_tiles, &J);
done:
    free(J.a_split);
    free(J.b_split);
    free(J.off_a);
    free(J.off_b);
    free(J.ob32);
    free(J.cb32);
    free(J.scratch);
    free(J.A.u);
    free(J.B.u);
    free(J.A.row_sum);
    free(J.B.row_sum);
    return st;
}

/* ---- requantize and repack for the next layer ---------------------------------------------- */

static sdlk_status check_requant(const sdlk_qgemm_requant *rq, sdlk_error *err)
{
    if (!rq)
        return sdlk_error_set(err, SDLK_ERR_ARG, "no requantization given");
    if (rq->bits < 1 || rq->bits > 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "requantization: bits must be 1..8, got %d",
                              rq->bits);
    if (rq->encoding != SDLK_QENC_UNSIGNED && rq->encoding != SDLK_QENC_SIGNED)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "requantization: %s codes are not supported (unsigned or signed)",
                              sdlk_qencoding_name(rq->encoding));
    if (!(rq->inv_scale > 0) || !(rq->inv_scale < INFINITY))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "requantization: 1/scale must be positive and finite, got %g",
                              (double)rq->inv_scale);
    int32_t lo, hi;
    sdlk_qencoding_range(rq->encoding, rq->bits, &lo, &hi);
    if (rq->zero < lo || rq->zero > hi)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "requantization: zero point %d outside the codes %d..%d", rq->zero,
                              lo, hi);
    return SDLK_OK;
}

/* The codes of the f32 outputs, with sdlk_quantize's own scalar kernel (quant.c). */
static void requantize_codes(const float *y, int64_t count, const sdlk_qgemm_requant *rq,
                             uint8_t *codes)
{
    int32_t lo_code, hi_code;
    sdlk_qencoding_range(rq->encoding, rq->bits, &lo_code, &hi_code);
    sdlk_qcodes_scalar(y, count, rq->inv_scale, (float)(lo_code - rq->zero),
                       (float)(hi_code - rq->zero), rq->zero, codes);
}

sdlk_status sdlk_qgemm_requantized(const sdlk_bitpacked *a, const sdlk_bitpacked *b,
                                   const sdlk_qgemm_opts *opts_in,
                                   const sdlk_qgemm_requant *requant, sdlk_pool *pool,
                                   sdlk_bitpacked *out, sdlk_qgemm_choice *choice_out,
                                   sdlk_error *err)
{
    static const sdlk_qgemm_opts no_opts;
    const sdlk_qgemm_opts *opts = opts_in ? opts_in : &no_opts;
    memset(out, 0, sizeof *out);
    sdlk_status st = check_requant(requant, err);
    if (!st)
        st = check_call(a, b, opts, 1, err);
    sdlk_device where = SDLK_DEVICE_CPU;
    if (!st)
        st = resolve_device(opts, &where, err);
    if (st)
        return st;
    if (where == SDLK_DEVICE_GPU) {
        sdlk_qgemm_choice choice;
        gpu_choice(a, b, &choice);
        if (choice_out)
            *choice_out = choice;
        st = sdlk_bitpacked_alloc(out, a->rows, b->rows, requant->bits, requant->encoding, err);
        if (!st && a->rows > 0 && b->rows > 0)
            st = gpu_qgemm(a, b, opts, requant, NULL, NULL, out->words, err);
        if (st)
            sdlk_bitpacked_free(out);
        return st;
    }
    size_t count = (size_t)a->rows * (size_t)b->rows;
    float *y = malloc(sizeof(float) * (count ? count : 1));
    uint8_t *codes = malloc(count ? count : 1);
    if (!y || !codes)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %zu outputs", count);
    if (!st)
        st = sdlk_qgemm(a, b, opts, pool, NULL, y, choice_out, err);
    if (!st) {
        requantize_codes(y, (int64_t)count, requant, codes);
        st = sdlk_bitpack(codes, a->rows, b->rows, b->rows, requant->bits, requant->encoding, out,
                          err);
    }
    free(y);
    free(codes);
    return st;
}
