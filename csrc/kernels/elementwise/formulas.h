// The scalar formulas of the activations, in one place: every evaluator includes this header (the elementwise
// tile loop, elementwise_tile.h; the GEMM epilogue's tile loop, gemm_epilogue_tile.h; the recurrent cells,
// cells.h). f32 uses fastmath.h's branch-free approximations (a few ulp), f64 libm, which the float64 gradient
// checks rely on. Internal linkage throughout (see fastmath.h): the copies built for different instruction
// sets must never be merged by the linker.
#pragma once
#include <cmath>
#include <type_traits>

#include "kernels/elementwise/fastmath.h"

namespace dlc {
namespace ew {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

}  // namespace ew

namespace {

template <typename T> __attribute__((always_inline)) inline T m_exp(T x) { if constexpr (std::is_same_v<T, float>) return fast_exp(x); else return std::exp(x); }
template <typename T> __attribute__((always_inline)) inline T m_log(T x) { if constexpr (std::is_same_v<T, float>) return fast_log(x); else return std::log(x); }
template <typename T> __attribute__((always_inline)) inline T m_tanh(T x) { if constexpr (std::is_same_v<T, float>) return fast_tanh(x); else return std::tanh(x); }
template <typename T> __attribute__((always_inline)) inline T m_erf(T x) { if constexpr (std::is_same_v<T, float>) return fast_erf(x); else return std::erf(x); }

template <typename T> __attribute__((always_inline)) inline T m_sigmoid(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return 1.0f / (1.0f + fast_exp(-x));  // fast_exp saturates: no overflow to handle
  } else {
    // Two branches keep exp() from overflowing for large |x|.
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
  }
}
template <typename T> __attribute__((always_inline)) inline T m_softplus(T x) {
  // log(1 + e^x) without overflow: max(x, 0) + log(1 + e^-|x|).
  const T ax = x < T(0) ? -x : x;
  return (x > T(0) ? x : T(0)) + m_log(T(1) + m_exp(-ax));
}
template <typename T> __attribute__((always_inline)) inline T m_gelu_erf(T x) { return T(0.5) * x * (T(1) + m_erf(x * T(ew::kInvSqrt2))); }
template <typename T> __attribute__((always_inline)) inline T m_gelu_erf_grad(T x) {
  return T(0.5) * (T(1) + m_erf(x * T(ew::kInvSqrt2))) + x * T(ew::kInvSqrt2Pi) * m_exp(T(-0.5) * x * x);
}
template <typename T> __attribute__((always_inline)) inline T m_gelu_tanh(T x) {
  return T(0.5) * x * (T(1) + m_tanh(T(ew::kSqrt2OverPi) * (x + T(0.044715) * x * x * x)));
}
template <typename T> __attribute__((always_inline)) inline T m_gelu_tanh_grad(T x) {
  const T t = m_tanh(T(ew::kSqrt2OverPi) * (x + T(0.044715) * x * x * x));
  const T du = T(ew::kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du;
}

// gelu(x) and gelu'(x) of one f32 value with one erf and one exp: erf(x/sqrt2) is computed exactly as m_erf
// does it, and its e^(-x^2/2) serves the gradient's density too (within an ulp of m_gelu_erf_grad's separate
// exp); both results are within a few ulp of m_gelu_erf and m_gelu_erf_grad (the GEMM epilogue's pair).
__attribute__((always_inline)) inline void gelu_erf_pair(float x, float* gelu, float* grad) {
  float gauss;
  const float erf = fast_erf_and_gauss(x * float(ew::kInvSqrt2), &gauss);
  const float cdf = 0.5f + 0.5f * erf;
  *gelu = x * cdf;
  *grad = cdf + x * float(ew::kInvSqrt2Pi) * gauss;
}

}  // namespace
}  // namespace dlc
