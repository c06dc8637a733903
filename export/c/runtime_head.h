/* ---- difflogic C runtime, part 1: the word type (inlined into the generated .c) ----
 * One dl_word holds DL_LANES x 64 samples: sample s of a block is bit (s % 64) of 64-bit lane
 * (s / 64).  With GCC/Clang vector extensions a word of 4 lanes is one 256-bit register, so
 * every gate is a single AVX2 instruction over 256 samples; other compilers get 1 lane. */
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__AVX__)
#include <immintrin.h>
#endif
#ifndef DL_LANES   /* 256-bit words, also where AVX-512 is present: measured faster (the Makefile) */
#define DL_LANES 4
#endif
#if defined(__GNUC__) && DL_LANES > 1
typedef uint64_t dl_word __attribute__((vector_size(8 * DL_LANES)));
#else
#undef DL_LANES
#define DL_LANES 1
typedef uint64_t dl_word;
#endif
#define DL_BLOCK (64 * DL_LANES)
#define DL_ZERO ((dl_word){0})
#define DL_ONES (~(dl_word){0})
#define DL_LANE(ptr, idx, lane) (((uint64_t*)(ptr))[(size_t)(idx) * DL_LANES + (lane)])
#if defined(__GNUC__)
#define DL_NOINLINE __attribute__((noinline))
#else
#define DL_NOINLINE
#endif
