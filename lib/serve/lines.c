/* lines.c -- non-blocking line reader (contract in lines.h). */
#include "serve/lines.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sdlk_serve_lines_init(sdlk_serve_lines *l, int fd, const char *name)
{
    memset(l, 0, sizeof *l);
    l->fd = fd;
    snprintf(l->name, sizeof l->name, "%s", name ? name : "input");
}

void sdlk_serve_lines_free(sdlk_serve_lines *l)
{
    free(l->buf);
    l->buf = NULL;
    l->len = l->cap = l->consumed = 0;
}

/* A complete line in the buffer: its length without the newline, or -1. */
static long find_line(const sdlk_serve_lines *l)
{
    const char *nl = memchr(l->buf, '\n', l->len);
    return nl ? (long)(nl - l->buf) : -1;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* Read what is available (one read call). 1: got bytes or EOF, 0: nothing (timeout or
 * signal), -1: error. */
static int fill(sdlk_serve_lines *l, int timeout_ms, sdlk_error *err)
{
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR)
        return 0;
    if (r < 0) {
        sdlk_error_errno(err, errno, "%s: poll", l->name);
        return -1;
    }
    if (r == 0)
        return 0;
    if (l->cap - l->len < 65536) {
        size_t cap = l->cap ? l->cap * 2 : 131072;
        char *b = realloc(l->buf, cap + 1);
        if (!b) {
            sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", l->name);
            return -1;
        }
        l->buf = b;
        l->cap = cap;
    }
    ssize_t n = read(l->fd, l->buf + l->len, l->cap - l->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n < 0) {
        sdlk_error_errno(err, errno, "%s: read", l->name);
        return -1;
    }
    if (n == 0)
        l->eof = 1;
    l->len += (size_t)n;
    return 1;
}

sdlk_status sdlk_serve_lines_next(sdlk_serve_lines *l, int timeout_ms, char **line,
                                  size_t *len, sdlk_error *err)
{
    *line = NULL;
    *len = 0;
    if (l->consumed) {
        memmove(l->buf, l->buf + l->consumed, l->len - l->consumed);
        l->len -= l->consumed;
        l->consumed = 0;
    }
    int wait = timeout_ms; /* only the first poll waits, unless the caller blocks */
    for (;;) {
        if (l->skipping && l->len > 0) {
            /* drop the rest of an over-long line, keep what follows its newline */
            long n = find_line(l);
            size_t drop = n >= 0 ? (size_t)n + 1 : l->len;
            memmove(l->buf, l->buf + drop, l->len - drop);
            l->len -= drop;
            l->skipping = n < 0;
        }
        if (!l->skipping) {
            long n = l->len ? find_line(l) : -1;
            if (n < 0 && l->eof && l->len > 0)
                n = (long)l->len; /* last line without a newline */
            if (n >= 0) {
                size_t take = (size_t)n < l->len ? (size_t)n + 1 : (size_t)n;
                l->lineno++;
                if (n > SDLK_SERVE_LINE_MAX) { /* arrived whole in one read */
                    l->consumed = take;
                    return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:%lld: line longer than %d "
                                          "bytes", l->name, (long long)l->lineno,
                                          SDLK_SERVE_LINE_MAX);
                }
                if (blank(l->buf, (size_t)n)) {
                    memmove(l->buf, l->buf + take, l->len - take);
                    l->len -= take;
                    continue;
                }
                l->buf[n] = '\0'; /* the newline's place, or the spare byte of cap + 1 */
                l->consumed = take;
                *line = l->buf;
                *len = (size_t)n;
                return SDLK_OK;
            }
            if (l->len >= SDLK_SERVE_LINE_MAX) {
                l->skipping = 1;
                l->len = 0;
                l->lineno++;
                return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:%lld: line longer than %d "
                                      "bytes", l->name, (long long)l->lineno,
                                      SDLK_SERVE_LINE_MAX);
            }
        }
        if (l->eof)
            return SDLK_ERR_EOF;
        int r = fill(l, wait, err);
        if (r < 0)
            return err ? err->code : SDLK_ERR_IO;
        if (r == 0)
            return SDLK_OK; /* nothing in time, or a signal: the caller looks at its flags */
        if (wait > 0)
            wait = 0;
    }
}
