/* Unit tests of the model side of lib/gen: noise schedules and samplers, Gaussian
 * noise, canvases and Keys resampling, the exemplar denoiser and denoiser specs. Each
 * is checked against an independent reference (published constants, a slow double-
 * precision implementation of the formula written here, or an algebraic identity). */
#include <cblas.h>
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/pool.h"
#include "core/tensor.h"
#include "gen/canvas.h"
#include "gen/denoiser.h"
#include "gen/exemplar.h"
#include "gen/schedule.h"
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
static float uniform_pm1(uint64_t *state)
{
    return (float)((double)(next_random(state) >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static void fill_uniform(float *x, int64_t n, uint64_t *state)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = uniform_pm1(state);
}

/* max(worst, |a - b|), where a NaN counts as infinitely far (fmax would drop it). */
static double worse(double worst, double a, double b)
{
    double d = fabs(a - b);
    return isnan(d) ? INFINITY : fmax(worst, d);
}

static double max_abs_diff_f(const float *a, const float *b, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        m = worse(m, a[i], b[i]);
    return m;
}

/* ---- schedules -------------------------------------------------------------------- */

START_TEST(alpha_bar_matches_scaled_linear)
{
    /* betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2, cumulative product of 1 - beta */
    double prod = 1.0;
    for (int t = 0; t < 1000; t++) {
        double root = sqrt(0.00085) + (sqrt(0.012) - sqrt(0.00085)) * t / 999.0;
        prod *= 1.0 - root * root;
        ck_assert_double_eq_tol(sdlk_alpha_bar(t), prod, 1e-12);
    }
    /* published values of Stable Diffusion's alphas_cumprod */
    ck_assert_double_eq_tol(sdlk_alpha_bar(0), 0.99915, 1e-12);
    ck_assert_double_eq_tol(sdlk_alpha_bar(999), 0.0047, 0.0001);
    ck_assert(sdlk_alpha_bar(-3) == sdlk_alpha_bar(0));
    ck_assert(sdlk_alpha_bar(5000) == sdlk_alpha_bar(999));
}
END_TEST

START_TEST(schedule_visits_published_timesteps)
{
    sdlk_schedule s;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_schedule_init(&s, SDLK_TIME_VP, 50, 1.0, &err), SDLK_OK);
    ck_assert_int_eq(s.steps, 50);
    ck_assert_int_eq(s.timestep[0], 999);
    ck_assert_int_eq(s.timestep[49], 20); /* round(999 / 50) */
    for (int k = 0; k < 50; k++) {
        ck_assert_int_eq(s.timestep[k], (int)lround(999.0 * (50 - k) / 50.0));
        ck_assert(s.level[k] == sdlk_alpha_bar(s.timestep[k]));
        if (k > 0)
            ck_assert_int_lt(s.timestep[k], s.timestep[k - 1]);
    }
    ck_assert(s.level[50] == 1.0);

    /* SuperGen's partial re-noising: strength 0.2 starts at t = round(199.8) = 200 */
    ck_assert_int_eq(sdlk_schedule_init(&s, SDLK_TIME_FLOW, 10, 0.2, &err), SDLK_OK);
    ck_assert_int_eq(s.timestep[0], 200);
    ck_assert_int_eq(s.timestep[9], 20);
    for (int k = 0; k < 10; k++)
        ck_assert_double_eq_tol(s.level[k], s.timestep[k] / 1000.0, 1e-15);
    ck_assert(s.level[10] == 0.0);

    ck_assert_int_eq(sdlk_schedule_init(&s, SDLK_TIME_VP, 1024, 0.5, &err), SDLK_OK);
    const int bad_steps[] = {0, -1, 1025};
    for (size_t i = 0; i < sizeof bad_steps / sizeof bad_steps[0]; i++) {
        sdlk_error e = {0};
        ck_assert_int_eq(sdlk_schedule_init(&s, SDLK_TIME_VP, bad_steps[i], 1.0, &e),
                         SDLK_ERR_ARG);
        ck_assert(strstr(e.msg, "steps") != NULL);
    }
    const double bad_strength[] = {0.0, -0.5, 1.0001, NAN};
    for (size_t i = 0; i < sizeof bad_strength / sizeof bad_strength[0]; i++) {
        sdlk_error e = {0};
        ck_assert_int_eq(sdlk_schedule_init(&s, SDLK_TIME_VP, 10, bad_strength[i], &e),
                         SDLK_ERR_ARG);
        ck_assert(strstr(e.msg, "strength") != NULL);
    }
}
END_TEST

/* The mixing coefficients straight from the definitions in denoiser.h. */
static void mix(sdlk_time_kind time, double level, double *a, double *b)
{
    if (time == SDLK_TIME_VP) {
        *a = sqrt(level);
        *b = sqrt(1.0 - level);
    } else {
        *a = 1.0 - level;
        *b = level;
    }
}

/* pred of `kind` for known x0 and e, from the definitions in denoiser.h (v is defined
 * for VP time only). */
static double make_pred(sdlk_pred_type kind, double level, double x0, double e)
{
    switch (kind) {
    case SDLK_PRED_EPS: return e;
    case SDLK_PRED_X0: return x0;
    case SDLK_PRED_V: return sqrt(level) * e - sqrt(1.0 - level) * x0;
    default: return e - x0;
    }
}

START_TEST(pred_conversions_round_trip)
{
    enum { N = 257 };
    uint64_t rng = 11;
    float x0[N], e[N], x[N], pred[N], got_x0[N], got_e[N];
    fill_uniform(x0, N, &rng);
    for (int i = 0; i < N; i++)
        e[i] = 2.0f * uniform_pm1(&rng);
    const double levels[] = {0.02, 0.3, 0.5, 0.7, 0.98};
    for (int time = SDLK_TIME_VP; time <= SDLK_TIME_FLOW; time++)
        for (int kind = SDLK_PRED_EPS; kind <= SDLK_PRED_FLOW; kind++) {
            if (time == SDLK_TIME_FLOW && kind == SDLK_PRED_V)
                continue;
            for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
                double a, b;
                mix(time, levels[l], &a, &b);
                for (int i = 0; i < N; i++) {
                    x[i] = (float)(a * x0[i] + b * e[i]);
                    pred[i] = (float)make_pred(kind, levels[l], x0[i], e[i]);
                }
                sdlk_pred_to_x0_eps(time, kind, levels[l], x, pred, got_x0, got_e, N);
                /* float inputs; the worst conditioning is 1 / 0.02 for eps at flow 0.98 */
                double tol = 1e-4 / fmin(fmin(a, b), 1.0) + 1e-5;
                ck_assert_msg(max_abs_diff_f(got_x0, x0, N) < tol, "x0 time %d kind %d level %g",
                              time, kind, levels[l]);
                ck_assert_msg(max_abs_diff_f(got_e, e, N) < tol, "eps time %d kind %d level %g",
                              time, kind, levels[l]);
                /* outputs may alias pred; either output may be NULL */
                float alias[N];
                memcpy(alias, pred, sizeof alias);
                sdlk_pred_to_x0_eps(time, kind, levels[l], x, alias, alias, NULL, N);
                ck_assert(memcmp(alias, got_x0, sizeof alias) == 0);
                memcpy(alias, pred, sizeof alias);
                sdlk_pred_to_x0_eps(time, kind, levels[l], x, alias, NULL, alias, N);
                ck_assert(memcmp(alias, got_e, sizeof alias) == 0);
            }
        }
}
END_TEST

