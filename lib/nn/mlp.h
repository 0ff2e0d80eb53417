/* mlp.h -- a small multilayer perceptron: labelled image tiles, float training with our
 * own code (OpenBLAS sgemm for the matrix products), and quantized inference through the
 * bit-composed GEMM of lib/quant.
 *
 * Contract
 *   Data. An sdlk_dataset holds `count` samples of `features` f32 values (row-major) and
 *   an int32 label 0..classes-1 each. sdlk_dataset_from_tile_image() cuts a gray 8-bit
 *   image into tiles of tile_h x tile_w pixels taken in row-major tile order (left to
 *   right, then top to bottom); pixel values become v / 255. The tiles are split into
 *   `classes` equal consecutive runs, run c having label c -- the layout of the OpenCV
 *   digits sheet (5000 digits of 20x20, 500 per class, classes in order 0..9, rows of 100).
 *   sdlk_dataset_split() makes a stratified split: per class, its samples are shuffled with
 *   a seeded generator and the first `test_per_class` go to the test set, the rest to the
 *   training set (both keep class-major order; training shuffles per epoch anyway).
 *
 *   Network. Layer l maps dims[l] inputs to dims[l+1] outputs: z = W_l a + b_l, W_l row-major
 *   [dims[l+1], dims[l]] (output x input, the PyTorch nn.Linear layout); every layer but the
 *   last is followed by ReLU; the last layer's outputs are logits (softmax cross-entropy).
 *   Initialisation: He-normal weights (std sqrt(2 / fan_in)), zero biases.
 *   Training: mini-batch Adam (beta1 0.9, beta2 0.999, eps 1e-8) on the mean cross-entropy,
 *   sample order reshuffled every epoch. Everything random comes from a generator seeded by
 *   the caller and held in the call (no global state), so a seed gives the same network on
 *   every run with the same OpenBLAS build and thread count. (OpenBLAS may order its sums
 *   differently for another thread count; that changes results by float rounding, and
 *   after training by a few tenths of a point of accuracy.)
 *
 *   Quantization (sdlk_qconfig: wbits, abits). Weights: wbits 1 is BINARY ({-1,+1} times
 *   the mean |w| of the output channel), wbits 2..8 SYMMETRIC per output channel (scale =
 *   max |w| / (2^(wbits-1) - 1)); both are computed by sdlk_quantize() (lib/quant). Layer
 *   inputs (pixels, and ReLU outputs, all >= 0): unsigned codes
 *   q = clamp(rint(x / s), 0, 2^abits - 1) with a fixed per-layer scale s = clip / (2^abits - 1),
 *   computed by lib/quant's code kernel. The clip of every layer input is calibrated once on
 *   the calibration data (sdlk_mlp_calibrate): the clip that minimises the squared
 *   quantization error of the layer's float input values (searched over 256 candidate clips
 *   on a 4096-bin histogram of the non-zero values).
 *   Quantized inference (sdlk_qmlp_*): layer inputs are quantized to codes and packed into
 *   bit planes; Y = codes x W_codes^T runs in sdlk_qgemm (bit-serial or int8 route, chosen by
 *   the library) as int32; the f32 epilogue multiplies by the input scale and the channel's
 *   weight scale, adds the f32 bias, applies ReLU and requantizes for the next layer.
 *   Quantization-aware training (sdlk_mlp_train with opts->qat): the forward pass uses the
 *   same quantizers (weights quantized and dequantized by lib/quant every step, inputs
 *   fake-quantized with the fixed clips), so the trained network is the one that quantized
 *   inference runs; gradients pass straight through the quantizers (STE), and through the
 *   activation quantizer only where 0 < x < clip.
 *
 *   Files: sdlk_mlp_save writes safetensors (or any format sdlk_tensors_save knows) with
 *   f32 tensors "fc1.weight" [dims[1], dims[0]], "fc1.bias" [dims[1]], "fc2.weight", ...;
 *   sdlk_mlp_load reads them back (the layer count is the number of fcN.weight tensors).
 *
 *   Errors: every function returns an sdlk_status and fills `err`; nothing prints. Outputs
 *   are empty (freed) after a failure.
 */
