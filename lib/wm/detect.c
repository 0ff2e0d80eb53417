/* detect.c -- the detection stages: luma, locate (fold + sync), extract, decide.
 *
 * Where the time goes (1080p, one core): decoding, then locate's contrast normalisation
 * and folds (one streamed pass, whiten.c), then 2-3 ms of offset search per resize
 * factor; extract and decide are microseconds. Every speed-up here reorganises loops and
 * memory only: each float and double operation is the one the straightforward code does,
 * in the same order, so results are bit for bit those of the GPU path (kernels/wm.cu,
 * which still computes the straightforward way) and of earlier versions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "metrics/metrics.h"
#include "wm/wm_internal.h"

/* Contrast normalisation before folding: (Y - 3x3 mean) / (3x3 std + 2) (WM_WHITEN_*
 * in wm_internal.h, shared with the GPU path). A local high-pass that removes most of
 * the picture (its energy is at low frequencies, the mark's is not), divided by local
 * contrast, which undoes the perceptual mask of the embedder and any brightness/contrast
 * change. Measured against 7x7..23x23 windows: the 3x3 window gave the highest pilot
 * agreement after crops, JPEG and a 0.5 resize. */
#define WHITEN_RADIUS WM_WHITEN_RADIUS
#define WHITEN_FLOOR WM_WHITEN_FLOOR
#define BAND_CLIP WM_BAND_CLIP

void sdlk_wm_detect_params_init(sdlk_wm_detect_params *p)
{
    memset(p, 0, sizeof *p);
    static const double defaults[] = {1.0, 0.5, 2.0, 0.75, 1.5};
    p->n_scales = 5;
    memcpy(p->scales, defaults, sizeof defaults);
    p->fpr = SDLK_WM_DEFAULT_FPR;
    p->decoys = SDLK_WM_DEFAULT_DECOYS;
    p->device = SDLK_DEVICE_CPU;
}

int sdlk_wm_min_side(int tile)
{
    return tile;
}

void wm_luma_tables_init(wm_luma_tables *lt)
{
    /* sdlk_image_luma's colour luma is the double sum (0.299 R + 0.587 G) + 0.114 B
     * rounded to float, and each product depends on one byte, so tables of the 256
     * products give the same sums without a multiplication or a per-sample stride
     * computation (the general loop was a tenth of a 1080p detection) */
    for (int v = 0; v < 256; v++) {
        lt->red[v] = 0.299 * (double)v;
        lt->green[v] = 0.587 * (double)v;
        lt->blue[v] = 0.114 * (double)v;
    }
}

void wm_luma_row_u8(const wm_luma_tables *lt, const uint8_t *row, int width, int channels,
                    float *out)
{
    if (channels < 3) { /* gray (+ alpha): the byte itself */
        for (int x = 0; x < width; x++)
            out[x] = (float)row[x * channels];
        return;
    }
    for (int x = 0; x < width; x++) {
        const uint8_t *p = row + (size_t)x * channels;
        out[x] = (float)(lt->red[p[0]] + lt->green[p[1]] + lt->blue[p[2]]);
    }
}

void wm_luma_row_u16(const uint16_t *row, int width, int channels, float *out)
{
    const double unit = 1.0 / 257.0; /* sdlk_image_luma's scale to 8-bit units */
    for (int x = 0; x < width; x++) {
        const uint16_t *p = row + (size_t)x * channels;
        double v = channels < 3 ? (double)p[0]
                                : 0.299 * (double)p[0] + 0.587 * (double)p[1] +
                                      0.114 * (double)p[2];
        out[x] = (float)(v * unit);
    }
}

/* sdlk_image_luma for contiguous 8-bit images, bit for bit, a row at a time. */
static void luma_u8(const sdlk_tensor *img, float *out)
{
    wm_luma_tables lt;
    wm_luma_tables_init(&lt);
    int h = (int)img->shape[0], w = (int)img->shape[1], c = (int)img->shape[2];
    for (int y = 0; y < h; y++)
        wm_luma_row_u8(&lt, img->data + (int64_t)y * img->strides[0], w, c, out + (size_t)y * w);
}

