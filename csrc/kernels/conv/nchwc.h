// The blocked channel layout ("NCHWc"): an image batch [N, C, H, W] stored as [N, ceil(C/B), H, W, B], B
// channels of one pixel side by side, so that one vector register holds one pixel's B channels. Convolution
// chains run in this layout (passes/layout.py decides where): a convolution's register tile is a run of output
// pixels times B output channels, every input channel is one broadcast per tap, and no im2col matrix is built.
// Channels past C in the last block ("lanes") hold finite values nobody reads: the convolution reads only real
// input channels and the reorder back to NCHW drops them.
//
// B is 16 on AVX-512 and 8 on AVX2 (one register of f32); the portable build keeps NCHW (block size 0). The
// kernels are written once (nchwc_impl.h, GCC vector types) and compiled per instruction set
// (nchwc_avx512.cpp, nchwc_avx2.cpp, nchwc_portable.cpp); the ops in conv_nchwc_cpu.cpp and pool_nchwc_cpu.cpp
// pick the best the CPU has, capped by nchwc_force_isa for tests.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dispatch.h"

namespace dlc::conv {

// One convolution as the blocked kernels see it. The input is blocked [N, Cb, H, W, B] or plain [N, C, H, W] (a first
// layer, or an input whose producer runs NCHW): ps and cs give the distances between neighbouring pixels and
// channels. A 1x1 stride-1 unpadded convolution arrives as one row of H*W pixels: a GEMM of the
// pixels by the channels, B output channels per register.
template <class T>
struct NchwcConv {
  const T* x = nullptr;
  int64_t x_image = 0;  // elements per input image
  int64_t ps = 1;       // elements between horizontally adjacent input pixels (B blocked, 1 plain)
  int64_t cs = 1;       // elements between consecutive input channels of one block (1 blocked, H*W plain)
  int64_t H = 0, W = 0;
  // The filter, reordered per output block ob into chunks [chunk_first[ob], chunk_first[ob + 1]): runs of input
  // channels that are consecutive in memory (one input block, or every channel of a plain input). Chunk k covers
  // chunk_n[k] channels from image offset chunk_x[k]; its KH*KW x chunk_n[k] vectors of B output channels start at
  // w + chunk_w[k] (zero where an output channel's group does not read the input channel). A depthwise
  // convolution (depthwise true) has KH*KW vectors per block at w + ob*KH*KW*B, read against input block ob.
  const T* w = nullptr;
  const int64_t* chunk_first = nullptr;
  const int64_t* chunk_x = nullptr;
  const int64_t* chunk_n = nullptr;
  const int64_t* chunk_w = nullptr;
  bool depthwise = false;
  int kb = 1;  // output blocks per register tile: 2 when groups = 1 and Ob is even (rows then cover block pairs)
  T* y = nullptr;  // [N, Ob, Ho, Wo, B]
  int64_t Ob = 0, Ho = 0, Wo = 0, KH = 0, KW = 0, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  // The fused epilogue (see conv_nchwc_cpu.cpp): the elementwise program and its operands, or code == nullptr.
  const int64_t* code = nullptr;  // "ew" program: [compute, n_regs, n_instr, instructions...]
  const double* imm = nullptr;
  const KernelArgs* args = nullptr;  // out: the step's outputs (out[0] is y); in: [x, w, extra...]
  const int64_t (*extra_strides)[5] = nullptr;  // per extra input: strides over y's [N, Ob, Ho, Wo, B]
  // Whether the convolution's own result y is stored besides the epilogue's outputs: not when an output shares
  // its memory (the memory plan gives an otherwise unread y the buffer of the epilogue's result).
  bool write_y = true;
};

// Output rows [r0, r1) of the (n, ob / kb, oh) rows, one per ISA and type; B is y's last dimension.
using NchwcRowsF32 = void (*)(const NchwcConv<float>&, int64_t r0, int64_t r1);
using NchwcRowsF64 = void (*)(const NchwcConv<double>&, int64_t r0, int64_t r1);

// Pooling windows over a blocked tensor: kind 0 max (padding never wins, the first NaN wins), 1 average
// (count_include_pad: divide by the full window), 2 global average (the whole plane, Ho = Wo = 1).
template <class T>
struct NchwcPool {
  const T* x = nullptr;
  T* y = nullptr;
  int64_t H = 0, W = 0, Ho = 0, Wo = 0, kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  int kind = 0;
  bool count_include_pad = true;
};
using NchwcPoolF32 = void (*)(const NchwcPool<float>&, int64_t plane0, int64_t plane1);
using NchwcPoolF64 = void (*)(const NchwcPool<double>&, int64_t plane0, int64_t plane1);

// One instruction set's kernels for one block size (nullptr where it lacks that size).
struct NchwcKernels {
  NchwcRowsF32 conv_f32 = nullptr;
  NchwcRowsF64 conv_f64 = nullptr;
  NchwcPoolF32 pool_f32 = nullptr;
  NchwcPoolF64 pool_f64 = nullptr;
};

// Each file's table, by block size (8 or 16).
NchwcKernels nchwc_kernels_avx512(int64_t block);
NchwcKernels nchwc_kernels_avx2(int64_t block);
NchwcKernels nchwc_kernels_portable(int64_t block);

// The kernels to run for block size `block`: the best instruction set the CPU has, capped by nchwc_force_isa.
NchwcKernels nchwc_kernels(int64_t block);
// "avx512", "avx2", "portable", or "" for the best; throws on another name. Process-wide, for tests.
void nchwc_force_isa(const std::string& name);
// The instruction set nchwc_kernels uses now.
std::string nchwc_isa();
// The block size compilers should choose on this CPU: 16 (AVX-512), 8 (AVX2) or 0 (keep NCHW).
int64_t nchwc_block_size();

}  // namespace dlc::conv

namespace dlc {

// A conv2d_nchwc step's filter (in[1]) reordered for the kernel, for the plan's packed-weights cache
// (runtime/packed_weights.h): x, w, y are the step's in[0], in[1], out[0], ints its ints; *bytes gets the copy's
// size. nullptr when the operands are not a conv2d_nchwc's.
std::shared_ptr<const void> nchwc_pack_filter(const Tensor& x, const Tensor& w, const Tensor& y,
                                              const std::vector<int64_t>& ints, size_t* bytes);

}  // namespace dlc
