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
#include "core/pool.h"
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
    int64_t overlap[3]; /* OVERLAP: overlap per axis (0 <= overlap < tile; 0 on an axis
                           that has a single tile); always 0 in TORUS mode */
    int64_t shift[3];   /* TORUS: grid offset per axis, 0 <= shift < canvas; 0 in OVERLAP */
    int64_t count[3];   /* tiles per axis (derived) */
} sdlk_tile_grid;

typedef struct sdlk_tile_rect {
    int64_t index;     /* 0 .. sdlk_tile_grid_count() - 1 */
    int64_t coord[3];  /* tile coordinates (t, h, w) */
    int64_t origin[3]; /* canvas position of the tile's first element (wraps in TORUS) */
    int64_t size[3];   /* always the grid's tile size: every tile is full-size */
} sdlk_tile_rect;

/* Build an OVERLAP grid. canvas/tile/overlap are (T, H, W). Errors (SDLK_ERR_ARG): a
 * canvas or tile size below 1, an overlap outside 0..tile-1; SDLK_ERR_OVERFLOW when
 * T*H*W positions do not fit SDLK_MAX_TENSOR_BYTES as f32. An axis no longer than the
 * tile gets one tile of the axis's length and overlap 0. */
sdlk_status sdlk_tile_grid_overlap(sdlk_tile_grid *grid, const int64_t canvas[3],
                                   const int64_t tile[3], const int64_t overlap[3],
                                   sdlk_error *err);
/* Build a TORUS grid; shift (any value, negative too) is reduced modulo the canvas.
 * Errors (SDLK_ERR_ARG): sizes below 1, a tile longer than its axis, an axis length
 * that is not a multiple of the tile size. */
sdlk_status sdlk_tile_grid_torus(sdlk_tile_grid *grid, const int64_t canvas[3],
                                 const int64_t tile[3], const int64_t shift[3], sdlk_error *err);
/* Number of tiles: count[0] * count[1] * count[2]. */
int64_t sdlk_tile_grid_count(const sdlk_tile_grid *grid);
/* 1 when two grids have the same mode, canvas, tile, overlap and shift. */
int sdlk_tile_grid_equal(const sdlk_tile_grid *a, const sdlk_tile_grid *b);
/* "overlap" or "torus". */
const char *sdlk_tile_mode_name(sdlk_tile_mode mode);
/* Geometry of tile `index` (unchecked: 0 <= index < count). */
void sdlk_tile_grid_rect(const sdlk_tile_grid *grid, int64_t index, sdlk_tile_rect *rect);

/* Shift of diffusion step `step` when each axis advances by its own stride and cycles
 * modulo the tile size: shift[a] = (step * stride[a]) mod tile[a], in 0..tile[a]-1 for
 * any sign of step and stride and without overflow (0 where tile[a] < 1). With
 * stride = tile / 16 the grid returns to its start every 16 steps on each axis; with
 * strides whose cycles differ per axis the borders visit every offset pair. */
void sdlk_tile_torus_shift(const int64_t tile[3], const int64_t stride[3], int64_t step,
                           int64_t shift[3]);

/* Copy tile `index` of `canvas` ([H,W,C] or [T,H,W,C], any dtype, any strides) into a
 * new contiguous tensor of the same dtype and rank ([h,w,C] or [t,h,w,C]); torus tiles
 * wrap around the canvas edges. `tile` must be empty. Fails with SDLK_ERR_ARG when the
 * canvas's shape does not match the grid (rank 3 needs T = 1) or index is out of range.
 * Runs on the calling thread: it is a strided memcpy of one tile, memory-bound and
 * small; callers parallelise over tiles if they need to. */
sdlk_status sdlk_tile_extract(const sdlk_tensor *canvas, const sdlk_tile_grid *grid,
                              int64_t index, sdlk_tensor *tile, sdlk_error *err);

/* Accumulates tiles into a canvas: sum[p, c] += w(p) * tile value, weight[p] += w(p),
 * with w the product of one per-axis weight (1 for AVERAGE and in TORUS mode). */
typedef struct sdlk_tile_merger {
    sdlk_tile_grid grid;
    sdlk_blend blend;
    int64_t channels;
    int rank;              /* 3 for [H,W,C], 4 for [T,H,W,C] */
    float *sum;            /* canvas-sized, channels per position */
    float *weight;         /* one per canvas position */
    uint8_t *seen;         /* one flag per tile: detects duplicates and missing tiles */
    int64_t tiles_added;
    float *axis_weight[3]; /* scratch: the current tile's weights along t, h, w */
    sdlk_pool *pool;       /* borrowed, may be NULL (run on the caller) */
} sdlk_tile_merger;

/* Prepare a merger for `grid` with `channels` (>= 1) values per position and tiles of
 * rank 3 ([h,w,C], needs canvas T = 1) or 4 ([t,h,w,C]). `pool` (may be NULL, is
 * borrowed and must outlive the merger) parallelises adding big tiles and the final
 * division over rows. Memory: 4 * (C + 1) bytes per canvas position. */