START_TEST(ddim_step_lands_on_renoised_sample)
{
    enum { N = 300 };
    uint64_t rng = 5;
    float x0[N], e[N], x[N], pred[N], next[N], renoised[N];
    fill_uniform(x0, N, &rng);
    sdlk_gaussian_fill(3, 0, e, N);
    for (int time = SDLK_TIME_VP; time <= SDLK_TIME_FLOW; time++) {
        double from = time == SDLK_TIME_VP ? sdlk_alpha_bar(600) : 0.6;
        const double to_levels[] = {time == SDLK_TIME_VP ? sdlk_alpha_bar(400) : 0.4,
                                    time == SDLK_TIME_VP ? 1.0 : 0.0};
        double a, b;
        mix(time, from, &a, &b);
        for (int i = 0; i < N; i++)
            x[i] = (float)(a * x0[i] + b * e[i]);
        /* sdlk_renoise follows the same definition */
        sdlk_renoise(time, from, x0, e, renoised, N);
        ck_assert(max_abs_diff_f(renoised, x, N) < 1e-6);
        for (int kind = SDLK_PRED_EPS; kind <= SDLK_PRED_FLOW; kind++) {
            if (time == SDLK_TIME_FLOW && kind == SDLK_PRED_V)
                continue;
            for (int i = 0; i < N; i++)
                pred[i] = (float)make_pred(kind, from, x0[i], e[i]);
            for (int k = 0; k < 2; k++) {
                double a2, b2;
                mix(time, to_levels[k], &a2, &b2);
                float expect[N];
                for (int i = 0; i < N; i++)
                    expect[i] = (float)(a2 * x0[i] + b2 * e[i]);
                sdlk_sampler_step(time, kind, from, to_levels[k], x, pred, next, N);
                ck_assert_msg(max_abs_diff_f(next, expect, N) < 2e-5, "time %d kind %d to %g",
                              time, kind, to_levels[k]);
                /* in place */
                float inplace[N];
                memcpy(inplace, x, sizeof inplace);
                sdlk_sampler_step(time, kind, from, to_levels[k], inplace, pred, inplace, N);
                ck_assert(memcmp(inplace, next, sizeof inplace) == 0);
            }
        }
    }
}
END_TEST

/* The stochastic DDIM step against the DDPM/DDIM posterior written out in alpha_bar
 * terms (Song et al. eq. 12): sigma^2 = eta^2 (1 - ab') / (1 - ab) (1 - ab / ab'),
 * x' = sqrt(ab') x0 + sqrt(1 - ab' - sigma^2) e + sigma z. eta 0, the last step (ab' = 1)
 * and flow time are the deterministic step, bit for bit. */
START_TEST(ddim_eta_step_matches_posterior)
{
    enum { N = 200 };
    uint64_t rng = 9;
    float x0[N], e[N], z[N], x[N], pred[N], got[N], det[N];
    fill_uniform(x0, N, &rng);
    sdlk_gaussian_fill(4, 0, e, N);
    sdlk_gaussian_fill(5, 0, z, N);
    double ab = sdlk_alpha_bar(700), ab_next = sdlk_alpha_bar(500);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(sqrt(ab) * x0[i] + sqrt(1 - ab) * e[i]);
        pred[i] = x0[i]; /* an x0 prediction that is exact */
    }
    const double etas[] = {0.3, 1.0};
    for (int k = 0; k < 2; k++) {
        double eta = etas[k];
        double sigma2 = eta * eta * (1 - ab_next) / (1 - ab) * (1 - ab / ab_next);
        sdlk_sampler_step_eta(SDLK_TIME_VP, SDLK_PRED_X0, ab, ab_next, eta, x, pred, z, got, N);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double expect = sqrt(ab_next) * x0[i] + sqrt(1 - ab_next - sigma2) * e[i] +
                            sqrt(sigma2) * z[i];
            worst = fmax(worst, fabs(expect - got[i]));
        }
        ck_assert_msg(worst < 2e-5, "eta %g: max error %g", eta, worst);
    }
    sdlk_sampler_step(SDLK_TIME_VP, SDLK_PRED_X0, ab, ab_next, x, pred, det, N);
    sdlk_sampler_step_eta(SDLK_TIME_VP, SDLK_PRED_X0, ab, ab_next, 0.0, x, pred, z, got, N);
    ck_assert(memcmp(got, det, sizeof got) == 0);
    sdlk_sampler_step(SDLK_TIME_VP, SDLK_PRED_X0, ab, 1.0, x, pred, det, N);
    sdlk_sampler_step_eta(SDLK_TIME_VP, SDLK_PRED_X0, ab, 1.0, 1.0, x, pred, z, got, N);
    ck_assert(memcmp(got, det, sizeof got) == 0);
    sdlk_sampler_step(SDLK_TIME_FLOW, SDLK_PRED_X0, 0.6, 0.4, x, pred, det, N);
    sdlk_sampler_step_eta(SDLK_TIME_FLOW, SDLK_PRED_X0, 0.6, 0.4, 1.0, x, pred, z, got, N);
    ck_assert(memcmp(got, det, sizeof got) == 0);
}
END_TEST

/* ---- noise ------------------------------------------------------------------------ */

START_TEST(gaussian_fill_is_standard_normal_and_sliceable)
{
    enum { N = 1000000 };
    float *all = malloc(N * sizeof *all), *part = malloc(N * sizeof *part);
    ck_assert(all && part);
    sdlk_gaussian_fill(42, 0, all, N);
    double sum = 0.0, sq = 0.0;
    int64_t within1 = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(isfinite(all[i]));
        sum += all[i];
        sq += (double)all[i] * all[i];
        within1 += fabs(all[i]) < 1.0;
    }
    double mean = sum / N, var = sq / N - mean * mean;
    /* standard errors: mean 0.001, variance 0.0014, P(|z| < 1) 0.0005 */
    ck_assert_double_eq_tol(mean, 0.0, 0.005);
    ck_assert_double_eq_tol(var, 1.0, 0.01);
    ck_assert_double_eq_tol((double)within1 / N, 0.682689, 0.003);

    /* any slice (odd or even start, odd or even length) equals the whole's */
    const int64_t slices[][2] = {{0, 1}, {1, 1}, {1, 2}, {7, 10}, {8, 9}, {999, 1}, {123457, 54321},
                                 {N - 3, 3}};
    for (size_t s = 0; s < sizeof slices / sizeof slices[0]; s++) {
        sdlk_gaussian_fill(42, (uint64_t)slices[s][0], part, slices[s][1]);
        ck_assert(memcmp(part, all + slices[s][0], (size_t)slices[s][1] * sizeof *part) == 0);
    }
    /* a neighbouring seed is a different stream */
    sdlk_gaussian_fill(43, 0, part, N);
    int64_t equal = 0;
    double cross = 0.0;
    for (int i = 0; i < N; i++) {
        equal += part[i] == all[i];
        cross += (double)part[i] * all[i];
    }
    ck_assert_int_lt(equal, 10);
    ck_assert_double_eq_tol(cross / N, 0.0, 0.005);
    free(all);
    free(part);
}
END_TEST

/* ---- canvases --------------------------------------------------------------------- */

START_TEST(canvas_alloc_and_errors)
{
    sdlk_canvas cv;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_canvas_alloc(&cv, 2, 3, 4, 5, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_numel(&cv), 120);
    ck_assert(sdlk_canvas_frame(&cv, 1) == cv.data + 60);
    for (int64_t i = 0; i < 120; i++)
        ck_assert(cv.data[i] == 0.0f);
    sdlk_canvas_free(&cv);
    ck_assert(cv.data == NULL);
    sdlk_canvas_free(&cv); /* twice is harmless */

    ck_assert_int_eq(sdlk_canvas_alloc(&cv, 1, 0, 4, 3, &err), SDLK_ERR_ARG);
    ck_assert(strstr(err.msg, "canvas") != NULL);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_canvas_alloc(&cv, INT64_MAX / 2, 1 << 20, 1 << 20, 3, &err),
                     SDLK_ERR_OVERFLOW);
}
END_TEST

