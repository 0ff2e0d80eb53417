/* protocol.c -- encode and decode worker protocol frames (see protocol.h).
 *
 * Explicit byte-by-byte little-endian packing rather than struct copies, so the wire
 * format does not depend on the compiler's padding or the host's byte order. */
#include "gen/protocol.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

const char *sdlk_proto_op_name(unsigned op, char buf[16])
{
    static const char *const names[] = {"?",       "HELLO",  "OPEN",  "OK",  "CLOSE",
                                        "PREDICT", "RESULT", "ERROR", "BYE"};
    if (op >= 1 && op <= SDLK_PROTO_OP_MAX)
        return names[op];
    snprintf(buf, 16, "op %u", op);
    return buf;
}

void sdlk_proto_header_init(sdlk_proto_header *h, sdlk_proto_op op)
{
    memset(h, 0, sizeof *h);
    h->version = SDLK_PROTO_VERSION;
    h->op = (uint16_t)op;
}

/* Ops whose frames carry a tensor in the data part (OPEN only when dtype says so). */
static int op_has_tensor(const sdlk_proto_header *h)
{
    return h->op == SDLK_PROTO_PREDICT || h->op == SDLK_PROTO_RESULT ||
           (h->op == SDLK_PROTO_OPEN && h->dtype != SDLK_PROTO_DT_NONE);
}

int64_t sdlk_proto_expected_data(const sdlk_proto_header *h)
{
    if (!op_has_tensor(h))
        return 0;
    /* every factor is checked against the cap before multiplying, so no product can
     * wrap: the cap is 2^36 and each factor here is at most that */
    uint64_t bytes = 4;
    for (int i = 0; i < 4; i++) {
        if (h->shape[i] < 1 || (uint64_t)h->shape[i] > SDLK_PROTO_MAX_DATA)
            return -1;
        bytes *= (uint64_t)h->shape[i];
        if (bytes > SDLK_PROTO_MAX_DATA)
            return -1;
    }
    if (h->op == SDLK_PROTO_PREDICT && (h->flags & SDLK_PROTO_F_COND)) {
        bytes *= 2;
        if (bytes > SDLK_PROTO_MAX_DATA)
            return -1;
    }
    return (int64_t)bytes;
}

