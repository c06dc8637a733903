// Dense kernels.  Layout strategy (measured on the LogicTreeNet-S dense shapes):
//  * x is transposed once to feature-major xt (in, N): each gate then reads two contiguous
//    batch rows, so the per-gate loop vectorises with plain loads (no gathers).
//  * forward computes a tile of JB gates x NB samples into an L1 buffer and stores it back
//    row-major, one cache line of outputs per sample.
//  * backward splits the *batch* into one column block per thread: every thread owns its
//    columns of grad_xt (no atomics, no races) and keeps private grad_coeffs sums (double)
//    that are reduced at the end.
#include "dense.h"

#include "common.h"

namespace dl {

namespace {

// Tile driver shared by the relaxed and the hard forward: f(j, xa, xb, dst, n) fills dst[0..n).
template <typename T, typename F>
void dense_tiles(const T* xt, int64_t N, int64_t out, const int32_t* a, const int32_t* b, T* y,
                 int nthreads, F f) {
    constexpr int64_t JB = 64 / sizeof(T) < 16 ? 16 : 64 / sizeof(T);
    constexpr int64_t NB = 256;
    const int64_t tj = (out + JB - 1) / JB, tn = (N + NB - 1) / NB;
#pragma omp parallel num_threads(DL_OMP_THREADS(nthreads))
    {
        alignas(64) T buf[JB * NB];
#pragma omp for schedule(dynamic, 8)
        for (int64_t t = 0; t < tj * tn; ++t) {
            const int64_t j0 = (t / tn) * JB, n0 = (t % tn) * NB;
            const int64_t jn = std::min(out, j0 + JB) - j0, nn = std::min(N, n0 + NB) - n0;
            for (int64_t jj = 0; jj < jn; ++jj) {
                const int64_t j = j0 + jj;
                f(j, xt + int64_t(a[j]) * N + n0, xt + int64_t(b[j]) * N + n0, buf + jj * NB, nn);
            }
            for (int64_t n = 0; n < nn; ++n) {
                T* dst = y + (n0 + n) * out + j0;
                for (int64_t jj = 0; jj < jn; ++jj) dst[jj] = buf[jj * NB + n];
            }
        }
    }
}

}  // namespace

template <typename T>
void dense_forward(const T* x, const int32_t* a, const int32_t* b, const T* coeffs, T* y,
                   int64_t N, int64_t in, int64_t out, int nthreads) {
    if (N == 0 || out == 0) return;
    Scratch<T> xt(size_t(in * N));
    transpose(x, xt.data(), N, in, nthreads);
    dense_tiles(xt.data(), N, out, a, b, y, nthreads,
                [coeffs](int64_t j, const T* xa, const T* xb, T* d, int64_t n) {
                    const T c0 = coeffs[4 * j], c1 = coeffs[4 * j + 1], c2 = coeffs[4 * j + 2],
                            c3 = coeffs[4 * j + 3];
                    DL_SIMD
                    for (int64_t i = 0; i < n; ++i) d[i] = c0 + c1 * xa[i] + (c2 + c3 * xa[i]) * xb[i];
                });
}

template <typename T>
void dense_backward(const T* x, const int32_t* a, const int32_t* b, const T* coeffs,
                    const T* grad_y, T* grad_x, T* grad_coeffs, int64_t N, int64_t in,
                    int64_t out, int nthreads) {
    if (out == 0) return;
    if (N == 0) {
        std::fill(grad_coeffs, grad_coeffs + 4 * out, T(0));
        if (grad_x) std::fill(grad_x, grad_x + N * in, T(0));
        return;
    }
    Scratch<T> xt(size_t(in * N)), gyt(size_t(out * N)), gxt(grad_x ? size_t(in * N) : 1);
    transpose(x, xt.data(), N, in, nthreads);
    transpose(grad_y, gyt.data(), N, out, nthreads);
    if (grad_x) gxt.zero(size_t(in * N), nthreads);
    const int nt = std::max(1, nthreads);
    // column blocks: multiples of 16 elements so threads never share a cache line of grad_xt;
    // twice as many blocks as threads (dynamic schedule), so a thread that the OS preempts on a
    // busy machine does not hold the others at the closing barrier for half the work
    const int64_t units = (N + 15) / 16;
    const int64_t nblk = std::min<int64_t>(nt == 1 ? 1 : 2 * nt, units);
    const int64_t chunk = ((units + nblk - 1) / nblk) * 16;
    Scratch<double> acc(size_t(nblk * out * 4));
    acc.zero(size_t(nblk * out * 4), 1);
    T* gxt_p = grad_x ? gxt.data() : nullptr;
    const T* xt_p = xt.data();
    const T* gyt_p = gyt.data();
#pragma omp parallel for num_threads(DL_OMP_THREADS(nthreads)) schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t n0 = blk * chunk, n1 = std::min(N, n0 + chunk), nn = n1 - n0;
        double* ac = acc.data() + blk * out * 4;
        if (nn <= 0) continue;
        for (int64_t j = 0; j < out; ++j) {
            const T c1 = coeffs[4 * j + 1], c2 = coeffs[4 * j + 2], c3 = coeffs[4 * j + 3];
            const T* DL_RESTRICT g = gyt_p + j * N + n0;
            const T* xa = xt_p + int64_t(a[j]) * N + n0;
            const T* xb = xt_p + int64_t(b[j]) * N + n0;
            T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            if (gxt_p && a[j] != b[j]) {
                T* DL_RESTRICT ga = gxt_p + int64_t(a[j]) * N + n0;
                T* DL_RESTRICT gb = gxt_p + int64_t(b[j]) * N + n0;
                DL_SIMD_REDUCE(s0, s1, s2, s3)
                for (int64_t i = 0; i < nn; ++i) {
                    const T gv = g[i], A = xa[i], B = xb[i];
                    s0 += gv; s1 += gv * A; s2 += gv * B; s3 += gv * A * B;
                    ga[i] += gv * (c1 + c3 * B);
                    gb[i] += gv * (c2 + c3 * A);
                }
            } else if (gxt_p) {  // a == b: both partial derivatives land on the same input
                T* DL_RESTRICT ga = gxt_p + int64_t(a[j]) * N + n0;
                DL_SIMD_REDUCE(s0, s1, s2, s3)
                for (int64_t i = 0; i < nn; ++i) {
                    const T gv = g[i], A = xa[i];
                    s0 += gv; s1 += gv * A; s2 += gv * A; s3 += gv * A * A;
                    ga[i] += gv * (c1 + c2 + T(2) * c3 * A);
                }
            } else {
                DL_SIMD_REDUCE(s0, s1, s2, s3)
                for (int64_t i = 0; i < nn; ++i) {
                    const T gv = g[i], A = xa[i], B = xb[i];
                    s0 += gv; s1 += gv * A; s2 += gv * B; s3 += gv * A * B;
                }
            }
            ac[4 * j] += s0; ac[4 * j + 1] += s1; ac[4 * j + 2] += s2; ac[4 * j + 3] += s3;
        }
    }
#pragma omp parallel for num_threads(DL_OMP_THREADS(nthreads)) schedule(static) if (out > 4096)
    for (int64_t i = 0; i < 4 * out; ++i) {
        double s = 0;
        for (int64_t blk = 0; blk < nblk; ++blk) s += acc[blk * out * 4 + i];
        grad_coeffs[i] = T(s);
    }
    if (grad_x) transpose(gxt.data(), grad_x, in, N, nthreads);
}

