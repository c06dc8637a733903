// Shared helpers of the CPU kernels: OpenMP shims, blocked transposes, small utilities.
//
// Why transposes: the dense kernels work feature-major ((features, batch) layout) so that the
// innermost loop runs over the batch, which is contiguous and vectorises; the random wiring
// then only costs one row pointer per gate instead of one gather per element.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#define DL_OMP_THREADS(n) ((n) < 1 ? 1 : (n))
static inline int dl_thread_id() { return omp_get_thread_num(); }
static inline int dl_num_threads() { return omp_get_num_threads(); }
#else
#define DL_OMP_THREADS(n) 1
static inline int dl_thread_id() { return 0; }
static inline int dl_num_threads() { return 1; }
#endif

#define DL_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP) || defined(DL_OPENMP_SIMD)
#define DL_SIMD DL_PRAGMA(omp simd)
#define DL_SIMD_REDUCE(...) DL_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
#else
#define DL_SIMD
#define DL_SIMD_REDUCE(...)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define DL_RESTRICT __restrict__
#define DL_INLINE inline __attribute__((always_inline))
#else
#define DL_RESTRICT
#define DL_INLINE inline
#endif

namespace dl {

// Process-wide pool of scratch buffers.  Why: the kernels need multi-megabyte temporaries
// (padded batches, transposes) on every call, and fresh allocations come back as untouched
// pages -- the first-touch page faults cost more than the kernels' own work on the small
// layers.  Buffers are handed back on destruction and reused by later calls; at most
// kPoolKeepBytes stay cached.
class BufferPool {
  public:
    static BufferPool& instance() {
        static BufferPool pool;
        return pool;
    }
    void* get(size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            size_t best = free_.size();
            for (size_t i = 0; i < free_.size(); ++i)
                if (free_[i].first >= bytes && (best == free_.size() || free_[i].first < free_[best].first)) best = i;
            if (best != free_.size()) {
                void* p = free_[best].second;
                cached_ -= free_[best].first;
                free_.erase(free_.begin() + std::ptrdiff_t(best));
                return p;
            }
        }
        void* p = ::operator new(bytes, std::align_val_t(64));
        return p;
    }
    void put(void* p, size_t bytes) {
        std::lock_guard<std::mutex> lock(mu_);
        free_.emplace_back(bytes, p);
        cached_ += bytes;
        while (cached_ > kPoolKeepBytes && !free_.empty()) {  // drop the smallest first
            size_t small = 0;
            for (size_t i = 1; i < free_.size(); ++i)
                if (free_[i].first < free_[small].first) small = i;
            ::operator delete(free_[small].second, std::align_val_t(64));
            cached_ -= free_[small].first;
            free_.erase(free_.begin() + std::ptrdiff_t(small));
        }
    }

  private:
    static constexpr size_t kPoolKeepBytes = size_t(512) << 20;
    std::mutex mu_;
    std::vector<std::pair<size_t, void*>> free_;
    size_t cached_ = 0;
};

