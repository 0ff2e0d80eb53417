/* live.c -- the denoiser backend of sdl-serve (contract in live.h). */
#include "serve/live.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pool.h"
#include "core/timer.h"
#include "gen/canvas.h"
#include "gen/schedule.h"
#include "image/image.h"

#define MAX_WORKERS 64 /* tile workers per call (more than any machine we target) */

/* An untiled model instance for one canvas size. */
typedef struct canvas_model {
    int64_t h, w;
    sdlk_denoiser *d;
} canvas_model;

struct sdlk_serve_live {
    char *spec;
    char *out_dir;
    int threads, batch;
    int64_t stride[3];
    int64_t core[3];           /* the tiled model's core: what the grid cuts */
    sdlk_denoiser *tiled;
    int canvas_capable;        /* exemplar: can open an instance with any tile */
    canvas_model *canvas;
    size_t n_canvas, cap_canvas;
    sdlk_pool *pool;
    int64_t next_request;      /* model-side request ids */
    sdlk_cache_opts cache;     /* region cache of tiled requests (enabled 0: off) */
    double eta;                /* sampler stochasticity (sdlk_sampler_step_eta) */
};

/* Per-request state (job->state). */
typedef struct live_req {
    sdlk_canvas x;             /* the latent at the current step's level, [1, H, W, C] */
    sdlk_canvas next;          /* the cores stepped so far, at the next level: windows read
                                  their halos from x only, so every tile of a step sees the
                                  same state whatever call or worker computes it */
    int64_t step_done;         /* units of the current step written into next */
    sdlk_schedule sched;
    sdlk_denoiser *model;      /* where the request is opened */
    int64_t model_id;
    int cache_on;              /* tiled and the cache is enabled */
    sdlk_cache cache;          /* canvas-addressed history, one state per grid cell */
    sdlk_tile_grid grid;       /* the grid of step grid_step (set while expanding a
                                  call, before the workers run; read-only during it) */
    int grid_step;
} live_req;

const sdlk_denoiser_desc *sdlk_serve_live_desc(const sdlk_serve_live *l)
{
    return &l->tiled->desc;
}

void sdlk_serve_live_core(const sdlk_serve_live *l, int64_t core[3])
{
    memcpy(core, l->core, sizeof l->core);
}

void sdlk_serve_live_stride(const sdlk_serve_live *l, int64_t stride[3])
{
    memcpy(stride, l->stride, sizeof l->stride);
}

/* With a halo: shift by the halo (h) and twice it (w), different cycles per axis. A
 * model whose patch grid follows the window (the exemplar model with lattice=fixed,
 * halo = patch - stride) then keeps every core on one canvas-aligned grid, so tiled
 * equals untiled; with lattice=moving (sdl-serve's default) the grid is placed by
 * canvas position whatever the shift. Without a halo the default odd strides move the
 * borders. */
static void live_default_stride(const sdlk_denoiser_desc *desc, const int64_t core[3],
                                int64_t stride[3])
{
    if (desc->halo[1] > 0 && desc->halo[2] > 0) {
        stride[0] = 0;
        stride[1] = desc->halo[1] % core[1];
        stride[2] = (2 * desc->halo[2]) % core[2];
        return;
    }
    sdlk_serve_default_stride(core, stride);
}

