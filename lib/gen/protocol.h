/* protocol.h -- the sdl denoiser worker protocol: frames exchanged with an exec worker
 * over its stdin/stdout (the exec backend is lib/gen/exec.h; the same text, byte by
 * byte, is in sdl-formats(5), section DENOISER WORKER PROTOCOL).
 *
 * Contract
 *   A frame is a fixed 128-byte little-endian header followed by `text_len` bytes of
 *   UTF-8 text (not NUL-terminated) and `data_len` bytes of tensor data (C order,
 *   little-endian elements). Header layout (offsets in bytes):
 *
 *      0  4  magic "SDLW"            64 24  offset[3] i64 (t, h, w)
 *      4  2  version (1)             88 32  shape[4]  i64 (t, h, w, C) or (T, H, W, C)
 *      6  2  op                     120  2  batch  u16 (PREDICT/RESULT: items in the
 *      8  4  text_len u32                           batch; HELLO: max batch)
 *     12  1  dtype (0 none, 1 f32)  122  2  index  u16 (position in the batch)
 *     13  1  pred (HELLO)           124  4  reserved, must be 0
 *     14  1  time (HELLO)
 *     15  1  flags
 *     16  8  data_len u64
 *     24  8  request  i64
 *     32  8  tile_id  i64
 *     40  8  seed     u64
 *     48  4  step     i32
 *     52  4  timestep i32
 *     56  8  level    f64 (alpha_bar or sigma)
 *
 *   Every byte of the header is a field, so a valid header has exactly one encoding
 *   (decode then encode gives the same bytes; the fuzz target checks it).
 *
 *   The decoder is a pure function of a byte buffer. It never trusts a size: text and
 *   data lengths are capped, data_len must equal the byte size that op, dtype, shape
 *   and flags imply (computed with overflow checks), text, dtype, shape, pred, time,
 *   flags, batch and index must be zero where the op does not use them (other unused
 *   fields are ignored, so a RESULT may echo its PREDICT's header), and every error
 *   names the peer (`what`) and the field at fault.
 *
 * Thread safety: no state at all.
 */
#ifndef SDLK_GEN_PROTOCOL_H
#define SDLK_GEN_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define SDLK_PROTO_MAGIC "SDLW"
#define SDLK_PROTO_VERSION 1
#define SDLK_PROTO_HEADER_SIZE 128
/* Longest text: prompts and error messages, not payloads. */
#define SDLK_PROTO_MAX_TEXT (1u << 20)
/* Largest tensor in one frame (a reference canvas can be a whole low-resolution clip). */
#define SDLK_PROTO_MAX_DATA ((uint64_t)1 << 36)

typedef enum sdlk_proto_op {
    SDLK_PROTO_HELLO = 1,   /* worker -> host, first frame: describes the model */
    SDLK_PROTO_OPEN = 2,    /* host -> worker: bind a request (seed, prompt, reference) */
    SDLK_PROTO_OK = 3,      /* worker -> host: OPEN accepted (echoes the request id) */
    SDLK_PROTO_CLOSE = 4,   /* host -> worker: forget a request; no answer */
    SDLK_PROTO_PREDICT = 5, /* host -> worker: one tile of a batch */
    SDLK_PROTO_RESULT = 6,  /* worker -> host: the prediction for one tile */
    SDLK_PROTO_ERROR = 7,   /* worker -> host: the batch (or OPEN) failed; text says why */
    SDLK_PROTO_BYE = 8      /* host -> worker: exit now (status 0); no answer */
} sdlk_proto_op;

#define SDLK_PROTO_OP_MAX 8

typedef enum sdlk_proto_dtype {
    SDLK_PROTO_DT_NONE = 0,
    SDLK_PROTO_DT_F32 = 1
} sdlk_proto_dtype;

/* flags bit 0, PREDICT only: the data holds the conditioning tile after the input. */
#define SDLK_PROTO_F_COND 1u

typedef struct sdlk_proto_header {
    uint16_t version;   /* SDLK_PROTO_VERSION */
    uint16_t op;        /* sdlk_proto_op */
    uint32_t text_len;
    uint8_t dtype;      /* sdlk_proto_dtype */
    uint8_t pred;       /* HELLO: sdlk_pred_type (0 eps, 1 x0, 2 v, 3 flow) */
    uint8_t time;       /* HELLO: sdlk_time_kind (0 variance preserving, 1 flow) */
    uint8_t flags;
    uint64_t data_len;
    int64_t request;
    int64_t tile_id;
    uint64_t seed;
    int32_t step;
    int32_t timestep;
    double level;
    int64_t offset[3];
    int64_t shape[4];
    uint16_t batch;
    uint16_t index;
} sdlk_proto_header;

/* A parsed frame: views into the buffer it was parsed from. */
typedef struct sdlk_proto_frame {
    sdlk_proto_header h;
    const char *text;      /* h.text_len bytes, not NUL-terminated (NULL when 0) */
    const uint8_t *data;   /* h.data_len bytes (NULL when 0) */
} sdlk_proto_frame;

/* A zeroed header of `op` with the version set. */
void sdlk_proto_header_init(sdlk_proto_header *h, sdlk_proto_op op);

/* Check the header's fields against the rules of its op (the same check the decoder
 * applies). SDLK_ERR_FORMAT / SDLK_ERR_UNSUPPORTED / SDLK_ERR_OVERFLOW naming `what`. */
sdlk_status sdlk_proto_header_check(const sdlk_proto_header *h, const char *what,
                                    sdlk_error *err);

/* Bytes of data a header implies: numel(shape) * 4 (x2 for PREDICT with a
 * conditioning tile) for tensor-carrying frames, 0 otherwise. -1 on overflow. */
int64_t sdlk_proto_expected_data(const sdlk_proto_header *h);

/* Encode a checked header into out[SDLK_PROTO_HEADER_SIZE]. */
sdlk_status sdlk_proto_encode_header(const sdlk_proto_header *h,
                                     uint8_t out[SDLK_PROTO_HEADER_SIZE], const char *what,
                                     sdlk_error *err);

/* Decode and check the header at the start of buf (len >= SDLK_PROTO_HEADER_SIZE, else
 * SDLK_ERR_FORMAT "truncated"); *frame_len receives the whole frame's size. */
sdlk_status sdlk_proto_decode_header(const uint8_t *buf, size_t len, sdlk_proto_header *h,
                                     uint64_t *frame_len, const char *what, sdlk_error *err);

/* Parse one complete frame at the start of buf. *consumed receives its size (the next
 * frame, if any, starts there). A buffer shorter than the frame it announces is
 * SDLK_ERR_FORMAT ("truncated"). */
sdlk_status sdlk_proto_parse(const uint8_t *buf, size_t len, sdlk_proto_frame *f,
                             size_t *consumed, const char *what, sdlk_error *err);

/* Name of an op ("HELLO", ...; "op N" for unknown values, in caller storage buf[16]). */
const char *sdlk_proto_op_name(unsigned op, char buf[16]);

/* Copy n f32 values to/from little-endian bytes (a plain copy on little-endian hosts). */
void sdlk_proto_f32_to_le(uint8_t *dst, const float *src, size_t n);
void sdlk_proto_f32_from_le(float *dst, const uint8_t *src, size_t n);

#endif
