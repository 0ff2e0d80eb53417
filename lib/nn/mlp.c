/* mlp.c -- a small MLP: tile datasets, float / quantization-aware training, quantized
 * inference on bit-composed GEMM layers; see mlp.h. */
#include "nn/mlp.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/tensor.h"
#include "core/tensorset.h"
#include "image/image.h"
#include "io/tensorio.h"
#include "quant/quant_kernels.h"

/* ---- small helpers -------------------------------------------------------------- */

/* splitmix64: a seeded generator that lives in the caller's frame (no global state). */
typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r) { return sdlk_splitmix64(&r->state); }

/* Uniform in (0, 1]: never 0, so log() below is finite. */
static double rng_uniform(rng *r) { return sdlk_rng_unit_open0(&r->state); }

static double rng_normal(rng *r)
{
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Fisher-Yates shuffle of n indices. */
static void shuffle(int64_t *idx, int64_t n, rng *r)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next(r) % (uint64_t)(i + 1));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* calloc of count * size bytes with an overflow check; NULL on failure. */
static void *alloc_zeroed(int64_t count, size_t size)
{
    if (count < 0 || (count > 0 && (uint64_t)count > SIZE_MAX / size))
        return NULL;
    return calloc(count ? (size_t)count : 1, size);
}

static sdlk_status nomem(sdlk_error *err) { return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory"); }

static int64_t max_dim(int layers, const int64_t *dims)
{
    int64_t m = 0;
    for (int l = 0; l <= layers; l++)
        m = dims[l] > m ? dims[l] : m;
    return m;
}

/* The code and dequantization kernels of lib/quant, picked as quant.c picks them (both
 * forms give identical results, so the choice never changes an output). */
static sdlk_qcodes_fn codes_kernel(void)
{
    return __builtin_cpu_supports("avx2") ? sdlk_qcodes_avx2 : sdlk_qcodes_scalar;
}
static sdlk_qdequant_fn dequant_kernel(void)
{
    return __builtin_cpu_supports("avx2") ? sdlk_qdequant_avx2 : sdlk_qdequant_scalar;
}

static int32_t act_levels(int abits) { return (1 << abits) - 1; }

/* Unsigned codes of x with step `scale` (ReLU is the clamp at code 0). */
static void act_codes(const float *x, int64_t n, float scale, int abits, uint8_t *codes)
{
    codes_kernel()(x, n, 1.0f / scale, 0.0f, (float)act_levels(abits), 0, codes);
}

/* y = dequantized act_codes(x): the activation quantizer as the forward pass sees it. */
static void act_fake_quant(const float *x, int64_t n, float scale, int abits, uint8_t *codes,
                           float *y)
{
    act_codes(x, n, scale, abits, codes);
    dequant_kernel()(codes, n, 0, 0, scale, y);
}

/* Weights [out, in] to codes: binary per channel for 1 bit, symmetric per channel else. */
static sdlk_status quantize_weight(const float *w, int64_t out, int64_t in, int wbits,
                                   sdlk_quantized *q, sdlk_error *err)
{
    sdlk_tensor t;
    int64_t shape[2] = {out, in};
    sdlk_status st = sdlk_tensor_borrow(&t, SDLK_F32, 2, shape, (void *)w, err);
    if (st != SDLK_OK)
        return st;
    sdlk_quant_params p = {
        .bits = wbits,
        .scheme = wbits == 1 ? SDLK_QUANT_BINARY : SDLK_QUANT_SYMMETRIC,
        .granularity = SDLK_QUANT_PER_CHANNEL,
        .axis = 0,
    };
    memset(q, 0, sizeof *q);
    st = sdlk_quantize(&t, &p, NULL, q, err);
    sdlk_tensor_free(&t);
    return st;
}

/* w_used = dequantize(quantize(w)): what quantized inference will multiply with. */
static sdlk_status weight_fake_quant(const float *w, int64_t out, int64_t in, int wbits,
                                     float *w_used, sdlk_error *err)
{
    sdlk_quantized q;
    sdlk_status st = quantize_weight(w, out, in, wbits, &q, err);
    if (st != SDLK_OK)
        return st;
    sdlk_tensor deq;
    sdlk_tensor_init(&deq);
    st = sdlk_dequantize(&q, NULL, &deq, err);
    if (st == SDLK_OK)
        memcpy(w_used, deq.data, (size_t)(out * in) * sizeof(float));
    sdlk_tensor_free(&deq);
    sdlk_quantized_free(&q);
    return st;
}

static int64_t count_correct(const float *logits, int64_t rows, int64_t classes,
                             const int32_t *labels)
{
    int64_t correct = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *z = logits + r * classes;
        int64_t best = 0;
        for (int64_t c = 1; c < classes; c++)
            if (z[c] > z[best])
                best = c;
        correct += best == labels[r];
    }
    return correct;
}

/* ---- data ------------------------------------------------------------------------ */

void sdlk_dataset_free(sdlk_dataset *data)
{
    if (!data)
        return;
    free(data->x);
    free(data->labels);
    memset(data, 0, sizeof *data);
}

