// Softmax cross-entropy with class labels (optionally label-smoothed) or with soft targets, and their
// gradients. Logits are viewed as [rows, C] with C the last dim; the loss is a 0-d tensor.
//
// The forward pass keeps softmax(logits) for the backward pass. Per-row losses are summed in fixed
// chunks of rows (set by the shape alone), then the chunk sums in order, so the loss is identical for
// every thread count.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/reduce/reduce.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using kern::ceil_div;
using kern::kMaxSplit;
using kern::kParallelWork;

struct Rows {
  int64_t rows = 1, C = 0;
};

Rows rows_of(const Tensor& logits, const char* who) {
  if (logits.ndim < 1) throw std::invalid_argument(std::string(who) + ": logits need at least one dim");
  Rows r;
  r.C = logits.shape[logits.ndim - 1];
  for (int d = 0; d + 1 < logits.ndim; ++d) r.rows *= logits.shape[d];
  return r;
}

void check_like(const Tensor& t, const Tensor& ref, const char* what) {
  kernel_check(t.dtype == ref.dtype && t.numel() == ref.numel(), what);
}

// Labels must name a class: checked up front so no worker ever sees a bad one.
void check_labels(const Tensor& labels, const Rows& s, const char* who) {
  kern::check_index_dtype(labels, who);
  kernel_check(labels.numel() == s.rows, "softmax_xent: labels must have one entry per row");
  for (int64_t r = 0; r < s.rows; ++r) {
    const int64_t l = kern::index_at(labels, r);
    if (l < 0 || l >= s.C)
      throw std::out_of_range(std::string(who) + ": label " + std::to_string(l) + " at row " + std::to_string(r) +
                              " is out of range for " + std::to_string(s.C) + " classes");
  }
}

double scalar_of(const Tensor& t, const char* what) {
  kernel_check(t.numel() == 1 && (t.dtype == DType::F32 || t.dtype == DType::F64), what);
  return t.dtype == DType::F32 ? static_cast<double>(*t.ptr<const float>()) : *t.ptr<const double>();
}

int reduction_of(const KernelArgs& a, const char* what) {
  kernel_check(a.n_ints == 1 && (a.ints[0] == 0 || a.ints[0] == 1), what);
  return static_cast<int>(a.ints[0]);
}

// Writes p = softmax(x) for one row and returns its log-sum-exp.
template <class T>
double softmax_lse(const T* x, T* p, int64_t C) {
  const T m = kern::row_max(x, C);
  for (int64_t c = 0; c < C; ++c) p[c] = std::exp(x[c] - m);
  const double s = kern::lane_sum(C, [p](int64_t c) { return static_cast<double>(p[c]); });
  for (int64_t c = 0; c < C; ++c) p[c] = static_cast<T>(p[c] / s);
  return static_cast<double>(m) + std::log(s);
}

// Sums row_loss(r) over all rows in fixed chunks, parallel over chunks; row_loss also fills probs.
template <class RowLoss>
double sum_rows(const Rows& s, const RowLoss& row_loss) {
  if (s.rows == 0) return 0.0;
  const int64_t nch = std::min(s.rows, kMaxSplit);
  const int64_t rc = ceil_div(s.rows, nch);
  double part[kMaxSplit];
  parallel_items(nch, [&](int64_t ch, int) {
    double acc = 0;
    for (int64_t r = ch * rc; r < std::min(s.rows, (ch + 1) * rc); ++r) acc += row_loss(r);
    part[ch] = acc;
  }, element_threads(static_cast<double>(s.rows * s.C)));
  double total = 0;
  for (int64_t ch = 0; ch < nch; ++ch) total += part[ch];
  return total;
}

// loss_r = -sum_c q_c * log p_c with q = (1 - ls) * onehot(label) + ls / C.
void softmax_xent_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 2 && a.n_floats == 1,
               "softmax_xent: expects [logits, labels] -> [loss, probs], floats [label_smoothing]");
  const int reduction = reduction_of(a, "softmax_xent: ints must be [reduction 0|1]");
  const Tensor &logits = a.in[0], &labels = a.in[1];
  const Rows s = rows_of(logits, "softmax_xent");
  check_labels(labels, s, "softmax_xent");
  check_like(a.out[1], logits, "softmax_xent: probs must match logits");
  kernel_check(a.out[0].numel() == 1 && a.out[0].dtype == logits.dtype, "softmax_xent: loss must be a 0-d tensor");
  const double ls = a.floats[0];
  kern::dispatch_float(logits.dtype, "softmax_xent", [&](auto tag) {
    using T = decltype(tag);
    const T* x = logits.ptr<const T>();
    T* probs = a.out[1].ptr<T>();
    const int64_t C = s.C;
    const double total = sum_rows(s, [&](int64_t r) {
      const T* xr = x + r * C;
      const double lse = softmax_lse(xr, probs + r * C, C);
      double loss = -(1.0 - ls) * (static_cast<double>(xr[kern::index_at(labels, r)]) - lse);
      // Skipped when ls == 0 so a -inf logit does not turn the loss into 0 * inf = NaN.
      if (ls != 0) {
        const double sum_logp = kern::lane_sum(C, [xr](int64_t c) { return static_cast<double>(xr[c]); }) - C * lse;
        loss -= ls / C * sum_logp;
      }
      return loss;
    });
    *a.out[0].ptr<T>() = static_cast<T>(reduction == 0 ? total / s.rows : total);
  });
}

