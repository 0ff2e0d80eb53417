/* ioutil.h -- helpers shared by the tensor format readers and writers (internal to lib/io,
 * not a public header: tools use npy.h, npz.h, safetensors.h, tstream.h, tensorio.h).
 */
#ifndef SDLK_IO_IOUTIL_H
#define SDLK_IO_IOUTIL_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/tensor.h"
#include "core/tensorset.h"

/* Little-endian loads from a byte buffer of unknown alignment. */
uint16_t sdlk_io_le16(const uint8_t *p);
uint32_t sdlk_io_le32(const uint8_t *p);
uint64_t sdlk_io_le64(const uint8_t *p);
/* Little-endian stores. */
void sdlk_io_put_le16(uint8_t *p, uint16_t v);
void sdlk_io_put_le32(uint8_t *p, uint32_t v);
void sdlk_io_put_le64(uint8_t *p, uint64_t v);

/* fwrite all `size` bytes; a short write (a full disk, a reader that closed the pipe) is
 * SDLK_ERR_IO naming `name` and the errno text. */
sdlk_status sdlk_io_write_all(FILE *fp, const void *data, size_t size, const char *name,
                              sdlk_error *err);

/* *out = the elements of `t` as C-contiguous little-endian bytes: a shared view of `t`
 * when it already is one (the common case), else a copy. Every writer goes through this,
 * so strided views and big-endian hosts are handled in one place. Fails with
 * SDLK_ERR_ARG for a tensor that has elements but no data pointer. */
sdlk_status sdlk_io_le_contiguous(const sdlk_tensor *t, sdlk_tensor *out, const char *name,
                                  sdlk_error *err);

/* View `size` bytes at `offset` of `storage` as a C-contiguous tensor when the address
 * suits the dtype's alignment; otherwise copy them into fresh, aligned storage (so that
 * consumers may cast data to the element type). Byte-swaps the copy when `swap`. The
 * caller has checked that the bytes exist and match dtype and shape. */
sdlk_status sdlk_io_tensor_from_bytes(sdlk_storage *storage, size_t offset, sdlk_dtype dtype,
                                      int ndim, const int64_t *shape, int swap, sdlk_tensor *out,
                                      sdlk_error *err);

/* The npy header (magic, version, length, dict, padding, '\n') for a C-order
 * little-endian array of t's dtype and shape, written into buf (cap >= 512 is always
 * enough: 8 dims of at most 20 digits). Fails for dtypes .npy cannot hold (bf16). */
sdlk_status sdlk_npy_format_header(const sdlk_tensor *t, uint8_t *buf, size_t cap, size_t *len,
                                   const char *name, sdlk_error *err);

#endif
