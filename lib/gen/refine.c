/* refine.c -- the tiled refinement engine of sdl-supergen (see refine.h).
 *
 * One step runs in four phases, with the coordinator (the calling thread) between the
 * two parallel ones:
 *   A. decide   (parallel) each worker reads the tiles of its home block (a contiguous
 *               block of tile indices), asks the cache, and finishes skipped tiles on
 *               the spot (output I + R, sampler step, write back: nearly free);
 *   B. assign   (coordinator) the active tiles, in canvas order, are cut into one
 *               contiguous slice per worker: evenly with redistribution, by home block
 *               without; every active tile that leaves its home becomes a refine_move
 *               message carrying its cache state to the worker that computes it;
 *   C. compute  (parallel) each worker predicts its slice in batches, records the
 *               computations in the cache (moved tiles: in the state they were sent),
 *               applies the sampler step and writes the tiles back;
 *   D. finish   (coordinator) moved states go home, thresholds are retuned, ILVR pulls
 *               the low frequencies towards the sketch (generating: the known frames
 *               are pinned again), trace rows and progress.
 * Torus tiles (the cores) are disjoint. The model is fed a window of the core plus the
 * denoiser's halo on each side, which reaches into the neighbours, so a step reads the
 * step's input canvas `x` and writes the next sample into a second canvas `x_next`
 * (swapped after the step): no tile ever reads what another tile of the same step
 * wrote. A tile's result therefore does not depend on who computes it or when, which
 * makes the output independent of the worker count. */
#include "gen/refine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/timer.h"

/* ---- the worker seam ----------------------------------------------------------------- */

/* A tile that changes owner for one step: sent from its home worker (which decided it
 * and keeps its state between steps) to the worker that computes it, and sent back with
 * the state the computation left. This is the whole exchange a multi-machine engine
 * needs beyond the tile's data; in this shared-memory engine the tile's input and its
 * slices of the cache history are read and written in place (they are canvas-addressed
 * and disjoint between tiles), where an MPI engine would put them in the payload. */
typedef struct refine_move {
    int64_t tile;           /* tile index in this step's grid */
    int step;
    int from, to;           /* home worker, computing worker */
    sdlk_cache_tile state;  /* by value: the receiver works on this copy */
} refine_move;

/* What the coordinator learns of a tile in a step (for the assignment and the trace). */
typedef struct tile_note {
    int computed;
    int worker;             /* who finished the tile */
    double k, err, tau;
} tile_note;

typedef struct refine_worker {
    int id;
    int64_t home_begin, home_end;  /* home block: tile indices */
    int64_t work_begin, work_end;  /* this step's slice of the active list */
    refine_move *inbox;            /* moved-in tiles, in active-list order */
    int64_t inbox_n;
    float *in, *out;               /* max_batch cores each */
    float *win, *wout;             /* max_batch windows each (halo > 0 only) */
    sdlk_denoise_item *items;
    double busy_s;
    int64_t computed;
    sdlk_status status;
    sdlk_error err;
} refine_worker;

/* ILVR state: the sketch and the noise at 1 / factor of the size (the conditioning is
 * linear, so re-noising the small sketch equals shrinking the re-noised big one), the
 * shrunk sample, and one full-size frame of scratch for the upsampled correction. */
typedef struct refine_ilvr {
    int on;
    sdlk_canvas sketch, noise, x, target;
    float *frame;
} refine_ilvr;

/* Generation's pinned frames: the first `frames` frames of the caller's canvas, clean,
 * and the noise they were started with (kept: they are re-noised after every step). */
typedef struct refine_known {
    int64_t frames;
    float *clean, *noise;   /* frames x frame_numel each */
} refine_known;

