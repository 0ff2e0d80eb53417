/* bench_families.h -- the benchmark families sdl-bench runs, and what they share.
 *
 * Contract
 *   A family is one function that measures a set of subjects against their baselines
 *   (sdlk_bench_compare) and appends the results to the report. Families are listed in
 *   one table, bench_families[] in tools/bench/families.c: adding a family is adding its
 *   file under tools/bench/, one line to that table and the file to the 'sdl-bench'
 *   entry of tools/meson.build; sdl-bench.c does not change.
 *   A family gets its inputs from the options (sizes scaled down by `quick`, real files
 *   from `data_dir`), writes scratch files only inside a directory it creates under
 *   `tmp_dir` and removes, and prints nothing except progress lines to `log`.
 */
#ifndef SDL_TOOLS_BENCH_FAMILIES_H
#define SDL_TOOLS_BENCH_FAMILIES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "bench/bench.h"
#include "core/error.h"
#include "core/tensor.h"

typedef struct bench_options {
    int reps;             /* timed reps per comparison (>= 1) */
    int quick;            /* small inputs so that a test finishes in seconds */
    int threads;          /* threads the subjects may use */
    const char *data_dir; /* real inputs (photos...); may lack what a family wants */
    const char *tmp_dir;  /* where scratch directories go */
    FILE *log;            /* progress and notes ("skipped: ..."), or NULL for none */
} bench_options;

typedef sdlk_status (*bench_family_fn)(const bench_options *opt, sdlk_bench_report *report,
                                       sdlk_error *err);

typedef struct bench_family {
    const char *name;        /* what the user types: "io" */
    const char *description; /* one line for --list */
    bench_family_fn run;
} bench_family;

/* The registry, terminated by an entry whose name is NULL. */
extern const bench_family bench_families[];

/* The family called `name`, or NULL. */
const bench_family *bench_family_find(const char *name);

/* ---- helpers shared by families (tools/bench/util.c) ---------------------------- */

/* Print a progress line "family: text" to opt->log (if any). */
void bench_log(const bench_options *opt, const char *family, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Create a fresh private directory "<tmp_dir>/sdl-bench.XXXXXX"; *out is malloc'd. */
sdlk_status bench_scratch_create(const char *tmp_dir, char **out, sdlk_error *err);
/* Remove the scratch directory and the regular files in it; frees the path. */
void bench_scratch_remove(char *dir);

/* Sum of the little-endian 64-bit words of `size` bytes (size a multiple of 8 for
 * sums that add up across pieces): reads every byte, cheap enough to be memory-bound.
 * Both sides of an I/O comparison use it, so both really touch the data. */
uint64_t bench_checksum(const void *data, size_t size);

/* Fill `size` bytes with a deterministic pseudo-random pattern (xorshift). */
void bench_fill_random(void *data, size_t size, uint64_t seed);

/* A contiguous copy of the window [y0, y0+h) x [x0, x0+w) of an [H, W, C] image whose
 * pixels are contiguous within a row (what the image and video readers give). */
sdlk_status bench_crop(const sdlk_tensor *img, int64_t y0, int64_t x0, int64_t h, int64_t w,
                       sdlk_tensor *out, sdlk_error *err);

/* "64 MiB", "1.5 MiB", "300 KiB". */
void bench_format_size(char *buf, size_t cap, uint64_t bytes);

/* A /usr/bin/python3 child for in-run baselines written in Python (SciPy, imwatermark):
 * `python3 -c script args...`, with this process's environment (so PYTHONPATH picks
 * where optional packages come from), talking one line per request over two pipes.
 * The script's first line is "ready INFO" when it can serve, anything else (e.g.
 * "missing WHY", then exit) when it cannot. Each request is one line; its reply is one
 * line "ok REST". The caller times requests itself, so a baseline timed this way pays
 * one pipe round trip per request (tens of microseconds). */
typedef struct bench_python {
    pid_t pid;
    FILE *to, *from;
} bench_python;

/* Start the child (args: NULL-terminated, at most 8). 1 when it said "ready": INFO goes
 * to `info`. 0 when it cannot be used, which is not an error: `why` says why (its first
 * line, or what failed), and nothing is left running. */
int bench_python_start(bench_python *p, const char *script, const char *const *args,
                       char *info, size_t info_size, char *why, size_t why_size);
/* Send `request` (one line, no newline) and read the reply; anything but "ok REST" is an
 * error. REST (newline dropped) goes to `reply` when it is not NULL. */
sdlk_status bench_python_request(bench_python *p, const char *request, char *reply,
                                 size_t reply_size, sdlk_error *err);
/* Close the pipes (the child sees EOF and exits) and reap the child; idempotent. */
void bench_python_stop(bench_python *p);

/* ---- the families ------------------------------------------------------------- */

/* Tensor file and image I/O against plain stdio/libpng (tools/bench/io.c). */
sdlk_status bench_io(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err);

/* Bit-composed GEMM and n-bit quantization vs OpenBLAS sgemm / memcpy (tools/bench/qmatmul.c). */
sdlk_status bench_qmatmul(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err);

/* Quantized MLP on real handwritten digits: accuracy and speed vs float (tools/bench/digits.c). */
sdlk_status bench_digits(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err);

/* Sparse Graph Translation and CPU SpMM, condensed vs CSR vs SciPy (tools/bench/gnn.c). */
sdlk_status bench_gnn(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err);

/* Tile watermark: PSNR/SSIM, detection per attack, false positives, staged detection
 * throughput vs sequential and fixed pipelines (tools/bench/wm.c). */
sdlk_status bench_wm(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err);

/* SuperGen stage 2 on real footage: cache and worker speedups with quality against the
 * uncached output, x2 restoration against bicubic, 4K peak RSS (tools/bench/supergen.c). */
sdlk_status bench_supergen(const bench_options *opt, sdlk_bench_report *report,
                           sdlk_error *err);

/* sdl-serve: SLO attainment and goodput of the tile scheduler vs resolution-grouped and
 * request-level FCFS in simulation from a profile measured in the run, the simulator vs
 * a live run, tiled vs untiled generation quality (tools/bench/serve.c). */
sdlk_status bench_serve(const bench_options *opt, sdlk_bench_report *report, sdlk_error *err);

#endif