sdlk_status sdlk_serve_live_create(const sdlk_serve_live_opts *o, sdlk_serve_live **out,
                                   sdlk_error *err)
{
    if (o->threads < 1 || o->batch < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "live backend: threads and batch must be >= 1");
    sdlk_serve_live *l = calloc(1, sizeof *l);
    if (!l)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    const char *spec = o->model ? o->model : "exemplar";
    l->canvas_capable = strncmp(spec, "exemplar", 8) == 0 && (spec[8] == '\0' || spec[8] == ':');
    if (l->canvas_capable) {
        /* The exemplar model serves with its patch grid moving every step (exemplar.h):
         * a fixed grid imprints a faint lattice that the tile borders then sit on (seam
         * metric 1.13 on the serve bench). Exact tiling of a moving grid needs a halo of
         * patch - 1 (7: windows of 78 for 64 cores); 4 (windows of 72, as the fixed
         * grid needs) has about 11 % fewer patches per tile and leaves every core
         * element covered, but by fewer patches near the border at some phases, which
         * the bench measures (image statistics within 2 % of untiled, no seams). A
         * spec's own "lattice=..." or "halo=..." comes later and wins. */
        size_t n = strlen(spec) + 32;
        if ((l->spec = malloc(n)) != NULL)
            snprintf(l->spec, n, "exemplar:lattice=moving,halo=4%s%s", spec[8] ? "," : "",
                     spec[8] ? spec + 9 : "");
    } else {
        l->spec = strdup(spec);
    }
    l->out_dir = strdup(o->out_dir ? o->out_dir : ".");
    l->threads = o->threads;
    l->batch = o->batch;
    l->eta = o->eta;
    sdlk_status st = l->spec && l->out_dir ? SDLK_OK
                                           : sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    if (st == SDLK_OK)
        st = sdlk_denoiser_open_spec(l->spec, NULL, 0, &l->tiled, err);
    if (st == SDLK_OK && l->tiled->desc.time != SDLK_TIME_VP &&
        l->tiled->desc.time != SDLK_TIME_FLOW)
        st = sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: unknown time kind", spec);
    if (st == SDLK_OK && l->tiled->desc.tile[0] != 1)
        st = sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: sdl-serve generates images; the "
                            "model's tile has %lld frames", spec,
                            (long long)l->tiled->desc.tile[0]);
    if (st == SDLK_OK && o->threads > 1 && !(l->pool = sdlk_pool_create(o->threads, err)))
        st = err ? err->code : SDLK_ERR_NOMEM;
    if (st != SDLK_OK) {
        sdlk_serve_live_destroy(l);
        return st;
    }
    sdlk_denoiser_core(&l->tiled->desc, l->core);
    if (st == SDLK_OK && (l->core[1] < 1 || l->core[2] < 1)) {
        sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: halo leaves no core of the tile", spec);
        sdlk_serve_live_destroy(l);
        return SDLK_ERR_UNSUPPORTED;
    }
    memcpy(l->stride, o->shift_stride, sizeof l->stride);
    if (!l->stride[0] && !l->stride[1] && !l->stride[2])
        live_default_stride(&l->tiled->desc, l->core, l->stride);
    l->cache = o->cache;
    *out = l;
    return SDLK_OK;
}

void sdlk_serve_live_destroy(sdlk_serve_live *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_canvas; i++)
        sdlk_denoiser_destroy(l->canvas[i].d);
    free(l->canvas);
    sdlk_denoiser_destroy(l->tiled);
    sdlk_pool_destroy(l->pool);
    free(l->spec);
    free(l->out_dir);
    free(l);
}

/* The untiled instance for an h x w canvas: the same exemplar options with the canvas
 * as native tile and room for `batch` canvases per call (later keys win in the spec). */
static sdlk_status canvas_model_get(sdlk_serve_live *l, int64_t h, int64_t w,
                                    sdlk_denoiser **out, sdlk_error *err)
{
    for (size_t i = 0; i < l->n_canvas; i++)
        if (l->canvas[i].h == h && l->canvas[i].w == w) {
            *out = l->canvas[i].d;
            return SDLK_OK;
        }
    if (l->n_canvas == l->cap_canvas) {
        size_t cap = l->cap_canvas ? 2 * l->cap_canvas : 8;
        canvas_model *c = realloc(l->canvas, cap * sizeof *c);
        if (!c)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        l->canvas = c;
        l->cap_canvas = cap;
    }
    size_t n = strlen(l->spec) + 96;
    char *spec = malloc(n);
    if (!spec)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    /* The whole canvas is one call: the instance gets the engine's threads for its patch
     * blocks, so untiled baselines use the same cores as tiled calls spread over tile
     * workers (a fair comparison). */
    snprintf(spec, n, "%s%stile=1x%lldx%lld,halo=0,batch=%d,threads=%d", l->spec,
             strchr(l->spec, ':') ? "," : ":", (long long)h, (long long)w,
             l->batch > 64 ? l->batch : 64, l->threads);
    sdlk_denoiser *d = NULL;
    sdlk_status st = sdlk_denoiser_open_spec(spec, NULL, 0, &d, err);
    free(spec);
    if (st != SDLK_OK)
        return st;
    l->canvas[l->n_canvas++] = (canvas_model){h, w, d};
    *out = d;
    return SDLK_OK;
}

/* ---- open: reference, model request, noise ------------------------------------- */

