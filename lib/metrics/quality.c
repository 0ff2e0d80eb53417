/* quality.c -- seam, flicker, high-frequency energy and power spectrum (see quality.h). */
#include "metrics/quality.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/mem.h>
#include <libavutil/tx.h>

void sdlk_seam_add(sdlk_seam_acc *acc, const float *plane, int64_t h, int64_t w,
                   const uint8_t *row_border, const uint8_t *col_border)
{
    /* Horizontal lines: between row r-1 and r, one difference per column. */
    for (int64_t r = 1; r < h; r++) {
        const float *above = plane + (r - 1) * w, *below = plane + r * w;
        double line = 0.0;
        for (int64_t c = 0; c < w; c++)
            line += fabs((double)below[c] - (double)above[c]);
        if (row_border && row_border[r]) {
            acc->border_sum += line;
            acc->border_n += w;
        } else {
            acc->interior_sum += line;
            acc->interior_n += w;
        }
    }
    /* Vertical lines: between column c-1 and c. Walk rows once, route each difference. */
    for (int64_t r = 0; r < h; r++) {
        const float *row = plane + r * w;
        for (int64_t c = 1; c < w; c++) {
            double d = fabs((double)row[c] - (double)row[c - 1]);
            if (col_border && col_border[c]) {
                acc->border_sum += d;
                acc->border_n++;
            } else {
                acc->interior_sum += d;
                acc->interior_n++;
            }
        }
    }
}

double sdlk_seam_value(const sdlk_seam_acc *acc)
{
    if (acc->border_n == 0 || acc->interior_n == 0 || acc->interior_sum == 0.0)
        return NAN;
    return (acc->border_sum / (double)acc->border_n) /
           (acc->interior_sum / (double)acc->interior_n);
}

sdlk_status sdlk_flicker_add(sdlk_flicker_acc *acc, const float *plane, int64_t h, int64_t w,
                             sdlk_error *err)
{
    if (h < 1 || w < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "flicker: empty plane %lldx%lld",
                              (long long)h, (long long)w);
    if (!acc->prev) {
        acc->prev = malloc((size_t)(h * w) * sizeof(float));
        if (!acc->prev)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "flicker: out of memory");
        acc->h = h;
        acc->w = w;
    } else {
        if (h != acc->h || w != acc->w)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "flicker: frame size changed from %lldx%lld to %lldx%lld",
                                  (long long)acc->w, (long long)acc->h, (long long)w,
                                  (long long)h);
        double sum = 0.0;
        for (int64_t i = 0; i < h * w; i++)
            sum += fabs((double)plane[i] - (double)acc->prev[i]);
        acc->sum += sum / (double)(h * w);
        acc->n++;
    }
    memcpy(acc->prev, plane, (size_t)(h * w) * sizeof(float));
    return SDLK_OK;
}

double sdlk_flicker_value(const sdlk_flicker_acc *acc)
{
    return acc->n ? acc->sum / (double)acc->n : NAN;
}

void sdlk_flicker_free(sdlk_flicker_acc *acc)
{
    free(acc->prev);
    acc->prev = NULL;
}

double sdlk_hf_energy(const float *plane, int64_t h, int64_t w)
{
    if (h < 3 || w < 3)
        return 0.0;
    double sum = 0.0;
    for (int64_t r = 1; r < h - 1; r++) {
        const float *row = plane + r * w;
        for (int64_t c = 1; c < w - 1; c++) {
            double lap = 4.0 * row[c] - row[c - 1] - row[c + 1] - row[c - w] - row[c + w];
            sum += lap * lap;
        }
    }
    return sum / (double)((h - 2) * (w - 2));
}

static int64_t floor_pow2(int64_t n)
{
    int64_t p = 1;
    while (p * 2 <= n)
        p *= 2;
    return p;
}

/* One complex FFT of length n over `lines` lines of `data`: line i starts at
 * data + i * line_step, elements `elem_step` apart (in AVComplexFloat units). av_tx
 * wants contiguous input, so each line is gathered into `in` and scattered back. */
