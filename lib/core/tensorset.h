/* tensorset.h -- an ordered collection of named tensors with string metadata.
 *
 * Contract
 *   What an .npz archive, a .safetensors file or one record of a tensor stream holds:
 *   tensors in insertion order, each with a unique name, plus key/value string metadata
 *   (safetensors' "__metadata__"; tile geometry in tile records). The set owns its
 *   names, metadata strings and one reference per tensor; sdlk_tensor_set_free()
 *   releases everything. Names are indexed by a hash table, so adding and finding are
 *   O(1) expected: an archive of 65,536 members loads in linear time.
 */
#ifndef SDLK_CORE_TENSORSET_H
#define SDLK_CORE_TENSORSET_H

#include <stddef.h>

#include "core/error.h"
#include "core/tensor.h"

typedef struct sdlk_named_tensor {
    char *name;
    sdlk_tensor tensor;
} sdlk_named_tensor;

typedef struct sdlk_meta_entry {
    char *key;
    char *value;
} sdlk_meta_entry;

typedef struct sdlk_tensor_set {
    sdlk_named_tensor *items;
    size_t count, capacity;
    size_t *slots;     /* open-addressing index: item position + 1, 0 = empty */
    size_t slot_count; /* a power of two, > 2 * count; 0 before the first add */
    sdlk_meta_entry *meta;
    size_t meta_count, meta_capacity;
} sdlk_tensor_set;

void sdlk_tensor_set_init(sdlk_tensor_set *set);
void sdlk_tensor_set_free(sdlk_tensor_set *set);

/* Append `tensor` under `name`, taking over the caller's reference (the caller's struct
 * is reset to empty). Fails with SDLK_ERR_ARG on a duplicate name. */
sdlk_status sdlk_tensor_set_add(sdlk_tensor_set *set, const char *name, sdlk_tensor *tensor,
                                sdlk_error *err);
/* The tensor called `name`, or NULL. */
const sdlk_tensor *sdlk_tensor_set_find(const sdlk_tensor_set *set, const char *name);

/* Set (insert or replace) a metadata entry. */
sdlk_status sdlk_tensor_set_meta_set(sdlk_tensor_set *set, const char *key, const char *value,
                                     sdlk_error *err);
/* The value of `key`, or NULL. */
const char *sdlk_tensor_set_meta_get(const sdlk_tensor_set *set, const char *key);

#endif
