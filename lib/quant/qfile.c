#include "quant/qfile.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/npy.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "quant/qblock.h"

/* Entry suffixes, in the order they are written. */
static const char *const entry_suffixes[] = {".codes", ".scale", ".zero_point", ".planes",
                                             ".q4_0",  ".q8_0"};
enum { ENTRY_SUFFIX_COUNT = sizeof entry_suffixes / sizeof entry_suffixes[0] };

/* ---- names ------------------------------------------------------------------------------ */

static const char *const format_names[] = {"sdl", "q4_0", "q8_0"};

const char *sdlk_qformat_name(sdlk_qformat format)
{
    return (unsigned)format < 3 ? format_names[format] : "?";
}

sdlk_status sdlk_qformat_parse(const char *name, sdlk_qformat *out, sdlk_error *err)
{
    for (int f = 0; f < 3; f++)
        if (strcmp(name, format_names[f]) == 0) {
            *out = (sdlk_qformat)f;
            return SDLK_OK;
        }
    return sdlk_error_set(err, SDLK_ERR_ARG, "unknown quantized format '%s' (sdl, q4_0, q8_0)",
                          name);
}

static size_t block_bytes(sdlk_qformat format)
{
    return format == SDLK_QFORMAT_Q4_0 ? sizeof(sdlk_block_q4_0) : sizeof(sdlk_block_q8_0);
}

const char *sdlk_qfile_meta_name(const char *key)
{
    size_t n = strlen(SDLK_QFILE_META_PREFIX);
    return strncmp(key, SDLK_QFILE_META_PREFIX, n) == 0 && key[n] ? key + n : NULL;
}

size_t sdlk_qfile_count(const sdlk_tensor_set *set)
{
    size_t count = 0;
    for (size_t i = 0; i < set->meta_count; i++)
        count += sdlk_qfile_meta_name(set->meta[i].key) != NULL;
    return count;
}

static const char *meta_of(const sdlk_tensor_set *set, const char *name, char *key, size_t size)
{
    snprintf(key, size, "%s%s", SDLK_QFILE_META_PREFIX, name);
    return sdlk_tensor_set_meta_get(set, key);
}

int sdlk_qfile_owner(const sdlk_tensor_set *set, const char *tensor_name, char *buf, size_t size)
{
    const char *dot = strrchr(tensor_name, '.');
    if (!dot || dot == tensor_name || (size_t)(dot - tensor_name) >= size)
        return 0;
    for (int i = 0; i < ENTRY_SUFFIX_COUNT; i++)
        if (strcmp(dot, entry_suffixes[i]) == 0) {
            memcpy(buf, tensor_name, (size_t)(dot - tensor_name));
            buf[dot - tensor_name] = '\0';
            char key[1024];
            if (strlen(buf) + strlen(SDLK_QFILE_META_PREFIX) >= sizeof key)
                return 0;
            return meta_of(set, buf, key, sizeof key) != NULL;
        }
    return 0;
}

sdlk_status sdlk_qfile_pick(const sdlk_tensor_set *set, const char *requested, const char *file,
                            const char **name, sdlk_error *err)
{
    *name = NULL;
    size_t count = 0;
    char listed[256] = "";
    for (size_t i = 0; i < set->meta_count; i++) {
        const char *n = sdlk_qfile_meta_name(set->meta[i].key);
        if (!n)
            continue;
        if (requested && strcmp(n, requested) == 0) {
            *name = n;
            return SDLK_OK;
        }
        if (!requested && count == 0)
            *name = n;
        if (strlen(listed) + strlen(n) + 8 < sizeof listed)
            snprintf(listed + strlen(listed), sizeof listed - strlen(listed), "%s'%s'",
                     count ? ", " : "", n);
        count++;
    }
    if (requested)
        return sdlk_error_set(err, SDLK_ERR_NOTFOUND,
                              "%s: no quantized tensor '%s' (it holds %s%s)", file, requested,
                              count ? "" : "none", listed);
    if (count == 0)
        return sdlk_error_set(err, SDLK_ERR_NOTFOUND,
                              "%s: no quantized tensors (no '%s*' metadata)", file,
                              SDLK_QFILE_META_PREFIX);
    if (count > 1) {
        *name = NULL;
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s holds %zu quantized tensors (%s); name the one to use", file,
                              count, listed);
    }
    return SDLK_OK;
}

/* ---- geometry ----------------------------------------------------------------------------- */

