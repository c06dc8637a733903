// Fused logic-gate tree convolution + OR pool (LogicTreeNet block): relaxed forward/backward
// and hard (uint8) forward.  Depth D (1..5) is a template parameter so the 2^D leaves and the
// 2^(D+1)-1 tree nodes live in registers with fully unrolled loops.
//
// Grid: blockIdx.x = output channel k (its tree's coefficients and leaf table are staged in
// shared memory once), blockIdx.y strides over the pooled positions (n, hp, wp) of that channel.
//
// Node numbering (heap order): nodes 0..L-1 are the leaves; gate g (functional.py's level-by-
// level order) is node L+g and reads nodes 2g and 2g+1; the root is node 2L-2.
//
// Forward stores only the pooled value and the uint8 window index of the maximum (first
// maximum in row-major window order, like torch.nn.functional.max_pool2d).  Backward
// recomputes the selected position's tree, so no per-position activations are ever stored.
//
// grad_x uses atomicAdd: which input pixel receives gradient depends on the data (the pool's
// argmax), so an inverse map would need either a stored per-leaf gradient buffer of
// N*K*Hp*Wp*2^D values (about 1 GB in LogicTreeNet-L's first layer) or a 2^D-fold
// recomputation.  Atomics cost 2^D scattered adds per *pooled* output (1/pool^2 of the conv
// positions) spread over N*C*H*W addresses, so contention is low.  The price is a
// non-deterministic summation order (differences of a few ulp between runs).
//
// grad_coeffs: each thread accumulates its tree's 4*(2^D-1) coefficient gradients in
// registers over all the positions it visits; the block reduces them (warp shuffles, then
// shared memory) and issues one atomicAdd per (k, gate, coefficient) per block.
//
// Deterministic mode (torch.use_deterministic_algorithms): the backward gets `leaf_grad` and
// `coef_partial` and makes no atomic adds.  It stores every leaf's gradient of the selected
// position in leaf_grad[(n, k, hp, wp), l] (that buffer), and each block's coefficient sums
// in coef_partial[blockIdx.y, k] (summed over blockIdx.y by the caller in a fixed order);
// tree_conv_grad_x_gather then gives every input pixel the sum of the leaf gradients that
// read it, in the fixed order of a CSR inverse map of the leaves.
#include "common.cuh"

#define DLG_MAX_THREADS 256

namespace {

// Leaf l of the window whose top-left (padded coordinates minus padding) is (y0, x0).
// Zero padding: a leaf outside the (unpadded) input reads 0.
template <typename T>
__device__ __forceinline__ T load_leaf(const T* __restrict__ xn, const dlg::LeafTable& lf, int y0,
                                       int x0, int H, int W) {
  const int yy = y0 + lf.dy, xx = x0 + lf.dx;
  const bool inside = (unsigned)yy < (unsigned)H && (unsigned)xx < (unsigned)W;
  return inside ? xn[lf.off + y0 * W + x0] : T(0);
}

// Root of the relaxed tree, evaluated level by level in place (only 2^D live values).
template <typename T, int L>
__device__ __forceinline__ T tree_root(const T* __restrict__ xn, const dlg::LeafTable* s_leaf,
                                       const T* s_coef, int y0, int x0, int H, int W) {
  T v[L];
#pragma unroll
  for (int l = 0; l < L; ++l) v[l] = load_leaf(xn, s_leaf[l], y0, x0, H, W);
  int g = 0;
#pragma unroll
  for (int n = L / 2; n >= 1; n /= 2) {
#pragma unroll
    for (int i = 0; i < n; ++i, ++g) v[i] = dlg::gate_relaxed(s_coef + 4 * g, v[2 * i], v[2 * i + 1]);
  }
  return v[0];
}

}  // namespace

// Register budgets (checked with nvcc --resource-usage, sm_80/sm_90): depth <= 3 (LogicTreeNet)
// float runs spill-free with 3 (forward, <= 80 regs) / 2 (backward, <= 128 regs) blocks per SM;
// depths 4-5 need 2^(D+1) live values plus 4*(2^D-1) accumulators and may spill.
#define DLG_FWD_MIN_BLOCKS(D) ((D) <= 3 ? 3 : 1)
#define DLG_BWD_MIN_BLOCKS(D) ((D) <= 3 ? 2 : 1)

