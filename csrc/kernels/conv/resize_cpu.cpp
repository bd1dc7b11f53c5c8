// Spatial resizing: upsampling (nearest / bilinear, NCHW) and constant padding (any rank), with gradients.
//
//   "upsample":      in = [x [N,C,H,W]],   out = [y [N,C,Ho,Wo]]  ints = [mode (0 nearest, 1 bilinear), align_corners]
//   "upsample_grad": in = [gy [N,C,Ho,Wo]], out = [gx [N,C,H,W]]  same ints
//   "pad":           in = [x], out = [y]   ints = [rank, before_0, after_0, ..., before_{r-1}, after_{r-1}],
//                                          floats = [value]; negative amounts crop, so pad's gradient is a pad
//                                          with the amounts negated.
// The scale is out/in per axis, taken from the shapes; source coordinates follow PyTorch's interpolate.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/conv/conv.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

// Per output coordinate along one axis: the two source indices and the weight of the second.
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<double> frac;
};

Taps make_taps(int64_t in, int64_t out, bool bilinear, bool align_corners) {
  Taps t{std::vector<int64_t>(out), std::vector<int64_t>(out), std::vector<double>(out, 0.0)};
  for (int64_t o = 0; o < out; ++o) {
    if (!bilinear) {
      t.i0[o] = t.i1[o] = std::min(o * in / out, in - 1);
      continue;
    }
    double src = align_corners ? (out > 1 ? static_cast<double>(o) * (in - 1) / (out - 1) : 0.0)
                               : std::max((o + 0.5) * in / out - 0.5, 0.0);
    const int64_t lo = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
    t.i0[o] = lo;
    t.i1[o] = std::min(lo + 1, in - 1);
    t.frac[o] = src - static_cast<double>(lo);
  }
  return t;
}

// Calls f(output offset, input offset, weight) for the (up to four) taps of every output pixel of one plane.
template <class F>
void for_taps(const Taps& th, const Taps& tw, int64_t W, int64_t Wo, const F& f) {
  for (size_t oh = 0; oh < th.i0.size(); ++oh) {
    const double lh = th.frac[oh];
    for (size_t ow = 0; ow < tw.i0.size(); ++ow) {
      const double lw = tw.frac[ow];
      const int64_t o = static_cast<int64_t>(oh) * Wo + static_cast<int64_t>(ow);
      f(o, th.i0[oh] * W + tw.i0[ow], (1 - lh) * (1 - lw));
      if (lw != 0) f(o, th.i0[oh] * W + tw.i1[ow], (1 - lh) * lw);
      if (lh != 0) f(o, th.i1[oh] * W + tw.i0[ow], lh * (1 - lw));
      if (lh != 0 && lw != 0) f(o, th.i1[oh] * W + tw.i1[ow], lh * lw);
    }
  }
}

// backward: x is the gradient being accumulated, y the incoming one; both planes are one thread's.
template <class T>
void upsample_typed(const KernelArgs& a, bool backward) {
  const Tensor& X = backward ? a.out[0] : a.in[0];
  const Tensor& Y = backward ? a.in[0] : a.out[0];
  kernel_check(a.n_ints == 2 && X.ndim == 4 && Y.ndim == 4 && X.dtype == Y.dtype, "upsample operands");
  kernel_check(X.shape[0] == Y.shape[0] && X.shape[1] == Y.shape[1], "upsample shapes");
  const int64_t planes = X.shape[0] * X.shape[1], H = X.shape[2], W = X.shape[3], Ho = Y.shape[2], Wo = Y.shape[3];
  if (Y.numel() == 0 || X.numel() == 0) return;
  const bool bilinear = a.ints[0] == 1, align = a.ints[1] != 0;
  const Taps th = make_taps(H, Ho, bilinear, align), tw = make_taps(W, Wo, bilinear, align);
  T* x = X.ptr<T>();
  T* y = Y.ptr<T>();
  parallel_items(planes, [&](int64_t p, int) {
    T* xp = x + p * H * W;
    T* yp = y + p * Ho * Wo;
    if (backward) {
      std::fill(xp, xp + H * W, T(0));
      for_taps(th, tw, W, Wo, [&](int64_t o, int64_t i, double wt) { xp[i] += static_cast<T>(wt) * yp[o]; });
    } else {
      std::fill(yp, yp + Ho * Wo, T(0));
      for_taps(th, tw, W, Wo, [&](int64_t o, int64_t i, double wt) { yp[o] += static_cast<T>(wt) * xp[i]; });
    }
  }, element_threads(static_cast<double>(planes * Ho * Wo)));
}

template <class T>
void pad_typed(const KernelArgs& a) {
  const Tensor &X = a.in[0], &Y = a.out[0];
  const int rank = static_cast<int>(a.ints[0]);
  kernel_check(rank == X.ndim && rank == Y.ndim && rank >= 1 && a.n_ints == 1 + 2 * rank && a.n_floats == 1,
               "pad operands");
  const int64_t* before = a.ints + 1;  // before_d at before[2 * d]
  for (int d = 0; d < rank; ++d)
    kernel_check(Y.shape[d] == X.shape[d] + before[2 * d] + before[2 * d + 1], "pad shapes");
  const T value = static_cast<T>(a.floats[0]);
  const int64_t Wo = Y.shape[rank - 1], Wi = X.shape[rank - 1], off = before[2 * (rank - 1)];
  const int64_t rows = Wo ? Y.numel() / Wo : 0;
  int64_t lo, hi;  // output columns that read the input
  conv::valid_range(Wi, Wo, 1, -off, &lo, &hi);
  const T* x = X.ptr<T>();
  T* y = Y.ptr<T>();
  parallel_items(rows, [&](int64_t r, int) {
    // Source row of output row r, or -1 when some leading coordinate falls in the padding.
    int64_t rem = r, src = 0, stride = 1;
    for (int d = rank - 2; d >= 0 && src >= 0; --d) {
      const int64_t i = rem % Y.shape[d] - before[2 * d];
      rem /= Y.shape[d];
      if (i < 0 || i >= X.shape[d])
        src = -1;
      else
        src += i * stride;
      stride *= X.shape[d];
    }
    T* yr = y + r * Wo;
    if (src < 0) {
      std::fill(yr, yr + Wo, value);
      return;
    }
    const T* xr = x + src * Wi;
    std::fill(yr, yr + lo, value);
    std::copy(xr + (lo - off), xr + (hi - off), yr + lo);
    std::fill(yr + hi, yr + Wo, value);
  }, element_threads(static_cast<double>(Y.numel())));
}

void upsample_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1, "upsample operands");
  conv::dispatch_float(a.out[0].dtype, "upsample", [&](auto t) { upsample_typed<decltype(t)>(a, false); });
}
void upsample_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1, "upsample_grad operands");
  conv::dispatch_float(a.out[0].dtype, "upsample_grad", [&](auto t) { upsample_typed<decltype(t)>(a, true); });
}
void pad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.n_ints >= 1 && a.in[0].dtype == a.out[0].dtype, "pad operands");
  conv::dispatch_float(a.out[0].dtype, "pad", [&](auto t) { pad_typed<decltype(t)>(a); });
}

}  // namespace

DLC_REGISTER_KERNEL("upsample", Device::CPU, upsample_kernel);
DLC_REGISTER_KERNEL("upsample_grad", Device::CPU, upsample_grad_kernel);
DLC_REGISTER_KERNEL("pad", Device::CPU, pad_kernel);

}  // namespace dlc
