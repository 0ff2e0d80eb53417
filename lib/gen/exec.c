/* exec.c -- the out-of-process denoiser (see exec.h; frames in protocol.h).
 *
 * Structure
 *   One slot per device. A slot holds at most one live worker process and is used by
 *   one thread at a time: a thread marks it busy under the backend mutex, then talks to
 *   the worker without holding any lock (a batch can take seconds), then marks it free
 *   and wakes the waiters. Everything shared (busy/alive flags, open requests, budgets,
 *   counters) is only touched under the mutex; the pipes and the read buffer of a slot
 *   belong to whichever thread holds it busy.
 *
 *   All pipe I/O goes through poll() with an absolute deadline, and writes to a worker
 *   read its output at the same time: a worker that answers before it has read the
 *   whole batch then cannot deadlock us with both pipes full.
 *
 *   Any failure of a worker (exit, closed pipe, bad or wrong-shaped frame, ERROR answer
 *   to a batch, timeout) kills its process group and reaps it at once, so a failed
 *   worker never lingers as a zombie or holds a device, and the batch is retried on
 *   another slot. Results land in the caller's outputs only as they are checked; a batch
 *   that fails is rerun whole, so every output is written by the attempt that succeeds.
 */
#include "gen/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen/protocol.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* Tile data is written straight from the caller's float arrays, which is only the
 * protocol's little-endian encoding on little-endian hosts. */
#error "exec.c sends f32 payloads without conversion; add byte swapping for this host"
#endif

extern char **environ;

#define MAX_WORKERS 64           /* slots are tracked in a 64-bit "tried" mask */
#define READ_AHEAD_CAP (64u << 20) /* bytes buffered from a worker while still writing */
#define EXIT_GRACE_MS 200        /* wait for the exit status of a worker that hung up */
#define BYE_GRACE_MS 1000        /* wait for workers to leave after BYE */

/* An open request, kept so that it can be replayed to a restarted worker. Reference
 * counted because a batch may be replaying it while another thread closes it. */
typedef struct xreq {
    int64_t id;
    uint64_t seed;
    char *prompt;
    size_t prompt_len;
    float *ref;
    int64_t ref_shape[4];
    int refs;
} xreq;

typedef struct xworker {
    int slot;
    char device[32];
    char hello[64];
    pid_t pid;
    int to_fd, from_fd;     /* worker's stdin (we write), stdout (we read) */
    int alive, busy, eof;
    uint8_t *rbuf;
    size_t rlen, rcap;
    int64_t *known;         /* request ids this process has accepted */
    size_t nknown, cknown;
    int64_t batches, failures;
} xworker;

typedef struct xexec {
    char *command;
    char shown[104];        /* the command as named in messages (truncated) */
    sdlk_exec_opts opts;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    xworker *w;
    int nw;
    int next;               /* rotating start for picking a free slot */
    int restarts_left;
    xreq **reqs;
    size_t nreq, creq;
    sdlk_exec_stats stats;
    sdlk_denoiser_desc desc;
    int64_t numel;
} xexec;

/* What went wrong in an exchange: the worker (retry elsewhere), the caller (give up),
 * or the worker refused an OPEN (the request is at fault, not the process). */
enum { XF_OK = 0, XF_WORKER, XF_CALLER, XF_REFUSED };

static const sdlk_denoiser_ops exec_ops;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* "exec worker "CMD" (device D, pid P)" -- every worker error starts like this. */
static void worker_label(const xexec *x, const xworker *w, char *buf, size_t size)
{
    if (w->device[0])
        snprintf(buf, size, "exec worker \"%s\" (device %s, pid %d)", x->shown, w->device,
                 (int)w->pid);
    else
        snprintf(buf, size, "exec worker \"%s\" (pid %d)", x->shown, (int)w->pid);
}

static void describe_status(int have, int status, char *buf, size_t size)
{
    if (!have)
        snprintf(buf, size, "exit status unknown");
    else if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "wait status 0x%x", (unsigned)status);
}

/* Kill the worker's process group and reap it. With grace_ms > 0, first give a worker
 * that hung up that long to exit by itself, so that its own exit status is reported.
 * The leader is checked with WNOWAIT and only reaped after the group kill: while it is
 * an unreaped zombie its pid cannot be reused, so the kill cannot hit a stranger. */
static void kill_reap(xworker *w, int grace_ms, char *status_text, size_t size)
{
    int have = 0, status = 0;
    if (w->pid > 0) {
        int64_t until = now_ms() + grace_ms;
        for (;;) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
                si.si_pid == w->pid || now_ms() >= until)
                break;
            sleep_ms(2);
        }
        kill(-w->pid, SIGKILL);
        kill(w->pid, SIGKILL);
        pid_t r;
        while ((r = waitpid(w->pid, &status, 0)) < 0 && errno == EINTR) {
        }
        have = r == w->pid;
    }
    if (status_text)
        describe_status(have, status, status_text, size);
    if (w->to_fd >= 0)
        close(w->to_fd);
    if (w->from_fd >= 0)
        close(w->from_fd);
    w->to_fd = w->from_fd = -1;
    w->pid = 0;
    w->rlen = 0;
    w->eof = 0;
    w->nknown = 0;
}

/* A worker failed: kill and reap it, mark the slot dead and set err to
 * "LABEL: CAUSE; STATUS". `hung_up` asks for the grace wait (it left by itself). */
