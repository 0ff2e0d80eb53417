/* decoy_avx2.c -- the best pilot agreement over a search's hypotheses, four hypotheses
 * at a time (detect.c has the contract, in sdlk_wm_decoy_p, and the portable twin).
 *
 * For a pilot vector p, hypothesis i agrees on nonzero[i] & ~(positive[i] ^ p); its
 * popcount comes from a nibble table (vpshufb) summed per 64-bit lane (vpsadbw), the
 * APNN-TC trick of lib/quant. Integer arithmetic only, so the result equals the
 * portable loop's exactly. Compiled with -mavx2 (lib/wm/meson.build); detect.c calls it
 * only after __builtin_cpu_supports("avx2"). */
#include <immintrin.h>

#include "wm/wm_internal.h"

static inline __m256i lane_popcount(__m256i v, __m256i table, __m256i low_nibble)
{
    __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low_nibble));
    __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibble));
    return _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256());
}

int wm_best_agreement_avx2(const uint64_t *positive, const uint64_t *nonzero, int64_t n,
                           uint64_t pilots)
{
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low_nibble = _mm256_set1_epi8(0x0f);
    const __m256i p = _mm256_set1_epi64x((long long)pilots);
    __m256i best = _mm256_setzero_si256(); /* per 64-bit lane, the count in its low half */
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i a = _mm256_andnot_si256(
            _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(positive + i)), p),
            _mm256_loadu_si256((const __m256i *)(nonzero + i)));
        __m256i b = _mm256_andnot_si256(
            _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(positive + i + 4)), p),
            _mm256_loadu_si256((const __m256i *)(nonzero + i + 4)));
        best = _mm256_max_epi32(best, _mm256_max_epi32(lane_popcount(a, table, low_nibble),
                                                       lane_popcount(b, table, low_nibble)));
    }
    int lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, best);
    int out = 0;
    for (int k = 0; k < 8; k += 2)
        out = lanes[k] > out ? lanes[k] : out;
    return wm_best_agreement_loop(positive + i, nonzero + i, n - i, pilots, out);
}
