/* Unit tests of lib/serve: request lines (valid and malformed), the line reader, the
 * latency predictor, profiles, the scheduler policies and EDF admission on hand-made
 * traces with a fake latency function, the simulated clock's event sequence and its
 * writer lanes, all against schedules computed by hand in the comments, and a live
 * engine writing outputs beside the loop on a backend that only sleeps. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/timer.h"
#include "image/image.h"
#include "serve/engine.h"
#include "serve/lines.h"
#include "serve/live.h"
#include "serve/predictor.h"
#include "serve/profile.h"
#include "serve/request.h"
#include "serve/sched.h"
#include "serve/store.h"
#include "unit.h"

/* ---- requests ---------------------------------------------------------------------- */

static sdlk_status parse(const char *line, sdlk_serve_request *r, sdlk_error *err)
{
    sdlk_serve_request_defaults d;
    sdlk_serve_request_defaults_init(&d);
    return sdlk_serve_request_parse(line, strlen(line), "t.jsonl:1", &d, r, err);
}

START_TEST(request_valid)
{
    sdlk_serve_request r;
    sdlk_error err = {0};
    ck_assert_int_eq(parse("{\"id\":\"img-1.a\",\"arrival_ms\":12.5,\"height\":512,\"width\":768,"
                           "\"steps\":20,\"seed\":9,\"slo_ms\":3000,\"reference\":\"b.png\"}\r",
                           &r, &err), SDLK_OK);
    ck_assert_str_eq(r.id, "img-1.a");
    ck_assert_double_eq(r.arrival_ms, 12.5);
    ck_assert_int_eq(r.height, 512);
    ck_assert_int_eq(r.width, 768);
    ck_assert_int_eq(r.steps, 20);
    ck_assert_uint_eq(r.seed, 9);
    ck_assert_double_eq(r.slo_ms, 3000);
    ck_assert_str_eq(r.reference, "b.png");
    ck_assert_ptr_null(r.prompt);
    sdlk_serve_request_clear(&r);
    /* integer id, defaults: steps 30, slo_scale 5, seed = hash of the id, no arrival */
    ck_assert_int_eq(parse("{\"id\":42,\"height\":64,\"width\":64,\"prompt\":\"a cat\"}", &r,
                           &err), SDLK_OK);
    ck_assert_str_eq(r.id, "42");
    ck_assert_int_eq(r.steps, 30);
    ck_assert_double_eq(r.slo_ms, 0);
    ck_assert_double_eq(r.slo_scale, 5.0);
    ck_assert(r.arrival_ms < 0);
    ck_assert_uint_eq(r.seed, sdlk_serve_id_seed("42"));
    ck_assert_uint_ne(sdlk_serve_id_seed("42"), sdlk_serve_id_seed("43"));
    ck_assert_str_eq(r.prompt, "a cat");
    sdlk_serve_request_clear(&r);
}
END_TEST

START_TEST(request_malformed)
{
    static const struct {
        const char *line, *want, *id;
    } cases[] = {
        {"not json", "not JSON", ""},
        {"[1,2]", "not a JSON object", ""},
        {"{\"height\":64,\"width\":64,\"reference\":\"a\"}", "missing \"id\"", ""},
        {"{\"id\":\"../x\",\"height\":64,\"width\":64,\"reference\":\"a\"}", "\"id\" must", ""},
        {"{\"id\":\".hidden\",\"height\":64,\"width\":64,\"reference\":\"a\"}", "\"id\" must", ""},
        {"{\"id\":-3,\"height\":64,\"width\":64,\"reference\":\"a\"}", "\"id\" must", ""},
        {"{\"id\":\"a\",\"width\":64,\"reference\":\"a\"}", "missing \"height\"", "a"},
        {"{\"id\":\"a\",\"height\":0,\"width\":64,\"reference\":\"a\"}", "\"height\" must", "a"},
        {"{\"id\":\"a\",\"height\":64,\"width\":99999,\"reference\":\"a\"}", "\"width\" must", "a"},
        {"{\"id\":\"a\",\"height\":6.5,\"width\":64,\"reference\":\"a\"}", "\"height\" must", "a"},
        {"{\"id\":\"a\",\"height\":64,\"width\":64,\"steps\":0,\"reference\":\"a\"}", "\"steps\"",
         "a"},
        {"{\"id\":\"a\",\"height\":64,\"width\":64,\"slo_ms\":5,\"slo_scale\":2,\"reference\":\"a\"}",
         "not both", "a"},
        {"{\"id\":\"a\",\"height\":64,\"width\":64,\"slo_ms\":-1,\"reference\":\"a\"}", "\"slo_ms\"",
         "a"},
        {"{\"id\":\"a\",\"height\":64,\"width\":64,\"arrival_ms\":\"soon\",\"reference\":\"a\"}",
         "\"arrival_ms\"", "a"},
        {"{\"id\":\"a\",\"height\":64,\"width\":64,\"colour\":1,\"reference\":\"a\"}",
         "unknown member \"colour\"", "a"},
        {"{\"id\":\"a\",\"id\":\"b\",\"height\":64,\"width\":64,\"reference\":\"a\"}", "not JSON", ""},
        {"{\"id\":\"a\",\"height\":64,\"width\":64}", "\"reference\"", "a"},
        {"{\"id\":\"a\",\"height\":64,\"width\":64,\"reference\":\"\"}", "non-empty string", "a"},
        {"{\"id\":\"a\",\"height\":64,\"width\":64,\"reference\":7}", "non-empty string", "a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sdlk_serve_request r;
        sdlk_error err = {0};
        ck_assert_int_eq(parse(cases[i].line, &r, &err), SDLK_ERR_FORMAT);
        ck_assert_msg(strstr(err.msg, cases[i].want) && strstr(err.msg, "t.jsonl:1"),
                      "case %zu: '%s' lacks '%s'", i, err.msg, cases[i].want);
        ck_assert_str_eq(r.id, cases[i].id);
        ck_assert_ptr_null(r.reference);
        sdlk_serve_request_clear(&r);
    }
}
END_TEST

START_TEST(lines_reader)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    size_t big = SDLK_SERVE_LINE_MAX + 10;
    char *text = malloc(big + 64);
    strcpy(text, "one\n\n  \ntwo\r\n");
    size_t n = strlen(text);
    memset(text + n, 'x', big);
    n += big;
    memcpy(text + n, "\nthree", 6);
    n += 6;
    sdlk_serve_lines l;
    sdlk_serve_lines_init(&l, fds[0], "pipe");
    char *line;
    size_t len;
    sdlk_error err = {0};
    /* nothing written yet: a zero timeout returns no line, not an error */
    ck_assert_int_eq(sdlk_serve_lines_next(&l, 0, &line, &len, &err), SDLK_OK);
    ck_assert_ptr_null(line);
    if (fork() == 0) { /* the writer: the pipe holds less than the text */
        close(fds[0]);
        ssize_t w = write(fds[1], text, n);
        _exit(w == (ssize_t)n ? 0 : 1);
    }
    close(fds[1]);
    ck_assert_int_eq(sdlk_serve_lines_next(&l, -1, &line, &len, &err), SDLK_OK);
    ck_assert_str_eq(line, "one");
    ck_assert_int_eq(l.lineno, 1);
    ck_assert_int_eq(sdlk_serve_lines_next(&l, -1, &line, &len, &err), SDLK_OK);
    ck_assert_str_eq(line, "two\r"); /* the parser drops the '\r' */
    ck_assert_int_eq(l.lineno, 4);   /* blank lines count but are skipped */
    ck_assert_int_eq(sdlk_serve_lines_next(&l, -1, &line, &len, &err), SDLK_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "pipe:5: line longer"), "%s", err.msg);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_serve_lines_next(&l, -1, &line, &len, &err), SDLK_OK);
    ck_assert_str_eq(line, "three"); /* the last line has no newline */
    ck_assert_int_eq(sdlk_serve_lines_next(&l, -1, &line, &len, &err), SDLK_ERR_EOF);
    sdlk_serve_lines_free(&l);
    close(fds[0]);
    free(text);
}
END_TEST

