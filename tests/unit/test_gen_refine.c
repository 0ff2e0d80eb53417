/* Unit tests of lib/gen/cache.c (the region-aware cache) and lib/gen/refine.c (the
 * tiled refinement engine): the cache against a plain re-implementation of the rule of
 * BRIEF.md section 4, the published k-estimator bug, forced steps, zero changes, the
 * top-selective tau; the engine with small test denoisers defined here (a target
 * denoiser, a tile-local blur, a zero model), determinism over workers and
 * redistribution, traces, ILVR, errors and cancellation; generation from noise
 * (from_noise: the start is the noise itself, the canvas's content is ignored, known
 * frames are pinned). */
#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "gen/cache.h"
#include "gen/canvas.h"
#include "gen/denoiser.h"
#include "gen/refine.h"
#include "gen/schedule.h"
#include "tile/tile.h"
#include "unit.h"

/* Deterministic pseudo-random numbers (xorshift64*), one state per test. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

/* Uniform in [-1, 1). */
static float random_unit(uint64_t *state)
{
    return (float)((double)(next_random(state) >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static void random_canvas(sdlk_canvas *cv, int64_t t, int64_t h, int64_t w, int64_t c,
                          uint64_t *state)
{
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(cv, t, h, w, c, &err), SDLK_OK);
    for (int64_t i = 0; i < sdlk_canvas_numel(cv); i++)
        cv->data[i] = random_unit(state);
}

/* Canvas offset (floats) of element `j` of tile `index` (contiguous [t, h, w, C]),
 * computed directly from the torus formula origin + coordinate mod L. */
static int64_t tile_elem_pos(const sdlk_tile_grid *grid, int64_t index, int64_t c, int64_t j)
{
    sdlk_tile_rect rect;
    sdlk_tile_grid_rect(grid, index, &rect);
    int64_t ch = j % c, rest = j / c;
    int64_t w = rest % rect.size[2];
    rest /= rect.size[2];
    int64_t h = rest % rect.size[1], t = rest / rect.size[1];
    int64_t ct = (rect.origin[0] + t) % grid->canvas[0];
    int64_t cy = (rect.origin[1] + h) % grid->canvas[1];
    int64_t cx = (rect.origin[2] + w) % grid->canvas[2];
    return ((ct * grid->canvas[1] + cy) * grid->canvas[2] + cx) * c + ch;
}

/* ---- torus tile copies ------------------------------------------------------------------ */

START_TEST(torus_read_matches_tile_extract)
{
    uint64_t rng = 11;
    sdlk_canvas cv;
    random_canvas(&cv, 2, 6, 8, 3, &rng);
    const int64_t canvas[3] = {2, 6, 8}, tile[3] = {1, 3, 4};
    const int64_t shifts[][3] = {{0, 0, 0}, {1, 2, 3}, {0, 5, 7}, {1, 1, 6}};
    sdlk_tensor view;
    sdlk_error err = {0};
    const int64_t shape[4] = {2, 6, 8, 3};
    ck_assert_int_eq(sdlk_tensor_borrow(&view, SDLK_F32, 4, shape, cv.data, &err), SDLK_OK);
    float buf[36];
    for (size_t s = 0; s < sizeof shifts / sizeof shifts[0]; s++) {
        sdlk_tile_grid grid;
        ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvas, tile, shifts[s], &err), SDLK_OK);
        sdlk_canvas copy;
        ck_assert_int_eq(sdlk_canvas_alloc(&copy, 2, 6, 8, 3, &err), SDLK_OK);
        for (int64_t i = 0; i < sdlk_tile_grid_count(&grid); i++) {
            sdlk_tensor ref;
            sdlk_tensor_init(&ref);
            ck_assert_int_eq(sdlk_tile_extract(&view, &grid, i, &ref, &err), SDLK_OK);
            sdlk_torus_read(&cv, &grid, i, buf);
            ck_assert_int_eq(memcmp(buf, ref.data, sizeof buf), 0);
            for (int64_t j = 0; j < 36; j++)
                ck_assert_float_eq(buf[j], cv.data[tile_elem_pos(&grid, i, 3, j)]);
            sdlk_tensor_free(&ref);
            sdlk_torus_write(&copy, &grid, i, buf);
        }
        /* the tiles cover the canvas once: writing them all rebuilds it */
        ck_assert_int_eq(memcmp(copy.data, cv.data, (size_t)sdlk_canvas_numel(&cv) * 4), 0);
        sdlk_canvas_free(&copy);
    }
    sdlk_tensor_free(&view);
    sdlk_canvas_free(&cv);
}
END_TEST

/* ---- the cache against a plain reference ------------------------------------------------ */

/* The rule of BRIEF.md section 4 written out directly, per canvas position and per tile,
 * without the library's walkers: the independent reference for the cache. */
typedef struct ref_tile {
    double k, e, tau, mean, m2;
    int n;
} ref_tile;

typedef struct ref_cache {
    double *prev, *ic, *oc; /* canvas-sized */
    ref_tile *tile;
    int64_t tiles;
    double tau, alpha;
    int warmup, every;
} ref_cache;

static int ref_decide(ref_cache *r, const sdlk_tile_grid *g, int64_t i, const float *in,
                      int64_t numel, int64_t c, int step, int steps, double *k, double *e)
{
    ref_tile *t = &r->tile[i];
    int compute = 1;
    if (!(step < r->warmup || step == steps - 1 || t->n < 2)) {
        double d_in = 0, o_mag = 0;
        for (int64_t j = 0; j < numel; j++) {
            int64_t p = tile_elem_pos(g, i, c, j);
            d_in += fabs(in[j] - r->prev[p]);
            o_mag += fabs(r->oc[p]);
        }
        d_in /= (double)numel;
        o_mag /= (double)numel;
        if (o_mag != 0) {
            t->e += t->k * d_in / o_mag;
            compute = !(t->e < t->tau);
        }
    }
    *k = t->k;
    *e = t->e;
    return compute;
}

static void ref_record(ref_cache *r, const sdlk_tile_grid *g, int64_t i, const float *in,
                       const float *out, int64_t numel, int64_t c)
{
    ref_tile *t = &r->tile[i];
    double d_in = 0, d_out = 0, mag = 0;
    for (int64_t j = 0; j < numel; j++) {
        int64_t p = tile_elem_pos(g, i, c, j);
        d_in += fabs(in[j] - r->ic[p]);
        d_out += fabs(out[j] - r->oc[p]);
        mag += fabs(out[j]);
        r->ic[p] = in[j];
        r->oc[p] = out[j];
        r->prev[p] = in[j];
    }
    if (t->n >= 1 && d_in / (double)numel > 1e-12)
        t->k = d_out / d_in;
    t->e = 0;
    t->n++;
    mag /= (double)numel;
    double delta = mag - t->mean;
    t->mean += delta / t->n;
    t->m2 += delta * (mag - t->mean);
}

