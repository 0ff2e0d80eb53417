/* quant.c -- n-bit quantization of float tensors; see quant.h for the contract.
 *
 * Every granularity is described by one view of the contiguous input around the axis,
 * [outer, len, inner], and a map from a flat element index f to its scale index s.
 * The map is walked in "segments": runs of elements whose scale index is either constant
 * (step 0: a whole group or channel run -> vector kernels) or increases by one per element
 * (step 1: scales interleaved with the data, e.g. per-channel on the last axis).
 *
 * Passes: statistics (min/max per scale, per worker, merged), scales, codes. GROUP along
 * the last axis (inner == 1) is fused into one pass per group while it sits in L1: that
 * is the LLM-weights case and the throughput target of the issue.
 */
#include "quant/quant.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "quant/quant_kernels.h"

/* ---- scalar kernels (the portable path and the reference for the AVX2 ones) ---------- */

void sdlk_qrange_scalar(const float *x, int64_t n, sdlk_qrange *r)
{
    float mn = r->min, mx = r->max;
    int bad = 0;
    for (int64_t j = 0; j < n; j++) {
        float v = x[j];
        mn = v < mn ? v : mn; /* a NaN compares false: it never enters the range */
        mx = v > mx ? v : mx;
        bad |= !(fabsf(v) < INFINITY);
    }
    r->min = mn;
    r->max = mx;
    r->nonfinite |= bad;
}

void sdlk_qcodes_scalar(const float *x, int64_t n, float inv_scale, float lo, float hi,
                        int32_t zero_point, uint8_t *out)
{
    for (int64_t j = 0; j < n; j++) {
        float t = x[j] * inv_scale;
        t = t > lo ? t : lo; /* same operand order as max_ps/min_ps: NaN -> lo */
        t = t < hi ? t : hi;
        out[j] = (uint8_t)((int32_t)lrintf(t) + zero_point);
    }
}

void sdlk_qdequant_scalar(const uint8_t *codes, int64_t n, int is_signed, int32_t zero_point,
                          float scale, float *y)
{
    for (int64_t j = 0; j < n; j++) {
        int32_t q = is_signed ? (int32_t)(int8_t)codes[j] : (int32_t)codes[j];
        y[j] = (float)(q - zero_point) * scale;
    }
}

typedef struct kernels {
    sdlk_qrange_fn range;
    sdlk_qcodes_fn codes;
    sdlk_qdequant_fn dequant;
} kernels;

static kernels pick_kernels(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx2"))
        return (kernels){sdlk_qrange_avx2, sdlk_qcodes_avx2, sdlk_qdequant_avx2};
#endif
    return (kernels){sdlk_qrange_scalar, sdlk_qcodes_scalar, sdlk_qdequant_scalar};
}

/* ---- names ---------------------------------------------------------------------------- */

const char *sdlk_quant_scheme_name(sdlk_quant_scheme scheme)
{
    switch (scheme) {
    case SDLK_QUANT_SYMMETRIC: return "symmetric";
    case SDLK_QUANT_ASYMMETRIC: return "asymmetric";
    case SDLK_QUANT_BINARY: return "binary";
    }
    return "?";
}

const char *sdlk_quant_granularity_name(sdlk_quant_granularity granularity)
{
    switch (granularity) {
    case SDLK_QUANT_PER_TENSOR: return "tensor";
    case SDLK_QUANT_PER_CHANNEL: return "channel";
    case SDLK_QUANT_PER_GROUP: return "group";
    }
    return "?";
}

sdlk_status sdlk_quant_scheme_parse(const char *name, sdlk_quant_scheme *out, sdlk_error *err)
{
    for (int s = SDLK_QUANT_SYMMETRIC; s <= SDLK_QUANT_BINARY; s++)
        if (strcmp(name, sdlk_quant_scheme_name((sdlk_quant_scheme)s)) == 0) {
            *out = (sdlk_quant_scheme)s;
            return SDLK_OK;
        }
    return sdlk_error_set(err, SDLK_ERR_ARG,
                          "unknown quantization scheme '%s' (symmetric, asymmetric, binary)",
                          name);
}

