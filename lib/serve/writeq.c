/* writeq.c -- the output writers of the serving loop (contract in writeq.h). */
#include "serve/writeq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

/* A singly linked FIFO node: a job to write, then (same node) its completion. */
typedef struct node {
    struct node *next;
    sdlk_serve_written w;
} node;

struct sdlk_serve_writeq {
    sdlk_serve_backend backend;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t lock;
    pthread_cond_t work;       /* a job was queued, or stop */
    pthread_cond_t done;       /* a write ended */
    node *todo_head, *todo_tail;
    node *done_head, *done_tail;
    int64_t in_flight;         /* queued or being written */
    int stop;
};

static void append(node **head, node **tail, node *n)
{
    n->next = NULL;
    if (*tail)
        (*tail)->next = n;
    else
        *head = n;
    *tail = n;
}

static node *take(node **head, node **tail)
{
    node *n = *head;
    if (n) {
        *head = n->next;
        if (!*head)
            *tail = NULL;
    }
    return n;
}

static void *writer_main(void *arg)
{
    sdlk_serve_writeq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->todo_head && !q->stop)
            pthread_cond_wait(&q->work, &q->lock);
        node *n = take(&q->todo_head, &q->todo_tail);
        if (!n) /* stop, and nothing left to write */
            break;
        pthread_mutex_unlock(&q->lock);
        sdlk_error err = {0};
        uint64_t t0 = sdlk_now_ns();
        n->w.status = q->backend.finish(q->backend.ctx, n->w.job, n->w.path, sizeof n->w.path,
                                        &err);
        n->w.done_ns = sdlk_now_ns();
        n->w.write_ms = (double)(n->w.done_ns - t0) * 1e-6;
        if (n->w.status != SDLK_OK)
            snprintf(n->w.error, sizeof n->w.error, "%s", err.msg);
        pthread_mutex_lock(&q->lock);
        append(&q->done_head, &q->done_tail, n);
        q->in_flight--;
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

sdlk_status sdlk_serve_writeq_create(const sdlk_serve_backend *backend, int threads,
                                     sdlk_serve_writeq **out, sdlk_error *err)
{
    *out = NULL;
    if (threads < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "writers must be at least 1 (got %d)", threads);
    sdlk_serve_writeq *q = calloc(1, sizeof *q);
    if (!q || !(q->threads = calloc((size_t)threads, sizeof *q->threads))) {
        free(q);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    q->backend = *backend;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->done, NULL);
    for (; q->n_threads < threads; q->n_threads++) {
        int rc = pthread_create(&q->threads[q->n_threads], NULL, writer_main, q);
        if (rc != 0) {
            sdlk_serve_writeq_destroy(q);
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "cannot start an output writer thread: %s",
                                  strerror(rc));
        }
    }
    *out = q;
    return SDLK_OK;
}

void sdlk_serve_writeq_destroy(sdlk_serve_writeq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_threads; i++) /* each drains the queue before it exits */
        pthread_join(q->threads[i], NULL);
    for (node *n; (n = take(&q->done_head, &q->done_tail)) != NULL;)
        free(n);
    pthread_cond_destroy(&q->done);
    pthread_cond_destroy(&q->work);
    pthread_mutex_destroy(&q->lock);
    free(q->threads);
    free(q);
}

sdlk_status sdlk_serve_writeq_push(sdlk_serve_writeq *q, sdlk_serve_job *job, sdlk_error *err)
{
    node *n = calloc(1, sizeof *n);
    if (!n)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    n->w.job = job;
    pthread_mutex_lock(&q->lock);
    append(&q->todo_head, &q->todo_tail, n);
    q->in_flight++;
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->lock);
    return SDLK_OK;
}

int sdlk_serve_writeq_collect(sdlk_serve_writeq *q, sdlk_serve_written *out, int cap, int wait)
{
    int n_out = 0;
    pthread_mutex_lock(&q->lock);
    while (wait && !q->done_head && q->in_flight > 0)
        pthread_cond_wait(&q->done, &q->lock);
    while (n_out < cap) {
        node *n = take(&q->done_head, &q->done_tail);
        if (!n)
            break;
        out[n_out++] = n->w;
        free(n);
    }
    pthread_mutex_unlock(&q->lock);
    return n_out;
}