START_TEST(canvas_u8_round_trip)
{
    enum { H = 16, W = 16, C = 3 };
    sdlk_tensor img, back;
    sdlk_error err = {0};
    const int64_t shape[3] = {H, W, C};
    ck_assert_int_eq(sdlk_tensor_alloc(&img, SDLK_U8, 3, shape, &err), SDLK_OK);
    for (int i = 0; i < H * W * C; i++)
        img.data[i] = (uint8_t)((i * 7) % 256);
    sdlk_canvas cv;
    ck_assert_int_eq(sdlk_canvas_alloc(&cv, 2, H, W, C, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_set_frame_u8(&cv, 1, &img, &err), SDLK_OK);
    const float *f1 = sdlk_canvas_frame(&cv, 1);
    for (int i = 0; i < H * W * C; i++)
        ck_assert_double_eq_tol(f1[i], img.data[i] / 127.5 - 1.0, 1e-6);
    ck_assert(f1[0] == -1.0f);
    ck_assert_int_eq(sdlk_canvas_frame_to_u8(&cv, 1, 0, 0, &back, &err), SDLK_OK);
    ck_assert(memcmp(back.data, img.data, H * W * C) == 0);
    sdlk_tensor_free(&back);

    /* crop from the top-left */
    ck_assert_int_eq(sdlk_canvas_frame_to_u8(&cv, 1, 5, 7, &back, &err), SDLK_OK);
    ck_assert_int_eq(back.shape[0], 5);
    ck_assert_int_eq(back.shape[1], 7);
    for (int y = 0; y < 5; y++)
        ck_assert(memcmp(back.data + y * 7 * C, img.data + y * W * C, 7 * C) == 0);
    sdlk_tensor_free(&back);

    /* out-of-range and NaN values clamp; halves round to nearest */
    float *f0 = sdlk_canvas_frame(&cv, 0);
    f0[0] = 2.0f;
    f0[1] = -3.0f;
    f0[2] = NAN;
    f0[3] = 0.0f;                      /* 127.5 -> 128 (round half away from zero) */
    f0[4] = (float)(10.4 / 127.5 - 1); /* 10.4 -> 10 */
    ck_assert_int_eq(sdlk_canvas_frame_to_u8(&cv, 0, 0, 0, &back, &err), SDLK_OK);
    ck_assert_int_eq(back.data[0], 255);
    ck_assert_int_eq(back.data[1], 0);
    ck_assert_int_eq(back.data[2], 0);
    ck_assert_int_eq(back.data[3], 128);
    ck_assert_int_eq(back.data[4], 10);
    sdlk_tensor_free(&back);

    /* a transposed (non-contiguous) view is read through its strides */
    sdlk_tensor view = img;
    view.shape[0] = W;
    view.shape[1] = H;
    view.strides[0] = img.strides[1];
    view.strides[1] = img.strides[0];
    ck_assert_int_eq(sdlk_canvas_set_frame_u8(&cv, 0, &view, &err), SDLK_OK);
    f0 = sdlk_canvas_frame(&cv, 0);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                ck_assert_double_eq_tol(f0[(y * W + x) * C + c],
                                        img.data[(x * W + y) * C + c] / 127.5 - 1.0, 1e-6);

    /* wrong shape, wrong frame */
    sdlk_tensor small;
    const int64_t small_shape[3] = {H, W - 1, C};
    ck_assert_int_eq(sdlk_tensor_alloc(&small, SDLK_U8, 3, small_shape, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_set_frame_u8(&cv, 0, &small, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_canvas_set_frame_u8(&cv, 2, &img, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_canvas_frame_to_u8(&cv, -1, 0, 0, &back, &err), SDLK_ERR_ARG);
    sdlk_tensor_free(&small);
    sdlk_tensor_free(&img);
    sdlk_canvas_free(&cv);
}
END_TEST

/* The Keys kernel (a = -0.5) as printed in Keys (1981). */
static double ref_keys(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0)
        return (a + 2.0) * x * x * x - (a + 3.0) * x * x + 1.0;
    if (x < 2.0)
        return a * x * x * x - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a;
    return 0.0;
}

/* Dense [out, in] resampling matrix: output i centred at input (i + 0.5) / scale - 0.5,
 * kernel stretched by 1 / scale when shrinking, edge replication, rows normalised. */
static double *ref_matrix(int64_t in, int64_t out)
{
    double *m = calloc((size_t)(in * out), sizeof *m);
    double scale = (double)out / in, support = scale < 1.0 ? 1.0 / scale : 1.0;
    for (int64_t i = 0; i < out; i++) {
        double centre = (i + 0.5) / scale - 0.5, sum = 0.0;
        for (int64_t j = (int64_t)floor(centre - 2 * support) - 2;
             j <= (int64_t)ceil(centre + 2 * support) + 2; j++) {
            double w = ref_keys((j - centre) / support);
            int64_t k = j < 0 ? 0 : j >= in ? in - 1 : j;
            m[i * in + k] += w;
            sum += w;
        }
        for (int64_t k = 0; k < in; k++)
            m[i * in + k] /= sum;
    }
    return m;
}

/* dst[f, y, x, c] = sum_{i, j} Mh[y, i] Mw[x, j] src[f, i, j, c] in double. */
static void ref_resize(const sdlk_canvas *src, sdlk_canvas *dst)
{
    double *mh = ref_matrix(src->h, dst->h), *mw = ref_matrix(src->w, dst->w);
    for (int64_t f = 0; f < src->t; f++)
        for (int64_t y = 0; y < dst->h; y++)
            for (int64_t x = 0; x < dst->w; x++)
                for (int64_t c = 0; c < src->c; c++) {
                    double acc = 0.0;
                    for (int64_t i = 0; i < src->h; i++)
                        for (int64_t j = 0; j < src->w; j++)
                            acc += mh[y * src->h + i] * mw[x * src->w + j] *
                                   sdlk_canvas_frame(src, f)[(i * src->w + j) * src->c + c];
                    sdlk_canvas_frame(dst, f)[(y * dst->w + x) * dst->c + c] = (float)acc;
                }
    free(mh);
    free(mw);
}

START_TEST(resize_matches_keys_reference)
{
    const int64_t sizes[][4] = {
        {5, 7, 13, 11},   /* enlarge */
        {17, 20, 6, 9},   /* shrink (antialiased) */
        {9, 9, 9, 9},     /* identity */
        {8, 12, 3, 24},   /* shrink one axis, enlarge the other */
        {1, 6, 4, 1},     /* degenerate axes */
        {30, 30, 10, 10}, /* shrink by exactly 3 */
    };
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(2, &err);
    ck_assert(pool != NULL);
    uint64_t rng = 99;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        sdlk_canvas src, got, pooled, want;
        ck_assert_int_eq(sdlk_canvas_alloc(&src, 2, sizes[s][0], sizes[s][1], 3, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_canvas_alloc(&got, 2, sizes[s][2], sizes[s][3], 3, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_canvas_alloc(&pooled, 2, sizes[s][2], sizes[s][3], 3, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_canvas_alloc(&want, 2, sizes[s][2], sizes[s][3], 3, &err), SDLK_OK);
        fill_uniform(src.data, sdlk_canvas_numel(&src), &rng);
        ck_assert_int_eq(sdlk_canvas_resize(&src, &got, NULL, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_canvas_resize(&src, &pooled, pool, &err), SDLK_OK);
        ref_resize(&src, &want);
        ck_assert_msg(max_abs_diff_f(got.data, want.data, sdlk_canvas_numel(&want)) < 2e-5,
                      "case %zu: off by %g", s,
                      max_abs_diff_f(got.data, want.data, sdlk_canvas_numel(&want)));
        ck_assert(memcmp(got.data, pooled.data, (size_t)sdlk_canvas_numel(&got) * 4) == 0);
        if (sizes[s][0] == sizes[s][2] && sizes[s][1] == sizes[s][3])
            ck_assert(max_abs_diff_f(got.data, src.data, sdlk_canvas_numel(&src)) < 1e-6);
        sdlk_canvas_free(&src);
        sdlk_canvas_free(&got);
        sdlk_canvas_free(&pooled);
        sdlk_canvas_free(&want);
    }
    /* frames and channels must match */
    sdlk_canvas a, b;
    ck_assert_int_eq(sdlk_canvas_alloc(&a, 2, 4, 4, 3, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&b, 1, 8, 8, 3, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_resize(&a, &b, NULL, &err), SDLK_ERR_ARG);
    sdlk_canvas_free(&a);
    sdlk_canvas_free(&b);
    sdlk_pool_destroy(pool);
}
END_TEST

START_TEST(resize_keeps_constants_and_smooth_images)
{
    sdlk_error err = {0};
    /* constants stay constant at any size */
    const int64_t sizes[][2] = {{23, 5}, {3, 3}, {1, 1}, {40, 64}};
    sdlk_canvas src;
    ck_assert_int_eq(sdlk_canvas_alloc(&src, 1, 10, 13, 2, &err), SDLK_OK);
    for (int64_t i = 0; i < sdlk_canvas_numel(&src); i++)
        src.data[i] = i % 2 ? 0.37f : -0.81f;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        sdlk_canvas dst;
        ck_assert_int_eq(sdlk_canvas_alloc(&dst, 1, sizes[s][0], sizes[s][1], 2, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_canvas_resize(&src, &dst, NULL, &err), SDLK_OK);
        for (int64_t i = 0; i < sdlk_canvas_numel(&dst); i++)
            ck_assert_double_eq_tol(dst.data[i], i % 2 ? 0.37 : -0.81, 1e-6);
        sdlk_canvas_free(&dst);
    }
    sdlk_canvas_free(&src);

    /* a smooth image enlarged x2 then shrunk x2 (antialiased) comes back */
    enum { S = 32 };
    sdlk_canvas img, big, back;
    ck_assert_int_eq(sdlk_canvas_alloc(&img, 1, S, S, 1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&big, 1, 2 * S, 2 * S, 1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&back, 1, S, S, 1, &err), SDLK_OK);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            img.data[y * S + x] = (float)(0.6 * sin(0.25 * y + 0.15 * x) * cos(0.1 * x));
    ck_assert_int_eq(sdlk_canvas_resize(&img, &big, NULL, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_resize(&big, &back, NULL, &err), SDLK_OK);
    double worst = 0.0;
    for (int y = 3; y < S - 3; y++)
        for (int x = 3; x < S - 3; x++)
            worst = worse(worst, back.data[y * S + x], img.data[y * S + x]);
    ck_assert_msg(worst < 1e-3, "round trip off by %g", worst);
    sdlk_canvas_free(&img);
    sdlk_canvas_free(&big);
    sdlk_canvas_free(&back);
}
END_TEST

START_TEST(lowpass_removes_fine_detail)
{
    enum { S = 24 };
    sdlk_error err = {0};
    sdlk_canvas flat, check, out;
    ck_assert_int_eq(sdlk_canvas_alloc(&flat, 1, S, S, 1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&check, 1, S, S, 1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_alloc(&out, 1, S, S, 1, &err), SDLK_OK);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            flat.data[y * S + x] = 0.25f;
            check.data[y * S + x] = (x + y) % 2 ? 0.5f : -0.5f; /* Nyquist checkerboard */
        }
    ck_assert_int_eq(sdlk_canvas_lowpass(&flat, 2.0, &out, NULL, &err), SDLK_OK);
    for (int i = 0; i < S * S; i++)
        ck_assert_double_eq_tol(out.data[i], 0.25, 1e-6);
    ck_assert_int_eq(sdlk_canvas_lowpass(&check, 2.0, &out, NULL, &err), SDLK_OK);
    double energy_in = 0.0, energy_out = 0.0;
    for (int y = 4; y < S - 4; y++)
        for (int x = 4; x < S - 4; x++) {
            energy_in += check.data[y * S + x] * check.data[y * S + x];
            energy_out += out.data[y * S + x] * out.data[y * S + x];
        }
    ck_assert_msg(energy_out < 1e-6 * energy_in, "checkerboard kept %g of its energy",
                  energy_out / energy_in);
    ck_assert_int_eq(sdlk_canvas_lowpass(&flat, 1.0, &out, NULL, &err), SDLK_ERR_ARG);
    sdlk_canvas_free(&flat);
    sdlk_canvas_free(&check);
    sdlk_canvas_free(&out);
}
END_TEST

/* ---- exemplar denoiser ------------------------------------------------------------ */

/* Patch geometry for the slow references: pt frames of p x p, C channels. */
typedef struct ref_geom {
    int pt, p, c;
} ref_geom;

/* A slow, obvious prior: every pt x p x p patch of a [T, H, W, C] canvas at `stride`
 * along every axis, in double. Appends to *patches (n so far, D values each). */
static void ref_collect(const float *img, int64_t t, int64_t h, int64_t w, ref_geom g,
                        int stride, double **patches, int64_t *n)
{
    int64_t dim = (int64_t)g.pt * g.p * g.p * g.c;
    for (int64_t f = 0; f + g.pt <= t; f += stride)
        for (int64_t y = 0; y + g.p <= h; y += stride)
            for (int64_t x = 0; x + g.p <= w; x += stride) {
                *patches = realloc(*patches, (size_t)((*n + 1) * dim) * sizeof **patches);
                double *dst = *patches + *n * dim;
                for (int df = 0; df < g.pt; df++)
                    for (int dy = 0; dy < g.p; dy++)
                        for (int dx = 0; dx < g.p; dx++)
                            for (int k = 0; k < g.c; k++)
                                *dst++ = img[(((f + df) * h + y + dy) * w + x + dx) * g.c + k];
                (*n)++;
            }
}

/* Patch corners of a tile axis: 0, stride, ... and the last one. */
static int ref_corners(int len, int p, int stride, int *out)
{
    int n = 0;
    for (int x = 0; x + p <= len; x += stride)
        out[n++] = x;
    if (out[n - 1] != len - p)
        out[n++] = len - p;
    return n;
}

/* The posterior mean of the prior for every patch of a [tt, th, tw, C] tile (corners
 * at `stride`, along time at min(stride, pt)), averaged where patches overlap with
 * tent weights (min(i, p - 1 - i) + 1/2) / (p / 2) per axis. */
static double ref_tent(int i, int p)
{
    int edge = i < p - 1 - i ? i : p - 1 - i;
    return (edge + 0.5) / (p / 2.0);
}

static void ref_predict(const double *patches, int64_t n, ref_geom g, int tt, int th, int tw,
                        int stride, double level, const float *x, double *out)
{
    int64_t dim = (int64_t)g.pt * g.p * g.p * g.c, cells = (int64_t)tt * th * tw;
    double *sum = calloc((size_t)(cells * g.c), sizeof *sum);
    double *cover = calloc((size_t)cells, sizeof *cover);
    double *w = malloc((size_t)n * sizeof *w), *est = malloc((size_t)dim * sizeof *est);
    int fs[64], ys[64], xs[64];
    int nf = ref_corners(tt, g.pt, stride < g.pt ? stride : g.pt, fs);
    int ny = ref_corners(th, g.p, stride, ys), nx = ref_corners(tw, g.p, stride, xs);
    double a = fmin(level, 1.0 - 1e-6);
    for (int jf = 0; jf < nf; jf++)
        for (int iy = 0; iy < ny; iy++)
            for (int ix = 0; ix < nx; ix++) {
                /* the tile cell of patch element (df, dy, dx) */
#define CELL(df, dy, dx) (((fs[jf] + (df)) * th + ys[iy] + (dy)) * tw + xs[ix] + (dx))
#define ELEM(df, dy, dx) ((((df) * g.p + (dy)) * g.p + (dx)) * g.c)
                for (int64_t k = 0; k < dim; k++)
                    est[k] = 0.0;
                if (a < 1e-6) {
                    for (int64_t j = 0; j < n; j++)
                        for (int64_t k = 0; k < dim; k++)
                            est[k] += patches[j * dim + k] / (double)n;
                } else {
                    double best = -INFINITY, total = 0.0;
                    for (int64_t j = 0; j < n; j++) {
                        double d = 0.0;
                        for (int df = 0; df < g.pt; df++)
                            for (int dy = 0; dy < g.p; dy++)
                                for (int dx = 0; dx < g.p; dx++)
                                    for (int k = 0; k < g.c; k++) {
                                        double y = x[CELL(df, dy, dx) * g.c + k];
                                        double p = patches[j * dim + ELEM(df, dy, dx) + k];
                                        d += (y - sqrt(a) * p) * (y - sqrt(a) * p);
                                    }
                        w[j] = -d / (2.0 * (1.0 - a));
                        best = fmax(best, w[j]);
                    }
                    for (int64_t j = 0; j < n; j++)
                        total += w[j] = exp(w[j] - best);
                    for (int64_t j = 0; j < n; j++)
                        for (int64_t k = 0; k < dim; k++)
                            est[k] += w[j] / total * patches[j * dim + k];
                }
                for (int df = 0; df < g.pt; df++)
                    for (int dy = 0; dy < g.p; dy++)
                        for (int dx = 0; dx < g.p; dx++) {
                            double tw8 = ref_tent(df, g.pt) * ref_tent(dy, g.p) * ref_tent(dx, g.p);
                            cover[CELL(df, dy, dx)] += tw8;
                            for (int k = 0; k < g.c; k++)
                                sum[CELL(df, dy, dx) * g.c + k] +=
                                    tw8 * est[ELEM(df, dy, dx) + k];
                        }
#undef CELL
#undef ELEM
            }
    for (int64_t i = 0; i < cells; i++)
        for (int k = 0; k < g.c; k++)
            out[i * g.c + k] = sum[i * g.c + k] / cover[i];
    free(sum);
    free(cover);
    free(w);
    free(est);
}

/* A tiny model: 8x8x3 tiles, 4x4 patches, prior from a 12x12 reference. */
static sdlk_denoiser *tiny_model(int stride, int scales, int max_exemplars, uint64_t seed)
{
    sdlk_exemplar_opts o;
    sdlk_exemplar_opts_init(&o);
    o.halo[0] = o.halo[1] = o.halo[2] = 0; /* the raw model on whole tiles */
    o.patch = 4;
    o.stride = stride;
    o.exemplar_stride = 2;
    o.scales = scales;
    o.max_exemplars = max_exemplars;
    o.tile[0] = 1;
    o.tile[1] = o.tile[2] = 8;
    o.channels = 3;
    o.max_batch = 8;
    o.seed = seed;
    sdlk_denoiser *d = NULL;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_exemplar_create(&o, &d, &err), SDLK_OK);
    return d;
}

enum { RH = 12, RW = 12, RC = 3, TS = 8 };

static void tiny_reference(float *ref)
{
    uint64_t rng = 2024;
    fill_uniform(ref, RH * RW * RC, &rng);
}

static sdlk_status open_tiny(sdlk_denoiser *d, int64_t id, const float *ref, sdlk_error *err)
{
    sdlk_gen_request req = {.id = id, .reference = ref, .ref_shape = {1, RH, RW, RC}, .seed = 7};
    return sdlk_denoiser_request_open(d, &req, err);
}

/* A noisy tile at `level` around a random clean tile. */
static void noisy_tile(double level, uint64_t seed, float *x)
{
    uint64_t rng = seed;
    float clean[TS * TS * RC], noise[TS * TS * RC];
    fill_uniform(clean, TS * TS * RC, &rng);
    sdlk_gaussian_fill(seed, 0, noise, TS * TS * RC);
    sdlk_renoise(SDLK_TIME_VP, level, clean, noise, x, TS * TS * RC);
}

static void check_against_reference(sdlk_denoiser *d, const double *patches, int64_t n,
                                    int stride)
{
    const double levels[] = {0.02, 0.2, 0.5, 0.8, 0.95};
    float x[TS * TS * RC], out[TS * TS * RC];
    double want[TS * TS * RC];
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        noisy_tile(levels[l], 100 + l, x);
        sdlk_denoise_item it = {.request = 1, .tile_id = (int64_t)l, .level = levels[l],
                                .x = x, .out = out};
        sdlk_error err = {0};
        ck_assert_int_eq(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_OK);
        ref_predict(patches, n, (ref_geom){1, 4, RC}, 1, TS, TS, stride, levels[l], x, want);
        double worst = 0.0;
        for (int i = 0; i < TS * TS * RC; i++)
            worst = worse(worst, out[i], want[i]);
        ck_assert_msg(worst < 1e-5, "stride %d level %g: off by %g", stride, levels[l], worst);
    }
}

START_TEST(exemplar_matches_posterior_mean_reference)
{
    float ref[RH * RW * RC];
    tiny_reference(ref);
    sdlk_error err = {0};
    double *patches = NULL;
    int64_t n = 0;
    ref_collect(ref, 1, RH, RW, (ref_geom){1, 4, RC}, 2, &patches, &n);
    ck_assert_int_eq(n, 25);
    const int strides[] = {2, 3, 4, 1};
    for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++) {
        sdlk_denoiser *d = tiny_model(strides[s], 1, 1024, 1);
        ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_exemplar_count(d, 1), 25);
        check_against_reference(d, patches, n, strides[s]);
        sdlk_denoiser_destroy(d);
    }

    /* two scales: the 6x6 half-size reference (bicubic, tested above) adds 2 x 2 */
    sdlk_canvas full = {.data = ref, .t = 1, .h = RH, .w = RW, .c = RC, .borrowed = 1}, half;
    ck_assert_int_eq(sdlk_canvas_alloc(&half, 1, RH / 2, RW / 2, RC, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_canvas_resize(&full, &half, NULL, &err), SDLK_OK);
    ref_collect(half.data, 1, RH / 2, RW / 2, (ref_geom){1, 4, RC}, 2, &patches, &n);
    ck_assert_int_eq(n, 29);
    sdlk_denoiser *d = tiny_model(2, 2, 1024, 1);
    ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_exemplar_count(d, 1), 29);
    check_against_reference(d, patches, n, 2);
    sdlk_denoiser_destroy(d);
    /* a third scale would be 3x3, smaller than a patch: left out */
    d = tiny_model(2, 3, 1024, 1);
    ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_exemplar_count(d, 1), 29);
    sdlk_denoiser_destroy(d);
    /* a scale exactly one patch in size still counts: 8x8 -> 3 x 3 + the 4x4 half */
    d = tiny_model(2, 2, 1024, 1);
    sdlk_gen_request eight = {.id = 2, .reference = ref, .ref_shape = {1, 8, 8, RC}};
    ck_assert_int_eq(sdlk_denoiser_request_open(d, &eight, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_exemplar_count(d, 2), 10);
    sdlk_denoiser_destroy(d);
    sdlk_canvas_free(&half);
    free(patches);
}
END_TEST

START_TEST(exemplar_video_tiles_match_reference)
{
    /* 4 frames of 10 x 10 x 2; tiles of several frames, patches of one or two frames */
    enum { VT = 4, VH = 10, VW = 10, VC = 2 };
    const struct {
        int pt, stride, tile_t;
    } cases[] = {{2, 2, 3}, {1, 3, 2}, {2, 3, 2}, {2, 1, 3}, {1, 2, 4}, {2, 4, 4}};
    float ref[VT * VH * VW * VC];
    uint64_t rng = 77;
    fill_uniform(ref, VT * VH * VW * VC, &rng);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ref_geom g = {cases[c].pt, 4, VC};
        double *patches = NULL;
        int64_t n = 0;
        ref_collect(ref, VT, VH, VW, g, 2, &patches, &n);
        sdlk_exemplar_opts o;
        sdlk_exemplar_opts_init(&o);
        o.halo[0] = o.halo[1] = o.halo[2] = 0; /* the raw model on whole tiles */
        o.patch = 4;
        o.patch_t = cases[c].pt;
        o.stride = cases[c].stride;
        o.scales = 1;
        o.channels = VC;
        o.tile[0] = cases[c].tile_t;
        o.tile[1] = o.tile[2] = 8;
        sdlk_denoiser *d;
        sdlk_error err = {0};
        ck_assert_int_eq(sdlk_exemplar_create(&o, &d, &err), SDLK_OK);
        sdlk_gen_request req = {.id = 3, .reference = ref, .ref_shape = {VT, VH, VW, VC}};
        ck_assert_int_eq(sdlk_denoiser_request_open(d, &req, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_exemplar_count(d, 3), n);
        int64_t numel = sdlk_denoiser_tile_numel(&d->desc);
        float *x = malloc((size_t)numel * sizeof *x), *noise = malloc((size_t)numel * sizeof *x);
        float *out = malloc((size_t)numel * sizeof *out);
        double *want = malloc((size_t)numel * sizeof *want);
        const double levels[] = {0.1, 0.6, 0.9};
        for (size_t l = 0; l < 3; l++) {
            fill_uniform(x, numel, &rng);
            sdlk_gaussian_fill(l, 0, noise, numel);
            sdlk_renoise(SDLK_TIME_VP, levels[l], x, noise, x, numel);
            sdlk_denoise_item it = {.request = 3, .level = levels[l], .x = x, .out = out};
            ck_assert_int_eq(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_OK);
            ref_predict(patches, n, g, cases[c].tile_t, 8, 8, cases[c].stride, levels[l], x,
                        want);
            double worst = 0.0;
            for (int64_t i = 0; i < numel; i++)
                worst = worse(worst, out[i], want[i]);
            ck_assert_msg(worst < 1e-5, "case %zu level %g: off by %g", c, levels[l], worst);
        }
        free(x);
        free(noise);
        free(out);
        free(want);
        free(patches);
        sdlk_denoiser_destroy(d);
    }
}
END_TEST

START_TEST(exemplar_extreme_levels)
{
    float ref[RH * RW * RC];
    tiny_reference(ref);
    double *patches = NULL;
    int64_t n = 0;
    ref_collect(ref, 1, RH, RW, (ref_geom){1, 4, RC}, 2, &patches, &n);
    const int64_t dim = 4 * 4 * RC;
    sdlk_error err = {0};
    /* stride 4: the four patches of a tile do not overlap */
    sdlk_denoiser *d = tiny_model(4, 1, 1024, 1);
    ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_OK);

    /* pure noise: the mean exemplar in every patch */
    float x[TS * TS * RC], out[TS * TS * RC];
    noisy_tile(0.5, 1, x);
    const double low[] = {0.0, 5e-7};
    for (size_t l = 0; l < 2; l++) {
        sdlk_denoise_item it = {.request = 1, .level = low[l], .x = x, .out = out};
        ck_assert_int_eq(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_OK);
        for (int y = 0; y < TS; y++)
            for (int xx = 0; xx < TS; xx++)
                for (int c = 0; c < RC; c++) {
                    double mean = 0.0;
                    for (int64_t j = 0; j < n; j++)
                        mean += patches[j * dim + ((y % 4) * 4 + xx % 4) * RC + c];
                    ck_assert_double_eq_tol(out[(y * TS + xx) * RC + c], mean / n, 1e-5);
                }
    }

    /* nearly clean: a tile made of four exemplars (corners (0,0), (2,4), (8,8), (4,6)
     * of the reference) comes back as those exemplars */
    const int corner[4][2] = {{0, 0}, {2, 4}, {8, 8}, {4, 6}};
    float clean[TS * TS * RC];
    for (int q = 0; q < 4; q++)
        for (int dy = 0; dy < 4; dy++)
            for (int dx = 0; dx < 4; dx++)
                for (int c = 0; c < RC; c++)
                    clean[(((q / 2) * 4 + dy) * TS + (q % 2) * 4 + dx) * RC + c] =
                        ref[((corner[q][0] + dy) * RW + corner[q][1] + dx) * RC + c];
    const double high[] = {0.999, 1.0};
    for (size_t l = 0; l < 2; l++) {
        float noise[TS * TS * RC];
        sdlk_gaussian_fill(9, 0, noise, TS * TS * RC);
        sdlk_renoise(SDLK_TIME_VP, high[l], clean, noise, x, TS * TS * RC);
        sdlk_denoise_item it = {.request = 1, .level = high[l], .x = x, .out = out};
        ck_assert_int_eq(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_OK);
        ck_assert_msg(max_abs_diff_f(out, clean, TS * TS * RC) < 1e-4, "level %g: off by %g",
                      high[l], max_abs_diff_f(out, clean, TS * TS * RC));
    }
    sdlk_denoiser_destroy(d);
    free(patches);
}
END_TEST

START_TEST(exemplar_subsample_is_seeded)
{
    float ref[RH * RW * RC], x[TS * TS * RC], out[3][TS * TS * RC];
    tiny_reference(ref);
    noisy_tile(0.6, 4, x);
    const uint64_t seeds[3] = {5, 5, 6};
    sdlk_error err = {0};
    for (int k = 0; k < 3; k++) {
        sdlk_denoiser *d = tiny_model(2, 2, 10, seeds[k]);
        ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_exemplar_count(d, 1), 10);
        sdlk_denoise_item it = {.request = 1, .level = 0.6, .x = x, .out = out[k]};
        ck_assert_int_eq(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_OK);
        sdlk_denoiser_destroy(d);
    }
    ck_assert(memcmp(out[0], out[1], sizeof out[0]) == 0);
    ck_assert(memcmp(out[0], out[2], sizeof out[0]) != 0);
}
END_TEST

START_TEST(exemplar_request_errors)
{
    float ref[RH * RW * RC], x[TS * TS * RC], out[TS * TS * RC];
    tiny_reference(ref);
    noisy_tile(0.5, 3, x);
    sdlk_denoiser *d = tiny_model(2, 2, 1024, 1);
    sdlk_error err = {0};

    sdlk_gen_request req = {.id = 1, .reference = ref, .ref_shape = {1, RH, RW, 4}};
    ck_assert_int_eq(sdlk_denoiser_request_open(d, &req, &err), SDLK_ERR_ARG);
    ck_assert(strstr(err.msg, "channels") != NULL);
    sdlk_error_clear(&err);
    sdlk_gen_request small = {.id = 1, .reference = ref, .ref_shape = {1, 3, 48, RC}};
    ck_assert_int_eq(sdlk_denoiser_request_open(d, &small, &err), SDLK_ERR_ARG);
    ck_assert(strstr(err.msg, "1x3x48") != NULL);
    sdlk_error_clear(&err);
    sdlk_gen_request none = {.id = 1, .ref_shape = {1, RH, RW, RC}};
    ck_assert_int_eq(sdlk_denoiser_request_open(d, &none, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_exemplar_count(d, 1), -1);

    sdlk_denoise_item it = {.request = 1, .tile_id = 17, .level = 0.5, .x = x, .out = out};
    ck_assert_int_ne(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_OK);
    ck_assert(strstr(err.msg, "request 1") != NULL);
    sdlk_error_clear(&err);

    ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_OK);
    ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_ERR_ARG); /* already open */
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_OK);
    it.level = NAN;
    ck_assert_int_eq(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    it.level = 0.5;
    it.out = NULL;
    ck_assert_int_eq(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    it.out = out;
    sdlk_denoise_item many[9];
    for (int i = 0; i < 9; i++)
        many[i] = it;
    ck_assert_int_eq(sdlk_denoiser_predict(d, many, 9, &err), SDLK_ERR_ARG); /* batch 8 */
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_denoiser_predict(d, many, 8, &err), SDLK_OK);

    sdlk_denoiser_request_close(d, 1);
    sdlk_denoiser_request_close(d, 1); /* closing twice is harmless */
    ck_assert_int_ne(sdlk_denoiser_predict(d, &it, 1, &err), SDLK_OK);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_exemplar_count(d, 1), -1);
    /* open again after close; destroy with the request still open */
    ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_OK);
    sdlk_denoiser_destroy(d);
    sdlk_denoiser_destroy(NULL);
}
END_TEST

