/* video.c -- streaming video decode and encode through FFmpeg.
 *
 * Reading keeps one decoded frame (plus the decoder's own reference frames) in memory.
 * Writing goes either through libavformat into a temporary file made by sdlk_outfile
 * (an AVIOContext whose callbacks write to, and seek in, that FILE*), renamed into place
 * when the writer finishes, or through lib/image's PNG writer, one atomic file per frame.
 *
 * FFmpeg logs to stderr by default. Its log level is process-wide state with no
 * per-context alternative; a library that never prints can only set it to quiet, which
 * every entry point here does (idempotent, so no "initialised" flag is needed). The
 * causes of failures come back through return codes, turned into our messages.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "core/file.h"
#include "image/image.h"
#include "video/video.h"

/* Name of a directory of PNG frames, as written and as read back. */
#define FRAME_DIR_PATTERN "frame_%06d.png"
/* Frames of an image sequence are numbered from 1, as ffmpeg's image2 muxer does. */
#define FIRST_FRAME_NUMBER 1
/* Decoder or demuxer errors in a row after which a stream is declared unreadable (a
 * guard against a decoder that keeps failing without consuming input). */
#define MAX_CONSECUTIVE_ERRORS 1000

static void quiet_ffmpeg(void) { av_log_set_level(AV_LOG_QUIET); }

static sdlk_status av_fail(sdlk_error *err, sdlk_status code, const char *path, const char *what,
                           int averr)
{
    char text[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, text, sizeof text);
    return sdlk_error_set(err, code, "%s: %s (%s)", path, what, text);
}

/* ---- reading ------------------------------------------------------------------ */

struct sdlk_video_reader {
    char *path;
    int channels;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
    AVPacket *packet;
    AVFrame *frame;
    int frame_pending; /* r->frame holds a decoded picture not yet returned */
    int draining;      /* the demuxer is done; the decoder is being flushed */
    /* Frame-slot timestamps (see fill_gaps_in): */
    int fill_gaps;     /* timestamps count frames, so gaps are repeated pictures */
    int64_t first_ts;  /* timestamp of the first picture (slot 0) */
    int64_t next_slot; /* slot of the next frame read_frame returns */
    int64_t max_gap;   /* larger jumps are discontinuities, not repeats */
    AVFrame *previous; /* the picture returned last, repeated to fill a gap */
    struct SwsContext *sws;
    int sws_width, sws_height, sws_format, sws_colorspace, sws_range;
    sdlk_video_info info;
};

/* Errors opening an input that are about the file system, not the content. */
static int is_io_error(int averr)
{
    return averr == AVERROR(ENOENT) || averr == AVERROR(EACCES) || averr == AVERROR(EISDIR) ||
           averr == AVERROR(ENOTDIR) || averr == AVERROR(EIO) || averr == AVERROR(EPERM);
}

/* Decode the next frame of the chosen stream into r->frame; SDLK_ERR_EOF at the end. */
static sdlk_status decode_next(sdlk_video_reader *r, sdlk_error *err)
{
    int errors_in_a_row = 0;
    for (;;) {
        if (errors_in_a_row > MAX_CONSECUTIVE_ERRORS)
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: the %s stream cannot be decoded",
                                  r->path, r->info.codec);
        int ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret >= 0)
            return SDLK_OK;
        if (ret == AVERROR_EOF)
            return sdlk_error_set(err, SDLK_ERR_EOF, "%s: end of video", r->path);
        if (ret == AVERROR(ENOMEM))
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", r->path);
        if (ret != AVERROR(EAGAIN)) { /* a frame the decoder could not rebuild */
            r->info.corrupt_packets++;
            errors_in_a_row++;
            continue;
        }
        if (r->draining)
            return sdlk_error_set(err, SDLK_ERR_EOF, "%s: end of video", r->path);
        ret = av_read_frame(r->fmt, r->packet);
        if (ret == AVERROR(EAGAIN)) {
            errors_in_a_row++;
            continue;
        }
        if (ret < 0) {
            /* End of file, or a demuxer that cannot go on (a truncated or damaged
             * container): as ffmpeg does, the input ends here and the decoder gives
             * back what it still holds. */
            if (ret != AVERROR_EOF)
                r->info.corrupt_packets++;
            avcodec_send_packet(r->dec, NULL);
            r->draining = 1;
            continue;
        }
        if (r->packet->stream_index == r->stream) {
            ret = avcodec_send_packet(r->dec, r->packet);
            if (ret == AVERROR(ENOMEM)) {
                av_packet_unref(r->packet);
                return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", r->path);
            }
            if (ret < 0) {
                r->info.corrupt_packets++;
                errors_in_a_row++;
            } else {
                errors_in_a_row = 0;
            }
        }
        av_packet_unref(r->packet);
    }
}

