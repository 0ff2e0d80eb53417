/* fuzz_common.h -- checks shared by the fuzz targets: any input must either parse into
 * tensors whose every byte can be read and that survive a write/parse round trip
 * unchanged, or fail with a message that names the input. Anything else aborts, which
 * libFuzzer (and the corpus replay test) reports as a crash. */
#ifndef SDL_FUZZ_COMMON_H
#define SDL_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "core/tensorset.h"

/* Copy the input into its own heap storage so that ASan sees any read past its end. */
static inline sdlk_storage *fuzz_storage(const uint8_t *data, size_t size)
{
    sdlk_storage *s = sdlk_storage_alloc(size, NULL);
    if (!s)
        abort();
    if (size)
        memcpy(sdlk_storage_data(s), data, size);
    return s;
}

/* A failure must carry a message naming the input. */
static inline void fuzz_check_error(sdlk_status st, const sdlk_error *err, const char *name)
{
    if (st == SDLK_OK)
        return;
    if (err->code != st || !strstr(err->msg, name)) {
        fprintf(stderr, "status %d with message '%s' (must name %s)\n", (int)st, err->msg, name);
        abort();
    }
}

/* Read every element (catches views that reach outside their storage). */
static inline void fuzz_touch(const sdlk_tensor *t)
{
    sdlk_tensor_stats stats;
    sdlk_tensor_stats_compute(t, &stats);
    if (stats.count + stats.nan_count != sdlk_tensor_numel(t))
        abort();
}

static inline void fuzz_same_tensor(const sdlk_tensor *a, const sdlk_tensor *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim)
        abort();
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            abort();
    sdlk_tensor ca, cb;
    if (sdlk_tensor_contiguous(&ca, a, NULL) || sdlk_tensor_contiguous(&cb, b, NULL))
        abort();
    uint64_t n = sdlk_tensor_nbytes(a);
    if (n && memcmp(ca.data, cb.data, (size_t)n) != 0)
        abort();
    sdlk_tensor_free(&ca);
    sdlk_tensor_free(&cb);
}

static inline void fuzz_same_set(const sdlk_tensor_set *a, const sdlk_tensor_set *b)
{
    if (a->count != b->count)
        abort();
    for (size_t i = 0; i < a->count; i++) {
        if (strcmp(a->items[i].name, b->items[i].name) != 0)
            abort();
        fuzz_same_tensor(&a->items[i].tensor, &b->items[i].tensor);
    }
}

#endif
