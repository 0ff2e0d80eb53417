/* sdl-qmatmul -- Y = A x B^T on quantized operands with the bit-composed GEMM (APNN-TC)
 * or the int8 route, whichever is faster for the widths (see man/sdl-qmatmul.1).
 *
 *   sdl-qmatmul [-o OUT] [--out int32|f32] [--route auto|bitserial|int8]
 *               [--device cpu|gpu|auto] [--a-name NAME] [--b-name NAME] [--abits N [--ascheme S]]
 *               [--wbits M [--wscheme S]] [--threads N] [--json] A B
 *
 * A (activations, [..., K]) and B (weights, [N, K]) are files written by sdl-quantize
 * (lib/quant/qfile.h reads and validates them), or float tensors quantized on the fly
 * with --abits / --wbits. Y has A's shape with K replaced by N. The route and why it was
 * chosen go to stderr, or into the --json summary. --device gpu runs the 1-bit
 * tensor-core kernel (same int32 result bit for bit); the default stays cpu (see the man
 * page for why).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/device.h"
#include "core/file.h"
#include "core/pool.h"
#include "core/tensor.h"
#include "core/tensorset.h"
#include "core/timer.h"
#include "io/tensorio.h"
#include "quant/bitgemm.h"
#include "quant/bitpack.h"
#include "quant/qfile.h"
#include "quant/quant.h"

#define OUTPUT_TENSOR_NAME "y"

static void usage(FILE *out)
{
    fputs("Usage: sdl-qmatmul [OPTION]... A B\n"
          "Y = A x B^T for quantized A (activations, [..., K]) and B (weights, [N, K]) written\n"
          "by sdl-quantize, with the bit-composed GEMM or the int8 route, whichever is faster\n"
          "for the widths. Y has A's shape with K replaced by N.\n"
          "\n"
          "      --out TYPE      f32 (default: (sum (a-za)(b-zb)) * sa * sb) or int32 (the exact\n"
          "                      integer sum, zero points applied, scales not)\n"
          "      --route R       auto (default), bitserial or int8\n"
          "      --device D      auto (default: the GPU when built with CUDA and one is\n"
          "                      usable; its int32 equals the CPU's bit for bit), cpu, or gpu\n"
          "                      (the 1-bit tensor-core kernel; an error without one)\n"
          "      --a-name NAME   the quantized (or float) tensor of A to use when it holds several\n"
          "      --b-name NAME   the same for B\n"
          "      --abits N       quantize a float A on the fly to N bits (1..8): asymmetric, one\n"
          "                      scale for the tensor\n"
          "      --wbits M       quantize a float B on the fly to M bits: symmetric (binary for\n"
          "                      1 bit), one scale per row\n"
          "      --ascheme S     scheme for --abits (symmetric, asymmetric, binary)\n"
          "      --wscheme S     scheme for --wbits\n"
          "      --json          print what ran (shapes, widths, route and why, time) as JSON\n"
          "  -o, --output FILE   Y as tensor 'y' (default -, stdout as safetensors; binary is\n"
          "                      never written to a terminal): .npy, .npz or .safetensors\n"
          "  -q, --quiet         do not print the route on stderr\n"
          "      --threads N     threads (default: SDL_THREADS, else all cores)\n"
          "  -h, --help          show this help;  -V, --version  show the version\n"
          "Exit status: 0 success, 1 bad data (mismatched K, damaged files) or a runtime\n"
          "failure, 2 usage error.\n",
          out);
}

enum {
    OPT_OUT = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_ROUTE,
    OPT_DEVICE,
    OPT_A_NAME,
    OPT_B_NAME,
    OPT_ABITS,
    OPT_WBITS,
    OPT_ASCHEME,
    OPT_WSCHEME,
};

static const struct option long_options[] = {
    {"out", required_argument, NULL, OPT_OUT},
    {"route", required_argument, NULL, OPT_ROUTE},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"a-name", required_argument, NULL, OPT_A_NAME},
    {"b-name", required_argument, NULL, OPT_B_NAME},
    {"abits", required_argument, NULL, OPT_ABITS},
    {"wbits", required_argument, NULL, OPT_WBITS},
    {"ascheme", required_argument, NULL, OPT_ASCHEME},
    {"wscheme", required_argument, NULL, OPT_WSCHEME},
    CLI_COMMON_LONG_OPTIONS,
    {0, 0, 0, 0},
};

/* How to find (or make) one operand. */
typedef struct operand_spec {
    const char *role; /* "A" or "B" */
    const char *path;
    const char *name;            /* --a-name / --b-name, or NULL */
    sdlk_quant_params on_the_fly; /* bits 0: the file must be quantized already */
    int scheme_given;
} operand_spec;