static sdlk_status worker_failed(xexec *x, xworker *w, sdlk_status code, int hung_up,
                                 sdlk_error *err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static sdlk_status worker_failed(xexec *x, xworker *w, sdlk_status code, int hung_up,
                                 sdlk_error *err, const char *fmt, ...)
{
    char label[200], cause[300], status[96];
    worker_label(x, w, label, sizeof label);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cause, sizeof cause, fmt, ap);
    va_end(ap);
    kill_reap(w, hung_up ? EXIT_GRACE_MS : 0, status, sizeof status);
    pthread_mutex_lock(&x->mu);
    w->alive = 0;
    w->failures++;
    x->stats.worker_failures++;
    x->stats.live_workers--;
    pthread_mutex_unlock(&x->mu);
    return sdlk_error_set(err, code, "%s: %s; %s", label, cause, status);
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

static int rbuf_reserve(xworker *w, size_t want)
{
    if (w->rcap >= want)
        return 0;
    size_t cap = w->rcap ? w->rcap : 65536;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    uint8_t *p = realloc(w->rbuf, cap);
    if (!p)
        return -1;
    w->rbuf = p;
    w->rcap = cap;
    return 0;
}

/* Read what the worker has written (one read). 0 ok, 1 end of file, -1 error (errno). */
static int read_some(xworker *w)
{
    if (rbuf_reserve(w, w->rlen + 65536) != 0) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t n = read(w->from_fd, w->rbuf + w->rlen, w->rcap - w->rlen);
    if (n > 0) {
        w->rlen += (size_t)n;
        return 0;
    }
    if (n == 0) {
        w->eof = 1;
        return 1;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

/* Write the iovecs to the worker, reading its output meanwhile. */
static int wk_send(xexec *x, xworker *w, struct iovec *iov, int cnt, int64_t deadline,
                   const char *what, sdlk_error *err)
{
    while (cnt > 0 && iov[0].iov_len == 0) {
        iov++;
        cnt--;
    }
    while (cnt > 0) {
        struct pollfd p[2] = {{.fd = w->to_fd, .events = POLLOUT},
                              {.fd = w->from_fd, .events = POLLIN}};
        int nfds = !w->eof && w->rlen < READ_AHEAD_CAP ? 2 : 1;
        int ms = remaining_ms(deadline);
        if (ms == 0) {
            worker_failed(x, w, SDLK_ERR_IO, 0, err, "timeout: could not send %s within %d ms",
                          what, x->opts.timeout_ms);
            return XF_WORKER;
        }
        int r = poll(p, (nfds_t)nfds, ms);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            worker_failed(x, w, SDLK_ERR_IO, 0, err, "poll: %s", strerror(errno));
            return XF_WORKER;
        }
        if (nfds == 2 && p[1].revents) {
            int rr = read_some(w);
            if (rr < 0) {
                worker_failed(x, w, SDLK_ERR_IO, 1, err, "reading its output: %s",
                              strerror(errno));
                return XF_WORKER;
            }
        }
        if (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
            int n = cnt < IOV_MAX ? cnt : IOV_MAX;
            ssize_t wr = writev(w->to_fd, iov, n);
            if (wr < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    continue;
                worker_failed(x, w, SDLK_ERR_IO, 1, err, "writing %s: %s", what,
                              errno == EPIPE ? "it closed its input" : strerror(errno));
                return XF_WORKER;
            }
            size_t done = (size_t)wr;
            while (cnt > 0 && done >= iov[0].iov_len) {
                done -= iov[0].iov_len;
                iov++;
                cnt--;
            }
            if (cnt > 0 && done) {
                iov[0].iov_base = (uint8_t *)iov[0].iov_base + done;
                iov[0].iov_len -= done;
            }
            while (cnt > 0 && iov[0].iov_len == 0) {
                iov++;
                cnt--;
            }
        }
    }
    return XF_OK;
}

static const char *after_prefix(const char *msg, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(msg, prefix, n) == 0 ? msg + n : msg;
}

/* Wait for one complete frame at the start of the read buffer (at most max_frame
 * bytes, checked on the header before the body is read, so a lying size never makes
 * us allocate). *used receives its size; the caller consumes it with rbuf_consume. */
static int wk_recv(xexec *x, xworker *w, sdlk_proto_frame *fr, size_t *used, uint64_t max_frame,
                   int64_t deadline, int timeout_ms, const char *waiting_for, sdlk_error *err)
{
    char label[200];
    worker_label(x, w, label, sizeof label);
    for (;;) {
        if (w->rlen > 0) {
            size_t k = w->rlen < 4 ? w->rlen : 4;
            if (memcmp(w->rbuf, SDLK_PROTO_MAGIC, k) != 0 || w->rlen >= SDLK_PROTO_HEADER_SIZE) {
                sdlk_proto_header h;
                uint64_t total = 0;
                sdlk_error perr = {0};
                if (sdlk_proto_decode_header(w->rbuf, w->rlen, &h, &total, "frame", &perr)) {
                    worker_failed(x, w, perr.code, 0, err, "bad frame while sdl waited for %s: %s",
                                  waiting_for, after_prefix(perr.msg, "frame: "));
                    return XF_WORKER;
                }
                if (total > max_frame) {
                    char nb[16];
                    worker_failed(x, w, SDLK_ERR_FORMAT, 0, err,
                                  "bad frame while sdl waited for %s: a %s frame of %llu "
                                  "bytes (at most %llu expected)",
                                  waiting_for, sdlk_proto_op_name(h.op, nb),
                                  (unsigned long long)total, (unsigned long long)max_frame);
                    return XF_WORKER;
                }
                if (w->rlen >= total) {
                    if (sdlk_proto_parse(w->rbuf, w->rlen, fr, used, "frame", &perr)) {
                        worker_failed(x, w, perr.code, 0, err,
                                      "bad frame while sdl waited for %s: %s", waiting_for,
                                      after_prefix(perr.msg, "frame: "));
                        return XF_WORKER;
                    }
                    return XF_OK;
                }
                if (rbuf_reserve(w, (size_t)total) != 0) {
                    worker_failed(x, w, SDLK_ERR_NOMEM, 0, err, "no memory for a %llu-byte frame",
                                  (unsigned long long)total);
                    return XF_WORKER;
                }
            }
        }
        if (w->eof) {
            worker_failed(x, w, SDLK_ERR_IO, 1, err, "closed its output while sdl waited for %s",
                          waiting_for);
            return XF_WORKER;
        }
        int ms = remaining_ms(deadline);
        struct pollfd p = {.fd = w->from_fd, .events = POLLIN};
        int r = ms > 0 ? poll(&p, 1, ms) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            worker_failed(x, w, SDLK_ERR_IO, 0, err,
                          "timeout: nothing within %d ms while sdl waited for %s",
                          timeout_ms, waiting_for);
            return XF_WORKER;
        }
        if (r < 0 || read_some(w) < 0) {
            worker_failed(x, w, SDLK_ERR_IO, 1, err, "reading its output: %s", strerror(errno));
            return XF_WORKER;
        }
    }
}

static void rbuf_consume(xworker *w, size_t n)
{
    memmove(w->rbuf, w->rbuf + n, w->rlen - n);
    w->rlen -= n;
}

/* A frame's text as a printable C string (for messages). */
static void frame_text(const sdlk_proto_frame *fr, char *buf, size_t size)
{
    size_t n = fr->h.text_len < size - 1 ? fr->h.text_len : size - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)fr->text[i];
        buf[i] = c < 32 || c == 127 ? ' ' : (char)c;
    }
    buf[n] = 0;
}

