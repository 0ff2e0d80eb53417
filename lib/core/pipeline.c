#include "core/pipeline.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/timer.h"

/* Design
 *   One mutex (`lock`) guards the queues, the assignment, the costs and the statistics;
 *   stage functions, the source and the sink run outside it. Items travel in `node`s taken
 *   from a fixed array of max_in_flight nodes: taking a node is the admission ticket, so
 *   a free list empty means "enough items in flight". The queue in front of stage s
 *   (s >= 1) is a ring of node pointers; `reserved[s]` counts slots promised to workers
 *   of stage s-1 that hold an item, so that a worker never blocks while holding one.
 *   Workers of stage s sleep on cond[s] and are woken (broadcast) by any change that can
 *   let them proceed: an item arriving in their queue, a slot freed in the next queue, a
 *   node freed (stage 0), a reassignment, the end or a fatal error.
 *   In-order delivery uses a ring of max_in_flight slots indexed by sequence number:
 *   every undelivered sequence number lies within max_in_flight of the next one to
 *   deliver, because each holds a node. The sink has its own mutex (sink_lock) so that
 *   a slow sink holds up no stage but the deliveries. */

typedef struct node {
    void *item;
    int64_t seq;
    sdlk_status status;
    int failed_stage;
    int live; /* pulled from the source and not yet delivered or discarded */
    sdlk_error err;
    struct node *next_free;
} node;

typedef struct ring {
    node **slots;
    int capacity, head, count;
} ring;

typedef struct pipeline {
    const sdlk_pipeline_config *cfg;
    int n_stages, threads, capacity, max_in_flight;
    sdlk_pipeline_mode mode;
    double interval_s, alpha;

    pthread_mutex_t lock;
    pthread_cond_t *cond;   /* [n_stages] */
    ring *queues;           /* [n_stages]; queues[0] unused (stage 0 reads the source) */
    int *reserved;          /* [n_stages] */
    node *nodes;
    node *free_nodes;
    int *assign;            /* [threads] stage of each worker */
    int *assigned;          /* [n_stages] workers per stage */
    int in_flight;
    int source_done, finished, stopping;
    sdlk_status fatal_status;
    sdlk_error fatal_err;

    pthread_mutex_t source_lock;
    int64_t next_seq;

    pthread_mutex_t sink_lock;
    node **reorder;         /* [max_in_flight], in_order only */
    int64_t next_deliver;

    /* measurements, under `lock` */
    uint64_t start_ns, last_rebalance_ns, last_alloc_change_ns;
    double *cost_s;         /* EWMA per stage */
    int64_t *stage_items, *stage_failures;
    double *busy_s, *thread_seconds;
    int64_t delivered, failed, rebalances;
    int n_allocs;
    double *alloc_time_s;
    int *alloc_threads;
} pipeline;

const char *sdlk_pipeline_mode_name(sdlk_pipeline_mode mode)
{
    switch (mode) {
    case SDLK_PIPE_ADAPTIVE: return "adaptive";
    case SDLK_PIPE_FIXED: return "fixed";
    case SDLK_PIPE_SEQUENTIAL: return "sequential";
    }
    return "?";
}

sdlk_status sdlk_pipeline_mode_parse(const char *name, sdlk_pipeline_mode *out, sdlk_error *err)
{
    for (int m = SDLK_PIPE_ADAPTIVE; m <= SDLK_PIPE_SEQUENTIAL; m++) {
        if (name && !strcmp(name, sdlk_pipeline_mode_name((sdlk_pipeline_mode)m))) {
            *out = (sdlk_pipeline_mode)m;
            return SDLK_OK;
        }
    }
    return sdlk_error_set(err, SDLK_ERR_ARG,
                          "unknown pipeline mode '%s' (adaptive, fixed or sequential)",
                          name ? name : "");
}