typedef struct refine_engine {
    sdlk_denoiser *d;
    const sdlk_refine_opts *o;
    sdlk_canvas *x;         /* this step's input */
    sdlk_canvas *x_next;    /* this step's output (the two are swapped after a step) */
    sdlk_canvas spare;      /* the second buffer */
    sdlk_canvas *caller;    /* the caller's canvas: holds the result at the end */
    int64_t core[3], halo[3];
    int has_halo;
    int64_t frame_numel, tile_numel, window_numel; /* tile_numel: one core */
    sdlk_pool *pool;
    int use_cache;
    sdlk_cache cache;
    sdlk_tile_grid grid;
    int64_t tiles;
    int step;
    int nworkers;
    refine_worker *w;
    tile_note *note;        /* per tile, this step */
    int64_t *active;        /* active tiles, canvas order */
    int64_t active_n;
    refine_move *moves;     /* this step's messages, grouped by receiver */
    int64_t moves_n;
    refine_ilvr ilvr;
    refine_known known;
    sdlk_refine_stats stats;
} refine_engine;

/* ---- options ----------------------------------------------------------------------- */

sdlk_status sdlk_refine_opts_init(sdlk_refine_opts *o, const sdlk_denoiser_desc *desc,
                                  sdlk_error *err)
{
    memset(o, 0, sizeof *o);
    sdlk_status st = sdlk_schedule_init(&o->schedule, desc->time, 15, 0.2, err);
    if (st)
        return st;
    /* Different cycles per axis so that border positions pair up differently every
     * step; at least 1 so that small tiles still move. */
    int64_t core[3];
    sdlk_denoiser_core(desc, core);
    int64_t sh = core[1] / 16 + 1;
    int64_t sw = core[2] / 16 + 3;
    o->shift_stride[0] = 0;
    o->shift_stride[1] = sh;
    o->shift_stride[2] = sw;
    o->ilvr_factor = 0.0;
    o->ilvr_passes = 4;
    sdlk_cache_opts_init(&o->cache);
    o->workers = 1;
    o->redistribute = 1;
    o->seed = 1;
    return SDLK_OK;
}

static sdlk_status check_args(const sdlk_denoiser *d, const sdlk_canvas *x,
                              const sdlk_refine_opts *o, sdlk_error *err)
{
    const sdlk_denoiser_desc *desc = &d->desc;
    if (x->c != desc->channels)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "refine: canvas has %lld channels, denoiser %s wants %d",
                              (long long)x->c, desc->name, desc->channels);
    const int64_t size[3] = {x->t, x->h, x->w};
    static const char *const axis[3] = {"frames", "height", "width"};
    int64_t core[3];
    sdlk_denoiser_core(desc, core);
    for (int a = 0; a < 3; a++)
        if (core[a] < 1 || desc->halo[a] < 0 || size[a] < 1 || size[a] % core[a] != 0)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "refine: canvas %s %lld is not a multiple of the tile core's "
                                  "%lld (canvas %lldx%lldx%lld, core %lldx%lldx%lld = native "
                                  "tile minus twice the halo)",
                                  axis[a], (long long)size[a], (long long)core[a],
                                  (long long)x->t, (long long)x->h, (long long)x->w,
                                  (long long)core[0], (long long)core[1], (long long)core[2]);
    if (o->workers < 1 || o->workers > SDLK_REFINE_MAX_WORKERS)
        return sdlk_error_set(err, SDLK_ERR_ARG, "refine: %d workers (must be 1 to %d)",
                              o->workers, SDLK_REFINE_MAX_WORKERS);
    if (o->schedule.steps < 1 || o->schedule.steps > 1024 || o->schedule.time != desc->time)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "refine: schedule of %d steps (%s time) does not fit denoiser "
                              "%s (%s time); build it with sdlk_schedule_init",
                              o->schedule.steps,
                              o->schedule.time == SDLK_TIME_FLOW ? "flow" : "VP", desc->name,
                              desc->time == SDLK_TIME_FLOW ? "flow" : "VP");
    if (desc->max_batch < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "refine: denoiser %s has max batch %d",
                              desc->name, desc->max_batch);
    if (o->from_noise && o->ilvr_factor > 1.0)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "refine: generating from noise has no sketch for ILVR to pull "
                              "towards (set ilvr_factor to 0)");
    if (o->known_frames < 0 || o->known_frames >= x->t || (o->known_frames && !o->from_noise))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "refine: %lld known frames (must be 0..%lld, and only when "
                              "generating from noise)",
                              (long long)o->known_frames, (long long)(x->t - 1));
    return SDLK_OK;
}

