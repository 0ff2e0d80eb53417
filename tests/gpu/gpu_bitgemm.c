/* gpu_bitgemm -- the 1-bit tensor-core GEMM (sdlk_qgemm on the GPU, kernels/bitgemm.cu)
 * against the CPU path, and its speed against cuBLAS int8 and fp16 in the same run.
 *
 * Correctness: fresh random codes for w1a1, w1a2, w2a2, w4a4, w8a8 and odd widths
 * (w3a5, w7a6), unsigned / signed / binary encodings, zero points none / per tensor / per
 * row, scales per row or one, shapes that are not multiples of the block tile (128 plane
 * rows) or the K chunk (1024 bits): 1x1x1, 17x9x300, 129x65x1000, 300x257x513 (a last
 * chunk of 3 K steps), 257x130x5000 (5 chunks: more than the pipeline's 3 stages) and
 * 512^3. Both GPU outputs are poisoned before the call; int32 must equal the CPU's
 * sdlk_qgemm bit for bit, f32 must be within float rounding of the CPU value
 * (|g - c| <= 2^-22 |c|; the count of bit-identical values is printed, all are expected).
 * On compute capability 8.x the XOR form (bitgemm_cuda.h) must give the same int32 as the
 * AND form on {-1,+1} x {-1,+1} operands with zero points; elsewhere it is reported as
 * not available (Hopper's 1-bit MMA is AND only) and not run. Some cases also go through
 * sdlk_qgemm_requantized (requantize-and-repack fused into the GPU epilogue): the packed
 * planes must equal the CPU's word for word.
 *
 * Timing: device-resident operands and outputs (kernels/bitgemm_cuda.h contexts), the
 * row-term and GEMM kernels between CUDA events, 3 warm-up runs, median of 10 (1 and 3
 * for a width slower than 50 ms a run);
 * TOPS = 2 M N K / t for w1a1, w1a2, w2a2, w4a4, w8a8 (unsigned codes) at M = N = K in
 * {2048, 4096, 8192} (issue 3 judges 8192^3), each timed result also checked against the
 * CPU. cuBLAS int8 (TN, int8 -> int32, CUBLAS_COMPUTE_32I) and fp16 (TN, fp16 -> fp16,
 * CUBLAS_COMPUTE_32F) at the same sizes, loaded at run time (kernels/cudalibs.h). Rows
 *     TABLE|qgemm w1a1|8192^3|exact|1663 TOPS|cuBLAS int8 1377 TOPS|1.21x
 * (ratio = ours / baseline), plus one row per size of w1a1 against fp16. First, the
 * tensor cores' own mma.sync rates for b1, s8 and f16 (kernels/mma_peak_cuda.h): the
 * roof the 1-bit kernel is held against.
 *
 * Usage: gpu_bitgemm [--check-only | --small]: --check-only runs the correctness part
 * alone (for compute-sanitizer memcheck), --small only its cases below 512 rows (for the
 * slower racecheck / synccheck tools). Exit 77 (skipped) without a GPU, 1 on any
 * mismatch or error. Well under 90 s on an H100 with a 16-core host. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/device.h"
#include "gpu_check.h"
#include "core/pool.h"
#include "core/timer.h"
#include "kernels/bitgemm_cuda.h"
#include "kernels/mma_peak_cuda.h"
#include "quant/bitgemm.h"
#include "quant/bitpack.h"

#define WARMUP 3
#define REPS 10
#define F32_RELATIVE_TOLERANCE (1.0 / (1 << 22))

static uint64_t rng_state;

static uint64_t rnd64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct check_case {
    int64_t m, n, k;
    int abits, wbits;
    sdlk_qencoding aenc, benc;
    int zero_points; /* 0 none, 1 one per operand, 2 per row */
    int scales;      /* 0 one per operand, 1 per row */
    int rq_bits;     /* > 0: also requantize to this many bits (sdlk_qgemm_requantized) */
    sdlk_qencoding rq_enc;
} check_case;

