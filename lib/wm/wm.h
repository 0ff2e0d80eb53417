/* wm.h -- keyed, tile-based image watermarking in luma (QRMark design, classical).
 *
 * Contract
 *   What is embedded. A 48-bit message is Reed-Solomon coded over GF(2^8) with Debian's
 *   libfec (RS(12, 6): 6 data bytes + SDLK_WM_RS_PARITY parity bytes, a code shortened
 *   from RS(255, 249); up to 3 wrong bytes, or 6 erased ones, or 2e + f <= 6, are
 *   corrected) into 96 coded bits; SDLK_WM_PILOT_BITS key-derived pilot bits are added.
 *   Each of these 160 bits is spread over many 8x8-DCT coefficients of the luma plane:
 *   the low/mid band (the 12 coefficients with 2 <= u + v <= 4, which survive JPEG 50
 *   and a 0.5 resize) of every 8x8 block of a T x T tile carries +/-1 chips, and a
 *   key-derived permutation assigns the tile's chips to the bits and gives each chip a
 *   key-derived sign; the band's edge coefficients (0, 4) and (4, 0) get half the
 *   amplitude of the other ten (a 0.5 resize moves them to Nyquist and removes them;
 *   embed.c). The tile pattern repeats with period T over the whole image (a
 *   torus), so every tile carries the whole coded message and one tile suffices.
 *   The luma change is pattern x perceptual mask: the mask follows the local standard
 *   deviation of luma (texture hides the mark, flat areas get little), normalised so that
 *   the RMS change over the image is `strength` (8-bit units; PSNR ~ 20 log10(255 /
 *   strength)). Colour images get the same change on R, G and B, which changes Y by
 *   exactly that and leaves Cb and Cr alone; gray is changed directly; 16-bit images are
 *   changed in 16-bit units (strength x 257) and stay 16-bit; alpha is never touched.
 *
 *   Detection runs as four separable stages (each a function below; all state lives in
 *   caller-owned structs, nothing is global, the key and RS codec are read-only once
 *   derived and may be shared by threads):
 *     1. luma       sdlk_wm_luma_from_image: the image's luma as floats (8-bit units).
 *     2. locate     sdlk_wm_locate: contrast-normalise the luma, fold it modulo the tile
 *                   period P = T x s for each candidate resize factor s (summing every
 *                   tile at the same phase, which adds the mark coherently and the
 *                   picture incoherently), resample the folded tile to T x T, and search
 *                   all T x T cyclic offsets: the 64 phases inside an 8x8 block by block
 *                   DCTs of the shifted folded tile, the (T/8)^2 block shifts by
 *                   re-indexing. Each band coefficient is equalised (divided by
 *                   its RMS over the blocks) and clipped; one at or above the
 *                   Nyquist frequency of the image at that resize factor gets weight
 *                   0 (wm_internal.h, wm_band_above_nyquist). The hypothesis kept is
 *                   the one whose pilot bits agree most with the key's pilots.
 *     3. extract    sdlk_wm_extract_soft: the soft value of every coded bit at that
 *                   hypothesis (signed correlation of its chips with the key's signs).
 *     4. decide     sdlk_wm_decode_decide: the decision and the message.
 *   Stages 2 and 3 also run as CUDA kernels on minibatches (an engine, below; the
 *   detection pipeline's runs in wm/detect_pipeline.h), with the CPU's results.
 *
 *   The decision is a keyed statistical test, not "RS decoding succeeded". For one
 *   hypothesis, the agreement k of the n = 64 hard pilot bits with the key's pilots is
 *   exactly Binomial(n, 1/2) on an image that does not carry this key's mark (the pilot
 *   signs are key-derived fair coins independent of the chips), so its tail
 *   P[Bin(n, 1/2) >= k] is an exact p-value; the search over H hypotheses (T^2 offsets
 *   for each resize factor that fits the image) is paid for with Bonferroni's bound,
 *   p = min(1, H x tail), so that P[p <= fpr] <= fpr holds for unmarked images whatever
 *   the search picks. Detected means p <= fpr (default 1e-6). The message is then read
 *   by RS decoding of the hard coded bits -- first without erasures, then with the
 *   weakest bytes (smallest soft magnitude) erased -- and reported only when decoding
 *   succeeds; the decision does not depend on it.
 *
 *   The reported p-value is calibrated, not only bounded. Bonferroni's bound is valid
 *   but conservative: the H hypotheses are strongly correlated, so on unmarked images
 *   it is stochastically larger than uniform. When the image is not detected (the
 *   bound is above fpr, so the search ran to the end) the p-value is instead a Monte
 *   Carlo test over the search's own hypotheses: every hypothesis keeps the signs of
 *   its 64 pilot sums (two 64-bit masks), and N decoy pilot vectors (fair coins from
 *   the key's decoy_seed) are scored against all of them exactly as the key's pilots
 *   were. On an unmarked image the key's pilots are fair coins independent of those
 *   signs, so the observed best agreement and the N decoys' best agreements are
 *   exchangeable, and p_mc = (#{decoy > obs} + U (#{decoy = obs} + 1)) / (N + 1),
 *   with U in (0, 1] drawn from the masks (ties broken at random, reproducibly), is
 *   exactly uniform on (0, 1]. The reported p = fpr + (1 - fpr) p_mc stays above fpr,
 *   so detected still means exactly "Bonferroni bound <= fpr", the detections and their
 *   p-values are unchanged, and P[p <= a] <= a (1 + fpr) for every a on unmarked
 *   images. Cost: N x H popcounts (N = 99, H = 20480 at T = 64: ~1 ms). decoys = 0
 *   gives the Bonferroni bound everywhere, as before.
 *
 *   Keys: a secret of any bytes is hashed (FNV-1a lanes + splitmix64, not a
 *   cryptographic hash) into the seed of a xoshiro256** generator that draws the chip
 *   permutation, the chip signs and the pilots. A different tile size is a different key.
 */
