/* Unit tests of lib/gen/exec and lib/gen/protocol: the out-of-process denoiser driven
 * through tests/workers/sdl-test-worker (path in SDL_TEST_WORKER), whose model is
 * out = 0.5 x + k(request) (+ 0.25 cond), so every tile is checkable. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen/denoiser.h"
#include "gen/exec.h"
#include "gen/protocol.h"
#include "gen/supergen.h"
#include "unit.h"

#define TILE_NUMEL (1 * 8 * 8 * 3) /* the test worker's default tile, 3 channels */

/* Deterministic pseudo-random numbers (xorshift64*), one state per test. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static float random_value(uint64_t *state)
{
    return (float)((double)(next_random(state) >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* The worker command with extra arguments (e.g. "--mode crash --after 1"). */
static void worker_command(char *buf, size_t size, const char *args)
{
    const char *path = getenv("SDL_TEST_WORKER");
    ck_assert_msg(path != NULL, "SDL_TEST_WORKER is not set (run through meson test)");
    snprintf(buf, size, "'%s' %s", path, args ? args : "");
}

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory's own descriptor */
}

/* Children of this process that are zombies (exited, not reaped). */
static int count_zombies(void)
{
    DIR *dir = opendir("/proc");
    ck_assert_ptr_nonnull(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], line[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        size_t len = fread(line, 1, sizeof line - 1, fp);
        fclose(fp);
        line[len] = 0;
        char *close_paren = strrchr(line, ')');
        char state;
        int ppid;
        if (close_paren && sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2 &&
            ppid == (int)getpid() && state == 'Z')
            n++;
    }
    closedir(dir);
    return n;
}

/* After destroy: no child process of any kind and no descriptor left behind. */
static void check_clean(int fds_before)
{
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_int_eq(count_fds(), fds_before);
}

static sdlk_denoiser *create(const char *args, const char *devices, int timeout_ms,
                             int retries, int restarts)
{
    char cmd[4200];
    worker_command(cmd, sizeof cmd, args);
    sdlk_exec_opts o;
    sdlk_exec_opts_init(&o);
    o.timeout_ms = timeout_ms;
    o.retries = retries;
    o.restarts = restarts;
    sdlk_denoiser *d = NULL;
    sdlk_error err = {0};
    sdlk_status st = sdlk_exec_create(cmd, devices, &o, &d, &err);
    ck_assert_msg(st == SDLK_OK, "create: %s", err.msg);
    return d;
}

/* k(request) exactly as the worker computes it. */
static float request_k(uint64_t seed, const char *prompt, const float *ref)
{
    float k = 0.01f * (float)(seed % 100) + 0.001f * (float)(prompt ? strlen(prompt) : 0);
    if (ref)
        k += ref[0];
    return k;
}

static void open_request(sdlk_denoiser *d, int64_t id, uint64_t seed, const char *prompt,
                         const float *ref, const int64_t *ref_shape)
{
    sdlk_gen_request r = {.id = id, .seed = seed, .prompt = prompt, .reference = ref};
    if (ref)
        memcpy(r.ref_shape, ref_shape, sizeof r.ref_shape);
    sdlk_error err = {0};
    sdlk_status st = d->ops->open(d, &r, &err);
    ck_assert_msg(st == SDLK_OK, "open %lld: %s", (long long)id, err.msg);
}

/* A batch of n tiles of `request` with tile ids first..first+n-1, random inputs; the
 * outputs are poisoned with NaN so a tile that is not written shows. */
typedef struct batch {
    sdlk_denoise_item items[16];
    float x[16][TILE_NUMEL], cond[16][TILE_NUMEL], out[16][TILE_NUMEL];
    int n;
} batch;

static void make_batch(batch *b, int n, int64_t request, int64_t first, int with_cond,
                       uint64_t *state)
{
    memset(b, 0, sizeof *b);
    b->n = n;
    for (int i = 0; i < n; i++) {
        for (int e = 0; e < TILE_NUMEL; e++) {
            b->x[i][e] = random_value(state);
            b->cond[i][e] = random_value(state);
            b->out[i][e] = NAN;
        }
        b->items[i] = (sdlk_denoise_item){
            .request = request,
            .tile_id = first + i,
            .step = (int32_t)(first % 7),
            .timestep = 500,
            .level = 0.25,
            .offset = {0, 8 * i, 8 * (int64_t)(first % 5)},
            .x = b->x[i],
            .cond = with_cond && (i % 2) ? b->cond[i] : NULL,
            .out = b->out[i],
        };
    }
}

static void check_batch(const batch *b, float k)
{
    for (int i = 0; i < b->n; i++)
        for (int e = 0; e < TILE_NUMEL; e++) {
            float want = 0.5f * b->x[i][e] + k + (b->items[i].cond ? 0.25f * b->cond[i][e] : 0.0f);
            ck_assert_msg(fabsf(b->out[i][e] - want) <= 1e-6f,
                          "tile %lld element %d: %g, expected %g", (long long)b->items[i].tile_id,
                          e, (double)b->out[i][e], (double)want);
        }
}