/* Concurrent predicts: each thread runs its own batches over request 1 while another
 * request is opened and closed around them. */
typedef struct predict_job {
    sdlk_denoiser *d;
    const float *x;     /* [tiles, tile] inputs */
    float *out;         /* [tiles, tile] */
    int first, tiles;
    const float *ref;
    sdlk_status status;
} predict_job;

enum { CONC_TILES = 16 };

static void predict_range(sdlk_denoiser *d, const float *x, float *out, int first, int tiles,
                          sdlk_status *status)
{
    const int64_t numel = TS * TS * RC;
    for (int i = first; i < first + tiles && !*status; i += 4) {
        sdlk_denoise_item it[4];
        int n = 0;
        for (; n < 4 && i + n < first + tiles; n++)
            it[n] = (sdlk_denoise_item){.request = 1, .tile_id = i + n,
                                        .level = 0.1 + 0.05 * (i + n), .x = x + (i + n) * numel,
                                        .out = out + (i + n) * numel};
        sdlk_error err = {0};
        *status = sdlk_denoiser_predict(d, it, n, &err);
    }
}

static void *predict_thread(void *arg)
{
    predict_job *job = arg;
    for (int round = 0; round < 3 && !job->status; round++) {
        sdlk_error err = {0};
        if (job->ref) { /* churn another request meanwhile */
            job->status = open_tiny(job->d, 100 + job->first, job->ref, &err);
            if (job->status)
                break;
        }
        predict_range(job->d, job->x, job->out, job->first, job->tiles, &job->status);
        if (job->ref)
            sdlk_denoiser_request_close(job->d, 100 + job->first);
    }
    return NULL;
}

