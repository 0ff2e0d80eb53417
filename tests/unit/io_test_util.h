/* io_test_util.h -- helpers shared by the tensor format unit tests (header-only so that
 * each test program stays one .c file in tests/unit/meson.build). */
#ifndef SDL_TESTS_IO_TEST_UTIL_H
#define SDL_TESTS_IO_TEST_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "core/tensorset.h"

/* Heap storage holding a copy of `size` bytes (so that ASan sees every overread). */
static inline sdlk_storage *storage_of(const void *bytes, size_t size)
{
    sdlk_storage *s = sdlk_storage_alloc(size, NULL);
    ck_assert_ptr_nonnull(s);
    if (size)
        memcpy(sdlk_storage_data(s), bytes, size);
    return s;
}

/* A memory stream to write into; call mem_finish to get the bytes. */
typedef struct mem_out {
    FILE *fp;
    char *data;
    size_t size;
} mem_out;

static inline void mem_open(mem_out *m)
{
    m->data = NULL;
    m->size = 0;
    m->fp = open_memstream(&m->data, &m->size);
    ck_assert_ptr_nonnull(m->fp);
}

static inline void mem_finish(mem_out *m)
{
    ck_assert_int_eq(fclose(m->fp), 0);
    m->fp = NULL;
}

/* A C-contiguous tensor of `dtype` whose element i holds a distinct, exactly
 * representable value derived from i (so that round trips can compare bytes). */
static inline void fill_pattern(sdlk_tensor *t, sdlk_dtype dtype, int ndim, const int64_t *shape)
{
    ck_assert_int_eq(sdlk_tensor_alloc(t, dtype, ndim, shape, NULL), SDLK_OK);
    uint64_t n = sdlk_tensor_numel(t);
    size_t elem = sdlk_dtype_size(dtype);
    for (uint64_t i = 0; i < n; i++) {
        double v = dtype == SDLK_BOOL ? (double)(i % 3 == 0)
                   : sdlk_dtype_is_float(dtype) ? ((double)i - 7.0) * 0.5
                   : (dtype == SDLK_U8 || dtype == SDLK_U16 || dtype == SDLK_U32 ||
                      dtype == SDLK_U64)
                       ? (double)(i * 37 % 251)
                       : (double)(i * 37 % 251) - 120.0;
        sdlk_store_from_double(t->data + i * elem, dtype, v);
    }
}

/* Same dtype, shape and element bytes (in C order). */
static inline void assert_same_tensor(const sdlk_tensor *a, const sdlk_tensor *b)
{
    ck_assert_int_eq(a->dtype, b->dtype);
    ck_assert_int_eq(a->ndim, b->ndim);
    for (int i = 0; i < a->ndim; i++)
        ck_assert_int_eq(a->shape[i], b->shape[i]);
    sdlk_tensor ca, cb;
    ck_assert_int_eq(sdlk_tensor_contiguous(&ca, a, NULL), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_contiguous(&cb, b, NULL), SDLK_OK);
    uint64_t nbytes = sdlk_tensor_nbytes(a);
    if (nbytes)
        ck_assert_mem_eq(ca.data, cb.data, (size_t)nbytes);
    sdlk_tensor_free(&ca);
    sdlk_tensor_free(&cb);
}

/* Assert that `st` is `code` and the message names `file`. */
#define assert_error(st, err, code, file)                                             \
    do {                                                                              \
        ck_assert_msg((st) == (code), "status %d (%s), expected %d; message: %s", (int)(st), \
                      sdlk_status_name(st), (int)(code), (err).msg);                  \
        ck_assert_msg(strstr((err).msg, (file)) != NULL, "message lacks '%s': %s", (file), \
                      (err).msg);                                                     \
    } while (0)

#endif
