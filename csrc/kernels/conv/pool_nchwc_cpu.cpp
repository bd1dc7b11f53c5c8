// Blocked-layout (nchwc.h) pooling and the reorders between NCHW and the blocked layout.
//
//   "nchwc_reorder": in = [x], out = [y]. x [..., C, H, W] -> y [..., ceil(C/B), H, W, B] (zero lanes past C), or
//                    x [..., Cb, H, W, B] -> y [..., C, H, W] (lanes past C dropped); the ranks say which.
//   "pool2d_nchwc":  in = [x [N, Cb, H, W, B]], out = [y [N, Cb, Ho, Wo, B]],
//                    ints = [kind (0 max, 1 average, 2 global average), kh, kw, sh, sw, ph, pw, count_include_pad]
#include <algorithm>
#include <cstring>

#include "kernels/conv/conv.h"
#include "kernels/conv/nchwc.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

template <class T>
void reorder(const Tensor& X, const Tensor& Y) {
  const bool to_blocked = Y.ndim == X.ndim + 1;
  const Tensor& P = to_blocked ? X : Y;  // the plain side
  const Tensor& Q = to_blocked ? Y : X;  // the blocked side
  const int r = P.ndim;
  kernel_check(r >= 3 && Q.ndim == r + 1, "nchwc_reorder ranks");
  int64_t lead = 1;
  for (int d = 0; d < r - 3; ++d) {
    kernel_check(P.shape[d] == Q.shape[d], "nchwc_reorder leading dimensions");
    lead *= P.shape[d];
  }
  const int64_t C = P.shape[r - 3], HW = P.shape[r - 2] * P.shape[r - 1], B = Q.shape[r], Cb = Q.shape[r - 3];
  kernel_check(Q.shape[r - 2] * Q.shape[r - 1] == HW && B >= 1 && Cb == conv::ceil_div(C, B), "nchwc_reorder shapes");
  const T* x = X.ptr<T>();
  T* y = Y.ptr<T>();
  parallel_items(lead * Cb, [&](int64_t item, int) {
    const int64_t n = item / Cb, cb = item % Cb, lanes = std::min(B, C - cb * B);
    const T* plain_src = x + (n * C + cb * B) * HW;
    T* blocked_dst = y + item * HW * B;
    if (to_blocked) {
      for (int64_t p = 0; p < HW; ++p) {
        T* d = blocked_dst + p * B;
        for (int64_t l = 0; l < lanes; ++l) d[l] = plain_src[l * HW + p];
        for (int64_t l = lanes; l < B; ++l) d[l] = T(0);
      }
    } else {
      const T* s = x + item * HW * B;
      T* d = y + (n * C + cb * B) * HW;
      for (int64_t l = 0; l < lanes; ++l)
        for (int64_t p = 0; p < HW; ++p) d[l * HW + p] = s[p * B + l];
    }
  }, element_threads(static_cast<double>(Y.numel())));
}

void reorder_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.in[0].dtype == a.out[0].dtype, "nchwc_reorder operands");
  conv::dispatch_float(a.out[0].dtype, "nchwc_reorder", [&](auto t) { reorder<decltype(t)>(a.in[0], a.out[0]); });
}

template <class T>
void pool(const KernelArgs& a) {
  const Tensor &X = a.in[0], &Y = a.out[0];
  kernel_check(X.ndim == 5 && Y.ndim == 5 && X.dtype == Y.dtype, "pool2d_nchwc operands");
  kernel_check(X.shape[0] == Y.shape[0] && X.shape[1] == Y.shape[1] && X.shape[4] == Y.shape[4], "pool2d_nchwc shapes");
  const int64_t* v = a.ints;
  conv::NchwcPool<T> p;
  p.x = X.ptr<T>();
  p.y = Y.ptr<T>();
  p.H = X.shape[2], p.W = X.shape[3], p.Ho = Y.shape[2], p.Wo = Y.shape[3];
  p.kind = static_cast<int>(v[0]);
  p.kh = v[1], p.kw = v[2], p.sh = v[3], p.sw = v[4], p.ph = v[5], p.pw = v[6];
  p.count_include_pad = v[7] != 0;
  kernel_check(p.kind >= 0 && p.kind <= 2 && p.kh >= 1 && p.kw >= 1 && p.sh >= 1 && p.sw >= 1, "pool2d_nchwc window");
  kernel_check(p.kind != 2 || (p.Ho == 1 && p.Wo == 1), "pool2d_nchwc global output");
  // Every output window must hold at least one input (the op checks padding <= kernel / 2).
  kernel_check(p.kind == 2 || ((p.Ho - 1) * p.sh - p.ph < p.H && (p.Wo - 1) * p.sw - p.pw < p.W && p.ph < p.kh &&
                               p.pw < p.kw), "pool2d_nchwc geometry");
  const conv::NchwcKernels k = conv::nchwc_kernels(X.shape[4]);
  kernel_check(k.pool_f32 != nullptr, "pool2d_nchwc block size (8 or 16)");
  const int64_t planes = X.shape[0] * X.shape[1];
  parallel_for(planes, 1, [&](int64_t q0, int64_t q1, int) {
    if constexpr (sizeof(T) == 4)
      k.pool_f32(p, q0, q1);
    else
      k.pool_f64(p, q0, q1);
  }, element_threads(static_cast<double>(X.numel() + Y.numel())));
}

void pool_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.n_ints == 8, "pool2d_nchwc operands");
  conv::dispatch_float(a.out[0].dtype, "pool2d_nchwc", [&](auto t) { pool<decltype(t)>(a); });
}

}  // namespace

DLC_REGISTER_KERNEL("nchwc_reorder", Device::CPU, reorder_kernel);
DLC_REGISTER_KERNEL("pool2d_nchwc", Device::CPU, pool_kernel);

}  // namespace dlc