sdlk_status sdlk_quant_granularity_parse(const char *name, sdlk_quant_granularity *out,
                                         sdlk_error *err)
{
    for (int g = SDLK_QUANT_PER_TENSOR; g <= SDLK_QUANT_PER_GROUP; g++)
        if (strcmp(name, sdlk_quant_granularity_name((sdlk_quant_granularity)g)) == 0) {
            *out = (sdlk_quant_granularity)g;
            return SDLK_OK;
        }
    return sdlk_error_set(err, SDLK_ERR_ARG,
                          "unknown quantization granularity '%s' (tensor, channel, group)",
                          name);
}

/* ---- parameters and layout -------------------------------------------------------------- */

sdlk_status sdlk_quant_params_check(const sdlk_quant_params *p, int ndim, const int64_t *shape,
                                    sdlk_error *err)
{
    if (p->bits < 1 || p->bits > 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "bits must be 1..8, got %d", p->bits);
    switch (p->scheme) {
    case SDLK_QUANT_SYMMETRIC:
        if (p->bits < 2)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "symmetric quantization needs at least 2 bits (a signed "
                                  "1-bit code is {-1, 0}); use the binary or asymmetric "
                                  "scheme for 1 bit");
        break;
    case SDLK_QUANT_ASYMMETRIC:
        break;
    case SDLK_QUANT_BINARY:
        if (p->bits != 1)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "the binary {-1,+1} scheme has exactly 1 bit, got %d", p->bits);
        break;
    default:
        return sdlk_error_set(err, SDLK_ERR_ARG, "unknown quantization scheme %d", (int)p->scheme);
    }
    if (p->granularity == SDLK_QUANT_PER_TENSOR)
        return SDLK_OK;
    if (p->granularity != SDLK_QUANT_PER_CHANNEL && p->granularity != SDLK_QUANT_PER_GROUP)
        return sdlk_error_set(err, SDLK_ERR_ARG, "unknown granularity %d", (int)p->granularity);
    if (ndim < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "per-%s quantization needs a tensor with at least one axis",
                              sdlk_quant_granularity_name(p->granularity));
    int axis = p->axis < 0 ? p->axis + ndim : p->axis;
    if (axis < 0 || axis >= ndim)
        return sdlk_error_set(err, SDLK_ERR_ARG, "axis %d is out of range for a %d-d tensor",
                              p->axis, ndim);
    if (p->granularity == SDLK_QUANT_PER_GROUP) {
        if (p->group_size < 1)
            return sdlk_error_set(err, SDLK_ERR_ARG, "group size must be >= 1, got %lld",
                                  (long long)p->group_size);
        if (shape[axis] % p->group_size != 0)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "group size %lld does not divide axis %d of length %lld "
                                  "(groups are never padded; choose a divisor)",
                                  (long long)p->group_size, axis, (long long)shape[axis]);
    }
    return SDLK_OK;
}

/* The input seen as [outer, len, inner] around the axis, plus how flat indices map to
 * scale indices. */
typedef struct layout {
    sdlk_quant_granularity gran;
    int64_t numel, outer, len, inner, group; /* group: GROUP only */
    int64_t nscales;
} layout;

static layout make_layout(const sdlk_quant_params *p, int ndim, const int64_t *shape,
                          int64_t numel, int axis)
{
    layout L = {.gran = p->granularity, .numel = numel, .outer = 1, .len = 1, .inner = numel,
                .group = 1, .nscales = 1};
    if (p->granularity == SDLK_QUANT_PER_TENSOR)
        return L;
    L.inner = 1;
    for (int d = 0; d < axis; d++)
        L.outer *= shape[d];
    L.len = shape[axis];
    for (int d = axis + 1; d < ndim; d++)
        L.inner *= shape[d];
    if (p->granularity == SDLK_QUANT_PER_CHANNEL) {
        L.nscales = L.len;
    } else {
        L.group = p->group_size;
        L.nscales = L.outer * (L.len / L.group) * L.inner;
    }
    return L;
}

