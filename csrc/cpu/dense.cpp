// Dense kernels.  Layout strategy (chosen on the LogicTreeNet-S dense shapes):
//  * the relaxed kernels work *feature-major*: xt (in, N), yt (out, N), gyt, gxt.  Each gate
//    then reads two contiguous batch rows and writes one, so the per-gate loop vectorises with
//    plain loads and stores (no gathers), and consecutive dense layers hand each other
//    feature-major tensors without any transpose (difflogic/kernels/__init__.py returns (N, out)
//    tensors with strides (1, N)).  Transposing (N, 40960) batches in and out cost more than the gates.
//  * rows picked by the random wiring are prefetched a few gates ahead.
//  * backward splits the *batch* into column blocks of >= 64 samples, as many as the batch
//    allows (up to kMaxBlocks), whatever the thread count: every thread owns its blocks'
//    columns of gxt (no atomics, no races); per-gate coefficient sums are per-block partials,
//    summed in double in block order at the end.  A batch too small to split (< 128) is
//    shared two ways instead: each gate's sums over the whole batch by one thread, and each
//    thread's own columns of gxt, gates in order.  So no result depends on the number of
//    threads.
//  * the hard (uint8) forward keeps the (N, in) -> (N, out) layout of the eval path: it
//    transposes once and evaluates tiles of gates x samples.
#include "dense.h"

#include "common.h"

#include <vector>

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

// Prefetch the first bytes of a batch row that a later gate reads: rows are picked at random by
// the wiring, so the hardware prefetcher only follows a row once its first lines have missed.
template <typename T>
DL_INLINE void prefetch_row(const T* p, int64_t n) {
#if defined(__GNUC__) || defined(__clang__)
    const int64_t bytes = std::min<int64_t>(n * int64_t(sizeof(T)), 512);
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(reinterpret_cast<const char*>(p) + o);
#else
    (void)p; (void)n;
#endif
}

constexpr int64_t kPrefetchGates = 4;  // gates ahead whose input rows are prefetched
constexpr int64_t kMaxBlocks = 16;     // column blocks of a backward (fewer on small batches)

template <typename T>
void dense_forward(const T* xt, const int32_t* a, const int32_t* b, const T* coeffs, T* yt,
                   int64_t N, int64_t in, int64_t out, int nthreads) {
    (void)in;
    if (N == 0 || out == 0) return;
#pragma omp parallel for num_threads(DL_OMP_THREADS(nthreads)) schedule(static) if (out * N > 65536)
    for (int64_t j = 0; j < out; ++j) {
        if (j + kPrefetchGates < out) {
            prefetch_row(xt + int64_t(a[j + kPrefetchGates]) * N, N);
            prefetch_row(xt + int64_t(b[j + kPrefetchGates]) * N, N);
        }
        const T c0 = coeffs[4 * j], c1 = coeffs[4 * j + 1], c2 = coeffs[4 * j + 2], c3 = coeffs[4 * j + 3];
        const T* DL_RESTRICT xa = xt + int64_t(a[j]) * N;
        const T* DL_RESTRICT xb = xt + int64_t(b[j]) * N;
        T* DL_RESTRICT d = yt + j * N;
        DL_SIMD
        for (int64_t i = 0; i < N; ++i) d[i] = c0 + c1 * xa[i] + (c2 + c3 * xa[i]) * xb[i];
    }
}

// The four coefficient sums of one gate over a whole batch row (one call site: every thread
// count runs the same machine code, so a sum rounds the same however the work is split).
template <typename T>
DL_INLINE void gate_sums(const T* DL_RESTRICT g, const T* DL_RESTRICT xa, const T* DL_RESTRICT xb,
                         int64_t N, T* DL_RESTRICT s) {
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    DL_SIMD_REDUCE(s0, s1, s2, s3)
    for (int64_t i = 0; i < N; ++i) {
        const T gv = g[i], A = xa[i], B = xb[i];
        s0 += gv; s1 += gv * A; s2 += gv * B; s3 += gv * A * B;
    }
    s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3;
}

