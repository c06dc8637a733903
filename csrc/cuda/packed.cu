// Bit-packed inference of a hardened network: every bit of a word is one sample, so one
// bitwise operation evaluates a gate for 32 (unsigned int) or 64 (unsigned long long) samples.
//
// Layout: FEATURE-MAJOR words.  An activation tensor of F features (C*H*W for images, in the
// same C, H, W order as Flatten) for N samples is stored as (F, NW) words, NW = ceil(N / bits);
// bit t of word w holds sample w*bits + t.  Bits of samples >= N are don't-care (gates such as
// NOT turn them into 1s); the group sum ignores them.
#include "common.cuh"

template <typename Wd> struct Bits { static constexpr int value = 8 * (int)sizeof(Wd); };

// (N, F) {0,1} bytes, row-major -> (F, NW) words.  Threads run along F so the byte loads of
// one sample row are coalesced; each thread gathers the `bits` samples of its word.
template <typename Wd>
__global__ void pack_bits(const unsigned char* __restrict__ x, Wd* __restrict__ out, int N, int F,
                          int NW) {
  constexpr int B = Bits<Wd>::value;
  const unsigned total = (unsigned)NW * F;
  const unsigned step = gridDim.x * blockDim.x;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += step) {
    const int w = e / F, f = e - w * F;
    const int n0 = w * B;
    const int cnt = min(B, N - n0);
    Wd word = 0;
    for (int t = 0; t < cnt; ++t) word |= Wd(x[(long long)(n0 + t) * F + f] != 0) << t;
    out[(long long)f * NW + w] = word;
  }
}

// (F, NW) words -> (N, F) {0,1} bytes (tests and debugging).
template <typename Wd>
__global__ void unpack_bits(const Wd* __restrict__ x, unsigned char* __restrict__ out, int N, int F,
                            int NW) {
  constexpr int B = Bits<Wd>::value;
  const unsigned total = (unsigned)N * F;
  const unsigned step = gridDim.x * blockDim.x;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += step) {
    const int n = e / F, f = e - n * F;
    out[e] = (unsigned char)((x[(long long)f * NW + n / B] >> (n % B)) & 1);
  }
}

// Dense layer on words: y[j, w] = gate_j(x[a[j], w], x[b[j], w]).
template <typename Wd>
__global__ void dense_packed(const Wd* __restrict__ x, const int* __restrict__ a,
                             const int* __restrict__ b, const unsigned char* __restrict__ ops,
                             Wd* __restrict__ y, int out, int NW) {
  const unsigned total = (unsigned)out * NW;
  const unsigned step = gridDim.x * blockDim.x;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += step) {
    const int j = e / NW, w = e - j * NW;
    y[e] = dlg::gate_bits<Wd>(ops[j], x[(long long)a[j] * NW + w], x[(long long)b[j] * NW + w]);
  }
}

// Tree convolution + OR pool on words: x (C, H, W, NW) -> out (K, Hp, Wp, NW).
// Word offsets are int: the wrapper requires C*H*W*NW < 2^31.
// blockIdx.x = output channel (its gate ids and leaf table in shared memory, so every thread
// of the block evaluates the same gates: no divergence); blockIdx.y strides over (hp, wp, w).
template <typename Wd, int D>
__global__ void __launch_bounds__(256, (D) <= 3 ? 3 : 1)
tree_conv_pool_packed(const Wd* __restrict__ x, const int* __restrict__ leaf_c,
                      const int* __restrict__ leaf_dy, const int* __restrict__ leaf_dx,
                      const unsigned char* __restrict__ ops, Wd* __restrict__ out, int C, int H,
                      int W, int K, int Hp, int Wp, int stride, int pad, int pool, int NW) {
  constexpr int L = 1 << D, G = L - 1;
  __shared__ unsigned s_ops[G];
  __shared__ dlg::LeafTable s_leaf[L];
  const int k = blockIdx.x;
  dlg::stage_tree<L>(s_ops, ops, G, s_leaf, leaf_c, leaf_dy, leaf_dx, H, W);
  const unsigned P = (unsigned)Hp * Wp * NW;
  const unsigned step = gridDim.y * blockDim.x;
  for (unsigned p = blockIdx.y * blockDim.x + threadIdx.x; p < P; p += step) {
    const int r = p / NW, w = p - r * NW;
    const int hp = r / Wp, wp = r - hp * Wp;
    const Wd* xw = x + w;  // this thread's word column
    Wd acc = 0;
#pragma unroll 1
    for (int u = 0; u < pool; ++u) {
#pragma unroll 1
      for (int v = 0; v < pool; ++v) {
        const int y0 = (hp * pool + u) * stride - pad, x0 = (wp * pool + v) * stride - pad;
        Wd node[L];
#pragma unroll
        for (int l = 0; l < L; ++l) {
          const dlg::LeafTable lf = s_leaf[l];
          const int yy = y0 + lf.dy, xx = x0 + lf.dx;
          const bool inside = (unsigned)yy < (unsigned)H && (unsigned)xx < (unsigned)W;
          node[l] = inside ? xw[(lf.off + y0 * W + x0) * NW] : Wd(0);
        }
        int g = 0;
#pragma unroll
        for (int m = L / 2; m >= 1; m /= 2) {
#pragma unroll
          for (int i = 0; i < m; ++i, ++g) node[i] = dlg::gate_bits<Wd>(s_ops[g], node[2 * i], node[2 * i + 1]);
        }
        acc |= node[0];
      }
    }
    out[((long long)k * Hp * Wp + r) * NW + w] = acc;
  }
}

