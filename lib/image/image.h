/* image.h -- still images as tensors: PNG (libpng), JPEG (libjpeg-turbo), the rest via
 * FFmpeg.
 *
 * Contract
 *   An image is a C-contiguous tensor of shape [H, W, C], dtype u8 or u16, C = 1 (gray),
 *   2 (gray + alpha), 3 (RGB) or 4 (RGBA). Reading keeps what the file holds: 16-bit
 *   PNGs stay u16, gray stays gray, alpha is kept; palettes are expanded (to RGB, or
 *   RGBA with tRNS); low bit depths (1/2/4) are scaled to 8 bits. JPEG reads as gray or
 *   RGB (CMYK is refused; damaged entropy-coded data is an error, not gray filler).
 *   Any other format FFmpeg can decode (BMP, TIFF, WebP, GIF's first frame...) is read
 *   through libavformat/libavcodec and converted with libswscale to gray/GA/RGB/RGBA,
 *   u16 when the file has more than 8 bits per sample; palette images are expanded by
 *   lookup (gray when every entry is gray, alpha only when an entry is transparent).
 *   The format is detected from the first bytes, never from the extension, so stdin
 *   ("-") works. Bad data (truncated, zero width, absurd dimensions, corrupt
 *   compressed data) is an SDLK_ERR_FORMAT naming the file; libpng/libjpeg errors
 *   never abort or print (their error handlers are routed into sdlk_error).
 *   Writing picks the format from the extension (.png, .jpg/.jpeg, else what FFmpeg's
 *   image2 muxer knows, e.g. .bmp .tiff .ppm .tga, and .webp through libwebp), or from
 *   opts->format for "-". Outputs are atomic (temporary file + rename; nothing is left
 *   on failure). JPEG quality and chroma subsampling (4:4:4, 4:2:2, 4:2:0) are options;
 *   a 16-bit image written as JPEG is reduced to 8 bits (rounded), and alpha is
 *   dropped, since JPEG has none (gray + alpha becomes gray, RGBA becomes RGB).
 *   Image dimensions are limited to SDLK_IMAGE_MAX_SIDE per side.
 */
#ifndef SDLK_IMAGE_IMAGE_H
#define SDLK_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"

#define SDLK_IMAGE_MAX_SIDE 65535

typedef struct sdlk_image_info {
    char format[16]; /* "png", "jpeg", or FFmpeg's codec name ("bmp", "tiff"...) */
    int width, height, channels;
    int bit_depth;   /* bits per sample as stored in the file (1..16) */
    int has_palette; /* PNG palette image (expanded on read) */
    int subsampling; /* JPEG chroma: 444, 422, 420, 440, 411; 0 otherwise */
} sdlk_image_info;

typedef enum sdlk_chroma {
    SDLK_CHROMA_420 = 420,
    SDLK_CHROMA_422 = 422,
    SDLK_CHROMA_444 = 444
} sdlk_chroma;

typedef struct sdlk_image_write_opts {
    const char *format;  /* "png", "jpeg", "bmp"...; NULL = from the extension */
    int jpeg_quality;    /* 1..100, 0 = default 90 */
    sdlk_chroma chroma;  /* 0 = default 4:2:0 */
    int png_compression; /* zlib level 0..9, -1 = default (6) */
} sdlk_image_write_opts;

/* Default options (quality 90, 4:2:0, PNG level 6, format from extension). */
void sdlk_image_write_opts_init(sdlk_image_write_opts *opts);

/* Read an image file ("-" = stdin). info may be NULL. */
sdlk_status sdlk_image_read(const char *path, sdlk_tensor *out, sdlk_image_info *info,
                            sdlk_error *err);
/* Read an image from bytes in memory (name for messages). */
sdlk_status sdlk_image_decode(const uint8_t *data, size_t size, const char *name,
                              sdlk_tensor *out, sdlk_image_info *info, sdlk_error *err);
