#include "core/tensor.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- dtypes ----------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtype_info[SDLK_DTYPE_COUNT] = {
    [SDLK_BOOL] = {"bool", 1}, [SDLK_U8] = {"u8", 1},     [SDLK_I8] = {"i8", 1},
    [SDLK_U16] = {"u16", 2},   [SDLK_I16] = {"i16", 2},   [SDLK_U32] = {"u32", 4},
    [SDLK_I32] = {"i32", 4},   [SDLK_U64] = {"u64", 8},   [SDLK_I64] = {"i64", 8},
    [SDLK_F16] = {"f16", 2},   [SDLK_BF16] = {"bf16", 2}, [SDLK_F32] = {"f32", 4},
    [SDLK_F64] = {"f64", 8},
};

size_t sdlk_dtype_size(sdlk_dtype dtype)
{
    return (unsigned)dtype < SDLK_DTYPE_COUNT ? dtype_info[dtype].size : 0;
}

const char *sdlk_dtype_name(sdlk_dtype dtype)
{
    return (unsigned)dtype < SDLK_DTYPE_COUNT ? dtype_info[dtype].name : "?";
}

int sdlk_dtype_is_float(sdlk_dtype dtype)
{
    return dtype == SDLK_F16 || dtype == SDLK_BF16 || dtype == SDLK_F32 || dtype == SDLK_F64;
}

sdlk_status sdlk_dtype_parse(const char *name, sdlk_dtype *out)
{
    static const struct {
        const char *alias;
        sdlk_dtype dtype;
    } aliases[] = {
        {"bool", SDLK_BOOL},     {"uint8", SDLK_U8},      {"int8", SDLK_I8},
        {"uint16", SDLK_U16},    {"int16", SDLK_I16},     {"uint32", SDLK_U32},
        {"int32", SDLK_I32},     {"uint64", SDLK_U64},    {"int64", SDLK_I64},
        {"float16", SDLK_F16},   {"half", SDLK_F16},      {"bfloat16", SDLK_BF16},
        {"float32", SDLK_F32},   {"float", SDLK_F32},     {"float64", SDLK_F64},
        {"double", SDLK_F64},
    };
    for (int i = 0; i < SDLK_DTYPE_COUNT; i++) {
        if (strcasecmp(name, dtype_info[i].name) == 0) {
            *out = (sdlk_dtype)i;
            return SDLK_OK;
        }
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcasecmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].dtype;
            return SDLK_OK;
        }
    }
    return SDLK_ERR_ARG;
}

/* ---- storage ---------------------------------------------------------------- */

struct sdlk_storage {
    atomic_int refcount;
    void *data;
    size_t size;
    void (*release)(void *ctx);
    void *ctx;
    int owns_heap; /* data was allocated by sdlk_storage_alloc */
};

sdlk_storage *sdlk_storage_alloc(size_t nbytes, sdlk_error *err)
{
    sdlk_storage *s = calloc(1, sizeof *s);
    /* calloc(0) may return NULL; allocate one byte so data is always a valid pointer. */
    void *data = s ? calloc(nbytes ? nbytes : 1, 1) : NULL;
    if (!s || !data) {
        free(s);
        free(data);
        sdlk_error_set(err, SDLK_ERR_NOMEM, "cannot allocate %zu bytes", nbytes);
        return NULL;
    }
    atomic_init(&s->refcount, 1);
    s->data = data;
    s->size = nbytes;
    s->owns_heap = 1;
    return s;
}

sdlk_storage *sdlk_storage_wrap(void *data, size_t nbytes, void (*release)(void *ctx), void *ctx,
                                sdlk_error *err)
{
    sdlk_storage *s = calloc(1, sizeof *s);
    if (!s) {
        sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        return NULL;
    }
    atomic_init(&s->refcount, 1);
    s->data = data;
    s->size = nbytes;
    s->release = release;
    s->ctx = ctx;
    return s;
}

