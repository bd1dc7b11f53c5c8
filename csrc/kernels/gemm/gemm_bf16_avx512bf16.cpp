// The bf16 GEMM's AVX512_BF16 path (gemm_bf16.h): conversions with vcvtne2ps2bf16 and an 8 x 32 tile kernel on
// vdpbf16ps, which multiplies the bf16 pairs of two vectors and adds both products to 16 f32 sums. Built with
// -mavx512bf16 (csrc/CMakeLists.txt) and only called after cpu_has_avx512_bf16().
#include <immintrin.h>

#include "kernels/gemm/gemm_bf16.h"

namespace dlc {
namespace {

__mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1); }
__mmask32 halves(int64_t n) { return n >= 32 ? __mmask32(0xffffffffu) : __mmask32((1ull << n) - 1); }

__m512i to_bf16(__m512 lo, __m512 hi) { return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)); }

void convert(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    _mm512_storeu_si512(dst + i, to_bf16(_mm512_loadu_ps(src + i), _mm512_loadu_ps(src + i + 16)));
  if (i < n) {  // the tail, and the zero that makes an odd count even
    const int64_t r = n - i;
    const __m512i v = to_bf16(_mm512_maskz_loadu_ps(lanes(r), src + i), _mm512_maskz_loadu_ps(lanes(r - 16), src + i + 16));
    _mm512_mask_storeu_epi16(dst + i, halves(r + (r & 1)), v);
  }
}

void pack_panel(const float* B, int64_t ldb, int64_t K, int64_t n, uint32_t* dst) {
  // Lane j of the result takes bf16 j of row 2p (first half) then of row 2p + 1 (second half): the pairs.
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                              22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __mmask16 m0 = lanes(n), m1 = lanes(n - 16);
  for (int64_t p = 0; p < (K + 1) / 2; ++p) {
    const float* r0 = B + 2 * p * ldb;
    const bool odd = 2 * p + 1 < K;
    const float* r1 = r0 + ldb;
    for (int h = 0; h < 2; ++h) {
      const __mmask16 m = h ? m1 : m0;
      const __m512 lo = _mm512_maskz_loadu_ps(m, r0 + 16 * h);
      const __m512 hi = odd ? _mm512_maskz_loadu_ps(m, r1 + 16 * h) : _mm512_setzero_ps();
      _mm512_storeu_si512(dst + p * kBf16Panel + 16 * h, _mm512_permutexvar_epi16(interleave, to_bf16(lo, hi)));
    }
  }
}

// M rows x 32 columns. With few rows the sums' dependency chains, not the multipliers, would bound the loop,
// so S sets of sums take alternate pairs and are added at the end.
template <int M>
void tile_rows(int64_t pairs, const uint32_t* a, int64_t lda, const uint32_t* b, float* c, int64_t ldc, int64_t n) {
  constexpr int S = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  __m512 acc[S][M][2];
  for (int s = 0; s < S; ++s)
    for (int i = 0; i < M; ++i) acc[s][i][0] = acc[s][i][1] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + S <= pairs; p += S) {
    for (int s = 0; s < S; ++s) {
      const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + (p + s) * kBf16Panel));
      const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + (p + s) * kBf16Panel + 16));
      for (int i = 0; i < M; ++i) {
        const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[i * lda + p + s])));
        acc[s][i][0] = _mm512_dpbf16_ps(acc[s][i][0], av, b0);
        acc[s][i][1] = _mm512_dpbf16_ps(acc[s][i][1], av, b1);
      }
    }
  }
  for (; p < pairs; ++p) {
    const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + p * kBf16Panel));
    const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + p * kBf16Panel + 16));
    for (int i = 0; i < M; ++i) {
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[i * lda + p])));
      acc[0][i][0] = _mm512_dpbf16_ps(acc[0][i][0], av, b0);
      acc[0][i][1] = _mm512_dpbf16_ps(acc[0][i][1], av, b1);
    }
  }
  const __mmask16 m0 = lanes(n), m1 = lanes(n - 16);
  for (int i = 0; i < M; ++i) {
    __m512 lo = acc[0][i][0], hi = acc[0][i][1];
    for (int s = 1; s < S; ++s) {
      lo = _mm512_add_ps(lo, acc[s][i][0]);
      hi = _mm512_add_ps(hi, acc[s][i][1]);
    }
    _mm512_mask_storeu_ps(c + i * ldc, m0, lo);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, hi);
  }
}

void tile(int64_t pairs, const uint32_t* a, int64_t lda, int64_t m, const uint32_t* b, float* c, int64_t ldc,
          int64_t n) {
  switch (m) {
    case 1: return tile_rows<1>(pairs, a, lda, b, c, ldc, n);
    case 2: return tile_rows<2>(pairs, a, lda, b, c, ldc, n);
    case 3: return tile_rows<3>(pairs, a, lda, b, c, ldc, n);
    case 4: return tile_rows<4>(pairs, a, lda, b, c, ldc, n);
    case 5: return tile_rows<5>(pairs, a, lda, b, c, ldc, n);
    case 6: return tile_rows<6>(pairs, a, lda, b, c, ldc, n);
    case 7: return tile_rows<7>(pairs, a, lda, b, c, ldc, n);
    default: return tile_rows<8>(pairs, a, lda, b, c, ldc, n);
  }
}

const Bf16Path kAvx512Bf16{&convert, &pack_panel, &tile};

}  // namespace

const Bf16Path* bf16_avx512_path() { return &kAvx512Bf16; }

}  // namespace dlc