void dense_hard(const uint8_t* x, const int32_t* a, const int32_t* b, const uint8_t* ops,
                uint8_t* y, int64_t N, int64_t in, int64_t out, int nthreads) {
    if (N == 0 || out == 0) return;
    Scratch<uint8_t> xt(size_t(in * N));
    transpose(x, xt.data(), N, in, nthreads, [](uint8_t v) { return uint8_t(v != 0); });
    dense_tiles(xt.data(), N, out, a, b, y, nthreads,
                [ops](int64_t j, const uint8_t* xa, const uint8_t* xb, uint8_t* d, int64_t n) {
                    const Anf f(ops[j]);
                    const uint8_t k0 = f.k0, k1 = f.k1, k2 = f.k2, k3 = f.k3;
                    DL_SIMD
                    for (int64_t i = 0; i < n; ++i) d[i] = anf_eval(k0, k1, k2, k3, xa[i], xb[i]);
                });
}

template void dense_forward<float>(const float*, const int32_t*, const int32_t*, const float*, float*,
                                   int64_t, int64_t, int64_t, int);
template void dense_forward<double>(const double*, const int32_t*, const int32_t*, const double*,
                                    double*, int64_t, int64_t, int64_t, int);
template void dense_backward<float>(const float*, const int32_t*, const int32_t*, const float*,
                                    const float*, float*, float*, int64_t, int64_t, int64_t, int);
template void dense_backward<double>(const double*, const int32_t*, const int32_t*, const double*,
                                     const double*, double*, double*, int64_t, int64_t, int64_t, int);

}  // namespace dl
