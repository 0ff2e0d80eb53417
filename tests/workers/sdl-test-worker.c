/* sdl-test-worker -- a small denoiser worker for the exec backend tests, speaking the
 * worker protocol (lib/gen/protocol.h) on stdin/stdout with the library's own codec.
 *
 *   sdl-test-worker [--mode MODE] [--after N] [--only-device D] [--tile TxHxW]
 *                   [--channels C] [--batch B] [--stall-ms MS] [--log FILE]
 *
 * The model is deterministic and checkable per tile:
 *     out = 0.5 * x + k(request) (+ 0.25 * cond when a conditioning tile is sent)
 *     k   = 0.01 * (seed % 100) + 0.001 * strlen(prompt) + reference[0]
 * so a result from a worker that never received (or lost) the request's OPEN is
 * impossible: the worker answers ERROR for an unknown request.
 * Its HELLO text is "sdl-test-worker dev=$CUDA_VISIBLE_DEVICES" ("-" when unset).
 *
 * --log FILE appends one line per OPEN and per answered tile, so that tests can check
 * what the host asked for (several workers may share the file: each line is one
 * O_APPEND write):
 *     open REQUEST SEED PROMPT_BYTES REFERENCE_BYTES
 *     tile REQUEST TILE_ID STEP TIMESTEP OFFSET_T OFFSET_H OFFSET_W
 *
 * Modes (the misbehaviour starts at batch N+1 of this process, N = --after, default
 * 0; with --only-device D only the worker whose CUDA_VISIBLE_DEVICES is D misbehaves):
 *   ok       correct (default)
 *   crash    exit(3) after reading the first frame of the batch
 *   stall    sleep --stall-ms (default 1 hour) instead of answering
 *   shape    answer with a tile one row short
 *   error    answer ERROR "simulated out of memory"
 *   dup      send index 0 twice
 *   garbage  print text instead of HELLO, then wait for input to end
 *   silent   never say HELLO (wait for input to end)
 *   exit7    exit(7) at once
 *   refuse   answer ERROR to every OPEN
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "gen/protocol.h"

typedef struct req {
    int64_t id;
    float k;
} req;

static req reqs[256];
static int nreqs;

static int read_all(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = read(0, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void write_all(const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t r = write(1, p, n);
        if (r <= 0)
            exit(4);
        p += r;
        n -= (size_t)r;
    }
}

/* Read one frame: header into h, body (text then data) into a malloc'd buffer. */
static uint8_t *read_frame(sdlk_proto_header *h)
{
    uint8_t hdr[SDLK_PROTO_HEADER_SIZE];
    if (read_all(hdr, sizeof hdr) != 0)
        return NULL;
    uint64_t total;
    sdlk_error err = {0};
    if (sdlk_proto_decode_header(hdr, sizeof hdr, h, &total, "host frame", &err) != SDLK_OK) {
        fprintf(stderr, "sdl-test-worker: %s\n", err.msg);
        exit(5);
    }
    size_t body = (size_t)(total - SDLK_PROTO_HEADER_SIZE);
    uint8_t *buf = malloc(body ? body : 1);
    if (!buf || read_all(buf, body) != 0)
        exit(6);
    return buf;
}

static void send_frame(const sdlk_proto_header *h, const void *text, const void *data)
{
    uint8_t hdr[SDLK_PROTO_HEADER_SIZE];
    sdlk_error err = {0};
    if (sdlk_proto_encode_header(h, hdr, "worker frame", &err) != SDLK_OK) {
        fprintf(stderr, "sdl-test-worker: %s\n", err.msg);
        exit(5);
    }
    write_all(hdr, sizeof hdr);
    if (h->text_len)
        write_all(text, h->text_len);
    if (h->data_len)
        write_all(data, (size_t)h->data_len);
}

static void send_error(const char *msg)
{
    sdlk_proto_header h;
    sdlk_proto_header_init(&h, SDLK_PROTO_ERROR);
    h.text_len = (uint32_t)strlen(msg);
    send_frame(&h, msg, NULL);
}

/* One line to the --log file (fd < 0: no log), in one write so that lines of workers
 * sharing the file never interleave. */
static void log_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(int fd, const char *fmt, ...)
{
    if (fd < 0)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0 && write(fd, line, (size_t)n) != n)
        exit(4);
}

static void wait_for_eof(void)
{
    char c;
    while (read(0, &c, 1) > 0) {
    }
}

