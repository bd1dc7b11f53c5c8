// Layer norm (forward and backward) fused with its elementwise producers and consumers: one pass over memory.
//
// For each row the prologue program computes the value to normalize (the forward's x, the backward's gy) a
// tile at a time into a row buffer that stays in L1/L2, the row statistics are taken from that buffer, and
// the normalized row (forward: (x - mean) * rstd * gamma + beta; backward: the input gradient) is handed to
// the epilogue program as its input 0, tile by tile, before anything is stored. The epilogue's last
// instructions may be reduction tails (a sum over everything, as in mean(y * y), or over all rows, as the
// gradient of a [D] parameter): they are summed in double per fixed chunk of rows and the chunks combined in
// order, so the result is bit-identical run to run for any thread count.
//
// Layout (see python/dlc/lower_norm.py, which builds it):
//   in   = [prologue inputs (P)..., core inputs..., epilogue inputs (E)...]
//          core: forward [gamma, beta]; backward [x, gamma, mean, rstd]
//   out  = [core outputs..., prologue stores (S1)..., epilogue stores (S2)..., tails (T)...]
//          core: forward [mean, rstd]; backward [ggamma, gbeta]
//   ints = [P, E, S1, S2, T, tail kind * T (0: sum of all, 1: sum over rows -> [D]), n prologue ints,
//           prologue program..., epilogue program...]   (programs in the "ew" layout)
//   floats = [eps, tail scale * T, prologue immediates..., epilogue immediates...]
// Program views: the prologue reads in[0, P) and STORE k (k >= 1) writes prologue store k - 1; its last
// instruction computes the row value. The epilogue's input 0 is the core result, input k >= 1 is epilogue
// input k - 1, STORE k (k >= 1) writes epilogue store k - 1; its last T instructions compute the tails.
#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/elementwise/elementwise.h"
#include "kernels/norm/layer_norm_rows.h"
#include "kernels/kernel_util.h"
#include "runtime/tensor.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

constexpr int64_t kChunkWork = 32768;  // rows per chunk cover at least this many elements
constexpr int64_t kMaxChunks = 32;     // also bounds the per-chunk partial sums

struct Layout {
  int P, E, S1, S2, T;
  std::vector<int> tail_kind;
  std::vector<double> tail_scale;
  const int64_t* pro_code;
  int n_pro;
  const int64_t* epi_code;
  int n_epi;
  const double* pro_imm;
  int n_pro_imm;
  const double* epi_imm;
  int n_epi_imm;
};

Layout parse(const KernelArgs& a, int core_in, int core_out) {
  kernel_check(a.n_ints >= 6 && a.n_floats >= 1, "layer_norm fused: header");
  Layout l;
  l.P = static_cast<int>(a.ints[0]);
  l.E = static_cast<int>(a.ints[1]);
  l.S1 = static_cast<int>(a.ints[2]);
  l.S2 = static_cast<int>(a.ints[3]);
  l.T = static_cast<int>(a.ints[4]);
  kernel_check(l.P >= 0 && l.E >= 0 && l.S1 >= 0 && l.S2 >= 0 && l.T >= 0, "layer_norm fused: counts");
  kernel_check(a.n_in == l.P + core_in + l.E && a.n_out == core_out + l.S1 + l.S2 + l.T,
               "layer_norm fused: operand counts");
  kernel_check(a.n_ints >= 6 + l.T && a.n_floats >= 1 + l.T, "layer_norm fused: tails");
  for (int t = 0; t < l.T; ++t) {
    l.tail_kind.push_back(static_cast<int>(a.ints[5 + t]));
    l.tail_scale.push_back(a.floats[1 + t]);
    kernel_check(l.tail_kind[t] == 0 || l.tail_kind[t] == 1, "layer_norm fused: tail kind");
  }
  const int64_t n_pro = a.ints[5 + l.T];
  kernel_check(n_pro >= 3 && 6 + l.T + n_pro + 3 <= a.n_ints, "layer_norm fused: program lengths");
  l.pro_code = a.ints + 6 + l.T;
  l.n_pro = static_cast<int>(n_pro);
  l.epi_code = l.pro_code + n_pro;
  l.n_epi = a.n_ints - 6 - l.T - l.n_pro;
  l.pro_imm = a.floats + 1 + l.T;
  l.n_pro_imm = static_cast<int>(l.pro_code[2]);
  l.epi_imm = l.pro_imm + l.n_pro_imm;
  l.n_epi_imm = a.n_floats - 1 - l.T - l.n_pro_imm;
  kernel_check(l.n_epi_imm >= 0, "layer_norm fused: immediates");
  return l;
}

