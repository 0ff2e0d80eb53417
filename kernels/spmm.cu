/* spmm.cu -- Y = A X on condensed tiles with TF32 tensor cores, and the cuSPARSE CSR
 * SpMM baseline (see kernels/spmm_cuda.h for the contract).
 *
 * Kernel layout (one warp = one work item x one feature slab; 4 warps per block, no
 * block-wide synchronisation, so warps of a block never wait on each other):
 *   work item  a row window (16 rows), or a run of at most `item_tiles` tiles of a window
 *              with more tiles (a hub): those windows' rows are zeroed by a first small
 *              kernel and their items add their partial sums into Y atomically, so that
 *              one hub cannot serialise the grid behind a single warp. item_tiles (4..32)
 *              shrinks with the graph: a small graph fits the GPU in one wave, and then
 *              the longest warp is the whole kernel time.
 *   slab       8 * NT feature columns (NT n-tiles of the m16n8k8 MMA, NT in 1, 2, 4, 8,
 *              chosen from dim so that narrow features waste no lanes); dim needs
 *              ceil(dim / (8 NT)) slabs. Columns at or past dim are masked: loaded as 0,
 *              never stored.
 *   per step   two tiles at once (a second one absent at an odd end adds exact zeros):
 *              (a) the 8 X rows of each tile's column map are gathered straight into B
 *              fragments (lane (g, t) holds rows t and t + 4 of the tile, features of
 *              n-index g), kept in f32 until the MMA so nothing waits on them early;
 *              condensed columns past the window's last one (the short last tile) load
 *              0, never X; each lane also loads its first nonzero of each tile, and the
 *              next step's column indices and nonzero ranges start loading, so a step
 *              waits for one memory latency; (b) each 16 x 8 A tile is zeroed in the
 *              warp's 2 x 512-byte slice of shared memory and the tile's own nonzeros
 *              (tile_nz_pos: row * 8 + column, and value) are scattered into it,
 *              atomically because a graph that keeps duplicate edges has two nonzeros at
 *              one position; (c) each lane reads its 4 A elements per tile, both
 *              operands are rounded to TF32 (cvt.rna), and the warp issues NT
 *              mma.sync.m16n8k8 per tile into f32 accumulators.
 *   n-index    MMA column n of n-tile j is feature d0 + (j / V) * 8V + n V + (j % V),
 *   mapping    V = min(NT, 4): the V features a lane needs per B row are adjacent (one
 *              float4 load when dim allows), eight lanes cover 8V adjacent features of
 *              one X row (128 contiguous bytes for V = 4), and the same holds for the
 *              accumulators on the way out (float4 stores; float4 atomics on sm_90).
 * Why per-tile nonzero lists: TC-GNN rescans the whole window for every tile; here a
 * tile costs O(its nonzeros). Why no block-level cooperation: windows have 1 to
 * thousands of tiles; independent warps keep every SM busy with plain occupancy. */
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_runtime.h>
#include <cusparse.h>

#include "kernels/cudalibs.h"
#include "kernels/device_util.h"
#include "kernels/spmm_cuda.h"

namespace {

constexpr int TILE_ROWS = 16;      /* window height: the MMA's M */
constexpr int TILE_COLS = 8;       /* tile width: the MMA's K */
constexpr int WARPS_PER_BLOCK = 4; /* 128 threads, 4 KiB of shared memory per block */
constexpr int MIN_BLOCKS_PER_SM = 4; /* caps registers at 128 per thread: 16 warps per SM */
constexpr int STEP_TILES = 2;      /* tiles a warp works on at once */
constexpr int MIN_ITEM_TILES = 4;  /* shortest run a hub window is cut into */
constexpr int MAX_ITEM_TILES = 32; /* longest run of tiles one warp takes */

/* One warp's share of the windows. 16 bytes, read once per warp. */
struct work_item {
    int64_t first_tile; /* global tile index */
    int32_t window;
    int16_t tiles;      /* 0..item_tiles; 0 for a window without nonzeros (rows = 0) */
    int16_t atomic;     /* 1: a split hub window, rows pre-zeroed, add with atomics */
};

struct condensed_args {
    const int64_t *window_tile_ptr; /* [windows + 1] */
    const int64_t *window_col_ptr;  /* [windows + 1] */
    const int32_t *window_cols;     /* [distinct] */
    const int64_t *tile_nz_ptr;     /* [tiles + 1] */
    const uint8_t *tile_nz_pos;     /* [edges] row * 8 + column inside the tile */
    const float *tile_nz_value;     /* [edges] tile order, or NULL: every value is 1 */
    const work_item *items;
    int64_t item_count;
    int slabs;
    int64_t nodes, dim;
    const float *x;
    float *y;
};

enum context_kind { KIND_CONDENSED, KIND_CUSPARSE };

/* The cuSPARSE entry points this file uses, resolved at run time (kernels/cudalibs.h). */
struct cusparse_api {
    decltype(&cusparseCreate) create;
    decltype(&cusparseDestroy) destroy;
    decltype(&cusparseSetStream) set_stream;
    decltype(&cusparseGetErrorString) error_string;
    decltype(&cusparseCreateCsr) create_csr;
    decltype(&cusparseDestroySpMat) destroy_sp_mat;
    decltype(&cusparseCreateDnMat) create_dn_mat;
    decltype(&cusparseDestroyDnMat) destroy_dn_mat;
    decltype(&cusparseSpMM_bufferSize) spmm_buffer_size;
    decltype(&cusparseSpMM) spmm;
};

} // namespace