// glogits = (probs - q) * gloss / (rows if mean).
void softmax_xent_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 3 && a.n_out == 1 && a.n_floats == 1,
               "softmax_xent_grad: expects [probs, labels, gloss] -> [glogits], floats [label_smoothing]");
  const int reduction = reduction_of(a, "softmax_xent_grad: ints must be [reduction 0|1]");
  const Tensor &probs = a.in[0], &labels = a.in[1];
  const Rows s = rows_of(probs, "softmax_xent_grad");
  check_labels(labels, s, "softmax_xent_grad");
  check_like(a.out[0], probs, "softmax_xent_grad: glogits must match probs");
  const double gloss = scalar_of(a.in[2], "softmax_xent_grad: gloss must be a 0-d float tensor");
  const double ls = a.floats[0];
  const double scale = reduction == 0 ? gloss / s.rows : gloss;
  kern::dispatch_float(probs.dtype, "softmax_xent_grad", [&](auto tag) {
    using T = decltype(tag);
    const T* p = probs.ptr<const T>();
    T* g = a.out[0].ptr<T>();
    const int64_t C = s.C;
    const T sc = static_cast<T>(scale), q_off = static_cast<T>(ls / C), q_on = static_cast<T>(1.0 - ls + ls / C);
    parallel_items(s.rows, [&](int64_t r, int) {
      const T* pr = p + r * C;
      T* gr = g + r * C;
      for (int64_t c = 0; c < C; ++c) gr[c] = (pr[c] - q_off) * sc;
      const int64_t l = kern::index_at(labels, r);
      gr[l] = (pr[l] - q_on) * sc;
    }, element_threads(static_cast<double>(s.rows * C)));
  });
}

// loss_r = -sum_c target_c * log p_c.
void softmax_xent_soft_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 2, "softmax_xent_soft: expects [logits, target] -> [loss, probs]");
  const int reduction = reduction_of(a, "softmax_xent_soft: ints must be [reduction 0|1]");
  const Tensor &logits = a.in[0], &target = a.in[1];
  const Rows s = rows_of(logits, "softmax_xent_soft");
  check_like(target, logits, "softmax_xent_soft: target must match logits");
  check_like(a.out[1], logits, "softmax_xent_soft: probs must match logits");
  kernel_check(a.out[0].numel() == 1 && a.out[0].dtype == logits.dtype,
               "softmax_xent_soft: loss must be a 0-d tensor");
  kern::dispatch_float(logits.dtype, "softmax_xent_soft", [&](auto tag) {
    using T = decltype(tag);
    const T *x = logits.ptr<const T>(), *t = target.ptr<const T>();
    T* probs = a.out[1].ptr<T>();
    const int64_t C = s.C;
    const double total = sum_rows(s, [&](int64_t r) {
      const T *xr = x + r * C, *tr = t + r * C;
      const double lse = softmax_lse(xr, probs + r * C, C);
      return -kern::lane_sum(
          C, [xr, tr, lse](int64_t c) { return static_cast<double>(tr[c]) * (static_cast<double>(xr[c]) - lse); });
    });
    *a.out[0].ptr<T>() = static_cast<T>(reduction == 0 ? total / s.rows : total);
  });
}

// d loss_r / d x_c = p_c * sum_k target_k - target_c (targets need not sum to 1).
void softmax_xent_soft_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 3 && a.n_out == 1,
               "softmax_xent_soft_grad: expects [probs, target, gloss] -> [glogits]");
  const int reduction = reduction_of(a, "softmax_xent_soft_grad: ints must be [reduction 0|1]");
  const Tensor &probs = a.in[0], &target = a.in[1];
  const Rows s = rows_of(probs, "softmax_xent_soft_grad");
  check_like(target, probs, "softmax_xent_soft_grad: target must match probs");
  check_like(a.out[0], probs, "softmax_xent_soft_grad: glogits must match probs");
  const double gloss = scalar_of(a.in[2], "softmax_xent_soft_grad: gloss must be a 0-d float tensor");
  const double scale = reduction == 0 ? gloss / s.rows : gloss;
  kern::dispatch_float(probs.dtype, "softmax_xent_soft_grad", [&](auto tag) {
    using T = decltype(tag);
    const T *p = probs.ptr<const T>(), *t = target.ptr<const T>();
    T* g = a.out[0].ptr<T>();
    const int64_t C = s.C;
    const T sc = static_cast<T>(scale);
    parallel_items(s.rows, [&](int64_t r, int) {
      const T *pr = p + r * C, *tr = t + r * C;
      T* gr = g + r * C;
      const T tsum = static_cast<T>(kern::lane_sum(C, [tr](int64_t c) { return static_cast<double>(tr[c]); }));
      for (int64_t c = 0; c < C; ++c) gr[c] = (pr[c] * tsum - tr[c]) * sc;
    }, element_threads(static_cast<double>(s.rows * C)));
  });
}

}  // namespace

DLC_REGISTER_KERNEL("softmax_xent", ::dlc::Device::CPU, softmax_xent_kernel);
DLC_REGISTER_KERNEL("softmax_xent_grad", ::dlc::Device::CPU, softmax_xent_grad_kernel);
DLC_REGISTER_KERNEL("softmax_xent_soft", ::dlc::Device::CPU, softmax_xent_soft_kernel);
DLC_REGISTER_KERNEL("softmax_xent_soft_grad", ::dlc::Device::CPU, softmax_xent_soft_grad_kernel);

}  // namespace dlc