/* K (the last dimension, 1 for a 0-d tensor) and the rows (product of the others). */
static void matrix_dims(int ndim, const int64_t *shape, int64_t *rows, int64_t *k)
{
    *k = ndim ? shape[ndim - 1] : 1;
    int64_t r = 1;
    for (int d = 0; d + 1 < ndim; d++)
        r *= shape[d];
    *rows = r;
}

/* The scales' shape of quant.h for params with a non-negative axis. */
static void scales_shape(const sdlk_quant_params *p, int ndim, const int64_t *shape, int *sndim,
                         int64_t *sshape)
{
    if (p->granularity == SDLK_QUANT_PER_TENSOR) {
        *sndim = 1;
        sshape[0] = 1;
    } else if (p->granularity == SDLK_QUANT_PER_CHANNEL) {
        *sndim = 1;
        sshape[0] = shape[p->axis];
    } else {
        *sndim = ndim;
        memcpy(sshape, shape, sizeof(int64_t) * (size_t)ndim);
        sshape[p->axis] = shape[p->axis] / p->group_size;
    }
}

static int same_shape(const sdlk_tensor *t, int ndim, const int64_t *shape)
{
    return t->ndim == ndim && memcmp(t->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0;
}

/* ---- metadata ------------------------------------------------------------------------------ */

sdlk_status sdlk_qtensor_info_format(const sdlk_qtensor_info *info, char **json, sdlk_error *err)
{
    json_t *o = json_object();
    json_t *shape = json_array();
    if (!o || !shape) {
        json_decref(o);
        json_decref(shape);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    for (int d = 0; d < info->ndim; d++)
        json_array_append_new(shape, json_integer(info->shape[d]));
    json_object_set_new(o, "layout", json_integer(SDLK_QFILE_LAYOUT_VERSION));
    json_object_set_new(o, "format", json_string(sdlk_qformat_name(info->format)));
    if (info->format == SDLK_QFORMAT_SDL) {
        const sdlk_quant_params *p = &info->params;
        json_object_set_new(o, "bits", json_integer(p->bits));
        json_object_set_new(o, "scheme", json_string(sdlk_quant_scheme_name(p->scheme)));
        json_object_set_new(o, "encoding", json_string(sdlk_qencoding_name(info->encoding)));
        json_object_set_new(o, "granularity",
                            json_string(sdlk_quant_granularity_name(p->granularity)));
        json_object_set_new(o, "axis", json_integer(p->axis));
        json_object_set_new(o, "group", json_integer(p->group_size));
    }
    json_object_set_new(o, "dtype", json_string(sdlk_dtype_name(info->dtype)));
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "rows", json_integer(info->rows));
    json_object_set_new(o, "k", json_integer(info->k));
    if (info->format == SDLK_QFORMAT_SDL)
        json_object_set_new(o, "k_words", json_integer(info->k_words));
    *json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return *json ? SDLK_OK : sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
}

static sdlk_status meta_int(const json_t *o, const char *key, const char *where, int64_t min,
                            int64_t max, int64_t *out, sdlk_error *err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata has no integer \"%s\"", where, key);
    int64_t x = (int64_t)json_integer_value(v);
    if (x < min || x > max)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata \"%s\" is %lld, outside %lld..%lld",
                              where, key, (long long)x, (long long)min, (long long)max);
    *out = x;
    return SDLK_OK;
}

static sdlk_status meta_str(const json_t *o, const char *key, const char *where, const char **out,
                            sdlk_error *err)
{
    *out = json_string_value(json_object_get(o, key));
    return *out ? SDLK_OK
                : sdlk_error_set(err, SDLK_ERR_FORMAT,
                                 "%s: quantization metadata has no string \"%s\"", where, key);
}

/* A parser's SDLK_ERR_ARG ("unknown scheme 'x'") as a format error of the metadata. */
static sdlk_status meta_fault(sdlk_status st, const sdlk_error *inner, const char *where,
                              sdlk_error *err)
{
    if (st == SDLK_OK)
        return SDLK_OK;
    return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: bad quantization metadata: %s", where,
                          inner->msg);
}