sdlk_status sdlk_wm_luma_from_image(const sdlk_tensor *img, sdlk_wm_plane *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    if (img->ndim != 3 || img->shape[0] > 65535 || img->shape[1] > 65535)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "watermark: need an [H, W, C] image");
    size_t n = (size_t)img->shape[0] * (size_t)img->shape[1];
    out->data = malloc(sizeof *out->data * (n ? n : 1));
    if (!out->data)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory for luma");
    sdlk_status st = SDLK_OK;
    if (img->dtype == SDLK_U8 && img->shape[2] >= 1 && img->shape[2] <= 4 &&
        img->strides[2] == 1 && img->strides[1] == img->shape[2])
        luma_u8(img, out->data);
    else
        st = sdlk_image_luma(img, out->data, err);
    if (st != SDLK_OK) {
        sdlk_wm_plane_free(out);
        return st;
    }
    out->height = (int)img->shape[0];
    out->width = (int)img->shape[1];
    return SDLK_OK;
}

void sdlk_wm_plane_free(sdlk_wm_plane *plane)
{
    if (plane) {
        free(plane->data);
        memset(plane, 0, sizeof *plane);
    }
}

void sdlk_wm_sync_free(sdlk_wm_sync *sync)
{
    if (sync) {
        free(sync->blocks);
        free(sync->pilot_positive);
        memset(sync, 0, sizeof *sync);
    }
}

int wm_resample_axis_init(wm_resample_axis *ax, int in_n, int out_n)
{
    double ratio = (double)in_n / out_n;
    double support = ratio > 1.0 ? ratio : 1.0;
    ax->taps = (int)ceil(2.0 * support) + 1;
    ax->first = malloc(sizeof *ax->first * (size_t)out_n);
    ax->weight = malloc(sizeof *ax->weight * (size_t)out_n * ax->taps);
    if (!ax->first || !ax->weight)
        return -1;
    for (int i = 0; i < out_n; i++) {
        double centre = (i + 0.5) * ratio - 0.5;
        int first = (int)floor(centre - support) + 1;
        double total = 0.0;
        for (int k = 0; k < ax->taps; k++) {
            double d = fabs(first + k - centre) / support;
            double wgt = d < 1.0 ? 1.0 - d : 0.0;
            ax->weight[(size_t)i * ax->taps + k] = (float)wgt;
            total += wgt;
        }
        for (int k = 0; k < ax->taps; k++)
            ax->weight[(size_t)i * ax->taps + k] /= (float)total;
        ax->first[i] = first;
    }
    return 0;
}

void wm_resample_axis_free(wm_resample_axis *ax)
{
    free(ax->first);
    free(ax->weight);
    ax->first = NULL;
    ax->weight = NULL;
}

static inline int wrap(int i, int n)
{
    i %= n;
    return i < 0 ? i + n : i;
}

/* dst (out x out) = src (in x in) resampled cyclically; tmp holds in x out. */
static int resample_cyclic(const float *src, int in, float *dst, int out, float *tmp)
{
    if (in == out) {
        memcpy(dst, src, sizeof *dst * (size_t)in * in);
        return 0;
    }
    wm_resample_axis ax;
    memset(&ax, 0, sizeof ax);
    if (wm_resample_axis_init(&ax, in, out) != 0) {
        wm_resample_axis_free(&ax);
        return -1;
    }
    for (int y = 0; y < in; y++) /* rows: in x in -> in x out */
        for (int x = 0; x < out; x++) {
            float s = 0.f;
            for (int k = 0; k < ax.taps; k++)
                s += ax.weight[(size_t)x * ax.taps + k] * src[(size_t)y * in + wrap(ax.first[x] + k, in)];
            tmp[(size_t)y * out + x] = s;
        }
    for (int y = 0; y < out; y++) /* columns: in x out -> out x out */
        for (int x = 0; x < out; x++) {
            float s = 0.f;
            for (int k = 0; k < ax.taps; k++)
                s += ax.weight[(size_t)y * ax.taps + k] * tmp[(size_t)wrap(ax.first[y] + k, in) * out + x];
            dst[(size_t)y * out + x] = s;
        }
    wm_resample_axis_free(&ax);
    return 0;
}

