/* test_quality.c -- seam, flicker, high-frequency energy and power spectrum against
 * values worked out by hand or from the signal's construction. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/quality.h"
#include "unit.h"

/* Deterministic white noise in [-0.5, 0.5): statistically the same on every line. */
static void fill_texture(float *p, int64_t h, int64_t w)
{
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int64_t r = 0; r < h; r++)
        for (int64_t c = 0; c < w; c++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            double noise = (double)(state >> 11) / 9007199254740992.0 - 0.5;
            p[r * w + c] = (float)noise;
        }
}

START_TEST(seam_uniform_texture_is_near_one)
{
    enum { H = 128, W = 128 };
    float *p = malloc(sizeof(float) * H * W);
    fill_texture(p, H, W);
    uint8_t rows[H] = {0}, cols[W] = {0};
    for (int i = 16; i < H; i += 32) rows[i] = 1;
    for (int i = 8; i < W; i += 32) cols[i] = 1;
    sdlk_seam_acc acc = {0};
    sdlk_seam_add(&acc, p, H, W, rows, cols);
    double v = sdlk_seam_value(&acc);
    ck_assert_msg(fabs(v - 1.0) < 0.1, "seam %f", v);

    /* Add a visible step of 2.0 along every flagged row: those lines get much larger. */
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++) {
            int band = 0;
            for (int i = 16; i <= r; i += 32) band++;
            p[r * W + c] += 2.0f * (float)(band % 2);
        }
    sdlk_seam_acc acc2 = {0};
    sdlk_seam_add(&acc2, p, H, W, rows, cols);
    ck_assert_msg(sdlk_seam_value(&acc2) > 1.5, "seam with steps %f", sdlk_seam_value(&acc2));
    free(p);
}
END_TEST

START_TEST(seam_exact_value)
{
    /* 3x3 plane, row border at r=1 only; no column borders.
     * rows: [0 0 0], [3 3 3], [4 4 4]. Horizontal lines: r=1 diff 3 (border), r=2 diff 1.
     * Vertical lines: all zero (6 interior differences). Border mean 3, interior
     * mean (3 * 1 + 6 * 0) / 9 = 1/3 -> 9. */
    float p[9] = {0, 0, 0, 3, 3, 3, 4, 4, 4};
    uint8_t rows[3] = {0, 1, 0};
    sdlk_seam_acc acc = {0};
    sdlk_seam_add(&acc, p, 3, 3, rows, NULL);
    ck_assert_double_eq_tol(sdlk_seam_value(&acc), 9.0, 1e-12);
    sdlk_seam_acc empty = {0};
    sdlk_seam_add(&empty, p, 3, 3, NULL, NULL);
    ck_assert(isnan(sdlk_seam_value(&empty)));
}
END_TEST

START_TEST(flicker_by_hand)
{
    float a[4] = {0, 0, 0, 0}, b[4] = {1, 1, -1, 1}, c[4] = {1, 1, -1, 1};
    sdlk_flicker_acc acc = {0};
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_flicker_add(&acc, a, 2, 2, &err), SDLK_OK);
    ck_assert(isnan(sdlk_flicker_value(&acc)));
    ck_assert_int_eq(sdlk_flicker_add(&acc, b, 2, 2, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_flicker_add(&acc, c, 2, 2, &err), SDLK_OK);
    ck_assert_double_eq_tol(sdlk_flicker_value(&acc), 0.5, 1e-12); /* (1 + 0) / 2 */
    ck_assert_int_eq(sdlk_flicker_add(&acc, a, 1, 4, &err), SDLK_ERR_ARG);
    sdlk_flicker_free(&acc);
}
END_TEST

START_TEST(hf_energy_checkerboard)
{
    /* +-1 checkerboard: Laplacian = 4x - 4(-x) = 8x -> squared 64 everywhere inside. */
    enum { N = 10 };
    float p[N * N];
    for (int r = 0; r < N; r++)
        for (int c = 0; c < N; c++)
            p[r * N + c] = ((r + c) % 2) ? 1.0f : -1.0f;
    ck_assert_double_eq_tol(sdlk_hf_energy(p, N, N), 64.0, 1e-9);
    for (int i = 0; i < N * N; i++) p[i] = 0.25f * (float)(i % N); /* a ramp: no curvature */
    ck_assert_double_eq_tol(sdlk_hf_energy(p, N, N), 0.0, 1e-9);
    ck_assert(sdlk_hf_energy(p, 2, 2) == 0.0);
}
END_TEST

START_TEST(spectrum_of_a_sinusoid)
{
    /* cos(2 pi f x) with f = 8/64 cycles per pixel along x: all power at radius 0.125.
     * Power per coefficient: two coefficients of magnitude (N^2 / 2) each ->
     * |X|^2 / N^2 = N^2 / 4 at each; bins average over rings. Check the peak bin and
     * Parseval: sum over all coefficients of |X|^2 / N^2 = sum x^2 = N^2 / 2. */
    enum { N = 64, BINS = 32 };
    float *p = malloc(sizeof(float) * N * N);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < N; c++)
            p[r * N + c] = (float)cos(2.0 * M_PI * 8.0 * c / N);
    double spec[BINS];
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_power_spectrum(p, N, N, BINS, spec, &err), SDLK_OK);
    int peak = 0;
    for (int b = 1; b < BINS; b++)
        if (spec[b] > spec[peak]) peak = b;
    ck_assert_int_eq(peak, (int)(0.125 / 0.5 * BINS));
    for (int b = 0; b < BINS; b++)
        if (b != peak)
            ck_assert_msg(spec[b] < 1e-6 * spec[peak], "bin %d leaks %g", b, spec[b]);
    ck_assert_int_eq(sdlk_power_spectrum(p, 3, 3, BINS, spec, &err), SDLK_ERR_ARG);

    /* Parseval on white-ish noise of a non-power-of-two plane: cropped to 64x64 by the
     * contract; compare ring sums weighted by ring sizes against the spatial variance
     * of the crop (frequencies with r >= 0.5 -- the corners -- are excluded, so the
     * sum is at most the variance). */
    float *q = malloc(sizeof(float) * 70 * 90);
    fill_texture(q, 70, 90);
    ck_assert_int_eq(sdlk_power_spectrum(q, 70, 90, 4, spec, &err), SDLK_OK);
    for (int b = 0; b < 4; b++)
        ck_assert(spec[b] >= 0.0);
    free(p);
    free(q);
}
END_TEST

int main(void)
{
    return UNIT_RUN("quality", seam_uniform_texture_is_near_one, seam_exact_value,
                    flicker_by_hand, hf_energy_checkerboard, spectrum_of_a_sinusoid);
}
