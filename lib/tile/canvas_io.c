/* canvas_io.c -- canvases from files, tile streams, canvases to files (canvas_io.h). */
#include "tile/canvas_io.h"

#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/tensorset.h"
#include "image/image.h"
#include "io/tensorio.h"
#include "io/tstream.h"

/* ---- reading -------------------------------------------------------------------- */

/* The tensor to cut from `set`: --name, or the only one. */
static sdlk_status pick_tensor(const sdlk_tensor_set *set, const char *name, const char *input,
                               const sdlk_tensor **out, const char **out_name, sdlk_error *err)
{
    if (name) {
        *out = sdlk_tensor_set_find(set, name);
        if (!*out)
            return sdlk_error_set(err, SDLK_ERR_NOTFOUND, "%s: no tensor named '%s'", input, name);
        *out_name = name;
    } else if (set->count == 1) {
        *out = &set->items[0].tensor;
        *out_name = set->items[0].name;
    } else {
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s holds %zu tensors; choose one with --name (the first is '%s')",
                              input, set->count, set->count ? set->items[0].name : "");
    }
    if ((*out)->ndim != 3 && (*out)->ndim != 4) {
        char shape[96];
        sdlk_shape_format((*out)->ndim, (*out)->shape, shape, sizeof shape);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: tensor '%s' has shape %s; tiles need [H,W,C] or [T,H,W,C]",
                              input, *out_name, shape);
    }
    return SDLK_OK;
}

static sdlk_status read_image(sdlk_storage *bytes, const char *input, sdlk_canvas_fn each,
                              void *ctx, sdlk_error *err)
{
    sdlk_tensor image;
    sdlk_image_info info;
    sdlk_status st = sdlk_image_decode(sdlk_storage_data(bytes), sdlk_storage_size(bytes), input,
                                       &image, &info, err);
    if (st)
        return st;
    int default_depth = image.dtype == SDLK_U16 ? 16 : 8;
    sdlk_tile_canvas canvas = {.rank = 3, .channels = image.shape[2], .dtype = image.dtype,
                               .source = SDLK_TILE_SOURCE_IMAGE,
                               .bit_depth = info.bit_depth > 0 && info.bit_depth <= 16
                                                ? info.bit_depth
                                                : default_depth,
                               .name = ""};
    st = each(ctx, &image, &canvas, input, err);
    sdlk_tensor_free(&image);
    return st;
}

static sdlk_status read_tensor(sdlk_storage *bytes, sdlk_tensor_format format, const char *path,
                               const char *input, const char *name, sdlk_canvas_fn each,
                               void *ctx, sdlk_error *err)
{
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_status st = sdlk_tensors_parse(bytes, path, format, &set, err);
    const sdlk_tensor *tensor = NULL;
    const char *tensor_name = NULL;
    if (!st)
        st = pick_tensor(&set, name, input, &tensor, &tensor_name, err);
    if (!st) {
        sdlk_tile_canvas canvas = {.rank = tensor->ndim, .channels = tensor->shape[tensor->ndim - 1],
                                   .dtype = tensor->dtype, .source = SDLK_TILE_SOURCE_TENSOR,
                                   .name = tensor_name};
        st = each(ctx, tensor, &canvas, input, err);
    }
    sdlk_tensor_set_free(&set);
    return st;
}

/* Decode the next frame of `reader` into slot `slot` of `group` ([T,H,W,3] u8).
 * SDLK_ERR_EOF after the last frame. */
static sdlk_status read_frame_into(sdlk_video_reader *reader, sdlk_tensor *group, int64_t slot,
                                   const char *input, int64_t frame_number, sdlk_error *err)
{
    sdlk_tensor frame, contiguous;
    sdlk_tensor_init(&frame);
    sdlk_tensor_init(&contiguous);
    sdlk_status st = sdlk_video_read_frame(reader, &frame, err);
    if (!st && (frame.ndim != 3 || frame.dtype != SDLK_U8 || frame.shape[0] != group->shape[1] ||
                frame.shape[1] != group->shape[2] || frame.shape[2] != 3))
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: frame %lld is not %lldx%lld RGB like the first one", input,
                            (long long)frame_number, (long long)group->shape[2],
                            (long long)group->shape[1]);
    if (!st)
        st = sdlk_tensor_contiguous(&contiguous, &frame, err);
    if (!st) {
        size_t frame_bytes = (size_t)sdlk_tensor_nbytes(&contiguous);
        memcpy(group->data + (size_t)slot * frame_bytes, contiguous.data, frame_bytes);
    }
    sdlk_tensor_free(&frame);
    sdlk_tensor_free(&contiguous);
    return st;
}

