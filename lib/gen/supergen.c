/* supergen.c -- stage 2 over a video in overlapping temporal chunks, and stage 1 as a
 * frame source that generates the sketch chunk by chunk (see supergen.h). */
#include "gen/supergen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

sdlk_status sdlk_supergen_opts_init(sdlk_supergen_opts *o, const sdlk_denoiser_desc *desc,
                                    sdlk_error *err)
{
    memset(o, 0, sizeof(*o));
    o->chunk = 8;
    o->overlap = 2;
    return sdlk_refine_opts_init(&o->refine, desc, err);
}

static int64_t round_up(int64_t n, int64_t multiple)
{
    return (n + multiple - 1) / multiple * multiple;
}

/* Copy src [h, w, c] into the top-left of dst [H, W, c] (H >= h, W >= w) and fill the
 * rest by replicating the last column, then the last row: padding that adds no edges
 * for the model to sharpen. */
static void pad_frame(const float *src, int64_t h, int64_t w, float *dst, int64_t pad_h,
                      int64_t pad_w, int64_t c)
{
    for (int64_t r = 0; r < h; r++) {
        float *row = dst + r * pad_w * c;
        memcpy(row, src + r * w * c, (size_t)(w * c) * sizeof(float));
        for (int64_t x = w; x < pad_w; x++)
            memcpy(row + x * c, row + (w - 1) * c, (size_t)c * sizeof(float));
    }
    for (int64_t r = h; r < pad_h; r++)
        memcpy(dst + r * pad_w * c, dst + (h - 1) * pad_w * c,
               (size_t)(pad_w * c) * sizeof(float));
}

typedef struct supergen_run {
    sdlk_denoiser *model;
    const sdlk_supergen_opts *opts;
    sdlk_frame_source_fn source;
    void *source_ctx;
    sdlk_frame_sink_fn sink;
    void *sink_ctx;
    sdlk_pool *pool;
    sdlk_supergen_stats *stats;

    int64_t in_h, in_w, out_h, out_w, pad_h, pad_w, tile_t;
    sdlk_canvas sketch;     /* [chunk + tile_t, in_h, in_w, 3]: the chunk's sketch frames */
    int64_t sketch_count;   /* frames held in sketch */
    sdlk_canvas work;       /* [chunk padded, pad_h, pad_w, 3]: what refine works on */
    sdlk_canvas upscaled;   /* [1, out_h, out_w, 3]: one frame after resizing */
    sdlk_canvas held;       /* [overlap, out_h, out_w, 3]: refined frames awaiting a blend */
    int64_t held_count;
    sdlk_canvas blended;    /* [1, out_h, out_w, 3] */
    int64_t next_out;       /* global index of the next frame to emit */
    int eof;
} supergen_run;

/* Read frames until the sketch holds `chunk` frames or the source ends. */
static sdlk_status fill_sketch(supergen_run *run, sdlk_error *err)
{
    while (!run->eof && run->sketch_count < run->opts->chunk) {
        sdlk_tensor frame;
        sdlk_tensor_init(&frame);
        sdlk_status st = run->source(run->source_ctx, &frame, err);
        if (st == SDLK_ERR_EOF) {
            run->eof = 1;
            break;
        }
        if (st != SDLK_OK)
            return st;
        if (frame.ndim != 3 || frame.shape[0] != run->in_h || frame.shape[1] != run->in_w) {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "sketch frame %lld is %lldx%lld, the first was %lldx%lld",
                                (long long)run->stats->frames_in,
                                (long long)(frame.ndim >= 2 ? frame.shape[1] : 0),
                                (long long)(frame.ndim >= 2 ? frame.shape[0] : 0),
                                (long long)run->in_w, (long long)run->in_h);
            sdlk_tensor_free(&frame);
            return st;
        }
        st = sdlk_canvas_set_frame_u8(&run->sketch, run->sketch_count, &frame, err);
        sdlk_tensor_free(&frame);
        if (st != SDLK_OK)
            return st;
        run->sketch_count++;
        run->stats->frames_in++;
    }
    return SDLK_OK;
}

