/* cudalibs.h -- cuBLAS and cuSPARSE, loaded at run time (dlopen), for the .cu files.
 *
 * Why at run time: every sdl tool links the CUDA runtime statically, and only a few GPU
 * paths need a CUDA math library (the exemplar model's distance GEMM, the cuBLAS and
 * cuSPARSE baselines of the GPU checks). Linking libcublas/libcusparse would make every
 * tool fail to start on a machine whose CUDA install lacks them or keeps them outside the
 * loader's path (pip's nvidia-* wheels, for example). Loading them when first needed
 * turns that into one clear SDLK_ERR_DEVICE error for the one operation that needs them.
 *
 * Use (C++ in kernels/ only; each caller keeps its own table, so there is no global state):
 *
 *     struct { decltype(&cublasCreate_v2) create; decltype(&cublasSgemm_v2) sgemm; } f;
 *     const sdlk_cuda_symbol symbols[] = {{"cublasCreate_v2", (void **)&f.create},
 *                                         {"cublasSgemm_v2", (void **)&f.sgemm}};
 *     void *lib;
 *     if (sdlk_cuda_load(SDLK_CUDA_CUBLAS, symbols, 2, &lib, err)) return ...;
 *     ...
 *     sdlk_cuda_unload(lib);
 *
 * The library is searched by soname (libcublas.so.13, then .so.12, then libcublas.so) in
 * the loader's path, so LD_LIBRARY_PATH decides; scripts/gpu-check adds the directories
 * of pip's nvidia-cublas / nvidia-cusparse wheels when it finds them.
 */
#ifndef SDLK_KERNELS_CUDALIBS_H
#define SDLK_KERNELS_CUDALIBS_H

#include <stddef.h>

#include "core/error.h"

typedef enum sdlk_cuda_library {
    SDLK_CUDA_CUBLAS,
    SDLK_CUDA_CUSPARSE
} sdlk_cuda_library;

typedef struct sdlk_cuda_symbol {
    const char *name; /* exported symbol, e.g. "cublasGemmEx" */
    void **slot;      /* receives its address */
} sdlk_cuda_symbol;

/* Open `library` and resolve every symbol. On success *handle is the library (pass it to
 * sdlk_cuda_unload when done) and every slot is set. On failure nothing stays open and
 * the error names the library and the sonames tried, or the missing symbol. */
sdlk_status sdlk_cuda_load(sdlk_cuda_library library, const sdlk_cuda_symbol *symbols,
                           size_t count, void **handle, sdlk_error *err);

/* Close a handle from sdlk_cuda_load; NULL is ignored. */
void sdlk_cuda_unload(void *handle);

#endif
