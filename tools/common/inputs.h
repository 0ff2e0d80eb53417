/* inputs.h -- the list of input images a batch tool works on (tools only, never lib/).
 *
 * Contract
 *   Each argument is a file (kept as given, even when it does not exist, so that the
 *   tool reports it on its own line), a directory (walked recursively in name order,
 *   keeping files with an image extension: png jpg jpeg bmp tif tiff webp gif ppm pgm pnm
 *   tga; hidden entries skipped), or "-": a list of such paths read from stdin, one per
 *   line (empty lines ignored). A directory that cannot be read is kept as an entry so
 *   that opening it fails on its line.
 */
#ifndef SDL_TOOLS_INPUTS_H
#define SDL_TOOLS_INPUTS_H

#include <stddef.h>

#include "core/error.h"

typedef struct cli_inputs {
    char **paths;
    size_t count, capacity;
} cli_inputs;

/* Append the inputs named by args[0..n). Fails only when memory runs out. */
sdlk_status cli_inputs_collect(cli_inputs *in, char *const *args, int n, sdlk_error *err);
void cli_inputs_free(cli_inputs *in);

#endif
