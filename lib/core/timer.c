#include "core/timer.h"

#include <time.h>

uint64_t sdlk_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double sdlk_seconds_since(uint64_t start_ns) { return (double)(sdlk_now_ns() - start_ns) * 1e-9; }
