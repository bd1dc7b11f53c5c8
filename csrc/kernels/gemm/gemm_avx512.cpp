// AVX-512 micro-kernels and matrix-vector kernels. The build compiles every *_avx512.cpp with
// -mavx512f/dq/bw/vl -mavx2 -mfma, so nothing here may run unless the driver has checked the CPU. As in
// gemm_avx2.cpp, everything below is an intrinsic or has internal linkage: an AVX-512-compiled copy of a
// shared inline function could otherwise be the one the linker keeps for the whole program.
#include <immintrin.h>

#include <cstdint>

#include "gemm_kernels.h"
#include "gemm_simd.h"

namespace dlc::gemm_detail {
namespace {

// Thin per-type wrappers so one kernel body serves float (16 lanes) and double (8 lanes). Masks select
// the first lanes of a vector: partial tiles and tails are loaded and stored with them instead of
// falling back to scalar code.
struct F32 {
  using T = float;
  using V = __m512;
  using M = __mmask16;
  static constexpr int L = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(T x) { return _mm512_set1_ps(x); }
  static V loadu(const T* p) { return _mm512_loadu_ps(p); }
  static V maskz_loadu(M m, const T* p) { return _mm512_maskz_loadu_ps(m, p); }
  static V load_first(const T* p, int64_t n) { return maskz_loadu(static_cast<M>((uint32_t{1} << n) - 1), p); }
  static void storeu(T* p, V v) { _mm512_storeu_ps(p, v); }
  static void mask_storeu(T* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static T hsum(V v) { return _mm512_reduce_add_ps(v); }
};
struct F64 {
  using T = double;
  using V = __m512d;
  using M = __mmask8;
  static constexpr int L = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V set1(T x) { return _mm512_set1_pd(x); }
  static V loadu(const T* p) { return _mm512_loadu_pd(p); }
  static V maskz_loadu(M m, const T* p) { return _mm512_maskz_loadu_pd(m, p); }
  static V load_first(const T* p, int64_t n) { return maskz_loadu(static_cast<M>((uint32_t{1} << n) - 1), p); }
  static void storeu(T* p, V v) { _mm512_storeu_pd(p, v); }
  static void mask_storeu(T* p, M m, V v) { _mm512_mask_storeu_pd(p, m, v); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static T hsum(V v) { return _mm512_reduce_add_pd(v); }
};

// ROWS x NV vectors of C from a packed A panel of MR rows and k rows of B, ldb elements apart (a packed
// panel, ldb == NR, or op(B) itself): the full tile when ROWS == MR and NV == 2, otherwise the top-left
// part an edge tile needs. Each k step does NV B loads, ROWS broadcasts of A and ROWS*NV FMAs into
// accumulators that stay in registers for the whole k loop. In an edge tile (EDGE) the last vector of
// each row of B and C is loaded and stored under `last`, so it touches only the valid columns.
template <typename S, int MR, int ROWS, int NV, bool EDGE, typename T = typename S::T>
inline __attribute__((always_inline)) void tile(int64_t k, const T* a, const T* b, int64_t ldb, T alpha, T beta,
                                                T* c, int64_t ldc, typename S::M last) {
  using V = typename S::V;
  constexpr int L = S::L;
  V acc[ROWS][NV];
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();
  const auto step = [&]() __attribute__((always_inline)) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = EDGE && v == NV - 1 ? S::maskz_loadu(last, b + v * L) : S::loadu(b + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      const V ai = S::set1(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += ldb;
  };
  // The tile of C is read and written after the k loop. Pulling it in a few steps before the end hides
  // the miss; pulling it in at the start would keep it in L1 for the whole loop, and with a power-of-two
  // ldc its rows share a cache set and evict the B panel the next tiles reuse.
  constexpr int64_t kPrefetchSteps = 8;
  int64_t p = 0;
  for (; p < k - kPrefetchSteps; ++p) step();
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NV * L - 1), _MM_HINT_T0);
  }
  for (; p < k; ++p) step();
  const typename S::M m = EDGE ? last : first_lanes<S>(L);
  const V va = S::set1(alpha);
  if (beta == T(0)) {
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      T* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV - 1; ++v) S::storeu(ci + v * L, S::mul(va, acc[i][v]));
      S::mask_storeu(ci + (NV - 1) * L, m, S::mul(va, acc[i][NV - 1]));
    }
  } else {
    const V vb = S::set1(beta);
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      T* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV - 1; ++v)
        S::storeu(ci + v * L, S::fma(va, acc[i][v], S::mul(vb, S::loadu(ci + v * L))));
      T* cl = ci + (NV - 1) * L;
      S::mask_storeu(cl, m, S::fma(va, acc[i][NV - 1], S::mul(vb, S::maskz_loadu(m, cl))));
    }
  }
}

