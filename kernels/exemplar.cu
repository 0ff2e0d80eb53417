/* exemplar.cu -- the exemplar denoiser's posterior mean on the GPU (see exemplar_cuda.h).
 *
 * Why the patches are gathered on the device: a 72 x 72 x 3 window at stride 4 has 289
 * patches of 192 values, 3.6 times the window itself; uploading the window and gathering
 * there moves the least data, and the gather is one coalesced-enough pass. Why the blend
 * is a gather (one thread per output element, summing the covering patches in
 * increasing patch order) and not atomics: it repeats the CPU scatter's additions in
 * the CPU's order, so the output is deterministic and equal estimates give equal bits;
 * a patch covers at most (p / stride)^2 positions per element, so the loop is short.
 *
 * Layout of one predict on the device (all grown on demand, kept between calls):
 *   x, out   [tiles, numel] windows, in the batch's prior-grouped order
 *   tiles    [tiles] tile_desc; corners: every tile's per-axis patch corners
 *   row_tile [rows] the tile of each patch row
 *   y        [chunk, D] gathered patches of one chunk; g [chunk, n] distances, then
 *            weights in place; e [rows, D] estimates of every patch of the batch */
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/cudalibs.h"
#include "kernels/device_util.h"
#include "kernels/exemplar_cuda.h"

namespace {

/* Distance values per chunk (128 MiB of f32): bounds g whatever the tile size. */
constexpr int64_t CHUNK_ELEMENTS = int64_t(1) << 25;
constexpr int SOFTMAX_THREADS = 256; /* a multiple of 32 (warp reductions) */
constexpr int ELEMENT_THREADS = 256;
constexpr int64_t MAX_GRID = int64_t(1) << 20; /* grid-stride loops cover the rest */

/* The cuBLAS entry points this file uses, resolved at run time (kernels/cudalibs.h). */
struct cublas_api {
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSetMathMode) set_math_mode;
    decltype(&cublasSgemm_v2) sgemm;
};

/* One tile of a batch, as the kernels see it. */
struct tile_desc {
    int64_t row_start;    /* its first patch row in the batch */
    int64_t count[3];     /* corners per axis */
    int64_t corner0[3];   /* index of each axis's first corner in the corner pool */
    const float *mean;    /* the prior's mean exemplar (pure noise) */
    double a, sqrt_a, inv_one_minus_a;
    int pure_noise;
};

/* The window and patch shape, passed by value. */
struct geometry {
    int64_t window[3];
    int64_t numel;        /* window t * h * w * C */
    int64_t dim;          /* D */
    int64_t run;          /* p * C: contiguous values of one patch row */
    int channels, patch, patch_t;
};

/* Blocks for a grid-stride loop over `total` items. */
unsigned grid_for(int64_t total, int threads)
{
    return (unsigned)std::min<int64_t>((total + threads - 1) / threads, MAX_GRID);
}

/* ---- device code -------------------------------------------------------------------- */

/* Patch index i of a tile -> its (t, y, x) corner indices, x fastest (the CPU's order). */
__device__ __forceinline__ void patch_corner_indices(const tile_desc &t, int64_t i, int64_t &it,
                                                     int64_t &iy, int64_t &ix)
{
    ix = i % t.count[2];
    iy = i / t.count[2] % t.count[1];
    it = i / t.count[2] / t.count[1];
}

/* y[r, e] = element e of patch row first + r: run e / (p C) of the patch (frame dt, row
 * dy), value e % (p C) of that run, read from the window exactly as gather_patches. */
__global__ void gather_patches(geometry g, const float *__restrict__ x,
                               const tile_desc *__restrict__ tiles,
                               const int32_t *__restrict__ row_tile,
                               const int64_t *__restrict__ corners, int64_t first, int64_t rows,
                               float *__restrict__ y)
{
    const int64_t total = rows * g.dim;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = idx / g.dim, e = idx % g.dim;
        const int32_t k = row_tile[first + r];
        const tile_desc &t = tiles[k];
        int64_t it, iy, ix;
        patch_corner_indices(t, first + r - t.row_start, it, iy, ix);
        const int64_t run = e / g.run, v = e % g.run;
        const int64_t dt = run / g.patch, dy = run % g.patch;
        const int64_t ft = corners[t.corner0[0] + it] + dt;
        const int64_t fy = corners[t.corner0[1] + iy] + dy;
        const int64_t fx = corners[t.corner0[2] + ix];
        y[idx] = x[k * g.numel + ((ft * g.window[1] + fy) * g.window[2] + fx) * g.channels + v];
    }
}

