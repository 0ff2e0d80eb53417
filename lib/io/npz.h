/* npz.h -- NumPy .npz archives (a zip of .npy members).
 *
 * Contract
 *   Read: members stored (method 0) or deflated (method 8, via zlib), with zip64
 *   extensions (NumPy writes zip64 extra fields), found through the central directory;
 *   CRC-32 of every member is verified. Member "x.npy" becomes tensor "x". Stored
 *   members are views into the mapped archive when aligned; deflated members are
 *   inflated once into their own storage. Encrypted or multi-disk archives, and members
 *   that are not .npy, are refused with a message naming the member.
 *   Write: one member per tensor, named "<name>.npy", stored (np.savez) or deflated
 *   (np.savez_compressed); zip64 when a member or the archive exceeds 4 GiB. The
 *   archive is streamed (no seeking), so it can go to a pipe.
 *   Metadata of a tensor set is not representable in .npz and is dropped.
 *   Stored members carry CRC and sizes in their local headers (the CRC is computed
 *   from the tensor in memory first); deflated members set flag bit 3 and are
 *   followed by a data descriptor. Dates are 1980-01-01, so output is reproducible.
 *   A deflated member claiming more than 1032 bytes per compressed byte (more than
 *   deflate can produce) is refused before anything is allocated.
 */
#ifndef SDLK_IO_NPZ_H
#define SDLK_IO_NPZ_H

#include <stdio.h>

#include "core/error.h"
#include "core/tensorset.h"

/* Parse the whole archive held by `storage` into *out (initialised here), one tensor per
 * member in central-directory order. `name` (the archive's file name) starts every
 * message; errors inside a member name it too ("w.npz (member x.npy): ..."). */
sdlk_status sdlk_npz_parse(sdlk_storage *storage, const char *name, sdlk_tensor_set *out,
                           sdlk_error *err);

/* compress: 0 = stored, 1 = deflate. */
sdlk_status sdlk_npz_write(FILE *fp, const sdlk_tensor_set *set, int compress, const char *name,
                           sdlk_error *err);

#endif
