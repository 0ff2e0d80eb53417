/* Unit tests of lib/io/npy: exact bytes written, hand-built inputs of every version,
 * byte order and layout, round trips of every dtype and odd shape, bad input. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/npy.h"
#include "io_test_util.h"

/* A .npy image: magic, version, header length (16 or 32 bits), header text as given,
 * then `data`. */
static uint8_t *npy_bytes(int major, const char *header, const void *data, size_t ndata,
                          size_t *len)
{
    size_t hl = strlen(header), prefix = major == 1 ? 10 : 12;
    uint8_t *b = malloc(prefix + hl + ndata + 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    b[8] = (uint8_t)hl;
    b[9] = (uint8_t)(hl >> 8);
    if (major != 1) {
        b[10] = (uint8_t)(hl >> 16);
        b[11] = (uint8_t)(hl >> 24);
    }
    memcpy(b + prefix, header, hl);
    if (ndata)
        memcpy(b + prefix + hl, data, ndata);
    *len = prefix + hl + ndata;
    return b;
}

static sdlk_status parse_bytes(const void *bytes, size_t len, sdlk_tensor *t, sdlk_error *err)
{
    sdlk_storage *s = storage_of(bytes, len);
    sdlk_status st = sdlk_npy_parse(s, 0, len, "bad.npy", t, err);
    sdlk_storage_release(s);
    return st;
}

START_TEST(write_exact_bytes)
{
    /* What np.save(f, np.arange(6, dtype='<i4').reshape(2, 3)) writes (NumPy 1.x),
     * computed by hand: 10-byte preamble + dict + spaces + '\n' = 128 bytes. */
    const char *dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
    uint8_t expect[128 + 24];
    memcpy(expect, "\x93NUMPY\x01\x00\x76\x00", 10);
    size_t dl = strlen(dict);
    memcpy(expect + 10, dict, dl);
    memset(expect + 10 + dl, ' ', 127 - 10 - dl);
    expect[127] = '\n';
    int32_t values[6] = {0, 1, 2, 3, 4, 5};
    memcpy(expect + 128, values, 24); /* little-endian host */

    sdlk_tensor t;
    int64_t shape[2] = {2, 3};
    ck_assert_int_eq(sdlk_tensor_borrow(&t, SDLK_I32, 2, shape, values, NULL), SDLK_OK);
    mem_out m;
    mem_open(&m);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_npy_write(m.fp, &t, "x.npy", &err), SDLK_OK);
    mem_finish(&m);
    ck_assert_uint_eq(m.size, sizeof expect);
    ck_assert_mem_eq(m.data, expect, sizeof expect);
    free(m.data);

    /* 1-d shapes need the trailing comma of a Python 1-tuple; 0-d is "()" */
    int64_t one[1] = {3};
    ck_assert_int_eq(sdlk_tensor_borrow(&t, SDLK_U8, 1, one, values, NULL), SDLK_OK);
    mem_open(&m);
    ck_assert_int_eq(sdlk_npy_write(m.fp, &t, "x.npy", &err), SDLK_OK);
    mem_finish(&m);
    ck_assert_ptr_nonnull(strstr(m.data + 10, "'descr': '|u1', 'fortran_order': False, 'shape': (3,), }"));
    ck_assert_uint_eq(m.size, 128 + 3); /* 10 + 58 + 1 bytes round up to 128 */
    free(m.data);
    ck_assert_int_eq(sdlk_tensor_borrow(&t, SDLK_F64, 0, NULL, values, NULL), SDLK_OK);
    mem_open(&m);
    ck_assert_int_eq(sdlk_npy_write(m.fp, &t, "x.npy", &err), SDLK_OK);
    mem_finish(&m);
    ck_assert_ptr_nonnull(strstr(m.data + 10, "'shape': (), }"));
    ck_assert_uint_eq(m.size, 128 + 8);
    free(m.data);
}
END_TEST

