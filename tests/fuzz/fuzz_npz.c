/* Fuzz target: .npz parsing (zip, zip64, inflate, CRC, member .npy), then a round trip
 * of whatever parsed through the deflating writer. */
#include "fuzz_common.h"
#include "io/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sdlk_storage *s = fuzz_storage(data, size);
    sdlk_tensor_set set;
    sdlk_error err = {0};
    sdlk_status st = sdlk_npz_parse(s, "fuzz.npz", &set, &err);
    fuzz_check_error(st, &err, "fuzz.npz");
    if (st == SDLK_OK) {
        for (size_t i = 0; i < set.count; i++)
            fuzz_touch(&set.items[i].tensor);
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        if (!fp || sdlk_npz_write(fp, &set, (int)(size & 1), "out.npz", NULL) != SDLK_OK ||
            fclose(fp) != 0)
            abort();
        sdlk_storage *s2 = fuzz_storage((const uint8_t *)buf, len);
        sdlk_tensor_set back;
        if (sdlk_npz_parse(s2, "out.npz", &back, NULL) != SDLK_OK)
            abort();
        fuzz_same_set(&set, &back);
        sdlk_tensor_set_free(&back);
        sdlk_storage_release(s2);
        free(buf);
        sdlk_tensor_set_free(&set);
    }
    sdlk_storage_release(s);
    return 0;
}
