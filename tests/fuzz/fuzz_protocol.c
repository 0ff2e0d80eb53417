/* Fuzz target: the denoiser worker protocol parser (lib/gen/protocol.h) over a stream
 * of frames, as the exec backend reads them from a worker: every frame that parses must
 * lie inside the input, carry exactly the data its header implies, and encode back to
 * the same header bytes; the first failure must name the peer and ends the stream. */
#include "fuzz_common.h"
#include "gen/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* own heap copy, so ASan sees any read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    if (size)
        memcpy(copy, data, size);
    size_t pos = 0;
    while (pos < size) {
        sdlk_proto_frame f;
        size_t used = 0;
        sdlk_error err = {0};
        sdlk_status st = sdlk_proto_parse(copy + pos, size - pos, &f, &used, "fuzz.frame", &err);
        fuzz_check_error(st, &err, "fuzz.frame");
        if (st != SDLK_OK)
            break;
        if (used < SDLK_PROTO_HEADER_SIZE || used > size - pos)
            abort();
        if (used != SDLK_PROTO_HEADER_SIZE + f.h.text_len + f.h.data_len)
            abort();
        if ((int64_t)f.h.data_len != sdlk_proto_expected_data(&f.h))
            abort();
        unsigned sum = 0; /* touch every byte of the views */
        for (uint32_t i = 0; i < f.h.text_len; i++)
            sum += (uint8_t)f.text[i];
        for (uint64_t i = 0; i < f.h.data_len; i++)
            sum += f.data[i];
        (void)sum;
        uint8_t again[SDLK_PROTO_HEADER_SIZE];
        if (sdlk_proto_encode_header(&f.h, again, "fuzz.frame", NULL) != SDLK_OK ||
            memcmp(again, copy + pos, SDLK_PROTO_HEADER_SIZE) != 0)
            abort(); /* one encoding per header: decode then encode is the identity */
        pos += used;
    }
    free(copy);
    return 0;
}
