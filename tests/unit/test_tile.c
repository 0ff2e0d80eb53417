/* Unit tests of lib/tile: grids, torus shifts, extraction, merging, tile records. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/tensor.h"
#include "core/tensorset.h"
#include "image/image.h"
#include "tile/tile.h"
#include "unit.h"

/* Deterministic pseudo-random numbers (xorshift64*), one state per test. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

/* A C-contiguous tensor whose elements are random values of `dtype` (integers over
 * their whole range up to 16 bits, floats in [-1000, 1000)). */
static void random_tensor(sdlk_tensor *t, sdlk_dtype dtype, int ndim, const int64_t *shape,
                          uint64_t *state)
{
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_tensor_alloc(t, dtype, ndim, shape, &err), SDLK_OK);
    size_t elem = sdlk_dtype_size(dtype);
    for (uint64_t i = 0; i < sdlk_tensor_numel(t); i++) {
        uint64_t r = next_random(state);
        double value = sdlk_dtype_is_float(dtype) ? (double)(r >> 11) / (double)(1ull << 53) * 2000.0 - 1000.0
                       : dtype == SDLK_I16 ? (double)(int16_t)(r >> 48)
                       : dtype == SDLK_U16 ? (double)(r >> 48)
                                           : (double)(r >> 56);
        sdlk_store_from_double(t->data + i * elem, dtype, value);
    }
}

/* Visit every canvas position of tile `index` (with torus wrap) and count it in `hits`. */
static void count_tile_positions(const sdlk_tile_grid *grid, int64_t index, int *hits)
{
    sdlk_tile_rect rect;
    sdlk_tile_grid_rect(grid, index, &rect);
    ck_assert_int_eq(rect.index, index);
    for (int64_t t = 0; t < rect.size[0]; t++)
        for (int64_t h = 0; h < rect.size[1]; h++)
            for (int64_t w = 0; w < rect.size[2]; w++) {
                int64_t ct = (rect.origin[0] + t) % grid->canvas[0];
                int64_t ch = (rect.origin[1] + h) % grid->canvas[1];
                int64_t cw = (rect.origin[2] + w) % grid->canvas[2];
                hits[(ct * grid->canvas[1] + ch) * grid->canvas[2] + cw]++;
            }
}

START_TEST(torus_covers_every_position_once)
{
    const int64_t canvases[][3] = {{1, 12, 18}, {4, 6, 8}, {1, 5, 5}, {6, 4, 9}};
    const int64_t tiles[][3] = {{1, 4, 6}, {2, 3, 4}, {1, 5, 1}, {3, 2, 3}};
    const int64_t shifts[][3] = {{0, 0, 0},       {0, 1, 1},        {1, 3, 5},
                                 {0, -1, -7},     {5, 1000, 1001},  {-9, -1001, 37},
                                 {INT64_MAX, INT64_MIN, INT64_MAX}, {3, 12, 18}};
    for (size_t c = 0; c < sizeof canvases / sizeof canvases[0]; c++)
        for (size_t s = 0; s < sizeof shifts / sizeof shifts[0]; s++) {
            sdlk_tile_grid grid;
            sdlk_error err = {0};
            ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvases[c], tiles[c], shifts[s], &err),
                             SDLK_OK);
            int64_t positions = canvases[c][0] * canvases[c][1] * canvases[c][2];
            int *hits = calloc((size_t)positions, sizeof *hits);
            for (int a = 0; a < 3; a++) {
                ck_assert(grid.shift[a] >= 0 && grid.shift[a] < canvases[c][a]);
                /* the reduction is a true modulo: shift - reduced is a multiple of L */
                ck_assert_int_eq(((shifts[s][a] % canvases[c][a]) - grid.shift[a]) % canvases[c][a], 0);
            }
            ck_assert_int_eq(sdlk_tile_grid_count(&grid),
                             positions / (tiles[c][0] * tiles[c][1] * tiles[c][2]));
            for (int64_t i = 0; i < sdlk_tile_grid_count(&grid); i++)
                count_tile_positions(&grid, i, hits);
            for (int64_t p = 0; p < positions; p++)
                ck_assert_msg(hits[p] == 1, "canvas %zu shift %zu: position %lld covered %d times",
                              c, s, (long long)p, hits[p]);
            free(hits);
        }
}
END_TEST

START_TEST(torus_rejects_bad_geometry)
{
    sdlk_tile_grid grid;
    sdlk_error err = {0};
    const int64_t canvas[3] = {1, 10, 12}, shift[3] = {0, 0, 0};
    const int64_t not_multiple[3] = {1, 4, 4}, too_big[3] = {1, 20, 12}, zero[3] = {1, 0, 4};
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvas, not_multiple, shift, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "multiple"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvas, too_big, shift, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvas, zero, shift, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    const int64_t huge[3] = {1 << 20, 1 << 20, 1 << 20}, unit[3] = {1, 1, 1};
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, huge, unit, shift, &err), SDLK_ERR_OVERFLOW);
}
END_TEST