/* The environment of a worker: ours, with CUDA_VISIBLE_DEVICES replaced when the
 * slot has a device. Built in the parent because the child may not allocate. */
static char **worker_env(const xworker *w, char *devvar, size_t devsize)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    static const char key[] = "CUDA_VISIBLE_DEVICES=";
    for (char **e = environ; e && *e; e++)
        if (!w->device[0] || strncmp(*e, key, sizeof key - 1) != 0)
            env[k++] = *e;
    if (w->device[0]) {
        snprintf(devvar, devsize, "%s%s", key, w->device);
        env[k++] = devvar;
    }
    env[k] = NULL;
    return env;
}

/* Move a descriptor above 2 so that dup2 onto stdin/stdout in the child never meets
 * itself (dup2(fd, fd) would keep close-on-exec set). */
static int fd_above_stdio(int fd)
{
    if (fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

/* Start the slot's process (no HELLO yet). */
static sdlk_status wk_spawn(xexec *x, xworker *w, sdlk_error *err)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (in[i] >= 0)
                close(in[i]);
            if (out[i] >= 0)
                close(out[i]);
        }
        return sdlk_error_errno(err, e, "exec worker \"%s\": pipe", x->shown);
    }
    for (int i = 0; i < 2; i++) {
        in[i] = fd_above_stdio(in[i]);
        out[i] = fd_above_stdio(out[i]);
    }
    char devvar[64];
    char **env = worker_env(w, devvar, sizeof devvar);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fa_ok = posix_spawn_file_actions_init(&fa) == 0;
    int attr_ok = posix_spawnattr_init(&attr) == 0;
    int rc = !env || !fa_ok || !attr_ok || in[0] < 0 || in[1] < 0 || out[0] < 0 || out[1] < 0
                 ? ENOMEM
                 : 0;
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (!rc) {
        /* own process group: the kill reaches whatever `sh -c` started; default signal
         * dispositions and an empty mask: the worker must not inherit our ignored
         * SIGPIPE or a thread's blocked signals */
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                 POSIX_SPAWN_SETSIGMASK);
        if (!rc)
            rc = posix_spawnattr_setpgroup(&attr, 0);
        if (!rc)
            rc = posix_spawnattr_setsigdefault(&attr, &all);
        if (!rc)
            rc = posix_spawnattr_setsigmask(&attr, &none);
    }
    pid_t pid = 0;
    if (!rc) {
        char *argv[] = {"sh", "-c", x->command, NULL};
        rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env);
    }
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    free(env);
    if (in[0] >= 0)
        close(in[0]);
    if (out[1] >= 0)
        close(out[1]);
    if (rc) {
        if (in[1] >= 0)
            close(in[1]);
        if (out[0] >= 0)
            close(out[0]);
        return sdlk_error_errno(err, rc, "exec worker \"%s\": cannot start /bin/sh", x->shown);
    }
    fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    w->pid = pid;
    w->to_fd = in[1];
    w->from_fd = out[0];
    w->rlen = 0;
    w->eof = 0;
    w->nknown = 0;
    w->hello[0] = 0;
    return SDLK_OK;
}

/* Read and check the HELLO of a freshly spawned worker; fills *desc. On failure the
 * worker is killed and reaped (but the slot's counters are the caller's business). */
static sdlk_status wk_hello(xexec *x, xworker *w, int64_t deadline, sdlk_denoiser_desc *desc,
                            sdlk_error *err)
{
    int tmo = x->opts.start_timeout_ms > 0 ? x->opts.start_timeout_ms : x->opts.timeout_ms;
    sdlk_proto_frame fr;
    size_t used = 0;
    /* a failure here is not a slot failure of a running backend: undo the counters */
    pthread_mutex_lock(&x->mu);
    w->alive = 1;
    x->stats.live_workers++;
    pthread_mutex_unlock(&x->mu);
    int r = wk_recv(x, w, &fr, &used, SDLK_PROTO_HEADER_SIZE + SDLK_PROTO_MAX_TEXT, deadline,
                    tmo, "its HELLO", err);
    if (r != XF_OK)
        return err ? err->code : SDLK_ERR_IO;
    char text[256];
    frame_text(&fr, text, sizeof text);
    if (fr.h.op != SDLK_PROTO_HELLO) {
        char nb[16];
        if (fr.h.op == SDLK_PROTO_ERROR)
            return worker_failed(x, w, SDLK_ERR_IO, 0, err,
                                 "reported an error instead of HELLO: %s", text);
        return worker_failed(x, w, SDLK_ERR_FORMAT, 0, err, "sent %s where HELLO was expected",
                             sdlk_proto_op_name(fr.h.op, nb));
    }
    if (fr.h.shape[3] > INT_MAX)
        return worker_failed(x, w, SDLK_ERR_FORMAT, 0, err, "HELLO with %lld channels",
                             (long long)fr.h.shape[3]);
    memset(desc, 0, sizeof *desc);
    desc->channels = (int)fr.h.shape[3];
    for (int i = 0; i < 3; i++)
        desc->tile[i] = fr.h.shape[i];
    desc->pred = (sdlk_pred_type)fr.h.pred;
    desc->time = (sdlk_time_kind)fr.h.time;
    desc->max_batch = fr.h.batch;
    pthread_mutex_lock(&x->mu); /* sdlk_exec_worker_get reads it from other threads */
    snprintf(w->hello, sizeof w->hello, "%s", text);
    pthread_mutex_unlock(&x->mu);
    rbuf_consume(w, used);
    return SDLK_OK;
}