static void fft_lines(AVTXContext *tx, av_tx_fn fn, AVComplexFloat *data, int64_t lines,
                      int64_t line_step, int64_t elem_step, int64_t n, AVComplexFloat *in,
                      AVComplexFloat *out)
{
    for (int64_t i = 0; i < lines; i++) {
        AVComplexFloat *base = data + i * line_step;
        for (int64_t k = 0; k < n; k++)
            in[k] = base[k * elem_step];
        fn(tx, out, in, sizeof(AVComplexFloat));
        for (int64_t k = 0; k < n; k++)
            base[k * elem_step] = out[k];
    }
}

sdlk_status sdlk_power_spectrum(const float *plane, int64_t h, int64_t w, int bins, double *out,
                                sdlk_error *err)
{
    if (h < 4 || w < 4 || bins < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "power spectrum: need a plane of at least 4x4 and >= 1 bin "
                              "(got %lldx%lld, %d bins)",
                              (long long)w, (long long)h, bins);
    int64_t ch = floor_pow2(h), cw = floor_pow2(w);
    int64_t top = (h - ch) / 2, left = (w - cw) / 2;
    sdlk_status st = SDLK_OK;
    AVComplexFloat *grid = av_malloc((size_t)(ch * cw) * sizeof(AVComplexFloat));
    int64_t longest = ch > cw ? ch : cw;
    AVComplexFloat *in = av_malloc((size_t)longest * sizeof(AVComplexFloat));
    AVComplexFloat *tmp = av_malloc((size_t)longest * sizeof(AVComplexFloat));
    double *ring_count = calloc((size_t)bins, sizeof(double));
    AVTXContext *row_tx = NULL, *col_tx = NULL;
    av_tx_fn row_fn = NULL, col_fn = NULL;
    if (!grid || !in || !tmp || !ring_count) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "power spectrum: out of memory");
        goto done;
    }
    float scale = 1.0f;
    if (av_tx_init(&row_tx, &row_fn, AV_TX_FLOAT_FFT, 0, (int)cw, &scale, 0) < 0 ||
        av_tx_init(&col_tx, &col_fn, AV_TX_FLOAT_FFT, 0, (int)ch, &scale, 0) < 0) {
        st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "power spectrum: av_tx_init failed");
        goto done;
    }
    double mean = 0.0;
    for (int64_t r = 0; r < ch; r++)
        for (int64_t c = 0; c < cw; c++)
            mean += plane[(top + r) * w + left + c];
    mean /= (double)(ch * cw);
    for (int64_t r = 0; r < ch; r++)
        for (int64_t c = 0; c < cw; c++) {
            grid[r * cw + c].re = (float)(plane[(top + r) * w + left + c] - mean);
            grid[r * cw + c].im = 0.0f;
        }
    fft_lines(row_tx, row_fn, grid, ch, cw, 1, cw, in, tmp);
    fft_lines(col_tx, col_fn, grid, cw, 1, cw, ch, in, tmp);

    memset(out, 0, (size_t)bins * sizeof(double));
    for (int64_t r = 0; r < ch; r++) {
        double fy = (double)(r <= ch / 2 ? r : r - ch) / (double)ch;
        for (int64_t c = 0; c < cw; c++) {
            double fx = (double)(c <= cw / 2 ? c : c - cw) / (double)cw;
            double radius = sqrt(fy * fy + fx * fx);
            if (radius >= 0.5)
                continue;
            int bin = (int)(radius / 0.5 * bins);
            if (bin >= bins)
                bin = bins - 1;
            AVComplexFloat v = grid[r * cw + c];
            out[bin] += ((double)v.re * v.re + (double)v.im * v.im) / (double)(ch * cw);
            ring_count[bin] += 1.0;
        }
    }
    for (int b = 0; b < bins; b++)
        out[b] = ring_count[b] > 0 ? out[b] / ring_count[b] : 0.0;
done:
    av_tx_uninit(&row_tx);
    av_tx_uninit(&col_tx);
    av_free(grid);
    av_free(in);
    av_free(tmp);
    free(ring_count);
    return st;
}
