/* io.c -- the "io" benchmark family: sdl's tensor and image I/O against what a careful
 * programmer would write with stdio and libpng.
 *
 *   npy read         sdlk_tensors_load (mmap + parse) + checksum of every data byte
 *                    vs fread of the whole file into a reused buffer + the same checksum
 *   npy write        sdlk_tensors_save (temp file, fflush, fsync, rename)
 *                    vs fwrite of the same bytes to a temp file + fflush + fsync + rename
 *   safetensors load many tensors, as npy read
 *   tensor stream    sdlk_tstream_next record by record from a FILE* (copies) + checksum
 *                    vs fread of the whole file + checksum
 *   PNG decode       sdlk_image_read of real photos vs a plain libpng read loop with the
 *                    same transforms (expand palette/low-bit gray/tRNS, 16-bit to host
 *                    order); the outputs are compared byte for byte before timing.
 *
 * Reads come from the page cache (the untimed warm-up reads each file first); every read
 * figure checksums the bytes on both sides, so a lazy mmap cannot look free.
 */
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_families.h"
#include "core/tensor.h"
#include "core/tensorset.h"
#include "image/image.h"
#include "io/tensorio.h"
#include "io/tstream.h"

#define FAMILY "io"

/* ---- reading a tensor file ---------------------------------------------------- */

typedef struct read_bench {
    char path[4096];
    size_t file_size;
    size_t data_offset, data_size; /* the tensor bytes inside the file */
    int records;                   /* tensor stream: records expected */
    uint8_t *buffer;               /* baseline: file_size bytes, reused by every run */
    uint64_t subject_sum, baseline_sum;
} read_bench;

static uint64_t tensor_set_checksum(const sdlk_tensor_set *set, uint64_t *bytes)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < set->count; i++) {
        const sdlk_tensor *t = &set->items[i].tensor;
        sum += bench_checksum(t->data, (size_t)sdlk_tensor_nbytes(t));
        *bytes += sdlk_tensor_nbytes(t);
    }
    return sum;
}

/* Subject: load with the library and checksum every tensor. */
static sdlk_status load_and_checksum(void *ctx, sdlk_error *err)
{
    read_bench *b = ctx;
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_status st = sdlk_tensors_load(b->path, &set, NULL, err);
    if (st != SDLK_OK)
        return st;
    for (size_t i = 0; i < set.count; i++)
        if (!sdlk_tensor_is_contiguous(&set.items[i].tensor)) {
            sdlk_tensor_set_free(&set);
            return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: loaded a non-contiguous tensor",
                                  b->path);
        }
    uint64_t bytes = 0;
    b->subject_sum = tensor_set_checksum(&set, &bytes);
    sdlk_tensor_set_free(&set);
    if (bytes != b->data_size)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: loaded %llu tensor bytes, wrote %zu",
                              b->path, (unsigned long long)bytes, b->data_size);
    return SDLK_OK;
}

/* Subject: read a tensor stream record by record. */
static sdlk_status stream_and_checksum(void *ctx, sdlk_error *err)
{
    read_bench *b = ctx;
    FILE *fp = fopen(b->path, "rb");
    if (!fp)
        return sdlk_error_errno(err, errno, "%s", b->path);
    sdlk_tstream_reader reader;
    sdlk_tstream_reader_init(&reader, fp, b->path);
    uint64_t sum = 0, bytes = 0;
    sdlk_status st;
    for (;;) {
        sdlk_tensor_set record;
        sdlk_tensor_set_init(&record);
        st = sdlk_tstream_next(&reader, &record, err);
        if (st == SDLK_OK)
            sum += tensor_set_checksum(&record, &bytes);
        sdlk_tensor_set_free(&record);
        if (st != SDLK_OK)
            break;
    }
    fclose(fp);
    if (st == SDLK_ERR_EOF) {
        sdlk_error_clear(err);
        st = SDLK_OK;
    }
    if (st == SDLK_OK && (reader.records != (uint64_t)b->records || bytes != b->data_size))
        st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: read %llu records, wrote %d", b->path,
                            (unsigned long long)reader.records, b->records);
    b->subject_sum = sum;
    return st;
}

