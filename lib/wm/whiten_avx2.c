/* whiten_avx2.c -- the interior of one row of the detector's contrast normalisation,
 * four pixels at a time (whiten.c has the contract and the portable twin).
 *
 * Compiled with -mavx2 and without -mfma (lib/wm/meson.build): every operation is the
 * portable loop's IEEE double or float operation with round-to-nearest, lane by lane --
 * the same subtractions in the same order, division, square root, rounding to float --
 * and nothing can be fused, so each pixel equals wm_whiten_row_portable's bit for bit.
 * whiten.c calls this only after __builtin_cpu_supports("avx2"). */
#include <immintrin.h>

#include "wm/wm_internal.h"

void wm_whiten_row_avx2(const wm_whiten_rows *rows, int x_begin, int x_end)
{
    const int r = rows->radius;
    const double *a1 = rows->s1_bottom, *a0 = rows->s1_top;
    const double *b1 = rows->s2_bottom, *b0 = rows->s2_top;
    const __m256d count = _mm256_set1_pd(rows->count), zero = _mm256_setzero_pd();
    const __m128 floor_add = _mm_set1_ps(rows->floor_add);
    int x = x_begin;
    for (; x + 4 <= x_end; x += 4) {
        int x0 = x - r, x1 = x + r + 1;
        __m256d a = _mm256_add_pd(_mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(a1 + x1),
                                                              _mm256_loadu_pd(a0 + x1)),
                                                _mm256_loadu_pd(a1 + x0)),
                                  _mm256_loadu_pd(a0 + x0));
        __m256d b = _mm256_add_pd(_mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(b1 + x1),
                                                              _mm256_loadu_pd(b0 + x1)),
                                                _mm256_loadu_pd(b1 + x0)),
                                  _mm256_loadu_pd(b0 + x0));
        __m256d m = _mm256_div_pd(a, count);
        __m256d var = _mm256_sub_pd(_mm256_div_pd(b, count), _mm256_mul_pd(m, m));
        /* max(var, 0) is var > 0 ? var : 0, the portable loop's test */
        __m128 mean = _mm256_cvtpd_ps(m);
        __m128 sd = _mm256_cvtpd_ps(_mm256_sqrt_pd(_mm256_max_pd(var, zero)));
        __m128 y = _mm_loadu_ps(rows->luma + x);
        _mm_storeu_ps(rows->out + x, _mm_div_ps(_mm_sub_ps(y, mean), _mm_add_ps(sd, floor_add)));
    }
    if (x < x_end)
        wm_whiten_row_portable(rows, x, x_end);
}
