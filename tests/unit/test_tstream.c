/* Unit tests of lib/io/tstream (the tensor stream) and lib/io/tensorio (format by name
 * or magic, atomic saves): records through memory and real pipes, truncation at every
 * byte, lying lengths, a reader that goes away. */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/file.h"
#include "io/tensorio.h"
#include "io/tstream.h"
#include "io_test_util.h"
#include "unit.h"

/* Record i: tensor "x" of shape (i + 1, 2) f32 and metadata sdl.index = i. */
static void make_record(sdlk_tensor_set *set, int i)
{
    sdlk_tensor_set_init(set);
    sdlk_tensor t;
    int64_t shape[2] = {i + 1, 2};
    fill_pattern(&t, SDLK_F32, 2, shape);
    ((float *)t.data)[0] = (float)i;
    ck_assert_int_eq(sdlk_tensor_set_add(set, "x", &t, NULL), SDLK_OK);
    char index[16];
    snprintf(index, sizeof index, "%d", i);
    ck_assert_int_eq(sdlk_tensor_set_meta_set(set, "sdl.index", index, NULL), SDLK_OK);
}

static void write_records(FILE *fp, int count)
{
    for (int i = 0; i < count; i++) {
        sdlk_tensor_set set;
        make_record(&set, i);
        ck_assert_int_eq(sdlk_tstream_write(fp, &set, "out", NULL), SDLK_OK);
        sdlk_tensor_set_free(&set);
    }
}

/* Read every record of fp, checking each; returns how many, *last = final status. */
static int read_records(FILE *fp, const char *name, sdlk_status *last, sdlk_error *err)
{
    sdlk_tstream_reader r;
    sdlk_tstream_reader_init(&r, fp, name);
    int n = 0;
    for (;;) {
        sdlk_tensor_set set;
        sdlk_status st = sdlk_tstream_next(&r, &set, err);
        if (st) {
            *last = st;
            ck_assert_uint_eq(set.count, 0);
            return n;
        }
        const sdlk_tensor *x = sdlk_tensor_set_find(&set, "x");
        ck_assert_ptr_nonnull(x);
        ck_assert_int_eq(x->shape[0], n + 1);
        ck_assert_float_eq(((const float *)x->data)[0], (float)n);
        char index[16];
        snprintf(index, sizeof index, "%d", n);
        ck_assert_str_eq(sdlk_tensor_set_meta_get(&set, "sdl.index"), index);
        sdlk_tensor_set_free(&set);
        n++;
        ck_assert_uint_eq(r.records, (uint64_t)n);
    }
}

START_TEST(records_roundtrip_through_memory)
{
    mem_out m;
    mem_open(&m);
    write_records(m.fp, 3);
    mem_finish(&m);
    FILE *in = fmemopen(m.data, m.size, "rb");
    sdlk_error err = {0};
    sdlk_status last;
    ck_assert_int_eq(read_records(in, "s", &last, &err), 3);
    ck_assert_int_eq(last, SDLK_ERR_EOF);
    ck_assert_int_eq(err.code, SDLK_OK); /* a clean end sets no error */
    fclose(in);
    free(m.data);
}
END_TEST

START_TEST(truncation_at_every_byte)
{
    mem_out m;
    mem_open(&m);
    write_records(m.fp, 2);
    mem_finish(&m);
    size_t first_len = 0; /* where record 2 starts: 8 + header + 8 bytes of data */
    uint64_t hl;
    memcpy(&hl, m.data, 8);
    first_len = 8 + (size_t)hl + 8;
    for (size_t cut = 0; cut <= m.size; cut++) {
        /* fmemopen of 0 bytes is unportable: read from a temporary file instead */
        FILE *in = tmpfile();
        ck_assert_uint_eq(fwrite(m.data, 1, cut, in), cut);
        rewind(in);
        sdlk_error err = {0};
        sdlk_status last;
        int n = read_records(in, "cut.st", &last, &err);
        fclose(in);
        int boundary = cut == 0 || cut == first_len || cut == m.size;
        ck_assert_int_eq(n, cut >= m.size ? 2 : cut >= first_len ? 1 : 0);
        if (boundary) {
            ck_assert_msg(last == SDLK_ERR_EOF, "cut %zu: %s", cut, err.msg);
        } else {
            ck_assert_msg(last == SDLK_ERR_FORMAT, "cut %zu: status %d", cut, (int)last);
            ck_assert_ptr_nonnull(strstr(err.msg, "cut.st: record"));
            ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
        }
    }
    free(m.data);
}
END_TEST

static void expect_stream_error(const void *bytes, size_t size, sdlk_status code,
                                const char *words)
{
    FILE *in = tmpfile();
    ck_assert_uint_eq(fwrite(bytes, 1, size, in), size);
    rewind(in);
    sdlk_error err = {0};
    sdlk_status last;
    ck_assert_int_eq(read_records(in, "lies.st", &last, &err), 0);
    fclose(in);
    ck_assert_msg(last == code, "status %d: %s", (int)last, err.msg);
    ck_assert_ptr_nonnull(strstr(err.msg, "lies.st"));
    ck_assert_msg(strstr(err.msg, words), "message lacks '%s': %s", words, err.msg);
}