static sdlk_status emit(supergen_run *run, const sdlk_canvas *frame, sdlk_error *err)
{
    sdlk_tensor img;
    sdlk_tensor_init(&img);
    sdlk_status st = sdlk_canvas_frame_to_u8(frame, 0, run->out_h, run->out_w, &img, err);
    if (st == SDLK_OK)
        st = run->sink(run->sink_ctx, run->next_out, &img, err);
    sdlk_tensor_free(&img);
    if (st == SDLK_OK) {
        run->next_out++;
        run->stats->frames_out++;
    }
    return st;
}

/* Copy the top-left out_h x out_w of work frame f into a one-frame canvas dst. */
static void crop_frame(const supergen_run *run, int64_t f, sdlk_canvas *dst)
{
    const float *src = sdlk_canvas_frame(&run->work, f);
    for (int64_t r = 0; r < run->out_h; r++)
        memcpy(dst->data + r * run->out_w * 3, src + r * run->pad_w * 3,
               (size_t)(run->out_w * 3) * sizeof(float));
}

static void add_stats(sdlk_refine_stats *sum, const sdlk_refine_stats *chunk)
{
    sum->tile_evals += chunk->tile_evals;
    sum->computed += chunk->computed;
    sum->skipped += chunk->skipped;
    sum->moved += chunk->moved;
    sum->wall_s += chunk->wall_s;
    sum->workers = chunk->workers;
    for (int i = 0; i < chunk->workers && i < SDLK_REFINE_MAX_WORKERS; i++) {
        sum->busy_s[i] += chunk->busy_s[i];
        sum->computed_by[i] += chunk->computed_by[i];
    }
}

/* Refine the upsampled chunk in run->work: the chunk's sketch frames are the request
 * the denoiser conditions on (the exemplar model's prior). */
static sdlk_status refine_chunk(supergen_run *run, int64_t first, int64_t chunk_index,
                                int64_t frames, sdlk_error *err)
{
    const sdlk_supergen_opts *o = run->opts;
    sdlk_gen_request req = {0};
    req.id = chunk_index;
    req.reference = run->sketch.data;
    req.ref_shape[0] = frames;
    req.ref_shape[1] = run->in_h;
    req.ref_shape[2] = run->in_w;
    req.ref_shape[3] = 3;
    req.seed = o->refine.seed;
    req.prompt = o->prompt;
    sdlk_status st = sdlk_denoiser_request_open(run->model, &req, err);
    if (st != SDLK_OK)
        return st;
    sdlk_refine_opts ropts = o->refine;
    ropts.request = chunk_index;
    ropts.frame_offset = first;
    if (ropts.ilvr_factor == 0.0)
        ropts.ilvr_factor = (double)run->out_h / (double)run->in_h;
    else if (ropts.ilvr_factor < 0.0)
        ropts.ilvr_factor = 0.0;
    sdlk_refine_stats chunk_stats;
    memset(&chunk_stats, 0, sizeof(chunk_stats));
    st = sdlk_refine(run->model, &run->work, &ropts, &chunk_stats, err);
    sdlk_denoiser_request_close(run->model, chunk_index);
    if (st == SDLK_OK)
        add_stats(&run->stats->refine, &chunk_stats);
    return st;
}

/* Upsample (and unless upscale_only, refine) the frames in the sketch (a chunk starting
 * at global frame `first`) and emit or hold the results. `last` says no chunk follows. */
