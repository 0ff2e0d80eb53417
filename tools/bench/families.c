/* families.c -- the one table of benchmark families (add a line per new family). */
#include <string.h>

#include "bench_families.h"

const bench_family bench_families[] = {
    {"io", "tensor files (npy, safetensors, tensor stream) and PNG decode vs stdio/libpng",
     bench_io},
    {"qmatmul", "bit-composed GEMM (w1a1..w8a8, int8) vs OpenBLAS sgemm; 4-bit quantize vs memcpy",
     bench_qmatmul},
    {"digits", "quantized MLP on real digits: accuracy per precision vs float, inference speed",
     bench_digits},
    {"gnn", "Sparse Graph Translation and CPU SpMM: condensed tiles vs CSR vs SciPy", bench_gnn},
    {"wm", "tile watermark on real photos: quality, robustness, false positives, detection speed",
     bench_wm},
    {"supergen", "SuperGen stage 2 on real footage: cache, tile workers, seams, x2 restore, 4K RSS",
     bench_supergen},
    {"serve", "sdl-serve schedulers on mixed-resolution traces: goodput vs grouped/FCFS, "
              "live vs sim, tiled vs untiled quality", bench_serve},
    {NULL, NULL, NULL},
};

const bench_family *bench_family_find(const char *name)
{
    for (const bench_family *f = bench_families; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}
