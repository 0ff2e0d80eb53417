/* sdl-tile -- cut images, tensors and videos into tiles that travel as a tensor stream,
 * and merge tile streams back into images, tensors or videos (see man/sdl-tile.1).
 *
 *   sdl-tile split [GRID OPTIONS] [--name NAME] [-o STREAM] INPUT
 *   sdl-tile merge [--blend feather|average] [-o OUTPUT] [STREAM]
 *   sdl-tile grid  [GRID OPTIONS] [--json] [Tx]HxW
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/file.h"
#include "core/pool.h"
#include "core/progress.h"
#include "core/tensor.h"
#include "core/tensorset.h"
#include "image/image.h"
#include "io/npy.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "io/tensorio.h"
#include "io/tstream.h"
#include "tile/tile.h"
#include "video/video.h"

#define DEFAULT_TILE_SIZE 256
#define MAX_TILE_SIDE ((long long)1 << 30)

static void usage(FILE *out)
{
    fputs("Usage: sdl-tile split [-s SIZE|--size HxW] [--overlap N|HxW] [--torus [--shift Y,X]]\n"
          "                      [--frames T] [--name NAME] [-o STREAM] INPUT\n"
          "       sdl-tile merge [--blend feather|average] [-o OUTPUT] [STREAM]\n"
          "       sdl-tile grid  [-s SIZE|--size HxW] [--overlap N|HxW] [--torus [--shift Y,X]]\n"
          "                      [--frames T] [--json] [Tx]HxW\n"
          "Cut an image, tensor or video into tiles written as a tensor stream (one tile per\n"
          "record), merge such a stream back, or print a grid's tiles.\n"
          "\n"
          "Grid options (split, grid):\n"
          "  -s, --size N|HxW       tile size in pixels (default 256)\n"
          "      --overlap N|HxW    overlap between neighbouring tiles (default 0); the last\n"
          "                         tile of a row or column is aligned to the canvas edge\n"
          "      --torus            torus grid: no overlap, tiles wrap around the edges; the\n"
          "                         canvas must be a multiple of the tile size\n"
          "      --shift [T,]Y,X    torus grid offset (any integers, reduced modulo the canvas)\n"
          "      --frames T         frames per tile: a video is cut in groups of T frames\n"
          "                         (default 1); a [T,H,W,C] tensor in tiles of T frames\n"
          "                         (default all)\n"
          "split:\n"
          "      --name NAME        the tensor to cut when INPUT holds several\n"
          "merge:\n"
          "      --blend MODE       feather (default: linear ramps across overlaps) or average\n"
          "Common options:\n"
          "  -o, --output FILE      output (default -, stdout; binary is never written to a\n"
          "                         terminal). merge picks the format from the extension:\n"
          "                         .npy/.npz/.safetensors, .mp4/.mov/.mkv or a %d pattern or\n"
          "                         dir/ for video, anything else an image (.png, .jpg...)\n"
          "      --json             print a summary as JSON (on stderr when data goes to stdout)\n"
          "  -q, --quiet            no progress bar\n"
          "      --threads N        threads for merging (default: SDL_THREADS, else all cores)\n"
          "  -h, --help             show this help;  -V, --version  show the version\n"
          "Exit status: 0 success, 1 bad data or a runtime failure, 2 usage error.\n",
          out);
}

enum {
    OPT_OVERLAP = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_TORUS,
    OPT_SHIFT,
    OPT_FRAMES,
    OPT_NAME,
    OPT_BLEND
};

static const struct option long_options[] = {
    {"size", required_argument, NULL, 's'},
    {"overlap", required_argument, NULL, OPT_OVERLAP},
    {"torus", no_argument, NULL, OPT_TORUS},
    {"shift", required_argument, NULL, OPT_SHIFT},
    {"frames", required_argument, NULL, OPT_FRAMES},
    {"name", required_argument, NULL, OPT_NAME},
    {"blend", required_argument, NULL, OPT_BLEND},
    CLI_COMMON_LONG_OPTIONS,
    {0, 0, 0, 0},
};

/* ---- option values ---------------------------------------------------------------- */

/* What the grid options asked for. */
typedef struct grid_spec {
    int64_t size[2];    /* tile h, w */
    int64_t overlap[2]; /* h, w */
    int overlap_given, torus, shift_given;
    int64_t shift[3];   /* t, h, w */
    int64_t frames;     /* 0 = not given */
} grid_spec;

/* "N" (both axes) or "HxW"; each value in [min, MAX_TILE_SIDE]. */
static int parse_pair(const sdl_cli *cli, const char *option, const char *text, long long min,
                      int64_t out[2])
{
    int count;
    if (!cli_parse_int_list(cli, option, text, 'x', 1, 2, min, MAX_TILE_SIDE, "N or HxW", out,
                            &count))
        return 0;
    if (count == 1)
        out[1] = out[0];
    return 1;
}

