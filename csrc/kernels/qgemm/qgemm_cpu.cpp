// The int8 GEMM's driver (qgemm.h): weight quantization and packing, the portable path, path selection and the
// threaded loop over (row block, panel) items.
#include "kernels/qgemm/qgemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/qgemm/qgemm_kernels.h"
#include "kernels/kernel_util.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using qgemm_detail::QuantizeRow;
using qgemm_detail::TileKernel;

enum class QIsa : int { kScalar = 0, kAvx2 = 1, kAvx512Vnni = 2 };
std::atomic<int> g_forced{-1};

QIsa cpu_qisa() {
  static const QIsa best = [] {
    __builtin_cpu_init();
    // qgemm_avx512vnni.cpp is compiled for AVX-512 F/BW/VL and VNNI; __builtin_cpu_supports also checks that
    // the OS saves the zmm registers.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
      return QIsa::kAvx512Vnni;
    if (__builtin_cpu_supports("avx2")) return QIsa::kAvx2;
    return QIsa::kScalar;
  }();
  return best;
}

QIsa active_qisa() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  return forced < 0 ? cpu_qisa() : std::min(static_cast<QIsa>(forced), cpu_qisa());
}

// The portable path: the same integers in plain C++, reading the packed layout.
void tile_scalar(int64_t k_groups, const uint8_t* a, int64_t lda, int64_t mr, const int8_t* panel, int32_t* acc) {
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t c = 0; c < kQgemmNR; ++c) {
      int32_t s = 0;
      for (int64_t g = 0; g < k_groups; ++g)
        for (int64_t t = 0; t < kQgemmKGroup; ++t)
          s += int32_t{a[i * lda + g * 4 + t]} * int32_t{panel[(g * kQgemmNR + c) * 4 + t]};
      acc[i * kQgemmNR + c] = s;
    }
}

void quantize_row_scalar(const float* x, int64_t k, float scale, int32_t zero_point, uint8_t* q) {
  for (int64_t p = 0; p < k; ++p) q[p] = qgemm_detail::quantize_one(x[p], scale, zero_point);
}

struct Path {
  TileKernel tile;
  QuantizeRow quantize;
  int64_t mr;
};

Path active_path() {
  switch (active_qisa()) {
    case QIsa::kAvx512Vnni:
      return {qgemm_detail::tile_avx512vnni, qgemm_detail::quantize_row_avx512, qgemm_detail::kMrAvx512Vnni};
    case QIsa::kAvx2: return {qgemm_detail::tile_avx2, qgemm_detail::quantize_row_avx2, qgemm_detail::kMrAvx2};
    default: return {tile_scalar, quantize_row_scalar, qgemm_detail::kMrScalar};
  }
}

// Rows of C per work item: a block of A this tall stays in L1 while it meets every panel of its item.
constexpr int64_t kRowBlock = 64;
// An int8 multiply-add costs about a quarter of an f32 one on the dot-product instructions.
constexpr double kQgemmMacsPerThread = 4 * kGemmMacsPerThread;

}  // namespace

void quantize_weights_s8(const float* W, bool trans, int64_t K, int64_t N, int8_t* q, float* scale) {
  for (int64_t j = 0; j < N; ++j) {
    auto w = [&](int64_t k) { return trans ? W[j * K + k] : W[k * N + j]; };
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float v = w(k);
      if (!std::isfinite(v)) throw std::invalid_argument("quantize_weights_s8: a weight is not finite");
      amax = std::max(amax, std::fabs(v));
    }
    const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
    scale[j] = s;
    for (int64_t k = 0; k < K; ++k) {
      const float r = std::nearbyint(w(k) / s);
      q[j * K + k] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, r)));
    }
  }
}

QgemmPackedB qgemm_pack_b(const int8_t* q, int64_t K, int64_t N, const float* scale) {
  if (K < 0 || N < 0 || K > kQgemmMaxK)
    throw std::invalid_argument("qgemm_pack_b: K = " + std::to_string(K) + " outside [0, " +
                                std::to_string(kQgemmMaxK) + "] (i32 accumulation would overflow)");
  QgemmPackedB p;
  p.K = K;
  p.N = N;
  p.k_groups = qgemm_row_bytes(K) / kQgemmKGroup;
  p.panels = (N + kQgemmNR - 1) / kQgemmNR;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(p.panels * p.k_groups * kQgemmNR * kQgemmKGroup, 64));
  void* mem = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!mem) throw std::bad_alloc();
  std::memset(mem, 0, bytes);
  p.data = {static_cast<int8_t*>(mem), std::free};
  p.col_sum.reset(new int32_t[static_cast<size_t>(std::max<int64_t>(N, 1))]);
  p.scale.reset(new float[static_cast<size_t>(std::max<int64_t>(N, 1))]);
  int8_t* d = p.data.get();
  for (int64_t j = 0; j < N; ++j) {
    const int64_t panel = j / kQgemmNR, c = j % kQgemmNR;
    int8_t* base = d + panel * p.k_groups * kQgemmNR * kQgemmKGroup;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int8_t v = q[j * K + k];
      base[((k / 4) * kQgemmNR + c) * 4 + k % 4] = v;
      sum += v;
    }
    p.col_sum[j] = sum;
    p.scale[j] = scale[j];
  }
  return p;
}

