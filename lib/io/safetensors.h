/* safetensors.h -- Hugging Face safetensors files.
 *
 * Contract
 *   Layout: u64 little-endian header length N, N bytes of JSON header, then the data
 *   buffer. The header maps tensor names to {"dtype", "shape", "data_offsets": [begin,
 *   end]} (offsets relative to the data buffer) and may hold "__metadata__", a map of
 *   string to string.
 *   Read validates every rule of the format: N <= 100 MB and within the file; the JSON
 *   is one object with unique keys; dtypes are known (BOOL U8 I8 U16 I16 U32 I32 U64 I64
 *   F16 BF16 F32 F64; others such as F8_E4M3 are SDLK_ERR_UNSUPPORTED by name); the
 *   byte size implied by dtype and shape equals end - begin; the tensors' byte ranges,
 *   sorted, tile the data buffer exactly from 0 with no gap or overlap; the buffer is
 *   the rest of the input. Shapes whose strides would overflow (a 0-sized dimension
 *   next to huge ones) are SDLK_ERR_OVERFLOW. Tensors come back in the order of their
 *   data offsets (file order; ties keep header order) and are views into the caller's
 *   storage when their bytes are aligned for their dtype; the others (possible, since
 *   the format packs tensors without padding) are aligned copies, so consumers may
 *   always cast `data` to the element type. *out is initialised by the parser.
 *   sdlk_safetensors_parse_prefix() accepts trailing bytes after the data buffer and
 *   reports how many bytes the file used: that is how a tensor stream is read.
 *   Write: tensors in the set's order (packed, no padding between them), C-contiguous
 *   little-endian, JSON with "__metadata__" first, header padded with
 *   spaces to a multiple of 8 bytes (so that data is 8-byte aligned), metadata as
 *   "__metadata__".
 */
#ifndef SDLK_IO_SAFETENSORS_H
#define SDLK_IO_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/tensorset.h"

#define SDLK_SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u)

/* Parse a whole safetensors file at [offset, offset+size) of storage. */
sdlk_status sdlk_safetensors_parse(sdlk_storage *storage, size_t offset, size_t size,
                                   const char *name, sdlk_tensor_set *out, sdlk_error *err);

/* Parse one safetensors file at the start of [offset, offset+size) that may be followed
 * by other bytes; *used receives its length (8 + N + data buffer). */
sdlk_status sdlk_safetensors_parse_prefix(sdlk_storage *storage, size_t offset, size_t size,
                                          const char *name, sdlk_tensor_set *out, size_t *used,
                                          sdlk_error *err);

/* Validate a header alone: `json` of `len` bytes; on success *data_size is the size of
 * the data buffer it describes (the largest end offset). Used by stream readers to know
 * how many bytes to read next. */
sdlk_status sdlk_safetensors_header_data_size(const char *json, size_t len, const char *name,
                                              uint64_t *data_size, sdlk_error *err);

sdlk_status sdlk_safetensors_write(FILE *fp, const sdlk_tensor_set *set, const char *name,
                                   sdlk_error *err);

#endif