static sdlk_status process_chunk(supergen_run *run, int64_t first, int64_t chunk_index,
                                 int last, sdlk_error *err)
{
    const sdlk_supergen_opts *o = run->opts;
    int64_t n = run->sketch_count;
    int64_t frames = round_up(n, run->tile_t);
    /* A short final chunk repeats its last sketch frame up to a whole temporal tile. */
    for (int64_t f = n; f < frames; f++)
        memcpy(sdlk_canvas_frame(&run->sketch, f), sdlk_canvas_frame(&run->sketch, n - 1),
               (size_t)(run->in_h * run->in_w * 3) * sizeof(float));

    run->work.t = frames; /* allocated for the largest chunk; use the first `frames` */
    sdlk_status st = SDLK_OK;
    for (int64_t f = 0; f < frames && st == SDLK_OK; f++) {
        sdlk_canvas src = sdlk_canvas_frame_view(&run->sketch, f);
        st = sdlk_canvas_resize(&src, &run->upscaled, run->pool, err);
        if (st == SDLK_OK)
            pad_frame(run->upscaled.data, run->out_h, run->out_w,
                      sdlk_canvas_frame(&run->work, f), run->pad_h, run->pad_w, 3);
    }
    if (st == SDLK_OK && !o->upscale_only)
        st = refine_chunk(run, first, chunk_index, frames, err);
    if (st != SDLK_OK)
        return st;
    run->stats->chunks++;

    /* Frames 0..held_count-1 of this chunk overlap the held frames of the previous one. */
    int64_t keep = last ? 0 : o->overlap;
    for (int64_t f = 0; f < n - keep; f++) {
        crop_frame(run, f, &run->blended);
        if (f < run->held_count) {
            float w_new = (float)(f + 1) / (float)(run->held_count + 1);
            const float *old = sdlk_canvas_frame(&run->held, f);
            int64_t count = run->out_h * run->out_w * 3;
            for (int64_t i = 0; i < count; i++)
                run->blended.data[i] = w_new * run->blended.data[i] + (1.0f - w_new) * old[i];
        }
        st = emit(run, &run->blended, err);
        if (st != SDLK_OK)
            return st;
    }
    for (int64_t k = 0; k < keep; k++) {
        sdlk_canvas dst = sdlk_canvas_frame_view(&run->held, k);
        crop_frame(run, n - keep + k, &dst);
    }
    run->held_count = keep;
    /* The next chunk starts with the last `overlap` sketch frames of this one. */
    if (keep > 0)
        memmove(run->sketch.data, sdlk_canvas_frame(&run->sketch, n - keep),
                (size_t)(keep * run->in_h * run->in_w * 3) * sizeof(float));
    run->sketch_count = keep;
    return SDLK_OK;
}

static sdlk_status check_opts(const sdlk_supergen_opts *o, const sdlk_denoiser_desc *desc,
                              sdlk_error *err)
{
    if (o->out_h < 1 || o->out_w < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "output size %lldx%lld is empty",
                              (long long)o->out_w, (long long)o->out_h);
    if (desc->channels != 3)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "model %s takes %d channels; supergen works on RGB (3)",
                              desc->name, desc->channels);
    int64_t core[3];
    sdlk_denoiser_core(desc, core);
    if (o->chunk < core[0] || o->chunk < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "chunk of %lld frames is shorter than the model's temporal tile "
                              "(%lld frames)",
                              (long long)o->chunk, (long long)core[0]);
    if (o->overlap < 0 || o->overlap >= o->chunk)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "chunk overlap %lld must be in 0..%lld (chunk - 1)",
                              (long long)o->overlap, (long long)(o->chunk - 1));
    return SDLK_OK;
}

static void run_free(supergen_run *run)
{
    sdlk_canvas_free(&run->sketch);
    sdlk_canvas_free(&run->work);
    sdlk_canvas_free(&run->upscaled);
    sdlk_canvas_free(&run->held);
    sdlk_canvas_free(&run->blended);
}

int64_t sdlk_supergen_fit_chunk(const sdlk_denoiser_desc *desc, int64_t out_h, int64_t out_w,
                                int cache_on, int64_t chunk, int64_t overlap,
                                double budget_bytes)
{
    int64_t core[3];
    sdlk_denoiser_core(desc, core);
    /* what run_alloc and refine allocate (keep the two in step) */
    double padded = (double)round_up(out_h, core[1]) * (double)round_up(out_w, core[2]) * 3 *
                    sizeof(float);
    double frame = (double)out_h * (double)out_w * 3 * sizeof(float);
    double per_frame = padded * (2 + (cache_on ? 3 : 0));
    double fixed = frame * (double)(3 + overlap);
    int64_t fit = budget_bytes > fixed ? (int64_t)((budget_bytes - fixed) / per_frame) : 0;
    fit = fit / core[0] * core[0];
    if (fit < core[0])
        fit = core[0];
    return fit < chunk ? fit : chunk;
}