/* Scratch of one locate call. */
typedef struct locate_work {
    float *fold[SDLK_WM_MAX_SCALES]; /* P x P per usable scale (NULL where none) */
    int period[SDLK_WM_MAX_SCALES];  /* P of each, 0 when the scale does not fit */
    int n_scales;
    int width;
    float *tile;      /* T x T folded tile at scale 1 */
    float *tmp;       /* resampling scratch */
    float *rowdct;    /* [T][T][5] row transforms of the tile (tile_row_band) */
    float *coefs;     /* [(T/8)^2][12] DCT band of the tile at one block phase */
    float *best;      /* the same at the best hypothesis so far, pattern order */
    /* The chips of the pilot groups, by pilot, each pilot's in chip order: */
    int pilot_start[SDLK_WM_PILOT_BITS + 1]; /* pilot g: [start[g], start[g + 1]) */
    int *pilot_offset;  /* per pilot chip: (by 2 nbs + bx) 12 + coef in `periodic` */
    float *pilot_sign;  /* per pilot chip: its sign */
    float *periodic;    /* [2 nbs][2 nbs][12] the band repeated (search_shifts) */
} locate_work;

static void locate_work_free(locate_work *wk)
{
    for (int i = 0; i < SDLK_WM_MAX_SCALES; i++)
        free(wk->fold[i]);
    free(wk->tile);
    free(wk->tmp);
    free(wk->rowdct);
    free(wk->coefs);
    free(wk->best);
    free(wk->pilot_offset);
    free(wk->pilot_sign);
    free(wk->periodic);
}

/* The row half of the band DCT for every row and every cyclic column start of the tile:
 * rowdct[(i t + c) 5 + v] = sum_x tile[i][(c + x) mod t] dct[v][x] (v <= 4, the band's
 * columns), summed in x order. Every block of every one of the 64 phases starts its 2-D
 * DCT with eight of these -- the same products added in the same order -- so computing
 * them once per scale instead of once per block and phase removes 7/8 of the search's
 * row transforms without changing a bit. */
static void tile_row_band(const sdlk_wm_key *key, const float *tile, float *rowdct)
{
    int t = key->tile;
    for (int i = 0; i < t; i++) {
        const float *row = tile + (size_t)i * t;
        for (int c = 0; c < t; c++) {
            float px[8];
            for (int x = 0; x < 8; x++)
                px[x] = row[(c + x) % t];
            float *dst = rowdct + ((size_t)i * t + c) * 5;
            for (int v = 0; v < 5; v++) {
                float acc = 0.f;
                for (int x = 0; x < 8; x++)
                    acc += px[x] * key->dct[v][x];
                dst[v] = acc;
            }
        }
    }
}

/* The band coefficients of every 8x8 block of the tile cyclically shifted by (ry, rx),
 * from the tile's row transforms (tile_row_band), for a fold of period `period`. */
static void tile_band(const sdlk_wm_key *key, const float *rowdct, int ry, int rx, int period,
                      float *coefs)
{
    int t = key->tile, nbs = key->blocks_per_side;
    for (int by = 0; by < nbs; by++)
        for (int bx = 0; bx < nbs; bx++) {
            const float *rows[8]; /* rows[y][v] of this block */
            for (int y = 0; y < 8; y++)
                rows[y] = rowdct + ((size_t)((by * 8 + ry + y) % t) * t + (bx * 8 + rx) % t) * 5;
            float *dst = coefs + (size_t)(by * nbs + bx) * SDLK_WM_COEFS;
            for (int c = 0; c < SDLK_WM_COEFS; c++) {
                int u = key->coef_u[c], v = key->coef_v[c];
                float acc = 0.f;
                for (int y = 0; y < 8; y++)
                    acc += key->dct[u][y] * rows[y][v];
                dst[c] = acc;
            }
        }
    /* Equalise the band: the picture left in the folded tile is far stronger at low
     * frequencies than at high ones while the mark has the same amplitude at each, so
     * each coefficient index is divided by its RMS over the blocks (a matched filter
     * for noise that depends on frequency), and clipped so that a few strong edges
     * cannot outvote the many chips. */
    int nblocks = nbs * nbs;
    for (int c = 0; c < SDLK_WM_COEFS; c++) {
        double energy = 0.0;
        for (int b = 0; b < nblocks; b++)
            energy += (double)coefs[b * SDLK_WM_COEFS + c] * coefs[b * SDLK_WM_COEFS + c];
        float inv = energy > 0.0 ? (float)(1.0 / sqrt(energy / nblocks)) : 0.f;
        if (wm_band_above_nyquist(key->coef_u[c], key->coef_v[c], t, period))
            inv = 0.f;
        for (int b = 0; b < nblocks; b++) {
            float v = coefs[b * SDLK_WM_COEFS + c] * inv;
            coefs[b * SDLK_WM_COEFS + c] = v > BAND_CLIP ? BAND_CLIP : v < -BAND_CLIP ? -BAND_CLIP : v;
        }
    }
}

