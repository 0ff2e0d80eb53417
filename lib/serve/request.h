/* request.h -- one sdl-serve request, parsed from one JSON line.
 *
 * Contract
 *   A request line is one JSON object (JSON lines: one object per line, no line breaks
 *   inside) with these members:
 *     id          string of 1..63 characters from [A-Za-z0-9._-], not starting with '.'
 *                 (it names the output file <id>.png), or a non-negative integer
 *                 (written in decimal). Required.
 *     height,     integers 1..SDLK_SERVE_MAX_SIDE: the image to generate. Required.
 *     width
 *     arrival_ms  number >= 0: arrival time for replay, relative to the start of the
 *                 run. Optional (absent: arrives when read).
 *     steps       integer 1..1024 sampler steps. Optional (default from the defaults).
 *     seed        integer 0..2^53: the noise stream. Optional (default: a hash of the id,
 *                 so that requests differ without the caller choosing seeds).
 *     slo_ms      number > 0: deadline relative to arrival, in ms; or
 *     slo_scale   number > 0: deadline = slo_scale x the request's standalone latency
 *                 (what it takes alone on the idle server, from the latency profile).
 *                 At most one of the two; neither: slo_scale from the defaults.
 *     reference   string: path of the reference image (exemplar model).
 *     prompt      string: text for an exec model. At least one of reference/prompt.
 *   Duplicate keys, unknown keys, wrong types and values out of range are errors that
 *   name the member; the caller reports them for that line only and goes on.
 *   Parsing is O(line length); the request owns its strings (free with _clear).
 */
#ifndef SDLK_SERVE_REQUEST_H
#define SDLK_SERVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define SDLK_SERVE_ID_MAX 64
#define SDLK_SERVE_MAX_SIDE 16384
#define SDLK_SERVE_MAX_STEPS 1024

typedef struct sdlk_serve_request {
    char id[SDLK_SERVE_ID_MAX]; /* "" when the line had no usable id */
    double arrival_ms;          /* < 0: not given */
    int64_t height, width;
    int steps;
    uint64_t seed;
    double slo_ms;              /* > 0: absolute SLO; 0: use slo_scale */
    double slo_scale;
    char *reference;            /* malloc'd or NULL */
    char *prompt;               /* malloc'd or NULL */
} sdlk_serve_request;

typedef struct sdlk_serve_request_defaults {
    int steps;        /* default 30 */
    double slo_scale; /* default 5 */
} sdlk_serve_request_defaults;

void sdlk_serve_request_defaults_init(sdlk_serve_request_defaults *d);

/* Parse one line (len bytes, need not be NUL-terminated; a trailing '\r' is allowed).
 * `where` names the line in messages ("trace.jsonl:12"). On failure `out` is cleared
 * except `id`, which keeps the id when the line had a valid one, so the error can be
 * reported under it; SDLK_ERR_FORMAT names the member and the problem. */
sdlk_status sdlk_serve_request_parse(const char *line, size_t len, const char *where,
                                     const sdlk_serve_request_defaults *defaults,
                                     sdlk_serve_request *out, sdlk_error *err);

/* Release the strings and zero the request. */
void sdlk_serve_request_clear(sdlk_serve_request *r);

/* Deep copy (strings duplicated). */
sdlk_status sdlk_serve_request_copy(sdlk_serve_request *dst, const sdlk_serve_request *src,
                                    sdlk_error *err);

/* The default seed of an id: 64-bit FNV-1a, masked to 53 bits (exact in JSON). */
uint64_t sdlk_serve_id_seed(const char *id);

#endif
