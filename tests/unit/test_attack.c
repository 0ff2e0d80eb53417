/* Tests of lib/wm/attack against independent references: PIL's ImageEnhance arithmetic
 * written out here from Pillow's C sources (Blend.c, Convert.c, Filter.c, Enhance.py),
 * exact crop/shift/rotate geometry, resize round trips (PSNR), JPEG equal to
 * sdlk_image_write + sdlk_image_read, noise statistics, and the parser's messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "unit.h"
#include "wm/attack.h"

static void load_photo(const char *name, sdlk_tensor *img)
{
    const char *dir = getenv("SDL_TESTDATA");
    ck_assert_msg(dir != NULL, "SDL_TESTDATA is not set");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sdlk_error err;
    sdlk_error_clear(&err);
    ck_assert_msg(sdlk_image_read(path, img, NULL, &err) == SDLK_OK, "%s", err.msg);
}

static sdlk_status attack_text(const char *chain_text, const sdlk_tensor *in, uint64_t seed,
                               sdlk_tensor *out, sdlk_error *err)
{
    sdlk_attack_chain chain;
    sdlk_error_clear(err);
    sdlk_status st = sdlk_attack_chain_parse(chain_text, &chain, err);
    ck_assert_msg(st == SDLK_OK, "%s: %s", chain_text, err->msg);
    return sdlk_attack_chain_apply(&chain, in, seed, out, err);
}

static void must_attack(const char *chain_text, const sdlk_tensor *in, uint64_t seed,
                        sdlk_tensor *out)
{
    sdlk_error err;
    sdlk_status st = attack_text(chain_text, in, seed, out, &err);
    ck_assert_msg(st == SDLK_OK, "%s: %s", chain_text, err.msg);
}

static void make_image(sdlk_tensor *t, sdlk_dtype dtype, int64_t h, int64_t w, int64_t c)
{
    const int64_t shape[3] = {h, w, c};
    ck_assert_int_eq(sdlk_tensor_alloc(t, dtype, 3, shape, NULL), SDLK_OK);
}

static unsigned px8(const sdlk_tensor *t, int64_t y, int64_t x, int64_t c)
{
    return t->data[(y * t->shape[1] + x) * t->shape[2] + c];
}

/* An image whose every pixel says where it came from: R = x, G = y, B = x ^ y (< 256). */
static void make_coords(sdlk_tensor *t, int64_t h, int64_t w)
{
    make_image(t, SDLK_U8, h, w, 3);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            uint8_t *p = t->data + (y * w + x) * 3;
            p[0] = (uint8_t)x;
            p[1] = (uint8_t)y;
            p[2] = (uint8_t)(x ^ y);
        }
}

static double psnr_u8(const sdlk_tensor *a, const sdlk_tensor *b)
{
    ck_assert(a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1] &&
              a->shape[2] == b->shape[2]);
    size_t n = (size_t)sdlk_tensor_numel(a);
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a->data[i] - b->data[i];
        se += d * d;
    }
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (se / (double)n));
}

/* ---- PIL, written out from its sources ------------------------------------------------ */

/* Blend.c: out = in1 + alpha * (in2 - in1) in float; truncated; clipped when extrapolating. */
static uint8_t pil_blend(int degenerate, int value, float alpha)
{
    float temp = (float)((float)degenerate + alpha * (float)(value - degenerate));
    if (temp <= 0.0f)
        return 0;
    if (temp >= 255.0f)
        return 255;
    return (uint8_t)temp;
}

