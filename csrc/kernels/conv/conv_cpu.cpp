// 2-D convolution (NCHW) forward, data gradient and weight gradient, through dlc::gemm or the direct kernels.
//
// ints = [sh, sw, ph, pw, dh, dw, groups] for the three kernels (ph/pw: top/left padding; see conv.h).
//   "conv2d":             in = [x [N,C,H,W], w [O,C/g,KH,KW]],   out = [y [N,O,Ho,Wo]]
//                          then optionally [n_code, program...] (n_code 0: no epilogue), in += [its extra inputs],
//                          out = [y, its outputs...] (see ConvEpilogue)
//   "conv2d_grad_input":  in = [gy [N,O,Ho,Wo], w],              out = [gx [N,C,H,W]]
//                          (also conv_transpose2d's forward, with x in gy's place)
//   "conv2d_grad_weight": in = [x, gy],                          out = [gw [O,C/g,KH,KW]]
//
// Per image n and group g the work is one GEMM over the im2col matrix col [K = Cg*KH*KW, P = Ho*Wo]:
//   forward       y[n,g]  (Og x P) = w_g (Og x K) @ col
//   data grad     col     (K x P)  = w_g^T @ gy[n,g], then col2im into gx[n,g]
//   weight grad   gw_g    (Og x K) += gy[n,g] @ col^T
// A 1x1 stride-1 unpadded convolution uses the image itself as col. When the (image, group) products are
// small or plentiful, threads take whole products (each with its own col slice and a single-threaded GEMM);
// otherwise products run one after another and the GEMM and im2col split the work. Every output element is
// computed in an order fixed by the shapes and the thread count, so results are deterministic.
//
// On CPUs with AVX-512, f32 convolutions without groups whose kernel has several taps take the direct kernels
// of conv_direct.h instead (for the data gradient, only stride-1 ones): at the channel counts of small CNNs
// they skip the im2col matrix and the GEMM's packing, which cost about as much as the multiplications.
#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/conv/conv.h"
#include "kernels/conv/conv_direct.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/qgemm/qgemm.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using conv::Geom;

// Products below this many multiply-adds run single-threaded inside GEMM anyway (its own threshold).
constexpr int64_t kSmallProduct = 1 << 19;
// Weight-gradient partial sums per group when threads split the batch; bounds the extra memory.
constexpr int64_t kMaxChunks = 8;

// Input channels x taps the direct kernels take: each output tile walks all of them, and the input rows it reads
// must stay in the core's caches (128 channels of a 3x3 kernel).
constexpr int64_t kDirectMaxDepth = 1152;

// Whether the direct kernels run this f32 convolution; cin is the input-channel count of the role (O for the data
// gradient), and the data gradient needs stride 1.
bool use_direct(const Geom& g, int64_t cin, bool grad_input) {
  const int64_t taps = g.KH * g.KW;
  return conv::direct_available() && g.groups == 1 && taps > 1 &&
         taps <= conv::kDirectMaxTaps && cin * taps <= kDirectMaxDepth && (!grad_input || (g.sh == 1 && g.sw == 1));
}

conv::DirectShape direct_shape(const Geom& g) {
  return {g.N, g.C, g.H, g.W, g.O, g.Ho, g.Wo, g.KH, g.KW, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw};
}

// The data gradient of a stride-1 convolution is a convolution of gy with the flipped, transposed kernel, padded
// so that gx[h] reads gy[h + ph - i*dh]: top/left padding (K-1)*d - p.
conv::DirectShape direct_grad_input_shape(const Geom& g) {
  return {g.N, g.O, g.Ho, g.Wo, g.C, g.H, g.W, g.KH, g.KW, 1, 1, (g.KH - 1) * g.dh - g.ph, (g.KW - 1) * g.dw - g.pw,
          g.dh, g.dw};
}

// Whether threads should take whole (image, group) products rather than share each one.
bool across_items(int64_t items, int64_t macs_per_item) {
  const int64_t nth = pool_threads();
  return items > 1 && nth > 1 && (items >= nth || macs_per_item < kSmallProduct);
}

// Runs run(item, col, inner_parallel) for every item: one item per thread with that thread's slice of the
// scratch `cols` (slice elements each) when `across`, else one after another with the GEMM and im2col
// splitting each item. `cols` may be null (pointwise convs need no im2col buffer).
template <class T, class Run>
void for_items(int64_t items, bool across, T* cols, int64_t slice, const Run& run) {
  if (across) {
    parallel_items(items, [&](int64_t item, int worker) {
      run(item, cols ? cols + worker * slice : nullptr, false);
    }, true);
  } else {
    for (int64_t item = 0; item < items; ++item) run(item, cols, true);
  }
}

