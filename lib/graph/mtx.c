/* mtx.c -- streaming Matrix Market reader and the shared line reader. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "graph/graph.h"
#include "graph/graph_internal.h"

/* ---- line reader ------------------------------------------------------------------ */

sdlk_status sdlk_line_reader_open(sdlk_line_reader *lr, const char *path, sdlk_error *err)
{
    memset(lr, 0, sizeof(*lr));
    lr->name = path;
    if (strcmp(path, "-") == 0) {
        int fd = dup(STDIN_FILENO);
        lr->gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
        if (!lr->gz && fd >= 0)
            close(fd);
    } else {
        lr->gz = gzopen(path, "rb");
    }
    if (!lr->gz)
        return errno ? sdlk_error_errno(err, errno, "%s", path)
                     : sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: cannot open", path);
    gzbuffer(lr->gz, 1 << 17); /* fewer, larger reads and inflate calls */
    lr->capacity = 256;
    lr->line = malloc(lr->capacity);
    if (!lr->line) {
        gzclose(lr->gz);
        lr->gz = NULL;
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    }
    return SDLK_OK;
}

sdlk_status sdlk_line_reader_next(sdlk_line_reader *lr, sdlk_error *err)
{
    lr->length = 0;
    lr->line[0] = '\0';
    for (;;) {
        if (lr->capacity - lr->length < 2) {
            if (lr->capacity > ((size_t)1 << 30))
                return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:%lld: line longer than 1 GiB",
                                      lr->name, (long long)lr->line_number + 1);
            char *grown = realloc(lr->line, lr->capacity * 2);
            if (!grown)
                return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", lr->name);
            lr->line = grown;
            lr->capacity *= 2;
        }
        char *chunk = lr->line + lr->length;
        if (!gzgets(lr->gz, chunk, (int)(lr->capacity - lr->length > INT_MAX
                                             ? INT_MAX
                                             : lr->capacity - lr->length))) {
            int zerr = Z_OK;
            const char *zmsg = gzerror(lr->gz, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END)
                return sdlk_error_set(err, zerr == Z_ERRNO ? SDLK_ERR_IO : SDLK_ERR_FORMAT,
                                      "%s:%lld: read failed: %s", lr->name,
                                      (long long)lr->line_number + 1,
                                      zerr == Z_ERRNO ? strerror(errno) : zmsg);
            if (lr->length == 0)
                return SDLK_ERR_EOF;
            break; /* last line without a newline */
        }
        size_t got = strlen(chunk);
        lr->length += got;
        if (lr->length > 0 && lr->line[lr->length - 1] == '\n')
            break;
        if (gzeof(lr->gz))
            break;
    }
    while (lr->length > 0 && (lr->line[lr->length - 1] == '\n' || lr->line[lr->length - 1] == '\r'))
        lr->line[--lr->length] = '\0';
    lr->line_number++;
    return SDLK_OK;
}

void sdlk_line_reader_close(sdlk_line_reader *lr)
{
    if (lr->gz)
        gzclose(lr->gz);
    free(lr->line);
    memset(lr, 0, sizeof(*lr));
}

static int ends_token(char c)
{
    return c == '\0' || c == ' ' || c == '\t' || c == '\r';
}

int sdlk_parse_int64(const char **p, int64_t *out)
{
    const char *s = sdlk_skip_blanks(*p);
    int negative = 0;
    if (*s == '-' || *s == '+')
        negative = *s++ == '-';
    if (*s < '0' || *s > '9')
        return 0;
    uint64_t value = 0;
    while (*s >= '0' && *s <= '9') {
        uint64_t digit = (uint64_t)(*s++ - '0');
        if (value > (UINT64_C(1) << 63) / 10 ||
            value * 10 + digit > (UINT64_C(1) << 63) - (negative ? 0 : 1))
            return 0;
        value = value * 10 + digit;
    }
    if (!ends_token(*s))
        return 0;
    *out = negative ? (int64_t)(0 - value) : (int64_t)value;
    *p = s;
    return 1;
}

