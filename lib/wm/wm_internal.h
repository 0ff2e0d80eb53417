/* wm_internal.h -- helpers shared by embed.c and detect.c (not part of the API). */
#ifndef SDLK_WM_INTERNAL_H
#define SDLK_WM_INTERNAL_H

#include <stdint.h>

#include "wm/wm.h"

/* Local mean and standard deviation of `src` (w x h) over a (2r+1)^2 window clipped at
 * the borders, via an integral image (O(w h) whatever r). mean or std may be NULL. */
int wm_local_stats(const float *src, int w, int h, int r, float *mean, float *std);

/* 8x8 orthonormal DCT-II of a block read with row stride `stride`: out[u][v]. */
void wm_dct8x8(const float dct[8][8], const float *in, int stride, float out[8][8]);
/* Inverse: out (row stride `stride`) = sum_uv in[u][v] basis_u(y) basis_v(x). */
void wm_idct8x8(const float dct[8][8], const float in[8][8], float *out, int stride);

/* The T x T spatial tile pattern of the 160 bit signs, scaled to unit RMS. */
void wm_tile_pattern(const sdlk_wm_key *key, const int8_t signs[SDLK_WM_GROUPS], float *tile);

/* Luma of 8-bit rows exactly as sdlk_image_luma computes it (the read stage converts
 * rows as the decoder hands them over, so no decoded image is kept). */
typedef struct wm_luma_tables {
    double red[256], green[256], blue[256];
} wm_luma_tables;
void wm_luma_tables_init(wm_luma_tables *lt);
/* `width` pixels of `channels` (1..4) interleaved u8 samples -> out[width]. */
void wm_luma_row_u8(const wm_luma_tables *lt, const uint8_t *row, int width, int channels,
                    float *out);
/* The same for u16 samples (in 8-bit units, as sdlk_image_luma scales them). */
void wm_luma_row_u16(const uint16_t *row, int width, int channels, float *out);

/* ---- detection internals shared by the CPU path (detect.c) and the GPU path
 * (engine.c -> kernels/wm.cu), so that both compute with the same constants and
 * tables. */

/* Contrast normalisation before folding: (Y - local mean) / (local std + floor) over a
 * (2 r + 1)^2 window, and the clip of the equalised band (see detect.c for why). */
#define WM_WHITEN_RADIUS 1
#define WM_WHITEN_FLOOR 2.0f
#define WM_BAND_CLIP 2.5f

/* Whether band coefficient (u, v) of the T-pixel tile lies at or above the Nyquist
 * frequency of an image whose tile period is P (a resize by P / T): its frequency along
 * the axis of max(u, v) is max(u, v) / 16 cycles per tile pixel, T / P times more per
 * image pixel. A downscale low-passes such a coefficient away (a 0.5 resize leaves
 * (0, 4) and (4, 0) at exactly Nyquist: on the bench photos 0.15-0.4 of their equalised
 * band is mark, against 0.5-1 for the other ten), so locate gives it weight 0 at that
 * period instead of equalising picture noise up to the weight of the coefficients that
 * carry the mark. The weights depend on the period only, never on the key's pilots, so the
 * pilot agreement stays Binomial(64, 1/2) on unmarked images. kernels/wm.cu
 * (wm_equalize) repeats this test. */
static inline int wm_band_above_nyquist(int u, int v, int tile, int period)
{
    int m = u > v ? u : v;
    return m * tile >= 8 * period;
}

/* The contrast normalisation itself: row y of (luma - local mean) / (local std +
 * floor_add) over the (2 r + 1)^2 window clipped at the borders, the mean and std bit for
 * bit those of wm_local_stats, streamed over rows (whiten.c says why): `sink` receives
 * rows y = 0 .. h - 1 in order, each `w` floats valid until it returns. 0, or -1 when out
 * of memory (then sink was never called). */
typedef void (*wm_row_sink)(void *ctx, int y, const float *row);
int wm_whiten(const float *luma, int w, int h, int r, float floor_add, wm_row_sink sink,
              void *sink_ctx);

