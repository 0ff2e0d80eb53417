/* predictor.h -- online latency predictor: batch latency as a line in the batch's work.
 *
 * Contract
 *   The latency of one model call that processes n units of work (tiles, or tile
 *   equivalents of a whole canvas) is modelled as L(n) = a + b n (a: the fixed cost of a
 *   call, b: the cost of one tile). The fit is weighted least squares over every
 *   observation so far, each weight multiplied by `forget` (0 < forget <= 1) at every
 *   new observation, so that the fit follows the machine while serving (1 keeps all
 *   history alike). The prior (a0, b0 from a profile) enters as two pseudo-observations
 *   at n = 1 and n = n_ref of weight `prior_weight`, which decay like real ones: the
 *   predictor starts at the profile and moves to what it sees.
 *   When the observed n are all alike the slope is not identified; the fit then keeps
 *   the prior's slope and moves the intercept. Predictions are clamped to >= 0.
 *   `headroom` is not part of the fit: the relative margin a scheduler plans with on
 *   top of the predictions (sdlk_serve_sched_form), 0 after init.
 *   Everything is O(1) per observation and per prediction; no allocation.
 */
#ifndef SDLK_SERVE_PREDICTOR_H
#define SDLK_SERVE_PREDICTOR_H

#include <stdint.h>

typedef struct sdlk_serve_predictor {
    double forget;
    double s0, s1, s2, sy, sxy; /* weighted sums of 1, n, n^2, y, n y */
    double a0, b0;              /* the prior, for the unidentified case */
    double a, b;                /* current fit */
    int64_t observations;       /* real ones */
    double headroom;            /* plan with predictions x (1 + headroom) */
} sdlk_serve_predictor;

/* Start from L(n) = a0 + b0 n, worth `prior_weight` observations at each of n = 1 and
 * n = n_ref (n_ref > 1; e.g. the largest batch). forget in (0, 1]. */
void sdlk_serve_predictor_init(sdlk_serve_predictor *p, double a0, double b0, double n_ref,
                               double prior_weight, double forget);
/* Add one measured call: n units took ms milliseconds. Refits. */
void sdlk_serve_predictor_observe(sdlk_serve_predictor *p, double n, double ms);
/* Predicted milliseconds of a call on n units (n = 0: 0). */
double sdlk_serve_predictor_ms(const sdlk_serve_predictor *p, double n);

#endif
