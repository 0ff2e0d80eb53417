/* tile.c -- tile grids, tile extraction, blending merger and tile records (see tile.h). */
#include "tile/tile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const axis_name[3] = {"t", "h", "w"};

/* ---- grids ------------------------------------------------------------------------ */

/* Canvas sizes >= 1, and T*H*W f32 weights must be allocatable. */
static sdlk_status check_canvas(const int64_t canvas[3], sdlk_error *err)
{
    for (int a = 0; a < 3; a++)
        if (canvas[a] < 1)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "tile grid: canvas size along %s must be at least 1, got %lld",
                                  axis_name[a], (long long)canvas[a]);
    uint64_t positions;
    sdlk_status st = sdlk_shape_numel(3, canvas, SDLK_F32, &positions, err);
    if (st)
        sdlk_error_prefix(err, "tile grid: canvas %lldx%lldx%lld", (long long)canvas[0],
                          (long long)canvas[1], (long long)canvas[2]);
    return st;
}

static sdlk_status check_tile_size(const int64_t tile[3], sdlk_error *err)
{
    for (int a = 0; a < 3; a++)
        if (tile[a] < 1)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "tile grid: tile size along %s must be at least 1, got %lld",
                                  axis_name[a], (long long)tile[a]);
    return SDLK_OK;
}

sdlk_status sdlk_tile_grid_overlap(sdlk_tile_grid *grid, const int64_t canvas[3],
                                   const int64_t tile[3], const int64_t overlap[3],
                                   sdlk_error *err)
{
    memset(grid, 0, sizeof *grid);
    grid->mode = SDLK_TILE_OVERLAP;
    sdlk_status st = check_canvas(canvas, err);
    if (!st)
        st = check_tile_size(tile, err);
    if (st)
        return st;
    for (int a = 0; a < 3; a++) {
        if (overlap[a] < 0 || overlap[a] >= tile[a])
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "tile grid: overlap along %s must be from 0 to %lld (tile "
                                  "size - 1), got %lld",
                                  axis_name[a], (long long)(tile[a] - 1), (long long)overlap[a]);
        grid->canvas[a] = canvas[a];
        if (canvas[a] <= tile[a]) {
            grid->tile[a] = canvas[a];
            grid->overlap[a] = 0;
            grid->count[a] = 1;
        } else {
            int64_t step = tile[a] - overlap[a];
            grid->tile[a] = tile[a];
            grid->overlap[a] = overlap[a];
            grid->count[a] = (canvas[a] - tile[a] + step - 1) / step + 1;
        }
    }
    return SDLK_OK;
}

sdlk_status sdlk_tile_grid_torus(sdlk_tile_grid *grid, const int64_t canvas[3],
                                 const int64_t tile[3], const int64_t shift[3], sdlk_error *err)
{
    memset(grid, 0, sizeof *grid);
    grid->mode = SDLK_TILE_TORUS;
    sdlk_status st = check_canvas(canvas, err);
    if (!st)
        st = check_tile_size(tile, err);
    if (st)
        return st;
    for (int a = 0; a < 3; a++) {
        if (canvas[a] % tile[a] != 0)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "tile grid: torus canvas size along %s (%lld) is not a "
                                  "multiple of the tile size %lld",
                                  axis_name[a], (long long)canvas[a], (long long)tile[a]);
        grid->canvas[a] = canvas[a];
        grid->tile[a] = tile[a];
        grid->shift[a] = (shift[a] % canvas[a] + canvas[a]) % canvas[a];
        grid->count[a] = canvas[a] / tile[a];
    }
    return SDLK_OK;
}

int64_t sdlk_tile_grid_count(const sdlk_tile_grid *grid)
{
    return grid->count[0] * grid->count[1] * grid->count[2];
}

int sdlk_tile_grid_equal(const sdlk_tile_grid *a, const sdlk_tile_grid *b)
{
    if (a->mode != b->mode)
        return 0;
    for (int i = 0; i < 3; i++)
        if (a->canvas[i] != b->canvas[i] || a->tile[i] != b->tile[i] ||
            a->overlap[i] != b->overlap[i] || a->shift[i] != b->shift[i])
            return 0;
    return 1;
}

const char *sdlk_tile_mode_name(sdlk_tile_mode mode)
{
    return mode == SDLK_TILE_TORUS ? "torus" : "overlap";
}

