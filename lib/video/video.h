/* video.h -- video decode and encode through FFmpeg (libavformat/libavcodec/libswscale).
 *
 * Contract
 *   Reading: any container and codec FFmpeg decodes; frames come out one at a time as
 *   [H, W, 3] u8 RGB tensors (or [H, W, 1] gray when asked), in presentation order,
 *   converted with libswscale using the matrix and range the stream declares. Memory
 *   is O(one frame) plus the decoder's own buffers: videos of any length stream. In
 *   containers whose timestamps count frames (AVI), a skipped (empty) frame chunk means
 *   "repeat the previous picture" and is returned as such a repeat, so frame i is the
 *   picture at time i / fps and the count matches the container's (tree.avi: 68 coded
 *   pictures, 444 frames). A file with no video stream, or a video stream that
 *   yields no frame, is an SDLK_ERR_FORMAT naming the file (open decodes the first
 *   frame to know). A file cut short yields the frames before the cut, then EOF.
 *   Corrupt packets that the decoder rejects are skipped and counted
 *   (info->corrupt_packets), as ffmpeg does. "-" reads stdin; a path ending in "/"
 *   reads the frame_%06d.png files a PNG-frames writer made there; a path with a
 *   %d-style pattern reads that image sequence.
 *   Writing: H.264 in MP4 (libx264, yuv420p tagged BT.601, CRF; even width and height),
 *   lossless FFV1 version 3 in MKV (RGB as bgr0, gray as gray8: bit-exact round trip),
 *   or numbered PNG frames (lossless, libpng, numbered from 1 like ffmpeg). The codec
 *   is chosen by the extension (.mp4/.mov/.m4v -> H.264, .mkv -> FFV1, a path
 *   containing a %d / %0Nd pattern or ending in "/" -> PNG frames) or explicitly; the
 *   container follows the extension (default MP4 for H.264, Matroska for FFV1; "-"
 *   writes to stdout, fragmented for MP4). Container files are written to a temporary
 *   file and renamed into place on sdlk_video_writer_finish(); an aborted or failed
 *   write leaves nothing behind. PNG frames are each written atomically; an abort
 *   removes the frames written and the directory the writer created.
 *   FFmpeg's own logging is silenced (its process-wide log level is set to quiet);
 *   failures are reported from FFmpeg's return codes. The library never prints.
 */
#ifndef SDLK_VIDEO_VIDEO_H
#define SDLK_VIDEO_VIDEO_H

#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"

typedef struct sdlk_video_info {
    int width, height;
    double fps;             /* average frame rate; 0 if unknown */
    int64_t frame_count;    /* from the container, -1 if unknown (count by reading) */
    double duration;        /* seconds, 0 if unknown */
    char codec[32];         /* decoder name, e.g. "cinepak", "h264" */
    char container[32];     /* demuxer name, e.g. "avi", "mov,mp4,..." */
    char pixel_format[32];  /* as stored, e.g. "yuv420p" */
    int64_t corrupt_packets;/* packets the decoder rejected so far */
} sdlk_video_info;

typedef struct sdlk_video_reader sdlk_video_reader;

/* Open `path` for decoding. channels: 3 (RGB) or 1 (gray). info may be NULL. */
sdlk_status sdlk_video_open(const char *path, int channels, sdlk_video_reader **out,
                            sdlk_video_info *info, sdlk_error *err);
/* Decode the next frame into *frame (allocated by the call; free with
 * sdlk_tensor_free). SDLK_ERR_EOF after the last frame. */
sdlk_status sdlk_video_read_frame(sdlk_video_reader *r, sdlk_tensor *frame, sdlk_error *err);
/* Current info (corrupt_packets grows while reading). */
void sdlk_video_get_info(const sdlk_video_reader *r, sdlk_video_info *info);
/* Free the reader (NULL is allowed). */
void sdlk_video_close(sdlk_video_reader *r);

typedef enum sdlk_video_codec {
    SDLK_VCODEC_AUTO = 0, /* from the path */
    SDLK_VCODEC_H264,     /* MP4/H.264 (lossy) */
    SDLK_VCODEC_FFV1,     /* MKV/FFV1 (lossless) */
    SDLK_VCODEC_PNG       /* numbered PNG frames (lossless) */
} sdlk_video_codec;

typedef struct sdlk_video_write_opts {
    sdlk_video_codec codec;
    double fps; /* 0 = 25 */
    int crf;    /* H.264 quality 0..51 (0 = lossless x264), -1 = default 18 */
} sdlk_video_write_opts;

/* Defaults: codec from the path, 25 fps, CRF 18. */
void sdlk_video_write_opts_init(sdlk_video_write_opts *opts);

typedef struct sdlk_video_writer sdlk_video_writer;

/* Start writing frames of width x height x channels (1 or 3) u8 to `path` (sides
 * 1..16384). For PNG frames, `path` is a pattern with one %d or %0Nd ("out/f%05d.png")
 * or a directory ("out/", created if missing), in which case frames are named
 * frame_%06d.png. An unwritable destination is an SDLK_ERR_IO here, before any frame.
 * opts may be NULL (defaults). */
sdlk_status sdlk_video_writer_open(const char *path, int width, int height, int channels,
                                   const sdlk_video_write_opts *opts, sdlk_video_writer **out,
                                   sdlk_error *err);
/* Append one [height, width, channels] u8 frame (any strides); SDLK_ERR_ARG for a
 * frame of another shape or dtype (the writer stays usable). */
sdlk_status sdlk_video_write_frame(sdlk_video_writer *w, const sdlk_tensor *frame,
                                   sdlk_error *err);
/* Flush the encoder, write the trailer, rename into place; frees the writer. */
sdlk_status sdlk_video_writer_finish(sdlk_video_writer *w, sdlk_error *err);
/* Discard everything written so far; frees the writer. */
void sdlk_video_writer_abort(sdlk_video_writer *w);

#endif
