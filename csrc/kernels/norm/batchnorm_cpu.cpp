// Batch normalization over axis 1 of x [N, C, *spatial] (statistics over N and the spatial axes).
//
//   "batch_norm_train": in = [x, gamma, beta, running_mean, running_var], out = [y, batch_mean, batch_invstd]
//                       floats = [momentum, eps]. Also updates running_mean/var IN PLACE (the op declares
//                       mutates=(3, 4)): running = (1 - momentum) * running + momentum * batch, with the unbiased
//                       batch variance as in PyTorch; normalization uses the biased one.
//   "batch_norm_eval":  in = [x, gamma, beta, running_mean, running_var], out = [y], floats = [eps]
//   "batch_norm_grad":  in = [x, gamma, batch_mean, batch_invstd, gy], out = [gx, ggamma, gbeta]
// gamma, beta and the statistics are [C]. Channels are independent: threads split channels, and each
// channel's sums run in a fixed order (blocks summed in T, joined in double), so results do not depend on the
// thread count.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "kernels/kernel_util.h"
#include "kernels/reduce/reduce.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

struct Layout {
  int64_t N, C, inner;  // x viewed as [N, C, inner]
};

Layout layout(const Tensor& x, const Tensor& stat) {
  kernel_check(x.ndim >= 2 && stat.numel() == x.shape[1] && stat.dtype == x.dtype, "batch_norm operands");
  const int64_t per = x.shape[0] * x.shape[1];
  return Layout{x.shape[0], x.shape[1], per ? x.numel() / per : 0};
}

// Elements summed in T before the partial sum joins the double total: 16 lanes of at most 64 terms each, so f32
// sums keep about f32 precision per block while the lanes vectorize (double lanes would halve the width and
// cost a conversion per element).
constexpr int64_t kLanes = 16, kBlock = 1024;

// Sums over one channel of f(value offset) for each of the K results f returns (an array), visiting the N planes
// and the blocks within them in order.
template <class T, int K, class F>
std::array<double, K> channel_sums(const Layout& l, int64_t c, const F& f) {
  std::array<double, K> total{};
  for (int64_t n = 0; n < l.N; ++n) {
    const int64_t base = (n * l.C + c) * l.inner;
    for (int64_t b0 = 0; b0 < l.inner; b0 += kBlock) {
      const int64_t b1 = std::min(l.inner, b0 + kBlock);
      T acc[K][kLanes] = {};
      int64_t i = b0;
      for (; i + kLanes <= b1; i += kLanes)
        for (int64_t j = 0; j < kLanes; ++j) {
          const std::array<T, K> v = f(base + i + j);
          for (int k = 0; k < K; ++k) acc[k][j] += v[k];
        }
      for (; i < b1; ++i) {
        const std::array<T, K> v = f(base + i);
        for (int k = 0; k < K; ++k) acc[k][0] += v[k];
      }
      for (int k = 0; k < K; ++k) {
        T s = T(0);
        for (int64_t j = 0; j < kLanes; ++j) s += acc[k][j];
        total[k] += static_cast<double>(s);
      }
    }
  }
  return total;
}

// Every per-channel operand (inputs [1, in_end), outputs from 1) must be a [C] vector of x's dtype.
void check_channels(const KernelArgs& a, int in_end) {
  kernel_check(a.in[0].ndim >= 2, "batch_norm rank");
  for (int k = 1; k < in_end; ++k) layout(a.in[0], a.in[k]);
  for (int k = 1; k < a.n_out; ++k) layout(a.in[0], a.out[k]);
}

bool parallel(const Tensor& x) { return x.numel() > kern::kParallelWork; }

