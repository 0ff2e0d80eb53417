/* graphwrite.c -- Matrix Market writer; the text goes through a small buffer that is
 * either written as is or deflated into a gzip member. */
#include "graph/graphwrite.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OUT_BUFFER (1 << 16)

typedef struct mtx_sink {
    FILE *fp;
    int gzip;
    z_stream zs;
    unsigned char *zbuf;
    char buf[OUT_BUFFER];
    size_t used;
    const char *name;
    sdlk_error *err;
} mtx_sink;

static sdlk_status sink_write_raw(mtx_sink *s, const void *data, size_t size)
{
    if (size && fwrite(data, 1, size, s->fp) != size)
        return sdlk_error_errno(s->err, errno, "%s: write failed", s->name);
    return SDLK_OK;
}

/* Hand the buffered text on (deflating it when gzip); `finish` ends the gzip member. */
static sdlk_status sink_flush(mtx_sink *s, int finish)
{
    sdlk_status st = SDLK_OK;
    if (!s->gzip) {
        st = sink_write_raw(s, s->buf, s->used);
        s->used = 0;
        return st;
    }
    s->zs.next_in = (Bytef *)s->buf;
    s->zs.avail_in = (uInt)s->used;
    int rc;
    do {
        s->zs.next_out = s->zbuf;
        s->zs.avail_out = OUT_BUFFER;
        rc = deflate(&s->zs, finish ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR)
            return sdlk_error_set(s->err, SDLK_ERR_INTERNAL, "%s: deflate failed", s->name);
        st = sink_write_raw(s, s->zbuf, OUT_BUFFER - s->zs.avail_out);
    } while (!st && (s->zs.avail_out == 0 || (finish && rc != Z_STREAM_END)));
    s->used = 0;
    return st;
}

/* Append formatted text (one line is far below the buffer size). */
static sdlk_status sink_printf(mtx_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static sdlk_status sink_printf(mtx_sink *s, const char *fmt, ...)
{
    if (s->used + 256 > OUT_BUFFER) {
        sdlk_status st = sink_flush(s, 0);
        if (st)
            return st;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->buf + s->used, OUT_BUFFER - s->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= OUT_BUFFER - s->used)
        return sdlk_error_set(s->err, SDLK_ERR_INTERNAL, "%s: line too long", s->name);
    s->used += (size_t)n;
    return SDLK_OK;
}

/* "%d" for int64 without printf overhead: the edge lines are most of the work. */
static size_t put_uint(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

sdlk_status sdlk_mtx_write(FILE *fp, const sdlk_graph *g, int gzip, const char *comment,
                           const char *name, sdlk_error *err)
{
    mtx_sink *s = calloc(1, sizeof *s);
    if (!s)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    s->fp = fp;
    s->gzip = gzip;
    s->name = name;
    s->err = err;
    sdlk_status st = SDLK_OK;
    if (gzip) {
        s->zbuf = malloc(OUT_BUFFER);
        if (!s->zbuf || deflateInit2(&s->zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(s->zbuf);
            free(s);
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: cannot start deflate", name);
        }
    }
    st = sink_printf(s, "%%%%MatrixMarket matrix coordinate %s general\n",
                     g->values ? "real" : "pattern");
    for (const char *c = comment; !st && c && *c;) {
        const char *nl = strchr(c, '\n');
        size_t len = nl ? (size_t)(nl - c) : strlen(c);
        st = sink_printf(s, "%% %.*s\n", (int)(len > 200 ? 200 : len), c);
        c += len + (nl != NULL);
    }
    if (!st)
        st = sink_printf(s, "%lld %lld %lld\n", (long long)g->nodes, (long long)g->nodes,
                         (long long)g->edges);
    for (int64_t r = 0; r < g->nodes && !st; r++) {
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1] && !st; k++) {
            if (g->values) {
                st = sink_printf(s, "%lld %lld %.9g\n", (long long)r + 1,
                                 (long long)g->col_idx[k] + 1, (double)g->values[k]);
                continue;
            }
            if (s->used + 48 > OUT_BUFFER && (st = sink_flush(s, 0)))
                break;
            char *p = s->buf + s->used;
            size_t n = put_uint(p, (uint64_t)r + 1);
            p[n++] = ' ';
            n += put_uint(p + n, (uint64_t)g->col_idx[k] + 1);
            p[n++] = '\n';
            s->used += n;
        }
    }
    if (!st)
        st = sink_flush(s, 1);
    if (gzip)
        deflateEnd(&s->zs);
    free(s->zbuf);
    free(s);
    return st;
}
