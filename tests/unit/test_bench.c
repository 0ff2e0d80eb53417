/* Unit tests of lib/bench: medians, interleaving, speedup as a ratio of medians, error
 * propagation, table and JSON output. Timing is checked only within wide bands. */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "core/error.h"
#include "core/timer.h"
#include "unit.h"

START_TEST(median_odd_even_and_unsorted)
{
    double odd[] = {5.0, 1.0, 3.0};
    ck_assert_double_eq(sdlk_median(odd, 3), 3.0);
    double even[] = {4.0, 1.0, 3.0, 2.0};
    ck_assert_double_eq(sdlk_median(even, 4), 2.5);
    double one[] = {7.0};
    ck_assert_double_eq(sdlk_median(one, 1), 7.0);
    double dupes[] = {2.0, 2.0, 9.0, 2.0, -1.0};
    ck_assert_double_eq(sdlk_median(dupes, 5), 2.0);
    ck_assert_double_eq(sdlk_median(NULL, 0), 0.0);
}
END_TEST

/* KS distance from uniform against hand values: one point at 0.5 is 0.5 away; evenly
 * spaced midpoints (i + 1/2) / n are 1 / (2 n) away whatever their order. */
START_TEST(ks_uniform_hand_values)
{
    double one[] = {0.5};
    ck_assert_double_eq_tol(sdlk_ks_uniform(one, 1), 0.5, 1e-15);
    double two[] = {0.75, 0.25};
    ck_assert_double_eq_tol(sdlk_ks_uniform(two, 2), 0.25, 1e-15);
    double mid[10];
    for (int i = 0; i < 10; i++)
        mid[i] = ((9 - i) + 0.5) / 10.0;
    ck_assert_double_eq_tol(sdlk_ks_uniform(mid, 10), 0.05, 1e-15);
    double low[] = {0.0, 0.0, 0.0, 0.0}; /* all at 0: F jumps to 1 there */
    ck_assert_double_eq_tol(sdlk_ks_uniform(low, 4), 1.0, 1e-15);
    ck_assert_double_eq(sdlk_ks_uniform(NULL, 0), 0.0);
}
END_TEST

/* Both sides append their letter to one shared log, so the order of calls is visible. */
typedef struct call_log {
    char calls[256];
    int count;
    int fail_at; /* fail on this call number (1-based) of this side; 0 = never */
    int side_calls[2];
} call_log;

typedef struct side {
    call_log *log;
    int index;   /* 0 = subject, 1 = baseline */
    char letter;
} side;

static sdlk_status record_call(void *ctx, sdlk_error *err)
{
    side *s = ctx;
    call_log *log = s->log;
    if (log->count + 1 < (int)sizeof log->calls)
        log->calls[log->count++] = s->letter;
    int n = ++log->side_calls[s->index];
    if (s->index == 0 && log->fail_at && n == log->fail_at)
        return sdlk_error_set(err, SDLK_ERR_IO, "disk on fire at call %d", n);
    return SDLK_OK;
}

START_TEST(runs_are_interleaved_with_one_warmup_each)
{
    sdlk_bench_report report;
    sdlk_bench_report_init(&report);
    call_log log = {0};
    side subject = {&log, 0, 'S'}, baseline = {&log, 1, 'B'};
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_bench_compare(&report, "t", "interleave", record_call, &subject,
                                        "other", record_call, &baseline, 100, "B/s", 1, 5, &err),
                     SDLK_OK);
    /* one untimed warm-up each + 5 timed each */
    ck_assert_int_eq(log.side_calls[0], 6);
    ck_assert_int_eq(log.side_calls[1], 6);
    ck_assert_int_eq(log.count, 12);
    /* interleaved: never three calls of the same side in a row, and every pair of
     * consecutive calls (warm-up pair, then rep pairs) has one of each */
    for (int i = 0; i + 1 < log.count; i += 2)
        ck_assert_msg(log.calls[i] != log.calls[i + 1], "pair %d not interleaved: %s", i / 2,
                      log.calls);
    for (int i = 0; i + 2 < log.count; i++)
        ck_assert(!(log.calls[i] == log.calls[i + 1] && log.calls[i] == log.calls[i + 2]));
    /* the order within a pair alternates between reps */
    ck_assert_ptr_nonnull(strstr(log.calls, "SBBS"));
    ck_assert_uint_eq(report.count, 1);
    ck_assert_str_eq(report.results[0].name, "interleave");
    ck_assert_str_eq(report.results[0].baseline, "other");
    ck_assert_int_eq(report.results[0].reps, 5);
    sdlk_bench_report_free(&report);
}
END_TEST