sdlk_status sdlk_proto_header_check(const sdlk_proto_header *h, const char *what,
                                    sdlk_error *err)
{
    char nb[16];
    const char *name = sdlk_proto_op_name(h->op, nb);
    if (!what)
        what = "worker frame";
    if (h->version != SDLK_PROTO_VERSION)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s: protocol version %u (this sdl speaks version %d)", what,
                              (unsigned)h->version, SDLK_PROTO_VERSION);
    if (h->op < 1 || h->op > SDLK_PROTO_OP_MAX)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: unknown op %u", what, (unsigned)h->op);
    if (h->text_len > SDLK_PROTO_MAX_TEXT)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s text of %u bytes (at most %u)", what,
                              name, (unsigned)h->text_len, SDLK_PROTO_MAX_TEXT);
    if (h->text_len && h->op != SDLK_PROTO_HELLO && h->op != SDLK_PROTO_OPEN &&
        h->op != SDLK_PROTO_ERROR)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s frame carries text", what, name);
    if (h->data_len > SDLK_PROTO_MAX_DATA)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s data of %llu bytes (at most %llu)",
                              what, name, (unsigned long long)h->data_len,
                              (unsigned long long)SDLK_PROTO_MAX_DATA);
    if (h->dtype > SDLK_PROTO_DT_F32)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: %s dtype %u (only 1 = f32)", what,
                              name, (unsigned)h->dtype);
    if (!isfinite(h->level))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s level is not finite", what, name);
    if (h->op != SDLK_PROTO_HELLO && (h->pred || h->time))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s sets the HELLO-only pred/time fields",
                              what, name);
    if (h->flags & ~(unsigned)SDLK_PROTO_F_COND ||
        ((h->flags & SDLK_PROTO_F_COND) && h->op != SDLK_PROTO_PREDICT))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s has unknown flags 0x%02x", what, name,
                              (unsigned)h->flags);
    int batched = h->op == SDLK_PROTO_PREDICT || h->op == SDLK_PROTO_RESULT;
    int shaped = batched || h->op == SDLK_PROTO_HELLO || h->op == SDLK_PROTO_OPEN;
    if (!shaped) {
        for (int i = 0; i < 4; i++)
            if (h->shape[i])
                return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s frame has a shape", what,
                                      name);
        if (h->dtype)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s frame has a dtype", what, name);
    }
    if (batched) {
        if (h->batch < 1 || h->index >= h->batch)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s index %u of a batch of %u", what,
                                  name, (unsigned)h->index, (unsigned)h->batch);
    } else if (h->op == SDLK_PROTO_HELLO) {
        if (h->batch < 1 || h->index)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: HELLO max batch %u (must be >= 1)",
                                  what, (unsigned)h->batch);
    } else if (h->batch || h->index) {
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s frame has batch fields", what, name);
    }
    if (h->op == SDLK_PROTO_HELLO) {
        if (h->dtype != SDLK_PROTO_DT_F32)
            return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: HELLO dtype %u (only 1 = f32)",
                                  what, (unsigned)h->dtype);
        if (h->pred > 3 || h->time > 1)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: HELLO pred %u / time %u out of range",
                                  what, (unsigned)h->pred, (unsigned)h->time);
        /* the tile must be a valid tensor shape even though HELLO carries no data */
        sdlk_proto_header t = *h;
        t.op = SDLK_PROTO_RESULT;
        if (sdlk_proto_expected_data(&t) < 0)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: HELLO tile %lldx%lldx%lld with %lld channels is not a "
                                  "valid shape (each >= 1, at most 2^36 bytes)",
                                  what, (long long)h->shape[0], (long long)h->shape[1],
                                  (long long)h->shape[2], (long long)h->shape[3]);
        if (h->data_len)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: HELLO carries data", what);
        return SDLK_OK;
    }
    if (batched && h->dtype != SDLK_PROTO_DT_F32)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: %s dtype %u (only 1 = f32)", what,
                              name, (unsigned)h->dtype);
    if (h->op == SDLK_PROTO_PREDICT) {
        if (h->level < 0.0 || h->level > 1.0)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: PREDICT level %g outside [0, 1]",
                                  what, h->level);
        for (int i = 0; i < 3; i++)
            if (h->offset[i] < 0)
                return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: PREDICT offset %lld is negative",
                                      what, (long long)h->offset[i]);
    }
    if (h->op == SDLK_PROTO_OPEN && h->dtype == SDLK_PROTO_DT_NONE) {
        for (int i = 0; i < 4; i++)
            if (h->shape[i])
                return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                      "%s: OPEN has a reference shape but no dtype", what);
    }
    int64_t want = sdlk_proto_expected_data(h);
    if (want < 0)
        return sdlk_error_set(err, SDLK_ERR_OVERFLOW,
                              "%s: %s shape %lldx%lldx%lldx%lld is not a valid tensor (each >= 1, "
                              "at most 2^36 bytes)",
                              what, name, (long long)h->shape[0], (long long)h->shape[1],
                              (long long)h->shape[2], (long long)h->shape[3]);
    if ((uint64_t)want != h->data_len)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: %s announces %llu data bytes, its shape needs %lld", what, name,
                              (unsigned long long)h->data_len, (long long)want);
    return SDLK_OK;
}

sdlk_status sdlk_proto_encode_header(const sdlk_proto_header *h,
                                     uint8_t out[SDLK_PROTO_HEADER_SIZE], const char *what,
                                     sdlk_error *err)
{
    sdlk_status st = sdlk_proto_header_check(h, what, err);
    if (st)
        return st;
    memset(out, 0, SDLK_PROTO_HEADER_SIZE);
    memcpy(out, SDLK_PROTO_MAGIC, 4);
    put16(out + 4, h->version);
    put16(out + 6, h->op);
    put32(out + 8, h->text_len);
    out[12] = h->dtype;
    out[13] = h->pred;
    out[14] = h->time;
    out[15] = h->flags;
    put64(out + 16, h->data_len);
    put64(out + 24, (uint64_t)h->request);
    put64(out + 32, (uint64_t)h->tile_id);
    put64(out + 40, h->seed);
    put32(out + 48, (uint32_t)h->step);
    put32(out + 52, (uint32_t)h->timestep);
    uint64_t bits;
    memcpy(&bits, &h->level, sizeof bits);
    put64(out + 56, bits);
    for (int i = 0; i < 3; i++)
        put64(out + 64 + 8 * i, (uint64_t)h->offset[i]);
    for (int i = 0; i < 4; i++)
        put64(out + 88 + 8 * i, (uint64_t)h->shape[i]);
    put16(out + 120, h->batch);
    put16(out + 122, h->index);
    return SDLK_OK;
}

