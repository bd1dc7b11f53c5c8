// softmax / log_softmax over one axis and their gradients.
//
// The tensor is viewed as [outer, A, inner] with A the softmax axis. inner == 1 (the last axis, the usual
// case) works on contiguous rows; otherwise tasks take a block of columns and keep per-column
// statistics on the stack, so the inner loops still run over contiguous memory.
//
// f32 rows run on softmax_rows.h's vectorized kernels (AVX2 or AVX-512, chosen with the elementwise kernels'
// instruction set) where the CPU has one: libm's expf is a call per element, and made a transformer's
// attention softmax cost as much as its projections. f64, column blocks and older CPUs use the code below.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/elementwise/elementwise.h"
#include "kernels/reduce/reduce.h"
#include "kernels/reduce/softmax_rows.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using kern::ceil_div;
using kern::kParallelWork;

constexpr int64_t kColBlock = 256;
constexpr int64_t kRowChunk = 4096;

// The vectorized f32 row kernels for the instruction set the elementwise kernels use (ew_force_isa switches
// both, so tests reach every path), or nullptr for the portable rows.
const SoftmaxRowsF32* simd_rows() {
  static const SoftmaxRowsF32 avx512 = softmax_rows_f32_avx512(), avx2 = softmax_rows_f32_avx2();
  const char* isa = ew_kernel_name();
  return std::strcmp(isa, "avx512") == 0 ? &avx512 : std::strcmp(isa, "avx2") == 0 ? &avx2 : nullptr;
}

// ---- contiguous rows of length n ----

template <class T>
void softmax_row(const T* x, T* y, int64_t n) {
  const T m = kern::row_max(x, n);
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i] - m);
  const double s = kern::lane_sum(n, [y](int64_t i) { return static_cast<double>(y[i]); });
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(y[i] / s);
}

template <class T>
void log_softmax_row(const T* x, T* y, int64_t n) {
  const T m = kern::row_max(x, n);
  const double s = kern::lane_sum(n, [x, m](int64_t i) { return static_cast<double>(std::exp(x[i] - m)); });
  const T lse = static_cast<T>(std::log(s));
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - lse;
}

// Inputs are (y, gy, gx) for both gradients.
template <class T>
void softmax_grad_row(const T* y, const T* gy, T* gx, int64_t n) {
  const T d = static_cast<T>(
      kern::lane_sum(n, [y, gy](int64_t i) { return static_cast<double>(y[i]) * static_cast<double>(gy[i]); }));
  for (int64_t i = 0; i < n; ++i) gx[i] = y[i] * (gy[i] - d);
}

template <class T>
void log_softmax_grad_row(const T* y, const T* gy, T* gx, int64_t n) {
  const T s = static_cast<T>(kern::lane_sum(n, [gy](int64_t i) { return static_cast<double>(gy[i]); }));
  for (int64_t i = 0; i < n; ++i) gx[i] = gy[i] - std::exp(y[i]) * s;
}

// ---- column blocks: element (a, j) of the block is at a * stride + j, j in [0, cb) ----

template <class T>
void col_max(const T* x, int64_t A, int64_t stride, int64_t cb, T* m) {
  for (int64_t j = 0; j < cb; ++j) m[j] = x[j];
  for (int64_t a = 1; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j) m[j] = kern::nan_max(m[j], x[a * stride + j]);
}

template <class T>
void softmax_cols(const T* x, T* y, int64_t A, int64_t stride, int64_t cb) {
  T m[kColBlock];
  double s[kColBlock];
  col_max(x, A, stride, cb, m);
  for (int64_t j = 0; j < cb; ++j) s[j] = 0;
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j) {
      const T e = std::exp(x[a * stride + j] - m[j]);
      y[a * stride + j] = e;
      s[j] += e;
    }
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j) y[a * stride + j] = static_cast<T>(y[a * stride + j] / s[j]);
}

template <class T>
void log_softmax_cols(const T* x, T* y, int64_t A, int64_t stride, int64_t cb) {
  T m[kColBlock], lse[kColBlock];
  double s[kColBlock];
  col_max(x, A, stride, cb, m);
  for (int64_t j = 0; j < cb; ++j) s[j] = 0;
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j) s[j] += std::exp(x[a * stride + j] - m[j]);
  for (int64_t j = 0; j < cb; ++j) lse[j] = static_cast<T>(std::log(s[j]));
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j) y[a * stride + j] = (x[a * stride + j] - m[j]) - lse[j];
}

