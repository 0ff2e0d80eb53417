#include "core/file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int sdlk_path_is_stdio(const char *path) { return path && strcmp(path, "-") == 0; }

const char *sdlk_path_display(const char *path)
{
    return sdlk_path_is_stdio(path) ? "<stdin>" : path;
}

const char *sdlk_path_extension(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t i = 0;
    if (dot && dot != base)
        for (dot++; *dot && i + 1 < size; dot++)
            buf[i++] = (char)tolower((unsigned char)*dot);
    if (size)
        buf[i] = '\0';
    return buf;
}

FILE *sdlk_file_open_read(const char *path, sdlk_error *err)
{
    if (sdlk_path_is_stdio(path))
        return stdin;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        sdlk_error_errno(err, errno, "%s", path);
    return fp;
}

void sdlk_file_close_read(FILE *fp)
{
    if (fp && fp != stdin)
        fclose(fp);
}

sdlk_status sdlk_read_exact(FILE *fp, void *buf, size_t size, const char *name, sdlk_error *err)
{
    size_t got = size ? fread(buf, 1, size, fp) : 0;
    if (got == size)
        return SDLK_OK;
    if (ferror(fp))
        return sdlk_error_errno(err, errno ? errno : EIO, "%s: read failed", name);
    if (got == 0)
        return sdlk_error_set(err, SDLK_ERR_EOF, "%s: end of stream", name);
    return sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: truncated (wanted %zu more bytes, got %zu)",
                          name, size, got);
}

struct heap_buffer {
    void *data;
};

static void free_heap_buffer(void *ctx)
{
    struct heap_buffer *b = ctx;
    free(b->data);
    free(b);
}

sdlk_status sdlk_file_slurp(FILE *fp, const char *name, sdlk_storage **out, sdlk_error *err)
{
    size_t cap = 1 << 16, used = 0;
    uint8_t *data = malloc(cap);
    if (!data)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    for (;;) {
        if (used == cap) {
            if (cap > SIZE_MAX / 2) {
                free(data);
                return sdlk_error_set(err, SDLK_ERR_OVERFLOW, "%s: input too large", name);
            }
            uint8_t *bigger = realloc(data, cap * 2);
            if (!bigger) {
                free(data);
                return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory after %zu bytes",
                                      name, used);
            }
            data = bigger;
            cap *= 2;
        }
        size_t got = fread(data + used, 1, cap - used, fp);
        used += got;
        if (got == 0) {
            if (ferror(fp)) {
                int e = errno ? errno : EIO;
                free(data);
                return sdlk_error_errno(err, e, "%s: read failed", name);
            }
            break;
        }
    }
    struct heap_buffer *holder = malloc(sizeof *holder);
    if (!holder) {
        free(data);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", name);
    }
    holder->data = data;
    *out = sdlk_storage_wrap(data, used, free_heap_buffer, holder, err);
    if (!*out) {
        free_heap_buffer(holder);
        return SDLK_ERR_NOMEM;
    }
    return SDLK_OK;
}

struct mapping {
    void *addr;
    size_t size;
};

static void unmap(void *ctx)
{
    struct mapping *m = ctx;
    munmap(m->addr, m->size);
    free(m);
}

