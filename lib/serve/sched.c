/* sched.c -- tile, tile-fcfs, fcfs and grouped policies; EDF admission (sched.h). */
#include "serve/sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const policy_names[] = {"tile", "tile-fcfs", "fcfs", "grouped"};

const char *sdlk_serve_policy_name(sdlk_serve_policy p)
{
    return (unsigned)p < 4 ? policy_names[p] : "unknown";
}

int sdlk_serve_policy_parse(const char *s, sdlk_serve_policy *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, policy_names[i]) == 0) {
            *out = (sdlk_serve_policy)i;
            return 0;
        }
    if (strcmp(s, "fcfs-request") == 0) {
        *out = SDLK_SERVE_POLICY_FCFS;
        return 0;
    }
    if (strcmp(s, "resolution-grouped") == 0) {
        *out = SDLK_SERVE_POLICY_GROUPED;
        return 0;
    }
    return -1;
}

int sdlk_serve_policy_untiled(sdlk_serve_policy p)
{
    return p == SDLK_SERVE_POLICY_FCFS || p == SDLK_SERVE_POLICY_GROUPED;
}

/* EDF order: jobs that can still make their deadline first, by deadline, then by
 * arrival; late jobs after them (by deadline too), so one late request cannot drag
 * every later one past its deadline. */
