// Device helpers shared by the difflogic CUDA kernels.
//
// This header is compiled both by nvcc (the compile check) and by NVRTC at run time (through
// CuPy), so it must not include any host header: NVRTC has no C/C++ standard library.  Only
// built-in types and CUDA intrinsics are used.
#pragma once

#define DLG_FULL_MASK 0xffffffffu

namespace dlg {

// Relaxed arithmetic with *explicitly rounded* operations.  The gate
//     c0 + c1*a + c2*b + c3*a*b
// is evaluated as ((c0 + c1*a) + c2*b) + (c3*a)*b with every multiply and add rounded on its
// own (the __*_rn intrinsics are never contracted into FMAs).  That is exactly the order and
// rounding of difflogic.functional.apply_coeffs in eager PyTorch, so forward values are
// bit-identical to the reference -- which also makes OR-pool tie-breaking identical.
template <typename T> struct Arith;

template <> struct Arith<float> {
  static __device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
  static __device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
  static __device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
};

template <> struct Arith<double> {
  static __device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
  static __device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
  static __device__ __forceinline__ double neg_inf() {
    return __longlong_as_double(static_cast<long long>(0xfff0000000000000ULL));
  }
};

// Relaxed gate with basis coefficients c[0..3] (difflogic.gates.COEFFS convention).
template <typename T>
__device__ __forceinline__ T gate_relaxed(const T* c, T a, T b) {
  typedef Arith<T> A;
  return A::add(A::add(A::add(c[0], A::mul(c[1], a)), A::mul(c[2], b)), A::mul(A::mul(c[3], a), b));
}

// Hard gate on single bits: the gate id is its truth table, MSB = output for (a, b) = (0, 0).
__device__ __forceinline__ unsigned hard_gate(unsigned op, unsigned a, unsigned b) {
  return (op >> (3u - 2u * a - b)) & 1u;
}

// Hard gate on whole words (one sample per bit): OR of the minterms the truth table selects.
// Branch-free so that neighbouring threads with different gates do not diverge.
template <typename Wd>
__device__ __forceinline__ Wd gate_bits(unsigned op, Wd a, Wd b) {
  const Wd m00 = Wd(0) - Wd((op >> 3) & 1u);
  const Wd m01 = Wd(0) - Wd((op >> 2) & 1u);
  const Wd m10 = Wd(0) - Wd((op >> 1) & 1u);
  const Wd m11 = Wd(0) - Wd(op & 1u);
  return (m00 & ~(a | b)) | (m01 & (~a & b)) | (m10 & (a & ~b)) | (m11 & (a & b));
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(DLG_FULL_MASK, v, o);
  return v;
}

// Per-tree leaf table staged in shared memory: offset of the leaf inside one sample's
// (C, H, W) image relative to the window origin, and its (dy, dx) for the bounds test.
struct LeafTable {
  int off, dy, dx;
};

template <int L>
__device__ __forceinline__ void stage_leaves(LeafTable* s_leaf, const int* __restrict__ leaf_c,
                                             const int* __restrict__ leaf_dy,
                                             const int* __restrict__ leaf_dx, int k, int H, int W) {
  for (int t = threadIdx.x; t < L; t += blockDim.x) {
    const int dy = leaf_dy[k * L + t], dx = leaf_dx[k * L + t];
    s_leaf[t].off = (leaf_c[k * L + t] * H + dy) * W + dx;
    s_leaf[t].dy = dy;
    s_leaf[t].dx = dx;
  }
}

// The grid-stride loop of the tree-conv kernels: blockIdx.x is the tree, blockIdx.y and
// threadIdx.x stride over the pooled outputs p = (sample n, pooled row hp, pooled column wp)
// of that tree; r = hp * Wp + wp is the offset inside sample n's pooled plane.
struct PoolCell {
  int n, r, hp, wp;
};
__device__ __forceinline__ PoolCell pool_cell(unsigned p, int Hp, int Wp) {
  const int HWp = Hp * Wp;
  const int n = p / HWp, r = p - n * HWp, hp = r / Wp;
  return PoolCell{n, r, hp, r - hp * Wp};
}
__device__ __forceinline__ unsigned grid_y_begin() { return blockIdx.y * blockDim.x + threadIdx.x; }
__device__ __forceinline__ unsigned grid_y_step() { return gridDim.y * blockDim.x; }

// The common prologue of every tree-conv kernel (blockIdx.x = the tree k): copy the tree's n
// parameters (relaxed coefficients, or hard gate ids) and its leaf table into shared memory,
// so all threads of the block evaluate the same gates, then synchronise.
template <int L, typename S, typename P>
__device__ __forceinline__ void stage_tree(S* s_par, const P* __restrict__ par, int n,
                                           LeafTable* s_leaf, const int* __restrict__ leaf_c,
                                           const int* __restrict__ leaf_dy,
                                           const int* __restrict__ leaf_dx, int H, int W) {
  const int k = blockIdx.x;
  for (int t = threadIdx.x; t < n; t += blockDim.x) s_par[t] = par[k * n + t];
  stage_leaves<L>(s_leaf, leaf_c, leaf_dy, leaf_dx, k, H, W);
  __syncthreads();
}

}  // namespace dlg
