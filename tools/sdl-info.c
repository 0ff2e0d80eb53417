/* sdl-info -- say what a file holds.
 *
 *   sdl-info [--json] [--stats | --no-stats] [-o FILE] [-q] FILE...
 *
 * For each FILE ("-" = stdin), detected by its first bytes, never by its name: tensor
 * files (.npy, .npz, safetensors) with each tensor's name, dtype, shape, bytes and
 * statistics; tensor streams with their records (tile records with their geometry);
 * images with format, size, channels, depth and pixel statistics; videos with container,
 * codec, size, frame rate, frame count and duration. One bad file is reported and the
 * others are still described; the exit status is then 1. See sdl-info(1).
 *
 * Each file is first described as a JSON object (describe_*), which --json prints as
 * one line and the text output renders (print_*), so both always say the same thing.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/file.h"
#include "core/tensor.h"
#include "core/tensorset.h"
#include "image/image.h"
#include "io/npy.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "io/tensorio.h"
#include "tile/tile.h"
#include "video/video.h"

enum {
    OPT_STATS = CLI_OPT_FIRST_TOOL_OPTION,
    OPT_NO_STATS,
};

/* Without --stats or --no-stats, statistics are computed only for files holding at most
 * this much tensor data (a full pass over a huge file would dominate the run). */
#define AUTO_STATS_LIMIT ((uint64_t)1 << 30)

typedef enum stats_mode { STATS_AUTO, STATS_ALWAYS, STATS_NEVER } stats_mode;

static void usage(FILE *out)
{
    fputs("Usage: sdl-info [OPTION]... FILE...\n"
          "Describe tensor files (.npy, .npz, safetensors), tensor streams, images and\n"
          "videos. The kind of file is detected from its content. FILE '-' is stdin.\n"
          "\n"
          "      --stats       compute min/max/mean of every tensor and image (default: only\n"
          "                    for files with at most 1 GiB of tensor data)\n"
          "      --no-stats    never compute statistics\n"
          "      --json        one JSON object per file (JSON lines)\n"
          "  -o, --output FILE write to FILE instead of stdout\n"
          "  -q, --quiet       accepted for uniformity (sdl-info prints no progress)\n"
          "      --threads N   accepted for uniformity (sdl-info is single-threaded)\n"
          "  -h, --help        show this help and exit\n"
          "  -V, --version     show the version and exit\n"
          "\n"
          "Exit status: 0 every file described, 1 a file could not be read or parsed,\n"
          "2 usage error.\n",
          out);
}

/* ---- small JSON helpers -------------------------------------------------------- */

/* A number, or null where JSON has none (NaN, infinity). */
static json_t *json_number(double v)
{
    json_t *j = isfinite(v) ? json_real(v) : NULL;
    return j ? j : json_null();
}

/* A string that may hold bytes that are not UTF-8 (names from untrusted files). */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy)
        return json_null();
    for (size_t i = 0; i <= n; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

static json_t *json_int_array(const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

/* ---- describing tensors -------------------------------------------------------- */

typedef struct info_options {
    stats_mode stats;
} info_options;

static int want_stats(const info_options *opt, uint64_t tensor_bytes)
{
    return opt->stats == STATS_ALWAYS ||
           (opt->stats == STATS_AUTO && tensor_bytes <= AUTO_STATS_LIMIT);
}

static void add_stats(json_t *o, const sdlk_tensor *t)
{
    sdlk_tensor_stats s;
    sdlk_tensor_stats_compute(t, &s);
    if (s.count == 0) {
        json_object_set_new(o, "min", json_null());
        json_object_set_new(o, "max", json_null());
        json_object_set_new(o, "mean", json_null());
    } else {
        json_object_set_new(o, "min", json_number(s.min));
        json_object_set_new(o, "max", json_number(s.max));
        json_object_set_new(o, "mean", json_number(s.mean));
        json_object_set_new(o, "std", json_number(s.std));
    }
    if (s.nan_count)
        json_object_set_new(o, "nan_count", json_integer((json_int_t)s.nan_count));
}

static json_t *describe_tensor(const char *name, const sdlk_tensor *t, int stats)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_text(name));
    json_object_set_new(o, "dtype", json_string(sdlk_dtype_name(t->dtype)));
    json_object_set_new(o, "shape", json_int_array(t->shape, t->ndim));
    json_object_set_new(o, "bytes", json_integer((json_int_t)sdlk_tensor_nbytes(t)));
    if (stats)
        add_stats(o, t);
    return o;
}

