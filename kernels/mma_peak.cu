/* mma_peak.cu -- the tensor cores' own ceiling for the MMA shapes our kernels issue
 * (see kernels/mma_peak_cuda.h). Each warp issues CHAINS independent chains of mma.sync
 * on register operands for ITERS rounds: no memory traffic, enough independent MMAs in
 * flight to cover their latency, 8 warps per block and 8 blocks per SM. The operands are
 * random-looking register values (a warp's lane id mixed in), not zeros, so that no
 * data-dependent shortcut makes the figure optimistic. The result is folded into one
 * word per thread and stored, so the compiler cannot drop the loop. */
#include <cstdint>

#include <cuda_runtime.h>

#include "kernels/device_util.h"
#include "kernels/mma_peak_cuda.h"

namespace {

constexpr int CHAINS = 8;
constexpr int ITERS = 4096;
constexpr int WARPS = 8;

template <int KIND> struct mma_shape;
template <> struct mma_shape<SDLK_CUDA_MMA_B1_AND> { static constexpr double ops = 2.0 * 16 * 8 * 256; };
template <> struct mma_shape<SDLK_CUDA_MMA_S8> { static constexpr double ops = 2.0 * 16 * 8 * 32; };
template <> struct mma_shape<SDLK_CUDA_MMA_F16> { static constexpr double ops = 2.0 * 16 * 8 * 16; };
template <> struct mma_shape<SDLK_CUDA_MMA_TF32> { static constexpr double ops = 2.0 * 16 * 8 * 8; };

template <int KIND>
__device__ __forceinline__ void mma(uint32_t (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                    uint32_t a3, uint32_t b0, uint32_t b1)
{
    if (KIND == SDLK_CUDA_MMA_B1_AND)
        asm volatile("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else if (KIND == SDLK_CUDA_MMA_S8)
        asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else if (KIND == SDLK_CUDA_MMA_F16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Small finite f16/tf32 bit patterns for the float kinds (no NaN, no overflow over
 * ITERS rounds), arbitrary words for the integer ones. */
template <int KIND> __device__ __forceinline__ uint32_t operand(uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    if (KIND == SDLK_CUDA_MMA_F16)
        return (x & 0x03ff03ffu) | 0x1c001c00u; /* two halves in [2^-8, 2^-7) */
    if (KIND == SDLK_CUDA_MMA_TF32)
        return (x & 0x007fe000u) | 0x3b800000u; /* about 2^-8 */
    return x;
}

template <int KIND> __global__ void __launch_bounds__(WARPS * 32) peak_kernel(uint32_t *sink)
{
    const uint32_t lane = threadIdx.x;
    uint32_t a0 = operand<KIND>(lane), a1 = operand<KIND>(lane + 101),
             a2 = operand<KIND>(lane + 202), a3 = operand<KIND>(lane + 303),
             b0 = operand<KIND>(lane + 404), b1 = operand<KIND>(lane + 505);
    uint32_t d[CHAINS][4] = {};
    for (int it = 0; it < ITERS; it++) {
#pragma unroll
        for (int c = 0; c < CHAINS; c++)
            mma<KIND>(d[c], a0, a1, a2, a3, b0, b1);
    }
    uint32_t fold = 0;
#pragma unroll
    for (int c = 0; c < CHAINS; c++)
        fold ^= d[c][0] ^ d[c][1] ^ d[c][2] ^ d[c][3];
    sink[blockIdx.x * blockDim.x + threadIdx.x] = fold;
}

template <int KIND>
sdlk_status measure(int blocks, uint32_t *sink, cudaEvent_t start, cudaEvent_t stop, double *tops,
                    sdlk_error *err)
{
    double ms[5];
    for (int rep = -1; rep < 5; rep++) { /* rep -1 warms up */
        float elapsed = 0;
        sdlk_status st = sdlk_cuda_time_once(
            [&]() {
                peak_kernel<KIND><<<blocks, WARPS * 32>>>(sink);
                return sdlk_cuda_check(cudaGetLastError(), "peak kernel launch", err);
            },
            start, stop, 0, "peak kernel", &elapsed, err);
        if (st)
            return st;
        if (rep >= 0)
            ms[rep] = elapsed;
    }
    double median = sdlk_median_ms(ms, 5);
    double mmas = (double)blocks * WARPS * ITERS * CHAINS;
    *tops = mmas * mma_shape<KIND>::ops / (median * 1e-3) * 1e-12;
    return SDLK_OK;
}

} // namespace

extern "C" sdlk_status sdlk_cuda_mma_peak(sdlk_cuda_mma_kind kind, double *tops, sdlk_error *err)
{
    *tops = 0;
    int sms = 1;
    sdlk_status st = sdlk_cuda_sm_count(&sms, err);
    if (st)
        return st;
    const int blocks = sms * 8;
    uint32_t *sink = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    st = sdlk_cuda_alloc(&sink, (size_t)blocks * WARPS * 32, "peak sink", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventCreate(&start), "cudaEventCreate", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventCreate(&stop), "cudaEventCreate", err);
    if (!st) {
        switch (kind) {
        case SDLK_CUDA_MMA_B1_AND: st = measure<SDLK_CUDA_MMA_B1_AND>(blocks, sink, start, stop, tops, err); break;
        case SDLK_CUDA_MMA_S8: st = measure<SDLK_CUDA_MMA_S8>(blocks, sink, start, stop, tops, err); break;
        case SDLK_CUDA_MMA_F16: st = measure<SDLK_CUDA_MMA_F16>(blocks, sink, start, stop, tops, err); break;
        case SDLK_CUDA_MMA_TF32: st = measure<SDLK_CUDA_MMA_TF32>(blocks, sink, start, stop, tops, err); break;
        default: st = sdlk_error_set(err, SDLK_ERR_ARG, "unknown MMA kind %d", (int)kind);
        }
    }
    if (start)
        cudaEventDestroy(start);
    if (stop)
        cudaEventDestroy(stop);
    cudaFree(sink);
    return st;
}