/* ---- reading rows: only what the caller needs ---------------------------------------
 * A rectangle of the image: columns [x, x + width), rows [y, y + height); a width or
 * height of 0 means "to the edge". It is clipped to the image; a region that misses the
 * image entirely is an SDLK_ERR_ARG. */
typedef struct sdlk_image_region {
    int x, y, width, height;
} sdlk_image_region;

/* Where the rows go: `begin` once, with the geometry of what follows (the region after
 * clipping; channels and dtype as sdlk_image_decode would give them), then `row` for
 * each row of the region top to bottom (y counts from the region's top; `row` holds
 * width x channels samples, valid until it returns). A callback returning non-OK stops
 * the decoding and that status (with its message) is returned. */
typedef struct sdlk_image_row_sink {
    sdlk_status (*begin)(void *ctx, int width, int height, int channels, sdlk_dtype dtype,
                         sdlk_error *err);
    sdlk_status (*row)(void *ctx, int y, const uint8_t *row, sdlk_error *err);
    void *ctx;
} sdlk_image_row_sink;

/* Decode `region` (NULL: the whole image) of an image in memory row by row into `sink`
 * without holding the decoded image: the pixels equal those of sdlk_image_decode in that
 * rectangle, bit for bit. JPEG is decoded only as far as needed: libjpeg-turbo skips the
 * rows above the region (jpeg_skip_scanlines), runs the inverse DCT and colour
 * conversion only on the iMCU columns that hold it (jpeg_crop_scanline) and stops after
 * its last row, and a whole JPEG streams through a one-row buffer; other formats are
 * decoded whole first. `info` (may be NULL) describes the whole image. */
sdlk_status sdlk_image_decode_rows(const uint8_t *data, size_t size, const char *name,
                                   const sdlk_image_region *region,
                                   const sdlk_image_row_sink *sink, sdlk_image_info *info,
                                   sdlk_error *err);

/* 1 when the first bytes look like an image we can decode by ourselves (PNG/JPEG) or
 * a common image format (BMP, TIFF, WebP, GIF, PPM). */
int sdlk_image_sniff(const uint8_t *head, size_t size);

/* Write `img` ([H,W,C] u8/u16) to `path` atomically. opts may be NULL. */
sdlk_status sdlk_image_write(const char *path, const sdlk_tensor *img,
                             const sdlk_image_write_opts *opts, sdlk_error *err);

typedef enum sdlk_layout {
    SDLK_LAYOUT_HWC = 0, /* [H, W, C] (what images are) */
    SDLK_LAYOUT_CHW      /* [C, H, W] (what most models take) */
} sdlk_layout;

/* u8/u16 image -> f32 in [0, 1] (value / 255 or / 65535) in the given layout. u8 goes
 * through sdlk_scale_u8_to_f32 with SDLK_DEVICE_AUTO (the GPU when one is present). */
sdlk_status sdlk_image_to_float(const sdlk_tensor *img, sdlk_layout layout, sdlk_tensor *out,
                                sdlk_error *err);
/* f32/f64 tensor in [0, 1] (clamped; NaN -> 0) -> u8 or u16 image [H, W, C], rounded to
 * nearest (halves up). `layout` says how `f` is laid out (any strides); C must be 1..4.
 * to_float followed by from_float gives back every u8 and u16 value exactly. */
sdlk_status sdlk_image_from_float(const sdlk_tensor *f, sdlk_layout layout, sdlk_dtype dtype,
                                  sdlk_tensor *out, sdlk_error *err);

/* Any image (u8/u16, gray, gray+alpha, RGB, RGBA) -> a new [H, W, 3] u8 RGB tensor:
 * gray is replicated, alpha dropped (what a model that takes RGB sees), u16 scaled
 * to 8 bits by round(v * 255 / 65535). SDLK_ERR_UNSUPPORTED for other dtypes/ranks. */
sdlk_status sdlk_image_to_rgb8(const sdlk_tensor *img, sdlk_tensor *out, sdlk_error *err);

#endif