static uint64_t set_bytes(const sdlk_tensor_set *set)
{
    uint64_t total = 0;
    for (size_t i = 0; i < set->count; i++)
        total += sdlk_tensor_nbytes(&set->items[i].tensor);
    return total;
}

static json_t *describe_metadata(const sdlk_tensor_set *set)
{
    json_t *m = json_object();
    for (size_t i = 0; i < set->meta_count; i++) {
        /* keys must be UTF-8 for jansson; a broken key is shown with '?' */
        json_t *key = json_text(set->meta[i].key);
        const char *k = json_is_string(key) ? json_string_value(key) : "?";
        json_object_set_new(m, k, json_text(set->meta[i].value));
        json_decref(key);
    }
    return m;
}

static json_t *describe_tensor_list(const sdlk_tensor_set *set, int stats)
{
    json_t *a = json_array();
    for (size_t i = 0; i < set->count; i++)
        json_array_append_new(a, describe_tensor(set->items[i].name, &set->items[i].tensor,
                                                 stats));
    return a;
}

/* "dir/weights.npy" -> "weights" (the name tensor tools give a lone .npy array). */
static void path_stem(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    snprintf(buf, size, "%.*s", (int)len, base);
}

/* .npy, .npz or a safetensors file of one record, into `o`. */
static sdlk_status describe_tensor_file(json_t *o, sdlk_storage *storage, const char *path,
                                        const char *display, sdlk_tensor_format fmt,
                                        const info_options *opt, sdlk_error *err)
{
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    size_t size = sdlk_storage_size(storage);
    sdlk_status st;
    if (fmt == SDLK_FORMAT_NPY) {
        sdlk_tensor t;
        st = sdlk_npy_parse(storage, 0, size, display, &t, err);
        if (st == SDLK_OK) {
            char stem[256] = "arr_0";
            if (!sdlk_path_is_stdio(path))
                path_stem(path, stem, sizeof stem);
            st = sdlk_tensor_set_add(&set, stem[0] ? stem : "arr_0", &t, err);
            sdlk_tensor_free(&t);
        }
    } else if (fmt == SDLK_FORMAT_NPZ) {
        st = sdlk_npz_parse(storage, display, &set, err);
    } else {
        st = sdlk_safetensors_parse(storage, 0, size, display, &set, err);
    }
    if (st == SDLK_OK) {
        uint64_t bytes = set_bytes(&set);
        int stats = want_stats(opt, bytes);
        json_object_set_new(o, "kind", json_string("tensors"));
        json_object_set_new(o, "format", json_string(sdlk_tensor_format_name(fmt)));
        json_object_set_new(o, "tensor_bytes", json_integer((json_int_t)bytes));
        json_object_set_new(o, "stats", json_boolean(stats));
        json_object_set_new(o, "tensors", describe_tensor_list(&set, stats));
        if (fmt == SDLK_FORMAT_SAFETENSORS)
            json_object_set_new(o, "metadata", describe_metadata(&set));
    }
    sdlk_tensor_set_free(&set);
    return st;
}

static json_t *describe_tile(const sdlk_tile_grid *grid, const sdlk_tile_rect *rect,
                             const sdlk_tile_canvas *canvas)
{
    json_t *t = json_object();
    json_object_set_new(t, "index", json_integer(rect->index));
    json_object_set_new(t, "count", json_integer(sdlk_tile_grid_count(grid)));
    json_object_set_new(t, "mode", json_string(grid->mode == SDLK_TILE_TORUS ? "torus"
                                                                              : "overlap"));
    json_object_set_new(t, "origin", json_int_array(rect->origin, 3));
    json_object_set_new(t, "size", json_int_array(rect->size, 3));
    json_object_set_new(t, "canvas", json_int_array(grid->canvas, 3));
    json_object_set_new(t, "source", json_string(sdlk_tile_source_name(canvas->source)));
    return t;
}

/* Does the record carry tile metadata ("sdl.tile.*")? */
static int is_tile_record(const sdlk_tensor_set *record)
{
    for (size_t i = 0; i < record->meta_count; i++)
        if (strncmp(record->meta[i].key, "sdl.tile.", 9) == 0)
            return 1;
    return 0;
}

