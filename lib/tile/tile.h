/* tile.h -- covering a canvas with tiles, cutting tiles out, and blending them back.
 *
 * Contract
 *   A canvas is a tensor [H, W, C] (image) or [T, H, W, C] (video, T frames), any dtype.
 *   A grid covers the canvas's (T, H, W) axes with equal-size tiles in one of two modes:
 *
 *   OVERLAP: tiles of size s step by s - overlap along each axis; the last tile of an
 *     axis is moved back so that it ends exactly at the canvas edge (every tile is
 *     full-size and lies inside the canvas; no padding). An axis shorter than the tile
 *     gets one tile of the axis's length. Merging blends overlaps with weights: AVERAGE
 *     (all 1) or FEATHER (a linear ramp across each overlap, separable per axis, never
 *     0), then divides by the summed weight, so merging the unmodified tiles of a canvas
 *     gives the canvas back (exactly for AVERAGE; to float rounding for FEATHER).
 *
 *   TORUS: tiles of size s with no overlap on a grid shifted by (shift_t, shift_h,
 *     shift_w): tile k along an axis starts at (shift + k * s) mod L and wraps around the
 *     far edge, so every canvas position belongs to exactly one tile for any shift.
 *     The axis length must be a multiple of the tile size. Shifting the grid between
 *     diffusion steps moves tile borders (SuperGen); sdlk_tile_torus_shift() gives the
 *     shift of step k when each axis cycles through its own offsets.
 *
 *   Tiles are numbered in C order over (t, h, w) tile coordinates. A tile record (what
 *   sdl-tile writes into a tensor stream) carries the grid and the tile's index, origin
 *   and size in its metadata, so that a merger needs nothing else; see
 *   sdlk_tile_record_* below and sdl-formats(5).
 *   Complexity: split and merge are O(canvas size x tiles covering a point); the merger
 *   holds one f32 accumulator and one weight plane for the canvas, nothing per tile.
 */
#ifndef SDLK_TILE_TILE_H
#define SDLK_TILE_TILE_H

#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"
#include "core/tensorset.h"

typedef enum sdlk_tile_mode {
    SDLK_TILE_OVERLAP = 0,
    SDLK_TILE_TORUS
} sdlk_tile_mode;

typedef enum sdlk_blend {
    SDLK_BLEND_FEATHER = 0,
    SDLK_BLEND_AVERAGE
} sdlk_blend;

/* Axis order everywhere: 0 = t (frames), 1 = h, 2 = w. Images have T = 1. */
typedef struct sdlk_tile_grid {
    sdlk_tile_mode mode;
    int64_t canvas[3];  /* T, H, W */
    int64_t tile[3];    /* tile size per axis (clipped to the canvas in OVERLAP mode) */
    int64_t overlap[3]; /* OVERLAP: overlap per axis (0 <= overlap < tile) */
    int64_t shift[3];   /* TORUS: grid offset per axis, 0 <= shift < canvas */
    int64_t count[3];   /* tiles per axis (derived) */
} sdlk_tile_grid;

typedef struct sdlk_tile_rect {
    int64_t index;     /* 0 .. sdlk_tile_grid_count() - 1 */
    int64_t coord[3];  /* tile coordinates (t, h, w) */
    int64_t origin[3]; /* canvas position of the tile's first element (wraps in TORUS) */
    int64_t size[3];
} sdlk_tile_rect;

/* Build an OVERLAP grid. canvas/tile/overlap are (T, H, W). */
sdlk_status sdlk_tile_grid_overlap(sdlk_tile_grid *grid, const int64_t canvas[3],
                                   const int64_t tile[3], const int64_t overlap[3],
                                   sdlk_error *err);
/* Build a TORUS grid; shift is reduced modulo the canvas. */
sdlk_status sdlk_tile_grid_torus(sdlk_tile_grid *grid, const int64_t canvas[3],
                                 const int64_t tile[3], const int64_t shift[3], sdlk_error *err);
int64_t sdlk_tile_grid_count(const sdlk_tile_grid *grid);
/* Geometry of tile `index` (unchecked: 0 <= index < count). */
void sdlk_tile_grid_rect(const sdlk_tile_grid *grid, int64_t index, sdlk_tile_rect *rect);

/* Shift of diffusion step `step` when each axis advances by its own stride and cycles
 * modulo the tile size: shift[a] = (step * stride[a]) mod tile[a]. */
void sdlk_tile_torus_shift(const int64_t tile[3], const int64_t stride[3], int64_t step,
                           int64_t shift[3]);

/* Copy tile `index` of `canvas` ([H,W,C] or [T,H,W,C]) into a new contiguous tensor of
 * the same dtype and rank ([h,w,C] or [t,h,w,C]). */
sdlk_status sdlk_tile_extract(const sdlk_tensor *canvas, const sdlk_tile_grid *grid,
                              int64_t index, sdlk_tensor *tile, sdlk_error *err);

/* Accumulates tiles into a canvas (f32). */
typedef struct sdlk_tile_merger {
    sdlk_tile_grid grid;
    sdlk_blend blend;
    int64_t channels;
    int rank;          /* 3 for [H,W,C], 4 for [T,H,W,C] */
    float *sum;        /* canvas-sized, channels per position */
    float *weight;     /* one per canvas position */
    uint8_t *seen;     /* one flag per tile: detects duplicates and missing tiles */
    int64_t tiles_added;
} sdlk_tile_merger;

sdlk_status sdlk_tile_merger_init(sdlk_tile_merger *m, const sdlk_tile_grid *grid,
                                  int64_t channels, int rank, sdlk_blend blend,
                                  sdlk_error *err);
/* Add tile `index` (any numeric dtype, shape as sdlk_tile_extract gives). A tile added
 * twice or of the wrong shape is an SDLK_ERR_FORMAT. */
sdlk_status sdlk_tile_merger_add(sdlk_tile_merger *m, int64_t index, const sdlk_tensor *tile,
                                 sdlk_error *err);
/* The blended canvas as f32 ([H,W,C] or [T,H,W,C]). Fails (SDLK_ERR_FORMAT, naming
 * the first missing tile) unless every tile was added. */
sdlk_status sdlk_tile_merger_finish(sdlk_tile_merger *m, sdlk_tensor *out, sdlk_error *err);
void sdlk_tile_merger_free(sdlk_tile_merger *m);

/* ---- tile records (one tile per tensor-stream record) --------------------------- */

/* Build a record: tensor "tile" + metadata describing grid, rect, and `extra` key/values
 * given by the caller (e.g. the source's dtype and bit depth), under "sdl." keys. The
 * tile tensor is moved into the record. */
sdlk_status sdlk_tile_record_make(const sdlk_tile_grid *grid, const sdlk_tile_rect *rect,
                                  sdlk_tensor *tile, sdlk_tensor_set *record, sdlk_error *err);
/* Parse a record back: grid, rect and a view of its "tile" tensor. Everything is
 * validated (keys present, numbers in range, tile shape matching rect). */
sdlk_status sdlk_tile_record_parse(const sdlk_tensor_set *record, sdlk_tile_grid *grid,
                                   sdlk_tile_rect *rect, const sdlk_tensor **tile,
                                   sdlk_error *err);

#endif
