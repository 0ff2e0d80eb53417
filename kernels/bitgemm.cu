/* bitgemm.cu -- 1-bit tensor-core GEMM for bit-plane packed operands (APNN-TC); the
 * contract, the layout and the design are in bitgemm_cuda.h.
 *
 * Block tile: 128 A plane rows x 128 B plane rows, 8 warps as 2 (M) x 4 (N), each warp
 * 64 x 32 plane rows = 4 x 4 mma.sync.m16n8k256 tiles (64 int32 accumulators per
 * thread). K streams in chunks of 1024 bits (128 bytes per plane row) through a 3-stage
 * cp.async pipeline: 2 x 16 KiB per stage, 96 KiB of dynamic shared memory, 2 blocks per
 * SM on sm_80/sm_90.
 *
 * Shared-memory layout of one operand tile: row r (a plane row) at r * 128 bytes, its 16
 * byte segment s stored at segment s ^ ((r & 3) << 1). A warp's fragment load reads, per
 * K step of 256 bits, 8 bytes per thread from 4 consecutive rows at the same logical
 * offset; the swizzle puts those rows in 4 different 32-byte bank groups, so the loads are
 * conflict-free, and the cp.async writes (one row per 8 threads) stay conflict-free too.
 *
 * Which K bits go into which fragment register does not need to follow the PTX element
 * order: popcount(a AND b) sums over k, so any assignment works as long as A's register
 * that pairs with B's (a0/a1 with b0, a2/a3 with b1, same thread-in-group) holds the same
 * k. Here thread t of a group takes bytes 8t..8t+3 (a0, a1 / b0) and 8t+4..8t+7
 * (a2, a3 / b1) of each 32-byte K step, for A and B alike. The row assignment does follow
 * the PTX: a0, a2 row groupID, a1, a3 row groupID + 8; B column groupID; accumulators
 * c0, c1 at row groupID, columns 2t, 2t + 1, c2, c3 at row groupID + 8.
 */
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/bitgemm_cuda.h"
#include "kernels/cudalibs.h"
#include "kernels/device_util.h"

