/* progress.h -- a one-line progress bar for long runs.
 *
 * Contract
 *   The bar is drawn on the stream the tool gives (stderr) only when that stream is a
 *   terminal and the tool was not asked to be quiet, so pipelines and logs never get
 *   carriage-return noise. Redraws are throttled to 10 per second; finish() clears the
 *   line. The struct is owned by one thread (tools update it from the thread that
 *   drives the work).
 */
#ifndef SDLK_CORE_PROGRESS_H
#define SDLK_CORE_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct sdlk_progress {
    FILE *out;
    int enabled;
    char label[48];
    int64_t total; /* 0 = unknown: show a count instead of a bar */
    int64_t done;
    uint64_t start_ns, last_draw_ns;
} sdlk_progress;

/* quiet != 0 or a non-terminal `out` disables drawing (calls stay cheap no-ops). */
void sdlk_progress_start(sdlk_progress *p, FILE *out, int quiet, const char *label,
                         int64_t total);
/* Set the number of items done and redraw if due. */
void sdlk_progress_update(sdlk_progress *p, int64_t done);
/* Erase the bar. */
void sdlk_progress_finish(sdlk_progress *p);

#endif
