/* Unit tests of lib/video: decoding a real Cinepak AVI, encoding H.264 / FFV1 / PNG
 * frames and reading them back, bad input, atomic output.
 *
 * References: the ffmpeg command-line tool's decode of the first frame (when ffmpeg is
 * on PATH), the AVI index's frame count, libpng for PNG frames, and bit-exactness for
 * the lossless codecs.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "core/tensor.h"
#include "image/image.h"
#include "video/video.h"
#include "unit.h"

enum { TREE_W = 320, TREE_H = 240, TREE_FRAMES = 444, SAMPLE_FRAMES = 10 };

static char tmpdir[256];

static void remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) {
        unlink(path);
        return;
    }
    struct dirent *e;
    char child[1024];
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            remove_tree(child);
        }
    closedir(dir);
    rmdir(path);
}

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sdl-test-video-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static int dir_entries(const char *path)
{
    DIR *dir = opendir(path);
    ck_assert_ptr_nonnull(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dir);
    return n;
}

static void tree_path(char *buf, size_t size)
{
    const char *dir = getenv("SDL_TESTDATA");
    ck_assert_msg(dir != NULL, "SDL_TESTDATA is not set");
    snprintf(buf, size, "%s/tree.avi", dir);
}

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, size, fp), size);
    fclose(fp);
}

/* The first `n` frames of tree.avi, spread out: frames 0, 40, 80... so that they differ. */
static void tree_frames(sdlk_tensor *frames, int n, int channels)
{
    char path[512];
    tree_path(path, sizeof path);
    sdlk_video_reader *r;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_video_open(path, channels, &r, NULL, &err) == SDLK_OK, "%s", err.msg);
    for (int i = 0, index = 0; i < n; index++) {
        sdlk_tensor f;
        ck_assert_msg(sdlk_video_read_frame(r, &f, &err) == SDLK_OK, "%s", err.msg);
        if (index % 40 == 0)
            frames[i++] = f;
        else
            sdlk_tensor_free(&f);
    }
    sdlk_video_close(r);
}

static double psnr(const sdlk_tensor *a, const sdlk_tensor *b)
{
    uint64_t n = sdlk_tensor_nbytes(a);
    ck_assert_uint_eq(n, sdlk_tensor_nbytes(b));
    double se = 0;
    for (uint64_t i = 0; i < n; i++) {
        double d = (double)a->data[i] - (double)b->data[i];
        se += d * d;
    }
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (se / (double)n));
}

START_TEST(tree_avi_frame_count_info_and_first_frame)
{
    char path[512];
    tree_path(path, sizeof path);
    sdlk_video_reader *r;
    sdlk_video_info info;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_video_open(path, 3, &r, &info, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_int_eq(info.width, TREE_W);
    ck_assert_int_eq(info.height, TREE_H);
    ck_assert_int_eq(info.frame_count, TREE_FRAMES);
    ck_assert_double_eq_tol(info.fps, 15.0, 0.01);
    ck_assert_double_eq_tol(info.duration, TREE_FRAMES / 15.0, 0.1);
    ck_assert_str_eq(info.codec, "cinepak");
    ck_assert_str_eq(info.container, "avi");

    sdlk_tensor first, f;
    ck_assert_int_eq(sdlk_video_read_frame(r, &first, &err), SDLK_OK);
    ck_assert_int_eq(first.shape[0], TREE_H);
    ck_assert_int_eq(first.shape[1], TREE_W);
    ck_assert_int_eq(first.shape[2], 3);
    int64_t count = 1;
    sdlk_status st;
    while ((st = sdlk_video_read_frame(r, &f, &err)) == SDLK_OK) {
        ck_assert_int_eq(f.shape[0], TREE_H);
        count++;
        sdlk_tensor_free(&f);
    }
    ck_assert_int_eq(st, SDLK_ERR_EOF);
    ck_assert_int_eq(count, TREE_FRAMES);
    sdlk_video_get_info(r, &info);
    ck_assert_int_eq(info.corrupt_packets, 0);
    sdlk_video_close(r);

    /* the ffmpeg tool's decode of frame 0 (Cinepak decodes to RGB24: no conversion) */
    if (system("command -v ffmpeg >/dev/null 2>&1") == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -nostdin -v error -i '%s' -frames:v 1 -f rawvideo -pix_fmt rgb24 -",
                 path);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        size_t size = (size_t)TREE_W * TREE_H * 3;
        uint8_t *ref = malloc(size);
        ck_assert_uint_eq(fread(ref, 1, size, p), size);
        ck_assert_int_eq(pclose(p), 0);
        ck_assert_mem_eq(first.data, ref, size);
        free(ref);
    }

    /* gray frames: luma of the RGB frame (BT.601 weights) */
    ck_assert_int_eq(sdlk_video_open(path, 1, &r, NULL, &err), SDLK_OK);
    sdlk_tensor gray;
    ck_assert_int_eq(sdlk_video_read_frame(r, &gray, &err), SDLK_OK);
    ck_assert_int_eq(gray.shape[2], 1);
    for (int64_t i = 0; i < TREE_W * TREE_H; i++) {
        const uint8_t *rgb = first.data + i * 3;
        double y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
        ck_assert_msg(fabs(gray.data[i] - y) <= 1.5, "pixel %lld: gray %d vs luma %.1f",
                      (long long)i, gray.data[i], y);
    }
    sdlk_tensor_free(&gray);
    sdlk_video_close(r);
    sdlk_tensor_free(&first);
}
END_TEST