typedef struct hypothesis {
    int agree;
    double corr;
} hypothesis;

static int better(hypothesis a, hypothesis b)
{
    return a.agree > b.agree || (a.agree == b.agree && a.corr > b.corr);
}

/* Pilot agreement and soft pilot correlation for pattern block b at folded block
 * (b + shift) for every block shift; updates *best and records its band. */
static void search_shifts(const sdlk_wm_key *key, const locate_work *wk, const float *coefs,
                          int ry, int rx, double scale, hypothesis *best, sdlk_wm_sync *sync,
                          float *best_coefs, int *improved)
{
    int nbs = key->blocks_per_side, ext = 2 * nbs;
    /* The band repeated 2 x 2 (wk->periodic: ext x ext blocks), so that the folded block
     * (b + shift) mod nbs of pattern block b is at a fixed offset from the shift's
     * corner: one precomputed offset per chip instead of two wrapped index lookups. */
    float *periodic = wk->periodic;
    for (int y = 0; y < ext; y++)
        for (int x = 0; x < ext; x++)
            memcpy(periodic + ((size_t)y * ext + x) * SDLK_WM_COEFS,
                   coefs + ((size_t)(y % nbs) * nbs + x % nbs) * SDLK_WM_COEFS,
                   sizeof *coefs * SDLK_WM_COEFS);
    for (int ay = 0; ay < nbs; ay++) {
        for (int ax = 0; ax < nbs; ax++) {
            const float *corner = periodic + ((size_t)ay * ext + ax) * SDLK_WM_COEFS;
            /* each pilot's chips in chip order (pilot_offset is grouped, see
             * sdlk_wm_locate), summed in a register from 0: the additions of a
             * scattered soft[group] += ..., without its store-to-load chains */
            hypothesis h = {0, 0.0};
            uint64_t positive = 0, nonzero = 0;
            for (int g = 0; g < SDLK_WM_PILOT_BITS; g++) {
                float soft = 0.f;
                for (int i = wk->pilot_start[g]; i < wk->pilot_start[g + 1]; i++)
                    soft += wk->pilot_sign[i] * corner[wk->pilot_offset[i]];
                float v = soft * key->pilot[g];
                h.agree += v > 0.f;
                h.corr += v;
                positive |= (uint64_t)(soft > 0.f) << g;
                nonzero |= (uint64_t)(soft != 0.f) << g;
            }
            if (sync->pilot_positive) {
                sync->pilot_positive[sync->searched] = positive;
                sync->pilot_nonzero[sync->searched] = nonzero;
                sync->searched++;
            }
            if (better(h, *best)) {
                *best = h;
                *improved = 1;
                sync->scale = scale;
                sync->offset_y = ay * 8 + ry;
                sync->offset_x = ax * 8 + rx;
                sync->pilot_agree = h.agree;
                /* store the band in pattern block order: pattern row by's folded
                 * blocks are one run of the periodic band from the corner */
                for (int by = 0; by < nbs; by++)
                    memcpy(best_coefs + (size_t)by * nbs * SDLK_WM_COEFS,
                           corner + (size_t)by * ext * SDLK_WM_COEFS,
                           sizeof *coefs * (size_t)nbs * SDLK_WM_COEFS);
            }
        }
    }
}

int wm_sync_alloc_signs(sdlk_wm_sync *sync, const sdlk_wm_detect_params *params,
                        int64_t hypotheses)
{
    sync->pilot_positive = sync->pilot_nonzero = NULL;
    sync->searched = 0;
    if (params->decoys <= 0)
        return 0;
    sync->pilot_positive = malloc(sizeof *sync->pilot_positive * 2 * (size_t)hypotheses);
    if (!sync->pilot_positive)
        return -1;
    sync->pilot_nonzero = sync->pilot_positive + hypotheses;
    return 0;
}

int wm_scale_period(int tile, double scale)
{
    return (int)lround(tile * scale);
}

