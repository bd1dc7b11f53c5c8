// Multi-tensor optimizer steps (sgd, adam/adamw, rmsprop, adagrad) that update every parameter and its
// state in place in one call, plus global_norm.
//
// Call layout: in[0] is an f64 "hyper" tensor [lr, step t, grad_scale, unused]; then a fixed group of
// tensors per parameter. floats = [kernel hyperparameters..., clip_norm, clip_value, lr multiplier per
// parameter]. Every gradient element is clamped to +-clip_value (if > 0) on the fly and multiplied by
// grad_scale * min(1, clip_norm / (global norm + 1e-6)) (the norm factor only if clip_norm > 0). The
// update formulas follow torch.optim, computed in the parameter's dtype.
//
// Guarded call (the fused training step, one output): in[1] is the loss (a float scalar) and out[0] an i32
// status [loss, gradient of each parameter] (1 = not finite). The kernel checks the loss and every gradient
// before writing anything; if one is not finite it sets the status and returns, leaving every parameter and
// state tensor untouched (PyTorch's GradScaler skips optimizer.step likewise). With clip_norm the global
// norm's sum of squares is the check (a non-finite sum is confirmed by a scan: an f64 sum can overflow);
// without it one scan of the gradients, which the update then reads from cache.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <type_traits>

#include "kernels/reduce/reduce.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using kern::ceil_div;
using kern::kParallelWork;

// Sum-of-squares chunk: chunk sums are combined in order, so the norm is the same for every thread count.
constexpr int64_t kNormChunk = 65536;

template <class T>
T clamp_grad(T g, T cv, bool clip) {
  return clip ? std::min(std::max(g, -cv), cv) : g;
}

// Sum of f(i) over [0, n) in double, in fixed chunks (n > kNormChunk implies enough work for threads).
template <class F>
double chunked_sum(int64_t n, const F& f) {
  const int64_t nch = ceil_div(n, kNormChunk);
  if (nch <= 1) return kern::sum_range(0, n, f);
  double* part = kern::scratch<double>(static_cast<size_t>(nch));
  parallel_items(nch, [&](int64_t c, int) {
    part[c] = kern::sum_range(c * kNormChunk, std::min(n, (c + 1) * kNormChunk), f);
  }, true);
  return kern::lane_sum(nch, [part](int64_t c) { return part[c]; });
}

// Sum over g of clamp(g)^2 in double. Two lambdas rather than a select on `clip`: the select alone makes
// the loop several times slower. With `guard` the sum is NaN where clamping hid an inf (and unchanged
// elsewhere: it adds g - g, exactly 0 for a finite g).
template <class T>
double sum_squares(const T* g, int64_t n, double clip_value, bool guard) {
  if (clip_value > 0) {
    const T cv = static_cast<T>(clip_value);
    if (guard)
      return chunked_sum(n, [g, cv](int64_t i) {
        const double v = clamp_grad(g[i], cv, true), raw = g[i];
        return v * v + (raw - raw);
      });
    return chunked_sum(n, [g, cv](int64_t i) {
      const double v = clamp_grad(g[i], cv, true);
      return v * v;
    });
  }
  return chunked_sum(n, [g](int64_t i) {
    const double v = g[i];
    return v * v;
  });
}

// Whether every element of x[0, n) is finite, from the exponent bits alone (integer ops that vectorize with
// baseline SSE2): an all-ones exponent plus its lowest bit carries into the sign bit.
template <class T>
bool all_finite(const T* x, int64_t n) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr int kMant = std::numeric_limits<T>::digits - 1;
  constexpr U exp_mask = ((U{1} << (sizeof(T) * 8 - 1 - kMant)) - 1) << kMant, carry = U{1} << kMant;
  constexpr int64_t kChunk = 16384;
  const int64_t nch = ceil_div(n, kChunk);
  bool ok = true;
  // One flag per chunk (no early exit: a finite step, the common case, reads everything anyway).
  uint8_t* bad = kern::scratch<uint8_t>(static_cast<size_t>(std::max<int64_t>(nch, 1)));
  parallel_items(nch, [&](int64_t c, int) {
    const int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
    U acc = 0;
    for (int64_t i = lo; i < hi; ++i) {
      U bits;
      std::memcpy(&bits, x + i, sizeof(T));
      acc |= (bits & exp_mask) + carry;
    }
    bad[c] = static_cast<uint8_t>(acc >> (sizeof(T) * 8 - 1));
  }, element_threads(static_cast<double>(n)));
  for (int64_t c = 0; c < nch; ++c) ok = ok && !bad[c];
  return ok;
}

