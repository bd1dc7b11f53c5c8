// Data movement: transpose, slice (and its gradient), concat, copy, cast, and the row pair gather_rows /
// scatter_add_rows (embeddings; gather and scatter_add, the message passing of graph networks). Everything
// but cast and scatter_add_rows moves elements by size (1, 4 or 8 bytes), whatever the dtype.
//
// transpose, slice and slice_grad share one strided copy: one side is contiguous, the other is visited
// through per-dim strides. Dims are simplified first (size-1 dims dropped, dims that stay contiguous
// merged), so e.g. a slice of whole rows becomes one memcpy per block.
#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/reduce/reduce.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using kern::ceil_div;
using kern::kParallelWork;

// Calls fn(E{}) with an unsigned type of the dtype's element size.
template <class Fn>
void by_elem_size(DType t, const Fn& fn) {
  switch (dtype_size(t)) {
    case 1: fn(uint8_t{}); break;
    case 4: fn(uint32_t{}); break;
    case 8: fn(uint64_t{}); break;
    default: throw std::invalid_argument(std::string("unsupported element size for dtype ") + dtype_name(t));
  }
}

// Bytes per chunk of a parallel memset/memcpy; a single thread is used below a few chunks.
constexpr size_t kByteChunk = size_t(1) << 18;

void bulk_zero(void* p, size_t bytes) {
  const int64_t nch = ceil_div(static_cast<int64_t>(bytes), static_cast<int64_t>(kByteChunk));
  parallel_items(nch, [&](int64_t c, int) {
    const size_t b0 = c * kByteChunk;
    std::memset(static_cast<char*>(p) + b0, 0, std::min(kByteChunk, bytes - b0));
  }, nch > 4);
}

void bulk_copy(void* dst, const void* src, size_t bytes) {
  if (dst == src) return;
  const int64_t nch = ceil_div(static_cast<int64_t>(bytes), static_cast<int64_t>(kByteChunk));
  parallel_items(nch, [&](int64_t c, int) {
    const size_t b0 = c * kByteChunk;
    std::memcpy(static_cast<char*>(dst) + b0, static_cast<const char*>(src) + b0, std::min(kByteChunk, bytes - b0));
  }, nch > 4);
}

std::array<int64_t, kMaxRank> row_major_strides(const Tensor& t) {
  std::array<int64_t, kMaxRank> s{};
  int64_t acc = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    s[d] = acc;
    acc *= t.shape[d];
  }
  return s;
}

// Element i of the contiguous side (row-major over size[0..n)) pairs with element
// base + sum_d idx_d * stride[d] of the strided side.
struct Strided {
  int n = 0;
  int64_t size[kMaxRank];
  int64_t stride[kMaxRank];
  int64_t base = 0;
};

Strided simplify(int n, const int64_t* size, const int64_t* stride, int64_t base) {
  Strided s;
  s.base = base;
  for (int d = 0; d < n; ++d) {
    if (size[d] == 1) continue;
    if (s.n > 0 && s.stride[s.n - 1] == stride[d] * size[d]) {
      s.size[s.n - 1] *= size[d];
      s.stride[s.n - 1] = stride[d];
    } else {
      s.size[s.n] = size[d];
      s.stride[s.n] = stride[d];
      ++s.n;
    }
  }
  return s;
}

// Offset on the strided side of the first element of contiguous row r (a row spans the last dim).
int64_t row_offset(const Strided& s, int64_t r, int64_t* idx) {
  int64_t off = s.base;
  for (int d = s.n - 2; d >= 0; --d) {
    idx[d] = r % s.size[d];
    r /= s.size[d];
    off += idx[d] * s.stride[d];
  }
  return off;
}

// Rows handled by one task of the generic path are chosen to cover about this many elements.
constexpr int64_t kBlockElems = 16384;
// Square tile of the transposing path: 32 x 32 elements of up to 8 bytes fit in L1 twice over.
constexpr int64_t kTile = 32;

