/* Unit tests of lib/io/npz: round trips stored and deflated, the writer's zip structure
 * checked byte by byte, streaming to a pipe, zip64 records read and written, and every
 * kind of damaged archive. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "core/file.h"
#include "io/npy.h"
#include "io/npz.h"
#include "io_test_util.h"
#include "unit.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A set of two small tensors, "a" (i16 2x3) and "b" (f64 scalar). */
static void small_set(sdlk_tensor_set *set)
{
    sdlk_tensor_set_init(set);
    sdlk_tensor t;
    int64_t shape[2] = {2, 3};
    fill_pattern(&t, SDLK_I16, 2, shape);
    ck_assert_int_eq(sdlk_tensor_set_add(set, "a", &t, NULL), SDLK_OK);
    fill_pattern(&t, SDLK_F64, 0, NULL);
    ck_assert_int_eq(sdlk_tensor_set_add(set, "b", &t, NULL), SDLK_OK);
}

static void write_npz(const sdlk_tensor_set *set, int compress, mem_out *m)
{
    mem_open(m);
    sdlk_error err = {0};
    ck_assert_msg(sdlk_npz_write(m->fp, set, compress, "w.npz", &err) == SDLK_OK, "%s", err.msg);
    mem_finish(m);
}

static sdlk_status parse_bytes(const void *bytes, size_t size, sdlk_tensor_set *set,
                               sdlk_error *err)
{
    sdlk_storage *s = storage_of(bytes, size);
    sdlk_status st = sdlk_npz_parse(s, "bad.npz", set, err);
    sdlk_storage_release(s);
    return st;
}

START_TEST(roundtrip_stored_and_deflated)
{
    static const int64_t shapes[][3] = {{0}, {0}, {9}, {4, 0, 2}, {3, 4, 5}};
    static const int ndims[] = {0, 1, 1, 3, 3};
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    for (int d = 0; d < SDLK_DTYPE_COUNT; d++) {
        if (d == SDLK_BF16)
            continue; /* no NumPy dtype */
        for (int k = 0; k < 5; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%d", sdlk_dtype_name((sdlk_dtype)d), k);
            sdlk_tensor t;
            fill_pattern(&t, (sdlk_dtype)d, ndims[k], shapes[k]);
            ck_assert_int_eq(sdlk_tensor_set_add(&set, name, &t, NULL), SDLK_OK);
        }
    }
    for (int compress = 0; compress <= 1; compress++) {
        mem_out m;
        write_npz(&set, compress, &m);
        sdlk_tensor_set back;
        sdlk_error err = {0};
        ck_assert_msg(parse_bytes(m.data, m.size, &back, &err) == SDLK_OK, "%s", err.msg);
        ck_assert_uint_eq(back.count, set.count);
        for (size_t i = 0; i < set.count; i++) {
            ck_assert_str_eq(back.items[i].name, set.items[i].name);
            assert_same_tensor(&back.items[i].tensor, &set.items[i].tensor);
        }
        sdlk_tensor_set_free(&back);
        free(m.data);
    }
    sdlk_tensor_set_free(&set);
}
END_TEST