static sdlk_status parse_info_object(const json_t *o, const char *where, sdlk_qtensor_info *out,
                                     sdlk_error *err)
{
    sdlk_error inner = {0};
    int64_t v;
    const char *s;
    sdlk_status st;
    if ((st = meta_int(o, "layout", where, 0, INT64_MAX, &v, err)))
        return st;
    if (v != SDLK_QFILE_LAYOUT_VERSION)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization layout %lld is not one this sdl reads (%d)", where,
                              (long long)v, SDLK_QFILE_LAYOUT_VERSION);
    if ((st = meta_str(o, "format", where, &s, err)) ||
        (st = meta_fault(sdlk_qformat_parse(s, &out->format, &inner), &inner, where, err)))
        return st;
    if ((st = meta_str(o, "dtype", where, &s, err)))
        return st;
    if (sdlk_dtype_parse(s, &out->dtype) != SDLK_OK || !sdlk_dtype_is_float(out->dtype))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata \"dtype\" '%s' is not a float dtype",
                              where, s);
    const json_t *shape = json_object_get(o, "shape");
    if (!json_is_array(shape) || json_array_size(shape) > SDLK_MAX_DIMS)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata \"shape\" is not an array of at most "
                              "%d dimensions",
                              where, SDLK_MAX_DIMS);
    out->ndim = (int)json_array_size(shape);
    for (int d = 0; d < out->ndim; d++) {
        const json_t *dim = json_array_get(shape, (size_t)d);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: quantization metadata \"shape\"[%d] is not a size", where,
                                  d);
        out->shape[d] = (int64_t)json_integer_value(dim);
    }
    uint64_t numel;
    if (sdlk_shape_numel(out->ndim, out->shape, SDLK_F32, &numel, &inner))
        return meta_fault(SDLK_ERR_FORMAT, &inner, where, err);
    int64_t rows, k;
    matrix_dims(out->ndim, out->shape, &rows, &k);
    if ((st = meta_int(o, "rows", where, 0, INT64_MAX, &out->rows, err)) ||
        (st = meta_int(o, "k", where, 0, INT64_MAX, &out->k, err)))
        return st;
    if (out->rows != rows || out->k != k)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata says %lld rows of %lld, but its shape "
                              "has %lld rows of %lld",
                              where, (long long)out->rows, (long long)out->k, (long long)rows,
                              (long long)k);
    if (out->format != SDLK_QFORMAT_SDL) {
        if (out->ndim == 0 || k % SDLK_QBLOCK_SIZE != 0)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: %s metadata has rows of %lld values, not a multiple of %d",
                                  where, sdlk_qformat_name(out->format), (long long)k,
                                  SDLK_QBLOCK_SIZE);
        return SDLK_OK;
    }
    sdlk_quant_params *p = &out->params;
    if ((st = meta_int(o, "bits", where, 1, 8, &v, err)))
        return st;
    p->bits = (int)v;
    if ((st = meta_str(o, "scheme", where, &s, err)) ||
        (st = meta_fault(sdlk_quant_scheme_parse(s, &p->scheme, &inner), &inner, where, err)) ||
        (st = meta_str(o, "encoding", where, &s, err)) ||
        (st = meta_fault(sdlk_qencoding_parse(s, &out->encoding, &inner), &inner, where, err)) ||
        (st = meta_str(o, "granularity", where, &s, err)) ||
        (st = meta_fault(sdlk_quant_granularity_parse(s, &p->granularity, &inner), &inner, where,
                         err)))
        return st;
    if (out->encoding != sdlk_quant_scheme_encoding(p->scheme))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata pairs the %s scheme with %s codes", where,
                              sdlk_quant_scheme_name(p->scheme),
                              sdlk_qencoding_name(out->encoding));
    if ((st = meta_int(o, "axis", where, 0, SDLK_MAX_DIMS - 1, &v, err)))
        return st;
    p->axis = (int)v;
    if ((st = meta_int(o, "group", where, 0, INT64_MAX, &p->group_size, err)))
        return st;
    if ((p->granularity == SDLK_QUANT_PER_TENSOR && p->axis != 0) ||
        (p->granularity != SDLK_QUANT_PER_GROUP && p->group_size != 0))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata gives an axis or group to a per-%s "
                              "quantization",
                              where, sdlk_quant_granularity_name(p->granularity));
    if ((st = meta_fault(sdlk_quant_params_check(p, out->ndim, out->shape, &inner), &inner, where,
                         err)))
        return st;
    if ((st = meta_int(o, "k_words", where, 0, INT64_MAX, &out->k_words, err)))
        return st;
    if (out->k_words != sdlk_bitpack_k_words(k))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata \"k_words\" is %lld; rows of %lld codes "
                              "take %lld",
                              where, (long long)out->k_words, (long long)k,
                              (long long)sdlk_bitpack_k_words(k));
    return SDLK_OK;
}

sdlk_status sdlk_qtensor_info_parse(const char *json, const char *where, sdlk_qtensor_info *out,
                                    sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: quantization metadata is not a JSON object%s%s", where,
                              o ? "" : ": ", o ? "" : jerr.text);
    }
    sdlk_status st = parse_info_object(o, where, out, err);
    json_decref(o);
    return st;
}

