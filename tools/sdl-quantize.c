/* sdl-quantize -- float tensors to n-bit codes (plus scales, zero points and bit planes),
 * ggml Q4_0/Q8_0 blocks, and back (see man/sdl-quantize.1 and sdl-formats(5)).
 *
 *   sdl-quantize [-b BITS] [--scheme symmetric|asymmetric|binary]
 *                [--per-tensor | --per-channel AXIS | --group N [--axis AXIS]]
 *                [--nan error|zero] [--format sdl|q4_0|q8_0]
 *                [--include GLOB]... [--exclude GLOB]... [--stats] [--json] [-o OUT] INPUT
 *   sdl-quantize --dequantize [-o OUT] INPUT
 *
 * Every float tensor of INPUT that the name patterns select is quantized (lib/quant/qfile.h
 * lays it out); the other tensors are copied through unchanged and named on stderr. The
 * output is written only when every tensor succeeded.
 */
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
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
#include "io/tensorio.h"
#include "quant/qfile.h"
#include "quant/quant.h"

#define DEFAULT_BITS 8

static void usage(FILE *out)
{
    fputs("Usage: sdl-quantize [OPTION]... INPUT\n"
          "       sdl-quantize --dequantize [-o OUT] INPUT\n"
          "Quantize the float tensors of INPUT (.npy, .npz, .safetensors or '-') to n-bit codes\n"
          "with scales, zero points and bit planes ready for sdl-qmatmul, or to ggml Q4_0/Q8_0\n"
          "blocks; or restore floats from such a file. The layout is in sdl-formats(5).\n"
          "\n"
          "  -b, --bits N            code width 1..8 (default 8)\n"
          "      --scheme S          symmetric (default; 2..8 bits), asymmetric (zero point),\n"
          "                          or binary ({-1,+1}, 1 bit; the default for -b 1)\n"
          "      --per-tensor        one scale for the whole tensor (default)\n"
          "      --per-channel AXIS  one scale per index along AXIS (negative: from the end)\n"
          "      --group N           one scale per N consecutive values along --axis (default\n"
          "                          the last axis); N must divide that axis\n"
          "      --axis AXIS         the axis of --group\n"
          "      --nan MODE          error (default: refuse NaN/Inf, naming the index) or zero\n"
          "      --format F          sdl (default), q4_0 or q8_0 (ggml blocks of 32 along the\n"
          "                          last axis, which must be a multiple of 32)\n"
          "      --include GLOB      quantize only float tensors whose name matches (repeatable)\n"
          "      --exclude GLOB      copy matching tensors through unchanged (repeatable)\n"
          "      --stats             report RMSE, max abs error, SQNR (dB) and cosine similarity\n"
          "                          of each quantized tensor\n"
          "      --dequantize        restore the float tensors of a quantized INPUT\n"
          "      --json              print the summary (and --stats) as one JSON object\n"
          "  -o, --output FILE       output (default -, stdout; binary is never written to a\n"
          "                          terminal): .safetensors; --dequantize also .npy/.npz\n"
          "  -q, --quiet             no progress bar, no notes about copied tensors\n"
          "      --threads N         threads (default: SDL_THREADS, else all cores)\n"
          "  -h, --help              show this help;  -V, --version  show the version\n"
          "Reports go to stdout, or to stderr when the data does.\n"
          "Exit status: 0 success, 1 bad data or a runtime failure, 2 usage error.\n",
          out);
}

enum {
    OPT_SCHEME = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_PER_TENSOR,
    OPT_PER_CHANNEL,
    OPT_GROUP,
    OPT_AXIS,
    OPT_NAN,
    OPT_FORMAT,
    OPT_INCLUDE,
    OPT_EXCLUDE,
    OPT_STATS,
    OPT_DEQUANTIZE,
};

static const struct option long_options[] = {
    {"bits", required_argument, NULL, 'b'},
    {"scheme", required_argument, NULL, OPT_SCHEME},
    {"per-tensor", no_argument, NULL, OPT_PER_TENSOR},
    {"per-channel", required_argument, NULL, OPT_PER_CHANNEL},
    {"group", required_argument, NULL, OPT_GROUP},
    {"axis", required_argument, NULL, OPT_AXIS},
    {"nan", required_argument, NULL, OPT_NAN},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"include", required_argument, NULL, OPT_INCLUDE},
    {"exclude", required_argument, NULL, OPT_EXCLUDE},
    {"stats", no_argument, NULL, OPT_STATS},
    {"dequantize", no_argument, NULL, OPT_DEQUANTIZE},
    CLI_COMMON_LONG_OPTIONS,
    {0, 0, 0, 0},
};

