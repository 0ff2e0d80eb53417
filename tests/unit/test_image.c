/* Unit tests of lib/image: PNG (libpng), JPEG (libjpeg-turbo), other formats (FFmpeg),
 * float conversions, bad input.
 *
 * References are independent implementations: every PNG we read with libpng is also
 * decoded by FFmpeg's PNG decoder and must give the same pixels; JPEGs decoded by
 * libjpeg-turbo are compared with FFmpeg's mjpeg decoder; palette and low-bit-depth
 * PNGs are written here with libpng's own writer and must read as the expansion the PNG
 * specification defines.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h>

#include "core/file.h"
#include "core/tensor.h"
#include "image/image.h"
#include "image/image_internal.h"
#include "unit.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sdl-test-image-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    DIR *dir = opendir(tmpdir);
    if (!dir)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
    closedir(dir);
    rmdir(tmpdir);
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void data_path(char *buf, size_t size, const char *name)
{
    const char *dir = getenv("SDL_TESTDATA");
    ck_assert_msg(dir != NULL, "SDL_TESTDATA is not set");
    snprintf(buf, size, "%s/%s", dir, name);
}

/* Number of entries in tmpdir other than . and .. (leftover temporaries show here). */
static int tmpdir_entries(void)
{
    DIR *dir = opendir(tmpdir);
    ck_assert_ptr_nonnull(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dir);
    return n;
}


static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, size, fp), size);
    fclose(fp);
}

static void read_test_image(const char *name, sdlk_tensor *img, sdlk_image_info *info)
{
    char path[512];
    sdlk_error err = {0};
    data_path(path, sizeof path, name);
    sdlk_status st = sdlk_image_read(path, img, info, &err);
    ck_assert_msg(st == SDLK_OK, "%s", err.msg);
}

static double psnr_u8(const sdlk_tensor *a, const sdlk_tensor *b)
{
    ck_assert_uint_eq(sdlk_tensor_nbytes(a), sdlk_tensor_nbytes(b));
    uint64_t n = sdlk_tensor_nbytes(a);
    double se = 0;
    for (uint64_t i = 0; i < n; i++) {
        double d = (double)a->data[i] - (double)b->data[i];
        se += d * d;
    }
    if (se == 0)
        return INFINITY;
    return 10 * log10(255.0 * 255.0 / (se / (double)n));
}

static void assert_same_image(const sdlk_tensor *a, const sdlk_tensor *b)
{
    ck_assert_int_eq(a->ndim, 3);
    ck_assert_int_eq(b->ndim, 3);
    for (int d = 0; d < 3; d++)
        ck_assert_int_eq(a->shape[d], b->shape[d]);
    ck_assert_int_eq(a->dtype, b->dtype);
    ck_assert_mem_eq(a->data, b->data, sdlk_tensor_nbytes(a));
}

START_TEST(png_libpng_matches_ffmpeg_decoder)
{
    static const struct {
        const char *name;
        int64_t h, w, c;
    } files[] = {{"camera.png", 512, 512, 1},
                 {"chelsea.png", 300, 451, 3},
                 {"coins.png", 303, 384, 1},
                 {"astronaut.png", 512, 512, 3}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        data_path(path, sizeof path, files[i].name);
        sdlk_storage *bytes;
        sdlk_error err = {0};
        ck_assert_int_eq(sdlk_file_map(path, &bytes, &err), SDLK_OK);
        sdlk_tensor ours, theirs;
        sdlk_image_info info, ffinfo;
        const uint8_t *data = sdlk_storage_data(bytes);
        size_t size = sdlk_storage_size(bytes);
        ck_assert_msg(sdlk_png_decode(data, size, path, &ours, &info, &err) == SDLK_OK, "%s",
                      err.msg);
        ck_assert_msg(sdlk_ff_image_decode(data, size, path, &theirs, &ffinfo, &err) == SDLK_OK,
                      "%s", err.msg);
        ck_assert_int_eq(ours.shape[0], files[i].h);
        ck_assert_int_eq(ours.shape[1], files[i].w);
        ck_assert_int_eq(ours.shape[2], files[i].c);
        ck_assert_str_eq(info.format, "png");
        ck_assert_str_eq(ffinfo.format, "png");
        ck_assert_int_eq(info.bit_depth, 8);
        ck_assert_int_eq(info.channels, files[i].c);
        assert_same_image(&ours, &theirs);
        sdlk_tensor_free(&ours);
        sdlk_tensor_free(&theirs);
        sdlk_storage_release(bytes);
    }
}
END_TEST

/* An [h, w, c] image of `dtype` filled from a real photo (so the codec sees real
 * structure), with the 16-bit low byte varied so that all 16 bits matter. */
