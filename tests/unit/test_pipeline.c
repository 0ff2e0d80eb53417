/* Tests of lib/core/pipeline: every item exactly once in every mode, order kept when
 * asked, per-item errors delivered, fatal errors stop cleanly with every undelivered item
 * discarded, the allocator, and thread allocation following a stage made 4x dearer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pipeline.h"
#include "unit.h"

#define MAX_STAGES 8

typedef struct item {
    int64_t id;
    int stages_run; /* bit s set by stage s */
    int next_stage; /* the stage that must run next: stages run in order */
} item;

typedef struct source_ctx {
    int64_t next, count;
    int64_t fatal_at; /* return a fatal error instead of this item (-1: never) */
} source_ctx;

typedef struct sink_ctx {
    int64_t count, failed, last_id;
    int in_order, out_of_order;
    unsigned char *seen;       /* [items] delivery count per id */
    int64_t fatal_at;          /* return a fatal error on the item with this id */
    int64_t discarded;
    int bad_error_messages;
} sink_ctx;

typedef struct stage_ctx {
    int index, n_stages, threads;
    int64_t fail_modulo;       /* ids with id % fail_modulo == 3 fail here (0: none) */
    long sleep_ns;             /* simulated cost */
    int bad_worker;            /* set when a worker index is out of range (racy flag, 0/1) */
} stage_ctx;

static sdlk_status source_next(void *vctx, void **out, sdlk_error *err)
{
    source_ctx *ctx = vctx;
    if (ctx->next == ctx->fatal_at)
        return sdlk_error_set(err, SDLK_ERR_IO, "input list: read error at %lld",
                              (long long)ctx->next);
    if (ctx->next >= ctx->count)
        return SDLK_ERR_EOF;
    item *it = calloc(1, sizeof *it);
    if (!it)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    it->id = ctx->next++;
    *out = it;
    return SDLK_OK;
}

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

static sdlk_status stage_run(void *vctx, void *vitem, int worker, sdlk_error *err)
{
    stage_ctx *ctx = vctx;
    item *it = vitem;
    if (worker < 0 || worker >= ctx->threads)
        __atomic_store_n(&ctx->bad_worker, 1, __ATOMIC_RELAXED);
    if (it->next_stage != ctx->index)
        it->next_stage = -1000; /* out of order: the sink will see it */
    else
        it->next_stage++;
    it->stages_run |= 1 << ctx->index;
    if (ctx->sleep_ns)
        sleep_ns(ctx->sleep_ns);
    if (ctx->fail_modulo && it->id % ctx->fail_modulo == 3)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "item %lld: broken in stage %d",
                              (long long)it->id, ctx->index);
    return SDLK_OK;
}

static sdlk_status sink_put(void *vctx, void *vitem, sdlk_status status, const sdlk_error *item_err,
                            int failed_stage, sdlk_error *err)
{
    sink_ctx *ctx = vctx;
    item *it = vitem;
    if (ctx->in_order && it->id != ctx->last_id + 1)
        ctx->out_of_order++;
    ctx->last_id = it->id;
    ctx->seen[it->id]++;
    ctx->count++;
    if (status) {
        ctx->failed++;
        char expect[64];
        snprintf(expect, sizeof expect, "item %lld: broken in stage %d", (long long)it->id,
                 failed_stage);
        /* the failing stage ran, the later ones did not */
        if (!item_err || strcmp(item_err->msg, expect) || it->next_stage != failed_stage + 1 ||
            it->stages_run != (1 << (failed_stage + 1)) - 1)
            ctx->bad_error_messages++;
    } else if (item_err || failed_stage != -1) {
        ctx->bad_error_messages++;
    }
    int64_t id = it->id;
    free(it);
    if (id == ctx->fatal_at)
        return sdlk_error_set(err, SDLK_ERR_IO, "output: disk full at item %lld", (long long)id);
    return SDLK_OK;
}

static void discard_item(void *vctx, void *vitem)
{
    sink_ctx *ctx = vctx;
    item *it = vitem;
    ctx->seen[it->id]++;
    ctx->discarded++;
    free(it);
}