namespace {

constexpr int TILE_PLANES = 128; /* plane rows of A and of B per block */
constexpr int WARPS_M = 2, WARPS_N = 4;
constexpr int THREADS = 32 * WARPS_M * WARPS_N;
constexpr int WARP_ROWS = TILE_PLANES / WARPS_M; /* 64 */
constexpr int WARP_COLS = TILE_PLANES / WARPS_N; /* 32 */
constexpr int FRAG_M = WARP_ROWS / 16;           /* m16 tiles per warp */
constexpr int FRAG_N = WARP_COLS / 8;            /* n8 tiles per warp */
constexpr int CHUNK_BYTES = 128;                 /* K bits per stage and plane row: 1024 */
constexpr int CHUNK_WORDS = CHUNK_BYTES / 8;
constexpr int STEP_WORDS = 4;                    /* one m16n8k256 K step = 256 bits */
constexpr int SEGS_PER_ROW = CHUNK_BYTES / 16;
constexpr int STAGES = 3;
constexpr int TILE_BYTES = TILE_PLANES * CHUNK_BYTES;
constexpr int STAGE_BYTES = 2 * TILE_BYTES;
constexpr int PIPE_BYTES = STAGES * STAGE_BYTES;
constexpr int P_STRIDE = TILE_PLANES + 8; /* int32 per row of the epilogue's popcount tile */
constexpr int P_BYTES = TILE_PLANES * P_STRIDE * 4;
constexpr int SMEM_BYTES = PIPE_BYTES > P_BYTES ? PIPE_BYTES : P_BYTES;
constexpr int ROW_TERM_THREADS = 256; /* one warp per operand row */
constexpr int MAX_GRID_Y = 65535;
constexpr int MAX_REPS = 64;

static_assert(TILE_PLANES * SEGS_PER_ROW % THREADS == 0, "whole segments per thread");
static_assert(SMEM_BYTES <= 99 * 1024, "shared memory must fit sm_86/sm_89 too");

struct plane_weights {
    int32_t w[8];
};

/* Everything the GEMM kernel reads, passed by value (kernel parameter space). */
struct gemm_args {
    const uint64_t *a, *b; /* plane rows, bitpack.h layout */
    int64_t m, n, k, kw;   /* output rows, columns, true K, words per plane */
    int abits, wbits;
    int rows_a, rows_b;    /* output rows / columns per block: 128 / bits */
    uint32_t pair_weight[64]; /* wa_p * wb_q at [p * 8 + q], mod 2^32 */
    const uint32_t *off_a, *off_b;   /* constant - zero point per row */
    const uint32_t *wsum_a, *wsum_b; /* sum_p w_p popcount(plane p) per row */
    const int32_t *popc_a, *popc_b;  /* popcount(plane 0) per row (XOR form) */
    const float *scale_a, *scale_b;
    int64_t scale_a_count, scale_b_count;
    int32_t *y_int;
    float *y_f32;
    /* requantized output (planes NULL: none): 32-bit words, rq_words32 per plane */
    uint32_t *planes;
    int64_t rq_words32;
    int rq_bits, rq_zero;
    float rq_inv_scale, rq_lo, rq_hi; /* clamp bounds min - zero, max - zero */
};

/* ---- device helpers ------------------------------------------------------------------- */

__device__ __forceinline__ void cp_async16(void *smem_dst, const void *gmem_src, int src_bytes)
{
    /* src_bytes 0 writes 16 zero bytes and reads nothing (zero fill past the edges) */
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src),
                 "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int PENDING> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

/* d += popcount(a OP b) over a 16 x 8 x 256 bit tile */
template <int BITOP>
__device__ __forceinline__ void bmma(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                     uint32_t a3, uint32_t b0, uint32_t b1)
{
    if (BITOP == SDLK_CUDA_BITOP_AND) {
        asm("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
        asm("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.xor.popc "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
        /* the host refuses the XOR form on these devices (sdlk_cuda_qgemm_create) */
        __trap();
#endif
    }
}

/* byte offset of logical 16-byte segment `seg` of tile row `row` (see the file comment) */
__device__ __forceinline__ int tile_offset(int row, int seg)
{
    return row * CHUNK_BYTES + ((seg ^ ((row & 3) << 1)) << 4);
}

/* Start the copy of one operand's chunk: tile rows 0..127 = plane rows row0.., words
 * word0 .. word0 + 15. Rows past `rows_used` (the block's last whole output row) or past
 * the matrix, and words past kw, are zero-filled: they add nothing to AND or XOR counts
 * of valid pairs, and the counts of invalid rows are never written out. */
__device__ __forceinline__ void load_tile(unsigned char *dst, const uint64_t *src, int64_t row0,
                                          int rows_used, int64_t total_rows, int64_t kw,
                                          int64_t word0)
{
#pragma unroll
    for (int it = 0; it < TILE_PLANES * SEGS_PER_ROW / THREADS; it++) {
        const int i = threadIdx.x + it * THREADS;
        const int r = i / SEGS_PER_ROW, seg = i % SEGS_PER_ROW;
        const int64_t row = row0 + r, word = word0 + 2 * seg;
        /* kw is a multiple of 4 and word even: word < kw implies word + 1 < kw */
        const bool valid = r < rows_used && row < total_rows && word < kw;
        const uint64_t *from = valid ? src + row * kw + word : src;
        cp_async16(dst + tile_offset(r, seg), from, valid ? 16 : 0);
    }
}

/* The next layer's code of one output (sdlk_quantize's arithmetic, see bitgemm_cuda.h),
 * OR-ed bit by bit into its planes: row m is the next layer's row, column n its k. */
__device__ __forceinline__ void requantize_store(const gemm_args &args, int64_t m, int64_t n,
                                                 float y)
{
    float t = __fmul_rn(y, args.rq_inv_scale);
    t = t > args.rq_lo ? t : args.rq_lo; /* same operand order as the CPU: NaN -> low end */
    t = t < args.rq_hi ? t : args.rq_hi;
    const uint32_t q = (uint32_t)(__float2int_rn(t) + args.rq_zero);
    uint32_t *word = args.planes + (size_t)m * (size_t)args.rq_bits * (size_t)args.rq_words32 +
                     (size_t)(n / 32);
    const uint32_t bit = 1u << (n % 32);
    for (int p = 0; p < args.rq_bits; p++)
        if ((q >> p) & 1u)
            atomicOr(word + (size_t)p * (size_t)args.rq_words32, bit);
}

/* The stacked 1-bit GEMM with the fused epilogue; one block per 128 x 128 plane tile. */
template <int BITOP>
__global__ void __launch_bounds__(THREADS, 2) bitgemm_kernel(const gemm_args args)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int warp_row = (warp / WARPS_N) * WARP_ROWS, warp_col = (warp % WARPS_N) * WARP_COLS;
    const int64_t out_m0 = (int64_t)blockIdx.y * args.rows_a;
    const int64_t out_n0 = (int64_t)blockIdx.x * args.rows_b;
    const int used_a = args.rows_a * args.abits, used_b = args.rows_b * args.wbits;
    const int64_t planes_a = args.m * args.abits, planes_b = args.n * args.wbits;
    const int64_t chunks = (args.kw + CHUNK_WORDS - 1) / CHUNK_WORDS;

    auto load_chunk = [&](int64_t c) {
        unsigned char *stage = smem + (int)(c % STAGES) * STAGE_BYTES;
        load_tile(stage, args.a, out_m0 * args.abits, used_a, planes_a, args.kw, c * CHUNK_WORDS);
        load_tile(stage + TILE_BYTES, args.b, out_n0 * args.wbits, used_b, planes_b, args.kw,
                  c * CHUNK_WORDS);
    };

    int acc[FRAG_M][FRAG_N][4];
#pragma unroll
    for (int i = 0; i < FRAG_M; i++)
#pragma unroll
        for (int j = 0; j < FRAG_N; j++)
#pragma unroll
            for (int q = 0; q < 4; q++)
                acc[i][j][q] = 0;

    /* one commit group per chunk, empty ones included, so that wait_group counts match */
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < chunks)
            load_chunk(s);
        cp_async_commit();
    }
    for (int64_t c = 0; c < chunks; c++) {
        cp_async_wait<STAGES - 2>(); /* chunk c has landed (for this thread) ... */
        __syncthreads();             /* ... for all threads; and chunk c - 1 is consumed */
        if (c + STAGES - 1 < chunks)
            load_chunk(c + STAGES - 1); /* into the stage chunk c - 1 used */
        cp_async_commit();

        const unsigned char *sa = smem + (int)(c % STAGES) * STAGE_BYTES;
        const unsigned char *sb = sa + TILE_BYTES;
        const int64_t words_left = args.kw - c * CHUNK_WORDS;
        const int steps = words_left >= CHUNK_WORDS ? CHUNK_WORDS / STEP_WORDS
                                                    : (int)(words_left / STEP_WORDS);
#pragma unroll
        for (int s = 0; s < CHUNK_WORDS / STEP_WORDS; s++) {
            if (s >= steps)
                break;
            /* this thread's 8 bytes of the step: logical byte s * 32 + t * 8 */
            const int seg = s * 2 + (t >> 1), half = (t & 1) * 8;
            uint2 a_lo[FRAG_M], a_hi[FRAG_M], b[FRAG_N];
#pragma unroll
            for (int i = 0; i < FRAG_M; i++) {
                const int r = warp_row + i * 16 + g;
                a_lo[i] = *reinterpret_cast<const uint2 *>(sa + tile_offset(r, seg) + half);
                a_hi[i] = *reinterpret_cast<const uint2 *>(sa + tile_offset(r + 8, seg) + half);
            }
#pragma unroll
            for (int j = 0; j < FRAG_N; j++) {
                const int r = warp_col + j * 8 + g;
                b[j] = *reinterpret_cast<const uint2 *>(sb + tile_offset(r, seg) + half);
            }
#pragma unroll
            for (int i = 0; i < FRAG_M; i++)
#pragma unroll
                for (int j = 0; j < FRAG_N; j++)
                    bmma<BITOP>(acc[i][j], a_lo[i].x, a_hi[i].x, a_lo[i].y, a_hi[i].y, b[j].x,
                                b[j].y);
        }
    }
    cp_async_wait<0>(); /* only empty groups can be pending; drain them before reuse */
    __syncthreads();    /* every warp is done with the pipeline buffers */

