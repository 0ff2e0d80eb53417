/* sdl-wmattack -- apply a chain of image attacks (JPEG, crop, resize, rotation, colour,
 * noise, blur, shift, overlays) to images, for watermark robustness tests (see
 * man/sdl-wmattack.1).
 *
 *   sdl-wmattack -a CHAIN [--seed S] [-o OUT | --out-dir DIR] [--format EXT] INPUT...
 *   sdl-wmattack --list
 *
 * Files go through the staged pipeline of lib/core: read, attack, write, with threads
 * given to the stages by their cost; results are reported in input order.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/file.h"
#include "core/pipeline.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "image/image.h"
#include "wm/attack.h"

static void usage(FILE *out)
{
    fputs("Usage: sdl-wmattack -a CHAIN [--seed S] [-o OUT | --out-dir DIR] [--format EXT]\n"
          "                    [--json] [-q] [--threads N] INPUT...\n"
          "       sdl-wmattack --list\n"
          "Apply a chain of attacks to images (files, directories, or - for stdin) and write\n"
          "the attacked images, e.g. -a crop:0.5,brightness:1.5,jpeg:80.\n"
          "\n"
          "  -a, --attack CHAIN     attacks separated by commas, applied left to right; each\n"
          "                         NAME:ARG[:ARG][@POS] (--list shows them all)\n"
          "      --seed S           seed of the random choices (default 0); each input mixes\n"
          "                         in a hash of its file name\n"
          "      --out-dir DIR      write each input to DIR/NAME.EXT (NAME without its\n"
          "                         extension); needed for several inputs\n"
          "      --format EXT       output format for --out-dir and stdout (default png, lossless,\n"
          "                         so that only the attack changes the pixels)\n"
          "      --list             print the attacks with their syntax and exit\n"
          "Common options:\n"
          "  -o, --output FILE      the output of a single input (default -, stdout, as PNG;\n"
          "                         never a terminal); the format follows the extension\n"
          "      --json             one JSON line per input (on stderr when images go to stdout)\n"
          "  -q, --quiet            no per-input lines\n"
          "      --threads N        threads (default: SDL_THREADS, else all cores)\n"
          "  -h, --help             show this help;  -V, --version  show the version\n"
          "Inputs are never overwritten; outputs are written atomically. A directory stands for\n"
          "its image files (.png .jpg .jpeg .bmp .tif .tiff .webp .gif .ppm .pgm .tga), sorted.\n"
          "Exit status: 0 success, 1 some input failed, 2 usage error.\n",
          out);
}

enum { OPT_SEED = CLI_OPT_FIRST_TOOL_OPTION, OPT_OUT_DIR, OPT_FORMAT, OPT_LIST };

static const struct option long_options[] = {
    {"attack", required_argument, NULL, 'a'},
    {"seed", required_argument, NULL, OPT_SEED},
    {"out-dir", required_argument, NULL, OPT_OUT_DIR},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"list", no_argument, NULL, OPT_LIST},
    CLI_COMMON_LONG_OPTIONS,
    {0, 0, 0, 0},
};

/* ---- the inputs ------------------------------------------------------------------- */

typedef struct job {
    char *input;  /* path or "-" */
    char *output; /* path or "-" */
    uint64_t seed;
    /* filled by the stages */
    sdlk_tensor image, attacked;
    double seconds;
    uint64_t start_ns;
} job;

typedef struct job_list {
    job *items;
    size_t count, capacity;
} job_list;

static int push_input(job_list *list, const char *path)
{
    if (list->count == list->capacity) {
        size_t cap = list->capacity ? list->capacity * 2 : 16;
        job *grown = realloc(list->items, cap * sizeof *grown);
        if (!grown)
            return 0;
        list->items = grown;
        list->capacity = cap;
    }
    job *j = &list->items[list->count++];
    memset(j, 0, sizeof *j);
    j->input = strdup(path);
    return j->input != NULL;
}

static int is_image_name(const char *name)
{
    static const char *const exts[] = {"png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp",
                                       "gif", "ppm", "pgm", "tga"};
    char ext[16];
    sdlk_path_extension(name, ext, sizeof ext);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcmp(ext, exts[i]))
            return 1;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's image files, sorted (non-recursive). */