START_TEST(lying_records)
{
    /* a header length far beyond the limit (e.g. an .npy piped in by mistake) */
    expect_stream_error("\x93NUMPY\x01\x00v\x00{'descr'", 18, SDLK_ERR_FORMAT, "100 MB");
    /* a small header claiming a terabyte of data: "truncated", without allocating it */
    const char *json = "{\"x\":{\"dtype\":\"U8\",\"shape\":[1099511627776],"
                       "\"data_offsets\":[0,1099511627776]}}";
    uint8_t buf[200];
    uint64_t jl = strlen(json);
    memcpy(buf, &jl, 8);
    memcpy(buf + 8, json, jl);
    expect_stream_error(buf, 8 + jl + 5, SDLK_ERR_FORMAT, "truncated");
    /* a header that is not JSON */
    memcpy(buf + 8, "{nope}", 6);
    jl = 6;
    memcpy(buf, &jl, 8);
    expect_stream_error(buf, 14, SDLK_ERR_FORMAT, "not valid JSON");
    /* 3 bytes: a truncated length */
    expect_stream_error("\x01\x02\x03", 3, SDLK_ERR_FORMAT, "truncated");
}
END_TEST

START_TEST(records_through_a_pipe)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(fds[0]);
        FILE *out = fdopen(fds[1], "wb");
        write_records(out, 4);
        fclose(out);
        _exit(0);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "rb");
    sdlk_error err = {0};
    sdlk_status last;
    ck_assert_int_eq(read_records(in, "pipe", &last, &err), 4);
    ck_assert_int_eq(last, SDLK_ERR_EOF);
    fclose(in);
    int status;
    waitpid(child, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(reader_gone_is_a_write_error)
{
    signal(SIGPIPE, SIG_IGN); /* what every sdl tool does (cli.h) */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    close(fds[0]);
    FILE *out = fdopen(fds[1], "wb");
    sdlk_tensor_set set;
    make_record(&set, 0);
    sdlk_error err = {0};
    sdlk_status st = sdlk_tstream_write(out, &set, "<stdout>", &err);
    assert_error(st, err, SDLK_ERR_IO, "<stdout>");
    ck_assert_ptr_nonnull(strstr(err.msg, "Broken pipe"));
    sdlk_tensor_set_free(&set);
    fclose(out);
}
END_TEST

/* ---- tensorio --------------------------------------------------------------------- */

static char tmpdir[256];

static void setup_dir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sdl_test_tstream_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_dir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

static int count_files(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' || (e->d_name[1] && e->d_name[1] != '.');
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, size, fp), size);
    fclose(fp);
}

START_TEST(formats_by_name_and_magic)
{
    ck_assert_int_eq(sdlk_tensor_format_from_path("a/b.NPY"), SDLK_FORMAT_NPY);
    ck_assert_int_eq(sdlk_tensor_format_from_path("w.npz"), SDLK_FORMAT_NPZ);
    ck_assert_int_eq(sdlk_tensor_format_from_path("m.safetensors"), SDLK_FORMAT_SAFETENSORS);
    ck_assert_int_eq(sdlk_tensor_format_from_path("m.st"), SDLK_FORMAT_SAFETENSORS);
    ck_assert_int_eq(sdlk_tensor_format_from_path("x.bin"), SDLK_FORMAT_UNKNOWN);
    ck_assert_int_eq(sdlk_tensor_format_from_path(".npy"), SDLK_FORMAT_UNKNOWN);
    ck_assert_int_eq(sdlk_tensor_format_sniff((const uint8_t *)"\x93NUMPY\x01", 7),
                     SDLK_FORMAT_NPY);
    ck_assert_int_eq(sdlk_tensor_format_sniff((const uint8_t *)"PK\x03\x04", 4), SDLK_FORMAT_NPZ);
    ck_assert_int_eq(sdlk_tensor_format_sniff((const uint8_t *)"PK\x05\x06", 4), SDLK_FORMAT_NPZ);
    ck_assert_int_eq(sdlk_tensor_format_sniff((const uint8_t *)"\x02\0\0\0\0\0\0\0{}", 10),
                     SDLK_FORMAT_SAFETENSORS);
    ck_assert_int_eq(sdlk_tensor_format_sniff((const uint8_t *)"\x02\0\0\0\0\0\0\x01{}", 10),
                     SDLK_FORMAT_UNKNOWN);
    ck_assert_int_eq(sdlk_tensor_format_sniff((const uint8_t *)"\x93NUM", 4), SDLK_FORMAT_UNKNOWN);
    ck_assert_str_eq(sdlk_tensor_format_name(SDLK_FORMAT_NPZ), "npz");
}
END_TEST

