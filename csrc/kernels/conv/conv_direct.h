// Direct f32 convolution kernels (AVX-512, conv_direct_avx512.cpp) for the small channel counts of CNNs like
// ResNet's first stages, where im2col + GEMM spends as long copying as multiplying.
//
// The idea ("flat" convolution): copy each image once into zero-padded planes of width Wq; output (oh, ow)
// then sits at flat index q = oh*Wq + ow and every tap (i, j) reads the plane at q + off(i, j), one fixed
// offset. A run of 16 consecutive outputs of one channel is one unaligned vector load per tap and input
// channel, with no im2col matrix and no packing; the Wq - Wo columns past each row are computed and dropped.
// A stride s is turned into stride 1 by splitting the padded image into its s_h x s_w phases (polyphase):
// tap (i, j) reads phase (i*dh % sh, j*dw % sw) at offset (i*dh/sh, j*dw/sw).
//
// Only declarations here: the definitions are built with AVX-512 flags and must not leak inline code.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dlc::conv {

// Taps per kernel the direct path takes (larger kernels use im2col + GEMM).
constexpr int64_t kDirectMaxTaps = 64;

// One convolution of a batch as the direct kernels see it: src [N, Cin, Hs, Ws] -> dst [N, Cout, Ho, Wo] with a
// KH x KW kernel, stride (sh, sw), dilation (dh, dw) and top/left padding (ph, pw; may be negative).
struct DirectShape {
  int64_t N, Cin, Hs, Ws, Cout, Ho, Wo, KH, KW, sh, sw, ph, pw, dh, dw;
};

// Whether this CPU runs the direct kernels (AVX-512F).
bool direct_available();

// dst = conv(src, w). flipped == false: w is [Cout, Cin, KH, KW] (a forward convolution). flipped == true: w is
// [Cin, Cout, KH, KW] and tap (i, j) uses w[.., .., KH-1-i, KW-1-j] (the data gradient of a stride-1 forward
// convolution, which is such a convolution of the output gradient). scratch: direct_conv_scratch floats.
// image_done(ctx, n, parallel), if given, is called once image n's outputs are all in dst (still in cache), by the
// thread that finished it; parallel says whether that call may start a parallel loop of its own. A fused
// epilogue runs there.
using ImageDoneFn = void (*)(void* ctx, int64_t n, bool parallel);
size_t direct_conv_scratch(const DirectShape& s, int threads);
void direct_conv(const DirectShape& s, const float* src, const float* w, bool flipped, float* dst, float* scratch,
                 ImageDoneFn image_done = nullptr, void* ctx = nullptr);

// gw [Cout, Cin, KH, KW] = the weight gradient of the forward convolution s, from x (its src) and gy (its dst
// gradient), summed over the batch in an order fixed by the shapes. scratch: direct_wgrad_scratch floats.
size_t direct_wgrad_scratch(const DirectShape& s, int threads);
void direct_wgrad(const DirectShape& s, const float* x, const float* gy, float* gw, float* scratch);

}  // namespace dlc::conv