typedef struct run_setup {
    int n_stages, threads, queue_capacity, max_in_flight, in_order;
    sdlk_pipeline_mode mode;
    int64_t items, fail_modulo, source_fatal_at, sink_fatal_at;
    int fail_stage;
    long sleep_ns[MAX_STAGES];
    const int *fixed_threads;
} run_setup;

typedef struct run_result {
    sdlk_status status;
    sdlk_error err;
    sdlk_pipeline_stats stats;
    sink_ctx sink;
    int bad_worker;
} run_result;

/* Run a pipeline per `setup`, check the invariants that hold in every case (each pulled
 * item delivered or discarded exactly once; stage order; worker indices), and return
 * the rest for the caller to check. */
static void run_pipeline(const run_setup *setup, run_result *r)
{
    memset(r, 0, sizeof *r);
    stage_ctx stage_ctxs[MAX_STAGES];
    sdlk_pipeline_stage stages[MAX_STAGES];
    char names[MAX_STAGES][16];
    for (int s = 0; s < setup->n_stages; s++) {
        stage_ctxs[s] = (stage_ctx){.index = s, .n_stages = setup->n_stages,
                                    .threads = setup->threads,
                                    .fail_modulo = s == setup->fail_stage ? setup->fail_modulo : 0,
                                    .sleep_ns = setup->sleep_ns[s]};
        snprintf(names[s], sizeof names[s], "stage%d", s);
        stages[s] = (sdlk_pipeline_stage){names[s], stage_run, &stage_ctxs[s]};
    }
    source_ctx src = {.count = setup->items, .fatal_at = setup->source_fatal_at};
    r->sink = (sink_ctx){.last_id = -1, .in_order = setup->in_order,
                         .seen = calloc((size_t)setup->items + 1, 1),
                         .fatal_at = setup->sink_fatal_at};
    ck_assert_ptr_nonnull(r->sink.seen);
    sdlk_pipeline_config cfg = SDLK_PIPELINE_CONFIG_INIT;
    cfg.stages = stages;
    cfg.n_stages = setup->n_stages;
    cfg.source = source_next;
    cfg.source_ctx = &src;
    cfg.sink = sink_put;
    cfg.sink_ctx = &r->sink;
    cfg.discard = discard_item;
    cfg.discard_ctx = &r->sink;
    cfg.threads = setup->threads;
    cfg.mode = setup->mode;
    cfg.in_order = setup->in_order;
    cfg.queue_capacity = setup->queue_capacity;
    cfg.max_in_flight = setup->max_in_flight;
    cfg.fixed_threads = setup->fixed_threads;
    cfg.rebalance_interval_s = 0.005;
    sdlk_error_clear(&r->err);
    r->status = sdlk_pipeline_run(&cfg, &r->stats, &r->err);

    int64_t pulled = src.next;
    for (int64_t id = 0; id < pulled; id++)
        ck_assert_msg(r->sink.seen[id] == 1, "item %lld seen %d times", (long long)id,
                      r->sink.seen[id]);
    ck_assert_int_eq(r->sink.count + r->sink.discarded, pulled);
    ck_assert_int_eq(r->stats.items, r->sink.count);
    ck_assert_int_eq(r->stats.items_discarded, r->sink.discarded);
    ck_assert_int_eq(r->stats.items_failed, r->sink.failed);
    ck_assert_int_eq(r->sink.out_of_order, 0);
    ck_assert_int_eq(r->sink.bad_error_messages, 0);
    for (int s = 0; s < setup->n_stages; s++)
        r->bad_worker |= stage_ctxs[s].bad_worker;
    ck_assert_int_eq(r->bad_worker, 0);
    free(r->sink.seen);
    r->sink.seen = NULL;
}

static const sdlk_pipeline_mode all_modes[] = {SDLK_PIPE_ADAPTIVE, SDLK_PIPE_FIXED,
                                               SDLK_PIPE_SEQUENTIAL};

