/* reorder.c -- node renumberings: by degree, reverse Cuthill-McKee, and the relabelling
 * both share (graph.h, "reordering"). */
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/graph_internal.h"

sdlk_status sdlk_graph_permute(const sdlk_graph *g, const int64_t *order, sdlk_graph *out,
                               sdlk_error *err)
{
    sdlk_graph_init(out);
    int64_t n = g->nodes;
    int64_t *new_of_old = sdlk_graph_alloc_array(n, sizeof(int64_t), err);
    int64_t *perm = sdlk_graph_alloc_array(n, sizeof(int64_t), err);
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    sdlk_status st = SDLK_OK;
    if (!new_of_old || !perm) {
        st = err ? err->code : SDLK_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        new_of_old[i] = -1;
    for (int64_t i = 0; i < n; i++) {
        if (order[i] < 0 || order[i] >= n || new_of_old[order[i]] >= 0) {
            st = sdlk_error_set(err, SDLK_ERR_ARG, "node order: entry %lld (%lld) is not a "
                                "permutation of 0..%lld", (long long)i, (long long)order[i],
                                (long long)(n - 1));
            goto done;
        }
        new_of_old[order[i]] = i;
    }
    coo.rows = coo.cols = n;
    st = sdlk_coo_reserve(&coo, g->edges, g->values != NULL, err);
    if (st)
        goto done;
    for (int64_t r = 0; r < n; r++)
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++) {
            coo.row[coo.count] = (int32_t)new_of_old[r];
            coo.col[coo.count] = (int32_t)new_of_old[g->col_idx[k]];
            if (g->values)
                coo.value[coo.count] = g->values[k];
            coo.count++;
        }
    st = sdlk_graph_from_coo(&coo, NULL, out, err);
    if (st)
        goto done;
    for (int64_t i = 0; i < n; i++) /* compose with an earlier reordering */
        perm[i] = g->perm ? g->perm[order[i]] : order[i];
    out->perm = perm;
    perm = NULL;
    if (g->node_ids) {
        out->node_ids = sdlk_graph_alloc_array(n, sizeof(int64_t), err);
        if (!out->node_ids) {
            st = err ? err->code : SDLK_ERR_NOMEM;
            sdlk_graph_free(out);
            goto done;
        }
        for (int64_t i = 0; i < n; i++)
            out->node_ids[new_of_old[i]] = g->node_ids[i];
    }
done:
    free(new_of_old);
    free(perm);
    sdlk_coo_free(&coo);
    return st;
}

sdlk_status sdlk_graph_reorder_by_degree(const sdlk_graph *g, sdlk_graph *out, sdlk_error *err)
{
    sdlk_graph_init(out);
    int64_t n = g->nodes;
    int64_t max_degree = sdlk_graph_max_degree(g);
    int64_t *order = sdlk_graph_alloc_array(n, sizeof(int64_t), err); /* new -> old */
    int64_t *bucket = calloc((size_t)max_degree + 2, sizeof(int64_t));
    sdlk_status st;
    if (!order || !bucket) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory reordering %lld nodes",
                            (long long)n);
    } else {
        /* stable counting sort on (max_degree - degree): decreasing degree, ties by id */
        for (int64_t i = 0; i < n; i++)
            bucket[max_degree - (g->row_ptr[i + 1] - g->row_ptr[i]) + 1]++;
        for (int64_t d = 0; d <= max_degree; d++)
            bucket[d + 1] += bucket[d];
        for (int64_t i = 0; i < n; i++)
            order[bucket[max_degree - (g->row_ptr[i + 1] - g->row_ptr[i])]++] = i;
        st = sdlk_graph_permute(g, order, out, err);
    }
    free(order);
    free(bucket);
    return st;
}

/* ---- reverse Cuthill-McKee ------------------------------------------------------- */

/* The undirected structure of A: S = pattern(A + A^T) without the diagonal, rows sorted
 * and free of repeats (adj_ptr [n+1], adj [adj_ptr[n]]). O(nnz + sum d log d). */
