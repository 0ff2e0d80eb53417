/* schedule.c -- noise schedules, DDIM / flow steps, prediction conversions (see
 * schedule.h). */
#include "gen/schedule.h"

#include <math.h>
#include <stddef.h>

/* ---- schedules -------------------------------------------------------------------- */

double sdlk_alpha_bar(int32_t t)
{
    if (t < 0)
        t = 0;
    if (t > SDLK_SCHEDULE_TIMESTEPS - 1)
        t = SDLK_SCHEDULE_TIMESTEPS - 1;
    /* Recomputed on every call (at most 1000 products, about a microsecond) rather than
     * cached in a table, so that the library keeps no global mutable state. */
    const double lo = sqrt(0.00085), hi = sqrt(0.012);
    double prod = 1.0;
    for (int32_t i = 0; i <= t; i++) {
        double root = lo + (hi - lo) * (double)i / (double)(SDLK_SCHEDULE_TIMESTEPS - 1);
        prod *= 1.0 - root * root;
    }
    return prod;
}

sdlk_status sdlk_schedule_init(sdlk_schedule *s, sdlk_time_kind time, int steps,
                               double strength, sdlk_error *err)
{
    const int max_steps = (int)(sizeof s->timestep / sizeof s->timestep[0]);
    if (steps < 1 || steps > max_steps)
        return sdlk_error_set(err, SDLK_ERR_ARG, "schedule: steps must be from 1 to %d, got %d",
                              max_steps, steps);
    if (!(strength > 0.0 && strength <= 1.0))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "schedule: strength must be in (0, 1], got %g", strength);
    if (time != SDLK_TIME_VP && time != SDLK_TIME_FLOW)
        return sdlk_error_set(err, SDLK_ERR_ARG, "schedule: unknown time kind %d", (int)time);
    s->time = time;
    s->steps = steps;
    s->strength = strength;
    for (int k = 0; k < steps; k++) {
        int32_t t = (int32_t)lround(strength * (SDLK_SCHEDULE_TIMESTEPS - 1) *
                                    (double)(steps - k) / (double)steps);
        s->timestep[k] = t;
        s->level[k] = time == SDLK_TIME_VP ? sdlk_alpha_bar(t)
                                           : (double)t / SDLK_SCHEDULE_TIMESTEPS;
    }
    s->level[steps] = time == SDLK_TIME_VP ? 1.0 : 0.0;
    return SDLK_OK;
}

/* ---- conversions ------------------------------------------------------------------ */

/* Both time kinds write the noisy sample as x = A x0 + B e: VP with A = sqrt(a),
 * B = sqrt(1 - a); flow with A = 1 - s, B = s. Expressing every conversion through
 * (A, B) keeps one formula per prediction kind for both. */
typedef struct mix_coef {
    double a, b;
} mix_coef;

static mix_coef mix_at(sdlk_time_kind time, double level)
{
    if (level < 0.0)
        level = 0.0;
    if (level > 1.0)
        level = 1.0;
    mix_coef m;
    if (time == SDLK_TIME_FLOW) {
        m.a = 1.0 - level;
        m.b = level;
    } else {
        m.a = sqrt(level);
        m.b = sqrt(1.0 - level);
    }
    return m;
}

/* Below this a coefficient carries no information about its component; dividing by it
 * would only amplify rounding, so that component is estimated as 0 instead. */
#define COEF_EPS 1e-12

/* x0 and e of one element. Each kind is a 2x2 linear system in (x0, e):
 *   eps:  p = e                  x0 = (x - B e) / A
 *   x0:   p = x0                 e  = (x - A x0) / B
 *   v:    p = A e - B x0         x0 = (A x - B p) / (A^2 + B^2), e = (B x + A p) / (..)
 *   flow: p = e - x0             x0 = (x - B p) / (A + B),       e = (x + A p) / (A + B)
 * (A^2 + B^2 = 1 under VP; A + B = 1 under flow time.) */
static void to_x0_eps(mix_coef m, sdlk_pred_type kind, double x, double p, double *x0,
                      double *e)
{
    switch (kind) {
    case SDLK_PRED_EPS:
        *e = p;
        *x0 = m.a > COEF_EPS ? (x - m.b * p) / m.a : 0.0;
        break;
    case SDLK_PRED_X0:
        *x0 = p;
        *e = m.b > COEF_EPS ? (x - m.a * p) / m.b : 0.0;
        break;
    case SDLK_PRED_V: {
        double det = m.a * m.a + m.b * m.b;
        *x0 = (m.a * x - m.b * p) / det;
        *e = (m.b * x + m.a * p) / det;
        break;
    }
    case SDLK_PRED_FLOW:
    default: {
        double det = m.a + m.b;
        *x0 = (x - m.b * p) / det;
        *e = (x + m.a * p) / det;
        break;
    }
    }
}