typedef struct qmatmul_options {
    operand_spec a, b;
    int out_int32;
    sdlk_qgemm_route route;
    sdlk_qgemm_device device;
    const char *output;
} qmatmul_options;

/* One operand, loaded and ready for the GEMM. */
typedef struct operand {
    const operand_spec *spec;
    const char *display; /* the file, for messages */
    const char *name;    /* the tensor used */
    int quantized_here;
    sdlk_tensor_set file, made; /* made: the on-the-fly quantization */
    sdlk_qtensor q;
    sdlk_bitpacked packed;
    float *scale;  /* per row, for f32 output */
    int32_t *zero; /* per row, asymmetric codes only */
} operand;

/* ---- options ---------------------------------------------------------------------------- */

static int parse_bits(const sdl_cli *cli, const char *option, const char *text, int *bits)
{
    long v;
    if (!cli_parse_long(cli, option, text, 1, 8, &v))
        return 0;
    *bits = (int)v;
    return 1;
}

/* Defaults for the on-the-fly quantization of each side (see the man page). */
static void on_the_fly_defaults(operand_spec *a, operand_spec *b)
{
    if (!a->scheme_given)
        a->on_the_fly.scheme = SDLK_QUANT_ASYMMETRIC;
    a->on_the_fly.granularity = SDLK_QUANT_PER_TENSOR;
    if (!b->scheme_given)
        b->on_the_fly.scheme = b->on_the_fly.bits == 1 ? SDLK_QUANT_BINARY : SDLK_QUANT_SYMMETRIC;
    b->on_the_fly.granularity = SDLK_QUANT_PER_CHANNEL;
    b->on_the_fly.axis = 0;
}

/* Parse argv into opt; returns -1 to go on, else the exit code. */
static int parse_options(sdl_cli *cli, int argc, char **argv, qmatmul_options *opt)
{
    memset(opt, 0, sizeof *opt);
    /* the GPU kernel's results are the CPU's bit for bit (gpu-check), so using it
     * wherever one is usable changes speed only */
    opt->device = SDLK_QGEMM_DEVICE_AUTO;
    opt->a.role = "A";
    opt->b.role = "B";
    sdlk_error err = {0};
    int c;
    while ((c = cli_next_option(cli, argc, argv, CLI_COMMON_SHORT_OPTIONS,
                                long_options, usage)) != -1) {
        switch (c) {
        case OPT_OUT:
            if (strcmp(optarg, "int32") != 0 && strcmp(optarg, "f32") != 0)
                return cli_usage_error(cli, "--out: '%s' is not int32 or f32", optarg);
            opt->out_int32 = strcmp(optarg, "int32") == 0;
            break;
        case OPT_ROUTE:
            if (sdlk_qgemm_route_parse(optarg, &opt->route, &err))
                return cli_fail(cli, &err);
            break;
        case OPT_DEVICE: {
            sdlk_device d;
            if (!cli_parse_device(cli, optarg, &d))
                return SDL_EXIT_USAGE;
            opt->device = d == SDLK_DEVICE_GPU   ? SDLK_QGEMM_DEVICE_GPU
                          : d == SDLK_DEVICE_CPU ? SDLK_QGEMM_DEVICE_CPU
                                                 : SDLK_QGEMM_DEVICE_AUTO;
            break;
        }
        case OPT_A_NAME: opt->a.name = optarg; break;
        case OPT_B_NAME: opt->b.name = optarg; break;
        case OPT_ABITS:
            if (!parse_bits(cli, "--abits", optarg, &opt->a.on_the_fly.bits))
                return SDL_EXIT_USAGE;
            break;
        case OPT_WBITS:
            if (!parse_bits(cli, "--wbits", optarg, &opt->b.on_the_fly.bits))
                return SDL_EXIT_USAGE;
            break;
        case OPT_ASCHEME:
        case OPT_WSCHEME: {
            operand_spec *side = c == OPT_ASCHEME ? &opt->a : &opt->b;
            if (sdlk_quant_scheme_parse(optarg, &side->on_the_fly.scheme, &err))
                return cli_fail(cli, &err);
            side->scheme_given = 1;
            break;
        }
        default: return cli_usage_error(cli, "unexpected option");
        }
    }
    if (cli->exit_now)
        return cli->exit_code;
    if (argc - optind != 2)
        return cli_usage_error(cli, "expected two inputs A and B, got %d", argc - optind);
    opt->a.path = argv[optind];
    opt->b.path = argv[optind + 1];
    opt->output = cli->output ? cli->output : "-";
    if (sdlk_path_is_stdio(opt->a.path) && sdlk_path_is_stdio(opt->b.path))
        return cli_usage_error(cli, "only one of A and B can be '-' (stdin)");
    operand_spec *sides[2] = {&opt->a, &opt->b};
    for (int i = 0; i < 2; i++) {
        if (sides[i]->scheme_given && !sides[i]->on_the_fly.bits)
            return cli_usage_error(cli, "--%sscheme goes with --%sbits", i ? "w" : "a",
                                   i ? "w" : "a");
    }
    on_the_fly_defaults(&opt->a, &opt->b);
    for (int i = 0; i < 2; i++) {
        sdlk_quant_params combo = sides[i]->on_the_fly;
        combo.granularity = SDLK_QUANT_PER_TENSOR;
        if (combo.bits && sdlk_quant_params_check(&combo, 0, NULL, &err))
            return cli_fail(cli, &err);
    }
    if (sdlk_path_is_stdio(opt->output) && isatty(STDOUT_FILENO))
        return cli_usage_error(cli, "refusing to write binary data to a terminal; use -o FILE or "
                                    "a pipe");
    return -1;
}

