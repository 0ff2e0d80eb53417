/* attack.h -- image attacks for watermark robustness tests, alone or chained.
 *
 * Contract
 *   An attack maps an image ([H, W, C] u8 or u16, C = 1..4, any strides) to a new
 *   contiguous image of the same dtype and channel count; the input is never modified.
 *   Attacks are parsed from text: one attack is NAME[:ARG[:ARG]][@POS], a chain is
 *   attacks separated by commas (POS itself may contain one comma, "@X,Y"), applied left
 *   to right: "crop:0.5,brightness:1.5,jpeg:80". The syntax of every attack:
 *
 *     jpeg:Q[:420|422|444]      JPEG encode + decode at quality Q (1..100), chroma 4:2:0
 *                               by default; the same encoder as sdlk_image_write (alpha
 *                               is kept from the input, u16 is reduced to 8 bits by the
 *                               codec and scaled back)
 *     crop:F[:area|side][@POS]  keep a window of fraction F (0 < F <= 1) of the area
 *                               (default; each side scaled by sqrt(F), aspect kept) or of
 *                               each side; the output is the window (not resized back)
 *     resize:F[:bilinear|bicubic|area]
 *                               scale each side by F (0.01..16; sides rounded, >= 1),
 *                               separable resampling with PIL's antialiased filters
 *                               (bicubic, a = -0.5, by default)
 *     rotate:DEG[:fill|crop]    rotate counter-clockwise by DEG about the centre, bilinear;
 *                               fill keeps the size with black corners (default), crop
 *                               keeps the largest axis-aligned rectangle of the same
 *                               aspect that holds only image pixels
 *     brightness:F              PIL ImageEnhance.Brightness: blend with black
 *     contrast:F                PIL ImageEnhance.Contrast: blend with the mean luma grey
 *     saturation:F              PIL ImageEnhance.Color: blend with the luma image
 *     sharpness:F               PIL ImageEnhance.Sharpness: blend with PIL's SMOOTH filter
 *                               (F > 1 sharpens)
 *     noise:SIGMA               additive gaussian noise, SIGMA in 0..255 units (scaled by
 *                               257 for u16), seeded
 *     blur:SIGMA                gaussian blur with standard deviation SIGMA pixels
 *                               (kernel radius ceil(3 SIGMA), edges clamped)
 *     shift:DX:DY[:fill|wrap|crop]
 *                               move the content DX pixels right and DY down (negative:
 *                               left/up); fill: same size, black where nothing moved in
 *                               (default); wrap: cyclic; crop: the canvas shrinks to the
 *                               pixels that hold content
 *     box:F[:V][@POS]           paint a filled box of fraction F of the area (aspect of
 *                               the image) with grey level V (0..255, default 0)
 *     text:STRING[:SCALE][@POS] draw STRING (letters, digits, space, . - _ ! ?; lower case
 *                               drawn as upper case) in a built-in 5x7 bitmap font, white,
 *                               SCALE pixels per font dot (default: 1/40 of the image
 *                               height); the text is clipped at the image edges
 *   POS is "center" (the default), "random" (seeded), or X,Y (the top-left corner in
 *   pixels; clamped so that the window fits). Brightness, contrast, saturation and
 *   sharpness follow PIL's arithmetic: out = d + F (in - d) truncated toward zero, then
 *   clipped (d the degenerate image), on 0..255 or, for u16, on 0..65535. Alpha is never
 *   changed by a photometric attack.
 *
 *   Determinism: every random choice comes from the seed passed to sdlk_attack_apply()
 *   (the chain gives attack k the seed mixed with k), so one seed gives one output.
 *
 *   Errors: parse errors are SDLK_ERR_ARG with a message that quotes the attack and says
 *   what is wrong (unknown attack, bad number, missing or extra parameter, out of range).
 *   An attack that cannot apply to an image (a crop smaller than one pixel, C not 1..4)
 *   is SDLK_ERR_ARG too; allocation failures are SDLK_ERR_NOMEM.
 *
 *   Thread safety: no shared state; parsed chains are read-only during apply.
 */
