/* engine.c -- the serving loop over the store, policies, predictors and clocks
 * (contract in engine.h). */
#include "serve/engine.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/timer.h"
#include "serve/writeq.h"

typedef struct pending {
    sdlk_serve_request req;
    double arrival_ms;
    int64_t order; /* submission order: ties in arrival keep it */
} pending;

#define FINISH_SAMPLES 256
#define WRITE_POLL_MS 1.0 /* live: how soon to look again while only writes are pending */
#define COLLECT_MAX 64

/* A finished job whose output is being written (config.writers > 0): detached from the
 * store, reported when its write ends. */
typedef struct writing {
    sdlk_serve_job *job;
    double end_ms; /* sim: when its write ends on its writer lane */
} writing;

struct sdlk_serve_engine {
    sdlk_serve_config cfg;
    sdlk_serve_store store;
    sdlk_serve_predictor tiled, canvas;
    uint64_t start_ns;
    double now_ms;                 /* sim clock */
    pending *heap;                 /* min-heap on (arrival, order) */
    size_t heap_n, heap_cap;
    int64_t submitted;
    int draining;
    sdlk_serve_batch batch;
    /* statistics */
    int64_t served, met, failed, rejected, not_served, calls;
    int64_t computed, skipped;     /* over served requests */
    double busy_ms;
    double *latency;
    size_t latency_n, latency_cap;
    /* live measurements, for sdlk_serve_engine_profile */
    sdlk_serve_profile observed;
    double open_sum;
    int64_t open_n;
    double fin_mpx[FINISH_SAMPLES], fin_ms[FINISH_SAMPLES];
    int fin_n;
    /* outputs being written beside the loop (writers > 0) */
    writing *writes;
    size_t writes_n, writes_cap;
    double *lane_free_ms;          /* sim: when each writer lane is free */
    sdlk_serve_writeq *writeq;     /* live: the writer threads */
};

const char *sdlk_serve_outcome_name(sdlk_serve_outcome o)
{
    static const char *const names[] = {"served", "failed", "rejected", "not served"};
    return (unsigned)o < 4 ? names[o] : "unknown";
}

void sdlk_serve_config_init(sdlk_serve_config *c)
{
    memset(c, 0, sizeof *c);
    c->policy = SDLK_SERVE_POLICY_TILE;
    c->admission = 1;
    c->clock = SDLK_SERVE_CLOCK_LIVE;
    c->forget = 0.98;
    c->headroom = -1.0;
    c->group = 4;
}

/* ---- clock ---------------------------------------------------------------------- */

double sdlk_serve_engine_now(const sdlk_serve_engine *e)
{
    if (e->cfg.clock == SDLK_SERVE_CLOCK_SIM)
        return e->now_ms;
    return (double)(sdlk_now_ns() - e->start_ns) * 1e-6;
}

static double profile_cost(const sdlk_serve_profile *p, sdlk_serve_cost_kind kind, double work,
                           const sdlk_serve_job *job)
{
    switch (kind) {
    case SDLK_SERVE_COST_OPEN: return p->open_ms;
    case SDLK_SERVE_COST_TILES: return sdlk_serve_profile_tiled_ms(p, work);
    case SDLK_SERVE_COST_CANVAS: return sdlk_serve_profile_canvas_ms(p, work);
    case SDLK_SERVE_COST_FINISH:
        return job ? sdlk_serve_profile_finish_ms(p, job->req.height, job->req.width) : 0.0;
    }
    return 0.0;
}

/* Sim clock: advance by the event's cost and return it. */
static double sim_charge(sdlk_serve_engine *e, sdlk_serve_cost_kind kind, double work,
                         const sdlk_serve_job *job)
{
    double ms = e->cfg.cost ? e->cfg.cost(e->cfg.cost_ctx, kind, work, job)
                            : profile_cost(&e->cfg.profile, kind, work, job);
    if (!(ms >= 0) || !isfinite(ms))
        ms = 0;
    e->now_ms += ms;
    return ms;
}

/* ---- results -------------------------------------------------------------------- */

static json_t *ms_value(double x)
{
    return json_real(round(x * 1000.0) / 1000.0);
}