/* A safetensors file holding one record or more. One record: a tensor file. More: a
 * tensor stream, described record by record (each record is a view of the mapped
 * bytes and is released before the next). */
static sdlk_status describe_safetensors(json_t *o, sdlk_storage *storage, const char *path,
                                        const char *display, const info_options *opt,
                                        int *record_errors, sdlk_error *err)
{
    size_t size = sdlk_storage_size(storage);
    size_t offset = 0, used = 0;
    sdlk_tensor_set first;
    sdlk_tensor_set_init(&first);
    sdlk_status st = sdlk_safetensors_parse_prefix(storage, 0, size, display, &first, &used, err);
    sdlk_tensor_set_free(&first);
    if (st != SDLK_OK)
        return st;
    if (used == size)
        return describe_tensor_file(o, storage, path, display, SDLK_FORMAT_SAFETENSORS, opt,
                                    err);

    /* Decide on statistics from the whole stream's size. */
    int stats = want_stats(opt, size);
    json_t *records = json_array();
    uint64_t index = 0;
    while (offset < size) {
        sdlk_tensor_set record;
        sdlk_tensor_set_init(&record);
        st = sdlk_safetensors_parse_prefix(storage, offset, size - offset, display, &record,
                                           &used, err);
        if (st != SDLK_OK) {
            /* "<name>: what" -> "<name>: record N (byte B): what" */
            size_t skip = strlen(display);
            const char *what = strncmp(err->msg, display, skip) == 0 && err->msg[skip] == ':'
                                   ? err->msg + skip + 2
                                   : err->msg;
            char msg[SDLK_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s: record %llu (byte %zu): %s", display,
                     (unsigned long long)index, offset, what);
            snprintf(err->msg, sizeof err->msg, "%s", msg);
            sdlk_tensor_set_free(&record);
            break;
        }
        json_t *r = json_object();
        json_object_set_new(r, "index", json_integer((json_int_t)index));
        json_object_set_new(r, "tensors", describe_tensor_list(&record, stats));
        json_object_set_new(r, "metadata", describe_metadata(&record));
        if (is_tile_record(&record)) {
            sdlk_tile_grid grid;
            sdlk_tile_rect rect;
            sdlk_tile_canvas canvas;
            const sdlk_tensor *tile;
            sdlk_error tile_err = {0};
            if (sdlk_tile_record_parse(&record, &grid, &rect, &canvas, &tile, &tile_err) ==
                SDLK_OK) {
                json_object_set_new(r, "tile", describe_tile(&grid, &rect, &canvas));
            } else {
                json_object_set_new(r, "tile_error", json_text(tile_err.msg));
                (*record_errors)++;
            }
        }
        json_array_append_new(records, r);
        sdlk_tensor_set_free(&record);
        offset += used;
        index++;
    }
    json_object_set_new(o, "kind", json_string("tensor stream"));
    json_object_set_new(o, "format", json_string("safetensors records"));
    json_object_set_new(o, "record_count", json_integer((json_int_t)index));
    json_object_set_new(o, "stats", json_boolean(stats));
    json_object_set_new(o, "records", records);
    return st;
}

/* ---- images and videos --------------------------------------------------------- */

static const char *channel_names(int channels)
{
    switch (channels) {
    case 1: return "gray";
    case 2: return "gray+alpha";
    case 3: return "RGB";
    case 4: return "RGBA";
    default: return "?";
    }
}

static sdlk_status describe_image(json_t *o, sdlk_storage *storage, const char *display,
                                  const info_options *opt, sdlk_error *err)
{
    sdlk_tensor img;
    sdlk_image_info info;
    sdlk_status st = sdlk_image_decode(sdlk_storage_data(storage), sdlk_storage_size(storage),
                                       display, &img, &info, err);
    if (st != SDLK_OK)
        return st;
    json_object_set_new(o, "kind", json_string("image"));
    json_object_set_new(o, "format", json_text(info.format));
    json_object_set_new(o, "width", json_integer(info.width));
    json_object_set_new(o, "height", json_integer(info.height));
    json_object_set_new(o, "channels", json_integer(info.channels));
    json_object_set_new(o, "color", json_string(channel_names(info.channels)));
    json_object_set_new(o, "bit_depth", json_integer(info.bit_depth));
    json_object_set_new(o, "dtype", json_string(sdlk_dtype_name(img.dtype)));
    json_object_set_new(o, "palette", json_boolean(info.has_palette));
    if (info.subsampling) {
        char chroma[16];
        snprintf(chroma, sizeof chroma, "%d:%d:%d", info.subsampling / 100,
                 info.subsampling / 10 % 10, info.subsampling % 10);
        json_object_set_new(o, "subsampling", json_string(chroma));
    } else {
        json_object_set_new(o, "subsampling", json_null());
    }
    int stats = want_stats(opt, sdlk_tensor_nbytes(&img));
    json_object_set_new(o, "stats", json_boolean(stats));
    if (stats)
        add_stats(o, &img);
    sdlk_tensor_free(&img);
    return SDLK_OK;
}