/* ---- one tile ------------------------------------------------------------------------ */

/* The sampler move of tile `in` with model output `pred`, in place, and the write back. */
static void finish_tile(refine_engine *e, int64_t tile, float *in, const float *pred)
{
    const sdlk_schedule *s = &e->o->schedule;
    sdlk_sampler_step(e->d->desc.time, e->d->desc.pred, s->level[e->step],
                      s->level[e->step + 1], in, pred, in, e->tile_numel);
    sdlk_torus_write(e->x_next, &e->grid, tile, in);
}

/* Copy the window of `size` (t, h, w) whose first element is at canvas position
 * `origin` (any integers: positions wrap around the torus, even more than once when
 * the window is larger than the canvas) into dst, contiguous [t, h, w, C]. */
static void read_window(const sdlk_canvas *cv, const int64_t origin[3], const int64_t size[3],
                        float *dst)
{
    const int64_t dims[3] = {cv->t, cv->h, cv->w}, c = cv->c;
    int64_t start[3];
    for (int a = 0; a < 3; a++)
        start[a] = ((origin[a] % dims[a]) + dims[a]) % dims[a];
    for (int64_t t = 0; t < size[0]; t++) {
        int64_t ft = (start[0] + t) % dims[0];
        for (int64_t r = 0; r < size[1]; r++) {
            const float *row = cv->data + (ft * cv->h + (start[1] + r) % dims[1]) * cv->w * c;
            int64_t col = start[2], done = 0;
            while (done < size[2]) {
                int64_t run = size[2] - done < dims[2] - col ? size[2] - done : dims[2] - col;
                memcpy(dst, row + col * c, (size_t)(run * c) * sizeof *dst);
                dst += run * c;
                done += run;
                col = 0;
            }
        }
    }
}

/* The core of a window (both contiguous [t, h, w, C]). */
static void window_core(const refine_engine *e, const float *window, float *core)
{
    const int64_t *tile = e->d->desc.tile, c = e->x->c;
    for (int64_t t = 0; t < e->core[0]; t++)
        for (int64_t r = 0; r < e->core[1]; r++) {
            const float *src = window + (((t + e->halo[0]) * tile[1] + r + e->halo[1]) * tile[2] +
                                         e->halo[2]) * c;
            memcpy(core, src, (size_t)(e->core[2] * c) * sizeof *core);
            core += e->core[2] * c;
        }
}

/* ---- phase A: decisions by the home worker --------------------------------------------- */

static void worker_decide(refine_engine *e, refine_worker *w)
{
    for (int64_t t = w->home_begin; t < w->home_end; t++) {
        tile_note *note = &e->note[t];
        note->worker = w->id;
        if (!e->use_cache) {
            *note = (tile_note){.computed = 1, .worker = w->id};
            continue;
        }
        sdlk_cache_decision dec;
        sdlk_torus_read(e->x, &e->grid, t, w->in);
        sdlk_cache_decide_state(&e->cache, &e->cache.tile[t], &e->grid, t, w->in, e->step,
                                e->o->schedule.steps, &dec);
        *note = (tile_note){dec.compute, w->id, dec.k, dec.err, dec.tau};
        if (!dec.compute) {
            sdlk_cache_skip_output_state(&e->cache, &e->cache.tile[t], &e->grid, t, w->in,
                                         w->out);
            finish_tile(e, t, w->in, w->out);
        }
    }
}

/* ---- phase B: the assignment ------------------------------------------------------------- */

static int home_of(const refine_engine *e, int64_t tile)
{
    int w = 0;
    while (tile >= e->w[w].home_end)
        w++;
    return w;
}

/* Cut the active list into one contiguous slice per worker. */
static void assign_slices(refine_engine *e)
{
    e->active_n = 0;
    for (int64_t t = 0; t < e->tiles; t++)
        if (e->note[t].computed)
            e->active[e->active_n++] = t;
    int64_t n = e->active_n, pos = 0;
    for (int i = 0; i < e->nworkers; i++) {
        refine_worker *w = &e->w[i];
        w->work_begin = pos;
        if (e->o->redistribute) {
            pos = n * (i + 1) / e->nworkers;
        } else {
            while (pos < n && e->active[pos] < w->home_end)
                pos++;
        }
        w->work_end = pos;
    }
}

