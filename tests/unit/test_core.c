/* Unit tests of lib/core: errors, tensors, half floats, storage, files, pool. */
#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/convert.h"
#include "core/error.h"
#include "core/file.h"
#include "core/pool.h"
#include "core/tensor.h"
#include "core/tensorset.h"
#include "core/timer.h"
#include "unit.h"

START_TEST(error_first_wins_and_prefix)
{
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_error_set(&err, SDLK_ERR_FORMAT, "bad magic %d", 7), SDLK_ERR_FORMAT);
    sdlk_error_set(&err, SDLK_ERR_IO, "second");
    ck_assert_int_eq(err.code, SDLK_ERR_FORMAT);
    sdlk_error_prefix(&err, "%s", "x.npy");
    ck_assert_str_eq(err.msg, "x.npy: bad magic 7");
    sdlk_error_clear(&err);
    ck_assert_int_eq(err.code, SDLK_OK);
    ck_assert_int_eq(sdlk_error_errno(&err, 2, "f"), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "f: "));
    /* NULL error pointers are allowed everywhere */
    ck_assert_int_eq(sdlk_error_set(NULL, SDLK_ERR_ARG, "x"), SDLK_ERR_ARG);
}
END_TEST

START_TEST(shape_overflow_is_refused)
{
    sdlk_error err = {0};
    uint64_t n;
    int64_t huge[3] = {1 << 20, 1 << 20, 1 << 20};
    ck_assert_int_eq(sdlk_shape_numel(3, huge, SDLK_F32, &n, &err), SDLK_ERR_OVERFLOW);
    sdlk_error_clear(&err);
    int64_t wrap[2] = {INT64_MAX, 2};
    ck_assert_int_eq(sdlk_shape_numel(2, wrap, SDLK_U8, &n, &err), SDLK_ERR_OVERFLOW);
    sdlk_error_clear(&err);
    int64_t neg[1] = {-1};
    ck_assert_int_eq(sdlk_shape_numel(1, neg, SDLK_U8, &n, &err), SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    int64_t zero[3] = {0, 1 << 20, 1 << 10};
    ck_assert_int_eq(sdlk_shape_numel(3, zero, SDLK_F64, &n, &err), SDLK_OK);
    ck_assert_uint_eq(n, 0);
    /* a zero dimension does not excuse the others: strides are computed from them */
    int64_t zero_huge[3] = {0, 1 << 30, 1 << 30};
    ck_assert_int_eq(sdlk_shape_numel(3, zero_huge, SDLK_F64, &n, &err), SDLK_ERR_OVERFLOW);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_shape_numel(0, NULL, SDLK_F64, &n, &err), SDLK_OK);
    ck_assert_uint_eq(n, 1); /* a scalar */
    ck_assert_int_eq(sdlk_shape_numel(9, huge, SDLK_F64, &n, &err), SDLK_ERR_ARG);
}
END_TEST

START_TEST(tensor_alloc_convert_fortran)
{
    sdlk_error err = {0};
    sdlk_tensor c, f, out;
    int64_t shape[2] = {2, 3};
    ck_assert_int_eq(sdlk_tensor_alloc(&c, SDLK_I32, 2, shape, &err), SDLK_OK);
    ck_assert(sdlk_tensor_is_contiguous(&c));
    int32_t *cv = (int32_t *)c.data;
    for (int i = 0; i < 6; i++)
        cv[i] = i * 10 - 20;
    /* the same matrix stored in Fortran order, viewed with Fortran strides */
    int32_t fdata[6];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            fdata[j * 2 + i] = cv[i * 3 + j];
    ck_assert_int_eq(sdlk_tensor_borrow(&f, SDLK_I32, 2, shape, fdata, &err), SDLK_OK);
    sdlk_strides_f(2, shape, 4, f.strides);
    ck_assert(!sdlk_tensor_is_contiguous(&f));
    ck_assert_int_eq(sdlk_tensor_contiguous(&out, &f, &err), SDLK_OK);
    ck_assert_mem_eq(out.data, c.data, 24);
    sdlk_tensor_free(&out);
    /* conversion saturates and rounds */
    ck_assert_int_eq(sdlk_tensor_convert(&out, &c, SDLK_I8, &err), SDLK_OK);
    ck_assert_int_eq(((int8_t *)out.data)[0], -20);
    sdlk_tensor_free(&out);
    cv[5] = 1000;
    ck_assert_int_eq(sdlk_tensor_convert(&out, &c, SDLK_U8, &err), SDLK_OK);
    ck_assert_uint_eq(out.data[0], 0);
    ck_assert_uint_eq(out.data[5], 255);
    sdlk_tensor_free(&out);
    int64_t flat[1] = {6};
    ck_assert_int_eq(sdlk_tensor_reshape(&out, &c, 1, flat, &err), SDLK_OK);
    ck_assert_int_eq(out.shape[0], 6);
    ck_assert_ptr_eq(out.data, c.data); /* shares */
    sdlk_tensor_free(&out);
    int64_t wrong[1] = {7};
    ck_assert_int_eq(sdlk_tensor_reshape(&out, &c, 1, wrong, &err), SDLK_ERR_ARG);
    sdlk_tensor_free(&c);
    sdlk_tensor_free(&f); /* borrowed: must not free fdata */
}
END_TEST

