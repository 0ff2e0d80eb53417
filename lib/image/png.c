/* png.c -- PNG through libpng.
 *
 * libpng reports errors by calling an error function that must not return; ours records
 * the message in the job and longjmps back to the setjmp in the decode/encode function.
 * Everything that must survive the longjmp (the tensor, the row pointers) lives in a
 * `png_job` owned by the caller of the function that calls setjmp, so none of it is an
 * automatic variable modified after setjmp (whose value would be indeterminate).
 */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "image/image_internal.h"

typedef struct png_job {
    const char *name;
    /* reading: the input bytes and how far libpng has consumed them */
    const uint8_t *data;
    size_t size, pos;
    /* where the error message goes (libpng's text, or ours for a short read) */
    char message[200];
    png_bytep *rows;
    sdlk_tensor image;
} png_job;

static void job_error(png_structp png, png_const_charp msg)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (an odd sRGB profile, a bad ancillary chunk) do not affect the pixels; the
 * library never prints, so they are dropped. */
static void job_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void job_read(png_structp png, png_bytep dst, size_t length)
{
    png_job *job = png_get_io_ptr(png);
    if (length > job->size - job->pos)
        png_error(png, "file is truncated");
    memcpy(dst, job->data + job->pos, length);
    job->pos += length;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Runs the whole decode; on a libpng error returns 1 with job->message set. */
static int decode_into(png_structp png, png_infop pinfo, png_job *job, sdlk_image_info *info,
                       sdlk_error *err, sdlk_status *status)
{
    if (setjmp(png_jmpbuf(png)))
        return 1;
    png_set_read_fn(png, job, job_read);
    png_set_user_limits(png, SDLK_IMAGE_MAX_SIDE, SDLK_IMAGE_MAX_SIDE);
    png_read_info(png, pinfo);

    png_uint_32 width, height;
    int depth, color_type, interlace;
    png_get_IHDR(png, pinfo, &width, &height, &depth, &color_type, &interlace, NULL, NULL);
    info->width = (int)width;
    info->height = (int)height;
    info->bit_depth = depth;
    info->has_palette = color_type == PNG_COLOR_TYPE_PALETTE;

    /* Keep what the file holds: expand palettes and 1/2/4-bit gray to 8 bits (scaled to
     * the full range), turn a tRNS chunk into an alpha channel, keep 16 bits. */
    png_set_expand(png);
    if (depth == 16 && host_is_little_endian())
        png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);

    int channels = png_get_channels(png, pinfo);
    int out_depth = png_get_bit_depth(png, pinfo);
    sdlk_dtype dtype = out_depth == 16 ? SDLK_U16 : SDLK_U8;
    *status = sdlk_image_alloc(&job->image, (int)width, (int)height, channels, dtype, err);
    if (*status)
        return 0;
    size_t row_bytes = png_get_rowbytes(png, pinfo);
    if (row_bytes != (size_t)width * (size_t)channels * sdlk_dtype_size(dtype)) {
        *status = sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: libpng row size %zu unexpected",
                                 job->name, row_bytes);
        return 0;
    }
    job->rows = malloc(height * sizeof *job->rows);
    if (!job->rows) {
        *status = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", job->name);
        return 0;
    }
    for (png_uint_32 y = 0; y < height; y++)
        job->rows[y] = job->image.data + (size_t)y * row_bytes;
    png_read_image(png, job->rows);
    /* Reads up to IEND, checking the CRCs of the chunks after the image data: a file cut
     * short after its pixels is still reported as truncated. */
    png_read_end(png, NULL);
    info->channels = channels;
    *status = SDLK_OK;
    return 0;
}

sdlk_status sdlk_png_decode(const uint8_t *data, size_t size, const char *name, sdlk_tensor *out,
                            sdlk_image_info *info, sdlk_error *err)
{
    png_job job = {.name = name, .data = data, .size = size};
    sdlk_tensor_init(&job.image);
    memset(info, 0, sizeof *info);
    snprintf(info->format, sizeof info->format, "png");
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, job_error, job_warning);
    png_infop pinfo = png ? png_create_info_struct(png) : NULL;
    if (!pinfo) {
        png_destroy_read_struct(&png, NULL, NULL);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    }
    sdlk_status status = SDLK_ERR_INTERNAL;
    if (decode_into(png, pinfo, &job, info, err, &status))
        status = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: bad PNG: %s", name, job.message);
    png_destroy_read_struct(&png, &pinfo, NULL);
    free(job.rows);
    if (status) {
        sdlk_tensor_free(&job.image);
        return status;
    }
    *out = job.image;
    return SDLK_OK;
}

static int encode_into(png_structp png, png_infop pinfo, png_job *job, FILE *fp,
                       const sdlk_tensor *img, int level)
{
    if (setjmp(png_jmpbuf(png)))
        return 1;
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                       PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    png_uint_32 height = (png_uint_32)img->shape[0], width = (png_uint_32)img->shape[1];
    int channels = (int)img->shape[2];
    int depth = img->dtype == SDLK_U16 ? 16 : 8;
    png_init_io(png, fp);
    png_set_compression_level(png, level);
    png_set_IHDR(png, pinfo, width, height, depth, color_types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, pinfo);
    if (depth == 16 && host_is_little_endian())
        png_set_swap(png);
    size_t row_bytes = (size_t)width * (size_t)channels * (size_t)(depth / 8);
    for (png_uint_32 y = 0; y < height; y++)
        png_write_row(png, img->data + (size_t)y * row_bytes);
    png_write_end(png, pinfo);
    return 0;
}

sdlk_status sdlk_png_encode(FILE *fp, const char *name, const sdlk_tensor *img, int level,
                            sdlk_error *err)
{
    png_job job = {.name = name};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, job_error, job_warning);
    png_infop pinfo = png ? png_create_info_struct(png) : NULL;
    if (!pinfo) {
        png_destroy_write_struct(&png, NULL);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    }
    int failed = encode_into(png, pinfo, &job, fp, img, level);
    png_destroy_write_struct(&png, &pinfo);
    if (failed)
        return sdlk_error_set(err, SDLK_ERR_IO, "%s: PNG write failed: %s", name, job.message);
    return SDLK_OK;
}