struct sdlk_cuda_spmm {
    context_kind kind;
    int64_t nodes, dim;
    cudaStream_t stream;
    cudaEvent_t start, stop;
    float *x, *y; /* device [nodes * dim] */
    /* condensed */
    condensed_args args;
    int64_t *window_tile_ptr, *window_col_ptr, *tile_nz_ptr;
    int32_t *window_cols;
    uint8_t *tile_nz_pos;
    float *tile_nz_value;
    work_item *items;
    int32_t *split_windows; /* windows whose items add atomically: zeroed before each run */
    int64_t split_count;
    int n_tiles; /* NT */
    bool vector_io;
    /* cuSPARSE */
    void *library;
    cusparse_api api;
    cusparseHandle_t handle;
    cusparseSpMatDescr_t a_desc;
    cusparseDnMatDescr_t x_desc, y_desc;
    int32_t *csr_row_ptr, *csr_col_idx;
    float *csr_values;
    void *buffer;
};

/* ---- device code -------------------------------------------------------------------- */

__device__ __forceinline__ uint32_t to_tf32(float v)
{
    uint32_t out;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(out) : "f"(v));
    return out;
}

/* acc += A (16x8, row) * B (8x8, col), TF32 inputs, f32 accumulators. Fragment layout
 * (PTX ISA, mma.m16n8k8 .tf32), lane = 4 g + t: a0 (g, t), a1 (g+8, t), a2 (g, t+4),
 * a3 (g+8, t+4); b0 (k=t, n=g), b1 (k=t+4, n=g); c0/c1 (g, 2t/2t+1), c2/c3 (g+8, ...). */
