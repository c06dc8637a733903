// Fused tree convolution + OR pool.
//
// Layout: the batch is zero-padded once into channel-major order (C, N, Hp, Wp), P = Hp*Wp.
// A leaf (c, dy, dx) is then one fixed offset c*N*P + dy*Wp + dx from the conv position
// t = n*P + i*Wp + j, for every sample n.  With stride 1 the conv values of a whole tile of
// samples are one contiguous range of t: each tree is evaluated with t innermost, all L leaves
// and L-1 gates in vector registers, plain contiguous loads (the wrap-around positions between
// rows and samples are computed and ignored).  Tiles hold enough samples to amortise the per
// tree set-up on 4x4 planes, and few enough that their input stays in L2 while all K trees
// run over it.
//
// Forward keeps each tile's conv planes in a small per-thread buffer and writes only the pooled
// value and the argmax (uint8) of each window.  Backward recomputes the tree only at the
// selected position of each window, for chunks of windows with the window index innermost
// (gathers, vector arithmetic, sequential scatter); threads own disjoint blocks of samples, so
// the padded input gradient needs no atomics, and grad_coeffs are summed in per-thread double
// buffers reduced at the end.
#include "tree_conv.h"

#include <limits>
#include <memory>

#include "common.h"

namespace dl {

void ConvGeom::finish() {
    auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
    if (N < 0 || C < 1 || H < 1 || W < 1) bad("x must have shape (N, C, H, W) with C, H, W >= 1");
    if (K < 1) bad("need at least one tree (K >= 1)");
    if (!(L == 2 || L == 4 || L == 8 || L == 16 || L == 32))
        bad("leaves per tree must be 2, 4, 8, 16 or 32 (depth 1..5), got " + std::to_string(L));
    if (kh < 1 || kw < 1) bad("kernel_size must be >= 1");
    if (stride < 1) bad("stride must be >= 1, got " + std::to_string(stride));
    if (pad < 0) bad("padding must be >= 0, got " + std::to_string(pad));
    if (pool < 1 || pool > 15) bad("pool must be in [1, 15], got " + std::to_string(pool));
    Hp = H + 2 * pad;
    Wp = W + 2 * pad;
    if (Hp < kh || Wp < kw) bad("kernel_size is larger than the padded input");
    Ho = (Hp - kh) / stride + 1;
    Wo = (Wp - kw) / stride + 1;
    Hq = Ho / pool;
    Wq = Wo / pool;
    if (Hq < 1 || Wq < 1) bad("pool is larger than the conv output");
    if (N * C * Hp * Wp >= (int64_t(1) << 31)) bad("the padded batch exceeds 2^31 elements; split the batch");
}

void check_leaves(const int32_t* leaf_c, const int32_t* leaf_dy, const int32_t* leaf_dx,
                  const ConvGeom& g) {
    check_index(leaf_c, g.K * g.L, g.C, "leaf_c");
    check_index(leaf_dy, g.K * g.L, g.kh, "leaf_dy");
    check_index(leaf_dx, g.K * g.L, g.kw, "leaf_dx");
}

namespace {

// Zero-padded copy of the whole batch in channel-major layout (C, N, Hp, Wp).  Why this layout:
// a leaf (c, dy, dx) is then one fixed offset c*N*P + dy*Wp + dx from the conv position
// t = n*P + i*Wp + j (P = Hp*Wp) for *every* sample, so one vector loop runs over the conv
// planes of many samples at once -- essential for the late blocks whose planes are only 4x4
// or 2x2 outputs, where per-(sample, tree) loop overhead would otherwise dominate.
template <typename T, typename Conv>
Scratch<T> pad_batch(const T* x, const ConvGeom& g, int nthreads, Conv conv) {
    const int64_t P = g.Hp * g.Wp, pd = g.pad;
    Scratch<T> xp(size_t(g.C * g.N * P));
    T* out = xp.data();
#pragma omp parallel for collapse(2) num_threads(DL_OMP_THREADS(nthreads)) schedule(dynamic, 64)
    for (int64_t c = 0; c < g.C; ++c)
        for (int64_t n = 0; n < g.N; ++n) {
            T* dst = out + (c * g.N + n) * P;
            const T* src = x + (n * g.C + c) * g.H * g.W;
            if (pd > 0) std::memset(static_cast<void*>(dst), 0, size_t(P) * sizeof(T));
            T* d0 = dst + pd * g.Wp + pd;
            for (int64_t i = 0; i < g.H; ++i) {
                T* row = d0 + i * g.Wp;
                const T* sr = src + i * g.W;
                for (int64_t j = 0; j < g.W; ++j) row[j] = conv(sr[j]);
            }
        }
    return xp;
}

template <typename T>
struct Identity {
    T operator()(T v) const { return v; }
};

struct NonZero {
    uint8_t operator()(uint8_t v) const { return uint8_t(v != 0); }
};

// Leaf offsets of tree k in the channel-major padded batch (relative to sample 0's plane).
inline void leaf_offsets(const int32_t* lc, const int32_t* ly, const int32_t* lx, int64_t k,
                         const ConvGeom& g, int64_t* off) {
    const int64_t P = g.Hp * g.Wp;
    for (int64_t l = 0; l < g.L; ++l) {
        const int64_t i = k * g.L + l;
        off[l] = int64_t(lc[i]) * g.N * P + int64_t(ly[i]) * g.Wp + lx[i];
    }
}

// ---------------------------------------------------------------- relaxed tree evaluation
// One tree level per template instance: compile-time trip counts, so the whole tree unrolls
// before vectorisation and the position loop around it becomes straight-line vector code.
// In place: v[i] <- gate(v[2i], v[2i+1]) follows the level-by-level gate order exactly.
template <typename T, int N>
DL_INLINE void reduce_levels(T* v, const T* c) {
    if constexpr (N > 1) {
#pragma GCC unroll 16
        for (int i = 0; i < N / 2; ++i) {
            const T A = v[2 * i], B = v[2 * i + 1];
            v[i] = c[4 * i] + c[4 * i + 1] * A + (c[4 * i + 2] + c[4 * i + 3] * A) * B;
        }
        reduce_levels<T, N / 2>(v, c + 4 * (N / 2));
    }
}

template <int N>
DL_INLINE void reduce_levels_hard(uint8_t* v, const uint8_t* k) {
    if constexpr (N > 1) {
#pragma GCC unroll 16
        for (int i = 0; i < N / 2; ++i)
            v[i] = anf_eval(k[4 * i], k[4 * i + 1], k[4 * i + 2], k[4 * i + 3], v[2 * i], v[2 * i + 1]);
        reduce_levels_hard<N / 2>(v, k + 4 * (N / 2));
    }
}

// dst[t] = tree(leaf_0[t*s], ..., leaf_{L-1}[t*s]) for t < len.  Gates are stored level by
// level; evaluating in place (v[i] <- gate(v[2i], v[2i+1])) follows that order exactly.
template <typename T, int L, bool UNIT>
void tree_span(const T* const* leaves, const T* coeffs, T* DL_RESTRICT dst, int64_t len, int64_t s) {
    const T* p[L];
    T c[4 * (L - 1)];
#pragma GCC unroll 32
    for (int l = 0; l < L; ++l) p[l] = leaves[l];
#pragma GCC unroll 128
    for (int i = 0; i < 4 * (L - 1); ++i) c[i] = coeffs[i];
    // no `omp simd` here: it would turn v[] into a per-lane array before the tree unrolls
    for (int64_t t = 0; t < len; ++t) {
        T v[L];
        const int64_t o = UNIT ? t : t * s;
#pragma GCC unroll 32
        for (int l = 0; l < L; ++l) v[l] = p[l][o];
        reduce_levels<T, L>(v, c);
        dst[t] = v[0];
    }
}

// Max pool (stride = size) with argmax; ties -> first maximum in row-major window order (as
// torch.nn.functional.max_pool2d).  Branch-free on purpose: pool inputs are random, so a
// compare-and-branch mispredicts half the time and cost 3x the whole tree evaluation.  The
// maximum is taken first (maxss), then the argmax is the first window slot equal to it.
// (Inputs are finite -- the layers reject NaN -- so NaN ordering is not reproduced.)
template <typename T>
DL_INLINE T max2(T a, T b) { return a < b ? b : a; }

template <typename T>
void pool_plane(const T* DL_RESTRICT conv, int64_t pitch, const ConvGeom& g, T* DL_RESTRICT y,
                uint8_t* DL_RESTRICT am) {
    const int64_t p = g.pool;
    if (p == 2) {
        for (int64_t qi = 0; qi < g.Hq; ++qi) {
            const T* r0 = conv + 2 * qi * pitch;
            const T* r1 = r0 + pitch;
            T* yr = y + qi * g.Wq;
            uint8_t* ar = am + qi * g.Wq;
            for (int64_t qj = 0; qj < g.Wq; ++qj) {
                const T v0 = r0[2 * qj], v1 = r0[2 * qj + 1], v2 = r1[2 * qj], v3 = r1[2 * qj + 1];
                const T best = max2(max2(v0, v1), max2(v2, v3));
                const int n0 = v0 != best, n1 = v1 != best, n2 = v2 != best;
                yr[qj] = best;
                ar[qj] = uint8_t(n0 * (1 + n1 * (1 + n2)));
            }
        }
        return;
    }
    for (int64_t qi = 0; qi < g.Hq; ++qi)
        for (int64_t qj = 0; qj < g.Wq; ++qj) {
            const T* w = conv + qi * p * pitch + qj * p;
            T best = w[0];
            for (int64_t di = 0; di < p; ++di)
                for (int64_t dj = 0; dj < p; ++dj) best = max2(best, w[di * pitch + dj]);
            int idx = int(p * p - 1);
            for (int64_t d = p * p - 1; d >= 0; --d) {
                const int eq = w[(d / p) * pitch + d % p] == best;
                idx = eq * int(d) + (1 - eq) * idx;
            }
            y[qi * g.Wq + qj] = best;
            am[qi * g.Wq + qj] = uint8_t(idx);
        }
}

// Samples per tile: enough conv positions (~2K) to amortise the per-tree loop set-up on small
// planes, but few enough that the tile's padded input (all C channels) stays in L2 while every
// tree is evaluated over it.
constexpr int64_t kTileBytes = 256 * 1024;

template <typename T>
int64_t samples_per_tile(const ConvGeom& g, int64_t positions, int64_t bytes = kTileBytes) {
    const int64_t P = g.Hp * g.Wp;
    const int64_t by_work = (positions + P - 1) / P;
    const int64_t by_cache = bytes / std::max<int64_t>(1, g.C * P * int64_t(sizeof(T)));
    return std::max<int64_t>(1, std::min<int64_t>({g.N, by_work, by_cache}));
}

// Runs body(k, n0, nn, conv_buffer) over all (sample tile, tree) pairs, trees innermost so a
// tile's input stays cache resident; the conv buffer holds nn planes (stride P, pitch Wp).
template <typename T, typename Body>
void for_each_tile(const ConvGeom& g, int nthreads, Body body) {
    // (twice the cache budget of a plain L2 tile: on small planes, like the 4x4 ones of the last
    // LogicTreeNet-S block, a plain tile holds too few samples to amortise the tree set-up)
    const int64_t P = g.Hp * g.Wp, NB = samples_per_tile<T>(g, 2048, 2 * kTileBytes);
    const int64_t tiles = (g.N + NB - 1) / NB;
#pragma omp parallel num_threads(DL_OMP_THREADS(nthreads))
    {
        Scratch<T> conv(size_t(NB * P));
#pragma omp for collapse(2) schedule(dynamic, 16)
        for (int64_t t = 0; t < tiles; ++t)
            for (int64_t k = 0; k < g.K; ++k) {
                const int64_t n0 = t * NB;
                body(k, n0, std::min(NB, g.N - n0), conv.data());
            }
    }
}

// Conv values of tree k for samples n0..n0+nn-1 into conv (plane stride P, row pitch Wp):
// stride 1 is one contiguous span over all those planes, larger strides go row by row.
template <typename T, int L, typename Span, typename SpanStrided>
DL_INLINE void conv_tile(const T* xp, const int64_t* off, const ConvGeom& g, int64_t n0, int64_t nn,
                         T* conv, Span span, SpanStrided strided) {
    const int64_t P = g.Hp * g.Wp;
    const int64_t R = g.Hq * g.pool, Wn = g.Wq * g.pool;  // conv rows/cols the output needs
    const T* base[L];
    for (int l = 0; l < L; ++l) base[l] = xp + off[l] + n0 * P;
    if (g.stride == 1) {
        span(base, conv, (nn - 1) * P + (R - 1) * g.Wp + Wn);
    } else {
        const T* rb[L];
        for (int64_t n = 0; n < nn; ++n)
            for (int64_t i = 0; i < R; ++i) {
                for (int l = 0; l < L; ++l) rb[l] = base[l] + n * P + i * g.stride * g.Wp;
                strided(rb, conv + n * P + i * g.Wp, Wn);
            }
    }
}

template <typename T, int L>
void forward_impl(const T* x, const int32_t* lc, const int32_t* ly, const int32_t* lx,
                  const T* coeffs, const ConvGeom& g, T* y, uint8_t* argmax, int nthreads) {
    const Scratch<T> xps = pad_batch(x, g, nthreads, Identity<T>());
    const T* xp = xps.data();
    const int64_t Q = g.Hq * g.Wq, P = g.Hp * g.Wp;
    for_each_tile<T>(g, nthreads, [&](int64_t k, int64_t n0, int64_t nn, T* conv) {
        int64_t off[L];
        leaf_offsets(lc, ly, lx, k, g, off);
        const T* ck = coeffs + k * 4 * (L - 1);
        conv_tile<T, L>(xp, off, g, n0, nn, conv,
            [&](const T* const* b, T* d, int64_t len) { tree_span<T, L, true>(b, ck, d, len, 1); },
            [&](const T* const* b, T* d, int64_t len) { tree_span<T, L, false>(b, ck, d, len, g.stride); });
        for (int64_t n = n0; n < n0 + nn; ++n) {
            const T* cp = conv + (n - n0) * P;
            T* yk = y + (n * g.K + k) * Q;
            if (g.pool == 1) {
                for (int64_t i = 0; i < g.Ho; ++i) std::copy(cp + i * g.Wp, cp + i * g.Wp + g.Wo, yk + i * g.Wo);
            } else {
                pool_plane(cp, g.Wp, g, yk, argmax + (n * g.K + k) * Q);
            }
        }
    });
}

// ---------------------------------------------------------------- backward
constexpr int64_t QB = 64;  // pool windows per backward chunk

// Samples per backward block, at most `most`: an even number of equal blocks where the batch
// allows, so that two threads get equal shares (blocks are handed out whole).
inline int64_t even_blocks(int64_t N, int64_t most) {
    const int64_t blocks = (N + most - 1) / most;
    if (blocks <= 1) return N;
    const int64_t even = blocks + blocks % 2;
    for (int64_t b = even; b <= std::min(N, 2 * even); b += 2)
        if (N % b == 0) return N / b;
    return (N + even - 1) / even;
}

template <typename T, int L>
void backward_impl(const T* x, const int32_t* lc, const int32_t* ly, const int32_t* lx,
                   const T* coeffs, const uint8_t* argmax, const T* grad_y, const ConvGeom& g,
                   T* grad_x, T* grad_coeffs, int nthreads) {
    constexpr int NN = 2 * L - 1;  // nodes: leaves 0..L-1, gate i is node L+i and reads 2i, 2i+1
    const int64_t P = g.Hp * g.Wp, Q = g.Hq * g.Wq, KQ = g.K * Q;
    const int64_t G4 = 4 * (L - 1);
    const int nt = std::max(1, nthreads);
    const Scratch<T> xps = pad_batch(x, g, nthreads, Identity<T>());
    const T* xp = xps.data();
    Scratch<T> gxp(grad_x ? size_t(g.C * g.N * P) : 1);  // padded input gradient, same layout;
    if (grad_x) gxp.zero(size_t(g.C * g.N * P), nthreads);  // threads own disjoint samples
    // offset of each pool window's first conv position within a plane, and of each window slot
    std::vector<int32_t> win(static_cast<size_t>(Q)), slot(static_cast<size_t>(g.pool * g.pool));
    for (int64_t qi = 0; qi < g.Hq; ++qi)
        for (int64_t qj = 0; qj < g.Wq; ++qj)
            win[qi * g.Wq + qj] = int32_t((qi * g.pool * g.Wp + qj * g.pool) * g.stride);
    for (int64_t d = 0; d < g.pool * g.pool; ++d)
        slot[d] = int32_t(((d / g.pool) * g.Wp + d % g.pool) * g.stride);
    // sample blocks: >= ~256 windows per block (small planes), never more than N / threads
    const int64_t per_thread = (g.N + nt - 1) / nt;
    // (a larger budget than the forward: per-chunk set-up dominates on 2x2 pooled planes)
    const int64_t NB = even_blocks(
        g.N, std::min<int64_t>(per_thread, samples_per_tile<T>(g, 256 * P / Q, 4 * kTileBytes)));
    const int64_t blocks = (g.N + NB - 1) / NB;
    std::vector<double> acc(size_t(nt) * size_t(g.K * G4), 0.0);
    T* gx_p = grad_x ? gxp.data() : nullptr;
#pragma omp parallel num_threads(DL_OMP_THREADS(nt))
    {
        const int tid = dl_thread_id();
        double* ac = acc.data() + tid * g.K * G4;
        std::unique_ptr<T[]> nodes(new T[NN * QB]), gn(new T[NN * QB]);
        std::vector<int32_t> wbase(size_t(NB * Q));  // conv position of window w, slot 0
        std::vector<int64_t> wout(size_t(NB * Q));   // index of window w in y/argmax for k = 0
        int32_t pos[QB];
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < blocks; ++blk) {
            const int64_t n0 = blk * NB, nn = std::min(NB, g.N - n0), W = nn * Q;
            for (int64_t n = 0; n < nn; ++n)
                for (int64_t q = 0; q < Q; ++q) {
                    wbase[n * Q + q] = int32_t((n0 + n) * P + win[q]);
                    wout[n * Q + q] = (n0 + n) * KQ + q;
                }
            for (int64_t k = 0; k < g.K; ++k) {
                int64_t off[L];
                leaf_offsets(lc, ly, lx, k, g, off);
                const T* ck = coeffs + k * G4;
                double* ak = ac + k * G4;
                for (int64_t w0 = 0; w0 < W; w0 += QB) {
                    const int64_t nq = std::min(QB, W - w0);
                    const int64_t* wo = wout.data() + w0;
                    const int32_t* wb = wbase.data() + w0;
                    if (argmax) {
                        const uint8_t* amk = argmax + k * Q;
                        for (int64_t q = 0; q < nq; ++q) pos[q] = wb[q] + slot[amk[wo[q]]];
                    } else {
                        for (int64_t q = 0; q < nq; ++q) pos[q] = wb[q];
                    }
                    T* DL_RESTRICT nd = nodes.get();
                    T* DL_RESTRICT gd = gn.get();
                    for (int l = 0; l < L; ++l) {
                        const T* src = xp + off[l];
                        for (int64_t q = 0; q < nq; ++q) nd[l * QB + q] = src[pos[q]];
                    }
                    for (int gi = 0; gi < L - 1; ++gi) {
                        const T c0 = ck[4 * gi], c1 = ck[4 * gi + 1], c2 = ck[4 * gi + 2], c3 = ck[4 * gi + 3];
                        const T* A = nd + (2 * gi) * QB;
                        const T* B = nd + (2 * gi + 1) * QB;
                        T* o = nd + (L + gi) * QB;
                        DL_SIMD
                        for (int64_t q = 0; q < nq; ++q) o[q] = c0 + c1 * A[q] + (c2 + c3 * A[q]) * B[q];
                    }
                    {
                        const T* gyk = grad_y + k * Q;
                        T* groot = gd + (NN - 1) * QB;
                        for (int64_t q = 0; q < nq; ++q) groot[q] = gyk[wo[q]];
                    }
                    for (int gi = L - 2; gi >= 0; --gi) {
                        const T c1 = ck[4 * gi + 1], c2 = ck[4 * gi + 2], c3 = ck[4 * gi + 3];
                        const T* A = nd + (2 * gi) * QB;
                        const T* B = nd + (2 * gi + 1) * QB;
                        const T* go = gd + (L + gi) * QB;
                        T* ga = gd + (2 * gi) * QB;
                        T* gb = gd + (2 * gi + 1) * QB;
                        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                        DL_SIMD_REDUCE(s0, s1, s2, s3)
                        for (int64_t q = 0; q < nq; ++q) {
                            const T o = go[q], a = A[q], b = B[q];
                            s0 += o; s1 += o * a; s2 += o * b; s3 += o * a * b;
                            ga[q] = o * (c1 + c3 * b);
                            gb[q] = o * (c2 + c3 * a);
                        }
                        ak[4 * gi] += s0; ak[4 * gi + 1] += s1; ak[4 * gi + 2] += s2; ak[4 * gi + 3] += s3;
                    }
                    // sequential scatter: leaves of one tree may coincide.  (An AVX-512
                    // gather-add-scatter per leaf -- exact, one leaf's positions are distinct --
                    // was slower than this scalar loop.)
                    if (gx_p) {
                        for (int l = 0; l < L; ++l) {
                            T* dst = gx_p + off[l];
                            const T* src = gd + l * QB;
                            for (int64_t q = 0; q < nq; ++q) dst[pos[q]] += src[q];
                        }
                    }
                }
            }
        }
    }
    if (grad_x) {  // crop the padded channel-major gradient into grad_x (N, C, H, W)
#pragma omp parallel for collapse(2) num_threads(DL_OMP_THREADS(nthreads)) schedule(dynamic, 64)
        for (int64_t n = 0; n < g.N; ++n)
            for (int64_t c = 0; c < g.C; ++c) {
                const T* src = gxp.data() + (c * g.N + n) * P + g.pad * g.Wp + g.pad;
                T* dst = grad_x + (n * g.C + c) * g.H * g.W;
                for (int64_t i = 0; i < g.H; ++i) std::copy(src + i * g.Wp, src + i * g.Wp + g.W, dst + i * g.W);
            }
    }
    const int64_t total = g.K * G4;
    for (int64_t i = 0; i < total; ++i) {
        double sum = 0;
        for (int t = 0; t < nt; ++t) sum += acc[size_t(t) * size_t(total) + i];
        grad_coeffs[i] = T(sum);
    }
}

// ---------------------------------------------------------------- hard
template <int L, bool UNIT>
void tree_span_hard(const uint8_t* const* leaves, const uint8_t* ops, uint8_t* DL_RESTRICT dst,
                    int64_t len, int64_t s) {
    const uint8_t* p[L];
    uint8_t k[4 * (L - 1)];
    for (int l = 0; l < L; ++l) p[l] = leaves[l];
    for (int i = 0; i < L - 1; ++i) {
        const Anf f(ops[i]);
        k[4 * i] = f.k0; k[4 * i + 1] = f.k1; k[4 * i + 2] = f.k2; k[4 * i + 3] = f.k3;
    }
    for (int64_t t = 0; t < len; ++t) {
        uint8_t v[L];
        const int64_t o = UNIT ? t : t * s;
#pragma GCC unroll 32
        for (int l = 0; l < L; ++l) v[l] = p[l][o];
        reduce_levels_hard<L>(v, k);
        dst[t] = v[0];
    }
}

template <int L>
void hard_impl(const uint8_t* x, const int32_t* lc, const int32_t* ly, const int32_t* lx,
               const uint8_t* ops, const ConvGeom& g, uint8_t* y, int nthreads) {
    const Scratch<uint8_t> xps = pad_batch(x, g, nthreads, NonZero());
    const uint8_t* xp = xps.data();
    const int64_t Q = g.Hq * g.Wq, P = g.Hp * g.Wp, p = g.pool;
    for_each_tile<uint8_t>(g, nthreads, [&](int64_t k, int64_t n0, int64_t nn, uint8_t* conv) {
        int64_t off[L];
        leaf_offsets(lc, ly, lx, k, g, off);
        const uint8_t* ok = ops + k * (L - 1);
        conv_tile<uint8_t, L>(xp, off, g, n0, nn, conv,
            [&](const uint8_t* const* b, uint8_t* d, int64_t len) { tree_span_hard<L, true>(b, ok, d, len, 1); },
            [&](const uint8_t* const* b, uint8_t* d, int64_t len) { tree_span_hard<L, false>(b, ok, d, len, g.stride); });
        for (int64_t n = n0; n < n0 + nn; ++n) {
            const uint8_t* cp = conv + (n - n0) * P;
            uint8_t* yk = y + (n * g.K + k) * Q;
            for (int64_t qi = 0; qi < g.Hq; ++qi)
                for (int64_t qj = 0; qj < g.Wq; ++qj) {
                    const uint8_t* w = cp + qi * p * g.Wp + qj * p;
                    uint8_t r = 0;
                    for (int64_t di = 0; di < p; ++di)
                        for (int64_t dj = 0; dj < p; ++dj) r |= w[di * g.Wp + dj];
                    yk[qi * g.Wq + qj] = r;
                }
        }
    });
}

}  // namespace