// Any tile, full or partial: a partial one gets the instantiation with exactly its rows and vectors, so
// a thin tile costs in proportion to its size rather than a full tile's.
template <typename S, int MR, int ROWS = MR, typename T = typename S::T>
inline void any_tile(int64_t k, const T* a, const T* b, int64_t ldb, T alpha, T beta, T* c, int64_t ldc,
                     int64_t mr, int64_t nr) {
  constexpr int L = S::L;
  if (mr == MR && nr == 2 * L) {
    tile<S, MR, MR, 2, false>(k, a, b, ldb, alpha, beta, c, ldc, first_lanes<S>(L));
  } else if (mr == ROWS) {
    if (nr <= L)
      tile<S, MR, ROWS, 1, true>(k, a, b, ldb, alpha, beta, c, ldc, first_lanes<S>(nr));
    else
      tile<S, MR, ROWS, 2, true>(k, a, b, ldb, alpha, beta, c, ldc, first_lanes<S>(nr - L));
  } else if constexpr (ROWS > 1) {
    any_tile<S, MR, ROWS - 1>(k, a, b, ldb, alpha, beta, c, ldc, mr, nr);
  }
}

// Packing works on 8 x 8 blocks: a ymm register holds 8 floats, a zmm register 8 doubles.
struct Pack32 {
  using T = float;
  using V = __m256;
  static V maskz_loadu(__mmask8 m, const T* p) { return _mm256_maskz_loadu_ps(m, p); }
  static void storeu(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V zero() { return _mm256_setzero_ps(); }
  // r[i] = row i of an 8 x 8 block -> r[j] = column j.
  static void transpose(V r[8]) {
    // Interleave row pairs, then pairs of pairs within each 128-bit half, then swap the halves.
    V t[8], u[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // a0 b0 a1 b1 | a4 b4 a5 b5
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3 | a6 b6 a7 b7
    }
    for (int h = 0; h < 2; ++h) {
      const V* q = t + 4 * h;  // rows 4h .. 4h+3
      u[4 * h + 0] = _mm256_shuffle_ps(q[0], q[2], 0x44);  // columns 0 | 4
      u[4 * h + 1] = _mm256_shuffle_ps(q[0], q[2], 0xEE);  // columns 1 | 5
      u[4 * h + 2] = _mm256_shuffle_ps(q[1], q[3], 0x44);  // columns 2 | 6
      u[4 * h + 3] = _mm256_shuffle_ps(q[1], q[3], 0xEE);  // columns 3 | 7
    }
    for (int j = 0; j < 4; ++j) {
      r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
      r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
  }
};
struct Pack64 {
  using T = double;
  using V = __m512d;
  static V maskz_loadu(__mmask8 m, const T* p) { return _mm512_maskz_loadu_pd(m, p); }
  static void storeu(T* p, V v) { _mm512_storeu_pd(p, v); }
  static V zero() { return _mm512_setzero_pd(); }
  static void transpose(V r[8]) {
    // Interleave row pairs (128-bit lanes then hold (row 2i, row 2i+1) of one column), then gather lanes:
    // first the even/odd lanes of row pairs {0,1}+{2,3} and {4,5}+{6,7}, then of those two.
    V t[8], u[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);      // columns 0 2 4 6
      t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);  // columns 1 3 5 7
    }
    for (int o = 0; o < 2; ++o) {  // o: even or odd columns
      u[4 * o + 0] = _mm512_shuffle_f64x2(t[o], t[2 + o], 0x88);  // rows 0-3, columns o, 4+o
      u[4 * o + 1] = _mm512_shuffle_f64x2(t[o], t[2 + o], 0xDD);  // rows 0-3, columns 2+o, 6+o
      u[4 * o + 2] = _mm512_shuffle_f64x2(t[4 + o], t[6 + o], 0x88);  // rows 4-7
      u[4 * o + 3] = _mm512_shuffle_f64x2(t[4 + o], t[6 + o], 0xDD);
    }
    for (int o = 0; o < 2; ++o) {
      r[o] = _mm512_shuffle_f64x2(u[4 * o], u[4 * o + 2], 0x88);
      r[4 + o] = _mm512_shuffle_f64x2(u[4 * o], u[4 * o + 2], 0xDD);
      r[2 + o] = _mm512_shuffle_f64x2(u[4 * o + 1], u[4 * o + 3], 0x88);
      r[6 + o] = _mm512_shuffle_f64x2(u[4 * o + 1], u[4 * o + 3], 0xDD);
    }
  }
};

