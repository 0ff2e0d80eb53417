/* graph_internal.h -- helpers shared by the lib/graph sources (not installed). */
#ifndef SDLK_GRAPH_INTERNAL_H
#define SDLK_GRAPH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "core/error.h"

/* malloc(count * elem_size) with overflow and out-of-memory reported in `err`. */
void *sdlk_graph_alloc_array(int64_t count, size_t elem_size, sdlk_error *err);

/* A line-by-line reader over a plain or gzip file (zlib reads both), growing its buffer
 * for long lines, counting lines for messages. */
typedef struct sdlk_line_reader {
    gzFile gz;
    const char *name; /* for messages */
    char *line;       /* current line, NUL-terminated, newline stripped */
    size_t length, capacity;
    int64_t line_number; /* 1-based number of the current line */
} sdlk_line_reader;

/* Open `path` ("-" = stdin). */
sdlk_status sdlk_line_reader_open(sdlk_line_reader *lr, const char *path, sdlk_error *err);
/* Read the next line: SDLK_OK, SDLK_ERR_EOF at the end, SDLK_ERR_IO/FORMAT on a read or
 * decompression error. */
sdlk_status sdlk_line_reader_next(sdlk_line_reader *lr, sdlk_error *err);
void sdlk_line_reader_close(sdlk_line_reader *lr);

/* Skip spaces and tabs. */
static inline const char *sdlk_skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

/* Parse a decimal integer at *p (optional sign) into *out; advances *p. Returns 0 when
 * there is no number or it overflows int64, or when the number is not followed by a
 * blank or the end of the line. */
int sdlk_parse_int64(const char **p, int64_t *out);
/* Parse a floating-point number (strtod syntax); same rules, and "inf"/"nan" or a
 * number out of double range are refused too. */
int sdlk_parse_double(const char **p, double *out);
/* The same for an edge value: also refused when it does not fit a finite f32 (|v| >
 * FLT_MAX), which would otherwise turn into infinity and NaN downstream. */
int sdlk_parse_f32(const char **p, float *out);

#endif
