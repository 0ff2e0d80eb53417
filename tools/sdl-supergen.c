/* sdl-supergen -- training-free ultra-resolution video: stage 2 of SuperGen over a
 * low-resolution sketch (see man/sdl-supergen.1).
 *
 *   sdl-supergen [--scale F | --size WxH | --preset 2k|4k] [--steps N] [--strength S]
 *                [--model SPEC] [--devices LIST] [--cache on|off] [--tau T] [--alpha A]
 *                [--workers N] [--static] [--chunk N] [--overlap N] [--frames N]
 *                [--seed N] [--trace FILE] [--crf N] [--json] [-q] -o OUTPUT INPUT
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/timer.h"
#include "gen/denoiser.h"
#include "gen/supergen.h"
#include "image/image.h"
#include "video/video.h"

enum {
    OPT_SCALE = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_SIZE,
    OPT_PRESET,
    OPT_STEPS,
    OPT_STRENGTH,
    OPT_MODEL,
    OPT_DEVICES,
    OPT_TILE,
    OPT_CACHE,
    OPT_TAU,
    OPT_ALPHA,
    OPT_WARMUP,
    OPT_WORKERS,
    OPT_STATIC,
    OPT_CHUNK,
    OPT_OVERLAP,
    OPT_FRAMES,
    OPT_SEED,
    OPT_TRACE,
    OPT_CRF,
    OPT_NO_ILVR,
    OPT_MAX_MEMORY,
};

static void usage(FILE *out)
{
    fputs("Usage: sdl-supergen [OPTION]... -o OUTPUT INPUT\n"
          "Upscale a low-resolution video or image (the stage-1 sketch) and refine it with a\n"
          "diffusion model tile by tile on a shifting torus grid (SuperGen stage 2), with a\n"
          "region-aware cache and parallel tile workers. INPUT: any video FFmpeg reads, a\n"
          "directory of PNG frames (DIR/), a frame pattern (f%05d.png) or one image.\n"
          "\n"
          "Size:\n"
          "      --scale F        output = input x F (default 2)\n"
          "      --size WxH       output size\n"
          "      --preset P       2k (2560x1440) or 4k (3840x2160)\n"
          "Diffusion:\n"
          "      --steps N        refinement steps (default 15); 0 = the bicubic upscale only\n"
          "      --strength S     re-noising strength in (0, 1] (default 0.2)\n"
          "      --model SPEC     exemplar[:key=val,...] (built in, default) or exec:COMMAND\n"
          "      --devices LIST   exec: one worker per device, e.g. 0,1,2,3\n"
          "      --tile N         exemplar: native tile height and width (default 64)\n"
          "      --no-ilvr        do not pull the low frequencies back to the sketch\n"
          "      --seed N         noise seed (default 1)\n"
          "Cache and workers:\n"
          "      --cache on|off   region-aware cache (default on)\n"
          "      --tau T          cache threshold (default 0.5)\n"
          "      --alpha A        boost of the most active tiles' threshold (default 0.5)\n"
          "      --warmup N       always-computed first steps (default 5)\n"
          "      --workers N      parallel tile workers (default: --threads)\n"
          "      --static         keep the initial tile blocks (no redistribution)\n"
          "      --trace FILE     per tile and step: computed or skipped, k, E, tau (JSON lines)\n"
          "Video:\n"
          "      --chunk N        frames refined together (default 8, lowered to fit\n"
          "                       --max-memory); memory grows with it\n"
          "      --max-memory M   working-set budget in MiB for choosing the chunk\n"
          "                       (default 2048; the video encoder needs its own on top:\n"
          "                       about 0.9 GiB for H.264 and 1.4 GiB for FFV1 at 4K)\n"
          "      --overlap N      frames shared and blended between chunks (default 2)\n"
          "      --frames N       stop after N input frames\n"
          "      --crf N          H.264 quality 0..51 (default 18)\n"
          "Common:\n"
          "  -o, --output FILE    .mp4 (H.264), .mkv (lossless FFV1), DIR/ or a %d pattern\n"
          "                       (PNG frames), or .png/.jpg for a one-frame input\n"
          "      --json           print a JSON summary on stdout\n"
          "  -q, --quiet          no progress bar\n"
          "      --threads N      threads (default SDL_THREADS, else cores)\n"
          "  -h, --help           show this help and exit\n"
          "  -V, --version        show the version and exit\n"
          "\n"
          "Odd sizes are padded to whole tiles and cropped back. Ctrl-C removes the partial\n"
          "output. Exit status: 0 done, 1 failure, 2 usage error.\n",
          out);
}

static const struct option long_options[] = {
    {"scale", required_argument, NULL, OPT_SCALE},
    {"size", required_argument, NULL, OPT_SIZE},
    {"preset", required_argument, NULL, OPT_PRESET},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"strength", required_argument, NULL, OPT_STRENGTH},
    {"model", required_argument, NULL, OPT_MODEL},
    {"devices", required_argument, NULL, OPT_DEVICES},
    {"tile", required_argument, NULL, OPT_TILE},
    {"cache", required_argument, NULL, OPT_CACHE},
    {"tau", required_argument, NULL, OPT_TAU},
    {"alpha", required_argument, NULL, OPT_ALPHA},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"static", no_argument, NULL, OPT_STATIC},
    {"chunk", required_argument, NULL, OPT_CHUNK},
    {"overlap", required_argument, NULL, OPT_OVERLAP},
    {"frames", required_argument, NULL, OPT_FRAMES},
    {"seed", required_argument, NULL, OPT_SEED},
    {"trace", required_argument, NULL, OPT_TRACE},
    {"crf", required_argument, NULL, OPT_CRF},
    {"no-ilvr", no_argument, NULL, OPT_NO_ILVR},
    {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
    CLI_COMMON_LONG_OPTIONS,
    {0},
};

/* What the command line asked for, before the model is known. */
typedef struct supergen_args {
    double scale;
    int64_t size[2];      /* W, H; 0 = from scale */
    long steps, warmup, workers, chunk, overlap, crf, max_memory_mib;
    int chunk_given;
    long long frames_max;
    double strength, tau, alpha;
    long tile;
    int cache, redistribute, ilvr;
    unsigned long long seed;
    const char *model, *devices, *trace, *input;
} supergen_args;

