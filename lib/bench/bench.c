#include "bench/bench.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/timer.h"

void sdlk_bench_report_init(sdlk_bench_report *report) { memset(report, 0, sizeof *report); }

void sdlk_bench_report_free(sdlk_bench_report *report)
{
    free(report->results);
    memset(report, 0, sizeof *report);
}

/* Copy src into a fixed buffer, cutting it to fit. */
static void copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void read_cpu_model(char *buf, size_t size)
{
    copy_text(buf, size, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (!colon)
            continue;
        const char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        size_t len = strcspn(value, "\n");
        while (len > 0 && value[len - 1] == ' ')
            len--;
        if (len > 0)
            snprintf(buf, size, "%.*s", (int)len, value);
        break;
    }
    fclose(fp);
}

void sdlk_bench_host_describe(sdlk_bench_host *host, const char *program, int threads)
{
    memset(host, 0, sizeof *host);
    copy_text(host->program, sizeof host->program, program);
    read_cpu_model(host->cpu_model, sizeof host->cpu_model);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    host->cores = cores > 0 ? (int)cores : 1;
    host->threads = threads;
    time_t now = time(NULL);
    struct tm utc;
    if (gmtime_r(&now, &utc))
        strftime(host->date, sizeof host->date, "%Y-%m-%dT%H:%M:%SZ", &utc);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sdlk_median(double *values, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(values, n, sizeof *values, compare_doubles);
    if (n % 2)
        return values[n / 2];
    return 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double sdlk_ks_uniform(double *values, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(values, n, sizeof *values, compare_doubles);
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double above = (double)(i + 1) / (double)n - values[i];
        double below = values[i] - (double)i / (double)n;
        d = above > d ? above : d;
        d = below > d ? below : d;
    }
    return d;
}

static double min_of(const double *values, size_t n)
{
    double m = values[0];
    for (size_t i = 1; i < n; i++)
        if (values[i] < m)
            m = values[i];
    return m;
}

/* Run fn once and store the elapsed seconds; on failure prefix the error with which
 * side of the comparison failed. */
static sdlk_status timed_run(sdlk_bench_fn fn, void *ctx, const char *group, const char *name,
                             const char *side, double *seconds, sdlk_error *err)
{
    uint64_t start = sdlk_now_ns();
    sdlk_status st = fn(ctx, err);
    *seconds = sdlk_seconds_since(start);
    if (st != SDLK_OK) {
        if (err && !err->code)
            sdlk_error_set(err, st, "failed (no detail given)");
        sdlk_error_prefix(err, "%s: %s: %s", group, name, side);
    }
    return st;
}

static sdlk_status report_reserve(sdlk_bench_report *report, sdlk_error *err)
{
    if (report->count < report->capacity)
        return SDLK_OK;
    size_t capacity = report->capacity ? report->capacity * 2 : 16;
    sdlk_bench_result *grown = realloc(report->results, capacity * sizeof *grown);
    if (!grown)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "bench report: out of memory");
    report->results = grown;
    report->capacity = capacity;
    return SDLK_OK;
}