static void ref_skip(ref_cache *r, const sdlk_tile_grid *g, int64_t i, const float *in,
                     float *out, int64_t numel, int64_t c)
{
    for (int64_t j = 0; j < numel; j++) {
        int64_t p = tile_elem_pos(g, i, c, j);
        out[j] = (float)(in[j] + (r->oc[p] - r->ic[p]));
        r->prev[p] = in[j];
    }
}

static void ref_retune(ref_cache *r, int step)
{
    if ((step + 1) % r->every != 0)
        return;
    double dev[64];
    for (int64_t i = 0; i < r->tiles; i++)
        dev[i] = r->tile[i].n >= 2 ? sqrt(r->tile[i].m2 / (r->tile[i].n - 1)) : 0;
    int64_t best = 0;
    for (int64_t i = 1; i < r->tiles; i++)
        if (dev[i] > dev[best])
            best = i;
    int64_t second = best == 0 ? 1 : 0;
    for (int64_t i = 0; i < r->tiles; i++)
        if (i != best && dev[i] > dev[second])
            second = i;
    for (int64_t i = 0; i < r->tiles; i++)
        r->tile[i].tau = r->tau;
    r->tile[best].tau = r->tau * (1 + r->alpha);
    r->tile[second].tau = r->tau * (1 + r->alpha / 2);
}

static double model_output(double in) { return 0.7 * in + 0.3 * sin(3.0 * in) + 0.5; }

static int close_rel(double a, double b) { return fabs(a - b) <= 1e-9 * (1.0 + fabs(b)); }

START_TEST(cache_matches_reference)
{
    enum { T = 1, H = 8, W = 8, C = 2, STEPS = 24 };
    const int64_t canvas[3] = {T, H, W}, tsize[3] = {1, 4, 4}, stride[3] = {0, 1, 3};
    const int64_t numel = 4 * 4 * C, positions = T * H * W * C;
    sdlk_cache_opts opts;
    sdlk_cache_opts_init(&opts);
    opts.tau = 0.05;
    opts.alpha = 0.8;
    opts.warmup = 2;
    opts.retune_every = 3;
    sdlk_cache cache;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_cache_init(&cache, &opts, T, H, W, C, 4, &err), SDLK_OK);
    ref_cache ref = {calloc(positions, 8), calloc(positions, 8), calloc(positions, 8),
                     calloc(4, sizeof(ref_tile)), 4, opts.tau, opts.alpha, opts.warmup,
                     opts.retune_every};
    for (int i = 0; i < 4; i++)
        ref.tile[i].tau = opts.tau;
    /* inputs drift at a different rate in each quadrant (some regions nearly still) */
    float base[T * H * W * C], input[T * H * W * C];
    uint64_t rng = 5;
    for (int64_t p = 0; p < positions; p++)
        base[p] = random_unit(&rng);
    int skips = 0, free_computes = 0;
    for (int s = 0; s < STEPS; s++) {
        for (int64_t p = 0; p < positions; p++) {
            int64_t y = p / (W * C), x = p / C % W;
            double rate = (y < H / 2 ? 0.002 : 0.02) * (x < W / 2 ? 1.0 : 7.0);
            input[p] = (float)(base[p] + rate * s * (1.0 + 0.3 * sin((double)p)));
        }
        int64_t shift[3];
        sdlk_tile_grid grid;
        sdlk_tile_torus_shift(tsize, stride, s, shift);
        ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvas, tsize, shift, &err), SDLK_OK);
        for (int64_t i = 0; i < 4; i++) {
            float in[4 * 4 * C], out[4 * 4 * C], want[4 * 4 * C];
            for (int64_t j = 0; j < numel; j++)
                in[j] = input[tile_elem_pos(&grid, i, C, j)];
            sdlk_cache_decision dec;
            sdlk_cache_decide(&cache, &grid, i, in, s, STEPS, &dec);
            double k, e;
            int compute = ref_decide(&ref, &grid, i, in, numel, C, s, STEPS, &k, &e);
            ck_assert_int_eq(dec.compute, compute);
            ck_assert_msg(close_rel(dec.k, k) && close_rel(dec.err, e) &&
                              close_rel(dec.tau, ref.tile[i].tau),
                          "step %d tile %lld: k %g/%g E %g/%g tau %g/%g", s, (long long)i,
                          dec.k, k, dec.err, e, dec.tau, ref.tile[i].tau);
            if (compute) {
                for (int64_t j = 0; j < numel; j++)
                    out[j] = (float)model_output(in[j]);
                sdlk_cache_record(&cache, &grid, i, in, out);
                ref_record(&ref, &grid, i, in, out, numel, C);
                free_computes += s >= opts.warmup && s < STEPS - 1 && ref.tile[i].n > 2;
            } else {
                sdlk_cache_skip_output(&cache, &grid, i, in, out);
                ref_skip(&ref, &grid, i, in, want, numel, C);
                for (int64_t j = 0; j < numel; j++)
                    ck_assert_float_eq_tol(out[j], want[j], 1e-6);
                skips++;
            }
        }
        sdlk_cache_retune(&cache, s);
        ref_retune(&ref, s);
    }
    /* the script must exercise both outcomes of the rule */
    ck_assert_int_gt(skips, 0);
    ck_assert_int_gt(free_computes, 0);
    sdlk_cache_free(&cache);
    free(ref.prev);
    free(ref.ic);
    free(ref.oc);
    free(ref.tile);
}
END_TEST