static int same_model(const sdlk_denoiser_desc *a, const sdlk_denoiser_desc *b)
{
    return a->channels == b->channels && a->tile[0] == b->tile[0] && a->tile[1] == b->tile[1] &&
           a->tile[2] == b->tile[2] && a->pred == b->pred && a->time == b->time;
}

static const char *pred_name(sdlk_pred_type p)
{
    static const char *const names[] = {"eps", "x0", "v", "flow"};
    return (unsigned)p < 4 ? names[p] : "?";
}

static void desc_text(const sdlk_denoiser_desc *d, char *buf, size_t size)
{
    snprintf(buf, size, "tile %lldx%lldx%lld, %d channels, %s, %s time, batch %d",
             (long long)d->tile[0], (long long)d->tile[1], (long long)d->tile[2], d->channels,
             pred_name(d->pred), d->time == SDLK_TIME_FLOW ? "flow" : "vp",
             d->max_batch);
}

static int worker_knows(const xworker *w, int64_t id)
{
    for (size_t i = 0; i < w->nknown; i++)
        if (w->known[i] == id)
            return 1;
    return 0;
}

static int worker_learn(xworker *w, int64_t id)
{
    if (w->nknown == w->cknown) {
        size_t cap = w->cknown ? w->cknown * 2 : 8;
        int64_t *p = realloc(w->known, cap * sizeof *p);
        if (!p)
            return -1;
        w->known = p;
        w->cknown = cap;
    }
    w->known[w->nknown++] = id;
    return 0;
}

static void worker_forget(xworker *w, int64_t id)
{
    for (size_t i = 0; i < w->nknown; i++)
        if (w->known[i] == id) {
            w->known[i] = w->known[--w->nknown];
            return;
        }
}

/* Send OPEN for r and wait for OK. XF_REFUSED: the worker answered ERROR (still alive). */
static int wk_open(xexec *x, xworker *w, const xreq *r, sdlk_error *err)
{
    sdlk_proto_header h;
    sdlk_proto_header_init(&h, SDLK_PROTO_OPEN);
    h.request = r->id;
    h.seed = r->seed;
    h.text_len = (uint32_t)r->prompt_len;
    uint64_t ref_bytes = 0;
    if (r->ref) {
        h.dtype = SDLK_PROTO_DT_F32;
        memcpy(h.shape, r->ref_shape, sizeof h.shape);
        ref_bytes = (uint64_t)sdlk_proto_expected_data(&h);
        h.data_len = ref_bytes;
    }
    uint8_t hdr[SDLK_PROTO_HEADER_SIZE];
    sdlk_error perr = {0};
    if (sdlk_proto_encode_header(&h, hdr, "OPEN", &perr) != SDLK_OK) {
        sdlk_error_set(err, perr.code, "exec:%s: request %lld: %s", x->shown, (long long)r->id,
                       perr.msg);
        return XF_CALLER;
    }
    struct iovec iov[3] = {{hdr, sizeof hdr},
                           {r->prompt, r->prompt_len},
                           {r->ref, (size_t)ref_bytes}};
    int64_t deadline = now_ms() + x->opts.timeout_ms;
    int st = wk_send(x, w, iov, 3, deadline, "OPEN", err);
    if (st)
        return st;
    sdlk_proto_frame fr;
    size_t used = 0;
    st = wk_recv(x, w, &fr, &used, SDLK_PROTO_HEADER_SIZE + SDLK_PROTO_MAX_TEXT, deadline,
                 x->opts.timeout_ms, "the answer to OPEN", err);
    if (st)
        return st;
    char nb[16], text[256], label[200];
    if (fr.h.op == SDLK_PROTO_ERROR) {
        frame_text(&fr, text, sizeof text);
        worker_label(x, w, label, sizeof label);
        rbuf_consume(w, used);
        sdlk_error_set(err, SDLK_ERR_ARG, "%s: refused request %lld: %s", label,
                       (long long)r->id, text);
        return XF_REFUSED;
    }
    if (fr.h.op != SDLK_PROTO_OK || fr.h.request != r->id) {
        worker_failed(x, w, SDLK_ERR_FORMAT, 0, err,
                      "answered OPEN of request %lld with %s for request %lld", (long long)r->id,
                      sdlk_proto_op_name(fr.h.op, nb), (long long)fr.h.request);
        return XF_WORKER;
    }
    rbuf_consume(w, used);
    if (worker_learn(w, r->id) != 0) {
        sdlk_error_set(err, SDLK_ERR_NOMEM, "exec:%s: out of memory", x->shown);
        return XF_CALLER;
    }
    return XF_OK;
}

static xreq *find_req(xexec *x, int64_t id, size_t *pos)
{
    for (size_t i = 0; i < x->nreq; i++)
        if (x->reqs[i]->id == id) {
            if (pos)
                *pos = i;
            return x->reqs[i];
        }
    return NULL;
}

static void req_free(xreq *r)
{
    if (!r)
        return;
    free(r->prompt);
    free(r->ref);
    free(r);
}

/* Drop a reference (under the mutex). */
static void req_unref(xreq *r)
{
    if (--r->refs == 0)
        req_free(r);
}

