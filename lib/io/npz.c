/* npz.c -- NumPy .npz: a zip archive of .npy members.
 *
 * Reading goes through the central directory (the authoritative list; local headers
 * written by streaming writers carry no sizes), follows zip64 records and extra fields,
 * and checks every offset against the bytes present before touching them.
 * Writing never seeks: stored members carry their CRC and sizes up front (computed
 * from the tensor in memory); deflated members use a data descriptor after the data,
 * so the archive can go to a pipe. */
#include "io/npz.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/ioutil.h"
#include "io/npy.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_ZIP64_EOCD 0x06064b50u
#define SIG_ZIP64_LOCATOR 0x07064b50u
#define SIG_DESCRIPTOR 0x08074b50u

#define EOCD_SIZE 22
#define ZIP64_LOCATOR_SIZE 20
#define ZIP64_EOCD_SIZE 56
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30
#define ZIP64_EXTRA_ID 0x0001
#define U32_MAX 0xffffffffu
#define U16_MAX 0xffffu

/* Deflate cannot expand data by more than about 1032:1 (a 258-byte match costs at least
 * 2 bits), so a member that claims more is a lie; refusing it before allocating stops
 * "zip bombs" in headers from costing memory. */
#define DEFLATE_MAX_RATIO 1032u

/* CRC-32 of any length (zlib's length argument is narrower than size_t). */
static uint32_t crc32_update(uint32_t crc, const uint8_t *data, uint64_t size)
{
    while (size > 0) {
        uInt chunk = size > (1u << 30) ? (1u << 30) : (uInt)size;
        crc = (uint32_t)crc32(crc, data, chunk);
        data += chunk;
        size -= chunk;
    }
    return crc;
}

/* ---- reading ---------------------------------------------------------------------- */

typedef struct zip_reader {
    const uint8_t *bytes;
    size_t size;
    const char *name;
    sdlk_error *err;
} zip_reader;

typedef struct zip_directory {
    uint64_t entries, cd_offset, cd_size;
    size_t cd_limit; /* the central directory must end before this offset */
} zip_directory;

static sdlk_status find_directory(const zip_reader *z, zip_directory *dir)
{
    if (z->size < EOCD_SIZE)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: not a zip archive (too short for an end record)", z->name);
    /* The end record sits at the end, before a comment of at most 65535 bytes. */
    size_t lowest = z->size - EOCD_SIZE > U16_MAX ? z->size - EOCD_SIZE - U16_MAX : 0;
    size_t pos = z->size - EOCD_SIZE + 1;
    const uint8_t *e = NULL;
    while (pos-- > lowest) {
        const uint8_t *p = z->bytes + pos;
        if (sdlk_io_le32(p) == SIG_EOCD && pos + EOCD_SIZE + sdlk_io_le16(p + 20) <= z->size) {
            e = p;
            break;
        }
    }
    if (!e)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: not a zip archive (no end-of-central-directory record; "
                              "truncated?)",
                              z->name);
    if (sdlk_io_le16(e + 4) != 0 || sdlk_io_le16(e + 6) != 0 ||
        sdlk_io_le16(e + 8) != sdlk_io_le16(e + 10))
        return sdlk_error_set(z->err, SDLK_ERR_UNSUPPORTED,
                              "%s: multi-disk zip archives are not supported", z->name);
    dir->entries = sdlk_io_le16(e + 10);
    dir->cd_size = sdlk_io_le32(e + 12);
    dir->cd_offset = sdlk_io_le32(e + 16);
    dir->cd_limit = pos;
    /* Like Python's zipfile, trust a zip64 locator right before the end record. */
    if (pos >= ZIP64_LOCATOR_SIZE && sdlk_io_le32(e - ZIP64_LOCATOR_SIZE) == SIG_ZIP64_LOCATOR) {
        const uint8_t *loc = e - ZIP64_LOCATOR_SIZE;
        uint64_t rec = sdlk_io_le64(loc + 8);
        if (sdlk_io_le32(loc + 4) != 0 || sdlk_io_le32(loc + 16) > 1)
            return sdlk_error_set(z->err, SDLK_ERR_UNSUPPORTED,
                                  "%s: multi-disk zip archives are not supported", z->name);
        size_t loc_pos = pos - ZIP64_LOCATOR_SIZE;
        if (rec > loc_pos || loc_pos - rec < ZIP64_EOCD_SIZE ||
            sdlk_io_le32(z->bytes + rec) != SIG_ZIP64_EOCD)
            return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                                  "%s: zip64 locator points to no zip64 end record", z->name);
        const uint8_t *r = z->bytes + rec;
        if (sdlk_io_le32(r + 16) != 0 || sdlk_io_le32(r + 20) != 0 ||
            sdlk_io_le64(r + 24) != sdlk_io_le64(r + 32))
            return sdlk_error_set(z->err, SDLK_ERR_UNSUPPORTED,
                                  "%s: multi-disk zip archives are not supported", z->name);
        dir->entries = sdlk_io_le64(r + 32);
        dir->cd_size = sdlk_io_le64(r + 40);
        dir->cd_offset = sdlk_io_le64(r + 48);
        dir->cd_limit = (size_t)rec;
    }
    if (dir->cd_offset > dir->cd_limit || dir->cd_size > dir->cd_limit - dir->cd_offset)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: central directory (%llu bytes at offset %llu) lies outside "
                              "the archive",
                              z->name, (unsigned long long)dir->cd_size,
                              (unsigned long long)dir->cd_offset);
    if (dir->entries > dir->cd_size / CENTRAL_SIZE)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: end record claims %llu members, the central directory has "
                              "room for %llu",
                              z->name, (unsigned long long)dir->entries,
                              (unsigned long long)(dir->cd_size / CENTRAL_SIZE));
    return SDLK_OK;
}

