/* serve.c -- the "serve" benchmark family: sdl-serve's schedulers on mixed-resolution
 * traces, the simulator against a live run, and tiled against untiled generation.
 *
 *   profile     the latency profile of the built-in exemplar model (or of the model
 *               SDL_BENCH_SERVE_MODEL names, e.g. exemplar:device=gpu) is measured live in
 *               this run (sdlk_serve_live_calibrate, batch B = 16) and drives every
 *               simulation; its lines go in the log. SDL_BENCH_SERVE_PROFILE=FILE (a
 *               profile from sdl-serve --calibrate elsewhere: a GPU model, whose calls
 *               cost less per tile in larger batches) drives the sweep instead; the live
 *               and quality rows keep this machine's measured profile.
 *               SDL_BENCH_SERVE_ROWS=sweep,live,quality runs only the rows it names;
 *               SDL_BENCH_SERVE_WRITERS=N serves with N output writers (default 1, as
 *               sdl-serve; 0 writes on the serving loop).
 *   sweep       seeded Poisson arrivals (N = 1600 requests per rate; --quick: 60) over a
 *               mix of 256^2, 512^2, 768^2, 1024^2, 512x768, 768x512 and 256x1024, 30
 *               steps, SLO = 3 x the request's standalone latency (also 2x and 5x for the
 *               goodput rows; --quick: 3x only); rates from 5 % to 150 % of the server's
 *               capacity (1 / mean standalone work; 30 rates, --quick 10). For each rate
 *               and policy (tile = EDF + admission, tile-fcfs, grouped with groups of up
 *               to 4, fcfs) the simulated clock gives SLO attainment and p50/p99 latency
 *               (log lines, and an SVG plot of attainment against rate at 3x, written by
 *               our own code to serve-attainment.svg in $SDL_BENCH_OUT, else in the
 *               current directory: it is a result, not scratch). Goodput = the rate
 *               at which SLO attainment first falls below 90 % (interpolated linearly
 *               between the two ladder rates around it). Rows: goodput of tile vs
 *               grouped and fcfs (timing the simulation of the trace at that rate, tile
 *               against grouped), and attainment at three loads.
 *   live        the profile measured again, then a small trace (60 requests of 128^2 ..
 *               256^2, 12 steps; --quick: 8 of 64^2 .. 192x64, 4 steps; Poisson at about
 *               60 % of capacity, SLO 2x) served live three times by the engine with the
 *               exemplar model, and the same trace simulated with that profile: the
 *               median live attainment and the simulated one in the row's name (target:
 *               within 10 points), and in the note each live run's and the simulation
 *               with the first live run's own fitted costs (the event model alone); the
 *               row times live vs simulated.
 *   quality     requests generated tiled (tile-fcfs: one request, its tiles in calls of
 *               B) and untiled (one model call on the whole canvas, same prior, same
 *               noise), 2 seeds (--quick: 1), two tiled configurations: the default
 *               (halo windows shifted by the halo and twice it; sdl-serve's exemplar
 *               model moves its patch grid every step, lattice=moving) and odd shifts
 *               (7, 5 per step). Per configuration: the seam metric of the tiled
 *               images over every row/column where a border lay (target <= 1.05)
 *               beside the untiled images' value over the same lines, which is what the
 *               tiled value is judged against (lines of the model's own patch grid can
 *               score above or below 1 in both); relative
 *               difference of luma mean, variance and radial power spectrum
 *               (sum |P_t - P_u| / sum P_u; targets 5 %) against the untiled images.
 *               The rows time tiled against untiled generation.
 *   cache       the default tiled configuration with the region cache per tile at
 *               sdl-serve's default threshold (SDLK_SERVE_CACHE_TAU) against the same
 *               without it: the timed row is the cache's speed effect, its name the
 *               fraction of tile-steps skipped and mean/variance/spectrum against the
 *               untiled images, its note the uncached figures, both contrasts and the
 *               mean pixel difference.
 *               Full runs also log the contrast (luma std) of untiled generations with
 *               1-, 2- and 3-scale exemplar priors against the reference's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cblas.h>

#include "bench_families.h"
#include "core/file.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "image/image.h"
#include "metrics/metrics.h"
#include "metrics/quality.h"
#include "serve/engine.h"
#include "serve/live.h"
#include "serve/profile.h"

#define FAMILY "serve"
#define BATCH 16
#define N_POLICIES 4
#define MAX_RATES 40
#define SPECTRUM_BINS 16

static const sdlk_serve_policy policies[N_POLICIES] = {
    SDLK_SERVE_POLICY_TILE, SDLK_SERVE_POLICY_TILE_FCFS, SDLK_SERVE_POLICY_GROUPED,
    SDLK_SERVE_POLICY_FCFS};

typedef struct trace {
    sdlk_serve_request *req;
    int n;
} trace;

static uint64_t next_u64(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static double next_unit(uint64_t *s) /* (0, 1] */
{
    return ((double)(next_u64(s) >> 11) + 1.0) / 9007199254740992.0;
}

static void trace_free(trace *t)
{
    for (int i = 0; i < t->n; i++)
        sdlk_serve_request_clear(&t->req[i]);
    free(t->req);
    t->req = NULL;
    t->n = 0;
}