sdlk_status wm_search_plan_make(int w, int h, const sdlk_wm_key *key,
                                const sdlk_wm_detect_params *params, wm_search_plan *plan,
                                sdlk_error *err)
{
    memset(plan, 0, sizeof *plan);
    int t = key->tile;
    int min_side = sdlk_wm_min_side(t);
    if (w < min_side || h < min_side)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "image %dx%d is too small: at least "
                              "%dx%d pixels needed (one %d-pixel watermark tile)", w, h,
                              min_side, min_side, t);
    if (params->n_scales < 1 || params->n_scales > SDLK_WM_MAX_SCALES)
        return sdlk_error_set(err, SDLK_ERR_ARG, "watermark: 1 to %d scales", SDLK_WM_MAX_SCALES);

    /* Which scales fit: the fold period P = T s must be at least one 8x8 block wide and
     * at most the image. Only these are searched and counted for Bonferroni. */
    for (int i = 0; i < params->n_scales; i++) {
        double s = params->scales[i];
        if (!(s >= 0.125 && s <= 8.0))
            return sdlk_error_set(err, SDLK_ERR_ARG, "watermark: scale %g outside [0.125, 8]", s);
        int p = wm_scale_period(t, s);
        if (p >= 8 && p <= w && p <= h) {
            plan->period[i] = p;
            plan->usable++;
            if (p > plan->max_period)
                plan->max_period = p;
        }
    }
    if (plan->usable == 0)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "image %dx%d is too small for the "
                              "resize factors searched (a factor s needs %d s pixels a side)",
                              w, h, t);
    if (params->decoys < 0 || params->decoys > SDLK_WM_MAX_DECOYS)
        return sdlk_error_set(err, SDLK_ERR_ARG, "watermark: %d decoys (0 to %d)",
                              params->decoys, SDLK_WM_MAX_DECOYS);
    plan->hypotheses = (int64_t)plan->usable * t * t;
    /* Stopping early is sound: the p-value is charged for every usable scale. */
    double log_fpr = log(params->fpr > 0.0 ? params->fpr : SDLK_WM_DEFAULT_FPR);
    double log_h = log((double)plan->hypotheses);
    for (int k = 0; k <= SDLK_WM_PILOT_BITS; k++)
        plan->stop[k] = !params->exhaustive &&
                        log_h + sdlk_wm_log_binom_tail(SDLK_WM_PILOT_BITS, k) <= log_fpr;
    return SDLK_OK;
}

/* Fold one normalised row modulo every usable period: cell (y mod P, x mod P) adds the
 * pixels of its phase in (y, x) order, the order of one full-plane pass per scale, so the
 * folds are bit for bit what folding a stored normalised plane gave -- without storing
 * it (wm_whiten says why) and with every scale folded while the row is in the cache. */
static void fold_row(void *ctx, int y, const float *row)
{
    locate_work *wk = ctx;
    const int w = wk->width;
    for (int s = 0; s < wk->n_scales; s++) {
        int p = wk->period[s];
        if (p == 0)
            continue;
        float *frow = wk->fold[s] + (size_t)(y % p) * p;
        for (int x0 = 0; x0 < w; x0 += p) {
            int len = w - x0 < p ? w - x0 : p;
            const float *src = row + x0;
            for (int k = 0; k < len; k++)
                frow[k] += src[k];
        }
    }
}

