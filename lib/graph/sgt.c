/* sgt.c -- Sparse Graph Translation: two parallel passes over row windows.
 *
 * Pass 1 (per window): insert the window's columns into a hierarchical bitset (distinct
 * test for free), walk it top-down to emit the distinct columns in ascending order, give
 * each nonzero its condensed column by rank (popcount inside its 64-bit word plus the
 * rank of the word), and count naive W-wide column blocks.
 * Then prefix sums over windows place every window's columns and tiles.
 * Pass 2 (per window): counting sort of the window's nonzeros by condensed column,
 * which writes the per-column / per-tile nonzero lists in one sweep.
 */
#include "graph/sgt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "graph/graph_internal.h"

#define MAX_LEVELS 8

/* A set of column ids in 0..N-1 as bits, with summary levels: bit b of level l+1 word i
 * is set when word i*64+b of level l is non-zero. Emptied again after each window. */
typedef struct bitset {
    int levels;
    uint64_t *level[MAX_LEVELS];
    int64_t words[MAX_LEVELS];
    int32_t *word_rank; /* [words[0]]: distinct columns before this level-0 word */
} bitset;

typedef struct sgt_scratch {
    bitset set;
    int64_t *column_fill; /* pass 2: next slot of each condensed column, [max U + 1] */
} sgt_scratch;

static void bitset_free(bitset *s)
{
    for (int l = 0; l < s->levels; l++)
        free(s->level[l]);
    free(s->word_rank);
    memset(s, 0, sizeof(*s));
}

static int bitset_init(bitset *s, int64_t n)
{
    memset(s, 0, sizeof(*s));
    int64_t bits = n > 0 ? n : 1;
    do {
        int64_t words = (bits + 63) / 64;
        s->words[s->levels] = words;
        s->level[s->levels] = calloc((size_t)words, sizeof(uint64_t));
        if (!s->level[s->levels++]) {
            bitset_free(s);
            return 0;
        }
        bits = words;
    } while (bits > 1 && s->levels < MAX_LEVELS);
    s->word_rank = malloc((size_t)s->words[0] * sizeof(int32_t));
    if (!s->word_rank) {
        bitset_free(s);
        return 0;
    }
    return 1;
}

/* Insert `value`. Every level's bit is set unconditionally: the summary words are few
 * and stay in L1, and testing first ("already present?", "word was empty?") costs a
 * mispredicted branch on most graphs, where repeats are common but irregular. */
static inline void bitset_insert(bitset *s, int64_t value)
{
    for (int l = 0; l < s->levels; l++) {
        s->level[l][value >> 6] |= UINT64_C(1) << (value & 63);
        value >>= 6;
    }
}

/* Emit the members below summary word `index` of `level` in ascending order, record the
 * rank of each level-0 word, and clear the summary levels (level 0 stays for ranking). */
static void bitset_emit(bitset *s, int level, int64_t index, int32_t *out, int32_t *count)
{
    uint64_t bits = s->level[level][index];
    if (level == 0) {
        s->word_rank[index] = *count;
        while (bits) {
            out[(*count)++] = (int32_t)(index * 64 + __builtin_ctzll(bits));
            bits &= bits - 1;
        }
        return;
    }
    s->level[level][index] = 0;
    while (bits) {
        bitset_emit(s, level - 1, index * 64 + __builtin_ctzll(bits), out, count);
        bits &= bits - 1;
    }
}

static inline __attribute__((always_inline)) int32_t bitset_rank(const bitset *s, int64_t value)
{
    uint64_t word = s->level[0][value >> 6];
    uint64_t below = word & ((UINT64_C(1) << (value & 63)) - 1);
    return s->word_rank[value >> 6] + __builtin_popcountll(below);
}

/* Ask for transparent huge pages on a fresh, not yet touched output array. The output
 * is ~30 bytes per edge, all written once: with 4 KiB pages the page faults (and their
 * cgroup accounting) cost about a third of the whole translation, and on two threads
 * they contend in the kernel. Advice only: failure, or a small array, changes nothing. */