/* ---- predictor and profile ---------------------------------------------------------- */

START_TEST(predictor_fits_a_line)
{
    sdlk_serve_predictor p;
    /* a wrong prior (5 + 1 n) worth 2 observations, then exact data 3 + 2 n */
    sdlk_serve_predictor_init(&p, 5.0, 1.0, 16, 2.0, 1.0);
    ck_assert_double_eq_tol(sdlk_serve_predictor_ms(&p, 4), 9.0, 1e-9);
    for (int i = 0; i < 2000; i++) {
        double n = 1 + i % 16;
        sdlk_serve_predictor_observe(&p, n, 3.0 + 2.0 * n);
    }
    /* the prior's two pseudo-points stay in the sums (forget = 1): a bias of about
     * their weight / 2000 times their error */
    ck_assert_double_eq_tol(p.a, 3.0, 0.05);
    ck_assert_double_eq_tol(p.b, 2.0, 0.01);
    /* with forgetting the fit follows a machine that became slower: 10 + 4 n */
    sdlk_serve_predictor_init(&p, 3.0, 2.0, 16, 2.0, 0.9);
    for (int i = 0; i < 300; i++) {
        double n = 1 + i % 16;
        sdlk_serve_predictor_observe(&p, n, 10.0 + 4.0 * n);
    }
    ck_assert_double_eq_tol(p.a, 10.0, 1e-3);
    ck_assert_double_eq_tol(p.b, 4.0, 1e-4);
    ck_assert_double_eq_tol(sdlk_serve_predictor_ms(&p, 8), 42.0, 1e-3);
    ck_assert_double_eq(sdlk_serve_predictor_ms(&p, 0), 0.0);
    /* only one batch size ever seen, no prior: the slope stays the prior's */
    sdlk_serve_predictor_init(&p, 0.0, 1.5, 16, 0.0, 1.0);
    for (int i = 0; i < 10; i++)
        sdlk_serve_predictor_observe(&p, 8, 20.0);
    ck_assert_double_eq_tol(p.b, 1.5, 1e-12);
    ck_assert_double_eq_tol(p.a, 8.0, 1e-9); /* 20 - 1.5 * 8 */
}
END_TEST

START_TEST(profile_roundtrip)
{
    int64_t tile[3] = {1, 64, 64};
    sdlk_serve_profile p, q;
    sdlk_serve_profile_init(&p, tile, 8);
    for (int n = 1; n <= 8; n++)
        sdlk_serve_profile_add_sample(&p, 0, n, 2.0 + 3.0 * n);
    sdlk_serve_profile_add_sample(&p, 1, 4, 20.0); /* one size only: through the origin */
    sdlk_serve_profile_fit(&p);
    ck_assert_double_eq_tol(p.tiled_a_ms, 2.0, 1e-9);
    ck_assert_double_eq_tol(p.tiled_b_ms, 3.0, 1e-9);
    ck_assert_double_eq_tol(p.canvas_a_ms, 0.0, 1e-12);
    ck_assert_double_eq_tol(p.canvas_b_ms, 5.0, 1e-9);
    p.open_ms = 7;
    p.finish_b_ms_per_mpx = 100;
    snprintf(p.model, sizeof p.model, "exemplar:patch=8");
    /* standalone: 2 steps of 20 tiles in calls of 8, 8, 4 + open + 1 Mpx write */
    ck_assert_double_eq_tol(sdlk_serve_profile_standalone_ms(&p, 20, 2, 8, 1000, 1000),
                            7 + 2 * (26 + 26 + 14) + 100, 1e-9);
    char path[] = "/tmp/test_serve_profile_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_serve_profile_write(path, &p, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_serve_profile_read(path, &q, &err), SDLK_OK);
    ck_assert_str_eq(q.model, p.model);
    ck_assert_int_eq(q.max_batch, 8);
    ck_assert_int_eq(q.tile[1], 64);
    ck_assert_double_eq_tol(q.tiled_b_ms, 3.0, 1e-9);
    ck_assert_double_eq_tol(q.open_ms, 7.0, 1e-9);
    ck_assert_int_eq(q.n_samples, 9);
    FILE *f = fopen(path, "w");
    fputs("{\"version\":1,\"tile\":[1,64,64],\"max_batch\":8,\"tiled\":{\"a_ms\":1,\"b_ms\":-2}}",
          f);
    fclose(f);
    ck_assert_int_eq(sdlk_serve_profile_read(path, &q, &err), SDLK_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "\"b_ms\""), "%s", err.msg);
    unlink(path);
}
END_TEST

/* ---- the engine on a simulated clock with a fake latency function ------------------- */

/* Fake costs: a call costs 10 ms + 1 ms per tile (or tile equivalent); opening and
 * writing cost `io` ms each. */
typedef struct fake {
    double io;
    int calls;
    double work[64];
} fake;

static double fake_cost(void *ctx, sdlk_serve_cost_kind kind, double work,
                        const sdlk_serve_job *job)
{
    fake *f = ctx;
    if (kind == SDLK_SERVE_COST_OPEN || kind == SDLK_SERVE_COST_FINISH)
        return f->io;
    if (f->calls < 64)
        f->work[f->calls] = work;
    f->calls++;
    return 10.0 + work;
}

#define MAX_RESULTS 16
typedef struct collected {
    int n;
    sdlk_serve_result r[MAX_RESULTS];
} collected;