sdlk_status sdlk_wm_locate(const sdlk_wm_plane *luma, const sdlk_wm_key *key,
                           const sdlk_wm_detect_params *params, sdlk_wm_sync *sync,
                           sdlk_error *err)
{
    memset(sync, 0, sizeof *sync);
    sdlk_wm_detect_params defaults;
    if (!params) {
        sdlk_wm_detect_params_init(&defaults);
        params = &defaults;
    }
    int t = key->tile, w = luma->width, h = luma->height;
    wm_search_plan plan;
    sdlk_status st = wm_search_plan_make(w, h, key, params, &plan, err);
    if (st != SDLK_OK)
        return st;
    int max_period = plan.max_period;
    sync->tile = t;
    sync->hypotheses = plan.hypotheses;

    locate_work wk;
    memset(&wk, 0, sizeof wk);
    size_t n = (size_t)w * h;
    int nblocks = key->blocks_per_side * key->blocks_per_side;
    int big = max_period > t ? max_period : t;
    wk.n_scales = params->n_scales;
    wk.width = w;
    int folds_ok = 1;
    for (int si = 0; si < params->n_scales; si++) {
        int p = plan.period[si];
        wk.period[si] = p;
        if (p && !(wk.fold[si] = calloc((size_t)p * p, sizeof *wk.fold[si])))
            folds_ok = 0;
    }
    wk.tile = malloc(sizeof *wk.tile * (size_t)t * t);
    wk.tmp = malloc(sizeof *wk.tmp * (size_t)big * big);
    wk.rowdct = malloc(sizeof *wk.rowdct * (size_t)t * t * 5);
    wk.coefs = malloc(sizeof *wk.coefs * (size_t)nblocks * SDLK_WM_COEFS);
    sync->blocks = malloc(sizeof *sync->blocks * (size_t)nblocks * SDLK_WM_COEFS);
    wk.pilot_offset = malloc(sizeof *wk.pilot_offset * (size_t)key->chips);
    wk.pilot_sign = malloc(sizeof *wk.pilot_sign * (size_t)key->chips);
    wk.periodic = malloc(sizeof *wk.periodic * (size_t)4 * nblocks * SDLK_WM_COEFS);
    int signs_ok = wm_sync_alloc_signs(sync, params, plan.hypotheses) == 0;
    if (!folds_ok || !signs_ok || !wk.tile || !wk.tmp || !wk.rowdct || !wk.coefs || !sync->blocks ||
        !wk.pilot_offset || !wk.pilot_sign || !wk.periodic ||
        wm_whiten(luma->data, w, h, WHITEN_RADIUS, WHITEN_FLOOR, fold_row, &wk) != 0) {
        locate_work_free(&wk);
        sdlk_wm_sync_free(sync);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory for a %dx%d image",
                              w, h);
    }
    /* the pilot chips by pilot, each pilot's in chip order (the key's grouping), as
     * offsets into the repeated band of search_shifts */
    const int first_pilot_chip = key->group_start[SDLK_WM_CODED_BITS];
    for (int g = 0; g <= SDLK_WM_PILOT_BITS; g++)
        wk.pilot_start[g] = key->group_start[SDLK_WM_CODED_BITS + g] - first_pilot_chip;
    for (int k = 0; k < wk.pilot_start[SDLK_WM_PILOT_BITS]; k++) {
        int chip = key->group_chip[first_pilot_chip + k], b = chip / SDLK_WM_COEFS;
        int by = b / key->blocks_per_side, bx = b % key->blocks_per_side;
        wk.pilot_offset[k] = (by * 2 * key->blocks_per_side + bx) * SDLK_WM_COEFS +
                             chip % SDLK_WM_COEFS;
        wk.pilot_sign[k] = (float)key->chip_sign[chip];
    }

    hypothesis best = {-1, -INFINITY};
    for (int si = 0; si < params->n_scales; si++) {
        double s = params->scales[si];
        int p = plan.period[si];
        if (p == 0)
            continue;
        /* the fold modulo P (every tile of the image added at the same phase) was made
         * by fold_row during the normalisation */
        if (resample_cyclic(wk.fold[si], p, wk.tile, t, wk.tmp) != 0) {
            locate_work_free(&wk);
            sdlk_wm_sync_free(sync);
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark: out of memory");
        }
        int improved = 0;
        tile_row_band(key, wk.tile, wk.rowdct);
        for (int ry = 0; ry < 8; ry++)
            for (int rx = 0; rx < 8; rx++) {
                tile_band(key, wk.rowdct, ry, rx, p, wk.coefs);
                int imp = 0;
                search_shifts(key, &wk, wk.coefs, ry, rx, s, &best, sync, sync->blocks, &imp);
                improved |= imp;
            }
        if (improved)
            sync->tiles = (double)n / ((double)p * p);
        /* Stopping early is sound: the p-value is charged for every usable scale. */
        if (plan.stop[best.agree])
            break;
    }
    locate_work_free(&wk);
    return SDLK_OK;
}

void sdlk_wm_extract_soft(const sdlk_wm_sync *sync, const sdlk_wm_key *key,
                          float soft[SDLK_WM_GROUPS])
{
    double acc[SDLK_WM_GROUPS] = {0};
    double energy = 0.0;
    for (int chip = 0; chip < key->chips; chip++) {
        float v = sync->blocks[chip]; /* blocks is [block][coef] = chip order */
        acc[key->chip_group[chip]] += key->chip_sign[chip] * v;
        energy += (double)v * v;
    }
    /* unit: the standard deviation a group sum would have if the band were pure noise */
    double per_group = (double)key->chips / SDLK_WM_GROUPS;
    double noise = sqrt(energy / key->chips * per_group);
    for (int g = 0; g < SDLK_WM_GROUPS; g++)
        soft[g] = (float)(noise > 0.0 ? acc[g] / noise : 0.0);
}

