/* Fuzz target: .npy parsing, then a write/parse round trip of whatever parsed. */
#include "fuzz_common.h"
#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sdlk_storage *s = fuzz_storage(data, size);
    sdlk_tensor t;
    sdlk_error err = {0};
    sdlk_status st = sdlk_npy_parse(s, 0, size, "fuzz.npy", &t, &err);
    fuzz_check_error(st, &err, "fuzz.npy");
    if (st == SDLK_OK) {
        fuzz_touch(&t);
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        if (!fp || sdlk_npy_write(fp, &t, "out.npy", NULL) != SDLK_OK || fclose(fp) != 0)
            abort();
        sdlk_storage *s2 = fuzz_storage((const uint8_t *)buf, len);
        sdlk_tensor back;
        if (sdlk_npy_parse(s2, 0, len, "out.npy", &back, NULL) != SDLK_OK)
            abort();
        fuzz_same_tensor(&t, &back);
        sdlk_tensor_free(&back);
        sdlk_storage_release(s2);
        free(buf);
        sdlk_tensor_free(&t);
    }
    sdlk_storage_release(s);
    return 0;
}