static void collect(void *ctx, const sdlk_serve_result *r)
{
    collected *c = ctx;
    if (c->n < MAX_RESULTS)
        c->r[c->n++] = *r;
}

static const sdlk_serve_result *find(const collected *c, const char *id)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->r[i].id, id) == 0)
            return &c->r[i];
    ck_abort_msg("no result for %s", id);
    return NULL;
}

typedef struct rig {
    sdlk_serve_engine *e;
    fake f;
    collected c;
} rig;

/* The rig's configuration: sim clock on the fake's costs (10 + 1 per tile), the
 * predictor started from that truth, results collected. */
static void rig_config(rig *g, sdlk_serve_config *cfg, sdlk_serve_policy policy, int batch,
                       int admission, double io)
{
    memset(g, 0, sizeof *g);
    g->f.io = io;
    sdlk_serve_config_init(cfg);
    cfg->policy = policy;
    cfg->batch = batch;
    cfg->admission = admission;
    cfg->clock = SDLK_SERVE_CLOCK_SIM;
    int64_t tile[3] = {1, 64, 64};
    sdlk_serve_profile_init(&cfg->profile, tile, batch);
    cfg->profile.tiled_a_ms = 10; /* the predictor starts from the fake's truth */
    cfg->profile.tiled_b_ms = 1;
    cfg->profile.canvas_a_ms = 10;
    cfg->profile.canvas_b_ms = 1;
    cfg->cost = fake_cost;
    cfg->cost_ctx = &g->f;
    cfg->on_result = collect;
    cfg->result_ctx = &g->c;
}

static void rig_start_with(rig *g, const sdlk_serve_config *cfg)
{
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_serve_engine_create(cfg, &g->e, &err), SDLK_OK);
}

static void rig_start(rig *g, sdlk_serve_policy policy, int batch, int admission, double io)
{
    sdlk_serve_config cfg;
    rig_config(g, &cfg, policy, batch, admission, io);
    rig_start_with(g, &cfg);
}

static void rig_submit(rig *g, const char *id, int h, int w, int steps, double arrival,
                       double slo_ms)
{
    sdlk_serve_request r = {.height = h, .width = w, .steps = steps, .arrival_ms = arrival,
                            .slo_ms = slo_ms, .slo_scale = 5};
    snprintf(r.id, sizeof r.id, "%s", id);
    r.reference = "ref.png";
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_serve_engine_submit(g->e, &r, &err), SDLK_OK);
}

static void rig_run(rig *g)
{
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_serve_engine_run(g->e, &err), SDLK_OK);
}

static void expect_served(const collected *c, const char *id, double start, double finish,
                          int met, int64_t computed)
{
    const sdlk_serve_result *r = find(c, id);
    ck_assert_msg(r->outcome == SDLK_SERVE_SERVED, "%s: %s", id, r->error);
    ck_assert_double_eq_tol(r->start_ms, start, 1e-9);
    ck_assert_double_eq_tol(r->finish_ms, finish, 1e-9);
    ck_assert_double_eq_tol(r->latency_ms, finish - r->arrival_ms, 1e-9);
    ck_assert_int_eq(r->slo_met, met);
    ck_assert_int_eq(r->computed, computed);
}

/* Trace: A 128x128 (4 tiles) 2 steps at 0, SLO 1000; B 64x64 (1 tile) 2 steps at 5,
 * SLO 40 (deadline 45). B = 4 tiles per call; a call costs 10 + tiles.
 *   tile-fcfs: [0,14) A step 0 (4 tiles); B admitted at 14; [14,28) A step 1 (A first in
 *              arrival order fills the call) -> A done 28; [28,39) B step 0; [39,50) B
 *              step 1 -> B done 50, latency 45 > 40: missed.
 *   tile (EDF): [0,14) A step 0; [14,28) B step 0 + A tiles 0..2 of step 1 (B's deadline
 *              first); [28,40) B step 1 + A tile 3 -> both done at 40: B latency 35, met.
 *   fcfs:      [0,14) A step 0 untiled (4 tile equivalents); [14,28) A step 1 -> 28;
 *              [28,39), [39,50) B -> 50: missed, as tile-fcfs. */
START_TEST(policies_hand_schedules)
{
    rig g;
    rig_start(&g, SDLK_SERVE_POLICY_TILE_FCFS, 4, 0, 0.0);
    rig_submit(&g, "A", 128, 128, 2, 0, 1000);
    rig_submit(&g, "B", 64, 64, 2, 5, 40);
    rig_run(&g);
    ck_assert_int_eq(g.c.n, 2);
    expect_served(&g.c, "A", 0, 28, 1, 8);
    expect_served(&g.c, "B", 28, 50, 0, 2);
    ck_assert_int_eq(g.f.calls, 4);
    sdlk_serve_engine_destroy(g.e);

    rig_start(&g, SDLK_SERVE_POLICY_TILE, 4, 1, 0.0);
    rig_submit(&g, "A", 128, 128, 2, 0, 1000);
    rig_submit(&g, "B", 64, 64, 2, 5, 40);
    rig_run(&g);
    expect_served(&g.c, "B", 14, 40, 1, 2);
    expect_served(&g.c, "A", 0, 40, 1, 8);
    ck_assert_int_eq(g.f.calls, 3);
    ck_assert_double_eq(g.f.work[1], 4);
    ck_assert_double_eq(g.f.work[2], 2);
    sdlk_serve_stats st;
    sdlk_serve_engine_stats(g.e, &st);
    ck_assert_int_eq(st.served, 2);
    ck_assert_int_eq(st.met, 2);
    ck_assert_double_eq(st.attainment, 1.0);
    ck_assert_double_eq_tol(st.p50_ms, 35, 1e-9); /* latencies 35 (B) and 40 (A) */
    ck_assert_double_eq_tol(st.p99_ms, 40, 1e-9);
    sdlk_serve_engine_destroy(g.e);

    rig_start(&g, SDLK_SERVE_POLICY_FCFS, 4, 0, 0.0);
    rig_submit(&g, "A", 128, 128, 2, 0, 1000);
    rig_submit(&g, "B", 64, 64, 2, 5, 40);
    rig_run(&g);
    expect_served(&g.c, "A", 0, 28, 1, 2); /* untiled: one evaluation per step */
    expect_served(&g.c, "B", 28, 50, 0, 2);
    ck_assert_double_eq(g.f.work[0], 4);
    sdlk_serve_engine_destroy(g.e);
}
END_TEST