START_TEST(exemplar_concurrent_predict_matches_sequential)
{
    float ref[RH * RW * RC];
    tiny_reference(ref);
    const int64_t numel = TS * TS * RC;
    float *x = malloc(CONC_TILES * numel * sizeof *x);
    float *seq = malloc(CONC_TILES * numel * sizeof *seq);
    float *par = calloc(CONC_TILES * numel, sizeof *par);
    for (int i = 0; i < CONC_TILES; i++)
        noisy_tile(0.1 + 0.05 * i, 50 + i, x + i * numel);
    sdlk_denoiser *d = tiny_model(2, 2, 1024, 1);
    sdlk_error err = {0};
    ck_assert_int_eq(open_tiny(d, 1, ref, &err), SDLK_OK);
    sdlk_status st = SDLK_OK;
    predict_range(d, x, seq, 0, CONC_TILES, &st);
    ck_assert_int_eq(st, SDLK_OK);

    predict_job jobs[2] = {
        {.d = d, .x = x, .out = par, .first = 0, .tiles = CONC_TILES / 2, .ref = ref},
        {.d = d, .x = x, .out = par, .first = CONC_TILES / 2, .tiles = CONC_TILES / 2, .ref = ref},
    };
    pthread_t threads[2];
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(pthread_create(&threads[t], NULL, predict_thread, &jobs[t]), 0);
    for (int t = 0; t < 2; t++) {
        pthread_join(threads[t], NULL);
        ck_assert_int_eq(jobs[t].status, SDLK_OK);
    }
    ck_assert(memcmp(seq, par, CONC_TILES * numel * sizeof *par) == 0);
    sdlk_denoiser_destroy(d);
    free(x);
    free(seq);
    free(par);
}
END_TEST