/* Copy stdin's bytes into a temporary file FFmpeg can open by name; *tmp_out is the
 * path to unlink afterwards. */
static sdlk_status spool_to_temp(sdlk_storage *storage, char *tmp_out, size_t size,
                                 sdlk_error *err)
{
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_out, size, "%s/sdl-info.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmp_out);
    if (fd < 0)
        return sdlk_error_errno(err, errno, "%s: cannot create a temporary file", tmp_out);
    const uint8_t *p = sdlk_storage_data(storage);
    size_t left = sdlk_storage_size(storage);
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp_out);
            return sdlk_error_errno(err, e, "%s: write failed", tmp_out);
        }
        p += n;
        left -= (size_t)n;
    }
    close(fd);
    return SDLK_OK;
}

static sdlk_status describe_video(json_t *o, sdlk_storage *storage, const char *path,
                                  const char *display, sdlk_error *err)
{
    char tmp[4096] = "";
    const char *open_path = path;
    sdlk_status st = SDLK_OK;
    if (sdlk_path_is_stdio(path)) {
        st = spool_to_temp(storage, tmp, sizeof tmp, err);
        open_path = tmp;
    }
    sdlk_video_reader *reader = NULL;
    sdlk_video_info info;
    if (st == SDLK_OK)
        st = sdlk_video_open(open_path, 3, &reader, &info, err);
    if (st != SDLK_OK) {
        if (tmp[0])
            unlink(tmp);
        /* Whatever FFmpeg said, the user's question was "what is this file?" */
        sdlk_error why = *err;
        sdlk_error_clear(err);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: unknown format: not a tensor file, image or video (%s)",
                              display, why.msg);
    }
    int64_t frames = info.frame_count;
    const char *frames_source = "container";
    if (frames < 0) {
        frames = 0;
        frames_source = "decoded";
        sdlk_tensor frame;
        while ((st = sdlk_video_read_frame(reader, &frame, err)) == SDLK_OK) {
            sdlk_tensor_free(&frame);
            frames++;
        }
        if (st == SDLK_ERR_EOF) {
            sdlk_error_clear(err);
            st = SDLK_OK;
        }
        sdlk_video_get_info(reader, &info);
    }
    sdlk_video_close(reader);
    if (tmp[0])
        unlink(tmp);
    if (st != SDLK_OK)
        return st;
    json_object_set_new(o, "kind", json_string("video"));
    json_object_set_new(o, "container", json_text(info.container));
    json_object_set_new(o, "codec", json_text(info.codec));
    json_object_set_new(o, "pixel_format", json_text(info.pixel_format));
    json_object_set_new(o, "width", json_integer(info.width));
    json_object_set_new(o, "height", json_integer(info.height));
    json_object_set_new(o, "fps", info.fps > 0 ? json_number(info.fps) : json_null());
    json_object_set_new(o, "frames", json_integer(frames));
    json_object_set_new(o, "frames_source", json_string(frames_source));
    json_object_set_new(o, "duration", info.duration > 0 ? json_number(info.duration)
                                                          : json_null());
    if (info.corrupt_packets)
        json_object_set_new(o, "corrupt_packets", json_integer(info.corrupt_packets));
    return SDLK_OK;
}

/* Describe one file into `o` ("file" and "bytes" are set by the caller). Detection is by
 * content: tensor formats, then images, then whatever FFmpeg opens as a video. */