START_TEST(read_versions_orders_layouts)
{
    sdlk_error err = {0};
    sdlk_tensor t;
    size_t len;
    /* big-endian int16 [1, -2] */
    uint8_t be[4] = {0x00, 0x01, 0xff, 0xfe};
    uint8_t *b = npy_bytes(1, "{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }\n", be,
                           4, &len);
    ck_assert_int_eq(parse_bytes(b, len, &t, &err), SDLK_OK);
    ck_assert_int_eq(t.dtype, SDLK_I16);
    int64_t i0[1] = {0}, i1[1] = {1};
    ck_assert_double_eq(sdlk_tensor_get(&t, i0), 1);
    ck_assert_double_eq(sdlk_tensor_get(&t, i1), -2);
    sdlk_tensor_free(&t);
    free(b);

    /* Fortran order 2x3: memory holds columns; (i, j) = 10 i + j */
    int32_t f[6] = {0, 10, 1, 11, 2, 12};
    b = npy_bytes(2, "{\"descr\":\"<i4\",\"fortran_order\":True,\"shape\":(2,3)}   \n", f, 24,
                  &len);
    ck_assert_int_eq(parse_bytes(b, len, &t, &err), SDLK_OK);
    ck_assert_int_eq(t.ndim, 2);
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 3; j++) {
            int64_t idx[2] = {i, j};
            ck_assert_double_eq(sdlk_tensor_get(&t, idx), (double)(10 * i + j));
        }
    ck_assert(!sdlk_tensor_is_contiguous(&t));
    sdlk_tensor_free(&t);
    free(b);

    /* version 3 (utf-8 header), float16, Python 2 long suffix, no trailing space */
    uint16_t h[2] = {0x3c00, 0xc000}; /* 1.0, -2.0 */
    b = npy_bytes(3, "{'descr': '<f2', 'fortran_order': False, 'shape': (1L, 2L)}", h, 4, &len);
    ck_assert_int_eq(parse_bytes(b, len, &t, &err), SDLK_OK);
    int64_t j1[2] = {0, 1};
    ck_assert_double_eq(sdlk_tensor_get(&t, j1), -2.0);
    sdlk_tensor_free(&t);
    free(b);

    /* '=' and '|' mean native order; bool */
    uint8_t bools[3] = {1, 0, 1};
    b = npy_bytes(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }\n", bools, 3,
                  &len);
    ck_assert_int_eq(parse_bytes(b, len, &t, &err), SDLK_OK);
    ck_assert_int_eq(t.dtype, SDLK_BOOL);
    sdlk_tensor_free(&t);
    free(b);

    /* 0-sized dims are legal, even next to a huge one: no data */
    b = npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1000000000000), }\n",
                  NULL, 0, &len);
    ck_assert_int_eq(parse_bytes(b, len, &t, &err), SDLK_OK);
    ck_assert_uint_eq(sdlk_tensor_numel(&t), 0);
    ck_assert_int_eq(t.shape[1], 1000000000000LL);
    sdlk_tensor_free(&t);
    free(b);
    ck_assert_int_eq(err.code, SDLK_OK);
}
END_TEST

START_TEST(views_when_aligned_copies_otherwise)
{
    /* Our writer pads the header to 64 bytes, so the data of a file that starts at an
     * aligned address is viewed in place; big-endian data must be a swapped copy. */
    sdlk_tensor src, t;
    int64_t shape[1] = {5};
    fill_pattern(&src, SDLK_F64, 1, shape);
    mem_out m;
    mem_open(&m);
    ck_assert_int_eq(sdlk_npy_write(m.fp, &src, "v.npy", NULL), SDLK_OK);
    mem_finish(&m);
    sdlk_storage *s = storage_of(m.data, m.size);
    ck_assert_int_eq(sdlk_npy_parse(s, 0, m.size, "v.npy", &t, NULL), SDLK_OK);
    ck_assert_ptr_eq(t.storage, s);
    ck_assert_ptr_eq(t.data, (uint8_t *)sdlk_storage_data(s) + 128);
    assert_same_tensor(&t, &src);
    sdlk_tensor_free(&t);
    sdlk_storage_release(s);
    /* the same bytes at an odd offset: a copy, still equal */
    uint8_t *shifted = malloc(m.size + 1);
    memcpy(shifted + 1, m.data, m.size);
    s = storage_of(shifted, m.size + 1);
    ck_assert_int_eq(sdlk_npy_parse(s, 1, m.size, "v.npy", &t, NULL), SDLK_OK);
    ck_assert_ptr_ne(t.storage, s);
    assert_same_tensor(&t, &src);
    sdlk_tensor_free(&t);
    sdlk_storage_release(s);
    free(shifted);
    free(m.data);
    sdlk_tensor_free(&src);
}
END_TEST

START_TEST(roundtrip_every_dtype_and_shape)
{
    static const int64_t shapes[][4] = {{0}, {0}, {7}, {3, 0, 2}, {2, 3, 4}, {1, 1, 1, 5}};
    static const int ndims[] = {0, 1, 1, 3, 3, 4};
    for (int d = 0; d < SDLK_DTYPE_COUNT; d++) {
        for (size_t k = 0; k < sizeof ndims / sizeof ndims[0]; k++) {
            sdlk_tensor src, back;
            fill_pattern(&src, (sdlk_dtype)d, ndims[k], shapes[k]);
            mem_out m;
            mem_open(&m);
            sdlk_error err = {0};
            sdlk_status st = sdlk_npy_write(m.fp, &src, "rt.npy", &err);
            mem_finish(&m);
            if (d == SDLK_BF16) { /* NumPy has no bfloat16 */
                assert_error(st, err, SDLK_ERR_UNSUPPORTED, "rt.npy");
                ck_assert_uint_eq(m.size, 0);
            } else {
                ck_assert_msg(st == SDLK_OK, "%s", err.msg);
                ck_assert_uint_eq(m.size % 64, sdlk_tensor_nbytes(&src) % 64);
                sdlk_storage *s = storage_of(m.data, m.size);
                ck_assert_int_eq(sdlk_npy_parse(s, 0, m.size, "rt.npy", &back, &err), SDLK_OK);
                assert_same_tensor(&src, &back);
                sdlk_tensor_free(&back);
                sdlk_storage_release(s);
            }
            free(m.data);
            sdlk_tensor_free(&src);
        }
    }
}
END_TEST