/* ---- writing --------------------------------------------------------------------------------- */

static sdlk_status add_entry(sdlk_tensor_set *set, const char *name, const char *suffix,
                             sdlk_tensor *t, sdlk_error *err)
{
    size_t len = strlen(name) + strlen(suffix) + 1;
    char *full = malloc(len);
    if (!full)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    snprintf(full, len, "%s%s", name, suffix);
    sdlk_status st = sdlk_tensor_set_add(set, full, t, err);
    free(full);
    return st;
}

static sdlk_status add_meta(sdlk_tensor_set *set, const char *name, const sdlk_qtensor_info *info,
                            sdlk_error *err)
{
    char *json;
    sdlk_status st = sdlk_qtensor_info_format(info, &json, err);
    if (st)
        return st;
    size_t len = strlen(SDLK_QFILE_META_PREFIX) + strlen(name) + 1;
    char *key = malloc(len);
    if (!key) {
        free(json);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    snprintf(key, len, "%s%s", SDLK_QFILE_META_PREFIX, name);
    st = sdlk_tensor_set_meta_set(set, key, json, err);
    free(key);
    free(json);
    return st;
}

/* A contiguous f32 copy of x with NaN and +-Inf replaced by 0. */
static sdlk_status finite_copy(const sdlk_tensor *x, sdlk_tensor *out, sdlk_error *err)
{
    sdlk_status st = sdlk_tensor_convert(out, x, SDLK_F32, err);
    if (st)
        return st;
    float *v = (float *)out->data;
    uint64_t n = sdlk_tensor_numel(out);
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            v[i] = 0.0f;
    return SDLK_OK;
}

static sdlk_status add_sdl(sdlk_tensor_set *set, const char *name, const sdlk_tensor *x,
                           sdlk_qtensor_info *info, const sdlk_quant_params *params,
                           sdlk_pool *pool, sdlk_quant_stats *stats, sdlk_error *err)
{
    sdlk_quantized q;
    memset(&q, 0, sizeof q);
    sdlk_bitpacked packed;
    memset(&packed, 0, sizeof packed);
    sdlk_tensor planes, y;
    sdlk_tensor_init(&planes);
    sdlk_tensor_init(&y);
    sdlk_status st = sdlk_quantize(x, params, pool, &q, err);
    if (st)
        return st;
    info->params = q.params;
    info->params.nan_to_zero = 0;
    if (info->params.granularity == SDLK_QUANT_PER_TENSOR)
        info->params.axis = 0;
    if (info->params.granularity != SDLK_QUANT_PER_GROUP)
        info->params.group_size = 0;
    info->encoding = sdlk_quant_scheme_encoding(q.params.scheme);
    info->k_words = sdlk_bitpack_k_words(info->k);
    int bits = q.params.bits;
    int64_t pshape[3] = {info->rows, bits, info->k_words};
    if (!(st = sdlk_bitpack(q.codes.data, info->rows, info->k, info->k, bits, info->encoding,
                            &packed, err)) &&
        !(st = sdlk_tensor_alloc(&planes, SDLK_U64, 3, pshape, err))) {
        memcpy(planes.data, packed.words, sdlk_tensor_nbytes(&planes));
        if (stats && !(st = sdlk_dequantize(&q, pool, &y, err)))
            st = sdlk_quant_error_stats(x, &y, stats, err);
    }
    if (!st)
        st = add_entry(set, name, ".codes", &q.codes, err);
    if (!st)
        st = add_entry(set, name, ".scale", &q.scales, err);
    if (!st && q.params.scheme == SDLK_QUANT_ASYMMETRIC)
        st = add_entry(set, name, ".zero_point", &q.zero_points, err);
    if (!st)
        st = add_entry(set, name, ".planes", &planes, err);
    sdlk_tensor_free(&y);
    sdlk_tensor_free(&planes);
    sdlk_bitpacked_free(&packed);
    sdlk_quantized_free(&q);
    return st;
}

static sdlk_status add_blocks(sdlk_tensor_set *set, const char *name, const sdlk_tensor *x,
                              const sdlk_qtensor_info *info, sdlk_quant_stats *stats,
                              sdlk_error *err)
{
    if (info->ndim == 0 || info->k % SDLK_QBLOCK_SIZE != 0)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s blocks hold %d consecutive values of a row: the last "
                              "dimension (%lld) must be a multiple of %d",
                              sdlk_qformat_name(info->format), SDLK_QBLOCK_SIZE,
                              (long long)info->k, SDLK_QBLOCK_SIZE);
    sdlk_tensor xf, blocks, y;
    sdlk_tensor_init(&blocks);
    sdlk_tensor_init(&y);
    sdlk_status st = sdlk_tensor_convert(&xf, x, SDLK_F32, err);
    if (st)
        return st;
    int64_t n = (int64_t)sdlk_tensor_numel(&xf);
    int64_t bshape[2] = {info->rows,
                         info->k / SDLK_QBLOCK_SIZE * (int64_t)block_bytes(info->format)};
    const float *xv = (const float *)xf.data;
    int q4 = info->format == SDLK_QFORMAT_Q4_0;
    if (!(st = sdlk_tensor_alloc(&blocks, SDLK_U8, 2, bshape, err)))
        st = q4 ? sdlk_quantize_q4_0(xv, n, (sdlk_block_q4_0 *)(void *)blocks.data, err)
                : sdlk_quantize_q8_0(xv, n, (sdlk_block_q8_0 *)(void *)blocks.data, err);
    if (!st && stats && !(st = sdlk_tensor_alloc(&y, SDLK_F32, info->ndim, info->shape, err))) {
        if (q4)
            sdlk_dequantize_q4_0((const sdlk_block_q4_0 *)(void *)blocks.data, n,
                                 (float *)y.data);
        else
            sdlk_dequantize_q8_0((const sdlk_block_q8_0 *)(void *)blocks.data, n,
                                 (float *)y.data);
        st = sdlk_quant_error_stats(x, &y, stats, err);
    }
    if (!st)
        st = add_entry(set, name, q4 ? ".q4_0" : ".q8_0", &blocks, err);
    sdlk_tensor_free(&y);
    sdlk_tensor_free(&blocks);
    sdlk_tensor_free(&xf);
    return st;
}