static sdlk_status dataset_alloc(sdlk_dataset *d, int64_t count, int64_t features, int classes,
                                 sdlk_error *err)
{
    memset(d, 0, sizeof *d);
    if (features > 0 && count > INT64_MAX / features)
        return sdlk_error_set(err, SDLK_ERR_OVERFLOW, "dataset of %lld x %lld values is too large",
                              (long long)count, (long long)features);
    d->x = alloc_zeroed(count * features, sizeof(float));
    d->labels = alloc_zeroed(count, sizeof(int32_t));
    if (!d->x || !d->labels) {
        sdlk_dataset_free(d);
        return nomem(err);
    }
    d->count = count;
    d->features = features;
    d->classes = classes;
    return SDLK_OK;
}

sdlk_status sdlk_dataset_from_tile_image(const char *path, int tile_h, int tile_w, int classes,
                                         sdlk_dataset *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    if (tile_h < 1 || tile_w < 1 || classes < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "tile %dx%d with %d classes: all must be >= 1",
                              tile_h, tile_w, classes);
    sdlk_tensor img;
    sdlk_status st = sdlk_image_read(path, &img, NULL, err);
    if (st != SDLK_OK)
        return st;
    int64_t height = img.shape[0], width = img.shape[1];
    if (img.dtype != SDLK_U8 || img.shape[2] != 1)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: want a gray 8-bit image, got %lld %s channel(s)",
                            path, (long long)img.shape[2], sdlk_dtype_name(img.dtype));
    else if (height % tile_h != 0 || width % tile_w != 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: %lldx%lld pixels do not cut into %dx%d tiles",
                            path, (long long)width, (long long)height, tile_w, tile_h);
    int64_t across = width / tile_w, down = height / tile_h, tiles = across * down;
    if (st == SDLK_OK && (tiles == 0 || tiles % classes != 0))
        st = sdlk_error_set(err, SDLK_ERR_ARG, "%s: %lld tiles do not split into %d equal classes",
                            path, (long long)tiles, classes);
    if (st == SDLK_OK)
        st = dataset_alloc(out, tiles, (int64_t)tile_h * tile_w, classes, err);
    if (st != SDLK_OK) {
        sdlk_tensor_free(&img);
        return st;
    }
    const int64_t per_class = tiles / classes;
    const uint8_t *pixels = img.data; /* C-contiguous [H, W, 1] */
    for (int64_t t = 0; t < tiles; t++) {
        int64_t y0 = (t / across) * tile_h, x0 = (t % across) * tile_w;
        float *sample = out->x + t * out->features;
        for (int y = 0; y < tile_h; y++)
            for (int x = 0; x < tile_w; x++)
                sample[y * tile_w + x] = pixels[(y0 + y) * width + x0 + x] / 255.0f;
        out->labels[t] = (int32_t)(t / per_class);
    }
    sdlk_tensor_free(&img);
    return SDLK_OK;
}

sdlk_status sdlk_dataset_split(const sdlk_dataset *all, int64_t test_per_class, uint64_t seed,
                               sdlk_dataset *train, sdlk_dataset *test, sdlk_error *err)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    int64_t *per_class = alloc_zeroed(all->classes, sizeof(int64_t));
    int64_t *order = alloc_zeroed(all->count, sizeof(int64_t));
    if (!per_class || !order) {
        free(per_class);
        free(order);
        return nomem(err);
    }
    sdlk_status st = SDLK_OK;
    for (int64_t i = 0; i < all->count && st == SDLK_OK; i++) {
        if (all->labels[i] < 0 || all->labels[i] >= all->classes)
            st = sdlk_error_set(err, SDLK_ERR_ARG, "sample %lld: label %d outside 0..%d",
                                (long long)i, all->labels[i], all->classes - 1);
        else
            per_class[all->labels[i]]++;
    }
    for (int c = 0; c < all->classes && st == SDLK_OK; c++)
        if (test_per_class < 0 || per_class[c] < test_per_class + 1)
            st = sdlk_error_set(err, SDLK_ERR_ARG,
                                "class %d has %lld samples: too few for %lld test samples and "
                                "at least one to train on",
                                c, (long long)per_class[c], (long long)test_per_class);
    const int64_t test_count = test_per_class * all->classes;
    if (st == SDLK_OK)
        st = dataset_alloc(test, test_count, all->features, all->classes, err);
    if (st == SDLK_OK)
        st = dataset_alloc(train, all->count - test_count, all->features, all->classes, err);
    rng r = {seed};
    int64_t n_train = 0, n_test = 0;
    for (int c = 0; c < all->classes && st == SDLK_OK; c++) {
        int64_t n = 0;
        for (int64_t i = 0; i < all->count; i++)
            if (all->labels[i] == c)
                order[n++] = i;
        shuffle(order, n, &r);
        for (int64_t j = 0; j < n; j++) {
            sdlk_dataset *dst = j < test_per_class ? test : train;
            int64_t row = j < test_per_class ? n_test++ : n_train++;
            memcpy(dst->x + row * all->features, all->x + order[j] * all->features,
                   (size_t)all->features * sizeof(float));
            dst->labels[row] = c;
        }
    }
    free(per_class);
    free(order);
    if (st != SDLK_OK) {
        sdlk_dataset_free(train);
        sdlk_dataset_free(test);
    }
    return st;
}