/* Canvas position of tile coordinate k's first element along axis a. */
static int64_t axis_origin(const sdlk_tile_grid *grid, int a, int64_t k)
{
    if (grid->mode == SDLK_TILE_TORUS)
        return (grid->shift[a] + k * grid->tile[a]) % grid->canvas[a];
    int64_t origin = k * (grid->tile[a] - grid->overlap[a]);
    return origin + grid->tile[a] > grid->canvas[a] ? grid->canvas[a] - grid->tile[a] : origin;
}

void sdlk_tile_grid_rect(const sdlk_tile_grid *grid, int64_t index, sdlk_tile_rect *rect)
{
    rect->index = index;
    int64_t rest = index;
    for (int a = 2; a >= 0; a--) {
        rect->coord[a] = rest % grid->count[a];
        rest /= grid->count[a];
    }
    for (int a = 0; a < 3; a++) {
        rect->origin[a] = axis_origin(grid, a, rect->coord[a]);
        rect->size[a] = grid->tile[a];
    }
}

void sdlk_tile_torus_shift(const int64_t tile[3], const int64_t stride[3], int64_t step,
                           int64_t shift[3])
{
    for (int a = 0; a < 3; a++) {
        if (tile[a] < 1) {
            shift[a] = 0;
            continue;
        }
        /* Reduce both factors first, then multiply in 128 bits: no overflow for any
         * int64 inputs. */
        __extension__ __int128 step_mod = (step % tile[a] + tile[a]) % tile[a];
        __extension__ __int128 stride_mod = (stride[a] % tile[a] + tile[a]) % tile[a];
        shift[a] = (int64_t)(step_mod * stride_mod % tile[a]);
    }
}

/* ---- walking a tile's rows -------------------------------------------------------- */

/* A tile seen as rows of (t, h) with the w axis cut into at most two runs (the second
 * one when a torus tile wraps around the right edge). Extraction and merging both
 * walk tiles this way. */
typedef struct tile_run {
    int64_t tile_w, canvas_w, length;
} tile_run;

typedef struct tile_walk {
    sdlk_tile_rect rect;
    int64_t canvas[3];
    tile_run runs[2];
    int run_count;
} tile_walk;

static void tile_walk_init(tile_walk *walk, const sdlk_tile_grid *grid, int64_t index)
{
    sdlk_tile_grid_rect(grid, index, &walk->rect);
    memcpy(walk->canvas, grid->canvas, sizeof walk->canvas);
    int64_t width = walk->rect.size[2], origin = walk->rect.origin[2];
    int64_t first = grid->canvas[2] - origin < width ? grid->canvas[2] - origin : width;
    walk->runs[0] = (tile_run){0, origin, first};
    walk->runs[1] = (tile_run){first, 0, width - first};
    walk->run_count = first < width ? 2 : 1;
}

static int64_t tile_walk_rows(const tile_walk *walk) { return walk->rect.size[0] * walk->rect.size[1]; }

/* Tile coordinates (tile_t, tile_h) and canvas coordinates (canvas_t, canvas_h) of row
 * `row` of the tile. */
static void tile_walk_row(const tile_walk *walk, int64_t row, int64_t tile_th[2],
                          int64_t canvas_th[2])
{
    tile_th[0] = row / walk->rect.size[1];
    tile_th[1] = row % walk->rect.size[1];
    for (int a = 0; a < 2; a++)
        canvas_th[a] = (walk->rect.origin[a] + tile_th[a]) % walk->canvas[a];
}

/* Byte strides of a [H,W,C] or [T,H,W,C] tensor as (t, h, w, c); t's is 0 for rank 3. */
static void strides_thwc(const sdlk_tensor *t, int64_t strides[4])
{
    int first = t->ndim == 3 ? 1 : 0;
    strides[0] = 0;
    for (int d = 0; d < t->ndim; d++)
        strides[first + d] = t->strides[d];
}

/* ---- extraction ------------------------------------------------------------------- */

/* Check that tensor `t` has shape [T?, H, W, C] for (T, H, W) = dims and rank 3 or 4. */
static int shape_matches(const sdlk_tensor *t, int rank, const int64_t dims[3], int64_t channels)
{
    if (t->ndim != rank || (rank == 3 && dims[0] != 1))
        return 0;
    int first = rank == 3 ? 1 : 0;
    for (int a = first; a < 3; a++)
        if (t->shape[a - first] != dims[a])
            return 0;
    return t->shape[rank - 1] == channels;
}