/* Baseline: fread of the whole file into a buffer allocated once (its pages are
 * faulted in by the warm-up, so the timed runs measure the read and the checksum, the
 * best case for stdio), then the checksum of the tensor bytes. */
static sdlk_status fread_and_checksum(void *ctx, sdlk_error *err)
{
    read_bench *b = ctx;
    FILE *fp = fopen(b->path, "rb");
    if (!fp)
        return sdlk_error_errno(err, errno, "%s", b->path);
    size_t got = fread(b->buffer, 1, b->file_size, fp);
    int failed = ferror(fp);
    fclose(fp);
    if (failed || got != b->file_size)
        return sdlk_error_set(err, SDLK_ERR_IO, "%s: short read (%zu of %zu bytes)", b->path,
                              got, b->file_size);
    b->baseline_sum = bench_checksum(b->buffer + b->data_offset, b->data_size);
    return SDLK_OK;
}

/* Give the baseline its reusable buffer. */
static sdlk_status read_bench_buffer(read_bench *b, sdlk_error *err)
{
    b->buffer = malloc(b->file_size ? b->file_size : 1);
    if (!b->buffer)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", b->path);
    return SDLK_OK;
}

static sdlk_status file_size_of(const char *path, size_t *size, sdlk_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sdlk_error_errno(err, errno, "%s", path);
    *size = (size_t)sb.st_size;
    return SDLK_OK;
}

/* Read a whole small file into malloc'd memory (setup only, untimed). */
static sdlk_status slurp(const char *path, uint8_t **data, size_t *size, sdlk_error *err)
{
    sdlk_status st = file_size_of(path, size, err);
    if (st != SDLK_OK)
        return st;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sdlk_error_errno(err, errno, "%s", path);
    *data = malloc(*size ? *size : 1);
    size_t got = *data ? fread(*data, 1, *size, fp) : 0;
    fclose(fp);
    if (!*data || got != *size) {
        free(*data);
        *data = NULL;
        return sdlk_error_set(err, SDLK_ERR_IO, "%s: could not read it back", path);
    }
    return SDLK_OK;
}

/* ---- writing a tensor file ---------------------------------------------------- */

typedef struct write_bench {
    char path[4096];          /* subject's destination */
    char baseline_path[4096]; /* baseline's destination */
    char baseline_tmp[4096];  /* baseline's temporary beside it */
    const sdlk_tensor_set *set;
    sdlk_tensor_format format;
    uint8_t *bytes; /* the file the subject writes, for the baseline to write */
    size_t size;
} write_bench;

static sdlk_status save_with_library(void *ctx, sdlk_error *err)
{
    write_bench *b = ctx;
    return sdlk_tensors_save(b->path, b->set, b->format, 0, err);
}

/* Baseline: what a careful stdio program does for a durable, atomic write. */
static sdlk_status fwrite_fsync_rename(void *ctx, sdlk_error *err)
{
    write_bench *b = ctx;
    FILE *fp = fopen(b->baseline_tmp, "wb");
    if (!fp)
        return sdlk_error_errno(err, errno, "%s", b->baseline_tmp);
    size_t put = fwrite(b->bytes, 1, b->size, fp);
    int failed = put != b->size || fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    int saved_errno = errno;
    if (fclose(fp) != 0)
        failed = 1;
    if (failed) {
        unlink(b->baseline_tmp);
        return sdlk_error_errno(err, saved_errno, "%s: write failed", b->baseline_tmp);
    }
    if (rename(b->baseline_tmp, b->baseline_path) != 0)
        return sdlk_error_errno(err, errno, "%s: rename failed", b->baseline_path);
    return SDLK_OK;
}

/* ---- PNG decode ---------------------------------------------------------------- */

typedef struct png_bench {
    char **paths;
    size_t count;
    uint64_t pixels;
} png_bench;