/* The segment starting at flat index f (< end): its scale index, step (0 or 1), length. */
static void segment_at(const layout *L, int64_t f, int64_t end, int64_t *s0, int *step,
                       int64_t *n)
{
    int64_t stop;
    if (L->gran == SDLK_QUANT_PER_TENSOR) {
        *s0 = 0;
        *step = 0;
        stop = end;
    } else if (L->gran == SDLK_QUANT_PER_CHANNEL) {
        int64_t row = f / L->inner; /* (o, l) */
        int64_t l = row % L->len;
        if (L->inner > 1) {
            *s0 = l;
            *step = 0;
            stop = (row + 1) * L->inner;
        } else {
            *s0 = l;
            *step = 1;
            stop = f - l + L->len;
        }
    } else {
        int64_t row = f / L->inner, i = f % L->inner;
        int64_t o = row / L->len, l = row % L->len;
        int64_t gi = l / L->group;
        int64_t base = (o * (L->len / L->group) + gi) * L->inner;
        if (L->inner > 1) {
            *s0 = base + i;
            *step = 1;
            stop = (row + 1) * L->inner;
        } else {
            *s0 = base;
            *step = 0;
            stop = f - (l % L->group) + L->group;
        }
    }
    *n = (stop < end ? stop : end) - f;
}

/* Scale and zero point of one group from its range (or mean |x| for BINARY), and the
 * clamp limits of x * inv_scale. Shared by every path so they agree bit for bit. */
typedef struct qparam {
    float scale, inv_scale, lo, hi;
    int32_t zero_point;
} qparam;

static int params_from_range(const sdlk_quant_params *p, float mn, float mx, qparam *q)
{
    if (p->scheme == SDLK_QUANT_SYMMETRIC) {
        int32_t qmax = (1 << (p->bits - 1)) - 1;
        float amax = fmaxf(fabsf(mn), fabsf(mx));
        float scale = amax / (float)qmax;
        if (!(scale >= FLT_MIN))
            scale = 1.0f;
        q->scale = scale;
        q->inv_scale = 1.0f / scale;
        q->zero_point = 0;
        q->lo = (float)(-qmax - 1);
        q->hi = (float)qmax;
    } else {
        int32_t qmax = (1 << p->bits) - 1;
        float lo = fminf(mn, 0.0f), hi = fmaxf(mx, 0.0f);
        float scale = (hi - lo) / (float)qmax;
        if (!(scale < INFINITY))
            return -1; /* range wider than FLT_MAX */
        if (!(scale >= FLT_MIN))
            scale = 1.0f;
        float zf = rintf(-lo / scale);
        int32_t zp = (int32_t)(zf < 0 ? 0 : zf > qmax ? qmax : zf);
        q->scale = scale;
        q->inv_scale = 1.0f / scale;
        q->zero_point = zp;
        q->lo = (float)(0 - zp);
        q->hi = (float)(qmax - zp);
    }
    return 0;
}

static void binary_param(double abs_sum, int64_t count, qparam *q)
{
    float scale = count > 0 ? (float)(abs_sum / (double)count) : 0.0f;
    if (!(scale >= FLT_MIN))
        scale = 1.0f;
    q->scale = scale;
    q->inv_scale = 1.0f / scale;
    q->zero_point = 0;
    q->lo = -1.0f;
    q->hi = 1.0f;
}

static void sign_codes(const float *x, int64_t n, uint8_t *out)
{
    for (int64_t j = 0; j < n; j++)
        out[j] = x[j] >= 0.0f || x[j] != x[j] ? (uint8_t)1 : (uint8_t)0xff; /* +1 / -1 */
}

/* ---- the passes --------------------------------------------------------------------- */

typedef struct job {
    const sdlk_quant_params *p;
    const layout *L;
    kernels k;
    const float *x;
    uint8_t *codes;
    float *scales;
    uint8_t *zero_points;
    /* statistics: per worker [nscales] min and max, plus a non-finite flag per worker */
    float *part_min, *part_max;
    int *nonfinite;
    int *range_error; /* per worker: a group's range overflowed */
    /* dequantize */
    const uint8_t *dq_codes;
    float *dq_out;
    int dq_signed;
} job;

enum { ELEMS_PER_CHUNK = 1 << 16 };

/* GROUP along the last axis: everything about one group while it is in L1. */
static void fused_groups(void *ctx, int64_t begin, int64_t end, int worker)
{
    job *J = ctx;
    int64_t g = J->L->group;
    for (int64_t gi = begin; gi < end; gi++) {
        const float *x = J->x + gi * g;
        qparam q;
        if (J->p->scheme == SDLK_QUANT_BINARY) {
            double sum = 0;
            int bad = 0;
            for (int64_t j = 0; j < g; j++) {
                sum += fabsf(x[j]);
                bad |= !(fabsf(x[j]) < INFINITY);
            }
            if (bad) {
                J->nonfinite[worker] = 1;
                continue;
            }
            binary_param(sum, g, &q);
            sign_codes(x, g, J->codes + gi * g);
        } else {
            sdlk_qrange r = {INFINITY, -INFINITY, 0};
            J->k.range(x, g, &r);
            if (r.nonfinite) {
                J->nonfinite[worker] = 1;
                continue;
            }
            if (params_from_range(J->p, r.min, r.max, &q) != 0) {
                J->range_error[worker] = 1;
                continue;
            }
            J->k.codes(x, g, q.inv_scale, q.lo, q.hi, q.zero_point, J->codes + gi * g);
        }
        J->scales[gi] = q.scale;
        if (J->zero_points)
            J->zero_points[gi] = (uint8_t)q.zero_point;
    }
}