static void format_expected_shape(int rank, const int64_t dims[3], int64_t channels, char *buf,
                                  size_t size)
{
    int64_t shape[4] = {dims[0], dims[1], dims[2], channels};
    sdlk_shape_format(rank, rank == 3 ? shape + 1 : shape, buf, size);
}

sdlk_status sdlk_tile_extract(const sdlk_tensor *canvas, const sdlk_tile_grid *grid,
                              int64_t index, sdlk_tensor *tile, sdlk_error *err)
{
    int rank = canvas->ndim;
    int64_t channels = rank >= 3 ? canvas->shape[rank - 1] : 0;
    if ((rank != 3 && rank != 4) || !shape_matches(canvas, rank, grid->canvas, channels)) {
        char have[96], want[96];
        sdlk_shape_format(canvas->ndim, canvas->shape, have, sizeof have);
        format_expected_shape(rank == 3 ? 3 : 4, grid->canvas, channels, want, sizeof want);
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "tile extract: canvas of shape %s does not match the grid's %s "
                              "(shape [H,W,C] or [T,H,W,C])",
                              have, want);
    }
    if (index < 0 || index >= sdlk_tile_grid_count(grid))
        return sdlk_error_set(err, SDLK_ERR_ARG, "tile extract: tile %lld outside 0..%lld",
                              (long long)index, (long long)(sdlk_tile_grid_count(grid) - 1));
    tile_walk walk;
    tile_walk_init(&walk, grid, index);
    int64_t shape[4] = {walk.rect.size[0], walk.rect.size[1], walk.rect.size[2], channels};
    sdlk_status st = sdlk_tensor_alloc(tile, canvas->dtype, rank, rank == 3 ? shape + 1 : shape,
                                       err);
    if (st)
        return st;
    size_t elem = sdlk_dtype_size(canvas->dtype);
    int64_t src_strides[4];
    strides_thwc(canvas, src_strides);
    int pixels_contiguous = src_strides[3] == (int64_t)elem &&
                            src_strides[2] == channels * (int64_t)elem;
    size_t pixel_bytes = (size_t)channels * elem;
    uint8_t *dst = tile->data;
    for (int64_t row = 0; row < tile_walk_rows(&walk); row++) {
        int64_t tile_th[2], canvas_th[2];
        tile_walk_row(&walk, row, tile_th, canvas_th);
        const uint8_t *src_row = canvas->data + canvas_th[0] * src_strides[0] +
                                 canvas_th[1] * src_strides[1];
        for (int r = 0; r < walk.run_count; r++) {
            const tile_run *run = &walk.runs[r];
            const uint8_t *src = src_row + run->canvas_w * src_strides[2];
            if (pixels_contiguous) {
                memcpy(dst, src, (size_t)run->length * pixel_bytes);
                dst += (size_t)run->length * pixel_bytes;
                continue;
            }
            for (int64_t i = 0; i < run->length; i++, src += src_strides[2])
                for (int64_t c = 0; c < channels; c++, dst += elem)
                    memcpy(dst, src + c * src_strides[3], elem);
        }
    }
    return SDLK_OK;
}

/* ---- merging ---------------------------------------------------------------------- */

/* Blend weight of each of the tile[a] positions of tile coordinate k along axis a.
 * FEATHER in OVERLAP mode ramps linearly across the positions shared with the previous
 * and the next tile: (i + 1) / (shared + 1), never 0, and a pair of ramps over the same
 * positions sums to 1. Everything else weighs 1. */
static void axis_weights(const sdlk_tile_grid *grid, sdlk_blend blend, int a, int64_t k,
                         float *weight)
{
    int64_t size = grid->tile[a];
    for (int64_t i = 0; i < size; i++)
        weight[i] = 1.0f;
    if (blend != SDLK_BLEND_FEATHER || grid->mode != SDLK_TILE_OVERLAP)
        return;
    int64_t origin = axis_origin(grid, a, k);
    int64_t shared_before = k > 0 ? axis_origin(grid, a, k - 1) + size - origin : 0;
    int64_t shared_after = k + 1 < grid->count[a] ? origin + size - axis_origin(grid, a, k + 1) : 0;
    for (int64_t i = 0; i < shared_before; i++) {
        float ramp = (float)(i + 1) / (float)(shared_before + 1);
        if (ramp < weight[i])
            weight[i] = ramp;
    }
    for (int64_t i = 0; i < shared_after; i++) {
        float ramp = (float)(i + 1) / (float)(shared_after + 1);
        if (ramp < weight[size - 1 - i])
            weight[size - 1 - i] = ramp;
    }
}

