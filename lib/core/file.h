/* file.h -- reading inputs without copying, writing outputs atomically.
 *
 * Contract
 *   Inputs: sdlk_file_map() gives the whole content of a path as one read-only byte
 *   range held by an sdlk_storage. A regular file is memory-mapped (read once, by the
 *   kernel, on demand); stdin ("-"), pipes and other non-seekable files are read to the
 *   end into heap memory. Tensors parsed from the bytes share the storage, so a
 *   safetensors file of any size costs no copy.
 *
 *   Outputs: an sdlk_outfile writes to a temporary file next to the destination and
 *   renames it over the destination only in sdlk_outfile_commit(), after every byte has
 *   been flushed and checked. sdlk_outfile_abort() (or a crash) leaves the destination
 *   untouched: no tool ever leaves a truncated output behind. "-" writes to stdout
 *   (nothing to rename; a closed pipe is reported as an error, not a signal death, when
 *   the tool ignores SIGPIPE).
 *
 *   Streams: sdlk_read_exact() reads exactly n bytes from a FILE* and tells a clean end
 *   of stream (SDLK_ERR_EOF, nothing read) from a truncated one (SDLK_ERR_FORMAT).
 */
#ifndef SDLK_CORE_FILE_H
#define SDLK_CORE_FILE_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/tensor.h"

/* Map or read the whole of `path` ("-" = stdin). On success *out holds one reference;
 * its data is read-only. `display_name` for messages is the path itself. */
sdlk_status sdlk_file_map(const char *path, sdlk_storage **out, sdlk_error *err);

/* Read all of an open stream into heap storage (for pipes). `name` is for messages. */
sdlk_status sdlk_file_slurp(FILE *fp, const char *name, sdlk_storage **out, sdlk_error *err);

/* Open `path` for reading ("-" = stdin) in binary mode. */
FILE *sdlk_file_open_read(const char *path, sdlk_error *err);
/* Close a stream opened by sdlk_file_open_read (does not close stdin). */
void sdlk_file_close_read(FILE *fp);

/* Read exactly `size` bytes. SDLK_ERR_EOF when the stream ended before the first byte,
 * SDLK_ERR_FORMAT ("truncated") when it ended part-way, SDLK_ERR_IO on a read error. */
sdlk_status sdlk_read_exact(FILE *fp, void *buf, size_t size, const char *name, sdlk_error *err);

/* 1 if path names stdin/stdout ("-"). */
int sdlk_path_is_stdio(const char *path);
/* The path as messages name it: "<stdin>" for "-", else the path itself. */
const char *sdlk_path_display(const char *path);
/* Lowercase extension of path without the dot ("" if none), e.g. "png", "gz". */
const char *sdlk_path_extension(const char *path, char *buf, size_t size);

typedef struct sdlk_outfile {
    FILE *fp;       /* write here */
    char *path;     /* final destination ("-" for stdout) */
    char *tmp_path; /* temporary file beside it, NULL for stdout */
} sdlk_outfile;

/* Create the temporary file for `path` ("-" = stdout). The temporary is named
 * ".<name>.<8 hex digits>.tmp" in the destination's directory, so the final rename is atomic. */
sdlk_status sdlk_outfile_open(sdlk_outfile *out, const char *path, sdlk_error *err);
/* Flush, check for write errors, fsync, close and rename into place. After a failure
 * the temporary is removed. The struct is reset either way. */
sdlk_status sdlk_outfile_commit(sdlk_outfile *out, sdlk_error *err);
/* Discard the temporary (no-op after commit or for stdout). */
void sdlk_outfile_abort(sdlk_outfile *out);

/* Write `size` bytes of `data` to `path` atomically (convenience over the above). */
sdlk_status sdlk_write_file(const char *path, const void *data, size_t size, sdlk_error *err);

#endif