// The two programs bound to their operands, with the views they address kept alive here.
struct Programs {
  std::vector<Tensor> pro_in, pro_out, epi_in, epi_out;
  EwRowProgram pro, epi;
  int64_t pro_result = 0;
  const void* direct = nullptr;  // the row input's data when the prologue is a bare copy of it (prologue_row)
  std::vector<int64_t> tail_reg;
};

std::unique_ptr<Programs> bind(const KernelArgs& a, const Layout& l, const Tensor& space, int core_in,
                               int core_out) {
  auto p = std::make_unique<Programs>();
  p->pro_in.assign(a.in, a.in + l.P);
  p->pro_out.push_back(space);
  p->pro_out.insert(p->pro_out.end(), a.out + core_out, a.out + core_out + l.S1);
  p->epi_in.push_back(space);
  p->epi_in.insert(p->epi_in.end(), a.in + l.P + core_in, a.in + l.P + core_in + l.E);
  p->epi_out.push_back(space);
  p->epi_out.insert(p->epi_out.end(), a.out + core_out + l.S1, a.out + core_out + l.S1 + l.S2);
  KernelArgs pa = a, ea = a;
  pa.in = p->pro_in.data();
  pa.n_in = l.P;
  pa.out = p->pro_out.data();
  pa.n_out = static_cast<int>(p->pro_out.size());
  ea.in = p->epi_in.data();
  ea.n_in = static_cast<int>(p->epi_in.size());
  ea.out = p->epi_out.data();
  ea.n_out = static_cast<int>(p->epi_out.size());
  p->pro = ew_row_program(pa, l.pro_code, l.n_pro, l.pro_imm, l.n_pro_imm);
  p->epi = ew_row_program(ea, l.epi_code, l.n_epi, l.epi_imm, l.n_epi_imm);
  kernel_check(p->pro.n_instr >= 1 && p->pro.f64 == p->epi.f64, "layer_norm fused: programs");
  kernel_check(p->epi.n_instr >= l.T, "layer_norm fused: tail instructions");
  auto is_store = [](const EwRowProgram& q, int i) { return q.instr[i * 5] == static_cast<int64_t>(EwOp::STORE); };
  kernel_check(!is_store(p->pro, p->pro.n_instr - 1), "layer_norm fused: the prologue ends with the row value");
  p->pro_result = p->pro.result_reg(p->pro.n_instr - 1);
  const int64_t* first = p->pro.instr;
  if (p->pro.n_instr == 1 && first[0] == static_cast<int64_t>(EwOp::COPY) && first[2] == -1 &&
      a.in[0].dtype == space.dtype && a.in[0].numel() == space.numel())
    p->direct = a.in[0].data;
  for (int t = 0; t < l.T; ++t) {
    const int i = p->epi.n_instr - l.T + t;
    kernel_check(!is_store(p->epi, i), "layer_norm fused: tails end the epilogue");
    p->tail_reg.push_back(p->epi.result_reg(i));
  }
  const int64_t D = space.shape[space.ndim - 1];
  for (int t = 0; t < l.T; ++t) {
    const Tensor& o = a.out[core_out + l.S1 + l.S2 + t];
    kernel_check(o.dtype == DType::F32 || o.dtype == DType::F64, "layer_norm fused: tails are f32 or f64");
    kernel_check(o.numel() == (l.tail_kind[t] == 0 ? 1 : D), "layer_norm fused: tail size");
  }
  return p;
}

void write_as(const Tensor& t, int64_t i, double v) {
  if (t.dtype == DType::F64)
    t.ptr<double>()[i] = v;
  else
    t.ptr<float>()[i] = static_cast<float>(v);
}

