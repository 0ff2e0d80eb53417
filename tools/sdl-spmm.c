/* sdl-spmm -- GNN aggregation Y = A X with the CSR or the condensed-tile kernel.
 *
 *   sdl-spmm [--kernel csr|condensed] [--device cpu|gpu|auto] [--isa auto|portable|avx2]
 *            [--reps R] [--threads N] [--json] [-q] [-o Y.npy] GRAPH_OR_CONDENSED X
 *
 * A is a graph file (.mtx/.mtx.gz, SciPy .npz, SNAP edge list; condensed on the fly for
 * --kernel condensed) or a condensed graph file from sdl-gnn-condense; X is a dense
 * [N, D] tensor file. Prints the kernel's median time and GFLOP/s (2 nnz D flops). The
 * condensed kernel also runs on a CUDA GPU (--device; TF32 tensor cores, about 1e-3
 * relative). See sdl-spmm(1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "cli.h"
#include "spmm_options.h"
#include "core/device.h"
#include "core/file.h"
#include "core/pool.h"
#include "core/timer.h"
#include "graph/gnn.h"
#include "graph/graph.h"
#include "graph/sgt.h"
#include "graph/sgtfile.h"
#include "graph/spmm.h"

enum {
    OPT_REPS = CLI_OPT_FIRST_TOOL_OPTION,
};

static void usage(FILE *out)
{
    fputs("Usage: sdl-spmm [OPTION]... GRAPH_OR_CONDENSED X\n"
          "Compute Y = A X: A the adjacency of a graph file or a condensed graph file\n"
          "(sdl-gnn-condense), X a dense [N, D] tensor file (.npy, .npz or safetensors,\n"
          "any real dtype, any D; N must be the node count). Prints the time and GFLOP/s.\n"
          "\n"
          "      --kernel K     condensed (default: SGT tiles, built on the fly from a plain\n"
          "                     graph file) or csr (row by row over the CSR arrays)\n"
          "      --device DEV   cpu (default), gpu (CUDA, condensed kernel only: TF32 tensor\n"
          "                     cores, about 1e-3 relative error; the time includes copies to\n"
          "                     and from the device) or auto (the GPU when one is usable)\n"
          "      --isa I        auto (default: AVX2+FMA when the CPU has them), portable, avx2\n"
          "      --reps R       timed runs after one warm-up; the median is reported\n"
          "                     (default 5)\n"
          "  -o, --output Y     write Y as an f32 .npy ('-' = stdout)\n"
          "      --json         the report as one JSON object on stdout\n"
          "  -q, --quiet        no report on stderr\n"
          "      --threads N    kernel threads (default: $SDL_THREADS, else all cores)\n"
          "  -h, --help         show this help and exit\n"
          "  -V, --version      show the version and exit\n"
          "\n"
          "Exit status: 0 success, 1 bad input or a failed write, 2 usage error.\n",
          out);
}

typedef struct spmm_run {
    const sdlk_graph *g;
    const sdlk_sgt *sgt; /* NULL: CSR kernel */
    const float *x;
    float *y;
    int64_t dim;
    sdlk_isa isa;
    sdlk_device device; /* condensed kernel only */
    sdlk_pool *pool;
    sdlk_device used;   /* where the last run ran */
} spmm_run;

static sdlk_status run_kernel(spmm_run *r, sdlk_error *err)
{
    r->used = SDLK_DEVICE_CPU;
    return r->sgt ? sdlk_spmm_condensed_on(r->sgt, r->g, NULL, r->x, r->dim, r->y, r->device,
                                           r->isa, r->pool, &r->used, err)
                  : sdlk_spmm_csr(r->g, NULL, r->x, r->dim, r->y, r->isa, r->pool, err);
}

