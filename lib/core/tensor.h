/* tensor.h -- n-dimensional arrays: dtype, shape, byte strides, shared storage.
 *
 * Contract
 *   An sdlk_tensor is a view: dtype + shape + byte strides + a pointer to its first
 *   element, plus a reference to the sdlk_storage that owns the bytes (heap memory, a
 *   memory-mapped file, or memory the caller owns). Several tensors may share one storage
 *   (all tensors of a memory-mapped safetensors file do); the storage is released when
 *   the last tensor referring to it is freed. A tensor whose `storage` is NULL borrows
 *   caller memory and never frees it.
 *
 *   Shapes are int64, at most SDLK_MAX_DIMS dimensions, each >= 0 (0-sized dimensions
 *   are legal). Every function that computes a size from a shape checks for overflow
 *   and returns SDLK_ERR_OVERFLOW rather than wrapping: shapes come from untrusted files.
 *   Strides are in bytes and may be any value (Fortran order, broadcasting with 0).
 *
 *   Storage reference counts are atomic, so tensors sharing storage may be freed from
 *   different threads. A single tensor struct is not synchronised.
 */
#ifndef SDLK_CORE_TENSOR_H
#define SDLK_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define SDLK_MAX_DIMS 8

/* Largest tensor payload we agree to allocate or map: 2^47 bytes (128 TiB). Anything
 * larger in a header is a lie or an attack, and is rejected as SDLK_ERR_OVERFLOW. */
#define SDLK_MAX_TENSOR_BYTES ((uint64_t)1 << 47)

typedef enum sdlk_dtype {
    SDLK_BOOL = 0,
    SDLK_U8,
    SDLK_I8,
    SDLK_U16,
    SDLK_I16,
    SDLK_U32,
    SDLK_I32,
    SDLK_U64,
    SDLK_I64,
    SDLK_F16,
    SDLK_BF16,
    SDLK_F32,
    SDLK_F64,
    SDLK_DTYPE_COUNT
} sdlk_dtype;

/* Bytes per element (1 for bool). */
size_t sdlk_dtype_size(sdlk_dtype dtype);
/* Short lowercase name: "bool", "u8", "i8", ..., "f16", "bf16", "f32", "f64". */
const char *sdlk_dtype_name(sdlk_dtype dtype);
/* Parse a dtype name: accepts the short names above and NumPy spellings
 * ("uint8", "float32", "bfloat16", ...). Returns SDLK_ERR_ARG for unknown names. */
sdlk_status sdlk_dtype_parse(const char *name, sdlk_dtype *out);
/* 1 for f16, bf16, f32, f64. */
int sdlk_dtype_is_float(sdlk_dtype dtype);

/* ---- storage ---------------------------------------------------------------- */

typedef struct sdlk_storage sdlk_storage;

/* Heap storage of `nbytes` zeroed bytes (nbytes may be 0). */
sdlk_storage *sdlk_storage_alloc(size_t nbytes, sdlk_error *err);
/* Storage over memory owned elsewhere; `release(ctx)` runs when the last reference
 * goes (munmap, free of a larger buffer...). `release` may be NULL. */
sdlk_storage *sdlk_storage_wrap(void *data, size_t nbytes, void (*release)(void *ctx),
                                void *ctx, sdlk_error *err);
void sdlk_storage_retain(sdlk_storage *storage);
void sdlk_storage_release(sdlk_storage *storage);
void *sdlk_storage_data(const sdlk_storage *storage);
size_t sdlk_storage_size(const sdlk_storage *storage);

/* ---- tensors ---------------------------------------------------------------- */

typedef struct sdlk_tensor {
    sdlk_dtype dtype;
    int ndim;
    int64_t shape[SDLK_MAX_DIMS];
    int64_t strides[SDLK_MAX_DIMS]; /* in bytes */
    uint8_t *data;                  /* address of element [0,...,0] */
    sdlk_storage *storage;          /* owning storage, or NULL when borrowed */
} sdlk_tensor;

/* An empty tensor (ndim 0, no data): safe to free. */
void sdlk_tensor_init(sdlk_tensor *t);

/* Product of dims into *numel, failing with SDLK_ERR_OVERFLOW when it or the byte
 * size exceeds SDLK_MAX_TENSOR_BYTES -- also when a 0-sized dimension makes the count 0
 * but the other dimensions' product is that large, because strides are computed from
 * them -- and SDLK_ERR_ARG for negative dims or ndim outside 0..SDLK_MAX_DIMS. */
