/* error.h -- how the sdl library reports failure.
 *
 * Contract
 *   Every library function that can fail returns an sdlk_status (0 = SDLK_OK) and,
 *   when its caller passed a non-NULL `sdlk_error *`, fills it with a code and one
 *   human-readable sentence that names the thing at fault (usually the file) and the
 *   cause, e.g. "weights.npy: header says 4096 bytes of data, file has 1000".
 *   The library never prints and never exits; tools decide what to do with the error.
 *   The first error set wins: a caller that adds context uses sdlk_error_prefix().
 *
 * Thread safety: an sdlk_error belongs to one thread; there is no global error state.
 */
#ifndef SDLK_CORE_ERROR_H
#define SDLK_CORE_ERROR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdlk_status {
    SDLK_OK = 0,
    SDLK_ERR_IO,          /* open/read/write/rename failed (errno text in message) */
    SDLK_ERR_FORMAT,      /* input is not what it claims: bad magic, lying header,
                             truncated data, shape/size mismatch */
    SDLK_ERR_UNSUPPORTED, /* well-formed but outside what we handle (dtype, codec) */
    SDLK_ERR_NOMEM,       /* allocation failed */
    SDLK_ERR_OVERFLOW,    /* sizes whose product or sum does not fit */
    SDLK_ERR_ARG,         /* caller passed an invalid argument (a usage error) */
    SDLK_ERR_NOTFOUND,    /* a named member/tensor/stream does not exist */
    SDLK_ERR_DEVICE,      /* GPU/CUDA failure, or no device present */
    SDLK_ERR_EOF,         /* clean end of a stream (not a failure for stream readers) */
    SDLK_ERR_INTERNAL     /* a broken invariant: a bug in sdl */
} sdlk_status;

#define SDLK_ERROR_MSG_MAX 512

typedef struct sdlk_error {
    sdlk_status code;
    char msg[SDLK_ERROR_MSG_MAX];
} sdlk_error;

/* Set `err` (if non-NULL and not already set) and return `code`, so that a failing
 * path can be written `return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: ...", path);` */
sdlk_status sdlk_error_set(sdlk_error *err, sdlk_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
sdlk_status sdlk_error_vset(sdlk_error *err, sdlk_status code, const char *fmt, va_list ap);

/* Like sdlk_error_set, appending ": strerror(errnum)". */
sdlk_status sdlk_error_errno(sdlk_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend "prefix: " to an error already set (adds the file name to a message produced
 * by a lower layer that only knew a buffer). No-op when err is NULL or not set. */
void sdlk_error_prefix(sdlk_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reset to "no error". */
void sdlk_error_clear(sdlk_error *err);

/* Short constant name of a status code, e.g. "format error". */
const char *sdlk_status_name(sdlk_status code);

#ifdef __cplusplus
}
#endif

#endif
