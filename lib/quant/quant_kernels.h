/* quant_kernels.h -- internal: the hot loops of quant.c, in a portable and an AVX2 form.
 *
 * Both forms compute bit-identical results (min/max are order independent; codes are
 * round-half-to-even of one f32 multiply, clamped), so the choice between them never
 * changes an output. The AVX2 forms live in quant_avx2.c, compiled with -mavx2; call them
 * only when __builtin_cpu_supports("avx2").
 */
#ifndef SDLK_QUANT_QUANT_KERNELS_H
#define SDLK_QUANT_QUANT_KERNELS_H

#include <stdint.h>

/* Running min / max of a run of floats, and whether a NaN or +-Inf was seen (NaNs do not
 * take part in min/max; the caller refuses or replaces them before using the range). */
typedef struct sdlk_qrange {
    float min, max;
    int nonfinite;
} sdlk_qrange;

/* Update *r with x[0..n). */
typedef void (*sdlk_qrange_fn)(const float *x, int64_t n, sdlk_qrange *r);
/* out[j] = (uint8)(rint(clamp(x[j] * inv_scale, lo, hi)) + zero_point): lo and hi are the
 * integer code limits minus the zero point, so the clamp happens before the conversion
 * (huge values cannot overflow the int conversion). Stored as one byte (two's complement
 * for signed codes). */
typedef void (*sdlk_qcodes_fn)(const float *x, int64_t n, float inv_scale, float lo, float hi,
                               int32_t zero_point, uint8_t *out);
/* y[j] = (code[j] - zero_point) * scale, codes read as int8 when is_signed else uint8. */
typedef void (*sdlk_qdequant_fn)(const uint8_t *codes, int64_t n, int is_signed,
                                 int32_t zero_point, float scale, float *y);

void sdlk_qrange_scalar(const float *x, int64_t n, sdlk_qrange *r);
void sdlk_qcodes_scalar(const float *x, int64_t n, float inv_scale, float lo, float hi,
                        int32_t zero_point, uint8_t *out);
void sdlk_qdequant_scalar(const uint8_t *codes, int64_t n, int is_signed, int32_t zero_point,
                          float scale, float *y);

void sdlk_qrange_avx2(const float *x, int64_t n, sdlk_qrange *r);
void sdlk_qcodes_avx2(const float *x, int64_t n, float inv_scale, float lo, float hi,
                      int32_t zero_point, uint8_t *out);
void sdlk_qdequant_avx2(const uint8_t *codes, int64_t n, int is_signed, int32_t zero_point,
                        float scale, float *y);

#endif
