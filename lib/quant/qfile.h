/* qfile.h -- the safetensors layout of quantized tensors (sdl-formats(5), QUANTIZED
 * TENSORS): what sdl-quantize writes and sdl-qmatmul and `sdl-quantize --dequantize` read.
 *
 * Contract
 *   A float tensor NAME (f16, bf16, f32 or f64) of shape S is stored in a tensor set as
 *   entries named after it plus one metadata entry. The codes are viewed as a matrix of
 *   R rows of K codes: K = S[-1] (1 for a 0-d tensor) and R = numel / K (the product of
 *   the other dimensions), the shape a GEMM operand has.
 *     format "sdl" (quant.h codes, bitpack.h planes):
 *       NAME.codes       i8 (symmetric, binary) or u8 (asymmetric), shape S
 *       NAME.scale       f32, the scales' shape of quant.h for the granularity
 *       NAME.zero_point  u8, the scales' shape; present exactly when asymmetric
 *       NAME.planes      u64 [R, bits, W]: the bit planes packed along K exactly as
 *                        bitpack.h lays them out in memory, W = sdlk_bitpack_k_words(K)
 *     format "q4_0" / "q8_0" (ggml blocks, qblock.h):
 *       NAME.q4_0        u8 [R, K/32 * 18]: each row's blocks in ggml's byte layout
 *       NAME.q8_0        u8 [R, K/32 * 34]  (K must be a multiple of 32)
 *   and metadata "sdl.quant.NAME" = one line of JSON, keys in this order:
 *       {"layout":1,"format":"sdl","bits":4,"scheme":"symmetric","encoding":"signed",
 *        "granularity":"group","axis":1,"group":32,"dtype":"f32","shape":[64,128],
 *        "rows":64,"k":128,"k_words":4}
 *   "axis" is non-negative, 0 for per-tensor; "group" is 0 unless per-group. The ggml
 *   formats carry layout, format, dtype, shape, rows and k only. "dtype" is the source
 *   tensor's, to which --dequantize restores.
 *
 *   Reading (sdlk_qtensor_get) trusts nothing: the JSON must parse and hold every key with
 *   the right type and a consistent value (bits 1..8, the encoding that the scheme
 *   implies, axis/group valid for the shape, rows * k == numel, k_words as computed);
 *   every entry must exist with the dtype and shape the metadata implies; scales must be
 *   finite and > 0, zero points and codes inside their ranges, and the planes must equal
 *   the packing of the codes (so padding bits are zero); ggml block scales must be finite.
 *   Any fault is SDLK_ERR_FORMAT naming the file, the tensor and what is wrong.
 *
 *   Errors never print; on failure an output set may hold some of NAME's entries and
 *   should be discarded. No global state. Work is O(numel * bits).
 */
#ifndef SDLK_QUANT_QFILE_H
#define SDLK_QUANT_QFILE_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/pool.h"
#include "core/tensor.h"
#include "core/tensorset.h"
#include "io/tensorio.h"
#include "quant/bitpack.h"
#include "quant/quant.h"

#define SDLK_QFILE_META_PREFIX "sdl.quant."
#define SDLK_QFILE_LAYOUT_VERSION 1

typedef enum sdlk_qformat {
    SDLK_QFORMAT_SDL = 0, /* codes + scales (+ zero points) + planes */
    SDLK_QFORMAT_Q4_0,    /* ggml Q4_0 blocks */
    SDLK_QFORMAT_Q8_0     /* ggml Q8_0 blocks */
} sdlk_qformat;

/* "sdl", "q4_0", "q8_0" and the parser (SDLK_ERR_ARG for other names). */
const char *sdlk_qformat_name(sdlk_qformat format);
sdlk_status sdlk_qformat_parse(const char *name, sdlk_qformat *out, sdlk_error *err);

/* What the metadata of one quantized tensor says. */
typedef struct sdlk_qtensor_info {
    sdlk_qformat format;
    sdlk_quant_params params; /* sdl: axis non-negative; nan_to_zero always 0 */
    sdlk_qencoding encoding;  /* sdl */
    sdlk_dtype dtype;         /* of the source tensor */
    int ndim;
    int64_t shape[SDLK_MAX_DIMS];
    int64_t rows, k, k_words; /* k_words: sdl only */
} sdlk_qtensor_info;

