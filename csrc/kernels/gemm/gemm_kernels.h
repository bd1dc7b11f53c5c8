#pragma once
// Internal to the GEMM: register-tile shapes shared by the driver (which packs panels of exactly this
// shape) and the micro-kernels, plus the entry points of the ISA-specific files gemm_avx2.cpp and
// gemm_avx512.cpp.
#include <cstdint>

namespace dlc::gemm_detail {

// AVX2 register tile MR x NR. fp32: 6 rows x two 8-lane vectors = 12 accumulators, leaving 4 of the 16
// ymm registers for the two B vectors and the A broadcast. fp64 uses the same 6 x (2 vectors) layout.
// The portable scalar path packs the same shapes.
template <typename T>
struct Avx2Tile;
template <>
struct Avx2Tile<float> {
  static constexpr int64_t MR = 6, NR = 16;
};
template <>
struct Avx2Tile<double> {
  static constexpr int64_t MR = 6, NR = 8;
};

// AVX-512 register tile: MR rows x two 512-bit vectors. In an L1-resident loop every shape with at least
// 16 accumulators (8x32, 12x32, 14x32, 6x64, ...) reaches the same two FMAs per cycle on Zen 5, so MR is
// chosen for the edges instead: 8 divides the batch and channel counts the models use (16, 64, 256, 784)
// where 12 or 14 would leave a thin row tile, and 16 accumulators still cover 2 pipes x 4 cycles of FMA
// latency twice over.
template <typename T>
struct Avx512Tile;
template <>
struct Avx512Tile<float> {
  static constexpr int64_t MR = 8, NR = 32;
};
template <>
struct Avx512Tile<double> {
  static constexpr int64_t MR = 8, NR = 16;
};

// Micro-kernel contract: a is a packed MR x k panel (column p at a + p*MR), b a packed k x NR panel (row p
// at b + p*NR), both 64-byte aligned and zero-padded to the full tile. Computes the full MR x NR tile
// C = alpha * a.b + beta * C; beta == 0 writes C without reading it. k >= 1.
template <typename T>
using MicroKernel = void (*)(int64_t k, const T* a, const T* b, T alpha, T beta, T* c, int64_t ldc);

// Same, for the partial tile at the bottom/right edge of C: only rows < mr and columns < nr of C are read
// or written (1 <= mr <= MR, 1 <= nr <= NR); the panels keep their full-tile layout. Each element gets
// exactly the arithmetic the full kernel would give it, so results do not depend on where tiles fall.
template <typename T>
using EdgeKernel = void (*)(int64_t k, const T* a, const T* b, T alpha, T beta, T* c, int64_t ldc, int64_t mr,
                            int64_t nr);

// Micro-kernel that reads B unpacked, for products with so few rows that packing B would cost more than
// the reuse it buys: b points at element (0, 0) of the tile in op(B) (not transposed), rows ldb elements
// apart; only columns < nr of B are read. Otherwise like an EdgeKernel (any 1 <= mr <= MR, 1 <= nr <= NR,
// the same arithmetic per element as the packed kernels).
template <typename T>
using DirectBKernel = void (*)(int64_t k, const T* a, const T* b, int64_t ldb, T alpha, T beta, T* c, int64_t ldc,
                               int64_t mr, int64_t nr);

// Packing kernels: copy kc rows of n <= R contiguous elements, or transpose n <= R rows of kc contiguous
// elements, into kc rows of R elements each (zero from column n on). R is a multiple of 8 and dst is
// 64-byte aligned.
//   copy form:      dst[p*R + j] = src[p*ld + j]
//   transpose form: dst[p*R + j] = src[j*ld + p]
template <typename T>
using PackKernel = void (*)(const T* src, int64_t ld, int64_t n, int64_t kc, int64_t R, T* dst);

// Matrix-vector kernels for M == 1 or N == 1, where packing would cost more than the arithmetic.
// Both compute y[j*incy] = alpha * sum_p x[p] * W(p, j) + beta * y[j*incy] for j < n, p < k (beta == 0
// does not read y); they differ in how W is stored:
//   dot form:  W(p, j) = w[j*ldw + p]   (each output is a dot product of a contiguous row with x)
//   axpy form: W(p, j) = w[p*ldw + j]   (rows of W scaled by x[p] are summed)
template <typename T>
using GemvKernel = void (*)(int64_t n, int64_t k, const T* w, int64_t ldw, const T* x, T alpha, T beta, T* y,
                            int64_t incy);

// Small-M kernel for op(B) stored transposed (B is N x K, each column of op(B) a contiguous row), where
// packing B would transpose every element of it for the benefit of only a few rows of C: each output is a
// dot product of a row of A with a row of B, read in place. Computes, for i < m, j < n,
//   C[i*ldc + j] = alpha * sum_p a[i*lda + p] * b[j*ldb + p] + beta * C[i*ldc + j]   (beta == 0: C not read)
// m, n, k >= 1. Each output gets one fixed order of summation whatever m and n are.
template <typename T>
using SmallDotKernel = void (*)(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
                                T alpha, T beta, T* c, int64_t ldc);

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
void microkernel_direct_b_avx2(int64_t k, const float* a, const float* b, int64_t ldb, float alpha, float beta,
                               float* c, int64_t ldc, int64_t mr, int64_t nr);
void microkernel_direct_b_avx2(int64_t k, const double* a, const double* b, int64_t ldb, double alpha,
                               double beta, double* c, int64_t ldc, int64_t mr, int64_t nr);
void small_dot_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float alpha, float beta, float* c, int64_t ldc);
void small_dot_avx2(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b, int64_t ldb,
                    double alpha, double beta, double* c, int64_t ldc);

