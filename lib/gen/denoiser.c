/* denoiser.c -- checked wrappers over the denoiser ops, and building a denoiser from a
 * command-line spec (see denoiser.h). */
#include "gen/denoiser.h"

#include <string.h>

#include "gen/exec.h"
#include "gen/exemplar.h"

sdlk_status sdlk_denoiser_request_open(sdlk_denoiser *d, const sdlk_gen_request *req,
                                       sdlk_error *err)
{
    if (!d || !req)
        return sdlk_error_set(err, SDLK_ERR_ARG, "denoiser: open needs a denoiser and a request");
    return d->ops->open(d, req, err);
}

void sdlk_denoiser_request_close(sdlk_denoiser *d, int64_t request)
{
    if (d)
        d->ops->close(d, request);
}

sdlk_status sdlk_denoiser_predict(sdlk_denoiser *d, const sdlk_denoise_item *items, int n,
                                  sdlk_error *err)
{
    if (!d)
        return sdlk_error_set(err, SDLK_ERR_ARG, "denoiser: predict without a denoiser");
    if (n < 0 || n > d->desc.max_batch)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "denoiser %s: batch of %d items, must be 0 to %d (max batch)",
                              d->desc.name, n, d->desc.max_batch);
    if (n == 0)
        return SDLK_OK;
    if (!items)
        return sdlk_error_set(err, SDLK_ERR_ARG, "denoiser %s: predict without items",
                              d->desc.name);
    for (int i = 0; i < n; i++)
        if (!items[i].x || !items[i].out)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "denoiser %s: item %d (tile %lld) has no %s buffer",
                                  d->desc.name, i, (long long)items[i].tile_id,
                                  items[i].x ? "output" : "input");
    return d->ops->predict(d, items, n, err);
}

void sdlk_denoiser_destroy(sdlk_denoiser *d)
{
    if (d)
        d->ops->destroy(d);
}

int64_t sdlk_denoiser_tile_numel(const sdlk_denoiser_desc *desc)
{
    return desc->tile[0] * desc->tile[1] * desc->tile[2] * (int64_t)desc->channels;
}

void sdlk_denoiser_core(const sdlk_denoiser_desc *desc, int64_t core[3])
{
    for (int a = 0; a < 3; a++)
        core[a] = desc->tile[a] - 2 * desc->halo[a];
}

/* ---- specs ------------------------------------------------------------------------ */

static sdlk_status open_exemplar(const char *options, int64_t tile_hw, sdlk_denoiser **out,
                                 sdlk_error *err)
{
    sdlk_exemplar_opts opts;
    sdlk_exemplar_opts_init(&opts);
    sdlk_status st = sdlk_exemplar_opts_parse(&opts, options, err);
    if (st)
        return st;
    if (tile_hw > 0) {
        opts.tile[1] = tile_hw;
        opts.tile[2] = tile_hw;
    }
    return sdlk_exemplar_create(&opts, out, err);
}

static sdlk_status open_exec(const char *command, const char *devices, sdlk_denoiser **out,
                             sdlk_error *err)
{
    if (!*command)
        return sdlk_error_set(err, SDLK_ERR_ARG, "denoiser spec \"exec:\": no command given");
    sdlk_exec_opts opts;
    sdlk_exec_opts_init(&opts);
    return sdlk_exec_create(command, devices, &opts, out, err);
}

sdlk_status sdlk_denoiser_open_spec(const char *spec, const char *devices, int64_t tile_hw,
                                    sdlk_denoiser **out, sdlk_error *err)
{
    *out = NULL;
    if (!spec)
        return sdlk_error_set(err, SDLK_ERR_ARG, "denoiser spec: none given");
    if (strcmp(spec, "exemplar") == 0)
        return open_exemplar(NULL, tile_hw, out, err);
    if (strncmp(spec, "exemplar:", 9) == 0)
        return open_exemplar(spec + 9, tile_hw, out, err);
    if (strncmp(spec, "exec:", 5) == 0)
        return open_exec(spec + 5, devices, out, err);
    return sdlk_error_set(err, SDLK_ERR_ARG,
                          "denoiser spec \"%s\": expected \"exemplar\", "
                          "\"exemplar:key=value,...\" or \"exec:COMMAND\"",
                          spec);
}

/* ---- prediction kinds ------------------------------------------------------------- */

static const char *const pred_names[] = {"eps", "x0", "v", "flow"};

const char *sdlk_pred_type_name(sdlk_pred_type p)
{
    if ((int)p < 0 || (size_t)p >= sizeof pred_names / sizeof pred_names[0])
        return "unknown";
    return pred_names[p];
}

int sdlk_pred_type_parse(const char *s, sdlk_pred_type *out)
{
    for (size_t i = 0; s && i < sizeof pred_names / sizeof pred_names[0]; i++)
        if (strcmp(s, pred_names[i]) == 0) {
            *out = (sdlk_pred_type)i;
            return 0;
        }
    return -1;
}
