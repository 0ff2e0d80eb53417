#include "core/convert.h"

#ifdef SDLK_HAVE_CUDA
#include "kernels/cuda_api.h"
#endif

sdlk_status sdlk_scale_u8_to_f32(float *dst, const uint8_t *src, size_t n, float scale,
                                 sdlk_device device, sdlk_error *err)
{
    sdlk_device where;
    sdlk_status st = sdlk_device_resolve(device, &where, err);
    if (st)
        return st;
#ifdef SDLK_HAVE_CUDA
    if (where == SDLK_DEVICE_GPU)
        return sdlk_cuda_scale_u8_to_f32(dst, src, n, scale, err);
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)src[i] * scale;
    return SDLK_OK;
}