/* ---- options, specs and names ------------------------------------------------------ */

START_TEST(exemplar_options_parse)
{
    sdlk_exemplar_opts o, before;
    sdlk_exemplar_opts_init(&o);
    o.halo[0] = o.halo[1] = o.halo[2] = 0; /* the raw model on whole tiles */
    ck_assert_int_eq(o.patch, 8);
    ck_assert_int_eq(o.patch_t, 1);
    ck_assert_int_eq(o.exemplar_stride, 2);
    ck_assert_int_eq(o.scales, 2);
    ck_assert_int_eq(o.max_exemplars, 1024);
    ck_assert(o.tile[0] == 1 && o.tile[1] == 64 && o.tile[2] == 64);
    ck_assert_int_eq(o.channels, 3);
    ck_assert_int_eq(o.max_batch, 16);
    ck_assert(o.seed == 1);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, NULL, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, "", &err), SDLK_OK);
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o,
                                              "patch=6,patch_t=2,stride=3,exemplar_stride=1,"
                                              "scales=3,max_exemplars=77,tile=4x32x48,"
                                              "channels=4,batch=2,seed=18446744073709551615",
                                              &err),
                     SDLK_OK);
    ck_assert_int_eq(o.patch, 6);
    ck_assert_int_eq(o.patch_t, 2);
    ck_assert_int_eq(o.stride, 3);
    ck_assert_int_eq(o.exemplar_stride, 1);
    ck_assert_int_eq(o.scales, 3);
    ck_assert_int_eq(o.max_exemplars, 77);
    ck_assert(o.tile[0] == 4 && o.tile[1] == 32 && o.tile[2] == 48);
    ck_assert_int_eq(o.channels, 4);
    ck_assert_int_eq(o.max_batch, 2);
    ck_assert(o.seed == UINT64_MAX);
    ck_assert_int_eq(o.moving_lattice, 0);
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, "lattice=moving", &err), SDLK_OK);
    ck_assert_int_eq(o.moving_lattice, 1);
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, "lattice=fixed", &err), SDLK_OK);
    ck_assert_int_eq(o.moving_lattice, 0);
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, "tile=40", &err), SDLK_OK);
    ck_assert(o.tile[0] == 1 && o.tile[1] == 40 && o.tile[2] == 40);

    const char *bad[][2] = {{"colour=3", "colour"}, {"patch=abc", "patch"},
                            {"patch=0", "patch"},   {"tile=3x4", "tile"},
                            {"seed=-1", "seed"},    {"patch", "patch"},
                            {"batch=2x", "batch"},  {"tile=1x2x3x4", "tile"},
                            {"lattice=wobbly", "lattice"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        before = o;
        sdlk_error e = {0};
        ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, bad[i][0], &e), SDLK_ERR_ARG);
        ck_assert_msg(strstr(e.msg, bad[i][1]) != NULL, "%s: %s", bad[i][0], e.msg);
        ck_assert(memcmp(&o, &before, sizeof o) == 0); /* unchanged on failure */
    }

    /* create checks */
    const struct {
        const char *spec;
    } invalid[] = {{"patch=65"}, {"patch_t=2"}, {"patch=4,stride=5"}};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        sdlk_exemplar_opts_init(&o);
        o.halo[0] = o.halo[1] = o.halo[2] = 0; /* the raw model on whole tiles */
        ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, invalid[i].spec, &err), SDLK_OK);
        sdlk_denoiser *d = (sdlk_denoiser *)1;
        sdlk_error e = {0};
        ck_assert_int_eq(sdlk_exemplar_create(&o, &d, &e), SDLK_ERR_ARG);
        ck_assert(d == NULL);
    }
}
END_TEST

