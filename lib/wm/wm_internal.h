/* wm_internal.h -- helpers shared by embed.c and detect.c (not part of the API). */
#ifndef SDLK_WM_INTERNAL_H
#define SDLK_WM_INTERNAL_H

#include <stdint.h>

#include "wm/wm.h"

/* Local mean and standard deviation of `src` (w x h) over a (2r+1)^2 window clipped at
 * the borders, via an integral image (O(w h) whatever r). mean or std may be NULL. */
int wm_local_stats(const float *src, int w, int h, int r, float *mean, float *std);

/* 8x8 orthonormal DCT-II of a block read with row stride `stride`: out[u][v]. */
void wm_dct8x8(const float dct[8][8], const float *in, int stride, float out[8][8]);
/* Inverse: out (row stride `stride`) = sum_uv in[u][v] basis_u(y) basis_v(x). */
void wm_idct8x8(const float dct[8][8], const float in[8][8], float *out, int stride);

/* The T x T spatial tile pattern of the 160 bit signs, scaled to unit RMS. */
void wm_tile_pattern(const sdlk_wm_key *key, const int8_t signs[SDLK_WM_GROUPS], float *tile);

/* ---- detection internals shared by the CPU path (detect.c) and the GPU path
 * (engine.c -> kernels/wm.cu), so that both compute with the same constants and
 * tables. */

/* Contrast normalisation before folding: (Y - local mean) / (local std + floor) over a
 * (2 r + 1)^2 window, and the clip of the equalised band (see detect.c for why). */
#define WM_WHITEN_RADIUS 1
#define WM_WHITEN_FLOOR 2.0f
#define WM_BAND_CLIP 2.5f

/* One axis of a cyclic resampling from period in_n to out_n with a tent kernel whose
 * support grows with the reduction (plain linear interpolation when enlarging): for
 * output i, the weights over input taps [first[i], first[i] + taps). */
typedef struct wm_resample_axis {
    int taps;
    int *first;     /* [out_n] */
    float *weight;  /* [out_n][taps] */
} wm_resample_axis;
/* 0, or -1 when out of memory (then free it anyway). */
int wm_resample_axis_init(wm_resample_axis *ax, int in_n, int out_n);
void wm_resample_axis_free(wm_resample_axis *ax);

/* What the locate search covers for one image: the fold period of each scale (0 when it
 * does not fit), the hypotheses charged to the p-value, and the early stop. */
typedef struct wm_search_plan {
    int period[SDLK_WM_MAX_SCALES];
    int usable;                         /* scales that fit */
    int max_period;
    int64_t hypotheses;                 /* usable x T^2 */
    /* stop[k]: after a scale, a best hypothesis with k agreeing pilots ends the search
     * (never when params->exhaustive) */
    uint8_t stop[SDLK_WM_PILOT_BITS + 1];
} wm_search_plan;
/* The plan for a w x h image, or the error sdlk_wm_locate reports (too small, bad
 * scales). */
sdlk_status wm_search_plan_make(int w, int h, const sdlk_wm_key *key,
                                const sdlk_wm_detect_params *params, wm_search_plan *plan,
                                sdlk_error *err);
/* The fold period of `scale` for tile T. */
int wm_scale_period(int tile, double scale);

#endif
