/* bitgemm_avx2.c -- AVX2 kernels of the bit-composed GEMM (compiled with -mavx2 -mpopcnt).
 *
 * AND-popcount: popcount per byte through a 16-entry nibble table (vpshufb), Zen 3 runs
 * two vpshufb per cycle. The operands arrive nibble-split (sdlk_nibble_split_avx2: each
 * 256-bit chunk stored as its low nibbles and its high nibbles, masked), so that a pair
 * costs 2 AND + 2 PSHUFB + 2 ADD and no shift or mask per chunk: splitting once per GEMM
 * instead of once per use measured ~25-35 % faster on Zen 3. Byte counters (at most 8 per chunk per pair) are folded into
 * 64-bit lanes with vpsadbw every 31 chunks, before they can overflow 255.
 * Not done (by op count, not measured): Harley-Seal carry-save adders. Their ~2x is
 * against the unsplit LUT popcount (shift + mask per word); on split operands a CSA tree
 * costs about as many ops per word (~5 + the AND) as the LUT pair (6), and needs ones/
 * twos/fours state per plane pair, for which the 2x4 block has no registers left.
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

void sdlk_nibble_split_avx2(const uint64_t *src, int64_t nwords, uint64_t *dst)
{
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int64_t ch = 0; ch < nwords / 4; ch++) {
        __m256i v = _mm256_load_si256((const __m256i *)(src + 4 * ch));
        _mm256_store_si256((__m256i *)(dst + 8 * ch), _mm256_and_si256(v, low4));
        _mm256_store_si256((__m256i *)(dst + 8 * ch + 4),
                           _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
    }
}

/* popcount(lo AND blo) + popcount(hi AND bhi) per byte, added to acc */
#define PAIR(acc, al, ah, bl, bh)                                                          \
    acc = _mm256_add_epi8(                                                                 \
        acc, _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(al, bl)),           \
                             _mm256_shuffle_epi8(lut, _mm256_and_si256(ah, bh))))
#define LUT_INIT                                                                           \
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, \
                                         1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4)
#define LOAD_LO(p, ch) _mm256_load_si256((const __m256i *)((p) + 8 * (ch)))
#define LOAD_HI(p, ch) _mm256_load_si256((const __m256i *)((p) + 8 * (ch) + 4))
/* byte counters grow by at most 8 per chunk: fold them (vpsadbw) every 31, before 255 */
enum { FOLD_CHUNKS = 31 };

/* Edge blocks: MR x NR plane rows (constants at every call site). Each fold block's
 * counters go straight into c (as in popc_2x4): 64-bit running totals as well would not
 * fit in registers next to them. */
ALWAYS_INLINE void popc_ukernel(const uint64_t *a, int64_t as, const uint64_t *b, int64_t bs,
                                int64_t nwords, int32_t *c, int64_t ldc, const int MR,
                                const int NR)
{
    LUT_INIT;
    const int64_t nchunks = nwords / 4;
    for (int64_t c0 = 0; c0 < nchunks; c0 += FOLD_CHUNKS) {
        const int64_t c1 = c0 + FOLD_CHUNKS < nchunks ? c0 + FOLD_CHUNKS : nchunks;
        __m256i acc[4][4];
        _Pragma("GCC unroll 4")
        for (int i = 0; i < MR; i++)
            _Pragma("GCC unroll 4")
            for (int j = 0; j < NR; j++)
                acc[i][j] = _mm256_setzero_si256();
        for (int64_t ch = c0; ch < c1; ch++) {
            _Pragma("GCC unroll 4")
            for (int j = 0; j < NR; j++) {
                __m256i bl = LOAD_LO(b + j * bs, ch), bh = LOAD_HI(b + j * bs, ch);
                _Pragma("GCC unroll 4")
                for (int i = 0; i < MR; i++)
                    PAIR(acc[i][j], LOAD_LO(a + i * as, ch), LOAD_HI(a + i * as, ch), bl, bh);
            }
        }
        _Pragma("GCC unroll 4")
        for (int i = 0; i < MR; i++)
            _Pragma("GCC unroll 4")
            for (int j = 0; j < NR; j++)
                c[i * ldc + j] += (int32_t)hsum_epi64(
                    _mm256_sad_epu8(acc[i][j], _mm256_setzero_si256()));
    }
}

