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

#endif
