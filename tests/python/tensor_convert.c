/* tensor_convert -- test driver for the NumPy cross-checks: moves tensors between
 * formats with the sdl library only, so that Python can check what it reads and writes.
 *
 *   tensor_convert IN OUT [--compress]   load IN (any format), save OUT (by extension;
 *                                        --compress = deflated .npz)
 *   tensor_convert --stream OUT IN...    write each IN as one record of a tensor stream,
 *                                        with metadata sdl.index and sdl.source
 *   tensor_convert --split IN PREFIX     read the tensor stream IN and save record i as
 *                                        PREFIX<i>.safetensors
 * Exit status 0 on success, 1 with "tensor_convert: <message>" on stderr otherwise. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "core/file.h"
#include "io/tensorio.h"
#include "io/tstream.h"

static int fail(const sdlk_error *err)
{
    fprintf(stderr, "tensor_convert: %s\n", err->msg);
    return 1;
}

static int convert(const char *in, const char *out, int compress)
{
    sdlk_error err = {0};
    sdlk_tensor_set set;
    if (sdlk_tensors_load(in, &set, NULL, &err))
        return fail(&err);
    sdlk_status st = sdlk_tensors_save(out, &set, SDLK_FORMAT_UNKNOWN, compress, &err);
    sdlk_tensor_set_free(&set);
    return st ? fail(&err) : 0;
}

static int write_stream(const char *out_path, char **inputs, int count)
{
    sdlk_error err = {0};
    sdlk_outfile out;
    if (sdlk_outfile_open(&out, out_path, &err))
        return fail(&err);
    for (int i = 0; i < count; i++) {
        sdlk_tensor_set set;
        char index[32];
        snprintf(index, sizeof index, "%d", i);
        sdlk_status st = sdlk_tensors_load(inputs[i], &set, NULL, &err);
        if (!st)
            st = sdlk_tensor_set_meta_set(&set, "sdl.index", index, &err);
        if (!st)
            st = sdlk_tensor_set_meta_set(&set, "sdl.source", inputs[i], &err);
        if (!st)
            st = sdlk_tstream_write(out.fp, &set, sdlk_path_is_stdio(out_path) ? "<stdout>" : out_path, &err);
        sdlk_tensor_set_free(&set);
        if (st) {
            sdlk_outfile_abort(&out);
            return fail(&err);
        }
    }
    return sdlk_outfile_commit(&out, &err) ? fail(&err) : 0;
}

static int split_stream(const char *in_path, const char *prefix)
{
    sdlk_error err = {0};
    FILE *fp = sdlk_file_open_read(in_path, &err);
    if (!fp)
        return fail(&err);
    sdlk_tstream_reader reader;
    sdlk_tstream_reader_init(&reader, fp, in_path);
    sdlk_status st;
    for (;;) {
        sdlk_tensor_set record;
        st = sdlk_tstream_next(&reader, &record, &err);
        if (st)
            break;
        char path[4096];
        snprintf(path, sizeof path, "%s%llu.safetensors", prefix,
                 (unsigned long long)reader.records - 1);
        st = sdlk_tensors_save(path, &record, SDLK_FORMAT_SAFETENSORS, 0, &err);
        sdlk_tensor_set_free(&record);
        if (st)
            break;
    }
    sdlk_file_close_read(fp);
    if (st != SDLK_ERR_EOF)
        return fail(&err);
    printf("%llu records\n", (unsigned long long)reader.records);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed pipe becomes a write error we report */
    if (argc >= 3 && strcmp(argv[1], "--stream") == 0)
        return write_stream(argv[2], argv + 3, argc - 3);
    if (argc == 4 && strcmp(argv[1], "--split") == 0)
        return split_stream(argv[2], argv[3]);
    if (argc == 3 || (argc == 4 && strcmp(argv[3], "--compress") == 0))
        return convert(argv[1], argv[2], argc == 4);
    fprintf(stderr, "usage: tensor_convert IN OUT [--compress]\n"
                    "       tensor_convert --stream OUT IN...\n"
                    "       tensor_convert --split IN PREFIX\n");
    return 2;
}