/* Spin for a fixed number of iterations of a loop the compiler cannot remove. */
typedef struct spin {
    uint64_t iterations;
} spin;

static sdlk_status busy_loop(void *ctx, sdlk_error *err)
{
    const spin *s = ctx;
    volatile uint64_t acc = 0;
    for (uint64_t i = 0; i < s->iterations; i++)
        acc += i ^ (acc >> 3);
    return SDLK_OK;
}

/* Seconds of the fastest of three runs (calibration must not stop early because one run
 * was preempted). */
static double fastest_of_three(spin *s)
{
    double best = 1e30;
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = sdlk_now_ns();
        busy_loop(s, NULL);
        double t = sdlk_seconds_since(t0);
        if (t < best)
            best = t;
    }
    return best;
}

START_TEST(speedup_is_ratio_of_medians)
{
    /* Calibrate: an iteration count that takes at least ~3 ms even when undisturbed. */
    spin fast = {1u << 16};
    while (fastest_of_three(&fast) < 3e-3 && fast.iterations < (1ull << 34))
        fast.iterations *= 2;
    spin slow = {fast.iterations * 4};
    sdlk_bench_report report;
    sdlk_bench_report_init(&report);
    sdlk_error err = {0};
    /* Subject is the fast loop, baseline the 4x longer one: speedup about 4. A shared CI
     * machine can disturb one measurement, so up to three attempts; one inside the wide
     * band [2, 8] passes. */
    double speedup = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        ck_assert_int_eq(sdlk_bench_compare(&report, "t", "spin", busy_loop, &fast, "4x spin",
                                            busy_loop, &slow, (double)fast.iterations, "it/s",
                                            1e6, 9, &err),
                         SDLK_OK);
        const sdlk_bench_result *r = &report.results[report.count - 1];
        ck_assert_double_eq_tol(r->speedup, r->baseline_median_s / r->subject_median_s, 1e-12);
        ck_assert(r->subject_min_s <= r->subject_median_s);
        ck_assert(r->baseline_min_s <= r->baseline_median_s);
        ck_assert_double_eq_tol(r->subject_rate,
                                (double)fast.iterations / r->subject_median_s / 1e6, 1e-6);
        ck_assert_double_eq_tol(r->baseline_rate,
                                (double)fast.iterations / r->baseline_median_s / 1e6, 1e-6);
        speedup = r->speedup;
        if (speedup > 2.0 && speedup < 8.0)
            break;
    }
    ck_assert_msg(speedup > 2.0 && speedup < 8.0, "speedup %g outside [2, 8]", speedup);
    /* reversed roles: speedup about 1/4 */
    double reversed = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        ck_assert_int_eq(sdlk_bench_compare(&report, "t", "spin reversed", busy_loop, &slow,
                                            "fast spin", busy_loop, &fast, 1, "it/s", 1, 9,
                                            &err),
                         SDLK_OK);
        reversed = report.results[report.count - 1].speedup;
        if (reversed > 1.0 / 8 && reversed < 0.5)
            break;
    }
    ck_assert_msg(reversed > 1.0 / 8 && reversed < 0.5, "reversed speedup %g", reversed);
    sdlk_bench_report_free(&report);
}
END_TEST

START_TEST(errors_propagate_and_leave_report_unchanged)
{
    sdlk_bench_report report;
    sdlk_bench_report_init(&report);
    call_log log = {0};
    log.fail_at = 3; /* warm-up, rep 0, then fail */
    side subject = {&log, 0, 'S'}, baseline = {&log, 1, 'B'};
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_bench_compare(&report, "io", "broken", record_call, &subject, "ok",
                                        record_call, &baseline, 1, "B/s", 1, 7, &err),
                     SDLK_ERR_IO);
    ck_assert_int_eq(err.code, SDLK_ERR_IO);
    ck_assert_msg(strstr(err.msg, "io: broken: subject") && strstr(err.msg, "disk on fire"),
                  "message: %s", err.msg);
    ck_assert_uint_eq(report.count, 0);
    ck_assert_int_eq(log.side_calls[0], 3); /* stopped at the failure */

    /* invalid arguments are usage errors */
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_bench_compare(&report, "io", "x", record_call, &subject, "ok",
                                        record_call, &baseline, 1, "B/s", 1, 0, &err),
                     SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_bench_compare(&report, "io", "x", NULL, NULL, "ok", record_call,
                                        &baseline, 1, "B/s", 1, 3, &err),
                     SDLK_ERR_ARG);
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_bench_compare(&report, "io", "x", record_call, &subject, "ok",
                                        record_call, &baseline, 1, "B/s", 0, 3, &err),
                     SDLK_ERR_ARG);
    ck_assert_uint_eq(report.count, 0);
    sdlk_bench_report_free(&report);
}
END_TEST

