// Dense (randomly wired) logic-gate layer kernels: relaxed forward/backward and hard forward.
// Semantics: y[n, j] = c0 + c1 x[n, a[j]] + c2 x[n, b[j]] + c3 x[n, a[j]] x[n, b[j]]
// (difflogic/functional.py: dense_reference).  All pointers are C-contiguous buffers.
// The relaxed kernels are feature-major: xt = x^T (in, N), yt (out, N), gyt (out, N), gxt (in, N).
#pragma once
#include <cstdint>

namespace dl {

template <typename T>
void dense_forward(const T* xt, const int32_t* a, const int32_t* b, const T* coeffs, T* yt,
                   int64_t N, int64_t in, int64_t out, int nthreads);

// gxt may be null (input gradient not needed); grad_coeffs (out, 4) is always written.
template <typename T>
void dense_backward(const T* xt, const int32_t* a, const int32_t* b, const T* coeffs,
                    const T* gyt, T* gxt, T* grad_coeffs, int64_t N, int64_t in, int64_t out,
                    int nthreads);

// dst (cols, rows) = src (rows, cols)^T: the layout change for inputs that are not already
// feature-major (the first dense layer after a flatten, gradients coming from a group sum).
template <typename T>
void transpose_copy(const T* src, T* dst, int64_t rows, int64_t cols, int nthreads);

// Hard forward on {0,1} bytes (any nonzero byte counts as 1); ops are gate ids 0..15.
void dense_hard(const uint8_t* x, const int32_t* a, const int32_t* b, const uint8_t* ops,
                uint8_t* y, int64_t N, int64_t in, int64_t out, int nthreads);

}  // namespace dl
