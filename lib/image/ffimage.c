/* ffimage.c -- every image format that is not PNG or JPEG, through FFmpeg: libavformat
 * finds the format in memory (probing the bytes, so stdin works), libavcodec decodes or
 * encodes one frame, libswscale converts between FFmpeg's pixel formats and our
 * gray/GA/RGB/RGBA u8/u16 layouts.
 */
#include <errno.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "image/image_internal.h"

/* The input bytes as an AVIOContext source. */
typedef struct memory_source {
    const uint8_t *data;
    size_t size, pos;
} memory_source;

static int memory_read(void *opaque, uint8_t *buf, int buf_size)
{
    memory_source *src = opaque;
    size_t left = src->size - src->pos;
    if (left == 0)
        return AVERROR_EOF;
    size_t n = left < (size_t)buf_size ? left : (size_t)buf_size;
    memcpy(buf, src->data + src->pos, n);
    src->pos += n;
    return (int)n;
}

static int64_t memory_seek(void *opaque, int64_t offset, int whence)
{
    memory_source *src = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return (int64_t)src->size;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)src->pos;
        break;
    case SEEK_END:
        base = (int64_t)src->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (offset < -base || base + offset > (int64_t)src->size)
        return AVERROR(EINVAL);
    src->pos = (size_t)(base + offset);
    return (int64_t)src->pos;
}

/* The pixel layout we give the caller for a decoded frame of format `fmt`. */
typedef struct target_layout {
    enum AVPixelFormat pix_fmt;
    int channels;
    sdlk_dtype dtype;
} target_layout;

static int palette_has_alpha(const AVFrame *frame)
{
    const uint32_t *palette = (const uint32_t *)frame->data[1];
    for (int i = 0; i < 256; i++)
        if ((palette[i] >> 24) != 0xff)
            return 1;
    return 0;
}

static int palette_is_gray(const AVFrame *frame)
{
    const uint32_t *palette = (const uint32_t *)frame->data[1];
    for (int i = 0; i < 256; i++) {
        uint32_t r = (palette[i] >> 16) & 0xff, g = (palette[i] >> 8) & 0xff, b = palette[i] & 0xff;
        if (r != g || g != b)
            return 0;
    }
    return 1;
}

static target_layout layout_for(const AVFrame *frame)
{
    static const enum AVPixelFormat fmts8[5] = {AV_PIX_FMT_NONE, AV_PIX_FMT_GRAY8, AV_PIX_FMT_YA8,
                                                AV_PIX_FMT_RGB24, AV_PIX_FMT_RGBA};
    static const enum AVPixelFormat fmts16[5] = {AV_PIX_FMT_NONE, AV_PIX_FMT_GRAY16,
                                                 AV_PIX_FMT_YA16, AV_PIX_FMT_RGB48,
                                                 AV_PIX_FMT_RGBA64};
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(frame->format);
    int alpha, gray, depth = 8;
    if (desc->flags & AV_PIX_FMT_FLAG_PAL) {
        /* GIFs and 8-bit BMPs: keep an alpha channel only when the palette uses one, and
         * colour only when it has some (gray BMPs are stored with a gray palette) */
        alpha = palette_has_alpha(frame);
        gray = palette_is_gray(frame);
    } else {
        alpha = (desc->flags & AV_PIX_FMT_FLAG_ALPHA) != 0;
        gray = desc->nb_components - alpha == 1;
        for (int c = 0; c < desc->nb_components; c++)
            if (desc->comp[c].depth > depth)
                depth = desc->comp[c].depth;
    }
    target_layout t;
    t.channels = (gray ? 1 : 3) + alpha;
    t.dtype = depth > 8 ? SDLK_U16 : SDLK_U8;
    t.pix_fmt = depth > 8 ? fmts16[t.channels] : fmts8[t.channels];
    return t;
}

/* A palette image is a table lookup; done here because swscale would route a gray
 * palette through an RGB -> luma matrix and change the values. */
static void expand_palette(const AVFrame *frame, int channels, sdlk_tensor *out)
{
    const uint32_t *palette = (const uint32_t *)frame->data[1];
    uint8_t *dst = out->data;
    for (int y = 0; y < frame->height; y++) {
        const uint8_t *index = frame->data[0] + (ptrdiff_t)y * frame->linesize[0];
        for (int x = 0; x < frame->width; x++) {
            uint32_t argb = palette[index[x]];
            uint8_t r = (uint8_t)(argb >> 16), g = (uint8_t)(argb >> 8), b = (uint8_t)argb;
            uint8_t a = (uint8_t)(argb >> 24);
            if (channels <= 2) {
                *dst++ = r;
            } else {
                *dst++ = r, *dst++ = g, *dst++ = b;
            }
            if (channels == 2 || channels == 4)
                *dst++ = a;
        }
    }
}

