/* npy.c -- NumPy .npy: a magic string, a version, a Python-literal dict describing the
 * array, then the raw elements. The dict is parsed by a small recursive-descent reader
 * that accepts exactly the subset NumPy writes (string, bool and int-tuple values); it
 * never evaluates anything. */
#include "io/npy.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/ioutil.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64

/* ---- the header dict ---------------------------------------------------------- */

typedef struct npy_cursor {
    const char *p, *end;
    const char *name; /* file name for messages */
    sdlk_error *err;
} npy_cursor;

typedef struct npy_header {
    char descr[32];
    int have_descr, have_fortran, have_shape;
    int fortran_order;
    int ndim;
    int64_t shape[SDLK_MAX_DIMS];
} npy_header;

static void skip_space(npy_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static sdlk_status syntax_error(npy_cursor *c, const char *expected)
{
    if (c->p >= c->end)
        return sdlk_error_set(c->err, SDLK_ERR_FORMAT, "%s: header dict ends early (expected %s)",
                              c->name, expected);
    return sdlk_error_set(c->err, SDLK_ERR_FORMAT, "%s: header dict: expected %s, found '%c'",
                          c->name, expected, isprint((unsigned char)*c->p) ? *c->p : '?');
}

/* Consume `ch` (after optional space); 1 if it was there. */
static int accept(npy_cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (NumPy's keys and descrs never need any). */
static sdlk_status parse_string(npy_cursor *c, char *out, size_t cap)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return syntax_error(c, "a quoted string");
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\')
            return sdlk_error_set(c->err, SDLK_ERR_FORMAT,
                                  "%s: header dict: escape sequences are not supported", c->name);
        if (n + 1 >= cap)
            return sdlk_error_set(c->err, SDLK_ERR_FORMAT, "%s: header dict: string too long",
                                  c->name);
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return syntax_error(c, "a closing quote");
    c->p++;
    out[n] = '\0';
    return SDLK_OK;
}

static int accept_word(npy_cursor *c, const char *word)
{
    size_t len = strlen(word);
    skip_space(c);
    if ((size_t)(c->end - c->p) >= len && memcmp(c->p, word, len) == 0) {
        c->p += len;
        return 1;
    }
    return 0;
}

/* A non-negative decimal integer, optionally with Python 2's 'L' suffix. */
static sdlk_status parse_dim(npy_cursor *c, int64_t *out)
{
    skip_space(c);
    if (c->p >= c->end || !isdigit((unsigned char)*c->p)) {
        if (c->p < c->end && *c->p == '-')
            return sdlk_error_set(c->err, SDLK_ERR_FORMAT, "%s: negative dimension in shape",
                                  c->name);
        return syntax_error(c, "a dimension");
    }
    uint64_t v = 0;
    while (c->p < c->end && isdigit((unsigned char)*c->p)) {
        unsigned digit = (unsigned)(*c->p++ - '0');
        if (v > ((uint64_t)INT64_MAX - digit) / 10)
            return sdlk_error_set(c->err, SDLK_ERR_OVERFLOW,
                                  "%s: a dimension in the shape does not fit in 64 bits", c->name);
        v = v * 10 + digit;
    }
    if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
        c->p++;
    *out = (int64_t)v;
    return SDLK_OK;
}

static sdlk_status parse_shape(npy_cursor *c, npy_header *h)
{
    if (!accept(c, '('))
        return syntax_error(c, "'(' starting the shape tuple");
    h->ndim = 0;
    if (accept(c, ')'))
        return SDLK_OK;
    for (;;) {
        int64_t dim = 0;
        sdlk_status st = parse_dim(c, &dim);
        if (st)
            return st;
        if (h->ndim == SDLK_MAX_DIMS)
            return sdlk_error_set(c->err, SDLK_ERR_UNSUPPORTED,
                                  "%s: more than %d dimensions are not supported", c->name,
                                  SDLK_MAX_DIMS);
        h->shape[h->ndim++] = dim;
        if (accept(c, ')'))
            return SDLK_OK;
        if (!accept(c, ','))
            return syntax_error(c, "',' or ')' in the shape tuple");
        if (accept(c, ')'))
            return SDLK_OK;
    }
}

static sdlk_status parse_value(npy_cursor *c, const char *key, npy_header *h)
{
    int *seen = strcmp(key, "descr") == 0           ? &h->have_descr
                : strcmp(key, "fortran_order") == 0 ? &h->have_fortran
                : strcmp(key, "shape") == 0         ? &h->have_shape
                                                    : NULL;
    if (!seen)
        return sdlk_error_set(c->err, SDLK_ERR_FORMAT, "%s: header has unexpected key '%s'",
                              c->name, key);
    if (*seen)
        return sdlk_error_set(c->err, SDLK_ERR_FORMAT, "%s: header repeats key '%s'", c->name,
                              key);
    *seen = 1;
    if (seen == &h->have_descr) {
        skip_space(c);
        if (c->p < c->end && (*c->p == '[' || *c->p == '{'))
            return sdlk_error_set(c->err, SDLK_ERR_UNSUPPORTED,
                                  "%s: structured dtypes are not supported", c->name);
        return parse_string(c, h->descr, sizeof h->descr);
    }
    if (seen == &h->have_fortran) {
        if (accept_word(c, "True"))
            h->fortran_order = 1;
        else if (accept_word(c, "False"))
            h->fortran_order = 0;
        else
            return syntax_error(c, "True or False for fortran_order");
        return SDLK_OK;
    }
    return parse_shape(c, h);
}

static sdlk_status parse_dict(npy_cursor *c, npy_header *h)
{
    memset(h, 0, sizeof *h);
    if (!accept(c, '{'))
        return syntax_error(c, "'{' starting the header dict");
    while (!accept(c, '}')) {
        char key[32];
        sdlk_status st = parse_string(c, key, sizeof key);
        if (st)
            return st;
        if (!accept(c, ':'))
            return syntax_error(c, "':' after a key");
        if ((st = parse_value(c, key, h)))
            return st;
        if (!accept(c, ',')) {
            if (!accept(c, '}'))
                return syntax_error(c, "',' or '}'");
            break;
        }
    }
    skip_space(c);
    if (c->p != c->end)
        return sdlk_error_set(c->err, SDLK_ERR_FORMAT, "%s: unexpected bytes after the header dict",
                              c->name);
    const char *missing = !h->have_descr     ? "descr"
                          : !h->have_fortran ? "fortran_order"
                          : !h->have_shape   ? "shape"
                                             : NULL;
    if (missing)
        return sdlk_error_set(c->err, SDLK_ERR_FORMAT, "%s: header lacks the '%s' key", c->name,
                              missing);
    return SDLK_OK;
}

/* Fixed-width strings: '|S<n>' (bytes) and '<U<n>' / '>U<n>' (UTF-32 code points) become
 * u8 / u32 elements with an extra trailing dimension of n (*chars = n; 0 for every other
 * descr). n is 1..NPY_MAX_CHARS. */
#define NPY_MAX_CHARS 1000000

/* descr such as "<f4" -> dtype and whether the bytes need swapping on this host. */
static sdlk_status parse_descr(const char *descr, const char *name, sdlk_dtype *dtype, int *swap,
                               int64_t *chars, sdlk_error *err)
{
    *chars = 0;
    char order = descr[0];
    if (order != '<' && order != '>' && order != '=' && order != '|')
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: descr '%s' lacks a byte-order character",
                              name, descr);
    char kind = descr[1];
    if (kind == 'S' || kind == 'U') {
        const char *p = descr + 2;
        int64_t n = 0;
        while (isdigit((unsigned char)*p) && n <= NPY_MAX_CHARS)
            n = n * 10 + (*p++ - '0');
        if (*p || n < 1 || n > NPY_MAX_CHARS)
            return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                                  "%s: dtype '%s' is not supported (string width 1..%d)", name,
                                  descr, NPY_MAX_CHARS);
        *chars = n;
        *dtype = kind == 'S' ? SDLK_U8 : SDLK_U32;
        int little = order == '<' || ((order == '=' || order == '|') &&
                                      sdlk_host_is_little_endian());
        *swap = kind == 'U' && little != sdlk_host_is_little_endian();
        return SDLK_OK;
    }
    const char *digits = descr + (kind ? 2 : 1);
    int size = 0;
    if (*digits && strlen(digits) <= 2 && isdigit((unsigned char)digits[0]) &&
        (!digits[1] || isdigit((unsigned char)digits[1])))
        size = atoi(digits);
    static const struct {
        char kind;
        int size;
        sdlk_dtype dtype;
    } known[] = {
        {'b', 1, SDLK_BOOL}, {'u', 1, SDLK_U8},  {'i', 1, SDLK_I8},  {'u', 2, SDLK_U16},
        {'i', 2, SDLK_I16},  {'u', 4, SDLK_U32}, {'i', 4, SDLK_I32}, {'u', 8, SDLK_U64},
        {'i', 8, SDLK_I64},  {'f', 2, SDLK_F16}, {'f', 4, SDLK_F32}, {'f', 8, SDLK_F64},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (known[i].kind == kind && known[i].size == size) {
            *dtype = known[i].dtype;
            int little = order == '<' || ((order == '=' || order == '|') &&
                                          sdlk_host_is_little_endian());
            *swap = size > 1 && little != sdlk_host_is_little_endian();
            return SDLK_OK;
        }
    }
    return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: dtype '%s' is not supported", name,
                          descr);
}