/* The CPU's logit, operation for operation: (sqrt(a) g - a hn) * inv, each step rounded
 * on its own (no fused multiply-add, which the CPU build does not use either). */
__device__ __forceinline__ double logit_of(const tile_desc &t, float g, float hn)
{
    return __dmul_rn(__dsub_rn(__dmul_rn(t.sqrt_a, (double)g), __dmul_rn(t.a, (double)hn)),
                     t.inv_one_minus_a);
}

__device__ __forceinline__ double warp_max(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ double warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Every thread of the block gets the block-wide max (or sum) of v. */
template <bool MAX> __device__ double block_reduce(double v, double *shared)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads(); /* shared may still be read by a previous reduction */
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : (MAX ? -INFINITY : 0.0);
    return MAX ? warp_max(v) : warp_sum(v);
}

/* Row r of g (n distances Y P^T of patch row first + r) -> its posterior weights, in
 * place: softmax_rows of exemplar.c, in double, the max subtracted before exp. Rows of
 * pure-noise tiles get 0 (the blend reads the mean exemplar for them instead). One
 * block per row. */
__global__ void __launch_bounds__(SOFTMAX_THREADS)
softmax_rows(float *__restrict__ g, int64_t n, const float *__restrict__ half_norm,
             const tile_desc *__restrict__ tiles, const int32_t *__restrict__ row_tile,
             int64_t first)
{
    __shared__ double shared[32];
    const int64_t r = blockIdx.x;
    const tile_desc &t = tiles[row_tile[first + r]];
    float *row = g + r * n;
    if (t.pure_noise) { /* uniform over the block: no thread waits at a barrier below */
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
            row[j] = 0.0f;
        return;
    }
    double max = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        max = fmax(max, logit_of(t, row[j], half_norm[j]));
    max = block_reduce<true>(max, shared);
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        sum += exp(__dsub_rn(logit_of(t, row[j], half_norm[j]), max));
    sum = block_reduce<false>(sum, shared);
    /* every thread has read its own elements above and rewrites only those */
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        row[j] = __double2float_rn(
            __ddiv_rn(exp(__dsub_rn(logit_of(t, row[j], half_norm[j]), max)), sum));
}

/* Corner indices j (a contiguous range, corners ascending) whose patch of `extent`
 * covers coordinate c: corner_j <= c < corner_j + extent. */
__device__ __forceinline__ void covering(const int64_t *__restrict__ corners, int64_t count,
                                         int64_t extent, int64_t c, int64_t &lo, int64_t &hi)
{
    lo = 0;
    while (lo < count && corners[lo] + extent <= c)
        lo++;
    hi = lo;
    while (hi < count && corners[hi] <= c)
        hi++;
}

/* out = per-element tent-weighted average of the estimates of the patches covering it
 * (scatter_average of exemplar.c, as a gather): the same f32 products and sums in the
 * same order (increasing patch index), then one division; 0 where nothing covers. */
__global__ void blend_estimates(geometry g, const tile_desc *__restrict__ tiles, int64_t count,
                                const int64_t *__restrict__ corners,
                                const float *__restrict__ weight, const float *__restrict__ est,
                                float *__restrict__ out)
{
    const int64_t total = count * g.numel;
    const int64_t extent[3] = {g.patch_t, g.patch, g.patch};
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t k = idx / g.numel, e = idx % g.numel;
        const int64_t c = e % g.channels, cell = e / g.channels;
        const int64_t coord[3] = {cell / g.window[2] / g.window[1],
                                  cell / g.window[2] % g.window[1], cell % g.window[2]};
        const tile_desc &t = tiles[k];
        int64_t lo[3], hi[3];
        for (int a = 0; a < 3; a++)
            covering(corners + t.corner0[a], t.count[a], extent[a], coord[a], lo[a], hi[a]);
        float sum = 0.0f, cover = 0.0f;
        for (int64_t it = lo[0]; it < hi[0]; it++) {
            const int64_t dt = coord[0] - corners[t.corner0[0] + it];
            for (int64_t iy = lo[1]; iy < hi[1]; iy++) {
                const int64_t dy = coord[1] - corners[t.corner0[1] + iy];
                for (int64_t ix = lo[2]; ix < hi[2]; ix++) {
                    const int64_t dx = coord[2] - corners[t.corner0[2] + ix];
                    const int64_t el = ((dt * g.patch + dy) * g.patch + dx) * g.channels + c;
                    const int64_t i = (it * t.count[1] + iy) * t.count[2] + ix;
                    const float src =
                        t.pure_noise ? t.mean[el] : est[(t.row_start + i) * g.dim + el];
                    sum = __fadd_rn(sum, __fmul_rn(weight[el], src));
                    cover = __fadd_rn(cover, weight[el]);
                }
            }
        }
        out[idx] = cover > 0.0f ? __fdiv_rn(sum, cover) : 0.0f;
    }
}

} // namespace

