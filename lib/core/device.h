/* device.h -- where work runs: CPU or a CUDA GPU, behind one function per operation.
 *
 * Contract
 *   Every operation that has a GPU implementation takes an sdlk_device and has one
 *   public entry point in lib/; the CUDA code in kernels/ is reached only through it.
 *   SDLK_DEVICE_AUTO picks the GPU when sdl was built with CUDA and a device is present,
 *   else the CPU. Asking for SDLK_DEVICE_GPU where there is none is an SDLK_ERR_DEVICE
 *   error naming why (not built with CUDA / no device / driver error), never a silent
 *   fallback. CPU and GPU results of the same operation are checked against each other
 *   by scripts/gpu-check.
 */
#ifndef SDLK_CORE_DEVICE_H
#define SDLK_CORE_DEVICE_H

#include <stddef.h>

#include "core/error.h"

typedef enum sdlk_device {
    SDLK_DEVICE_AUTO = 0,
    SDLK_DEVICE_CPU,
    SDLK_DEVICE_GPU
} sdlk_device;

/* 1 when this build contains the CUDA kernels. */
int sdlk_cuda_compiled(void);
/* Number of usable CUDA devices (0 without CUDA, driver or device). */
int sdlk_gpu_count(void);
/* One line describing the GPU (name, compute capability, memory), or why there is none. */
void sdlk_gpu_describe(char *buf, size_t size);

/* "auto", "cpu", "gpu"/"cuda". */
sdlk_status sdlk_device_parse(const char *name, sdlk_device *out, sdlk_error *err);
const char *sdlk_device_name(sdlk_device device);
/* Resolve AUTO; fail for GPU when none is usable. */
sdlk_status sdlk_device_resolve(sdlk_device requested, sdlk_device *actual, sdlk_error *err);

#endif