// The strided side's last two dims are (stride 1, stride st): the copy transposes 2-D panels. Tiles keep
// both the reads and the writes within a few cache lines.
template <class E>
void gather_transposed(const Strided& s, const E* src, E* dst) {
  const int n = s.n;
  const int64_t M = s.size[n - 2], L = s.size[n - 1], st = s.stride[n - 1];
  int64_t panels = 1;
  for (int d = 0; d < n - 2; ++d) panels *= s.size[d];
  const int64_t ti = ceil_div(M, kTile), tj = ceil_div(L, kTile);
  parallel_items(panels * ti * tj, [&](int64_t t, int) {
    const int64_t p = t / (ti * tj), i0 = (t / tj) % ti * kTile, j0 = t % tj * kTile;
    int64_t idx[kMaxRank];
    // Panel p is rows [p*M, p*M + M) of the contiguous side.
    const E* sp = src + row_offset(s, p * M, idx);
    E* dp = dst + p * M * L;
    const int64_t i1 = std::min(M, i0 + kTile), j1 = std::min(L, j0 + kTile);
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = j0; j < j1; ++j) dp[i * L + j] = sp[i + j * st];
  }, element_threads(static_cast<double>(panels * M * L)));
}

// kScatter false: dst (contiguous) = src (strided); true: dst (strided) = src (contiguous).
template <class E, bool kScatter>
void strided_copy(const Strided& s, const E* src, E* dst) {
  if (s.n == 0) {
    if (kScatter)
      dst[s.base] = src[0];
    else
      dst[0] = src[s.base];
    return;
  }
  const int n = s.n;
  if (!kScatter && n >= 2 && s.stride[n - 2] == 1) {
    gather_transposed(s, src, dst);
    return;
  }
  const int64_t len = s.size[n - 1], st = s.stride[n - 1];
  int64_t rows = 1;
  for (int d = 0; d < n - 1; ++d) rows *= s.size[d];
  const int64_t rb = std::max<int64_t>(1, kBlockElems / len);
  parallel_items(ceil_div(rows, rb), [&](int64_t blk, int) {
    int64_t idx[kMaxRank];
    const int64_t r0 = blk * rb, r1 = std::min(rows, r0 + rb);
    int64_t off = row_offset(s, r0, idx);
    for (int64_t r = r0; r < r1; ++r) {
      E* d = kScatter ? dst + off : dst + r * len;
      const E* c = kScatter ? src + r * len : src + off;
      if (st == 1) {
        std::memcpy(d, c, static_cast<size_t>(len) * sizeof(E));
      } else if (kScatter) {
        for (int64_t j = 0; j < len; ++j) d[j * st] = c[j];
      } else {
        for (int64_t j = 0; j < len; ++j) d[j] = c[j * st];
      }
      // Advance the odometer over dims [0, n-1) to row r + 1.
      for (int dd = n - 2; dd >= 0; --dd) {
        off += s.stride[dd];
        if (++idx[dd] < s.size[dd]) break;
        off -= s.stride[dd] * s.size[dd];
        idx[dd] = 0;
      }
    }
  }, element_threads(static_cast<double>(rows * len)));
}

template <bool kScatter>
void run_strided(const Strided& s, DType t, const void* src, void* dst) {
  by_elem_size(t, [&](auto tag) {
    using E = decltype(tag);
    strided_copy<E, kScatter>(s, static_cast<const E*>(src), static_cast<E*>(dst));
  });
}