sdlk_status sdlk_file_map(const char *path, sdlk_storage **out, sdlk_error *err)
{
    *out = NULL;
    if (sdlk_path_is_stdio(path))
        return sdlk_file_slurp(stdin, sdlk_path_display(path), out, err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sdlk_error_errno(err, errno, "%s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sdlk_error_errno(err, e, "%s", path);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return sdlk_error_set(err, SDLK_ERR_IO, "%s: is a directory", path);
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        /* FIFO, character device, or an empty/proc file whose size lies: read it. */
        FILE *fp = fdopen(fd, "rb");
        if (!fp) {
            int e = errno;
            close(fd);
            return sdlk_error_errno(err, e, "%s", path);
        }
        sdlk_status s = sdlk_file_slurp(fp, path, out, err);
        fclose(fp);
        return s;
    }
    size_t size = (size_t)st.st_size;
    void *addr = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (addr == MAP_FAILED)
        return sdlk_error_errno(err, e, "%s: cannot map", path);
    struct mapping *m = malloc(sizeof *m);
    if (!m) {
        munmap(addr, size);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", path);
    }
    m->addr = addr;
    m->size = size;
    *out = sdlk_storage_wrap(addr, size, unmap, m, err);
    if (!*out) {
        unmap(m);
        return SDLK_ERR_NOMEM;
    }
    return SDLK_OK;
}

/* ---- atomic output ---------------------------------------------------------- */

sdlk_status sdlk_outfile_open(sdlk_outfile *out, const char *path, sdlk_error *err)
{
    memset(out, 0, sizeof *out);
    out->path = strdup(path);
    if (!out->path)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    if (sdlk_path_is_stdio(path)) {
        out->fp = stdout;
        return SDLK_OK;
    }
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dir_len;
    if (*base == '\0') {
        free(out->path);
        out->path = NULL;
        return sdlk_error_set(err, SDLK_ERR_ARG, "%s: output path names a directory", path);
    }
    size_t tmp_len = dir_len + 1 + strlen(base) + 32;
    out->tmp_path = malloc(tmp_len);
    if (!out->tmp_path) {
        free(out->path);
        out->path = NULL;
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    /* open(O_EXCL, 0666) rather than mkstemp: the kernel applies the umask, as for any
     * file a Unix tool creates, and no process-wide umask() juggling is needed. */
    int fd = -1, e = 0;
    for (unsigned attempt = 0; attempt < 64 && fd < 0; attempt++) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        unsigned tag = (unsigned)now.tv_nsec ^ ((unsigned)getpid() << 12) ^ (attempt * 2654435761u);
        snprintf(out->tmp_path, tmp_len, "%.*s.%s.%08x.tmp", (int)dir_len, path, base, tag);
        fd = open(out->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e = errno;
        if (fd < 0 && e != EEXIST)
            break;
    }
    if (fd < 0) {
        free(out->tmp_path);
        free(out->path);
        memset(out, 0, sizeof *out);
        return sdlk_error_errno(err, e, "%s: cannot create output", path);
    }
    out->fp = fdopen(fd, "wb");
    if (!out->fp) {
        e = errno;
        close(fd);
        unlink(out->tmp_path);
        free(out->tmp_path);
        free(out->path);
        memset(out, 0, sizeof *out);
        return sdlk_error_errno(err, e, "%s: cannot create output", path);
    }
    return SDLK_OK;
}

static void outfile_reset(sdlk_outfile *out)
{
    free(out->path);
    free(out->tmp_path);
    memset(out, 0, sizeof *out);
}

void sdlk_outfile_abort(sdlk_outfile *out)
{
    if (!out->path)
        return;
    if (out->tmp_path) {
        if (out->fp)
            fclose(out->fp);
        unlink(out->tmp_path);
    }
    outfile_reset(out);
}

sdlk_status sdlk_outfile_commit(sdlk_outfile *out, sdlk_error *err)
{
    if (!out->path)
        return sdlk_error_set(err, SDLK_ERR_INTERNAL, "commit of an output that is not open");
    if (!out->tmp_path) { /* stdout */
        errno = 0;
        int failed = fflush(out->fp) != 0 || ferror(out->fp);
        int e = errno ? errno : EIO;
        outfile_reset(out);
        return failed ? sdlk_error_errno(err, e, "<stdout>: write failed") : SDLK_OK;
    }
    errno = 0;
    int failed = fflush(out->fp) != 0 || ferror(out->fp) || fsync(fileno(out->fp)) != 0;
    int e = errno ? errno : EIO;
    if (fclose(out->fp) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    out->fp = NULL;
    if (!failed && rename(out->tmp_path, out->path) != 0) {
        failed = 1;
        e = errno;
    }
    if (failed) {
        sdlk_error_errno(err, e, "%s: write failed", out->path);
        unlink(out->tmp_path);
        outfile_reset(out);
        return SDLK_ERR_IO;
    }
    outfile_reset(out);
    return SDLK_OK;
}

sdlk_status sdlk_write_file(const char *path, const void *data, size_t size, sdlk_error *err)
{
    sdlk_outfile out;
    sdlk_status st = sdlk_outfile_open(&out, path, err);
    if (st)
        return st;
    if (size && fwrite(data, 1, size, out.fp) != size) {
        int e = errno;
        sdlk_outfile_abort(&out);
        return sdlk_error_errno(err, e, "%s: write failed", path);
    }
    return sdlk_outfile_commit(&out, err);
}