static sdlk_status predict(sdlk_denoiser *d, batch *b, sdlk_error *err)
{
    return d->ops->predict(d, b->items, b->n, err);
}

START_TEST(protocol_round_trip_and_rejections)
{
    sdlk_proto_header h;
    sdlk_proto_header_init(&h, SDLK_PROTO_PREDICT);
    h.request = -5;
    h.tile_id = 1234567890123ll;
    h.step = 3;
    h.timestep = 999;
    h.level = 0.125;
    h.offset[1] = 64;
    h.shape[0] = 1;
    h.shape[1] = 2;
    h.shape[2] = 2;
    h.shape[3] = 3;
    h.dtype = SDLK_PROTO_DT_F32;
    h.flags = SDLK_PROTO_F_COND;
    h.batch = 2;
    h.index = 1;
    h.data_len = 2 * 12 * 4;
    uint8_t buf[SDLK_PROTO_HEADER_SIZE + 96];
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_proto_encode_header(&h, buf, "test", &err), SDLK_OK);
    ck_assert_int_eq(memcmp(buf, "SDLW", 4), 0);
    ck_assert_int_eq(buf[4], 1);
    ck_assert_int_eq(buf[6], SDLK_PROTO_PREDICT);
    for (int i = 0; i < 96; i++)
        buf[SDLK_PROTO_HEADER_SIZE + i] = (uint8_t)i;
    sdlk_proto_frame f;
    size_t used = 0;
    ck_assert_int_eq(sdlk_proto_parse(buf, sizeof buf, &f, &used, "test", &err), SDLK_OK);
    ck_assert_uint_eq(used, sizeof buf);
    ck_assert_int_eq(f.h.request, -5);
    ck_assert_int_eq(f.h.tile_id, 1234567890123ll);
    ck_assert(f.h.level == 0.125);
    ck_assert_int_eq(f.h.offset[1], 64);
    ck_assert_ptr_eq(f.data, buf + SDLK_PROTO_HEADER_SIZE);
    uint8_t again[SDLK_PROTO_HEADER_SIZE];
    ck_assert_int_eq(sdlk_proto_encode_header(&f.h, again, "test", &err), SDLK_OK);
    ck_assert_int_eq(memcmp(again, buf, sizeof again), 0);

    /* truncated body, truncated header, bad magic, lying data length, unknown op */
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_proto_parse(buf, sizeof buf - 1, &f, &used, "peer", &err),
                     SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
    ck_assert_ptr_nonnull(strstr(err.msg, "peer"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_proto_parse(buf, 60, &f, &used, "peer", &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_proto_parse((const uint8_t *)"hello world", 11, &f, &used, "peer", &err),
                     SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "hello world"));
    uint8_t bad[sizeof buf];
    memcpy(bad, buf, sizeof buf);
    bad[16] ^= 4; /* data_len */
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_proto_parse(bad, sizeof bad, &f, &used, "peer", &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "data bytes"));
    memcpy(bad, buf, sizeof buf);
    bad[6] = 99;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_proto_parse(bad, sizeof bad, &f, &used, "peer", &err), SDLK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown op"));
    /* a shape whose byte size overflows int64 */
    memcpy(bad, buf, sizeof buf);
    for (int i = 0; i < 4; i++)
        memset(bad + 88 + 8 * i, 0x7f, 8);
    sdlk_error_clear(&err);
    ck_assert_int_ne(sdlk_proto_parse(bad, sizeof bad, &f, &used, "peer", &err), SDLK_OK);
    /* index outside the batch */
    memcpy(bad, buf, sizeof buf);
    bad[122] = 2;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_proto_parse(bad, sizeof bad, &f, &used, "peer", &err), SDLK_ERR_FORMAT);
    /* reserved bytes */
    memcpy(bad, buf, sizeof buf);
    bad[127] = 1;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_proto_parse(bad, sizeof bad, &f, &used, "peer", &err), SDLK_ERR_FORMAT);
    /* a future version */
    memcpy(bad, buf, sizeof buf);
    bad[4] = 2;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_proto_parse(bad, sizeof bad, &f, &used, "peer", &err),
                     SDLK_ERR_UNSUPPORTED);
}
END_TEST

