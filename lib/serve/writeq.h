/* writeq.h -- finished requests' outputs written by threads beside the serving loop.
 *
 * Contract
 *   On a GPU a model call costs a fraction of a millisecond while writing one 1024x1024
 *   PNG costs hundreds (zlib on one core): written on the serving loop, every output
 *   stalls every other request's denoising. A write queue takes finished jobs and writes
 *   them through the backend's `finish` on `threads` threads of its own, in submission
 *   order; the loop collects the completions and reports them. The backend's finish must
 *   therefore be safe to call while its `run` works on other jobs (live.h's is: it reads
 *   only the finished job's own state).
 *   A pushed job belongs to the queue until it is collected: nothing else may touch it.
 *   Completions carry the job, the status and error of its write, the path written, how
 *   long the write took and when it ended (sdlk_now_ns()). destroy waits for every
 *   queued write to end and drops completions not collected (their jobs stay the
 *   caller's to free: the caller keeps its own list of jobs in flight).
 *   Cost: O(1) per push and per completion, plus the writes themselves. The queue is the
 *   only state shared between the loop and the writers, behind one mutex.
 */
#ifndef SDLK_SERVE_WRITEQ_H
#define SDLK_SERVE_WRITEQ_H

#include <stdint.h>

#include "core/error.h"
#include "serve/engine.h"

typedef struct sdlk_serve_written {
    sdlk_serve_job *job;
    sdlk_status status;
    char error[SDLK_ERROR_MSG_MAX]; /* status != SDLK_OK: why */
    char path[1024];                /* the file written */
    double write_ms;                /* the write alone */
    uint64_t done_ns;               /* when it ended (sdlk_now_ns) */
} sdlk_serve_written;

typedef struct sdlk_serve_writeq sdlk_serve_writeq;

/* `threads` >= 1 writers calling backend->finish. SDLK_ERR_NOMEM also when
 * a thread cannot be started. */
sdlk_status sdlk_serve_writeq_create(const sdlk_serve_backend *backend, int threads,
                                     sdlk_serve_writeq **out, sdlk_error *err);
/* Waits for every queued write, then stops the threads. */
void sdlk_serve_writeq_destroy(sdlk_serve_writeq *q);

/* Queue `job`'s output. SDLK_ERR_NOMEM only (the job is then still the caller's). */
sdlk_status sdlk_serve_writeq_push(sdlk_serve_writeq *q, sdlk_serve_job *job, sdlk_error *err);

/* Move up to `cap` completed writes into out[]; returns how many. With `wait`, blocks
 * until at least one is complete when none is and some write is queued or running. */
int sdlk_serve_writeq_collect(sdlk_serve_writeq *q, sdlk_serve_written *out, int cap, int wait);

#endif