typedef struct quantize_options {
    sdlk_qformat format;
    sdlk_quant_params params;
    int bits_given, scheme_given, granularity_given, axis_given, format_given, nan_given;
    const char **include, **exclude; /* point into argv */
    size_t include_count, exclude_count;
    int stats, dequantize;
    const char *input, *output;
} quantize_options;

/* What happened to one tensor of the input. */
typedef struct tensor_report {
    const char *name;   /* the input's (or, restored, the quantized tensor's) name */
    const char *action; /* "quantized", "restored" or "copied" */
    char reason[160];   /* why a tensor was copied */
    const sdlk_tensor *source;
    sdlk_quant_stats stats;
    int has_stats;
} tensor_report;

typedef struct quantize_run {
    const sdl_cli *cli;
    const quantize_options *opt;
    const char *input_name, *output_name; /* for messages */
    sdlk_pool *pool;
    sdlk_tensor_set in, out;
    tensor_report *reports;
    size_t report_count;
} quantize_run;

/* ---- options -------------------------------------------------------------------------- */

static int parse_axis(const sdl_cli *cli, const char *option, const char *text, int *axis)
{
    long v;
    if (!cli_parse_long(cli, option, text, -SDLK_MAX_DIMS, SDLK_MAX_DIMS - 1, &v))
        return 0;
    *axis = (int)v;
    return 1;
}

/* Parse argv into opt; returns -1 to go on, else the exit code. */
static int parse_options(sdl_cli *cli, int argc, char **argv, quantize_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->params.bits = DEFAULT_BITS;
    opt->params.axis = -1;
    opt->include = calloc((size_t)argc, sizeof *opt->include);
    opt->exclude = calloc((size_t)argc, sizeof *opt->exclude);
    if (!opt->include || !opt->exclude)
        return cli_error(cli, "out of memory");
    sdlk_error err = {0};
    long v;
    int c;
    while ((c = cli_next_option(cli, argc, argv, "b:" CLI_COMMON_SHORT_OPTIONS,
                                long_options, usage)) != -1) {
        switch (c) {
        case 'b':
            if (!cli_parse_long(cli, "--bits", optarg, 1, 8, &v))
                return SDL_EXIT_USAGE;
            opt->params.bits = (int)v;
            opt->bits_given = 1;
            break;
        case OPT_SCHEME:
            if (sdlk_quant_scheme_parse(optarg, &opt->params.scheme, &err))
                return cli_fail(cli, &err);
            opt->scheme_given = 1;
            break;
        case OPT_PER_TENSOR:
        case OPT_PER_CHANNEL:
        case OPT_GROUP:
            if (opt->granularity_given)
                return cli_usage_error(cli, "give one of --per-tensor, --per-channel, --group");
            opt->granularity_given = 1;
            if (c == OPT_PER_TENSOR) {
                opt->params.granularity = SDLK_QUANT_PER_TENSOR;
            } else if (c == OPT_PER_CHANNEL) {
                opt->params.granularity = SDLK_QUANT_PER_CHANNEL;
                if (!parse_axis(cli, "--per-channel", optarg, &opt->params.axis))
                    return SDL_EXIT_USAGE;
            } else {
                opt->params.granularity = SDLK_QUANT_PER_GROUP;
                if (!cli_parse_long(cli, "--group", optarg, 1, 1L << 40, &v))
                    return SDL_EXIT_USAGE;
                opt->params.group_size = v;
            }
            break;
        case OPT_AXIS:
            if (!parse_axis(cli, "--axis", optarg, &opt->params.axis))
                return SDL_EXIT_USAGE;
            opt->axis_given = 1;
            break;
        case OPT_NAN:
            if (strcmp(optarg, "error") != 0 && strcmp(optarg, "zero") != 0)
                return cli_usage_error(cli, "--nan: '%s' is not error or zero", optarg);
            opt->params.nan_to_zero = strcmp(optarg, "zero") == 0;
            opt->nan_given = 1;
            break;
        case OPT_FORMAT:
            if (sdlk_qformat_parse(optarg, &opt->format, &err))
                return cli_fail(cli, &err);
            opt->format_given = 1;
            break;
        case OPT_INCLUDE: opt->include[opt->include_count++] = optarg; break;
        case OPT_EXCLUDE: opt->exclude[opt->exclude_count++] = optarg; break;
        case OPT_STATS: opt->stats = 1; break;
        case OPT_DEQUANTIZE: opt->dequantize = 1; break;
        default: return cli_usage_error(cli, "unexpected option");
        }
    }
    if (cli->exit_now)
        return cli->exit_code;
    if (optind != argc - 1)
        return cli_usage_error(cli, "expected one INPUT, got %d", argc - optind);
    opt->input = argv[optind];
    opt->output = cli->output ? cli->output : "-";
    return -1;
}