START_TEST(results_are_correct_per_tile)
{
    int fds = count_fds();
    sdlk_denoiser *d = create(NULL, NULL, 20000, 2, 4);
    ck_assert_int_eq(d->desc.channels, 3);
    ck_assert_int_eq(d->desc.tile[0], 1);
    ck_assert_int_eq(d->desc.tile[1], 8);
    ck_assert_int_eq(d->desc.tile[2], 8);
    ck_assert_int_eq(d->desc.pred, SDLK_PRED_X0);
    ck_assert_int_eq(d->desc.time, SDLK_TIME_VP);
    ck_assert_int_eq(d->desc.max_batch, 4);
    ck_assert_int_eq(d->desc.workers, 1);
    ck_assert_ptr_nonnull(strstr(d->desc.name, "exec:"));
    sdlk_exec_worker_info info;
    ck_assert_int_eq(sdlk_exec_worker_get(d, 0, &info), 0);
    ck_assert_ptr_nonnull(strstr(info.hello, "sdl-test-worker"));
    ck_assert_int_eq(sdlk_exec_worker_get(d, 1, &info), -1);

    float ref[2 * 3 * 4 * 3];
    for (int i = 0; i < (int)(sizeof ref / sizeof ref[0]); i++)
        ref[i] = 0.125f - 0.01f * (float)i;
    const int64_t ref_shape[4] = {2, 3, 4, 3};
    open_request(d, 7, 42, "a cat", ref, ref_shape);
    open_request(d, 8, 1099, NULL, NULL, NULL);
    uint64_t state = 99;
    static batch b;
    for (int round = 0; round < 5; round++) {
        sdlk_error err = {0};
        make_batch(&b, 1 + round % 4, round % 2 ? 8 : 7, 100 * round, round >= 2, &state);
        ck_assert_msg(predict(d, &b, &err) == SDLK_OK, "%s", err.msg);
        check_batch(&b, round % 2 ? request_k(1099, NULL, NULL) : request_k(42, "a cat", ref));
    }
    /* caller errors: not open, too big a batch, a second open of the same id */
    sdlk_error err = {0};
    make_batch(&b, 2, 9, 0, 0, &state);
    ck_assert_int_eq(predict(d, &b, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "not open"));
    make_batch(&b, 5, 7, 0, 0, &state);
    sdlk_error_clear(&err);
    ck_assert_int_eq(predict(d, &b, &err), SDLK_ERR_ARG);
    sdlk_gen_request again = {.id = 7};
    sdlk_error_clear(&err);
    ck_assert_int_eq(d->ops->open(d, &again, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "already open"));
    /* closed requests are gone for the worker too */
    d->ops->close(d, 7);
    make_batch(&b, 1, 7, 0, 0, &state);
    sdlk_error_clear(&err);
    ck_assert_int_eq(predict(d, &b, &err), SDLK_ERR_ARG);
    sdlk_exec_stats stats;
    sdlk_exec_get_stats(d, &stats);
    ck_assert_int_eq(stats.batches, 5);
    ck_assert_int_eq(stats.retried_batches, 0);
    ck_assert_int_eq(stats.worker_failures, 0);
    ck_assert_int_eq(stats.live_workers, 1);
    d->ops->destroy(d);
    check_clean(fds);
}
END_TEST

START_TEST(devices_get_their_cuda_visible_devices)
{
    int fds = count_fds();
    sdlk_denoiser *d = create(NULL, "0, 1", 20000, 2, 4);
    ck_assert_int_eq(d->desc.workers, 2);
    for (int i = 0; i < 2; i++) {
        sdlk_exec_worker_info info;
        ck_assert_int_eq(sdlk_exec_worker_get(d, i, &info), 0);
        char want[64];
        snprintf(want, sizeof want, "sdl-test-worker dev=%d", i);
        ck_assert_str_eq(info.hello, want);
        ck_assert_int_eq(info.device[0], '0' + i);
        ck_assert_int_gt(info.pid, 0);
        ck_assert(info.alive);
    }
    /* both serve batches */
    open_request(d, 1, 3, NULL, NULL, NULL);
    uint64_t state = 5;
    static batch b;
    for (int round = 0; round < 4; round++) {
        sdlk_error err = {0};
        make_batch(&b, 4, 1, 10 * round, 0, &state);
        ck_assert_msg(predict(d, &b, &err) == SDLK_OK, "%s", err.msg);
        check_batch(&b, request_k(3, NULL, NULL));
    }
    for (int i = 0; i < 2; i++) {
        sdlk_exec_worker_info info;
        sdlk_exec_worker_get(d, i, &info);
        ck_assert_int_eq(info.batches, 2);
    }
    d->ops->destroy(d);
    check_clean(fds);

    /* bad device lists are usage errors */
    const char *bad[] = {"", "0,,1", "0,", "0;1", "0123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cmd[4200];
        worker_command(cmd, sizeof cmd, NULL);
        sdlk_error err = {0};
        ck_assert_int_eq(sdlk_exec_create(cmd, bad[i], NULL, &d, &err), SDLK_ERR_ARG);
        ck_assert_ptr_null(d);
        ck_assert_ptr_nonnull(strstr(err.msg, "device"));
    }
    check_clean(fds);
}
END_TEST