__device__ __forceinline__ void mma_tf32(float (&acc)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* V adjacent floats from p (features f .. f+V-1 of a row, `valid` of them < dim). */
template <int V, bool VEC>
__device__ __forceinline__ void load_run(const float *__restrict__ p, int64_t valid, float (&v)[V])
{
    if (VEC && valid >= V) { /* p is V-float aligned: dim % V == 0 and f % V == 0 */
        if constexpr (V == 4) {
            float4 q = __ldg(reinterpret_cast<const float4 *>(p));
            v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
        } else if constexpr (V == 2) {
            float2 q = __ldg(reinterpret_cast<const float2 *>(p));
            v[0] = q.x, v[1] = q.y;
        } else {
            v[0] = __ldg(p);
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < V; i++)
        v[i] = i < valid ? __ldg(p + i) : 0.0f;
}

/* B fragment values of one tile row for all NT n-tiles: features of n-index `n` of X row
 * `col` (-1: a column past the window's last, all zero). Kept as f32 until the MMA, so
 * that nothing before it waits for these loads. */
template <int NT, bool VEC>
__device__ __forceinline__ void gather_b(const float *__restrict__ x, int32_t col, int64_t d0,
                                         int n, int64_t dim, float (&b)[NT])
{
    constexpr int V = NT < 4 ? NT : 4;
    if (col < 0) {
#pragma unroll
        for (int j = 0; j < NT; j++)
            b[j] = 0.0f;
        return;
    }
    const float *row = x + (int64_t)col * dim;
#pragma unroll
    for (int q = 0; q < NT / V; q++) {
        int64_t f = d0 + q * 8 * V + n * V;
        float v[V];
        load_run<V, VEC>(row + f, dim - f, v);
#pragma unroll
        for (int i = 0; i < V; i++)
            b[q * V + i] = v[i];
    }
}

/* The accumulators of one output row (`half` 0: row g, 1: row g+8) into Y. */
template <int NT, bool VEC>
__device__ __forceinline__ void store_row(float *__restrict__ y_row, const float (&acc)[NT][4],
                                          int half, int t, int64_t d0, int64_t dim, bool atomic)
{
    constexpr int V = NT < 4 ? NT : 4;
#pragma unroll
    for (int q = 0; q < NT / V; q++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int64_t f = d0 + q * 8 * V + (2 * t + e) * V;
            float v[V];
#pragma unroll
            for (int i = 0; i < V; i++)
                v[i] = acc[q * V + i][2 * half + e];
            if (atomic) {
                bool added = false;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
                /* Hopper adds 2 or 4 adjacent floats in one atomic (aligned as for stores) */
                if (VEC && f + V <= dim) {
                    if constexpr (V == 4) {
                        atomicAdd(reinterpret_cast<float4 *>(y_row + f),
                                  make_float4(v[0], v[1], v[2], v[3]));
                        added = true;
                    } else if constexpr (V == 2) {
                        atomicAdd(reinterpret_cast<float2 *>(y_row + f), make_float2(v[0], v[1]));
                        added = true;
                    }
                }
#endif
#pragma unroll
                for (int i = 0; i < V; i++)
                    if (!added && f + i < dim)
                        atomicAdd(y_row + f + i, v[i]);
            } else if (VEC && f + V <= dim) {
                if constexpr (V == 4)
                    *reinterpret_cast<float4 *>(y_row + f) = make_float4(v[0], v[1], v[2], v[3]);
                else if constexpr (V == 2)
                    *reinterpret_cast<float2 *>(y_row + f) = make_float2(v[0], v[1]);
                else
                    y_row[f] = v[0];
            } else {
#pragma unroll
                for (int i = 0; i < V; i++)
                    if (f + i < dim)
                        y_row[f + i] = v[i];
            }
        }
    }
}

/* What a lane needs of one tile before its loads can start: the X rows of its two tile
 * columns (t and t + 4; -1 past the window's last condensed column, or no tile) and the
 * tile's nonzero range (empty for no tile). Fetched one step ahead, so that a step's X
 * gathers depend on no load of the same step. */
struct tile_ref {
    int32_t col_lo, col_hi;
    int64_t nz_begin, nz_end;
};

__device__ __forceinline__ tile_ref fetch_tile(const condensed_args &a, int64_t tile_index,
                                               int64_t local_tile, int64_t col_base,
                                               int64_t distinct, int t, bool present)
{
    tile_ref r = {-1, -1, 0, 0};
    if (!present)
        return r;
    const int64_t u = local_tile * TILE_COLS + t;
    r.col_lo = u < distinct ? __ldg(a.window_cols + col_base + u) : -1;
    r.col_hi = u + 4 < distinct ? __ldg(a.window_cols + col_base + u + 4) : -1;
    r.nz_begin = __ldg(a.tile_nz_ptr + tile_index);
    r.nz_end = __ldg(a.tile_nz_ptr + tile_index + 1);
    return r;
}

/* A lane's first nonzero of a tile (position -1: none), loaded with the step's other
 * loads; a tile rarely has more than 32 nonzeros, so this is usually all of them. */
struct tile_nz {
    int pos;
    float value;
};

__device__ __forceinline__ tile_nz first_nonzero(const condensed_args &a, const tile_ref &r,
                                                 int lane)
{
    tile_nz nz = {-1, 0.0f};
    const int64_t p = r.nz_begin + lane;
    if (p < r.nz_end) {
        nz.pos = __ldg(a.tile_nz_pos + p) & (TILE_ROWS * TILE_COLS - 1);
        nz.value = a.tile_nz_value ? __ldg(a.tile_nz_value + p) : 1.0f;
    }
    return nz;
}

/* Scatter a tile's nonzeros into its zeroed 16x8 slice (atomically: a graph that keeps
 * duplicate edges has two nonzeros at one position): the lane's first one from `first`,
 * the rest (nonzeros 32.. of the tile) loaded here. */
__device__ __forceinline__ void scatter_tile(const condensed_args &a, const tile_ref &r,
                                             const tile_nz &first, float *tile, int lane)
{
    if (first.pos >= 0)
        atomicAdd(tile + first.pos, first.value);
    for (int64_t p = r.nz_begin + lane + 32; p < r.nz_end; p += 32)
        atomicAdd(tile + (__ldg(a.tile_nz_pos + p) & (TILE_ROWS * TILE_COLS - 1)),
                  a.tile_nz_value ? __ldg(a.tile_nz_value + p) : 1.0f);
}

/* The lane's A fragment of a 16x8 tile in shared memory, rounded to TF32. */
__device__ __forceinline__ void load_a(const float *tile, int g, int t, uint32_t (&frag)[4])
{
    frag[0] = to_tf32(tile[g * TILE_COLS + t]);
    frag[1] = to_tf32(tile[(g + 8) * TILE_COLS + t]);
    frag[2] = to_tf32(tile[g * TILE_COLS + t + 4]);
    frag[3] = to_tf32(tile[(g + 8) * TILE_COLS + t + 4]);
}

/* One warp: one work item x one slab. Tiles go two per step (STEP_TILES): the X gathers and
 * first nonzeros of both are in flight together, and the next step's column indices and
 * nonzero ranges load meanwhile, so a step waits for one memory latency, not three. */
template <int NT, bool VEC>
__global__ void __launch_bounds__(WARPS_PER_BLOCK * 32, MIN_BLOCKS_PER_SM)
    condensed_tf32(const condensed_args a)
{
    __shared__ __align__(16) float a_tiles[WARPS_PER_BLOCK][STEP_TILES][TILE_ROWS * TILE_COLS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int64_t warp_index = (int64_t)blockIdx.x * WARPS_PER_BLOCK + warp;
    if (warp_index >= a.item_count * a.slabs) /* uniform per warp: whole warps leave */
        return;
    const work_item item = a.items[warp_index / a.slabs];
    const int64_t d0 = (warp_index % a.slabs) * (8 * NT);
    const int64_t col_base = a.window_col_ptr[item.window];
    const int64_t distinct = a.window_col_ptr[item.window + 1] - col_base;
    const int64_t first_local = item.first_tile - a.window_tile_ptr[item.window];

    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++)
        acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

    tile_ref next[STEP_TILES];
#pragma unroll
    for (int s = 0; s < STEP_TILES; s++)
        next[s] = fetch_tile(a, item.first_tile + s, first_local + s, col_base, distinct, t,
                             s < item.tiles);
    for (int k = 0; k < item.tiles; k += STEP_TILES) {
        tile_ref cur[STEP_TILES];
        tile_nz first[STEP_TILES];
        float b_lo[STEP_TILES][NT], b_hi[STEP_TILES][NT];
#pragma unroll
        for (int s = 0; s < STEP_TILES; s++) {
            cur[s] = next[s];
            gather_b<NT, VEC>(a.x, cur[s].col_lo, d0, g, a.dim, b_lo[s]);
            gather_b<NT, VEC>(a.x, cur[s].col_hi, d0, g, a.dim, b_hi[s]);
            first[s] = first_nonzero(a, cur[s], lane);
        }
#pragma unroll
        for (int s = 0; s < STEP_TILES; s++) {
            const int kn = k + STEP_TILES + s;
            next[s] = fetch_tile(a, item.first_tile + kn, first_local + kn, col_base, distinct, t,
                                 kn < item.tiles);
        }
        uint32_t frag_a[STEP_TILES][4];
#pragma unroll
        for (int s = 0; s < STEP_TILES; s++) /* one float4 of zeros per lane = 128 floats */
            reinterpret_cast<float4 *>(a_tiles[warp][s])[lane] = make_float4(0.0f, 0.0f, 0.0f,
                                                                             0.0f);
        __syncwarp();
#pragma unroll
        for (int s = 0; s < STEP_TILES; s++)
            scatter_tile(a, cur[s], first[s], a_tiles[warp][s], lane);
        __syncwarp();
#pragma unroll
        for (int s = 0; s < STEP_TILES; s++)
            load_a(a_tiles[warp][s], g, t, frag_a[s]);
        __syncwarp(); /* every lane has read the tiles before the next step overwrites them */
        /* a missing second tile has a zero A and zero B: its MMAs add exact zeros */
#pragma unroll
        for (int s = 0; s < STEP_TILES; s++)
#pragma unroll
            for (int j = 0; j < NT; j++)
                mma_tf32(acc[j], frag_a[s], to_tf32(b_lo[s][j]), to_tf32(b_hi[s][j]));
    }

    const bool atomic = item.atomic != 0;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int64_t row = (int64_t)item.window * TILE_ROWS + g + 8 * half;
        if (row < a.nodes) /* the last window may be short */
            store_row<NT, VEC>(a.y + row * a.dim, acc, half, t, d0, a.dim, atomic);
    }
}