static void fill_info(sdlk_video_reader *r)
{
    sdlk_video_info *info = &r->info;
    const AVStream *st = r->fmt->streams[r->stream];
    memset(info, 0, sizeof *info);
    info->width = st->codecpar->width;
    info->height = st->codecpar->height;
    AVRational rate = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    info->fps = rate.num && rate.den ? av_q2d(rate) : 0;
    info->frame_count = st->nb_frames > 0 ? st->nb_frames : -1;
    if (st->duration != AV_NOPTS_VALUE)
        info->duration = (double)st->duration * av_q2d(st->time_base);
    else if (r->fmt->duration != AV_NOPTS_VALUE)
        info->duration = (double)r->fmt->duration / AV_TIME_BASE;
    snprintf(info->codec, sizeof info->codec, "%s", r->dec->codec->name);
    snprintf(info->container, sizeof info->container, "%s", r->fmt->iformat->name);
    const char *pix = av_get_pix_fmt_name(st->codecpar->format);
    snprintf(info->pixel_format, sizeof info->pixel_format, "%s", pix ? pix : "unknown");
}

/* Containers whose timestamps count frames (AVI: one tick per frame at the nominal
 * rate) mark a repeated picture with an empty chunk, which FFmpeg's demuxer skips,
 * leaving a jump in the timestamps. There the video has a frame in every slot, and the
 * reader returns the previous picture again for each skipped one, so that frame i is
 * the picture shown at time i / fps and the count matches the container's. Other
 * containers (MP4, MKV: fine-grained time bases, possibly variable frame rate) return
 * exactly the decoded pictures. */
static void fill_gaps_in(sdlk_video_reader *r)
{
    const AVStream *st = r->fmt->streams[r->stream];
    AVRational rate = st->r_frame_rate;
    r->fill_gaps = rate.num > 0 && rate.den > 0 && st->time_base.num > 0 &&
                   av_cmp_q(av_inv_q(rate), st->time_base) == 0;
    /* a jump of more than a minute is a broken timestamp, not a still scene */
    r->max_gap = r->fill_gaps ? (int64_t)(60 * av_q2d(rate)) + 1 : 0;
}

