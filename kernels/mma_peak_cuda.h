/* mma_peak_cuda.h -- the tensor cores' ceiling for one mma.sync shape, measured.
 *
 * Contract
 *   sdlk_cuda_mma_peak(kind, &tops, err) runs a kernel of nothing but independent
 *   register-to-register mma.sync instructions of `kind` on every SM of device 0 and sets
 *   tops to the rate achieved (10^12 operations per second, an operation being one
 *   multiply or one add: 2 M N K per MMA; for the 1-bit AND form one AND and one add per
 *   bit pair, the convention of the bit-GEMM's effective TOPS). This is the roof our
 *   GEMM and SpMM kernels are held against (METHOD: measure the ceilings, do not trust
 *   datasheets). Median of 5 timed launches after one warm-up. Errors: SDLK_ERR_DEVICE
 *   naming the CUDA call; SDLK_ERR_ARG for an unknown kind. Only built with CUDA;
 *   used by tests/gpu/gpu_bitgemm.c and gpu_spmm.c.
 */
#ifndef SDLK_KERNELS_MMA_PEAK_CUDA_H
#define SDLK_KERNELS_MMA_PEAK_CUDA_H

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdlk_cuda_mma_kind {
    SDLK_CUDA_MMA_B1_AND, /* m16n8k256 b1 and.popc, s32: the bit GEMM's instruction */
    SDLK_CUDA_MMA_S8,     /* m16n8k32 s8 x s8, s32: what int8 GEMM issues without wgmma */
    SDLK_CUDA_MMA_F16,    /* m16n8k16 f16 x f16, f32 */
    SDLK_CUDA_MMA_TF32,   /* m16n8k8 tf32 x tf32, f32: the condensed SpMM's instruction */
} sdlk_cuda_mma_kind;

sdlk_status sdlk_cuda_mma_peak(sdlk_cuda_mma_kind kind, double *tops, sdlk_error *err);

#ifdef __cplusplus
}
#endif

#endif