static void advise_huge_pages(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (!p || bytes < 2 * huge)
        return;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t begin = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)p + bytes) & ~((uintptr_t)page - 1);
    if (page > 0 && end > begin)
        madvise((void *)begin, end - begin, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

typedef struct sgt_job {
    const sdlk_graph *g;
    sdlk_sgt *out;
    int64_t *window_distinct; /* [window_count] */
    int64_t *window_naive;    /* [window_count] */
    sgt_scratch *scratch;     /* [pool size] */
} sgt_job;

/* log2 of a power-of-two tile width, else -1: the per-column and per-nonzero divisions
 * by the width (an integer divide each) become shifts and masks for the usual widths. */
static inline int tile_width_shift(int width)
{
    return (width & (width - 1)) == 0 ? __builtin_ctz((unsigned)width) : -1;
}

static void window_rows(const sdlk_sgt *s, int64_t w, int64_t *first, int64_t *last)
{
    *first = w * s->window_height;
    *last = *first + s->window_height;
    if (*last > s->nodes)
        *last = s->nodes; /* the last window may be short */
}

/* The body of pass 1, instantiated twice below: the rank needs popcount, which the
 * x86-64 baseline lacks (it would be a libgcc call per nonzero), so a copy compiled with
 * the popcnt instruction is chosen at run time. */
static inline __attribute__((always_inline)) void pass1_windows(sgt_job *job, int64_t begin,
                                                                int64_t end, int worker)
{
    const sdlk_graph *g = job->g;
    sdlk_sgt *s = job->out;
    bitset *set = &job->scratch[worker].set;
    int shift = tile_width_shift(s->tile_width);
    for (int64_t w = begin; w < end; w++) {
        int64_t first_row, last_row;
        window_rows(s, w, &first_row, &last_row);
        int64_t nz_begin = g->row_ptr[first_row], nz_end = g->row_ptr[last_row];
        for (int64_t k = nz_begin; k < nz_end; k++)
            bitset_insert(set, g->col_idx[k]);
        /* The distinct columns wait for pass 2 in the window's own slots of tile_nz_edge
         * (distinct <= nonzeros; pass 2 reads them before it overwrites those slots), which
         * saves an edges-sized scratch array -- fresh pages are a large part of the cost. */
        int32_t *cols = (int32_t *)(s->tile_nz_edge + nz_begin);
        int32_t distinct = 0;
        if (nz_end > nz_begin)
            bitset_emit(set, set->levels - 1, 0, cols, &distinct);
        for (int64_t k = nz_begin; k < nz_end; k++)
            s->edge_condensed_col[k] = bitset_rank(set, g->col_idx[k]);
        int64_t naive = 0, last_block = -1;
        for (int32_t u = 0; u < distinct; u++) {
            int64_t block = shift >= 0 ? cols[u] >> shift : cols[u] / s->tile_width;
            naive += block != last_block;
            last_block = block;
            set->level[0][cols[u] >> 6] = 0;
        }
        job->window_distinct[w] = distinct;
        job->window_naive[w] = naive;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("popcnt"))) static void pass1_range_popcnt(void *ctx, int64_t begin,
                                                                   int64_t end, int worker)
{
    pass1_windows(ctx, begin, end, worker);
}
#endif

static void pass1_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    pass1_windows(ctx, begin, end, worker);
}

static sdlk_range_fn pass1_function(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("popcnt"))
        return pass1_range_popcnt;
#endif
    return pass1_range;
}

static void pass2_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    sgt_job *job = ctx;
    const sdlk_graph *g = job->g;
    sdlk_sgt *s = job->out;
    int64_t *fill = job->scratch[worker].column_fill;
    int width = s->tile_width;
    int shift = tile_width_shift(width);
    const float *values = g->values;
    for (int64_t w = begin; w < end; w++) {
        int64_t first_row, last_row;
        window_rows(s, w, &first_row, &last_row);
        int64_t nz_begin = g->row_ptr[first_row], nz_end = g->row_ptr[last_row];
        int64_t col_base = s->window_col_ptr[w];
        int64_t distinct = s->window_col_ptr[w + 1] - col_base;
        memcpy(s->window_cols + col_base, (const int32_t *)(s->tile_nz_edge + nz_begin),
               (size_t)distinct * sizeof(int32_t));
        /* counting sort by condensed column; rows visited in order keep rows sorted */
        memset(fill, 0, (size_t)(distinct + 1) * sizeof(int64_t));
        for (int64_t k = nz_begin; k < nz_end; k++)
            fill[s->edge_condensed_col[k] + 1]++;
        fill[0] = nz_begin;
        for (int64_t u = 0; u < distinct; u++)
            fill[u + 1] += fill[u];
        memcpy(s->column_nz_ptr + col_base, fill, (size_t)distinct * sizeof(int64_t));
        for (int64_t t = 0, tile = s->window_tile_ptr[w]; tile < s->window_tile_ptr[w + 1];
             t++, tile++)
            s->tile_nz_ptr[tile] = fill[t * width];
        /* Local copies of the output pointers: the u8 stores may alias anything, so
         * through `s` every pointer would be reloaded after each store. */
        const int32_t *condensed = s->edge_condensed_col;
        uint8_t *nz_row = s->tile_nz_row, *nz_col = s->tile_nz_col;
        float *nz_value = s->tile_nz_value;
        int64_t *nz_edge = s->tile_nz_edge;
        for (int64_t r = first_row; r < last_row; r++) {
            int64_t k_end = g->row_ptr[r + 1];
            for (int64_t k = g->row_ptr[r]; k < k_end; k++) {
                int32_t u = condensed[k];
                int64_t pos = fill[u]++;
                nz_row[pos] = (uint8_t)(r - first_row);
                nz_col[pos] = (uint8_t)(shift >= 0 ? u & (width - 1) : u % width);
                nz_value[pos] = values ? values[k] : 1.0f;
                nz_edge[pos] = k;
            }
        }
    }
}

