/* canvas.h -- f32 video/image canvases for generation, and resampling between sizes.
 *
 * Contract
 *   A canvas is a contiguous f32 array [T, H, W, C] in C order (frames, rows, columns,
 *   channels); an image is T = 1. Generation works on values in [-1, 1]:
 *   sdlk_canvas_from_u8 maps 0..255 to -1..1 and sdlk_canvas_frame_to_u8 maps back
 *   (clamped, rounded to nearest).
 *
 *   Resampling (per frame, per channel, separable) uses the Keys cubic convolution
 *   kernel with a = -0.5 (what "bicubic" means in OpenCV, PIL and FFmpeg's swscale) with
 *   pixel centres aligned ((i + 0.5) / scale - 0.5) and edge pixels replicated. When
 *   shrinking, the kernel is stretched by the factor (antialiased, as PIL does), so that
 *   downscale-then-upscale is a proper low-pass filter. Cost O(T * H' * W' * C * taps).
 *
 *   ILVR's low-pass phi_N(x) = up(down(x, 1/N), N) is sdlk_canvas_lowpass().
 *
 *   Parallel versions take a borrowed sdlk_pool (may be NULL: run on the caller).
 */
#ifndef SDLK_GEN_CANVAS_H
#define SDLK_GEN_CANVAS_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "core/tensor.h"

typedef struct sdlk_canvas {
    float *data;   /* owned (malloc) unless `borrowed` */
    int64_t t, h, w, c;
    int borrowed;
} sdlk_canvas;

/* Allocate a zeroed canvas. SDLK_ERR_ARG for a size < 1, SDLK_ERR_OVERFLOW / NOMEM. */
sdlk_status sdlk_canvas_alloc(sdlk_canvas *cv, int64_t t, int64_t h, int64_t w, int64_t c,
                              sdlk_error *err);
void sdlk_canvas_free(sdlk_canvas *cv);
/* Elements: t * h * w * c. */
int64_t sdlk_canvas_numel(const sdlk_canvas *cv);
/* Pointer to frame f's first element. */
float *sdlk_canvas_frame(const sdlk_canvas *cv, int64_t f);
/* A one-frame canvas borrowing frame f of cv (nothing to free). */
sdlk_canvas sdlk_canvas_frame_view(const sdlk_canvas *cv, int64_t f);

/* Frame `f` of `cv` (channels must match) from an [H, W, C] u8 image tensor (any
 * strides), mapped to [-1, 1]. SDLK_ERR_ARG on a shape mismatch. */
sdlk_status sdlk_canvas_set_frame_u8(sdlk_canvas *cv, int64_t f, const sdlk_tensor *img,
                                     sdlk_error *err);
/* Frame `f` as a new [H, W, C] u8 tensor (crop to `crop_h` x `crop_w` from the top-left
 * when they are > 0 and smaller than the canvas). */
sdlk_status sdlk_canvas_frame_to_u8(const sdlk_canvas *cv, int64_t f, int64_t crop_h,
                                    int64_t crop_w, sdlk_tensor *img, sdlk_error *err);

/* Resize every frame of `src` to `dst`'s H x W (dst allocated by the caller with the
 * same T and C). Keys bicubic, antialiased when shrinking. */
sdlk_status sdlk_canvas_resize(const sdlk_canvas *src, sdlk_canvas *dst, sdlk_pool *pool,
                               sdlk_error *err);

/* dst = up(down(src, factor), back to src's size): the ILVR low-pass. factor > 1
 * (2 for a x2 super-resolution). dst may not alias src. Scratch is allocated
 * internally (one small canvas). */
sdlk_status sdlk_canvas_lowpass(const sdlk_canvas *src, double factor, sdlk_canvas *dst,
                                sdlk_pool *pool, sdlk_error *err);

#endif
