#include "wm/attack.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "image/image.h"
#include "image/image_internal.h"

/* Every attack but JPEG works on a float copy of the image ([H, W, C] interleaved, in
 * sample units 0..maxval): one conversion in, one rounding out, and the geometry and
 * filters need not be written per dtype. Floats hold every u16 value exactly. */
typedef struct fimg {
    int64_t h, w;
    int c;
    float maxval; /* 255 or 65535 */
    float *px;
} fimg;

/* ---- the table of attacks ---------------------------------------------------------- */

static const sdlk_attack_doc attack_docs[SDLK_ATTACK_KIND_COUNT] = {
    [SDLK_ATTACK_JPEG] = {"jpeg", "jpeg:Q[:420|422|444]",
                          "JPEG encode+decode at quality Q (1-100), chroma 4:2:0 by default"},
    [SDLK_ATTACK_CROP] = {"crop", "crop:F[:area|side][@POS]",
                          "keep a window of fraction F of the area (default) or of each side"},
    [SDLK_ATTACK_RESIZE] = {"resize", "resize:F[:bicubic|bilinear|area]",
                            "scale each side by F (0.01-16), antialiased (bicubic default)"},
    [SDLK_ATTACK_ROTATE] = {"rotate", "rotate:DEG[:fill|crop]",
                            "rotate counter-clockwise, bilinear; black corners or cropped"},
    [SDLK_ATTACK_BRIGHTNESS] = {"brightness", "brightness:F",
                                "PIL ImageEnhance.Brightness (blend with black)"},
    [SDLK_ATTACK_CONTRAST] = {"contrast", "contrast:F",
                              "PIL ImageEnhance.Contrast (blend with the mean grey)"},
    [SDLK_ATTACK_SATURATION] = {"saturation", "saturation:F",
                                "PIL ImageEnhance.Color (blend with the luma image)"},
    [SDLK_ATTACK_SHARPNESS] = {"sharpness", "sharpness:F",
                               "PIL ImageEnhance.Sharpness (blend with SMOOTH; F > 1 sharpens)"},
    [SDLK_ATTACK_NOISE] = {"noise", "noise:SIGMA",
                           "additive gaussian noise, SIGMA in 0-255 units, seeded"},
    [SDLK_ATTACK_BLUR] = {"blur", "blur:SIGMA", "gaussian blur, SIGMA in pixels"},
    [SDLK_ATTACK_SHIFT] = {"shift", "shift:DX:DY[:fill|wrap|crop]",
                           "move the content DX right, DY down (pixels)"},
    [SDLK_ATTACK_BOX] = {"box", "box:F[:V][@POS]",
                         "paint a box of fraction F of the area with grey V (0-255, default 0)"},
    [SDLK_ATTACK_TEXT] = {"text", "text:STRING[:SCALE][@POS]",
                          "draw STRING (A-Z 0-9 space . - _ ! ?) in a 5x7 font, white"},
};

const sdlk_attack_doc *sdlk_attack_docs(void)
{
    return attack_docs;
}

/* ---- parsing ----------------------------------------------------------------------- */

/* Parse a number from a whole field; the message names the attack and the field. */
static sdlk_status parse_number(const char *attack_text, const char *what, const char *field,
                                double min, double max, double *out, sdlk_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(field, &end);
    if (!*field || *end || errno || !isfinite(v) || isspace((unsigned char)*field))
        return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': %s '%s' is not a number",
                              attack_text, what, field);
    if (v < min || v > max)
        return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': %s %g is outside %g..%g",
                              attack_text, what, v, min, max);
    *out = v;
    return SDLK_OK;
}

/* A whole number within [min, max]. */
static sdlk_status parse_whole(const char *attack_text, const char *what, const char *field,
                               double min, double max, double *out, sdlk_error *err)
{
    sdlk_status st = parse_number(attack_text, what, field, min, max, out, err);
    if (!st && *out != floor(*out))
        return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': %s '%s' is not a whole number",
                              attack_text, what, field);
    return st;
}

typedef struct word_value {
    const char *word;
    int value;
} word_value;

static sdlk_status parse_word(const char *attack_text, const char *what, const char *field,
                              const word_value *choices, int *out, sdlk_error *err)
{
    char known[128] = "";
    for (const word_value *c = choices; c->word; c++) {
        if (!strcmp(field, c->word)) {
            *out = c->value;
            return SDLK_OK;
        }
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                 c == choices ? "" : ", ", c->word);
    }
    return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': unknown %s '%s' (one of: %s)",
                          attack_text, what, field, known);
}

static const word_value chroma_words[] = {{"420", 420}, {"422", 422}, {"444", 444}, {0, 0}};
static const word_value crop_words[] = {
    {"area", SDLK_ATTACK_CROP_AREA}, {"side", SDLK_ATTACK_CROP_SIDE}, {0, 0}};
static const word_value resize_words[] = {{"bicubic", SDLK_ATTACK_RESIZE_BICUBIC},
                                          {"bilinear", SDLK_ATTACK_RESIZE_BILINEAR},
                                          {"area", SDLK_ATTACK_RESIZE_AREA},
                                          {0, 0}};
static const word_value rotate_words[] = {
    {"fill", SDLK_ATTACK_EDGE_FILL}, {"crop", SDLK_ATTACK_EDGE_CROP}, {0, 0}};
static const word_value shift_words[] = {{"fill", SDLK_ATTACK_EDGE_FILL},
                                         {"wrap", SDLK_ATTACK_EDGE_WRAP},
                                         {"crop", SDLK_ATTACK_EDGE_CROP},
                                         {0, 0}};

/* The characters the built-in font draws (lower case is drawn as upper case). */
static int text_char_ok(char ch)
{
    return isalnum((unsigned char)ch) || ch == ' ' || ch == '.' || ch == '-' || ch == '_' ||
           ch == '!' || ch == '?';
}

/* "center", "random" or "X,Y". */
static sdlk_status parse_pos(const char *attack_text, const char *field, sdlk_attack *a,
                             sdlk_error *err)
{
    if (!strcmp(field, "center") || !strcmp(field, "centre")) {
        a->pos = SDLK_ATTACK_POS_CENTER;
        return SDLK_OK;
    }
    if (!strcmp(field, "random")) {
        a->pos = SDLK_ATTACK_POS_RANDOM;
        return SDLK_OK;
    }
    const char *comma = strchr(field, ',');
    if (!comma)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "attack '%s': position '%s' is not center, random or X,Y",
                              attack_text, field);
    char xs[64];
    snprintf(xs, sizeof xs, "%.*s", (int)(comma - field), field);
    double x, y;
    sdlk_status st = parse_whole(attack_text, "position x", xs, 0, 1e9, &x, err);
    if (!st)
        st = parse_whole(attack_text, "position y", comma + 1, 0, 1e9, &y, err);
    if (st)
        return st;
    a->pos = SDLK_ATTACK_POS_XY;
    a->x = (int64_t)x;
    a->y = (int64_t)y;
    return SDLK_OK;
}