/* "Y,X" or "T,Y,X": any integers. */
static int parse_shift(const sdl_cli *cli, const char *text, int64_t shift[3])
{
    int64_t values[3];
    int count;
    if (!cli_parse_int_list(cli, "--shift", text, ',', 2, 3, INT64_MIN, INT64_MAX, "Y,X or T,Y,X",
                            values, &count))
        return 0;
    shift[0] = count == 3 ? values[0] : 0;
    shift[1] = values[count - 2];
    shift[2] = values[count - 1];
    return 1;
}

/* Handle a grid option; 1 if it was one (check cli->exit_now). */
static int grid_option(sdl_cli *cli, int opt, const char *arg, grid_spec *spec)
{
    long value;
    int ok = 1;
    switch (opt) {
    case 's': ok = parse_pair(cli, "--size", arg, 1, spec->size); break;
    case OPT_OVERLAP:
        ok = parse_pair(cli, "--overlap", arg, 0, spec->overlap);
        spec->overlap_given = 1;
        break;
    case OPT_TORUS: spec->torus = 1; break;
    case OPT_SHIFT:
        ok = parse_shift(cli, arg, spec->shift);
        spec->shift_given = 1;
        break;
    case OPT_FRAMES:
        ok = cli_parse_long(cli, "--frames", arg, 1, 1L << 30, &value);
        spec->frames = value;
        break;
    default: return 0;
    }
    if (!ok) {
        cli->exit_now = 1;
        cli->exit_code = SDL_EXIT_USAGE;
    }
    return 1;
}

static int check_grid_spec(const sdl_cli *cli, const grid_spec *spec)
{
    if (spec->shift_given && !spec->torus)
        return cli_usage_error(cli, "--shift needs --torus (overlap grids start at 0)");
    if (spec->torus && spec->overlap_given)
        return cli_usage_error(cli, "--torus and --overlap exclude each other (torus tiles "
                                    "never overlap)");
    return SDL_EXIT_OK;
}

/* The grid of `spec` over canvas (T, H, W) with tiles of tile_t frames. */
static sdlk_status build_grid(const grid_spec *spec, const int64_t canvas[3], int64_t tile_t,
                              sdlk_tile_grid *grid, sdlk_error *err)
{
    const int64_t tile[3] = {tile_t, spec->size[0], spec->size[1]};
    if (spec->torus)
        return sdlk_tile_grid_torus(grid, canvas, tile, spec->shift, err);
    const int64_t overlap[3] = {0, spec->overlap[0], spec->overlap[1]};
    return sdlk_tile_grid_overlap(grid, canvas, tile, overlap, err);
}

/* ---- JSON and text summaries ------------------------------------------------------ */

static void json_ints(FILE *fp, const char *key, const int64_t *values, int n)
{
    fprintf(fp, "\"%s\": [", key);
    for (int i = 0; i < n; i++)
        fprintf(fp, "%s%lld", i ? ", " : "", (long long)values[i]);
    fputs("]", fp);
}

/* "mode", "canvas", "tile", "overlap", "shift", "count", "tiles" members of a grid. */
static void json_grid(FILE *fp, const sdlk_tile_grid *grid)
{
    fprintf(fp, "\"mode\": \"%s\", ", sdlk_tile_mode_name(grid->mode));
    json_ints(fp, "canvas", grid->canvas, 3);
    fputs(", ", fp);
    json_ints(fp, "tile", grid->tile, 3);
    fputs(", ", fp);
    json_ints(fp, "overlap", grid->overlap, 3);
    fputs(", ", fp);
    json_ints(fp, "shift", grid->shift, 3);
    fputs(", ", fp);
    json_ints(fp, "count", grid->count, 3);
    fprintf(fp, ", \"tiles\": %lld", (long long)sdlk_tile_grid_count(grid));
}

/* Summaries go to stdout unless the data does. */
static FILE *summary_stream(const char *data_path)
{
    return sdlk_path_is_stdio(data_path) ? stderr : stdout;
}

static int refuse_terminal(const sdl_cli *cli, const char *path)
{
    if (sdlk_path_is_stdio(path) && isatty(STDOUT_FILENO))
        return cli_usage_error(cli, "refusing to write binary data to a terminal; use -o FILE or "
                                    "a pipe");
    return SDL_EXIT_OK;
}

/* ---- split ------------------------------------------------------------------------ */

typedef struct splitter {
    sdl_cli *cli;
    const grid_spec *spec;
    sdlk_outfile out;
    const char *out_name; /* for messages */
    sdlk_progress progress;
    sdlk_tile_grid grid;  /* of the last canvas cut */
    sdlk_tile_canvas canvas;
    int64_t tiles, groups, bytes;
} splitter;