void sdlk_pipeline_allocate(const double *cost_s, int n_stages, int threads, int *out_threads)
{
    /* Zero or unknown costs count as the smallest positive cost seen, so a stage that is
     * nearly free still gets its mandatory thread and no more than it needs. */
    double floor_cost = 0;
    for (int s = 0; s < n_stages; s++)
        if (cost_s[s] > 0 && (floor_cost == 0 || cost_s[s] < floor_cost))
            floor_cost = cost_s[s];
    if (floor_cost == 0)
        floor_cost = 1;
    for (int s = 0; s < n_stages; s++)
        out_threads[s] = 1;
    /* Greedy: each further thread raises the rate of the current bottleneck (the stage
     * with the largest cost per thread); this maximises the minimum rate. */
    for (int extra = n_stages; extra < threads; extra++) {
        int worst = 0;
        double worst_load = -1;
        for (int s = 0; s < n_stages; s++) {
            double cost = cost_s[s] > 0 ? cost_s[s] : floor_cost;
            double load = cost / out_threads[s];
            if (load > worst_load) {
                worst_load = load;
                worst = s;
            }
        }
        out_threads[worst]++;
    }
}

/* ---- helpers under `lock` ----------------------------------------------------------- */

static double elapsed_s(const pipeline *p, uint64_t now_ns)
{
    return (double)(now_ns - p->start_ns) * 1e-9;
}

static void broadcast_all(pipeline *p)
{
    for (int s = 0; s < p->n_stages; s++)
        pthread_cond_broadcast(&p->cond[s]);
}

/* Integrate threads-per-stage over the time since the last change (for mean_threads). */
static void account_assignment(pipeline *p, uint64_t now_ns)
{
    double dt = (double)(now_ns - p->last_alloc_change_ns) * 1e-9;
    for (int s = 0; s < p->n_stages; s++)
        p->thread_seconds[s] += dt * p->assigned[s];
    p->last_alloc_change_ns = now_ns;
}

static void log_assignment(pipeline *p, uint64_t now_ns)
{
    int k = p->n_allocs < SDLK_PIPELINE_ALLOC_LOG ? p->n_allocs++ : SDLK_PIPELINE_ALLOC_LOG - 1;
    p->alloc_time_s[k] = elapsed_s(p, now_ns);
    memcpy(p->alloc_threads + (size_t)k * p->n_stages, p->assigned,
           sizeof(int) * (size_t)p->n_stages);
}

/* Move workers from stages above their target to stages below it; a worker busy with an
 * item moves once it has finished it. */
static void apply_assignment(pipeline *p, const int *target)
{
    for (int w = 0; w < p->threads; w++) {
        int from = p->assign[w];
        if (p->assigned[from] <= target[from])
            continue;
        for (int to = 0; to < p->n_stages; to++) {
            if (p->assigned[to] < target[to]) {
                p->assign[w] = to;
                p->assigned[from]--;
                p->assigned[to]++;
                break;
            }
        }
    }
}

/* Bottleneck rate (items/s) of an assignment under the measured costs. */
static double bottleneck_rate(const pipeline *p, const int *threads)
{
    double rate = INFINITY;
    for (int s = 0; s < p->n_stages; s++)
        if (p->cost_s[s] > 0 && threads[s] / p->cost_s[s] < rate)
            rate = threads[s] / p->cost_s[s];
    return rate;
}

static void maybe_rebalance(pipeline *p, uint64_t now_ns)
{
    if (p->mode != SDLK_PIPE_ADAPTIVE ||
        (double)(now_ns - p->last_rebalance_ns) * 1e-9 < p->interval_s)
        return;
    p->last_rebalance_ns = now_ns;
    for (int s = 0; s < p->n_stages; s++)
        if (p->stage_items[s] == 0)
            return; /* no measurement yet for some stage */
    int target[p->n_stages];
    sdlk_pipeline_allocate(p->cost_s, p->n_stages, p->threads, target);
    /* Hysteresis: measurement noise must not shuffle threads back and forth, so only a
     * gain of 5 % in the bottleneck rate is worth a move. */
    if (bottleneck_rate(p, target) <= 1.05 * bottleneck_rate(p, p->assigned))
        return;
    account_assignment(p, now_ns);
    apply_assignment(p, target);
    log_assignment(p, now_ns);
    p->rebalances++;
    broadcast_all(p);
}

