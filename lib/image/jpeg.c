/* jpeg.c -- JPEG through libjpeg-turbo's libjpeg API.
 *
 * libjpeg's default error_exit prints and calls exit(); ours formats the message into the
 * job and longjmps back to the setjmp in the decode/encode function. As in png.c, what
 * must survive the longjmp lives in a `jpeg_job` owned by the caller of the function that
 * calls setjmp.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jpeglib.h first: its jconfig.h decides which messages jerror.h declares */
#include <jpeglib.h>

#include <jerror.h>

#include "image/image_internal.h"

typedef struct jpeg_job {
    struct jpeg_error_mgr mgr; /* first, so a j_common_ptr's err is the job */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    JSAMPLE *row; /* conversion buffer for writing u16 or alpha images */
    sdlk_tensor image;
} jpeg_job;

static void job_error_exit(j_common_ptr cinfo)
{
    jpeg_job *job = (jpeg_job *)cinfo->err;
    job->mgr.format_message(cinfo, job->message);
    longjmp(job->jump, 1);
}

/* libjpeg reports damaged entropy-coded data as a warning and goes on decoding gray
 * filler; a truncated or corrupt file would then read as a valid image. These warnings
 * mean wrong pixels, so they become errors; the other warnings (extraneous bytes between
 * markers, odd JFIF versions, bad ICC chunks) leave the pixels intact and are ignored. */
static void job_emit_message(j_common_ptr cinfo, int msg_level)
{
    if (msg_level >= 0)
        return; /* trace messages */
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_ARITH_BAD_CODE:
        job_error_exit(cinfo);
        break;
    default:
        break;
    }
}

static void job_init(jpeg_job *job)
{
    memset(job, 0, sizeof *job);
    jpeg_std_error(&job->mgr);
    job->mgr.error_exit = job_error_exit;
    job->mgr.emit_message = job_emit_message;
    sdlk_tensor_init(&job->image);
}

/* Chroma subsampling as the usual J:a:b name, from the luma sampling factors relative to
 * the (1x1) chroma components; 0 when there is no chroma or an unusual layout. */
static int subsampling_of(const struct jpeg_decompress_struct *cinfo)
{
    if (cinfo->num_components != 3 || cinfo->jpeg_color_space != JCS_YCbCr)
        return 0;
    const jpeg_component_info *c = cinfo->comp_info;
    if (c[1].h_samp_factor != c[2].h_samp_factor || c[1].v_samp_factor != c[2].v_samp_factor ||
        c[0].h_samp_factor % c[1].h_samp_factor || c[0].v_samp_factor % c[1].v_samp_factor)
        return 0;
    int h = c[0].h_samp_factor / c[1].h_samp_factor;
    int v = c[0].v_samp_factor / c[1].v_samp_factor;
    if (h == 1 && v == 1)
        return 444;
    if (h == 2 && v == 1)
        return 422;
    if (h == 2 && v == 2)
        return 420;
    if (h == 1 && v == 2)
        return 440;
    if (h == 4 && v == 1)
        return 411;
    return 0;
}

/* Read the header of the JPEG in data into cinfo and info and choose the output colour
 * space (gray stays gray, YCbCr/RGB become RGB); CMYK/YCCK and sizes out of range are
 * refused. Called after the caller's setjmp: a libjpeg error jumps back there. */
static sdlk_status read_header(struct jpeg_decompress_struct *cinfo, const uint8_t *data,
                               size_t size, const char *name, sdlk_image_info *info,
                               sdlk_error *err)
{
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    info->width = (int)cinfo->image_width;
    info->height = (int)cinfo->image_height;
    info->bit_depth = cinfo->data_precision;
    info->subsampling = subsampling_of(cinfo);
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        break;
    default:
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s: JPEG in CMYK/YCCK (%d components) is not supported", name,
                              cinfo->num_components);
    }
    return sdlk_image_check_dims(name, cinfo->image_width, cinfo->image_height, err);
}