START_TEST(strided_tensor_is_written_in_c_order)
{
    sdlk_tensor src, tr, back;
    int64_t shape[2] = {3, 4};
    fill_pattern(&src, SDLK_I16, 2, shape);
    /* the transpose as a view: shape (4, 3), swapped strides */
    tr = src;
    tr.storage = NULL;
    tr.shape[0] = 4;
    tr.shape[1] = 3;
    tr.strides[0] = src.strides[1];
    tr.strides[1] = src.strides[0];
    mem_out m;
    mem_open(&m);
    ck_assert_int_eq(sdlk_npy_write(m.fp, &tr, "t.npy", NULL), SDLK_OK);
    mem_finish(&m);
    sdlk_storage *s = storage_of(m.data, m.size);
    ck_assert_int_eq(sdlk_npy_parse(s, 0, m.size, "t.npy", &back, NULL), SDLK_OK);
    const int16_t *v = (const int16_t *)back.data, *o = (const int16_t *)src.data;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            ck_assert_int_eq(v[i * 3 + j], o[j * 4 + i]);
    sdlk_tensor_free(&back);
    sdlk_storage_release(s);
    free(m.data);
    sdlk_tensor_free(&src);
}
END_TEST

/* One bad header: expected status, and the message must name the file. */
static void expect_bad(int major, const char *header, size_t ndata, sdlk_status code)
{
    static const uint8_t zeros[64];
    size_t len;
    uint8_t *b = npy_bytes(major, header, zeros, ndata, &len);
    sdlk_error err = {0};
    sdlk_tensor t;
    sdlk_status st = parse_bytes(b, len, &t, &err);
    ck_assert_msg(st == code, "header %s: status %s, message: %s", header, sdlk_status_name(st),
                  err.msg);
    ck_assert_msg(strstr(err.msg, "bad.npy"), "message lacks the file: %s", err.msg);
    ck_assert_ptr_null(t.storage);
    free(b);
}