// Per-chunk double partials: tails (1 or D each), then `extra` columns of D (the backward's ggamma, gbeta).
struct Partials {
  std::vector<int64_t> offset;  // of each tail within a chunk's block
  int64_t extra_offset = 0, per_chunk = 0;
  std::vector<double> data;

  Partials(const Layout& l, int64_t D, int extra, int64_t chunks) {
    for (int t = 0; t < l.T; ++t) {
      offset.push_back(per_chunk);
      per_chunk += l.tail_kind[t] == 0 ? 1 : D;
    }
    extra_offset = per_chunk;
    per_chunk += extra * D;
    data.assign(static_cast<size_t>(per_chunk * chunks), 0.0);
  }
  double* chunk(int64_t c) { return data.data() + c * per_chunk; }
  // Sum over chunks, in chunk order, of the partial at position i of a chunk's block.
  double total(int64_t i, int64_t chunks) const {
    double s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += data[static_cast<size_t>(c * per_chunk + i)];
    return s;
  }
};

// Asks for columns [j0, j0 + n) of row r of every streamed input of `prog` (one that differs from row to row)
// ahead of use (the epilogue's input 0 has no data: skipped). The prologue reads a row in one burst and then the kernel computes on cached data for a while
// (statistics, epilogue), so the hardware prefetcher's stream goes cold between rows; prefetching the next row's
// tile while the epilogue runs on this one keeps memory busy.
inline void prefetch_row(const EwRowProgram& prog, int64_t r, int64_t j0, int64_t n) {
  const KernelArgs& a = prog.args;
  for (int k = 0; k < a.n_in; ++k) {
    if (prog.nd < 2 || prog.strides[k][prog.nd - 1] != 1 || prog.strides[k][prog.nd - 2] == 0 ||
        a.in[k].data == nullptr)
      continue;
    int64_t off = j0, rem = r;
    for (int d = prog.nd - 2; d >= 0; --d) {
      off += (rem % prog.dims[d]) * prog.strides[k][d];
      rem /= prog.dims[d];
    }
    const size_t size = dtype_size(a.in[k].dtype);
    const char* base = static_cast<const char*>(a.in[k].data) + off * size;
    for (size_t byte = 0; byte < static_cast<size_t>(n) * size; byte += 64) __builtin_prefetch(base + byte);
  }
}

// The epilogue on one tile of the core result, then its tails added to the chunk's partials.
template <class T>
inline void epilogue_tile(const Programs& p, const Layout& l, const LnRowOps<T>& ops, EwTileRegs<T>& regs,
                          double* acc, const Partials& parts, int64_t r, int64_t j0, int64_t n, const T* core) {
  ew_row_tile(p.epi, regs, r, j0, n, core);
  for (int t = 0; t < l.T; ++t) {
    const T* v = regs.reg[p.tail_reg[t]];
    if (l.tail_kind[t] == 0)
      ops.add_sum(v, n, acc + parts.offset[t]);
    else
      ops.add_each(v, n, acc + parts.offset[t] + j0);
  }
}

// The row the statistics are taken of: computed by the prologue into `buffer`, or, when the prologue only
// copies a contiguous input of the row's dtype (nothing was fused before the reduction), that input's row.
template <class T>
inline const T* prologue_row(const Programs& p, EwTileRegs<T>& regs, int64_t r, int64_t D, T* buffer) {
  if (p.direct != nullptr) return static_cast<const T*>(p.direct) + r * D;
  for (int64_t j0 = 0; j0 < D; j0 += kEwTileWidth) {
    const int64_t n = std::min(kEwTileWidth, D - j0);
    ew_row_tile(p.pro, regs, r, j0, n, static_cast<const T*>(nullptr));
    std::copy(regs.reg[p.pro_result], regs.reg[p.pro_result] + n, buffer + j0);
  }
  return buffer;
}

template <class T>
void finish_tails(const Layout& l, const KernelArgs& a, int core_out, const Partials& parts, int64_t chunks,
                  int64_t D) {
  for (int t = 0; t < l.T; ++t) {
    const Tensor& o = a.out[core_out + l.S1 + l.S2 + t];
    const int64_t n = l.tail_kind[t] == 0 ? 1 : D;
    for (int64_t i = 0; i < n; ++i) write_as(o, i, parts.total(parts.offset[t] + i, chunks) * l.tail_scale[t]);
  }
}