#ifndef SDLK_WM_WM_H
#define SDLK_WM_WM_H

#include <stddef.h>
#include <stdint.h>

#include "core/device.h"
#include "core/error.h"
#include "core/tensor.h"

#define SDLK_WM_MESSAGE_BITS 48
#define SDLK_WM_MESSAGE_BYTES 6
#define SDLK_WM_RS_PARITY 6                                              /* parity bytes */
#define SDLK_WM_CODE_BYTES (SDLK_WM_MESSAGE_BYTES + SDLK_WM_RS_PARITY)   /* 12 */
#define SDLK_WM_CODED_BITS (8 * SDLK_WM_CODE_BYTES)                      /* 96 */
#define SDLK_WM_PILOT_BITS 64
#define SDLK_WM_GROUPS (SDLK_WM_CODED_BITS + SDLK_WM_PILOT_BITS)         /* 160 */
#define SDLK_WM_COEFS 12            /* DCT coefficients used per 8x8 block */
#define SDLK_WM_DEFAULT_TILE 64
#define SDLK_WM_MIN_TILE 32
#define SDLK_WM_MAX_TILE 256
#define SDLK_WM_DEFAULT_STRENGTH 2.2
#define SDLK_WM_DEFAULT_FPR 1e-6
#define SDLK_WM_MAX_SCALES 8
#define SDLK_WM_DEFAULT_DECOYS 99
#define SDLK_WM_MAX_DECOYS 9999

/* ---- Reed-Solomon (libfec) ------------------------------------------------------ */

/* A libfec RS codec over GF(2^8) (primitive polynomial 0x11d, fcr 1, prim 1), shortened
 * to data_bytes + parity_bytes <= 255. Owned by the caller; after init it is only read,
 * so threads may share it. */
typedef struct sdlk_wm_rs {
    void *fec;        /* libfec handle (init_rs_char) */
    int data_bytes;
    int parity_bytes;
} sdlk_wm_rs;

/* Create the codec. data_bytes >= 1, parity_bytes >= 1, sum <= 255. */
sdlk_status sdlk_wm_rs_init(sdlk_wm_rs *rs, int data_bytes, int parity_bytes, sdlk_error *err);
/* Free the libfec handle (safe on a zeroed or freed struct). */
void sdlk_wm_rs_free(sdlk_wm_rs *rs);
/* codeword[0..data) = data, codeword[data..data+parity) = parity. */
void sdlk_wm_rs_encode(const sdlk_wm_rs *rs, const uint8_t *data, uint8_t *codeword);
/* Correct `codeword` in place; `erasures` lists positions (0-based in the codeword) known
 * to be unreliable (may be NULL when n_erasures is 0; n_erasures <= parity). Returns the
 * number of corrected symbols, or -1 when the word is not decodable (codeword then
 * unchanged). libfec's capability: 2 x errors + erasures <= parity. */
int sdlk_wm_rs_decode(const sdlk_wm_rs *rs, uint8_t *codeword, const int *erasures,
                      int n_erasures);