static volatile sig_atomic_t interrupted;
static void on_interrupt(int sig) { interrupted = sig; }

/* ---- source: a video / frame directory, or one image ---------------------------- */

typedef struct frame_source {
    sdlk_video_reader *video;
    sdlk_tensor image;     /* a one-frame input */
    int image_pending;
    long long frames_left; /* --frames budget (-1 = all) */
} frame_source;

static sdlk_status source_next(void *ctx, sdlk_tensor *frame, sdlk_error *err)
{
    frame_source *src = ctx;
    if (src->frames_left == 0)
        return SDLK_ERR_EOF;
    if (src->frames_left > 0)
        src->frames_left--;
    if (!src->video) {
        if (!src->image_pending)
            return SDLK_ERR_EOF;
        src->image_pending = 0;
        sdlk_tensor_share(frame, &src->image);
        return SDLK_OK;
    }
    return sdlk_video_read_frame(src->video, frame, err);
}

/* An image file (by its magic) is a one-frame sketch; anything else goes to FFmpeg. */
static sdlk_status source_open(frame_source *src, const char *path, long long frames_max,
                               double *fps, sdlk_error *err)
{
    memset(src, 0, sizeof(*src));
    sdlk_tensor_init(&src->image);
    src->frames_left = frames_max;
    uint8_t head[16] = {0};
    FILE *fp = sdlk_path_is_stdio(path) ? NULL : fopen(path, "rb");
    size_t got = fp ? fread(head, 1, sizeof head, fp) : 0;
    if (fp)
        fclose(fp);
    if (got > 0 && sdlk_image_sniff(head, got)) {
        sdlk_tensor img;
        sdlk_status st = sdlk_image_read(path, &img, NULL, err);
        if (st != SDLK_OK)
            return st;
        /* Gray, alpha or 16-bit inputs become 8-bit RGB: the model works on RGB. */
        st = sdlk_image_to_rgb8(&img, &src->image, err);
        sdlk_tensor_free(&img);
        src->image_pending = st == SDLK_OK;
        *fps = 0;
        return st;
    }
    sdlk_video_info info;
    sdlk_status st = sdlk_video_open(path, 3, &src->video, &info, err);
    if (st == SDLK_OK)
        *fps = info.fps;
    return st;
}