sdlk_status sdlk_bench_compare(sdlk_bench_report *report, const char *group, const char *name,
                               sdlk_bench_fn subject, void *subject_ctx, const char *baseline,
                               sdlk_bench_fn baseline_fn, void *baseline_ctx, double work,
                               const char *unit, double unit_scale, int reps, sdlk_error *err)
{
    if (!report || !group || !name || !baseline || !unit || !subject || !baseline_fn)
        return sdlk_error_set(err, SDLK_ERR_ARG, "bench: missing argument");
    if (reps < 1)
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: %s: reps must be at least 1, not %d",
                              group, name, reps);
    if (!(work >= 0) || !(unit_scale > 0))
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: %s: work must be >= 0 and unit scale > 0", group, name);
    sdlk_status st = report_reserve(report, err);
    if (st != SDLK_OK)
        return st;

    double *subject_s = calloc((size_t)reps, sizeof *subject_s);
    double *baseline_s = calloc((size_t)reps, sizeof *baseline_s);
    if (!subject_s || !baseline_s) {
        free(subject_s);
        free(baseline_s);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: %s: out of memory", group, name);
    }

    double ignored;
    st = timed_run(subject, subject_ctx, group, name, "subject", &ignored, err);
    if (st == SDLK_OK)
        st = timed_run(baseline_fn, baseline_ctx, group, name, "baseline", &ignored, err);
    for (int rep = 0; rep < reps && st == SDLK_OK; rep++) {
        /* Alternate which side goes first so neither always inherits the other's
         * cache and frequency state. */
        if (rep % 2 == 0) {
            st = timed_run(subject, subject_ctx, group, name, "subject", &subject_s[rep], err);
            if (st == SDLK_OK)
                st = timed_run(baseline_fn, baseline_ctx, group, name, "baseline",
                               &baseline_s[rep], err);
        } else {
            st = timed_run(baseline_fn, baseline_ctx, group, name, "baseline", &baseline_s[rep],
                           err);
            if (st == SDLK_OK)
                st = timed_run(subject, subject_ctx, group, name, "subject", &subject_s[rep],
                               err);
        }
    }

    if (st == SDLK_OK) {
        sdlk_bench_result *r = &report->results[report->count++];
        memset(r, 0, sizeof *r);
        copy_text(r->group, sizeof r->group, group);
        copy_text(r->name, sizeof r->name, name);
        copy_text(r->baseline, sizeof r->baseline, baseline);
        copy_text(r->unit, sizeof r->unit, unit);
        r->work = work;
        r->unit_scale = unit_scale;
        r->reps = reps;
        r->subject_min_s = min_of(subject_s, (size_t)reps);
        r->baseline_min_s = min_of(baseline_s, (size_t)reps);
        r->subject_median_s = sdlk_median(subject_s, (size_t)reps);
        r->baseline_median_s = sdlk_median(baseline_s, (size_t)reps);
        if (work > 0 && r->subject_median_s > 0)
            r->subject_rate = work / r->subject_median_s / unit_scale;
        if (work > 0 && r->baseline_median_s > 0)
            r->baseline_rate = work / r->baseline_median_s / unit_scale;
        r->speedup = r->subject_median_s > 0 ? r->baseline_median_s / r->subject_median_s : 0.0;
    }
    free(subject_s);
    free(baseline_s);
    return st;
}

void sdlk_bench_report_note(sdlk_bench_report *report, const char *fmt, ...)
{
    if (!report || report->count == 0)
        return;
    sdlk_bench_result *r = &report->results[report->count - 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof r->note, fmt, ap);
    va_end(ap);
}

/* ---- table ------------------------------------------------------------------- */

enum { COL_GROUP, COL_NAME, COL_RATE, COL_BASELINE, COL_BASE_RATE, COL_SPEEDUP, COL_REPS,
       COL_COUNT };

static const char *const column_titles[COL_COUNT] = {
    "group", "name", "rate", "baseline", "baseline rate", "speedup", "reps"};
/* Numbers are right-aligned, text left-aligned. */
static const int column_right[COL_COUNT] = {0, 0, 1, 0, 1, 1, 1};

static void format_rate(char *buf, size_t size, double rate, const char *unit)
{
    if (rate <= 0)
        snprintf(buf, size, "-");
    else if (rate >= 100)
        snprintf(buf, size, "%.0f %s", rate, unit);
    else if (rate >= 10)
        snprintf(buf, size, "%.1f %s", rate, unit);
    else
        snprintf(buf, size, "%.3g %s", rate, unit);
}

/* The text of cell `col` of result r (name gets a footnote marker when noted). */
static void format_cell(const sdlk_bench_result *r, int col, int note_number, char *buf,
                        size_t size)
{
    switch (col) {
    case COL_GROUP: snprintf(buf, size, "%s", r->group); break;
    case COL_NAME:
        if (note_number > 0)
            snprintf(buf, size, "%s [%d]", r->name, note_number);
        else
            snprintf(buf, size, "%s", r->name);
        break;
    case COL_RATE: format_rate(buf, size, r->subject_rate, r->unit); break;
    case COL_BASELINE: snprintf(buf, size, "%s", r->baseline); break;
    case COL_BASE_RATE: format_rate(buf, size, r->baseline_rate, r->unit); break;
    case COL_SPEEDUP: snprintf(buf, size, "%.2fx", r->speedup); break;
    case COL_REPS: snprintf(buf, size, "%d", r->reps); break;
    default: buf[0] = '\0';
    }
}

static void print_row(FILE *out, char cells[COL_COUNT][192], const int *width)
{
    for (int c = 0; c < COL_COUNT; c++) {
        const char *sep = c + 1 < COL_COUNT ? "  " : "";
        if (c + 1 == COL_COUNT || column_right[c])
            fprintf(out, "%*s%s", width[c], cells[c], sep);
        else
            fprintf(out, "%-*s%s", width[c], cells[c], sep);
    }
    fputc('\n', out);
}