/* Write frames[0..n) to `path` with `codec`; then read them back into back[]. */
static void write_video(const char *path, sdlk_video_codec codec, sdlk_tensor *frames, int n)
{
    sdlk_video_write_opts opts;
    sdlk_video_write_opts_init(&opts);
    opts.codec = codec;
    opts.fps = 15;
    sdlk_video_writer *w;
    sdlk_error err = {0};
    int channels = (int)frames[0].shape[2];
    ck_assert_msg(sdlk_video_writer_open(path, TREE_W, TREE_H, channels, &opts, &w, &err) ==
                      SDLK_OK,
                  "%s", err.msg);
    for (int i = 0; i < n; i++)
        ck_assert_msg(sdlk_video_write_frame(w, &frames[i], &err) == SDLK_OK, "%s", err.msg);
    ck_assert_msg(sdlk_video_writer_finish(w, &err) == SDLK_OK, "%s", err.msg);
}

static void read_video(const char *path, int channels, sdlk_tensor *back, int n,
                       sdlk_video_info *info)
{
    sdlk_video_reader *r;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_video_open(path, channels, &r, info, &err) == SDLK_OK, "%s", err.msg);
    for (int i = 0; i < n; i++)
        ck_assert_msg(sdlk_video_read_frame(r, &back[i], &err) == SDLK_OK, "frame %d: %s", i,
                      err.msg);
    sdlk_tensor extra;
    ck_assert_int_eq(sdlk_video_read_frame(r, &extra, &err), SDLK_ERR_EOF);
    sdlk_video_close(r);
}

static void free_frames(sdlk_tensor *frames, int n)
{
    for (int i = 0; i < n; i++)
        sdlk_tensor_free(&frames[i]);
}

START_TEST(ffv1_roundtrip_is_bit_exact)
{
    make_tmpdir();
    int channel_counts[2] = {3, 1};
    for (int c = 0; c < 2; c++) {
        sdlk_tensor frames[SAMPLE_FRAMES], back[SAMPLE_FRAMES];
        sdlk_video_info info;
        char path[512];
        tree_frames(frames, SAMPLE_FRAMES, channel_counts[c]);
        tmp_path(path, sizeof path, "lossless.mkv");
        write_video(path, SDLK_VCODEC_AUTO, frames, SAMPLE_FRAMES);
        read_video(path, channel_counts[c], back, SAMPLE_FRAMES, &info);
        ck_assert_str_eq(info.codec, "ffv1");
        ck_assert_double_eq_tol(info.fps, 15.0, 0.01);
        for (int i = 0; i < SAMPLE_FRAMES; i++)
            ck_assert_mem_eq(frames[i].data, back[i].data, sdlk_tensor_nbytes(&frames[i]));
        free_frames(frames, SAMPLE_FRAMES);
        free_frames(back, SAMPLE_FRAMES);
    }
    ck_assert_int_eq(dir_entries(tmpdir), 1); /* no temporaries left */
    remove_tree(tmpdir);
}
END_TEST