void transpose_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.n_ints >= 1, "transpose: expects [x] -> [y], ints");
  const Tensor &x = a.in[0], &y = a.out[0];
  const int rank = x.ndim;
  kernel_check(a.ints[0] == rank && a.n_ints == 1 + rank && y.ndim == rank && x.dtype == y.dtype,
               "transpose: ints must be [rank, perm...] with rank == x.ndim == y.ndim");
  const auto xs = row_major_strides(x);
  int64_t stride[kMaxRank];
  bool seen[kMaxRank] = {false};
  for (int i = 0; i < rank; ++i) {
    const int64_t p = a.ints[1 + i];
    kernel_check(p >= 0 && p < rank && !seen[p], "transpose: perm is not a permutation");
    seen[p] = true;
    kernel_check(y.shape[i] == x.shape[p], "transpose: y.shape[i] must equal x.shape[perm[i]]");
    stride[i] = xs[p];
  }
  if (y.numel() == 0) return;
  run_strided<false>(simplify(rank, y.shape, stride, 0), x.dtype, x.data, y.data);
}

// The view of x that a slice selects; y (or gy) holds its shape.
Strided slice_view(const KernelArgs& a, const Tensor& x, const Tensor& y, const char* who) {
  const int rank = x.ndim;
  kernel_check(a.n_ints == 1 + 2 * rank && a.ints[0] == rank && y.ndim == rank && x.dtype == y.dtype,
               "slice: ints must be [rank, starts..., steps...] with matching ranks and dtypes");
  const auto xs = row_major_strides(x);
  int64_t stride[kMaxRank];
  int64_t base = 0;
  for (int d = 0; d < rank; ++d) {
    const int64_t start = a.ints[1 + d], step = a.ints[1 + rank + d];
    if (start < 0 || step < 1 || (y.shape[d] > 0 && start + (y.shape[d] - 1) * step >= x.shape[d]))
      throw std::out_of_range(std::string(who) + ": slice of dim " + std::to_string(d) + " (start " +
                              std::to_string(start) + ", step " + std::to_string(step) + ", count " +
                              std::to_string(y.shape[d]) + ") exceeds its size " + std::to_string(x.shape[d]));
    stride[d] = xs[d] * step;
    base += start * xs[d];
  }
  return simplify(rank, y.shape, stride, base);
}

void slice_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1, "slice: expects [x] -> [y]");
  const Strided s = slice_view(a, a.in[0], a.out[0], "slice");
  if (a.out[0].numel() == 0) return;
  run_strided<false>(s, a.in[0].dtype, a.in[0].data, a.out[0].data);
}

void slice_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1, "slice_grad: expects [gy] -> [gx]");
  const Tensor &gy = a.in[0], &gx = a.out[0];
  const Strided s = slice_view(a, gx, gy, "slice_grad");
  bulk_zero(gx.data, gx.nbytes());
  if (gy.numel() == 0) return;
  run_strided<true>(s, gy.dtype, gy.data, gx.data);
}

void concat_kernel(const KernelArgs& a) {
  kernel_check(a.n_in >= 1 && a.n_out == 1 && a.n_ints == 1, "concat: expects [x...] -> [y], ints [axis]");
  const Tensor& y = a.out[0];
  const int64_t axis = a.ints[0];
  kernel_check(axis >= 0 && axis < y.ndim, "concat: axis out of range");
  int64_t outer = 1, inner = 1, total = 0;
  for (int d = 0; d < axis; ++d) outer *= y.shape[d];
  for (int d = static_cast<int>(axis) + 1; d < y.ndim; ++d) inner *= y.shape[d];
  for (int k = 0; k < a.n_in; ++k) {
    const Tensor& x = a.in[k];
    bool ok = x.ndim == y.ndim && x.dtype == y.dtype;
    for (int d = 0; ok && d < y.ndim; ++d) ok = d == axis || x.shape[d] == y.shape[d];
    kernel_check(ok, "concat: inputs must match y in dtype and in every dim but the axis");
    total += x.shape[axis];
  }
  kernel_check(total == y.shape[axis], "concat: input sizes along the axis must add up to y's");
  const size_t es = dtype_size(y.dtype);
  const size_t row_bytes = static_cast<size_t>(total * inner) * es;
  // Task (o, k) copies input k's slab for outer index o; dst offsets come from a prefix over inputs.
  const int n = a.n_in;
  std::vector<size_t> prefix(n + 1, 0);
  for (int k = 0; k < n; ++k) prefix[k + 1] = prefix[k] + static_cast<size_t>(a.in[k].shape[axis] * inner) * es;
  char* dst = static_cast<char*>(y.data);
  parallel_for(outer * n, 1024, [&](int64_t lo_, int64_t hi_, int) {
    for (int64_t t = lo_; t < hi_; ++t) {
      const int64_t o = t / n;
      const int k = static_cast<int>(t % n);
      const size_t bytes = prefix[k + 1] - prefix[k];
      if (bytes > 0) std::memcpy(dst + o * row_bytes + prefix[k], static_cast<const char*>(a.in[k].data) + o * bytes, bytes);
    }
  }, static_cast<int64_t>(y.nbytes()) > 8 * kParallelWork);
}