START_TEST(load_save_every_format)
{
    setup_dir();
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    int64_t shape[2] = {3, 4};
    sdlk_tensor t;
    fill_pattern(&t, SDLK_I32, 2, shape);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "weights", &t, NULL), SDLK_OK);
    const char *names[] = {"weights.npy", "a.npz", "a.safetensors", "no_extension"};
    for (int i = 0; i < 4; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        sdlk_error err = {0};
        ck_assert_int_eq(sdlk_tensors_save(path, &set, SDLK_FORMAT_UNKNOWN, i == 1, &err),
                         SDLK_OK);
        sdlk_tensor_set back;
        sdlk_tensor_format fmt;
        ck_assert_msg(sdlk_tensors_load(path, &back, &fmt, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_int_eq(fmt, i == 0 ? SDLK_FORMAT_NPY : i == 1 ? SDLK_FORMAT_NPZ
                                                               : SDLK_FORMAT_SAFETENSORS);
        ck_assert_uint_eq(back.count, 1);
        ck_assert_str_eq(back.items[0].name, "weights"); /* .npy: the file's stem */
        assert_same_tensor(&back.items[0].tensor, &set.items[0].tensor);
        sdlk_tensor_set_free(&back);
    }
    ck_assert_int_eq(count_files(), 4); /* no temporaries left */
    sdlk_tensor_set_free(&set);
    remove_dir();
}
END_TEST

START_TEST(load_and_save_errors)
{
    setup_dir();
    char path[600], stream[600];
    sdlk_error err = {0};
    sdlk_tensor_set set;
    /* empty file, unknown content, content that contradicts the name */
    snprintf(path, sizeof path, "%s/empty.npy", tmpdir);
    write_bytes(path, "", 0);
    assert_error(sdlk_tensors_load(path, &set, NULL, &err), err, SDLK_ERR_FORMAT, path);
    ck_assert_ptr_nonnull(strstr(err.msg, "empty"));
    sdlk_error_clear(&err);
    snprintf(path, sizeof path, "%s/junk", tmpdir);
    write_bytes(path, "hello world", 11);
    assert_error(sdlk_tensors_load(path, &set, NULL, &err), err, SDLK_ERR_FORMAT, path);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a tensor file"));
    sdlk_error_clear(&err);
    snprintf(path, sizeof path, "%s/zip.npy", tmpdir);
    write_bytes(path, "PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22);
    assert_error(sdlk_tensors_load(path, &set, NULL, &err), err, SDLK_ERR_FORMAT, path);
    ck_assert_ptr_nonnull(strstr(err.msg, "content is npz"));
    /* a file of two records is a stream, refused by the whole-file loader */
    sdlk_error_clear(&err);
    snprintf(stream, sizeof stream, "%s/two.safetensors", tmpdir);
    FILE *fp = fopen(stream, "wb");
    write_records(fp, 2);
    fclose(fp);
    assert_error(sdlk_tensors_load(stream, &set, NULL, &err), err, SDLK_ERR_FORMAT, stream);
    ck_assert_ptr_nonnull(strstr(err.msg, "tensor stream"));
    /* npy needs exactly one tensor; a failed save leaves the old file untouched */
    sdlk_error_clear(&err);
    make_record(&set, 0);
    sdlk_tensor extra;
    int64_t one[1] = {1};
    fill_pattern(&extra, SDLK_BF16, 1, one);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "y", &extra, NULL), SDLK_OK);
    snprintf(path, sizeof path, "%s/out.npy", tmpdir);
    write_bytes(path, "old", 3);
    int before = count_files();
    assert_error(sdlk_tensors_save(path, &set, SDLK_FORMAT_UNKNOWN, 0, &err), err, SDLK_ERR_ARG,
                 path);
    sdlk_error_clear(&err);
    snprintf(path, sizeof path, "%s/out.npz", tmpdir);
    write_bytes(path, "old", 3);
    before = count_files();
    /* bf16 cannot go into .npz: the failure happens mid-write, after "x" was written */
    assert_error(sdlk_tensors_save(path, &set, SDLK_FORMAT_UNKNOWN, 0, &err), err,
                 SDLK_ERR_UNSUPPORTED, path);
    ck_assert_int_eq(count_files(), before);
    sdlk_storage *s;
    ck_assert_int_eq(sdlk_file_map(path, &s, NULL), SDLK_OK);
    ck_assert_uint_eq(sdlk_storage_size(s), 3);
    sdlk_storage_release(s);
    /* a directory that does not exist */
    sdlk_error_clear(&err);
    snprintf(path, sizeof path, "%s/missing/out.safetensors", tmpdir);
    assert_error(sdlk_tensors_save(path, &set, SDLK_FORMAT_UNKNOWN, 0, &err), err, SDLK_ERR_IO,
                 path);
    sdlk_tensor_set_free(&set);
    remove_dir();
}
END_TEST

int main(void)
{
    return UNIT_RUN("tstream",
                    records_roundtrip_through_memory,
                    truncation_at_every_byte,
                    lying_records,
                    records_through_a_pipe,
                    reader_gone_is_a_write_error,
                    formats_by_name_and_magic,
                    load_save_every_format,
                    load_and_save_errors);
}