sdlk_status sdlk_shape_numel(int ndim, const int64_t *shape, sdlk_dtype dtype, uint64_t *numel,
                             sdlk_error *err);

/* Allocate a zeroed, C-contiguous tensor. */
sdlk_status sdlk_tensor_alloc(sdlk_tensor *t, sdlk_dtype dtype, int ndim, const int64_t *shape,
                              sdlk_error *err);
/* C-contiguous view over `data` that belongs to the caller (not freed). */
sdlk_status sdlk_tensor_borrow(sdlk_tensor *t, sdlk_dtype dtype, int ndim, const int64_t *shape,
                               void *data, sdlk_error *err);
/* C-contiguous view over bytes inside `storage` starting at byte `offset`; checks that
 * the whole tensor lies inside the storage; takes a new reference. */
sdlk_status sdlk_tensor_from_storage(sdlk_tensor *t, sdlk_storage *storage, size_t offset,
                                     sdlk_dtype dtype, int ndim, const int64_t *shape,
                                     sdlk_error *err);
/* Drop this tensor's reference to its storage and reset it to empty. */
void sdlk_tensor_free(sdlk_tensor *t);
/* dst becomes another view of src's data (shares storage, takes a reference). */
void sdlk_tensor_share(sdlk_tensor *dst, const sdlk_tensor *src);

/* Fill `strides` for C (row-major) order. */
void sdlk_strides_c(int ndim, const int64_t *shape, size_t elem_size, int64_t *strides);
/* Fill `strides` for Fortran (column-major) order. */
void sdlk_strides_f(int ndim, const int64_t *shape, size_t elem_size, int64_t *strides);

uint64_t sdlk_tensor_numel(const sdlk_tensor *t);
/* numel * element size: the size of a contiguous copy. */
uint64_t sdlk_tensor_nbytes(const sdlk_tensor *t);
int sdlk_tensor_is_contiguous(const sdlk_tensor *t);
/* Pointer to the element at `index` (ndim entries, unchecked). */
void *sdlk_tensor_at(const sdlk_tensor *t, const int64_t *index);

/* dst = a C-contiguous copy of src in `dtype` (same dtype = plain copy). Conversion to
 * integers rounds to nearest and saturates; bool is x != 0. dst must be empty. */
sdlk_status sdlk_tensor_convert(sdlk_tensor *dst, const sdlk_tensor *src, sdlk_dtype dtype,
                                sdlk_error *err);
/* dst = src when src is already C-contiguous (shared), else a contiguous copy. */
sdlk_status sdlk_tensor_contiguous(sdlk_tensor *dst, const sdlk_tensor *src, sdlk_error *err);
/* Reinterpret a contiguous tensor with a new shape of equal element count (shares). */
sdlk_status sdlk_tensor_reshape(sdlk_tensor *dst, const sdlk_tensor *src, int ndim,
                                const int64_t *shape, sdlk_error *err);

/* Read / write one element as double (any dtype). */
double sdlk_tensor_get(const sdlk_tensor *t, const int64_t *index);
double sdlk_load_as_double(const void *p, sdlk_dtype dtype);
void sdlk_store_from_double(void *p, sdlk_dtype dtype, double value);

typedef struct sdlk_tensor_stats {
    uint64_t count;     /* elements seen */
    uint64_t nan_count; /* NaNs (floats only), excluded from min/max/mean */
    double min, max, mean, std;
} sdlk_tensor_stats;
/* Min, max, mean and standard deviation over all elements (one pass, Welford). */
void sdlk_tensor_stats_compute(const sdlk_tensor *t, sdlk_tensor_stats *out);

/* Format "[2, 3, 4]" into buf. */
void sdlk_shape_format(int ndim, const int64_t *shape, char *buf, size_t size);

/* ---- half precision ---------------------------------------------------------- */
float sdlk_f16_to_f32(uint16_t h);
uint16_t sdlk_f32_to_f16(float f); /* round to nearest even, overflow to inf */
float sdlk_bf16_to_f32(uint16_t b);
uint16_t sdlk_f32_to_bf16(float f); /* round to nearest even, NaN kept quiet */

/* Reverse the byte order of `count` elements of `elem_size` bytes in place. */
void sdlk_byteswap(void *data, uint64_t count, size_t elem_size);
/* 1 on a little-endian host. */
int sdlk_host_is_little_endian(void);

#endif
