/* bitgemm_kernels.h -- internal: the inner kernels of bitgemm.c, portable and AVX2.
 *
 * Both families compute exactly the same integers; the AVX2 ones (bitgemm_avx2.c,
 * compiled with -mavx2 -mpopcnt) may only be called when __builtin_cpu_supports("avx2").
 */
#ifndef SDLK_QUANT_BITGEMM_KERNELS_H
#define SDLK_QUANT_BITGEMM_KERNELS_H

#include <stdint.h>

/* counts[i * ldc + j] += sum_{w < nwords} popcount(a[i * a_stride + w] AND b[j * b_stride + w])
 * for i < ma, j < nb: a tile of the stacked 1-bit GEMM over plane rows. nwords must be a
 * multiple of 4 (packed planes are padded to that). The AVX2 form reads nibble-split rows
 * (see sdlk_nibble_split_avx2: 2 * nwords words per row; strides count split words). */
typedef void (*sdlk_popc_tile_fn)(const uint64_t *a, int64_t a_stride, int64_t ma,
                                  const uint64_t *b, int64_t b_stride, int64_t nb,
                                  int64_t nwords, int32_t *counts, int64_t ldc);
void sdlk_popc_tile_scalar(const uint64_t *a, int64_t a_stride, int64_t ma, const uint64_t *b,
                           int64_t b_stride, int64_t nb, int64_t nwords, int32_t *counts,
                           int64_t ldc);
void sdlk_popc_tile_avx2(const uint64_t *a, int64_t a_stride, int64_t ma, const uint64_t *b,
                         int64_t b_stride, int64_t nb, int64_t nwords, int32_t *counts,
                         int64_t ldc);

/* dst (2 * nwords words, 32-byte aligned) = src split per 256-bit chunk into its masked
 * low nibbles (4 words) followed by its masked high nibbles (4 words). nwords % 4 == 0. */
void sdlk_nibble_split_avx2(const uint64_t *src, int64_t nwords, uint64_t *dst);

/* acc[i * ldc + j] += sum_{k < kc} a[i * a_stride + k] * b[j * b_stride + k] for i < ma,
 * j < nb, in wrap-around (mod 2^32) arithmetic. kc must be a multiple of 16. */
typedef void (*sdlk_dot16_tile_fn)(const int16_t *a, int64_t a_stride, int64_t ma,
                                   const int16_t *b, int64_t b_stride, int64_t nb, int64_t kc,
                                   uint32_t *acc, int64_t ldc);
void sdlk_dot16_tile_scalar(const int16_t *a, int64_t a_stride, int64_t ma, const int16_t *b,
                            int64_t b_stride, int64_t nb, int64_t kc, uint32_t *acc,
                            int64_t ldc);
void sdlk_dot16_tile_avx2(const int16_t *a, int64_t a_stride, int64_t ma, const int16_t *b,
                          int64_t b_stride, int64_t nb, int64_t kc, uint32_t *acc, int64_t ldc);

#endif