/* Convert.c rgb2l */
static int pil_luma(const uint8_t *rgb)
{
    return (rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16;
}

/* Filter.c clip8 (rounds) of the SMOOTH kernel divided by 13 in float. */
static uint8_t pil_smooth(const sdlk_tensor *t, int64_t y, int64_t x, int64_t c)
{
    static const float k[9] = {1, 1, 1, 1, 5, 1, 1, 1, 1};
    float kernel[9];
    for (int i = 0; i < 9; i++)
        kernel[i] = k[i] / 13.0f;
    float ss = 0;
    ss += px8(t, y + 1, x - 1, c) * kernel[0] + px8(t, y + 1, x, c) * kernel[1] +
          px8(t, y + 1, x + 1, c) * kernel[2];
    ss += px8(t, y, x - 1, c) * kernel[3] + px8(t, y, x, c) * kernel[4] +
          px8(t, y, x + 1, c) * kernel[5];
    ss += px8(t, y - 1, x - 1, c) * kernel[6] + px8(t, y - 1, x, c) * kernel[7] +
          px8(t, y - 1, x + 1, c) * kernel[8];
    if (ss <= 0)
        return 0;
    if (ss >= 255)
        return 255;
    return (uint8_t)(ss + 0.5f);
}

START_TEST(enhancers_match_pil_arithmetic)
{
    sdlk_tensor photo;
    load_photo("chelsea.png", &photo);
    ck_assert_int_eq(photo.shape[2], 3);
    int64_t h = photo.shape[0], w = photo.shape[1];
    /* Enhance.py Contrast: the mean of the "L" image, int(mean + 0.5) */
    double sum = 0;
    for (int64_t i = 0; i < h * w; i++)
        sum += pil_luma(photo.data + i * 3);
    int mean = (int)(sum / (double)(h * w) + 0.5);
    static const double factors[] = {0.5, 0.75, 1.0, 1.3, 1.5, 2.0};
    static const char *const names[] = {"brightness", "contrast", "saturation", "sharpness"};
    for (int which = 0; which < 4; which++) {
        for (size_t f = 0; f < sizeof factors / sizeof factors[0]; f++) {
            char text[64];
            snprintf(text, sizeof text, "%s:%g", names[which], factors[f]);
            sdlk_tensor out;
            must_attack(text, &photo, 1, &out);
            int64_t mismatches = 0;
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++) {
                        int value = (int)px8(&photo, y, x, c), d;
                        switch (which) {
                        case 0: d = 0; break;
                        case 1: d = mean; break;
                        case 2: d = pil_luma(photo.data + (y * w + x) * 3); break;
                        default:
                            d = y == 0 || x == 0 || y == h - 1 || x == w - 1
                                    ? value
                                    : pil_smooth(&photo, y, x, c);
                        }
                        uint8_t expect = pil_blend(d, value, (float)factors[f]);
                        mismatches += px8(&out, y, x, c) != expect;
                    }
            ck_assert_msg(mismatches == 0, "%s: %lld values differ from PIL's arithmetic", text,
                          (long long)mismatches);
            sdlk_tensor_free(&out);
        }
    }
    /* brightness 1.5 brightens, contrast 0.5 narrows the spread around the mean */
    sdlk_tensor_free(&photo);
}
END_TEST

START_TEST(photometric_attacks_keep_alpha_and_handle_u16)
{
    sdlk_tensor img, out;
    make_image(&img, SDLK_U16, 9, 7, 4);
    uint16_t *p = (uint16_t *)img.data;
    for (int i = 0; i < 9 * 7 * 4; i++)
        p[i] = (uint16_t)(i * 911 % 65536);
    static const char *const chains[] = {"brightness:1.7", "contrast:0.3", "saturation:0",
                                         "noise:20", "jpeg:60", "box:0.5:255"};
    for (size_t k = 0; k < sizeof chains / sizeof chains[0]; k++) {
        must_attack(chains[k], &img, 3, &out);
        ck_assert_int_eq(out.dtype, SDLK_U16);
        for (int i = 0; i < 9 * 7; i++)
            ck_assert_msg(((uint16_t *)out.data)[i * 4 + 3] == p[i * 4 + 3], "%s changed alpha",
                          chains[k]);
        sdlk_tensor_free(&out);
    }
    /* brightness on u16 follows the same blend on 0..65535 */
    must_attack("brightness:0.5", &img, 3, &out);
    for (int i = 0; i < 9 * 7 * 4; i++)
        if (i % 4 != 3)
            ck_assert_int_eq(((uint16_t *)out.data)[i], (uint16_t)(0.5f * (float)p[i]));
    sdlk_tensor_free(&out);
    /* saturation 0 of RGB = luma in every channel */
    must_attack("saturation:0", &img, 3, &out);
    for (int i = 0; i < 9 * 7; i++) {
        uint16_t *o = (uint16_t *)out.data + i * 4;
        ck_assert(o[0] == o[1] && o[1] == o[2]);
    }
    sdlk_tensor_free(&out);
    sdlk_tensor_free(&img);
}
END_TEST