/* Size everything after the first frame told the sketch size. */
static sdlk_status run_alloc(supergen_run *run, const sdlk_tensor *first, sdlk_error *err)
{
    const sdlk_denoiser_desc *desc = &run->model->desc;
    const sdlk_supergen_opts *o = run->opts;
    run->in_h = first->shape[0];
    run->in_w = first->shape[1];
    run->out_h = o->out_h;
    run->out_w = o->out_w;
    /* The canvas is covered by tile cores (the model's window minus its halo). */
    int64_t core[3];
    sdlk_denoiser_core(desc, core);
    run->tile_t = core[0];
    run->pad_h = round_up(run->out_h, core[1]);
    run->pad_w = round_up(run->out_w, core[2]);
    int64_t chunk_frames = round_up(o->chunk, run->tile_t);
    sdlk_status st = sdlk_canvas_alloc(&run->sketch, chunk_frames, run->in_h, run->in_w, 3, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_alloc(&run->work, chunk_frames, run->pad_h, run->pad_w, 3, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_alloc(&run->upscaled, 1, run->out_h, run->out_w, 3, err);
    if (st == SDLK_OK && o->overlap > 0)
        st = sdlk_canvas_alloc(&run->held, o->overlap, run->out_h, run->out_w, 3, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_alloc(&run->blended, 1, run->out_h, run->out_w, 3, err);
    if (st == SDLK_OK) {
        run->stats->in_h = run->in_h;
        run->stats->in_w = run->in_w;
        run->stats->pad_h = run->pad_h;
        run->stats->pad_w = run->pad_w;
    }
    return st;
}

/* The first frame decides the sketch size; it is stored as the sketch's frame 0. */
static sdlk_status read_first(supergen_run *run, sdlk_error *err)
{
    sdlk_tensor frame;
    sdlk_tensor_init(&frame);
    sdlk_status st = run->source(run->source_ctx, &frame, err);
    if (st == SDLK_ERR_EOF)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "the sketch has no frames");
    if (st != SDLK_OK)
        return st;
    if (frame.ndim != 3 || frame.shape[2] != 3 || frame.dtype != SDLK_U8) {
        sdlk_tensor_free(&frame);
        return sdlk_error_set(err, SDLK_ERR_ARG, "sketch frames must be [h, w, 3] u8 RGB");
    }
    st = run_alloc(run, &frame, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_set_frame_u8(&run->sketch, 0, &frame, err);
    sdlk_tensor_free(&frame);
    if (st == SDLK_OK) {
        run->sketch_count = 1;
        run->stats->frames_in = 1;
    }
    return st;
}

sdlk_status sdlk_supergen_run(sdlk_denoiser *d, const sdlk_supergen_opts *o,
                              sdlk_frame_source_fn source, void *source_ctx,
                              sdlk_frame_sink_fn sink, void *sink_ctx, sdlk_pool *pool,
                              sdlk_supergen_stats *stats, sdlk_error *err)
{
    sdlk_supergen_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    sdlk_status st = check_opts(o, &d->desc, err);
    if (st != SDLK_OK)
        return st;
    supergen_run run;
    memset(&run, 0, sizeof(run));
    run.model = d;
    run.opts = o;
    run.source = source;
    run.source_ctx = source_ctx;
    run.sink = sink;
    run.sink_ctx = sink_ctx;
    run.pool = pool;
    run.stats = stats;

    st = read_first(&run, err);
    int64_t first = 0, chunk_index = 0;
    while (st == SDLK_OK) {
        int64_t before = run.sketch_count;
        st = fill_sketch(&run, err);
        if (st != SDLK_OK)
            break;
        if (run.sketch_count == before && chunk_index > 0) {
            /* No new frame after a full chunk: the held frames are final as they are. */
            for (int64_t k = 0; k < run.held_count && st == SDLK_OK; k++) {
                sdlk_canvas view = sdlk_canvas_frame_view(&run.held, k);
                st = emit(&run, &view, err);
            }
            break;
        }
        int last = run.eof;
        st = process_chunk(&run, first, chunk_index, last, err);
        if (st != SDLK_OK || last)
            break;
        first += o->chunk - o->overlap;
        chunk_index++;
        if (o->progress && o->progress(o->progress_ctx, stats->frames_out, 0, 0)) {
            st = sdlk_error_set(err, SDLK_ERR_IO, "interrupted");
            break;
        }
    }
    run_free(&run);
    return st;
}

/* ---- stage 1: the sketch generator ---------------------------------------------------- */

struct sdlk_sketch_gen {
    sdlk_denoiser *model;
    sdlk_sketch_opts opts;
    int64_t tile_t;          /* the model's temporal core: chunks are made of whole ones */
    sdlk_canvas work;        /* [chunk rounded up to tile_t, pad_h, pad_w, 3] */
    int64_t first;           /* global index of work's frame 0 */
    int64_t ready, made;     /* work frames ready..made-1 are generated and not yet emitted */
    int opened;              /* the request is open in the model */
    sdlk_status failed;      /* sticky: a failed chunk leaves nothing to emit */
    sdlk_error failure;
    sdlk_sketch_stats stats;
};

sdlk_status sdlk_sketch_opts_init(sdlk_sketch_opts *o, const sdlk_denoiser_desc *desc,
                                  sdlk_error *err)
{
    memset(o, 0, sizeof *o);
    o->chunk = 8;
    o->overlap = 2;
    o->request = SDLK_SKETCH_REQUEST;
    sdlk_status st = sdlk_refine_opts_init(&o->refine, desc, err);
    if (st == SDLK_OK)
        st = sdlk_schedule_init(&o->refine.schedule, desc->time, 30, 1.0, err);
    return st;
}

static sdlk_status sketch_check(const sdlk_sketch_opts *o, const sdlk_denoiser_desc *desc,
                                sdlk_error *err)
{
    if (o->h < 1 || o->w < 1 || o->frames < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "sketch of %lld frames of %lldx%lld is empty",
                              (long long)o->frames, (long long)o->w, (long long)o->h);
    if (desc->channels != 3)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "model %s takes %d channels; supergen works on RGB (3)",
                              desc->name, desc->channels);
    if (o->chunk < 1 || o->overlap < 0 || o->overlap >= o->chunk)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "sketch chunk of %lld frames with overlap %lld (need chunk >= 1 "
                              "and 0 <= overlap < chunk)",
                              (long long)o->chunk, (long long)o->overlap);
    if (o->refine.ilvr_factor > 1.0)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "sketch generation has no sketch for ILVR (set ilvr_factor 0)");
    return SDLK_OK;
}

