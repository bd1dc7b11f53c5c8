// Shared pieces of the convolution family (conv, pooling, upsampling, padding, batch norm): NCHW geometry,
// the valid-output-range index math that lets im2col/col2im skip padding without per-element branches,
// per-thread scratch memory and the f32/f64 dispatch. Images are NCHW and contiguous throughout.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatch.h"
#include "kernels/kernel_util.h"
#include "runtime/thread_pool.h"

namespace dlc::conv {

// Below this many touched elements a loop stays on one thread: waking the team costs more than the work.
constexpr int64_t kParallelWork = 32768;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

using dlc::dispatch_float;

// im2col buffers: grow-only, per thread (see kernel_util.h). The memory planner will later hand a planned
// workspace in KernelArgs::workspace instead; today that pointer is always nullptr.
template <class T>
inline T* scratch(size_t n) {
  return dlc::scratch<T, ScratchSlot::Conv>(n);
}

// Geometry of one 2-D convolution: x [N, C, H, W] * w [O, C/groups, KH, KW] -> y [N, O, Ho, Wo].
// Only the top/left padding is stored: bottom/right padding is whatever makes Ho/Wo, since every tap that
// falls outside the image reads (or writes) nothing.
struct Geom {
  int64_t N, C, H, W, O, KH, KW, Ho, Wo;
  int64_t sh, sw, ph, pw, dh, dw, groups;

  int64_t Cg() const { return C / groups; }
  int64_t Og() const { return O / groups; }
  int64_t K() const { return Cg() * KH * KW; }  // rows of the im2col matrix (the GEMM's inner dimension)
  int64_t P() const { return Ho * Wo; }         // output positions per image
  // A 1x1 stride-1 unpadded convolution is a plain GEMM on the image itself: no im2col.
  bool pointwise() const {
    return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && Ho == H && Wo == W;
  }
};

// ints = [sh, sw, ph, pw, dh, dw, groups]; x, w, y are the tensors in the roles above (for the data
// gradient y is the incoming gradient and x the result; conv_transpose uses the same roles).
inline Geom make_geom(const KernelArgs& a, const Tensor& x, const Tensor& w, const Tensor& y) {
  kernel_check(a.n_ints == 7, "conv ints");
  kernel_check(x.ndim == 4 && w.ndim == 4 && y.ndim == 4, "conv ranks");
  kernel_check(x.dtype == w.dtype && x.dtype == y.dtype, "conv dtypes");
  const int64_t* v = a.ints;
  Geom g{x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[2], w.shape[3], y.shape[2],
         y.shape[3], v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
  kernel_check(g.groups >= 1 && g.C % g.groups == 0 && g.O % g.groups == 0, "conv groups");
  kernel_check(w.shape[1] == g.Cg() && y.shape[0] == g.N && y.shape[1] == g.O, "conv shapes");
  kernel_check(g.sh >= 1 && g.sw >= 1 && g.dh >= 1 && g.dw >= 1, "conv stride/dilation");
  return g;
}

// Output indices o in [*lo, *hi) whose input coordinate o*stride + off lies in [0, size), clipped to [0, out).
inline void valid_range(int64_t size, int64_t out, int64_t stride, int64_t off, int64_t* lo, int64_t* hi) {
  int64_t l = off >= 0 ? 0 : ceil_div(-off, stride);
  int64_t h = size - off <= 0 ? 0 : ceil_div(size - off, stride);
  l = std::min(l, out);
  *lo = l;
  *hi = std::max(l, std::min(h, out));
}

// col[(c*KH + i)*KW + j][oh*Wo + ow] = x[c][oh*sh - ph + i*dh][ow*sw - pw + j*dw] (0 outside the image),
// for the Cg channel planes starting at x. Rows are independent, so they split across threads.
template <class T>
void im2col(const T* x, const Geom& g, T* col, bool parallel) {
  const int64_t rows = g.K(), P = g.P();
  parallel_items(rows, [&](int64_t r, int) {
    const int64_t c = r / (g.KH * g.KW), i = r / g.KW % g.KH, j = r % g.KW;
    const int64_t off_h = i * g.dh - g.ph, off_w = j * g.dw - g.pw;
    int64_t h_lo, h_hi, w_lo, w_hi;
    valid_range(g.H, g.Ho, g.sh, off_h, &h_lo, &h_hi);
    valid_range(g.W, g.Wo, g.sw, off_w, &w_lo, &w_hi);
    T* dst = col + r * P;
    std::fill(dst, dst + h_lo * g.Wo, T(0));
    for (int64_t oh = h_lo; oh < h_hi; ++oh) {
      const T* src = x + (c * g.H + oh * g.sh + off_h) * g.W + off_w;
      T* d = dst + oh * g.Wo;
      std::fill(d, d + w_lo, T(0));
      if (g.sw == 1)
        std::copy(src + w_lo, src + w_hi, d + w_lo);
      else
        for (int64_t ow = w_lo; ow < w_hi; ++ow) d[ow] = src[ow * g.sw];
      std::fill(d + w_hi, d + g.Wo, T(0));
    }
    std::fill(dst + h_hi * g.Wo, dst + P, T(0));
  }, parallel && rows * P > kParallelWork);
}

// The adjoint of im2col: x[c][...] += col[row][...] over every tap, for the Cg planes starting at x (which
// the caller zeroes first). Rows of one channel overlap in x, so threads split by channel, and within a
// channel the taps are added in a fixed order: results do not depend on the thread count.
template <class T>
void col2im(const T* col, const Geom& g, T* x, bool parallel) {
  const int64_t P = g.P(), taps = g.KH * g.KW;
  parallel_items(g.Cg(), [&](int64_t c, int) {
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t i = t / g.KW, j = t % g.KW;
      const int64_t off_h = i * g.dh - g.ph, off_w = j * g.dw - g.pw;
      int64_t h_lo, h_hi, w_lo, w_hi;
      valid_range(g.H, g.Ho, g.sh, off_h, &h_lo, &h_hi);
      valid_range(g.W, g.Wo, g.sw, off_w, &w_lo, &w_hi);
      const T* src = col + (c * taps + t) * P;
      for (int64_t oh = h_lo; oh < h_hi; ++oh) {
        T* d = x + (c * g.H + oh * g.sh + off_h) * g.W + off_w;
        const T* s = src + oh * g.Wo;
        for (int64_t ow = w_lo; ow < w_hi; ++ow) d[ow * g.sw] += s[ow];
      }
    }
  }, parallel && g.K() * P > kParallelWork);
}

}  // namespace dlc::conv