bool tensor_all_finite(const Tensor& t, const char* who) {
  bool ok = true;
  kern::dispatch_float(t.dtype, who, [&](auto tag) {
    using T = decltype(tag);
    ok = all_finite(t.ptr<const T>(), t.numel());
  });
  return ok;
}

double tensor_sum_squares(const Tensor& g, double clip_value, const char* who, bool guard = false) {
  double s = 0;
  kern::dispatch_float(g.dtype, who, [&](auto tag) {
    using T = decltype(tag);
    s = sum_squares(g.ptr<const T>(), g.numel(), clip_value, guard);
  });
  return s;
}

// The parsed call: per = tensors per parameter (the gradient is always the second), nh = number of the
// kernel's own hyperparameters at the front of floats.
struct OptimCall {
  const KernelArgs& a;
  int per, nh, n_params;
  double lr, t, grad_scale, clip_norm, clip_value;
  int first;  // index of the first parameter's tensors: 1, or 2 in a guarded call (in[1] is the loss)

  bool guarded() const { return a.n_out == 1; }
  const Tensor& tensor(int i, int k) const { return a.in[first + i * per + k]; }
  double hp(int k) const { return a.floats[k]; }
  double lr_of(int i) const { return lr * a.floats[nh + 2 + i]; }
};

OptimCall parse(const KernelArgs& a, int per, int nh, const char* who) {
  const int first = a.n_out == 1 ? 2 : 1;
  kernel_check(a.n_in >= first && (a.n_in - first) % per == 0 && a.n_out <= 1,
               "optimizer: expects [hyper, per-parameter tensors...] and no outputs, or [hyper, loss, "
               "per-parameter tensors...] and a status output");
  const int n = (a.n_in - first) / per;
  if (first == 2)
    kernel_check(a.in[1].numel() == 1 && a.out[0].dtype == DType::I32 && a.out[0].numel() == n + 1,
                 "optimizer: a guarded call takes a scalar loss and writes an i32 status [loss, each gradient]");
  kernel_check(a.n_ints == 0 || a.ints[0] == n, "optimizer: ints[0] must be the parameter count");
  kernel_check(a.n_floats == nh + 2 + n, "optimizer: floats must be [hyperparams..., clip_norm, clip_value, lr mults]");
  const Tensor& h = a.in[0];
  kernel_check(h.dtype == DType::F64 && h.numel() >= 3, "optimizer: hyper must be f64 [lr, t, grad_scale, _]");
  const double* hv = h.ptr<const double>();
  OptimCall c{a, per, nh, n, hv[0], hv[1], hv[2], a.floats[nh], a.floats[nh + 1], first};
  for (int i = 0; i < n; ++i) {
    const Tensor& p = c.tensor(i, 0);
    kern::dispatch_float(p.dtype, who, [](auto) {});  // only rejects a non-float parameter
    for (int k = 1; k < per; ++k)
      kernel_check(c.tensor(i, k).dtype == p.dtype && c.tensor(i, k).numel() == p.numel(),
                   "optimizer: a parameter's gradient and state must match it in dtype and size");
  }
  return c;
}

bool scalar_finite(const Tensor& t, const char* who) {
  bool ok = true;
  kern::dispatch_float(t.dtype, who, [&](auto tag) { ok = std::isfinite(*t.ptr<const decltype(tag)>()); });
  return ok;
}

// grad_scale times the global-norm clip factor; none when a guarded call must not update (its status says
// why: the loss, else each non-finite gradient).
std::optional<double> grad_factor(const OptimCall& c, const char* who) {
  int32_t* status = c.guarded() ? c.a.out[0].ptr<int32_t>() : nullptr;
  if (status) {
    std::fill(status, status + c.n_params + 1, 0);
    if (!scalar_finite(c.a.in[1], who)) {
      status[0] = 1;
      return std::nullopt;
    }
  }
  bool finite = true;
  double scale = 1.0;
  if (c.clip_norm > 0) {
    double ss = 0;
    for (int i = 0; i < c.n_params; ++i) {
      const double s = tensor_sum_squares(c.tensor(i, 1), c.clip_value, who, status != nullptr);
      if (status && !std::isfinite(s) && !tensor_all_finite(c.tensor(i, 1), who)) finite = false, status[1 + i] = 1;
      ss += s;
    }
    scale = std::min(1.0, c.clip_norm / (std::sqrt(ss) + 1e-6));
  } else if (status) {
    for (int i = 0; i < c.n_params; ++i)
      if (!tensor_all_finite(c.tensor(i, 1), who)) finite = false, status[1 + i] = 1;
  }
  if (!finite) return std::nullopt;
  return c.grad_scale * scale;
}