void sdlk_sgt_init(sdlk_sgt *sgt)
{
    memset(sgt, 0, sizeof(*sgt));
}

void sdlk_sgt_free(sdlk_sgt *sgt)
{
    free(sgt->window_col_ptr);
    free(sgt->window_tile_ptr);
    free(sgt->tile_nz_ptr);
    free(sgt->column_nz_ptr);
    free(sgt->window_cols);
    free(sgt->tile_nz_row);
    free(sgt->tile_nz_col);
    free(sgt->tile_nz_value);
    free(sgt->tile_nz_edge);
    free(sgt->edge_condensed_col);
    sdlk_sgt_init(sgt);
}

static void free_scratch(sgt_scratch *scratch, int count)
{
    if (!scratch)
        return;
    for (int i = 0; i < count; i++) {
        bitset_free(&scratch[i].set);
        free(scratch[i].column_fill);
    }
    free(scratch);
}

sdlk_status sdlk_sgt_build(const sdlk_graph *g, int window_height, int tile_width,
                           sdlk_pool *pool, sdlk_sgt *out, sdlk_error *err)
{
    sdlk_sgt_init(out);
    if (window_height == 0)
        window_height = SDLK_SGT_DEFAULT_WINDOW_HEIGHT;
    if (tile_width == 0)
        tile_width = SDLK_SGT_DEFAULT_TILE_WIDTH;
    if (window_height < 1 || window_height > 256 || tile_width < 1 || tile_width > 256)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "window height %d and tile width %d must be 1..256", window_height,
                              tile_width);
    sdlk_sgt *s = out;
    s->nodes = g->nodes;
    s->edges = g->edges;
    s->window_height = window_height;
    s->tile_width = tile_width;
    s->window_count = (g->nodes + window_height - 1) / window_height;
    int threads = sdlk_pool_size(pool);
    sgt_job job = {g, s, NULL, NULL, NULL};
    job.window_distinct = sdlk_graph_alloc_array(s->window_count, sizeof(int64_t), err);
    job.window_naive = sdlk_graph_alloc_array(s->window_count, sizeof(int64_t), err);
    job.scratch = calloc((size_t)threads, sizeof(sgt_scratch));
    s->window_col_ptr = sdlk_graph_alloc_array(s->window_count + 1, sizeof(int64_t), err);
    s->window_tile_ptr = sdlk_graph_alloc_array(s->window_count + 1, sizeof(int64_t), err);
    s->edge_condensed_col = sdlk_graph_alloc_array(g->edges, sizeof(int32_t), err);
    s->tile_nz_row = sdlk_graph_alloc_array(g->edges, 1, err);
    s->tile_nz_col = sdlk_graph_alloc_array(g->edges, 1, err);
    s->tile_nz_value = sdlk_graph_alloc_array(g->edges, sizeof(float), err);
    s->tile_nz_edge = sdlk_graph_alloc_array(g->edges, sizeof(int64_t), err);
    sdlk_status st = SDLK_OK;
    if (!job.window_distinct || !job.window_naive || !job.scratch ||
        !s->window_col_ptr || !s->window_tile_ptr || !s->edge_condensed_col || !s->tile_nz_row ||
        !s->tile_nz_col || !s->tile_nz_value || !s->tile_nz_edge)
        goto nomem;
    advise_huge_pages(s->edge_condensed_col, (size_t)g->edges * sizeof(int32_t));
    advise_huge_pages(s->tile_nz_row, (size_t)g->edges);
    advise_huge_pages(s->tile_nz_col, (size_t)g->edges);
    advise_huge_pages(s->tile_nz_value, (size_t)g->edges * sizeof(float));
    advise_huge_pages(s->tile_nz_edge, (size_t)g->edges * sizeof(int64_t));
    for (int i = 0; i < threads; i++)
        if (!bitset_init(&job.scratch[i].set, g->nodes))
            goto nomem;

    sdlk_pool_for(pool, s->window_count, 64, pass1_function(), &job);

    int64_t max_distinct = 0;
    s->window_col_ptr[0] = s->window_tile_ptr[0] = 0;
    for (int64_t w = 0; w < s->window_count; w++) {
        int64_t u = job.window_distinct[w];
        if (u > max_distinct)
            max_distinct = u;
        s->window_col_ptr[w + 1] = s->window_col_ptr[w] + u;
        s->window_tile_ptr[w + 1] = s->window_tile_ptr[w] + (u + tile_width - 1) / tile_width;
        s->naive_tile_count += job.window_naive[w];
    }
    s->distinct = s->window_col_ptr[s->window_count];
    s->tile_count = s->window_tile_ptr[s->window_count];
    s->window_cols = sdlk_graph_alloc_array(s->distinct, sizeof(int32_t), err);
    s->column_nz_ptr = sdlk_graph_alloc_array(s->distinct + 1, sizeof(int64_t), err);
    s->tile_nz_ptr = sdlk_graph_alloc_array(s->tile_count + 1, sizeof(int64_t), err);
    if (!s->window_cols || !s->column_nz_ptr || !s->tile_nz_ptr)
        goto nomem;
    advise_huge_pages(s->window_cols, (size_t)s->distinct * sizeof(int32_t));
    advise_huge_pages(s->column_nz_ptr, (size_t)(s->distinct + 1) * sizeof(int64_t));
    for (int i = 0; i < threads; i++)
        if (!(job.scratch[i].column_fill = malloc((size_t)(max_distinct + 1) * sizeof(int64_t))))
            goto nomem;

    sdlk_pool_for(pool, s->window_count, 64, pass2_range, &job);

    s->column_nz_ptr[s->distinct] = g->edges;
    s->tile_nz_ptr[s->tile_count] = g->edges;
    goto done;
