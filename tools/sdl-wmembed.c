/* sdl-wmembed -- mark images with a keyed 48-bit message (see man/sdl-wmembed.1).
 *
 *   sdl-wmembed -k KEY|--key-file F -m HEX [-s STRENGTH] [--tile N] [-o OUT | --out-dir DIR]
 *               [--suffix S] [--force] [--quality Q] [--json] [-q] [--threads N] INPUT...
 *
 * Images are marked in parallel (one image per worker, in batches) and reported in input
 * order: output path, PSNR and SSIM. A file that cannot be read or written is reported
 * on its line and the others go on; the exit status is then 1.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/pool.h"
#include "image/image.h"
#include "inputs.h"
#include "metrics/metrics.h"
#include "wm/wm.h"

enum {
    OPT_KEY_FILE = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_TILE,
    OPT_OUT_DIR,
    OPT_SUFFIX,
    OPT_FORCE,
    OPT_QUALITY,
};

#define DEFAULT_SUFFIX "-wm"
#define DEFAULT_QUALITY 95

static void usage(FILE *out)
{
    fputs("Usage: sdl-wmembed -k KEY|--key-file FILE -m HEX [OPTION]... INPUT...\n"
          "Embed a keyed 48-bit message as an invisible, tile-based watermark in the luma\n"
          "of each image. INPUT: image files, directories (walked recursively) or '-' (a\n"
          "list of paths on stdin).\n"
          "\n"
          "  -k, --key KEY        secret key (any string)\n"
          "      --key-file FILE  read the secret key from FILE (one trailing newline dropped)\n"
          "  -m, --message HEX    the message: 12 hex digits (48 bits)\n"
          "  -s, --strength S     RMS luma change in 8-bit units (default 2.2, ~41 dB PSNR)\n"
          "      --tile N         tile size in pixels, multiple of 8, 32..256 (default 64);\n"
          "                       the detector must use the same\n"
          "  -o, --output FILE    output for a single INPUT\n"
          "      --out-dir DIR    write outputs into DIR (default: beside each input)\n"
          "      --suffix S       added to the output name before the extension (default\n"
          "                       '-wm' beside the input, '' with --out-dir)\n"
          "      --force          allow an output to replace its own input\n"
          "      --quality Q      JPEG quality of JPEG outputs, 1..100 (default 95)\n"
          "      --json           one JSON object per image (JSON lines)\n"
          "  -q, --quiet          print nothing but errors\n"
          "      --threads N      images marked in parallel (default SDL_THREADS, else cores)\n"
          "  -h, --help           show this help and exit\n"
          "  -V, --version        show the version and exit\n"
          "\n"
          "Outputs keep the input's format (PNG stays PNG, 8 or 16 bits; alpha is kept) and\n"
          "are written atomically. Exit status: 0 all images marked, 1 some image failed,\n"
          "2 usage error.\n",
          out);
}

static const struct option long_options[] = {
    {"key", required_argument, NULL, 'k'},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"message", required_argument, NULL, 'm'},
    {"strength", required_argument, NULL, 's'},
    {"tile", required_argument, NULL, OPT_TILE},
    {"out-dir", required_argument, NULL, OPT_OUT_DIR},
    {"suffix", required_argument, NULL, OPT_SUFFIX},
    {"force", no_argument, NULL, OPT_FORCE},
    {"quality", required_argument, NULL, OPT_QUALITY},
    CLI_COMMON_LONG_OPTIONS,
    {0},
};

typedef struct embed_job {
    const sdlk_wm_key *key;
    const uint8_t *message;
    double strength;
    int quality, force;
    const char *output;  /* -o */
    const char *out_dir;
    const char *suffix;
} embed_job;

typedef struct embed_item {
    const char *input;
    char output[PATH_MAX];
    sdlk_status status;
    sdlk_error err;
    double psnr, ssim;
    int width, height;
} embed_item;