/* The main block, 2 A plane rows x 4 B plane rows, written out with named accumulators
 * (with arrays GCC keeps the byte counters on the stack). Registers: 8 counters, the 4
 * nibble vectors of A, the LUT, 2 temporaries = 15 of 16; B's nibble vectors are memory
 * operands of vpand. Per pair and chunk: 2 AND + 2 PSHUFB + 2 ADD, nothing else.
 *
 * BCOL (one B plane row against the two A rows) is one asm statement: in the intrinsics
 * form GCC kept only 13 of the 15 live vectors in registers and spilled/reloaded byte
 * counters and A vectors inside the loop (~75 instructions per chunk instead of 52;
 * ~15-25 % slower at 2048^3 on Zen 3). Temporaries are added to the counter one at a
 * time, so only two are ever live. Loading B into registers first (12 loads per chunk
 * instead of 20) needs a 16th register, and GCC then spilled again: measured no better. */
#define BCOL(j, s0, s1)                                                                    \
    do {                                                                                   \
        __m256i t0_, t1_;                                                                  \
        __asm__("vpand   %[bl], %[a0l], %[t0]\n\t"                                          \
                "vpand   %[bh], %[a0h], %[t1]\n\t"                                          \
                "vpshufb %[t0], %[lut], %[t0]\n\t"                                          \
                "vpshufb %[t1], %[lut], %[t1]\n\t"                                          \
                "vpaddb  %[t0], %[x0], %[x0]\n\t"                                           \
                "vpaddb  %[t1], %[x0], %[x0]\n\t"                                           \
                "vpand   %[bl], %[a1l], %[t0]\n\t"                                          \
                "vpand   %[bh], %[a1h], %[t1]\n\t"                                          \
                "vpshufb %[t0], %[lut], %[t0]\n\t"                                          \
                "vpshufb %[t1], %[lut], %[t1]\n\t"                                          \
                "vpaddb  %[t0], %[x1], %[x1]\n\t"                                           \
                "vpaddb  %[t1], %[x1], %[x1]"                                              \
                : [x0] "+x"(s0), [x1] "+x"(s1), [t0] "=&x"(t0_), [t1] "=&x"(t1_)             \
                : [a0l] "x"(a0l), [a0h] "x"(a0h), [a1l] "x"(a1l), [a1h] "x"(a1h),            \
                  [lut] "x"(lut), [bl] "m"(*(const __m256i *)(b + (j) * bs + 8 * ch)),       \
                  [bh] "m"(*(const __m256i *)(b + (j) * bs + 8 * ch + 4)));                  \
    } while (0)

/* c[0..3] += the byte sums of s0..s3: vpsadbw folds each into four 64-bit lanes (< 2^16
 * each, so a lane fits 32 bits); pairs are interleaved into 32-bit lanes and summed so
 * that four counters reach memory with one 128-bit add, instead of four horizontal sums
 * and scalar read-modify-writes. */