/* ---- float network --------------------------------------------------------------- */

void sdlk_mlp_free(sdlk_mlp *mlp)
{
    if (!mlp)
        return;
    for (int l = 0; l < SDLK_MLP_MAX_LAYERS; l++) {
        free(mlp->weight[l]);
        free(mlp->bias[l]);
    }
    memset(mlp, 0, sizeof *mlp);
}

/* Shape checks and zeroed parameter arrays. */
static sdlk_status mlp_alloc(sdlk_mlp *mlp, int layers, const int64_t *dims, sdlk_error *err)
{
    memset(mlp, 0, sizeof *mlp);
    if (layers < 1 || layers > SDLK_MLP_MAX_LAYERS)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%d layers: want 1..%d", layers,
                              SDLK_MLP_MAX_LAYERS);
    for (int l = 0; l <= layers; l++)
        if (dims[l] < 1 || dims[l] > (1 << 20))
            return sdlk_error_set(err, SDLK_ERR_ARG, "layer width %lld: want 1..%d",
                                  (long long)dims[l], 1 << 20);
    if (dims[layers] < 2)
        return sdlk_error_set(err, SDLK_ERR_ARG, "a classifier needs at least 2 outputs");
    mlp->layers = layers;
    memcpy(mlp->dims, dims, (size_t)(layers + 1) * sizeof *dims);
    for (int l = 0; l < layers; l++) {
        mlp->weight[l] = alloc_zeroed(dims[l + 1] * dims[l], sizeof(float));
        mlp->bias[l] = alloc_zeroed(dims[l + 1], sizeof(float));
        if (!mlp->weight[l] || !mlp->bias[l]) {
            sdlk_mlp_free(mlp);
            return nomem(err);
        }
    }
    return SDLK_OK;
}

sdlk_status sdlk_mlp_init(sdlk_mlp *mlp, int layers, const int64_t *dims, uint64_t seed,
                          sdlk_error *err)
{
    sdlk_status st = mlp_alloc(mlp, layers, dims, err);
    if (st != SDLK_OK)
        return st;
    rng r = {seed};
    for (int l = 0; l < layers; l++) {
        /* He initialisation keeps the ReLU layers' output variance constant. */
        double std = sqrt(2.0 / (double)dims[l]);
        for (int64_t i = 0; i < dims[l + 1] * dims[l]; i++)
            mlp->weight[l][i] = (float)(std * rng_normal(&r));
    }
    return SDLK_OK;
}

sdlk_status sdlk_mlp_copy(const sdlk_mlp *src, sdlk_mlp *dst, sdlk_error *err)
{
    sdlk_status st = mlp_alloc(dst, src->layers, src->dims, err);
    if (st != SDLK_OK)
        return st;
    for (int l = 0; l < src->layers; l++) {
        memcpy(dst->weight[l], src->weight[l],
               (size_t)(src->dims[l + 1] * src->dims[l]) * sizeof(float));
        memcpy(dst->bias[l], src->bias[l], (size_t)src->dims[l + 1] * sizeof(float));
    }
    return SDLK_OK;
}

/* z = in x W^T + b for `rows` rows. */
static void dense_forward(const float *in, int64_t rows, int64_t nin, const float *w,
                          const float *b, int64_t nout, float *z)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)nout,
                (blasint)nin, 1.0f, in, (blasint)nin, w, (blasint)nin, 0.0f, z, (blasint)nout);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < nout; j++)
            z[r * nout + j] += b[j];
}

/* Buffers of a forward (and backward) pass over at most `rows` rows. */
typedef struct pass {
    int64_t rows;
    const float *in[SDLK_MLP_MAX_LAYERS]; /* the input each layer multiplied */
    float *qin[SDLK_MLP_MAX_LAYERS];      /* fake-quantized inputs (quantized passes) */
    float *z[SDLK_MLP_MAX_LAYERS];        /* pre-activations */
    float *h[SDLK_MLP_MAX_LAYERS];        /* ReLU outputs (float passes) */
    float *grad, *grad_prev;              /* rows x max dim, backward only */
    uint8_t *codes;                       /* rows x max dim */
} pass;

static void pass_free(pass *p)
{
    for (int l = 0; l < SDLK_MLP_MAX_LAYERS; l++) {
        free(p->qin[l]);
        free(p->z[l]);
        free(p->h[l]);
    }
    free(p->grad);
    free(p->grad_prev);
    free(p->codes);
    memset(p, 0, sizeof *p);
}