START_TEST(crashed_worker_batch_is_rerun_elsewhere)
{
    int fds = count_fds();
    /* the worker on device 1 exits in the middle of its second batch */
    sdlk_denoiser *d = create("--mode crash --after 1 --only-device 1", "0,1", 20000, 2, 4);
    open_request(d, 11, 17, "p", NULL, NULL);
    uint64_t state = 7;
    static batch b;
    for (int round = 0; round < 10; round++) {
        sdlk_error err = {0};
        make_batch(&b, 4, 11, 4 * round, 1, &state);
        ck_assert_msg(predict(d, &b, &err) == SDLK_OK, "round %d: %s", round, err.msg);
        check_batch(&b, request_k(17, "p", NULL));
    }
    sdlk_exec_stats stats;
    sdlk_exec_get_stats(d, &stats);
    ck_assert_int_eq(stats.batches, 10);
    ck_assert_int_ge(stats.worker_failures, 1);
    ck_assert_int_ge(stats.retried_batches, 1);
    ck_assert_int_eq(count_zombies(), 0); /* the crashed worker was reaped at once */
    sdlk_exec_worker_info info;
    sdlk_exec_worker_get(d, 1, &info);
    ck_assert_int_ge(info.failures, 1);
    d->ops->destroy(d);
    check_clean(fds);

    /* one worker only: it is restarted, the open request replayed, the batch rerun */
    d = create("--mode crash --after 2", NULL, 20000, 2, 4);
    float ref[1 * 2 * 2 * 3] = {0.5f};
    const int64_t shape[4] = {1, 2, 2, 3};
    open_request(d, 12, 5, "prompt", ref, shape);
    for (int round = 0; round < 6; round++) {
        sdlk_error err = {0};
        make_batch(&b, 3, 12, 3 * round, 0, &state);
        ck_assert_msg(predict(d, &b, &err) == SDLK_OK, "round %d: %s", round, err.msg);
        check_batch(&b, request_k(5, "prompt", ref));
    }
    sdlk_exec_get_stats(d, &stats);
    ck_assert_int_eq(stats.batches, 6);
    ck_assert_int_eq(stats.restarts, 2);
    ck_assert_int_eq(stats.worker_failures, 2);
    ck_assert_int_eq(stats.retried_batches, 2);
    ck_assert_int_eq(stats.live_workers, 1);
    ck_assert_int_eq(count_zombies(), 0);
    d->ops->destroy(d);
    check_clean(fds);
}
END_TEST

START_TEST(stalled_worker_times_out_and_batch_is_retried)
{
    int fds = count_fds();
    sdlk_denoiser *d = create("--mode stall --only-device 1", "0,1", 500, 2, 4);
    open_request(d, 1, 2, NULL, NULL, NULL);
    uint64_t state = 11;
    static batch b;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < 4; round++) {
        sdlk_error err = {0};
        make_batch(&b, 2, 1, 2 * round, 0, &state);
        ck_assert_msg(predict(d, &b, &err) == SDLK_OK, "round %d: %s", round, err.msg);
        check_batch(&b, request_k(2, NULL, NULL));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    ck_assert_msg(seconds < 5.0, "took %.2f s", seconds);
    sdlk_exec_stats stats;
    sdlk_exec_get_stats(d, &stats);
    ck_assert_int_eq(stats.worker_failures, 1);
    ck_assert_int_eq(stats.retried_batches, 1);
    ck_assert_int_eq(stats.live_workers, 1);
    d->ops->destroy(d);
    check_clean(fds);

    /* every worker stalls: a clear timeout error once retries are spent */
    d = create("--mode stall", "0,1", 300, 1, 1);
    open_request(d, 1, 2, NULL, NULL, NULL);
    sdlk_error err = {0};
    make_batch(&b, 1, 1, 0, 0, &state);
    ck_assert_int_eq(predict(d, &b, &err), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "timeout"));
    ck_assert_ptr_nonnull(strstr(err.msg, "sdl-test-worker"));
    ck_assert_ptr_nonnull(strstr(err.msg, "failed 2 times"));
    d->ops->destroy(d);
    check_clean(fds);
}
END_TEST

/* Every worker misbehaves in `mode`: retries, then an error containing `want`. */
static void all_fail(const char *mode, sdlk_status code, const char *want)
{
    int fds = count_fds();
    char args[128];
    snprintf(args, sizeof args, "--mode %s", mode);
    sdlk_denoiser *d = create(args, "0,1", 5000, 2, 1);
    open_request(d, 1, 2, NULL, NULL, NULL);
    uint64_t state = 13;
    static batch b;
    make_batch(&b, 3, 1, 0, 0, &state);
    sdlk_error err = {0};
    ck_assert_int_eq(predict(d, &b, &err), code);
    ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg, want);
    ck_assert_ptr_nonnull(strstr(err.msg, "sdl-test-worker"));
    sdlk_exec_stats stats;
    sdlk_exec_get_stats(d, &stats);
    ck_assert_int_eq(stats.worker_failures, 3); /* 1 + 2 retries */
    ck_assert_int_eq(stats.restarts, 1);
    ck_assert_int_eq(stats.batches, 0);
    ck_assert_int_eq(count_zombies(), 0);
    /* the budget is spent and both slots are dead: a clear error, no hang */
    sdlk_error_clear(&err);
    ck_assert_int_ne(predict(d, &b, &err), SDLK_OK);
    ck_assert_ptr_nonnull(strstr(err.msg, "no live worker"));
    d->ops->destroy(d);
    check_clean(fds);
}

