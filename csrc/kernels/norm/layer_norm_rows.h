// The per-row arithmetic of the fused layer norm kernels (layer_norm_fused_cpu.cpp): statistics, normalize,
// and the backward's row means and gradient. Compiled three times, into generic, AVX2+FMA and AVX-512 translation units
// (layer_norm_rows_*.cpp), so the row loops run as wide as the elementwise evaluator beside them; the kernel
// picks the copy the evaluator uses (ew_isa_level). Internal linkage throughout, as in fastmath.h: the
// copies must never be merged by the linker.
#pragma once
#include <cmath>
#include <cstdint>

namespace dlc {

template <class T>
struct LnRowOps {
  // Mean and 1/std of x[0, D): two passes (mean, then squared deviations), sums in double.
  void (*stats)(const T* x, int64_t D, double eps, T* mean, T* rstd);
  // y = (x - mean) * rstd * gamma + beta over n values (one tile: the row is normalized a tile at a time, right
  // before the epilogue reads it, so the tile stays in L1).
  void (*normalize)(const T* x, const T* gamma, const T* beta, T mean, T rstd, T* y, int64_t n);
  // The backward's row means: a = mean_D(gy * gamma), b = mean_D(gy * gamma * xhat), xhat = (x - mean) * rstd.
  void (*grad_means)(const T* x, const T* gamma, const T* gy, T mean, T rstd, int64_t D, T* a, T* b);
  // Over n values: gx = rstd * (gy * gamma - a - xhat * b), pg += gy * xhat, pb += gy (the parameter
  // gradients' partial sums).
  void (*grad)(const T* x, const T* gamma, const T* gy, T mean, T rstd, T a, T b, T* gx, double* pg, double* pb,
               int64_t n);
  // The reduction tails' partial sums over one tile: dst[0] += sum(v), or dst[i] += v[i].
  void (*add_sum)(const T* v, int64_t n, double* dst);
  void (*add_each)(const T* v, int64_t n, double* dst);
};

LnRowOps<float> ln_rows_f32_generic();
LnRowOps<double> ln_rows_f64_generic();
LnRowOps<float> ln_rows_f32_avx2();
LnRowOps<double> ln_rows_f64_avx2();
LnRowOps<float> ln_rows_f32_avx512();
LnRowOps<double> ln_rows_f64_avx512();
// The copy for the instruction set the elementwise evaluator uses (ew_isa_level): the fused kernels and the
// plain layer norm (norm_cpu.cpp) run the same row arithmetic.
template <class T>
LnRowOps<T> ln_rows_in_use();

namespace {

// Sum of f(i) over [b, e) in double: 16 independent lanes (vectorizable without reassociation, we build
// without -ffast-math), halved recursively above a leaf so rounding error grows like log(n). The order of the
// additions depends only on the range.
template <class F>
inline double row_sum(int64_t b, int64_t e, const F& f) {
  constexpr int64_t kLeaf = 1024;
  if (e - b > kLeaf) {
    const int64_t mid = b + (e - b) / 2;
    return row_sum(b, mid, f) + row_sum(mid, e, f);
  }
  double acc[16] = {};
  int64_t i = b;
  for (; i + 16 <= e; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += f(i + j);
  double tail = 0;
  for (; i < e; ++i) tail += f(i);
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0] + tail;
}

template <class T>
void ln_stats(const T* x, int64_t D, double eps, T* mean, T* rstd) {
  const double mu = row_sum(0, D, [x](int64_t i) { return static_cast<double>(x[i]); }) / D;
  const double var = row_sum(0, D, [x, mu](int64_t i) {
                       const double d = static_cast<double>(x[i]) - mu;
                       return d * d;
                     }) / D;
  *mean = static_cast<T>(mu);
  *rstd = static_cast<T>(1.0 / std::sqrt(var + eps));
}

template <class T>
void ln_normalize(const T* x, const T* gamma, const T* beta, T mean, T rstd, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
}

template <class T>
void ln_grad_means(const T* x, const T* gamma, const T* gy, T mean, T rstd, int64_t D, T* a, T* b) {
  const double sg = row_sum(0, D, [gy, gamma](int64_t i) { return static_cast<double>(gy[i] * gamma[i]); });
  const double sgx = row_sum(0, D, [=](int64_t i) {
    return static_cast<double>(gy[i] * gamma[i]) * static_cast<double>((x[i] - mean) * rstd);
  });
  *a = static_cast<T>(sg / D);
  *b = static_cast<T>(sgx / D);
}

template <class T>
void ln_grad(const T* x, const T* gamma, const T* gy, T mean, T rstd, T a, T b, T* gx, double* pg, double* pb,
             int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T xhat = (x[i] - mean) * rstd;
    const T g = gy[i];
    pg[i] += static_cast<double>(g) * static_cast<double>(xhat);
    pb[i] += static_cast<double>(g);
    gx[i] = rstd * (g * gamma[i] - a - xhat * b);
  }
}

template <class T>
void ln_add_sum(const T* v, int64_t n, double* dst) {
  *dst += row_sum(0, n, [v](int64_t i) { return static_cast<double>(v[i]); });
}

template <class T>
void ln_add_each(const T* v, int64_t n, double* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] += static_cast<double>(v[i]);
}

template <class T>
LnRowOps<T> ln_row_ops() {
  return {&ln_stats<T>, &ln_normalize<T>, &ln_grad_means<T>, &ln_grad<T>, &ln_add_sum<T>, &ln_add_each<T>};
}

}  // namespace
}  // namespace dlc