/* Cut `canvas` on the grid of the splitter's spec and write one record per tile. */
static sdlk_status split_canvas(splitter *s, const sdlk_tensor *canvas, const sdlk_tile_canvas *info,
                                const char *input_name, sdlk_error *err)
{
    int64_t frames = info->rank == 4 ? canvas->shape[0] : 1;
    const int64_t dims[3] = {frames, canvas->shape[info->rank - 3], canvas->shape[info->rank - 2]};
    int64_t tile_t = info->rank == 3 ? 1
                     : info->source == SDLK_TILE_SOURCE_VIDEO || !s->spec->frames ? frames
                                                                                  : s->spec->frames;
    sdlk_status st = build_grid(s->spec, dims, tile_t, &s->grid, err);
    if (st) {
        sdlk_error_prefix(err, "%s", input_name);
        return st;
    }
    s->canvas = *info;
    int64_t count = sdlk_tile_grid_count(&s->grid);
    for (int64_t index = 0; index < count && !st; index++) {
        sdlk_tensor tile;
        sdlk_tensor_set record;
        sdlk_tile_rect rect;
        sdlk_tensor_init(&tile);
        sdlk_tensor_set_init(&record);
        sdlk_tile_grid_rect(&s->grid, index, &rect);
        st = sdlk_tile_extract(canvas, &s->grid, index, &tile, err);
        int64_t tile_bytes = (int64_t)sdlk_tensor_nbytes(&tile);
        if (!st)
            st = sdlk_tile_record_make(&s->grid, &rect, info, &tile, &record, err);
        if (!st)
            st = sdlk_tstream_write(s->out.fp, &record, s->out_name, err);
        sdlk_tensor_free(&tile);
        sdlk_tensor_set_free(&record);
        s->tiles++;
        s->bytes += tile_bytes;
        sdlk_progress_update(&s->progress, s->tiles);
    }
    s->groups++;
    return st;
}

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

/* Parse the tensor file held in `bytes` (format by magic). */
static sdlk_status parse_tensor_file(sdlk_storage *bytes, sdlk_tensor_format format,
                                     const char *input, sdlk_tensor_set *set, sdlk_error *err)
{
    size_t size = sdlk_storage_size(bytes);
    if (format == SDLK_FORMAT_NPZ)
        return sdlk_npz_parse(bytes, input, set, err);
    if (format == SDLK_FORMAT_SAFETENSORS)
        return sdlk_safetensors_parse(bytes, 0, size, input, set, err);
    sdlk_tensor tensor;
    sdlk_status st = sdlk_npy_parse(bytes, 0, size, input, &tensor, err);
    if (!st) {
        st = sdlk_tensor_set_add(set, "arr_0", &tensor, err);
        sdlk_tensor_free(&tensor);
    }
    return st;
}

static sdlk_status split_image(splitter *s, sdlk_storage *bytes, const char *input, sdlk_error *err)
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
    st = split_canvas(s, &image, &canvas, input, err);
    sdlk_tensor_free(&image);
    return st;
}

