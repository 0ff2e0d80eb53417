#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pool.h"
#include "core/version.h"

/* The one piece of process-wide state: the temporary file to delete on a signal. It
 * belongs to the tool (a process), not to the library. */
static volatile sig_atomic_t tracked_valid;
static char tracked_tmp[4096];

static void on_fatal_signal(int sig)
{
    if (tracked_valid)
        unlink(tracked_tmp);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void track_output(sdlk_outfile *out)
{
    tracked_valid = 0;
    if (out && out->tmp_path && strlen(out->tmp_path) < sizeof tracked_tmp) {
        memcpy(tracked_tmp, out->tmp_path, strlen(out->tmp_path) + 1);
        tracked_valid = 1;
    }
}

sdlk_status cli_output_open(sdlk_outfile *out, const char *path, sdlk_error *err)
{
    sdlk_status st = sdlk_outfile_open(out, path, err);
    if (st == SDLK_OK)
        track_output(out);
    return st;
}

sdlk_status cli_output_close(sdlk_outfile *out, sdlk_status written, sdlk_error *err)
{
    if (written == SDLK_OK)
        written = sdlk_outfile_commit(out, err);
    else
        sdlk_outfile_abort(out);
    track_output(NULL);
    return written;
}

void cli_init(sdl_cli *cli, const char *prog)
{
    memset(cli, 0, sizeof *cli);
    cli->prog = prog;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int cli_common_option(sdl_cli *cli, int opt, const char *arg, void (*usage)(FILE *out))
{
    long value;
    switch (opt) {
    case 'h':
        usage(stdout);
        cli->exit_now = 1;
        cli->exit_code = SDL_EXIT_OK;
        return 1;
    case 'V':
        printf("%s (sdl) %s\n", cli->prog, SDLK_VERSION);
        cli->exit_now = 1;
        cli->exit_code = SDL_EXIT_OK;
        return 1;
    case 'o':
        cli->output = arg;
        return 1;
    case 'q':
        cli->quiet = 1;
        return 1;
    case CLI_OPT_JSON:
        cli->json = 1;
        return 1;
    case CLI_OPT_THREADS:
        if (!cli_parse_long(cli, "--threads", arg, 1, 4096, &value)) {
            cli->exit_now = 1;
            cli->exit_code = SDL_EXIT_USAGE;
        } else {
            cli->threads = (int)value;
        }
        return 1;
    case '?': /* getopt already printed what was wrong */
        fprintf(stderr, "Try '%s --help'.\n", cli->prog);
        cli->exit_now = 1;
        cli->exit_code = SDL_EXIT_USAGE;
        return 1;
    default:
        return 0;
    }
}

int cli_next_option(sdl_cli *cli, int argc, char **argv, const char *short_options,
                    const struct option *long_options, void (*usage)(FILE *out))
{
    int opt;
    while (!cli->exit_now && (opt = getopt_long(argc, argv, short_options, long_options, NULL)) != -1)
        if (!cli_common_option(cli, opt, optarg, usage))
            return opt;
    return -1;
}

int cli_fail(const sdl_cli *cli, const sdlk_error *err)
{
    fprintf(stderr, "%s: %s\n", cli->prog,
            err && err->code ? err->msg : "failed (no detail available)");
    if (err && err->code == SDLK_ERR_ARG) {
        fprintf(stderr, "Try '%s --help'.\n", cli->prog);
        return SDL_EXIT_USAGE;
    }
    return SDL_EXIT_FAIL;
}

static void vprint(const sdl_cli *cli, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", cli->prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_usage_error(const sdl_cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(cli, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help'.\n", cli->prog);
    return SDL_EXIT_USAGE;
}

int cli_error(const sdl_cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(cli, fmt, ap);
    va_end(ap);
    return SDL_EXIT_FAIL;
}

int cli_parse_long(const sdl_cli *cli, const char *option, const char *text, long min, long max,
                   long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max) {
        cli_usage_error(cli, "%s: '%s' is not a whole number from %ld to %ld", option, text, min,
                        max);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_device(const sdl_cli *cli, const char *text, sdlk_device *out)
{
    sdlk_error err = {0};
    if (sdlk_device_parse(text, out, &err) != SDLK_OK) {
        cli_usage_error(cli, "--device: %s", err.msg);
        return 0;
    }
    return 1;
}

int cli_parse_double(const sdl_cli *cli, const char *option, const char *text, double min,
                     double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !(v >= min && v <= max)) {
        cli_usage_error(cli, "%s: '%s' is not a number from %g to %g", option, text, min, max);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_int_list(const sdl_cli *cli, const char *option, const char *text, char sep,
                       int min_count, int max_count, long long min, long long max,
                       const char *form, int64_t *values, int *count)
{
    const char *p = text;
    int n = 0;
    for (;;) {
        char *end;
        errno = 0;
        int digit_or_minus = (*p >= '0' && *p <= '9') || (*p == '-' && p[1] >= '0' && p[1] <= '9');
        long long v = strtoll(p, &end, 10);
        if (!digit_or_minus || errno || end == p || v < min || v > max || n == max_count)
            break;
        values[n++] = v;
        if (*end == '\0') {
            if (n < min_count)
                break;
            *count = n;
            return 1;
        }
        if (*end != sep)
            break;
        p = end + 1;
    }
    cli_usage_error(cli, "%s: '%s' is not %s with whole numbers from %lld to %lld", option, text,
                    form, min, max);
    return 0;
}

int cli_threads(const sdl_cli *cli, sdlk_error *err)
{
    int n = 1;
    if (sdlk_threads_resolve(cli->threads, &n, err) != SDLK_OK)
        return 0;
    return n;
}

void cli_json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\r': fputs("\\r", fp); break;
        case '\t': fputs("\\t", fp); break;
        default:
            if (*p < 0x20)
                fprintf(fp, "\\u%04x", *p);
            else
                fputc(*p, fp);
        }
    }
    fputc('"', fp);
}