/* Converts `frame` into the fresh tensor `out` ([H, W, C] of `layout`). */
static sdlk_status frame_to_tensor(const AVFrame *frame, target_layout layout, const char *name,
                                   sdlk_tensor *out, sdlk_error *err)
{
    sdlk_status st =
        sdlk_image_alloc(out, frame->width, frame->height, layout.channels, layout.dtype, err);
    if (st)
        return st;
    if (frame->format == AV_PIX_FMT_PAL8) {
        expand_palette(frame, layout.channels, out);
        return SDLK_OK;
    }
    struct SwsContext *sws = sws_getContext(
        frame->width, frame->height, frame->format, frame->width, frame->height, layout.pix_fmt,
        SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_BITEXACT, NULL, NULL, NULL);
    if (!sws) {
        sdlk_tensor_free(out);
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: cannot convert pixel format %s",
                              name, av_get_pix_fmt_name(frame->format));
    }
    /* YUV sources: use the matrix and range the file declares (BT.709 for HD video,
     * full range for JPEG-like codecs) rather than swscale's BT.601 default. */
    int src_range = frame->color_range == AVCOL_RANGE_JPEG;
    const int *src_matrix = sws_getCoefficients(frame->colorspace == AVCOL_SPC_UNSPECIFIED
                                                    ? SWS_CS_DEFAULT
                                                    : (int)frame->colorspace);
    int *inv, *fwd, in_range, out_range, brightness, contrast, saturation;
    if (sws_getColorspaceDetails(sws, &inv, &in_range, &fwd, &out_range, &brightness, &contrast,
                                 &saturation) >= 0)
        sws_setColorspaceDetails(sws, src_matrix, src_range || in_range, fwd, out_range,
                                 brightness, contrast, saturation);
    uint8_t *dst[4] = {out->data, NULL, NULL, NULL};
    int dst_stride[4] = {(int)out->strides[0], 0, 0, 0};
    int rows = sws_scale(sws, (const uint8_t *const *)frame->data, frame->linesize, 0,
                         frame->height, dst, dst_stride);
    sws_freeContext(sws);
    if (rows != frame->height) {
        sdlk_tensor_free(out);
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: pixel conversion from %s failed",
                              name, av_get_pix_fmt_name(frame->format));
    }
    return SDLK_OK;
}

/* Demuxer + decoder state for one decode, freed by decoder_close. */
typedef struct ff_decoder {
    memory_source src;
    AVIOContext *avio;
    AVFormatContext *fmt;
    AVCodecContext *codec;
    AVPacket *packet;
    AVFrame *frame;
    int stream;
} ff_decoder;

static void decoder_close(ff_decoder *d)
{
    avcodec_free_context(&d->codec);
    avformat_close_input(&d->fmt);
    if (d->avio)
        av_freep(&d->avio->buffer);
    avio_context_free(&d->avio);
    av_packet_free(&d->packet);
    av_frame_free(&d->frame);
}

static sdlk_status ff_error(sdlk_error *err, sdlk_status code, const char *name, const char *what,
                            int averr)
{
    char text[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, text, sizeof text);
    return sdlk_error_set(err, code, "%s: %s (%s)", name, what, text);
}

