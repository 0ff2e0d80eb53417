/* wm.cu -- the watermark detector's locate + extract stages on the GPU (see wm_cuda.h).
 *
 * Why these stages: per image, locate is nearly all of detection's arithmetic (on a
 * 512x512 photo about 7 ms of local statistics and 9 ms of search per resize factor on
 * one CPU core; 85 ms of statistics on 1080p), extract is 768 multiply-adds, decide is
 * a few microseconds of libfec. Locate is data parallel over pixels (statistics, fold)
 * and over the 64 x (T/8)^2 hypotheses of each resize factor (band DCTs, pilot search);
 * extract rides along so that only the band and the soft bits come back.
 *
 * Exactness: every kernel repeats the CPU's operations in the CPU's order (a sequential
 * loop where the CPU has one: the row and column sums of the integral images, the fold
 * of one cell, one coefficient's energy, one group's chips), with round-to-nearest
 * intrinsics so that nvcc cannot fuse a multiply and an add. Parallelism comes from
 * running many such sequences at once (rows, columns, cells, hypotheses, images), never
 * from splitting one, so no reduction order differs from the CPU's. The one parallel
 * reduction, the choice of the best hypothesis, compares (agree, corr, position) with
 * the CPU's rule -- more agreeing pilots, then larger correlation, then the earlier
 * hypothesis in the CPU's search order -- which is a total order, so any tree gives the
 * CPU's choice.
 *
 * Layout of one chunk on the device (one arena, offsets aligned to 256 bytes): per image
 * its geometry and search state, the luma (whitened in place), the two integral images
 * (double, (w+1) x (h+1)), and per-image scratch for one scale at a time: the fold (P x P,
 * P the largest period), the resampling scratch (P x T), the tile (T x T), the band
 * coefficients of the 64 phases (64 x (T/8)^2 x 12), the scores of every hypothesis,
 * then the kept band and the soft bits, which come back through a pinned host arena.
 */
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <cuda_runtime.h>

#include "kernels/device_util.h"
#include "kernels/wm_cuda.h"

namespace {

constexpr int PHASES = 64; /* 8 x 8 sub-block offsets */
constexpr int PILOTS = SDLK_CUDA_WM_PILOTS;
constexpr int GROUPS = SDLK_CUDA_WM_GROUPS;
constexpr int COEFS = SDLK_CUDA_WM_COEFS;
constexpr int REDUCE_THREADS = 256;
constexpr int EXTRACT_THREADS = 192; /* >= GROUPS */
constexpr size_t ALIGN = 256;

/* Per image, device side. */
struct wm_geom {
    size_t luma_offset;     /* floats into the luma area */
    size_t integral_offset; /* doubles into each integral area */
    int width, height;
    uint32_t usable_mask;
    uint8_t stop[PILOTS + 1];
};

/* Per image search state, updated by wm_reduce after each scale. */
struct wm_state {
    int active;       /* 0 once the early stop fired */
    int best_agree;   /* -1 before any hypothesis */
    double best_corr;
    int best_scale, best_phase, best_shift;
};

struct wm_score {
    int agree;
    double corr;
};

struct wm_pilot_chip {
    uint16_t by, bx; /* pattern block */
    uint16_t coef;   /* index in the band */
    float sign;
};

/* Everything small the kernels read, passed by value (kernel parameter space). */
struct wm_params {
    int tile, nbs, nblocks, chips;
    int whiten_radius;
    float whiten_floor, band_clip;
    float dct[64];
    int coef_u[COEFS], coef_v[COEFS];
    float pilot[PILOTS];
};

/* Per-image strides of the per-scale scratch, in elements. */
struct wm_strides {
    size_t fold, tmp, tile, coefs, scores, band, signs;
};

__device__ __forceinline__ int wrap_index(int i, int n)
{
    i %= n;
    return i < 0 ? i + n : i;
}

__device__ __forceinline__ bool scale_live(const wm_geom &g, const wm_state &s, int scale)
{
    return ((g.usable_mask >> scale) & 1u) && s.active;
}

__global__ void wm_init_state(wm_state *state, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        state[i].active = 1;
        state[i].best_agree = -1;
        state[i].best_corr = -INFINITY;
        state[i].best_scale = -1;
        state[i].best_phase = 0;
        state[i].best_shift = 0;
    }
}

/* Row y of both integral images (y = 0..h): row 0 is zero; row y + 1 first holds the
 * running sums of luma row y (wm_col_scan then adds the rows above), exactly as
 * wm_local_stats' row1/row2. One thread per row: the sums are sequential. */
__global__ void wm_row_prefix(const wm_geom *geom, const float *luma, double *s1, double *s2)
{
    const wm_geom g = geom[blockIdx.y];
    int y = blockIdx.x * blockDim.x + threadIdx.x;
    if (y > g.height)
        return;
    size_t iw = (size_t)g.width + 1;
    double *r1 = s1 + g.integral_offset + (size_t)y * iw;
    double *r2 = s2 + g.integral_offset + (size_t)y * iw;
    r1[0] = 0.0;
    r2[0] = 0.0;
    if (y == 0) {
        for (int x = 0; x < g.width; x++) {
            r1[x + 1] = 0.0;
            r2[x + 1] = 0.0;
        }
        return;
    }
    const float *src = luma + g.luma_offset + (size_t)(y - 1) * g.width;
    double row1 = 0.0, row2 = 0.0;
    for (int x = 0; x < g.width; x++) {
        double v = (double)src[x];
        row1 = __dadd_rn(row1, v);
        row2 = __dadd_rn(row2, __dmul_rn(v, v));
        r1[x + 1] = row1;
        r2[x + 1] = row2;
    }
}