/* n requests, Poisson arrivals at `rate` per second, sizes drawn from `sizes`. */
static sdlk_status trace_make(trace *t, int n, double rate, const int64_t (*sizes)[2],
                              int n_sizes, int steps, double slo_scale, const char *reference,
                              uint64_t seed, sdlk_error *err)
{
    t->req = calloc((size_t)n, sizeof *t->req);
    if (!t->req)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    t->n = n;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    uint64_t sz = seed + 77;
    double now = 0;
    for (int i = 0; i < n; i++) {
        sdlk_serve_request *r = &t->req[i];
        snprintf(r->id, sizeof r->id, "r%d", i);
        now += -log(next_unit(&s)) / rate * 1e3;
        r->arrival_ms = now;
        int k = (int)(next_u64(&sz) % (uint64_t)n_sizes);
        r->height = sizes[k][0];
        r->width = sizes[k][1];
        r->steps = steps;
        r->seed = (uint64_t)i + 1;
        r->slo_scale = slo_scale;
        r->reference = reference ? strdup(reference) : NULL;
        if (reference && !r->reference)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    return SDLK_OK;
}

/* Serve a trace; stats out. Sim when backend is NULL. */
static sdlk_status serve_trace_measured(const trace *t, sdlk_serve_policy policy,
                                        const sdlk_serve_profile *prof,
                                        const sdlk_serve_backend *backend,
                                        sdlk_serve_stats *stats, sdlk_serve_profile *measured,
                                        sdlk_error *err);

static sdlk_status serve_trace(const trace *t, sdlk_serve_policy policy,
                               const sdlk_serve_profile *prof, const sdlk_serve_backend *backend,
                               sdlk_serve_stats *stats, sdlk_error *err)
{
    return serve_trace_measured(t, policy, prof, backend, stats, NULL, err);
}

/* The output writers every engine of the family serves with: as sdl-serve by default,
 * one beside the model; SDL_BENCH_SERVE_WRITERS=N measures another count (0: on the
 * loop). -1 when the variable is not a count 0..SDLK_SERVE_WRITERS_MAX. */
static int output_writers(void)
{
    const char *text = getenv("SDL_BENCH_SERVE_WRITERS");
    if (!text || !*text)
        return 1;
    char *end;
    long n = strtol(text, &end, 10);
    return *end || n < 0 || n > SDLK_SERVE_WRITERS_MAX ? -1 : (int)n;
}

/* The same, and (when `measured` is not NULL) the profile fitted to what the run
 * timed. */
static sdlk_status serve_trace_measured(const trace *t, sdlk_serve_policy policy,
                                        const sdlk_serve_profile *prof,
                                        const sdlk_serve_backend *backend,
                                        sdlk_serve_stats *stats, sdlk_serve_profile *measured,
                                        sdlk_error *err)
{
    sdlk_serve_config cfg;
    sdlk_serve_config_init(&cfg);
    cfg.policy = policy;
    cfg.batch = BATCH;
    cfg.profile = *prof;
    cfg.clock = backend ? SDLK_SERVE_CLOCK_LIVE : SDLK_SERVE_CLOCK_SIM;
    cfg.backend = backend;
    cfg.writers = output_writers(); /* checked once by bench_serve */
    sdlk_serve_engine *e;
    sdlk_status st = sdlk_serve_engine_create(&cfg, &e, err);
    for (int i = 0; i < t->n && st == SDLK_OK; i++)
        st = sdlk_serve_engine_submit(e, &t->req[i], err);
    if (st == SDLK_OK)
        st = sdlk_serve_engine_run(e, err);
    if (st == SDLK_OK) {
        sdlk_serve_engine_stats(e, stats);
        if (measured)
            sdlk_serve_engine_profile(e, measured);
        if (stats->failed)
            st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "%lld requests failed",
                                (long long)stats->failed);
    }
    sdlk_serve_engine_destroy(e);
    return st;
}

/* ---- the sweep ------------------------------------------------------------------ */

typedef struct sweep {
    double slo_scale;
    int n_rates;
    double rate[MAX_RATES];
    sdlk_serve_stats stats[N_POLICIES][MAX_RATES];
    double goodput[N_POLICIES];
} sweep;

static const int64_t mixed_sizes[][2] = {{256, 256}, {512, 512}, {768, 768}, {1024, 1024},
                                         {512, 768}, {768, 512}, {256, 1024}};
#define N_MIXED (int)(sizeof mixed_sizes / sizeof mixed_sizes[0])

/* Mean standalone work of the mix (ms): its inverse is the capacity in requests/ms. */
static double mean_work_ms(const sdlk_serve_profile *p, int steps)
{
    double sum = 0;
    for (int k = 0; k < N_MIXED; k++) {
        double tiles = (double)(mixed_sizes[k][0] / p->tile[1]) * (mixed_sizes[k][1] / p->tile[2]);
        sum += p->open_ms + steps * tiles * sdlk_serve_profile_tiled_ms(p, BATCH) / BATCH +
               sdlk_serve_profile_finish_ms(p, mixed_sizes[k][0], mixed_sizes[k][1]);
    }
    return sum / N_MIXED;
}

/* Where policy p's attainment first falls below 90 %: linear between the last rate of
 * the ladder that keeps it and the next (the ladder's 5 %-of-capacity steps alone would
 * quantise a goodput ratio to steps of up to a third); the last rate when none falls
 * below, 0 when the first already does. */
static double goodput_of(const sweep *sw, int p)
{
    int r = 0;
    while (r < sw->n_rates && sw->stats[p][r].attainment >= 0.9)
        r++;
    if (r == 0 || r == sw->n_rates)
        return r ? sw->rate[r - 1] : 0.0;
    double above = sw->stats[p][r - 1].attainment, below = sw->stats[p][r].attainment;
    return sw->rate[r - 1] + (above - 0.9) / (above - below) * (sw->rate[r] - sw->rate[r - 1]);
}

static sdlk_status run_sweep(const bench_options *opt, const sdlk_serve_profile *prof, int n_req,
                             sweep *sw, sdlk_error *err)
{
    double capacity = 1e3 / mean_work_ms(prof, 30); /* requests per second */
    sw->n_rates = opt->quick ? 10 : 30;
    for (int r = 0; r < sw->n_rates; r++)
        sw->rate[r] = capacity * 1.5 * (r + 1) / sw->n_rates;
    bench_log(opt, FAMILY, "sweep: %d requests per point, capacity %.4f req/s, rates %.4f .. "
              "%.4f req/s", n_req, capacity, sw->rate[0], sw->rate[sw->n_rates - 1]);
    for (int r = 0; r < sw->n_rates; r++) {
        trace t = {0};
        sdlk_status st = trace_make(&t, n_req, sw->rate[r], mixed_sizes, N_MIXED, 30,
                                    sw->slo_scale, NULL, (uint64_t)r + 1, err);
        for (int p = 0; p < N_POLICIES && st == SDLK_OK; p++)
            st = serve_trace(&t, policies[p], prof, NULL, &sw->stats[p][r], err);
        trace_free(&t);
        if (st != SDLK_OK)
            return st;
        bench_log(opt, FAMILY, "SLO %gx, rate %.4f req/s: attainment tile %.1f%% tile-fcfs %.1f%% "
                  "grouped %.1f%% fcfs %.1f%%; p50/p99 s: tile %.1f/%.1f grouped %.1f/%.1f",
                  sw->slo_scale, sw->rate[r], 100 * sw->stats[0][r].attainment, 100 * sw->stats[1][r].attainment,
                  100 * sw->stats[2][r].attainment, 100 * sw->stats[3][r].attainment,
                  sw->stats[0][r].p50_ms / 1e3, sw->stats[0][r].p99_ms / 1e3,
                  sw->stats[2][r].p50_ms / 1e3, sw->stats[2][r].p99_ms / 1e3);
    }
    for (int p = 0; p < N_POLICIES; p++)
        sw->goodput[p] = goodput_of(sw, p);
    return SDLK_OK;
}