typedef struct zip_member {
    char *name; /* NUL-terminated copy */
    uint16_t flags, method;
    uint32_t crc;
    uint64_t csize, usize, local_offset;
    uint64_t data_offset; /* after the local header */
} zip_member;

/* Replace 0xffffffff fields by the zip64 extra field's values, which appear in the
 * fixed order usize, csize, offset for exactly the fields that overflowed. */
static sdlk_status apply_zip64_extra(const zip_reader *z, const uint8_t *extra, size_t len,
                                     zip_member *m)
{
    while (len >= 4) {
        uint16_t id = sdlk_io_le16(extra), size = sdlk_io_le16(extra + 2);
        if ((size_t)size > len - 4)
            return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                                  "%s: member '%s': extra field runs past its end", z->name,
                                  m->name);
        if (id == ZIP64_EXTRA_ID) {
            const uint8_t *p = extra + 4;
            size_t left = size;
            uint64_t *fields[3] = {&m->usize, &m->csize, &m->local_offset};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != U32_MAX)
                    continue;
                if (left < 8)
                    return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                                          "%s: member '%s': zip64 extra field too short",
                                          z->name, m->name);
                *fields[i] = sdlk_io_le64(p);
                p += 8;
                left -= 8;
            }
        }
        extra += 4 + size;
        len -= 4 + (size_t)size;
    }
    return SDLK_OK;
}

/* Read the central entry at *pos into m and advance *pos. */
static sdlk_status read_central_entry(const zip_reader *z, const zip_directory *dir,
                                      uint64_t *pos, zip_member *m)
{
    uint64_t cd_end = dir->cd_offset + dir->cd_size;
    const uint8_t *c = z->bytes + *pos;
    if (cd_end - *pos < CENTRAL_SIZE || sdlk_io_le32(c) != SIG_CENTRAL)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: corrupt central directory at offset %llu", z->name,
                              (unsigned long long)*pos);
    size_t name_len = sdlk_io_le16(c + 28), extra_len = sdlk_io_le16(c + 30),
           comment_len = sdlk_io_le16(c + 32);
    if (cd_end - *pos - CENTRAL_SIZE < name_len + extra_len + comment_len)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: central directory entry at offset %llu runs past its end",
                              z->name, (unsigned long long)*pos);
    m->name = malloc(name_len + 1);
    if (!m->name)
        return sdlk_error_set(z->err, SDLK_ERR_NOMEM, "%s: out of memory", z->name);
    memcpy(m->name, c + CENTRAL_SIZE, name_len);
    m->name[name_len] = '\0';
    if (memchr(m->name, '\0', name_len))
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT, "%s: member name contains a NUL byte",
                              z->name);
    m->flags = sdlk_io_le16(c + 8);
    m->method = sdlk_io_le16(c + 10);
    m->crc = sdlk_io_le32(c + 16);
    m->csize = sdlk_io_le32(c + 20);
    m->usize = sdlk_io_le32(c + 24);
    m->local_offset = sdlk_io_le32(c + 42);
    *pos += CENTRAL_SIZE + name_len + extra_len + comment_len;
    return apply_zip64_extra(z, c + CENTRAL_SIZE + name_len, extra_len, m);
}