/* "dir/name.ext" -> out_dir/name<suffix>.ext, or dir/name<suffix>.ext. */
static int output_path(const embed_job *job, const char *input, char *out, size_t size)
{
    if (job->output)
        return snprintf(out, size, "%s", job->output) < (int)size;
    const char *slash = strrchr(input, '/');
    const char *base = slash ? slash + 1 : input;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    const char *ext = dot && dot != base ? dot : "";
    int n;
    if (job->out_dir)
        n = snprintf(out, size, "%s/%.*s%s%s", job->out_dir, stem, base, job->suffix, ext);
    else
        n = snprintf(out, size, "%.*s%.*s%s%s", (int)(base - input), input, stem, base,
                     job->suffix, ext);
    return n >= 0 && (size_t)n < size;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static void embed_one(const embed_job *job, embed_item *item)
{
    sdlk_error *err = &item->err;
    if (sdlk_path_is_stdio(item->input)) {
        item->status = sdlk_error_set(err, SDLK_ERR_ARG, "-: give image paths (a list of paths "
                                      "on stdin is read with '-')");
        return;
    }
    if (!output_path(job, item->input, item->output, sizeof item->output)) {
        item->status = sdlk_error_set(err, SDLK_ERR_ARG, "%s: output path too long", item->input);
        return;
    }
    if (!job->force && same_file(item->input, item->output)) {
        item->status = sdlk_error_set(err, SDLK_ERR_ARG, "%s: refusing to overwrite the input "
                                      "(use --force, -o, --out-dir or --suffix)", item->input);
        return;
    }
    sdlk_tensor img, marked;
    sdlk_tensor_init(&marked);
    sdlk_image_info info;
    item->status = sdlk_image_read(item->input, &img, &info, err);
    if (item->status != SDLK_OK)
        return;
    item->width = info.width;
    item->height = info.height;
    item->status = sdlk_wm_embed(&img, job->key, job->message, job->strength, &marked, err);
    if (item->status != SDLK_OK) /* lib/wm does not know the file name */
        sdlk_error_prefix(err, "%s", item->input);
    if (item->status == SDLK_OK) {
        sdlk_image_write_opts opts;
        sdlk_image_write_opts_init(&opts);
        opts.jpeg_quality = job->quality;
        opts.chroma = info.subsampling == 444 ? SDLK_CHROMA_444
                    : info.subsampling == 422 ? SDLK_CHROMA_422 : SDLK_CHROMA_420;
        /* JPEG and 8-bit outputs lose precision: measure what was actually written */
        item->status = sdlk_image_write(item->output, &marked, &opts, err);
    }
    if (item->status == SDLK_OK) {
        sdlk_tensor written;
        item->status = sdlk_image_read(item->output, &written, NULL, err);
        if (item->status == SDLK_OK) {
            if (written.dtype == img.dtype && written.shape[2] == img.shape[2]) {
                sdlk_psnr(&img, &written, &item->psnr, NULL);
                sdlk_ssim(&img, &written, &item->ssim, NULL);
            } else { /* e.g. 16-bit or alpha into JPEG: compare with what was embedded */
                sdlk_psnr(&img, &marked, &item->psnr, NULL);
                sdlk_ssim(&img, &marked, &item->ssim, NULL);
            }
            sdlk_tensor_free(&written);
        }
    }
    sdlk_tensor_free(&img);
    sdlk_tensor_free(&marked);
}

typedef struct batch_ctx {
    const embed_job *job;
    embed_item *items;
} batch_ctx;

static void embed_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    batch_ctx *b = ctx;
    for (int64_t i = begin; i < end; i++)
        embed_one(b->job, &b->items[i]);
}