sdlk_status sdlk_qtensor_add(sdlk_tensor_set *set, const char *name, const sdlk_tensor *x,
                             sdlk_qformat format, const sdlk_quant_params *params,
                             sdlk_pool *pool, sdlk_quant_stats *stats, sdlk_error *err)
{
    if (!sdlk_dtype_is_float(x->dtype))
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s is %s, not a float tensor", name,
                              sdlk_dtype_name(x->dtype));
    if (format == SDLK_QFORMAT_SDL) {
        sdlk_status st = sdlk_quant_params_check(params, x->ndim, x->shape, err);
        if (st)
            return st;
    }
    sdlk_qtensor_info info;
    memset(&info, 0, sizeof info);
    info.format = format;
    info.dtype = x->dtype;
    info.ndim = x->ndim;
    memcpy(info.shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    matrix_dims(x->ndim, x->shape, &info.rows, &info.k);

    /* With nan_to_zero, work on (and measure against) the input with zeros in place of
     * the non-finite values, for every format alike. */
    sdlk_tensor zeroed;
    sdlk_tensor_init(&zeroed);
    const sdlk_tensor *src = x;
    sdlk_status st = SDLK_OK;
    if (params->nan_to_zero) {
        int64_t first_bad = -1;
        if ((st = sdlk_find_nonfinite(x, &first_bad, err)))
            return st;
        if (first_bad >= 0) {
            if ((st = finite_copy(x, &zeroed, err)))
                return st;
            src = &zeroed;
        }
    }
    if (format == SDLK_QFORMAT_SDL)
        st = add_sdl(set, name, src, &info, params, pool, stats, err);
    else
        st = add_blocks(set, name, src, &info, stats, err);
    if (!st)
        st = add_meta(set, name, &info, err);
    sdlk_tensor_free(&zeroed);
    return st;
}

sdlk_status sdlk_qfile_write(FILE *fp, const sdlk_tensor_set *set, sdlk_tensor_format fmt,
                             const char *display, sdlk_error *err)
{
    if (fmt != SDLK_FORMAT_SAFETENSORS && sdlk_qfile_count(set))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: quantized tensors need the safetensors metadata; write a "
                              ".safetensors file",
                              display);
    if (fmt == SDLK_FORMAT_NPY) {
        if (set->count != 1)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "%s: .npy holds exactly one tensor, not %zu (use .npz or "
                                  ".safetensors)",
                                  display, set->count);
        return sdlk_npy_write(fp, &set->items[0].tensor, display, err);
    }
    if (fmt == SDLK_FORMAT_NPZ)
        return sdlk_npz_write(fp, set, 0, display, err);
    return sdlk_safetensors_write(fp, set, display, err);
}

/* ---- reading --------------------------------------------------------------------------------- */