static void stats_chunk(void *ctx, int64_t begin, int64_t end, int worker)
{
    job *J = ctx;
    const layout *L = J->L;
    float *mn = J->part_min + (size_t)worker * (size_t)L->nscales;
    float *mx = J->part_max + (size_t)worker * (size_t)L->nscales;
    int64_t f = begin * ELEMS_PER_CHUNK, stop = end * ELEMS_PER_CHUNK;
    if (stop > L->numel)
        stop = L->numel;
    int bad = 0;
    while (f < stop) {
        int64_t s0, n;
        int step;
        segment_at(L, f, stop, &s0, &step, &n);
        const float *x = J->x + f;
        if (step == 0) {
            sdlk_qrange r = {mn[s0], mx[s0], 0};
            J->k.range(x, n, &r);
            mn[s0] = r.min;
            mx[s0] = r.max;
            bad |= r.nonfinite;
        } else {
            for (int64_t j = 0; j < n; j++) {
                float v = x[j];
                mn[s0 + j] = v < mn[s0 + j] ? v : mn[s0 + j];
                mx[s0 + j] = v > mx[s0 + j] ? v : mx[s0 + j];
                bad |= !(fabsf(v) < INFINITY);
            }
        }
        f += n;
    }
    if (bad)
        J->nonfinite[worker] = 1;
}

/* codes for a range of chunks, from the scales already computed (qparams per scale
 * index are recomputed from scale/zero point: cheap, and keeps one source of truth) */
static void codes_chunk(void *ctx, int64_t begin, int64_t end, int worker)
{
    job *J = ctx;
    const layout *L = J->L;
    int64_t f = begin * ELEMS_PER_CHUNK, stop = end * ELEMS_PER_CHUNK;
    if (stop > L->numel)
        stop = L->numel;
    int binary = J->p->scheme == SDLK_QUANT_BINARY;
    int32_t qmin, qmax;
    if (J->p->scheme == SDLK_QUANT_SYMMETRIC) {
        qmax = (1 << (J->p->bits - 1)) - 1;
        qmin = -qmax - 1;
    } else {
        qmin = 0;
        qmax = (1 << J->p->bits) - 1;
    }
    while (f < stop) {
        int64_t s0, n;
        int step;
        segment_at(L, f, stop, &s0, &step, &n);
        const float *x = J->x + f;
        uint8_t *out = J->codes + f;
        if (binary) {
            sign_codes(x, n, out);
        } else if (step == 0) {
            int32_t zp = J->zero_points ? J->zero_points[s0] : 0;
            J->k.codes(x, n, 1.0f / J->scales[s0], (float)(qmin - zp), (float)(qmax - zp), zp,
                       out);
        } else {
            for (int64_t j = 0; j < n; j++) {
                int32_t zp = J->zero_points ? J->zero_points[s0 + j] : 0;
                sdlk_qcodes_scalar(x + j, 1, 1.0f / J->scales[s0 + j], (float)(qmin - zp),
                                   (float)(qmax - zp), zp, out + j);
            }
        }
        f += n;
    }
}

static void dequant_chunk(void *ctx, int64_t begin, int64_t end, int worker)
{
    job *J = ctx;
    const layout *L = J->L;
    int64_t f = begin * ELEMS_PER_CHUNK, stop = end * ELEMS_PER_CHUNK;
    if (stop > L->numel)
        stop = L->numel;
    while (f < stop) {
        int64_t s0, n;
        int step;
        segment_at(L, f, stop, &s0, &step, &n);
        if (step == 0) {
            J->k.dequant(J->dq_codes + f, n, J->dq_signed,
                         J->zero_points ? J->zero_points[s0] : 0, J->scales[s0], J->dq_out + f);
        } else {
            for (int64_t j = 0; j < n; j++)
                sdlk_qdequant_scalar(J->dq_codes + f + j, 1, J->dq_signed,
                                     J->zero_points ? J->zero_points[s0 + j] : 0,
                                     J->scales[s0 + j], J->dq_out + f + j);
        }
        f += n;
    }
}