static sdlk_status pass_alloc(pass *p, const sdlk_mlp *mlp, int64_t rows, int backward,
                              sdlk_error *err)
{
    memset(p, 0, sizeof *p);
    p->rows = rows;
    int64_t widest = max_dim(mlp->layers, mlp->dims);
    int ok = 1;
    for (int l = 0; l < mlp->layers; l++) {
        p->qin[l] = alloc_zeroed(rows * mlp->dims[l], sizeof(float));
        p->z[l] = alloc_zeroed(rows * mlp->dims[l + 1], sizeof(float));
        p->h[l] = alloc_zeroed(rows * mlp->dims[l + 1], sizeof(float));
        ok = ok && p->qin[l] && p->z[l] && p->h[l];
    }
    p->codes = alloc_zeroed(rows * widest, 1);
    ok = ok && p->codes;
    if (backward) {
        p->grad = alloc_zeroed(rows * widest, sizeof(float));
        p->grad_prev = alloc_zeroed(rows * widest, sizeof(float));
        ok = ok && p->grad && p->grad_prev;
    }
    if (!ok) {
        pass_free(p);
        return nomem(err);
    }
    return SDLK_OK;
}

/* Forward `rows` rows of x with weights `w` (the float ones or their fake-quantized
 * form). With `clips`, every layer input is fake-quantized to abits first. Logits end in
 * p->z[layers - 1]. */
static void forward_pass(const sdlk_mlp *mlp, float *const *w, const float *x, int64_t rows,
                         int abits, const float *clips, pass *p)
{
    const float *in = x;
    for (int l = 0; l < mlp->layers; l++) {
        int64_t nin = mlp->dims[l], nout = mlp->dims[l + 1];
        if (clips) {
            act_fake_quant(in, rows * nin, clips[l] / (float)act_levels(abits), abits, p->codes,
                           p->qin[l]);
            in = p->qin[l];
        }
        p->in[l] = in;
        dense_forward(in, rows, nin, w[l], mlp->bias[l], nout, p->z[l]);
        if (l + 1 < mlp->layers) {
            for (int64_t i = 0; i < rows * nout; i++)
                p->h[l][i] = p->z[l][i] > 0.0f ? p->z[l][i] : 0.0f;
            in = p->h[l];
        }
    }
}

sdlk_status sdlk_mlp_forward(const sdlk_mlp *mlp, const float *x, int64_t rows, float *logits,
                             sdlk_error *err)
{
    pass p;
    sdlk_status st = pass_alloc(&p, mlp, rows, 0, err);
    if (st != SDLK_OK)
        return st;
    forward_pass(mlp, mlp->weight, x, rows, 0, NULL, &p);
    memcpy(logits, p.z[mlp->layers - 1], (size_t)(rows * mlp->dims[mlp->layers]) * sizeof(float));
    pass_free(&p);
    return SDLK_OK;
}

static sdlk_status check_data(const sdlk_mlp *mlp, const sdlk_dataset *data, sdlk_error *err)
{
    if (data->features != mlp->dims[0] || data->classes != mlp->dims[mlp->layers])
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "data of %lld features and %d classes for a %lld -> %lld network",
                              (long long)data->features, data->classes, (long long)mlp->dims[0],
                              (long long)mlp->dims[mlp->layers]);
    if (data->count < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "no samples");
    return SDLK_OK;
}

sdlk_status sdlk_mlp_accuracy(const sdlk_mlp *mlp, const sdlk_dataset *data, double *accuracy,
                              sdlk_error *err)
{
    sdlk_status st = check_data(mlp, data, err);
    if (st != SDLK_OK)
        return st;
    const int64_t classes = mlp->dims[mlp->layers];
    float *logits = alloc_zeroed(data->count * classes, sizeof(float));
    if (!logits)
        return nomem(err);
    st = sdlk_mlp_forward(mlp, data->x, data->count, logits, err);
    if (st == SDLK_OK)
        *accuracy = (double)count_correct(logits, data->count, classes, data->labels) /
                    (double)data->count;
    free(logits);
    return st;
}

/* Mean cross-entropy of the batch; p->grad = d loss / d logits. */
static double softmax_xent(const float *logits, const int32_t *labels, const int64_t *rows_idx,
                           int64_t rows, int64_t classes, float *grad)
{
    double loss = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *z = logits + r * classes;
        float *g = grad + r * classes;
        float zmax = z[0];
        for (int64_t c = 1; c < classes; c++)
            zmax = z[c] > zmax ? z[c] : zmax;
        double sum = 0.0;
        for (int64_t c = 0; c < classes; c++)
            sum += exp((double)(z[c] - zmax));
        int32_t y = labels[rows_idx[r]];
        loss += log(sum) - (double)(z[y] - zmax);
        for (int64_t c = 0; c < classes; c++)
            g[c] = (float)(exp((double)(z[c] - zmax)) / sum) / (float)rows;
        g[y] -= 1.0f / (float)rows;
    }
    return loss / (double)rows;
}

typedef struct adam {
    float *m, *v;
    int64_t n;
} adam;

