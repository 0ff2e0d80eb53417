/* sched.h -- scheduler policies: which items form the next model call, and EDF
 * admission control.
 *
 * Contract
 *   Policies (what `--policy` names):
 *     tile       SLO-aware tile batching: the next call takes up to B tiles from the
 *                requests in earliest-deadline-first order (a request whose deadline has
 *                passed goes behind every request that can still make it), as many
 *                tiles of each request's current step as fit, so small and large
 *                requests, resolutions and steps share calls. The call holds fewer than
 *                B tiles when a request that can still make its deadline would miss it
 *                in full calls (SLO-aware call size: where a call's latency grows with
 *                its tiles, a request of a few tiles in full calls waits for all of them
 *                every step). With admission control a
 *                request is taken only when EDF predicts it finishes in time without
 *                making an admitted request late (sdlk_serve_admit); others are reported
 *                as rejected at arrival.
 *     tile-fcfs  the same tile batching in arrival order, no admission: fine-grained FCFS
 *                pipelining.
 *     fcfs       request-level FCFS: one request at a time, its whole canvas in one
 *                untiled call per step.
 *     grouped    resolution-grouped batching (conventional serving, NIRVANA-class): the
 *                oldest waiting request and the other waiting requests of the same size
 *                (in arrival order, up to `group` requests) form a batch that runs
 *                untiled, all steps, to completion; then the next group.
 *   A call always completes before the next is formed, so a request's current step is
 *   either untouched or finished between calls.
 *   Cost: forming a call is O(n log n) for n requests in the store (sorting by key);
 *   admission is O(n log n).
 */
#ifndef SDLK_SERVE_SCHED_H
#define SDLK_SERVE_SCHED_H

#include "core/error.h"
#include "serve/predictor.h"
#include "serve/store.h"

typedef enum sdlk_serve_policy {
    SDLK_SERVE_POLICY_TILE = 0,
    SDLK_SERVE_POLICY_TILE_FCFS,
    SDLK_SERVE_POLICY_FCFS,
    SDLK_SERVE_POLICY_GROUPED
} sdlk_serve_policy;

/* "tile", "tile-fcfs", "fcfs", "grouped". */
const char *sdlk_serve_policy_name(sdlk_serve_policy p);
/* 0 ok (also accepts "fcfs-request" and "resolution-grouped"), -1 unknown. */
int sdlk_serve_policy_parse(const char *s, sdlk_serve_policy *out);
/* 1 when the policy computes whole canvases untiled. */
int sdlk_serve_policy_untiled(sdlk_serve_policy p);

/* Form the next call into b (b->n = 0: nothing can run). `batch` = B >= 1 tiles per
 * call (tile policies); `group` = requests per group (grouped; fcfs uses 1). `pred`
 * (the latency of a call of n tiles) sizes the tile policy's calls: the largest size
 * <= B at which every job, in EDF order, that can still make its deadline at some size
 * keeps making it, each judged alone as (steps left) x ceil(tiles / size) calls of
 * L(size), never below the size whose cost per tile L(n)/n is twice a full call's;
 * NULL = always up to B. Marks the items as handed out (job->handed) and sets
 * job->late for EDF. O(n log n + n B). */
sdlk_status sdlk_serve_sched_form(sdlk_serve_policy policy, sdlk_serve_store *s, double now_ms,
                                  int batch, int group, const sdlk_serve_predictor *pred,
                                  sdlk_serve_batch *b, sdlk_error *err);

/* EDF admission test for `cand` (already in the store, not started) at time now:
 * with c = L(B) / B the cost per tile of full calls (from `pred`), each non-late job j
 * in deadline order finishes at now + max(sum of remaining tiles up to j * c, its own
 * critical path: remaining steps x ceil(tiles / B) calls) + j's tail_ms. Returns 1
 * when the candidate's predicted finish is within its deadline and every other job that
 * was predicted on time without it still is; *finish_ms gets the candidate's
 * prediction and *victim (when not NULL) the first admitted job it would make late
 * (NULL when the candidate itself is predicted late, or on admission). */
int sdlk_serve_admit(const sdlk_serve_store *s, const sdlk_serve_job *cand, double now_ms,
                     const sdlk_serve_predictor *pred, int batch, double *finish_ms,
                     const sdlk_serve_job **victim);

#endif