static int64_t chunk_count(int64_t numel) { return (numel + ELEMS_PER_CHUNK - 1) / ELEMS_PER_CHUNK; }

/* Two-pass path: per-worker min/max per scale, merged; then codes. BINARY sums |x| per
 * scale serially (in a fixed order, so the scale does not depend on the thread count). */
static sdlk_status two_pass(job *J, sdlk_pool *pool, int *nonfinite, sdlk_error *err)
{
    const layout *L = J->L;
    int workers = sdlk_pool_size(pool);
    size_t ns = (size_t)L->nscales;
    sdlk_status st = SDLK_OK;
    if (J->p->scheme == SDLK_QUANT_BINARY) {
        double *sum = calloc(ns, sizeof *sum);
        if (!sum)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %zu scales", ns);
        int bad = 0;
        for (int64_t f = 0; f < L->numel;) {
            int64_t s0, n;
            int step;
            segment_at(L, f, L->numel, &s0, &step, &n);
            for (int64_t j = 0; j < n; j++) {
                float v = J->x[f + j];
                sum[s0 + step * j] += fabsf(v);
                bad |= !(fabsf(v) < INFINITY);
            }
            f += n;
        }
        if (bad) {
            *nonfinite = 1;
            free(sum);
            return SDLK_OK;
        }
        int64_t per_scale = L->numel / (L->nscales > 0 ? L->nscales : 1);
        for (size_t s = 0; s < ns; s++) {
            qparam q;
            binary_param(sum[s], per_scale, &q);
            J->scales[s] = q.scale;
        }
        free(sum);
        sdlk_pool_for(pool, chunk_count(L->numel), 1, codes_chunk, J);
        return SDLK_OK;
    }
    J->part_min = malloc(ns * (size_t)workers * sizeof(float));
    J->part_max = malloc(ns * (size_t)workers * sizeof(float));
    if (!J->part_min || !J->part_max) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %zu scales", ns);
        goto done;
    }
    for (size_t i = 0; i < ns * (size_t)workers; i++) {
        J->part_min[i] = INFINITY;
        J->part_max[i] = -INFINITY;
    }
    sdlk_pool_for(pool, chunk_count(L->numel), 1, stats_chunk, J);
    for (int w = 0; w < workers; w++)
        if (J->nonfinite[w])
            *nonfinite = 1;
    if (*nonfinite)
        goto done;
    for (size_t s = 0; s < ns; s++) {
        float mn = INFINITY, mx = -INFINITY;
        for (int w = 0; w < workers; w++) {
            float a = J->part_min[(size_t)w * ns + s], b = J->part_max[(size_t)w * ns + s];
            mn = a < mn ? a : mn;
            mx = b > mx ? b : mx;
        }
        if (mn > mx) /* an empty scale (cannot happen for numel > 0) */
            mn = mx = 0.0f;
        qparam q;
        if (params_from_range(J->p, mn, mx, &q) != 0) {
            st = sdlk_error_set(err, SDLK_ERR_OVERFLOW,
                                "the value range of scale %zu (%g .. %g) is wider than f32 "
                                "can express in %d bits",
                                s, (double)mn, (double)mx, J->p->bits);
            goto done;
        }
        J->scales[s] = q.scale;
        if (J->zero_points)
            J->zero_points[s] = (uint8_t)q.zero_point;
    }
    sdlk_pool_for(pool, chunk_count(L->numel), 1, codes_chunk, J);
done:
    free(J->part_min);
    free(J->part_max);
    J->part_min = J->part_max = NULL;
    return st;
}