#define MAX_FIELDS 4

sdlk_status sdlk_attack_parse(const char *text, sdlk_attack *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    out->amount2 = NAN;
    char buf[256];
    if (strlen(text) >= sizeof buf)
        return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%.40s...' is too long", text);
    strcpy(buf, text);
    char *at = strchr(buf, '@');
    if (at)
        *at++ = '\0';
    char *fields[MAX_FIELDS + 1];
    int n = 0;
    for (char *p = buf;; n++) {
        if (n > MAX_FIELDS)
            return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': too many parameters", text);
        fields[n] = p;
        char *colon = strchr(p, ':');
        if (!colon) {
            n++;
            break;
        }
        *colon = '\0';
        p = colon + 1;
    }
    int kind = -1;
    for (int k = 0; k < SDLK_ATTACK_KIND_COUNT; k++)
        if (!strcmp(fields[0], attack_docs[k].name))
            kind = k;
    if (kind < 0) {
        char known[256] = "";
        for (int k = 0; k < SDLK_ATTACK_KIND_COUNT; k++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "",
                     attack_docs[k].name);
        if (!*fields[0])
            return sdlk_error_set(err, SDLK_ERR_ARG, "empty attack in '%s' (known: %s)", text,
                                  known);
        return sdlk_error_set(err, SDLK_ERR_ARG, "unknown attack '%s' (known: %s)", fields[0],
                              known);
    }
    out->kind = (sdlk_attack_kind)kind;
    const char *syntax = attack_docs[kind].syntax;
    /* How many fields each attack takes after its name: required..allowed. */
    static const int required[SDLK_ATTACK_KIND_COUNT] = {
        [SDLK_ATTACK_JPEG] = 1, [SDLK_ATTACK_CROP] = 1, [SDLK_ATTACK_RESIZE] = 1,
        [SDLK_ATTACK_ROTATE] = 1, [SDLK_ATTACK_BRIGHTNESS] = 1, [SDLK_ATTACK_CONTRAST] = 1,
        [SDLK_ATTACK_SATURATION] = 1, [SDLK_ATTACK_SHARPNESS] = 1, [SDLK_ATTACK_NOISE] = 1,
        [SDLK_ATTACK_BLUR] = 1, [SDLK_ATTACK_SHIFT] = 2, [SDLK_ATTACK_BOX] = 1,
        [SDLK_ATTACK_TEXT] = 1};
    static const int allowed[SDLK_ATTACK_KIND_COUNT] = {
        [SDLK_ATTACK_JPEG] = 2, [SDLK_ATTACK_CROP] = 2, [SDLK_ATTACK_RESIZE] = 2,
        [SDLK_ATTACK_ROTATE] = 2, [SDLK_ATTACK_BRIGHTNESS] = 1, [SDLK_ATTACK_CONTRAST] = 1,
        [SDLK_ATTACK_SATURATION] = 1, [SDLK_ATTACK_SHARPNESS] = 1, [SDLK_ATTACK_NOISE] = 1,
        [SDLK_ATTACK_BLUR] = 1, [SDLK_ATTACK_SHIFT] = 3, [SDLK_ATTACK_BOX] = 2,
        [SDLK_ATTACK_TEXT] = 2};
    int params = n - 1;
    if (params < required[kind])
        return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': missing parameter (syntax: %s)",
                              text, syntax);
    if (params > allowed[kind])
        return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': too many parameters (syntax: %s)",
                              text, syntax);
    for (int i = 1; i < n; i++)
        if (!*fields[i])
            return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': empty parameter (syntax: %s)",
                                  text, syntax);
    int takes_pos = kind == SDLK_ATTACK_CROP || kind == SDLK_ATTACK_BOX || kind == SDLK_ATTACK_TEXT;
    if (at && !takes_pos)
        return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': takes no @position (syntax: %s)",
                              text, syntax);
    sdlk_status st = SDLK_OK;
    int word = 0;
    switch (out->kind) {
    case SDLK_ATTACK_JPEG:
        st = parse_whole(text, "quality", fields[1], 1, 100, &out->amount, err);
        out->chroma = 420;
        if (!st && n > 2)
            st = parse_word(text, "chroma subsampling", fields[2], chroma_words, &out->chroma, err);
        break;
    case SDLK_ATTACK_CROP:
        st = parse_number(text, "fraction", fields[1], 0, 1, &out->amount, err);
        if (!st && out->amount <= 0)
            st = sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': fraction must be above 0", text);
        word = SDLK_ATTACK_CROP_AREA;
        if (!st && n > 2)
            st = parse_word(text, "crop kind", fields[2], crop_words, &word, err);
        break;
    case SDLK_ATTACK_RESIZE:
        st = parse_number(text, "factor", fields[1], 0.01, 16, &out->amount, err);
        word = SDLK_ATTACK_RESIZE_BICUBIC;
        if (!st && n > 2)
            st = parse_word(text, "filter", fields[2], resize_words, &word, err);
        break;
    case SDLK_ATTACK_ROTATE:
        st = parse_number(text, "angle", fields[1], -3600, 3600, &out->amount, err);
        word = SDLK_ATTACK_EDGE_FILL;
        if (!st && n > 2)
            st = parse_word(text, "edge mode", fields[2], rotate_words, &word, err);
        break;
    case SDLK_ATTACK_BRIGHTNESS:
    case SDLK_ATTACK_CONTRAST:
    case SDLK_ATTACK_SATURATION:
    case SDLK_ATTACK_SHARPNESS:
        st = parse_number(text, "factor", fields[1], 0, 100, &out->amount, err);
        break;
    case SDLK_ATTACK_NOISE:
    case SDLK_ATTACK_BLUR:
        st = parse_number(text, "sigma", fields[1], 0, 1000, &out->amount, err);
        break;
    case SDLK_ATTACK_SHIFT:
        st = parse_whole(text, "dx", fields[1], -1e6, 1e6, &out->amount, err);
        if (!st)
            st = parse_whole(text, "dy", fields[2], -1e6, 1e6, &out->amount2, err);
        word = SDLK_ATTACK_EDGE_FILL;
        if (!st && n > 3)
            st = parse_word(text, "edge mode", fields[3], shift_words, &word, err);
        break;
    case SDLK_ATTACK_BOX:
        st = parse_number(text, "fraction", fields[1], 0, 1, &out->amount, err);
        if (!st && n > 2)
            st = parse_number(text, "grey level", fields[2], 0, 255, &out->amount2, err);
        break;
    case SDLK_ATTACK_TEXT:
        if (strlen(fields[1]) >= SDLK_ATTACK_TEXT_MAX)
            return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%s': text longer than %d characters",
                                  text, SDLK_ATTACK_TEXT_MAX - 1);
        for (const char *p = fields[1]; *p; p++)
            if (!text_char_ok(*p))
                return sdlk_error_set(err, SDLK_ERR_ARG,
                                      "attack '%s': the font has no '%c' (letters, digits, "
                                      "space and . - _ ! ?)",
                                      text, *p);
        strcpy(out->text, fields[1]);
        if (n > 2)
            st = parse_whole(text, "scale", fields[2], 1, 1000, &out->amount2, err);
        break;
    default: break;
    }
    out->variant = (sdlk_attack_variant)word;
    if (!st && at)
        st = parse_pos(text, at, out, err);
    return st;
}