static sdlk_status expand_dir(job_list *list, const char *dir, sdlk_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return sdlk_error_errno(err, errno, "%s", dir);
    char **names = NULL;
    size_t count = 0, cap = 0;
    sdlk_status st = SDLK_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *grown);
            if (!grown) {
                st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", dir);
                break;
            }
            names = grown;
        }
        names[count] = strdup(e->d_name);
        if (!names[count++])
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", dir);
    }
    closedir(d);
    if (!st)
        qsort(names, count, sizeof *names, compare_names);
    for (size_t i = 0; i < count; i++) {
        if (!st) {
            size_t len = strlen(dir) + strlen(names[i]) + 2;
            char *path = malloc(len);
            if (!path || !push_input(list, (snprintf(path, len, "%s%s%s", dir,
                                                     dir[strlen(dir) - 1] == '/' ? "" : "/",
                                                     names[i]),
                                            path)))
                st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", dir);
            free(path);
        }
        free(names[i]);
    }
    free(names);
    return st;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* DIR/NAME.EXT for an input. */
static char *output_in_dir(const char *dir, const char *input, const char *ext)
{
    const char *base = sdlk_path_is_stdio(input) ? "stdin" : base_name(input);
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    size_t len = strlen(dir) + (size_t)stem + strlen(ext) + 3;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%s/%.*s.%s", dir, stem, base, ext);
    return out;
}

/* ---- the pipeline: read, attack, write --------------------------------------------- */

typedef struct run_ctx {
    sdl_cli *cli;
    job_list *jobs;
    size_t next;
    const sdlk_attack_chain *chain;
    const char *chain_text;
    const char *format; /* for "-" */
    FILE *report;       /* per-input lines */
    int failures;
    dev_t *input_dev;   /* dev/ino of every input file, to never overwrite one */
    ino_t *input_ino;
    size_t n_stat;
} run_ctx;

static sdlk_status source_next(void *vctx, void **item, sdlk_error *err)
{
    run_ctx *ctx = vctx;
    if (ctx->next >= ctx->jobs->count)
        return SDLK_ERR_EOF;
    *item = &ctx->jobs->items[ctx->next++];
    return SDLK_OK;
}

static sdlk_status stage_read(void *vctx, void *item, int worker, sdlk_error *err)
{
    job *j = item;
    j->start_ns = sdlk_now_ns();
    sdlk_tensor_init(&j->image);
    sdlk_tensor_init(&j->attacked);
    return sdlk_image_read(j->input, &j->image, NULL, err);
}

static sdlk_status stage_attack(void *vctx, void *item, int worker, sdlk_error *err)
{
    run_ctx *ctx = vctx;
    job *j = item;
    sdlk_status st = sdlk_attack_chain_apply(ctx->chain, &j->image, j->seed, &j->attacked, err);
    if (st)
        sdlk_error_prefix(err, "%s", sdlk_path_is_stdio(j->input) ? "stdin" : j->input);
    sdlk_tensor_free(&j->image);
    return st;
}

static int is_an_input(const run_ctx *ctx, const char *path)
{
    struct stat sb;
    if (sdlk_path_is_stdio(path) || stat(path, &sb))
        return 0;
    for (size_t i = 0; i < ctx->n_stat; i++)
        if (ctx->input_dev[i] == sb.st_dev && ctx->input_ino[i] == sb.st_ino)
            return 1;
    return 0;
}

static sdlk_status stage_write(void *vctx, void *item, int worker, sdlk_error *err)
{
    run_ctx *ctx = vctx;
    job *j = item;
    sdlk_status st;
    if (is_an_input(ctx, j->output)) {
        st = sdlk_error_set(err, SDLK_ERR_ARG, "%s: refusing to overwrite an input (%s)",
                            j->input, j->output);
    } else {
        sdlk_image_write_opts opts;
        sdlk_image_write_opts_init(&opts);
        if (sdlk_path_is_stdio(j->output))
            opts.format = ctx->format;
        st = sdlk_image_write(j->output, &j->attacked, &opts, err);
    }
    j->seconds = sdlk_seconds_since(j->start_ns);
    return st;
}

