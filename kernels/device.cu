/* device.cu -- CUDA device queries and the error mapping shared by all kernels. */
#include <algorithm>
#include <cstdio>

#include <cuda_runtime.h>

#include "kernels/cuda_api.h"
#include "kernels/device_util.h"

extern "C" int sdlk_cuda_device_count(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return count;
}

extern "C" void sdlk_cuda_describe(char *buf, size_t size)
{
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess) {
        snprintf(buf, size, "none (%s)", cudaGetErrorString(rc));
        cudaGetLastError();
        return;
    }
    if (count == 0) {
        snprintf(buf, size, "none (no CUDA device)");
        return;
    }
    cudaDeviceProp prop;
    rc = cudaGetDeviceProperties(&prop, 0);
    if (rc != cudaSuccess) {
        snprintf(buf, size, "device 0: %s", cudaGetErrorString(rc));
        return;
    }
    snprintf(buf, size, "%s, sm_%d%d, %.1f GiB, %d device(s)", prop.name, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (1 << 30), count);
}

sdlk_status sdlk_cuda_check(cudaError_t rc, const char *what, sdlk_error *err)
{
    if (rc == cudaSuccess)
        return SDLK_OK;
    return sdlk_error_set(err, SDLK_ERR_DEVICE, "CUDA %s: %s", what, cudaGetErrorString(rc));
}

sdlk_status sdlk_cublas_check(cublasStatus_t rc, const char *what, sdlk_error *err)
{
    if (rc == CUBLAS_STATUS_SUCCESS)
        return SDLK_OK;
    return sdlk_error_set(err, SDLK_ERR_DEVICE, "cuBLAS %s failed (status %d)", what, (int)rc);
}

double sdlk_median_ms(double *ms, int n)
{
    std::sort(ms, ms + n);
    return n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
}

sdlk_status sdlk_cuda_attribute(cudaDeviceAttr attr, int *value, sdlk_error *err)
{
    int device = 0;
    sdlk_status st = sdlk_cuda_check(cudaGetDevice(&device), "cudaGetDevice", err);
    if (!st)
        st = sdlk_cuda_check(cudaDeviceGetAttribute(value, attr, device), "cudaDeviceGetAttribute",
                             err);
    return st;
}

sdlk_status sdlk_cuda_sm_count(int *sms, sdlk_error *err)
{
    *sms = 1;
    sdlk_status st = sdlk_cuda_attribute(cudaDevAttrMultiProcessorCount, sms, err);
    if (*sms < 1)
        *sms = 1;
    return st;
}