/* Open demuxer and decoder; the URL FFmpeg gets for `path`. */
static sdlk_status reader_open_input(sdlk_video_reader *r, sdlk_error *err)
{
    const char *path = r->path;
    const AVInputFormat *forced = NULL;
    char *url = NULL;
    size_t len = strlen(path);
    if (sdlk_path_is_stdio(path)) {
        url = strdup("pipe:0");
    } else if (len && path[len - 1] == '/') {
        /* a directory of PNG frames, as sdlk_video_writer_open writes it */
        url = malloc(len + sizeof FRAME_DIR_PATTERN);
        if (url)
            snprintf(url, len + sizeof FRAME_DIR_PATTERN, "%s%s", path, FRAME_DIR_PATTERN);
        forced = av_find_input_format("image2");
    } else {
        url = strdup(path);
    }
    if (!url)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    int ret = avformat_open_input(&r->fmt, url, forced, NULL);
    free(url);
    if (ret < 0)
        return av_fail(err, is_io_error(ret) ? SDLK_ERR_IO : SDLK_ERR_FORMAT, path,
                       is_io_error(ret) ? "cannot open" : "not a video FFmpeg can read", ret);
    /* Stream parameters that some containers only reveal through their packets; a
     * failure here still leaves whatever the header said, so it is not fatal. */
    avformat_find_stream_info(r->fmt, NULL);
    r->stream = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (r->stream < 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: no video stream in this %s file", path,
                              r->fmt->iformat->name);
    for (unsigned i = 0; i < r->fmt->nb_streams; i++)
        if ((int)i != r->stream)
            r->fmt->streams[i]->discard = AVDISCARD_ALL; /* don't even demux audio */
    const AVCodecParameters *par = r->fmt->streams[r->stream]->codecpar;
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: no decoder for %s video", path,
                              avcodec_get_name(par->codec_id));
    r->dec = avcodec_alloc_context3(codec);
    if (!r->dec)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    avcodec_parameters_to_context(r->dec, par);
    r->dec->thread_count = 0; /* as many as FFmpeg finds useful */
    ret = avcodec_open2(r->dec, codec, NULL);
    if (ret < 0)
        return av_fail(err, SDLK_ERR_UNSUPPORTED, path, "cannot open the video decoder", ret);
    return SDLK_OK;
}

sdlk_status sdlk_video_open(const char *path, int channels, sdlk_video_reader **out,
                            sdlk_video_info *info, sdlk_error *err)
{
    *out = NULL;
    if (channels != 1 && channels != 3)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: frames have 1 or 3 channels, not %d",
                              path, channels);
    quiet_ffmpeg();
    sdlk_video_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path)) || !(r->packet = av_packet_alloc()) ||
        !(r->frame = av_frame_alloc()) || !(r->previous = av_frame_alloc())) {
        sdlk_video_close(r);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    }
    r->channels = channels;
    r->sws_format = AV_PIX_FMT_NONE;
    sdlk_status st = reader_open_input(r, err);
    if (!st) {
        fill_info(r);
        fill_gaps_in(r);
        /* Decode the first frame now: a file whose video yields no frame at all is
         * refused here rather than looking like an empty but valid video. */
        sdlk_error first = {0};
        st = decode_next(r, &first);
        if (st == SDLK_ERR_EOF)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: the %s video has no decodable frame",
                                path, r->info.codec);
        else if (st)
            sdlk_error_set(err, first.code, "%s", first.msg);
    }
    if (st) {
        sdlk_video_close(r);
        return st;
    }
    r->frame_pending = 1;
    r->first_ts = r->frame->best_effort_timestamp;
    if (r->info.width <= 0 || r->info.height <= 0) {
        r->info.width = r->frame->width;
        r->info.height = r->frame->height;
    }
    if (info)
        *info = r->info;
    *out = r;
    return SDLK_OK;
}

/* (Re)build the conversion context when the decoded frames change size or format. */
static sdlk_status reader_scaler(sdlk_video_reader *r, const AVFrame *f, sdlk_error *err)
{
    if (r->sws && f->width == r->sws_width && f->height == r->sws_height &&
        f->format == r->sws_format && (int)f->colorspace == r->sws_colorspace &&
        (int)f->color_range == r->sws_range)
        return SDLK_OK;
    sws_freeContext(r->sws);
    enum AVPixelFormat dst = r->channels == 3 ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_GRAY8;
    r->sws = sws_getContext(f->width, f->height, f->format, f->width, f->height, dst,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_BITEXACT,
                            NULL, NULL, NULL);
    if (!r->sws)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: cannot convert %s frames", r->path,
                              av_get_pix_fmt_name(f->format));
    /* Use the matrix and range the stream declares (BT.709 for HD video, full range
     * for MJPEG) instead of swscale's BT.601 limited-range default. */
    int *inv, *fwd, in_range, out_range, brightness, contrast, saturation;
    if (sws_getColorspaceDetails(r->sws, &inv, &in_range, &fwd, &out_range, &brightness,
                                 &contrast, &saturation) >= 0) {
        int cs = f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : (int)f->colorspace;
        sws_setColorspaceDetails(r->sws, sws_getCoefficients(cs),
                                 in_range || f->color_range == AVCOL_RANGE_JPEG, fwd, out_range,
                                 brightness, contrast, saturation);
    }
    r->sws_width = f->width, r->sws_height = f->height, r->sws_format = f->format;
    r->sws_colorspace = (int)f->colorspace, r->sws_range = (int)f->color_range;
    return SDLK_OK;
}

