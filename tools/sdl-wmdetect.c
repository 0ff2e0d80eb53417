/* sdl-wmdetect -- find a keyed watermark in images and read its message (see
 * man/sdl-wmdetect.1).
 *
 *   sdl-wmdetect -k KEY|--key-file F [--fpr P] [--decoys N] [--tile N] [--scales LIST]
 *                [--pipeline MODE] [--device auto|cpu|gpu] [--batch N] [--json]
 *                [-o FILE] [-q] [--threads N] INPUT...
 *
 * Images flow in minibatches through the staged pipeline of lib/core/pipeline.h (a
 * detection run of lib/wm/detect_pipeline.h): decode (read + luma) -> locate (fold +
 * offset/scale search) -> extract (soft bits) -> decide (p-value + RS), each stage given
 * threads in proportion to its measured cost. On the GPU, locate and extract are one
 * stage of CUDA kernels whose workers are the minibatches in flight, one CUDA stream
 * each. One line per image, in input order; an image that cannot be read or is too
 * small is reported on its line and the run goes on (exit status 1 at the end).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/pipeline.h"
#include "image/image.h"
#include "inputs.h"
#include "wm/detect_pipeline.h"
#include "wm/wm.h"

enum {
    OPT_KEY_FILE = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_TILE,
    OPT_FPR,
    OPT_SCALES,
    OPT_PIPELINE,
    OPT_DEVICE,
    OPT_BATCH,
    OPT_READ_SIDE,
    OPT_DECOYS,
};

static void usage(FILE *out)
{
    fputs("Usage: sdl-wmdetect -k KEY|--key-file FILE [OPTION]... INPUT...\n"
          "Detect the watermark of a key in images and read its 48-bit message. INPUT:\n"
          "image files, directories (walked recursively) or '-' (a list of paths on stdin).\n"
          "\n"
          "  -k, --key KEY        secret key used by sdl-wmembed\n"
          "      --key-file FILE  read the key from FILE (one trailing newline dropped)\n"
          "      --fpr P          false-positive rate of the decision (default 1e-6)\n"
          "      --decoys N       decoy pilot vectors that calibrate the p-value of an\n"
          "                       image not detected, so that unmarked images get\n"
          "                       uniform p-values (default 99; 0: the conservative\n"
          "                       Bonferroni bound, ~0.6 ms faster per unmarked image)\n"
          "      --tile N         tile size used at embedding (default 64)\n"
          "      --scales LIST    resize factors searched, comma-separated, tried in order\n"
          "                       (default 1,0.5,2,0.75,1.5)\n"
          "      --pipeline MODE  adaptive (default), fixed or sequential\n"
          "      --device DEV     auto (default: the GPU when one is usable; same\n"
          "                       decisions, p-values and messages as the CPU), cpu, or\n"
          "                       gpu (locate + extract as CUDA kernels; an error when no\n"
          "                       GPU is usable)\n"
          "      --batch N        images per minibatch (default 16 on the GPU, 1 on the CPU)\n"
          "      --read-side N    read only the top-left NxN pixels of larger images (a\n"
          "                       JPEG is decoded no further): faster, same false-positive\n"
          "                       rate, fewer tiles to detect from (default: whole image)\n"
          "      --json           one JSON object per image (JSON lines)\n"
          "  -o, --output FILE    write the report to FILE (atomically) instead of stdout\n"
          "  -q, --quiet          no summary line on stderr\n"
          "      --threads N      worker threads (default SDL_THREADS, else cores)\n"
          "  -h, --help           show this help and exit\n"
          "  -V, --version        show the version and exit\n"
          "\n"
          "Each line: file, detected or not, the p-value (the probability that an image\n"
          "without this key's watermark scores as well, search included), the message when\n"
          "it decodes, pilot agreement, tiles used, offset, scale and time.\n"
          "Exit status: 0 every image examined (whether or not marked), 1 some image could\n"
          "not be read or was too small, 2 usage error.\n",
          out);
}

static const struct option long_options[] = {
    {"key", required_argument, NULL, 'k'},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"fpr", required_argument, NULL, OPT_FPR},
    {"decoys", required_argument, NULL, OPT_DECOYS},
    {"tile", required_argument, NULL, OPT_TILE},
    {"scales", required_argument, NULL, OPT_SCALES},
    {"pipeline", required_argument, NULL, OPT_PIPELINE},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"read-side", required_argument, NULL, OPT_READ_SIDE},
    CLI_COMMON_LONG_OPTIONS,
    {0},
};

/* One image on its way through the stages (lib/wm/detect_pipeline.h); the pipeline's
 * items are minibatches of them. */