static void adam_step(adam *a, float *param, const float *grad, float lr, int64_t t)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    /* bias correction folded into the step size */
    float step = lr * (float)(sqrt(1.0 - pow(b2, (double)t)) / (1.0 - pow(b1, (double)t)));
    for (int64_t i = 0; i < a->n; i++) {
        a->m[i] = b1 * a->m[i] + (1.0f - b1) * grad[i];
        a->v[i] = b2 * a->v[i] + (1.0f - b2) * grad[i] * grad[i];
        param[i] -= step * a->m[i] / (sqrtf(a->v[i]) + eps);
    }
}

/* Everything one training run allocates. */
typedef struct trainer {
    pass p;
    float *batch_x;
    int64_t *order;
    float *w_used[SDLK_MLP_MAX_LAYERS]; /* fake-quantized weights (QAT) */
    float *grad_w[SDLK_MLP_MAX_LAYERS], *grad_b[SDLK_MLP_MAX_LAYERS];
    adam adam_w[SDLK_MLP_MAX_LAYERS], adam_b[SDLK_MLP_MAX_LAYERS];
} trainer;

static void trainer_free(trainer *t)
{
    pass_free(&t->p);
    free(t->batch_x);
    free(t->order);
    for (int l = 0; l < SDLK_MLP_MAX_LAYERS; l++) {
        free(t->w_used[l]);
        free(t->grad_w[l]);
        free(t->grad_b[l]);
        free(t->adam_w[l].m);
        free(t->adam_w[l].v);
        free(t->adam_b[l].m);
        free(t->adam_b[l].v);
    }
}

static sdlk_status trainer_alloc(trainer *t, const sdlk_mlp *mlp, const sdlk_dataset *data,
                                 int64_t batch, sdlk_error *err)
{
    memset(t, 0, sizeof *t);
    sdlk_status st = pass_alloc(&t->p, mlp, batch, 1, err);
    if (st != SDLK_OK)
        return st;
    t->batch_x = alloc_zeroed(batch * mlp->dims[0], sizeof(float));
    t->order = alloc_zeroed(data->count, sizeof(int64_t));
    int ok = t->batch_x && t->order;
    for (int l = 0; l < mlp->layers; l++) {
        int64_t nw = mlp->dims[l + 1] * mlp->dims[l], nb = mlp->dims[l + 1];
        t->w_used[l] = alloc_zeroed(nw, sizeof(float));
        t->grad_w[l] = alloc_zeroed(nw, sizeof(float));
        t->grad_b[l] = alloc_zeroed(nb, sizeof(float));
        t->adam_w[l] = (adam){alloc_zeroed(nw, sizeof(float)), alloc_zeroed(nw, sizeof(float)), nw};
        t->adam_b[l] = (adam){alloc_zeroed(nb, sizeof(float)), alloc_zeroed(nb, sizeof(float)), nb};
        ok = ok && t->w_used[l] && t->grad_w[l] && t->grad_b[l] && t->adam_w[l].m &&
             t->adam_w[l].v && t->adam_b[l].m && t->adam_b[l].v;
    }
    if (!ok) {
        trainer_free(t);
        return nomem(err);
    }
    for (int64_t i = 0; i < data->count; i++)
        t->order[i] = i;
    return SDLK_OK;
}

/* Gradients of the batch loss (p->grad holds d loss / d logits) into grad_w/grad_b.
 * The ReLU (and, with clips, the activation quantizer's straight-through estimator) pass
 * the gradient only where the pre-activation lies in (0, clip). */
static void backward_pass(const sdlk_mlp *mlp, float *const *w, const float *clips, trainer *t,
                          int64_t rows)
{
    pass *p = &t->p;
    for (int l = mlp->layers - 1; l >= 0; l--) {
        int64_t nin = mlp->dims[l], nout = mlp->dims[l + 1];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)nout, (blasint)nin,
                    (blasint)rows, 1.0f, p->grad, (blasint)nout, p->in[l], (blasint)nin, 0.0f,
                    t->grad_w[l], (blasint)nin);
        for (int64_t j = 0; j < nout; j++)
            t->grad_b[l][j] = 0.0f;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < nout; j++)
                t->grad_b[l][j] += p->grad[r * nout + j];
        if (l == 0)
            break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)nin,
                    (blasint)nout, 1.0f, p->grad, (blasint)nout, w[l], (blasint)nin, 0.0f,
                    p->grad_prev, (blasint)nin);
        const float *z = p->z[l - 1];
        const float upper = clips ? clips[l] : INFINITY;
        for (int64_t i = 0; i < rows * nin; i++)
            if (!(z[i] > 0.0f && z[i] < upper))
                p->grad_prev[i] = 0.0f;
        float *swap = p->grad;
        p->grad = p->grad_prev;
        p->grad_prev = swap;
    }
}