/* Rows of the split (hub) windows = 0, before their items add into them. */
__global__ void zero_window_rows(float *y, const int32_t *windows, int64_t count, int64_t nodes,
                                 int64_t dim)
{
    const int64_t per_window = TILE_ROWS * dim, total = count * per_window;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t row = (int64_t)windows[i / per_window] * TILE_ROWS + (i % per_window) / dim;
        if (row < nodes)
            y[row * dim + i % dim] = 0.0f;
    }
}

/* ---- host helpers ------------------------------------------------------------------- */

namespace {

sdlk_status check_sizes(int64_t nodes, int64_t dim, sdlk_error *err)
{
    if (dim < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "feature width %lld must be >= 1", (long long)dim);
    if (nodes < 0 || (nodes > 0 && dim > INT64_MAX / nodes / (int64_t)sizeof(float)))
        return sdlk_error_set(err, SDLK_ERR_OVERFLOW, "%lld x %lld features overflow",
                              (long long)nodes, (long long)dim);
    return SDLK_OK;
}

/* Stream, events and the X / Y buffers every context has. */
sdlk_status context_open(sdlk_cuda_spmm *ctx, context_kind kind, int64_t nodes, int64_t dim,
                         sdlk_error *err)
{
    ctx->kind = kind;
    ctx->nodes = nodes;
    ctx->dim = dim;
    /* A blocking stream: work on it waits for the legacy stream's uploads (cudaMemcpy). */
    sdlk_status st = sdlk_cuda_check(cudaStreamCreate(&ctx->stream), "cudaStreamCreate", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventCreate(&ctx->start), "cudaEventCreate", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventCreate(&ctx->stop), "cudaEventCreate", err);
    if (!st)
        st = sdlk_cuda_alloc(&ctx->x, (size_t)(nodes * dim), "cudaMalloc (features)", err);
    if (!st)
        st = sdlk_cuda_alloc(&ctx->y, (size_t)(nodes * dim), "cudaMalloc (output)", err);
    return st;
}

/* A pageable cudaMemcpy may return before its DMA reaches the device: wait for every
 * upload before the context is used. */
sdlk_status uploads_done(sdlk_error *err)
{
    return sdlk_cuda_check(cudaDeviceSynchronize(), "upload to the device", err);
}

/* Features per slab: the fewest n-tiles that hold dim, at most 8 (64 features). */
int pick_n_tiles(int64_t dim)
{
    return dim <= 8 ? 1 : dim <= 16 ? 2 : dim <= 32 ? 4 : 8;
}

/* Longest run of tiles per warp: the work of every slab spread over the warps the GPU
 * holds at once, halved, so that no warp outlasts the average much; a power of two in
 * MIN_ITEM_TILES..MAX_ITEM_TILES (shorter runs buy atomics, not time). */
sdlk_status pick_item_tiles(const sdlk_sgt *sgt, int slabs, int *item_tiles, sdlk_error *err)
{
    int sms = 1;
    sdlk_status st = sdlk_cuda_sm_count(&sms, err);
    if (st)
        return st;
    int64_t resident_warps = (int64_t)sms * MIN_BLOCKS_PER_SM * WARPS_PER_BLOCK;
    int64_t per_warp = sgt->tile_count * slabs / (2 * resident_warps);
    int tiles = MIN_ITEM_TILES;
    while (tiles < MAX_ITEM_TILES && 2 * tiles <= per_warp)
        tiles *= 2;
    *item_tiles = tiles;
    return SDLK_OK;
}

/* Work items: a window per item, hub windows cut into runs of item_tiles tiles. */
sdlk_status build_items(const sdlk_sgt *sgt, int item_tiles, std::vector<work_item> &items,
                        std::vector<int32_t> &split, sdlk_error *err)
{
    try {
        items.reserve((size_t)sgt->window_count);
        for (int64_t w = 0; w < sgt->window_count; w++) {
            int64_t first = sgt->window_tile_ptr[w], tiles = sgt->window_tile_ptr[w + 1] - first;
            int16_t atomic = tiles > item_tiles;
            if (atomic)
                split.push_back((int32_t)w);
            int64_t done = 0;
            do {
                int64_t run = tiles - done < item_tiles ? tiles - done : item_tiles;
                items.push_back({first + done, (int32_t)w, (int16_t)run, atomic});
                done += run;
            } while (done < tiles);
        }
    } catch (const std::bad_alloc &) {
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for the GPU work list");
    }
    return SDLK_OK;
}

/* Tile-order values (CSR-order `values` reordered, or the SGT's own); *all_ones when
 * every value is exactly 1, so that the kernel need not read them. */
sdlk_status tile_values(const sdlk_sgt *sgt, const float *values, std::vector<float> &out,
                        bool *all_ones, sdlk_error *err)
{
    *all_ones = true;
    try {
        out.resize((size_t)sgt->edges);
    } catch (const std::bad_alloc &) {
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for the tile values");
    }
    for (int64_t p = 0; p < sgt->edges; p++) {
        float v = values ? values[sgt->tile_nz_edge[p]]
                         : sgt->tile_nz_value ? sgt->tile_nz_value[p] : 1.0f;
        out[(size_t)p] = v;
        *all_ones = *all_ones && v == 1.0f;
    }
    return SDLK_OK;
}

/* row * 8 + column of every tile nonzero, checked (a broken SGT must not write outside
 * the warp's shared-memory tile). */
sdlk_status tile_positions(const sdlk_sgt *sgt, std::vector<uint8_t> &out, sdlk_error *err)
{
    try {
        out.resize((size_t)sgt->edges);
    } catch (const std::bad_alloc &) {
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for the tile positions");
    }
    for (int64_t p = 0; p < sgt->edges; p++) {
        if (sgt->tile_nz_row[p] >= TILE_ROWS || sgt->tile_nz_col[p] >= TILE_COLS)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "condensed tiles: nonzero %lld at (%d, %d) lies outside its "
                                  "16x8 tile",
                                  (long long)p, sgt->tile_nz_row[p], sgt->tile_nz_col[p]);
        out[(size_t)p] = (uint8_t)(sgt->tile_nz_row[p] * TILE_COLS + sgt->tile_nz_col[p]);
    }
    return SDLK_OK;
}