template <typename T, int D>
__global__ void __launch_bounds__(DLG_MAX_THREADS, DLG_FWD_MIN_BLOCKS(D))
tree_conv_pool_forward(const T* __restrict__ x, const int* __restrict__ leaf_c,
                       const int* __restrict__ leaf_dy, const int* __restrict__ leaf_dx,
                       const T* __restrict__ coeffs, T* __restrict__ out,
                       unsigned char* __restrict__ argmax, int N, int C, int H, int W, int K,
                       int Hp, int Wp, int stride, int pad, int pool) {
  constexpr int L = 1 << D, G = L - 1;
  __shared__ T s_coef[4 * G];
  __shared__ dlg::LeafTable s_leaf[L];
  const int k = blockIdx.x;
  dlg::stage_tree<L>(s_coef, coeffs, 4 * G, s_leaf, leaf_c, leaf_dy, leaf_dx, H, W);

  const int HWp = Hp * Wp;
  const unsigned P = (unsigned)N * HWp;
  for (unsigned p = dlg::grid_y_begin(); p < P; p += dlg::grid_y_step()) {
    const auto [n, r, hp, wp] = dlg::pool_cell(p, Hp, Wp);
    const T* xn = x + n * C * H * W;
    T best = dlg::Arith<T>::neg_inf();
    int besti = 0;
#pragma unroll 1
    for (int u = 0; u < pool; ++u) {
#pragma unroll 1
      for (int v = 0; v < pool; ++v) {
        const T val = tree_root<T, L>(xn, s_leaf, s_coef, (hp * pool + u) * stride - pad,
                                      (wp * pool + v) * stride - pad, H, W);
        if (val > best || val != val) {  // torch max_pool2d rule: first max wins, NaN propagates
          best = val;
          besti = u * pool + v;
        }
      }
    }
    const int o = (n * K + k) * HWp + r;
    out[o] = best;
    if (argmax) argmax[o] = (unsigned char)besti;
  }
}

// DET = deterministic mode (leaf_grad / coef_partial instead of atomics): a template flag so
// that the default kernel compiles exactly as without that mode.
template <typename T, int D, bool DET>
__global__ void __launch_bounds__(DLG_MAX_THREADS, DLG_BWD_MIN_BLOCKS(D))
tree_conv_pool_backward(const T* __restrict__ x, const int* __restrict__ leaf_c,
                        const int* __restrict__ leaf_dy, const int* __restrict__ leaf_dx,
                        const T* __restrict__ coeffs, const T* __restrict__ grad_out,
                        const unsigned char* __restrict__ argmax, T* __restrict__ grad_x,
                        T* __restrict__ grad_coeffs, T* __restrict__ leaf_grad,
                        T* __restrict__ coef_partial, int N, int C, int H, int W, int K, int Hp,
                        int Wp, int stride, int pad, int pool) {
  constexpr int L = 1 << D, G = L - 1, NC = 4 * G;
  __shared__ T s_coef[NC];
  __shared__ T s_red[(DLG_MAX_THREADS / 32) * NC];
  __shared__ dlg::LeafTable s_leaf[L];
  const int k = blockIdx.x;
  dlg::stage_tree<L>(s_coef, coeffs, NC, s_leaf, leaf_c, leaf_dy, leaf_dx, H, W);

  T acc[NC];
#pragma unroll
  for (int t = 0; t < NC; ++t) acc[t] = T(0);

  const int HWp = Hp * Wp;
  const unsigned P = (unsigned)N * HWp;
  for (unsigned p = dlg::grid_y_begin(); p < P; p += dlg::grid_y_step()) {
    const auto [n, r, hp, wp] = dlg::pool_cell(p, Hp, Wp);
    const int o = (n * K + k) * HWp + r;
    const T gy = grad_out[o];
    if (gy == T(0)) continue;  // contributes nothing
    const int sel = argmax ? (int)argmax[o] : 0;
    const int u = sel / pool, v = sel - u * pool;
    const int y0 = (hp * pool + u) * stride - pad, x0 = (wp * pool + v) * stride - pad;
    const T* xn = x + n * C * H * W;
    // recompute every node of the selected position (heap order: gate g = node L+g reads 2g, 2g+1)
    T node[2 * L - 1];
#pragma unroll
    for (int l = 0; l < L; ++l) node[l] = load_leaf(xn, s_leaf[l], y0, x0, H, W);
#pragma unroll
    for (int g = 0; g < G; ++g) node[L + g] = dlg::gate_relaxed(s_coef + 4 * g, node[2 * g], node[2 * g + 1]);
    // reverse sweep; d[] reuses the heap numbering
    T d[2 * L - 1];
    d[2 * L - 2] = gy;
#pragma unroll
    for (int g = G - 1; g >= 0; --g) {
      const T dg = d[L + g], A = node[2 * g], B = node[2 * g + 1];
      const T* c = s_coef + 4 * g;
      acc[4 * g + 0] += dg;
      acc[4 * g + 1] += dg * A;
      acc[4 * g + 2] += dg * B;
      acc[4 * g + 3] += dg * A * B;
      d[2 * g] = dg * (c[1] + c[3] * B);
      d[2 * g + 1] = dg * (c[2] + c[3] * A);
    }
    if constexpr (DET) {  // one plain store per leaf (0 outside the image)
      if (leaf_grad == nullptr) continue;
      T* lg = leaf_grad + (long long)o * L;
#pragma unroll
      for (int l = 0; l < L; ++l) {
        const dlg::LeafTable lf = s_leaf[l];
        const int yy = y0 + lf.dy, xx = x0 + lf.dx;
        lg[l] = ((unsigned)yy < (unsigned)H && (unsigned)xx < (unsigned)W) ? d[l] : T(0);
      }
    } else if (grad_x) {
      T* gxn = grad_x + n * C * H * W;
#pragma unroll
      for (int l = 0; l < L; ++l) {
        const dlg::LeafTable lf = s_leaf[l];
        const int yy = y0 + lf.dy, xx = x0 + lf.dx;
        if ((unsigned)yy < (unsigned)H && (unsigned)xx < (unsigned)W) atomicAdd(gxn + lf.off + y0 * W + x0, d[l]);
      }
    }
  }

  if ((DET ? coef_partial : grad_coeffs) == nullptr) return;  // block-uniform
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
#pragma unroll
  for (int t = 0; t < NC; ++t) {
    const T s = dlg::warp_sum(acc[t]);
    if (lane == 0) s_red[warp * NC + t] = s;
  }
  __syncthreads();
  for (int t = threadIdx.x; t < NC; t += blockDim.x) {
    T s = 0;
    for (int w = 0; w < nwarps; ++w) s += s_red[w * NC + t];
    if constexpr (DET)
      coef_partial[((long long)blockIdx.y * K + k) * NC + t] = s;
    else
      atomicAdd(grad_coeffs + k * NC + t, s);
  }
}