static void png_silent_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }
static void png_silent_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

/* The plain libpng read loop: pixels in *out (malloc'd), laid out as sdlk_image_read
 * lays them out. */
static sdlk_status libpng_read(const char *path, uint8_t **out, size_t *out_size,
                               sdlk_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sdlk_error_errno(err, errno, "%s", path);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_silent_error,
                                             png_silent_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        fclose(fp);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    }
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        free(pixels);
        free(rows);
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: libpng could not decode it", path);
    }
    png_init_io(png, fp);
    png_read_info(png, info);
    png_set_expand(png);
    const uint16_t one = 1;
    if (png_get_bit_depth(png, info) == 16 && *(const uint8_t *)&one == 1)
        png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t height = png_get_image_height(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    pixels = malloc(height * row_bytes);
    rows = malloc(height * sizeof *rows);
    if (!pixels || !rows)
        png_error(png, "out of memory");
    for (size_t y = 0; y < height; y++)
        rows[y] = pixels + y * row_bytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    free(rows);
    *out = pixels;
    *out_size = height * row_bytes;
    return SDLK_OK;
}

static sdlk_status decode_with_library(void *ctx, sdlk_error *err)
{
    png_bench *b = ctx;
    for (size_t i = 0; i < b->count; i++) {
        sdlk_tensor img;
        sdlk_status st = sdlk_image_read(b->paths[i], &img, NULL, err);
        if (st != SDLK_OK)
            return st;
        sdlk_tensor_free(&img);
    }
    return SDLK_OK;
}

static sdlk_status decode_with_libpng(void *ctx, sdlk_error *err)
{
    png_bench *b = ctx;
    for (size_t i = 0; i < b->count; i++) {
        uint8_t *pixels;
        size_t size;
        sdlk_status st = libpng_read(b->paths[i], &pixels, &size, err);
        if (st != SDLK_OK)
            return st;
        free(pixels);
    }
    return SDLK_OK;
}

static int has_png_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void png_bench_free(png_bench *b)
{
    for (size_t i = 0; i < b->count; i++)
        free(b->paths[i]);
    free(b->paths);
    memset(b, 0, sizeof *b);
}

/* Collect the PNG files of `dir` (sorted; at most `limit`), check that both decoders
 * agree on every one of them, and count their pixels. An unreadable directory or one
 * without PNGs leaves b->count 0 (the benchmark is skipped, not failed). */
static sdlk_status png_bench_setup(png_bench *b, const char *dir, size_t limit, sdlk_error *err)
{
    memset(b, 0, sizeof *b);
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d)
        return SDLK_OK;
    size_t capacity = 0;
    struct dirent *e;
    sdlk_status st = SDLK_OK;
    while ((e = readdir(d)) != NULL && st == SDLK_OK) {
        if (!has_png_suffix(e->d_name))
            continue;
        if (b->count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            char **grown = realloc(b->paths, capacity * sizeof *grown);
            if (!grown) {
                st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
                break;
            }
            b->paths = grown;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) {
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        b->paths[b->count++] = path;
    }
    closedir(d);
    if (st != SDLK_OK) {
        png_bench_free(b);
        return st;
    }
    qsort(b->paths, b->count, sizeof *b->paths, compare_strings);
    while (b->count > limit)
        free(b->paths[--b->count]);

    for (size_t i = 0; i < b->count && st == SDLK_OK; i++) {
        sdlk_tensor img;
        uint8_t *pixels = NULL;
        size_t size = 0;
        st = sdlk_image_read(b->paths[i], &img, NULL, err);
        if (st != SDLK_OK)
            break;
        st = libpng_read(b->paths[i], &pixels, &size, err);
        if (st == SDLK_OK && (sdlk_tensor_nbytes(&img) != size ||
                              memcmp(img.data, pixels, size) != 0))
            st = sdlk_error_set(err, SDLK_ERR_INTERNAL,
                                "%s: sdlk_image_read and the libpng loop decode it differently",
                                b->paths[i]);
        if (st == SDLK_OK)
            b->pixels += (uint64_t)img.shape[0] * (uint64_t)img.shape[1];
        free(pixels);
        sdlk_tensor_free(&img);
    }
    if (st != SDLK_OK)
        png_bench_free(b);
    return st;
}