// Uninitialised scratch array from the pool (every element is written before it is read, or
// zeroed explicitly with zero()).
template <typename T>
class Scratch {
  public:
    explicit Scratch(size_t n) : bytes_(std::max<size_t>(n, 1) * sizeof(T)),
                                 p_(static_cast<T*>(BufferPool::instance().get(bytes_))) {}
    ~Scratch() {
        if (p_) BufferPool::instance().put(p_, bytes_);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    Scratch(Scratch&& o) noexcept : bytes_(o.bytes_), p_(o.p_) { o.p_ = nullptr; o.bytes_ = 0; }
    T* data() { return p_; }
    const T* data() const { return p_; }
    T& operator[](size_t i) { return p_[i]; }
    const T& operator[](size_t i) const { return p_[i]; }
    // zero-fill in parallel (first touch spread over the threads)
    void zero(size_t n, int nthreads) {
        const int64_t blocks = int64_t((n + 65535) / 65536);
#pragma omp parallel for num_threads(nthreads < 1 ? 1 : nthreads) schedule(dynamic, 4) if (blocks > 1)
        for (int64_t b = 0; b < blocks; ++b) {
            const size_t lo = size_t(b) * 65536, hi = std::min(n, lo + 65536);
            std::memset(static_cast<void*>(p_ + lo), 0, (hi - lo) * sizeof(T));
        }
    }

  private:
    size_t bytes_;
    T* p_;
};

// Transposes visit the matrix in kTile x kTile tiles, in parallel: f(r0, r1, c0, c1).
constexpr int64_t kTile = 32;

template <typename F>
void for_each_tile(int64_t rows, int64_t cols, int nthreads, F f) {
    const int64_t tr = (rows + kTile - 1) / kTile, tc = (cols + kTile - 1) / kTile;
#pragma omp parallel for num_threads(DL_OMP_THREADS(nthreads)) schedule(dynamic, 8) if (rows * cols > 32768)
    for (int64_t t = 0; t < tr * tc; ++t) {
        const int64_t r0 = (t / tc) * kTile, c0 = (t % tc) * kTile;
        f(r0, std::min(rows, r0 + kTile), c0, std::min(cols, c0 + kTile));
    }
}

// One tile of a transpose, element by element; `conv` is applied to every element.
template <typename T, typename Conv>
inline void transpose_tile(const T* src, T* dst, int64_t rows, int64_t cols, int64_t r0,
                           int64_t r1, int64_t c0, int64_t c1, Conv conv) {
    for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = conv(src[r * cols + c]);
}

// Transpose a (rows, cols) row-major matrix into (cols, rows), in cache-sized tiles.
// `conv` is applied to every element (identity for floats, "!= 0" for the hard kernels).
template <typename T, typename Conv>
void transpose(const T* src, T* dst, int64_t rows, int64_t cols, int nthreads, Conv conv) {
    for_each_tile(rows, cols, nthreads, [=](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
        transpose_tile(src, dst, rows, cols, r0, r1, c0, c1, conv);
    });
}

template <typename T>
void transpose(const T* src, T* dst, int64_t rows, int64_t cols, int nthreads) {
    transpose(src, dst, rows, cols, nthreads, [](T v) { return v; });
}

#if defined(__SSE__) || defined(_M_X64)
// float: 4x4 register transposes (SSE is part of the x86-64 baseline).  The scalar tile loop
// above reads one side with a large stride and does not vectorise; the dense backward pass
// moves ~50 MB through transposes per call on the widest layers, so this matters.
template <>
inline void transpose<float>(const float* src, float* dst, int64_t rows, int64_t cols, int nthreads) {
    for_each_tile(rows, cols, nthreads, [=](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
        if (r1 - r0 != kTile || c1 - c0 != kTile) {  // ragged edge tile
            transpose_tile(src, dst, rows, cols, r0, r1, c0, c1, [](float v) { return v; });
            return;
        }
        for (int64_t r = r0; r < r1; r += 4)
            for (int64_t c = c0; c < c1; c += 4) {
                __m128 a = _mm_loadu_ps(src + r * cols + c);
                __m128 b = _mm_loadu_ps(src + (r + 1) * cols + c);
                __m128 d = _mm_loadu_ps(src + (r + 2) * cols + c);
                __m128 e = _mm_loadu_ps(src + (r + 3) * cols + c);
                _MM_TRANSPOSE4_PS(a, b, d, e);
                _mm_storeu_ps(dst + c * rows + r, a);
                _mm_storeu_ps(dst + (c + 1) * rows + r, b);
                _mm_storeu_ps(dst + (c + 2) * rows + r, d);
                _mm_storeu_ps(dst + (c + 3) * rows + r, e);
            }
    });
}
#endif

// Wiring index check (done before the GIL is released, so errors surface as ValueError).
inline void check_index(const int32_t* idx, int64_t n, int64_t limit, const char* name) {
    for (int64_t i = 0; i < n; ++i)
        if (idx[i] < 0 || idx[i] >= limit)
            throw std::invalid_argument(std::string(name) + "[" + std::to_string(i) + "] = " +
                                        std::to_string(idx[i]) + " is out of range [0, " +
                                        std::to_string(limit) + ")");
}

inline void check_ops(const uint8_t* ops, int64_t n, const char* name) {
    for (int64_t i = 0; i < n; ++i)
        if (ops[i] > 15)
            throw std::invalid_argument(std::string(name) + "[" + std::to_string(i) + "] = " +
                                        std::to_string(ops[i]) + " is not a gate id in [0, 15]");
}

// Algebraic normal form of gate `op` over GF(2): g(a, b) = k0 ^ (a & k1) ^ (b & k2) ^ (a & b & k3)
// for a, b in {0, 1}.  Bytewise XOR/AND vectorise 32 lanes wide, unlike a per-lane variable
// shift of the truth table.  Truth table bits: op = t00 t01 t10 t11 (MSB first), see gates.py.
struct Anf {
    uint8_t k0, k1, k2, k3;
    explicit Anf(uint8_t op) {
        const uint8_t t00 = (op >> 3) & 1, t01 = (op >> 2) & 1, t10 = (op >> 1) & 1, t11 = op & 1;
        k0 = t00;
        k1 = t00 ^ t10;
        k2 = t00 ^ t01;
        k3 = t00 ^ t01 ^ t10 ^ t11;
    }
};

static inline uint8_t anf_eval(uint8_t k0, uint8_t k1, uint8_t k2, uint8_t k3, uint8_t a, uint8_t b) {
    return k0 ^ (a & k1) ^ (b & k2) ^ (a & b & k3);
}

}  // namespace dl