START_TEST(wrong_shape_error_and_duplicates_are_retried_then_fail_clearly)
{
    all_fail("shape", SDLK_ERR_FORMAT, "wrong shape");
    all_fail("error", SDLK_ERR_IO, "simulated out of memory");
    all_fail("dup", SDLK_ERR_FORMAT, "index repeated");

    /* only one worker misbehaves: the batch succeeds on the other */
    const char *modes[] = {"shape", "error", "dup"};
    for (int m = 0; m < 3; m++) {
        int fds = count_fds();
        char args[128];
        snprintf(args, sizeof args, "--mode %s --only-device 0", modes[m]);
        sdlk_denoiser *d = create(args, "0,1", 5000, 2, 0);
        open_request(d, 4, 44, NULL, NULL, NULL);
        uint64_t state = 17;
        static batch b;
        for (int round = 0; round < 3; round++) {
            sdlk_error err = {0};
            make_batch(&b, 4, 4, 4 * round, 1, &state);
            ck_assert_msg(predict(d, &b, &err) == SDLK_OK, "%s: %s", modes[m], err.msg);
            check_batch(&b, request_k(44, NULL, NULL));
        }
        sdlk_exec_stats stats;
        sdlk_exec_get_stats(d, &stats);
        ck_assert_int_eq(stats.worker_failures, 1);
        d->ops->destroy(d);
        check_clean(fds);
    }
}
END_TEST

static void create_fails(const char *args, int timeout_ms, sdlk_status code, const char *want)
{
    int fds = count_fds();
    char cmd[4200];
    worker_command(cmd, sizeof cmd, args);
    sdlk_exec_opts o;
    sdlk_exec_opts_init(&o);
    o.timeout_ms = timeout_ms;
    sdlk_denoiser *d = (sdlk_denoiser *)1;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_exec_create(cmd, "0,1", &o, &d, &err), code);
    ck_assert_ptr_null(d);
    ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg, want);
    ck_assert_ptr_nonnull(strstr(err.msg, "sdl-test-worker"));
    check_clean(fds);
}

START_TEST(bad_hello_is_a_clear_create_error)
{
    create_fails("--mode garbage", 5000, SDLK_ERR_FORMAT, "not a protocol frame");
    create_fails("--mode garbage", 5000, SDLK_ERR_FORMAT, "Loading model");
    create_fails("--mode exit7", 5000, SDLK_ERR_IO, "exited with status 7");
    create_fails("--mode silent", 300, SDLK_ERR_IO, "timeout");
    create_fails("--bogus-option 1", 5000, SDLK_ERR_IO, "exited with status 2");
    /* workers that disagree about the model */
    create_fails("--channels 3$CUDA_VISIBLE_DEVICES", 5000, SDLK_ERR_FORMAT, "disagree");
    /* a command that does not exist: the shell's 127 */
    int fds = count_fds();
    sdlk_denoiser *d = NULL;
    sdlk_error err = {0};
    /* the HELLO wait has its own limit when one is given */
    char cmd[4200];
    worker_command(cmd, sizeof cmd, "--mode silent");
    sdlk_exec_opts o;
    sdlk_exec_opts_init(&o);
    o.timeout_ms = 60000;
    o.start_timeout_ms = 200;
    ck_assert_int_eq(sdlk_exec_create(cmd, NULL, &o, &d, &err), SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "nothing within 200 ms"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_exec_create("/nonexistent/worker --x", NULL, NULL, &d, &err),
                     SDLK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/worker"));
    ck_assert_ptr_nonnull(strstr(err.msg, "status 127"));
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_exec_create("", NULL, NULL, &d, &err), SDLK_ERR_ARG);
    check_clean(fds);

    /* a worker refusing a request fails the open, not the backend */
    d = create("--mode refuse", NULL, 5000, 2, 4);
    sdlk_gen_request r = {.id = 3, .seed = 1};
    sdlk_error_clear(&err);
    ck_assert_int_eq(d->ops->open(d, &r, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "refuses every request"));
    sdlk_exec_stats stats;
    sdlk_exec_get_stats(d, &stats);
    ck_assert_int_eq(stats.live_workers, 1);
    static batch b;
    uint64_t state = 1;
    make_batch(&b, 1, 3, 0, 0, &state);
    sdlk_error_clear(&err);
    ck_assert_int_eq(predict(d, &b, &err), SDLK_ERR_ARG); /* never opened */
    d->ops->destroy(d);
    check_clean(fds);
}
END_TEST

typedef struct thread_job {
    sdlk_denoiser *d;
    int index;
    int failures;
    char msg[SDLK_ERROR_MSG_MAX];
} thread_job;

