/* qblock.c -- ggml Q4_0 / Q8_0 blocks; see qblock.h. Written from the documented
 * algorithm of ggml's reference quantizers (quantize_row_q4_0_ref, quantize_row_q8_0_ref
 * in ggml/src/ggml-quants.c); the arithmetic is kept in the same order and precision
 * (f32, one multiply by the f32 reciprocal) because byte equality depends on it. */
#include "quant/qblock.h"

#include <math.h>
#include <stddef.h>

#include "core/tensor.h"

_Static_assert(sizeof(sdlk_block_q4_0) == 18, "Q4_0 block is 18 bytes in ggml");
_Static_assert(sizeof(sdlk_block_q8_0) == 34, "Q8_0 block is 34 bytes in ggml");

static sdlk_status check_input(const float *x, int64_t n, const char *what, sdlk_error *err)
{
    if (n < 0 || n % SDLK_QBLOCK_SIZE != 0)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s needs a multiple of %d values, got %lld", what,
                              SDLK_QBLOCK_SIZE, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(x[i]) < INFINITY))
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "value at flat index %lld is %s; %s needs finite input",
                                  (long long)i, x[i] != x[i] ? "NaN" : x[i] > 0 ? "+Inf" : "-Inf",
                                  what);
    return SDLK_OK;
}

sdlk_status sdlk_quantize_q4_0(const float *x, int64_t n, sdlk_block_q4_0 *out, sdlk_error *err)
{
    sdlk_status st = check_input(x, n, "Q4_0", err);
    if (st)
        return st;
    for (int64_t b = 0; b < n / SDLK_QBLOCK_SIZE; b++) {
        const float *v = x + b * SDLK_QBLOCK_SIZE;
        float amax = 0.0f, extreme = 0.0f;
        for (int j = 0; j < SDLK_QBLOCK_SIZE; j++)
            if (amax < fabsf(v[j])) { /* strict: the first of equal magnitudes wins */
                amax = fabsf(v[j]);
                extreme = v[j];
            }
        const float d = extreme / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = sdlk_f32_to_f16(d);
        for (int j = 0; j < SDLK_QBLOCK_SIZE / 2; j++) {
            /* (int8_t) truncates toward zero; v * id + 8.5 lies in [0.5, 16.5] */
            int lo = (int8_t)(v[j] * id + 8.5f);
            int hi = (int8_t)(v[j + SDLK_QBLOCK_SIZE / 2] * id + 8.5f);
            lo = lo < 15 ? lo : 15;
            hi = hi < 15 ? hi : 15;
            out[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
    return SDLK_OK;
}

sdlk_status sdlk_quantize_q8_0(const float *x, int64_t n, sdlk_block_q8_0 *out, sdlk_error *err)
{
    sdlk_status st = check_input(x, n, "Q8_0", err);
    if (st)
        return st;
    for (int64_t b = 0; b < n / SDLK_QBLOCK_SIZE; b++) {
        const float *v = x + b * SDLK_QBLOCK_SIZE;
        float amax = 0.0f;
        for (int j = 0; j < SDLK_QBLOCK_SIZE; j++)
            amax = fmaxf(amax, fabsf(v[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = sdlk_f32_to_f16(d);
        for (int j = 0; j < SDLK_QBLOCK_SIZE; j++)
            out[b].qs[j] = (int8_t)roundf(v[j] * id); /* |v * id| <= 127 (+ rounding) */
    }
    return SDLK_OK;
}

void sdlk_dequantize_q4_0(const sdlk_block_q4_0 *blocks, int64_t n, float *y)
{
    for (int64_t b = 0; b < n / SDLK_QBLOCK_SIZE; b++) {
        const float d = sdlk_f16_to_f32(blocks[b].d);
        float *o = y + b * SDLK_QBLOCK_SIZE;
        for (int j = 0; j < SDLK_QBLOCK_SIZE / 2; j++) {
            o[j] = (float)((blocks[b].qs[j] & 0x0f) - 8) * d;
            o[j + SDLK_QBLOCK_SIZE / 2] = (float)((blocks[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void sdlk_dequantize_q8_0(const sdlk_block_q8_0 *blocks, int64_t n, float *y)
{
    for (int64_t b = 0; b < n / SDLK_QBLOCK_SIZE; b++) {
        const float d = sdlk_f16_to_f32(blocks[b].d);
        for (int j = 0; j < SDLK_QBLOCK_SIZE; j++)
            y[b * SDLK_QBLOCK_SIZE + j] = (float)blocks[b].qs[j] * d;
    }
}
