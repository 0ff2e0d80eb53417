/* bench.h -- measuring a subject against a baseline in the same run.
 *
 * Contract
 *   Every figure sdl-bench prints is a ratio to a named baseline measured in the same
 *   process: sdlk_bench_compare() runs subject and baseline alternately (one untimed
 *   warm-up each, then `reps` timed runs each, interleaved so that machine noise hits
 *   both alike; the order within a pair alternates, subject first on even reps, baseline
 *   first on odd ones, so neither always runs in the other's wake), and reports the
 *   median time of each, the throughput (work / median time) and speedup = baseline
 *   median / subject median. Results are collected in an sdlk_bench_report, together
 *   with a description of the machine and run (sdlk_bench_host), that prints as an
 *   aligned table or as JSON. The library prints only to the FILE* it is given.
 *   Timing uses CLOCK_MONOTONIC (core/timer.h); nothing here asserts how fast anything
 *   must be.
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
    char note[320];        /* how it was measured, quality figures, targets; "" if none */
    double work;           /* units of work per run (bytes, flops...) in `unit`'s base */
    double unit_scale;     /* divide work/s by this to print in `unit` (1e6 for MB/s) */
    int reps;
    double subject_median_s, baseline_median_s;
    double subject_min_s, baseline_min_s;
    double subject_rate, baseline_rate; /* in `unit`; 0 when work is 0 */
    double speedup;        /* baseline_median_s / subject_median_s */
} sdlk_bench_result;

/* Where and when a report was measured: printed in the table header and the JSON. */
typedef struct sdlk_bench_host {
    char program[64];   /* what produced the report, e.g. "sdl-bench 0.1.0"; "" if unset */
    char cpu_model[128];/* /proc/cpuinfo "model name" (or "unknown") */
    int cores;          /* online CPUs */
    int threads;        /* threads the measured code was allowed to use */
    char date[32];      /* start of the run, UTC, ISO 8601 ("2025-01-31T12:00:00Z") */
} sdlk_bench_host;

typedef struct sdlk_bench_report {
    sdlk_bench_host host;
    sdlk_bench_result *results;
    size_t count, capacity;
} sdlk_bench_report;

/* An empty report; its host is zeroed (fill it with sdlk_bench_host_describe). */
void sdlk_bench_report_init(sdlk_bench_report *report);
void sdlk_bench_report_free(sdlk_bench_report *report);

/* Fill `host` for this machine and moment: CPU model, online cores, the current UTC
 * date; `program` (may be NULL) and `threads` are copied from the caller. */
void sdlk_bench_host_describe(sdlk_bench_host *host, const char *program, int threads);

/* Measure and append a result to `report`. reps >= 1; work >= 0; unit_scale > 0; both
 * functions non-NULL (else SDLK_ERR_ARG). An error from either function stops the
 * measurement, is returned prefixed with "<group>: <name>: subject|baseline", and
 * leaves the report unchanged. */
sdlk_status sdlk_bench_compare(sdlk_bench_report *report, const char *group, const char *name,
                               sdlk_bench_fn subject, void *subject_ctx, const char *baseline,
                               sdlk_bench_fn baseline_fn, void *baseline_ctx, double work,
                               const char *unit, double unit_scale, int reps, sdlk_error *err);

/* Attach a note on how the last result was measured (e.g. "both include fsync"); a
 * no-op on an empty report. Long notes are cut to fit. */
void sdlk_bench_report_note(sdlk_bench_report *report, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Median of n values (the array is reordered); the mean of the two middle values for
 * even n; 0 for n == 0. */
double sdlk_median(double *values, size_t n);

/* Kolmogorov-Smirnov distance sup |F_n(x) - x| of n values (reordered: sorted) from the
 * uniform distribution on [0, 1], e.g. of p-values that should be uniform; 1.36 / sqrt(n)
 * is its 5 % critical value, 1.63 / sqrt(n) the 1 %. 0 for n == 0. O(n log n). */
double sdlk_ks_uniform(double *values, size_t n);

/* Header lines ("# ..." with program, date, CPU, cores, threads), then one row per
 * result with aligned columns: group, name, subject rate, baseline, baseline rate,
 * speedup ("1.23x"), reps; notes follow the table as numbered footnotes. */
void sdlk_bench_report_print(const sdlk_bench_report *report, FILE *out);
/* One JSON document: {"program", "date", "host": {"cpu", "cores"}, "threads",
 * "results": [{"group", "name", "baseline", "unit", "work", "reps",
 * "subject_median_s", "baseline_median_s", "subject_min_s", "baseline_min_s",
 * "subject_rate", "baseline_rate", "speedup", "note"}]} followed by a newline. */
void sdlk_bench_report_json(const sdlk_bench_report *report, FILE *out);

#endif