    /* the popcounts of the block's 128 x 128 plane pairs, row-major, in shared memory */
    int32_t *P = reinterpret_cast<int32_t *>(smem);
#pragma unroll
    for (int i = 0; i < FRAG_M; i++)
#pragma unroll
        for (int j = 0; j < FRAG_N; j++) {
            const int r = warp_row + i * 16 + g, col = warp_col + j * 8 + 2 * t;
            *reinterpret_cast<int2 *>(P + r * P_STRIDE + col) = make_int2(acc[i][j][0], acc[i][j][1]);
            *reinterpret_cast<int2 *>(P + (r + 8) * P_STRIDE + col) =
                make_int2(acc[i][j][2], acc[i][j][3]);
        }
    __syncthreads();

    /* one output per thread and step; consecutive threads take consecutive columns so
     * that the stores coalesce */
    const uint32_t k32 = (uint32_t)args.k;
    for (int o = threadIdx.x; o < args.rows_a * args.rows_b; o += THREADS) {
        const int i = o / args.rows_b, j = o % args.rows_b;
        const int64_t m = out_m0 + i, n = out_n0 + j;
        if (m >= args.m || n >= args.n)
            continue;
        uint32_t s = 0;
        if (BITOP == SDLK_CUDA_BITOP_XOR) {
            /* 1-bit operands: popcount(a AND b) = (popcount(a) + popcount(b) - X) / 2 */
            const int32_t x = P[i * P_STRIDE + j];
            const int32_t both = (args.popc_a[m] + args.popc_b[n] - x) / 2;
            s = args.pair_weight[0] * (uint32_t)both;
        } else {
            /* constant indices into the parameter array (a runtime index would make the
             * compiler copy the whole argument block to local memory) */
            const int32_t *row = P + i * args.abits * P_STRIDE + j * args.wbits;
#pragma unroll
            for (int p = 0; p < 8; p++) {
                if (p >= args.abits)
                    break;
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    if (q >= args.wbits)
                        break;
                    s += args.pair_weight[p * 8 + q] * (uint32_t)row[p * P_STRIDE + q];
                }
            }
        }
        /* wrap-around 32-bit, as the CPU's finish_row: exact since |Y| < 2^31 */
        const uint32_t oa = args.off_a[m], ob = args.off_b[n];
        const uint32_t y = s + ob * args.wsum_a[m] + oa * (args.wsum_b[n] + k32 * ob);
        const size_t at = (size_t)m * (size_t)args.n + (size_t)n;
        if (args.y_int)
            args.y_int[at] = (int32_t)y;
        if (args.y_f32 || args.planes) {
            const float sa = args.scale_a ? args.scale_a[args.scale_a_count == 1 ? 0 : m] : 1.0f;
            const float sb = args.scale_b ? args.scale_b[args.scale_b_count == 1 ? 0 : n] : 1.0f;
            /* no FMA contraction and round-to-nearest conversion: the CPU's exact value */
            const float yf = __fmul_rn(__fmul_rn(__int2float_rn((int32_t)y), sa), sb);
            if (args.y_f32)
                args.y_f32[at] = yf;
            if (args.planes)
                requantize_store(args, m, n, yf);
        }
    }
}

