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

#endif
