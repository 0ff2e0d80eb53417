/* tstream.c -- the sdl tensor stream: safetensors records back to back.
 *
 * The reader knows a record's size only after its header, and a header (like any input)
 * may lie. So the buffer grows geometrically as bytes actually arrive instead of being
 * allocated at the claimed size: a 12-byte input claiming a 100 TB record costs a few
 * KiB and ends as "truncated", not as an out-of-memory failure. */
#include "io/tstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "io/ioutil.h"
#include "io/safetensors.h"

#define FIRST_CHUNK ((size_t)1 << 16)

void sdlk_tstream_reader_init(sdlk_tstream_reader *r, FILE *fp, const char *name)
{
    r->fp = fp;
    r->name = name;
    r->records = 0;
    r->offset = 0;
}

typedef struct grow_buffer {
    uint8_t *data;
    size_t used, capacity;
} grow_buffer;

/* Append exactly `size` bytes from the stream; *got says how many arrived before an
 * end of stream. 0 = all of them, 1 = the stream ended, -1 = read error (errno),
 * -2 = out of memory. */
static int read_into(FILE *fp, grow_buffer *b, uint64_t size, uint64_t *got)
{
    *got = 0;
    while (*got < size) {
        if (b->used == b->capacity) {
            uint64_t want = b->used + (size - *got);
            size_t cap = b->capacity ? b->capacity * 2 : FIRST_CHUNK;
            if (cap > want)
                cap = (size_t)want;
            uint8_t *bigger = realloc(b->data, cap);
            if (!bigger)
                return -2;
            b->data = bigger;
            b->capacity = cap;
        }
        size_t room = b->capacity - b->used;
        if (room > size - *got)
            room = (size_t)(size - *got);
        size_t n = fread(b->data + b->used, 1, room, fp);
        b->used += n;
        *got += n;
        if (n < room)
            return ferror(fp) ? -1 : 1;
    }
    return 0;
}

static void free_buffer(void *ctx) { free(ctx); }

sdlk_status sdlk_tstream_next(sdlk_tstream_reader *r, sdlk_tensor_set *out, sdlk_error *err)
{
    sdlk_tensor_set_init(out);
    char where[256];
    snprintf(where, sizeof where, "%s: record %llu (byte %llu)", r->name,
             (unsigned long long)r->records + 1, (unsigned long long)r->offset);
    grow_buffer b = {0};
    uint64_t got;
    int rc = read_into(r->fp, &b, 8, &got);
    sdlk_status st = SDLK_OK;
    if (rc == 1 && got == 0) {
        free(b.data);
        return SDLK_ERR_EOF; /* a clean end between records: not an error to report */
    }
    uint64_t header_len = 0, data_size = 0;
    if (rc == 0) {
        header_len = sdlk_io_le64(b.data);
        if (header_len > SDLK_SAFETENSORS_MAX_HEADER)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: header length %llu exceeds the 100 MB limit (not a "
                                "safetensors record?)",
                                where, (unsigned long long)header_len);
        else
            rc = read_into(r->fp, &b, header_len, &got);
    }
    if (!st && rc == 0) {
        st = sdlk_safetensors_header_data_size((const char *)b.data + 8, (size_t)header_len,
                                               where, &data_size, err);
        if (!st)
            rc = read_into(r->fp, &b, data_size, &got);
    }
    if (!st && rc != 0) {
        if (rc == 1)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: truncated (stream ended after %zu "
                                "bytes of the record)", where, b.used);
        else if (rc == -1)
            st = sdlk_error_errno(err, errno ? errno : EIO, "%s: read failed", where);
        else
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", where);
    }
    if (st) {
        free(b.data);
        return st;
    }
    sdlk_storage *storage = sdlk_storage_wrap(b.data, b.used, free_buffer, b.data, err);
    if (!storage) {
        free(b.data);
        return SDLK_ERR_NOMEM;
    }
    st = sdlk_safetensors_parse(storage, 0, b.used, where, out, err);
    sdlk_storage_release(storage); /* the tensors hold their own references */
    if (!st) {
        r->records++;
        r->offset += b.used;
    }
    return st;
}

sdlk_status sdlk_tstream_write(FILE *fp, const sdlk_tensor_set *record, const char *name,
                               sdlk_error *err)
{
    sdlk_status st = sdlk_safetensors_write(fp, record, name, err);
    if (st)
        return st;
    /* Flush per record so that a consumer downstream sees each one as it is made. */
    errno = 0;
    if (fflush(fp) != 0)
        return sdlk_error_errno(err, errno ? errno : EIO, "%s: write failed", name);
    return SDLK_OK;
}
