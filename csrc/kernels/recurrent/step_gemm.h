// The small matrix products inside the recurrent kernels' time loops, C [M, N] (+)= A [M, K] @ B [K, N] with M a
// slice of the batch (often 16 or fewer rows), built with AVX-512 in step_gemm_avx512.cpp. The general GEMM packs
// B on every call, which for these shapes (h [16, 128] @ w_hh [128, 512]) copies about one float per 16
// multiply-adds, every time step. Here B, the recurrent weight, is packed once per sequence into column panels
// and each step only streams it.
//
// Only declarations here: the definitions are built with AVX-512 flags and must not leak inline code.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dlc {

// Whether this CPU runs the step kernels (AVX-512F).
bool step_gemm_available();

// Floats of the packed form of a K x N matrix.
size_t step_gemm_packed_size(int64_t K, int64_t N);

// Packs op(B) (K x N; B is K x N row-major with leading dim ldb, or N x K when trans) into `packed`.
void step_gemm_pack(bool trans, int64_t K, int64_t N, const float* B, int64_t ldb, float* packed);

// C = A @ op(B), or C += A @ op(B) when accumulate. Each element is one chain of fused multiply-adds over k in
// order, then added to C: results do not depend on how callers slice M.
void step_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed, bool accumulate,
               float* C, int64_t ldc);

}  // namespace dlc
