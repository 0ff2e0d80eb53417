/* gpu_convert -- the GPU path of sdlk_scale_u8_to_f32 against the CPU path.
 *
 * Checks bit-exact agreement on fresh random data at several sizes (odd sizes too, so
 * that the grid-stride tail is exercised), with the output poisoned before each run so
 * that an unwritten element cannot pass. Then times both paths (median of 7, the GPU
 * figure includes the host<->device copies, as a caller sees it) and prints one table
 * row per size (the format scripts/gpu-check tabulates):
 *     TABLE|check|size|result|ours|baseline name and figure|baseline / ours
 * Exit 77 (skipped) without a GPU, 1 on any mismatch or CUDA error. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/convert.h"
#include "core/device.h"
#include "gpu_check.h"
#include "core/timer.h"

static double time_median_ms(sdlk_device device, float *dst, const uint8_t *src, size_t n,
                             int *failed)
{
    double ms[7];
    for (int rep = 0; rep < 7; rep++) {
        sdlk_error err = {0};
        uint64_t t0 = sdlk_now_ns();
        if (sdlk_scale_u8_to_f32(dst, src, n, 1.0f / 255, device, &err) != SDLK_OK) {
            fprintf(stderr, "gpu_convert: %s\n", err.msg);
            *failed = 1;
        }
        ms[rep] = (double)(sdlk_now_ns() - t0) * 1e-6;
    }
    return gpu_check_median(ms, 7);
}

int main(void)
{
    int skip = gpu_check_require("gpu_convert", 0);
    if (skip)
        return skip;
    const size_t sizes[] = {1, 255, 1000003, 64u << 20};
    int failed = 0;
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ sdlk_now_ns();
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        uint8_t *src = malloc(n);
        float *cpu = malloc(n * sizeof *cpu), *gpu_out = malloc(n * sizeof *gpu_out);
        if (!src || !cpu || !gpu_out) {
            fprintf(stderr, "gpu_convert: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            src[i] = (uint8_t)(seed >> 24);
        }
        memset(gpu_out, 0xff, n * sizeof *gpu_out); /* NaN poison */
        sdlk_error err = {0};
        if (sdlk_scale_u8_to_f32(cpu, src, n, 1.0f / 255, SDLK_DEVICE_CPU, &err) ||
            sdlk_scale_u8_to_f32(gpu_out, src, n, 1.0f / 255, SDLK_DEVICE_GPU, &err)) {
            fprintf(stderr, "gpu_convert: %s\n", err.msg);
            return 1;
        }
        size_t mismatches = 0;
        for (size_t i = 0; i < n; i++)
            mismatches += memcmp(&cpu[i], &gpu_out[i], sizeof(float)) != 0;
        double gpu_ms = time_median_ms(SDLK_DEVICE_GPU, gpu_out, src, n, &failed);
        double cpu_ms = time_median_ms(SDLK_DEVICE_CPU, cpu, src, n, &failed);
        printf("TABLE|scale_u8_to_f32|n=%zu|%s|%.3f ms|CPU path %.3f ms|%.2fx\n", n,
               mismatches ? "FAIL" : "exact", gpu_ms, cpu_ms, cpu_ms / gpu_ms);
        if (mismatches) {
            fprintf(stderr, "gpu_convert: %zu of %zu elements differ at n=%zu\n", mismatches, n, n);
            failed = 1;
        }
        free(src);
        free(cpu);
        free(gpu_out);
    }
    return failed;
}