static const sdlk_tensor *entry(const sdlk_tensor_set *set, const char *name, const char *suffix)
{
    char full[1024];
    if (strlen(name) + strlen(suffix) >= sizeof full)
        return NULL;
    snprintf(full, sizeof full, "%s%s", name, suffix);
    return sdlk_tensor_set_find(set, full);
}

/* The entry NAME<suffix> with the given dtype and shape. */
static sdlk_status need_entry(const sdlk_tensor_set *set, const char *name, const char *suffix,
                              sdlk_dtype dtype, int ndim, const int64_t *shape, const char *where,
                              const sdlk_tensor **out, sdlk_error *err)
{
    const sdlk_tensor *t = entry(set, name, suffix);
    if (!t)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: tensor %s%s is missing", where, name,
                              suffix);
    if (t->dtype != dtype || !same_shape(t, ndim, shape) || !sdlk_tensor_is_contiguous(t)) {
        char want[128], got[128];
        sdlk_shape_format(ndim, shape, want, sizeof want);
        sdlk_shape_format(t->ndim, t->shape, got, sizeof got);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: %s%s is %s %s; the metadata implies %s %s", where, name,
                              suffix, sdlk_dtype_name(t->dtype), got, sdlk_dtype_name(dtype),
                              want);
    }
    *out = t;
    return SDLK_OK;
}

static sdlk_status check_sdl(const sdlk_tensor_set *set, const char *name, const char *where,
                             sdlk_qtensor *out, sdlk_error *err)
{
    const sdlk_qtensor_info *info = &out->info;
    const sdlk_quant_params *p = &info->params;
    int asym = p->scheme == SDLK_QUANT_ASYMMETRIC;
    const sdlk_tensor *codes, *scale, *zero = NULL, *planes;
    int sndim;
    int64_t sshape[SDLK_MAX_DIMS];
    scales_shape(p, info->ndim, info->shape, &sndim, sshape);
    int64_t pshape[3] = {info->rows, p->bits, info->k_words};
    sdlk_status st;
    if ((st = need_entry(set, name, ".codes", asym ? SDLK_U8 : SDLK_I8, info->ndim, info->shape,
                         where, &codes, err)) ||
        (st = need_entry(set, name, ".scale", SDLK_F32, sndim, sshape, where, &scale, err)) ||
        (asym && (st = need_entry(set, name, ".zero_point", SDLK_U8, sndim, sshape, where, &zero,
                                  err))) ||
        (st = need_entry(set, name, ".planes", SDLK_U64, 3, pshape, where, &planes, err)))
        return st;
    if (!asym && entry(set, name, ".zero_point"))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: %s.zero_point exists but the %s scheme has none", where, name,
                              sdlk_quant_scheme_name(p->scheme));
    /* An empty tensor's scales belong to no code (the quantizer leaves them 0). */
    uint64_t ns = sdlk_tensor_numel(codes) ? sdlk_tensor_numel(scale) : 0;
    const float *sv = (const float *)scale->data;
    for (uint64_t i = 0; i < ns; i++)
        if (!(sv[i] > 0.0f && sv[i] < INFINITY))
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: %s.scale[%llu] is %g; scales must be finite and > 0",
                                  where, name, (unsigned long long)i, (double)sv[i]);
    for (uint64_t i = 0; zero && i < ns; i++)
        if (zero->data[i] > (1u << p->bits) - 1)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: %s.zero_point[%llu] is %u, outside 0..%u for %d bits",
                                  where, name, (unsigned long long)i, zero->data[i],
                                  (1u << p->bits) - 1, p->bits);
    /* The planes must be exactly the packing of the codes (which checks their range). */
    sdlk_bitpacked packed;
    sdlk_error inner = {0};
    if (sdlk_bitpack(codes->data, info->rows, info->k, info->k, p->bits, info->encoding, &packed,
                     &inner))
        return sdlk_error_set(err, inner.code == SDLK_ERR_ARG ? SDLK_ERR_FORMAT : inner.code,
                              "%s: %s.codes: %s", where, name, inner.msg);
    size_t row_bytes = (size_t)p->bits * (size_t)info->k_words * 8u;
    for (int64_t r = 0; r < info->rows; r++)
        if (memcmp((const uint8_t *)packed.words + (size_t)r * row_bytes,
                   planes->data + (size_t)r * row_bytes, row_bytes) != 0) {
            sdlk_bitpacked_free(&packed);
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: %s.planes row %lld differs from the packing of %s.codes",
                                  where, name, (long long)r, name);
        }
    sdlk_bitpacked_free(&packed);
    out->q.params = *p;
    sdlk_tensor_share(&out->q.codes, codes);
    sdlk_tensor_share(&out->q.scales, scale);
    if (zero)
        sdlk_tensor_share(&out->q.zero_points, zero);
    sdlk_tensor_share(&out->planes, planes);
    return SDLK_OK;
}

