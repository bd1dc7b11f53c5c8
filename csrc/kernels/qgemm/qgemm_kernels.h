#pragma once
// Internal to the int8 GEMM (qgemm.h): the per-path tile kernels and quantizers, defined in qgemm_avx2.cpp
// (compiled with -mavx2) and qgemm_avx512vnni.cpp (with AVX-512 and VNNI); call each only when the CPU has it.
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace dlc::qgemm_detail {

// One value of quantize_u8 (the scalar form every path's vector code matches; NaN gives 0).
inline uint8_t quantize_one(float x, float scale, int32_t zero_point) {
  float r = std::nearbyint(x / scale) + static_cast<float>(zero_point);
  r = r > 0.0f ? r : 0.0f;
  return static_cast<uint8_t>(r < 255.0f ? r : 255.0f);
}

// Calls f(std::integral_constant<int, mr>) for a run-time mr in [M, MaxMR] (a tile kernel's row count as a
// template argument, so its accumulators stay in registers).
template <int M, int MaxMR, typename F>
inline void with_rows(int64_t mr, const F& f) {
  if constexpr (M < MaxMR) {
    if (mr > M) return with_rows<M + 1, MaxMR>(mr, f);
  }
  f(std::integral_constant<int, M>{});
}

// Rows per register tile of each path (the columns are always one kQgemmNR panel).
constexpr int64_t kMrAvx512Vnni = 8;
constexpr int64_t kMrAvx2 = 4;
constexpr int64_t kMrScalar = 4;

// Tile kernel contract: rows [0, mr) of A (u8, row i at a + i * lda, read up to 4 * k_groups bytes) times one
// packed panel (k_groups groups of kQgemmNR channels x 4 bytes); acc[i * kQgemmNR + c] = sum_k a(i, k) * w(c, k)
// in exact i32 arithmetic. 1 <= mr <= the path's MR.
using TileKernel = void (*)(int64_t k_groups, const uint8_t* a, int64_t lda, int64_t mr, const int8_t* panel,
                            int32_t* acc);

// Quantizer contract (qgemm.h quantize_u8): one row of k floats into k bytes.
using QuantizeRow = void (*)(const float* x, int64_t k, float scale, int32_t zero_point, uint8_t* q);

// The min and max of the finite values of x[0, n), folded into *lo and *hi (dynamic_u8_params).
void finite_range_avx512(const float* x, int64_t n, float* lo, float* hi);
void tile_avx512vnni(int64_t k_groups, const uint8_t* a, int64_t lda, int64_t mr, const int8_t* panel, int32_t* acc);
void quantize_row_avx512(const float* x, int64_t k, float scale, int32_t zero_point, uint8_t* q);
void tile_avx2(int64_t k_groups, const uint8_t* a, int64_t lda, int64_t mr, const int8_t* panel, int32_t* acc);
void quantize_row_avx2(const float* x, int64_t k, float scale, int32_t zero_point, uint8_t* q);

}  // namespace dlc::qgemm_detail