/* ---- the family ---------------------------------------------------------------- */

typedef struct io_scratch {
    char *dir;
    sdlk_tensor_set weights; /* one big f32 tensor */
    sdlk_tensor_set layers;  /* many f32 tensors, the same bytes in total */
    uint8_t *file_bytes;
    png_bench photos;
} io_scratch;

static void io_scratch_free(io_scratch *s)
{
    sdlk_tensor_set_free(&s->weights);
    sdlk_tensor_set_free(&s->layers);
    free(s->file_bytes);
    png_bench_free(&s->photos);
    bench_scratch_remove(s->dir);
}

/* A set of `count` f32 tensors [rows, cols] named "<prefix>.<i>", random contents. */
static sdlk_status make_tensors(sdlk_tensor_set *set, const char *prefix, int count,
                                int64_t rows, int64_t cols, sdlk_error *err)
{
    for (int i = 0; i < count; i++) {
        sdlk_tensor t;
        int64_t shape[2] = {rows, cols};
        sdlk_status st = sdlk_tensor_alloc(&t, SDLK_F32, 2, shape, err);
        if (st != SDLK_OK)
            return st;
        bench_fill_random(t.data, (size_t)sdlk_tensor_nbytes(&t), 0x5d1b + (uint64_t)i);
        char name[64];
        snprintf(name, sizeof name, count == 1 ? "%s" : "%s.%03d", prefix, i);
        st = sdlk_tensor_set_add(set, name, &t, err);
        if (st != SDLK_OK) {
            sdlk_tensor_free(&t);
            return st;
        }
    }
    return SDLK_OK;
}

static sdlk_status check_sums(const read_bench *b, const char *what, sdlk_error *err)
{
    if (b->subject_sum != b->baseline_sum)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL,
                              "%s: library and fread checksums differ (%llx vs %llx)", what,
                              (unsigned long long)b->subject_sum,
                              (unsigned long long)b->baseline_sum);
    return SDLK_OK;
}

/* Save `set` to `path` in `format`, then time loading it (every data byte checksummed)
 * against fread of the same file into a reused buffer with the same checksum. The file
 * is left in place for the caller (the npy write benchmark reuses its bytes). */
static sdlk_status measure_load(const bench_options *opt, const sdlk_tensor_set *set,
                                sdlk_tensor_format format, const char *path, size_t data_bytes,
                                const char *name, const char *note, sdlk_bench_report *report,
                                sdlk_error *err)
{
    read_bench rb = {0};
    snprintf(rb.path, sizeof rb.path, "%s", path);
    sdlk_status st = sdlk_tensors_save(rb.path, set, format, 0, err);
    if (st == SDLK_OK)
        st = file_size_of(rb.path, &rb.file_size, err);
    if (st != SDLK_OK)
        return st;
    rb.data_size = data_bytes;
    rb.data_offset = rb.file_size - data_bytes; /* both formats end with the data */
    st = read_bench_buffer(&rb, err);
    if (st != SDLK_OK)
        return st;
    bench_log(opt, FAMILY, "%s", name);
    st = sdlk_bench_compare(report, FAMILY, name, load_and_checksum, &rb,
                            "fread + same checksum", fread_and_checksum, &rb,
                            (double)rb.file_size, "MB/s", 1e6, opt->reps, err);
    free(rb.buffer);
    if (st == SDLK_OK)
        st = check_sums(&rb, name, err);
    if (st == SDLK_OK)
        sdlk_bench_report_note(report, "%s", note);
    return st;
}