// The iteration space: the statistics' shape with the row length appended (only its shape is used: it gives
// the programs their geometry, so their inputs broadcast as in the unfused graph).
Tensor row_space(const Tensor& stats, int64_t D) {
  kernel_check(stats.ndim + 1 <= kMaxRank, "layer_norm fused: rank");
  Tensor space;
  space.dtype = stats.dtype;
  space.ndim = stats.ndim + 1;
  std::copy(stats.shape, stats.shape + stats.ndim, space.shape);
  space.shape[stats.ndim] = D;
  return space;
}

int64_t chunk_count(int64_t rows, int64_t D) {
  return std::max<int64_t>(1, std::min({rows, kMaxChunks, rows * D / kChunkWork}));
}

template <class T>
void forward(const KernelArgs& a, const Layout& l) {
  const Tensor& gamma = a.in[l.P];
  const Tensor& beta = a.in[l.P + 1];
  const Tensor& mean = a.out[0];
  const Tensor& rstd = a.out[1];
  const int64_t D = gamma.numel();
  kernel_check(D > 0 && beta.numel() == D && gamma.dtype == beta.dtype && mean.numel() == rstd.numel(),
               "layer_norm fused: gamma, beta, mean, rstd");
  kernel_check(mean.dtype == gamma.dtype && rstd.dtype == gamma.dtype, "layer_norm fused: dtypes");
  const int64_t rows = mean.numel();
  const auto p = bind(a, l, row_space(mean, D), 2, 2);
  const double eps = a.floats[0];
  const int64_t chunks = chunk_count(rows, D);
  Partials parts(l, D, 0, chunks);
  const T* g = gamma.ptr<const T>();
  const T* b = beta.ptr<const T>();
  const LnRowOps<T> ops = ln_rows_in_use<T>();
  parallel_items(chunks, [&](int64_t c, int) {
    std::unique_ptr<EwTileRegs<T>> regs(new EwTileRegs<T>);  // not zeroed: every register is written first
    std::vector<T> row(static_cast<size_t>(D));
    alignas(64) T tile[kEwTileWidth];
    double* acc = parts.chunk(c);
    const int64_t end = rows * (c + 1) / chunks;
    for (int64_t r = rows * c / chunks; r < end; ++r) {
      const T* x = prologue_row(*p, *regs, r, D, row.data());
      T mu, rs;
      ops.stats(x, D, eps, &mu, &rs);
      mean.ptr<T>()[r] = mu;
      rstd.ptr<T>()[r] = rs;
      for (int64_t j0 = 0; j0 < D; j0 += kEwTileWidth) {
        const int64_t n = std::min(kEwTileWidth, D - j0);
        ops.normalize(x + j0, g + j0, b + j0, mu, rs, tile, n);
        if (r + 1 < end) {
          prefetch_row(p->pro, r + 1, j0, n);
          prefetch_row(p->epi, r + 1, j0, n);
        }
        epilogue_tile(*p, l, ops, *regs, acc, parts, r, j0, n, tile);
      }
    }
  }, chunks > 1);
  finish_tails<T>(l, a, 2, parts, chunks, D);
}