sdlk_status sdlk_sketch_create(sdlk_denoiser *d, const sdlk_sketch_opts *o,
                               sdlk_sketch_gen **out, sdlk_error *err)
{
    *out = NULL;
    sdlk_status st = sketch_check(o, &d->desc, err);
    if (st != SDLK_OK)
        return st;
    sdlk_sketch_gen *g = calloc(1, sizeof *g);
    if (!g)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "sketch: out of memory");
    g->model = d;
    g->opts = *o;
    int64_t core[3];
    sdlk_denoiser_core(&d->desc, core);
    g->tile_t = core[0];
    g->opts.chunk = round_up(o->chunk, g->tile_t); /* whole temporal tiles, none wasted */
    g->stats.pad_h = round_up(o->h, core[1]);
    g->stats.pad_w = round_up(o->w, core[2]);
    /* the canvas of the longest chunk: the whole video when it is shorter */
    int64_t frames = g->opts.chunk < o->frames ? g->opts.chunk : o->frames;
    st = sdlk_canvas_alloc(&g->work, round_up(frames, g->tile_t), g->stats.pad_h,
                           g->stats.pad_w, 3, err);
    if (st != SDLK_OK) {
        free(g);
        return st;
    }
    *out = g;
    return SDLK_OK;
}

static sdlk_status sketch_open_request(sdlk_sketch_gen *g, sdlk_error *err)
{
    sdlk_gen_request req = {.id = g->opts.request, .prompt = g->opts.prompt,
                            .seed = g->opts.refine.seed};
    sdlk_status st = sdlk_denoiser_request_open(g->model, &req, err);
    if (st != SDLK_OK) {
        sdlk_error_prefix(err, "stage 1 (generating the sketch)");
        return st;
    }
    g->opened = 1;
    return SDLK_OK;
}