sdlk_status sdlk_tile_merger_init(sdlk_tile_merger *m, const sdlk_tile_grid *grid,
                                  int64_t channels, int rank, sdlk_blend blend, sdlk_pool *pool,
                                  sdlk_error *err)
{
    memset(m, 0, sizeof *m);
    if (channels < 1 || (rank != 3 && rank != 4) || (rank == 3 && grid->canvas[0] != 1))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "tile merger: %lld channels at rank %d for a canvas of %lld frames "
                              "(need C >= 1, rank 3 with 1 frame or rank 4)",
                              (long long)channels, rank, (long long)grid->canvas[0]);
    if (blend != SDLK_BLEND_FEATHER && blend != SDLK_BLEND_AVERAGE)
        return sdlk_error_set(err, SDLK_ERR_ARG, "tile merger: unknown blend %d", (int)blend);
    int64_t shape[4] = {grid->canvas[0], grid->canvas[1], grid->canvas[2], channels};
    uint64_t values;
    sdlk_status st = sdlk_shape_numel(4, shape, SDLK_F32, &values, err);
    if (st) {
        sdlk_error_prefix(err, "tile merger");
        return st;
    }
    uint64_t positions = (uint64_t)(shape[0] * shape[1] * shape[2]);
    m->grid = *grid;
    m->blend = blend;
    m->channels = channels;
    m->rank = rank;
    m->pool = pool;
    m->sum = calloc(values ? values : 1, sizeof *m->sum);
    m->weight = calloc(positions, sizeof *m->weight);
    m->seen = calloc((size_t)sdlk_tile_grid_count(grid), 1);
    int ok = m->sum && m->weight && m->seen;
    for (int a = 0; a < 3; a++) {
        m->axis_weight[a] = malloc((size_t)grid->tile[a] * sizeof(float));
        ok = ok && m->axis_weight[a];
    }
    if (!ok) {
        sdlk_tile_merger_free(m);
        return sdlk_error_set(err, SDLK_ERR_NOMEM,
                              "tile merger: out of memory for a canvas of %llu values",
                              (unsigned long long)values);
    }
    return SDLK_OK;
}

/* Load one element of any dtype as float (fast paths for the common pixel types). */
static inline float load_float(const uint8_t *p, sdlk_dtype dtype)
{
    switch (dtype) {
    case SDLK_U8: return *p;
    case SDLK_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case SDLK_F32: { float v; memcpy(&v, p, 4); return v; }
    default: return (float)sdlk_load_as_double(p, dtype);
    }
}

typedef struct add_job {
    sdlk_tile_merger *m;
    const sdlk_tensor *tile;
    const tile_walk *walk;
    int64_t strides[4]; /* tile's byte strides as (t, h, w, c) */
} add_job;

/* Accumulate rows [begin, end) of a tile. Distinct rows of one tile land on distinct
 * canvas rows (a tile is never longer than its axis), so rows run in parallel. */
static void add_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    const add_job *job = ctx;
    sdlk_tile_merger *m = job->m;
    const int64_t channels = m->channels, height = m->grid.canvas[1], width = m->grid.canvas[2];
    const float *weight_w = m->axis_weight[2];
    for (int64_t row = begin; row < end; row++) {
        int64_t tile_th[2], canvas_th[2];
        tile_walk_row(job->walk, row, tile_th, canvas_th);
        float row_weight = m->axis_weight[0][tile_th[0]] * m->axis_weight[1][tile_th[1]];
        const uint8_t *src_row = job->tile->data + tile_th[0] * job->strides[0] +
                                 tile_th[1] * job->strides[1];
        int64_t canvas_row = (canvas_th[0] * height + canvas_th[1]) * width;
        for (int r = 0; r < job->walk->run_count; r++) {
            const tile_run *run = &job->walk->runs[r];
            for (int64_t i = 0; i < run->length; i++) {
                int64_t tile_w = run->tile_w + i, position = canvas_row + run->canvas_w + i;
                float w = row_weight * weight_w[tile_w];
                const uint8_t *src = src_row + tile_w * job->strides[2];
                float *sum = m->sum + position * channels;
                m->weight[position] += w;
                for (int64_t c = 0; c < channels; c++)
                    sum[c] += w * load_float(src + c * job->strides[3], job->tile->dtype);
            }
        }
    }
}