static sdlk_status split_tensor(splitter *s, sdlk_storage *bytes, sdlk_tensor_format format,
                                const char *input, const char *name, sdlk_error *err)
{
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_status st = parse_tensor_file(bytes, format, input, &set, err);
    const sdlk_tensor *tensor = NULL;
    const char *tensor_name = NULL;
    if (!st)
        st = pick_tensor(&set, name, input, &tensor, &tensor_name, err);
    if (!st) {
        sdlk_tile_canvas canvas = {.rank = tensor->ndim, .channels = tensor->shape[tensor->ndim - 1],
                                   .dtype = tensor->dtype, .source = SDLK_TILE_SOURCE_TENSOR,
                                   .name = tensor_name};
        st = split_canvas(s, tensor, &canvas, input, err);
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

/* Videos stream: frames are gathered `frames` at a time into one canvas [T,H,W,3], cut,
 * written, and the buffer reused, so memory is one group whatever the length. The last
 * group may be shorter. */
static sdlk_status split_video(splitter *s, const char *input, sdlk_error *err)
{
    sdlk_video_reader *reader;
    sdlk_video_info info;
    sdlk_status st = sdlk_video_open(input, 3, &reader, &info, err);
    if (st)
        return st;
    int64_t per_group = s->spec->frames ? s->spec->frames : 1;
    const int64_t shape[4] = {per_group, info.height, info.width, 3};
    sdlk_tensor group;
    st = sdlk_tensor_alloc(&group, SDLK_U8, 4, shape, err);
    sdlk_tile_canvas canvas = {.rank = 4, .channels = 3, .dtype = SDLK_U8,
                               .source = SDLK_TILE_SOURCE_VIDEO,
                               .fps = info.fps > 0 && info.fps <= 1e6 ? info.fps : 0, .name = ""};
    int64_t filled = 0, frames_read = 0;
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
        canvas.group = s->groups;
        canvas.first_frame = frames_read - filled;
        st = split_canvas(s, &view, &canvas, input, err);
        sdlk_tensor_free(&view);
        filled = 0;
    }
    if (!st && frames_read == 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: the video has no frames", input);
    sdlk_tensor_free(&group);
    sdlk_video_close(reader);
    return st;
}

/* Decide what INPUT is by its first bytes (image, tensor file) and, failing that, hand
 * it to FFmpeg as a video. */
static sdlk_status split_input(splitter *s, const char *input, const char *name, sdlk_error *err)
{
    const char *display = sdlk_path_is_stdio(input) ? "<stdin>" : input;
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
        st = split_image(s, bytes, display, err);
    else if (format != SDLK_FORMAT_UNKNOWN)
        st = split_tensor(s, bytes, format, display, name, err);
    else if (sdlk_path_is_stdio(input))
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: neither an image nor a tensor file (videos must be given as a "
                            "file name)",
                            display);
    else {
        sdlk_storage_release(bytes);
        bytes = NULL;
        st = split_video(s, input, err);
    }
    sdlk_storage_release(bytes);
    return st;
}

static void split_summary(const splitter *s, const char *input, const char *output)
{
    FILE *fp = summary_stream(output);
    fputs("{\"command\": \"split\", \"input\": ", fp);
    cli_json_string(fp, input);
    fputs(", \"output\": ", fp);
    cli_json_string(fp, output);
    fprintf(fp, ", \"source\": \"%s\", \"dtype\": \"%s\", \"channels\": %lld, \"groups\": %lld, ",
            sdlk_tile_source_name(s->canvas.source), sdlk_dtype_name(s->canvas.dtype),
            (long long)s->canvas.channels, (long long)s->groups);
    json_grid(fp, &s->grid);
    fprintf(fp, ", \"records\": %lld, \"tile_bytes\": %lld}\n", (long long)s->tiles,
            (long long)s->bytes);
}

static int cmd_split(sdl_cli *cli, int argc, char **argv)
{
    grid_spec spec = {.size = {DEFAULT_TILE_SIZE, DEFAULT_TILE_SIZE}};
    const char *name = NULL;
    int opt;
    while ((opt = cli_next_option(cli, argc, argv, "s:" CLI_COMMON_SHORT_OPTIONS, long_options,
                                  usage)) != -1) {
        if (grid_option(cli, opt, optarg, &spec)) {
            if (cli->exit_now)
                return cli->exit_code;
        } else if (opt == OPT_NAME) {
            name = optarg;
        } else {
            return cli_usage_error(cli, "split: option '%s' does not apply", argv[optind - 1]);
        }
    }
    if (cli->exit_now)
        return cli->exit_code;
    if (optind != argc - 1)
        return cli_usage_error(cli, "split: expected one INPUT, got %d", argc - optind);
    const char *input = argv[optind], *output = cli->output ? cli->output : "-";
    int rc = check_grid_spec(cli, &spec);
    if (!rc)
        rc = refuse_terminal(cli, output);
    if (rc)
        return rc;

    splitter s = {.cli = cli, .spec = &spec};
    s.out_name = sdlk_path_is_stdio(output) ? "<stdout>" : output;
    sdlk_error err = {0};
    if (cli_output_open(&s.out, output, &err))
        return cli_fail(cli, &err);
    sdlk_progress_start(&s.progress, stderr, cli->quiet, "split", 0);
    sdlk_status st = split_input(&s, input, name, &err);
    sdlk_progress_finish(&s.progress);
    st = cli_output_close(&s.out, st, &err);
    if (st)
        return cli_fail(cli, &err);
    if (cli->json)
        split_summary(&s, input, output);
    return SDL_EXIT_OK;
}

/* ---- merge ------------------------------------------------------------------------ */

typedef enum output_kind { OUTPUT_TENSOR, OUTPUT_IMAGE, OUTPUT_VIDEO } output_kind;

static output_kind output_kind_of(const char *path)
{
    if (sdlk_path_is_stdio(path) || sdlk_tensor_format_from_path(path) != SDLK_FORMAT_UNKNOWN)
        return OUTPUT_TENSOR;
    char ext[16];
    sdlk_path_extension(path, ext, sizeof ext);
    size_t len = strlen(path);
    if (strchr(path, '%') || (len > 0 && path[len - 1] == '/') || strcmp(ext, "mp4") == 0 ||
        strcmp(ext, "mov") == 0 || strcmp(ext, "m4v") == 0 || strcmp(ext, "mkv") == 0)
        return OUTPUT_VIDEO;
    return OUTPUT_IMAGE;
}

/* Where merged canvases go. Images and tensor files are written once at the end (a
 * tensor output of several video groups holds them all); videos get each group's
 * frames as soon as it is complete. */
typedef struct merge_sink {
    output_kind kind;
    const char *path, *display;
    sdlk_tensor *groups; /* converted canvases kept for an image or tensor output */
    int64_t group_count, group_capacity;
    sdlk_video_writer *video;
    int64_t frames;      /* frames (or canvases) written or kept so far */
    int64_t bytes;
} merge_sink;

static sdlk_status sink_keep(merge_sink *sink, sdlk_tensor *canvas, sdlk_error *err)
{
    if (sink->group_count == sink->group_capacity) {
        int64_t capacity = sink->group_capacity ? 2 * sink->group_capacity : 4;
        sdlk_tensor *bigger = realloc(sink->groups, (size_t)capacity * sizeof *bigger);
        if (!bigger)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        sink->groups = bigger;
        sink->group_capacity = capacity;
    }
    sink->groups[sink->group_count++] = *canvas;
    sdlk_tensor_init(canvas);
    return SDLK_OK;
}

static sdlk_status sink_write_frames(merge_sink *sink, const sdlk_tensor *canvas,
                                     const sdlk_tile_canvas *info, sdlk_error *err)
{
    int64_t frames = info->rank == 4 ? canvas->shape[0] : 1;
    int64_t height = canvas->shape[info->rank - 3], width = canvas->shape[info->rank - 2];
    sdlk_status st = SDLK_OK;
    if (canvas->dtype != SDLK_U8 || (info->channels != 1 && info->channels != 3))
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s: video frames must be u8 with 1 or 3 channels, the canvas is %s "
                              "with %lld",
                              sink->display, sdlk_dtype_name(canvas->dtype),
                              (long long)info->channels);
    if (!sink->video) {
        sdlk_video_write_opts opts;
        sdlk_video_write_opts_init(&opts);
        opts.fps = info->fps;
        st = sdlk_video_writer_open(sink->path, (int)width, (int)height, (int)info->channels,
                                    &opts, &sink->video, err);
    }
    const int64_t frame_shape[3] = {height, width, info->channels};
    size_t frame_bytes = (size_t)(height * width * info->channels);
    for (int64_t t = 0; t < frames && !st; t++) {
        sdlk_tensor frame;
        st = sdlk_tensor_borrow(&frame, SDLK_U8, 3, frame_shape, canvas->data + t * frame_bytes, err);
        if (!st)
            st = sdlk_video_write_frame(sink->video, &frame, err);
    }
    return st;
}

/* Take a merged f32 canvas: restore the source dtype and write or keep it. */
static sdlk_status sink_put(merge_sink *sink, const sdlk_tensor *merged,
                            const sdlk_tile_canvas *info, sdlk_error *err)
{
    sdlk_tensor canvas;
    sdlk_tensor_init(&canvas);
    sdlk_status st = sdlk_tensor_convert(&canvas, merged, info->dtype, err);
    if (st)
        return st;
    sink->bytes += (int64_t)sdlk_tensor_nbytes(&canvas);
    sink->frames += info->rank == 4 ? canvas.shape[0] : 1;
    if (sink->kind == OUTPUT_VIDEO)
        st = sink_write_frames(sink, &canvas, info, err);
    else if (sink->kind == OUTPUT_IMAGE && sink->group_count > 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: the stream holds several groups of frames; an image holds one "
                            "(write .npy or a video)",
                            sink->display);
    else
        st = sink_keep(sink, &canvas, err);
    sdlk_tensor_free(&canvas);
    return st;
}

/* One tensor from the kept canvases: the canvas itself, or the groups' frames joined
 * along T. */
static sdlk_status sink_joined(merge_sink *sink, sdlk_tensor *out, sdlk_error *err)
{
    if (sink->group_count == 1) {
        sdlk_tensor_share(out, &sink->groups[0]);
        return SDLK_OK;
    }
    const sdlk_tensor *first = &sink->groups[0];
    int64_t shape[4] = {0, first->shape[1], first->shape[2], first->shape[3]};
    for (int64_t g = 0; g < sink->group_count; g++)
        shape[0] += sink->groups[g].shape[0];
    sdlk_status st = sdlk_tensor_alloc(out, first->dtype, 4, shape, err);
    uint8_t *dst = st ? NULL : out->data;
    for (int64_t g = 0; g < sink->group_count && !st; g++) {
        size_t nbytes = (size_t)sdlk_tensor_nbytes(&sink->groups[g]);
        memcpy(dst, sink->groups[g].data, nbytes);
        dst += nbytes;
    }
    return st;
}

static sdlk_status sink_finish(merge_sink *sink, const sdlk_tile_canvas *info, sdlk_error *err)
{
    if (sink->kind == OUTPUT_VIDEO) {
        sdlk_video_writer *video = sink->video;
        sink->video = NULL;
        return sdlk_video_writer_finish(video, err);
    }
    sdlk_tensor joined;
    sdlk_tensor_init(&joined);
    sdlk_status st = sink_joined(sink, &joined, err);
    if (!st && sink->kind == OUTPUT_IMAGE) {
        int64_t frames = joined.ndim == 4 ? joined.shape[0] : 1;
        if (frames != 1)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: the canvas has %lld frames; an image holds one (write .npy "
                                "or a video)",
                                sink->display, (long long)frames);
        else if (joined.dtype != SDLK_U8 && joined.dtype != SDLK_U16)
            st = sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                                "%s: the canvas is %s; images hold u8 or u16 (write .npy)",
                                sink->display, sdlk_dtype_name(joined.dtype));
        sdlk_tensor image;
        sdlk_tensor_init(&image);
        if (!st)
            st = sdlk_tensor_reshape(&image, &joined, 3, joined.shape + joined.ndim - 3, err);
        if (!st)
            st = sdlk_image_write(sink->path, &image, NULL, err);
        sdlk_tensor_free(&image);
    } else if (!st) {
        sdlk_tensor_set set;
        sdlk_tensor_set_init(&set);
        st = sdlk_tensor_set_add(&set, info->name && info->name[0] ? info->name : "canvas",
                                 &joined, err);
        if (!st)
            st = sdlk_tensors_save(sink->path, &set, SDLK_FORMAT_UNKNOWN, 0, err);
        sdlk_tensor_set_free(&set);
    }
    sdlk_tensor_free(&joined);
    return st;
}