/* Random codes of an encoding, one byte each (uint8 for unsigned, int8 otherwise). */
static uint8_t *random_codes(int64_t rows, int64_t k, int bits, sdlk_qencoding enc)
{
    uint8_t *c = malloc((size_t)(rows * k) + 1);
    if (!c)
        return NULL;
    int32_t lo, hi;
    sdlk_qencoding_range(enc, bits, &lo, &hi);
    for (int64_t i = 0; i < rows * k; i++) {
        int32_t v = enc == SDLK_QENC_BINARY ? (rnd64() & 1 ? 1 : -1)
                                            : lo + (int32_t)(rnd64() % (uint64_t)(hi - lo + 1));
        c[i] = (uint8_t)v;
    }
    return c;
}

/* Zero points within the code range of the encoding (count 1 or rows). */
static int32_t *random_zero_points(int64_t count, int bits, sdlk_qencoding enc)
{
    int32_t *z = malloc(sizeof(int32_t) * (size_t)count);
    int32_t lo, hi;
    sdlk_qencoding_range(enc, bits, &lo, &hi);
    for (int64_t i = 0; z && i < count; i++)
        z[i] = lo + (int32_t)(rnd64() % (uint64_t)(hi - lo + 1));
    return z;
}

static float *random_scales(int64_t count)
{
    float *s = malloc(sizeof(float) * (size_t)count);
    for (int64_t i = 0; s && i < count; i++)
        s[i] = 1e-3f + (float)(rnd64() % 100000) * 1e-6f;
    return s;
}

/* Compare the GPU outputs with the CPU's; prints the first differences. Returns the
 * number of failing elements; *identical_f32 counts bit-identical f32 values. */
static int64_t compare(const char *label, int64_t count, const int32_t *cpu_i, const int32_t *gpu_i,
                       const float *cpu_f, const float *gpu_f, int64_t *identical_f32)
{
    int64_t bad = 0;
    *identical_f32 = 0;
    for (int64_t i = 0; i < count; i++) {
        if (cpu_i && gpu_i[i] != cpu_i[i]) {
            if (bad++ < 5)
                fprintf(stderr, "gpu_bitgemm: %s: int32 Y[%lld] = %d on the GPU, %d on the CPU\n",
                        label, (long long)i, gpu_i[i], cpu_i[i]);
        }
        if (cpu_f) {
            double c = cpu_f[i], g = gpu_f[i];
            *identical_f32 += memcmp(&cpu_f[i], &gpu_f[i], sizeof(float)) == 0;
            if (!(fabs(g - c) <= F32_RELATIVE_TOLERANCE * fabs(c))) {
                if (bad++ < 5)
                    fprintf(stderr, "gpu_bitgemm: %s: f32 Y[%lld] = %.9g on the GPU, %.9g on the CPU\n",
                            label, (long long)i, g, c);
            }
        }
    }
    return bad;
}

/* The requantized planes of the GPU (fused epilogue) against the CPU's, word for word;
 * the scale spreads the f32 outputs over the code range. Returns 0 when equal. */