int main(int argc, char **argv)
{
    const char *mode = "ok", *only = NULL, *log_path = NULL;
    int after = 0, channels = 3, batch = 4;
    long stall_ms = 3600L * 1000;
    int64_t tile[3] = {1, 8, 8};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mode"))
            mode = argv[i + 1];
        else if (!strcmp(argv[i], "--after"))
            after = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only-device"))
            only = argv[i + 1];
        else if (!strcmp(argv[i], "--channels"))
            channels = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--log"))
            log_path = argv[i + 1];
        else if (!strcmp(argv[i], "--stall-ms"))
            stall_ms = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--tile"))
            sscanf(argv[i + 1], "%lldx%lldx%lld", (long long *)&tile[0], (long long *)&tile[1],
                   (long long *)&tile[2]);
        else {
            fprintf(stderr, "sdl-test-worker: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    int log_fd = -1;
    if (log_path && (log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                                   0644)) < 0) {
        fprintf(stderr, "sdl-test-worker: cannot open %s\n", log_path);
        return 2;
    }
    const char *dev = getenv("CUDA_VISIBLE_DEVICES");
    int misbehaves = !only || (dev && !strcmp(dev, only));
    if (!misbehaves)
        mode = "ok";

    if (!strcmp(mode, "exit7"))
        return 7;
    if (!strcmp(mode, "garbage")) {
        const char junk[] = "Loading model weights... done\n";
        write_all(junk, sizeof junk - 1);
        wait_for_eof();
        return 0;
    }
    if (!strcmp(mode, "silent")) {
        wait_for_eof();
        return 0;
    }

    char name[64];
    snprintf(name, sizeof name, "sdl-test-worker dev=%s", dev ? dev : "-");
    sdlk_proto_header h;
    sdlk_proto_header_init(&h, SDLK_PROTO_HELLO);
    h.text_len = (uint32_t)strlen(name);
    h.dtype = SDLK_PROTO_DT_F32;
    h.pred = 1; /* x0 */
    h.time = 0; /* vp */
    memcpy(h.shape, tile, sizeof tile);
    h.shape[3] = channels;
    h.batch = (uint16_t)batch;
    send_frame(&h, name, NULL);

    int batches = 0;
    for (;;) {
        sdlk_proto_header f;
        uint8_t *body = read_frame(&f);
        if (!body)
            return 0; /* end of input: the host is gone or done */
        if (f.op == SDLK_PROTO_BYE) {
            free(body);
            return 0;
        }
        if (f.op == SDLK_PROTO_OPEN) {
            if (!strcmp(mode, "refuse")) {
                send_error("this worker refuses every request");
            } else if (nreqs == 256) {
                send_error("too many requests");
            } else {
                float k = 0.01f * (float)(f.seed % 100) + 0.001f * (float)f.text_len;
                if (f.data_len) {
                    float r0;
                    sdlk_proto_f32_from_le(&r0, body + f.text_len, 1);
                    k += r0;
                }
                log_line(log_fd, "open %lld %llu %u %llu\n", (long long)f.request,
                         (unsigned long long)f.seed, (unsigned)f.text_len,
                         (unsigned long long)f.data_len);
                reqs[nreqs].id = f.request;
                reqs[nreqs].k = k;
                nreqs++;
                sdlk_proto_header ok;
                sdlk_proto_header_init(&ok, SDLK_PROTO_OK);
                ok.request = f.request;
                send_frame(&ok, NULL, NULL);
            }
            free(body);
            continue;
        }
        if (f.op == SDLK_PROTO_CLOSE) {
            for (int i = 0; i < nreqs; i++)
                if (reqs[i].id == f.request)
                    reqs[i] = reqs[--nreqs];
            free(body);
            continue;
        }
        if (f.op != SDLK_PROTO_PREDICT) {
            fprintf(stderr, "sdl-test-worker: unexpected op %u\n", (unsigned)f.op);
            return 5;
        }
        /* a batch: this frame and f.batch - 1 more */
        int n = f.batch;
        int bad = batches >= after;
        batches++;
        if (bad && !strcmp(mode, "crash"))
            exit(3);
        sdlk_proto_header *hs = calloc((size_t)n, sizeof *hs);
        uint8_t **bodies = calloc((size_t)n, sizeof *bodies);
        hs[0] = f;
        bodies[0] = body;
        for (int i = 1; i < n; i++) {
            bodies[i] = read_frame(&hs[i]);
            if (!bodies[i])
                return 0;
        }
        if (bad && !strcmp(mode, "stall")) {
            struct timespec ts = {stall_ms / 1000, (stall_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (bad && !strcmp(mode, "error")) {
            send_error("simulated out of memory");
        } else {
            int unknown = 0;
            for (int i = 0; i < n && !unknown; i++) {
                unknown = 1;
                for (int r = 0; r < nreqs; r++)
                    if (reqs[r].id == hs[i].request)
                        unknown = 0;
            }
            if (unknown) {
                send_error("PREDICT names a request this worker was never sent");
            } else {
                for (int j = 0; j < n; j++) {
                    int i = bad && !strcmp(mode, "dup") ? 0 : j;
                    sdlk_proto_header r = hs[i];
                    int64_t numel = r.shape[0] * r.shape[1] * r.shape[2] * r.shape[3];
                    float k = 0;
                    for (int q = 0; q < nreqs; q++)
                        if (reqs[q].id == r.request)
                            k = reqs[q].k;
                    float *x = malloc((size_t)numel * 2 * sizeof *x);
                    size_t sent = (size_t)numel * ((r.flags & SDLK_PROTO_F_COND) ? 2 : 1);
                    sdlk_proto_f32_from_le(x, bodies[i], sent);
                    for (int64_t e = 0; e < numel; e++)
                        x[e] = 0.5f * x[e] + k +
                               ((r.flags & SDLK_PROTO_F_COND) ? 0.25f * x[numel + e] : 0.0f);
                    log_line(log_fd, "tile %lld %lld %d %d %lld %lld %lld\n",
                             (long long)r.request, (long long)r.tile_id, (int)r.step,
                             (int)r.timestep, (long long)r.offset[0], (long long)r.offset[1],
                             (long long)r.offset[2]);
                    /* a RESULT echoes the PREDICT header: op changes, flags clear */
                    r.op = SDLK_PROTO_RESULT;
                    r.flags = 0;
                    if (bad && !strcmp(mode, "shape")) {
                        r.shape[1] -= 1;
                        numel = r.shape[0] * r.shape[1] * r.shape[2] * r.shape[3];
                    }
                    r.data_len = (uint64_t)numel * 4;
                    uint8_t *le = malloc((size_t)numel * 4);
                    sdlk_proto_f32_to_le(le, x, (size_t)numel);
                    send_frame(&r, NULL, le);
                    free(le);
                    free(x);
                }
            }
        }
        for (int i = 0; i < n; i++)
            free(bodies[i]);
        free(bodies);
        free(hs);
    }
}