static void sink_free(merge_sink *sink)
{
    if (sink->video)
        sdlk_video_writer_abort(sink->video);
    for (int64_t g = 0; g < sink->group_count; g++)
        sdlk_tensor_free(&sink->groups[g]);
    free(sink->groups);
    memset(sink, 0, sizeof *sink);
}

/* Reading records: one merger per canvas (per group of a video); groups must come in
 * order, each complete before the next starts. */
typedef struct merge_run {
    const char *name;          /* the stream, for messages */
    sdlk_blend blend;
    sdlk_pool *pool;
    merge_sink sink;
    sdlk_tile_merger merger;
    int merging;               /* merger holds a group */
    sdlk_tile_canvas first;    /* canvas of record 1 (its name is copied below) */
    char first_name[256];
    sdlk_tile_canvas current;  /* canvas of the group being merged */
    uint64_t records;
    int64_t groups;
    sdlk_progress progress;
} merge_run;

/* Blend the current group and hand it to the sink. `where` says which record ended it. */
static sdlk_status finish_group(merge_run *run, const char *where, sdlk_error *err)
{
    sdlk_tensor merged;
    sdlk_tensor_init(&merged);
    sdlk_status st = sdlk_tile_merger_finish(&run->merger, &merged, err);
    if (st)
        sdlk_error_prefix(err, "%s: group %lld (%s)", run->name, (long long)run->current.group,
                          where);
    if (!st)
        st = sink_put(&run->sink, &merged, &run->current, err);
    sdlk_tensor_free(&merged);
    sdlk_tile_merger_free(&run->merger);
    run->merging = 0;
    run->groups++;
    return st;
}