template <typename T>
void tree_conv_pool_forward(const T* x, const int32_t* leaf_c, const int32_t* leaf_dy,
                            const int32_t* leaf_dx, const T* coeffs, const ConvGeom& g, T* y,
                            uint8_t* argmax, int nthreads) {
    if (g.N == 0) return;
    if (g.pool > 1 && !argmax) throw std::invalid_argument("argmax buffer required when pool > 1");
    switch (g.L) {
        case 2: forward_impl<T, 2>(x, leaf_c, leaf_dy, leaf_dx, coeffs, g, y, argmax, nthreads); break;
        case 4: forward_impl<T, 4>(x, leaf_c, leaf_dy, leaf_dx, coeffs, g, y, argmax, nthreads); break;
        case 8: forward_impl<T, 8>(x, leaf_c, leaf_dy, leaf_dx, coeffs, g, y, argmax, nthreads); break;
        case 16: forward_impl<T, 16>(x, leaf_c, leaf_dy, leaf_dx, coeffs, g, y, argmax, nthreads); break;
        case 32: forward_impl<T, 32>(x, leaf_c, leaf_dy, leaf_dx, coeffs, g, y, argmax, nthreads); break;
        default: throw std::invalid_argument("unsupported number of leaves");
    }
}

template <typename T>
void tree_conv_pool_backward(const T* x, const int32_t* leaf_c, const int32_t* leaf_dy,
                             const int32_t* leaf_dx, const T* coeffs, const uint8_t* argmax,
                             const T* grad_y, const ConvGeom& g, T* grad_x, T* grad_coeffs,
                             int nthreads) {
    if (g.pool > 1 && !argmax) throw std::invalid_argument("argmax required when pool > 1");
    if (g.N == 0) {
        std::fill(grad_coeffs, grad_coeffs + g.K * (g.L - 1) * 4, T(0));
        return;
    }
    switch (g.L) {
        case 2: backward_impl<T, 2>(x, leaf_c, leaf_dy, leaf_dx, coeffs, argmax, grad_y, g, grad_x, grad_coeffs, nthreads); break;
        case 4: backward_impl<T, 4>(x, leaf_c, leaf_dy, leaf_dx, coeffs, argmax, grad_y, g, grad_x, grad_coeffs, nthreads); break;
        case 8: backward_impl<T, 8>(x, leaf_c, leaf_dy, leaf_dx, coeffs, argmax, grad_y, g, grad_x, grad_coeffs, nthreads); break;
        case 16: backward_impl<T, 16>(x, leaf_c, leaf_dy, leaf_dx, coeffs, argmax, grad_y, g, grad_x, grad_coeffs, nthreads); break;
        case 32: backward_impl<T, 32>(x, leaf_c, leaf_dy, leaf_dx, coeffs, argmax, grad_y, g, grad_x, grad_coeffs, nthreads); break;
        default: throw std::invalid_argument("unsupported number of leaves");
    }
}