/* Per operand row: wsum = sum_p w_p popcount(plane p), popc0 = popcount(plane 0). One warp
 * per row, lanes striding over the words, a shuffle reduction per plane. */
__global__ void __launch_bounds__(ROW_TERM_THREADS) row_terms_kernel(const uint64_t *words,
                                                                     int64_t rows, int bits,
                                                                     int64_t kw,
                                                                     plane_weights weights,
                                                                     uint32_t *wsum,
                                                                     int32_t *popc0)
{
    const int64_t row = ((int64_t)blockIdx.x * ROW_TERM_THREADS + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (row >= rows) /* the same for all lanes of a warp: the shuffles below stay full */
        return;
    uint32_t sum = 0;
#pragma unroll
    for (int p = 0; p < 8; p++) { /* constant indices into weights: see bitgemm_kernel */
        if (p >= bits)
            break;
        const uint64_t *plane = words + (row * bits + p) * kw;
        int count = 0;
        for (int64_t w = lane; w < kw; w += 32)
            count += __popcll(plane[w]);
        for (int off = 16; off > 0; off >>= 1)
            count += __shfl_xor_sync(0xffffffffu, count, off);
        sum += (uint32_t)weights.w[p] * (uint32_t)count;
        if (p == 0 && lane == 0)
            popc0[row] = count;
    }
    if (lane == 0)
        wsum[row] = sum;
}

/* ---- host helpers ---------------------------------------------------------------------- */

sdlk_status device_major(int *major, sdlk_error *err)
{
    return sdlk_cuda_attribute(cudaDevAttrComputeCapabilityMajor, major, err);
}

/* Event-timed runs of `run` (a callable returning sdlk_status) on the legacy stream. */
template <typename F>
sdlk_status time_runs(F run, int warmup, int reps, double *median_ms, sdlk_error *err)
{
    if (reps < 1 || reps > MAX_REPS || warmup < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG, "timing: reps must be 1..%d, warmup >= 0 (got %d, %d)",
                              MAX_REPS, reps, warmup);
    cudaEvent_t start = nullptr, stop = nullptr;
    sdlk_status st = sdlk_cuda_check(cudaEventCreate(&start), "cudaEventCreate", err);
    if (!st)
        st = sdlk_cuda_check(cudaEventCreate(&stop), "cudaEventCreate", err);
    for (int i = 0; !st && i < warmup; i++)
        st = run();
    if (!st)
        st = sdlk_cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (warm-up)", err);
    double ms[MAX_REPS];
    for (int i = 0; !st && i < reps; i++) {
        float elapsed = 0;
        st = sdlk_cuda_time_once(run, start, stop, 0, "cudaEventSynchronize (timed run)", &elapsed,
                                 err);
        ms[i] = elapsed;
    }
    if (start)
        cudaEventDestroy(start);
    if (stop)
        cudaEventDestroy(stop);
    if (!st)
        *median_ms = sdlk_median_ms(ms, reps);
    return st;
}

sdlk_status check_operand(const char *role, const sdlk_cuda_qgemm_operand *o, int64_t kw,
                          sdlk_error *err)
{
    if (o->bits < 1 || o->bits > 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: bits must be 1..8, got %d", role, o->bits);
    if (o->rows < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: negative row count", role);
    if (o->rows > 0 && kw > 0 && !o->words)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: no words", role);
    if (o->rows > 0 && !o->offset)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: no per-row offsets", role);
    if (o->scale && o->scale_count != 1 && o->scale_count != o->rows)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s scales: %lld values for %lld rows", role,
                              (long long)o->scale_count, (long long)o->rows);
    return SDLK_OK;
}

sdlk_status check_problem(const sdlk_cuda_qgemm_problem *p, sdlk_error *err)
{
    sdlk_status st;
    if ((st = check_operand("A", &p->a, p->k_words, err)) ||
        (st = check_operand("B", &p->b, p->k_words, err)))
        return st;
    if (p->k_words < 0 || p->k_words % STEP_WORDS || p->k < 0 || p->k > p->k_words * 64 ||
        p->k > INT32_MAX)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "K = %lld in %lld words per plane: words must be a multiple of %d "
                              "holding K bits",
                              (long long)p->k, (long long)p->k_words, STEP_WORDS);
    const sdlk_cuda_qgemm_requant *rq = &p->requant;
    if (!p->want_int32 && !p->want_f32 && !rq->bits)
        return sdlk_error_set(err, SDLK_ERR_ARG, "no output requested (int32, f32, requant all off)");
    /* the codes must fit the bits as unsigned or as two's complement */
    const bool rq_fits = rq->bits >= 1 && rq->bits <= 8 && rq->min <= rq->max &&
                         ((rq->min >= 0 && rq->max <= (1 << rq->bits) - 1) ||
                          (rq->min >= -(1 << (rq->bits - 1)) && rq->max < (1 << (rq->bits - 1))));
    if (rq->bits && (!rq_fits || rq->zero < rq->min || rq->zero > rq->max ||
                     !(rq->inv_scale > 0) || !(rq->inv_scale < INFINITY)))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "requantization: %d bits, codes %d..%d, zero point %d, 1/scale %g "
                              "do not fit together",
                              rq->bits, rq->min, rq->max, rq->zero, (double)rq->inv_scale);
    if (p->bitop != SDLK_CUDA_BITOP_AND && p->bitop != SDLK_CUDA_BITOP_XOR)
        return sdlk_error_set(err, SDLK_ERR_ARG, "unknown bit operation %d", (int)p->bitop);
    if (p->bitop == SDLK_CUDA_BITOP_XOR && (p->a.bits != 1 || p->b.bits != 1))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "the XOR form is for 1-bit operands (got w%da%d)", p->b.bits,
                              p->a.bits);
    const int64_t rows_a = TILE_PLANES / p->a.bits;
    if ((p->a.rows + rows_a - 1) / rows_a > MAX_GRID_Y)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "M = %lld rows at %d bits exceeds the GPU kernel's grid (at most "
                              "%lld rows); split A",
                              (long long)p->a.rows, p->a.bits, (long long)rows_a * MAX_GRID_Y);
    return SDLK_OK;
}

} // namespace

