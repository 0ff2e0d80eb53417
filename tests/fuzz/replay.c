/* replay.c -- feed every file of a corpus directory to LLVMFuzzerTestOneInput once.
 * Lets the seed and crash corpora run as ordinary tests with any compiler. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (!dir) {
        perror(argv[1]);
        return 1;
    }
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], entry->d_name);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            continue;
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        rewind(fp);
        uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
        if (buf && fread(buf, 1, (size_t)size, fp) == (size_t)size)
            LLVMFuzzerTestOneInput(buf, (size_t)size);
        free(buf);
        fclose(fp);
        count++;
    }
    closedir(dir);
    printf("%d inputs replayed from %s\n", count, argv[1]);
    return count > 0 ? 0 : 1;
}
