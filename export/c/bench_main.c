/* Standalone benchmark of a generated difflogic network: images/s on random inputs.
 * Build: see the Makefile next to this file.
 * Usage: ./bench [n_images] [n_threads] [repeats] [form]
 *   form: u8 (uint8 images; the default with an input encoder), f32 (float32 inputs in [0, 1)),
 *         bits (0/1 bytes; the default without an encoder) or packed (bits, 8 per byte).
 * Prints the best and the median of the repeats by wall time, and the median by process CPU
 * time (n x threads / CPU seconds: the rate the threads reach on cores of their own, the
 * figure to quote where the machine is shared). */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "@HEADER@"

static double now(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 65536;
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  int reps = argc > 3 ? atoi(argv[3]) : 5;
  const char* form = argc > 4 ? argv[4] : (@PREFIX_UPPER@_HAS_ENCODER ? "u8" : "bits");
  if (reps < 1 || reps > 1000) { fprintf(stderr, "repeats must be 1..1000\n"); return 2; }
  size_t per;
  if (!strcmp(form, "u8") || !strcmp(form, "f32")) {
    if (!@PREFIX_UPPER@_HAS_ENCODER) { fprintf(stderr, "form %s needs an input encoder; use bits or packed\n", form); return 2; }
    per = @PREFIX_UPPER@_IMAGE_BYTES * (strcmp(form, "f32") ? 1 : sizeof(float));
  } else if (!strcmp(form, "bits")) {
    per = @PREFIX_UPPER@_NUM_INPUT_BITS;
  } else if (!strcmp(form, "packed")) {
    per = @PREFIX_UPPER@_PACKED_BYTES;
  } else {
    fprintf(stderr, "form must be u8, f32, bits or packed, got %s\n", form);
    return 2;
  }
  uint8_t* x = (uint8_t*)malloc(n * per);
  int32_t* counts = (int32_t*)malloc(n * sizeof(int32_t) * @PREFIX_UPPER@_NUM_CLASSES);
  double* times = (double*)malloc(sizeof(double) * (size_t)reps);
  double* cpu = (double*)malloc(sizeof(double) * (size_t)reps);
  if (!x || !counts || !times || !cpu) { fprintf(stderr, "out of memory\n"); return 1; }
  uint64_t s = 88172645463325252ull;
  for (size_t i = 0; i < n * per; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    x[i] = !strcmp(form, "bits") ? (uint8_t)(s & 1) : (uint8_t)s;
  }
  if (!strcmp(form, "f32"))
    for (size_t i = 0; i < n * @PREFIX_UPPER@_IMAGE_BYTES; i++) ((float*)x)[i] = (float)(x[4 * i] / 256.0);
  for (int r = 0; r < reps; r++) {
    double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    int rc = !strcmp(form, "u8") ? @PREFIX@_scores_u8(x, n, counts, threads)
           : !strcmp(form, "f32") ? @PREFIX@_scores_f32((const float*)x, n, counts, threads)
           : !strcmp(form, "bits") ? @PREFIX@_scores_bits(x, n, counts, threads)
           : @PREFIX@_scores_packed(x, n, counts, threads);
    times[r] = now(CLOCK_MONOTONIC) - t0;
    cpu[r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (rc != 0) { fprintf(stderr, "error %d\n", rc); return 1; }
  }
  qsort(times, (size_t)reps, sizeof(double), cmp_double);
  qsort(cpu, (size_t)reps, sizeof(double), cmp_double);
  long long check = 0;
  for (size_t i = 0; i < n * @PREFIX_UPPER@_NUM_CLASSES; i++) check += counts[i];
  printf("%zu images (%s), %d thread(s): best %.4f s = %.0f images/s, median %.0f images/s; "
         "CPU time: median %.0f images/s (checksum %lld)\n",
         n, form, threads, times[0], n / times[0], n / times[reps / 2], n * (double)threads / cpu[reps / 2], check);
  free(x);
  free(counts);
  free(times);
  free(cpu);
  return 0;
}