#ifndef SDLK_WM_ATTACK_H
#define SDLK_WM_ATTACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"

typedef enum sdlk_attack_kind {
    SDLK_ATTACK_JPEG,
    SDLK_ATTACK_CROP,
    SDLK_ATTACK_RESIZE,
    SDLK_ATTACK_ROTATE,
    SDLK_ATTACK_BRIGHTNESS,
    SDLK_ATTACK_CONTRAST,
    SDLK_ATTACK_SATURATION,
    SDLK_ATTACK_SHARPNESS,
    SDLK_ATTACK_NOISE,
    SDLK_ATTACK_BLUR,
    SDLK_ATTACK_SHIFT,
    SDLK_ATTACK_BOX,
    SDLK_ATTACK_TEXT,
    SDLK_ATTACK_KIND_COUNT
} sdlk_attack_kind;

/* Where a window (crop, box, text) goes. */
typedef enum sdlk_attack_pos {
    SDLK_ATTACK_POS_CENTER = 0,
    SDLK_ATTACK_POS_XY,
    SDLK_ATTACK_POS_RANDOM
} sdlk_attack_pos;

/* Which variant of an attack (the word after the number). */
typedef enum sdlk_attack_variant {
    SDLK_ATTACK_DEFAULT = 0,
    SDLK_ATTACK_CROP_AREA, SDLK_ATTACK_CROP_SIDE,
    SDLK_ATTACK_RESIZE_BICUBIC, SDLK_ATTACK_RESIZE_BILINEAR, SDLK_ATTACK_RESIZE_AREA,
    SDLK_ATTACK_EDGE_FILL, SDLK_ATTACK_EDGE_CROP, SDLK_ATTACK_EDGE_WRAP
} sdlk_attack_variant;

#define SDLK_ATTACK_TEXT_MAX 64

typedef struct sdlk_attack {
    sdlk_attack_kind kind;
    double amount;   /* quality, fraction, factor, degrees, sigma, dx */
    double amount2;  /* dy (shift), grey level (box), scale (text); NAN when not given */
    int chroma;      /* jpeg: 420, 422 or 444 */
    sdlk_attack_variant variant;
    sdlk_attack_pos pos;
    int64_t x, y;    /* pos == SDLK_ATTACK_POS_XY */
    char text[SDLK_ATTACK_TEXT_MAX]; /* text */
} sdlk_attack;

#define SDLK_ATTACK_CHAIN_MAX 32

typedef struct sdlk_attack_chain {
    int count;
    sdlk_attack items[SDLK_ATTACK_CHAIN_MAX];
} sdlk_attack_chain;

/* Parse one attack ("jpeg:50:420") or a chain ("crop:0.5@10,20,jpeg:80"). An empty
 * chain is an error. */
sdlk_status sdlk_attack_parse(const char *text, sdlk_attack *out, sdlk_error *err);
sdlk_status sdlk_attack_chain_parse(const char *text, sdlk_attack_chain *out, sdlk_error *err);

/* Write the canonical text of an attack or chain (parses back to the same thing). */
void sdlk_attack_format(const sdlk_attack *attack, char *buf, size_t size);
void sdlk_attack_chain_format(const sdlk_attack_chain *chain, char *buf, size_t size);

/* Apply one attack / a chain to `in`; `out` receives a fresh contiguous image (it must
 * not alias `in`). `seed` drives every random choice. */
sdlk_status sdlk_attack_apply(const sdlk_attack *attack, const sdlk_tensor *in, uint64_t seed,
                              sdlk_tensor *out, sdlk_error *err);
sdlk_status sdlk_attack_chain_apply(const sdlk_attack_chain *chain, const sdlk_tensor *in,
                                    uint64_t seed, sdlk_tensor *out, sdlk_error *err);

/* The attacks with their syntax and a one-line description, for --list. */
typedef struct sdlk_attack_doc {
    const char *name;
    const char *syntax;
    const char *description;
} sdlk_attack_doc;
/* The table of SDLK_ATTACK_KIND_COUNT entries, in sdlk_attack_kind order. */
const sdlk_attack_doc *sdlk_attack_docs(void);

#endif