START_TEST(overlap_grid_covers_with_full_tiles_inside)
{
    uint64_t state = 12345;
    for (int trial = 0; trial < 400; trial++) {
        int64_t canvas[3], tile[3], overlap[3];
        for (int a = 0; a < 3; a++) {
            canvas[a] = 1 + (int64_t)(next_random(&state) % (a == 0 ? 5 : 70));
            tile[a] = 1 + (int64_t)(next_random(&state) % (a == 0 ? 4 : 40));
            overlap[a] = (int64_t)(next_random(&state) % (uint64_t)tile[a]);
        }
        sdlk_tile_grid grid;
        sdlk_error err = {0};
        ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, canvas, tile, overlap, &err), SDLK_OK);
        int64_t positions = canvas[0] * canvas[1] * canvas[2];
        int *hits = calloc((size_t)positions, sizeof *hits);
        for (int64_t i = 0; i < sdlk_tile_grid_count(&grid); i++) {
            sdlk_tile_rect rect;
            sdlk_tile_grid_rect(&grid, i, &rect);
            for (int a = 0; a < 3; a++) {
                int64_t full = tile[a] < canvas[a] ? tile[a] : canvas[a];
                ck_assert_int_eq(rect.size[a], full);
                ck_assert(rect.origin[a] >= 0 && rect.origin[a] + rect.size[a] <= canvas[a]);
                if (rect.coord[a] == 0)
                    ck_assert_int_eq(rect.origin[a], 0);
                if (rect.coord[a] == grid.count[a] - 1)
                    ck_assert_int_eq(rect.origin[a] + rect.size[a], canvas[a]);
                if (rect.coord[a] > 0) { /* neighbours overlap by at least the overlap */
                    sdlk_tile_rect prev;
                    int64_t step = a == 0 ? grid.count[1] * grid.count[2] : a == 1 ? grid.count[2] : 1;
                    sdlk_tile_grid_rect(&grid, i - step, &prev);
                    ck_assert(prev.origin[a] < rect.origin[a]);
                    ck_assert(prev.origin[a] + prev.size[a] - rect.origin[a] >= grid.overlap[a]);
                }
            }
            count_tile_positions(&grid, i, hits);
        }
        for (int64_t p = 0; p < positions; p++)
            ck_assert_msg(hits[p] >= 1, "trial %d: position %lld not covered", trial, (long long)p);
        free(hits);
    }
}
END_TEST

START_TEST(overlap_grid_examples_and_errors)
{
    sdlk_tile_grid grid;
    sdlk_error err = {0};
    /* 451 wide, tile 128, overlap 16: step 112, origins 0 112 224 323 (last aligned) */
    const int64_t canvas[3] = {1, 300, 451}, tile[3] = {1, 128, 128}, overlap[3] = {0, 16, 16};
    ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, canvas, tile, overlap, &err), SDLK_OK);
    ck_assert_int_eq(grid.count[2], 4);
    ck_assert_int_eq(grid.count[1], 3);
    const int64_t expected_w[4] = {0, 112, 224, 323};
    for (int64_t k = 0; k < 4; k++) {
        sdlk_tile_rect rect;
        sdlk_tile_grid_rect(&grid, k, &rect);
        ck_assert_int_eq(rect.origin[2], expected_w[k]);
    }
    /* an axis shorter than the tile gets one tile of its own length and no overlap */
    const int64_t small[3] = {1, 50, 451};
    ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, small, tile, overlap, &err), SDLK_OK);
    ck_assert_int_eq(grid.count[1], 1);
    ck_assert_int_eq(grid.tile[1], 50);
    ck_assert_int_eq(grid.overlap[1], 0);
    const int64_t bad_overlap[3] = {0, 128, 0}, negative[3] = {0, -1, 0};
    ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, canvas, tile, bad_overlap, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "overlap"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, canvas, tile, negative, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    const int64_t empty[3] = {1, 0, 451};
    ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, empty, tile, overlap, &err), SDLK_ERR_ARG);
}
END_TEST

