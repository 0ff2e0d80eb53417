/* sdl-serve -- serve mixed-resolution image diffusion requests tile by tile (see
 * man/sdl-serve.1).
 *
 *   sdl-serve [--clock live|sim] [--policy tile|tile-fcfs|fcfs|grouped] [--batch B]
 *             [--writers N] [--group N] [--profile FILE] [--calibrate] [--reference IMG]
 *             [--model SPEC] [--out DIR] [--no-admission] [--headroom X|auto]
 *             [--shift H,W] [--steps N] [--slo-scale X] [--cache on|off] [--tau X]
 *             [--eta X] [--json] [-o FILE] [-q] [--threads N] [REQUESTS]
 *
 * REQUESTS (a trace file, a FIFO, or '-' = stdin, the default) holds one JSON request
 * per line. Each request ends in one result line (served, failed, rejected, not
 * served). SIGINT/SIGTERM: stop reading, finish the requests that arrived (drain); a
 * second signal reports every unfinished request as not served and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "cli.h"
#include "serve/engine.h"
#include "serve/lines.h"
#include "serve/live.h"
#include "serve/profile.h"
#include "serve/request.h"

enum {
    OPT_CLOCK = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_POLICY,
    OPT_BATCH,
    OPT_WRITERS,
    OPT_PROFILE,
    OPT_CALIBRATE,
    OPT_REFERENCE,
    OPT_MODEL,
    OPT_OUT,
    OPT_NO_ADMISSION,
    OPT_STEPS,
    OPT_SLO_SCALE,
    OPT_SHIFT,
    OPT_GROUP,
    OPT_CACHE,
    OPT_TAU,
    OPT_ETA,
    OPT_HEADROOM,
};

static void usage(FILE *out)
{
    fputs("Usage: sdl-serve [OPTION]... [REQUESTS]\n"
          "Serve image generation requests (JSON lines from REQUESTS: a trace file, a FIFO\n"
          "or '-' for stdin, the default), cutting every request into tiles that share\n"
          "model calls across requests, resolutions and steps; one PNG and one result line\n"
          "per request.\n"
          "\n"
          "      --clock live|sim    run the model (live, default) or simulate with the\n"
          "                          latency profile (sim; needs --profile)\n"
          "      --policy P          tile (EDF + admission, default), tile-fcfs, fcfs\n"
          "                          (one request at a time, untiled) or grouped (same-size\n"
          "                          requests batched, untiled)\n"
          "      --batch B           tiles per model call (default: the model's largest)\n"
          "      --group N           grouped policy: same-size requests per batch (default 4)\n"
          "      --writers N         threads writing the PNGs beside the model, so that a\n"
          "                          large output does not stall everyone's denoising\n"
          "                          (default 1; 0: written between model calls)\n"
          "      --profile FILE      latency profile (JSON): read if it exists; live runs\n"
          "                          calibrate and write it when it does not, and rewrite it\n"
          "                          with what they measured\n"
          "      --calibrate         only measure the profile into --profile FILE and exit\n"
          "      --reference IMG     reference image for --calibrate (default: synthetic)\n"
          "      --model SPEC        exemplar[:key=value,...] (default) or exec:COMMAND\n"
          "      --out DIR           where <id>.png are written (default .)\n"
          "      --no-admission      tile policy: never reject a request at arrival\n"
          "      --headroom X|auto   tile policy: size calls so that requests finish in\n"
          "                          time even if calls run X (e.g. 0.2) slower than\n"
          "                          predicted (default auto: 1.645 x the profile's spread\n"
          "                          of call times, at most 0.5)\n"
          "      --shift H,W         grid shift per step in rows, columns (default: the\n"
          "                          model's halo and twice it, else 7,5 for 64 px tiles)\n"
          "      --steps N           steps of requests that do not say (default 30)\n"
          "      --slo-scale X       SLO of requests that do not say, as a multiple of\n"
          "                          their standalone latency (default 5)\n"
          "      --cache on|off      region cache per tile: skip the model where a tile's\n"
          "                          input barely changed (tile policies, live clock;\n"
          "                          default off)\n"
          "      --tau X             cache threshold (default 0.05; larger skips more and\n"
          "                          costs more quality)\n"
          "      --eta X             sampler noise, 0 (deterministic DDIM) to 1 (DDPM);\n"
          "                          default 0\n"
          "      --json              results as JSON lines\n"
          "  -o, --output FILE       write the results to FILE (atomically, at the end)\n"
          "  -q, --quiet             no summary line on stderr\n"
          "      --threads N         tile workers (default SDL_THREADS, else cores)\n"
          "  -h, --help              show this help and exit\n"
          "  -V, --version           show the version and exit\n"
          "\n"
          "A request: {\"id\": \"a1\", \"height\": 512, \"width\": 768, \"reference\": \"brick.png\",\n"
          "\"steps\": 30, \"seed\": 1, \"slo_ms\": 20000 | \"slo_scale\": 5, \"arrival_ms\": 0}.\n"
          "SIGINT/SIGTERM: stop reading and finish what arrived; a second one reports the rest\n"
          "as not served. Exit status: 0 every request served or rejected by admission,\n"
          "1 some request failed or was not served, or a runtime error, 2 usage error.\n",
          out);
}

static const struct option long_options[] = {
    {"clock", required_argument, NULL, OPT_CLOCK},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"writers", required_argument, NULL, OPT_WRITERS},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"calibrate", no_argument, NULL, OPT_CALIBRATE},
    {"reference", required_argument, NULL, OPT_REFERENCE},
    {"model", required_argument, NULL, OPT_MODEL},
    {"out", required_argument, NULL, OPT_OUT},
    {"no-admission", no_argument, NULL, OPT_NO_ADMISSION},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"slo-scale", required_argument, NULL, OPT_SLO_SCALE},
    {"shift", required_argument, NULL, OPT_SHIFT},
    {"group", required_argument, NULL, OPT_GROUP},
    {"cache", required_argument, NULL, OPT_CACHE},
    {"tau", required_argument, NULL, OPT_TAU},
    {"eta", required_argument, NULL, OPT_ETA},
    {"headroom", required_argument, NULL, OPT_HEADROOM},
    CLI_COMMON_LONG_OPTIONS,
    {0},
};

typedef struct serve_opts {
    sdlk_serve_clock clock;
    sdlk_serve_policy policy;
    long batch;               /* 0: the model's max batch */
    long group;               /* grouped policy: requests per batch */
    long writers;             /* output writers beside the loop (0: on it) */
    const char *profile, *reference, *model, *out_dir, *input;
    int calibrate, admission;
    int64_t shift[3];         /* 0,0,0: the backend's default */
    sdlk_cache_opts cache;    /* region cache (enabled: --cache on) */
    int tau_given;
    double eta;               /* live: sdlk_sampler_step_eta's eta */
    double headroom;          /* < 0: auto (from the profile) */
    sdlk_serve_request_defaults defaults;
} serve_opts;

