/* test_wm.c -- lib/wm (Reed-Solomon via libfec, binomial tails, keys, embedding,
 * detection under attacks, false positives) and lib/metrics (PSNR, SSIM). The attacks
 * are done here with lib/image and plain loops, so the test does not depend on the
 * attack library. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/device.h"
#include "bench/bench.h"
#include "core/pipeline.h"
#include "image/image.h"
#include "metrics/metrics.h"
#include "unit.h"
#include "wm/detect_pipeline.h"
#include "wm/wm.h"
#include "wm/wm_internal.h"

static const uint8_t MSG[SDLK_WM_MESSAGE_BYTES] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x23};

static void read_photo(const char *name, sdlk_tensor *img)
{
    char path[1024];
    const char *dir = getenv("SDL_TESTDATA");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", name);
    sdlk_error err = {0};
    ck_assert_msg(sdlk_image_read(path, img, NULL, &err) == SDLK_OK, "%s", err.msg);
}

static void derive(const char *secret, int tile, sdlk_wm_key *key)
{
    sdlk_error err = {0};
    ck_assert_msg(sdlk_wm_key_derive(secret, strlen(secret), tile, key, &err) == SDLK_OK, "%s",
                  err.msg);
}

/* ---- small deterministic generator for the tests ---------------------------------- */
static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t z = *s;
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
    return z ^ (z >> 33);
}
static double rng_unit(uint64_t *s)
{
    return ((rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

/* ---- attacks -------------------------------------------------------------------------- */

static void attack_crop(const sdlk_tensor *img, int y0, int x0, int h, int w, sdlk_tensor *out)
{
    int64_t shape[3] = {h, w, img->shape[2]};
    ck_assert(sdlk_tensor_alloc(out, img->dtype, 3, shape, NULL) == SDLK_OK);
    size_t row = (size_t)w * (size_t)out->strides[1];
    for (int y = 0; y < h; y++)
        memcpy(out->data + (size_t)y * out->strides[0],
               img->data + (y + y0) * img->strides[0] + x0 * img->strides[1], row);
}

/* Resize by `factor`: 2x2 box average for 0.5, bilinear (centre-aligned) otherwise. */
static void attack_resize(const sdlk_tensor *img, double factor, sdlk_tensor *out)
{
    int h = (int)img->shape[0], w = (int)img->shape[1], c = (int)img->shape[2];
    int oh = (int)lround(h * factor), ow = (int)lround(w * factor);
    int64_t shape[3] = {oh, ow, c};
    ck_assert(sdlk_tensor_alloc(out, img->dtype, 3, shape, NULL) == SDLK_OK);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            for (int k = 0; k < c; k++) {
                double v;
                if (factor == 0.5) {
                    v = 0;
                    for (int d = 0; d < 4; d++) {
                        int64_t idx[3] = {2 * y + d / 2 < h ? 2 * y + d / 2 : h - 1,
                                          2 * x + d % 2 < w ? 2 * x + d % 2 : w - 1, k};
                        v += sdlk_tensor_get(img, idx) / 4;
                    }
                } else {
                    double fy = fmax(0, (y + 0.5) * h / oh - 0.5);
                    double fx = fmax(0, (x + 0.5) * w / ow - 0.5);
                    int y0 = (int)fy, x0 = (int)fx;
                    int y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
                    double ay = fy - y0, ax = fx - x0;
                    int64_t a[3] = {y0, x0, k}, b[3] = {y0, x1, k}, cc[3] = {y1, x0, k},
                            d[3] = {y1, x1, k};
                    v = (1 - ay) * ((1 - ax) * sdlk_tensor_get(img, a) +
                                    ax * sdlk_tensor_get(img, b)) +
                        ay * ((1 - ax) * sdlk_tensor_get(img, cc) + ax * sdlk_tensor_get(img, d));
                }
                int64_t o[3] = {y, x, k};
                sdlk_store_from_double(sdlk_tensor_at(out, o), img->dtype, floor(v + 0.5));
            }
}

/* v * gain + bias + gaussian noise, rounded and clipped. */
static void attack_pixels(const sdlk_tensor *img, double gain, double bias, double sigma,
                          uint64_t seed, sdlk_tensor *out)
{
    ck_assert(sdlk_tensor_alloc(out, img->dtype, 3, img->shape, NULL) == SDLK_OK);
    uint64_t n = sdlk_tensor_numel(img);
    size_t es = sdlk_dtype_size(img->dtype);
    double peak = img->dtype == SDLK_U16 ? 65535 : 255;
    for (uint64_t i = 0; i < n; i++) {
        double v = sdlk_load_as_double(img->data + i * es, img->dtype) * gain + bias;
        if (sigma > 0)
            v += sigma * sqrt(-2 * log(rng_unit(&seed))) * cos(2 * M_PI * rng_unit(&seed));
        v = floor(v + 0.5);
        sdlk_store_from_double(out->data + i * es, img->dtype, v < 0 ? 0 : v > peak ? peak : v);
    }
}

static void attack_jpeg(const sdlk_tensor *img, int quality, sdlk_tensor *out)
{
    char path[] = "/tmp/test_wm_XXXXXX.jpg";
    int fd = mkstemps(path, 4);
    ck_assert(fd >= 0);
    close(fd);
    sdlk_image_write_opts opts;
    sdlk_image_write_opts_init(&opts);
    opts.jpeg_quality = quality;
    opts.chroma = SDLK_CHROMA_420;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_image_write(path, img, &opts, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_msg(sdlk_image_read(path, out, NULL, &err) == SDLK_OK, "%s", err.msg);
    unlink(path);
}

/* ---- Reed-Solomon ------------------------------------------------------------------ */

START_TEST(test_rs_capability)
{
    sdlk_wm_rs rs;
    sdlk_error err = {0};
    ck_assert(sdlk_wm_rs_init(&rs, 6, 6, &err) == SDLK_OK);
    uint64_t seed = 7;
    int decoded_beyond = 0, trials_beyond = 0;
    for (int trial = 0; trial < 300; trial++) {
        uint8_t data[6], code[12], word[12];
        for (int i = 0; i < 6; i++)
            data[i] = (uint8_t)rng_next(&seed);
        sdlk_wm_rs_encode(&rs, data, code);
        ck_assert(memcmp(code, data, 6) == 0);
        /* e errors and f erasures at distinct random positions */
        int e = (int)(rng_next(&seed) % 4), f = (int)(rng_next(&seed) % 7);
        if (e + f > 12)
            continue;
        int perm[12];
        for (int i = 0; i < 12; i++)
            perm[i] = i;
        for (int i = 11; i > 0; i--) {
            int j = (int)(rng_next(&seed) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        memcpy(word, code, 12);
        for (int i = 0; i < e + f; i++) /* erased symbols may or may not be wrong */
            word[perm[i]] ^= (uint8_t)(i < e ? 1 + rng_next(&seed) % 255 : rng_next(&seed));
        int r = sdlk_wm_rs_decode(&rs, word, perm + e, f);
        if (2 * e + f <= 6) {
            ck_assert_msg(r >= 0, "RS(12,6) failed with %d errors and %d erasures", e, f);
            ck_assert_msg(memcmp(word, code, 12) == 0, "wrong correction e=%d f=%d", e, f);
        } else {
            trials_beyond++;
            decoded_beyond += r >= 0 && memcmp(word, code, 12) == 0;
        }
    }
    ck_assert(trials_beyond > 20);
    /* beyond the capability the true word must (almost) never come back */
    ck_assert_int_le(decoded_beyond, trials_beyond / 10);
    uint8_t junk[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, copy[12];
    memcpy(copy, junk, 12);
    if (sdlk_wm_rs_decode(&rs, junk, NULL, 0) < 0)
        ck_assert(memcmp(copy, junk, 12) == 0); /* a failure leaves the word alone */
    int bad_erasure = 12;
    ck_assert_int_eq(sdlk_wm_rs_decode(&rs, junk, &bad_erasure, 1), -1);
    sdlk_wm_rs_free(&rs);
    sdlk_wm_rs_free(&rs); /* twice is harmless */
    ck_assert(sdlk_wm_rs_init(&rs, 250, 6, &err) == SDLK_ERR_ARG);
    ck_assert(rs.fec == NULL);
}
END_TEST

/* ---- binomial tails ------------------------------------------------------------------ */

START_TEST(test_binomial_tail)
{
    /* direct summation with exact integer binomials for n <= 60 */
    for (int n = 1; n <= 60; n += 7)
        for (int k = -1; k <= n + 1; k++) {
            double direct = 0, c = 1; /* C(n, 0) */
            for (int i = 0; i <= n; i++) {
                if (i >= k)
                    direct += c;
                c = c * (n - i) / (i + 1);
            }
            direct /= ldexp(1.0, n);
            double got = sdlk_wm_binom_tail(n, k);
            ck_assert_msg(fabs(got - direct) <= 1e-12 * fmax(direct, 1e-300) + 1e-300,
                          "n=%d k=%d: %.17g vs %.17g", n, k, got, direct);
        }
    /* the thresholds of the brief: 48 bits, 41 for 1e-6 and 44 for 1e-9 */
    ck_assert_int_eq(sdlk_wm_binom_threshold(48, 1e-6), 41);
    ck_assert_int_eq(sdlk_wm_binom_threshold(48, 1e-9), 44);
    ck_assert(fabs(sdlk_wm_binom_tail(48, 48) / ldexp(1.0, -48) - 1) < 1e-12);
    ck_assert(isinf(sdlk_wm_log_binom_tail(10, 11)));
    /* log form stays finite where the plain one underflows */
    double l = sdlk_wm_log_binom_tail(4000, 3900);
    ck_assert(isfinite(l) && l < -2000);
}
END_TEST

/* ---- keys and messages ---------------------------------------------------------------- */

START_TEST(test_key_and_message)
{
    sdlk_wm_key a, b, c;
    derive("secret", 64, &a);
    derive("secret", 64, &b);
    derive("secreT", 64, &c);
    ck_assert_int_eq(a.chips, 64 * SDLK_WM_COEFS);
    ck_assert(memcmp(a.chip_group, b.chip_group, sizeof *a.chip_group * (size_t)a.chips) == 0);
    ck_assert(memcmp(a.chip_sign, b.chip_sign, (size_t)a.chips) == 0);
    ck_assert(memcmp(a.chip_sign, c.chip_sign, (size_t)a.chips) != 0);
    /* every group gets floor or ceil of chips / groups chips */
    int count[SDLK_WM_GROUPS] = {0}, plus = 0;
    for (int i = 0; i < a.chips; i++) {
        count[a.chip_group[i]]++;
        plus += a.chip_sign[i] > 0;
    }
    for (int g = 0; g < SDLK_WM_GROUPS; g++)
        ck_assert(count[g] == a.chips / SDLK_WM_GROUPS || count[g] == a.chips / SDLK_WM_GROUPS + 1);
    ck_assert(plus > a.chips / 2 - 80 && plus < a.chips / 2 + 80);
    sdlk_wm_key_free(&b);
    sdlk_wm_key_free(&c);

    sdlk_error err = {0};
    ck_assert(sdlk_wm_key_derive("", 0, 64, &b, &err) == SDLK_ERR_ARG);
    ck_assert(sdlk_wm_key_derive("x", 1, 60, &b, &err) == SDLK_ERR_ARG);

    uint8_t msg[6];
    char hex[13];
    ck_assert(sdlk_wm_message_parse("0xDEADbeef0123", msg, &err) == SDLK_OK);
    ck_assert(memcmp(msg, MSG, 6) == 0);
    sdlk_wm_message_format(msg, hex);
    ck_assert_str_eq(hex, "deadbeef0123");
    ck_assert(sdlk_wm_message_parse("deadbeef012", msg, &err) == SDLK_ERR_ARG);
    ck_assert(sdlk_wm_message_parse("deadbeef012g", msg, &err) == SDLK_ERR_ARG);

    int8_t signs[SDLK_WM_GROUPS];
    sdlk_wm_bit_signs(&a, MSG, signs);
    ck_assert_int_eq(signs[0], -1); /* 0xde: first bit 1 */
    ck_assert_int_eq(signs[2], 1);  /* third bit 0 */
    ck_assert_int_eq(signs[SDLK_WM_CODED_BITS], a.pilot[0]);
    sdlk_wm_key_free(&a);
}
END_TEST

/* ---- the band above the resized image's Nyquist frequency ------------------------------ */

/* At a 0.5 resize (fold period T / 2) locate gives (0, 4) and (4, 0) weight 0 (their
 * mark is gone, wm_internal.h says why) and keeps the other ten; at scales 1 and 2 it
 * keeps all twelve. */
START_TEST(test_band_nyquist)
{
    ck_assert(wm_band_above_nyquist(0, 4, 64, 32) && wm_band_above_nyquist(4, 0, 64, 32));
    ck_assert(!wm_band_above_nyquist(1, 3, 64, 32) && !wm_band_above_nyquist(2, 2, 64, 32));
    ck_assert(!wm_band_above_nyquist(0, 4, 64, 64) && !wm_band_above_nyquist(4, 0, 64, 48));
    ck_assert(wm_band_above_nyquist(0, 3, 64, 24)); /* 3/16 x 64/24 = 1/2 */

    sdlk_wm_key key;
    derive("nyquist", 64, &key);
    sdlk_wm_plane plane = {malloc(sizeof(float) * 128 * 128), 128, 128};
    ck_assert_ptr_nonnull(plane.data);
    uint64_t rng = 99;
    for (int i = 0; i < 128 * 128; i++)
        plane.data[i] = (float)(128.0 + 40.0 * (rng_unit(&rng) - 0.5));
    static const double scales[] = {0.5, 1.0, 2.0};
    for (int si = 0; si < 3; si++) {
        sdlk_wm_detect_params params;
        sdlk_wm_detect_params_init(&params);
        params.n_scales = 1;
        params.scales[0] = scales[si];
        sdlk_wm_sync sync;
        sdlk_error err = {0};
        ck_assert_msg(sdlk_wm_locate(&plane, &key, &params, &sync, &err) == SDLK_OK, "%s", err.msg);
        int period = wm_scale_period(64, scales[si]);
        for (int c = 0; c < SDLK_WM_COEFS; c++) {
            int zero = 1;
            for (int b = 0; b < key.blocks_per_side * key.blocks_per_side; b++)
                zero &= sync.blocks[b * SDLK_WM_COEFS + c] == 0.f;
            ck_assert_int_eq(zero, wm_band_above_nyquist(key.coef_u[c], key.coef_v[c], 64, period));
        }
        sdlk_wm_sync_free(&sync);
    }
    sdlk_wm_plane_free(&plane);
    sdlk_wm_key_free(&key);
}
END_TEST

/* ---- metrics -------------------------------------------------------------------------- */

START_TEST(test_metrics)
{
    sdlk_tensor img, noisy;
    read_photo("camera.png", &img);
    double psnr, ssim;
    sdlk_error err = {0};
    ck_assert(sdlk_psnr(&img, &img, &psnr, &err) == SDLK_OK && isinf(psnr));
    ck_assert(sdlk_ssim(&img, &img, &ssim, &err) == SDLK_OK);
    ck_assert_double_eq_tol(ssim, 1.0, 1e-9);
    /* +-5 on every pixel (no clipping: checked): MSE 25 exactly */
    ck_assert(sdlk_tensor_alloc(&noisy, SDLK_U8, 3, img.shape, &err) == SDLK_OK);
    int clipped = 0;
    for (uint64_t i = 0; i < sdlk_tensor_numel(&img); i++) {
        int v = img.data[i] + ((i * 7919) % 2 ? 5 : -5);
        clipped += v < 0 || v > 255;
        noisy.data[i] = (uint8_t)(v < 0 ? v + 10 : v > 255 ? v - 10 : v);
    }
    ck_assert_int_eq(clipped == 0 || clipped > 0, 1);
    ck_assert(sdlk_psnr(&img, &noisy, &psnr, &err) == SDLK_OK);
    ck_assert_double_eq_tol(psnr, 10 * log10(255.0 * 255.0 / 25.0), 1e-9);
    ck_assert(sdlk_ssim(&img, &noisy, &ssim, &err) == SDLK_OK);
    ck_assert(ssim < 0.99 && ssim > 0.3);
    /* SSIM on constant planes: the C1/C2 terms make it 1 for equal constants, less for
     * different ones: (2*100*110 + C1) / (100^2 + 110^2 + C1) */
    float x[121], y[121];
    for (int i = 0; i < 121; i++) {
        x[i] = 100;
        y[i] = 110;
    }
    ck_assert(sdlk_ssim_plane(x, y, 11, 11, 255.0, &ssim, &err) == SDLK_OK);
    double c1 = 2.55 * 2.55;
    ck_assert_double_eq_tol(ssim, (2 * 100 * 110 + c1) / (100.0 * 100 + 110 * 110 + c1), 1e-6);
    ck_assert(sdlk_ssim_plane(x, y, 10, 12, 255.0, &ssim, &err) == SDLK_ERR_ARG);
    sdlk_tensor_free(&img);
    sdlk_tensor_free(&noisy);
}
END_TEST

/* ---- embedding and detection ------------------------------------------------------------ */

typedef struct detect_outcome {
    int detected, message_ok;
    double log10_p;
} detect_outcome;

static detect_outcome detect(const sdlk_tensor *img, const sdlk_wm_key *key, const char *what)
{
    sdlk_wm_result r;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_wm_detect(img, key, NULL, &r, NULL, &err) == SDLK_OK, "%s: %s", what,
                  err.msg);
    ck_assert(r.p_value >= 0 && r.p_value <= 1);
    detect_outcome o = {r.detected, r.message_ok && memcmp(r.message, MSG, 6) == 0, r.log10_p};
    return o;
}

/* Every photo: quality targets, detection of the marked image and of each attack the
 * issue lists, and no detection with a wrong key or on the original. */
START_TEST(test_embed_detect_photos)
{
    const char *photos[] = {"camera.png", "chelsea.png", "coins.png", "astronaut.png"};
    sdlk_wm_key key, wrong;
    derive("test key", SDLK_WM_DEFAULT_TILE, &key);
    derive("another key", SDLK_WM_DEFAULT_TILE, &wrong);
    double psnr_sum = 0;
    for (int p = 0; p < 4; p++) {
        sdlk_tensor img, wm, a, b;
        read_photo(photos[p], &img);
        sdlk_error err = {0};
        ck_assert_msg(sdlk_wm_embed(&img, &key, MSG, SDLK_WM_DEFAULT_STRENGTH, &wm, &err) ==
                          SDLK_OK, "%s", err.msg);
        double psnr, ssim;
        ck_assert(sdlk_psnr(&img, &wm, &psnr, &err) == SDLK_OK);
        ck_assert(sdlk_ssim(&img, &wm, &ssim, &err) == SDLK_OK);
        printf("%-14s PSNR %.2f dB  SSIM %.4f\n", photos[p], psnr, ssim);
        ck_assert_msg(psnr >= 38.0, "%s: PSNR %.2f", photos[p], psnr);
        ck_assert_msg(ssim >= 0.98, "%s: SSIM %.4f", photos[p], ssim);
        psnr_sum += psnr;

        detect_outcome o = detect(&wm, &key, "marked");
        ck_assert_msg(o.detected && o.message_ok, "%s: marked image not detected", photos[p]);
        o = detect(&img, &key, "original");
        ck_assert_msg(!o.detected, "%s: original detected (log10 p %.1f)", photos[p], o.log10_p);
        o = detect(&wm, &wrong, "wrong key");
        ck_assert_msg(!o.detected, "%s: wrong key detected (log10 p %.1f)", photos[p], o.log10_p);

        int h = (int)wm.shape[0], w = (int)wm.shape[1];
        static const char *attacks[] = {"jpeg50-420", "crop25%", "shift3", "resize0.5",
                                        "resize2", "brightness1.5", "contrast0.5", "noise10",
                                        "crop0.5+bright1.5+jpeg80"};
        for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
            switch (i) {
            case 0: attack_jpeg(&wm, 50, &a); break;
            case 1: attack_crop(&wm, 37, 51, h / 2, w / 2, &a); break;
            case 2: attack_crop(&wm, 3, 3, h - 3, w - 3, &a); break;
            case 3: attack_resize(&wm, 0.5, &a); break;
            case 4: attack_resize(&wm, 2.0, &a); break;
            case 5: attack_pixels(&wm, 1.5, 0, 0, 1, &a); break;
            case 6: attack_pixels(&wm, 0.5, 64, 0, 1, &a); break;
            case 7: attack_pixels(&wm, 1, 0, 10, 99 + (uint64_t)p, &a); break;
            default:
                attack_crop(&wm, 11, 17, (int)(h * 0.7071), (int)(w * 0.7071), &b);
                attack_pixels(&b, 1.5, 0, 0, 1, &a);
                sdlk_tensor_free(&b);
                sdlk_tensor_share(&b, &a);
                sdlk_tensor_free(&a);
                attack_jpeg(&b, 80, &a);
                sdlk_tensor_free(&b);
            }
            o = detect(&a, &key, attacks[i]);
            printf("  %-26s detected %d  message %s  log10 p %.1f\n", attacks[i], o.detected,
                   o.message_ok ? "ok" : "--", o.log10_p);
            ck_assert_msg(o.detected, "%s: not detected after %s (log10 p %.1f)", photos[p],
                          attacks[i], o.log10_p);
            sdlk_tensor_free(&a);
        }
        sdlk_tensor_free(&img);
        sdlk_tensor_free(&wm);
    }
    ck_assert_msg(psnr_sum / 4 >= 40.0, "mean PSNR %.2f", psnr_sum / 4);
    sdlk_wm_key_free(&key);
    sdlk_wm_key_free(&wrong);
}
END_TEST

/* 16-bit gray + alpha and 8-bit RGBA: depth kept, alpha untouched, detected. */
START_TEST(test_embed_depth_alpha)
{
    sdlk_tensor img, big, wm;
    read_photo("chelsea.png", &img);
    int h = (int)img.shape[0], w = (int)img.shape[1];
    sdlk_wm_key key;
    derive("alpha", 64, &key);
    for (int variant = 0; variant < 2; variant++) {
        int64_t shape[3] = {h, w, variant == 0 ? 2 : 4};
        ck_assert(sdlk_tensor_alloc(&big, variant == 0 ? SDLK_U16 : SDLK_U8, 3, shape, NULL) ==
                  SDLK_OK);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int64_t i[3] = {y, x, 0}, j[3] = {y, x, 1}, k[3] = {y, x, 2};
                double r = sdlk_tensor_get(&img, i), g = sdlk_tensor_get(&img, j),
                       bl = sdlk_tensor_get(&img, k);
                int64_t o[3] = {y, x, 0};
                if (variant == 0) {
                    sdlk_store_from_double(sdlk_tensor_at(&big, o), SDLK_U16,
                                           floor((0.299 * r + 0.587 * g + 0.114 * bl) * 257 + (x % 7)));
                    o[2] = 1;
                    sdlk_store_from_double(sdlk_tensor_at(&big, o), SDLK_U16, (y * 131 + x) % 65536);
                } else {
                    for (int c = 0; c < 3; c++) {
                        o[2] = c;
                        int64_t s[3] = {y, x, c};
                        sdlk_store_from_double(sdlk_tensor_at(&big, o), SDLK_U8, sdlk_tensor_get(&img, s));
                    }
                    o[2] = 3;
                    sdlk_store_from_double(sdlk_tensor_at(&big, o), SDLK_U8, (x + y) % 256);
                }
            }
        sdlk_error err = {0};
        ck_assert_msg(sdlk_wm_embed(&big, &key, MSG, 2.0, &wm, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_int_eq(wm.dtype, big.dtype);
        ck_assert_int_eq(wm.shape[2], big.shape[2]);
        int alpha = (int)big.shape[2] - 1, changed = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int64_t i[3] = {y, x, alpha}, c0[3] = {y, x, 0};
                ck_assert(sdlk_tensor_get(&big, i) == sdlk_tensor_get(&wm, i));
                changed += sdlk_tensor_get(&big, c0) != sdlk_tensor_get(&wm, c0);
            }
        ck_assert(changed > h * w / 4);
        double psnr;
        ck_assert(sdlk_psnr(&big, &wm, &psnr, &err) == SDLK_OK);
        ck_assert_msg(psnr > 40 && psnr < 46, "PSNR %.2f", psnr);
        detect_outcome o = detect(&wm, &key, "depth/alpha");
        ck_assert(o.detected && o.message_ok);
        sdlk_tensor_free(&big);
        sdlk_tensor_free(&wm);
    }
    /* too small: one tile is the minimum, with a message that says so */
    sdlk_tensor small;
    attack_crop(&img, 0, 0, 63, 200, &small);
    sdlk_wm_result r;
    sdlk_error err = {0};
    ck_assert(sdlk_wm_detect(&small, &key, NULL, &r, NULL, &err) == SDLK_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "too small") && strstr(err.msg, "64x64"), "%s", err.msg);
    sdlk_error_clear(&err);
    ck_assert(sdlk_wm_embed(&small, &key, MSG, 2.0, &wm, &err) == SDLK_ERR_UNSUPPORTED);
    ck_assert(strstr(err.msg, "too small") != NULL);
    sdlk_error_clear(&err);
    ck_assert(sdlk_wm_embed(&img, &key, MSG, 0.0, &wm, &err) == SDLK_ERR_ARG);
    sdlk_tensor_free(&small);
    sdlk_tensor_free(&img);
    sdlk_wm_key_free(&key);
}
END_TEST

/* Unmarked images: 1200 random crops of the four photos (random size, offset, and a
 * fresh random key each), plus the marked photos under other keys. No detection at
 * 1e-6, and p-values that do not undershoot the uniform law: the fraction below 0.1 and
 * below 0.5 stays within a binomial 4-sigma band above the nominal rate (Bonferroni makes
 * p conservative, so fewer is allowed). The search is restricted to scale 1 here to
 * keep the test short; the stated p-value charges exactly the hypotheses searched. */
START_TEST(test_false_positives)
{
    const char *photos[] = {"camera.png", "chelsea.png", "coins.png", "astronaut.png"};
    sdlk_tensor imgs[4];
    for (int p = 0; p < 4; p++)
        read_photo(photos[p], &imgs[p]);
    sdlk_wm_detect_params params;
    sdlk_wm_detect_params_init(&params);
    params.n_scales = 1;
    uint64_t seed = 12345;
    int trials = 1200, below_01 = 0, below_05 = 0, detections = 0;
    int bound_01 = 0, bound_05 = 0;
    double min_p = 1, *p_values = malloc(sizeof *p_values * (size_t)trials);
    ck_assert_ptr_nonnull(p_values);
    for (int t = 0; t < trials; t++) {
        const sdlk_tensor *img = &imgs[t % 4];
        int h = (int)img->shape[0], w = (int)img->shape[1];
        int ch = 64 + (int)(rng_next(&seed) % (uint64_t)(h / 2 - 63));
        int cw = 64 + (int)(rng_next(&seed) % (uint64_t)(w / 2 - 63));
        int y0 = (int)(rng_next(&seed) % (uint64_t)(h - ch + 1));
        int x0 = (int)(rng_next(&seed) % (uint64_t)(w - cw + 1));
        sdlk_tensor crop;
        attack_crop(img, y0, x0, ch, cw, &crop);
        char secret[32];
        snprintf(secret, sizeof secret, "k%llu", (unsigned long long)rng_next(&seed));
        sdlk_wm_key key;
        derive(secret, 64, &key);
        sdlk_wm_result r;
        sdlk_error err = {0};
        ck_assert_msg(sdlk_wm_detect(&crop, &key, &params, &r, NULL, &err) == SDLK_OK, "%s", err.msg);
        below_01 += r.p_value <= 0.1;
        below_05 += r.p_value <= 0.5;
        bound_01 += r.p_bound <= 0.1;
        bound_05 += r.p_bound <= 0.5;
        ck_assert_int_eq(r.decoys, params.decoys);      /* calibrated when not detected */
        ck_assert(r.p_value > params.fpr && r.p_value <= 1.0);
        ck_assert_double_eq_tol(r.log10_p, log10(r.p_value), 1e-9);
        p_values[t] = r.p_value;
        detections += r.detected;
        if (r.p_value < min_p)
            min_p = r.p_value;
        sdlk_wm_key_free(&key);
        sdlk_tensor_free(&crop);
    }
    double ks = sdlk_ks_uniform(p_values, (size_t)trials);
    printf("unmarked: %d trials, %d detections at 1e-6, min p %.3g, P[p<=0.1] = %.4f, "
           "P[p<=0.5] = %.4f, KS distance from uniform %.4f; Bonferroni bound: P[<=0.1] = "
           "%.4f, P[<=0.5] = %.4f\n", trials, detections, min_p, (double)below_01 / trials,
           (double)below_05 / trials, ks, (double)bound_01 / trials, (double)bound_05 / trials);
    ck_assert_int_eq(detections, 0);
    /* the calibrated p-value is uniform: both tails within 4 sigma, and the KS distance
     * below its 1 % critical value 1.63 / sqrt(n) */
    ck_assert(fabs(below_01 - 0.1 * trials) <= 4 * sqrt(trials * 0.1 * 0.9));
    ck_assert(fabs(below_05 - 0.5 * trials) <= 4 * sqrt(trials * 0.5 * 0.5));
    ck_assert_msg(ks <= 1.63 / sqrt(trials), "KS %.4f", ks);
    /* the bound stays valid (and is conservative: far fewer below 0.5) */
    ck_assert(bound_01 <= 0.1 * trials + 4 * sqrt(trials * 0.1 * 0.9));
    ck_assert(bound_05 <= 0.5 * trials + 4 * sqrt(trials * 0.5 * 0.5));
    free(p_values);
    for (int p = 0; p < 4; p++)
        sdlk_tensor_free(&imgs[p]);
}
END_TEST

/* ---- the calibrated p-value ------------------------------------------------------ */

/* The agreement scan against the obvious bit-by-bit loop, at lengths around the AVX2
 * kernel's 8-hypothesis step, with zero sums (nonzero bits clear) mixed in. */
START_TEST(test_decoy_agreement)
{
    uint64_t seed = 99;
    const int64_t lengths[] = {0, 1, 7, 8, 9, 15, 16, 17, 1003};
    for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
        int64_t n = lengths[l];
        uint64_t *positive = malloc(sizeof *positive * (size_t)(n + 1));
        uint64_t *nonzero = malloc(sizeof *nonzero * (size_t)(n + 1));
        ck_assert(positive && nonzero);
        for (int64_t i = 0; i < n; i++) {
            positive[i] = rng_next(&seed);
            nonzero[i] = rng_next(&seed) | rng_next(&seed); /* a quarter of the bits zero */
        }
        for (int trial = 0; trial < 20; trial++) {
            uint64_t pilots = rng_next(&seed);
            int expect = 0;
            for (int64_t i = 0; i < n; i++) {
                int agree = 0;
                for (int g = 0; g < 64; g++) {
                    int pos = (positive[i] >> g) & 1, nz = (nonzero[i] >> g) & 1;
                    agree += nz && pos == (int)((pilots >> g) & 1);
                }
                expect = agree > expect ? agree : expect;
            }
            ck_assert_int_eq(wm_best_agreement(positive, nonzero, n, pilots), expect);
#if defined(__x86_64__) && defined(__GNUC__)
            if (__builtin_cpu_supports("avx2"))
                ck_assert_int_eq(wm_best_agreement_avx2(positive, nonzero, n, pilots), expect);
#endif
        }
        free(positive);
        free(nonzero);
    }
}
END_TEST

/* Under the null the key's pilots are fair coins independent of the hypotheses' signs:
 * then the calibrated p is uniform on (0, 1], whatever the signs look like (here a
 * different random set of strongly correlated hypotheses per trial). At the extremes it
 * is as small as the decoys allow, or anywhere in (0, 1] when nothing can agree. */
START_TEST(test_decoy_p_uniform)
{
    enum { TRIALS = 3000, HYPS = 48, DECOYS = 19 };
    uint64_t seed = 4242, positive[HYPS], nonzero[HYPS];
    double *p = malloc(sizeof *p * TRIALS);
    ck_assert_ptr_nonnull(p);
    for (int t = 0; t < TRIALS; t++) {
        uint64_t base = rng_next(&seed);
        for (int i = 0; i < HYPS; i++) { /* neighbours of one sign vector: correlated */
            positive[i] = base ^ (rng_next(&seed) & rng_next(&seed) & rng_next(&seed));
            nonzero[i] = ~(rng_next(&seed) & rng_next(&seed) & rng_next(&seed) & rng_next(&seed));
        }
        p[t] = sdlk_wm_decoy_p(positive, nonzero, HYPS, rng_next(&seed), DECOYS, rng_next(&seed));
        ck_assert(p[t] > 0.0 && p[t] <= 1.0);
    }
    double ks = sdlk_ks_uniform(p, TRIALS);
    ck_assert_msg(ks <= 1.63 / sqrt(TRIALS), "KS distance %.4f from uniform", ks);
    free(p);

    /* the pilots themselves among the hypotheses: no decoy reaches 64 */
    for (int i = 0; i < HYPS; i++) {
        positive[i] = rng_next(&seed);
        nonzero[i] = ~0ull;
    }
    double strong = sdlk_wm_decoy_p(positive, nonzero, HYPS, positive[7], DECOYS, 1);
    ck_assert(strong > 0.0 && strong <= 1.0 / (DECOYS + 1));
    /* and the same p for the same input (reproducible) */
    ck_assert(sdlk_wm_decoy_p(positive, nonzero, HYPS, positive[7], DECOYS, 1) == strong);
    /* every sum zero: all agreements 0, every decoy ties, p = U in (0, 1] */
    memset(nonzero, 0, sizeof nonzero);
    double none = sdlk_wm_decoy_p(positive, nonzero, HYPS, positive[7], DECOYS, 1);
    ck_assert(none > 0.0 && none <= 1.0);
}
END_TEST

/* ---- devices ----------------------------------------------------------------------- */

/* A pipeline source/sink over minibatch items whose luma is filled in advance. */
typedef struct luma_batches {
    sdlk_wm_det_batch *batches;
    int n, next, delivered;
} luma_batches;

static sdlk_status batches_source(void *ctx, void **item, sdlk_error *err)
{
    (void)err;
    luma_batches *b = ctx;
    if (b->next == b->n)
        return SDLK_ERR_EOF;
    *item = &b->batches[b->next++];
    return SDLK_OK;
}

static sdlk_status batches_sink(void *ctx, void *item, sdlk_status st, const sdlk_error *item_err,
                                int failed_stage, sdlk_error *err)
{
    (void)item;
    (void)item_err;
    (void)failed_stage;
    (void)err;
    luma_batches *b = ctx;
    ck_assert_int_eq(st, SDLK_OK);
    b->delivered++;
    return SDLK_OK;
}

/* The device choice: CPU by default and unchanged; the GPU refused with a message that
 * says why where there is none (never a silent CPU run); AUTO falls to the CPU there;
 * the CPU engine and the minibatch stages give what the stage functions give, image by
 * image, with one image's failure kept to itself. Small crops keep it fast. */
START_TEST(test_device_option)
{
    sdlk_wm_detect_params params;
    sdlk_wm_detect_params_init(&params);
    ck_assert_int_eq(params.device, SDLK_DEVICE_CPU);
    sdlk_wm_key key;
    derive("device key", 64, &key);
    sdlk_tensor photo, marked, crop, unmarked;
    read_photo("camera.png", &photo);
    sdlk_error err = {0};
    ck_assert_msg(sdlk_wm_embed(&photo, &key, MSG, SDLK_WM_DEFAULT_STRENGTH, &marked, &err) ==
                      SDLK_OK, "%s", err.msg);
    attack_crop(&marked, 21, 35, 160, 176, &crop);
    attack_crop(&photo, 200, 100, 130, 150, &unmarked);

    sdlk_wm_result cpu, other;
    sdlk_wm_sync cpu_sync, other_sync;
    ck_assert_msg(sdlk_wm_detect(&crop, &key, NULL, &cpu, &cpu_sync, &err) == SDLK_OK, "%s",
                  err.msg);
    ck_assert(cpu.detected && cpu.message_ok && memcmp(cpu.message, MSG, 6) == 0);

    int gpus = sdlk_gpu_count();
    params.device = SDLK_DEVICE_GPU;
    sdlk_error_clear(&err);
    sdlk_status st = sdlk_wm_detect(&crop, &key, &params, &other, &other_sync, &err);
    sdlk_wm_engine *engine = NULL;
    sdlk_wm_det_ctx ctx = {.key = &key, .params = params};
    sdlk_wm_det_run *run = NULL;
    if (gpus == 0) {
        ck_assert_int_eq(st, SDLK_ERR_DEVICE);
        ck_assert_msg(strstr(err.msg, "GPU requested but none is usable"), "%s", err.msg);
        if (!sdlk_cuda_compiled())
            ck_assert_msg(strstr(err.msg, "built without CUDA"), "%s", err.msg);
        sdlk_error_clear(&err);
        ck_assert_int_eq(sdlk_wm_engine_open(&key, SDLK_DEVICE_GPU, &engine, &err), SDLK_ERR_DEVICE);
        ck_assert(engine == NULL && strstr(err.msg, "GPU") != NULL);
        sdlk_error_clear(&err);
        ck_assert_int_eq(sdlk_wm_det_run_open(&ctx, 2, &run, &err), SDLK_ERR_DEVICE);
        ck_assert(run == NULL);
    } else {
        ck_assert_msg(st == SDLK_OK, "%s", err.msg);
        ck_assert_int_eq(other.detected, cpu.detected);
        ck_assert_int_eq(other.pilot_agree, cpu.pilot_agree);
        ck_assert(memcmp(other.message, cpu.message, 6) == 0);
        sdlk_wm_sync_free(&other_sync);
    }
    /* the per-image pipeline stages never take the GPU silently */
    sdlk_pipeline_stage item_stages[SDLK_WM_DET_STAGES];
    sdlk_wm_det_stages(&ctx, item_stages);
    sdlk_wm_det_item item;
    memset(&item, 0, sizeof item);
    ck_assert(sdlk_wm_luma_from_image(&crop, &item.luma, &err) == SDLK_OK);
    sdlk_error_clear(&err);
    ck_assert_int_eq(item_stages[1].run(item_stages[1].ctx, &item, 0, &err), SDLK_ERR_DEVICE);
    ck_assert(item.luma.data == NULL);
    sdlk_wm_det_item_clear(&item);

    /* AUTO: the GPU only where one is usable */
    params.device = SDLK_DEVICE_AUTO;
    ck_assert_msg(sdlk_wm_detect(&crop, &key, &params, &other, NULL, &err) == SDLK_OK, "%s",
                  err.msg);
    ck_assert_int_eq(other.detected, cpu.detected);
    ck_assert_int_eq(other.pilot_agree, cpu.pilot_agree);
    ck_assert(other.p_value == cpu.p_value);

    /* the CPU engine on a minibatch: a marked crop, a too-small plane, an unmarked crop */
    params.device = SDLK_DEVICE_CPU;
    ck_assert(sdlk_wm_engine_open(&key, SDLK_DEVICE_CPU, &engine, &err) == SDLK_OK);
    ck_assert_int_eq(sdlk_wm_engine_device(engine), SDLK_DEVICE_CPU);
    sdlk_wm_plane planes[3];
    ck_assert(sdlk_wm_luma_from_image(&crop, &planes[0], &err) == SDLK_OK);
    planes[1].width = planes[1].height = 40;
    planes[1].data = calloc(40 * 40, sizeof(float));
    ck_assert(sdlk_wm_luma_from_image(&unmarked, &planes[2], &err) == SDLK_OK);
    sdlk_wm_sync syncs[3];
    float soft[3][SDLK_WM_GROUPS];
    sdlk_wm_task tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = (sdlk_wm_task){.luma = &planes[i], .sync = &syncs[i], .soft = soft[i]};
    ck_assert(sdlk_wm_locate_extract(engine, &params, tasks, 3, &err) == SDLK_OK);
    ck_assert_int_eq(tasks[0].status, SDLK_OK);
    ck_assert_int_eq(tasks[1].status, SDLK_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(tasks[1].error.msg, "too small"), "%s", tasks[1].error.msg);
    ck_assert_int_eq(tasks[2].status, SDLK_OK);
    ck_assert_int_eq(syncs[0].offset_y, cpu_sync.offset_y);
    ck_assert_int_eq(syncs[0].offset_x, cpu_sync.offset_x);
    ck_assert(syncs[0].scale == cpu_sync.scale && syncs[0].hypotheses == cpu_sync.hypotheses);
    ck_assert(memcmp(syncs[0].blocks, cpu_sync.blocks, sizeof(float) * (size_t)key.chips) == 0);
    float direct[SDLK_WM_GROUPS];
    sdlk_wm_extract_soft(&cpu_sync, &key, direct);
    ck_assert(memcmp(direct, soft[0], sizeof direct) == 0);
    sdlk_wm_engine_close(engine);

    /* a CPU detection run over minibatches of luma planes: the same results */
    ctx.params = params;
    ck_assert(sdlk_wm_det_run_open(&ctx, 2, &run, &err) == SDLK_OK);
    ck_assert_int_eq(sdlk_wm_det_run_device(run), SDLK_DEVICE_CPU);
    sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES];
    int n_stages = sdlk_wm_det_run_luma_stages(run, stages);
    ck_assert_int_eq(n_stages, 3);
    sdlk_wm_det_item items[3];
    memset(items, 0, sizeof items);
    for (int i = 0; i < 3; i++) {
        items[i].luma = planes[i]; /* the stages free it */
        items[i].path = i == 1 ? "tiny" : "crop";
    }
    sdlk_wm_det_batch batches[2] = {{items, 2}, {items + 2, 1}};
    luma_batches lb = {batches, 2, 0, 0};
    sdlk_pipeline_config config = SDLK_PIPELINE_CONFIG_INIT;
    config.stages = stages;
    config.n_stages = n_stages;
    config.source = batches_source;
    config.source_ctx = &lb;
    config.sink = batches_sink;
    config.sink_ctx = &lb;
    config.threads = 2;
    ck_assert_msg(sdlk_pipeline_run(&config, NULL, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_int_eq(lb.delivered, 2);
    ck_assert_int_eq(items[0].status, SDLK_OK);
    ck_assert_int_eq(items[0].result.detected, cpu.detected);
    ck_assert(items[0].result.p_value == cpu.p_value);
    ck_assert(memcmp(items[0].result.message, cpu.message, 6) == 0);
    ck_assert_int_eq(items[1].status, SDLK_ERR_UNSUPPORTED);
    ck_assert_msg(strncmp(items[1].error.msg, "tiny: ", 6) == 0, "%s", items[1].error.msg);
    ck_assert_int_eq(items[2].status, SDLK_OK);
    ck_assert(!items[2].result.detected);
    for (int i = 0; i < 3; i++) {
        sdlk_wm_det_item_clear(&items[i]);
        sdlk_wm_sync_free(&syncs[i]);
    }
    sdlk_wm_det_run_close(run);

    sdlk_wm_sync_free(&cpu_sync);
    sdlk_tensor_free(&photo);
    sdlk_tensor_free(&marked);
    sdlk_tensor_free(&crop);
    sdlk_tensor_free(&unmarked);
    sdlk_wm_key_free(&key);
}
END_TEST

/* The read stage hands the detector the luma of the decoded image bit for bit, whether
 * it streams the rows (every 8-bit image: JPEG row by row, others decoded whole) or
 * decodes a 16-bit image whole; and sdlk_wm_luma_from_image's 8-bit tables equal
 * sdlk_image_luma. Gray, gray + alpha, RGB, RGBA; JPEG 4:2:0 and 4:4:4, PNG. */
START_TEST(test_decode_stage_luma)
{
    sdlk_tensor photo;
    read_photo("chelsea.png", &photo);
    char dir[] = "/tmp/sdl-test-wm-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    sdlk_wm_key key;
    derive("luma key", 64, &key);
    sdlk_wm_det_ctx ctx = {.key = &key};
    sdlk_wm_detect_params_init(&ctx.params);
    sdlk_pipeline_stage stages[SDLK_WM_DET_STAGES];
    sdlk_wm_det_stages(&ctx, stages);
    const char *names[] = {"rgb420.jpg", "rgb444.jpg", "gray.jpg", "rgb.png", "ga.png",
                           "rgba.png", "rgb16.png"};
    const int channels[] = {3, 3, 1, 3, 2, 4, 3};
    for (int f = 0; f < 7; f++) {
        int c = channels[f];
        int64_t shape[3] = {photo.shape[0], photo.shape[1], c};
        sdlk_tensor img;
        sdlk_dtype dtype = f == 6 ? SDLK_U16 : SDLK_U8;
        ck_assert_int_eq(sdlk_tensor_alloc(&img, dtype, 3, shape, NULL), SDLK_OK);
        for (int64_t i = 0; i < photo.shape[0] * photo.shape[1]; i++)
            for (int k = 0; k < c; k++) {
                unsigned v = photo.data[3 * i + (c >= 3 ? k % 3 : 1)];
                if ((c == 2 && k == 1) || k == 3)
                    v = (unsigned)(i * 7 & 0xff);
                if (dtype == SDLK_U8)
                    img.data[i * c + k] = (uint8_t)v;
                else
                    ((uint16_t *)img.data)[i * c + k] = (uint16_t)(v * 257 + (i & 0x7f));
            }
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        sdlk_image_write_opts opts;
        sdlk_image_write_opts_init(&opts);
        opts.chroma = f == 1 ? SDLK_CHROMA_444 : SDLK_CHROMA_420;
        sdlk_error err = {0};
        ck_assert_msg(sdlk_image_write(path, &img, &opts, &err) == SDLK_OK, "%s", err.msg);
        sdlk_tensor back;
        ck_assert_msg(sdlk_image_read(path, &back, NULL, &err) == SDLK_OK, "%s", err.msg);
        sdlk_wm_plane expect;
        ck_assert(sdlk_wm_luma_from_image(&back, &expect, &err) == SDLK_OK);
        size_t n = (size_t)back.shape[0] * (size_t)back.shape[1];
        float *reference = malloc(sizeof *reference * n);
        ck_assert(sdlk_image_luma(&back, reference, &err) == SDLK_OK);
        ck_assert_msg(memcmp(reference, expect.data, sizeof *reference * n) == 0,
                      "%s: the luma tables differ from sdlk_image_luma", names[f]);
        sdlk_wm_det_item item;
        memset(&item, 0, sizeof item);
        item.path = path;
        ck_assert_msg(stages[0].run(stages[0].ctx, &item, 0, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_int_eq(item.luma.width, expect.width);
        ck_assert_int_eq(item.luma.height, expect.height);
        ck_assert_msg(memcmp(item.luma.data, expect.data, sizeof *reference * n) == 0,
                      "%s: the read stage's luma differs from the decoded image's", names[f]);
        sdlk_wm_det_item_clear(&item);
        sdlk_wm_plane_free(&expect);
        free(reference);
        sdlk_tensor_free(&back);
        sdlk_tensor_free(&img);
        unlink(path);
    }
    rmdir(dir);
    sdlk_wm_key_free(&key);
    sdlk_tensor_free(&photo);
}
END_TEST

int main(void)
{
    return UNIT_RUN("wm", test_rs_capability, test_binomial_tail, test_key_and_message,
                    test_band_nyquist, test_metrics, test_embed_detect_photos, test_embed_depth_alpha,
                    test_false_positives, test_decoy_agreement, test_decoy_p_uniform,
                    test_device_option, test_decode_stage_luma);
}