sdlk_status cusparse_check(const sdlk_cuda_spmm *ctx, cusparseStatus_t rc, const char *what,
                           sdlk_error *err)
{
    if (rc == CUSPARSE_STATUS_SUCCESS)
        return SDLK_OK;
    return sdlk_error_set(err, SDLK_ERR_DEVICE, "cuSPARSE %s: %s (status %d)", what,
                          ctx->api.error_string ? ctx->api.error_string(rc) : "error", (int)rc);
}

template <int NT, bool VEC>
void launch_condensed(const sdlk_cuda_spmm *ctx, unsigned blocks)
{
    condensed_tf32<NT, VEC><<<blocks, WARPS_PER_BLOCK * 32, 0, ctx->stream>>>(ctx->args);
}

template <int NT>
void launch_condensed(const sdlk_cuda_spmm *ctx, unsigned blocks)
{
    if (ctx->vector_io)
        launch_condensed<NT, true>(ctx, blocks);
    else
        launch_condensed<NT, false>(ctx, blocks);
}

sdlk_status run_condensed(sdlk_cuda_spmm *ctx, sdlk_error *err)
{
    if (ctx->split_count > 0) {
        int64_t cells = ctx->split_count * TILE_ROWS * ctx->dim;
        int64_t want = (cells + 255) / 256;
        unsigned blocks = want > 4096 ? 4096 : (unsigned)want;
        zero_window_rows<<<blocks, 256, 0, ctx->stream>>>(ctx->y, ctx->split_windows,
                                                          ctx->split_count, ctx->nodes, ctx->dim);
        sdlk_status st = sdlk_cuda_check(cudaGetLastError(), "zero_window_rows launch", err);
        if (st)
            return st;
    }
    int64_t warps = ctx->args.item_count * ctx->args.slabs;
    if (warps == 0)
        return SDLK_OK;
    int64_t blocks = (warps + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK;
    if (blocks > INT32_MAX)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%lld thread blocks exceed the grid limit",
                              (long long)blocks);
    switch (ctx->n_tiles) {
    case 1: launch_condensed<1>(ctx, (unsigned)blocks); break;
    case 2: launch_condensed<2>(ctx, (unsigned)blocks); break;
    case 4: launch_condensed<4>(ctx, (unsigned)blocks); break;
    default: launch_condensed<8>(ctx, (unsigned)blocks); break;
    }
    return sdlk_cuda_check(cudaGetLastError(), "condensed_tf32 launch", err);
}

sdlk_status run_cusparse(sdlk_cuda_spmm *ctx, sdlk_error *err)
{
    const float alpha = 1.0f, beta = 0.0f;
    return cusparse_check(ctx,
                          ctx->api.spmm(ctx->handle, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                        CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, ctx->a_desc,
                                        ctx->x_desc, &beta, ctx->y_desc, CUDA_R_32F,
                                        CUSPARSE_SPMM_CSR_ALG2, ctx->buffer),
                          "cusparseSpMM", err);
}