sdlk_status sdlk_mlp_train(sdlk_mlp *mlp, const sdlk_dataset *train,
                           const sdlk_mlp_train_opts *opts, double *final_loss, sdlk_error *err)
{
    sdlk_status st = check_data(mlp, train, err);
    if (st != SDLK_OK)
        return st;
    if (opts->epochs < 1 || opts->batch < 1 || !(opts->learning_rate > 0.0f))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "training: epochs %d, batch %lld, learning rate %g: all must be > 0",
                              opts->epochs, (long long)opts->batch, (double)opts->learning_rate);
    const sdlk_qconfig *qat = opts->qat;
    if (qat && (qat->wbits < 1 || qat->wbits > 8 || qat->abits < 1 || qat->abits > 8 ||
                !opts->act_clips))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "quantization-aware training needs wbits and abits in 1..8 and "
                              "the activation clips");
    const int64_t batch = opts->batch < train->count ? opts->batch : train->count;
    trainer t;
    st = trainer_alloc(&t, mlp, train, batch, err);
    if (st != SDLK_OK)
        return st;
    float *const *w = qat ? t.w_used : mlp->weight;
    const float *clips = qat ? opts->act_clips : NULL;
    const int64_t classes = mlp->dims[mlp->layers], features = mlp->dims[0];
    rng r = {opts->seed};
    int64_t step = 0;
    double epoch_loss = 0.0;
    for (int e = 0; e < opts->epochs && st == SDLK_OK; e++) {
        shuffle(t.order, train->count, &r);
        epoch_loss = 0.0;
        int64_t batches = 0;
        /* the last partial batch is dropped: the order changes every epoch */
        for (int64_t b0 = 0; b0 + batch <= train->count && st == SDLK_OK; b0 += batch) {
            const int64_t *rows_idx = t.order + b0;
            for (int64_t i = 0; i < batch; i++)
                memcpy(t.batch_x + i * features, train->x + rows_idx[i] * features,
                       (size_t)features * sizeof(float));
            for (int l = 0; l < mlp->layers && qat && st == SDLK_OK; l++)
                st = weight_fake_quant(mlp->weight[l], mlp->dims[l + 1], mlp->dims[l],
                                       qat->wbits, t.w_used[l], err);
            if (st != SDLK_OK)
                break;
            forward_pass(mlp, w, t.batch_x, batch, qat ? qat->abits : 0, clips, &t.p);
            double loss = softmax_xent(t.p.z[mlp->layers - 1], train->labels, rows_idx, batch,
                                       classes, t.p.grad);
            if (!isfinite(loss)) {
                st = sdlk_error_set(err, SDLK_ERR_INTERNAL,
                                    "training diverged at epoch %d (loss %g): lower the "
                                    "learning rate", e + 1, loss);
                break;
            }
            epoch_loss += loss;
            batches++;
            backward_pass(mlp, w, clips, &t, batch);
            step++;
            for (int l = 0; l < mlp->layers; l++) {
                adam_step(&t.adam_w[l], mlp->weight[l], t.grad_w[l], opts->learning_rate, step);
                adam_step(&t.adam_b[l], mlp->bias[l], t.grad_b[l], opts->learning_rate, step);
            }
        }
        epoch_loss /= batches > 0 ? (double)batches : 1.0;
    }
    trainer_free(&t);
    if (st == SDLK_OK && final_loss)
        *final_loss = epoch_loss;
    return st;
}

/* The clip in (0, max] minimising the squared error of abits-bit unsigned codes over the
 * values x >= 0, from a histogram of the non-zero values (zeros are exact at any clip). */
static float mse_clip(const float *x, int64_t n, int abits)
{
    enum { BINS = 4096, CANDIDATES = 256 };
    float top = 0.0f;
    for (int64_t i = 0; i < n; i++)
        top = x[i] > top ? x[i] : top;
    if (!(top > FLT_MIN))
        return 1.0f; /* all zero: any clip reproduces them */
    int64_t hist[BINS] = {0};
    for (int64_t i = 0; i < n; i++)
        if (x[i] > 0.0f) {
            int64_t b = (int64_t)((double)x[i] / top * BINS);
            hist[b < BINS ? b : BINS - 1]++;
        }
    const double levels = act_levels(abits);
    double best_err = INFINITY;
    float best = top;
    for (int c = 1; c <= CANDIDATES; c++) {
        double clip = (double)top * c / CANDIDATES, step = clip / levels, e = 0.0;
        for (int b = 0; b < BINS; b++) {
            if (!hist[b])
                continue;
            double v = ((double)b + 0.5) * top / BINS;
            double d = v >= clip ? v - clip : v - step * nearbyint(v / step);
            e += (double)hist[b] * d * d;
        }
        if (e < best_err) {
            best_err = e;
            best = (float)clip;
        }
    }
    return best;
}

sdlk_status sdlk_mlp_calibrate(const sdlk_mlp *mlp, const sdlk_dataset *data, int abits,
                               float *clips, sdlk_error *err)
{
    sdlk_status st = check_data(mlp, data, err);
    if (st != SDLK_OK)
        return st;
    if (abits < 1 || abits > 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "abits %d: want 1..8", abits);
    pass p;
    st = pass_alloc(&p, mlp, data->count, 0, err);
    if (st != SDLK_OK)
        return st;
    forward_pass(mlp, mlp->weight, data->x, data->count, 0, NULL, &p);
    for (int l = 0; l < mlp->layers; l++)
        clips[l] = mse_clip(p.in[l], data->count * mlp->dims[l], abits);
    pass_free(&p);
    return SDLK_OK;
}