/* The messages: each active tile computed away from home is sent with its state. */
static void assign_moves(refine_engine *e)
{
    e->moves_n = 0;
    for (int i = 0; i < e->nworkers; i++) {
        refine_worker *w = &e->w[i];
        w->inbox = e->moves + e->moves_n;
        w->inbox_n = 0;
        for (int64_t a = w->work_begin; a < w->work_end; a++) {
            int64_t t = e->active[a];
            int home = home_of(e, t);
            if (home == i)
                continue;
            refine_move m = {.tile = t, .step = e->step, .from = home, .to = i};
            if (e->use_cache)
                m.state = e->cache.tile[t];
            e->moves[e->moves_n++] = m;
            w->inbox_n++;
        }
    }
    e->stats.moved += e->moves_n;
}

/* ---- phase C: computation ------------------------------------------------------------- */

/* Predict `n` active tiles starting at active-list position `first`; `cursor` walks the
 * inbox (moved tiles come in active-list order). */
static sdlk_status worker_batch(refine_engine *e, refine_worker *w, int64_t first, int n,
                                int64_t *cursor)
{
    const sdlk_schedule *s = &e->o->schedule;
    for (int b = 0; b < n; b++) {
        int64_t t = e->active[first + b];
        sdlk_tile_rect rect;
        sdlk_tile_grid_rect(&e->grid, t, &rect);
        float *in = w->in + b * e->tile_numel;
        int64_t origin[3];
        const float *model_in = in;
        float *model_out = w->out + b * e->tile_numel;
        for (int a = 0; a < 3; a++) {
            const int64_t len = a == 0 ? e->x->t : a == 1 ? e->x->h : e->x->w;
            origin[a] = ((rect.origin[a] - e->halo[a]) % len + len) % len;
        }
        if (e->has_halo) { /* one read: the core is the window's centre */
            float *window = w->win + b * e->window_numel;
            read_window(e->x, origin, e->d->desc.tile, window);
            window_core(e, window, in);
            model_in = window;
            model_out = w->wout + b * e->window_numel;
        } else {
            sdlk_torus_read(e->x, &e->grid, t, in);
        }
        w->items[b] = (sdlk_denoise_item){
            .request = e->o->request, .tile_id = t, .step = e->step,
            .timestep = s->timestep[e->step], .level = s->level[e->step],
            .offset = {origin[0], origin[1], origin[2]},
            .x = model_in, .cond = NULL, .out = model_out,
        };
    }
    sdlk_status st = sdlk_denoiser_predict(e->d, w->items, n, &w->err);
    if (st)
        return st;
    for (int b = 0; b < n; b++) {
        int64_t t = e->active[first + b];
        float *in = w->in + b * e->tile_numel, *out = w->out + b * e->tile_numel;
        if (e->has_halo)
            window_core(e, w->wout + b * e->window_numel, out);
        if (e->use_cache) {
            sdlk_cache_tile *state = &e->cache.tile[t];
            if (*cursor < w->inbox_n && w->inbox[*cursor].tile == t)
                state = &w->inbox[(*cursor)++].state;
            sdlk_cache_record_state(&e->cache, state, &e->grid, t, in, out);
        }
        finish_tile(e, t, in, out);
        e->note[t].worker = w->id;
    }
    w->computed += n;
    return SDLK_OK;
}

static void worker_compute(refine_engine *e, refine_worker *w)
{
    int max_batch = e->d->desc.max_batch;
    int64_t cursor = 0;
    for (int64_t a = w->work_begin; a < w->work_end; a += max_batch) {
        int64_t left = w->work_end - a;
        int n = left < max_batch ? (int)left : max_batch;
        if ((w->status = worker_batch(e, w, a, n, &cursor)) != SDLK_OK)
            return;
    }
}