// Copy form of PackKernel: each row of the panel is R / 8 masked loads and full stores, the padding
// columns coming out as zeros from the masked-off lanes.
template <typename S, typename T = typename S::T>
void pack_copy(const T* src, int64_t ld, int64_t n, int64_t kc, int64_t R, T* dst) {
  for (int64_t p = 0; p < kc; ++p, src += ld, dst += R)
    for (int64_t j = 0; j < R; j += 8) {
      const int64_t left = n - j;
      const __mmask8 m = left >= 8 ? 0xFF : left <= 0 ? 0 : static_cast<__mmask8>((1u << left) - 1);
      S::storeu(dst + j, S::maskz_loadu(m, src + j));
    }
}

// Transpose form of PackKernel: 8 x 8 blocks transposed in registers. Rows past n are zero vectors and
// are never read; the last block of k loads only its valid columns and stores only its valid rows.
template <typename S, typename T = typename S::T>
void pack_transpose(const T* src, int64_t ld, int64_t n, int64_t kc, int64_t R, T* dst) {
  using V = typename S::V;
  for (int64_t j0 = 0; j0 < R; j0 += 8) {
    const int64_t rows = n - j0 < 0 ? 0 : n - j0 < 8 ? n - j0 : 8;
    for (int64_t p0 = 0; p0 < kc; p0 += 8) {
      const int64_t cols = kc - p0 < 8 ? kc - p0 : 8;
      const __mmask8 m = static_cast<__mmask8>((1u << cols) - 1);
      V r[8];
      for (int i = 0; i < 8; ++i) r[i] = i < rows ? S::maskz_loadu(m, src + (j0 + i) * ld + p0) : S::zero();
      S::transpose(r);
      for (int q = 0; q < cols; ++q) S::storeu(dst + (p0 + q) * R + j0, r[q]);
    }
  }
}

// Axpy form: partial sums for up to kCols outputs live in an L1-resident array and four rows of W are
// folded in per pass, so each load/store of a partial sum is shared by four FMAs while W is read row
// after row in address order. The last partial vector of a column block is masked.
template <typename S, typename T = typename S::T>
void gemv_axpy(int64_t n, int64_t k, const T* w, int64_t ldw, const T* x, T alpha, T beta, T* y, int64_t incy) {
  using V = typename S::V;
  using M = typename S::M;
  constexpr int L = S::L;
  constexpr int64_t kCols = 256;
  alignas(64) T sums[kCols];
  for (int64_t j0 = 0; j0 < n; j0 += kCols, w += kCols) {
    const int64_t nb = n - j0 < kCols ? n - j0 : kCols;
    for (int64_t c = 0; c < nb; ++c) sums[c] = T(0);
    int64_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const T* r0 = w + p * ldw;
      const T *r1 = r0 + ldw, *r2 = r1 + ldw, *r3 = r2 + ldw;
      const V x0 = S::set1(x[p]), x1 = S::set1(x[p + 1]), x2 = S::set1(x[p + 2]), x3 = S::set1(x[p + 3]);
      for (int64_t c = 0; c < nb; c += L) {
        const M m = first_lanes<S>(nb - c < L ? nb - c : L);
        V acc = S::fma(x0, S::maskz_loadu(m, r0 + c), S::maskz_loadu(m, sums + c));
        acc = S::fma(x1, S::maskz_loadu(m, r1 + c), acc);
        acc = S::fma(x2, S::maskz_loadu(m, r2 + c), acc);
        S::mask_storeu(sums + c, m, S::fma(x3, S::maskz_loadu(m, r3 + c), acc));
      }
    }
    for (; p < k; ++p) {
      const T* r0 = w + p * ldw;
      const V x0 = S::set1(x[p]);
      for (int64_t c = 0; c < nb; c += L) {
        const M m = first_lanes<S>(nb - c < L ? nb - c : L);
        S::mask_storeu(sums + c, m, S::fma(x0, S::maskz_loadu(m, r0 + c), S::maskz_loadu(m, sums + c)));
      }
    }
    for (int64_t c = 0; c < nb; ++c) store_scaled(y + (j0 + c) * incy, sums[c], alpha, beta);
  }
}

}  // namespace

