/* device_util.h -- helpers shared by the .cu files (not part of the C API). */
#ifndef SDLK_KERNELS_DEVICE_UTIL_H
#define SDLK_KERNELS_DEVICE_UTIL_H

#include <cublas_api.h>
#include <cuda_runtime.h>

#include "core/error.h"

/* SDLK_OK for cudaSuccess, else an SDLK_ERR_DEVICE error "CUDA <what>: <reason>". */
sdlk_status sdlk_cuda_check(cudaError_t rc, const char *what, sdlk_error *err);

/* SDLK_OK for CUBLAS_STATUS_SUCCESS, else an SDLK_ERR_DEVICE error
 * "cuBLAS <what> failed (status <n>)". Only the status type is used: nothing links cuBLAS. */
sdlk_status sdlk_cublas_check(cublasStatus_t rc, const char *what, sdlk_error *err);

/* The median of ms[0..n), n >= 1 (the mean of the middle two for an even n); sorts ms. */
double sdlk_median_ms(double *ms, int n);

/* One event-timed call of `run` (a callable returning sdlk_status) on `stream`: records
 * `start`, runs, records `stop`, waits for it (`sync_what` names that wait in an error) and
 * sets *ms to the time between the events. */
template <typename F>
sdlk_status sdlk_cuda_time_once(F run, cudaEvent_t start, cudaEvent_t stop, cudaStream_t stream,
                                const char *sync_what, float *ms, sdlk_error *err)
{
    sdlk_status st = sdlk_cuda_check(cudaEventRecord(start, stream), "cudaEventRecord", err);
    if (!st)
        st = run();
    if (!st)
        st = sdlk_cuda_check(cudaEventRecord(stop, stream), "cudaEventRecord", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventSynchronize(stop), sync_what, err);
    if (!st)
        st = sdlk_cuda_check(cudaEventElapsedTime(ms, start, stop), "cudaEventElapsedTime", err);
    return st;
}

#endif