static sdlk_status sink_put(void *vctx, void *item, sdlk_status status, const sdlk_error *item_err,
                            int failed_stage, sdlk_error *err)
{
    run_ctx *ctx = vctx;
    job *j = item;
    const char *shown = sdlk_path_is_stdio(j->input) ? "-" : j->input;
    if (status) {
        ctx->failures++;
        fprintf(stderr, "%s: %s\n", ctx->cli->prog, item_err->msg);
        if (ctx->cli->json && !ctx->cli->quiet) {
            fputs("{\"input\": ", ctx->report);
            cli_json_string(ctx->report, shown);
            fputs(", \"ok\": false, \"error\": ", ctx->report);
            cli_json_string(ctx->report, item_err->msg);
            fputs("}\n", ctx->report);
        }
    } else if (!ctx->cli->quiet) {
        long long h = j->attacked.shape[0], w = j->attacked.shape[1];
        if (ctx->cli->json) {
            fputs("{\"input\": ", ctx->report);
            cli_json_string(ctx->report, shown);
            fputs(", \"output\": ", ctx->report);
            cli_json_string(ctx->report, j->output);
            fputs(", \"chain\": ", ctx->report);
            cli_json_string(ctx->report, ctx->chain_text);
            fprintf(ctx->report,
                    ", \"seed\": %llu, \"width\": %lld, \"height\": %lld, \"ok\": true, "
                    "\"seconds\": %.6f}\n",
                    (unsigned long long)j->seed, w, h, j->seconds);
        } else {
            fprintf(ctx->report, "%s -> %s (%lldx%lld)\n", shown, j->output, w, h);
        }
    }
    fflush(ctx->report);
    sdlk_tensor_free(&j->image);
    sdlk_tensor_free(&j->attacked);
    return status == SDLK_ERR_NOMEM ? sdlk_error_set(err, SDLK_ERR_NOMEM, "%s", item_err->msg)
                                    : SDLK_OK;
}

static void discard_job(void *vctx, void *item)
{
    job *j = item;
    sdlk_tensor_free(&j->image);
    sdlk_tensor_free(&j->attacked);
}

/* ---- main -------------------------------------------------------------------------- */

static void print_list(void)
{
    const sdlk_attack_doc *docs = sdlk_attack_docs();
    for (int k = 0; k < SDLK_ATTACK_KIND_COUNT; k++)
        printf("%-34s %s\n", docs[k].syntax, docs[k].description);
    puts("POS: @center (default), @random (seeded) or @X,Y (top-left corner, pixels).\n"
         "Chain: attacks separated by commas, e.g. crop:0.5,brightness:1.5,jpeg:80");
}

static void free_jobs(job_list *jobs)
{
    for (size_t i = 0; i < jobs->count; i++) {
        free(jobs->items[i].input);
        free(jobs->items[i].output);
    }
    free(jobs->items);
}

static int compare_outputs(const void *a, const void *b)
{
    return strcmp((*(job *const *)a)->output, (*(job *const *)b)->output);
}