typedef sdlk_wm_det_item det_item;

typedef struct det_ctx {
    sdlk_wm_det_ctx det; /* key + parameters the stages read */
    const cli_inputs *inputs;
    size_t next;
    int batch;           /* images per minibatch */
    const sdl_cli *cli;
    FILE *out;
    int64_t images, detected, failed;
} det_ctx;

static sdlk_status source(void *ctx, void **out, sdlk_error *err)
{
    det_ctx *c = ctx;
    if (c->next >= c->inputs->count)
        return SDLK_ERR_EOF;
    size_t left = c->inputs->count - c->next;
    int count = left < (size_t)c->batch ? (int)left : c->batch;
    sdlk_wm_det_batch *batch = calloc(1, sizeof *batch);
    if (batch)
        batch->items = calloc((size_t)count, sizeof *batch->items);
    if (!batch || !batch->items) {
        free(batch);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    batch->count = count;
    for (int i = 0; i < count; i++)
        batch->items[i].path = c->inputs->paths[c->next++];
    *out = batch;
    return SDLK_OK;
}

static void free_batch(void *ctx, void *p)
{
    (void)ctx;
    sdlk_wm_det_batch *batch = p;
    for (int i = 0; i < batch->count; i++)
        sdlk_wm_det_item_clear(&batch->items[i]);
    free(batch->items);
    free(batch);
}

static void print_item(det_ctx *c, const det_item *item, const sdlk_error *item_err)
{
    FILE *out = c->out;
    if (item_err) {
        fprintf(stderr, "%s: %s\n", c->cli->prog, item_err->msg);
        if (c->cli->json) {
            fputs("{\"file\":", out);
            cli_json_string(out, item->path);
            fputs(",\"ok\":false,\"error\":", out);
            cli_json_string(out, item_err->msg);
            fputs("}\n", out);
        } else {
            fprintf(out, "%s: error: %s\n", item->path, item_err->msg);
        }
        return;
    }
    const sdlk_wm_result *r = &item->result;
    const sdlk_wm_sync *s = &item->sync;
    char hex[13] = "";
    if (r->detected && r->message_ok)
        sdlk_wm_message_format(r->message, hex);
    char p_text[32];
    if (r->p_value > 0)
        snprintf(p_text, sizeof p_text, "%.3g", r->p_value);
    else
        snprintf(p_text, sizeof p_text, "1e%.1f", r->log10_p);
    if (c->cli->json) {
        fputs("{\"file\":", out);
        cli_json_string(out, item->path);
        fprintf(out, ",\"ok\":true,\"detected\":%s,\"p_value\":%.6g,\"log10_p\":%.3f,"
                     "\"p_bound\":%.6g,\"decoys\":%d,\"fpr\":%g,\"message\":",
                r->detected ? "true" : "false", r->p_value, r->log10_p, r->p_bound, r->decoys,
                c->det.params.fpr);
        if (hex[0])
            cli_json_string(out, hex);
        else
            fputs("null", out);
        fprintf(out, ",\"pilots_agree\":%d,\"pilots\":%d,\"hypotheses\":%lld,\"tiles\":%.2f,"
                     "\"offset\":[%d,%d],\"scale\":%g,\"rs_corrected\":%d,\"rs_erasures\":%d,"
                     "\"time_ms\":%.3f}\n",
                r->pilot_agree, r->pilots, (long long)s->hypotheses, s->tiles, s->offset_y,
                s->offset_x, s->scale, r->message_ok ? r->rs_corrected : -1,
                r->message_ok ? r->rs_erasures : -1, item->seconds * 1e3);
    } else {
        fprintf(out, "%s: %s  message %s  p %s  pilots %d/%d  tiles %.1f  offset %d,%d  "
                     "scale %g  %.1f ms\n",
                item->path, r->detected ? "detected" : "not detected",
                hex[0] ? hex : r->detected ? "unreadable" : "-", p_text, r->pilot_agree,
                r->pilots, s->tiles, s->offset_y, s->offset_x, s->scale, item->seconds * 1e3);
    }
}

/* A minibatch: each image on its line. A stage failure of the whole minibatch (a CUDA
 * error) is every image's error; out of memory stops the run. */
static sdlk_status sink(void *ctx, void *p, sdlk_status batch_status, const sdlk_error *batch_err,
                        int failed_stage, sdlk_error *err)
{
    (void)failed_stage;
    det_ctx *c = ctx;
    sdlk_wm_det_batch *batch = p;
    int nomem = batch_status == SDLK_ERR_NOMEM;
    for (int i = 0; i < batch->count && !nomem; i++) {
        const det_item *item = &batch->items[i];
        if (item->status == SDLK_ERR_NOMEM) {
            nomem = 1;
            batch_err = &item->error;
            break;
        }
    }
    if (nomem) {
        sdlk_error_set(err, SDLK_ERR_NOMEM, "%s", batch_err->msg);
        free_batch(NULL, batch);
        return SDLK_ERR_NOMEM;
    }
    for (int i = 0; i < batch->count; i++) {
        const det_item *item = &batch->items[i];
        const sdlk_error *item_err = batch_status != SDLK_OK ? batch_err
                                     : item->status != SDLK_OK ? &item->error
                                                               : NULL;
        print_item(c, item, item_err);
        c->images++;
        if (item_err)
            c->failed++;
        else
            c->detected += item->result.detected;
    }
    free_batch(NULL, batch);
    if (ferror(c->out))
        return sdlk_error_set(err, SDLK_ERR_IO, "write error on the report");
    return SDLK_OK;
}

static int parse_scales(const sdl_cli *cli, const char *text, sdlk_wm_detect_params *p)
{
    p->n_scales = 0;
    const char *s = text;
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || !(v >= 0.125 && v <= 8) || (*end && *end != ',') ||
            p->n_scales == SDLK_WM_MAX_SCALES) {
            cli_usage_error(cli, "--scales: '%s' is not a list of 1 to %d factors from 0.125 "
                            "to 8", text, SDLK_WM_MAX_SCALES);
            return 0;
        }
        p->scales[p->n_scales++] = v;
        s = *end ? end + 1 : end;
    }
    if (p->n_scales == 0) {
        cli_usage_error(cli, "--scales: empty list");
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-wmdetect");
    const char *key_text = NULL, *key_file = NULL;
    long tile = SDLK_WM_DEFAULT_TILE;
    det_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    sdlk_wm_detect_params_init(&ctx.det.params);
    /* the GPU engine decides exactly as the CPU path (gpu-check: 28 of 28 identical) */
    ctx.det.params.device = SDLK_DEVICE_AUTO;
    sdlk_pipeline_mode mode = SDLK_PIPE_ADAPTIVE;
    long batch = 0; /* 0: the device's default */
    sdlk_error err = {0};
    int opt;
    while ((opt = cli_next_option(&cli, argc, argv, "k:" CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case 'k': key_text = optarg; break;
        case OPT_KEY_FILE: key_file = optarg; break;
        case OPT_FPR:
            if (!cli_parse_double(&cli, "--fpr", optarg, 1e-300, 1, &ctx.det.params.fpr))
                return SDL_EXIT_USAGE;
            break;
        case OPT_DECOYS: {
            long decoys;
            if (!cli_parse_long(&cli, "--decoys", optarg, 0, SDLK_WM_MAX_DECOYS, &decoys))
                return SDL_EXIT_USAGE;
            ctx.det.params.decoys = (int)decoys;
            break;
        }
        case OPT_TILE:
            if (!cli_parse_long(&cli, "--tile", optarg, SDLK_WM_MIN_TILE, SDLK_WM_MAX_TILE, &tile))
                return SDL_EXIT_USAGE;
            if (tile % 8)
                return cli_usage_error(&cli, "--tile: %ld is not a multiple of 8", tile);
            break;
        case OPT_SCALES:
            if (!parse_scales(&cli, optarg, &ctx.det.params))
                return SDL_EXIT_USAGE;
            break;
        case OPT_PIPELINE:
            if (sdlk_pipeline_mode_parse(optarg, &mode, &err) != SDLK_OK)
                return cli_usage_error(&cli, "--pipeline: '%s' is not adaptive, fixed or "
                                       "sequential", optarg);
            break;
        case OPT_DEVICE:
            if (!cli_parse_device(&cli, optarg, &ctx.det.params.device))
                return SDL_EXIT_USAGE;
            break;
        case OPT_BATCH:
            if (!cli_parse_long(&cli, "--batch", optarg, 1, 4096, &batch))
                return SDL_EXIT_USAGE;
            break;
        case OPT_READ_SIDE: {
            long side;
            if (!cli_parse_long(&cli, "--read-side", optarg, SDLK_WM_MIN_TILE, SDLK_IMAGE_MAX_SIDE,
                                &side))
                return SDL_EXIT_USAGE;
            ctx.det.read_side = (int)side;
            break;
        }
        default:
            return cli_usage_error(&cli, "unexpected option");
        }
    }
    if (cli.exit_now)
        return cli.exit_code;
    if (!key_text == !key_file)
        return cli_usage_error(&cli, "give the key with exactly one of -k KEY or --key-file FILE");
    if (ctx.det.read_side && ctx.det.read_side < tile)
        return cli_usage_error(&cli, "--read-side %d is smaller than one %ld-pixel tile",
                               ctx.det.read_side, tile);
    if (optind >= argc)
        return cli_usage_error(&cli, "no input images");
    int threads = cli_threads(&cli, &err);
    if (threads <= 0)
        return cli_fail(&cli, &err);

    cli_inputs inputs = {0};
    if (cli_inputs_collect(&inputs, argv + optind, argc - optind, &err) != SDLK_OK)
        return cli_fail(&cli, &err);
    sdlk_wm_key key;
    sdlk_status st = key_file ? sdlk_wm_key_derive_file(key_file, (int)tile, &key, &err)
                              : sdlk_wm_key_derive(key_text, strlen(key_text), (int)tile, &key,
                                                   &err);
    if (st != SDLK_OK) {
        cli_inputs_free(&inputs);
        return cli_fail(&cli, &err);
    }
    sdlk_outfile report = {0};
    ctx.out = stdout;
    if (cli.output && !sdlk_path_is_stdio(cli.output)) {
        if (cli_output_open(&report, cli.output, &err) != SDLK_OK) {
            sdlk_wm_key_free(&key);
            cli_inputs_free(&inputs);
            return cli_fail(&cli, &err);
        }
        ctx.out = report.fp;
    }
    ctx.det.key = &key;
    ctx.inputs = &inputs;
    ctx.cli = &cli;

    sdlk_wm_det_run *run = NULL;
    st = sdlk_wm_det_run_open(&ctx.det, threads, &run, &err);
    if (st != SDLK_OK) {
        if (report.fp)
            cli_output_close(&report, st, NULL);
        sdlk_wm_key_free(&key);
        cli_inputs_free(&inputs);
        return cli_fail(&cli, &err);
    }
    int on_gpu = sdlk_wm_det_run_device(run) == SDLK_DEVICE_GPU;
    ctx.batch = batch > 0 ? (int)batch : on_gpu ? SDLK_WM_GPU_BATCH : 1;
    sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES];
    sdlk_pipeline_config config = SDLK_PIPELINE_CONFIG_INIT;
    config.stages = stages;
    config.n_stages = sdlk_wm_det_run_stages(run, stages);
    config.source = source;
    config.source_ctx = &ctx;
    config.sink = sink;
    config.sink_ctx = &ctx;
    config.discard = free_batch;
    config.threads = threads;
    config.mode = mode;
    config.in_order = 1;
    if (ctx.batch > 1) {
        /* minibatches hold many decoded images: keep few waiting between stages */
        config.queue_capacity = 2;
        config.max_in_flight = threads + 2 * config.n_stages;
    }
    sdlk_pipeline_stats stats;
    st = sdlk_pipeline_run(&config, &stats, &err);
    if (report.fp)
        st = cli_output_close(&report, st, &err);
    if (st == SDLK_OK && !report.fp && fflush(stdout) != 0)
        st = sdlk_error_set(&err, SDLK_ERR_IO, "write error on stdout");
    if (st == SDLK_OK && !cli.quiet) {
        char where[96] = "cpu";
        if (on_gpu) /* stage 1 is locate+extract: its workers are the streams in flight */
            snprintf(where, sizeof where, "gpu, minibatches of %d, %.1f streams on average",
                     ctx.batch, stats.n_stages > 1 ? stats.stages[1].mean_threads : 0.0);
        fprintf(stderr, "%s: %lld images, %lld detected, %lld failed; %.1f images/s "
                        "(%s pipeline, %d threads, %s)\n",
                cli.prog, (long long)ctx.images, (long long)ctx.detected,
                (long long)ctx.failed, stats.wall_s > 0 ? (double)ctx.images / stats.wall_s : 0.0,
                sdlk_pipeline_mode_name(stats.mode), stats.threads, where);
    }
    sdlk_pipeline_stats_free(&stats);
    sdlk_wm_det_run_close(run);
    sdlk_wm_key_free(&key);
    cli_inputs_free(&inputs);
    if (st != SDLK_OK)
        return cli_fail(&cli, &err);
    return ctx.failed ? SDL_EXIT_FAIL : SDL_EXIT_OK;
}