// Deterministic grad_x (see the top of this file): input pixel (n, c, y, x) sums, in the
// order of the CSR inverse map (inv_ptr[c]..inv_ptr[c+1] lists k*L + l of every leaf l of
// tree k that reads channel c), the gradient that leaf stored for the one pooled output
// whose *selected* window puts that leaf on this pixel.  For a leaf at offset (dy, dx) the
// window origin is (y - dy, x - dx) = ((hp*pool + u)*stride - pad, (wp*pool + v)*stride - pad),
// which fixes (hp, u, wp, v) when it exists; the leaf counts if argmax picked (u, v).
template <typename T, int D>
__global__ void __launch_bounds__(DLG_MAX_THREADS)
tree_conv_grad_x_gather(const T* __restrict__ leaf_grad, const unsigned char* __restrict__ argmax,
                        const int* __restrict__ inv_ptr, const int* __restrict__ inv_kl,
                        const int* __restrict__ leaf_dy, const int* __restrict__ leaf_dx,
                        T* __restrict__ grad_x, int N, int C, int H, int W, int K, int Hp, int Wp,
                        int stride, int pad, int pool) {
  constexpr int L = 1 << D;
  const unsigned total = (unsigned)N * C * H * W;
  const unsigned step = gridDim.x * blockDim.x;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += step) {
    const int x = e % W, y = (e / W) % H, c = (e / (W * H)) % C, n = e / (W * H * C);
    T sum = T(0);
    for (int j = inv_ptr[c]; j < inv_ptr[c + 1]; ++j) {
      const int kl = inv_kl[j], k = kl / L, l = kl - k * L;
      const int ty = y - leaf_dy[kl] + pad, tx = x - leaf_dx[kl] + pad;
      if (ty < 0 || tx < 0 || ty % stride || tx % stride) continue;
      const int qy = ty / stride, qx = tx / stride;
      const int hp = qy / pool, u = qy - hp * pool, wp = qx / pool, v = qx - wp * pool;
      if (hp >= Hp || wp >= Wp) continue;
      const long long o = ((long long)n * K + k) * Hp * Wp + hp * Wp + wp;
      if (argmax ? (int)argmax[o] != u * pool + v : (u | v) != 0) continue;
      sum += leaf_grad[o * L + l];
    }
    grad_x[e] = sum;
  }
}