START_TEST(crop_geometry_is_exact)
{
    sdlk_tensor img, out;
    make_coords(&img, 60, 100);
    must_attack("crop:0.25", &img, 1, &out); /* a quarter of the area: half of each side */
    ck_assert_int_eq(out.shape[0], 30);
    ck_assert_int_eq(out.shape[1], 50);
    ck_assert_uint_eq(px8(&out, 0, 0, 0), 25);
    ck_assert_uint_eq(px8(&out, 0, 0, 1), 15);
    sdlk_tensor_free(&out);
    must_attack("crop:0.5:side@10,20", &img, 1, &out);
    ck_assert_int_eq(out.shape[0], 30);
    ck_assert_int_eq(out.shape[1], 50);
    for (int64_t y = 0; y < 30; y++)
        for (int64_t x = 0; x < 50; x++) {
            ck_assert_uint_eq(px8(&out, y, x, 0), (unsigned)(x + 10));
            ck_assert_uint_eq(px8(&out, y, x, 1), (unsigned)(y + 20));
        }
    sdlk_tensor_free(&out);
    /* an offset past the edge is clamped so the window fits */
    must_attack("crop:0.5:side@99,99", &img, 1, &out);
    ck_assert_uint_eq(px8(&out, 0, 0, 0), 50);
    ck_assert_uint_eq(px8(&out, 0, 0, 1), 30);
    sdlk_tensor_free(&out);
    /* random: inside, deterministic for a seed, and not always the same place */
    int distinct = 0;
    unsigned first_x = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        sdlk_tensor again;
        must_attack("crop:0.25@random", &img, seed, &out);
        must_attack("crop:0.25@random", &img, seed, &again);
        ck_assert_int_eq(out.shape[1], 50);
        ck_assert_mem_eq(out.data, again.data, (size_t)sdlk_tensor_nbytes(&out));
        unsigned x0 = px8(&out, 0, 0, 0), y0 = px8(&out, 0, 0, 1);
        ck_assert_uint_le(x0, 50);
        ck_assert_uint_le(y0, 30);
        if (seed == 0)
            first_x = x0;
        distinct += x0 != first_x;
        sdlk_tensor_free(&out);
        sdlk_tensor_free(&again);
    }
    ck_assert_int_gt(distinct, 5);
    sdlk_tensor_free(&img);
}
END_TEST

START_TEST(shift_geometry_is_exact)
{
    sdlk_tensor img, out;
    make_coords(&img, 40, 50);
    must_attack("shift:3:-2:wrap", &img, 1, &out);
    for (int64_t y = 0; y < 40; y++)
        for (int64_t x = 0; x < 50; x++) {
            ck_assert_uint_eq(px8(&out, y, x, 0), (unsigned)((x - 3 + 50) % 50));
            ck_assert_uint_eq(px8(&out, y, x, 1), (unsigned)((y + 2) % 40));
        }
    sdlk_tensor_free(&out);
    must_attack("shift:3:-2", &img, 1, &out); /* fill */
    ck_assert_int_eq(out.shape[1], 50);
    for (int64_t y = 0; y < 40; y++)
        for (int64_t x = 0; x < 50; x++) {
            int inside = x >= 3 && y < 38;
            ck_assert_uint_eq(px8(&out, y, x, 0), inside ? (unsigned)(x - 3) : 0);
            ck_assert_uint_eq(px8(&out, y, x, 1), inside ? (unsigned)(y + 2) : 0);
        }
    sdlk_tensor_free(&out);
    must_attack("shift:3:-2:crop", &img, 1, &out);
    ck_assert_int_eq(out.shape[0], 38);
    ck_assert_int_eq(out.shape[1], 47);
    for (int64_t y = 0; y < 38; y++)
        for (int64_t x = 0; x < 47; x++) {
            ck_assert_uint_eq(px8(&out, y, x, 0), (unsigned)x);
            ck_assert_uint_eq(px8(&out, y, x, 1), (unsigned)(y + 2));
        }
    sdlk_tensor_free(&out);
    sdlk_error err;
    ck_assert_int_eq(attack_text("shift:50:0:crop", &img, 1, &out, &err), SDLK_ERR_ARG);
    ck_assert_str_eq(err.msg, "attack shift: a shift of 50,0 leaves nothing of a 50x40 image");
    sdlk_tensor_free(&img);
}
END_TEST