static sdlk_status run_passes(job *J, sdlk_pool *pool, int *nonfinite, sdlk_error *err)
{
    const layout *L = J->L;
    int workers = sdlk_pool_size(pool);
    for (int w = 0; w < workers; w++)
        J->nonfinite[w] = J->range_error[w] = 0;
    *nonfinite = 0;
    if (L->numel == 0)
        return SDLK_OK;
    if (L->gran == SDLK_QUANT_PER_GROUP && L->inner == 1) {
        int64_t ngroups = L->numel / L->group;
        int64_t grain = ELEMS_PER_CHUNK / L->group;
        sdlk_pool_for(pool, ngroups, grain > 0 ? grain : 1, fused_groups, J);
        for (int w = 0; w < workers; w++) {
            if (J->nonfinite[w])
                *nonfinite = 1;
            if (J->range_error[w] && !*nonfinite)
                return sdlk_error_set(err, SDLK_ERR_OVERFLOW,
                                      "a group's value range is wider than f32 can express "
                                      "in %d bits",
                                      J->p->bits);
        }
        return SDLK_OK;
    }
    return two_pass(J, pool, nonfinite, err);
}

/* ---- public entry points -------------------------------------------------------------- */

void sdlk_quantized_free(sdlk_quantized *q)
{
    if (!q)
        return;
    sdlk_tensor_free(&q->codes);
    sdlk_tensor_free(&q->scales);
    sdlk_tensor_free(&q->zero_points);
}

/* A C-contiguous output tensor that every element of will be written. Large ones get
 * 2 MiB-aligned memory with transparent huge pages requested: first-touch page faults
 * (512x fewer with huge pages) were ~30 % of the time of quantizing 256 MiB. The memory
 * is not zeroed. */
static void free_release(void *ctx) { free(ctx); }

static sdlk_status alloc_output(sdlk_tensor *t, sdlk_dtype dtype, int ndim, const int64_t *shape,
                                sdlk_error *err)
{
    enum { HUGE_PAGE = 2 << 20 };
    uint64_t numel;
    sdlk_status st = sdlk_shape_numel(ndim, shape, dtype, &numel, err);
    if (st)
        return st;
    size_t bytes = (size_t)numel * sdlk_dtype_size(dtype);
    if (bytes < 2 * (size_t)HUGE_PAGE)
        return sdlk_tensor_alloc(t, dtype, ndim, shape, err);
    size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *data = aligned_alloc(HUGE_PAGE, rounded);
    if (!data)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
#ifdef MADV_HUGEPAGE
    madvise(data, rounded, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    sdlk_storage *storage = sdlk_storage_wrap(data, bytes, free_release, data, err);
    if (!storage) {
        free(data);
        return SDLK_ERR_NOMEM;
    }
    st = sdlk_tensor_from_storage(t, storage, 0, dtype, ndim, shape, err);
    sdlk_storage_release(storage); /* the tensor holds its own reference */
    return st;
}

/* A contiguous f32 version of x: shared when it already is one, else converted. */
static sdlk_status as_f32(const sdlk_tensor *x, sdlk_tensor *out, sdlk_error *err)
{
    sdlk_tensor_init(out);
    if (!sdlk_dtype_is_float(x->dtype))
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "cannot quantize a %s tensor: floating input expected",
                              sdlk_dtype_name(x->dtype));
    if (x->dtype == SDLK_F32 && sdlk_tensor_is_contiguous(x)) {
        sdlk_tensor_share(out, x);
        return SDLK_OK;
    }
    return sdlk_tensor_convert(out, x, SDLK_F32, err);
}

static sdlk_status scales_shape(const sdlk_quant_params *p, const sdlk_tensor *x, int axis,
                                int *ndim, int64_t *shape)
{
    if (p->granularity == SDLK_QUANT_PER_TENSOR) {
        *ndim = 1;
        shape[0] = 1;
    } else if (p->granularity == SDLK_QUANT_PER_CHANNEL) {
        *ndim = 1;
        shape[0] = x->shape[axis];
    } else {
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        shape[axis] = x->shape[axis] / p->group_size;
    }
    return SDLK_OK;
}

static sdlk_status describe_nonfinite(const sdlk_tensor *xf, sdlk_error *err)
{
    int64_t idx = -1;
    sdlk_find_nonfinite(xf, &idx, err);
    float v = idx >= 0 ? ((const float *)xf->data)[idx] : 0.0f;
    return sdlk_error_set(err, SDLK_ERR_FORMAT,
                          "value at flat index %lld is %s; refusing to quantize it (replace "
                          "non-finite values by zero to go on)",
                          (long long)idx, v != v ? "NaN" : v > 0 ? "+Inf" : "-Inf");
}