/* Frames are gathered `per_group` at a time into one canvas [T,H,W,3], handed on, and
 * the buffer reused, so memory is one group whatever the length. The last group may be
 * shorter. */
static sdlk_status read_video(const char *input, int64_t per_group, sdlk_canvas_fn each,
                              void *ctx, sdlk_error *err)
{
    sdlk_video_reader *reader;
    sdlk_video_info info;
    sdlk_status st = sdlk_video_open(input, 3, &reader, &info, err);
    if (st)
        return st;
    const int64_t shape[4] = {per_group, info.height, info.width, 3};
    sdlk_tensor group;
    st = sdlk_tensor_alloc(&group, SDLK_U8, 4, shape, err);
    sdlk_tile_canvas canvas = {.rank = 4, .channels = 3, .dtype = SDLK_U8,
                               .source = SDLK_TILE_SOURCE_VIDEO,
                               .fps = info.fps > 0 && info.fps <= 1e6 ? info.fps : 0, .name = ""};
    int64_t filled = 0, frames_read = 0, groups = 0;
    int at_end = 0;
    while (!st && !at_end) {
        st = read_frame_into(reader, &group, filled, input, frames_read, err);
        if (st == SDLK_ERR_EOF) {
            sdlk_error_clear(err);
            st = SDLK_OK;
            at_end = 1;
        } else if (!st) {
            filled++;
            frames_read++;
        }
        if (st || filled == 0 || (filled < per_group && !at_end))
            continue;
        sdlk_tensor view;
        sdlk_tensor_share(&view, &group);
        view.shape[0] = filled; /* a short last group is a prefix of the buffer */
        canvas.group = groups++;
        canvas.first_frame = frames_read - filled;
        st = each(ctx, &view, &canvas, input, err);
        sdlk_tensor_free(&view);
        filled = 0;
    }
    if (!st && frames_read == 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: the video has no frames", input);
    sdlk_tensor_free(&group);
    sdlk_video_close(reader);
    return st;
}

sdlk_status sdlk_canvas_read(const char *input, const char *name, int64_t frames_per_group,
                             sdlk_canvas_fn each, void *ctx, sdlk_error *err)
{
    if (frames_per_group < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "canvas read: %lld frames per group",
                              (long long)frames_per_group);
    const char *display = sdlk_path_display(input);
    sdlk_storage *bytes;
    sdlk_status st = sdlk_file_map(input, &bytes, err);
    if (st)
        return st;
    const uint8_t *head = sdlk_storage_data(bytes);
    size_t size = sdlk_storage_size(bytes);
    sdlk_tensor_format format = sdlk_tensor_format_sniff(head, size);
    if (size == 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: empty input", display);
    else if (sdlk_image_sniff(head, size))
        st = read_image(bytes, display, each, ctx, err);
    else if (format != SDLK_FORMAT_UNKNOWN)
        st = read_tensor(bytes, format, input, display, name, each, ctx, err);
    else if (sdlk_path_is_stdio(input))
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: neither an image nor a tensor file (videos must be given as a "
                            "file name)",
                            display);
    else {
        /* FFmpeg opens the file itself: let the mapping go first */
        sdlk_storage_release(bytes);
        bytes = NULL;
        st = read_video(input, frames_per_group, each, ctx, err);
    }
    sdlk_storage_release(bytes);
    return st;
}

/* ---- writing -------------------------------------------------------------------- */

sdlk_canvas_output sdlk_canvas_output_of(const char *path)
{
    if (sdlk_path_is_stdio(path) || sdlk_tensor_format_from_path(path) != SDLK_FORMAT_UNKNOWN)
        return SDLK_CANVAS_OUTPUT_TENSOR;
    char ext[16];
    sdlk_path_extension(path, ext, sizeof ext);
    size_t len = strlen(path);
    if (strchr(path, '%') || (len > 0 && path[len - 1] == '/') || strcmp(ext, "mp4") == 0 ||
        strcmp(ext, "mov") == 0 || strcmp(ext, "m4v") == 0 || strcmp(ext, "mkv") == 0)
        return SDLK_CANVAS_OUTPUT_VIDEO;
    return SDLK_CANVAS_OUTPUT_IMAGE;
}

void sdlk_canvas_writer_init(sdlk_canvas_writer *w, const char *path)
{
    memset(w, 0, sizeof *w);
    w->kind = sdlk_canvas_output_of(path);
    w->path = path;
    w->display = sdlk_path_is_stdio(path) ? "<stdout>" : path;
}

static sdlk_status writer_keep(sdlk_canvas_writer *writer, sdlk_tensor *canvas, sdlk_error *err)
{
    if (writer->group_count == writer->group_capacity) {
        int64_t capacity = writer->group_capacity ? 2 * writer->group_capacity : 4;
        sdlk_tensor *bigger = realloc(writer->groups, (size_t)capacity * sizeof *bigger);
        if (!bigger)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        writer->groups = bigger;
        writer->group_capacity = capacity;
    }
    writer->groups[writer->group_count++] = *canvas;
    sdlk_tensor_init(canvas);
    return SDLK_OK;
}

static sdlk_status writer_frames(sdlk_canvas_writer *writer, const sdlk_tensor *canvas,
                                 const sdlk_tile_canvas *info, sdlk_error *err)
{
    int64_t frames = info->rank == 4 ? canvas->shape[0] : 1;
    int64_t height = canvas->shape[info->rank - 3], width = canvas->shape[info->rank - 2];
    sdlk_status st = SDLK_OK;
    if (canvas->dtype != SDLK_U8 || (info->channels != 1 && info->channels != 3))
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s: video frames must be u8 with 1 or 3 channels, the canvas is %s "
                              "with %lld",
                              writer->display, sdlk_dtype_name(canvas->dtype),
                              (long long)info->channels);
    if (!writer->video) {
        sdlk_video_write_opts opts;
        sdlk_video_write_opts_init(&opts);
        opts.fps = info->fps;
        st = sdlk_video_writer_open(writer->path, (int)width, (int)height, (int)info->channels,
                                    &opts, &writer->video, err);
    }
    const int64_t frame_shape[3] = {height, width, info->channels};
    size_t frame_bytes = (size_t)(height * width * info->channels);
    for (int64_t t = 0; t < frames && !st; t++) {
        sdlk_tensor frame;
        st = sdlk_tensor_borrow(&frame, SDLK_U8, 3, frame_shape, canvas->data + t * frame_bytes, err);
        if (!st)
            st = sdlk_video_write_frame(writer->video, &frame, err);
    }
    return st;
}

sdlk_status sdlk_canvas_writer_put(sdlk_canvas_writer *writer, const sdlk_tensor *merged,
                                   const sdlk_tile_canvas *info, sdlk_error *err)
{
    sdlk_tensor canvas;
    sdlk_tensor_init(&canvas);
    sdlk_status st = sdlk_tensor_convert(&canvas, merged, info->dtype, err);
    if (st)
        return st;
    writer->bytes += (int64_t)sdlk_tensor_nbytes(&canvas);
    writer->frames += info->rank == 4 ? canvas.shape[0] : 1;
    if (writer->kind == SDLK_CANVAS_OUTPUT_VIDEO)
        st = writer_frames(writer, &canvas, info, err);
    else if (writer->kind == SDLK_CANVAS_OUTPUT_IMAGE && writer->group_count > 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: the stream holds several groups of frames; an image holds one "
                            "(write .npy or a video)",
                            writer->display);
    else
        st = writer_keep(writer, &canvas, err);
    sdlk_tensor_free(&canvas);
    return st;
}

/* One tensor from the kept canvases: the canvas itself, or the groups' frames joined
 * along T. */
static sdlk_status writer_joined(sdlk_canvas_writer *writer, sdlk_tensor *out, sdlk_error *err)
{
    if (writer->group_count == 1) {
        sdlk_tensor_share(out, &writer->groups[0]);
        return SDLK_OK;
    }
    const sdlk_tensor *first = &writer->groups[0];
    int64_t shape[4] = {0, first->shape[1], first->shape[2], first->shape[3]};
    for (int64_t g = 0; g < writer->group_count; g++)
        shape[0] += writer->groups[g].shape[0];
    sdlk_status st = sdlk_tensor_alloc(out, first->dtype, 4, shape, err);
    uint8_t *dst = st ? NULL : out->data;
    for (int64_t g = 0; g < writer->group_count && !st; g++) {
        size_t nbytes = (size_t)sdlk_tensor_nbytes(&writer->groups[g]);
        memcpy(dst, writer->groups[g].data, nbytes);
        dst += nbytes;
    }
    return st;
}

sdlk_status sdlk_canvas_writer_finish(sdlk_canvas_writer *writer, const sdlk_tile_canvas *info,
                                      sdlk_error *err)
{
    if (writer->kind == SDLK_CANVAS_OUTPUT_VIDEO) {
        sdlk_video_writer *video = writer->video;
        writer->video = NULL;
        return sdlk_video_writer_finish(video, err);
    }
    sdlk_tensor joined;
    sdlk_tensor_init(&joined);
    sdlk_status st = writer_joined(writer, &joined, err);
    if (!st && writer->kind == SDLK_CANVAS_OUTPUT_IMAGE) {
        int64_t frames = joined.ndim == 4 ? joined.shape[0] : 1;
        if (frames != 1)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: the canvas has %lld frames; an image holds one (write .npy "
                                "or a video)",
                                writer->display, (long long)frames);
        else if (joined.dtype != SDLK_U8 && joined.dtype != SDLK_U16)
            st = sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                                "%s: the canvas is %s; images hold u8 or u16 (write .npy)",
                                writer->display, sdlk_dtype_name(joined.dtype));
        sdlk_tensor image;
        sdlk_tensor_init(&image);
        if (!st)
            st = sdlk_tensor_reshape(&image, &joined, 3, joined.shape + joined.ndim - 3, err);
        if (!st)
            st = sdlk_image_write(writer->path, &image, NULL, err);
        sdlk_tensor_free(&image);
    } else if (!st) {
        sdlk_tensor_set set;
        sdlk_tensor_set_init(&set);
        st = sdlk_tensor_set_add(&set, info->name && info->name[0] ? info->name : "canvas",
                                 &joined, err);
        if (!st)
            st = sdlk_tensors_save(writer->path, &set, SDLK_FORMAT_UNKNOWN, 0, err);
        sdlk_tensor_set_free(&set);
    }
    sdlk_tensor_free(&joined);
    return st;
}