static int write_y(const sdl_cli *cli, const sdlk_graph *g, const float *y, int64_t dim)
{
    sdlk_error err = {0};
    sdlk_outfile out;
    sdlk_status st = cli_output_open(&out, cli->output, &err);
    if (st == SDLK_OK)
        st = cli_output_close(&out, sdlk_features_write_npy(out.fp, g, y, dim, cli->output, &err),
                              &err);
    return st == SDLK_OK ? SDL_EXIT_OK : cli_fail(cli, &err);
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-spmm");
    static const struct option long_options[] = {
        {"reps", required_argument, NULL, OPT_REPS},
        CLI_SPMM_LONG_OPTIONS,
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    cli_spmm_options spmm;
    cli_spmm_options_init(&spmm);
    int opt, rc;
    long reps = 5;
    while ((opt = cli_next_option(&cli, argc, argv, CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case OPT_REPS:
            if (!cli_parse_long(&cli, "--reps", optarg, 1, 100000, &reps))
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
        return cli_usage_error(&cli, "expected GRAPH_OR_CONDENSED and X, got %d argument%s",
                               argc - optind, argc - optind == 1 ? "" : "s");
    const char *graph_path = argv[optind], *x_path = argv[optind + 1];
    if ((rc = cli_spmm_options_check(&cli, &spmm)) != SDL_EXIT_OK)
        return rc;
    if (cli.output && sdlk_path_is_stdio(cli.output) && cli.json)
        return cli_usage_error(&cli, "-o - and --json both want stdout");
    if (cli.output && sdlk_path_is_stdio(cli.output) && isatty(STDOUT_FILENO))
        return cli_usage_error(&cli, "refusing to write binary data to a terminal");
    if (sdlk_path_is_stdio(graph_path) && sdlk_path_is_stdio(x_path))
        return cli_usage_error(&cli, "the graph and X cannot both come from stdin");

    sdlk_error err = {0};
    int threads = cli_threads(&cli, &err);
    if (threads <= 0)
        return cli_fail(&cli, &err);
    sdlk_pool *pool = sdlk_pool_create(threads, &err);
    if (!pool)
        return cli_fail(&cli, &err);
    sdlk_graph g;
    sdlk_sgt sgt;
    int from_condensed = 0;
    rc = SDL_EXIT_OK;
    float *x = NULL, *y = NULL;
    int64_t dim = 0;
    double sgt_s = 0, *times = NULL;
    sdlk_status st = sdlk_graph_load_any(graph_path, NULL, &g, &sgt, &from_condensed, NULL, &err);
    if (st != SDLK_OK) {
        sdlk_pool_destroy(pool);
        return cli_fail(&cli, &err);
    }
    st = sdlk_features_load(x_path, &g, &x, &dim, &err);
    if (st == SDLK_OK && spmm.condensed && !from_condensed) {
        uint64_t t0 = sdlk_now_ns();
        st = sdlk_sgt_build(&g, 0, 0, pool, &sgt, &err);
        sgt_s = sdlk_seconds_since(t0);
    }
    if (st == SDLK_OK) {
        y = malloc((size_t)(g.nodes * dim > 0 ? g.nodes * dim : 1) * sizeof(float));
        times = malloc((size_t)reps * sizeof(double));
        if (!y || !times)
            st = sdlk_error_set(&err, SDLK_ERR_NOMEM, "out of memory for Y [%lld, %lld]",
                                (long long)g.nodes, (long long)dim);
    }
    spmm_run run = {&g, spmm.condensed ? &sgt : NULL, x, y, dim, spmm.isa, spmm.device, pool,
                    SDLK_DEVICE_CPU};
    if (st == SDLK_OK)
        st = run_kernel(&run, &err); /* warm-up */
    for (long r = 0; st == SDLK_OK && r < reps; r++) {
        uint64_t t0 = sdlk_now_ns();
        st = run_kernel(&run, &err);
        times[r] = sdlk_seconds_since(t0);
    }
    if (st != SDLK_OK)
        rc = cli_fail(&cli, &err);
    if (rc == SDL_EXIT_OK && cli.output)
        rc = write_y(&cli, &g, y, dim);
    if (rc == SDL_EXIT_OK) {
        double t = sdlk_median(times, (size_t)reps);
        double gflops = t > 0 ? 2.0 * (double)g.edges * (double)dim / t / 1e9 : 0;
        const char *kernel = spmm.condensed ? "condensed" : "csr";
        int on_gpu = run.used == SDLK_DEVICE_GPU;
        const char *isa_used = on_gpu                      ? "tf32"
                               : spmm.isa == SDLK_ISA_PORTABLE ? "portable"
                               : spmm.isa == SDLK_ISA_AVX2 || sdlk_spmm_have_avx2() ? "avx2"
                                                                                : "portable";
        if (cli.json) {
            printf("{\"graph\": ");
            cli_json_string(stdout, graph_path);
            printf(", \"nodes\": %lld, \"edges\": %lld, \"dim\": %lld, \"kernel\": \"%s\", "
                   "\"device\": \"%s\", \"isa\": \"%s\", \"threads\": %d, \"reps\": %ld, "
                   "\"median_s\": %.9g, \"gflops\": %.6g, \"sgt_s\": %.6g, \"tiles\": %lld}\n",
                   (long long)g.nodes, (long long)g.edges, (long long)dim, kernel,
                   sdlk_device_name(run.used), isa_used, threads, reps, t, gflops, sgt_s,
                   spmm.condensed ? (long long)sgt.tile_count : 0LL);
        } else if (!cli.quiet) {
            char where[64];
            if (on_gpu)
                snprintf(where, sizeof where, "GPU, time includes the copies");
            else
                snprintf(where, sizeof where, "%d threads", threads);
            fprintf(stderr,
                    "sdl-spmm: %s: %lld nodes, %lld edges, D %lld: %s kernel (%s, %s) "
                    "%.3f ms median of %ld, %.2f GFLOP/s",
                    graph_path, (long long)g.nodes, (long long)g.edges, (long long)dim, kernel,
                    isa_used, where, t * 1e3, reps, gflops);
            if (spmm.condensed && !from_condensed)
                fprintf(stderr, "; SGT %.3f ms", sgt_s * 1e3);
            fputc('\n', stderr);
        }
    }
    free(times);
    free(x);
    free(y);
    sdlk_graph_free(&g);
    sdlk_sgt_free(&sgt);
    sdlk_pool_destroy(pool);
    return rc;
}