// A fused elementwise epilogue (bias, batch-norm scale and shift, activation, residual add): the program sees
// inputs [y, extra inputs...] and writes the step's outputs, over [N*O*Ho, Wo] viewed rows. It runs on each
// image's (or image-and-group's) outputs as soon as they are complete, while they are still in cache, so the
// separate elementwise kernel's read and write of the whole tensor are gone.
//
// The evaluator walks rows of its output's last dimension. When every operand either spans both spatial
// dimensions or broadcasts over both (a [O, 1, 1] scale), they are merged, so rows are whole Ho*Wo planes
// rather than Wo-element image rows (8 to 32 floats in small CNNs, where per-row work would dominate).
struct ConvEpilogue {
  KernelArgs args;  // inputs [y, extra...], outputs: the step's outputs
  std::vector<Tensor> in, out;
  const int64_t* code = nullptr;
  int n_code = 0;
  int64_t rows_per_channel = 0;  // rows of the evaluator's view per output channel: 1 (merged) or Ho

  void prepare(const KernelArgs& a, const Tensor& y) {
    in.assign(1, y);
    for (int k = 2; k < a.n_in; ++k) in.push_back(a.in[k]);
    out.assign(a.out, a.out + a.n_out);
    const int64_t Ho = y.shape[2], Wo = y.shape[3];
    bool mergeable = true;
    for (const std::vector<Tensor>* list : {&in, &out})
      for (const Tensor& t : *list) {
        const int64_t h = t.ndim >= 2 ? t.shape[t.ndim - 2] : 1, w = t.ndim >= 1 ? t.shape[t.ndim - 1] : 1;
        mergeable = mergeable && ((h == Ho && w == Wo) || (h == 1 && w == 1));
      }
    if (mergeable) {
      for (std::vector<Tensor>* list : {&in, &out})
        for (Tensor& t : *list)
          if (t.ndim >= 2) {
            t.shape[t.ndim - 2] *= t.shape[t.ndim - 1];
            --t.ndim;
          }
    }
    rows_per_channel = mergeable ? 1 : Ho;
    args = a;
    args.in = in.data();
    args.n_in = static_cast<int>(in.size());
    args.out = out.data();
  }

  // Runs the program over output channels [c0, c1) of the whole batch's channel list (n*O + o).
  void run(int64_t c0, int64_t c1, bool parallel) const {
    const Tensor& y = args.out[0];
    ew_run_window(args, code, n_code, args.floats, args.n_floats, c0 * rows_per_channel, c1 * rows_per_channel, 0,
                  y.shape[y.ndim - 1], parallel);
  }
};

void image_done(void* ctx, int64_t n, bool parallel) {
  const ConvEpilogue& e = *static_cast<const ConvEpilogue*>(ctx);
  const int64_t O = e.in[0].shape[1];
  e.run(n * O, (n + 1) * O, parallel);
}

// kBf16: "conv2d_bf16", the GEMM path in bf16 arithmetic (gemm_bf16.h): the weight is A, rounded per call (a
// conv's weight is small next to its im2col matrix), the im2col matrix B; never the direct kernels.
template <class T, bool kBf16 = false>
void conv_forward(const KernelArgs& a) {
  const Tensor &X = a.in[0], &Wt = a.in[1], &Y = a.out[0];
  KernelArgs geometry = a;
  geometry.n_ints = std::min(a.n_ints, 7);
  const Geom g = conv::make_geom(geometry, X, Wt, Y);
  const int64_t K = g.K(), P = g.P(), items = g.N * g.groups;
  if (Y.numel() == 0) return;
  ConvEpilogue ep;
  const ConvEpilogue* epilogue = nullptr;
  if (a.n_ints > 7) ep.n_code = static_cast<int>(a.ints[7]);
  kernel_check(ep.n_code >= 0 && a.n_ints == (a.n_ints > 7 ? 8 : 7) + ep.n_code, "conv2d epilogue program length");
  if (ep.n_code > 0) {
    ep.code = a.ints + 8;
    ep.prepare(a, Y);
    ew_validate(ep.args, ep.code, ep.n_code, a.n_floats);
    epilogue = &ep;
  }
  if constexpr (std::is_same_v<T, float> && !kBf16) {
    if (use_direct(g, g.C, false)) {
      const conv::DirectShape d = direct_shape(g);
      float* buf = conv::scratch<float>(conv::direct_conv_scratch(d, pool_threads()));
      conv::direct_conv(d, X.ptr<float>(), Wt.ptr<float>(), false, Y.ptr<float>(), buf,
                        epilogue ? &image_done : nullptr, &ep);
      return;
    }
  }
  const bool pointwise = g.pointwise();
  const bool across = across_items(items, g.Og() * K * P);
  const int64_t slices = across ? pool_threads() : 1;
  T* const cols = pointwise ? nullptr : conv::scratch<T>(static_cast<size_t>(slices * K * P));
  const T* x = X.ptr<T>();
  const T* w = Wt.ptr<T>();
  T* y = Y.ptr<T>();
  auto run = [&](int64_t item, T* col, bool inner_parallel) {
    const int64_t n = item / g.groups, gi = item % g.groups;
    const T* xg = x + (n * g.C + gi * g.Cg()) * g.H * g.W;
    const T* b = xg;
    if (!pointwise) {
      conv::im2col(xg, g, col, inner_parallel);
      b = col;
    }
    if constexpr (kBf16)
      gemm_bf16(false, g.Og(), P, K, w + gi * g.Og() * K, K, b, P, y + (n * g.O + gi * g.Og()) * P, P);
    else
      gemm<T>(false, false, g.Og(), P, K, T(1), w + gi * g.Og() * K, K, b, P, T(0), y + (n * g.O + gi * g.Og()) * P, P);
    if (epilogue) epilogue->run(n * g.O + gi * g.Og(), n * g.O + (gi + 1) * g.Og(), inner_parallel);
  };
  for_items(items, across, cols, K * P, run);
}

