/* bitgemm_avx2.c -- AVX2 kernels of the bit-composed GEMM (compiled with -mavx2 -mpopcnt).
 *
 * AND-popcount: popcount per byte through a 16-entry nibble table (vpshufb), Zen 3 runs
 * two vpshufb per cycle. Each operand vector is split into its low and high nibbles once
 * per 256-bit chunk and reused by every pair of the register block, so a pair costs
 * 2 AND + 2 PSHUFB + 2 ADD. Byte counters (at most 8 per chunk per pair) are folded into
 * 64-bit lanes with vpsadbw every 31 chunks, before they can overflow 255.
 *
 * int16 dot: vpmaddwd (16 products, pairwise summed into int32) + vpaddd.
 */
#include <immintrin.h>

#include "quant/bitgemm_kernels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* The register blocks below are small arrays indexed by loops with constant bounds; the
 * loops are unrolled explicitly (GCC's -O2 would keep them as loops over memory, which
 * costs 5-10x). */

ALWAYS_INLINE int64_t hsum_epi64(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

ALWAYS_INLINE uint32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(s);
}

/* MR x NR plane rows over nwords words; MR and NR are compile-time constants at every
 * call site, so the arrays below live in registers. */
ALWAYS_INLINE void popc_ukernel(const uint64_t *a, int64_t as, const uint64_t *b, int64_t bs,
                                int64_t nwords, int32_t *c, int64_t ldc, const int MR,
                                const int NR)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1,
                                         1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i total[4][4];
    _Pragma("GCC unroll 4")
    for (int i = 0; i < MR; i++)
        _Pragma("GCC unroll 4")
        for (int j = 0; j < NR; j++)
            total[i][j] = _mm256_setzero_si256();
    const int64_t nchunks = nwords / 4;
    for (int64_t c0 = 0; c0 < nchunks; c0 += 31) {
        const int64_t c1 = c0 + 31 < nchunks ? c0 + 31 : nchunks;
        __m256i acc[4][4];
        _Pragma("GCC unroll 4")
        for (int i = 0; i < MR; i++)
            _Pragma("GCC unroll 4")
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm256_setzero_si256();
        for (int64_t ch = c0; ch < c1; ch++) {
            __m256i alo[4], ahi[4];
            _Pragma("GCC unroll 4")
            for (int i = 0; i < MR; i++) {
                __m256i v = _mm256_load_si256((const __m256i *)(a + i * as + 4 * ch));
                alo[i] = _mm256_and_si256(v, low4);
                ahi[i] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            }
            _Pragma("GCC unroll 4")
            for (int j = 0; j < NR; j++) {
                __m256i v = _mm256_load_si256((const __m256i *)(b + j * bs + 4 * ch));
                __m256i blo = _mm256_and_si256(v, low4);
                __m256i bhi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                _Pragma("GCC unroll 4")
                for (int i = 0; i < MR; i++) {
                    __m256i pl = _mm256_shuffle_epi8(lut, _mm256_and_si256(alo[i], blo));
                    __m256i ph = _mm256_shuffle_epi8(lut, _mm256_and_si256(ahi[i], bhi));
                    acc[i][j] = _mm256_add_epi8(acc[i][j], _mm256_add_epi8(pl, ph));
                }
            }
        }
        _Pragma("GCC unroll 4")
        for (int i = 0; i < MR; i++)
            _Pragma("GCC unroll 4")
            for (int j = 0; j < NR; j++)
                total[i][j] = _mm256_add_epi64(
                    total[i][j], _mm256_sad_epu8(acc[i][j], _mm256_setzero_si256()));
    }
    _Pragma("GCC unroll 4")
    for (int i = 0; i < MR; i++)
        _Pragma("GCC unroll 4")
        for (int j = 0; j < NR; j++)
            c[i * ldc + j] += (int32_t)hsum_epi64(total[i][j]);
}


/* The main register block, written out with named accumulators: with arrays GCC keeps
 * the byte counters on the stack (a load and a store per pair and chunk). 2 A plane rows
 * x NRB B plane rows; low4 is left to the compiler (vpand takes it from memory when the
 * 16 registers are taken by 8 counters, 4 A nibble vectors, 2 B nibble vectors, the LUT). */