/* Column x of both integral images: s[y + 1][x] = s[y][x] + rowsum[y][x], y ascending. */
__global__ void wm_col_scan(const wm_geom *geom, double *s1, double *s2)
{
    const wm_geom g = geom[blockIdx.y];
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    if (x > g.width)
        return;
    size_t iw = (size_t)g.width + 1;
    double *c1 = s1 + g.integral_offset + x;
    double *c2 = s2 + g.integral_offset + x;
    double above1 = c1[0], above2 = c2[0];
    for (int y = 1; y <= g.height; y++) {
        above1 = __dadd_rn(above1, c1[(size_t)y * iw]);
        above2 = __dadd_rn(above2, c2[(size_t)y * iw]);
        c1[(size_t)y * iw] = above1;
        c2[(size_t)y * iw] = above2;
    }
}

/* (Y - local mean) / (local std + floor), in place over the luma: wm_local_stats' box
 * statistics followed by sdlk_wm_locate's normalisation. */
__global__ void wm_whiten(const wm_geom *geom, float *luma, const double *s1, const double *s2,
                          int radius, float floor_add)
{
    const wm_geom g = geom[blockIdx.y];
    const int w = g.width, h = g.height;
    const size_t n = (size_t)w * h, iw = (size_t)w + 1;
    const double *i1 = s1 + g.integral_offset, *i2 = s2 + g.integral_offset;
    float *plane = luma + g.luma_offset;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int y = (int)(i / (size_t)w), x = (int)(i % (size_t)w);
        int y0 = y - radius < 0 ? 0 : y - radius, y1 = y + radius + 1 > h ? h : y + radius + 1;
        int x0 = x - radius < 0 ? 0 : x - radius, x1 = x + radius + 1 > w ? w : x + radius + 1;
        double count = __dmul_rn((double)(y1 - y0), (double)(x1 - x0));
        size_t a11 = (size_t)y1 * iw + x1, a01 = (size_t)y0 * iw + x1;
        size_t a10 = (size_t)y1 * iw + x0, a00 = (size_t)y0 * iw + x0;
        double a = __dadd_rn(__dsub_rn(__dsub_rn(i1[a11], i1[a01]), i1[a10]), i1[a00]);
        double b = __dadd_rn(__dsub_rn(__dsub_rn(i2[a11], i2[a01]), i2[a10]), i2[a00]);
        double m = __ddiv_rn(a, count);
        double var = __dsub_rn(__ddiv_rn(b, count), __dmul_rn(m, m));
        float mean = __double2float_rn(m);
        float sd = __double2float_rn(__dsqrt_rn(var > 0.0 ? var : 0.0));
        plane[i] = __fdiv_rn(__fsub_rn(plane[i], mean), __fadd_rn(sd, floor_add));
    }
}

/* Fold modulo the period: cell (fy, fx) sums the whitened pixels at that phase in
 * row-major order, the order of the CPU's fold loop. */
__global__ void wm_fold(const wm_geom *geom, const wm_state *state, int scale, const float *luma,
                        float *fold, size_t fold_stride, int period)
{
    const int img = blockIdx.y;
    const wm_geom g = geom[img];
    if (!scale_live(g, state[img], scale))
        return;
    int cell = blockIdx.x * blockDim.x + threadIdx.x;
    if (cell >= period * period)
        return;
    int fy = cell / period, fx = cell % period;
    const float *plane = luma + g.luma_offset;
    float acc = 0.f;
    for (int y = fy; y < g.height; y += period) {
        const float *row = plane + (size_t)y * g.width;
        for (int x = fx; x < g.width; x += period)
            acc = __fadd_rn(acc, row[x]);
    }
    fold[img * fold_stride + cell] = acc;
}

/* Cyclic resampling, rows: tmp (P x T) from fold (P x P). */
__global__ void wm_resample_rows(const wm_geom *geom, const wm_state *state, int scale,
                                 const float *fold, size_t fold_stride, float *tmp,
                                 size_t tmp_stride, int period, int tile, int taps,
                                 const int *first, const float *weight)
{
    const int img = blockIdx.y;
    if (!scale_live(geom[img], state[img], scale))
        return;
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= period * tile)
        return;
    int y = idx / tile, x = idx % tile;
    const float *src = fold + img * fold_stride + (size_t)y * period;
    float s = 0.f;
    for (int k = 0; k < taps; k++)
        s = __fadd_rn(s, __fmul_rn(weight[x * taps + k], src[wrap_index(first[x] + k, period)]));
    tmp[img * tmp_stride + idx] = s;
}

/* Cyclic resampling, columns: tile (T x T) from tmp (P x T). */
__global__ void wm_resample_cols(const wm_geom *geom, const wm_state *state, int scale,
                                 const float *tmp, size_t tmp_stride, float *tiles,
                                 size_t tile_stride, int period, int tile, int taps,
                                 const int *first, const float *weight)
{
    const int img = blockIdx.y;
    if (!scale_live(geom[img], state[img], scale))
        return;
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= tile * tile)
        return;
    int y = idx / tile, x = idx % tile;
    const float *src = tmp + img * tmp_stride;
    float s = 0.f;
    for (int k = 0; k < taps; k++)
        s = __fadd_rn(s, __fmul_rn(weight[y * taps + k],
                                   src[(size_t)wrap_index(first[y] + k, period) * tile + x]));
    tiles[img * tile_stride + idx] = s;
}

/* The 12 band coefficients of block b of the tile cyclically shifted by phase
 * (ry, rx): detect.c's tile_band before equalisation. One thread per (phase, block). */
