/* safetensors.c -- Hugging Face safetensors: u64 header length, JSON header, data.
 *
 * Reading checks the same rules as the reference (Rust) implementation's validation, so
 * that a file we accept is one every other reader accepts, and a file that lies about
 * its sizes is refused before any tensor is created. */
#include "io/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "io/ioutil.h"

static const struct {
    const char *name;
    sdlk_dtype dtype;
} dtype_names[] = {
    {"BOOL", SDLK_BOOL}, {"U8", SDLK_U8},   {"I8", SDLK_I8},   {"U16", SDLK_U16},
    {"I16", SDLK_I16},   {"U32", SDLK_U32}, {"I32", SDLK_I32}, {"U64", SDLK_U64},
    {"I64", SDLK_I64},   {"F16", SDLK_F16}, {"BF16", SDLK_BF16}, {"F32", SDLK_F32},
    {"F64", SDLK_F64},
};

static const char *dtype_to_name(sdlk_dtype dtype)
{
    for (size_t i = 0; i < sizeof dtype_names / sizeof dtype_names[0]; i++)
        if (dtype_names[i].dtype == dtype)
            return dtype_names[i].name;
    return NULL;
}

/* One tensor as the header describes it. */
typedef struct st_entry {
    const char *name; /* owned by the JSON tree */
    sdlk_dtype dtype;
    int ndim;
    int64_t shape[SDLK_MAX_DIMS];
    uint64_t begin, end; /* relative to the data buffer */
    size_t position;     /* index in the JSON object, to keep ties in file order */
} st_entry;

typedef struct st_header {
    json_t *root;
    json_t *metadata; /* borrowed from root; NULL when absent or null */
    st_entry *entries;
    size_t count;
    uint64_t data_size; /* bytes of data buffer the tensors tile */
} st_header;

static void header_free(st_header *h)
{
    json_decref(h->root);
    free(h->entries);
    memset(h, 0, sizeof *h);
}

static int compare_entries(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->position < y->position ? -1 : x->position > y->position;
}

/* Non-negative JSON integer, or -1. */
static int64_t json_uint(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

static sdlk_status parse_metadata(json_t *meta, const char *name, sdlk_error *err)
{
    if (json_is_null(meta))
        return SDLK_OK;
    if (!json_is_object(meta))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: __metadata__ is not an object", name);
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value))
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: __metadata__ value of '%s' is not a string", name, key);
    }
    return SDLK_OK;
}

static sdlk_status parse_entry(const char *key, json_t *info, const char *name, st_entry *e,
                               sdlk_error *err)
{
    memset(e, 0, sizeof *e);
    e->name = key;
    if (!json_is_object(info))
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: tensor '%s': entry is not an object",
                              name, key);
    json_t *dtype = json_object_get(info, "dtype");
    json_t *shape = json_object_get(info, "shape");
    json_t *offsets = json_object_get(info, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offsets))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: tensor '%s': needs string \"dtype\", array \"shape\" and "
                              "array \"data_offsets\"",
                              name, key);
    const char *dtype_text = json_string_value(dtype);
    size_t d = 0, ndt = sizeof dtype_names / sizeof dtype_names[0];
    while (d < ndt && strcmp(dtype_names[d].name, dtype_text) != 0)
        d++;
    if (d == ndt)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s: tensor '%s': dtype '%s' is not "
                              "supported", name, key, dtype_text);
    e->dtype = dtype_names[d].dtype;
    if (json_array_size(shape) > SDLK_MAX_DIMS)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s: tensor '%s': %zu dimensions (at most %d supported)", name, key,
                              json_array_size(shape), SDLK_MAX_DIMS);
    e->ndim = (int)json_array_size(shape);
    for (int i = 0; i < e->ndim; i++) {
        e->shape[i] = json_uint(json_array_get(shape, (size_t)i));
        if (e->shape[i] < 0)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: tensor '%s': shape holds something other than a "
                                  "non-negative integer",
                                  name, key);
    }
    int64_t begin = json_array_size(offsets) == 2 ? json_uint(json_array_get(offsets, 0)) : -1;
    int64_t end = json_array_size(offsets) == 2 ? json_uint(json_array_get(offsets, 1)) : -1;
    if (begin < 0 || end < begin)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: tensor '%s': data_offsets must be [begin, end] with 0 <= "
                              "begin <= end",
                              name, key);
    e->begin = (uint64_t)begin;
    e->end = (uint64_t)end;
    uint64_t numel;
    sdlk_status st = sdlk_shape_numel(e->ndim, e->shape, e->dtype, &numel, err);
    if (st) {
        sdlk_error_prefix(err, "%s: tensor '%s'", name, key);
        return st;
    }
    uint64_t nbytes = numel * sdlk_dtype_size(e->dtype);
    if (nbytes != e->end - e->begin) {
        char shape_text[200];
        sdlk_shape_format(e->ndim, e->shape, shape_text, sizeof shape_text);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: tensor '%s': %s %s needs %llu bytes, data_offsets [%llu, "
                              "%llu] span %llu",
                              name, key, dtype_text, shape_text, (unsigned long long)nbytes,
                              (unsigned long long)e->begin, (unsigned long long)e->end,
                              (unsigned long long)(e->end - e->begin));
    }
    return SDLK_OK;
}