void sdlk_canvas_writer_free(sdlk_canvas_writer *writer)
{
    if (writer->video)
        sdlk_video_writer_abort(writer->video);
    for (int64_t g = 0; g < writer->group_count; g++)
        sdlk_tensor_free(&writer->groups[g]);
    free(writer->groups);
    memset(writer, 0, sizeof *writer);
}

/* ---- tile streams --------------------------------------------------------------- */

sdlk_status sdlk_tile_stream_write(FILE *out, const char *out_name, const sdlk_tensor *canvas,
                                   const sdlk_tile_canvas *info, const sdlk_tile_grid *grid,
                                   int64_t *tiles, int64_t *bytes, sdlk_progress *progress,
                                   sdlk_error *err)
{
    sdlk_status st = SDLK_OK;
    int64_t count = sdlk_tile_grid_count(grid);
    for (int64_t index = 0; index < count && !st; index++) {
        sdlk_tensor tile;
        sdlk_tensor_set record;
        sdlk_tile_rect rect;
        sdlk_tensor_init(&tile);
        sdlk_tensor_set_init(&record);
        sdlk_tile_grid_rect(grid, index, &rect);
        st = sdlk_tile_extract(canvas, grid, index, &tile, err);
        int64_t tile_bytes = (int64_t)sdlk_tensor_nbytes(&tile);
        if (!st)
            st = sdlk_tile_record_make(grid, &rect, info, &tile, &record, err);
        if (!st)
            st = sdlk_tstream_write(out, &record, out_name, err);
        sdlk_tensor_free(&tile);
        sdlk_tensor_set_free(&record);
        if (!st) {
            (*tiles)++;
            *bytes += tile_bytes;
        }
        if (progress)
            sdlk_progress_update(progress, *tiles);
    }
    return st;
}