/* What create_condensed builds from: the tiles and the slab width (0: pick_n_tiles). */
struct condensed_source {
    const sdlk_sgt *sgt;
    int n_tiles;
};

sdlk_status create_condensed(const condensed_source *source, const float *values, int64_t dim,
                             sdlk_cuda_spmm *ctx, sdlk_error *err)
{
    const sdlk_sgt *sgt = source->sgt;
    if (sgt->window_height != TILE_ROWS || sgt->tile_width != TILE_COLS)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "the GPU kernel needs 16x8 condensed tiles (the m16n8k8 MMA "
                              "shape); these are %dx%d: condense with the default sizes or "
                              "run on the CPU",
                              sgt->window_height, sgt->tile_width);
    sdlk_status st = check_sizes(sgt->nodes, dim, err);
    if (st)
        return st;
    int n_tiles = source->n_tiles ? source->n_tiles : pick_n_tiles(dim);
    if (n_tiles != 1 && n_tiles != 2 && n_tiles != 4 && n_tiles != 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "slab width %d n-tiles: use 1, 2, 4 or 8",
                              n_tiles);
    int slabs = (int)((dim + 8 * n_tiles - 1) / (8 * n_tiles));
    int item_tiles = MAX_ITEM_TILES;
    std::vector<work_item> items;
    std::vector<int32_t> split;
    std::vector<float> tv;
    std::vector<uint8_t> pos;
    bool all_ones = true;
    if ((st = pick_item_tiles(sgt, slabs, &item_tiles, err)) ||
        (st = build_items(sgt, item_tiles, items, split, err)) ||
        (st = tile_values(sgt, values, tv, &all_ones, err)) ||
        (st = tile_positions(sgt, pos, err)) ||
        (st = context_open(ctx, KIND_CONDENSED, sgt->nodes, dim, err)))
        return st;
    int64_t windows = sgt->window_count;
    if ((st = sdlk_cuda_upload(&ctx->window_tile_ptr, sgt->window_tile_ptr, (size_t)(windows + 1),
                               "upload (graph)", err)) ||
        (st = sdlk_cuda_upload(&ctx->window_col_ptr, sgt->window_col_ptr, (size_t)(windows + 1),
                               "upload (graph)", err)) ||
        (st = sdlk_cuda_upload(&ctx->window_cols, sgt->window_cols, (size_t)(sgt->distinct),
                               "upload (graph)", err)) ||
        (st = sdlk_cuda_upload(&ctx->tile_nz_ptr, sgt->tile_nz_ptr, (size_t)(sgt->tile_count + 1),
                               "upload (graph)", err)) ||
        (st = sdlk_cuda_upload(&ctx->tile_nz_pos, pos.data(), pos.size(), "upload (graph)", err)) ||
        (st = sdlk_cuda_upload(&ctx->items, items.data(), items.size(), "upload (graph)", err)) ||
        (st = sdlk_cuda_upload(&ctx->split_windows, split.data(), split.size(),
                               "upload (graph)", err)))
        return st;
    if (!all_ones && (st = sdlk_cuda_upload(&ctx->tile_nz_value, tv.data(), tv.size(),
                                            "upload (graph)", err)))
        return st;
    ctx->split_count = (int64_t)split.size();
    ctx->n_tiles = n_tiles;
    int vector_width = ctx->n_tiles < 4 ? ctx->n_tiles : 4;
    ctx->vector_io = dim % vector_width == 0; /* every V-float run is then V-aligned */
    condensed_args &a = ctx->args;
    a.window_tile_ptr = ctx->window_tile_ptr;
    a.window_col_ptr = ctx->window_col_ptr;
    a.window_cols = ctx->window_cols;
    a.tile_nz_ptr = ctx->tile_nz_ptr;
    a.tile_nz_pos = ctx->tile_nz_pos;
    a.tile_nz_value = all_ones ? nullptr : ctx->tile_nz_value;
    a.items = ctx->items;
    a.item_count = (int64_t)items.size();
    a.slabs = slabs;
    a.nodes = sgt->nodes;
    a.dim = dim;
    a.x = ctx->x;
    a.y = ctx->y;
    return uploads_done(err);
}

