/* bitgemm.h -- Y = A x B^T for n-bit integer operands (APNN-TC bit composition).
 *
 * Contract
 *   A (activations, M x K) and B (weights, N x K) are bit-plane packed matrices
 *   (bitpack.h) of any widths 1..8 and any encodings (unsigned, two's-complement signed,
 *   binary {-1,+1}) on either side. With zero points za (per A row, or one for all) and
 *   zb (per B row, or one), the integer result is exactly
 *       Y[m][n] = sum_k (a[m][k] - za[m]) * (b[n][k] - zb[n])
 *   over the true K (the zero padding of the packed form never counts), as int32; the
 *   call is refused (SDLK_ERR_OVERFLOW) when K and the code/zero-point ranges allow a
 *   result outside int32. The f32 output is ((float)Y[m][n] * sa[m]) * sb[n] with
 *   per-row scales sa (A) and sb (B), each given per row or as one value.
 *   Outputs are row-major M x N (leading dimension N); either may be NULL, not both.
 *
 *   How (bit-serial route): every code is a weighted sum of its bits plus a constant,
 *   v = sum_i w_i bit_i + c, with w_i = 2^i (unsigned), the top weight -2^(n-1)
 *   (signed), or w_0 = 2, c = -1 (binary). With P_ij = popcount(a_i AND b_j) over K and
 *   W = sum_i w_i popcount(plane_i) per row, o = c - z:
 *       Y = sum_ij wa_i wb_j P_ij + ob * WA + oa * WB + K * oa * ob,
 *   which covers the identities of the brief ({-1,+1} x {-1,+1} = K - 2popc(a) - 2popc(b)
 *   + 4popc(a AND b); {-1,+1} x {0,1} = 2popc(w AND x) - popc(x); zero points) as
 *   special cases, with AND only (no XOR form needed). The AND-popcount core treats the
 *   abits*M plane rows of A and wbits*N plane rows of B as one 1-bit GEMM (APNN-TC's
 *   stacking) in cache-sized tiles; the planes of a row are combined with shifts in the
 *   tile epilogue. Cost: O(M N K abits wbits / 64) word operations.
 *
 *   Int8 route: codes are unpacked to u = v - min (0..255, stored as int16) and
 *   multiplied with AVX2 vpmaddwd (16 products per instruction, int32 sums, wrap-around
 *   arithmetic that is exact because the true result fits int32), then the same offset
 *   epilogue. Cost O(M N K), independent of the widths: it wins from about w4a4 up.
 *
 *   Route choice (sdlk_qgemm_choose): bit-serial while abits * wbits plane pairs are at
 *   most SDLK_QGEMM_BITSERIAL_MAX_PAIRS (8: w1a1 .. w1a8, w2a2 .. w2a4), else int8 (w3a3,
 *   w4a4, w8a8, ...); always bit-serial without AVX2 (the portable int path would gain nothing
 *   there). The choice depends only on the widths and the CPU, not on the shape. A caller may force either route and
 *   either kernel family (scalar / AVX2; AVX2 refused on a CPU without it).
 *
 *   Threads: tiles of the output are spread over a core/pool.h pool (NULL = caller only);
 *   results are identical for any thread count and kernel. No global state: the choice
 *   is computed per call from the CPU's features.
 *
 *   Device: opts->device chooses CPU (the zero value, so options written before the GPU
 *   kernel existed keep running on the CPU), GPU, or AUTO (core/device.h: the GPU when
 *   sdl was built with CUDA and a device is present, else the CPU). The GPU runs the
 *   bit-serial route as one stacked 1-bit tensor-core GEMM (kernels/bitgemm_cuda.h) with
 *   the same epilogue identity, so its int32 output equals the CPU's bit for bit and its
 *   f32 output is the same expression, rounded the same way. Asking for the GPU where
 *   there is none (not built with CUDA, no device) is SDLK_ERR_DEVICE naming why, never a
 *   silent fallback; the GPU has no int8 route and no CPU kernel family, so forcing
 *   route int8 or isa scalar/avx2 together with device GPU is SDLK_ERR_ARG (with AUTO
 *   they keep the call on the CPU). The choice names the device it ran on.
 *
 *   Requantize and repack (sdlk_qgemm_requantized): the f32 result turned into the next
 *   layer's n-bit codes and bit planes in one call -- on the GPU inside the GEMM's
 *   epilogue, so Y never exists in f32 in memory; on the CPU as sdlk_qgemm, then the
 *   quantizer's arithmetic, then sdlk_bitpack. Same codes on both devices.
 */
#ifndef SDLK_QUANT_BITGEMM_H
#define SDLK_QUANT_BITGEMM_H

#include <stdint.h>

#include "core/device.h"
#include "core/error.h"
#include "core/pool.h"
#include "quant/bitpack.h"

/* Plane pairs (abits * wbits) up to which the bit-serial route is chosen with AVX2.
 * From measurements on the CI machine (Zen 3): see the notes in bitgemm.c. */
#define SDLK_QGEMM_BITSERIAL_MAX_PAIRS 8

typedef enum sdlk_qgemm_route {
    SDLK_QGEMM_ROUTE_AUTO = 0,
    SDLK_QGEMM_ROUTE_BITSERIAL,
    SDLK_QGEMM_ROUTE_INT8
} sdlk_qgemm_route;

