// Axis reductions: "reduce" (sum / mean / max / min over a set of axes) and "sum_to" (the gradient of
// broadcasting, i.e. a sum over the broadcast axes).
//
// Every reduction is brought to the form [outer, R, inner] -> [outer, inner]. Axes that are contiguous
// after dropping size-1 dims are reduced in one pass; other axis sets take one pass per run of reduced
// axes, through double buffers. Accumulation is in double, in an order fixed by the shapes alone.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/reduce/reduce.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using kern::ceil_div;
using kern::kMaxSplit;
using kern::kParallelWork;

// Reduction kinds as folds over double: init is the identity, combine folds in one value, row reduces a
// contiguous row. kFourRows: column sweeps may fold four rows at a time (sums only: GCC does not
// vectorize the nested NaN-propagating max/min).
struct SumOp {
  static constexpr bool kFourRows = true;
  static double init() { return 0.0; }
  static double combine(double a, double b) { return a + b; }
  template <class T>
  static double row(const T* x, int64_t n) {
    return kern::lane_sum(n, [x](int64_t i) { return static_cast<double>(x[i]); });
  }
};
struct MaxOp {
  static constexpr bool kFourRows = false;
  static double init() { return -std::numeric_limits<double>::infinity(); }
  static double combine(double a, double b) { return kern::nan_max(a, b); }
  template <class T>
  static double row(const T* x, int64_t n) {
    return n > 0 ? static_cast<double>(kern::row_max(x, n)) : init();
  }
};
struct MinOp {
  static constexpr bool kFourRows = false;
  static double init() { return std::numeric_limits<double>::infinity(); }
  static double combine(double a, double b) { return kern::nan_min(a, b); }
  template <class T>
  static double row(const T* x, int64_t n) {
    return n > 0 ? static_cast<double>(kern::row_min(x, n)) : init();
  }
};

// Columns handled by one task when inner > 1: the accumulators live on the stack.
constexpr int64_t kColBlock = 256;
// Rows folded into a partial before it joins the running total, so long column sums stay accurate.
constexpr int64_t kRowBlock = 256;
// Elements a task should cover before it is worth splitting R into separately reduced chunks.
constexpr int64_t kChunkWork = 32768;

// out[j] = fold over r in [0, rows) of x[r * stride + j], j in [0, cb). With stride == 1 (inner == 1) the
// block is one contiguous row and cb == 1.
template <class Op, class Tin>
void reduce_block(const Tin* x, int64_t rows, int64_t stride, int64_t cb, double* out) {
  if (stride == 1) {
    out[0] = Op::row(x, rows);
    return;
  }
  double part[kColBlock];
  for (int64_t j = 0; j < cb; ++j) out[j] = Op::init();
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t r1 = std::min(rows, r0 + kRowBlock);
    for (int64_t j = 0; j < cb; ++j) part[j] = Op::init();
    int64_t r = r0;
    // Four rows per sweep over part[] cut its loads and stores, which otherwise bound this loop.
    for (; Op::kFourRows && r + 4 <= r1; r += 4) {
      const Tin *a = x + r * stride, *b = a + stride, *c = b + stride, *d = c + stride;
      for (int64_t j = 0; j < cb; ++j)
        part[j] = Op::combine(part[j], Op::combine(Op::combine(static_cast<double>(a[j]), static_cast<double>(b[j])),
                                                   Op::combine(static_cast<double>(c[j]), static_cast<double>(d[j]))));
    }
    for (; r < r1; ++r) {
      const Tin* row = x + r * stride;
      for (int64_t j = 0; j < cb; ++j) part[j] = Op::combine(part[j], static_cast<double>(row[j]));
    }
    for (int64_t j = 0; j < cb; ++j) out[j] = Op::combine(out[j], part[j]);
  }
}