template <class T>
void conv_grad_input(const KernelArgs& a) {
  const Tensor &GY = a.in[0], &Wt = a.in[1], &GX = a.out[0];
  const Geom g = conv::make_geom(a, GX, Wt, GY);
  const int64_t K = g.K(), P = g.P(), items = g.N * g.groups, plane = g.Cg() * g.H * g.W;
  if (GX.numel() == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (use_direct(g, g.O, true)) {
      const conv::DirectShape d = direct_grad_input_shape(g);
      float* buf = conv::scratch<float>(conv::direct_conv_scratch(d, pool_threads()));
      conv::direct_conv(d, GY.ptr<float>(), Wt.ptr<float>(), true, GX.ptr<float>(), buf);
      return;
    }
  }
  const bool pointwise = g.pointwise();
  const bool across = across_items(items, g.Og() * K * P);
  const int64_t slices = across ? pool_threads() : 1;
  T* const cols = pointwise ? nullptr : conv::scratch<T>(static_cast<size_t>(slices * K * P));
  const T* gy = GY.ptr<T>();
  const T* w = Wt.ptr<T>();
  T* gx = GX.ptr<T>();
  auto run = [&](int64_t item, T* col, bool inner_parallel) {
    const int64_t n = item / g.groups, gi = item % g.groups;
    const T* gyg = gy + (n * g.O + gi * g.Og()) * P;
    const T* wg = w + gi * g.Og() * K;
    T* gxg = gx + (n * g.C + gi * g.Cg()) * g.H * g.W;
    if (pointwise) {
      gemm<T>(true, false, K, P, g.Og(), T(1), wg, K, gyg, P, T(0), gxg, P);
      return;
    }
    gemm<T>(true, false, K, P, g.Og(), T(1), wg, K, gyg, P, T(0), col, P);
    std::fill(gxg, gxg + plane, T(0));
    conv::col2im(col, g, gxg, inner_parallel);
  };
  for_items(items, across, cols, K * P, run);
}

