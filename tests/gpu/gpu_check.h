/* gpu_check.h -- what the GPU check programs share.
 *
 *   gpu_check_require(prog, cpu_only): print "GPU: <description>" and return 0 when a
 *       GPU is usable (or cpu_only asks to run without one); otherwise print
 *       "SKIP: no usable GPU: <why>" and return 77, the exit status meson and
 *       scripts/gpu-check read as "skipped".
 *   gpu_check_median(v, n): the median of n timings (sorts v in place).
 *
 * Every program prints its results as rows scripts/gpu-check tabulates:
 *     TABLE|check|size|result (exact/ok/FAIL)|ours|baseline name and figure|ratio
 */
#ifndef SDLK_TESTS_GPU_CHECK_H
#define SDLK_TESTS_GPU_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "core/device.h"

static inline int gpu_check_require(const char *prog, int cpu_only)
{
    char gpu[256];
    sdlk_gpu_describe(gpu, sizeof gpu);
    if (sdlk_gpu_count() == 0 && !cpu_only) {
        printf("SKIP: %s: no usable GPU: %s\n", prog, gpu);
        return 77;
    }
    printf("GPU: %s\n", gpu);
    return 0;
}

static int gpu_check_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double gpu_check_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, gpu_check_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