START_TEST(torus_shift_cycles_per_axis)
{
    const int64_t tile[3] = {1, 64, 48};
    int64_t shift[3];
    const int64_t stride[3] = {0, 4, 3};
    sdlk_tile_torus_shift(tile, stride, 0, shift);
    ck_assert(shift[0] == 0 && shift[1] == 0 && shift[2] == 0);
    sdlk_tile_torus_shift(tile, stride, 1, shift);
    ck_assert(shift[0] == 0 && shift[1] == 4 && shift[2] == 3);
    sdlk_tile_torus_shift(tile, stride, 5, shift);
    ck_assert(shift[1] == 20 && shift[2] == 15);
    sdlk_tile_torus_shift(tile, stride, 16, shift); /* 64/4 = 48/3 = 16: back to start */
    ck_assert(shift[1] == 0 && shift[2] == 0);
    sdlk_tile_torus_shift(tile, stride, -1, shift);
    ck_assert(shift[1] == 60 && shift[2] == 45);
    /* separate cycles: h repeats every 16 steps, w every 8 */
    const int64_t stride2[3] = {0, 4, 6};
    int64_t first_h_repeat = 0, first_w_repeat = 0;
    for (int64_t step = 1; step <= 64 && (!first_h_repeat || !first_w_repeat); step++) {
        sdlk_tile_torus_shift(tile, stride2, step, shift);
        if (!first_h_repeat && shift[1] == 0)
            first_h_repeat = step;
        if (!first_w_repeat && shift[2] == 0)
            first_w_repeat = step;
    }
    ck_assert_int_eq(first_h_repeat, 16);
    ck_assert_int_eq(first_w_repeat, 8);
    /* no overflow: (2^63-1)^2 mod 64 = 1, mod 48 = 1 */
    const int64_t big_stride[3] = {INT64_MAX, INT64_MAX, INT64_MAX};
    sdlk_tile_torus_shift(tile, big_stride, INT64_MAX, shift);
    ck_assert(shift[0] == 0 && shift[1] == 1 && shift[2] == 1);
    const int64_t no_tile[3] = {0, -3, 5};
    sdlk_tile_torus_shift(no_tile, stride, 7, shift);
    ck_assert(shift[0] == 0 && shift[1] == 0 && shift[2] == 1);
}
END_TEST

START_TEST(extract_wraps_on_torus_and_handles_strides)
{
    /* canvas value = its own position, so each extracted element names where it came from */
    const int64_t shape[4] = {2, 6, 8, 2};
    sdlk_tensor canvas;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_tensor_alloc(&canvas, SDLK_I32, 4, shape, &err), SDLK_OK);
    int32_t *values = (int32_t *)canvas.data;
    for (int32_t i = 0; i < 2 * 6 * 8 * 2; i++)
        values[i] = i;
    const int64_t grid_canvas[3] = {2, 6, 8}, tile[3] = {1, 3, 4}, shift[3] = {1, 5, 7};
    sdlk_tile_grid grid;
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, grid_canvas, tile, shift, &err), SDLK_OK);
    for (int64_t i = 0; i < sdlk_tile_grid_count(&grid); i++) {
        sdlk_tensor out;
        sdlk_tensor_init(&out);
        ck_assert_int_eq(sdlk_tile_extract(&canvas, &grid, i, &out, &err), SDLK_OK);
        ck_assert_int_eq(out.ndim, 4);
        sdlk_tile_rect rect;
        sdlk_tile_grid_rect(&grid, i, &rect);
        const int32_t *got = (const int32_t *)out.data;
        for (int64_t t = 0; t < 1; t++)
            for (int64_t h = 0; h < 3; h++)
                for (int64_t w = 0; w < 4; w++)
                    for (int64_t c = 0; c < 2; c++) {
                        int64_t ct = (rect.origin[0] + t) % 2, ch = (rect.origin[1] + h) % 6,
                                cw = (rect.origin[2] + w) % 8;
                        ck_assert_int_eq(got[((t * 3 + h) * 4 + w) * 2 + c],
                                         ((ct * 6 + ch) * 8 + cw) * 2 + c);
                    }
        sdlk_tensor_free(&out);
    }
    /* a Fortran-ordered canvas gives the same tiles as a C-ordered one */
    sdlk_tensor fortran;
    sdlk_tensor_share(&fortran, &canvas);
    sdlk_tensor_free(&fortran);
    ck_assert_int_eq(sdlk_tensor_alloc(&fortran, SDLK_I32, 4, shape, &err), SDLK_OK);
    sdlk_strides_f(4, shape, 4, fortran.strides);
    for (int64_t t = 0; t < 2; t++)
        for (int64_t h = 0; h < 6; h++)
            for (int64_t w = 0; w < 8; w++)
                for (int64_t c = 0; c < 2; c++) {
                    int64_t idx[4] = {t, h, w, c};
                    *(int32_t *)sdlk_tensor_at(&fortran, idx) = *(int32_t *)sdlk_tensor_at(&canvas, idx);
                }
    for (int64_t i = 0; i < sdlk_tile_grid_count(&grid); i++) {
        sdlk_tensor a, b;
        sdlk_tensor_init(&a);
        sdlk_tensor_init(&b);
        ck_assert_int_eq(sdlk_tile_extract(&canvas, &grid, i, &a, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_tile_extract(&fortran, &grid, i, &b, &err), SDLK_OK);
        ck_assert_mem_eq(a.data, b.data, (size_t)sdlk_tensor_nbytes(&a));
        sdlk_tensor_free(&a);
        sdlk_tensor_free(&b);
    }
    /* shape mismatch and index out of range are argument errors */
    sdlk_tensor out;
    sdlk_tensor_init(&out);
    ck_assert_int_eq(sdlk_tile_extract(&canvas, &grid, sdlk_tile_grid_count(&grid), &out, &err),
                     SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    const int64_t other[3] = {2, 6, 16};
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, other, tile, shift, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tile_extract(&canvas, &grid, 0, &out, &err), SDLK_ERR_ARG);
    sdlk_tensor_free(&fortran);
    sdlk_tensor_free(&canvas);
}
END_TEST

