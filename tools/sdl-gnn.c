/* sdl-gnn -- forward inference of GCN and AGNN on condensed tiles (TC-GNN's models).
 *
 *   sdl-gnn --model gcn|agnn [--weights W]... [--hidden H] [--layers L] [--classes C]
 *           [--seed S] [--kernel csr|condensed] [--device cpu|gpu|auto] [--isa I]
 *           [--threads N] [--json] [-q] [-o OUT.npy] GRAPH X
 *
 * Runs the model over the graph (a graph file, prepared here, or a condensed graph file)
 * with features X [N, F] and prints each layer's time and the share spent in
 * aggregation. The aggregation can run on a CUDA GPU (--device; TF32). See sdl-gnn(1) and
 * lib/graph/gnn.h for the exact layer definitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "spmm_options.h"
#include "core/device.h"
#include "core/file.h"
#include "core/pool.h"
#include "core/tensorset.h"
#include "core/timer.h"
#include "graph/gnn.h"
#include "graph/graph.h"
#include "graph/sgt.h"
#include "graph/sgtfile.h"
#include "io/tensorio.h"

enum {
    OPT_MODEL = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_WEIGHTS,
    OPT_HIDDEN,
    OPT_LAYERS,
    OPT_CLASSES,
    OPT_SEED,
    OPT_REPS,
};

#define MAX_WEIGHT_FILES 64

static void usage(FILE *out)
{
    fputs("Usage: sdl-gnn --model gcn|agnn [OPTION]... GRAPH X\n"
          "Forward inference of a graph neural network: GCN (default 2 layers, hidden 16) or\n"
          "AGNN (4 layers, hidden 32; attention = softmax of beta * cosine similarity over\n"
          "each node's neighbours, computed on the same condensed tiles). GRAPH is a graph\n"
          "file (GCN: normalised here as D^-1/2 (A+I) D^-1/2; AGNN: self-loops added) or a\n"
          "condensed graph file (GCN needs one made with --gcn-norm); X is [N, F] features.\n"
          "\n"
          "      --model M        gcn or agnn (default gcn)\n"
          "      --weights FILE   tensors W1 [F, H], b1 [H], beta1 (AGNN), W2, ... from .npy\n"
          "                       (named after the file: W1.npy), .npz or .safetensors;\n"
          "                       repeatable. Without it: Glorot-uniform weights from --seed\n"
          "      --hidden H       hidden width for generated weights (default 16 gcn, 32 agnn)\n"
          "      --layers L       layers for generated weights (default 2 gcn, 4 agnn)\n"
          "      --classes C      output width for generated weights (default 8)\n"
          "      --seed S         seed of the generated weights (default 1)\n"
          "      --kernel K       condensed (default) or csr aggregation kernels\n"
          "      --device DEV     where aggregation runs: cpu (default), gpu (CUDA, condensed\n"
          "                       kernel only: TF32 tensor cores, about 1e-3 relative; the\n"
          "                       time includes the copies) or auto (the GPU when usable)\n"
          "      --isa I          auto (default), portable or avx2\n"
          "      --reps R         timed passes after one warm-up; the pass of median total\n"
          "                       time is reported (default 3)\n"
          "  -o, --output OUT     write the output [N, C] as an f32 .npy ('-' = stdout)\n"
          "      --json           per-layer timings as one JSON object on stdout\n"
          "  -q, --quiet          no timing table on stderr\n"
          "      --threads N      aggregation threads (default: $SDL_THREADS, else all cores)\n"
          "  -h, --help           show this help and exit\n"
          "  -V, --version        show the version and exit\n"
          "\n"
          "Exit status: 0 success, 1 bad input or a failed write, 2 usage error.\n",
          out);
}

/* Merge the tensors of every --weights file into one set. */
static sdlk_status load_weights(char **paths, int count, sdlk_tensor_set *out, sdlk_error *err)
{
    sdlk_tensor_set_init(out);
    for (int i = 0; i < count; i++) {
        sdlk_tensor_set one;
        sdlk_status st = sdlk_tensors_load(paths[i], &one, NULL, err);
        for (size_t k = 0; st == SDLK_OK && k < one.count; k++) {
            if (sdlk_tensor_set_find(out, one.items[k].name))
                st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: tensor '%s' given twice",
                                    paths[i], one.items[k].name);
            else
                st = sdlk_tensor_set_add(out, one.items[k].name, &one.items[k].tensor, err);
        }
        sdlk_tensor_set_free(&one);
        if (st)
            return st;
    }
    return SDLK_OK;
}