static_assert(Avx512Tile<float>::NR == 2 * F32::L && Avx512Tile<double>::NR == 2 * F64::L,
              "kernel is two vectors wide");

void microkernel_avx512(int64_t k, const float* a, const float* b, float alpha, float beta, float* c,
                        int64_t ldc) {
  constexpr int MR = Avx512Tile<float>::MR;
  tile<F32, MR, MR, 2, false>(k, a, b, Avx512Tile<float>::NR, alpha, beta, c, ldc, first_lanes<F32>(F32::L));
}
void microkernel_avx512(int64_t k, const double* a, const double* b, double alpha, double beta, double* c,
                        int64_t ldc) {
  constexpr int MR = Avx512Tile<double>::MR;
  tile<F64, MR, MR, 2, false>(k, a, b, Avx512Tile<double>::NR, alpha, beta, c, ldc, first_lanes<F64>(F64::L));
}

void microkernel_edge_avx512(int64_t k, const float* a, const float* b, float alpha, float beta, float* c,
                             int64_t ldc, int64_t mr, int64_t nr) {
  any_tile<F32, Avx512Tile<float>::MR>(k, a, b, Avx512Tile<float>::NR, alpha, beta, c, ldc, mr, nr);
}
void microkernel_edge_avx512(int64_t k, const double* a, const double* b, double alpha, double beta, double* c,
                             int64_t ldc, int64_t mr, int64_t nr) {
  any_tile<F64, Avx512Tile<double>::MR>(k, a, b, Avx512Tile<double>::NR, alpha, beta, c, ldc, mr, nr);
}

void microkernel_direct_b_avx512(int64_t k, const float* a, const float* b, int64_t ldb, float alpha, float beta,
                                 float* c, int64_t ldc, int64_t mr, int64_t nr) {
  any_tile<F32, Avx512Tile<float>::MR>(k, a, b, ldb, alpha, beta, c, ldc, mr, nr);
}
void microkernel_direct_b_avx512(int64_t k, const double* a, const double* b, int64_t ldb, double alpha,
                                 double beta, double* c, int64_t ldc, int64_t mr, int64_t nr) {
  any_tile<F64, Avx512Tile<double>::MR>(k, a, b, ldb, alpha, beta, c, ldc, mr, nr);
}

void pack_copy_avx512(const float* src, int64_t ld, int64_t n, int64_t kc, int64_t R, float* dst) {
  pack_copy<Pack32>(src, ld, n, kc, R, dst);
}
void pack_copy_avx512(const double* src, int64_t ld, int64_t n, int64_t kc, int64_t R, double* dst) {
  pack_copy<Pack64>(src, ld, n, kc, R, dst);
}
void pack_transpose_avx512(const float* src, int64_t ld, int64_t n, int64_t kc, int64_t R, float* dst) {
  pack_transpose<Pack32>(src, ld, n, kc, R, dst);
}
void pack_transpose_avx512(const double* src, int64_t ld, int64_t n, int64_t kc, int64_t R, double* dst) {
  pack_transpose<Pack64>(src, ld, n, kc, R, dst);
}

void gemv_dot_avx512(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float alpha, float beta,
                     float* y, int64_t incy) {
  gemv_dot<F32>(n, k, w, ldw, x, alpha, beta, y, incy);
}
void gemv_dot_avx512(int64_t n, int64_t k, const double* w, int64_t ldw, const double* x, double alpha,
                     double beta, double* y, int64_t incy) {
  gemv_dot<F64>(n, k, w, ldw, x, alpha, beta, y, incy);
}
void gemv_axpy_avx512(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float alpha, float beta,
                      float* y, int64_t incy) {
  gemv_axpy<F32>(n, k, w, ldw, x, alpha, beta, y, incy);
}
void gemv_axpy_avx512(int64_t n, int64_t k, const double* w, int64_t ldw, const double* x, double alpha,
                      double beta, double* y, int64_t incy) {
  gemv_axpy<F64>(n, k, w, ldw, x, alpha, beta, y, incy);
}

void small_dot_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float alpha, float beta, float* c, int64_t ldc) {
  small_dot<F32, 4, 4>(m, n, k, a, lda, b, ldb, alpha, beta, c, ldc);
}
void small_dot_avx512(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b, int64_t ldb,
                      double alpha, double beta, double* c, int64_t ldc) {
  small_dot<F64, 4, 4>(m, n, k, a, lda, b, ldb, alpha, beta, c, ldc);
}

}  // namespace dlc::gemm_detail
