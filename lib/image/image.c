/* image.c -- format detection, dispatch to the codec back ends, atomic writes, and the
 * integer <-> float conversions models need. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/convert.h"
#include "core/file.h"
#include "image/image_internal.h"

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int is_png(const uint8_t *head, size_t size)
{
    return size >= 8 && memcmp(head, png_magic, 8) == 0;
}

static int is_jpeg(const uint8_t *head, size_t size)
{
    return size >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff;
}

int sdlk_image_sniff(const uint8_t *head, size_t size)
{
    if (is_png(head, size) || is_jpeg(head, size))
        return 1;
    if (size >= 2 && head[0] == 'B' && head[1] == 'M')
        return 1;
    if (size >= 4 && (memcmp(head, "II*\0", 4) == 0 || memcmp(head, "MM\0*", 4) == 0))
        return 1;
    if (size >= 12 && memcmp(head, "RIFF", 4) == 0 && memcmp(head + 8, "WEBP", 4) == 0)
        return 1;
    if (size >= 6 && (memcmp(head, "GIF87a", 6) == 0 || memcmp(head, "GIF89a", 6) == 0))
        return 1;
    /* Netpbm: P1..P7 followed by white space */
    if (size >= 3 && head[0] == 'P' && head[1] >= '1' && head[1] <= '7' &&
        (head[2] == ' ' || head[2] == '\n' || head[2] == '\r' || head[2] == '\t'))
        return 1;
    return 0;
}

void sdlk_image_write_opts_init(sdlk_image_write_opts *opts)
{
    opts->format = NULL;
    opts->jpeg_quality = 90;
    opts->chroma = SDLK_CHROMA_420;
    opts->png_compression = 6;
}

sdlk_status sdlk_image_check_dims(const char *name, int64_t width, int64_t height,
                                  sdlk_error *err)
{
    if (width < 1 || height < 1 || width > SDLK_IMAGE_MAX_SIDE || height > SDLK_IMAGE_MAX_SIDE)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: image size %lldx%lld is outside 1..%d per side", name,
                              (long long)width, (long long)height, SDLK_IMAGE_MAX_SIDE);
    return SDLK_OK;
}

sdlk_status sdlk_image_alloc(sdlk_tensor *out, int width, int height, int channels,
                             sdlk_dtype dtype, sdlk_error *err)
{
    int64_t shape[3] = {height, width, channels};
    return sdlk_tensor_alloc(out, dtype, 3, shape, err);
}

sdlk_status sdlk_image_check_tensor(const char *name, const sdlk_tensor *img, sdlk_error *err)
{
    char shape[96];
    sdlk_shape_format(img->ndim, img->shape, shape, sizeof shape);
    if (img->ndim != 3 || img->shape[2] < 1 || img->shape[2] > 4)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: an image is [H, W, C] with C = 1..4, not %s", name, shape);
    if (img->dtype != SDLK_U8 && img->dtype != SDLK_U16)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: images are u8 or u16, not %s", name,
                              sdlk_dtype_name(img->dtype));
    if (img->shape[0] < 1 || img->shape[1] < 1 || img->shape[0] > SDLK_IMAGE_MAX_SIDE ||
        img->shape[1] > SDLK_IMAGE_MAX_SIDE)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: image shape %s is outside 1..%d per side",
                              name, shape, SDLK_IMAGE_MAX_SIDE);
    return SDLK_OK;
}