static void set_fatal(pipeline *p, sdlk_status st, const sdlk_error *err)
{
    if (!p->stopping) {
        p->stopping = 1;
        p->fatal_status = st;
        p->fatal_err = *err;
        if (!p->fatal_err.code) {
            p->fatal_err.code = st;
            strcpy(p->fatal_err.msg, sdlk_status_name(st));
        }
    }
    broadcast_all(p);
}

static void release_node(pipeline *p, node *n)
{
    n->item = NULL;
    n->live = 0;
    n->next_free = p->free_nodes;
    p->free_nodes = n;
    p->in_flight--;
    if (p->source_done && p->in_flight == 0) {
        p->finished = 1;
        broadcast_all(p);
    } else {
        pthread_cond_broadcast(&p->cond[0]);
    }
}

static void ring_push(ring *r, node *n)
{
    r->slots[(r->head + r->count) % r->capacity] = n;
    r->count++;
}

static node *ring_pop(ring *r)
{
    node *n = r->slots[r->head];
    r->head = (r->head + 1) % r->capacity;
    r->count--;
    return n;
}

/* Can a worker of stage `s` in the pipelined modes start an item now? Stage s's output
 * goes to queue s+1 (or the sink, which never refuses). */
static int output_has_room(const pipeline *p, int s)
{
    if (s == p->n_stages - 1)
        return 1;
    return p->queues[s + 1].count + p->reserved[s + 1] < p->capacity;
}

/* ---- delivery ----------------------------------------------------------------------- */

static void call_sink(pipeline *p, node *n)
{
    sdlk_error sink_err;
    sdlk_error_clear(&sink_err);
    sdlk_status st = p->cfg->sink(p->cfg->sink_ctx, n->item, n->status,
                                  n->status ? &n->err : NULL, n->failed_stage, &sink_err);
    pthread_mutex_lock(&p->lock);
    if (n->status)
        p->failed++;
    p->delivered++;
    release_node(p, n);
    if (st)
        set_fatal(p, st, &sink_err);
    pthread_mutex_unlock(&p->lock);
}

/* Hand a finished node to the sink (in order when asked). Called without `lock`. After a
 * fatal error nothing more is delivered: the node stays live and is discarded at the end. */
static void deliver(pipeline *p, node *n)
{
    pthread_mutex_lock(&p->sink_lock);
    if (!p->cfg->in_order) {
        pthread_mutex_lock(&p->lock);
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (!stopping)
            call_sink(p, n);
        pthread_mutex_unlock(&p->sink_lock);
        return;
    }
    p->reorder[n->seq % p->max_in_flight] = n;
    for (;;) {
        node **slot = &p->reorder[p->next_deliver % p->max_in_flight];
        node *ready = *slot;
        if (!ready || ready->seq != p->next_deliver)
            break;
        pthread_mutex_lock(&p->lock);
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (stopping)
            break;
        *slot = NULL;
        p->next_deliver++;
        call_sink(p, ready);
    }
    pthread_mutex_unlock(&p->sink_lock);
}

/* ---- running stages ----------------------------------------------------------------- */

/* Run stage `s` on `n` (without `lock`), then record the cost. Returns the status. */
static sdlk_status run_stage(pipeline *p, int s, node *n, int worker)
{
    const sdlk_pipeline_stage *stage = &p->cfg->stages[s];
    sdlk_error_clear(&n->err);
    uint64_t t0 = sdlk_now_ns();
    sdlk_status st = stage->run(stage->ctx, n->item, worker, &n->err);
    uint64_t t1 = sdlk_now_ns();
    double seconds = (double)(t1 - t0) * 1e-9;
    pthread_mutex_lock(&p->lock);
    p->cost_s[s] = p->stage_items[s] ? p->cost_s[s] + p->alpha * (seconds - p->cost_s[s])
                                     : seconds;
    p->stage_items[s]++;
    p->busy_s[s] += seconds;
    if (st) {
        p->stage_failures[s]++;
        n->status = st;
        n->failed_stage = s;
        if (!n->err.code) {
            n->err.code = st;
            snprintf(n->err.msg, sizeof n->err.msg, "stage %s failed: %s",
                     stage->name ? stage->name : "?", sdlk_status_name(st));
        }
    }
    /* the clock is read again under the lock so that logged times never go backwards */
    maybe_rebalance(p, sdlk_now_ns());
    pthread_mutex_unlock(&p->lock);
    return st;
}