// Backward of a batch of one column block (N < 128): each gate's sums over the whole row come
// from one thread (gates dealt out in groups of 64), and each thread adds every gate's input
// gradients into its own columns of gxt (runs of 16), gates in order.  So every number is
// what one thread computes, and both halves of the work are shared.
template <typename T>
static void dense_backward_small(const T* xt, const int32_t* a, const int32_t* b,
                                 const T* coeffs, const T* gyt, T* gxt, T* grad_coeffs,
                                 int64_t N, int64_t in, int64_t out, int nt) {
    const int64_t units = (N + 15) / 16;
#pragma omp parallel num_threads(DL_OMP_THREADS(nt))
    {
        const int64_t t = dl_thread_id(), tn = dl_num_threads();
        const int64_t lo = std::min(N, 16 * (units * t / tn)), hi = std::min(N, 16 * (units * (t + 1) / tn));
        const int64_t w = hi - lo;
        if (gxt && w == N) {
            std::memset(static_cast<void*>(gxt), 0, size_t(in * N) * sizeof(T));
        } else if (gxt && w > 0) {
            for (int64_t r = 0; r < in; ++r) std::memset(static_cast<void*>(gxt + r * N + lo), 0, size_t(w) * sizeof(T));
        }
        for (int64_t j = 0; j < out; ++j) {
            if (j + kPrefetchGates < out) {  // whole rows for owned sums, else own columns
                const int64_t ja = a[j + kPrefetchGates], jb = b[j + kPrefetchGates];
                const bool whole = ((j + kPrefetchGates) / 64) % tn == t || !gxt;
                prefetch_row(xt + ja * N + (whole ? 0 : lo), whole ? N : w);
                prefetch_row(xt + jb * N + (whole ? 0 : lo), whole ? N : w);
                if (gxt && w > 0) {
                    prefetch_row(gxt + ja * N + lo, w);
                    prefetch_row(gxt + jb * N + lo, w);
                }
            }
            const T* g = gyt + j * N;
            const T* xa = xt + int64_t(a[j]) * N;
            const T* xb = xt + int64_t(b[j]) * N;
            if ((j / 64) % tn == t) gate_sums(g, xa, xb, N, grad_coeffs + 4 * j);
            if (!gxt || w == 0) continue;
            const T c1 = coeffs[4 * j + 1], c2 = coeffs[4 * j + 2], c3 = coeffs[4 * j + 3];
            T* DL_RESTRICT ga = gxt + int64_t(a[j]) * N;
            if (a[j] == b[j]) {  // both partial derivatives land on the same input
                DL_SIMD
                for (int64_t i = lo; i < hi; ++i) ga[i] += g[i] * (c1 + c2 + T(2) * c3 * xa[i]);
            } else {
                T* DL_RESTRICT gb = gxt + int64_t(b[j]) * N;
                DL_SIMD
                for (int64_t i = lo; i < hi; ++i) {
                    ga[i] += g[i] * (c1 + c3 * xb[i]);
                    gb[i] += g[i] * (c2 + c3 * xa[i]);
                }
            }
        }
    }
}