START_TEST(every_item_once_in_every_mode_with_errors)
{
    for (int m = 0; m < 3; m++) {
        for (int in_order = 0; in_order < 2; in_order++) {
            for (int threads = 1; threads <= 9; threads += 4) {
                run_setup setup = {.n_stages = 4, .threads = threads, .mode = all_modes[m],
                                   .in_order = in_order, .items = 3000, .fail_modulo = 97,
                                   .fail_stage = 2, .source_fatal_at = -1,
                                   .sink_fatal_at = -1};
                run_result r;
                run_pipeline(&setup, &r);
                ck_assert_msg(r.status == SDLK_OK, "%s", r.err.msg);
                ck_assert_int_eq(r.stats.items, 3000);
                ck_assert_int_eq(r.stats.items_failed, (3000 - 3 + 96) / 97);
                ck_assert_int_eq(r.stats.stages[2].failures, r.stats.items_failed);
                ck_assert_int_eq(r.stats.stages[0].items, 3000);
                ck_assert_int_eq(r.stats.stages[3].items, 3000 - r.stats.items_failed);
                ck_assert_int_eq(r.stats.mode,
                                 threads < 4 ? SDLK_PIPE_SEQUENTIAL : all_modes[m]);
                ck_assert_int_eq(r.stats.threads, threads);
                ck_assert(r.stats.items_per_s > 0);
                sdlk_pipeline_stats_free(&r.stats);
            }
        }
    }
}
END_TEST

START_TEST(allocator_balances_rates)
{
    int out[4];
    sdlk_pipeline_allocate((const double[]){1, 4, 1, 1}, 4, 7, out);
    ck_assert_int_eq(out[0], 1);
    ck_assert_int_eq(out[1], 4);
    ck_assert_int_eq(out[2], 1);
    ck_assert_int_eq(out[3], 1);
    sdlk_pipeline_allocate((const double[]){2, 1, 0, 1}, 4, 4, out);
    for (int s = 0; s < 4; s++)
        ck_assert_int_eq(out[s], 1); /* at least one each, nothing left */
    sdlk_pipeline_allocate((const double[]){3e-3, 1e-3, 2e-3}, 3, 12, out);
    ck_assert_int_eq(out[0], 6);
    ck_assert_int_eq(out[1], 2);
    ck_assert_int_eq(out[2], 4);
    /* an unmeasured (zero) stage counts as the cheapest one */
    sdlk_pipeline_allocate((const double[]){0, 1e-3, 5e-3}, 3, 8, out);
    ck_assert_int_eq(out[0] + out[1] + out[2], 8);
    ck_assert_int_eq(out[1], 1);
    ck_assert_int_eq(out[2], 5);
}
END_TEST

/* Stage 1 sleeps 4x longer than the others: the adaptive allocator must move threads to
 * it. Sleeping makes the cost independent of the number of cores of the test machine;
 * the sleeps are milliseconds so that a loaded machine's wake-up latency (a few hundred
 * microseconds under a sanitizer on 2 busy cores) cannot flatten the measured ratio. */
START_TEST(adaptive_gives_threads_to_the_expensive_stage)
{
    run_setup setup = {.n_stages = 4, .threads = 8, .mode = SDLK_PIPE_ADAPTIVE, .items = 240,
                       .source_fatal_at = -1, .sink_fatal_at = -1, .fail_stage = -1,
                       .sleep_ns = {1000000, 4000000, 1000000, 1000000}};
    run_result r;
    run_pipeline(&setup, &r);
    ck_assert_msg(r.status == SDLK_OK, "%s", r.err.msg);
    const sdlk_pipeline_stats *st = &r.stats;
    ck_assert_int_ge(st->rebalances, 1);
    ck_assert_int_ge(st->n_allocs, 2);
    /* ideal: {1, 4, 1, 1} + one spare; a wide band */
    ck_assert_int_ge(st->stages[1].final_threads, 3);
    for (int s = 0; s < 4; s++) {
        if (s != 1)
            ck_assert_int_le(st->stages[s].final_threads, 2);
        ck_assert_int_ge(st->stages[s].final_threads, 1);
    }
    ck_assert(st->stages[1].mean_threads > 2.0);
    /* measured cost ratio in a wide band around 4 */
    double ratio = st->stages[1].cost_s / st->stages[0].cost_s;
    ck_assert_msg(ratio > 2 && ratio < 8, "cost ratio %g", ratio);
    /* every logged assignment uses every thread and gives each stage one */
    for (int k = 0; k < st->n_allocs; k++) {
        int sum = 0;
        for (int s = 0; s < 4; s++) {
            ck_assert_int_ge(st->alloc_threads[k * 4 + s], 1);
            sum += st->alloc_threads[k * 4 + s];
        }
        ck_assert_int_eq(sum, 8);
        if (k)
            ck_assert(st->alloc_time_s[k] >= st->alloc_time_s[k - 1]);
    }
    sdlk_pipeline_stats_free(&r.stats);
}
END_TEST

