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
#include "tile/canvas_io.h"
#include "tile/tile.h"

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
    const grid_spec *spec;
    sdlk_outfile out;
    const char *out_name; /* for messages */
    sdlk_progress progress;
    sdlk_tile_grid grid;  /* of the last canvas cut */
    sdlk_tile_canvas canvas;
    int64_t tiles, groups, bytes;
} splitter;

/* One canvas of the input: cut it on the grid of the splitter's spec and write its
 * records. A video's group (--frames frames) is one tile deep in time; a 4-D tensor's
 * tiles are --frames deep, else its whole T. */
static sdlk_status split_canvas(void *ctx, const sdlk_tensor *canvas, const sdlk_tile_canvas *info,
                                const char *input_name, sdlk_error *err)
{
    splitter *s = ctx;
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
    st = sdlk_tile_stream_write(s->out.fp, s->out_name, canvas, info, &s->grid, &s->tiles,
                                &s->bytes, &s->progress, err);
    s->groups++;
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

    splitter s = {.spec = &spec};
    s.out_name = sdlk_path_is_stdio(output) ? "<stdout>" : output;
    sdlk_error err = {0};
    if (cli_output_open(&s.out, output, &err))
        return cli_fail(cli, &err);
    sdlk_progress_start(&s.progress, stderr, cli->quiet, "split", 0);
    sdlk_status st = sdlk_canvas_read(input, name, spec.frames ? spec.frames : 1, split_canvas, &s,
                                      &err);
    sdlk_progress_finish(&s.progress);
    st = cli_output_close(&s.out, st, &err);
    if (st)
        return cli_fail(cli, &err);
    if (cli->json)
        split_summary(&s, input, output);
    return SDL_EXIT_OK;
}

/* ---- merge ------------------------------------------------------------------------ */

static void merge_summary(const char *input, const char *output, sdlk_blend blend,
                          const sdlk_tile_merge_stats *stats, const sdlk_canvas_writer *writer)
{
    FILE *fp = summary_stream(output);
    fputs("{\"command\": \"merge\", \"input\": ", fp);
    cli_json_string(fp, input);
    fputs(", \"output\": ", fp);
    cli_json_string(fp, output);
    fprintf(fp,
            ", \"blend\": \"%s\", \"records\": %llu, \"groups\": %lld, \"source\": \"%s\", "
            "\"dtype\": \"%s\", \"channels\": %lld, \"frames\": %lld, \"bytes\": %lld}\n",
            blend == SDLK_BLEND_AVERAGE ? "average" : "feather",
            (unsigned long long)stats->records, (long long)stats->groups,
            sdlk_tile_source_name(stats->first.source), sdlk_dtype_name(stats->first.dtype),
            (long long)stats->first.channels, (long long)writer->frames,
            (long long)writer->bytes);
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
    const char *name = sdlk_path_display(input);
    sdlk_canvas_writer writer;
    sdlk_canvas_writer_init(&writer, output);
    FILE *fp = sdlk_file_open_read(input, &err);
    if (!fp)
        return cli_fail(cli, &err);
    sdlk_pool *pool = sdlk_pool_create(threads, &err);
    sdlk_status st = pool ? SDLK_OK : err.code;
    sdlk_progress progress;
    sdlk_progress_start(&progress, stderr, cli->quiet, "merge", 0);
    sdlk_tile_merge_stats stats;
    if (!st)
        st = sdlk_tile_stream_merge(fp, name, blend, pool, &writer, &progress, &stats, &err);
    sdlk_progress_finish(&progress);
    if (!st && cli->json)
        merge_summary(name, output, blend, &stats, &writer);
    sdlk_canvas_writer_free(&writer); /* aborts an unfinished video */
    sdlk_pool_destroy(pool);
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