int sdlk_parse_double(const char **p, double *out)
{
    const char *s = sdlk_skip_blanks(*p);
    char *end;
    if (*s == '\0')
        return 0;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || !ends_token(*end) || errno == ERANGE || !isfinite(v))
        return 0;
    *out = v;
    *p = end;
    return 1;
}

int sdlk_parse_f32(const char **p, float *out)
{
    const char *start = *p;
    double v;
    if (!sdlk_parse_double(p, &v))
        return 0;
    if (fabs(v) > FLT_MAX) { /* finite as a double, infinite as an edge value */
        *p = start;
        return 0;
    }
    *out = (float)v;
    return 1;
}

/* ---- Matrix Market ----------------------------------------------------------------- */

enum { FIELD_PATTERN, FIELD_REAL, FIELD_INTEGER };
enum { SYM_GENERAL, SYM_SYMMETRIC, SYM_SKEW };

static int line_is_blank(const char *s)
{
    return *sdlk_skip_blanks(s) == '\0';
}

/* "%%MatrixMarket matrix <format> <field> <symmetry>" (case-insensitive). */
static sdlk_status parse_banner(const sdlk_line_reader *lr, sdlk_mtx_info *info, sdlk_error *err)
{
    char words[5][32];
    int n = sscanf(lr->line, "%31s %31s %31s %31s %31s", words[0], words[1], words[2],
                   words[3], words[4]);
    if (n < 1 || strcasecmp(words[0], "%%MatrixMarket") != 0)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s:1: not a Matrix Market file (no %%%%MatrixMarket banner)",
                              lr->name);
    if (n != 5)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s:1: banner needs 5 words (%%%%MatrixMarket matrix format field "
                              "symmetry), found %d",
                              lr->name, n);
    if (strcasecmp(words[1], "matrix") != 0)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s:1: object '%s' is not 'matrix'",
                              lr->name, words[1]);
    if (strcasecmp(words[2], "coordinate") == 0)
        info->is_array = 0;
    else if (strcasecmp(words[2], "array") == 0)
        info->is_array = 1;
    else
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s:1: format '%s' is neither 'coordinate' nor 'array'", lr->name,
                              words[2]);
    if (strcasecmp(words[3], "pattern") == 0)
        info->field = FIELD_PATTERN;
    else if (strcasecmp(words[3], "real") == 0 || strcasecmp(words[3], "double") == 0)
        info->field = FIELD_REAL;
    else if (strcasecmp(words[3], "integer") == 0)
        info->field = FIELD_INTEGER;
    else if (strcasecmp(words[3], "complex") == 0)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED, "%s:1: complex matrices are not supported",
                              lr->name);
    else
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:1: unknown field '%s'", lr->name,
                              words[3]);
    if (strcasecmp(words[4], "general") == 0)
        info->symmetry = SYM_GENERAL;
    else if (strcasecmp(words[4], "symmetric") == 0)
        info->symmetry = SYM_SYMMETRIC;
    else if (strcasecmp(words[4], "skew-symmetric") == 0)
        info->symmetry = SYM_SKEW;
    else if (strcasecmp(words[4], "hermitian") == 0)
        return sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                              "%s:1: hermitian matrices are not supported", lr->name);
    else
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:1: unknown symmetry '%s'", lr->name,
                              words[4]);
    if (info->is_array && info->field == FIELD_PATTERN)
        return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:1: 'array' format cannot be 'pattern'",
                              lr->name);
    return SDLK_OK;
}

/* Next line that is neither a comment nor blank; SDLK_ERR_EOF at the end. */
static sdlk_status next_data_line(sdlk_line_reader *lr, sdlk_error *err)
{
    for (;;) {
        sdlk_status st = sdlk_line_reader_next(lr, err);
        if (st)
            return st;
        const char *s = sdlk_skip_blanks(lr->line);
        if (*s != '%' && *s != '\0')
            return SDLK_OK;
    }
}

