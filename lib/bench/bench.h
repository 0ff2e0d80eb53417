/* bench.h -- measuring a subject against a baseline in the same run.
 *
 * Contract
 *   Every figure sdl-bench prints is a ratio to a named baseline measured in the same
 *   process: sdlk_bench_compare() runs subject and baseline alternately (one untimed
 *   warm-up each, then `reps` timed runs each, interleaved so that machine noise hits
 *   both alike), and reports the median time of each, the throughput (work / median
 *   time) and speedup = baseline median / subject median. Results are collected in an
 *   sdlk_bench_report that prints as an aligned table or as JSON. The library prints
 *   only to the FILE* it is given.
 */
#ifndef SDLK_BENCH_BENCH_H
#define SDLK_BENCH_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include "core/error.h"

/* One timed run; returns SDLK_OK or an error that aborts the measurement. */
typedef sdlk_status (*sdlk_bench_fn)(void *ctx, sdlk_error *err);

typedef struct sdlk_bench_result {
    char group[32];        /* benchmark family, e.g. "io" */
    char name[96];         /* what was measured, e.g. "npy read 64 MiB f32" */
    char baseline[96];     /* what it was compared with, e.g. "fread of the same bytes" */
    char unit[16];         /* throughput unit, e.g. "MB/s", "GFLOP/s" */
    double work;           /* units of work per run (bytes, flops...) in `unit`'s base */
    double unit_scale;     /* divide work/s by this to print in `unit` (1e6 for MB/s) */
    int reps;
    double subject_median_s, baseline_median_s;
    double subject_min_s, baseline_min_s;
    double subject_rate, baseline_rate; /* in `unit` */
    double speedup;        /* baseline_median_s / subject_median_s */
} sdlk_bench_result;

typedef struct sdlk_bench_report {
    sdlk_bench_result *results;
    size_t count, capacity;
} sdlk_bench_report;

void sdlk_bench_report_init(sdlk_bench_report *report);
void sdlk_bench_report_free(sdlk_bench_report *report);

/* Measure and append a result to `report`. */
sdlk_status sdlk_bench_compare(sdlk_bench_report *report, const char *group, const char *name,
                               sdlk_bench_fn subject, void *subject_ctx, const char *baseline,
                               sdlk_bench_fn baseline_fn, void *baseline_ctx, double work,
                               const char *unit, double unit_scale, int reps, sdlk_error *err);

/* Median of n values (the array is reordered). */
double sdlk_median(double *values, size_t n);

void sdlk_bench_report_print(const sdlk_bench_report *report, FILE *out);
void sdlk_bench_report_json(const sdlk_bench_report *report, FILE *out);

#endif
