/* tensorio.c -- one entry point for every tensor file format. */
#include "io/tensorio.h"

#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "io/ioutil.h"
#include "io/npy.h"
#include "io/npz.h"
#include "io/safetensors.h"

const char *sdlk_tensor_format_name(sdlk_tensor_format fmt)
{
    switch (fmt) {
    case SDLK_FORMAT_NPY: return "npy";
    case SDLK_FORMAT_NPZ: return "npz";
    case SDLK_FORMAT_SAFETENSORS: return "safetensors";
    default: return "unknown";
    }
}

sdlk_tensor_format sdlk_tensor_format_from_path(const char *path)
{
    char ext[16];
    sdlk_path_extension(path, ext, sizeof ext);
    if (strcmp(ext, "npy") == 0)
        return SDLK_FORMAT_NPY;
    if (strcmp(ext, "npz") == 0)
        return SDLK_FORMAT_NPZ;
    if (strcmp(ext, "safetensors") == 0 || strcmp(ext, "st") == 0)
        return SDLK_FORMAT_SAFETENSORS;
    return SDLK_FORMAT_UNKNOWN;
}

sdlk_tensor_format sdlk_tensor_format_sniff(const uint8_t *head, size_t size)
{
    if (size >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
        return SDLK_FORMAT_NPY;
    /* A zip starts with a local header, or with the end record when it is empty (what
     * np.savez writes for no arrays). */
    if (size >= 4 && (memcmp(head, "PK\x03\x04", 4) == 0 || memcmp(head, "PK\x05\x06", 4) == 0))
        return SDLK_FORMAT_NPZ;
    if (size >= 9 && sdlk_io_le64(head) <= SDLK_SAFETENSORS_MAX_HEADER && head[8] == '{')
        return SDLK_FORMAT_SAFETENSORS;
    return SDLK_FORMAT_UNKNOWN;
}

/* "dir/weights.npy" -> "weights": the name NumPy users expect for a lone array. */
static char *path_stem(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (len == 0)
        return strdup("arr_0");
    char *stem = malloc(len + 1);
    if (stem) {
        memcpy(stem, base, len);
        stem[len] = '\0';
    }
    return stem;
}

static sdlk_status load_npy(sdlk_storage *storage, const char *path, const char *display,
                            sdlk_tensor_set *out, sdlk_error *err)
{
    sdlk_tensor t;
    sdlk_status st = sdlk_npy_parse(storage, 0, sdlk_storage_size(storage), display, &t, err);
    if (st)
        return st;
    char *stem = sdlk_path_is_stdio(path) ? strdup("arr_0") : path_stem(path);
    if (!stem) {
        sdlk_tensor_free(&t);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "%s: out of memory", display);
    }
    st = sdlk_tensor_set_add(out, stem, &t, err);
    sdlk_tensor_free(&t);
    free(stem);
    return st;
}

static sdlk_status load_safetensors(sdlk_storage *storage, const char *display,
                                    sdlk_tensor_set *out, sdlk_error *err)
{
    size_t size = sdlk_storage_size(storage), used = 0;
    sdlk_status st = sdlk_safetensors_parse_prefix(storage, 0, size, display, out, &used, err);
    if (st || used == size)
        return st;
    const uint8_t *rest = (const uint8_t *)sdlk_storage_data(storage) + used;
    int is_stream = sdlk_tensor_format_sniff(rest, size - used) == SDLK_FORMAT_SAFETENSORS;
    sdlk_tensor_set_free(out);
    if (is_stream)
        return sdlk_error_set(err, SDLK_ERR_FORMAT,
                              "%s: holds several safetensors records (a tensor stream); read "
                              "it as a stream",
                              display);
    return sdlk_error_set(err, SDLK_ERR_FORMAT,
                          "%s: %zu bytes of unexpected data after the data buffer", display,
                          size - used);
}

sdlk_status sdlk_tensors_parse(sdlk_storage *storage, const char *path, sdlk_tensor_format fmt,
                               sdlk_tensor_set *out, sdlk_error *err)
{
    const char *display = sdlk_path_display(path);
    if (fmt == SDLK_FORMAT_NPY)
        return load_npy(storage, path, display, out, err);
    if (fmt == SDLK_FORMAT_NPZ)
        return sdlk_npz_parse(storage, display, out, err);
    if (fmt == SDLK_FORMAT_SAFETENSORS)
        return load_safetensors(storage, display, out, err);
    return sdlk_error_set(err, SDLK_ERR_FORMAT,
                          "%s: not a tensor file (neither .npy, .npz nor safetensors)", display);
}

sdlk_status sdlk_tensors_load(const char *path, sdlk_tensor_set *out,
                              sdlk_tensor_format *format_out, sdlk_error *err)
{
    sdlk_tensor_set_init(out);
    const char *display = sdlk_path_display(path);
    sdlk_storage *storage;
    sdlk_status st = sdlk_file_map(path, &storage, err);
    if (st)
        return st;
    const uint8_t *head = sdlk_storage_data(storage);
    size_t size = sdlk_storage_size(storage);
    sdlk_tensor_format by_name = sdlk_path_is_stdio(path) ? SDLK_FORMAT_UNKNOWN
                                                           : sdlk_tensor_format_from_path(path);
    sdlk_tensor_format by_magic = sdlk_tensor_format_sniff(head, size);
    sdlk_tensor_format fmt = by_name != SDLK_FORMAT_UNKNOWN ? by_name : by_magic;
    if (size == 0)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: empty file", display);
    else if (by_name != SDLK_FORMAT_UNKNOWN && by_magic != SDLK_FORMAT_UNKNOWN &&
             by_name != by_magic)
        st = sdlk_error_set(err, SDLK_ERR_FORMAT, "%s: the name says %s but the content is %s",
                            display, sdlk_tensor_format_name(by_name),
                            sdlk_tensor_format_name(by_magic));
    else
        st = sdlk_tensors_parse(storage, path, fmt, out, err);
    sdlk_storage_release(storage); /* tensors that are views hold their own reference */
    if (st)
        sdlk_tensor_set_free(out);
    else if (format_out)
        *format_out = fmt;
    return st;
}

sdlk_status sdlk_tensors_save(const char *path, const sdlk_tensor_set *set,
                              sdlk_tensor_format fmt, int compress, sdlk_error *err)
{
    const char *display = sdlk_path_is_stdio(path) ? "<stdout>" : path;
    if (fmt == SDLK_FORMAT_UNKNOWN)
        fmt = sdlk_path_is_stdio(path) ? SDLK_FORMAT_UNKNOWN : sdlk_tensor_format_from_path(path);
    if (fmt == SDLK_FORMAT_UNKNOWN)
        fmt = SDLK_FORMAT_SAFETENSORS;
    if (fmt == SDLK_FORMAT_NPY && set->count != 1)
        return sdlk_error_set(err, SDLK_ERR_ARG,
                              "%s: .npy holds exactly one tensor, not %zu (use .npz or "
                              ".safetensors)",
                              display, set->count);
    sdlk_outfile out;
    sdlk_status st = sdlk_outfile_open(&out, path, err);
    if (st)
        return st;
    if (fmt == SDLK_FORMAT_NPY)
        st = sdlk_npy_write(out.fp, &set->items[0].tensor, display, err);
    else if (fmt == SDLK_FORMAT_NPZ)
        st = sdlk_npz_write(out.fp, set, compress, display, err);
    else
        st = sdlk_safetensors_write(out.fp, set, display, err);
    if (st) {
        sdlk_outfile_abort(&out);
        return st;
    }
    return sdlk_outfile_commit(&out, err);
}