/* Work below this many values is not worth waking the pool for. */
#define PARALLEL_MIN_VALUES ((int64_t)1 << 16)

sdlk_status sdlk_tile_merger_add(sdlk_tile_merger *m, int64_t index, const sdlk_tensor *tile,
                                 sdlk_error *err)
{
    int64_t count = sdlk_tile_grid_count(&m->grid);
    if (index < 0 || index >= count)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "tile %lld is outside the grid's %lld tiles",
                              (long long)index, (long long)count);
    if (m->seen[index])
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "tile %lld was given twice", (long long)index);
    if (!shape_matches(tile, m->rank, m->grid.tile, m->channels)) {
        char have[96], want[96];
        sdlk_shape_format(tile->ndim, tile->shape, have, sizeof have);
        format_expected_shape(m->rank, m->grid.tile, m->channels, want, sizeof want);
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "tile %lld has shape %s, the grid needs %s",
                              (long long)index, have, want);
    }
    tile_walk walk;
    tile_walk_init(&walk, &m->grid, index);
    for (int a = 0; a < 3; a++)
        axis_weights(&m->grid, m->blend, a, walk.rect.coord[a], m->axis_weight[a]);
    add_job job = {.m = m, .tile = tile, .walk = &walk};
    strides_thwc(tile, job.strides);
    int64_t values = tile_walk_rows(&walk) * walk.rect.size[2] * m->channels;
    sdlk_pool_for(values >= PARALLEL_MIN_VALUES ? m->pool : NULL, tile_walk_rows(&walk), 0,
                  add_rows, &job);
    m->seen[index] = 1;
    m->tiles_added++;
    return SDLK_OK;
}

typedef struct finish_job {
    const sdlk_tile_merger *m;
    float *out;
} finish_job;

static void divide_positions(void *ctx, int64_t begin, int64_t end, int worker)
{
    const finish_job *job = ctx;
    int64_t channels = job->m->channels;
    for (int64_t p = begin; p < end; p++) {
        float w = job->m->weight[p];
        for (int64_t c = 0; c < channels; c++)
            job->out[p * channels + c] = job->m->sum[p * channels + c] / w;
    }
}

sdlk_status sdlk_tile_merger_finish(sdlk_tile_merger *m, sdlk_tensor *out, sdlk_error *err)
{
    int64_t count = sdlk_tile_grid_count(&m->grid);
    if (m->tiles_added != count) {
        int64_t missing = 0;
        while (missing < count && m->seen[missing])
            missing++;
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile %lld is missing (%lld of %lld tiles were given)",
                              (long long)missing, (long long)m->tiles_added, (long long)count);
    }
    int64_t shape[4] = {m->grid.canvas[0], m->grid.canvas[1], m->grid.canvas[2], m->channels};
    sdlk_status st = sdlk_tensor_alloc(out, SDLK_F32, m->rank, m->rank == 3 ? shape + 1 : shape,
                                       err);
    if (st)
        return st;
    finish_job job = {m, (float *)out->data};
    int64_t positions = shape[0] * shape[1] * shape[2];
    sdlk_pool_for(positions * m->channels >= PARALLEL_MIN_VALUES ? m->pool : NULL, positions, 0,
                  divide_positions, &job);
    return SDLK_OK;
}

void sdlk_tile_merger_free(sdlk_tile_merger *m)
{
    free(m->sum);
    free(m->weight);
    free(m->seen);
    for (int a = 0; a < 3; a++)
        free(m->axis_weight[a]);
    memset(m, 0, sizeof *m);
}

/* ---- records ---------------------------------------------------------------------- */

#define TILE_RECORD_VERSION "1"

static const char *const source_names[] = {"tensor", "image", "video"};

const char *sdlk_tile_source_name(sdlk_tile_source source)
{
    return (unsigned)source < 3 ? source_names[source] : "unknown";
}

int sdlk_tile_canvas_same_source(const sdlk_tile_canvas *a, const sdlk_tile_canvas *b)
{
    return a->rank == b->rank && a->channels == b->channels && a->dtype == b->dtype &&
           a->source == b->source && a->bit_depth == b->bit_depth && a->fps == b->fps &&
           strcmp(a->name ? a->name : "", b->name ? b->name : "") == 0;
}

