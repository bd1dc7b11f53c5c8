// The blocked-layout kernels, written once over GCC vector types and compiled per instruction set
// (nchwc_avx512.cpp, nchwc_avx2.cpp, nchwc_portable.cpp include this file; see nchwc.h for the layout).
// Internal linkage throughout, like elementwise_tile.h, whose evaluator this file runs as the epilogue: the
// copies built with different flags must never be merged by the linker.
//
// Convolution: each (image, output block, output row) is a row of work. Its register tile is R output pixels x
// B output channels (R vectors of B lanes); every input channel and tap adds one filter vector times one
// broadcast input value to each of the R accumulators. Pixels whose taps all fall inside the image take the
// wide unchecked tiles; the few border pixels take a one-pixel tile that checks each tap. The finished tile
// goes through the fused epilogue program (bias, batch-norm scale and shift, activation, residual add) while it
// is still in registers or L1, then is stored: the output is written once.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/conv/nchwc.h"
#include "kernels/elementwise/elementwise_tile.h"

namespace dlc::conv {
namespace {

// B lanes of T, loadable from any T-aligned address.
template <class T, int B>
struct VecOf {
  typedef T type __attribute__((vector_size(sizeof(T) * B), aligned(sizeof(T))));
};

// Pixels per register tile of kb output blocks: the accumulators fill the register file but for the kb filter
// vectors, a broadcast and a spare; at most 14 (then R * B <= kTile for the epilogue evaluator) or 12 for two
// blocks.
constexpr int tile_pixels(int regs, int vec_bytes, int lane_bytes, int kb = 1) {
  const int per = lane_bytes > vec_bytes ? lane_bytes / vec_bytes : 1;
  const int r = (regs - 2 - kb) / (per * kb), most = kb == 1 ? 14 : 12;
  return r < 1 ? 1 : (r > most ? most : r);
}

// The epilogue's operands for one row: where each extra input's values for a tile come from.
template <class T, int B, int RW>
struct EpilogueRow {
  const T* src[kEwMaxInputs];
  int64_t base[kEwMaxInputs];  // extra k's offset at this row's pixel 0
  int how[kEwMaxInputs];       // 0: read in place (y's layout), 1: a row-constant pattern in lanes, 2: gather
  alignas(64) T lanes[kEwMaxInputs][RW * B];
};

template <class T>
const int64_t* extra_strides(const NchwcConv<T>& c, int k) { return c.extra_strides[k - 1]; }

// Fills the per-row operand table (k = 1..: the program's extra inputs, args->in[k + 1]).
template <class T, int B, int RW>
void prepare_row(const NchwcConv<T>& c, EpilogueRow<T, B, RW>& e, int64_t n, int64_t ob, int64_t oh) {
  const KernelArgs& a = *c.args;
  for (int k = 1; k + 1 < a.n_in; ++k) {
    const Tensor& t = a.in[k + 1];
    const int64_t* s = extra_strides(c, k);
    e.base[k] = n * s[0] + ob * s[1] + oh * s[2];
    if (t.dtype == (sizeof(T) == 4 ? DType::F32 : DType::F64) && s[3] == B && s[4] == 1) {
      e.how[k] = 0;
      e.src[k] = static_cast<const T*>(t.data) + e.base[k];
    } else if (s[3] == 0) {
      e.how[k] = 1;
      for (int l = 0; l < B; ++l) load_any<T>(t, e.base[k] + l * s[4], 0, 1, &e.lanes[k][l]);
      for (int r = 1; r < RW; ++r) std::copy(e.lanes[k], e.lanes[k] + B, e.lanes[k] + r * B);
      e.src[k] = e.lanes[k];
    } else {
      e.how[k] = 2;
    }
  }
}

// Runs the program over the tile's R*B values in `vals` (y's values at row offset y_off + ow*B).
template <class T, int B, int RW>
void run_epilogue(const NchwcConv<T>& c, EpilogueRow<T, B, RW>& e, const T* vals, int64_t y_off, int64_t ow,
                  int R) {
  alignas(64) static thread_local T regs[kEwMaxRegs][kTile];
  const KernelArgs& a = *c.args;
  const T* src[kEwMaxInputs];
  src[0] = vals;
  for (int k = 1; k + 1 < a.n_in; ++k) {
    if (e.how[k] == 0) {
      src[k] = e.src[k] + ow * B;
    } else if (e.how[k] == 1) {
      src[k] = e.src[k];
    } else {
      const int64_t* s = extra_strides(c, k);
      for (int r = 0; r < R; ++r)
        for (int l = 0; l < B; ++l)
          load_any<T>(a.in[k + 1], e.base[k] + (ow + r) * s[3] + l * s[4], 0, 1, &e.lanes[k][r * B + l]);
      src[k] = e.lanes[k];
    }
  }
  TileArgs<T> t{c.code + 3, static_cast<int>(c.code[2]), c.imm, src, regs, R * B, &a, y_off + ow * B,
                y_off + ow * B};
  run_tile<T>(t);
}

// Accumulates R output pixels from ow0 of row oh, for the KB output blocks from ob, of the image at xi into
// out[q * R + r]. Step: elements between the input pixels of neighbouring outputs, when known at compile time
// (stride 1: B blocked, 1 plain), else 0 and read from c. Checked: some of the R pixels have taps outside the
// image (they multiply zeros). The innermost loop runs over the channels of one chunk: KB filter vectors, then
// for each pixel one broadcast input and KB multiply-adds. With KB = 2 (groups = 1: every block has the same
// chunks) each broadcast serves two blocks, so loads per multiply-add halve.
template <class T, int B, int KB, int R, bool Checked, int Step>
__attribute__((always_inline)) inline void conv_tile(const NchwcConv<T>& c, const T* xi, int64_t ob, int64_t oh,
                                                     int64_t ow0, typename VecOf<T, B>::type* out) {
  using V = typename VecOf<T, B>::type;
  V acc[KB][R];
#pragma GCC unroll 32
  for (int q = 0; q < KB; ++q)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[q][r] = V{};
  const int64_t step = Step > 0 ? Step : c.sw * c.ps;
  bool inside[R];
  const int64_t chunks = c.chunk_first[ob + 1] - c.chunk_first[ob];
  for (int64_t kk = 0; kk < chunks; ++kk) {
    const int64_t k = c.chunk_first[ob] + kk, n = c.chunk_n[k], cs = c.cs;
    const T* xc = xi + c.chunk_x[k];
    const V* wk[KB];
    for (int q = 0; q < KB; ++q) wk[q] = reinterpret_cast<const V*>(c.w + c.chunk_w[c.chunk_first[ob + q] + kk]);
    for (int64_t i = 0; i < c.KH; ++i) {
      const int64_t ih = oh * c.sh - c.ph + i * c.dh;
      if (ih < 0 || ih >= c.H) {
        // Taps in the padding multiply zeros, as the NCHW kernels do: a NaN or infinite weight still shows.
        for (int q = 0; q < KB; ++q) {
          const V* wp = wk[q] + i * c.KW * n;
          for (int64_t e = 0; e < c.KW * n; ++e) {
            const V z = wp[e] * T(0);
            for (int r = 0; r < R; ++r) acc[q][r] += z;
          }
        }
        continue;
      }
      for (int64_t j = 0; j < c.KW; ++j) {
        const int64_t iw0 = ow0 * c.sw - c.pw + j * c.dw;
        const T* xp = xc + (ih * c.W + iw0) * c.ps;
        const int64_t woff = (i * c.KW + j) * n;
        if constexpr (Checked) {
          for (int r = 0; r < R; ++r) inside[r] = iw0 + r * c.sw >= 0 && iw0 + r * c.sw < c.W;
          for (int64_t cc = 0; cc < n; ++cc, xp += cs)
            for (int q = 0; q < KB; ++q) {
              const V wv = wk[q][woff + cc];
              for (int r = 0; r < R; ++r) acc[q][r] += inside[r] ? wv * xp[r * step] : wv * T(0);
            }
        } else {
          for (int64_t cc = 0; cc < n; ++cc, xp += cs) {
            V wv[KB];
#pragma GCC unroll 4
            for (int q = 0; q < KB; ++q) wv[q] = wk[q][woff + cc];
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) {
              const T v = xp[r * step];
#pragma GCC unroll 4
              for (int q = 0; q < KB; ++q) acc[q][r] += wv[q] * v;
            }
          }
        }
      }
    }
  }
#pragma GCC unroll 32
  for (int q = 0; q < KB; ++q)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) out[q * R + r] = acc[q][r];
}