/* Pull the next item from the source into a node the caller already took (under `lock`
 * on entry and exit; the source runs without it). Returns 1 with the node filled, 0 at
 * the end or on a fatal error (the node is released). */
static int pull(pipeline *p, node *n)
{
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_lock(&p->source_lock);
    sdlk_status st = SDLK_ERR_EOF;
    sdlk_error src_err;
    sdlk_error_clear(&src_err);
    void *item = NULL;
    int done_before;
    pthread_mutex_lock(&p->lock);
    done_before = p->source_done || p->stopping;
    pthread_mutex_unlock(&p->lock);
    if (!done_before) {
        st = p->cfg->source(p->cfg->source_ctx, &item, &src_err);
        if (!st) {
            n->item = item;
            n->seq = p->next_seq++;
            n->status = SDLK_OK;
            n->failed_stage = -1;
            n->live = 1;
        }
    }
    pthread_mutex_lock(&p->lock);
    pthread_mutex_unlock(&p->source_lock);
    if (!st)
        return 1;
    if (!done_before) {
        p->source_done = 1;
        if (st != SDLK_ERR_EOF)
            set_fatal(p, st, &src_err);
    }
    release_node(p, n);
    return 0;
}

static node *take_node(pipeline *p)
{
    node *n = p->free_nodes;
    p->free_nodes = n->next_free;
    p->in_flight++;
    return n;
}