/* Combinations that make no sense, and defaults that depend on other options. */
static int check_options(const sdl_cli *cli, quantize_options *opt)
{
    int shaping = opt->bits_given || opt->scheme_given || opt->granularity_given ||
                  opt->axis_given;
    if (opt->dequantize && (shaping || opt->format_given || opt->nan_given || opt->stats ||
                            opt->include_count || opt->exclude_count))
        return cli_usage_error(cli, "--dequantize takes no quantization options (the file "
                                    "says how it was quantized)");
    if (opt->format != SDLK_QFORMAT_SDL && shaping)
        return cli_usage_error(cli, "--format %s fixes bits, scheme and blocks; drop -b, "
                                    "--scheme, --per-*, --group and --axis",
                               sdlk_qformat_name(opt->format));
    if (opt->axis_given && opt->params.granularity != SDLK_QUANT_PER_GROUP)
        return cli_usage_error(cli, "--axis goes with --group (--per-channel takes its own AXIS)");
    if (opt->params.bits == 1 && !opt->scheme_given)
        opt->params.scheme = SDLK_QUANT_BINARY;
    sdlk_quant_params combo = opt->params;
    combo.granularity = SDLK_QUANT_PER_TENSOR; /* bits and scheme alone, before any shape */
    sdlk_error err = {0};
    if (opt->format == SDLK_QFORMAT_SDL && sdlk_quant_params_check(&combo, 0, NULL, &err))
        return cli_fail(cli, &err);
    sdlk_tensor_format out_format = sdlk_path_is_stdio(opt->output)
                                        ? SDLK_FORMAT_SAFETENSORS
                                        : sdlk_tensor_format_from_path(opt->output);
    if (!opt->dequantize && (out_format == SDLK_FORMAT_NPY || out_format == SDLK_FORMAT_NPZ))
        return cli_usage_error(cli, "%s: quantized tensors need safetensors metadata; write a "
                                    ".safetensors file",
                               opt->output);
    if (sdlk_path_is_stdio(opt->output) && isatty(STDOUT_FILENO))
        return cli_usage_error(cli, "refusing to write binary data to a terminal; use -o FILE or "
                                    "a pipe");
    return -1;
}

/* ---- quantizing and restoring ---------------------------------------------------------- */

static int name_matches(const char *name, const char *const *globs, size_t count,
                        const char **which)
{
    for (size_t i = 0; i < count; i++)
        if (fnmatch(globs[i], name, 0) == 0) {
            *which = globs[i];
            return 1;
        }
    return 0;
}

/* Why tensor `name` is copied rather than quantized (reason filled), or 0 to quantize. */
static int copy_reason(const quantize_run *run, const char *name, const sdlk_tensor *t,
                       char *reason, size_t size)
{
    const quantize_options *opt = run->opt;
    const char *glob;
    char owner[512];
    if (sdlk_qfile_owner(&run->in, name, owner, sizeof owner))
        snprintf(reason, size, "part of the quantized tensor '%s'", owner);
    else if (!sdlk_dtype_is_float(t->dtype))
        snprintf(reason, size, "%s is not a float dtype", sdlk_dtype_name(t->dtype));
    else if (name_matches(name, opt->exclude, opt->exclude_count, &glob))
        snprintf(reason, size, "excluded by '%s'", glob);
    else if (opt->include_count && !name_matches(name, opt->include, opt->include_count, &glob))
        snprintf(reason, size, "matches no --include");
    else
        return 0;
    return 1;
}

