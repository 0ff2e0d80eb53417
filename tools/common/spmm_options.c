/* spmm_options.c -- the aggregation options of sdl-spmm and sdl-gnn (spmm_options.h). */
#include "spmm_options.h"

#include <string.h>

void cli_spmm_options_init(cli_spmm_options *o)
{
    o->condensed = 1;
    o->isa = SDLK_ISA_AUTO;
    o->device = SDLK_DEVICE_CPU;
}

int cli_spmm_option(const sdl_cli *cli, int opt, const char *arg, cli_spmm_options *o)
{
    switch (opt) {
    case CLI_OPT_SPMM_KERNEL:
        if (strcmp(arg, "csr") != 0 && strcmp(arg, "condensed") != 0)
            return cli_usage_error(cli, "--kernel: '%s' is not csr or condensed", arg);
        o->condensed = strcmp(arg, "condensed") == 0;
        return SDL_EXIT_OK;
    case CLI_OPT_SPMM_ISA: {
        sdlk_error err = {0};
        if (sdlk_isa_parse(arg, &o->isa, &err) != SDLK_OK)
            return cli_fail(cli, &err); /* an argument error: exit 2 */
        return SDL_EXIT_OK;
    }
    case CLI_OPT_SPMM_DEVICE:
        return cli_parse_device(cli, arg, &o->device) ? SDL_EXIT_OK : SDL_EXIT_USAGE;
    default: return -1;
    }
}

int cli_spmm_options_check(const sdl_cli *cli, cli_spmm_options *o)
{
    if (o->device == SDLK_DEVICE_GPU && !o->condensed)
        return cli_usage_error(cli, "--device gpu runs the condensed kernel only (not --kernel "
                                    "csr)");
    if (!o->condensed)
        o->device = SDLK_DEVICE_CPU;
    return SDL_EXIT_OK;
}
