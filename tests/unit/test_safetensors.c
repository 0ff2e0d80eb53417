/* Unit tests of lib/io/safetensors: exact bytes written, round trips of every dtype with
 * metadata, and every validation rule against hand-built headers. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "io_test_util.h"
#include "unit.h"

/* u64 little-endian length + json + data. */
static uint8_t *st_bytes(const char *json, const void *data, size_t ndata, size_t *len)
{
    size_t jl = strlen(json);
    uint8_t *b = malloc(8 + jl + ndata + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    memcpy(b + 8, json, jl);
    if (ndata)
        memcpy(b + 8 + jl, data, ndata);
    *len = 8 + jl + ndata;
    return b;
}

static sdlk_status parse_json(const char *json, size_t ndata, sdlk_tensor_set *set,
                              sdlk_error *err)
{
    static const uint8_t zeros[256];
    size_t len;
    uint8_t *b = st_bytes(json, zeros, ndata, &len);
    sdlk_storage *s = storage_of(b, len);
    sdlk_status st = sdlk_safetensors_parse(s, 0, len, "bad.safetensors", set, err);
    sdlk_storage_release(s);
    free(b);
    return st;
}

START_TEST(write_exact_bytes)
{
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    ck_assert_int_eq(sdlk_tensor_set_meta_set(&set, "format", "pt", NULL), SDLK_OK);
    sdlk_tensor a, e;
    int64_t two[1] = {2}, empty[2] = {0, 3};
    fill_pattern(&a, SDLK_U16, 1, two); /* values 0, 37 */
    fill_pattern(&e, SDLK_F32, 2, empty);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "a", &a, NULL), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "e", &e, NULL), SDLK_OK);
    mem_out m;
    mem_open(&m);
    ck_assert_int_eq(sdlk_safetensors_write(m.fp, &set, "x.safetensors", NULL), SDLK_OK);
    mem_finish(&m);
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"a\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                       "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]}}";
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    ck_assert_uint_eq(m.size, 8 + padded + 4);
    uint8_t len_le[8] = {(uint8_t)padded, (uint8_t)(padded >> 8), 0, 0, 0, 0, 0, 0};
    ck_assert_mem_eq(m.data, len_le, 8);
    ck_assert_mem_eq(m.data + 8, json, jl);
    for (size_t i = jl; i < padded; i++)
        ck_assert_int_eq(m.data[8 + i], ' ');
    ck_assert_mem_eq(m.data + 8 + padded, "\x00\x00\x25\x00", 4);
    free(m.data);
    sdlk_tensor_set_free(&set);
}
END_TEST

START_TEST(roundtrip_every_dtype_with_metadata)
{
    static const int64_t shapes[][3] = {{0}, {5}, {0, 4}, {2, 3, 4}};
    static const int ndims[] = {0, 1, 2, 3};
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    ck_assert_int_eq(sdlk_tensor_set_meta_set(&set, "sdl.kind", "test", NULL), SDLK_OK);
    ck_assert_int_eq(sdlk_tensor_set_meta_set(&set, "note", "caf\xc3\xa9 \"quoted\"\n", NULL),
                     SDLK_OK);
    for (int d = 0; d < SDLK_DTYPE_COUNT; d++)
        for (int k = 0; k < 4; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s/shape%d", sdlk_dtype_name((sdlk_dtype)d), k);
            sdlk_tensor t;
            fill_pattern(&t, (sdlk_dtype)d, ndims[k], shapes[k]);
            ck_assert_int_eq(sdlk_tensor_set_add(&set, name, &t, NULL), SDLK_OK);
        }
    mem_out m;
    mem_open(&m);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_safetensors_write(m.fp, &set, "rt.safetensors", &err), SDLK_OK);
    mem_finish(&m);
    sdlk_storage *s = storage_of(m.data, m.size);
    sdlk_tensor_set back;
    ck_assert_int_eq(sdlk_safetensors_parse(s, 0, m.size, "rt.safetensors", &back, &err),
                     SDLK_OK);
    ck_assert_uint_eq(back.count, set.count);
    for (size_t i = 0; i < set.count; i++) {
        ck_assert_str_eq(back.items[i].name, set.items[i].name); /* file order kept */
        assert_same_tensor(&back.items[i].tensor, &set.items[i].tensor);
        /* Tensors keep the set's order, so data is packed without regard to alignment;
         * those whose bytes happen to be aligned are views, the others aligned copies. */
        const sdlk_tensor *t = &back.items[i].tensor;
        ck_assert_uint_eq((uintptr_t)t->data % sdlk_dtype_size(t->dtype), 0);
        if (sdlk_tensor_numel(t) && sdlk_dtype_size(t->dtype) == 1)
            ck_assert_ptr_eq(t->storage, s);
    }
    ck_assert_uint_eq(back.meta_count, 2);
    ck_assert_str_eq(sdlk_tensor_set_meta_get(&back, "note"), "caf\xc3\xa9 \"quoted\"\n");
    ck_assert_str_eq(sdlk_tensor_set_meta_get(&back, "sdl.kind"), "test");
    /* the data size the header alone describes */
    uint64_t header_len = 0, data_size = 0;
    memcpy(&header_len, m.data, 8);
    ck_assert_int_eq(sdlk_safetensors_header_data_size(m.data + 8, (size_t)header_len, "h",
                                                       &data_size, &err),
                     SDLK_OK);
    ck_assert_uint_eq(8 + header_len + data_size, m.size);
    sdlk_tensor_set_free(&back);
    sdlk_storage_release(s);
    free(m.data);
    sdlk_tensor_set_free(&set);
}
END_TEST