/* ---- host side ---------------------------------------------------------------------- */

struct sdlk_cuda_exemplar_prior {
    int64_t n, dim;
    float *patches;   /* [n, dim] */
    float *half_norm; /* [n] */
    float *mean;      /* [dim] */
};

struct sdlk_cuda_exemplar {
    geometry geom;
    void *library;
    cublas_api api;
    cublasHandle_t handle;
    cudaStream_t stream;
    cudaEvent_t start, stop;
    double device_ms;
    float *weight; /* [D] on the device */
    sdlk_grow_buffer<float> x, out, y, g, e;
    sdlk_grow_buffer<tile_desc> tiles;
    sdlk_grow_buffer<int64_t> corners;
    sdlk_grow_buffer<int32_t> row_tile;
    sdlk_grow_buffer<float, true> staging;
};

extern "C" void sdlk_cuda_exemplar_destroy(sdlk_cuda_exemplar *ctx)
{
    if (!ctx)
        return;
    if (ctx->stream)
        cudaStreamSynchronize(ctx->stream);
    ctx->x.release();
    ctx->out.release();
    ctx->y.release();
    ctx->g.release();
    ctx->e.release();
    ctx->tiles.release();
    ctx->corners.release();
    ctx->row_tile.release();
    ctx->staging.release();
    if (ctx->weight)
        cudaFree(ctx->weight);
    if (ctx->start)
        cudaEventDestroy(ctx->start);
    if (ctx->stop)
        cudaEventDestroy(ctx->stop);
    if (ctx->handle)
        ctx->api.destroy(ctx->handle);
    if (ctx->stream)
        cudaStreamDestroy(ctx->stream);
    sdlk_cuda_unload(ctx->library);
    delete ctx;
}

static sdlk_status check_geometry(const sdlk_cuda_exemplar_geom *g, sdlk_error *err)
{
    if (g->channels < 1 || g->patch < 1 || g->patch_t < 1 || !g->weight)
        return sdlk_error_set(err, SDLK_ERR_ARG, "exemplar GPU: bad patch geometry");
    for (int a = 0; a < 3; a++)
        if (g->window[a] < 1 || g->window[a] > INT32_MAX)
            return sdlk_error_set(err, SDLK_ERR_ARG, "exemplar GPU: bad window size %lld",
                                  (long long)g->window[a]);
    const int64_t dim = (int64_t)g->patch_t * g->patch * g->patch * g->channels;
    if (dim > INT_MAX)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "exemplar GPU: patch of %lld values is more than cuBLAS takes",
                              (long long)dim);
    return SDLK_OK;
}

