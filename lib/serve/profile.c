/* profile.c -- latency profiles: fits, JSON file, derived costs (contract in profile.h). */
#include "serve/profile.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"

void sdlk_serve_profile_init(sdlk_serve_profile *p, const int64_t tile[3], int max_batch)
{
    memset(p, 0, sizeof *p);
    for (int a = 0; a < 3; a++)
        p->tile[a] = tile[a];
    p->max_batch = max_batch;
}

void sdlk_serve_profile_add_sample(sdlk_serve_profile *p, int canvas, double work, double ms)
{
    if (p->n_samples < SDLK_SERVE_PROFILE_SAMPLES)
        p->samples[p->n_samples++] = (sdlk_serve_sample){canvas, work, ms};
}

/* Least squares over the samples of one kind; see the header for the fallbacks. */
static void fit_kind(const sdlk_serve_profile *p, int canvas, double *a, double *b)
{
    double s0 = 0, s1 = 0, s2 = 0, sy = 0, sxy = 0;
    for (int i = 0; i < p->n_samples; i++) {
        const sdlk_serve_sample *s = &p->samples[i];
        if (s->canvas != canvas || !(s->work > 0))
            continue;
        s0 += 1;
        s1 += s->work;
        s2 += s->work * s->work;
        sy += s->ms;
        sxy += s->work * s->ms;
    }
    if (s0 == 0)
        return;
    double det = s0 * s2 - s1 * s1;
    if (det > 1e-9 * s0 * s2) {
        *b = (s0 * sxy - s1 * sy) / det;
        *a = (sy - *b * s1) / s0;
        if (*a >= 0 && *b >= 0)
            return;
    }
    *a = 0;
    *b = s2 > 0 ? sxy / s2 : 0; /* through the origin */
}

void sdlk_serve_profile_fit(sdlk_serve_profile *p)
{
    fit_kind(p, 0, &p->tiled_a_ms, &p->tiled_b_ms);
    fit_kind(p, 1, &p->canvas_a_ms, &p->canvas_b_ms);
}

double sdlk_serve_profile_tiled_ms(const sdlk_serve_profile *p, double n)
{
    return n > 0 ? p->tiled_a_ms + p->tiled_b_ms * n : 0.0;
}

double sdlk_serve_profile_tiled_spread(const sdlk_serve_profile *p)
{
    double sum = 0;
    int n = 0;
    for (int i = 0; i < p->n_samples; i++) {
        const sdlk_serve_sample *x = &p->samples[i];
        double fit = sdlk_serve_profile_tiled_ms(p, x->work);
        if (x->canvas || !(fit > 0))
            continue;
        sum += (x->ms / fit - 1) * (x->ms / fit - 1);
        n++;
    }
    return n ? sqrt(sum / n) : 0.0;
}

double sdlk_serve_profile_canvas_ms(const sdlk_serve_profile *p, double w)
{
    return w > 0 ? p->canvas_a_ms + p->canvas_b_ms * w : 0.0;
}

double sdlk_serve_profile_finish_ms(const sdlk_serve_profile *p, int64_t h, int64_t w)
{
    return p->finish_a_ms + p->finish_b_ms_per_mpx * (double)h * (double)w * 1e-6;
}

double sdlk_serve_profile_standalone_ms(const sdlk_serve_profile *p, int64_t tiles, int steps,
                                        int batch, int64_t h, int64_t w)
{
    int64_t full = tiles / batch, rest = tiles % batch;
    double per_step = (double)full * sdlk_serve_profile_tiled_ms(p, batch) +
                      sdlk_serve_profile_tiled_ms(p, (double)rest);
    return p->open_ms + steps * per_step + sdlk_serve_profile_finish_ms(p, h, w);
}

/* ---- file ----------------------------------------------------------------------- */

static json_t *line_obj(const char *k1, double v1, const char *k2, double v2)
{
    json_t *o = json_object();
    json_object_set_new(o, k1, json_real(v1));
    json_object_set_new(o, k2, json_real(v2));
    return o;
}

sdlk_status sdlk_serve_profile_write(const char *path, const sdlk_serve_profile *p,
                                     sdlk_error *err)
{
    json_t *root = json_object();
    json_t *samples = json_array();
    if (!root || !samples) {
        json_decref(root);
        json_decref(samples);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    }
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "model", json_string(p->model));
    json_object_set_new(root, "tile", json_pack("[III]", (json_int_t)p->tile[0],
                                                (json_int_t)p->tile[1], (json_int_t)p->tile[2]));
    json_object_set_new(root, "max_batch", json_integer(p->max_batch));
    json_object_set_new(root, "tiled", line_obj("a_ms", p->tiled_a_ms, "b_ms", p->tiled_b_ms));
    json_object_set_new(root, "canvas", line_obj("a_ms", p->canvas_a_ms, "b_ms", p->canvas_b_ms));
    json_object_set_new(root, "open_ms", json_real(p->open_ms));
    json_object_set_new(root, "finish", line_obj("a_ms", p->finish_a_ms, "b_ms_per_mpx",
                                                 p->finish_b_ms_per_mpx));
    for (int i = 0; i < p->n_samples; i++)
        json_array_append_new(samples, json_pack("{s:s,s:f,s:f}", "kind",
                                                 p->samples[i].canvas ? "canvas" : "tiled",
                                                 "work", p->samples[i].work, "ms",
                                                 p->samples[i].ms));
    json_object_set_new(root, "samples", samples);
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (!text)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    text[n] = '\n'; /* json_dumps leaves room only for the NUL: rewrite it as newline */
    sdlk_status st = sdlk_write_file(path, text, n + 1, err);
    free(text);
    return st;
}

