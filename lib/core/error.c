#include "core/error.h"

#include <stdio.h>
#include <string.h>

sdlk_status sdlk_error_vset(sdlk_error *err, sdlk_status code, const char *fmt, va_list ap)
{
    if (err && err->code == SDLK_OK) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

sdlk_status sdlk_error_set(sdlk_error *err, sdlk_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sdlk_error_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

sdlk_status sdlk_error_errno(sdlk_error *err, int errnum, const char *fmt, ...)
{
    if (err && err->code == SDLK_OK) {
        va_list ap;
        va_start(ap, fmt);
        sdlk_error_vset(err, SDLK_ERR_IO, fmt, ap);
        va_end(ap);
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof err->msg - used, ": %s", strerror(errnum));
    }
    return SDLK_ERR_IO;
}

void sdlk_error_prefix(sdlk_error *err, const char *fmt, ...)
{
    if (!err || err->code == SDLK_OK)
        return;
    char joined[SDLK_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int used = vsnprintf(joined, sizeof joined, fmt, ap);
    va_end(ap);
    if (used < 0)
        return;
    if ((size_t)used < sizeof joined) /* room for ": " + the old message (cut if needed) */
        snprintf(joined + used, sizeof joined - (size_t)used, ": %s", err->msg);
    memcpy(err->msg, joined, sizeof joined);
}

void sdlk_error_clear(sdlk_error *err)
{
    if (err) {
        err->code = SDLK_OK;
        err->msg[0] = '\0';
    }
}

const char *sdlk_status_name(sdlk_status code)
{
    switch (code) {
    case SDLK_OK: return "ok";
    case SDLK_ERR_IO: return "I/O error";
    case SDLK_ERR_FORMAT: return "format error";
    case SDLK_ERR_UNSUPPORTED: return "unsupported";
    case SDLK_ERR_NOMEM: return "out of memory";
    case SDLK_ERR_OVERFLOW: return "size overflow";
    case SDLK_ERR_ARG: return "invalid argument";
    case SDLK_ERR_NOTFOUND: return "not found";
    case SDLK_ERR_DEVICE: return "device error";
    case SDLK_ERR_EOF: return "end of stream";
    case SDLK_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
