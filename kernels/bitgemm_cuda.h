/* bitgemm_cuda.h -- the GPU half of lib/quant/bitgemm.h: Y = A x B^T on bit-plane packed
 * n-bit operands with 1-bit tensor-core MMA (APNN-TC).
 *
 * Contract
 *   Operands arrive exactly in the packed layout of lib/quant/bitpack.h (uploaded as is,
 *   no conversion): row r, plane p, word w at words[(r * bits + p) * k_words + w], bit j
 *   of a word = code 64w + j, k_words a multiple of 4 (256 bits: one MMA K step), padding
 *   bits zero. The encoding is given as numbers, not names: a code is
 *   v = sum_p weight[p] * bit_p + constant, and offset[r] = constant - zero_point(r), so
 *   that (see bitgemm.h)
 *       Y[m][n] = sum_pq wa_p wb_q P_pq + ob[n] WA[m] + oa[m] (WB[n] + K ob[n]),
 *   with P_pq = popcount(a_p AND b_q) over the words, WA[m] = sum_p wa_p popcount(a_p)
 *   (WB alike) -- all in wrap-around 32-bit arithmetic, which is exact because the
 *   caller guarantees |Y| < 2^31 (sdlk_qgemm refuses operands that could overflow).
 *   The f32 output is __fmul_rn(__fmul_rn((float)Y, sa[m]), sb[n]): bit for bit the CPU's
 *   ((float)Y * sa) * sb. Outputs are row-major M x N.
 *
 *   Form: AND (the default, every GPU from sm_80, all encodings) or XOR, the
 *   {-1,+1} x {-1,+1} form of the brief: only for abits = wbits = 1 and only on
 *   compute capability 8.x (Hopper's 1-bit MMA is specified with AND only). The XOR
 *   kernel counts X = popcount(a XOR b) and the epilogue turns it back into the AND count,
 *   popcount(a AND b) = (popcount(a) + popcount(b) - X) / 2, so both forms give the same Y
 *   (what tests/gpu/gpu_bitgemm.c checks); XOR elsewhere is SDLK_ERR_UNSUPPORTED.
 *
 *   How: the abits planes of the M A rows (M' = M abits plane rows, consecutive per row
 *   in the packed layout) and the wbits planes of the N B rows (N' = N wbits) form one
 *   M' x N' x K 1-bit GEMM (APNN-TC's stacking). A thread block owns 128 x 128 plane rows
 *   = floor(128 / abits) A rows x floor(128 / wbits) B rows, so all plane pairs of its
 *   outputs meet in one block; 8 warps of 64 x 32 plane rows each run
 *   mma.sync.m16n8k256 (and.popc / xor.popc) over K chunks of 1024 bits that a 3-stage
 *   cp.async pipeline streams through shared memory. The epilogue parks the 128 x 128
 *   int32 popcounts in shared memory and each thread folds one output's plane pairs with
 *   their weights, adds the offset terms and writes int32 and/or f32. WA/WB come from a
 *   small kernel run before the GEMM (one warp per row).
 *
 *   Limits: M <= 65535 * floor(128 / abits) (grid height); the device must be sm_80 or
 *   newer (SDLK_ERR_UNSUPPORTED otherwise). Every CUDA failure is SDLK_ERR_DEVICE naming
 *   the call. Not thread-safe per context; contexts are independent (no global state
 *   beyond the CUDA runtime's own).
 *
 *   Requantize and repack (APNN-TC's fused epilogue for the next layer): with
 *   requant.bits > 0 the kernel also turns each f32 value y into the next layer's code
 *       t = clamp(y * inv_scale, min - zero, max - zero)   (a NaN clamps to the low end)
 *       q = rint(t) + zero                                 (round half to even)
 *   -- the arithmetic of sdlk_quantize, so the CPU gets the same codes -- and writes it
 *   bit-plane packed as an M x N operand (rows M, K' = N, bitpack.h layout with
 *   k_words = ceil(N / 64) rounded up to a multiple of 4, padding zero), the planes of q's
 *   two's-complement bits; the words are set with atomicOr into a zeroed buffer since a
 *   word's 64 columns come from several threads (and, for wbits > 2, several blocks).
 */
#ifndef SDLK_KERNELS_BITGEMM_CUDA_H
#define SDLK_KERNELS_BITGEMM_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdlk_cuda_bitop {
    SDLK_CUDA_BITOP_AND = 0, /* popcount(a AND b): every encoding, sm_80+ */
    SDLK_CUDA_BITOP_XOR      /* popcount(a XOR b): 1-bit operands, sm_8x only */
} sdlk_cuda_bitop;

/* One operand, host memory; all pointers are read during sdlk_cuda_qgemm_create only. */
typedef struct sdlk_cuda_qgemm_operand {
    const uint64_t *words;  /* rows * bits * k_words words, bitpack.h layout */
    int64_t rows;
    int bits;               /* 1..8 */
    int32_t weight[8];      /* plane weights (bitgemm.h: 2^p, -2^(bits-1) on top, 2 binary) */
    const int32_t *offset;  /* rows values: constant - zero point (mod 2^32) */
    const float *scale;     /* f32 output: NULL (1.0), or scale_count values */
    int64_t scale_count;    /* 1 or rows */
} sdlk_cuda_qgemm_operand;