/* Is `s` (up to the next comma or the end) a whole number, i.e. the Y of "@X,Y"? */
static int starts_number(const char *s)
{
    if (*s == '-')
        s++;
    if (!isdigit((unsigned char)*s))
        return 0;
    while (isdigit((unsigned char)*s))
        s++;
    return *s == ',' || *s == '\0';
}

sdlk_status sdlk_attack_chain_parse(const char *text, sdlk_attack_chain *out, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    if (!*text)
        return sdlk_error_set(err, SDLK_ERR_ARG, "empty attack chain");
    const char *p = text;
    while (1) {
        /* An attack runs to the next comma, except the comma of "@X,Y". */
        const char *end = strchr(p, ',');
        const char *at = memchr(p, '@', end ? (size_t)(end - p) : strlen(p));
        if (end && at && starts_number(at + 1) && starts_number(end + 1))
            end = strchr(end + 1, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (out->count == SDLK_ATTACK_CHAIN_MAX)
            return sdlk_error_set(err, SDLK_ERR_ARG, "attack chain: more than %d attacks",
                                  SDLK_ATTACK_CHAIN_MAX);
        char one[256];
        if (len >= sizeof one)
            return sdlk_error_set(err, SDLK_ERR_ARG, "attack '%.40s...' is too long", p);
        memcpy(one, p, len);
        one[len] = '\0';
        sdlk_status st = sdlk_attack_parse(one, &out->items[out->count], err);
        if (st)
            return st;
        out->count++;
        if (!end)
            break;
        p = end + 1;
    }
    return SDLK_OK;
}

static const char *word_of(const word_value *choices, int value)
{
    for (const word_value *c = choices; c->word; c++)
        if (c->value == value)
            return c->word;
    return "?";
}

void sdlk_attack_format(const sdlk_attack *a, char *buf, size_t size)
{
    const char *name = a->kind < SDLK_ATTACK_KIND_COUNT ? attack_docs[a->kind].name : "?";
    int used = 0;
#define APPEND(...)                                                                          \
    do {                                                                                     \
        if ((size_t)used < size)                                                             \
            used += snprintf(buf + used, size - (size_t)used, __VA_ARGS__);                  \
    } while (0)
    switch (a->kind) {
    case SDLK_ATTACK_JPEG: APPEND("jpeg:%g:%d", a->amount, a->chroma); break;
    case SDLK_ATTACK_CROP:
        APPEND("crop:%.17g:%s", a->amount, word_of(crop_words, (int)a->variant));
        break;
    case SDLK_ATTACK_RESIZE:
        APPEND("resize:%.17g:%s", a->amount, word_of(resize_words, (int)a->variant));
        break;
    case SDLK_ATTACK_ROTATE:
        APPEND("rotate:%.17g:%s", a->amount, word_of(rotate_words, (int)a->variant));
        break;
    case SDLK_ATTACK_SHIFT:
        APPEND("shift:%g:%g:%s", a->amount, a->amount2, word_of(shift_words, (int)a->variant));
        break;
    case SDLK_ATTACK_BOX:
        APPEND("box:%.17g:%.17g", a->amount, isnan(a->amount2) ? 0.0 : a->amount2);
        break;
    case SDLK_ATTACK_TEXT:
        APPEND("text:%s", a->text);
        if (!isnan(a->amount2))
            APPEND(":%g", a->amount2);
        break;
    default: APPEND("%s:%.17g", name, a->amount); break;
    }
    if (a->kind == SDLK_ATTACK_CROP || a->kind == SDLK_ATTACK_BOX || a->kind == SDLK_ATTACK_TEXT) {
        if (a->pos == SDLK_ATTACK_POS_XY)
            APPEND("@%lld,%lld", (long long)a->x, (long long)a->y);
        else
            APPEND("@%s", a->pos == SDLK_ATTACK_POS_RANDOM ? "random" : "center");
    }
#undef APPEND
}

void sdlk_attack_chain_format(const sdlk_attack_chain *chain, char *buf, size_t size)
{
    size_t used = 0;
    if (size)
        buf[0] = '\0';
    for (int i = 0; i < chain->count && used + 1 < size; i++) {
        if (i)
            buf[used++] = ',';
        buf[used] = '\0';
        sdlk_attack_format(&chain->items[i], buf + used, size - used);
        used += strlen(buf + used);
    }
}

/* ---- randomness: splitmix64 (core/rng.h), deterministic for a seed ----------------- */

/* Uniform integer in [0, n] (n >= 0). */
static int64_t uniform_upto(uint64_t *state, int64_t n)
{
    return n <= 0 ? 0 : (int64_t)(sdlk_rng_unit(state) * (double)(n + 1));
}

/* ---- float image helpers ----------------------------------------------------------- */

static sdlk_status fimg_alloc(fimg *f, int64_t h, int64_t w, int c, float maxval, sdlk_error *err)
{
    f->h = h;
    f->w = w;
    f->c = c;
    f->maxval = maxval;
    f->px = calloc((size_t)(h * w * c), sizeof(float));
    if (!f->px)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "attack: out of memory for a %lldx%lld image",
                              (long long)w, (long long)h);
    return SDLK_OK;
}