/* Check what the central entry says against the member's local header. */
static sdlk_status locate_data(const zip_reader *z, const zip_directory *dir, zip_member *m)
{
    if (m->flags & 0x41) /* bit 0: encrypted, bit 6: strong encryption */
        return sdlk_error_set(z->err, SDLK_ERR_UNSUPPORTED,
                              "%s: member '%s' is encrypted", z->name, m->name);
    if (m->method != 0 && m->method != 8)
        return sdlk_error_set(z->err, SDLK_ERR_UNSUPPORTED,
                              "%s: member '%s' uses compression method %u (only stored and "
                              "deflate are supported)",
                              z->name, m->name, m->method);
    uint64_t off = m->local_offset;
    if (off > dir->cd_offset || dir->cd_offset - off < LOCAL_SIZE ||
        sdlk_io_le32(z->bytes + off) != SIG_LOCAL)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: member '%s': no local header at offset %llu", z->name,
                              m->name, (unsigned long long)off);
    const uint8_t *l = z->bytes + off;
    size_t name_len = sdlk_io_le16(l + 26), extra_len = sdlk_io_le16(l + 28);
    size_t name_len_central = strlen(m->name);
    if (dir->cd_offset - off - LOCAL_SIZE < name_len + extra_len || name_len != name_len_central ||
        memcmp(l + LOCAL_SIZE, m->name, name_len) != 0)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: member '%s': local header disagrees with the central "
                              "directory",
                              z->name, m->name);
    m->data_offset = off + LOCAL_SIZE + name_len + extra_len;
    if (m->csize > dir->cd_offset - m->data_offset)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: member '%s': %llu bytes of data run past the end of the "
                              "members (truncated?)",
                              z->name, m->name, (unsigned long long)m->csize);
    if (m->method == 0 && m->csize != m->usize)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: member '%s' is stored but its sizes differ (%llu vs %llu)",
                              z->name, m->name, (unsigned long long)m->csize,
                              (unsigned long long)m->usize);
    return SDLK_OK;
}

static sdlk_status inflate_member(const zip_reader *z, const zip_member *m,
                                  sdlk_storage **out)
{
    if (m->usize / DEFLATE_MAX_RATIO > m->csize + 16 || m->usize > SDLK_MAX_TENSOR_BYTES)
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: member '%s' claims %llu bytes from %llu compressed bytes, "
                              "more than deflate can produce",
                              z->name, m->name, (unsigned long long)m->usize,
                              (unsigned long long)m->csize);
    sdlk_storage *storage = sdlk_storage_alloc((size_t)m->usize, z->err);
    if (!storage)
        return SDLK_ERR_NOMEM;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
        sdlk_storage_release(storage);
        return sdlk_error_set(z->err, SDLK_ERR_NOMEM, "%s: cannot start inflate", z->name);
    }
    const uint8_t *in = z->bytes + m->data_offset;
    uint8_t *outp = sdlk_storage_data(storage);
    uint64_t in_left = m->csize, out_left = m->usize;
    int rc = Z_OK;
    /* zlib counts in uInt; feed at most 1 GiB at a time either way. */
    while (rc == Z_OK) {
        if (zs.avail_in == 0 && in_left) {
            zs.next_in = (Bytef *)in;
            zs.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            in += zs.avail_in;
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left) {
            zs.next_out = outp;
            zs.avail_out = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
            outp += zs.avail_out;
            out_left -= zs.avail_out;
        }
        /* Room for one more byte than claimed would hide an overlong stream: with no
         * output space left, inflate returns Z_BUF_ERROR unless the stream has ended. */
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_BUF_ERROR && (zs.avail_in || in_left) && (zs.avail_out || out_left))
            rc = Z_OK;
    }
    uint64_t produced = m->usize - out_left - zs.avail_out;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || produced != m->usize) {
        sdlk_storage_release(storage);
        const char *why = rc == Z_DATA_ERROR                    ? "corrupt deflate data"
                          : rc == Z_STREAM_END                  ? "inflates to fewer bytes than recorded"
                          : (zs.avail_out == 0 && out_left == 0) ? "inflates to more bytes than recorded"
                                                                 : "deflate data ends early (truncated?)";
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT, "%s: member '%s': %s", z->name, m->name,
                              why);
    }
    *out = storage;
    return SDLK_OK;
}

