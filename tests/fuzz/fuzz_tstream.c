/* Fuzz target: the tensor stream reader over an in-memory FILE (fmemopen): records until
 * a clean end or an error that names the stream. */
#include "fuzz_common.h"
#include "io/tstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0; /* fmemopen of an empty buffer is not portable; EOF is tested elsewhere */
    uint8_t *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    FILE *fp = fmemopen(copy, size, "rb");
    if (!fp)
        abort();
    sdlk_tstream_reader r;
    sdlk_tstream_reader_init(&r, fp, "fuzz.st");
    for (;;) {
        sdlk_tensor_set set;
        sdlk_error err = {0};
        sdlk_status st = sdlk_tstream_next(&r, &set, &err);
        if (st == SDLK_ERR_EOF) {
            if (r.offset != size || err.code != SDLK_OK)
                abort(); /* a clean end only after every byte was used */
            break;
        }
        fuzz_check_error(st, &err, "fuzz.st");
        if (st)
            break;
        for (size_t i = 0; i < set.count; i++)
            fuzz_touch(&set.items[i].tensor);
        sdlk_tensor_set_free(&set);
    }
    fclose(fp);
    free(copy);
    return 0;
}
