// 2-D max and average pooling (NCHW) and their gradients. Every (n, c) plane is independent, so planes split
// across threads and each gradient plane is accumulated by one thread in a fixed order (deterministic).
//
// ints = [kh, kw, sh, sw, ph, pw] (+ [count_include_pad] for average pooling); padding is symmetric and the
// output size comes from the output tensor.
//   "max_pool2d":      in = [x],     out = [y]
//   "max_pool2d_grad": in = [x, gy], out = [gx]   the argmax is recomputed from x (see below)
//   "avg_pool2d":      in = [x],     out = [y]
//   "avg_pool2d_grad": in = [gy],    out = [gx]
// Max pooling stores no indices: the gradient kernel rescans each window of x, which costs one cheap pass
// and saves an index tensor the size of y that would live from the forward to the backward pass. Both scans
// pick the first maximum in row-major window order, with NaN counting as the maximum (as in PyTorch).
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/conv/conv.h"
#include "kernels/conv/pool_simd.h"
#include "kernels/elementwise/elementwise.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

struct Pool {
  int64_t planes, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw;
  bool include_pad;

  // Window of output (oh, ow) clipped to the image: rows [h0, h1), cols [w0, w1).
  void window(int64_t oh, int64_t ow, int64_t* h0, int64_t* h1, int64_t* w0, int64_t* w1) const {
    const int64_t hs = oh * sh - ph, ws = ow * sw - pw;
    *h0 = std::max<int64_t>(hs, 0);
    *h1 = std::min(hs + kh, H);
    *w0 = std::max<int64_t>(ws, 0);
    *w1 = std::min(ws + kw, W);
  }
  bool parallel() const { return planes * H * W > conv::kParallelWork; }
};

Pool make_pool(const KernelArgs& a, const Tensor& x, const Tensor& y, int n_ints) {
  kernel_check(a.n_ints == n_ints, "pool ints");
  kernel_check(x.ndim == 4 && y.ndim == 4 && x.dtype == y.dtype, "pool operands");
  kernel_check(x.shape[0] == y.shape[0] && x.shape[1] == y.shape[1], "pool shapes");
  const int64_t* v = a.ints;
  kernel_check(v[0] >= 1 && v[1] >= 1 && v[2] >= 1 && v[3] >= 1 && v[4] >= 0 && v[5] >= 0, "pool window");
  return Pool{x.shape[0] * x.shape[1], x.shape[2], x.shape[3], y.shape[2], y.shape[3], v[0], v[1], v[2], v[3], v[4],
              v[5], n_ints > 6 && v[6] != 0};
}

// Offset within the plane of the window's first maximum, or -1 for a window entirely in the padding.
template <class T>
int64_t argmax(const T* xp, const Pool& p, int64_t oh, int64_t ow) {
  int64_t h0, h1, w0, w1;
  p.window(oh, ow, &h0, &h1, &w0, &w1);
  int64_t best = -1;
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) {
      const T v = xp[h * p.W + w];
      if (best < 0 || v > m || (v != v && m == m)) {
        m = v;
        best = h * p.W + w;
      }
    }
  return best;
}

// max(a, b) that lets a NaN through from either side, written so that it vectorizes as a blend.
template <class T>
inline T nan_max(T a, T b) {
  return (a > b || a != a) ? a : b;
}

// Unpadded windows never leave the image: each output row is the running maximum of kh * kw strided input
// rows, a branch-free loop the compiler vectorizes (the general path scans one clipped window at a time).
template <class T>
void max_pool_unpadded_plane(const T* xp, T* yp, const Pool& p) {
  for (int64_t oh = 0; oh < p.Ho; ++oh) {
    T* yr = yp + oh * p.Wo;
    const T* first = xp + oh * p.sh * p.W;
    for (int64_t ow = 0; ow < p.Wo; ++ow) yr[ow] = first[ow * p.sw];
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = i == 0 ? 1 : 0; j < p.kw; ++j) {
        const T* xr = xp + (oh * p.sh + i) * p.W + j;
        for (int64_t ow = 0; ow < p.Wo; ++ow) yr[ow] = nan_max(yr[ow], xr[ow * p.sw]);
      }
  }
}

bool is_2x2_stride_2(const Pool& p) {
  return p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0 && 2 * p.Ho <= p.H &&
         2 * p.Wo <= p.W;
}

// The 2x2 stride-2 window of classic convnets runs on the AVX-512 kernels of pool_simd.h (4-10x the scans
// below) when the elementwise kernels run on AVX-512: ew_force_isa switches both, so tests reach the portable
// code on any CPU. A portable pairwise loop was tried: with -fno-trapping-math GCC compiles its NaN-aware
// maxima to branches, which mispredict on real data and made it 10x slower than the strided scan.
template <class T>
bool pool_simd(const Pool& p) {
  return std::is_same_v<T, float> && is_2x2_stride_2(p) && conv::pool_simd_available() &&
         std::strcmp(ew_kernel_name(), "avx512") == 0;
}