/* ---- statistics ------------------------------------------------------------------- */

/* log of P[Binomial(n, 1/2) >= k], exact (log-sum-exp of log C(n, i) - n log 2).
 * 0 for k <= 0, -INFINITY for k > n. n <= 100000. */
double sdlk_wm_log_binom_tail(int n, int k);
/* P[Binomial(n, 1/2) >= k] (may underflow to 0 for huge n; use the log form then). */
double sdlk_wm_binom_tail(int n, int k);
/* Smallest k with P[Binomial(n, 1/2) >= k] <= fpr (n + 1 when none). */
int sdlk_wm_binom_threshold(int n, double fpr);

/* ---- key -------------------------------------------------------------------------- */

/* Everything the secret key decides for one tile size. Derived once, then read-only. */
typedef struct sdlk_wm_key {
    int tile;               /* T, a multiple of 8 */
    int blocks_per_side;    /* T / 8 */
    int chips;              /* (T/8)^2 * SDLK_WM_COEFS */
    uint16_t *chip_group;   /* [chips]: which coded/pilot bit the chip carries */
    int8_t *chip_sign;      /* [chips]: +1 / -1 */
    int group_start[SDLK_WM_GROUPS + 1]; /* group g's chips are group_chip[group_start[g]
                                            .. group_start[g + 1]) */
    int *group_chip;        /* [chips]: the chips grouped by bit, each group in chip order
                               (the order every detector sums them in, CPU and GPU) */
    int8_t pilot[SDLK_WM_PILOT_BITS];   /* pilot bit signs, +1 / -1 */
    uint64_t decoy_seed;    /* seeds the decoy pilots of the calibrated p-value */
    float dct[8][8];        /* orthonormal DCT-II basis, dct[u][x] */
    uint8_t coef_u[SDLK_WM_COEFS], coef_v[SDLK_WM_COEFS]; /* the band used */
    sdlk_wm_rs rs;          /* RS(12, 6) codec */
} sdlk_wm_key;

/* Derive the key for tile size `tile` (multiple of 8 in [SDLK_WM_MIN_TILE,
 * SDLK_WM_MAX_TILE]) from `secret` (len >= 1 bytes). Free with sdlk_wm_key_free. */
sdlk_status sdlk_wm_key_derive(const void *secret, size_t len, int tile, sdlk_wm_key *key,
                               sdlk_error *err);
void sdlk_wm_key_free(sdlk_wm_key *key);
/* The same with the secret read from a file ("-" = stdin): all its bytes, less one
 * trailing newline (so a file written by `echo SECRET >F` equals the secret SECRET). An
 * empty secret is an SDLK_ERR_ARG naming the file. */
sdlk_status sdlk_wm_key_derive_file(const char *path, int tile, sdlk_wm_key *key,
                                    sdlk_error *err);

/* Parse 12 hex digits (upper or lower case, an optional "0x") into 6 bytes. */
sdlk_status sdlk_wm_message_parse(const char *hex, uint8_t msg[SDLK_WM_MESSAGE_BYTES],
                                  sdlk_error *err);
/* 12 lowercase hex digits + NUL. */
void sdlk_wm_message_format(const uint8_t msg[SDLK_WM_MESSAGE_BYTES], char out[13]);

/* The 160 bit signs (+1/-1) a tile carries for `msg`: coded bits then pilots. */
void sdlk_wm_bit_signs(const sdlk_wm_key *key, const uint8_t msg[SDLK_WM_MESSAGE_BYTES],
                       int8_t signs[SDLK_WM_GROUPS]);

/* ---- embedding -------------------------------------------------------------------- */

/* Mark `img` ([H, W, C] u8/u16, C = 1..4, H and W >= key->tile) with `msg` at RMS luma
 * change `strength` (8-bit units, > 0). *out receives a new image of the same shape and
 * dtype (alpha copied). Fails with SDLK_ERR_ARG for a bad strength and
 * SDLK_ERR_UNSUPPORTED for other dtypes or an image smaller than one tile. */
sdlk_status sdlk_wm_embed(const sdlk_tensor *img, const sdlk_wm_key *key,
                          const uint8_t msg[SDLK_WM_MESSAGE_BYTES], double strength,
                          sdlk_tensor *out, sdlk_error *err);

/* ---- detection stages ------------------------------------------------------------- */

/* A luma plane in 8-bit units (row-major, owned). */
typedef struct sdlk_wm_plane {
    float *data;
    int width, height;
} sdlk_wm_plane;