/* Returns 1 after a libjpeg error (job->message set), 0 otherwise with *status set. */
static int decode_into(struct jpeg_decompress_struct *cinfo, jpeg_job *job, const uint8_t *data,
                       size_t size, const char *name, sdlk_image_info *info, sdlk_error *err,
                       sdlk_status *status)
{
    if (setjmp(job->jump))
        return 1;
    *status = read_header(cinfo, data, size, name, info, err);
    if (*status)
        return 0;
    jpeg_start_decompress(cinfo);
    int channels = cinfo->output_components;
    *status = sdlk_image_alloc(&job->image, (int)cinfo->output_width, (int)cinfo->output_height,
                               channels, SDLK_U8, err);
    if (*status)
        return 0;
    size_t row_bytes = (size_t)cinfo->output_width * (size_t)channels;
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = job->image.data + (size_t)cinfo->output_scanline * row_bytes;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    info->channels = channels;
    *status = SDLK_OK;
    return 0;
}

sdlk_status sdlk_jpeg_decode(const uint8_t *data, size_t size, const char *name,
                             sdlk_tensor *out, sdlk_image_info *info, sdlk_error *err)
{
    jpeg_job job;
    job_init(&job);
    memset(info, 0, sizeof *info);
    snprintf(info->format, sizeof info->format, "jpeg");
    struct jpeg_decompress_struct cinfo;
    cinfo.err = &job.mgr;
    /* jpeg_create_decompress can only fail on out of memory, through error_exit */
    if (setjmp(job.jump))
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: %s", name, job.message);
    jpeg_create_decompress(&cinfo);
    sdlk_status status = SDLK_ERR_INTERNAL;
    if (decode_into(&cinfo, &job, data, size, name, info, err, &status))
        status = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: bad JPEG: %s", name, job.message);
    jpeg_destroy_decompress(&cinfo);
    if (status) {
        sdlk_tensor_free(&job.image);
        return status;
    }
    *out = job.image;
    return SDLK_OK;
}

/* Row y of `img` as 8-bit gray or RGB samples: the image row itself when it is u8 without
 * alpha, else converted into job->row. */
static JSAMPROW jpeg_row(const sdlk_tensor *img, jpeg_job *job, int64_t y, int out_channels)
{
    int64_t width = img->shape[1], channels = img->shape[2];
    const uint8_t *src = img->data + y * img->strides[0];
    if (img->dtype == SDLK_U8 && channels == out_channels)
        return (JSAMPROW)src;
    for (int64_t x = 0; x < width; x++)
        for (int c = 0; c < out_channels; c++) {
            int64_t i = x * channels + c;
            unsigned v = img->dtype == SDLK_U8 ? src[i]
                                                : (((const uint16_t *)src)[i] * 255u + 32767u) / 65535u;
            job->row[x * out_channels + c] = (JSAMPLE)v;
        }
    return job->row;
}

static int encode_into(struct jpeg_compress_struct *cinfo, jpeg_job *job, FILE *fp,
                       const sdlk_tensor *img, int quality, sdlk_chroma chroma)
{
    if (setjmp(job->jump))
        return 1;
    int channels = (int)img->shape[2];
    int out_channels = channels >= 3 ? 3 : 1; /* alpha dropped */
    jpeg_stdio_dest(cinfo, fp);
    cinfo->image_width = (JDIMENSION)img->shape[1];
    cinfo->image_height = (JDIMENSION)img->shape[0];
    cinfo->input_components = out_channels;
    cinfo->in_color_space = out_channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    /* Huffman tables fitted to the image: a few percent smaller, no quality change. */
    cinfo->optimize_coding = TRUE;
    if (out_channels == 3) {
        /* jpeg_set_defaults gives chroma components 1x1; luma factors set the ratio. */
        cinfo->comp_info[0].h_samp_factor = chroma == SDLK_CHROMA_444 ? 1 : 2;
        cinfo->comp_info[0].v_samp_factor = chroma == SDLK_CHROMA_420 ? 2 : 1;
    }
    jpeg_start_compress(cinfo, TRUE);
    while (cinfo->next_scanline < cinfo->image_height) {
        JSAMPROW row = jpeg_row(img, job, cinfo->next_scanline, out_channels);
        jpeg_write_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_compress(cinfo);
    return 0;
}

sdlk_status sdlk_jpeg_encode(FILE *fp, const char *name, const sdlk_tensor *img, int quality,
                             sdlk_chroma chroma, sdlk_error *err)
{
    if (quality < 1 || quality > 100)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: JPEG quality %d is outside 1..100", name,
                              quality);
    if (chroma != SDLK_CHROMA_420 && chroma != SDLK_CHROMA_422 && chroma != SDLK_CHROMA_444)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: chroma subsampling %d is not 420/422/444",
                              name, (int)chroma);
    jpeg_job job;
    job_init(&job);
    job.row = malloc((size_t)img->shape[1] * 3);
    if (!job.row)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    struct jpeg_compress_struct cinfo;
    cinfo.err = &job.mgr;
    if (setjmp(job.jump)) {
        free(job.row);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: %s", name, job.message);
    }
    jpeg_create_compress(&cinfo);
    int failed = encode_into(&cinfo, &job, fp, img, quality, chroma);
    jpeg_destroy_compress(&cinfo);
    free(job.row);
    if (failed)
        return sdlk_error_set(err, SDLK_ERR_IO, "%s: JPEG write failed: %s", name, job.message);
    return SDLK_OK;
}

