/* Fuzz target: safetensors parsing (whole file, prefix, header alone), then a write/parse
 * round trip of whatever parsed, metadata included. */
#include "fuzz_common.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sdlk_storage *s = fuzz_storage(data, size);
    sdlk_tensor_set set;
    sdlk_error err = {0};
    size_t used = 0;
    sdlk_status st = sdlk_safetensors_parse_prefix(s, 0, size, "fuzz.st", &set, &used, &err);
    fuzz_check_error(st, &err, "fuzz.st");
    if (st == SDLK_OK) {
        if (used > size)
            abort();
        sdlk_tensor_set_free(&set);
    }
    /* the header alone agrees with the prefix parser on the data size */
    if (size >= 8) {
        uint64_t header_len = 0, data_size = 0;
        memcpy(&header_len, data, 8);
        if (header_len <= size - 8) {
            sdlk_error herr = {0};
            sdlk_status hs = sdlk_safetensors_header_data_size((const char *)data + 8,
                                                               (size_t)header_len, "fuzz.st",
                                                               &data_size, &herr);
            fuzz_check_error(hs, &herr, "fuzz.st");
            if (st == SDLK_OK && (hs != SDLK_OK || 8 + header_len + data_size != used))
                abort();
        }
    }
    sdlk_error_clear(&err);
    st = sdlk_safetensors_parse(s, 0, size, "fuzz.st", &set, &err);
    fuzz_check_error(st, &err, "fuzz.st");
    if (st == SDLK_OK) {
        for (size_t i = 0; i < set.count; i++)
            fuzz_touch(&set.items[i].tensor);
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        if (!fp || sdlk_safetensors_write(fp, &set, "out.st", NULL) != SDLK_OK || fclose(fp) != 0)
            abort();
        sdlk_storage *s2 = fuzz_storage((const uint8_t *)buf, len);
        sdlk_tensor_set back;
        if (sdlk_safetensors_parse(s2, 0, len, "out.st", &back, NULL) != SDLK_OK)
            abort();
        fuzz_same_set(&set, &back);
        if (back.meta_count != set.meta_count)
            abort();
        for (size_t i = 0; i < set.meta_count; i++) {
            const char *v = sdlk_tensor_set_meta_get(&back, set.meta[i].key);
            if (!v || strcmp(v, set.meta[i].value) != 0)
                abort();
        }
        sdlk_tensor_set_free(&back);
        sdlk_storage_release(s2);
        free(buf);
        sdlk_tensor_set_free(&set);
    }
    sdlk_storage_release(s);
    return 0;
}