START_TEST(rotation_by_quarter_turns_is_exact)
{
    sdlk_tensor img, out;
    make_coords(&img, 32, 32);
    must_attack("rotate:90", &img, 1, &out);
    /* counter-clockwise: the top row (y = 0) becomes the left column, read bottom-up */
    for (int64_t y = 0; y < 32; y++)
        for (int64_t x = 0; x < 32; x++) {
            ck_assert_uint_eq(px8(&out, y, x, 0), (unsigned)(31 - y));
            ck_assert_uint_eq(px8(&out, y, x, 1), (unsigned)x);
        }
    sdlk_tensor_free(&out);
    must_attack("rotate:180,rotate:-180", &img, 1, &out);
    ck_assert_mem_eq(out.data, img.data, (size_t)sdlk_tensor_nbytes(&img));
    sdlk_tensor_free(&out);
    /* 45 degrees with crop: the largest rectangle of the same aspect, 1/sqrt(2) per side */
    must_attack("rotate:45:crop", &img, 1, &out);
    ck_assert_int_eq(out.shape[0], 22);
    ck_assert_int_eq(out.shape[1], 22);
    sdlk_tensor_free(&out);
    /* fill: the corners are black, the centre keeps its value */
    must_attack("rotate:45", &img, 1, &out);
    ck_assert_uint_eq(px8(&out, 0, 0, 0), 0);
    ck_assert_uint_eq(px8(&out, 31, 31, 1), 0);
    sdlk_tensor_free(&out);
    sdlk_tensor_free(&img);
}
END_TEST

START_TEST(resize_round_trip_keeps_the_photo)
{
    sdlk_tensor photo, up, back;
    load_photo("astronaut.png", &photo);
    must_attack("resize:2", &photo, 1, &up);
    ck_assert_int_eq(up.shape[0], photo.shape[0] * 2);
    ck_assert_int_eq(up.shape[1], photo.shape[1] * 2);
    /* box up (pixel doubling) then box down (2x2 means) is the identity; the smooth
     * filters blur a little: bilinear twice is a [1 2 1]/4-like blur */
    static const struct {
        const char *filter;
        double min_psnr;
    } filters[] = {{"bicubic", 38}, {"bilinear", 32}, {"area", INFINITY}};
    for (int f = 0; f < 3; f++) {
        char text[64];
        snprintf(text, sizeof text, "resize:2:%s,resize:0.5:%s", filters[f].filter,
                 filters[f].filter);
        must_attack(text, &photo, 1, &back);
        double p = psnr_u8(&photo, &back);
        ck_assert_msg(p >= filters[f].min_psnr, "%s: PSNR %.2f dB", text, p);
        sdlk_tensor_free(&back);
    }
    /* down then up loses detail, but not everything */
    must_attack("resize:0.5,resize:2", &photo, 1, &back);
    double p = psnr_u8(&photo, &back);
    ck_assert_msg(p > 22 && p < 40, "0.5 then 2: PSNR %.2f dB", p);
    sdlk_tensor_free(&back);
    /* a constant image stays constant under every filter and factor */
    sdlk_tensor flat;
    make_image(&flat, SDLK_U8, 17, 23, 1);
    memset(flat.data, 77, 17 * 23);
    must_attack("resize:0.37,resize:3.1:bilinear,resize:0.5:area", &flat, 1, &back);
    for (uint64_t i = 0; i < sdlk_tensor_numel(&back); i++)
        ck_assert_uint_eq(back.data[i], 77);
    sdlk_tensor_free(&back);
    sdlk_tensor_free(&flat);
    sdlk_tensor_free(&up);
    sdlk_tensor_free(&photo);
}
END_TEST