static sdlk_status describe_file(json_t *o, const char *path, const char *display,
                                 const info_options *opt, int *record_errors, sdlk_error *err)
{
    sdlk_storage *storage;
    sdlk_status st = sdlk_file_map(path, &storage, err);
    if (st != SDLK_OK)
        return st;
    const uint8_t *head = sdlk_storage_data(storage);
    size_t size = sdlk_storage_size(storage);
    json_object_set_new(o, "bytes", json_integer((json_int_t)size));
    sdlk_tensor_format fmt = sdlk_tensor_format_sniff(head, size);
    if (size == 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: empty file", display);
    else if (fmt == SDLK_FORMAT_SAFETENSORS)
        st = describe_safetensors(o, storage, path, display, opt, record_errors, err);
    else if (fmt != SDLK_FORMAT_UNKNOWN)
        st = describe_tensor_file(o, storage, path, display, fmt, opt, err);
    else if (sdlk_image_sniff(head, size))
        st = describe_image(o, storage, display, opt, err);
    else
        st = describe_video(o, storage, path, display, err);
    sdlk_storage_release(storage);
    return st;
}

/* ---- text output ----------------------------------------------------------------- */

static void print_value(FILE *out, const json_t *v)
{
    if (json_is_integer(v))
        fprintf(out, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        fprintf(out, "%.6g", json_real_value(v));
    else if (json_is_string(v))
        fputs(json_string_value(v), out);
    else if (json_is_true(v))
        fputs("yes", out);
    else if (json_is_false(v))
        fputs("no", out);
    else if (json_is_null(v))
        fputs("-", out);
    else
        fputs("?", out);
}

/* Render a value into a string (table cells). */
static void value_text(const json_t *v, char *buf, size_t size)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    if (!fp) {
        snprintf(buf, size, "?");
        return;
    }
    if (json_is_array(v)) {
        fputc('[', fp);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                fputs(", ", fp);
            print_value(fp, json_array_get(v, i));
        }
        fputc(']', fp);
    } else {
        print_value(fp, v);
    }
    fclose(fp);
    snprintf(buf, size, "%s", text ? text : "");
    free(text);
}

typedef struct table_column {
    const char *title;
    const char *key; /* in each row object */
    int numeric;     /* right-aligned */
} table_column;

static const table_column tensor_columns[] = {
    {"name", "name", 0}, {"dtype", "dtype", 0}, {"shape", "shape", 0}, {"bytes", "bytes", 1},
    {"min", "min", 1},   {"max", "max", 1},     {"mean", "mean", 1},
};
enum { TENSOR_COLUMNS = 7, TENSOR_COLUMNS_NO_STATS = 4 };

/* A stream is one table: the record, its tile (when it is a tile record), then the
 * tensor columns. */
static const table_column stream_columns[] = {
    {"record", "record", 1}, {"tile", "tile_text", 0}, {"origin (t,h,w)", "origin", 0},
    {"name", "name", 0},     {"dtype", "dtype", 0},    {"shape", "shape", 0},
    {"bytes", "bytes", 1},   {"min", "min", 1},        {"max", "max", 1},
    {"mean", "mean", 1},
};
enum { STREAM_COLUMNS = 10, STREAM_COLUMNS_NO_STATS = 7 };

/* An aligned table: a title row, then one row per object of `rows`. */
static void print_table(FILE *out, const json_t *rows, const table_column *columns, int ncols,
                        const char *indent)
{
    size_t nrows = json_array_size(rows);
    int width[16];
    char cell[256];
    for (int c = 0; c < ncols; c++)
        width[c] = (int)strlen(columns[c].title);
    for (size_t r = 0; r < nrows; r++)
        for (int c = 0; c < ncols; c++) {
            value_text(json_object_get(json_array_get(rows, r), columns[c].key), cell,
                       sizeof cell);
            if ((int)strlen(cell) > width[c])
                width[c] = (int)strlen(cell);
        }
    for (size_t r = 0; r <= nrows; r++) {
        fputs(indent, out);
        for (int c = 0; c < ncols; c++) {
            if (r == 0)
                snprintf(cell, sizeof cell, "%s", columns[c].title);
            else
                value_text(json_object_get(json_array_get(rows, r - 1), columns[c].key), cell,
                           sizeof cell);
            const char *sep = c + 1 < ncols ? "  " : "";
            if (c + 1 == ncols && !columns[c].numeric)
                fprintf(out, "%s", cell);
            else
                fprintf(out, columns[c].numeric ? "%*s%s" : "%-*s%s", width[c], cell, sep);
        }
        fputc('\n', out);
    }
}