extern "C" sdlk_status sdlk_cuda_exemplar_create(const sdlk_cuda_exemplar_geom *geom,
                                                 sdlk_cuda_exemplar **out, sdlk_error *err)
{
    *out = nullptr;
    sdlk_status st = check_geometry(geom, err);
    if (st)
        return st;
    sdlk_cuda_exemplar *ctx = new (std::nothrow) sdlk_cuda_exemplar();
    if (!ctx)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exemplar GPU: out of memory");
    geometry &g = ctx->geom;
    for (int a = 0; a < 3; a++)
        g.window[a] = geom->window[a];
    g.channels = geom->channels;
    g.patch = geom->patch;
    g.patch_t = geom->patch_t;
    g.numel = g.window[0] * g.window[1] * g.window[2] * g.channels;
    g.dim = (int64_t)g.patch_t * g.patch * g.patch * g.channels;
    g.run = (int64_t)g.patch * g.channels;
    const sdlk_cuda_symbol symbols[] = {
        {"cublasCreate_v2", (void **)&ctx->api.create},
        {"cublasDestroy_v2", (void **)&ctx->api.destroy},
        {"cublasSetStream_v2", (void **)&ctx->api.set_stream},
        {"cublasSetMathMode", (void **)&ctx->api.set_math_mode},
        {"cublasSgemm_v2", (void **)&ctx->api.sgemm},
    };
    st = sdlk_cuda_load(SDLK_CUDA_CUBLAS, symbols, sizeof symbols / sizeof symbols[0],
                        &ctx->library, err);
    if (!st)
        st = sdlk_cuda_check(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking),
                             "cudaStreamCreate", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventCreate(&ctx->start), "cudaEventCreate", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventCreate(&ctx->stop), "cudaEventCreate", err);
    if (!st)
        st = sdlk_cublas_check(ctx->api.create(&ctx->handle), "cublasCreate", err);
    if (!st)
        st = sdlk_cublas_check(ctx->api.set_stream(ctx->handle, ctx->stream), "cublasSetStream",
                               err);
    /* plain f32 FFMA GEMMs: TF32 tensor cores would round the inputs to 10 bits and put
     * the distances (and through 1 / (1 - a), the weights) far from the CPU's */
    if (!st)
        st = sdlk_cublas_check(ctx->api.set_math_mode(ctx->handle, CUBLAS_DEFAULT_MATH),
                               "cublasSetMathMode", err);
    if (!st)
        st = sdlk_cuda_check(
            cudaMalloc(reinterpret_cast<void **>(&ctx->weight), (size_t)g.dim * sizeof(float)),
            "cudaMalloc (patch weights)", err);
    if (!st)
        st = sdlk_cuda_check(cudaMemcpy(ctx->weight, geom->weight, (size_t)g.dim * sizeof(float),
                                        cudaMemcpyHostToDevice),
                             "cudaMemcpy (patch weights)", err);
    if (st) {
        sdlk_cuda_exemplar_destroy(ctx);
        return st;
    }
    *out = ctx;
    return SDLK_OK;
}

extern "C" void sdlk_cuda_exemplar_prior_free(sdlk_cuda_exemplar_prior *prior)
{
    if (!prior)
        return;
    if (prior->patches)
        cudaFree(prior->patches);
    if (prior->half_norm)
        cudaFree(prior->half_norm);
    if (prior->mean)
        cudaFree(prior->mean);
    delete prior;
}

extern "C" sdlk_status sdlk_cuda_exemplar_prior_upload(const float *patches, const float *half_norm,
                                                       const float *mean, int64_t n, int64_t dim,
                                                       sdlk_cuda_exemplar_prior **out,
                                                       sdlk_error *err)
{
    *out = nullptr;
    if (n < 1 || n > INT_MAX || dim < 1 || dim > INT_MAX)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "exemplar GPU: %lld exemplars of %lld values is more than cuBLAS "
                              "takes",
                              (long long)n, (long long)dim);
    sdlk_cuda_exemplar_prior *p = new (std::nothrow) sdlk_cuda_exemplar_prior();
    if (!p)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exemplar GPU: out of memory");
    p->n = n;
    p->dim = dim;
    sdlk_status st = sdlk_cuda_upload(&p->patches, patches, (size_t)(n * dim),
                                      "cudaMalloc/cudaMemcpy (exemplars)", err);
    if (!st)
        st = sdlk_cuda_upload(&p->half_norm, half_norm, (size_t)n,
                              "cudaMalloc/cudaMemcpy (exemplar norms)", err);
    if (!st)
        st = sdlk_cuda_upload(&p->mean, mean, (size_t)dim,
                              "cudaMalloc/cudaMemcpy (mean exemplar)", err);
    if (st) {
        sdlk_cuda_exemplar_prior_free(p);
        return st;
    }
    *out = p;
    return SDLK_OK;
}

extern "C" double sdlk_cuda_exemplar_device_ms(const sdlk_cuda_exemplar *ctx)
{
    return ctx ? ctx->device_ms : 0.0;
}

