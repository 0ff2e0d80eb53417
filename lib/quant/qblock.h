/* qblock.h -- ggml-compatible Q4_0 and Q8_0 blocks, for llama.cpp users.
 *
 * Contract
 *   The block layouts and the quantizers match ggml's reference quantizers
 *   quantize_row_q4_0_ref / quantize_row_q8_0_ref (ggml/src/ggml-quants.c; called
 *   *_reference in older trees) byte for byte, for finite input:
 *     Q4_0, 18 bytes per 32 values: f16 d, then 16 bytes; byte j holds element j in its
 *       low nibble and element j + 16 in its high nibble. m = the element of largest
 *       magnitude (the first one on ties, sign kept), d = m / -8, id = 1/d (0 if d is 0),
 *       code = min(15, (int8_t)(x * id + 8.5f)) -- truncation, so m itself maps to 0
 *       (value -8) and the opposite extreme is clipped to 15. x ~ (code - 8) * d.
 *     Q8_0, 34 bytes per 32 values: f16 d = max|x| / 127, codes roundf(x * id) (half
 *       away from zero) as int8. x ~ code * d.
 *   d is computed in f32 and stored as f16 rounded to nearest even; the codes use the
 *   f32 reciprocal of the unrounded d, as ggml does. n must be a multiple of 32. NaN or
 *   Inf input is refused with its index (ggml's output would be undefined). O(n).
 *   Little-endian hosts (the f16 is stored in host order, as ggml does).
 */
#ifndef SDLK_QUANT_QBLOCK_H
#define SDLK_QUANT_QBLOCK_H

#include <stdint.h>

#include "core/error.h"

#define SDLK_QBLOCK_SIZE 32

typedef struct sdlk_block_q4_0 {
    uint16_t d; /* f16 bits */
    uint8_t qs[SDLK_QBLOCK_SIZE / 2];
} sdlk_block_q4_0;

typedef struct sdlk_block_q8_0 {
    uint16_t d; /* f16 bits */
    int8_t qs[SDLK_QBLOCK_SIZE];
} sdlk_block_q8_0;

/* x[0..n) -> n / 32 blocks. SDLK_ERR_ARG when n % 32 != 0, SDLK_ERR_FORMAT (with the
 * index) for NaN/Inf. */
sdlk_status sdlk_quantize_q4_0(const float *x, int64_t n, sdlk_block_q4_0 *out, sdlk_error *err);
sdlk_status sdlk_quantize_q8_0(const float *x, int64_t n, sdlk_block_q8_0 *out, sdlk_error *err);

/* n / 32 blocks -> y[0..n) (n a multiple of 32). */
void sdlk_dequantize_q4_0(const sdlk_block_q4_0 *blocks, int64_t n, float *y);
void sdlk_dequantize_q8_0(const sdlk_block_q8_0 *blocks, int64_t n, float *y);

#endif
