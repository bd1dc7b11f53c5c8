// "conv2d_nchwc": a 2-D convolution whose output is blocked (nchwc.h), with conv2d's fused epilogue.
//
//   in  = [x, w [O, C/groups, KH, KW], extra epilogue inputs...]
//         x blocked [N, Cb, H, W, B] (the block of y), or plain [N, C, H, W] (a first layer reading NCHW)
//   out = [y [N, ceil(O/B), Ho, Wo, B], epilogue outputs...]
//   ints = [sh, sw, ph, pw, dh, dw, groups] then optionally [n_code, program...] as in "conv2d" (conv_cpu.cpp)
//
// The filter is reordered into vectors of B output channels (zero past O and where a channel's group does not
// read an input channel): once per plan when the plan packs constant weights (nchwc_pack_filter, through
// runtime/packed_weights.h, KernelArgs::packed_b), else on every call into scratch memory. Depthwise convolutions (groups = C = O, blocked input) keep one vector per tap and
// block: output block b reads input block b lane by lane. Rows of (image, output block, output row) split across
// threads; each output element is computed by one thread in an order fixed by the shapes.
#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "kernels/conv/conv.h"
#include "kernels/conv/nchwc.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/gemm/gemm.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

// The filter in the kernels' order (nchwc.h): per output block, chunks of input channels that are consecutive in
// memory, each [taps][channels][B output channels]; zero past O and where a channel's group does not read the input
// channel. Depthwise: [blocks][taps][B].
template <class T>
struct Filter {
  std::vector<int64_t> first, x, n, w;  // chunk_first (Ob + 1), chunk_x, chunk_n, chunk_w
  T* data = nullptr;
  std::vector<T> own;  // data's storage when the filter is packed ahead (else data is scratch memory)
  bool depthwise = false, blocked = false;
  int64_t plane = 0, bytes = 0;
};

// Storage for n filter values: the filter's own (packed ahead) or this thread's scratch.
template <class T>
T* filter_storage(Filter<T>& f, int64_t n, bool own) {
  if (own) {
    f.own.assign(static_cast<size_t>(n), T(0));
    f.bytes = static_cast<int64_t>(n * sizeof(T));
    return f.own.data();
  }
  T* p = conv::scratch<T>(static_cast<size_t>(n));
  std::fill(p, p + n, T(0));
  return p;
}

template <class T>
void reorder_filter(const Tensor& Wt, int64_t groups, int64_t B, bool blocked, bool depthwise, int64_t plane,
                    Filter<T>& f, bool own) {
  f.depthwise = depthwise;
  f.blocked = blocked;
  f.plane = plane;
  const int64_t O = Wt.shape[0], Cg = Wt.shape[1], taps = Wt.shape[2] * Wt.shape[3], Og = O / groups;
  const int64_t Ob = conv::ceil_div(O, B);
  const T* w = Wt.ptr<T>();
  if (depthwise) {
    f.data = filter_storage(f, Ob * taps * B, own);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t t = 0; t < taps; ++t) f.data[((o / B) * taps + t) * B + o % B] = w[o * taps + t];
    return;
  }
  f.first.assign(1, 0);
  int64_t size = 0;
  for (int64_t ob = 0; ob < Ob; ++ob) {
    const int64_t o0 = ob * B, o1 = std::min(O, o0 + B);
    const int64_t c_lo = o0 / Og * Cg, c_hi = ((o1 - 1) / Og + 1) * Cg;
    for (int64_t c0 = c_lo; c0 < c_hi;) {
      const int64_t c1 = blocked ? std::min(c_hi, (c0 / B + 1) * B) : c_hi;
      f.x.push_back(blocked ? (c0 / B) * plane * B + c0 % B : c0 * plane);
      f.n.push_back(c1 - c0);
      f.w.push_back(size);
      size += taps * (c1 - c0) * B;
      c0 = c1;
    }
    f.first.push_back(static_cast<int64_t>(f.x.size()));
  }
  f.data = filter_storage(f, size, own);
  for (int64_t ob = 0; ob < Ob; ++ob)
    for (int64_t k = f.first[ob]; k < f.first[ob + 1]; ++k) {
      // The chunk's first channel, from its offset in the image.
      const int64_t c0 = blocked ? f.x[k] / (plane * B) * B + f.x[k] % (plane * B) : f.x[k] / plane;
      for (int64_t l = 0; l < B && ob * B + l < O; ++l) {
        const int64_t o = ob * B + l, g = o / Og;
        for (int64_t cc = 0; cc < f.n[k]; ++cc) {
          const int64_t ch = c0 + cc;
          if (ch / Cg != g) continue;
          for (int64_t t = 0; t < taps; ++t)
            f.data[f.w[k] + (t * f.n[k] + cc) * B + l] = w[(o * Cg + ch - g * Cg) * taps + t];
        }
      }
    }
}