template <typename T>
void dense_backward(const T* xt, const int32_t* a, const int32_t* b, const T* coeffs,
                    const T* gyt, T* gxt, T* grad_coeffs, int64_t N, int64_t in, int64_t out,
                    int nthreads) {
    if (out == 0) return;
    if (N == 0) {
        std::fill(grad_coeffs, grad_coeffs + 4 * out, T(0));
        return;
    }
    const int nt = std::max(1, nthreads);
    // column blocks of the batch: a thread owns its blocks' columns of grad_xt (no atomics);
    // blocks are multiples of 16 elements (no shared cache lines) and at least 64 long, so the
    // per-gate set-up and the four reductions stay small next to the row work.  Their number
    // depends on the batch alone, never on the threads, and so do the sums.
    const int64_t units = (N + 15) / 16;
    const int64_t nblk = std::max<int64_t>(1, std::min<int64_t>(kMaxBlocks, units / 4));
    if (nblk == 1) {  // a batch too small to split into blocks
        dense_backward_small(xt, a, b, coeffs, gyt, gxt, grad_coeffs, N, in, out, nt);
        return;
    }
    const int64_t chunk = ((units + nblk - 1) / nblk) * 16;
    Scratch<double> acc(nblk > 1 ? size_t(nblk * out * 4) : 1);
#pragma omp parallel for num_threads(DL_OMP_THREADS(int(std::min<int64_t>(nt, nblk)))) schedule(static, 1)
    for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t n0 = blk * chunk, n1 = std::min(N, n0 + chunk), nn = std::max<int64_t>(0, n1 - n0);
        if (gxt && nn == N) {
            std::memset(static_cast<void*>(gxt), 0, size_t(in * N) * sizeof(T));
        } else if (gxt) {
            for (int64_t r = 0; r < in; ++r) std::memset(static_cast<void*>(gxt + r * N + n0), 0, size_t(nn) * sizeof(T));
        }
        double* ac = nblk > 1 ? acc.data() + blk * out * 4 : nullptr;
        for (int64_t j = 0; j < out; ++j) {
            if (j + kPrefetchGates < out) {
                const int64_t ja = a[j + kPrefetchGates], jb = b[j + kPrefetchGates];
                prefetch_row(xt + ja * N + n0, nn);
                prefetch_row(xt + jb * N + n0, nn);
                if (gxt) {
                    prefetch_row(gxt + ja * N + n0, nn);
                    prefetch_row(gxt + jb * N + n0, nn);
                }
            }
            const T c1 = coeffs[4 * j + 1], c2 = coeffs[4 * j + 2], c3 = coeffs[4 * j + 3];
            const T* DL_RESTRICT g = gyt + j * N + n0;
            const T* xa = xt + int64_t(a[j]) * N + n0;
            const T* xb = xt + int64_t(b[j]) * N + n0;
            T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            if (gxt && a[j] != b[j]) {
                T* DL_RESTRICT ga = gxt + int64_t(a[j]) * N + n0;
                T* DL_RESTRICT gb = gxt + int64_t(b[j]) * N + n0;
                DL_SIMD_REDUCE(s0, s1, s2, s3)
                for (int64_t i = 0; i < nn; ++i) {
                    const T gv = g[i], A = xa[i], B = xb[i];
                    s0 += gv; s1 += gv * A; s2 += gv * B; s3 += gv * A * B;
                    ga[i] += gv * (c1 + c3 * B);
                    gb[i] += gv * (c2 + c3 * A);
                }
            } else if (gxt) {  // a == b: both partial derivatives land on the same input
                T* DL_RESTRICT ga = gxt + int64_t(a[j]) * N + n0;
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
            if (ac) {
                ac[4 * j] = s0; ac[4 * j + 1] = s1; ac[4 * j + 2] = s2; ac[4 * j + 3] = s3;
            } else {
                grad_coeffs[4 * j] = s0; grad_coeffs[4 * j + 1] = s1;
                grad_coeffs[4 * j + 2] = s2; grad_coeffs[4 * j + 3] = s3;
            }
        }
    }
    if (nblk > 1) {
#pragma omp parallel for num_threads(DL_OMP_THREADS(nthreads)) schedule(static) if (out > 4096)
        for (int64_t i = 0; i < 4 * out; ++i) {
            double s = 0;
            for (int64_t blk = 0; blk < nblk; ++blk) s += acc[blk * out * 4 + i];
            grad_coeffs[i] = T(s);
        }
    }
}

template <typename T>
void transpose_copy(const T* src, T* dst, int64_t rows, int64_t cols, int nthreads) {
    transpose(src, dst, rows, cols, nthreads);
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

template void transpose_copy<float>(const float*, float*, int64_t, int64_t, int);
template void transpose_copy<double>(const double*, double*, int64_t, int64_t, int);
template void dense_forward<float>(const float*, const int32_t*, const int32_t*, const float*, float*,
                                   int64_t, int64_t, int64_t, int);
template void dense_forward<double>(const double*, const int32_t*, const int32_t*, const double*,
                                    double*, int64_t, int64_t, int64_t, int);
template void dense_backward<float>(const float*, const int32_t*, const int32_t*, const float*,
                                    const float*, float*, float*, int64_t, int64_t, int64_t, int);
template void dense_backward<double>(const double*, const int32_t*, const int32_t*, const double*,
                                     const double*, double*, double*, int64_t, int64_t, int64_t, int);

}  // namespace dl