static sdlk_status frame_out(sdlk_video_reader *r, const AVFrame *f, sdlk_tensor *out,
                             sdlk_error *err)
{
    sdlk_status st = reader_scaler(r, f, err);
    if (st)
        return st;
    int64_t shape[3] = {f->height, f->width, r->channels};
    st = sdlk_tensor_alloc(out, SDLK_U8, 3, shape, err);
    if (st)
        return st;
    uint8_t *dst[4] = {out->data, NULL, NULL, NULL};
    int dst_stride[4] = {(int)out->strides[0], 0, 0, 0};
    if (sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst,
                  dst_stride) != f->height) {
        sdlk_tensor_free(out);
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: frame conversion failed", r->path);
    }
    return SDLK_OK;
}

sdlk_status sdlk_video_read_frame(sdlk_video_reader *r, sdlk_tensor *frame, sdlk_error *err)
{
    sdlk_tensor_init(frame);
    if (!r->frame_pending) {
        sdlk_status st = decode_next(r, err);
        if (st)
            return st;
        r->frame_pending = 1;
    }
    int64_t ts = r->frame->best_effort_timestamp;
    if (r->fill_gaps && ts != AV_NOPTS_VALUE && r->first_ts != AV_NOPTS_VALUE &&
        r->previous->data[0]) {
        int64_t slot = ts - r->first_ts;
        if (slot > r->next_slot && slot - r->next_slot <= r->max_gap) {
            r->next_slot++;
            return frame_out(r, r->previous, frame, err); /* a repeated picture */
        }
    }
    sdlk_status st = frame_out(r, r->frame, frame, err);
    r->frame_pending = 0;
    r->next_slot++;
    if (r->fill_gaps && ts != AV_NOPTS_VALUE && r->first_ts != AV_NOPTS_VALUE &&
        ts - r->first_ts >= r->next_slot)
        r->next_slot = ts - r->first_ts + 1; /* after a discontinuity */
    av_frame_unref(r->previous);
    av_frame_move_ref(r->previous, r->frame);
    return st;
}

void sdlk_video_get_info(const sdlk_video_reader *r, sdlk_video_info *info) { *info = r->info; }

void sdlk_video_close(sdlk_video_reader *r)
{
    if (!r)
        return;
    sws_freeContext(r->sws);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    av_packet_free(&r->packet);
    av_frame_free(&r->frame);
    av_frame_free(&r->previous);
    free(r->path);
    free(r);
}

/* ---- writing ------------------------------------------------------------------ */

void sdlk_video_write_opts_init(sdlk_video_write_opts *opts)
{
    opts->codec = SDLK_VCODEC_AUTO;
    opts->fps = 25;
    opts->crf = 18;
}

struct sdlk_video_writer {
    char *path;
    sdlk_video_codec codec;
    int width, height, channels;
    /* containers (H.264, FFV1) */
    sdlk_outfile out;
    AVIOContext *avio;
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *stream;
    struct SwsContext *sws;
    AVFrame *frame;
    AVPacket *packet;
    int64_t next_pts;
    /* PNG frames: file name = prefix + number (zero-padded to `digits`) + suffix */
    char *prefix, *suffix;
    int digits;
    char *created_dir; /* the directory we made, removed again on abort */
    int64_t frames_written;
};