typedef enum sdlk_qgemm_isa {
    SDLK_QGEMM_ISA_AUTO = 0,
    SDLK_QGEMM_ISA_SCALAR,
    SDLK_QGEMM_ISA_AVX2,
    SDLK_QGEMM_ISA_CUDA /* the 1-bit tensor-core kernel: runs on the GPU only */
} sdlk_qgemm_isa;

/* Where sdlk_qgemm runs. Zero is the CPU, so that zero-initialised options keep their
 * meaning; GPU and AUTO behave as SDLK_DEVICE_GPU / SDLK_DEVICE_AUTO of core/device.h. */
typedef enum sdlk_qgemm_device {
    SDLK_QGEMM_DEVICE_CPU = 0,
    SDLK_QGEMM_DEVICE_GPU,
    SDLK_QGEMM_DEVICE_AUTO
} sdlk_qgemm_device;

typedef struct sdlk_qgemm_opts {
    sdlk_qgemm_route route; /* AUTO: sdlk_qgemm_choose() decides */
    sdlk_qgemm_isa isa;     /* AUTO: AVX2 when the CPU has it */
    const int32_t *a_zero;  /* NULL (all 0), or a_zero_count values */
    int64_t a_zero_count;   /* 1 (one for all rows) or M */
    const int32_t *b_zero;
    int64_t b_zero_count;   /* 1 or N */
    const float *a_scale;   /* f32 output only: NULL (1.0), or a_scale_count values */
    int64_t a_scale_count;  /* 1 or M */
    const float *b_scale;
    int64_t b_scale_count;  /* 1 or N */
    sdlk_qgemm_device device; /* CPU (default), GPU or AUTO: see the contract */
} sdlk_qgemm_opts;

/* What a GEMM call ran (or would run) and why, in one sentence. */
typedef struct sdlk_qgemm_choice {
    sdlk_qgemm_route route;
    sdlk_qgemm_isa isa;
    sdlk_device device; /* SDLK_DEVICE_CPU or SDLK_DEVICE_GPU: where it ran */
    char reason[200];
} sdlk_qgemm_choice;

const char *sdlk_qgemm_route_name(sdlk_qgemm_route route); /* "auto", "bitserial", "int8" */
const char *sdlk_qgemm_isa_name(sdlk_qgemm_isa isa); /* "auto", "scalar", "avx2", "cuda" */

/* The bit-serial form of an encoding's codes: v = sum_p weight[p] * bit_p + *constant
 * (weight 2^p, the top plane -2^(bits-1) for SIGNED, weight 2 and constant -1 for
 * BINARY; unused planes weigh 0). */
void sdlk_qgemm_plane_weights(sdlk_qencoding encoding, int bits, int32_t weight[8],
                              int32_t *constant);
sdlk_status sdlk_qgemm_route_parse(const char *name, sdlk_qgemm_route *out, sdlk_error *err);

/* Decide the CPU route and kernel family for these operand widths and shape; honours
 * the requests in route/isa (AUTO = decide). SDLK_ERR_UNSUPPORTED when AVX2 is requested
 * on a CPU without it, SDLK_ERR_ARG for bits outside 1..8 or isa CUDA (a GPU kernel:
 * ask sdlk_qgemm for device GPU instead). */
sdlk_status sdlk_qgemm_choose(int abits, int wbits, int64_t m, int64_t n, int64_t k,
                              sdlk_qgemm_route route, sdlk_qgemm_isa isa,
                              sdlk_qgemm_choice *out, sdlk_error *err);

/* Y = A x B^T (see the contract). `opts` may be NULL (no zero points, no scales, AUTO).
 * `choice`, when not NULL, receives what ran. Mismatched K, bad packed metadata, zero
 * point or scale counts that are neither 1 nor the row count: SDLK_ERR_ARG/FORMAT. */
sdlk_status sdlk_qgemm(const sdlk_bitpacked *a, const sdlk_bitpacked *b,
                       const sdlk_qgemm_opts *opts, sdlk_pool *pool, int32_t *y_int,
                       float *y_f32, sdlk_qgemm_choice *choice, sdlk_error *err);

/* The next layer's quantization of the f32 output (APNN-TC's requantize-and-repack
 * epilogue). */
typedef struct sdlk_qgemm_requant {
    int bits;                /* 1..8 */
    sdlk_qencoding encoding; /* UNSIGNED or SIGNED */
    float inv_scale;         /* 1 / the next layer's activation scale: positive, finite */
    int32_t zero;            /* its zero point, within the encoding's code range */
} sdlk_qgemm_requant;

/* Y = A x B^T as sdlk_qgemm computes its f32 output (same options, same devices), turned
 * into the next layer's codes with sdlk_quantize's arithmetic,
 *     code = rint(clamp(y * inv_scale, min - zero, max - zero)) + zero
 * (round half to even; a NaN goes to the low end), and packed into `out` (allocated here:
 * rows M, K' = N, requant->bits planes, requant->encoding): the next layer's A, read
 * without unpacking. On the GPU the requantization and the packing are fused into the
 * GEMM's epilogue, and the codes equal the CPU's. `out` is empty after a failure;
 * SDLK_ERR_ARG for BINARY or an invalid requantization, otherwise as sdlk_qgemm. */
sdlk_status sdlk_qgemm_requantized(const sdlk_bitpacked *a, const sdlk_bitpacked *b,
                                   const sdlk_qgemm_opts *opts,
                                   const sdlk_qgemm_requant *requant, sdlk_pool *pool,
                                   sdlk_bitpacked *out, sdlk_qgemm_choice *choice,
                                   sdlk_error *err);

#endif