/* ---- row-by-row decoding of a region (image.h, sdlk_image_decode_rows) ------------- */

/* The region clipped to a width x height image: *out, or SDLK_ERR_ARG when it misses. */
static sdlk_status clip_region(const sdlk_image_region *region, int width, int height,
                               const char *name, sdlk_image_region *out, sdlk_error *err)
{
    sdlk_image_region r = {0, 0, width, height};
    if (region) {
        int64_t x0 = region->x < 0 ? 0 : region->x, y0 = region->y < 0 ? 0 : region->y;
        int64_t x1 = region->width > 0 ? (int64_t)region->x + region->width : width;
        int64_t y1 = region->height > 0 ? (int64_t)region->y + region->height : height;
        x1 = x1 > width ? width : x1;
        y1 = y1 > height ? height : y1;
        if (x0 >= x1 || y0 >= y1)
            return sdlk_error_set(err, SDLK_ERR_ARG, "%s: region %dx%d at %d,%d is outside the "
                                  "%dx%d image", name, region->width, region->height, region->x,
                                  region->y, width, height);
        r = (sdlk_image_region){(int)x0, (int)y0, (int)(x1 - x0), (int)(y1 - y0)};
    }
    *out = r;
    return SDLK_OK;
}

typedef struct rows_job {
    jpeg_job base;              /* first: the error manager */
    JSAMPLE *line;              /* one decoded (cropped) scanline */
    sdlk_status sink_status;    /* a callback's failure, returned as is */
} rows_job;

