/* sdl-gnn-condense -- Sparse Graph Translation (TC-GNN) of a graph into condensed tiles.
 *
 *   sdl-gnn-condense [-H ROWS] [-W COLS] [--symmetrize] [--self-loops] [--dedup]
 *                    [--gcn-norm] [--reorder none|degree|rcm|auto] [--stats] [--json]
 *                    [--threads N] [-q] [-o OUT] GRAPH...
 *
 * Reads each GRAPH (.mtx/.mtx.gz, SciPy .npz, SNAP edge list, or an already condensed
 * file for --stats), prepares its edges, runs SGT and writes the condensed graph file
 * (-o, one GRAPH) and/or prints the tile statistics of TC-GNN's table (--stats). See
 * sdl-gnn-condense(1) and sdl-formats(5), CONDENSED GRAPHS.
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
#include "graph/sgt.h"
#include "graph/sgtfile.h"

enum {
    OPT_SYMMETRIZE = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_SELF_LOOPS,
    OPT_DEDUP,
    OPT_GCN_NORM,
    OPT_REORDER,
    OPT_STATS,
};

typedef enum reorder_mode { REORDER_NONE, REORDER_DEGREE, REORDER_RCM, REORDER_AUTO } reorder_mode;

/* The renumberings --reorder can apply, by mode, with the name the file records. */
static const struct {
    const char *name;
    sdlk_status (*apply)(const sdlk_graph *, sdlk_graph *, sdlk_error *);
} REORDERINGS[] = {
    [REORDER_DEGREE] = {"degree", sdlk_graph_reorder_by_degree},
    [REORDER_RCM] = {"rcm", sdlk_graph_reorder_rcm},
};

static void usage(FILE *out)
{
    fputs("Usage: sdl-gnn-condense [OPTION]... -o OUT GRAPH\n"
          "       sdl-gnn-condense --stats [OPTION]... GRAPH...\n"
          "Sparse Graph Translation (TC-GNN): cut the adjacency into windows of ROWS rows,\n"
          "renumber each window's distinct neighbour columns and pack its nonzeros into\n"
          "ROWS x COLS tiles. Write the condensed graph (-o) and/or print tile statistics.\n"
          "GRAPH: Matrix Market (.mtx, .mtx.gz), SciPy .npz (scipy.sparse.save_npz), a SNAP\n"
          "edge list (any other name), or a condensed file (.safetensors, --stats only).\n"
          "\n"
          "  -H, --window-height ROWS  rows per window (default 16; 1..256)\n"
          "  -W, --tile-width COLS     columns per tile (default 8; 1..256)\n"
          "      --symmetrize          add the mirror (j, i) of every edge (i, j)\n"
          "      --self-loops          add (i, i) to every node that has none\n"
          "      --dedup               keep one of repeated edges\n"
          "      --gcn-norm            edge values D^-1/2 (A+I) D^-1/2 (adds missing self-loops;\n"
          "                            what sdl-gnn --model gcn needs)\n"
          "      --reorder MODE        none (default), degree (renumber nodes by decreasing\n"
          "                            degree), rcm (reverse Cuthill-McKee: neighbours get\n"
          "                            nearby numbers), auto (whichever of the three makes\n"
          "                            the fewest tiles); the permutation is stored in the file\n"
          "      --stats               print nodes, edges, dense adjacency memory, useful\n"
          "                            computation and tile counts before/after SGT\n"
          "      --json                --stats as JSON lines (one object per graph)\n"
          "  -o, --output OUT          the condensed graph file (safetensors; '-' = stdout)\n"
          "  -q, --quiet               no timing line on stderr\n"
          "      --threads N           SGT threads (default: $SDL_THREADS, else all cores)\n"
          "  -h, --help                show this help and exit\n"
          "  -V, --version             show the version and exit\n"
          "\n"
          "Exit status: 0 success, 1 a graph could not be read or written, 2 usage error.\n",
          out);
}

typedef struct condense_options {
    int height, width;
    sdlk_graph_options graph;
    reorder_mode reorder;
    int stats;
} condense_options;

