/* digits.c -- the "digits" benchmark family: a quantized MLP end to end on real
 * handwritten digits (lib/nn), accuracy per precision against the float network measured
 * in the same run.
 *
 *   data      digits.png of the data directory: 5000 digits of 20x20 (MNIST subset from
 *             the OpenCV samples), 500 per class; a stratified seeded split keeps 100 per
 *             class (1000) held out for testing and trains on the other 4000.
 *   float     400 -> 256 -> 10 MLP (ReLU), Adam, 15 epochs (quick: 400 -> 128 -> 10,
 *             10 epochs), our own trainer with OpenBLAS sgemm.
 *   quantized w1a2, w2a2, w4a4, w8a8: post-training quantization (PTQ: weights per output
 *             channel with lib/quant, activation clips calibrated on the training set), and
 *             quantization-aware fine-tuning of a copy of the float network (QAT: 10 epochs,
 *             quick 3, straight-through estimator) with the same quantizers.
 *   rows      one per precision and method; the row's name carries the measured test
 *             accuracy and the float accuracy; its rate compares quantized inference of the
 *             1000 test images (bit-plane packing + sdlk_qgemm + f32 epilogue) with float
 *             inference (sgemm) of the same images.
 *   checks    before timing, every layer's int32 GEMM output on a batch of 64 test images is
 *             compared element by element with a naive integer matmul of the same codes,
 *             and the f32 logits of a batch with the quantized forward (abort on mismatch).
 *
 * With SDL_DIGITS_WEIGHTS=FILE in the environment, the trained float weights are written
 * to FILE (safetensors: fc1.weight, fc1.bias, fc2.weight, fc2.bias), read back and checked.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_families.h"
#include "core/pool.h"
#include "core/timer.h"
#include "nn/mlp.h"

#define FAMILY "digits"

enum { TILE = 20, CLASSES = 10, TEST_PER_CLASS = 100, CHECK_ROWS = 64 };
static const uint64_t SPLIT_SEED = 20240611, INIT_SEED = 1, ORDER_SEED = 7, QAT_SEED = 9;

typedef struct infer_bench {
    const sdlk_mlp *mlp;
    const sdlk_qmlp *qmlp;
    const sdlk_dataset *data;
    sdlk_pool *pool;
    float *logits;
} infer_bench;

static sdlk_status run_quantized(void *ctx, sdlk_error *err)
{
    infer_bench *b = ctx;
    return sdlk_qmlp_forward(b->qmlp, b->data->x, b->data->count, b->pool, b->logits, NULL, err);
}

static sdlk_status run_float(void *ctx, sdlk_error *err)
{
    infer_bench *b = ctx;
    return sdlk_mlp_forward(b->mlp, b->data->x, b->data->count, b->logits, err);
}

/* Every layer of `q` on the first rows of `data`: the int32 GEMM against a naive integer
 * matmul of the same codes, element by element; the next layer's codes come from the f32
 * output plus bias, as in sdlk_qmlp_forward. Then the logits of this chain against
 * sdlk_qmlp_forward on the same rows (they must be identical: same operations). */
static sdlk_status check_layers(const sdlk_qmlp *q, const sdlk_dataset *data, sdlk_pool *pool,
                                char *routes, size_t routes_cap, sdlk_error *err)
{
    const int64_t rows = data->count < CHECK_ROWS ? data->count : CHECK_ROWS;
    int64_t widest = 0;
    for (int l = 0; l <= q->layers; l++)
        widest = q->dims[l] > widest ? q->dims[l] : widest;
    uint8_t *codes = malloc((size_t)(rows * widest));
    int32_t *y_int = malloc((size_t)(rows * widest) * sizeof *y_int);
    float *y = malloc((size_t)(rows * widest) * sizeof *y);
    float *logits = malloc((size_t)(rows * q->dims[q->layers]) * sizeof *logits);
    sdlk_status st = SDLK_OK;
    if (!codes || !y_int || !y || !logits)
        st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    if (st == SDLK_OK)
        sdlk_qmlp_input_codes(q, 0, data->x, rows * q->dims[0], codes);
    routes[0] = '\0';
    for (int l = 0; l < q->layers && st == SDLK_OK; l++) {
        const int64_t nin = q->dims[l], nout = q->dims[l + 1];
        sdlk_qgemm_choice choice;
        st = sdlk_qmlp_layer_gemm(q, l, codes, rows, pool, y_int, y, &choice, err);
        if (st != SDLK_OK)
            break;
        size_t used = strlen(routes);
        snprintf(routes + used, routes_cap - used, "%s%s", l ? "/" : "",
                 sdlk_qgemm_route_name(choice.route));
        const int8_t *w = (const int8_t *)q->layer[l].weight.codes.data;
        for (int64_t r = 0; r < rows && st == SDLK_OK; r++)
            for (int64_t n = 0; n < nout; n++) {
                int64_t dot = 0;
                for (int64_t k = 0; k < nin; k++)
                    dot += (int64_t)codes[r * nin + k] * w[n * nin + k];
                if (dot != y_int[r * nout + n]) {
                    st = sdlk_error_set(err, SDLK_ERR_INTERNAL,
                                        "w%da%d layer %d: GEMM gives %d at [%lld][%lld], the "
                                        "naive integer matmul %lld",
                                        q->config.wbits, q->config.abits, l + 1,
                                        y_int[r * nout + n], (long long)r, (long long)n,
                                        (long long)dot);
                    break;
                }
            }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t n = 0; n < nout; n++)
                y[r * nout + n] += q->layer[l].bias[n];
        if (l + 1 < q->layers)
            sdlk_qmlp_input_codes(q, l + 1, y, rows * nout, codes);
    }
    if (st == SDLK_OK)
        st = sdlk_qmlp_forward(q, data->x, rows, pool, logits, NULL, err);
    if (st == SDLK_OK &&
        memcmp(logits, y, (size_t)(rows * q->dims[q->layers]) * sizeof *logits) != 0)
        st = sdlk_error_set(err, SDLK_ERR_INTERNAL,
                            "w%da%d: sdlk_qmlp_forward differs from the checked layer chain",
                            q->config.wbits, q->config.abits);
    free(codes);
    free(y_int);
    free(y);
    free(logits);
    return st;
}