static int cmp_edf(const void *pa, const void *pb)
{
    const sdlk_serve_job *a = *(sdlk_serve_job *const *)pa, *b = *(sdlk_serve_job *const *)pb;
    if (a->late != b->late)
        return a->late - b->late;
    if (a->deadline_ms != b->deadline_ms)
        return a->deadline_ms < b->deadline_ms ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int cmp_seq(const void *pa, const void *pb)
{
    const sdlk_serve_job *a = *(sdlk_serve_job *const *)pa, *b = *(sdlk_serve_job *const *)pb;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static sdlk_status push(sdlk_serve_batch *b, sdlk_serve_job *job, int64_t tile,
                        sdlk_error *err)
{
    if (b->n == b->cap && sdlk_serve_batch_reserve(b, b->cap ? 2 * b->cap : 16, err) != SDLK_OK)
        return SDLK_ERR_NOMEM;
    b->items[b->n++] = (sdlk_serve_item){job, job->step, tile, 0};
    job->handed++;
    return SDLK_OK;
}

/* Sorted copy of the store's job pointers (caller frees). */
static sdlk_serve_job **sorted_jobs(const sdlk_serve_store *s,
                                    int (*cmp)(const void *, const void *), sdlk_error *err)
{
    sdlk_serve_job **order = malloc((s->count ? s->count : 1) * sizeof *order);
    if (!order) {
        sdlk_error_set(err, SDLK_ERR_NOMEM, "scheduler: out of memory");
        return NULL;
    }
    if (s->count) /* jobs is NULL before the first add */
        memcpy(order, s->jobs, s->count * sizeof *order);
    qsort(order, s->count, sizeof *order, cmp);
    return order;
}

/* Model time job j still needs on its own when every call holds `size` tiles: each
 * remaining step takes ceil(tiles / size) calls of L(size) -- a job with fewer tiles
 * than the call shares it with others and waits for all of it. */
static double needed_ms(const sdlk_serve_job *j, const sdlk_serve_predictor *p, int size)
{
    double steps_left = sdlk_serve_job_remaining_tiles(j) / (double)j->tiles;
    double calls = (double)((j->tiles + size - 1) / size);
    return steps_left * calls * sdlk_serve_predictor_ms(p, size);
}

/* The largest size in [smallest, size] at which job j, alone, needs at most `slack` ms
 * with its model time scaled by `margin`; smallest - 1 when none does. */
static int largest_fitting_size(const sdlk_serve_job *j, const sdlk_serve_predictor *pred,
                                int size, int smallest, double slack, double margin)
{
    while (size >= smallest && needed_ms(j, pred, size) * margin > slack)
        size--;
    return size;
}

/* SLO-aware call size (tile policy): the largest size <= batch at which each job, in EDF
 * order, that can still make its deadline keeps making it, judged on its own by
 * needed_ms with the predictor's headroom on top (or, where no size leaves it that
 * much, as predicted); a job that cannot make it at any size left is not allowed to
 * shrink the calls.
 * Full calls cost least per tile, but when the model's cost grows with the tiles in a
 * call (a CPU) a request of a few tiles in full calls waits for all of them every step,
 * which is what makes small requests miss a tight SLO under load. Without the headroom
 * the sizes aim a request's finish at its deadline itself, and on a live machine a
 * stretch of slow calls then makes it late (in simulation a fifth of a live-sized
 * trace's requests finished within 5 % of their deadlines). Calls never shrink below the
 * size whose cost per tile is twice a full call's: where a call's fixed cost dominates
 * (a GPU), saving one request must not halve everyone's throughput (on the CPU profile,
 * 1.5 + 3.7 ms per tile, every size qualifies). */
static int call_size(sdlk_serve_job *const *order, size_t count, double now,
                     const sdlk_serve_predictor *pred, int batch)
{
    if (!pred)
        return batch;
    double full_per_tile = sdlk_serve_predictor_ms(pred, batch) / batch;
    int smallest = 1;
    while (smallest < batch &&
           sdlk_serve_predictor_ms(pred, smallest) / smallest > 2.0 * full_per_tile)
        smallest++;
    int size = batch;
    for (size_t i = 0; i < count && size > smallest; i++) {
        const sdlk_serve_job *j = order[i];
        if (j->late || j->step >= j->req.steps)
            continue;
        double slack = j->deadline_ms - now - j->tail_ms;
        /* with the headroom if the job can have it, else at least on time as predicted */
        int fit = largest_fitting_size(j, pred, size, smallest, slack, 1.0 + pred->headroom);
        if (fit < smallest)
            fit = largest_fitting_size(j, pred, size, smallest, slack, 1.0);
        if (fit >= smallest)
            size = fit;
    }
    return size;
}

static sdlk_status form_tiles(sdlk_serve_policy policy, sdlk_serve_store *s, double now,
                              int batch, const sdlk_serve_predictor *pred,
                              sdlk_serve_batch *b, sdlk_error *err)
{
    for (size_t i = 0; i < s->count; i++)
        s->jobs[i]->late = now > s->jobs[i]->deadline_ms;
    sdlk_serve_job **order =
        sorted_jobs(s, policy == SDLK_SERVE_POLICY_TILE ? cmp_edf : cmp_seq, err);
    if (!order)
        return SDLK_ERR_NOMEM;
    if (policy == SDLK_SERVE_POLICY_TILE)
        batch = call_size(order, s->count, now, pred, batch);
    sdlk_status st = SDLK_OK;
    for (size_t i = 0; i < s->count && b->n < batch && st == SDLK_OK; i++) {
        sdlk_serve_job *job = order[i];
        while (job->step < job->req.steps && job->done + job->handed < job->tiles &&
               b->n < batch && st == SDLK_OK)
            st = push(b, job, job->done + job->handed, err);
    }
    free(order);
    b->work = b->n;
    return st;
}

/* Grouped and request-level FCFS: continue the running group or start the next one. */
static sdlk_status form_groups(sdlk_serve_policy policy, sdlk_serve_store *s, int group,
                               sdlk_serve_batch *b, sdlk_error *err)
{
    int running = 0;
    for (size_t i = 0; i < s->count; i++)
        running |= s->jobs[i]->in_group && s->jobs[i]->step < s->jobs[i]->req.steps;
    if (!running) {
        sdlk_serve_job **order = sorted_jobs(s, cmp_seq, err);
        if (!order)
            return SDLK_ERR_NOMEM;
        sdlk_serve_job *head = NULL;
        int members = 0;
        for (size_t i = 0; i < s->count; i++) {
            sdlk_serve_job *job = order[i];
            if (job->step > 0 || job->in_group || job->step >= job->req.steps)
                continue;
            if (!head) {
                head = job;
            } else if (policy == SDLK_SERVE_POLICY_FCFS || job->req.height != head->req.height ||
                       job->req.width != head->req.width || members >= group) {
                continue;
            }
            job->in_group = 1;
            members++;
        }
        free(order);
    }
    double work = 0;
    for (size_t i = 0; i < s->count; i++) {
        sdlk_serve_job *job = s->jobs[i];
        if (job->in_group && job->step < job->req.steps && job->done + job->handed < 1) {
            if (push(b, job, -1, err) != SDLK_OK)
                return SDLK_ERR_NOMEM;
            work += (double)job->tiles;
        }
    }
    b->work = work;
    return SDLK_OK;
}

sdlk_status sdlk_serve_sched_form(sdlk_serve_policy policy, sdlk_serve_store *s, double now_ms,
                                  int batch, int group, const sdlk_serve_predictor *pred,
                                  sdlk_serve_batch *b, sdlk_error *err)
{
    b->n = 0;
    b->work = 0;
    b->canvas = sdlk_serve_policy_untiled(policy);
    if (b->canvas)
        return form_groups(policy, s, group > 0 ? group : 1, b, err);
    return form_tiles(policy, s, now_ms, batch, pred, b, err);
}

/* ---- admission ------------------------------------------------------------------ */

/* Time job j needs on its own: every remaining step as ceil(tiles / B) calls. */
static double critical_ms(const sdlk_serve_job *j, const sdlk_serve_predictor *p, int batch)
{
    int64_t full = j->tiles / batch, rest = j->tiles % batch;
    double per_step = (double)full * sdlk_serve_predictor_ms(p, batch) +
                      sdlk_serve_predictor_ms(p, (double)rest);
    double steps_left = (double)(j->req.steps - j->step);
    double partial = j->done > 0 ? (double)j->done / (double)j->tiles : 0.0;
    return (steps_left - partial) * per_step;
}

/* Predicted finishes in EDF order over the non-late jobs (plus `extra` when non-NULL);
 * on_time[i] for order[i]. Returns the number of jobs ordered. */
static size_t predict(const sdlk_serve_store *s, const sdlk_serve_job *extra,
                      const sdlk_serve_job *skip, double now, const sdlk_serve_predictor *p,
                      int batch, const sdlk_serve_job **order, double *finish)
{
    size_t n = 0;
    for (size_t i = 0; i < s->count; i++) {
        const sdlk_serve_job *j = s->jobs[i];
        if (j != skip && !(now > j->deadline_ms) && j->step < j->req.steps)
            order[n++] = j;
    }
    if (extra)
        order[n++] = extra;
    /* cmp_edf looks at `late`, which is 0 for every job here; compare deadlines only */
    qsort(order, n, sizeof *order, cmp_edf);
    double per_tile = sdlk_serve_predictor_ms(p, batch) / batch, cum = 0;
    for (size_t k = 0; k < n; k++) {
        cum += sdlk_serve_job_remaining_tiles(order[k]) * per_tile;
        double own = critical_ms(order[k], p, batch);
        finish[k] = now + (cum > own ? cum : own) + order[k]->tail_ms;
    }
    return n;
}

int sdlk_serve_admit(const sdlk_serve_store *s, const sdlk_serve_job *cand, double now_ms,
                     const sdlk_serve_predictor *pred, int batch, double *finish_ms,
                     const sdlk_serve_job **victim)
{
    const sdlk_serve_job *first_victim = NULL;
    size_t cap = s->count + 1;
    const sdlk_serve_job **before = malloc(cap * sizeof *before);
    const sdlk_serve_job **after = malloc(cap * sizeof *after);
    double *fb = malloc(cap * sizeof *fb), *fa = malloc(cap * sizeof *fa);
    int ok = 0;
    *finish_ms = INFINITY;
    if (before && after && fb && fa) {
        size_t nb = predict(s, NULL, cand, now_ms, pred, batch, before, fb);
        size_t na = predict(s, cand, cand, now_ms, pred, batch, after, fa);
        ok = 1;
        /* both orders sort by the same keys, so without the candidate at position pos,
         * after[k] is before[k] for k < pos and before[k - 1] for k > pos */
        size_t pos = 0;
        while (pos < na && after[pos] != cand)
            pos++;
        for (size_t k = 0; k < na; k++) {
            if (k == pos) {
                *finish_ms = fa[k];
                ok &= fa[k] <= cand->deadline_ms;
                continue;
            }
            size_t m = k < pos ? k : k - 1;
            if (fa[k] > after[k]->deadline_ms && m < nb && fb[m] <= before[m]->deadline_ms) {
                ok = 0;
                if (!first_victim)
                    first_victim = after[k];
            }
        }
    }
    if (victim)
        *victim = (ok || *finish_ms > cand->deadline_ms) ? NULL : first_victim;
    free(before);
    free(after);
    free(fb);
    free(fa);
    return ok;
}