typedef struct condensed_graph {
    sdlk_graph g;
    sdlk_sgt sgt;
    sdlk_sgt_file_info info;
    double read_s, sgt_s;
    int from_file; /* GRAPH was already condensed */
} condensed_graph;

static void condensed_free(condensed_graph *c)
{
    sdlk_graph_free(&c->g);
    sdlk_sgt_free(&c->sgt);
}

/* "symmetrize,dedup,..." from the options. */
static void describe_preparation(const sdlk_graph_options *o, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s%s", o->symmetrize ? "symmetrize," : "",
             o->duplicates == SDLK_DUP_DROP ? "dedup," : "",
             o->self_loops ? "self-loops," : "", o->gcn_normalize ? "gcn-norm," : "");
    size_t n = strlen(buf);
    if (n)
        buf[n - 1] = '\0';
}

/* Read, prepare, reorder and translate one graph (or read a condensed file). */
static sdlk_status condense(const char *path, const condense_options *opt, sdlk_pool *pool,
                            condensed_graph *c, sdlk_error *err)
{
    memset(c, 0, sizeof *c);
    uint64_t t0 = sdlk_now_ns();
    sdlk_status st = sdlk_graph_load_any(path, &opt->graph, &c->g, &c->sgt, &c->from_file,
                                         &c->info, err);
    c->read_s = sdlk_seconds_since(t0);
    if (st || c->from_file)
        return st;
    describe_preparation(&opt->graph, c->info.prepared, sizeof c->info.prepared);
    const char *file_name = strrchr(path, '/');
    snprintf(c->info.source, sizeof c->info.source, "%s", file_name ? file_name + 1 : path);
    snprintf(c->info.permutation, sizeof c->info.permutation, "none");
    t0 = sdlk_now_ns();
    st = sdlk_sgt_build(&c->g, opt->height, opt->width, pool, &c->sgt, err);
    c->sgt_s = sdlk_seconds_since(t0);
    if (st || opt->reorder == REORDER_NONE)
        return st;
    /* the mode asked for, or (auto) each renumbering of the graph as read, kept when it
     * makes fewer tiles than the best so far */
    condensed_graph base = *c;
    for (int mode = REORDER_DEGREE; mode <= REORDER_RCM && st == SDLK_OK; mode++) {
        if (opt->reorder != REORDER_AUTO && (int)opt->reorder != mode)
            continue;
        condensed_graph r;
        memset(&r, 0, sizeof r);
        st = REORDERINGS[mode].apply(&base.g, &r.g, err);
        if (st == SDLK_OK) {
            t0 = sdlk_now_ns();
            st = sdlk_sgt_build(&r.g, opt->height, opt->width, pool, &r.sgt, err);
            r.sgt_s = sdlk_seconds_since(t0);
        }
        if (st == SDLK_OK &&
            ((int)opt->reorder == mode || r.sgt.tile_count < c->sgt.tile_count)) {
            r.info = base.info;
            r.read_s = base.read_s;
            snprintf(r.info.permutation, sizeof r.info.permutation, "%s",
                     REORDERINGS[mode].name);
            if (c->g.row_ptr != base.g.row_ptr) /* an earlier candidate */
                condensed_free(c);
            *c = r;
        } else {
            condensed_free(&r);
        }
    }
    if (c->g.row_ptr != base.g.row_ptr)
        condensed_free(&base);
    return st;
}

static void print_stats_header(FILE *out)
{
    fprintf(out, "%-24s %10s %11s %12s %9s %9s %11s %11s %9s %9s\n", "graph", "nodes", "edges",
            "dense GB", "useful", "useful", "tiles", "tiles", "tile", "SGT");
    fprintf(out, "%-24s %10s %11s %12s %9s %9s %11s %11s %9s %9s\n", "", "", "", "(f32 adj)",
            "16x8", "SGT", "naive", "SGT", "cut", "ms");
}

