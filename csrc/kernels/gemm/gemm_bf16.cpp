// The bf16 GEMM's driver and its portable path (gemm_bf16.h). A is converted to bf16 rows once per call, B is
// packed into 32-column panels (once, when the plan keeps it packed: runtime/packed_weights.h), and threads take
// (row block, column group) items; each item runs the path's tile kernel on every 8 x 32 tile and then the
// epilogue on the finished block.
#include "kernels/gemm/gemm_bf16.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/thread_pool.h"

namespace dlc {
namespace {

// Rows of A per item (a multiple of kBf16Rows) and panels per item: an item's block of C is 64 x 128.
constexpr int64_t kItemRows = 64;
constexpr int64_t kItemPanels = 4;
// Elements a conversion (A's rows, B's panels) takes per thread: vectorized it runs at about 0.1 ns an element,
// so below this a second thread costs more to wake than it saves (batch-1 convolutions convert three times per
// image).
constexpr double kConvertPerThread = 1 << 18;

void convert_portable(const float* src, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_round(src[i]);
  if (n & 1) dst[n] = 0;
}

uint32_t pair(float lo, float hi) {
  return static_cast<uint32_t>(bf16_round(lo)) | (static_cast<uint32_t>(bf16_round(hi)) << 16);
}

void pack_panel_portable(const float* B, int64_t ldb, int64_t K, int64_t n, uint32_t* dst) {
  for (int64_t p = 0; p < (K + 1) / 2; ++p) {
    const float* r0 = B + 2 * p * ldb;
    const float* r1 = 2 * p + 1 < K ? r0 + ldb : nullptr;
    uint32_t* d = dst + p * kBf16Panel;
    for (int64_t j = 0; j < kBf16Panel; ++j) d[j] = j < n ? pair(r0[j], r1 ? r1[j] : 0.f) : 0u;
  }
}

// One row of C against a panel: 32 f32 sums, a loop the compiler vectorizes with the baseline's SSE.
void tile_portable(int64_t pairs, const uint32_t* a, int64_t lda, int64_t m, const uint32_t* b, float* c,
                   int64_t ldc, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    float acc[kBf16Panel] = {};
    const uint32_t* ai = a + i * lda;
    for (int64_t p = 0; p < pairs; ++p) {
      const float a0 = bf16_to_f32(static_cast<uint16_t>(ai[p])), a1 = bf16_to_f32(static_cast<uint16_t>(ai[p] >> 16));
      const uint32_t* bp = b + p * kBf16Panel;
      for (int64_t j = 0; j < kBf16Panel; ++j)
        acc[j] += a0 * bf16_to_f32(static_cast<uint16_t>(bp[j])) + a1 * bf16_to_f32(static_cast<uint16_t>(bp[j] >> 16));
    }
    std::copy(acc, acc + n, c + i * ldc);
  }
}

const Bf16Path kPortable{&convert_portable, &pack_panel_portable, &tile_portable};

// -1 automatic, 0 portable, 1 AVX512_BF16.
std::atomic<int> g_forced{-1};

const Bf16Path& active_path() {
  const Bf16Path* fast = cpu_has_avx512_bf16() ? bf16_avx512_path() : nullptr;
  return fast && g_forced.load(std::memory_order_relaxed) != 0 ? *fast : kPortable;
}

// Grow-only per-thread buffers: A's bf16 rows, and B's panels when no packed copy is given.
template <int Slot>
uint32_t* scratch_words(size_t n) {
  thread_local std::vector<uint32_t> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

void pack_into(const Bf16Path& path, bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb,
               uint32_t* out) {
  const int64_t pairs = (K + 1) / 2, panels = (N + kBf16Panel - 1) / kBf16Panel;
  parallel_items(panels, [&](int64_t p, int) {
    const int64_t j0 = p * kBf16Panel, n = std::min(kBf16Panel, N - j0);
    uint32_t* dst = out + p * pairs * kBf16Panel;
    if (!trans_b) {
      path.pack_panel(B + j0, ldb, K, n, dst);
      return;
    }
    // op(B)'s column j is row j of B: converted whole, its pairs are the column's words.
    std::vector<uint16_t> row(static_cast<size_t>(2 * pairs));
    for (int64_t j = 0; j < kBf16Panel; ++j) {
      if (j < n) path.convert(B + (j0 + j) * ldb, K, row.data());
      for (int64_t q = 0; q < pairs; ++q)
        dst[q * kBf16Panel + j] = j < n ? static_cast<uint32_t>(row[2 * q]) | (static_cast<uint32_t>(row[2 * q + 1]) << 16)
                                        : 0u;
    }
  }, threads_for(static_cast<double>(K) * N, kConvertPerThread));
}

}  // namespace

bool cpu_has_avx512_bf16() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  }();
  return has;
}