// A depthwise tile: output block ob reads input block ob lane by lane, one vector load per tap and pixel.
template <class T, int B, int R, bool Checked, int Step>
__attribute__((always_inline)) inline void depthwise_tile(const NchwcConv<T>& c, const T* xi, int64_t ob, int64_t oh,
                                                          int64_t ow0, typename VecOf<T, B>::type* out) {
  using V = typename VecOf<T, B>::type;
  V acc[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = V{};
  const int64_t step = Step > 0 ? Step : c.sw * B;
  const T* xc = xi + ob * c.H * c.W * B;
  const V* wb = reinterpret_cast<const V*>(c.w) + ob * c.KH * c.KW;
  for (int64_t i = 0; i < c.KH; ++i) {
    const int64_t ih = oh * c.sh - c.ph + i * c.dh;
    const bool row_inside = ih >= 0 && ih < c.H;
    for (int64_t j = 0; j < c.KW; ++j) {
      const int64_t iw0 = ow0 * c.sw - c.pw + j * c.dw;
      const V wv = wb[i * c.KW + j];
      if (!row_inside) {  // padding: zeros times the weight, as in conv_tile
        const V z = wv * T(0);
        for (int r = 0; r < R; ++r) acc[r] += z;
        continue;
      }
      const T* xp = xc + (ih * c.W + iw0) * B;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        if (Checked && (iw0 + r * c.sw < 0 || iw0 + r * c.sw >= c.W))
          acc[r] += wv * T(0);
        else
          acc[r] += wv * *reinterpret_cast<const V*>(xp + r * step);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) out[r] = acc[r];
}

// One tile of R pixels for KB output blocks from ob: computed, then each block's epilogue and store.
template <class T, int B, int RW, int KB, int R, bool Checked, bool Depthwise, int Step>
void conv_pixels(const NchwcConv<T>& c, EpilogueRow<T, B, RW>* e, const T* xi, int64_t ob, int64_t oh, int64_t ow,
                 int64_t y_off) {
  using V = typename VecOf<T, B>::type;
  const int64_t block_stride = c.Ho * c.Wo * B;  // between the rows (n, ob, oh) and (n, ob + 1, oh) of y
  alignas(64) V vals[KB * R];
  V* dst = c.code == nullptr && KB == 1 ? reinterpret_cast<V*>(c.y + y_off + ow * B) : vals;
  if constexpr (Depthwise)
    depthwise_tile<T, B, R, Checked, Step>(c, xi, ob, oh, ow, dst);
  else
    conv_tile<T, B, KB, R, Checked, Step>(c, xi, ob, oh, ow, dst);
  if (dst != vals) return;
  for (int q = 0; q < KB; ++q) {
    const int64_t off = y_off + q * block_stride;
    if (c.code == nullptr || c.write_y) {
      V* y = reinterpret_cast<V*>(c.y + off + ow * B);
      for (int r = 0; r < R; ++r) y[r] = vals[q * R + r];
    }
    if (c.code != nullptr) run_epilogue<T, B, RW>(c, e[q], reinterpret_cast<const T*>(vals + q * R), off, ow, R);
  }
}

// The output rows [r0, r1) of KB blocks each: row = (n, group of KB output blocks, oh).
template <class T, int B, int RW, int KB, bool Depthwise, int Step>
void conv_rows_as(const NchwcConv<T>& c, int64_t r0, int64_t r1) {
  // Output columns whose every tap lies inside the image: [lo, hi). The few outside take one-pixel checked
  // tiles; the rest wide unchecked ones, then narrower ones for the remainder.
  const int64_t lo = std::min(c.Wo, (c.pw + c.sw - 1) / c.sw);
  const int64_t last = c.W - 1 + c.pw - (c.KW - 1) * c.dw;
  const int64_t hi = std::max(lo, std::min(c.Wo, last < 0 ? int64_t(0) : last / c.sw + 1));
  const int64_t groups = c.Ob / KB;
  EpilogueRow<T, B, RW> e[KB];
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t oh = row % c.Ho, ob = row / c.Ho % groups * KB, n = row / (c.Ho * groups);
    const T* xi = c.x + n * c.x_image;
    const int64_t y_off = ((n * c.Ob + ob) * c.Ho + oh) * c.Wo * B;
    if (c.code != nullptr)
      for (int q = 0; q < KB; ++q) prepare_row<T, B, RW>(c, e[q], n, ob + q, oh);
    int64_t ow = 0;
    constexpr int W8 = RW > 8 ? 8 : RW, W4 = RW > 4 ? 4 : RW, W2 = RW > 2 ? 2 : RW;
    for (; ow < lo; ++ow) conv_pixels<T, B, RW, KB, 1, true, Depthwise, Step>(c, e, xi, ob, oh, ow, y_off);
    for (; ow + RW <= hi; ow += RW) conv_pixels<T, B, RW, KB, RW, false, Depthwise, Step>(c, e, xi, ob, oh, ow, y_off);
    for (; ow + W8 <= hi; ow += W8) conv_pixels<T, B, RW, KB, W8, false, Depthwise, Step>(c, e, xi, ob, oh, ow, y_off);
    for (; ow + W4 <= hi; ow += W4) conv_pixels<T, B, RW, KB, W4, false, Depthwise, Step>(c, e, xi, ob, oh, ow, y_off);
    for (; ow + W2 <= hi; ow += W2) conv_pixels<T, B, RW, KB, W2, false, Depthwise, Step>(c, e, xi, ob, oh, ow, y_off);
    for (; ow < hi; ++ow) conv_pixels<T, B, RW, KB, 1, false, Depthwise, Step>(c, e, xi, ob, oh, ow, y_off);
    for (; ow < c.Wo; ++ow) conv_pixels<T, B, RW, KB, 1, true, Depthwise, Step>(c, e, xi, ob, oh, ow, y_off);
  }
}

// Picks the variant: depthwise or not, one or two output blocks per tile (c.kb), and the pixel step known at
// compile time for stride 1. RW pixels per tile for one block, RW2 for two.
template <class T, int B, int RW, int RW2>
void conv_rows(const NchwcConv<T>& c, int64_t r0, int64_t r1) {
  if (c.depthwise) {
    if (c.sw == 1)
      conv_rows_as<T, B, RW, 1, true, B>(c, r0, r1);
    else
      conv_rows_as<T, B, RW, 1, true, 0>(c, r0, r1);
  } else if (c.kb == 2) {
    if (c.sw == 1 && c.ps == B)
      conv_rows_as<T, B, RW2, 2, false, B>(c, r0, r1);
    else if (c.sw == 1 && c.ps == 1)
      conv_rows_as<T, B, RW2, 2, false, 1>(c, r0, r1);
    else
      conv_rows_as<T, B, RW2, 2, false, 0>(c, r0, r1);
  } else if (c.sw == 1 && c.ps == B) {
    conv_rows_as<T, B, RW, 1, false, B>(c, r0, r1);
  } else if (c.sw == 1 && c.ps == 1) {
    conv_rows_as<T, B, RW, 1, false, 1>(c, r0, r1);
  } else {
    conv_rows_as<T, B, RW, 1, false, 0>(c, r0, r1);
  }
}

// Max keeps the first NaN, as the NCHW kernels do; the window's padding never wins.
template <class T>
inline T max_nan(T m, T v) { return m != m ? m : (v > m || v != v ? v : m); }

template <class T, int B>
void pool_planes(const NchwcPool<T>& p, int64_t q0, int64_t q1) {
  for (int64_t q = q0; q < q1; ++q) {
    const T* x = p.x + q * p.H * p.W * B;
    T* y = p.y + q * p.Ho * p.Wo * B;
    if (p.kind == 2) {
      T s[B] = {};
      for (int64_t e = 0; e < p.H * p.W; ++e)
        for (int l = 0; l < B; ++l) s[l] += x[e * B + l];
      const T scale = T(1) / static_cast<T>(p.H * p.W);
      for (int l = 0; l < B; ++l) y[l] = s[l] * scale;
      continue;
    }
    for (int64_t oh = 0; oh < p.Ho; ++oh)
      for (int64_t ow = 0; ow < p.Wo; ++ow) {
        const int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
        const int64_t hs = std::max<int64_t>(h0, 0), he = std::min(h0 + p.kh, p.H);
        const int64_t ws = std::max<int64_t>(w0, 0), we = std::min(w0 + p.kw, p.W);
        T acc[B];
        const T init = p.kind == 0 ? -std::numeric_limits<T>::infinity() : T(0);
        for (int l = 0; l < B; ++l) acc[l] = init;
        for (int64_t h = hs; h < he; ++h)
          for (int64_t w = ws; w < we; ++w) {
            const T* v = x + (h * p.W + w) * B;
            if (p.kind == 0)
              for (int l = 0; l < B; ++l) acc[l] = max_nan(acc[l], v[l]);
            else
              for (int l = 0; l < B; ++l) acc[l] += v[l];
          }
        T* o = y + (oh * p.Wo + ow) * B;
        if (p.kind == 0) {
          for (int l = 0; l < B; ++l) o[l] = acc[l];
        } else {
          const int64_t count = p.count_include_pad ? p.kh * p.kw : (he - hs) * (we - ws);
          const T scale = T(1) / static_cast<T>(count);
          for (int l = 0; l < B; ++l) o[l] = acc[l] * scale;
        }
      }
  }
}

// One instruction set's table: regs vector registers of vec_bytes each.
template <int Regs, int VecBytes>
NchwcKernels nchwc_table(int64_t block) {
  NchwcKernels k;
  if (block == 16) {
    k.conv_f32 = &conv_rows<float, 16, tile_pixels(Regs, VecBytes, 64), tile_pixels(Regs, VecBytes, 64, 2)>;
    k.conv_f64 = &conv_rows<double, 16, tile_pixels(Regs, VecBytes, 128), tile_pixels(Regs, VecBytes, 128, 2)>;
    k.pool_f32 = &pool_planes<float, 16>;
    k.pool_f64 = &pool_planes<double, 16>;
  } else if (block == 8) {
    k.conv_f32 = &conv_rows<float, 8, tile_pixels(Regs, VecBytes, 32), tile_pixels(Regs, VecBytes, 32, 2)>;
    k.conv_f64 = &conv_rows<double, 8, tile_pixels(Regs, VecBytes, 64), tile_pixels(Regs, VecBytes, 64, 2)>;
    k.pool_f32 = &pool_planes<float, 8>;
    k.pool_f64 = &pool_planes<double, 8>;
  }
  return k;
}

}  // namespace
}  // namespace dlc::conv