sdlk_status sdlk_npy_parse(sdlk_storage *storage, size_t offset, size_t size, const char *name,
                           sdlk_tensor *out, sdlk_error *err)
{
    sdlk_tensor_init(out);
    if (offset > sdlk_storage_size(storage) || size > sdlk_storage_size(storage) - offset)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: npy range outside its storage", name);
    const uint8_t *bytes = (const uint8_t *)sdlk_storage_data(storage) + offset;
    if (size < NPY_MAGIC_LEN || memcmp(bytes, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: not a .npy file (bad magic)", name);
    if (size < 10)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: truncated in the .npy preamble", name);
    int major = bytes[6], minor = bytes[7];
    if (major < 1 || major > 3 || minor != 0)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: .npy format version %d.%d", name,
                              major, minor);
    size_t prefix = major == 1 ? 10 : 12;
    if (size < prefix)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: truncated in the .npy preamble", name);
    size_t header_len = major == 1 ? sdlk_io_le16(bytes + 8) : sdlk_io_le32(bytes + 8);
    if (header_len > size - prefix)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: header length %zu exceeds the %zu bytes that follow", name,
                              header_len, size - prefix);

    npy_cursor cur = {(const char *)bytes + prefix, (const char *)bytes + prefix + header_len,
                      name, err};
    npy_header h;
    sdlk_status st = parse_dict(&cur, &h);
    if (st)
        return st;
    sdlk_dtype dtype = SDLK_U8;
    int swap = 0;
    int64_t chars = 0;
    if ((st = parse_descr(h.descr, name, &dtype, &swap, &chars, err)))
        return st;
    int array_ndim = h.ndim; /* dimensions of the array, without the string's */
    if (chars) {
        if (h.ndim >= SDLK_MAX_DIMS)
            return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                                  "%s: a string array of %d dimensions (at most %d)", name,
                                  h.ndim, SDLK_MAX_DIMS - 1);
        h.shape[h.ndim++] = chars;
    }
    uint64_t numel;
    if ((st = sdlk_shape_numel(h.ndim, h.shape, dtype, &numel, err))) {
        sdlk_error_prefix(err, "%s", name);
        return st;
    }
    uint64_t data_size = numel * sdlk_dtype_size(dtype);
    size_t data_offset = prefix + header_len;
    if (data_size != size - data_offset) {
        char shape_text[200];
        sdlk_shape_format(h.ndim, h.shape, shape_text, sizeof shape_text);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: header says %llu bytes of data (%s %s), file has %zu", name,
                              (unsigned long long)data_size, sdlk_dtype_name(dtype), shape_text,
                              size - data_offset);
    }
    st = sdlk_io_tensor_from_bytes(storage, offset + data_offset, dtype, h.ndim, h.shape, swap,
                                   out, err);
    if (st) {
        sdlk_error_prefix(err, "%s", name);
        return st;
    }
    if (h.fortran_order) { /* same bytes, column-major: only the strides change */
        size_t elem = sdlk_dtype_size(dtype) * (size_t)(chars ? chars : 1);
        sdlk_strides_f(array_ndim, out->shape, elem, out->strides);
        if (chars) /* a string's characters stay contiguous */
            out->strides[array_ndim] = (int64_t)sdlk_dtype_size(dtype);
    }
    return SDLK_OK;
}