/* A worker of the pipelined modes: serve the stage it is assigned to. */
static void pipelined_worker(pipeline *p, int worker)
{
    pthread_mutex_lock(&p->lock);
    while (!p->finished && !p->stopping) {
        int s = p->assign[worker];
        node *n = NULL;
        if (!output_has_room(p, s)) {
            pthread_cond_wait(&p->cond[s], &p->lock);
            continue;
        }
        if (s == 0) {
            if (p->source_done || !p->free_nodes) {
                pthread_cond_wait(&p->cond[0], &p->lock);
                continue;
            }
            n = take_node(p);
            if (s + 1 < p->n_stages)
                p->reserved[s + 1]++;
            if (!pull(p, n)) {
                if (s + 1 < p->n_stages)
                    p->reserved[s + 1]--;
                continue;
            }
        } else {
            if (p->queues[s].count == 0) {
                pthread_cond_wait(&p->cond[s], &p->lock);
                continue;
            }
            n = ring_pop(&p->queues[s]);
            if (s + 1 < p->n_stages)
                p->reserved[s + 1]++;
            pthread_cond_broadcast(&p->cond[s - 1]); /* a slot opened in front of us */
        }
        pthread_mutex_unlock(&p->lock);
        sdlk_status st = run_stage(p, s, n, worker);
        pthread_mutex_lock(&p->lock);
        if (s + 1 < p->n_stages)
            p->reserved[s + 1]--;
        if (p->stopping)
            break; /* the node stays live; the run discards it */
        if (!st && s + 1 < p->n_stages) {
            ring_push(&p->queues[s + 1], n);
            pthread_cond_broadcast(&p->cond[s + 1]);
            continue;
        }
        /* Done, or failed: a failed item skips the remaining stages. */
        if (s + 1 < p->n_stages)
            pthread_cond_broadcast(&p->cond[s]); /* our reservation is gone */
        pthread_mutex_unlock(&p->lock);
        deliver(p, n);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
}

/* A worker of the sequential mode: whole items, every stage. */
static void sequential_worker(pipeline *p, int worker)
{
    pthread_mutex_lock(&p->lock);
    while (!p->finished && !p->stopping) {
        if (p->source_done || !p->free_nodes) {
            pthread_cond_wait(&p->cond[0], &p->lock);
            continue;
        }
        node *n = take_node(p);
        if (!pull(p, n))
            continue;
        pthread_mutex_unlock(&p->lock);
        for (int s = 0; s < p->n_stages; s++)
            if (run_stage(p, s, n, worker))
                break;
        pthread_mutex_lock(&p->lock);
        if (p->stopping)
            break;
        pthread_mutex_unlock(&p->lock);
        deliver(p, n);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
}

typedef struct worker_arg {
    pipeline *p;
    int index;
} worker_arg;

static void *worker_main(void *varg)
{
    worker_arg *arg = varg;
    if (arg->p->mode == SDLK_PIPE_SEQUENTIAL)
        sequential_worker(arg->p, arg->index);
    else
        pipelined_worker(arg->p, arg->index);
    return NULL;
}

/* ---- setup, run, teardown ----------------------------------------------------------- */

static sdlk_status check_config(const sdlk_pipeline_config *cfg, int threads, sdlk_error *err)
{
    if (!cfg || cfg->n_stages < 1 || !cfg->stages || !cfg->source || !cfg->sink)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "pipeline: needs at least one stage, a source and a sink");
    for (int s = 0; s < cfg->n_stages; s++)
        if (!cfg->stages[s].run)
            return sdlk_error_set(err, SDLK_ERR_ARG, "pipeline: stage %d has no function", s);
    if (cfg->mode < SDLK_PIPE_ADAPTIVE || cfg->mode > SDLK_PIPE_SEQUENTIAL)
        return sdlk_error_set(err, SDLK_ERR_ARG, "pipeline: unknown mode %d", (int)cfg->mode);
    if (cfg->mode == SDLK_PIPE_FIXED && cfg->fixed_threads && threads >= cfg->n_stages) {
        int sum = 0;
        for (int s = 0; s < cfg->n_stages; s++) {
            if (cfg->fixed_threads[s] < 1)
                return sdlk_error_set(err, SDLK_ERR_ARG,
                                      "pipeline: stage %d is given %d threads (at least 1)", s,
                                      cfg->fixed_threads[s]);
            sum += cfg->fixed_threads[s];
        }
        if (sum != threads)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "pipeline: fixed threads add up to %d, not the %d threads", sum,
                                  threads);
    }
    if (cfg->ewma_alpha > 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "pipeline: ewma_alpha %g is above 1",
                              cfg->ewma_alpha);
    return SDLK_OK;
}

static void pipeline_free(pipeline *p)
{
    if (p->queues)
        for (int s = 0; s < p->n_stages; s++)
            free(p->queues[s].slots);
    if (p->cond)
        for (int s = 0; s < p->n_stages; s++)
            pthread_cond_destroy(&p->cond[s]);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->source_lock);
    pthread_mutex_destroy(&p->sink_lock);
    free(p->cond);
    free(p->queues);
    free(p->reserved);
    free(p->nodes);
    free(p->assign);
    free(p->assigned);
    free(p->reorder);
    free(p->cost_s);
    free(p->stage_items);
    free(p->stage_failures);
    free(p->busy_s);
    free(p->thread_seconds);
    free(p->alloc_time_s);
    free(p->alloc_threads);
}