/* ---- the calibrated p-value (wm.h, "The reported p-value is calibrated") ---------- */

/* Best agreement of the pilot vector `pilots` over n hypotheses' signs: a pilot agrees
 * where its sum is nonzero and has the pilot's sign (the search's `v > 0`). */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("popcnt"))) static int best_agreement_popcnt(const uint64_t *positive,
                                                                   const uint64_t *nonzero,
                                                                   int64_t n, uint64_t pilots)
{
    return wm_best_agreement_loop(positive, nonzero, n, pilots, 0);
}
#endif

int wm_best_agreement(const uint64_t *positive, const uint64_t *nonzero, int64_t n,
                      uint64_t pilots)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2"))
        return wm_best_agreement_avx2(positive, nonzero, n, pilots);
    if (__builtin_cpu_supports("popcnt"))
        return best_agreement_popcnt(positive, nonzero, n, pilots);
#endif
    return wm_best_agreement_loop(positive, nonzero, n, pilots, 0);
}

double sdlk_wm_decoy_p(const uint64_t *positive, const uint64_t *nonzero, int64_t n,
                       uint64_t pilots, int decoys, uint64_t seed)
{
    int observed = wm_best_agreement(positive, nonzero, n, pilots);
    /* U comes from the signs themselves (an order-free fold), so the same image and key
     * give the same p-value on every device and in every run */
    uint64_t fold = seed ^ (uint64_t)n;
    for (int64_t i = 0; i < n; i++)
        fold ^= (positive[i] * 0x9e3779b97f4a7c15ull + (positive[i] >> 29)) ^
                (nonzero[i] * 0xc2b2ae3d27d4eb4full);
    uint64_t decoy_state = seed;
    int above = 0, equal = 0;
    for (int d = 0; d < decoys; d++) {
        int best = wm_best_agreement(positive, nonzero, n, sdlk_splitmix64(&decoy_state));
        above += best > observed;
        equal += best == observed;
    }
    double u = sdlk_rng_unit_open0(&fold);
    return (above + u * (equal + 1)) / (decoys + 1);
}