// For every parameter: calls update(i, tag) with tag a value of the parameter's element type.
template <class Update>
void for_each_param(const OptimCall& c, const char* who, const Update& update) {
  for (int i = 0; i < c.n_params; ++i) kern::dispatch_float(c.tensor(i, 0).dtype, who, [&](auto tag) { update(i, tag); });
}

// Runs body(j, g_j) over the elements of gradient g, with g_j clipped and scaled. Elements are
// independent, so the parallel loop is deterministic. Bodies express their options as selects and store
// every state element unconditionally (unchanged where an option is off): a branch in the loop would
// keep GCC from vectorizing it.
template <class T, class Body>
void for_each_grad(const T* g, int64_t n, const OptimCall& c, double factor, const Body& body) {
  const bool clip = c.clip_value > 0;
  const T cv = static_cast<T>(c.clip_value), f = static_cast<T>(factor);
  parallel_for(n, std::max<int64_t>(4096, grain_for(n)), [&](int64_t lo, int64_t hi, int) {
    // A private copy of the body: its captured constants then provably do not alias the arrays it
    // writes, so they stay in registers instead of being reloaded every element.
    const Body local = body;
    for (int64_t j = lo; j < hi; ++j) local(j, clamp_grad(g[j], cv, clip) * f);
  }, element_threads(static_cast<double>(n)));
}

void sgd_kernel(const KernelArgs& a) {
  const OptimCall c = parse(a, 3, 4, "sgd");
  const std::optional<double> guarded_factor = grad_factor(c, "sgd");
  if (!guarded_factor) return;
  const double factor = *guarded_factor;
  const bool first = c.t <= 1.0, nesterov = c.hp(3) != 0;
  for_each_param(c, "sgd", [&](int i, auto tag) {
    using T = decltype(tag);
    T *p = c.tensor(i, 0).ptr<T>(), *buf = c.tensor(i, 2).ptr<T>();
    const T mom = static_cast<T>(c.hp(0)), damp = static_cast<T>(1.0 - c.hp(1)), wd = static_cast<T>(c.hp(2));
    const T lr = static_cast<T>(c.lr_of(i));
    const bool use_wd = c.hp(2) != 0, use_mom = c.hp(0) != 0;
    for_each_grad(c.tensor(i, 1).ptr<const T>(), c.tensor(i, 0).numel(), c, factor, [=](int64_t j, T g) {
      const T pj = p[j];
      g = use_wd ? g + wd * pj : g;
      const T b = first ? g : mom * buf[j] + damp * g;
      buf[j] = use_mom ? b : buf[j];
      const T d = use_mom ? (nesterov ? g + mom * b : b) : g;
      p[j] = pj - lr * d;
    });
  });
}

void adam_kernel(const KernelArgs& a) {
  const OptimCall c = parse(a, 4, 5, "adam");
  const std::optional<double> guarded_factor = grad_factor(c, "adam");
  if (!guarded_factor) return;
  const double factor = *guarded_factor;
  const double b1 = c.hp(0), b2 = c.hp(1), wd = c.hp(3);
  const bool decoupled = c.hp(4) != 0, l2_wd = wd != 0 && !decoupled;
  const double bc1 = 1.0 - std::pow(b1, c.t), bc2_sqrt = std::sqrt(1.0 - std::pow(b2, c.t));
  for_each_param(c, "adam", [&](int i, auto tag) {
    using T = decltype(tag);
    T *p = c.tensor(i, 0).ptr<T>(), *m = c.tensor(i, 2).ptr<T>(), *v = c.tensor(i, 3).ptr<T>();
    const double lr = c.lr_of(i);
    const T b1t = static_cast<T>(b1), b2t = static_cast<T>(b2), omb1 = static_cast<T>(1 - b1),
            omb2 = static_cast<T>(1 - b2), eps = static_cast<T>(c.hp(2)), wdt = static_cast<T>(wd),
            decay = static_cast<T>(decoupled ? 1 - lr * wd : 1.0), step = static_cast<T>(lr / bc1), bc2 = static_cast<T>(bc2_sqrt);
    for_each_grad(c.tensor(i, 1).ptr<const T>(), c.tensor(i, 0).numel(), c, factor, [=](int64_t j, T g) {
      const T pj = p[j] * decay;  // AdamW's decoupled decay; decay == 1 (exact) otherwise
      g = l2_wd ? g + wdt * p[j] : g;
      const T mj = b1t * m[j] + omb1 * g;
      const T vj = b2t * v[j] + omb2 * (g * g);
      m[j] = mj;
      v[j] = vj;
      p[j] = pj - step * (mj / (std::sqrt(vj) / bc2 + eps));
    });
  });
}