START_TEST(fixed_mode_keeps_its_assignment)
{
    static const int counts[4] = {1, 2, 1, 2};
    run_setup setup = {.n_stages = 4, .threads = 6, .mode = SDLK_PIPE_FIXED, .items = 300,
                       .in_order = 1, .source_fatal_at = -1, .sink_fatal_at = -1,
                       .fail_stage = -1, .sleep_ns = {100000, 400000, 100000, 100000},
                       .fixed_threads = counts};
    run_result r;
    run_pipeline(&setup, &r);
    ck_assert_msg(r.status == SDLK_OK, "%s", r.err.msg);
    ck_assert_int_eq(r.stats.rebalances, 0);
    ck_assert_int_eq(r.stats.n_allocs, 1);
    for (int s = 0; s < 4; s++) {
        ck_assert_int_eq(r.stats.stages[s].final_threads, counts[s]);
        ck_assert(r.stats.stages[s].mean_threads > counts[s] - 0.01 &&
                  r.stats.stages[s].mean_threads < counts[s] + 0.01);
        ck_assert(r.stats.stages[s].busy_s > 0);
    }
    sdlk_pipeline_stats_free(&r.stats);

    /* one thread per stage by default when threads == stages */
    setup.fixed_threads = NULL;
    setup.threads = 4;
    run_pipeline(&setup, &r);
    ck_assert_int_eq(r.status, SDLK_OK);
    for (int s = 0; s < 4; s++)
        ck_assert_int_eq(r.stats.stages[s].final_threads, 1);
    sdlk_pipeline_stats_free(&r.stats);
}
END_TEST

START_TEST(sequential_mode_runs_whole_items)
{
    run_setup setup = {.n_stages = 3, .threads = 1, .mode = SDLK_PIPE_SEQUENTIAL, .items = 500,
                       .in_order = 1, .source_fatal_at = -1, .sink_fatal_at = -1,
                       .fail_stage = 1, .fail_modulo = 10};
    run_result r;
    run_pipeline(&setup, &r);
    ck_assert_int_eq(r.status, SDLK_OK);
    ck_assert_int_eq(r.stats.mode, SDLK_PIPE_SEQUENTIAL);
    ck_assert_int_eq(r.stats.items_failed, 50);
    ck_assert_int_eq(r.stats.rebalances, 0);
    sdlk_pipeline_stats_free(&r.stats);
}
END_TEST

START_TEST(zero_items)
{
    for (int m = 0; m < 3; m++) {
        run_setup setup = {.n_stages = 3, .threads = 4, .mode = all_modes[m], .items = 0,
                           .source_fatal_at = -1, .sink_fatal_at = -1, .fail_stage = -1};
        run_result r;
        run_pipeline(&setup, &r);
        ck_assert_int_eq(r.status, SDLK_OK);
        ck_assert_int_eq(r.stats.items, 0);
        sdlk_pipeline_stats_free(&r.stats);
    }
}
END_TEST

