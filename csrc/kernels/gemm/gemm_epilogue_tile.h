// The tile loop of the GEMM epilogue (gemm_epilogue.h), compiled once per kernel path into
// gemm_epilogue_{generic,avx2,avx512}.cpp with that path's register-tile shape TR x TC. Internal linkage
// throughout, like elementwise_tile.h whose instruction bodies it runs: the copies built for different
// instruction sets must never be merged by the linker (so no std:: algorithm templates here either).
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/elementwise/elementwise_tile.h"
#include "kernels/gemm/gemm_epilogue.h"

namespace dlc {
namespace {

// Copies an operand's part of the tile at (r, c), m x n of it valid, into a TR x TC buffer (rows TC apart).
// Invalid rows and columns are zero: the program runs over whole buffers and their results are dropped.
template <typename T, int TR, int TC>
inline void load_operand(const EpilogueOperand<T>& op, int64_t r, int64_t c, int64_t m, int64_t n, T* buf) {
  if (m < TR || n < TC)
    for (int t = 0; t < TR * TC; ++t) buf[t] = T(0);
  for (int64_t i = 0; i < m; ++i) {
    const T* src = op.base + (r + i) * op.rs + c * op.cs;
    T* dst = buf + i * TC;
    if (op.cs == 0) {
      const T v = src[0];
      for (int64_t j = 0; j < n; ++j) dst[j] = v;
    } else if (n == TC) {
      for (int j = 0; j < TC; ++j) dst[j] = src[j];
    } else {
      for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
    }
  }
}

// Runs the epilogue's steps over `count` elements whose operands are at src[k] (registers in reg);
// store(j, values) writes output j's part.
template <typename T, typename Store>
inline void run_steps(const TileEpilogue<T>& e, const T* const* src, T (*reg)[kTile], int64_t count, Store&& store) {
  auto operand = [&](int64_t x) -> const T* { return x >= 0 ? reg[x] : src[-x - 1]; };
  for (int s = 0; s < e.n_steps; ++s) {
    const EpilogueStep& st = e.steps[s];
    switch (st.kind) {
      case EpilogueStep::kRun:
        run_tile<T>(TileArgs<T>{e.instr + st.first * kInstrInts, st.count, e.imm + st.first, src, reg, count,
                                e.args, 0, 0});
        break;
      case EpilogueStep::kGeluPair:
        if constexpr (std::is_same_v<T, float>) {
          const float* x = operand(st.src);
          if (st.dst < 0) {  // the gradient alone (a backward epilogue): still one exp instead of two
            float* d = reg[st.dst2];
            for (int64_t t = 0; t < count; ++t) {
              float gv, dv;
              gelu_erf_pair(x[t], &gv, &dv);
              d[t] = dv;
            }
          } else {
            float* g = reg[st.dst];
            float* d = reg[st.dst2];
            for (int64_t t = 0; t < count; ++t) {
              float gv, dv;
              gelu_erf_pair(x[t], &gv, &dv);
              g[t] = gv;
              d[t] = dv;
            }
          }
        }
        break;
      case EpilogueStep::kStore:
        store(st.dst, operand(st.src));
        break;
    }
  }
}

// A window of fewer rows than a register tile (the row of a matrix-vector product, the few rows of a small-M
// product) runs row by row, in pieces of up to kTile columns: a TR x TC tile would compute mostly on its empty
// rows (a matrix-vector product's bias + relu cost 8x its work on AVX-512). Operands are copied first, as in
// the tile form, since an output may overwrite an input the program reads later.
template <typename T>
void run_epilogue_rows(const TileEpilogue<T>& e, const T* tile, int64_t ld_tile, int64_t r0, int64_t r1, int64_t c0,
                       int64_t c1) {
  alignas(64) T inbuf[kEpilogueMaxIn][kTile];
  alignas(64) T reg[32][kTile];
  const T* src[kEpilogueMaxIn];
  for (int k = 0; k < e.n_in; ++k) src[k] = inbuf[k];
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; c += kTile) {
      const int64_t n = c1 - c < kTile ? c1 - c : kTile;
      for (int k = 0; k < e.n_in; ++k) {
        if (!(e.used_in >> k & 1u)) continue;
        const EpilogueOperand<T>& op = e.in[k];
        const T* from = k == 0 && tile ? tile + (r - r0) * ld_tile + (c - c0) : op.base + r * op.rs + c * op.cs;
        if (op.cs == 0 && !(k == 0 && tile))
          for (int64_t j = 0; j < n; ++j) inbuf[k][j] = from[0];
        else
          for (int64_t j = 0; j < n; ++j) inbuf[k][j] = from[j];
      }
      run_steps(e, src, reg, n, [&](int64_t j, const T* v) {
        T* dst = e.out[j] + r * e.ldo + c;
        for (int64_t t = 0; t < n; ++t) dst[t] = v[t];
      });
    }
  }
}