/* ---- running the phases on the pool ---------------------------------------------------- */

typedef void (*worker_phase)(refine_engine *e, refine_worker *w);

typedef struct phase_job {
    refine_engine *e;
    worker_phase fn;
} phase_job;

static void run_workers(void *ctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    phase_job *job = ctx;
    for (int64_t i = begin; i < end; i++) {
        refine_worker *w = &job->e->w[i];
        if (w->status)
            continue;
        uint64_t t0 = sdlk_now_ns();
        job->fn(job->e, w);
        w->busy_s += sdlk_seconds_since(t0);
    }
}

/* Run a phase on every worker; the first failing worker's error (lowest id) wins. */
static sdlk_status run_phase(refine_engine *e, worker_phase fn, sdlk_error *err)
{
    phase_job job = {e, fn};
    sdlk_pool_for(e->pool, e->nworkers, 1, run_workers, &job);
    for (int i = 0; i < e->nworkers; i++)
        if (e->w[i].status) {
            sdlk_error_set(err, e->w[i].err.code ? e->w[i].err.code : e->w[i].status, "%s",
                           e->w[i].err.msg);
            return e->w[i].status;
        }
    return SDLK_OK;
}

/* ---- phase D: after the tiles ----------------------------------------------------------- */

/* The replies: moved states return home. */
static void return_moves(refine_engine *e)
{
    if (!e->use_cache)
        return;
    for (int64_t i = 0; i < e->moves_n; i++)
        e->cache.tile[e->moves[i].tile] = e->moves[i].state;
}

/* Generation's replacement conditioning: the known frames re-noised with their own
 * noise to the level reached, so that the model's next step sees them at the same noise
 * level as the frames it generates next to them. */
static void known_apply(refine_engine *e, double level)
{
    const refine_known *k = &e->known;
    for (int64_t f = 0; f < k->frames; f++)
        sdlk_renoise(e->d->desc.time, level, k->clean + f * e->frame_numel,
                     k->noise + f * e->frame_numel, sdlk_canvas_frame(e->x, f),
                     e->frame_numel);
}

/* x += up(renoise(down sketch, down e, level) - down(x)), repeated: up(down(.)) is not a
 * projection, so one pass leaves down(x) only near the target; a few passes of this
 * back-projection (Irani and Peleg) make the sample's low band match the sketch's. */
static sdlk_status ilvr_apply(refine_engine *e, double level, sdlk_error *err)
{
    refine_ilvr *il = &e->ilvr;
    int64_t n = sdlk_canvas_numel(&il->x);
    sdlk_renoise(e->d->desc.time, level, il->sketch.data, il->noise.data, il->target.data, n);
    int passes = e->o->ilvr_passes > 0 ? e->o->ilvr_passes : 1;
    for (int pass = 0; pass < passes; pass++) {
        sdlk_status st = sdlk_canvas_resize(e->x, &il->x, e->pool, err);
        if (st)
            return st;
        for (int64_t i = 0; i < n; i++)
            il->x.data[i] = il->target.data[i] - il->x.data[i];
        for (int64_t f = 0; f < e->x->t; f++) {
            sdlk_canvas small = sdlk_canvas_frame_view(&il->x, f);
            sdlk_canvas big = {il->frame, 1, e->x->h, e->x->w, e->x->c, 1};
            if ((st = sdlk_canvas_resize(&small, &big, e->pool, err)))
                return st;
            float *xf = sdlk_canvas_frame(e->x, f);
            for (int64_t i = 0; i < e->frame_numel; i++)
                xf[i] += il->frame[i];
        }
    }
    return SDLK_OK;
}

static void emit_trace(const refine_engine *e)
{
    if (!e->o->trace)
        return;
    for (int64_t t = 0; t < e->tiles; t++) {
        const tile_note *n = &e->note[t];
        sdlk_tile_rect rect;
        sdlk_tile_grid_rect(&e->grid, t, &rect);
        sdlk_refine_trace_row row = {
            .step = e->step, .tile = t,
            .origin = {rect.origin[0], rect.origin[1], rect.origin[2]},
            .worker = n->worker, .computed = n->computed, .k = n->k, .err = n->err,
            .tau = n->tau,
        };
        e->o->trace(e->o->trace_ctx, &row);
    }
}

