// f32 softmax and log_softmax over contiguous rows (and log_softmax's gradient, which needs e^y), compiled
// into AVX2 and AVX-512 translation units (softmax_rows_*.cpp); softmax_cpu.cpp picks one with the
// elementwise kernels' instruction set and keeps its libm rows for f64 and for CPUs without either.
//
// Why separate units: e^x from fastmath.h vectorizes only where floor is an instruction (SSE4.1 and up), so
// in the portable build it costs more than libm's expf; compiled for AVX-512 it is ~20x cheaper than expf.
// The row maximum ignores NaN (a plain max vectorizes, a NaN-propagating one compiles to branches): a NaN
// anywhere in the row still makes the row's sum NaN and so every output NaN, as NumPy gives.
//
// Internal linkage throughout (see fastmath.h): the copies must never be merged by the linker.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/elementwise/fastmath.h"

namespace dlc {
namespace {

inline float softmax_row_max(const float* x, int64_t n) {
  float acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = x[0];
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  for (; i < n; ++i) acc[0] = x[i] > acc[0] ? x[i] : acc[0];
  float m = acc[0];
  for (int j = 1; j < 16; ++j) m = acc[j] > m ? acc[j] : m;
  return m;
}

// Sum in double over eight interleaved lanes, combined in a fixed order: the result depends only on n.
template <class F>
inline double softmax_row_sum(int64_t n, const F& f) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += static_cast<double>(f(i + j));
  double tail = 0;
  for (; i < n; ++i) tail += static_cast<double>(f(i));
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

inline void softmax_row_f32(const float* x, float* y, int64_t n) {
  const float m = softmax_row_max(x, n);
  for (int64_t i = 0; i < n; ++i) y[i] = fast_exp(x[i] - m);
  const float r = static_cast<float>(1.0 / softmax_row_sum(n, [y](int64_t i) { return y[i]; }));
  for (int64_t i = 0; i < n; ++i) y[i] *= r;
}

inline void log_softmax_row_f32(const float* x, float* y, int64_t n) {
  const float m = softmax_row_max(x, n);
  for (int64_t i = 0; i < n; ++i) y[i] = fast_exp(x[i] - m);
  const float lse = static_cast<float>(std::log(softmax_row_sum(n, [y](int64_t i) { return y[i]; })));
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - lse;
}

inline void log_softmax_grad_row_f32(const float* y, const float* gy, float* gx, int64_t n) {
  const float s = static_cast<float>(softmax_row_sum(n, [gy](int64_t i) { return gy[i]; }));
  for (int64_t i = 0; i < n; ++i) gx[i] = gy[i] - fast_exp(y[i]) * s;
}

}  // namespace

// The row kernels of one instruction set.
struct SoftmaxRowsF32 {
  void (*softmax)(const float* x, float* y, int64_t n);
  void (*log_softmax)(const float* x, float* y, int64_t n);
  void (*log_softmax_grad)(const float* y, const float* gy, float* gx, int64_t n);
};

SoftmaxRowsF32 softmax_rows_f32_avx2();
SoftmaxRowsF32 softmax_rows_f32_avx512();

}  // namespace dlc