/* The tool's own process state: how many stop signals arrived. */
static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_signals++;
}

/* SIGINT/SIGTERM drain instead of killing (cli_init's cleanup handler is replaced: the
 * results output is committed or aborted on the normal path). No SA_RESTART, so a
 * wait for input returns and the loop sees the flag. */
static void install_stop_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- results -------------------------------------------------------------------- */

typedef struct report_ctx {
    const sdl_cli *cli;
    FILE *out;
    int write_failed;
} report_ctx;

static void print_result(void *ctx, const sdlk_serve_result *r)
{
    report_ctx *c = ctx;
    if (r->outcome == SDLK_SERVE_FAILED || r->outcome == SDLK_SERVE_NOT_SERVED)
        fprintf(stderr, "%s: %s\n", c->cli->prog, r->error);
    if (c->cli->json) {
        char *line = sdlk_serve_result_json(r);
        if (!line) {
            c->write_failed = 1;
            return;
        }
        fprintf(c->out, "%s\n", line);
        free(line);
    } else if (r->outcome == SDLK_SERVE_SERVED) {
        fprintf(c->out, "%s: served %lldx%lld in %.1f ms (SLO %.1f ms %s), %lld tiles, %d steps,"
                        " %lld computed, %lld skipped -> %s\n",
                r->id, (long long)r->height, (long long)r->width, r->latency_ms, r->slo_ms,
                r->slo_met ? "met" : "missed", (long long)r->tiles, r->steps,
                (long long)r->computed, (long long)r->skipped, r->output[0] ? r->output : "-");
    } else {
        fprintf(c->out, "%s: %s: %s\n", r->id[0] ? r->id : "-", sdlk_serve_outcome_name(r->outcome),
                r->error);
    }
    fflush(c->out);
    if (ferror(c->out))
        c->write_failed = 1;
}