sdlk_status create_cusparse(const sdlk_graph *g, const float *values, int64_t dim,
                            sdlk_cuda_spmm *ctx, sdlk_error *err)
{
    sdlk_status st = check_sizes(g->nodes, dim, err);
    if (st)
        return st;
    if (g->edges > INT32_MAX || g->nodes > INT32_MAX)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "the cuSPARSE baseline uses 32-bit indices: %lld edges is too many",
                              (long long)g->edges);
    const sdlk_cuda_symbol symbols[] = {
        {"cusparseCreate", (void **)&ctx->api.create},
        {"cusparseDestroy", (void **)&ctx->api.destroy},
        {"cusparseSetStream", (void **)&ctx->api.set_stream},
        {"cusparseGetErrorString", (void **)&ctx->api.error_string},
        {"cusparseCreateCsr", (void **)&ctx->api.create_csr},
        {"cusparseDestroySpMat", (void **)&ctx->api.destroy_sp_mat},
        {"cusparseCreateDnMat", (void **)&ctx->api.create_dn_mat},
        {"cusparseDestroyDnMat", (void **)&ctx->api.destroy_dn_mat},
        {"cusparseSpMM_bufferSize", (void **)&ctx->api.spmm_buffer_size},
        {"cusparseSpMM", (void **)&ctx->api.spmm},
    };
    if ((st = sdlk_cuda_load(SDLK_CUDA_CUSPARSE, symbols, sizeof symbols / sizeof symbols[0],
                             &ctx->library, err)))
        return st;
    if ((st = context_open(ctx, KIND_CUSPARSE, g->nodes, dim, err)))
        return st;
    /* 32-bit CSR arrays and explicit values (cuSPARSE has no implicit-ones CSR) */
    std::vector<int32_t> row_ptr;
    std::vector<float> vals;
    try {
        row_ptr.resize((size_t)g->nodes + 1);
        vals.resize((size_t)g->edges);
    } catch (const std::bad_alloc &) {
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for the CSR copy");
    }
    for (int64_t r = 0; r <= g->nodes; r++)
        row_ptr[(size_t)r] = (int32_t)g->row_ptr[r];
    const float *src = values ? values : g->values;
    for (int64_t k = 0; k < g->edges; k++)
        vals[(size_t)k] = src ? src[k] : 1.0f;
    if ((st = sdlk_cuda_upload(&ctx->csr_row_ptr, row_ptr.data(), (size_t)(g->nodes + 1),
                               "upload (graph)", err)) ||
        (st = sdlk_cuda_upload(&ctx->csr_col_idx, g->col_idx, (size_t)(g->edges),
                               "upload (graph)", err)) ||
        (st = sdlk_cuda_upload(&ctx->csr_values, vals.data(), (size_t)(g->edges),
                               "upload (graph)", err)))
        return st;
    cusparse_api &f = ctx->api;
    if ((st = cusparse_check(ctx, f.create(&ctx->handle), "cusparseCreate", err)))
        return st;
    if ((st = cusparse_check(ctx, f.set_stream(ctx->handle, ctx->stream), "cusparseSetStream",
                             err)) ||
        (st = cusparse_check(ctx,
                             f.create_csr(&ctx->a_desc, g->nodes, g->nodes, g->edges,
                                          ctx->csr_row_ptr, ctx->csr_col_idx, ctx->csr_values,
                                          CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I,
                                          CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F),
                             "cusparseCreateCsr", err)) ||
        (st = cusparse_check(ctx,
                             f.create_dn_mat(&ctx->x_desc, g->nodes, dim, dim, ctx->x, CUDA_R_32F,
                                             CUSPARSE_ORDER_ROW),
                             "cusparseCreateDnMat", err)) ||
        (st = cusparse_check(ctx,
                             f.create_dn_mat(&ctx->y_desc, g->nodes, dim, dim, ctx->y, CUDA_R_32F,
                                             CUSPARSE_ORDER_ROW),
                             "cusparseCreateDnMat", err)))
        return st;
    const float alpha = 1.0f, beta = 0.0f;
    size_t buffer_bytes = 0;
    if ((st = cusparse_check(ctx,
                             f.spmm_buffer_size(ctx->handle, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                                CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha,
                                                ctx->a_desc, ctx->x_desc, &beta, ctx->y_desc,
                                                CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG2, &buffer_bytes),
                             "cusparseSpMM_bufferSize", err)))
        return st;
    if ((st = sdlk_cuda_check(cudaMalloc(&ctx->buffer, buffer_bytes ? buffer_bytes : 16),
                              "cudaMalloc (cuSPARSE buffer)", err)))
        return st;
    return uploads_done(err);
}

} // namespace

/* ---- the C API ---------------------------------------------------------------------- */

extern "C" void sdlk_cuda_spmm_destroy(sdlk_cuda_spmm *ctx)
{
    if (!ctx)
        return;
    if (ctx->stream)
        cudaStreamSynchronize(ctx->stream);
    if (ctx->handle) {
        if (ctx->a_desc)
            ctx->api.destroy_sp_mat(ctx->a_desc);
        if (ctx->x_desc)
            ctx->api.destroy_dn_mat(ctx->x_desc);
        if (ctx->y_desc)
            ctx->api.destroy_dn_mat(ctx->y_desc);
        ctx->api.destroy(ctx->handle);
    }
    void *buffers[] = {ctx->x, ctx->y, ctx->window_tile_ptr, ctx->window_col_ptr,
                       ctx->tile_nz_ptr, ctx->window_cols, ctx->tile_nz_pos, ctx->tile_nz_value,
                       ctx->items, ctx->split_windows, ctx->csr_row_ptr, ctx->csr_col_idx,
                       ctx->csr_values, ctx->buffer};
    for (void *p : buffers)
        if (p)
            cudaFree(p);
    if (ctx->start)
        cudaEventDestroy(ctx->start);
    if (ctx->stop)
        cudaEventDestroy(ctx->stop);
    if (ctx->stream)
        cudaStreamDestroy(ctx->stream);
    sdlk_cuda_unload(ctx->library); /* after every cuSPARSE call */
    free(ctx);
}

/* Allocate a zeroed context, let `build` fill it from `source`, and destroy it again if
 * that fails. */