START_TEST(jpeg_equals_the_image_writer)
{
    sdlk_tensor photo;
    load_photo("chelsea.png", &photo);
    char dir[] = "/tmp/test_attack.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    static const struct {
        const char *chain;
        int quality;
        sdlk_chroma chroma;
    } cases[] = {{"jpeg:50", 50, SDLK_CHROMA_420},
                 {"jpeg:80:444", 80, SDLK_CHROMA_444},
                 {"jpeg:95:422", 95, SDLK_CHROMA_422}};
    for (size_t k = 0; k < 3; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/q.jpg", dir);
        sdlk_image_write_opts opts;
        sdlk_image_write_opts_init(&opts);
        opts.jpeg_quality = cases[k].quality;
        opts.chroma = cases[k].chroma;
        sdlk_error err;
        sdlk_error_clear(&err);
        ck_assert_msg(sdlk_image_write(path, &photo, &opts, &err) == SDLK_OK, "%s", err.msg);
        sdlk_tensor expect, out;
        ck_assert_int_eq(sdlk_image_read(path, &expect, NULL, &err), SDLK_OK);
        must_attack(cases[k].chain, &photo, 1, &out);
        ck_assert_int_eq(sdlk_tensor_nbytes(&out), sdlk_tensor_nbytes(&expect));
        ck_assert_mem_eq(out.data, expect.data, (size_t)sdlk_tensor_nbytes(&out));
        double p = psnr_u8(&photo, &out);
        ck_assert_msg(p > 25 && p < 60, "%s: PSNR %.2f", cases[k].chain, p);
        sdlk_tensor_free(&expect);
        sdlk_tensor_free(&out);
        unlink(path);
    }
    rmdir(dir);
    sdlk_tensor_free(&photo);
}
END_TEST

START_TEST(noise_has_the_asked_statistics)
{
    sdlk_tensor flat, out, again;
    make_image(&flat, SDLK_U8, 256, 256, 3);
    memset(flat.data, 128, 256 * 256 * 3);
    must_attack("noise:10", &flat, 42, &out);
    must_attack("noise:10", &flat, 42, &again);
    ck_assert_mem_eq(out.data, again.data, 256 * 256 * 3);
    sdlk_tensor_free(&again);
    must_attack("noise:10", &flat, 43, &again);
    ck_assert(memcmp(out.data, again.data, 256 * 256 * 3) != 0);
    double sum = 0, sq = 0;
    size_t n = 256 * 256 * 3;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out.data[i] - 128;
        sum += d;
        sq += d * d;
    }
    double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
    ck_assert_msg(fabs(mean) < 0.1, "mean %g", mean);
    /* rounding adds 1/12 to the variance */
    ck_assert_msg(fabs(sd - sqrt(100 + 1.0 / 12)) < 0.1, "sd %g", sd);
    sdlk_tensor_free(&out);
    sdlk_tensor_free(&again);
    sdlk_tensor_free(&flat);
}
END_TEST