nomem:
    st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory translating a graph of %lld edges",
                        (long long)g->edges);
    sdlk_sgt_free(s);
done:
    free(job.window_distinct);
    free(job.window_naive);
    free_scratch(job.scratch, threads);
    return st;
}

const int32_t *sdlk_sgt_tile_columns(const sdlk_sgt *sgt, int64_t window, int64_t local_tile,
                                     int *count)
{
    int64_t base = sgt->window_col_ptr[window] + local_tile * sgt->tile_width;
    int64_t left = sgt->window_col_ptr[window + 1] - base;
    *count = (int)(left < sgt->tile_width ? left : sgt->tile_width);
    return sgt->window_cols + base;
}

void sdlk_sgt_stats_compute(const sdlk_sgt *sgt, sdlk_sgt_stats *out)
{
    double tile_area = (double)sgt->window_height * sgt->tile_width;
    out->nodes = sgt->nodes;
    out->edges = sgt->edges;
    out->dense_gb = (double)sgt->nodes * (double)sgt->nodes * 4.0 / 1e9;
    out->naive_tiles = sgt->naive_tile_count;
    out->sgt_tiles = sgt->tile_count;
    out->naive_useful = sgt->naive_tile_count ? sgt->edges / (sgt->naive_tile_count * tile_area) : 0;
    out->sgt_useful = sgt->tile_count ? sgt->edges / (sgt->tile_count * tile_area) : 0;
    out->tile_reduction =
        sgt->naive_tile_count ? 1.0 - (double)sgt->tile_count / sgt->naive_tile_count : 0;
    out->column_reuse = sgt->distinct ? (double)sgt->edges / sgt->distinct : 0;
}

/* ---- validation --------------------------------------------------------------------- */

#define BAD(...) sdlk_error_set(err, SDLK_ERR_FORMAT, __VA_ARGS__)

static sdlk_status check_pointer_array(const int64_t *ptr, int64_t count, int64_t total,
                                       const char *what, const char *name, sdlk_error *err)
{
    if (ptr[0] != 0 || ptr[count] != total)
        return BAD("%s: %s runs from %lld to %lld, expected 0 to %lld", name, what,
                   (long long)ptr[0], (long long)ptr[count], (long long)total);
    for (int64_t i = 0; i < count; i++)
        if (ptr[i + 1] < ptr[i])
            return BAD("%s: %s decreases at %lld", name, what, (long long)i + 1);
    return SDLK_OK;
}