/* SLO-aware call size (tile policy, no admission), B = 8, a call costs 10 + tiles, so
 * calls go no smaller than 3 tiles (13/3 ms per tile is within twice a full call's
 * 18/8; 12/2 is not):
 *   A 256x128 (8 tiles) 2 steps at 0, SLO 1000; S 64x64 (1 tile) 3 steps at 0, SLO 40.
 *   Full calls would cost S 3 x L(8) = 54 > 40, so calls shrink to what S can afford:
 *   [0,13) S + A tiles 0-1 (3 x L(3) = 39 fits, 3 x L(4) = 42 does not); [13,26) S + A
 *   tiles 2-3 (slack 27: 2 x L(4) = 28 > 27); [26,40) S + A tiles 4-6 (slack 14 = L(4))
 *   -> S done at 40, met; then full calls for A alone: [40,51) its tile 7 of step 0,
 *   [51,69) step 1. tile-fcfs keeps full calls, A's 8 tiles first: S misses. */
START_TEST(tile_calls_shrink_for_tight_slo)
{
    rig g;
    rig_start(&g, SDLK_SERVE_POLICY_TILE, 8, 0, 0.0);
    rig_submit(&g, "A", 256, 128, 2, 0, 1000);
    rig_submit(&g, "S", 64, 64, 3, 0, 40);
    rig_run(&g);
    expect_served(&g.c, "S", 0, 40, 1, 3);
    expect_served(&g.c, "A", 0, 69, 1, 16);
    ck_assert_int_eq(g.f.calls, 5);
    const double work[5] = {3, 3, 4, 1, 8};
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(g.f.work[i], work[i]);
    sdlk_serve_engine_destroy(g.e);

    rig_start(&g, SDLK_SERVE_POLICY_TILE_FCFS, 8, 0, 0.0);
    rig_submit(&g, "A", 256, 128, 2, 0, 1000);
    rig_submit(&g, "S", 64, 64, 3, 0, 40);
    rig_run(&g);
    ck_assert_int_eq(find(&g.c, "S")->slo_met, 0);
    sdlk_serve_engine_destroy(g.e);
}
END_TEST

/* Headroom (same costs and call floor of 3 tiles as above), A 256x128 2 steps, S 64x64
 * 3 steps with SLO 46.5, both at 0:
 *   none: sizes aim S at its deadline: [0,15) S + A 0-3 (3 x L(5) = 45 <= 46.5), [15,30)
 *     S + A 4-7 (slack 31.5: 2 x L(5)), [30,46) S + A's step 1 tiles 0-4 (slack 16.5:
 *     L(6)) -> S at 46 of 46.5; [46,59) A's last 3 tiles.
 *   0.1: [0,14) S + A 0-2 (3 x L(4) x 1.1 = 46.2; L(5) gives 49.5), [14,28) S + A 3-5
 *     (slack 32.5: 2 x 14 x 1.1 = 30.8), [28,41) S + A 6-7 (slack 18.5) -> S at 41,
 *     5.5 ms early; [41,59) A's step 1 in one full call.
 *   auto from a profile whose samples lie 6 % above and below the line: 1.645 x 0.06 =
 *     0.0987 gives the same calls as 0.1.
 *   0.5: no size >= 3 leaves S that much, so it is sized as with none. */