static sdlk_status check_blocks(const sdlk_tensor_set *set, const char *name, const char *where,
                                sdlk_qtensor *out, sdlk_error *err)
{
    const sdlk_qtensor_info *info = &out->info;
    const char *suffix = info->format == SDLK_QFORMAT_Q4_0 ? ".q4_0" : ".q8_0";
    size_t bsize = block_bytes(info->format);
    int64_t bshape[2] = {info->rows, info->k / SDLK_QBLOCK_SIZE * (int64_t)bsize};
    const sdlk_tensor *blocks;
    sdlk_status st =
        need_entry(set, name, suffix, SDLK_U8, 2, bshape, where, &blocks, err);
    if (st)
        return st;
    uint64_t count = sdlk_tensor_nbytes(blocks) / bsize;
    for (uint64_t b = 0; b < count; b++) {
        uint16_t d;
        memcpy(&d, blocks->data + b * bsize, sizeof d);
        if (!isfinite(sdlk_f16_to_f32(d)))
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s: %s%s block %llu has a non-finite scale", where, name,
                                  suffix, (unsigned long long)b);
    }
    sdlk_tensor_share(&out->blocks, blocks);
    return SDLK_OK;
}

sdlk_status sdlk_qtensor_get(const sdlk_tensor_set *set, const char *name, const char *file,
                             sdlk_qtensor *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    sdlk_tensor_init(&out->q.codes);
    sdlk_tensor_init(&out->q.scales);
    sdlk_tensor_init(&out->q.zero_points);
    sdlk_tensor_init(&out->planes);
    sdlk_tensor_init(&out->blocks);
    char key[1024];
    if (strlen(name) + strlen(SDLK_QFILE_META_PREFIX) >= sizeof key)
        return sdlk_error_set(err, SDLK_ERR_NOTFOUND, "%s: tensor name too long", file);
    const char *meta = meta_of(set, name, key, sizeof key);
    if (!meta)
        return sdlk_error_set(err, SDLK_ERR_NOTFOUND,
                              "%s: no quantized tensor '%s' (no metadata key '%s')", file, name,
                              key);
    char where[1024];
    snprintf(where, sizeof where, "%s: %s", file, name);
    sdlk_status st = sdlk_qtensor_info_parse(meta, where, &out->info, err);
    if (!st)
        st = out->info.format == SDLK_QFORMAT_SDL ? check_sdl(set, name, file, out, err)
                                                  : check_blocks(set, name, file, out, err);
    if (st)
        sdlk_qtensor_free(out);
    return st;
}

void sdlk_qtensor_free(sdlk_qtensor *q)
{
    if (!q)
        return;
    sdlk_tensor_free(&q->q.codes);
    sdlk_tensor_free(&q->q.scales);
    sdlk_tensor_free(&q->q.zero_points);
    sdlk_tensor_free(&q->planes);
    sdlk_tensor_free(&q->blocks);
}

/* ---- using ------------------------------------------------------------------------------------ */

static sdlk_status dequantize_blocks(const sdlk_qtensor *q, sdlk_tensor *y, sdlk_error *err)
{
    const sdlk_qtensor_info *info = &q->info;
    sdlk_status st = sdlk_tensor_alloc(y, SDLK_F32, info->ndim, info->shape, err);
    if (st)
        return st;
    int64_t n = (int64_t)sdlk_tensor_numel(y);
    /* A u8 tensor of a file may start at any address; the block structs need 2. */
    const uint8_t *bytes = q->blocks.data;
    uint8_t *aligned = NULL;
    if ((uintptr_t)bytes % _Alignof(sdlk_block_q4_0) != 0) {
        size_t size = sdlk_tensor_nbytes(&q->blocks);
        aligned = malloc(size ? size : 1);
        if (!aligned) {
            sdlk_tensor_free(y);
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %zu bytes", size);
        }
        memcpy(aligned, bytes, size);
        bytes = aligned;
    }
    if (info->format == SDLK_QFORMAT_Q4_0)
        sdlk_dequantize_q4_0((const sdlk_block_q4_0 *)(const void *)bytes, n, (float *)y->data);
    else
        sdlk_dequantize_q8_0((const sdlk_block_q8_0 *)(const void *)bytes, n, (float *)y->data);
    free(aligned);
    return SDLK_OK;
}