/* One tile covering a 1x4x4x1 canvas, for the scalar tests below. */
static void one_tile_cache(sdlk_cache *cache, sdlk_tile_grid *grid, double tau, int warmup)
{
    sdlk_cache_opts opts;
    sdlk_cache_opts_init(&opts);
    opts.tau = tau;
    opts.alpha = 0.0;
    opts.warmup = warmup;
    sdlk_error err = {0};
    const int64_t canvas[3] = {1, 4, 4}, shift[3] = {0, 0, 0};
    ck_assert_int_eq(sdlk_tile_grid_torus(grid, canvas, canvas, shift, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_cache_init(cache, &opts, 1, 4, 4, 1, 1, &err), SDLK_OK);
}

/* Step the single-tile cache with input `level` everywhere (plus a fixed pattern) and
 * output `gain * input + offset` when computed; returns the decision. */
static sdlk_cache_decision step_one_tile(sdlk_cache *cache, const sdlk_tile_grid *grid,
                                         double level, double gain, double offset, int s,
                                         int steps)
{
    float in[16], out[16];
    for (int j = 0; j < 16; j++)
        in[j] = (float)(level + 0.01 * j);
    sdlk_cache_decision dec;
    sdlk_cache_decide(cache, grid, 0, in, s, steps, &dec);
    ck_assert(isfinite(dec.k) && isfinite(dec.err));
    if (dec.compute) {
        for (int j = 0; j < 16; j++)
            out[j] = (float)(gain * in[j] + offset);
        sdlk_cache_record(cache, grid, 0, in, out);
    } else {
        sdlk_cache_skip_output(cache, grid, 0, in, out);
        for (int j = 0; j < 16; j++)
            ck_assert(isfinite(out[j]));
    }
    sdlk_cache_retune(cache, s);
    return dec;
}

START_TEST(cache_k_survives_skips)
{
    /* The published code stored I + R as the previous output on a skip, which makes the
     * next k exactly 1 and stretches skip runs. Here the model's true rate is 2: k must
     * stay 2 through skips (updated only by real computations) and every skip run must
     * end after about tau / (2 * dI / |O|) steps. */
    enum { STEPS = 40 };
    sdlk_cache cache;
    sdlk_tile_grid grid;
    one_tile_cache(&cache, &grid, 0.035, 2);
    int run = 0, longest = 0, skips = 0, computes_after_skip = 0;
    for (int s = 0; s < STEPS; s++) {
        sdlk_cache_decision dec = step_one_tile(&cache, &grid, 1.0 + 0.01 * s, 2.0, 0.0, s,
                                                STEPS);
        if (s >= 2)
            ck_assert_msg(fabs(dec.k - 2.0) < 1e-4, "step %d: k = %.9f", s, dec.k);
        if (!dec.compute) {
            run++;
            skips++;
            ck_assert_int_eq(cache.tile[0].skip_run, run);
        } else {
            computes_after_skip += run > 0;
            run = 0;
        }
        longest = run > longest ? run : longest;
    }
    /* increment per skip ~ 2 * 0.01 / (2 * 1.2): 4 skips reach tau 0.035; the buggy k = 1
     * would allow 8 */
    ck_assert_int_gt(skips, 10);
    ck_assert_int_le(longest, 5);
    ck_assert_int_gt(computes_after_skip, 3);
    ck_assert_int_eq(cache.tile[0].skips + cache.tile[0].computes, STEPS);
    sdlk_cache_free(&cache);
}
END_TEST

START_TEST(cache_forced_steps)
{
    /* with an enormous tau everything that may skip does: exactly the warm-up and the
     * final step compute */
    enum { STEPS = 12, WARMUP = 5 };
    sdlk_cache cache;
    sdlk_tile_grid grid;
    one_tile_cache(&cache, &grid, 1e9, WARMUP);
    for (int s = 0; s < STEPS; s++) {
        sdlk_cache_decision dec = step_one_tile(&cache, &grid, 0.3 * s, 0.5, 0.1, s, STEPS);
        ck_assert_int_eq(dec.compute, s < WARMUP || s == STEPS - 1);
    }
    sdlk_cache_free(&cache);
}
END_TEST

START_TEST(cache_zero_input_change)
{
    enum { STEPS = 10 };
    sdlk_cache cache;
    sdlk_tile_grid grid;
    /* constant input: k is never measured (no division by a zero change), E stays 0 and
     * the tile skips after the warm-up */
    one_tile_cache(&cache, &grid, 0.05, 2);
    for (int s = 0; s < STEPS; s++) {
        sdlk_cache_decision dec = step_one_tile(&cache, &grid, 0.5, 0.5, 1.0, s, STEPS);
        ck_assert(dec.k == 0.0 && dec.err == 0.0 && dec.input_change == 0.0);
        ck_assert_int_eq(dec.compute, s < 2 || s == STEPS - 1);
    }
    sdlk_cache_free(&cache);
    /* an all-zero output leaves the relative rate undefined: always compute */
    one_tile_cache(&cache, &grid, 0.05, 2);
    for (int s = 0; s < STEPS; s++) {
        sdlk_cache_decision dec = step_one_tile(&cache, &grid, 0.1 * s, 0.0, 0.0, s, STEPS);
        ck_assert_int_eq(dec.compute, 1);
    }
    sdlk_cache_free(&cache);
}
END_TEST

START_TEST(cache_retune_top_two)
{
    /* four tiles whose output magnitudes vary by different amounts: after the fifth step
     * the most active gets tau (1 + alpha), the second tau (1 + alpha / 2) */
    sdlk_cache_opts opts;
    sdlk_cache_opts_init(&opts);
    opts.tau = 0.04;
    opts.alpha = 1.0;
    sdlk_cache cache;
    sdlk_error err = {0};
    const int64_t canvas[3] = {1, 4, 4}, tile[3] = {1, 2, 2}, shift[3] = {0, 0, 0};
    sdlk_tile_grid grid;
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvas, tile, shift, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_cache_init(&cache, &opts, 1, 4, 4, 1, 4, &err), SDLK_OK);
    const double swing[4] = {0.0, 0.5, 2.0, 0.1}; /* tile 2 most active, then 1 */
    for (int s = 0; s < 5; s++) {
        for (int64_t i = 0; i < 4; i++) {
            float in[4], out[4];
            for (int j = 0; j < 4; j++) {
                in[j] = (float)(0.1 * s + j);
                out[j] = (float)(1.0 + swing[i] * (s % 2));
            }
            sdlk_cache_decision dec;
            sdlk_cache_decide(&cache, &grid, i, in, s, 20, &dec);
            ck_assert_int_eq(dec.compute, 1);
            sdlk_cache_record(&cache, &grid, i, in, out);
        }
        sdlk_cache_retune(&cache, s);
        if (s < 4)
            for (int i = 0; i < 4; i++)
                ck_assert_double_eq(cache.tile[i].tau, 0.04);
    }
    ck_assert_double_eq_tol(cache.tile[2].tau, 0.08, 1e-15);
    ck_assert_double_eq_tol(cache.tile[1].tau, 0.06, 1e-15);
    ck_assert_double_eq(cache.tile[0].tau, 0.04);
    ck_assert_double_eq(cache.tile[3].tau, 0.04);
    ck_assert(sdlk_cache_tile_activity(&cache.tile[2]) > sdlk_cache_tile_activity(&cache.tile[1]));
    sdlk_cache_free(&cache);
}
END_TEST

/* ---- test denoisers -------------------------------------------------------------------- */

typedef enum model_kind {
    MODEL_TARGET, /* x0 = a fixed target canvas read at the item's offset */
    MODEL_BLUR,   /* x0 = 0.8 x a 3x3 box blur inside the tile (depends on the borders) */
    MODEL_ZERO    /* x0 = 0 */
} model_kind;