static void count_step(refine_engine *e)
{
    e->stats.tile_evals += e->tiles;
    e->stats.computed += e->active_n;
    e->stats.skipped += e->tiles - e->active_n;
}

/* ---- one step ------------------------------------------------------------------------ */

static sdlk_status run_step(refine_engine *e, int step, sdlk_error *err)
{
    const sdlk_refine_opts *o = e->o;
    e->step = step;
    int64_t shift[3];
    sdlk_tile_torus_shift(e->core, o->shift_stride, step, shift);
    const int64_t canvas[3] = {e->x->t, e->x->h, e->x->w};
    sdlk_status st = sdlk_tile_grid_torus(&e->grid, canvas, e->core, shift, err);
    if (st)
        return st;
    if ((st = run_phase(e, worker_decide, err)))
        return st;
    assign_slices(e);
    assign_moves(e);
    if ((st = run_phase(e, worker_compute, err)))
        return st;
    /* Every core was written to x_next (skipped in A, computed in C): it is the sample. */
    sdlk_canvas *done = e->x_next;
    e->x_next = e->x;
    e->x = done;
    return_moves(e);
    count_step(e);
    if (e->use_cache)
        sdlk_cache_retune(&e->cache, step);
    if (e->ilvr.on && (st = ilvr_apply(e, o->schedule.level[step + 1], err)))
        return st;
    known_apply(e, o->schedule.level[step + 1]);
    emit_trace(e);
    if (o->progress && o->progress(o->progress_ctx, step + 1, o->schedule.steps))
        return sdlk_error_set(err, SDLK_ERR_IO, "refine: interrupted after step %d of %d",
                              step + 1, o->schedule.steps);
    return SDLK_OK;
}

/* ---- setup: re-noising ------------------------------------------------------------------ */

typedef struct noise_job {
    uint64_t seed, first;
    float *out;
    int64_t row;   /* floats per chunk item (one canvas row) */
} noise_job;

static void fill_noise_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    noise_job *job = ctx;
    sdlk_gaussian_fill(job->seed, job->first + (uint64_t)(begin * job->row),
                       job->out + begin * job->row, (end - begin) * job->row);
}

/* Frame f's noise e from the position-addressed stream into `out` (one frame). */
static void frame_noise(const refine_engine *e, int64_t f, float *out)
{
    const sdlk_canvas *x = e->x;
    noise_job job = {e->o->seed, (uint64_t)(e->o->frame_offset + f) * (uint64_t)e->frame_numel,
                     out, x->w * x->c};
    sdlk_pool_for(e->pool, x->h, 0, fill_noise_rows, &job);
}

/* Generation's start: x := e, except that the known frames are kept (clean and with
 * their noise, for known_apply) and start re-noised to the first level. */
static void noise_canvas(refine_engine *e)
{
    const sdlk_refine_opts *o = e->o;
    for (int64_t f = 0; f < e->x->t; f++) {
        float *xf = sdlk_canvas_frame(e->x, f);
        if (f >= e->known.frames) {
            frame_noise(e, f, xf);
            continue;
        }
        float *clean = e->known.clean + f * e->frame_numel;
        float *noise = e->known.noise + f * e->frame_numel;
        memcpy(clean, xf, (size_t)e->frame_numel * sizeof *clean);
        frame_noise(e, f, noise);
        sdlk_renoise(e->d->desc.time, o->schedule.level[0], clean, noise, xf, e->frame_numel);
    }
}

/* Frame by frame: noise e from the position-addressed stream, the small sketch and
 * noise for ILVR (before the sketch is overwritten), then x := renoise(x, e). */