/* Parse and validate a header; entries come out sorted by data offset (file order). */
static sdlk_status header_parse(const char *json, size_t len, const char *name, st_header *h,
                                sdlk_error *err)
{
    memset(h, 0, sizeof *h);
    json_error_t jerr;
    h->root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!h->root)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: header is not valid JSON: %s (byte %d)",
                              name, jerr.text, jerr.position);
    if (!json_is_object(h->root)) {
        header_free(h);
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: header is not a JSON object", name);
    }
    size_t n = json_object_size(h->root);
    h->entries = calloc(n ? n : 1, sizeof *h->entries);
    if (!h->entries) {
        header_free(h);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    }
    const char *key;
    json_t *value;
    size_t position = 0;
    sdlk_status st = SDLK_OK;
    json_object_foreach(h->root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((st = parse_metadata(value, name, err)))
                break;
            h->metadata = json_is_object(value) ? value : NULL;
            continue;
        }
        if ((st = parse_entry(key, value, name, &h->entries[h->count], err)))
            break;
        h->entries[h->count++].position = position++;
    }
    if (st) {
        header_free(h);
        return st;
    }
    qsort(h->entries, h->count, sizeof *h->entries, compare_entries);
    /* The byte ranges must tile [0, data_size) exactly: no gap could hide data, no
     * overlap could alias two tensors. */
    uint64_t cursor = 0;
    for (size_t i = 0; i < h->count; i++) {
        if (h->entries[i].begin != cursor) {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: tensor '%s' starts at data offset %llu, expected %llu (%s)",
                                name, h->entries[i].name,
                                (unsigned long long)h->entries[i].begin,
                                (unsigned long long)cursor,
                                h->entries[i].begin > cursor ? "gap" : "overlap");
            header_free(h);
            return st;
        }
        cursor = h->entries[i].end;
    }
    h->data_size = cursor;
    return SDLK_OK;
}

sdlk_status sdlk_safetensors_header_data_size(const char *json, size_t len, const char *name,
                                              uint64_t *data_size, sdlk_error *err)
{
    st_header h;
    sdlk_status st = header_parse(json, len, name, &h, err);
    if (st)
        return st;
    *data_size = h.data_size;
    header_free(&h);
    return SDLK_OK;
}

static sdlk_status build_set(const st_header *h, sdlk_storage *storage, size_t data_offset,
                             const char *name, sdlk_tensor_set *set, sdlk_error *err)
{
    sdlk_status st;
    if (h->metadata) {
        const char *key;
        json_t *value;
        json_object_foreach(h->metadata, key, value) {
            if ((st = sdlk_tensor_set_meta_set(set, key, json_string_value(value), err)))
                return st;
        }
    }
    for (size_t i = 0; i < h->count; i++) {
        const st_entry *e = &h->entries[i];
        sdlk_tensor t;
        st = sdlk_io_tensor_from_bytes(storage, data_offset + (size_t)e->begin, e->dtype, e->ndim,
                                       e->shape, !sdlk_host_is_little_endian(), &t, err);
        /* JSON_REJECT_DUPLICATES made the names unique */
        if (!st && (st = sdlk_tensor_set_add(set, e->name, &t, err)))
            sdlk_tensor_free(&t);
        if (st) {
            sdlk_error_prefix(err, "%s", name);
            return st;
        }
    }
    return SDLK_OK;
}

/* exact: the data buffer must end where the input ends (a file), else a prefix. */
static sdlk_status parse_common(sdlk_storage *storage, size_t offset, size_t size,
                                const char *name, int exact, sdlk_tensor_set *out, size_t *used,
                                sdlk_error *err)
{
    sdlk_tensor_set_init(out);
    if (offset > sdlk_storage_size(storage) || size > sdlk_storage_size(storage) - offset)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: range outside its storage", name);
    const uint8_t *bytes = (const uint8_t *)sdlk_storage_data(storage) + offset;
    if (size < 8)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: truncated: %zu bytes, a safetensors file starts with an "
                              "8-byte header length",
                              name, size);
    uint64_t header_len = sdlk_io_le64(bytes);
    if (header_len > SDLK_SAFETENSORS_MAX_HEADER)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: header length %llu exceeds the 100 MB limit (not a "
                              "safetensors file?)",
                              name, (unsigned long long)header_len);
    if (header_len > size - 8)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: truncated: header length %llu, only %zu bytes follow", name,
                              (unsigned long long)header_len, size - 8);
    st_header h;
    sdlk_status st = header_parse((const char *)bytes + 8, (size_t)header_len, name, &h, err);
    if (st)
        return st;
    size_t available = size - 8 - (size_t)header_len;
    if (h.data_size > available || (exact && h.data_size != available)) {
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: header describes %llu bytes of data, file has %zu%s", name,
                            (unsigned long long)h.data_size, available,
                            h.data_size > available ? " (truncated)" : "");
        header_free(&h);
        return st;
    }
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    st = build_set(&h, storage, offset + 8 + (size_t)header_len, name, &set, err);
    if (st)
        sdlk_tensor_set_free(&set);
    else {
        *out = set;
        if (used)
            *used = 8 + (size_t)header_len + (size_t)h.data_size;
    }
    header_free(&h);
    return st;
}