/* ---- the device-resident context -------------------------------------------------------- */

struct sdlk_cuda_qgemm_ctx {
    gemm_args args;
    sdlk_cuda_bitop bitop;
    plane_weights weights_a, weights_b;
    /* owned device buffers (args points into them) */
    uint64_t *a, *b;
    uint32_t *off_a, *off_b, *wsum_a, *wsum_b;
    int32_t *popc_a, *popc_b, *y_int;
    float *scale_a, *scale_b, *y_f32;
    uint32_t *planes;
};

extern "C" void sdlk_cuda_qgemm_destroy(sdlk_cuda_qgemm_ctx *ctx)
{
    if (!ctx)
        return;
    void *buffers[] = {ctx->a,      ctx->b,      ctx->off_a,  ctx->off_b,   ctx->wsum_a,
                       ctx->wsum_b, ctx->popc_a, ctx->popc_b, ctx->y_int,   ctx->scale_a,
                       ctx->scale_b, ctx->y_f32, ctx->planes};
    for (void *p : buffers)
        if (p)
            cudaFree(p);
    free(ctx);
}

extern "C" int sdlk_cuda_qgemm_xor_available(void)
{
    int major = 0;
    if (device_major(&major, nullptr)) {
        cudaGetLastError(); /* leave no sticky error behind a query */
        return 0;
    }
    return major == 8;
}

static sdlk_status upload_operand(const sdlk_cuda_qgemm_operand *o, int64_t kw, uint64_t **words,
                                  uint32_t **offset, float **scale, sdlk_error *err)
{
    const size_t nwords = (size_t)o->rows * (size_t)o->bits * (size_t)kw;
    sdlk_status st = sdlk_cuda_upload(words, o->words, nwords, "upload (bit planes)", err);
    if (!st)
        st = sdlk_cuda_upload(offset, reinterpret_cast<const uint32_t *>(o->offset),
                              (size_t)o->rows, "upload (row offsets)", err);
    if (!st && o->scale)
        st = sdlk_cuda_upload(scale, o->scale, (size_t)o->scale_count, "upload (scales)", err);
    return st;
}