typedef struct test_model {
    model_kind kind;
    const sdlk_canvas *target; /* MODEL_TARGET */
    int64_t canvas[3];         /* T, H, W of the refined canvas */
    int64_t tiles;             /* per grid, for the call counters */
    atomic_int *calls;         /* [steps * tiles] */
    int fail_step;             /* inject an error at (fail_step, fail_tile); -1 none */
    int64_t fail_tile;
    atomic_int oversized;      /* batches above max_batch seen */
    sdlk_canvas *first_input;  /* when set: the model's step-0 inputs, put back in place */
} test_model;

static sdlk_status model_open(sdlk_denoiser *d, const sdlk_gen_request *req, sdlk_error *err)
{
    (void)d, (void)req, (void)err;
    return SDLK_OK;
}

static void model_close(sdlk_denoiser *d, int64_t request) { (void)d, (void)request; }

static void model_destroy(sdlk_denoiser *d) { (void)d; }

/* Copy between a tile and its place on the (wrapping) canvas of m: into tile_out from
 * `canvas` when tile_out is not NULL, else from tile_in into `canvas`. */
static void tile_canvas_copy(const test_model *m, const sdlk_denoiser_desc *desc,
                             const sdlk_denoise_item *it, float *canvas, float *tile_out,
                             const float *tile_in)
{
    int64_t c = desc->channels, j = 0;
    for (int64_t t = 0; t < desc->tile[0]; t++)
        for (int64_t y = 0; y < desc->tile[1]; y++)
            for (int64_t x = 0; x < desc->tile[2]; x++)
                for (int64_t ch = 0; ch < c; ch++, j++) {
                    int64_t ct = (it->offset[0] + t) % m->canvas[0];
                    int64_t cy = (it->offset[1] + y) % m->canvas[1];
                    int64_t cx = (it->offset[2] + x) % m->canvas[2];
                    int64_t at = ((ct * m->canvas[1] + cy) * m->canvas[2] + cx) * c + ch;
                    if (tile_out)
                        tile_out[j] = canvas[at];
                    else
                        canvas[at] = tile_in[j];
                }
}

static void predict_target(const test_model *m, const sdlk_denoiser_desc *desc,
                           const sdlk_denoise_item *it)
{
    tile_canvas_copy(m, desc, it, m->target->data, it->out, NULL);
}

static void predict_blur(const sdlk_denoiser_desc *desc, const sdlk_denoise_item *it)
{
    int64_t c = desc->channels, th = desc->tile[1], tw = desc->tile[2];
    for (int64_t t = 0; t < desc->tile[0]; t++)
        for (int64_t y = 0; y < th; y++)
            for (int64_t x = 0; x < tw; x++)
                for (int64_t ch = 0; ch < c; ch++) {
                    double sum = 0;
                    int n = 0;
                    for (int64_t dy = -1; dy <= 1; dy++)
                        for (int64_t dx = -1; dx <= 1; dx++) {
                            int64_t yy = y + dy, xx = x + dx;
                            if (yy < 0 || yy >= th || xx < 0 || xx >= tw)
                                continue;
                            sum += it->x[((t * th + yy) * tw + xx) * c + ch];
                            n++;
                        }
                    it->out[((t * th + y) * tw + x) * c + ch] = (float)(0.8 * sum / n);
                }
}

/* Put a step-0 input tile back at its canvas position (tiles are disjoint: no races). */
static void record_input(const test_model *m, const sdlk_denoiser_desc *desc,
                         const sdlk_denoise_item *it)
{
    tile_canvas_copy(m, desc, it, m->first_input->data, NULL, it->x);
}

static sdlk_status model_predict(sdlk_denoiser *d, const sdlk_denoise_item *items, int n,
                                 sdlk_error *err)
{
    test_model *m = d->impl;
    if (n > d->desc.max_batch)
        atomic_fetch_add(&m->oversized, 1);
    int64_t numel = sdlk_denoiser_tile_numel(&d->desc);
    for (int i = 0; i < n; i++) {
        const sdlk_denoise_item *it = &items[i];
        if (it->step == m->fail_step && it->tile_id == m->fail_tile)
            return sdlk_error_set(err, SDLK_ERR_DEVICE,
                                  "test model: injected failure at step %d tile %lld",
                                  it->step, (long long)it->tile_id);
        if (m->calls)
            atomic_fetch_add(&m->calls[(int64_t)it->step * m->tiles + it->tile_id], 1);
        if (m->first_input && it->step == 0)
            record_input(m, &d->desc, it);
        if (m->kind == MODEL_TARGET)
            predict_target(m, &d->desc, it);
        else if (m->kind == MODEL_BLUR)
            predict_blur(&d->desc, it);
        else
            memset(it->out, 0, (size_t)numel * sizeof *it->out);
    }
    return SDLK_OK;
}

static const sdlk_denoiser_ops model_ops = {model_open, model_close, model_predict,
                                            model_destroy};

static void model_init(sdlk_denoiser *d, test_model *m, model_kind kind,
                       const sdlk_canvas *canvas, int64_t tile_t, int64_t tile_hw, int max_batch)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->canvas[0] = canvas->t;
    m->canvas[1] = canvas->h;
    m->canvas[2] = canvas->w;
    m->tiles = (canvas->t / tile_t) * (canvas->h / tile_hw) * (canvas->w / tile_hw);
    m->fail_step = -1;
    memset(d, 0, sizeof *d);
    d->ops = &model_ops;
    snprintf(d->desc.name, sizeof d->desc.name, "test");
    d->desc.channels = (int)canvas->c;
    d->desc.tile[0] = tile_t;
    d->desc.tile[1] = tile_hw;
    d->desc.tile[2] = tile_hw;
    d->desc.pred = SDLK_PRED_X0;
    d->desc.time = SDLK_TIME_VP;
    d->desc.max_batch = max_batch;
    d->desc.workers = 1;
    d->impl = m;
}

static void refine_opts(sdlk_refine_opts *o, const sdlk_denoiser *d, int steps, double strength)
{
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_refine_opts_init(o, &d->desc, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_schedule_init(&o->schedule, d->desc.time, steps, strength, &err),
                     SDLK_OK);
}

/* Collects trace rows: how often each (step, tile) appeared, and the computed flags. */
typedef struct trace_log {
    int64_t tiles;
    int steps;
    int *seen, *computed;
    int64_t rows, computed_rows;
    int out_of_order;
    int last_step;
    int64_t last_tile;
} trace_log;

static void trace_log_init(trace_log *log, int steps, int64_t tiles)
{
    memset(log, 0, sizeof *log);
    log->steps = steps;
    log->tiles = tiles;
    log->seen = calloc((size_t)(steps * tiles), sizeof *log->seen);
    log->computed = calloc((size_t)(steps * tiles), sizeof *log->computed);
    log->last_step = -1;
    log->last_tile = -1;
}

static void trace_log_free(trace_log *log)
{
    free(log->seen);
    free(log->computed);
}