sdlk_status sdlk_quantize(const sdlk_tensor *x, const sdlk_quant_params *params,
                          sdlk_pool *pool, sdlk_quantized *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    sdlk_tensor_init(&out->codes);
    sdlk_tensor_init(&out->scales);
    sdlk_tensor_init(&out->zero_points);
    sdlk_status st = sdlk_quant_params_check(params, x->ndim, x->shape, err);
    if (st)
        return st;
    out->params = *params;
    int axis = params->axis < 0 ? params->axis + x->ndim : params->axis;
    if (params->granularity == SDLK_QUANT_PER_TENSOR)
        axis = 0;
    out->params.axis = axis;

    sdlk_tensor xf;
    st = as_f32(x, &xf, err);
    if (st)
        return st;
    uint64_t numel = sdlk_tensor_numel(&xf);
    layout L = make_layout(params, x->ndim, x->shape, (int64_t)numel, axis);

    int sndim;
    int64_t sshape[SDLK_MAX_DIMS];
    scales_shape(params, x, axis, &sndim, sshape);
    sdlk_dtype code_dtype = params->scheme == SDLK_QUANT_ASYMMETRIC ? SDLK_U8 : SDLK_I8;
    int workers = sdlk_pool_size(pool);
    int *flags = calloc((size_t)workers * 2, sizeof(int));
    if (!flags) {
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = alloc_output(&out->codes, code_dtype, x->ndim, x->shape, err)) ||
        (st = sdlk_tensor_alloc(&out->scales, SDLK_F32, sndim, sshape, err)))
        goto fail;
    if (params->scheme == SDLK_QUANT_ASYMMETRIC &&
        (st = sdlk_tensor_alloc(&out->zero_points, SDLK_U8, sndim, sshape, err)))
        goto fail;

    job J = {.p = params, .L = &L, .k = pick_kernels(), .x = (const float *)xf.data,
             .codes = out->codes.data, .scales = (float *)out->scales.data,
             .zero_points = out->zero_points.data, .nonfinite = flags,
             .range_error = flags + workers};
    int nonfinite = 0;
    if ((st = run_passes(&J, pool, &nonfinite, err)))
        goto fail;
    if (nonfinite) {
        if (!params->nan_to_zero) {
            st = describe_nonfinite(&xf, err);
            goto fail;
        }
        /* a private copy with the bad values replaced, then quantize that */
        sdlk_tensor clean;
        if ((st = sdlk_tensor_convert(&clean, &xf, SDLK_F32, err)))
            goto fail;
        float *v = (float *)clean.data;
        for (uint64_t i = 0; i < numel; i++)
            if (!(fabsf(v[i]) < INFINITY))
                v[i] = 0.0f;
        sdlk_tensor_free(&xf);
        xf = clean;
        J.x = v;
        if ((st = run_passes(&J, pool, &nonfinite, err)))
            goto fail;
        if (nonfinite) {
            st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "non-finite values survived replacement");
            goto fail;
        }
    }
    free(flags);
    sdlk_tensor_free(&xf);
    return SDLK_OK;
fail:
    free(flags);
    sdlk_tensor_free(&xf);
    sdlk_quantized_free(out);
    return st;
}