/* ---- operands ---------------------------------------------------------------------------- */

/* The float tensor of a file that is not quantized: the named one or the only one. */
static sdlk_status pick_float(operand *op, const sdlk_tensor **x, sdlk_error *err)
{
    const sdlk_tensor_set *set = &op->file;
    const char *name = op->spec->name;
    if (!name && set->count != 1)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s holds %zu tensors; choose one with --%c-name", op->display,
                              set->count, op->spec->role[0] == 'A' ? 'a' : 'b');
    if (!name)
        name = set->items[0].name;
    *x = sdlk_tensor_set_find(set, name);
    if (!*x)
        return sdlk_error_set(err, SDLK_ERR_NOTFOUND, "%s: no tensor '%s'", op->display, name);
    if (!sdlk_dtype_is_float((*x)->dtype))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %s is %s, not a float tensor",
                              op->display, name, sdlk_dtype_name((*x)->dtype));
    op->name = name;
    return SDLK_OK;
}

/* Load the operand's file and find (or make) its quantized tensor. */
static sdlk_status load_operand(operand *op, sdlk_pool *pool, sdlk_error *err)
{
    const operand_spec *spec = op->spec;
    const char *bits_option = spec->role[0] == 'A' ? "--abits" : "--wbits";
    sdlk_status st = sdlk_tensors_load(spec->path, &op->file, NULL, err);
    if (st)
        return st;
    if (sdlk_qfile_count(&op->file)) {
        if (spec->on_the_fly.bits)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "%s is quantized already; %s is for float inputs", op->display,
                                  bits_option);
        if ((st = sdlk_qfile_pick(&op->file, spec->name, op->display, &op->name, err)))
            return st;
        return sdlk_qtensor_get(&op->file, op->name, op->display, &op->q, err);
    }
    if (!spec->on_the_fly.bits)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s holds no quantized tensors: quantize it with sdl-quantize, or "
                              "give %s to quantize it on the fly",
                              op->display, bits_option);
    const sdlk_tensor *x = NULL;
    if ((st = pick_float(op, &x, err)))
        return st;
    op->quantized_here = 1;
    if ((st = sdlk_qtensor_add(&op->made, op->name, x, SDLK_QFORMAT_SDL, &spec->on_the_fly, pool,
                               NULL, err))) {
        sdlk_error_prefix(err, "%s: %s", op->display, op->name);
        return st;
    }
    return sdlk_qtensor_get(&op->made, op->name, op->display, &op->q, err);
}

