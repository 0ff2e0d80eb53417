/* convert.h -- elementwise numeric conversions, CPU and GPU behind one function.
 *
 * Contract: sdlk_scale_u8_to_f32() computes dst[i] = src[i] * scale for n elements
 * (how 8-bit pixels become floats in [0, 1]). On the GPU path the data is copied to the
 * device and back; results are bit-identical to the CPU path (one correctly rounded
 * float multiply per element), which scripts/gpu-check verifies.
 */
#ifndef SDLK_CORE_CONVERT_H
#define SDLK_CORE_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "core/device.h"
#include "core/error.h"

sdlk_status sdlk_scale_u8_to_f32(float *dst, const uint8_t *src, size_t n, float scale,
                                 sdlk_device device, sdlk_error *err);

#endif