/* The codec the path asks for: a pattern or directory means PNG frames. */
static sdlk_video_codec codec_from_path(const char *path)
{
    size_t len = strlen(path);
    if (strchr(path, '%') || (len && path[len - 1] == '/'))
        return SDLK_VCODEC_PNG;
    char ext[16];
    sdlk_path_extension(path, ext, sizeof ext);
    if (!strcmp(ext, "mp4") || !strcmp(ext, "mov") || !strcmp(ext, "m4v"))
        return SDLK_VCODEC_H264;
    if (!strcmp(ext, "mkv"))
        return SDLK_VCODEC_FFV1;
    return SDLK_VCODEC_AUTO;
}

/* Split "dir/f%05d.png" into prefix "dir/f", 5 digits, suffix ".png". Only %d and %0Nd
 * are accepted (what FFmpeg's image2 demuxer reads back), and no other '%'. */
static sdlk_status parse_frame_pattern(sdlk_video_writer *w, const char *pattern,
                                       sdlk_error *err)
{
    const char *pct = strchr(pattern, '%');
    const char *p = pct + 1;
    int digits = 0;
    if (*p == '0')
        p++;
    while (*p >= '0' && *p <= '9' && digits < 100)
        digits = digits * 10 + (*p++ - '0');
    if (*p != 'd' || strchr(p, '%') || (digits && pct[1] != '0') || digits > 18)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: a frame pattern needs exactly one %%d or %%0Nd", w->path);
    w->prefix = strndup(pattern, (size_t)(pct - pattern));
    w->suffix = strdup(p + 1);
    w->digits = digits;
    if (!w->prefix || !w->suffix)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", w->path);
    return SDLK_OK;
}

static char *frame_file_name(const sdlk_video_writer *w, int64_t number)
{
    char *name = NULL;
    if (asprintf(&name, "%s%0*lld%s", w->prefix, w->digits, (long long)number, w->suffix) < 0)
        return NULL;
    return name;
}

static sdlk_status png_frames_open(sdlk_video_writer *w, sdlk_error *err)
{
    const char *path = w->path;
    size_t len = strlen(path);
    sdlk_status st;
    char *dir;
    if (len && path[len - 1] == '/') {
        char *pattern = NULL;
        if (asprintf(&pattern, "%s%s", path, FRAME_DIR_PATTERN) < 0)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
        st = parse_frame_pattern(w, pattern, err);
        free(pattern);
        dir = strndup(path, len - 1);
        if (!st && dir && *dir && mkdir(dir, 0777) == 0) {
            w->created_dir = dir;
            dir = NULL;
        }
    } else {
        st = parse_frame_pattern(w, path, err);
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    }
    const char *check = w->created_dir ? w->created_dir : dir;
    /* Refuse an unwritable place now, not at the first frame. */
    if (!st && check && *check && access(check, W_OK | X_OK) != 0)
        st = sdlk_error_errno(err, errno, "%s: cannot write frames into %s", path, check);
    free(dir);
    return st;
}

/* AVIOContext callbacks over the sdlk_outfile's FILE*. */
static int outfile_write(void *opaque, uint8_t *buf, int size)
{
    sdlk_video_writer *w = opaque;
    if (fwrite(buf, 1, (size_t)size, w->out.fp) != (size_t)size)
        return AVERROR(errno ? errno : EIO);
    return size;
}

static int64_t outfile_seek(void *opaque, int64_t offset, int whence)
{
    sdlk_video_writer *w = opaque;
    if (whence & AVSEEK_SIZE) {
        struct stat st;
        if (fflush(w->out.fp) != 0 || fstat(fileno(w->out.fp), &st) != 0)
            return AVERROR(errno);
        return st.st_size;
    }
    if (fseeko(w->out.fp, offset, whence & ~AVSEEK_FORCE) != 0)
        return AVERROR(errno);
    return ftello(w->out.fp);
}