START_TEST(headroom_leaves_slack)
{
    const struct {
        double headroom, s_done;
        int calls;
        double work[4];
        int spread_samples;
    } cases[] = {
        {0.0, 46, 4, {5, 5, 6, 3}, 0},
        {0.1, 41, 4, {4, 4, 3, 8}, 0},
        {-1.0, 41, 4, {4, 4, 3, 8}, 1},
        {0.5, 46, 4, {5, 5, 6, 3}, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        rig g;
        sdlk_serve_config cfg;
        rig_config(&g, &cfg, SDLK_SERVE_POLICY_TILE, 8, 0, 0.0);
        cfg.headroom = cases[k].headroom;
        if (cases[k].spread_samples) { /* 12 x 1.06 and 18 x 0.94: spread 0.06 */
            sdlk_serve_profile_add_sample(&cfg.profile, 0, 2, 12.0 * 1.06);
            sdlk_serve_profile_add_sample(&cfg.profile, 0, 8, 18.0 * 0.94);
            ck_assert_double_eq_tol(sdlk_serve_profile_tiled_spread(&cfg.profile), 0.06, 1e-12);
        }
        rig_start_with(&g, &cfg);
        rig_submit(&g, "A", 256, 128, 2, 0, 1000);
        rig_submit(&g, "S", 64, 64, 3, 0, 46.5);
        rig_run(&g);
        expect_served(&g.c, "S", 0, cases[k].s_done, 1, 3);
        expect_served(&g.c, "A", 0, 59, 1, 16);
        ck_assert_int_eq(g.f.calls, cases[k].calls);
        for (int i = 0; i < cases[k].calls; i++)
            ck_assert_msg(g.f.work[i] == cases[k].work[i], "case %zu call %d: %g tiles", k, i,
                          g.f.work[i]);
        sdlk_serve_engine_destroy(g.e);
    }
}
END_TEST

/* Grouped: C 64x64, E 128x128, D 64x64, all at 0, 2 steps, groups of up to 4 requests.
 * C and D share a group (same size): [0,12) step 0 of both (2 tile equivalents), [12,24) step 1 -> both
 * done at 24; then E alone: [24,38), [38,52). Request-level FCFS instead runs C, E, D:
 * C [0,22), E [22,50), D [50,72). */
START_TEST(grouped_batches_same_size)
{
    rig g;
    rig_start(&g, SDLK_SERVE_POLICY_GROUPED, 4, 0, 0.0);
    rig_submit(&g, "C", 64, 64, 2, 0, 1000);
    rig_submit(&g, "E", 128, 128, 2, 0, 1000);
    rig_submit(&g, "D", 64, 64, 2, 0, 1000);
    rig_run(&g);
    expect_served(&g.c, "C", 0, 24, 1, 2);
    expect_served(&g.c, "D", 0, 24, 1, 2);
    expect_served(&g.c, "E", 24, 52, 1, 2);
    ck_assert_double_eq(g.f.work[0], 2);
    ck_assert_int_eq(g.f.calls, 4);
    sdlk_serve_engine_destroy(g.e);

    rig_start(&g, SDLK_SERVE_POLICY_FCFS, 4, 0, 0.0);
    rig_submit(&g, "C", 64, 64, 2, 0, 1000);
    rig_submit(&g, "E", 128, 128, 2, 0, 1000);
    rig_submit(&g, "D", 64, 64, 2, 0, 1000);
    rig_run(&g);
    expect_served(&g.c, "C", 0, 22, 1, 2);
    expect_served(&g.c, "E", 22, 50, 1, 2);
    expect_served(&g.c, "D", 50, 72, 1, 2);
    sdlk_serve_engine_destroy(g.e);
}
END_TEST

/* EDF admission, B = 1 (a call = 10 + 1 per tile, so c = L(1) = 11 ms per tile):
 *   X 128x128 (4 tiles) 1 step at 0, SLO 50: alone it needs 44 -> admitted.
 *   Y 64x64 1 step at 0, SLO 15: EDF would run Y first (finish 11 <= 15) but push X to
 *     55 > 50, so Y is rejected (predicted finish 11 reported, X named).
 *   Z 64x64 1 step at 0, SLO 5: cannot finish in 11 -> rejected.
 * X then runs alone: 4 calls of 11 ms -> done at 44, met. */
START_TEST(edf_admission)
{
    rig g;
    rig_start(&g, SDLK_SERVE_POLICY_TILE, 1, 1, 0.0);
    rig_submit(&g, "X", 128, 128, 1, 0, 50);
    rig_submit(&g, "Y", 64, 64, 1, 0, 15);
    rig_submit(&g, "Z", 64, 64, 1, 0, 5);
    rig_run(&g);
    ck_assert_int_eq(g.c.n, 3);
    const sdlk_serve_result *y = find(&g.c, "Y"), *z = find(&g.c, "Z");
    ck_assert_int_eq(y->outcome, SDLK_SERVE_REJECTED);
    ck_assert_double_eq_tol(y->predicted_ms, 11, 1e-9);
    /* Y itself would be on time: the message names the request it would make late */
    ck_assert_msg(strstr(y->error, "within its deadline 15 ms, but then request X"), "%s",
                  y->error);
    ck_assert_int_eq(z->outcome, SDLK_SERVE_REJECTED);
    ck_assert_msg(strstr(z->error, "predicted to finish at 11 ms, after its deadline 5 ms"),
                  "%s", z->error);
    expect_served(&g.c, "X", 0, 44, 1, 4);
    sdlk_serve_stats st;
    sdlk_serve_engine_stats(g.e, &st);
    ck_assert_int_eq(st.rejected, 2);
    ck_assert_double_eq_tol(st.attainment, 1.0 / 3.0, 1e-12);
    char *json = sdlk_serve_result_json(y);
    ck_assert_msg(strstr(json, "\"ok\":false") && strstr(json, "\"status\":\"rejected\"") &&
                  strstr(json, "\"predicted_finish_ms\":11"), "%s", json);
    free(json);
    sdlk_serve_engine_destroy(g.e);

    /* without admission control Y runs first and X misses */
    rig_start(&g, SDLK_SERVE_POLICY_TILE, 1, 0, 0.0);
    rig_submit(&g, "X", 128, 128, 1, 0, 50);
    rig_submit(&g, "Y", 64, 64, 1, 0, 15);
    rig_run(&g);
    expect_served(&g.c, "Y", 0, 11, 1, 1);
    expect_served(&g.c, "X", 11, 55, 0, 4);
    sdlk_serve_engine_destroy(g.e);
}
END_TEST

/* The simulated clock's events with open/write costs of 2 ms, tile-fcfs, B = 4:
 *   P 64x64 1 step at 100: the idle clock jumps to 100; open [100,102), call [102,113),
 *     write [113,115) -> served at 115, started at 102.
 *   Q 64x64 2 steps at 103 arrives during P's call; it is admitted after P is written:
 *     open [115,117), step 0 [117,128), step 1 [128,139), write [139,141).
 *   "bad" (100x64, not a multiple of the tile) fails at arrival; the others go on. */
START_TEST(sim_event_sequence)
{
    rig g;
    rig_start(&g, SDLK_SERVE_POLICY_TILE_FCFS, 4, 0, 2.0);
    rig_submit(&g, "P", 64, 64, 1, 100, 1000);
    rig_submit(&g, "Q", 64, 64, 2, 103, 1000);
    rig_submit(&g, "bad", 100, 64, 1, 104, 1000);
    rig_run(&g);
    ck_assert_int_eq(g.c.n, 3);
    expect_served(&g.c, "P", 102, 115, 1, 1);
    expect_served(&g.c, "Q", 117, 141, 1, 2);
    const sdlk_serve_result *bad = find(&g.c, "bad");
    ck_assert_int_eq(bad->outcome, SDLK_SERVE_FAILED);
    ck_assert_msg(strstr(bad->error, "request bad: 100x64 is not a multiple"), "%s", bad->error);
    ck_assert_double_eq_tol(sdlk_serve_engine_now(g.e), 141, 1e-9);
    sdlk_serve_engine_destroy(g.e);
}
END_TEST

/* Writers beside the loop (sim), costs: open and write 20 ms each, a call 10 + 1/tile.
 *   P 64x64 1 step at 0, Q 64x64 1 step at 25, tile-fcfs, B = 4.
 *   writers 0: P open [0,20), call [20,31), write [31,51) -> 51; Q admitted at 51:
 *              open [51,71), call [71,82), write [82,102) -> 102.
 *   writers 1: P open [0,20), call [20,31), write [31,51) on the lane; Q (arrived at 25)
 *              is admitted at 31: open [31,51), call [51,62), write [62,82) -> 82.
 *   Two done together (both at 0): opens [0,20), [20,40), one call [40,52); writers 1:
 *   P [52,72), Q queued [72,92); writers 2: both [52,72). */
static void writers_trace(int writers, double p_arrival, double q_arrival, collected *out)
{
    rig g;
    sdlk_serve_config cfg;
    rig_config(&g, &cfg, SDLK_SERVE_POLICY_TILE_FCFS, 4, 0, 20.0);
    cfg.writers = writers;
    rig_start_with(&g, &cfg);
    rig_submit(&g, "P", 64, 64, 1, p_arrival, 1000);
    rig_submit(&g, "Q", 64, 64, 1, q_arrival, 1000);
    rig_run(&g);
    ck_assert_int_eq(sdlk_serve_engine_pending(g.e), 0);
    *out = g.c;
    sdlk_serve_engine_destroy(g.e);
}

START_TEST(sim_writers_beside_the_loop)
{
    collected c;
    writers_trace(0, 0, 25, &c);
    expect_served(&c, "P", 20, 51, 1, 1);
    expect_served(&c, "Q", 71, 102, 1, 1);
    writers_trace(1, 0, 25, &c);
    expect_served(&c, "P", 20, 51, 1, 1);
    expect_served(&c, "Q", 51, 82, 1, 1);
    writers_trace(1, 0, 0, &c);
    expect_served(&c, "P", 40, 72, 1, 1);
    expect_served(&c, "Q", 40, 92, 1, 1);
    ck_assert_str_eq(c.r[0].id, "P"); /* reported in the order their writes end */
    writers_trace(2, 0, 0, &c);
    expect_served(&c, "P", 40, 72, 1, 1);
    expect_served(&c, "Q", 40, 72, 1, 1);
    sdlk_serve_config cfg;
    rig g;
    rig_config(&g, &cfg, SDLK_SERVE_POLICY_TILE, 4, 1, 0);
    cfg.writers = -1;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_serve_engine_create(&cfg, &g.e, &err), SDLK_ERR_ARG);
    ck_assert_ptr_null(g.e);
}
END_TEST