void rmsprop_kernel(const KernelArgs& a) {
  const OptimCall c = parse(a, 4, 4, "rmsprop");
  const std::optional<double> guarded_factor = grad_factor(c, "rmsprop");
  if (!guarded_factor) return;
  const double factor = *guarded_factor;
  const bool use_wd = c.hp(2) != 0, use_mom = c.hp(3) > 0;
  for_each_param(c, "rmsprop", [&](int i, auto tag) {
    using T = decltype(tag);
    T *p = c.tensor(i, 0).ptr<T>(), *sq = c.tensor(i, 2).ptr<T>(), *buf = c.tensor(i, 3).ptr<T>();
    const T alpha = static_cast<T>(c.hp(0)), oma = static_cast<T>(1 - c.hp(0)), eps = static_cast<T>(c.hp(1)),
            wd = static_cast<T>(c.hp(2)), mom = static_cast<T>(c.hp(3)), lr = static_cast<T>(c.lr_of(i));
    for_each_grad(c.tensor(i, 1).ptr<const T>(), c.tensor(i, 0).numel(), c, factor, [=](int64_t j, T g) {
      const T pj = p[j];
      g = use_wd ? g + wd * pj : g;
      const T s = alpha * sq[j] + oma * (g * g);
      sq[j] = s;
      const T step = g / (std::sqrt(s) + eps);
      const T b = mom * buf[j] + step;
      buf[j] = use_mom ? b : buf[j];
      p[j] = pj - lr * (use_mom ? b : step);
    });
  });
}

void adagrad_kernel(const KernelArgs& a) {
  const OptimCall c = parse(a, 3, 3, "adagrad");
  const std::optional<double> guarded_factor = grad_factor(c, "adagrad");
  if (!guarded_factor) return;
  const double factor = *guarded_factor;
  const bool use_wd = c.hp(1) != 0;
  for_each_param(c, "adagrad", [&](int i, auto tag) {
    using T = decltype(tag);
    T *p = c.tensor(i, 0).ptr<T>(), *acc = c.tensor(i, 2).ptr<T>();
    const T eps = static_cast<T>(c.hp(0)), wd = static_cast<T>(c.hp(1)),
            clr = static_cast<T>(c.lr_of(i) / (1 + (c.t - 1) * c.hp(2)));
    for_each_grad(c.tensor(i, 1).ptr<const T>(), c.tensor(i, 0).numel(), c, factor, [=](int64_t j, T g) {
      const T pj = p[j];
      g = use_wd ? g + wd * pj : g;
      const T s = acc[j] + g * g;
      acc[j] = s;
      p[j] = pj - clr * (g / (std::sqrt(s) + eps));
    });
  });
}

void global_norm_kernel(const KernelArgs& a) {
  kernel_check(a.n_out == 1 && a.out[0].dtype == DType::F64 && a.out[0].numel() == 1,
               "global_norm: expects [g...] -> [y (0-d f64)]");
  double ss = 0;
  for (int k = 0; k < a.n_in; ++k) ss += tensor_sum_squares(a.in[k], 0.0, "global_norm");
  *a.out[0].ptr<double>() = std::sqrt(ss);
}

}  // namespace

DLC_REGISTER_KERNEL("sgd", ::dlc::Device::CPU, sgd_kernel);
DLC_REGISTER_KERNEL("adam", ::dlc::Device::CPU, adam_kernel);
DLC_REGISTER_KERNEL("rmsprop", ::dlc::Device::CPU, rmsprop_kernel);
DLC_REGISTER_KERNEL("adagrad", ::dlc::Device::CPU, adagrad_kernel);
DLC_REGISTER_KERNEL("global_norm", ::dlc::Device::CPU, global_norm_kernel);

}  // namespace dlc