START_TEST(h264_roundtrip_psnr)
{
    make_tmpdir();
    sdlk_tensor frames[SAMPLE_FRAMES], back[SAMPLE_FRAMES];
    sdlk_video_info info;
    char path[512];
    tree_frames(frames, SAMPLE_FRAMES, 3);
    tmp_path(path, sizeof path, "lossy.mp4");
    write_video(path, SDLK_VCODEC_AUTO, frames, SAMPLE_FRAMES);
    read_video(path, 3, back, SAMPLE_FRAMES, &info);
    ck_assert_str_eq(info.codec, "h264");
    ck_assert_int_eq(info.width, TREE_W);
    ck_assert_double_eq_tol(info.fps, 15.0, 0.01);
    for (int i = 0; i < SAMPLE_FRAMES; i++) {
        double p = psnr(&frames[i], &back[i]);
        ck_assert_msg(p > 30.0 && p < 99.0, "frame %d: PSNR %.2f dB", i, p);
    }
    free_frames(frames, SAMPLE_FRAMES);
    free_frames(back, SAMPLE_FRAMES);
    /* gray frames go through the same 4:2:0 encoder (luma only carries them) */
    enum { GRAY_FRAMES = 3 };
    tree_frames(frames, GRAY_FRAMES, 1);
    tmp_path(path, sizeof path, "gray.mov");
    write_video(path, SDLK_VCODEC_AUTO, frames, GRAY_FRAMES);
    read_video(path, 1, back, GRAY_FRAMES, &info);
    ck_assert_str_eq(info.container, "mov,mp4,m4a,3gp,3g2,mj2");
    for (int i = 0; i < GRAY_FRAMES; i++) {
        double p = psnr(&frames[i], &back[i]);
        ck_assert_msg(p > 30.0 && p < 99.0, "gray frame %d: PSNR %.2f dB", i, p);
    }
    free_frames(frames, GRAY_FRAMES);
    free_frames(back, GRAY_FRAMES);
    ck_assert_int_eq(dir_entries(tmpdir), 2);
    remove_tree(tmpdir);
}
END_TEST