static sdlk_status encoder_open(sdlk_video_writer *w, double fps, int crf, sdlk_error *err)
{
    const char *path = w->path;
    const AVCodec *codec = w->codec == SDLK_VCODEC_H264 ? avcodec_find_encoder_by_name("libx264")
                                                        : avcodec_find_encoder(AV_CODEC_ID_FFV1);
    if (!codec)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: this FFmpeg has no %s encoder",
                              path, w->codec == SDLK_VCODEC_H264 ? "libx264" : "FFV1");
    if (w->codec == SDLK_VCODEC_H264 && (w->width % 2 || w->height % 2))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: H.264 (4:2:0) needs even width and height, not %dx%d", path,
                              w->width, w->height);
    w->enc = avcodec_alloc_context3(codec);
    if (!w->enc)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    AVCodecContext *enc = w->enc;
    AVRational rate = av_d2q(fps, 1 << 16);
    enc->width = w->width;
    enc->height = w->height;
    enc->framerate = rate;
    enc->time_base = av_inv_q(rate);
    if (w->codec == SDLK_VCODEC_H264) {
        enc->pix_fmt = AV_PIX_FMT_YUV420P;
        /* the matrix swscale converts with, declared so that players use it too */
        enc->colorspace = AVCOL_SPC_SMPTE170M;
        enc->color_range = AVCOL_RANGE_MPEG;
        av_opt_set_double(enc->priv_data, "crf", crf, 0);
    } else {
        /* FFV1 codes 8-bit RGB losslessly as BGR0 (its RCT is reversible); RGB24 <->
         * BGR0 is a pure byte reordering in swscale, so frames round-trip bit-exactly. */
        enc->pix_fmt = w->channels == 3 ? AV_PIX_FMT_BGR0 : AV_PIX_FMT_GRAY8;
        /* FFV1 version 3: slices (so several threads encode), per-slice CRCs */
        enc->level = 3;
        enc->thread_count = 0;
    }
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER)
        enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int ret = avcodec_open2(enc, codec, NULL);
    if (ret < 0)
        return av_fail(err, SDLK_ERR_UNSUPPORTED, path, "cannot open the encoder", ret);
    w->stream = avformat_new_stream(w->oc, NULL);
    if (!w->stream)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    avcodec_parameters_from_context(w->stream->codecpar, enc);
    w->stream->time_base = enc->time_base;
    w->stream->avg_frame_rate = rate;

    w->frame = av_frame_alloc();
    w->packet = av_packet_alloc();
    if (!w->frame || !w->packet)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    w->frame->format = enc->pix_fmt;
    w->frame->width = w->width;
    w->frame->height = w->height;
    if (av_frame_get_buffer(w->frame, 0) < 0)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    enum AVPixelFormat src = w->channels == 3 ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_GRAY8;
    w->sws = sws_getContext(w->width, w->height, src, w->width, w->height, enc->pix_fmt,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP | SWS_BITEXACT,
                            NULL, NULL, NULL);
    if (!w->sws)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: cannot convert frames to %s", path,
                              av_get_pix_fmt_name(enc->pix_fmt));
    return SDLK_OK;
}