START_TEST(writer_zip_structure)
{
    sdlk_tensor_set set;
    small_set(&set);
    /* the .npy bytes of member "a", to check CRC and sizes against */
    mem_out npy;
    mem_open(&npy);
    ck_assert_int_eq(sdlk_npy_write(npy.fp, &set.items[0].tensor, "a", NULL), SDLK_OK);
    mem_finish(&npy);
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)npy.data, (uInt)npy.size);

    mem_out m;
    write_npz(&set, 0, &m);
    const uint8_t *z = (const uint8_t *)m.data;
    ck_assert_uint_eq(le32(z), 0x04034b50);
    ck_assert_uint_eq(le16(z + 6), 0);      /* no data descriptor when stored */
    ck_assert_uint_eq(le16(z + 8), 0);      /* stored */
    ck_assert_uint_eq(le32(z + 14), crc);
    ck_assert_uint_eq(le32(z + 18), npy.size);
    ck_assert_uint_eq(le32(z + 22), npy.size);
    ck_assert_uint_eq(le16(z + 26), 5);
    ck_assert_mem_eq(z + 30, "a.npy", 5);
    ck_assert_mem_eq(z + 35, npy.data, npy.size);
    const uint8_t *eocd = z + m.size - 22;
    ck_assert_uint_eq(le32(eocd), 0x06054b50);
    ck_assert_uint_eq(le16(eocd + 10), 2);
    ck_assert_uint_eq(le32(eocd + 16) + le32(eocd + 12), m.size - 22);
    free(m.data);

    /* deflated: flag bit 3, then a data descriptor with CRC and both sizes */
    write_npz(&set, 1, &m);
    z = (const uint8_t *)m.data;
    ck_assert_uint_eq(le16(z + 6), 0x08);
    ck_assert_uint_eq(le16(z + 8), 8);
    const uint8_t *cd = z + le32(z + m.size - 22 + 16);
    ck_assert_uint_eq(le32(cd), 0x02014b50);
    uint32_t csize = le32(cd + 20);
    ck_assert_uint_eq(le32(cd + 16), crc);
    ck_assert_uint_eq(le32(cd + 24), npy.size);
    const uint8_t *desc = z + 30 + 5 + csize;
    ck_assert_uint_eq(le32(desc), 0x08074b50);
    ck_assert_uint_eq(le32(desc + 4), crc);
    ck_assert_uint_eq(le32(desc + 8), csize);
    ck_assert_uint_eq(le32(desc + 12), npy.size);
    /* and zlib itself inflates the member to the .npy bytes */
    uint8_t *out = malloc(npy.size);
    z_stream zs = {0};
    ck_assert_int_eq(inflateInit2(&zs, -MAX_WBITS), Z_OK);
    zs.next_in = (Bytef *)(z + 35);
    zs.avail_in = csize;
    zs.next_out = out;
    zs.avail_out = (uInt)npy.size;
    ck_assert_int_eq(inflate(&zs, Z_FINISH), Z_STREAM_END);
    inflateEnd(&zs);
    ck_assert_mem_eq(out, npy.data, npy.size);
    free(out);
    free(m.data);
    free(npy.data);
    sdlk_tensor_set_free(&set);
}
END_TEST

START_TEST(written_to_a_pipe)
{
    /* the writer never seeks: a deflated archive streamed through a pipe reads back */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(fds[0]);
        FILE *out = fdopen(fds[1], "wb");
        sdlk_tensor_set set;
        small_set(&set);
        int rc = sdlk_npz_write(out, &set, 1, "<stdout>", NULL) != SDLK_OK;
        rc |= fclose(out) != 0;
        _exit(rc);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "rb");
    sdlk_storage *s;
    ck_assert_int_eq(sdlk_file_slurp(in, "pipe", &s, NULL), SDLK_OK);
    fclose(in);
    int status;
    waitpid(child, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sdlk_tensor_set back, set;
    sdlk_error err = {0};
    ck_assert_msg(sdlk_npz_parse(s, "pipe", &back, &err) == SDLK_OK, "%s", err.msg);
    small_set(&set);
    ck_assert_uint_eq(back.count, 2);
    assert_same_tensor(&back.items[0].tensor, &set.items[0].tensor);
    assert_same_tensor(&back.items[1].tensor, &set.items[1].tensor);
    sdlk_tensor_set_free(&set);
    sdlk_tensor_set_free(&back);
    sdlk_storage_release(s);
}
END_TEST

/* One stored member in an archive with zip64 fields the way NumPy (force_zip64) and
 * big archives write them: local header sizes 0xffffffff + zip64 extra; central sizes
 * and offset 0xffffffff + zip64 extra; zip64 end record and locator. */
static uint8_t *zip64_archive(const uint8_t *npy, size_t npy_len, size_t *len)
{
    uint8_t *z = calloc(1, 30 + 5 + 20 + npy_len + 46 + 5 + 28 + 56 + 20 + 22);
    uint32_t crc = (uint32_t)crc32(0, npy, (uInt)npy_len);
    uint8_t *p = z;
    put32(p, 0x04034b50);
    put16(p + 4, 45);
    put32(p + 14, crc);
    put32(p + 18, 0xffffffff);
    put32(p + 22, 0xffffffff);
    put16(p + 26, 5);
    put16(p + 28, 20);
    memcpy(p + 30, "m.npy", 5);
    put16(p + 35, 1);
    put16(p + 37, 16);
    put64(p + 39, npy_len);
    put64(p + 47, npy_len);
    memcpy(p + 55, npy, npy_len);
    p += 55 + npy_len;
    uint64_t cd_offset = (uint64_t)(p - z);
    put32(p, 0x02014b50);
    put16(p + 4, 45);
    put16(p + 6, 45);
    put32(p + 16, crc);
    put32(p + 20, 0xffffffff);
    put32(p + 24, 0xffffffff);
    put16(p + 28, 5);
    put16(p + 30, 28);
    put32(p + 42, 0xffffffff);
    memcpy(p + 46, "m.npy", 5);
    put16(p + 51, 1);
    put16(p + 53, 24);
    put64(p + 55, npy_len);
    put64(p + 63, npy_len);
    put64(p + 71, 0);
    p += 79;
    uint64_t cd_size = (uint64_t)(p - z) - cd_offset, rec = (uint64_t)(p - z);
    put32(p, 0x06064b50);
    put64(p + 4, 44);
    put64(p + 24, 1);
    put64(p + 32, 1);
    put64(p + 40, cd_size);
    put64(p + 48, cd_offset);
    p += 56;
    put32(p, 0x07064b50);
    put64(p + 8, rec);
    put32(p + 16, 1);
    p += 20;
    put32(p, 0x06054b50);
    put16(p + 8, 0xffff);
    put16(p + 10, 0xffff);
    put32(p + 12, 0xffffffff);
    put32(p + 16, 0xffffffff);
    p += 22;
    *len = (size_t)(p - z);
    return z;
}