static void source_close(frame_source *src)
{
    sdlk_video_close(src->video);
    sdlk_tensor_free(&src->image);
}

/* The tool reads the first frame itself (the output size depends on it), then hands
 * the library a source that replays it before the rest. */
typedef struct replay_source {
    frame_source *src;
    sdlk_tensor *first;
    int replayed;
} replay_source;

static sdlk_status replay_next(void *ctx, sdlk_tensor *frame, sdlk_error *err)
{
    replay_source *r = ctx;
    if (!r->replayed) {
        r->replayed = 1;
        sdlk_tensor_share(frame, r->first);
        return SDLK_OK;
    }
    return source_next(r->src, frame, err);
}

/* ---- sink: a video writer, or one image file ------------------------------------ */

typedef struct frame_sink {
    const char *path;
    int single_image;      /* output is .png / .jpg */
    double fps;
    int crf;
    sdlk_video_writer *video;
    sdlk_tensor image;     /* single-image output: held until the run succeeded */
    int have_image;
} frame_sink;

static int is_image_path(const char *path)
{
    char ext[16];
    sdlk_path_extension(path, ext, sizeof ext);
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

/* Checked before any work: the encoder would refuse odd sizes only at the first frame. */
static int is_h264_path(const char *path)
{
    char ext[16];
    sdlk_path_extension(path, ext, sizeof ext);
    return !strcmp(ext, "mp4") || !strcmp(ext, "mov") || !strcmp(ext, "m4v");
}

static sdlk_status sink_frame(void *ctx, int64_t index, const sdlk_tensor *frame,
                              sdlk_error *err)
{
    frame_sink *sink = ctx;
    if (sink->single_image) {
        /* Written only after the run, so that a second frame leaves nothing behind. */
        if (sink->have_image)
            return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                                  "%s: an image output takes one frame, the input has more "
                                  "(write .mp4, .mkv or DIR/, or use --frames 1)", sink->path);
        sink->have_image = 1;
        sdlk_tensor_share(&sink->image, frame);
        return SDLK_OK;
    }
    if (!sink->video) {
        sdlk_video_write_opts opts;
        sdlk_video_write_opts_init(&opts);
        opts.fps = sink->fps;
        opts.crf = sink->crf;
        sdlk_status st = sdlk_video_writer_open(sink->path, (int)frame->shape[1],
                                                (int)frame->shape[0], 3, &opts, &sink->video,
                                                err);
        if (st != SDLK_OK)
            return st;
    }
    return sdlk_video_write_frame(sink->video, frame, err);
}

/* ---- trace: JSON lines, written atomically -------------------------------------- */

typedef struct trace_out {
    sdlk_outfile file;
    pthread_mutex_t lock;  /* rows may come from several tile workers */
} trace_out;

static void trace_row(void *ctx, const sdlk_refine_trace_row *row)
{
    trace_out *t = ctx;
    pthread_mutex_lock(&t->lock);
    fprintf(t->file.fp,
            "{\"step\":%d,\"tile\":%lld,\"t\":%lld,\"y\":%lld,\"x\":%lld,\"worker\":%d,"
            "\"computed\":%s,\"k\":%.6g,\"E\":%.6g,\"tau\":%.6g}\n",
            row->step, (long long)row->tile, (long long)row->origin[0],
            (long long)row->origin[1], (long long)row->origin[2], row->worker,
            row->computed ? "true" : "false", row->k, row->err, row->tau);
    pthread_mutex_unlock(&t->lock);
}

/* ---- progress and Ctrl-C -------------------------------------------------------- */

typedef struct run_progress {
    sdlk_progress bar;
    int64_t steps_done;
} run_progress;