/* ---- files ----------------------------------------------------------------------- */

sdlk_status sdlk_mlp_save(const sdlk_mlp *mlp, const char *path, sdlk_error *err)
{
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_status st = SDLK_OK;
    for (int l = 0; l < mlp->layers && st == SDLK_OK; l++) {
        for (int part = 0; part < 2 && st == SDLK_OK; part++) {
            int64_t shape[2] = {mlp->dims[l + 1], mlp->dims[l]};
            sdlk_tensor t;
            st = sdlk_tensor_alloc(&t, SDLK_F32, part == 0 ? 2 : 1, shape, err);
            if (st != SDLK_OK)
                break;
            memcpy(t.data, part == 0 ? mlp->weight[l] : mlp->bias[l],
                   (size_t)sdlk_tensor_nbytes(&t));
            char name[32];
            snprintf(name, sizeof name, "fc%d.%s", l + 1, part == 0 ? "weight" : "bias");
            st = sdlk_tensor_set_add(&set, name, &t, err);
            sdlk_tensor_free(&t);
        }
    }
    if (st == SDLK_OK)
        st = sdlk_tensors_save(path, &set, SDLK_FORMAT_UNKNOWN, 0, err);
    sdlk_tensor_set_free(&set);
    return st;
}

sdlk_status sdlk_mlp_load(const char *path, sdlk_mlp *mlp, sdlk_error *err)
{
    memset(mlp, 0, sizeof *mlp);
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    sdlk_status st = sdlk_tensors_load(path, &set, NULL, err);
    if (st != SDLK_OK)
        return st;
    const sdlk_tensor *w[SDLK_MLP_MAX_LAYERS + 1] = {0}, *b[SDLK_MLP_MAX_LAYERS] = {0};
    int layers = 0;
    for (; layers <= SDLK_MLP_MAX_LAYERS; layers++) {
        char name[32];
        snprintf(name, sizeof name, "fc%d.weight", layers + 1);
        w[layers] = sdlk_tensor_set_find(&set, name);
        if (!w[layers])
            break;
        snprintf(name, sizeof name, "fc%d.bias", layers + 1);
        if (layers < SDLK_MLP_MAX_LAYERS)
            b[layers] = sdlk_tensor_set_find(&set, name);
    }
    int64_t dims[SDLK_MLP_MAX_LAYERS + 1] = {0};
    if (layers == 0 || layers > SDLK_MLP_MAX_LAYERS)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: want fc1.weight .. fc%d.weight, found %d",
                            path, SDLK_MLP_MAX_LAYERS, layers);
    for (int l = 0; l < layers && st == SDLK_OK; l++) {
        if (w[l]->dtype != SDLK_F32 || w[l]->ndim != 2 || !sdlk_tensor_is_contiguous(w[l]) ||
            !b[l] || b[l]->dtype != SDLK_F32 || b[l]->ndim != 1 || b[l]->shape[0] != w[l]->shape[0] ||
            !sdlk_tensor_is_contiguous(b[l]) || (l > 0 && w[l]->shape[1] != dims[l]))
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: fc%d: want f32 weight [out, in] chaining with the previous "
                                "layer and f32 bias [out]", path, l + 1);
        dims[l] = w[l]->shape[1];
        dims[l + 1] = w[l]->shape[0];
    }
    if (st == SDLK_OK)
        st = mlp_alloc(mlp, layers, dims, err);
    for (int l = 0; l < layers && st == SDLK_OK; l++) {
        memcpy(mlp->weight[l], w[l]->data, (size_t)sdlk_tensor_nbytes(w[l]));
        memcpy(mlp->bias[l], b[l]->data, (size_t)sdlk_tensor_nbytes(b[l]));
    }
    sdlk_tensor_set_free(&set);
    return st;
}

/* ---- quantized network ----------------------------------------------------------- */

void sdlk_qmlp_free(sdlk_qmlp *q)
{
    if (!q)
        return;
    for (int l = 0; l < SDLK_MLP_MAX_LAYERS; l++) {
        sdlk_quantized_free(&q->layer[l].weight);
        sdlk_bitpacked_free(&q->layer[l].weight_planes);
        free(q->layer[l].bias);
    }
    memset(q, 0, sizeof *q);
}