START_TEST(fatal_errors_stop_cleanly)
{
    for (int m = 0; m < 3; m++) {
        for (int in_order = 0; in_order < 2; in_order++) {
            /* the sink fails on item 100 */
            run_setup setup = {.n_stages = 4, .threads = 6, .mode = all_modes[m],
                               .in_order = in_order, .items = 5000, .source_fatal_at = -1,
                               .sink_fatal_at = 100, .fail_stage = -1};
            run_result r;
            run_pipeline(&setup, &r);
            ck_assert_int_eq(r.status, SDLK_ERR_IO);
            ck_assert_str_eq(r.err.msg, "output: disk full at item 100");
            ck_assert_int_lt(r.stats.items, 5000);
            if (in_order)
                ck_assert_int_eq(r.stats.items, 101); /* 0..100, then nothing */
            sdlk_pipeline_stats_free(&r.stats);

            /* the source fails at item 200: what was pulled before is delivered or
             * discarded (run_pipeline checks each exactly once) */
            setup.sink_fatal_at = -1;
            setup.source_fatal_at = 200;
            run_pipeline(&setup, &r);
            ck_assert_int_eq(r.status, SDLK_ERR_IO);
            ck_assert_str_eq(r.err.msg, "input list: read error at 200");
            ck_assert_int_le(r.stats.items + r.stats.items_discarded, 200);
            sdlk_pipeline_stats_free(&r.stats);
        }
    }
}
END_TEST

START_TEST(stress_tiny_queues)
{
    for (int m = 0; m < 3; m++) {
        for (int cap = 1; cap <= 2; cap++) {
            run_setup setup = {.n_stages = 5, .threads = 16, .mode = all_modes[m],
                               .in_order = cap == 1, .queue_capacity = cap,
                               .max_in_flight = cap == 1 ? 1 : 7, .items = 4000,
                               .source_fatal_at = -1, .sink_fatal_at = -1, .fail_stage = 4,
                               .fail_modulo = 1001};
            run_result r;
            run_pipeline(&setup, &r);
            ck_assert_msg(r.status == SDLK_OK, "%s", r.err.msg);
            ck_assert_int_eq(r.stats.items, 4000);
            sdlk_pipeline_stats_free(&r.stats);
        }
    }
}
END_TEST

START_TEST(bad_configs_are_refused)
{
    sdlk_pipeline_stats stats;
    sdlk_error err;
    sdlk_error_clear(&err);
    sdlk_pipeline_config cfg = SDLK_PIPELINE_CONFIG_INIT;
    ck_assert_int_eq(sdlk_pipeline_run(&cfg, &stats, &err), SDLK_ERR_ARG);
    ck_assert_ptr_null(stats.stages);
    stage_ctx sctx = {.threads = 4};
    sdlk_pipeline_stage stages[2] = {{"a", stage_run, &sctx}, {"b", stage_run, &sctx}};
    source_ctx src = {.count = 1, .fatal_at = -1};
    cfg.stages = stages;
    cfg.n_stages = 2;
    cfg.source = source_next;
    cfg.source_ctx = &src;
    cfg.sink = sink_put;
    cfg.threads = 4;
    cfg.mode = SDLK_PIPE_FIXED;
    cfg.fixed_threads = (const int[]){1, 2};
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_pipeline_run(&cfg, NULL, &err), SDLK_ERR_ARG);
    ck_assert_str_eq(err.msg, "pipeline: fixed threads add up to 3, not the 4 threads");
    sdlk_pipeline_mode mode;
    ck_assert_int_eq(sdlk_pipeline_mode_parse("fixed", &mode, NULL), SDLK_OK);
    ck_assert_int_eq(mode, SDLK_PIPE_FIXED);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_pipeline_mode_parse("fast", &mode, &err), SDLK_ERR_ARG);
    ck_assert_str_eq(err.msg, "unknown pipeline mode 'fast' (adaptive, fixed or sequential)");
}
END_TEST

int main(void)
{
    return UNIT_RUN("pipeline", every_item_once_in_every_mode_with_errors, allocator_balances_rates,
                    adaptive_gives_threads_to_the_expensive_stage, fixed_mode_keeps_its_assignment,
                    sequential_mode_runs_whole_items, zero_items, fatal_errors_stop_cleanly,
                    stress_tiny_queues, bad_configs_are_refused);
}