/* The reference as f32 [1, H, W, C] in [-1, 1] with the model's C (1 or 3). */
static sdlk_status load_reference(const char *path, int channels, const char *id,
                                  sdlk_canvas *ref, sdlk_error *err)
{
    sdlk_tensor img;
    sdlk_tensor_init(&img);
    sdlk_status st = sdlk_image_read(path, &img, NULL, err);
    if (st != SDLK_OK) {
        sdlk_error_prefix(err, "request %s: reference", id);
        return st;
    }
    if (channels != 1 && channels != 3) {
        sdlk_tensor_free(&img);
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "request %s: the model wants %d "
                              "channels; references give 1 or 3", id, channels);
    }
    int64_t h = img.shape[0], w = img.shape[1], c = img.shape[2];
    st = sdlk_canvas_alloc(ref, 1, h, w, channels, err);
    if (st == SDLK_OK) {
        double scale = img.dtype == SDLK_U16 ? 65535.0 : 255.0;
        int64_t color = c >= 3 ? 3 : 1; /* alpha (channel 1 of GA, 3 of RGBA) is dropped */
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                float rgb[3];
                for (int64_t k = 0; k < 3; k++) {
                    int64_t idx[3] = {y, x, color == 3 ? k : 0};
                    rgb[k] = (float)(sdlk_tensor_get(&img, idx) / scale * 2.0 - 1.0);
                }
                float *dst = ref->data + (y * w + x) * channels;
                if (channels == 3)
                    memcpy(dst, rgb, sizeof rgb);
                else
                    dst[0] = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
            }
    }
    sdlk_tensor_free(&img);
    return st;
}

/* A 128 x 128 reference of smooth random structure, for calibrating without a file. */
static sdlk_status synthetic_reference(int channels, sdlk_canvas *ref, sdlk_error *err)
{
    sdlk_status st = sdlk_canvas_alloc(ref, 1, 128, 128, channels, err);
    if (st != SDLK_OK)
        return st;
    int64_t n = sdlk_canvas_numel(ref);
    sdlk_gaussian_fill(99, 0, ref->data, n);
    for (int64_t i = 0; i < n; i++)
        ref->data[i] = tanhf(0.5f * ref->data[i]);
    return SDLK_OK;
}

static void live_close(void *ctx, sdlk_serve_job *job)
{
    live_req *r = job->state;
    if (!r)
        return;
    if (r->model)
        sdlk_denoiser_request_close(r->model, r->model_id);
    sdlk_canvas_free(&r->x);
    sdlk_canvas_free(&r->next);
    if (r->cache_on)
        sdlk_cache_free(&r->cache);
    free(r);
    job->state = NULL;
}