static void report(const sdl_cli *cli, FILE *out, const embed_item *item)
{
    if (item->status != SDLK_OK) {
        fprintf(stderr, "%s: %s\n", cli->prog, item->err.msg);
        if (cli->json) {
            fputs("{\"file\":", out);
            cli_json_string(out, item->input);
            fputs(",\"ok\":false,\"error\":", out);
            cli_json_string(out, item->err.msg);
            fputs("}\n", out);
        }
        return;
    }
    if (cli->json) {
        fputs("{\"file\":", out);
        cli_json_string(out, item->input);
        fputs(",\"ok\":true,\"output\":", out);
        cli_json_string(out, item->output);
        fprintf(out, ",\"width\":%d,\"height\":%d,\"psnr_db\":%.3f,\"ssim\":%.5f}\n",
                item->width, item->height, item->psnr, item->ssim);
    } else if (!cli->quiet) {
        fprintf(out, "%s -> %s  %dx%d  PSNR %.2f dB  SSIM %.4f\n", item->input, item->output,
                item->width, item->height, item->psnr, item->ssim);
    }
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-wmembed");
    const char *key_text = NULL, *key_file = NULL, *message_hex = NULL;
    embed_job job = {.strength = SDLK_WM_DEFAULT_STRENGTH, .quality = DEFAULT_QUALITY};
    long tile = SDLK_WM_DEFAULT_TILE, value;
    const char *suffix = NULL;
    int opt;
    while ((opt = cli_next_option(&cli, argc, argv, "k:m:s:" CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case 'k': key_text = optarg; break;
        case OPT_KEY_FILE: key_file = optarg; break;
        case 'm': message_hex = optarg; break;
        case 's':
            if (!cli_parse_double(&cli, "--strength", optarg, 0.01, 64, &job.strength))
                return SDL_EXIT_USAGE;
            break;
        case OPT_TILE:
            if (!cli_parse_long(&cli, "--tile", optarg, SDLK_WM_MIN_TILE, SDLK_WM_MAX_TILE, &tile))
                return SDL_EXIT_USAGE;
            if (tile % 8)
                return cli_usage_error(&cli, "--tile: %ld is not a multiple of 8", tile);
            break;
        case OPT_OUT_DIR: job.out_dir = optarg; break;
        case OPT_SUFFIX: suffix = optarg; break;
        case OPT_FORCE: job.force = 1; break;
        case OPT_QUALITY:
            if (!cli_parse_long(&cli, "--quality", optarg, 1, 100, &value))
                return SDL_EXIT_USAGE;
            job.quality = (int)value;
            break;
        default:
            return cli_usage_error(&cli, "unexpected option");
        }
    }
    if (cli.exit_now)
        return cli.exit_code;
    if (!key_text == !key_file)
        return cli_usage_error(&cli, "give the key with exactly one of -k KEY or --key-file FILE");
    if (!message_hex)
        return cli_usage_error(&cli, "missing -m HEX (the 48-bit message, 12 hex digits)");
    if (optind >= argc)
        return cli_usage_error(&cli, "no input images");
    if (cli.output && job.out_dir)
        return cli_usage_error(&cli, "-o and --out-dir exclude each other");
    job.output = cli.output;
    job.suffix = suffix ? suffix : job.out_dir ? "" : DEFAULT_SUFFIX;
    uint8_t message[SDLK_WM_MESSAGE_BYTES];
    sdlk_error err = {0};
    if (sdlk_wm_message_parse(message_hex, message, &err) != SDLK_OK)
        return cli_fail(&cli, &err);
    job.message = message;

    cli_inputs inputs = {0};
    if (cli_inputs_collect(&inputs, argv + optind, argc - optind, &err) != SDLK_OK)
        return cli_fail(&cli, &err);
    if (job.output && inputs.count != 1) {
        cli_inputs_free(&inputs);
        return cli_usage_error(&cli, "-o needs exactly one input image (%zu given); use "
                               "--out-dir", inputs.count);
    }
    if (job.out_dir) {
        struct stat sb;
        if (stat(job.out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            cli_inputs_free(&inputs);
            return cli_error(&cli, "%s: not a directory", job.out_dir);
        }
    }
    sdlk_wm_key key;
    sdlk_status st = key_file ? sdlk_wm_key_derive_file(key_file, (int)tile, &key, &err)
                              : sdlk_wm_key_derive(key_text, strlen(key_text), (int)tile, &key,
                                                   &err);
    if (st != SDLK_OK) {
        cli_inputs_free(&inputs);
        return cli_fail(&cli, &err);
    }
    job.key = &key;
    int threads = cli_threads(&cli, &err);
    sdlk_pool *pool = threads > 0 ? sdlk_pool_create(threads, &err) : NULL;
    if (!pool) {
        sdlk_wm_key_free(&key);
        cli_inputs_free(&inputs);
        return cli_fail(&cli, &err);
    }

    int failures = 0;
    size_t batch = (size_t)threads * 4;
    embed_item *items = calloc(batch, sizeof *items);
    if (!items) {
        sdlk_pool_destroy(pool);
        sdlk_wm_key_free(&key);
        cli_inputs_free(&inputs);
        return cli_error(&cli, "out of memory");
    }
    for (size_t start = 0; start < inputs.count; start += batch) {
        size_t n = inputs.count - start < batch ? inputs.count - start : batch;
        memset(items, 0, n * sizeof *items);
        for (size_t i = 0; i < n; i++)
            items[i].input = inputs.paths[start + i];
        batch_ctx ctx = {&job, items};
        sdlk_pool_for(pool, (int64_t)n, 1, embed_range, &ctx);
        for (size_t i = 0; i < n; i++) {
            report(&cli, stdout, &items[i]);
            failures += items[i].status != SDLK_OK;
        }
        fflush(stdout);
    }
    free(items);
    sdlk_pool_destroy(pool);
    sdlk_wm_key_free(&key);
    cli_inputs_free(&inputs);
    if (ferror(stdout))
        return cli_error(&cli, "write error on stdout");
    return failures ? SDL_EXIT_FAIL : SDL_EXIT_OK;
}
