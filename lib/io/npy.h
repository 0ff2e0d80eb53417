/* npy.h -- NumPy .npy arrays.
 *
 * Contract
 *   Read: format versions 1.0, 2.0 and 3.0 (3.0 = utf-8 header); descr of any dtype in
 *   core/tensor.h in little ('<'), big ('>'), native ('=') or not-applicable ('|')
 *   byte order; fortran_order True or False; any shape including () and 0-sized
 *   dimensions. Every header field is validated (dict syntax, required keys, shape
 *   overflow, data size against the bytes present); anything else (object arrays,
 *   structured dtypes, complex) is SDLK_ERR_UNSUPPORTED with the descr named.
 *   Fixed-width strings are read as raw code units with one more trailing dimension:
 *   '|S<n>' (bytes) is a u8 tensor of shape [..., n], '<U<n>' / '>U<n>' (UTF-32) a u32
 *   tensor of shape [..., n] holding the code points in host order (NUL-padded as NumPy
 *   stores them; n from 1 to 1,000,000, at most SDLK_MAX_DIMS - 1 array dimensions).
 *   This is how scipy.sparse.save_npz's 'format' member ('<U3' "csr") is read. Such a
 *   tensor writes back as a plain u8/u32 array, not as a string array.
 *   A little-endian array whose data is suitably aligned is returned as a view into the
 *   caller's storage (no copy; Fortran order becomes Fortran strides); big-endian data
 *   is copied and byte-swapped. The data must be exactly as long as the header says
 *   (trailing bytes are an error too). bf16 tensors cannot be written (NumPy has no
 *   such dtype): SDLK_ERR_UNSUPPORTED.
 *   Write: version 1.0 (2.0 when the header needs more than 65535 bytes, as NumPy does),
 *   little-endian, C order, header padded so data starts on a 64-byte boundary. A
 *   non-contiguous tensor is written in C order.
 */
#ifndef SDLK_IO_NPY_H
#define SDLK_IO_NPY_H

#include <stdio.h>

#include "core/error.h"
#include "core/tensor.h"

/* Parse the .npy bytes at [offset, offset+size) of `storage`. `name` (a file name) is
 * used in error messages. On success *out is a tensor (view or copy). */
sdlk_status sdlk_npy_parse(sdlk_storage *storage, size_t offset, size_t size, const char *name,
                           sdlk_tensor *out, sdlk_error *err);

/* Write `t` as a complete .npy file to fp. `name` is for messages. */
sdlk_status sdlk_npy_write(FILE *fp, const sdlk_tensor *t, const char *name, sdlk_error *err);

#endif