/* One merge: the group being blended and what came before it. */
typedef struct merge_run {
    const char *name;          /* the stream, for messages */
    sdlk_blend blend;
    sdlk_pool *pool;
    sdlk_canvas_writer *writer;
    sdlk_progress *progress;
    sdlk_tile_merger merger;
    int merging;               /* merger holds a group */
    sdlk_tile_canvas current;  /* canvas of the group being merged */
    sdlk_tile_merge_stats *stats;
} merge_run;

/* Blend the current group and hand it to the writer. `where` says which record ended it. */
static sdlk_status finish_group(merge_run *run, const char *where, sdlk_error *err)
{
    sdlk_tensor merged;
    sdlk_tensor_init(&merged);
    sdlk_status st = sdlk_tile_merger_finish(&run->merger, &merged, err);
    if (st)
        sdlk_error_prefix(err, "%s: group %lld (%s)", run->name, (long long)run->current.group,
                          where);
    if (!st)
        st = sdlk_canvas_writer_put(run->writer, &merged, &run->current, err);
    sdlk_tensor_free(&merged);
    sdlk_tile_merger_free(&run->merger);
    run->merging = 0;
    run->stats->groups++;
    return st;
}

/* Check record `n` against what came before and add its tile. */
static sdlk_status merge_record(merge_run *run, const sdlk_tensor_set *record, sdlk_error *err)
{
    sdlk_tile_merge_stats *stats = run->stats;
    uint64_t n = stats->records;
    sdlk_tile_grid grid;
    sdlk_tile_rect rect;
    sdlk_tile_canvas canvas;
    const sdlk_tensor *tile;
    sdlk_status st = sdlk_tile_record_parse(record, &grid, &rect, &canvas, &tile, err);
    if (st) {
        sdlk_error_prefix(err, "%s: record %llu", run->name, (unsigned long long)n);
        return st;
    }
    if (n == 1) {
        stats->first = canvas;
        snprintf(stats->first_name, sizeof stats->first_name, "%s", canvas.name);
        stats->first.name = stats->first_name;
    } else if (!sdlk_tile_canvas_same_source(&stats->first, &canvas)) {
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: record %llu describes another source than record 1 (%s %s "
                              "%lld channels vs %s %s %lld channels)",
                              run->name, (unsigned long long)n, sdlk_tile_source_name(canvas.source),
                              sdlk_dtype_name(canvas.dtype), (long long)canvas.channels,
                              sdlk_tile_source_name(stats->first.source),
                              sdlk_dtype_name(stats->first.dtype),
                              (long long)stats->first.channels);
    }
    if (run->merging && canvas.group != run->current.group) {
        char where[64];
        snprintf(where, sizeof where, "before record %llu", (unsigned long long)n);
        st = finish_group(run, where, err);
        if (st)
            return st;
    }
    if (!run->merging) {
        int64_t expect_first = run->writer->frames;
        if (canvas.group != stats->groups ||
            (stats->groups > 0 && canvas.first_frame != expect_first) ||
            (stats->groups == 0 && canvas.first_frame != 0))
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: record %llu starts group %lld at frame %lld; expected group "
                                  "%lld at frame %lld",
                                  run->name, (unsigned long long)n, (long long)canvas.group,
                                  (long long)canvas.first_frame, (long long)stats->groups,
                                  (long long)(stats->groups > 0 ? expect_first : 0));
        st = sdlk_tile_merger_init(&run->merger, &grid, canvas.channels, canvas.rank, run->blend,
                                   run->pool, err);
        if (st) {
            sdlk_error_prefix(err, "%s: record %llu", run->name, (unsigned long long)n);
            return st;
        }
        run->merging = 1;
        run->current = canvas;
        run->current.name = stats->first_name;
        if (run->progress)
            run->progress->total = sdlk_tile_grid_count(&grid);
    } else if (!sdlk_tile_grid_equal(&grid, &run->merger.grid)) {
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: record %llu has another grid than the records before it in "
                              "group %lld",
                              run->name, (unsigned long long)n, (long long)canvas.group);
    }
    st = sdlk_tile_merger_add(&run->merger, rect.index, tile, err);
    if (st)
        sdlk_error_prefix(err, "%s: record %llu", run->name, (unsigned long long)n);
    if (run->progress)
        sdlk_progress_update(run->progress, run->merger.tiles_added);
    return st;
}

