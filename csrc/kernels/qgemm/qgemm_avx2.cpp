// The AVX2 path of the int8 GEMM, for CPUs without VNNI. vpmaddubsw (u8 x s8 pairs into i16) saturates when
// both products of a pair are large (2 * 255 * 127 > 32767), so this path widens both operands to i16 and uses
// vpmaddwd (pairs into i32), which is exact: the same integers as the VNNI and portable paths.
#include <immintrin.h>

#include "kernels/qgemm/qgemm.h"
#include "kernels/qgemm/qgemm_kernels.h"

namespace dlc::qgemm_detail {
namespace {

// MR rows x 8 channels at a time (one 32-byte stretch of each panel group). Lane layout after vpmaddwd: lo holds
// channels 0-3 of the stretch, hi channels 4-7, each channel as two partial sums (k0 k1 | k2 k3).
template <int MR>
void tile8(int64_t k_groups, const uint8_t* a, int64_t lda, const int8_t* panel, int32_t* acc) {
  __m256i lo[MR], hi[MR];
  for (int i = 0; i < MR; ++i) lo[i] = hi[i] = _mm256_setzero_si256();
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * kQgemmNR * 4));
    const __m256i blo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(b));
    const __m256i bhi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(b, 1));
    for (int i = 0; i < MR; ++i) {
      int32_t four;
      __builtin_memcpy(&four, a + i * lda + g * 4, 4);
      const __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi32(four));
      lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(av, blo));
      hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(av, bhi));
    }
  }
  for (int i = 0; i < MR; ++i) {
    // hadd: [c0 c1 c4 c5 | c2 c3 c6 c7]; the 64-bit permute puts the channels in order.
    const __m256i s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[i], hi[i]), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + i * kQgemmNR), s);
  }
}

template <int MR>
void tile(int64_t k_groups, const uint8_t* a, int64_t lda, const int8_t* panel, int32_t* acc) {
  for (int s = 0; s < kQgemmNR / 8; ++s) tile8<MR>(k_groups, a, lda, panel + s * 32, acc + s * 8);
}

}  // namespace

void tile_avx2(int64_t k_groups, const uint8_t* a, int64_t lda, int64_t mr, const int8_t* panel, int32_t* acc) {
  with_rows<1, 4>(mr, [&](auto rows) { tile<decltype(rows)::value>(k_groups, a, lda, panel, acc); });
}

void quantize_row_avx2(const float* x, int64_t k, float scale, int32_t zero_point, uint8_t* q) {
  const __m256 s = _mm256_set1_ps(scale), zp = _mm256_set1_ps(static_cast<float>(zero_point));
  const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.0f);
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 r = _mm256_div_ps(_mm256_loadu_ps(x + p), s);
    r = _mm256_add_ps(_mm256_round_ps(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);  // max_ps returns its second operand for NaN: 0
    const __m256i v = _mm256_cvtps_epi32(r);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + p), _mm_packus_epi16(w, w));
  }
  for (; p < k; ++p) q[p] = quantize_one(x[p], scale, zero_point);
}

}  // namespace dlc::qgemm_detail