__global__ void wm_band(const wm_geom *geom, const wm_state *state, int scale, const float *tiles,
                        size_t tile_stride, float *coefs, size_t coef_stride, wm_params p)
{
    const int img = blockIdx.y;
    if (!scale_live(geom[img], state[img], scale))
        return;
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= PHASES * p.nblocks)
        return;
    int phase = idx / p.nblocks, b = idx % p.nblocks;
    int ry = phase / 8, rx = phase % 8, by = b / p.nbs, bx = b % p.nbs;
    const int t = p.tile;
    const float *tile = tiles + img * tile_stride;
    float block[64];
    for (int i = 0; i < 8; i++) {
        const float *row = tile + (size_t)((by * 8 + ry + i) % t) * t;
        for (int j = 0; j < 8; j++)
            block[i * 8 + j] = row[(bx * 8 + rx + j) % t];
    }
    float rows[8][5];
    for (int y = 0; y < 8; y++)
        for (int v = 0; v < 5; v++) {
            float acc = 0.f;
            for (int x = 0; x < 8; x++)
                acc = __fadd_rn(acc, __fmul_rn(block[y * 8 + x], p.dct[v * 8 + x]));
            rows[y][v] = acc;
        }
    float *dst = coefs + img * coef_stride + ((size_t)phase * p.nblocks + b) * COEFS;
    for (int c = 0; c < COEFS; c++) {
        int u = p.coef_u[c], v = p.coef_v[c];
        float acc = 0.f;
        for (int y = 0; y < 8; y++)
            acc = __fadd_rn(acc, __fmul_rn(p.dct[u * 8 + y], rows[y][v]));
        dst[c] = acc;
    }
}

/* Equalise coefficient c of one phase's band: divide by its RMS over the blocks (the
 * energy summed in block order, in double) and clip; weight 0 for a coefficient at or
 * above the Nyquist frequency of the resized image (fold period `period`:
 * wm_band_above_nyquist in lib/wm/wm_internal.h, the same integer test). One thread
 * per (phase, c). */
__global__ void wm_equalize(const wm_geom *geom, const wm_state *state, int scale, float *coefs,
                            size_t coef_stride, int period, wm_params p)
{
    const int img = blockIdx.y;
    if (!scale_live(geom[img], state[img], scale))
        return;
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= PHASES * COEFS)
        return;
    int phase = idx / COEFS, c = idx % COEFS;
    float *band = coefs + img * coef_stride + (size_t)phase * p.nblocks * COEFS;
    double energy = 0.0;
    for (int b = 0; b < p.nblocks; b++) {
        double v = (double)band[(size_t)b * COEFS + c];
        energy = __dadd_rn(energy, __dmul_rn(v, v));
    }
    float inv = energy > 0.0
                    ? __double2float_rn(__ddiv_rn(1.0, __dsqrt_rn(__ddiv_rn(energy, (double)p.nblocks))))
                    : 0.f;
    const int cu = p.coef_u[c], cv = p.coef_v[c];
    if ((cu > cv ? cu : cv) * p.tile >= 8 * period)
        inv = 0.f;
    for (int b = 0; b < p.nblocks; b++) {
        float v = __fmul_rn(band[(size_t)b * COEFS + c], inv);
        band[(size_t)b * COEFS + c] = v > p.band_clip ? p.band_clip : v < -p.band_clip ? -p.band_clip : v;
    }
}

/* Pilot agreement and correlation of every hypothesis (phase, block shift): detect.c's
 * search_shifts. The pilot chips come grouped by pilot, each group in chip order, so a
 * group's sum is the CPU's sequence of additions. */
__global__ void wm_search(const wm_geom *geom, const wm_state *state, int scale,
                          const float *coefs, size_t coef_stride, wm_score *scores,
                          size_t score_stride, uint64_t *signs, size_t sign_stride,
                          const wm_pilot_chip *chips, const int *pilot_start, wm_params p)
{
    const int img = blockIdx.y;
    if (!scale_live(geom[img], state[img], scale))
        return;
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= PHASES * p.nblocks)
        return;
    int phase = idx / p.nblocks, shift = idx % p.nblocks;
    int ay = shift / p.nbs, ax = shift % p.nbs;
    const float *band = coefs + img * coef_stride + (size_t)phase * p.nblocks * COEFS;
    int agree = 0;
    double corr = 0.0;
    uint64_t positive = 0, nonzero = 0;
    for (int g = 0; g < PILOTS; g++) {
        float s = 0.f;
        for (int j = pilot_start[g]; j < pilot_start[g + 1]; j++) {
            const wm_pilot_chip pc = chips[j];
            int blk = ((pc.by + ay) % p.nbs) * p.nbs + (pc.bx + ax) % p.nbs;
            s = __fadd_rn(s, __fmul_rn(pc.sign, band[(size_t)blk * COEFS + pc.coef]));
        }
        float v = __fmul_rn(s, p.pilot[g]);
        agree += v > 0.f;
        corr = __dadd_rn(corr, (double)v);
        positive |= (uint64_t)(s > 0.f) << g;
        nonzero |= (uint64_t)(s != 0.f) << g;
    }
    scores[img * score_stride + idx] = wm_score{agree, corr};
    if (signs) { /* per image [scale][positive, nonzero][hypothesis] */
        const size_t hyps = (size_t)PHASES * p.nblocks;
        uint64_t *mine = signs + img * sign_stride + (size_t)scale * 2 * hyps;
        mine[idx] = positive;
        mine[hyps + idx] = nonzero;
    }
}

/* (agree, corr, index) a beats b: the CPU's strict improvement, earlier index on ties. */
__device__ __forceinline__ bool beats(int a_agree, double a_corr, int a_index, int b_agree,
                                      double b_corr, int b_index)
{
    if (a_agree != b_agree)
        return a_agree > b_agree;
    if (a_corr != b_corr)
        return a_corr > b_corr;
    return a_index < b_index;
}

/* One block per image: the scale's best hypothesis, the running best across scales
 * (replaced only by a strictly better one), the kept band, the early stop. */