#define PAIR(acc, al, ah, bl, bh)                                                          \
    acc = _mm256_add_epi8(acc, _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(al, bl)), \
                                               _mm256_shuffle_epi8(lut, _mm256_and_si256(ah, bh))))
#define BCOL(j, s0, s1)                                                                    \
    do {                                                                                   \
        __m256i vb = _mm256_load_si256((const __m256i *)(b + (j) * bs + 4 * ch));          \
        __m256i bl = _mm256_and_si256(vb, low4);                                           \
        __m256i bh = _mm256_and_si256(_mm256_srli_epi16(vb, 4), low4);                     \
        PAIR(s0, a0l, a0h, bl, bh);                                                        \
        PAIR(s1, a1l, a1h, bl, bh);                                                        \
    } while (0)
#define FOLD(t, s) t = _mm256_add_epi64(t, _mm256_sad_epu8(s, _mm256_setzero_si256()))

static void popc_2x4(const uint64_t *a, int64_t as, const uint64_t *b, int64_t bs,
                     int64_t nwords, int32_t *c, int64_t ldc)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1,
                                         1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i t00 = _mm256_setzero_si256(), t01 = t00, t02 = t00, t03 = t00, t10 = t00,
            t11 = t00, t12 = t00, t13 = t00;
    const int64_t nchunks = nwords / 4;
    for (int64_t c0 = 0; c0 < nchunks; c0 += 31) {
        const int64_t c1 = c0 + 31 < nchunks ? c0 + 31 : nchunks;
        __m256i s00 = _mm256_setzero_si256(), s01 = s00, s02 = s00, s03 = s00, s10 = s00,
                s11 = s00, s12 = s00, s13 = s00;
        for (int64_t ch = c0; ch < c1; ch++) {
            __m256i va0 = _mm256_load_si256((const __m256i *)(a + 4 * ch));
            __m256i va1 = _mm256_load_si256((const __m256i *)(a + as + 4 * ch));
            __m256i a0l = _mm256_and_si256(va0, low4);
            __m256i a0h = _mm256_and_si256(_mm256_srli_epi16(va0, 4), low4);
            __m256i a1l = _mm256_and_si256(va1, low4);
            __m256i a1h = _mm256_and_si256(_mm256_srli_epi16(va1, 4), low4);
            BCOL(0, s00, s10);
            BCOL(1, s01, s11);
            BCOL(2, s02, s12);
            BCOL(3, s03, s13);
        }
        FOLD(t00, s00);
        FOLD(t01, s01);
        FOLD(t02, s02);
        FOLD(t03, s03);
        FOLD(t10, s10);
        FOLD(t11, s11);
        FOLD(t12, s12);
        FOLD(t13, s13);
    }
    c[0] += (int32_t)hsum_epi64(t00);
    c[1] += (int32_t)hsum_epi64(t01);
    c[2] += (int32_t)hsum_epi64(t02);
    c[3] += (int32_t)hsum_epi64(t03);
    c[ldc + 0] += (int32_t)hsum_epi64(t10);
    c[ldc + 1] += (int32_t)hsum_epi64(t11);
    c[ldc + 2] += (int32_t)hsum_epi64(t12);
    c[ldc + 3] += (int32_t)hsum_epi64(t13);
}

#define POPC_MR 2
#define POPC_NR 4

#define POPC_CASE(mr, nr)                                                                 \
    case (mr) * 8 + (nr):                                                                 \
        popc_ukernel(pa, a_stride, pb, b_stride, nwords, pc, ldc, mr, nr);                \
        break;