/* A live backend that computes nothing: each call takes CALL_MS, each write WRITE_MS; it
 * records when calls started and when writes began and ended (engine-independent wall
 * clock), and which writes completed. */
#define CALL_MS 5
#define WRITE_MS 300
typedef struct slow_writer {
    uint64_t call_ns[32];
    int calls;
    uint64_t write_begin_ns[4], write_end_ns[4];
    char written[4][16];
    int writes;
    pthread_mutex_t lock;
} slow_writer;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static sdlk_status slow_open(void *ctx, sdlk_serve_job *job, sdlk_error *err)
{
    (void)ctx, (void)err;
    job->state = job; /* anything non-NULL: close must be called */
    return SDLK_OK;
}

static sdlk_status slow_run(void *ctx, sdlk_serve_batch *b, sdlk_error *err)
{
    (void)b, (void)err;
    slow_writer *w = ctx;
    pthread_mutex_lock(&w->lock);
    if (w->calls < 32)
        w->call_ns[w->calls++] = sdlk_now_ns();
    pthread_mutex_unlock(&w->lock);
    sleep_ms(CALL_MS);
    return SDLK_OK;
}

static sdlk_status slow_finish(void *ctx, sdlk_serve_job *job, char *path, size_t cap,
                               sdlk_error *err)
{
    (void)err;
    slow_writer *w = ctx;
    uint64_t begin = sdlk_now_ns();
    sleep_ms(WRITE_MS);
    snprintf(path, cap, "%s.png", job->req.id);
    pthread_mutex_lock(&w->lock);
    if (w->writes < 4) {
        w->write_begin_ns[w->writes] = begin;
        w->write_end_ns[w->writes] = sdlk_now_ns();
        snprintf(w->written[w->writes++], 16, "%s", job->req.id);
    }
    pthread_mutex_unlock(&w->lock);
    return SDLK_OK;
}

static void slow_close(void *ctx, sdlk_serve_job *job)
{
    (void)ctx;
    job->state = NULL;
}

/* Live, writers 1: A (1 step) finishes first and is written for WRITE_MS while B's three
 * steps run: B's calls start before A's write ends, and A is reported only after it. Then abort while B is being written: abort waits and reports B served. */
START_TEST(live_writes_do_not_stall_the_model)
{
    slow_writer w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.lock, NULL);
    sdlk_serve_backend backend = {&w, slow_open, slow_run, slow_finish, slow_close};
    rig g;
    sdlk_serve_config cfg;
    rig_config(&g, &cfg, SDLK_SERVE_POLICY_TILE_FCFS, 1, 0, 0);
    cfg.clock = SDLK_SERVE_CLOCK_LIVE;
    cfg.cost = NULL;
    cfg.backend = &backend;
    cfg.writers = 1;
    rig_start_with(&g, &cfg);
    rig_submit(&g, "A", 64, 64, 1, -1, 10000);
    rig_submit(&g, "B", 64, 64, 3, -1, 10000);
    sdlk_error err = {0};
    double next;
    /* step until B's last call has run (4 calls: A, B, B, B) */
    for (int guard = 0; guard < 1000 && w.calls < 4; guard++)
        ck_assert_int_eq(sdlk_serve_engine_step(g.e, &next, &err), SDLK_OK);
    ck_assert_int_eq(w.calls, 4);
    pthread_mutex_lock(&w.lock);
    int a_written = w.writes > 0;
    pthread_mutex_unlock(&w.lock);
    /* B's steps ran while A was written (they take 3 x CALL_MS << WRITE_MS) */
    ck_assert_msg(!a_written, "A's write ended before B's calls: the loop waited for it");
    sdlk_serve_engine_abort(g.e); /* B is being written: abort waits for it */
    ck_assert_int_eq(g.c.n, 2);
    ck_assert_int_eq(w.writes, 2);
    ck_assert_str_eq(w.written[0], "A");
    for (int i = 1; i < 4; i++) /* B's calls did not wait for A's write */
        ck_assert_msg(w.call_ns[i] < w.write_end_ns[0], "call %d after A's write", i);
    ck_assert(w.write_begin_ns[1] >= w.write_end_ns[0]); /* one writer: in turn */
    const sdlk_serve_result *a = find(&g.c, "A"), *b = find(&g.c, "B");
    ck_assert_int_eq(a->outcome, SDLK_SERVE_SERVED);
    ck_assert_int_eq(b->outcome, SDLK_SERVE_SERVED);
    ck_assert_str_eq(b->output, "B.png");
    ck_assert(a->finish_ms >= WRITE_MS); /* reported when its write ended */
    ck_assert_int_eq(sdlk_serve_engine_pending(g.e), 0);
    sdlk_serve_engine_destroy(g.e);
    pthread_mutex_destroy(&w.lock);
}
END_TEST

START_TEST(drain_and_abort)
{
    rig g;
    rig_start(&g, SDLK_SERVE_POLICY_TILE_FCFS, 4, 0, 0.0);
    rig_submit(&g, "now", 64, 64, 3, 0, 1000);
    rig_submit(&g, "later", 64, 64, 1, 500, 1000);
    sdlk_error err = {0};
    double next;
    ck_assert_int_eq(sdlk_serve_engine_step(g.e, &next, &err), SDLK_OK); /* admits "now" */
    ck_assert_int_eq(sdlk_serve_engine_step(g.e, &next, &err), SDLK_OK); /* its step 0 */
    sdlk_serve_engine_drain(g.e);
    ck_assert_int_eq(g.c.n, 1);
    ck_assert_int_eq(find(&g.c, "later")->outcome, SDLK_SERVE_NOT_SERVED);
    rig_submit(&g, "after", 64, 64, 1, -1, 1000); /* refused while draining */
    ck_assert_int_eq(find(&g.c, "after")->outcome, SDLK_SERVE_NOT_SERVED);
    ck_assert_int_eq(sdlk_serve_engine_pending(g.e), 1);
    ck_assert_int_eq(sdlk_serve_engine_step(g.e, &next, &err), SDLK_OK); /* step 1 */
    sdlk_serve_engine_abort(g.e);
    const sdlk_serve_result *r = find(&g.c, "now");
    ck_assert_int_eq(r->outcome, SDLK_SERVE_NOT_SERVED);
    ck_assert_msg(strstr(r->error, "at step 2 of 3"), "%s", r->error);
    ck_assert_int_eq(sdlk_serve_engine_pending(g.e), 0);
    sdlk_serve_stats st;
    sdlk_serve_engine_stats(g.e, &st);
    ck_assert_int_eq(st.not_served, 3);
    ck_assert_int_eq(st.served, 0);
    sdlk_serve_engine_destroy(g.e);
}
END_TEST