/* "a,b,c" (or with a fourth value). */
static void format_ints(char *buf, size_t size, const int64_t *values, int n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "",
                                 (long long)values[i]);
}

typedef struct meta_item {
    const char *key;
    char value[128];
} meta_item;

sdlk_status sdlk_tile_record_make(const sdlk_tile_grid *grid, const sdlk_tile_rect *rect,
                                  const sdlk_tile_canvas *canvas, sdlk_tensor *tile,
                                  sdlk_tensor_set *record, sdlk_error *err)
{
    if (!shape_matches(tile, canvas->rank, rect->size, canvas->channels)) {
        char have[96], want[96];
        sdlk_shape_format(tile->ndim, tile->shape, have, sizeof have);
        format_expected_shape(canvas->rank, rect->size, canvas->channels, want, sizeof want);
        return sdlk_error_set(err, SDLK_ERR_ARG, "tile record: tile %lld has shape %s, expected %s",
                              (long long)rect->index, have, want);
    }
    int64_t canvas_shape[4] = {grid->canvas[0], grid->canvas[1], grid->canvas[2],
                               canvas->channels};
    meta_item items[] = {
        {"sdl.tile.version", TILE_RECORD_VERSION},
        {"sdl.tile.mode", ""},
        {"sdl.tile.index", ""},
        {"sdl.tile.count", ""},
        {"sdl.tile.size", ""},
        {"sdl.tile.overlap", ""},
        {"sdl.tile.shift", ""},
        {"sdl.tile.origin", ""},
        {"sdl.canvas.shape", ""},
        {"sdl.canvas.rank", ""},
        {"sdl.canvas.dtype", ""},
        {"sdl.canvas.source", ""},
        {"sdl.canvas.bit_depth", ""},
        {"sdl.canvas.fps", ""},
        {"sdl.canvas.group", ""},
        {"sdl.canvas.first_frame", ""},
    };
    snprintf(items[1].value, sizeof items[1].value, "%s", sdlk_tile_mode_name(grid->mode));
    format_ints(items[2].value, sizeof items[2].value, &rect->index, 1);
    format_ints(items[3].value, sizeof items[3].value, grid->count, 3);
    format_ints(items[4].value, sizeof items[4].value, grid->tile, 3);
    format_ints(items[5].value, sizeof items[5].value, grid->overlap, 3);
    format_ints(items[6].value, sizeof items[6].value, grid->shift, 3);
    format_ints(items[7].value, sizeof items[7].value, rect->origin, 3);
    format_ints(items[8].value, sizeof items[8].value, canvas_shape, 4);
    snprintf(items[9].value, sizeof items[9].value, "%d", canvas->rank);
    snprintf(items[10].value, sizeof items[10].value, "%s", sdlk_dtype_name(canvas->dtype));
    snprintf(items[11].value, sizeof items[11].value, "%s", sdlk_tile_source_name(canvas->source));
    snprintf(items[12].value, sizeof items[12].value, "%d", canvas->bit_depth);
    snprintf(items[13].value, sizeof items[13].value, "%.17g", canvas->fps);
    format_ints(items[14].value, sizeof items[14].value, &canvas->group, 1);
    format_ints(items[15].value, sizeof items[15].value, &canvas->first_frame, 1);
    sdlk_status st = SDLK_OK;
    for (size_t i = 0; i < sizeof items / sizeof items[0] && !st; i++)
        st = sdlk_tensor_set_meta_set(record, items[i].key, items[i].value, err);
    if (!st)
        st = sdlk_tensor_set_meta_set(record, "sdl.canvas.name", canvas->name ? canvas->name : "",
                                      err);
    if (!st)
        st = sdlk_tensor_set_add(record, "tile", tile, err);
    if (st)
        sdlk_tensor_set_free(record);
    return st;
}

/* Largest integer a record may hold: every count, size and position is below the
 * biggest tensor we agree to allocate. */
#define RECORD_INT_MAX ((int64_t)SDLK_MAX_TENSOR_BYTES)

static sdlk_status missing_key(const char *key, sdlk_error *err)
{
    return sdlk_error_set(err, SDLK_ERR_FORMAT, "tile record: metadata key %s is missing", key);
}