static sdlk_status bench_npy(const bench_options *opt, io_scratch *s, size_t bytes,
                             sdlk_bench_report *report, sdlk_error *err)
{
    const int64_t cols = 1024;
    sdlk_status st = make_tensors(&s->weights, "weights", 1, (int64_t)(bytes / 4 / cols), cols,
                                  err);
    if (st != SDLK_OK)
        return st;
    char size_text[32], name[96], npy_path[4096];
    bench_format_size(size_text, sizeof size_text, bytes);
    snprintf(npy_path, sizeof npy_path, "%s/weights.npy", s->dir);
    snprintf(name, sizeof name, "npy read %s f32", size_text);
    st = measure_load(opt, &s->weights, SDLK_FORMAT_NPY, npy_path, bytes, name,
                      "page cache warm; both checksum every data byte; subject memory-maps, "
                      "baseline freads into a reused buffer",
                      report, err);
    if (st != SDLK_OK)
        return st;

    write_bench wb = {.set = &s->weights, .format = SDLK_FORMAT_NPY};
    snprintf(wb.path, sizeof wb.path, "%s/out.npy", s->dir);
    snprintf(wb.baseline_path, sizeof wb.baseline_path, "%s/out-baseline.npy", s->dir);
    snprintf(wb.baseline_tmp, sizeof wb.baseline_tmp, "%s/.out-baseline.npy.tmp", s->dir);
    free(s->file_bytes);
    s->file_bytes = NULL;
    st = slurp(npy_path, &s->file_bytes, &wb.size, err);
    if (st != SDLK_OK)
        return st;
    wb.bytes = s->file_bytes;
    snprintf(name, sizeof name, "npy write %s f32", size_text);
    bench_log(opt, FAMILY, "%s", name);
    st = sdlk_bench_compare(report, FAMILY, name, save_with_library, &wb,
                            "fwrite of the same bytes", fwrite_fsync_rename, &wb,
                            (double)wb.size, "MB/s", 1e6, opt->reps, err);
    if (st != SDLK_OK)
        return st;
    sdlk_bench_report_note(report, "both write a temp file in %s, fflush + fsync + rename",
                           opt->tmp_dir);
    unlink(wb.path);
    unlink(wb.baseline_path);
    return SDLK_OK;
}

static sdlk_status bench_safetensors(const bench_options *opt, io_scratch *s, size_t bytes,
                                     int count, sdlk_bench_report *report, sdlk_error *err)
{
    const int64_t cols = 256;
    sdlk_status st = make_tensors(&s->layers, "layer", count,
                                  (int64_t)(bytes / (size_t)count / 4 / cols), cols, err);
    if (st != SDLK_OK)
        return st;
    char size_text[32], name[96], path[4096];
    bench_format_size(size_text, sizeof size_text, bytes);
    snprintf(path, sizeof path, "%s/layers.safetensors", s->dir);
    snprintf(name, sizeof name, "safetensors load %d tensors, %s", count, size_text);
    st = measure_load(opt, &s->layers, SDLK_FORMAT_SAFETENSORS, path, bytes, name,
                      "page cache warm; both checksum every tensor byte; subject memory-maps "
                      "and validates the header",
                      report, err);
    unlink(path);
    return st;
}