/* Returns 1 after a libjpeg error (job->base.message set), 0 otherwise with *status set. */
static int decode_rows_into(struct jpeg_decompress_struct *cinfo, rows_job *job,
                            const uint8_t *data, size_t size, const char *name,
                            const sdlk_image_region *region, const sdlk_image_row_sink *sink,
                            sdlk_image_info *info, sdlk_error *err, sdlk_status *status)
{
    if (setjmp(job->base.jump))
        return 1;
    *status = read_header(cinfo, data, size, name, info, err);
    sdlk_image_region r = {0, 0, 0, 0};
    if (*status == SDLK_OK)
        *status = clip_region(region, info->width, info->height, name, &r, err);
    if (*status)
        return 0;
    jpeg_start_decompress(cinfo);
    int channels = cinfo->output_components;
    info->channels = channels;
    /* Columns: libjpeg-turbo widens a crop to whole iMCU columns, and its horizontal
     * upsampling treats the crop's edges as image edges (a 4:2:2 region decoded without
     * a margin differs from the whole decode at its edges), so a margin of one iMCU is
     * decoded on each side of the region and cut off: the region's pixels then see the
     * same chroma neighbours as in a whole decode. */
    JDIMENSION crop_x = 0, crop_w = cinfo->output_width;
    if (r.width < info->width) {
        int margin = cinfo->max_h_samp_factor * DCTSIZE;
        int x0 = r.x - margin < 0 ? 0 : r.x - margin;
        int x1 = r.x + r.width + margin > info->width ? info->width : r.x + r.width + margin;
        crop_x = (JDIMENSION)x0;
        crop_w = (JDIMENSION)(x1 - x0);
        if (x0 > 0 || x1 < info->width)
            jpeg_crop_scanline(cinfo, &crop_x, &crop_w);
        else {
            crop_x = 0;
            crop_w = cinfo->output_width;
        }
    }
    job->line = malloc((size_t)crop_w * (size_t)channels);
    if (!job->line) {
        *status = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
        return 0;
    }
    *status = sink->begin(sink->ctx, r.width, r.height, channels, SDLK_U8, err);
    if (*status)
        return 0;
    /* Rows: jpeg_skip_scanlines keeps the vertical upsampler's context rows (unlike the
     * crop's columns, the rows after a skip equal a whole decode's; tests/unit/test_image
     * checks both on 4:4:4, 4:2:2 and 4:2:0), so the rows above are skipped outright:
     * entropy-decoded, since Huffman data cannot be jumped over, but never transformed. */
    if (r.y > 0)
        jpeg_skip_scanlines(cinfo, (JDIMENSION)r.y);
    const uint8_t *first = job->line + (size_t)(r.x - (int)crop_x) * (size_t)channels;
    while ((int)cinfo->output_scanline < r.y + r.height) {
        int y = (int)cinfo->output_scanline;
        JSAMPROW line = job->line;
        jpeg_read_scanlines(cinfo, &line, 1);
        if (y < r.y)
            continue;
        *status = sink->row(sink->ctx, y - r.y, first, err);
        if (*status)
            return 0;
    }
    if (cinfo->output_scanline == cinfo->output_height)
        jpeg_finish_decompress(cinfo);
    else
        jpeg_abort_decompress(cinfo);
    *status = SDLK_OK;
    return 0;
}

/* A whole decode cut to the region, for formats without a row-wise back end. */
static sdlk_status decode_rows_whole(const uint8_t *data, size_t size, const char *name,
                                     const sdlk_image_region *region,
                                     const sdlk_image_row_sink *sink, sdlk_image_info *info,
                                     sdlk_error *err)
{
    sdlk_tensor img;
    sdlk_status st = sdlk_image_decode(data, size, name, &img, info, err);
    if (st)
        return st;
    sdlk_image_region r = {0, 0, 0, 0};
    st = clip_region(region, (int)img.shape[1], (int)img.shape[0], name, &r, err);
    int channels = (int)img.shape[2];
    if (st == SDLK_OK)
        st = sink->begin(sink->ctx, r.width, r.height, channels, img.dtype, err);
    for (int y = 0; st == SDLK_OK && y < r.height; y++)
        st = sink->row(sink->ctx, y,
                       img.data + (r.y + y) * img.strides[0] + (int64_t)r.x * img.strides[1],
                       err);
    sdlk_tensor_free(&img);
    return st;
}

static sdlk_status decode_rows_jpeg(const uint8_t *data, size_t size, const char *name,
                                    const sdlk_image_region *region,
                                    const sdlk_image_row_sink *sink, sdlk_image_info *info,
                                    sdlk_error *err)
{
    memset(info, 0, sizeof *info);
    snprintf(info->format, sizeof info->format, "jpeg");
    rows_job job;
    memset(&job, 0, sizeof job);
    job_init(&job.base);
    struct jpeg_decompress_struct cinfo;
    cinfo.err = &job.base.mgr;
    if (setjmp(job.base.jump))
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: %s", name, job.base.message);
    jpeg_create_decompress(&cinfo);
    sdlk_status status = SDLK_ERR_INTERNAL;
    if (decode_rows_into(&cinfo, &job, data, size, name, region, sink, info, err, &status))
        status = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: bad JPEG: %s", name, job.base.message);
    jpeg_destroy_decompress(&cinfo);
    free(job.line);
    return status;
}

sdlk_status sdlk_image_decode_rows(const uint8_t *data, size_t size, const char *name,
                                   const sdlk_image_region *region,
                                   const sdlk_image_row_sink *sink, sdlk_image_info *info,
                                   sdlk_error *err)
{
    sdlk_image_info local;
    if (!info)
        info = &local;
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_rows_jpeg(data, size, name, region, sink, info, err);
    return decode_rows_whole(data, size, name, region, sink, info, err);
}