/* The next layer's quantization of Y (see the contract); bits 0 = none. */
typedef struct sdlk_cuda_qgemm_requant {
    int bits;          /* 0 (off) or 1..8 */
    float inv_scale;   /* 1 / the next layer's activation scale */
    int32_t zero;      /* its zero point, min <= zero <= max */
    int32_t min, max;  /* its code range, e.g. 0..15 (unsigned 4 bit) or -8..7 (signed) */
} sdlk_cuda_qgemm_requant;

typedef struct sdlk_cuda_qgemm_problem {
    sdlk_cuda_qgemm_operand a, b; /* A: M x K activations, B: N x K weights */
    int64_t k;                    /* the true K (codes per row) */
    int64_t k_words;              /* words per plane, a multiple of 4, same for A and B */
    sdlk_cuda_bitop bitop;
    int want_int32, want_f32;     /* which outputs the context computes (at least one of */
    sdlk_cuda_qgemm_requant requant; /* these two or requant) */
} sdlk_cuda_qgemm_problem;

/* Words per plane of the requantized output: ceil(N / 64) rounded up to a multiple of 4
 * (bitpack.h's sdlk_bitpack_k_words). */
int64_t sdlk_cuda_qgemm_requant_words(int64_t n);

/* A problem resident on the device: operands, per-row terms and outputs in device
 * memory, so that runs can be timed without transfers. */
typedef struct sdlk_cuda_qgemm_ctx sdlk_cuda_qgemm_ctx;

/* Check the problem, upload the operands and allocate the outputs on device 0.
 * SDLK_ERR_ARG for a malformed problem, SDLK_ERR_UNSUPPORTED for XOR where it is not
 * available or a device older than sm_80, SDLK_ERR_DEVICE for CUDA failures. */
sdlk_status sdlk_cuda_qgemm_create(const sdlk_cuda_qgemm_problem *problem,
                                   sdlk_cuda_qgemm_ctx **out, sdlk_error *err);
/* Compute Y on the device (the row-term kernel, then the GEMM); returns once both are
 * enqueued and launched without error. */
sdlk_status sdlk_cuda_qgemm_run(sdlk_cuda_qgemm_ctx *ctx, sdlk_error *err);
/* Wait for the device and copy the outputs the context computes into host buffers
 * (any may be NULL to skip it; y_planes holds M * requant.bits *
 * sdlk_cuda_qgemm_requant_words(N) words). */
sdlk_status sdlk_cuda_qgemm_download(sdlk_cuda_qgemm_ctx *ctx, int32_t *y_int, float *y_f32,
                                     uint64_t *y_planes, sdlk_error *err);
/* `warmup` untimed runs, then `reps` (1..64) runs each timed with CUDA events; the
 * median in milliseconds. */
sdlk_status sdlk_cuda_qgemm_time(sdlk_cuda_qgemm_ctx *ctx, int warmup, int reps,
                                 double *median_ms, sdlk_error *err);
/* Free the device memory (NULL-safe). */
void sdlk_cuda_qgemm_destroy(sdlk_cuda_qgemm_ctx *ctx);

/* create + run + download + destroy: host pointers in, host pointers out. Rows of zero
 * (M or N = 0) return SDLK_OK without touching the device. */
sdlk_status sdlk_cuda_qgemm(const sdlk_cuda_qgemm_problem *problem, int32_t *y_int,
                            float *y_f32, uint64_t *y_planes, sdlk_error *err);

/* 1 when the XOR form is available on device 0 (compute capability 8.x). */
int sdlk_cuda_qgemm_xor_available(void);

/* Baselines for the GPU checks, cuBLAS loaded at run time (kernels/cudalibs.h):
 * C = A x B^T with cublasGemmEx in the TN form (A, B stored K-contiguous per row, the
 * layout cuBLAS's IMMA kernels need), int8 -> int32 (CUBLAS_COMPUTE_32I; K must be a
 * multiple of 4) or fp16 -> fp16 with fp32 accumulation (CUBLAS_COMPUTE_32F), on
 * device-resident operands filled with pseudo-random values. Median of `reps` (1..64)
 * event-timed calls after `warmup` calls, in milliseconds. */
typedef enum sdlk_cuda_cublas_type {
    SDLK_CUDA_CUBLAS_INT8,
    SDLK_CUDA_CUBLAS_FP16
} sdlk_cuda_cublas_type;

sdlk_status sdlk_cuda_cublas_gemm_time(sdlk_cuda_cublas_type type, int64_t m, int64_t n,
                                       int64_t k, int warmup, int reps, double *median_ms,
                                       sdlk_error *err);

#ifdef __cplusplus
}
#endif

#endif
