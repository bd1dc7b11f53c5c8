// AVX-512 forms of the 2x2 stride-2 max pooling (see pool_simd.h): 16 outputs per step. The two rows of 16
// windows are 32 floats each; one two-source permute splits each row into its even and odd columns, so the
// four window positions sit in four registers and the row-major combination is three vector selects.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/conv/pool_simd.h"

namespace dlc::conv {
namespace {

// nan_max of pool_cpu.cpp on 16 lanes: a where a > b or a is NaN, else b.
inline __m512 nan_max(__m512 a, __m512 b) {
  const __mmask16 take_a = _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) | _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(take_a, b, a);
}

// Lane masks for a step of n <= 16 windows: the 2n input floats of a row as two 16-lane halves, and the n
// outputs.
struct StepMasks {
  __mmask16 lo, hi, out;
  explicit StepMasks(int64_t n) {
    const int64_t m = 2 * n;
    lo = m >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << m) - 1);
    hi = m <= 16 ? __mmask16(0) : __mmask16((1u << (m - 16)) - 1);
    out = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  }
};

// Permutation indices, loaded per call: a namespace-scope __m512i would be built by AVX-512 code at load time,
// before anything checks that the CPU has it.
alignas(64) constexpr int32_t kEven[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
alignas(64) constexpr int32_t kOdd[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
alignas(64) constexpr int32_t kLo[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
alignas(64) constexpr int32_t kHi[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

struct Permutes {
  __m512i even = _mm512_load_si512(kEven), odd = _mm512_load_si512(kOdd);
  __m512i lo = _mm512_load_si512(kLo), hi = _mm512_load_si512(kHi);
};

// The even and odd columns of the 2n floats at r.
inline void split_pairs(const Permutes& P, const float* r, const StepMasks& k, __m512* even, __m512* odd) {
  const __m512 a = _mm512_maskz_loadu_ps(k.lo, r), b = _mm512_maskz_loadu_ps(k.hi, r + 16);
  *even = _mm512_permutex2var_ps(a, P.even, b);
  *odd = _mm512_permutex2var_ps(a, P.odd, b);
}

// Stores even/odd columns back as 2n consecutive floats at r.
inline void store_pairs(const Permutes& P, float* r, const StepMasks& k, __m512 even, __m512 odd) {
  _mm512_mask_storeu_ps(r, k.lo, _mm512_permutex2var_ps(even, P.lo, odd));
  _mm512_mask_storeu_ps(r + 16, k.hi, _mm512_permutex2var_ps(even, P.hi, odd));
}

}  // namespace

bool pool_simd_available() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return has;
}

void max_pool_2x2_plane_avx512(const float* x, float* y, int64_t Ho, int64_t W, int64_t Wo) {
  const Permutes P;
  for (int64_t oh = 0; oh < Ho; ++oh) {
    const float* r0 = x + 2 * oh * W;
    const float* r1 = r0 + W;
    for (int64_t ow = 0; ow < Wo; ow += 16) {
      const StepMasks k(std::min<int64_t>(16, Wo - ow));
      __m512 v00, v01, v10, v11;
      split_pairs(P, r0 + 2 * ow, k, &v00, &v01);
      split_pairs(P, r1 + 2 * ow, k, &v10, &v11);
      _mm512_mask_storeu_ps(y + oh * Wo + ow, k.out, nan_max(nan_max(v00, v01), nan_max(v10, v11)));
    }
  }
}

void max_pool_2x2_grad_plane_avx512(const float* x, const float* gy, float* gx, int64_t Ho, int64_t W, int64_t Wo) {
  const Permutes P;
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t oh = 0; oh < Ho; ++oh) {
    const float* r0 = x + 2 * oh * W;
    const float* r1 = r0 + W;
    for (int64_t ow = 0; ow < Wo; ow += 16) {
      const StepMasks k(std::min<int64_t>(16, Wo - ow));
      __m512 v[4];
      split_pairs(P, r0 + 2 * ow, k, &v[0], &v[1]);
      split_pairs(P, r1 + 2 * ow, k, &v[2], &v[3]);
      // The scan of the general kernel, lane-wise: position i takes over when it is larger than the maximum
      // so far, or NaN while the maximum so far is not. won[i]: lanes where i is the current winner.
      __m512 best = v[0];
      __mmask16 won[4] = {0xFFFF, 0, 0, 0};
      for (int i = 1; i < 4; ++i) {
        const __mmask16 take = _mm512_cmp_ps_mask(v[i], best, _CMP_GT_OQ) |
                               (_mm512_cmp_ps_mask(v[i], v[i], _CMP_UNORD_Q) &
                                _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q));
        for (int j = 0; j < i; ++j) won[j] &= static_cast<__mmask16>(~take);
        won[i] = take;
        best = _mm512_mask_blend_ps(take, best, v[i]);
      }
      // 0 + g, as the general kernel accumulates into zeros (a -0 gradient becomes +0 there too).
      const __m512 g = _mm512_maskz_loadu_ps(k.out, gy + oh * Wo + ow);
      auto at = [&](int i) { return _mm512_maskz_add_ps(won[i], zero, g); };
      store_pairs(P, gx + 2 * oh * W + 2 * ow, k, at(0), at(1));
      store_pairs(P, gx + (2 * oh + 1) * W + 2 * ow, k, at(2), at(3));
    }
  }
}

}  // namespace dlc::conv