/* Split `canvas` on `grid`, merge the tiles back in a scrambled order with `blend`,
 * and convert to the canvas's dtype into *restored. */
static void split_merge(const sdlk_tensor *canvas, const sdlk_tile_grid *grid, sdlk_blend blend,
                        sdlk_pool *pool, sdlk_tensor *restored)
{
    sdlk_error err = {0};
    sdlk_tile_merger merger;
    int rank = canvas->ndim;
    ck_assert_int_eq(sdlk_tile_merger_init(&merger, grid, canvas->shape[rank - 1], rank, blend,
                                           pool, &err),
                     SDLK_OK);
    int64_t count = sdlk_tile_grid_count(grid);
    for (int64_t k = 0; k < count; k++) {
        int64_t index = (k * 7 + 3) % count; /* a permutation when gcd(7, count) = 1 */
        if (count % 7 == 0)
            index = count - 1 - k;
        sdlk_tensor tile;
        sdlk_tensor_init(&tile);
        ck_assert_int_eq(sdlk_tile_extract(canvas, grid, index, &tile, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_tile_merger_add(&merger, index, &tile, &err), SDLK_OK);
        sdlk_tensor_free(&tile);
    }
    sdlk_tensor merged;
    sdlk_tensor_init(&merged);
    ck_assert_msg(sdlk_tile_merger_finish(&merger, &merged, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_int_eq(merged.dtype, SDLK_F32);
    ck_assert_int_eq(sdlk_tensor_convert(restored, &merged, canvas->dtype, &err), SDLK_OK);
    sdlk_tensor_free(&merged);
    sdlk_tile_merger_free(&merger);
}

START_TEST(split_merge_is_identity_on_random_data)
{
    uint64_t state = 99;
    sdlk_error err = {0};
    sdlk_pool *pool = sdlk_pool_create(4, &err);
    ck_assert_ptr_nonnull(pool);
    const sdlk_dtype dtypes[] = {SDLK_U8, SDLK_U16, SDLK_I16, SDLK_F32};
    const int64_t shapes[][4] = {{1, 37, 53, 3}, {3, 29, 31, 2}, {1, 300, 451, 3}};
    for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int rank = 3; rank <= 4; rank++) {
                if (rank == 3 && shapes[s][0] != 1)
                    continue;
                if (s == 2 && dtypes[d] != SDLK_U8 && dtypes[d] != SDLK_F32)
                    continue; /* the photo-sized canvas (pool path) for two dtypes is enough */
                sdlk_tensor canvas;
                random_tensor(&canvas, dtypes[d], rank, rank == 3 ? shapes[s] + 1 : shapes[s],
                              &state);
                const int64_t tile[3] = {2, 16, 24}, overlap[3] = {1, 5, 7};
                sdlk_tile_grid grid;
                ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, shapes[s], tile, overlap, &err),
                                 SDLK_OK);
                for (int blend = SDLK_BLEND_FEATHER; blend <= SDLK_BLEND_AVERAGE; blend++) {
                    sdlk_tensor restored;
                    sdlk_tensor_init(&restored);
                    split_merge(&canvas, &grid, (sdlk_blend)blend, s == 2 ? pool : NULL,
                                &restored);
                    if (dtypes[d] != SDLK_F32) {
                        ck_assert_msg(memcmp(restored.data, canvas.data,
                                             (size_t)sdlk_tensor_nbytes(&canvas)) == 0,
                                      "dtype %s shape %zu rank %d blend %d differs",
                                      sdlk_dtype_name(dtypes[d]), s, rank, blend);
                    } else {
                        const float *a = (const float *)canvas.data, *b = (const float *)restored.data;
                        for (uint64_t i = 0; i < sdlk_tensor_numel(&canvas); i++)
                            ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-4f * (1.0f + fabsf(a[i])),
                                          "f32 element %llu: %g vs %g", (unsigned long long)i,
                                          a[i], b[i]);
                    }
                    sdlk_tensor_free(&restored);
                }
                /* a torus grid whose tile divides the canvas: non-overlapping, exact for all */
                int64_t torus_tile[3] = {1, 1, 1};
                for (int a = 0; a < 3; a++)
                    for (int64_t div = shapes[s][a] > 1 ? shapes[s][a] / 2 : 1; div >= 1; div--)
                        if (shapes[s][a] % div == 0) {
                            torus_tile[a] = div;
                            break;
                        }
                const int64_t shift[3] = {1, -7, 1000};
                ck_assert_int_eq(sdlk_tile_grid_torus(&grid, shapes[s], torus_tile, shift, &err),
                                 SDLK_OK);
                sdlk_tensor restored;
                sdlk_tensor_init(&restored);
                split_merge(&canvas, &grid, SDLK_BLEND_FEATHER, pool, &restored);
                ck_assert_mem_eq(restored.data, canvas.data, (size_t)sdlk_tensor_nbytes(&canvas));
                sdlk_tensor_free(&restored);
                sdlk_tensor_free(&canvas);
            }
    sdlk_pool_destroy(pool);
}
END_TEST