/* Load one member's array into `set`. */
static sdlk_status load_member(const zip_reader *z, sdlk_storage *archive, const zip_member *m,
                               sdlk_tensor_set *set)
{
    size_t name_len = strlen(m->name);
    if (name_len < 4 || strcmp(m->name + name_len - 4, ".npy") != 0)
        return sdlk_error_set(z->err, SDLK_ERR_UNSUPPORTED,
                              "%s: member '%s' is not a .npy array", z->name, m->name);
    sdlk_storage *storage = archive;
    size_t offset = (size_t)m->data_offset;
    sdlk_status st;
    if (m->method == 8) {
        if ((st = inflate_member(z, m, &storage)))
            return st;
        offset = 0;
    } else
        sdlk_storage_retain(storage);
    const uint8_t *data = (const uint8_t *)sdlk_storage_data(storage) + offset;
    uint32_t crc = crc32_update(0, data, m->usize);
    if (crc != m->crc) {
        sdlk_storage_release(storage);
        return sdlk_error_set(z->err, SDLK_ERR_FORMAT,
                              "%s: member '%s': CRC-32 mismatch (recorded %08x, data has %08x)",
                              z->name, m->name, m->crc, crc);
    }
    char member_name[600];
    snprintf(member_name, sizeof member_name, "%s (member %s)", z->name, m->name);
    sdlk_tensor t;
    st = sdlk_npy_parse(storage, offset, (size_t)m->usize, member_name, &t, z->err);
    sdlk_storage_release(storage); /* a view holds its own reference */
    if (st)
        return st;
    char *tensor_name = m->name;
    tensor_name[name_len - 4] = '\0'; /* "x.npy" -> "x" */
    if (sdlk_tensor_set_find(set, tensor_name))
        st = sdlk_error_set(z->err, SDLK_ERR_FORMAT, "%s: two members are named '%s.npy'",
                            z->name, tensor_name);
    else
        st = sdlk_tensor_set_add(set, tensor_name, &t, z->err);
    sdlk_tensor_free(&t);
    return st;
}

sdlk_status sdlk_npz_parse(sdlk_storage *storage, const char *name, sdlk_tensor_set *out,
                           sdlk_error *err)
{
    sdlk_tensor_set_init(out);
    zip_reader z = {sdlk_storage_data(storage), sdlk_storage_size(storage), name, err};
    zip_directory dir = {0};
    sdlk_status st = find_directory(&z, &dir);
    if (st)
        return st;
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    uint64_t pos = dir.cd_offset;
    for (uint64_t i = 0; i < dir.entries && !st; i++) {
        zip_member m = {0};
        st = read_central_entry(&z, &dir, &pos, &m);
        if (!st)
            st = locate_data(&z, &dir, &m);
        if (!st)
            st = load_member(&z, storage, &m, &set);
        free(m.name);
    }
    if (st) {
        sdlk_tensor_set_free(&set);
        return st;
    }
    *out = set;
    return SDLK_OK;
}

/* ---- writing ---------------------------------------------------------------------- */

/* DOS date of 1980-01-01, time 00:00: archives are reproducible byte for byte. */
#define DOS_TIME 0
#define DOS_DATE ((0 << 9) | (1 << 5) | 1)
#define UNIX_MODE_0644 (0100644u << 16)

