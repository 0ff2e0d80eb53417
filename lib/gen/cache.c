/* cache.c -- the region-aware cache of SuperGen with the k-estimator fixed (see
 * cache.h and BRIEF.md section 4).
 *
 * All history lives in canvas-sized arrays addressed by canvas position, so a tile of
 * a shifted grid finds the history of exactly the positions it covers, whichever tiles
 * covered them before. Every per-tile quantity is a mean over the tile's positions,
 * accumulated in double over the tile's rows (at most two contiguous runs each). */
#include "gen/cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- walking a tile on the canvas ----------------------------------------------- */

/* A tile seen as rows of (t, h); along w a torus tile is one run or, when it wraps
 * around the right edge, two. Offsets and lengths are in floats. */
typedef struct tile_walk {
    int64_t origin[3], size[3], canvas[3];
    int64_t c;
    int64_t first;  /* floats in the first run of every row */
    int64_t row;    /* floats in a tile row: size[2] * c */
} tile_walk;

static void tile_walk_init(tile_walk *walk, const sdlk_tile_grid *grid, int64_t index,
                           int64_t channels)
{
    sdlk_tile_rect rect;
    sdlk_tile_grid_rect(grid, index, &rect);
    memcpy(walk->origin, rect.origin, sizeof walk->origin);
    memcpy(walk->size, rect.size, sizeof walk->size);
    memcpy(walk->canvas, grid->canvas, sizeof walk->canvas);
    walk->c = channels;
    int64_t room = grid->canvas[2] - rect.origin[2];
    walk->first = (room < rect.size[2] ? room : rect.size[2]) * channels;
    walk->row = rect.size[2] * channels;
}

static int64_t tile_walk_rows(const tile_walk *walk) { return walk->size[0] * walk->size[1]; }

static int64_t tile_walk_numel(const tile_walk *walk) { return tile_walk_rows(walk) * walk->row; }

/* Canvas offset (floats) of the start of tile row `r`; the second run (if any) starts
 * at the beginning of the same canvas row. */
static int64_t tile_walk_canvas_row(const tile_walk *walk, int64_t r, int64_t *row_start)
{
    int64_t t = (walk->origin[0] + r / walk->size[1]) % walk->canvas[0];
    int64_t h = (walk->origin[1] + r % walk->size[1]) % walk->canvas[1];
    *row_start = (t * walk->canvas[1] + h) * walk->canvas[2] * walk->c;
    return *row_start + walk->origin[2] * walk->c;
}

void sdlk_torus_read(const sdlk_canvas *canvas, const sdlk_tile_grid *grid, int64_t index,
                     float *tile)
{
    tile_walk walk;
    tile_walk_init(&walk, grid, index, canvas->c);
    for (int64_t r = 0; r < tile_walk_rows(&walk); r++) {
        int64_t row_start, at = tile_walk_canvas_row(&walk, r, &row_start);
        float *dst = tile + r * walk.row;
        memcpy(dst, canvas->data + at, (size_t)walk.first * sizeof *dst);
        if (walk.first < walk.row)
            memcpy(dst + walk.first, canvas->data + row_start,
                   (size_t)(walk.row - walk.first) * sizeof *dst);
    }
}

void sdlk_torus_write(sdlk_canvas *canvas, const sdlk_tile_grid *grid, int64_t index,
                      const float *tile)
{
    tile_walk walk;
    tile_walk_init(&walk, grid, index, canvas->c);
    for (int64_t r = 0; r < tile_walk_rows(&walk); r++) {
        int64_t row_start, at = tile_walk_canvas_row(&walk, r, &row_start);
        const float *src = tile + r * walk.row;
        memcpy(canvas->data + at, src, (size_t)walk.first * sizeof *src);
        if (walk.first < walk.row)
            memcpy(canvas->data + row_start, src + walk.first,
                   (size_t)(walk.row - walk.first) * sizeof *src);
    }
}

/* ---- per-tile means over history ---------------------------------------------------- */

static double sum_abs_diff(const float *a, const float *b, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)a[i] - (double)b[i]);
    return s;
}

static double sum_abs(const float *a, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)a[i]);
    return s;
}

/* mean |tile - history| over the tile's positions. */
static double mean_abs_diff(const tile_walk *walk, const float *tile, const float *history)
{
    double s = 0.0;
    for (int64_t r = 0; r < tile_walk_rows(walk); r++) {
        int64_t row_start, at = tile_walk_canvas_row(walk, r, &row_start);
        const float *t = tile + r * walk->row;
        s += sum_abs_diff(t, history + at, walk->first);
        if (walk->first < walk->row)
            s += sum_abs_diff(t + walk->first, history + row_start, walk->row - walk->first);
    }
    return s / (double)tile_walk_numel(walk);
}

