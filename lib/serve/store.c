/* store.c -- requests and their tiles (contract in store.h). */
#include "serve/store.h"

#include <stdlib.h>
#include <string.h>

void sdlk_serve_store_init(sdlk_serve_store *s)
{
    memset(s, 0, sizeof *s);
}

void sdlk_serve_store_free(sdlk_serve_store *s)
{
    for (size_t i = 0; i < s->count; i++)
        sdlk_serve_job_free(s->jobs[i]);
    free(s->jobs);
    memset(s, 0, sizeof *s);
}

sdlk_status sdlk_serve_store_add(sdlk_serve_store *s, const sdlk_serve_request *req,
                                 double arrival_ms, const int64_t tile[3], sdlk_serve_job **out,
                                 sdlk_error *err)
{
    if (req->height % tile[1] || req->width % tile[2] || tile[0] != 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "request %s: %lldx%lld is not a multiple of "
                              "the model's %lldx%lld tile", req->id, (long long)req->height,
                              (long long)req->width, (long long)tile[1], (long long)tile[2]);
    if (s->count == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        sdlk_serve_job **j = realloc(s->jobs, cap * sizeof *j);
        if (!j)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "request %s: out of memory", req->id);
        s->jobs = j;
        s->cap = cap;
    }
    sdlk_serve_job *job = calloc(1, sizeof *job);
    if (!job)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "request %s: out of memory", req->id);
    if (sdlk_serve_request_copy(&job->req, req, err) != SDLK_OK) {
        free(job);
        return SDLK_ERR_NOMEM;
    }
    job->seq = s->next_seq++;
    job->arrival_ms = arrival_ms;
    job->start_ms = -1.0;
    memcpy(job->tile, tile, sizeof job->tile);
    job->tiles = (req->height / tile[1]) * (req->width / tile[2]);
    s->jobs[s->count++] = job;
    *out = job;
    return SDLK_OK;
}

void sdlk_serve_store_detach(sdlk_serve_store *s, sdlk_serve_job *job)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->jobs[i] == job) {
            memmove(s->jobs + i, s->jobs + i + 1, (s->count - i - 1) * sizeof *s->jobs);
            s->count--;
            break;
        }
}

void sdlk_serve_job_free(sdlk_serve_job *job)
{
    sdlk_serve_request_clear(&job->req);
    free(job);
}

void sdlk_serve_store_remove(sdlk_serve_store *s, sdlk_serve_job *job)
{
    sdlk_serve_store_detach(s, job);
    sdlk_serve_job_free(job);
}

sdlk_serve_job *sdlk_serve_store_find(const sdlk_serve_store *s, const char *id)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->jobs[i]->req.id, id) == 0)
            return s->jobs[i];
    return NULL;
}

int64_t sdlk_serve_job_items(const sdlk_serve_job *job)
{
    return job->canvas_mode ? 1 : job->tiles;
}

double sdlk_serve_job_remaining_tiles(const sdlk_serve_job *job)
{
    double left = (double)(job->req.steps - job->step) * (double)job->tiles;
    if (job->canvas_mode)
        return left - (job->done ? (double)job->tiles : 0.0);
    return left - (double)job->done;
}

void sdlk_serve_default_stride(const int64_t tile[3], int64_t stride[3])
{
    /* Odd strides: a model that works on an internal patch lattice (the exemplar model
     * averages patches at stride p/2, a power of two) would otherwise see tile borders
     * land on its lattice lines step after step; odd strides also make each axis visit
     * every offset of a power-of-two tile before repeating. */
    stride[0] = 0;
    stride[1] = (tile[1] / 16 + 3) | 1;
    stride[2] = (tile[2] / 16 + 1) | 1;
    for (int a = 1; a < 3; a++)
        stride[a] = tile[a] > 1 ? stride[a] % tile[a] : 0;
}

sdlk_status sdlk_serve_job_grid(const sdlk_serve_job *job, int step, const int64_t stride[3],
                                sdlk_tile_grid *grid, sdlk_error *err)
{
    int64_t canvas[3] = {1, job->req.height, job->req.width}, shift[3];
    sdlk_tile_torus_shift(job->tile, stride, step, shift);
    sdlk_status st = sdlk_tile_grid_torus(grid, canvas, job->tile, shift, err);
    if (st != SDLK_OK)
        sdlk_error_prefix(err, "request %s", job->req.id);
    return st;
}

sdlk_status sdlk_serve_batch_reserve(sdlk_serve_batch *b, int cap, sdlk_error *err)
{
    if (b->cap >= cap)
        return SDLK_OK;
    sdlk_serve_item *items = realloc(b->items, (size_t)cap * sizeof *items);
    if (!items)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "batch of %d: out of memory", cap);
    b->items = items;
    b->cap = cap;
    return SDLK_OK;
}

void sdlk_serve_batch_free(sdlk_serve_batch *b)
{
    free(b->items);
    memset(b, 0, sizeof *b);
}
