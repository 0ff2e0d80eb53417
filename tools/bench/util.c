/* util.c -- helpers every benchmark family may use (see bench_families.h). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_families.h"

void bench_log(const bench_options *opt, const char *family, const char *fmt, ...)
{
    if (!opt->log)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(opt->log, "sdl-bench: %s: ", family);
    vfprintf(opt->log, fmt, ap);
    fputc('\n', opt->log);
    fflush(opt->log);
    va_end(ap);
}

sdlk_status bench_scratch_create(const char *tmp_dir, char **out, sdlk_error *err)
{
    const char *base = tmp_dir && *tmp_dir ? tmp_dir : "/tmp";
    size_t len = strlen(base) + sizeof "/sdl-bench.XXXXXX";
    char *path = malloc(len);
    if (!path)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    snprintf(path, len, "%s/sdl-bench.XXXXXX", base);
    if (!mkdtemp(path)) {
        sdlk_status st = sdlk_error_errno(err, errno, "%s: cannot create a scratch directory",
                                          base);
        free(path);
        return st;
    }
    *out = path;
    return SDLK_OK;
}

void bench_scratch_remove(char *dir)
{
    if (!dir)
        return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

uint64_t bench_checksum(const void *data, size_t size)
{
    const uint8_t *p = data;
    uint64_t sum = 0;
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        sum += w;
    }
    for (size_t i = words * 8; i < size; i++)
        sum += (uint64_t)p[i] << (8 * (i % 8));
    return sum;
}

void bench_fill_random(void *data, size_t size, uint64_t seed)
{
    uint8_t *p = data;
    uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ull;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
    for (; i < size; i++)
        p[i] = (uint8_t)(x >> (8 * (i % 8)));
}

void bench_format_size(char *buf, size_t cap, uint64_t bytes)
{
    const double kib = 1024.0, mib = kib * 1024.0, gib = mib * 1024.0;
    double b = (double)bytes;
    if (b >= gib)
        snprintf(buf, cap, "%.3g GiB", b / gib);
    else if (b >= mib)
        snprintf(buf, cap, "%.3g MiB", b / mib);
    else if (b >= kib)
        snprintf(buf, cap, "%.3g KiB", b / kib);
    else
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
}

sdlk_status bench_crop(const sdlk_tensor *img, int64_t y0, int64_t x0, int64_t h, int64_t w,
                       sdlk_tensor *out, sdlk_error *err)
{
    int64_t shape[3] = {h, w, img->shape[2]};
    sdlk_status st = sdlk_tensor_alloc(out, img->dtype, 3, shape, err);
    if (st != SDLK_OK)
        return st;
    size_t px = (size_t)img->strides[1], row = (size_t)(w * img->strides[1]);
    for (int64_t y = 0; y < h; y++)
        memcpy(out->data + y * out->strides[0],
               img->data + (y0 + y) * img->strides[0] + (size_t)x0 * px, row);
    return SDLK_OK;
}

void bench_python_stop(bench_python *p)
{
    if (p->to)
        fclose(p->to);
    if (p->from)
        fclose(p->from);
    if (p->pid > 0)
        waitpid(p->pid, NULL, 0);
    memset(p, 0, sizeof *p);
}

int bench_python_start(bench_python *p, const char *script, const char *const *args,
                       char *info, size_t info_size, char *why, size_t why_size)
{
    memset(p, 0, sizeof *p);
    const char *argv[12] = {"python3", "-c", script};
    int argc = 3;
    for (; args && argc < 11 && args[argc - 3]; argc++)
        argv[argc] = args[argc - 3];
    argv[argc] = NULL;
    if (access("/usr/bin/python3", X_OK) != 0) {
        snprintf(why, why_size, "/usr/bin/python3 not found");
        return 0;
    }
    int in[2], out[2];
    if (pipe(in) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        return 0;
    }
    if (pipe(out) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        close(in[0]), close(in[1]);
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_size, "fork: %s", strerror(errno));
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return 0;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execv("/usr/bin/python3", (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->to = fdopen(in[1], "w");
    p->from = fdopen(out[0], "r");
    if (!p->to)
        close(in[1]);
    if (!p->from)
        close(out[0]);
    char line[512] = "";
    if (!p->to || !p->from) {
        snprintf(why, why_size, "fdopen: %s", strerror(errno));
        bench_python_stop(p);
        return 0;
    }
    if (!fgets(line, sizeof line, p->from) || strncmp(line, "ready ", 6) != 0) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(why, why_size, "%s", line[0] ? line : "python3 did not start");
        bench_python_stop(p);
        return 0;
    }
    line[strcspn(line, "\n")] = '\0';
    snprintf(info, info_size, "%s", line + 6);
    return 1;
}

sdlk_status bench_python_request(bench_python *p, const char *request, char *reply,
                                 size_t reply_size, sdlk_error *err)
{
    /* a child that died must fail the request, not kill sdl-bench with SIGPIPE */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    char line[512];
    int ok = fprintf(p->to, "%s\n", request) >= 0 && fflush(p->to) == 0 &&
             fgets(line, sizeof line, p->from) && strncmp(line, "ok ", 3) == 0;
    signal(SIGPIPE, old);
    if (!ok)
        return sdlk_error_set(err, SDLK_ERR_IO, "the python3 child failed on '%.200s'", request);
    line[strcspn(line, "\n")] = '\0';
    if (reply)
        snprintf(reply, reply_size, "%s", line + 3);
    return SDLK_OK;
}
