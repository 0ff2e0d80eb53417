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

/* Device memory for `count` T (at least one, so that a kernel always gets a valid base
 * address), filled from the host array `src` when it is not NULL; `what` names the
 * transfer in an error. *dst is NULL when the allocation fails; after a failed copy it
 * holds the block, freed with the rest by the caller's teardown. */
template <class T>
sdlk_status sdlk_cuda_upload(T **dst, const T *src, size_t count, const char *what,
                             sdlk_error *err)
{
    *dst = nullptr;
    void *block = nullptr;
    sdlk_status st = sdlk_cuda_check(cudaMalloc(&block, (count ? count : 1) * sizeof(T)), what, err);
    if (st)
        return st;
    *dst = static_cast<T *>(block);
    if (src && count)
        st = sdlk_cuda_check(cudaMemcpy(block, src, count * sizeof(T), cudaMemcpyHostToDevice),
                             what, err);
    return st;
}

/* The same without a copy: uninitialised device memory for `count` T. */
template <class T>
sdlk_status sdlk_cuda_alloc(T **dst, size_t count, const char *what, sdlk_error *err)
{
    return sdlk_cuda_upload(dst, static_cast<const T *>(nullptr), count, what, err);
}

/* Room for `cap` T that grows to the largest request and keeps nothing when it grows:
 * device memory, or page-locked host memory with Pinned (for asynchronous copies).
 * All zero (as from calloc) is the empty state. */
template <class T, bool Pinned = false> struct sdlk_grow_buffer {
    T *ptr = nullptr;
    size_t cap = 0;
    /* At least `count` T; `what` names the allocation in an error. When the block must
     * grow and `stream` is not null, the old block is freed only after the work queued on
     * `stream` (which may still use it) is done. */
    sdlk_status reserve(size_t count, const char *what, cudaStream_t stream, sdlk_error *err)
    {
        if (count <= cap)
            return SDLK_OK;
        if (ptr && stream) {
            sdlk_status st = sdlk_cuda_check(cudaStreamSynchronize(stream),
                                             "cudaStreamSynchronize", err);
            if (st)
                return st;
        }
        release();
        void *block = nullptr;
        sdlk_status st = sdlk_cuda_check(Pinned ? cudaMallocHost(&block, count * sizeof(T))
                                                : cudaMalloc(&block, count * sizeof(T)),
                                         what, err);
        if (st)
            return st;
        ptr = static_cast<T *>(block);
        cap = count;
        return SDLK_OK;
    }
    void release()
    {
        if (ptr && Pinned)
            cudaFreeHost(ptr);
        else if (ptr)
            cudaFree(ptr);
        ptr = nullptr;
        cap = 0;
    }
};

/* One attribute of the current device into *value. */
sdlk_status sdlk_cuda_attribute(cudaDeviceAttr attr, int *value, sdlk_error *err);
/* Multiprocessors of the current device (at least 1) into *sms. */
sdlk_status sdlk_cuda_sm_count(int *sms, sdlk_error *err);

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