static void collect_row(void *ctx, const sdlk_refine_trace_row *row)
{
    trace_log *log = ctx;
    ck_assert(row->step >= 0 && row->step < log->steps);
    ck_assert(row->tile >= 0 && row->tile < log->tiles);
    ck_assert(row->worker >= 0 && row->worker < SDLK_REFINE_MAX_WORKERS);
    /* rows come step by step, tiles in order */
    if (row->step < log->last_step || (row->step == log->last_step && row->tile <= log->last_tile))
        log->out_of_order = 1;
    log->last_step = row->step;
    log->last_tile = row->tile;
    log->seen[row->step * log->tiles + row->tile]++;
    log->computed[row->step * log->tiles + row->tile] = row->computed;
    log->rows++;
    log->computed_rows += row->computed;
}

/* ---- the engine ----------------------------------------------------------------------- */

START_TEST(refine_reaches_target)
{
    /* an x0 model that always predicts the target: DDIM lands on it at the clean level,
     * whatever the cache skipped in between (the last step always computes) */
    uint64_t rng = 21;
    sdlk_canvas sketch, target, x;
    random_canvas(&sketch, 2, 16, 24, 3, &rng);
    random_canvas(&target, 2, 16, 24, 3, &rng);
    for (int cached = 0; cached < 2; cached++) {
        sdlk_error err = {0};
        ck_assert_int_eq(sdlk_canvas_alloc(&x, 2, 16, 24, 3, &err), SDLK_OK);
        memcpy(x.data, sketch.data, (size_t)sdlk_canvas_numel(&x) * 4);
        sdlk_denoiser d;
        test_model m;
        model_init(&d, &m, MODEL_TARGET, &x, 1, 8, 2);
        m.target = &target;
        sdlk_refine_opts o;
        refine_opts(&o, &d, 8, 0.6);
        o.cache.enabled = cached;
        o.cache.warmup = 2;
        o.workers = 2;
        sdlk_refine_stats stats;
        ck_assert_int_eq(sdlk_refine(&d, &x, &o, &stats, &err), SDLK_OK);
        for (int64_t i = 0; i < sdlk_canvas_numel(&x); i++)
            ck_assert_float_eq_tol(x.data[i], target.data[i], 1e-5);
        ck_assert_int_eq(stats.tile_evals, 12 * 8);
        ck_assert_int_eq(stats.computed + stats.skipped, stats.tile_evals);
        ck_assert_int_eq(stats.workers, 2);
        ck_assert_int_eq(stats.computed_by[0] + stats.computed_by[1], stats.computed);
        ck_assert_int_eq(atomic_load(&m.oversized), 0);
        sdlk_canvas_free(&x);
    }
    sdlk_canvas_free(&sketch);
    sdlk_canvas_free(&target);
}
END_TEST

/* Refine a copy of `sketch` with the blur model; returns the canvas, stats and trace. */
static void run_blur(const sdlk_canvas *sketch, int cached, double tau, int workers,
                     int redistribute, int max_batch, sdlk_canvas *x, sdlk_refine_stats *stats,
                     trace_log *log, atomic_int **calls)
{
    enum { STEPS = 12 };
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(x, sketch->t, sketch->h, sketch->w, sketch->c, &err),
                     SDLK_OK);
    memcpy(x->data, sketch->data, (size_t)sdlk_canvas_numel(x) * 4);
    sdlk_denoiser d;
    test_model m;
    model_init(&d, &m, MODEL_BLUR, x, 1, 8, max_batch);
    m.calls = calloc((size_t)(STEPS * m.tiles), sizeof *m.calls);
    sdlk_refine_opts o;
    refine_opts(&o, &d, STEPS, 0.5);
    o.cache.enabled = cached;
    o.cache.tau = tau;
    o.workers = workers;
    o.redistribute = redistribute;
    o.seed = 77;
    trace_log_init(log, STEPS, m.tiles);
    o.trace = collect_row;
    o.trace_ctx = log;
    ck_assert_int_eq(sdlk_refine(&d, x, &o, stats, &err), SDLK_OK);
    ck_assert_int_eq(atomic_load(&m.oversized), 0);
    *calls = m.calls;
}

/* A sketch with quiet and busy regions, so that the cache skips unevenly. */
static void uneven_sketch(sdlk_canvas *cv)
{
    uint64_t rng = 99;
    random_canvas(cv, 2, 24, 32, 3, &rng);
    for (int64_t t = 0; t < 2; t++)
        for (int64_t y = 0; y < 24; y++)
            for (int64_t x = 0; x < 32; x++)
                if (x < 16)
                    for (int64_t c = 0; c < 3; c++)
                        cv->data[((t * 24 + y) * 32 + x) * 3 + c] = 0.2f;
}

START_TEST(refine_identical_for_any_workers)
{
    sdlk_canvas sketch;
    uneven_sketch(&sketch);
    int64_t numel = sdlk_canvas_numel(&sketch);
    for (int cached = 0; cached < 2; cached++) {
        sdlk_canvas base;
        sdlk_refine_stats base_stats, stats;
        trace_log base_log, log;
        atomic_int *calls;
        const double tau = 0.6; /* skips a third of the free steps, unevenly */
        run_blur(&sketch, cached, tau, 1, 1, 3, &base, &base_stats, &base_log, &calls);
        free(calls);
        if (cached)
            ck_assert_int_gt(base_stats.skipped, 0);
        for (int workers = 1; workers <= 3; workers++)
            for (int redistribute = 0; redistribute < 2; redistribute++) {
                sdlk_canvas x;
                run_blur(&sketch, cached, tau, workers, redistribute, 1 + workers, &x, &stats,
                         &log, &calls);
                ck_assert_msg(memcmp(x.data, base.data, (size_t)numel * 4) == 0,
                              "cache %d, %d workers, redistribute %d: output differs", cached,
                              workers, redistribute);
                ck_assert_int_eq(stats.computed, base_stats.computed);
                ck_assert_int_eq(memcmp(log.computed, base_log.computed,
                                        (size_t)(log.steps * log.tiles) * sizeof(int)), 0);
                int64_t by = 0;
                for (int w = 0; w < workers; w++)
                    by += stats.computed_by[w];
                ck_assert_int_eq(by, stats.computed);
                if (workers == 1 || !redistribute)
                    ck_assert_int_eq(stats.moved, 0);
                if (redistribute && cached && workers > 1)
                    ck_assert_int_gt(stats.moved, 0); /* the skips are uneven */
                if (redistribute && workers > 1) {
                    /* evenly: computed counts per worker differ by at most a step count */
                    for (int w = 1; w < workers; w++)
                        ck_assert(llabs((long long)(stats.computed_by[w] - stats.computed_by[0])) <=
                                  log.steps);
                }
                free(calls);
                trace_log_free(&log);
                sdlk_canvas_free(&x);
            }
        trace_log_free(&base_log);
        sdlk_canvas_free(&base);
    }
    sdlk_canvas_free(&sketch);
}
END_TEST

