/* quality.h -- generation quality measures on f32 planes: seams, flicker,
 * high-frequency energy, radial power spectrum.
 *
 * Contract
 *   Planes are row-major f32 [h, w] (use sdlk_image_luma for images, or one channel of
 *   a canvas). Accumulators let a caller add frame after frame of a video.
 *
 *   Seam metric (tiled generation): the mean absolute difference across the lines where
 *   a tile border ever lay (between row r-1 and r for every r flagged in row_border;
 *   between column c-1 and c for every c flagged in col_border), divided by the same
 *   mean over all other interior lines. 1.0 means borders look like any other line;
 *   a visible seam makes it larger. Flags of index 0 are ignored (no line above row 0).
 *
 *   Flicker: mean |F_t - F_{t-1}| over consecutive frames (absolute temporal gradient);
 *   compare two videos by the ratio of their flicker.
 *
 *   High-frequency energy: mean squared response of the 3x3 Laplacian
 *   (4 x - up - down - left - right) over interior pixels; compare a restoration with
 *   the original by the ratio.
 *
 *   Radial power spectrum: |FFT2(x - mean)|^2 / (h' w') of the centred h' x w' crop
 *   whose sides are the largest powers of two that fit (so that every plane size
 *   works with libavutil's av_tx complex FFT, run over rows then columns), averaged
 *   over rings of radius r = sqrt(fy^2 + fx^2) in cycles per pixel, 0 <= r < 0.5, in
 *   `bins` equal bins (a bin no frequency falls in is 0). Compare two images by their
 *   spectra bin by bin.
 */
#ifndef SDLK_METRICS_QUALITY_H
#define SDLK_METRICS_QUALITY_H

#include <stdint.h>

#include "core/error.h"

typedef struct sdlk_seam_acc {
    double border_sum, interior_sum;
    int64_t border_n, interior_n;
} sdlk_seam_acc;

/* Add one plane. row_border has h flags, col_border w flags (either may be NULL:
 * no borders along that axis). */
void sdlk_seam_add(sdlk_seam_acc *acc, const float *plane, int64_t h, int64_t w,
                   const uint8_t *row_border, const uint8_t *col_border);
/* border mean / interior mean; NAN when either set is empty or interior mean is 0. */
double sdlk_seam_value(const sdlk_seam_acc *acc);

typedef struct sdlk_flicker_acc {
    double sum;
    int64_t n;
    float *prev;     /* owned copy of the previous plane */
    int64_t h, w;
} sdlk_flicker_acc;

/* Add the next frame's plane (the first only sets prev). SDLK_ERR_ARG when the size
 * changes, NOMEM. */
sdlk_status sdlk_flicker_add(sdlk_flicker_acc *acc, const float *plane, int64_t h, int64_t w,
                             sdlk_error *err);
/* Mean |F_t - F_{t-1}| (NAN before two frames). */
double sdlk_flicker_value(const sdlk_flicker_acc *acc);
void sdlk_flicker_free(sdlk_flicker_acc *acc);

/* Mean squared Laplacian over interior pixels (0 for planes under 3x3). */
double sdlk_hf_energy(const float *plane, int64_t h, int64_t w);

/* Radial power spectrum into out[bins]. SDLK_ERR_ARG for planes under 4x4 or bins < 1,
 * NOMEM, SDLK_ERR_INTERNAL if av_tx cannot be set up. */
sdlk_status sdlk_power_spectrum(const float *plane, int64_t h, int64_t w, int bins, double *out,
                                sdlk_error *err);

#endif
