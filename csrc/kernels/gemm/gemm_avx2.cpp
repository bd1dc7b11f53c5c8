// AVX2 + FMA micro-kernels. The build compiles every *_avx2.cpp with -mavx2 -mfma, so nothing here may
// run unless the driver has checked the CPU. Keep this file free of standard-library templates and
// inline functions from shared headers: an AVX2-compiled copy of such a function could be the one the
// linker keeps for the whole program and fault on an older CPU. Everything below is either an intrinsic
// or has internal linkage.
#include <immintrin.h>

#include <cstdint>

#include "gemm_kernels.h"
#include "gemm_simd.h"

namespace dlc::gemm_detail {
namespace {

// Thin per-type wrappers so one kernel body serves float (8 lanes) and double (4 lanes).
struct F32 {
  using T = float;
  using V = __m256;
  static constexpr int L = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static V set1(T x) { return _mm256_set1_ps(x); }
  static V load(const T* p) { return _mm256_load_ps(p); }
  static V loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, V v) { _mm256_storeu_ps(p, v); }
  static void store(T* p, V v) { _mm256_store_ps(p, v); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  // All-ones in the first n lanes (0 <= n <= L): masked loads of partial rows, which never touch the others.
  static __m256i first_lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V maskload(const T* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  static void maskstore(T* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
  static V load_first(const T* p, int64_t n) { return maskload(p, first_lanes(n)); }
  static T hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
};
struct F64 {
  using T = double;
  using V = __m256d;
  static constexpr int L = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static V set1(T x) { return _mm256_set1_pd(x); }
  static V load(const T* p) { return _mm256_load_pd(p); }
  static V loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, V v) { _mm256_storeu_pd(p, v); }
  static void store(T* p, V v) { _mm256_store_pd(p, v); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static __m256i first_lanes(int64_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static V maskload(const T* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  static void maskstore(T* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
  static V load_first(const T* p, int64_t n) { return maskload(p, first_lanes(n)); }
  static T hsum(V v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

// MR rows x 2 vectors: each k step does 2 aligned B loads, MR broadcasts of A and 2*MR FMAs into
// accumulators that live in registers for the whole k loop (the loops over i/j are fully unrolled).
template <typename S, int MR, typename T = typename S::T>
inline __attribute__((always_inline)) void kernel_2v(int64_t k, const T* a, const T* b, T alpha, T beta, T* c,
                                                      int64_t ldc) {
  using V = typename S::V;
  constexpr int L = S::L;
  V acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = S::zero();
    acc[i][1] = S::zero();
    // The tile of C is written at the end; start pulling it in now so the stores do not stall.
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 2 * L - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < k; ++p) {
    const V b0 = S::load(b);
    const V b1 = S::load(b + L);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const V ai = S::bcast(a + i);
      acc[i][0] = S::fma(ai, b0, acc[i][0]);
      acc[i][1] = S::fma(ai, b1, acc[i][1]);
    }
    a += MR;
    b += 2 * L;
  }
  const V va = S::set1(alpha);
  if (beta == T(0)) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      S::storeu(c + i * ldc, S::mul(va, acc[i][0]));
      S::storeu(c + i * ldc + L, S::mul(va, acc[i][1]));
    }
  } else {
    const V vb = S::set1(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      T* ci = c + i * ldc;
      S::storeu(ci, S::fma(va, acc[i][0], S::mul(vb, S::loadu(ci))));
      S::storeu(ci + L, S::fma(va, acc[i][1], S::mul(vb, S::loadu(ci + L))));
    }
  }
}

// The micro-kernel's arithmetic on B read in place (see DirectBKernel): ROWS x NV vectors of C from a packed A
// panel of MR rows and k rows of op(B), ldb elements apart. The last vector of each row of B and C is loaded
// and stored under `last` in an edge tile (EDGE), so only valid columns are touched.
template <typename S, int MR, int ROWS, int NV, bool EDGE, typename T = typename S::T>
inline __attribute__((always_inline)) void tile_direct(int64_t k, const T* a, const T* b, int64_t ldb, T alpha,
                                                        T beta, T* c, int64_t ldc, __m256i last) {
  using V = typename S::V;
  constexpr int L = S::L;
  V acc[ROWS][NV];
#pragma GCC unroll 8
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();
#pragma GCC unroll 2
  for (int64_t p = 0; p < k; ++p) {
    V bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = EDGE && v == NV - 1 ? S::maskload(b + v * L, last) : S::loadu(b + v * L);
#pragma GCC unroll 8
    for (int i = 0; i < ROWS; ++i) {
      const V ai = S::bcast(a + i);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += ldb;
  }
  const V va = S::set1(alpha);
  const V vb = S::set1(beta);
#pragma GCC unroll 8
  for (int i = 0; i < ROWS; ++i) {
    T* ci = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      const bool masked = EDGE && v == NV - 1;
      V r = S::mul(va, acc[i][v]);
      if (beta != T(0)) r = S::fma(va, acc[i][v], S::mul(vb, masked ? S::maskload(ci + v * L, last) : S::loadu(ci + v * L)));
      if (masked)
        S::maskstore(ci + v * L, last, r);
      else
        S::storeu(ci + v * L, r);
    }
  }
}

// Any tile of at most MR x 2L: the instantiation with exactly its rows and vectors.
template <typename S, int MR, int ROWS = MR, typename T = typename S::T>
inline void any_tile_direct(int64_t k, const T* a, const T* b, int64_t ldb, T alpha, T beta, T* c, int64_t ldc,
                            int64_t mr, int64_t nr) {
  constexpr int L = S::L;
  if (mr == ROWS) {
    if (nr == 2 * L)
      tile_direct<S, MR, ROWS, 2, false>(k, a, b, ldb, alpha, beta, c, ldc, S::first_lanes(L));
    else if (nr <= L)
      tile_direct<S, MR, ROWS, 1, true>(k, a, b, ldb, alpha, beta, c, ldc, S::first_lanes(nr));
    else
      tile_direct<S, MR, ROWS, 2, true>(k, a, b, ldb, alpha, beta, c, ldc, S::first_lanes(nr - L));
  } else if constexpr (ROWS > 1) {
    any_tile_direct<S, MR, ROWS - 1>(k, a, b, ldb, alpha, beta, c, ldc, mr, nr);
  }
}

// Axpy form: partial sums for up to kCols outputs live in an L1-resident array and four rows of W are
// folded in per pass, so each load/store of a partial sum is shared by four FMAs while W is read
// row after row in address order.
template <typename S, typename T = typename S::T>
void gemv_axpy(int64_t n, int64_t k, const T* w, int64_t ldw, const T* x, T alpha, T beta, T* y, int64_t incy) {
  using V = typename S::V;
  constexpr int L = S::L;
  constexpr int64_t kCols = 256;
  alignas(32) T sums[kCols];
  for (int64_t j0 = 0; j0 < n; j0 += kCols, w += kCols) {
    const int64_t nb = n - j0 < kCols ? n - j0 : kCols;
    const int64_t nv = nb - nb % L;
    for (int64_t c = 0; c < nb; ++c) sums[c] = T(0);
    int64_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const T* r0 = w + p * ldw;
      const T *r1 = r0 + ldw, *r2 = r1 + ldw, *r3 = r2 + ldw;
      const V x0 = S::bcast(x + p), x1 = S::bcast(x + p + 1), x2 = S::bcast(x + p + 2), x3 = S::bcast(x + p + 3);
      for (int64_t c = 0; c < nv; c += L) {
        V acc = S::fma(x0, S::loadu(r0 + c), S::load(sums + c));
        acc = S::fma(x1, S::loadu(r1 + c), acc);
        acc = S::fma(x2, S::loadu(r2 + c), acc);
        S::store(sums + c, S::fma(x3, S::loadu(r3 + c), acc));
      }
      for (int64_t c = nv; c < nb; ++c)
        sums[c] = sums[c] + x[p] * r0[c] + x[p + 1] * r1[c] + x[p + 2] * r2[c] + x[p + 3] * r3[c];
    }
    for (; p < k; ++p) {
      const T* r0 = w + p * ldw;
      const V x0 = S::bcast(x + p);
      for (int64_t c = 0; c < nv; c += L) S::store(sums + c, S::fma(x0, S::loadu(r0 + c), S::load(sums + c)));
      for (int64_t c = nv; c < nb; ++c) sums[c] += x[p] * r0[c];
    }
    for (int64_t c = 0; c < nb; ++c) store_scaled(y + (j0 + c) * incy, sums[c], alpha, beta);
  }
}

}  // namespace

static_assert(Avx2Tile<float>::NR == 2 * F32::L && Avx2Tile<double>::NR == 2 * F64::L, "kernel is two vectors wide");

void microkernel_avx2(int64_t k, const float* a, const float* b, float alpha, float beta, float* c, int64_t ldc) {
  kernel_2v<F32, Avx2Tile<float>::MR>(k, a, b, alpha, beta, c, ldc);
}

void microkernel_avx2(int64_t k, const double* a, const double* b, double alpha, double beta, double* c,
                      int64_t ldc) {
  kernel_2v<F64, Avx2Tile<double>::MR>(k, a, b, alpha, beta, c, ldc);
}

void gemv_dot_avx2(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float alpha, float beta,
                   float* y, int64_t incy) {
  gemv_dot<F32>(n, k, w, ldw, x, alpha, beta, y, incy);
}
void gemv_dot_avx2(int64_t n, int64_t k, const double* w, int64_t ldw, const double* x, double alpha, double beta,
                   double* y, int64_t incy) {
  gemv_dot<F64>(n, k, w, ldw, x, alpha, beta, y, incy);
}
void gemv_axpy_avx2(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float alpha, float beta,
                    float* y, int64_t incy) {
  gemv_axpy<F32>(n, k, w, ldw, x, alpha, beta, y, incy);
}
void gemv_axpy_avx2(int64_t n, int64_t k, const double* w, int64_t ldw, const double* x, double alpha,
                    double beta, double* y, int64_t incy) {
  gemv_axpy<F64>(n, k, w, ldw, x, alpha, beta, y, incy);
}

void microkernel_direct_b_avx2(int64_t k, const float* a, const float* b, int64_t ldb, float alpha, float beta,
                               float* c, int64_t ldc, int64_t mr, int64_t nr) {
  any_tile_direct<F32, Avx2Tile<float>::MR>(k, a, b, ldb, alpha, beta, c, ldc, mr, nr);
}
void microkernel_direct_b_avx2(int64_t k, const double* a, const double* b, int64_t ldb, double alpha,
                               double beta, double* c, int64_t ldc, int64_t mr, int64_t nr) {
  any_tile_direct<F64, Avx2Tile<double>::MR>(k, a, b, ldb, alpha, beta, c, ldc, mr, nr);
}
void small_dot_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float alpha, float beta, float* c, int64_t ldc) {
  small_dot<F32, 3, 3>(m, n, k, a, lda, b, ldb, alpha, beta, c, ldc);
}
void small_dot_avx2(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b, int64_t ldb,
                    double alpha, double beta, double* c, int64_t ldc) {
  small_dot<F64, 3, 3>(m, n, k, a, lda, b, ldb, alpha, beta, c, ldc);
}

}  // namespace dlc::gemm_detail