static sdlk_status pipeline_init(pipeline *p, const sdlk_pipeline_config *cfg, int threads,
                                 sdlk_error *err)
{
    int S = cfg->n_stages;
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->n_stages = S;
    p->threads = threads;
    p->mode = threads < S ? SDLK_PIPE_SEQUENTIAL : cfg->mode;
    p->capacity = cfg->queue_capacity > 0 ? cfg->queue_capacity : 4;
    p->max_in_flight = cfg->max_in_flight > 0 ? cfg->max_in_flight : S * p->capacity + threads;
    p->interval_s = cfg->rebalance_interval_s > 0 ? cfg->rebalance_interval_s : 0.02;
    p->alpha = cfg->ewma_alpha > 0 ? cfg->ewma_alpha : 0.2;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->source_lock, NULL);
    pthread_mutex_init(&p->sink_lock, NULL);
    p->cond = calloc((size_t)S, sizeof *p->cond);
    p->queues = calloc((size_t)S, sizeof *p->queues);
    p->reserved = calloc((size_t)S, sizeof *p->reserved);
    p->nodes = calloc((size_t)p->max_in_flight, sizeof *p->nodes);
    p->assign = calloc((size_t)threads, sizeof *p->assign);
    p->assigned = calloc((size_t)S, sizeof *p->assigned);
    p->reorder = calloc((size_t)p->max_in_flight, sizeof *p->reorder);
    p->cost_s = calloc((size_t)S, sizeof *p->cost_s);
    p->stage_items = calloc((size_t)S, sizeof *p->stage_items);
    p->stage_failures = calloc((size_t)S, sizeof *p->stage_failures);
    p->busy_s = calloc((size_t)S, sizeof *p->busy_s);
    p->thread_seconds = calloc((size_t)S, sizeof *p->thread_seconds);
    p->alloc_time_s = calloc(SDLK_PIPELINE_ALLOC_LOG, sizeof *p->alloc_time_s);
    p->alloc_threads = calloc((size_t)SDLK_PIPELINE_ALLOC_LOG * S, sizeof *p->alloc_threads);
    if (!p->cond || !p->queues || !p->reserved || !p->nodes || !p->assign || !p->assigned ||
        !p->reorder || !p->cost_s || !p->stage_items || !p->stage_failures || !p->busy_s ||
        !p->thread_seconds || !p->alloc_time_s || !p->alloc_threads)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "pipeline: out of memory");
    for (int s = 0; s < S; s++) {
        pthread_cond_init(&p->cond[s], NULL);
        p->queues[s].capacity = p->capacity;
        p->queues[s].slots = calloc((size_t)p->capacity, sizeof(node *));
        if (!p->queues[s].slots)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "pipeline: out of memory");
    }
    for (int i = p->max_in_flight - 1; i >= 0; i--) {
        p->nodes[i].next_free = p->free_nodes;
        p->free_nodes = &p->nodes[i];
    }
    /* The initial assignment: the fixed counts, else an even split (the adaptive
     * allocator refines it once every stage has been measured). */
    if (p->mode == SDLK_PIPE_SEQUENTIAL) {
        /* every worker runs every stage */
        for (int s = 0; s < S; s++)
            p->assigned[s] = threads;
    } else {
        int w = 0;
        for (int s = 0; s < S; s++) {
            int count = p->mode == SDLK_PIPE_FIXED && cfg->fixed_threads
                            ? cfg->fixed_threads[s]
                            : threads / S + (s < threads % S);
            for (int k = 0; k < count; k++)
                p->assign[w++] = s;
            p->assigned[s] = count;
        }
    }
    return SDLK_OK;
}

