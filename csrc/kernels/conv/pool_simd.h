// AVX-512 kernels (pool_avx512.cpp) for the 2x2, stride-2, unpadded max pooling of classic convnets, one
// (n, c) plane at a time. Portable code cannot vectorize this window well: each output reads a pair of
// neighbours from two rows, a stride-2 pattern that the compiler turns into slow masked gathers or branches;
// here each vector deinterleaves 16 pairs with one permute.
//
// Both kernels give exactly the results of the general scans in pool_cpu.cpp: the window is combined in
// row-major order, the first maximum wins ties, NaN counts as the maximum (the first NaN wins).
//
// Only declarations here: the definitions are built with AVX-512 flags and must not leak inline code.
#pragma once
#include <cstdint>

namespace dlc::conv {

// Whether this CPU runs the kernels below (AVX-512F).
bool pool_simd_available();

// y [Ho, Wo] = the window maxima of plane x [2*Ho (or more), W] with W >= 2*Wo (rows W apart).
void max_pool_2x2_plane_avx512(const float* x, float* y, int64_t Ho, int64_t W, int64_t Wo);

// gx [.., W] gets gy at each window's first maximum and zero at the window's other three inputs. Inputs in no
// window (a last odd row or column) are not written.
void max_pool_2x2_grad_plane_avx512(const float* x, const float* gy, float* gx, int64_t Ho, int64_t W, int64_t Wo);

}  // namespace dlc::conv
