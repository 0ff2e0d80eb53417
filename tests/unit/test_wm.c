/* test_wm.c -- lib/wm (Reed-Solomon via libfec, binomial tails, keys, embedding,
 * detection under attacks, false positives) and lib/metrics (PSNR, SSIM). The attacks
 * are done here with lib/image and plain loops, so the test does not depend on the
 * attack library. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "metrics/metrics.h"
#include "unit.h"
#include "wm/wm.h"

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
    double min_p = 1;
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
        detections += r.detected;
        if (r.p_value < min_p)
            min_p = r.p_value;
        sdlk_wm_key_free(&key);
        sdlk_tensor_free(&crop);
    }
    printf("unmarked: %d trials, %d detections at 1e-6, min p %.3g, P[p<=0.1] = %.4f, "
           "P[p<=0.5] = %.4f\n", trials, detections, min_p, (double)below_01 / trials,
           (double)below_05 / trials);
    ck_assert_int_eq(detections, 0);
    ck_assert(below_01 <= 0.1 * trials + 4 * sqrt(trials * 0.1 * 0.9));
    ck_assert(below_05 <= 0.5 * trials + 4 * sqrt(trials * 0.5 * 0.5));
    for (int p = 0; p < 4; p++)
        sdlk_tensor_free(&imgs[p]);
}
END_TEST

int main(void)
{
    return UNIT_RUN("wm", test_rs_capability, test_binomial_tail, test_key_and_message,
                    test_metrics, test_embed_detect_photos, test_embed_depth_alpha,
                    test_false_positives);
}