/* ---- the SVG plot --------------------------------------------------------------- */

static sdlk_status write_svg(const char *path, const sweep *sw, sdlk_error *err)
{
    static const char *const colors[N_POLICIES] = {"#d62728", "#ff7f0e", "#1f77b4", "#2ca02c"};
    sdlk_outfile out = {0};
    sdlk_status st = sdlk_outfile_open(&out, path, err);
    if (st != SDLK_OK)
        return st;
    const double W = 640, H = 400, L = 60, R = 150, T = 30, B = 50;
    double xmax = sw->rate[sw->n_rates - 1];
    FILE *f = out.fp;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"18\">sdl-serve: SLO attainment vs request rate "
               "(simulated, SLO %g x standalone)</text>\n", L, sw->slo_scale);
#define PX(x) (L + (x) / xmax * (W - L - R))
#define PY(y) (H - B - (y) / 100.0 * (H - T - B))
    for (int k = 0; k <= 5; k++) {
        double y = 20.0 * k, x = xmax * k / 5;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                L, PY(y), W - R, PY(y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>\n", L - 5,
                PY(y) + 4, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g</text>\n", PX(x),
                H - B + 16, x);
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" "
               "stroke-dasharray=\"4 3\"/>\n", L, PY(90.0), W - R, PY(90.0));
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">request rate (req/s)</text>\n",
            (L + W - R) / 2, H - 12);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
               "stroke=\"black\"/>\n", L, T, W - L - R, H - T - B);
    for (int p = 0; p < N_POLICIES; p++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                colors[p]);
        for (int r = 0; r < sw->n_rates; r++)
            fprintf(f, "%.1f,%.1f ", PX(sw->rate[r]), PY(100.0 * sw->stats[p][r].attainment));
        fprintf(f, "\"/>\n<text x=\"%.0f\" y=\"%.0f\" fill=\"%s\">%s</text>\n", W - R + 10,
                T + 20.0 + 18 * p, colors[p], sdlk_serve_policy_name(policies[p]));
    }
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    return sdlk_outfile_commit(&out, err);
}

/* ---- rows: simulated runs timed against each other -------------------------------- */

typedef struct sim_run {
    const trace *t;
    sdlk_serve_policy policy;
    const sdlk_serve_profile *prof;
    const sdlk_serve_backend *backend;
    sdlk_serve_stats stats;
    double attainment[4]; /* of the first runs (the live row takes their median) */
    int runs;
} sim_run;

static sdlk_status run_one(void *ctx, sdlk_error *err)
{
    sim_run *s = ctx;
    sdlk_status st = serve_trace(s->t, s->policy, s->prof, s->backend, &s->stats, err);
    if (st == SDLK_OK && s->runs < 4)
        s->attainment[s->runs++] = s->stats.attainment;
    return st;
}

static sdlk_status goodput_row(const bench_options *opt, const sdlk_serve_profile *prof,
                               int n_req, const sweep *sw, sdlk_bench_report *report,
                               sdlk_error *err)
{
    double rate = sw->goodput[0] > 0 ? sw->goodput[0] : sw->rate[0];
    trace t = {0};
    sdlk_status st = trace_make(&t, n_req, rate, mixed_sizes, N_MIXED, 30, sw->slo_scale, NULL,
                                1000, err);
    sim_run a = {&t, SDLK_SERVE_POLICY_TILE, prof, NULL, {0}, {0}, 0};
    sim_run b = {&t, SDLK_SERVE_POLICY_GROUPED, prof, NULL, {0}, {0}, 0};
    char name[96];
    double g = sw->goodput[2] > 0 ? sw->goodput[0] / sw->goodput[2] : INFINITY;
    double f = sw->goodput[3] > 0 ? sw->goodput[0] / sw->goodput[3] : INFINITY;
    snprintf(name, sizeof name, "goodput SLO %gx: tile %.3g req/s = %.2fx grouped, %.2fx fcfs",
             sw->slo_scale, sw->goodput[0], g, f);
    bench_log(opt, FAMILY, "%s; grouped %.3g, fcfs %.3g, tile-fcfs %.3g req/s", name,
              sw->goodput[2], sw->goodput[3], sw->goodput[1]);
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, name, run_one, &a, "grouped (sim, same trace)",
                                run_one, &b, n_req, "req/s", 1.0, opt->reps, err);
    if (st == SDLK_OK)
        sdlk_bench_report_note(report, "%d req per rate, %d rates; goodput grouped %.3g, fcfs "
                               "%.3g, tile-fcfs %.3g req/s; times simulating at tile's goodput",
                               n_req, sw->n_rates, sw->goodput[2], sw->goodput[3],
                               sw->goodput[1]);
    trace_free(&t);
    return st;
}