static int on_step(void *ctx, int step, int steps)
{
    run_progress *p = ctx;
    sdlk_progress_update(&p->bar, ++p->steps_done);
    return interrupted != 0;
}

static int on_chunk(void *ctx, int64_t frames_done, int step, int steps)
{
    return interrupted != 0;
}

/* ---- options -------------------------------------------------------------------- */

static int parse_args(sdl_cli *cli, int argc, char **argv, supergen_args *a)
{
    *a = (supergen_args){.scale = 2.0, .steps = 15, .warmup = 5, .chunk = 8, .overlap = 2,
                         .crf = 18, .max_memory_mib = 2048, .frames_max = -1, .strength = 0.2, .tau = 0.5,
                         .alpha = 0.5, .cache = 1, .redistribute = 1, .ilvr = 1, .seed = 1,
                         .model = "exemplar"};
    int opt;
    long value;
    int64_t pair[2];
    int count;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT_OPTIONS, long_options, NULL)) != -1) {
        if (cli_common_option(cli, opt, optarg, usage)) {
            if (cli->exit_now)
                return 0;
            continue;
        }
        int ok = 1;
        switch (opt) {
        case OPT_SCALE: ok = cli_parse_double(cli, "--scale", optarg, 0.1, 16, &a->scale); break;
        case OPT_SIZE:
            ok = cli_parse_int_list(cli, "--size", optarg, 'x', 2, 2, 1, 16384, "WxH", pair,
                                    &count);
            a->size[0] = pair[0];
            a->size[1] = pair[1];
            break;
        case OPT_PRESET:
            if (!strcmp(optarg, "2k")) {
                a->size[0] = 2560;
                a->size[1] = 1440;
            } else if (!strcmp(optarg, "4k")) {
                a->size[0] = 3840;
                a->size[1] = 2160;
            } else {
                cli_usage_error(cli, "--preset: '%s' is not 2k or 4k", optarg);
                ok = 0;
            }
            break;
        case OPT_STEPS: ok = cli_parse_long(cli, "--steps", optarg, 0, 1000, &a->steps); break;
        case OPT_STRENGTH:
            ok = cli_parse_double(cli, "--strength", optarg, 1e-3, 1.0, &a->strength);
            break;
        case OPT_MODEL: a->model = optarg; break;
        case OPT_DEVICES: a->devices = optarg; break;
        case OPT_TILE: ok = cli_parse_long(cli, "--tile", optarg, 4, 4096, &a->tile); break;
        case OPT_CACHE:
            if (!strcmp(optarg, "on") || !strcmp(optarg, "off"))
                a->cache = !strcmp(optarg, "on");
            else
                ok = (cli_usage_error(cli, "--cache: '%s' is not on or off", optarg), 0);
            break;
        case OPT_TAU: ok = cli_parse_double(cli, "--tau", optarg, 0, 100, &a->tau); break;
        case OPT_ALPHA: ok = cli_parse_double(cli, "--alpha", optarg, 0, 100, &a->alpha); break;
        case OPT_WARMUP: ok = cli_parse_long(cli, "--warmup", optarg, 0, 1000, &a->warmup); break;
        case OPT_WORKERS:
            ok = cli_parse_long(cli, "--workers", optarg, 1, SDLK_REFINE_MAX_WORKERS, &a->workers);
            break;
        case OPT_STATIC: a->redistribute = 0; break;
        case OPT_CHUNK:
            ok = cli_parse_long(cli, "--chunk", optarg, 1, 1024, &a->chunk);
            a->chunk_given = 1;
            break;
        case OPT_MAX_MEMORY:
            ok = cli_parse_long(cli, "--max-memory", optarg, 64, 1L << 24, &a->max_memory_mib);
            break;
        case OPT_OVERLAP: ok = cli_parse_long(cli, "--overlap", optarg, 0, 1023, &a->overlap); break;
        case OPT_FRAMES:
            ok = cli_parse_long(cli, "--frames", optarg, 1, 1L << 30, &value);
            a->frames_max = value;
            break;
        case OPT_SEED:
            ok = cli_parse_long(cli, "--seed", optarg, 0, 0x7fffffffL, &value);
            a->seed = (unsigned long long)value;
            break;
        case OPT_TRACE: a->trace = optarg; break;
        case OPT_CRF: ok = cli_parse_long(cli, "--crf", optarg, 0, 51, &a->crf); break;
        case OPT_NO_ILVR: a->ilvr = 0; break;
        default: cli_usage_error(cli, "unexpected option"); ok = 0;
        }
        if (!ok) {
            cli->exit_now = 1;
            cli->exit_code = SDL_EXIT_USAGE;
            return 0;
        }
    }
    if (optind != argc - 1) {
        cli_usage_error(cli, optind >= argc ? "no input (the low-resolution sketch)"
                                            : "give exactly one input");
        cli->exit_now = 1;
        cli->exit_code = SDL_EXIT_USAGE;
        return 0;
    }
    if (!cli->output) {
        cli_usage_error(cli, "missing -o OUTPUT (.mp4, .mkv, DIR/, a %%d pattern or .png)");
        cli->exit_now = 1;
        cli->exit_code = SDL_EXIT_USAGE;
        return 0;
    }
    if (cli->json && sdlk_path_is_stdio(cli->output)) {
        cli_usage_error(cli, "--json and -o - would both write to standard output");
        cli->exit_now = 1;
        cli->exit_code = SDL_EXIT_USAGE;
        return 0;
    }
    a->input = argv[optind];
    return 1;
}