static void photo_image(sdlk_tensor *out, int c, sdlk_dtype dtype)
{
    sdlk_tensor photo;
    read_test_image("chelsea.png", &photo, NULL);
    int64_t h = photo.shape[0], w = photo.shape[1];
    int64_t shape[3] = {h, w, c};
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_tensor_alloc(out, dtype, 3, shape, &err), SDLK_OK);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                uint8_t v = photo.data[(y * w + x) * 3 + (k % 3)];
                if (k == 3 || (c == 2 && k == 1))
                    v = (uint8_t)(x + y); /* an alpha ramp */
                int64_t i = (y * w + x) * c + k;
                if (dtype == SDLK_U8)
                    out->data[i] = v;
                else
                    ((uint16_t *)out->data)[i] = (uint16_t)(v * 256 + ((x * 7 + y * 13) & 0xff));
            }
    sdlk_tensor_free(&photo);
}

START_TEST(png_roundtrip_8_and_16_bit_all_channels)
{
    make_tmpdir();
    sdlk_dtype dtypes[2] = {SDLK_U8, SDLK_U16};
    for (int d = 0; d < 2; d++)
        for (int c = 1; c <= 4; c++) {
            sdlk_tensor img, back, ffback;
            sdlk_image_info info;
            sdlk_error err = {0};
            char path[512];
            photo_image(&img, c, dtypes[d]);
            tmp_path(path, sizeof path, "rt.png");
            ck_assert_msg(sdlk_image_write(path, &img, NULL, &err) == SDLK_OK, "%s", err.msg);
            ck_assert_msg(sdlk_image_read(path, &back, &info, &err) == SDLK_OK, "%s", err.msg);
            ck_assert_int_eq(info.channels, c);
            ck_assert_int_eq(info.bit_depth, dtypes[d] == SDLK_U16 ? 16 : 8);
            assert_same_image(&img, &back);
            /* FFmpeg's PNG decoder must agree with libpng on what we wrote */
            sdlk_storage *bytes;
            ck_assert_int_eq(sdlk_file_map(path, &bytes, &err), SDLK_OK);
            ck_assert_msg(sdlk_ff_image_decode(sdlk_storage_data(bytes), sdlk_storage_size(bytes),
                                               path, &ffback, &info, &err) == SDLK_OK,
                          "%s", err.msg);
            assert_same_image(&img, &ffback);
            sdlk_storage_release(bytes);
            sdlk_tensor_free(&img);
            sdlk_tensor_free(&back);
            sdlk_tensor_free(&ffback);
        }
    ck_assert_int_eq(tmpdir_entries(), 1); /* rt.png and no temporaries */
    remove_tmpdir();
}
END_TEST

/* Write a PNG with libpng directly: palette/low-bit layouts our writer never makes. */
static void write_raw_png(const char *path, int w, int h, int depth, int color_type,
                          const png_color *palette, int npalette, const png_byte *trans,
                          int ntrans, png_bytep *rows)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert_int_eq(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type, PNG_INTERLACE_ADAM7,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npalette);
    if (trans)
        png_set_tRNS(png, info, trans, ntrans, NULL);
    png_write_info(png, info);
    png_set_packing(png); /* rows hold one sample per byte */
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(fp);
}