extern "C" sdlk_status sdlk_cuda_qgemm_create(const sdlk_cuda_qgemm_problem *p,
                                              sdlk_cuda_qgemm_ctx **out, sdlk_error *err)
{
    *out = nullptr;
    sdlk_status st = check_problem(p, err);
    if (st)
        return st;
    int major = 0;
    if ((st = device_major(&major, err)))
        return st;
    if (major < 8)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "the 1-bit tensor-core GEMM needs compute capability 8.0 or newer "
                              "(device 0 is %d.x)",
                              major);
    if (p->bitop == SDLK_CUDA_BITOP_XOR && major != 8)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "the XOR form of the 1-bit MMA is for compute capability 8.x; "
                              "device 0 is %d.x (use the AND form)",
                              major);
    sdlk_cuda_qgemm_ctx *ctx = static_cast<sdlk_cuda_qgemm_ctx *>(calloc(1, sizeof *ctx));
    if (!ctx)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    const sdlk_cuda_qgemm_operand *A = &p->a, *B = &p->b;
    gemm_args *g = &ctx->args;
    g->m = A->rows;
    g->n = B->rows;
    g->k = p->k;
    g->kw = p->k_words;
    g->abits = A->bits;
    g->wbits = B->bits;
    g->rows_a = TILE_PLANES / A->bits;
    g->rows_b = TILE_PLANES / B->bits;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            g->pair_weight[i * 8 + j] = (uint32_t)A->weight[i] * (uint32_t)B->weight[j];
    for (int i = 0; i < 8; i++) {
        ctx->weights_a.w[i] = A->weight[i];
        ctx->weights_b.w[i] = B->weight[i];
    }
    ctx->bitop = p->bitop;
    g->scale_a_count = A->scale ? A->scale_count : 0;
    g->scale_b_count = B->scale ? B->scale_count : 0;
    st = upload_operand(A, p->k_words, &ctx->a, &ctx->off_a, &ctx->scale_a, err);
    if (!st)
        st = upload_operand(B, p->k_words, &ctx->b, &ctx->off_b, &ctx->scale_b, err);
    if (!st)
        st = sdlk_cuda_alloc(&ctx->wsum_a, (size_t)A->rows, "cudaMalloc (plane sums)", err);
    if (!st)
        st = sdlk_cuda_alloc(&ctx->wsum_b, (size_t)B->rows, "cudaMalloc (plane sums)", err);
    if (!st)
        st = sdlk_cuda_alloc(&ctx->popc_a, (size_t)A->rows, "cudaMalloc (popcounts)", err);
    if (!st)
        st = sdlk_cuda_alloc(&ctx->popc_b, (size_t)B->rows, "cudaMalloc (popcounts)", err);
    const size_t outputs = (size_t)A->rows * (size_t)B->rows;
    if (!st && p->want_int32)
        st = sdlk_cuda_alloc(&ctx->y_int, outputs, "cudaMalloc (output)", err);
    if (!st && p->want_f32)
        st = sdlk_cuda_alloc(&ctx->y_f32, outputs, "cudaMalloc (output)", err);
    if (p->requant.bits) {
        g->rq_bits = p->requant.bits;
        g->rq_words32 = 2 * sdlk_cuda_qgemm_requant_words(B->rows);
        g->rq_zero = p->requant.zero;
        g->rq_inv_scale = p->requant.inv_scale;
        g->rq_lo = (float)(p->requant.min - p->requant.zero);
        g->rq_hi = (float)(p->requant.max - p->requant.zero);
        if (!st)
            st = sdlk_cuda_alloc(&ctx->planes,
                                 (size_t)A->rows * (size_t)g->rq_bits * (size_t)g->rq_words32,
                                 "cudaMalloc (requantized planes)", err);
    }
    if (!st)
        st = sdlk_cuda_check(cudaFuncSetAttribute(p->bitop == SDLK_CUDA_BITOP_XOR
                                                      ? bitgemm_kernel<SDLK_CUDA_BITOP_XOR>
                                                      : bitgemm_kernel<SDLK_CUDA_BITOP_AND>,
                                                  cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  SMEM_BYTES),
                             "cudaFuncSetAttribute (shared memory)", err);
    if (st) {
        sdlk_cuda_qgemm_destroy(ctx);
        return st;
    }
    g->a = ctx->a;
    g->b = ctx->b;
    g->off_a = ctx->off_a;
    g->off_b = ctx->off_b;
    g->wsum_a = ctx->wsum_a;
    g->wsum_b = ctx->wsum_b;
    g->popc_a = ctx->popc_a;
    g->popc_b = ctx->popc_b;
    g->scale_a = ctx->scale_a;
    g->scale_b = ctx->scale_b;
    g->y_int = ctx->y_int;
    g->y_f32 = ctx->y_f32;
    g->planes = ctx->planes;
    *out = ctx;
    return SDLK_OK;
}

static sdlk_status launch_row_terms(const uint64_t *words, int64_t rows, int bits, int64_t kw,
                                    const plane_weights &w, uint32_t *wsum, int32_t *popc0,
                                    sdlk_error *err)
{
    const int64_t rows_per_block = ROW_TERM_THREADS / 32;
    const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
    if (blocks > INT32_MAX)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%lld rows are too many for one launch",
                              (long long)rows);
    row_terms_kernel<<<(unsigned)blocks, ROW_TERM_THREADS>>>(words, rows, bits, kw, w, wsum, popc0);
    return sdlk_cuda_check(cudaGetLastError(), "row-term kernel launch", err);
}