START_TEST(png_frames_roundtrip_exact)
{
    make_tmpdir();
    sdlk_tensor frames[SAMPLE_FRAMES], back[SAMPLE_FRAMES];
    char path[512], name[600];
    sdlk_error err = {0};
    tree_frames(frames, SAMPLE_FRAMES, 3);

    /* a directory (created by the writer), read back file by file with libpng */
    tmp_path(path, sizeof path, "frames/");
    write_video(path, SDLK_VCODEC_AUTO, frames, SAMPLE_FRAMES);
    ck_assert_int_eq(dir_entries(path), SAMPLE_FRAMES);
    for (int i = 0; i < SAMPLE_FRAMES; i++) {
        snprintf(name, sizeof name, "%sframe_%06d.png", path, i + 1);
        sdlk_tensor img;
        ck_assert_msg(sdlk_image_read(name, &img, NULL, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_mem_eq(img.data, frames[i].data, sdlk_tensor_nbytes(&img));
        sdlk_tensor_free(&img);
    }
    /* and the directory as a video (FFmpeg's image2 demuxer) */
    sdlk_video_info info;
    read_video(path, 3, back, SAMPLE_FRAMES, &info);
    for (int i = 0; i < SAMPLE_FRAMES; i++)
        ck_assert_mem_eq(back[i].data, frames[i].data, sdlk_tensor_nbytes(&back[i]));
    free_frames(back, SAMPLE_FRAMES);

    /* a pattern */
    tmp_path(path, sizeof path, "f%03d.png");
    write_video(path, SDLK_VCODEC_AUTO, frames, 3);
    tmp_path(name, sizeof name, "f003.png");
    ck_assert_int_eq(access(name, F_OK), 0);
    read_video(path, 3, back, 3, NULL);
    ck_assert_mem_eq(back[2].data, frames[2].data, sdlk_tensor_nbytes(&back[2]));
    free_frames(back, 3);
    free_frames(frames, SAMPLE_FRAMES);
    remove_tree(tmpdir);
}
END_TEST

START_TEST(aborted_and_failed_writes_leave_nothing)
{
    make_tmpdir();
    sdlk_tensor frames[3];
    tree_frames(frames, 3, 3);
    char path[512];
    sdlk_error err = {0};
    sdlk_video_writer *w;
    const char *names[3] = {"a.mkv", "a.mp4", "adir/"};
    for (int k = 0; k < 3; k++) {
        tmp_path(path, sizeof path, names[k]);
        ck_assert_int_eq(sdlk_video_writer_open(path, TREE_W, TREE_H, 3, NULL, &w, &err), SDLK_OK);
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(sdlk_video_write_frame(w, &frames[i], &err), SDLK_OK);
        ck_assert_int_gt(dir_entries(tmpdir), 0); /* the temporary or frames exist */
        sdlk_video_writer_abort(w);
        ck_assert_int_eq(dir_entries(tmpdir), 0);
    }

    /* unwritable places: below a regular file, a missing directory */
    tmp_path(path, sizeof path, "file");
    write_bytes(path, "x", 1);
    const char *bad[4] = {"file/x.mkv", "file/x.mp4", "file/sub/", "missing/f%04d.png"};
    for (int k = 0; k < 4; k++) {
        tmp_path(path, sizeof path, bad[k]);
        sdlk_error_clear(&err);
        ck_assert_int_eq(sdlk_video_writer_open(path, TREE_W, TREE_H, 3, NULL, &w, &err),
                         SDLK_ERR_IO);
        ck_assert_msg(strstr(err.msg, path) != NULL, "%s", err.msg);
    }
    /* usage errors */
    sdlk_error_clear(&err);
    tmp_path(path, sizeof path, "x.mp4");
    ck_assert_int_eq(sdlk_video_writer_open(path, 321, 240, 3, NULL, &w, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    tmp_path(path, sizeof path, "x.unknown");
    ck_assert_int_eq(sdlk_video_writer_open(path, 320, 240, 3, NULL, &w, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    tmp_path(path, sizeof path, "x%s%d.png");
    ck_assert_int_eq(sdlk_video_writer_open(path, 320, 240, 3, NULL, &w, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    /* a frame of the wrong size, then abort */
    tmp_path(path, sizeof path, "x.mkv");
    ck_assert_int_eq(sdlk_video_writer_open(path, 160, 120, 3, NULL, &w, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_video_write_frame(w, &frames[0], &err), SDLK_ERR_ARG);
    sdlk_video_writer_abort(w);
    ck_assert_int_eq(dir_entries(tmpdir), 1); /* only "file" */
    free_frames(frames, 3);
    remove_tree(tmpdir);
}
END_TEST

static void assert_open_fails(const char *path, sdlk_status code)
{
    sdlk_video_reader *r = (sdlk_video_reader *)1;
    sdlk_error err = {0};
    sdlk_status st = sdlk_video_open(path, 3, &r, NULL, &err);
    ck_assert_msg(st == code, "%s: got %s (%s)", path, sdlk_status_name(st), err.msg);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

START_TEST(bad_input_is_a_format_error_naming_the_file)
{
    make_tmpdir();
    char path[512], src[512];
    sdlk_error err = {0};

    /* audio only: a WAV file with one second of a 440 Hz tone */
    enum { RATE = 8000 };
    static uint8_t wav[44 + RATE * 2];
    memcpy(wav, "RIFF", 4);
    put_le32(wav + 4, sizeof wav - 8);
    memcpy(wav + 8, "WAVEfmt ", 8);
    put_le32(wav + 16, 16);
    wav[20] = 1, wav[21] = 0, wav[22] = 1, wav[23] = 0; /* PCM, mono */
    put_le32(wav + 24, RATE);
    put_le32(wav + 28, RATE * 2);
    wav[32] = 2, wav[33] = 0, wav[34] = 16, wav[35] = 0;
    memcpy(wav + 36, "data", 4);
    put_le32(wav + 40, RATE * 2);
    for (int i = 0; i < RATE; i++) {
        int16_t s = (int16_t)(8000 * sin(2 * M_PI * 440 * i / RATE));
        wav[44 + 2 * i] = (uint8_t)s, wav[45 + 2 * i] = (uint8_t)((uint16_t)s >> 8);
    }
    tmp_path(path, sizeof path, "tone.wav");
    write_bytes(path, wav, sizeof wav);
    assert_open_fails(path, SDLK_ERR_FORMAT);

    /* tree.avi cut inside its header, and cut before the first picture is complete */
    tree_path(src, sizeof src);
    sdlk_storage *bytes;
    ck_assert_int_eq(sdlk_file_map(src, &bytes, &err), SDLK_OK);
    tmp_path(path, sizeof path, "header.avi");
    write_bytes(path, sdlk_storage_data(bytes), 1000);
    assert_open_fails(path, SDLK_ERR_FORMAT);
    tmp_path(path, sizeof path, "noframe.avi");
    write_bytes(path, sdlk_storage_data(bytes), 10000);
    assert_open_fails(path, SDLK_ERR_FORMAT);

    /* cut in the middle: the frames before the cut, then a clean end */
    tmp_path(path, sizeof path, "half.avi");
    write_bytes(path, sdlk_storage_data(bytes), sdlk_storage_size(bytes) / 2);
    sdlk_storage_release(bytes);
    sdlk_video_reader *r;
    ck_assert_int_eq(sdlk_video_open(path, 3, &r, NULL, &err), SDLK_OK);
    int n = 0;
    sdlk_tensor f;
    sdlk_status st;
    while ((st = sdlk_video_read_frame(r, &f, &err)) == SDLK_OK) {
        n++;
        sdlk_tensor_free(&f);
    }
    ck_assert_int_eq(st, SDLK_ERR_EOF);
    ck_assert_int_gt(n, 10);
    ck_assert_int_lt(n, TREE_FRAMES);
    sdlk_video_close(r);

    /* a video with no frames at all (written by us), random bytes, empty, missing */
    tmp_path(path, sizeof path, "empty.mkv");
    sdlk_video_writer *w;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_video_writer_open(path, 64, 48, 3, NULL, &w, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_video_writer_finish(w, &err), SDLK_OK);
    assert_open_fails(path, SDLK_ERR_FORMAT);
    uint8_t noise[8192];
    uint32_t state = 777;
    for (size_t i = 0; i < sizeof noise; i++) {
        state = state * 1664525u + 1013904223u;
        noise[i] = (uint8_t)(state >> 24);
    }
    tmp_path(path, sizeof path, "noise.avi");
    write_bytes(path, noise, sizeof noise);
    assert_open_fails(path, SDLK_ERR_FORMAT);
    tmp_path(path, sizeof path, "empty.avi");
    write_bytes(path, "", 0);
    assert_open_fails(path, SDLK_ERR_FORMAT);
    tmp_path(path, sizeof path, "missing.avi");
    assert_open_fails(path, SDLK_ERR_IO);
    remove_tree(tmpdir);
}
END_TEST

START_TEST(still_image_reads_as_one_frame_video)
{
    /* Containers are recognised by content, not by name: a PNG named .avi is a
     * one-frame video whose frame is the picture. */
    make_tmpdir();
    const char *dir = getenv("SDL_TESTDATA");
    char src[512], path[512];
    snprintf(src, sizeof src, "%s/chelsea.png", dir);
    sdlk_storage *bytes;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_file_map(src, &bytes, &err), SDLK_OK);
    tmp_path(path, sizeof path, "photo.avi");
    write_bytes(path, sdlk_storage_data(bytes), sdlk_storage_size(bytes));
    sdlk_storage_release(bytes);
    sdlk_tensor img, frame;
    ck_assert_int_eq(sdlk_image_read(src, &img, NULL, &err), SDLK_OK);
    read_video(path, 3, &frame, 1, NULL);
    ck_assert_mem_eq(img.data, frame.data, sdlk_tensor_nbytes(&img));
    sdlk_tensor_free(&img);
    sdlk_tensor_free(&frame);
    remove_tree(tmpdir);
}
END_TEST

int main(void)
{
    return UNIT_RUN("video",
                    tree_avi_frame_count_info_and_first_frame,
                    ffv1_roundtrip_is_bit_exact,
                    h264_roundtrip_psnr,
                    png_frames_roundtrip_exact,
                    aborted_and_failed_writes_leave_nothing,
                    bad_input_is_a_format_error_naming_the_file,
                    still_image_reads_as_one_frame_video);
}