static sdlk_status live_open(void *ctx, sdlk_serve_job *job, sdlk_error *err)
{
    sdlk_serve_live *l = ctx;
    const sdlk_denoiser_desc *desc = &l->tiled->desc;
    live_req *r = calloc(1, sizeof *r);
    if (!r)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "request %s: out of memory", job->req.id);
    job->state = r;
    sdlk_canvas ref = {0};
    sdlk_status st = SDLK_OK;
    if (job->req.reference)
        st = load_reference(job->req.reference, desc->channels, job->req.id, &ref, err);
    else if (!job->req.prompt) /* calibration without a file: timing ignores content */
        st = synthetic_reference(desc->channels, &ref, err);
    sdlk_denoiser *model = l->tiled;
    if (st == SDLK_OK && job->canvas_mode && l->canvas_capable)
        st = canvas_model_get(l, job->req.height, job->req.width, &model, err);
    if (st == SDLK_OK) {
        sdlk_gen_request g = {.id = l->next_request++, .prompt = job->req.prompt,
                              .seed = job->req.seed};
        if (ref.data) {
            g.reference = ref.data;
            g.ref_shape[0] = 1;
            g.ref_shape[1] = ref.h;
            g.ref_shape[2] = ref.w;
            g.ref_shape[3] = ref.c;
        }
        st = sdlk_denoiser_request_open(model, &g, err);
        if (st == SDLK_OK) { /* from here on live_close must close it in the model */
            r->model = model;
            r->model_id = g.id;
        }
    }
    sdlk_canvas_free(&ref);
    if (st == SDLK_OK)
        st = sdlk_schedule_init(&r->sched, desc->time, job->req.steps, 1.0, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_alloc(&r->x, 1, job->req.height, job->req.width, desc->channels, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_alloc(&r->next, 1, job->req.height, job->req.width, desc->channels,
                               err);
    if (st == SDLK_OK)
        sdlk_gaussian_fill(job->req.seed, 0, r->x.data, sdlk_canvas_numel(&r->x));
    r->grid_step = -1;
    /* the cache addresses the canvas by the tiled grid's cells; an untiled request has
     * no cells (it is one prediction per step) */
    if (st == SDLK_OK && l->cache.enabled && model == l->tiled && !job->canvas_mode) {
        st = sdlk_cache_init(&r->cache, &l->cache, 1, job->req.height, job->req.width,
                             desc->channels, job->tiles, err);
        r->cache_on = st == SDLK_OK;
    }
    if (st != SDLK_OK) {
        if (err && !strstr(err->msg, job->req.id))
            sdlk_error_prefix(err, "request %s", job->req.id);
        live_close(ctx, job);
    }
    return st;
}

/* ---- run: tiles through the model --------------------------------------------- */

/* One prediction: a tile (or a whole canvas) of one request at one step. */
typedef struct unit {
    sdlk_serve_job *job;
    int step;
    int64_t origin[2];      /* h, w of the tile's first element (wraps) */
    int64_t size[2];        /* tile h, w (the canvas for an untiled unit) */
    sdlk_denoiser *model;
    int64_t tile;           /* index in the job's grid of this step (-1: untiled) */
    int item;               /* the call's item it came from */
    int skipped;            /* answered from the region cache */
} unit;

/* Copy a tile out of (into, when `back`) the canvas, wrapping at the edges as often as
 * needed: a window (core plus halo) may be wider than a small canvas. */
static void tile_copy(const sdlk_canvas *x, const unit *u, float *tile, int back)
{
    int64_t c = x->c, H = x->h, W = x->w;
    for (int64_t r = 0; r < u->size[0]; r++) {
        float *row = x->data + ((u->origin[0] + r) % H) * W * c;
        float *t = tile + r * u->size[1] * c;
        for (int64_t done = 0, col = u->origin[1] % W; done < u->size[1]; col = 0) {
            int64_t len = W - col < u->size[1] - done ? W - col : u->size[1] - done;
            if (back)
                memcpy(row + col * c, t + done * c, (size_t)(len * c) * sizeof *t);
            else
                memcpy(t + done * c, row + col * c, (size_t)(len * c) * sizeof *t);
            done += len;
        }
    }
}

/* The standard normal noise of a step at the tile's canvas positions (wrapping like
 * tile_copy): element (y, x, ch) of the canvas is draw y*W*C + x*C + ch of the step's
 * own stream, so any cut of the canvas into tiles draws the same noise. */
static void noise_fill(const sdlk_canvas *x, const unit *u, float *tile)
{
    int64_t c = x->c, H = x->h, W = x->w;
    uint64_t stream = u->job->req.seed * UINT64_C(0x9e3779b97f4a7c15) + (uint64_t)u->step + 1;
    for (int64_t r = 0; r < u->size[0]; r++) {
        int64_t row = (u->origin[0] + r) % H;
        float *t = tile + r * u->size[1] * c;
        for (int64_t done = 0, col = u->origin[1] % W; done < u->size[1]; col = 0) {
            int64_t len = W - col < u->size[1] - done ? W - col : u->size[1] - done;
            sdlk_gaussian_fill(stream, (uint64_t)((row * W + col) * c), t + done * c, len * c);
            done += len;
        }
    }
}

/* Step a unit's core from its level to the next, in place: deterministic DDIM, or with
 * eta > 0 the stochastic step with noise drawn at the core's canvas positions (`noise`
 * is scratch of the core's size). */
static void step_core(const sdlk_serve_live *l, const unit *u, float *xc, const float *pc,
                      float *noise)
{
    const sdlk_denoiser_desc *desc = &u->model->desc;
    live_req *r = u->job->state;
    int64_t n = u->size[0] * u->size[1] * desc->channels;
    double level = r->sched.level[u->step], next = r->sched.level[u->step + 1];
    if (l->eta > 0.0) {
        noise_fill(&r->x, u, noise);
        sdlk_sampler_step_eta(desc->time, desc->pred, level, next, l->eta, xc, pc, noise, xc, n);
    } else {
        sdlk_sampler_step(desc->time, desc->pred, level, next, xc, pc, xc, n);
    }
}

typedef struct run_ctx {
    sdlk_serve_live *l;
    unit *units;
    int64_t n;
    int64_t per_worker;
    sdlk_error errs[MAX_WORKERS];
    sdlk_status st[MAX_WORKERS];
} run_ctx;

/* The core of a window (rows and columns inside the halo) into a contiguous buffer. */
static void core_of(const float *window, const int64_t win[2], const int64_t halo[2],
                    const int64_t core[2], int64_t c, float *out)
{
    for (int64_t r = 0; r < core[0]; r++)
        memcpy(out + r * core[1] * c, window + ((r + halo[0]) * win[1] + halo[1]) * c,
               (size_t)(core[1] * c) * sizeof *out);
}

/* Predict and step n units that share one model, in one call: each unit's window
 * (core plus the model's halo, wrapping around the canvas) is extracted and predicted;
 * the DDIM step runs on the core only, which is written back. With the region cache a
 * unit's core is first shown to the cache; a skipped unit is stepped from the cache's
 * estimate and never reaches the model. */
static sdlk_status run_group(sdlk_serve_live *l, unit *u, int64_t n, sdlk_error *err)
{
    const sdlk_denoiser_desc *desc = &u[0].model->desc;
    int64_t c = desc->channels, win[2] = {desc->tile[1], desc->tile[2]};
    int64_t halo[2] = {desc->halo[1], desc->halo[2]};
    int64_t numel = win[0] * win[1] * c, core_numel = u[0].size[0] * u[0].size[1] * c;
    float *buf = malloc((size_t)(2 * n * numel + 3 * core_numel) * sizeof *buf);
    sdlk_denoise_item *items = calloc((size_t)n, sizeof *items);
    int64_t *which = malloc((size_t)n * sizeof *which); /* model item -> unit */
    if (!buf || !items || !which) {
        free(buf);
        free(items);
        free(which);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for a call of %lld tiles",
                              (long long)n);
    }
    float *xc = buf + 2 * n * numel, *pc = xc + core_numel, *noise = pc + core_numel;
    int64_t m = 0; /* units that go to the model */
    for (int64_t i = 0; i < n; i++) {
        live_req *r = u[i].job->state;
        if (r->cache_on && u[i].tile >= 0) {
            sdlk_cache_decision dec;
            sdlk_torus_read(&r->x, &r->grid, u[i].tile, xc);
            sdlk_cache_decide(&r->cache, &r->grid, u[i].tile, xc, u[i].step,
                              r->sched.steps, &dec);
            if (!dec.compute) {
                sdlk_cache_skip_output(&r->cache, &r->grid, u[i].tile, xc, pc);
                step_core(l, &u[i], xc, pc, noise);
                tile_copy(&r->next, &u[i], xc, 1);
                u[i].skipped = 1;
                continue;
            }
        }
        float *x = buf + 2 * m * numel;
        unit w = u[i]; /* the window: the core moved back by the halo, wrapped */
        w.origin[0] = ((u[i].origin[0] - halo[0]) % r->x.h + r->x.h) % r->x.h;
        w.origin[1] = ((u[i].origin[1] - halo[1]) % r->x.w + r->x.w) % r->x.w;
        w.size[0] = win[0];
        w.size[1] = win[1];
        tile_copy(&r->x, &w, x, 0);
        items[m] = (sdlk_denoise_item){.request = r->model_id, .tile_id = m,
                                       .step = u[i].step,
                                       .timestep = r->sched.timestep[u[i].step],
                                       .level = r->sched.level[u[i].step],
                                       .offset = {0, w.origin[0], w.origin[1]},
                                       .x = x, .out = x + numel};
        which[m++] = i;
    }
    sdlk_status st = m > 0 ? sdlk_denoiser_predict(u[0].model, items, (int)m, err) : SDLK_OK;
    for (int64_t k = 0; k < m && st == SDLK_OK; k++) {
        const unit *ui = &u[which[k]];
        live_req *r = ui->job->state;
        float *x = buf + 2 * k * numel;
        core_of(x, win, halo, ui->size, c, xc);
        core_of(x + numel, win, halo, ui->size, c, pc);
        if (r->cache_on && ui->tile >= 0) /* the core's input and prediction */
            sdlk_cache_record(&r->cache, &r->grid, ui->tile, xc, pc);
        step_core(l, ui, xc, pc, noise);
        tile_copy(&r->next, ui, xc, 1);
    }
    if (st != SDLK_OK)
        sdlk_error_prefix(err, "request %s, step %d", u[0].job->req.id, u[0].step);
    free(buf);
    free(items);
    free(which);
    return st;
}