// Stand-alone OR pool (OrPool2d) on words: x (C, H, W, NW) -> out (C, Hp, Wp, NW).
template <typename Wd>
__global__ void or_pool_packed(const Wd* __restrict__ x, Wd* __restrict__ out, int C, int H, int W,
                               int Hp, int Wp, int pool, int NW) {
  const unsigned total = (unsigned)C * Hp * Wp * NW;
  const unsigned step = gridDim.x * blockDim.x;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += step) {
    const int w = e % NW;
    const int r = e / NW;  // (c, hp, wp)
    const int wp = r % Wp, hp = (r / Wp) % Hp, c = r / (Wp * Hp);
    Wd acc = 0;
    for (int u = 0; u < pool; ++u)
      for (int v = 0; v < pool; ++v)
        acc |= x[(((long long)c * H + hp * pool + u) * W + wp * pool + v) * NW + w];
    out[e] = acc;
  }
}

// Group sum: counts[n, c] = number of ones among features [c*G, (c+1)*G) of sample n,
// G = F / k.  One warp per (class c, word w): lane t loads feature f0+t's word, and for every
// bit s a __ballot_sync gathers bit s of the 32 features into one word whose popcount is
// sample s's partial count (a 32x32 bit transpose + popcount).  Lane s keeps sample s's
// count (and sample s+32's for 64-bit words).
template <typename Wd>
__global__ void group_sum_packed(const Wd* __restrict__ x, int* __restrict__ counts, int F, int k,
                                 int N, int NW) {
  constexpr int B = Bits<Wd>::value;
  const int lane = threadIdx.x & 31;
  const int G = F / k;
  const long long nwarps = ((long long)gridDim.x * blockDim.x) >> 5;
  for (long long gw = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; gw < (long long)k * NW;
       gw += nwarps) {  // warp-uniform loop: all lanes share gw
    const int c = (int)(gw / NW), w = (int)(gw - (long long)c * NW);
    const int f0 = c * G;
    unsigned cnt_lo = 0, cnt_hi = 0;
    for (int base = 0; base < G; base += 32) {
      const Wd v = (base + lane < G) ? x[(long long)(f0 + base + lane) * NW + w] : Wd(0);
      const unsigned lo = (unsigned)v;
#pragma unroll
      for (int s = 0; s < 32; ++s) {
        const unsigned bal = __ballot_sync(DLG_FULL_MASK, (lo >> s) & 1u);
        if (lane == s) cnt_lo += __popc(bal);
      }
      if constexpr (B == 64) {
        const unsigned hi = (unsigned)((unsigned long long)v >> 32);
#pragma unroll
        for (int s = 0; s < 32; ++s) {
          const unsigned bal = __ballot_sync(DLG_FULL_MASK, (hi >> s) & 1u);
          if (lane == s) cnt_hi += __popc(bal);
        }
      }
    }
    const int n = w * B + lane;
    if (n < N) counts[(long long)n * k + c] = (int)cnt_lo;
    if (B == 64 && n + 32 < N) counts[(long long)(n + 32) * k + c] = (int)cnt_hi;
  }
}

#ifdef DIFFLOGIC_NVCC_INSTANTIATE  // only for the offline nvcc compile check
// (DIFFLOGIC_NVCC_MAX_DEPTH=3 skips the slow-to-compile depths 4-5)
#define DLG_INST_W(Wd)                                                                             \
  template __global__ void pack_bits<Wd>(const unsigned char*, Wd*, int, int, int);              \
  template __global__ void unpack_bits<Wd>(const Wd*, unsigned char*, int, int, int);            \
  template __global__ void dense_packed<Wd>(const Wd*, const int*, const int*,                   \
                                            const unsigned char*, Wd*, int, int);                 \
  template __global__ void or_pool_packed<Wd>(const Wd*, Wd*, int, int, int, int, int, int, int); \
  template __global__ void group_sum_packed<Wd>(const Wd*, int*, int, int, int, int);
#define DLG_INST_TREE(Wd, D)                                                                       \
  template __global__ void tree_conv_pool_packed<Wd, D>(const Wd*, const int*, const int*,       \
      const int*, const unsigned char*, Wd*, int, int, int, int, int, int, int, int, int, int);
DLG_INST_W(unsigned int)
DLG_INST_W(unsigned long long)
DLG_INST_TREE(unsigned int, 1)
DLG_INST_TREE(unsigned int, 2)
DLG_INST_TREE(unsigned int, 3)
DLG_INST_TREE(unsigned long long, 1)
DLG_INST_TREE(unsigned long long, 2)
DLG_INST_TREE(unsigned long long, 3)
#if !defined(DIFFLOGIC_NVCC_MAX_DEPTH) || DIFFLOGIC_NVCC_MAX_DEPTH >= 4
DLG_INST_TREE(unsigned int, 4)
DLG_INST_TREE(unsigned int, 5)
DLG_INST_TREE(unsigned long long, 4)
DLG_INST_TREE(unsigned long long, 5)
#endif
#endif
