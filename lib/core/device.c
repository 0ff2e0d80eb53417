#include "core/device.h"

#include <stdio.h>
#include <string.h>

#ifdef SDLK_HAVE_CUDA
#include "kernels/cuda_api.h"
#endif

int sdlk_cuda_compiled(void)
{
#ifdef SDLK_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

int sdlk_gpu_count(void)
{
#ifdef SDLK_HAVE_CUDA
    return sdlk_cuda_device_count();
#else
    return 0;
#endif
}

void sdlk_gpu_describe(char *buf, size_t size)
{
#ifdef SDLK_HAVE_CUDA
    sdlk_cuda_describe(buf, size);
#else
    snprintf(buf, size, "none (built without CUDA)");
#endif
}

sdlk_status sdlk_device_parse(const char *name, sdlk_device *out, sdlk_error *err)
{
    if (strcmp(name, "auto") == 0)
        *out = SDLK_DEVICE_AUTO;
    else if (strcmp(name, "cpu") == 0)
        *out = SDLK_DEVICE_CPU;
    else if (strcmp(name, "gpu") == 0 || strcmp(name, "cuda") == 0)
        *out = SDLK_DEVICE_GPU;
    else
        return sdlk_error_set(err, SDLK_ERR_ARG, "unknown device '%s' (use auto, cpu or gpu)",
                              name);
    return SDLK_OK;
}

const char *sdlk_device_name(sdlk_device device)
{
    return device == SDLK_DEVICE_CPU ? "cpu" : device == SDLK_DEVICE_GPU ? "gpu" : "auto";
}

sdlk_status sdlk_device_resolve(sdlk_device requested, sdlk_device *actual, sdlk_error *err)
{
    if (requested == SDLK_DEVICE_CPU) {
        *actual = SDLK_DEVICE_CPU;
        return SDLK_OK;
    }
    int gpus = sdlk_gpu_count();
    if (gpus > 0) {
        *actual = SDLK_DEVICE_GPU;
        return SDLK_OK;
    }
    if (requested == SDLK_DEVICE_AUTO) {
        *actual = SDLK_DEVICE_CPU;
        return SDLK_OK;
    }
    char why[256];
    sdlk_gpu_describe(why, sizeof why);
    return sdlk_error_set(err, SDLK_ERR_DEVICE, "GPU requested but none is usable: %s", why);
}