/* Everything the family allocates. */
typedef struct digits_state {
    sdlk_dataset all, train, test;
    sdlk_mlp mlp, tuned, reloaded;
    sdlk_qmlp qmlp;
    sdlk_pool *pool;
    float *logits;
} digits_state;

static void digits_state_free(digits_state *s)
{
    sdlk_dataset_free(&s->all);
    sdlk_dataset_free(&s->train);
    sdlk_dataset_free(&s->test);
    sdlk_mlp_free(&s->mlp);
    sdlk_mlp_free(&s->tuned);
    sdlk_mlp_free(&s->reloaded);
    sdlk_qmlp_free(&s->qmlp);
    sdlk_pool_destroy(s->pool);
    free(s->logits);
}

/* Save the float weights where SDL_DIGITS_WEIGHTS says, read them back, compare. */
static sdlk_status save_weights(const bench_options *opt, digits_state *s, const char *path,
                                sdlk_error *err)
{
    sdlk_status st = sdlk_mlp_save(&s->mlp, path, err);
    if (st == SDLK_OK)
        st = sdlk_mlp_load(path, &s->reloaded, err);
    if (st != SDLK_OK)
        return st;
    int same = s->reloaded.layers == s->mlp.layers;
    for (int l = 0; same && l < s->mlp.layers; l++)
        same = s->reloaded.dims[l + 1] == s->mlp.dims[l + 1] &&
               memcmp(s->reloaded.weight[l], s->mlp.weight[l],
                      (size_t)(s->mlp.dims[l + 1] * s->mlp.dims[l]) * sizeof(float)) == 0 &&
               memcmp(s->reloaded.bias[l], s->mlp.bias[l],
                      (size_t)s->mlp.dims[l + 1] * sizeof(float)) == 0;
    if (!same)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "%s: weights read back differ", path);
    bench_log(opt, FAMILY, "float weights written to %s (read back identical)", path);
    return SDLK_OK;
}

/* Build, check, measure and report one quantized network. */
static sdlk_status measure(const bench_options *opt, digits_state *s, const sdlk_mlp *net,
                           const sdlk_qconfig *qc, const float *clips, const char *method,
                           double float_accuracy, const char *how, sdlk_bench_report *report,
                           sdlk_error *err)
{
    sdlk_qmlp_free(&s->qmlp);
    sdlk_status st = sdlk_qmlp_build(net, qc, clips, &s->qmlp, err);
    char routes[64];
    if (st == SDLK_OK)
        st = check_layers(&s->qmlp, &s->test, s->pool, routes, sizeof routes, err);
    double accuracy = 0.0;
    if (st == SDLK_OK)
        st = sdlk_qmlp_accuracy(&s->qmlp, &s->test, s->pool, &accuracy, err);
    if (st != SDLK_OK)
        return st;
    char name[96];
    snprintf(name, sizeof name, "w%da%d %s: acc %.2f%% vs float %.2f%% (%+.2f)", qc->wbits,
             qc->abits, method, 100.0 * accuracy, 100.0 * float_accuracy,
             100.0 * (accuracy - float_accuracy));
    bench_log(opt, FAMILY, "%s, GEMM routes %s", name, routes);
    infer_bench qb = {.qmlp = &s->qmlp, .data = &s->test, .pool = s->pool, .logits = s->logits};
    infer_bench fb = {.mlp = &s->mlp, .data = &s->test, .logits = s->logits};
    st = sdlk_bench_compare(report, FAMILY, name, run_quantized, &qb, "float MLP (sgemm)",
                            run_float, &fb, (double)s->test.count, "img/s", 1.0, opt->reps, err);
    if (st != SDLK_OK)
        return st;
    sdlk_bench_report_note(report, "%s; routes %s; int32 GEMM of each layer = naive matmul "
                                   "(%d images)", how, routes, CHECK_ROWS);
    return SDLK_OK;
}