/* Window-level consistency: sizes, column lists, tile counts, pointer alignment. */
static sdlk_status validate_windows(const sdlk_sgt *s, const sdlk_graph *g, const char *name,
                                    sdlk_error *err)
{
    sdlk_status st;
    if ((st = check_pointer_array(s->window_col_ptr, s->window_count, s->distinct,
                                  "window_col_ptr", name, err)) ||
        (st = check_pointer_array(s->window_tile_ptr, s->window_count, s->tile_count,
                                  "window_tile_ptr", name, err)) ||
        (st = check_pointer_array(s->tile_nz_ptr, s->tile_count, s->edges, "tile_nz_ptr", name,
                                  err)) ||
        (st = check_pointer_array(s->column_nz_ptr, s->distinct, s->edges, "column_nz_ptr", name,
                                  err)))
        return st;
    for (int64_t w = 0; w < s->window_count; w++) {
        int64_t first_row, last_row;
        window_rows(s, w, &first_row, &last_row);
        int64_t base = s->window_col_ptr[w], distinct = s->window_col_ptr[w + 1] - base;
        int64_t tiles = s->window_tile_ptr[w + 1] - s->window_tile_ptr[w];
        if (tiles != (distinct + s->tile_width - 1) / s->tile_width)
            return BAD("%s: window %lld has %lld columns but %lld tiles", name, (long long)w,
                       (long long)distinct, (long long)tiles);
        if (distinct && s->column_nz_ptr[base] != g->row_ptr[first_row])
            return BAD("%s: window %lld nonzeros do not start at its rows' CSR offset", name,
                       (long long)w);
        for (int64_t u = 0; u < distinct; u++) {
            int32_t c = s->window_cols[base + u];
            if (c < 0 || c >= s->nodes || (u > 0 && c <= s->window_cols[base + u - 1]))
                return BAD("%s: window %lld columns not sorted, distinct and in 0..%lld", name,
                           (long long)w, (long long)s->nodes - 1);
        }
        for (int64_t t = 0; t < tiles; t++)
            if (s->tile_nz_ptr[s->window_tile_ptr[w] + t] !=
                s->column_nz_ptr[base + t * s->tile_width])
                return BAD("%s: tile %lld of window %lld does not start at its first column", name,
                           (long long)t, (long long)w);
    }
    return SDLK_OK;
}

sdlk_status sdlk_sgt_validate(const sdlk_sgt *s, const sdlk_graph *g, const char *name,
                              sdlk_error *err)
{
    if (s->nodes != g->nodes || s->edges != g->edges)
        return BAD("%s: condenses %lld nodes / %lld edges, the graph has %lld / %lld", name,
                   (long long)s->nodes, (long long)s->edges, (long long)g->nodes,
                   (long long)g->edges);
    if (s->window_height < 1 || s->window_height > 256 || s->tile_width < 1 ||
        s->tile_width > 256 ||
        s->window_count != (s->nodes + s->window_height - 1) / s->window_height)
        return BAD("%s: window height %d / tile width %d / %lld windows do not fit %lld nodes",
                   name, s->window_height, s->tile_width, (long long)s->window_count,
                   (long long)s->nodes);
    sdlk_status st = validate_windows(s, g, name, err);
    if (st)
        return st;
    uint8_t *seen = calloc((size_t)(s->edges ? s->edges : 1), 1);
    if (!seen)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory validating %s", name);
    for (int64_t w = 0; w < s->window_count && !st; w++) {
        int64_t first_row, last_row;
        window_rows(s, w, &first_row, &last_row);
        int64_t base = s->window_col_ptr[w];
        int64_t distinct = s->window_col_ptr[w + 1] - base;
        for (int64_t u = 0; u < distinct && !st; u++) {
            for (int64_t p = s->column_nz_ptr[base + u]; p < s->column_nz_ptr[base + u + 1]; p++) {
                int64_t k = s->tile_nz_edge[p];
                int64_t row = first_row + s->tile_nz_row[p];
                float value = g->values ? g->values[k] : 1.0f;
                if (k < g->row_ptr[first_row] || k >= g->row_ptr[last_row] || seen[k] ||
                    row >= last_row || k < g->row_ptr[row] || k >= g->row_ptr[row + 1] ||
                    s->tile_nz_col[p] != u % s->tile_width ||
                    g->col_idx[k] != s->window_cols[base + u] ||
                    s->edge_condensed_col[k] != u || s->tile_nz_value[p] != value) {
                    st = BAD("%s: nonzero %lld of window %lld (edge %lld) is misplaced", name,
                             (long long)p, (long long)w, (long long)k);
                    break;
                }
                seen[k] = 1;
            }
        }
    }
    free(seen);
    return st;
}
