// bf16 GEMM: C (f32) = op(A) @ op(B) with both operands rounded to bfloat16 (round to nearest even) and the
// products accumulated in f32 — the arithmetic of AVX512_BF16's vdpbf16ps, which the fast path runs. A CPU
// without AVX512_BF16 takes the portable path: the same rounding and f32 accumulation, in plain C++.
//
// Error bound (docs/precision.md): with a~, b~ the operands rounded to bf16, every product a~*b~ is exact in f32
// (8 + 8 significant bits), so |C - sum a~ b~| <= K * 2^-24 * sum |a~| |b~| (the f32 additions, in any order);
// against the exact f32 product, rounding each operand adds at most 2^-8 relative each:
// |C - sum a b| <= (2^-7 + 2^-16 + K * 2^-24) * sum |a| |b|.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>

#include "kernels/gemm/gemm.h"

namespace dlc {

// The bf16 nearest to f (ties to even); NaN stays a (quiet) NaN.
inline uint16_t bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Columns of one packed panel of B (two 16-lane vectors of the AVX512_BF16 kernel).
constexpr int64_t kBf16Panel = 32;

// op(B) (K x N) rounded to bf16 and packed for the bf16 kernels (both paths read the same layout): panels of 32
// columns; in a panel, for each pair of rows (k = 2p, 2p + 1) the 32 columns' pairs, each one 32-bit word
// (low half: row 2p, high half: row 2p + 1). K is padded to even and N to a whole panel with zeros.
struct Bf16PackedB {
  bool trans_b = false;
  int64_t K = 0, N = 0;
  int64_t pairs = 0;  // (K + 1) / 2
  std::unique_ptr<uint32_t[]> data;
  int64_t words = 0;
  size_t bytes() const { return static_cast<size_t>(words) * 4; }
  const uint32_t* panel(int64_t p) const { return data.get() + p * pairs * kBf16Panel; }
};

Bf16PackedB gemm_bf16_pack_b(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb);

// C[M,N] = op(A) @ op(B) in bf16 arithmetic (above); A is M x K row-major (lda). The epilogue, if any, runs on
// every finished block of C, as gemm's does. With `packed` (made from this B, trans_b, K and N), B is not read.
void gemm_bf16(bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
               int64_t ldb, float* C, int64_t ldc, GemmEpilogueFn<float> epilogue = nullptr,
               void* epilogue_ctx = nullptr, const Bf16PackedB* packed = nullptr);

// "avx512_bf16" or "scalar" for all later bf16 GEMMs (tests and benchmarks comparing the paths); "" restores
// the automatic choice. A path the CPU lacks falls back to the portable one; an unknown name throws
// std::invalid_argument.
void gemm_bf16_force_isa(const char* isa);
// The path in use: "avx512_bf16" or "scalar".
const char* gemm_bf16_kernel_name();
// Whether this CPU (and its OS) runs AVX512_BF16.
bool cpu_has_avx512_bf16();

// The kernels of one path (gemm_bf16.cpp's portable one, gemm_bf16_avx512bf16.cpp's).
struct Bf16Path {
  // f32 -> bf16 of n floats into n (made even: a zero appended when n is odd) halves at dst.
  void (*convert)(const float* src, int64_t n, uint16_t* dst);
  // Packs rows [2*p0, ...) of a not transposed B into panel layout; see gemm_bf16.cpp.
  void (*pack_panel)(const float* B, int64_t ldb, int64_t K, int64_t n, uint32_t* dst);
  // C[m x n] (m <= kBf16Rows, n <= kBf16Panel) = A rows (pairs, stride lda) . panel; pairs = K pairs.
  void (*tile)(int64_t pairs, const uint32_t* a, int64_t lda, int64_t m, const uint32_t* b, float* c, int64_t ldc,
               int64_t n);
};
constexpr int64_t kBf16Rows = 8;
const Bf16Path& bf16_portable_path();
const Bf16Path* bf16_avx512_path();  // nullptr when not compiled in

}  // namespace dlc