typedef struct undirected {
    int64_t *adj_ptr;
    int32_t *adj;
} undirected;

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static sdlk_status undirected_build(const sdlk_graph *g, undirected *u, sdlk_error *err)
{
    int64_t n = g->nodes;
    u->adj_ptr = calloc((size_t)n + 1, sizeof *u->adj_ptr);
    u->adj = sdlk_graph_alloc_array(2 * g->edges, sizeof *u->adj, err);
    int64_t *fill = sdlk_graph_alloc_array(n, sizeof *fill, err);
    if (!u->adj_ptr || !u->adj || !fill) {
        free(fill);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory reordering %lld nodes",
                              (long long)n);
    }
    for (int64_t r = 0; r < n; r++)
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++)
            if (g->col_idx[k] != r) {
                u->adj_ptr[r + 1]++;
                u->adj_ptr[g->col_idx[k] + 1]++;
            }
    for (int64_t r = 0; r < n; r++)
        u->adj_ptr[r + 1] += u->adj_ptr[r];
    memcpy(fill, u->adj_ptr, (size_t)n * sizeof *fill);
    for (int64_t r = 0; r < n; r++)
        for (int64_t k = g->row_ptr[r]; k < g->row_ptr[r + 1]; k++) {
            int32_t c = g->col_idx[k];
            if (c != r) {
                u->adj[fill[r]++] = c;
                u->adj[fill[c]++] = (int32_t)r;
            }
        }
    /* sort each row and squeeze out repeats (an edge stored both ways appears twice) */
    int64_t out = 0;
    for (int64_t r = 0; r < n; r++) {
        int64_t begin = u->adj_ptr[r], end = u->adj_ptr[r + 1];
        qsort(u->adj + begin, (size_t)(end - begin), sizeof *u->adj, cmp_i32);
        u->adj_ptr[r] = out;
        for (int64_t k = begin; k < end; k++)
            if (k == begin || u->adj[k] != u->adj[k - 1])
                u->adj[out++] = u->adj[k];
    }
    u->adj_ptr[n] = out;
    free(fill);
    return SDLK_OK;
}

static void undirected_free(undirected *u)
{
    free(u->adj_ptr);
    free(u->adj);
}

/* Scratch of the searches: level[v] = BFS level in the current search (or -1), the
 * queue, and `placed` (the Cuthill-McKee order so far). */
typedef struct rcm_state {
    const undirected *u;
    int64_t *level;
    int64_t *queue;
    unsigned char *placed;
    int64_t (*by_degree)[2];
} rcm_state;

static int64_t degree_of(const undirected *u, int64_t v)
{
    return u->adj_ptr[v + 1] - u->adj_ptr[v];
}

/* Breadth-first search of the unplaced component of `root`: fills queue[0..count),
 * level[], returns count; *last_level_min = a node of least degree (then least id) in
 * the deepest level, *depth = that level. level[] must be -1 on entry: the caller
 * resets the nodes reached with levels_reset(count) before the next search. */
static int64_t bfs_levels(rcm_state *s, int64_t root, int64_t *depth, int64_t *last_level_min)
{
    int64_t head = 0, tail = 0;
    s->queue[tail++] = root;
    s->level[root] = 0;
    while (head < tail) {
        int64_t v = s->queue[head++];
        for (int64_t k = s->u->adj_ptr[v]; k < s->u->adj_ptr[v + 1]; k++) {
            int64_t w = s->u->adj[k];
            if (s->level[w] < 0 && !s->placed[w]) {
                s->level[w] = s->level[v] + 1;
                s->queue[tail++] = w;
            }
        }
    }
    *depth = s->level[s->queue[tail - 1]];
    *last_level_min = s->queue[tail - 1];
    for (int64_t i = tail - 1; i >= 0 && s->level[s->queue[i]] == *depth; i--) {
        int64_t v = s->queue[i], best = *last_level_min;
        int64_t dv = degree_of(s->u, v), db = degree_of(s->u, best);
        if (dv < db || (dv == db && v < best))
            *last_level_min = v;
    }
    return tail;
}

static void levels_reset(rcm_state *s, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        s->level[s->queue[i]] = -1;
}

/* A pseudo-peripheral node of root's component (George & Liu): move to a least-degree
 * node of the deepest BFS level while that makes the level structure deeper. */
static int64_t peripheral_node(rcm_state *s, int64_t root)
{
    int64_t depth, next;
    int64_t count = bfs_levels(s, root, &depth, &next);
    for (int round = 0; round < 16 && next != root; round++) {
        int64_t next_depth, next_next;
        levels_reset(s, count);
        count = bfs_levels(s, next, &next_depth, &next_next);
        if (next_depth <= depth)
            break;
        root = next;
        depth = next_depth;
        next = next_next;
    }
    levels_reset(s, count);
    return root;
}