void sdlk_storage_retain(sdlk_storage *storage)
{
    if (storage)
        atomic_fetch_add(&storage->refcount, 1);
}

void sdlk_storage_release(sdlk_storage *storage)
{
    if (!storage || atomic_fetch_sub(&storage->refcount, 1) != 1)
        return;
    if (storage->owns_heap)
        free(storage->data);
    if (storage->release)
        storage->release(storage->ctx);
    free(storage);
}

void *sdlk_storage_data(const sdlk_storage *storage) { return storage->data; }
size_t sdlk_storage_size(const sdlk_storage *storage) { return storage->size; }

/* ---- shapes ----------------------------------------------------------------- */

sdlk_status sdlk_shape_numel(int ndim, const int64_t *shape, sdlk_dtype dtype, uint64_t *numel,
                             sdlk_error *err)
{
    if (ndim < 0 || ndim > SDLK_MAX_DIMS)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%d dimensions (at most %d supported)", ndim,
                              SDLK_MAX_DIMS);
    if ((unsigned)dtype >= SDLK_DTYPE_COUNT)
        return sdlk_error_set(err, SDLK_ERR_ARG, "unknown dtype code %d", (int)dtype);
    /* The product of the non-zero dimensions must fit even when another dimension is 0:
     * strides are computed from them (NumPy refuses such shapes as too big as well). */
    uint64_t n = 1;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return sdlk_error_set(err, SDLK_ERR_ARG, "negative dimension %lld",
                                  (long long)shape[i]);
        uint64_t d = (uint64_t)shape[i];
        if (d == 0) {
            zero = 1;
            continue;
        }
        if (n > SDLK_MAX_TENSOR_BYTES / d)
            return sdlk_error_set(err, SDLK_ERR_OVERFLOW,
                                  "shape's element count overflows (dimension %d = %llu)", i,
                                  (unsigned long long)d);
        n *= d;
    }
    if (n > SDLK_MAX_TENSOR_BYTES / sdlk_dtype_size(dtype))
        return sdlk_error_set(err, SDLK_ERR_OVERFLOW, "tensor of %llu %s elements is too large",
                              (unsigned long long)n, sdlk_dtype_name(dtype));
    if (zero)
        n = 0;
    *numel = n;
    return SDLK_OK;
}

