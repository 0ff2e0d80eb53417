/* sdl-graphgen -- R-MAT (Graph500) graphs as Matrix Market files.
 *
 *   sdl-graphgen [--scale S | --nodes N] [--edge-factor F] [--seed X] [--symmetric]
 *                [--scramble] [--json] [-q] [--threads N] [-o OUT]
 *
 * Generates F*N directed edges over N nodes (N = 2^S by default, S = 10) with
 * a=0.57, b=c=0.19 and writes them as a coordinate pattern Matrix Market file, gzip when
 * OUT ends in .gz; --symmetric mirrors every edge and drops duplicates. The same options
 * give the same file for any thread count. See sdl-graphgen(1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/file.h"
#include "core/pool.h"
#include "core/timer.h"
#include "graph/graph.h"
#include "graph/graphwrite.h"

enum {
    OPT_SCALE = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_NODES,
    OPT_EDGE_FACTOR,
    OPT_SEED,
    OPT_SYMMETRIC,
    OPT_SCRAMBLE,
};

static void usage(FILE *out)
{
    fputs("Usage: sdl-graphgen [--scale S | --nodes N] [--edge-factor F] [--seed X]\n"
          "                    [--symmetric] [--scramble] [-o OUT]\n"
          "Generate an R-MAT graph (Graph500: a=0.57, b=c=0.19) of N nodes and F*N directed\n"
          "edges and write it as a Matrix Market file (gzip when OUT ends in .gz).\n"
          "\n"
          "      --scale S        N = 2^S nodes (default 10; 1..30)\n"
          "      --nodes N        N nodes, any count from 1 to 2^31-1 (instead of --scale)\n"
          "      --edge-factor F  F*N edges (default 16)\n"
          "      --seed X         random seed (default 1): same options, same file\n"
          "      --symmetric      add the mirror of every edge, drop duplicate edges\n"
          "      --scramble       relabel nodes by a seeded permutation (as Graph500 does);\n"
          "                       default: R-MAT's natural order, hubs at low ids\n"
          "  -o, --output OUT     .mtx or .mtx.gz (default -: Matrix Market text on stdout)\n"
          "      --json           print the summary as one JSON object on stdout (needs -o)\n"
          "  -q, --quiet          no summary on stderr\n"
          "      --threads N      generator threads (default: $SDL_THREADS, else all cores)\n"
          "  -h, --help           show this help and exit\n"
          "  -V, --version        show the version and exit\n"
          "\n"
          "Exit status: 0 success, 1 the output could not be written, 2 usage error.\n",
          out);
}

/* OUT's kind: 0 = .mtx text, 1 = .mtx.gz, -1 = not a graph file we write. */
static int output_kind(const char *path)
{
    if (sdlk_path_is_stdio(path))
        return 0;
    size_t n = strlen(path);
    if (n >= 4 && strcmp(path + n - 4, ".mtx") == 0)
        return 0;
    if (n >= 7 && strcmp(path + n - 7, ".mtx.gz") == 0)
        return 1;
    return -1;
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-graphgen");
    static const struct option long_options[] = {
        {"scale", required_argument, NULL, OPT_SCALE},
        {"nodes", required_argument, NULL, OPT_NODES},
        {"edge-factor", required_argument, NULL, OPT_EDGE_FACTOR},
        {"seed", required_argument, NULL, OPT_SEED},
        {"symmetric", no_argument, NULL, OPT_SYMMETRIC},
        {"scramble", no_argument, NULL, OPT_SCRAMBLE},
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    long scale = -1, nodes = -1, edge_factor = 16, seed = 1;
    int symmetric = 0, scramble = 0, opt;
    while ((opt = cli_next_option(&cli, argc, argv, CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case OPT_SCALE:
            if (!cli_parse_long(&cli, "--scale", optarg, 0, 30, &scale))
                return SDL_EXIT_USAGE;
            break;
        case OPT_NODES:
            if (!cli_parse_long(&cli, "--nodes", optarg, 1, INT32_MAX, &nodes))
                return SDL_EXIT_USAGE;
            break;
        case OPT_EDGE_FACTOR:
            if (!cli_parse_long(&cli, "--edge-factor", optarg, 0, 1L << 20, &edge_factor))
                return SDL_EXIT_USAGE;
            break;
        case OPT_SEED:
            if (!cli_parse_long(&cli, "--seed", optarg, 0, __LONG_MAX__, &seed))
                return SDL_EXIT_USAGE;
            break;
        case OPT_SYMMETRIC: symmetric = 1; break;
        case OPT_SCRAMBLE: scramble = 1; break;
        default: return cli_usage_error(&cli, "unexpected option");
        }
    }
    if (cli.exit_now)
        return cli.exit_code;
    if (optind < argc)
        return cli_usage_error(&cli, "unexpected argument '%s' (the graph goes to -o)",
                               argv[optind]);
    if (scale >= 0 && nodes >= 0)
        return cli_usage_error(&cli, "give --scale or --nodes, not both");
    const char *output = cli.output ? cli.output : "-";
    int kind = output_kind(output);
    if (kind < 0)
        return cli_usage_error(&cli, "-o %s: write .mtx or .mtx.gz (SciPy reads them with "
                                     "scipy.io.mmread)", output);
    if (cli.json && sdlk_path_is_stdio(output))
        return cli_usage_error(&cli, "--json prints on stdout: give the graph a file with -o");
    if (kind == 1 && sdlk_path_is_stdio(output) && isatty(STDOUT_FILENO))
        return cli_usage_error(&cli, "refusing to write gzip data to a terminal");

    sdlk_rmat_params params = sdlk_rmat_graph500(scale >= 0 ? (int)scale : 10, edge_factor,
                                                 (uint64_t)seed);
    if (nodes >= 0) {
        params.nodes = nodes;
        params.edges = (int64_t)edge_factor * nodes;
    }
    params.scramble = scramble;

    sdlk_error err = {0};
    int threads = cli_threads(&cli, &err);
    if (threads <= 0)
        return cli_fail(&cli, &err);
    sdlk_pool *pool = sdlk_pool_create(threads, &err);
    if (!pool)
        return cli_fail(&cli, &err);
    uint64_t t0 = sdlk_now_ns();
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    sdlk_graph g;
    sdlk_graph_init(&g);
    sdlk_graph_options gopts = {.symmetrize = symmetric,
                                .duplicates = symmetric ? SDLK_DUP_DROP : SDLK_DUP_KEEP};
    sdlk_status st = sdlk_rmat_generate(&params, pool, &coo, &err);
    if (st == SDLK_OK)
        st = sdlk_graph_from_coo(&coo, &gopts, &g, &err);
    sdlk_coo_free(&coo);
    sdlk_pool_destroy(pool);
    double gen_s = sdlk_seconds_since(t0);

    int rc = SDL_EXIT_OK;
    if (st != SDLK_OK) {
        rc = cli_fail(&cli, &err);
    } else {
        char comment[256];
        snprintf(comment, sizeof comment,
                 "R-MAT by sdl-graphgen: nodes %lld, generated edges %lld, a=%.2f b=%.2f "
                 "c=%.2f, seed %ld%s%s",
                 (long long)params.nodes, (long long)params.edges, params.a, params.b,
                 params.c, seed, scramble ? ", scrambled" : "",
                 symmetric ? ", symmetrized, duplicates dropped" : "");
        sdlk_outfile out;
        st = cli_output_open(&out, output, &err);
        if (st == SDLK_OK)
            st = cli_output_close(&out, sdlk_mtx_write(out.fp, &g, kind == 1, comment, output,
                                                       &err), &err);
        if (st != SDLK_OK)
            rc = cli_fail(&cli, &err);
    }
    if (rc == SDL_EXIT_OK && cli.json) {
        printf("{\"nodes\": %lld, \"edges\": %lld, \"generated_edges\": %lld, "
               "\"edge_factor\": %ld, \"seed\": %ld, \"symmetric\": %s, \"scramble\": %s, "
               "\"seconds\": %.6f, \"output\": ",
               (long long)g.nodes, (long long)g.edges, (long long)params.edges, edge_factor,
               seed, symmetric ? "true" : "false", scramble ? "true" : "false", gen_s);
        cli_json_string(stdout, output);
        printf("}\n");
    } else if (rc == SDL_EXIT_OK && !cli.quiet) {
        fprintf(stderr, "sdl-graphgen: %lld nodes, %lld edges (R-MAT, edge factor %ld, seed %ld%s)"
                        " in %.3f s\n",
                (long long)g.nodes, (long long)g.edges, edge_factor, seed,
                symmetric ? ", symmetric" : "", gen_s);
    }
    sdlk_graph_free(&g);
    return rc;
}