static int cmp_degree_id(const void *pa, const void *pb)
{
    const int64_t *a = pa, *b = pb;
    if (a[0] != b[0])
        return a[0] < b[0] ? -1 : 1;
    return (a[1] > b[1]) - (a[1] < b[1]);
}

/* Cuthill-McKee from `start`: breadth first, each node's unplaced neighbours appended
 * in increasing degree (then id). Appends to order[*placed_count ..]. */
static void cuthill_mckee(rcm_state *s, int64_t start, int64_t *order, int64_t *placed_count)
{
    int64_t head = *placed_count, tail = *placed_count;
    order[tail++] = start;
    s->placed[start] = 1;
    while (head < tail) {
        int64_t v = order[head++], found = 0;
        for (int64_t k = s->u->adj_ptr[v]; k < s->u->adj_ptr[v + 1]; k++) {
            int64_t w = s->u->adj[k];
            if (!s->placed[w]) {
                s->placed[w] = 1;
                s->by_degree[found][0] = degree_of(s->u, w);
                s->by_degree[found][1] = w;
                found++;
            }
        }
        qsort(s->by_degree, (size_t)found, sizeof *s->by_degree, cmp_degree_id);
        for (int64_t i = 0; i < found; i++)
            order[tail++] = s->by_degree[i][1];
    }
    *placed_count = tail;
}

sdlk_status sdlk_graph_rcm_order(const sdlk_graph *g, int64_t *order, sdlk_error *err)
{
    int64_t n = g->nodes;
    undirected u = {0};
    sdlk_status st = undirected_build(g, &u, err);
    rcm_state s = {.u = &u};
    if (st == SDLK_OK) {
        int64_t widest = 0;
        for (int64_t v = 0; v < n; v++)
            widest = degree_of(&u, v) > widest ? degree_of(&u, v) : widest;
        s.level = sdlk_graph_alloc_array(n, sizeof *s.level, err);
        s.queue = sdlk_graph_alloc_array(n, sizeof *s.queue, err);
        s.placed = calloc((size_t)n + 1, 1);
        s.by_degree = malloc(((size_t)widest + 1) * sizeof *s.by_degree);
        if (!s.level || !s.queue || !s.placed || !s.by_degree)
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory reordering %lld nodes",
                                (long long)n);
    }
    if (st == SDLK_OK) {
        for (int64_t v = 0; v < n; v++)
            s.level[v] = -1;
        /* components in the order of their least-degree node (then least id): each is
         * started from a pseudo-peripheral node found from there */
        int64_t (*roots)[2] = malloc(((size_t)n + 1) * sizeof *roots);
        if (!roots) {
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory reordering %lld nodes",
                                (long long)n);
        } else {
            for (int64_t v = 0; v < n; v++) {
                roots[v][0] = degree_of(&u, v);
                roots[v][1] = v;
            }
            qsort(roots, (size_t)n, sizeof *roots, cmp_degree_id);
            int64_t placed = 0;
            for (int64_t i = 0; i < n; i++)
                if (!s.placed[roots[i][1]])
                    cuthill_mckee(&s, peripheral_node(&s, roots[i][1]), order, &placed);
            free(roots);
            for (int64_t i = 0; i < n / 2; i++) { /* reversed: RCM */
                int64_t t = order[i];
                order[i] = order[n - 1 - i];
                order[n - 1 - i] = t;
            }
        }
    }
    free(s.level);
    free(s.queue);
    free(s.placed);
    free(s.by_degree);
    undirected_free(&u);
    return st;
}

sdlk_status sdlk_graph_reorder_rcm(const sdlk_graph *g, sdlk_graph *out, sdlk_error *err)
{
    sdlk_graph_init(out);
    int64_t *order = sdlk_graph_alloc_array(g->nodes, sizeof *order, err);
    if (!order)
        return err ? err->code : SDLK_ERR_NOMEM;
    sdlk_status st = sdlk_graph_rcm_order(g, order, err);
    if (st == SDLK_OK)
        st = sdlk_graph_permute(g, order, out, err);
    free(order);
    return st;
}