static sdlk_status nothing(void *ctx, sdlk_error *err) { return SDLK_OK; }

/* Read everything written to a FILE* opened with open_memstream. */
static char *capture_print(const sdlk_bench_report *report, int json)
{
    char *text = NULL;
    size_t size = 0;
    FILE *fp = open_memstream(&text, &size);
    ck_assert_ptr_nonnull(fp);
    if (json)
        sdlk_bench_report_json(report, fp);
    else
        sdlk_bench_report_print(report, fp);
    fclose(fp);
    return text;
}

START_TEST(table_and_json_hold_every_result)
{
    sdlk_bench_report report;
    sdlk_bench_report_init(&report);
    sdlk_bench_host_describe(&report.host, "test_bench 1.0", 3);
    ck_assert_int_ge(report.host.cores, 1);
    ck_assert_int_eq(report.host.threads, 3);
    ck_assert_uint_eq(strlen(report.host.date), 20);
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_bench_compare(&report, "io", "a \"quoted\" name", nothing, NULL,
                                        "fread", nothing, NULL, 1e6, "MB/s", 1e6, 3, &err),
                     SDLK_OK);
    sdlk_bench_report_note(&report, "both include %s", "fsync");
    ck_assert_int_eq(sdlk_bench_compare(&report, "io", "second", nothing, NULL,
                                        "a much longer baseline name", nothing, NULL, 0, "MB/s",
                                        1e6, 1, &err),
                     SDLK_OK);

    char *table = capture_print(&report, 0);
    ck_assert_ptr_nonnull(strstr(table, "test_bench 1.0"));
    ck_assert_ptr_nonnull(strstr(table, "threads: 3"));
    ck_assert_ptr_nonnull(strstr(table, "a \"quoted\" name [1]"));
    ck_assert_ptr_nonnull(strstr(table, "[1] both include fsync"));
    ck_assert_ptr_nonnull(strstr(table, "a much longer baseline name"));
    /* aligned: the header and both rows put "speedup"'s column at the same end offset */
    char *header = strstr(table, "group");
    ck_assert_ptr_nonnull(header);
    size_t header_len = strcspn(header, "\n");
    char *row1 = header + header_len + 1;
    size_t row1_len = strcspn(row1, "\n");
    char *row2 = row1 + row1_len + 1;
    ck_assert_uint_eq(row1_len, header_len);
    ck_assert_uint_eq(strcspn(row2, "\n"), header_len);
    free(table);

    char *text = capture_print(&report, 1);
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    ck_assert_msg(doc != NULL, "invalid JSON: %s\n%s", jerr.text, text);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "program")), "test_bench 1.0");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "threads")), 3);
    ck_assert(json_is_string(json_object_get(json_object_get(doc, "host"), "cpu")));
    json_t *results = json_object_get(doc, "results");
    ck_assert_uint_eq(json_array_size(results), 2);
    json_t *first = json_array_get(results, 0);
    ck_assert_str_eq(json_string_value(json_object_get(first, "name")), "a \"quoted\" name");
    ck_assert_str_eq(json_string_value(json_object_get(first, "baseline")), "fread");
    ck_assert_str_eq(json_string_value(json_object_get(first, "note")), "both include fsync");
    ck_assert(json_is_number(json_object_get(first, "speedup")));
    ck_assert_int_eq(json_integer_value(json_object_get(first, "reps")), 3);
    json_decref(doc);
    free(text);
    sdlk_bench_report_free(&report);
}
END_TEST

int main(void)
{
    return UNIT_RUN("bench",
                    median_odd_even_and_unsorted, ks_uniform_hand_values,
                    runs_are_interleaved_with_one_warmup_each,
                    speedup_is_ratio_of_medians,
                    errors_propagate_and_leave_report_unchanged,
                    table_and_json_hold_every_result);
}