void copy_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.in[0].nbytes() == a.out[0].nbytes(),
               "copy: expects [x] -> [y] of the same size in bytes");
  bulk_copy(a.out[0].data, a.in[0].data, a.in[0].nbytes());
}

// cast reads Bool as uint8 and writes it as bool, so static_cast gives x != 0 into Bool and 0/1 out of
// it; float -> int truncates toward zero, as numpy's astype does.
template <class Fn>
void with_src_type(DType t, const Fn& fn) {
  switch (t) {
    case DType::F32: fn(float{}); break;
    case DType::F64: fn(double{}); break;
    case DType::I32: fn(int32_t{}); break;
    case DType::I64: fn(int64_t{}); break;
    case DType::Bool: fn(uint8_t{}); break;
  }
}
template <class Fn>
void with_dst_type(DType t, const Fn& fn) {
  switch (t) {
    case DType::F32: fn(float{}); break;
    case DType::F64: fn(double{}); break;
    case DType::I32: fn(int32_t{}); break;
    case DType::I64: fn(int64_t{}); break;
    case DType::Bool: fn(bool{}); break;
  }
}

void cast_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.in[0].numel() == a.out[0].numel(),
               "cast: expects [x] -> [y] with the same numel");
  const Tensor &x = a.in[0], &y = a.out[0];
  if (x.dtype == y.dtype) {
    bulk_copy(y.data, x.data, x.nbytes());
    return;
  }
  const int64_t n = x.numel();
  with_src_type(x.dtype, [&](auto s) {
    with_dst_type(y.dtype, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      const S* xp = x.ptr<const S>();
      D* yp = y.ptr<D>();
      parallel_for(n, 1024, [&](int64_t lo_, int64_t hi_, int) {
        for (int64_t i = lo_; i < hi_; ++i) {
          yp[i] = static_cast<D>(xp[i]);
        }
      }, element_threads(static_cast<double>(n)));
    });
  });
}

// Throws std::out_of_range (IndexError in Python) naming the first index outside [0, V): every kernel that
// reads integer indices or labels checks them all before touching memory.
void check_indices(const Tensor& idx, int64_t V, const char* who, const char* what) {
  kern::check_index_dtype(idx, who);
  const int64_t n = idx.numel();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = kern::index_at(idx, i);
    if (v < 0 || v >= V)
      throw std::out_of_range(std::string(who) + ": index " + std::to_string(v) + " at position " +
                              std::to_string(i) + " is out of range for " + std::to_string(V) + " " + what);
  }
}

void check_rows(const Tensor& idx, int64_t V, const char* who) { check_indices(idx, V, who, "table rows"); }

