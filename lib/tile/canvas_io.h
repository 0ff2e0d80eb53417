/* canvas_io.h -- canvases from files, tile streams, and canvases back to files: the
 * file side of lib/tile (what sdl-tile's split and merge do), over lib/image, lib/io and
 * lib/video.
 *
 * Contract
 *   Reading (sdlk_canvas_read). INPUT's first bytes decide what it is:
 *     - an image (anything lib/image decodes): one canvas [H, W, C] in the image's own
 *       dtype (u8 or u16), described with its stored bit depth;
 *     - a tensor file (.npy, .npz, .safetensors, by magic): the tensor `name`, or the
 *       only one (several without a name: SDLK_ERR_ARG naming the first); it must be
 *       [H, W, C] or [T, H, W, C];
 *     - anything else, when INPUT is a file name: a video decoded by FFmpeg, streamed as
 *       canvases [T, H, W, 3] u8 of `frames_per_group` frames (the last may be shorter),
 *       each with its group number and first frame. Memory is one group whatever the
 *       video's length. "-" (stdin) may hold an image or a tensor file, not a video.
 *     Each canvas goes to `each` before the next is read; an error from `each` ends the
 *     read with that error.
 *   Tile streams. sdlk_tile_stream_write cuts a canvas on a grid into tile records
 *     (sdlk_tile_record_make) written to a tensor stream. sdlk_tile_stream_merge reads
 *     such a stream, checks that every record describes the same source as the first,
 *     that a group's records share one grid and that groups come in order (0, 1, ...,
 *     each starting at the frame after the last one's), blends each group
 *     (sdlk_tile_merger) and hands the canvas to a writer. Memory: one group's canvas
 *     and weights. Errors name the stream and the record.
 *   Writing (sdlk_canvas_writer). OUTPUT's name decides the kind:
 *     - a video (.mp4/.mov/.m4v/.mkv, a %d pattern or a path ending in "/"): each canvas's
 *       frames are encoded as soon as it arrives (u8 with 1 or 3 channels);
 *     - an image (any other extension): the single canvas of one frame, u8 or u16;
 *     - a tensor file (.npy/.npz/.safetensors, or "-"): every canvas kept and saved at
 *       the end as one tensor (the groups' frames joined along T) named after the source
 *       tensor (else "canvas").
 *     Canvases arrive as f32 (a merger's output) and are converted back to the source's
 *     dtype. Files are written atomically: an aborted writer leaves nothing behind.
 */
#ifndef SDLK_TILE_CANVAS_IO_H
#define SDLK_TILE_CANVAS_IO_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/pool.h"
#include "core/progress.h"
#include "core/tensor.h"
#include "tile/tile.h"
#include "video/video.h"

/* ---- reading -------------------------------------------------------------------- */

/* One canvas of INPUT; `input` is INPUT's name for messages ("<stdin>" for "-"). */
typedef sdlk_status (*sdlk_canvas_fn)(void *ctx, const sdlk_tensor *canvas,
                                      const sdlk_tile_canvas *info, const char *input,
                                      sdlk_error *err);

/* Read INPUT's canvases (see the contract). name: the tensor of a tensor file, or NULL.
 * frames_per_group >= 1: a video's frames per canvas. */
sdlk_status sdlk_canvas_read(const char *input, const char *name, int64_t frames_per_group,
                             sdlk_canvas_fn each, void *ctx, sdlk_error *err);

/* ---- writing -------------------------------------------------------------------- */

typedef enum sdlk_canvas_output {
    SDLK_CANVAS_OUTPUT_TENSOR = 0,
    SDLK_CANVAS_OUTPUT_IMAGE,
    SDLK_CANVAS_OUTPUT_VIDEO
} sdlk_canvas_output;

/* The kind of output `path` names (see the contract). */
sdlk_canvas_output sdlk_canvas_output_of(const char *path);

typedef struct sdlk_canvas_writer {
    sdlk_canvas_output kind;
    const char *path, *display; /* the caller's strings: they must outlive the writer */
    sdlk_tensor *groups;        /* canvases kept for an image or tensor output */
    int64_t group_count, group_capacity;
    sdlk_video_writer *video;
    int64_t frames;             /* frames (or canvases) written or kept so far */
    int64_t bytes;              /* their bytes in the source dtype */
} sdlk_canvas_writer;

/* A writer for `path` ("-": stdout); nothing is opened before the first canvas. */
void sdlk_canvas_writer_init(sdlk_canvas_writer *w, const char *path);
/* Take a merged f32 canvas described by `info`: convert it to info->dtype and encode
 * (video) or keep it. An image output refuses a second canvas. */
sdlk_status sdlk_canvas_writer_put(sdlk_canvas_writer *w, const sdlk_tensor *merged,
                                   const sdlk_tile_canvas *info, sdlk_error *err);
/* Finish the output: close the video, or write the image or tensor file; `info` is the
 * first canvas's description (dtype, name). */
sdlk_status sdlk_canvas_writer_finish(sdlk_canvas_writer *w, const sdlk_tile_canvas *info,
                                      sdlk_error *err);
/* Free everything; an unfinished video is aborted (its file removed). */
void sdlk_canvas_writer_free(sdlk_canvas_writer *w);

/* ---- tile streams --------------------------------------------------------------- */

/* Cut `canvas` (described by `info`) on `grid` and write one record per tile to `out`
 * (`out_name` for messages); *tiles and *bytes grow by the records and tile bytes
 * written; progress (may be NULL) is updated with the running tile count. */
sdlk_status sdlk_tile_stream_write(FILE *out, const char *out_name, const sdlk_tensor *canvas,
                                   const sdlk_tile_canvas *info, const sdlk_tile_grid *grid,
                                   int64_t *tiles, int64_t *bytes, sdlk_progress *progress,
                                   sdlk_error *err);

/* What sdlk_tile_stream_merge saw. */
typedef struct sdlk_tile_merge_stats {
    uint64_t records;
    int64_t groups;
    sdlk_tile_canvas first;  /* record 1's source (its name points into first_name) */
    char first_name[256];
} sdlk_tile_merge_stats;

/* Merge the tile stream `in` (`name` for messages) into `writer` and finish it, blending
 * with `blend` on `pool`'s threads. progress (may be NULL) shows each group's tiles. An
 * empty stream is an SDLK_ERR_FORMAT. On failure the writer still needs freeing. */
sdlk_status sdlk_tile_stream_merge(FILE *in, const char *name, sdlk_blend blend, sdlk_pool *pool,
                                   sdlk_canvas_writer *writer, sdlk_progress *progress,
                                   sdlk_tile_merge_stats *stats, sdlk_error *err);

#endif