sdlk_status sdlk_image_decode(const uint8_t *data, size_t size, const char *name,
                              sdlk_tensor *out, sdlk_image_info *info, sdlk_error *err)
{
    sdlk_image_info local;
    if (!info)
        info = &local;
    sdlk_tensor_init(out);
    if (size == 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: empty file, not an image", name);
    if (is_png(data, size))
        return sdlk_png_decode(data, size, name, out, info, err);
    if (is_jpeg(data, size))
        return sdlk_jpeg_decode(data, size, name, out, info, err);
    return sdlk_ff_image_decode(data, size, name, out, info, err);
}

sdlk_status sdlk_image_read(const char *path, sdlk_tensor *out, sdlk_image_info *info,
                            sdlk_error *err)
{
    sdlk_storage *bytes;
    sdlk_tensor_init(out);
    sdlk_status st = sdlk_file_map(path, &bytes, err);
    if (st)
        return st;
    st = sdlk_image_decode(sdlk_storage_data(bytes), sdlk_storage_size(bytes), path, out, info,
                           err);
    sdlk_storage_release(bytes);
    return st;
}

/* Lowercase format name for writing: opts->format, else the extension of `path`. */
static sdlk_status output_format(const char *path, const sdlk_image_write_opts *opts, char *buf,
                                 size_t size, sdlk_error *err)
{
    if (opts && opts->format && *opts->format) {
        snprintf(buf, size, "%s", opts->format);
        for (char *p = buf; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    } else if (sdlk_path_is_stdio(path)) {
        return sdlk_error_set(err, SDLK_ERR_ARG, "-: writing an image to stdout needs a format");
    } else {
        sdlk_path_extension(path, buf, size);
        if (!*buf)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "%s: no extension to tell the image format from", path);
    }
    if (strcmp(buf, "jpg") == 0 || strcmp(buf, "jpe") == 0)
        snprintf(buf, size, "jpeg");
    return SDLK_OK;
}

sdlk_status sdlk_image_write(const char *path, const sdlk_tensor *img,
                             const sdlk_image_write_opts *opts, sdlk_error *err)
{
    sdlk_image_write_opts defaults;
    sdlk_image_write_opts_init(&defaults);
    if (!opts)
        opts = &defaults;
    sdlk_status st = sdlk_image_check_tensor(path, img, err);
    if (st)
        return st;
    char format[32];
    st = output_format(path, opts, format, sizeof format, err);
    if (st)
        return st;
    int level = opts->png_compression < 0 ? 6 : opts->png_compression;
    if (level > 9)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: PNG compression level %d is outside 0..9",
                              path, level);
    sdlk_tensor packed;
    st = sdlk_tensor_contiguous(&packed, img, err);
    if (st)
        return st;
    sdlk_outfile out;
    st = sdlk_outfile_open(&out, path, err);
    if (!st) {
        if (strcmp(format, "png") == 0)
            st = sdlk_png_encode(out.fp, path, &packed, level, err);
        else if (strcmp(format, "jpeg") == 0)
            st = sdlk_jpeg_encode(out.fp, path, &packed,
                                  opts->jpeg_quality ? opts->jpeg_quality : 90,
                                  opts->chroma ? opts->chroma : SDLK_CHROMA_420, err);
        else
            st = sdlk_ff_image_encode(out.fp, path, format, &packed, err);
        if (st)
            sdlk_outfile_abort(&out);
        else
            st = sdlk_outfile_commit(&out, err);
    }
    sdlk_tensor_free(&packed);
    return st;
}

/* ---- float conversions ------------------------------------------------------ */

/* Byte strides of the (y, x, c) axes of a 3-D tensor laid out as `layout`. */
static void axis_strides(const sdlk_tensor *t, sdlk_layout layout, int64_t *sy, int64_t *sx,
                         int64_t *sc)
{
    if (layout == SDLK_LAYOUT_CHW) {
        *sc = t->strides[0], *sy = t->strides[1], *sx = t->strides[2];
    } else {
        *sy = t->strides[0], *sx = t->strides[1], *sc = t->strides[2];
    }
}

/* [H, W, C] u8 -> [C, H, W] u8 (a plain transpose; the scaling happens afterwards). */
static sdlk_status hwc_to_chw_u8(const sdlk_tensor *img, sdlk_tensor *out, sdlk_error *err)
{
    int64_t h = img->shape[0], w = img->shape[1], c = img->shape[2];
    int64_t shape[3] = {c, h, w};
    sdlk_status st = sdlk_tensor_alloc(out, SDLK_U8, 3, shape, err);
    if (st)
        return st;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            const uint8_t *px = img->data + y * img->strides[0] + x * img->strides[1];
            for (int64_t k = 0; k < c; k++)
                out->data[(k * h + y) * w + x] = px[k * img->strides[2]];
        }
    return SDLK_OK;
}

static sdlk_status u8_to_float(const sdlk_tensor *img, sdlk_layout layout, sdlk_tensor *out,
                               sdlk_error *err)
{
    sdlk_tensor src;
    sdlk_status st = layout == SDLK_LAYOUT_CHW ? hwc_to_chw_u8(img, &src, err)
                                               : sdlk_tensor_contiguous(&src, img, err);
    if (st)
        return st;
    st = sdlk_tensor_alloc(out, SDLK_F32, 3, src.shape, err);
    /* Through the one u8 -> f32 entry point, so that the GPU path (when built and
     * present) serves images too; both paths give bit-identical results. */
    if (!st)
        st = sdlk_scale_u8_to_f32((float *)out->data, src.data, (size_t)sdlk_tensor_numel(&src),
                                  1.0f / 255.0f, SDLK_DEVICE_AUTO, err);
    if (st)
        sdlk_tensor_free(out);
    sdlk_tensor_free(&src);
    return st;
}

static sdlk_status u16_to_float(const sdlk_tensor *img, sdlk_layout layout, sdlk_tensor *out,
                                sdlk_error *err)
{
    int64_t h = img->shape[0], w = img->shape[1], c = img->shape[2];
    int64_t shape[3] = {h, w, c};
    if (layout == SDLK_LAYOUT_CHW)
        shape[0] = c, shape[1] = h, shape[2] = w;
    sdlk_status st = sdlk_tensor_alloc(out, SDLK_F32, 3, shape, err);
    if (st)
        return st;
    float *dst = (float *)out->data;
    const float scale = 1.0f / 65535.0f;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int64_t k = 0; k < c; k++) {
                const uint16_t *p = (const uint16_t *)(img->data + y * img->strides[0] +
                                                       x * img->strides[1] + k * img->strides[2]);
                int64_t i = layout == SDLK_LAYOUT_CHW ? (k * h + y) * w + x : (y * w + x) * c + k;
                dst[i] = (float)*p * scale;
            }
    return SDLK_OK;
}