#ifndef SDLK_NN_MLP_H
#define SDLK_NN_MLP_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "quant/bitgemm.h"
#include "quant/bitpack.h"
#include "quant/quant.h"

#define SDLK_MLP_MAX_LAYERS 4

/* ---- data ------------------------------------------------------------------------ */

typedef struct sdlk_dataset {
    int64_t count;    /* samples */
    int64_t features; /* values per sample */
    int classes;
    float *x;         /* count x features, row-major; owned */
    int32_t *labels;  /* count labels in 0..classes-1; owned */
} sdlk_dataset;

/* Cut the gray 8-bit image at `path` into tile_h x tile_w samples (see the contract).
 * SDLK_ERR_FORMAT when the image is not 1-channel u8 or its sides are not multiples of
 * the tile sides; SDLK_ERR_ARG when the tile count is not a multiple of `classes`. */
sdlk_status sdlk_dataset_from_tile_image(const char *path, int tile_h, int tile_w, int classes,
                                         sdlk_dataset *out, sdlk_error *err);

/* Stratified split with `test_per_class` samples of every class in `test` and the rest
 * in `train`. SDLK_ERR_ARG when a class has fewer than test_per_class + 1 samples. */
sdlk_status sdlk_dataset_split(const sdlk_dataset *all, int64_t test_per_class, uint64_t seed,
                               sdlk_dataset *train, sdlk_dataset *test, sdlk_error *err);

void sdlk_dataset_free(sdlk_dataset *data); /* NULL-safe; resets to empty */

/* ---- float network --------------------------------------------------------------- */

typedef struct sdlk_mlp {
    int layers;                            /* weight layers, 1..SDLK_MLP_MAX_LAYERS */
    int64_t dims[SDLK_MLP_MAX_LAYERS + 1]; /* dims[0] inputs .. dims[layers] classes */
    float *weight[SDLK_MLP_MAX_LAYERS];    /* [dims[l+1], dims[l]] row-major; owned */
    float *bias[SDLK_MLP_MAX_LAYERS];      /* [dims[l+1]]; owned */
} sdlk_mlp;

/* A freshly initialised network (He-normal weights from `seed`, zero biases). */
sdlk_status sdlk_mlp_init(sdlk_mlp *mlp, int layers, const int64_t *dims, uint64_t seed,
                          sdlk_error *err);
sdlk_status sdlk_mlp_copy(const sdlk_mlp *src, sdlk_mlp *dst, sdlk_error *err);
void sdlk_mlp_free(sdlk_mlp *mlp); /* NULL-safe; resets to empty */

/* Quantization of a network: weight and activation (layer input) widths. */
typedef struct sdlk_qconfig {
    int wbits; /* 1 (binary) .. 8 */
    int abits; /* 1 .. 8 */
} sdlk_qconfig;

typedef struct sdlk_mlp_train_opts {
    int epochs;              /* >= 1 */
    int64_t batch;           /* samples per step, >= 1 */
    float learning_rate;     /* Adam step size, > 0 */
    uint64_t seed;           /* sample order */
    const sdlk_qconfig *qat; /* NULL: float training; else quantization-aware */
    const float *act_clips;  /* with qat: the clip of every layer input (sdlk_mlp_calibrate) */
} sdlk_mlp_train_opts;

/* Train `mlp` in place on `train` (features must equal dims[0], classes dims[layers]).
 * *final_loss (may be NULL) receives the mean loss of the last epoch. SDLK_ERR_ARG for
 * bad options; SDLK_ERR_INTERNAL if the loss becomes NaN or infinite (the network is
 * left as it was at that step). */
sdlk_status sdlk_mlp_train(sdlk_mlp *mlp, const sdlk_dataset *train,
                           const sdlk_mlp_train_opts *opts, double *final_loss, sdlk_error *err);