template <class T>
void conv_grad_weight(const KernelArgs& a) {
  const Tensor &X = a.in[0], &GY = a.in[1], &GW = a.out[0];
  const Geom g = conv::make_geom(a, X, GW, GY);
  const int64_t K = g.K(), P = g.P(), total = GW.numel();
  T* gw = GW.ptr<T>();
  if (total == 0) return;
  if (g.N == 0 || P == 0) {
    std::fill(gw, gw + total, T(0));
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (use_direct(g, g.C, false)) {
      const conv::DirectShape d = direct_shape(g);
      float* buf = conv::scratch<float>(conv::direct_wgrad_scratch(d, pool_threads()));
      conv::direct_wgrad(d, X.ptr<float>(), GY.ptr<float>(), GW.ptr<float>(), buf);
      return;
    }
  }
  const bool pointwise = g.pointwise();
  // Threads split the batch into chunks, each summing its images into its own partial gw; the partials are
  // then added in chunk order.
  const bool across = across_items(g.N * g.groups, g.Og() * K * P);
  const int64_t chunks = across ? std::min(g.N, kMaxChunks) : 1;
  const int64_t slices = across ? pool_threads() : 1;
  const int64_t col_size = pointwise ? 0 : slices * K * P;
  const int64_t part_size = chunks > 1 ? chunks * total : 0;
  T* const buf = conv::scratch<T>(static_cast<size_t>(col_size + part_size));
  T* const parts = buf + col_size;
  const T* x = X.ptr<T>();
  const T* gy = GY.ptr<T>();
  auto run = [&](int64_t item, T* col, bool inner_parallel) {
    const int64_t ch = item / g.groups, gi = item % g.groups;
    T* dst = (chunks > 1 ? parts + ch * total : gw) + gi * g.Og() * K;
    const int64_t n0 = g.N * ch / chunks, n1 = g.N * (ch + 1) / chunks;
    for (int64_t n = n0; n < n1; ++n) {
      const T* xg = x + (n * g.C + gi * g.Cg()) * g.H * g.W;
      const T* b = xg;
      if (!pointwise) {
        conv::im2col(xg, g, col, inner_parallel);
        b = col;
      }
      gemm<T>(false, true, g.Og(), K, P, T(1), gy + (n * g.O + gi * g.Og()) * P, P, b, P, n == n0 ? T(0) : T(1), dst,
              K);
    }
  };
  const int64_t items = chunks * g.groups;
  for_items(items, across, pointwise ? static_cast<T*>(nullptr) : buf, K * P, run);
  if (chunks > 1) {
    parallel_for(total, 1024, [&](int64_t lo_, int64_t hi_, int) {
      for (int64_t e = lo_; e < hi_; ++e) {
        T s = parts[e];
        for (int64_t ch = 1; ch < chunks; ++ch) s += parts[ch * total + e];
        gw[e] = s;
      }
    }, element_threads(static_cast<double>(total * chunks)));
  }
}

void conv2d_kernel(const KernelArgs& a) {
  kernel_check(a.n_ints >= 7 && (a.n_ints > 7 || (a.n_in == 2 && a.n_out == 1)) && a.n_in >= 2 && a.n_out >= 1,
               "conv2d operands");
  conv::dispatch_float(a.out[0].dtype, "conv2d", [&](auto t) { conv_forward<decltype(t)>(a); });
}

void conv2d_bf16_kernel(const KernelArgs& a) {
  kernel_check(a.n_ints >= 7 && (a.n_ints > 7 || (a.n_in == 2 && a.n_out == 1)) && a.n_in >= 2 && a.n_out >= 1,
               "conv2d operands");
  kernel_check(a.out[0].dtype == DType::F32, "conv2d_bf16 takes f32 operands");
  conv_forward<float, true>(a);
}

// Row p of one image's patch matrix in u8, for the int8 GEMM (which wants the activations as rows of A): the
// K = C*KH*KW taps of output position p = oh*Wo + ow, `pad` (the zero point: a real 0) outside the image.
void im2row_u8(const uint8_t* x, const Geom& geom, uint8_t pad, uint8_t* rows, int64_t ld, bool parallel) {
  parallel_for(geom.P(), 64, [&](int64_t p0, int64_t p1, int) {
    // A local copy: the byte stores below may alias anything reached through a pointer, so fields read through
    // one would be reloaded at every byte.
    const Geom g = geom;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t oh = p / g.Wo, ow = p % g.Wo;
      const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
      uint8_t* d = rows + p * ld;
      if (g.dw == 1 && h0 >= 0 && h0 + (g.KH - 1) * g.dh < g.H && w0 >= 0 && w0 + g.KW <= g.W) {
        // Every tap inside the image: each (channel, kernel row) is KW contiguous bytes.
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t i = 0; i < g.KH; ++i) {
            const uint8_t* src = x + (c * g.H + h0 + i * g.dh) * g.W + w0;
            for (int64_t j = 0; j < g.KW; ++j) *d++ = src[j];  // a few bytes: a call to memcpy costs more
          }
        continue;
      }
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t i = 0; i < g.KH; ++i) {
          const int64_t h = h0 + i * g.dh;
          const uint8_t* src = x + (c * g.H + h) * g.W;
          const bool row_in = h >= 0 && h < g.H;
          for (int64_t j = 0; j < g.KW; ++j) {
            const int64_t w = w0 + j * g.dw;
            *d++ = row_in && w >= 0 && w < g.W ? src[w] : pad;
          }
        }
    }
  }, parallel ? element_threads(static_cast<double>(geom.P() * geom.K())) : Threads{1});
}