static int check_requant(const check_case *c, const sdlk_bitpacked *pa, const sdlk_bitpacked *pb,
                         sdlk_qgemm_opts *o, const float *y, int64_t count, sdlk_pool *pool)
{
    char label[96];
    snprintf(label, sizeof label, "  requantized to %d bits %s", c->rq_bits,
             sdlk_qencoding_name(c->rq_enc));
    float top = 0;
    for (int64_t i = 0; i < count; i++)
        top = fabsf(y[i]) > top ? fabsf(y[i]) : top;
    int32_t lo, hi;
    sdlk_qencoding_range(c->rq_enc, c->rq_bits, &lo, &hi);
    sdlk_qgemm_requant rq = {.bits = c->rq_bits, .encoding = c->rq_enc,
                             .inv_scale = (float)(hi - lo) / (2.0f * top + 1e-6f),
                             .zero = c->rq_enc == SDLK_QENC_UNSIGNED ? (lo + hi + 1) / 2 : 0};
    sdlk_bitpacked cpu = {0}, gpu = {0};
    sdlk_error err = {0};
    int failed = 1;
    o->device = SDLK_QGEMM_DEVICE_CPU;
    if (sdlk_qgemm_requantized(pa, pb, o, &rq, pool, &cpu, NULL, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: CPU: %s\n", label, err.msg);
        goto done;
    }
    o->device = SDLK_QGEMM_DEVICE_GPU;
    if (sdlk_qgemm_requantized(pa, pb, o, &rq, pool, &gpu, NULL, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: GPU: %s\n", label, err.msg);
        goto done;
    }
    size_t words = (size_t)(cpu.rows * cpu.bits) * (size_t)cpu.k_words;
    int64_t differ = 0;
    if (gpu.rows != cpu.rows || gpu.k != cpu.k || gpu.bits != cpu.bits || gpu.k_words != cpu.k_words)
        differ = -1;
    for (size_t i = 0; differ >= 0 && i < words; i++)
        differ += gpu.words[i] != cpu.words[i];
    if (!differ && sdlk_bitpacked_check(&gpu, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: %s\n", label, err.msg);
        differ = 1;
    }
    printf("check %-44s %s", label, differ ? "FAIL" : "exact");
    if (differ)
        printf(" (%lld of %zu words differ)", (long long)differ, words);
    printf("\n");
    failed = differ != 0;
done:
    sdlk_bitpacked_free(&cpu);
    sdlk_bitpacked_free(&gpu);
    return failed;
}

/* One correctness case through sdlk_qgemm on both devices. Returns 0 when exact. */
static int check_one(const check_case *c, sdlk_pool *pool)
{
    char label[160];
    snprintf(label, sizeof label, "w%da%d %s x %s %lldx%lldx%lld zp%d", c->wbits, c->abits,
             sdlk_qencoding_name(c->aenc), sdlk_qencoding_name(c->benc), (long long)c->m,
             (long long)c->n, (long long)c->k, c->zero_points);
    sdlk_error err = {0};
    int failed = 1;
    uint8_t *ca = random_codes(c->m, c->k, c->abits, c->aenc);
    uint8_t *cb = random_codes(c->n, c->k, c->wbits, c->benc);
    int64_t zac = c->zero_points == 2 ? c->m : 1, zbc = c->zero_points == 2 ? c->n : 1;
    int64_t sac = c->scales ? c->m : 1, sbc = c->scales ? c->n : 1;
    int32_t *za = random_zero_points(zac, c->abits, c->aenc);
    int32_t *zb = random_zero_points(zbc, c->wbits, c->benc);
    float *sa = random_scales(sac), *sb = random_scales(sbc);
    size_t count = (size_t)(c->m * c->n);
    int32_t *cpu_i = malloc(sizeof(int32_t) * count + 4), *gpu_i = malloc(sizeof(int32_t) * count + 4);
    float *cpu_f = malloc(sizeof(float) * count + 4), *gpu_f = malloc(sizeof(float) * count + 4);
    sdlk_bitpacked pa = {0}, pb = {0};
    if (!ca || !cb || !za || !zb || !sa || !sb || !cpu_i || !gpu_i || !cpu_f || !gpu_f) {
        fprintf(stderr, "gpu_bitgemm: out of memory\n");
        goto done;
    }
    if (sdlk_bitpack(ca, c->m, c->k, c->k, c->abits, c->aenc, &pa, &err) ||
        sdlk_bitpack(cb, c->n, c->k, c->k, c->wbits, c->benc, &pb, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: %s\n", label, err.msg);
        goto done;
    }
    sdlk_qgemm_opts o = {.a_zero = c->zero_points ? za : NULL, .a_zero_count = zac,
                         .b_zero = c->zero_points ? zb : NULL, .b_zero_count = zbc,
                         .a_scale = sa, .a_scale_count = sac, .b_scale = sb, .b_scale_count = sbc};
    sdlk_qgemm_choice choice;
    if (sdlk_qgemm(&pa, &pb, &o, pool, cpu_i, cpu_f, NULL, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: CPU: %s\n", label, err.msg);
        goto done;
    }
    memset(gpu_i, 0xa5, sizeof(int32_t) * count); /* poison: an unwritten value cannot pass */
    memset(gpu_f, 0xff, sizeof(float) * count);   /* NaN */
    o.device = SDLK_QGEMM_DEVICE_GPU;
    if (sdlk_qgemm(&pa, &pb, &o, pool, gpu_i, gpu_f, &choice, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: GPU: %s\n", label, err.msg);
        goto done;
    }
    if (choice.device != SDLK_DEVICE_GPU || choice.isa != SDLK_QGEMM_ISA_CUDA) {
        fprintf(stderr, "gpu_bitgemm: %s: the choice does not name the GPU: %s\n", label,
                choice.reason);
        goto done;
    }
    int64_t identical = 0;
    int64_t bad = compare(label, (int64_t)count, cpu_i, gpu_i, cpu_f, gpu_f, &identical);
    printf("check %-44s %s, f32 %lld/%lld bit-identical\n", label, bad ? "FAIL" : "exact",
           (long long)identical, (long long)count);
    failed = bad != 0;
    if (c->rq_bits)
        failed |= check_requant(c, &pa, &pb, &o, cpu_f, (int64_t)count, pool);
done:
    sdlk_bitpacked_free(&pa);
    sdlk_bitpacked_free(&pb);
    free(ca);
    free(cb);
    free(za);
    free(zb);
    free(sa);
    free(sb);
    free(cpu_i);
    free(gpu_i);
    free(cpu_f);
    free(gpu_f);
    return failed;
}

/* The kernel API's view of a packed operand with per-row offsets constant - zero. */
static int32_t *kernel_operand(const sdlk_bitpacked *p, const int32_t *zero, int64_t zero_count,
                               sdlk_cuda_qgemm_operand *out)
{
    int32_t constant;
    memset(out, 0, sizeof *out);
    sdlk_qgemm_plane_weights(p->encoding, p->bits, out->weight, &constant);
    int32_t *off = malloc(sizeof(int32_t) * (size_t)(p->rows > 0 ? p->rows : 1));
    for (int64_t r = 0; off && r < p->rows; r++)
        off[r] = constant - (zero ? zero[zero_count == 1 ? 0 : r] : 0);
    out->words = p->words;
    out->rows = p->rows;
    out->bits = p->bits;
    out->offset = off;
    return off;
}

/* XOR form against AND form on binary operands with per-row zero points. */
static int check_xor(int64_t m, int64_t n, int64_t k)
{
    char label[96];
    snprintf(label, sizeof label, "w1a1 xor vs and, binary zp2 %lldx%lldx%lld", (long long)m,
             (long long)n, (long long)k);
    sdlk_error err = {0};
    int failed = 1;
    uint8_t *ca = random_codes(m, k, 1, SDLK_QENC_BINARY), *cb = random_codes(n, k, 1, SDLK_QENC_BINARY);
    int32_t *za = random_zero_points(m, 2, SDLK_QENC_SIGNED), *zb = random_zero_points(n, 2, SDLK_QENC_SIGNED);
    int32_t *y_and = malloc(sizeof(int32_t) * (size_t)(m * n)), *y_xor = malloc(sizeof(int32_t) * (size_t)(m * n));
    int32_t *off_a = NULL, *off_b = NULL;
    sdlk_bitpacked pa = {0}, pb = {0};
    if (!ca || !cb || !za || !zb || !y_and || !y_xor ||
        sdlk_bitpack(ca, m, k, k, 1, SDLK_QENC_BINARY, &pa, &err) ||
        sdlk_bitpack(cb, n, k, k, 1, SDLK_QENC_BINARY, &pb, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: %s\n", label, err.msg[0] ? err.msg : "out of memory");
        goto done;
    }
    sdlk_cuda_qgemm_problem p = {.k = k, .k_words = pa.k_words, .want_int32 = 1};
    off_a = kernel_operand(&pa, za, m, &p.a);
    off_b = kernel_operand(&pb, zb, n, &p.b);
    memset(y_and, 0xa5, sizeof(int32_t) * (size_t)(m * n));
    memset(y_xor, 0x5a, sizeof(int32_t) * (size_t)(m * n));
    p.bitop = SDLK_CUDA_BITOP_AND;
    if (!off_a || !off_b || sdlk_cuda_qgemm(&p, y_and, NULL, NULL, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: AND: %s\n", label, err.msg);
        goto done;
    }
    p.bitop = SDLK_CUDA_BITOP_XOR;
    if (sdlk_cuda_qgemm(&p, y_xor, NULL, NULL, &err)) {
        fprintf(stderr, "gpu_bitgemm: %s: XOR: %s\n", label, err.msg);
        goto done;
    }
    int64_t identical;
    int64_t bad = compare(label, m * n, y_and, y_xor, NULL, NULL, &identical);
    printf("check %-44s %s\n", label, bad ? "FAIL" : "exact");
    failed = bad != 0;
done:
    sdlk_bitpacked_free(&pa);
    sdlk_bitpacked_free(&pb);
    free(ca);
    free(cb);
    free(za);
    free(zb);
    free(y_and);
    free(y_xor);
    free(off_a);
    free(off_b);
    return failed;
}

static int run_checks(sdlk_pool *pool, int small, int *cases)
{
    const sdlk_qencoding U = SDLK_QENC_UNSIGNED, S = SDLK_QENC_SIGNED, B = SDLK_QENC_BINARY;
    /* m, n, k, abits, wbits, A and B encodings, zero points, scales, requantization */
    const check_case list[] = {
        {1, 1, 1, 1, 1, B, B, 0, 0, 2, U},
        {1, 1, 1, 2, 2, U, S, 2, 1, 0, U},
        {17, 9, 300, 1, 1, B, B, 1, 1, 1, U},
        {17, 9, 300, 2, 1, U, B, 2, 1, 2, U},
        {17, 9, 300, 2, 2, S, U, 1, 0, 0, U},
        {17, 9, 300, 4, 4, U, S, 2, 1, 4, S},
        {17, 9, 300, 8, 8, S, S, 0, 1, 0, U},
        {129, 65, 1000, 1, 1, U, B, 2, 1, 0, U},
        {129, 65, 1000, 2, 1, U, B, 1, 1, 2, U},
        {129, 65, 1000, 2, 2, U, U, 2, 1, 0, U},
        {129, 65, 1000, 4, 4, S, U, 2, 0, 8, S},
        {129, 65, 1000, 8, 8, U, S, 1, 1, 0, U},
        {129, 65, 1000, 1, 1, B, U, 0, 1, 0, U},
        {300, 257, 513, 5, 3, S, U, 2, 1, 3, U},
        {300, 257, 513, 6, 7, U, S, 2, 1, 0, U},
        {257, 130, 5000, 2, 2, U, S, 2, 1, 2, U},
        {257, 130, 5000, 1, 1, B, B, 2, 1, 0, U},
        {512, 512, 512, 1, 1, B, B, 1, 1, 0, U},
        {512, 512, 512, 2, 1, U, B, 2, 1, 2, U},
        {512, 512, 512, 2, 2, U, U, 2, 1, 0, U},
        {512, 512, 512, 4, 4, S, S, 1, 1, 4, U},
        {512, 512, 512, 8, 8, U, U, 2, 1, 0, U},
        {512, 512, 512, 1, 1, U, U, 0, 0, 0, U},
    };
    int failed = 0;
    *cases = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        if (small && list[i].m >= 512)
            continue;
        failed += check_one(&list[i], pool);
        ++*cases;
    }
    if (sdlk_cuda_qgemm_xor_available()) {
        failed += check_xor(129, 65, 1000);
        ++*cases;
        if (!small) {
            failed += check_xor(512, 512, 512);
            ++*cases;
        }
    } else {
        printf("xor form: not available on this GPU (compute capability 8.x only); AND form used\n");
    }
    return failed;
}

/* ---- timing ------------------------------------------------------------------------------ */

/* Unsigned codes as random words (K a multiple of 64: no padding bits to keep zero). */
static int random_packed(int64_t rows, int64_t k, int bits, sdlk_bitpacked *out, sdlk_error *err)
{
    if (sdlk_bitpacked_alloc(out, rows, k, bits, SDLK_QENC_UNSIGNED, err))
        return 1;
    size_t words = (size_t)(rows * bits) * (size_t)out->k_words;
    for (size_t i = 0; i < words; i++)
        out->words[i] = rnd64();
    return 0;
}

typedef struct timed {
    double ms;
    int exact;
} timed;

/* Time one width at size^3 (device-resident), then check its int32 against the CPU. */
static int time_width(int64_t size, int abits, int wbits, sdlk_cuda_bitop bitop, sdlk_pool *pool,
                      timed *out)
{
    sdlk_error err = {0};
    sdlk_bitpacked pa = {0}, pb = {0};
    int32_t *off_a = NULL, *off_b = NULL, *cpu = NULL, *gpu = NULL;
    sdlk_cuda_qgemm_ctx *ctx = NULL;
    int failed = 1;
    out->exact = 0;
    sdlk_qencoding enc = bitop == SDLK_CUDA_BITOP_XOR ? SDLK_QENC_BINARY : SDLK_QENC_UNSIGNED;
    if (random_packed(size, size, abits, &pa, &err) || random_packed(size, size, wbits, &pb, &err))
        goto done;
    pa.encoding = pb.encoding = enc; /* binary reads the same bits as {-1,+1} */
    sdlk_cuda_qgemm_problem p = {.k = size, .k_words = pa.k_words, .bitop = bitop, .want_int32 = 1};
    off_a = kernel_operand(&pa, NULL, 0, &p.a);
    off_b = kernel_operand(&pb, NULL, 0, &p.b);
    size_t count = (size_t)(size * size);
    cpu = malloc(sizeof(int32_t) * count);
    gpu = malloc(sizeof(int32_t) * count);
    if (!off_a || !off_b || !cpu || !gpu) {
        sdlk_error_set(&err, SDLK_ERR_NOMEM, "out of memory");
        goto done;
    }
    memset(gpu, 0xa5, sizeof(int32_t) * count);
    /* one probe run first: a slow width (over 50 ms a run) gets fewer repetitions, so the
     * program stays within its time budget whatever the GPU's 1-bit throughput */
    double probe_ms = 0;
    if (sdlk_cuda_qgemm_create(&p, &ctx, &err) || sdlk_cuda_qgemm_time(ctx, 0, 1, &probe_ms, &err) ||
        sdlk_cuda_qgemm_time(ctx, probe_ms > 50 ? 1 : WARMUP, probe_ms > 50 ? 3 : REPS, &out->ms,
                             &err) ||
        sdlk_cuda_qgemm_download(ctx, gpu, NULL, NULL, &err) ||
        sdlk_qgemm(&pa, &pb, NULL, pool, cpu, NULL, NULL, &err))
        goto done;
    int64_t identical;
    out->exact = compare("timed run", (int64_t)count, cpu, gpu, NULL, NULL, &identical) == 0;
    failed = !out->exact;
done:
    if (err.code)
        fprintf(stderr, "gpu_bitgemm: w%da%d %lld^3: %s\n", wbits, abits, (long long)size, err.msg);
    sdlk_cuda_qgemm_destroy(ctx);
    sdlk_bitpacked_free(&pa);
    sdlk_bitpacked_free(&pb);
    free(off_a);
    free(off_b);
    free(cpu);
    free(gpu);
    return failed;
}

static double tops(int64_t size, double ms)
{
    return 2.0 * (double)size * (double)size * (double)size / (ms * 1e-3) * 1e-12;
}

/* TABLE|check|size|result|ours|baseline|ours / baseline (baseline 0: not measured) */
static void print_row(const char *check, int64_t size, int exact, double ours,
                      const char *baseline, const char *unit, double base)
{
    char ratio[32] = "-", base_text[64];
    if (base > 0) {
        snprintf(ratio, sizeof ratio, "%.2fx", ours / base);
        snprintf(base_text, sizeof base_text, "%s %.0f %s", baseline, base, unit);
    } else {
        snprintf(base_text, sizeof base_text, "%s n/a", baseline);
    }
    printf("TABLE|%s|%lld^3|%s|%.0f TOPS|%s|%s\n", check, (long long)size, exact ? "exact" : "FAIL",
           ours, base_text, ratio);
}

/* The tensor cores' own rates for the instructions in play (kernels/mma_peak_cuda.h):
 * the roof the 1-bit GEMM is held against. */
static void print_peaks(void)
{
    static const struct {
        sdlk_cuda_mma_kind kind;
        const char *name;
    } kinds[] = {{SDLK_CUDA_MMA_B1_AND, "b1 m16n8k256"},
                 {SDLK_CUDA_MMA_S8, "s8 m16n8k32"},
                 {SDLK_CUDA_MMA_F16, "f16 m16n8k16"}};
    double b1 = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        sdlk_error err = {0};
        double tops = 0;
        if (sdlk_cuda_mma_peak(kinds[i].kind, &tops, &err) != SDLK_OK) {
            fprintf(stderr, "gpu_bitgemm: peak of %s: %s\n", kinds[i].name, err.msg);
            continue;
        }
        if (i == 0)
            b1 = tops;
        printf("TABLE|mma.sync peak|%s|ok|%.0f TOPS|b1 m16n8k256 %.0f TOPS|%.2fx\n",
               kinds[i].name, tops, b1, b1 > 0 ? tops / b1 : 0.0);
    }
}

static int run_timing(sdlk_pool *pool)
{
    print_peaks();
    const int64_t sizes[] = {2048, 4096, 8192}; /* issue 3 names 8192^3 */
    const int widths[][2] = {{1, 1}, {2, 1}, {2, 2}, {4, 4}, {8, 8}}; /* abits, wbits */
    int failed = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t size = sizes[s];
        /* a missing cuBLAS fails the check but our rows are still printed (ratio "-") */
        double int8_tops = 0, fp16_tflops = 0;
        const sdlk_cuda_cublas_type types[2] = {SDLK_CUDA_CUBLAS_INT8, SDLK_CUDA_CUBLAS_FP16};
        for (int b = 0; b < 2; b++) {
            sdlk_error err = {0};
            double ms = 0;
            if (sdlk_cuda_cublas_gemm_time(types[b], size, size, size, WARMUP, REPS, &ms, &err)) {
                fprintf(stderr, "gpu_bitgemm: cuBLAS %s baseline at %lld^3: %s\n",
                        b ? "fp16" : "int8", (long long)size, err.msg);
                failed++;
                continue;
            }
            *(b ? &fp16_tflops : &int8_tops) = tops(size, ms);
        }
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
            int abits = widths[w][0], wbits = widths[w][1];
            timed t;
            failed += time_width(size, abits, wbits, SDLK_CUDA_BITOP_AND, pool, &t);
            if (t.ms <= 0)
                continue;
            double ours = tops(size, t.ms);
            char label[32];
            snprintf(label, sizeof label, "qgemm w%da%d", wbits, abits);
            print_row(label, size, t.exact, ours, "cuBLAS int8", "TOPS", int8_tops);
            if (abits == 1 && wbits == 1)
                print_row("qgemm w1a1 vs fp16", size, t.exact, ours, "cuBLAS fp16", "TFLOPS",
                          fp16_tflops);
        }
        if (sdlk_cuda_qgemm_xor_available()) {
            timed x, a;
            failed += time_width(size, 1, 1, SDLK_CUDA_BITOP_XOR, pool, &x);
            failed += time_width(size, 1, 1, SDLK_CUDA_BITOP_AND, pool, &a);
            if (x.ms > 0 && a.ms > 0)
                print_row("qgemm w1a1 xor", size, x.exact && a.exact, tops(size, x.ms),
                          "AND form", "TOPS", tops(size, a.ms));
        }
    }
    return failed;
}

int main(int argc, char **argv)
{
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    int check_only = small || (argc > 1 && strcmp(argv[1], "--check-only") == 0);
    if (argc > 2 || (argc == 2 && !check_only)) {
        fprintf(stderr, "usage: gpu_bitgemm [--check-only | --small]\n");
        return 2;
    }
    int skip = gpu_check_require("gpu_bitgemm", 0);
    if (skip)
        return skip;
    rng_state = 0x9e3779b97f4a7c15ull ^ sdlk_now_ns();
    printf("seed %llu\n", (unsigned long long)rng_state);
    sdlk_error err = {0};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    sdlk_pool *pool = sdlk_pool_create(cores > 0 ? (int)cores : 1, &err);
    if (!pool) {
        fprintf(stderr, "gpu_bitgemm: %s\n", err.msg);
        return 1;
    }
    uint64_t t0 = sdlk_now_ns();
    int cases = 0;
    int failed = run_checks(pool, small, &cases);
    printf("TABLE|qgemm GPU = CPU|1x1x1 .. %s|%s|%d/%d cases|CPU sdlk_qgemm|-\n",
           small ? "300x257x513" : "512^3", failed ? "FAIL" : "exact", cases - failed, cases);
    if (!check_only)
        failed += run_timing(pool);
    printf("gpu_bitgemm: %.1f s\n", (double)(sdlk_now_ns() - t0) * 1e-9);
    sdlk_pool_destroy(pool);
    return failed ? 1 : 0;
}