START_TEST(tensor_stats_match_two_pass)
{
    sdlk_error err = {0};
    sdlk_tensor t;
    int64_t shape[1] = {1000};
    ck_assert_int_eq(sdlk_tensor_alloc(&t, SDLK_F64, 1, shape, &err), SDLK_OK);
    double *v = (double *)t.data, sum = 0, sq = 0;
    for (int i = 0; i < 1000; i++) {
        v[i] = sin(i * 0.37) * 5 + 1e6;
        sum += v[i];
    }
    double mean = sum / 1000;
    for (int i = 0; i < 1000; i++)
        sq += (v[i] - mean) * (v[i] - mean);
    v[17] = NAN;
    sdlk_tensor_stats st;
    sdlk_tensor_stats_compute(&t, &st);
    ck_assert_uint_eq(st.count, 999);
    ck_assert_uint_eq(st.nan_count, 1);
    double sum2 = 0;
    for (int i = 0; i < 1000; i++)
        if (i != 17)
            sum2 += v[i];
    ck_assert_double_eq_tol(st.mean, sum2 / 999, 1e-6);
    ck_assert(st.std > 3.0 && st.std < 4.0);
    (void)sq;
    sdlk_tensor_free(&t);
}
END_TEST

START_TEST(f16_roundtrip_exhaustive)
{
    /* Every finite half converts to float and back unchanged. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t x = (uint16_t)h;
        if ((x & 0x7c00) == 0x7c00 && (x & 0x3ff))
            continue; /* NaN payloads may be quietened */
        ck_assert_uint_eq(sdlk_f32_to_f16(sdlk_f16_to_f32(x)), x);
    }
    ck_assert_float_eq(sdlk_f16_to_f32(0x3c00), 1.0f);
    ck_assert_float_eq(sdlk_f16_to_f32(0xc000), -2.0f);
    ck_assert_float_eq(sdlk_f16_to_f32(0x0001), 5.9604644775390625e-8f);
    ck_assert_uint_eq(sdlk_f32_to_f16(65520.0f), 0x7c00);  /* rounds to inf */
    ck_assert_uint_eq(sdlk_f32_to_f16(65519.0f), 0x7bff);  /* max half */
    ck_assert_uint_eq(sdlk_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie to even */
    ck_assert_uint_eq(sdlk_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);
    ck_assert(isnan(sdlk_f16_to_f32(sdlk_f32_to_f16(NAN))));
}
END_TEST