sdlk_status sdlk_dequantize(const sdlk_quantized *q, sdlk_pool *pool, sdlk_tensor *out,
                            sdlk_error *err)
{
    sdlk_tensor_init(out);
    const sdlk_quant_params *p = &q->params;
    const sdlk_tensor *c = &q->codes;
    sdlk_status st = sdlk_quant_params_check(p, c->ndim, c->shape, err);
    if (st)
        return st;
    sdlk_dtype want = p->scheme == SDLK_QUANT_ASYMMETRIC ? SDLK_U8 : SDLK_I8;
    if (c->dtype != want || !sdlk_tensor_is_contiguous(c))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "codes must be a contiguous %s tensor for the %s scheme, got %s",
                              sdlk_dtype_name(want), sdlk_quant_scheme_name(p->scheme),
                              sdlk_dtype_name(c->dtype));
    int axis = p->granularity == SDLK_QUANT_PER_TENSOR ? 0 : p->axis;
    if (axis < 0)
        axis += c->ndim;
    int sndim;
    int64_t sshape[SDLK_MAX_DIMS];
    scales_shape(p, c, axis, &sndim, sshape);
    int scale_ok = q->scales.dtype == SDLK_F32 && q->scales.ndim == sndim &&
                   sdlk_tensor_is_contiguous(&q->scales) &&
                   memcmp(q->scales.shape, sshape, sizeof(int64_t) * (size_t)sndim) == 0;
    int zp_ok = p->scheme != SDLK_QUANT_ASYMMETRIC ||
                (q->zero_points.dtype == SDLK_U8 && q->zero_points.ndim == sndim &&
                 sdlk_tensor_is_contiguous(&q->zero_points) &&
                 memcmp(q->zero_points.shape, sshape, sizeof(int64_t) * (size_t)sndim) == 0);
    if (!scale_ok || !zp_ok) {
        char want_shape[96];
        sdlk_shape_format(sndim, sshape, want_shape, sizeof want_shape);
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s must be a contiguous %s tensor of shape %s for these codes",
                              scale_ok ? "zero points" : "scales", scale_ok ? "u8" : "f32",
                              want_shape);
    }
    if ((st = alloc_output(out, SDLK_F32, c->ndim, c->shape, err)))
        return st;
    layout L = make_layout(p, c->ndim, c->shape, (int64_t)sdlk_tensor_numel(c), axis);
    job J = {.p = p, .L = &L, .k = pick_kernels(), .scales = (float *)q->scales.data,
             .zero_points = p->scheme == SDLK_QUANT_ASYMMETRIC ? q->zero_points.data : NULL,
             .dq_codes = c->data, .dq_out = (float *)out->data,
             .dq_signed = p->scheme != SDLK_QUANT_ASYMMETRIC};
    sdlk_pool_for(pool, chunk_count(L.numel), 1, dequant_chunk, &J);
    return SDLK_OK;
}

sdlk_status sdlk_find_nonfinite(const sdlk_tensor *x, int64_t *index, sdlk_error *err)
{
    *index = -1;
    if (!sdlk_dtype_is_float(x->dtype))
        return SDLK_OK;
    sdlk_tensor xf;
    sdlk_status st = as_f32(x, &xf, err); /* f64 overflow to inf in f32 counts: we work in f32 */
    if (st)
        return st;
    const float *v = (const float *)xf.data;
    uint64_t n = sdlk_tensor_numel(&xf);
    for (uint64_t i = 0; i < n; i++)
        if (!(fabsf(v[i]) < INFINITY)) {
            *index = (int64_t)i;
            break;
        }
    sdlk_tensor_free(&xf);
    return SDLK_OK;
}

sdlk_status sdlk_quant_error_stats(const sdlk_tensor *x, const sdlk_tensor *y,
                                   sdlk_quant_stats *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    if (x->ndim != y->ndim || memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim)) {
        char a[96], b[96];
        sdlk_shape_format(x->ndim, x->shape, a, sizeof a);
        sdlk_shape_format(y->ndim, y->shape, b, sizeof b);
        return sdlk_error_set(err, SDLK_ERR_ARG, "cannot compare tensors of shapes %s and %s", a,
                              b);
    }
    sdlk_tensor xf, yf;
    sdlk_status st = as_f32(x, &xf, err);
    if (st)
        return st;
    if ((st = as_f32(y, &yf, err))) {
        sdlk_tensor_free(&xf);
        return st;
    }
    const float *a = (const float *)xf.data, *b = (const float *)yf.data;
    uint64_t n = sdlk_tensor_numel(&xf);
    double sxx = 0, syy = 0, sxy = 0, see = 0, emax = 0;
    for (uint64_t i = 0; i < n; i++) {
        double u = a[i], v = b[i], e = u - v;
        sxx += u * u;
        syy += v * v;
        sxy += u * v;
        see += e * e;
        if (fabs(e) > emax)
            emax = fabs(e);
    }
    out->count = n;
    out->rmse = n ? sqrt(see / (double)n) : 0.0;
    out->max_abs = emax;
    if (see == 0)
        out->sqnr_db = INFINITY;
    else if (sxx == 0)
        out->sqnr_db = -INFINITY;
    else
        out->sqnr_db = 10.0 * log10(sxx / see);
    if (sxx == 0 && syy == 0)
        out->cosine = 1.0;
    else if (sxx == 0 || syy == 0)
        out->cosine = 0.0;
    else
        out->cosine = sxy / sqrt(sxx * syy);
    sdlk_tensor_free(&xf);
    sdlk_tensor_free(&yf);
    return SDLK_OK;
}