sdlk_status sdlk_proto_decode_header(const uint8_t *buf, size_t len, sdlk_proto_header *h,
                                     uint64_t *frame_len, const char *what, sdlk_error *err)
{
    if (!what)
        what = "worker frame";
    if (len < 4 || memcmp(buf, SDLK_PROTO_MAGIC, 4) != 0) {
        /* show what came instead: usually a worker printing text to stdout */
        char shown[40];
        size_t n = len < 16 ? len : 16, k = 0;
        for (size_t i = 0; i < n && k + 5 < sizeof shown; i++) {
            uint8_t c = buf[i];
            k += (size_t)snprintf(shown + k, sizeof shown - k,
                                  c >= 32 && c < 127 && c != '\\' ? "%c" : "\\x%02x", c);
        }
        shown[k] = 0;
        if (len < 4 && (len == 0 || memcmp(buf, SDLK_PROTO_MAGIC, len) == 0))
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: truncated frame header (%zu bytes)",
                                  what, len);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: not a protocol frame (expected magic \"SDLW\", got \"%s\")",
                              what, shown);
    }
    if (len < SDLK_PROTO_HEADER_SIZE)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: truncated frame header (%zu of %d bytes)",
                              what, len, SDLK_PROTO_HEADER_SIZE);
    sdlk_proto_header d;
    d.version = get16(buf + 4);
    d.op = get16(buf + 6);
    d.text_len = get32(buf + 8);
    d.dtype = buf[12];
    d.pred = buf[13];
    d.time = buf[14];
    d.flags = buf[15];
    d.data_len = get64(buf + 16);
    d.request = (int64_t)get64(buf + 24);
    d.tile_id = (int64_t)get64(buf + 32);
    d.seed = get64(buf + 40);
    d.step = (int32_t)get32(buf + 48);
    d.timestep = (int32_t)get32(buf + 52);
    uint64_t bits = get64(buf + 56);
    memcpy(&d.level, &bits, sizeof bits);
    for (int i = 0; i < 3; i++)
        d.offset[i] = (int64_t)get64(buf + 64 + 8 * i);
    for (int i = 0; i < 4; i++)
        d.shape[i] = (int64_t)get64(buf + 88 + 8 * i);
    d.batch = get16(buf + 120);
    d.index = get16(buf + 122);
    if (get32(buf + 124) != 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: reserved header bytes are not zero",
                              what);
    sdlk_status st = sdlk_proto_header_check(&d, what, err);
    if (st)
        return st;
    *h = d;
    if (frame_len)
        *frame_len = SDLK_PROTO_HEADER_SIZE + (uint64_t)d.text_len + d.data_len;
    return SDLK_OK;
}

sdlk_status sdlk_proto_parse(const uint8_t *buf, size_t len, sdlk_proto_frame *f,
                             size_t *consumed, const char *what, sdlk_error *err)
{
    if (!what)
        what = "worker frame";
    uint64_t total = 0;
    sdlk_proto_header h;
    sdlk_status st = sdlk_proto_decode_header(buf, len, &h, &total, what, err);
    if (st)
        return st;
    /* total <= 128 + 2^20 + 2^36, so the comparison cannot be fooled by wrapping */
    if (total > (uint64_t)len) {
        char nb[16];
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: truncated %s frame (%zu of %llu bytes)", what,
                              sdlk_proto_op_name(h.op, nb), len, (unsigned long long)total);
    }
    f->h = h;
    f->text = h.text_len ? (const char *)buf + SDLK_PROTO_HEADER_SIZE : NULL;
    f->data = h.data_len ? buf + SDLK_PROTO_HEADER_SIZE + h.text_len : NULL;
    if (consumed)
        *consumed = (size_t)total;
    return SDLK_OK;
}

void sdlk_proto_f32_to_le(uint8_t *dst, const float *src, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, &src[i], 4);
        put32(dst + 4 * i, v);
    }
#endif
}

void sdlk_proto_f32_from_le(float *dst, const uint8_t *src, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t v = get32(src + 4 * i);
        memcpy(&dst[i], &v, 4);
    }
#endif
}