static sdlk_status attainment_rows(const bench_options *opt, const sdlk_serve_profile *prof,
                                   int n_req, const sweep *sw, sdlk_bench_report *report,
                                   sdlk_error *err)
{
    const double loads[3] = {0.25, 0.5, 0.75}; /* of the ladder */
    for (int k = 0; k < 3; k++) {
        int r = (int)(loads[k] * sw->n_rates);
        r = r >= sw->n_rates ? sw->n_rates - 1 : r;
        trace t = {0};
        sdlk_status st = trace_make(&t, n_req, sw->rate[r], mixed_sizes, N_MIXED, 30,
                                    sw->slo_scale, NULL, (uint64_t)r + 1, err);
        sim_run a = {&t, SDLK_SERVE_POLICY_TILE, prof, NULL, {0}, {0}, 0};
        sim_run b = {&t, SDLK_SERVE_POLICY_GROUPED, prof, NULL, {0}, {0}, 0};
        char name[96];
        snprintf(name, sizeof name, "%.3g req/s: SLO tile %.0f%% grouped %.0f%% fcfs %.0f%%",
                 sw->rate[r], 100 * sw->stats[0][r].attainment, 100 * sw->stats[2][r].attainment,
                 100 * sw->stats[3][r].attainment);
        if (st == SDLK_OK)
            st = sdlk_bench_compare(report, FAMILY, name, run_one, &a, "grouped (sim)", run_one,
                                    &b, n_req, "req/s", 1.0, opt->reps, err);
        if (st == SDLK_OK)
            sdlk_bench_report_note(report, "p50/p99 latency s: tile %.1f/%.1f, grouped "
                                   "%.1f/%.1f, fcfs %.1f/%.1f", sw->stats[0][r].p50_ms / 1e3,
                                   sw->stats[0][r].p99_ms / 1e3, sw->stats[2][r].p50_ms / 1e3,
                                   sw->stats[2][r].p99_ms / 1e3, sw->stats[3][r].p50_ms / 1e3,
                                   sw->stats[3][r].p99_ms / 1e3);
        trace_free(&t);
        if (st != SDLK_OK)
            return st;
    }
    return SDLK_OK;
}

/* ---- live vs simulated ---------------------------------------------------------- */

/* "78/80/85%": attainments in percent, in run order. */
static const char *runs_text(const double *attainment, int runs, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < runs && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%.0f", i ? "/" : "",
                                 100 * attainment[i]);
    if (used < size)
        snprintf(buf + used, size - used, "%%");
    return buf;
}

static sdlk_status live_row(const bench_options *opt, sdlk_serve_live *live,
                            const char *reference, sdlk_bench_report *report, sdlk_error *err)
{
    /* requests of 4-16 tiles and 12 steps (0.2-0.6 s alone): small enough for a trace that
     * serves in half a minute, long enough that a stall of the shared machine (100 ms is
     * common) does not decide an SLO of 2x on its own; --quick: 1-3 tiles, 4 steps */
    static const int64_t full_sizes[][2] = {{128, 128}, {128, 192}, {192, 128}, {256, 128},
                                            {256, 256}};
    static const int64_t quick_sizes[][2] = {{64, 64}, {128, 128}, {64, 128}, {128, 64},
                                             {192, 64}};
    const int64_t(*sizes)[2] = opt->quick ? quick_sizes : full_sizes;
    /* the profile is measured again right before the live runs: on a shared machine the
     * one from the start of the family can be minutes and 30 % of speed away */
    sdlk_serve_profile fresh;
    sdlk_status st = sdlk_serve_live_calibrate(live, reference, opt->quick ? 2 : 5, &fresh, err);
    if (st != SDLK_OK)
        return st;
    const sdlk_serve_profile *prof = &fresh;
    /* 60 requests: one request is 1.7 points of attainment */
    int n = opt->quick ? 8 : 60, steps = opt->quick ? 4 : 12;
    double work = 0;
    for (int k = 0; k < 5; k++)
        work += sdlk_serve_profile_standalone_ms(
            prof, (sizes[k][0] / prof->tile[1]) * (sizes[k][1] / prof->tile[2]), steps, BATCH,
            sizes[k][0], sizes[k][1]);
    double rate = 0.6 * 1e3 / (work / 5);
    trace t = {0};
    /* SLO 2x: tight enough that queueing decides who makes it */
    st = trace_make(&t, n, rate, sizes, 5, steps, 2.0, reference, 4242, err);
    sdlk_serve_backend backend;
    sdlk_serve_live_backend(live, &backend);
    sim_run a = {&t, SDLK_SERVE_POLICY_TILE, prof, &backend, {0}, {0}, 0};
    sim_run b = {&t, SDLK_SERVE_POLICY_TILE, prof, NULL, {0}, {0}, 0};
    sdlk_serve_profile fitted;
    sdlk_serve_stats refit = {0};
    if (st == SDLK_OK)
        st = serve_trace_measured(&t, a.policy, prof, &backend, &a.stats, &fitted, err);
    if (st == SDLK_OK)
        a.attainment[a.runs++] = a.stats.attainment;
    if (st == SDLK_OK)
        st = run_one(&b, err);
    /* the simulator's event model alone: the same trace with the live run's own fits */
    if (st == SDLK_OK)
        st = serve_trace(&t, SDLK_SERVE_POLICY_TILE, &fitted, NULL, &refit, err);
    /* the timed pair runs the live trace twice more (warm-up and timed run): the live
     * attainment is the median of the three runs, machine noise being what it is */
    if (st == SDLK_OK)
        st = sdlk_bench_compare(report, FAMILY, "live vs sim", run_one, &a,
                                "same trace simulated", run_one, &b, n, "req/s", 1.0, 1, err);
    if (st == SDLK_OK) {
        double sorted[4];
        memcpy(sorted, a.attainment, sizeof sorted);
        double live_att = sdlk_median(sorted, (size_t)a.runs);
        char name[96], runs_buf[32];
        snprintf(name, sizeof name, "live %.2f req/s: SLO live %.0f%% vs sim %.0f%% (%+.0f pts)",
                 rate, 100 * live_att, 100 * b.stats.attainment,
                 100 * (live_att - b.stats.attainment));
        sdlk_bench_result *row = &report->results[report->count - 1];
        snprintf(row->name, sizeof row->name, "%s", name);
        bench_log(opt, FAMILY, "%s; live runs %s; p50 live %.0f ms sim %.0f ms; sim with the "
                  "first live run's own fits %.0f%%, p50 %.0f ms; call time spread around "
                  "the fit %.0f%% live, %.0f%% calibrating (%d / %d calls)", name,
                  runs_text(a.attainment, a.runs, runs_buf, sizeof runs_buf), a.stats.p50_ms,
                  b.stats.p50_ms, 100 * refit.attainment, refit.p50_ms,
                  100 * sdlk_serve_profile_tiled_spread(&fitted),
                  100 * sdlk_serve_profile_tiled_spread(prof), fitted.n_samples, prof->n_samples);
        sdlk_bench_report_note(report, "%d req %lldx%lld..%lldx%lld, %d steps, SLO 2x, tile "
                               "B=%d; live: median of %d runs (%s); sim with the first live "
                               "run's fits: %.0f%%", n, (long long)sizes[0][0],
                               (long long)sizes[0][1], (long long)sizes[4][0],
                               (long long)sizes[4][1], steps, BATCH, a.runs,
                               runs_text(a.attainment, a.runs, runs_buf, sizeof runs_buf),
                               100 * refit.attainment);
    }
    trace_free(&t);
    return st;
}