/* Parse exactly n comma-separated plain decimal integers (digits only, no sign, no
 * spaces) in [0, RECORD_INT_MAX] from the value of `key`. */
static sdlk_status parse_ints(const sdlk_tensor_set *record, const char *key, int64_t *values,
                              int n, sdlk_error *err)
{
    const char *text = sdlk_tensor_set_meta_get(record, key);
    if (!text)
        return missing_key(key, err);
    const char *p = text;
    for (int i = 0; i < n; i++) {
        if (i > 0 && *p++ != ',')
            goto bad;
        if (*p < '0' || *p > '9')
            goto bad;
        int64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            v = v * 10 + (*p - '0');
            if (v > RECORD_INT_MAX)
                return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                      "tile record: %s = \"%.40s\" holds a number above %lld", key,
                                      text, (long long)RECORD_INT_MAX);
        }
        values[i] = v;
    }
    if (*p == '\0')
        return SDLK_OK;
bad:
    return sdlk_error_set(err, SDLK_ERR_FORMAT,
                          "tile record: %s = \"%.40s\" is not %d comma-separated non-negative "
                          "integer%s",
                          key, text, n, n > 1 ? "s" : "");
}

/* The value of `key`, which must be one of `names` (count of them); its position in *out. */
static sdlk_status parse_name(const sdlk_tensor_set *record, const char *key,
                              const char *const *names, int count, int *out, sdlk_error *err)
{
    const char *text = sdlk_tensor_set_meta_get(record, key);
    if (!text)
        return missing_key(key, err);
    for (int i = 0; i < count; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return SDLK_OK;
        }
    return sdlk_error_set(err, SDLK_ERR_FORMAT, "tile record: %s = \"%.40s\" is not a known value",
                          key, text);
}

static sdlk_status parse_canvas(const sdlk_tensor_set *record, int64_t shape[4],
                                sdlk_tile_canvas *canvas, sdlk_error *err)
{
    memset(canvas, 0, sizeof *canvas);
    int64_t rank, bit_depth;
    int source = 0;
    sdlk_status st = parse_ints(record, "sdl.canvas.shape", shape, 4, err);
    if (!st)
        st = parse_ints(record, "sdl.canvas.rank", &rank, 1, err);
    if (!st)
        st = parse_name(record, "sdl.canvas.source", source_names, 3, &source, err);
    if (!st)
        st = parse_ints(record, "sdl.canvas.bit_depth", &bit_depth, 1, err);
    if (!st)
        st = parse_ints(record, "sdl.canvas.group", &canvas->group, 1, err);
    if (!st)
        st = parse_ints(record, "sdl.canvas.first_frame", &canvas->first_frame, 1, err);
    if (st)
        return st;
    const char *version = sdlk_tensor_set_meta_get(record, "sdl.tile.version");
    const char *dtype = sdlk_tensor_set_meta_get(record, "sdl.canvas.dtype");
    const char *fps = sdlk_tensor_set_meta_get(record, "sdl.canvas.fps");
    canvas->name = sdlk_tensor_set_meta_get(record, "sdl.canvas.name");
    if (!version)
        return missing_key("sdl.tile.version", err);
    if (!dtype)
        return missing_key("sdl.canvas.dtype", err);
    if (!fps)
        return missing_key("sdl.canvas.fps", err);
    if (!canvas->name)
        return missing_key("sdl.canvas.name", err);
    if (strcmp(version, TILE_RECORD_VERSION) != 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: sdl.tile.version \"%.20s\" is not supported (only %s)",
                              version, TILE_RECORD_VERSION);
    if (rank != 3 && rank != 4)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: sdl.canvas.rank must be 3 or 4, got %lld",
                              (long long)rank);
    if (rank == 3 && shape[0] != 1)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: sdl.canvas.shape has %lld frames but rank is 3",
                              (long long)shape[0]);
    if (shape[3] < 1)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: sdl.canvas.shape has 0 channels");
    if (sdlk_dtype_parse(dtype, &canvas->dtype) != SDLK_OK)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: sdl.canvas.dtype \"%.40s\" is not a dtype", dtype);
    if (bit_depth > 16 || (source == SDLK_TILE_SOURCE_IMAGE) != (bit_depth > 0))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: sdl.canvas.bit_depth %lld does not fit a %s source "
                              "(1..16 for images, 0 otherwise)",
                              (long long)bit_depth, source_names[source]);
    char *end;
    errno = 0;
    canvas->fps = strtod(fps, &end);
    if (errno || end == fps || *end != '\0' || !(canvas->fps >= 0.0 && canvas->fps <= 1e6))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: sdl.canvas.fps \"%.40s\" is not a number from 0 to "
                              "1e6",
                              fps);
    canvas->rank = (int)rank;
    canvas->channels = shape[3];
    canvas->source = (sdlk_tile_source)source;
    canvas->bit_depth = (int)bit_depth;
    return SDLK_OK;
}

