/* quant_avx2.c -- AVX2 forms of the quantizer's hot loops (compiled with -mavx2 -mfma).
 * Bit-identical to the scalar forms in quant.c: see quant_kernels.h. No FMA is used on
 * purpose (x * inv_scale must round once, exactly like the scalar multiply). */
#include <immintrin.h>
#include <math.h>

#include "quant/quant_kernels.h"

/* |x| >= Inf or unordered (NaN) */
static inline __m256 nonfinite_mask(__m256 v)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    return _mm256_cmp_ps(_mm256_and_ps(v, abs_mask), _mm256_set1_ps(INFINITY), _CMP_NLT_UQ);
}

static inline float hmin(__m256 v)
{
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static inline float hmax(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

void sdlk_qrange_avx2(const float *x, int64_t n, sdlk_qrange *r)
{
    /* two independent accumulator pairs hide the min/max latency */
    __m256 mn0 = _mm256_set1_ps(r->min), mn1 = mn0;
    __m256 mx0 = _mm256_set1_ps(r->max), mx1 = mx0;
    __m256 bad = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + 8);
        /* min_ps(v, acc) returns acc when v is NaN, so NaNs never enter the range */
        mn0 = _mm256_min_ps(a, mn0);
        mx0 = _mm256_max_ps(a, mx0);
        mn1 = _mm256_min_ps(b, mn1);
        mx1 = _mm256_max_ps(b, mx1);
        bad = _mm256_or_ps(bad, _mm256_or_ps(nonfinite_mask(a), nonfinite_mask(b)));
    }
    for (; j + 8 <= n; j += 8) {
        __m256 a = _mm256_loadu_ps(x + j);
        mn0 = _mm256_min_ps(a, mn0);
        mx0 = _mm256_max_ps(a, mx0);
        bad = _mm256_or_ps(bad, nonfinite_mask(a));
    }
    r->min = hmin(_mm256_min_ps(mn0, mn1));
    r->max = hmax(_mm256_max_ps(mx0, mx1));
    if (_mm256_movemask_ps(bad))
        r->nonfinite = 1;
    if (j < n)
        sdlk_qrange_scalar(x + j, n - j, r);
}

/* 8 floats -> 8 int32 codes (before the zero point) */
static inline __m256i code8(__m256 v, __m256 inv, __m256 lo, __m256 hi)
{
    __m256 t = _mm256_mul_ps(v, inv);
    /* max_ps(t, lo) returns lo when t is NaN: a NaN that slipped through becomes a
     * defined code instead of INT_MIN */
    t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
    return _mm256_cvtps_epi32(t); /* MXCSR default: round half to even */
}

void sdlk_qcodes_avx2(const float *x, int64_t n, float inv_scale, float lo, float hi,
                      int32_t zero_point, uint8_t *out)
{
    const __m256 inv = _mm256_set1_ps(inv_scale), vlo = _mm256_set1_ps(lo),
                 vhi = _mm256_set1_ps(hi);
    const __m256i zp = _mm256_set1_epi32(zero_point);
    /* packs interleave 128-bit lanes; this permutation restores element order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256i q0 = _mm256_add_epi32(code8(_mm256_loadu_ps(x + j), inv, vlo, vhi), zp);
        __m256i q1 = _mm256_add_epi32(code8(_mm256_loadu_ps(x + j + 8), inv, vlo, vhi), zp);
        __m256i q2 = _mm256_add_epi32(code8(_mm256_loadu_ps(x + j + 16), inv, vlo, vhi), zp);
        __m256i q3 = _mm256_add_epi32(code8(_mm256_loadu_ps(x + j + 24), inv, vlo, vhi), zp);
        /* codes are in -128..255: the int16 pack is exact; the byte pack must keep the
         * low 8 bits, so mask to 0..255 first and pack unsigned (packus saturates
         * -128..-1 to 0 otherwise) */
        __m256i w01 = _mm256_packs_epi32(q0, q1);
        __m256i w23 = _mm256_packs_epi32(q2, q3);
        const __m256i lowbyte = _mm256_set1_epi16(0xff);
        w01 = _mm256_and_si256(w01, lowbyte);
        w23 = _mm256_and_si256(w23, lowbyte);
        __m256i b = _mm256_packus_epi16(w01, w23);
        b = _mm256_permutevar8x32_epi32(b, order);
        _mm256_storeu_si256((__m256i *)(out + j), b);
    }
    if (j < n)
        sdlk_qcodes_scalar(x + j, n - j, inv_scale, lo, hi, zero_point, out + j);
}

void sdlk_qdequant_avx2(const uint8_t *codes, int64_t n, int is_signed, int32_t zero_point,
                        float scale, float *y)
{
    const __m256i zp = _mm256_set1_epi32(zero_point);
    const __m256 s = _mm256_set1_ps(scale);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(codes + j));
        __m256i q = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
        q = _mm256_sub_epi32(q, zp);
        _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), s));
    }
    if (j < n)
        sdlk_qdequant_scalar(codes + j, n - j, is_signed, zero_point, scale, y + j);
}
