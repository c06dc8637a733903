/* Standalone benchmark of a generated difflogic network: images/s on random uint8 images.
 * Build: see the Makefile next to this file.  Usage: ./bench [n_images] [n_threads] [repeats] */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "@HEADER@"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char** argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 65536;
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  int reps = argc > 3 ? atoi(argv[3]) : 5;
  const int bits_mode = !@PREFIX_UPPER@_HAS_ENCODER;
  size_t per = bits_mode ? @PREFIX_UPPER@_NUM_INPUT_BITS : @PREFIX_UPPER@_IMAGE_BYTES;
  uint8_t* x = (uint8_t*)malloc(n * per);
  int32_t* counts = (int32_t*)malloc(n * sizeof(int32_t) * @PREFIX_UPPER@_NUM_CLASSES);
  if (!x || !counts) { fprintf(stderr, "out of memory\n"); return 1; }
  uint64_t s = 88172645463325252ull;
  for (size_t i = 0; i < n * per; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    x[i] = bits_mode ? (uint8_t)(s & 1) : (uint8_t)s;
  }
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    int rc = bits_mode ? @PREFIX@_scores_bits(x, n, counts, threads) : @PREFIX@_scores_u8(x, n, counts, threads);
    double dt = now() - t0;
    if (rc != 0) { fprintf(stderr, "error %d\n", rc); return 1; }
    if (dt < best) best = dt;
  }
  long long check = 0;
  for (size_t i = 0; i < n * @PREFIX_UPPER@_NUM_CLASSES; i++) check += counts[i];
  printf("%zu images, %d thread(s): best %.4f s = %.0f images/s (checksum %lld)\n", n, threads, best,
         n / best, check);
  free(x);
  free(counts);
  return 0;
}