/* mean |history| over the tile's positions. */
static double mean_abs_history(const tile_walk *walk, const float *history)
{
    double s = 0.0;
    for (int64_t r = 0; r < tile_walk_rows(walk); r++) {
        int64_t row_start, at = tile_walk_canvas_row(walk, r, &row_start);
        s += sum_abs(history + at, walk->first);
        if (walk->first < walk->row)
            s += sum_abs(history + row_start, walk->row - walk->first);
    }
    return s / (double)tile_walk_numel(walk);
}

/* ---- lifetime ------------------------------------------------------------------------ */

void sdlk_cache_opts_init(sdlk_cache_opts *o)
{
    o->enabled = 1;
    o->tau = 0.5;
    o->alpha = 0.5;
    o->warmup = 5;
    o->retune_every = 5;
}

sdlk_status sdlk_cache_init(sdlk_cache *cache, const sdlk_cache_opts *opts, int64_t t,
                            int64_t h, int64_t w, int64_t c, int64_t tiles, sdlk_error *err)
{
    memset(cache, 0, sizeof *cache);
    if (tiles < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "cache: %lld tiles (need at least 1)",
                              (long long)tiles);
    if (!(opts->tau >= 0.0) || !(opts->alpha >= 0.0) || opts->warmup < 0 ||
        opts->retune_every < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "cache: tau %g, alpha %g, warmup %d, retune every %d "
                              "(need tau >= 0, alpha >= 0, warmup >= 0, retune >= 0)",
                              opts->tau, opts->alpha, opts->warmup, opts->retune_every);
    cache->opts = *opts;
    cache->tiles = tiles;
    sdlk_status st;
    if ((st = sdlk_canvas_alloc(&cache->in_prev, t, h, w, c, err)) ||
        (st = sdlk_canvas_alloc(&cache->in_comp, t, h, w, c, err)) ||
        (st = sdlk_canvas_alloc(&cache->out_comp, t, h, w, c, err))) {
        sdlk_cache_free(cache);
        return st;
    }
    cache->tile = calloc((size_t)tiles, sizeof *cache->tile);
    if (!cache->tile) {
        sdlk_cache_free(cache);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "cache: out of memory for %lld tile states",
                              (long long)tiles);
    }
    for (int64_t i = 0; i < tiles; i++)
        cache->tile[i].tau = opts->tau;
    return SDLK_OK;
}

void sdlk_cache_free(sdlk_cache *cache)
{
    if (!cache)
        return;
    sdlk_canvas_free(&cache->in_prev);
    sdlk_canvas_free(&cache->in_comp);
    sdlk_canvas_free(&cache->out_comp);
    free(cache->tile);
    memset(cache, 0, sizeof *cache);
}

/* ---- the rule ------------------------------------------------------------------------ */

void sdlk_cache_decide_state(const sdlk_cache *cache, sdlk_cache_tile *state,
                             const sdlk_tile_grid *grid, int64_t index, const float *input,
                             int step, int steps, sdlk_cache_decision *out)
{
    tile_walk walk;
    tile_walk_init(&walk, grid, index, cache->in_prev.c);
    double input_change = cache->has_prev ? mean_abs_diff(&walk, input, cache->in_prev.data) : 0.0;
    /* Forced computations: the warm-up, the final step (it fixes the output), and any
     * tile whose k is not yet measured by two real computations. */
    int forced = step < cache->opts.warmup || step >= steps - 1 || state->computes < 2 ||
                 !cache->has_prev;
    int skip = 0;
    if (!forced) {
        double out_mag = mean_abs_history(&walk, cache->out_comp.data);
        /* mean|O_c| == 0 leaves the relative rate undefined: compute rather than divide. */
        if (out_mag > 0.0) {
            state->err += state->k * input_change / out_mag;
            skip = state->err < state->tau;
        }
    }
    out->compute = !(cache->opts.enabled && skip);
    out->k = state->k;
    out->err = state->err;
    out->tau = state->tau;
    out->input_change = input_change;
}

void sdlk_cache_skip_output_state(const sdlk_cache *cache, sdlk_cache_tile *state,
                                  const sdlk_tile_grid *grid, int64_t index,
                                  const float *input, float *out)
{
    /* Only the input history advances: the residual R = O_c - I_c, k and E stay as the
     * last real computation left them. Storing I + R as a "previous output" here is the
     * published bug (it makes the next k exactly 1). */
    tile_walk walk;
    tile_walk_init(&walk, grid, index, cache->in_prev.c);
    const float *in_comp = cache->in_comp.data, *out_comp = cache->out_comp.data;
    float *in_prev = cache->in_prev.data;
    for (int64_t r = 0; r < tile_walk_rows(&walk); r++) {
        int64_t row_start, at = tile_walk_canvas_row(&walk, r, &row_start);
        const float *i_row = input + r * walk.row;
        float *o_row = out + r * walk.row;
        for (int64_t j = 0; j < walk.row; j++) {
            int64_t p = j < walk.first ? at + j : row_start + (j - walk.first);
            o_row[j] = i_row[j] + (out_comp[p] - in_comp[p]);
            in_prev[p] = i_row[j];
        }
    }
    state->skips++;
    state->skip_run++;
}