typedef struct zip_entry {
    char *name;
    uint16_t method, flags;
    uint32_t crc;
    uint64_t csize, usize, offset;
    int zip64_sizes; /* sizes live in a zip64 extra field */
} zip_entry;

typedef struct zip_writer {
    FILE *fp;
    const char *name;
    sdlk_error *err;
    uint64_t offset; /* bytes written so far */
    zip_entry *entries;
    size_t count;
} zip_writer;

static sdlk_status put(zip_writer *w, const void *data, size_t size)
{
    sdlk_status st = sdlk_io_write_all(w->fp, data, size, w->name, w->err);
    if (!st)
        w->offset += size;
    return st;
}

static int name_is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

static sdlk_status write_local_header(zip_writer *w, const zip_entry *e)
{
    size_t name_len = strlen(e->name);
    uint8_t h[LOCAL_SIZE + 20];
    sdlk_io_put_le32(h, SIG_LOCAL);
    sdlk_io_put_le16(h + 4, e->zip64_sizes ? 45 : 20);
    sdlk_io_put_le16(h + 6, e->flags);
    sdlk_io_put_le16(h + 8, e->method);
    sdlk_io_put_le16(h + 10, DOS_TIME);
    sdlk_io_put_le16(h + 12, DOS_DATE);
    int descriptor = e->flags & 0x08; /* CRC and sizes follow the data */
    sdlk_io_put_le32(h + 14, descriptor ? 0 : e->crc);
    uint32_t csize32 = e->zip64_sizes ? U32_MAX : descriptor ? 0 : (uint32_t)e->csize;
    uint32_t usize32 = e->zip64_sizes ? U32_MAX : descriptor ? 0 : (uint32_t)e->usize;
    sdlk_io_put_le32(h + 18, csize32);
    sdlk_io_put_le32(h + 22, usize32);
    sdlk_io_put_le16(h + 26, (uint16_t)name_len);
    sdlk_io_put_le16(h + 28, e->zip64_sizes ? 20 : 0);
    size_t extra = 0;
    if (e->zip64_sizes) {
        sdlk_io_put_le16(h + 30, ZIP64_EXTRA_ID);
        sdlk_io_put_le16(h + 32, 16);
        sdlk_io_put_le64(h + 34, descriptor ? 0 : e->usize);
        sdlk_io_put_le64(h + 42, descriptor ? 0 : e->csize);
        extra = 20;
    }
    sdlk_status st = put(w, h, LOCAL_SIZE);
    if (!st)
        st = put(w, e->name, name_len);
    if (!st)
        st = put(w, h + LOCAL_SIZE, extra);
    return st;
}

/* Deflate the member's bytes (npy header, then data) straight to the output. */
static sdlk_status write_deflated(zip_writer *w, const uint8_t *header, size_t header_len,
                                  const uint8_t *data, uint64_t data_len, uint64_t *csize)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return sdlk_error_set(w->err, SDLK_ERR_NOMEM, "%s: cannot start deflate", w->name);
    uint8_t *buf = malloc(1 << 18);
    if (!buf) {
        deflateEnd(&zs);
        return sdlk_error_set(w->err, SDLK_ERR_NOMEM, "%s: out of memory", w->name);
    }
    const uint8_t *pieces[2] = {header, data};
    uint64_t lengths[2] = {header_len, data_len};
    sdlk_status st = SDLK_OK;
    uint64_t start = w->offset;
    for (int piece = 0; piece < 2 && !st; piece++) {
        const uint8_t *p = pieces[piece];
        uint64_t left = lengths[piece];
        int last = piece == 1;
        do {
            uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
            zs.next_in = (Bytef *)p;
            zs.avail_in = chunk;
            p += chunk;
            left -= chunk;
            int flush = last && left == 0 ? Z_FINISH : Z_NO_FLUSH;
            int rc;
            do {
                zs.next_out = buf;
                zs.avail_out = 1 << 18;
                rc = deflate(&zs, flush);
                st = put(w, buf, (1 << 18) - zs.avail_out);
            } while (!st && (zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END)));
        } while (!st && left > 0);
    }
    deflateEnd(&zs);
    free(buf);
    *csize = w->offset - start;
    return st;
}

