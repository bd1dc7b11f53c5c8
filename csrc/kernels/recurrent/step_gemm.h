// The small matrix products inside the recurrent kernels' time loops, C [M, N] (+)= A [M, K] @ B [K, N] with M a
// slice of the batch (often 16 rows or one), built with AVX-512 in step_gemm_avx512.cpp. The general GEMM packs
// B on every call, which for these shapes (h [16, 128] @ w_hh [128, 512]) copies about one float per 16
// multiply-adds, every time step. Here B, the recurrent weight, is packed once (per plan, or per call where the
// plan keeps no packed copies) and each step only streams it.
//
// Layout: B's N columns are `blocks` blocks of `width` columns (the gates of an LSTM: 4 blocks of H; or one
// block), each cut into panels of kStepPanel columns (zeros past the block's end), so that a range of units
// [u0, u1) of every block is a whole number of panels when u0 and u1 are multiples of kStepPanel (u1 may also
// be width). The batch-1 path gives each thread such a range.
//
// Only declarations here: the definitions are built with AVX-512 flags and must not leak inline code.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dlc {

constexpr int64_t kStepPanel = 32;

// Whether this CPU runs the step kernels (AVX-512F).
bool step_gemm_available();

// Floats of the packed form of a K x (blocks * width) matrix.
size_t step_gemm_packed_size(int64_t K, int64_t width, int64_t blocks);

// Packs op(B) (K x N, N = blocks * width; B is K x N row-major with leading dim ldb, or N x K when trans).
void step_gemm_pack(bool trans, int64_t K, int64_t width, int64_t blocks, const float* B, int64_t ldb,
                    float* packed);

// For every block k, columns [k * width + u0, k * width + u1) of C = A @ op(B), or C += A @ op(B) when
// accumulate. Each element is one chain of fused multiply-adds over k in order, then added to C: results do not
// depend on how callers slice M or the units.
void step_gemm(int64_t M, int64_t K, int64_t width, int64_t blocks, int64_t u0, int64_t u1, const float* A,
               int64_t lda, const float* packed, bool accumulate, float* C, int64_t ldc);

// The same three functions for the GEMM's other kernel paths (and f64), from step_gemm_portable.h: built with
// AVX2/FMA flags and without, picked the way the GEMM picks its path. Each element is again one chain of
// multiply-adds over k in order, so results do not depend on how callers slice rows or units.
template <class T>
struct StepKernel {
  size_t (*packed_size)(int64_t K, int64_t width, int64_t blocks);
  void (*pack)(bool trans, int64_t K, int64_t width, int64_t blocks, const T* B, int64_t ldb, T* packed);
  void (*run)(int64_t M, int64_t K, int64_t width, int64_t blocks, int64_t u0, int64_t u1, const T* A, int64_t lda,
              const T* packed, bool accumulate, T* C, int64_t ldc);
};
const StepKernel<float>& step_kernel_avx512_f32();  // the functions above
template <class T>
const StepKernel<T>& step_kernel_avx2();
template <class T>
const StepKernel<T>& step_kernel_generic();

}  // namespace dlc