sdlk_status bench_digits(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/digits.png", opt->data_dir ? opt->data_dir : ".");
    if (access(path, R_OK) != 0) {
        bench_log(opt, FAMILY, "skipped: no digits.png in %s (use --data DIR)",
                  opt->data_dir ? opt->data_dir : "(no data directory)");
        return SDLK_OK;
    }
    const int64_t hidden = opt->quick ? 128 : 256;
    const int float_epochs = opt->quick ? 10 : 15, qat_epochs = opt->quick ? 3 : 10;
    digits_state s;
    memset(&s, 0, sizeof s);
    openblas_set_num_threads(opt->threads);
    sdlk_status st = sdlk_dataset_from_tile_image(path, TILE, TILE, CLASSES, &s.all, err);
    if (st == SDLK_OK)
        st = sdlk_dataset_split(&s.all, TEST_PER_CLASS, SPLIT_SEED, &s.train, &s.test, err);
    if (st == SDLK_OK) {
        s.pool = sdlk_pool_create(opt->threads, err);
        s.logits = malloc((size_t)s.test.count * CLASSES * sizeof(float));
        if (!s.pool)
            st = err->code;
        else if (!s.logits)
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    const int64_t dims[3] = {TILE * TILE, hidden, CLASSES};
    if (st == SDLK_OK)
        st = sdlk_mlp_init(&s.mlp, 2, dims, INIT_SEED, err);
    sdlk_mlp_train_opts train = {
        .epochs = float_epochs, .batch = 64, .learning_rate = 1e-3f, .seed = ORDER_SEED};
    double loss = 0.0, float_accuracy = 0.0;
    uint64_t t0 = sdlk_now_ns();
    if (st == SDLK_OK)
        st = sdlk_mlp_train(&s.mlp, &s.train, &train, &loss, err);
    double train_s = sdlk_seconds_since(t0);
    if (st == SDLK_OK)
        st = sdlk_mlp_accuracy(&s.mlp, &s.test, &float_accuracy, err);
    if (st != SDLK_OK) {
        digits_state_free(&s);
        return st;
    }
    bench_log(opt, FAMILY,
              "float 400-%lld-10: %d epochs in %.2f s, loss %.4f, held-out accuracy %.2f%% "
              "(%lld train / %lld test images)",
              (long long)hidden, float_epochs, train_s, loss, 100.0 * float_accuracy,
              (long long)s.train.count, (long long)s.test.count);
    const char *weights_path = getenv("SDL_DIGITS_WEIGHTS");
    if (weights_path && *weights_path)
        st = save_weights(opt, &s, weights_path, err);

    static const sdlk_qconfig configs[] = {{1, 2}, {2, 2}, {4, 4}, {8, 8}};
    for (size_t c = 0; c < sizeof configs / sizeof *configs && st == SDLK_OK; c++) {
        const sdlk_qconfig *qc = &configs[c];
        float clips[SDLK_MLP_MAX_LAYERS];
        st = sdlk_mlp_calibrate(&s.mlp, &s.train, qc->abits, clips, err);
        if (st == SDLK_OK)
            st = measure(opt, &s, &s.mlp, qc, clips, "PTQ", float_accuracy,
                         "PTQ: per-channel weights, input clips calibrated on the training set",
                         report, err);
        sdlk_mlp_free(&s.tuned);
        if (st == SDLK_OK)
            st = sdlk_mlp_copy(&s.mlp, &s.tuned, err);
        sdlk_mlp_train_opts qat = {.epochs = qat_epochs, .batch = 64, .learning_rate = 5e-4f,
                                   .seed = QAT_SEED, .qat = qc, .act_clips = clips};
        t0 = sdlk_now_ns();
        if (st == SDLK_OK)
            st = sdlk_mlp_train(&s.tuned, &s.train, &qat, &loss, err);
        if (st == SDLK_OK) {
            char how[128];
            snprintf(how, sizeof how, "QAT: %d epochs of fine-tuning with STE (%.1f s)",
                     qat_epochs, sdlk_seconds_since(t0));
            st = measure(opt, &s, &s.tuned, qc, clips, "QAT", float_accuracy, how, report, err);
        }
    }
    digits_state_free(&s);
    return st;
}
