/* image_internal.h -- what image.c shares with the codec back ends (png.c, jpeg.c,
 * ffimage.c). Not installed, not part of the public API; the unit tests include it to
 * decode the same bytes through two independent back ends.
 *
 * Every decoder takes the whole file in memory (`name` is only for messages), fills
 * `out` with a fresh [H, W, C] u8/u16 tensor and `info` (never NULL here), and reports
 * failure through `err` with the name in front. Every encoder writes a complete file to
 * an open stream; image.c owns the atomic temporary file around it.
 */
#ifndef SDLK_IMAGE_INTERNAL_H
#define SDLK_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "image/image.h"

sdlk_status sdlk_png_decode(const uint8_t *data, size_t size, const char *name, sdlk_tensor *out,
                            sdlk_image_info *info, sdlk_error *err);
/* `img` is a contiguous [H, W, C] u8/u16 tensor, C = 1..4. level: zlib 0..9. */
sdlk_status sdlk_png_encode(FILE *fp, const char *name, const sdlk_tensor *img, int level,
                            sdlk_error *err);

sdlk_status sdlk_jpeg_decode(const uint8_t *data, size_t size, const char *name,
                             sdlk_tensor *out, sdlk_image_info *info, sdlk_error *err);
/* `img` is a contiguous [H, W, C] u8/u16 tensor; u16 is reduced to 8 bits (rounded) and
 * alpha (C = 2 or 4) is dropped, since baseline JPEG has neither. */
sdlk_status sdlk_jpeg_encode(FILE *fp, const char *name, const sdlk_tensor *img, int quality,
                             sdlk_chroma chroma, sdlk_error *err);

/* Any image (or first video frame) FFmpeg can demux and decode from memory. */
sdlk_status sdlk_ff_image_decode(const uint8_t *data, size_t size, const char *name,
                                 sdlk_tensor *out, sdlk_image_info *info, sdlk_error *err);
/* Encode with the FFmpeg encoder that the image2 muxer pairs with `format` (a file
 * extension such as "bmp", "tiff", "webp"); SDLK_ERR_UNSUPPORTED when none exists. */
sdlk_status sdlk_ff_image_encode(FILE *fp, const char *name, const char *format,
                                 const sdlk_tensor *img, sdlk_error *err);

/* Shared checks: dims within 1..SDLK_IMAGE_MAX_SIDE, else SDLK_ERR_FORMAT naming `name`. */
sdlk_status sdlk_image_check_dims(const char *name, int64_t width, int64_t height,
                                  sdlk_error *err);
/* Allocate the [height, width, channels] output tensor (u8 or u16). */
sdlk_status sdlk_image_alloc(sdlk_tensor *out, int width, int height, int channels,
                             sdlk_dtype dtype, sdlk_error *err);
/* SDLK_OK when `img` is a [H, W, C] u8/u16 image with C = 1..4 and sides in range;
 * SDLK_ERR_ARG naming `name` otherwise. */
sdlk_status sdlk_image_check_tensor(const char *name, const sdlk_tensor *img, sdlk_error *err);

#endif