const Bf16Path& bf16_portable_path() { return kPortable; }

void gemm_bf16_force_isa(const char* isa) {
  const std::string s = isa ? isa : "";
  if (s.empty())
    g_forced.store(-1);
  else if (s == "scalar")
    g_forced.store(0);
  else if (s == "avx512_bf16")
    g_forced.store(1);
  else
    throw std::invalid_argument("unknown bf16 GEMM path '" + s + "' (avx512_bf16, scalar or empty)");
}

const char* gemm_bf16_kernel_name() { return &active_path() == &kPortable ? "scalar" : "avx512_bf16"; }

Bf16PackedB gemm_bf16_pack_b(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb) {
  Bf16PackedB out;
  out.trans_b = trans_b;
  out.K = K;
  out.N = N;
  out.pairs = (K + 1) / 2;
  out.words = out.pairs * ((N + kBf16Panel - 1) / kBf16Panel) * kBf16Panel;
  out.data.reset(new uint32_t[static_cast<size_t>(std::max<int64_t>(out.words, 1))]);
  pack_into(active_path(), trans_b, K, N, B, ldb, out.data.get());
  return out;
}

void gemm_bf16(bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
               int64_t ldb, float* C, int64_t ldc, GemmEpilogueFn<float> epilogue, void* epilogue_ctx,
               const Bf16PackedB* packed) {
  if (M <= 0 || N <= 0) return;
  const Bf16Path& path = active_path();
  const int64_t pairs = (K + 1) / 2, panels = (N + kBf16Panel - 1) / kBf16Panel;
  const Threads threads = threads_for(static_cast<double>(M) * N * K, kGemmMacsPerThread);
  // A's rows in bf16: activations are rounded here, once per call.
  uint32_t* a16 = scratch_words<0>(static_cast<size_t>(M * pairs));
  parallel_items(M, [&](int64_t i, int) {
    path.convert(A + i * lda, K, reinterpret_cast<uint16_t*>(a16 + i * pairs));
  }, threads_for(static_cast<double>(M) * K, kConvertPerThread));
  const uint32_t* b16;
  if (packed) {
    if (packed->K != K || packed->N != N || packed->trans_b != trans_b)
      throw std::invalid_argument("bf16 GEMM: the packed B was made for another shape");
    b16 = packed->data.get();
  } else {
    uint32_t* buf = scratch_words<1>(static_cast<size_t>(pairs * panels * kBf16Panel));
    pack_into(path, trans_b, K, N, B, ldb, buf);
    b16 = buf;
  }
  const int64_t row_blocks = (M + kItemRows - 1) / kItemRows, groups = (panels + kItemPanels - 1) / kItemPanels;
  parallel_items(row_blocks * groups, [&](int64_t item, int) {
    const int64_t i0 = item / groups * kItemRows, m = std::min(kItemRows, M - i0);
    const int64_t p0 = item % groups * kItemPanels, p1 = std::min(panels, p0 + kItemPanels);
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j0 = p * kBf16Panel, n = std::min(kBf16Panel, N - j0);
      for (int64_t i = i0; i < i0 + m; i += kBf16Rows)
        path.tile(pairs, a16 + i * pairs, pairs, std::min(kBf16Rows, i0 + m - i), b16 + p * pairs * kBf16Panel,
                  C + i * ldc + j0, ldc, n);
    }
    if (epilogue) {
      const int64_t j0 = p0 * kBf16Panel;
      epilogue(epilogue_ctx, C, ldc, i0, j0, m, std::min(N, p1 * kBf16Panel) - j0);
    }
  }, threads);
}

}  // namespace dlc