sdlk_status sdlk_image_to_float(const sdlk_tensor *img, sdlk_layout layout, sdlk_tensor *out,
                                sdlk_error *err)
{
    sdlk_tensor_init(out);
    sdlk_status st = sdlk_image_check_tensor("image", img, err);
    if (st)
        return st;
    if (layout != SDLK_LAYOUT_HWC && layout != SDLK_LAYOUT_CHW)
        return sdlk_error_set(err, SDLK_ERR_ARG, "image: unknown layout %d", (int)layout);
    return img->dtype == SDLK_U8 ? u8_to_float(img, layout, out, err)
                                 : u16_to_float(img, layout, out, err);
}

sdlk_status sdlk_image_from_float(const sdlk_tensor *f, sdlk_layout layout, sdlk_dtype dtype,
                                  sdlk_tensor *out, sdlk_error *err)
{
    sdlk_tensor_init(out);
    if (f->dtype != SDLK_F32 && f->dtype != SDLK_F64)
        return sdlk_error_set(err, SDLK_ERR_ARG, "image: float input must be f32 or f64, not %s",
                              sdlk_dtype_name(f->dtype));
    if (dtype != SDLK_U8 && dtype != SDLK_U16)
        return sdlk_error_set(err, SDLK_ERR_ARG, "image: output must be u8 or u16, not %s",
                              sdlk_dtype_name(dtype));
    if (layout != SDLK_LAYOUT_HWC && layout != SDLK_LAYOUT_CHW)
        return sdlk_error_set(err, SDLK_ERR_ARG, "image: unknown layout %d", (int)layout);
    if (f->ndim != 3)
        return sdlk_error_set(err, SDLK_ERR_ARG, "image: float input must be 3-D, not %d-D",
                              f->ndim);
    int64_t h, w, c;
    if (layout == SDLK_LAYOUT_CHW)
        c = f->shape[0], h = f->shape[1], w = f->shape[2];
    else
        h = f->shape[0], w = f->shape[1], c = f->shape[2];
    int64_t shape[3] = {h, w, c};
    sdlk_tensor probe = {.dtype = dtype, .ndim = 3, .shape = {h, w, c}};
    sdlk_status st = sdlk_image_check_tensor("image", &probe, err);
    if (!st)
        st = sdlk_tensor_alloc(out, dtype, 3, shape, err);
    if (st)
        return st;
    int64_t sy, sx, sc;
    axis_strides(f, layout, &sy, &sx, &sc);
    const double max = dtype == SDLK_U8 ? 255.0 : 65535.0;
    int64_t i = 0;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int64_t k = 0; k < c; k++, i++) {
                const uint8_t *p = f->data + y * sy + x * sx + k * sc;
                double v = f->dtype == SDLK_F32 ? *(const float *)p : *(const double *)p;
                v = isnan(v) ? 0.0 : v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
                double scaled = floor(v * max + 0.5);
                if (dtype == SDLK_U8)
                    out->data[i] = (uint8_t)scaled;
                else
                    ((uint16_t *)out->data)[i] = (uint16_t)scaled;
            }
    return SDLK_OK;
}

sdlk_status sdlk_image_to_rgb8(const sdlk_tensor *img, sdlk_tensor *out, sdlk_error *err)
{
    if (img->ndim != 3 || img->shape[2] < 1 || img->shape[2] > 4 ||
        (img->dtype != SDLK_U8 && img->dtype != SDLK_U16))
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "expected an [H, W, 1..4] u8 or u16 image");
    int64_t h = img->shape[0], w = img->shape[1], channels = img->shape[2];
    int64_t shape[3] = {h, w, 3};
    sdlk_status st = sdlk_tensor_alloc(out, SDLK_U8, 3, shape, err);
    if (st != SDLK_OK)
        return st;
    /* Gray (1) and gray+alpha (2) take channel 0 for R, G and B; RGB(A) its first 3. */
    int colour = channels >= 3;
    uint8_t *dst = out->data;
    int64_t index[3];
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int64_t c = 0; c < 3; c++) {
                index[0] = y;
                index[1] = x;
                index[2] = colour ? c : 0;
                double v = sdlk_tensor_get(img, index);
                if (img->dtype == SDLK_U16)
                    v = floor(v * 255.0 / 65535.0 + 0.5);
                *dst++ = (uint8_t)v;
            }
    return SDLK_OK;
}
