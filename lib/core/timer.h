/* timer.h -- monotonic wall-clock time for measurements and progress.
 *
 * Contract: sdlk_now_ns() reads CLOCK_MONOTONIC; differences between two readings are
 * elapsed nanoseconds, immune to wall-clock changes. No state.
 */
#ifndef SDLK_CORE_TIMER_H
#define SDLK_CORE_TIMER_H

#include <stdint.h>

uint64_t sdlk_now_ns(void);
/* Seconds elapsed since a reading of sdlk_now_ns(). */
double sdlk_seconds_since(uint64_t start_ns);

#endif