__global__ void wm_reduce(const wm_geom *geom, wm_state *state, int scale, const wm_score *scores,
                          size_t score_stride, const float *coefs, size_t coef_stride,
                          float *best_band, size_t band_stride, wm_params p)
{
    const int img = blockIdx.x;
    const wm_geom g = geom[img];
    if (!scale_live(g, state[img], scale))
        return; /* uniform over the block: no thread reaches a barrier */
    __shared__ int s_agree[REDUCE_THREADS];
    __shared__ double s_corr[REDUCE_THREADS];
    __shared__ int s_index[REDUCE_THREADS];
    __shared__ int s_improved;
    const int n_hyp = PHASES * p.nblocks;
    const wm_score *sc = scores + img * score_stride;
    int best_agree = -1, best_index = INT_MAX;
    double best_corr = -INFINITY;
    for (int i = threadIdx.x; i < n_hyp; i += blockDim.x) {
        wm_score h = sc[i];
        if (beats(h.agree, h.corr, i, best_agree, best_corr, best_index)) {
            best_agree = h.agree;
            best_corr = h.corr;
            best_index = i;
        }
    }
    s_agree[threadIdx.x] = best_agree;
    s_corr[threadIdx.x] = best_corr;
    s_index[threadIdx.x] = best_index;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            int o = threadIdx.x + half;
            if (beats(s_agree[o], s_corr[o], s_index[o], s_agree[threadIdx.x], s_corr[threadIdx.x],
                      s_index[threadIdx.x])) {
                s_agree[threadIdx.x] = s_agree[o];
                s_corr[threadIdx.x] = s_corr[o];
                s_index[threadIdx.x] = s_index[o];
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        wm_state st = state[img];
        int improved = s_agree[0] > st.best_agree ||
                       (s_agree[0] == st.best_agree && s_corr[0] > st.best_corr);
        if (improved) {
            st.best_agree = s_agree[0];
            st.best_corr = s_corr[0];
            st.best_scale = scale;
            st.best_phase = s_index[0] / p.nblocks;
            st.best_shift = s_index[0] % p.nblocks;
        }
        if (g.stop[st.best_agree])
            st.active = 0;
        state[img] = st;
        s_improved = improved;
    }
    __syncthreads();
    if (!s_improved)
        return;
    /* The band at the kept hypothesis in pattern block order: pattern block (by, bx) is
     * folded block ((by + ay) % nbs, (bx + ax) % nbs) of the phase's band. */
    const int phase = state[img].best_phase, shift = state[img].best_shift;
    const int ay = shift / p.nbs, ax = shift % p.nbs;
    const float *band = coefs + img * coef_stride + (size_t)phase * p.nblocks * COEFS;
    float *dst = best_band + img * band_stride;
    for (int e = threadIdx.x; e < p.nblocks * COEFS; e += blockDim.x) {
        int b = e / COEFS, c = e % COEFS;
        int src_blk = ((b / p.nbs + ay) % p.nbs) * p.nbs + (b % p.nbs + ax) % p.nbs;
        dst[e] = band[(size_t)src_blk * COEFS + c];
    }
}

/* Soft bits from the kept band: detect.c's sdlk_wm_extract_soft, one thread per group
 * (its chips in chip order), the energy by one thread in chip order. */
__global__ void wm_extract(const wm_state *state, const float *best_band, size_t band_stride,
                           const int *group_chips, const int *group_start,
                           const int8_t *chip_sign, int chips, float *soft)
{
    const int img = blockIdx.x;
    if (state[img].best_scale < 0)
        return; /* uniform over the block */
    const float *band = best_band + img * band_stride;
    __shared__ double s_energy;
    if (threadIdx.x == 0) {
        double energy = 0.0;
        for (int c = 0; c < chips; c++) {
            double v = (double)band[c];
            energy = __dadd_rn(energy, __dmul_rn(v, v));
        }
        s_energy = energy;
    }
    __syncthreads();
    int g = threadIdx.x;
    if (g >= GROUPS)
        return;
    double acc = 0.0;
    for (int j = group_start[g]; j < group_start[g + 1]; j++) {
        int c = group_chips[j];
        acc = __dadd_rn(acc, (double)__fmul_rn((float)chip_sign[c], band[c]));
    }
    double per_group = __ddiv_rn((double)chips, (double)GROUPS);
    double noise = __dsqrt_rn(__dmul_rn(__ddiv_rn(s_energy, (double)chips), per_group));
    soft[(size_t)img * GROUPS + g] = noise > 0.0 ? __double2float_rn(__ddiv_rn(acc, noise)) : 0.f;
}

size_t align_up(size_t n)
{
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

unsigned blocks_for(size_t work, unsigned threads)
{
    size_t b = (work + threads - 1) / threads;
    return (unsigned)(b ? b : 1);
}

} /* namespace */

/* ---- the handle ---------------------------------------------------------------------- */

struct sdlk_cuda_wm {
    cudaStream_t stream;
    wm_params params;
    int n_pilot_chips;
    /* key tables on the device */
    wm_pilot_chip *d_pilot_chips;
    int *d_pilot_start;   /* [65] */
    int *d_group_chips;   /* [chips] */
    int *d_group_start;   /* [161] */
    int8_t *d_chip_sign;  /* [chips] */
    /* grow-only arenas */
    sdlk_grow_buffer<char> d_arena;
    sdlk_grow_buffer<char, true> h_arena;
};