static void *predict_thread(void *arg)
{
    thread_job *job = arg;
    /* each thread opens its own request while the others predict */
    int64_t id = 100 + job->index;
    uint64_t seed = 1000 + (uint64_t)job->index * 7;
    sdlk_gen_request r = {.id = id, .seed = seed};
    sdlk_error err = {0};
    if (job->d->ops->open(job->d, &r, &err) != SDLK_OK) {
        job->failures++;
        snprintf(job->msg, sizeof job->msg, "open: %s", err.msg);
        return NULL;
    }
    batch *b = malloc(sizeof *b);
    uint64_t state = 31 + (uint64_t)job->index;
    float k = request_k(seed, NULL, NULL);
    for (int round = 0; round < 10; round++) {
        make_batch(b, 1 + (round + job->index) % 4, id, 1000 * job->index + 4 * round, round % 2,
                   &state);
        sdlk_error_clear(&err);
        if (job->d->ops->predict(job->d, b->items, b->n, &err) != SDLK_OK) {
            job->failures++;
            snprintf(job->msg, sizeof job->msg, "%s", err.msg);
            continue;
        }
        for (int i = 0; i < b->n; i++)
            for (int e = 0; e < TILE_NUMEL; e++) {
                float want = 0.5f * b->x[i][e] + k +
                             (b->items[i].cond ? 0.25f * b->cond[i][e] : 0.0f);
                if (!(fabsf(b->out[i][e] - want) <= 1e-6f)) {
                    job->failures++;
                    snprintf(job->msg, sizeof job->msg, "tile %lld wrong",
                             (long long)b->items[i].tile_id);
                }
            }
    }
    free(b);
    job->d->ops->close(job->d, id);
    return NULL;
}

START_TEST(concurrent_predicts_from_several_threads)
{
    int fds = count_fds();
    /* three workers, one of which crashes once: retries under contention */
    sdlk_denoiser *d = create("--mode crash --after 3 --only-device 2", "0,1,2", 20000, 2, 4);
    enum { THREADS = 6 };
    pthread_t th[THREADS];
    thread_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (thread_job){.d = d, .index = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, predict_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(jobs[i].failures == 0, "thread %d: %d failures: %s", i, jobs[i].failures,
                      jobs[i].msg);
    }
    sdlk_exec_stats stats;
    sdlk_exec_get_stats(d, &stats);
    ck_assert_int_eq(stats.batches, THREADS * 10);
    ck_assert_int_ge(stats.worker_failures, 1);
    int64_t total = 0;
    for (int i = 0; i < 3; i++) {
        sdlk_exec_worker_info info;
        sdlk_exec_worker_get(d, i, &info);
        total += info.batches;
    }
    ck_assert_int_eq(total, THREADS * 10);
    ck_assert_int_eq(count_zombies(), 0);
    d->ops->destroy(d);
    check_clean(fds);
}
END_TEST

/* ---- stage 1 through the worker: the sketch generator (supergen.h) ------------------- */

enum { SK_H = 20, SK_W = 24, SK_STEPS = 4, SK_FRAME = SK_H * SK_W * 3 };

/* A log file for the worker's --log (removed by the caller). */
static void temp_log(char *path, size_t size)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, size, "%s/sdl-sketch-log-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

typedef struct sketch_run {
    const char *worker_args;   /* besides --tile 1x16x16 */
    const char *devices;
    const char *prompt;
    uint64_t seed;
    int64_t frames, chunk, overlap;
    /* results */
    uint8_t pixels[8 * SK_FRAME];
    int64_t emitted;
    sdlk_sketch_stats stats;
    sdlk_exec_stats exec;
} sketch_run;

/* Generate run->frames frames of SK_W x SK_H with the test worker (16x16 tiles: a
 * 32x32 padded canvas of 4 tiles per frame), cache off, two tile workers. */
static void sketch_generate(sketch_run *run)
{
    int fds = count_fds();
    char args[512];
    snprintf(args, sizeof args, "--tile 1x16x16 %s", run->worker_args ? run->worker_args : "");
    sdlk_denoiser *d = create(args, run->devices, 20000, 2, 4);
    sdlk_sketch_opts o;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_sketch_opts_init(&o, &d->desc, &err), SDLK_OK);
    ck_assert_int_eq(sdlk_schedule_init(&o.refine.schedule, d->desc.time, SK_STEPS, 1.0, &err),
                     SDLK_OK);
    o.h = SK_H;
    o.w = SK_W;
    o.frames = run->frames;
    o.chunk = run->chunk;
    o.overlap = run->overlap;
    o.prompt = run->prompt;
    o.refine.seed = run->seed;
    o.refine.cache.enabled = 0;
    o.refine.workers = 2;
    sdlk_sketch_gen *g = NULL;
    ck_assert_msg(sdlk_sketch_create(d, &o, &g, &err) == SDLK_OK, "%s", err.msg);
    run->emitted = 0;
    for (;;) {
        sdlk_tensor frame;
        sdlk_tensor_init(&frame);
        sdlk_status st = sdlk_sketch_next(g, &frame, &err);
        if (st == SDLK_ERR_EOF)
            break;
        ck_assert_msg(st == SDLK_OK, "frame %lld: %s", (long long)run->emitted, err.msg);
        ck_assert_int_eq(frame.ndim, 3);
        ck_assert_int_eq(frame.shape[0], SK_H);
        ck_assert_int_eq(frame.shape[1], SK_W);
        ck_assert_int_eq(frame.shape[2], 3);
        ck_assert_int_eq(frame.dtype, SDLK_U8);
        ck_assert_int_lt(run->emitted, 8);
        for (int64_t i = 0; i < SK_FRAME; i++)
            run->pixels[run->emitted * SK_FRAME + i] = ((const uint8_t *)frame.data)[i];
        sdlk_tensor_free(&frame);
        run->emitted++;
    }
    sdlk_sketch_get_stats(g, &run->stats);
    sdlk_exec_get_stats(d, &run->exec);
    sdlk_sketch_destroy(g);
    sdlk_denoiser_destroy(d);
    check_clean(fds);
}

