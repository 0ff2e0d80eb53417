/* schedule.h -- noise schedules, DDIM / flow steps, prediction conversions.
 *
 * Contract
 *   Variance-preserving (VP) models use the "scaled linear" schedule of latent
 *   diffusion: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2, alpha_bar[t] =
 *   prod_{i<=t} (1 - beta_i), t = 0..999. Flow models use sigma(t) = t / 1000.
 *
 *   A run of `steps` steps from strength s in (0, 1] visits timesteps
 *   t_k = round(s * 999 * (steps - k) / steps) for k = 0..steps-1 (descending) and ends
 *   at "clean" (alpha_bar = 1, sigma = 0). Strength 1 starts from pure noise;
 *   strength 0.2 re-noises a sketch part-way (SuperGen's stage 2). The level of step k
 *   is alpha_bar[t_k] (VP) or t_k / 1000 (flow); the level after the last step is 1 (VP)
 *   or 0 (flow).
 *
 *   DDIM (eta = 0, deterministic): from x at level a with x0 and eps estimates,
 *   x' = sqrt(a') x0 + sqrt(1 - a') eps. Flow (Euler on the straight path):
 *   x' = (1 - s') x0 + s' eps. Every model output kind converts to (x0, eps) first, so
 *   one step function serves eps, x0, v and flow models.
 *   Re-noising (SuperGen): VP x = sqrt(a) x0 + sqrt(1 - a) e; flow x = (1 - s) x0 + s e.
 *
 *   All functions are pure and allocation-free; arrays are f32 of length n.
 */
#ifndef SDLK_GEN_SCHEDULE_H
#define SDLK_GEN_SCHEDULE_H

#include <stdint.h>

#include "core/error.h"
#include "gen/denoiser.h"

#define SDLK_SCHEDULE_TIMESTEPS 1000

typedef struct sdlk_schedule {
    sdlk_time_kind time;
    int steps;                 /* number of model evaluations */
    double strength;           /* (0, 1] */
    int32_t timestep[1024];    /* t_k, k = 0..steps-1 */
    double level[1025];        /* level[k] for k = 0..steps (level[steps] = clean) */
} sdlk_schedule;

/* alpha_bar[t] of the scaled-linear schedule, t in 0..999 (clamped). */
double sdlk_alpha_bar(int32_t t);

/* Build a schedule. Errors (SDLK_ERR_ARG): steps outside 1..1024, strength outside
 * (0, 1]. */
sdlk_status sdlk_schedule_init(sdlk_schedule *s, sdlk_time_kind time, int steps,
                               double strength, sdlk_error *err);

/* Convert a model output `pred` of kind `kind` for input x at `level` into estimates of
 * x0 and eps (either output pointer may be NULL; x0/eps may alias pred but not x). */
void sdlk_pred_to_x0_eps(sdlk_time_kind time, sdlk_pred_type kind, double level,
                         const float *x, const float *pred, float *x0, float *eps, int64_t n);

/* One deterministic step from `level` to `next_level`: x_next = step(x, pred). x_next
 * may alias x. */
void sdlk_sampler_step(sdlk_time_kind time, sdlk_pred_type kind, double level,
                       double next_level, const float *x, const float *pred, float *x_next,
                       int64_t n);

/* The stochastic DDIM step (Song et al., eq. 12) with eta in [0, 1] under VP time:
 *     sigma  = eta * (B'/B) * sqrt(1 - (A/A')^2)
 *     x_next = A' x0 + sqrt(B'^2 - sigma^2) e + sigma z
 * with z = noise[i] (standard normal, the caller's: counter-based by canvas position, so
 * tiling changes nothing). eta 0 is sdlk_sampler_step; eta 1 is the DDPM posterior
 * sample. Fresh noise keeps the sample's variance where a smoothing denoiser (one that
 * averages estimates, like the exemplar model's patch blend) would lose a little at
 * every deterministic step. Under flow time, or at the last step (next level 1 = clean),
 * sigma is 0 and this is the deterministic step. x_next may alias x. */
void sdlk_sampler_step_eta(sdlk_time_kind time, sdlk_pred_type kind, double level,
                           double next_level, double eta, const float *x, const float *pred,
                           const float *noise, float *x_next, int64_t n);

/* x = renoise(x0, noise) at `level` (x may alias x0). */
void sdlk_renoise(sdlk_time_kind time, double level, const float *x0, const float *noise,
                  float *x, int64_t n);

/* Deterministic standard normal noise: out[i] for i in [first, first + n) of the stream
 * named by seed (counter-based, so any slice of a canvas can be generated
 * independently and in parallel with identical results). */
void sdlk_gaussian_fill(uint64_t seed, uint64_t first, float *out, int64_t n);

#endif