namespace {

/* The batch as the device sees it: tiles grouped by prior (each group's patch rows are
 * contiguous, so one GEMM serves the group), with `order[k]` the caller's index of
 * device tile k. */
struct batch_plan {
    std::vector<int> order;
    std::vector<tile_desc> desc;
    std::vector<int64_t> corners;
    std::vector<int32_t> row_tile;
    struct group {
        const sdlk_cuda_exemplar_prior *prior;
        int64_t row_begin, row_end;
    };
    std::vector<group> groups;
    int64_t rows = 0;
};

sdlk_status plan_batch(const sdlk_cuda_exemplar *ctx, const sdlk_cuda_exemplar_tile *tiles,
                       int count, batch_plan &plan, sdlk_error *err)
{
    const geometry &g = ctx->geom;
    const int64_t extent[3] = {g.patch_t, g.patch, g.patch};
    for (int i = 0; i < count; i++) {
        const sdlk_cuda_exemplar_tile &t = tiles[i];
        if (!t.prior || t.prior->dim != g.dim || !t.x || !t.out)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "exemplar GPU: tile %d has no prior of %lld values or no "
                                  "buffers",
                                  i, (long long)g.dim);
        for (int a = 0; a < 3; a++) {
            if (t.count[a] < 0 || (t.count[a] > 0 && !t.pos[a]))
                return sdlk_error_set(err, SDLK_ERR_ARG, "exemplar GPU: tile %d: bad corners", i);
            for (int64_t j = 0; j < t.count[a]; j++)
                if (t.pos[a][j] < 0 || t.pos[a][j] + extent[a] > g.window[a] ||
                    (j > 0 && t.pos[a][j] <= t.pos[a][j - 1]))
                    return sdlk_error_set(err, SDLK_ERR_ARG,
                                          "exemplar GPU: tile %d: corner %lld of axis %d is "
                                          "outside the window or out of order",
                                          i, (long long)t.pos[a][j], a);
        }
    }
    /* group by prior, first appearance first (stable) */
    std::vector<char> placed((size_t)count, 0);
    for (int i = 0; i < count; i++) {
        if (placed[(size_t)i])
            continue;
        batch_plan::group grp = {tiles[i].prior, plan.rows, plan.rows};
        for (int j = i; j < count; j++) {
            if (placed[(size_t)j] || tiles[j].prior != tiles[i].prior)
                continue;
            placed[(size_t)j] = 1;
            const sdlk_cuda_exemplar_tile &t = tiles[j];
            tile_desc d = {};
            d.row_start = plan.rows;
            int64_t m = 1;
            for (int a = 0; a < 3; a++) {
                d.count[a] = t.count[a];
                d.corner0[a] = (int64_t)plan.corners.size();
                plan.corners.insert(plan.corners.end(), t.pos[a], t.pos[a] + t.count[a]);
                m *= t.count[a];
            }
            d.mean = t.prior->mean;
            d.a = t.a;
            d.sqrt_a = t.sqrt_a;
            d.inv_one_minus_a = t.inv_one_minus_a;
            d.pure_noise = t.pure_noise != 0;
            const int32_t k = (int32_t)plan.desc.size();
            plan.desc.push_back(d);
            plan.order.push_back(j);
            plan.row_tile.insert(plan.row_tile.end(), (size_t)m, k);
            plan.rows += m;
        }
        grp.row_end = plan.rows;
        plan.groups.push_back(grp);
    }
    return SDLK_OK;
}

/* Rows per chunk for a prior of n exemplars: g holds at most CHUNK_ELEMENTS values. */
int64_t chunk_rows(int64_t n, int64_t rows)
{
    return std::max<int64_t>(1, std::min<int64_t>(rows, CHUNK_ELEMENTS / n));
}

