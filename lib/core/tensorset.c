#include "core/tensorset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void sdlk_tensor_set_init(sdlk_tensor_set *set) { memset(set, 0, sizeof *set); }

void sdlk_tensor_set_free(sdlk_tensor_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++) {
        free(set->items[i].name);
        sdlk_tensor_free(&set->items[i].tensor);
    }
    for (size_t i = 0; i < set->meta_count; i++) {
        free(set->meta[i].key);
        free(set->meta[i].value);
    }
    free(set->items);
    free(set->slots);
    free(set->meta);
    memset(set, 0, sizeof *set);
}

/* Grow *array (of elem_size items) so that it can hold one more than `count`. */
static int reserve_one(void **array, size_t *capacity, size_t count, size_t elem_size)
{
    if (count < *capacity)
        return 1;
    size_t cap = *capacity ? *capacity * 2 : 8;
    void *bigger = realloc(*array, cap * elem_size);
    if (!bigger)
        return 0;
    *array = bigger;
    *capacity = cap;
    return 1;
}

/* FNV-1a: short names, no adversary worth a keyed hash (a crafted archive can only make
 * its own load slower, and then by a constant factor of the probe length). */
static size_t name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)h;
}

/* The slot holding `name`, or the empty slot where it would go. */
static size_t *find_slot(const sdlk_tensor_set *set, const char *name)
{
    size_t mask = set->slot_count - 1;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        size_t *slot = &set->slots[i];
        if (*slot == 0 || strcmp(set->items[*slot - 1].name, name) == 0)
            return slot;
    }
}

/* Keep the table under half full so that probes stay short. */
static int grow_index(sdlk_tensor_set *set)
{
    if (set->slot_count > 2 * (set->count + 1))
        return 1;
    size_t slot_count = set->slot_count ? set->slot_count * 2 : 16;
    while (slot_count <= 2 * (set->count + 1))
        slot_count *= 2;
    size_t *slots = calloc(slot_count, sizeof *slots);
    if (!slots)
        return 0;
    free(set->slots);
    set->slots = slots;
    set->slot_count = slot_count;
    for (size_t i = 0; i < set->count; i++)
        *find_slot(set, set->items[i].name) = i + 1;
    return 1;
}

const sdlk_tensor *sdlk_tensor_set_find(const sdlk_tensor_set *set, const char *name)
{
    if (set->slot_count == 0)
        return NULL;
    size_t *slot = find_slot(set, name);
    return *slot ? &set->items[*slot - 1].tensor : NULL;
}

sdlk_status sdlk_tensor_set_add(sdlk_tensor_set *set, const char *name, sdlk_tensor *tensor,
                                sdlk_error *err)
{
    if (sdlk_tensor_set_find(set, name))
        return sdlk_error_set(err, SDLK_ERR_ARG, "duplicate tensor name '%s'", name);
    char *copy = strdup(name);
    if (!copy || !grow_index(set) ||
        !reserve_one((void **)&set->items, &set->capacity, set->count, sizeof *set->items)) {
        free(copy);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    set->items[set->count].name = copy;
    set->items[set->count].tensor = *tensor;
    set->count++;
    *find_slot(set, copy) = set->count;
    sdlk_tensor_init(tensor);
    return SDLK_OK;
}

const char *sdlk_tensor_set_meta_get(const sdlk_tensor_set *set, const char *key)
{
    for (size_t i = 0; i < set->meta_count; i++)
        if (strcmp(set->meta[i].key, key) == 0)
            return set->meta[i].value;
    return NULL;
}

sdlk_status sdlk_tensor_set_meta_set(sdlk_tensor_set *set, const char *key, const char *value,
                                     sdlk_error *err)
{
    char *value_copy = strdup(value);
    if (!value_copy)
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < set->meta_count; i++) {
        if (strcmp(set->meta[i].key, key) == 0) {
            free(set->meta[i].value);
            set->meta[i].value = value_copy;
            return SDLK_OK;
        }
    }
    char *key_copy = strdup(key);
    if (!key_copy || !reserve_one((void **)&set->meta, &set->meta_capacity, set->meta_count,
                                  sizeof *set->meta)) {
        free(key_copy);
        free(value_copy);
        return sdlk_error_set(err, SDLK_ERR_NOMEM, "out of memory");
    }
    set->meta[set->meta_count].key = key_copy;
    set->meta[set->meta_count].value = value_copy;
    set->meta_count++;
    return SDLK_OK;
}