/* device=cpu|gpu|auto: the default is the CPU; a GPU that cannot be had is an error at
 * creation naming why; the CPU and an AUTO that finds no GPU predict exactly as the
 * default model does. */
static sdlk_denoiser *tiny_model_on(const char *device_spec)
{
    sdlk_exemplar_opts o;
    sdlk_exemplar_opts_init(&o);
    o.halo[0] = o.halo[1] = o.halo[2] = 0;
    o.patch = 4;
    o.stride = 2;
    o.scales = 2;
    o.tile[0] = 1;
    o.tile[1] = o.tile[2] = TS;
    o.max_batch = 8;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, device_spec, &err), SDLK_OK);
    sdlk_denoiser *d = NULL;
    ck_assert_msg(sdlk_exemplar_create(&o, &d, &err) == SDLK_OK, "%s: %s", device_spec, err.msg);
    return d;
}

/* One batch of 7 tiles at levels from pure noise to clean into out [7, tile]. */
static void predict_level_batch(sdlk_denoiser *d, const float *ref, float *out)
{
    enum { N = 7 };
    const double levels[N] = {0.0, 5e-7, 0.1, 0.5, 0.9, 0.99, 1.0};
    static float x[N][TS * TS * RC];
    sdlk_denoise_item it[N];
    for (int i = 0; i < N; i++) {
        noisy_tile(levels[i] > 0.0 ? levels[i] : 0.3, 300 + i, x[i]);
        it[i] = (sdlk_denoise_item){.request = 4, .tile_id = i, .step = i, .level = levels[i],
                                    .offset = {0, 3 * i, 5 * i}, .x = x[i],
                                    .out = out + i * TS * TS * RC};
    }
    sdlk_error err = {0};
    ck_assert_int_eq(open_tiny(d, 4, ref, &err), SDLK_OK);
    ck_assert_msg(sdlk_denoiser_predict(d, it, N, &err) == SDLK_OK, "%s", err.msg);
    sdlk_denoiser_request_close(d, 4);
}