// Two passes over each channel, the mean then the squared deviations from it (avoiding the cancellation of
// E[x^2] - E[x]^2). Synchronized (ctx->sum_across_ranks): the sums and the count are summed over the ranks
// after each pass, so every rank normalizes with the global batch's statistics.
template <class T>
void bn_train(const KernelArgs& a) {
  kernel_check(a.n_floats == 2, "batch_norm_train floats");
  const Tensor& X = a.in[0];
  const Layout l = layout(X, a.in[1]);
  const double momentum = a.floats[0], eps = a.floats[1];
  const T *x = X.ptr<T>(), *gamma = a.in[1].ptr<T>(), *beta = a.in[2].ptr<T>();
  T *rmean = a.in[3].ptr<T>(), *rvar = a.in[4].ptr<T>();
  T *y = a.out[0].ptr<T>(), *mean = a.out[1].ptr<T>(), *invstd = a.out[2].ptr<T>();
  const RankSum* across = a.ctx ? a.ctx->sum_across_ranks : nullptr;
  std::vector<double> sum(l.C + 1), dev(l.C);
  parallel_items(l.C, [&](int64_t c, int) {
    sum[c] = channel_sums<T, 1>(l, c, [x](int64_t i) { return std::array<T, 1>{x[i]}; })[0];
  }, parallel(X));
  sum[l.C] = static_cast<double>(l.N * l.inner);
  if (across) (*across)(sum.data(), l.C + 1);
  const double count = sum[l.C];
  if (count == 0) return;
  parallel_items(l.C, [&](int64_t c, int) {
    const T mu_t = static_cast<T>(sum[c] / count);
    dev[c] = channel_sums<T, 1>(l, c, [x, mu_t](int64_t i) {
               const T d = x[i] - mu_t;
               return std::array<T, 1>{d * d};
             })[0];
  }, parallel(X));
  if (across) (*across)(dev.data(), l.C);
  parallel_items(l.C, [&](int64_t c, int) {
    const double mu = sum[c] / count, var = dev[c] / count;
    const double rs = 1.0 / std::sqrt(var + eps);
    const T scale = static_cast<T>(rs * gamma[c]), shift = static_cast<T>(beta[c] - mu * rs * gamma[c]);
    for (int64_t n = 0; n < l.N; ++n) {
      const int64_t base = (n * l.C + c) * l.inner;
      for (int64_t i = 0; i < l.inner; ++i) y[base + i] = x[base + i] * scale + shift;
    }
    mean[c] = static_cast<T>(mu);
    invstd[c] = static_cast<T>(rs);
    const double unbiased = count > 1 ? var * count / (count - 1) : var;
    rmean[c] = static_cast<T>((1 - momentum) * rmean[c] + momentum * mu);
    rvar[c] = static_cast<T>((1 - momentum) * rvar[c] + momentum * unbiased);
  }, parallel(X));
}

template <class T>
void bn_eval(const KernelArgs& a) {
  kernel_check(a.n_floats == 1, "batch_norm_eval floats");
  const Tensor& X = a.in[0];
  const Layout l = layout(X, a.in[1]);
  const double eps = a.floats[0];
  const T *x = X.ptr<T>(), *gamma = a.in[1].ptr<T>(), *beta = a.in[2].ptr<T>();
  const T *rmean = a.in[3].ptr<T>(), *rvar = a.in[4].ptr<T>();
  T* y = a.out[0].ptr<T>();
  parallel_items(l.N * l.C, [&](int64_t p, int) {
    const int64_t c = p % l.C;
    const double rs = 1.0 / std::sqrt(static_cast<double>(rvar[c]) + eps);
    const T scale = static_cast<T>(rs * gamma[c]), shift = static_cast<T>(beta[c] - rmean[c] * rs * gamma[c]);
    for (int64_t i = p * l.inner; i < (p + 1) * l.inner; ++i) y[i] = x[i] * scale + shift;
  }, parallel(X));
}