sdlk_status sdlk_qmlp_build(const sdlk_mlp *mlp, const sdlk_qconfig *config,
                            const float *act_clips, sdlk_qmlp *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    if (config->wbits < 1 || config->wbits > 8 || config->abits < 1 || config->abits > 8)
        return sdlk_error_set(err, SDLK_ERR_ARG, "w%da%d: widths must be 1..8", config->wbits,
                              config->abits);
    out->config = *config;
    out->layers = mlp->layers;
    memcpy(out->dims, mlp->dims, sizeof out->dims);
    sdlk_status st = SDLK_OK;
    for (int l = 0; l < mlp->layers && st == SDLK_OK; l++) {
        sdlk_qmlp_layer *L = &out->layer[l];
        int64_t nin = mlp->dims[l], nout = mlp->dims[l + 1];
        if (!(act_clips[l] > 0.0f) || !isfinite(act_clips[l])) {
            st = sdlk_error_set(err, SDLK_ERR_ARG, "layer %d: activation clip %g must be > 0",
                                l + 1, (double)act_clips[l]);
            break;
        }
        L->act_clip = act_clips[l];
        L->act_scale = act_clips[l] / (float)act_levels(config->abits);
        st = quantize_weight(mlp->weight[l], nout, nin, config->wbits, &L->weight, err);
        if (st == SDLK_OK)
            st = sdlk_bitpack(L->weight.codes.data, nout, nin, nin, config->wbits,
                              sdlk_quant_scheme_encoding(L->weight.params.scheme),
                              &L->weight_planes, err);
        if (st != SDLK_OK)
            break;
        L->bias = alloc_zeroed(nout, sizeof(float));
        if (!L->bias) {
            st = nomem(err);
            break;
        }
        memcpy(L->bias, mlp->bias[l], (size_t)nout * sizeof(float));
    }
    if (st != SDLK_OK)
        sdlk_qmlp_free(out);
    return st;
}

void sdlk_qmlp_input_codes(const sdlk_qmlp *q, int layer, const float *x, int64_t count,
                           uint8_t *codes)
{
    act_codes(x, count, q->layer[layer].act_scale, q->config.abits, codes);
}

sdlk_status sdlk_qmlp_layer_gemm(const sdlk_qmlp *q, int layer, const uint8_t *codes,
                                 int64_t rows, sdlk_pool *pool, int32_t *y_int, float *y_f32,
                                 sdlk_qgemm_choice *choice, sdlk_error *err)
{
    if (layer < 0 || layer >= q->layers)
        return sdlk_error_set(err, SDLK_ERR_ARG, "layer %d: the network has %d", layer,
                              q->layers);
    const sdlk_qmlp_layer *L = &q->layer[layer];
    sdlk_bitpacked a;
    sdlk_status st = sdlk_bitpack(codes, rows, q->dims[layer], q->dims[layer], q->config.abits,
                                  SDLK_QENC_UNSIGNED, &a, err);
    if (st != SDLK_OK)
        return st;
    sdlk_qgemm_opts opts = {
        .a_scale = &L->act_scale,
        .a_scale_count = 1,
        .b_scale = (const float *)L->weight.scales.data,
        .b_scale_count = q->dims[layer + 1],
    };
    st = sdlk_qgemm(&a, &L->weight_planes, &opts, pool, y_int, y_f32, choice, err);
    sdlk_bitpacked_free(&a);
    return st;
}

sdlk_status sdlk_qmlp_forward(const sdlk_qmlp *q, const float *x, int64_t rows, sdlk_pool *pool,
                              float *logits, sdlk_qgemm_choice *choices, sdlk_error *err)
{
    int64_t widest = max_dim(q->layers, q->dims);
    uint8_t *codes = alloc_zeroed(rows * widest, 1);
    float *y = alloc_zeroed(rows * widest, sizeof(float));
    if (!codes || !y) {
        free(codes);
        free(y);
        return nomem(err);
    }
    sdlk_qmlp_input_codes(q, 0, x, rows * q->dims[0], codes);
    sdlk_status st = SDLK_OK;
    for (int l = 0; l < q->layers && st == SDLK_OK; l++) {
        int64_t nout = q->dims[l + 1];
        int last = l + 1 == q->layers;
        float *dst = last ? logits : y;
        st = sdlk_qmlp_layer_gemm(q, l, codes, rows, pool, NULL, dst, choices ? &choices[l] : NULL,
                                  err);
        if (st != SDLK_OK)
            break;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < nout; j++)
                dst[r * nout + j] += q->layer[l].bias[j];
        /* Requantizing for the next layer clamps at code 0: that clamp is the ReLU. */
        if (!last)
            sdlk_qmlp_input_codes(q, l + 1, y, rows * nout, codes);
    }
    free(codes);
    free(y);
    return st;
}

sdlk_status sdlk_qmlp_accuracy(const sdlk_qmlp *q, const sdlk_dataset *data, sdlk_pool *pool,
                               double *accuracy, sdlk_error *err)
{
    const int64_t classes = q->dims[q->layers];
    if (data->features != q->dims[0] || data->classes != classes || data->count < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "data does not fit the network (%lld features, "
                              "%d classes, %lld samples)", (long long)data->features,
                              data->classes, (long long)data->count);
    float *logits = alloc_zeroed(data->count * classes, sizeof(float));
    if (!logits)
        return nomem(err);
    sdlk_status st = sdlk_qmlp_forward(q, data->x, data->count, pool, logits, NULL, err);
    if (st == SDLK_OK)
        *accuracy = (double)count_correct(logits, data->count, classes, data->labels) /
                    (double)data->count;
    free(logits);
    return st;
}
