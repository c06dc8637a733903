// Row-wise small matrix product out (G, J) = p (G, K) @ m (K, J), K and J at most 16: the map
// from gate parameters to basis coefficients (softmax (G, 16) @ (16, 4), input-wise sigmoid
// (G, 4) @ (4, 4)) and its backward (grad (G, 4) @ m^T).  Why not BLAS: on these long, thin
// shapes it is several times slower than one pass over the rows, and it splits the product
// differently for different thread counts.  Here every output is one sum in the fixed order
// k = 0 .. K-1, so the result does not depend on the number of threads.
#pragma once
#include "common.h"

namespace dl {

template <typename T, int K, int J>
void row_product_fixed(const T* DL_RESTRICT p, const T* DL_RESTRICT m, T* DL_RESTRICT out,
                       int64_t G, int nthreads) {
    T mm[K * J];
    for (int i = 0; i < K * J; ++i) mm[i] = m[i];
#pragma omp parallel for num_threads(DL_OMP_THREADS(nthreads)) schedule(static) if (G * K * J > (int64_t(1) << 18))
    for (int64_t g = 0; g < G; ++g) {
        const T* pg = p + g * K;
        for (int j = 0; j < J; ++j) {
            T acc = pg[0] * mm[j];
            for (int k = 1; k < K; ++k) acc += pg[k] * mm[k * J + j];
            out[g * J + j] = acc;
        }
    }
}

template <typename T>
void row_product(const T* p, const T* m, T* out, int64_t G, int64_t K, int64_t J, int nthreads) {
    if (K == 4 && J == 4) return row_product_fixed<T, 4, 4>(p, m, out, G, nthreads);
    if (K == 16 && J == 4) return row_product_fixed<T, 16, 4>(p, m, out, G, nthreads);
    if (K == 4 && J == 16) return row_product_fixed<T, 4, 16>(p, m, out, G, nthreads);
    if (K < 1 || J < 1 || K > 16 || J > 16)
        throw std::invalid_argument("row_product: m must be (K, J) with 1 <= K, J <= 16");
#pragma omp parallel for num_threads(DL_OMP_THREADS(nthreads)) schedule(static) if (G * K * J > (int64_t(1) << 18))
    for (int64_t g = 0; g < G; ++g)
        for (int64_t j = 0; j < J; ++j) {
            T acc = p[g * K] * m[j];
            for (int64_t k = 1; k < K; ++k) acc += p[g * K + k] * m[k * J + j];
            out[g * J + j] = acc;
        }
}

}  // namespace dl