template <typename T, int TR, int TC>
void run_epilogue_tiles(const TileEpilogue<T>& e, const T* tile, int64_t ld_tile, int64_t r0, int64_t r1, int64_t c0,
                        int64_t c1) {
  constexpr int TN = TR * TC;
  static_assert(TN <= kTile, "a tile fits the evaluator's registers");
  if (r1 - r0 < TR) {
    run_epilogue_rows<T>(e, tile, ld_tile, r0, r1, c0, c1);
    return;
  }
  alignas(64) T inbuf[kEpilogueMaxIn][TN];
  alignas(64) T reg[32][kTile];
  const T* src[kEpilogueMaxIn];
  for (int k = 0; k < e.n_in; ++k) src[k] = inbuf[k];
  for (int64_t r = r0; r < r1; r += TR) {
    const int64_t m = r1 - r < TR ? r1 - r : TR;
    for (int64_t c = c0; c < c1; c += TC) {
      const int64_t n = c1 - c < TC ? c1 - c : TC;
      for (int k = 0; k < e.n_in; ++k) {
        if (!(e.used_in >> k & 1u)) continue;
        if (k == 0 && tile && ld_tile == TC && r == r0 && c == c0) {
          src[0] = tile;  // the GEMM's own tile buffer has the layout (invalid rows and columns are dropped)
        } else if (k == 0 && tile) {
          src[0] = inbuf[0];
          load_operand<T, TR, TC>({tile + (r - r0) * ld_tile + (c - c0), ld_tile, 1}, 0, 0, m, n, inbuf[0]);
        } else {
          load_operand<T, TR, TC>(e.in[k], r, c, m, n, inbuf[k]);
        }
      }
      run_steps(e, src, reg, TN, [&](int64_t j, const T* v) {
        T* dst = e.out[j] + r * e.ldo + c;
        for (int64_t i = 0; i < m; ++i, dst += e.ldo) {
          if (n == TC)
            for (int t = 0; t < TC; ++t) dst[t] = v[i * TC + t];
          else
            for (int64_t t = 0; t < n; ++t) dst[t] = v[i * TC + t];
        }
      });
    }
  }
  // The GEMM's next tile on this thread is usually the one below (same columns). Its operands and outputs are
  // in memory (activations and their gradients, tensors of a few MiB); fetching them into L2 now lets the
  // misses overlap that tile's multiplications. Not into L1: with a power-of-two row length every row maps to
  // the same L1 sets and would evict the B panel the micro-kernel reuses.
  const int64_t left = e.rows - r1;
  const int64_t rows = left < TR ? left : TR;
  constexpr int64_t kLine = 64 / sizeof(T);
  for (int k = 1; k < e.n_in; ++k) {
    const EpilogueOperand<T>& op = e.in[k];
    if (!(e.used_in >> k & 1u) || op.rs == 0) continue;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = c0; c < c1; c += kLine) __builtin_prefetch(op.base + (r1 + i) * op.rs + c * op.cs, 0, 2);
  }
  for (int j = 0; j < e.n_out; ++j) {
    if (!(e.stored_out >> j & 1u)) continue;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = c0; c < c1; c += kLine) __builtin_prefetch(e.out[j] + (r1 + i) * e.ldo + c, 1, 2);
  }
}

}  // namespace
}  // namespace dlc