/* Two inputs that would write the same output (a.png and a.jpg into one directory). */
static int check_collisions(const sdl_cli *cli, job_list *jobs)
{
    job **order = malloc(jobs->count * sizeof *order + 1);
    if (!order)
        return cli_error(cli, "out of memory");
    for (size_t i = 0; i < jobs->count; i++)
        order[i] = &jobs->items[i];
    qsort(order, jobs->count, sizeof *order, compare_outputs);
    int rc = SDL_EXIT_OK;
    for (size_t i = 1; i < jobs->count && !rc; i++)
        if (!strcmp(order[i]->output, order[i - 1]->output))
            rc = cli_usage_error(cli, "inputs %s and %s would both write %s", order[i - 1]->input,
                                 order[i]->input, order[i]->output);
    free(order);
    return rc;
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-wmattack");
    const char *chain_text = NULL, *out_dir = NULL, *format = "png";
    uint64_t seed = 0;
    int list = 0, opt;
    while ((opt = cli_next_option(&cli, argc, argv, "a:" CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case 'a': chain_text = optarg; break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno || optarg[0] == '-')
                return cli_usage_error(&cli, "--seed: '%s' is not a whole number >= 0", optarg);
            seed = v;
            break;
        }
        case OPT_OUT_DIR: out_dir = optarg; break;
        case OPT_FORMAT: format = optarg; break;
        case OPT_LIST: list = 1; break;
        default: return cli_usage_error(&cli, "unknown option");
        }
    }
    if (cli.exit_now)
        return cli.exit_code;
    if (list) {
        print_list();
        return SDL_EXIT_OK;
    }
    if (!chain_text)
        return cli_usage_error(&cli, "missing -a CHAIN (e.g. -a crop:0.5,jpeg:80; --list shows "
                                     "the attacks)");
    sdlk_attack_chain chain;
    sdlk_error err;
    sdlk_error_clear(&err);
    if (sdlk_attack_chain_parse(chain_text, &chain, &err))
        return cli_usage_error(&cli, "%s", err.msg);
    char canonical[1024];
    sdlk_attack_chain_format(&chain, canonical, sizeof canonical);
    if (optind >= argc)
        return cli_usage_error(&cli, "missing INPUT (a file, a directory, or - for stdin)");
    if (out_dir && cli.output)
        return cli_usage_error(&cli, "-o and --out-dir exclude each other");
    if (!*format || strchr(format, '/') || strchr(format, '.'))
        return cli_usage_error(&cli, "--format: '%s' is not a file extension (png, jpg...)",
                               format);
    int threads = cli_threads(&cli, &err);
    if (!threads)
        return cli_fail(&cli, &err);

    /* Expand the inputs: directories become their image files. */
    job_list jobs = {0};
    int rc = SDL_EXIT_OK;
    for (int i = optind; i < argc && !rc; i++) {
        struct stat sb;
        if (!sdlk_path_is_stdio(argv[i]) && stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            sdlk_error_clear(&err);
            if (expand_dir(&jobs, argv[i], &err))
                rc = cli_fail(&cli, &err);
        } else if (!push_input(&jobs, argv[i])) {
            rc = cli_error(&cli, "out of memory");
        }
    }
    int stdin_inputs = 0;
    for (size_t i = 0; i < jobs.count; i++)
        stdin_inputs += sdlk_path_is_stdio(jobs.items[i].input);
    if (!rc && stdin_inputs > 1)
        rc = cli_usage_error(&cli, "stdin (-) can be read only once");
    if (!rc && jobs.count == 0)
        rc = cli_error(&cli, "no image files in %s", argv[optind]);
    if (!rc && jobs.count > 1 && !out_dir)
        rc = cli_usage_error(&cli, "%zu inputs need --out-dir DIR", jobs.count);
    const char *single_output = cli.output ? cli.output : "-";
    if (!rc && !out_dir && sdlk_path_is_stdio(single_output) && isatty(STDOUT_FILENO))
        rc = cli_usage_error(&cli, "refusing to write an image to a terminal; use -o FILE, "
                                   "--out-dir DIR or a pipe");
    if (!rc && out_dir) {
        struct stat sb;
        if (stat(out_dir, &sb) || !S_ISDIR(sb.st_mode))
            rc = cli_error(&cli, "%s: not a directory", out_dir);
    }
    for (size_t i = 0; i < jobs.count && !rc; i++) {
        job *j = &jobs.items[i];
        j->output = out_dir ? output_in_dir(out_dir, j->input, format) : strdup(single_output);
        if (!j->output)
            rc = cli_error(&cli, "out of memory");
        /* the seed of an input: the run's seed mixed with its file name */
        j->seed = seed ^ fnv1a(base_name(j->input));
    }
    if (!rc && out_dir)
        rc = check_collisions(&cli, &jobs);
    if (rc) {
        free_jobs(&jobs);
        return rc;
    }

    run_ctx ctx = {.cli = &cli, .jobs = &jobs, .chain = &chain, .chain_text = canonical,
                   .format = format};
    int images_to_stdout = !out_dir && sdlk_path_is_stdio(single_output);
    ctx.report = images_to_stdout ? stderr : stdout;
    ctx.input_dev = calloc(jobs.count, sizeof *ctx.input_dev);
    ctx.input_ino = calloc(jobs.count, sizeof *ctx.input_ino);
    if (!ctx.input_dev || !ctx.input_ino) {
        free(ctx.input_dev);
        free(ctx.input_ino);
        free_jobs(&jobs);
        return cli_error(&cli, "out of memory");
    }
    for (size_t i = 0; i < jobs.count; i++) {
        struct stat sb;
        if (!sdlk_path_is_stdio(jobs.items[i].input) && stat(jobs.items[i].input, &sb) == 0) {
            ctx.input_dev[ctx.n_stat] = sb.st_dev;
            ctx.input_ino[ctx.n_stat++] = sb.st_ino;
        }
    }
    sdlk_pipeline_stage stages[3] = {
        {"read", stage_read, &ctx}, {"attack", stage_attack, &ctx}, {"write", stage_write, &ctx}};
    sdlk_pipeline_config cfg = SDLK_PIPELINE_CONFIG_INIT;
    cfg.stages = stages;
    cfg.n_stages = 3;
    cfg.source = source_next;
    cfg.source_ctx = &ctx;
    cfg.sink = sink_put;
    cfg.sink_ctx = &ctx;
    cfg.discard = discard_job;
    cfg.threads = threads;
    cfg.in_order = 1;
    cfg.mode = SDLK_PIPE_ADAPTIVE;
    sdlk_error_clear(&err);
    sdlk_status st = sdlk_pipeline_run(&cfg, NULL, &err);
    if (st)
        rc = cli_fail(&cli, &err);
    else if (ctx.failures)
        rc = SDL_EXIT_FAIL;
    free(ctx.input_dev);
    free(ctx.input_ino);
    free_jobs(&jobs);
    return rc;
}