static sdlk_status renoise_canvas(refine_engine *e, sdlk_error *err)
{
    const sdlk_refine_opts *o = e->o;
    sdlk_canvas *x = e->x;
    for (int64_t f = 0; f < x->t; f++) {
        frame_noise(e, f, e->ilvr.frame);
        sdlk_canvas xf = sdlk_canvas_frame_view(x, f);
        if (e->ilvr.on) {
            sdlk_canvas nf = {e->ilvr.frame, 1, x->h, x->w, x->c, 1};
            sdlk_canvas ss = sdlk_canvas_frame_view(&e->ilvr.sketch, f);
            sdlk_canvas sn = sdlk_canvas_frame_view(&e->ilvr.noise, f);
            sdlk_status st;
            if ((st = sdlk_canvas_resize(&xf, &ss, e->pool, err)) ||
                (st = sdlk_canvas_resize(&nf, &sn, e->pool, err)))
                return st;
        }
        sdlk_renoise(e->d->desc.time, o->schedule.level[0], xf.data, e->ilvr.frame, xf.data,
                     e->frame_numel);
    }
    return SDLK_OK;
}

/* ---- setup and teardown ------------------------------------------------------------------- */

static sdlk_status alloc_workers(refine_engine *e, sdlk_error *err)
{
    int64_t batch = e->d->desc.max_batch;
    for (int i = 0; i < e->nworkers; i++) {
        refine_worker *w = &e->w[i];
        w->id = i;
        w->home_begin = e->tiles * i / e->nworkers;
        w->home_end = e->tiles * (i + 1) / e->nworkers;
        w->in = malloc((size_t)(batch * e->tile_numel) * sizeof *w->in);
        w->out = malloc((size_t)(batch * e->tile_numel) * sizeof *w->out);
        w->items = calloc((size_t)batch, sizeof *w->items);
        if (e->has_halo) {
            w->win = malloc((size_t)(batch * e->window_numel) * sizeof *w->win);
            w->wout = malloc((size_t)(batch * e->window_numel) * sizeof *w->wout);
        }
        if (!w->in || !w->out || !w->items || (e->has_halo && (!w->win || !w->wout)))
            return sdlk_error_set(err, SDLK_ERR_NOMEM,
                                  "refine: out of memory for worker %d's %lld tile buffers", i,
                                  (long long)batch);
    }
    return SDLK_OK;
}

static sdlk_status alloc_ilvr(refine_engine *e, sdlk_error *err)
{
    const sdlk_canvas *x = e->x;
    e->ilvr.frame = malloc((size_t)e->frame_numel * sizeof *e->ilvr.frame);
    if (!e->ilvr.frame)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "refine: out of memory for a frame");
    double factor = e->o->ilvr_factor;
    e->ilvr.on = factor > 1.0;
    if (!e->ilvr.on)
        return SDLK_OK;
    int64_t h = llround((double)x->h / factor), w = llround((double)x->w / factor);
    h = h < 1 ? 1 : h;
    w = w < 1 ? 1 : w;
    sdlk_status st;
    if ((st = sdlk_canvas_alloc(&e->ilvr.sketch, x->t, h, w, x->c, err)) ||
        (st = sdlk_canvas_alloc(&e->ilvr.noise, x->t, h, w, x->c, err)) ||
        (st = sdlk_canvas_alloc(&e->ilvr.x, x->t, h, w, x->c, err)) ||
        (st = sdlk_canvas_alloc(&e->ilvr.target, x->t, h, w, x->c, err)))
        return st;
    return SDLK_OK;
}

static sdlk_status alloc_known(refine_engine *e, sdlk_error *err)
{
    e->known.frames = e->o->known_frames;
    if (e->known.frames == 0)
        return SDLK_OK;
    size_t n = (size_t)(e->known.frames * e->frame_numel);
    e->known.clean = malloc(n * sizeof *e->known.clean);
    e->known.noise = malloc(n * sizeof *e->known.noise);
    if (!e->known.clean || !e->known.noise)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "refine: out of memory for %lld known frames",
                              (long long)e->known.frames);
    return SDLK_OK;
}