void tree_conv_pool_hard(const uint8_t* x, const int32_t* leaf_c, const int32_t* leaf_dy,
                         const int32_t* leaf_dx, const uint8_t* ops, const ConvGeom& g,
                         uint8_t* y, int nthreads) {
    if (g.N == 0) return;
    switch (g.L) {
        case 2: hard_impl<2>(x, leaf_c, leaf_dy, leaf_dx, ops, g, y, nthreads); break;
        case 4: hard_impl<4>(x, leaf_c, leaf_dy, leaf_dx, ops, g, y, nthreads); break;
        case 8: hard_impl<8>(x, leaf_c, leaf_dy, leaf_dx, ops, g, y, nthreads); break;
        case 16: hard_impl<16>(x, leaf_c, leaf_dy, leaf_dx, ops, g, y, nthreads); break;
        case 32: hard_impl<32>(x, leaf_c, leaf_dy, leaf_dx, ops, g, y, nthreads); break;
        default: throw std::invalid_argument("unsupported number of leaves");
    }
}

template void tree_conv_pool_forward<float>(const float*, const int32_t*, const int32_t*, const int32_t*,
                                            const float*, const ConvGeom&, float*, uint8_t*, int);
template void tree_conv_pool_forward<double>(const double*, const int32_t*, const int32_t*, const int32_t*,
                                             const double*, const ConvGeom&, double*, uint8_t*, int);
template void tree_conv_pool_backward<float>(const float*, const int32_t*, const int32_t*, const int32_t*,
                                             const float*, const uint8_t*, const float*, const ConvGeom&,
                                             float*, float*, int);
template void tree_conv_pool_backward<double>(const double*, const int32_t*, const int32_t*, const int32_t*,
                                              const double*, const uint8_t*, const double*, const ConvGeom&,
                                              double*, double*, int);

}  // namespace dl
