/* gpu_serve_profile.c -- the latency profile of sdl-serve's built-in model on the GPU.
 *
 * Issue 7's goodput target assumes a model whose calls cost less per tile in larger
 * batches; on the CPU they do not. This program measures the profile of the exemplar
 * model on the GPU (sdlk_serve_live_calibrate with exemplar:device=gpu, as
 * `sdl-serve --calibrate --model exemplar:device=gpu` would) and of the same model on
 * this machine's CPU cores, and writes the GPU profile to $SDL_GPU_PROFILE_OUT (default
 * ./serve-gpu-profile.json; scripts/gpu-check sets it under $OUT) so that
 *     SDL_BENCH_SERVE_PROFILE=serve-gpu-profile.json sdl-bench serve
 * runs the simulated sweep with the GPU's costs on any machine.
 * Rows: the cost per tile of full (B = 16) and single-tile calls, GPU against CPU, and
 * the GPU's batching gain (per-tile cost alone / in full calls). Exits 77 without a GPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"
#include "gpu_check.h"
#include "serve/live.h"
#include "serve/profile.h"

#define BATCH 16

/* Calibrate `model` with `threads` tile workers into *out. */
static int calibrate(const char *model, int threads, const char *reference, const char *dir,
                     sdlk_serve_profile *out)
{
    sdlk_serve_live_opts lo = {.model = model, .out_dir = dir, .threads = threads,
                               .batch = BATCH};
    sdlk_serve_live *live = NULL;
    sdlk_error err = {0};
    sdlk_status st = sdlk_serve_live_create(&lo, &live, &err);
    if (st == SDLK_OK)
        st = sdlk_serve_live_calibrate(live, reference, 5, out, &err);
    sdlk_serve_live_destroy(live);
    if (st != SDLK_OK) {
        printf("FAIL: %s: %s\n", model, err.msg);
        return 0;
    }
    printf("%s (%d workers): tiled %.3f + %.3f ms/tile, untiled %.3f + %.3f ms/tile, open "
           "%.1f ms\n",
           model, threads, out->tiled_a_ms, out->tiled_b_ms, out->canvas_a_ms, out->canvas_b_ms,
           out->open_ms);
    return 1;
}

int main(void)
{
    int rc = gpu_check_require("gpu_serve_profile", 0);
    if (rc)
        return rc;
    const char *data = getenv("SDL_TESTDATA");
    char reference[4096];
    snprintf(reference, sizeof reference, "%s/chelsea.png", data && *data ? data : "tests/data");
    const char *path = getenv("SDL_GPU_PROFILE_OUT");
    if (!path || !*path)
        path = "serve-gpu-profile.json";
    char dir[] = "/tmp/gpu-serve-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    sdlk_serve_profile *gpu = malloc(sizeof *gpu), *cpu = malloc(sizeof *cpu);
    int ok = gpu && cpu && calibrate("exemplar:device=gpu", 1, reference, dir, gpu) &&
             calibrate("exemplar", cores > 0 ? (int)cores : 1, reference, dir, cpu);
    sdlk_error err = {0};
    if (ok && sdlk_serve_profile_write(path, gpu, &err) != SDLK_OK) {
        printf("FAIL: %s\n", err.msg);
        ok = 0;
    }
    if (ok) {
        printf("GPU profile written to %s\n", path);
        double gpu_full = sdlk_serve_profile_tiled_ms(gpu, BATCH) / BATCH;
        double cpu_full = sdlk_serve_profile_tiled_ms(cpu, BATCH) / BATCH;
        double gpu_one = sdlk_serve_profile_tiled_ms(gpu, 1);
        double cpu_one = sdlk_serve_profile_tiled_ms(cpu, 1);
        printf("TABLE|serve profile|B=16 call|ok|%.3f ms/tile|CPU %ld cores %.3f ms/tile|%.2fx\n",
               gpu_full, cores, cpu_full, cpu_full / gpu_full);
        printf("TABLE|serve profile|1-tile call|ok|%.3f ms/tile|CPU %ld cores %.3f ms/tile|%.2fx\n",
               gpu_one, cores, cpu_one, cpu_one / gpu_one);
        printf("TABLE|serve batching|B=16 vs 1|ok|%.2fx per tile|CPU %.2fx per tile|%.2fx\n",
               gpu_one / gpu_full, cpu_one / cpu_full, (gpu_one / gpu_full) / (cpu_one / cpu_full));
    }
    rmdir(dir);
    free(gpu);
    free(cpu);
    return ok ? 0 : 1;
}