static sdlk_status container_open(sdlk_video_writer *w, double fps, int crf, sdlk_error *err)
{
    const char *path = w->path;
    int to_stdout = sdlk_path_is_stdio(path);
    const AVOutputFormat *ofmt = to_stdout ? NULL : av_guess_format(NULL, path, NULL);
    if (!ofmt || (ofmt->flags & AVFMT_NOFILE))
        ofmt = av_guess_format(w->codec == SDLK_VCODEC_H264 ? "mp4" : "matroska", NULL, NULL);
    if (!ofmt)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: this FFmpeg has no %s muxer", path,
                              w->codec == SDLK_VCODEC_H264 ? "MP4" : "Matroska");
    int ret = avformat_alloc_output_context2(&w->oc, ofmt, NULL, NULL);
    if (ret < 0)
        return av_fail(err, SDLK_ERR_NOMEM, path, "cannot set up the muxer", ret);
    sdlk_status st = encoder_open(w, fps, crf, err);
    if (st)
        return st;
    st = sdlk_outfile_open(&w->out, path, err);
    if (st)
        return st;
    enum { AVIO_BUFFER = 65536 };
    uint8_t *buffer = av_malloc(AVIO_BUFFER);
    if (buffer)
        w->avio = avio_alloc_context(buffer, AVIO_BUFFER, 1, w, NULL, outfile_write,
                                     to_stdout ? NULL : outfile_seek);
    if (!w->avio) {
        av_free(buffer);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    }
    w->oc->pb = w->avio;
    w->oc->flags |= AVFMT_FLAG_CUSTOM_IO;
    AVDictionary *muxer_opts = NULL;
    if (to_stdout && !strcmp(ofmt->name, "mp4")) /* MP4 without seeking back: fragments */
        av_dict_set(&muxer_opts, "movflags", "frag_keyframe+empty_moov", 0);
    ret = avformat_write_header(w->oc, &muxer_opts);
    av_dict_free(&muxer_opts);
    if (ret < 0)
        return av_fail(err, SDLK_ERR_UNSUPPORTED, path, "cannot write the container header", ret);
    return SDLK_OK;
}

static void writer_free(sdlk_video_writer *w)
{
    sws_freeContext(w->sws);
    avcodec_free_context(&w->enc);
    av_frame_free(&w->frame);
    av_packet_free(&w->packet);
    if (w->oc)
        w->oc->pb = NULL; /* ours, freed below */
    avformat_free_context(w->oc);
    if (w->avio)
        av_freep(&w->avio->buffer);
    avio_context_free(&w->avio);
    free(w->prefix);
    free(w->suffix);
    free(w->created_dir);
    free(w->path);
    free(w);
}

sdlk_status sdlk_video_writer_open(const char *path, int width, int height, int channels,
                                   const sdlk_video_write_opts *opts, sdlk_video_writer **out,
                                   sdlk_error *err)
{
    *out = NULL;
    sdlk_video_write_opts defaults;
    sdlk_video_write_opts_init(&defaults);
    if (!opts)
        opts = &defaults;
    if (channels != 1 && channels != 3)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: frames have 1 or 3 channels, not %d",
                              path, channels);
    if (width < 1 || height < 1 || width > 16384 || height > 16384)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: frame size %dx%d is outside 1..16384", path,
                              width, height);
    double fps = opts->fps > 0 ? opts->fps : 25;
    int crf = opts->crf < 0 ? 18 : opts->crf;
    if (crf > 51 || fps > 1000)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: crf %d (0..51) or fps %g (<= 1000) invalid",
                              path, crf, fps);
    sdlk_video_codec codec = opts->codec ? opts->codec : codec_from_path(path);
    if (codec == SDLK_VCODEC_AUTO)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: cannot tell the codec from the name (use .mp4, .mkv, a "
                              "%%06d pattern or a directory ending in /)",
                              path);
    if (codec == SDLK_VCODEC_PNG && !strchr(path, '%') && path[strlen(path) - 1] != '/')
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: PNG frames need a %%06d-style pattern or a directory", path);
    quiet_ffmpeg();
    sdlk_video_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    }
    w->codec = codec;
    w->width = width, w->height = height, w->channels = channels;
    sdlk_status st = codec == SDLK_VCODEC_PNG ? png_frames_open(w, err)
                                              : container_open(w, fps, crf, err);
    if (st) {
        sdlk_video_writer_abort(w);
        return st;
    }
    *out = w;
    return SDLK_OK;
}

