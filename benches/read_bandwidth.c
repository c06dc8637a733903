/* Memory read bandwidth of this machine: 1 GiB streamed with 256-bit loads, 1 and 2 threads,
 * best of 5.  The ceiling for the compiled C's input packers (benches/RESULTS.md, "Compiled-C
 * inference"):
 *     gcc -O2 -march=native -fopenmp benches/read_bandwidth.c -o /tmp/read_bw && /tmp/read_bw */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    const size_t n = (size_t)1 << 30;
    uint8_t* a = aligned_alloc(64, n);
    if (!a) { fprintf(stderr, "read_bandwidth: cannot allocate 1 GiB\n"); return 1; }
    memset(a, 1, n);   /* touch every page before timing */
    for (int threads = 1; threads <= 2; threads++) {
        double best = 1e30;
        uint64_t check = 0;
        for (int r = 0; r < 5; r++) {
            const double t0 = now();
#pragma omp parallel num_threads(threads) reduction(^ : check)
            {
                __m256i acc = _mm256_setzero_si256();   /* XOR of every load: nothing to optimize away */
#pragma omp for schedule(static)
                for (size_t i = 0; i < n; i += 128)
                    for (size_t k = 0; k < 128; k += 32)
                        acc = _mm256_xor_si256(acc, _mm256_load_si256((const __m256i*)(a + i + k)));
                check ^= (uint64_t)_mm256_extract_epi64(acc, 0);
            }
            const double t = now() - t0;
            if (t < best) best = t;
        }
        printf("read, %d thread(s): %.1f GB/s (check %llu)\n", threads, n / best / 1e9, (unsigned long long)check);
    }
    free(a);
    return 0;
}
