/* bitpack.c -- bit-plane packing of n-bit codes; see bitpack.h. */
#include "quant/bitpack.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

const char *sdlk_qencoding_name(sdlk_qencoding encoding)
{
    switch (encoding) {
    case SDLK_QENC_UNSIGNED: return "unsigned";
    case SDLK_QENC_SIGNED: return "signed";
    case SDLK_QENC_BINARY: return "binary";
    }
    return "?";
}

sdlk_status sdlk_qencoding_parse(const char *name, sdlk_qencoding *out, sdlk_error *err)
{
    for (int e = SDLK_QENC_UNSIGNED; e <= SDLK_QENC_BINARY; e++)
        if (strcmp(name, sdlk_qencoding_name((sdlk_qencoding)e)) == 0) {
            *out = (sdlk_qencoding)e;
            return SDLK_OK;
        }
    return sdlk_error_set(err, SDLK_ERR_ARG, "unknown code encoding '%s' (unsigned, signed, binary)",
                          name);
}

sdlk_qencoding sdlk_quant_scheme_encoding(sdlk_quant_scheme scheme)
{
    switch (scheme) {
    case SDLK_QUANT_SYMMETRIC: return SDLK_QENC_SIGNED;
    case SDLK_QUANT_ASYMMETRIC: return SDLK_QENC_UNSIGNED;
    case SDLK_QUANT_BINARY: return SDLK_QENC_BINARY;
    }
    return SDLK_QENC_UNSIGNED;
}

void sdlk_qencoding_range(sdlk_qencoding encoding, int bits, int32_t *min, int32_t *max)
{
    switch (encoding) {
    case SDLK_QENC_SIGNED:
        *min = -(1 << (bits - 1));
        *max = (1 << (bits - 1)) - 1;
        break;
    case SDLK_QENC_BINARY:
        *min = -1;
        *max = 1;
        break;
    default:
        *min = 0;
        *max = (1 << bits) - 1;
    }
}

int64_t sdlk_bitpack_k_words(int64_t k)
{
    int64_t w = (k + 63) / 64;
    return (w + SDLK_BITPACK_WORD_ALIGN - 1) / SDLK_BITPACK_WORD_ALIGN * SDLK_BITPACK_WORD_ALIGN;
}

static sdlk_status check_kind(int bits, sdlk_qencoding encoding, sdlk_error *err)
{
    if (bits < 1 || bits > 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "bits must be 1..8, got %d", bits);
    if (encoding != SDLK_QENC_UNSIGNED && encoding != SDLK_QENC_SIGNED &&
        encoding != SDLK_QENC_BINARY)
        return sdlk_error_set(err, SDLK_ERR_ARG, "unknown code encoding %d", (int)encoding);
    if (encoding == SDLK_QENC_BINARY && bits != 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "binary {-1,+1} codes have 1 bit, not %d", bits);
    return SDLK_OK;
}

sdlk_status sdlk_bitpacked_alloc(sdlk_bitpacked *out, int64_t rows, int64_t k, int bits,
                                 sdlk_qencoding encoding, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    sdlk_status st = check_kind(bits, encoding, err);
    if (st)
        return st;
    if (rows < 0 || k < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG, "negative matrix size %lld x %lld",
                              (long long)rows, (long long)k);
    int64_t kw = sdlk_bitpack_k_words(k);
    /* rows * bits * kw * 8 bytes must stay below the tensor size limit */
    uint64_t per_row = (uint64_t)bits * (uint64_t)kw * 8u;
    if (per_row && (uint64_t)rows > SDLK_MAX_TENSOR_BYTES / per_row)
        return sdlk_error_set(err, SDLK_ERR_OVERFLOW, "%lld x %lld codes of %d bits are too many",
                              (long long)rows, (long long)k, bits);
    size_t bytes = (size_t)((uint64_t)rows * per_row);
    size_t alloc = (bytes + 63) / 64 * 64;
    out->words = aligned_alloc(64, alloc ? alloc : 64);
    if (!out->words)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for %zu bytes of bit planes",
                              bytes);
    memset(out->words, 0, alloc ? alloc : 64);
    out->bits = bits;
    out->encoding = encoding;
    out->rows = rows;
    out->k = k;
    out->k_words = kw;
    return SDLK_OK;
}

void sdlk_bitpacked_free(sdlk_bitpacked *packed)
{
    if (!packed)
        return;
    free(packed->words);
    memset(packed, 0, sizeof *packed);
}

/* The byte pattern whose low `bits` bits are the planes of one code. */
static inline uint8_t code_pattern(uint8_t raw, sdlk_qencoding encoding)
{
    if (encoding == SDLK_QENC_BINARY)
        return (int8_t)raw > 0 ? 1 : 0;
    return raw; /* two's complement: the low bits of the int8 are the n-bit pattern */
}

/* 64 code patterns (bytes) -> one word per plane */
static void pack64(const uint8_t *pat, int bits, uint64_t *plane_words, int64_t plane_stride)
{
#if defined(__SSE2__)
    __m128i v[4];
    for (int q = 0; q < 4; q++)
        v[q] = _mm_loadu_si128((const __m128i *)(pat + 16 * q));
    for (int p = 0; p < bits; p++) {
        /* shifting 16-bit lanes left by 7 - p moves bit p of every byte to bit 7 of the same
         * byte (the carry from the low byte lands below bit 8+7), where movemask reads it */
        uint64_t w = 0;
        for (int q = 0; q < 4; q++)
            w |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_slli_epi16(v[q], 7 - p)) << (16 * q);
        plane_words[p * plane_stride] = w;
    }
