/* sdl-bench -- measure sdl against named baselines in the same run.
 *
 *   sdl-bench [--reps N] [--quick] [--json] [-o FILE] [--data DIR] [--tmpdir DIR]
 *             [--threads N] [-q] [--list] [FAMILY...]
 *
 * Runs each named benchmark family (all of them when none is named) and prints one table
 * (or one JSON document) of subject vs baseline figures. See sdl-bench(1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench.h"
#include "bench/bench_families.h"
#include "cli.h"
#include "core/version.h"

enum {
    OPT_REPS = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_QUICK,
    OPT_LIST,
    OPT_DATA,
    OPT_TMPDIR,
};

enum { DEFAULT_REPS = 7, QUICK_REPS = 3 };

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sdl-bench [OPTION]... [FAMILY]...\n"
            "Measure sdl against a named baseline in the same run and print the ratios.\n"
            "With no FAMILY, run every family (see --list).\n"
            "\n"
            "      --reps N      timed repetitions of each side (default %d; %d with --quick)\n"
            "      --quick       small inputs and few reps: a smoke test in seconds\n"
            "      --list        list the benchmark families and exit\n"
            "      --data DIR    real input files, e.g. photos (default: $SDL_BENCH_DATA,\n"
            "                    else $SDL_TESTDATA, else ./tests/data)\n"
            "      --tmpdir DIR  where scratch files go (default: $TMPDIR, else /tmp)\n"
            "      --json        one JSON document instead of the table\n"
            "  -o, --output FILE write the report to FILE (atomically) instead of stdout\n"
            "  -q, --quiet       no progress lines on stderr\n"
            "      --threads N   threads the measured code may use (default: $SDL_THREADS,\n"
            "                    else all cores)\n"
            "  -h, --help        show this help and exit\n"
            "  -V, --version     show the version and exit\n"
            "\n"
            "Exit status: 0 success, 1 a benchmark failed, 2 usage error.\n",
            DEFAULT_REPS, QUICK_REPS);
}

static void list_families(FILE *out)
{
    for (const bench_family *f = bench_families; f->name; f++)
        fprintf(out, "%-10s %s\n", f->name, f->description);
}

/* First non-empty of the explicit option and the environment variables, else the
 * fallback. */
static const char *pick_dir(const char *option, const char *env1, const char *env2,
                            const char *fallback)
{
    if (option && *option)
        return option;
    const char *v = env1 ? getenv(env1) : NULL;
    if (v && *v)
        return v;
    v = env2 ? getenv(env2) : NULL;
    if (v && *v)
        return v;
    return fallback;
}

/* Print the report to cli->output or stdout. */
static int write_report(const sdl_cli *cli, const sdlk_bench_report *report)
{
    sdlk_error err = {0};
    sdlk_outfile out;
    sdlk_status st = cli_output_open(&out, cli->output ? cli->output : "-", &err);
    if (st == SDLK_OK) {
        if (cli->json)
            sdlk_bench_report_json(report, out.fp);
        else
            sdlk_bench_report_print(report, out.fp);
        st = cli_output_close(&out, SDLK_OK, &err); /* the commit checks the writes */
    }
    return st == SDLK_OK ? SDL_EXIT_OK : cli_fail(cli, &err);
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-bench");
    static const struct option long_options[] = {
        {"reps", required_argument, NULL, OPT_REPS},
        {"quick", no_argument, NULL, OPT_QUICK},
        {"list", no_argument, NULL, OPT_LIST},
        {"data", required_argument, NULL, OPT_DATA},
        {"tmpdir", required_argument, NULL, OPT_TMPDIR},
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    long reps = 0;
    int quick = 0, list = 0;
    const char *data_option = NULL, *tmp_option = NULL;
    int opt;
    while ((opt = cli_next_option(&cli, argc, argv, CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case OPT_REPS:
            if (!cli_parse_long(&cli, "--reps", optarg, 1, 1000000, &reps))
                return SDL_EXIT_USAGE;
            break;
        case OPT_QUICK: quick = 1; break;
        case OPT_LIST: list = 1; break;
        case OPT_DATA: data_option = optarg; break;
        case OPT_TMPDIR: tmp_option = optarg; break;
        default: return cli_usage_error(&cli, "unexpected option");
        }
    }
    if (cli.exit_now)
        return cli.exit_code;
    if (list) {
        list_families(stdout);
        return SDL_EXIT_OK;
    }

    /* Check every family name before running anything. */
    const bench_family *chosen[64];
    size_t nchosen = 0;
    for (int i = optind; i < argc; i++) {
        const bench_family *f = bench_family_find(argv[i]);
        if (!f)
            return cli_usage_error(&cli, "unknown benchmark family '%s' (see --list)", argv[i]);
        if (nchosen == sizeof chosen / sizeof *chosen)
            return cli_usage_error(&cli, "too many families named");
        chosen[nchosen++] = f;
    }
    if (nchosen == 0)
        for (const bench_family *f = bench_families; f->name && nchosen < 64; f++)
            chosen[nchosen++] = f;

    sdlk_error err = {0};
    int threads = cli_threads(&cli, &err);
    if (threads <= 0)
        return cli_fail(&cli, &err);

    bench_options options = {
        .reps = reps > 0 ? (int)reps : quick ? QUICK_REPS : DEFAULT_REPS,
        .quick = quick,
        .threads = threads,
        .data_dir = pick_dir(data_option, "SDL_BENCH_DATA", "SDL_TESTDATA", "tests/data"),
        .tmp_dir = pick_dir(tmp_option, "TMPDIR", NULL, "/tmp"),
        .log = cli.quiet ? NULL : stderr,
    };
    struct stat sb;
    if (stat(options.tmp_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cli_usage_error(&cli, "--tmpdir: '%s' is not a directory", options.tmp_dir);

    sdlk_bench_report report;
    sdlk_bench_report_init(&report);
    sdlk_bench_host_describe(&report.host, "sdl-bench " SDLK_VERSION, threads);
    int status = SDL_EXIT_OK;
    for (size_t i = 0; i < nchosen; i++) {
        sdlk_error_clear(&err);
        if (chosen[i]->run(&options, &report, &err) != SDLK_OK)
            status = cli_fail(&cli, &err) == SDL_EXIT_USAGE ? SDL_EXIT_USAGE : SDL_EXIT_FAIL;
    }
    /* What was measured is printed even when a later benchmark failed. */
    int written = write_report(&cli, &report);
    sdlk_bench_report_free(&report);
    return status != SDL_EXIT_OK ? status : written;
}
