/* pool.h -- a small pthread pool for data-parallel loops.
 *
 * Contract
 *   A pool of N threads runs sdlk_pool_for(): the range [0, n) is cut into chunks of
 *   `grain` items handed out dynamically (an atomic counter), so uneven work balances
 *   itself. The calling thread works too, so a pool of size N starts N-1 threads and a
 *   pool of size 1 starts none and runs everything inline (the sequential baseline is
 *   the same code path). sdlk_pool_for() returns when every item has been processed.
 *   One sdlk_pool_for() at a time per pool; calling it from inside a worker runs the
 *   nested loop inline rather than deadlocking.
 *
 *   Thread count: sdlk_threads_resolve() applies the toolkit's rule -- an explicit
 *   `--threads N` (N > 0) wins, then the SDL_THREADS environment variable, then the
 *   number of online cores.
 */
#ifndef SDLK_CORE_POOL_H
#define SDLK_CORE_POOL_H

#include <stdint.h>

#include "core/error.h"

typedef struct sdlk_pool sdlk_pool;

/* Process items [begin, end) of the range; `worker` is 0..size-1 (0 = caller), useful
 * for per-thread scratch buffers. */
typedef void (*sdlk_range_fn)(void *ctx, int64_t begin, int64_t end, int worker);

/* Create a pool of `nthreads` (>= 1) threads including the caller. */
sdlk_pool *sdlk_pool_create(int nthreads, sdlk_error *err);
/* Join the threads and free the pool (NULL is a no-op). */
void sdlk_pool_destroy(sdlk_pool *pool);
int sdlk_pool_size(const sdlk_pool *pool);

/* Run fn over [0, n) in chunks of `grain` (>= 1; 0 picks n / (8 * size)). A NULL pool
 * runs inline on the caller. */
void sdlk_pool_for(sdlk_pool *pool, int64_t n, int64_t grain, sdlk_range_fn fn, void *ctx);

/* requested > 0: requested. Else SDL_THREADS if set to a positive integer, else the
 * number of online CPUs (at least 1). An invalid SDL_THREADS is an SDLK_ERR_ARG. */
sdlk_status sdlk_threads_resolve(int requested, int *out, sdlk_error *err);

#endif