START_TEST(sketch_asks_the_worker_for_every_tile_and_step)
{
    char log[4096];
    temp_log(log, sizeof log);
    char args[4200];
    snprintf(args, sizeof args, "--log '%s'", log);
    static sketch_run run;
    run = (sketch_run){.worker_args = args, .devices = "0,1", .prompt = "a red fox",
                       .seed = 7, .frames = 3, .chunk = 8, .overlap = 2};
    sketch_generate(&run);
    ck_assert_int_eq(run.emitted, 3);
    ck_assert_int_eq(run.stats.frames, 3);
    ck_assert_int_eq(run.stats.chunks, 1);
    ck_assert_int_eq(run.stats.pad_h, 32);
    ck_assert_int_eq(run.stats.pad_w, 32);
    ck_assert_int_eq(run.stats.refine.computed, 3 * 4 * SK_STEPS);

    /* the worker's own record: the prompt came in OPEN without a reference, and every
     * (step, tile) of the 12-tile canvas was predicted exactly once, from the first
     * timestep of a strength-1 schedule down */
    FILE *fp = fopen(log, "r");
    ck_assert_ptr_nonnull(fp);
    int seen[SK_STEPS][12] = {{0}};
    int opens = 0, tiles = 0;
    char line[256];
    while (fgets(line, sizeof line, fp)) {
        long long req, a, b, c, ot, oh, ow;
        int step, timestep;
        if (sscanf(line, "open %lld %lld %lld %lld", &req, &a, &b, &c) == 4) {
            ck_assert_int_eq(req, SDLK_SKETCH_REQUEST);
            ck_assert_int_eq(a, 7);                     /* seed */
            ck_assert_int_eq(b, strlen("a red fox"));   /* prompt bytes */
            ck_assert_int_eq(c, 0);                     /* no reference */
            opens++;
        } else if (sscanf(line, "tile %lld %lld %d %d %lld %lld %lld", &req, &a, &step,
                          &timestep, &ot, &oh, &ow) == 7) {
            ck_assert_int_eq(req, SDLK_SKETCH_REQUEST);
            ck_assert(a >= 0 && a < 12 && step >= 0 && step < SK_STEPS);
            ck_assert(ot >= 0 && ot < 3 && oh >= 0 && oh < 32 && ow >= 0 && ow < 32);
            if (step == 0)
                ck_assert_int_eq(timestep, 999);
            seen[step][a]++;
            tiles++;
        } else {
            ck_abort_msg("unexpected log line: %s", line);
        }
    }
    fclose(fp);
    unlink(log);
    ck_assert_int_eq(opens, 2); /* one per worker */
    ck_assert_int_eq(tiles, 3 * 4 * SK_STEPS);
    for (int st = 0; st < SK_STEPS; st++)
        for (int t = 0; t < 12; t++)
            ck_assert_msg(seen[st][t] == 1, "step %d tile %d predicted %d times", st, t,
                          seen[st][t]);
}
END_TEST

START_TEST(sketch_is_deterministic_and_survives_a_worker_crash)
{
    /* 5 frames in chunks of 3 sharing 1: frames 0-2, then 2 (pinned) and 3-4 */
    static sketch_run base, again, crash, other_prompt, other_seed;
    const sketch_run plan = {.devices = "0,1", .prompt = "a red fox", .seed = 7, .frames = 5,
                             .chunk = 3, .overlap = 1};
    base = again = crash = other_prompt = other_seed = plan;
    crash.worker_args = "--mode crash --after 2 --only-device 1";
    other_prompt.prompt = "a grey wolf!";
    other_seed.seed = 8;
    sketch_generate(&base);
    sketch_generate(&again);
    sketch_generate(&crash);
    sketch_generate(&other_prompt);
    sketch_generate(&other_seed);
    ck_assert_int_eq(base.emitted, 5);
    ck_assert_int_eq(base.stats.chunks, 2);
    ck_assert_int_eq(base.stats.refine.computed, (3 + 3) * 4 * SK_STEPS);
    size_t bytes = 5 * SK_FRAME;
    ck_assert_int_eq(memcmp(base.pixels, again.pixels, bytes), 0);
    ck_assert_int_ge(crash.exec.worker_failures, 1);
    ck_assert_int_ge(crash.exec.retried_batches, 1);
    ck_assert_int_eq(crash.emitted, 5);
    ck_assert_int_eq(memcmp(base.pixels, crash.pixels, bytes), 0);
    ck_assert_int_ne(memcmp(base.pixels, other_prompt.pixels, bytes), 0);
    ck_assert_int_ne(memcmp(base.pixels, other_seed.pixels, bytes), 0);
    /* not a constant picture */
    int distinct = 0;
    for (size_t i = 1; i < bytes && !distinct; i++)
        distinct = base.pixels[i] != base.pixels[0];
    ck_assert(distinct);
}
END_TEST