START_TEST(split_merge_is_identity_on_a_photo)
{
    char path[4096];
    const char *dir = getenv("SDL_TESTDATA");
    snprintf(path, sizeof path, "%s/chelsea.png", dir ? dir : "tests/data");
    sdlk_tensor photo;
    sdlk_image_info info;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_image_read(path, &photo, &info, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_int_eq(photo.shape[1], 451);
    const int64_t canvas[3] = {1, photo.shape[0], photo.shape[1]};
    const int64_t tile[3] = {1, 128, 128}, overlap[3] = {0, 32, 17};
    sdlk_pool *pool = sdlk_pool_create(3, &err);
    for (int blend = SDLK_BLEND_FEATHER; blend <= SDLK_BLEND_AVERAGE; blend++) {
        sdlk_tile_grid grid;
        ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, canvas, tile, overlap, &err), SDLK_OK);
        sdlk_tensor restored;
        sdlk_tensor_init(&restored);
        split_merge(&photo, &grid, (sdlk_blend)blend, pool, &restored);
        ck_assert_mem_eq(restored.data, photo.data, (size_t)sdlk_tensor_nbytes(&photo));
        sdlk_tensor_free(&restored);
    }
    sdlk_pool_destroy(pool);
    sdlk_tensor_free(&photo);
}
END_TEST

/* One row of 10 positions, tiles of 6 with overlap 2: tiles at 0 and 4 share 4 and 5. */
START_TEST(feather_ramps_across_the_overlap)
{
    const int64_t canvas[3] = {1, 1, 10}, tile[3] = {1, 1, 6}, overlap[3] = {0, 0, 2};
    sdlk_tile_grid grid;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_tile_grid_overlap(&grid, canvas, tile, overlap, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tile_grid_count(&grid), 2);
    const float expect_feather[10] = {0, 0, 0, 0, 1, 2, 3, 3, 3, 3};
    const float expect_average[10] = {0, 0, 0, 0, 1.5f, 1.5f, 3, 3, 3, 3};
    for (int blend = SDLK_BLEND_FEATHER; blend <= SDLK_BLEND_AVERAGE; blend++) {
        sdlk_tile_merger merger;
        ck_assert_int_eq(sdlk_tile_merger_init(&merger, &grid, 1, 3, (sdlk_blend)blend, NULL, &err),
                         SDLK_OK);
        for (int64_t k = 0; k < 2; k++) {
            float values[6];
            for (int i = 0; i < 6; i++)
                values[i] = (float)(3 * k); /* tile 0 is all 0, tile 1 all 3 */
            const int64_t shape[3] = {1, 6, 1};
            sdlk_tensor t;
            ck_assert_int_eq(sdlk_tensor_borrow(&t, SDLK_F32, 3, shape, values, &err), SDLK_OK);
            ck_assert_int_eq(sdlk_tile_merger_add(&merger, k, &t, &err), SDLK_OK);
        }
        sdlk_tensor out;
        sdlk_tensor_init(&out);
        ck_assert_int_eq(sdlk_tile_merger_finish(&merger, &out, &err), SDLK_OK);
        const float *expect = blend == SDLK_BLEND_FEATHER ? expect_feather : expect_average;
        for (int i = 0; i < 10; i++)
            ck_assert_msg(fabsf(((float *)out.data)[i] - expect[i]) < 1e-6f, "blend %d pos %d: %g",
                          blend, i, ((float *)out.data)[i]);
        sdlk_tensor_free(&out);
        sdlk_tile_merger_free(&merger);
    }
}
END_TEST