START_TEST(duplicate_id_and_parse_errors)
{
    rig g;
    rig_start(&g, SDLK_SERVE_POLICY_TILE_FCFS, 4, 0, 0.0);
    rig_submit(&g, "same", 64, 64, 2, 0, 1000);
    rig_submit(&g, "same", 64, 64, 2, 0, 1000);
    sdlk_serve_engine_report_error(g.e, "", "x.jsonl:3: not JSON");
    rig_run(&g);
    ck_assert_int_eq(g.c.n, 3);
    int served = 0, failed = 0;
    for (int i = 0; i < g.c.n; i++) {
        served += g.c.r[i].outcome == SDLK_SERVE_SERVED;
        failed += g.c.r[i].outcome == SDLK_SERVE_FAILED;
    }
    ck_assert_int_eq(served, 1);
    ck_assert_int_eq(failed, 2);
    sdlk_serve_engine_destroy(g.e);
}
END_TEST

/* ---- the region cache: what the clocks charge, what the live backend skips ---------- */

/* Sim: tiles 1 and 3 of step 1 and every tile of step 2 are answered from the cache. */
static int skip_pattern(void *ctx, const sdlk_serve_job *job, int step, int64_t tile)
{
    (void)job;
    ++*(int *)ctx;
    return (step == 1 && tile % 2 == 1) || step == 2;
}

/* R 128x128 (4 tiles) 3 steps at 0, B = 4, a call 10 + computed tiles, io 0:
 *   step 0: 4 computed [0,14); step 1: tiles 0, 2 computed [14,26); step 2: all skipped,
 *   no model call, no time -> served at 26 with 6 computed, 6 skipped, 2 calls. Charging
 *   the skipped tiles would give 14 + 14 + 14 = 42. */
START_TEST(sim_charges_skipped_tiles_nothing)
{
    rig g;
    memset(&g, 0, sizeof g);
    sdlk_serve_config cfg;
    sdlk_serve_config_init(&cfg);
    cfg.policy = SDLK_SERVE_POLICY_TILE_FCFS;
    cfg.batch = 4;
    cfg.clock = SDLK_SERVE_CLOCK_SIM;
    int64_t tile[3] = {1, 64, 64};
    sdlk_serve_profile_init(&cfg.profile, tile, 4);
    cfg.profile.tiled_a_ms = 10;
    cfg.profile.tiled_b_ms = 1;
    cfg.cost = fake_cost;
    cfg.cost_ctx = &g.f;
    int asked = 0;
    cfg.sim_skip = skip_pattern;
    cfg.sim_skip_ctx = &asked;
    cfg.on_result = collect;
    cfg.result_ctx = &g.c;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_serve_engine_create(&cfg, &g.e, &err), SDLK_OK);
    rig_submit(&g, "R", 128, 128, 3, 0, 1000);
    rig_run(&g);
    expect_served(&g.c, "R", 0, 26, 1, 6);
    ck_assert_int_eq(find(&g.c, "R")->skipped, 6);
    ck_assert_int_eq(asked, 12);
    ck_assert_int_eq(g.f.calls, 2);
    ck_assert_double_eq(g.f.work[1], 2);
    sdlk_serve_stats st;
    sdlk_serve_engine_stats(g.e, &st);
    ck_assert_int_eq(st.calls, 2);
    ck_assert_int_eq(st.computed, 6);
    ck_assert_int_eq(st.skipped, 6);
    char *json = sdlk_serve_result_json(find(&g.c, "R"));
    ck_assert_ptr_nonnull(json);
    ck_assert_msg(strstr(json, "\"computed\":6,\"skipped\":6"), "%s", json);
    free(json);
    sdlk_serve_engine_destroy(g.e);
}
END_TEST

/* Serve one live request (reference coins.png, 2 tile workers, calls of 4 tiles) with
 * `lo`'s model, cache and eta under `policy`; returns its result and decodes its PNG
 * into *img (which must then be the requested size), removing the file. */