/* Planes and per-row parameters for the GEMM. */
static sdlk_status prepare_operand(operand *op, int want_scale, sdlk_error *err)
{
    sdlk_status st = sdlk_qtensor_packed(&op->q, &op->packed, err);
    if (!st)
        st = sdlk_qtensor_row_params(&op->q, want_scale, &op->scale, &op->zero, err);
    if (st)
        sdlk_error_prefix(err, "%s (%s: %s)", op->spec->role, op->display, op->name);
    return st;
}

static void operand_free(operand *op)
{
    sdlk_qtensor_free(&op->q);
    sdlk_bitpacked_free(&op->packed);
    free(op->scale);
    free(op->zero);
    sdlk_tensor_set_free(&op->made);
    sdlk_tensor_set_free(&op->file);
}

/* ---- the product ------------------------------------------------------------------------- */

static sdlk_status check_shapes(const operand *a, const operand *b, sdlk_error *err)
{
    const sdlk_qtensor_info *ai = &a->q.info, *bi = &b->q.info;
    if (bi->ndim > 2)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "B (%s: %s) has %d dimensions; weights are a matrix [N, K]",
                              b->display, b->name, bi->ndim);
    if (ai->k != bi->k)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "mismatched K: A (%s: %s) has rows of %lld, B (%s: %s) rows of "
                              "%lld",
                              a->display, a->name, (long long)ai->k, b->display, b->name,
                              (long long)bi->k);
    return SDLK_OK;
}

typedef struct product {
    sdlk_tensor y;
    sdlk_qgemm_choice choice;
    double seconds;
} product;

static sdlk_status multiply(const operand *a, const operand *b, const qmatmul_options *opt,
                            sdlk_pool *pool, product *out, sdlk_error *err)
{
    const sdlk_qtensor_info *ai = &a->q.info;
    int ndim = ai->ndim ? ai->ndim : 1;
    int64_t shape[SDLK_MAX_DIMS];
    memcpy(shape, ai->shape, sizeof(int64_t) * (size_t)ai->ndim);
    shape[ndim - 1] = b->q.info.rows;
    sdlk_status st =
        sdlk_tensor_alloc(&out->y, opt->out_int32 ? SDLK_I32 : SDLK_F32, ndim, shape, err);
    if (st)
        return st;
    sdlk_qgemm_opts gemm = {
        .route = opt->route,
        .device = opt->device,
        .a_zero = a->zero,
        .a_zero_count = a->zero ? ai->rows : 0,
        .b_zero = b->zero,
        .b_zero_count = b->zero ? b->q.info.rows : 0,
        .a_scale = a->scale,
        .a_scale_count = a->scale ? ai->rows : 0,
        .b_scale = b->scale,
        .b_scale_count = b->scale ? b->q.info.rows : 0,
    };
    uint64_t start = sdlk_now_ns();
    st = sdlk_qgemm(&a->packed, &b->packed, &gemm, pool,
                    opt->out_int32 ? (int32_t *)(void *)out->y.data : NULL,
                    opt->out_int32 ? NULL : (float *)(void *)out->y.data, &out->choice, err);
    out->seconds = sdlk_seconds_since(start);
    return st;
}

static sdlk_status write_output(const char *path, sdlk_tensor *y, sdlk_error *err)
{
    const char *display = sdlk_path_is_stdio(path) ? "<stdout>" : path;
    sdlk_tensor_format fmt = sdlk_path_is_stdio(path) ? SDLK_FORMAT_SAFETENSORS
                                                      : sdlk_tensor_format_from_path(path);
    if (fmt == SDLK_FORMAT_UNKNOWN)
        fmt = SDLK_FORMAT_SAFETENSORS;
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_tensor view;
    sdlk_tensor_share(&view, y);
    sdlk_status st = sdlk_tensor_set_add(&set, OUTPUT_TENSOR_NAME, &view, err);
    sdlk_outfile out;
    if (!st && !(st = cli_output_open(&out, path, err)))
        st = cli_output_close(&out, sdlk_qfile_write(out.fp, &set, fmt, display, err), err);
    sdlk_tensor_set_free(&set);
    return st;
}

/* ---- reports ------------------------------------------------------------------------------ */

