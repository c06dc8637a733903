// Dense (randomly wired) logic-gate layer kernels: relaxed forward/backward and hard forward.
// Semantics: y[n, j] = c0 + c1 x[n, a[j]] + c2 x[n, b[j]] + c3 x[n, a[j]] x[n, b[j]]
// (difflogic/functional.py: dense_reference).  All pointers are C-contiguous buffers.
#pragma once
#include <cstdint>

namespace dl {

template <typename T>
void dense_forward(const T* x, const int32_t* a, const int32_t* b, const T* coeffs, T* y,
                   int64_t N, int64_t in, int64_t out, int nthreads);

// grad_x may be null (input gradient not needed); grad_coeffs (out, 4) is always written.
template <typename T>
void dense_backward(const T* x, const int32_t* a, const int32_t* b, const T* coeffs,
                    const T* grad_y, T* grad_x, T* grad_coeffs, int64_t N, int64_t in,
                    int64_t out, int nthreads);

// Hard forward on {0,1} bytes (any nonzero byte counts as 1); ops are gate ids 0..15.
void dense_hard(const uint8_t* x, const int32_t* a, const int32_t* b, const uint8_t* ops,
                uint8_t* y, int64_t N, int64_t in, int64_t out, int nthreads);

}  // namespace dl
