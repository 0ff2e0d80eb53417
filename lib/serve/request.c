/* request.c -- JSON-line request parsing (contract in request.h). */
#include "serve/request.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sdlk_serve_request_defaults_init(sdlk_serve_request_defaults *d)
{
    d->steps = 30;
    d->slo_scale = 5.0;
}

void sdlk_serve_request_clear(sdlk_serve_request *r)
{
    free(r->reference);
    free(r->prompt);
    memset(r, 0, sizeof *r);
}

uint64_t sdlk_serve_id_seed(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h & ((1ull << 53) - 1);
}

sdlk_status sdlk_serve_request_copy(sdlk_serve_request *dst, const sdlk_serve_request *src,
                                    sdlk_error *err)
{
    *dst = *src;
    dst->reference = src->reference ? strdup(src->reference) : NULL;
    dst->prompt = src->prompt ? strdup(src->prompt) : NULL;
    if ((src->reference && !dst->reference) || (src->prompt && !dst->prompt)) {
        sdlk_serve_request_clear(dst);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "request %s: out of memory", src->id);
    }
    return SDLK_OK;
}

/* An id becomes a file name, so only a conservative character set is allowed. */
static int id_text_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= SDLK_SERVE_ID_MAX || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static sdlk_status parse_id(json_t *v, const char *where, char id[SDLK_SERVE_ID_MAX],
                            sdlk_error *err)
{
    if (!v)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: missing \"id\"", where);
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(id, SDLK_SERVE_ID_MAX, "%lld", (long long)json_integer_value(v));
        return SDLK_OK;
    }
    if (json_is_string(v) && id_text_ok(json_string_value(v))) {
        snprintf(id, SDLK_SERVE_ID_MAX, "%s", json_string_value(v));
        return SDLK_OK;
    }
    return sdlk_error_set(err, SDLK_ERR_FORMAT,
                          "%s: \"id\" must be a non-negative integer or 1..%d characters of "
                          "[A-Za-z0-9._-] not starting with '.'", where, SDLK_SERVE_ID_MAX - 1);
}

static sdlk_status get_int(json_t *obj, const char *key, const char *where, long long min,
                           long long max, int required, long long *out, sdlk_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: missing \"%s\"", where, key);
        return SDLK_ERR_NOTFOUND;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: \"%s\" must be an integer from %lld "
                              "to %lld", where, key, min, max);
    *out = json_integer_value(v);
    return SDLK_OK;
}

/* A number (integer or real) > min (strict when `strict`), finite. */
static sdlk_status get_number(json_t *obj, const char *key, const char *where, double min,
                              int strict, double *out, sdlk_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return SDLK_ERR_NOTFOUND;
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!isfinite(x) || (strict ? !(x > min) : !(x >= min)))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: \"%s\" must be a number %s %g", where,
                              key, strict ? ">" : ">=", min);
    *out = x;
    return SDLK_OK;
}

static sdlk_status get_string(json_t *obj, const char *key, const char *where, char **out,
                              sdlk_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return SDLK_ERR_NOTFOUND;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: \"%s\" must be a non-empty string "
                              "without NUL characters", where, key);
    *out = strdup(json_string_value(v));
    if (!*out)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", where);
    return SDLK_OK;
}

static const char *const known_keys[] = {"id", "arrival_ms", "height", "width", "steps",
                                         "seed", "slo_ms", "slo_scale", "reference", "prompt"};

static sdlk_status check_keys(json_t *obj, const char *where, sdlk_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        int known = 0;
        for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
            known |= strcmp(key, known_keys[i]) == 0;
        if (!known)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: unknown member \"%s\"", where, key);
    }
    return SDLK_OK;
}

/* Every member after the id; the id is already in r. */
static sdlk_status parse_members(json_t *obj, const char *where,
                                 const sdlk_serve_request_defaults *def, sdlk_serve_request *r,
                                 sdlk_error *err)
{
    sdlk_status st = check_keys(obj, where, err);
    long long v;
    if (st == SDLK_OK)
        st = get_int(obj, "height", where, 1, SDLK_SERVE_MAX_SIDE, 1, &v, err);
    if (st != SDLK_OK)
        return st;
    r->height = v;
    if ((st = get_int(obj, "width", where, 1, SDLK_SERVE_MAX_SIDE, 1, &v, err)) != SDLK_OK)
        return st;
    r->width = v;
    st = get_int(obj, "steps", where, 1, SDLK_SERVE_MAX_STEPS, 0, &v, err);
    if (st != SDLK_OK && st != SDLK_ERR_NOTFOUND)
        return st;
    r->steps = st == SDLK_OK ? (int)v : def->steps;
    st = get_int(obj, "seed", where, 0, 1ll << 53, 0, &v, err);
    if (st != SDLK_OK && st != SDLK_ERR_NOTFOUND)
        return st;
    r->seed = st == SDLK_OK ? (uint64_t)v : sdlk_serve_id_seed(r->id);
    r->arrival_ms = -1.0;
    st = get_number(obj, "arrival_ms", where, 0.0, 0, &r->arrival_ms, err);
    if (st != SDLK_OK && st != SDLK_ERR_NOTFOUND)
        return st;
    sdlk_status a = get_number(obj, "slo_ms", where, 0.0, 1, &r->slo_ms, err);
    if (a != SDLK_OK && a != SDLK_ERR_NOTFOUND)
        return a;
    sdlk_status b = get_number(obj, "slo_scale", where, 0.0, 1, &r->slo_scale, err);
    if (b != SDLK_OK && b != SDLK_ERR_NOTFOUND)
        return b;
    if (a == SDLK_OK && b == SDLK_OK)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: give \"slo_ms\" or \"slo_scale\", "
                              "not both", where);
    if (a != SDLK_OK)
        r->slo_ms = 0.0;
    if (b != SDLK_OK)
        r->slo_scale = def->slo_scale;
    st = get_string(obj, "reference", where, &r->reference, err);
    if (st != SDLK_OK && st != SDLK_ERR_NOTFOUND)
        return st;
    st = get_string(obj, "prompt", where, &r->prompt, err);
    if (st != SDLK_OK && st != SDLK_ERR_NOTFOUND)
        return st;
    if (!r->reference && !r->prompt)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: give \"reference\" (an image) or "
                              "\"prompt\"", where);
    return SDLK_OK;
}

sdlk_status sdlk_serve_request_parse(const char *line, size_t len, const char *where,
                                     const sdlk_serve_request_defaults *defaults,
                                     sdlk_serve_request *out, sdlk_error *err)
{
    sdlk_serve_request_defaults def;
    if (!defaults) {
        sdlk_serve_request_defaults_init(&def);
        defaults = &def;
    }
    memset(out, 0, sizeof *out);
    if (len > 0 && line[len - 1] == '\r')
        len--;
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: not JSON: %s (column %d)", where,
                              jerr.text, jerr.column);
    sdlk_status st;
    if (!json_is_object(obj))
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: not a JSON object", where);
    else
        st = parse_id(json_object_get(obj, "id"), where, out->id, err);
    if (st == SDLK_OK)
        st = parse_members(obj, where, defaults, out, err);
    json_decref(obj);
    if (st != SDLK_OK) {
        char id[SDLK_SERVE_ID_MAX];
        memcpy(id, out->id, sizeof id);
        sdlk_serve_request_clear(out);
        memcpy(out->id, id, sizeof id);
    }
    return st;
}