static void fimg_free(fimg *f)
{
    free(f->px);
    f->px = NULL;
}

static int color_channels(int c)
{
    return c == 2 || c == 4 ? c - 1 : c;
}

static sdlk_status check_image(const sdlk_tensor *img, sdlk_error *err)
{
    if (img->ndim != 3 || (img->dtype != SDLK_U8 && img->dtype != SDLK_U16) ||
        img->shape[2] < 1 || img->shape[2] > 4 || img->shape[0] < 1 || img->shape[1] < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "attack: expects an [H,W,C] u8/u16 image with C = 1..4");
    return SDLK_OK;
}

static sdlk_status fimg_from_tensor(const sdlk_tensor *img, fimg *f, sdlk_error *err)
{
    sdlk_status st = fimg_alloc(f, img->shape[0], img->shape[1], (int)img->shape[2],
                                img->dtype == SDLK_U8 ? 255.0f : 65535.0f, err);
    if (st)
        return st;
    float *dst = f->px;
    for (int64_t y = 0; y < f->h; y++)
        for (int64_t x = 0; x < f->w; x++)
            for (int c = 0; c < f->c; c++) {
                const uint8_t *p = img->data + y * img->strides[0] + x * img->strides[1] +
                                   c * img->strides[2];
                *dst++ = img->dtype == SDLK_U8 ? (float)*p : (float)*(const uint16_t *)p;
            }
    return SDLK_OK;
}

/* Round half up and clip to 0..maxval. */
static sdlk_status fimg_to_tensor(const fimg *f, sdlk_dtype dtype, sdlk_tensor *out, sdlk_error *err)
{
    const int64_t shape[3] = {f->h, f->w, f->c};
    sdlk_status st = sdlk_tensor_alloc(out, dtype, 3, shape, err);
    if (st)
        return st;
    size_t n = (size_t)(f->h * f->w * f->c);
    for (size_t i = 0; i < n; i++) {
        float v = floorf(f->px[i] + 0.5f);
        v = v < 0 ? 0 : v > f->maxval ? f->maxval : v;
        if (dtype == SDLK_U8)
            out->data[i] = (uint8_t)v;
        else
            ((uint16_t *)out->data)[i] = (uint16_t)v;
    }
    return SDLK_OK;
}

/* Where a window of wh x ww goes in an h x w image. */
static void place_window(const sdlk_attack *a, int64_t h, int64_t w, int64_t wh, int64_t ww,
                         uint64_t *rng, int64_t *y0, int64_t *x0)
{
    int64_t free_y = h - wh > 0 ? h - wh : 0, free_x = w - ww > 0 ? w - ww : 0;
    switch (a->pos) {
    case SDLK_ATTACK_POS_XY:
        *x0 = a->x < free_x ? a->x : free_x;
        *y0 = a->y < free_y ? a->y : free_y;
        break;
    case SDLK_ATTACK_POS_RANDOM:
        *x0 = uniform_upto(rng, free_x);
        *y0 = uniform_upto(rng, free_y);
        break;
    default:
        *x0 = free_x / 2;
        *y0 = free_y / 2;
        break;
    }
}

/* A side scaled by f, rounded, at least 1 and at most `limit` (0 = no limit). */
static int64_t scaled_side(int64_t side, double f, int64_t limit)
{
    int64_t s = (int64_t)floor(side * f + 0.5);
    if (s < 1)
        s = 1;
    if (limit && s > limit)
        s = limit;
    return s;
}

/* out = the window [y0, y0+h) x [x0, x0+w) of in (inside it). */
static sdlk_status fimg_window(const fimg *in, int64_t y0, int64_t x0, int64_t h, int64_t w,
                               fimg *out, sdlk_error *err)
{
    sdlk_status st = fimg_alloc(out, h, w, in->c, in->maxval, err);
    if (st)
        return st;
    for (int64_t y = 0; y < h; y++)
        memcpy(out->px + (size_t)(y * w * in->c),
               in->px + (size_t)(((y0 + y) * in->w + x0) * in->c),
               sizeof(float) * (size_t)(w * in->c));
    return SDLK_OK;
}

/* ---- photometric: PIL ImageEnhance ------------------------------------------------- */

/* PIL's blend: degenerate + factor * (image - degenerate) in float, truncated toward zero,
 * clipped. Alpha is left alone. */
static void blend_with(fimg *img, const fimg *degenerate, float factor)
{
    int cc = color_channels(img->c);
    size_t pixels = (size_t)(img->h * img->w);
    for (size_t i = 0; i < pixels; i++)
        for (int c = 0; c < cc; c++) {
            size_t k = i * (size_t)img->c + (size_t)c;
            float d = degenerate->px[k];
            float t = d + factor * (img->px[k] - d);
            img->px[k] = t <= 0 ? 0 : t >= img->maxval ? img->maxval : truncf(t);
        }
}