#else
    for (int p = 0; p < bits; p++) {
        uint64_t w = 0;
        for (int j = 0; j < 64; j++)
            w |= (uint64_t)((pat[j] >> p) & 1u) << j;
        plane_words[p * plane_stride] = w;
    }
#endif
}

sdlk_status sdlk_bitpack(const void *codes, int64_t rows, int64_t k, int64_t row_stride,
                         int bits, sdlk_qencoding encoding, sdlk_bitpacked *out, sdlk_error *err)
{
    sdlk_status st = sdlk_bitpacked_alloc(out, rows, k, bits, encoding, err);
    if (st)
        return st;
    int32_t lo, hi;
    sdlk_qencoding_range(encoding, bits, &lo, &hi);
    const uint8_t *base = codes;
    int is_unsigned = encoding == SDLK_QENC_UNSIGNED;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = base + r * row_stride;
        /* validate first: a bad code must not leave a half-filled result behind */
        for (int64_t c = 0; c < k; c++) {
            int32_t v = is_unsigned ? (int32_t)row[c] : (int32_t)(int8_t)row[c];
            if (v < lo || v > hi || (encoding == SDLK_QENC_BINARY && v == 0)) {
                sdlk_bitpacked_free(out);
                return sdlk_error_set(err, SDLK_ERR_ARG,
                                      "code %d at row %lld, column %lld is not a %d-bit %s code "
                                      "(%d..%d%s)",
                                      v, (long long)r, (long long)c, bits,
                                      sdlk_qencoding_name(encoding), lo, hi,
                                      encoding == SDLK_QENC_BINARY ? ", not 0" : "");
            }
        }
        uint64_t *dst = out->words + (size_t)r * (size_t)bits * (size_t)out->k_words;
        uint8_t pat[64];
        for (int64_t c0 = 0; c0 < k; c0 += 64) {
            int64_t n = k - c0 < 64 ? k - c0 : 64;
            for (int64_t j = 0; j < n; j++)
                pat[j] = code_pattern(row[c0 + j], encoding);
            for (int64_t j = n; j < 64; j++)
                pat[j] = 0; /* padding bits are zero */
            pack64(pat, bits, dst + c0 / 64, out->k_words);
        }
    }
    return SDLK_OK;
}

sdlk_status sdlk_bitunpack(const sdlk_bitpacked *packed, void *codes, sdlk_error *err)
{
    sdlk_status st = check_kind(packed->bits, packed->encoding, err);
    if (st)
        return st;
    uint8_t *out = codes;
    int bits = packed->bits;
    for (int64_t r = 0; r < packed->rows; r++) {
        const uint64_t *src = packed->words + (size_t)r * (size_t)bits * (size_t)packed->k_words;
        for (int64_t c = 0; c < packed->k; c++) {
            uint32_t pattern = 0;
            for (int p = 0; p < bits; p++)
                pattern |= (uint32_t)((src[p * packed->k_words + c / 64] >> (c % 64)) & 1u) << p;
            int32_t v;
            if (packed->encoding == SDLK_QENC_BINARY)
                v = pattern ? 1 : -1;
            else if (packed->encoding == SDLK_QENC_SIGNED && (pattern >> (bits - 1)))
                v = (int32_t)pattern - (1 << bits); /* sign-extend */
            else
                v = (int32_t)pattern;
            out[r * packed->k + c] = (uint8_t)v;
        }
    }
    return SDLK_OK;
}

sdlk_status sdlk_bitpacked_check(const sdlk_bitpacked *p, sdlk_error *err)
{
    if (p->bits < 1 || p->bits > 8)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "packed matrix: bits %d is not 1..8", p->bits);
    if (p->encoding != SDLK_QENC_UNSIGNED && p->encoding != SDLK_QENC_SIGNED &&
        p->encoding != SDLK_QENC_BINARY)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "packed matrix: unknown encoding %d",
                              (int)p->encoding);
    if (p->encoding == SDLK_QENC_BINARY && p->bits != 1)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "packed matrix: binary encoding with %d bits",
                              p->bits);
    if (p->rows < 0 || p->k < 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "packed matrix: negative size %lld x %lld",
                              (long long)p->rows, (long long)p->k);
    if (p->k_words != sdlk_bitpack_k_words(p->k))
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "packed matrix: %lld words per plane, expected %lld for k = %lld",
                              (long long)p->k_words, (long long)sdlk_bitpack_k_words(p->k),
                              (long long)p->k);
    if (!p->words && p->rows > 0 && p->k_words > 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "packed matrix: no data");
    int64_t full = p->k / 64, tail_bits = p->k % 64;
    for (int64_t r = 0; r < p->rows; r++)
        for (int b = 0; b < p->bits; b++) {
            const uint64_t *w = p->words + ((size_t)r * (size_t)p->bits + (size_t)b) * (size_t)p->k_words;
            int64_t first_pad = full;
            if (tail_bits) {
                if (w[full] >> tail_bits)
                    goto bad;
                first_pad = full + 1;
            }
            for (int64_t i = first_pad; i < p->k_words; i++)
                if (w[i])
                    goto bad;
            continue;
        bad:
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "packed matrix: padding bits of row %lld, plane %d are not zero",
                                  (long long)r, b);
        }
    return SDLK_OK;
}
