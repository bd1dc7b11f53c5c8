// Helpers of the AVX2 and AVX-512 GEMM files written once over an ISA's SIMD traits S (T, V, L, zero, loadu,
// load_first, fma, add, hsum; where the ISA has lane masks, also M and maskz_loadu): the scaled store, the
// dot-form matrix-vector product and the small-M dot kernel. Internal linkage, like the micro-kernels: each ISA's file compiles its own copy with
// its own flags, which the linker must never merge.
#pragma once
#include <cstdint>
#include <type_traits>

namespace dlc::gemm_detail {
namespace {

template <class S, class = void>
struct HasMasks : std::false_type {};
template <class S>
struct HasMasks<S, std::void_t<typename S::M>> : std::true_type {};

// Mask of the first n lanes, 1 <= n <= L.
template <typename S>
inline typename S::M first_lanes(int64_t n) {
  return static_cast<typename S::M>((uint32_t{1} << n) - 1);
}

template <typename T>
inline void store_scaled(T* y, T sum, T alpha, T beta) {
  *y = beta == T(0) ? alpha * sum : alpha * sum + beta * *y;
}

// Dot form, R outputs at a time so each load of x feeds R rows; two vector accumulators per row hide
// the FMA latency. The tail of k is one masked step where the ISA has masks, else vector steps and scalars.
template <typename S, int R, typename T = typename S::T>
inline __attribute__((always_inline)) void gemv_dot_rows(int64_t k, const T* w, int64_t ldw, const T* x, T alpha,
                                                          T beta, T* y, int64_t incy) {
  using V = typename S::V;
  constexpr int L = S::L;
  V acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = S::zero();
  int64_t p = 0;
  for (; p + 2 * L <= k; p += 2 * L) {
    const V x0 = S::loadu(x + p), x1 = S::loadu(x + p + L);
    for (int r = 0; r < R; ++r) {
      acc0[r] = S::fma(S::loadu(w + r * ldw + p), x0, acc0[r]);
      acc1[r] = S::fma(S::loadu(w + r * ldw + p + L), x1, acc1[r]);
    }
  }
  if constexpr (HasMasks<S>::value) {
    for (; p < k; p += L) {
      const typename S::M m = first_lanes<S>(k - p < L ? k - p : L);
      const V x0 = S::maskz_loadu(m, x + p);
      for (int r = 0; r < R; ++r) acc0[r] = S::fma(S::maskz_loadu(m, w + r * ldw + p), x0, acc0[r]);
    }
    for (int r = 0; r < R; ++r) store_scaled(y + r * incy, S::hsum(S::add(acc0[r], acc1[r])), alpha, beta);
  } else {
    for (; p + L <= k; p += L) {
      const V x0 = S::loadu(x + p);
      for (int r = 0; r < R; ++r) acc0[r] = S::fma(S::loadu(w + r * ldw + p), x0, acc0[r]);
    }
    for (int r = 0; r < R; ++r) {
      T sum = S::hsum(S::add(acc0[r], acc1[r]));
      for (int64_t q = p; q < k; ++q) sum += w[r * ldw + q] * x[q];
      store_scaled(y + r * incy, sum, alpha, beta);
    }
  }
}

template <typename S, typename T = typename S::T>
void gemv_dot(int64_t n, int64_t k, const T* w, int64_t ldw, const T* x, T alpha, T beta, T* y, int64_t incy) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) gemv_dot_rows<S, 4>(k, w + j * ldw, ldw, x, alpha, beta, y + j * incy, incy);
  for (; j < n; ++j) gemv_dot_rows<S, 1>(k, w + j * ldw, ldw, x, alpha, beta, y + j * incy, incy);
}

// Small-M dot form (see SmallDotKernel): RA rows of A against RB rows of B, RA * RB accumulators (enough to
// cover the FMA latency) fed by RA + RB loads per step, so each row of B is read once per RA rows of A. The
// tail of k is one step that loads only its first lanes.
template <typename S, int RA, int RB, bool TAIL, typename T = typename S::T>
inline __attribute__((always_inline)) void dot_step(typename S::V (&acc)[RA][RB], const T* a, int64_t lda,
                                                     const T* b, int64_t ldb, int64_t p, int64_t n) {
  typename S::V bv[RB];
#pragma GCC unroll 4
  for (int j = 0; j < RB; ++j) bv[j] = TAIL ? S::load_first(b + j * ldb + p, n) : S::loadu(b + j * ldb + p);
#pragma GCC unroll 4
  for (int i = 0; i < RA; ++i) {
    const typename S::V av = TAIL ? S::load_first(a + i * lda + p, n) : S::loadu(a + i * lda + p);
#pragma GCC unroll 4
    for (int j = 0; j < RB; ++j) acc[i][j] = S::fma(av, bv[j], acc[i][j]);
  }
}

template <typename S, int RA, int RB, typename T = typename S::T>
inline __attribute__((always_inline)) void dot_block(int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
                                                      T alpha, T beta, T* c, int64_t ldc) {
  constexpr int L = S::L;
  typename S::V acc[RA][RB];
#pragma GCC unroll 4
  for (int i = 0; i < RA; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < RB; ++j) acc[i][j] = S::zero();
  int64_t p = 0;
  for (; p + L <= k; p += L) dot_step<S, RA, RB, false>(acc, a, lda, b, ldb, p, L);
  if (p < k) dot_step<S, RA, RB, true>(acc, a, lda, b, ldb, p, k - p);
#pragma GCC unroll 4
  for (int i = 0; i < RA; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < RB; ++j) store_scaled(c + i * ldc + j, S::hsum(acc[i][j]), alpha, beta);
}

// All m rows of A against RB rows of B, RA at a time then the rest: the RB rows stay in L1 meanwhile.
template <typename S, int RA, int RB, typename T = typename S::T>
inline void dot_rows(int64_t m, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T alpha, T beta, T* c,
                     int64_t ldc) {
  int64_t i = 0;
  for (; i + RA <= m; i += RA) dot_block<S, RA, RB>(k, a + i * lda, lda, b, ldb, alpha, beta, c + i * ldc, ldc);
  if constexpr (RA > 1)
    if (i < m) dot_rows<S, RA - 1, RB>(m - i, k, a + i * lda, lda, b, ldb, alpha, beta, c + i * ldc, ldc);
}

template <typename S, int RA, int RB, typename T = typename S::T>
void small_dot(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T alpha, T beta,
               T* c, int64_t ldc) {
  int64_t j = 0;
  for (; j + RB <= n; j += RB) dot_rows<S, RA, RB>(m, k, a, lda, b + j * ldb, ldb, alpha, beta, c + j, ldc);
  for (; j < n; ++j) dot_rows<S, RA, 1>(m, k, a, lda, b + j * ldb, ldb, alpha, beta, c + j, ldc);
}

}  // namespace
}  // namespace dlc::gemm_detail
