/* tensorio.h -- load and save tensors in whichever format a path or pipe holds.
 *
 * Contract
 *   Formats: .npy (one tensor), .npz (named tensors), .safetensors (named tensors +
 *   metadata), and the tensor stream (safetensors records, see tstream.h). The format
 *   is chosen by the extension (".npy", ".npz", ".safetensors"/".st"); for "-" and
 *   paths without a known extension it is detected from the first bytes ("\x93NUMPY",
 *   "PK\x03\x04", or a u64 followed by '{'). A file or stream holding several
 *   safetensors records loads as the union of its records only through tstream.h;
 *   sdlk_tensors_load() refuses it with a message saying so.
 *   A .npy loads as one tensor named after the file's stem ("weights" for
 *   weights.npy; "arr_0" from a pipe, as NumPy names unnamed arrays).
 *   Files are memory-mapped and tensors are views where the format allows; the bytes
 *   are read once. Outputs are written atomically (core/file.h).
 */
#ifndef SDLK_IO_TENSORIO_H
#define SDLK_IO_TENSORIO_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensorset.h"

typedef enum sdlk_tensor_format {
    SDLK_FORMAT_UNKNOWN = 0,
    SDLK_FORMAT_NPY,
    SDLK_FORMAT_NPZ,
    SDLK_FORMAT_SAFETENSORS /* also one record of a tensor stream */
} sdlk_tensor_format;

const char *sdlk_tensor_format_name(sdlk_tensor_format fmt); /* "npy", "npz", "safetensors" */
/* By extension; SDLK_FORMAT_UNKNOWN when the extension says nothing. */
sdlk_tensor_format sdlk_tensor_format_from_path(const char *path);
/* By magic bytes; SDLK_FORMAT_UNKNOWN when they match nothing. */
sdlk_tensor_format sdlk_tensor_format_sniff(const uint8_t *head, size_t size);

/* Load all tensors of `path` ("-" = stdin). *format_out (may be NULL) receives the
 * format found. */
sdlk_status sdlk_tensors_load(const char *path, sdlk_tensor_set *out,
                              sdlk_tensor_format *format_out, sdlk_error *err);

/* Parse the tensor file held in `storage`, already read from `path` ("-" = stdin, for
 * messages and a .npy's name), in format `fmt` (NPY, NPZ or SAFETENSORS; e.g. from
 * sdlk_tensor_format_sniff) into the empty set *out, as sdlk_tensors_load does. */
sdlk_status sdlk_tensors_parse(sdlk_storage *storage, const char *path, sdlk_tensor_format fmt,
                               sdlk_tensor_set *out, sdlk_error *err);

/* Save `set` to `path` atomically. fmt SDLK_FORMAT_UNKNOWN = by extension, and
 * safetensors for "-" or an unknown extension. npy needs exactly one tensor.
 * compress applies to npz only. */
sdlk_status sdlk_tensors_save(const char *path, const sdlk_tensor_set *set,
                              sdlk_tensor_format fmt, int compress, sdlk_error *err);

#endif