START_TEST(merger_reports_duplicates_missing_and_bad_shapes)
{
    const int64_t canvas[3] = {1, 8, 8}, tile[3] = {1, 4, 4}, shift[3] = {0, 2, 2};
    sdlk_tile_grid grid;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvas, tile, shift, &err), SDLK_OK);
    sdlk_tile_merger merger;
    ck_assert_int_eq(sdlk_tile_merger_init(&merger, &grid, 3, 3, SDLK_BLEND_AVERAGE, NULL, &err),
                     SDLK_OK);
    sdlk_tensor good, bad;
    const int64_t good_shape[3] = {4, 4, 3}, bad_shape[3] = {4, 4, 1};
    ck_assert_int_eq(sdlk_tensor_alloc(&good, SDLK_U8, 3, good_shape, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_alloc(&bad, SDLK_U8, 3, bad_shape, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tile_merger_add(&merger, 0, &good, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tile_merger_add(&merger, 0, &good, &err), SDLK_ERR_FORMAT);
    ck_assert_str_eq(err.msg, "tile 0 was given twice");
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_tile_merger_add(&merger, 4, &good, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "outside"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_tile_merger_add(&merger, -1, &good, &err), SDLK_ERR_FORMAT);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_tile_merger_add(&merger, 1, &bad, &err), SDLK_ERR_FORMAT);
    ck_assert_str_eq(err.msg, "tile 1 has shape [4, 4, 1], the grid needs [4, 4, 3]");
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_tile_merger_add(&merger, 3, &good, &err), SDLK_OK);
    sdlk_tensor out;
    sdlk_tensor_init(&out);
    ck_assert_int_eq(sdlk_tile_merger_finish(&merger, &out, &err), SDLK_ERR_FORMAT);
    ck_assert_str_eq(err.msg, "tile 1 is missing (2 of 4 tiles were given)");
    sdlk_tile_merger_free(&merger);
    sdlk_error_clear(&err);
    /* rank 3 needs a single frame */
    const int64_t video[3] = {2, 8, 8};
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, video, tile, shift, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tile_merger_init(&merger, &grid, 3, 3, SDLK_BLEND_AVERAGE, NULL, &err),
                     SDLK_ERR_ARG);
    sdlk_tensor_free(&good);
    sdlk_tensor_free(&bad);
}
END_TEST

/* A record for tile `index` of a 2x30x40x3 u8 overlap grid from a video source. */
static void sample_record(sdlk_tensor_set *record, sdlk_tile_grid *grid, int64_t index)
{
    const int64_t canvas[3] = {2, 30, 40}, tile[3] = {2, 16, 16}, overlap[3] = {0, 4, 4};
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_tile_grid_overlap(grid, canvas, tile, overlap, &err), SDLK_OK);
    sdlk_tile_rect rect;
    sdlk_tile_grid_rect(grid, index, &rect);
    const int64_t shape[4] = {2, 30, 40, 3};
    sdlk_tensor full, piece;
    uint64_t state = 7;
    random_tensor(&full, SDLK_U8, 4, shape, &state);
    sdlk_tensor_init(&piece);
    ck_assert_int_eq(sdlk_tile_extract(&full, grid, index, &piece, &err), SDLK_OK);
    sdlk_tensor_free(&full);
    sdlk_tile_canvas info = {.rank = 4, .channels = 3, .dtype = SDLK_U8,
                             .source = SDLK_TILE_SOURCE_VIDEO, .fps = 14.985,
                             .group = 3, .first_frame = 6, .name = "frames"};
    sdlk_tensor_set_init(record);
    ck_assert_int_eq(sdlk_tile_record_make(grid, &rect, &info, &piece, record, &err), SDLK_OK);
    ck_assert_int_eq(piece.ndim, 0); /* moved into the record */
}