/* One output row for the row kernels: the integral rows of the window's top (y0) and
 * bottom (y1) edges for both sums, the luma and output rows, and the window size. */
typedef struct wm_whiten_rows {
    const double *s1_top, *s1_bottom, *s2_top, *s2_bottom;
    const float *luma;
    float *out;
    int radius;
    double count;      /* pixels in a whole window of this row: (y1 - y0) (2 r + 1) */
    float floor_add;
} wm_whiten_rows;
/* Pixels [x_begin, x_end) of a row, all with whole windows (r <= x < w - r). The AVX2
 * twin computes the same bits; call it only when the CPU has AVX2. */
void wm_whiten_row_portable(const wm_whiten_rows *rows, int x_begin, int x_end);
void wm_whiten_row_avx2(const wm_whiten_rows *rows, int x_begin, int x_end);

/* max over i < n of popcount(nonzero[i] & ~(positive[i] ^ pilots)) (0 when n = 0): the
 * best pilot agreement of the pilot vector `pilots` over a search's hypotheses
 * (sdlk_wm_decoy_p). wm_best_agreement picks the AVX2 twin, the popcnt build or the
 * portable loop at run time; call the AVX2 one only when __builtin_cpu_supports("avx2"). */
int wm_best_agreement(const uint64_t *positive, const uint64_t *nonzero, int64_t n,
                      uint64_t pilots);
int wm_best_agreement_avx2(const uint64_t *positive, const uint64_t *nonzero, int64_t n,
                           uint64_t pilots);
/* The plain loop of both, from a running best `best`: the portable build, and the AVX2
 * kernel's tail. Inlined, so that a caller compiled for popcnt gets the instruction. */
static inline __attribute__((always_inline)) int
wm_best_agreement_loop(const uint64_t *positive, const uint64_t *nonzero, int64_t n,
                       uint64_t pilots, int best)
{
    for (int64_t i = 0; i < n; i++) {
        int agree = __builtin_popcountll(nonzero[i] & ~(positive[i] ^ pilots));
        best = agree > best ? agree : best;
    }
    return best;
}

/* One axis of a cyclic resampling from period in_n to out_n with a tent kernel whose
 * support grows with the reduction (plain linear interpolation when enlarging): for
 * output i, the weights over input taps [first[i], first[i] + taps). */
typedef struct wm_resample_axis {
    int taps;
    int *first;     /* [out_n] */
    float *weight;  /* [out_n][taps] */
} wm_resample_axis;
/* 0, or -1 when out of memory (then free it anyway). */
int wm_resample_axis_init(wm_resample_axis *ax, int in_n, int out_n);
void wm_resample_axis_free(wm_resample_axis *ax);

/* What the locate search covers for one image: the fold period of each scale (0 when it
 * does not fit), the hypotheses charged to the p-value, and the early stop. */
typedef struct wm_search_plan {
    int period[SDLK_WM_MAX_SCALES];
    int usable;                         /* scales that fit */
    int max_period;
    int64_t hypotheses;                 /* usable x T^2 */
    /* stop[k]: after a scale, a best hypothesis with k agreeing pilots ends the search
     * (never when params->exhaustive) */
    uint8_t stop[SDLK_WM_PILOT_BITS + 1];
} wm_search_plan;
/* The plan for a w x h image, or the error sdlk_wm_locate reports (too small, bad
 * scales). */
sdlk_status wm_search_plan_make(int w, int h, const sdlk_wm_key *key,
                                const sdlk_wm_detect_params *params, wm_search_plan *plan,
                                sdlk_error *err);
/* The fold period of `scale` for tile T. */
int wm_scale_period(int tile, double scale);

/* Give `sync` room for the pilot signs of `hypotheses` hypotheses (one block:
 * pilot_positive owns it, pilot_nonzero is its second half; searched = 0) when
 * params->decoys > 0, else leave both NULL. 0, or -1 when out of memory. */
int wm_sync_alloc_signs(sdlk_wm_sync *sync, const sdlk_wm_detect_params *params,
                        int64_t hypotheses);

#endif
