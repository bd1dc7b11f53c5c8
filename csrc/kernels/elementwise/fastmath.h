// Branch-free float approximations of exp, log, tanh and erf that compilers vectorize (std:: calls do not),
// accurate to a few ulp (erf: 1.5e-7 absolute). Only the f32 evaluator uses them; f64 keeps libm, which the
// float64 gradient checks rely on.
//
// Everything here has internal linkage on purpose: this header is compiled into both the generic and the
// AVX2 translation units, and shared inline symbols would let the linker mix the two instruction sets.
#pragma once
#include <cstdint>
#include <cstring>

namespace dlc {
namespace {

__attribute__((always_inline)) inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
__attribute__((always_inline)) inline int32_t float_to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// e^x for x in [-87.34, 88.38]: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through
// the exponent bits.
__attribute__((always_inline)) inline float fast_exp_in_range(float x) {
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // Shifted as unsigned: a NaN x gives a negative n + 127, whose signed shift is undefined (UBSan stops there);
  // the bits are the same, and p is NaN anyway.
  return p * bits_to_float(static_cast<int32_t>(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23));
}

__attribute__((always_inline)) inline float fast_exp(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365478515625f ? -87.3365478515625f : x;
  return fast_exp_in_range(x);
}

// e^x for x <= 0 (a Gaussian's density): only the lower clamp can apply; the same values as fast_exp.
__attribute__((always_inline)) inline float fast_exp_nonpositive(float x) {
  return fast_exp_in_range(x < -87.3365478515625f ? -87.3365478515625f : x);
}

// log(x) for x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a polynomial in (m - 1).
// Zero gives -inf, negative inputs NaN, +inf stays +inf (as libm).
__attribute__((always_inline)) inline float fast_log(float x) {
  const int32_t bits = float_to_bits(x);
  int32_t e = ((bits >> 23) & 0xff) - 126;
  float m = bits_to_float((bits & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  e -= small ? 1 : 0;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = p * m * z;
  const float fe = static_cast<float>(e);
  y += fe * -2.12194440e-4f;
  y -= 0.5f * z;
  float r = m + y + fe * 0.693359375f;
  r = x == 0.0f ? -__builtin_inff() : r;
  r = x < 0.0f || x != x ? __builtin_nanf("") : r;
  return x == __builtin_inff() ? x : r;
}

__attribute__((always_inline)) inline float fast_tanh(float x) {
  const float a = x < 0 ? -x : x;
  // Small |x|: odd polynomial (keeps relative accuracy near 0); else 1 - 2 / (e^{2|x|} + 1).
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = x + x * z * p;
  const float big = 1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f);
  const float signed_big = x < 0 ? -big : big;
  return a < 0.625f ? small : signed_big;
}

// Abramowitz & Stegun 7.1.26. Also gives the e^(-x^2) it computes on the way: gelu's gradient needs that
// density too.
__attribute__((always_inline)) inline float fast_erf_and_gauss(float x, float* gauss) {
  const float a = x < 0 ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  *gauss = fast_exp_nonpositive(-a * a);
  const float y = 1.0f - p * t * *gauss;
  return x < 0 ? -y : y;
}

__attribute__((always_inline)) inline float fast_erf(float x) {
  float gauss;
  return fast_erf_and_gauss(x, &gauss);
}

}  // namespace
}  // namespace dlc
