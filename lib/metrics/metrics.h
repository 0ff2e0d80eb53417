/* metrics.h -- image quality: luma, PSNR, SSIM.
 *
 * Contract
 *   Images are [H, W, C] tensors of dtype u8 or u16 with C = 1 (gray), 2 (gray + alpha),
 *   3 (RGB) or 4 (RGBA), any byte strides. Alpha is never part of a measurement: the
 *   metrics describe what a viewer sees of the colour channels.
 *   Luma is BT.601 (0.299 R + 0.587 G + 0.114 B; gray as is), in 8-bit units for both
 *   dtypes (u16 values are divided by 257) so that thresholds do not depend on depth.
 *   PSNR is over every colour sample, with the dtype's peak (255 or 65535); identical
 *   images give +INFINITY. SSIM is Wang et al. 2004 on luma: 11x11 Gaussian window
 *   (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255 (luma is in 8-bit units), mean over the
 *   positions where the window fits ("valid"), as the reference MATLAB ssim_index does.
 *   Both images must have the same shape and dtype (SDLK_ERR_ARG otherwise); SSIM needs
 *   at least 11x11 pixels.
 */
#ifndef SDLK_METRICS_METRICS_H
#define SDLK_METRICS_METRICS_H

#include "core/error.h"
#include "core/tensor.h"

/* out[H * W] = luma of img in 8-bit units (row-major). */
sdlk_status sdlk_image_luma(const sdlk_tensor *img, float *out, sdlk_error *err);

/* Peak signal-to-noise ratio in dB over the colour samples. */
sdlk_status sdlk_psnr(const sdlk_tensor *a, const sdlk_tensor *b, double *psnr_db,
                      sdlk_error *err);

/* Mean SSIM of the lumas of two images. */
sdlk_status sdlk_ssim(const sdlk_tensor *a, const sdlk_tensor *b, double *ssim, sdlk_error *err);

/* Mean SSIM of two planes (row-major, `width` x `height`, values in [0, peak]). */
sdlk_status sdlk_ssim_plane(const float *x, const float *y, int width, int height, double peak,
                            double *ssim, sdlk_error *err);

#endif