/* ---- input ---------------------------------------------------------------------- */

/* Parse one line and hand it to the engine (a bad line is a failed result). */
static sdlk_status take_line(sdlk_serve_engine *e, const sdlk_serve_lines *lines,
                             const serve_opts *o, const char *line, size_t len, sdlk_error *err)
{
    char where[320];
    snprintf(where, sizeof where, "%s:%lld", lines->name, (long long)lines->lineno);
    sdlk_serve_request req;
    sdlk_error line_err = {0};
    if (sdlk_serve_request_parse(line, len, where, &o->defaults, &req, &line_err) != SDLK_OK) {
        sdlk_serve_engine_report_error(e, req.id, line_err.msg);
        return SDLK_OK;
    }
    sdlk_status st = sdlk_serve_engine_submit(e, &req, err);
    sdlk_serve_request_clear(&req);
    return st;
}

/* Read lines until none is ready within timeout_ms (then 0 ms for the rest); *open
 * drops to 0 at the end of the input. */
static sdlk_status read_input(sdlk_serve_engine *e, sdlk_serve_lines *lines, const serve_opts *o,
                              int timeout_ms, int *open, sdlk_error *err)
{
    for (;;) {
        char *line;
        size_t len;
        sdlk_error line_err = {0};
        sdlk_status st = sdlk_serve_lines_next(lines, timeout_ms, &line, &len, &line_err);
        if (st == SDLK_ERR_EOF) {
            *open = 0;
            return SDLK_OK;
        }
        if (st == SDLK_ERR_FORMAT) { /* an over-long line: its error, then go on */
            sdlk_serve_engine_report_error(e, NULL, line_err.msg);
            continue;
        }
        if (st != SDLK_OK)
            return sdlk_error_set(err, st, "%s", line_err.msg);
        if (!line)
            return SDLK_OK;
        if ((st = take_line(e, lines, o, line, len, err)) != SDLK_OK)
            return st;
        timeout_ms = 0;
    }
}

/* ---- the loop ------------------------------------------------------------------- */

static void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
    nanosleep(&ts, NULL); /* a signal ends it early: the loop looks at the flag */
}

/* Live: poll the input between events and sleep on it when idle. Sim: read everything,
 * then run the event loop to the end. */
static sdlk_status serve(sdlk_serve_engine *e, sdlk_serve_lines *lines, const serve_opts *o,
                         sdlk_error *err)
{
    int open = 1, drained = 0;
    if (o->clock == SDLK_SERVE_CLOCK_SIM) {
        while (open && !stop_signals) {
            sdlk_status st = read_input(e, lines, o, -1, &open, err);
            if (st != SDLK_OK)
                return st;
        }
    }
    for (;;) {
        if (stop_signals >= 2) {
            sdlk_serve_engine_abort(e);
            return SDLK_OK;
        }
        if (stop_signals == 1 && !drained) {
            sdlk_serve_engine_drain(e);
            drained = 1;
            open = 0;
        }
        sdlk_status st = open ? read_input(e, lines, o, 0, &open, err) : SDLK_OK;
        double next;
        if (st == SDLK_OK)
            st = sdlk_serve_engine_step(e, &next, err);
        if (st != SDLK_OK)
            return st;
        if (next < 0)
            continue;
        if (next == INFINITY && !open)
            return SDLK_OK;
        double wait = next - sdlk_serve_engine_now(e);
        if (wait > 60e3)
            wait = 60e3; /* wake up now and then; the loop recomputes the wait */
        if (open)
            st = read_input(e, lines, o, next == INFINITY ? -1 : (int)ceil(wait), &open, err);
        else
            sleep_ms(wait);
        if (st != SDLK_OK)
            return st;
    }
}

