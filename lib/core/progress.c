#include "core/progress.h"

#include <string.h>
#include <unistd.h>

#include "core/timer.h"

void sdlk_progress_start(sdlk_progress *p, FILE *out, int quiet, const char *label,
                         int64_t total)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->enabled = !quiet && out && isatty(fileno(out));
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->start_ns = sdlk_now_ns();
}

static void draw(sdlk_progress *p, uint64_t now)
{
    double elapsed = (double)(now - p->start_ns) * 1e-9;
    if (p->total > 0) {
        enum { width = 30 };
        double frac = (double)p->done / (double)p->total;
        if (frac > 1)
            frac = 1;
        int filled = (int)(frac * width);
        char bar[width + 1];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
        fprintf(p->out, "\r%s [%s] %3d%% %lld/%lld  %.0fs left ", p->label, bar,
                (int)(frac * 100), (long long)p->done, (long long)p->total, eta);
    } else {
        fprintf(p->out, "\r%s %lld  %.1fs ", p->label, (long long)p->done, elapsed);
    }
    fflush(p->out);
    p->last_draw_ns = now;
}

void sdlk_progress_update(sdlk_progress *p, int64_t done)
{
    p->done = done;
    if (!p->enabled)
        return;
    uint64_t now = sdlk_now_ns();
    if (now - p->last_draw_ns >= 100000000u || (p->total > 0 && done >= p->total))
        draw(p, now);
}

void sdlk_progress_finish(sdlk_progress *p)
{
    if (p->enabled && p->last_draw_ns) {
        fprintf(p->out, "\r\033[K");
        fflush(p->out);
    }
    p->enabled = 0;
}