// "conv2d_int8": ints = [geometry (7), activation zero point (-1: dynamic), activation scale (f64 bits), n_code,
// program...]; in = [x f32, w f32 [O, C, KH, KW], epilogue inputs...], groups 1. The weight is read only as
// its int8 packed copy (KernelArgs::packed_b; quantized here per call when the plan does not pack). The whole
// input is quantized to u8 once; per image, its patch rows times the weights give the outputs of every
// channel, stored channels-first, and the epilogue runs on the image (see ConvEpilogue).
void conv2d_int8_kernel(const KernelArgs& a) {
  kernel_check(a.n_ints >= 10 && a.n_in >= 2 && a.n_out >= 1, "conv2d_int8 operands");
  const Tensor &X = a.in[0], &Wt = a.in[1], &Y = a.out[0];
  kernel_check(X.dtype == DType::F32 && Wt.dtype == DType::F32 && Y.dtype == DType::F32, "conv2d_int8 dtypes");
  KernelArgs geometry = a;
  geometry.n_ints = 7;
  const Geom g = conv::make_geom(geometry, X, Wt, Y);
  kernel_check(g.groups == 1, "conv2d_int8 groups");
  ConvEpilogue ep;
  ep.n_code = static_cast<int>(a.ints[9]);
  kernel_check(ep.n_code >= 0 && a.n_ints == 10 + ep.n_code, "conv2d_int8 epilogue program length");
  if (ep.n_code > 0) {
    ep.code = a.ints + 10;
    ep.prepare(a, Y);
    ew_validate(ep.args, ep.code, ep.n_code, a.n_floats);
  }
  if (Y.numel() == 0) return;
  const int64_t K = g.K(), P = g.P(), lda = qgemm_row_bytes(K), plane = g.C * g.H * g.W;
  std::unique_ptr<QgemmPackedB> local;
  const QgemmPackedB* packed = static_cast<const QgemmPackedB*>(a.packed_b);
  if (!packed) {
    std::vector<int8_t> q(static_cast<size_t>(K * g.O));
    std::vector<float> scale(static_cast<size_t>(g.O));
    quantize_weights_s8(Wt.ptr<float>(), true, K, g.O, q.data(), scale.data());
    local = std::make_unique<QgemmPackedB>(qgemm_pack_b(q.data(), K, g.O, scale.data()));
    packed = local.get();
  }
  kernel_check(packed->K == K && packed->N == g.O, "conv2d_int8 packed weight shape");
  float scale;
  int32_t zp;
  step_activation_params(a.ints[7], a.ints[8], X.ptr<float>(), X.numel(), &scale, &zp);
  // Images go to threads whole (each with its own patch rows) when there are enough of them, as conv_forward's
  // products do; otherwise one after another with im2row and the GEMM splitting each.
  const bool across = across_items(g.N, g.O * K * P);
  const int64_t slices = across ? pool_threads() : 1;
  uint8_t* xq = conv::scratch<uint8_t>(static_cast<size_t>(g.N * plane + slices * P * lda));
  quantize_u8(X.ptr<float>(), g.N * g.C, g.H * g.W, g.H * g.W, scale, zp, xq, g.H * g.W);
  for_items(g.N, across, xq + g.N * plane, P * lda, [&](int64_t n, uint8_t* rows, bool inner_parallel) {
    im2row_u8(xq + n * plane, g, static_cast<uint8_t>(zp), rows, lda, inner_parallel);
    qgemm(P, rows, lda, scale, zp, *packed, Y.ptr<float>() + n * g.O * P, 1, P);
    if (ep.n_code > 0) ep.run(n * g.O, (n + 1) * g.O, inner_parallel);
  });
}

void conv2d_grad_input_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 1, "conv2d_grad_input operands");
  conv::dispatch_float(a.out[0].dtype, "conv2d_grad_input", [&](auto t) { conv_grad_input<decltype(t)>(a); });
}

void conv2d_grad_weight_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 1, "conv2d_grad_weight operands");
  conv::dispatch_float(a.out[0].dtype, "conv2d_grad_weight", [&](auto t) { conv_grad_weight<decltype(t)>(a); });
}

}  // namespace

DLC_REGISTER_KERNEL("conv2d", Device::CPU, conv2d_kernel);
DLC_REGISTER_KERNEL("conv2d_bf16", Device::CPU, conv2d_bf16_kernel);
DLC_REGISTER_KERNEL("conv2d_int8", Device::CPU, conv2d_int8_kernel);
DLC_REGISTER_KERNEL("conv2d_grad_input", Device::CPU, conv2d_grad_input_kernel);
DLC_REGISTER_KERNEL("conv2d_grad_weight", Device::CPU, conv2d_grad_weight_kernel);

}  // namespace dlc
