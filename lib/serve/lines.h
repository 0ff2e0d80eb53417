/* lines.h -- reading request lines from a file, a pipe or a FIFO without blocking the
 * server.
 *
 * Contract
 *   An sdlk_serve_lines reads newline-terminated lines from a file descriptor into its
 *   own buffer. sdlk_serve_lines_next() waits at most `timeout_ms` (0: just look, < 0:
 *   until a line or the end) for a complete line, so a server can poll its input
 *   between batches and sleep on it when idle. A last line without a newline is
 *   returned at end of input. A line longer than SDLK_SERVE_LINE_MAX is an error for
 *   that line only (the rest of it is skipped). Empty lines (only blanks) are skipped.
 *   A signal that interrupts the wait returns "no line yet" (*line NULL), so that the
 *   caller can look at its stop flag. The descriptor is borrowed (never closed here).
 *   Cost: O(bytes read); memory O(longest line).
 */
#ifndef SDLK_SERVE_LINES_H
#define SDLK_SERVE_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define SDLK_SERVE_LINE_MAX (1 << 20)

typedef struct sdlk_serve_lines {
    int fd;
    char name[256];      /* for messages: the path, or "stdin" */
    char *buf;
    size_t len, cap;     /* bytes held, buffer size */
    size_t consumed;     /* bytes of buf already returned (dropped on the next call) */
    int eof;             /* the descriptor reached its end */
    int skipping;        /* inside an over-long line: drop bytes up to its newline */
    int64_t lineno;      /* number of the last line returned (1-based) */
} sdlk_serve_lines;

void sdlk_serve_lines_init(sdlk_serve_lines *l, int fd, const char *name);
void sdlk_serve_lines_free(sdlk_serve_lines *l);

/* SDLK_OK with *line (NUL-terminated, valid until the next call) and *len, or with
 * *line == NULL when none arrived in time; SDLK_ERR_EOF at the end of the input;
 * SDLK_ERR_FORMAT for an over-long line (named "<name>:<line>"; call again for the
 * next one); SDLK_ERR_IO on a read error. */
sdlk_status sdlk_serve_lines_next(sdlk_serve_lines *l, int timeout_ms, char **line,
                                  size_t *len, sdlk_error *err);

#endif