char *sdlk_serve_result_json(const sdlk_serve_result *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int ok = r->outcome == SDLK_SERVE_SERVED;
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "ok", json_boolean(ok));
    if (!ok) {
        json_object_set_new(o, "status", json_string(sdlk_serve_outcome_name(r->outcome)));
        json_object_set_new(o, "error", json_string(r->error));
    }
    if (r->arrival_ms >= 0)
        json_object_set_new(o, "arrival_ms", ms_value(r->arrival_ms));
    if (r->start_ms >= 0)
        json_object_set_new(o, "start_ms", ms_value(r->start_ms));
    if (ok) {
        json_object_set_new(o, "finish_ms", ms_value(r->finish_ms));
        json_object_set_new(o, "latency_ms", ms_value(r->latency_ms));
    }
    if (r->slo_ms > 0) {
        json_object_set_new(o, "slo_ms", ms_value(r->slo_ms));
        json_object_set_new(o, "slo_met", json_boolean(r->slo_met));
    }
    if (r->outcome == SDLK_SERVE_REJECTED && isfinite(r->predicted_ms))
        json_object_set_new(o, "predicted_finish_ms", ms_value(r->predicted_ms));
    if (r->height > 0) {
        json_object_set_new(o, "height", json_integer(r->height));
        json_object_set_new(o, "width", json_integer(r->width));
        json_object_set_new(o, "tiles", json_integer(r->tiles));
        json_object_set_new(o, "steps", json_integer(r->steps));
        json_object_set_new(o, "computed", json_integer(r->computed));
        json_object_set_new(o, "skipped", json_integer(r->skipped));
    }
    if (ok && r->output[0])
        json_object_set_new(o, "output", json_string(r->output));
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    json_decref(o);
    return text;
}

static void result_init(sdlk_serve_result *r, const char *id)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id ? id : "");
    r->arrival_ms = r->start_ms = r->finish_ms = -1.0;
    r->predicted_ms = NAN;
}

static void result_from_job(sdlk_serve_result *r, const sdlk_serve_job *job)
{
    result_init(r, job->req.id);
    r->arrival_ms = job->arrival_ms;
    r->start_ms = job->start_ms;
    r->slo_ms = job->slo_ms;
    r->height = job->req.height;
    r->width = job->req.width;
    r->tiles = job->canvas_mode ? 1 : job->tiles;
    r->steps = job->req.steps;
    r->computed = job->computed;
    r->skipped = job->skipped;
}

static void emit(sdlk_serve_engine *e, const sdlk_serve_result *r)
{
    switch (r->outcome) {
    case SDLK_SERVE_SERVED:
        e->served++;
        e->met += r->slo_met;
        e->computed += r->computed;
        e->skipped += r->skipped;
        if (e->latency_n == e->latency_cap) {
            size_t cap = e->latency_cap ? 2 * e->latency_cap : 256;
            double *l = realloc(e->latency, cap * sizeof *l);
            if (l) {
                e->latency = l;
                e->latency_cap = cap;
            }
        }
        if (e->latency_n < e->latency_cap)
            e->latency[e->latency_n++] = r->latency_ms;
        break;
    case SDLK_SERVE_FAILED: e->failed++; break;
    case SDLK_SERVE_REJECTED: e->rejected++; break;
    case SDLK_SERVE_NOT_SERVED: e->not_served++; break;
    }
    if (e->cfg.on_result)
        e->cfg.on_result(e->cfg.result_ctx, r);
}

/* End a job that did not finish: result, backend close, removal. */
static void drop_job(sdlk_serve_engine *e, sdlk_serve_job *job, sdlk_serve_outcome outcome,
                     const char *why)
{
    sdlk_serve_result r;
    result_from_job(&r, job);
    r.outcome = outcome;
    snprintf(r.error, sizeof r.error, "%s", why);
    if (e->cfg.backend && job->state)
        e->cfg.backend->close(e->cfg.backend->ctx, job);
    sdlk_serve_store_remove(&e->store, job);
    emit(e, &r);
}

void sdlk_serve_engine_report_error(sdlk_serve_engine *e, const char *id, const char *message)
{
    sdlk_serve_result r;
    result_init(&r, id);
    r.outcome = SDLK_SERVE_FAILED;
    snprintf(r.error, sizeof r.error, "%s", message);
    emit(e, &r);
}

/* ---- pending arrivals (min-heap) ------------------------------------------------ */

static int before(const pending *a, const pending *b)
{
    return a->arrival_ms < b->arrival_ms ||
           (a->arrival_ms == b->arrival_ms && a->order < b->order);
}