/* ---- quality: tiled vs untiled -------------------------------------------------- */

/* Generate one request alone with `live` under `policy` (tile-fcfs: tiled; fcfs:
 * untiled); the PNG lands in the live backend's directory as <id>.png. */
typedef struct gen_run {
    sdlk_serve_live *live;
    sdlk_serve_request req;
    sdlk_serve_policy policy;
    const sdlk_serve_profile *prof;
    sdlk_serve_stats stats;  /* of the last generation */
} gen_run;

static sdlk_status generate(void *ctx, sdlk_error *err)
{
    gen_run *g = ctx;
    trace t = {&g->req, 1};
    sdlk_serve_backend backend;
    sdlk_serve_live_backend(g->live, &backend);
    return serve_trace(&t, g->policy, g->prof, &backend, &g->stats, err);
}

static void gen_init(gen_run *g, sdlk_serve_live *live, sdlk_serve_policy policy,
                     const sdlk_serve_profile *prof, const char *id, uint64_t seed, int64_t side,
                     int steps, const char *reference)
{
    memset(g, 0, sizeof *g);
    g->live = live;
    g->policy = policy;
    g->prof = prof;
    snprintf(g->req.id, sizeof g->req.id, "%s", id);
    g->req.height = g->req.width = side;
    g->req.steps = steps;
    g->req.seed = seed;
    g->req.slo_ms = 1e12;
    g->req.arrival_ms = -1;
    g->req.reference = (char *)reference;
}

/* Luma plane of a PNG (malloc'd). */
static sdlk_status read_luma(const char *path, float **plane, int64_t *h, int64_t *w,
                             sdlk_error *err)
{
    sdlk_tensor img;
    sdlk_tensor_init(&img);
    sdlk_status st = sdlk_image_read(path, &img, NULL, err);
    if (st != SDLK_OK)
        return st;
    *h = img.shape[0];
    *w = img.shape[1];
    *plane = malloc((size_t)(*h * *w) * sizeof **plane);
    st = *plane ? sdlk_image_luma(&img, *plane, err)
                : sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    sdlk_tensor_free(&img);
    return st;
}

/* Statistics of generated images, summed over seeds. */
typedef struct img_stats {
    sdlk_seam_acc seam;               /* over the tiled run's border lines */
    double diff_interior, diff_edge;  /* mean |tiled - untiled| luma, summed over seeds */
    double mean, var;                 /* sums over images */
    double spectrum[SPECTRUM_BINS];   /* sums over images */
    int images;
} img_stats;

/* Add the image at `path`: seam over the flagged lines, mean, variance, spectrum. */
static sdlk_status stats_add(img_stats *s, const char *path, const uint8_t *rows,
                             const uint8_t *cols, int64_t side, sdlk_error *err)
{
    float *p = NULL;
    int64_t h, w;
    sdlk_status st = read_luma(path, &p, &h, &w, err);
    double spec[SPECTRUM_BINS];
    if (st == SDLK_OK && (h != side || w != side))
        st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: %lldx%lld, expected %lld^2", path,
                            (long long)h, (long long)w, (long long)side);
    if (st == SDLK_OK)
        st = sdlk_power_spectrum(p, h, w, SPECTRUM_BINS, spec, err);
    if (st == SDLK_OK) {
        sdlk_seam_add(&s->seam, p, h, w, rows, cols);
        double m = 0, m2 = 0;
        for (int64_t i = 0; i < h * w; i++) {
            m += p[i];
            m2 += (double)p[i] * p[i];
        }
        m /= (double)(h * w);
        s->mean += m;
        s->var += m2 / (double)(h * w) - m * m;
        for (int k = 0; k < SPECTRUM_BINS; k++)
            s->spectrum[k] += spec[k];
        s->images++;
    }
    free(p);
    return st;
}

/* Mean |a - b| of two lumas, inside and within `margin` pixels of the edges (a torus
 * grid wraps its windows around the edges, an untiled call sees no context there). */
static sdlk_status pixel_diff(const char *a_path, const char *b_path, int64_t margin,
                              double *interior, double *edge, sdlk_error *err)
{
    float *a = NULL, *b = NULL;
    int64_t h, w, h2, w2;
    sdlk_status st = read_luma(a_path, &a, &h, &w, err);
    if (st == SDLK_OK)
        st = read_luma(b_path, &b, &h2, &w2, err);
    if (st == SDLK_OK && (h != h2 || w != w2))
        st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s and %s differ in size", a_path, b_path);
    if (st == SDLK_OK) {
        double si = 0, se = 0;
        int64_t ni = 0, ne = 0;
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                double d = fabs((double)a[y * w + x] - b[y * w + x]);
                int inside = y >= margin && y < h - margin && x >= margin && x < w - margin;
                *(inside ? &si : &se) += d;
                *(inside ? &ni : &ne) += 1;
            }
        *interior += ni ? si / ni : 0;
        *edge += ne ? se / ne : 0;
    }
    free(a);
    free(b);
    return st;
}

/* Relative differences of a against b: mean, variance, spectrum (sum |a - b| / sum b
 * over the bins above DC). */
static void stats_compare(const img_stats *a, const img_stats *b, double *dmean, double *dvar,
                          double *dspec)
{
    *dmean = (a->mean / a->images - b->mean / b->images) / (b->mean / b->images);
    *dvar = (a->var / a->images - b->var / b->images) / (b->var / b->images);
    double num = 0, den = 0;
    for (int k = 1; k < SPECTRUM_BINS; k++) { /* bin 0 holds only the removed mean */
        num += fabs(a->spectrum[k] / a->images - b->spectrum[k] / b->images);
        den += b->spectrum[k] / b->images;
    }
    *dspec = num / den;
}