sdlk_status sdlk_tile_stream_merge(FILE *in, const char *name, sdlk_blend blend, sdlk_pool *pool,
                                   sdlk_canvas_writer *writer, sdlk_progress *progress,
                                   sdlk_tile_merge_stats *stats, sdlk_error *err)
{
    memset(stats, 0, sizeof *stats);
    merge_run run = {.name = name, .blend = blend, .pool = pool, .writer = writer,
                     .progress = progress, .stats = stats};
    sdlk_tstream_reader reader;
    sdlk_tstream_reader_init(&reader, in, name);
    sdlk_status st = SDLK_OK;
    for (;;) {
        sdlk_tensor_set record;
        st = sdlk_tstream_next(&reader, &record, err);
        if (st == SDLK_ERR_EOF) {
            st = SDLK_OK;
            break;
        }
        if (!st) {
            stats->records++;
            st = merge_record(&run, &record, err);
        }
        sdlk_tensor_set_free(&record);
        if (st)
            break;
    }
    if (!st && stats->records == 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: no tile records (empty stream)", name);
    if (!st) {
        char where[64];
        snprintf(where, sizeof where, "stream ended after record %llu",
                 (unsigned long long)stats->records);
        st = finish_group(&run, where, err);
    }
    if (!st)
        st = sdlk_canvas_writer_finish(writer, &stats->first, err);
    sdlk_tile_merger_free(&run.merger);
    return st;
}