static sdlk_status write_member(zip_writer *w, const char *tensor_name, const sdlk_tensor *t,
                                int compress)
{
    uint8_t header[512];
    size_t header_len;
    char member_label[300];
    snprintf(member_label, sizeof member_label, "%s (tensor %s)", w->name, tensor_name);
    sdlk_status st =
        sdlk_npy_format_header(t, header, sizeof header, &header_len, member_label, w->err);
    if (st)
        return st;
    sdlk_tensor le;
    if ((st = sdlk_io_le_contiguous(t, &le, member_label, w->err)))
        return st;
    uint64_t data_len = sdlk_tensor_nbytes(&le);
    zip_entry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    size_t name_len = strlen(tensor_name) + 4;
    e->name = malloc(name_len + 1);
    if (!e->name) {
        sdlk_tensor_free(&le);
        return sdlk_error_set(w->err, SDLK_ERR_NOMEM, "%s: out of memory", w->name);
    }
    w->count++;
    snprintf(e->name, name_len + 1, "%s.npy", tensor_name);
    if (name_len > U16_MAX) {
        sdlk_tensor_free(&le);
        return sdlk_error_set(w->err, SDLK_ERR_ARG, "%s: tensor name too long for zip",
                              w->name);
    }
    e->usize = header_len + data_len;
    e->crc = crc32_update(crc32_update(0, header, header_len), le.data, data_len);
    e->method = compress ? 8 : 0;
    e->flags = (uint16_t)((compress ? 0x08 : 0) | (name_is_ascii(e->name) ? 0 : 0x800));
    /* Deflate may grow incompressible data a little: switch to zip64 with a margin. */
    e->zip64_sizes = e->usize >= (compress ? 0xff000000u : U32_MAX);
    e->offset = w->offset;
    e->csize = compress ? 0 : e->usize;
    st = write_local_header(w, e);
    if (!st && compress)
        st = write_deflated(w, header, header_len, le.data, data_len, &e->csize);
    else if (!st) {
        st = put(w, header, header_len);
        if (!st)
            st = put(w, le.data, (size_t)data_len);
    }
    sdlk_tensor_free(&le);
    if (!st && compress) {
        uint8_t d[24];
        sdlk_io_put_le32(d, SIG_DESCRIPTOR);
        sdlk_io_put_le32(d + 4, e->crc);
        size_t len;
        if (e->zip64_sizes) {
            sdlk_io_put_le64(d + 8, e->csize);
            sdlk_io_put_le64(d + 16, e->usize);
            len = 24;
        } else {
            sdlk_io_put_le32(d + 8, (uint32_t)e->csize);
            sdlk_io_put_le32(d + 12, (uint32_t)e->usize);
            len = 16;
        }
        st = put(w, d, len);
    }
    return st;
}

static sdlk_status write_central_entry(zip_writer *w, const zip_entry *e)
{
    size_t name_len = strlen(e->name);
    int offset64 = e->offset >= U32_MAX;
    uint8_t h[CENTRAL_SIZE], extra[28];
    size_t extra_len = 0;
    if (e->zip64_sizes || offset64) {
        extra_len = 4;
        if (e->zip64_sizes) {
            sdlk_io_put_le64(extra + extra_len, e->usize);
            sdlk_io_put_le64(extra + extra_len + 8, e->csize);
            extra_len += 16;
        }
        if (offset64) {
            sdlk_io_put_le64(extra + extra_len, e->offset);
            extra_len += 8;
        }
        sdlk_io_put_le16(extra, ZIP64_EXTRA_ID);
        sdlk_io_put_le16(extra + 2, (uint16_t)(extra_len - 4));
    }
    int zip64 = extra_len > 0;
    sdlk_io_put_le32(h, SIG_CENTRAL);
    sdlk_io_put_le16(h + 4, (3 << 8) | (zip64 ? 45 : 20)); /* made by: Unix */
    sdlk_io_put_le16(h + 6, zip64 ? 45 : 20);
    sdlk_io_put_le16(h + 8, e->flags);
    sdlk_io_put_le16(h + 10, e->method);
    sdlk_io_put_le16(h + 12, DOS_TIME);
    sdlk_io_put_le16(h + 14, DOS_DATE);
    sdlk_io_put_le32(h + 16, e->crc);
    sdlk_io_put_le32(h + 20, e->zip64_sizes ? U32_MAX : (uint32_t)e->csize);
    sdlk_io_put_le32(h + 24, e->zip64_sizes ? U32_MAX : (uint32_t)e->usize);
    sdlk_io_put_le16(h + 28, (uint16_t)name_len);
    sdlk_io_put_le16(h + 30, (uint16_t)extra_len);
    sdlk_io_put_le16(h + 32, 0); /* comment */
    sdlk_io_put_le16(h + 34, 0); /* disk */
    sdlk_io_put_le16(h + 36, 0); /* internal attributes */
    sdlk_io_put_le32(h + 38, UNIX_MODE_0644);
    sdlk_io_put_le32(h + 42, offset64 ? U32_MAX : (uint32_t)e->offset);
    sdlk_status st = put(w, h, CENTRAL_SIZE);
    if (!st)
        st = put(w, e->name, name_len);
    if (!st)
        st = put(w, extra, extra_len);
    return st;
}

