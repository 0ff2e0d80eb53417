/* Fuzz target: the sdl-serve request-line parser (lib/serve/request.h). Any bytes must
 * either give a request whose every field is within the contract's ranges (id safe as a
 * file name, sizes and steps in range, at most one SLO form, a reference or a prompt),
 * which survives a deep copy, or fail with a message that names the line. */
#include <math.h>

#include "fuzz_common.h"
#include "serve/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= SDLK_SERVE_ID_MAX || id[0] == '.')
        abort();
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* own heap copy without a terminator, so ASan sees any read past the end */
    char *line = malloc(size ? size : 1);
    if (!line)
        abort();
    if (size)
        memcpy(line, data, size);
    sdlk_serve_request_defaults defaults;
    sdlk_serve_request_defaults_init(&defaults);
    sdlk_serve_request req;
    memset(&req, 0, sizeof req);
    sdlk_error err = {0};
    sdlk_status st = sdlk_serve_request_parse(line, size, "fuzz.jsonl:1", &defaults, &req, &err);
    fuzz_check_error(st, &err, "fuzz.jsonl:1");
    if (st == SDLK_OK) {
        check_id(req.id);
        if (req.height < 1 || req.height > SDLK_SERVE_MAX_SIDE || req.width < 1 ||
            req.width > SDLK_SERVE_MAX_SIDE || req.steps < 1 || req.steps > SDLK_SERVE_MAX_STEPS)
            abort();
        if (!(req.slo_ms > 0) && !(req.slo_scale > 0))
            abort();
        if (!isfinite(req.slo_ms) || !isfinite(req.slo_scale) || !isfinite(req.arrival_ms))
            abort();
        if (!req.reference && !req.prompt)
            abort();
        sdlk_serve_request copy;
        if (sdlk_serve_request_copy(&copy, &req, &err) != SDLK_OK)
            abort();
        if (strcmp(copy.id, req.id) != 0 || copy.height != req.height ||
            (req.reference && strcmp(copy.reference, req.reference) != 0) ||
            (req.prompt && strcmp(copy.prompt, req.prompt) != 0))
            abort();
        sdlk_serve_request_clear(&copy);
    }
    sdlk_serve_request_clear(&req);
    free(line);
    return 0;
}
