// Fused logic-gate tree convolution + OR pooling (LogicTreeNet block) kernels.
// Semantics: difflogic/functional.py tree_conv_pool_reference (leaf layout, gate order, zero
// padding, first-maximum tie-break of the pool).
#pragma once
#include <cstdint>

namespace dl {

struct ConvGeom {
    int64_t N, C, H, W;   // input
    int64_t K, L;         // trees (output channels), leaves per tree (2..32, power of two)
    int64_t kh, kw, stride, pad, pool;
    int64_t Hp, Wp;       // padded input
    int64_t Ho, Wo;       // conv output
    int64_t Hq, Wq;       // pooled output (== Ho, Wo when pool == 1)
    // Fills the derived sizes and validates everything; throws std::invalid_argument.
    void finish();
};

// y (N, K, Hq, Wq); argmax (same shape, may be null when pool == 1).
template <typename T>
void tree_conv_pool_forward(const T* x, const int32_t* leaf_c, const int32_t* leaf_dy,
                            const int32_t* leaf_dx, const T* coeffs, const ConvGeom& g, T* y,
                            uint8_t* argmax, int nthreads);

// grad_x (N, C, H, W) may be null; grad_coeffs (K, L-1, 4) always written.
template <typename T>
void tree_conv_pool_backward(const T* x, const int32_t* leaf_c, const int32_t* leaf_dy,
                             const int32_t* leaf_dx, const T* coeffs, const uint8_t* argmax,
                             const T* grad_y, const ConvGeom& g, T* grad_x, T* grad_coeffs,
                             int nthreads);

// Hard forward on bytes (nonzero = 1), ops (K, L-1) gate ids, OR pooling.
void tree_conv_pool_hard(const uint8_t* x, const int32_t* leaf_c, const int32_t* leaf_dy,
                         const int32_t* leaf_dx, const uint8_t* ops, const ConvGeom& g,
                         uint8_t* y, int nthreads);

// Validates leaf indices against the geometry (throws std::invalid_argument).
void check_leaves(const int32_t* leaf_c, const int32_t* leaf_dy, const int32_t* leaf_dx,
                  const ConvGeom& g);

}  // namespace dl