/* The first frame gives the sketch size; --size / --preset / --scale the output's. */
static void output_size(const supergen_args *a, int64_t in_h, int64_t in_w, int64_t *out_h,
                        int64_t *out_w)
{
    if (a->size[0] > 0) {
        *out_w = a->size[0];
        *out_h = a->size[1];
    } else {
        *out_w = (int64_t)llround((double)in_w * a->scale);
        *out_h = (int64_t)llround((double)in_h * a->scale);
    }
}

static void print_summary(const sdl_cli *cli, const supergen_args *a,
                          const sdlk_supergen_opts *o, const sdlk_supergen_stats *s,
                          double wall_s)
{
    const sdlk_refine_stats *r = &s->refine;
    double skipped = r->tile_evals ? (double)r->skipped / (double)r->tile_evals : 0.0;
    if (cli->json) {
        printf("{\"input\":");
        cli_json_string(stdout, a->input);
        printf(",\"output\":");
        cli_json_string(stdout, cli->output);
        printf(",\"frames\":%lld,\"in_width\":%lld,\"in_height\":%lld,\"width\":%lld,"
               "\"height\":%lld,\"chunks\":%lld,\"steps\":%ld,\"tile_evals\":%lld,"
               "\"computed\":%lld,\"skipped\":%lld,\"skip_fraction\":%.4f,\"moved\":%lld,"
               "\"wall_s\":%.3f,\"workers\":[",
               (long long)s->frames_out, (long long)s->in_w, (long long)s->in_h,
               (long long)o->out_w, (long long)o->out_h, (long long)s->chunks, a->steps,
               (long long)r->tile_evals, (long long)r->computed, (long long)r->skipped,
               skipped, (long long)r->moved, wall_s);
        for (int i = 0; i < r->workers; i++)
            printf("%s{\"busy_s\":%.3f,\"computed\":%lld}", i ? "," : "", r->busy_s[i],
                   (long long)r->computed_by[i]);
        printf("]}\n");
    } else if (!cli->quiet) {
        fprintf(stderr, "%s: %lld frames %lldx%lld -> %lldx%lld in %.2f s; %lld of %lld tile "
                "evaluations computed (%.1f %% skipped by the cache)\n",
                cli->prog, (long long)s->frames_out, (long long)s->in_w, (long long)s->in_h,
                (long long)o->out_w, (long long)o->out_h, wall_s, (long long)r->computed,
                (long long)r->tile_evals, 100.0 * skipped);
        for (int i = 0; i < r->workers; i++)
            fprintf(stderr, "%s: worker %d busy %.2f s, %lld tiles computed\n", cli->prog, i,
                    r->busy_s[i], (long long)r->computed_by[i]);
    }
}