extern "C" sdlk_status sdlk_cuda_qgemm_run(sdlk_cuda_qgemm_ctx *ctx, sdlk_error *err)
{
    const gemm_args &g = ctx->args;
    if (g.m == 0 || g.n == 0)
        return SDLK_OK;
    sdlk_status st = launch_row_terms(ctx->a, g.m, g.abits, g.kw, ctx->weights_a, ctx->wsum_a,
                                      ctx->popc_a, err);
    if (!st)
        st = launch_row_terms(ctx->b, g.n, g.wbits, g.kw, ctx->weights_b, ctx->wsum_b,
                              ctx->popc_b, err);
    if (!st && g.planes) /* the epilogue only sets bits */
        st = sdlk_cuda_check(
            cudaMemsetAsync(g.planes, 0, (size_t)g.m * (size_t)g.rq_bits * (size_t)g.rq_words32 * 4,
                            0),
            "cudaMemsetAsync of the requantized planes", err);
    if (st)
        return st;
    const dim3 grid((unsigned)((g.n + g.rows_b - 1) / g.rows_b),
                    (unsigned)((g.m + g.rows_a - 1) / g.rows_a));
    if (ctx->bitop == SDLK_CUDA_BITOP_XOR)
        bitgemm_kernel<SDLK_CUDA_BITOP_XOR><<<grid, THREADS, SMEM_BYTES>>>(g);
    else
        bitgemm_kernel<SDLK_CUDA_BITOP_AND><<<grid, THREADS, SMEM_BYTES>>>(g);
    return sdlk_cuda_check(cudaGetLastError(), "bit-GEMM kernel launch", err);
}

extern "C" int64_t sdlk_cuda_qgemm_requant_words(int64_t n)
{
    return (n + 255) / 256 * 4; /* whole 256-bit groups of 64-bit words, as bitpack.h */
}

extern "C" sdlk_status sdlk_cuda_qgemm_download(sdlk_cuda_qgemm_ctx *ctx, int32_t *y_int,
                                                float *y_f32, uint64_t *y_planes,
                                                sdlk_error *err)
{
    const size_t outputs = (size_t)ctx->args.m * (size_t)ctx->args.n;
    sdlk_status st = sdlk_cuda_check(cudaDeviceSynchronize(), "bit-GEMM kernels", err);
    if (!st && y_int && ctx->y_int && outputs)
        st = sdlk_cuda_check(
            cudaMemcpy(y_int, ctx->y_int, outputs * sizeof(int32_t), cudaMemcpyDeviceToHost),
            "cudaMemcpy of the int32 output", err);
    if (!st && y_f32 && ctx->y_f32 && outputs)
        st = sdlk_cuda_check(
            cudaMemcpy(y_f32, ctx->y_f32, outputs * sizeof(float), cudaMemcpyDeviceToHost),
            "cudaMemcpy of the f32 output", err);
    const size_t plane_bytes = (size_t)ctx->args.m * (size_t)ctx->args.rq_bits *
                               (size_t)ctx->args.rq_words32 * 4;
    if (!st && y_planes && ctx->planes && plane_bytes)
        st = sdlk_cuda_check(cudaMemcpy(y_planes, ctx->planes, plane_bytes, cudaMemcpyDeviceToHost),
                             "cudaMemcpy of the requantized planes", err);
    return st;
}

extern "C" sdlk_status sdlk_cuda_qgemm_time(sdlk_cuda_qgemm_ctx *ctx, int warmup, int reps,
                                            double *median_ms, sdlk_error *err)
{
    return time_runs([&]() { return sdlk_cuda_qgemm_run(ctx, err); }, warmup, reps, median_ms,
                     err);
}

extern "C" sdlk_status sdlk_cuda_qgemm(const sdlk_cuda_qgemm_problem *problem, int32_t *y_int,
                                       float *y_f32, uint64_t *y_planes, sdlk_error *err)
{
    if ((problem->want_int32 && !y_int) || (problem->want_f32 && !y_f32) ||
        (problem->requant.bits && !y_planes))
        return sdlk_error_set(err, SDLK_ERR_ARG, "an output the problem asks for has no buffer");
    if (problem->a.rows == 0 || problem->b.rows == 0) {
        sdlk_status st = check_problem(problem, err);
        return st;
    }
    sdlk_cuda_qgemm_ctx *ctx = nullptr;
    sdlk_status st = sdlk_cuda_qgemm_create(problem, &ctx, err);
    if (!st)
        st = sdlk_cuda_qgemm_run(ctx, err);
    if (!st)
        st = sdlk_cuda_qgemm_download(ctx, y_int, y_f32, y_planes, err);
    sdlk_cuda_qgemm_destroy(ctx);
    return st;
}

/* ---- cuBLAS baselines ----------------------------------------------------------------- */