START_TEST(prefix_reports_length_and_order_follows_offsets)
{
    /* Tensors listed out of offset order come back in file (offset) order; a second
     * record after the first is left alone by parse_prefix. */
    const char *json = "{\"b\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[1,3]},"
                       "\"a\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[0,1]}}";
    size_t len;
    uint8_t *one = st_bytes(json, "\x05\x06\x07", 3, &len);
    uint8_t *two = malloc(2 * len);
    memcpy(two, one, len);
    memcpy(two + len, one, len);
    sdlk_storage *s = storage_of(two, 2 * len);
    sdlk_tensor_set set;
    size_t used = 0;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_safetensors_parse_prefix(s, 0, 2 * len, "p", &set, &used, &err),
                     SDLK_OK);
    ck_assert_uint_eq(used, len);
    ck_assert_str_eq(set.items[0].name, "a");
    ck_assert_int_eq(set.items[0].tensor.data[0], 5);
    ck_assert_int_eq(set.items[0].tensor.ndim, 0);
    ck_assert_str_eq(set.items[1].name, "b");
    ck_assert_int_eq(set.items[1].tensor.data[1], 7);
    sdlk_tensor_set_free(&set);
    /* the exact parser refuses the same bytes: data after the buffer */
    ck_assert_int_eq(sdlk_safetensors_parse(s, 0, 2 * len, "two.safetensors", &set, &err),
                     SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "two.safetensors"));
    sdlk_storage_release(s);
    free(one);
    free(two);
    /* an empty header with no data is a valid, empty file */
    sdlk_error_clear(&err);
    ck_assert_int_eq(parse_json("{}", 0, &set, &err), SDLK_OK);
    ck_assert_uint_eq(set.count, 0);
    sdlk_tensor_set_free(&set);
    ck_assert_int_eq(parse_json("{\"__metadata__\":null}  ", 0, &set, &err), SDLK_OK);
    sdlk_tensor_set_free(&set);
}
END_TEST

static void expect_bad(const char *json, size_t ndata, sdlk_status code, const char *words)
{
    sdlk_tensor_set set;
    sdlk_error err = {0};
    sdlk_status st = parse_json(json, ndata, &set, &err);
    ck_assert_msg(st == code, "%s: status %s, message: %s", json, sdlk_status_name(st), err.msg);
    ck_assert_msg(strstr(err.msg, "bad.safetensors"), "message lacks the file: %s", err.msg);
    ck_assert_msg(strstr(err.msg, words), "message lacks '%s': %s", words, err.msg);
    ck_assert_uint_eq(set.count, 0);
}

START_TEST(every_rule_is_checked)
{
    const sdlk_status F = SDLK_ERR_FORMAT, U = SDLK_ERR_UNSUPPORTED, O = SDLK_ERR_OVERFLOW;
#define T(dtype, shape, b, e) "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"
    expect_bad("not json", 0, F, "not valid JSON");
    expect_bad("[1, 2]", 0, F, "not a JSON object");
    expect_bad("{\"a\":" T("U8", "[1]", 0, 1) ",\"a\":" T("U8", "[1]", 1, 2) "}", 2, F, "duplicate");
    expect_bad("{\"a\":" T("F8_E4M3", "[1]", 0, 1) "}", 1, U, "F8_E4M3");
    expect_bad("{\"a\":" T("float32", "[1]", 0, 4) "}", 4, U, "float32");
    expect_bad("{\"a\":" T("F32", "[2]", 0, 4) "}", 4, F, "needs 8 bytes");
    expect_bad("{\"a\":" T("F32", "[1]", 0, 4) ",\"b\":" T("F32", "[1]", 8, 12) "}", 12, F, "gap");
    expect_bad("{\"a\":" T("F32", "[1]", 0, 4) ",\"b\":" T("F32", "[1]", 2, 6) "}", 6, F, "overlap");
    expect_bad("{\"a\":" T("F32", "[1]", 4, 8) "}", 8, F, "gap");
    expect_bad("{\"a\":" T("F32", "[1]", 0, 4) "}", 5, F, "file has 5");
    expect_bad("{\"a\":" T("F32", "[1]", 0, 4) "}", 3, F, "truncated");
    expect_bad("{\"a\":" T("F32", "[4294967296,4294967296,4294967296]", 0, 4) "}", 4, O, "'a'");
    expect_bad("{\"a\":" T("F32", "[0,4294967296,4294967296]", 0, 0) "}", 0, O, "overflows");
    expect_bad("{\"a\":" T("F32", "[-1]", 0, 4) "}", 4, F, "non-negative");
    expect_bad("{\"a\":" T("F32", "[1.0]", 0, 4) "}", 4, F, "non-negative");
    expect_bad("{\"a\":" T("U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, U, "dimensions");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, F, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,0]}}", 1, F, "data_offsets");
    expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, F, "dtype");
    expect_bad("{\"a\":[]}", 0, F, "not an object");
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, F, "not a string");
    expect_bad("{\"__metadata__\":[]}", 0, F, "not an object");
    expect_bad("{\"a\":" T("U8", "[1]", 0, 1) "} x", 1, F, "not valid JSON");
    expect_bad("{\"a\\u0000b\":" T("U8", "[1]", 0, 1) "}", 1, F, "not valid JSON");