/* Welford's update of the running mean and M2 of the tile's output magnitude. */
static void welford_add(sdlk_cache_tile *state, double value)
{
    double n = (double)state->computes; /* already counts this computation */
    double delta = value - state->mag_mean;
    state->mag_mean += delta / n;
    state->mag_m2 += delta * (value - state->mag_mean);
}

void sdlk_cache_record_state(const sdlk_cache *cache, sdlk_cache_tile *state,
                             const sdlk_tile_grid *grid, int64_t index, const float *input,
                             const float *output)
{
    tile_walk walk;
    tile_walk_init(&walk, grid, index, cache->in_prev.c);
    if (state->computes >= 1) {
        /* k from the last two real computations only; an unchanged input keeps the old
         * k instead of dividing by zero. */
        double d_in = mean_abs_diff(&walk, input, cache->in_comp.data);
        if (d_in > 1e-12)
            state->k = mean_abs_diff(&walk, output, cache->out_comp.data) / d_in;
    }
    double mag = 0.0;
    for (int64_t r = 0; r < tile_walk_rows(&walk); r++) {
        int64_t row_start, at = tile_walk_canvas_row(&walk, r, &row_start);
        const float *i_row = input + r * walk.row, *o_row = output + r * walk.row;
        mag += sum_abs(o_row, walk.row);
        size_t first = (size_t)walk.first * sizeof(float);
        size_t rest = (size_t)(walk.row - walk.first) * sizeof(float);
        memcpy(cache->in_comp.data + at, i_row, first);
        memcpy(cache->in_prev.data + at, i_row, first);
        memcpy(cache->out_comp.data + at, o_row, first);
        if (rest) {
            memcpy(cache->in_comp.data + row_start, i_row + walk.first, rest);
            memcpy(cache->in_prev.data + row_start, i_row + walk.first, rest);
            memcpy(cache->out_comp.data + row_start, o_row + walk.first, rest);
        }
    }
    state->err = 0.0;
    state->computes++;
    state->skip_run = 0;
    welford_add(state, mag / (double)tile_walk_numel(&walk));
}

void sdlk_cache_decide(sdlk_cache *cache, const sdlk_tile_grid *grid, int64_t index,
                       const float *input, int step, int steps, sdlk_cache_decision *out)
{
    sdlk_cache_decide_state(cache, &cache->tile[index], grid, index, input, step, steps, out);
}

void sdlk_cache_skip_output(sdlk_cache *cache, const sdlk_tile_grid *grid, int64_t index,
                            const float *input, float *out)
{
    sdlk_cache_skip_output_state(cache, &cache->tile[index], grid, index, input, out);
}

void sdlk_cache_record(sdlk_cache *cache, const sdlk_tile_grid *grid, int64_t index,
                       const float *input, const float *output)
{
    sdlk_cache_record_state(cache, &cache->tile[index], grid, index, input, output);
}

/* ---- top-selective thresholds ------------------------------------------------------------ */

double sdlk_cache_tile_activity(const sdlk_cache_tile *state)
{
    if (state->computes < 2)
        return 0.0;
    double var = state->mag_m2 / (double)(state->computes - 1);
    return var > 0.0 ? sqrt(var) : 0.0;
}

void sdlk_cache_retune(sdlk_cache *cache, int step)
{
    cache->has_prev = 1;
    int every = cache->opts.retune_every;
    if (every <= 0 || (step + 1) % every != 0)
        return;
    /* The two most active tiles (strictly greater activity wins; ties keep the lower
     * index), then every tile's tau from the base. */
    int64_t first = -1, second = -1;
    double a1 = -1.0, a2 = -1.0;
    for (int64_t i = 0; i < cache->tiles; i++) {
        double a = sdlk_cache_tile_activity(&cache->tile[i]);
        if (a > a1) {
            second = first, a2 = a1;
            first = i, a1 = a;
        } else if (a > a2) {
            second = i, a2 = a;
        }
    }
    double tau = cache->opts.tau, alpha = cache->opts.alpha;
    for (int64_t i = 0; i < cache->tiles; i++)
        cache->tile[i].tau = tau;
    if (first >= 0)
        cache->tile[first].tau = tau * (1.0 + alpha);
    if (second >= 0)
        cache->tile[second].tau = tau * (1.0 + alpha / 2.0);
}