static void print_stats(FILE *out, const char *path, const condensed_graph *c, int json)
{
    sdlk_sgt_stats s;
    sdlk_sgt_stats_compute(&c->sgt, &s);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (json) {
        fputs("{\"graph\": ", out);
        cli_json_string(out, path);
        fprintf(out,
                ", \"nodes\": %lld, \"edges\": %lld, \"dense_gb\": %.6g, \"window_height\": %d, "
                "\"tile_width\": %d, \"naive_useful\": %.6g, \"sgt_useful\": %.6g, "
                "\"naive_tiles\": %lld, \"sgt_tiles\": %lld, \"tile_reduction\": %.6g, "
                "\"column_reuse\": %.6g, \"permutation\": ",
                (long long)s.nodes, (long long)s.edges, s.dense_gb, c->sgt.window_height,
                c->sgt.tile_width, s.naive_useful, s.sgt_useful, (long long)s.naive_tiles,
                (long long)s.sgt_tiles, s.tile_reduction, s.column_reuse);
        cli_json_string(out, c->info.permutation[0] ? c->info.permutation : "none");
        if (c->from_file)
            fputs(", \"sgt_seconds\": null, \"sgt_edges_per_s\": null}\n", out);
        else
            fprintf(out, ", \"sgt_seconds\": %.6g, \"sgt_edges_per_s\": %.6g}\n", c->sgt_s,
                    c->sgt_s > 0 ? s.edges / c->sgt_s : 0);
        return;
    }
    char ms[32] = "-";
    if (!c->from_file)
        snprintf(ms, sizeof ms, "%.2f", c->sgt_s * 1e3);
    fprintf(out, "%-24.24s %10lld %11lld %12.4g %8.3f%% %8.3f%% %11lld %11lld %8.1f%% %9s\n",
            base, (long long)s.nodes, (long long)s.edges, s.dense_gb, 100 * s.naive_useful,
            100 * s.sgt_useful, (long long)s.naive_tiles, (long long)s.sgt_tiles,
            100 * s.tile_reduction, ms);
}

