// Layer normalization over the last axis (size D) and its gradient. Rows are independent in the forward
// pass; the backward pass also sums gamma/beta gradients over rows, which it does through per-chunk
// partials combined in chunk order (chunks are fixed by the shape, so the result does not depend on the
// thread count).
#include <algorithm>
#include <cmath>

#include "kernels/norm/layer_norm_rows.h"
#include "kernels/reduce/reduce.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using kern::ceil_div;
using kern::kParallelWork;

// Rows per backward chunk are chosen so a chunk covers at least this many elements.
constexpr int64_t kChunkWork = 32768;
// Chunk count cap for the backward pass; it also bounds the partial buffers to kMaxChunks * 2 * D.
constexpr int64_t kMaxChunks = 32;

// Product of all dims but the last (well defined even when D == 0).
int64_t leading_rows(const Tensor& x) {
  int64_t rows = 1;
  for (int d = 0; d + 1 < x.ndim; ++d) rows *= x.shape[d];
  return rows;
}

void check_vec(const Tensor& t, int64_t n, DType dt, const char* what) {
  kernel_check(t.dtype == dt && t.numel() == n, what);
}

// The rows run on the fused kernels' row arithmetic (layer_norm_rows.h) for the evaluator's instruction set:
// this portable unit's own loops took 0.55 ns per element on a transformer's [512, 128] norm, several times the
// AVX-512 copy's, and the two kernels now give the same bits.
template <class T>
void layer_norm_fwd(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t rows, int64_t D,
                    double eps) {
  const LnRowOps<T> ops = ln_rows_in_use<T>();
  // Rows in chunks of about 4096 values: a row of 128 claimed on its own costs about what it computes.
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      // Two passes (mean, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2.
      ops.stats(x + r * D, D, eps, mean + r, rstd + r);
      ops.normalize(x + r * D, gamma, beta, mean[r], rstd[r], y + r * D, D);
    }
  }, element_threads(static_cast<double>(rows * D)));
}

// With xhat = (x - mean) * rstd and g = gy * gamma:
//   gx = rstd * (g - mean_D(g) - xhat * mean_D(g * xhat)),  ggamma = sum_rows gy * xhat,  gbeta = sum_rows gy.
template <class T>
void layer_norm_bwd(const T* x, const T* gamma, const T* mean, const T* rstd, const T* gy, T* gx, T* ggamma,
                    T* gbeta, int64_t rows, int64_t D) {
  if (D == 0) return;
  const int64_t nch = std::max<int64_t>(1, std::min({rows, kMaxChunks, rows * D / kChunkWork}));
  const int64_t rc = ceil_div(rows, nch);
  // Per chunk: D partial sums for ggamma, then D for gbeta.
  double* part = kern::scratch<double>(static_cast<size_t>(nch * 2 * D));
  const LnRowOps<T> ops = ln_rows_in_use<T>();
  const bool par = rows * D > kParallelWork;
  parallel_items(nch, [&](int64_t ch, int) {
    double* pg = part + ch * 2 * D;
    double* pb = pg + D;
    for (int64_t i = 0; i < D; ++i) pg[i] = pb[i] = 0;
    for (int64_t r = ch * rc; r < std::min(rows, (ch + 1) * rc); ++r) {
      const T *xr = x + r * D, *gyr = gy + r * D;
      T* gxr = gx + r * D;
      T a, b;
      ops.grad_means(xr, gamma, gyr, mean[r], rstd[r], D, &a, &b);
      ops.grad(xr, gamma, gyr, mean[r], rstd[r], a, b, gxr, pg, pb, D);
    }
  }, par);
  parallel_items(D, [&](int64_t i, int) {
    double sg = 0, sb = 0;
    for (int64_t ch = 0; ch < nch; ++ch) {
      sg += part[ch * 2 * D + i];
      sb += part[ch * 2 * D + D + i];
    }
    ggamma[i] = static_cast<T>(sg);
    gbeta[i] = static_cast<T>(sb);
  }, par && D * nch > kParallelWork);
}

void layer_norm_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 3 && a.n_out == 3 && a.n_floats == 1,
               "layer_norm: expects [x, gamma, beta] -> [y, mean, rstd], floats [eps]");
  const Tensor& x = a.in[0];
  kernel_check(x.ndim >= 1, "layer_norm: x must have at least one dim");
  const int64_t D = x.shape[x.ndim - 1];
  const int64_t rows = leading_rows(x);
  check_vec(a.in[1], D, x.dtype, "layer_norm: gamma must be [D] of x's dtype");
  check_vec(a.in[2], D, x.dtype, "layer_norm: beta must be [D] of x's dtype");
  check_vec(a.out[0], x.numel(), x.dtype, "layer_norm: y must match x");
  check_vec(a.out[1], rows, x.dtype, "layer_norm: mean must be [rows] of x's dtype");
  check_vec(a.out[2], rows, x.dtype, "layer_norm: rstd must be [rows] of x's dtype");
  kern::dispatch_float(x.dtype, "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    layer_norm_fwd(x.ptr<const T>(), a.in[1].ptr<const T>(), a.in[2].ptr<const T>(), a.out[0].ptr<T>(),
                   a.out[1].ptr<T>(), a.out[2].ptr<T>(), rows, D, a.floats[0]);
  });
}

void layer_norm_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 5 && a.n_out == 3,
               "layer_norm_grad: expects [x, gamma, mean, rstd, gy] -> [gx, ggamma, gbeta]");
  const Tensor& x = a.in[0];
  kernel_check(x.ndim >= 1, "layer_norm_grad: x must have at least one dim");
  const int64_t D = x.shape[x.ndim - 1];
  const int64_t rows = leading_rows(x);
  check_vec(a.in[1], D, x.dtype, "layer_norm_grad: gamma must be [D] of x's dtype");
  check_vec(a.in[2], rows, x.dtype, "layer_norm_grad: mean must be [rows] of x's dtype");
  check_vec(a.in[3], rows, x.dtype, "layer_norm_grad: rstd must be [rows] of x's dtype");
  check_vec(a.in[4], x.numel(), x.dtype, "layer_norm_grad: gy must match x");
  check_vec(a.out[0], x.numel(), x.dtype, "layer_norm_grad: gx must match x");
  check_vec(a.out[1], D, x.dtype, "layer_norm_grad: ggamma must be [D] of x's dtype");
  check_vec(a.out[2], D, x.dtype, "layer_norm_grad: gbeta must be [D] of x's dtype");
  kern::dispatch_float(x.dtype, "layer_norm_grad", [&](auto tag) {
    using T = decltype(tag);
    layer_norm_bwd(x.ptr<const T>(), a.in[1].ptr<const T>(), a.in[2].ptr<const T>(), a.in[3].ptr<const T>(),
                   a.in[4].ptr<const T>(), a.out[0].ptr<T>(), a.out[1].ptr<T>(), a.out[2].ptr<T>(), rows, D);
  });
}

}  // namespace

DLC_REGISTER_KERNEL("layer_norm", ::dlc::Device::CPU, layer_norm_kernel);
DLC_REGISTER_KERNEL("layer_norm_grad", ::dlc::Device::CPU, layer_norm_grad_kernel);

}  // namespace dlc