/* Store entry (row, col, value) (0-based) and its mirror for symmetric storage. */
static sdlk_status store_entry(sdlk_coo *out, const sdlk_mtx_info *info, int64_t row, int64_t col,
                               float value, sdlk_error *err)
{
    sdlk_status st = sdlk_coo_push(out, row, col, value, err);
    if (st == SDLK_OK && info->symmetry != SYM_GENERAL && row != col)
        st = sdlk_coo_push(out, col, row, info->symmetry == SYM_SKEW ? -value : value, err);
    return st;
}

/* Parse the value field of an entry at *p into *value according to the field type. */
static int parse_value(const char **p, int field, float *value)
{
    if (field == FIELD_INTEGER) {
        int64_t v;
        if (!sdlk_parse_int64(p, &v))
            return 0;
        *value = (float)v;
        return 1;
    }
    return sdlk_parse_f32(p, value);
}

static sdlk_status read_coordinate(sdlk_line_reader *lr, const sdlk_mtx_info *info,
                                   sdlk_coo *out, sdlk_error *err)
{
    const char *kind = info->field == FIELD_PATTERN ? "row col" : "row col value";
    for (int64_t k = 0; k < info->entries; k++) {
        sdlk_status st = next_data_line(lr, err);
        if (st == SDLK_ERR_EOF)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s:%lld: file ends after %lld of the %lld entries the header "
                                  "announces",
                                  lr->name, (long long)lr->line_number, (long long)k,
                                  (long long)info->entries);
        if (st)
            return st;
        const char *p = lr->line;
        int64_t row, col;
        float value = 1.0f;
        if (!sdlk_parse_int64(&p, &row) || !sdlk_parse_int64(&p, &col) ||
            (info->field != FIELD_PATTERN && !parse_value(&p, info->field, &value)))
            return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:%lld: expected '%s', got '%.60s'",
                                  lr->name, (long long)lr->line_number, kind, lr->line);
        if (!line_is_blank(p))
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s:%lld: unexpected text after '%s': '%.40s'", lr->name,
                                  (long long)lr->line_number, kind, sdlk_skip_blanks(p));
        if (row < 1 || row > out->rows)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s:%lld: row index %lld out of range 1..%lld", lr->name,
                                  (long long)lr->line_number, (long long)row,
                                  (long long)out->rows);
        if (col < 1 || col > out->cols)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s:%lld: column index %lld out of range 1..%lld", lr->name,
                                  (long long)lr->line_number, (long long)col,
                                  (long long)out->cols);
        if (info->symmetry == SYM_SKEW && row == col)
            return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                  "%s:%lld: diagonal entry (%lld, %lld) in a skew-symmetric matrix",
                                  lr->name, (long long)lr->line_number, (long long)row,
                                  (long long)col);
        if ((st = store_entry(out, info, row - 1, col - 1, value, err)))
            return st;
    }
    return SDLK_OK;
}

/* Dense column-major values; symmetric: lower triangle with diagonal, skew: without. */
static sdlk_status read_array(sdlk_line_reader *lr, const sdlk_mtx_info *info, sdlk_coo *out,
                              sdlk_error *err)
{
    int64_t done = 0;
    for (int64_t col = 0; col < out->cols; col++) {
        int64_t first_row = info->symmetry == SYM_GENERAL ? 0
                            : info->symmetry == SYM_SYMMETRIC ? col
                                                              : col + 1;
        for (int64_t row = first_row; row < out->rows; row++) {
            sdlk_status st = next_data_line(lr, err);
            if (st == SDLK_ERR_EOF)
                return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                      "%s:%lld: file ends after %lld of the %lld values the "
                                      "header announces",
                                      lr->name, (long long)lr->line_number, (long long)done,
                                      (long long)info->entries);
            if (st)
                return st;
            const char *p = lr->line;
            float value;
            if (!parse_value(&p, info->field, &value) || !line_is_blank(p))
                return sdlk_error_set(err, SDLK_ERR_FORMAT,
                                      "%s:%lld: expected one %s value, got '%.60s'", lr->name,
                                      (long long)lr->line_number,
                                      info->field == FIELD_INTEGER ? "integer" : "real", lr->line);
            done++;
            if (value != 0.0f && (st = store_entry(out, info, row, col, value, err)))
                return st;
        }
    }
    return SDLK_OK;
}