/* Run one batch on a worker the caller holds busy. */
static int run_batch(xexec *x, xworker *w, const sdlk_denoise_item *items, int n, sdlk_error *err)
{
    /* the worker must know every request of the batch: replay what a restarted
     * process has not seen */
    for (int i = 0; i < n; i++) {
        if (worker_knows(w, items[i].request))
            continue;
        pthread_mutex_lock(&x->mu);
        xreq *r = find_req(x, items[i].request, NULL);
        if (r)
            r->refs++;
        pthread_mutex_unlock(&x->mu);
        if (!r) {
            sdlk_error_set(err, SDLK_ERR_ARG, "exec:%s: request %lld is not open", x->shown,
                           (long long)items[i].request);
            return XF_CALLER;
        }
        int st = wk_open(x, w, r, err);
        pthread_mutex_lock(&x->mu);
        req_unref(r);
        pthread_mutex_unlock(&x->mu);
        if (st == XF_REFUSED) {
            /* it accepted this request once (or the open would have failed): a process
             * that now refuses it cannot serve the batch */
            char msg[SDLK_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
            if (err)
                sdlk_error_clear(err);
            worker_failed(x, w, SDLK_ERR_IO, 0, err, "refused a replayed request: %s", msg);
            return XF_WORKER;
        }
        if (st)
            return st;
    }

    size_t tile_bytes = (size_t)x->numel * sizeof(float);
    uint8_t(*hdrs)[SDLK_PROTO_HEADER_SIZE] = malloc((size_t)n * sizeof *hdrs);
    struct iovec *iov = malloc((size_t)n * 3 * sizeof *iov);
    unsigned char *got = calloc((size_t)n, 1);
    if (!hdrs || !iov || !got) {
        free(hdrs);
        free(iov);
        free(got);
        sdlk_error_set(err, SDLK_ERR_NOMEM, "exec:%s: out of memory for a batch of %d", x->shown,
                       n);
        return XF_CALLER;
    }
    int st = XF_OK;
    for (int i = 0; i < n && st == XF_OK; i++) {
        const sdlk_denoise_item *it = &items[i];
        sdlk_proto_header h;
        sdlk_proto_header_init(&h, SDLK_PROTO_PREDICT);
        h.request = it->request;
        h.tile_id = it->tile_id;
        h.step = it->step;
        h.timestep = it->timestep;
        h.level = it->level;
        memcpy(h.offset, it->offset, sizeof h.offset);
        for (int a = 0; a < 3; a++)
            h.shape[a] = x->desc.tile[a];
        h.shape[3] = x->desc.channels;
        h.dtype = SDLK_PROTO_DT_F32;
        h.flags = it->cond ? SDLK_PROTO_F_COND : 0;
        h.batch = (uint16_t)n;
        h.index = (uint16_t)i;
        h.data_len = tile_bytes * (it->cond ? 2 : 1);
        sdlk_error perr = {0};
        if (sdlk_proto_encode_header(&h, hdrs[i], "PREDICT", &perr) != SDLK_OK) {
            sdlk_error_set(err, SDLK_ERR_ARG, "exec:%s: tile %lld: %s", x->shown,
                           (long long)it->tile_id, perr.msg);
            st = XF_CALLER;
            break;
        }
        iov[3 * i] = (struct iovec){hdrs[i], SDLK_PROTO_HEADER_SIZE};
        iov[3 * i + 1] = (struct iovec){(void *)it->x, tile_bytes};
        iov[3 * i + 2] = (struct iovec){(void *)it->cond, it->cond ? tile_bytes : 0};
    }
    int64_t deadline = now_ms() + x->opts.timeout_ms;
    if (st == XF_OK)
        st = wk_send(x, w, iov, 3 * n, deadline, "a batch", err);
    uint64_t max_frame = SDLK_PROTO_HEADER_SIZE + SDLK_PROTO_MAX_TEXT + tile_bytes;
    for (int done = 0; st == XF_OK && done < n; done++) {
        sdlk_proto_frame fr;
        size_t used = 0;
        st = wk_recv(x, w, &fr, &used, max_frame, deadline, x->opts.timeout_ms,
                     "the results of its batch", err);
        if (st)
            break;
        char nb[16], text[256];
        const sdlk_proto_header *h = &fr.h;
        if (h->op == SDLK_PROTO_ERROR) {
            frame_text(&fr, text, sizeof text);
            worker_failed(x, w, SDLK_ERR_IO, 0, err, "reported an error for a batch of %d: %s", n,
                          text);
            st = XF_WORKER;
        } else if (h->op != SDLK_PROTO_RESULT) {
            worker_failed(x, w, SDLK_ERR_FORMAT, 0, err, "sent %s where RESULT was expected",
                          sdlk_proto_op_name(h->op, nb));
            st = XF_WORKER;
        } else if (h->batch != n || h->index >= n || got[h->index]) {
            worker_failed(x, w, SDLK_ERR_FORMAT, 0, err,
                          "bad RESULT: index %u of a batch of %u (sent a batch of %d%s)",
                          (unsigned)h->index, (unsigned)h->batch, n,
                          h->index < n && got[h->index] ? ", index repeated" : "");
            st = XF_WORKER;
        } else if (h->tile_id != items[h->index].tile_id ||
                   h->request != items[h->index].request) {
            worker_failed(x, w, SDLK_ERR_FORMAT, 0, err,
                          "bad RESULT: index %u is tile %lld of request %lld, expected tile %lld "
                          "of request %lld",
                          (unsigned)h->index, (long long)h->tile_id, (long long)h->request,
                          (long long)items[h->index].tile_id, (long long)items[h->index].request);
            st = XF_WORKER;
        } else if (h->shape[0] != x->desc.tile[0] || h->shape[1] != x->desc.tile[1] ||
                   h->shape[2] != x->desc.tile[2] || h->shape[3] != x->desc.channels) {
            worker_failed(x, w, SDLK_ERR_FORMAT, 0, err,
                          "wrong shape for tile %lld: %lldx%lldx%lldx%lld, expected "
                          "%lldx%lldx%lldx%d",
                          (long long)h->tile_id, (long long)h->shape[0], (long long)h->shape[1],
                          (long long)h->shape[2], (long long)h->shape[3],
                          (long long)x->desc.tile[0], (long long)x->desc.tile[1],
                          (long long)x->desc.tile[2], x->desc.channels);
            st = XF_WORKER;
        } else {
            sdlk_proto_f32_from_le(items[h->index].out, fr.data, (size_t)x->numel);
            got[h->index] = 1;
            rbuf_consume(w, used);
        }
    }
    free(hdrs);
    free(iov);
    free(got);
    return st;
}

/* Take a slot for a batch (under the mutex): a free live one, preferring slots this
 * batch has not failed on; else a dead one to restart while the budget lasts; else
 * wait. -1: no live worker and no restart left. */
static int acquire_any(xexec *x, uint64_t tried, int *restart)
{
    for (;;) {
        int live = -1, dead = -1, busy = 0;
        for (int k = 0; k < x->nw; k++) {
            int i = (x->next + k) % x->nw;
            const xworker *w = &x->w[i];
            int fresh = !((tried >> i) & 1);
            if (w->busy)
                busy = 1;
            else if (w->alive && (live < 0 || (fresh && ((tried >> live) & 1))))
                live = i;
            else if (!w->alive && (dead < 0 || (fresh && ((tried >> dead) & 1))))
                dead = i;
        }
        if (live >= 0) {
            x->w[live].busy = 1;
            x->next = (live + 1) % x->nw;
            *restart = 0;
            return live;
        }
        if (dead >= 0 && x->restarts_left > 0) {
            x->w[dead].busy = 1;
            x->restarts_left--;
            x->stats.restarts++;
            *restart = 1;
            return dead;
        }
        if (!busy)
            return -1;
        pthread_cond_wait(&x->cv, &x->mu);
    }
}

static void release(xexec *x, xworker *w)
{
    pthread_mutex_lock(&x->mu);
    w->busy = 0;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* Restart a dead slot the caller holds busy: spawn, HELLO, same model. */
static sdlk_status restart_worker(xexec *x, xworker *w, sdlk_error *err)
{
    sdlk_status st = wk_spawn(x, w, err);
    if (st) {
        pthread_mutex_lock(&x->mu);
        w->failures++;
        x->stats.worker_failures++;
        pthread_mutex_unlock(&x->mu);
        return st;
    }
    int tmo = x->opts.start_timeout_ms > 0 ? x->opts.start_timeout_ms : x->opts.timeout_ms;
    sdlk_denoiser_desc got;
    st = wk_hello(x, w, now_ms() + tmo, &got, err);
    if (st)
        return st; /* wk_hello killed it and counted the failure */
    if (!same_model(&got, &x->desc) || got.max_batch < x->desc.max_batch) {
        char a[160], b[160];
        desc_text(&got, a, sizeof a);
        desc_text(&x->desc, b, sizeof b);
        return worker_failed(x, w, SDLK_ERR_FORMAT, 0, err,
                             "restarted worker describes a different model (%s; expected %s)", a,
                             b);
    }
    return SDLK_OK;
}

static sdlk_status exec_predict(sdlk_denoiser *d, const sdlk_denoise_item *items, int n,
                                sdlk_error *err)
{
    xexec *x = d->impl;
    if (n < 1 || n > x->desc.max_batch || !items)
        return sdlk_error_set(err, SDLK_ERR_ARG, "exec:%s: batch of %d tiles (1 to %d)", x->shown,
                              n, x->desc.max_batch);
    for (int i = 0; i < n; i++)
        if (!items[i].x || !items[i].out)
            return sdlk_error_set(err, SDLK_ERR_ARG, "exec:%s: tile %lld has no input or output",
                                  x->shown, (long long)items[i].tile_id);
    pthread_mutex_lock(&x->mu);
    for (int i = 0; i < n; i++) {
        if (!find_req(x, items[i].request, NULL)) {
            pthread_mutex_unlock(&x->mu);
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "exec:%s: tile %lld names request %lld, which is not open",
                                  x->shown, (long long)items[i].tile_id,
                                  (long long)items[i].request);
        }
    }
    pthread_mutex_unlock(&x->mu);

    uint64_t tried = 0;
    int attempts = 0;
    sdlk_error last = {0};
    while (attempts <= x->opts.retries) {
        int restart = 0;
        pthread_mutex_lock(&x->mu);
        int slot = acquire_any(x, tried, &restart);
        pthread_mutex_unlock(&x->mu);
        if (slot < 0)
            break;
        xworker *w = &x->w[slot];
        sdlk_error e = {0};
        if (restart && restart_worker(x, w, &e) != SDLK_OK) {
            /* a failed restart spends restart budget, not the batch's retries */
            last = e;
            release(x, w);
            continue;
        }
        int st = run_batch(x, w, items, n, &e);
        if (st == XF_OK) {
            pthread_mutex_lock(&x->mu);
            w->batches++;
            x->stats.batches++;
            if (attempts > 0)
                x->stats.retried_batches++;
            w->busy = 0;
            pthread_cond_broadcast(&x->cv);
            pthread_mutex_unlock(&x->mu);
            return SDLK_OK;
        }
        release(x, w);
        if (st == XF_CALLER) {
            if (err)
                *err = e;
            return e.code ? e.code : SDLK_ERR_INTERNAL;
        }
        last = e;
        tried |= (uint64_t)1 << slot;
        attempts++;
    }
    if (attempts > x->opts.retries)
        return sdlk_error_set(err, last.code ? last.code : SDLK_ERR_IO,
                              "exec:%s: a batch of %d tile%s failed %d times; last: %s",
                              x->shown, n, n == 1 ? "" : "s", attempts, last.msg);
    return sdlk_error_set(err, last.code ? last.code : SDLK_ERR_IO,
                          "exec:%s: no live worker left (restart budget of %d spent)%s%s",
                          x->shown, x->opts.restarts, last.code ? "; last: " : "", last.msg);
}

/* Wait for slot i to be free and take it (under the mutex). 0 when it is dead. */
static int acquire_slot(xexec *x, int i)
{
    while (x->w[i].busy)
        pthread_cond_wait(&x->cv, &x->mu);
    if (!x->w[i].alive)
        return 0;
    x->w[i].busy = 1;
    return 1;
}

static void close_on_workers(xexec *x, int64_t id)
{
    sdlk_proto_header h;
    sdlk_proto_header_init(&h, SDLK_PROTO_CLOSE);
    h.request = id;
    uint8_t hdr[SDLK_PROTO_HEADER_SIZE];
    if (sdlk_proto_encode_header(&h, hdr, "CLOSE", NULL) != SDLK_OK)
        return;
    for (int i = 0; i < x->nw; i++) {
        xworker *w = &x->w[i];
        pthread_mutex_lock(&x->mu);
        int mine = acquire_slot(x, i);
        pthread_mutex_unlock(&x->mu);
        if (!mine)
            continue;
        if (worker_knows(w, id)) {
            struct iovec iov = {hdr, sizeof hdr};
            /* a failure kills the worker; close has no error to report, and the next
             * batch restarts the slot */
            if (wk_send(x, w, &iov, 1, now_ms() + x->opts.timeout_ms, "CLOSE", NULL) == XF_OK)
                worker_forget(w, id);
        }
        release(x, w);
    }
}

static sdlk_status exec_open(sdlk_denoiser *d, const sdlk_gen_request *req, sdlk_error *err)
{
    xexec *x = d->impl;
    if (!req)
        return sdlk_error_set(err, SDLK_ERR_ARG, "exec:%s: no request", x->shown);
    xreq *r = calloc(1, sizeof *r);
    if (!r)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exec:%s: out of memory", x->shown);
    r->id = req->id;
    r->seed = req->seed;
    r->refs = 1;
    if (req->prompt) {
        r->prompt_len = strlen(req->prompt);
        if (r->prompt_len > SDLK_PROTO_MAX_TEXT) {
            req_free(r);
            return sdlk_error_set(err, SDLK_ERR_ARG, "exec:%s: prompt of %zu bytes (at most %u)",
                                  x->shown, strlen(req->prompt), SDLK_PROTO_MAX_TEXT);
        }
        r->prompt = malloc(r->prompt_len + 1);
        if (r->prompt)
            memcpy(r->prompt, req->prompt, r->prompt_len + 1);
    }
    if (req->reference) {
        sdlk_proto_header h;
        sdlk_proto_header_init(&h, SDLK_PROTO_OPEN);
        h.dtype = SDLK_PROTO_DT_F32;
        memcpy(h.shape, req->ref_shape, sizeof h.shape);
        int64_t bytes = sdlk_proto_expected_data(&h);
        if (bytes < 0) {
            req_free(r);
            return sdlk_error_set(err, SDLK_ERR_ARG,
                                  "exec:%s: reference shape %lldx%lldx%lldx%lld (each >= 1, at "
                                  "most 2^36 bytes)",
                                  x->shown, (long long)req->ref_shape[0],
                                  (long long)req->ref_shape[1], (long long)req->ref_shape[2],
                                  (long long)req->ref_shape[3]);
        }
        memcpy(r->ref_shape, req->ref_shape, sizeof r->ref_shape);
        r->ref = malloc((size_t)bytes);
        if (r->ref)
            memcpy(r->ref, req->reference, (size_t)bytes);
    }
    if ((req->prompt && !r->prompt) || (req->reference && !r->ref)) {
        req_free(r);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exec:%s: out of memory for request %lld",
                              x->shown, (long long)req->id);
    }
    pthread_mutex_lock(&x->mu);
    if (find_req(x, r->id, NULL)) {
        pthread_mutex_unlock(&x->mu);
        req_free(r);
        return sdlk_error_set(err, SDLK_ERR_ARG, "exec:%s: request %lld is already open",
                              x->shown, (long long)req->id);
    }
    if (x->nreq == x->creq) {
        size_t cap = x->creq ? x->creq * 2 : 8;
        xreq **p = realloc(x->reqs, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&x->mu);
            req_free(r);
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "exec:%s: out of memory", x->shown);
        }
        x->reqs = p;
        x->creq = cap;
    }
    x->reqs[x->nreq++] = r;
    pthread_mutex_unlock(&x->mu);

    /* tell every live worker now, so that a worker refusing the request fails the open
     * rather than a later batch; dead slots learn it when they are restarted */
    for (int i = 0; i < x->nw; i++) {
        xworker *w = &x->w[i];
        pthread_mutex_lock(&x->mu);
        int mine = acquire_slot(x, i);
        pthread_mutex_unlock(&x->mu);
        if (!mine)
            continue;
        sdlk_error e = {0};
        int st = worker_knows(w, r->id) ? XF_OK : wk_open(x, w, r, &e);
        release(x, w);
        if (st == XF_REFUSED || st == XF_CALLER) {
            d->ops->close(d, r->id);
            if (err)
                *err = e;
            return e.code ? e.code : SDLK_ERR_INTERNAL;
        }
        /* XF_WORKER: that worker died; it is replayed the request on restart */
    }
    return SDLK_OK;
}