START_TEST(bf16_rounding)
{
    ck_assert_uint_eq(sdlk_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_float_eq(sdlk_bf16_to_f32(0x3f80), 1.0f);
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1.0) */
    ck_assert_uint_eq(sdlk_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
    ck_assert_uint_eq(sdlk_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    ck_assert(isnan(sdlk_bf16_to_f32(sdlk_f32_to_bf16(NAN))));
    for (uint32_t b = 0; b < 0x10000; b++) {
        uint16_t x = (uint16_t)b;
        if ((x & 0x7f80) == 0x7f80 && (x & 0x7f))
            continue;
        ck_assert_uint_eq(sdlk_f32_to_bf16(sdlk_bf16_to_f32(x)), x);
    }
}
END_TEST

START_TEST(byteswap_and_dtype_names)
{
    uint32_t v[2] = {0x01020304u, 0xa0b0c0d0u};
    sdlk_byteswap(v, 2, 4);
    ck_assert_uint_eq(v[0], 0x04030201u);
    ck_assert_uint_eq(v[1], 0xd0c0b0a0u);
    sdlk_dtype d;
    ck_assert_int_eq(sdlk_dtype_parse("float32", &d), SDLK_OK);
    ck_assert_int_eq(d, SDLK_F32);
    ck_assert_int_eq(sdlk_dtype_parse("bf16", &d), SDLK_OK);
    ck_assert_int_eq(d, SDLK_BF16);
    ck_assert_int_eq(sdlk_dtype_parse("complex64", &d), SDLK_ERR_ARG);
    for (int i = 0; i < SDLK_DTYPE_COUNT; i++) {
        ck_assert_int_eq(sdlk_dtype_parse(sdlk_dtype_name((sdlk_dtype)i), &d), SDLK_OK);
        ck_assert_int_eq(d, i);
    }
}
END_TEST

START_TEST(tensor_set_names_and_meta)
{
    sdlk_error err = {0};
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_tensor t;
    int64_t shape[1] = {4};
    ck_assert_int_eq(sdlk_tensor_alloc(&t, SDLK_F32, 1, shape, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "w", &t, &err), SDLK_OK);
    ck_assert_ptr_null(t.storage); /* moved */
    ck_assert_int_eq(sdlk_tensor_alloc(&t, SDLK_F32, 1, shape, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "w", &t, &err), SDLK_ERR_ARG);
    sdlk_tensor_free(&t);
    ck_assert_ptr_nonnull(sdlk_tensor_set_find(&set, "w"));
    ck_assert_ptr_null(sdlk_tensor_set_find(&set, "b"));
    ck_assert_int_eq(sdlk_tensor_set_meta_set(&set, "k", "1", &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_set_meta_set(&set, "k", "2", &err), SDLK_OK);
    ck_assert_str_eq(sdlk_tensor_set_meta_get(&set, "k"), "2");
    ck_assert_uint_eq(set.meta_count, 1);
    /* many names: the index keeps finding each one (and refusing duplicates) as it grows */
    for (int i = 0; i < 5000; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        ck_assert_int_eq(sdlk_tensor_alloc(&t, SDLK_U8, 0, NULL, &err), SDLK_OK);
        ck_assert_int_eq(sdlk_tensor_set_add(&set, name, &t, &err), SDLK_OK);
    }
    for (int i = 0; i < 5000; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        const sdlk_tensor *found = sdlk_tensor_set_find(&set, name);
        ck_assert_ptr_eq(found, &set.items[i + 1].tensor);
    }
    ck_assert_ptr_null(sdlk_tensor_set_find(&set, "t5000"));
    ck_assert_int_eq(sdlk_tensor_alloc(&t, SDLK_U8, 0, NULL, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "t4999", &t, &err), SDLK_ERR_ARG);
    sdlk_tensor_free(&t);
    sdlk_tensor_set_free(&set);
}
END_TEST

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sdlk-core-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

START_TEST(outfile_commit_and_abort)
{
    make_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/out.bin", tmpdir);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_write_file(path, "hello", 5, &err), SDLK_OK);
    sdlk_storage *s;
    ck_assert_int_eq(sdlk_file_map(path, &s, &err), SDLK_OK);
    ck_assert_uint_eq(sdlk_storage_size(s), 5);
    ck_assert_mem_eq(sdlk_storage_data(s), "hello", 5);
    sdlk_storage_release(s);

    /* an aborted write leaves the old content and no temporary behind */
    sdlk_outfile out;
    ck_assert_int_eq(sdlk_outfile_open(&out, path, &err), SDLK_OK);
    fputs("partial", out.fp);
    sdlk_outfile_abort(&out);
    ck_assert_int_eq(sdlk_file_map(path, &s, &err), SDLK_OK);
    ck_assert_mem_eq(sdlk_storage_data(s), "hello", 5);
    sdlk_storage_release(s);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1", tmpdir);
    ck_assert_int_eq(system(cmd), 0);

    /* output files get the usual umask-based mode, not mkstemp's 0600 */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    mode_t mask = umask(022);
    umask(mask);
    ck_assert_uint_eq(st.st_mode & 0777, 0666 & ~mask);

    /* unwritable directory: clear error, nothing created */
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_write_file("/nonexistent-dir/x", "a", 1, &err), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent-dir/x"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(file_map_errors_and_pipes)
{
    sdlk_error err = {0};
    sdlk_storage *s = NULL;
    ck_assert_int_eq(sdlk_file_map("/nonexistent/file.npy", &s, &err), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/file.npy"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_file_map("/tmp", &s, &err), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "directory"));
    /* a stream is read to its end */
    FILE *fp = tmpfile();
    for (int i = 0; i < 100000; i++)
        fputc(i & 0xff, fp);
    rewind(fp);
    ck_assert_int_eq(sdlk_file_slurp(fp, "pipe", &s, NULL), SDLK_OK);
    ck_assert_uint_eq(sdlk_storage_size(s), 100000);
    ck_assert_uint_eq(((uint8_t *)sdlk_storage_data(s))[99999], 99999 & 0xff);
    sdlk_storage_release(s);
    /* read_exact: clean EOF vs truncation */
    rewind(fp);
    uint8_t buf[8];
    fseek(fp, 99996, SEEK_SET);
    ck_assert_int_eq(sdlk_read_exact(fp, buf, 4, "s", NULL), SDLK_OK);
    ck_assert_int_eq(sdlk_read_exact(fp, buf, 4, "s", NULL), SDLK_ERR_EOF);
    fseek(fp, 99998, SEEK_SET);
    ck_assert_int_eq(sdlk_read_exact(fp, buf, 4, "s", &err), SDLK_ERR_FORMAT);
    fclose(fp);
}
END_TEST

struct sum_ctx {
    const int64_t *values;
    atomic_int_fast64_t total;
    atomic_int calls_by_worker[64];
};

static void sum_range(void *vctx, int64_t begin, int64_t end, int worker)
{
    struct sum_ctx *c = vctx;
    int64_t s = 0;
    for (int64_t i = begin; i < end; i++)
        s += c->values[i];
    atomic_fetch_add(&c->total, s);
    atomic_fetch_add(&c->calls_by_worker[worker], 1);
}

START_TEST(pool_parallel_for_sums)
{
    enum { n = 1000003 };
    int64_t *values = malloc(n * sizeof *values);
    int64_t expect = 0;
    for (int64_t i = 0; i < n; i++) {
        values[i] = (i * 7919) % 1000;
        expect += values[i];
    }
    for (int threads = 1; threads <= 4; threads++) {
        sdlk_pool *pool = sdlk_pool_create(threads, NULL);
        ck_assert_ptr_nonnull(pool);
        ck_assert_int_eq(sdlk_pool_size(pool), threads);
        for (int rep = 0; rep < 20; rep++) {
            struct sum_ctx c = {.values = values};
            sdlk_pool_for(pool, n, 1000, sum_range, &c);
            ck_assert_int_eq(atomic_load(&c.total), expect);
        }
        sdlk_pool_destroy(pool);
    }
    struct sum_ctx c = {.values = values};
    sdlk_pool_for(NULL, n, 0, sum_range, &c); /* no pool: inline */
    ck_assert_int_eq(atomic_load(&c.total), expect);
    free(values);
}
END_TEST

START_TEST(threads_resolve_rule)
{
    int n = 0;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_threads_resolve(3, &n, &err), SDLK_OK);
    ck_assert_int_eq(n, 3);
    setenv("SDL_THREADS", "5", 1);
    ck_assert_int_eq(sdlk_threads_resolve(0, &n, &err), SDLK_OK);
    ck_assert_int_eq(n, 5);
    setenv("SDL_THREADS", "lots", 1);
    ck_assert_int_eq(sdlk_threads_resolve(0, &n, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "SDL_THREADS"));
    unsetenv("SDL_THREADS");
    ck_assert_int_eq(sdlk_threads_resolve(0, &n, NULL), SDLK_OK);
    ck_assert_int_ge(n, 1);
}
END_TEST

START_TEST(convert_cpu_and_device_rules)
{
    uint8_t src[256];
    float dst[256];
    for (int i = 0; i < 256; i++)
        src[i] = (uint8_t)i;
    ck_assert_int_eq(sdlk_scale_u8_to_f32(dst, src, 256, 1.0f / 255, SDLK_DEVICE_CPU, NULL),
                     SDLK_OK);
    for (int i = 0; i < 256; i++)
        ck_assert_float_eq(dst[i], (float)i * (1.0f / 255));
    sdlk_device d;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_device_parse("tpu", &d, &err), SDLK_ERR_ARG);
    if (sdlk_gpu_count() == 0) {
        sdlk_error_clear(&err);
        ck_assert_int_eq(sdlk_device_resolve(SDLK_DEVICE_GPU, &d, &err), SDLK_ERR_DEVICE);
        ck_assert_int_eq(sdlk_device_resolve(SDLK_DEVICE_AUTO, &d, NULL), SDLK_OK);
        ck_assert_int_eq(d, SDLK_DEVICE_CPU);
    }
    uint64_t t0 = sdlk_now_ns();
    ck_assert(sdlk_now_ns() >= t0);
}
END_TEST

int main(void)
{
    return UNIT_RUN("core",
                    error_first_wins_and_prefix,
                    shape_overflow_is_refused,
                    tensor_alloc_convert_fortran,
                    tensor_stats_match_two_pass,
                    f16_roundtrip_exhaustive,
                    bf16_rounding,
                    byteswap_and_dtype_names,
                    tensor_set_names_and_meta,
                    outfile_commit_and_abort,
                    file_map_errors_and_pipes,
                    pool_parallel_for_sums,
                    threads_resolve_rule,
                    convert_cpu_and_device_rules);
}