static void engine_free(refine_engine *e)
{
    if (e->w)
        for (int i = 0; i < e->nworkers; i++) {
            free(e->w[i].in);
            free(e->w[i].out);
            free(e->w[i].items);
            free(e->w[i].win);
            free(e->w[i].wout);
        }
    free(e->w);
    free(e->note);
    free(e->active);
    free(e->moves);
    sdlk_cache_free(&e->cache);
    sdlk_canvas_free(&e->ilvr.sketch);
    sdlk_canvas_free(&e->ilvr.noise);
    sdlk_canvas_free(&e->ilvr.x);
    sdlk_canvas_free(&e->ilvr.target);
    free(e->ilvr.frame);
    free(e->known.clean);
    free(e->known.noise);
    sdlk_canvas_free(&e->spare);
    sdlk_pool_destroy(e->pool);
}

static sdlk_status engine_init(refine_engine *e, sdlk_denoiser *d, sdlk_canvas *x,
                               const sdlk_refine_opts *o, sdlk_error *err)
{
    memset(e, 0, sizeof *e);
    e->d = d;
    e->o = o;
    e->x = x;
    e->nworkers = o->workers;
    e->caller = x;
    e->frame_numel = x->h * x->w * x->c;
    sdlk_denoiser_core(&d->desc, e->core);
    memcpy(e->halo, d->desc.halo, sizeof e->halo);
    e->has_halo = e->halo[0] > 0 || e->halo[1] > 0 || e->halo[2] > 0;
    e->tile_numel = e->core[0] * e->core[1] * e->core[2] * x->c;
    e->window_numel = sdlk_denoiser_tile_numel(&d->desc);
    e->tiles = (x->t / e->core[0]) * (x->h / e->core[1]) * (x->w / e->core[2]);
    e->use_cache = o->cache.enabled;
    e->stats.workers = o->workers;
    if (!(e->pool = sdlk_pool_create(o->workers, err)))
        return err && err->code ? err->code : SDLK_ERR_NOMEM;
    e->w = calloc((size_t)e->nworkers, sizeof *e->w);
    e->note = calloc((size_t)e->tiles, sizeof *e->note);
    e->active = calloc((size_t)e->tiles, sizeof *e->active);
    e->moves = calloc((size_t)e->tiles, sizeof *e->moves);
    if (!e->w || !e->note || !e->active || !e->moves)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "refine: out of memory for %lld tiles",
                              (long long)e->tiles);
    sdlk_status st;
    if ((st = alloc_workers(e, err)) || (st = alloc_ilvr(e, err)) ||
        (st = alloc_known(e, err)) ||
        (st = sdlk_canvas_alloc(&e->spare, x->t, x->h, x->w, x->c, err)))
        return st;
    e->x_next = &e->spare;
    if (e->use_cache &&
        (st = sdlk_cache_init(&e->cache, &o->cache, x->t, x->h, x->w, x->c, e->tiles, err)))
        return st;
    return SDLK_OK;
}

static void fill_stats(const refine_engine *e, double wall_s, sdlk_refine_stats *stats)
{
    *stats = e->stats;
    stats->wall_s = wall_s;
    for (int i = 0; i < e->nworkers; i++) {
        stats->busy_s[i] = e->w[i].busy_s;
        stats->computed_by[i] = e->w[i].computed;
    }
}

sdlk_status sdlk_refine(sdlk_denoiser *d, sdlk_canvas *x0, const sdlk_refine_opts *o,
                        sdlk_refine_stats *stats, sdlk_error *err)
{
    uint64_t t0 = sdlk_now_ns();
    if (stats)
        memset(stats, 0, sizeof *stats);
    sdlk_status st = check_args(d, x0, o, err);
    if (st)
        return st;
    refine_engine e;
    st = engine_init(&e, d, x0, o, err);
    if (!st && o->from_noise)
        noise_canvas(&e);
    else if (!st)
        st = renoise_canvas(&e, err);
    for (int step = 0; !st && step < o->schedule.steps; step++)
        st = run_step(&e, step, err);
    if (!st && e.x != e.caller) /* the result sits in the spare buffer */
        memcpy(e.caller->data, e.x->data, (size_t)sdlk_canvas_numel(e.x) * sizeof *e.x->data);
    if (stats)
        fill_stats(&e, sdlk_seconds_since(t0), stats);
    engine_free(&e);
    return st;
}