// y[i, c] = (labels[i] == c): integer labels to one-hot rows of C classes, in y's dtype.
void one_hot_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 1 && a.n_out == 1 && a.n_ints == 1, "one_hot: expects [labels] -> [y], ints [classes]");
  const Tensor &idx = a.in[0], &y = a.out[0];
  const int64_t C = a.ints[0], n = idx.numel();
  kernel_check(C >= 1 && y.numel() == n * C, "one_hot: y must be [labels..., classes]");
  check_indices(idx, C, "one_hot", "classes");
  with_dst_type(y.dtype, [&](auto d) {
    using D = decltype(d);
    D* yp = y.ptr<D>();
    std::fill(yp, yp + n * C, static_cast<D>(0));
    for (int64_t i = 0; i < n; ++i) yp[i * C + kern::index_at(idx, i)] = static_cast<D>(1);
  });
}

// y[..., i, j] = (j - i <= k), or (j - i >= k) when upper: the triangle of numpy's tril/triu and ONNX's Trilu,
// and attention's causal mask. A kernel rather than a constant, so the size may be bound at run time.
void triangle_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 0 && a.n_out == 1 && a.n_ints == 2 && a.out[0].ndim >= 2,
               "triangle: expects [] -> [y] of rank >= 2, ints [k, upper]");
  const Tensor& y = a.out[0];
  const int64_t R = y.shape[y.ndim - 2], C = y.shape[y.ndim - 1], k = a.ints[0];
  const bool upper = a.ints[1] != 0;
  const int64_t mats = R * C == 0 ? 0 : y.numel() / (R * C);
  with_dst_type(y.dtype, [&](auto d) {
    using D = decltype(d);
    D* yp = y.ptr<D>();
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) yp[i * C + j] = static_cast<D>(upper ? j - i >= k : j - i <= k);
    for (int64_t m = 1; m < mats; ++m) std::memcpy(yp + m * R * C, yp, static_cast<size_t>(R * C) * sizeof(D));
  });
}

// Elements per row of a table [V, ...] (1 for a vector): gather(x, index) and scatter_add move whole rows.
int64_t row_size(const Tensor& t) {
  int64_t d = 1;
  for (int k = 1; k < t.ndim; ++k) d *= t.shape[k];
  return d;
}

// y[i, ...] = table[idx[i], ...]: the embedding lookup and gather(x, index), for tables of any rank >= 1.
void gather_rows_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 1, "gather_rows: expects [table, idx] -> [y]");
  const Tensor &table = a.in[0], &idx = a.in[1], &y = a.out[0];
  kernel_check(table.ndim >= 1 && y.dtype == table.dtype, "gather_rows: table must be [V, ...] of y's dtype");
  const int64_t V = table.shape[0], D = row_size(table), n = idx.numel();
  kernel_check(y.numel() == n * D, "gather_rows: y must be [n..., row]");
  check_rows(idx, V, "gather_rows");
  const size_t row_bytes = static_cast<size_t>(D) * dtype_size(table.dtype);
  const char* src = static_cast<const char*>(table.data);
  char* dst = static_cast<char*>(y.data);
  parallel_for(n, 1024, [&](int64_t lo_, int64_t hi_, int) {
    for (int64_t i = lo_; i < hi_; ++i) {
      std::memcpy(dst + i * row_bytes, src + kern::index_at(idx, i) * row_bytes, row_bytes);
    }
  }, element_threads(static_cast<double>(n * D)));
}

// Columns per scatter_add_rows task, so a small vocabulary with wide rows still spreads over threads.
constexpr int64_t kScatterCols = 1024;