START_TEST(sketch_chunks_are_whole_temporal_tiles)
{
    /* tiles of 2 frames: a chunk of 3 is rounded up to 4 (frames 0-3), and the last
     * chunk continues frame 3 and makes frame 4 on a 2-frame canvas */
    static sketch_run run;
    run = (sketch_run){.worker_args = "--tile 2x16x16", .devices = "0", .prompt = "waves",
                       .seed = 3, .frames = 5, .chunk = 3, .overlap = 1};
    sketch_generate(&run);
    ck_assert_int_eq(run.emitted, 5);
    ck_assert_int_eq(run.stats.chunks, 2);
    ck_assert_int_eq(run.stats.refine.computed, (4 + 2) / 2 * 4 * SK_STEPS);
}
END_TEST

START_TEST(sketch_failures_are_reported)
{
    /* the built-in model has no prior without a reference: the open fails, clearly and
     * every time; a worker that fails every batch fails the frame */
    sdlk_denoiser *d = NULL;
    sdlk_error err = {0};
    ck_assert_int_eq(sdlk_denoiser_open_spec("exemplar", NULL, 0, &d, &err), SDLK_OK);
    sdlk_sketch_opts o;
    ck_assert_int_eq(sdlk_sketch_opts_init(&o, &d->desc, &err), SDLK_OK);
    o.h = 16;
    o.w = 16;
    o.frames = 1;
    o.prompt = "a red fox";
    sdlk_sketch_gen *g = NULL;
    ck_assert_int_eq(sdlk_sketch_create(d, &o, &g, &err), SDLK_OK);
    sdlk_tensor frame;
    sdlk_tensor_init(&frame);
    for (int i = 0; i < 2; i++) {
        sdlk_error_clear(&err);
        ck_assert_int_ne(sdlk_sketch_next(g, &frame, &err), SDLK_OK);
        ck_assert_ptr_nonnull(strstr(err.msg, "stage 1"));
        ck_assert_ptr_nonnull(strstr(err.msg, "reference"));
    }
    sdlk_sketch_destroy(g);
    sdlk_denoiser_destroy(d);

    d = create("--tile 1x16x16 --mode error", NULL, 20000, 1, 1);
    ck_assert_int_eq(sdlk_sketch_opts_init(&o, &d->desc, &err), SDLK_OK);
    o.h = 16;
    o.w = 16;
    o.frames = 2;
    ck_assert_int_eq(sdlk_sketch_create(d, &o, &g, &err), SDLK_OK);
    sdlk_error_clear(&err);
    ck_assert_int_ne(sdlk_sketch_next(g, &frame, &err), SDLK_OK);
    ck_assert_ptr_nonnull(strstr(err.msg, "stage 1, frames 0..1"));
    ck_assert_ptr_nonnull(strstr(err.msg, "simulated out of memory"));
    sdlk_sketch_destroy(g);
    sdlk_denoiser_destroy(d);
    /* options that cannot work */
    d = create("--tile 1x16x16 --channels 4", NULL, 20000, 1, 1);
    ck_assert_int_eq(sdlk_sketch_opts_init(&o, &d->desc, &err), SDLK_OK);
    o.h = 16;
    o.w = 16;
    o.frames = 1;
    sdlk_error_clear(&err);
    ck_assert_int_eq(sdlk_sketch_create(d, &o, &g, &err), SDLK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "channels"));
    sdlk_denoiser_destroy(d);
}
END_TEST

int main(void)
{
    /* exec.h: the process ignores SIGPIPE, as the tools do */
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("gen_exec");
    TCase *proto = tcase_create("protocol");
    tcase_add_test(proto, protocol_round_trip_and_rejections);
    suite_add_tcase(s, proto);
    TCase *exec = tcase_create("exec");
    tcase_set_timeout(exec, 120);
    tcase_add_test(exec, results_are_correct_per_tile);
    tcase_add_test(exec, devices_get_their_cuda_visible_devices);
    tcase_add_test(exec, crashed_worker_batch_is_rerun_elsewhere);
    tcase_add_test(exec, stalled_worker_times_out_and_batch_is_retried);
    tcase_add_test(exec, wrong_shape_error_and_duplicates_are_retried_then_fail_clearly);
    tcase_add_test(exec, bad_hello_is_a_clear_create_error);
    tcase_add_test(exec, concurrent_predicts_from_several_threads);
    suite_add_tcase(s, exec);
    TCase *sketch = tcase_create("sketch");
    tcase_set_timeout(sketch, 120);
    tcase_add_test(sketch, sketch_asks_the_worker_for_every_tile_and_step);
    tcase_add_test(sketch, sketch_is_deterministic_and_survives_a_worker_crash);
    tcase_add_test(sketch, sketch_chunks_are_whole_temporal_tiles);
    tcase_add_test(sketch, sketch_failures_are_reported);
    suite_add_tcase(s, sketch);
    return unit_run_suite(s);
}