static sdlk_status decoder_open(ff_decoder *d, const char *name, sdlk_error *err)
{
    enum { AVIO_BUFFER = 32768 };
    uint8_t *buffer = av_malloc(AVIO_BUFFER);
    d->avio = buffer ? avio_alloc_context(buffer, AVIO_BUFFER, 0, &d->src, memory_read, NULL,
                                          memory_seek)
                     : NULL;
    d->fmt = avformat_alloc_context();
    d->packet = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->avio || !d->fmt || !d->packet || !d->frame) {
        if (!d->avio)
            av_free(buffer);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    }
    d->fmt->pb = d->avio;
    d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    int ret = avformat_open_input(&d->fmt, NULL, NULL, NULL); /* frees fmt on failure */
    if (ret < 0)
        return ff_error(err, SDLK_ERR_FORMAT, name, "not an image format FFmpeg knows", ret);
    d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    AVCodecParameters *par = d->stream >= 0 ? d->fmt->streams[d->stream]->codecpar : NULL;
    if (par && (par->codec_id == AV_CODEC_ID_NONE || par->width <= 0)) {
        /* Containers that declare nothing up front: let FFmpeg look at the packets. */
        avformat_find_stream_info(d->fmt, NULL);
        d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        par = d->stream >= 0 ? d->fmt->streams[d->stream]->codecpar : NULL;
    }
    if (!par)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: no image in this %s file", name,
                              d->fmt->iformat->name);
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: no decoder for %s", name,
                              avcodec_get_name(par->codec_id));
    d->codec = avcodec_alloc_context3(codec);
    if (!d->codec)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    avcodec_parameters_to_context(d->codec, par);
    ret = avcodec_open2(d->codec, codec, NULL);
    if (ret < 0)
        return ff_error(err, SDLK_ERR_UNSUPPORTED, name, "cannot open the decoder", ret);
    return SDLK_OK;
}

/* Decode until the first frame of the chosen stream is in d->frame. */
static sdlk_status decoder_first_frame(ff_decoder *d, const char *name, sdlk_error *err)
{
    int draining = 0;
    for (;;) {
        int ret = avcodec_receive_frame(d->codec, d->frame);
        if (ret >= 0)
            return SDLK_OK;
        if (ret == AVERROR_EOF)
            break;
        if (ret != AVERROR(EAGAIN))
            return ff_error(err, SDLK_ERR_FORMAT, name, "corrupt image data", ret);
        if (draining)
            break;
        ret = av_read_frame(d->fmt, d->packet);
        if (ret < 0) {
            avcodec_send_packet(d->codec, NULL);
            draining = 1;
            continue;
        }
        if (d->packet->stream_index == d->stream)
            ret = avcodec_send_packet(d->codec, d->packet);
        av_packet_unref(d->packet);
        if (ret < 0 && ret != AVERROR(EAGAIN))
            return ff_error(err, SDLK_ERR_FORMAT, name, "corrupt image data", ret);
    }
    return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: no picture could be decoded (%s data)",
                          name, avcodec_get_name(d->codec->codec_id));
}

sdlk_status sdlk_ff_image_decode(const uint8_t *data, size_t size, const char *name,
                                 sdlk_tensor *out, sdlk_image_info *info, sdlk_error *err)
{
    /* FFmpeg's logging is process-wide state; quiet is the only level a library that
     * never prints can set, and setting it again is harmless. */
    av_log_set_level(AV_LOG_QUIET);
    memset(info, 0, sizeof *info);
    ff_decoder d = {.src = {.data = data, .size = size}};
    sdlk_status st = decoder_open(&d, name, err);
    if (!st)
        st = decoder_first_frame(&d, name, err);
    if (!st)
        st = sdlk_image_check_dims(name, d.frame->width, d.frame->height, err);
    if (!st) {
        target_layout layout = layout_for(d.frame);
        const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(d.frame->format);
        snprintf(info->format, sizeof info->format, "%s", avcodec_get_name(d.codec->codec_id));
        info->width = d.frame->width;
        info->height = d.frame->height;
        info->channels = layout.channels;
        info->bit_depth = desc->comp[0].depth;
        info->has_palette = (desc->flags & AV_PIX_FMT_FLAG_PAL) != 0;
        st = frame_to_tensor(d.frame, layout, name, out, err);
    }
    decoder_close(&d);
    return st;
}

static enum AVPixelFormat tensor_pix_fmt(const sdlk_tensor *img)
{
    static const enum AVPixelFormat fmts8[5] = {AV_PIX_FMT_NONE, AV_PIX_FMT_GRAY8, AV_PIX_FMT_YA8,
                                                AV_PIX_FMT_RGB24, AV_PIX_FMT_RGBA};
    static const enum AVPixelFormat fmts16[5] = {AV_PIX_FMT_NONE, AV_PIX_FMT_GRAY16,
                                                 AV_PIX_FMT_YA16, AV_PIX_FMT_RGB48,
                                                 AV_PIX_FMT_RGBA64};
    int channels = (int)img->shape[2];
    return img->dtype == SDLK_U16 ? fmts16[channels] : fmts8[channels];
}