static void report(const sdl_cli *cli, const sdlk_gnn_model *m, const sdlk_gnn_timing *t,
                   const char *kernel, sdlk_device device, int threads, int64_t nodes,
                   int64_t edges)
{
    double dense = 0, agg = 0;
    for (int l = 0; l < m->layers; l++) {
        dense += t->dense_s[l];
        agg += t->aggregate_s[l];
    }
    double total = dense + agg;
    if (cli->json) {
        printf("{\"model\": \"%s\", \"nodes\": %lld, \"edges\": %lld, \"kernel\": \"%s\", "
               "\"device\": \"%s\", \"threads\": %d, \"layers\": [",
               sdlk_gnn_kind_name(m->kind), (long long)nodes, (long long)edges, kernel,
               sdlk_device_name(device), threads);
        for (int l = 0; l < m->layers; l++)
            printf("%s{\"layer\": %d, \"in\": %lld, \"out\": %lld, \"dense_s\": %.9g, "
                   "\"aggregate_s\": %.9g}",
                   l ? ", " : "", l + 1, (long long)m->layer[l].in, (long long)m->layer[l].out,
                   t->dense_s[l], t->aggregate_s[l]);
        printf("], \"total_s\": %.9g, \"aggregate_share\": %.6g}\n", total,
               total > 0 ? agg / total : 0);
        return;
    }
    if (cli->quiet)
        return;
    fprintf(stderr, "sdl-gnn: %s, %lld nodes, %lld edges, %s kernel%s, %d threads\n",
            sdlk_gnn_kind_name(m->kind), (long long)nodes, (long long)edges, kernel,
            device == SDLK_DEVICE_GPU ? " on the GPU (TF32; times include the copies)" : "",
            threads);
    fprintf(stderr, "%-6s %14s %12s %14s %10s\n", "layer", "in -> out", "dense ms",
            "aggregate ms", "aggregate");
    for (int l = 0; l < m->layers; l++) {
        double lt = t->dense_s[l] + t->aggregate_s[l];
        char io[40];
        snprintf(io, sizeof io, "%lld -> %lld", (long long)m->layer[l].in,
                 (long long)m->layer[l].out);
        fprintf(stderr, "%-6d %14s %12.3f %14.3f %9.1f%%\n", l + 1, io, t->dense_s[l] * 1e3,
                t->aggregate_s[l] * 1e3, lt > 0 ? 100 * t->aggregate_s[l] / lt : 0);
    }
    fprintf(stderr, "%-6s %14s %12.3f %14.3f %9.1f%%\n", "total", "", dense * 1e3, agg * 1e3,
            total > 0 ? 100 * agg / total : 0);
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-gnn");
    static const struct option long_options[] = {
        {"model", required_argument, NULL, OPT_MODEL},
        {"weights", required_argument, NULL, OPT_WEIGHTS},
        {"hidden", required_argument, NULL, OPT_HIDDEN},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"classes", required_argument, NULL, OPT_CLASSES},
        {"seed", required_argument, NULL, OPT_SEED},
        {"reps", required_argument, NULL, OPT_REPS},
        CLI_SPMM_LONG_OPTIONS,
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    sdlk_gnn_kind kind = SDLK_GNN_GCN;
    char *weight_paths[MAX_WEIGHT_FILES];
    int nweights = 0, opt, rc;
    cli_spmm_options spmm;
    cli_spmm_options_init(&spmm);
    long hidden = 0, layers = 0, classes = 8, seed = 1, reps = 3;
    sdlk_error err = {0};
    while ((opt = cli_next_option(&cli, argc, argv, CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case OPT_MODEL:
            if (sdlk_gnn_kind_parse(optarg, &kind, &err) != SDLK_OK)
                return cli_usage_error(&cli, "--model: '%s' is not gcn or agnn", optarg);
            break;
        case OPT_WEIGHTS:
            if (nweights == MAX_WEIGHT_FILES)
                return cli_usage_error(&cli, "more than %d --weights files", MAX_WEIGHT_FILES);
            weight_paths[nweights++] = optarg;
            break;
        case OPT_HIDDEN:
            if (!cli_parse_long(&cli, "--hidden", optarg, 1, 1 << 16, &hidden))
                return SDL_EXIT_USAGE;
            break;
        case OPT_LAYERS:
            if (!cli_parse_long(&cli, "--layers", optarg, 1, SDLK_GNN_MAX_LAYERS, &layers))
                return SDL_EXIT_USAGE;
            break;
        case OPT_CLASSES:
            if (!cli_parse_long(&cli, "--classes", optarg, 1, 1 << 16, &classes))
                return SDL_EXIT_USAGE;
            break;
        case OPT_SEED:
            if (!cli_parse_long(&cli, "--seed", optarg, 0, __LONG_MAX__, &seed))
                return SDL_EXIT_USAGE;
            break;
        case OPT_REPS:
            if (!cli_parse_long(&cli, "--reps", optarg, 1, 1000, &reps))
                return SDL_EXIT_USAGE;
            break;
        default:
            if ((rc = cli_spmm_option(&cli, opt, optarg, &spmm)) != SDL_EXIT_OK)
                return rc < 0 ? cli_usage_error(&cli, "unexpected option") : rc;
        }
    }
    if (cli.exit_now)
        return cli.exit_code;
    if (argc - optind != 2)
        return cli_usage_error(&cli, "expected GRAPH and X, got %d argument%s", argc - optind,
                               argc - optind == 1 ? "" : "s");
    if (nweights && (hidden || layers))
        return cli_usage_error(&cli, "--hidden/--layers shape generated weights; --weights "
                                     "files bring their own");
    const char *graph_path = argv[optind], *x_path = argv[optind + 1];
    if ((rc = cli_spmm_options_check(&cli, &spmm)) != SDL_EXIT_OK)
        return rc;
    if (cli.output && sdlk_path_is_stdio(cli.output) && cli.json)
        return cli_usage_error(&cli, "-o - and --json both want stdout");
    if (cli.output && sdlk_path_is_stdio(cli.output) && isatty(STDOUT_FILENO))
        return cli_usage_error(&cli, "refusing to write binary data to a terminal");
    if (!hidden)
        hidden = kind == SDLK_GNN_GCN ? 16 : 32;
    if (!layers)
        layers = kind == SDLK_GNN_GCN ? 2 : 4;

    int threads = cli_threads(&cli, &err);
    if (threads <= 0)
        return cli_fail(&cli, &err);
    /* A graph file is prepared for the model; a condensed file must already be. */
    sdlk_graph_options prep = {.gcn_normalize = kind == SDLK_GNN_GCN,
                               .self_loops = kind == SDLK_GNN_AGNN};
    sdlk_graph g;
    sdlk_sgt sgt;
    sdlk_sgt_file_info info;
    int from_condensed = sdlk_sgt_file_probe(graph_path);
    sdlk_status st = sdlk_graph_load_any(graph_path, from_condensed ? NULL : &prep, &g, &sgt,
                                         &from_condensed, &info, &err);
    if (st != SDLK_OK)
        return cli_fail(&cli, &err);
    if (st == SDLK_OK && from_condensed && kind == SDLK_GNN_GCN &&
        !strstr(info.prepared, "gcn-norm"))
        st = sdlk_error_set(&err, SDLK_ERR_FORMAT,
                            "%s: GCN needs normalised edge values: condense the graph with "
                            "--gcn-norm (this one was prepared as '%s')",
                            graph_path, info.prepared);
    sdlk_pool *pool = st == SDLK_OK ? sdlk_pool_create(threads, &err) : NULL;
    float *x = NULL, *y = NULL;
    int64_t in_dim = 0;
    sdlk_gnn_model model;
    sdlk_gnn_model_init(&model);
    sdlk_gnn_timing timing;
    if (st == SDLK_OK && !pool)
        st = err.code;
    if (st == SDLK_OK)
        st = sdlk_features_load(x_path, &g, &x, &in_dim, &err);
    if (st == SDLK_OK && nweights) {
        sdlk_tensor_set w;
        st = load_weights(weight_paths, nweights, &w, &err);
        if (st == SDLK_OK)
            st = sdlk_gnn_model_from_tensors(&model, kind, &w, in_dim, weight_paths[0], &err);
        sdlk_tensor_set_free(&w);
    } else if (st == SDLK_OK) {
        st = sdlk_gnn_model_random(&model, kind, (int)layers, in_dim, hidden, classes,
                                   (uint64_t)seed, &err);
    }
    if (st == SDLK_OK && spmm.condensed && !from_condensed)
        st = sdlk_sgt_build(&g, 0, 0, pool, &sgt, &err);
    if (st == SDLK_OK && spmm.condensed) /* AUTO -> CPU or GPU, once, for the report */
        st = sdlk_spmm_condensed_device(&sgt, spmm.device, &spmm.device, &err);
    int64_t out_dim = model.layers ? model.layer[model.layers - 1].out : 0;
    if (st == SDLK_OK && !(y = malloc((size_t)(g.nodes * out_dim > 0 ? g.nodes * out_dim : 1) *
                                      sizeof(float))))
        st = sdlk_error_set(&err, SDLK_ERR_NOMEM, "out of memory for the output");
    /* one warm-up pass, then `reps` timed ones; report the pass of median total time */
    sdlk_gnn_timing *passes = st == SDLK_OK ? calloc((size_t)reps + 1, sizeof *passes) : NULL;
    double *totals = st == SDLK_OK ? calloc((size_t)reps + 1, sizeof *totals) : NULL;
    if (st == SDLK_OK && (!passes || !totals))
        st = sdlk_error_set(&err, SDLK_ERR_NOMEM, "out of memory");
    for (long r = 0; st == SDLK_OK && r <= reps; r++) {
        st = sdlk_gnn_forward_on(&model, &g, spmm.condensed ? &sgt : NULL, x, y, spmm.device,
                                 spmm.isa, pool, &passes[r], &err);
        for (int l = 0; r > 0 && l < model.layers; l++)
            totals[r] += passes[r].dense_s[l] + passes[r].aggregate_s[l];
    }
    if (st == SDLK_OK) {
        long pick = 1;
        for (long r = 1; r <= reps; r++) { /* the median: (reps - 1) / 2 passes below it */
            long below = 0;
            for (long q = 1; q <= reps; q++)
                below += totals[q] < totals[r] || (totals[q] == totals[r] && q < r);
            if (below == (reps - 1) / 2)
                pick = r;
        }
        timing = passes[pick];
    }
    free(passes);
    free(totals);
    rc = st == SDLK_OK ? SDL_EXIT_OK : cli_fail(&cli, &err);
    if (rc == SDL_EXIT_OK && cli.output) {
        sdlk_outfile out;
        st = cli_output_open(&out, cli.output, &err);
        if (st == SDLK_OK)
            st = cli_output_close(&out, sdlk_features_write_npy(out.fp, &g, y, out_dim,
                                                                cli.output, &err), &err);
        if (st != SDLK_OK)
            rc = cli_fail(&cli, &err);
    }
    if (rc == SDL_EXIT_OK)
        report(&cli, &model, &timing, spmm.condensed ? "condensed" : "csr", spmm.device, threads,
               g.nodes, g.edges);
    sdlk_gnn_model_free(&model);
    free(x);
    free(y);
    sdlk_graph_free(&g);
    sdlk_sgt_free(&sgt);
    sdlk_pool_destroy(pool);
    return rc;
}