template <class T>
void run_rows(const conv::NchwcConv<T>& c, int64_t B, int64_t rows, double macs) {
  const conv::NchwcKernels k = conv::nchwc_kernels(B);
  kernel_check(k.conv_f32 != nullptr, "conv2d_nchwc block size (8 or 16)");
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1, int) {
    if constexpr (sizeof(T) == 4)
      k.conv_f32(c, r0, r1);
    else
      k.conv_f64(c, r0, r1);
  }, threads_for(macs, kGemmMacsPerThread));
}

template <class T>
void conv_nchwc(const KernelArgs& a) {
  const Tensor &X = a.in[0], &Wt = a.in[1], &Y = a.out[0];
  kernel_check(Wt.ndim == 4 && Y.ndim == 5 && (X.ndim == 4 || X.ndim == 5), "conv2d_nchwc ranks");
  kernel_check(X.dtype == Wt.dtype && X.dtype == Y.dtype, "conv2d_nchwc dtypes");
  const int64_t* v = a.ints;
  const int64_t groups = v[6], B = Y.shape[4], O = Wt.shape[0], KH = Wt.shape[2], KW = Wt.shape[3];
  const bool blocked = X.ndim == 5;
  const int64_t N = X.shape[0], H = X.shape[2], W = X.shape[3];
  const int64_t C = Wt.shape[1] * groups;
  kernel_check(groups >= 1 && O % groups == 0 && (B == 8 || B == 16), "conv2d_nchwc groups / block");
  kernel_check(blocked ? (X.shape[4] == B && X.shape[1] == conv::ceil_div(C, B)) : X.shape[1] == C,
               "conv2d_nchwc input channels");
  kernel_check(Y.shape[0] == N && Y.shape[1] == conv::ceil_div(O, B), "conv2d_nchwc output shape");
  kernel_check(v[0] >= 1 && v[1] >= 1 && v[4] >= 1 && v[5] >= 1, "conv2d_nchwc stride/dilation");
  if (Y.numel() == 0) return;
  int n_code = a.n_ints > 7 ? static_cast<int>(a.ints[7]) : 0;
  kernel_check(n_code >= 0 && a.n_ints == (a.n_ints > 7 ? 8 : 7) + n_code, "conv2d_nchwc epilogue program length");
  const int64_t* code = n_code > 0 ? a.ints + 8 : nullptr;
  kernel_check(code != nullptr || (a.n_in == 2 && a.n_out == 1), "conv2d_nchwc operands");

  const bool depthwise = blocked && groups == C && O == C;
  // The plan's packed copy when it matches this call's layout (packed for these shapes), else one made now.
  const auto* packed = static_cast<const Filter<T>*>(a.packed_b);
  Filter<T> local;
  if (packed == nullptr || packed->depthwise != depthwise || packed->blocked != blocked || packed->plane != H * W) {
    reorder_filter<T>(Wt, groups, B, blocked, depthwise, H * W, local, false);
    packed = &local;
  }
  const Filter<T>& f = *packed;

  conv::NchwcConv<T> c;
  c.x = X.ptr<T>();
  c.x_image = blocked ? X.shape[1] * H * W * B : C * H * W;
  c.ps = blocked ? B : 1;
  c.cs = blocked ? 1 : H * W;
  c.H = H;
  c.W = W;
  c.w = f.data;
  c.chunk_first = f.first.data();
  c.chunk_x = f.x.data();
  c.chunk_n = f.n.data();
  c.chunk_w = f.w.data();
  c.depthwise = depthwise;
  c.y = Y.ptr<T>();
  c.Ob = Y.shape[1];
  c.Ho = Y.shape[2];
  c.Wo = Y.shape[3];
  c.KH = KH;
  c.KW = KW;
  c.sh = v[0], c.sw = v[1], c.ph = v[2], c.pw = v[3], c.dh = v[4], c.dw = v[5];
  // A 1x1 stride-1 unpadded convolution: one row of H*W pixels per image and block, a GEMM's register tile.
  const bool flat = KH == 1 && KW == 1 && c.sh == 1 && c.sw == 1 && c.ph == 0 && c.pw == 0 && c.Ho == H && c.Wo == W;
  if (flat) {
    c.W = c.Wo = H * W;
    c.H = c.Ho = 1;
  }

  // The epilogue: program inputs [y, extra...], the step's outputs. Its operands' strides over y's dimensions.
  std::vector<Tensor> ew_in;
  std::vector<std::array<int64_t, 5>> strides;
  KernelArgs ew = a;
  bool in_tile = false, in_tile_layout = true;
  if (code != nullptr) {
    ew_in.assign(1, Y);
    for (int k = 2; k < a.n_in; ++k) ew_in.push_back(a.in[k]);
    ew.in = ew_in.data();
    ew.n_in = static_cast<int>(ew_in.size());
    ew_validate(ew, code, n_code, a.n_floats);
    for (int k = 0; k < a.n_out; ++k) kernel_check(a.out[k].numel() == Y.numel(), "conv2d_nchwc epilogue outputs");
    for (int k = 2; k < a.n_in; ++k) {
      const Tensor& t = a.in[k];
      std::array<int64_t, 5> s{};
      for (int d = 0; d < 5; ++d) {
        const int kd = d - (5 - t.ndim);
        if (kd >= 0 && t.shape[kd] != 1) {
          s[d] = 1;
          for (int e = kd + 1; e < t.ndim; ++e) s[d] *= t.shape[e];
        }
      }
      strides.push_back(s);
      // Flattened rows address pixel oh*Wo + ow through the column stride alone.
      in_tile_layout = in_tile_layout && (!flat || s[2] == Y.shape[3] * s[3]);
    }
    // The tile evaluator computes in T; a program computing in another type runs over the finished output.
    in_tile = in_tile_layout && code[0] == (sizeof(T) == 4 ? 0 : 1);
    if (in_tile) {
      c.code = code;
      c.imm = a.floats;
      c.args = &a;
      c.extra_strides = reinterpret_cast<const int64_t(*)[5]>(strides.data());
      for (int k = 1; k < a.n_out; ++k) c.write_y = c.write_y && a.out[k].data != Y.data;
    }
  }
  c.kb = !depthwise && groups == 1 && c.Ob % 2 == 0 ? 2 : 1;
  const int64_t rows = N * (c.Ob / c.kb) * c.Ho;
  const double macs = static_cast<double>(rows) * c.kb * c.Wo * KH * KW * B * (depthwise ? 1 : C / groups);
  run_rows<T>(c, B, rows, macs);
  if (code != nullptr && !in_tile)
    ew_run_window(ew, code, n_code, a.floats, a.n_floats, 0, Y.numel() / B, 0, B, true);
}