static json_t *describe_operand(const operand *op)
{
    const sdlk_qtensor_info *info = &op->q.info;
    json_t *o = json_object(), *shape = json_array();
    for (int d = 0; d < info->ndim; d++)
        json_array_append_new(shape, json_integer(info->shape[d]));
    json_object_set_new(o, "file", json_string(op->display));
    json_object_set_new(o, "name", json_string(op->name));
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "bits", json_integer(info->params.bits));
    json_object_set_new(o, "encoding", json_string(sdlk_qencoding_name(info->encoding)));
    json_object_set_new(o, "scheme", json_string(sdlk_quant_scheme_name(info->params.scheme)));
    json_object_set_new(o, "quantized_here", json_boolean(op->quantized_here));
    return o;
}

static void report(const sdl_cli *cli, const qmatmul_options *opt, const operand *a,
                   const operand *b, const product *p)
{
    const sdlk_qgemm_choice *c = &p->choice;
    if (!cli->json) {
        if (!cli->quiet)
            fprintf(stderr, "%s: %s route (%s kernels): %s\n", cli->prog,
                    sdlk_qgemm_route_name(c->route), sdlk_qgemm_isa_name(c->isa), c->reason);
        return;
    }
    int64_t m = a->q.info.rows, n = b->q.info.rows, k = a->q.info.k;
    json_t *o = json_object();
    json_object_set_new(o, "a", describe_operand(a));
    json_object_set_new(o, "b", describe_operand(b));
    json_object_set_new(o, "m", json_integer(m));
    json_object_set_new(o, "n", json_integer(n));
    json_object_set_new(o, "k", json_integer(k));
    json_object_set_new(o, "out", json_string(opt->out_int32 ? "int32" : "f32"));
    json_object_set_new(o, "route", json_string(sdlk_qgemm_route_name(c->route)));
    json_object_set_new(o, "isa", json_string(sdlk_qgemm_isa_name(c->isa)));
    json_object_set_new(o, "reason", json_string(c->reason));
    json_object_set_new(o, "device", json_string(sdlk_device_name(c->device)));
    json_object_set_new(o, "seconds", json_real(p->seconds));
    double ops = 2.0 * (double)m * (double)n * (double)k;
    json_object_set_new(o, "gops", json_real(p->seconds > 0 ? ops / p->seconds * 1e-9 : 0.0));
    FILE *fp = sdlk_path_is_stdio(opt->output) ? stderr : stdout;
    json_dumpf(o, fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    fputc('\n', fp);
    json_decref(o);
}

/* ---- main --------------------------------------------------------------------------------- */

static int run_qmatmul(const sdl_cli *cli, const qmatmul_options *opt)
{
    operand a = {.spec = &opt->a}, b = {.spec = &opt->b};
    operand *sides[2] = {&a, &b};
    product p;
    memset(&p, 0, sizeof p);
    sdlk_tensor_init(&p.y);
    for (int i = 0; i < 2; i++) {
        sdlk_tensor_set_init(&sides[i]->file);
        sdlk_tensor_set_init(&sides[i]->made);
        sides[i]->display = sdlk_path_display(sides[i]->spec->path);
    }
    sdlk_error err = {0};
    int threads = cli_threads(cli, &err);
    if (threads < 1)
        return cli_fail(cli, &err);
    sdlk_pool *pool = sdlk_pool_create(threads, &err);
    sdlk_status st = pool ? SDLK_OK : err.code;
    for (int i = 0; !st && i < 2; i++)
        st = load_operand(sides[i], pool, &err);
    if (!st)
        st = check_shapes(&a, &b, &err);
    for (int i = 0; !st && i < 2; i++)
        st = prepare_operand(sides[i], !opt->out_int32, &err);
    if (!st)
        st = multiply(&a, &b, opt, pool, &p, &err);
    if (!st)
        st = write_output(opt->output, &p.y, &err);
    if (!st)
        report(cli, opt, &a, &b, &p);
    sdlk_tensor_free(&p.y);
    operand_free(&a);
    operand_free(&b);
    sdlk_pool_destroy(pool);
    /* Failures past option parsing are about the inputs: exit 1. */
    return st ? cli_error(cli, "%s", err.msg) : SDL_EXIT_OK;
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-qmatmul");
    qmatmul_options opt;
    int rc = parse_options(&cli, argc, argv, &opt);
    return rc >= 0 ? rc : run_qmatmul(&cli, &opt);
}
