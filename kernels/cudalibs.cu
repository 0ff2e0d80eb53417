/* cudalibs.cu -- run-time loading of cuBLAS / cuSPARSE (see cudalibs.h). */
#include <dlfcn.h>

#include "kernels/cudalibs.h"

sdlk_status sdlk_cuda_load(sdlk_cuda_library library, const sdlk_cuda_symbol *symbols,
                           size_t count, void **handle, sdlk_error *err)
{
    /* CUDA 13 ships libcublas.so.13 and libcusparse.so.12; older sonames stay loadable as
     * long as the symbols we ask for exist. */
    static const char *const cublas_names[] = {"libcublas.so.13", "libcublas.so.12",
                                               "libcublas.so"};
    static const char *const cusparse_names[] = {"libcusparse.so.12", "libcusparse.so.13",
                                                 "libcusparse.so"};
    const char *const *names = library == SDLK_CUDA_CUBLAS ? cublas_names : cusparse_names;
    const char *what = library == SDLK_CUDA_CUBLAS ? "cuBLAS" : "cuSPARSE";
    *handle = NULL;
    void *lib = NULL;
    for (int i = 0; i < 3 && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return sdlk_error_set(err, SDLK_ERR_DEVICE,
                              "%s not found (tried %s, %s, %s in the loader's path; set "
                              "LD_LIBRARY_PATH to the directory that holds it)",
                              what, names[0], names[1], names[2]);
    for (size_t i = 0; i < count; i++) {
        *symbols[i].slot = dlsym(lib, symbols[i].name);
        if (!*symbols[i].slot) {
            dlclose(lib);
            return sdlk_error_set(err, SDLK_ERR_DEVICE, "%s has no symbol %s (too old?)", what,
                                  symbols[i].name);
        }
    }
    *handle = lib;
    return SDLK_OK;
}

void sdlk_cuda_unload(void *handle)
{
    if (handle)
        dlclose(handle);
}