#undef T
}
END_TEST

START_TEST(bad_lengths)
{
    sdlk_error err = {0};
    sdlk_tensor_set set;
    sdlk_storage *s = storage_of("\x10\x00\x00", 3);
    ck_assert_int_eq(sdlk_safetensors_parse(s, 0, 3, "bad.safetensors", &set, &err),
                     SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.safetensors: truncated"));
    sdlk_storage_release(s);
    /* a length beyond 100 MB, and one beyond the file */
    sdlk_error_clear(&err);
    s = storage_of("\x00\x00\x00\x10\x00\x00\x00\x00{}", 10);
    ck_assert_int_eq(sdlk_safetensors_parse(s, 0, 10, "bad.safetensors", &set, &err),
                     SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "100 MB"));
    sdlk_storage_release(s);
    sdlk_error_clear(&err);
    s = storage_of("\x20\x00\x00\x00\x00\x00\x00\x00{}", 10);
    ck_assert_int_eq(sdlk_safetensors_parse(s, 0, 10, "bad.safetensors", &set, &err),
                     SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.safetensors: truncated: header length 32"));
    sdlk_storage_release(s);
    /* header_data_size on garbage */
    sdlk_error_clear(&err);
    uint64_t size;
    ck_assert_int_eq(sdlk_safetensors_header_data_size("{", 1, "hdr", &size, &err),
                     SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "hdr"));
}
END_TEST

START_TEST(unaligned_data_is_copied)
{
    /* A header whose length is not a multiple of 8 puts F64 data off alignment: the
     * reader copies it instead of handing out a misaligned pointer. */
    double v = 2.5;
    size_t len;
    uint8_t *b = st_bytes("{\"x\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", &v,
                          8, &len);
    ck_assert_uint_ne((len - 8) % 8, 0);
    sdlk_storage *s = storage_of(b, len);
    sdlk_tensor_set set;
    ck_assert_int_eq(sdlk_safetensors_parse(s, 0, len, "u", &set, NULL), SDLK_OK);
    ck_assert_uint_eq((uintptr_t)set.items[0].tensor.data % 8, 0);
    ck_assert_double_eq(*(double *)set.items[0].tensor.data, 2.5);
    sdlk_tensor_set_free(&set);
    sdlk_storage_release(s);
    free(b);
}
END_TEST

START_TEST(writer_refuses_what_it_cannot_represent)
{
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_tensor t;
    int64_t one[1] = {1};
    fill_pattern(&t, SDLK_U8, 1, one);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "__metadata__", &t, NULL), SDLK_OK);
    mem_out m;
    mem_open(&m);
    sdlk_error err = {0};
    sdlk_status st = sdlk_safetensors_write(m.fp, &set, "w.safetensors", &err);
    assert_error(st, err, SDLK_ERR_ARG, "w.safetensors");
    sdlk_tensor_set_free(&set);
    fill_pattern(&t, SDLK_U8, 1, one);
    ck_assert_int_eq(sdlk_tensor_set_add(&set, "bad\xff", &t, NULL), SDLK_OK);
    sdlk_error_clear(&err);
    st = sdlk_safetensors_write(m.fp, &set, "w.safetensors", &err);
    assert_error(st, err, SDLK_ERR_ARG, "w.safetensors");
    mem_finish(&m);
    ck_assert_uint_eq(m.size, 0); /* nothing written before the header was complete */
    free(m.data);
    sdlk_tensor_set_free(&set);
}
END_TEST

int main(void)
{
    return UNIT_RUN("safetensors",
                    write_exact_bytes,
                    roundtrip_every_dtype_with_metadata,
                    prefix_reports_length_and_order_follows_offsets,
                    every_rule_is_checked,
                    bad_lengths,
                    unaligned_data_is_copied,
                    writer_refuses_what_it_cannot_represent);
}