/* PIL's "L" conversion of RGB: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
static float luma_of(const float *px, int c)
{
    if (color_channels(c) == 1)
        return px[0];
    int64_t r = (int64_t)px[0], g = (int64_t)px[1], b = (int64_t)px[2];
    return (float)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

/* The degenerate image each enhancer blends with. */
static sdlk_status degenerate_of(const sdlk_attack *a, const fimg *img, fimg *d, sdlk_error *err)
{
    sdlk_status st = fimg_alloc(d, img->h, img->w, img->c, img->maxval, err);
    if (st)
        return st;
    int cc = color_channels(img->c);
    size_t pixels = (size_t)(img->h * img->w);
    if (a->kind == SDLK_ATTACK_BRIGHTNESS)
        return SDLK_OK; /* black */
    if (a->kind == SDLK_ATTACK_CONTRAST) {
        double sum = 0;
        for (size_t i = 0; i < pixels; i++)
            sum += luma_of(img->px + i * (size_t)img->c, img->c);
        float mean = (float)(int64_t)(sum / (double)pixels + 0.5);
        for (size_t i = 0; i < pixels; i++)
            for (int c = 0; c < cc; c++)
                d->px[i * (size_t)img->c + (size_t)c] = mean;
        return SDLK_OK;
    }
    if (a->kind == SDLK_ATTACK_SATURATION) {
        for (size_t i = 0; i < pixels; i++) {
            float l = luma_of(img->px + i * (size_t)img->c, img->c);
            for (int c = 0; c < cc; c++)
                d->px[i * (size_t)img->c + (size_t)c] = l;
        }
        return SDLK_OK;
    }
    /* Sharpness: PIL's SMOOTH filter, kernel [1 1 1; 1 5 1; 1 1 1] / 13 summed in float
     * row by row, rounded (clip8 adds 0.5); the border pixels are copied. */
    memcpy(d->px, img->px, sizeof(float) * pixels * (size_t)img->c);
    static const float k[9] = {1, 1, 1, 1, 5, 1, 1, 1, 1};
    float kn[9];
    for (int i = 0; i < 9; i++)
        kn[i] = k[i] / 13.0f;
    int64_t w = img->w, ch = img->c;
    for (int64_t y = 1; y + 1 < img->h; y++)
        for (int64_t x = 1; x + 1 < w; x++)
            for (int c = 0; c < cc; c++) {
                const float *below = img->px + ((y + 1) * w + x) * ch + c;
                const float *here = img->px + (y * w + x) * ch + c;
                const float *above = img->px + ((y - 1) * w + x) * ch + c;
                float ss = 0;
                ss += below[-ch] * kn[0] + below[0] * kn[1] + below[ch] * kn[2];
                ss += here[-ch] * kn[3] + here[0] * kn[4] + here[ch] * kn[5];
                ss += above[-ch] * kn[6] + above[0] * kn[7] + above[ch] * kn[8];
                float v = ss <= 0 ? 0 : ss >= img->maxval ? img->maxval : floorf(ss + 0.5f);
                d->px[(y * w + x) * ch + c] = v;
            }
    return SDLK_OK;
}

static sdlk_status enhance(const sdlk_attack *a, fimg *img, sdlk_error *err)
{
    fimg d;
    sdlk_status st = degenerate_of(a, img, &d, err);
    if (!st)
        blend_with(img, &d, (float)a->amount);
    fimg_free(&d);
    return st;
}

/* ---- noise and blur ---------------------------------------------------------------- */

static void add_noise(fimg *img, double sigma, uint64_t *rng)
{
    int cc = color_channels(img->c);
    double scale = sigma * img->maxval / 255.0;
    size_t pixels = (size_t)(img->h * img->w);
    /* Box-Muller: two normals per pair of uniforms; the spare is kept for the next
     * sample so the sequence depends only on the seed. */
    int have_spare = 0;
    double spare = 0;
    for (size_t i = 0; i < pixels; i++)
        for (int c = 0; c < cc; c++) {
            double g;
            if (have_spare) {
                g = spare;
                have_spare = 0;
            } else {
                double u1 = sdlk_rng_unit(rng), u2 = sdlk_rng_unit(rng);
                double r = sqrt(-2.0 * log(1.0 - u1)); /* 1 - u1 in (0, 1] */
                g = r * cos(2 * M_PI * u2);
                spare = r * sin(2 * M_PI * u2);
                have_spare = 1;
            }
            img->px[i * (size_t)img->c + (size_t)c] += (float)(g * scale);
        }
}

/* Convolve along one axis with `taps` (length 2r+1), edges clamped: `step` elements
 * between neighbours, `count` positions along the axis, `lines` independent lines each
 * `line_stride` apart holding `per` interleaved values. */
static void convolve_axis(const float *src, float *dst, int64_t count, int64_t lines,
                          int64_t step, int64_t line_stride, int per, const float *taps, int r)
{
    for (int64_t l = 0; l < lines; l++)
        for (int64_t i = 0; i < count; i++)
            for (int c = 0; c < per; c++) {
                float acc = 0;
                for (int t = -r; t <= r; t++) {
                    int64_t j = i + t < 0 ? 0 : i + t >= count ? count - 1 : i + t;
                    acc += taps[t + r] * src[l * line_stride + j * step + c];
                }
                dst[l * line_stride + i * step + c] = acc;
            }
}

static sdlk_status gaussian_blur(fimg *img, double sigma, sdlk_error *err)
{
    if (sigma <= 0)
        return SDLK_OK;
    int r = (int)ceil(3 * sigma);
    float *taps = malloc(sizeof(float) * (size_t)(2 * r + 1));
    fimg tmp;
    sdlk_status st = fimg_alloc(&tmp, img->h, img->w, img->c, img->maxval, err);
    if (!taps || st) {
        free(taps);
        fimg_free(&tmp);
        return st ? st : sdlk_error_set(err, SDLK_ERR_NOMEM, "attack: out of memory");
    }
    double sum = 0;
    for (int t = -r; t <= r; t++)
        sum += exp(-0.5 * t * t / (sigma * sigma));
    for (int t = -r; t <= r; t++)
        taps[t + r] = (float)(exp(-0.5 * t * t / (sigma * sigma)) / sum);
    int64_t c = img->c;
    /* rows: along x; then columns: along y. Alpha is blurred too (it is geometry). */
    convolve_axis(img->px, tmp.px, img->w, img->h, c, img->w * c, (int)c, taps, r);
    convolve_axis(tmp.px, img->px, img->h, img->w, img->w * c, c, (int)c, taps, r);
    free(taps);
    fimg_free(&tmp);
    return SDLK_OK;
}

/* ---- resampling (PIL's antialiased separable filters) ------------------------------ */

static double filter_bicubic(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1)
        return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

static double filter_bilinear(double x)
{
    x = fabs(x);
    return x < 1 ? 1 - x : 0;
}

static double filter_box(double x)
{
    return x > -0.5 && x <= 0.5 ? 1 : 0;
}

/* Resample one axis from `in_count` to `out_count` positions (same layout rules as
 * convolve_axis, separate strides for source and destination lines). */