START_TEST(blur_box_and_text)
{
    sdlk_tensor img, out;
    make_coords(&img, 60, 80);
    must_attack("blur:0", &img, 1, &out);
    ck_assert_mem_eq(out.data, img.data, 60 * 80 * 3);
    sdlk_tensor_free(&out);
    /* blurring a horizontal ramp keeps it (linear data, symmetric kernel) away from edges */
    must_attack("blur:2", &img, 1, &out);
    for (int64_t y = 0; y < 60; y++)
        for (int64_t x = 7; x < 73; x++)
            ck_assert_uint_eq(px8(&out, y, x, 0), (unsigned)x);
    sdlk_tensor_free(&out);
    /* box: the window has the grey, the rest is untouched */
    must_attack("box:0.25:200@4,6", &img, 1, &out);
    for (int64_t y = 0; y < 60; y++)
        for (int64_t x = 0; x < 80; x++) {
            int inside = x >= 4 && x < 44 && y >= 6 && y < 36;
            for (int c = 0; c < 3; c++)
                ck_assert_uint_eq(px8(&out, y, x, c), inside ? 200 : px8(&img, y, x, c));
        }
    sdlk_tensor_free(&out);
    /* text: white dots within its box, the exact glyph of "I" (a centre column) */
    sdlk_tensor black;
    make_image(&black, SDLK_U8, 20, 20, 1);
    must_attack("text:I:2@0,0", &black, 1, &out);
    int white = 0;
    for (int64_t y = 0; y < 20; y++)
        for (int64_t x = 0; x < 20; x++) {
            unsigned v = px8(&out, y, x, 0);
            ck_assert(v == 0 || v == 255);
            int expect = (x >= 4 && x < 6 && y < 14) || ((x == 2 || x == 3 || x == 6 || x == 7) &&
                                                         (y < 2 || (y >= 12 && y < 14)));
            ck_assert_msg((v == 255) == expect, "text pixel %lld,%lld", (long long)x, (long long)y);
            white += v == 255;
        }
    ck_assert_int_eq(white, 2 * 14 + 4 * 2 * 2);
    sdlk_tensor_free(&out);
    sdlk_tensor_free(&black);
    sdlk_tensor_free(&img);
}
END_TEST

START_TEST(strided_input_gives_the_same_result)
{
    sdlk_tensor img, view, a, b;
    make_coords(&img, 30, 40);
    /* a view of every other column */
    sdlk_tensor_share(&view, &img);
    view.shape[1] = 20;
    view.strides[1] *= 2;
    sdlk_tensor copy;
    ck_assert_int_eq(sdlk_tensor_contiguous(&copy, &view, NULL), SDLK_OK);
    const char *chain = "crop:0.8@random,rotate:7,contrast:1.2,noise:3,jpeg:70";
    must_attack(chain, &view, 9, &a);
    must_attack(chain, &copy, 9, &b);
    ck_assert_int_eq(sdlk_tensor_nbytes(&a), sdlk_tensor_nbytes(&b));
    ck_assert_mem_eq(a.data, b.data, (size_t)sdlk_tensor_nbytes(&a));
    sdlk_tensor_free(&a);
    sdlk_tensor_free(&b);
    sdlk_tensor_free(&copy);
    sdlk_tensor_free(&view);
    sdlk_tensor_free(&img);
}
END_TEST

static void expect_parse_error(const char *text, const char *message)
{
    sdlk_attack_chain chain;
    sdlk_error err;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_attack_chain_parse(text, &chain, &err), SDLK_ERR_ARG);
    ck_assert_msg(!strcmp(err.msg, message), "%s: got \"%s\"", text, err.msg);
}