// y[o, j] = fold over r of x[o, r, j] / divisor. Tasks are (outer index, column block); when there are
// too few of them to feed the threads, R is also split into chunks whose partials are folded in chunk
// order afterwards.
template <class Op, class Tin, class Tout>
void reduce_mid(const Tin* x, Tout* y, int64_t outer, int64_t R, int64_t inner, double divisor) {
  if (outer == 0 || inner == 0) return;
  const int64_t cbw = std::min(inner, kColBlock);
  const int64_t ncb = ceil_div(inner, cbw);
  const int64_t tasks = outer * ncb;
  int64_t nch = 1;
  if (tasks < kMaxSplit && R > 1)
    nch = std::max<int64_t>(1, std::min({ceil_div(R * cbw, kChunkWork), kMaxSplit / tasks, R}));
  const int64_t rc = ceil_div(R, nch);
  nch = R > 0 ? ceil_div(R, rc) : 1;
  const bool par = outer * R * inner > kParallelWork;

  if (nch == 1) {
    parallel_items(tasks, [&](int64_t t, int) {
      const int64_t o = t / ncb, j0 = (t % ncb) * cbw, cb = std::min(cbw, inner - j0);
      double acc[kColBlock];
      reduce_block<Op>(x + o * R * inner + j0, R, inner, cb, acc);
      for (int64_t j = 0; j < cb; ++j) y[o * inner + j0 + j] = static_cast<Tout>(acc[j] / divisor);
    }, par);
    return;
  }

  // Partials laid out [outer, nch, inner]; bounded by kMaxSplit * kColBlock doubles.
  double* part = kern::scratch<double>(static_cast<size_t>(outer * nch * inner));
  parallel_items(tasks * nch, [&](int64_t t, int) {
    const int64_t o = t / (nch * ncb), ch = (t / ncb) % nch, j0 = (t % ncb) * cbw;
    const int64_t cb = std::min(cbw, inner - j0), r0 = ch * rc, r1 = std::min(R, r0 + rc);
    reduce_block<Op>(x + (o * R + r0) * inner + j0, r1 - r0, inner, cb, part + (o * nch + ch) * inner + j0);
  }, par);
  for (int64_t o = 0; o < outer; ++o) {
    const double* p = part + o * nch * inner;
    for (int64_t j = 0; j < inner; ++j) {
      double acc = p[j];
      for (int64_t ch = 1; ch < nch; ++ch) acc = Op::combine(acc, p[ch * inner + j]);
      y[o * inner + j] = static_cast<Tout>(acc / divisor);
    }
  }
}

// The shape of a reduction after dropping size-1 dims (they change neither the data order nor any
// result) and merging neighbouring dims that are both kept or both reduced.
struct Groups {
  int n = 0;
  int64_t size[kMaxRank];
  bool reduced[kMaxRank];
};

Groups make_groups(const Tensor& x, const bool* reduced) {
  Groups g;
  for (int d = 0; d < x.ndim; ++d) {
    if (x.shape[d] == 1) continue;
    if (g.n > 0 && g.reduced[g.n - 1] == reduced[d]) {
      g.size[g.n - 1] *= x.shape[d];
    } else {
      g.size[g.n] = x.shape[d];
      g.reduced[g.n] = reduced[d];
      ++g.n;
    }
  }
  return g;
}

// Reduces the groups marked reduced. One reduced group is a single [outer, R, inner] pass; with several,
// the last reduced group goes first, through double buffers, and only the final pass divides and
// converts to T.
template <class Op, class T>
void reduce_groups(const T* x, T* y, Groups g, double divisor) {
  int nred = 0;
  for (int i = 0; i < g.n; ++i) nred += g.reduced[i];
  int64_t numel = 1;
  for (int i = 0; i < g.n; ++i) numel *= g.size[i];
  if (nred == 0) {
    // Nothing is reduced: a copy (a mean over no elements divides by 1).
    if (numel > 0) std::memcpy(y, x, static_cast<size_t>(numel) * sizeof(T));
    return;
  }
  // The pass over group k views the current data as [prod(size[:k]), size[k], prod(size[k+1:])].
  auto split = [&g](int k, int64_t& outer, int64_t& inner) {
    outer = 1;
    inner = 1;
    for (int i = 0; i < k; ++i) outer *= g.size[i];
    for (int i = k + 1; i < g.n; ++i) inner *= g.size[i];
  };
  auto last_reduced = [&g]() {
    int k = g.n - 1;
    while (!g.reduced[k]) --k;
    return k;
  };
  auto drop = [&g](int k) {
    for (int i = k; i + 1 < g.n; ++i) {
      g.size[i] = g.size[i + 1];
      g.reduced[i] = g.reduced[i + 1];
    }
    --g.n;
  };
  int64_t outer, inner;
  int k = last_reduced();
  split(k, outer, inner);
  if (nred == 1) {
    reduce_mid<Op>(x, y, outer, g.size[k], inner, divisor);
    return;
  }
  if (outer * inner == 0) return;  // kept dims are empty: so is y
  std::vector<double> bufs[2] = {std::vector<double>(outer * inner), std::vector<double>(outer * inner)};
  reduce_mid<Op>(x, bufs[0].data(), outer, g.size[k], inner, 1.0);
  drop(k);
  int cur = 0;
  for (int pass = 1; pass < nred; ++pass) {
    k = last_reduced();
    split(k, outer, inner);
    if (pass + 1 == nred) {
      reduce_mid<Op>(bufs[cur].data(), y, outer, g.size[k], inner, divisor);
    } else {
      reduce_mid<Op>(bufs[cur].data(), bufs[1 - cur].data(), outer, g.size[k], inner, 1.0);
      cur = 1 - cur;
    }
    drop(k);
  }
}