sdlk_status sdlk_qtensor_dequantize(const sdlk_qtensor *q, sdlk_pool *pool, sdlk_tensor *out,
                                    sdlk_error *err)
{
    sdlk_tensor_init(out);
    sdlk_tensor y;
    sdlk_status st = q->info.format == SDLK_QFORMAT_SDL ? sdlk_dequantize(&q->q, pool, &y, err)
                                                        : dequantize_blocks(q, &y, err);
    if (st)
        return st;
    if (q->info.dtype == SDLK_F32) {
        *out = y;
        return SDLK_OK;
    }
    st = sdlk_tensor_convert(out, &y, q->info.dtype, err);
    sdlk_tensor_free(&y);
    return st;
}

sdlk_status sdlk_qtensor_packed(const sdlk_qtensor *q, sdlk_bitpacked *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    const sdlk_qtensor_info *info = &q->info;
    if (info->format != SDLK_QFORMAT_SDL)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s blocks have no bit planes; quantize with the sdl format",
                              sdlk_qformat_name(info->format));
    sdlk_status st = sdlk_bitpacked_alloc(out, info->rows, info->k, info->params.bits,
                                          info->encoding, err);
    if (st)
        return st;
    memcpy(out->words, q->planes.data, sdlk_tensor_nbytes(&q->planes));
    return SDLK_OK;
}

sdlk_status sdlk_qtensor_row_params(const sdlk_qtensor *q, int want_scale, float **scale,
                                    int32_t **zero, sdlk_error *err)
{
    *scale = NULL;
    *zero = NULL;
    const sdlk_qtensor_info *info = &q->info;
    const sdlk_quant_params *p = &info->params;
    if (info->format != SDLK_QFORMAT_SDL)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s blocks have no per-row parameters",
                              sdlk_qformat_name(info->format));
    int asym = p->scheme == SDLK_QUANT_ASYMMETRIC;
    if (!want_scale && !asym)
        return SDLK_OK;
    int ndim = info->ndim, last = ndim - 1;
    int sndim;
    int64_t sshape[SDLK_MAX_DIMS];
    scales_shape(p, ndim, info->shape, &sndim, sshape);
    int varies = (p->granularity == SDLK_QUANT_PER_CHANNEL && p->axis == last && info->k > 1) ||
                 (p->granularity == SDLK_QUANT_PER_GROUP && sshape[sndim - 1] > 1);
    if (varies)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "its %s vary along K (per-%s quantization with axis %d of %d-d "
                              "codes), but the GEMM applies one per row: quantize with "
                              "--per-tensor or --per-channel 0%s",
                              asym ? "scales and zero points" : "scales",
                              sdlk_quant_granularity_name(p->granularity), p->axis, ndim,
                              asym ? "" : ", or ask for --out int32");
    int64_t rows = info->rows;
    *scale = malloc(sizeof(float) * (size_t)(rows ? rows : 1));
    if (asym)
        *zero = malloc(sizeof(int32_t) * (size_t)(rows ? rows : 1));
    if (!*scale || (asym && !*zero)) {
        free(*scale);
        free(*zero);
        *scale = NULL;
        *zero = NULL;
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %lld row parameters",
                              (long long)rows);
    }
    /* Element strides of the codes and of the scales (C order). */
    int64_t stride[SDLK_MAX_DIMS], sstride[SDLK_MAX_DIMS];
    int64_t step = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = step;
        step *= info->shape[d];
    }
    step = 1;
    for (int d = sndim - 1; d >= 0; d--) {
        sstride[d] = step;
        step *= sshape[d];
    }
    const float *sv = (const float *)q->q.scales.data;
    const uint8_t *zv = asym ? q->q.zero_points.data : NULL;
    int empty = info->k == 0; /* rows of no codes: nothing to scale */
    for (int64_t r = 0; r < rows; r++) {
        if (empty) {
            (*scale)[r] = 1.0f;
            if (zv)
                (*zero)[r] = 0;
            continue;
        }
        int64_t flat = r * info->k, sidx = 0; /* the row's first element */
        if (p->granularity == SDLK_QUANT_PER_CHANNEL) {
            sidx = flat / stride[p->axis] % info->shape[p->axis];
        } else if (p->granularity == SDLK_QUANT_PER_GROUP) {
            for (int d = 0; d < ndim; d++) {
                int64_t i = flat / stride[d] % info->shape[d];
                sidx += (d == p->axis ? i / p->group_size : i) * sstride[d];
            }
        }
        (*scale)[r] = sv[sidx];
        if (zv)
            (*zero)[r] = zv[sidx];
    }
    if (!want_scale) {
        free(*scale);
        *scale = NULL;
    }
    return SDLK_OK;
}
