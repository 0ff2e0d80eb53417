#include "io/ioutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint16_t sdlk_io_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

uint32_t sdlk_io_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

uint64_t sdlk_io_le64(const uint8_t *p)
{
    return (uint64_t)sdlk_io_le32(p) | ((uint64_t)sdlk_io_le32(p + 4) << 32);
}

void sdlk_io_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void sdlk_io_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void sdlk_io_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

sdlk_status sdlk_io_write_all(FILE *fp, const void *data, size_t size, const char *name,
                              sdlk_error *err)
{
    if (size == 0)
        return SDLK_OK;
    errno = 0;
    if (fwrite(data, 1, size, fp) != size)
        return sdlk_error_errno(err, errno ? errno : EIO, "%s: write failed", name);
    return SDLK_OK;
}

sdlk_status sdlk_io_le_contiguous(const sdlk_tensor *t, sdlk_tensor *out, const char *name,
                                  sdlk_error *err)
{
    sdlk_tensor_init(out);
    uint64_t numel;
    sdlk_status st = sdlk_shape_numel(t->ndim, t->shape, t->dtype, &numel, err);
    if (st) {
        sdlk_error_prefix(err, "%s", name);
        return st;
    }
    if (numel > 0 && !t->data)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: tensor has %llu elements but no data", name,
                              (unsigned long long)numel);
    if (sdlk_host_is_little_endian() || sdlk_dtype_size(t->dtype) == 1)
        st = sdlk_tensor_contiguous(out, t, err);
    else {
        st = sdlk_tensor_convert(out, t, t->dtype, err); /* a private copy we may swap */
        if (!st)
            sdlk_byteswap(out->data, numel, sdlk_dtype_size(t->dtype));
    }
    if (st)
        sdlk_error_prefix(err, "%s", name);
    return st;
}

sdlk_status sdlk_io_tensor_from_bytes(sdlk_storage *storage, size_t offset, sdlk_dtype dtype,
                                      int ndim, const int64_t *shape, int swap, sdlk_tensor *out,
                                      sdlk_error *err)
{
    size_t elem = sdlk_dtype_size(dtype);
    const uint8_t *src = (const uint8_t *)sdlk_storage_data(storage) + offset;
    if (!swap && (uintptr_t)src % elem == 0)
        return sdlk_tensor_from_storage(out, storage, offset, dtype, ndim, shape, err);
    sdlk_status st = sdlk_tensor_alloc(out, dtype, ndim, shape, err);
    if (st)
        return st;
    uint64_t numel = sdlk_tensor_numel(out);
    if (numel) {
        memcpy(out->data, src, (size_t)(numel * elem));
        if (swap)
            sdlk_byteswap(out->data, numel, elem);
    }
    return SDLK_OK;
}