/* The same tensors as `count` records of a tensor stream, read through a FILE*. */
static sdlk_status bench_tstream(const bench_options *opt, io_scratch *s, size_t bytes,
                                 sdlk_bench_report *report, sdlk_error *err)
{
    read_bench rb = {0};
    snprintf(rb.path, sizeof rb.path, "%s/records.sdlt", s->dir);
    FILE *fp = fopen(rb.path, "wb");
    if (!fp)
        return sdlk_error_errno(err, errno, "%s", rb.path);
    sdlk_status st = SDLK_OK;
    for (size_t i = 0; i < s->layers.count && st == SDLK_OK; i++) {
        sdlk_tensor_set record;
        sdlk_tensor_set_init(&record);
        sdlk_tensor view;
        sdlk_tensor_share(&view, &s->layers.items[i].tensor);
        st = sdlk_tensor_set_add(&record, "x", &view, err);
        if (st == SDLK_OK)
            st = sdlk_tstream_write(fp, &record, rb.path, err);
        sdlk_tensor_set_free(&record);
    }
    if (fclose(fp) != 0 && st == SDLK_OK)
        st = sdlk_error_errno(err, errno, "%s", rb.path);
    if (st == SDLK_OK)
        st = file_size_of(rb.path, &rb.file_size, err);
    if (st != SDLK_OK)
        return st;
    rb.records = (int)s->layers.count;
    rb.data_size = bytes;
    rb.data_offset = 0; /* the baseline checksums the whole file (headers are tiny) */
    rb.data_size = rb.file_size;
    char size_text[32], name[96];
    bench_format_size(size_text, sizeof size_text, bytes);
    snprintf(name, sizeof name, "tensor stream read %d records, %s", rb.records, size_text);
    bench_log(opt, FAMILY, "%s", name);
    /* stream_and_checksum compares tensor bytes against data_size: give it the payload. */
    read_bench subject = rb;
    subject.data_size = bytes;
    st = read_bench_buffer(&rb, err);
    if (st != SDLK_OK)
        return st;
    st = sdlk_bench_compare(report, FAMILY, name, stream_and_checksum, &subject,
                            "fread + checksum", fread_and_checksum, &rb, (double)rb.file_size,
                            "MB/s", 1e6, opt->reps, err);
    free(rb.buffer);
    if (st != SDLK_OK)
        return st;
    sdlk_bench_report_note(report, "page cache warm; subject parses and copies each record "
                                   "into its own storage (as from a pipe)");
    unlink(rb.path);
    return SDLK_OK;
}

static sdlk_status bench_png(const bench_options *opt, io_scratch *s, size_t limit,
                             sdlk_bench_report *report, sdlk_error *err)
{
    sdlk_status st = png_bench_setup(&s->photos, opt->data_dir, limit, err);
    if (st != SDLK_OK)
        return st;
    if (s->photos.count == 0) {
        bench_log(opt, FAMILY, "PNG decode skipped: no .png files in %s (use --data DIR)",
                  opt->data_dir ? opt->data_dir : "(no data directory)");
        return SDLK_OK;
    }
    char name[96];
    snprintf(name, sizeof name, "PNG decode %zu photos, %.2f Mpx", s->photos.count,
             (double)s->photos.pixels / 1e6);
    bench_log(opt, FAMILY, "%s", name);
    st = sdlk_bench_compare(report, FAMILY, name, decode_with_library, &s->photos,
                            "libpng read loop", decode_with_libpng, &s->photos,
                            (double)s->photos.pixels, "Mpx/s", 1e6, opt->reps, err);
    if (st != SDLK_OK)
        return st;
    sdlk_bench_report_note(report, "photos from %s; outputs checked identical; "
                                   "both read the file and allocate the pixels",
                           opt->data_dir);
    return SDLK_OK;
}

sdlk_status bench_io(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err)
{
    const size_t bytes = (size_t)(opt->quick ? 8 : 64) << 20;
    const int tensor_count = opt->quick ? 16 : 64;
    const size_t photo_limit = opt->quick ? 4 : 64;
    io_scratch s;
    memset(&s, 0, sizeof s);
    sdlk_tensor_set_init(&s.weights);
    sdlk_tensor_set_init(&s.layers);
    sdlk_status st = bench_scratch_create(opt->tmp_dir, &s.dir, err);
    if (st == SDLK_OK)
        st = bench_npy(opt, &s, bytes, report, err);
    sdlk_tensor_set_free(&s.weights);
    if (st == SDLK_OK)
        st = bench_safetensors(opt, &s, bytes, tensor_count, report, err);
    if (st == SDLK_OK)
        st = bench_tstream(opt, &s, bytes, report, err);
    sdlk_tensor_set_free(&s.layers);
    if (st == SDLK_OK)
        st = bench_png(opt, &s, photo_limit, report, err);
    io_scratch_free(&s);
    return st;
}