/* Generate the next chunk into g->work. Its first frames continue the previous chunk:
 * they are moved to the front and pinned (known_frames); the rest start as noise. */
static sdlk_status sketch_make_chunk(sdlk_sketch_gen *g, sdlk_error *err)
{
    const sdlk_sketch_opts *o = &g->opts;
    int64_t next = g->first + g->made; /* global index of the first frame to make */
    int64_t known = g->made > 0 ? (o->overlap < g->made ? o->overlap : g->made) : 0;
    if (known > 0)
        memmove(g->work.data, sdlk_canvas_frame(&g->work, g->made - known),
                (size_t)(known * g->work.h * g->work.w * 3) * sizeof *g->work.data);
    g->first = next - known;
    int64_t left = o->frames - g->first;
    int64_t frames = left < o->chunk ? left : o->chunk;
    /* frames > known: at least one frame is left (next < frames) and overlap < chunk */
    g->work.t = round_up(frames, g->tile_t); /* allocated for the largest chunk */

    sdlk_refine_opts ropts = o->refine;
    ropts.from_noise = 1;
    ropts.known_frames = known;
    ropts.ilvr_factor = 0.0;
    ropts.frame_offset = g->first;
    ropts.request = o->request;
    ropts.seed = o->refine.seed ^ SDLK_SKETCH_SEED_SALT;
    sdlk_refine_stats chunk_stats;
    sdlk_status st = sdlk_refine(g->model, &g->work, &ropts, &chunk_stats, err);
    if (st != SDLK_OK) {
        sdlk_error_prefix(err, "stage 1, frames %lld..%lld", (long long)g->first,
                          (long long)(g->first + frames - 1));
        return st;
    }
    add_stats(&g->stats.refine, &chunk_stats);
    g->stats.chunks++;
    g->ready = known;
    g->made = frames;
    return SDLK_OK;
}

sdlk_status sdlk_sketch_next(void *gen, sdlk_tensor *frame, sdlk_error *err)
{
    sdlk_sketch_gen *g = gen;
    if (g->failed)
        return sdlk_error_set(err, g->failure.code ? g->failure.code : g->failed, "%s",
                              g->failure.msg);
    if (g->first + g->ready >= g->opts.frames)
        return SDLK_ERR_EOF;
    sdlk_status st = SDLK_OK;
    if (!g->opened)
        st = sketch_open_request(g, err);
    if (st == SDLK_OK && g->ready == g->made)
        st = sketch_make_chunk(g, err);
    if (st == SDLK_OK)
        st = sdlk_canvas_frame_to_u8(&g->work, g->ready, g->opts.h, g->opts.w, frame, err);
    if (st != SDLK_OK) {
        g->failed = st;
        if (err)
            g->failure = *err;
        return st;
    }
    g->ready++;
    g->stats.frames++;
    return SDLK_OK;
}

void sdlk_sketch_get_stats(const sdlk_sketch_gen *g, sdlk_sketch_stats *out)
{
    *out = g->stats;
}

void sdlk_sketch_destroy(sdlk_sketch_gen *g)
{
    if (!g)
        return;
    if (g->opened)
        sdlk_denoiser_request_close(g->model, g->opts.request);
    sdlk_canvas_free(&g->work);
    free(g);
}