void sdlk_wm_decode_decide(const sdlk_wm_key *key, const sdlk_wm_sync *sync,
                           const float soft[SDLK_WM_GROUPS],
                           const sdlk_wm_detect_params *params, sdlk_wm_result *out)
{
    sdlk_wm_detect_params defaults;
    if (!params) {
        sdlk_wm_detect_params_init(&defaults);
        params = &defaults;
    }
    const double fpr = params->fpr;
    memset(out, 0, sizeof *out);
    out->pilots = SDLK_WM_PILOT_BITS;
    out->pilot_agree = sync->pilot_agree;
    double log_p = log((double)(sync->hypotheses > 0 ? sync->hypotheses : 1)) +
                   sdlk_wm_log_binom_tail(SDLK_WM_PILOT_BITS, sync->pilot_agree);
    if (log_p > 0.0)
        log_p = 0.0;
    out->p_bound = exp(log_p);
    out->detected = sync->hypotheses > 0 && log_p <= log(fpr);
    /* Not detected: the search ran to its end, so every hypothesis's signs are there
     * (a search that stopped early did so on a bound <= fpr, i.e. a detection). */
    if (!out->detected && params->decoys > 0 && sync->pilot_positive &&
        sync->searched == sync->hypotheses) {
        uint64_t pilots = 0;
        for (int g = 0; g < SDLK_WM_PILOT_BITS; g++)
            pilots |= (uint64_t)(key->pilot[g] > 0) << g;
        double p_mc = sdlk_wm_decoy_p(sync->pilot_positive, sync->pilot_nonzero,
                                      sync->searched, pilots, params->decoys, key->decoy_seed);
        double p = fpr + (1.0 - fpr) * p_mc;
        log_p = log(p);
        out->decoys = params->decoys;
    }
    out->log10_p = log_p / log(10.0);
    out->p_value = exp(log_p);

    /* hard coded bits, and byte reliabilities = the weakest bit of the byte */
    uint8_t hard[SDLK_WM_CODE_BYTES] = {0};
    float weakness[SDLK_WM_CODE_BYTES];
    for (int j = 0; j < SDLK_WM_CODE_BYTES; j++)
        weakness[j] = INFINITY;
    for (int i = 0; i < SDLK_WM_CODED_BITS; i++) {
        if (soft[i] < 0.f)
            hard[i / 8] |= (uint8_t)(0x80 >> (i % 8));
        float m = fabsf(soft[i]);
        if (m < weakness[i / 8])
            weakness[i / 8] = m;
    }
    int order[SDLK_WM_CODE_BYTES];
    for (int j = 0; j < SDLK_WM_CODE_BYTES; j++)
        order[j] = j;
    for (int a = 1; a < SDLK_WM_CODE_BYTES; a++) /* insertion sort, weakest first */
        for (int b = a; b > 0 && weakness[order[b]] < weakness[order[b - 1]]; b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    /* No erasures first; then the 1..4 weakest bytes erased. Never 5 or 6: with 6
     * erasures every word "decodes" and nothing would be left to check it. */
    static const int attempts[] = {0, 1, 2, 3, 4};
    for (size_t a = 0; a < sizeof attempts / sizeof *attempts; a++) {
        uint8_t word[SDLK_WM_CODE_BYTES];
        memcpy(word, hard, sizeof word);
        int corrected = sdlk_wm_rs_decode(&key->rs, word, order, attempts[a]);
        if (corrected >= 0) {
            out->message_ok = 1;
            memcpy(out->message, word, SDLK_WM_MESSAGE_BYTES);
            out->rs_corrected = corrected;
            out->rs_erasures = attempts[a];
            int errors = 0;
            for (int i = 0; i < SDLK_WM_CODED_BITS; i++)
                errors += ((word[i / 8] ^ hard[i / 8]) >> (7 - i % 8)) & 1;
            out->coded_bit_errors = errors;
            break;
        }
    }
}

/* Stages 2 + 3 of one image through a temporary engine (the GPU path). */
static sdlk_status detect_on_engine(const sdlk_wm_plane *luma, const sdlk_wm_key *key,
                                    const sdlk_wm_detect_params *params, sdlk_device device,
                                    sdlk_wm_sync *sync, float soft[SDLK_WM_GROUPS],
                                    sdlk_error *err)
{
    sdlk_wm_engine *engine;
    sdlk_status st = sdlk_wm_engine_open(key, device, &engine, err);
    if (st != SDLK_OK)
        return st;
    sdlk_wm_task task = {.luma = luma, .sync = sync, .soft = soft};
    st = sdlk_wm_locate_extract(engine, params, &task, 1, err);
    sdlk_wm_engine_close(engine);
    if (st == SDLK_OK && task.status != SDLK_OK) {
        st = task.status;
        if (err && !err->code)
            *err = task.error;
    }
    return st;
}

sdlk_status sdlk_wm_detect(const sdlk_tensor *img, const sdlk_wm_key *key,
                           const sdlk_wm_detect_params *params, sdlk_wm_result *out,
                           sdlk_wm_sync *sync, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    sdlk_wm_detect_params defaults;
    if (!params) {
        sdlk_wm_detect_params_init(&defaults);
        params = &defaults;
    }
    sdlk_device where;
    sdlk_status st = sdlk_device_resolve(params->device, &where, err);
    if (st != SDLK_OK)
        return st;
    sdlk_wm_plane luma;
    st = sdlk_wm_luma_from_image(img, &luma, err);
    if (st != SDLK_OK)
        return st;
    sdlk_wm_sync local;
    sdlk_wm_sync *s = sync ? sync : &local;
    float soft[SDLK_WM_GROUPS];
    if (where == SDLK_DEVICE_CPU) {
        st = sdlk_wm_locate(&luma, key, params, s, err);
        if (st == SDLK_OK)
            sdlk_wm_extract_soft(s, key, soft);
    } else {
        st = detect_on_engine(&luma, key, params, where, s, soft, err);
    }
    sdlk_wm_plane_free(&luma);
    if (st != SDLK_OK)
        return st;
    sdlk_wm_decode_decide(key, s, soft, params, out);
    if (!sync)
        sdlk_wm_sync_free(&local);
    return SDLK_OK;
}
