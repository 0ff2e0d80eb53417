/* key.c -- Reed-Solomon through libfec, exact binomial tails, key derivation. */
#include <ctype.h>
#include <fec.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/rng.h"
#include "wm/wm.h"

/* ---- Reed-Solomon ------------------------------------------------------------------ */

sdlk_status sdlk_wm_rs_init(sdlk_wm_rs *rs, int data_bytes, int parity_bytes, sdlk_error *err)
{
    memset(rs, 0, sizeof *rs);
    if (data_bytes < 1 || parity_bytes < 1 || data_bytes + parity_bytes > 255)
        return sdlk_error_set(err, SDLK_ERR_ARG, "RS(%d, %d): need data >= 1, parity >= 1, "
                              "total <= 255", data_bytes + parity_bytes, data_bytes);
    /* GF(2^8) with the usual primitive polynomial x^8+x^4+x^3+x^2+1 (0x11d); the code is
     * shortened by `pad` leading zero symbols that are never transmitted. */
    int pad = 255 - data_bytes - parity_bytes;
    rs->fec = init_rs_char(8, 0x11d, 1, 1, parity_bytes, pad);
    if (!rs->fec)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "libfec: cannot create an RS(%d, %d) codec",
                              data_bytes + parity_bytes, data_bytes);
    rs->data_bytes = data_bytes;
    rs->parity_bytes = parity_bytes;
    return SDLK_OK;
}

void sdlk_wm_rs_free(sdlk_wm_rs *rs)
{
    if (rs && rs->fec)
        free_rs_char(rs->fec);
    if (rs)
        memset(rs, 0, sizeof *rs);
}

void sdlk_wm_rs_encode(const sdlk_wm_rs *rs, const uint8_t *data, uint8_t *codeword)
{
    memmove(codeword, data, (size_t)rs->data_bytes);
    encode_rs_char(rs->fec, codeword, codeword + rs->data_bytes);
}

int sdlk_wm_rs_decode(const sdlk_wm_rs *rs, uint8_t *codeword, const int *erasures,
                      int n_erasures)
{
    int n = rs->data_bytes + rs->parity_bytes;
    if (n_erasures < 0 || n_erasures > rs->parity_bytes)
        return -1;
    /* libfec may write corrected positions into eras_pos and it modifies data even on
     * some failures: work on copies so that a failure leaves the caller's word as is. */
    uint8_t work[255];
    int pos[255];
    memcpy(work, codeword, (size_t)n);
    for (int i = 0; i < n_erasures; i++) {
        if (erasures[i] < 0 || erasures[i] >= n)
            return -1;
        pos[i] = erasures[i];
    }
    int corrected = decode_rs_char(rs->fec, work, n_erasures ? pos : NULL, n_erasures);
    if (corrected < 0)
        return -1;
    memcpy(codeword, work, (size_t)n);
    return corrected;
}

/* ---- binomial tails ------------------------------------------------------------------ */

double sdlk_wm_log_binom_tail(int n, int k)
{
    if (k <= 0)
        return 0.0;
    if (k > n)
        return -INFINITY;
    /* log sum_{i=k}^{n} C(n,i) 2^-n, by log-sum-exp around the largest term (i = k when
     * k >= n/2, else the sum is >= 1/2 and the terms near n/2 dominate). */
    double log2n = n * log(2.0);
    double max_term = -INFINITY;
    int i_peak = k > n / 2 ? k : n / 2;
    max_term = lgamma(n + 1.0) - lgamma(i_peak + 1.0) - lgamma(n - i_peak + 1.0);
    double sum = 0.0;
    for (int i = k; i <= n; i++) {
        double lt = lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0);
        sum += exp(lt - max_term);
    }
    double r = max_term + log(sum) - log2n;
    return r > 0.0 ? 0.0 : r;
}

double sdlk_wm_binom_tail(int n, int k)
{
    return exp(sdlk_wm_log_binom_tail(n, k));
}

int sdlk_wm_binom_threshold(int n, double fpr)
{
    double lf = log(fpr);
    for (int k = 0; k <= n; k++)
        if (sdlk_wm_log_binom_tail(n, k) <= lf)
            return k;
    return n + 1;
}

/* ---- key derivation ------------------------------------------------------------------ */

