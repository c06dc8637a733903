"""Test harness (no tests here): run difflogic/kernels/cuda.py and the real csrc/cuda/*.cu kernels on
the CPU (test-only).

Machines without a GPU still get the kernels' logic checked: the .cu sources are compiled with
g++ against a small host emulation of the CUDA execution model (one std::thread per CUDA
thread, std::barrier for __syncthreads and for warp-synchronous shuffles/ballots), and
difflogic/kernels/cuda.py is loaded with a stand-in ``cupy`` whose RawModule launches those host
kernels on CPU tensors.  So the whole path -- argument order, grid shapes, index tables,
kernel arithmetic -- runs unchanged except for the hardware.  What this cannot show: real
memory-model/race behaviour, NVRTC-specific compile problems, performance.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "csrc" / "cuda"

EMU_HEADER = r"""
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
using std::max;
using std::min;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
struct EmuWarp { std::barrier<>* bar; uint64_t slot[32]; };
inline std::barrier<>* emu_block_barrier = nullptr;
inline std::vector<EmuWarp>* emu_warps = nullptr;
inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }
template <class T> inline T __shfl_xor_sync(unsigned, T v, int o) {
  EmuWarp& w = (*emu_warps)[threadIdx.x / 32];
  const unsigned lane = threadIdx.x & 31;
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slot[lane] = bits;
  w.bar->arrive_and_wait();
  const uint64_t r = w.slot[lane ^ (unsigned)o];
  w.bar->arrive_and_wait();
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}
inline unsigned __ballot_sync(unsigned, int p) {
  EmuWarp& w = (*emu_warps)[threadIdx.x / 32];
  w.slot[threadIdx.x & 31] = p != 0;
  w.bar->arrive_and_wait();
  unsigned m = 0;
  for (int i = 0; i < 32; ++i) m |= unsigned(w.slot[i] & 1) << i;
  w.bar->arrive_and_wait();
  return m;
}
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
template <class T> inline T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
"""

EMU_LAUNCH = r"""
template <typename... A, std::size_t... I>
void emu_run(void (*k)(A...), dim3 g, dim3 b, void** args, std::index_sequence<I...>) {
  gridDim = g;
  blockDim = b;
  const unsigned nt = b.x * b.y * b.z;
  for (unsigned bz = 0; bz < g.z; ++bz)
    for (unsigned by = 0; by < g.y; ++by)
      for (unsigned bx = 0; bx < g.x; ++bx) {
        std::barrier<> bb(nt);
        std::vector<EmuWarp> warps((nt + 31) / 32);
        std::vector<std::unique_ptr<std::barrier<>>> wb;
        for (unsigned w = 0; w < warps.size(); ++w) {
          wb.emplace_back(new std::barrier<>(std::min(32u, nt - 32 * w)));
          warps[w].bar = wb.back().get();
        }
        emu_block_barrier = &bb;
        emu_warps = &warps;
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < nt; ++t)
          ts.emplace_back([&, t] {
            threadIdx = dim3{t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
            blockIdx = dim3{bx, by, bz};
            k(*reinterpret_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
          });
        for (auto& t : ts) t.join();
      }
}
template <typename... A>
void emu_launch_impl(void (*k)(A...), dim3 g, dim3 b, void** a) {
  emu_run(k, g, b, a, std::index_sequence_for<A...>{});
}
#define EMU_REG(...) {#__VA_ARGS__, [](dim3 g, dim3 b, void** a) { emu_launch_impl(&__VA_ARGS__, g, b, a); }},
static const std::map<std::string, std::function<void(dim3, dim3, void**)>> emu_registry = {
@REGISTRY@
};
extern "C" int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                          unsigned by, unsigned bz, void** args) {
  auto it = emu_registry.find(name);
  if (it == emu_registry.end()) return -1;
  it->second(dim3{gx, gy, gz}, dim3{bx, by, bz}, args);
  return 0;
}
"""


def kernel_names() -> list[str]:
    """Every name expression difflogic/kernels/cuda.py can request (must match its spelling)."""
    names = ["dense_hard"]
    for T in ("float", "double"):
        names += [f"dense_forward<{T}>", f"dense_backward_coeffs<{T}>", f"dense_backward_x<{T}>"]
        for D in range(1, 6):
            names += [f"tree_conv_pool_forward<{T}, {D}>", f"tree_conv_pool_backward<{T}, {D}, false>",
                      f"tree_conv_pool_backward<{T}, {D}, true>", f"tree_conv_grad_x_gather<{T}, {D}>"]
    for D in range(1, 6):
        names.append(f"tree_conv_pool_hard<{D}>")
    for W in ("unsigned int", "unsigned long long"):
        names += [f"{k}<{W}>" for k in ("pack_bits", "unpack_bits", "dense_packed",
                                        "or_pool_packed", "group_sum_packed")]
        names += [f"tree_conv_pool_packed<{W}, {D}>" for D in range(1, 6)]
    return names


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++"))


def build_library() -> Path:
    """Compile the kernels + emulation into a shared library (cached by source hash)."""
    sources = [SRC / "common.cuh", SRC / "dense.cu", SRC / "tree_conv.cu", SRC / "packed.cu"]
    registry = "\n".join(f"EMU_REG({n})" for n in kernel_names())
    unit = (EMU_HEADER + "".join(f'#include "{p.name}"\n' for p in sources[1:])
            + EMU_LAUNCH.replace("@REGISTRY@", registry))
    digest = hashlib.sha256(unit.encode() + b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"difflogic-cuda-emu-{digest}.so"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        cpp = Path(tmp) / "emu.cpp"
        cpp.write_text(unit)
        so = Path(tmp) / "emu.so"
        cmd = [compiler(), "-std=c++20", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-pthread",
               "-Wno-unknown-pragmas", f"-I{SRC}", str(cpp), "-o", str(so)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"emulation build failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
        shutil.move(str(so), out)
    return out


class _Kernel:
    def __init__(self, lib, name: str):
        self.lib, self.name = lib, name

    def __call__(self, grid, block, args, shared_mem=0):
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        if any(int(v) < 1 for v in grid + block):
            raise ValueError(f"bad launch shape {grid} {block}")
        bufs = []
        for a in args:
            if not isinstance(a, np.generic):
                raise TypeError(f"kernel argument {a!r} is not a numpy scalar")
            bufs.append(ctypes.create_string_buffer(a.tobytes(), a.nbytes))
        ptrs = (ctypes.c_void_p * max(1, len(bufs)))(*[ctypes.addressof(b) for b in bufs])
        rc = self.lib.emu_launch(self.name.encode(), *[ctypes.c_uint(int(v)) for v in grid + block], ptrs)
        if rc:
            raise RuntimeError(f"unknown kernel {self.name}")


def fake_cupy(lib):
    """Modules standing in for cupy / cupy_backends with the API surface kernels/cuda.py uses."""
    cupy = types.ModuleType("cupy")

    class RawModule:
        def __init__(self, code, options=(), name_expressions=None, **kw):
            assert "-std=c++17" in options and any(o.startswith("-I") for o in options)
            assert code.startswith("// common.cuh sha256 ")
            self.names = list(name_expressions or ())

        def get_function(self, name):
            if name not in self.names:
                raise KeyError(f"{name} was not declared in name_expressions {self.names}")
            return _Kernel(lib, name)

    cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
        Device=lambda index: contextlib.nullcontext(),
        ExternalStream=lambda ptr, index: contextlib.nullcontext(),
    )
    cupy.RawModule, cupy.cuda = RawModule, cuda
    nvrtc = types.ModuleType("cupy_backends.cuda.libs.nvrtc")
    nvrtc.getVersion = lambda: (0, 0)
    mods = {"cupy": cupy, "cupy_backends": types.ModuleType("cupy_backends"),
            "cupy_backends.cuda": types.ModuleType("cupy_backends.cuda"),
            "cupy_backends.cuda.libs": types.ModuleType("cupy_backends.cuda.libs"),
            "cupy_backends.cuda.libs.nvrtc": nvrtc}
    return mods


def load_emulated_module():
    """difflogic/kernels/cuda.py bound to the host-emulated kernels; works on CPU tensors."""
    import difflogic.kernels  # noqa: F401 - the package must exist for the relative imports
    lib = ctypes.CDLL(str(build_library()))
    lib.emu_launch.restype = ctypes.c_int
    saved = {k: sys.modules.get(k) for k in fake_cupy(lib)}
    saved_avail = torch.cuda.is_available
    sys.modules.update(fake_cupy(lib))
    torch.cuda.is_available = lambda: True
    try:
        spec = importlib.util.spec_from_file_location("difflogic.kernels.cuda_emulated",
                                                      ROOT / "difflogic" / "kernels" / "cuda.py")
        mod = importlib.util.module_from_spec(spec)
        mod.__package__ = "difflogic.kernels"
        spec.loader.exec_module(mod)
    finally:
        torch.cuda.is_available = saved_avail
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    mod.is_cuda_tensor = lambda t: True
    mod.device_index = lambda device: 0
    mod.cupy_stream = lambda index: contextlib.nullcontext()
    return mod
