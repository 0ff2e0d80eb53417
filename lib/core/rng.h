/* rng.h -- splitmix64: the one seeded generator the library draws from.
 *
 * Contract
 *   A generator is a uint64_t state the caller owns (in its frame or its object: no
 *   global state), seeded with any value; the same seed gives the same sequence on every
 *   machine. splitmix64 (Steele, Lea, Flood 2014) passes BigCrush and costs a few
 *   multiplies; it is not cryptographic. Keys, attacks, weight initialisation, decoys
 *   and noise all take their randomness here, so that a seed means the same everywhere.
 */
#ifndef SDLK_CORE_RNG_H
#define SDLK_CORE_RNG_H

#include <stdint.h>

/* The next 64 random bits; advances *state. */
static inline uint64_t sdlk_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 random bits. */
static inline double sdlk_rng_unit(uint64_t *state)
{
    return (double)(sdlk_splitmix64(state) >> 11) * 0x1p-53;
}

/* Uniform in (0, 1] (never 0: safe under log or as a tie-breaking U), 53 random bits. */
static inline double sdlk_rng_unit_open0(uint64_t *state)
{
    return ((double)(sdlk_splitmix64(state) >> 11) + 1.0) * 0x1p-53;
}

#endif
