// The portable (no -march) GEMM kernels: the "scalar" path, plain loops the compiler may vectorize for the
// baseline ISA. Same contracts and tile shapes as the AVX2 kernels (gemm_kernels.h). Included only by
// gemm_cpu.cpp, which is built without ISA flags.
#pragma once
#include <algorithm>
#include <cstdint>

#include "gemm_kernels.h"
#include "gemm_simd.h"

namespace dlc::gemm_detail {
namespace {

// Portable packing kernels, same contract as PackKernel with R fixed at compile time. Full panels
// (n == R) get loops of constant trip count, which the compiler unrolls.
template <int64_t R, typename T>
void pack_copy_portable(const T* src, int64_t ld, int64_t n, int64_t kc, T* dst) {
  if (n == R) {
    for (int64_t p = 0; p < kc; ++p, src += ld, dst += R)
      for (int64_t j = 0; j < R; ++j) dst[j] = src[j];
    return;
  }
  for (int64_t p = 0; p < kc; ++p, src += ld, dst += R) {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
    for (int64_t j = n; j < R; ++j) dst[j] = T(0);
  }
}

template <int64_t R, typename T>
void pack_transpose_portable(const T* src, int64_t ld, int64_t n, int64_t kc, T* dst) {
  // Walk the n rows side by side so each is read sequentially.
  if (n == R) {
    for (int64_t p = 0; p < kc; ++p, dst += R)
      for (int64_t j = 0; j < R; ++j) dst[j] = src[j * ld + p];
    return;
  }
  for (int64_t p = 0; p < kc; ++p, dst += R) {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j * ld + p];
    for (int64_t j = n; j < R; ++j) dst[j] = T(0);
  }
}

// Portable micro-kernel in its direct-B form (see DirectBKernel): op(B) rows read in place, ldb apart. The
// packed form below is the same loops on a packed panel, so both give each element the same arithmetic.
template <typename T>
void microkernel_direct_b_scalar(int64_t k, const T* a, const T* b, int64_t ldb, T alpha, T beta, T* c, int64_t ldc,
                                 int64_t mr, int64_t nr) {
  constexpr int64_t MR = Avx2Tile<T>::MR, NR = Avx2Tile<T>::NR;
  T acc[MR][NR] = {};
  if (nr == NR) {
    for (int64_t p = 0; p < k; ++p, a += MR, b += ldb)
      for (int64_t i = 0; i < MR; ++i)
        for (int64_t j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  } else {
    for (int64_t p = 0; p < k; ++p, a += MR, b += ldb)
      for (int64_t i = 0; i < MR; ++i)
        for (int64_t j = 0; j < nr; ++j) acc[i][j] += a[i] * b[j];
  }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j)
      c[i * ldc + j] = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

// Portable micro-kernel: same contract and tile shape as the AVX2 one.
template <typename T>
void microkernel_scalar(int64_t k, const T* a, const T* b, T alpha, T beta, T* c, int64_t ldc) {
  constexpr int64_t MR = Avx2Tile<T>::MR, NR = Avx2Tile<T>::NR;
  microkernel_direct_b_scalar(k, a, b, NR, alpha, beta, c, ldc, MR, NR);
}

// Portable matrix-vector kernels, same contract as the AVX2 ones (see GemvKernel).
template <typename T>
void gemv_dot_scalar(int64_t n, int64_t k, const T* w, int64_t ldw, const T* x, T alpha, T beta, T* y,
                     int64_t incy) {
  for (int64_t j = 0; j < n; ++j) {
    T sum = T(0);
    for (int64_t p = 0; p < k; ++p) sum += w[j * ldw + p] * x[p];
    store_scaled(y + j * incy, sum, alpha, beta);
  }
}

template <typename T>
void gemv_axpy_scalar(int64_t n, int64_t k, const T* w, int64_t ldw, const T* x, T alpha, T beta, T* y,
                      int64_t incy) {
  // Column blocks keep the partial sums in L1 while the rows of W are read sequentially.
  constexpr int64_t kCols = 64;
  T sums[kCols];
  for (int64_t j0 = 0; j0 < n; j0 += kCols) {
    const int64_t nb = std::min(kCols, n - j0);
    std::fill(sums, sums + nb, T(0));
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < nb; ++j) sums[j] += x[p] * w[p * ldw + j0 + j];
    for (int64_t j = 0; j < nb; ++j) store_scaled(y + (j0 + j) * incy, sums[j], alpha, beta);
  }
}

// Small-M dot form (see SmallDotKernel), RB rows of B per pass over one row of A. Each dot product keeps W
// partial sums, one per lane of the loop over p, which the compiler can hold in vector registers without
// reordering any sum; the lanes are added in a fixed order at the end.
template <typename T, int RB>
void small_dot_rows_scalar(int64_t m, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T alpha, T beta,
                           T* c, int64_t ldc) {
  constexpr int64_t W = 32 / sizeof(T);
  for (int64_t i = 0; i < m; ++i, a += lda, c += ldc) {
    T acc[RB][W] = {};
    int64_t p = 0;
    for (; p + W <= k; p += W)
      for (int r = 0; r < RB; ++r)
        for (int64_t q = 0; q < W; ++q) acc[r][q] += a[p + q] * b[r * ldb + p + q];
    for (int r = 0; r < RB; ++r)
      for (int64_t q = 0; p + q < k; ++q) acc[r][q] += a[p + q] * b[r * ldb + p + q];
    for (int r = 0; r < RB; ++r) {
      T sum = T(0);
      for (int64_t q = 0; q < W; ++q) sum += acc[r][q];
      store_scaled(c + r, sum, alpha, beta);
    }
  }
}

template <typename T>
void small_dot_scalar(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T alpha,
                      T beta, T* c, int64_t ldc) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) small_dot_rows_scalar<T, 4>(m, k, a, lda, b + j * ldb, ldb, alpha, beta, c + j, ldc);
  for (; j < n; ++j) small_dot_rows_scalar<T, 1>(m, k, a, lda, b + j * ldb, ldb, alpha, beta, c + j, ldc);
}

}  // namespace
}  // namespace dlc::gemm_detail
