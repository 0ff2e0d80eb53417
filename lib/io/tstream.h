/* tstream.h -- several tensor sets through one pipe: the sdl tensor stream.
 *
 * Contract
 *   A tensor stream is a plain concatenation of safetensors files ("records"), each
 *   complete in itself: u64 header length, JSON header (with optional "__metadata__"),
 *   data. A single .safetensors file is therefore a stream of one record, and any
 *   record can be handed to safetensors.numpy.load(bytes) as it is. A reader in Python
 *   needs no custom parser: read 8 bytes, the header, max(data_offsets) bytes, repeat
 *   until EOF (the loop is printed in sdl-formats(5)). Tile records, per-frame tensors
 *   and multi-tensor tool outputs all travel this way; what a record means is said by
 *   its metadata (keys starting "sdl.").
 *   The reader never needs to seek and never holds more than one record: memory is
 *   O(largest record). A stream that ends inside a record is SDLK_ERR_FORMAT
 *   ("truncated"); a clean end between records is SDLK_ERR_EOF.
 */
#ifndef SDLK_IO_TSTREAM_H
#define SDLK_IO_TSTREAM_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/tensorset.h"

typedef struct sdlk_tstream_reader {
    FILE *fp;
    const char *name;  /* for messages */
    uint64_t records;  /* records read so far */
    uint64_t offset;   /* bytes consumed so far */
} sdlk_tstream_reader;

void sdlk_tstream_reader_init(sdlk_tstream_reader *r, FILE *fp, const char *name);
/* Read the next record into *out (initialised here; it owns its own storage
 * afterwards). At a clean end returns SDLK_ERR_EOF and leaves `err` untouched, so a
 * loop can end on EOF and still hand `err` on. Errors name the stream, the record
 * number and its byte offset. Each record's data buffer grows as bytes arrive, so a
 * header that claims more than the stream holds costs no more memory than was read. */
sdlk_status sdlk_tstream_next(sdlk_tstream_reader *r, sdlk_tensor_set *out, sdlk_error *err);

/* Append one record (sdlk_safetensors_write) and flush it, so a consumer downstream
 * sees each record as soon as it is complete. A reader that went away is SDLK_ERR_IO
 * ("Broken pipe") when SIGPIPE is ignored. */
sdlk_status sdlk_tstream_write(FILE *fp, const sdlk_tensor_set *record, const char *name,
                               sdlk_error *err);

#endif