sdlk_status sdlk_tile_merger_init(sdlk_tile_merger *m, const sdlk_tile_grid *grid,
                                  int64_t channels, int rank, sdlk_blend blend, sdlk_pool *pool,
                                  sdlk_error *err);
/* Add tile `index` (any dtype, any strides, shape as sdlk_tile_extract gives). An index
 * outside the grid, a tile added twice or a tile of the wrong shape is an
 * SDLK_ERR_FORMAT (the message names the tile index; callers prefix the record). */
sdlk_status sdlk_tile_merger_add(sdlk_tile_merger *m, int64_t index, const sdlk_tensor *tile,
                                 sdlk_error *err);
/* The blended canvas as f32 ([H,W,C] or [T,H,W,C]) into the empty tensor `out`. Fails
 * (SDLK_ERR_FORMAT, naming the first missing tile) unless every tile was added.
 * Exactness: with AVERAGE, n copies of an integer value v (|v| < 2^24 / n) give v
 * exactly; with FEATHER the result is within a few float ulps of v, so converting it
 * back to the source's integer dtype (round to nearest) restores v exactly. */
sdlk_status sdlk_tile_merger_finish(sdlk_tile_merger *m, sdlk_tensor *out, sdlk_error *err);
/* Release the merger's buffers (safe on a zeroed or already freed merger). */
void sdlk_tile_merger_free(sdlk_tile_merger *m);

/* ---- tile records (one tile per tensor-stream record) --------------------------- */

/* Where a canvas came from: tells a merger how to restore it. */
typedef enum sdlk_tile_source {
    SDLK_TILE_SOURCE_TENSOR = 0, /* a tensor file: [H,W,C] or [T,H,W,C] */
    SDLK_TILE_SOURCE_IMAGE,      /* an image file: [H,W,C] u8/u16 */
    SDLK_TILE_SOURCE_VIDEO       /* a video: frames cut in groups, one canvas per group */
} sdlk_tile_source;

/* "tensor", "image", "video". */
const char *sdlk_tile_source_name(sdlk_tile_source source);

/* The canvas a record's tile belongs to, beyond the grid's geometry. */
typedef struct sdlk_tile_canvas {
    int rank;                /* 3: [H,W,C] (grid canvas T = 1), 4: [T,H,W,C] */
    int64_t channels;        /* C >= 1 */
    sdlk_dtype dtype;        /* dtype of the source canvas, restored by the merger */
    sdlk_tile_source source;
    int bit_depth;           /* image: bits per sample stored in the file (1..16); else 0 */
    double fps;              /* video: frames per second (0 = unknown); else 0 */
    int64_t group;           /* video: number of this group of frames, from 0; else 0 */
    int64_t first_frame;     /* video: source frame number of the group's first frame */
    const char *name;        /* tensor: source tensor name (may be ""); never NULL after
                                parse, where it points into the record's metadata */
} sdlk_tile_canvas;

/* 1 when a and b describe the same source (rank, channels, dtype, source, bit depth,
 * fps, name); group and first_frame are not compared. */
int sdlk_tile_canvas_same_source(const sdlk_tile_canvas *a, const sdlk_tile_canvas *b);

/* Build a record into the empty set `record`: tensor "tile" plus "sdl.tile.*" and
 * "sdl.canvas.*" metadata for the grid, the rect and `canvas` (keys and formats in
 * sdl-formats(5)). The tile tensor is moved into the record (the caller's struct is
 * reset). SDLK_ERR_ARG when the tile's shape does not match rect/canvas. On failure
 * the record is freed (left empty). */
sdlk_status sdlk_tile_record_make(const sdlk_tile_grid *grid, const sdlk_tile_rect *rect,
                                  const sdlk_tile_canvas *canvas, sdlk_tensor *tile,
                                  sdlk_tensor_set *record, sdlk_error *err);
/* Parse a record back: grid, rect, canvas description and a view of its "tile" tensor
 * (owned by the record). Records come from pipes, so everything is validated: every
 * key present, version 1, integers plain decimal in range, the grid rebuilt from mode,
 * canvas, size, overlap and shift and its count compared with the stored one, index in
 * range, origin equal to the grid's, canvas within SDLK_MAX_TENSOR_BYTES as f32, tile
 * tensor of rank `rank` and shape [size..., C]. Errors are SDLK_ERR_FORMAT (or
 * SDLK_ERR_OVERFLOW for a canvas too large) and name the key at fault; the caller
 * prefixes the stream name and record number. */
sdlk_status sdlk_tile_record_parse(const sdlk_tensor_set *record, sdlk_tile_grid *grid,
                                   sdlk_tile_rect *rect, sdlk_tile_canvas *canvas,
                                   const sdlk_tensor **tile, sdlk_error *err);

#endif