static sdlk_status resample_axis(const float *src, float *dst, int64_t in_count, int64_t out_count,
                                 int64_t lines, int64_t src_step, int64_t src_line,
                                 int64_t dst_step, int64_t dst_line, int per,
                                 sdlk_attack_variant filter, sdlk_error *err)
{
    double (*fn)(double) = filter == SDLK_ATTACK_RESIZE_BILINEAR ? filter_bilinear
                           : filter == SDLK_ATTACK_RESIZE_AREA   ? filter_box
                                                                 : filter_bicubic;
    double support = filter == SDLK_ATTACK_RESIZE_BILINEAR ? 1
                     : filter == SDLK_ATTACK_RESIZE_AREA   ? 0.5
                                                           : 2;
    double scale = (double)in_count / (double)out_count;
    double fscale = scale > 1 ? scale : 1; /* widen the filter when shrinking */
    double radius = support * fscale;
    int taps_max = (int)ceil(radius) * 2 + 1;
    double *weights = malloc(sizeof(double) * (size_t)taps_max);
    if (!weights)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "attack: out of memory");
    for (int64_t i = 0; i < out_count; i++) {
        double center = (i + 0.5) * scale;
        int64_t lo = (int64_t)floor(center - radius + 0.5), hi = (int64_t)floor(center + radius + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in_count)
            hi = in_count;
        double total = 0;
        int n = 0;
        for (int64_t j = lo; j < hi && n < taps_max; j++, n++) {
            weights[n] = fn((j - center + 0.5) / fscale);
            total += weights[n];
        }
        for (int k = 0; k < n; k++)
            weights[k] = total != 0 ? weights[k] / total : 0;
        for (int64_t l = 0; l < lines; l++)
            for (int c = 0; c < per; c++) {
                double acc = 0;
                for (int k = 0; k < n; k++)
                    acc += weights[k] * src[l * src_line + (lo + k) * src_step + c];
                dst[l * dst_line + i * dst_step + c] = (float)acc;
            }
    }
    free(weights);
    return SDLK_OK;
}

static sdlk_status resize(const fimg *in, double factor, sdlk_attack_variant filter, fimg *out,
                          sdlk_error *err)
{
    int64_t oh = scaled_side(in->h, factor, SDLK_IMAGE_MAX_SIDE);
    int64_t ow = scaled_side(in->w, factor, SDLK_IMAGE_MAX_SIDE);
    int64_t c = in->c;
    fimg mid;
    sdlk_status st = fimg_alloc(&mid, in->h, ow, in->c, in->maxval, err);
    if (!st)
        st = fimg_alloc(out, oh, ow, in->c, in->maxval, err);
    if (!st) /* horizontal: each row */
        st = resample_axis(in->px, mid.px, in->w, ow, in->h, c, in->w * c, c, ow * c, (int)c,
                           filter, err);
    if (!st) /* vertical: each column */
        st = resample_axis(mid.px, out->px, in->h, oh, ow, ow * c, c, ow * c, c, (int)c, filter,
                           err);
    fimg_free(&mid);
    return st;
}

/* ---- geometry ---------------------------------------------------------------------- */

/* Bilinear sample at (sy, sx) in pixel-index coordinates; 0 outside the image (half a
 * pixel of margin, with clamped neighbours, so the edges are not darkened). */
static void sample_bilinear(const fimg *in, double sy, double sx, float *out)
{
    if (sy < -0.5 || sx < -0.5 || sy > in->h - 0.5 || sx > in->w - 0.5) {
        for (int c = 0; c < in->c; c++)
            out[c] = 0;
        return;
    }
    int64_t y0 = (int64_t)floor(sy), x0 = (int64_t)floor(sx);
    double fy = sy - y0, fx = sx - x0;
    int64_t ya = y0 < 0 ? 0 : y0, yb = y0 + 1 >= in->h ? in->h - 1 : y0 + 1;
    int64_t xa = x0 < 0 ? 0 : x0, xb = x0 + 1 >= in->w ? in->w - 1 : x0 + 1;
    if (ya >= in->h)
        ya = in->h - 1;
    if (xa >= in->w)
        xa = in->w - 1;
    const float *p00 = in->px + (ya * in->w + xa) * in->c, *p01 = in->px + (ya * in->w + xb) * in->c;
    const float *p10 = in->px + (yb * in->w + xa) * in->c, *p11 = in->px + (yb * in->w + xb) * in->c;
    for (int c = 0; c < in->c; c++)
        out[c] = (float)((1 - fy) * ((1 - fx) * p00[c] + fx * p01[c]) +
                         fy * ((1 - fx) * p10[c] + fx * p11[c]));
}

static sdlk_status rotate(const fimg *in, double degrees, sdlk_attack_variant edge, fimg *out,
                          sdlk_error *err)
{
    double th = degrees * M_PI / 180.0, co = cos(th), si = sin(th);
    int64_t oh = in->h, ow = in->w;
    if (edge == SDLK_ATTACK_EDGE_CROP) {
        /* The largest centred rectangle of the image's aspect inside the rotated image. */
        double ac = fabs(co), as = fabs(si);
        double s1 = (double)in->w / (in->w * ac + in->h * as);
        double s2 = (double)in->h / (in->w * as + in->h * ac);
        double s = s1 < s2 ? s1 : s2;
        oh = (int64_t)floor(in->h * s);
        ow = (int64_t)floor(in->w * s);
        if (oh < 1 || ow < 1)
            return sdlk_error_set(err, SDLK_ERR_ARG, "attack rotate: nothing left after the crop");
    }
    sdlk_status st = fimg_alloc(out, oh, ow, in->c, in->maxval, err);
    if (st)
        return st;
    double cy_in = in->h / 2.0, cx_in = in->w / 2.0, cy_out = oh / 2.0, cx_out = ow / 2.0;
    for (int64_t y = 0; y < oh; y++)
        for (int64_t x = 0; x < ow; x++) {
            /* Counter-clockwise on screen (y down): the source of an output point is the
             * output offset rotated clockwise. */
            double dx = x + 0.5 - cx_out, dy = y + 0.5 - cy_out;
            double sx = co * dx - si * dy + cx_in - 0.5;
            double sy = si * dx + co * dy + cy_in - 0.5;
            sample_bilinear(in, sy, sx, out->px + (y * ow + x) * in->c);
        }
    return SDLK_OK;
}

static int64_t wrap_index(int64_t i, int64_t n)
{
    int64_t m = i % n;
    return m < 0 ? m + n : m;
}