void sdlk_popc_tile_avx2(const uint64_t *a, int64_t a_stride, int64_t ma, const uint64_t *b,
                         int64_t b_stride, int64_t nb, int64_t nwords, int32_t *counts,
                         int64_t ldc)
{
    /* B panel outer: its NR plane rows stay in L1 while the A tile streams past */
    for (int64_t j0 = 0; j0 < nb; j0 += POPC_NR) {
        int nr = nb - j0 < POPC_NR ? (int)(nb - j0) : POPC_NR;
        for (int64_t i0 = 0; i0 < ma; i0 += POPC_MR) {
            int mr = ma - i0 < POPC_MR ? (int)(ma - i0) : POPC_MR;
            const uint64_t *pa = a + i0 * a_stride, *pb = b + j0 * b_stride;
            int32_t *pc = counts + i0 * ldc + j0;
            switch (mr * 8 + nr) {
                POPC_CASE(4, 4)
                POPC_CASE(4, 3)
                POPC_CASE(4, 2)
                POPC_CASE(4, 1)
                POPC_CASE(3, 4)
                POPC_CASE(3, 3)
                POPC_CASE(3, 2)
                POPC_CASE(3, 1)
            case 2 * 8 + 4:
                popc_2x4(pa, a_stride, pb, b_stride, nwords, pc, ldc);
                break;
                POPC_CASE(2, 3)
                POPC_CASE(2, 2)
                POPC_CASE(2, 1)
                POPC_CASE(1, 4)
                POPC_CASE(1, 3)
                POPC_CASE(1, 2)
                POPC_CASE(1, 1)
            default:
                break;
            }
        }
    }
}

ALWAYS_INLINE void dot16_ukernel(const int16_t *a, int64_t as, const int16_t *b, int64_t bs,
                                 int64_t kc, uint32_t *c, int64_t ldc, const int MR,
                                 const int NR)
{
    __m256i acc[4][4];
    _Pragma("GCC unroll 4")
    for (int i = 0; i < MR; i++)
        _Pragma("GCC unroll 4")
        for (int j = 0; j < NR; j++)
            acc[i][j] = _mm256_setzero_si256();
    for (int64_t k = 0; k < kc; k += 16) {
        __m256i av[4];
        _Pragma("GCC unroll 4")
        for (int i = 0; i < MR; i++)
            av[i] = _mm256_loadu_si256((const __m256i *)(a + i * as + k));
        _Pragma("GCC unroll 4")
        for (int j = 0; j < NR; j++) {
            __m256i bv = _mm256_loadu_si256((const __m256i *)(b + j * bs + k));
            _Pragma("GCC unroll 4")
            for (int i = 0; i < MR; i++)
                acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(av[i], bv));
        }
    }
    _Pragma("GCC unroll 4")
    for (int i = 0; i < MR; i++)
        _Pragma("GCC unroll 4")
        for (int j = 0; j < NR; j++)
            c[i * ldc + j] += hsum_epi32(acc[i][j]);
}

#define DOT_MR 4
#define DOT_NR 2

#define DOT_CASE(mr, nr)                                                                  \
    case (mr) * 8 + (nr):                                                                 \
        dot16_ukernel(pa, a_stride, pb, b_stride, kc, pc, ldc, mr, nr);                   \
        break;

void sdlk_dot16_tile_avx2(const int16_t *a, int64_t a_stride, int64_t ma, const int16_t *b,
                          int64_t b_stride, int64_t nb, int64_t kc, uint32_t *acc, int64_t ldc)
{
    /* A panel outer: its MR rows stay in L1 while B rows stream from L2 */
    for (int64_t i0 = 0; i0 < ma; i0 += DOT_MR) {
        int mr = ma - i0 < DOT_MR ? (int)(ma - i0) : DOT_MR;
        for (int64_t j0 = 0; j0 < nb; j0 += DOT_NR) {
            int nr = nb - j0 < DOT_NR ? (int)(nb - j0) : DOT_NR;
            const int16_t *pa = a + i0 * a_stride, *pb = b + j0 * b_stride;
            uint32_t *pc = acc + i0 * ldc + j0;
            switch (mr * 8 + nr) {
                DOT_CASE(4, 2)
                DOT_CASE(4, 1)
                DOT_CASE(3, 2)
                DOT_CASE(3, 1)
                DOT_CASE(2, 2)
                DOT_CASE(2, 1)
                DOT_CASE(1, 2)
                DOT_CASE(1, 1)
            default:
                break;
            }
        }
    }
}