// Runs the reduction `kind` (0 sum, 1 mean, 2 max, 3 min) of x over the dims flagged in `reduced`.
void run_reduce(const Tensor& x, const Tensor& y, const bool* reduced, int kind, const char* who) {
  kernel_check(x.dtype == y.dtype, "reduce: x and y dtypes differ");
  int64_t kept = 1, count = 1;
  for (int d = 0; d < x.ndim; ++d) (reduced[d] ? count : kept) *= x.shape[d];
  kernel_check(y.numel() == kept, "reduce: y numel does not match the kept dims of x");
  const Groups g = make_groups(x, reduced);
  kern::dispatch_float(x.dtype, who, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.ptr<const T>();
    T* yp = y.ptr<T>();
    switch (kind) {
      case 0: reduce_groups<SumOp>(xp, yp, g, 1.0); break;
      case 1: reduce_groups<SumOp>(xp, yp, g, static_cast<double>(count)); break;
      case 2: reduce_groups<MaxOp>(xp, yp, g, 1.0); break;
      case 3: reduce_groups<MinOp>(xp, yp, g, 1.0); break;
      default: throw std::invalid_argument("reduce: unknown kind " + std::to_string(kind));
    }
  });
}

void reduce_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.n_ints >= 2, "reduce: expects 1 input, 1 output, ints");
  const Tensor& x = a.in[0];
  const int64_t naxes = a.ints[1];
  kernel_check(naxes >= 0 && a.n_ints == 2 + naxes, "reduce: ints must be [kind, naxes, axes...]");
  bool reduced[kMaxRank] = {false};
  for (int64_t i = 0; i < naxes; ++i) {
    const int64_t ax = a.ints[2 + i];
    kernel_check(ax >= 0 && ax < x.ndim, "reduce: axis out of range");
    kernel_check(i == 0 || ax > a.ints[1 + i], "reduce: axes must be sorted and unique");
    reduced[ax] = true;
  }
  run_reduce(x, a.out[0], reduced, static_cast<int>(a.ints[0]), "reduce");
}

// sum_to: y's shape (padded to x's rank) has 1 wherever x was broadcast; those dims are summed.
void sum_to_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.n_ints >= 1, "sum_to: expects 1 input, 1 output, ints");
  const Tensor& x = a.in[0];
  kernel_check(a.ints[0] == x.ndim && a.n_ints == 1 + x.ndim, "sum_to: ints must be [rank, yshape...]");
  bool reduced[kMaxRank] = {false};
  for (int d = 0; d < x.ndim; ++d) {
    const int64_t yd = a.ints[1 + d];
    kernel_check(yd == x.shape[d] || yd == 1, "sum_to: y dim must equal x dim or be 1");
    reduced[d] = yd != x.shape[d];
  }
  run_reduce(x, a.out[0], reduced, 0, "sum_to");
}

}  // namespace

DLC_REGISTER_KERNEL("reduce", ::dlc::Device::CPU, reduce_kernel);
DLC_REGISTER_KERNEL("sum_to", ::dlc::Device::CPU, sum_to_kernel);

}  // namespace dlc