/* Check record `n` against what came before and add its tile. */
static sdlk_status merge_record(merge_run *run, const sdlk_tensor_set *record, sdlk_error *err)
{
    uint64_t n = run->records;
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
        run->first = canvas;
        snprintf(run->first_name, sizeof run->first_name, "%s", canvas.name);
        run->first.name = run->first_name;
    } else if (!sdlk_tile_canvas_same_source(&run->first, &canvas)) {
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: record %llu describes another source than record 1 (%s %s "
                              "%lld channels vs %s %s %lld channels)",
                              run->name, (unsigned long long)n, sdlk_tile_source_name(canvas.source),
                              sdlk_dtype_name(canvas.dtype), (long long)canvas.channels,
                              sdlk_tile_source_name(run->first.source),
                              sdlk_dtype_name(run->first.dtype), (long long)run->first.channels);
    }
    if (run->merging && canvas.group != run->current.group) {
        char where[64];
        snprintf(where, sizeof where, "before record %llu", (unsigned long long)n);
        st = finish_group(run, where, err);
        if (st)
            return st;
    }
    if (!run->merging) {
        int64_t expect_first = run->sink.frames;
        if (canvas.group != run->groups || (run->groups > 0 && canvas.first_frame != expect_first) ||
            (run->groups == 0 && canvas.first_frame != 0))
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: record %llu starts group %lld at frame %lld; expected group "
                                  "%lld at frame %lld",
                                  run->name, (unsigned long long)n, (long long)canvas.group,
                                  (long long)canvas.first_frame, (long long)run->groups,
                                  (long long)(run->groups > 0 ? expect_first : 0));
        st = sdlk_tile_merger_init(&run->merger, &grid, canvas.channels, canvas.rank, run->blend,
                                   run->pool, err);
        if (st) {
            sdlk_error_prefix(err, "%s: record %llu", run->name, (unsigned long long)n);
            return st;
        }
        run->merging = 1;
        run->current = canvas;
        run->current.name = run->first_name;
        run->progress.total = sdlk_tile_grid_count(&grid);
    } else if (!sdlk_tile_grid_equal(&grid, &run->merger.grid)) {
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: record %llu has another grid than the records before it in "
                              "group %lld",
                              run->name, (unsigned long long)n, (long long)canvas.group);
    }
    st = sdlk_tile_merger_add(&run->merger, rect.index, tile, err);
    if (st)
        sdlk_error_prefix(err, "%s: record %llu", run->name, (unsigned long long)n);
    sdlk_progress_update(&run->progress, run->merger.tiles_added);
    return st;
}

