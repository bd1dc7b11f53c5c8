// int8 GEMM for reduced-precision inference: u8 activations x s8 weights with exact i32 accumulation, then
// dequantized to f32 per output channel.
//
//   C[i, j] = float(sum_k (A[i, k] - za) * W[j, k]) * (sa * ws[j])
//
// A is u8 with one scale sa and zero point za (asymmetric: the range of an activation is rarely centred on 0);
// W is s8, symmetric (zero point 0) with one scale ws[j] per output channel. The zero point is not subtracted
// in the inner loop, where the u8 x s8 dot-product instructions need unsigned values: the sum is taken on the
// raw A and corrected with the weights' per-channel sums, sum_k A*W - za * sum_k W[j, k], which are computed
// once when the weights are packed. Every path (AVX512_VNNI vpdpbusd, AVX2 widening multiply-add, portable C++)
// computes the same integers exactly, and the f32 step is one multiply per element, so all paths give the same
// bits. Accumulation is exact while K * 255 * 128 < 2^31, i.e. K <= kQgemmMaxK.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/gemm/gemm.h"

namespace dlc {

constexpr int64_t kQgemmMaxK = 65536;
// Columns per packed panel, and K is taken in groups of 4 (the dot-product instructions' unit).
constexpr int64_t kQgemmNR = 32;
constexpr int64_t kQgemmKGroup = 4;

// Symmetric per-output-channel quantization of f32 weights W (K x N row-major, or N x K when trans): for each
// output channel j, scale[j] = max_k |W(k, j)| / 127 (1 for an all-zero channel) and
// q[j * K + k] = clamp(round_half_even(W(k, j) / scale[j]), -127, 127). q is N x K (row j = channel j).
// A non-finite weight throws std::invalid_argument.
void quantize_weights_s8(const float* W, bool trans, int64_t K, int64_t N, int8_t* q, float* scale);

// s8 weights packed for qgemm: panels of kQgemmNR channels, K in groups of 4 (zero padded), plus each channel's
// sum of weights and its scale. One layout for every kernel path.
struct QgemmPackedB {
  int64_t K = 0, N = 0;
  int64_t k_groups = 0, panels = 0;
  std::unique_ptr<int8_t, void (*)(void*)> data{nullptr, nullptr};
  std::unique_ptr<int32_t[]> col_sum;
  std::unique_ptr<float[]> scale;
  size_t bytes() const {
    return static_cast<size_t>(panels * k_groups * kQgemmNR * kQgemmKGroup) + static_cast<size_t>(N) * 8;
  }
};

// Packs q (N x K s8, row j = output channel j, as quantize_weights_s8 writes it) with its per-channel scales.
// Throws std::invalid_argument when K > kQgemmMaxK.
QgemmPackedB qgemm_pack_b(const int8_t* q, int64_t K, int64_t N, const float* scale);

// Bytes of one row of a u8 operand qgemm reads: K rounded up to the group of 4. Rows must be padded to it
// (any value: the packed weights are zero there).
inline int64_t qgemm_row_bytes(int64_t K) { return (K + kQgemmKGroup - 1) / kQgemmKGroup * kQgemmKGroup; }

// Asymmetric u8 quantization as ONNX QuantizeLinear: q = clamp(round_half_even(x / scale) + zero_point, 0, 255)
// (NaN gives 0). Rows of K floats (ldx apart) into rows of ldq bytes; bytes [K, ldq) of each row are set to 0.
void quantize_u8(const float* x, int64_t rows, int64_t K, int64_t ldx, float scale, int32_t zero_point, uint8_t* q,
                 int64_t ldq);

// The scale and zero point of dynamic quantization (ONNX DynamicQuantizeLinear, as ONNX Runtime's
// quantize_dynamic uses): the range [min(0, min x), max(0, max x)] onto [0, 255]. Non-finite values are skipped;
// an all-zero range gives scale 1, zero point 0.
void dynamic_u8_params(const float* x, int64_t n, float* scale, int32_t* zero_point);

// C = dequantized A (M x K u8, rows lda >= qgemm_row_bytes(K) apart, scale sa, zero point za) times the packed
// weights. Element (i, j) of C is stored at C[i * c_row + j * c_col] (c_col 1: row-major with ldc = c_row; a
// convolution stores channels-first with c_row 1). When epilogue is given (c_col must be 1) it is called on every
// finished block, as the f32 GEMM does (gemm.h).
void qgemm(int64_t M, const uint8_t* A, int64_t lda, float sa, int32_t za, const QgemmPackedB& B, float* C,
           int64_t c_row, int64_t c_col, GemmEpilogueFn<float> epilogue = nullptr, void* epilogue_ctx = nullptr);

// The activation quantization of an int8 step, from two of its ints: a zero point in [0, 255] with the f64 bit
// pattern of the scale (static: from calibration), or zero point -1 (dynamic: the range of the n values x, per
// call, as dynamic_u8_params). Throws std::invalid_argument for anything else.
void step_activation_params(int64_t zero_point, int64_t scale_bits, const float* x, int64_t n, float* scale,
                            int32_t* zp);

// An int8 product with f32 operands: x (M x K, contiguous) quantized to u8 with (scale, zp), times the packed
// weights, into C (M x N, row-major), with the block epilogue. Scratch is per thread.
void qgemm_f32(int64_t M, const float* x, float scale, int32_t zp, const QgemmPackedB& B, float* C,
               GemmEpilogueFn<float> epilogue = nullptr, void* epilogue_ctx = nullptr);

// Forces one kernel path for later qgemm calls (tests and benchmarks): "avx512vnni", "avx2" or "scalar"; ""
// restores automatic selection (the best the CPU has, in that order). A path the CPU lacks falls back to the best
// one below it (qgemm_kernel_name() says which runs); an unknown name throws std::invalid_argument.
void qgemm_force_isa(const char* isa);
const char* qgemm_kernel_name();

}  // namespace dlc