static void live_serve_one(sdlk_serve_live_opts *lo, sdlk_serve_policy policy, const char *id,
                           int64_t height, int64_t width, int steps, uint64_t seed,
                           sdlk_serve_result *out, sdlk_tensor *img)
{
    const char *data = getenv("SDL_TESTDATA");
    ck_assert_msg(data != NULL, "SDL_TESTDATA is not set");
    char ref[1024];
    snprintf(ref, sizeof ref, "%s/coins.png", data);
    lo->threads = 2;
    lo->batch = 4;
    sdlk_serve_live *live = NULL;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_serve_live_create(lo, &live, &err) == SDLK_OK, "%s", err.msg);
    sdlk_serve_backend backend;
    sdlk_serve_live_backend(live, &backend);
    sdlk_serve_config cfg;
    sdlk_serve_config_init(&cfg);
    cfg.policy = policy;
    cfg.batch = 4;
    int64_t core[3];
    sdlk_serve_live_core(live, core);
    sdlk_serve_profile_init(&cfg.profile, core, 4);
    cfg.profile.tiled_b_ms = 1;
    cfg.backend = &backend;
    collected c = {0};
    cfg.on_result = collect;
    cfg.result_ctx = &c;
    sdlk_serve_engine *e = NULL;
    ck_assert_int_eq(sdlk_serve_engine_create(&cfg, &e, &err), SDLK_OK);
    sdlk_serve_request r = {.height = height, .width = width, .steps = steps,
                            .arrival_ms = 0, .slo_ms = 1e9, .seed = seed, .reference = ref};
    snprintf(r.id, sizeof r.id, "%s", id);
    ck_assert_int_eq(sdlk_serve_engine_submit(e, &r, &err), SDLK_OK);
    ck_assert_msg(sdlk_serve_engine_run(e, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_int_eq(c.n, 1);
    ck_assert_msg(c.r[0].outcome == SDLK_SERVE_SERVED, "%s", c.r[0].error);
    *out = c.r[0];
    sdlk_serve_engine_destroy(e);
    sdlk_serve_live_destroy(live);
    sdlk_tensor_init(img);
    ck_assert_msg(sdlk_image_read(out->output, img, NULL, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_int_eq(img->shape[0], height);
    ck_assert_int_eq(img->shape[1], width);
    unlink(out->output);
}

/* Live: one 64x128 request (8 cores of 32) of 10 steps with the exemplar model, served
 * with the cache off and on (a threshold no error reaches). Off: every tile-step is
 * computed. On: the cache may skip only after the warm-up (5 steps), never the last
 * step, and only tiles computed twice -- so some of steps 5..8 are skipped and the
 * others computed; the PNG is written and decodes at the requested size either way. */
static void live_cache_run(int cache_on, const char *dir, sdlk_serve_result *out)
{
    sdlk_serve_live_opts lo = {.model = "exemplar:tile=32,max_exemplars=256", .out_dir = dir};
    sdlk_cache_opts_init(&lo.cache);
    lo.cache.enabled = cache_on;
    lo.cache.tau = 1e9;
    sdlk_tensor img;
    live_serve_one(&lo, SDLK_SERVE_POLICY_TILE_FCFS, cache_on ? "cache-on" : "cache-off", 64,
                   128, 10, 5, out, &img);
    sdlk_tensor_free(&img);
}

START_TEST(live_cache_skips_tiles)
{
    char dir[] = "/tmp/sdl-test-serve-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    sdlk_serve_result off, on;
    live_cache_run(0, dir, &off);
    live_cache_run(1, dir, &on);
    rmdir(dir);
    ck_assert_int_eq(off.tiles, 8);
    ck_assert_int_eq(off.computed, 80);
    ck_assert_int_eq(off.skipped, 0);
    ck_assert_int_eq(on.computed + on.skipped, 80);
    ck_assert_msg(on.skipped > 0, "nothing skipped with tau 1e9");
    /* steps 0..4 and 9 are always computed: at most 4 of 10 steps can be skipped */
    ck_assert_int_le(on.skipped, 32);
    ck_assert_int_ge(on.computed, 48);
}
END_TEST

/* Live generation of one 64x96 request of 8 steps with sampler noise eta (tile-fcfs);
 * returns the decoded image (u8, [64, 96, 3]). */
static void live_generate(const char *model, double eta, const char *dir, const char *id,
                          sdlk_tensor *img)
{
    sdlk_serve_live_opts lo = {.model = model, .out_dir = dir, .eta = eta};
    sdlk_serve_result r;
    live_serve_one(&lo, SDLK_SERVE_POLICY_TILE_FCFS, id, 64, 96, 8, 11, &r, img);
}

/* Largest |a - b| over the pixels at least `margin` from the image border. */
static int interior_max_diff(const sdlk_tensor *a, const sdlk_tensor *b, int64_t margin)
{
    int worst = 0;
    for (int64_t y = margin; y < a->shape[0] - margin; y++)
        for (int64_t x = margin; x < a->shape[1] - margin; x++)
            for (int64_t k = 0; k < 3; k++) {
                int64_t idx[3] = {y, x, k};
                int d = (int)fabs(sdlk_tensor_get(a, idx) - sdlk_tensor_get(b, idx));
                worst = d > worst ? d : worst;
            }
    return worst;
}

/* The sampler noise (eta) is drawn by canvas position and step, and the moving patch
 * grid is placed by canvas position: with the exact halo (patch - 1), 32 px cores give
 * the image that one core over the whole (wrapping) canvas gives, to u8 rounding,
 * although the grids differ and move differently. (Against the untiled policy the
 * border differs -- a canvas has edges where the torus wraps -- and that difference
 * spreads by a halo per step.) eta changes the image; the same eta twice does not. */
START_TEST(live_eta_tiled_equals_one_core)
{
    char dir[] = "/tmp/sdl-test-serve-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *model = "exemplar:tile=32,max_exemplars=256,halo=7";
    sdlk_tensor tiled, whole, again, plain;
    live_generate(model, 0.5, dir, "tiled", &tiled);
    live_generate("exemplar:tile=1x64x96,max_exemplars=256,halo=7", 0.5, dir, "whole", &whole);
    live_generate(model, 0.5, dir, "again", &again);
    live_generate(model, 0.0, dir, "plain", &plain);
    rmdir(dir);
    int diff = interior_max_diff(&tiled, &whole, 0);
    ck_assert_msg(diff <= 1, "32 px cores vs one core: max difference %d", diff);
    ck_assert_int_eq(interior_max_diff(&tiled, &again, 0), 0);
    diff = interior_max_diff(&tiled, &plain, 8);
    ck_assert_msg(diff > 8, "eta 0.5 vs 0: max difference only %d", diff);
    sdlk_tensor_free(&tiled);
    sdlk_tensor_free(&whole);
    sdlk_tensor_free(&again);
    sdlk_tensor_free(&plain);
}
END_TEST

/* ---- the tile store ------------------------------------------------------------------ */

START_TEST(store_grids_shift)
{
    sdlk_serve_store s;
    sdlk_serve_store_init(&s);
    sdlk_serve_request r = {.height = 128, .width = 192, .steps = 4};
    snprintf(r.id, sizeof r.id, "g");
    int64_t tile[3] = {1, 64, 64}, stride[3];
    sdlk_serve_job *job;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_serve_store_add(&s, &r, 0, tile, &job, &err), SDLK_OK);
    ck_assert_int_eq(job->tiles, 6);
    ck_assert_double_eq(sdlk_serve_job_remaining_tiles(job), 24);
    sdlk_serve_default_stride(tile, stride);
    ck_assert_int_eq(stride[1], 7);
    ck_assert_int_eq(stride[2], 5);
    sdlk_tile_grid g0, g1;
    ck_assert_int_eq(sdlk_serve_job_grid(job, 0, stride, &g0, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_serve_job_grid(job, 1, stride, &g1, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tile_grid_count(&g0), 6);
    ck_assert_int_eq(g0.shift[1], 0);
    ck_assert_int_eq(g1.shift[1], 7);
    ck_assert_int_eq(g1.shift[2], 5);
    ck_assert_ptr_eq(sdlk_serve_store_find(&s, "g"), job);
    sdlk_serve_store_remove(&s, job);
    ck_assert_ptr_null(sdlk_serve_store_find(&s, "g"));
    r.height = 96;
    ck_assert_int_eq(sdlk_serve_store_add(&s, &r, 0, tile, &job, &err), SDLK_ERR_ARG);
    sdlk_serve_store_free(&s);
    sdlk_serve_policy p;
    ck_assert_int_eq(sdlk_serve_policy_parse("resolution-grouped", &p), 0);
    ck_assert_int_eq(p, SDLK_SERVE_POLICY_GROUPED);
    ck_assert_int_eq(sdlk_serve_policy_parse("lifo", &p), -1);
}
END_TEST

int main(void)
{
    return UNIT_RUN("serve", request_valid, request_malformed, lines_reader,
                    predictor_fits_a_line, profile_roundtrip, policies_hand_schedules,
                    tile_calls_shrink_for_tight_slo, headroom_leaves_slack,
                    grouped_batches_same_size, edf_admission, sim_event_sequence,
                    drain_and_abort, duplicate_id_and_parse_errors, store_grids_shift,
                    sim_writers_beside_the_loop, live_writes_do_not_stall_the_model,
                    sim_charges_skipped_tiles_nothing, live_cache_skips_tiles,
                    live_eta_tiled_equals_one_core);
}