// Hard forward: {0,1} bytes in (nonzero = 1), a gate id per tree gate, logical-OR pool,
// {0,1} bytes out.  The window loop stops at the first 1 (OR is already decided).
template <int D>
__global__ void __launch_bounds__(DLG_MAX_THREADS, 4)
tree_conv_pool_hard(const unsigned char* __restrict__ x, const int* __restrict__ leaf_c,
                    const int* __restrict__ leaf_dy, const int* __restrict__ leaf_dx,
                    const unsigned char* __restrict__ ops, unsigned char* __restrict__ out,
                    int N, int C, int H, int W, int K, int Hp, int Wp, int stride, int pad,
                    int pool) {
  constexpr int L = 1 << D, G = L - 1;
  __shared__ unsigned s_ops[G];
  __shared__ dlg::LeafTable s_leaf[L];
  const int k = blockIdx.x;
  dlg::stage_tree<L>(s_ops, ops, G, s_leaf, leaf_c, leaf_dy, leaf_dx, H, W);

  const int HWp = Hp * Wp;
  const unsigned P = (unsigned)N * HWp;
  for (unsigned p = dlg::grid_y_begin(); p < P; p += dlg::grid_y_step()) {
    const auto [n, r, hp, wp] = dlg::pool_cell(p, Hp, Wp);
    const unsigned char* xn = x + n * C * H * W;
    unsigned any = 0;
#pragma unroll 1
    for (int u = 0; u < pool && !any; ++u) {
#pragma unroll 1
      for (int v = 0; v < pool && !any; ++v) {
        const int y0 = (hp * pool + u) * stride - pad, x0 = (wp * pool + v) * stride - pad;
        unsigned b[L];
#pragma unroll
        for (int l = 0; l < L; ++l) b[l] = load_leaf(xn, s_leaf[l], y0, x0, H, W) != 0;
        int g = 0;
#pragma unroll
        for (int m = L / 2; m >= 1; m /= 2) {
#pragma unroll
          for (int i = 0; i < m; ++i, ++g) b[i] = dlg::hard_gate(s_ops[g], b[2 * i], b[2 * i + 1]);
        }
        any = b[0];
      }
    }
    out[(n * K + k) * HWp + r] = (unsigned char)any;
  }
}

#ifdef DIFFLOGIC_NVCC_INSTANTIATE  // only for the offline nvcc compile check
// (DIFFLOGIC_NVCC_MAX_DEPTH=3 skips the slow-to-compile depths 4-5)
#define DLG_INST_T(T, D)                                                                          \
  template __global__ void tree_conv_pool_forward<T, D>(const T*, const int*, const int*,        \
      const int*, const T*, T*, unsigned char*, int, int, int, int, int, int, int, int, int, int); \
  template __global__ void tree_conv_pool_backward<T, D, false>(const T*, const int*,           \
      const int*, const int*, const T*, const T*, const unsigned char*, T*, T*, T*, T*, int, int,  \
      int, int, int, int, int, int, int, int);                                                    \
  template __global__ void tree_conv_pool_backward<T, D, true>(const T*, const int*,            \
      const int*, const int*, const T*, const T*, const unsigned char*, T*, T*, T*, T*, int, int,  \
      int, int, int, int, int, int, int, int);                                                    \
  template __global__ void tree_conv_grad_x_gather<T, D>(const T*, const unsigned char*,         \
      const int*, const int*, const int*, const int*, T*, int, int, int, int, int, int, int, int,  \
      int, int);
#define DLG_INST(D)                                                                               \
  DLG_INST_T(float, D)                                                                            \
  DLG_INST_T(double, D)                                                                           \
  template __global__ void tree_conv_pool_hard<D>(const unsigned char*, const int*, const int*,  \
      const int*, const unsigned char*, unsigned char*, int, int, int, int, int, int, int, int,    \
      int, int);
DLG_INST(1)
DLG_INST(2)
DLG_INST(3)
#if !defined(DIFFLOGIC_NVCC_MAX_DEPTH) || DIFFLOGIC_NVCC_MAX_DEPTH >= 4
DLG_INST(4)
DLG_INST(5)
#endif
#endif