namespace {

/* cublasGemmEx is overloaded in C++ (a wrapper takes the old cudaDataType compute type),
 * so its pointer type is spelled out: the exported C function with cublasComputeType_t */
using gemm_ex_fn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                      int, int, const void *, const void *, cudaDataType, int,
                                      const void *, cudaDataType, int, const void *, void *,
                                      cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
static_assert(std::is_same<decltype(static_cast<gemm_ex_fn>(&cublasGemmEx)), gemm_ex_fn>::value,
              "cublasGemmEx has the signature we load");

struct cublas_api {
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    gemm_ex_fn gemm_ex;
};

__device__ __forceinline__ uint32_t mix32(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

__global__ void fill_int8(int8_t *p, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = (int8_t)(mix32(i) & 0xff);
}

__global__ void fill_fp16(__half *p, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2half((float)(mix32(i) & 0xff) / 128.0f - 1.0f);
}

} // namespace

extern "C" sdlk_status sdlk_cuda_cublas_gemm_time(sdlk_cuda_cublas_type type, int64_t m,
                                                  int64_t n, int64_t k, int warmup, int reps,
                                                  double *median_ms, sdlk_error *err)
{
    if (m < 1 || n < 1 || k < 1 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
        return sdlk_error_set(err, SDLK_ERR_ARG, "cuBLAS GEMM: bad shape %lldx%lldx%lld",
                              (long long)m, (long long)n, (long long)k);
    const bool int8 = type == SDLK_CUDA_CUBLAS_INT8;
    if (int8 && (k % 4 || m % 4))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "cuBLAS int8 GEMM: K and M must be multiples of 4 (got %lld, %lld)",
                              (long long)k, (long long)m);
    cublas_api api;
    const sdlk_cuda_symbol symbols[] = {{"cublasCreate_v2", (void **)&api.create},
                                        {"cublasDestroy_v2", (void **)&api.destroy},
                                        {"cublasGemmEx", (void **)&api.gemm_ex}};
    void *lib = nullptr;
    sdlk_status st = sdlk_cuda_load(SDLK_CUDA_CUBLAS, symbols, 3, &lib, err);
    if (st)
        return st;
    cublasHandle_t handle = nullptr;
    void *a = nullptr, *b = nullptr, *c = nullptr;
    const size_t in_size = int8 ? 1 : sizeof(__half), out_size = int8 ? 4 : sizeof(__half);
    st = sdlk_cublas_check(api.create(&handle), "cublasCreate", err);
    if (!st)
        st = sdlk_cuda_check(cudaMalloc(&a, (size_t)m * (size_t)k * in_size), "cudaMalloc", err);
    if (!st)
        st = sdlk_cuda_check(cudaMalloc(&b, (size_t)n * (size_t)k * in_size), "cudaMalloc", err);
    if (!st)
        st = sdlk_cuda_check(cudaMalloc(&c, (size_t)m * (size_t)n * out_size), "cudaMalloc", err);
    if (!st) {
        if (int8) {
            fill_int8<<<1024, 256>>>(static_cast<int8_t *>(a), (size_t)m * (size_t)k);
            fill_int8<<<1024, 256>>>(static_cast<int8_t *>(b), (size_t)n * (size_t)k);
        } else {
            fill_fp16<<<1024, 256>>>(static_cast<__half *>(a), (size_t)m * (size_t)k);
            fill_fp16<<<1024, 256>>>(static_cast<__half *>(b), (size_t)n * (size_t)k);
        }
        st = sdlk_cuda_check(cudaGetLastError(), "fill kernel launch", err);
    }
    if (!st)
        st = sdlk_cuda_check(cudaDeviceSynchronize(), "fill kernels", err);
    /* TN: C (m x n, column-major) = A^T B with A stored k x m and B k x n column-major,
     * i.e. both K-contiguous per row as our operands -- the form IMMA kernels need */
    const int32_t alpha_i = 1, beta_i = 0;
    const float alpha_f = 1.0f, beta_f = 0.0f;
    auto run = [&]() -> sdlk_status {
        cublasStatus_t rc =
            int8 ? api.gemm_ex(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)k, &alpha_i,
                               a, CUDA_R_8I, (int)k, b, CUDA_R_8I, (int)k, &beta_i, c, CUDA_R_32I,
                               (int)m, CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT)
                 : api.gemm_ex(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)k, &alpha_f,
                               a, CUDA_R_16F, (int)k, b, CUDA_R_16F, (int)k, &beta_f, c,
                               CUDA_R_16F, (int)m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        return sdlk_cublas_check(rc, "cublasGemmEx", err);
    };
    if (!st)
        st = time_runs(run, warmup, reps, median_ms, err);
    if (a)
        cudaFree(a);
    if (b)
        cudaFree(b);
    if (c)
        cudaFree(c);
    if (handle)
        api.destroy(handle);
    sdlk_cuda_unload(lib);
    return st;
}
