/* metrics.c -- luma, PSNR and SSIM (see metrics.h). */
#include "metrics/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static sdlk_status check_image(const sdlk_tensor *img, const char *what, sdlk_error *err)
{
    if (img->ndim != 3 || (img->dtype != SDLK_U8 && img->dtype != SDLK_U16) ||
        img->shape[2] < 1 || img->shape[2] > 4)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: need an [H, W, C] u8/u16 image with "
                              "1 to 4 channels", what);
    return SDLK_OK;
}

static sdlk_status check_pair(const sdlk_tensor *a, const sdlk_tensor *b, sdlk_error *err)
{
    sdlk_status st = check_image(a, "metrics", err);
    if (st == SDLK_OK)
        st = check_image(b, "metrics", err);
    if (st != SDLK_OK)
        return st;
    if (a->dtype != b->dtype || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1] ||
        a->shape[2] != b->shape[2])
        return sdlk_error_set(err, SDLK_ERR_ARG, "metrics: the two images differ in shape "
                              "or dtype");
    return SDLK_OK;
}

static inline double sample(const sdlk_tensor *img, int64_t y, int64_t x, int64_t c)
{
    const uint8_t *p = img->data + y * img->strides[0] + x * img->strides[1] +
                       c * img->strides[2];
    return img->dtype == SDLK_U8 ? (double)*p : (double)*(const uint16_t *)p;
}

/* Colour channels: 1 for gray and gray + alpha, 3 for RGB and RGBA. */
static int colour_channels(const sdlk_tensor *img)
{
    return img->shape[2] >= 3 ? 3 : 1;
}

sdlk_status sdlk_image_luma(const sdlk_tensor *img, float *out, sdlk_error *err)
{
    sdlk_status st = check_image(img, "luma", err);
    if (st != SDLK_OK)
        return st;
    int64_t h = img->shape[0], w = img->shape[1];
    double unit = img->dtype == SDLK_U16 ? 1.0 / 257.0 : 1.0;
    int colour = colour_channels(img) == 3;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            double v = colour ? 0.299 * sample(img, y, x, 0) + 0.587 * sample(img, y, x, 1) +
                                    0.114 * sample(img, y, x, 2)
                              : sample(img, y, x, 0);
            out[y * w + x] = (float)(v * unit);
        }
    return SDLK_OK;
}

sdlk_status sdlk_psnr(const sdlk_tensor *a, const sdlk_tensor *b, double *psnr_db,
                      sdlk_error *err)
{
    sdlk_status st = check_pair(a, b, err);
    if (st != SDLK_OK)
        return st;
    int channels = colour_channels(a);
    double sum = 0.0;
    uint64_t count = 0;
    for (int64_t y = 0; y < a->shape[0]; y++)
        for (int64_t x = 0; x < a->shape[1]; x++)
            for (int c = 0; c < channels; c++) {
                double d = sample(a, y, x, c) - sample(b, y, x, c);
                sum += d * d;
                count++;
            }
    double peak = a->dtype == SDLK_U16 ? 65535.0 : 255.0;
    double mse = count ? sum / (double)count : 0.0;
    *psnr_db = mse > 0.0 ? 10.0 * log10(peak * peak / mse) : INFINITY;
    return SDLK_OK;
}

/* Separable 11-tap Gaussian (sigma 1.5, normalised), "valid" positions only:
 * src is w x h, dst is (w - 10) x (h - 10); tmp holds (w - 10) x h. */
static void gauss_valid(const double *src, int w, int h, const double *g, double *tmp,
                        double *dst)
{
    int ow = w - 10, oh = h - 10;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < ow; x++) {
            double s = 0.0;
            for (int k = 0; k < 11; k++)
                s += g[k] * src[(size_t)y * w + x + k];
            tmp[(size_t)y * ow + x] = s;
        }
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double s = 0.0;
            for (int k = 0; k < 11; k++)
                s += g[k] * tmp[(size_t)(y + k) * ow + x];
            dst[(size_t)y * ow + x] = s;
        }
}

sdlk_status sdlk_ssim_plane(const float *x, const float *y, int width, int height, double peak,
                            double *ssim, sdlk_error *err)
{
    if (width < 11 || height < 11)
        return sdlk_error_set(err, SDLK_ERR_ARG, "SSIM: %dx%d is smaller than the 11x11 window",
                              width, height);
    double g[11], gsum = 0.0;
    for (int k = 0; k < 11; k++) {
        g[k] = exp(-((k - 5) * (k - 5)) / (2.0 * 1.5 * 1.5));
        gsum += g[k];
    }
    for (int k = 0; k < 11; k++)
        g[k] /= gsum;
    size_t n = (size_t)width * height;
    size_t on = (size_t)(width - 10) * (height - 10);
    /* five input maps (x, y, x^2, y^2, xy) and five filtered ones */
    double *in = malloc(sizeof *in * n * 5);
    double *filtered = malloc(sizeof *filtered * on * 5);
    double *tmp = malloc(sizeof *tmp * (size_t)(width - 10) * height);
    if (!in || !filtered || !tmp) {
        free(in);
        free(filtered);
        free(tmp);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "SSIM: out of memory for %dx%d", width,
                              height);
    }
    for (size_t i = 0; i < n; i++) {
        double a = x[i], b = y[i];
        in[i] = a;
        in[n + i] = b;
        in[2 * n + i] = a * a;
        in[3 * n + i] = b * b;
        in[4 * n + i] = a * b;
    }
    for (int m = 0; m < 5; m++)
        gauss_valid(in + m * n, width, height, g, tmp, filtered + m * on);
    double c1 = (0.01 * peak) * (0.01 * peak), c2 = (0.03 * peak) * (0.03 * peak);
    double total = 0.0;
    for (size_t i = 0; i < on; i++) {
        double mx = filtered[i], my = filtered[on + i];
        double sxx = filtered[2 * on + i] - mx * mx;
        double syy = filtered[3 * on + i] - my * my;
        double sxy = filtered[4 * on + i] - mx * my;
        total += ((2 * mx * my + c1) * (2 * sxy + c2)) /
                 ((mx * mx + my * my + c1) * (sxx + syy + c2));
    }
    *ssim = total / (double)on;
    free(in);
    free(filtered);
    free(tmp);
    return SDLK_OK;
}

sdlk_status sdlk_ssim(const sdlk_tensor *a, const sdlk_tensor *b, double *ssim, sdlk_error *err)
{
    sdlk_status st = check_pair(a, b, err);
    if (st != SDLK_OK)
        return st;
    int64_t h = a->shape[0], w = a->shape[1];
    if (h > 65535 || w > 65535)
        return sdlk_error_set(err, SDLK_ERR_ARG, "SSIM: image too large");
    float *la = malloc(sizeof *la * (size_t)(h * w));
    float *lb = malloc(sizeof *lb * (size_t)(h * w));
    if (!la || !lb) {
        free(la);
        free(lb);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "SSIM: out of memory");
    }
    sdlk_image_luma(a, la, NULL);
    sdlk_image_luma(b, lb, NULL);
    st = sdlk_ssim_plane(la, lb, (int)w, (int)h, 255.0, ssim, err);
    free(la);
    free(lb);
    return st;
}
