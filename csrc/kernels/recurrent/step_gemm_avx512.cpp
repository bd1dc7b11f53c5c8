// AVX-512 kernels of step_gemm.h. Packed B: per block, panels of NR = 32 columns, each K rows of 32 floats (zeros
// past the block's width).
// Tile: up to MR = 12 rows x 32 columns (24 accumulators); per k it loads the two B vectors once and broadcasts
// one A value per row. A panel (K x 32 floats: 16 KiB for K = 128) stays in L1 while every row block of the call
// uses it. Everything but the entry points has internal linkage and no std:: template is instantiated here, so
// no AVX-512 code can stand in for an inline function the rest of the build shares.
#include <immintrin.h>

#include "kernels/recurrent/step_gemm.h"
#include "kernels/recurrent/step_gemm_portable.h"  // pack

namespace dlc {
namespace {

constexpr int64_t VL = 16, NR = 2 * VL, MR = 12;
static_assert(NR == kStepPanel, "the panel width is the header's");

// C rows [0, R) x columns [0, 32) of one panel (only the `cols` first are stored).
template <int R>
void tile(int64_t K, const float* __restrict a, int64_t lda, const float* __restrict b, bool accumulate,
          float* __restrict c, int64_t ldc, __mmask16 m0, __mmask16 m1) {
  __m512 acc[R][2];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k, b += NR) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + VL);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + VL));
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + VL, m1, v1);
  }
}

using Tile = void (*)(int64_t, const float*, int64_t, const float*, bool, float*, int64_t, __mmask16, __mmask16);
constexpr Tile kTiles[MR + 1] = {nullptr,  &tile<1>, &tile<2>, &tile<3>,  &tile<4>,  &tile<5>, &tile<6>,
                                 &tile<7>, &tile<8>, &tile<9>, &tile<10>, &tile<11>, &tile<12>};

// Lanes l < n.
__mmask16 first_lanes(int64_t n) { return static_cast<__mmask16>((1u << (n < 0 ? 0 : n > VL ? VL : n)) - 1u); }

}  // namespace

bool step_gemm_available() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return has;
}

size_t step_gemm_packed_size(int64_t K, int64_t width, int64_t blocks) {
  return static_cast<size_t>(blocks * cdiv(width, NR) * K * NR);
}

void step_gemm_pack(bool trans, int64_t K, int64_t width, int64_t blocks, const float* B, int64_t ldb,
                    float* packed) {
  pack<float, NR>(trans, K, width, blocks, B, ldb, packed);
}

void step_gemm(int64_t M, int64_t K, int64_t width, int64_t blocks, int64_t u0, int64_t u1, const float* A,
               int64_t lda, const float* packed, bool accumulate, float* C, int64_t ldc) {
  // Row blocks as even as possible (16 rows: 8 + 8 rather than 12 + 4), so no block runs short of accumulators.
  const int64_t row_blocks = cdiv(M, MR), panels = cdiv(width, NR);
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t p = u0 / NR; p < cdiv(u1, NR); ++p) {
      const int64_t unit = p * NR;
      const __mmask16 m0 = first_lanes(u1 - unit), m1 = first_lanes(u1 - unit - VL);
      const float* panel = packed + (blk * panels + p) * K * NR;
      for (int64_t rb = 0; rb < row_blocks; ++rb) {
        const int64_t r0 = M * rb / row_blocks, r1 = M * (rb + 1) / row_blocks;
        kTiles[r1 - r0](K, A + r0 * lda, lda, panel, accumulate, C + r0 * ldc + blk * width + unit, ldc, m0, m1);
      }
    }
}

const StepKernel<float>& step_kernel_avx512_f32() {
  static const StepKernel<float> table{&step_gemm_packed_size, &step_gemm_pack, &step_gemm};
  return table;
}

}  // namespace dlc
