/* bitpack.h -- n-bit integer codes as bit planes packed along K, the operand format of
 * the bit-composed GEMM (bitgemm.h).
 *
 * Contract
 *   A packed matrix holds `rows` rows of `k` codes of `bits` bits (1..8). Row r, plane
 *   p (0 = least significant bit), word w holds bit p of the codes k = 64w .. 64w+63 of
 *   row r, code 64w + j in bit j of the word. Words are stored [row][plane][word], with
 *   `k_words` words per plane: ceil(k / 64) rounded up to a multiple of
 *   SDLK_BITPACK_WORD_ALIGN (so that a 256-bit vector never straddles planes). Padding
 *   bits are zero -- the GEMM relies on it and sdlk_bitpacked_check() verifies it.
 *
 *   Encodings (what integer a code stands for):
 *     UNSIGNED  codes 0 .. 2^bits - 1, given as uint8.
 *     SIGNED    two's complement, -2^(bits-1) .. 2^(bits-1) - 1, given as int8; the top
 *               plane weighs -2^(bits-1).
 *     BINARY    bits == 1, codes -1 or +1 given as int8; bit 1 stands for +1, bit 0 for
 *               -1 (the zero padding bits are excluded by the GEMM, which uses the true k).
 *   These are the code formats sdlk_quantize() produces: ASYMMETRIC -> UNSIGNED,
 *   SYMMETRIC -> SIGNED, BINARY -> BINARY (sdlk_quant_scheme_encoding()).
 *
 *   Complexity: packing and unpacking are O(rows * k * bits) with 16 codes per
 *   instruction on x86-64 (SSE2 movemask); memory rows * bits * k_words * 8 bytes.
 */
#ifndef SDLK_QUANT_BITPACK_H
#define SDLK_QUANT_BITPACK_H

#include <stdint.h>

#include "core/error.h"
#include "quant/quant.h"

/* Words per plane are a multiple of this (4 words = 256 bits = one AVX2 register). */
#define SDLK_BITPACK_WORD_ALIGN 4

typedef enum sdlk_qencoding {
    SDLK_QENC_UNSIGNED = 0,
    SDLK_QENC_SIGNED,
    SDLK_QENC_BINARY
} sdlk_qencoding;

typedef struct sdlk_bitpacked {
    int bits;
    sdlk_qencoding encoding;
    int64_t rows;
    int64_t k;       /* codes per row (the true K) */
    int64_t k_words; /* words per plane, padded (see above) */
    uint64_t *words; /* rows * bits * k_words words, 64-byte aligned; owned */
} sdlk_bitpacked;

/* "unsigned", "signed", "binary", and the parser (SDLK_ERR_ARG for other names). */
const char *sdlk_qencoding_name(sdlk_qencoding encoding);
sdlk_status sdlk_qencoding_parse(const char *name, sdlk_qencoding *out, sdlk_error *err);
/* The encoding of the codes a quantization scheme produces. */
sdlk_qencoding sdlk_quant_scheme_encoding(sdlk_quant_scheme scheme);

/* Smallest and largest code value of an encoding (BINARY: -1, +1). */
void sdlk_qencoding_range(sdlk_qencoding encoding, int bits, int32_t *min, int32_t *max);

/* Words per plane for k codes. */
int64_t sdlk_bitpack_k_words(int64_t k);

/* Allocate a zeroed packed matrix (for readers that fill `words` from a file). Checks
 * bits/encoding and sizes (SDLK_ERR_OVERFLOW when the words would not fit in memory). */
sdlk_status sdlk_bitpacked_alloc(sdlk_bitpacked *out, int64_t rows, int64_t k, int bits,
                                 sdlk_qencoding encoding, sdlk_error *err);

/* Pack rows x k codes (row r starts at codes + r * row_stride elements; uint8 for UNSIGNED,
 * int8 otherwise). A code outside the encoding's range is SDLK_ERR_ARG naming its row and
 * column. `out` is empty after a failure. */
sdlk_status sdlk_bitpack(const void *codes, int64_t rows, int64_t k, int64_t row_stride,
                         int bits, sdlk_qencoding encoding, sdlk_bitpacked *out, sdlk_error *err);

/* Unpack into rows x k codes (contiguous; uint8 for UNSIGNED, int8 otherwise). */
sdlk_status sdlk_bitunpack(const sdlk_bitpacked *packed, void *codes, sdlk_error *err);

/* Validate metadata and padding of a packed matrix (e.g. one read from a file):
 * bits 1..8, BINARY only with 1 bit, k_words == sdlk_bitpack_k_words(k), words present,
 * every padding bit zero. SDLK_ERR_FORMAT naming the fault. O(rows * bits). */
sdlk_status sdlk_bitpacked_check(const sdlk_bitpacked *packed, sdlk_error *err);

/* Free the words and reset to empty (NULL-safe). */
void sdlk_bitpacked_free(sdlk_bitpacked *packed);

#endif