static sdlk_status shift(const fimg *in, int64_t dx, int64_t dy, sdlk_attack_variant edge, fimg *out,
                         sdlk_error *err)
{
    int64_t oh = in->h, ow = in->w, oy = 0, ox = 0;
    if (edge == SDLK_ATTACK_EDGE_CROP) {
        oh = in->h - llabs(dy);
        ow = in->w - llabs(dx);
        if (oh < 1 || ow < 1)
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "attack shift: a shift of %lld,%lld leaves nothing of a "
                                  "%lldx%lld image",
                                  (long long)dx, (long long)dy, (long long)in->w, (long long)in->h);
        /* the output starts where the content starts */
        oy = dy > 0 ? dy : 0;
        ox = dx > 0 ? dx : 0;
    }
    sdlk_status st = fimg_alloc(out, oh, ow, in->c, in->maxval, err);
    if (st)
        return st;
    for (int64_t y = 0; y < oh; y++)
        for (int64_t x = 0; x < ow; x++) {
            int64_t sy = y + oy - dy, sx = x + ox - dx;
            if (edge == SDLK_ATTACK_EDGE_WRAP) {
                sy = wrap_index(sy, in->h);
                sx = wrap_index(sx, in->w);
            } else if (sy < 0 || sy >= in->h || sx < 0 || sx >= in->w) {
                continue; /* calloc'd: black */
            }
            memcpy(out->px + (y * ow + x) * in->c, in->px + (sy * in->w + sx) * in->c,
                   sizeof(float) * (size_t)in->c);
        }
    return SDLK_OK;
}

/* ---- overlays ---------------------------------------------------------------------- */

static void fill_rect(fimg *img, int64_t y0, int64_t x0, int64_t h, int64_t w, float value)
{
    int cc = color_channels(img->c);
    for (int64_t y = y0 < 0 ? 0 : y0; y < y0 + h && y < img->h; y++)
        for (int64_t x = x0 < 0 ? 0 : x0; x < x0 + w && x < img->w; x++)
            for (int c = 0; c < cc; c++)
                img->px[(y * img->w + x) * img->c + c] = value;
}

/* 5x7 glyphs, one byte per column, bit 0 at the top (the classic LCD font). */
static const unsigned char *glyph(char ch)
{
    static const struct {
        char ch;
        unsigned char cols[5];
    } font[] = {
        {'A', {0x7C, 0x12, 0x11, 0x12, 0x7C}}, {'B', {0x7F, 0x49, 0x49, 0x49, 0x36}},
        {'C', {0x3E, 0x41, 0x41, 0x41, 0x22}}, {'D', {0x7F, 0x41, 0x41, 0x22, 0x1C}},
        {'E', {0x7F, 0x49, 0x49, 0x49, 0x41}}, {'F', {0x7F, 0x09, 0x09, 0x09, 0x01}},
        {'G', {0x3E, 0x41, 0x49, 0x49, 0x7A}}, {'H', {0x7F, 0x08, 0x08, 0x08, 0x7F}},
        {'I', {0x00, 0x41, 0x7F, 0x41, 0x00}}, {'J', {0x20, 0x40, 0x41, 0x3F, 0x01}},
        {'K', {0x7F, 0x08, 0x14, 0x22, 0x41}}, {'L', {0x7F, 0x40, 0x40, 0x40, 0x40}},
        {'M', {0x7F, 0x02, 0x0C, 0x02, 0x7F}}, {'N', {0x7F, 0x04, 0x08, 0x10, 0x7F}},
        {'O', {0x3E, 0x41, 0x41, 0x41, 0x3E}}, {'P', {0x7F, 0x09, 0x09, 0x09, 0x06}},
        {'Q', {0x3E, 0x41, 0x51, 0x21, 0x5E}}, {'R', {0x7F, 0x09, 0x19, 0x29, 0x46}},
        {'S', {0x26, 0x49, 0x49, 0x49, 0x32}}, {'T', {0x01, 0x01, 0x7F, 0x01, 0x01}},
        {'U', {0x3F, 0x40, 0x40, 0x40, 0x3F}}, {'V', {0x1F, 0x20, 0x40, 0x20, 0x1F}},
        {'W', {0x3F, 0x40, 0x38, 0x40, 0x3F}}, {'X', {0x63, 0x14, 0x08, 0x14, 0x63}},
        {'Y', {0x07, 0x08, 0x70, 0x08, 0x07}}, {'Z', {0x61, 0x51, 0x49, 0x45, 0x43}},
        {'0', {0x3E, 0x51, 0x49, 0x45, 0x3E}}, {'1', {0x00, 0x42, 0x7F, 0x40, 0x00}},
        {'2', {0x42, 0x61, 0x51, 0x49, 0x46}}, {'3', {0x21, 0x41, 0x45, 0x4B, 0x31}},
        {'4', {0x18, 0x14, 0x12, 0x7F, 0x10}}, {'5', {0x27, 0x45, 0x45, 0x45, 0x39}},
        {'6', {0x3C, 0x4A, 0x49, 0x49, 0x30}}, {'7', {0x01, 0x71, 0x09, 0x05, 0x03}},
        {'8', {0x36, 0x49, 0x49, 0x49, 0x36}}, {'9', {0x06, 0x49, 0x49, 0x29, 0x1E}},
        {'.', {0x00, 0x60, 0x60, 0x00, 0x00}}, {'-', {0x08, 0x08, 0x08, 0x08, 0x08}},
        {'_', {0x40, 0x40, 0x40, 0x40, 0x40}}, {'!', {0x00, 0x00, 0x5F, 0x00, 0x00}},
        {'?', {0x02, 0x01, 0x51, 0x09, 0x06}}, {' ', {0, 0, 0, 0, 0}},
    };
    char up = (char)toupper((unsigned char)ch);
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].ch == up)
            return font[i].cols;
    return font[sizeof font / sizeof font[0] - 1].cols;
}

static void draw_text(fimg *img, const sdlk_attack *a, uint64_t *rng)
{
    int64_t scale = !isnan(a->amount2) ? (int64_t)a->amount2
                                       : (img->h / 40 > 1 ? img->h / 40 : 1);
    int64_t len = (int64_t)strlen(a->text);
    int64_t th = 7 * scale, tw = (len * 6 - 1) * scale;
    int64_t y0, x0;
    place_window(a, img->h, img->w, th, tw, rng, &y0, &x0);
    for (int64_t i = 0; i < len; i++) {
        const unsigned char *cols = glyph(a->text[i]);
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < 7; row++)
                if (cols[col] >> row & 1)
                    fill_rect(img, y0 + row * scale, x0 + (i * 6 + col) * scale, scale, scale,
                              img->maxval);
    }
}

/* ---- JPEG -------------------------------------------------------------------------- */

/* Encode + decode in memory with the encoder sdlk_image_write uses. Alpha does not go
 * through JPEG: it is copied from the input. u16 goes through 8 bits and comes back
 * scaled by 257. */
