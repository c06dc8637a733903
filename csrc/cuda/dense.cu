// Dense logic layer: relaxed forward/backward and hard (uint8) forward.
//
// Relaxed kernels work FEATURE-MAJOR: activations are (features, batch) with the batch
// contiguous.  A warp then covers consecutive samples of one neuron, so the gathers
// x[a[j], n] and x[b[j], n] are coalesced 128-byte loads (row-major (batch, features) would
// make every lane read a different random column).  The Python wrapper returns the (out, N)
// result transposed as a view, so a stack of dense layers never copies between layers.
//
// Backward w.r.t. the input is atomic-free: a CSR "inverse wiring" map lists, for every input
// i, the (neuron, side) pairs that read it (built once in PyTorch and cached), and one thread
// per (i, n) sums those contributions in a fixed order -- deterministic, no contention.
#include "common.cuh"

// yT[j, n] = gate_j(xT[a[j], n], xT[b[j], n])
template <typename T>
__global__ void dense_forward(const T* __restrict__ xT, const int* __restrict__ a,
                              const int* __restrict__ b, const T* __restrict__ coeffs,
                              T* __restrict__ yT, int out, int N) {
  const unsigned total = (unsigned)out * N;
  const unsigned step = gridDim.x * blockDim.x;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += step) {
    const int j = e / N, n = e - j * N;
    const T xa = xT[(int)a[j] * N + n];
    const T xb = xT[(int)b[j] * N + n];
    yT[e] = dlg::gate_relaxed(coeffs + 4 * j, xa, xb);
  }
}

// grad_coeffs[j, :] = sum_n gy[j, n] * (1, xa, xb, xa*xb): one warp per neuron, warp-shuffle
// reduction, plain stores (each neuron is owned by exactly one warp, so no atomics).
template <typename T>
__global__ void dense_backward_coeffs(const T* __restrict__ xT, const int* __restrict__ a,
                                      const int* __restrict__ b, const T* __restrict__ gyT,
                                      T* __restrict__ grad_coeffs, int out, int N) {
  const int lane = threadIdx.x & 31;
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int nwarps = (gridDim.x * blockDim.x) >> 5;
  for (int j = warp; j < out; j += nwarps) {  // warp-uniform loop
    const T* xa = xT + (int)a[j] * N;
    const T* xb = xT + (int)b[j] * N;
    const T* gy = gyT + j * N;
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int n = lane; n < N; n += 32) {
      const T g = gy[n], va = xa[n], vb = xb[n];
      const T ga = g * va;
      s0 += g;
      s1 += ga;
      s2 += g * vb;
      s3 += ga * vb;
    }
    s0 = dlg::warp_sum(s0);
    s1 = dlg::warp_sum(s1);
    s2 = dlg::warp_sum(s2);
    s3 = dlg::warp_sum(s3);
    if (lane == 0) {
      grad_coeffs[4 * j + 0] = s0;
      grad_coeffs[4 * j + 1] = s1;
      grad_coeffs[4 * j + 2] = s2;
      grad_coeffs[4 * j + 3] = s3;
    }
  }
}

// gxT[i, n] = sum over CSR entries (j, side) of input i of
//     gy[j, n] * (c1 + c3 * x_b)   (side 0: i is input a of neuron j)
//     gy[j, n] * (c2 + c3 * x_a)   (side 1: i is input b of neuron j)
// entries[p] = 2*j + side, rowptr has in+1 entries.
template <typename T>
__global__ void dense_backward_x(const T* __restrict__ xT, const int* __restrict__ a,
                                 const int* __restrict__ b, const T* __restrict__ coeffs,
                                 const T* __restrict__ gyT, const int* __restrict__ rowptr,
                                 const int* __restrict__ entries, T* __restrict__ gxT,
                                 int in, int N) {
  const unsigned total = (unsigned)in * N;
  const unsigned step = gridDim.x * blockDim.x;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += step) {
    const int i = e / N, n = e - i * N;
    const int beg = rowptr[i], end = rowptr[i + 1];
    T acc = 0;
    for (int p = beg; p < end; ++p) {
      const int ent = entries[p];
      const int j = ent >> 1;
      const int side = ent & 1;
      const T* c = coeffs + 4 * j;
      const int other = side ? a[j] : b[j];
      const T xo = xT[other * N + n];
      const T g = gyT[j * N + n];
      acc += g * ((side ? c[2] : c[1]) + c[3] * xo);
    }
    gxT[e] = acc;
  }
}

// Hard forward on {0,1} bytes, row-major (N, in) -> (N, out); any nonzero byte counts as 1.
__global__ void dense_hard(const unsigned char* __restrict__ x, const int* __restrict__ a,
                           const int* __restrict__ b, const unsigned char* __restrict__ ops,
                           unsigned char* __restrict__ y, int N, int in, int out) {
  const unsigned total = (unsigned)N * out;
  const unsigned step = gridDim.x * blockDim.x;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += step) {
    const int n = e / out, j = e - n * out;
    const unsigned char* row = x + n * in;
    const unsigned va = row[a[j]] != 0, vb = row[b[j]] != 0;
    y[e] = (unsigned char)dlg::hard_gate(ops[j], va, vb);
  }
}

#ifdef DIFFLOGIC_NVCC_INSTANTIATE  // only for the offline nvcc compile check
template __global__ void dense_forward<float>(const float*, const int*, const int*, const float*, float*, int, int);
template __global__ void dense_forward<double>(const double*, const int*, const int*, const double*, double*, int, int);
template __global__ void dense_backward_coeffs<float>(const float*, const int*, const int*, const float*, float*, int, int);
template __global__ void dense_backward_coeffs<double>(const double*, const int*, const int*, const double*, double*, int, int);
template __global__ void dense_backward_x<float>(const float*, const int*, const int*, const float*, const float*, const int*, const int*, float*, int, int);
template __global__ void dense_backward_x<double>(const double*, const int*, const int*, const double*, const double*, const int*, const int*, double*, int, int);
#endif