sdlk_status sdlk_safetensors_parse(sdlk_storage *storage, size_t offset, size_t size,
                                   const char *name, sdlk_tensor_set *out, sdlk_error *err)
{
    return parse_common(storage, offset, size, name, 1, out, NULL, err);
}

sdlk_status sdlk_safetensors_parse_prefix(sdlk_storage *storage, size_t offset, size_t size,
                                          const char *name, sdlk_tensor_set *out, size_t *used,
                                          sdlk_error *err)
{
    return parse_common(storage, offset, size, name, 0, out, used, err);
}

/* ---- writing -------------------------------------------------------------------- */

static json_t *tensor_entry(const sdlk_tensor *t, uint64_t begin, uint64_t end)
{
    json_t *shape = json_array();
    for (int i = 0; shape && i < t->ndim; i++)
        if (json_array_append_new(shape, json_integer(t->shape[i])) != 0) {
            json_decref(shape);
            return NULL;
        }
    /* "o" steals the reference to shape, also on failure. */
    return json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype_to_name(t->dtype), "shape", shape,
                     "data_offsets", (json_int_t)begin, (json_int_t)end);
}

/* The JSON header for `set` whose tensors, in order, have the sizes in data. */
static sdlk_status build_header(const sdlk_tensor_set *set, const sdlk_tensor *data,
                                const char *name, char **json_out, sdlk_error *err)
{
    json_t *root = json_object();
    if (!root)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    sdlk_status st = SDLK_OK;
    if (set->meta_count) {
        json_t *meta = json_object();
        for (size_t i = 0; meta && i < set->meta_count; i++)
            if (json_object_set_new(meta, set->meta[i].key, json_string(set->meta[i].value))) {
                st = sdlk_error_set(err, SDLK_ERR_ARG,
                                    "%s: metadata '%s' is not valid UTF-8 text", name,
                                    set->meta[i].key);
                break;
            }
        if (!st && (!meta || json_object_set_new(root, "__metadata__", meta)))
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
        else if (st)
            json_decref(meta);
    }
    uint64_t offset = 0;
    for (size_t i = 0; !st && i < set->count; i++) {
        const char *tname = set->items[i].name;
        if (strcmp(tname, "__metadata__") == 0) {
            st = sdlk_error_set(err, SDLK_ERR_ARG,
                                "%s: a tensor cannot be called __metadata__ in safetensors", name);
            break;
        }
        if (!dtype_to_name(data[i].dtype)) {
            st = sdlk_error_set(err, SDLK_ERR_ARG, "%s: tensor '%s' has an invalid dtype", name,
                                tname);
            break;
        }
        uint64_t nbytes = sdlk_tensor_nbytes(&data[i]);
        json_t *entry = tensor_entry(&data[i], offset, offset + nbytes);
        if (!entry || json_object_set_new(root, tname, entry))
            st = sdlk_error_set(err, SDLK_ERR_ARG,
                                "%s: tensor name '%s' is not valid UTF-8 (or out of memory)",
                                name, tname);
        offset += nbytes;
    }
    if (!st) {
        *json_out = json_dumps(root, JSON_COMPACT);
        if (!*json_out)
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    }
    json_decref(root);
    return st;
}

sdlk_status sdlk_safetensors_write(FILE *fp, const sdlk_tensor_set *set, const char *name,
                                   sdlk_error *err)
{
    sdlk_tensor *data = calloc(set->count ? set->count : 1, sizeof *data);
    if (!data)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    sdlk_status st = SDLK_OK;
    size_t ready = 0;
    for (; ready < set->count && !st; ready++)
        st = sdlk_io_le_contiguous(&set->items[ready].tensor, &data[ready], name, err);
    char *json = NULL;
    if (!st)
        st = build_header(set, data, name, &json, err);
    if (!st) {
        /* Pad with spaces so that the data buffer starts 8-byte aligned, as the reference
         * writer does: readers can then view every dtype in place. */
        size_t len = strlen(json);
        size_t padded = (len + 7) / 8 * 8;
        uint8_t prefix[8];
        sdlk_io_put_le64(prefix, padded);
        static const char spaces[8] = "        ";
        st = sdlk_io_write_all(fp, prefix, 8, name, err);
        if (!st)
            st = sdlk_io_write_all(fp, json, len, name, err);
        if (!st)
            st = sdlk_io_write_all(fp, spaces, padded - len, name, err);
        for (size_t i = 0; !st && i < set->count; i++)
            st = sdlk_io_write_all(fp, data[i].data, (size_t)sdlk_tensor_nbytes(&data[i]), name,
                                   err);
    }
    free(json);
    for (size_t i = 0; i < ready; i++)
        sdlk_tensor_free(&data[i]);
    free(data);
    return st;
}
