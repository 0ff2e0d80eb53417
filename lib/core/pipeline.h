/* pipeline.h -- a staged pipeline on CPU threads with adaptive thread allocation.
 *
 * Contract
 *   A pipeline pushes caller-defined items (structs passed by pointer) through S stages
 *   in order 0..S-1. Each stage is a function that transforms one item in place. Items
 *   come from a source (pull one at a time until SDLK_ERR_EOF) and leave through a sink
 *   that receives every item exactly once, with its status.
 *
 *   Threads: sdlk_pipeline_run() starts T worker threads (the calling thread only waits)
 *   and joins them before it returns; nothing outlives the call, there is no global state.
 *   Modes:
 *     SDLK_PIPE_ADAPTIVE    every worker is assigned to one stage; the per-stage cost
 *                           (an EWMA of seconds per item, measured around run()) is fed
 *                           to an allocator that every `rebalance_interval_s` reassigns
 *                           workers so that threads_s / cost_s -- the items per second a
 *                           stage can move -- is as equal as possible (greedy: each thread
 *                           beyond the first per stage goes to the current bottleneck).
 *                           Every stage keeps at least one thread. A reassigned worker
 *                           finishes the item it holds, then moves.
 *     SDLK_PIPE_FIXED       like ADAPTIVE but the assignment never changes: the
 *                           `fixed_threads` counts, or T/S per stage (remainder to the
 *                           first stages) -- with T == S the "one thread per stage"
 *                           baseline. Costs are still measured and reported.
 *     SDLK_PIPE_SEQUENTIAL  no queues: each worker pulls an item and runs every stage on
 *                           it itself (with T == 1 the plain sequential baseline; with
 *                           T > 1 data parallelism over whole items).
 *   With T < S an ADAPTIVE or FIXED run falls back to SEQUENTIAL (a stage without a thread
 *   would stall); the stats say which mode ran.
 *
 *   Queues: the items waiting between stage s-1 and stage s form a bounded FIFO of
 *   `queue_capacity` items. A worker takes an item only when it can reserve a slot in the
 *   next queue, so it never blocks while holding an item (no deadlock on reassignment).
 *   At most `max_in_flight` items exist between the source and the sink at any time
 *   (default: S * queue_capacity + T), which also bounds the reorder buffer.
 *   Waiting uses condition variables; nothing spins.
 *
 *   Source: called by one worker at a time (serialised), never again after it returned
 *   SDLK_ERR_EOF. It returns SDLK_OK with *item set (the item may be anything non-NULL
 *   the caller likes), SDLK_ERR_EOF at the end, or another status: a fatal error.
 *
 *   Per-item errors: a stage that returns non-OK fails that item only: the remaining
 *   stages are skipped and the item goes to the sink with the status and the message the
 *   stage wrote into `err` (so a bad file is reported on its own line). The pipeline goes
 *   on.
 *
 *   Sink: called by one thread at a time (serialised), once per item. With `in_order` the
 *   items arrive in source order; otherwise in completion order. The sink owns the item
 *   from then on (it frees it). The sink returning non-OK is a fatal error: the sink
 *   decides which item errors are fatal (e.g. SDLK_ERR_NOMEM) by returning one.
 *
 *   Fatal errors (source or sink): no new items are pulled, workers finish the stage they
 *   are in and exit, every item pulled but not delivered is handed to `discard` (if
 *   non-NULL) exactly once, and sdlk_pipeline_run() returns the fatal status with its
 *   message. The statistics are still filled in.
 *
 *   Thread safety: stage functions run concurrently with themselves (several workers on a
 *   stage) and with other stages; `worker` (0..T-1, stable for a thread over the run)
 *   indexes per-thread scratch. The source, the sink and `discard` are never concurrent
 *   with themselves.
 */
#ifndef SDLK_CORE_PIPELINE_H
#define SDLK_CORE_PIPELINE_H

#include <stdint.h>

#include "core/error.h"

/* Transform `item` in place. Non-OK fails the item (see "Per-item errors"); write the
 * reason into `err` (it arrives cleared). */
typedef sdlk_status (*sdlk_stage_fn)(void *stage_ctx, void *item, int worker, sdlk_error *err);

/* SDLK_OK and *item, SDLK_ERR_EOF at the end, anything else is fatal (fill `err`). */
typedef sdlk_status (*sdlk_pipeline_source_fn)(void *source_ctx, void **item, sdlk_error *err);

/* One finished item: `item_status` is SDLK_OK or the failing stage's status, and
 * `item_err` its message (NULL when OK); `failed_stage` is the failing stage's index or
 * -1. Return non-OK (and fill `err`) to stop the pipeline with a fatal error. */
typedef sdlk_status (*sdlk_pipeline_sink_fn)(void *sink_ctx, void *item, sdlk_status item_status,
                                             const sdlk_error *item_err, int failed_stage,
                                             sdlk_error *err);

/* An item pulled but not delivered because of a fatal error: free it. */
typedef void (*sdlk_pipeline_discard_fn)(void *discard_ctx, void *item);

