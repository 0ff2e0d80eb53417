/* graphwrite.h -- writing graphs as Matrix Market files (plain or gzip).
 *
 * Contract
 *   sdlk_mtx_write() writes a CSR graph as "%%MatrixMarket matrix coordinate pattern
 *   general" (or "real general" when the graph has values, printed with %.9g so f32
 *   values read back exactly), optional "%" comment lines, the size line "N N E", then
 *   one "i j [v]" line per stored nonzero, 1-based, in CSR order. With `gzip` the same
 *   text is deflated into a gzip member (zlib, level 6) as it is produced, so memory
 *   stays O(1) beyond the graph. The caller owns `fp` (e.g. an sdlk_outfile, so that a
 *   failure leaves no partial file); write errors are SDLK_ERR_IO naming `name`.
 *   sdlk_mtx_read() reads every file written here back to the same graph.
 *   Cost: O(nnz + N) time.
 */
#ifndef SDLK_GRAPH_GRAPHWRITE_H
#define SDLK_GRAPH_GRAPHWRITE_H

#include <stdio.h>

#include "core/error.h"
#include "graph/graph.h"

/* `comment` may be NULL or hold several lines separated by '\n' (each becomes a "% "
 * line). */
sdlk_status sdlk_mtx_write(FILE *fp, const sdlk_graph *g, int gzip, const char *comment,
                           const char *name, sdlk_error *err);

#endif