template <class T>
void softmax_grad_cols(const T* y, const T* gy, T* gx, int64_t A, int64_t stride, int64_t cb) {
  double d[kColBlock];
  for (int64_t j = 0; j < cb; ++j) d[j] = 0;
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j)
      d[j] += static_cast<double>(y[a * stride + j]) * static_cast<double>(gy[a * stride + j]);
  T dt[kColBlock];
  for (int64_t j = 0; j < cb; ++j) dt[j] = static_cast<T>(d[j]);
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j) gx[a * stride + j] = y[a * stride + j] * (gy[a * stride + j] - dt[j]);
}

template <class T>
void log_softmax_grad_cols(const T* y, const T* gy, T* gx, int64_t A, int64_t stride, int64_t cb) {
  double s[kColBlock];
  for (int64_t j = 0; j < cb; ++j) s[j] = 0;
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j) s[j] += static_cast<double>(gy[a * stride + j]);
  T st[kColBlock];
  for (int64_t j = 0; j < cb; ++j) st[j] = static_cast<T>(s[j]);
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < cb; ++j)
      gx[a * stride + j] = gy[a * stride + j] - std::exp(y[a * stride + j]) * st[j];
}

// The [outer, A, inner] view of a tensor around `axis`.
struct AxisView {
  int64_t outer = 1, A = 1, inner = 1;
};

AxisView axis_view(const Tensor& t, int64_t axis, const char* who) {
  if (axis < 0 || axis >= t.ndim) throw std::invalid_argument(std::string(who) + ": axis out of range");
  AxisView v;
  for (int d = 0; d < axis; ++d) v.outer *= t.shape[d];
  v.A = t.shape[axis];
  for (int d = static_cast<int>(axis) + 1; d < t.ndim; ++d) v.inner *= t.shape[d];
  return v;
}

// Applies a row function (inner == 1) or a column-block function (inner > 1) to every slice of
// `in` -> `out` along the axis. Slices are independent, so any schedule gives the same result.
template <class T, class RowFn, class ColFn>
void for_each_slice(const AxisView& v, const T* const* in, int n_in, T* out, RowFn row, ColFn cols) {
  if (v.A == 0) return;
  const bool par = v.outer * v.A * v.inner > kParallelWork;
  if (v.inner == 1) {
    // Rows in chunks of about kRowChunk values: an attention row (64 values, ~40 ns) claimed on its own made
    // two threads slower than one on a transformer's [8, 4, 64, 64] scores.
    parallel_for(v.outer, std::max<int64_t>(1, kRowChunk / v.A), [&](int64_t b, int64_t e, int) {
      for (int64_t o = b; o < e; ++o) {
        const int64_t off = o * v.A;
        row(in[0] + off, n_in > 1 ? in[1] + off : nullptr, out + off, v.A);
      }
    }, element_threads(static_cast<double>(v.outer * v.A)));
    return;
  }
  const int64_t ncb = ceil_div(v.inner, kColBlock);
  parallel_items(v.outer * ncb, [&](int64_t t, int) {
    const int64_t o = t / ncb, j0 = (t % ncb) * kColBlock, cb = std::min(kColBlock, v.inner - j0);
    const int64_t off = o * v.A * v.inner + j0;
    cols(in[0] + off, n_in > 1 ? in[1] + off : nullptr, out + off, v.A, v.inner, cb);
  }, par);
}

void check_same(const Tensor& a, const Tensor& b, const char* what) {
  bool ok = a.dtype == b.dtype && a.ndim == b.ndim;
  for (int d = 0; ok && d < a.ndim; ++d) ok = a.shape[d] == b.shape[d];
  kernel_check(ok, what);
}