START_TEST(bad_headers)
{
    const sdlk_status F = SDLK_ERR_FORMAT, U = SDLK_ERR_UNSUPPORTED, O = SDLK_ERR_OVERFLOW;
    /* data size must match the header exactly, both ways */
    expect_bad(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }\n", 4, F);
    expect_bad(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }\n", 8, F);
    /* dtypes outside the supported set, by name */
    expect_bad(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", 8, U);
    expect_bad(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n", 8, U);
    expect_bad(1, "{'descr': '<U0', 'fortran_order': False, 'shape': (1,), }\n", 0, U);
    expect_bad(1, "{'descr': '|S', 'fortran_order': False, 'shape': (1,), }\n", 0, U);
    expect_bad(1, "{'descr': '<U3x', 'fortran_order': False, 'shape': (1,), }\n", 12, U);
    expect_bad(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }\n", 8, F);
    expect_bad(1, "{'descr': '|S1', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1), }\n", 1, U);
    expect_bad(1, "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }\n", 4, U);
    expect_bad(1, "{'descr': 'f4', 'fortran_order': False, 'shape': (1,), }\n", 4, F);
    /* shapes whose products overflow, and dims that do not fit 64 bits */
    expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }\n", 0, O);
    expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 0, O);
    expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }\n", 0, F);
    /* 0 elements, but strides that would not fit in 64 bits (found by fuzzing) */
    expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2506847232, 4294967296), }\n", 0, O);
    expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }\n", 4, U);
    /* dict syntax and keys */
    expect_bad(1, "{'descr': '<f4', 'shape': (1,), }\n", 4, F);
    expect_bad(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n", 4, F);
    expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", 4, F);
    expect_bad(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}\n", 4, F);
    expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk\n", 4, F);
    expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,\n", 4, F);
    expect_bad(1, "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,)}\n", 4, F);
    expect_bad(1, "", 0, F);
    expect_bad(4, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", 4, U);
}
END_TEST

/* Fixed-width strings: scipy.sparse.save_npz's 'format' member is np.array('csr'), a
 * '<U3' scalar; '|S<n>' bytes; big-endian UTF-32; Fortran order keeps each string's
 * characters contiguous. */
START_TEST(string_arrays)
{
    sdlk_tensor t;
    sdlk_error err = {0};
    size_t len;
    const uint32_t csr[3] = {'c', 's', 'r'};
    uint8_t *b = npy_bytes(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (), }\n", csr,
                           sizeof csr, &len);
    ck_assert_int_eq(parse_bytes(b, len, &t, &err), SDLK_OK);
    ck_assert_int_eq(t.dtype, SDLK_U32);
    ck_assert_int_eq(t.ndim, 1);
    ck_assert_int_eq(t.shape[0], 3);
    for (int64_t i = 0; i < 3; i++)
        ck_assert_int_eq((int)sdlk_tensor_get(&t, &i), (int)"csr"[i]);
    sdlk_tensor_free(&t);
    free(b);

    const uint8_t be[8] = {0, 0, 0, 'o', 0, 0, 0, 'k'};
    b = npy_bytes(1, "{'descr': '>U2', 'fortran_order': False, 'shape': (1,), }\n", be,
                  sizeof be, &len);
    ck_assert_int_eq(parse_bytes(b, len, &t, &err), SDLK_OK);
    ck_assert_int_eq(t.ndim, 2);
    ck_assert_int_eq(t.shape[1], 2);
    int64_t i01[2] = {0, 1};
    ck_assert_int_eq((int)sdlk_tensor_get(&t, i01), 'k');
    sdlk_tensor_free(&t);
    free(b);

    /* [[b"ab", b"cd"], [b"ef", b"gh"]] stored column-major: ab ef cd gh */
    b = npy_bytes(1, "{'descr': '|S2', 'fortran_order': True, 'shape': (2, 2), }\n",
                  "abefcdgh", 8, &len);
    ck_assert_int_eq(parse_bytes(b, len, &t, &err), SDLK_OK);
    ck_assert_int_eq(t.dtype, SDLK_U8);
    ck_assert_int_eq(t.ndim, 3);
    const char *expect[2][2] = {{"ab", "cd"}, {"ef", "gh"}};
    for (int64_t r = 0; r < 2; r++)
        for (int64_t c = 0; c < 2; c++)
            for (int64_t k = 0; k < 2; k++) {
                int64_t idx[3] = {r, c, k};
                ck_assert_int_eq((int)sdlk_tensor_get(&t, idx), expect[r][c][k]);
            }
    sdlk_tensor_free(&t);
    free(b);
}
END_TEST

START_TEST(bad_preambles)
{
    sdlk_error err = {0};
    sdlk_tensor t;
    /* empty, wrong magic, truncated preamble, header longer than the file */
    ck_assert_int_eq(parse_bytes("", 0, &t, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.npy: not a .npy file"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(parse_bytes("PK\x03\x04xxxxxxxx", 12, &t, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad magic"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(parse_bytes("\x93NUMPY\x01\x00\x10", 9, &t, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.npy: truncated"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(parse_bytes("\x93NUMPY\x02\x00\x10\x00", 10, &t, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.npy: truncated"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(parse_bytes("\x93NUMPY\x01\x00\xff\xff{}", 12, &t, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.npy: header length 65535 exceeds"));
}
END_TEST

START_TEST(write_errors_are_reported)
{
    /* a stream opened read-only cannot be written: an I/O error naming the file */
    FILE *fp = fopen("/dev/null", "rb");
    ck_assert_ptr_nonnull(fp);
    sdlk_tensor t;
    int64_t shape[1] = {4};
    fill_pattern(&t, SDLK_F32, 1, shape);
    sdlk_error err = {0};
    sdlk_status st = sdlk_npy_write(fp, &t, "out.npy", &err);
    assert_error(st, err, SDLK_ERR_IO, "out.npy");
    fclose(fp);
    /* a tensor with elements but no data is a caller error, not a crash */
    sdlk_tensor empty;
    sdlk_tensor_init(&empty);
    mem_out m;
    mem_open(&m);
    sdlk_error_clear(&err);
    st = sdlk_npy_write(m.fp, &empty, "out.npy", &err);
    assert_error(st, err, SDLK_ERR_ARG, "out.npy");
    mem_finish(&m);
    free(m.data);
    sdlk_tensor_free(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, write_exact_bytes);
    tcase_add_test(tc, read_versions_orders_layouts);
    tcase_add_test(tc, views_when_aligned_copies_otherwise);
    tcase_add_test(tc, roundtrip_every_dtype_and_shape);
    tcase_add_test(tc, strided_tensor_is_written_in_c_order);
    tcase_add_test(tc, bad_headers);
    tcase_add_test(tc, string_arrays);
    tcase_add_test(tc, bad_preambles);
    tcase_add_test(tc, write_errors_are_reported);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