/* Send `frame` (NULL = flush) and mux every packet that comes out. */
static sdlk_status encode_and_mux(sdlk_video_writer *w, const AVFrame *frame, sdlk_error *err)
{
    int ret = avcodec_send_frame(w->enc, frame);
    if (ret < 0)
        return av_fail(err, SDLK_ERR_INTERNAL, w->path, "encoder refused a frame", ret);
    for (;;) {
        ret = avcodec_receive_packet(w->enc, w->packet);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return SDLK_OK;
        if (ret < 0)
            return av_fail(err, SDLK_ERR_INTERNAL, w->path, "encoding failed", ret);
        av_packet_rescale_ts(w->packet, w->enc->time_base, w->stream->time_base);
        w->packet->stream_index = w->stream->index;
        ret = av_interleaved_write_frame(w->oc, w->packet); /* takes the packet */
        if (ret < 0)
            return av_fail(err, SDLK_ERR_IO, w->path, "write failed", ret);
    }
}

sdlk_status sdlk_video_write_frame(sdlk_video_writer *w, const sdlk_tensor *frame,
                                   sdlk_error *err)
{
    if (frame->ndim != 3 || frame->dtype != SDLK_U8 || frame->shape[0] != w->height ||
        frame->shape[1] != w->width || frame->shape[2] != w->channels) {
        char shape[96];
        sdlk_shape_format(frame->ndim, frame->shape, shape, sizeof shape);
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: frame is %s %s, the video is [%d, %d, %d] u8",
                              w->path, sdlk_dtype_name(frame->dtype), shape, w->height, w->width,
                              w->channels);
    }
    if (w->codec == SDLK_VCODEC_PNG) {
        char *name = frame_file_name(w, FIRST_FRAME_NUMBER + w->frames_written);
        if (!name)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", w->path);
        sdlk_status st = sdlk_image_write(name, frame, NULL, err);
        free(name);
        if (!st)
            w->frames_written++;
        return st;
    }
    sdlk_tensor packed;
    sdlk_status st = sdlk_tensor_contiguous(&packed, frame, err);
    if (st)
        return st;
    /* the encoder may still hold a reference to the previous picture */
    if (av_frame_make_writable(w->frame) < 0) {
        sdlk_tensor_free(&packed);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", w->path);
    }
    const uint8_t *src[4] = {packed.data, NULL, NULL, NULL};
    int src_stride[4] = {(int)packed.strides[0], 0, 0, 0};
    sws_scale(w->sws, src, src_stride, 0, w->height, w->frame->data, w->frame->linesize);
    sdlk_tensor_free(&packed);
    w->frame->pts = w->next_pts++;
    st = encode_and_mux(w, w->frame, err);
    if (!st)
        w->frames_written++;
    return st;
}

sdlk_status sdlk_video_writer_finish(sdlk_video_writer *w, sdlk_error *err)
{
    if (w->codec == SDLK_VCODEC_PNG) {
        writer_free(w); /* every frame is already in place */
        return SDLK_OK;
    }
    sdlk_status st = encode_and_mux(w, NULL, err);
    if (!st) {
        int ret = av_write_trailer(w->oc);
        avio_flush(w->avio);
        if (ret >= 0 && w->avio->error < 0)
            ret = w->avio->error;
        if (ret < 0)
            st = av_fail(err, SDLK_ERR_IO, w->path, "cannot finish the file", ret);
    }
    if (!st)
        st = sdlk_outfile_commit(&w->out, err);
    if (st) {
        sdlk_video_writer_abort(w);
        return st;
    }
    writer_free(w);
    return SDLK_OK;
}

void sdlk_video_writer_abort(sdlk_video_writer *w)
{
    if (!w)
        return;
    if (w->codec == SDLK_VCODEC_PNG) {
        for (int64_t i = 0; i < w->frames_written; i++) {
            char *name = frame_file_name(w, FIRST_FRAME_NUMBER + i);
            if (name)
                unlink(name);
            free(name);
        }
        if (w->created_dir)
            rmdir(w->created_dir);
    } else {
        sdlk_outfile_abort(&w->out);
    }
    writer_free(w);
}