sdlk_status reserve_all(sdlk_cuda_exemplar *ctx, const batch_plan &plan, int count, sdlk_error *err)
{
    const geometry &g = ctx->geom;
    int64_t chunk = 1, distances = 1;
    for (const auto &grp : plan.groups) {
        const int64_t c = chunk_rows(grp.prior->n, grp.row_end - grp.row_begin);
        chunk = std::max(chunk, c);
        distances = std::max(distances, c * grp.prior->n);
    }
    const size_t windows = (size_t)count * (size_t)g.numel;
    sdlk_status st = ctx->x.reserve(windows, "cudaMalloc (input windows)", nullptr, err);
    if (!st)
        st = ctx->out.reserve(windows, "cudaMalloc (output windows)", nullptr, err);
    if (!st)
        st = ctx->staging.reserve(windows, "cudaMallocHost (staging)", nullptr, err);
    if (!st)
        st = ctx->tiles.reserve((size_t)count, "cudaMalloc (tile descriptors)", nullptr, err);
    if (!st)
        st = ctx->corners.reserve(std::max<size_t>(plan.corners.size(), 1),
                                  "cudaMalloc (corners)", nullptr, err);
    if (!st)
        st = ctx->row_tile.reserve(std::max<size_t>((size_t)plan.rows, 1),
                                   "cudaMalloc (row tiles)", nullptr, err);
    if (!st)
        st = ctx->y.reserve((size_t)(chunk * g.dim), "cudaMalloc (patches)", nullptr, err);
    if (!st)
        st = ctx->g.reserve((size_t)distances, "cudaMalloc (distances)", nullptr, err);
    if (!st)
        st = ctx->e.reserve((size_t)std::max<int64_t>(plan.rows * g.dim, 1),
                            "cudaMalloc (estimates)", nullptr, err);
    return st;
}

/* Distances, weights and estimates of patch rows [begin, end) of one prior. */
sdlk_status estimate_group(sdlk_cuda_exemplar *ctx, const sdlk_cuda_exemplar_prior *prior,
                           int64_t begin, int64_t end, sdlk_error *err)
{
    const geometry &g = ctx->geom;
    const int64_t n = prior->n, chunk = chunk_rows(n, end - begin);
    const float one = 1.0f, zero = 0.0f;
    for (int64_t first = begin; first < end; first += chunk) {
        const int64_t rows = std::min(chunk, end - first);
        const unsigned blocks = grid_for(rows * g.dim, ELEMENT_THREADS);
        gather_patches<<<blocks, ELEMENT_THREADS, 0, ctx->stream>>>(
            g, ctx->x.ptr, ctx->tiles.ptr, ctx->row_tile.ptr, ctx->corners.ptr, first, rows,
            ctx->y.ptr);
        sdlk_status st = sdlk_cuda_check(cudaGetLastError(), "gather_patches launch", err);
        if (st)
            return st;
        /* Row-major G [rows, n] = Y [rows, D] P^T is column-major G^T [n, rows] = P Y^T:
         * P is column-major [D, n] (ld D), transposed; Y is column-major [D, rows]. */
        st = sdlk_cublas_check(ctx->api.sgemm(ctx->handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)n,
                                              (int)rows, (int)g.dim, &one, prior->patches,
                                              (int)g.dim, ctx->y.ptr, (int)g.dim, &zero, ctx->g.ptr,
                                              (int)n),
                               "cublasSgemm (distances)", err);
        if (st)
            return st;
        softmax_rows<<<(unsigned)rows, SOFTMAX_THREADS, 0, ctx->stream>>>(
            ctx->g.ptr, n, prior->half_norm, ctx->tiles.ptr, ctx->row_tile.ptr, first);
        st = sdlk_cuda_check(cudaGetLastError(), "softmax_rows launch", err);
        if (st)
            return st;
        /* Row-major E [rows, D] = W [rows, n] P [n, D] is column-major E^T [D, rows] =
         * P^T W^T: P column-major [D, n] (ld D), W column-major [n, rows] (ld n). */
        st = sdlk_cublas_check(ctx->api.sgemm(ctx->handle, CUBLAS_OP_N, CUBLAS_OP_N, (int)g.dim,
                                              (int)rows, (int)n, &one, prior->patches, (int)g.dim,
                                              ctx->g.ptr, (int)n, &zero, ctx->e.ptr + first * g.dim,
                                              (int)g.dim),
                               "cublasSgemm (estimates)", err);
        if (st)
            return st;
    }
    return SDLK_OK;
}