static sdlk_status need_number(json_t *obj, const char *key, const char *path,
                               const char *where, double *out, sdlk_error *err)
{
    json_t *v = json_object_get(obj, key);
    double x = v && json_is_number(v) ? json_number_value(v) : NAN;
    if (!isfinite(x) || x < 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s\"%s\" must be a finite number >= 0",
                              path, where, key);
    *out = x;
    return SDLK_OK;
}

static sdlk_status need_line(json_t *root, const char *key, const char *k2, const char *path,
                             double *a, double *b, sdlk_error *err)
{
    json_t *o = json_object_get(root, key);
    char where[64];
    snprintf(where, sizeof where, "\"%s\": ", key);
    if (!json_is_object(o))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: missing object \"%s\"", path, key);
    sdlk_status st = need_number(o, "a_ms", path, where, a, err);
    return st == SDLK_OK ? need_number(o, k2, path, where, b, err) : st;
}

static sdlk_status read_samples(json_t *root, const char *path, sdlk_serve_profile *p,
                                sdlk_error *err)
{
    json_t *arr = json_object_get(root, "samples");
    if (!arr)
        return SDLK_OK;
    if (!json_is_array(arr))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: \"samples\" must be an array", path);
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s) {
        const char *kind = json_string_value(json_object_get(s, "kind"));
        double work, ms;
        if (!kind || (strcmp(kind, "tiled") && strcmp(kind, "canvas")))
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: samples[%zu]: \"kind\" must be "
                                  "\"tiled\" or \"canvas\"", path, i);
        if (need_number(s, "work", path, "samples: ", &work, err) != SDLK_OK ||
            need_number(s, "ms", path, "samples: ", &ms, err) != SDLK_OK)
            return err ? err->code : SDLK_ERR_FORMAT;
        sdlk_serve_profile_add_sample(p, strcmp(kind, "canvas") == 0, work, ms);
    }
    return SDLK_OK;
}

static sdlk_status read_root(json_t *root, const char *path, sdlk_serve_profile *p,
                             sdlk_error *err)
{
    if (!json_is_object(root))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: not a JSON object", path);
    if (json_integer_value(json_object_get(root, "version")) != 1)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: \"version\" must be 1", path);
    json_t *tile = json_object_get(root, "tile");
    int64_t t[3];
    for (int a = 0; a < 3; a++) {
        json_t *v = json_array_get(tile, (size_t)a);
        t[a] = json_is_integer(v) ? json_integer_value(v) : 0;
        if (t[a] < 1 || t[a] > SDLK_SERVE_PROFILE_MAX_TILE)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: \"tile\" must be [t, h, w] of "
                                  "integers from 1 to %d", path, SDLK_SERVE_PROFILE_MAX_TILE);
    }
    json_t *mb = json_object_get(root, "max_batch");
    if (!json_is_integer(mb) || json_integer_value(mb) < 1 || json_integer_value(mb) > 1 << 20)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: \"max_batch\" must be a positive "
                              "integer", path);
    sdlk_serve_profile_init(p, t, (int)json_integer_value(mb));
    const char *model = json_string_value(json_object_get(root, "model"));
    snprintf(p->model, sizeof p->model, "%s", model ? model : "");
    sdlk_status st = need_line(root, "tiled", "b_ms", path, &p->tiled_a_ms, &p->tiled_b_ms, err);
    if (st == SDLK_OK)
        st = need_line(root, "canvas", "b_ms", path, &p->canvas_a_ms, &p->canvas_b_ms, err);
    if (st == SDLK_OK)
        st = need_line(root, "finish", "b_ms_per_mpx", path, &p->finish_a_ms,
                       &p->finish_b_ms_per_mpx, err);
    if (st == SDLK_OK)
        st = need_number(root, "open_ms", path, "", &p->open_ms, err);
    if (st == SDLK_OK)
        st = read_samples(root, path, p, err);
    return st;
}

sdlk_status sdlk_serve_profile_read(const char *path, sdlk_serve_profile *p, sdlk_error *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: not a profile: %s (line %d)", path,
                              jerr.text, jerr.line);
    sdlk_status st = read_root(root, path, p, err);
    json_decref(root);
    return st;
}