START_TEST(zip64_fields_are_followed)
{
    sdlk_tensor_set set;
    small_set(&set);
    mem_out npy;
    mem_open(&npy);
    ck_assert_int_eq(sdlk_npy_write(npy.fp, &set.items[0].tensor, "a", NULL), SDLK_OK);
    mem_finish(&npy);
    size_t len;
    uint8_t *z = zip64_archive((const uint8_t *)npy.data, npy.size, &len);
    sdlk_tensor_set back;
    sdlk_error err = {0};
    ck_assert_msg(parse_bytes(z, len, &back, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_str_eq(back.items[0].name, "m");
    assert_same_tensor(&back.items[0].tensor, &set.items[0].tensor);
    sdlk_tensor_set_free(&back);
    /* a locator that points nowhere */
    put64(z + len - 22 - 20 + 8, 3);
    ck_assert_int_eq(parse_bytes(z, len, &back, &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.npz: zip64"));
    free(z);
    free(npy.data);
    sdlk_tensor_set_free(&set);
}
END_TEST

START_TEST(more_than_65535_members_use_zip64_end_records)
{
    /* Filled directly: sdlk_tensor_set_add's duplicate scan would make this quadratic. */
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    set.items = calloc(65536, sizeof *set.items);
    set.capacity = 65536;
    for (int i = 0; i < 65536; i++, set.count++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        set.items[i].name = strdup(name);
        ck_assert_int_eq(sdlk_tensor_alloc(&set.items[i].tensor, SDLK_U16, 0, NULL, NULL), SDLK_OK);
        *(uint16_t *)set.items[i].tensor.data = (uint16_t)i;
    }
    mem_out m;
    write_npz(&set, 0, &m);
    const uint8_t *eocd = (const uint8_t *)m.data + m.size - 22;
    ck_assert_uint_eq(le16(eocd + 10), 0xffff);
    ck_assert_uint_eq(le32(eocd - 20), 0x07064b50);
    sdlk_tensor_set back;
    sdlk_error err = {0};
    ck_assert_msg(parse_bytes(m.data, m.size, &back, &err) == SDLK_OK, "%s", err.msg);
    ck_assert_uint_eq(back.count, 65536);
    ck_assert_str_eq(back.items[65535].name, "t65535");
    ck_assert_uint_eq(*(const uint16_t *)back.items[65535].tensor.data, 65535);
    sdlk_tensor_set_free(&back);
    free(m.data);
    sdlk_tensor_set_free(&set);
}
END_TEST

/* Parse a patched copy of `good`; expect `code` and `words` in a message naming the file. */
static void expect_bad(const uint8_t *bytes, size_t size, sdlk_status code, const char *words)
{
    sdlk_tensor_set set;
    sdlk_error err = {0};
    sdlk_status st = parse_bytes(bytes, size, &set, &err);
    ck_assert_msg(st == code, "status %s, expected %s: %s", sdlk_status_name(st),
                  sdlk_status_name(code), err.msg);
    ck_assert_msg(strstr(err.msg, "bad.npz"), "message lacks the file: %s", err.msg);
    ck_assert_msg(strstr(err.msg, words), "message lacks '%s': %s", words, err.msg);
    ck_assert_uint_eq(set.count, 0);
}

START_TEST(damaged_archives)
{
    sdlk_tensor_set set;
    small_set(&set);
    mem_out m;
    write_npz(&set, 0, &m);
    const size_t n = m.size;
    uint8_t *good = (uint8_t *)m.data, *b = malloc(n);
    size_t cd = le32(good + n - 22 + 16);
    const sdlk_status F = SDLK_ERR_FORMAT, U = SDLK_ERR_UNSUPPORTED;

    /* every truncation fails cleanly */
    for (size_t cut = 0; cut < n; cut++) {
        sdlk_tensor_set out;
        sdlk_error err = {0};
        ck_assert_int_ne(parse_bytes(good, cut, &out, &err), SDLK_OK);
        ck_assert_ptr_nonnull(strstr(err.msg, "bad.npz"));
    }
#define PATCH(stmt, code, words) do { memcpy(b, good, n); stmt; expect_bad(b, n, code, words); } while (0)
    PATCH(b[40 + 64] ^= 1, F, "CRC-32 mismatch");
    PATCH(put16(b + cd + 8, 1), U, "encrypted");
    PATCH(put16(b + cd + 10, 12), U, "compression method 12");
    PATCH((memcpy(b + 30 + 2, "txt", 3), memcpy(b + cd + 46 + 2, "txt", 3)), U, "not a .npy");
    PATCH(memcpy(b + cd + 46, "b", 1), F, "local header disagrees");
    PATCH((memcpy(b + 30, "b", 1), memcpy(b + cd + 46, "b", 1)), F, "two members");
    PATCH(put32(b + cd + 42, 1000000), F, "no local header");
    PATCH(put32(b + cd + 20, 1000000), F, "run past");
    PATCH(put16(b + n - 22 + 4, 1), U, "multi-disk");
    PATCH((put16(b + n - 22 + 8, 1000), put16(b + n - 22 + 10, 1000)), F, "claims 1000 members");
    PATCH(put32(b + n - 22 + 16, (uint32_t)n), F, "outside");
    PATCH(put32(b + n - 22, 0), F, "no end-of-central-directory");
    PATCH(put32(b + cd, 0), F, "corrupt central directory");
    PATCH(put16(b + cd + 30, 40000), F, "runs past its end");
    free(m.data);

    /* deflated members: corrupt data, a size deflate cannot reach, wrong size */
    write_npz(&set, 1, &m);
    uint8_t *d = (uint8_t *)m.data;
    size_t dn = m.size, dcd = le32(d + dn - 22 + 16);
    b = realloc(b, dn);
    good = d;
#undef PATCH
#define PATCH(stmt, code, words) do { memcpy(b, d, dn); stmt; expect_bad(b, dn, code, words); } while (0)
    PATCH(memset(b + 35, 0xff, 8), F, "member 'a.npy'");
    PATCH(put32(b + dcd + 24, 0xfffffff0u), F, "more than deflate can produce");
    PATCH(put32(b + dcd + 24, le32(d + dcd + 24) + 1), F, "fewer bytes");
    PATCH(put32(b + dcd + 24, le32(d + dcd + 24) - 1), F, "more bytes");
    PATCH(put32(b + dcd + 20, 3), F, "member 'a.npy'");
#undef PATCH
    free(b);
    free(m.data);
    sdlk_tensor_set_free(&set);
}
END_TEST

START_TEST(npy_errors_name_the_member)
{
    /* a member whose .npy header lies: the message names archive and member */
    sdlk_tensor_set set;
    small_set(&set);
    mem_out m;
    write_npz(&set, 0, &m);
    uint8_t *b = (uint8_t *)m.data;
    char *shape = memmem(b, m.size, "(2, 3)", 6);
    ck_assert_ptr_nonnull(shape);
    memcpy(shape, "(2, 4)", 6);
    /* fix the CRC so that the npy check is what fails */
    size_t npy_len = le32(b + 18);
    uint32_t crc = (uint32_t)crc32(0, b + 35, (uInt)npy_len);
    put32(b + 14, crc);
    put32(b + le32(b + m.size - 22 + 16) + 16, crc);
    expect_bad(b, m.size, SDLK_ERR_FORMAT, "bad.npz (member a.npy): header says 16 bytes");
    free(m.data);
    sdlk_tensor_set_free(&set);
}
END_TEST

START_TEST(empty_archive)
{
    sdlk_tensor_set set, back;
    sdlk_tensor_set_init(&set);
    mem_out m;
    write_npz(&set, 0, &m);
    ck_assert_uint_eq(m.size, 22);
    ck_assert_int_eq(parse_bytes(m.data, m.size, &back, NULL), SDLK_OK);
    ck_assert_uint_eq(back.count, 0);
    free(m.data);
}
END_TEST

int main(void)
{
    return UNIT_RUN("npz",
                    roundtrip_stored_and_deflated,
                    writer_zip_structure,
                    written_to_a_pipe,
                    zip64_fields_are_followed,
                    more_than_65535_members_use_zip64_end_records,
                    damaged_archives,
                    npy_errors_name_the_member,
                    empty_archive);
}
