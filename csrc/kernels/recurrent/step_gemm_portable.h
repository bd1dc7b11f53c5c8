// The per-step product of step_gemm.h in portable C++, for the GEMM's AVX2 and scalar paths and for f64:
// included by step_gemm_avx2.cpp (built with AVX2/FMA, where the compiler vectorizes the column loops),
// step_gemm_generic.cpp and, for its packing loop, step_gemm_avx512.cpp. Packed B: per block, panels of PW
// columns (zeros past the block's width), each K rows of PW values. A tile of R rows x PW columns keeps its sums
// in registers across all of K. Internal linkage only, so the builds never meet in one inline symbol.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/recurrent/step_gemm.h"

namespace dlc {
namespace {

constexpr int64_t PW = 16, PMR = 4;
static_assert(kStepPanel % PW == 0, "unit ranges of whole step panels are whole portable panels");

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T>
size_t packed_size(int64_t K, int64_t width, int64_t blocks) {
  return static_cast<size_t>(blocks * cdiv(width, PW) * K * PW);
}

// Packs op(B) into panels of W columns (step_gemm_avx512.cpp packs with its own W).
template <class T, int64_t W = PW>
void pack(bool trans, int64_t K, int64_t width, int64_t blocks, const T* B, int64_t ldb, T* packed) {
  const int64_t panels = cdiv(width, W);
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t p = 0; p < panels; ++p)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < W; ++j) {
          const int64_t unit = p * W + j, col = blk * width + unit;
          packed[((blk * panels + p) * K + k) * W + j] =
              unit >= width ? T(0) : trans ? B[col * ldb + k] : B[k * ldb + col];
        }
}

// Rows [0, R) x the first n columns of one panel.
template <class T, int R>
void tile(int64_t K, const T* __restrict a, int64_t lda, const T* __restrict b, bool accumulate, T* __restrict c,
          int64_t ldc, int64_t n) {
  T acc[R][PW] = {};
  for (int64_t k = 0; k < K; ++k, b += PW)
    for (int r = 0; r < R; ++r) {
      const T av = a[r * lda + k];
      for (int64_t j = 0; j < PW; ++j) acc[r][j] += av * b[j];
    }
  for (int r = 0; r < R; ++r)
    for (int64_t j = 0; j < n; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

template <class T>
void run(int64_t M, int64_t K, int64_t width, int64_t blocks, int64_t u0, int64_t u1, const T* A, int64_t lda,
         const T* packed, bool accumulate, T* C, int64_t ldc) {
  using Tile = void (*)(int64_t, const T*, int64_t, const T*, bool, T*, int64_t, int64_t);
  static constexpr Tile tiles[PMR + 1] = {nullptr, &tile<T, 1>, &tile<T, 2>, &tile<T, 3>, &tile<T, 4>};
  const int64_t panels = cdiv(width, PW);
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t p = u0 / PW; p < cdiv(u1, PW); ++p) {
      const int64_t unit = p * PW, n = u1 - unit < PW ? u1 - unit : PW;
      const T* panel = packed + (blk * panels + p) * K * PW;
      for (int64_t r0 = 0; r0 < M; r0 += PMR) {
        const int64_t rows = M - r0 < PMR ? M - r0 : PMR;
        tiles[rows](K, A + r0 * lda, lda, panel, accumulate, C + r0 * ldc + blk * width + unit, ldc, n);
      }
    }
}

template <class T>
StepKernel<T> make_step_kernel() {
  return {&packed_size<T>, &pack<T>, &run<T>};
}

}  // namespace
}  // namespace dlc