sdlk_status sdlk_tile_record_parse(const sdlk_tensor_set *record, sdlk_tile_grid *grid,
                                   sdlk_tile_rect *rect, sdlk_tile_canvas *canvas,
                                   const sdlk_tensor **tile, sdlk_error *err)
{
    static const char *const mode_names[] = {"overlap", "torus"};
    int64_t shape[4], count[3], size[3], overlap[3], shift[3], origin[3], index;
    int mode = 0;
    sdlk_status st = parse_name(record, "sdl.tile.mode", mode_names, 2, &mode, err);
    if (!st)
        st = parse_canvas(record, shape, canvas, err);
    if (!st)
        st = parse_ints(record, "sdl.tile.index", &index, 1, err);
    if (!st)
        st = parse_ints(record, "sdl.tile.count", count, 3, err);
    if (!st)
        st = parse_ints(record, "sdl.tile.size", size, 3, err);
    if (!st)
        st = parse_ints(record, "sdl.tile.overlap", overlap, 3, err);
    if (!st)
        st = parse_ints(record, "sdl.tile.shift", shift, 3, err);
    if (!st)
        st = parse_ints(record, "sdl.tile.origin", origin, 3, err);
    if (st)
        return st;
    uint64_t values;
    st = sdlk_shape_numel(4, shape, SDLK_F32, &values, err);
    if (st) {
        sdlk_error_prefix(err, "tile record: sdl.canvas.shape");
        return st;
    }
    sdlk_error grid_err = {0};
    st = mode == SDLK_TILE_TORUS ? sdlk_tile_grid_torus(grid, shape, size, shift, &grid_err)
               : sdlk_tile_grid_overlap(grid, shape, size, overlap, &grid_err);
    if (st)
        return sdlk_error_set(err, st == SDLK_ERR_OVERFLOW ? st : SDLK_ERR_FORMAT,
                              "tile record: bad grid: %s", grid_err.msg);
    for (int a = 0; a < 3; a++) {
        /* The stored values must be the grid's own (clipped, reduced) ones. */
        if (grid->tile[a] != size[a] || grid->overlap[a] != overlap[a] ||
            grid->shift[a] != shift[a] || grid->count[a] != count[a])
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "tile record: size/overlap/shift/count along %s (%lld/%lld/%lld/"
                                  "%lld) disagree with the grid they describe (%lld/%lld/%lld/%lld)",
                                  axis_name[a], (long long)size[a], (long long)overlap[a],
                                  (long long)shift[a], (long long)count[a],
                                  (long long)grid->tile[a], (long long)grid->overlap[a],
                                  (long long)grid->shift[a], (long long)grid->count[a]);
    }
    if (index >= sdlk_tile_grid_count(grid))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: sdl.tile.index %lld is outside the grid's %lld tiles",
                              (long long)index, (long long)sdlk_tile_grid_count(grid));
    sdlk_tile_grid_rect(grid, index, rect);
    for (int a = 0; a < 3; a++)
        if (rect->origin[a] != origin[a])
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "tile record: sdl.tile.origin along %s is %lld, tile %lld of "
                                  "this grid starts at %lld",
                                  axis_name[a], (long long)origin[a], (long long)index,
                                  (long long)rect->origin[a]);
    *tile = sdlk_tensor_set_find(record, "tile");
    if (!*tile)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "tile record: no tensor named \"tile\"");
    if (!shape_matches(*tile, canvas->rank, rect->size, canvas->channels)) {
        char have[96], want[96];
        sdlk_shape_format((*tile)->ndim, (*tile)->shape, have, sizeof have);
        format_expected_shape(canvas->rank, rect->size, canvas->channels, want, sizeof want);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tile record: tensor \"tile\" has shape %s, the metadata says %s",
                              have, want);
    }
    return SDLK_OK;
}