// Defined in gemm_avx512.cpp (compiled with -mavx512f/dq/bw/vl -mavx2 -mfma); only call when the CPU
// supports AVX-512F, DQ, BW and VL.
void microkernel_avx512(int64_t k, const float* a, const float* b, float alpha, float beta, float* c,
                        int64_t ldc);
void microkernel_avx512(int64_t k, const double* a, const double* b, double alpha, double beta, double* c,
                        int64_t ldc);
void microkernel_edge_avx512(int64_t k, const float* a, const float* b, float alpha, float beta, float* c,
                             int64_t ldc, int64_t mr, int64_t nr);
void microkernel_edge_avx512(int64_t k, const double* a, const double* b, double alpha, double beta, double* c,
                             int64_t ldc, int64_t mr, int64_t nr);
void microkernel_direct_b_avx512(int64_t k, const float* a, const float* b, int64_t ldb, float alpha, float beta,
                                 float* c, int64_t ldc, int64_t mr, int64_t nr);
void microkernel_direct_b_avx512(int64_t k, const double* a, const double* b, int64_t ldb, double alpha,
                                 double beta, double* c, int64_t ldc, int64_t mr, int64_t nr);
void pack_copy_avx512(const float* src, int64_t ld, int64_t n, int64_t kc, int64_t R, float* dst);
void pack_copy_avx512(const double* src, int64_t ld, int64_t n, int64_t kc, int64_t R, double* dst);
void pack_transpose_avx512(const float* src, int64_t ld, int64_t n, int64_t kc, int64_t R, float* dst);
void pack_transpose_avx512(const double* src, int64_t ld, int64_t n, int64_t kc, int64_t R, double* dst);
void gemv_dot_avx512(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float alpha, float beta,
                     float* y, int64_t incy);
void gemv_dot_avx512(int64_t n, int64_t k, const double* w, int64_t ldw, const double* x, double alpha,
                     double beta, double* y, int64_t incy);
void gemv_axpy_avx512(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float alpha, float beta,
                      float* y, int64_t incy);
void gemv_axpy_avx512(int64_t n, int64_t k, const double* w, int64_t ldw, const double* x, double alpha,
                      double beta, double* y, int64_t incy);
void small_dot_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float alpha, float beta, float* c, int64_t ldc);
void small_dot_avx512(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b, int64_t ldb,
                      double alpha, double beta, double* c, int64_t ldc);

}  // namespace dlc::gemm_detail