/* A worker's share: consecutive units with the same model and size form calls of at
 * most the model's max_batch. */
static void run_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    run_ctx *c = ctx;
    for (int64_t w = begin; w < end; w++) {
        int64_t lo = w * c->per_worker, hi = lo + c->per_worker < c->n ? lo + c->per_worker : c->n;
        while (lo < hi && c->st[w] == SDLK_OK) {
            int64_t k = lo + 1;
            while (k < hi && k - lo < c->units[lo].model->desc.max_batch &&
                   c->units[k].model == c->units[lo].model &&
                   c->units[k].size[0] == c->units[lo].size[0] &&
                   c->units[k].size[1] == c->units[lo].size[1])
                k++;
            c->st[w] = run_group(c->l, c->units + lo, k - lo, &c->errs[w]);
            lo = k;
        }
    }
}

/* Expand the call's items into model units (an untiled item of a model that cannot
 * change its tile becomes every tile of its step grid). */
static sdlk_status expand(sdlk_serve_live *l, const sdlk_serve_batch *b, unit **out,
                          int64_t *count, sdlk_error *err)
{
    int64_t n = 0;
    for (int i = 0; i < b->n; i++) {
        live_req *r = b->items[i].job->state;
        n += b->items[i].tile < 0 && r->model == l->tiled ? b->items[i].job->tiles : 1;
    }
    unit *u = malloc((size_t)(n ? n : 1) * sizeof *u);
    if (!u)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    int64_t k = 0;
    for (int i = 0; i < b->n; i++) {
        const sdlk_serve_item *it = &b->items[i];
        live_req *r = it->job->state;
        if (it->tile < 0 && r->model != l->tiled) {
            u[k++] = (unit){it->job, it->step, {0, 0}, {it->job->req.height,
                            it->job->req.width}, r->model, -1, i, 0};
            continue;
        }
        if (r->grid_step != it->step) { /* once per request and call: one step each */
            sdlk_status st = sdlk_serve_job_grid(it->job, it->step, l->stride, &r->grid, err);
            if (st != SDLK_OK) {
                free(u);
                return st;
            }
            r->grid_step = it->step;
        }
        int64_t first = it->tile < 0 ? 0 : it->tile;
        int64_t last = it->tile < 0 ? sdlk_tile_grid_count(&r->grid) : it->tile + 1;
        for (int64_t t = first; t < last; t++) {
            sdlk_tile_rect rect;
            sdlk_tile_grid_rect(&r->grid, t, &rect);
            /* the cache's cells are the tiled items; an untiled item run as tiles (a
             * model that cannot change its tile) is computed whole */
            u[k++] = (unit){it->job, it->step, {rect.origin[1], rect.origin[2]},
                            {rect.size[1], rect.size[2]}, l->tiled, it->tile < 0 ? -1 : t,
                            i, 0};
        }
    }
    *out = u;
    *count = k;
    return SDLK_OK;
}