template <class T>
void max_pool(const KernelArgs& a) {
  const Pool p = make_pool(a, a.in[0], a.out[0], 6);
  const T* x = a.in[0].ptr<T>();
  T* y = a.out[0].ptr<T>();
  const bool unpadded = p.ph == 0 && p.pw == 0 && (p.Ho - 1) * p.sh + p.kh <= p.H && (p.Wo - 1) * p.sw + p.kw <= p.W;
  const bool simd = pool_simd<T>(p);
  parallel_items(p.planes, [&](int64_t pl, int) {
    const T* xp = x + pl * p.H * p.W;
    T* yp = y + pl * p.Ho * p.Wo;
    if (simd) {
      if constexpr (std::is_same_v<T, float>) conv::max_pool_2x2_plane_avx512(xp, yp, p.Ho, p.W, p.Wo);
      return;
    }
    if (unpadded) {
      max_pool_unpadded_plane(xp, yp, p);
      return;
    }
    for (int64_t oh = 0; oh < p.Ho; ++oh)
      for (int64_t ow = 0; ow < p.Wo; ++ow) {
        const int64_t k = argmax(xp, p, oh, ow);
        yp[oh * p.Wo + ow] = k < 0 ? -std::numeric_limits<T>::infinity() : xp[k];
      }
  }, p.parallel());
}

template <class T>
void max_pool_grad(const KernelArgs& a) {
  const Pool p = make_pool(a, a.in[0], a.in[1], 6);
  const T* x = a.in[0].ptr<T>();
  const T* gy = a.in[1].ptr<T>();
  T* gx = a.out[0].ptr<T>();
  const bool simd = pool_simd<T>(p);
  parallel_items(p.planes, [&](int64_t pl, int) {
    const T* xp = x + pl * p.H * p.W;
    const T* gp = gy + pl * p.Ho * p.Wo;
    T* gxp = gx + pl * p.H * p.W;
    if (simd) {
      if (2 * p.Ho != p.H || 2 * p.Wo != p.W) std::fill(gxp, gxp + p.H * p.W, T(0));  // inputs in no window
      if constexpr (std::is_same_v<T, float>) conv::max_pool_2x2_grad_plane_avx512(xp, gp, gxp, p.Ho, p.W, p.Wo);
      return;
    }
    std::fill(gxp, gxp + p.H * p.W, T(0));
    for (int64_t oh = 0; oh < p.Ho; ++oh)
      for (int64_t ow = 0; ow < p.Wo; ++ow) {
        const int64_t k = argmax(xp, p, oh, ow);
        if (k >= 0) gxp[k] += gp[oh * p.Wo + ow];
      }
  }, p.parallel());
}

// Divisor of one average-pooling window: the full window (padding counted as zeros) or its valid part.
inline int64_t avg_count(const Pool& p, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
  return p.include_pad ? p.kh * p.kw : std::max<int64_t>((h1 - h0) * (w1 - w0), 1);
}

template <class T>
void avg_pool(const KernelArgs& a) {
  const Pool p = make_pool(a, a.in[0], a.out[0], 7);
  const T* x = a.in[0].ptr<T>();
  T* y = a.out[0].ptr<T>();
  parallel_items(p.planes, [&](int64_t pl, int) {
    const T* xp = x + pl * p.H * p.W;
    T* yp = y + pl * p.Ho * p.Wo;
    for (int64_t oh = 0; oh < p.Ho; ++oh)
      for (int64_t ow = 0; ow < p.Wo; ++ow) {
        int64_t h0, h1, w0, w1;
        p.window(oh, ow, &h0, &h1, &w0, &w1);
        T s = T(0);
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) s += xp[h * p.W + w];
        yp[oh * p.Wo + ow] = s / static_cast<T>(avg_count(p, h0, h1, w0, w1));
      }
  }, p.parallel());
}

template <class T>
void avg_pool_grad(const KernelArgs& a) {
  const Pool p = make_pool(a, a.out[0], a.in[0], 7);
  const T* gy = a.in[0].ptr<T>();
  T* gx = a.out[0].ptr<T>();
  parallel_items(p.planes, [&](int64_t pl, int) {
    const T* gp = gy + pl * p.Ho * p.Wo;
    T* gxp = gx + pl * p.H * p.W;
    std::fill(gxp, gxp + p.H * p.W, T(0));
    for (int64_t oh = 0; oh < p.Ho; ++oh)
      for (int64_t ow = 0; ow < p.Wo; ++ow) {
        int64_t h0, h1, w0, w1;
        p.window(oh, ow, &h0, &h1, &w0, &w1);
        const T g = gp[oh * p.Wo + ow] / static_cast<T>(avg_count(p, h0, h1, w0, w1));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) gxp[h * p.W + w] += g;
      }
  }, p.parallel());
}

void max_pool2d_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1, "max_pool2d operands");
  conv::dispatch_float(a.out[0].dtype, "max_pool2d", [&](auto t) { max_pool<decltype(t)>(a); });
}
void max_pool2d_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 1, "max_pool2d_grad operands");
  kernel_check(a.out[0].numel() == a.in[0].numel() && a.out[0].dtype == a.in[0].dtype, "max_pool2d_grad shapes");
  conv::dispatch_float(a.out[0].dtype, "max_pool2d_grad", [&](auto t) { max_pool_grad<decltype(t)>(a); });
}
void avg_pool2d_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1, "avg_pool2d operands");
  conv::dispatch_float(a.out[0].dtype, "avg_pool2d", [&](auto t) { avg_pool<decltype(t)>(a); });
}
void avg_pool2d_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1, "avg_pool2d_grad operands");
  conv::dispatch_float(a.out[0].dtype, "avg_pool2d_grad", [&](auto t) { avg_pool_grad<decltype(t)>(a); });
}

}  // namespace

DLC_REGISTER_KERNEL("max_pool2d", Device::CPU, max_pool2d_kernel);
DLC_REGISTER_KERNEL("max_pool2d_grad", Device::CPU, max_pool2d_grad_kernel);
DLC_REGISTER_KERNEL("avg_pool2d", Device::CPU, avg_pool2d_kernel);
DLC_REGISTER_KERNEL("avg_pool2d_grad", Device::CPU, avg_pool2d_grad_kernel);

}  // namespace dlc
