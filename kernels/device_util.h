/* device_util.h -- helpers shared by the .cu files (not part of the C API). */
#ifndef SDLK_KERNELS_DEVICE_UTIL_H
#define SDLK_KERNELS_DEVICE_UTIL_H

#include <cuda_runtime.h>

#include "core/error.h"

/* SDLK_OK for cudaSuccess, else an SDLK_ERR_DEVICE error "CUDA <what>: <reason>". */
sdlk_status sdlk_cuda_check(cudaError_t rc, const char *what, sdlk_error *err);

#endif