typedef struct sdlk_pipeline_stage {
    const char *name; /* for statistics, e.g. "decode" (copied, may be NULL) */
    sdlk_stage_fn run;
    void *ctx;
} sdlk_pipeline_stage;

typedef enum sdlk_pipeline_mode {
    SDLK_PIPE_ADAPTIVE = 0,
    SDLK_PIPE_FIXED,
    SDLK_PIPE_SEQUENTIAL,
} sdlk_pipeline_mode;

typedef struct sdlk_pipeline_config {
    const sdlk_pipeline_stage *stages;
    int n_stages; /* >= 1 */
    sdlk_pipeline_source_fn source;
    void *source_ctx;
    sdlk_pipeline_sink_fn sink;
    void *sink_ctx;
    sdlk_pipeline_discard_fn discard; /* may be NULL */
    void *discard_ctx;

    int threads;               /* total workers; <= 0 resolves via sdlk_threads_resolve(0) */
    sdlk_pipeline_mode mode;
    int in_order;              /* 1: the sink sees items in source order */
    int queue_capacity;        /* items per inter-stage queue; <= 0 means 4 */
    int max_in_flight;         /* <= 0 means n_stages * queue_capacity + threads */
    const int *fixed_threads;  /* FIXED: n_stages counts (each >= 1, summing to threads),
                                  or NULL for an even split */
    double rebalance_interval_s; /* ADAPTIVE: seconds between allocator runs; <= 0: 0.02 */
    double ewma_alpha;         /* weight of a new cost sample, (0,1]; <= 0 means 0.2 */
} sdlk_pipeline_config;

/* Zeroed config = adaptive, 4-item queues, all cores, any-order delivery. */
#define SDLK_PIPELINE_CONFIG_INIT {0}

#define SDLK_PIPELINE_NAME_MAX 32

typedef struct sdlk_pipeline_stage_stats {
    char name[SDLK_PIPELINE_NAME_MAX];
    int64_t items;       /* items this stage ran on (including ones it failed) */
    int64_t failures;    /* items this stage failed */
    double busy_s;       /* summed time inside run(), over all workers */
    double cost_s;       /* final EWMA of seconds per item (0 if it never ran) */
    double mean_threads; /* time-weighted mean of the threads assigned to it */
    int final_threads;   /* threads assigned at the end */
} sdlk_pipeline_stage_stats;

typedef struct sdlk_pipeline_stats {
    sdlk_pipeline_mode mode; /* the mode that ran (after the T < S fallback) */
    int n_stages, threads;
    int64_t items;          /* items delivered to the sink */
    int64_t items_failed;   /* of which failed in a stage */
    int64_t items_discarded;/* pulled but not delivered (fatal error only) */
    double wall_s;          /* the whole run */
    double items_per_s;     /* items / wall_s */
    int64_t rebalances;     /* allocator runs that changed the assignment */
    sdlk_pipeline_stage_stats *stages; /* [n_stages] */
    /* The assignment over time: entry k took effect at alloc_time_s[k] (seconds from the
     * start) with alloc_threads[k * n_stages + s] threads on stage s. Entry 0 is the
     * initial assignment; at most SDLK_PIPELINE_ALLOC_LOG entries are kept (the last
     * entry is overwritten beyond that, so it always shows the final assignment). */
    int n_allocs;
    double *alloc_time_s;
    int *alloc_threads;
} sdlk_pipeline_stats;

#define SDLK_PIPELINE_ALLOC_LOG 1024

/* Run the pipeline to the end of the source or to a fatal error. `stats` (may be NULL)
 * is filled in either case (after an argument error it is zeroed) and must then be
 * released with sdlk_pipeline_stats_free(). Returns SDLK_OK, SDLK_ERR_ARG for a bad
 * config, SDLK_ERR_NOMEM, or the fatal status of the source or the sink. */
sdlk_status sdlk_pipeline_run(const sdlk_pipeline_config *config, sdlk_pipeline_stats *stats,
                              sdlk_error *err);

/* Free what sdlk_pipeline_run() allocated in `stats` (NULL or zeroed is a no-op). */
void sdlk_pipeline_stats_free(sdlk_pipeline_stats *stats);

/* Short name of a mode: "adaptive", "fixed", "sequential". */
const char *sdlk_pipeline_mode_name(sdlk_pipeline_mode mode);

/* Parse a mode name as above (for a --pipeline option). SDLK_ERR_ARG if unknown. */
sdlk_status sdlk_pipeline_mode_parse(const char *name, sdlk_pipeline_mode *out, sdlk_error *err);

/* The allocator on its own (exposed for tests and for benches that print a plan): give
 * `threads` (>= n_stages) threads to n_stages stages with per-item costs cost_s[] (>= 0;
 * a zero cost counts as the smallest positive one), at least one each, maximising the
 * minimum of threads_s / cost_s. Writes out_threads[n_stages]. */
void sdlk_pipeline_allocate(const double *cost_s, int n_stages, int threads, int *out_threads);

#endif