START_TEST(png_palette_trns_and_low_bit_depths_expand)
{
    make_tmpdir();
    enum { W = 13, H = 7 };
    png_byte samples[H][W];
    png_bytep rows[H];
    for (int y = 0; y < H; y++) {
        rows[y] = samples[y];
        for (int x = 0; x < W; x++)
            samples[y][x] = (png_byte)((x + 3 * y) % 4);
    }
    char path[512];
    sdlk_error err = {0};
    sdlk_tensor img, ffimg;
    sdlk_image_info info;

    /* 2-bit palette with tRNS -> RGBA */
    png_color palette[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    png_byte trans[3] = {0, 128, 255};
    tmp_path(path, sizeof path, "pal.png");
    write_raw_png(path, W, H, 2, PNG_COLOR_TYPE_PALETTE, palette, 4, trans, 3, rows);
    ck_assert_msg(sdlk_image_read(path, &img, &info, &err) == SDLK_OK, "%s", err.msg);
    ck_assert(info.has_palette);
    ck_assert_int_eq(info.bit_depth, 2);
    ck_assert_int_eq(img.shape[2], 4);
    ck_assert_int_eq(img.dtype, SDLK_U8);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *px = img.data + (y * W + x) * 4;
            int s = samples[y][x];
            ck_assert_int_eq(px[0], palette[s].red);
            ck_assert_int_eq(px[1], palette[s].green);
            ck_assert_int_eq(px[2], palette[s].blue);
            ck_assert_int_eq(px[3], s < 3 ? trans[s] : 255);
        }
    /* FFmpeg decodes the palette to the same RGBA */
    sdlk_storage *bytes;
    ck_assert_int_eq(sdlk_file_map(path, &bytes, &err), SDLK_OK);
    ck_assert_msg(sdlk_ff_image_decode(sdlk_storage_data(bytes), sdlk_storage_size(bytes), path,
                                       &ffimg, &info, &err) == SDLK_OK,
                  "%s", err.msg);
    assert_same_image(&img, &ffimg);
    sdlk_storage_release(bytes);
    sdlk_tensor_free(&ffimg);
    sdlk_tensor_free(&img);

    /* 2-bit gray scales to 0, 85, 170, 255; 1-bit to 0, 255; 4-bit to v * 17 */
    int depths[3] = {1, 2, 4};
    for (int d = 0; d < 3; d++) {
        int max = (1 << depths[d]) - 1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                samples[y][x] = (png_byte)((x * 5 + y) % (max + 1));
        tmp_path(path, sizeof path, "gray.png");
        write_raw_png(path, W, H, depths[d], PNG_COLOR_TYPE_GRAY, NULL, 0, NULL, 0, rows);
        ck_assert_msg(sdlk_image_read(path, &img, &info, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_int_eq(info.bit_depth, depths[d]);
        ck_assert_int_eq(img.shape[2], 1);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                ck_assert_int_eq(img.data[y * W + x], samples[y][x] * 255 / max);
        sdlk_tensor_free(&img);
    }
    remove_tmpdir();
}
END_TEST

START_TEST(jpeg_quality_subsampling_and_ffmpeg_agreement)
{
    make_tmpdir();
    sdlk_tensor photo;
    read_test_image("chelsea.png", &photo, NULL);
    sdlk_chroma chromas[3] = {SDLK_CHROMA_444, SDLK_CHROMA_422, SDLK_CHROMA_420};
    for (int i = 0; i < 3; i++) {
        sdlk_image_write_opts opts;
        sdlk_image_write_opts_init(&opts);
        opts.jpeg_quality = 95;
        opts.chroma = chromas[i];
        char path[512];
        sdlk_error err = {0};
        tmp_path(path, sizeof path, "q95.jpg");
        ck_assert_msg(sdlk_image_write(path, &photo, &opts, &err) == SDLK_OK, "%s", err.msg);
        sdlk_tensor back, ffback;
        sdlk_image_info info, ffinfo;
        ck_assert_msg(sdlk_image_read(path, &back, &info, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_str_eq(info.format, "jpeg");
        ck_assert_int_eq(info.subsampling, (int)chromas[i]);
        ck_assert_int_eq(info.channels, 3);
        double psnr = psnr_u8(&photo, &back);
        ck_assert_msg(psnr > 35.0, "q95 %d PSNR %.2f dB", (int)chromas[i], psnr);

        sdlk_storage *bytes;
        ck_assert_int_eq(sdlk_file_map(path, &bytes, &err), SDLK_OK);
        ck_assert_msg(sdlk_ff_image_decode(sdlk_storage_data(bytes), sdlk_storage_size(bytes),
                                           path, &ffback, &ffinfo, &err) == SDLK_OK,
                      "%s", err.msg);
        ck_assert_str_eq(ffinfo.format, "mjpeg");
        /* Two decoders, different IDCT and chroma upsampling: close, not equal. */
        uint64_t n = sdlk_tensor_nbytes(&back);
        ck_assert_uint_eq(n, sdlk_tensor_nbytes(&ffback));
        double sum = 0;
        int max_diff = 0;
        for (uint64_t k = 0; k < n; k++) {
            int d = abs((int)back.data[k] - (int)ffback.data[k]);
            sum += d;
            max_diff = d > max_diff ? d : max_diff;
        }
        ck_assert_msg(sum / (double)n < 1.0 && psnr_u8(&back, &ffback) > 40.0,
                      "libjpeg vs mjpeg (%d): mean |diff| %.3f, max %d", (int)chromas[i],
                      sum / (double)n, max_diff);
        if (chromas[i] == SDLK_CHROMA_444)
            ck_assert_msg(max_diff <= 3, "4:4:4 max diff %d", max_diff);
        sdlk_storage_release(bytes);
        sdlk_tensor_free(&back);
        sdlk_tensor_free(&ffback);
    }
    /* Lower quality means more loss: a check that the quality setting reaches libjpeg. */
    {
        sdlk_image_write_opts opts;
        sdlk_image_write_opts_init(&opts);
        opts.jpeg_quality = 20;
        char path[512];
        sdlk_error err = {0};
        sdlk_tensor back;
        tmp_path(path, sizeof path, "q20.jpg");
        ck_assert_int_eq(sdlk_image_write(path, &photo, &opts, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_image_read(path, &back, NULL, &err), SDLK_OK);
        double psnr = psnr_u8(&photo, &back);
        ck_assert_msg(psnr < 33.0 && psnr > 20.0, "q20 PSNR %.2f", psnr);
        sdlk_tensor_free(&back);
    }
    sdlk_tensor_free(&photo);
    remove_tmpdir();
}
END_TEST

START_TEST(jpeg_gray_16bit_and_alpha_inputs)
{
    make_tmpdir();
    char path[512];
    sdlk_error err = {0};
    sdlk_tensor gray, back;
    sdlk_image_info info;
    read_test_image("camera.png", &gray, NULL);
    tmp_path(path, sizeof path, "gray.jpeg");
    ck_assert_int_eq(sdlk_image_write(path, &gray, NULL, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_image_read(path, &back, &info, &err), SDLK_OK);
    ck_assert_int_eq(info.channels, 1);
    ck_assert_int_eq(info.subsampling, 0);
    ck_assert_double_gt(psnr_u8(&gray, &back), 35.0);
    sdlk_tensor_free(&back);
    sdlk_tensor_free(&gray);

    /* RGBA u16: alpha dropped, 16 -> 8 bits; compare with the 8-bit RGB version */
    sdlk_tensor rgba16, rgb8;
    photo_image(&rgba16, 4, SDLK_U16);
    photo_image(&rgb8, 3, SDLK_U8);
    sdlk_image_write_opts opts;
    sdlk_image_write_opts_init(&opts);
    opts.jpeg_quality = 98;
    opts.chroma = SDLK_CHROMA_444;
    tmp_path(path, sizeof path, "rgba16.jpg");
    ck_assert_msg(sdlk_image_write(path, &rgba16, &opts, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_int_eq(sdlk_image_read(path, &back, &info, &err), SDLK_OK);
    ck_assert_int_eq(info.channels, 3);
    double psnr = psnr_u8(&rgb8, &back);
    ck_assert_msg(psnr > 38.0, "PSNR %.2f", psnr);
    sdlk_tensor_free(&back);
    sdlk_tensor_free(&rgba16);
    sdlk_tensor_free(&rgb8);
    remove_tmpdir();
}
END_TEST

START_TEST(jpeg_cmyk_is_refused)
{
    /* a CMYK JPEG made with libjpeg itself */
    make_tmpdir();
    char path[512];
    tmp_path(path, sizeof path, "cmyk.jpg");
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = 16;
    c.image_height = 8;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    JSAMPLE row[16 * 4];
    for (int i = 0; i < 16 * 4; i++)
        row[i] = (JSAMPLE)(i * 4);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(fp);
    sdlk_tensor img;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_image_read(path, &img, NULL, &err), SDLK_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_ptr_nonnull(strstr(err.msg, "CMYK"));
    remove_tmpdir();
}
END_TEST

START_TEST(float_conversions_exact_and_chw)
{
    sdlk_error err = {0};
    /* u8: every value, 3 channels, a layout where each (y, x, c) is distinct */
    enum { H = 16, W = 16, C = 3 };
    sdlk_tensor img, f, back;
    int64_t shape[3] = {H, W, C};
    ck_assert_int_eq(sdlk_tensor_alloc(&img, SDLK_U8, 3, shape, &err), SDLK_OK);
    for (int i = 0; i < H * W * C; i++)
        img.data[i] = (uint8_t)(i * 7 + i / 256);
    ck_assert_int_eq(sdlk_image_to_float(&img, SDLK_LAYOUT_CHW, &f, &err), SDLK_OK);
    ck_assert_int_eq(f.dtype, SDLK_F32);
    ck_assert_int_eq(f.shape[0], C);
    ck_assert_int_eq(f.shape[1], H);
    ck_assert_int_eq(f.shape[2], W);
    const float *fv = (const float *)f.data;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                float expect = (float)img.data[(y * W + x) * C + c] / 255.0f;
                ck_assert_float_eq_tol(fv[(c * H + y) * W + x], expect, 1e-7f);
            }
    ck_assert_int_eq(sdlk_image_from_float(&f, SDLK_LAYOUT_CHW, SDLK_U8, &back, &err), SDLK_OK);
    assert_same_image(&img, &back);
    sdlk_tensor_free(&back);
    sdlk_tensor_free(&f);
    ck_assert_int_eq(sdlk_image_to_float(&img, SDLK_LAYOUT_HWC, &f, &err), SDLK_OK);
    for (int i = 0; i < H * W * C; i++)
        ck_assert_float_eq_tol(((float *)f.data)[i], img.data[i] / 255.0f, 1e-7f);
    ck_assert_int_eq(sdlk_image_from_float(&f, SDLK_LAYOUT_HWC, SDLK_U8, &back, &err), SDLK_OK);
    assert_same_image(&img, &back);
    sdlk_tensor_free(&back);
    sdlk_tensor_free(&f);
    sdlk_tensor_free(&img);

    /* u16: all 65536 values as a [256, 256, 1] image, both layouts */
    int64_t shape16[3] = {256, 256, 1};
    ck_assert_int_eq(sdlk_tensor_alloc(&img, SDLK_U16, 3, shape16, &err), SDLK_OK);
    for (int i = 0; i < 65536; i++)
        ((uint16_t *)img.data)[i] = (uint16_t)i;
    sdlk_layout layouts[2] = {SDLK_LAYOUT_HWC, SDLK_LAYOUT_CHW};
    for (int l = 0; l < 2; l++) {
        ck_assert_int_eq(sdlk_image_to_float(&img, layouts[l], &f, &err), SDLK_OK);
        for (int i = 0; i < 65536; i += 257)
            ck_assert_double_eq_tol(((float *)f.data)[i], i / 65535.0, 1e-7);
        ck_assert_int_eq(sdlk_image_from_float(&f, layouts[l], SDLK_U16, &back, &err), SDLK_OK);
        assert_same_image(&img, &back);
        sdlk_tensor_free(&back);
        sdlk_tensor_free(&f);
    }
    sdlk_tensor_free(&img);

    /* f64, clamping, NaN -> 0, rounding to nearest, and a strided (transposed) view */
    double vals[2][3] = {{-0.5, NAN, 2.0}, {0.5, 1.0 / 255 * 0.49, 1.0 / 255 * 0.51}};
    sdlk_tensor fd;
    int64_t shape_t[3] = {3, 1, 2};
    ck_assert_int_eq(sdlk_tensor_borrow(&fd, SDLK_F64, 3, shape_t, vals, &err), SDLK_OK);
    /* view the [2][3] array transposed as an HWC image [3, 1, 2]: element (y, 0, c) is
     * vals[c][y] */
    fd.strides[0] = sizeof(double);
    fd.strides[1] = 0;
    fd.strides[2] = 3 * sizeof(double);
    ck_assert_int_eq(sdlk_image_from_float(&fd, SDLK_LAYOUT_HWC, SDLK_U8, &back, &err), SDLK_OK);
    uint8_t expect[6] = {0, 128, 0, 0, 255, 1};
    ck_assert_mem_eq(back.data, expect, 6);
    sdlk_tensor_free(&back);

    /* refused inputs */
    ck_assert_int_eq(sdlk_image_from_float(&fd, SDLK_LAYOUT_HWC, SDLK_F32, &back, &err),
                     SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    int64_t shape5[3] = {2, 2, 5};
    ck_assert_int_eq(sdlk_tensor_alloc(&img, SDLK_U8, 3, shape5, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_image_to_float(&img, SDLK_LAYOUT_HWC, &f, &err), SDLK_ERR_ARG);
    sdlk_tensor_free(&img);
}
END_TEST

START_TEST(ffmpeg_formats_roundtrip)
{
    make_tmpdir();
    static const struct {
        const char *name, *codec;
        int lossless;
    } formats[] = {{"x.bmp", "bmp", 1}, {"x.tiff", "tiff", 1}, {"x.webp", "webp", 0}};
    sdlk_tensor photo;
    read_test_image("chelsea.png", &photo, NULL);
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        char path[512];
        sdlk_error err = {0};
        sdlk_tensor back;
        sdlk_image_info info;
        tmp_path(path, sizeof path, formats[i].name);
        ck_assert_msg(sdlk_image_write(path, &photo, NULL, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_msg(sdlk_image_read(path, &back, &info, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_str_eq(info.format, formats[i].codec);
        ck_assert_int_eq(back.shape[0], 300);
        ck_assert_int_eq(back.shape[1], 451);
        ck_assert_int_eq(back.shape[2], 3);
        if (formats[i].lossless)
            assert_same_image(&photo, &back);
        else
            ck_assert_double_gt(psnr_u8(&photo, &back), 25.0);
        sdlk_tensor_free(&back);
    }
    /* 16-bit RGBA and 8-bit gray survive TIFF exactly */
    sdlk_tensor img, back;
    char path[512];
    sdlk_error err = {0};
    tmp_path(path, sizeof path, "x16.tif");
    photo_image(&img, 4, SDLK_U16);
    ck_assert_msg(sdlk_image_write(path, &img, NULL, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_msg(sdlk_image_read(path, &back, NULL, &err) == SDLK_OK, "%s", err.msg);
    assert_same_image(&img, &back);
    sdlk_tensor_free(&img);
    sdlk_tensor_free(&back);
    photo_image(&img, 1, SDLK_U8);
    tmp_path(path, sizeof path, "gray.bmp");
    ck_assert_msg(sdlk_image_write(path, &img, NULL, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_msg(sdlk_image_read(path, &back, NULL, &err) == SDLK_OK, "%s", err.msg);
    assert_same_image(&img, &back);
    sdlk_tensor_free(&img);
    sdlk_tensor_free(&back);
    sdlk_tensor_free(&photo);
    ck_assert_int_eq(tmpdir_entries(), 5);
    remove_tmpdir();
}
END_TEST

START_TEST(sniff_recognises_magic)
{
    ck_assert(sdlk_image_sniff((const uint8_t *)"\x89PNG\r\n\x1a\n", 8));
    ck_assert(sdlk_image_sniff((const uint8_t *)"\xff\xd8\xff\xe0", 4));
    ck_assert(sdlk_image_sniff((const uint8_t *)"BM\x36\x00", 4));
    ck_assert(sdlk_image_sniff((const uint8_t *)"RIFF\0\0\0\0WEBPVP8 ", 16));
    ck_assert(sdlk_image_sniff((const uint8_t *)"P6\n451 300", 10));
    ck_assert(!sdlk_image_sniff((const uint8_t *)"\x93NUMPY", 6));
    ck_assert(!sdlk_image_sniff((const uint8_t *)"\x89PN", 3));
    ck_assert(!sdlk_image_sniff((const uint8_t *)"", 0));
}
END_TEST

/* Reading `path` must fail with `code` and a message that names the file. */
static void assert_read_fails(const char *path, sdlk_status code)
{
    sdlk_tensor img;
    sdlk_error err = {0};
    sdlk_status st = sdlk_image_read(path, &img, NULL, &err);
    ck_assert_msg(st == code, "%s: got %s (%s)", path, sdlk_status_name(st), err.msg);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    ck_assert_ptr_null(img.data);
    sdlk_tensor_free(&img);
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

START_TEST(bad_input_is_a_format_error_naming_the_file)
{
    make_tmpdir();
    char src[512], path[512];
    sdlk_error err = {0};
    sdlk_storage *bytes;
    data_path(src, sizeof src, "camera.png");
    ck_assert_int_eq(sdlk_file_map(src, &bytes, &err), SDLK_OK);
    const uint8_t *png = sdlk_storage_data(bytes);
    size_t png_size = sdlk_storage_size(bytes);

    /* truncated PNG: half the file, and all but the IEND chunk */
    tmp_path(path, sizeof path, "half.png");
    write_bytes(path, png, png_size / 2);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    tmp_path(path, sizeof path, "noend.png");
    write_bytes(path, png, png_size - 12);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    /* one flipped bit inside the image data: the CRC catches it */
    uint8_t *flipped = malloc(png_size);
    memcpy(flipped, png, png_size);
    flipped[png_size / 2] ^= 0x10;
    tmp_path(path, sizeof path, "flipped.png");
    write_bytes(path, flipped, png_size);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    free(flipped);
    sdlk_storage_release(bytes);

    /* PNG with width 0: a well-formed IHDR chunk (valid CRC) that states it */
    uint8_t zero[8 + 25 + 12];
    memcpy(zero, "\x89PNG\r\n\x1a\n", 8);
    uint8_t *ihdr = zero + 8;
    be32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    be32(ihdr + 8, 0);  /* width */
    be32(ihdr + 12, 1); /* height */
    ihdr[16] = 8, ihdr[17] = 0, ihdr[18] = 0, ihdr[19] = 0, ihdr[20] = 0;
    be32(ihdr + 21, (uint32_t)crc32(0, ihdr + 4, 17));
    uint8_t *iend = ihdr + 25;
    be32(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    be32(iend + 8, (uint32_t)crc32(0, iend + 4, 4));
    tmp_path(path, sizeof path, "width0.png");
    write_bytes(path, zero, sizeof zero);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    /* the same with a huge width: refused before any allocation */
    be32(ihdr + 8, 0x7fffffff);
    be32(ihdr + 21, (uint32_t)crc32(0, ihdr + 4, 17));
    tmp_path(path, sizeof path, "huge.png");
    write_bytes(path, zero, sizeof zero);
    assert_read_fails(path, SDLK_ERR_FORMAT);

    /* JPEG: truncated, and garbage in the entropy-coded data */
    sdlk_tensor photo;
    read_test_image("chelsea.png", &photo, NULL);
    tmp_path(path, sizeof path, "good.jpg");
    ck_assert_int_eq(sdlk_image_write(path, &photo, NULL, &err), SDLK_OK);
    sdlk_tensor_free(&photo);
    ck_assert_int_eq(sdlk_file_map(path, &bytes, &err), SDLK_OK);
    const uint8_t *jpg = sdlk_storage_data(bytes);
    size_t jpg_size = sdlk_storage_size(bytes);
    tmp_path(path, sizeof path, "cut.jpg");
    write_bytes(path, jpg, jpg_size * 2 / 3);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    uint8_t *garbled = malloc(jpg_size);
    memcpy(garbled, jpg, jpg_size);
    for (size_t i = jpg_size / 2; i < jpg_size / 2 + 64; i++)
        garbled[i] = 0xff; /* a run of 0xff is a marker where data should be */
    tmp_path(path, sizeof path, "garbled.jpg");
    write_bytes(path, garbled, jpg_size);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    tmp_path(path, sizeof path, "header-only.jpg");
    write_bytes(path, jpg, 100);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    free(garbled);
    sdlk_storage_release(bytes);

    /* random bytes, empty file, missing file */
    uint8_t noise[4096];
    uint32_t state = 12345;
    for (size_t i = 0; i < sizeof noise; i++) {
        state = state * 1664525u + 1013904223u;
        noise[i] = (uint8_t)(state >> 24);
    }
    tmp_path(path, sizeof path, "noise.png");
    write_bytes(path, noise, sizeof noise);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    tmp_path(path, sizeof path, "empty.png");
    write_bytes(path, "", 0);
    assert_read_fails(path, SDLK_ERR_FORMAT);
    tmp_path(path, sizeof path, "missing.png");
    assert_read_fails(path, SDLK_ERR_IO);
    remove_tmpdir();
}
END_TEST

START_TEST(failed_writes_leave_nothing)
{
    make_tmpdir();
    sdlk_tensor img;
    photo_image(&img, 3, SDLK_U8);
    char path[512];
    sdlk_error err = {0};

    /* a directory that cannot exist: its parent is a regular file */
    tmp_path(path, sizeof path, "file");
    write_bytes(path, "x", 1);
    tmp_path(path, sizeof path, "file/out.png");
    ck_assert_int_eq(sdlk_image_write(path, &img, NULL, &err), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_image_write("/nonexistent-sdl-dir/out.jpg", &img, NULL, &err),
                     SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent-sdl-dir/out.jpg"));
    sdlk_error_clear(&err);

    /* failures after the temporary exists: bad quality, no encoder, bad level */
    sdlk_image_write_opts opts;
    sdlk_image_write_opts_init(&opts);
    opts.jpeg_quality = 150;
    tmp_path(path, sizeof path, "q150.jpg");
    ck_assert_int_eq(sdlk_image_write(path, &img, &opts, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    sdlk_error_clear(&err);
    tmp_path(path, sizeof path, "x.nosuchformat");
    ck_assert_int_eq(sdlk_image_write(path, &img, NULL, &err), SDLK_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    sdlk_error_clear(&err);
    sdlk_image_write_opts_init(&opts);
    opts.png_compression = 12;
    tmp_path(path, sizeof path, "level.png");
    ck_assert_int_eq(sdlk_image_write(path, &img, &opts, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    tmp_path(path, sizeof path, "noext");
    ck_assert_int_eq(sdlk_image_write(path, &img, NULL, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_image_write("-", &img, NULL, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);

    /* not an image tensor */
    sdlk_tensor f;
    int64_t shape[3] = {4, 4, 3};
    ck_assert_int_eq(sdlk_tensor_alloc(&f, SDLK_F32, 3, shape, &err), SDLK_OK);
    tmp_path(path, sizeof path, "float.png");
    ck_assert_int_eq(sdlk_image_write(path, &f, NULL, &err), SDLK_ERR_ARG);
    sdlk_tensor_free(&f);

    ck_assert_int_eq(tmpdir_entries(), 1); /* only "file" */
    sdlk_tensor_free(&img);
    remove_tmpdir();
}
END_TEST

/* ---- row-wise reading of a region ------------------------------------------------ */

/* Collects what sdlk_image_decode_rows delivers into a tensor. */
typedef struct rows_capture {
    sdlk_tensor img;
    int rows_seen, next_row;
} rows_capture;

static sdlk_status capture_begin(void *ctx, int width, int height, int channels, sdlk_dtype dtype,
                                 sdlk_error *err)
{
    rows_capture *c = ctx;
    int64_t shape[3] = {height, width, channels};
    return sdlk_tensor_alloc(&c->img, dtype, 3, shape, err);
}

static sdlk_status capture_row(void *ctx, int y, const uint8_t *row, sdlk_error *err)
{
    rows_capture *c = ctx;
    if (y != c->next_row++)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "row %d out of order", y);
    memcpy(c->img.data + y * c->img.strides[0], row, (size_t)c->img.strides[0]);
    c->rows_seen++;
    return SDLK_OK;
}

static sdlk_status stop_at_row_3(void *ctx, int y, const uint8_t *row, sdlk_error *err)
{
    (void)ctx;
    (void)row;
    return y == 3 ? sdlk_error_set(err, SDLK_ERR_IO, "sink full") : SDLK_OK;
}

/* The region of `whole` as a new tensor. */
static void cut(const sdlk_tensor *whole, const sdlk_image_region *r, sdlk_tensor *out)
{
    int64_t shape[3] = {r->height, r->width, whole->shape[2]};
    ck_assert_int_eq(sdlk_tensor_alloc(out, whole->dtype, 3, shape, NULL), SDLK_OK);
    for (int y = 0; y < r->height; y++)
        memcpy(out->data + y * out->strides[0],
               whole->data + (r->y + y) * whole->strides[0] + r->x * whole->strides[1],
               (size_t)out->strides[0]);
}

START_TEST(decode_rows_region_equals_whole_decode)
{
    make_tmpdir();
    sdlk_tensor photo;
    read_test_image("chelsea.png", &photo, NULL); /* 451 x 300 RGB */
    sdlk_tensor gray;
    {
        int64_t shape[3] = {photo.shape[0], photo.shape[1], 1};
        ck_assert_int_eq(sdlk_tensor_alloc(&gray, SDLK_U8, 3, shape, NULL), SDLK_OK);
        for (int64_t i = 0; i < photo.shape[0] * photo.shape[1]; i++)
            gray.data[i] = photo.data[3 * i + 1];
    }
    /* regions on and off iMCU boundaries, at the edges, whole rows, the whole image */
    const sdlk_image_region regions[] = {
        {0, 0, 0, 0}, {100, 50, 200, 100}, {17, 33, 64, 64}, {0, 0, 64, 64},
        {387, 236, 64, 64}, {8, 16, 0, 40}, {129, 0, 1, 0}, {440, 290, 100, 100},
    };
    const char *names[] = {"444.jpg", "422.jpg", "420.jpg", "gray.jpg", "photo.png"};
    sdlk_chroma chromas[] = {SDLK_CHROMA_444, SDLK_CHROMA_422, SDLK_CHROMA_420, SDLK_CHROMA_420, 0};
    for (int f = 0; f < 5; f++) {
        char path[512];
        tmp_path(path, sizeof path, names[f]);
        sdlk_image_write_opts opts;
        sdlk_image_write_opts_init(&opts);
        opts.jpeg_quality = 85;
        if (chromas[f])
            opts.chroma = chromas[f];
        sdlk_error err = {0};
        ck_assert_msg(sdlk_image_write(path, f == 3 ? &gray : &photo, &opts, &err) == SDLK_OK,
                      "%s", err.msg);
        sdlk_storage *bytes;
        ck_assert_int_eq(sdlk_file_map(path, &bytes, &err), SDLK_OK);
        const uint8_t *data = sdlk_storage_data(bytes);
        size_t size = sdlk_storage_size(bytes);
        sdlk_tensor whole;
        ck_assert_int_eq(sdlk_image_decode(data, size, path, &whole, NULL, &err), SDLK_OK);
        for (size_t k = 0; k < sizeof regions / sizeof *regions; k++) {
            sdlk_image_region want = regions[k];
            /* what the region means after clipping */
            sdlk_image_region r = want;
            if (!r.width || r.x + r.width > whole.shape[1])
                r.width = (int)whole.shape[1] - r.x;
            if (!r.height || r.y + r.height > whole.shape[0])
                r.height = (int)whole.shape[0] - r.y;
            rows_capture c = {0};
            sdlk_tensor_init(&c.img);
            sdlk_image_row_sink sink = {capture_begin, capture_row, &c};
            sdlk_image_info info;
            ck_assert_msg(sdlk_image_decode_rows(data, size, path, k ? &want : NULL, &sink, &info,
                                                 &err) == SDLK_OK, "%s: %s", names[f], err.msg);
            ck_assert_int_eq(info.width, whole.shape[1]);
            ck_assert_int_eq(info.height, whole.shape[0]);
            ck_assert_int_eq(c.rows_seen, r.height);
            sdlk_tensor expect;
            cut(&whole, &r, &expect);
            ck_assert_msg(c.img.shape[1] == r.width && c.img.shape[2] == whole.shape[2],
                          "%s region %zu: %lldx%lld", names[f], k, (long long)c.img.shape[1],
                          (long long)c.img.shape[0]);
            ck_assert_msg(memcmp(c.img.data, expect.data, sdlk_tensor_nbytes(&expect)) == 0,
                          "%s: region %d,%d %dx%d differs from the whole decode", names[f], r.x,
                          r.y, r.width, r.height);
            sdlk_tensor_free(&expect);
            sdlk_tensor_free(&c.img);
        }
        /* a region outside the image is refused; a sink's error stops the decoding */
        sdlk_image_region outside = {1000, 0, 10, 10};
        rows_capture c = {0};
        sdlk_tensor_init(&c.img);
        sdlk_image_row_sink sink = {capture_begin, capture_row, &c};
        ck_assert_int_eq(sdlk_image_decode_rows(data, size, path, &outside, &sink, NULL, &err),
                         SDLK_ERR_ARG);
        ck_assert_ptr_nonnull(strstr(err.msg, "outside"));
        sdlk_tensor_free(&c.img);
        sdlk_error_clear(&err);
        sdlk_image_row_sink stopping = {capture_begin, stop_at_row_3, &c};
        ck_assert_int_eq(sdlk_image_decode_rows(data, size, path, NULL, &stopping, NULL, &err),
                         SDLK_ERR_IO);
        ck_assert_str_eq(err.msg, "sink full");
        sdlk_tensor_free(&c.img);
        /* damaged data is still a format error naming the file */
        if (f < 4) {
            sdlk_error_clear(&err);
            rows_capture d = {0};
            sdlk_tensor_init(&d.img);
            sdlk_image_row_sink dsink = {capture_begin, capture_row, &d};
            ck_assert_int_eq(sdlk_image_decode_rows(data, size / 2, path, NULL, &dsink, NULL, &err),
                             SDLK_ERR_FORMAT);
            ck_assert_ptr_nonnull(strstr(err.msg, names[f]));
            sdlk_tensor_free(&d.img);
        }
        sdlk_tensor_free(&whole);
        sdlk_storage_release(bytes);
    }
    sdlk_tensor_free(&gray);
    sdlk_tensor_free(&photo);
    remove_tmpdir();
}
END_TEST

int main(void)
{
    return UNIT_RUN("image",
                    png_libpng_matches_ffmpeg_decoder,
                    png_roundtrip_8_and_16_bit_all_channels,
                    png_palette_trns_and_low_bit_depths_expand,
                    jpeg_quality_subsampling_and_ffmpeg_agreement,
                    jpeg_gray_16bit_and_alpha_inputs,
                    jpeg_cmyk_is_refused,
                    decode_rows_region_equals_whole_decode,
                    float_conversions_exact_and_chw,
                    ffmpeg_formats_roundtrip,
                    sniff_recognises_magic,
                    bad_input_is_a_format_error_naming_the_file,
                    failed_writes_leave_nothing);
}