/* ---- setup ---------------------------------------------------------------------- */

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int parse_options(sdl_cli *cli, int argc, char **argv, serve_opts *o)
{
    memset(o, 0, sizeof *o);
    o->clock = SDLK_SERVE_CLOCK_LIVE;
    o->policy = SDLK_SERVE_POLICY_TILE;
    o->admission = 1;
    o->headroom = -1.0;
    o->group = 4;
    o->writers = 1;
    o->model = "exemplar";
    o->out_dir = ".";
    sdlk_serve_request_defaults_init(&o->defaults);
    sdlk_cache_opts_init(&o->cache);
    o->cache.enabled = 0; /* off by default: the policies' baselines stay comparable */
    o->cache.tau = SDLK_SERVE_CACHE_TAU;
    int opt;
    long v;
    while ((opt = cli_next_option(cli, argc, argv, CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case OPT_CLOCK:
            if (strcmp(optarg, "live") && strcmp(optarg, "sim"))
                return cli_usage_error(cli, "--clock: '%s' is not live or sim", optarg);
            o->clock = strcmp(optarg, "sim") == 0 ? SDLK_SERVE_CLOCK_SIM : SDLK_SERVE_CLOCK_LIVE;
            break;
        case OPT_POLICY:
            if (sdlk_serve_policy_parse(optarg, &o->policy) != 0)
                return cli_usage_error(cli, "--policy: '%s' is not tile, tile-fcfs, fcfs or "
                                       "grouped", optarg);
            break;
        case OPT_WRITERS:
            if (!cli_parse_long(cli, "--writers", optarg, 0, SDLK_SERVE_WRITERS_MAX,
                                &o->writers))
                return SDL_EXIT_USAGE;
            break;
        case OPT_BATCH:
            if (!cli_parse_long(cli, "--batch", optarg, 1, 1024, &o->batch))
                return SDL_EXIT_USAGE;
            break;
        case OPT_GROUP:
            if (!cli_parse_long(cli, "--group", optarg, 1, 64, &o->group))
                return SDL_EXIT_USAGE;
            break;
        case OPT_PROFILE: o->profile = optarg; break;
        case OPT_CALIBRATE: o->calibrate = 1; break;
        case OPT_REFERENCE: o->reference = optarg; break;
        case OPT_MODEL: o->model = optarg; break;
        case OPT_OUT: o->out_dir = optarg; break;
        case OPT_NO_ADMISSION: o->admission = 0; break;
        case OPT_SHIFT: {
            int count;
            if (!cli_parse_int_list(cli, "--shift", optarg, ',', 2, 2, 0, 1 << 20, "H,W",
                                    o->shift + 1, &count))
                return SDL_EXIT_USAGE;
            break;
        }
        case OPT_STEPS:
            if (!cli_parse_long(cli, "--steps", optarg, 1, SDLK_SERVE_MAX_STEPS, &v))
                return SDL_EXIT_USAGE;
            o->defaults.steps = (int)v;
            break;
        case OPT_CACHE:
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                return cli_usage_error(cli, "--cache: '%s' is not on or off", optarg);
            o->cache.enabled = strcmp(optarg, "on") == 0;
            break;
        case OPT_TAU:
            if (!cli_parse_double(cli, "--tau", optarg, 0, 1e12, &o->cache.tau))
                return SDL_EXIT_USAGE;
            o->tau_given = 1;
            break;
        case OPT_ETA:
            if (!cli_parse_double(cli, "--eta", optarg, 0, 1, &o->eta))
                return SDL_EXIT_USAGE;
            break;
        case OPT_HEADROOM:
            if (strcmp(optarg, "auto") == 0)
                o->headroom = -1.0;
            else if (!cli_parse_double(cli, "--headroom", optarg, 0, SDLK_SERVE_HEADROOM_MAX,
                                       &o->headroom))
                return SDL_EXIT_USAGE;
            break;
        case OPT_SLO_SCALE:
            if (!cli_parse_double(cli, "--slo-scale", optarg, 1e-6, 1e6, &o->defaults.slo_scale))
                return SDL_EXIT_USAGE;
            break;
        default:
            return cli_usage_error(cli, "unexpected option");
        }
    }
    if (cli->exit_now)
        return cli->exit_code;
    if (optind < argc - 1)
        return cli_usage_error(cli, "one REQUESTS input at most (got %d)", argc - optind);
    o->input = optind < argc ? argv[optind] : "-";
    if (o->clock == SDLK_SERVE_CLOCK_SIM && (!o->profile || !file_exists(o->profile)))
        return cli_usage_error(cli, "--clock sim needs --profile FILE with a measured profile%s%s",
                               o->profile ? ": no file " : "", o->profile ? o->profile : "");
    if (o->calibrate && !o->profile)
        return cli_usage_error(cli, "--calibrate needs --profile FILE");
    /* the cache decides on latents: the simulated clock has none, and the untiled
     * policies have no tiles to decide for */
    if (o->cache.enabled && o->clock == SDLK_SERVE_CLOCK_SIM)
        return cli_usage_error(cli, "--cache on needs the live clock (the simulated clock has "
                               "no latents to compare)");
    if (o->cache.enabled && sdlk_serve_policy_untiled(o->policy))
        return cli_usage_error(cli, "--cache on needs a tile policy (%s computes whole "
                               "canvases)", sdlk_serve_policy_name(o->policy));
    if (o->tau_given && !o->cache.enabled)
        return cli_usage_error(cli, "--tau needs --cache on");
    return -1;
}

/* The profile: read, or (live) measured now and written. */
static sdlk_status get_profile(const serve_opts *o, sdlk_serve_live *live, sdlk_serve_profile *p,
                               int *measured, sdlk_error *err)
{
    *measured = 0;
    if (o->profile && file_exists(o->profile) && !o->calibrate)
        return sdlk_serve_profile_read(o->profile, p, err);
    sdlk_status st = sdlk_serve_live_calibrate(live, o->reference, 5, p, err);
    if (st == SDLK_OK && o->profile)
        st = sdlk_serve_profile_write(o->profile, p, err);
    *measured = 1;
    return st;
}

static int open_input(const sdl_cli *cli, const char *path, sdlk_serve_lines *lines)
{
    if (sdlk_path_is_stdio(path)) {
        sdlk_serve_lines_init(lines, STDIN_FILENO, "stdin");
        return 0;
    }
    /* O_NONBLOCK so that opening a FIFO does not wait for a writer; reads then block in
     * poll, not in open */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return cli_error(cli, "%s: %s", path, strerror(errno));
    sdlk_serve_lines_init(lines, fd, path);
    return 0;
}

static void close_input(sdlk_serve_lines *lines)
{
    if (lines->fd != STDIN_FILENO)
        close(lines->fd);
    sdlk_serve_lines_free(lines);
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-serve");
    serve_opts o;
    int rc = parse_options(&cli, argc, argv, &o);
    if (rc >= 0)
        return rc;
    sdlk_error err = {0};
    int threads = cli_threads(&cli, &err);
    if (threads <= 0)
        return cli_fail(&cli, &err);
    if (threads > 1)
        openblas_set_num_threads(1); /* parallelism comes from the tile workers */
    install_stop_handler();

    sdlk_serve_lines lines;
    if (!o.calibrate && (rc = open_input(&cli, o.input, &lines)) != 0)
        return rc;
    sdlk_serve_live *live = NULL;
    sdlk_serve_live_opts lo = {.model = o.model, .out_dir = o.out_dir, .threads = threads,
                               .batch = (int)o.batch,
                               .shift_stride = {0, o.shift[1], o.shift[2]},
                               .cache = o.cache, .eta = o.eta};
    sdlk_serve_profile profile;
    int measured = 0;
    sdlk_status st = SDLK_OK;
    if (o.clock == SDLK_SERVE_CLOCK_LIVE || o.calibrate) {
        if (!lo.batch) { /* the model's own largest batch */
            lo.batch = 1;
            st = sdlk_serve_live_create(&lo, &live, &err);
            if (st == SDLK_OK) {
                lo.batch = sdlk_serve_live_desc(live)->max_batch;
                sdlk_serve_live_destroy(live);
                live = NULL;
            }
        }
        if (st == SDLK_OK)
            st = sdlk_serve_live_create(&lo, &live, &err);
        if (st == SDLK_OK)
            st = get_profile(&o, live, &profile, &measured, &err);
    } else {
        st = sdlk_serve_profile_read(o.profile, &profile, &err);
    }
    if (st != SDLK_OK || o.calibrate) {
        sdlk_serve_live_destroy(live);
        if (!o.calibrate)
            close_input(&lines);
        if (st != SDLK_OK)
            return cli_fail(&cli, &err);
        if (!cli.quiet)
            fprintf(stderr, "%s: profile %s: tiled call %.3f + %.3f ms/tile, untiled %.3f + "
                    "%.3f ms/tile, open %.1f ms, write %.1f ms/Mpx\n", cli.prog, o.profile,
                    profile.tiled_a_ms, profile.tiled_b_ms, profile.canvas_a_ms,
                    profile.canvas_b_ms, profile.open_ms, profile.finish_b_ms_per_mpx);
        return SDL_EXIT_OK;
    }

    sdlk_outfile results = {0};
    report_ctx rctx = {.cli = &cli, .out = stdout};
    if (cli.output && !sdlk_path_is_stdio(cli.output)) {
        st = cli_output_open(&results, cli.output, &err);
        rctx.out = results.fp;
    }
    sdlk_serve_backend backend;
    sdlk_serve_config cfg;
    sdlk_serve_config_init(&cfg);
    cfg.policy = o.policy;
    cfg.clock = o.clock;
    cfg.admission = o.admission;
    cfg.headroom = o.headroom;
    cfg.group = (int)o.group;
    cfg.writers = (int)o.writers;
    cfg.profile = profile;
    cfg.batch = o.batch ? (int)o.batch : lo.batch ? lo.batch : profile.max_batch;
    if (live) {
        sdlk_serve_live_backend(live, &backend);
        cfg.backend = &backend;
        sdlk_serve_live_core(live, cfg.profile.tile); /* the grid cuts the model's cores */
    }
    cfg.on_result = print_result;
    cfg.result_ctx = &rctx;
    sdlk_serve_engine *engine = NULL;
    if (st == SDLK_OK)
        st = sdlk_serve_engine_create(&cfg, &engine, &err);
    if (st == SDLK_OK)
        st = serve(engine, &lines, &o, &err);
    if (st != SDLK_OK && engine)
        sdlk_serve_engine_abort(engine); /* every held request gets its line */
    sdlk_serve_stats stats;
    memset(&stats, 0, sizeof stats);
    if (engine)
        sdlk_serve_engine_stats(engine, &stats);
    if (st == SDLK_OK && live && o.profile) { /* what this run measured, for simulations */
        sdlk_serve_profile seen;
        sdlk_serve_engine_profile(engine, &seen);
        st = sdlk_serve_profile_write(o.profile, &seen, &err);
    }
    if (st == SDLK_OK && rctx.write_failed)
        st = sdlk_error_set(&err, SDLK_ERR_IO, "write error on the results");
    if (results.fp)
        st = cli_output_close(&results, st, &err);
    if (engine && !cli.quiet)
        fprintf(stderr, "%s: %lld requests: %lld served (%lld within SLO, attainment %.1f%%), "
                "%lld failed, %lld rejected, %lld not served; latency p50 %.1f ms, p99 %.1f ms; "
                "%s policy, %s clock, batch %d%s%s\n", cli.prog, (long long)stats.results,
                (long long)stats.served, (long long)stats.met, 100.0 * stats.attainment,
                (long long)stats.failed, (long long)stats.rejected, (long long)stats.not_served,
                stats.p50_ms, stats.p99_ms, sdlk_serve_policy_name(o.policy),
                o.clock == SDLK_SERVE_CLOCK_SIM ? "sim" : "live", cfg.batch,
                o.cache.enabled ? ", region cache on" : "",
                measured ? "; profile calibrated now" : "");
    sdlk_serve_engine_destroy(engine);
    sdlk_serve_live_destroy(live);
    close_input(&lines);
    if (st != SDLK_OK)
        return cli_fail(&cli, &err);
    return stats.failed || stats.not_served ? SDL_EXIT_FAIL : SDL_EXIT_OK;
}