/* Stage 1: luma of an [H, W, C] u8/u16 image (BT.601 weights for colour; alpha
 * ignored), in 8-bit units. Free with sdlk_wm_plane_free. */
sdlk_status sdlk_wm_luma_from_image(const sdlk_tensor *img, sdlk_wm_plane *out, sdlk_error *err);
void sdlk_wm_plane_free(sdlk_wm_plane *plane);

/* Smallest image side the detector accepts for tile size T (= T: one full period at
 * scale 1). */
int sdlk_wm_min_side(int tile);

typedef struct sdlk_wm_detect_params {
    int n_scales;                       /* resize factors searched (default 5) */
    double scales[SDLK_WM_MAX_SCALES];  /* default 1, 0.5, 2, 0.75, 1.5 (tried in order) */
    double fpr;                         /* decision threshold on p (default 1e-6) */
    int exhaustive;                     /* 1: search every scale even after a detection */
    int decoys;                         /* decoy pilot vectors of the calibrated p-value
                                           (0..SDLK_WM_MAX_DECOYS, default 99; 0 = the
                                           Bonferroni bound only) */
    sdlk_device device;                 /* where sdlk_wm_detect, the engines and the
                                           detection runs locate + extract (default
                                           SDLK_DEVICE_CPU; see "Devices" below) */
} sdlk_wm_detect_params;
void sdlk_wm_detect_params_init(sdlk_wm_detect_params *p);

/* The located hypothesis and what extraction needs from it. */
typedef struct sdlk_wm_sync {
    int tile;                 /* T */
    double scale;             /* resize factor of the hypothesis kept */
    int offset_y, offset_x;   /* tile origin in the (rescaled) image, 0..T-1 */
    int pilot_agree;          /* agreeing pilot bits at that hypothesis */
    int64_t hypotheses;       /* how many were covered by the search (for Bonferroni) */
    double tiles;             /* image area at that scale in tiles (P x P each) */
    float *blocks;            /* [(T/8)^2][SDLK_WM_COEFS] DCT coefficients of the folded
                                 tile at the kept phase, in pattern block order */
    uint64_t *pilot_positive; /* NULL, or [searched] for every hypothesis searched (in no
                                 particular order): bit g set when its pilot sum g is > 0
                                 (kept when params->decoys > 0; owns pilot_nonzero) */
    uint64_t *pilot_nonzero;  /* [searched]: bit g set when pilot sum g is != 0 */
    int64_t searched;         /* hypotheses in those (= hypotheses unless the search
                                 stopped early on a detection) */
} sdlk_wm_sync;
void sdlk_wm_sync_free(sdlk_wm_sync *sync);

/* Stage 2. Fails with SDLK_ERR_UNSUPPORTED ("too small: at least TxT pixels needed")
 * when a side is below sdlk_wm_min_side(key->tile). */
sdlk_status sdlk_wm_locate(const sdlk_wm_plane *luma, const sdlk_wm_key *key,
                           const sdlk_wm_detect_params *params, sdlk_wm_sync *sync,
                           sdlk_error *err);

/* Stage 3: soft values of the 96 coded bits then the 64 pilots (positive = bit 0 /
 * pilot sign +1), in units of the folded-tile noise (|value| ~ reliability). */
void sdlk_wm_extract_soft(const sdlk_wm_sync *sync, const sdlk_wm_key *key,
                          float soft[SDLK_WM_GROUPS]);

typedef struct sdlk_wm_result {
    int detected;                 /* Bonferroni bound <= fpr (equivalently p_value <= fpr) */
    double p_value;               /* calibrated when decoys > 0 and not detected, else
                                     the Bonferroni bound; in [0, 1] (see the contract) */
    double log10_p;               /* log10 of p_value (finite even when p underflows) */
    double p_bound;               /* the Bonferroni bound min(1, H tail) */
    int decoys;                   /* decoys behind p_value (0: p_value is the bound) */
    int pilot_agree, pilots;      /* k of n */
    int message_ok;               /* RS decoding succeeded (message valid) */
    uint8_t message[SDLK_WM_MESSAGE_BYTES];
    int rs_corrected;             /* symbols corrected (errors + erasures) */
    int rs_erasures;              /* erasures used by the successful attempt */
    int coded_bit_errors;         /* hard coded bits that differ from the decoded codeword */
} sdlk_wm_result;

/* Stage 4: p-value from sync (pilot agreement, hypotheses, pilot signs), detection at
 * params->fpr with params->decoys (NULL: the defaults), and the RS-decoded message from
 * the soft bits. */
