/* convert.cu -- dst = src * scale on the GPU (the GPU half of core/convert.h). */
#include <cuda_runtime.h>

#include "kernels/cuda_api.h"
#include "kernels/device_util.h"

__global__ static void scale_u8_to_f32(float *dst, const uint8_t *src, size_t n, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __fmul_rn((float)src[i], scale); /* no FMA contraction: match the CPU */
}

extern "C" sdlk_status sdlk_cuda_scale_u8_to_f32(float *dst, const uint8_t *src, size_t n,
                                                 float scale, sdlk_error *err)
{
    if (n == 0)
        return SDLK_OK;
    uint8_t *d_src = nullptr;
    float *d_dst = nullptr;
    sdlk_status st = sdlk_cuda_check(cudaMalloc(&d_src, n), "cudaMalloc", err);
    if (!st)
        st = sdlk_cuda_check(cudaMalloc(&d_dst, n * sizeof(float)), "cudaMalloc", err);
    if (!st)
        st = sdlk_cuda_check(cudaMemcpy(d_src, src, n, cudaMemcpyHostToDevice), "cudaMemcpy", err);
    if (!st) {
        int threads = 256;
        size_t want = (n + threads - 1) / threads;
        int blocks = want > 65535 ? 65535 : (int)want;
        scale_u8_to_f32<<<blocks, threads>>>(d_dst, d_src, n, scale);
        st = sdlk_cuda_check(cudaGetLastError(), "kernel launch", err);
    }
    if (!st)
        st = sdlk_cuda_check(cudaMemcpy(dst, d_dst, n * sizeof(float), cudaMemcpyDeviceToHost),
                             "cudaMemcpy", err);
    cudaFree(d_src);
    cudaFree(d_dst);
    return st;
}