/* Float logits of `rows` samples (rows x dims[0]) into logits (rows x dims[layers]). */
sdlk_status sdlk_mlp_forward(const sdlk_mlp *mlp, const float *x, int64_t rows, float *logits,
                             sdlk_error *err);

/* Fraction of `data` whose argmax logit is the label. */
sdlk_status sdlk_mlp_accuracy(const sdlk_mlp *mlp, const sdlk_dataset *data, double *accuracy,
                              sdlk_error *err);

/* Calibrate the clip of every layer input (clips[0..layers-1]) for `abits`-bit unsigned
 * codes on the float activations of `data` (see the contract). */
sdlk_status sdlk_mlp_calibrate(const sdlk_mlp *mlp, const sdlk_dataset *data, int abits,
                               float *clips, sdlk_error *err);

/* Save / load the float weights (tensor names in the contract). The format follows the
 * extension of `path` (sdlk_tensors_save: .safetensors, .npz). */
sdlk_status sdlk_mlp_save(const sdlk_mlp *mlp, const char *path, sdlk_error *err);
sdlk_status sdlk_mlp_load(const char *path, sdlk_mlp *mlp, sdlk_error *err);

/* ---- quantized network ----------------------------------------------------------- */

typedef struct sdlk_qmlp_layer {
    sdlk_quantized weight;       /* codes [out, in] (int8) and per-channel scales */
    sdlk_bitpacked weight_planes;/* the codes packed as GEMM operand B */
    float *bias;                 /* [out], f32; owned */
    float act_clip;              /* clip of this layer's input */
    float act_scale;             /* act_clip / (2^abits - 1): one input code step */
} sdlk_qmlp_layer;

typedef struct sdlk_qmlp {
    sdlk_qconfig config;
    int layers;
    int64_t dims[SDLK_MLP_MAX_LAYERS + 1];
    sdlk_qmlp_layer layer[SDLK_MLP_MAX_LAYERS];
} sdlk_qmlp;

/* Quantize `mlp` (weights with lib/quant, input clips as given). */
sdlk_status sdlk_qmlp_build(const sdlk_mlp *mlp, const sdlk_qconfig *config,
                            const float *act_clips, sdlk_qmlp *out, sdlk_error *err);
void sdlk_qmlp_free(sdlk_qmlp *q); /* NULL-safe; resets to empty */

/* Unsigned abits-bit codes of `count` float inputs of layer `layer` (its fixed scale). */
void sdlk_qmlp_input_codes(const sdlk_qmlp *q, int layer, const float *x, int64_t count,
                           uint8_t *codes);

/* One layer's GEMM on `rows` rows of input codes (rows x dims[layer], uint8): the int32
 * result codes x W_codes^T into y_int and/or its scaled f32 form (times the input scale
 * and each channel's weight scale, no bias) into y_f32 (either may be NULL, not both);
 * `choice` (may be NULL) receives the route sdlk_qgemm ran. */
sdlk_status sdlk_qmlp_layer_gemm(const sdlk_qmlp *q, int layer, const uint8_t *codes,
                                 int64_t rows, sdlk_pool *pool, int32_t *y_int, float *y_f32,
                                 sdlk_qgemm_choice *choice, sdlk_error *err);

/* Quantized logits of `rows` samples (float inputs, rows x dims[0]) into logits
 * (rows x dims[layers]). choices (may be NULL) receives each layer's GEMM route. */
sdlk_status sdlk_qmlp_forward(const sdlk_qmlp *q, const float *x, int64_t rows, sdlk_pool *pool,
                              float *logits, sdlk_qgemm_choice *choices, sdlk_error *err);

/* Fraction of `data` the quantized network classifies correctly. */
sdlk_status sdlk_qmlp_accuracy(const sdlk_qmlp *q, const sdlk_dataset *data, sdlk_pool *pool,
                               double *accuracy, sdlk_error *err);

#endif