void quantize_u8(const float* x, int64_t rows, int64_t K, int64_t ldx, float scale, int32_t zero_point, uint8_t* q,
                 int64_t ldq) {
  const QuantizeRow row = active_path().quantize;
  // Chunks of at least 4,096 values: a chunk per short row would cost more in hand-offs than it quantizes.
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(K, 1)), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      row(x + r * ldx, K, scale, zero_point, q + r * ldq);
      std::memset(q + r * ldq + K, 0, static_cast<size_t>(ldq - K));
    }
  }, element_threads(static_cast<double>(rows * K)));
}

void dynamic_u8_params(const float* x, int64_t n, float* scale, int32_t* zero_point) {
  float lo = 0.0f, hi = 0.0f;
  if (active_qisa() == QIsa::kAvx512Vnni) {
    qgemm_detail::finite_range_avx512(x, n, &lo, &hi);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
  }
  const float s = (hi - lo) / 255.0f;
  if (!(s > 0.0f) || !std::isfinite(s)) {
    *scale = 1.0f;
    *zero_point = 0;
    return;
  }
  *scale = s;
  *zero_point = static_cast<int32_t>(std::nearbyint(std::min(255.0f, std::max(0.0f, 0.0f - lo / s))));
}

void qgemm(int64_t M, const uint8_t* A, int64_t lda, float sa, int32_t za, const QgemmPackedB& B, float* C,
           int64_t c_row, int64_t c_col, GemmEpilogueFn<float> epilogue, void* epilogue_ctx) {
  const int64_t N = B.N;
  if (M <= 0 || N <= 0) return;
  if (lda < qgemm_row_bytes(B.K)) throw std::invalid_argument("qgemm: rows of A shorter than qgemm_row_bytes(K)");
  if (epilogue && c_col != 1) throw std::invalid_argument("qgemm: a block epilogue needs row-major C");
  const Path path = active_path();
  std::vector<float> s(static_cast<size_t>(N));
  for (int64_t j = 0; j < N; ++j) s[j] = sa * B.scale[j];
  const int64_t row_blocks = (M + kRowBlock - 1) / kRowBlock;
  const int64_t panel_bytes = B.k_groups * kQgemmNR * kQgemmKGroup;
  parallel_items(row_blocks * B.panels, [&](int64_t item, int) {
    const int64_t i_begin = item / B.panels * kRowBlock, i_end = std::min(M, i_begin + kRowBlock);
    const int64_t j0 = item % B.panels * kQgemmNR, nr = std::min(kQgemmNR, N - j0);
    const int8_t* panel = B.data.get() + item % B.panels * panel_bytes;
    alignas(64) int32_t acc[qgemm_detail::kMrAvx512Vnni * kQgemmNR];
    for (int64_t i0 = i_begin; i0 < i_end; i0 += path.mr) {
      const int64_t mr = std::min(path.mr, i_end - i0);
      path.tile(B.k_groups, A + i0 * lda, lda, mr, panel, acc);
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t c = 0; c < nr; ++c) {
          const int32_t v = acc[i * kQgemmNR + c] - za * B.col_sum[j0 + c];
          C[(i0 + i) * c_row + (j0 + c) * c_col] = static_cast<float>(v) * s[j0 + c];
        }
    }
    if (epilogue) epilogue(epilogue_ctx, C, c_row, i_begin, j0, i_end - i_begin, nr);
  }, threads_for(static_cast<double>(M) * N * B.K, kQgemmMacsPerThread));
}

void step_activation_params(int64_t zero_point, int64_t scale_bits, const float* x, int64_t n, float* scale,
                            int32_t* zp) {
  if (zero_point == -1) return dynamic_u8_params(x, n, scale, zp);
  double s;
  std::memcpy(&s, &scale_bits, sizeof s);
  if (zero_point < 0 || zero_point > 255 || !(s > 0) || !std::isfinite(static_cast<float>(s)))
    throw std::invalid_argument("int8 step: activation zero point " + std::to_string(zero_point) +
                                " or scale outside [0, 255] and (0, inf)");
  *scale = static_cast<float>(s);
  *zp = static_cast<int32_t>(zero_point);
}

void qgemm_f32(int64_t M, const float* x, float scale, int32_t zp, const QgemmPackedB& B, float* C,
               GemmEpilogueFn<float> epilogue, void* epilogue_ctx) {
  const int64_t K = B.K, lda = qgemm_row_bytes(K);
  uint8_t* a = scratch<uint8_t, ScratchSlot::Qgemm>(static_cast<size_t>(std::max<int64_t>(M * lda, 1)));
  quantize_u8(x, M, K, K, scale, zp, a, lda);
  qgemm(M, a, lda, scale, zp, B, C, B.N, 1, epilogue, epilogue_ctx);
}

void qgemm_force_isa(const char* isa) {
  const std::string s = isa ? isa : "";
  if (s.empty()) g_forced.store(-1);
  else if (s == "avx512vnni") g_forced.store(static_cast<int>(QIsa::kAvx512Vnni));
  else if (s == "avx2") g_forced.store(static_cast<int>(QIsa::kAvx2));
  else if (s == "scalar") g_forced.store(static_cast<int>(QIsa::kScalar));
  else throw std::invalid_argument("qgemm_force_isa: unknown path '" + s + "' (avx512vnni, avx2, scalar or '')");
}

const char* qgemm_kernel_name() {
  switch (active_qisa()) {
    case QIsa::kAvx512Vnni: return "avx512vnni";
    case QIsa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace dlc