static int write_condensed(const sdl_cli *cli, const char *output, const condensed_graph *c)
{
    sdlk_error err = {0};
    sdlk_outfile out;
    sdlk_status st = cli_output_open(&out, output, &err);
    if (st == SDLK_OK)
        st = cli_output_close(&out, sdlk_sgt_file_write(out.fp, &c->g, &c->sgt, &c->info, output,
                                                         &err), &err);
    return st == SDLK_OK ? SDL_EXIT_OK : cli_fail(cli, &err);
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-gnn-condense");
    static const struct option long_options[] = {
        {"window-height", required_argument, NULL, 'H'},
        {"tile-width", required_argument, NULL, 'W'},
        {"symmetrize", no_argument, NULL, OPT_SYMMETRIZE},
        {"self-loops", no_argument, NULL, OPT_SELF_LOOPS},
        {"dedup", no_argument, NULL, OPT_DEDUP},
        {"gcn-norm", no_argument, NULL, OPT_GCN_NORM},
        {"reorder", required_argument, NULL, OPT_REORDER},
        {"stats", no_argument, NULL, OPT_STATS},
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    condense_options opt = {.height = SDLK_SGT_DEFAULT_WINDOW_HEIGHT,
                            .width = SDLK_SGT_DEFAULT_TILE_WIDTH};
    long value;
    int o;
    while ((o = cli_next_option(&cli, argc, argv, CLI_COMMON_SHORT_OPTIONS "H:W:",
                                long_options, usage)) != -1) {
        switch (o) {
        case 'H':
        case 'W':
            if (!cli_parse_long(&cli, o == 'H' ? "-H" : "-W", optarg, 1, 256, &value))
                return SDL_EXIT_USAGE;
            *(o == 'H' ? &opt.height : &opt.width) = (int)value;
            break;
        case OPT_SYMMETRIZE: opt.graph.symmetrize = 1; break;
        case OPT_SELF_LOOPS: opt.graph.self_loops = 1; break;
        case OPT_DEDUP: opt.graph.duplicates = SDLK_DUP_DROP; break;
        case OPT_GCN_NORM: opt.graph.gcn_normalize = 1; break;
        case OPT_REORDER:
            if (strcmp(optarg, "none") == 0)
                opt.reorder = REORDER_NONE;
            else if (strcmp(optarg, "degree") == 0)
                opt.reorder = REORDER_DEGREE;
            else if (strcmp(optarg, "rcm") == 0)
                opt.reorder = REORDER_RCM;
            else if (strcmp(optarg, "auto") == 0)
                opt.reorder = REORDER_AUTO;
            else
                return cli_usage_error(&cli, "--reorder: '%s' is not none, degree, rcm or auto",
                                       optarg);
            break;
        case OPT_STATS: opt.stats = 1; break;
        default: return cli_usage_error(&cli, "unexpected option");
        }
    }
    if (cli.exit_now)
        return cli.exit_code;
    int ngraphs = argc - optind;
    if (ngraphs < 1)
        return cli_usage_error(&cli, "no GRAPH given");
    if (!cli.output && !opt.stats)
        return cli_usage_error(&cli, "nothing to do: give -o OUT (the condensed graph) and/or "
                                     "--stats");
    if (cli.output && ngraphs > 1)
        return cli_usage_error(&cli, "-o takes one GRAPH (%d given)", ngraphs);
    if (cli.output && sdlk_path_is_stdio(cli.output) && (opt.stats || cli.json))
        return cli_usage_error(&cli, "-o - and --stats both want stdout");
    if (cli.output && sdlk_path_is_stdio(cli.output) && isatty(STDOUT_FILENO))
        return cli_usage_error(&cli, "refusing to write binary data to a terminal; use -o FILE "
                                     "or a pipe");
    if (cli.json && !opt.stats)
        return cli_usage_error(&cli, "--json formats --stats: give --stats too");

    sdlk_error err = {0};
    int threads = cli_threads(&cli, &err);
    if (threads <= 0)
        return cli_fail(&cli, &err);
    sdlk_pool *pool = sdlk_pool_create(threads, &err);
    if (!pool)
        return cli_fail(&cli, &err);
    int rc = SDL_EXIT_OK;
    if (opt.stats && !cli.json)
        print_stats_header(stdout);
    for (int i = optind; i < argc; i++) {
        const char *path = argv[i];
        condensed_graph c;
        sdlk_error_clear(&err);
        if (condense(path, &opt, pool, &c, &err) != SDLK_OK) {
            int code = cli_fail(&cli, &err);
            rc = rc == SDL_EXIT_OK ? code : rc;
            condensed_free(&c);
            continue;
        }
        if (cli.output && c.from_file) {
            rc = cli_error(&cli, "%s is already condensed (read it with sdl-spmm or sdl-gnn)",
                           path);
        } else if (cli.output && (rc = write_condensed(&cli, cli.output, &c)) != SDL_EXIT_OK) {
            /* reported */
        } else {
            if (opt.stats)
                print_stats(stdout, path, &c, cli.json);
            if (!cli.quiet && !c.from_file)
                fprintf(stderr,
                        "sdl-gnn-condense: %s: %lld nodes, %lld edges, %lld -> %lld tiles; "
                        "read %.3f s, SGT %.3f s (%.1f M edges/s, %d threads)%s%s\n",
                        path, (long long)c.g.nodes, (long long)c.g.edges,
                        (long long)c.sgt.naive_tile_count, (long long)c.sgt.tile_count,
                        c.read_s, c.sgt_s, c.sgt_s > 0 ? c.g.edges / c.sgt_s / 1e6 : 0.0,
                        threads, c.g.perm ? ", reordered: " : "",
                        c.g.perm ? c.info.permutation
                        : opt.reorder == REORDER_AUTO ? ", no reordering made fewer tiles"
                                                      : "");
        }
        fflush(stdout);
        condensed_free(&c);
    }
    sdlk_pool_destroy(pool);
    return rc;
}
