/* spmm_options.h -- the aggregation options sdl-spmm and sdl-gnn share (tools only).
 *
 * Contract
 *   --kernel csr|condensed   which SpMM (default condensed: SGT tiles)
 *   --isa auto|portable|avx2 the CPU kernels' instruction set (default auto)
 *   --device cpu|gpu|auto    where the condensed kernel runs (default cpu: the GPU's
 *                            TF32 results differ from the CPU's, so it runs only when
 *                            asked); the GPU runs the condensed kernel only, so
 *                            --device gpu with --kernel csr is a usage error, and with
 *                            csr, auto means the CPU.
 *   Put CLI_SPMM_LONG_OPTIONS in the tool's getopt table and hand the codes the tool
 *   does not know to cli_spmm_option; call cli_spmm_options_check after parsing.
 */
#ifndef SDL_TOOLS_SPMM_OPTIONS_H
#define SDL_TOOLS_SPMM_OPTIONS_H

#include "cli.h"
#include "core/device.h"
#include "graph/spmm.h"

/* Long-only option codes, above any tool's own (CLI_OPT_FIRST_TOOL_OPTION upwards). */
enum { CLI_OPT_SPMM_KERNEL = 0x1800, CLI_OPT_SPMM_ISA, CLI_OPT_SPMM_DEVICE };

#define CLI_SPMM_LONG_OPTIONS                                      \
    {"kernel", required_argument, NULL, CLI_OPT_SPMM_KERNEL},      \
    {"isa", required_argument, NULL, CLI_OPT_SPMM_ISA},            \
    {"device", required_argument, NULL, CLI_OPT_SPMM_DEVICE}

typedef struct cli_spmm_options {
    int condensed;      /* 1: the condensed kernel, 0: CSR */
    sdlk_isa isa;
    sdlk_device device;
} cli_spmm_options;

/* condensed, SDLK_ISA_AUTO, SDLK_DEVICE_CPU. */
void cli_spmm_options_init(cli_spmm_options *o);

/* Parse option `opt` with argument `arg` into *o: SDL_EXIT_OK, or SDL_EXIT_USAGE after
 * printing the usage error; -1 when `opt` is none of the CLI_OPT_SPMM_* codes. */
int cli_spmm_option(const sdl_cli *cli, int opt, const char *arg, cli_spmm_options *o);

/* After parsing: the usage error for --device gpu with --kernel csr (SDL_EXIT_USAGE),
 * else SDL_EXIT_OK with the device of a CSR run set to the CPU. */
int cli_spmm_options_check(const sdl_cli *cli, cli_spmm_options *o);

#endif