START_TEST(refine_cache_skips_and_traces)
{
    sdlk_canvas sketch, x;
    uneven_sketch(&sketch);
    sdlk_refine_stats stats;
    trace_log log;
    atomic_int *calls;
    run_blur(&sketch, 1, 1e6, 2, 1, 4, &x, &stats, &log, &calls);
    int64_t tiles = log.tiles, steps = log.steps;
    ck_assert_int_eq(stats.tile_evals, tiles * steps);
    ck_assert_int_eq(stats.computed + stats.skipped, tiles * steps);
    /* enormous tau: only the warm-up (5) and the last step compute */
    ck_assert_int_eq(stats.computed, tiles * 6);
    ck_assert_int_eq(log.rows, tiles * steps);
    ck_assert_int_eq(log.computed_rows, stats.computed);
    ck_assert_int_eq(log.out_of_order, 0);
    for (int64_t s = 0; s < steps; s++)
        for (int64_t t = 0; t < tiles; t++) {
            ck_assert_int_eq(log.seen[s * tiles + t], 1);
            /* the model ran exactly for the computed (step, tile) pairs, once each */
            ck_assert_int_eq(atomic_load(&calls[s * tiles + t]), log.computed[s * tiles + t]);
            ck_assert_int_eq(log.computed[s * tiles + t], s < 5 || s == steps - 1);
        }
    ck_assert(stats.busy_s[0] >= 0 && stats.busy_s[1] >= 0 && stats.wall_s > 0);
    free(calls);
    trace_log_free(&log);
    sdlk_canvas_free(&x);
    sdlk_canvas_free(&sketch);
}
END_TEST

START_TEST(refine_ilvr_follows_sketch)
{
    /* A model that predicts x0 = 0 knows nothing; with ILVR the output is exactly the
     * sketch's low frequencies (the last conditioning is on the clean sketch), without it
     * the output is 0. */
    uint64_t rng = 3;
    sdlk_canvas sketch, low, x;
    random_canvas(&sketch, 1, 16, 16, 3, &rng);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(&low, 1, 16, 16, 3, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_lowpass(&sketch, 2.0, &low, NULL, &err), SDLK_OK);
    for (int ilvr = 0; ilvr < 2; ilvr++) {
        ck_assert_int_eq(sdlk_canvas_alloc(&x, 1, 16, 16, 3, &err), SDLK_OK);
        memcpy(x.data, sketch.data, sizeof(float) * 16 * 16 * 3);
        sdlk_denoiser d;
        test_model m;
        model_init(&d, &m, MODEL_ZERO, &x, 1, 8, 4);
        sdlk_refine_opts o;
        refine_opts(&o, &d, 6, 0.5);
        o.ilvr_factor = ilvr ? 2.0 : 0.0;
        o.ilvr_passes = 1; /* the single-pass formula; back-projection is checked below */
        o.workers = 2;
        ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_OK);
        double far = 0;
        for (int64_t i = 0; i < 16 * 16 * 3; i++) {
            ck_assert_float_eq_tol(x.data[i], ilvr ? low.data[i] : 0.0f, 1e-5);
            far = fmax(far, fabs(x.data[i] - sketch.data[i]));
        }
        ck_assert(far > 0.1); /* the high frequencies are not the sketch's */
        sdlk_canvas_free(&x);
    }
    sdlk_canvas_free(&sketch);
    sdlk_canvas_free(&low);
}
END_TEST

/* Back-projection: more ILVR passes bring down(output) closer to down(sketch) (the
 * consistency the passes enforce), for the zero model where the output is pure ILVR. */
static double ilvr_inconsistency(int passes)
{
    uint64_t rng = 5;
    sdlk_canvas sketch, x, small_sketch, small_x;
    random_canvas(&sketch, 1, 16, 16, 3, &rng);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(&x, 1, 16, 16, 3, &err), SDLK_OK);
    memcpy(x.data, sketch.data, sizeof(float) * 16 * 16 * 3);
    sdlk_denoiser d;
    test_model m;
    model_init(&d, &m, MODEL_ZERO, &x, 1, 8, 4);
    sdlk_refine_opts o;
    refine_opts(&o, &d, 3, 0.5);
    o.ilvr_factor = 2.0;
    o.ilvr_passes = passes;
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&small_sketch, 1, 8, 8, 3, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&small_x, 1, 8, 8, 3, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_resize(&sketch, &small_sketch, NULL, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_resize(&x, &small_x, NULL, &err), SDLK_OK);
    double sum = 0;
    for (int64_t i = 0; i < 8 * 8 * 3; i++)
        sum += fabs((double)small_x.data[i] - small_sketch.data[i]);
    sdlk_canvas_free(&sketch);
    sdlk_canvas_free(&x);
    sdlk_canvas_free(&small_sketch);
    sdlk_canvas_free(&small_x);
    return sum / (8 * 8 * 3);
}

START_TEST(refine_ilvr_passes_back_project)
{
    double one = ilvr_inconsistency(1), four = ilvr_inconsistency(4),
           eight = ilvr_inconsistency(8);
    ck_assert_msg(four < 0.7 * one && eight < four, "inconsistency 1/4/8 passes: %g %g %g", one,
                  four, eight);
}
END_TEST

START_TEST(refine_passes_denoiser_errors)
{
    sdlk_canvas sketch, x;
    uneven_sketch(&sketch);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(&x, 2, 24, 32, 3, &err), SDLK_OK);
    memcpy(x.data, sketch.data, (size_t)sdlk_canvas_numel(&x) * 4);
    sdlk_denoiser d;
    test_model m;
    model_init(&d, &m, MODEL_BLUR, &x, 1, 8, 2);
    m.fail_step = 3;
    m.fail_tile = 17;
    sdlk_refine_opts o;
    refine_opts(&o, &d, 8, 0.5);
    o.workers = 3;
    sdlk_refine_stats stats;
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, &stats, &err), SDLK_ERR_DEVICE);
    ck_assert_ptr_nonnull(strstr(err.msg, "injected failure at step 3 tile 17"));
    ck_assert_int_eq(err.code, SDLK_ERR_DEVICE);
    sdlk_canvas_free(&x);
    sdlk_canvas_free(&sketch);
}
END_TEST

typedef struct cancel_ctx {
    int calls, stop_at;
} cancel_ctx;

static int cancel_progress(void *ctx, int step, int steps)
{
    cancel_ctx *c = ctx;
    c->calls++;
    ck_assert_int_eq(steps, 8);
    ck_assert_int_eq(step, c->calls);
    return step == c->stop_at;
}