static sdlk_status copy_tensor(quantize_run *run, const sdlk_named_tensor *item, sdlk_error *err)
{
    sdlk_tensor view;
    sdlk_tensor_share(&view, &item->tensor);
    return sdlk_tensor_set_add(&run->out, item->name, &view, err);
}

static sdlk_status copy_metadata(quantize_run *run, int keep_quant_keys, sdlk_error *err)
{
    for (size_t i = 0; i < run->in.meta_count; i++) {
        const sdlk_meta_entry *m = &run->in.meta[i];
        if (!keep_quant_keys && sdlk_qfile_meta_name(m->key))
            continue;
        sdlk_status st = sdlk_tensor_set_meta_set(&run->out, m->key, m->value, err);
        if (st)
            return st;
    }
    return SDLK_OK;
}

static sdlk_status quantize_set(quantize_run *run, sdlk_error *err)
{
    const quantize_options *opt = run->opt;
    sdlk_status st = copy_metadata(run, 1, err);
    sdlk_progress progress;
    sdlk_progress_start(&progress, stderr, run->cli->quiet, "quantize", (int64_t)run->in.count);
    for (size_t i = 0; !st && i < run->in.count; i++) {
        const sdlk_named_tensor *item = &run->in.items[i];
        tensor_report *r = &run->reports[run->report_count++];
        r->name = item->name;
        r->source = &item->tensor;
        if (copy_reason(run, item->name, &item->tensor, r->reason, sizeof r->reason)) {
            r->action = "copied";
            st = copy_tensor(run, item, err);
        } else {
            r->action = "quantized";
            r->has_stats = opt->stats;
            st = sdlk_qtensor_add(&run->out, item->name, &item->tensor, opt->format,
                                  &opt->params, run->pool, opt->stats ? &r->stats : NULL, err);
            if (st)
                sdlk_error_prefix(err, "%s: %s", run->input_name, item->name);
        }
        sdlk_progress_update(&progress, (int64_t)i + 1);
    }
    sdlk_progress_finish(&progress);
    return st;
}

static sdlk_status dequantize_set(quantize_run *run, sdlk_error *err)
{
    if (sdlk_qfile_count(&run->in) == 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: no quantized tensors to restore (no '%s*' metadata)",
                              run->input_name, SDLK_QFILE_META_PREFIX);
    sdlk_status st = copy_metadata(run, 0, err);
    char owner[512];
    for (size_t i = 0; !st && i < run->in.count; i++) {
        const sdlk_named_tensor *item = &run->in.items[i];
        if (!sdlk_qfile_owner(&run->in, item->name, owner, sizeof owner)) {
            tensor_report *r = &run->reports[run->report_count++];
            *r = (tensor_report){.name = item->name, .action = "copied", .source = &item->tensor};
            snprintf(r->reason, sizeof r->reason, "not a quantized tensor");
            st = copy_tensor(run, item, err);
            continue;
        }
        if (sdlk_tensor_set_find(&run->out, owner))
            continue; /* restored from an earlier entry */
        sdlk_qtensor q;
        sdlk_tensor restored;
        if ((st = sdlk_qtensor_get(&run->in, owner, run->input_name, &q, err)))
            break;
        if (!(st = sdlk_qtensor_dequantize(&q, run->pool, &restored, err)))
            st = sdlk_tensor_set_add(&run->out, owner, &restored, err);
        sdlk_tensor_free(&restored);
        sdlk_qtensor_free(&q);
        if (!st)
            run->reports[run->report_count++] = (tensor_report){
                .name = run->out.items[run->out.count - 1].name, .action = "restored"};
    }
    /* Metadata naming a tensor none of whose entries exist is damage too. */
    for (size_t i = 0; !st && i < run->in.meta_count; i++) {
        const char *name = sdlk_qfile_meta_name(run->in.meta[i].key);
        if (name && !sdlk_tensor_set_find(&run->out, name)) {
            sdlk_qtensor q;
            st = sdlk_qtensor_get(&run->in, name, run->input_name, &q, err);
            sdlk_qtensor_free(&q);
            if (!st)
                st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: %s was not restored",
                                    run->input_name, name);
        }
    }
    return st;
}