template <typename Source>
static sdlk_status create_with(sdlk_status (*build)(const Source *, const float *, int64_t,
                                                    sdlk_cuda_spmm *, sdlk_error *),
                               const Source *source, const float *values, int64_t dim,
                               sdlk_cuda_spmm **out, sdlk_error *err)
{
    *out = nullptr;
    sdlk_cuda_spmm *ctx = (sdlk_cuda_spmm *)calloc(1, sizeof *ctx);
    if (!ctx)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    sdlk_status st = build(source, values, dim, ctx, err);
    if (st) {
        sdlk_cuda_spmm_destroy(ctx);
        return st;
    }
    *out = ctx;
    return SDLK_OK;
}

extern "C" sdlk_status sdlk_cuda_spmm_create_condensed(const sdlk_sgt *sgt, const float *values,
                                                       int64_t dim, sdlk_cuda_spmm **out,
                                                       sdlk_error *err)
{
    return sdlk_cuda_spmm_create_condensed_slab(sgt, values, dim, 0, out, err);
}

extern "C" sdlk_status sdlk_cuda_spmm_create_condensed_slab(const sdlk_sgt *sgt,
                                                            const float *values, int64_t dim,
                                                            int n_tiles, sdlk_cuda_spmm **out,
                                                            sdlk_error *err)
{
    const condensed_source source = {sgt, n_tiles};
    return create_with(create_condensed, &source, values, dim, out, err);
}

extern "C" sdlk_status sdlk_cuda_spmm_create_cusparse(const sdlk_graph *g, const float *values,
                                                      int64_t dim, sdlk_cuda_spmm **out,
                                                      sdlk_error *err)
{
    return create_with(create_cusparse, g, values, dim, out, err);
}

extern "C" sdlk_status sdlk_cuda_spmm_set_x(sdlk_cuda_spmm *ctx, const float *x, sdlk_error *err)
{
    size_t bytes = (size_t)(ctx->nodes * ctx->dim) * sizeof(float);
    if (bytes == 0)
        return SDLK_OK;
    sdlk_status st = sdlk_cuda_check(cudaMemcpyAsync(ctx->x, x, bytes, cudaMemcpyHostToDevice,
                                                     ctx->stream),
                                     "cudaMemcpy of X", err);
    return st ? st
              : sdlk_cuda_check(cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize", err);
}

extern "C" sdlk_status sdlk_cuda_spmm_poison_y(sdlk_cuda_spmm *ctx, sdlk_error *err)
{
    size_t bytes = (size_t)(ctx->nodes * ctx->dim) * sizeof(float);
    if (bytes == 0)
        return SDLK_OK;
    sdlk_status st = sdlk_cuda_check(cudaMemsetAsync(ctx->y, 0xff, bytes, ctx->stream),
                                     "cudaMemset of Y", err);
    return st ? st
              : sdlk_cuda_check(cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize", err);
}

extern "C" sdlk_status sdlk_cuda_spmm_run(sdlk_cuda_spmm *ctx, sdlk_error *err)
{
    if (ctx->nodes == 0)
        return SDLK_OK;
    return ctx->kind == KIND_CONDENSED ? run_condensed(ctx, err) : run_cusparse(ctx, err);
}

extern "C" sdlk_status sdlk_cuda_spmm_get_y(sdlk_cuda_spmm *ctx, float *y, sdlk_error *err)
{
    sdlk_status st = sdlk_cuda_check(cudaStreamSynchronize(ctx->stream), "SpMM", err);
    size_t bytes = (size_t)(ctx->nodes * ctx->dim) * sizeof(float);
    if (!st && bytes)
        st = sdlk_cuda_check(cudaMemcpy(y, ctx->y, bytes, cudaMemcpyDeviceToHost),
                             "cudaMemcpy of Y", err);
    return st;
}

extern "C" sdlk_status sdlk_cuda_spmm_time(sdlk_cuda_spmm *ctx, int warmup, int reps,
                                           double *median_ms, sdlk_error *err)
{
    if (reps < 1 || reps > 1000 || warmup < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG, "timing: %d reps (1..1000), %d warm-up runs",
                              reps, warmup);
    sdlk_status st = SDLK_OK;
    for (int i = 0; i < warmup && !st; i++)
        st = sdlk_cuda_spmm_run(ctx, err);
    if (!st)
        st = sdlk_cuda_check(cudaStreamSynchronize(ctx->stream), "SpMM warm-up", err);
    double ms[1000];
    for (int i = 0; i < reps && !st; i++) {
        float elapsed = 0;
        st = sdlk_cuda_time_once([&] { return sdlk_cuda_spmm_run(ctx, err); }, ctx->start, ctx->stop,
                                 ctx->stream, "SpMM (timed)", &elapsed, err);
        ms[i] = elapsed;
    }
    if (st)
        return st;
    *median_ms = sdlk_median_ms(ms, reps);
    return SDLK_OK;
}

extern "C" sdlk_status sdlk_cuda_spmm_condensed(const sdlk_sgt *sgt, const float *values,
                                                const float *x, int64_t dim, float *y,
                                                sdlk_error *err)
{
    sdlk_cuda_spmm *ctx = nullptr;
    sdlk_status st = sdlk_cuda_spmm_create_condensed(sgt, values, dim, &ctx, err);
    if (!st)
        st = sdlk_cuda_spmm_set_x(ctx, x, err);
    if (!st)
        st = sdlk_cuda_spmm_run(ctx, err);
    if (!st)
        st = sdlk_cuda_spmm_get_y(ctx, y, err);
    sdlk_cuda_spmm_destroy(ctx);
    return st;
}