ALWAYS_INLINE void add4_bytesums(int32_t *c, __m256i s0, __m256i s1, __m256i s2, __m256i s3)
{
    const __m256i z = _mm256_setzero_si256();
    __m256i x = _mm256_or_si256(_mm256_sad_epu8(s0, z),
                                _mm256_slli_epi64(_mm256_sad_epu8(s1, z), 32));
    __m256i y = _mm256_or_si256(_mm256_sad_epu8(s2, z),
                                _mm256_slli_epi64(_mm256_sad_epu8(s3, z), 32));
    __m256i t = _mm256_add_epi32(_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    _mm_storeu_si128((__m128i *)c, _mm_add_epi32(_mm_loadu_si128((const __m128i *)c), r));
}

static void popc_2x4(const uint64_t *a, int64_t as, const uint64_t *b, int64_t bs,
                     int64_t nwords, int32_t *c, int64_t ldc)
{
    LUT_INIT;
    const int64_t nchunks = nwords / 4;
    /* Each fold block is reduced straight into c: keeping 64-bit running totals in
     * registers as well (8 more ymm) made GCC spill byte counters inside the inner loop. */
    for (int64_t c0 = 0; c0 < nchunks; c0 += FOLD_CHUNKS) {
        const int64_t c1 = c0 + FOLD_CHUNKS < nchunks ? c0 + FOLD_CHUNKS : nchunks;
        __m256i s00 = _mm256_setzero_si256(), s01 = s00, s02 = s00, s03 = s00, s10 = s00,
                s11 = s00, s12 = s00, s13 = s00;
        for (int64_t ch = c0; ch < c1; ch++) {
            __m256i a0l = LOAD_LO(a, ch), a0h = LOAD_HI(a, ch);
            __m256i a1l = LOAD_LO(a + as, ch), a1h = LOAD_HI(a + as, ch);
            BCOL(0, s00, s10);
            BCOL(1, s01, s11);
            BCOL(2, s02, s12);
            BCOL(3, s03, s13);
        }
        add4_bytesums(c, s00, s01, s02, s03);
        add4_bytesums(c + ldc, s10, s11, s12, s13);
    }
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
    /* B panel outer: its NR plane rows stay in L1 while the A tile streams past. The
     * next panel is prefetched, one plane row per A block: a B tile is used once per A
     * tile, so its panels come from L3, and at K = 4096 a panel is exactly one 4 KiB page,
     * where the hardware's stream prefetcher stops -- each panel's first A block then
     * waited on ~64 L3 misses (4096^3 measured ~5-30 % faster with this). With smaller
     * panels (2048^3: half a page) the hardware keeps up and the prefetches only cost
     * (~3 % on w1a1), so they are issued from a page per panel on. */
    const int64_t row_bytes = nwords * 16; /* a split row: 2 * nwords words */
    const int prefetch = row_bytes * POPC_NR >= 4096;
    for (int64_t j0 = 0; j0 < nb; j0 += POPC_NR) {
        int nr = nb - j0 < POPC_NR ? (int)(nb - j0) : POPC_NR;
        const int64_t next_end = !prefetch ? 0 : nb < j0 + 2 * POPC_NR ? nb : j0 + 2 * POPC_NR;
        for (int64_t i0 = 0; i0 < ma; i0 += POPC_MR) {
            int mr = ma - i0 < POPC_MR ? (int)(ma - i0) : POPC_MR;
            const int64_t pf_row = j0 + POPC_NR + i0 / POPC_MR;
            if (pf_row < next_end)
                for (int64_t off = 0; off < row_bytes; off += 64)
                    _mm_prefetch((const char *)(b + pf_row * b_stride) + off, _MM_HINT_T0);
            const uint64_t *pa = a + i0 * a_stride, *pb = b + j0 * b_stride;
            int32_t *pc = counts + i0 * ldc + j0;
            switch (mr * 8 + nr) {
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

/* The main int16 block, 4 A rows x 2 B rows with named accumulators (arrays would live on
 * the stack): 8 accumulators + 4 A vectors + 1 B vector + a temporary. */
#define MADD(acc, x, y) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y))
static void dot16_4x2(const int16_t *a, int64_t as, const int16_t *b, int64_t bs, int64_t kc,
                      uint32_t *c, int64_t ldc)
{
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
            c21 = c00, c30 = c00, c31 = c00;
    for (int64_t k = 0; k < kc; k += 16) {
        __m256i a0 = _mm256_loadu_si256((const __m256i *)(a + k));
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(a + as + k));
        __m256i a2 = _mm256_loadu_si256((const __m256i *)(a + 2 * as + k));
        __m256i a3 = _mm256_loadu_si256((const __m256i *)(a + 3 * as + k));
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + k));
        MADD(c00, a0, b0);
        MADD(c10, a1, b0);
        MADD(c20, a2, b0);
        MADD(c30, a3, b0);
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + bs + k));
        MADD(c01, a0, b1);
        MADD(c11, a1, b1);
        MADD(c21, a2, b1);
        MADD(c31, a3, b1);
    }
    c[0] += hsum_epi32(c00);
    c[1] += hsum_epi32(c01);
    c[ldc] += hsum_epi32(c10);
    c[ldc + 1] += hsum_epi32(c11);
    c[2 * ldc] += hsum_epi32(c20);
    c[2 * ldc + 1] += hsum_epi32(c21);
    c[3 * ldc] += hsum_epi32(c30);
    c[3 * ldc + 1] += hsum_epi32(c31);
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
            case 4 * 8 + 2:
                dot16_4x2(pa, a_stride, pb, b_stride, kc, pc, ldc);
                break;
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
