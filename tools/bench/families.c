/* families.c -- the one table of benchmark families (add a line per new family). */
#include <string.h>

#include "bench_families.h"

const bench_family bench_families[] = {
    {"io", "tensor files (npy, safetensors, tensor stream) and PNG decode vs stdio/libpng",
     bench_io},
    {NULL, NULL, NULL},
};

const bench_family *bench_family_find(const char *name)
{
    for (const bench_family *f = bench_families; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}