/* The largest chunk whose working set fits the memory budget: per frame, the canvas
 * being refined and its double buffer, with the cache 3 history canvases, at the padded
 * size, plus the output-size frames (upscale, blend, ILVR scratch). An explicit --chunk
 * is kept (the user asked for it); the default is lowered, never below one temporal
 * tile, and the overlap with it. */
static int64_t fit_chunk(const supergen_args *a, const sdlk_denoiser_desc *desc,
                         int64_t out_h, int64_t out_w, int64_t chunk, int64_t overlap)
{
    int64_t core[3];
    sdlk_denoiser_core(desc, core);
    double padded = (double)((out_h + core[1] - 1) / core[1] * core[1]) *
                    (double)((out_w + core[2] - 1) / core[2] * core[2]) * 3 * sizeof(float);
    double frame = (double)out_h * (double)out_w * 3 * sizeof(float);
    double per_frame = padded * (2 + (a->cache ? 3 : 0));
    double fixed = frame * (double)(3 + overlap);
    double budget = (double)a->max_memory_mib * 1048576.0;
    int64_t fit = budget > fixed ? (int64_t)((budget - fixed) / per_frame) : 0;
    fit = fit / core[0] * core[0];
    if (fit < core[0])
        fit = core[0];
    return fit < chunk ? fit : chunk;
}