// With xhat = (x - mean) * invstd over the m = N * inner values of a channel:
//   gbeta = sum gy,  ggamma = sum gy * xhat,  gx = gamma * invstd * (gy - gbeta / m - xhat * ggamma / m).
// Synchronized, gy is the gradient of this rank's loss, which enters the global loss with weight w (the
// rank's shard_weight), and the rank's gradients are later weighted by w: so the two sums in gx are the
// w-weighted sums over all ranks divided by w, m is the global count, and gbeta and ggamma stay this rank's.
template <class T>
void bn_grad(const KernelArgs& a) {
  const Tensor& X = a.in[0];
  const Layout l = layout(X, a.in[1]);
  const T *x = X.ptr<T>(), *gamma = a.in[1].ptr<T>(), *mean = a.in[2].ptr<T>(), *invstd = a.in[3].ptr<T>();
  const T* gy = a.in[4].ptr<T>();
  T *gx = a.out[0].ptr<T>(), *ggamma = a.out[1].ptr<T>(), *gbeta = a.out[2].ptr<T>();
  const RankSum* across = a.ctx ? a.ctx->sum_across_ranks : nullptr;
  std::vector<double> sums(2 * l.C + 1);
  parallel_items(l.C, [&](int64_t c, int) {
    const T mu = mean[c];
    // One pass for both sums; sum gy * xhat = invstd * sum gy * (x - mean).
    const std::array<double, 2> s = channel_sums<T, 2>(l, c, [=](int64_t i) {
      return std::array<T, 2>{gy[i], gy[i] * (x[i] - mu)};
    });
    sums[c] = s[0];
    sums[l.C + c] = s[1] * static_cast<double>(invstd[c]);
    gbeta[c] = static_cast<T>(sums[c]);
    ggamma[c] = static_cast<T>(sums[l.C + c]);
  }, parallel(X));
  sums[2 * l.C] = static_cast<double>(l.N * l.inner);
  double unweight = 1.0;
  if (across) {
    const double w = a.ctx->shard_weight;
    for (int64_t k = 0; k < 2 * l.C; ++k) sums[k] *= w;
    (*across)(sums.data(), 2 * l.C + 1);
    unweight = 1.0 / w;
  }
  const double count = sums[2 * l.C];
  if (count == 0 || l.N * l.inner == 0) return;
  parallel_items(l.C, [&](int64_t c, int) {
    const double rs = invstd[c];
    const T mu = mean[c];
    // gx = k * (gy - mg - (x - mean) * invstd * mgx) = p * gy + q * (x - mean) + r, the constants in double
    // (x - mean is formed first: folding mean into r would cancel badly when |mean| >> the spread).
    const double k = gamma[c] * rs, mg = sums[c] * unweight / count, mgx = sums[l.C + c] * unweight / count;
    const T p = static_cast<T>(k), q = static_cast<T>(-k * rs * mgx), r = static_cast<T>(-k * mg);
    for (int64_t n = 0; n < l.N; ++n) {
      const int64_t base = (n * l.C + c) * l.inner;
      for (int64_t i = base; i < base + l.inner; ++i) gx[i] = p * gy[i] + q * (x[i] - mu) + r;
    }
  }, parallel(X));
}

void batch_norm_train_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 5 && a.n_out == 3, "batch_norm_train operands");
  check_channels(a, 5);
  dispatch_float(a.in[0].dtype, "batch_norm_train", [&](auto t) { bn_train<decltype(t)>(a); });
}
void batch_norm_eval_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 5 && a.n_out == 1, "batch_norm_eval operands");
  check_channels(a, 5);
  dispatch_float(a.in[0].dtype, "batch_norm_eval", [&](auto t) { bn_eval<decltype(t)>(a); });
}
void batch_norm_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 5 && a.n_out == 3, "batch_norm_grad operands");
  kernel_check(a.in[4].numel() == a.in[0].numel() && a.out[0].numel() == a.in[0].numel(), "batch_norm_grad shapes");
  check_channels(a, 4);
  dispatch_float(a.in[0].dtype, "batch_norm_grad", [&](auto t) { bn_grad<decltype(t)>(a); });
}

}  // namespace

DLC_REGISTER_KERNEL("batch_norm_train", Device::CPU, batch_norm_train_kernel);
DLC_REGISTER_KERNEL("batch_norm_eval", Device::CPU, batch_norm_eval_kernel);
DLC_REGISTER_KERNEL("batch_norm_grad", Device::CPU, batch_norm_grad_kernel);

}  // namespace dlc