typedef struct xoshiro {
    uint64_t s[4];
} xoshiro;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(xoshiro *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform integer in [0, n) without modulo bias (Lemire's multiply-shift with rejection). */
static uint32_t xoshiro_below(xoshiro *g, uint32_t n)
{
    uint64_t m = (xoshiro_next(g) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (xoshiro_next(g) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* Seed the generator from the secret and the tile size: four FNV-1a lanes with
 * different offsets, each finished with splitmix64, so that every secret byte affects
 * all 256 bits of state. */
static void seed_from_secret(xoshiro *g, const uint8_t *secret, size_t len, int tile)
{
    for (int lane = 0; lane < 4; lane++) {
        uint64_t h = 0xcbf29ce484222325ULL ^ (0x100000001b3ULL * (uint64_t)(lane + 1));
        for (size_t i = 0; i < len; i++) {
            h ^= secret[i];
            h *= 0x100000001b3ULL;
        }
        h ^= (uint64_t)len * 0x9e3779b97f4a7c15ULL ^ (uint64_t)tile << 48;
        uint64_t st = h;
        sdlk_splitmix64(&st);
        g->s[lane] = sdlk_splitmix64(&st);
    }
    if (!(g->s[0] | g->s[1] | g->s[2] | g->s[3]))
        g->s[0] = 1; /* xoshiro's one forbidden state */
    for (int i = 0; i < 16; i++)
        xoshiro_next(g);
}

sdlk_status sdlk_wm_key_derive(const void *secret, size_t len, int tile, sdlk_wm_key *key,
                               sdlk_error *err)
{
    memset(key, 0, sizeof *key);
    if (!secret || len == 0)
        return sdlk_error_set(err, SDLK_ERR_ARG, "watermark key: the secret is empty");
    if (tile < SDLK_WM_MIN_TILE || tile > SDLK_WM_MAX_TILE || tile % 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "watermark tile size %d: must be a multiple "
                              "of 8 from %d to %d", tile, SDLK_WM_MIN_TILE, SDLK_WM_MAX_TILE);
    key->tile = tile;
    key->blocks_per_side = tile / 8;
    int blocks = key->blocks_per_side * key->blocks_per_side;
    key->chips = blocks * SDLK_WM_COEFS;
    key->chip_group = malloc(sizeof *key->chip_group * (size_t)key->chips);
    key->chip_sign = malloc(sizeof *key->chip_sign * (size_t)key->chips);
    key->group_chip = malloc(sizeof *key->group_chip * (size_t)key->chips);
    uint32_t *order = malloc(sizeof *order * (size_t)key->chips);
    if (!key->chip_group || !key->chip_sign || !key->group_chip || !order) {
        free(order);
        sdlk_wm_key_free(key);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "watermark key: out of memory");
    }
    sdlk_status st = sdlk_wm_rs_init(&key->rs, SDLK_WM_MESSAGE_BYTES, SDLK_WM_RS_PARITY, err);
    if (st != SDLK_OK) {
        free(order);
        sdlk_wm_key_free(key);
        return st;
    }

    /* The band: 2 <= u + v <= 4 (12 coefficients), at most 4/16 cycle/px per axis, so
     * JPEG 50 keeps it and a 0.5 downscale keeps most of it; above u + v = 1, where the
     * picture itself is strongest (measured: moving the band down to u, v <= 3 with
     * u + v <= 5 lost more to picture noise than it gained after a 0.5 resize). */
    int c = 0;
    for (int s = 2; s <= 4; s++)
        for (int u = 0; u <= s; u++) {
            key->coef_u[c] = (uint8_t)u;
            key->coef_v[c] = (uint8_t)(s - u);
            c++;
        }
    for (int u = 0; u < 8; u++)
        for (int x = 0; x < 8; x++)
            key->dct[u][x] = (float)((u == 0 ? sqrt(1.0 / 8) : sqrt(2.0 / 8)) *
                                     cos(M_PI * (2 * x + 1) * u / 16.0));

    xoshiro g;
    seed_from_secret(&g, secret, len, tile);
    /* A keyed permutation of the chips (Fisher-Yates); chip order[i] carries group
     * i mod 160, so every bit gets the same number of chips (+-1), scattered over the
     * tile, and nothing about the layout is predictable without the key. */
    for (int i = 0; i < key->chips; i++)
        order[i] = (uint32_t)i;
    for (int i = key->chips - 1; i > 0; i--) {
        uint32_t j = xoshiro_below(&g, (uint32_t)i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < key->chips; i++)
        key->chip_group[order[i]] = (uint16_t)(i % SDLK_WM_GROUPS);
    for (int i = 0; i < key->chips; i++)
        key->chip_sign[i] = (xoshiro_next(&g) >> 63) ? 1 : -1;
    for (int i = 0; i < SDLK_WM_PILOT_BITS; i++)
        key->pilot[i] = (xoshiro_next(&g) >> 63) ? 1 : -1;
    /* drawn last, so every earlier draw (and every mark ever embedded) is unchanged */
    key->decoy_seed = xoshiro_next(&g);
    /* the chips grouped by bit (a stable counting sort), once per key for every
     * detector instead of once per image or engine */
    memset(key->group_start, 0, sizeof key->group_start);
    for (int i = 0; i < key->chips; i++)
        key->group_start[key->chip_group[i] + 1]++;
    for (int gr = 0; gr < SDLK_WM_GROUPS; gr++)
        key->group_start[gr + 1] += key->group_start[gr];
    int fill[SDLK_WM_GROUPS];
    memcpy(fill, key->group_start, sizeof fill);
    for (int i = 0; i < key->chips; i++)
        key->group_chip[fill[key->chip_group[i]]++] = i;
    free(order);
    return SDLK_OK;
}

void sdlk_wm_key_free(sdlk_wm_key *key)
{
    if (!key)
        return;
    free(key->chip_group);
    free(key->chip_sign);
    free(key->group_chip);
    sdlk_wm_rs_free(&key->rs);
    memset(key, 0, sizeof *key);
}

sdlk_status sdlk_wm_key_derive_file(const char *path, int tile, sdlk_wm_key *key,
                                    sdlk_error *err)
{
    memset(key, 0, sizeof *key);
    sdlk_storage *storage;
    sdlk_status st = sdlk_file_map(path, &storage, err);
    if (st != SDLK_OK)
        return st;
    const uint8_t *bytes = sdlk_storage_data(storage);
    size_t len = sdlk_storage_size(storage);
    if (len > 0 && bytes[len - 1] == '\n')
        len--;
    if (len > 0 && bytes[len - 1] == '\r')
        len--;
    if (len == 0)
        st = sdlk_error_set(err, SDLK_ERR_ARG, "%s: the key file is empty", path);
    else
        st = sdlk_wm_key_derive(bytes, len, tile, key, err);
    sdlk_storage_release(storage);
    return st;
}

/* ---- messages ------------------------------------------------------------------------ */

sdlk_status sdlk_wm_message_parse(const char *hex, uint8_t msg[SDLK_WM_MESSAGE_BYTES],
                                  sdlk_error *err)
{
    const char *p = hex;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    if (strlen(p) != 2 * SDLK_WM_MESSAGE_BYTES)
        return sdlk_error_set(err, SDLK_ERR_ARG, "message '%s': need exactly %d hex digits "
                              "(%d bits)", hex, 2 * SDLK_WM_MESSAGE_BYTES, SDLK_WM_MESSAGE_BITS);
    for (int i = 0; i < SDLK_WM_MESSAGE_BYTES; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            int ch = (unsigned char)p[2 * i + j];
            if (!isxdigit(ch))
                return sdlk_error_set(err, SDLK_ERR_ARG, "message '%s': '%c' is not a hex "
                                      "digit", hex, ch);
            v = v * 16 + (isdigit(ch) ? ch - '0' : tolower(ch) - 'a' + 10);
        }
        msg[i] = (uint8_t)v;
    }
    return SDLK_OK;
}

void sdlk_wm_message_format(const uint8_t msg[SDLK_WM_MESSAGE_BYTES], char out[13])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SDLK_WM_MESSAGE_BYTES; i++) {
        out[2 * i] = digits[msg[i] >> 4];
        out[2 * i + 1] = digits[msg[i] & 15];
    }
    out[2 * SDLK_WM_MESSAGE_BYTES] = '\0';
}

void sdlk_wm_bit_signs(const sdlk_wm_key *key, const uint8_t msg[SDLK_WM_MESSAGE_BYTES],
                       int8_t signs[SDLK_WM_GROUPS])
{
    uint8_t code[SDLK_WM_CODE_BYTES];
    sdlk_wm_rs_encode(&key->rs, msg, code);
    for (int i = 0; i < SDLK_WM_CODED_BITS; i++)
        signs[i] = (code[i / 8] >> (7 - i % 8)) & 1 ? -1 : 1; /* bit 1 -> -1 */
    for (int i = 0; i < SDLK_WM_PILOT_BITS; i++)
        signs[SDLK_WM_CODED_BITS + i] = key->pilot[i];
}
