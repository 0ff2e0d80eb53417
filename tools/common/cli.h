/* cli.h -- the conventions every sdl-* tool shares (tools only, never lib/).
 *
 * Contract
 *   Exit codes: 0 success, 1 bad data or a runtime failure, 2 a usage error.
 *   Common options, accepted by every tool: -h/--help, -V/--version, -o/--output FILE
 *   ("-" = stdout), --json, -q/--quiet, --threads N (else SDL_THREADS, else all cores).
 *   Errors are printed as one line "prog: message" on stderr; a usage error adds
 *   "Try 'prog --help'.".
 *   SIGPIPE is ignored so that a reader that goes away turns into a write error that
 *   the tool reports (and cleans up after) instead of a silent death. SIGINT/SIGTERM
 *   remove the temporary file of the output being written, so an interrupted tool
 *   leaves nothing behind.
 */
#ifndef SDL_TOOLS_CLI_H
#define SDL_TOOLS_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "core/device.h"
#include "core/error.h"
#include "core/file.h"

enum { SDL_EXIT_OK = 0, SDL_EXIT_FAIL = 1, SDL_EXIT_USAGE = 2 };

/* Long-only option codes of the common options (above any short option char). */
enum {
    CLI_OPT_JSON = 0x1000,
    CLI_OPT_THREADS,
    CLI_OPT_FIRST_TOOL_OPTION /* tools number their own long-only options from here */
};

/* getopt_long entries for the common options; put at the end of a tool's table
 * (before the terminating {0}). Short options: "hVo:q". */
#define CLI_COMMON_LONG_OPTIONS                              \
    {"help", no_argument, NULL, 'h'},                        \
    {"version", no_argument, NULL, 'V'},                     \
    {"output", required_argument, NULL, 'o'},                \
    {"json", no_argument, NULL, CLI_OPT_JSON},               \
    {"quiet", no_argument, NULL, 'q'},                       \
    {"threads", required_argument, NULL, CLI_OPT_THREADS}
#define CLI_COMMON_SHORT_OPTIONS "hVo:q"

typedef struct sdl_cli {
    const char *prog;     /* tool name for messages */
    const char *output;   /* -o value, NULL if not given */
    int json;             /* --json */
    int quiet;            /* -q */
    int threads;          /* --threads value, 0 = not given */
    int exit_now;         /* set by cli_common_option: return exit_code from main */
    int exit_code;
} sdl_cli;

/* Set the program name, ignore SIGPIPE, install the SIGINT/SIGTERM cleanup. */
void cli_init(sdl_cli *cli, const char *prog);

/* Handle option `opt` if it is a common one; returns 1 if handled (check
 * cli->exit_now afterwards), 0 if the tool must handle it. `usage` prints the tool's
 * help text to the given stream. */
int cli_common_option(sdl_cli *cli, int opt, const char *arg, void (*usage)(FILE *out));

/* getopt_long() over argv with the common options handled here: returns the next
 * option the tool must handle, or -1 at the end of the options -- also early, when a
 * common option ends the run (--help, --version, a bad --threads or an unknown option):
 * then cli->exit_now is set and main returns cli->exit_code. `short_options` is the
 * tool's own followed by CLI_COMMON_SHORT_OPTIONS; `long_options` ends with
 * CLI_COMMON_LONG_OPTIONS. The loop of every tool:
 *     while ((opt = cli_next_option(&cli, argc, argv, SHORT, long_options, usage)) != -1)
 *         switch (opt) { ... the tool's options ... }
 *     if (cli.exit_now)
 *         return cli.exit_code; */
int cli_next_option(sdl_cli *cli, int argc, char **argv, const char *short_options,
                    const struct option *long_options, void (*usage)(FILE *out));

/* Print "prog: message" for a library error; returns SDL_EXIT_FAIL (or SDL_EXIT_USAGE
 * for SDLK_ERR_ARG). */
int cli_fail(const sdl_cli *cli, const sdlk_error *err);
/* Print "prog: <formatted>" + the --help hint; returns SDL_EXIT_USAGE. */
int cli_usage_error(const sdl_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "prog: <formatted>"; returns SDL_EXIT_FAIL. */
int cli_error(const sdl_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse an integer/number option value within [min, max]; on failure prints a usage
 * error naming the option and returns 0. */
int cli_parse_long(const sdl_cli *cli, const char *option, const char *text, long min, long max,
                   long *out);
int cli_parse_double(const sdl_cli *cli, const char *option, const char *text, double min,
                     double max, double *out);
/* Parse a --device value (sdlk_device_parse: auto, cpu, gpu/cuda); on failure prints
 * "--device: <why>" as a usage error and returns 0. */
int cli_parse_device(const sdl_cli *cli, const char *text, sdlk_device *out);

/* Parse a list of 1..max_count whole numbers separated by `sep` ("128x96", "-7,1003"),
 * each within [min, max]; *count receives how many were given. A leading '+' or spaces
 * are refused. On failure prints a usage error naming the option and the expected form
 * (`form`, e.g. "N or HxW") and returns 0. */
int cli_parse_int_list(const sdl_cli *cli, const char *option, const char *text, char sep,
                       int min_count, int max_count, long long min, long long max,
                       const char *form, int64_t *values, int *count);

/* The thread count for this run (--threads, SDL_THREADS, cores). */
int cli_threads(const sdl_cli *cli, sdlk_error *err);

/* An output written whole or not at all, in two calls around the writing:
 *     sdlk_status st = cli_output_open(&out, path, &err);
 *     if (st == SDLK_OK)
 *         st = cli_output_close(&out, write_it(out.fp, ..., &err), &err);
 * open: sdlk_outfile_open ("-": stdout), and the output is registered so that
 * SIGINT/SIGTERM (cli_init's handler) delete its temporary file. close: commit when
 * `written` is SDLK_OK, else abort (the destination is untouched), then unregister;
 * returns `written`, or the commit's failure. One output at a time. */
sdlk_status cli_output_open(sdlk_outfile *out, const char *path, sdlk_error *err);
sdlk_status cli_output_close(sdlk_outfile *out, sdlk_status written, sdlk_error *err);

/* Write a JSON string literal (quoted, escaped) to fp. */
void cli_json_string(FILE *fp, const char *s);

#endif
