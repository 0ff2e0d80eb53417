#include "inputs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/file.h"

static sdlk_status push(cli_inputs *in, const char *path, sdlk_error *err)
{
    if (in->count == in->capacity) {
        size_t cap = in->capacity ? 2 * in->capacity : 64;
        char **p = realloc(in->paths, cap * sizeof *p);
        if (!p)
            return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for the input list");
        in->paths = p;
        in->capacity = cap;
    }
    in->paths[in->count] = strdup(path);
    if (!in->paths[in->count])
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory for the input list");
    in->count++;
    return SDLK_OK;
}

static int is_image_name(const char *name)
{
    static const char *const exts[] = {"png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp",
                                       "gif", "ppm", "pgm", "pnm", "tga"};
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0)
            return 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static sdlk_status add_path(cli_inputs *in, const char *path, int depth, sdlk_error *err);

static sdlk_status add_directory(cli_inputs *in, const char *path, int depth, sdlk_error *err)
{
    DIR *dir = opendir(path);
    if (!dir)
        return push(in, path, err); /* reported by the tool when it opens it */
    char **names = NULL;
    size_t count = 0, cap = 0;
    sdlk_status st = SDLK_OK;
    struct dirent *entry;
    while (st == SDLK_OK && (entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory listing %s", path);
                break;
            }
            names = p;
        }
        names[count] = strdup(entry->d_name);
        if (!names[count])
            st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory listing %s", path);
        else
            count++;
    }
    closedir(dir);
    if (st == SDLK_OK)
        qsort(names, count, sizeof *names, by_name);
    for (size_t i = 0; i < count; i++) {
        if (st == SDLK_OK) {
            size_t len = strlen(path) + strlen(names[i]) + 2;
            char *child = malloc(len);
            if (!child) {
                st = sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory listing %s", path);
            } else {
                snprintf(child, len, "%s%s%s", path,
                         path[strlen(path) - 1] == '/' ? "" : "/", names[i]);
                struct stat sb;
                if (stat(child, &sb) == 0 && S_ISDIR(sb.st_mode))
                    st = add_path(in, child, depth + 1, err);
                else if (is_image_name(names[i]))
                    st = push(in, child, err);
                free(child);
            }
        }
        free(names[i]);
    }
    free(names);
    return st;
}

static sdlk_status add_path(cli_inputs *in, const char *path, int depth, sdlk_error *err)
{
    struct stat sb;
    if (depth < 64 && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return add_directory(in, path, depth, err);
    return push(in, path, err);
}

sdlk_status cli_inputs_collect(cli_inputs *in, char *const *args, int n, sdlk_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!sdlk_path_is_stdio(args[i])) {
            sdlk_status st = add_path(in, args[i], 0, err);
            if (st != SDLK_OK)
                return st;
            continue;
        }
        char *line = NULL;
        size_t size = 0;
        ssize_t len;
        sdlk_status st = SDLK_OK;
        while (st == SDLK_OK && (len = getline(&line, &size, stdin)) >= 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (len > 0)
                st = add_path(in, line, 0, err);
        }
        free(line);
        if (st != SDLK_OK)
            return st;
    }
    return SDLK_OK;
}

void cli_inputs_free(cli_inputs *in)
{
    for (size_t i = 0; i < in->count; i++)
        free(in->paths[i]);
    free(in->paths);
    memset(in, 0, sizeof *in);
}