static void exec_close(sdlk_denoiser *d, int64_t request)
{
    xexec *x = d->impl;
    pthread_mutex_lock(&x->mu);
    size_t pos;
    xreq *r = find_req(x, request, &pos);
    if (r) {
        x->reqs[pos] = x->reqs[--x->nreq];
        req_unref(r);
    }
    pthread_mutex_unlock(&x->mu);
    if (r)
        close_on_workers(x, request);
}

static void exec_destroy(sdlk_denoiser *d)
{
    if (!d)
        return;
    xexec *x = d->impl;
    if (x) {
        /* BYE, then end of input: a worker that ignores the first still sees the second */
        sdlk_proto_header h;
        sdlk_proto_header_init(&h, SDLK_PROTO_BYE);
        uint8_t hdr[SDLK_PROTO_HEADER_SIZE];
        int have_bye = sdlk_proto_encode_header(&h, hdr, "BYE", NULL) == SDLK_OK;
        for (int i = 0; i < x->nw; i++) {
            xworker *w = &x->w[i];
            if (w->pid <= 0)
                continue;
            if (have_bye && w->to_fd >= 0) {
                ssize_t wr = write(w->to_fd, hdr, sizeof hdr); /* non-blocking, best effort */
                (void)wr;
            }
            if (w->to_fd >= 0)
                close(w->to_fd);
            w->to_fd = -1;
        }
        int64_t until = now_ms() + BYE_GRACE_MS;
        for (int i = 0; i < x->nw; i++) {
            xworker *w = &x->w[i];
            if (w->pid <= 0)
                continue;
            int left = remaining_ms(until);
            kill_reap(w, left, NULL, 0);
        }
        for (int i = 0; i < x->nw; i++) {
            free(x->w[i].rbuf);
            free(x->w[i].known);
        }
        for (size_t i = 0; i < x->nreq; i++)
            req_free(x->reqs[i]);
        free(x->reqs);
        free(x->w);
        free(x->command);
        pthread_mutex_destroy(&x->mu);
        pthread_cond_destroy(&x->cv);
        free(x);
    }
    free(d);
}