void sdlk_wm_decode_decide(const sdlk_wm_key *key, const sdlk_wm_sync *sync,
                           const float soft[SDLK_WM_GROUPS],
                           const sdlk_wm_detect_params *params, sdlk_wm_result *out);

/* The calibrated p_mc of the contract, in (0, 1]: the best agreement of `pilots` (bit g
 * set = pilot g is +1) over the n hypotheses' pilot signs (as in sdlk_wm_sync), ranked
 * among the best agreements of `decoys` decoy vectors drawn from `seed`. O(decoys n).
 * Exposed for tests. */
double sdlk_wm_decoy_p(const uint64_t *positive, const uint64_t *nonzero, int64_t n,
                       uint64_t pilots, int decoys, uint64_t seed);

/* All four stages on one image tensor, stages 2 and 3 on params->device (NULL params:
 * the defaults, CPU). sync may be NULL when the caller does not need the hypothesis.
 * On the GPU each call opens and closes an engine (below): for many images use an
 * engine or the detection pipeline (wm/detect_pipeline.h). */
sdlk_status sdlk_wm_detect(const sdlk_tensor *img, const sdlk_wm_key *key,
                           const sdlk_wm_detect_params *params, sdlk_wm_result *out,
                           sdlk_wm_sync *sync, sdlk_error *err);

/* ---- devices: locate + extract on minibatches ------------------------------------- */

/* Devices (lib/core/device.h). Stages 2 and 3 have a CPU path (the functions above) and
 * a GPU path (CUDA kernels in kernels/wm.cu) that computes the same thing operation for
 * operation, in the same order, with IEEE round-to-nearest arithmetic: the same
 * hypothesis (scale, offset, pilot agreement, Bonferroni count), the same band and soft
 * bits (bit for bit where the CPU build does not contract multiply-adds, as GCC with
 * -std=c11 on x86-64; tests/gpu/gpu_wm checks them to 1e-5 relative and reports whether
 * they were identical), hence the same p-value, decision and message.
 * SDLK_DEVICE_AUTO takes the GPU when sdl was built with CUDA and one is usable;
 * SDLK_DEVICE_GPU without one is an SDLK_ERR_DEVICE error saying why, never a silent
 * fallback. Stages 1 (luma) and 4 (decide) always run on the CPU.
 *
 * An engine runs stages 2 + 3 for minibatches of images on one device and one key: on
 * the GPU it owns a CUDA stream, its device buffers (grown as needed and kept) and a
 * device copy of the key's tables, so that several engines -- one per in-flight
 * minibatch, each driven by its own thread -- share one GPU; on the CPU it holds
 * nothing. One thread at a time uses an engine; `key` must outlive it. */
typedef struct sdlk_wm_engine sdlk_wm_engine;

sdlk_status sdlk_wm_engine_open(const sdlk_wm_key *key, sdlk_device device,
                                sdlk_wm_engine **out, sdlk_error *err);
void sdlk_wm_engine_close(sdlk_wm_engine *engine);   /* NULL is ignored */
/* Where it runs: SDLK_DEVICE_CPU or SDLK_DEVICE_GPU (AUTO is resolved at open). */
sdlk_device sdlk_wm_engine_device(const sdlk_wm_engine *engine);

/* One image of a minibatch. */
typedef struct sdlk_wm_task {
    const sdlk_wm_plane *luma;  /* in */
    sdlk_wm_sync *sync;         /* out: as sdlk_wm_locate (free with sdlk_wm_sync_free) */
    float *soft;                /* out: [SDLK_WM_GROUPS], as sdlk_wm_extract_soft */
    sdlk_status status;         /* out: SDLK_OK, or why this image failed (too small...) */
    sdlk_error error;           /* out: the message when status is not SDLK_OK */
} sdlk_wm_task;

/* Stages 2 + 3 for tasks[0..n): each image gets what sdlk_wm_locate then
 * sdlk_wm_extract_soft give it (with params->device ignored: the engine's device
 * decides), or its own error (the messages of sdlk_wm_locate), while the others go on.
 * Returns non-OK only when the whole minibatch failed (CUDA error, out of memory); then
 * every task has that status and message and no sync holds memory. */
sdlk_status sdlk_wm_locate_extract(sdlk_wm_engine *engine, const sdlk_wm_detect_params *params,
                                   sdlk_wm_task *tasks, int n, sdlk_error *err);

#endif
