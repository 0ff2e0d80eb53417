#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One job at a time: workers sleep on `wake` until `generation` changes, then pull
 * chunks from `next` until the range is exhausted, and the last one to finish signals
 * `done`. The caller pulls chunks too. */
struct worker_arg {
    sdlk_pool *pool;
    int index;
};

struct sdlk_pool {
    int size;
    pthread_t *threads;
    struct worker_arg *args;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    uint64_t generation;
    int stopping;
    int busy_workers; /* workers still inside the current job */
    atomic_int in_job; /* nested-call guard */
    /* the current job */
    sdlk_range_fn fn;
    void *ctx;
    int64_t n, grain;
    atomic_int_fast64_t next;
};

static void run_chunks(sdlk_pool *pool, int worker)
{
    for (;;) {
        int64_t begin = atomic_fetch_add(&pool->next, pool->grain);
        if (begin >= pool->n)
            return;
        int64_t end = begin + pool->grain < pool->n ? begin + pool->grain : pool->n;
        pool->fn(pool->ctx, begin, end, worker);
    }
}

static void *worker_main(void *varg)
{
    struct worker_arg *arg = varg;
    sdlk_pool *pool = arg->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stopping && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stopping)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        run_chunks(pool, arg->index);
        pthread_mutex_lock(&pool->lock);
        if (--pool->busy_workers == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

sdlk_pool *sdlk_pool_create(int nthreads, sdlk_error *err)
{
    if (nthreads < 1)
        nthreads = 1;
    sdlk_pool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pool->size = nthreads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->in_job, 0);
    atomic_init(&pool->next, 0);
    if (nthreads == 1)
        return pool;
    pool->threads = calloc((size_t)nthreads - 1, sizeof *pool->threads);
    pool->args = calloc((size_t)nthreads - 1, sizeof *pool->args);
    if (!pool->threads || !pool->args) {
        sdlk_pool_destroy(pool);
        sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < nthreads - 1; i++) {
        pool->args[i] = (struct worker_arg){pool, i + 1};
        if (pthread_create(&pool->threads[i], NULL, worker_main, &pool->args[i]) != 0) {
            pool->size = i + 1; /* threads started so far, plus the caller */
            sdlk_pool_destroy(pool);
            sdlk_error_set(err, SDLK_ERR_NOMEM, "cannot start thread %d of %d", i + 2, nthreads);
            return NULL;
        }
    }
    return pool;
}

void sdlk_pool_destroy(sdlk_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    if (pool->threads)
        for (int i = 0; i < pool->size - 1; i++)
            pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->threads);
    free(pool->args);
    free(pool);
}

int sdlk_pool_size(const sdlk_pool *pool) { return pool ? pool->size : 1; }

void sdlk_pool_for(sdlk_pool *pool, int64_t n, int64_t grain, sdlk_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    int size = sdlk_pool_size(pool);
    if (grain <= 0) {
        grain = n / (8 * (int64_t)size);
        if (grain < 1)
            grain = 1;
    }
    int expected = 0;
    if (!pool || size == 1 || n <= grain ||
        !atomic_compare_exchange_strong(&pool->in_job, &expected, 1)) {
        fn(ctx, 0, n, 0); /* inline: no pool, tiny range, or nested call */
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->grain = grain;
    atomic_store(&pool->next, 0);
    pool->busy_workers = size - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    run_chunks(pool, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->busy_workers > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    atomic_store(&pool->in_job, 0);
}

sdlk_status sdlk_threads_resolve(int requested, int *out, sdlk_error *err)
{
    if (requested > 0) {
        *out = requested;
        return SDLK_OK;
    }
    const char *env = getenv("SDL_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end != '\0' || v < 1 || v > 4096)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "SDL_THREADS=%s: expected a whole number from 1 to 4096", env);
        *out = (int)v;
        return SDLK_OK;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *out = cores > 0 ? (int)cores : 1;
    return SDLK_OK;
}