START_TEST(exemplar_device_option)
{
    sdlk_exemplar_opts o, before;
    sdlk_exemplar_opts_init(&o);
    ck_assert_int_eq(o.device, SDLK_DEVICE_CPU);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, "device=gpu", &err), SDLK_OK);
    ck_assert_int_eq(o.device, SDLK_DEVICE_GPU);
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, "device=auto", &err), SDLK_OK);
    ck_assert_int_eq(o.device, SDLK_DEVICE_AUTO);
    ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, "device=cpu", &err), SDLK_OK);
    ck_assert_int_eq(o.device, SDLK_DEVICE_CPU);
    const char *bad[] = {"device=tpu", "device=", "device=GPU", "device"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        before = o;
        sdlk_error e = {0};
        ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, bad[i], &e), SDLK_ERR_ARG);
        ck_assert_msg(strstr(e.msg, "device") != NULL, "%s: %s", bad[i], e.msg);
        ck_assert(memcmp(&o, &before, sizeof o) == 0);
    }

    /* a GPU that is not there: SDLK_ERR_DEVICE at creation, saying which and why */
    if (!sdlk_cuda_compiled() || sdlk_gpu_count() == 0) {
        const char *why = sdlk_cuda_compiled() ? "none is usable" : "built without CUDA";
        sdlk_exemplar_opts_init(&o);
        ck_assert_int_eq(sdlk_exemplar_opts_parse(&o, "device=gpu", &err), SDLK_OK);
        sdlk_denoiser *d = (sdlk_denoiser *)1;
        sdlk_error e = {0};
        ck_assert_int_eq(sdlk_exemplar_create(&o, &d, &e), SDLK_ERR_DEVICE);
        ck_assert(d == NULL);
        ck_assert_msg(strstr(e.msg, "device=gpu") && strstr(e.msg, why), "%s", e.msg);
        sdlk_error e2 = {0};
        d = (sdlk_denoiser *)1;
        ck_assert_int_eq(sdlk_denoiser_open_spec("exemplar:device=gpu", NULL, 0, &d, &e2),
                         SDLK_ERR_DEVICE);
        ck_assert(d == NULL);
        ck_assert_msg(strstr(e2.msg, "device=gpu") && strstr(e2.msg, why), "%s", e2.msg);
    }

    /* cpu (and auto without a GPU) predict byte for byte as the default model */
    float ref[RH * RW * RC];
    tiny_reference(ref);
    enum { OUT = 7 * TS * TS * RC };
    static float want[OUT], got[OUT];
    sdlk_denoiser *d = tiny_model_on(NULL);
    ck_assert_int_eq(sdlk_exemplar_device(d), SDLK_DEVICE_CPU);
    ck_assert(sdlk_exemplar_device_ms(d) < 0.0);
    predict_level_batch(d, ref, want);
    sdlk_denoiser_destroy(d);
    const char *same[] = {"device=cpu", "device=auto"};
    for (size_t i = 0; i < 2; i++) {
        if (i == 1 && sdlk_gpu_count() > 0)
            continue; /* auto picks the GPU: tests/gpu/gpu_exemplar.c compares that */
        d = tiny_model_on(same[i]);
        ck_assert_int_eq(sdlk_exemplar_device(d), SDLK_DEVICE_CPU);
        memset(got, 0xff, sizeof got);
        predict_level_batch(d, ref, got);
        ck_assert_msg(memcmp(want, got, sizeof got) == 0, "%s differs from the default",
                      same[i]);
        sdlk_denoiser_destroy(d);
    }
    ck_assert_int_eq(sdlk_exemplar_device(NULL), SDLK_DEVICE_AUTO);
}
END_TEST

START_TEST(denoiser_specs)
{
    sdlk_denoiser *d = NULL;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_denoiser_open_spec("exemplar", NULL, 0, &d, &err), SDLK_OK);
    ck_assert_str_eq(d->desc.name, "exemplar");
    ck_assert_int_eq(d->desc.channels, 3);
    /* a 64x64 core with the automatic halo (patch 8 - stride 4) on each side */
    ck_assert(d->desc.tile[0] == 1 && d->desc.tile[1] == 72 && d->desc.tile[2] == 72);
    ck_assert(d->desc.halo[0] == 0 && d->desc.halo[1] == 4 && d->desc.halo[2] == 4);
    int64_t core[3];
    sdlk_denoiser_core(&d->desc, core);
    ck_assert(core[0] == 1 && core[1] == 64 && core[2] == 64);
    ck_assert_int_eq(d->desc.pred, SDLK_PRED_X0);
    ck_assert_int_eq(d->desc.time, SDLK_TIME_VP);
    ck_assert_int_eq(d->desc.max_batch, 16);
    ck_assert_int_ge(d->desc.workers, 1);
    ck_assert_int_eq(sdlk_denoiser_tile_numel(&d->desc), 72 * 72 * 3);
    sdlk_denoiser_destroy(d);
    /* a moving grid can sit at any phase: the auto halo is patch - 1, and a core that is
     * not a multiple of the stride is fine (the grid is placed by canvas position) */
    ck_assert_int_eq(sdlk_denoiser_open_spec("exemplar:lattice=moving,tile=62", NULL, 0, &d,
                                             &err),
                     SDLK_OK);
    ck_assert(d->desc.tile[1] == 76 && d->desc.halo[1] == 7 && d->desc.halo[2] == 7);
    sdlk_denoiser_destroy(d);
    ck_assert_int_eq(sdlk_denoiser_open_spec("exemplar:halo=0", NULL, 0, &d, &err), SDLK_OK);
    ck_assert(d->desc.tile[1] == 64 && d->desc.halo[1] == 0);
    sdlk_denoiser_destroy(d);

    ck_assert_int_eq(sdlk_denoiser_open_spec("exemplar:patch=4,tile=2x16x24,batch=3,patch_t=2",
                                             NULL, 0, &d, &err),
                     SDLK_OK);
    /* patch 4 -> stride 2 -> halo 2 in space, none in time */
    ck_assert(d->desc.tile[0] == 2 && d->desc.tile[1] == 20 && d->desc.tile[2] == 28);
    ck_assert_int_eq(d->desc.max_batch, 3);
    ck_assert_int_eq(sdlk_denoiser_tile_numel(&d->desc), 2 * 20 * 28 * 3);
    sdlk_denoiser_destroy(d);

    /* tile_hw overrides height and width */
    ck_assert_int_eq(sdlk_denoiser_open_spec("exemplar:patch=4,tile=2x16x24", NULL, 32, &d, &err),
                     SDLK_OK);
    ck_assert(d->desc.tile[0] == 2 && d->desc.tile[1] == 36 && d->desc.tile[2] == 36);
    sdlk_denoiser_destroy(d);

    const char *bad[][2] = {{"exemplar:bogus=1", "bogus"},
                            {"exemplar:patch=x", "patch"},
                            {"exemplarish", "exemplarish"},
                            {"nonsense", "nonsense"},
                            {"exec:", "exec"},
                            {"exemplar:patch=80", "patch"},
                            {"exemplar:tile=62", "stride"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sdlk_error e = {0};
        d = (sdlk_denoiser *)1;
        ck_assert_int_eq(sdlk_denoiser_open_spec(bad[i][0], NULL, 0, &d, &e), SDLK_ERR_ARG);
        ck_assert(d == NULL);
        ck_assert_msg(strstr(e.msg, bad[i][1]) != NULL, "%s: %s", bad[i][0], e.msg);
    }
}
END_TEST

START_TEST(pred_type_names)
{
    const char *names[] = {"eps", "x0", "v", "flow"};
    for (int p = SDLK_PRED_EPS; p <= SDLK_PRED_FLOW; p++) {
        ck_assert_str_eq(sdlk_pred_type_name((sdlk_pred_type)p), names[p]);
        sdlk_pred_type back = SDLK_PRED_EPS;
        ck_assert_int_eq(sdlk_pred_type_parse(names[p], &back), 0);
        ck_assert_int_eq(back, p);
    }
    sdlk_pred_type unused;
    ck_assert_int_eq(sdlk_pred_type_parse("epsilon", &unused), -1);
    ck_assert_int_eq(sdlk_pred_type_parse("", &unused), -1);
    ck_assert_ptr_nonnull(sdlk_pred_type_name((sdlk_pred_type)42));
}
END_TEST

int main(void)
{
    /* the exemplar model's sgemm calls run on the tile threads, one BLAS thread each */
    openblas_set_num_threads(1);
    return UNIT_RUN("gen_model", alpha_bar_matches_scaled_linear,
                    schedule_visits_published_timesteps, pred_conversions_round_trip,
                    ddim_step_lands_on_renoised_sample, ddim_eta_step_matches_posterior,
                    gaussian_fill_is_standard_normal_and_sliceable, canvas_alloc_and_errors,
                    canvas_u8_round_trip, resize_matches_keys_reference,
                    resize_keeps_constants_and_smooth_images, lowpass_removes_fine_detail,
                    exemplar_matches_posterior_mean_reference, exemplar_video_tiles_match_reference,
                    exemplar_extreme_levels,
                    exemplar_subsample_is_seeded, exemplar_request_errors,
                    exemplar_concurrent_predict_matches_sequential, exemplar_options_parse,
                    exemplar_device_option, denoiser_specs, pred_type_names);
}