/* Count the units written; a request whose step is complete (all its tiles, or its
 * canvas) swaps x and next: the stepped canvas becomes the input of the next step. */
static void finish_steps(sdlk_serve_live *l, const unit *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        ((live_req *)u[i].job->state)->step_done++;
    for (int64_t i = 0; i < n; i++) {
        live_req *r = u[i].job->state;
        int64_t per_step = r->model == l->tiled ? u[i].job->tiles : 1;
        if (r->step_done == per_step) {
            if (r->cache_on) /* end of the step: in_prev valid, thresholds retuned */
                sdlk_cache_retune(&r->cache, u[i].step);
            sdlk_canvas t = r->x;
            r->x = r->next;
            r->next = t;
            r->step_done = 0;
        }
    }
}

static sdlk_status live_run(void *ctx, sdlk_serve_batch *b, sdlk_error *err)
{
    sdlk_serve_live *l = ctx;
    run_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    sdlk_status st = expand(l, b, &c->units, &c->n, err);
    if (st != SDLK_OK) {
        free(c);
        return st;
    }
    c->l = l;
    int workers = l->threads < MAX_WORKERS ? l->threads
                                                            : MAX_WORKERS;
    if (workers > c->n)
        workers = (int)(c->n > 0 ? c->n : 1);
    c->per_worker = (c->n + workers - 1) / workers;
    if (c->per_worker < 1)
        c->per_worker = 1;
    sdlk_pool_for(workers > 1 ? l->pool : NULL, workers, 1, run_range, c);
    for (int w = 0; w < workers && st == SDLK_OK; w++)
        if (c->st[w] != SDLK_OK)
            st = sdlk_error_set(err, c->st[w], "%s", c->errs[w].msg);
    if (st == SDLK_OK) {
        for (int64_t i = 0; i < c->n; i++) /* tiled items are one unit each */
            if (c->units[i].skipped)
                b->items[c->units[i].item].skipped = 1;
        finish_steps(l, c->units, c->n);
    }
    free(c->units);
    free(c);
    return st;
}

