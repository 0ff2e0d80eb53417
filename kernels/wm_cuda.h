/* wm_cuda.h -- the watermark detector's locate + extract stages as CUDA kernels
 * (kernels/wm.cu), reached only through lib/wm (sdlk_wm_engine in wm/wm.h).
 *
 * Contract
 *   An sdlk_cuda_wm is one CUDA stream (non-blocking) with the device buffers it owns
 *   and a device copy of one key's tables; lib/wm opens one per in-flight minibatch, so
 *   several run concurrently on one GPU, each driven by its own host thread. One host
 *   thread at a time may use a given sdlk_cuda_wm; different ones are independent.
 *
 *   sdlk_cuda_wm_run() takes a minibatch of luma planes (host memory, 8-bit units) whose
 *   search plan the caller has already checked (each image has at least one usable
 *   scale), runs for each image exactly the computation of sdlk_wm_locate followed by
 *   sdlk_wm_extract_soft (lib/wm/detect.c) -- contrast normalisation through double
 *   integral images, the fold modulo each scale's period, the cyclic resampling, the
 *   band DCTs at the 64 block phases, the pilot search over every block shift, the
 *   choice of the best hypothesis with the CPU's tie rule and early stop, the soft bits
 *   -- and writes the results into the caller's host arrays. The arithmetic is the
 *   CPU's, operation for operation: the same summation orders and IEEE round-to-nearest
 *   operations without contraction (__fadd_rn, __fmul_rn, __dadd_rn, ...), so results
 *   equal the CPU path's bit for bit when the CPU build does not contract either (GCC
 *   with -std=c11 does not, and x86-64 without -mfma cannot).
 *   Images are processed in chunks that keep the device memory of one sdlk_cuda_wm
 *   near SDLK_CUDA_WM_CHUNK_PIXELS pixels' worth (about 20 bytes a pixel); a larger
 *   image is a chunk of its own. Buffers grow and are kept for the next call.
 *   Every CUDA call's status and every kernel launch is checked; a failure is an
 *   SDLK_ERR_DEVICE error naming the call or kernel (SDLK_ERR_NOMEM for host memory)
 *   and fails the whole call.
 */
#ifndef SDLK_KERNELS_WM_CUDA_H
#define SDLK_KERNELS_WM_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SDLK_CUDA_WM_PILOTS 64
#define SDLK_CUDA_WM_GROUPS 160
#define SDLK_CUDA_WM_COEFS 12
#define SDLK_CUDA_WM_MAX_SCALES 8
#define SDLK_CUDA_WM_CHUNK_PIXELS ((size_t)32 << 20)

typedef struct sdlk_cuda_wm sdlk_cuda_wm;

/* What the kernels need from an sdlk_wm_key and the detector's constants (copied at
 * create; the pointers need not outlive the call). */
typedef struct sdlk_cuda_wm_key {
    int tile;                       /* T, multiple of 8 */
    int blocks_per_side;            /* T / 8 */
    int chips;                      /* (T/8)^2 * 12 */
    const int8_t *chip_sign;        /* [chips] */
    const int *group_start;         /* [161]: group g's chips are group_chip[group_start[g]
                                       .. group_start[g + 1]) (sdlk_wm_key) */
    const int *group_chip;          /* [chips]: the chips by group, each in chip order */
    const int8_t *pilot;            /* [64] */
    const float *dct;               /* [8][8] row-major, dct[u * 8 + x] */
    const uint8_t *coef_u, *coef_v; /* [12] */
    int coded_bits;                 /* groups below this are coded bits, the rest pilots */
    int whiten_radius;              /* local statistics window radius */
    float whiten_floor;             /* added to the local standard deviation */
    float band_clip;                /* clip of the equalised band */
} sdlk_cuda_wm_key;

/* One resize factor of the search: the fold period and the cyclic resampling from it to
 * T (taps == 0 when period == T: no resampling). first[T], weight[T * taps]. */
typedef struct sdlk_cuda_wm_scale {
    int period;
    int taps;
    const int *first;
    const float *weight;
} sdlk_cuda_wm_scale;

/* One image of a minibatch. */
typedef struct sdlk_cuda_wm_image {
    const float *luma;              /* in: height x width, row-major */
    int width, height;              /* in */
    uint32_t usable_mask;           /* in: bit s set when scale s fits this image */
    uint8_t stop[SDLK_CUDA_WM_PILOTS + 1]; /* in: stop[k] != 0: a best hypothesis with k
                                       agreeing pilots ends the search after its scale */
    int scale_index;                /* out: scale of the hypothesis kept */
    int offset_y, offset_x;         /* out: tile origin, 0..T-1 */
    int pilot_agree;                /* out */
    float *blocks;                  /* out: [chips] band at the kept hypothesis (caller's) */
    float *soft;                    /* out: [160] soft bits (caller's) */
    uint64_t *pilot_positive;       /* out, or NULL: [usable scales x T^2] the pilot sum
                                       signs of every hypothesis (wm.h, sdlk_wm_sync) */
    uint64_t *pilot_nonzero;        /* out, with pilot_positive: the same, sums != 0 */
    int64_t searched;               /* out: hypotheses in those; 0 when the search
                                       stopped early (a detection: they are not needed) */
} sdlk_cuda_wm_image;

/* Create a stream, upload the key's tables. */
sdlk_status sdlk_cuda_wm_create(const sdlk_cuda_wm_key *key, sdlk_cuda_wm **out, sdlk_error *err);
/* Release everything (waits for the stream's work); NULL is ignored. */
void sdlk_cuda_wm_destroy(sdlk_cuda_wm *wm);

/* Locate + extract for images[0..n) with the scales[0..n_scales) searched in order. */
sdlk_status sdlk_cuda_wm_run(sdlk_cuda_wm *wm, const sdlk_cuda_wm_scale *scales, int n_scales,
                             sdlk_cuda_wm_image *images, int n, sdlk_error *err);

#ifdef __cplusplus
}
#endif

#endif