sdlk_status sdlk_mtx_read(const char *path, int require_square, sdlk_coo *out,
                          sdlk_mtx_info *info_out, sdlk_error *err)
{
    sdlk_line_reader lr;
    sdlk_mtx_info info = {0};
    sdlk_status st = sdlk_line_reader_open(&lr, path, err);
    if (st)
        return st;
    sdlk_coo_free(out);
    st = sdlk_line_reader_next(&lr, err);
    if (st == SDLK_ERR_EOF)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: empty file", path);
    if (st == SDLK_OK)
        st = parse_banner(&lr, &info, err);
    if (st == SDLK_OK) {
        st = next_data_line(&lr, err);
        if (st == SDLK_ERR_EOF)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s:%lld: size line missing", path,
                                (long long)lr.line_number);
    }
    int64_t rows = 0, cols = 0, entries = 0;
    if (st == SDLK_OK) {
        const char *p = lr.line;
        int ok = sdlk_parse_int64(&p, &rows) && sdlk_parse_int64(&p, &cols) &&
                 (info.is_array || sdlk_parse_int64(&p, &entries)) && line_is_blank(p);
        if (!ok || rows < 0 || cols < 0 || entries < 0)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s:%lld: size line must be '%s' with non-negative integers, "
                                "got '%.60s'",
                                path, (long long)lr.line_number,
                                info.is_array ? "rows cols" : "rows cols entries", lr.line);
    }
    if (st == SDLK_OK && (rows != cols) && (require_square || info.symmetry != SYM_GENERAL))
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s:%lld: matrix is %lld x %lld, a square %s is required", path,
                            (long long)lr.line_number, (long long)rows, (long long)cols,
                            info.symmetry != SYM_GENERAL ? "symmetric matrix" : "adjacency");
    if (st == SDLK_OK && (rows > INT32_MAX || cols > INT32_MAX))
        st = sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                            "%s:%lld: %lld x %lld: more than 2^31-1 rows or columns is not "
                            "supported",
                            path, (long long)lr.line_number, (long long)rows, (long long)cols);
    if (st == SDLK_OK && info.is_array) {
        int64_t n = rows;
        entries = info.symmetry == SYM_GENERAL   ? rows * cols
                  : info.symmetry == SYM_SYMMETRIC ? n * (n + 1) / 2
                                                   : n * (n - 1) / 2;
    }
    info.entries = entries;
    if (st == SDLK_OK) {
        out->rows = rows;
        out->cols = cols;
        /* the header may lie: reserve at most 2^24 entries up front, grow after that */
        int64_t expect = info.is_array ? 1024 : entries * (info.symmetry ? 2 : 1);
        if (expect > (1 << 24))
            expect = 1 << 24;
        st = sdlk_coo_reserve(out, expect, info.field != FIELD_PATTERN, err);
    }
    if (st == SDLK_OK)
        st = info.is_array ? read_array(&lr, &info, out, err)
                           : read_coordinate(&lr, &info, out, err);
    if (st == SDLK_OK) {
        st = next_data_line(&lr, err);
        if (st == SDLK_OK)
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s:%lld: more entries than the %lld the header announces", path,
                                (long long)lr.line_number, (long long)entries);
        else if (st == SDLK_ERR_EOF)
            st = SDLK_OK;
    }
    sdlk_line_reader_close(&lr);
    if (st) {
        sdlk_coo_free(out);
        return st;
    }
    if (info_out)
        *info_out = info;
    return SDLK_OK;
}