/* The rows of a stream's table: one per tensor of each record. */
static json_t *stream_rows(const json_t *records)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < json_array_size(records); i++) {
        const json_t *r = json_array_get(records, i);
        const json_t *tile = json_object_get(r, "tile");
        char tile_text[64] = "-";
        if (tile)
            snprintf(tile_text, sizeof tile_text, "%lld/%lld",
                     (long long)json_integer_value(json_object_get(tile, "index")),
                     (long long)json_integer_value(json_object_get(tile, "count")));
        else if (json_object_get(r, "tile_error"))
            snprintf(tile_text, sizeof tile_text, "bad");
        const json_t *tensors = json_object_get(r, "tensors");
        for (size_t t = 0; t < json_array_size(tensors); t++) {
            json_t *row = json_deep_copy(json_array_get(tensors, t));
            json_object_set(row, "record", json_object_get(r, "index"));
            json_object_set_new(row, "tile_text", json_string(tile_text));
            json_object_set_new(row, "origin", tile ? json_deep_copy(json_object_get(
                                                          tile, "origin"))
                                                    : json_string("-"));
            json_array_append_new(rows, row);
        }
    }
    return rows;
}

static void print_metadata(FILE *out, const json_t *meta, const char *indent)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)meta, key, value)
    {
        fprintf(out, "%smetadata %s = ", indent, key);
        print_value(out, value);
        fputc('\n', out);
    }
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long int_of(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void print_field(FILE *out, const char *label, const json_t *o, const char *key)
{
    fprintf(out, "  %-13s ", label);
    print_value(out, json_object_get(o, key));
    fputc('\n', out);
}

static void print_description(FILE *out, const json_t *o)
{
    const char *kind = str_of(o, "kind");
    const char *file = str_of(o, "file");
    int stats = json_is_true(json_object_get(o, "stats"));
    if (strcmp(kind, "tensors") == 0) {
        size_t n = json_array_size(json_object_get(o, "tensors"));
        fprintf(out, "%s: %s, %zu tensor%s, %lld bytes of tensor data\n", file,
                str_of(o, "format"), n, n == 1 ? "" : "s", int_of(o, "tensor_bytes"));
        print_table(out, json_object_get(o, "tensors"), tensor_columns,
                    stats ? TENSOR_COLUMNS : TENSOR_COLUMNS_NO_STATS, "  ");
        const json_t *meta = json_object_get(o, "metadata");
        if (meta)
            print_metadata(out, meta, "  ");
        if (!stats)
            fputs("  (statistics skipped; use --stats)\n", out);
    } else if (strcmp(kind, "tensor stream") == 0) {
        fprintf(out, "%s: tensor stream (safetensors records), %lld records, %lld bytes\n",
                file, int_of(o, "record_count"), int_of(o, "bytes"));
        const json_t *records = json_object_get(o, "records");
        json_t *rows = stream_rows(records);
        print_table(out, rows, stream_columns, stats ? STREAM_COLUMNS : STREAM_COLUMNS_NO_STATS,
                    "  ");
        json_decref(rows);
        const json_t *first = json_array_get(records, 0);
        const json_t *tile = json_object_get(first, "tile");
        if (tile) {
            char canvas[96], size[96];
            value_text(json_object_get(tile, "canvas"), canvas, sizeof canvas);
            value_text(json_object_get(tile, "size"), size, sizeof size);
            fprintf(out, "  tiles: %s grid, canvas (t,h,w) %s, tile size %s, source %s\n",
                    str_of(tile, "mode"), canvas, size, str_of(tile, "source"));
        }
        for (size_t i = 0; i < json_array_size(records); i++) {
            const json_t *r = json_array_get(records, i);
            if (json_object_get(r, "tile_error"))
                fprintf(out, "  record %lld: bad tile record: %s\n", int_of(r, "index"),
                        str_of(r, "tile_error"));
        }
        if (!stats)
            fputs("  (statistics skipped; use --stats)\n", out);
    } else if (strcmp(kind, "image") == 0) {
        fprintf(out, "%s: %s image\n", file, str_of(o, "format"));
        print_field(out, "width", o, "width");
        print_field(out, "height", o, "height");
        fprintf(out, "  %-13s %lld (%s)\n", "channels", int_of(o, "channels"),
                str_of(o, "color"));
        print_field(out, "bit depth", o, "bit_depth");
        print_field(out, "palette", o, "palette");
        if (!json_is_null(json_object_get(o, "subsampling")))
            print_field(out, "subsampling", o, "subsampling");
        if (stats) {
            fprintf(out, "  %-13s min ", "pixels");
            print_value(out, json_object_get(o, "min"));
            fputs(", max ", out);
            print_value(out, json_object_get(o, "max"));
            fputs(", mean ", out);
            print_value(out, json_object_get(o, "mean"));
            fputc('\n', out);
        }
    } else if (strcmp(kind, "video") == 0) {
        fprintf(out, "%s: video\n", file);
        print_field(out, "container", o, "container");
        print_field(out, "codec", o, "codec");
        print_field(out, "pixel format", o, "pixel_format");
        print_field(out, "width", o, "width");
        print_field(out, "height", o, "height");
        print_field(out, "fps", o, "fps");
        fprintf(out, "  %-13s %lld (%s)\n", "frames", int_of(o, "frames"),
                strcmp(str_of(o, "frames_source"), "decoded") == 0 ? "counted by decoding"
                                                                   : "from the container");
        fprintf(out, "  %-13s ", "duration");
        print_value(out, json_object_get(o, "duration"));
        fputs(json_is_null(json_object_get(o, "duration")) ? "\n" : " s\n", out);
        if (json_object_get(o, "corrupt_packets"))
            print_field(out, "corrupt pkts", o, "corrupt_packets");
    }
}

/* ---- main ------------------------------------------------------------------------ */

/* Describe one file and print it; returns 1 when the file was bad. A file that fails
 * part-way (a stream truncated after some good records) is described as far as it was
 * read, then reported. In JSON, a failed file is {"file", "error"} plus what was read. */
static int info_one(const sdl_cli *cli, FILE *out, const char *path, const info_options *opt)
{
    const char *display = sdlk_path_display(path);
    json_t *o = json_object();
    json_object_set_new(o, "file", json_text(display));
    sdlk_error err = {0};
    int record_errors = 0;
    sdlk_status st = describe_file(o, path, display, opt, &record_errors, &err);
    int described = json_object_get(o, "kind") != NULL;
    if (st != SDLK_OK && !described) {
        json_object_clear(o);
        json_object_set_new(o, "file", json_text(display));
    }
    if (st != SDLK_OK)
        json_object_set_new(o, "error", json_text(err.msg));
    if (cli->json) {
        json_dumpf(o, out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        fputc('\n', out);
    } else if (described) {
        print_description(out, o);
    }
    fflush(out); /* the description comes before the error message on a terminal */
    if (st != SDLK_OK)
        cli_fail(cli, &err);
    else if (record_errors)
        cli_error(cli, "%s: %d bad tile record%s", display, record_errors,
                  record_errors == 1 ? "" : "s");
    json_decref(o);
    return st != SDLK_OK || record_errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    sdl_cli cli;
    cli_init(&cli, "sdl-info");
    static const struct option long_options[] = {
        {"stats", no_argument, NULL, OPT_STATS},
        {"no-stats", no_argument, NULL, OPT_NO_STATS},
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    info_options options = {.stats = STATS_AUTO};
    int opt;
    while ((opt = cli_next_option(&cli, argc, argv, CLI_COMMON_SHORT_OPTIONS,
                                  long_options, usage)) != -1) {
        switch (opt) {
        case OPT_STATS: options.stats = STATS_ALWAYS; break;
        case OPT_NO_STATS: options.stats = STATS_NEVER; break;
        default: return cli_usage_error(&cli, "unexpected option");
        }
    }
    if (cli.exit_now)
        return cli.exit_code;
    if (optind >= argc)
        return cli_usage_error(&cli, "no FILE given");
    int stdin_count = 0;
    for (int i = optind; i < argc; i++)
        stdin_count += sdlk_path_is_stdio(argv[i]);
    if (stdin_count > 1)
        return cli_usage_error(&cli, "'-' (stdin) can be given only once");

    sdlk_error err = {0};
    sdlk_outfile out;
    if (cli_output_open(&out, cli.output ? cli.output : "-", &err) != SDLK_OK)
        return cli_fail(&cli, &err);
    int bad = 0;
    for (int i = optind; i < argc; i++) {
        bad += info_one(&cli, out.fp, argv[i], &options);
    }
    /* a file that cannot be read is reported on its line: the report is still whole */
    sdlk_status st = cli_output_close(&out, SDLK_OK, &err);
    if (st != SDLK_OK)
        return cli_fail(&cli, &err);
    return bad ? SDL_EXIT_FAIL : SDL_EXIT_OK;
}