// The unfused layer_norm_grad's formulas (layer_norm_rows.h); ggamma and gbeta are summed over rows per chunk.
template <class T>
void backward(const KernelArgs& a, const Layout& l) {
  const Tensor& xt = a.in[l.P];
  const Tensor& gamma = a.in[l.P + 1];
  const Tensor& mean = a.in[l.P + 2];
  const Tensor& rstd = a.in[l.P + 3];
  const int64_t D = gamma.numel();
  const int64_t rows = mean.numel();
  kernel_check(D > 0 && xt.numel() == rows * D && rstd.numel() == rows && a.out[0].numel() == D &&
                   a.out[1].numel() == D,
               "layer_norm_grad fused: shapes");
  kernel_check(xt.dtype == gamma.dtype && mean.dtype == gamma.dtype && rstd.dtype == gamma.dtype &&
                   a.out[0].dtype == gamma.dtype && a.out[1].dtype == gamma.dtype,
               "layer_norm_grad fused: dtypes");
  const auto p = bind(a, l, row_space(mean, D), 4, 2);
  const int64_t chunks = chunk_count(rows, D);
  Partials parts(l, D, 2, chunks);
  const T* gm = gamma.ptr<const T>();
  const LnRowOps<T> ops = ln_rows_in_use<T>();
  parallel_items(chunks, [&](int64_t c, int) {
    std::unique_ptr<EwTileRegs<T>> regs(new EwTileRegs<T>);  // not zeroed: every register is written first
    std::vector<T> row(static_cast<size_t>(D));
    alignas(64) T tile[kEwTileWidth];
    double* acc = parts.chunk(c);
    double* pg = acc + parts.extra_offset;
    double* pb = pg + D;
    const int64_t end = rows * (c + 1) / chunks;
    for (int64_t r = rows * c / chunks; r < end; ++r) {
      const T* gy = prologue_row(*p, *regs, r, D, row.data());
      const T* x = xt.ptr<const T>() + r * D;
      const T mu = mean.ptr<const T>()[r], rs = rstd.ptr<const T>()[r];
      T ma, mb;
      ops.grad_means(x, gm, gy, mu, rs, D, &ma, &mb);
      for (int64_t j0 = 0; j0 < D; j0 += kEwTileWidth) {
        const int64_t n = std::min(kEwTileWidth, D - j0);
        ops.grad(x + j0, gm + j0, gy + j0, mu, rs, ma, mb, tile, pg + j0, pb + j0, n);
        if (r + 1 < end) {
          prefetch_row(p->pro, r + 1, j0, n);
          prefetch_row(p->epi, r + 1, j0, n);
          for (int64_t byte = 0; byte < n * static_cast<int64_t>(sizeof(T)); byte += 64)
            __builtin_prefetch(reinterpret_cast<const char*>(x + D + j0) + byte);
        }
        epilogue_tile(*p, l, ops, *regs, acc, parts, r, j0, n, tile);
      }
    }
  }, chunks > 1);
  for (int64_t i = 0; i < D; ++i) {
    write_as(a.out[0], i, parts.total(parts.extra_offset + i, chunks));
    write_as(a.out[1], i, parts.total(parts.extra_offset + D + i, chunks));
  }
  finish_tails<T>(l, a, 2, parts, chunks, D);
}

void layer_norm_fused_kernel(const KernelArgs& a) {
  const Layout l = parse(a, 2, 2);
  kernel_check(a.n_in > l.P && a.n_out >= 2, "layer_norm fused: operands");
  dispatch_float(a.in[l.P].dtype, "layer_norm fused", [&](auto tag) {
    using T = decltype(tag);
    kernel_check((l.pro_code[0] == 1) == std::is_same_v<T, double>, "layer_norm fused: compute precision");
    forward<T>(a, l);
  });
}

void layer_norm_grad_fused_kernel(const KernelArgs& a) {
  const Layout l = parse(a, 4, 2);
  kernel_check(a.n_in > l.P + 1 && a.n_out >= 2, "layer_norm_grad fused: operands");
  dispatch_float(a.in[l.P + 1].dtype, "layer_norm_grad fused", [&](auto tag) {
    using T = decltype(tag);
    kernel_check((l.pro_code[0] == 1) == std::is_same_v<T, double>, "layer_norm_grad fused: compute precision");
    backward<T>(a, l);
  });
}

}  // namespace

DLC_REGISTER_KERNEL("layer_norm_fused", ::dlc::Device::CPU, layer_norm_fused_kernel);
DLC_REGISTER_KERNEL("layer_norm_grad_fused", ::dlc::Device::CPU, layer_norm_grad_fused_kernel);

template <class T>
LnRowOps<T> ln_rows_in_use() {
  const int level = ew_isa_level();
  if constexpr (std::is_same_v<T, float>)
    return level == 2 ? ln_rows_f32_avx512() : level == 1 ? ln_rows_f32_avx2() : ln_rows_f32_generic();
  else
    return level == 2 ? ln_rows_f64_avx512() : level == 1 ? ln_rows_f64_avx2() : ln_rows_f64_generic();
}
template LnRowOps<float> ln_rows_in_use<float>();
template LnRowOps<double> ln_rows_in_use<double>();

}  // namespace dlc
