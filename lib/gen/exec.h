/* exec.h -- the out-of-process denoiser: worker processes speaking the sdl worker
 * protocol (framing in lib/gen/protocol.h and sdl-formats(5)) over stdin/stdout.
 *
 * Contract
 *   sdlk_exec_create starts one worker per device (`devices` "0,1,2" -> three workers,
 *   each with CUDA_VISIBLE_DEVICES set to its device; NULL -> one worker, environment
 *   untouched) by running `command` through /bin/sh -c, reads each worker's HELLO
 *   (which describes the model) and checks that all workers agree.
 *   predict sends a batch to a free worker and waits for its results; several threads
 *   can predict at once (one batch per worker at a time). A worker that exits, closes
 *   its pipe, sends a malformed or wrong-shaped frame, reports an error for the batch,
 *   or does not answer within `timeout_ms` is killed (SIGKILL, reaped) and the batch
 *   is sent to another live worker (each batch is retried at most `retries` times);
 *   a dead worker is restarted at most `restarts` times over the backend's life. Open
 *   requests are replayed to a restarted worker. Results are matched by tile id, so a
 *   batch is accepted whole or not at all: nothing is lost or duplicated.
 *   SIGPIPE must be ignored by the process (tools do); writes to a dead worker then fail
 *   with EPIPE, which counts as a worker failure.
 *
 *   Details of this implementation
 *   - Each worker runs in its own process group (so that killing it also kills what
 *     `sh -c` started) with SIGPIPE and the signal mask reset to defaults; its stderr is
 *     the caller's stderr; all pipe ends are close-on-exec, so no worker holds another
 *     worker's pipes. A worker must exit when its stdin reaches end of file.
 *   - open sends OPEN to every live worker and waits for its OK (an ERROR answer fails
 *     the open with the worker's message; the worker stays alive). close sends CLOSE.
 *     Both wait for a worker that is busy with a batch. A restarted worker receives
 *     the OPEN of every still-open request before its first batch that needs it.
 *   - A dead worker is restarted when a batch needs a worker and no live one is free,
 *     so a backend may run with fewer live workers than devices after a failure.
 *   - max_batch is the smallest any worker announced; channels, tile, pred and time
 *     must be equal. A restarted worker must announce the same (else it counts as a
 *     failed restart).
 *   - destroy sends BYE, closes the pipes, waits up to one second for the workers to
 *     exit, then kills and reaps them: no zombies and no descriptors are left.
 */
#ifndef SDLK_GEN_EXEC_H
#define SDLK_GEN_EXEC_H

#include <stdint.h>

#include "core/error.h"
#include "gen/denoiser.h"

typedef struct sdlk_exec_opts {
    int timeout_ms;     /* per batch (default 60000); also bounds the HELLO wait */
    int retries;        /* per batch (default 2) */
    int restarts;       /* per backend (default 4) */
    int start_timeout_ms; /* HELLO wait when > 0 (a real model can take minutes to
                             load while batches take seconds); 0 = timeout_ms */
} sdlk_exec_opts;

void sdlk_exec_opts_init(sdlk_exec_opts *o);

/* Start the workers. Errors: the command cannot start or does not say HELLO within
 * the timeout (SDLK_ERR_IO naming the command and the worker's exit status), workers
 * disagree (SDLK_ERR_FORMAT). */
sdlk_status sdlk_exec_create(const char *command, const char *devices,
                             const sdlk_exec_opts *opts, sdlk_denoiser **out, sdlk_error *err);

/* Counters for reports and tests. */
typedef struct sdlk_exec_stats {
    int64_t batches, retried_batches, worker_failures, restarts;
    int live_workers;
} sdlk_exec_stats;
void sdlk_exec_get_stats(sdlk_denoiser *d, sdlk_exec_stats *out);

/* One worker slot (0 .. desc.workers - 1), for reports and tests. */
typedef struct sdlk_exec_worker_info {
    char device[32];     /* CUDA_VISIBLE_DEVICES given to it, "" when devices was NULL */
    char hello[64];      /* the text of its last HELLO (model name; truncated) */
    int pid;             /* process id of the live worker, 0 when dead */
    int alive;
    int64_t batches;     /* batches this slot answered */
    int64_t failures;    /* times a worker in this slot was killed or found dead */
} sdlk_exec_worker_info;
/* 0 on success, -1 when d is not an exec backend or the index is out of range. */
int sdlk_exec_worker_get(sdlk_denoiser *d, int index, sdlk_exec_worker_info *out);

#endif
