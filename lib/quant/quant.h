/* quant.h -- float tensors to n-bit integer codes (n = 1..8) and back, with error stats.
 *
 * Contract
 *   Input: any floating tensor (f32, f16, bf16, f64; any strides). f16/bf16/f64 and
 *   non-contiguous inputs are first converted to a contiguous f32 copy
 *   (core/tensor.h), so the arithmetic below is always f32.
 *
 *   Schemes (a "group" is the set of elements sharing one scale):
 *     SYMMETRIC   bits 2..8. scale = amax / (2^(bits-1) - 1), amax = max |x| of the
 *                 group; codes q = clamp(round(x / scale), -2^(bits-1), 2^(bits-1)-1),
 *                 stored as int8 (two's complement); x ~ q * scale. 1 bit is refused
 *                 (a signed 1-bit code is {-1, 0}: use BINARY or ASYMMETRIC).
 *     ASYMMETRIC  bits 1..8. lo = min(min x, 0), hi = max(max x, 0) (the range always
 *                 contains 0, so 0 is exactly representable); scale = (hi - lo) /
 *                 (2^bits - 1); zero point z = clamp(round(-lo / scale), 0, 2^bits - 1);
 *                 q = clamp(round(x / scale) + z, 0, 2^bits - 1), stored as uint8;
 *                 x ~ (q - z) * scale.
 *     BINARY      bits must be 1. q = +1 where x >= 0 (including -0.0), else -1, stored
 *                 as int8; scale = mean |x| of the group (the L2-optimal scale for sign
 *                 codes, as in XNOR-Net); x ~ q * scale.
 *   round() is round-half-to-even of x * (1 / scale) computed in f32 (what the AVX2 and
 *   the scalar kernels both do, under the default floating-point rounding mode), so the
 *   result does not depend on the kernel or the thread count. A group whose range is
 *   zero or below FLT_MIN gets scale 1 (all its codes then encode 0 exactly or nearly).
 *
 *   Granularity:
 *     TENSOR   one scale (and zero point) for the whole tensor; scales shape [1].
 *     CHANNEL  one per index along `axis` (negative counts from the end); scales shape
 *              [shape[axis]].
 *     GROUP    groups of `group_size` consecutive elements along `axis`; scales have the
 *              input's shape with shape[axis] replaced by shape[axis] / group_size. A
 *              group size that does not divide shape[axis] is REFUSED (SDLK_ERR_ARG with
 *              both numbers in the message): padding would silently change what the
 *              scales mean, and every consumer would have to know the pad rule.
 *   Zero points (ASYMMETRIC only) are uint8 with the scales' shape.
 *
 *   NaN and +-Inf are refused (SDLK_ERR_FORMAT naming the C-order flat index of the first
 *   one, and its kind) unless `nan_to_zero` is set, in which case they are quantized as 0.
 *   Nothing is left in `out` after a failure.
 *
 *   Threads: pass a core/pool.h pool (NULL = the calling thread only). Results are
 *   identical for every thread count. Complexity: O(numel), one pass over the input for
 *   GROUP along the last axis (statistics and codes per group while it is in L1), two
 *   passes otherwise. The hot loops have AVX2 versions chosen at run time.
 *
 *   Error statistics (sdlk_quant_error_stats) compare a reference x with its
 *   reconstruction y, accumulating in double.
 */
#ifndef SDLK_QUANT_QUANT_H
#define SDLK_QUANT_QUANT_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "core/tensor.h"

typedef enum sdlk_quant_scheme {
    SDLK_QUANT_SYMMETRIC = 0,
    SDLK_QUANT_ASYMMETRIC,
    SDLK_QUANT_BINARY
} sdlk_quant_scheme;

typedef enum sdlk_quant_granularity {
    SDLK_QUANT_PER_TENSOR = 0,
    SDLK_QUANT_PER_CHANNEL,
    SDLK_QUANT_PER_GROUP
} sdlk_quant_granularity;

typedef struct sdlk_quant_params {
    int bits; /* 1..8 */
    sdlk_quant_scheme scheme;
    sdlk_quant_granularity granularity;
    int axis;           /* CHANNEL/GROUP: the axis (negative = from the end) */
    int64_t group_size; /* GROUP: elements per group along `axis` (>= 1) */
    int nan_to_zero;    /* 1: quantize NaN/Inf as 0 instead of refusing */
} sdlk_quant_params;

/* The result of sdlk_quantize(); owns its tensors (free with sdlk_quantized_free). */
typedef struct sdlk_quantized {
    sdlk_quant_params params; /* as given, with `axis` made non-negative */
    sdlk_tensor codes;        /* input shape; int8 (SYMMETRIC, BINARY) or uint8 */
    sdlk_tensor scales;       /* f32, shape described above */
    sdlk_tensor zero_points;  /* uint8, scales' shape; empty (ndim 0, no data) unless
                                 ASYMMETRIC */
} sdlk_quantized;

/* Check `params` against a tensor shape (bits/scheme combination, axis in range, group
 * size divides the axis). Used by sdlk_quantize; tools call it to fail before reading data. */
sdlk_status sdlk_quant_params_check(const sdlk_quant_params *params, int ndim,
                                    const int64_t *shape, sdlk_error *err);

/* Quantize `x` (see the contract). `out` must be zeroed or freed; on failure it is left
 * empty. */
sdlk_status sdlk_quantize(const sdlk_tensor *x, const sdlk_quant_params *params,
                          sdlk_pool *pool, sdlk_quantized *out, sdlk_error *err);

/* x ~ (q - z) * scale as a new C-contiguous f32 tensor in `out` (which must be empty).
 * Refuses codes/scales tensors whose shapes or dtypes disagree with `q->params`. */
sdlk_status sdlk_dequantize(const sdlk_quantized *q, sdlk_pool *pool, sdlk_tensor *out,
                            sdlk_error *err);

void sdlk_quantized_free(sdlk_quantized *q);

/* C-order flat index of the first NaN or +-Inf of a floating tensor in *index, or -1 when
 * every value is finite. O(numel). */
sdlk_status sdlk_find_nonfinite(const sdlk_tensor *x, int64_t *index, sdlk_error *err);

typedef struct sdlk_quant_stats {
    uint64_t count;
    double rmse;        /* sqrt(mean (x - y)^2) */
    double max_abs;     /* max |x - y| */
    double sqnr_db;     /* 20 log10(|x| / |x - y|); +inf when y == x, -inf when x == 0 != y */
    double cosine;      /* x.y / (|x| |y|); 1 when both are all zero, 0 when one is */
} sdlk_quant_stats;

/* Error of reconstruction `y` against reference `x` (same shape, any float dtypes). */
sdlk_status sdlk_quant_error_stats(const sdlk_tensor *x, const sdlk_tensor *y,
                                   sdlk_quant_stats *out, sdlk_error *err);

/* Short names ("symmetric", "asymmetric", "binary"; "tensor", "channel", "group") and
 * their parsers (SDLK_ERR_ARG for an unknown name). */
const char *sdlk_quant_scheme_name(sdlk_quant_scheme scheme);
const char *sdlk_quant_granularity_name(sdlk_quant_granularity granularity);
sdlk_status sdlk_quant_scheme_parse(const char *name, sdlk_quant_scheme *out, sdlk_error *err);
sdlk_status sdlk_quant_granularity_parse(const char *name, sdlk_quant_granularity *out,
                                         sdlk_error *err);

#endif
