/* Fuzz target: the Matrix Market and SNAP readers (the first input byte picks which; a
 * gzip body is read through zlib, as for any file), then everything a parsed graph goes
 * through: CSR construction with the options the other input bits pick, SGT and its
 * validation against the graph, and the degree and RCM renumberings. The readers take a
 * path, so each input is written to one scratch file first. */
#include <unistd.h>

#include "fuzz_common.h"
#include "graph/graph.h"
#include "graph/sgt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Graphs past this many nodes or entries are not taken further than the reader: their
 * dense-in-N arrays would only measure the machine's memory. */
#define MAX_NODES (1 << 16)
#define MAX_ENTRIES (1 << 18)

static const char *scratch_path(void)
{
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/fuzz-graph-XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0)
            abort();
        close(fd);
    }
    return path;
}

/* SGT of g must validate; so must it after each renumbering, which must permute. */
static void check_downstream(const sdlk_graph *g)
{
    sdlk_error err = {0};
    sdlk_sgt sgt;
    sdlk_sgt_init(&sgt);
    if (sdlk_sgt_build(g, 16, 8, NULL, &sgt, &err) != SDLK_OK ||
        sdlk_sgt_validate(&sgt, g, "fuzz", &err) != SDLK_OK) {
        fprintf(stderr, "SGT of a parsed graph: %s\n", err.msg);
        abort();
    }
    sdlk_sgt_free(&sgt);
    sdlk_status (*const reorder[2])(const sdlk_graph *, sdlk_graph *, sdlk_error *) = {
        sdlk_graph_reorder_by_degree, sdlk_graph_reorder_rcm};
    for (int r = 0; r < 2; r++) {
        sdlk_graph h;
        if (reorder[r](g, &h, &err) != SDLK_OK || h.nodes != g->nodes || h.edges != g->edges) {
            fprintf(stderr, "renumbering %d of a parsed graph: %s\n", r, err.msg);
            abort();
        }
        char *seen = calloc((size_t)h.nodes + 1, 1);
        for (int64_t i = 0; i < h.nodes; i++) {
            if (h.perm[i] < 0 || h.perm[i] >= h.nodes || seen[h.perm[i]])
                abort();
            seen[h.perm[i]] = 1;
        }
        free(seen);
        sdlk_sgt_init(&sgt);
        if (sdlk_sgt_build(&h, 8, 4, NULL, &sgt, &err) != SDLK_OK ||
            sdlk_sgt_validate(&sgt, &h, "fuzz", &err) != SDLK_OK)
            abort();
        sdlk_sgt_free(&sgt);
        sdlk_graph_free(&h);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = scratch_path();
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data + 1, 1, size - 1, fp) != size - 1 || fclose(fp) != 0)
        abort();
    uint8_t flags = data[0];
    sdlk_coo coo;
    sdlk_coo_init(&coo);
    sdlk_error err = {0};
    sdlk_status st = flags & 1 ? sdlk_snap_read(path, &coo, &err)
                               : sdlk_mtx_read(path, (flags >> 1) & 1, &coo, NULL, &err);
    fuzz_check_error(st, &err, path);
    if (st == SDLK_OK && coo.rows <= MAX_NODES && coo.cols <= MAX_NODES &&
        coo.count <= MAX_ENTRIES) {
        sdlk_graph_options o = {.symmetrize = (flags >> 2) & 1,
                                .duplicates = (sdlk_dup_policy)((flags >> 3) % 3),
                                .self_loops = (flags >> 5) & 1,
                                .gcn_normalize = (flags >> 6) & 1};
        sdlk_graph g;
        st = sdlk_graph_from_coo(&coo, &o, &g, &err);
        if (st == SDLK_OK) {
            check_downstream(&g);
            sdlk_graph_free(&g);
        } else if (coo.rows == coo.cols) { /* only a non-square list may be refused */
            fprintf(stderr, "CSR of a square parsed list: %s\n", err.msg);
            abort();
        }
    }
    sdlk_coo_free(&coo);
    return 0;
}