/* Build the refinement options from the command line and the model's description. */
static sdlk_status make_opts(const supergen_args *a, sdlk_denoiser *model, int threads,
                             sdlk_supergen_opts *o, sdlk_error *err)
{
    sdlk_status st = sdlk_supergen_opts_init(o, &model->desc, err);
    if (st != SDLK_OK)
        return st;
    o->chunk = a->chunk;
    o->overlap = a->overlap < a->chunk ? a->overlap : a->chunk - 1;
    o->upscale_only = a->steps == 0;
    st = sdlk_schedule_init(&o->refine.schedule, model->desc.time,
                            a->steps > 0 ? (int)a->steps : 1, a->strength, err);
    o->refine.cache.enabled = a->cache;
    o->refine.cache.tau = a->tau;
    o->refine.cache.alpha = a->alpha;
    o->refine.cache.warmup = (int)a->warmup;
    o->refine.workers = a->workers > 0 ? (int)a->workers : threads;
    o->refine.redistribute = a->redistribute;
    o->refine.seed = a->seed;
    o->refine.ilvr_factor = a->ilvr ? 0.0 : -1.0;
    return st;
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-supergen");
    supergen_args args;
    if (!parse_args(&cli, argc, argv, &args))
        return cli.exit_code;
    /* Our own handler: the run notices the flag between steps, aborts the writer
     * (removing partial output) and exits non-zero. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    sdlk_error err = {0};
    int threads = cli_threads(&cli, &err);
    if (threads < 1)
        return cli_fail(&cli, &err);
    /* Tile workers are the parallelism; one BLAS thread each avoids oversubscription. */
    openblas_set_num_threads(1);

    frame_source src;
    double fps = 0;
    if (source_open(&src, args.input, args.frames_max, &fps, &err) != SDLK_OK) {
        source_close(&src);
        return cli_fail(&cli, &err);
    }
    sdlk_denoiser *model = NULL;
    if (sdlk_denoiser_open_spec(args.model, args.devices, args.tile, &model, &err) != SDLK_OK) {
        source_close(&src);
        sdlk_error_prefix(&err, "--model %s", args.model);
        return cli_fail(&cli, &err);
    }
    sdlk_supergen_opts opts;
    sdlk_status st = make_opts(&args, model, threads, &opts, &err);
    sdlk_pool *pool = st == SDLK_OK ? sdlk_pool_create(threads, &err) : NULL;
    if (!pool)
        st = err.code ? err.code : SDLK_ERR_NOMEM;

    /* The output size needs the sketch size: peek it from the first frame. */
    sdlk_tensor first;
    sdlk_tensor_init(&first);
    if (st == SDLK_OK)
        st = source_next(&src, &first, &err);
    if (st == SDLK_ERR_EOF)
        st = sdlk_error_set(&err, SDLK_ERR_FORMAT, "%s: no frames", args.input);
    if (st == SDLK_OK)
        output_size(&args, first.shape[0], first.shape[1], &opts.out_h, &opts.out_w);
    if (st == SDLK_OK && is_h264_path(cli.output) && (opts.out_w % 2 || opts.out_h % 2))
        st = sdlk_error_set(&err, SDLK_ERR_ARG,
                            "%s: H.264 needs an even width and height, the output is %lldx%lld "
                            "(choose --size, or write .mkv or PNG frames)",
                            cli.output, (long long)opts.out_w, (long long)opts.out_h);
    if (st == SDLK_OK && !args.chunk_given) {
        int64_t fit = fit_chunk(&args, &model->desc, opts.out_h, opts.out_w, opts.chunk,
                                opts.overlap);
        if (fit < opts.chunk) {
            /* A short chunk keeps a short overlap: each frame is refined
             * chunk / (chunk - overlap) times. */
            int64_t overlap = fit / 3 > 1 ? fit / 3 : 1;
            opts.chunk = fit;
            if (opts.overlap > overlap)
                opts.overlap = overlap;
            if (opts.overlap >= fit)
                opts.overlap = fit - 1;
            if (!cli.quiet)
                fprintf(stderr, "%s: chunks of %lld frames (overlap %lld) to stay within "
                        "--max-memory %ld MiB at %lldx%lld\n", cli.prog, (long long)fit,
                        (long long)opts.overlap, args.max_memory_mib, (long long)opts.out_w,
                        (long long)opts.out_h);
        }
    }

    trace_out trace = {.lock = PTHREAD_MUTEX_INITIALIZER};
    if (st == SDLK_OK && args.trace) {
        st = sdlk_outfile_open(&trace.file, args.trace, &err);
        opts.refine.trace = trace_row;
        opts.refine.trace_ctx = &trace;
    }
    frame_sink sink = {.path = cli.output, .single_image = is_image_path(cli.output),
                       .fps = fps, .crf = (int)args.crf};
    run_progress progress = {0};
    opts.refine.progress = on_step;
    opts.refine.progress_ctx = &progress;
    opts.progress = on_chunk;

    sdlk_supergen_stats stats;
    memset(&stats, 0, sizeof stats);
    uint64_t t0 = sdlk_now_ns();
    if (st == SDLK_OK) {
        replay_source replay = {&src, &first, 0};
        /* Total unknown (the length of a stream is): the bar counts refinement steps. */
        sdlk_progress_start(&progress.bar, stderr, cli.quiet || cli.json, "supergen steps", 0);
        st = sdlk_supergen_run(model, &opts, replay_next, &replay, sink_frame, &sink, pool,
                               &stats, &err);
        sdlk_progress_finish(&progress.bar);
    }
    double wall_s = sdlk_seconds_since(t0);
    if (st == SDLK_OK && sink.video) {
        st = sdlk_video_writer_finish(sink.video, &err);
        sink.video = NULL;
    }
    if (st == SDLK_OK && sink.have_image)
        st = sdlk_image_write(sink.path, &sink.image, NULL, &err);
    if (sink.have_image)
        sdlk_tensor_free(&sink.image);
    if (st == SDLK_OK && args.trace)
        st = sdlk_outfile_commit(&trace.file, &err);
    if (st != SDLK_OK) {
        if (sink.video)
            sdlk_video_writer_abort(sink.video);
        if (args.trace)
            sdlk_outfile_abort(&trace.file);
        if (interrupted)
            sdlk_error_set(&err, SDLK_ERR_IO, "interrupted; partial output removed");
    }
    sdlk_tensor_free(&first);
    sdlk_pool_destroy(pool);
    sdlk_denoiser_destroy(model);
    source_close(&src);
    if (st != SDLK_OK)
        return interrupted ? (cli_fail(&cli, &err), 128 + (int)interrupted) : cli_fail(&cli, &err);
    print_summary(&cli, &args, &opts, &stats, wall_s);
    return SDL_EXIT_OK;
}