void sdlk_bench_report_print(const sdlk_bench_report *report, FILE *out)
{
    const sdlk_bench_host *h = &report->host;
    if (h->program[0] || h->date[0])
        fprintf(out, "# %s%s%s\n", h->program, h->program[0] && h->date[0] ? "  " : "", h->date);
    fprintf(out, "# cpu: %s, %d cores; threads: %d\n", h->cpu_model[0] ? h->cpu_model : "unknown",
            h->cores, h->threads);
    fprintf(out, "# rate = work / median time of the reps; speedup = baseline median / subject "
                 "median\n");

    int width[COL_COUNT];
    for (int c = 0; c < COL_COUNT; c++)
        width[c] = (int)strlen(column_titles[c]);
    char cells[COL_COUNT][192];
    int notes = 0;
    for (size_t i = 0; i < report->count; i++) {
        const sdlk_bench_result *r = &report->results[i];
        int note_number = r->note[0] ? ++notes : 0;
        for (int c = 0; c < COL_COUNT; c++) {
            format_cell(r, c, note_number, cells[c], sizeof cells[c]);
            int len = (int)strlen(cells[c]);
            if (len > width[c])
                width[c] = len;
        }
    }
    for (int c = 0; c < COL_COUNT; c++)
        snprintf(cells[c], sizeof cells[c], "%s", column_titles[c]);
    print_row(out, cells, width);
    notes = 0;
    for (size_t i = 0; i < report->count; i++) {
        const sdlk_bench_result *r = &report->results[i];
        int note_number = r->note[0] ? ++notes : 0;
        for (int c = 0; c < COL_COUNT; c++)
            format_cell(r, c, note_number, cells[c], sizeof cells[c]);
        print_row(out, cells, width);
    }
    notes = 0;
    for (size_t i = 0; i < report->count; i++)
        if (report->results[i].note[0])
            fprintf(out, "[%d] %s\n", ++notes, report->results[i].note);
}

/* ---- JSON -------------------------------------------------------------------- */

/* A JSON string; bytes that are not valid UTF-8 (a CPU name from a strange kernel)
 * become '?' rather than making jansson drop the value. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char buf[256];
    size_t n = 0;
    for (; s[n] && n + 1 < sizeof buf; n++)
        buf[n] = (unsigned char)s[n] < 0x80 ? s[n] : '?';
    buf[n] = '\0';
    return json_string(buf);
}

/* jansson refuses NaN and infinities; those become null. */
static json_t *json_number(double v)
{
    json_t *j = json_real(v);
    return j ? j : json_null();
}

static json_t *result_json(const sdlk_bench_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "group", json_text(r->group));
    json_object_set_new(o, "name", json_text(r->name));
    json_object_set_new(o, "baseline", json_text(r->baseline));
    json_object_set_new(o, "unit", json_text(r->unit));
    json_object_set_new(o, "work", json_number(r->work));
    json_object_set_new(o, "reps", json_integer(r->reps));
    json_object_set_new(o, "subject_median_s", json_number(r->subject_median_s));
    json_object_set_new(o, "baseline_median_s", json_number(r->baseline_median_s));
    json_object_set_new(o, "subject_min_s", json_number(r->subject_min_s));
    json_object_set_new(o, "baseline_min_s", json_number(r->baseline_min_s));
    json_object_set_new(o, "subject_rate", json_number(r->subject_rate));
    json_object_set_new(o, "baseline_rate", json_number(r->baseline_rate));
    json_object_set_new(o, "speedup", json_number(r->speedup));
    json_object_set_new(o, "note", json_text(r->note));
    return o;
}

void sdlk_bench_report_json(const sdlk_bench_report *report, FILE *out)
{
    const sdlk_bench_host *h = &report->host;
    json_t *doc = json_object();
    json_object_set_new(doc, "program", json_text(h->program));
    json_object_set_new(doc, "date", json_text(h->date));
    json_t *host = json_object();
    json_object_set_new(host, "cpu", json_text(h->cpu_model[0] ? h->cpu_model : "unknown"));
    json_object_set_new(host, "cores", json_integer(h->cores));
    json_object_set_new(doc, "host", host);
    json_object_set_new(doc, "threads", json_integer(h->threads));
    json_t *results = json_array();
    for (size_t i = 0; i < report->count; i++)
        json_array_append_new(results, result_json(&report->results[i]));
    json_object_set_new(doc, "results", results);
    json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    fputc('\n', out);
    json_decref(doc);
}