// gtable[v] = sum of gy[i] over the i with idx[i] == v, added in increasing i. The positions are first
// grouped by row with a counting sort (stable), then each row is summed by exactly one task: no atomics,
// and the same order as a serial loop whatever the thread count.
template <class T>
void scatter_add_rows(const Tensor& idx, const T* gy, T* gt, int64_t V, int64_t D) {
  const int64_t n = idx.numel();
  int64_t* start = kern::scratch<int64_t>(static_cast<size_t>(V + 1 + n));
  int64_t* order = start + V + 1;
  std::fill(start, start + V + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++start[kern::index_at(idx, i) + 1];
  for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
  // Filling advances start[v] to the end of row v's run; shifting by one restores the run starts.
  for (int64_t i = 0; i < n; ++i) order[start[kern::index_at(idx, i)]++] = i;
  for (int64_t v = V; v > 0; --v) start[v] = start[v - 1];
  start[0] = 0;
  const int64_t cbw = std::max<int64_t>(1, std::min(D, kScatterCols));
  const int64_t ncb = ceil_div(D, cbw);
  parallel_for(V * ncb, 16, [&](int64_t lo_, int64_t hi_, int) {
    for (int64_t t = lo_; t < hi_; ++t) {
      const int64_t v = t / ncb, j0 = (t % ncb) * cbw, cb = std::min(cbw, D - j0);
      T* row = gt + v * D + j0;
      for (int64_t j = 0; j < cb; ++j) row[j] = 0;
      for (int64_t k = start[v]; k < start[v + 1]; ++k) {
        const T* g = gy + order[k] * D + j0;
        for (int64_t j = 0; j < cb; ++j) row[j] += g[j];
      }
    }
  }, element_threads(static_cast<double>((n + V) * D)));
}

// gt [V, ...] (any rank >= 1) = the rows of gy [idx.shape..., row] summed at idx; `who` names the op in errors.
void scatter_rows(const Tensor& idx, const Tensor& gy, const Tensor& gt, const char* who) {
  const std::string w(who);
  kernel_check(gt.ndim >= 1 && gy.dtype == gt.dtype, (w + ": the result must be [V, ...] of the rows' dtype").c_str());
  const int64_t V = gt.shape[0], D = row_size(gt);
  kernel_check(gy.numel() == idx.numel() * D, (w + ": the rows must be [index..., row]").c_str());
  check_rows(idx, V, who);
  if (D == 0 || V == 0) return;
  kern::dispatch_float(gt.dtype, who, [&](auto tag) {
    using T = decltype(tag);
    scatter_add_rows(idx, gy.ptr<const T>(), gt.ptr<T>(), V, D);
  });
}

// The embedding gradient: [idx, gy] -> [gtable].
void scatter_add_rows_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 1, "scatter_add_rows: expects [idx, gy] -> [gtable]");
  scatter_rows(a.in[0], a.in[1], a.out[0], "scatter_add_rows");
}

// scatter_add(src, index, size): [src, idx] -> [y].
void scatter_add_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 2 && a.n_out == 1, "scatter_add: expects [src, idx] -> [y]");
  scatter_rows(a.in[1], a.in[0], a.out[0], "scatter_add");
}

}  // namespace

DLC_REGISTER_KERNEL("transpose", ::dlc::Device::CPU, transpose_kernel);
DLC_REGISTER_KERNEL("slice", ::dlc::Device::CPU, slice_kernel);
DLC_REGISTER_KERNEL("slice_grad", ::dlc::Device::CPU, slice_grad_kernel);
DLC_REGISTER_KERNEL("concat", ::dlc::Device::CPU, concat_kernel);
DLC_REGISTER_KERNEL("copy", ::dlc::Device::CPU, copy_kernel);
DLC_REGISTER_KERNEL("cast", ::dlc::Device::CPU, cast_kernel);
DLC_REGISTER_KERNEL("gather_rows", ::dlc::Device::CPU, gather_rows_kernel);
DLC_REGISTER_KERNEL("one_hot", ::dlc::Device::CPU, one_hot_kernel);
DLC_REGISTER_KERNEL("triangle", ::dlc::Device::CPU, triangle_kernel);
DLC_REGISTER_KERNEL("scatter_add_rows", ::dlc::Device::CPU, scatter_add_rows_kernel);
DLC_REGISTER_KERNEL("scatter_add", ::dlc::Device::CPU, scatter_add_kernel);

}  // namespace dlc