/* ---- writing -------------------------------------------------------------------- */

static const char *npy_descr(sdlk_dtype dtype)
{
    switch (dtype) {
    case SDLK_BOOL: return "|b1";
    case SDLK_U8: return "|u1";
    case SDLK_I8: return "|i1";
    case SDLK_U16: return "<u2";
    case SDLK_I16: return "<i2";
    case SDLK_U32: return "<u4";
    case SDLK_I32: return "<i4";
    case SDLK_U64: return "<u8";
    case SDLK_I64: return "<i8";
    case SDLK_F16: return "<f2";
    case SDLK_F32: return "<f4";
    case SDLK_F64: return "<f8";
    default: return NULL; /* bf16 has no NumPy dtype */
    }
}

sdlk_status sdlk_npy_format_header(const sdlk_tensor *t, uint8_t *buf, size_t cap, size_t *len,
                                   const char *name, sdlk_error *err)
{
    const char *descr = npy_descr(t->dtype);
    if (!descr)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s: .npy cannot hold %s tensors (NumPy has no such dtype); use "
                              ".safetensors",
                              name, sdlk_dtype_name(t->dtype));
    if (t->ndim < 0 || t->ndim > SDLK_MAX_DIMS)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: %d dimensions", name, t->ndim);
    char dict[400];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr);
    for (int i = 0; i < t->ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)t->shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", t->ndim == 1 ? "," : "");
    /* Version 1.0 stores the header length in 16 bits; 2.0 in 32 (never needed with at
     * most 8 dimensions, but this is NumPy's rule). */
    size_t prefix = 10, unpadded = prefix + (size_t)n + 1;
    if (unpadded - prefix > 65535) {
        prefix = 12;
        unpadded += 2;
    }
    size_t total = (unpadded + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    if (total > cap)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: npy header buffer too small", name);
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = prefix == 10 ? 1 : 2;
    buf[7] = 0;
    if (prefix == 10)
        sdlk_io_put_le16(buf + 8, (uint16_t)(total - prefix));
    else
        sdlk_io_put_le32(buf + 8, (uint32_t)(total - prefix));
    memcpy(buf + prefix, dict, (size_t)n);
    memset(buf + prefix + n, ' ', total - prefix - (size_t)n - 1);
    buf[total - 1] = '\n';
    *len = total;
    return SDLK_OK;
}

sdlk_status sdlk_npy_write(FILE *fp, const sdlk_tensor *t, const char *name, sdlk_error *err)
{
    uint8_t header[512];
    size_t header_len;
    sdlk_status st = sdlk_npy_format_header(t, header, sizeof header, &header_len, name, err);
    if (st)
        return st;
    sdlk_tensor le;
    if ((st = sdlk_io_le_contiguous(t, &le, name, err)))
        return st;
    st = sdlk_io_write_all(fp, header, header_len, name, err);
    if (!st)
        st = sdlk_io_write_all(fp, le.data, (size_t)sdlk_tensor_nbytes(&le), name, err);
    sdlk_tensor_free(&le);
    return st;
}