START_TEST(refine_cancels)
{
    sdlk_canvas sketch, x;
    uneven_sketch(&sketch);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(&x, 2, 24, 32, 3, &err), SDLK_OK);
    memcpy(x.data, sketch.data, (size_t)sdlk_canvas_numel(&x) * 4);
    sdlk_denoiser d;
    test_model m;
    model_init(&d, &m, MODEL_BLUR, &x, 1, 8, 2);
    m.calls = calloc((size_t)(8 * m.tiles), sizeof *m.calls);
    sdlk_refine_opts o;
    refine_opts(&o, &d, 8, 0.5);
    o.workers = 2;
    cancel_ctx c = {0, 2};
    o.progress = cancel_progress;
    o.progress_ctx = &c;
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "interrupted"));
    ck_assert_int_eq(c.calls, 2);
    for (int64_t i = 2 * m.tiles; i < 8 * m.tiles; i++)
        ck_assert_int_eq(atomic_load(&m.calls[i]), 0);
    free(m.calls);
    sdlk_canvas_free(&x);
    sdlk_canvas_free(&sketch);
}
END_TEST

/* ---- generation from noise (from_noise, known_frames) ------------------------------------ */

/* Generate on a copy of `start` with the blur model (from_noise, strength 1); returns the
 * canvas, and in `first` (when non-NULL, allocated by the caller) the step-0 inputs. */
static void run_generate(const sdlk_canvas *start, int64_t known, int workers, int cached,
                         sdlk_canvas *x, sdlk_canvas *first, atomic_int **calls)
{
    enum { STEPS = 6 };
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(x, start->t, start->h, start->w, start->c, &err),
                     SDLK_OK);
    memcpy(x->data, start->data, (size_t)sdlk_canvas_numel(x) * 4);
    sdlk_denoiser d;
    test_model m;
    model_init(&d, &m, MODEL_BLUR, x, 1, 8, 3);
    m.first_input = first;
    if (calls)
        m.calls = calloc((size_t)(STEPS * m.tiles), sizeof *m.calls);
    sdlk_refine_opts o;
    refine_opts(&o, &d, STEPS, 1.0);
    o.from_noise = 1;
    o.known_frames = known;
    o.frame_offset = 5;
    o.seed = 42;
    o.workers = workers;
    o.cache.enabled = cached;
    o.cache.warmup = 2;
    ck_assert_msg(sdlk_refine(&d, x, &o, NULL, &err) == SDLK_OK, "%s", err.msg);
    if (calls)
        *calls = m.calls;
}

START_TEST(refine_from_noise_starts_from_the_noise)
{
    /* The first model input is the position-addressed noise e itself (x_T = e, as
     * sdl-serve starts), whatever the canvas held; the result does not depend on the
     * canvas's content or the worker count, and every tile is computed at every step. */
    uint64_t rng = 8;
    sdlk_canvas start, zeros, a, b, c, first;
    random_canvas(&start, 2, 16, 24, 3, &rng);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(&zeros, 2, 16, 24, 3, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&first, 2, 16, 24, 3, &err), SDLK_OK);
    atomic_int *calls;
    run_generate(&start, 0, 1, 0, &a, &first, &calls);
    int64_t frame = 16 * 24 * 3;
    float *e = malloc((size_t)(2 * frame) * sizeof *e);
    sdlk_gaussian_fill(42, (uint64_t)(5 * frame), e, 2 * frame); /* frame_offset 5 */
    for (int64_t i = 0; i < 2 * frame; i++)
        ck_assert_float_eq(first.data[i], e[i]);
    for (int64_t i = 0; i < 6 * 12; i++) /* 6 steps x 12 tiles, once each */
        ck_assert_int_eq(atomic_load(&calls[i]), 1);
    free(calls);
    run_generate(&zeros, 0, 2, 0, &b, NULL, NULL);
    ck_assert_int_eq(memcmp(a.data, b.data, (size_t)(2 * frame) * sizeof *a.data), 0);
    /* the content is the model's: far from both the start and the noise */
    double far = 0;
    for (int64_t i = 0; i < 2 * frame; i++)
        far = fmax(far, fabs(a.data[i] - e[i]));
    ck_assert(far > 0.5);
    /* the cache runs when generating too (finite output; its accuracy is the cache's
     * own tests' business) */
    run_generate(&start, 0, 2, 1, &c, NULL, NULL);
    for (int64_t i = 0; i < 2 * frame; i++)
        ck_assert(isfinite(c.data[i]));
    free(e);
    sdlk_canvas_free(&start);
    sdlk_canvas_free(&zeros);
    sdlk_canvas_free(&first);
    sdlk_canvas_free(&a);
    sdlk_canvas_free(&b);
    sdlk_canvas_free(&c);
}
END_TEST

START_TEST(refine_known_frames_are_pinned)
{
    /* Frame 0 is known: it starts as renoise(frame 0, e) and comes out exactly as given;
     * frame 1 is generated as without it (the blur model's tiles span one frame). */
    uint64_t rng = 9;
    sdlk_canvas start, pinned, free_run, first;
    random_canvas(&start, 2, 16, 24, 3, &rng);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(&first, 2, 16, 24, 3, &err), SDLK_OK);
    run_generate(&start, 1, 2, 0, &pinned, &first, NULL);
    run_generate(&start, 0, 2, 0, &free_run, NULL, NULL);
    int64_t frame = 16 * 24 * 3;
    ck_assert_int_eq(memcmp(pinned.data, start.data, (size_t)frame * sizeof *start.data), 0);
    ck_assert_int_eq(memcmp(pinned.data + frame, free_run.data + frame,
                            (size_t)frame * sizeof *start.data), 0);
    float *e = malloc((size_t)frame * sizeof *e), *want = malloc((size_t)frame * sizeof *e);
    sdlk_gaussian_fill(42, (uint64_t)(5 * frame), e, frame);
    sdlk_renoise(SDLK_TIME_VP, sdlk_alpha_bar(999), start.data, e, want, frame);
    for (int64_t i = 0; i < frame; i++)
        ck_assert_float_eq(first.data[i], want[i]);
    free(e);
    free(want);
    sdlk_canvas_free(&start);
    sdlk_canvas_free(&pinned);
    sdlk_canvas_free(&free_run);
    sdlk_canvas_free(&first);
}
END_TEST

