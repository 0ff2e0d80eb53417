/* cuda_api.h -- the C entry points of the CUDA kernels in kernels/.
 *
 * Contract: only lib/ includes this header, and only when built with CUDA
 * (SDLK_HAVE_CUDA); tools reach GPU code through lib/ functions that take an
 * sdlk_device. Every function returns an sdlk_status and turns CUDA errors into
 * SDLK_ERR_DEVICE messages naming the CUDA call and error string. Host pointers in,
 * host pointers out: device buffers are managed inside.
 */
#ifndef SDLK_KERNELS_CUDA_API_H
#define SDLK_KERNELS_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices, 0 when the driver or device is missing. */
int sdlk_cuda_device_count(void);
/* Name, compute capability and memory of device 0, or the CUDA error. */
void sdlk_cuda_describe(char *buf, size_t size);

sdlk_status sdlk_cuda_scale_u8_to_f32(float *dst, const uint8_t *src, size_t n, float scale,
                                      sdlk_error *err);

#ifdef __cplusplus
}
#endif

#endif
