/* predictor.c -- weighted least-squares line with forgetting (contract in predictor.h). */
#include "serve/predictor.h"

#include <math.h>
#include <string.h>

static void add(sdlk_serve_predictor *p, double n, double y, double w)
{
    p->s0 += w;
    p->s1 += w * n;
    p->s2 += w * n * n;
    p->sy += w * y;
    p->sxy += w * n * y;
}

static void refit(sdlk_serve_predictor *p)
{
    double det = p->s0 * p->s2 - p->s1 * p->s1;
    /* relative test: det is a weighted variance of n times s0^2 */
    if (p->s0 > 0 && det > 1e-9 * p->s0 * p->s2) {
        p->b = (p->s0 * p->sxy - p->s1 * p->sy) / det;
        p->a = (p->sy - p->b * p->s1) / p->s0;
    } else if (p->s0 > 0) {
        p->b = p->b0;
        p->a = (p->sy - p->b * p->s1) / p->s0;
    }
}

void sdlk_serve_predictor_init(sdlk_serve_predictor *p, double a0, double b0, double n_ref,
                               double prior_weight, double forget)
{
    memset(p, 0, sizeof *p);
    p->forget = forget > 0 && forget <= 1 ? forget : 1.0;
    p->a0 = p->a = a0;
    p->b0 = p->b = b0;
    if (prior_weight > 0) {
        add(p, 1.0, a0 + b0, prior_weight);
        if (n_ref > 1)
            add(p, n_ref, a0 + b0 * n_ref, prior_weight);
        refit(p);
    }
}

void sdlk_serve_predictor_observe(sdlk_serve_predictor *p, double n, double ms)
{
    if (!(n > 0) || !isfinite(ms))
        return;
    p->s0 *= p->forget;
    p->s1 *= p->forget;
    p->s2 *= p->forget;
    p->sy *= p->forget;
    p->sxy *= p->forget;
    add(p, n, ms, 1.0);
    p->observations++;
    refit(p);
}

double sdlk_serve_predictor_ms(const sdlk_serve_predictor *p, double n)
{
    if (!(n > 0))
        return 0.0;
    double y = p->a + p->b * n;
    return y > 0 ? y : 0.0;
}