/* The encoder for files ending in ".format": one the image2 muxer pairs with that
 * extension (its packets are whole files: BMP, TIFF, PPM, TGA...), or libwebp, whose
 * output is a complete RIFF/WebP file too. Formats that need a muxer around the packets
 * (GIF, video containers) are not offered. */
static const AVCodec *encoder_for(const char *format)
{
    char probe_name[64];
    snprintf(probe_name, sizeof probe_name, "x.%s", format);
    if (strcmp(format, "webp") == 0)
        return avcodec_find_encoder_by_name("libwebp"); /* not libwebp_anim */
    const AVOutputFormat *image2 = av_guess_format("image2", NULL, NULL);
    if (!image2 || !av_match_ext(probe_name, image2->extensions))
        return NULL;
    enum AVCodecID id = av_guess_codec(image2, NULL, probe_name, NULL, AVMEDIA_TYPE_VIDEO);
    return id == AV_CODEC_ID_NONE ? NULL : avcodec_find_encoder(id);
}

/* Send `frame` (NULL = flush) and write every packet the encoder returns to `fp`. */
static sdlk_status encode_and_write(AVCodecContext *enc, const AVFrame *frame, AVPacket *packet,
                                    FILE *fp, const char *name, sdlk_error *err)
{
    int ret = avcodec_send_frame(enc, frame);
    if (ret < 0)
        return ff_error(err, SDLK_ERR_INTERNAL, name, "encoder refused the picture", ret);
    for (;;) {
        ret = avcodec_receive_packet(enc, packet);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return SDLK_OK;
        if (ret < 0)
            return ff_error(err, SDLK_ERR_INTERNAL, name, "encoding failed", ret);
        size_t size = (size_t)packet->size;
        size_t written = fwrite(packet->data, 1, size, fp);
        av_packet_unref(packet);
        if (written != size)
            return sdlk_error_errno(err, errno, "%s: write failed", name);
    }
}

sdlk_status sdlk_ff_image_encode(FILE *fp, const char *name, const char *format,
                                 const sdlk_tensor *img, sdlk_error *err)
{
    av_log_set_level(AV_LOG_QUIET); /* see sdlk_ff_image_decode */
    const AVCodec *codec = encoder_for(format);
    if (!codec || !codec->pix_fmts)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: no image encoder for \"%s\"", name,
                              format);
    enum AVPixelFormat src_fmt = tensor_pix_fmt(img);
    int has_alpha = img->shape[2] == 2 || img->shape[2] == 4;
    enum AVPixelFormat dst_fmt =
        avcodec_find_best_pix_fmt_of_list(codec->pix_fmts, src_fmt, has_alpha, NULL);
    int width = (int)img->shape[1], height = (int)img->shape[0];

    AVCodecContext *enc = avcodec_alloc_context3(codec);
    AVFrame *frame = av_frame_alloc();
    AVPacket *packet = av_packet_alloc();
    struct SwsContext *sws = NULL;
    sdlk_status st = SDLK_OK;
    if (!enc || !frame || !packet) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    enc->width = width;
    enc->height = height;
    enc->pix_fmt = dst_fmt;
    enc->time_base = (AVRational){1, 25}; /* encoders insist on one, even for a still */
    int ret = avcodec_open2(enc, codec, NULL);
    if (ret < 0) {
        st = ff_error(err, SDLK_ERR_UNSUPPORTED, name, "cannot open the encoder", ret);
        goto done;
    }
    frame->format = dst_fmt;
    frame->width = width;
    frame->height = height;
    if (av_frame_get_buffer(frame, 0) < 0) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    sws = sws_getContext(width, height, src_fmt, width, height, dst_fmt,
                         SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP | SWS_BITEXACT, NULL,
                         NULL, NULL);
    if (!sws) {
        st = sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: cannot convert to %s", name,
                            av_get_pix_fmt_name(dst_fmt));
        goto done;
    }
    const uint8_t *src[4] = {img->data, NULL, NULL, NULL};
    int src_stride[4] = {(int)img->strides[0], 0, 0, 0};
    sws_scale(sws, src, src_stride, 0, height, frame->data, frame->linesize);
    frame->pts = 0;
    st = encode_and_write(enc, frame, packet, fp, name, err);
    if (!st)
        st = encode_and_write(enc, NULL, packet, fp, name, err);
done:
    sws_freeContext(sws);
    av_packet_free(&packet);
    av_frame_free(&frame);
    avcodec_free_context(&enc);
    return st;
}