START_TEST(parser_accepts_the_syntax_and_explains_errors)
{
    sdlk_attack_chain chain;
    sdlk_error err;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_attack_chain_parse("crop:0.25@10,20,brightness:1.5,jpeg:50:444,"
                                             "shift:-3:4:wrap,box:0.1@random,text:Hi 5:3@1,2",
                                             &chain, &err),
                     SDLK_OK);
    ck_assert_int_eq(chain.count, 6);
    ck_assert_int_eq(chain.items[0].kind, SDLK_ATTACK_CROP);
    ck_assert_int_eq(chain.items[0].pos, SDLK_ATTACK_POS_XY);
    ck_assert_int_eq(chain.items[0].x, 10);
    ck_assert_int_eq(chain.items[0].y, 20);
    ck_assert_int_eq(chain.items[2].chroma, 444);
    ck_assert_int_eq(chain.items[3].variant, SDLK_ATTACK_EDGE_WRAP);
    ck_assert(chain.items[3].amount == -3 && chain.items[3].amount2 == 4);
    ck_assert_int_eq(chain.items[4].pos, SDLK_ATTACK_POS_RANDOM);
    ck_assert_str_eq(chain.items[5].text, "Hi 5");
    char canon[512], again_text[512];
    sdlk_attack_chain_format(&chain, canon, sizeof canon);
    ck_assert_str_eq(canon, "crop:0.25:area@10,20,brightness:1.5,jpeg:50:444,shift:-3:4:wrap,"
                            "box:0.10000000000000001:0@random,text:Hi 5:3@1,2");
    sdlk_attack_chain again;
    ck_assert_int_eq(sdlk_attack_chain_parse(canon, &again, &err), SDLK_OK);
    sdlk_attack_chain_format(&again, again_text, sizeof again_text);
    ck_assert_str_eq(canon, again_text);

    expect_parse_error("blurr:2", "unknown attack 'blurr' (known: jpeg, crop, resize, rotate, "
                                  "brightness, contrast, saturation, sharpness, noise, blur, "
                                  "shift, box, text)");
    expect_parse_error("jpeg:abc", "attack 'jpeg:abc': quality 'abc' is not a number");
    expect_parse_error("jpeg:101", "attack 'jpeg:101': quality 101 is outside 1..100");
    expect_parse_error("jpeg:50.5", "attack 'jpeg:50.5': quality '50.5' is not a whole number");
    expect_parse_error("jpeg", "attack 'jpeg': missing parameter (syntax: jpeg:Q[:420|422|444])");
    expect_parse_error("jpeg:50:411", "attack 'jpeg:50:411': unknown chroma subsampling '411' "
                                      "(one of: 420, 422, 444)");
    expect_parse_error("noise:1:2", "attack 'noise:1:2': too many parameters (syntax: noise:SIGMA)");
    expect_parse_error("shift:3", "attack 'shift:3': missing parameter (syntax: "
                                  "shift:DX:DY[:fill|wrap|crop])");
    expect_parse_error("crop:0", "attack 'crop:0': fraction must be above 0");
    expect_parse_error("crop:0.5@left", "attack 'crop:0.5@left': position 'left' is not center, "
                                        "random or X,Y");
    expect_parse_error("noise:3@center", "attack 'noise:3@center': takes no @position (syntax: "
                                         "noise:SIGMA)");
    expect_parse_error("brightness:1.5,", "empty attack in '' (known: jpeg, crop, resize, rotate, "
                                          "brightness, contrast, saturation, sharpness, noise, "
                                          "blur, shift, box, text)");
    expect_parse_error("", "empty attack chain");
    expect_parse_error("text:a/b", "attack 'text:a/b': the font has no '/' (letters, digits, "
                                   "space and . - _ ! ?)");
    expect_parse_error("brightness: 1", "attack 'brightness: 1': factor ' 1' is not a number");
    /* the docs table covers every attack */
    const sdlk_attack_doc *docs = sdlk_attack_docs();
    for (int k = 0; k < SDLK_ATTACK_KIND_COUNT; k++)
        ck_assert(docs[k].name && docs[k].syntax && docs[k].description);
}
END_TEST

START_TEST(bad_images_are_refused)
{
    sdlk_tensor bad, out;
    const int64_t shape[3] = {4, 4, 5};
    ck_assert_int_eq(sdlk_tensor_alloc(&bad, SDLK_U8, 3, shape, NULL), SDLK_OK);
    sdlk_error err;
    ck_assert_int_eq(attack_text("brightness:2", &bad, 1, &out, &err), SDLK_ERR_ARG);
    ck_assert_str_eq(err.msg, "attack: expects an [H,W,C] u8/u16 image with C = 1..4");
    sdlk_tensor_free(&bad);
}
END_TEST

int main(void)
{
    return UNIT_RUN("attack", enhancers_match_pil_arithmetic,
                    photometric_attacks_keep_alpha_and_handle_u16, crop_geometry_is_exact,
                    shift_geometry_is_exact, rotation_by_quarter_turns_is_exact,
                    resize_round_trip_keeps_the_photo, jpeg_equals_the_image_writer,
                    noise_has_the_asked_statistics, blur_box_and_text,
                    strided_input_gives_the_same_result,
                    parser_accepts_the_syntax_and_explains_errors, bad_images_are_refused);
}