static void heap_swap(pending *h, size_t i, size_t j)
{
    pending t = h[i];
    h[i] = h[j];
    h[j] = t;
}

static sdlk_status heap_push(sdlk_serve_engine *e, const pending *p, sdlk_error *err)
{
    if (e->heap_n == e->heap_cap) {
        size_t cap = e->heap_cap ? 2 * e->heap_cap : 64;
        pending *h = realloc(e->heap, cap * sizeof *h);
        if (!h)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "request %s: out of memory", p->req.id);
        e->heap = h;
        e->heap_cap = cap;
    }
    size_t i = e->heap_n++;
    e->heap[i] = *p;
    while (i > 0 && before(&e->heap[i], &e->heap[(i - 1) / 2])) {
        heap_swap(e->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return SDLK_OK;
}

static pending heap_pop(sdlk_serve_engine *e)
{
    pending top = e->heap[0];
    e->heap[0] = e->heap[--e->heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->heap_n && before(&e->heap[l], &e->heap[m]))
            m = l;
        if (r < e->heap_n && before(&e->heap[r], &e->heap[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(e->heap, i, m);
        i = m;
    }
    return top;
}

/* ---- lifecycle ------------------------------------------------------------------ */

sdlk_status sdlk_serve_engine_create(const sdlk_serve_config *c, sdlk_serve_engine **out,
                                     sdlk_error *err)
{
    if (c->batch < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "batch must be at least 1 (got %d)", c->batch);
    if (c->writers < 0 || c->writers > SDLK_SERVE_WRITERS_MAX)
        return sdlk_error_set(err, SDLK_ERR_ARG, "writers must be 0..%d (got %d)",
                              SDLK_SERVE_WRITERS_MAX, c->writers);
    if (c->clock == SDLK_SERVE_CLOCK_LIVE && !c->backend)
        return sdlk_error_set(err, SDLK_ERR_ARG, "the live clock needs a backend");
    for (int a = 0; a < 3; a++)
        if (c->profile.tile[a] < 1)
            return sdlk_error_set(err, SDLK_ERR_ARG, "profile: tile size must be at least 1");
    sdlk_serve_engine *e = calloc(1, sizeof *e);
    if (!e)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    e->cfg = *c;
    sdlk_serve_store_init(&e->store);
    const sdlk_serve_profile *p = &c->profile;
    double ref = c->batch > 1 ? c->batch : 2;
    sdlk_serve_predictor_init(&e->tiled, p->tiled_a_ms, p->tiled_b_ms, ref, 4.0, c->forget);
    sdlk_serve_predictor_init(&e->canvas, p->canvas_a_ms, p->canvas_b_ms,
                              ref, 4.0, c->forget);
    /* the same headroom on either clock, from the profile, so that the simulator plans
     * exactly as the live server it stands for */
    double headroom = c->headroom >= 0 ? c->headroom
                                       : SDLK_SERVE_HEADROOM_Z * sdlk_serve_profile_tiled_spread(p);
    e->tiled.headroom = headroom < SDLK_SERVE_HEADROOM_MAX ? headroom : SDLK_SERVE_HEADROOM_MAX;
    sdlk_serve_profile_init(&e->observed, p->tile, c->batch);
    e->start_ns = sdlk_now_ns();
    if (c->writers > 0) {
        sdlk_status st = SDLK_OK;
        if (c->clock == SDLK_SERVE_CLOCK_SIM) {
            if (!(e->lane_free_ms = calloc((size_t)c->writers, sizeof *e->lane_free_ms)))
                st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        } else {
            st = sdlk_serve_writeq_create(c->backend, c->writers, &e->writeq, err);
        }
        if (st != SDLK_OK) {
            sdlk_serve_engine_destroy(e);
            return st;
        }
    }
    *out = e;
    return SDLK_OK;
}

void sdlk_serve_engine_destroy(sdlk_serve_engine *e)
{
    if (!e)
        return;
    /* the writers first: they may still be using jobs and the backend */
    sdlk_serve_writeq_destroy(e->writeq);
    for (size_t i = 0; i < e->writes_n; i++) {
        if (e->cfg.backend && e->writes[i].job->state)
            e->cfg.backend->close(e->cfg.backend->ctx, e->writes[i].job);
        sdlk_serve_job_free(e->writes[i].job);
    }
    free(e->writes);
    free(e->lane_free_ms);
    for (size_t i = 0; i < e->store.count; i++)
        if (e->cfg.backend && e->store.jobs[i]->state)
            e->cfg.backend->close(e->cfg.backend->ctx, e->store.jobs[i]);
    sdlk_serve_store_free(&e->store);
    for (size_t i = 0; i < e->heap_n; i++)
        sdlk_serve_request_clear(&e->heap[i].req);
    free(e->heap);
    sdlk_serve_batch_free(&e->batch);
    free(e->latency);
    free(e);
}

sdlk_status sdlk_serve_engine_submit(sdlk_serve_engine *e, const sdlk_serve_request *req,
                                     sdlk_error *err)
{
    if (e->draining) {
        sdlk_serve_result r;
        result_init(&r, req->id);
        r.outcome = SDLK_SERVE_NOT_SERVED;
        snprintf(r.error, sizeof r.error, "request %s: not served: the server is shutting "
                 "down", req->id);
        emit(e, &r);
        return SDLK_OK;
    }
    pending p;
    memset(&p, 0, sizeof p);
    if (sdlk_serve_request_copy(&p.req, req, err) != SDLK_OK)
        return SDLK_ERR_NOMEM;
    double now = sdlk_serve_engine_now(e);
    p.arrival_ms = req->arrival_ms >= 0 ? req->arrival_ms : now;
    p.order = e->submitted++;
    sdlk_status st = heap_push(e, &p, err);
    if (st != SDLK_OK)
        sdlk_serve_request_clear(&p.req);
    return st;
}

int64_t sdlk_serve_engine_pending(const sdlk_serve_engine *e)
{
    return (int64_t)(e->heap_n + e->store.count + e->writes_n);
}

/* ---- events --------------------------------------------------------------------- */

/* Whether a job with this id is having its output written. */
static int writing_id(const sdlk_serve_engine *e, const char *id)
{
    for (size_t i = 0; i < e->writes_n; i++)
        if (strcmp(e->writes[i].job->req.id, id) == 0)
            return 1;
    return 0;
}

static void admit(sdlk_serve_engine *e, pending *p)
{
    sdlk_error err = {0};
    char msg[SDLK_ERROR_MSG_MAX];
    if (sdlk_serve_store_find(&e->store, p->req.id) || writing_id(e, p->req.id)) {
        snprintf(msg, sizeof msg, "request %s: an unfinished request has the same id",
                 p->req.id);
        sdlk_serve_engine_report_error(e, p->req.id, msg);
        return;
    }
    sdlk_serve_job *job;
    if (sdlk_serve_store_add(&e->store, &p->req, p->arrival_ms, e->cfg.profile.tile, &job,
                             &err) != SDLK_OK) {
        sdlk_serve_engine_report_error(e, p->req.id, err.msg);
        return;
    }
    const sdlk_serve_profile *prof = &e->cfg.profile;
    job->canvas_mode = sdlk_serve_policy_untiled(e->cfg.policy);
    job->standalone_ms = sdlk_serve_profile_standalone_ms(prof, job->tiles, job->req.steps,
                                                          e->cfg.batch, job->req.height,
                                                          job->req.width);
    job->slo_ms = job->req.slo_ms > 0 ? job->req.slo_ms : job->req.slo_scale * job->standalone_ms;
    job->deadline_ms = job->arrival_ms + job->slo_ms;
    job->tail_ms = sdlk_serve_profile_finish_ms(prof, job->req.height, job->req.width);
    double now = sdlk_serve_engine_now(e);
    if (e->cfg.policy == SDLK_SERVE_POLICY_TILE && e->cfg.admission) {
        double finish;
        const sdlk_serve_job *victim;
        if (!sdlk_serve_admit(&e->store, job, now, &e->tiled, e->cfg.batch, &finish, &victim)) {
            sdlk_serve_result r;
            result_from_job(&r, job);
            r.outcome = SDLK_SERVE_REJECTED;
            r.predicted_ms = finish;
            /* the result line names the request and says "rejected" */
            if (victim)
                snprintf(r.error, sizeof r.error, "predicted to finish at %.0f ms, within its "
                         "deadline %.0f ms, but then request %s, admitted earlier, would miss "
                         "its deadline", finish, job->deadline_ms, victim->req.id);
            else
                snprintf(r.error, sizeof r.error, "predicted to finish at %.0f ms, after its "
                         "deadline %.0f ms", finish, job->deadline_ms);
            sdlk_serve_store_remove(&e->store, job);
            emit(e, &r);
            return;
        }
    }
    sdlk_status st = SDLK_OK;
    if (e->cfg.clock == SDLK_SERVE_CLOCK_SIM) {
        e->busy_ms += sim_charge(e, SDLK_SERVE_COST_OPEN, 0, job);
    } else {
        uint64_t t0 = sdlk_now_ns();
        st = e->cfg.backend->open(e->cfg.backend->ctx, job, &err);
        double ms = sdlk_seconds_since(t0) * 1e3;
        e->busy_ms += ms;
        if (st == SDLK_OK) {
            e->open_sum += ms;
            e->open_n++;
        }
    }
    if (st != SDLK_OK)
        drop_job(e, job, SDLK_SERVE_FAILED, err.msg);
}

/* Report a finished job whose output was written (or failed to be) and free it; the
 * job is no longer in the store. */
static void report_written(sdlk_serve_engine *e, sdlk_serve_job *job, sdlk_status st,
                           const char *why, const char *path, double write_ms, double finish_ms)
{
    sdlk_serve_result r;
    result_from_job(&r, job);
    if (st != SDLK_OK) {
        r.outcome = SDLK_SERVE_FAILED;
        snprintf(r.error, sizeof r.error, "%s", why);
    } else {
        r.outcome = SDLK_SERVE_SERVED;
        snprintf(r.output, sizeof r.output, "%s", path);
        r.finish_ms = finish_ms;
        r.latency_ms = r.finish_ms - r.arrival_ms;
        r.slo_met = r.latency_ms <= r.slo_ms;
        if (e->cfg.clock == SDLK_SERVE_CLOCK_LIVE && e->fin_n < FINISH_SAMPLES) {
            e->fin_mpx[e->fin_n] = (double)job->req.height * (double)job->req.width * 1e-6;
            e->fin_ms[e->fin_n++] = write_ms;
        }
    }
    if (e->cfg.backend && job->state)
        e->cfg.backend->close(e->cfg.backend->ctx, job);
    sdlk_serve_job_free(job);
    emit(e, &r);
}

/* writers > 0: hand the job to a writer (sim: the lane free first; live: the queue). */
static void start_write(sdlk_serve_engine *e, sdlk_serve_job *job)
{
    if (e->writes_n == e->writes_cap) {
        size_t cap = e->writes_cap ? 2 * e->writes_cap : 16;
        writing *w = realloc(e->writes, cap * sizeof *w);
        if (!w) {
            drop_job(e, job, SDLK_SERVE_FAILED, "out of memory queueing the output");
            return;
        }
        e->writes = w;
        e->writes_cap = cap;
    }
    double end_ms = 0;
    if (e->cfg.clock == SDLK_SERVE_CLOCK_SIM) {
        int lane = 0;
        for (int k = 1; k < e->cfg.writers; k++)
            if (e->lane_free_ms[k] < e->lane_free_ms[lane])
                lane = k;
        double start = e->lane_free_ms[lane] > e->now_ms ? e->lane_free_ms[lane] : e->now_ms;
        double cost = e->cfg.cost ? e->cfg.cost(e->cfg.cost_ctx, SDLK_SERVE_COST_FINISH, 0, job)
                                  : profile_cost(&e->cfg.profile, SDLK_SERVE_COST_FINISH, 0, job);
        end_ms = start + (cost >= 0 && isfinite(cost) ? cost : 0);
        e->lane_free_ms[lane] = end_ms;
    } else {
        sdlk_error err = {0};
        if (sdlk_serve_writeq_push(e->writeq, job, &err) != SDLK_OK) {
            drop_job(e, job, SDLK_SERVE_FAILED, err.msg);
            return;
        }
    }
    sdlk_serve_store_detach(&e->store, job);
    e->writes[e->writes_n++] = (writing){job, end_ms};
}

/* Forget writes[i] (order does not matter: results carry their own times). */
static sdlk_serve_job *take_write(sdlk_serve_engine *e, size_t i)
{
    sdlk_serve_job *job = e->writes[i].job;
    e->writes[i] = e->writes[--e->writes_n];
    return job;
}

/* Report the writes that have ended: sim, those ending by now (all with `all`, in the
 * order of their ends); live, the completions the writers posted (with `all`, waiting
 * for every one). Returns how many were reported. */
static int collect_writes(sdlk_serve_engine *e, int all)
{
    int reported = 0;
    if (e->cfg.clock == SDLK_SERVE_CLOCK_SIM) {
        for (;;) {
            size_t first = e->writes_n;
            for (size_t i = 0; i < e->writes_n; i++)
                if (first == e->writes_n || e->writes[i].end_ms < e->writes[first].end_ms)
                    first = i;
            if (first == e->writes_n || (!all && e->writes[first].end_ms > e->now_ms))
                return reported;
            double end_ms = e->writes[first].end_ms;
            report_written(e, take_write(e, first), SDLK_OK, "", "", 0, end_ms);
            reported++;
        }
    }
    sdlk_serve_written done[COLLECT_MAX];
    do {
        int n = sdlk_serve_writeq_collect(e->writeq, done, COLLECT_MAX, all);
        for (int k = 0; k < n; k++) {
            size_t i = 0;
            while (i < e->writes_n && e->writes[i].job != done[k].job)
                i++;
            if (i == e->writes_n) /* cannot happen: every pushed job is listed */
                continue;
            double finish_ms = (double)(done[k].done_ns - e->start_ns) * 1e-6;
            report_written(e, take_write(e, i), done[k].status, done[k].error, done[k].path,
                           done[k].write_ms, finish_ms);
            reported++;
        }
    } while (all && e->writes_n > 0);
    return reported;
}

/* The earliest end of a simulated write (INFINITY: none). */
static double next_write_end(const sdlk_serve_engine *e)
{
    double t = INFINITY;
    for (size_t i = 0; i < e->writes_n; i++)
        if (e->writes[i].end_ms < t)
            t = e->writes[i].end_ms;
    return t;
}

static void finish_job(sdlk_serve_engine *e, sdlk_serve_job *job)
{
    if (e->cfg.writers > 0) {
        start_write(e, job);
        return;
    }
    sdlk_error err = {0};
    char path[sizeof ((sdlk_serve_result *)0)->output] = "";
    sdlk_status st = SDLK_OK;
    double ms;
    if (e->cfg.clock == SDLK_SERVE_CLOCK_SIM) {
        ms = sim_charge(e, SDLK_SERVE_COST_FINISH, 0, job);
    } else {
        uint64_t t0 = sdlk_now_ns();
        st = e->cfg.backend->finish(e->cfg.backend->ctx, job, path, sizeof path, &err);
        ms = sdlk_seconds_since(t0) * 1e3;
    }
    e->busy_ms += ms;
    sdlk_serve_store_detach(&e->store, job);
    report_written(e, job, st, err.msg, path, ms, sdlk_serve_engine_now(e));
}

/* The call's work after its run: tile items answered from the region cache drop out
 * (a canvas item is never skipped). */
static void computed_work(sdlk_serve_batch *b)
{
    if (b->canvas)
        return;
    int computed = 0;
    for (int i = 0; i < b->n; i++)
        computed += !b->items[i].skipped;
    b->work = computed;
}

/* Run the formed call and account for it. */
static void run_batch(sdlk_serve_engine *e)
{
    sdlk_serve_batch *b = &e->batch;
    double t0 = sdlk_serve_engine_now(e);
    for (int i = 0; i < b->n; i++)
        if (b->items[i].job->start_ms < 0)
            b->items[i].job->start_ms = t0;
    sdlk_error err = {0};
    sdlk_status st = SDLK_OK;
    double ms;
    if (e->cfg.clock == SDLK_SERVE_CLOCK_SIM) {
        if (!b->canvas && e->cfg.sim_skip)
            for (int i = 0; i < b->n; i++)
                b->items[i].skipped = e->cfg.sim_skip(e->cfg.sim_skip_ctx, b->items[i].job,
                                                      b->items[i].step, b->items[i].tile) != 0;
        computed_work(b);
        /* skipped tiles are charged nothing; a call with none left is no model call */
        ms = b->work > 0 ? sim_charge(e, b->canvas ? SDLK_SERVE_COST_CANVAS
                                                   : SDLK_SERVE_COST_TILES, b->work, NULL)
                         : 0.0;
    } else {
        uint64_t ns = sdlk_now_ns();
        st = e->cfg.backend->run(e->cfg.backend->ctx, b, &err);
        ms = sdlk_seconds_since(ns) * 1e3;
        computed_work(b);
        if (st == SDLK_OK && b->work > 0)
            sdlk_serve_profile_add_sample(&e->observed, b->canvas, b->work, ms);
    }
    if (b->work > 0)
        e->calls++;
    e->busy_ms += ms;
    /* an all-skipped call measured bookkeeping, not the model: it would pull the
     * line's intercept down */
    if (st == SDLK_OK && b->work > 0)
        sdlk_serve_predictor_observe(b->canvas ? &e->canvas : &e->tiled, b->work, ms);
    /* account per item, then settle each job once (its items are contiguous or not:
     * handed counts them all) */
    for (int i = 0; i < b->n; i++) {
        sdlk_serve_job *job = b->items[i].job;
        job->handed--;
        if (st == SDLK_OK) {
            job->done++;
            if (b->items[i].skipped)
                job->skipped++;
            else
                job->computed++;
        }
    }
    for (int i = 0; i < b->n; i++) {
        sdlk_serve_job *job = b->items[i].job;
        if (!job || job->handed > 0)
            continue;
        for (int k = i + 1; k < b->n; k++) /* each job settles once */
            if (b->items[k].job == job)
                b->items[k].job = NULL;
        if (st != SDLK_OK) {
            drop_job(e, job, SDLK_SERVE_FAILED, err.msg);
            continue;
        }
        if (job->done == sdlk_serve_job_items(job)) {
            job->step++;
            job->done = 0;
        }
        if (job->step == job->req.steps)
            finish_job(e, job);
    }
}

sdlk_status sdlk_serve_engine_step(sdlk_serve_engine *e, double *next_ms, sdlk_error *err)
{
    *next_ms = -1.0;
    if (e->writes_n > 0 && collect_writes(e, 0) > 0)
        return SDLK_OK;
    int admitted = 0;
    while (e->heap_n > 0 && e->heap[0].arrival_ms <= sdlk_serve_engine_now(e)) {
        pending p = heap_pop(e);
        admit(e, &p);
        sdlk_serve_request_clear(&p.req);
        admitted = 1;
    }
    if (admitted)
        return SDLK_OK;
    if (sdlk_serve_sched_form(e->cfg.policy, &e->store, sdlk_serve_engine_now(e), e->cfg.batch,
                              e->cfg.group, &e->tiled, &e->batch, err) != SDLK_OK)
        return err ? err->code : SDLK_ERR_NOMEM;
    if (e->batch.n > 0) {
        run_batch(e);
        return SDLK_OK;
    }
    /* nothing to run: the next event is an arrival or the end of a write */
    double arrival = e->heap_n > 0 ? e->heap[0].arrival_ms : INFINITY;
    if (e->cfg.clock == SDLK_SERVE_CLOCK_SIM) {
        double next = e->writes_n > 0 ? fmin(arrival, next_write_end(e)) : arrival;
        if (next == INFINITY)
            *next_ms = INFINITY;
        else if (next > e->now_ms)
            e->now_ms = next;
        return SDLK_OK;
    }
    if (e->writes_n > 0)
        arrival = fmin(arrival, sdlk_serve_engine_now(e) + WRITE_POLL_MS);
    *next_ms = arrival;
    return SDLK_OK;
}

sdlk_status sdlk_serve_engine_run(sdlk_serve_engine *e, sdlk_error *err)
{
    for (;;) {
        double next;
        sdlk_status st = sdlk_serve_engine_step(e, &next, err);
        if (st != SDLK_OK)
            return st;
        if (next == INFINITY)
            return SDLK_OK;
        if (next >= 0) { /* live clock: sleep until the next arrival */
            double wait = next - sdlk_serve_engine_now(e);
            if (wait > 0) {
                struct timespec ts = {(time_t)(wait / 1e3),
                                      (long)(fmod(wait, 1e3) * 1e6)};
                nanosleep(&ts, NULL);
            }
        }
    }
}

void sdlk_serve_engine_drain(sdlk_serve_engine *e)
{
    e->draining = 1;
    while (e->heap_n > 0) {
        pending p = heap_pop(e);
        sdlk_serve_result r;
        result_init(&r, p.req.id);
        r.outcome = SDLK_SERVE_NOT_SERVED;
        r.arrival_ms = p.arrival_ms;
        snprintf(r.error, sizeof r.error, "request %s: not served: the server shut down "
                 "before it arrived", p.req.id);
        sdlk_serve_request_clear(&p.req);
        emit(e, &r);
    }
}

void sdlk_serve_engine_abort(sdlk_serve_engine *e)
{
    sdlk_serve_engine_drain(e);
    while (e->store.count > 0) {
        sdlk_serve_job *job = e->store.jobs[0];
        char why[SDLK_ERROR_MSG_MAX];
        snprintf(why, sizeof why, "request %s: not served: the server shut down at step %d "
                 "of %d", job->req.id, job->step, job->req.steps);
        drop_job(e, job, SDLK_SERVE_NOT_SERVED, why);
    }
    /* outputs being written are finished work: wait for them and report them served
     * (or failed) -- nothing is reported served before its file exists */
    if (e->writes_n > 0)
        collect_writes(e, 1);
}

/* ---- statistics ----------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0.0;
    size_t k = (size_t)ceil(q * (double)n);
    return v[k > 0 ? k - 1 : 0];
}

void sdlk_serve_engine_stats(const sdlk_serve_engine *e, sdlk_serve_stats *st)
{
    memset(st, 0, sizeof *st);
    st->served = e->served;
    st->met = e->met;
    st->failed = e->failed;
    st->rejected = e->rejected;
    st->not_served = e->not_served;
    st->results = e->served + e->failed + e->rejected + e->not_served;
    st->calls = e->calls;
    st->computed = e->computed;
    st->skipped = e->skipped;
    st->busy_ms = e->busy_ms;
    int64_t valid = e->served + e->rejected + e->not_served;
    st->attainment = valid > 0 ? (double)e->met / (double)valid : 0.0;
    st->tiled_a_ms = e->tiled.a;
    st->tiled_b_ms = e->tiled.b;
    if (e->latency_n > 0) {
        double *v = malloc(e->latency_n * sizeof *v);
        if (v) {
            memcpy(v, e->latency, e->latency_n * sizeof *v);
            qsort(v, e->latency_n, sizeof *v, cmp_double);
            st->p50_ms = percentile(v, e->latency_n, 0.50);
            st->p99_ms = percentile(v, e->latency_n, 0.99);
            free(v);
        }
    }
}

void sdlk_serve_engine_profile(const sdlk_serve_engine *e, sdlk_serve_profile *out)
{
    *out = e->cfg.profile;
    out->max_batch = e->cfg.batch;
    int tiled = 0, canvas = 0;
    for (int i = 0; i < e->observed.n_samples; i++)
        *(e->observed.samples[i].canvas ? &canvas : &tiled) += 1;
    if (tiled || canvas) {
        sdlk_serve_profile fit = e->observed;
        sdlk_serve_profile_fit(&fit);
        if (tiled) {
            out->tiled_a_ms = fit.tiled_a_ms;
            out->tiled_b_ms = fit.tiled_b_ms;
        }
        if (canvas) {
            out->canvas_a_ms = fit.canvas_a_ms;
            out->canvas_b_ms = fit.canvas_b_ms;
        }
        out->n_samples = 0;
        for (int i = 0; i < e->observed.n_samples; i++)
            sdlk_serve_profile_add_sample(out, e->observed.samples[i].canvas,
                                          e->observed.samples[i].work,
                                          e->observed.samples[i].ms);
    }
    if (e->open_n > 0)
        out->open_ms = e->open_sum / (double)e->open_n;
    if (e->fin_n > 0) {
        /* through the origin when the sizes do not vary: ms per megapixel */
        double s0 = 0, s1 = 0, s2 = 0, sy = 0, sxy = 0;
        for (int i = 0; i < e->fin_n; i++) {
            s0 += 1;
            s1 += e->fin_mpx[i];
            s2 += e->fin_mpx[i] * e->fin_mpx[i];
            sy += e->fin_ms[i];
            sxy += e->fin_mpx[i] * e->fin_ms[i];
        }
        double det = s0 * s2 - s1 * s1, a = 0, b = s2 > 0 ? sxy / s2 : 0;
        if (det > 1e-9 * s0 * s2) {
            double bb = (s0 * sxy - s1 * sy) / det, aa = (sy - bb * s1) / s0;
            if (aa >= 0 && bb >= 0)
                a = aa, b = bb;
        }
        out->finish_a_ms = a;
        out->finish_b_ms_per_mpx = b;
    }
}