namespace {

/* Where each area of a chunk lives in the arenas. */
struct chunk_layout {
    int n;
    int max_period;
    size_t total_pixels, total_integral;
    wm_strides stride;
    /* device offsets */
    size_t geom, state, luma, s1, s2, fold, tmp, tile, coefs, scores, band, soft, signs, axes;
    size_t axis_first[SDLK_CUDA_WM_MAX_SCALES], axis_weight[SDLK_CUDA_WM_MAX_SCALES];
    size_t device_bytes;
    bool want_signs;  /* some image asked for its hypotheses' pilot signs */
    /* pinned host offsets */
    size_t h_geom, h_state, h_band, h_soft, h_signs, host_bytes;
};

void plan_chunk(const sdlk_cuda_wm *wm, const sdlk_cuda_wm_scale *scales, int n_scales,
                const sdlk_cuda_wm_image *images, int n, chunk_layout *L)
{
    const wm_params &p = wm->params;
    memset(L, 0, sizeof *L);
    L->n = n;
    uint32_t any_usable = 0;
    for (int i = 0; i < n; i++) {
        L->total_pixels += (size_t)images[i].width * images[i].height;
        L->total_integral += ((size_t)images[i].width + 1) * ((size_t)images[i].height + 1);
        any_usable |= images[i].usable_mask;
    }
    L->max_period = p.tile;
    for (int s = 0; s < n_scales; s++)
        if (((any_usable >> s) & 1u) && scales[s].period > L->max_period)
            L->max_period = scales[s].period;
    size_t P = (size_t)L->max_period, T = (size_t)p.tile, nb = (size_t)p.nblocks;
    L->stride.fold = P * P;
    L->stride.tmp = P * T;
    L->stride.tile = T * T;
    L->stride.coefs = (size_t)PHASES * nb * COEFS;
    L->stride.scores = (size_t)PHASES * nb;
    L->stride.band = (size_t)p.chips;
    for (int i = 0; i < n; i++)
        L->want_signs = L->want_signs || images[i].pilot_positive;
    L->stride.signs = L->want_signs ? (size_t)n_scales * 2 * PHASES * nb : 0;
    size_t at = 0;
    auto take = [&at](size_t bytes) {
        size_t here = at;
        at += align_up(bytes);
        return here;
    };
    size_t N = (size_t)n;
    L->geom = take(N * sizeof(wm_geom));
    L->state = take(N * sizeof(wm_state));
    L->luma = take(L->total_pixels * sizeof(float));
    L->s1 = take(L->total_integral * sizeof(double));
    L->s2 = take(L->total_integral * sizeof(double));
    L->fold = take(N * L->stride.fold * sizeof(float));
    L->tmp = take(N * L->stride.tmp * sizeof(float));
    L->tile = take(N * L->stride.tile * sizeof(float));
    L->coefs = take(N * L->stride.coefs * sizeof(float));
    L->scores = take(N * L->stride.scores * sizeof(wm_score));
    L->band = take(N * L->stride.band * sizeof(float));
    L->soft = take(N * GROUPS * sizeof(float));
    L->signs = take(N * L->stride.signs * sizeof(uint64_t));
    for (int s = 0; s < n_scales; s++) {
        if (scales[s].taps > 0) {
            L->axis_first[s] = take(T * sizeof(int));
            L->axis_weight[s] = take(T * (size_t)scales[s].taps * sizeof(float));
        }
    }
    L->device_bytes = at;
    at = 0;
    L->h_geom = take(N * sizeof(wm_geom));
    L->h_state = take(N * sizeof(wm_state));
    L->h_band = take(N * L->stride.band * sizeof(float));
    L->h_soft = take(N * GROUPS * sizeof(float));
    L->h_signs = take(N * L->stride.signs * sizeof(uint64_t));
    L->host_bytes = at;
}

#define WM_LAUNCHED(name)                                                                    \
    do {                                                                                     \
        sdlk_status launch_st = sdlk_cuda_check(cudaGetLastError(), "kernel " name, err);   \
        if (launch_st)                                                                       \
            return launch_st;                                                                \
    } while (0)

#define WM_CHECK(call, what)                                                                 \
    do {                                                                                     \
        sdlk_status call_st = sdlk_cuda_check((call), what, err);                            \
        if (call_st)                                                                         \
            return call_st;                                                                  \
    } while (0)

/* Stage 2 (statistics + normalisation) for a whole chunk. */
sdlk_status enqueue_whiten(sdlk_cuda_wm *wm, const chunk_layout &L, const sdlk_cuda_wm_image *images,
                           wm_geom *d_geom, float *d_luma, double *d_s1, double *d_s2,
                           sdlk_error *err)
{
    int max_w = 0, max_h = 0;
    size_t max_px = 0;
    for (int i = 0; i < L.n; i++) {
        max_w = images[i].width > max_w ? images[i].width : max_w;
        max_h = images[i].height > max_h ? images[i].height : max_h;
        size_t px = (size_t)images[i].width * images[i].height;
        max_px = px > max_px ? px : max_px;
    }
    cudaStream_t s = wm->stream;
    dim3 rows(blocks_for((size_t)max_h + 1, 64), (unsigned)L.n);
    wm_row_prefix<<<rows, 64, 0, s>>>(d_geom, d_luma, d_s1, d_s2);
    WM_LAUNCHED("wm_row_prefix");
    dim3 cols(blocks_for((size_t)max_w + 1, 128), (unsigned)L.n);
    wm_col_scan<<<cols, 128, 0, s>>>(d_geom, d_s1, d_s2);
    WM_LAUNCHED("wm_col_scan");
    unsigned whiten_blocks = blocks_for(max_px, 256);
    dim3 whiten(whiten_blocks > 2048 ? 2048 : whiten_blocks, (unsigned)L.n);
    wm_whiten<<<whiten, 256, 0, s>>>(d_geom, d_luma, d_s1, d_s2, wm->params.whiten_radius,
                                     wm->params.whiten_floor);
    WM_LAUNCHED("wm_whiten");
    return SDLK_OK;
}

/* One resize factor of the search for every image of the chunk that still searches. */
sdlk_status enqueue_scale(sdlk_cuda_wm *wm, const chunk_layout &L, int scale,
                          const sdlk_cuda_wm_scale &sc, char *base, sdlk_error *err)
{
    const wm_params &p = wm->params;
    cudaStream_t s = wm->stream;
    const unsigned n = (unsigned)L.n;
    wm_geom *geom = (wm_geom *)(base + L.geom);
    wm_state *state = (wm_state *)(base + L.state);
    float *luma = (float *)(base + L.luma);
    float *fold = (float *)(base + L.fold);
    float *tmp = (float *)(base + L.tmp);
    float *tile = (float *)(base + L.tile);
    float *coefs = (float *)(base + L.coefs);
    wm_score *scores = (wm_score *)(base + L.scores);
    float *band = (float *)(base + L.band);
    const int P = sc.period, T = p.tile;

    /* when P == T the fold is the tile (the CPU copies it; nothing to resample) */
    float *tiles = sc.taps > 0 ? tile : fold;
    size_t tiles_stride = sc.taps > 0 ? L.stride.tile : L.stride.fold;
    wm_fold<<<dim3(blocks_for((size_t)P * P, 256), n), 256, 0, s>>>(geom, state, scale, luma, fold,
                                                                     L.stride.fold, P);
    WM_LAUNCHED("wm_fold");
    if (sc.taps > 0) {
        const int *first = (const int *)(base + L.axis_first[scale]);
        const float *weight = (const float *)(base + L.axis_weight[scale]);
        wm_resample_rows<<<dim3(blocks_for((size_t)P * T, 256), n), 256, 0, s>>>(
            geom, state, scale, fold, L.stride.fold, tmp, L.stride.tmp, P, T, sc.taps, first, weight);
        WM_LAUNCHED("wm_resample_rows");
        wm_resample_cols<<<dim3(blocks_for((size_t)T * T, 256), n), 256, 0, s>>>(
            geom, state, scale, tmp, L.stride.tmp, tile, L.stride.tile, P, T, sc.taps, first, weight);
        WM_LAUNCHED("wm_resample_cols");
    }
    size_t hyps = (size_t)PHASES * p.nblocks;
    wm_band<<<dim3(blocks_for(hyps, 128), n), 128, 0, s>>>(geom, state, scale, tiles, tiles_stride,
                                                           coefs, L.stride.coefs, p);
    WM_LAUNCHED("wm_band");
    wm_equalize<<<dim3(blocks_for((size_t)PHASES * COEFS, 128), n), 128, 0, s>>>(
        geom, state, scale, coefs, L.stride.coefs, P, p);
    WM_LAUNCHED("wm_equalize");
    uint64_t *signs = L.want_signs ? (uint64_t *)(base + L.signs) : nullptr;
    wm_search<<<dim3(blocks_for(hyps, 128), n), 128, 0, s>>>(geom, state, scale, coefs, L.stride.coefs,
                                                             scores, L.stride.scores, signs,
                                                             L.stride.signs, wm->d_pilot_chips,
                                                             wm->d_pilot_start, p);
    WM_LAUNCHED("wm_search");
    wm_reduce<<<n, REDUCE_THREADS, 0, s>>>(geom, state, scale, scores, L.stride.scores, coefs,
                                           L.stride.coefs, band, L.stride.band, p);
    WM_LAUNCHED("wm_reduce");
    return SDLK_OK;
}

sdlk_status run_chunk(sdlk_cuda_wm *wm, const sdlk_cuda_wm_scale *scales, int n_scales,
                      sdlk_cuda_wm_image *images, int n, sdlk_error *err)
{
    chunk_layout L;
    plan_chunk(wm, scales, n_scales, images, n, &L);
    sdlk_status st = wm->d_arena.reserve(L.device_bytes, "cudaMalloc (watermark buffers)",
                                         wm->stream, err);
    if (!st)
        st = wm->h_arena.reserve(L.host_bytes, "cudaMallocHost (results)", wm->stream, err);
    if (st)
        return st;
    cudaStream_t s = wm->stream;
    char *base = wm->d_arena.ptr;
    char *host = wm->h_arena.ptr;

    /* geometry (pinned, so the copy is truly asynchronous) and the luma planes */
    wm_geom *h_geom = (wm_geom *)(host + L.h_geom);
    size_t luma_at = 0, integral_at = 0;
    for (int i = 0; i < n; i++) {
        wm_geom g;
        memset(&g, 0, sizeof g);
        g.luma_offset = luma_at;
        g.integral_offset = integral_at;
        g.width = images[i].width;
        g.height = images[i].height;
        g.usable_mask = images[i].usable_mask;
        memcpy(g.stop, images[i].stop, sizeof g.stop);
        h_geom[i] = g;
        luma_at += (size_t)g.width * g.height;
        integral_at += ((size_t)g.width + 1) * ((size_t)g.height + 1);
    }
    WM_CHECK(cudaMemcpyAsync(base + L.geom, h_geom, (size_t)n * sizeof(wm_geom),
                             cudaMemcpyHostToDevice, s), "cudaMemcpyAsync (geometry)");
    float *d_luma = (float *)(base + L.luma);
    for (int i = 0; i < n; i++)
        WM_CHECK(cudaMemcpyAsync(d_luma + h_geom[i].luma_offset, images[i].luma,
                                 (size_t)images[i].width * images[i].height * sizeof(float),
                                 cudaMemcpyHostToDevice, s), "cudaMemcpyAsync (luma)");
    for (int sc = 0; sc < n_scales; sc++) {
        if (scales[sc].taps <= 0)
            continue;
        WM_CHECK(cudaMemcpyAsync(base + L.axis_first[sc], scales[sc].first,
                                 (size_t)wm->params.tile * sizeof(int), cudaMemcpyHostToDevice, s),
                 "cudaMemcpyAsync (resampling)");
        WM_CHECK(cudaMemcpyAsync(base + L.axis_weight[sc], scales[sc].weight,
                                 (size_t)wm->params.tile * scales[sc].taps * sizeof(float),
                                 cudaMemcpyHostToDevice, s), "cudaMemcpyAsync (resampling)");
    }

    wm_state *d_state = (wm_state *)(base + L.state);
    wm_init_state<<<blocks_for((size_t)n, 128), 128, 0, s>>>(d_state, n);
    WM_LAUNCHED("wm_init_state");
    st = enqueue_whiten(wm, L, images, (wm_geom *)(base + L.geom), d_luma, (double *)(base + L.s1),
                        (double *)(base + L.s2), err);
    if (st)
        return st;
    uint32_t any_usable = 0;
    for (int i = 0; i < n; i++)
        any_usable |= images[i].usable_mask;
    for (int sc = 0; sc < n_scales; sc++) {
        if (!((any_usable >> sc) & 1u))
            continue;
        st = enqueue_scale(wm, L, sc, scales[sc], base, err);
        if (st)
            return st;
    }
    float *d_band = (float *)(base + L.band);
    float *d_soft = (float *)(base + L.soft);
    wm_extract<<<(unsigned)n, EXTRACT_THREADS, 0, s>>>(d_state, d_band, L.stride.band,
                                                       wm->d_group_chips, wm->d_group_start,
                                                       wm->d_chip_sign, wm->params.chips, d_soft);
    WM_LAUNCHED("wm_extract");

    wm_state *h_state = (wm_state *)(host + L.h_state);
    float *h_band = (float *)(host + L.h_band);
    float *h_soft = (float *)(host + L.h_soft);
    WM_CHECK(cudaMemcpyAsync(h_state, d_state, (size_t)n * sizeof(wm_state), cudaMemcpyDeviceToHost, s),
             "cudaMemcpyAsync (results)");
    WM_CHECK(cudaMemcpyAsync(h_band, d_band, (size_t)n * L.stride.band * sizeof(float),
                             cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync (results)");
    WM_CHECK(cudaMemcpyAsync(h_soft, d_soft, (size_t)n * GROUPS * sizeof(float), cudaMemcpyDeviceToHost, s),
             "cudaMemcpyAsync (results)");
    uint64_t *h_signs = (uint64_t *)(host + L.h_signs);
    if (L.want_signs)
        WM_CHECK(cudaMemcpyAsync(h_signs, base + L.signs, (size_t)n * L.stride.signs * sizeof(uint64_t),
                                 cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync (pilot signs)");
    WM_CHECK(cudaStreamSynchronize(s), "cudaStreamSynchronize (watermark kernels)");

    for (int i = 0; i < n; i++) {
        const wm_state &r = h_state[i];
        if (r.best_scale < 0 || r.best_agree < 0)
            return sdlk_error_set(err, SDLK_ERR_INTERNAL,
                                  "watermark GPU search kept no hypothesis for image %d of %d "
                                  "(%dx%d)", i + 1, n, images[i].width, images[i].height);
        images[i].scale_index = r.best_scale;
        images[i].offset_y = (r.best_shift / wm->params.nbs) * 8 + r.best_phase / 8;
        images[i].offset_x = (r.best_shift % wm->params.nbs) * 8 + r.best_phase % 8;
        images[i].pilot_agree = r.best_agree;
        memcpy(images[i].blocks, h_band + (size_t)i * L.stride.band, L.stride.band * sizeof(float));
        memcpy(images[i].soft, h_soft + (size_t)i * GROUPS, GROUPS * sizeof(float));
        /* The signs of every usable scale, when the search ran to its end (active: no
         * early stop, so every usable scale was searched and none holds stale data). */
        images[i].searched = 0;
        if (images[i].pilot_positive && r.active) {
            const size_t hyps = (size_t)PHASES * wm->params.nblocks;
            const uint64_t *mine = h_signs + (size_t)i * L.stride.signs;
            for (int sc = 0; sc < n_scales; sc++) {
                if (!((images[i].usable_mask >> sc) & 1u))
                    continue;
                const uint64_t *at = mine + (size_t)sc * 2 * hyps;
                memcpy(images[i].pilot_positive + images[i].searched, at, hyps * sizeof(uint64_t));
                memcpy(images[i].pilot_nonzero + images[i].searched, at + hyps,
                       hyps * sizeof(uint64_t));
                images[i].searched += (int64_t)hyps;
            }
        }
    }
    return SDLK_OK;
}

/* The pilot chips as the search kernel reads them: the key's grouping (sdlk_wm_key:
 * each group in chip order, the CPU's order of addition) of the groups from coded_bits
 * on, with each chip's pattern block, band index and sign. */
struct pilot_tables {
    wm_pilot_chip *pilot_chips;
    int pilot_start[PILOTS + 1];
    int n_pilot_chips;
};

sdlk_status build_pilot_tables(const sdlk_cuda_wm_key *key, pilot_tables *pt, sdlk_error *err)
{
    memset(pt, 0, sizeof *pt);
    const int first = key->group_start[key->coded_bits];
    pt->n_pilot_chips = key->group_start[GROUPS] - first;
    pt->pilot_chips = (wm_pilot_chip *)malloc(sizeof(wm_pilot_chip) *
                                              (size_t)(pt->n_pilot_chips ? pt->n_pilot_chips : 1));
    if (!pt->pilot_chips)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark GPU: out of memory for key tables");
    for (int g = 0; g <= PILOTS; g++)
        pt->pilot_start[g] = key->group_start[key->coded_bits + g] - first;
    for (int k = 0; k < pt->n_pilot_chips; k++) {
        int c = key->group_chip[first + k], b = c / COEFS;
        wm_pilot_chip pc;
        pc.by = (uint16_t)(b / key->blocks_per_side);
        pc.bx = (uint16_t)(b % key->blocks_per_side);
        pc.coef = (uint16_t)(c % COEFS);
        pc.sign = (float)key->chip_sign[c];
        pt->pilot_chips[k] = pc;
    }
    return SDLK_OK;
}

} /* namespace */

extern "C" sdlk_status sdlk_cuda_wm_create(const sdlk_cuda_wm_key *key, sdlk_cuda_wm **out,
                                           sdlk_error *err)
{
    *out = nullptr;
    if (key->tile < 8 || key->tile % 8 || key->blocks_per_side * 8 != key->tile ||
        key->chips != key->blocks_per_side * key->blocks_per_side * COEFS ||
        key->coded_bits + PILOTS != GROUPS || key->group_start[0] != 0 ||
        key->group_start[GROUPS] != key->chips)
        return sdlk_error_set(err, SDLK_ERR_ARG, "watermark GPU: inconsistent key (tile %d, %d chips)",
                              key->tile, key->chips);
    sdlk_cuda_wm *wm = (sdlk_cuda_wm *)calloc(1, sizeof *wm);
    if (!wm)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark GPU: out of memory");
    wm_params &p = wm->params;
    p.tile = key->tile;
    p.nbs = key->blocks_per_side;
    p.nblocks = p.nbs * p.nbs;
    p.chips = key->chips;
    p.whiten_radius = key->whiten_radius;
    p.whiten_floor = key->whiten_floor;
    p.band_clip = key->band_clip;
    memcpy(p.dct, key->dct, sizeof p.dct);
    for (int c = 0; c < COEFS; c++) {
        p.coef_u[c] = key->coef_u[c];
        p.coef_v[c] = key->coef_v[c];
    }
    for (int g = 0; g < PILOTS; g++)
        p.pilot[g] = (float)key->pilot[g];

    pilot_tables pt;
    sdlk_status st = build_pilot_tables(key, &pt, err);
    if (!st)
        st = sdlk_cuda_check(cudaStreamCreateWithFlags(&wm->stream, cudaStreamNonBlocking),
                             "cudaStreamCreate", err);
    if (!st)
        st = sdlk_cuda_upload(&wm->d_pilot_chips, pt.pilot_chips, (size_t)pt.n_pilot_chips,
                              "upload (key tables)", err);
    if (!st)
        st = sdlk_cuda_upload(&wm->d_pilot_start, pt.pilot_start, (size_t)PILOTS + 1,
                              "upload (key tables)", err);
    if (!st)
        st = sdlk_cuda_upload(&wm->d_group_chips, key->group_chip, (size_t)key->chips,
                              "upload (key tables)", err);
    if (!st)
        st = sdlk_cuda_upload(&wm->d_group_start, key->group_start, (size_t)GROUPS + 1,
                              "upload (key tables)", err);
    if (!st)
        st = sdlk_cuda_upload(&wm->d_chip_sign, key->chip_sign, (size_t)key->chips,
                              "upload (key tables)", err);
    wm->n_pilot_chips = pt.n_pilot_chips;
    free(pt.pilot_chips);
    if (st) {
        sdlk_cuda_wm_destroy(wm);
        return st;
    }
    *out = wm;
    return SDLK_OK;
}

extern "C" void sdlk_cuda_wm_destroy(sdlk_cuda_wm *wm)
{
    if (!wm)
        return;
    if (wm->stream) {
        cudaStreamSynchronize(wm->stream);
        cudaStreamDestroy(wm->stream);
    }
    cudaFree(wm->d_pilot_chips);
    cudaFree(wm->d_pilot_start);
    cudaFree(wm->d_group_chips);
    cudaFree(wm->d_group_start);
    cudaFree(wm->d_chip_sign);
    wm->d_arena.release();
    wm->h_arena.release();
    cudaGetLastError(); /* teardown errors are not reported: nothing is left to fail */
    free(wm);
}

extern "C" sdlk_status sdlk_cuda_wm_run(sdlk_cuda_wm *wm, const sdlk_cuda_wm_scale *scales,
                                        int n_scales, sdlk_cuda_wm_image *images, int n,
                                        sdlk_error *err)
{
    if (n_scales < 1 || n_scales > SDLK_CUDA_WM_MAX_SCALES || n < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG, "watermark GPU: %d scales, %d images", n_scales, n);
    for (int s = 0; s < n_scales; s++)
        if (scales[s].period < 8 || (scales[s].taps == 0) != (scales[s].period == wm->params.tile) ||
            scales[s].taps < 0)
            return sdlk_error_set(err, SDLK_ERR_ARG, "watermark GPU: bad scale %d (period %d, %d taps)",
                                  s, scales[s].period, scales[s].taps);
    for (int i = 0; i < n; i++) {
        const sdlk_cuda_wm_image &im = images[i];
        bool fits = true;
        for (int s = 0; s < n_scales; s++)
            if (((im.usable_mask >> s) & 1u) &&
                (scales[s].period > im.width || scales[s].period > im.height))
                fits = false;
        if (!im.luma || im.width < 1 || im.height < 1 || !im.usable_mask ||
            (im.usable_mask >> n_scales) != 0 || !fits || !im.blocks || !im.soft)
            return sdlk_error_set(err, SDLK_ERR_ARG, "watermark GPU: image %d (%dx%d) has no valid "
                                  "search plan", i + 1, im.width, im.height);
    }
    /* After a failed call work may still be queued that reads the pinned arena: let it
     * drain before the arena is rewritten (free when the stream is idle). */
    sdlk_status idle = sdlk_cuda_check(cudaStreamSynchronize(wm->stream), "cudaStreamSynchronize", err);
    if (idle)
        return idle;
    /* chunks that keep the device buffers near the budget; 65535 images at most (grid y) */
    int first = 0;
    while (first < n) {
        size_t pixels = (size_t)images[first].width * images[first].height;
        int end = first + 1;
        while (end < n && end - first < 65535) {
            size_t px = (size_t)images[end].width * images[end].height;
            if (pixels + px > SDLK_CUDA_WM_CHUNK_PIXELS)
                break;
            pixels += px;
            end++;
        }
        sdlk_status st = run_chunk(wm, scales, n_scales, images + first, end - first, err);
        if (st)
            return st;
        first = end;
    }
    return SDLK_OK;
}