void sdlk_pred_to_x0_eps(sdlk_time_kind time, sdlk_pred_type kind, double level,
                         const float *x, const float *pred, float *x0, float *eps, int64_t n)
{
    mix_coef m = mix_at(time, level);
    for (int64_t i = 0; i < n; i++) {
        double c, e;
        to_x0_eps(m, kind, x[i], pred[i], &c, &e);
        /* read pred[i] before writing: x0/eps may alias pred */
        if (x0)
            x0[i] = (float)c;
        if (eps)
            eps[i] = (float)e;
    }
}

void sdlk_sampler_step(sdlk_time_kind time, sdlk_pred_type kind, double level,
                       double next_level, const float *x, const float *pred, float *x_next,
                       int64_t n)
{
    /* DDIM (eta = 0) and the flow Euler step are the same move in (A, B) form: keep the
     * estimates of x0 and e, swap the mixing coefficients for the next level's. */
    mix_coef m = mix_at(time, level), next = mix_at(time, next_level);
    for (int64_t i = 0; i < n; i++) {
        double c, e;
        to_x0_eps(m, kind, x[i], pred[i], &c, &e);
        x_next[i] = (float)(next.a * c + next.b * e);
    }
}

void sdlk_sampler_step_eta(sdlk_time_kind time, sdlk_pred_type kind, double level,
                           double next_level, double eta, const float *x, const float *pred,
                           const float *noise, float *x_next, int64_t n)
{
    mix_coef m = mix_at(time, level), next = mix_at(time, next_level);
    double sigma = 0.0;
    if (time == SDLK_TIME_VP && eta > 0.0 && m.b > COEF_EPS && next.a > COEF_EPS) {
        double ratio = m.a / next.a; /* sqrt(alpha_bar / alpha_bar'), < 1 */
        double keep = 1.0 - ratio * ratio;
        sigma = keep > 0.0 ? eta * (next.b / m.b) * sqrt(keep) : 0.0;
        if (sigma > next.b)
            sigma = next.b;
    }
    if (sigma == 0.0) {
        sdlk_sampler_step(time, kind, level, next_level, x, pred, x_next, n);
        return;
    }
    double e_coef = sqrt(next.b * next.b - sigma * sigma);
    for (int64_t i = 0; i < n; i++) {
        double c, e;
        to_x0_eps(m, kind, x[i], pred[i], &c, &e);
        x_next[i] = (float)(next.a * c + e_coef * e + sigma * noise[i]);
    }
}

void sdlk_renoise(sdlk_time_kind time, double level, const float *x0, const float *noise,
                  float *x, int64_t n)
{
    mix_coef m = mix_at(time, level);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(m.a * x0[i] + m.b * noise[i]);
}

/* ---- noise ------------------------------------------------------------------------ */

/* splitmix64's output function. The j-th output of a splitmix64 stream is this mix of
 * state0 + (j + 1) * gamma, so any output can be computed directly from its index:
 * the generator is counter-based for free. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

/* Box-Muller pair number `pair` of the stream: elements 2 * pair and 2 * pair + 1. */
static void normal_pair(uint64_t stream, uint64_t pair, double *z0, double *z1)
{
    uint64_t r1 = mix64(stream + (2 * pair + 1) * GOLDEN_GAMMA);
    uint64_t r2 = mix64(stream + (2 * pair + 2) * GOLDEN_GAMMA);
    /* u1 in (0, 1] so the log is finite; u2 in [0, 1) */
    double u1 = (double)((r1 >> 11) + 1) * 0x1.0p-53;
    double u2 = (double)(r2 >> 11) * 0x1.0p-53;
    double radius = sqrt(-2.0 * log(u1));
    double angle = 6.283185307179586476925 * u2;
    *z0 = radius * cos(angle);
    *z1 = radius * sin(angle);
}

void sdlk_gaussian_fill(uint64_t seed, uint64_t first, float *out, int64_t n)
{
    /* Mixing the seed first keeps nearby seeds (1, 2, 3...) from naming overlapping
     * stretches of one splitmix sequence. */
    uint64_t stream = mix64(seed ^ 0x5d6c1a2b3c4d5e6full);
    int64_t i = 0;
    while (i < n) {
        uint64_t index = first + (uint64_t)i;
        double z[2];
        normal_pair(stream, index / 2, &z[0], &z[1]);
        out[i++] = (float)z[index & 1];
        if ((index & 1) == 0 && i < n)
            out[i++] = (float)z[1];
    }
}