/* ---- finish: the PNG ------------------------------------------------------------ */

static sdlk_status write_png(const live_req *r, const char *path, sdlk_error *err)
{
    sdlk_tensor img;
    sdlk_tensor_init(&img);
    sdlk_status st = sdlk_canvas_frame_to_u8(&r->x, 0, 0, 0, &img, err);
    if (st == SDLK_OK)
        st = sdlk_image_write(path, &img, NULL, err);
    sdlk_tensor_free(&img);
    return st;
}

static sdlk_status live_finish(void *ctx, sdlk_serve_job *job, char *path, size_t cap,
                               sdlk_error *err)
{
    sdlk_serve_live *l = ctx;
    if ((size_t)snprintf(path, cap, "%s/%s.png", l->out_dir, job->req.id) >= cap)
        return sdlk_error_set(err, SDLK_ERR_ARG, "request %s: output path too long", job->req.id);
    sdlk_status st = write_png(job->state, path, err);
    if (st != SDLK_OK) {
        sdlk_error_prefix(err, "request %s", job->req.id);
        path[0] = '\0';
    }
    return st;
}

void sdlk_serve_live_backend(sdlk_serve_live *l, sdlk_serve_backend *b)
{
    b->ctx = l;
    b->open = live_open;
    b->run = live_run;
    b->finish = live_finish;
    b->close = live_close;
}

/* ---- calibration ---------------------------------------------------------------- */

/* A stand-alone job for calibration (not in any store). */
static void calib_job(sdlk_serve_job *job, const char *reference, int64_t h, int64_t w,
                      const int64_t tile[3], int canvas_mode, int steps)
{
    memset(job, 0, sizeof *job);
    snprintf(job->req.id, sizeof job->req.id, "calibrate-%lldx%lld", (long long)h, (long long)w);
    job->req.reference = (char *)reference;
    job->req.height = h;
    job->req.width = w;
    job->req.steps = steps;
    job->req.seed = 7;
    memcpy(job->tile, tile, sizeof job->tile);
    job->tiles = (h / tile[1]) * (w / tile[2]);
    job->canvas_mode = canvas_mode;
}

#define CALIBRATE_MAX_REPS 64

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One timed call of n items of `job` (tiles 0..n-1 of step 1, or its canvas). */
static sdlk_status time_call(sdlk_serve_live *l, sdlk_serve_job *job, int n, double *ms,
                             sdlk_error *err)
{
    sdlk_serve_item items[1024];
    sdlk_serve_batch b = {.items = items, .n = n, .cap = 1024, .canvas = job->canvas_mode,
                          .work = job->canvas_mode ? (double)job->tiles : n};
    for (int i = 0; i < n; i++)
        items[i] = (sdlk_serve_item){job, 1, job->canvas_mode ? -1 : i, 0};
    uint64_t t0 = sdlk_now_ns();
    sdlk_status st = live_run(l, &b, err);
    *ms = sdlk_seconds_since(t0) * 1e3;
    return st;
}

/* What calibration times: n items of a job, `reps` times. */
typedef struct cal_config {
    sdlk_serve_job *job;
    int n;
    double ms[CALIBRATE_MAX_REPS];
} cal_config;

#define CAL_JOBS 5    /* the tiled job and untiled canvases of 1, 2, 4, 8 tiles a side */
#define CAL_CONFIGS 8 /* up to 4 tiled call sizes and 4 untiled canvases */

/* Time every configuration `reps` times, interleaved (round r starts at configuration
 * r), so that a burst of other work on a shared machine hits all sizes and both kinds
 * alike instead of one fit; keep each configuration's median. */
static sdlk_status time_configs(sdlk_serve_live *l, cal_config *c, int nc, int reps,
                                sdlk_serve_profile *out, sdlk_error *err)
{
    double warm;
    sdlk_status st = SDLK_OK;
    for (int k = 0; k < nc && st == SDLK_OK; k++) /* warm-up: caches, first-touch pages */
        st = time_call(l, c[k].job, c[k].n, &warm, err);
    for (int r = 0; r < reps && st == SDLK_OK; r++)
        for (int i = 0; i < nc && st == SDLK_OK; i++) {
            cal_config *k = &c[(r + i) % nc];
            st = time_call(l, k->job, k->n, &k->ms[r], err);
        }
    for (int k = 0; k < nc && st == SDLK_OK; k++) {
        qsort(c[k].ms, (size_t)reps, sizeof c[k].ms[0], cmp_double);
        double median = reps % 2 ? c[k].ms[reps / 2]
                                 : 0.5 * (c[k].ms[reps / 2 - 1] + c[k].ms[reps / 2]);
        sdlk_serve_profile_add_sample(out, c[k].job->canvas_mode,
                                      c[k].job->canvas_mode ? (double)c[k].job->tiles : c[k].n,
                                      median);
    }
    return st;
}