template <class T>
std::shared_ptr<const void> pack(const Tensor& X, const Tensor& Wt, const Tensor& Y, int64_t groups, size_t* bytes) {
  const int64_t B = Y.shape[4], C = Wt.shape[1] * groups, O = Wt.shape[0];
  const bool blocked = X.ndim == 5;
  auto f = std::make_shared<Filter<T>>();
  reorder_filter<T>(Wt, groups, B, blocked, blocked && groups == C && O == C, X.shape[2] * X.shape[3], *f, true);
  *bytes = static_cast<size_t>(f->bytes);
  return f;
}

}  // namespace

std::shared_ptr<const void> nchwc_pack_filter(const Tensor& x, const Tensor& w, const Tensor& y,
                                              const std::vector<int64_t>& ints, size_t* bytes) {
  *bytes = 0;
  if (ints.size() < 7 || w.ndim != 4 || y.ndim != 5 || (x.ndim != 4 && x.ndim != 5) || w.dtype != y.dtype ||
      ints[6] < 1 || (y.shape[4] != 8 && y.shape[4] != 16) || w.shape[0] % ints[6] != 0)
    return nullptr;
  if (w.dtype == DType::F32) return pack<float>(x, w, y, ints[6], bytes);
  if (w.dtype == DType::F64) return pack<double>(x, w, y, ints[6], bytes);
  return nullptr;
}

namespace {

void conv2d_nchwc_kernel(const KernelArgs& a) {
  kernel_check(a.n_ints >= 7 && a.n_in >= 2 && a.n_out >= 1, "conv2d_nchwc operands");
  conv::dispatch_float(a.out[0].dtype, "conv2d_nchwc", [&](auto t) { conv_nchwc<decltype(t)>(a); });
}

}  // namespace

DLC_REGISTER_KERNEL("conv2d_nchwc", Device::CPU, conv2d_nchwc_kernel);

}  // namespace dlc