START_TEST(record_round_trip)
{
    sdlk_tensor_set record;
    sdlk_tile_grid grid, parsed_grid;
    sample_record(&record, &grid, 7);
    sdlk_tile_rect rect, expect;
    sdlk_tile_canvas info;
    const sdlk_tensor *tile = NULL;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_tile_record_parse(&record, &parsed_grid, &rect, &info, &tile, &err) == SDLK_OK,
                  "%s", err.msg);
    ck_assert(sdlk_tile_grid_equal(&grid, &parsed_grid));
    sdlk_tile_grid_rect(&grid, 7, &expect);
    ck_assert_mem_eq(&rect, &expect, sizeof rect);
    ck_assert_int_eq(info.rank, 4);
    ck_assert_int_eq(info.channels, 3);
    ck_assert_int_eq(info.dtype, SDLK_U8);
    ck_assert_int_eq(info.source, SDLK_TILE_SOURCE_VIDEO);
    ck_assert(info.fps == 14.985);
    ck_assert_int_eq(info.group, 3);
    ck_assert_int_eq(info.first_frame, 6);
    ck_assert_str_eq(info.name, "frames");
    ck_assert_ptr_eq(tile, sdlk_tensor_set_find(&record, "tile"));
    ck_assert_str_eq(sdlk_tensor_set_meta_get(&record, "sdl.tile.origin"), "0,14,12");
    ck_assert_str_eq(sdlk_tensor_set_meta_get(&record, "sdl.canvas.shape"), "2,30,40,3");
    sdlk_tensor_set_free(&record);

    /* torus records keep the reduced shift */
    const int64_t canvas[3] = {1, 8, 12}, size[3] = {1, 4, 4}, shift[3] = {0, -1, 25};
    ck_assert_int_eq(sdlk_tile_grid_torus(&grid, canvas, size, shift, &err), SDLK_OK);
    sdlk_tile_grid_rect(&grid, 2, &expect);
    sdlk_tensor piece;
    const int64_t piece_shape[3] = {4, 4, 1};
    ck_assert_int_eq(sdlk_tensor_alloc(&piece, SDLK_F32, 3, piece_shape, &err), SDLK_OK);
    sdlk_tile_canvas image = {.rank = 3, .channels = 1, .dtype = SDLK_U16,
                              .source = SDLK_TILE_SOURCE_IMAGE, .bit_depth = 12};
    sdlk_tensor_set_init(&record);
    ck_assert_int_eq(sdlk_tile_record_make(&grid, &expect, &image, &piece, &record, &err), SDLK_OK);
    ck_assert_str_eq(sdlk_tensor_set_meta_get(&record, "sdl.tile.shift"), "0,7,1");
    ck_assert_int_eq(sdlk_tile_record_parse(&record, &parsed_grid, &rect, &info, &tile, &err), SDLK_OK);
    ck_assert(sdlk_tile_grid_equal(&grid, &parsed_grid));
    ck_assert_int_eq(info.bit_depth, 12);
    ck_assert_str_eq(info.name, "");
    ck_assert(sdlk_tile_canvas_same_source(&info, &image));
    sdlk_tensor_set_free(&record);

    /* make refuses a tile whose shape does not match */
    ck_assert_int_eq(sdlk_tensor_alloc(&piece, SDLK_F32, 3, piece_shape, &err), SDLK_OK);
    image.channels = 3;
    sdlk_tensor_set_init(&record);
    ck_assert_int_eq(sdlk_tile_record_make(&grid, &expect, &image, &piece, &record, &err),
                     SDLK_ERR_ARG);
    ck_assert_int_eq(record.meta_count, 0);
    sdlk_tensor_free(&piece);
}
END_TEST

/* Copy of `src` with metadata `key` replaced by `value` (NULL: left out), sharing the
 * tensors, or with the tile replaced by `tile` when non-NULL. */
static void altered_record(const sdlk_tensor_set *src, const char *key, const char *value,
                           const sdlk_tensor *tile, sdlk_tensor_set *out)
{
    sdlk_error err = {0};
    sdlk_tensor_set_init(out);
    for (size_t i = 0; i < src->meta_count; i++) {
        const char *v = src->meta[i].value;
        if (key && strcmp(src->meta[i].key, key) == 0) {
            if (!value)
                continue;
            v = value;
        }
        ck_assert_int_eq(sdlk_tensor_set_meta_set(out, src->meta[i].key, v, &err), SDLK_OK);
    }
    sdlk_tensor copy;
    sdlk_tensor_share(&copy, tile ? tile : sdlk_tensor_set_find(src, "tile"));
    ck_assert_int_eq(sdlk_tensor_set_add(out, "tile", &copy, &err), SDLK_OK);
}

static sdlk_status parse_altered(const sdlk_tensor_set *src, const char *key, const char *value,
                                 const sdlk_tensor *tile, sdlk_error *err)
{
    sdlk_tensor_set altered;
    altered_record(src, key, value, tile, &altered);
    sdlk_tile_grid grid;
    sdlk_tile_rect rect;
    sdlk_tile_canvas info;
    const sdlk_tensor *parsed_tile;
    sdlk_error_clear(err);
    sdlk_status st = sdlk_tile_record_parse(&altered, &grid, &rect, &info, &parsed_tile, err);
    sdlk_tensor_set_free(&altered);
    return st;
}