/* Everything after planning; on failure the caller waits for the stream. */
sdlk_status run_batch(sdlk_cuda_exemplar *ctx, const sdlk_cuda_exemplar_tile *tiles, int count,
                      const batch_plan &plan, sdlk_error *err)
{
    const geometry &g = ctx->geom;
    const size_t window_bytes = (size_t)g.numel * sizeof(float);
    for (int k = 0; k < count; k++)
        memcpy(ctx->staging.ptr + (size_t)k * (size_t)g.numel, tiles[plan.order[(size_t)k]].x,
               window_bytes);
    sdlk_status st =
        sdlk_cuda_check(cudaMemcpyAsync(ctx->x.ptr, ctx->staging.ptr, (size_t)count * window_bytes,
                                        cudaMemcpyHostToDevice, ctx->stream),
                        "cudaMemcpyAsync (input windows)", err);
    /* pageable sources: the runtime has copied them out when these calls return */
    if (!st)
        st = sdlk_cuda_check(cudaMemcpyAsync(ctx->tiles.ptr, plan.desc.data(),
                                             plan.desc.size() * sizeof(tile_desc),
                                             cudaMemcpyHostToDevice, ctx->stream),
                             "cudaMemcpyAsync (tile descriptors)", err);
    if (!st && !plan.corners.empty())
        st = sdlk_cuda_check(cudaMemcpyAsync(ctx->corners.ptr, plan.corners.data(),
                                             plan.corners.size() * sizeof(int64_t),
                                             cudaMemcpyHostToDevice, ctx->stream),
                             "cudaMemcpyAsync (corners)", err);
    if (!st && plan.rows > 0)
        st = sdlk_cuda_check(cudaMemcpyAsync(ctx->row_tile.ptr, plan.row_tile.data(),
                                             plan.row_tile.size() * sizeof(int32_t),
                                             cudaMemcpyHostToDevice, ctx->stream),
                             "cudaMemcpyAsync (row tiles)", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventRecord(ctx->start, ctx->stream), "cudaEventRecord", err);
    for (const auto &grp : plan.groups)
        if (!st && grp.row_end > grp.row_begin)
            st = estimate_group(ctx, grp.prior, grp.row_begin, grp.row_end, err);
    if (st)
        return st;
    const int64_t total = (int64_t)count * g.numel;
    blend_estimates<<<grid_for(total, ELEMENT_THREADS), ELEMENT_THREADS, 0, ctx->stream>>>(
        g, ctx->tiles.ptr, count, ctx->corners.ptr, ctx->weight, ctx->e.ptr, ctx->out.ptr);
    st = sdlk_cuda_check(cudaGetLastError(), "blend_estimates launch", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventRecord(ctx->stop, ctx->stream), "cudaEventRecord", err);
    if (!st)
        st = sdlk_cuda_check(cudaMemcpyAsync(ctx->staging.ptr, ctx->out.ptr,
                                             (size_t)count * window_bytes, cudaMemcpyDeviceToHost,
                                             ctx->stream),
                             "cudaMemcpyAsync (output windows)", err);
    if (!st)
        st = sdlk_cuda_check(cudaStreamSynchronize(ctx->stream), "exemplar kernels", err);
    float ms = 0.0f;
    if (!st)
        st = sdlk_cuda_check(cudaEventElapsedTime(&ms, ctx->start, ctx->stop),
                             "cudaEventElapsedTime", err);
    if (st)
        return st;
    ctx->device_ms += ms;
    for (int k = 0; k < count; k++)
        memcpy(tiles[plan.order[(size_t)k]].out, ctx->staging.ptr + (size_t)k * (size_t)g.numel,
               window_bytes);
    return SDLK_OK;
}

} // namespace

extern "C" sdlk_status sdlk_cuda_exemplar_predict(sdlk_cuda_exemplar *ctx,
                                                  const sdlk_cuda_exemplar_tile *tiles, int count,
                                                  sdlk_error *err)
{
    if (count < 1)
        return count == 0 ? SDLK_OK
                          : sdlk_error_set(err, SDLK_ERR_ARG, "exemplar GPU: %d tiles", count);
    batch_plan plan;
    sdlk_status st;
    try {
        st = plan_batch(ctx, tiles, count, plan, err);
    } catch (const std::bad_alloc &) {
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exemplar GPU: out of memory planning %d tiles",
                              count);
    }
    if (!st)
        st = reserve_all(ctx, plan, count, err);
    if (!st)
        st = run_batch(ctx, tiles, count, plan, err);
    if (st)
        cudaStreamSynchronize(ctx->stream); /* nothing of this call stays in flight */
    return st;
}