static sdlk_status write_end_records(zip_writer *w, uint64_t cd_offset, uint64_t cd_size)
{
    uint64_t count = w->count;
    int zip64 = count >= U16_MAX || cd_offset >= U32_MAX || cd_size >= U32_MAX;
    sdlk_status st = SDLK_OK;
    if (zip64) {
        uint64_t record_offset = w->offset;
        uint8_t r[ZIP64_EOCD_SIZE + ZIP64_LOCATOR_SIZE];
        memset(r, 0, sizeof r);
        sdlk_io_put_le32(r, SIG_ZIP64_EOCD);
        sdlk_io_put_le64(r + 4, ZIP64_EOCD_SIZE - 12); /* size of the rest of the record */
        sdlk_io_put_le16(r + 12, (3 << 8) | 45);
        sdlk_io_put_le16(r + 14, 45);
        sdlk_io_put_le64(r + 24, count);
        sdlk_io_put_le64(r + 32, count);
        sdlk_io_put_le64(r + 40, cd_size);
        sdlk_io_put_le64(r + 48, cd_offset);
        uint8_t *loc = r + ZIP64_EOCD_SIZE;
        sdlk_io_put_le32(loc, SIG_ZIP64_LOCATOR);
        sdlk_io_put_le64(loc + 8, record_offset);
        sdlk_io_put_le32(loc + 16, 1); /* total disks */
        st = put(w, r, sizeof r);
    }
    uint8_t e[EOCD_SIZE];
    memset(e, 0, sizeof e);
    sdlk_io_put_le32(e, SIG_EOCD);
    uint16_t count16 = zip64 ? U16_MAX : (uint16_t)count;
    sdlk_io_put_le16(e + 8, count16);
    sdlk_io_put_le16(e + 10, count16);
    sdlk_io_put_le32(e + 12, zip64 ? U32_MAX : (uint32_t)cd_size);
    sdlk_io_put_le32(e + 16, zip64 ? U32_MAX : (uint32_t)cd_offset);
    if (!st)
        st = put(w, e, sizeof e);
    return st;
}

sdlk_status sdlk_npz_write(FILE *fp, const sdlk_tensor_set *set, int compress, const char *name,
                           sdlk_error *err)
{
    zip_writer w = {fp, name, err, 0, calloc(set->count ? set->count : 1, sizeof(zip_entry)), 0};
    if (!w.entries)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    sdlk_status st = SDLK_OK;
    for (size_t i = 0; i < set->count && !st; i++)
        st = write_member(&w, set->items[i].name, &set->items[i].tensor, compress);
    uint64_t cd_offset = w.offset;
    for (size_t i = 0; i < w.count && !st; i++)
        st = write_central_entry(&w, &w.entries[i]);
    if (!st)
        st = write_end_records(&w, cd_offset, w.offset - cd_offset);
    for (size_t i = 0; i < w.count; i++)
        free(w.entries[i].name);
    free(w.entries);
    return st;
}
