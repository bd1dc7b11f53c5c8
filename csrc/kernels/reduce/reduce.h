// Scalar helpers shared by the floating-point kernel families (reduce, norm, loss, optim): deterministic
// row sums, NaN-propagating extrema, the f32/f64 dispatch and reusable scratch memory.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatch.h"
#include "kernels/kernel_util.h"

namespace dlc::kern {

// Below this many touched elements a kernel stays on one thread: waking the OpenMP team costs more than
// the work. Used as the `if` clause of every parallel loop in these families.
constexpr int64_t kParallelWork = 32768;

// Work splits that feed partial results into a fixed-order combine use at most this many pieces, and the
// split depends only on shapes. Results are then identical for every thread count, not just a fixed one.
constexpr int64_t kMaxSplit = 64;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Sum of f(i) for i in [b, e), accumulated in double. Eight interleaved accumulators give the compiler
// independent lanes to vectorize without reassociating (we build without -ffast-math); ranges longer than
// a leaf are halved recursively, so rounding error grows like log(n) rather than n. The order of the
// additions depends only on the range, never on threads.
template <class F>
inline double sum_range(int64_t b, int64_t e, const F& f) {
  constexpr int64_t kLeaf = 1024;
  if (e - b > kLeaf) {
    const int64_t mid = b + (e - b) / 2;
    return sum_range(b, mid, f) + sum_range(mid, e, f);
  }
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = b;
  for (; i + 8 <= e; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += f(i + j);
  double tail = 0;
  for (; i < e; ++i) tail += f(i);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

template <class F>
inline double lane_sum(int64_t n, const F& f) {
  return sum_range(0, n, f);
}

// max/min that return NaN when either side is NaN, like numpy and torch (std::max would drop it
// depending on argument order).
template <class T>
inline T nan_max(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <class T>
inline T nan_min(T a, T b) {
  return (a < b || a != a) ? a : b;
}

// Largest element of x[0, n), n >= 1, with lanes like sum_range so the loop vectorizes.
template <class T>
inline T row_max(const T* x, int64_t n) {
  T acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] = nan_max(acc[j], x[i + j]);
  for (; i < n; ++i) acc[0] = nan_max(acc[0], x[i]);
  for (int j = 1; j < 8; ++j) acc[0] = nan_max(acc[0], acc[j]);
  return acc[0];
}
template <class T>
inline T row_min(const T* x, int64_t n) {
  T acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] = nan_min(acc[j], x[i + j]);
  for (; i < n; ++i) acc[0] = nan_min(acc[0], x[i]);
  for (int j = 1; j < 8; ++j) acc[0] = nan_min(acc[0], acc[j]);
  return acc[0];
}

using dlc::dispatch_float;

template <class T>
inline T* scratch(size_t n) {
  return dlc::scratch<T, ScratchSlot::Reduce>(n);
}

// Reads element i of an I32 or I64 index/label tensor.
inline int64_t index_at(const Tensor& t, int64_t i) {
  return t.dtype == DType::I32 ? static_cast<int64_t>(t.ptr<const int32_t>()[i]) : t.ptr<const int64_t>()[i];
}
inline void check_index_dtype(const Tensor& t, const char* who) {
  if (t.dtype != DType::I32 && t.dtype != DType::I64)
    throw std::invalid_argument(std::string(who) + ": indices must be i32 or i64, got " + dtype_name(t.dtype));
}

}  // namespace dlc::kern