static const sdlk_denoiser_ops exec_ops = {
    .open = exec_open,
    .close = exec_close,
    .predict = exec_predict,
    .destroy = exec_destroy,
};

void sdlk_exec_opts_init(sdlk_exec_opts *o)
{
    o->timeout_ms = 60000;
    o->retries = 2;
    o->restarts = 4;
    o->start_timeout_ms = 0;
}

/* Split "0,1,2" into device names. Returns the count, or -1 with err set. */
static int parse_devices(const char *devices, char (*out)[32], const char *shown,
                         sdlk_error *err)
{
    int n = 0;
    const char *p = devices;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0 || len >= 32) {
            sdlk_error_set(err, SDLK_ERR_ARG,
                           "exec:%s: device list \"%s\": %s device name (1 to 31 characters)",
                           shown, devices, len ? "a too long" : "an empty");
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            char c = p[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '_' || c == ':' || c == '.')) {
                sdlk_error_set(err, SDLK_ERR_ARG,
                               "exec:%s: device list \"%s\": bad character '%c' in a device name",
                               shown, devices, c);
                return -1;
            }
        }
        if (n == MAX_WORKERS) {
            sdlk_error_set(err, SDLK_ERR_ARG, "exec:%s: more than %d devices", shown, MAX_WORKERS);
            return -1;
        }
        memcpy(out[n], p, len);
        out[n][len] = 0;
        n++;
        if (!end)
            return n;
        p = end + 1;
    }
}

