// The AVX512_VNNI path of the int8 GEMM: vpdpbusd multiplies 4 u8 activations by 4 s8 weights and adds the four
// products to an i32 lane (no intermediate saturation), so one instruction does 64 multiply-adds.
#include <immintrin.h>

#include "kernels/qgemm/qgemm.h"
#include "kernels/qgemm/qgemm_kernels.h"

namespace dlc::qgemm_detail {
namespace {

// MR rows x 32 channels: two 16-lane accumulators per row; each step broadcasts 4 bytes of a row of A against
// the panel's 4 bytes of each of 32 channels.
template <int MR>
void tile(int64_t k_groups, const uint8_t* a, int64_t lda, const int8_t* panel, int32_t* acc) {
  __m512i c0[MR], c1[MR];
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_si512();
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m512i b0 = _mm512_loadu_si512(panel + g * kQgemmNR * 4);
    const __m512i b1 = _mm512_loadu_si512(panel + g * kQgemmNR * 4 + 64);
    for (int i = 0; i < MR; ++i) {
      int32_t four;
      __builtin_memcpy(&four, a + i * lda + g * 4, 4);
      const __m512i av = _mm512_set1_epi32(four);
      c0[i] = _mm512_dpbusd_epi32(c0[i], av, b0);
      c1[i] = _mm512_dpbusd_epi32(c1[i], av, b1);
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_si512(acc + i * kQgemmNR, c0[i]);
    _mm512_storeu_si512(acc + i * kQgemmNR + 16, c1[i]);
  }
}

}  // namespace

void tile_avx512vnni(int64_t k_groups, const uint8_t* a, int64_t lda, int64_t mr, const int8_t* panel,
                     int32_t* acc) {
  with_rows<1, 8>(mr, [&](auto rows) { tile<decltype(rows)::value>(k_groups, a, lda, panel, acc); });
}

void finite_range_avx512(const float* x, int64_t n, float* lo, float* hi) {
  __m512 vlo = _mm512_set1_ps(*lo), vhi = _mm512_set1_ps(*hi);
  for (int64_t p = 0; p < n; p += 16) {
    const __mmask16 m = n - p >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - p)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + p);
    const __mmask16 finite = m & ~_mm512_fpclass_ps_mask(v, 0x99);  // not QNaN, SNaN, +inf, -inf
    vlo = _mm512_mask_min_ps(vlo, finite, vlo, v);
    vhi = _mm512_mask_max_ps(vhi, finite, vhi, v);
  }
  *lo = _mm512_reduce_min_ps(vlo);
  *hi = _mm512_reduce_max_ps(vhi);
}

void quantize_row_avx512(const float* x, int64_t k, float scale, int32_t zero_point, uint8_t* q) {
  const __m512 s = _mm512_set1_ps(scale), zp = _mm512_set1_ps(static_cast<float>(zero_point));
  const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
  for (int64_t p = 0; p < k; p += 16) {
    const __mmask16 m = k - p >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k - p)) - 1);
    __m512 r = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + p), s);
    r = _mm512_add_ps(_mm512_roundscale_ps(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
    r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);  // max_ps returns its second operand for NaN: 0
    _mm512_mask_cvtusepi32_storeu_epi8(q + p, m, _mm512_cvtps_epi32(r));
  }
}

}  // namespace dlc::qgemm_detail
