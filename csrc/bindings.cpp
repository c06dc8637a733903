// pybind11 module difflogic._C: thin, shape-checking wrappers around the CPU kernels.
//
// Why numpy arrays instead of torch tensors: the extension must build without libtorch (plain
// `pip install .`, no torch at build time).  Python passes `tensor.numpy()` views, which are
// zero-copy for contiguous CPU tensors, and preallocated output tensors the same way.  Every
// argument is declared noconvert(), so a wrong dtype or a non-contiguous array is rejected
// instead of being silently copied (a copied *output* would be lost).  Validation happens with
// the GIL held; the kernels run with it released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <sstream>

#include "cpu/coeffs.h"
#include "cpu/common.h"
#include "cpu/dense.h"
#include "cpu/tree_conv.h"

namespace py = pybind11;

namespace {

template <typename T>
using Arr = py::array_t<T, py::array::c_style>;

std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

// expected dims; -1 = any
void expect_shape(const py::array& a, const char* name, std::initializer_list<int64_t> dims) {
    bool ok = a.ndim() == py::ssize_t(dims.size());
    if (ok) {
        int i = 0;
        for (int64_t d : dims) {
            if (d >= 0 && a.shape(i) != d) ok = false;
            ++i;
        }
    }
    if (!ok) {
        std::ostringstream s;
        s << name << " has shape " << shape_str(a) << ", expected (";
        int i = 0;
        for (int64_t d : dims) {
            s << (i++ ? ", " : "");
            if (d >= 0) s << d; else s << "*";
        }
        s << (dims.size() == 1 ? ",)" : ")");
        throw std::invalid_argument(s.str());
    }
}

// Relaxed dense kernels, feature-major (see cpu/dense.h): xt (in, N), yt (out, N).
template <typename T>
void dense_forward(const Arr<T>& xt, const Arr<int32_t>& a, const Arr<int32_t>& b,
                   const Arr<T>& coeffs, Arr<T>& yt, int nthreads) {
    expect_shape(xt, "xt", {-1, -1});
    const int64_t in = xt.shape(0), N = xt.shape(1), out = a.size();
    expect_shape(a, "a", {out});
    expect_shape(b, "b", {out});
    expect_shape(coeffs, "coeffs", {out, 4});
    expect_shape(yt, "yt", {out, N});
    dl::check_index(a.data(), out, in, "a");
    dl::check_index(b.data(), out, in, "b");
    T* yp = yt.mutable_data();
    py::gil_scoped_release nogil;
    dl::dense_forward<T>(xt.data(), a.data(), b.data(), coeffs.data(), yp, N, in, out, nthreads);
}

template <typename T>
void dense_backward(const Arr<T>& xt, const Arr<int32_t>& a, const Arr<int32_t>& b,
                    const Arr<T>& coeffs, const Arr<T>& grad_yt, std::optional<Arr<T>> grad_xt,
                    Arr<T>& grad_coeffs, int nthreads) {
    expect_shape(xt, "xt", {-1, -1});
    const int64_t in = xt.shape(0), N = xt.shape(1), out = a.size();
    expect_shape(a, "a", {out});
    expect_shape(b, "b", {out});
    expect_shape(coeffs, "coeffs", {out, 4});
    expect_shape(grad_yt, "grad_yt", {out, N});
    expect_shape(grad_coeffs, "grad_coeffs", {out, 4});
    T* gx = nullptr;
    if (grad_xt) {
        expect_shape(*grad_xt, "grad_xt", {in, N});
        gx = grad_xt->mutable_data();
    }
    dl::check_index(a.data(), out, in, "a");
    dl::check_index(b.data(), out, in, "b");
    T* gc = grad_coeffs.mutable_data();
    py::gil_scoped_release nogil;
    dl::dense_backward<T>(xt.data(), a.data(), b.data(), coeffs.data(), grad_yt.data(), gx, gc, N,
                          in, out, nthreads);
}

template <typename T>
void transpose(const Arr<T>& src, Arr<T>& dst, int nthreads) {
    expect_shape(src, "src", {-1, -1});
    const int64_t rows = src.shape(0), cols = src.shape(1);
    expect_shape(dst, "dst", {cols, rows});
    T* dp = dst.mutable_data();
    py::gil_scoped_release nogil;
    dl::transpose_copy<T>(src.data(), dp, rows, cols, nthreads);
}

void dense_hard(const Arr<uint8_t>& x, const Arr<int32_t>& a, const Arr<int32_t>& b,
                const Arr<uint8_t>& ops, Arr<uint8_t>& y, int nthreads) {
    expect_shape(x, "x", {-1, -1});
    const int64_t N = x.shape(0), in = x.shape(1), out = a.size();
    expect_shape(a, "a", {out});
    expect_shape(b, "b", {out});
    expect_shape(ops, "ops", {out});
    expect_shape(y, "y", {N, out});
    dl::check_index(a.data(), out, in, "a");
    dl::check_index(b.data(), out, in, "b");
    dl::check_ops(ops.data(), out, "ops");
    uint8_t* yp = y.mutable_data();
    py::gil_scoped_release nogil;
    dl::dense_hard(x.data(), a.data(), b.data(), ops.data(), yp, N, in, out, nthreads);
}

// out (G, J) = p (G, K) @ m (K, J) for the gate-parameter -> coefficient maps (cpu/coeffs.h).
template <typename T>
void row_product(const Arr<T>& p, const Arr<T>& m, Arr<T>& out, int nthreads) {
    expect_shape(p, "p", {-1, -1});
    expect_shape(m, "m", {p.shape(1), -1});
    expect_shape(out, "out", {p.shape(0), m.shape(1)});
    T* op = out.mutable_data();
    py::gil_scoped_release nogil;
    dl::row_product<T>(p.data(), m.data(), op, p.shape(0), p.shape(1), m.shape(1), nthreads);
}

dl::ConvGeom conv_geom(const py::array& x, const Arr<int32_t>& leaf_c, const Arr<int32_t>& leaf_dy,
                       const Arr<int32_t>& leaf_dx, int64_t kh, int64_t kw, int64_t stride,
                       int64_t padding, int64_t pool) {
    expect_shape(x, "x", {-1, -1, -1, -1});
    expect_shape(leaf_c, "leaf_c", {-1, -1});
    dl::ConvGeom g{};
    g.N = x.shape(0); g.C = x.shape(1); g.H = x.shape(2); g.W = x.shape(3);
    g.K = leaf_c.shape(0); g.L = leaf_c.shape(1);
    g.kh = kh; g.kw = kw; g.stride = stride; g.pad = padding; g.pool = pool;
    expect_shape(leaf_dy, "leaf_dy", {g.K, g.L});
    expect_shape(leaf_dx, "leaf_dx", {g.K, g.L});
    g.finish();
    dl::check_leaves(leaf_c.data(), leaf_dy.data(), leaf_dx.data(), g);
    return g;
}

template <typename T>
void tcp_forward(const Arr<T>& x, const Arr<int32_t>& leaf_c, const Arr<int32_t>& leaf_dy,
                 const Arr<int32_t>& leaf_dx, const Arr<T>& coeffs, int64_t kh, int64_t kw,
                 int64_t stride, int64_t padding, int64_t pool, Arr<T>& y,
                 std::optional<Arr<uint8_t>> argmax, int nthreads) {
    const dl::ConvGeom g = conv_geom(x, leaf_c, leaf_dy, leaf_dx, kh, kw, stride, padding, pool);
    expect_shape(coeffs, "coeffs", {g.K, g.L - 1, 4});
    expect_shape(y, "y", {g.N, g.K, g.Hq, g.Wq});
    uint8_t* am = nullptr;
    if (pool > 1) {
        if (!argmax) throw std::invalid_argument("argmax output is required when pool > 1");
        expect_shape(*argmax, "argmax", {g.N, g.K, g.Hq, g.Wq});
        am = argmax->mutable_data();
    }
    T* yp = y.mutable_data();
    py::gil_scoped_release nogil;
    dl::tree_conv_pool_forward<T>(x.data(), leaf_c.data(), leaf_dy.data(), leaf_dx.data(),
                                  coeffs.data(), g, yp, am, nthreads);
}

template <typename T>
void tcp_backward(const Arr<T>& x, const Arr<int32_t>& leaf_c, const Arr<int32_t>& leaf_dy,
                  const Arr<int32_t>& leaf_dx, const Arr<T>& coeffs,
                  std::optional<Arr<uint8_t>> argmax, const Arr<T>& grad_y, int64_t kh, int64_t kw,
                  int64_t stride, int64_t padding, int64_t pool, std::optional<Arr<T>> grad_x,
                  Arr<T>& grad_coeffs, int nthreads) {
    const dl::ConvGeom g = conv_geom(x, leaf_c, leaf_dy, leaf_dx, kh, kw, stride, padding, pool);
    expect_shape(coeffs, "coeffs", {g.K, g.L - 1, 4});
    expect_shape(grad_y, "grad_y", {g.N, g.K, g.Hq, g.Wq});
    expect_shape(grad_coeffs, "grad_coeffs", {g.K, g.L - 1, 4});
    const uint8_t* am = nullptr;
    if (pool > 1) {
        if (!argmax) throw std::invalid_argument("argmax is required when pool > 1");
        expect_shape(*argmax, "argmax", {g.N, g.K, g.Hq, g.Wq});
        am = argmax->data();
        // branch-free maximum (vectorises): this check runs with the GIL held on every call
        // over every entry of the layer, where an early-exit loop would not vectorise
        const int64_t n = argmax->size();
        uint8_t top = 0;
        for (int64_t i = 0; i < n; ++i) top = std::max(top, am[i]);
        if (n > 0 && int64_t(top) >= pool * pool)
            throw std::invalid_argument("argmax contains an index outside the pool window");
    }
    T* gx = nullptr;
    if (grad_x) {
        expect_shape(*grad_x, "grad_x", {g.N, g.C, g.H, g.W});
        gx = grad_x->mutable_data();
    }
    T* gc = grad_coeffs.mutable_data();
    py::gil_scoped_release nogil;
    dl::tree_conv_pool_backward<T>(x.data(), leaf_c.data(), leaf_dy.data(), leaf_dx.data(),
                                   coeffs.data(), am, grad_y.data(), g, gx, gc, nthreads);
}

void tcp_hard(const Arr<uint8_t>& x, const Arr<int32_t>& leaf_c, const Arr<int32_t>& leaf_dy,
              const Arr<int32_t>& leaf_dx, const Arr<uint8_t>& ops, int64_t kh, int64_t kw,
              int64_t stride, int64_t padding, int64_t pool, Arr<uint8_t>& y, int nthreads) {
    const dl::ConvGeom g = conv_geom(x, leaf_c, leaf_dy, leaf_dx, kh, kw, stride, padding, pool);
    expect_shape(ops, "ops", {g.K, g.L - 1});
    expect_shape(y, "y", {g.N, g.K, g.Hq, g.Wq});
    dl::check_ops(ops.data(), ops.size(), "ops");
    uint8_t* yp = y.mutable_data();
    py::gil_scoped_release nogil;
    dl::tree_conv_pool_hard(x.data(), leaf_c.data(), leaf_dy.data(), leaf_dx.data(), ops.data(), g,
                            yp, nthreads);
}

template <typename T>
void register_float(py::module_& m) {
    m.def("dense_forward", &dense_forward<T>, py::arg("xt").noconvert(), py::arg("a").noconvert(),
          py::arg("b").noconvert(), py::arg("coeffs").noconvert(), py::arg("yt").noconvert(),
          py::arg("nthreads"));
    m.def("dense_backward", &dense_backward<T>, py::arg("xt").noconvert(), py::arg("a").noconvert(),
          py::arg("b").noconvert(), py::arg("coeffs").noconvert(), py::arg("grad_yt").noconvert(),
          py::arg("grad_xt").noconvert().none(true), py::arg("grad_coeffs").noconvert(),
          py::arg("nthreads"));
    m.def("row_product", &row_product<T>, py::arg("p").noconvert(), py::arg("m").noconvert(),
          py::arg("out").noconvert(), py::arg("nthreads") = 1);
    m.def("transpose", &transpose<T>, py::arg("src").noconvert(), py::arg("dst").noconvert(),
          py::arg("nthreads"));
    m.def("tree_conv_pool_forward", &tcp_forward<T>, py::arg("x").noconvert(),
          py::arg("leaf_c").noconvert(), py::arg("leaf_dy").noconvert(), py::arg("leaf_dx").noconvert(),
          py::arg("coeffs").noconvert(), py::arg("kh"), py::arg("kw"), py::arg("stride"),
          py::arg("padding"), py::arg("pool"), py::arg("y").noconvert(),
          py::arg("argmax").noconvert().none(true), py::arg("nthreads"));
    m.def("tree_conv_pool_backward", &tcp_backward<T>, py::arg("x").noconvert(),
          py::arg("leaf_c").noconvert(), py::arg("leaf_dy").noconvert(), py::arg("leaf_dx").noconvert(),
          py::arg("coeffs").noconvert(), py::arg("argmax").noconvert().none(true),
          py::arg("grad_y").noconvert(), py::arg("kh"), py::arg("kw"), py::arg("stride"),
          py::arg("padding"), py::arg("pool"), py::arg("grad_x").noconvert().none(true),
          py::arg("grad_coeffs").noconvert(), py::arg("nthreads"));
}

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "difflogic native CPU kernels (C++17, OpenMP); see difflogic/kernels/__init__.py for the API";
    register_float<float>(m);
    register_float<double>(m);
    m.def("dense_hard", &dense_hard, py::arg("x").noconvert(), py::arg("a").noconvert(),
          py::arg("b").noconvert(), py::arg("ops").noconvert(), py::arg("y").noconvert(),
          py::arg("nthreads"));
    m.def("tree_conv_pool_hard", &tcp_hard, py::arg("x").noconvert(), py::arg("leaf_c").noconvert(),
          py::arg("leaf_dy").noconvert(), py::arg("leaf_dx").noconvert(), py::arg("ops").noconvert(),
          py::arg("kh"), py::arg("kw"), py::arg("stride"), py::arg("padding"), py::arg("pool"),
          py::arg("y").noconvert(), py::arg("nthreads"));
#ifdef _OPENMP
    m.attr("has_openmp") = true;
#else
    m.attr("has_openmp") = false;
#endif
#ifdef DL_NATIVE_ARCH
    m.attr("native_arch") = true;
#else
    m.attr("native_arch") = false;
#endif
}