/* A quantized tensor read from a set: views sharing the set's storage. */
typedef struct sdlk_qtensor {
    sdlk_qtensor_info info;
    sdlk_quantized q;   /* sdl: params, codes, scales, zero points */
    sdlk_tensor planes; /* sdl: u64 [rows, bits, k_words] */
    sdlk_tensor blocks; /* q4_0 / q8_0: u8 [rows, bytes per row] */
} sdlk_qtensor;

/* Quantize float tensor `x` into `set` under `name` (the entries and metadata above).
 * params: bits/scheme/granularity for the sdl format; nan_to_zero for every format
 * (NaN/Inf become 0 instead of an error naming the flat index). `stats`, when not NULL,
 * receives the reconstruction error against x. Shape faults (group not dividing the axis,
 * axis out of range, K not a multiple of 32 for ggml) are SDLK_ERR_ARG. */
sdlk_status sdlk_qtensor_add(sdlk_tensor_set *set, const char *name, const sdlk_tensor *x,
                             sdlk_qformat format, const sdlk_quant_params *params,
                             sdlk_pool *pool, sdlk_quant_stats *stats, sdlk_error *err);

/* The name a metadata key describes ("sdl.quant.w" -> "w"), or NULL for other keys. */
const char *sdlk_qfile_meta_name(const char *key);
/* Number of quantized tensors in a set (metadata entries with the prefix). */
size_t sdlk_qfile_count(const sdlk_tensor_set *set);
/* If `tensor_name` is an entry of a quantized tensor of `set` ("w.codes" while
 * "sdl.quant.w" exists), copy that tensor's name into buf and return 1; else 0. */
int sdlk_qfile_owner(const sdlk_tensor_set *set, const char *tensor_name, char *buf,
                     size_t size);
/* The quantized tensor to use: `requested` if not NULL (SDLK_ERR_NOTFOUND when absent),
 * else the only one (SDLK_ERR_NOTFOUND for none, SDLK_ERR_ARG listing them for several).
 * `file` names the set in messages. *name points into the set's metadata. */
sdlk_status sdlk_qfile_pick(const sdlk_tensor_set *set, const char *requested, const char *file,
                            const char **name, sdlk_error *err);

/* Parse one metadata value (see the contract); `where` prefixes messages. */
sdlk_status sdlk_qtensor_info_parse(const char *json, const char *where, sdlk_qtensor_info *out,
                                    sdlk_error *err);
/* Format `info` as the metadata value; *json is malloc'd (free it). */
sdlk_status sdlk_qtensor_info_format(const sdlk_qtensor_info *info, char **json,
                                     sdlk_error *err);

/* Read and validate quantized tensor `name` of `set` (see the contract). `file` names
 * the set in messages. `out` must be released with sdlk_qtensor_free. */
sdlk_status sdlk_qtensor_get(const sdlk_tensor_set *set, const char *name, const char *file,
                             sdlk_qtensor *out, sdlk_error *err);
void sdlk_qtensor_free(sdlk_qtensor *q);

/* Reconstruct the float tensor in the source dtype (a new contiguous tensor). */
sdlk_status sdlk_qtensor_dequantize(const sdlk_qtensor *q, sdlk_pool *pool, sdlk_tensor *out,
                                    sdlk_error *err);

/* The planes of an sdl-format tensor as a GEMM operand (rows x k, a copy). */
sdlk_status sdlk_qtensor_packed(const sdlk_qtensor *q, sdlk_bitpacked *out, sdlk_error *err);

/* One scale and one zero point per row of the rows x k matrix, for the GEMM epilogue.
 * *scale (rows floats) is filled when want_scale; *zero (rows int32) is filled for
 * asymmetric codes and left NULL otherwise. SDLK_ERR_UNSUPPORTED when a wanted value
 * varies along K (per-channel or per-group quantization along the last axis), with a
 * message saying how to quantize instead. Free both with free(). */
sdlk_status sdlk_qtensor_row_params(const sdlk_qtensor *q, int want_scale, float **scale,
                                    int32_t **zero, sdlk_error *err);

/* Write `set` to fp as `fmt` (safetensors keeps metadata; npy needs one tensor). A set
 * with quantized tensors is refused for npy/npz, which cannot hold their metadata.
 * `display` names the output in messages. */
sdlk_status sdlk_qfile_write(FILE *fp, const sdlk_tensor_set *set, sdlk_tensor_format fmt,
                             const char *display, sdlk_error *err);

#endif