START_TEST(record_rejects_bad_metadata)
{
    sdlk_tensor_set record;
    sdlk_tile_grid grid;
    sample_record(&record, &grid, 7);
    sdlk_error err = {0};
    ck_assert_int_eq(parse_altered(&record, NULL, NULL, NULL, &err), SDLK_OK);
    /* every key is required */
    for (size_t i = 0; i < record.meta_count; i++) {
        const char *key = record.meta[i].key;
        ck_assert_msg(parse_altered(&record, key, NULL, NULL, &err) == SDLK_ERR_FORMAT,
                      "record without %s accepted", key);
        ck_assert_msg(strstr(err.msg, key) != NULL, "message '%s' does not name %s", err.msg, key);
    }
    static const struct {
        const char *key, *value, *says;
    } bad[] = {
        {"sdl.tile.index", "-1", "sdl.tile.index"},
        {"sdl.tile.index", "+5", "sdl.tile.index"},
        {"sdl.tile.index", " 5", "sdl.tile.index"},
        {"sdl.tile.index", "5 ", "sdl.tile.index"},
        {"sdl.tile.index", "", "sdl.tile.index"},
        {"sdl.tile.index", "99999999999999999999999", "above"},
        {"sdl.tile.index", "12", "outside"},
        {"sdl.tile.count", "1,2,3", "disagree"},
        {"sdl.tile.count", "1,2", "sdl.tile.count"},
        {"sdl.tile.count", "1,2,3,4", "sdl.tile.count"},
        {"sdl.tile.size", "2,16,-16", "sdl.tile.size"},
        {"sdl.tile.size", "2,0,16", "bad grid"},
        {"sdl.tile.overlap", "0,16,4", "bad grid"},
        {"sdl.tile.overlap", "0,4,5", "disagree"},
        {"sdl.tile.shift", "0,1,0", "disagree"},
        {"sdl.tile.origin", "0,14,13", "origin"},
        {"sdl.tile.mode", "spiral", "sdl.tile.mode"},
        {"sdl.tile.mode", "torus", "bad grid"},
        {"sdl.tile.version", "2", "version"},
        {"sdl.canvas.shape", "2,30,40", "sdl.canvas.shape"},
        {"sdl.canvas.shape", "2,30,40,0", "channels"},
        {"sdl.canvas.shape", "2,30,0,3", "bad grid"},
        {"sdl.canvas.shape", "2,30,40,4", "shape"},
        {"sdl.canvas.rank", "3", "frames"},
        {"sdl.canvas.rank", "5", "rank"},
        {"sdl.canvas.dtype", "complex128", "dtype"},
        {"sdl.canvas.source", "audio", "sdl.canvas.source"},
        {"sdl.canvas.bit_depth", "8", "bit_depth"},
        {"sdl.canvas.fps", "nan", "fps"},
        {"sdl.canvas.fps", "-1", "fps"},
        {"sdl.canvas.fps", "25fps", "fps"},
        {"sdl.canvas.group", "-2", "group"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(parse_altered(&record, bad[i].key, bad[i].value, NULL, &err) == SDLK_ERR_FORMAT,
                      "%s = \"%s\" accepted (%s)", bad[i].key, bad[i].value, err.msg);
        ck_assert_msg(strstr(err.msg, bad[i].says) != NULL, "%s = \"%s\": message '%s' lacks '%s'",
                      bad[i].key, bad[i].value, err.msg, bad[i].says);
    }
    /* a canvas whose size overflows */
    ck_assert_int_eq(parse_altered(&record, "sdl.canvas.shape", "2,4294967296,4294967296,3", NULL,
                                   &err),
                     SDLK_ERR_OVERFLOW);
    ck_assert_ptr_nonnull(strstr(err.msg, "sdl.canvas.shape"));
    /* a tile tensor that does not match the metadata */
    const int64_t shapes[][4] = {{2, 16, 16, 1}, {2, 16, 15, 3}, {16, 16, 3, 0}};
    const int ranks[] = {4, 4, 3};
    for (int i = 0; i < 3; i++) {
        sdlk_tensor wrong;
        ck_assert_int_eq(sdlk_tensor_alloc(&wrong, SDLK_U8, ranks[i], shapes[i], &err), SDLK_OK);
        ck_assert_int_eq(parse_altered(&record, NULL, NULL, &wrong, &err), SDLK_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(err.msg, "tensor \"tile\" has shape"));
        sdlk_tensor_free(&wrong);
    }
    /* no tile tensor at all */
    sdlk_tensor_set no_tile;
    sdlk_tensor_set_init(&no_tile);
    for (size_t i = 0; i < record.meta_count; i++)
        sdlk_tensor_set_meta_set(&no_tile, record.meta[i].key, record.meta[i].value, &err);
    sdlk_tile_grid g;
    sdlk_tile_rect r;
    sdlk_tile_canvas c;
    const sdlk_tensor *t;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_tile_record_parse(&no_tile, &g, &r, &c, &t, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "no tensor"));
    sdlk_tensor_set_free(&no_tile);
    sdlk_tensor_set_free(&record);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tile");
    TCase *grids = tcase_create("grids");
    tcase_add_test(grids, torus_covers_every_position_once);
    tcase_add_test(grids, torus_rejects_bad_geometry);
    tcase_add_test(grids, overlap_grid_covers_with_full_tiles_inside);
    tcase_add_test(grids, overlap_grid_examples_and_errors);
    tcase_add_test(grids, torus_shift_cycles_per_axis);
    suite_add_tcase(s, grids);
    TCase *merge = tcase_create("split-merge");
    tcase_add_test(merge, extract_wraps_on_torus_and_handles_strides);
    tcase_add_test(merge, split_merge_is_identity_on_random_data);
    tcase_add_test(merge, split_merge_is_identity_on_a_photo);
    tcase_add_test(merge, feather_ramps_across_the_overlap);
    tcase_add_test(merge, merger_reports_duplicates_missing_and_bad_shapes);
    suite_add_tcase(s, merge);
    TCase *records = tcase_create("records");
    tcase_add_test(records, record_round_trip);
    tcase_add_test(records, record_rejects_bad_metadata);
    suite_add_tcase(s, records);
    return unit_run_suite(s);
}