static sdlk_status fill_stats(const pipeline *p, sdlk_pipeline_stats *stats, double wall_s,
                              int64_t discarded, sdlk_error *err)
{
    int S = p->n_stages;
    stats->mode = p->mode;
    stats->n_stages = S;
    stats->threads = p->threads;
    stats->items = p->delivered;
    stats->items_failed = p->failed;
    stats->items_discarded = discarded;
    stats->wall_s = wall_s;
    stats->items_per_s = wall_s > 0 ? (double)p->delivered / wall_s : 0;
    stats->rebalances = p->rebalances;
    stats->n_allocs = p->n_allocs;
    stats->stages = calloc((size_t)S, sizeof *stats->stages);
    stats->alloc_time_s = malloc(sizeof(double) * (size_t)(p->n_allocs ? p->n_allocs : 1));
    stats->alloc_threads = malloc(sizeof(int) * (size_t)(p->n_allocs ? p->n_allocs : 1) * S);
    if (!stats->stages || !stats->alloc_time_s || !stats->alloc_threads) {
        sdlk_pipeline_stats_free(stats);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "pipeline: out of memory");
    }
    memcpy(stats->alloc_time_s, p->alloc_time_s, sizeof(double) * (size_t)p->n_allocs);
    memcpy(stats->alloc_threads, p->alloc_threads, sizeof(int) * (size_t)p->n_allocs * S);
    for (int s = 0; s < S; s++) {
        sdlk_pipeline_stage_stats *st = &stats->stages[s];
        snprintf(st->name, sizeof st->name, "%s",
                 p->cfg->stages[s].name ? p->cfg->stages[s].name : "");
        st->items = p->stage_items[s];
        st->failures = p->stage_failures[s];
        st->busy_s = p->busy_s[s];
        st->cost_s = p->cost_s[s];
        if (p->mode == SDLK_PIPE_SEQUENTIAL) {
            st->mean_threads = p->threads;
            st->final_threads = p->threads;
        } else {
            st->mean_threads = wall_s > 0 ? p->thread_seconds[s] / wall_s : p->assigned[s];
            st->final_threads = p->assigned[s];
        }
    }
    return SDLK_OK;
}

sdlk_status sdlk_pipeline_run(const sdlk_pipeline_config *config, sdlk_pipeline_stats *stats,
                              sdlk_error *err)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    int threads = 0;
    sdlk_status st = sdlk_threads_resolve(config ? config->threads : 0, &threads, err);
    if (st)
        return st;
    st = check_config(config, threads, err);
    if (st)
        return st;
    pipeline p;
    st = pipeline_init(&p, config, threads, err);
    if (st) {
        pipeline_free(&p);
        return st;
    }
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    worker_arg *args = calloc((size_t)threads, sizeof *args);
    if (!tids || !args) {
        free(tids);
        free(args);
        pipeline_free(&p);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "pipeline: out of memory");
    }
    p.start_ns = p.last_rebalance_ns = p.last_alloc_change_ns = sdlk_now_ns();
    log_assignment(&p, p.start_ns);
    int started = 0;
    for (; started < threads; started++) {
        args[started] = (worker_arg){&p, started};
        if (pthread_create(&tids[started], NULL, worker_main, &args[started]))
            break;
    }
    if (started < threads) {
        /* Without all its threads an assignment could leave a stage unserved: stop. */
        sdlk_error create_err;
        sdlk_error_clear(&create_err);
        sdlk_error_set(&create_err, SDLK_ERR_NOMEM, "pipeline: could not start thread %d of %d",
                       started + 1, threads);
        pthread_mutex_lock(&p.lock);
        set_fatal(&p, SDLK_ERR_NOMEM, &create_err);
        pthread_mutex_unlock(&p.lock);
    }
    for (int w = 0; w < started; w++)
        pthread_join(tids[w], NULL);
    free(tids);
    free(args);
    uint64_t end_ns = sdlk_now_ns();
    account_assignment(&p, end_ns);

    /* What was pulled and not delivered (only after a fatal error). */
    int64_t discarded = 0;
    for (int i = 0; i < p.max_in_flight; i++) {
        if (p.nodes[i].live) {
            if (config->discard)
                config->discard(config->discard_ctx, p.nodes[i].item);
            p.nodes[i].live = 0;
            discarded++;
        }
    }
    st = p.stopping ? p.fatal_status : SDLK_OK;
    if (st && err && !err->code)
        *err = p.fatal_err;
    if (stats) {
        sdlk_status stats_st = fill_stats(&p, stats, (double)(end_ns - p.start_ns) * 1e-9,
                                          discarded, err);
        if (!st)
            st = stats_st;
    }
    pipeline_free(&p);
    return st;
}

void sdlk_pipeline_stats_free(sdlk_pipeline_stats *stats)
{
    if (!stats)
        return;
    free(stats->stages);
    free(stats->alloc_time_s);
    free(stats->alloc_threads);
    stats->stages = NULL;
    stats->alloc_time_s = NULL;
    stats->alloc_threads = NULL;
    stats->n_allocs = 0;
}
