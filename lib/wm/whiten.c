/* whiten.c -- the detector's contrast normalisation, streamed over rows.
 *
 * Contract (wm_internal.h): out = (Y - local mean) / (local std + floor) over a
 * (2 r + 1)^2 window clipped at the borders, with the mean and std of every pixel equal
 * bit for bit to wm_local_stats' (the GPU path, kernels/wm.cu, repeats that arithmetic,
 * so neither may drift).
 *
 * Why not wm_local_stats + a second pass, and why rows go to a sink instead of a plane: its two integral images are doubles of the
 * whole image ((w + 1) x (h + 1) x 16 bytes: 33 MB at 1080p) written once and read four
 * times, plus a mean and a std plane, which made the normalisation the costliest step of
 * detection and the reason two detection threads shared one memory bus instead of
 * running side by side. Here integral row k is built from row k - 1 exactly as there
 * (the running row sum added to the row above, in double, left to right), but only the
 * 2 r + 2 rows a window can span are kept, in a ring that stays in the cache, and each
 * output row is finished (mean, std, normalisation) as soon as its window's rows exist
 * and handed to the caller (sdlk_wm_locate folds it into every resize factor's period
 * while it is in the cache), so no image-sized buffer is written at all: on the VMs this
 * runs on, the first touch of a fresh 8 MB buffer alone costs 6-12 ms in page faults.
 * The per-pixel arithmetic keeps wm_local_stats' order -- ((s[y1][x1] - s[y0][x1]) -
 * s[y1][x0]) + s[y0][x0], a / n, b / n - m * m, sqrt of the positive part, rounding to
 * float -- so only the memory traffic changes. The interior of a row, where every window
 * is whole, runs through wm_whiten_row (AVX2 when the CPU has it: the same IEEE
 * operations four lanes at a time, no fused multiply-adds). */
#include <stdlib.h>
#include <math.h>

#include "wm/wm_internal.h"

/* One output pixel from its window's corners (the edges of a row, and the reference
 * arithmetic the row kernels repeat). */
static inline float whiten_pixel(float y, double a, double b, double n, float floor_add)
{
    double m = a / n, var = b / n - m * m;
    float mean = (float)m;
    float sd = (float)sqrt(var > 0.0 ? var : 0.0);
    return (y - mean) / (sd + floor_add);
}

void wm_whiten_row_portable(const wm_whiten_rows *rows, int x_begin, int x_end)
{
    const int r = rows->radius;
    const double *a1 = rows->s1_bottom, *a0 = rows->s1_top;
    const double *b1 = rows->s2_bottom, *b0 = rows->s2_top;
    for (int x = x_begin; x < x_end; x++) {
        int x0 = x - r, x1 = x + r + 1;
        double a = a1[x1] - a0[x1] - a1[x0] + a0[x0];
        double b = b1[x1] - b0[x1] - b1[x0] + b0[x0];
        rows->out[x] = whiten_pixel(rows->luma[x], a, b, rows->count, rows->floor_add);
    }
}

/* Integral row `k` (1..h) of both sums from row k - 1 and luma row k - 1. */
static void integral_row(const float *src, int w, const double *prev1, const double *prev2,
                         double *cur1, double *cur2)
{
    double row1 = 0.0, row2 = 0.0;
    cur1[0] = 0.0;
    cur2[0] = 0.0;
    for (int x = 0; x < w; x++) {
        double v = src[x];
        row1 += v;
        row2 += v * v;
        cur1[x + 1] = prev1[x + 1] + row1;
        cur2[x + 1] = prev2[x + 1] + row2;
    }
}

int wm_whiten(const float *luma, int w, int h, int r, float floor_add, wm_row_sink sink,
              void *sink_ctx)
{
    const int ring = 2 * r + 2; /* rows y0 .. y1 of a window, y1 - y0 <= 2 r + 1 */
    const size_t iw = (size_t)w + 1;
    double *s1 = calloc(iw * (size_t)ring, sizeof *s1);
    double *s2 = calloc(iw * (size_t)ring, sizeof *s2);
    float *out = malloc(sizeof *out * (size_t)w);
    if (!s1 || !s2 || !out) {
        free(s1);
        free(s2);
        free(out);
        return -1;
    }
    void (*row_kernel)(const wm_whiten_rows *, int, int) = wm_whiten_row_portable;
#if defined(__x86_64__) /* lib/wm/meson.build builds whiten_avx2.c there */
    if (__builtin_cpu_supports("avx2"))
        row_kernel = wm_whiten_row_avx2;
#endif
    int built = 0; /* integral rows 0..built exist (row 0 is the calloc'd zeros) */
    for (int y = 0; y < h; y++) {
        int y0 = y - r < 0 ? 0 : y - r, y1 = y + r + 1 > h ? h : y + r + 1;
        for (; built < y1; built++) {
            size_t prev = (size_t)(built % ring) * iw, cur = (size_t)((built + 1) % ring) * iw;
            integral_row(luma + (size_t)built * w, w, s1 + prev, s2 + prev, s1 + cur, s2 + cur);
        }
        wm_whiten_rows rows = {
            .s1_top = s1 + (size_t)(y0 % ring) * iw, .s1_bottom = s1 + (size_t)(y1 % ring) * iw,
            .s2_top = s2 + (size_t)(y0 % ring) * iw, .s2_bottom = s2 + (size_t)(y1 % ring) * iw,
            .luma = luma + (size_t)y * w, .out = out,
            .radius = r, .floor_add = floor_add,
        };
        /* the clipped windows of the first and last r columns, then the whole ones */
        int inner_begin = r < w ? r : w, inner_end = w - r > inner_begin ? w - r : inner_begin;
        for (int x = 0; x < w; x++) {
            if (x == inner_begin && inner_end > inner_begin) {
                rows.count = (double)(y1 - y0) * (2 * r + 1);
                row_kernel(&rows, inner_begin, inner_end);
                x = inner_end - 1;
                continue;
            }
            int x0 = x - r < 0 ? 0 : x - r, x1 = x + r + 1 > w ? w : x + r + 1;
            double n = (double)(y1 - y0) * (x1 - x0);
            double a = rows.s1_bottom[x1] - rows.s1_top[x1] - rows.s1_bottom[x0] + rows.s1_top[x0];
            double b = rows.s2_bottom[x1] - rows.s2_top[x1] - rows.s2_bottom[x0] + rows.s2_top[x0];
            rows.out[x] = whiten_pixel(rows.luma[x], a, b, n, floor_add);
        }
        sink(sink_ctx, y, out);
    }
    free(s1);
    free(s2);
    free(out);
    return 0;
}