/* The rows and columns where a tile border lay in any step's shifted grid. */
static void border_flags(const sdlk_serve_live *live, const sdlk_serve_profile *prof,
                         int64_t side, int steps, uint8_t *rows, uint8_t *cols)
{
    int64_t stride[3], shift[3];
    sdlk_serve_live_stride(live, stride);
    memset(rows, 0, (size_t)side);
    memset(cols, 0, (size_t)side);
    for (int k = 0; k < steps; k++) {
        sdlk_tile_torus_shift(prof->tile, stride, k, shift);
        for (int64_t y = shift[1] % prof->tile[1]; y < side; y += prof->tile[1])
            rows[y] = 1;
        for (int64_t x = shift[2] % prof->tile[2]; x < side; x += prof->tile[2])
            cols[x] = 1;
    }
}

typedef struct quality_setup {
    int64_t side;
    int steps, seeds;
    const char *reference, *dir;
    const sdlk_serve_profile *prof;
} quality_setup;

/* One configuration of tiled generation (its live backend decides the grid shifts)
 * against untiled generation of the same requests: a timed row (seed 1, tiled vs
 * untiled) and the quality figures over q->seeds seeds in its name and note. */
static sdlk_status quality_row(const bench_options *opt, const quality_setup *q,
                               sdlk_serve_live *tiled_live, sdlk_serve_live *untiled_live,
                               const char *label, sdlk_bench_report *report, sdlk_error *err)
{
    uint8_t *rows = malloc((size_t)q->side), *cols = malloc((size_t)q->side);
    if (!rows || !cols) {
        free(rows);
        free(cols);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    border_flags(tiled_live, q->prof, q->side, q->steps, rows, cols);
    img_stats ts = {0}, us = {0};
    sdlk_status st = SDLK_OK;
    for (int seed = 1; seed <= q->seeds && st == SDLK_OK; seed++) {
        char tid[32], uid[32], path[1100];
        snprintf(tid, sizeof tid, "t-%s-%d", label, seed);
        snprintf(uid, sizeof uid, "u-%d", seed);
        gen_run t, u;
        gen_init(&t, tiled_live, SDLK_SERVE_POLICY_TILE_FCFS, q->prof, tid, (uint64_t)seed,
                 q->side, q->steps, q->reference);
        gen_init(&u, untiled_live, SDLK_SERVE_POLICY_FCFS, q->prof, uid, (uint64_t)seed,
                 q->side, q->steps, q->reference);
        if (seed == 1) {
            char name[96];
            snprintf(name, sizeof name, "tiled (%s) vs untiled %lld^2", label,
                     (long long)q->side);
            st = sdlk_bench_compare(report, FAMILY, name, generate, &t, "untiled generation",
                                    generate, &u, (double)q->side * q->side * 1e-6, "Mpx/s",
                                    1.0, 1, err);
        } else {
            st = generate(&t, err);
            if (st == SDLK_OK)
                st = generate(&u, err);
        }
        char upath[1100];
        snprintf(path, sizeof path, "%s/%s.png", q->dir, tid);
        snprintf(upath, sizeof upath, "%s/%s.png", q->dir, uid);
        if (st == SDLK_OK)
            st = stats_add(&ts, path, rows, cols, q->side, err);
        if (st == SDLK_OK)
            st = stats_add(&us, upath, rows, cols, q->side, err);
        if (st == SDLK_OK)
            st = pixel_diff(path, upath, 16, &ts.diff_interior, &ts.diff_edge, err);
    }
    if (st == SDLK_OK) {
        double dm, dv, ds;
        stats_compare(&ts, &us, &dm, &dv, &ds);
        sdlk_bench_result *r = &report->results[report->count - 1];
        snprintf(r->name, sizeof r->name, "tiled %s %lld^2: seam %.3f (untiled %.3f) mean "
                 "%+.1f%% var %+.1f%% spec %.1f%%", label, (long long)q->side,
                 sdlk_seam_value(&ts.seam), sdlk_seam_value(&us.seam), 100 * dm, 100 * dv,
                 100 * ds);
        sdlk_bench_report_note(report, "vs untiled, %d seeds x %d steps; luma std tiled %.1f "
                               "untiled %.1f; mean |diff| interior %.2f, 16 px edges %.2f",
                               q->seeds, q->steps, sqrt(ts.var / ts.images),
                               sqrt(us.var / us.images), ts.diff_interior / ts.images,
                               ts.diff_edge / ts.images);
        bench_log(opt, FAMILY, "%s", r->name);
    }
    free(rows);
    free(cols);
    return st;
}

/* The region cache per tile (default threshold) against the same tiled generation
 * without it: the timed row is the cache's speed effect, its name the fraction of
 * tile-steps skipped and the image statistics against the untiled generations (the
 * quality the skips cost), its note the contrast and the pixel difference to the
 * uncached tiled images. */
static sdlk_status cache_row(const bench_options *opt, const quality_setup *q,
                             sdlk_serve_live *tiled_live, sdlk_serve_live *untiled_live,
                             sdlk_bench_report *report, sdlk_error *err)
{
    sdlk_serve_live_opts lo = {.model = "exemplar", .out_dir = q->dir, .threads = opt->threads,
                               .batch = BATCH};
    sdlk_cache_opts_init(&lo.cache);
    lo.cache.enabled = 1;
    lo.cache.tau = SDLK_SERVE_CACHE_TAU;
    sdlk_serve_live *cached = NULL;
    sdlk_status st = sdlk_serve_live_create(&lo, &cached, err);
    uint8_t *flags = calloc((size_t)q->side, 1);
    if (st == SDLK_OK && !flags)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    img_stats cs = {0}, ts = {0}, us = {0};
    int64_t computed = 0, skipped = 0;
    /* the cache never skips the first 5 steps or the last: give --quick's 8-step runs
     * room to show it */
    int steps = q->steps < 16 ? 16 : q->steps;
    for (int seed = 1; seed <= q->seeds && st == SDLK_OK; seed++) {
        char cid[32], tid[32], uid[32], cpath[1100], tpath[1100], upath[1100];
        snprintf(cid, sizeof cid, "c-%d", seed);
        snprintf(tid, sizeof tid, "t-nocache-%d", seed);
        snprintf(uid, sizeof uid, "u-cache-%d", seed);
        gen_run c, t, u;
        gen_init(&c, cached, SDLK_SERVE_POLICY_TILE_FCFS, q->prof, cid, (uint64_t)seed, q->side,
                 steps, q->reference);
        gen_init(&t, tiled_live, SDLK_SERVE_POLICY_TILE_FCFS, q->prof, tid, (uint64_t)seed,
                 q->side, steps, q->reference);
        gen_init(&u, untiled_live, SDLK_SERVE_POLICY_FCFS, q->prof, uid, (uint64_t)seed,
                 q->side, steps, q->reference);
        if (seed == 1) {
            char name[96];
            snprintf(name, sizeof name, "cache tau %g %lld^2", lo.cache.tau, (long long)q->side);
            st = sdlk_bench_compare(report, FAMILY, name, generate, &c, "tiled, cache off",
                                    generate, &t, (double)q->side * q->side * 1e-6, "Mpx/s",
                                    1.0, 1, err);
        } else {
            st = generate(&c, err);
            if (st == SDLK_OK)
                st = generate(&t, err);
        }
        if (st == SDLK_OK)
            st = generate(&u, err);
        computed += c.stats.computed;
        skipped += c.stats.skipped;
        snprintf(cpath, sizeof cpath, "%s/%s.png", q->dir, cid);
        snprintf(tpath, sizeof tpath, "%s/%s.png", q->dir, tid);
        snprintf(upath, sizeof upath, "%s/%s.png", q->dir, uid);
        if (st == SDLK_OK)
            st = stats_add(&cs, cpath, flags, flags, q->side, err);
        if (st == SDLK_OK)
            st = stats_add(&ts, tpath, flags, flags, q->side, err);
        if (st == SDLK_OK)
            st = stats_add(&us, upath, flags, flags, q->side, err);
        if (st == SDLK_OK)
            st = pixel_diff(cpath, tpath, 16, &cs.diff_interior, &cs.diff_edge, err);
    }
    if (st == SDLK_OK) {
        double dm, dv, ds, tm, tv, tsp;
        stats_compare(&cs, &us, &dm, &dv, &ds);
        stats_compare(&ts, &us, &tm, &tv, &tsp);
        double frac = computed + skipped > 0 ? (double)skipped / (double)(computed + skipped) : 0;
        sdlk_bench_result *r = &report->results[report->count - 1];
        snprintf(r->name, sizeof r->name, "cache tau %g %lld^2: %.0f%% skipped; mean %+.1f%% var "
                 "%+.1f%% spec %.1f%%", lo.cache.tau, (long long)q->side, 100 * frac, 100 * dm,
                 100 * dv, 100 * ds);
        sdlk_bench_report_note(report, "vs untiled, %d seeds x %d steps; without the cache: mean "
                               "%+.1f%% var %+.1f%% spec %.1f%%; luma std cached %.1f uncached "
                               "%.1f; mean |cached - uncached| %.2f", q->seeds, steps,
                               100 * tm, 100 * tv, 100 * tsp, sqrt(cs.var / cs.images),
                               sqrt(ts.var / ts.images), cs.diff_interior / cs.images);
        bench_log(opt, FAMILY, "%s", r->name);
    }
    free(flags);
    sdlk_serve_live_destroy(cached);
    return st;
}

/* Contrast (luma std) of untiled generations against the reference's, for exemplar
 * priors of 1, 2 and 3 scales (full runs only: it is a measurement, not a check). */
static sdlk_status contrast_log(const bench_options *opt, const quality_setup *q,
                                sdlk_error *err)
{
    float *ref = NULL;
    int64_t rh, rw;
    sdlk_status st = read_luma(q->reference, &ref, &rh, &rw, err);
    if (st != SDLK_OK)
        return st;
    double m = 0, m2 = 0;
    for (int64_t i = 0; i < rh * rw; i++) {
        m += ref[i];
        m2 += (double)ref[i] * ref[i];
    }
    free(ref);
    m /= (double)(rh * rw);
    double ref_std = sqrt(m2 / (double)(rh * rw) - m * m);
    for (int scales = 1; scales <= 3 && st == SDLK_OK; scales++) {
        char spec[64], id[32], path[1100];
        snprintf(spec, sizeof spec, "exemplar:scales=%d", scales);
        snprintf(id, sizeof id, "contrast-%d", scales);
        sdlk_serve_live_opts lo = {.model = spec, .out_dir = q->dir, .threads = opt->threads,
                                   .batch = BATCH};
        sdlk_serve_live *live = NULL;
        st = sdlk_serve_live_create(&lo, &live, err);
        gen_run g;
        gen_init(&g, live, SDLK_SERVE_POLICY_FCFS, q->prof, id, 1, q->side, q->steps,
                 q->reference);
        if (st == SDLK_OK)
            st = generate(&g, err);
        sdlk_serve_live_destroy(live);
        snprintf(path, sizeof path, "%s/%s.png", q->dir, id);
        img_stats s = {0};
        uint8_t *flags = calloc((size_t)q->side, 1);
        if (st == SDLK_OK)
            st = flags ? stats_add(&s, path, flags, flags, q->side, err)
                       : sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        free(flags);
        if (st == SDLK_OK)
            bench_log(opt, FAMILY, "contrast, %d-scale exemplars: luma std %.1f = %.2f of the "
                      "reference's %.1f", scales, sqrt(s.var), sqrt(s.var) / ref_std, ref_std);
    }
    return st;
}

static sdlk_status quality_rows(const bench_options *opt, sdlk_serve_live *live,
                                const sdlk_serve_profile *prof, const char *reference,
                                const char *dir, sdlk_bench_report *report, sdlk_error *err)
{
    quality_setup q = {.side = opt->quick ? 128 : 256, .steps = opt->quick ? 8 : 30,
                       .seeds = opt->quick ? 1 : 2, .reference = reference, .dir = dir,
                       .prof = prof};
    /* the default: halo windows with shifts on the model's lattice (exact) */
    sdlk_status st = quality_row(opt, &q, live, live, "halo", report, err);
    /* odd shifts (7, 5): borders and the model's lattice move every step */
    sdlk_serve_live_opts lo = {.model = "exemplar", .out_dir = dir, .threads = opt->threads,
                               .batch = BATCH, .shift_stride = {0, 7, 5}};
    sdlk_serve_live *odd = NULL;
    if (st == SDLK_OK)
        st = sdlk_serve_live_create(&lo, &odd, err);
    if (st == SDLK_OK)
        st = quality_row(opt, &q, odd, live, "odd-shift", report, err);
    sdlk_serve_live_destroy(odd);
    if (st == SDLK_OK)
        st = cache_row(opt, &q, live, live, report, err);
    if (st == SDLK_OK && !opt->quick)
        st = contrast_log(opt, &q, err);
    return st;
}

/* ---- the family ----------------------------------------------------------------- */

static const char *find_reference(const bench_options *opt, char *buf, size_t cap)
{
    const char *candidates[] = {"../shared/data/images/brick.png", "brick.png", "coins.png"};
    for (size_t i = 0; i < 3; i++) {
        struct stat sb;
        if (i == 0)
            snprintf(buf, cap, "%s", candidates[0]);
        else
            snprintf(buf, cap, "%s/%s", opt->data_dir, candidates[i]);
        if (stat(buf, &sb) == 0)
            return buf;
    }
    return NULL;
}

/* Whether the comma-separated `list` (NULL or empty: every row) names `row`. */
static int want_row(const char *list, const char *row)
{
    if (!list || !*list)
        return 1;
    size_t len = strlen(row);
    for (const char *p = list; (p = strstr(p, row)) != NULL; p += len)
        if ((p == list || p[-1] == ',') && (p[len] == 0 || p[len] == ','))
            return 1;
    return 0;
}

sdlk_status bench_serve(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err)
{
    char refbuf[1024];
    const char *reference = find_reference(opt, refbuf, sizeof refbuf);
    if (!reference) {
        bench_log(opt, FAMILY, "skipped: no reference image (brick.png or coins.png)");
        return SDLK_OK;
    }
    if (output_writers() < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG, "SDL_BENCH_SERVE_WRITERS='%s': not a count "
                              "of output writers from 0 to %d",
                              getenv("SDL_BENCH_SERVE_WRITERS"), SDLK_SERVE_WRITERS_MAX);
    char *dir = NULL;
    sdlk_status st = bench_scratch_create(opt->tmp_dir, &dir, err);
    if (st != SDLK_OK)
        return st;
    if (opt->threads > 1)
        openblas_set_num_threads(1);
    sdlk_serve_live *live = NULL;
    const char *model = getenv("SDL_BENCH_SERVE_MODEL");
    sdlk_serve_live_opts lo = {.model = model && *model ? model : "exemplar", .out_dir = dir,
                               .threads = opt->threads, .batch = BATCH};
    sdlk_serve_profile prof, *sweep_prof = &prof;
    sdlk_serve_profile *given = NULL; /* SDL_BENCH_SERVE_PROFILE: the sweep's costs */
    sweep *sw = calloc(1, sizeof *sw);
    if (!sw)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    if (st == SDLK_OK)
        st = sdlk_serve_live_create(&lo, &live, err);
    if (st == SDLK_OK)
        st = sdlk_serve_live_calibrate(live, reference, opt->quick ? 2 : 5, &prof, err);
    if (st == SDLK_OK)
        bench_log(opt, FAMILY, "profile (reference %s): tiled %.2f + %.2f ms/tile, untiled "
                  "%.2f + %.2f ms/tile, open %.1f ms, write %.0f ms/Mpx", reference,
                  prof.tiled_a_ms, prof.tiled_b_ms, prof.canvas_a_ms, prof.canvas_b_ms,
                  prof.open_ms, prof.finish_b_ms_per_mpx);
    /* A profile measured elsewhere (another machine, a GPU model: sdl-serve --calibrate
     * there) drives the simulated sweep; the live and quality rows keep this machine's. */
    const char *profile_path = getenv("SDL_BENCH_SERVE_PROFILE");
    if (st == SDLK_OK && profile_path && *profile_path) {
        if (!(given = malloc(sizeof *given)))
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        if (st == SDLK_OK)
            st = sdlk_serve_profile_read(profile_path, given, err);
        if (st == SDLK_OK) {
            sweep_prof = given;
            bench_log(opt, FAMILY, "sweep profile from %s (%s): tiled %.2f + %.2f ms/tile, "
                      "untiled %.2f + %.2f ms/tile", profile_path, given->model,
                      given->tiled_a_ms, given->tiled_b_ms, given->canvas_a_ms,
                      given->canvas_b_ms);
        }
    }
    /* 1600 requests per rate: with 400 the grouped curve, flat near 90 % over a range of
     * rates, put the goodput ratio anywhere from 2.3x to 4x between runs */
    int n_req = opt->quick ? 60 : 1600;
    /* SDL_BENCH_SERVE_ROWS=sweep,live,quality (any of them; default all): on a lent GPU
     * machine the live row alone confirms the simulator against the GPU model in a
     * minute, where the sweep's simulations would spend the lease on CPU work */
    const char *rows = getenv("SDL_BENCH_SERVE_ROWS");
    const int want_sweep = want_row(rows, "sweep"), want_live = want_row(rows, "live"),
              want_quality = want_row(rows, "quality");
    /* the main sweep at SLO 3x (plot and rows), goodput also at 2x and 5x */
    const double scales[3] = {3.0, 2.0, 5.0};
    for (int k = 0; k < (opt->quick ? 1 : 3) && st == SDLK_OK && want_sweep; k++) {
        memset(sw, 0, sizeof *sw);
        sw->slo_scale = scales[k];
        st = run_sweep(opt, sweep_prof, n_req, sw, err);
        if (st == SDLK_OK)
            st = goodput_row(opt, sweep_prof, n_req, sw, report, err);
        if (st == SDLK_OK && k == 0)
            st = attainment_rows(opt, sweep_prof, n_req, sw, report, err);
        if (st == SDLK_OK && k == 0) {
            const char *outdir = getenv("SDL_BENCH_OUT");
            char svg[1024];
            snprintf(svg, sizeof svg, "%s/serve-attainment.svg",
                     outdir && *outdir ? outdir : ".");
            st = write_svg(svg, sw, err);
            if (st == SDLK_OK)
                bench_log(opt, FAMILY, "attainment plot: %s", svg);
        }
    }
    if (st == SDLK_OK && want_live)
        st = live_row(opt, live, reference, report, err);
    if (st == SDLK_OK && want_quality)
        st = quality_rows(opt, live, &prof, reference, dir, report, err);
    sdlk_serve_live_destroy(live);
    free(given);
    free(sw);
    bench_scratch_remove(dir);
    return st;
}