START_TEST(refine_rejects_bad_arguments)
{
    sdlk_error err = {0};
    sdlk_canvas x;
    ck_assert_int_eq(sdlk_canvas_alloc(&x, 1, 20, 32, 3, &err), SDLK_OK);
    sdlk_denoiser d;
    test_model m;
    model_init(&d, &m, MODEL_ZERO, &x, 1, 8, 2);
    sdlk_refine_opts o;
    refine_opts(&o, &d, 4, 0.5);
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_ERR_ARG); /* 20 % 8 */
    ck_assert_ptr_nonnull(strstr(err.msg, "height 20"));
    sdlk_canvas_free(&x);
    ck_assert_int_eq(sdlk_canvas_alloc(&x, 1, 16, 16, 2, &err), SDLK_OK);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_ERR_ARG); /* channels */
    sdlk_canvas_free(&x);
    ck_assert_int_eq(sdlk_canvas_alloc(&x, 1, 16, 16, 3, &err), SDLK_OK);
    o.workers = 0;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_ERR_ARG);
    o.workers = 1;
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_OK);
    /* generation: no sketch for ILVR; known frames only when generating, fewer than T */
    o.from_noise = 1;
    o.ilvr_factor = 2.0;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "ILVR"));
    o.ilvr_factor = 0.0;
    o.known_frames = 1; /* T = 1 */
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "known frames"));
    o.from_noise = 0;
    o.known_frames = 0;
    ck_assert_int_eq(sdlk_refine(&d, &x, &o, NULL, &err), SDLK_OK);
    sdlk_canvas_free(&x);
}
END_TEST

/* Seamless by construction: with the exemplar model and its halo, refining with 32x32
 * cores, 64x64 cores or one core covering the whole canvas gives the same sample (to
 * float rounding), although the grids and their shifts differ: neighbouring tiles agree
 * where they meet. Without the halo the 32x32 run differs (the check can fail). */
static double exemplar_refine_diff(const char *spec_a, const char *spec_b, int ilvr, int side)
{
    uint64_t state = 77;
    sdlk_canvas ref, a, b;
    random_canvas(&ref, 1, 24, 24, 3, &state);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(&a, 1, side, side, 3, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_resize(&ref, &a, NULL, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&b, 1, side, side, 3, &err), SDLK_OK);
    memcpy(b.data, a.data, (size_t)sdlk_canvas_numel(&a) * sizeof *a.data);
    sdlk_canvas *out[2] = {&a, &b};
    const char *spec[2] = {spec_a, spec_b};
    for (int i = 0; i < 2; i++) {
        sdlk_denoiser *d = NULL;
        ck_assert_int_eq(sdlk_denoiser_open_spec(spec[i], NULL, 0, &d, &err), SDLK_OK);
        sdlk_gen_request req = {.id = 1, .reference = ref.data, .ref_shape = {1, 24, 24, 3}};
        ck_assert_int_eq(sdlk_denoiser_request_open(d, &req, &err), SDLK_OK);
        sdlk_refine_opts o;
        refine_opts(&o, d, 3, 0.3);
        o.request = 1;
        o.cache.enabled = 0;
        o.ilvr_factor = ilvr ? 2.0 : 0.0;
        /* The same shifts for both: the patch grid is then aligned alike (shift mod the
         * patch stride), which is all that tiles of different sizes must share. */
        o.shift_stride[1] = 5;
        o.shift_stride[2] = 7;
        ck_assert_msg(sdlk_refine(d, out[i], &o, NULL, &err) == SDLK_OK, "%s", err.msg);
        sdlk_denoiser_destroy(d);
    }
    double worst = 0;
    for (int64_t i = 0; i < sdlk_canvas_numel(&a); i++)
        worst = fmax(worst, fabs((double)a.data[i] - (double)b.data[i]));
    sdlk_canvas_free(&ref);
    sdlk_canvas_free(&a);
    sdlk_canvas_free(&b);
    return worst;
}

START_TEST(refine_halo_makes_tiling_invisible)
{
    const char *base = "exemplar:max_exemplars=256,tile=";
    char s32[96], s64[96], s32_nohalo[96];
    snprintf(s32, sizeof s32, "%s32", base);
    snprintf(s64, sizeof s64, "%s64", base);
    snprintf(s32_nohalo, sizeof s32_nohalo, "%s32,halo=0", base);
    for (int ilvr = 0; ilvr < 2; ilvr++) {
        double d = exemplar_refine_diff(s32, s64, ilvr, 64);
        ck_assert_msg(d < 1e-4, "32 vs 64 cores (ilvr %d): max difference %g", ilvr, d);
    }
    double seams = exemplar_refine_diff(s32_nohalo, s64, 1, 64);
    /* one 128 px core: a 136 px window of 1089 patches, estimated in several blocks on
     * two threads of the model's own pool */
    char s128[96];
    snprintf(s128, sizeof s128, "%s128,threads=2", base);
    double big = exemplar_refine_diff(s32, s128, 1, 128);
    ck_assert_msg(big < 1e-4, "32 vs one 128 core: max difference %g", big);
    ck_assert_msg(seams > 1e-2, "without a halo the tiling should show (difference %g)", seams);
}
END_TEST

/* The moving patch grid (lattice=moving) is placed by canvas position and step, so its
 * auto halo (patch - 1) makes tiling exact too, for cores that are not multiples of the
 * stride and for one core over the whole canvas; and it is a different model from the
 * fixed grid (the comparison can fail). */
START_TEST(refine_moving_lattice_tiles_exactly)
{
    const char *base = "exemplar:max_exemplars=256,lattice=moving,tile=";
    char s32[96], s30[96], s60[96], s64[96], fixed[96];
    snprintf(s32, sizeof s32, "%s32", base);
    snprintf(s30, sizeof s30, "%s30", base);
    snprintf(s60, sizeof s60, "%s60", base);
    snprintf(s64, sizeof s64, "%s64", base);
    snprintf(fixed, sizeof fixed, "exemplar:max_exemplars=256,tile=32");
    double d = exemplar_refine_diff(s32, s64, 1, 64);
    ck_assert_msg(d < 1e-4, "moving grid, 32 vs 64 cores: max difference %g", d);
    d = exemplar_refine_diff(s30, s60, 0, 60); /* 30: not a multiple of the stride */
    ck_assert_msg(d < 1e-4, "moving grid, 30 vs 60 cores: max difference %g", d);
    d = exemplar_refine_diff(s32, fixed, 1, 64);
    ck_assert_msg(d > 1e-2, "moving and fixed grids should differ (difference %g)", d);
}
END_TEST

int main(void)
{
    return UNIT_RUN("gen_refine", torus_read_matches_tile_extract, cache_matches_reference,
                    cache_k_survives_skips, cache_forced_steps, cache_zero_input_change,
                    cache_retune_top_two, refine_reaches_target,
                    refine_identical_for_any_workers, refine_cache_skips_and_traces,
                    refine_ilvr_follows_sketch, refine_passes_denoiser_errors, refine_cancels,
                    refine_rejects_bad_arguments, refine_halo_makes_tiling_invisible,
                    refine_ilvr_passes_back_project, refine_from_noise_starts_from_the_noise,
                    refine_known_frames_are_pinned, refine_moving_lattice_tiles_exactly);
}