// softmax and log_softmax differ only in their row and column functions: one kernel, Log picks them.
template <bool Log>
void softmax_forward_kernel(const KernelArgs& a) {
  const char* name = Log ? "log_softmax" : "softmax";
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.n_ints == 1,
               Log ? "log_softmax: expects [x] -> [y], ints [axis]" : "softmax: expects [x] -> [y], ints [axis]");
  check_same(a.in[0], a.out[0],
             Log ? "log_softmax: x and y differ in shape or dtype" : "softmax: x and y differ in shape or dtype");
  const AxisView v = axis_view(a.in[0], a.ints[0], name);
  kern::dispatch_float(a.in[0].dtype, name, [&](auto tag) {
    using T = decltype(tag);
    const SoftmaxRowsF32* simd = simd_rows();
    const T* in[1] = {a.in[0].ptr<const T>()};
    for_each_slice<T>(
        v, in, 1, a.out[0].ptr<T>(),
        [simd](const T* x, const T*, T* y, int64_t n) {
          if constexpr (std::is_same_v<T, float>)
            if (simd) return Log ? simd->log_softmax(x, y, n) : simd->softmax(x, y, n);
          if constexpr (Log)
            log_softmax_row(x, y, n);
          else
            softmax_row(x, y, n);
        },
        [](const T* x, const T*, T* y, int64_t A, int64_t s, int64_t cb) {
          if constexpr (Log)
            log_softmax_cols(x, y, A, s, cb);
          else
            softmax_cols(x, y, A, s, cb);
        });
  });
}

void softmax_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 1 && a.n_ints == 1, "softmax_grad: expects [y, gy] -> [gx], ints [axis]");
  check_same(a.in[0], a.in[1], "softmax_grad: y and gy differ in shape or dtype");
  check_same(a.in[0], a.out[0], "softmax_grad: y and gx differ in shape or dtype");
  const AxisView v = axis_view(a.in[0], a.ints[0], "softmax_grad");
  kern::dispatch_float(a.in[0].dtype, "softmax_grad", [&](auto tag) {
    using T = decltype(tag);
    const T* in[2] = {a.in[0].ptr<const T>(), a.in[1].ptr<const T>()};
    for_each_slice<T>(
        v, in, 2, a.out[0].ptr<T>(),
        [](const T* y, const T* gy, T* gx, int64_t n) { softmax_grad_row(y, gy, gx, n); },
        [](const T* y, const T* gy, T* gx, int64_t A, int64_t s, int64_t cb) {
          softmax_grad_cols(y, gy, gx, A, s, cb);
        });
  });
}

void log_softmax_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 1 && a.n_ints == 1,
               "log_softmax_grad: expects [y, gy] -> [gx], ints [axis]");
  check_same(a.in[0], a.in[1], "log_softmax_grad: y and gy differ in shape or dtype");
  check_same(a.in[0], a.out[0], "log_softmax_grad: y and gx differ in shape or dtype");
  const AxisView v = axis_view(a.in[0], a.ints[0], "log_softmax_grad");
  kern::dispatch_float(a.in[0].dtype, "log_softmax_grad", [&](auto tag) {
    using T = decltype(tag);
    const SoftmaxRowsF32* simd = simd_rows();
    const T* in[2] = {a.in[0].ptr<const T>(), a.in[1].ptr<const T>()};
    for_each_slice<T>(
        v, in, 2, a.out[0].ptr<T>(),
        [simd](const T* y, const T* gy, T* gx, int64_t n) {
          if constexpr (std::is_same_v<T, float>)
            if (simd) return simd->log_softmax_grad(y, gy, gx, n);
          log_softmax_grad_row(y, gy, gx, n);
        },
        [](const T* y, const T* gy, T* gx, int64_t A, int64_t s, int64_t cb) {
          log_softmax_grad_cols(y, gy, gx, A, s, cb);
        });
  });
}

}  // namespace

DLC_REGISTER_KERNEL("softmax", ::dlc::Device::CPU, softmax_forward_kernel<false>);
DLC_REGISTER_KERNEL("log_softmax", ::dlc::Device::CPU, softmax_forward_kernel<true>);
DLC_REGISTER_KERNEL("softmax_grad", ::dlc::Device::CPU, softmax_grad_kernel);
DLC_REGISTER_KERNEL("log_softmax_grad", ::dlc::Device::CPU, log_softmax_grad_kernel);

}  // namespace dlc