static sdlk_status jpeg_roundtrip(const sdlk_attack *a, const sdlk_tensor *in, sdlk_tensor *out,
                                  sdlk_error *err)
{
    sdlk_tensor img, decoded;
    sdlk_tensor_init(&img);
    sdlk_tensor_init(&decoded);
    sdlk_status st = sdlk_tensor_contiguous(&img, in, err);
    char *bytes = NULL;
    size_t size = 0;
    if (!st) {
        FILE *mem = open_memstream(&bytes, &size);
        if (!mem)
            st = sdlk_error_errno(err, errno, "attack jpeg: in-memory stream");
        else {
            st = sdlk_jpeg_encode(mem, "attack jpeg", &img, (int)a->amount,
                                  (sdlk_chroma)a->chroma, err);
            if (fclose(mem) && !st)
                st = sdlk_error_set(err, SDLK_ERR_NOMEM, "attack jpeg: out of memory");
        }
    }
    sdlk_image_info info;
    if (!st)
        st = sdlk_jpeg_decode((const uint8_t *)bytes, size, "attack jpeg", &decoded, &info, err);
    free(bytes);
    int64_t h = in->shape[0], w = in->shape[1], c = in->shape[2], cc = color_channels((int)c);
    if (!st && (decoded.shape[0] != h || decoded.shape[1] != w || decoded.shape[2] != cc))
        st = sdlk_error_set(err, SDLK_ERR_INTERNAL, "attack jpeg: decoded image differs in shape");
    if (!st)
        st = sdlk_tensor_alloc(out, in->dtype, 3, in->shape, err);
    if (!st) {
        size_t esize = in->dtype == SDLK_U8 ? 1 : 2;
        for (int64_t i = 0; i < h * w; i++) {
            for (int64_t ch = 0; ch < c; ch++) {
                unsigned v;
                if (ch < cc) {
                    v = decoded.data[i * cc + ch];
                    v = esize == 1 ? v : v * 257u;
                } else {
                    const uint8_t *src = img.data + (i * c + ch) * (int64_t)esize;
                    v = esize == 1 ? *src : *(const uint16_t *)src;
                }
                if (esize == 1)
                    out->data[i * c + ch] = (uint8_t)v;
                else
                    ((uint16_t *)out->data)[i * c + ch] = (uint16_t)v;
            }
        }
    }
    sdlk_tensor_free(&img);
    sdlk_tensor_free(&decoded);
    return st;
}

/* ---- dispatch ---------------------------------------------------------------------- */

/* Attacks whose output has a new size write `next`; the others change `img` in place. */
static sdlk_status apply_float(const sdlk_attack *a, fimg *img, uint64_t *rng, sdlk_error *err)
{
    fimg next = {0};
    sdlk_status st = SDLK_OK;
    int replaced = 1;
    switch (a->kind) {
    case SDLK_ATTACK_CROP: {
        double side = a->variant == SDLK_ATTACK_CROP_SIDE ? a->amount : sqrt(a->amount);
        int64_t ch = scaled_side(img->h, side, img->h), cw = scaled_side(img->w, side, img->w);
        int64_t y0, x0;
        place_window(a, img->h, img->w, ch, cw, rng, &y0, &x0);
        st = fimg_window(img, y0, x0, ch, cw, &next, err);
        break;
    }
    case SDLK_ATTACK_RESIZE: st = resize(img, a->amount, a->variant, &next, err); break;
    case SDLK_ATTACK_ROTATE: st = rotate(img, a->amount, a->variant, &next, err); break;
    case SDLK_ATTACK_SHIFT:
        st = shift(img, (int64_t)a->amount, (int64_t)a->amount2, a->variant, &next, err);
        break;
    default: replaced = 0; break;
    }
    if (replaced) {
        if (!st) {
            fimg_free(img);
            *img = next;
        } else {
            fimg_free(&next);
        }
        return st;
    }
    switch (a->kind) {
    case SDLK_ATTACK_BRIGHTNESS:
    case SDLK_ATTACK_CONTRAST:
    case SDLK_ATTACK_SATURATION:
    case SDLK_ATTACK_SHARPNESS: return enhance(a, img, err);
    case SDLK_ATTACK_NOISE: add_noise(img, a->amount, rng); return SDLK_OK;
    case SDLK_ATTACK_BLUR: return gaussian_blur(img, a->amount, err);
    case SDLK_ATTACK_BOX: {
        double side = sqrt(a->amount);
        int64_t bh = scaled_side(img->h, side, img->h), bw = scaled_side(img->w, side, img->w);
        if (a->amount == 0)
            return SDLK_OK;
        int64_t y0, x0;
        place_window(a, img->h, img->w, bh, bw, rng, &y0, &x0);
        double grey = isnan(a->amount2) ? 0 : a->amount2;
        fill_rect(img, y0, x0, bh, bw, (float)(grey * img->maxval / 255.0));
        return SDLK_OK;
    }
    case SDLK_ATTACK_TEXT: draw_text(img, a, rng); return SDLK_OK;
    default:
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "attack: kind %d not handled", (int)a->kind);
    }
}

sdlk_status sdlk_attack_apply(const sdlk_attack *attack, const sdlk_tensor *in, uint64_t seed,
                              sdlk_tensor *out, sdlk_error *err)
{
    sdlk_tensor_init(out);
    sdlk_status st = check_image(in, err);
    if (st)
        return st;
    if (attack->kind == SDLK_ATTACK_JPEG)
        return jpeg_roundtrip(attack, in, out, err);
    fimg img;
    st = fimg_from_tensor(in, &img, err);
    uint64_t rng = seed;
    if (!st)
        st = apply_float(attack, &img, &rng, err);
    if (!st)
        st = fimg_to_tensor(&img, in->dtype, out, err);
    fimg_free(&img);
    return st;
}

sdlk_status sdlk_attack_chain_apply(const sdlk_attack_chain *chain, const sdlk_tensor *in,
                                    uint64_t seed, sdlk_tensor *out, sdlk_error *err)
{
    sdlk_tensor_init(out);
    if (chain->count < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "empty attack chain");
    sdlk_tensor current;
    sdlk_tensor_share(&current, in);
    for (int k = 0; k < chain->count; k++) {
        /* Attack k draws from its own stream, so adding an attack to the end of a chain
         * does not change the random choices of the ones before it. */
        uint64_t mix = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(k + 1));
        uint64_t attack_seed = sdlk_splitmix64(&mix);
        sdlk_tensor next;
        sdlk_status st = sdlk_attack_apply(&chain->items[k], &current, attack_seed, &next, err);
        sdlk_tensor_free(&current);
        if (st)
            return st;
        current = next;
    }
    *out = current;
    return SDLK_OK;
}