sdlk_status sdlk_exec_create(const char *command, const char *devices,
                             const sdlk_exec_opts *opts, sdlk_denoiser **out, sdlk_error *err)
{
    if (out)
        *out = NULL;
    if (!out || !command || !command[0])
        return sdlk_error_set(err, SDLK_ERR_ARG, "exec: no worker command");
    sdlk_exec_opts o;
    sdlk_exec_opts_init(&o);
    if (opts)
        o = *opts;
    char shown[104];
    snprintf(shown, sizeof shown, "%s%s", command, strlen(command) > 100 ? "..." : "");
    if (strlen(command) > 100)
        snprintf(shown + 97, sizeof shown - 97, "...");
    if (o.timeout_ms < 1 || o.retries < 0 || o.restarts < 0 || o.start_timeout_ms < 0)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "exec:%s: timeout %d ms, retries %d, restarts %d (need a timeout "
                              ">= 1 and no negative counts)",
                              shown, o.timeout_ms, o.retries, o.restarts);
    char devs[MAX_WORKERS][32];
    int nw = 1;
    if (devices) {
        nw = parse_devices(devices, devs, shown, err);
        if (nw < 0)
            return SDLK_ERR_ARG;
    }
    sdlk_denoiser *d = calloc(1, sizeof *d);
    xexec *x = calloc(1, sizeof *x);
    xworker *ws = calloc((size_t)nw, sizeof *ws);
    char *cmd = strdup(command);
    if (!d || !x || !ws || !cmd) {
        free(d);
        free(x);
        free(ws);
        free(cmd);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "exec:%s: out of memory", shown);
    }
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->command = cmd;
    memcpy(x->shown, shown, sizeof shown);
    x->opts = o;
    x->w = ws;
    x->nw = nw;
    x->restarts_left = o.restarts;
    for (int i = 0; i < nw; i++) {
        ws[i].slot = i;
        ws[i].to_fd = ws[i].from_fd = -1;
        if (devices)
            memcpy(ws[i].device, devs[i], sizeof devs[i]);
    }
    d->ops = &exec_ops;
    d->impl = x;

    /* start every worker before waiting for any HELLO: real models load in parallel */
    sdlk_status st = SDLK_OK;
    for (int i = 0; i < nw && !st; i++)
        st = wk_spawn(x, &ws[i], err);
    int tmo = o.start_timeout_ms > 0 ? o.start_timeout_ms : o.timeout_ms;
    int64_t deadline = now_ms() + tmo;
    for (int i = 0; i < nw && !st; i++) {
        sdlk_denoiser_desc got;
        st = wk_hello(x, &ws[i], deadline, &got, err);
        if (st)
            break;
        if (i == 0) {
            x->desc = got;
        } else if (!same_model(&got, &x->desc)) {
            char a[160], b[160];
            desc_text(&got, a, sizeof a);
            desc_text(&x->desc, b, sizeof b);
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "exec:%s: workers disagree: device %s says %s, device %s says %s",
                                shown, ws[i].device, a, ws[0].device, b);
        } else if (got.max_batch < x->desc.max_batch) {
            x->desc.max_batch = got.max_batch;
        }
    }
    if (st) {
        exec_destroy(d);
        return st;
    }
    x->desc.workers = nw;
    snprintf(x->desc.name, sizeof x->desc.name, "exec:%s", command);
    x->numel = x->desc.tile[0] * x->desc.tile[1] * x->desc.tile[2] * x->desc.channels;
    d->desc = x->desc;
    *out = d;
    return SDLK_OK;
}

void sdlk_exec_get_stats(sdlk_denoiser *d, sdlk_exec_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!d || d->ops != &exec_ops)
        return;
    xexec *x = d->impl;
    pthread_mutex_lock(&x->mu);
    *out = x->stats;
    pthread_mutex_unlock(&x->mu);
}

int sdlk_exec_worker_get(sdlk_denoiser *d, int index, sdlk_exec_worker_info *out)
{
    if (!d || d->ops != &exec_ops || !out)
        return -1;
    xexec *x = d->impl;
    if (index < 0 || index >= x->nw)
        return -1;
    pthread_mutex_lock(&x->mu);
    const xworker *w = &x->w[index];
    memset(out, 0, sizeof *out);
    memcpy(out->device, w->device, sizeof out->device);
    memcpy(out->hello, w->hello, sizeof out->hello);
    out->pid = w->alive ? (int)w->pid : 0;
    out->alive = w->alive;
    out->batches = w->batches;
    out->failures = w->failures;
    pthread_mutex_unlock(&x->mu);
    return 0;
}
