#pragma once
// Internal to the GEMM: register-tile shapes shared by the driver (which packs panels of exactly this
// shape) and the micro-kernels, plus the AVX2 micro-kernel entry points from gemm_avx2.cpp.
#include <cstdint>

namespace dlc::gemm_detail {

// Register tile MR x NR. fp32: 6 rows x two 8-lane vectors = 12 accumulators, leaving 4 of the 16 ymm
// registers for the two B vectors and the A broadcast. fp64 uses the same 6 x (2 vectors) layout.
template <typename T>
struct Tile;
template <>
struct Tile<float> {
  static constexpr int64_t MR = 6, NR = 16;
};
template <>
struct Tile<double> {
  static constexpr int64_t MR = 6, NR = 8;
};

// Micro-kernel contract: a is a packed MR x k panel (column p at a + p*MR), b a packed k x NR panel (row p
// at b + p*NR), both 64-byte aligned and zero-padded to the full tile. Computes the full MR x NR tile
// C = alpha * a.b + beta * C; beta == 0 writes C without reading it. k >= 1.
template <typename T>
using MicroKernel = void (*)(int64_t k, const T* a, const T* b, T alpha, T beta, T* c, int64_t ldc);

// Matrix-vector kernels for M == 1 or N == 1, where packing would cost more than the arithmetic.
// Both compute y[j*incy] = alpha * sum_p x[p] * W(p, j) + beta * y[j*incy] for j < n, p < k (beta == 0
// does not read y); they differ in how W is stored:
//   dot form:  W(p, j) = w[j*ldw + p]   (each output is a dot product of a contiguous row with x)
//   axpy form: W(p, j) = w[p*ldw + j]   (rows of W scaled by x[p] are summed)
template <typename T>
using GemvKernel = void (*)(int64_t n, int64_t k, const T* w, int64_t ldw, const T* x, T alpha, T beta, T* y,
                            int64_t incy);

// Defined in gemm_avx2.cpp (compiled with -mavx2 -mfma); only call when the CPU supports both.
void microkernel_avx2(int64_t k, const float* a, const float* b, float alpha, float beta, float* c, int64_t ldc);
void microkernel_avx2(int64_t k, const double* a, const double* b, double alpha, double beta, double* c,
                      int64_t ldc);
void gemv_dot_avx2(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float alpha, float beta,
                   float* y, int64_t incy);
void gemv_dot_avx2(int64_t n, int64_t k, const double* w, int64_t ldw, const double* x, double alpha, double beta,
                   double* y, int64_t incy);
void gemv_axpy_avx2(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float alpha, float beta,
                    float* y, int64_t incy);
void gemv_axpy_avx2(int64_t n, int64_t k, const double* w, int64_t ldw, const double* x, double alpha,
                    double beta, double* y, int64_t incy);

}  // namespace dlc::gemm_detail