void sdlk_strides_c(int ndim, const int64_t *shape, size_t elem_size, int64_t *strides)
{
    int64_t s = (int64_t)elem_size;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

void sdlk_strides_f(int ndim, const int64_t *shape, size_t elem_size, int64_t *strides)
{
    int64_t s = (int64_t)elem_size;
    for (int i = 0; i < ndim; i++) {
        strides[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

void sdlk_shape_format(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* ---- tensors ---------------------------------------------------------------- */

void sdlk_tensor_init(sdlk_tensor *t) { memset(t, 0, sizeof *t); }

static void set_geometry(sdlk_tensor *t, sdlk_dtype dtype, int ndim, const int64_t *shape)
{
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    sdlk_strides_c(ndim, shape, sdlk_dtype_size(dtype), t->strides);
}

sdlk_status sdlk_tensor_alloc(sdlk_tensor *t, sdlk_dtype dtype, int ndim, const int64_t *shape,
                              sdlk_error *err)
{
    uint64_t numel;
    sdlk_tensor_init(t);
    sdlk_status st = sdlk_shape_numel(ndim, shape, dtype, &numel, err);
    if (st)
        return st;
    sdlk_storage *s = sdlk_storage_alloc((size_t)(numel * sdlk_dtype_size(dtype)), err);
    if (!s)
        return SDLK_ERR_NOMEM;
    set_geometry(t, dtype, ndim, shape);
    t->storage = s;
    t->data = s->data;
    return SDLK_OK;
}

sdlk_status sdlk_tensor_borrow(sdlk_tensor *t, sdlk_dtype dtype, int ndim, const int64_t *shape,
                               void *data, sdlk_error *err)
{
    uint64_t numel;
    sdlk_tensor_init(t);
    sdlk_status st = sdlk_shape_numel(ndim, shape, dtype, &numel, err);
    if (st)
        return st;
    set_geometry(t, dtype, ndim, shape);
    t->data = data;
    return SDLK_OK;
}

sdlk_status sdlk_tensor_from_storage(sdlk_tensor *t, sdlk_storage *storage, size_t offset,
                                     sdlk_dtype dtype, int ndim, const int64_t *shape,
                                     sdlk_error *err)
{
    uint64_t numel;
    sdlk_tensor_init(t);
    sdlk_status st = sdlk_shape_numel(ndim, shape, dtype, &numel, err);
    if (st)
        return st;
    uint64_t nbytes = numel * sdlk_dtype_size(dtype);
    if (offset > storage->size || nbytes > storage->size - offset)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "tensor of %llu bytes at offset %zu does not fit in %zu bytes",
                              (unsigned long long)nbytes, offset, storage->size);
    set_geometry(t, dtype, ndim, shape);
    t->data = (uint8_t *)storage->data + offset;
    t->storage = storage;
    sdlk_storage_retain(storage);
    return SDLK_OK;
}

void sdlk_tensor_free(sdlk_tensor *t)
{
    if (!t)
        return;
    sdlk_storage_release(t->storage);
    sdlk_tensor_init(t);
}

void sdlk_tensor_share(sdlk_tensor *dst, const sdlk_tensor *src)
{
    *dst = *src;
    sdlk_storage_retain(dst->storage);
}

uint64_t sdlk_tensor_numel(const sdlk_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (uint64_t)t->shape[i];
    return n;
}

uint64_t sdlk_tensor_nbytes(const sdlk_tensor *t)
{
    return sdlk_tensor_numel(t) * sdlk_dtype_size(t->dtype);
}

int sdlk_tensor_is_contiguous(const sdlk_tensor *t)
{
    int64_t expect = (int64_t)sdlk_dtype_size(t->dtype);
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 0)
            return 1;
        if (t->shape[i] != 1 && t->strides[i] != expect)
            return 0;
        expect *= t->shape[i];
    }
    return 1;
}

void *sdlk_tensor_at(const sdlk_tensor *t, const int64_t *index)
{
    uint8_t *p = t->data;
    for (int i = 0; i < t->ndim; i++)
        p += index[i] * t->strides[i];
    return p;
}

/* ---- element access ----------------------------------------------------------- */

double sdlk_load_as_double(const void *p, sdlk_dtype dtype)
{
    switch (dtype) {
    case SDLK_BOOL: return *(const uint8_t *)p != 0;
    case SDLK_U8: return *(const uint8_t *)p;
    case SDLK_I8: return *(const int8_t *)p;
    case SDLK_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case SDLK_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case SDLK_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case SDLK_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case SDLK_U64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    case SDLK_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case SDLK_F16: { uint16_t v; memcpy(&v, p, 2); return sdlk_f16_to_f32(v); }
    case SDLK_BF16: { uint16_t v; memcpy(&v, p, 2); return sdlk_bf16_to_f32(v); }
    case SDLK_F32: { float v; memcpy(&v, p, 4); return v; }
    case SDLK_F64: { double v; memcpy(&v, p, 8); return v; }
    default: return 0.0;
    }
}

/* Round to nearest (ties away from zero, as C's round()) and saturate into [lo, hi]. */
static double saturate(double v, double lo, double hi)
{
    if (isnan(v))
        return 0.0;
    v = round(v);
    return v < lo ? lo : v > hi ? hi : v;
}

void sdlk_store_from_double(void *p, sdlk_dtype dtype, double v)
{
    switch (dtype) {
    case SDLK_BOOL: *(uint8_t *)p = v != 0.0; break;
    case SDLK_U8: *(uint8_t *)p = (uint8_t)saturate(v, 0, UINT8_MAX); break;
    case SDLK_I8: *(int8_t *)p = (int8_t)saturate(v, INT8_MIN, INT8_MAX); break;
    case SDLK_U16: { uint16_t x = (uint16_t)saturate(v, 0, UINT16_MAX); memcpy(p, &x, 2); break; }
    case SDLK_I16: { int16_t x = (int16_t)saturate(v, INT16_MIN, INT16_MAX); memcpy(p, &x, 2); break; }
    case SDLK_U32: { uint32_t x = (uint32_t)saturate(v, 0, UINT32_MAX); memcpy(p, &x, 4); break; }
    case SDLK_I32: { int32_t x = (int32_t)saturate(v, INT32_MIN, INT32_MAX); memcpy(p, &x, 4); break; }
    case SDLK_U64: {
        /* 2^64 is exactly representable; UINT64_MAX is not. */
        double r = saturate(v, 0, 18446744073709551616.0);
        uint64_t x = r >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)r;
        memcpy(p, &x, 8);
        break;
    }
    case SDLK_I64: {
        double r = saturate(v, -9223372036854775808.0, 9223372036854775808.0);
        int64_t x = r >= 9223372036854775808.0 ? INT64_MAX : (int64_t)r;
        memcpy(p, &x, 8);
        break;
    }
    case SDLK_F16: { uint16_t x = sdlk_f32_to_f16((float)v); memcpy(p, &x, 2); break; }
    case SDLK_BF16: { uint16_t x = sdlk_f32_to_bf16((float)v); memcpy(p, &x, 2); break; }
    case SDLK_F32: { float x = (float)v; memcpy(p, &x, 4); break; }
    case SDLK_F64: memcpy(p, &v, 8); break;
    default: break;
    }
}

double sdlk_tensor_get(const sdlk_tensor *t, const int64_t *index)
{
    return sdlk_load_as_double(sdlk_tensor_at(t, index), t->dtype);
}

/* Visit every element in C order, calling fn with its address. Iterative odometer so
 * that any ndim and any strides work without recursion. */
typedef void (*elem_fn)(void *ctx, const uint8_t *elem);

static void for_each_element(const sdlk_tensor *t, elem_fn fn, void *ctx)
{
    if (sdlk_tensor_numel(t) == 0)
        return;
    int64_t index[SDLK_MAX_DIMS] = {0};
    const uint8_t *p = t->data;
    if (t->ndim == 0) {
        fn(ctx, p);
        return;
    }
    int last = t->ndim - 1;
    for (;;) {
        const uint8_t *row = p;
        for (int64_t i = 0; i < t->shape[last]; i++, row += t->strides[last])
            fn(ctx, row);
        int d = last - 1;
        for (; d >= 0; d--) {
            p += t->strides[d];
            if (++index[d] < t->shape[d])
                break;
            p -= t->strides[d] * t->shape[d];
            index[d] = 0;
        }
        if (d < 0)
            return;
    }
}

struct copy_ctx {
    sdlk_dtype src_dtype, dst_dtype;
    size_t elem_size;
    uint8_t *out;
};

static void copy_same(void *vctx, const uint8_t *elem)
{
    struct copy_ctx *c = vctx;
    memcpy(c->out, elem, c->elem_size);
    c->out += c->elem_size;
}

static void copy_convert(void *vctx, const uint8_t *elem)
{
    struct copy_ctx *c = vctx;
    sdlk_store_from_double(c->out, c->dst_dtype, sdlk_load_as_double(elem, c->src_dtype));
    c->out += sdlk_dtype_size(c->dst_dtype);
}

sdlk_status sdlk_tensor_convert(sdlk_tensor *dst, const sdlk_tensor *src, sdlk_dtype dtype,
                                sdlk_error *err)
{
    sdlk_status st = sdlk_tensor_alloc(dst, dtype, src->ndim, src->shape, err);
    if (st)
        return st;
    if (dtype == src->dtype && sdlk_tensor_is_contiguous(src)) {
        if (sdlk_tensor_nbytes(src))
            memcpy(dst->data, src->data, (size_t)sdlk_tensor_nbytes(src));
        return SDLK_OK;
    }
    struct copy_ctx c = {src->dtype, dtype, sdlk_dtype_size(src->dtype), dst->data};
    for_each_element(src, dtype == src->dtype ? copy_same : copy_convert, &c);
    return SDLK_OK;
}

sdlk_status sdlk_tensor_contiguous(sdlk_tensor *dst, const sdlk_tensor *src, sdlk_error *err)
{
    if (sdlk_tensor_is_contiguous(src)) {
        sdlk_tensor_share(dst, src);
        return SDLK_OK;
    }
    return sdlk_tensor_convert(dst, src, src->dtype, err);
}

sdlk_status sdlk_tensor_reshape(sdlk_tensor *dst, const sdlk_tensor *src, int ndim,
                                const int64_t *shape, sdlk_error *err)
{
    uint64_t numel;
    sdlk_status st = sdlk_shape_numel(ndim, shape, src->dtype, &numel, err);
    if (st)
        return st;
    if (!sdlk_tensor_is_contiguous(src))
        return sdlk_error_set(err, SDLK_ERR_ARG, "cannot reshape a non-contiguous tensor");
    if (numel != sdlk_tensor_numel(src))
        return sdlk_error_set(err, SDLK_ERR_ARG, "reshape from %llu to %llu elements",
                              (unsigned long long)sdlk_tensor_numel(src),
                              (unsigned long long)numel);
    sdlk_tensor_share(dst, src);
    set_geometry(dst, src->dtype, ndim, shape);
    return SDLK_OK;
}

struct stats_ctx {
    sdlk_dtype dtype;
    sdlk_tensor_stats *s;
    double m2;
};

static void stats_visit(void *vctx, const uint8_t *elem)
{
    struct stats_ctx *c = vctx;
    double v = sdlk_load_as_double(elem, c->dtype);
    sdlk_tensor_stats *s = c->s;
    if (isnan(v)) {
        s->nan_count++;
        return;
    }
    s->count++;
    if (s->count == 1 || v < s->min)
        s->min = v;
    if (s->count == 1 || v > s->max)
        s->max = v;
    double delta = v - s->mean;
    s->mean += delta / (double)s->count;
    c->m2 += delta * (v - s->mean);
}

void sdlk_tensor_stats_compute(const sdlk_tensor *t, sdlk_tensor_stats *out)
{
    memset(out, 0, sizeof *out);
    struct stats_ctx c = {t->dtype, out, 0.0};
    for_each_element(t, stats_visit, &c);
    out->std = out->count > 1 ? sqrt(c.m2 / (double)out->count) : 0.0;
}

/* ---- half precision ---------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sdlk_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) /* inf / NaN */
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) { /* zero / subnormal: mant * 2^-24 */
        float v = (float)mant * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t sdlk_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or NaN (keep NaN quiet) */
        return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0);
    if (abs >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00;
    if (abs < 0x38800000u) { /* below 2^-14: subnormal half, round to nearest even */
        float v = bits_f32(abs) * 16777216.0f; /* value in units of 2^-24 */
        float r = nearbyintf(v);               /* default rounding mode: ties to even */
        return sign | (uint16_t)r;
    }
    uint32_t mant = abs & 0x7fffff;
    uint32_t exp = (abs >> 23) - 112;
    uint32_t half = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent, which is the right answer */
    return sign | (uint16_t)half;
}

float sdlk_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t sdlk_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void sdlk_byteswap(void *data, uint64_t count, size_t elem_size)
{
    uint8_t *p = data;
    if (elem_size < 2)
        return;
    for (uint64_t i = 0; i < count; i++, p += elem_size)
        for (size_t a = 0, b = elem_size - 1; a < b; a++, b--) {
            uint8_t tmp = p[a];
            p[a] = p[b];
            p[b] = tmp;
        }
}

int sdlk_host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}