static sdlk_status write_output(const quantize_run *run, sdlk_error *err)
{
    const char *path = run->opt->output;
    sdlk_tensor_format fmt = sdlk_path_is_stdio(path) ? SDLK_FORMAT_SAFETENSORS
                                                      : sdlk_tensor_format_from_path(path);
    if (fmt == SDLK_FORMAT_UNKNOWN)
        fmt = SDLK_FORMAT_SAFETENSORS;
    sdlk_outfile out;
    sdlk_status st = cli_output_open(&out, path, err);
    if (st)
        return st;
    return cli_output_close(&out, sdlk_qfile_write(out.fp, &run->out, fmt, run->output_name, err),
                            err);
}

/* ---- reports ----------------------------------------------------------------------------- */

static json_t *json_number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* What the file says about a quantized tensor: its metadata as JSON. */
static json_t *quant_description(const quantize_run *run, const char *name)
{
    char key[1024];
    snprintf(key, sizeof key, "%s%s", SDLK_QFILE_META_PREFIX, name);
    const char *meta = sdlk_tensor_set_meta_get(&run->out, key);
    return meta ? json_loads(meta, 0, NULL) : NULL;
}

static void print_json(const quantize_run *run, FILE *fp)
{
    json_t *o = json_object(), *tensors = json_array();
    json_object_set_new(o, "input", json_string(run->input_name));
    json_object_set_new(o, "output", json_string(run->output_name));
    json_object_set_new(o, "mode", json_string(run->opt->dequantize ? "dequantize"
                                                                     : "quantize"));
    for (size_t i = 0; i < run->report_count; i++) {
        const tensor_report *r = &run->reports[i];
        json_t *t = json_object();
        json_object_set_new(t, "name", json_string(r->name));
        json_object_set_new(t, "action", json_string(r->action));
        if (strcmp(r->action, "copied") == 0)
            json_object_set_new(t, "reason", json_string(r->reason));
        json_t *desc = strcmp(r->action, "quantized") == 0 ? quant_description(run, r->name)
                                                           : NULL;
        if (desc)
            json_object_update(t, desc);
        json_decref(desc);
        if (r->has_stats) {
            json_object_set_new(t, "rmse", json_number(r->stats.rmse));
            json_object_set_new(t, "max_abs_error", json_number(r->stats.max_abs));
            json_object_set_new(t, "sqnr_db", json_number(r->stats.sqnr_db));
            json_object_set_new(t, "cosine", json_number(r->stats.cosine));
        }
        json_array_append_new(tensors, t);
    }
    json_object_set_new(o, "tensors", tensors);
    json_dumpf(o, fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    fputc('\n', fp);
    json_decref(o);
}

/* "4-bit symmetric, group 32 along axis 1" for the stats table. */
static void describe_quantization(const sdlk_qtensor_info *info, char *buf, size_t size)
{
    const sdlk_quant_params *p = &info->params;
    if (info->format != SDLK_QFORMAT_SDL) {
        snprintf(buf, size, "ggml %s", sdlk_qformat_name(info->format));
    } else if (p->granularity == SDLK_QUANT_PER_TENSOR) {
        snprintf(buf, size, "%d-bit %s, per tensor", p->bits, sdlk_quant_scheme_name(p->scheme));
    } else if (p->granularity == SDLK_QUANT_PER_CHANNEL) {
        snprintf(buf, size, "%d-bit %s, per channel of axis %d", p->bits,
                 sdlk_quant_scheme_name(p->scheme), p->axis);
    } else {
        snprintf(buf, size, "%d-bit %s, group %lld along axis %d", p->bits,
                 sdlk_quant_scheme_name(p->scheme), (long long)p->group_size, p->axis);
    }
}

enum { STATS_COLUMNS = 6 };

static void print_stats_table(const quantize_run *run, FILE *fp)
{
    static const char *const titles[STATS_COLUMNS] = {"name",    "quantization", "rmse",
                                                      "max_abs", "sqnr_db",      "cosine"};
    size_t rows = 0;
    char(*cells)[STATS_COLUMNS][96] = calloc(run->report_count + 1, sizeof *cells);
    if (!cells)
        return;
    for (int c = 0; c < STATS_COLUMNS; c++)
        snprintf(cells[0][c], sizeof cells[0][c], "%s", titles[c]);
    for (size_t i = 0; i < run->report_count; i++) {
        const tensor_report *r = &run->reports[i];
        if (!r->has_stats)
            continue;
        char key[1024];
        snprintf(key, sizeof key, "%s%s", SDLK_QFILE_META_PREFIX, r->name);
        sdlk_qtensor_info info;
        const char *meta = sdlk_tensor_set_meta_get(&run->out, key);
        char(*row)[96] = cells[++rows];
        snprintf(row[0], sizeof row[0], "%s", r->name);
        if (meta && sdlk_qtensor_info_parse(meta, r->name, &info, NULL) == SDLK_OK)
            describe_quantization(&info, row[1], sizeof row[1]);
        snprintf(row[2], sizeof row[2], "%.6g", r->stats.rmse);
        snprintf(row[3], sizeof row[3], "%.6g", r->stats.max_abs);
        snprintf(row[4], sizeof row[4], "%.2f", r->stats.sqnr_db);
        snprintf(row[5], sizeof row[5], "%.6f", r->stats.cosine);
    }
    int width[STATS_COLUMNS] = {0};
    for (size_t r = 0; r <= rows; r++)
        for (int c = 0; c < STATS_COLUMNS; c++)
            if ((int)strlen(cells[r][c]) > width[c])
                width[c] = (int)strlen(cells[r][c]);
    for (size_t r = 0; r <= rows; r++) {
        fprintf(fp, "%-*s  %-*s", width[0], cells[r][0], width[1], cells[r][1]);
        for (int c = 2; c < STATS_COLUMNS; c++)
            fprintf(fp, "  %*s", width[c], cells[r][c]);
        fputc('\n', fp);
    }
    free(cells);
}

static void report(const quantize_run *run)
{
    FILE *fp = sdlk_path_is_stdio(run->opt->output) ? stderr : stdout;
    if (run->cli->json) {
        print_json(run, fp);
        return;
    }
    if (run->opt->stats)
        print_stats_table(run, fp);
    for (size_t i = 0; !run->cli->quiet && i < run->report_count; i++)
        if (strcmp(run->reports[i].action, "copied") == 0)
            fprintf(stderr, "%s: %s copied unchanged (%s)\n", run->cli->prog,
                    run->reports[i].name, run->reports[i].reason);
}

/* ---- main ------------------------------------------------------------------------------- */

static int run_quantize(const sdl_cli *cli, const quantize_options *opt)
{
    quantize_run run = {.cli = cli, .opt = opt};
    run.input_name = sdlk_path_display(opt->input);
    run.output_name = sdlk_path_is_stdio(opt->output) ? "<stdout>" : opt->output;
    sdlk_tensor_set_init(&run.in);
    sdlk_tensor_set_init(&run.out);
    sdlk_error err = {0};
    int threads = cli_threads(cli, &err);
    if (threads < 1)
        return cli_fail(cli, &err);
    if (!(run.pool = sdlk_pool_create(threads, &err)))
        return cli_fail(cli, &err);
    sdlk_status st = sdlk_tensors_load(opt->input, &run.in, NULL, &err);
    if (!st && !(run.reports = calloc(run.in.count + 1, sizeof *run.reports)))
        st = sdlk_error_set(&err, SDLK_ERR_NOMEM, "out of memory");
    if (!st)
        st = opt->dequantize ? dequantize_set(&run, &err) : quantize_set(&run, &err);
    if (!st)
        st = write_output(&run, &err);
    if (!st)
        report(&run);
    free(run.reports);
    sdlk_tensor_set_free(&run.out);
    sdlk_tensor_set_free(&run.in);
    sdlk_pool_destroy(run.pool);
    /* Every failure here is about the data (a tensor's shape against the options
     * included): exit 1, never a usage error. */
    return st ? cli_error(cli, "%s", err.msg) : SDL_EXIT_OK;
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-quantize");
    quantize_options opt;
    int rc = parse_options(&cli, argc, argv, &opt);
    if (rc < 0)
        rc = check_options(&cli, &opt);
    if (rc < 0)
        rc = run_quantize(&cli, &opt);
    free(opt.include);
    free(opt.exclude);
    return rc;
}