/* Median time of `reps` PNG writes of the job's canvas, per megapixel. */
static sdlk_status time_writes(sdlk_serve_live *l, sdlk_serve_job *job, int reps,
                               double *ms_per_mpx, sdlk_error *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/.sdl-serve-calibrate-%d.png", l->out_dir, (int)getpid());
    double ms[CALIBRATE_MAX_REPS];
    sdlk_status st = SDLK_OK;
    for (int r = 0; r < reps && st == SDLK_OK; r++) {
        uint64_t t0 = sdlk_now_ns();
        st = write_png(job->state, path, err);
        ms[r] = sdlk_seconds_since(t0) * 1e3;
    }
    unlink(path);
    if (st == SDLK_OK) {
        qsort(ms, (size_t)reps, sizeof ms[0], cmp_double);
        *ms_per_mpx = ms[reps / 2] / ((double)job->req.height * job->req.width * 1e-6);
    }
    return st;
}

sdlk_status sdlk_serve_live_calibrate(sdlk_serve_live *l, const char *reference, int reps,
                                      sdlk_serve_profile *out, sdlk_error *err)
{
    const int64_t *core = l->core;
    int B = l->batch > 1024 ? 1024 : l->batch;
    reps = reps < 1 ? 1 : reps > CALIBRATE_MAX_REPS ? CALIBRATE_MAX_REPS : reps;
    sdlk_serve_profile_init(out, core, l->batch);
    snprintf(out->model, sizeof out->model, "%s", l->spec);
    int side = 1; /* a square canvas of side x side tiles holds at least B tiles */
    while (side * side < B)
        side++;
    sdlk_serve_job jobs[CAL_JOBS];
    cal_config *c = calloc(CAL_CONFIGS, sizeof *c);
    if (!c)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    int nj = 0, nc = 0;
    double open_ms = 0;
    sdlk_status st = SDLK_OK;
    /* Untiled canvases of 1, 2, 4 and 8 tiles a side: a canvas of a few tiles cannot
     * spread its patch blocks over the cores, so a line fitted to canvases of 1..4 tiles
     * a side charged untiled calls 13-35 % more per tile than the 512^2 and larger
     * canvases of a serving mix cost (on 2 cores a 512^2 request's untiled steps run as
     * fast as its tiled ones). */
    for (int s = 0; s <= 4 && st == SDLK_OK; s++) {
        sdlk_serve_job *j = &jobs[nj];
        if (s == 0) { /* the tiled job */
            calib_job(j, reference, side * core[1], side * core[2], core, 0, 2);
        } else {
            int canvas_side = 1 << (s - 1);
            calib_job(j, reference, canvas_side * core[1], canvas_side * core[2], core, 1, 2);
        }
        uint64_t t0 = sdlk_now_ns();
        st = live_open(l, j, err);
        open_ms += sdlk_seconds_since(t0) * 1e3;
        if (st != SDLK_OK)
            break;
        nj++;
        if (s > 0) {
            c[nc++] = (cal_config){.job = j, .n = 1};
            continue;
        }
        const int sizes[4] = {1, B / 4, B / 2, B};
        for (int i = 0; i < 4; i++)
            if (sizes[i] >= 1 && (i == 0 || sizes[i] != sizes[i - 1]))
                c[nc++] = (cal_config){.job = j, .n = sizes[i]};
    }
    if (st == SDLK_OK)
        st = time_configs(l, c, nc, reps, out, err);
    if (st == SDLK_OK && nj > 2) /* the 2 x 2 tile canvas */
        st = time_writes(l, &jobs[2], reps, &out->finish_b_ms_per_mpx, err);
    for (int j = 0; j < nj; j++)
        live_close(l, &jobs[j]);
    free(c);
    if (st != SDLK_OK)
        return st;
    out->open_ms = open_ms / nj;
    sdlk_serve_profile_fit(out);
    return SDLK_OK;
}