static sdlk_status merge_stream(merge_run *run, FILE *fp, sdlk_error *err)
{
    sdlk_tstream_reader reader;
    sdlk_tstream_reader_init(&reader, fp, run->name);
    sdlk_status st = SDLK_OK;
    for (;;) {
        sdlk_tensor_set record;
        st = sdlk_tstream_next(&reader, &record, err);
        if (st == SDLK_ERR_EOF) {
            st = SDLK_OK;
            break;
        }
        if (!st) {
            run->records++;
            st = merge_record(run, &record, err);
        }
        sdlk_tensor_set_free(&record);
        if (st)
            return st;
    }
    if (run->records == 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: no tile records (empty stream)", run->name);
    char where[64];
    snprintf(where, sizeof where, "stream ended after record %llu", (unsigned long long)run->records);
    st = finish_group(run, where, err);
    if (!st)
        st = sink_finish(&run->sink, &run->first, err);
    return st;
}

static void merge_summary(const merge_run *run, const char *output)
{
    FILE *fp = summary_stream(output);
    fputs("{\"command\": \"merge\", \"input\": ", fp);
    cli_json_string(fp, run->name);
    fputs(", \"output\": ", fp);
    cli_json_string(fp, output);
    fprintf(fp,
            ", \"blend\": \"%s\", \"records\": %llu, \"groups\": %lld, \"source\": \"%s\", "
            "\"dtype\": \"%s\", \"channels\": %lld, \"frames\": %lld, \"bytes\": %lld}\n",
            run->blend == SDLK_BLEND_AVERAGE ? "average" : "feather",
            (unsigned long long)run->records, (long long)run->groups,
            sdlk_tile_source_name(run->first.source), sdlk_dtype_name(run->first.dtype),
            (long long)run->first.channels, (long long)run->sink.frames,
            (long long)run->sink.bytes);
}

static int cmd_merge(sdl_cli *cli, int argc, char **argv)
{
    sdlk_blend blend = SDLK_BLEND_FEATHER;
    int opt;
    while ((opt = cli_next_option(cli, argc, argv, CLI_COMMON_SHORT_OPTIONS, long_options,
                                  usage)) != -1) {
        if (opt == OPT_BLEND && strcmp(optarg, "feather") == 0) {
            blend = SDLK_BLEND_FEATHER;
        } else if (opt == OPT_BLEND && strcmp(optarg, "average") == 0) {
            blend = SDLK_BLEND_AVERAGE;
        } else if (opt == OPT_BLEND) {
            return cli_usage_error(cli, "--blend: '%s' is not feather or average", optarg);
        } else {
            return cli_usage_error(cli, "merge: option '%s' does not apply", argv[optind - 1]);
        }
    }
    if (cli->exit_now)
        return cli->exit_code;
    if (argc - optind > 1)
        return cli_usage_error(cli, "merge: expected at most one STREAM, got %d", argc - optind);
    const char *input = optind < argc ? argv[optind] : "-";
    const char *output = cli->output ? cli->output : "-";
    int rc = refuse_terminal(cli, output);
    if (rc)
        return rc;
    sdlk_error err = {0};
    int threads = cli_threads(cli, &err);
    if (threads < 1)
        return cli_fail(cli, &err);
    merge_run run = {.name = sdlk_path_is_stdio(input) ? "<stdin>" : input, .blend = blend};
    run.sink.kind = output_kind_of(output);
    run.sink.path = output;
    run.sink.display = sdlk_path_is_stdio(output) ? "<stdout>" : output;
    FILE *fp = sdlk_file_open_read(input, &err);
    if (!fp)
        return cli_fail(cli, &err);
    run.pool = sdlk_pool_create(threads, &err);
    sdlk_status st = run.pool ? SDLK_OK : err.code;
    sdlk_progress_start(&run.progress, stderr, cli->quiet, "merge", 0);
    if (!st)
        st = merge_stream(&run, fp, &err);
    sdlk_progress_finish(&run.progress);
    if (!st && cli->json)
        merge_summary(&run, output);
    sdlk_tile_merger_free(&run.merger);
    sink_free(&run.sink); /* aborts an unfinished video */
    sdlk_pool_destroy(run.pool);
    sdlk_file_close_read(fp);
    return st ? cli_fail(cli, &err) : SDL_EXIT_OK;
}

/* ---- grid ------------------------------------------------------------------------- */

/* "HxW" or "TxHxW". */
static int parse_canvas(const sdl_cli *cli, const char *text, int64_t canvas[3])
{
    int64_t values[3];
    int count;
    if (!cli_parse_int_list(cli, "grid: canvas", text, 'x', 2, 3, 1, INT64_MAX, "HxW or TxHxW",
                            values, &count))
        return 0;
    canvas[0] = count == 3 ? values[0] : 1;
    canvas[1] = values[count - 2];
    canvas[2] = values[count - 1];
    return 1;
}

static void print_grid(FILE *fp, const sdlk_tile_grid *grid, int json)
{
    int64_t count = sdlk_tile_grid_count(grid);
    if (json) {
        fputs("{", fp);
        json_grid(fp, grid);
        fputs(", \"rects\": [", fp);
    } else {
        fprintf(fp, "# %s grid, canvas %lldx%lldx%lld, tile %lldx%lldx%lld, overlap %lldx%lldx%lld, "
                    "shift %lld,%lld,%lld: %lld tiles\n# index\tt\ty\tx\tframes\theight\twidth\n",
                sdlk_tile_mode_name(grid->mode), (long long)grid->canvas[0],
                (long long)grid->canvas[1], (long long)grid->canvas[2], (long long)grid->tile[0],
                (long long)grid->tile[1], (long long)grid->tile[2], (long long)grid->overlap[0],
                (long long)grid->overlap[1], (long long)grid->overlap[2], (long long)grid->shift[0],
                (long long)grid->shift[1], (long long)grid->shift[2], (long long)count);
    }
    for (int64_t i = 0; i < count; i++) {
        sdlk_tile_rect rect;
        sdlk_tile_grid_rect(grid, i, &rect);
        if (json) {
            fprintf(fp, "%s{\"index\": %lld, ", i ? ", " : "", (long long)i);
            json_ints(fp, "origin", rect.origin, 3);
            fputs(", ", fp);
            json_ints(fp, "size", rect.size, 3);
            fputs("}", fp);
        } else {
            fprintf(fp, "%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\n", (long long)i,
                    (long long)rect.origin[0], (long long)rect.origin[1], (long long)rect.origin[2],
                    (long long)rect.size[0], (long long)rect.size[1], (long long)rect.size[2]);
        }
    }
    if (json)
        fputs("]}\n", fp);
}

static int cmd_grid(sdl_cli *cli, int argc, char **argv)
{
    grid_spec spec = {.size = {DEFAULT_TILE_SIZE, DEFAULT_TILE_SIZE}};
    int opt;
    while ((opt = cli_next_option(cli, argc, argv, "s:" CLI_COMMON_SHORT_OPTIONS, long_options,
                                  usage)) != -1) {
        if (!grid_option(cli, opt, optarg, &spec))
            return cli_usage_error(cli, "grid: option '%s' does not apply", argv[optind - 1]);
        if (cli->exit_now)
            return cli->exit_code;
    }
    if (cli->exit_now)
        return cli->exit_code;
    if (optind != argc - 1)
        return cli_usage_error(cli, "grid: expected one canvas size HxW or TxHxW, got %d "
                                    "arguments",
                               argc - optind);
    int64_t canvas[3];
    if (!parse_canvas(cli, argv[optind], canvas))
        return SDL_EXIT_USAGE;
    int rc = check_grid_spec(cli, &spec);
    if (rc)
        return rc;
    sdlk_tile_grid grid;
    sdlk_error err = {0};
    if (build_grid(&spec, canvas, spec.frames ? spec.frames : canvas[0], &grid, &err))
        return cli_fail(cli, &err);
    const char *output = cli->output ? cli->output : "-";
    if (sdlk_path_is_stdio(output)) {
        print_grid(stdout, &grid, cli->json);
        if (fflush(stdout) != 0 || ferror(stdout))
            return cli_error(cli, "<stdout>: write failed: %s", strerror(errno));
        return SDL_EXIT_OK;
    }
    sdlk_outfile out;
    if (cli_output_open(&out, output, &err))
        return cli_fail(cli, &err);
    print_grid(out.fp, &grid, cli->json);
    return cli_output_close(&out, SDLK_OK, &err) ? cli_fail(cli, &err) : SDL_EXIT_OK;
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-tile");
    if (argc < 2)
        return cli_usage_error(&cli, "missing command: split, merge or grid");
    const char *command = argv[1];
    if (strcmp(command, "split") == 0)
        return cmd_split(&cli, argc - 1, argv + 1);
    if (strcmp(command, "merge") == 0)
        return cmd_merge(&cli, argc - 1, argv + 1);
    if (strcmp(command, "grid") == 0)
        return cmd_grid(&cli, argc - 1, argv + 1);
    /* --help / --version before any command */
    int opt = getopt_long(argc, argv, CLI_COMMON_SHORT_OPTIONS, long_options, NULL);
    if (opt != -1 && cli_common_option(&cli, opt, optarg, usage) && cli.exit_now &&
        (opt == 'h' || opt == 'V' || opt == '?'))
        return cli.exit_code;
    return cli_usage_error(&cli, "unknown command '%s' (split, merge or grid)", command);
}
