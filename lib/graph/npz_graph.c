/* npz_graph.c -- scipy.sparse.save_npz CSR/CSC files via lib/io's .npz reader. */
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/tensorset.h"
#include "graph/graph.h"
#include "graph/graph_internal.h"
#include "io/npz.h"

static const sdlk_tensor *member(const sdlk_tensor_set *set, const char *name, const char *path,
                                 sdlk_error *err)
{
    const sdlk_tensor *t = sdlk_tensor_set_find(set, name);
    if (!t)
        sdlk_error_set(err, SDLK_ERR_FORMAT,
                       "%s: no '%s' array: not a scipy.sparse.save_npz file", path, name);
    return t;
}

static int is_index_dtype(sdlk_dtype dtype)
{
    return dtype == SDLK_I32 || dtype == SDLK_I64 || dtype == SDLK_U32 || dtype == SDLK_U64;
}

/* The "format" member is a NumPy string scalar ('csr'); whatever dtype the .npy layer
 * gives it (bytes or UTF-32 code units), its non-NUL bytes spell the format. */
static void format_string(const sdlk_tensor *t, char *buf, size_t size)
{
    size_t n = 0;
    uint64_t nbytes = sdlk_tensor_nbytes(t);
    for (uint64_t i = 0; i < nbytes && n + 1 < size; i++)
        if (t->data[i])
            buf[n++] = (char)t->data[i];
    buf[n] = '\0';
}

sdlk_status sdlk_npz_graph_read(const char *path, sdlk_graph *out, sdlk_error *err)
{
    sdlk_graph_init(out);
    sdlk_storage *storage = NULL;
    sdlk_tensor_set set;
    sdlk_tensor_set_init(&set);
    int64_t *row_ptr = NULL;
    int32_t *col_idx = NULL;
    float *values = NULL;
    sdlk_status st = sdlk_file_map(path, &storage, err);
    if (st == SDLK_OK)
        st = sdlk_npz_parse(storage, path, &set, err);
    if (storage)
        sdlk_storage_release(storage); /* the tensors hold their own references */
    if (st)
        goto done;
    const sdlk_tensor *indptr = member(&set, "indptr", path, err);
    const sdlk_tensor *indices = indptr ? member(&set, "indices", path, err) : NULL;
    const sdlk_tensor *data = indices ? member(&set, "data", path, err) : NULL;
    const sdlk_tensor *shape = data ? member(&set, "shape", path, err) : NULL;
    if (!shape) {
        st = err ? err->code : SDLK_ERR_FORMAT;
        goto done;
    }
    int transposed = 0;
    const sdlk_tensor *format = sdlk_tensor_set_find(&set, "format");
    if (format) {
        char name[16];
        format_string(format, name, sizeof name);
        if (strcmp(name, "csc") == 0)
            transposed = 1;
        else if (strcmp(name, "csr") != 0) {
            st = sdlk_error_set(err, SDLK_ERR_UNSUPPORTED,
                                "%s: sparse format '%s' (only csr and csc are read)", path, name);
            goto done;
        }
    }
    if (shape->ndim != 1 || shape->shape[0] != 2 || !is_index_dtype(shape->dtype) ||
        indptr->ndim != 1 || !is_index_dtype(indptr->dtype) || indices->ndim != 1 ||
        !is_index_dtype(indices->dtype) || data->ndim != 1 ||
        (!sdlk_dtype_is_float(data->dtype) && !is_index_dtype(data->dtype) &&
         data->dtype != SDLK_BOOL && data->dtype != SDLK_I8 && data->dtype != SDLK_U8 &&
         data->dtype != SDLK_I16 && data->dtype != SDLK_U16)) {
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: expected 1-d integer indptr/indices/shape(2) and 1-d data", path);
        goto done;
    }
    int64_t index0 = 0, index1 = 1;
    int64_t rows = (int64_t)sdlk_tensor_get(shape, &index0);
    int64_t cols = (int64_t)sdlk_tensor_get(shape, &index1);
    int64_t nnz = indices->shape[0];
    if (rows != cols) {
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: matrix is %lld x %lld, a square adjacency is required", path,
                            (long long)rows, (long long)cols);
        goto done;
    }
    if (indptr->shape[0] != rows + 1 || data->shape[0] != nnz) {
        st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                            "%s: arrays disagree: indptr has %lld entries for %lld rows, "
                            "indices %lld, data %lld",
                            path, (long long)indptr->shape[0], (long long)rows, (long long)nnz,
                            (long long)data->shape[0]);
        goto done;
    }
    row_ptr = sdlk_graph_alloc_array(rows + 1, sizeof(int64_t), err);
    col_idx = sdlk_graph_alloc_array(nnz, sizeof(int32_t), err);
    values = sdlk_graph_alloc_array(nnz, sizeof(float), err);
    if (!row_ptr || !col_idx || !values) {
        st = err ? err->code : SDLK_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i <= rows; i++)
        row_ptr[i] = (int64_t)sdlk_tensor_get(indptr, &i);
    for (int64_t k = 0; k < nnz; k++) {
        double c = sdlk_tensor_get(indices, &k);
        if (c < 0 || c >= (double)cols) {
            st = sdlk_error_set(err, SDLK_ERR_FORMAT,
                                "%s: index %.0f at position %lld outside 0..%lld", path, c,
                                (long long)k, (long long)(cols - 1));
            goto done;
        }
        col_idx[k] = (int32_t)c;
        values[k] = (float)sdlk_tensor_get(data, &k);
    }
    st = sdlk_graph_from_csr(rows, nnz, row_ptr, col_idx, values, path, out, err);
    if (st == SDLK_OK && transposed) {
        /* CSC of A is the CSR of A^T: transpose through the COO builder */
        sdlk_coo coo;
        sdlk_coo_init(&coo);
        coo.rows = coo.cols = rows;
        st = sdlk_coo_reserve(&coo, nnz, 1, err);
        for (int64_t c = 0; st == SDLK_OK && c < rows; c++)
            for (int64_t k = out->row_ptr[c]; k < out->row_ptr[c + 1]; k++) {
                coo.row[coo.count] = out->col_idx[k];
                coo.col[coo.count] = (int32_t)c;
                coo.value[coo.count] = out->values[k];
                coo.count++;
            }
        sdlk_graph_free(out);
        if (st == SDLK_OK)
            st = sdlk_graph_from_coo(&coo, NULL, out, err);
        sdlk_coo_free(&coo);
    }
done:
    free(row_ptr);
    free(col_idx);
    free(values);
    sdlk_tensor_set_free(&set);
    return st;
}
